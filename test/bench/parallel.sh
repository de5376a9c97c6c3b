#!/bin/bash
# Parallel workers (issue 12): a whole-table change with workers => 2 against
# one worker, one UPDATE and a hand-written loop, in one run on one
# throw-away cluster:
#
#   sudo bash test/bench/parallel.sh [ROWS]     (ROWS defaults to 2000000)
#
# 1 idle  on the table of bench.sh (setup.sql: accounts, ROWS rows, bigint
#         key), change external_id = 'ext-' || id, email = lower(email),
#         REPEAT rounds, each round every way in turn on the same content
#         (rebuilt from the template, VACUUM ANALYZE, CHECKPOINT):
#           update     one UPDATE of the whole table
#           loop       the hand loop of setup.sql (1,000 keys a batch, COMMIT
#                      per batch) with synchronous_commit = LOOP_SYNC (off,
#                      as migrate's workers commit)
#           migrate1   migrate, default options, workers => 1
#           migrate2   migrate, default options, workers => 2
#         per way: seconds (from register to done, as seen by a sampler
#         polling migrate_status every SAMPLE s from its own session), WAL
#         bytes, the table's size after divided by a packed copy of it
#         (CREATE TABLE AS), and for migrate the most workers_running seen,
#         its ranges and workers_note; ratios to the same round's UPDATE
#         (target: migrate2 <= 0.7 x UPDATE).
# 2 big   migrate with workers => 2 on BIG_ROWS rows: the time of the first
#         and of the last 10 % of the rows, from migrate_status.processed
#         sampled every BIG_SAMPLE s (interpolated; the first 10 % counts
#         from started_at) and from the commit timestamps of the batches
#         (batches.sql: the first 10 % counts from the first batch's commit);
#         target: last / first <= 1.2 per row.
# 3 tpcb  test/bench/tpcb.sh with WAYS="migrate migrate2 migrate_alone
#         migrate2_alone": tps and p99 x their idle twins, max latency, time under load x
#         time alone, for one and for two workers (targets: tps >= 0.85,
#         p99 <= 1.5, max < 1000 ms, time <= 4 x alone).  TPCB_CSV=file reads
#         a tpcb.csv that has those ways instead of running it (bench.sh).
#
# Writes parallel.csv (one row per way and round; with the vacuums of each
# migrate run and the longest time its processed count stood still),
# parallel_samples.csv (every sample: processed, workers_running, ranges,
# vacuums, throttled, and what each worker waits on, from pg_stat_activity),
# parallel_batches.csv and the server's log (parallel-server.log) into OUT
# (default /tmp/migrate-parallel-<timestamp>), and prints a table with the
# ratios and the server log's ERROR, FATAL, PANIC and WARNING messages,
# counted.
#
# Environment (all optional): REPEAT (2 rounds of 1), BIG_ROWS (10000000),
# SAMPLE (0.2 s), BIG_SAMPLE (0.5 s), LOOP_SYNC (off), IDLE_WAYS (update
# loop migrate1 migrate2; migrateN runs N workers), SKIP_IDLE=1, SKIP_BIG=1,
# SKIP_TPCB=1 (skip a part), TPCB_CSV, OUT, SKIP_BUILD=1 (use the installed
# extension), PGVER (15), PORT (5490); CLIENTS and the like pass to tpcb.sh.
set -euo pipefail
export LC_ALL=C

