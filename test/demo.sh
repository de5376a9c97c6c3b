#!/bin/bash
# Demo of migrate on a throw-away cluster.
#
#   bash test/demo.sh [ROWS]        (as root; ROWS defaults to 2000000)
#
# Installs what building migrate needs from Debian's packages
# (test/install-deps.sh build), builds and installs
# the extension, starts a private PostgreSQL cluster in a temporary
# directory (removed again on exit), fills a table "accounts" with ROWS
# rows and runs the migration
#
#   fix_ids: external_id = 'ext-' || id, email = lower(email)
#
# in a background worker, printing its progress about once a second.
# Environment: PGVER (default 15), DEMO_TIMEOUT (seconds to wait for the
# migration; default 600 + ROWS / 1000), DEMO_PORT (the cluster's port;
# default a free one picked at random).
set -euo pipefail

ROWS=${1:-2000000}
PGVER=${PGVER:-15}
BIN="/usr/lib/postgresql/$PGVER/bin"

if ! [[ "$ROWS" =~ ^[0-9]+$ ]] || [ "$ROWS" -lt 1 ]; then
    echo "usage: $0 [ROWS]   (ROWS: a positive number of rows, default 2000000)" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh installs packages and the extension: run it as root (bash test/demo.sh)" >&2
    exit 2
fi
TIMEOUT=${DEMO_TIMEOUT:-$((600 + ROWS / 1000))}

cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }
now_ms() { date +%s%3N; }
# seconds since a now_ms value, with one decimal
since() { local d=$(( $(now_ms) - $1 )); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }

step "installing dependencies"
bash test/install-deps.sh build

step "building and installing migrate"
make -s PG_CONFIG="$BIN/pg_config"
make -s install PG_CONFIG="$BIN/pg_config"

# ---------------------------------------------------------------------------
# A throw-away cluster, owned by postgres, in a temporary directory
# ---------------------------------------------------------------------------
step "starting a throw-away cluster"
DIR=$(mktemp -d /tmp/migrate-demo.XXXXXX)
chown postgres: "$DIR"
chmod 700 "$DIR"

as_postgres() { (cd "$DIR" && runuser -u postgres -- "$@"); }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -f "$DIR/data/postmaster.pid" ]; then
        as_postgres "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$DIR"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# a TCP port nobody listens on (bash's /dev/tcp connects if one does)
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=${DEMO_PORT:-}
for _ in $(seq 1 200); do
    [ -z "$PORT" ] || break
    p=$((20000 + RANDOM % 30000))
    if ! port_in_use "$p" && [ ! -e "/tmp/.s.PGSQL.$p" ]; then
        PORT=$p
        break
    fi
done
[ -n "$PORT" ] || { echo "no free port found" >&2; exit 1; }

as_postgres "$BIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --no-locale >/dev/null
cat >>"$DIR/data/postgresql.conf" <<EOF
# migrate demo
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
shared_preload_libraries = 'migrate'
max_wal_size = '4GB'
logging_collector = off
EOF
as_postgres "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start >/dev/null
echo "cluster in $DIR, port $PORT (removed when this script ends)"

