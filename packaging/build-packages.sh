#!/bin/bash
# Builds the rsetcd .deb and .rpm from this tree.
#
#   packaging/build-packages.sh [deb|rpm|all] [--out DIR] [--no-build]
#
# `deb` builds only the .deb and needs only the deb tools, `rpm` only the
# .rpm and the rpm tools; `all` (the default) both.
#
# 1. cargo build --release of etcd, etcdctl and etcdutl (skipped with
#    --no-build: the binaries already in target/release are used);
# 2. man pages and shell completions with the gen-docs example
#    (packaging/README.md) when it exists, else a note and none;
# 3. `systemd-analyze verify` of the units (must print nothing);
# 4. the .deb with dpkg-deb from packaging/deb/, checked with lintian
#    (allow-list: packaging/deb/lintian-allow);
# 5. the .rpm with rpmbuild -bb from packaging/rpm/rsetcd.spec (which only
#    installs the files staged here), checked with rpmlint (allow-list:
#    packaging/rpm/rpmlint.toml) and for unexpanded macros in its scriptlets.
# Packages land in DIR (default target/packages). Any failure exits non-zero.
# RSETCD_PACKAGE_PROFILE=debug packages target/debug's binaries instead (CI
# does, to test the packaging without a second, release build).
# Needs: systemd (systemd-analyze) and binutils (strip); for the .deb
# dpkg-dev, fakeroot and lintian; for the .rpm rpm and rpmlint.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$repo/target/packages
build=1
kinds=all
while [ $# -gt 0 ]; do
    case $1 in
        --out) out=$2; shift 2 ;;
        --out=*) out=${1#--out=}; shift ;;
        --no-build) build=0; shift ;;
        -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
        deb | rpm | all) kinds=$1; shift ;;
        *) echo "build-packages.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

say() { echo "== $*"; }
die() { echo "build-packages.sh: error: $*" >&2; exit 1; }

want() { [ "$kinds" = all ] || [ "$kinds" = "$1" ]; }
need() { # package, tools...
    local package=$1 tool
    shift
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool is missing (apt-get install $package)"
    done
}
need systemd systemd-analyze
need binutils strip
if want deb; then
    need dpkg-dev dpkg-deb dpkg-shlibdeps dpkg
    need fakeroot fakeroot
    need lintian lintian
fi
if want rpm; then
    need rpm rpmbuild rpm
    need rpmlint rpmlint
fi

cd "$repo"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || die "no version in Cargo.toml"
release=1
profile=${RSETCD_PACKAGE_PROFILE:-release}
case $profile in
    release) cargo_profile=(--release); build_targets=() ;;
    # With the test targets: the binaries then get the features the test
    # build resolved (dev-dependencies included), so right after
    # `cargo test` nothing is compiled again (without them cargo rebuilds
    # the tree with other features: minutes of CI).
    debug) cargo_profile=(); build_targets=(--tests) ;;
    *) die "RSETCD_PACKAGE_PROFILE must be release or debug, not $profile" ;;
esac

if [ "$build" = 1 ]; then
    say "cargo build ${cargo_profile[*]} ${build_targets[*]} (etcd, etcdctl, etcdutl)"
    cargo build "${cargo_profile[@]}" "${build_targets[@]}" --bin etcd --bin etcdctl --bin etcdutl
fi
for bin in etcd etcdctl etcdutl; do
    [ -x "target/$profile/$bin" ] || die "target/$profile/$bin is missing (run without --no-build)"
done

docs=
if [ -f examples/gen-docs.rs ]; then
    say "man pages and completions (cargo run ${cargo_profile[*]} --example gen-docs)"
    rm -rf "target/$profile/docs"
    cargo run --quiet "${cargo_profile[@]}" --example gen-docs -- "target/$profile/docs"
    docs=$repo/target/$profile/docs
else
    say "note: examples/gen-docs.rs not found; packages without man pages and completions"
fi