ROWS=${1:-${ROWS:-2000000}}
BIG_ROWS=${BIG_ROWS:-10000000}
REPEAT=${REPEAT:-2}
SAMPLE=${SAMPLE:-0.2}
BIG_SAMPLE=${BIG_SAMPLE:-0.5}
LOOP_SYNC=${LOOP_SYNC:-off}
IDLE_WAYS=${IDLE_WAYS:-update loop migrate1 migrate2}
PGVER=${PGVER:-15}
BIN="/usr/lib/postgresql/$PGVER/bin"
OUT=${OUT:-/tmp/migrate-parallel-$(date +%Y%m%d-%H%M%S)}
PORT=${PORT:-5490}
top=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$top/test/bench"
for v in ROWS BIG_ROWS REPEAT; do
    [[ "${!v}" =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] || { echo "$v must be a positive number, not '${!v}'" >&2; exit 2; }
done

. "$top/test/bench/cluster.sh"
bench_build
COMMIT=$(git -C "$top" log --oneline -1 2>/dev/null || echo unknown commit)
SO_MD5=$(md5sum "$("$BIN/pg_config" --pkglibdir)/migrate.so" | cut -c1-12)
echo "commit $COMMIT; migrate.so md5 $SO_MD5"
# keep the server's log, and report what it complains about
bench_before_stop() {
    [ -f "$data/log" ] && cp "$data/log" "$OUT/parallel-server.log" || true
}
bench_cluster parallel "shared_buffers = 1GB" "work_mem = 16MB" "maintenance_work_mem = 256MB" \
    "max_wal_size = 4GB" "min_wal_size = 1GB" "checkpoint_timeout = 15min" \
    "checkpoint_completion_target = 0.9" "track_commit_timestamp = on" \
    "log_checkpoints = on" "log_autovacuum_min_duration = 0" "log_lock_waits = on"
conn=(-h "$data" -p "$PORT")
q() { as_pg "$BIN/psql" -X -q -At "${conn[@]}" -d bench -v ON_ERROR_STOP=1 "$@"; }
as_pg "$BIN/createdb" "${conn[@]}" bench

SET_CLAUSE="external_id = 'ext-' || id, email = lower(email)"
CSV="$OUT/parallel.csv"
SAMPLES="$OUT/parallel_samples.csv"
BATCHES="$OUT/parallel_batches.csv"
echo "part,round,way,workers,rows,seconds,x_update,wal_bytes,wal_x_update,size_after,packed,after_per_packed,workers_seen,ranges,first10_s,last10_s,last_per_first,first10_ms_per_krow_batches,last10_ms_per_krow_batches,last_per_first_batches,tps,tps_x_idle,p99_ms,p99_x_idle,max_ms,load_x_alone,vacuums,longest_stall_s" >"$CSV"
echo "run,epoch,state,processed,workers_running,ranges,ranges_done,batches,vacuums,throttled,activity,workers_note" >"$SAMPLES"
echo "run,batch,commit_epoch,elapsed_s,rows,duration_ms" >"$BATCHES"
now() { date +%s.%N; }
fmt() { awk -v v="${1:-}" -v d="${2:-2}" 'BEGIN { if (v == "") print "-"; else printf "%.*f\n", d, v }'; }
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print ""; else printf "%.3f\n", a / b }'; }
verdict() {   # value op limit
    awk -v v="${1:-}" -v op="$2" -v l="$3" 'BEGIN { if (v == "") { print "-"; exit }
        ok = (op == "<=" && v <= l) || (op == "<" && v < l) || (op == ">=" && v >= l)
        print ok ? "ok" : "MISSED" }'
}

TEMPLATE_ROWS=0
build_template() {   # rows
    echo "template: $1 rows"
    q -v rows="$1" <"$HERE/setup.sql" >/dev/null
    TEMPLATE_ROWS=$1
}
reset_table() {
    q -c "SET client_min_messages = warning" -c "SELECT count(migrate_unregister(name)) FROM migrate.migrations" \
      -c "DROP TABLE IF EXISTS packed" >/dev/null
    q <"$HERE/reset.sql" >/dev/null
    # a new session: the insert statistics are flushed before VACUUM resets them
    q <"$HERE/settle.sql" >/dev/null
}
verify_table() {   # way
    local bad
    bad=$(q -c "SELECT count(*) FROM accounts WHERE external_id IS DISTINCT FROM 'ext-' || id OR email <> lower(email)")
    [ "$bad" = 0 ] || { echo "$1: $bad rows were not changed" >&2; exit 1; }
}

