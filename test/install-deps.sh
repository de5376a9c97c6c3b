#!/bin/bash
# Install what building and testing migrate needs, from Debian's packages.
# Idempotent: does nothing when everything is already there.
set -euo pipefail

PGVER=${PGVER:-15}
pkgs=(build-essential "postgresql-$PGVER" "postgresql-server-dev-$PGVER"
      "postgresql-$PGVER-cron" postgresql-common libipc-run-perl gnuplot-nox)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # don't let the package create and start a default cluster we don't use
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/migrate-no-main.conf
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
