#!/bin/bash
# Install what building and testing migrate needs, from Debian's packages.
# Idempotent: does nothing when everything is already there.
#
# While it installs, a file in /etc/postgresql-common/createcluster.d keeps
# the postgresql package from creating and starting a default cluster we
# don't use.  The file is removed again afterwards, also when the install
# fails, so that later PostgreSQL installs create their clusters as usual.
set -euo pipefail

PGVER=${PGVER:-15}
# dpkg-dev, debhelper, postgresql-server-dev-all: the Debian package
# (test/package.sh); prometheus-postgres-exporter: test/t/021_prometheus.pl
pkgs=(build-essential "postgresql-$PGVER" "postgresql-server-dev-$PGVER"
      "postgresql-$PGVER-cron" postgresql-common libipc-run-perl gnuplot-nox
      dpkg-dev debhelper postgresql-server-dev-all prometheus-postgres-exporter)
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
    echo "install-deps: all packages are installed already"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
trap remove_no_main EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "install-deps: installing ${missing[*]} from Debian (this takes a minute)..."
apt-get update -qq
# don't let the package create and start a default cluster we don't use
mkdir -p "$(dirname "$no_main")"
echo "create_main_cluster = false" > "$no_main"
apt-get install -y -qq "${missing[@]}" >/dev/null
remove_no_main
trap - EXIT
echo "install-deps: done"
