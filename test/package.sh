#!/bin/bash
# Build the Debian package postgresql-NN-migrate from this tree, the way
# Debian builds it (dpkg-buildpackage, pg_buildext, the package's own
# installcheck), on this machine or in a Debian chroot.
#
# As root (`bash test/install-deps.sh build` installs what it needs here):
#   bash test/package.sh                  # here: Debian 12, PostgreSQL 15
#   bash test/package.sh bookworm --check # in a chroot; then install the
#                                         # package there and run test/package-check.sh
#   bash test/package.sh trixie           # PostgreSQL 17 (Debian 13)
#   bash test/package.sh sid              # PostgreSQL 18
#
# The .deb files end up in $OUT (default: deb/ at the top of the tree), with
# the build's log (build.log; in a chroot $CHROOT_BASE/<suite>-package.log).
# The tree (what git tracks, as it is in the working tree; without git, all
# of it but build products) is built in a copy, so the tree itself is left
# alone: a clone, or the PGXN zip of `make dist` unpacked.  A chroot is made when missing
# under $CHROOT_BASE (default /work/chroots) from $MIRROR, as
# test/other-versions.sh makes them; only what this script mounts in it is
# unmounted again.  Environment: DEB_BUILD_OPTIONS (e.g. nocheck) is passed on.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$top/deb}
CHROOT_BASE=${CHROOT_BASE:-/work/chroots}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
suite=${1:-}
check=${2:-}

usage() { echo "usage: $0 [bookworm|trixie|sid [--check]]" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "package.sh: run as root" >&2; exit 2; }
case $suite in
    '') [ -z "$check" ] || usage ;;
    bookworm) ver=15 ;;
    trixie) ver=17 ;;
    sid) ver=18 ;;
    *) usage ;;
esac
case $check in ''|--check) ;; *) usage ;; esac

# the tree: in a git work tree, as git sees it (tracked and new files, not
# ignored ones); without git or .git (the PGXN zip of `make dist`, a copy),
# every file but what a build or a test run leaves behind
copy_tree() {           # copy_tree DIR
    mkdir -p "$1"
    if command -v git >/dev/null 2>&1 &&
        git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -C "$top" ls-files -z -co --exclude-standard |
            (cd "$top" && tar --null -T - -cf -) | tar -C "$1" -xf -
    else
        (cd "$top" && tar -cf - --exclude=./.git --exclude=./deb \
            --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
            --exclude=./results --exclude=./output_iso --exclude=./tmp_check \
            --exclude=./log --exclude=./regression.diffs --exclude=./regression.out \
            --exclude=./test/unit/pacer_test --exclude='./migrate-*.zip' \
            --exclude=./debian/.debhelper --exclude=./debian/tmp \
            --exclude='./debian/postgresql-*-migrate' --exclude='./debian/*.substvars' \
            --exclude=./debian/files --exclude='./debian/*.log' .) | tar -C "$1" -xf -
    fi
}

# --- here ---------------------------------------------------------------------
if [ -z "$suite" ]; then
    for p in dpkg-dev debhelper postgresql-server-dev-all postgresql-15 postgresql-15-cron; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            { echo "package.sh: $p is missing (bash test/install-deps.sh build)" >&2; exit 1; }
    done
    work=$(mktemp -d /tmp/migrate-deb.XXXXXX)
    trap 'rm -rf "$work"' EXIT
    # the test cluster's server (user postgres) reads the built extension here
    chmod 755 "$work"
    copy_tree "$work/src"
    mkdir -p "$OUT"
    log=$OUT/build.log
    (cd "$work/src" && dpkg-buildpackage -us -uc -b) > "$log" 2>&1 || {
        tail -n 60 "$log" >&2
        echo "package.sh: dpkg-buildpackage failed; log: $log" >&2
        exit 1
    }
    cp "$work"/*.deb "$OUT/"
    ls -1 "$OUT"/*.deb
    exit 0
fi

# --- in a chroot -------------------------------------------------------------
root=$CHROOT_BASE/$suite
mounted=()
umount_ours() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" || true
    done
}
trap umount_ours EXIT
mount_one() {           # mount_one TARGET mount-args...
    local target=$1; shift
    mountpoint -q "$target" && return 0
    mkdir -p "$target"
    mount "$@" "$target"
    mount --make-rslave "$target" 2>/dev/null || true
    mounted+=("$target")
}
in_chroot() {
    chroot "$root" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
        DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-}" "$@"
}

if [ ! -x "$root/usr/bin/apt-get" ] || [ -d "$root/debootstrap" ]; then
    [ ! -d "$root/debootstrap" ] || rm -rf --one-file-system "$root"
    echo "== $suite: debootstrap into $root"
    mkdir -p "$CHROOT_BASE"
    debootstrap --variant=buildd "$suite" "$root" "$MIRROR" > "$CHROOT_BASE/$suite-debootstrap.log" 2>&1 ||
        { tail -n 20 "$CHROOT_BASE/$suite-debootstrap.log" >&2; exit 1; }
fi
# no default cluster, no service starts, an expired Release file accepted
echo 'Acquire::Check-Valid-Until "false";' > "$root/etc/apt/apt.conf.d/99migrate-no-valid-until"
mkdir -p "$root/etc/postgresql-common/createcluster.d"
echo "create_main_cluster = false" > "$root/etc/postgresql-common/createcluster.d/migrate-no-main.conf"
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
mount_one "$root/proc" -t proc proc
mount_one "$root/dev" --bind /dev
mount_one "$root/dev/pts" --bind /dev/pts
mount_one "$root/dev/shm" -t tmpfs -o mode=1777,nosuid,nodev shm

build_deps=(dpkg-dev debhelper postgresql-server-dev-all "postgresql-$ver" "postgresql-$ver-cron")
missing=()
for p in "${build_deps[@]}"; do
    in_chroot dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== $suite: installing ${missing[*]}"
    in_chroot apt-get update -qq
    in_chroot apt-get install -y -qq --no-install-recommends "${missing[@]}" > "$CHROOT_BASE/$suite-package-deps.log" 2>&1 ||
        { tail -n 20 "$CHROOT_BASE/$suite-package-deps.log" >&2; exit 1; }
fi

echo "== $suite: building in $root/build/migrate-pkg"
rm -rf "$root/build/migrate-pkg"
copy_tree "$root/build/migrate-pkg/src"
log=$CHROOT_BASE/$suite-package.log
# debian/control names the PostgreSQL versions of the release it was made
# for: let pg_buildext make it for this one
if ! in_chroot bash -c 'cd /build/migrate-pkg/src && pg_buildext updatecontrol &&
                        dpkg-buildpackage -us -uc -b' > "$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "package.sh: dpkg-buildpackage in $suite failed; log: $log" >&2
    exit 1
fi
grep -E '^[ #] All [0-9]+ tests passed|^### End' "$log" || true
mkdir -p "$OUT"
cp "$root"/build/migrate-pkg/*.deb "$OUT/"
ls -1 "$OUT"/postgresql-"$ver"-migrate*.deb

if [ "$check" = --check ]; then
    echo "== $suite: installing the package and checking it"
    mkdir -p "$root/build/migrate-pkg/debs"
    cp "$root"/build/migrate-pkg/postgresql-"$ver"-migrate_*.deb "$root/build/migrate-pkg/debs/"
    in_chroot bash -c "apt-get install -y -qq --no-install-recommends /build/migrate-pkg/debs/postgresql-$ver-migrate_*.deb >/dev/null &&
                       cd /build/migrate-pkg/src && PGVER=$ver bash test/package-check.sh"
fi
