#!/bin/bash
# Install, from Debian's packages, what building or testing migrate needs.
# As root; idempotent (installs only what is missing).
#
#   bash test/install-deps.sh build   # building: the extension (make) and
#                                     # its Debian package (test/package.sh)
#   bash test/install-deps.sh test    # building and testing: all of the
#                                     # above and what the tests, the demo
#                                     # and the benchmarks use (the default)
#
# A server that only runs migrate needs none of this: the package
# (`apt install ./postgresql-15-migrate_*.deb`) brings PostgreSQL 15 and
# recommends pg_cron.
#
# build: build-essential, postgresql-server-dev-15 (PGXS), the server and
#   pg_cron (the package's build runs its installcheck against them),
#   dpkg-dev, debhelper and postgresql-server-dev-all (pg_buildext).
# test: also libipc-run-perl (the TAP tests), prometheus-postgres-exporter
#   (test/t/021_prometheus.pl, test/production-check.sh), gnuplot-nox (the
#   benchmarks' charts), git and unzip (`make dist`, and .ci/run builds
#   the package from its zip), debootstrap (test/package.sh
#   and test/other-versions.sh in a chroot of another Debian release).
#
# While it installs, a file in /etc/postgresql-common/createcluster.d keeps
# the postgresql package from creating and starting a default cluster we
# don't use.  The file is removed again afterwards, also when the install
# fails, so that later PostgreSQL installs create their clusters as usual.
set -euo pipefail

PGVER=${PGVER:-15}
what=${1:-test}
build=(build-essential "postgresql-$PGVER" "postgresql-server-dev-$PGVER"
       "postgresql-$PGVER-cron" postgresql-common dpkg-dev debhelper
       postgresql-server-dev-all)
test=(libipc-run-perl prometheus-postgres-exporter gnuplot-nox git unzip debootstrap)
case $what in
    build) pkgs=("${build[@]}") ;;
    test) pkgs=("${build[@]}" "${test[@]}") ;;
    *) echo "usage: $0 [build|test]   (default: test, which includes build)" >&2; exit 2 ;;
esac
no_main=/etc/postgresql-common/createcluster.d/migrate-no-main.conf

remove_no_main() {
    if [ -e "$no_main" ]; then
        rm -f "$no_main"
    fi
}

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
    # an older version of this script left the file behind: clean up after it
    if [ -e "$no_main" ]; then
        echo "install-deps: removing $no_main, left by an earlier run"
        remove_no_main
    fi
    echo "install-deps: what $what needs is installed already"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
trap remove_no_main EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "install-deps: installing for $what: ${missing[*]} from Debian (this takes a minute)..."
apt-get update -qq
# don't let the package create and start a default cluster we don't use
mkdir -p "$(dirname "$no_main")"
echo "create_main_cluster = false" > "$no_main"
apt-get install -y -qq "${missing[@]}" >/dev/null
remove_no_main
trap - EXIT
echo "install-deps: done"
