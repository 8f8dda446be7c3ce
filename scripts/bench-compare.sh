#!/usr/bin/env bash
# Compares real etcd 3.4 with rsetcd on the same load, using rsetcd-bench
# (etcd's tools/benchmark command line). Each server runs as a single member
# on free loopback ports in its own temp dir, one at a time, started fresh for
# every round; rounds alternate etcd, rsetcd, etcd, rsetcd, ... and the table
# shows medians. Prints a Markdown table on stdout; progress goes to stderr.
#
# Usage: scripts/bench-compare.sh [--rounds N] [--quick] [--no-build]
#                                 [--ours PATH] [--etcd PATH]
#   --ours PATH   server binary for the rsetcd column (default
#                 target/release/etcd; env OURS_ETCD). Pointing it at
#                 /usr/bin/etcd compares etcd with itself, to test the script.
#   --etcd PATH   reference server (default /usr/bin/etcd; env ETCD_BIN)
#   --quick       totals divided by 10 (smoke test)
#   --no-build    use the existing release binaries
# If etcd's own benchmark is built (/tmp/etcd-bench-build/benchmark, env
# ETCD_BENCHMARK; see ../shared/tools/etcd-benchmark/build.sh), the matrix is
# also run once against etcd 3.4 with it, as a cross-check of rsetcd-bench.
#
# Only processes this script starts are ever killed (by PID).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
OURS_ETCD=${OURS_ETCD:-$REPO/target/release/etcd}
ETCD_BENCHMARK=${ETCD_BENCHMARK:-/tmp/etcd-bench-build/benchmark}
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
SCALE=1
BUILD=1

while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --rounds=*) ROUNDS=${1#*=}; shift ;;
        --ours) OURS_ETCD=$2; shift 2 ;;
        --ours=*) OURS_ETCD=${1#*=}; shift ;;
        --etcd) ETCD_BIN=$2; shift 2 ;;
        --etcd=*) ETCD_BIN=${1#*=}; shift ;;
        --quick) SCALE=10; shift ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

# Servers run from their temp dirs, so binary paths must be absolute.
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
OURS_ETCD=$(absolute "$OURS_ETCD")
ETCD_BIN=$(absolute "$ETCD_BIN")
BENCH=$REPO/target/release/rsetcd-bench
log() { echo "bench-compare: $*" >&2; }

if [ "$BUILD" = 1 ]; then
    log "building release binaries"
    (cd "$REPO" && cargo build --release --bin rsetcd-bench) >&2
    if [ "$OURS_ETCD" = "$REPO/target/release/etcd" ]; then
        (cd "$REPO" && cargo build --release --bin etcd) >&2 \
            || log "warning: building our etcd failed; its column will be n/a"
    fi
fi
[ -x "$BENCH" ] || { log "missing $BENCH (run without --no-build)"; exit 1; }
[ -x "$ETCD_BIN" ] || { log "missing reference etcd $ETCD_BIN"; exit 1; }

# Workload matrix: name | rsetcd-bench/benchmark arguments.
WORKLOADS=(
    "put, 1 client|--conns 1 --clients 1 put --total $((2000 / SCALE))"
    "put, 100 clients / 10 conns, 100k keys, 256 B values|--conns 10 --clients 100 put --total $((20000 / SCALE)) --key-space-size 100000 --key-size 8 --val-size 256"
    "range 1 key, linearizable, 100 clients / 10 conns|--conns 10 --clients 100 range foo --consistency l --total $((20000 / SCALE))"
    "range 1 key, serializable, 100 clients / 10 conns|--conns 10 --clients 100 range foo --consistency s --total $((20000 / SCALE))"
    "txn-put, 100 clients / 10 conns, 100k keys, 256 B values|--conns 10 --clients 100 txn-put --total $((20000 / SCALE)) --key-space-size 100000 --val-size 256"
    # events delivered per second (its p99: put sent to event received)
    "watch: 10,000 watchers over 100 streams on 1,000 keys, 100 put clients, events/s|--conns 10 --clients 100 watch --streams 100 --watch-per-stream 100 --watched-key-total 1000 --key-space-size 1000 --sequential-keys --put-total $((20000 / SCALE))"
    # --compare is ours (etcd's benchmark has none: its cross-check says n/a)
    "txn (compare + put), 100 clients / 10 conns, 100k keys, 256 B values|--conns 10 --clients 100 txn-put --compare --total $((20000 / SCALE)) --key-space-size 100000 --val-size 256"
)