# psql on the demo database; sql FILE-or-STRING with -c or -f as given
q() { as_postgres "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -d demo "$@"; }
as_postgres "$BIN/createdb" -h "$DIR" -p "$PORT" demo

# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------
step "creating table accounts with $ROWS rows"
t0=$(now_ms)
q -v rows="$ROWS" <<'SQL'
CREATE EXTENSION migrate;
CREATE TABLE accounts (
    id          bigint PRIMARY KEY,
    email       text,
    external_id text,
    created_at  timestamptz
);
INSERT INTO accounts (id, email, created_at)
SELECT g,
       CASE g % 4
           WHEN 0 THEN 'User' || g || '@Example.COM'
           WHEN 1 THEN 'MAIL.' || g || '@EXAMPLE.ORG'
           WHEN 2 THEN 'Someone_' || g || '@Mail.Example.NET'
           ELSE        'user' || g || '@example.net'
       END,
       now() - g * interval '17 seconds'
  FROM generate_series(1, :rows) AS g;
VACUUM ANALYZE accounts;
\echo
SELECT count(*) AS rows,
       count(*) FILTER (WHERE email <> lower(email)) AS mixed_case_emails,
       count(external_id) AS with_external_id,
       pg_size_pretty(pg_total_relation_size('accounts')) AS size
  FROM accounts;
SQL
echo "table built in $(since "$t0")s"

# ---------------------------------------------------------------------------
# Register, dry run, start
# ---------------------------------------------------------------------------
step "registering migration fix_ids"
q <<'SQL'
\pset footer off
SELECT name, relation, action, key_columns, set_clause, batch_size, lock_timeout, state
  FROM migrate_register('fix_ids', 'accounts',
           set_clause => $$external_id = 'ext-' || id, email = lower(email)$$);
SQL

step "migrate_dry_run: the first rows of the next batch, rolled back"
q <<'SQL'
\pset footer off
SELECT key,
       before ->> 'email'       AS email_before,
       after  ->> 'email'       AS email_after,
       before ->> 'external_id' AS ext_before,
       after  ->> 'external_id' AS ext_after
  FROM migrate_dry_run('fix_ids', 5);
SELECT state, processed, cursor FROM migrate_status('fix_ids');
SQL

step "migrate_start('fix_ids'): the work runs in a background worker"
start=$(now_ms)
q <<'SQL'
\pset footer off
SELECT name, state, worker_pid FROM migrate_start('fix_ids');
SELECT pid, backend_type, usename, query
  FROM pg_stat_activity WHERE backend_type = 'migrate worker';
SQL

# ---------------------------------------------------------------------------
# Progress, about once a second, until done or failed (or DEMO_TIMEOUT)
# ---------------------------------------------------------------------------
step "progress (migrate_status('fix_ids') once a second)"
printf '%6s  %-9s %-27s %12s %12s %10s\n' elapsed state progress processed rows/s eta
deadline=$(( $(date +%s) + TIMEOUT ))
state=
while :; do
    line=$(q -At -F '|' -c "SELECT state, coalesce(progress, '-'), processed,
                                   coalesce(rows_per_second::text, '-'),
                                   coalesce(eta::text, '-')
                              FROM migrate_status('fix_ids')")
    IFS='|' read -r state progress processed rate eta <<<"$line"
    elapsed=$(since "$start")
    printf '%5ss  %-9s %-27s %12s %12s %10s\n' "$elapsed" "$state" "$progress" "$processed" "$rate" "$eta"
    case "$state" in
        done|failed|cancelled|paused) break ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "giving up: fix_ids is still $state after ${TIMEOUT}s (set DEMO_TIMEOUT to wait longer)" >&2
        q -x -c "SELECT * FROM migrate_status('fix_ids')" >&2 || true
        exit 1
    fi
    sleep 1
done
wall=$(since "$start")

step "CALL migrate_await('fix_ids'): returns the state once its worker has gone"
q -c "CALL migrate_await('fix_ids')"

step "final status"
q -x -c "SELECT name, state, processed, changed, batches, batch_size, total_estimate,
                percent, rows_per_second, last_error, started_at, finished_at,
                finished_at - started_at AS took
           FROM migrate_status('fix_ids')"

if [ "$state" != "done" ]; then
    echo "fix_ids ended in state $state" >&2
    exit 1
fi

step "check: every row changed"
q <<'SQL'
\pset footer off
SELECT count(*) AS rows,
       count(*) FILTER (WHERE external_id = 'ext-' || id) AS external_id_set,
       count(*) FILTER (WHERE email <> lower(email))      AS mixed_case_left
  FROM accounts;
SQL
bad=$(q -At -c "SELECT count(*) FROM accounts
                 WHERE external_id IS DISTINCT FROM 'ext-' || id OR email <> lower(email)")
if [ "$bad" != "0" ]; then
    echo "check failed: $bad rows were not migrated" >&2
    exit 1
fi

step "audit log: migrate.events"
q -c "SELECT id, at, migration, event, role, detail FROM migrate.events ORDER BY id"

summary=$(q -At -F ' ' -c "SELECT processed, changed, batches,
                                  round(extract(epoch FROM finished_at - started_at)::numeric, 1),
                                  round(processed / greatest(extract(epoch FROM finished_at - started_at), 0.001))
                             FROM migrate.migrations WHERE name = 'fix_ids'")
read -r processed changed batches secs rate <<<"$summary"
step "summary"
echo "fix_ids: $processed rows processed, $changed changed, in $batches batches of a commit each"
echo "worker time ${secs}s ($rate rows/s); wall clock from migrate_start to done ${wall}s"