# Run migration NAME with WORKERS workers on accounts and poll
# migrate_status every INTERVAL s from one session (which holds no snapshot
# between polls) until it is no longer running; sets T0 (before register),
# T1 (the first poll that saw it ended), STATE, SEEN (most workers_running),
# RANGES, VACUUMS, NOTE (the last workers_note seen), STALL (the longest
# time processed stood still while running).  Samples (with what the
# workers wait for, from pg_stat_activity) go to parallel_samples.csv.
run_migration() {   # name workers interval
    local name=$1 workers=$2 iv=$3 line epoch state processed running ranges vacuums note last_p=-1 since=
    local deadline=$((SECONDS + 600 + TEMPLATE_ROWS / 2000))
    T0=$(now)
    q -c "SELECT 1 FROM migrate_register('$name', 'accounts', set_clause => \$\$$SET_CLAUSE\$\$, workers => $workers)" \
      -c "SELECT 1 FROM migrate_start('$name')" >/dev/null
    coproc SQ { exec runuser -u postgres -- "$BIN/psql" -X -q -At -F , "${conn[@]}" -d bench; }
    local sql="SELECT extract(epoch FROM clock_timestamp()), state, processed, workers_running, ranges, ranges_done, batches,
                      vacuums, translate(coalesce(throttled, ''), E',\\n', '; '),
                      (SELECT translate(coalesce(string_agg(coalesce(a.wait_event_type || ':' || a.wait_event, 'on cpu')
                                                            || ' ' || left(a.query, 40), ' / '), ''), E',\\n', '; ')
                         FROM pg_stat_activity a WHERE a.backend_type = 'migrate worker'),
                      translate(coalesce(workers_note, ''), E',\\n', '; ') FROM migrate_status('$name');"
    sql=${sql//$'\n'/ }
    SEEN=0 NOTE='' STATE='' STALL=0
    while :; do
        printf '%s\n' "$sql" >&"${SQ[1]}"
        IFS= read -r -t 60 -u "${SQ[0]}" line || { echo "$name: the sampler got no answer" >&2; break; }
        IFS=, read -r epoch state processed running ranges _ _ vacuums _ _ note <<<"$line"
        echo "$name,$line" >>"$SAMPLES"
        [ "${running:-0}" -gt "$SEEN" ] && SEEN=$running
        [ -n "$note" ] && NOTE=$note
        if [ "$processed" != "$last_p" ]; then
            last_p=$processed since=$epoch
        else
            STALL=$(awk -v a="$since" -v b="$epoch" -v s="$STALL" 'BEGIN { d = b - a; printf "%.1f", (d > s ? d : s) }')
        fi
        T1=$epoch STATE=$state RANGES=$ranges VACUUMS=$vacuums
        [ "$state" = running ] || break
        [ $SECONDS -lt $deadline ] || { echo "$name: still running after its deadline" >&2; break; }
        sleep "$iv"
    done
    eval "exec ${SQ[1]}>&-"
    wait "$SQ_PID" 2>/dev/null || true
    if [ "$STATE" != "done" ]; then
        q -x -c "SELECT * FROM migrate_status('$name')" >&2 || true
        echo "$name: migration ended '$STATE'" >&2
        exit 1
    fi
}

# ---------------------------------------------------------------------------
# 1 idle
# ---------------------------------------------------------------------------
if [ "${SKIP_IDLE:-0}" != 1 ]; then
    build_template "$ROWS"
    declare -A S=() W=()     # seconds and WAL of the round's UPDATE
    for round in $(seq 1 "$REPEAT"); do
        for way in $IDLE_WAYS; do
            reset_table
            lsn0=$(q -c "SELECT pg_current_wal_insert_lsn()")
            workers='' seen='' ranges='' note='' vacs='' stall=''
            case $way in
                update)
                    t0=$(now); q -c "UPDATE accounts SET $SET_CLAUSE"; t1=$(now) ;;
                loop)
                    t0=$(now); q -c "SET synchronous_commit = $LOOP_SYNC" -c "CALL bench_loop(1000)"; t1=$(now) ;;
                migrate[0-9]*)
                    workers=${way#migrate}
                    run_migration "${way}_r$round" "$workers" "$SAMPLE"
                    t0=$T0 t1=$T1 seen=$SEEN ranges=$RANGES note=$NOTE vacs=$VACUUMS stall=$STALL ;;
                *) echo "unknown way $way" >&2; exit 2 ;;
            esac
            wal=$(q -c "SELECT pg_current_wal_insert_lsn() - '$lsn0'::pg_lsn")
            verify_table "$way"
            after=$(q -c "SELECT pg_table_size('accounts')")
            q -c "CREATE TABLE packed AS SELECT * FROM accounts"
            packed=$(q -c "SELECT pg_table_size('packed')")
            secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
            [ "$way" = update ] && S[$round]=$secs W[$round]=$wal
            xu=$(ratio "$secs" "${S[$round]:-}") wu=$(ratio "$wal" "${W[$round]:-}")
            app=$(ratio "$after" "$packed")
            echo "idle,$round,$way,$workers,$ROWS,$secs,$xu,$wal,$wu,$after,$packed,$app,$seen,$ranges,,,,,,,,,,,,,$vacs,$stall" >>"$CSV"
            printf 'round %s %-9s %7ss  %5s x UPDATE  WAL %5s MB (%5s x)  size/packed %s%s\n' "$round" "$way" "$secs" \
                "$(fmt "$xu")" "$(awk -v w="$wal" 'BEGIN { printf "%.0f", w / 1048576 }')" "$(fmt "$wu")" "$(fmt "$app" 3)" \
                "${workers:+  workers $workers, ran $seen, $ranges ranges, $vacs vacuums, longest stall ${stall}s${note:+ ($note)}}"
        done
    done
fi

