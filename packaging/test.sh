#!/usr/bin/env bash
# packaging/test.sh: the packages tested as a user uses them, in a booted
# systemd. Builds the .deb and .rpm (packaging/build-packages.sh), boots a
# Debian bookworm with systemd in systemd-nspawn (no network), and for each
# package: install -> systemctl start (returns after READY=1) -> is-active ->
# systemd-analyze verify -> /health, /metrics, /version -> edit
# /etc/etcd/etcd.conf and restart -> the backup timer fires -> the snapshot is
# read by etcdutl and restored into a new data dir -> reload -> purge/erase.
#
# Usage: packaging/test.sh [--no-build] [deb|rpm ...]   (as root)
#   --no-build   test the packages already in $PKG_DIR
#   PKG_DIR      where the packages are (default target/packages)
#
# The Debian root filesystem is cached in target/packaging-test/ as a
# tarball (debootstrap takes 1.5-3 minutes); delete it to rebuild.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$repo/target/packaging-test
pkg_dir=${PKG_DIR:-$repo/target/packages}
include=systemd,systemd-sysv,dbus,curl,ca-certificates,iproute2,procps
cache=$work/bookworm-minbase-$(echo "$include" | sha1sum | cut -c1-8).tar.zst
rootfs=$work/rootfs
started=$SECONDS

log() { printf '\n== [%3ds] %s\n' $((SECONDS - started)) "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}

build=1
flows=()
for arg in "$@"; do
    case $arg in
    --no-build) build=0 ;;
    deb | rpm) flows+=("$arg") ;;
    *) fail "unknown argument $arg (usage: $0 [--no-build] [deb|rpm ...])" ;;
    esac
done
[ ${#flows[@]} -gt 0 ] || flows=(deb rpm)
[ "$(id -u)" = 0 ] || fail "run as root (debootstrap and systemd-nspawn need it)"

# --- host tools --------------------------------------------------------------
need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v rpm >/dev/null || need+=(rpm)
command -v zstd >/dev/null || need+=(zstd)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get install -y -o DPkg::Lock::Timeout=300 "${need[@]}" >/dev/null
fi

# --- the packages ------------------------------------------------------------
if [ $build = 1 ]; then
    log "building packages (packaging/build-packages.sh)"
    "$repo/packaging/build-packages.sh"
fi
deb=$(find "$pkg_dir" -maxdepth 1 -name '*.deb' 2>/dev/null | sort | head -n1 || true)
rpm=$(find "$pkg_dir" -maxdepth 1 -name '*.rpm' ! -name '*.src.rpm' 2>/dev/null | sort | head -n1 || true)

# --- the root filesystem -----------------------------------------------------
mkdir -p "$work"
if [ ! -f "$cache" ]; then
    log "debootstrap bookworm (cached afterwards in $cache)"
    tmp=$work/rootfs-build
    rm -rf "$tmp"
    debootstrap --variant=minbase --include="$include" bookworm "$tmp" \
        http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
        fail "debootstrap failed, see $work/debootstrap.log"
    # debootstrap leaves no hosts file, and the daemon resolves localhost.
    printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' >"$tmp/etc/hosts"
    # The container has no network: Debian's rpm (for the .rpm flow) is
    # downloaded now and installed from apt's cache inside.
    cp /etc/resolv.conf "$tmp/etc/resolv.conf"
    chroot "$tmp" apt-get install -y --download-only rpm >>"$work/debootstrap.log" 2>&1 ||
        fail "downloading rpm into the root filesystem failed, see $work/debootstrap.log"
    tar -C "$tmp" --numeric-owner -I 'zstd -T0 -3' -cf "$cache.part" .
    mv "$cache.part" "$cache"
    rm -rf "$tmp"
fi
# The unpacked tree is never written to: containers boot with
# --volatile=overlay, so each boot starts from the same clean system.
if [ ! -f "$rootfs/.unpacked-$(basename "$cache")" ]; then
    log "unpacking $cache"
    rm -rf "$rootfs"
    mkdir -p "$rootfs"
    tar -C "$rootfs" --numeric-owner -I zstd -xf "$cache"
    touch "$rootfs/.unpacked-$(basename "$cache")"
fi

# --- one booted container ----------------------------------------------------
nspawn_pid=
init_pid=
machine=

boot() {
    machine=rsetcd-pkgtest-$$-$1
    local pkgs
    pkgs=$(mktemp -d "$work/pkgs.XXXXXX")
    cp "$2" "$pkgs/"
    systemd-nspawn -D "$rootfs" -b -M "$machine" --register=no --keep-unit \
        --private-network --console=passive --volatile=overlay \
        --bind-ro="$pkgs:/pkgs" >"$work/$1-console.log" 2>&1 &
    nspawn_pid=$!
    local deadline=$((SECONDS + 60))
    while :; do
        [ $SECONDS -lt $deadline ] || fail "container did not boot in 60 s, see $work/$1-console.log"
        kill -0 "$nspawn_pid" 2>/dev/null || fail "systemd-nspawn exited, see $work/$1-console.log"
        init_pid=$(pgrep -P "$nspawn_pid" | head -n1 || true)
        if [ -n "$init_pid" ] && [ -S "/proc/$init_pid/root/run/systemd/private" ]; then
            break
        fi
        sleep 0.2
    done
    local state
    state=$(in_ct timeout 120 systemctl is-system-running --wait || true)
    if [ "$state" != running ]; then
        in_ct systemctl --failed --no-pager || true
        fail "container state is '$state', not running"
    fi
}

# Runs a command inside the container, as root, with a clean environment.
in_ct() {
    nsenter -t "$init_pid" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 SYSTEMD_PAGER= "$@"
}

teardown() {
    [ -n "$nspawn_pid" ] || return 0
    if kill -0 "$nspawn_pid" 2>/dev/null; then
        if [ -n "$init_pid" ]; then
            in_ct systemctl poweroff --no-block >/dev/null 2>&1 || true
        fi
        for _ in $(seq 1 100); do
            kill -0 "$nspawn_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -TERM "$nspawn_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$nspawn_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$nspawn_pid" 2>/dev/null || true
    fi
    wait "$nspawn_pid" 2>/dev/null || true
    rm -rf "$work"/pkgs.*
    nspawn_pid=
    init_pid=
}
trap teardown EXIT
trap 'exit 130' INT TERM

# --- what a user does --------------------------------------------------------

# Polls `cmd` (a shell snippet run in the container) for up to $1 seconds.
wait_in_ct() {
    local seconds=$1
    shift
    local deadline=$((SECONDS + seconds))
    until in_ct sh -c "$*" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.5
    done
}

expect_contains() { # what, haystack, needle
    case $2 in
    *"$3"*) ;;
    *) fail "$1: expected '$3' in: $2" ;;
    esac
}

