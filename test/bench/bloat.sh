#!/bin/bash
# Table size, time and WAL of a whole-table change on an idle server, in one
# run on one throw-away cluster (issue 10, "No bloat" and "A WAL budget"):
#
#   sudo bash test/bench/bloat.sh [ROWS]        (ROWS defaults to 1000000)
#
#   update            one UPDATE of the whole table
#   migrate           migrate, default options (vacuum => true)
#   migrate_novacuum  migrate with vacuum => false
# each on the same content (rebuilt, VACUUM ANALYZE, CHECKPOINT), with a
# bigint key, with a random uuid key and hash-partitioned 8 ways on a bigint
# key (KEYS: the shapes to run).  Autovacuum runs as it would on a server.
# The migration is waited for the way the README shows, with CALL
# migrate_await, which holds no snapshot that would keep VACUUM from
# reclaiming space (WAIT=migrate_wait: with SELECT migrate_wait, which
# does, for comparison).  The size of a partitioned table is that of its
# partitions.
#
# Prints, per way: seconds, WAL bytes, and the table's size after the change
# divided by the size of a packed copy of the same rows (CREATE TABLE AS,
# what VACUUM FULL would leave), plus the ratios to one UPDATE; writes
# bloat.csv into OUT (default /tmp/migrate-bloat-<timestamp>).
set -euo pipefail
export LC_ALL=C

ROWS=${1:-1000000}
KEYS=${KEYS:-bigint uuid hashpart}
WAIT=${WAIT:-migrate_await}
PGVER=${PGVER:-15}
BIN="/usr/lib/postgresql/$PGVER/bin"
OUT=${OUT:-/tmp/migrate-bloat-$(date +%Y%m%d-%H%M%S)}
PORT=${PORT:-5488}
top=$(cd "$(dirname "$0")/../.." && pwd)

. "$top/test/bench/cluster.sh"
bench_build
bench_cluster bloat "shared_buffers = 256MB" "max_wal_size = 4GB"
q() { as_pg "$BIN/psql" -X -q -At -h "$data" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 "$@"; }

q -c "CREATE EXTENSION migrate"
q <<SQL
CREATE TABLE tpl_bigint AS
SELECT g::bigint AS id, 'User' || g || '@Example.COM' AS email, NULL::text AS external_id,
       now() - g * interval '1 minute' AS created_at
  FROM generate_series(1, $ROWS) g;
CREATE TABLE tpl_uuid AS
SELECT gen_random_uuid() AS id, email, external_id, created_at FROM tpl_bigint;
SQL

echo "key,way,seconds,wal_bytes,size_before,size_after,packed,after_per_packed" > "$OUT/bloat.csv"
now_ms() { date +%s%3N; }

# the size of table $1 (with all its partitions)
size_of() {
    q -c "SELECT COALESCE((SELECT sum(pg_table_size(relid)) FROM pg_partition_tree('$1')), pg_table_size('$1'))"
}

for key in $KEYS; do
    for way in update migrate migrate_novacuum; do
        q >/dev/null 2>&1 <<SQL
DROP TABLE IF EXISTS accounts, packed;
SELECT count(migrate_unregister(name)) FROM migrate.migrations;
$(if [ "$key" = hashpart ]; then
    echo "CREATE TABLE accounts (LIKE tpl_bigint) PARTITION BY HASH (id);"
    for i in 0 1 2 3 4 5 6 7; do
        echo "CREATE TABLE accounts_$i PARTITION OF accounts FOR VALUES WITH (MODULUS 8, REMAINDER $i);"
    done
    echo "INSERT INTO accounts SELECT * FROM tpl_bigint;"
else
    echo "CREATE TABLE accounts AS SELECT * FROM tpl_$key;"
fi)
ALTER TABLE accounts ADD PRIMARY KEY (id);
VACUUM ANALYZE accounts;
CHECKPOINT;
SQL
        before=$(size_of accounts)
        lsn0=$(q -c "SELECT pg_current_wal_insert_lsn()")
        t0=$(now_ms)
        case $way in
            update)
                q -c "UPDATE accounts SET external_id = 'ext-' || id, email = lower(email)" ;;
            migrate|migrate_novacuum)
                vac=true; [ $way = migrate_novacuum ] && vac=false
                q -c "SELECT name FROM migrate_register('bloat', 'accounts',
                          set_clause => \$\$external_id = 'ext-' || id, email = lower(email)\$\$,
                          vacuum => $vac)" >/dev/null
                q -c "SELECT state FROM migrate_start('bloat')" >/dev/null
                if [ "$WAIT" = migrate_wait ]; then
                    q -c "SELECT migrate_wait('bloat', '3 hours')" >/dev/null
                else
                    q -c "CALL migrate_await('bloat', '3 hours')" >/dev/null
                fi ;;
        esac
        t1=$(now_ms)
        wal=$(q -c "SELECT pg_current_wal_insert_lsn() - '$lsn0'::pg_lsn")
        after=$(size_of accounts)
        q -c "CREATE TABLE packed AS SELECT * FROM accounts"
        packed=$(q -c "SELECT pg_table_size('packed')")
        secs=$(awk "BEGIN { printf \"%.2f\", ($t1 - $t0) / 1000 }")
        ratio=$(awk "BEGIN { printf \"%.3f\", $after / $packed }")
        echo "$key,$way,$secs,$wal,$before,$after,$packed,$ratio" >> "$OUT/bloat.csv"
        echo "$key $way: ${secs}s, WAL $wal bytes, size $after = $ratio x packed ($packed)"
    done
done

echo
echo "ratios to one UPDATE (time, WAL, size after / packed):"
awk -F, 'NR > 1 { t[$1","$2] = $3; w[$1","$2] = $4; r[$1","$2] = $8; keys[$1] = 1 }
    END { split("migrate migrate_novacuum", ws, " ");
          for (k in keys) for (i in ws) {
              u = k",update"; m = k","ws[i];
              printf "%s %-17s time %.2f x, WAL %.2f x, size %.3f x packed (one UPDATE: %.3f x)\n",
                     k, ws[i], t[m] / t[u], w[m] / w[u], r[m], r[u] } }' "$OUT/bloat.csv"
echo "results: $OUT/bloat.csv"
