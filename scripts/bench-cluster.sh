#!/usr/bin/env bash
# 3-member clusters side by side: rsetcd and etcd 3.4, each as three
# processes on free loopback ports in one temp dir, started fresh for every
# round; rounds alternate etcd, rsetcd, ... Load from rsetcd-bench with
# connections spread over the three members (followers forward writes to
# the leader and serve linearizable reads by ReadIndex, as in etcd).
# Prints a Markdown table of medians (requests/s) and ratios on stdout.
#
# Usage: scripts/bench-cluster.sh [--rounds N] [--quick]
# Only processes this script starts are killed (by PID).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=2
SCALE=1
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --quick) SCALE=10; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
OURS=$REPO/target/release/etcd
ETCD=${ETCD_BIN:-/usr/bin/etcd}
BENCH=$REPO/target/release/rsetcd-bench
(cd "$REPO" && cargo build --release --bin etcd --bin rsetcd-bench) >&2

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# start_cluster BIN DIR -> sets ENDPOINTS
start_cluster() {
    local bin=$1 dir=$2 initial="" i
    local -a cp pp
    for i in 1 2 3; do cp[$i]=$(free_port); pp[$i]=$(free_port); done
    for i in 1 2 3; do initial+="m$i=http://127.0.0.1:${pp[$i]},"; done
    initial=${initial%,}
    ENDPOINTS=""
    for i in 1 2 3; do
        "$bin" --name "m$i" --data-dir "$dir/m$i" \
            --listen-client-urls "http://127.0.0.1:${cp[$i]}" --advertise-client-urls "http://127.0.0.1:${cp[$i]}" \
            --listen-peer-urls "http://127.0.0.1:${pp[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${pp[$i]}" \
            --initial-cluster "$initial" --initial-cluster-token bench >"$dir/m$i.log" 2>&1 &
        PIDS+=($!)
        ENDPOINTS+="127.0.0.1:${cp[$i]},"
    done
    ENDPOINTS=${ENDPOINTS%,}
    for _ in $(seq 100); do
        # healthy, then a few seconds to settle (connections, first elections)
        ETCDCTL_API=3 /usr/bin/etcdctl --endpoints="$ENDPOINTS" endpoint health >/dev/null 2>&1 && sleep 3 && return 0
        sleep 0.2
    done
    echo "cluster did not become healthy: $dir" >&2; return 1
}

rate() { grep -E 'Requests/sec' | awk '{print $2}'; }

run_matrix() { # prints "put1 put100 rangeL"
    local e=$1
    local a b c
    a=$("$BENCH" --endpoints="$e" --conns=1 --clients=1 put --key-size=8 --val-size=256 --total=$((2000/SCALE)) --key-space-size=100000 2>&1 | rate)
    b=$("$BENCH" --endpoints="$e" --conns=10 --clients=100 put --key-size=8 --val-size=256 --total=$((20000/SCALE)) --key-space-size=100000 2>&1 | rate)
    c=$("$BENCH" --endpoints="$e" --conns=10 --clients=100 range foo --consistency=l --total=$((20000/SCALE)) 2>&1 | rate)
    echo "$a $b $c"
}

declare -A RES
for r in $(seq "$ROUNDS"); do
    for which in etcd ours; do
        dir=$(mktemp -d)
        bin=$ETCD; [ "$which" = ours ] && bin=$OURS
        start_cluster "$bin" "$dir"
        out=$(run_matrix "$ENDPOINTS")
        echo "round $r $which: $out" >&2
        RES[$which]+="$out"$'\n'
        cleanup; PIDS=(); wait 2>/dev/null || true
        rm -rf "$dir"
    done
done

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "| load (3 members) | etcd 3.4 req/s | rsetcd req/s | rsetcd / etcd |"
echo "|---|---:|---:|---:|"
names=("put, 1 client" "put, 100 clients" "range l, 100 clients")
for col in 1 2 3; do
    e=$(printf '%s' "${RES[etcd]}" | awk -v c=$col 'NF{print $c}' | median)
    o=$(printf '%s' "${RES[ours]}" | awk -v c=$col 'NF{print $c}' | median)
    ratio=$(awk -v o="$o" -v e="$e" 'BEGIN{printf "%.2f", o/e}')
    printf '| %s | %.0f | %.0f | %s× |\n' "${names[$((col-1))]}" "$e" "$o" "$ratio"
done
