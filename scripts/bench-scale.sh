#!/usr/bin/env bash
# Scale rows of issue 18: etcd 3.4 vs rsetcd holding KEYS keys (default
# 1,000,000; 8 B keys, 256 B values), single member on free loopback ports,
# each run in its own temp dir, rounds alternating etcd, rsetcd, etcd, ...
# Per round and server:
#   1. start fresh, load KEYS distinct keys (rsetcd-bench put --sequential-keys
#      --key-space-size=KEYS --total=KEYS), check the count;
#   2. resident memory from /proc/PID/status: VmRSS, VmHWM, and VmRSS split
#      into RssAnon and RssFile (mapped pages of the db file: page cache);
#   3. restart: kill -9, start again on the same data dir and ports, time from
#      the exec to the first successful linearizable read (a tight loop of a
#      1-request rsetcd-bench range --consistency=l); VmRSS/VmHWM once ready;
#   4. etcdctl compaction --physical <current revision>, etcdctl defrag, then
#      the size of member/snap/db (apparent and allocated) and endpoint
#      status's dbSize / dbSizeInUse;
#   5. LEASES leases (default 100,000) granted by 10 clients and renewed in
#      turn on one keep-alive stream each (rsetcd-bench lease-keepalive
#      --leases), 2 renewals per lease: the server's CPU time per renewal
#      (utime + stime from /proc) and the renewal rate.
# Both servers get --quota-backend-bytes=8 GiB and the same --snapshot-count.
# Prints a Markdown table of medians and ratios (rsetcd / etcd) on stdout;
# progress on stderr.
#
# Usage: scripts/bench-scale.sh [--rounds N] [--quick] [--keys N] [--leases N] [--no-build]
#                               [--ours PATH] [--etcd PATH] [--bench PATH]
#   --keys N      keys to load (default 1000000); --quick divides it by 100
#   --ours PATH   server for the rsetcd column (default target/release/etcd;
#                 env OURS_ETCD)
#   --etcd PATH   reference server (default /usr/bin/etcd; env ETCD_BIN)
#   --bench PATH  load tool (default target/release/rsetcd-bench; env BENCH)
#   --no-build    use the existing release binaries
# Only processes this script starts are ever killed (by PID).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
KEYS=1000000
LEASES=100000
SCALE=1
BUILD=1
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
OURS_ETCD=${OURS_ETCD:-$REPO/target/release/etcd}
BENCH=${BENCH:-$REPO/target/release/rsetcd-bench}
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
QUOTA=$((8 * 1024 * 1024 * 1024))
SNAPSHOT_COUNT=${SNAPSHOT_COUNT:-100000}   # the default of both

while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --rounds=*) ROUNDS=${1#*=}; shift ;;
        --keys) KEYS=$2; shift 2 ;;
        --keys=*) KEYS=${1#*=}; shift ;;
        --leases) LEASES=$2; shift 2 ;;
        --leases=*) LEASES=${1#*=}; shift ;;
        --ours) OURS_ETCD=$2; shift 2 ;;
        --ours=*) OURS_ETCD=${1#*=}; shift ;;
        --etcd) ETCD_BIN=$2; shift 2 ;;
        --etcd=*) ETCD_BIN=${1#*=}; shift ;;
        --bench) BENCH=$2; shift 2 ;;
        --bench=*) BENCH=${1#*=}; shift ;;
        --quick) SCALE=100; shift ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
KEYS=$((KEYS / SCALE))
LEASES=$((LEASES / SCALE))

# Servers run from their temp dirs, so binary paths must be absolute.
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
OURS_ETCD=$(absolute "$OURS_ETCD")
ETCD_BIN=$(absolute "$ETCD_BIN")
BENCH=$(absolute "$BENCH")
log() { echo "bench-scale: $*" >&2; }

if [ "$BUILD" = 1 ]; then
    log "building release binaries"
    if [ "$BENCH" = "$REPO/target/release/rsetcd-bench" ]; then
        (cd "$REPO" && cargo build --release --bin rsetcd-bench) >&2
    fi
    if [ "$OURS_ETCD" = "$REPO/target/release/etcd" ]; then
        (cd "$REPO" && cargo build --release --bin etcd) >&2
    fi
fi
for b in "$BENCH" "$ETCD_BIN" "$OURS_ETCD" "$ETCDCTL"; do
    [ -x "$b" ] || { log "missing $b"; exit 1; }
done

WORKDIR=$(mktemp -d /tmp/bench-scale.XXXXXX)
mkdir -p "$WORKDIR/results"
SERVER_PID=""

