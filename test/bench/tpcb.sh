#!/bin/bash
# Harm to a standard OLTP workload (issues 10 and 19): pgbench's TPC-B-like
# workload (scale SCALE, CLIENTS clients, 2 threads) while the whole of
# pgbench_accounts is changed with filler = md5(aid::text), in one run on
# one throw-away cluster:
#
#   sudo bash test/bench/tpcb.sh
#
#   update          one UPDATE of the whole table
#   loop            a hand-written key-range loop, 10,000 keys a batch,
#                   synchronous_commit = off, COMMIT per batch
#   migrate         migrate, default options
#   migrate2        migrate with workers => 2 (issue 12)
#   migrate_alone   migrate with no workload (its own time, for the ratio)
#   migrate2_alone  migrate2 with no workload
# each on a freshly initialised pgbench database, after WARMUP seconds of
# workload.  A migration is waited for the way the README shows, with
# CALL migrate_await (WAIT=migrate_wait: with SELECT migrate_wait, which
# holds a snapshot all along, for comparison).
#
# The workload's rate drifts over minutes, so each way under load is
# compared with its idle twin: the workload alone, on a database
# initialised afresh the same way, over a window of the same length after
# the same warm-up.  From pgbench's per-transaction logs: tps over the
# window (and its ratio to the twin's), p99 and max latency (and the p99's
# ratio), and the transactions the workload lost to the change:
# (twin's tps - tps) x window.  Plus how long the change took, the table's
# size after it divided by its size after VACUUM FULL, for migrate2 the most
# workers it was seen running, and for migrate the share of its rate at
# rest that the pacer believed the workload kept (the mean of the
# "workload at N%" of throttled, sampled every second) against the share
# measured.  Writes tpcb.csv into OUT and prints the ratios, the lost
# transactions against the hand loop's, and time under load against time
# alone.
#
# Environment (all optional): SCALE (20), CLIENTS (4), WARMUP (3 s),
# WAYS (the list above), WAIT (migrate_await), EXTRA_CONF (a line for
# postgresql.conf), OUT, SKIP_BUILD=1 (use the installed extension), PGVER
# (15), PORT; KEEP=1 keeps the pgbench logs, samples and server log of each
# way in OUT.
set -euo pipefail
export LC_ALL=C

PGVER=${PGVER:-15}
SCALE=${SCALE:-20}
CLIENTS=${CLIENTS:-4}
WARMUP=${WARMUP:-3}
WAYS=${WAYS:-update loop migrate migrate2 migrate_alone migrate2_alone}
WAIT=${WAIT:-migrate_await}
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
    "checkpoint_timeout = 15min" "checkpoint_completion_target = 0.9" \
    ${EXTRA_CONF:+"$EXTRA_CONF"}
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

# a fresh pgbench database, vacuumed and checkpointed
fresh_db() {
    q -c "SELECT count(migrate_unregister(name)) FROM migrate.migrations" >/dev/null
    as_pg "$BIN/pgbench" "${conn[@]}" -i -s "$SCALE" -q bench >/dev/null 2>&1
    q -c "VACUUM ANALYZE" -c "CHECKPOINT"
}
# start the workload (logging every transaction), then warm up
start_workload() {
    rm -f "$data"/pb.*
    (cd "$data" && as_pg "$BIN/pgbench" "${conn[@]}" -n -c "$CLIENTS" -j 2 -T 7200 \
         -l --log-prefix=pb bench >/dev/null 2>&1) &
    pbpid=$!
    sleep "$WARMUP"
}
# stop it; print "tps p99 max" over [$1, $2] from its log: the log has
# client_id xact_no latency_us script_no epoch_s epoch_us, the time being
# the transaction's end.  tps: the transactions that ended in the window;
# latencies: those that began in it, wherever they ended (one blocked by
# the change ends after it)
workload_figures() {
    sleep 1
    stop_workload
    wait "$pbpid" || true
    cat "$data"/pb.* | awk -v a="$1" -v b="$2" '
        { e = $5 + $6 / 1e6; s = e - $3 / 1e6
          if (s >= a && s <= b) print $3 / 1000, (e <= b) }' |
        sort -n | awk -v s="$(echo "$2 - $1" | bc)" '
        { v[NR] = $1; n += $2 } END { i = int(NR * 0.99); if (i < 1) i = 1;
                                     printf "%.0f %.2f %.1f\n", n / s, v[i], v[NR] }'
}
# wait for migration $1 the way the README shows
wait_migration() {
    if [ "$WAIT" = migrate_wait ]; then
        q -c "SELECT migrate_wait('$1', '3 hours')" >/dev/null
    else
        q -c "CALL migrate_await('$1', '3 hours')" >/dev/null
    fi
}
# sample migration $1 every second until it ends: workers_running and the
# pacer's "workload at N%" into $data/samples
sample_migration() {
    while :; do
        q -c "SELECT state, workers_running, coalesce(substring(throttled from 'workload at ([0-9]+)%'), '')
                FROM migrate_status('$1')" 2>/dev/null | tr '|' ' ' >> "$data/samples" || true
        sleep 1
    done
}

