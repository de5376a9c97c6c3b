#!/bin/bash
# Build and test migrate on PostgreSQL versions the host (Debian 12, PG 15)
# does not have, each in a Debian chroot made from Debian's own packages:
#   17 -> Debian 13 "trixie"   in /work/chroots/trixie
#   18 -> Debian "sid"          in /work/chroots/sid
#
# Usage (as root on the host; one run per chroot at a time, but 17 and 18
# may run in parallel as two separate invocations):
#   bash test/other-versions.sh            # both 17 and 18
#   bash test/other-versions.sh 17         # one version
#   bash test/other-versions.sh 17 18
# Environment: CHROOT_BASE (default /work/chroots), MIRROR (default
# http://deb.debian.org/debian), BUILD_ONLY=1 (only build migrate and the
# pacer's unit test there, warnings as errors: a check of the
# version-specific code in a minute).  Each run's output is also kept in
# $CHROOT_BASE/<suite>-test.log.
#
# The chroot is created when missing (idempotent): debootstrap, no default
# cluster, no service starts, then the build and test packages.  The current
# working tree (not just what is committed) is copied into /build/migrate
# inside it, and test/run-tests.sh runs there with PGVER set.
set -uo pipefail

CHROOT_BASE=${CHROOT_BASE:-/work/chroots}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
src=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
    echo "other-versions.sh: run as root" >&2
    exit 2
fi

suite_for() {
    case $1 in
        17) echo trixie ;;
        18) echo sid ;;
        *) return 1 ;;
    esac
}

# --- mounts -----------------------------------------------------------------
# proc, /dev, /dev/pts and a private /dev/shm; unmounted on exit (trap).
# Tests run in a pipeline subshell, so unmounting goes by chroot, not by a
# list kept in a variable.
MOUNTS=(proc dev dev/pts dev/shm)
roots=()                # only the chroots this run uses (others may be busy)

do_mount() {            # do_mount TARGET mount-args...
    local target=$1; shift
    mountpoint -q "$target" && return 0
    mkdir -p "$target"
    mount "$@" "$target" || return 1
    # never let anything mounted below propagate back to the host
    mount --make-rslave "$target" 2>/dev/null || true
}

mount_chroot() {
    local root=$1
    do_mount "$root/proc" -t proc proc &&
    do_mount "$root/dev" --bind /dev &&
    do_mount "$root/dev/pts" --bind /dev/pts &&
    do_mount "$root/dev/shm" -t tmpfs -o mode=1777,nosuid,nodev shm
}

umount_chroot() {
    local root=$1 i m
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        m="$root/${MOUNTS[i]}"
        mountpoint -q "$m" || continue
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
}

umount_all() {
    local r
    for r in "${roots[@]}"; do umount_chroot "$r"; done
}
trap umount_all EXIT
trap 'umount_all; exit 130' INT TERM

in_chroot() {           # in_chroot ROOT command...
    local root=$1; shift
    chroot "$root" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
        "$@"
}