work=$(mktemp -d "$repo/target/packages-work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Stripped binaries: the packages ship no debug info.
mkdir -p "$work/bin"
for bin in etcd etcdctl etcdutl; do
    strip --strip-unneeded -o "$work/bin/$bin" "target/$profile/$bin"
done

say "systemd-analyze verify"
mkdir -p "$work/units"
for unit in etcd.service etcd-backup.service etcd-backup.timer; do
    # The programs are not installed on this machine: point at the staged ones.
    sed -e "s|/usr/libexec/etcd/etcd-backup|$repo/systemd/etcd-backup|" \
        -e "s|^ExecStart=/usr/bin/etcd$|ExecStart=$work/bin/etcd|" \
        "systemd/$unit" >"$work/units/$unit"
done
verify=$(cd "$work/units" && systemd-analyze verify --man=no etcd.service etcd-backup.service etcd-backup.timer 2>&1) ||
    die "systemd-analyze verify failed: $verify"
[ -z "$verify" ] || die "systemd-analyze verify printed: $verify"

# ---- .deb -------------------------------------------------------------
built=()
if want deb; then
    arch=$(dpkg --print-architecture)
    say "deb: staging"
    deb_root=$work/deb
    install -D -m 0755 -t "$deb_root/usr/bin" "$work/bin/etcd" "$work/bin/etcdctl" "$work/bin/etcdutl"
    install -D -m 0755 systemd/etcd-backup "$deb_root/usr/libexec/etcd/etcd-backup"
    install -D -m 0644 -t "$deb_root/lib/systemd/system" systemd/etcd.service systemd/etcd-backup.service systemd/etcd-backup.timer
    install -D -m 0644 systemd/etcd.sysusers "$deb_root/usr/lib/sysusers.d/etcd.conf"
    install -D -m 0644 systemd/etcd.tmpfiles "$deb_root/usr/lib/tmpfiles.d/etcd.conf"
    install -D -m 0644 -t "$deb_root/etc/etcd" etc/etcd/etcd.conf etc/etcd/etcd.conf.yml etc/etcd/backup.conf
    install -D -m 0644 packaging/deb/copyright "$deb_root/usr/share/doc/rsetcd/copyright"
    sed -e "s/@VERSION@/$version-$release/" -e "s/@DATE@/$(date -R -u -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")/" \
        packaging/deb/changelog.in | gzip -9n >"$work/changelog.Debian.gz"
    install -D -m 0644 "$work/changelog.Debian.gz" "$deb_root/usr/share/doc/rsetcd/changelog.Debian.gz"
    # the operators' guide, etcd's alert rules and a Grafana dashboard (the
    # repository README is for developers)
    install -D -m 0644 docs/operations.md "$deb_root/usr/share/doc/rsetcd/operations.md"
    install -D -m 0644 docs/prometheus/etcd-alerts.yaml "$deb_root/usr/share/doc/rsetcd/prometheus/etcd-alerts.yaml"
    install -D -m 0644 docs/grafana/rsetcd.json "$deb_root/usr/share/doc/rsetcd/grafana/rsetcd.json"
    if [ -n "$docs" ]; then
        install -d "$deb_root/usr/share/man/man1"
        for page in "$docs"/man/*.1; do
            gzipped=$deb_root/usr/share/man/man1/$(basename "$page").gz
            gzip -9n <"$page" >"$gzipped"
        done
        for bin in etcd etcdctl etcdutl; do
            install -D -m 0644 "$docs/completions/$bin.bash" "$deb_root/usr/share/bash-completion/completions/$bin"
            install -D -m 0644 "$docs/completions/$bin.zsh" "$deb_root/usr/share/zsh/vendor-completions/_$bin"
            install -D -m 0644 "$docs/completions/$bin.fish" "$deb_root/usr/share/fish/vendor_completions.d/$bin.fish"
        done
    fi

    # Library dependencies as dh_shlibdeps computes them.
    mkdir -p "$work/shlibs/debian"
    printf 'Source: rsetcd\n\nPackage: rsetcd\nArchitecture: any\n' >"$work/shlibs/debian/control"
    depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O "$deb_root"/usr/bin/* | sed -n 's/^shlibs:Depends=//p')
    [ -n "$depends" ] || die "dpkg-shlibdeps found no dependencies"

    install -d -m 0755 "$deb_root/DEBIAN"
    installed_size=$(du -sk --exclude=DEBIAN "$deb_root" | cut -f1)
    sed -e "s/@VERSION@/$version-$release/" -e "s/@ARCH@/$arch/" \
        -e "s/@INSTALLED_SIZE@/$installed_size/" -e "s/@DEPENDS@/$depends/" \
        packaging/deb/control.in >"$deb_root/DEBIAN/control"
    install -m 0644 packaging/deb/conffiles "$deb_root/DEBIAN/conffiles"
    install -m 0755 -t "$deb_root/DEBIAN" packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm
    (cd "$deb_root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$deb_root/DEBIAN/md5sums"
    chmod 0644 "$deb_root/DEBIAN/md5sums"

    deb=$out/rsetcd_${version}-${release}_${arch}.deb
    rm -f "$deb"
    say "deb: dpkg-deb --build -> $deb"
    fakeroot dpkg-deb --build -Zxz "$deb_root" "$deb" >/dev/null

    say "deb: lintian (allow-list packaging/deb/lintian-allow)"
    lintian --fail-on error,warning,info --suppress-tags-from-file packaging/deb/lintian-allow "$deb" ||
        die "lintian reported problems in $deb"
    built+=("$deb")
fi

# ---- .rpm -------------------------------------------------------------
if want rpm; then
    say "rpm: rpmbuild -bb packaging/rpm/rsetcd.spec"
    rpm_top=$work/rpmbuild
    mkdir -p "$rpm_top"/{BUILD,BUILDROOT,RPMS,SOURCES,SPECS,SRPMS}
    rpmbuild -bb --quiet \
        --define "_topdir $rpm_top" \
        --define "rsetcd_version $version" \
        --define "rsetcd_release $release" \
        --define "rsetcd_source $repo" \
        --define "rsetcd_bindir $work/bin" \
        ${docs:+--define "rsetcd_docs $docs"} \
        packaging/rpm/rsetcd.spec
    rpm_file=$(find "$rpm_top/RPMS" -name 'rsetcd-*.rpm' | head -n1)
    [ -n "$rpm_file" ] || die "rpmbuild produced no package"
    rm -f "$out"/rsetcd-*.rpm
    cp "$rpm_file" "$out/"
    rpm_file=$out/$(basename "$rpm_file")
    say "rpm: built $rpm_file"

    say "rpm: scriptlets have no unexpanded macros"
    scripts=$(rpm -qp --scripts "$rpm_file" 2>/dev/null)
    [ -n "$scripts" ] || die "the rpm has no scriptlets"
    if printf '%s\n' "$scripts" | grep -n '%'; then
        die "unexpanded % in the scriptlets of $rpm_file (above)"
    fi

    say "rpm: rpmlint (allow-list packaging/rpm/rpmlint.toml)"
    # rpmlint exits 0 on warnings: any W: or E: line counts as a failure.
    lint=$(rpmlint -c packaging/rpm/rpmlint.toml "$rpm_file" 2>&1) || { echo "$lint"; die "rpmlint failed on $rpm_file"; }
    echo "$lint" | grep -E ': (E|W): |packages and' || true
    if echo "$lint" | grep -qE ': (E|W): '; then
        die "rpmlint reported problems in $rpm_file"
    fi
    built+=("$rpm_file")
fi

say "packages in $out:"
ls -l "${built[@]}"