stop_server() { # stop_server [-9]
    if [ -n "$SERVER_PID" ]; then
        if [ "${1:-}" != -9 ]; then
            kill "$SERVER_PID" 2>/dev/null || true
            for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        fi
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
ctl() { ETCDCTL_API=3 "$ETCDCTL" --endpoints="$EP" --command-timeout=10m "$@"; }
now_ms() { date +%s%3N; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
proc_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# launch DIR BIN: starts BIN on DIR/data with the ports in CLIENT/PEER.
launch() {
    local dir=$1 bin=$2
    (cd "$dir" && exec "$bin" --name=bench --data-dir="$dir/data" \
        --quota-backend-bytes="$QUOTA" --snapshot-count="$SNAPSHOT_COUNT" \
        --listen-client-urls="http://127.0.0.1:$CLIENT" \
        --advertise-client-urls="http://127.0.0.1:$CLIENT" \
        --listen-peer-urls="http://127.0.0.1:$PEER" \
        --initial-advertise-peer-urls="http://127.0.0.1:$PEER" \
        --initial-cluster="bench=http://127.0.0.1:$PEER" >>"$dir/server.log" 2>&1) &
    SERVER_PID=$!
}

# wait_ready: tight loop of one linearizable read; 0 once one succeeds.
wait_ready() {
    local deadline=$(( $(now_ms) + 600000 ))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        timeout 5 "$BENCH" --endpoints="$EP" --dial-timeout=1s --json \
            range k --consistency=l --total=1 2>/dev/null | grep -q '"requests":1,' && return 0
        sleep 0.005
    done
    return 1
}

record() { echo "$3" >>"$WORKDIR/results/$1.$2"; }   # record SERVER METRIC VALUE
record_mem() { # record_mem SERVER SUFFIX: VmRSS, VmHWM, RssAnon, RssFile (mapped file pages)
    local f
    for f in VmRSS VmHWM RssAnon RssFile; do record "$1" "$f$2" "$(proc_kib "$SERVER_PID" "$f")"; done
}

run() {
    local label=$1 bin=$2 dir out errors count t0 t1 rev status file rss
    dir=$(mktemp -d "$WORKDIR/$label.XXXX")
    CLIENT=$(free_port); PEER=$(free_port)
    while [ "$PEER" = "$CLIENT" ]; do PEER=$(free_port); done
    EP="127.0.0.1:$CLIENT"
    launch "$dir" "$bin"
    wait_ready || { log "$label did not start; log tail:"; tail -n 5 "$dir/server.log" >&2; return 1; }

    log "$label: loading $KEYS keys"
    t0=$(now_ms)
    out=$("$BENCH" --endpoints="$EP" --conns=10 --clients=100 --json put --total="$KEYS" \
        --key-space-size="$KEYS" --sequential-keys --key-size=8 --val-size=256 | grep '^{' | tail -n 1)
    t1=$(now_ms)
    [ -n "$out" ] || { log "$label: rsetcd-bench put failed"; return 1; }
    errors=$(echo "$out" | jq -r .errors)
    [ "$errors" = 0 ] || log "warning: $label: $errors put errors"
    record "$label" load_rate "$(awk -v n="$KEYS" -v ms=$((t1 - t0)) 'BEGIN { print n * 1000 / ms }')"
    sleep 1
    rss=$(proc_kib "$SERVER_PID" VmRSS)
    record_mem "$label" ""
    count=$(ctl get "" --from-key --limit=1 -w json | jq -r '.count')
    [ "$count" = "$KEYS" ] || log "warning: $label holds $count keys, not $KEYS"
    record "$label" db_loaded "$(stat -c %s "$dir/data/member/snap/db")"
    log "$label: loaded in $((t1 - t0)) ms ($count keys), VmRSS $rss kB"

    stop_server -9
    t0=$(now_ms)
    launch "$dir" "$bin"
    wait_ready || { log "$label did not restart; log tail:"; tail -n 5 "$dir/server.log" >&2; return 1; }
    t1=$(now_ms)
    record "$label" restart $((t1 - t0))
    rss=$(proc_kib "$SERVER_PID" VmRSS)
    record_mem "$label" _restart
    log "$label: restarted in $((t1 - t0)) ms, VmRSS $rss kB"

    rev=$(ctl endpoint status -w json | jq -r '.[0].Status.header.revision')
    t0=$(now_ms)
    ctl compaction --physical "$rev" >/dev/null && ctl defrag >/dev/null \
        || { log "$label: compaction or defrag failed"; return 1; }
    t1=$(now_ms)
    record "$label" compact_defrag $((t1 - t0))
    file="$dir/data/member/snap/db"
    record "$label" db_file "$(stat -c %s "$file")"
    record "$label" db_alloc "$(( $(stat -c %b "$file") * $(stat -c %B "$file") ))"
    status=$(ctl endpoint status -w json)
    record "$label" db_size "$(echo "$status" | jq -r '.[0].Status.dbSize')"
    record "$label" db_in_use "$(echo "$status" | jq -r '.[0].Status.dbSizeInUse // empty')"
    log "$label: compacted at $rev + defrag in $((t1 - t0)) ms; db $(stat -c %s "$file") B"

    out=$("$BENCH" --endpoints="$EP" --conns=10 --clients=10 --json lease-keepalive \
        --leases="$LEASES" --ttl=600 --total=$((LEASES * 2)) --server-pid="$SERVER_PID" | grep '^{')
    errors=$(echo "$out" | tail -n 2 | head -n 1 | jq -r .errors)
    [ "$errors" = 0 ] || log "warning: $label: $errors keep-alive errors"
    record "$label" lease_rate "$(echo "$out" | tail -n 2 | head -n 1 | jq -r .requests_per_sec)"
    record "$label" lease_cpu "$(echo "$out" | tail -n 1 | jq -r .server_cpu_per_request_us)"
    log "$label: $LEASES leases kept alive, $(echo "$out" | tail -n 1 | jq -r .server_cpu_per_request_us) µs CPU per renewal"
    stop_server
    rm -rf "$dir"
}

for round in $(seq "$ROUNDS"); do
    log "round $round/$ROUNDS: etcd 3.4 ($ETCD_BIN)"
    run etcd "$ETCD_BIN" || { log "reference etcd failed"; exit 1; }
    log "round $round/$ROUNDS: rsetcd ($OURS_ETCD)"
    run rsetcd "$OURS_ETCD" || { stop_server; log "rsetcd failed; its column will be n/a"; }
done

median() { # median SERVER METRIC
    local f="$WORKDIR/results/$1.$2"
    [ -s "$f" ] || { echo ""; return; }
    sort -g "$f" | awk '{ v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# fmt UNIT VALUE: kib -> MiB, b -> MiB, ms, rate
fmt() {
    [ -n "$2" ] || { printf 'n/a'; return; }
    case "$1" in
        kib) awk -v v="$2" 'BEGIN { printf "%.1f MiB", v / 1024 }' ;;
        b) echo "$(mib "$2") MiB" ;;
        ms) printf '%.0f ms' "$2" ;;
        rate) printf '%.0f puts/s' "$2" ;;
        rps) printf '%.0f /s' "$2" ;;
        us) printf '%.1f µs' "$2" ;;
    esac
}

