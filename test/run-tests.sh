#!/bin/bash
# Run every test of migrate: pg_regress and isolation tests against a
# throw-away cluster made by pg_virtualenv, then the TAP tests (which make
# their own clusters) as an unprivileged user.  Run it as root on Debian 12;
# it installs what it needs first.
set -euo pipefail

cd "$(dirname "$0")/.."
top=$(pwd)
PGVER=${PGVER:-15}
export PATH="/usr/lib/postgresql/$PGVER/bin:$PATH"

bash test/install-deps.sh
make -s PG_CONFIG="/usr/lib/postgresql/$PGVER/bin/pg_config"
make -s install PG_CONFIG="/usr/lib/postgresql/$PGVER/bin/pg_config"

status=0

# 0. the release metadata name migrate.control's version
bash test/versions.sh || status=1

# 0. the pacer's decisions against made-up workloads (milliseconds)
make -s unitcheck PG_CONFIG="/usr/lib/postgresql/$PGVER/bin/pg_config" || status=1

# 1. pg_regress and isolation tests, with the preloaded launcher and pg_cron
pg_virtualenv -v "$PGVER" \
    -o "shared_preload_libraries=migrate,pg_cron" \
    -o "cron.database_name=contrib_regression" \
    -o "max_worker_processes=24" \
    make -s installcheck TAP_TESTS= PG_CONFIG="/usr/lib/postgresql/$PGVER/bin/pg_config" || status=1
if [ $status -ne 0 ]; then
    for f in regression.diffs output_iso/regression.diffs; do
        [ -f "$f" ] && cat "$f"
    done
fi

# 2. TAP tests: PostgreSQL refuses to run as root, so run them as postgres
# in a copy of the tree that user owns.  The Citus test (test/t/050_citus.pl)
# needs Citus built into this PostgreSQL from MIGRATE_CITUS_SOURCE (a
# tarball; .ci/run names ../shared/deps/citus-13.2.2.tar.gz); without it the
# test skips
if [ -n "${MIGRATE_CITUS_SOURCE:-}" ]; then
    export MIGRATE_CITUS_SOURCE
    bash test/citus-build.sh "$MIGRATE_CITUS_SOURCE" "/usr/lib/postgresql/$PGVER/bin/pg_config" || status=1
fi
tapdir=$(mktemp -d /tmp/migrate-tap.XXXXXX)
cp -a "$top/." "$tapdir/"
chown -R postgres "$tapdir"
if ! runuser -u postgres -- env MIGRATE_CITUS_SOURCE="${MIGRATE_CITUS_SOURCE:-}" make -s -C "$tapdir" tapcheck \
        PG_CONFIG="/usr/lib/postgresql/$PGVER/bin/pg_config"; then
    status=1
    cat "$tapdir"/tmp_check/log/regress_log_* 2>/dev/null | tail -n 200 || true
fi
rm -rf "$tapdir"

if [ $status -eq 0 ]; then
    echo "migrate: all tests passed"
else
    echo "migrate: TESTS FAILED" >&2
fi
exit $status