# --- chroot creation (idempotent) -------------------------------------------
ensure_chroot() {       # ensure_chroot VERSION SUITE
    local ver=$1 suite=$2 root="$CHROOT_BASE/$2"
    local ready="$root/.migrate-ready-$ver"
    # Debian's mirror as reached from here may serve a Release file whose
    # Valid-Until has passed (sid's is only valid for a week): accept it
    if [ -d "$root/etc/apt/apt.conf.d" ]; then
        echo 'Acquire::Check-Valid-Until "false";' \
            > "$root/etc/apt/apt.conf.d/99migrate-no-valid-until"
    fi
    [ -f "$ready" ] && return 0
    local t0=$SECONDS

    # a debootstrap that did not finish leaves /debootstrap behind: start over
    if [ -d "$root/debootstrap" ] || { [ -d "$root" ] && [ ! -x "$root/usr/bin/apt-get" ]; }; then
        echo "== $suite: removing unfinished chroot $root"
        umount_chroot "$root"
        rm -rf --one-file-system "$root"
    fi
    if [ ! -x "$root/usr/bin/apt-get" ]; then
        command -v debootstrap >/dev/null || {
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
        } || return 1
        mkdir -p "$CHROOT_BASE"
        echo "== $suite: debootstrap into $root"
        debootstrap --variant=buildd "$suite" "$root" "$MIRROR" \
            > "$CHROOT_BASE/$suite-debootstrap.log" 2>&1 || {
            echo "debootstrap $suite failed; see $CHROOT_BASE/$suite-debootstrap.log" >&2
            tail -n 20 "$CHROOT_BASE/$suite-debootstrap.log" >&2
            return 1
        }
    fi

    # before postgresql-common is installed: no default cluster, no services
    echo 'Acquire::Check-Valid-Until "false";' \
        > "$root/etc/apt/apt.conf.d/99migrate-no-valid-until"
    mkdir -p "$root/etc/postgresql-common/createcluster.d"
    echo "create_main_cluster = false" \
        > "$root/etc/postgresql-common/createcluster.d/migrate-no-main.conf"
    printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

    mount_chroot "$root" || return 1
    echo "== $suite: installing PostgreSQL $ver packages"
    in_chroot "$root" apt-get update -qq || return 1
    in_chroot "$root" apt-get install -y -qq --no-install-recommends \
        build-essential "postgresql-$ver" "postgresql-server-dev-$ver" \
        "postgresql-$ver-cron" libipc-run-perl \
        > "$CHROOT_BASE/$suite-install.log" 2>&1 || {
        echo "apt-get install in $suite failed; see $CHROOT_BASE/$suite-install.log" >&2
        tail -n 20 "$CHROOT_BASE/$suite-install.log" >&2
        return 1
    }
    touch "$ready"
    echo "== $suite: chroot ready in $((SECONDS - t0))s"
}

# --- one version --------------------------------------------------------------
run_version() {         # run_version VERSION
    local ver=$1 suite root
    suite=$(suite_for "$ver") || { echo "unknown version $ver (17 or 18)" >&2; return 1; }
    root="$CHROOT_BASE/$suite"

    ensure_chroot "$ver" "$suite" || return 1
    mount_chroot "$root" || return 1

    echo "== $suite: copying $src to $root/build/migrate"
    rm -rf "$root/build/migrate"
    mkdir -p "$root/build/migrate"
    tar -C "$src" --exclude=./.git --exclude='*.o' --exclude='*.so' \
        --exclude='*.bc' --exclude=results --exclude=tmp_check -cf - . |
        tar -C "$root/build/migrate" -xf - || return 1

    if [ "${BUILD_ONLY:-0}" = 1 ]; then
        echo "== $suite: building with PostgreSQL $ver (BUILD_ONLY)"
        in_chroot "$root" bash -c "cd /build/migrate && make -s COPT=-Werror PG_CONFIG=/usr/lib/postgresql/$ver/bin/pg_config && make -s unitcheck PG_CONFIG=/usr/lib/postgresql/$ver/bin/pg_config"
        return
    fi
    echo "== $suite: running test/run-tests.sh with PGVER=$ver"
    in_chroot "$root" PGVER="$ver" bash -c 'cd /build/migrate && bash test/run-tests.sh'
}

versions=("$@")
[ ${#versions[@]} -eq 0 ] && versions=(17 18)
for v in "${versions[@]}"; do
    suite_for "$v" >/dev/null || { echo "usage: $0 [17] [18]" >&2; exit 2; }
    roots+=("$CHROOT_BASE/$(suite_for "$v")")
done

declare -A result
overall=0
for v in "${versions[@]}"; do
    suite=$(suite_for "$v")
    log="$CHROOT_BASE/$suite-test.log"
    mkdir -p "$CHROOT_BASE"
    start=$SECONDS
    run_version "$v" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    umount_chroot "$CHROOT_BASE/$suite"
    if [ "$rc" -eq 0 ]; then
        result[$v]="PASS"
    else
        result[$v]="FAIL (exit $rc)"
        overall=1
    fi
    echo "migrate on PostgreSQL $v ($suite): ${result[$v]} in $((SECONDS - start))s; log: $log"
done

echo "== summary"
for v in "${versions[@]}"; do
    echo "PostgreSQL $v: ${result[$v]}"
done
exit $overall
