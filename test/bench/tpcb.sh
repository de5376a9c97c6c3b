#!/bin/bash
# Harm to a standard OLTP workload (issue 10): pgbench's TPC-B-like workload
# (scale SCALE, CLIENTS clients, 2 threads) while the whole of
# pgbench_accounts is changed with filler = md5(aid::text), in one run on
# one throw-away cluster:
#
#   sudo bash test/bench/tpcb.sh
#
#   idle            the workload alone
#   update          one UPDATE of the whole table
#   loop            a hand-written key-range loop, 10,000 keys a batch,
#                   synchronous_commit = off, COMMIT per batch
#   migrate         migrate, default options
#   migrate2        migrate with workers => 2 (issue 12)
#   migrate_alone   migrate with no workload (its own time, for the ratio)
#   migrate2_alone  migrate2 with no workload
# each on a freshly initialised pgbench database, after WARMUP seconds of
# workload.  From pgbench's per-transaction log, over exactly the time the
# change ran: the workload's tps (and its ratio to idle), p99 and max
# latency; plus how long the change took and the table's size after it
# divided by its size after VACUUM FULL; for migrate2, the most workers it
# was seen running (migrate_status.workers_running, polled while waiting).
# Writes tpcb.csv into OUT.
#
# Environment (all optional): SCALE (20), CLIENTS (4), WARMUP (3 s),
# IDLE_SECS (20), WAYS (the list above; idle must come first), OUT,
# SKIP_BUILD=1 (use the installed extension), PGVER (15), PORT.
set -euo pipefail
export LC_ALL=C

PGVER=${PGVER:-15}
SCALE=${SCALE:-20}
CLIENTS=${CLIENTS:-4}
WARMUP=${WARMUP:-3}
IDLE_SECS=${IDLE_SECS:-20}
WAYS=${WAYS:-idle update loop migrate migrate2 migrate_alone migrate2_alone}
BIN="/usr/lib/postgresql/$PGVER/bin"
OUT=${OUT:-/tmp/migrate-tpcb-$(date +%Y%m%d-%H%M%S)}
PORT=${PORT:-5489}
top=$(cd "$(dirname "$0")/../.." && pwd)

. "$top/test/bench/cluster.sh"
bench_build
# pgbench ends when its sessions are terminated (and writes its logs)
stop_workload() {
    q -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
           WHERE application_name = 'pgbench' AND datname = 'bench'" >/dev/null 2>&1 || true
}
bench_before_stop() { stop_workload; }
bench_cluster tpcb "shared_buffers = 1GB" "max_wal_size = 4GB" \
    "checkpoint_timeout = 15min" "checkpoint_completion_target = 0.9"
conn=(-h "$data" -p "$PORT")
q() { as_pg "$BIN/psql" -X -q -At "${conn[@]}" -d bench -v ON_ERROR_STOP=1 "$@"; }
as_pg "$BIN/createdb" "${conn[@]}" bench
q -c "CREATE EXTENSION migrate"
q -c "CREATE PROCEDURE hand_loop() LANGUAGE plpgsql AS \$\$
DECLARE k int := 0; top int;
BEGIN
    SELECT max(aid) INTO top FROM pgbench_accounts;
    SET LOCAL synchronous_commit = off;
    WHILE k < top LOOP
        UPDATE pgbench_accounts SET filler = md5(aid::text) WHERE aid > k AND aid <= k + 10000;
        k := k + 10000;
        COMMIT;
        SET LOCAL synchronous_commit = off;
    END LOOP;
END \$\$"

now() { date +%s.%N; }
# wait for a migration to end, from new sessions (no snapshot held meanwhile)
wait_migration() {
    while [ "$(q -c "SELECT state FROM migrate.migrations WHERE name = '$1'")" = running ]; do
        sleep 0.2
    done
}
# the same, for a migration with several workers: SEEN, the most running
wait_workers() {
    local state=running running
    SEEN=0
    while [ "$state" = running ]; do
        sleep 0.2
        IFS='|' read -r state running < <(q -c "SELECT state, workers_running FROM migrate_status('$1')")
        if [ "${running:-0}" -gt "$SEEN" ]; then SEEN=$running; fi
    done
}

