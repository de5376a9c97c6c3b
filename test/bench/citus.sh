#!/bin/bash
# test/bench/citus.sh: migrate on a Citus cluster on one machine, against one
# UPDATE (issue 23).  As root:
#
#   bash test/bench/citus.sh [ROWS] [SHARDS]      (default 1000000 rows, 32 shards)
#
# A coordinator and two workers on 127.0.0.1 (ports PORT, PORT+1, PORT+2),
# Citus and migrate preloaded on each, accounts(id bigint primary key, email,
# external_id, n int) distributed on id.  Times, each on a fresh copy of the
# rows: one UPDATE on the coordinator, then migrate_register + migrate_start
# on the coordinator (waited with CALL migrate_await) with one and with two
# workers per node.  Checks n = 1 on every row after each migrate run.
# Prints a CSV line per way to $OUT/citus.csv.
#
# Needs Citus installed into the PostgreSQL of BIN (test/citus-build.sh) and
# migrate built and installed (SKIP_BUILD=1 skips the build).  KEEP=1 leaves
# the cluster running at the end (stop it with pg_ctl -m immediate).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$(pg_config --bindir)}
PORT=${PORT:-5790}
OUT=${OUT:-/tmp/migrate-bench}
ROWS=${1:-1000000}
SHARDS=${2:-32}
data=$(mktemp -d /tmp/migrate-citus-bench.XXXXXX)
chown postgres "$data"
mkdir -p "$OUT"
chown postgres "$OUT"

as_pg() { runuser -u postgres -- "$@"; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    make -s -C "$top" PG_CONFIG="$BIN/pg_config"
    make -s -C "$top" install PG_CONFIG="$BIN/pg_config" >/dev/null
fi
if [ ! -f "$("$BIN/pg_config" --pkglibdir)/citus.so" ]; then
    echo "citus.sh: Citus is not installed into $("$BIN/pg_config" --pkglibdir): run test/citus-build.sh" >&2
    exit 1
fi

cleanup() {
    [ "${KEEP:-0}" = 1 ] && { echo "cluster kept in $data"; return; }
    for i in 0 1 2; do
        as_pg "$BIN/pg_ctl" -D "$data/n$i" -m immediate stop >/dev/null 2>&1 || true
    done
    rm -rf "$data"
}
trap cleanup EXIT

for i in 0 1 2; do
    as_pg "$BIN/initdb" -D "$data/n$i" -A trust >/dev/null
    cat >> "$data/n$i/postgresql.conf" <<EOF
port = $((PORT + i))
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data'
shared_preload_libraries = 'citus,migrate'
max_worker_processes = 24
max_connections = 100
wal_level = logical
max_wal_size = 4GB
output_plugin_libraries = 'pgoutput, test_decoding, citus'
EOF
    as_pg "$BIN/pg_ctl" -D "$data/n$i" -l "$data/n$i.log" -w start >/dev/null
    as_pg "$BIN/psql" -X -q -h 127.0.0.1 -p $((PORT + i)) -d postgres -c 'CREATE EXTENSION citus'
done

q() { as_pg "$BIN/psql" -X -q -At -h 127.0.0.1 -p "$PORT" -d postgres -v ON_ERROR_STOP=1 "$@"; }

q -c "SELECT citus_set_coordinator_host('127.0.0.1', $PORT)" >/dev/null
q -c "SELECT citus_add_node('127.0.0.1', $((PORT + 1)))" >/dev/null
q -c "SELECT citus_add_node('127.0.0.1', $((PORT + 2)))" >/dev/null
q -c 'CREATE EXTENSION migrate'

fill() {
    q <<EOF
DROP TABLE IF EXISTS accounts;
SELECT migrate_unregister(name) FROM migrate.migrations;
SET citus.shard_count = $SHARDS;
CREATE TABLE accounts (id bigint PRIMARY KEY, email text, external_id text, n int NOT NULL DEFAULT 0);
SELECT create_distributed_table('accounts', 'id');
INSERT INTO accounts (id, email) SELECT g, 'User' || g || '@Example.COM' FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE accounts;
CHECKPOINT;
EOF
}

now_s() { date +%s.%N; }

if [ "${SETUP_ONLY:-0}" = 1 ]; then fill; KEEP=1; exit 0; fi
echo "way,rows,shards,seconds" > "$OUT/citus.csv"
fill
t0=$(now_s)
q -c "UPDATE accounts SET external_id = 'ext-' || id::text, n = n + 1" >/dev/null
t1=$(now_s)
upd=$(echo "$t1 - $t0" | bc)
echo "one UPDATE: $upd s"
echo "update,$ROWS,$SHARDS,$upd" >> "$OUT/citus.csv"

for w in 1 2; do
    fill
    q -c "SELECT migrate_register('bench', 'accounts', set_clause => \$\$external_id = 'ext-' || id::text, n = n + 1\$\$, workers => $w)" >/dev/null
    t0=$(now_s)
    q -c "SELECT migrate_start('bench')" >/dev/null
    st=$(q -c "CALL migrate_await('bench', '1 hour')")
    t1=$(now_s)
    secs=$(echo "$t1 - $t0" | bc)
    bad=$(q -c 'SELECT count(*) FILTER (WHERE n <> 1) FROM accounts')
    echo "migrate, workers => $w: $secs s ($(echo "scale=2; $secs / $upd" | bc) x one UPDATE), state $st, rows with n <> 1: $bad"
    q -c "SELECT processed, changed, batches, total_estimate FROM migrate_status('bench')"
    echo "migrate_w$w,$ROWS,$SHARDS,$secs" >> "$OUT/citus.csv"
done
