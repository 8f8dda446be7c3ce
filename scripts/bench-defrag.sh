#!/usr/bin/env bash
# How long writes stall while a member defragments a ~1 GiB backend, etcd 3.4
# vs rsetcd, on the same machine in one run.
#
# Per server: fill SIZE_MIB of live data (8 KiB values, unique keys), then
# overwrite a fifth of it and compact (garbage for defrag to give back);
# start a steady write load (rsetcd-bench put, 8 clients, --rate RATE, 256 B
# values) and, 3 s in, run `etcdctl defrag`. Reported: how long the defrag
# took, the slowest put and the puts/s of the load (which spans the defrag),
# the db size before and after, and for rsetcd the write stall it logs
# (the locked catch-up and swap). Prints a Markdown table on stdout.
#
# Usage: scripts/bench-defrag.sh [--size-mib N] [--rate N] [--no-build]
# Only processes this script starts are killed (by PID).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
OURS_ETCD=${OURS_ETCD:-$REPO/target/release/etcd}
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
BENCH=$REPO/target/release/rsetcd-bench
SIZE_MIB=1024
RATE=1000
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --size-mib) SIZE_MIB=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
log() { echo "bench-defrag: $*" >&2; }
if [ "$BUILD" = 1 ]; then
    (cd "$REPO" && cargo build --release --bin rsetcd-bench --bin etcd) >&2
fi

WORKDIR=$(mktemp -d /tmp/bench-defrag.XXXXXX)
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
cleanup() { stop_server; rm -rf "$WORKDIR"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

ctl() { ETCDCTL_API=3 "$ETCDCTL" --endpoints "$EP" "$@"; }
json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d[0]['Status']$1)"; }

run() {
    local label=$1 bin=$2 client peer dir values overwrite rev
    client=$(free_port); peer=$(free_port)
    dir="$WORKDIR/$label"; mkdir -p "$dir"
    (cd "$dir" && exec "$bin" --name=bench --data-dir="$dir/data" \
        --quota-backend-bytes=$((8 * 1024 * 1024 * 1024)) \
        --listen-client-urls="http://127.0.0.1:$client" \
        --advertise-client-urls="http://127.0.0.1:$client" \
        --listen-peer-urls="http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls="http://127.0.0.1:$peer" \
        --initial-cluster="bench=http://127.0.0.1:$peer" >"$dir/server.log" 2>&1) &
    SERVER_PID=$!
    EP="127.0.0.1:$client"
    for _ in $(seq 100); do ctl endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
    values=$((SIZE_MIB * 128))   # 8 KiB each
    overwrite=$((values / 5))
    log "$label: filling $SIZE_MIB MiB ($values puts)"
    "$BENCH" --endpoints "$EP" --conns 8 --clients 64 put --total "$values" \
        --val-size 8192 --key-size 16 --sequential-keys --key-space-size "$values" >/dev/null
    "$BENCH" --endpoints "$EP" --conns 8 --clients 64 put --total "$overwrite" \
        --val-size 8192 --key-size 16 --sequential-keys --key-space-size "$overwrite" >/dev/null
    rev=$(ctl endpoint status -w json | json_field "['header']['revision']")
    ctl compaction --physical "$rev" >/dev/null
    local before after load_out defrag_ms
    before=$(ctl endpoint status -w json | json_field "['dbSize']")
    local total=$((RATE * 12))
    "$BENCH" --endpoints "$EP" --conns 4 --clients 8 put --rate "$RATE" --total "$total" \
        --val-size 256 --key-size 16 --key-space-size 100000 >"$dir/load.txt" 2>&1 &
    local load_pid=$!
    sleep 3
    local t0 t1
    t0=$(date +%s%N)
    ctl --command-timeout=600s defrag >&2
    t1=$(date +%s%N)
    defrag_ms=$(( (t1 - t0) / 1000000 ))
    wait "$load_pid"
    after=$(ctl endpoint status -w json | json_field "['dbSize']")
    local slowest rps stall
    slowest=$(grep -m1 'Slowest:' "$dir/load.txt" | awk '{print $2}')
    rps=$(grep -m1 'Requests/sec:' "$dir/load.txt" | awk '{print $2}')
    stall=$(grep -o '"write_stall":"[^"]*"' "$dir/server.log" | tail -1 | cut -d'"' -f4 || true)
    [ -n "$stall" ] || stall="whole defrag"
    echo "| $label | $((before / 1048576)) MiB → $((after / 1048576)) MiB | ${defrag_ms} ms | $slowest s | $rps | $stall |"
    stop_server
    rm -rf "$dir/data"
}

echo "| server | db size | defrag took | slowest put during load | load puts/s (target $RATE) | write stall |"
echo "|---|---|---|---|---|---|"
run "etcd 3.4" "$ETCD_BIN"
run "rsetcd" "$OURS_ETCD"