WORKDIR=$(mktemp -d /tmp/bench-compare.XXXXXX)
SERVER_PID=""
SERVER_ENDPOINT=""

stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
cleanup() { stop_server; rm -rf "$WORKDIR"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

port_is_free() { [ -z "$(ss -Htln "sport = :$1" 2>/dev/null)" ]; }

random_free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        if port_is_free "$port"; then echo "$port"; return; fi
    done
}

# start_server LABEL BINARY: starts a fresh single-member server; sets
# SERVER_PID and SERVER_ENDPOINT. Returns 1 if it never becomes ready.
start_server() {
    local label=$1 bin=$2 attempt client peer dir
    for attempt in 1 2 3; do
        client=$(random_free_port)
        peer=$(random_free_port)
        [ "$client" != "$peer" ] || continue
        dir=$(mktemp -d "$WORKDIR/$label.XXXX")
        # --flag=value form (accepted by every flag parser); run inside the
        # temp dir so nothing can land in the caller's directory.
        (cd "$dir" && exec "$bin" --name=bench --data-dir="$dir/data" \
            --listen-client-urls="http://127.0.0.1:$client" \
            --advertise-client-urls="http://127.0.0.1:$client" \
            --listen-peer-urls="http://127.0.0.1:$peer" \
            --initial-advertise-peer-urls="http://127.0.0.1:$peer" \
            --initial-cluster="bench=http://127.0.0.1:$peer" \
            >"$dir/server.log" 2>&1) &
        SERVER_PID=$!
        SERVER_ENDPOINT="127.0.0.1:$client"
        for _ in $(seq 100); do
            if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
            if "$BENCH" --endpoints "$SERVER_ENDPOINT" --dial-timeout 1s --json \
                range health --total 1 2>/dev/null | grep -q '"requests":1,'; then
                # The key the range workloads read.
                if [ -x "$ETCDCTL" ]; then
                    ETCDCTL_API=3 "$ETCDCTL" --endpoints "$SERVER_ENDPOINT" \
                        put foo "$(head -c 256 /dev/zero | tr '\0' v)" >/dev/null
                fi
                return 0
            fi
            sleep 0.1
        done
        log "$label did not become ready (attempt $attempt); log tail:"
        tail -n 5 "$dir/server.log" >&2 || true
        stop_server
    done
    return 1
}

# run_bench ARGS...: runs rsetcd-bench, prints "req_per_sec p99_secs errors"
# (nothing if it failed).
run_bench() {
    local out
    out=$("$BENCH" --endpoints "$SERVER_ENDPOINT" --json "$@") || return 0
    # (the last JSON line: watch prints its creation summary first)
    echo "$out" | grep '^{' | tail -n 1 | jq -r '"\(.requests_per_sec // 0) \(.p99_secs // 0) \(.errors)"'
}