# ---------------------------------------------------------------------------
# 2 big: first and last 10 % of the rows, workers => 2
# ---------------------------------------------------------------------------
if [ "${SKIP_BIG:-0}" != 1 ]; then
    [ "$TEMPLATE_ROWS" = "$BIG_ROWS" ] || build_template "$BIG_ROWS"
    reset_table
    lsn0=$(q -c "SELECT pg_current_wal_insert_lsn()")
    run_migration big 2 "$BIG_SAMPLE"
    wal=$(q -c "SELECT pg_current_wal_insert_lsn() - '$lsn0'::pg_lsn")
    verify_table big
    started=$(q -c "SELECT extract(epoch FROM started_at) FROM migrate.migrations WHERE name = 'big'")
    processed=$(q -c "SELECT processed FROM migrate_status('big')")
    [ "$processed" = "$BIG_ROWS" ] || echo "WARNING: big processed $processed rows, expected $BIG_ROWS"
    # from the samples: the time processed took to reach 10 %, and from 90 %
    # to all of it, interpolated between samples (started_at counts as 0)
    read -r first last < <(awk -F, -v st="$started" -v n="$BIG_ROWS" '
        function at(x,   i) { for (i = 1; i <= k; i++) if (P[i] >= x)
                                 return T[i - 1] + (x - P[i - 1]) * (T[i] - T[i - 1]) / (P[i] - P[i - 1])
                             return "" }
        $1 == "big" { k++; T[k] = $2; P[k] = $4 }
        BEGIN { T[0] = st; P[0] = 0 }
        END { a = at(0.1 * n); b = at(0.9 * n); c = at(n)
              if (a == "" || b == "" || c == "") print "- -"; else printf "%.3f %.3f\n", a - st, c - b }' "$SAMPLES")
    [ "$first" = - ] && first='' last=''
    # from the commit timestamps of the batches (one xmin per batch): ms per
    # 1,000 rows over the batches holding the first 10 % (after batch 1,
    # which holds the start-up) and the last 10 % of the rows
    q -F , -v run=big -v started="$started" <"$HERE/batches.sql" | grep -v '^$' >"$data/batches_big.csv" || true
    cat "$data/batches_big.csv" >>"$BATCHES"
    read -r bfirst blast < <(awk -F, '
        { N++; E[N] = $3; R[N] = $5; tot += $5 }
        END { if (N < 3) { print "- -"; exit }
              goal = tot / 10
              for (i = 2; i <= N && fr < goal; i++) fr += R[i]
              fd = E[i - 1] - E[1]
              for (j = N; j >= 2 && lr < goal; j--) lr += R[j]
              ld = E[N] - E[j]
              printf "%.4f %.4f\n", fd * 1e6 / fr, ld * 1e6 / lr }' "$data/batches_big.csv")
    [ "$bfirst" = - ] && bfirst='' blast=''
    secs=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.2f", b - a }')
    lpf=$(ratio "$last" "$first") lpfb=$(ratio "$blast" "$bfirst")
    # the longest time between two batches' commits, and when (s after the start)
    read -r gap gap_at < <(awk -F, '$6 + 0 > g { g = $6; at = $4 } END { printf "%.2f %.1f\n", g / 1000, at }' "$data/batches_big.csv")
    echo "big,1,migrate2,2,$BIG_ROWS,$secs,,$wal,,,,,$SEEN,$RANGES,$first,$last,$lpf,$bfirst,$blast,$lpfb,,,,,,,$VACUUMS,$gap" >>"$CSV"
    printf 'big migrate2 %s rows: %ss, WAL %s MB, workers ran %s, %s ranges, %s vacuums, longest gap between batches %ss (ending %ss in)%s\n' \
        "$BIG_ROWS" "$secs" "$(awk -v w="$wal" 'BEGIN { printf "%.0f", w / 1048576 }')" "$SEEN" "$RANGES" "$VACUUMS" \
        "$gap" "$gap_at" "${NOTE:+ ($NOTE)}"
    printf '    samples: first 10%% of rows %ss, last 10%% %ss; batches: %s and %s ms per 1000 rows\n' \
        "$(fmt "$first")" "$(fmt "$last")" "$(fmt "$bfirst" 3)" "$(fmt "$blast" 3)"
fi

# ---------------------------------------------------------------------------
# 3 tpcb: one and two workers under pgbench's TPC-B workload
# ---------------------------------------------------------------------------
tpcb=
if [ -n "${TPCB_CSV:-}" ]; then
    tpcb=$TPCB_CSV
elif [ "${SKIP_TPCB:-0}" != 1 ]; then
    # this cluster stops first (its autovacuum would run under the workload)
    bench_before_stop
    as_pg "$BIN/pg_ctl" -D "$data/pg" -m fast -w stop >/dev/null
    OUT="$OUT" SKIP_BUILD=1 PGVER="$PGVER" WAYS="migrate migrate2 migrate_alone migrate2_alone" \
        bash "$HERE/tpcb.sh"
    tpcb="$OUT/tpcb.csv"
fi
if [ -n "$tpcb" ]; then
    # tpcb.csv: way,seconds,tps,twin_tps,tps_per_twin,p99_ms,twin_p99_ms,
    # p99_per_twin,max_ms,twin_max_ms,lost_xacts,size_per_packed,workers_seen,pacer_share
    awk -F, -v OFS=, 'NR == 1 { next } { s[$1] = $2; tps[$1] = $3; r[$1] = $5; p[$1] = $6; pr[$1] = $8; m[$1] = $9; w[$1] = $13 }
        END { for (i = 1; i <= 2; i++) {
                  way = i == 1 ? "migrate" : "migrate2"
                  if (!(way in s)) continue
                  print "tpcb", 1, way, i, "", s[way], "", "", "", "", "", "", w[way], "", "", "", "", "", "", "",
                        tps[way], r[way], p[way], pr[way], m[way],
                        (s[way "_alone"] > 0 ? sprintf("%.3f", s[way] / s[way "_alone"]) : ""), "", "" } }' "$tpcb" >>"$CSV"
fi

# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------
echo
echo "parallel workers: commit $COMMIT; migrate.so md5 $SO_MD5"
awk -F, 'NR > 1 && $1 == "idle" { printf "  round %s %-9s %8.2f s  %6.2f x UPDATE  WAL %6.2f x  size/packed %.3f%s\n", $2, $3, $6, $7, $9, $12,
                                         $4 != "" ? sprintf("  (workers %s, ran %s, stall %s s)", $4, $13, $28) : "" }' "$CSV"
while IFS=, read -r round x; do
    printf '  round %s: migrate2 %s x UPDATE (target <= 0.7: %s), migrate1 %s x, migrate2 / migrate1 %s\n' "$round" \
        "$(fmt "$x")" "$(verdict "$x" "<=" 0.7)" \
        "$(fmt "$(awk -F, -v r="$round" '$1 == "idle" && $2 == r && $3 == "migrate1" { print $7 }' "$CSV")")" \
        "$(fmt "$(awk -F, -v r="$round" '$1 == "idle" && $2 == r { s[$3] = $6 } END { if (s["migrate1"] > 0 && s["migrate2"] != "") printf "%.3f", s["migrate2"] / s["migrate1"] }' "$CSV")")"
done < <(awk -F, '$1 == "idle" && $3 == "migrate2" { print $2 "," $7 }' "$CSV")
while IFS=, read -r lpf lpfb; do
    printf '  big: last / first 10%% of rows per row %s (target <= 1.2: %s); from batch commit times %s\n' \
        "$(fmt "$lpf" 3)" "$(verdict "$lpf" "<=" 1.2)" "$(fmt "$lpfb" 3)"
done < <(awk -F, '$1 == "big" { print $17 "," $20 }' "$CSV")
while IFS=, read -r way tps p99 max load; do
    printf '  tpcb %-9s tps %s x idle (%s), p99 %s x idle (%s), max %s ms (%s), time %s x alone (%s)\n' "$way" \
        "$(fmt "$tps")" "$(verdict "$tps" ">=" 0.85)" "$(fmt "$p99")" "$(verdict "$p99" "<=" 1.5)" \
        "$(fmt "$max" 1)" "$(verdict "$max" "<" 1000)" "$(fmt "$load")" "$(verdict "$load" "<=" 4)"
done < <(awk -F, -v OFS=, '$1 == "tpcb" { print $3, $22, $24, $25, $26 }' "$CSV")
[ -f "$data/pg/postmaster.pid" ] && bench_before_stop
# what the server complained about, counted by message (the shutdown's
# "terminating background worker" lines are the cluster's own stop)
echo "  server log: $(grep -cE '(ERROR|FATAL|PANIC|WARNING):' "$OUT/parallel-server.log" || true) ERROR/FATAL/PANIC/WARNING lines"
grep -oE '(ERROR|FATAL|PANIC|WARNING):.*' "$OUT/parallel-server.log" | sed -E 's/[0-9]+/N/g' | sort | uniq -c |
    sort -rn | head -10 | sed 's/^/    /' || true
echo "results in $CSV"
