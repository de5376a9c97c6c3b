#!/bin/bash
# Run every test of migrate: pg_regress and isolation tests against a
# throw-away cluster made by pg_virtualenv, then the TAP tests (which make
# their own clusters) as an unprivileged user.  Run it as root on Debian 12;
# it installs what it needs first.  It prints how long each phase took and
# the whole suite (about 15 minutes on 2 cores).
set -euo pipefail

suite_start=$(date +%s)
timings=()

# Run "$@" as the phase named $1 and note how long it took (whatever its
# outcome, which it returns).
phase()
{
    local name=$1 t0 rc=0
    shift
    t0=$(date +%s)
    "$@" || rc=$?
    timings+=("$(printf '%-22s %5d s' "$name" $(( $(date +%s) - t0 )))")
    echo "migrate: phase $name took $(( $(date +%s) - t0 )) s"
    return $rc
}

cd "$(dirname "$0")/.."
top=$(pwd)
PGVER=${PGVER:-15}
export PATH="/usr/lib/postgresql/$PGVER/bin:$PATH"

# (phase runs it in a context where set -e does not apply: hence the &&)
build()
{
    bash test/install-deps.sh test &&
        make -s PG_CONFIG="/usr/lib/postgresql/$PGVER/bin/pg_config" &&
        make -s install PG_CONFIG="/usr/lib/postgresql/$PGVER/bin/pg_config"
}
phase "deps+build" build

status=0

# 0. the release metadata name migrate.control's version
phase versions bash test/versions.sh || status=1

# 0. the pacer's decisions against made-up workloads (milliseconds)
phase unit make -s unitcheck PG_CONFIG="/usr/lib/postgresql/$PGVER/bin/pg_config" || status=1

# 1. pg_regress and isolation tests, with the preloaded launcher and pg_cron
phase regress+isolation pg_virtualenv -v "$PGVER" \
    -o "shared_preload_libraries=migrate,pg_cron" \
    -o "cron.database_name=contrib_regression" \
    -o "max_worker_processes=24" \
    make -s installcheck TAP_TESTS= PG_CONFIG="/usr/lib/postgresql/$PGVER/bin/pg_config" || status=1
if [ $status -ne 0 ]; then
    for f in regression.diffs output_iso/regression.diffs; do
        [ -f "$f" ] && cat "$f"
    done
fi

# The Citus test (test/t/050_citus.pl) needs Citus built into this
# PostgreSQL from MIGRATE_CITUS_SOURCE (a tarball; .ci/run names
# ../shared/deps/citus-13.2.2.tar.gz, and reuses an install of the same
# version); without it that test skips with a message
citus()
{
    bash test/citus-build.sh "$MIGRATE_CITUS_SOURCE" "/usr/lib/postgresql/$PGVER/bin/pg_config"
}
if [ -n "${MIGRATE_CITUS_SOURCE:-}" ]; then
    export MIGRATE_CITUS_SOURCE
    phase "citus build" citus || status=1
fi

# 2. TAP tests: PostgreSQL refuses to run as root, so run them as postgres
# in a copy of the tree that user owns
tap()
{
    local tapdir rc=0
    tapdir=$(mktemp -d /tmp/migrate-tap.XXXXXX)
    cp -a "$top/." "$tapdir/"
    chown -R postgres "$tapdir"
    if ! runuser -u postgres -- env MIGRATE_CITUS_SOURCE="${MIGRATE_CITUS_SOURCE:-}" make -s -C "$tapdir" tapcheck \
            PG_CONFIG="/usr/lib/postgresql/$PGVER/bin/pg_config"; then
        rc=1
        cat "$tapdir"/tmp_check/log/regress_log_* 2>/dev/null | tail -n 200 || true
    fi
    rm -rf "$tapdir"
    return $rc
}
phase TAP tap || status=1

echo "migrate: time taken"
for t in "${timings[@]}"; do
    echo "  $t"
done
printf '  %-22s %5d s\n' "whole suite" $(( $(date +%s) - suite_start ))

if [ $status -eq 0 ]; then
    echo "migrate: all tests passed"
else
    echo "migrate: TESTS FAILED" >&2
fi
exit $status