user_flow() {
    local kind=$1

    log "$kind: etcd starts; systemctl start returns once etcd is serving (READY=1)"
    in_ct systemctl stop etcd
    in_ct systemctl start etcd
    # No retries: a Type=notify unit is started only after READY=1.
    [ "$(in_ct systemctl is-active etcd)" = active ] || fail "etcd is not active after start"
    local health
    health=$(in_ct curl -fsS http://127.0.0.1:2379/health) || fail "/health right after start failed"
    expect_contains /health "$health" '"health":"true"'

    log "$kind: man pages and shell completions are installed and load"
    local bin
    for bin in etcd etcdctl etcdutl; do
        in_ct sh -c "ls /usr/share/man/man1/$bin.1*" >/dev/null 2>&1 || fail "no man page for $bin"
        in_ct bash -c "source /usr/share/bash-completion/completions/$bin && complete -p $bin" >/dev/null ||
            fail "the bash completion of $bin does not load"
    done

    log "$kind: the operators' guide, the alert rules and the dashboard are installed"
    in_ct test -s /usr/share/doc/rsetcd/operations.md || fail "no /usr/share/doc/rsetcd/operations.md"
    in_ct test -s /usr/share/doc/rsetcd/prometheus/etcd-alerts.yaml ||
        fail "no /usr/share/doc/rsetcd/prometheus/etcd-alerts.yaml"
    in_ct test -s /usr/share/doc/rsetcd/grafana/rsetcd.json || fail "no /usr/share/doc/rsetcd/grafana/rsetcd.json"

    log "$kind: systemd-analyze verify of the units prints nothing"
    local units=() unit
    for unit in etcd.service etcd-backup.service etcd-backup.timer; do
        units+=("$(in_ct systemctl show -P FragmentPath "$unit")")
    done
    local verify
    # --man=no: minbase has no man(1) to look up Documentation=man:...;
    # the pages themselves were checked above.
    verify=$(in_ct systemd-analyze verify --man=no "${units[@]}" 2>&1) || fail "systemd-analyze verify failed: $verify"
    [ -z "$verify" ] || fail "systemd-analyze verify ${units[*]} printed: $verify"

    log "$kind: /health, /metrics, /version"
    expect_contains /metrics "$(in_ct curl -fsS http://127.0.0.1:2379/metrics)" etcd_server_has_leader
    expect_contains /version "$(in_ct curl -fsS http://127.0.0.1:2379/version)" '"etcdserver":'
    in_ct etcdctl put pkgtest-before-backup yes >/dev/null

    log "$kind: no file or directory etcd wrote is readable by other users"
    local wide
    wide=$(in_ct find /var/lib/etcd -perm /077 -printf '%m %p\n')
    [ -z "$wide" ] || fail "wider than 0700/0600 under /var/lib/etcd: $wide"

    log "$kind: a metrics URL added to /etc/etcd/etcd.conf is served after restart"
    in_ct curl -fsS http://127.0.0.1:2381/metrics >/dev/null 2>&1 && fail "2381 serves before the edit"
    in_ct sh -c 'echo ETCD_LISTEN_METRICS_URLS="http://127.0.0.1:2381" >>/etc/etcd/etcd.conf'
    in_ct systemctl restart etcd
    expect_contains "/metrics on 2381" "$(in_ct curl -fsS http://127.0.0.1:2381/metrics)" etcd_server_has_leader

    log "$kind: the backup timer, made to fire now, leaves a snapshot etcdutl reads"
    in_ct mkdir -p /etc/systemd/system/etcd-backup.timer.d
    in_ct sh -c 'printf "[Timer]\nOnCalendar=\nOnActiveSec=2s\nAccuracySec=1s\nRandomizedDelaySec=0\n" >/etc/systemd/system/etcd-backup.timer.d/now.conf'
    in_ct systemctl daemon-reload
    [ "$(in_ct systemctl is-enabled etcd-backup.timer)" = enabled ] || fail "etcd-backup.timer is not enabled"
    in_ct systemctl restart etcd-backup.timer
    wait_in_ct 60 'ls /var/backups/etcd/*.db' || {
        in_ct journalctl -u etcd-backup.service --no-pager | tail -n 20
        fail "no snapshot in /var/backups/etcd after 60 s"
    }
    # shellcheck disable=SC2016 # expanded in the container
    wait_in_ct 30 '[ "$(systemctl show -P ActiveState etcd-backup.service)" != activating ]' || true
    [ "$(in_ct systemctl show -P Result etcd-backup.service)" = success ] ||
        fail "etcd-backup.service result: $(in_ct systemctl show -P Result etcd-backup.service)"
    local snapshot status
    snapshot=$(in_ct sh -c 'ls -1t /var/backups/etcd/*.db | head -n1')
    status=$(in_ct etcdutl snapshot status "$snapshot" -w json) || fail "etcdutl snapshot status $snapshot failed"
    expect_contains "snapshot status" "$status" '"totalKey":'
    # etcd's format (a bbolt file: its meta magic 0xED0CDAED at byte 16)
    [ "$(in_ct od -An -tx1 -j16 -N4 "$snapshot" | tr -d ' \n')" = edda0ced ] ||
        fail "the backup $snapshot is not in etcd's snapshot format"
    echo "snapshot $snapshot: $status"
    in_ct etcdctl put pkgtest-after-backup yes >/dev/null

    log "$kind: the snapshot restored into a new data dir, etcd started from it"
    in_ct systemctl stop etcd
    in_ct etcdutl snapshot restore "$snapshot" --data-dir /var/lib/etcd/restored.etcd \
        --name default --initial-cluster default=http://localhost:2380 \
        --initial-advertise-peer-urls http://localhost:2380 >/dev/null 2>&1 ||
        fail "etcdutl snapshot restore failed"
    in_ct chown -R etcd:etcd /var/lib/etcd/restored.etcd
    in_ct sh -c 'echo ETCD_DATA_DIR="/var/lib/etcd/restored.etcd" >>/etc/etcd/etcd.conf'
    in_ct systemctl start etcd
    [ "$(in_ct etcdctl get --print-value-only pkgtest-before-backup)" = yes ] ||
        fail "the restored member lacks the key written before the backup"
    [ -z "$(in_ct etcdctl get --print-value-only pkgtest-after-backup)" ] ||
        fail "the restored member has a key written after the backup"

    log "$kind: systemctl reload etcd re-reads etcd.conf in the same process"
    local pid_before pid_after
    pid_before=$(in_ct systemctl show -P MainPID etcd)
    in_ct sh -c 'echo ETCD_LOG_LEVEL="debug" >>/etc/etcd/etcd.conf'
    in_ct systemctl reload etcd
    local reloaded=
    for _ in $(seq 50); do
        if in_ct journalctl -u etcd --no-pager -o cat | grep 'changed the log level' | grep -q '"current":"debug"'; then
            reloaded=1
            break
        fi
        sleep 0.2
    done
    [ -n "$reloaded" ] || fail "the log level set in etcd.conf did not apply on reload: $(in_ct journalctl -u etcd --no-pager -o cat | tail -n 20)"
    pid_after=$(in_ct systemctl show -P MainPID etcd)
    [ "$pid_before" = "$pid_after" ] || fail "reload replaced the process ($pid_before -> $pid_after)"
    [ "$(in_ct systemctl is-active etcd)" = active ] || fail "etcd is not active after reload"
    in_ct curl -fsS http://127.0.0.1:2379/health >/dev/null || fail "/health after reload failed"
}

after_removal() {
    local kind=$1
    [ "$(in_ct systemctl is-active etcd)" != active ] || fail "$kind: etcd still runs after removal"
    in_ct test ! -e /usr/bin/etcd || fail "$kind: /usr/bin/etcd left behind"
    in_ct systemctl cat etcd.service >/dev/null 2>&1 && fail "$kind: etcd.service left behind"
    return 0
}

deb_flow() {
    [ -n "$deb" ] || fail "no .deb in $pkg_dir"
    log "deb: booting a container with $(basename "$deb")"
    boot deb "$deb"
    log "deb: apt-get install ./$(basename "$deb")"
    in_ct apt-get install -y "/pkgs/$(basename "$deb")" >"$work/deb-install.log" 2>&1 ||
        fail "apt-get install failed, see $work/deb-install.log"
    # dh_installsystemd's behaviour: started and enabled at install, the
    # backup timer enabled but not fired.
    [ "$(in_ct systemctl is-active etcd)" = active ] || fail "etcd not started by the install"
    [ "$(in_ct systemctl is-enabled etcd)" = enabled ] || fail "etcd not enabled by the install"
    in_ct sh -c 'ls /var/backups/etcd/*.db' >/dev/null 2>&1 && fail "a backup ran at install"
    user_flow deb
    log "deb: apt-get purge"
    local name
    name=$(dpkg-deb -f "$deb" Package)
    in_ct apt-get purge -y "$name" >"$work/deb-purge.log" 2>&1 || fail "purge failed, see $work/deb-purge.log"
    after_removal deb
    in_ct test ! -e /etc/etcd || fail "deb: /etc/etcd left after purge"
    teardown
}

rpm_flow() {
    [ -n "$rpm" ] || fail "no .rpm in $pkg_dir"
    log "rpm: booting a container with $(basename "$rpm")"
    boot rpm "$rpm"
    log "rpm: installing Debian's rpm (from apt's cache), then rpm -i --nodeps"
    in_ct apt-get install -y --no-download rpm >"$work/rpm-install.log" 2>&1 ||
        fail "installing rpm failed, see $work/rpm-install.log"
    in_ct rpm -i --nodeps "/pkgs/$(basename "$rpm")" >>"$work/rpm-install.log" 2>&1 ||
        fail "rpm -i failed, see $work/rpm-install.log"
    [ "$(in_ct systemctl is-enabled etcd-backup.timer)" = enabled ] || fail "etcd-backup.timer not enabled by the install"
    in_ct systemctl enable --now etcd >/dev/null 2>&1
    user_flow rpm
    log "rpm: rpm -e"
    local name
    name=$(rpm -qp --qf '%{NAME}' "$rpm")
    in_ct rpm -e "$name" >"$work/rpm-erase.log" 2>&1 || fail "rpm -e failed, see $work/rpm-erase.log"
    after_removal rpm
    teardown
}

for flow in "${flows[@]}"; do
    "${flow}_flow"
done
log "packaging test passed (${flows[*]})"