echo "way,seconds,tps,tps_per_idle,p99_ms,max_ms,size_per_packed,workers_seen" > "$OUT/tpcb.csv"
idle_tps=0
for way in $WAYS; do
    q -c "SELECT count(migrate_unregister(name)) FROM migrate.migrations" >/dev/null
    as_pg "$BIN/pgbench" "${conn[@]}" -i -s "$SCALE" -q bench >/dev/null 2>&1
    q -c "VACUUM ANALYZE" -c "CHECKPOINT"
    pbpid='' SEEN=''
    if [ "${way%_alone}" = "$way" ]; then
        rm -f "$data"/pb.*
        (cd "$data" && as_pg "$BIN/pgbench" "${conn[@]}" -n -c "$CLIENTS" -j 2 -T 3600 \
             -l --log-prefix=pb bench >/dev/null 2>&1) &
        pbpid=$!
        sleep "$WARMUP"
    fi
    t0=$(now)
    case $way in
        idle) sleep "$IDLE_SECS" ;;
        update) q -c "UPDATE pgbench_accounts SET filler = md5(aid::text)" ;;
        loop) q -c "CALL hand_loop()" ;;
        migrate2*)
            q -c "SELECT migrate_register('$way', 'pgbench_accounts', set_clause => 'filler = md5(aid::text)', workers => 2)" \
              -c "SELECT migrate_start('$way')" >/dev/null
            wait_workers "$way" ;;
        migrate*)
            q -c "SELECT migrate_register('$way', 'pgbench_accounts', set_clause => 'filler = md5(aid::text)')" \
              -c "SELECT migrate_start('$way')" >/dev/null
            wait_migration "$way" ;;
    esac
    t1=$(now)
    tps=; p99=; max=; ratio=; packed=
    if [ -n "$pbpid" ]; then
        sleep 1
        stop_workload
        wait "$pbpid" || true
        # the log: client_id xact_no latency_us script_no epoch_s epoch_us,
        # the time being the transaction's end.  tps: the transactions that
        # ended while the change ran; latencies: those that began while it
        # ran, wherever they ended (one blocked by the change ends after it)
        read -r tps p99 max < <(cat "$data"/pb.* | awk -v a="$t0" -v b="$t1" '
            { e = $5 + $6 / 1e6; s = e - $3 / 1e6
              if (s >= a && s <= b) print $3 / 1000, (e <= b) }' |
            sort -n | awk -v s="$(echo "$t1 - $t0" | bc)" '
            { v[NR] = $1; n += $2 } END { i = int(NR * 0.99); if (i < 1) i = 1;
                                         printf "%.0f %.2f %.1f\n", n / s, v[i], v[NR] }')
        [ $way = idle ] && idle_tps=$tps
        ratio=$(echo "scale=3; $tps / $idle_tps" | bc)
    fi
    if [ $way != idle ]; then
        size=$(q -c "SELECT pg_table_size('pgbench_accounts')")
        q -c "VACUUM FULL pgbench_accounts"
        packed=$(echo "scale=2; $size / $(q -c "SELECT pg_table_size('pgbench_accounts')")" | bc)
    fi
    secs=$(echo "scale=1; ($t1 - $t0) / 1" | bc)
    echo "$way,$secs,$tps,$ratio,$p99,$max,$packed,$SEEN" >> "$OUT/tpcb.csv"
    printf '%-14s %7s s  tps %6s (%5s x idle)  p99 %6s ms  max %7s ms  size/packed %s%s\n' \
        "$way" "$secs" "${tps:--}" "${ratio:--}" "${p99:--}" "${max:--}" "${packed:--}" \
        "${SEEN:+  workers ran $SEEN}"
done
awk -F, '{ s[$1] = $2 }
         END { if (s["migrate_alone"] > 0) printf "migrate under load took %.2f x its time alone\n", s["migrate"] / s["migrate_alone"]
               if (s["migrate2_alone"] > 0) printf "migrate2 under load took %.2f x its time alone\n", s["migrate2"] / s["migrate2_alone"] }' "$OUT/tpcb.csv"
echo "results in $OUT/tpcb.csv"