ROWS=(
    "load: $KEYS puts, 100 clients / 10 conns|load_rate|rate|"
    "RSS after load (VmRSS)|VmRSS|kib|<= 0.5"
    "RSS after load: anonymous (RssAnon)|RssAnon|kib|"
    "RSS after load: mapped file pages (RssFile)|RssFile|kib|"
    "peak RSS after load (VmHWM)|VmHWM|kib|"
    "db file after load (member/snap/db)|db_loaded|b|"
    "restart (kill -9) until first linearizable read|restart|ms|<= 0.2"
    "RSS once restarted (VmRSS)|VmRSS_restart|kib|"
    "RSS once restarted: anonymous (RssAnon)|RssAnon_restart|kib|"
    "RSS once restarted: mapped file pages (RssFile)|RssFile_restart|kib|"
    "peak RSS once restarted (VmHWM)|VmHWM_restart|kib|"
    "compaction --physical + defrag|compact_defrag|ms|"
    "db file after compaction + defrag (size)|db_file|b|<= 1.0"
    "db file after compaction + defrag (allocated)|db_alloc|b|"
    "endpoint status dbSize|db_size|b|"
    "endpoint status dbSizeInUse|db_in_use|b|"
    "$LEASES leases kept alive by 10 clients: server CPU per keep-alive|lease_cpu|us|<= 0.5"
    "keep-alives answered per second|lease_rate|rps|"
)
echo
echo "Medians of $ROUNDS rounds; $KEYS keys (8 B keys, 256 B values); rsetcd = $OURS_ETCD."
echo
echo "| measure | etcd 3.4 | rsetcd | rsetcd / etcd | target |"
echo "|---|---:|---:|---:|---:|"
for row in "${ROWS[@]}"; do
    IFS='|' read -r name metric unit target <<<"$row"
    e=$(median etcd "$metric")
    o=$(median rsetcd "$metric")
    ratio=n/a
    if [ -n "$e" ] && [ -n "$o" ]; then
        ratio=$(awk -v o="$o" -v e="$e" 'BEGIN { if (e > 0) printf "%.2f", o / e; else print "n/a" }')
    fi
    echo "| $name | $(fmt "$unit" "$e") | $(fmt "$unit" "$o") | $ratio | ${target:--} |"
done