echo "way,seconds,tps,twin_tps,tps_per_twin,p99_ms,twin_p99_ms,p99_per_twin,max_ms,twin_max_ms,lost_xacts,size_per_packed,workers_seen,pacer_share" > "$OUT/tpcb.csv"
for way in $WAYS; do
    fresh_db
    pbpid='' seen='' pacer=''
    alone=${way%_alone}
    [ "$alone" = "$way" ] && start_workload
    : > "$data/samples"
    t0=$(now)
    case $way in
        update) q -c "UPDATE pgbench_accounts SET filler = md5(aid::text)" ;;
        loop) q -c "CALL hand_loop()" ;;
        migrate*)
            workers=1
            case $alone in migrate2) workers=2 ;; esac
            q -c "SELECT migrate_register('$way', 'pgbench_accounts', set_clause => 'filler = md5(aid::text)', workers => $workers)" \
              -c "SELECT migrate_start('$way')" >/dev/null
            sample_migration "$way" & sampler=$!
            wait_migration "$way"
            kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
            [ "${KEEP:-0}" = 1 ] && cp "$data/samples" "$OUT/samples.$way"
            seen=$(awk '$2 > m { m = $2 } END { print m + 0 }' "$data/samples")
            pacer=$(awk '$3 != "" { s += $3; n++ } END { if (n) printf "%.2f", s / n / 100 }' "$data/samples") ;;
        *) echo "tpcb.sh: no way $way (each way has its idle twin)" >&2; exit 1 ;;
    esac
    t1=$(now)
    secs=$(echo "scale=1; ($t1 - $t0) / 1" | bc)
    tps='' p99='' max='' ttps='' tp99='' tmax='' ratio='' p99r='' lost=''
    [ -n "$pbpid" ] && read -r tps p99 max < <(workload_figures "$t0" "$t1")
    if [ "${KEEP:-0}" = 1 ]; then
        echo "$t0 $t1" > "$OUT/window.$way"
        cat "$data"/pb.* > "$OUT/pgbench.$way" 2>/dev/null || true
        cp "$data/log" "$OUT/server.log"
    fi
    size=$(q -c "SELECT pg_table_size('pgbench_accounts')")
    q -c "VACUUM FULL pgbench_accounts"
    packed=$(echo "scale=2; $size / $(q -c "SELECT pg_table_size('pgbench_accounts')")" | bc)
    if [ -n "$pbpid" ]; then
        # the idle twin: the same start, the same warm-up, a window as long
        fresh_db
        start_workload
        w0=$(now)
        sleep "$(echo "$t1 - $t0" | bc)"
        read -r ttps tp99 tmax < <(workload_figures "$w0" "$(echo "$w0 + $t1 - $t0" | bc)")
        [ "${KEEP:-0}" = 1 ] && cat "$data"/pb.* > "$OUT/pgbench.$way.twin" 2>/dev/null || true
        ratio=$(echo "scale=3; $tps / $ttps" | bc)
        p99r=$(echo "scale=2; $p99 / $tp99" | bc)
        lost=$(echo "($ttps - $tps) * ($t1 - $t0) / 1" | bc)
    fi
    echo "$way,$secs,$tps,$ttps,$ratio,$p99,$tp99,$p99r,$max,$tmax,$lost,$packed,$seen,$pacer" >> "$OUT/tpcb.csv"
    printf '%-14s %7s s  tps %5s / twin %5s = %5s  p99 %6s ms (%4s x)  max %7s ms  lost %7s  size/packed %s%s%s\n' \
        "$way" "$secs" "${tps:--}" "${ttps:--}" "${ratio:--}" "${p99:--}" "${p99r:--}" "${max:--}" \
        "${lost:--}" "${packed:--}" "${seen:+  workers ran $seen}" "${pacer:+  pacer believed ${pacer}}"
done
awk -F, 'NR > 1 { s[$1] = $2; l[$1] = $11 }
         END { if (s["migrate_alone"] > 0) printf "migrate under load took %.2f x its time alone\n", s["migrate"] / s["migrate_alone"]
               if (s["migrate2_alone"] > 0) printf "migrate2 under load took %.2f x its time alone\n", s["migrate2"] / s["migrate2_alone"]
               if (l["loop"] > 0) {
                   if (l["migrate"] != "") printf "migrate lost %.2f x the transactions the hand loop lost\n", l["migrate"] / l["loop"]
                   if (l["migrate2"] != "") printf "migrate2 lost %.2f x the transactions the hand loop lost\n", l["migrate2"] / l["loop"] } }' "$OUT/tpcb.csv"
echo "results in $OUT/tpcb.csv"