# Results: $WORKDIR/results/<server>.<workload index> holds "rps p99" lines.
mkdir -p "$WORKDIR/results"
run_matrix() {
    local server=$1 i name args rps p99 errors
    for i in "${!WORKLOADS[@]}"; do
        name=${WORKLOADS[$i]%%|*}
        args=${WORKLOADS[$i]#*|}
        rps="" p99="" errors=""
        # shellcheck disable=SC2086 # $args is a list of flags
        read -r rps p99 errors < <(run_bench $args) || true
        if [ -z "$rps" ]; then
            log "  $server | $name: rsetcd-bench failed"
            continue
        fi
        log "  $server | $name: $rps req/s, p99 $p99 s, errors $errors"
        [ "$errors" = 0 ] || log "  warning: $errors errors in $server | $name"
        echo "$rps $p99" >>"$WORKDIR/results/$server.$i"
    done
}

OURS_OK=1
for round in $(seq "$ROUNDS"); do
    log "round $round/$ROUNDS: etcd 3.4 ($ETCD_BIN)"
    start_server etcd "$ETCD_BIN" || { log "reference etcd failed to start"; exit 1; }
    run_matrix etcd
    stop_server
    if [ "$OURS_OK" = 1 ]; then
        log "round $round/$ROUNDS: rsetcd ($OURS_ETCD)"
        if [ -x "$OURS_ETCD" ] && start_server rsetcd "$OURS_ETCD"; then
            run_matrix rsetcd
            stop_server
        else
            log "rsetcd ($OURS_ETCD) does not serve; its column will be n/a"
            OURS_OK=0
        fi
    fi
done

# median COLUMN FILE: median of a column (1 = req/s, 2 = p99 secs).
median() {
    [ -f "$2" ] || { echo ""; return; }
    awk -v c="$1" '{print $c}' "$2" | sort -g | awk '
        { v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
fmt_rps() { [ -n "$1" ] && printf '%.0f' "$1" || printf 'n/a'; }
fmt_ms() { [ -n "$1" ] && awk -v s="$1" 'BEGIN { printf "%.2f ms", s * 1000 }' || printf 'n/a'; }

echo
echo "Medians of $ROUNDS rounds (rsetcd-bench; rsetcd = $OURS_ETCD)."
echo
echo "| workload | etcd 3.4 req/s | rsetcd req/s | ratio | etcd p99 | rsetcd p99 |"
echo "|---|---:|---:|---:|---:|---:|"
for i in "${!WORKLOADS[@]}"; do
    name=${WORKLOADS[$i]%%|*}
    e_rps=$(median 1 "$WORKDIR/results/etcd.$i")
    e_p99=$(median 2 "$WORKDIR/results/etcd.$i")
    o_rps=$(median 1 "$WORKDIR/results/rsetcd.$i")
    o_p99=$(median 2 "$WORKDIR/results/rsetcd.$i")
    ratio=n/a
    if [ -n "$o_rps" ] && [ -n "$e_rps" ]; then
        ratio=$(awk -v o="$o_rps" -v e="$e_rps" 'BEGIN { if (e > 0) printf "%.2f", o / e; else print "n/a" }')
    fi
    echo "| $name | $(fmt_rps "$e_rps") | $(fmt_rps "$o_rps") | $ratio | $(fmt_ms "$e_p99") | $(fmt_ms "$o_p99") |"
done

# Cross-check: the same matrix against etcd 3.4 with etcd's own benchmark.
if [ -x "$ETCD_BENCHMARK" ]; then
    log "cross-check: etcd 3.4 with rsetcd-bench and with etcd's benchmark"
    start_server etcd "$ETCD_BIN" || { log "reference etcd failed to start"; exit 1; }
    echo
    echo "Cross-check, one run each against etcd 3.4: rsetcd-bench vs etcd's tools/benchmark."
    echo
    echo "| workload | rsetcd-bench req/s | benchmark req/s | rsetcd-bench p99 | benchmark p99 |"
    echo "|---|---:|---:|---:|---:|"
    for i in "${!WORKLOADS[@]}"; do
        name=${WORKLOADS[$i]%%|*}
        args=${WORKLOADS[$i]#*|}
        rps="" p99=""
        # shellcheck disable=SC2086
        read -r rps p99 _ < <(run_bench $args) || true
        # shellcheck disable=SC2086
        # (a flag etcd's tool lacks fails it: that row says n/a)
        theirs=$("$ETCD_BENCHMARK" --endpoints "$SERVER_ENDPOINT" --precise $args 2>/dev/null | tr '\r' '\n' || true)
        t_rps=$(echo "$theirs" | awk -F'\t' '/Requests\/sec:/ { print $2 }' | tail -n 1)
        t_p99=$(echo "$theirs" | awk '$1 == "99%" { print $3 }' | tail -n 1)
        echo "| $name | $(fmt_rps "$rps") | $(fmt_rps "$t_rps") | $(fmt_ms "$p99") | $(fmt_ms "$t_p99") |"
    done
    stop_server
fi
