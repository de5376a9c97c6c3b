#!/bin/bash
# Benchmark of migrate against the alternatives (issue 5), on a throw-away
# PostgreSQL cluster.
#
#   sudo bash test/bench/bench.sh [ROWS]        (ROWS defaults to 2000000)
#
# On a table accounts(id bigint primary key, email text, external_id text,
# created_at timestamptz) of ROWS rows, with the change
#     external_id = 'ext-' || id, email = lower(email)
# it measures, on the same cluster in the same run, each run starting from
# the same content (rebuilt from a template, VACUUM ANALYZE, CHECKPOINT):
#   1  update_idle       one UPDATE of the whole table
#   2  loop_idle         a PL/pgSQL keyset loop, 1,000 keys a batch, COMMIT per batch
#      loop_async_idle   the same loop with synchronous_commit = off (LOOP_ASYNC=0 skips it)
#   3  migrate_idle      migrate_register + migrate_start + migrate_wait, default options
#   4  pgbench_idle      a pgbench point-update workload alone (the baseline)
#      update_load       1 while that workload runs
#      migrate_load      3 while that workload runs
#   5  migrate_big       3 on BIG_ROWS rows: first vs last 10 % of batches
#   6  test/bench/tpcb.sh: pgbench's TPC-B workload while one UPDATE, a hand
#      loop and migrate (workers => 1 and => 2) change pgbench_accounts (tps,
#      p99, max, time, size after / packed; tpcb.csv; SKIP_TPCB=1 skips it)
#   7  test/bench/bloat.sh: time, WAL and size after / packed of one UPDATE
#      and migrate, bigint and uuid keys (bloat.csv; BLOAT_ROWS rows,
#      default 1000000; SKIP_BLOAT=1 skips it)
#   8  test/bench/parallel.sh: parallel workers (issue 12): one UPDATE, the
#      hand loop, migrate with workers => 1 and => 2 on ROWS rows (time, WAL,
#      size after / packed), first vs last 10 % of BIG_ROWS rows with
#      workers => 2 (unless SKIP_BIG=1), and the TPC-B figures of one and two
#      workers from step 6's tpcb.csv (parallel.csv; SKIP_PARALLEL=1 skips it)
# and prints one table, writes results.csv, ratios.csv, samples.csv,
# batches.csv and one PNG chart per migrate run into the output directory.
#
# Environment (all optional):
#   OUT=dir        output directory (default /tmp/migrate-bench-<timestamp>)
#   BIG_ROWS=n     rows of run 5 (default 10000000); SKIP_BIG=1 skips it
#   CLIENTS=n      pgbench clients (default 4)
#   IDLE_SECS=n    length of the idle pgbench baseline (default 20)
#   WARMUP=n       seconds of pgbench before an operation starts (default 3)
#   LOOP_ASYNC=0   skip the synchronous_commit = off loop
#   SKIP_BUILD=1   use the installed extension instead of make && make install
#   MIGRATE_WAIT=await  wait as the README shows, with CALL migrate_await,
#                  which commits between its looks (the default);
#                  MIGRATE_WAIT=function: SELECT migrate_wait, which holds
#                  a snapshot all along (see "xmin horizon" below);
#                  MIGRATE_WAIT=poll: the bench's own polling procedure
#   PGVER=15
#
# Per-batch timing: the sampler polls migrate.migrations (batches, processed,
# last_batch_at) every 50 ms (samples.csv); in addition the cluster runs with
# track_commit_timestamp = on, and after each migrate run the commit time of
# every batch is read back from the xmin of the rows it changed (batches.csv):
# exact per-batch durations without touching the extension.
# The sampler also records the age of the oldest backend_xmin of any other
# session (xmin_age, xmin_holder in samples.csv): a session that holds the
# xmin horizon back keeps VACUUM and HOT pruning from removing the rows the
# run has made dead.
set -euo pipefail
export LC_ALL=C

ROWS=${1:-2000000}
BIG_ROWS=${BIG_ROWS:-10000000}
SKIP_BIG=${SKIP_BIG:-0}
PGVER=${PGVER:-15}
CLIENTS=${CLIENTS:-4}
IDLE_SECS=${IDLE_SECS:-20}
WARMUP=${WARMUP:-3}
LOOP_ASYNC=${LOOP_ASYNC:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
MIGRATE_WAIT=${MIGRATE_WAIT:-await}
OUT=${OUT:-/tmp/migrate-bench-$(date +%Y%m%d-%H%M%S)}
BIN="/usr/lib/postgresql/$PGVER/bin"
SAMPLE_INTERVAL=0.05

usage() { echo "usage: sudo bash test/bench/bench.sh [ROWS]   (ROWS >= 10000, default 2000000)" >&2; exit 2; }
for v in ROWS BIG_ROWS CLIENTS IDLE_SECS WARMUP; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "$v must be a number, not '${!v}'" >&2; usage; }
done
[ "$ROWS" -ge 10000 ] || usage
[ "$BIG_ROWS" -ge 10000 ] || { echo "BIG_ROWS must be >= 10000" >&2; exit 2; }
[ "$CLIENTS" -ge 1 ] && [ "$IDLE_SECS" -ge 1 ] || usage
case "$MIGRATE_WAIT" in await|function|poll) ;; *) echo "MIGRATE_WAIT must be await, function or poll" >&2; exit 2 ;; esac
if [ "$(id -u)" -ne 0 ]; then
    echo "bench.sh installs packages and the extension: run it as root (sudo bash test/bench/bench.sh)" >&2
    exit 2
fi

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
cd "$TOP"

T_BEGIN=$SECONDS
step() { printf '\n[%s +%4ds] === %s\n' "$(date +%H:%M:%S)" $((SECONDS - T_BEGIN)) "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf '\nbench: ERROR: %s\n' "$*" >&2; exit 1; }
# seconds allowed for one operation on n rows (bounds every wait)
op_timeout() { echo $((600 + $1 / 2000)); }

# ---------------------------------------------------------------------------
# Dependencies, build
# ---------------------------------------------------------------------------
step "installing dependencies (test/install-deps.sh)"
bash test/install-deps.sh test
if ! command -v gnuplot >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null
fi
if [ ! -x "$BIN/pgbench" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-client-$PGVER" >/dev/null
fi
for c in "$BIN/pgbench" "$BIN/psql" "$BIN/initdb" gnuplot timeout md5sum; do
    command -v "$c" >/dev/null || die "missing $c"
done

if [ "$SKIP_BUILD" = 1 ]; then
    step "using the installed extension (SKIP_BUILD=1)"
else
    step "building and installing migrate"
    make -s PG_CONFIG="$BIN/pg_config" || die "make failed"
    make -s install PG_CONFIG="$BIN/pg_config" || die "make install failed"
fi
SO="$("$BIN/pg_config" --pkglibdir)/migrate.so"
[ -f "$SO" ] || die "$SO is not installed"
COMMIT=$(git -C "$TOP" log --oneline -1 2>/dev/null || echo unknown)
COMMIT_HASH=$(git -C "$TOP" log -1 --format=%h 2>/dev/null || echo unknown)
DIRTY=$(git -C "$TOP" status --porcelain -- src sql Makefile '*.control' 2>/dev/null | wc -l)
[ "$DIRTY" -gt 0 ] && COMMIT_NOTE="$COMMIT (+ uncommitted changes in $DIRTY files)" || COMMIT_NOTE="$COMMIT"
SO_MD5=$(md5sum "$SO" | cut -c1-12)

mkdir -p "$OUT"
[ -z "$(ls -A "$OUT")" ] || die "output directory $OUT is not empty"
info "output directory: $OUT"

# ---------------------------------------------------------------------------
# A throw-away cluster, owned by postgres, in a temporary directory
# ---------------------------------------------------------------------------
step "starting a throw-away cluster"
DIR=$(mktemp -d /tmp/migrate-bench-cluster.XXXXXX)
chown postgres: "$DIR"
chmod 700 "$DIR"
BG_PIDS=()

as_postgres() { (cd "$DIR" && runuser -u postgres -- "$@"); }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    for p in "${BG_PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null && kill "$p" 2>/dev/null
    done
    if [ -f "$DIR/data/postmaster.pid" ]; then
        as_postgres "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w -t 60 stop >/dev/null 2>&1
    fi
    [ -f "$DIR/server.log" ] && [ -d "$OUT" ] && cp "$DIR/server.log" "$OUT/server.log"
    rm -rf "$DIR"
    if [ $rc -ne 0 ]; then
        echo "bench: failed (exit $rc); partial output and the server log are in $OUT" >&2
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# a port nobody listens on (bash's /dev/tcp connects if one does); never 5499
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=
for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 30000))
    [ "$p" -eq 5499 ] && continue
    if ! port_in_use "$p" && [ ! -e "/tmp/.s.PGSQL.$p" ]; then
        PORT=$p
        break
    fi
done
[ -n "$PORT" ] || die "no free port found"

as_postgres "$BIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --no-locale >/dev/null
cat >>"$DIR/data/postgresql.conf" <<EOF
# migrate benchmark (2 cores)
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'migrate'
max_connections = 40
shared_buffers = '1GB'
work_mem = '16MB'
maintenance_work_mem = '256MB'
effective_cache_size = '4GB'
max_wal_size = '4GB'
min_wal_size = '1GB'
checkpoint_timeout = '15min'
checkpoint_completion_target = 0.9
track_commit_timestamp = on          # per-batch timing from commit timestamps
log_checkpoints = on
log_autovacuum_min_duration = 0
log_lock_waits = on
logging_collector = off
EOF
as_postgres "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 120 start >/dev/null \
    || { cat "$DIR/server.log" >&2; die "the cluster did not start"; }
info "cluster in $DIR, port $PORT (removed when this script ends)"
info "commit $COMMIT_NOTE; migrate.so md5 $SO_MD5"

# psql on the bench database (stdin or -c); qt SECONDS ... bounds it
q() { as_postgres "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -d bench "$@"; }
qt() { local t=$1; shift; (cd "$DIR" && timeout -k 10 "$t" runuser -u postgres -- \
        "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -d bench "$@"); }
as_postgres "$BIN/createdb" -h "$DIR" -p "$PORT" bench
cp "$HERE/point_update.sql" "$DIR/point_update.sql"
chown postgres: "$DIR/point_update.sql"

# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------
declare -A V=()            # V[run.metric]
RUNS=()                    # runs in order
SAMPLES="$OUT/samples.csv"
BATCHES="$OUT/batches.csv"
echo "run,elapsed_s,epoch,state,batches,processed,batch_size,worker_rss_kb,rows_per_s,rows_per_s_window,batch_ms,xmin_age,xmin_holder" >"$SAMPLES"
echo "run,batch,commit_epoch,elapsed_s,rows,duration_ms" >"$BATCHES"

calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
# a / b, or empty when either is missing or b is 0
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print ""; else printf "%.3f", a / b }'; }

# n p50 p99 max mean of a file of numbers, one a line
dist() {
    local f=$1 n
    sort -g -o "$f" "$f"
    n=$(wc -l <"$f")
    if [ "$n" -eq 0 ]; then echo "0    "; return; fi
    awk -v n="$n" 'BEGIN { i50 = int((n * 50 + 99) / 100); i99 = int((n * 99 + 99) / 100) }
        { s += $1 } NR == i50 { p50 = $1 } NR == i99 { p99 = $1 } END { printf "%d %.3f %.3f %.3f %.3f\n", n, p50, p99, $1, s / n }' "$f"
}

# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------
TEMPLATE_ROWS=0
build_template() {
    local rows=$1 t0=$SECONDS
    step "building the template table: $rows rows"
    qt $((600 + rows / 1000)) -v rows="$rows" <"$HERE/setup.sql"
    q -At -c "SELECT count(*) || ' rows, ' || count(*) FILTER (WHERE email <> lower(email)) || ' mixed-case emails, '
                     || pg_size_pretty(pg_total_relation_size('accounts_template'))
                FROM accounts_template" | sed 's/^/    /'
    TEMPLATE_ROWS=$rows
    info "template built in $((SECONDS - t0))s"
}

reset_table() {
    local t0=$SECONDS
    qt $((600 + TEMPLATE_ROWS / 1000)) <"$HERE/reset.sql"
    # a new session: the insert statistics are flushed before VACUUM resets them
    qt $((600 + TEMPLATE_ROWS / 1000)) <"$HERE/settle.sql"
    info "accounts rebuilt from the template ($TEMPLATE_ROWS rows), VACUUM ANALYZE, CHECKPOINT: $((SECONDS - t0))s"
}

verify() {
    local bad
    bad=$(qt 600 -At -c "SELECT count(*) FROM accounts
                           WHERE external_id IS DISTINCT FROM 'ext-' || id OR email <> lower(email)")
    [ "$bad" = 0 ] || die "$1: $bad rows were not changed"
}

# WAL position and checkpoint count before a run
SNAP_LSN= SNAP_CKPT=
snap() {
    read -r SNAP_LSN SNAP_CKPT < <(q -At -F ' ' -c "SELECT pg_current_wal_lsn(),
        (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter)")
}
# WAL written, checkpoints, size of the table and autovacuums during a run
post_stats() {
    local run=$1 line
    sleep 0.6     # let the statistics of finished sessions arrive
    line=$(q -At -F ' ' -c "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$SNAP_LSN') / 1048576.0, 1),
            (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter) - $SNAP_CKPT,
            round(pg_total_relation_size('accounts') / 1048576.0, 1),
            coalesce((SELECT autovacuum_count FROM pg_stat_user_tables WHERE relid = 'accounts'::regclass), 0)
            + (SELECT count(*) FROM pg_stat_progress_vacuum WHERE relid = 'accounts'::regclass)")
    read -r V[$run.wal_mb] V[$run.checkpoints] V[$run.size_after_mb] V[$run.autovacuums] <<<"$line"
    info "$run: WAL ${V[$run.wal_mb]} MB, table+index after ${V[$run.size_after_mb]} MB, autovacuums ${V[$run.autovacuums]}, checkpoints ${V[$run.checkpoints]}"
}

record_time() {   # run rows t0 t1
    local run=$1
    RUNS+=("$run")
    V[$run.rows]=$2
    V[$run.seconds]=$(calc "$4 - $3")
    V[$run.rows_per_s]=$(calc "$2 / ($4 - $3)")
    V[$run.t0]=$3
    V[$run.t1]=$4
    info "$run: $(printf '%.2f' "${V[$run.seconds]}") s ($(printf '%.0f' "${V[$run.rows_per_s]}") rows/s)"
}

# ---------------------------------------------------------------------------
# The operations; each prints "t0 t1" (server clock, epoch seconds)
# ---------------------------------------------------------------------------
SET_CLAUSE="external_id = 'ext-' || id, email = lower(email)"

op_update() {
    local to=$1
    qt $((to + 30)) -At -F ' ' <<SQL
SET statement_timeout = '${to}s';
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
UPDATE accounts SET $SET_CLAUSE;
SELECT :t0, extract(epoch FROM clock_timestamp());
SQL
}

op_loop() {
    local to=$1 sync=$2
    qt $((to + 30)) -At -F ' ' <<SQL
SET statement_timeout = '${to}s';
SET synchronous_commit = $sync;
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
CALL bench_loop(1000);
SELECT :t0, extract(epoch FROM clock_timestamp());
SQL
}

op_migrate() {
    local to=$1 name=$2 wait
    if [ "$MIGRATE_WAIT" = poll ]; then
        wait="CALL bench_wait('$name', $to, NULL)"          # one output column: state
    elif [ "$MIGRATE_WAIT" = await ]; then
        wait="CALL migrate_await('$name', '$to seconds')"   # one output column: state
    else
        wait="SELECT migrate_wait('$name', '$to seconds') AS state"
    fi
    qt $((to + 30)) -At -F ' ' <<SQL
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT name AS registered FROM migrate_register('$name', 'accounts',
           set_clause => \$\$$SET_CLAUSE\$\$) \gset
SELECT worker_pid AS wpid FROM migrate_start('$name') \gset
$wait \gset
SELECT :t0, extract(epoch FROM clock_timestamp()), :'state';
SQL
}

# ---------------------------------------------------------------------------
# The sampler: migrate.migrations every 50 ms through one psql session,
# plus the worker's private memory (RssAnon) from /proc
# ---------------------------------------------------------------------------
SAMPLER_PID=
RSS=
rss_of() {
    local k v rest
    RSS=
    [ "${1:-0}" -gt 0 ] 2>/dev/null && [ -r "/proc/$1/status" ] || return 0
    while read -r k v rest; do
        if [ "$k" = "RssAnon:" ]; then RSS=$v; return 0; fi
    done <"/proc/$1/status" 2>/dev/null || true
}

sampler() {   # name rawfile stopfile timeout
    set +e
    local name=$1 raw=$2 stop=$3 deadline=$((SECONDS + $4)) line pid last=0
    coproc SQ { cd "$DIR" && exec runuser -u postgres -- "$BIN/psql" -X -q -At -F , \
                    -h "$DIR" -p "$PORT" -d bench; }
    local sql
    # one row always; the worker pid last (the loop reads it from the end)
    sql=$(cat <<SQL
SELECT extract(epoch FROM clock_timestamp()), coalesce(m.state, ''), coalesce(m.batches, 0),
       coalesce(m.processed, 0), coalesce(extract(epoch FROM m.last_batch_at)::text, ''),
       coalesce(extract(epoch FROM m.started_at)::text, ''), coalesce(m.batch_size, 0),
       coalesce(x.age::text, ''), coalesce(x.holder, ''), coalesce(m.worker_pid, 0)
  FROM (SELECT 1) AS one
  LEFT JOIN migrate.migrations m ON m.name = '$name'
  LEFT JOIN LATERAL (
       SELECT age(a.backend_xmin) AS age,
              a.backend_type || ': ' || regexp_replace(left(a.query, 40), '[,"[:space:]]+', ' ', 'g') AS holder
         FROM pg_stat_activity a
        WHERE a.backend_xmin IS NOT NULL AND a.pid <> pg_backend_pid()
        ORDER BY age(a.backend_xmin) DESC LIMIT 1) x ON true;
SQL
)
    sql=${sql//$'\n'/ }
    while :; do
        [ -e "$stop" ] && last=1
        printf '%s\n' "$sql" >&"${SQ[1]}" || break
        IFS= read -r -t 10 -u "${SQ[0]}" line || break
        pid=${line##*,}
        rss_of "$pid"
        printf '%s,%s\n' "$line" "$RSS" >>"$raw"
        [ "$last" = 1 ] || [ $SECONDS -ge "$deadline" ] && break
        sleep "$SAMPLE_INTERVAL"
    done
    eval "exec ${SQ[1]}>&-"
    wait "$SQ_PID" 2>/dev/null
}

start_sampler() {   # name timeout
    rm -f "$DIR/stop_$1"
    sampler "$1" "$DIR/samples_$1.raw" "$DIR/stop_$1" "$2" &
    SAMPLER_PID=$!
    BG_PIDS+=("$SAMPLER_PID")
}

stop_sampler() {   # name
    touch "$DIR/stop_$1"
    for _ in $(seq 1 150); do
        kill -0 "$SAMPLER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$SAMPLER_PID" 2>/dev/null && { kill "$SAMPLER_PID"; info "sampler did not stop; killed"; }
    wait "$SAMPLER_PID" 2>/dev/null || true
}

# samples_<run>.raw: epoch,state,batches,processed,last_batch_epoch,started_epoch,batch_size,
#                    xmin_age,xmin_holder,worker_pid,rss
# -> samples.csv rows, from migrate_start on, up to the first sample that is no longer running
process_samples() {   # run started_epoch
    local run=$1 started=$2 raw="$DIR/samples_$1.raw"
    [ -s "$raw" ] || { info "$run: no samples"; return 0; }
    # the window of the smoothed rate: 1 s, or 3 mean batches when batches are longer
    V[$run.rate_window_s]=$(awk -F, -v st="$started" '$5 != "" && $3 > 0 { d = ($5 - st) / $3 }
        END { w = 3 * d; if (w < 1) w = 1; printf "%.1f", w }' "$raw")
    awk -F, -v OFS=, -v run="$run" -v st="$started" -v win="${V[$run.rate_window_s]}" '
        $6 == "" || $2 == "registered" { next }
        {
            t = $1; b = $5 == "" ? st : $5
            if (n == 0) { T[0] = st; P[0] = 0; pt = st; pp = 0; pb = 0; plb = st; j = 0; n = 1 }
            T[n] = t; P[n] = $4
            while (j + 1 < n && T[j + 1] <= t - win) j++
            # rates only while running: a later sample also counts the time after the end
            rate = $2 == "running" && t > pt ? ($4 - pp) / (t - pt) : ""
            rate1 = $2 == "running" && t > T[j] ? ($4 - P[j]) / (t - T[j]) : ""
            bms = $3 > pb ? (b - plb) * 1000 / ($3 - pb) : ""
            print run, sprintf("%.3f", t - st), sprintf("%.6f", t), $2, $3, $4, $7, $11,
                  rate == "" ? "" : sprintf("%.0f", rate), rate1 == "" ? "" : sprintf("%.0f", rate1),
                  bms == "" ? "" : sprintf("%.3f", bms), $8, $9
            pt = t; pp = $4; pb = $3; plb = b; n++
            if ($2 != "running") exit
        }' "$raw" >>"$SAMPLES"
    # worker memory, first and largest sample
    read -r V[$run.rss_first_kb] V[$run.rss_max_kb] < <(awk -F, -v run="$run" '
        $1 == run && $8 != "" { if (f == "") f = $8; if ($8 + 0 > m) m = $8 } END { print f, m }' "$SAMPLES") || true
    # first / last 10 % of batches from the samples (last_batch_at is per batch)
    read -r V[$run.first10_ms_samples] V[$run.last10_ms_samples] < <(awk -F, -v st="$started" '
        $6 == "" || $2 == "registered" || $5 == "" { next }
        { N++; B[N] = $3; L[N] = $5 }
        END {
            if (N == 0) exit
            tot = B[N]; k = int(tot / 10); if (k < 1) k = 1
            for (i = 1; i <= N && B[i] < k; i++) ;
            f = i <= N && B[i] > 0 ? (L[i] - st) * 1000 / B[i] : ""
            for (i = N; i >= 1 && B[i] > tot - k; i--) ;
            l = i >= 1 && tot > B[i] ? (L[N] - L[i]) * 1000 / (tot - B[i]) : ""
            printf "%s %s\n", f == "" ? "-" : sprintf("%.3f", f), l == "" ? "-" : sprintf("%.3f", l)
        }' "$raw") || true
    # the oldest xmin of another session while the migration ran, and who held it
    V[$run.xmin_age_max]=$(awk -F, -v run="$run" '$1 == run && $12 + 0 > m { m = $12 } END { print m + 0 }' "$SAMPLES")
    V[$run.xmin_holder]=$(awk -F, -v run="$run" '$1 == run && $12 + 0 > m { m = $12; h = $13 } END { print h }' "$SAMPLES")
    info "$run: oldest xmin of another session: ${V[$run.xmin_age_max]} transactions old (${V[$run.xmin_holder]:-none})"
    [ "${V[$run.first10_ms_samples]:-}" = - ] && V[$run.first10_ms_samples]=
    [ "${V[$run.last10_ms_samples]:-}" = - ] && V[$run.last10_ms_samples]=
    return 0
}

# per-batch commit times (batches.sql) and their distribution
process_batches() {   # run started_epoch
    local run=$1 started=$2 f="$DIR/batches_$1.csv" d
    qt 900 -At -F , -v run="$run" -v started="$started" <"$HERE/batches.sql" >"$f"
    cat "$f" >>"$BATCHES"
    cut -d, -f6 "$f" >"$DIR/batch_ms_$run"
    read -r V[$run.batches_seen] V[$run.batch_p50_ms] V[$run.batch_p99_ms] V[$run.batch_max_ms] V[$run.batch_mean_ms] \
        <<<"$(dist "$DIR/batch_ms_$run")"
    # first 10 % (without batch 1, which includes the worker's start-up) and last 10 %
    read -r V[$run.first10_ms] V[$run.last10_ms] < <(awk -F, '
        { N++; D[N] = $6 }
        END {
            if (N < 3) { print "- -"; exit }
            k = int(N / 10); if (k < 1) k = 1
            for (i = 2; i <= k + 1 && i <= N; i++) { f += D[i]; nf++ }
            for (i = N - k + 1; i <= N; i++) { l += D[i]; nl++ }
            printf "%.3f %.3f\n", f / nf, l / nl
        }' "$f")
    [ "${V[$run.first10_ms]}" = - ] && V[$run.first10_ms]= && V[$run.last10_ms]=
    # the same per row, for batches of varying size: ms per 1,000 rows over
    # the batches holding the first and the last 10 % of the rows (batch 1 left out)
    read -r V[$run.first10_ms_per_krow] V[$run.last10_ms_per_krow] < <(awk -F, '
        { N++; D[N] = $6; R[N] = $5; tot += $5 }
        END {
            if (N < 3) { print "- -"; exit }
            goal = (tot - R[1]) / 10
            for (i = 2; i <= N && fr < goal; i++) { fr += R[i]; fd += D[i] }
            for (i = N; i >= 2 && lr < goal; i--) { lr += R[i]; ld += D[i] }
            if (fr == 0 || lr == 0) { print "- -"; exit }
            printf "%.4f %.4f\n", fd * 1000 / fr, ld * 1000 / lr
        }' "$f")
    [ "${V[$run.first10_ms_per_krow]}" = - ] && V[$run.first10_ms_per_krow]= && V[$run.last10_ms_per_krow]=
    info "$run: ${V[$run.batches_seen]} batches; batch ms p50 ${V[$run.batch_p50_ms]}, p99 ${V[$run.batch_p99_ms]}, max ${V[$run.batch_max_ms]}; first 10 % ${V[$run.first10_ms]:--} ms, last 10 % ${V[$run.last10_ms]:--} ms"
}

# one migrate run (table already reset): sampler, register/start/wait, checks
MIG_T0= MIG_T1=
migrate_run() {   # run rows
    local run=$1 rows=$2 to out state line
    to=$(op_timeout "$rows")
    start_sampler "$run" "$to"
    out=$(op_migrate "$to" "$run") || { stop_sampler "$run"; \
        q -x -c "SELECT * FROM migrate_status('$run')" >&2 || true; die "$run: migrate_start/migrate_wait failed"; }
    stop_sampler "$run"
    read -r MIG_T0 MIG_T1 state <<<"$out"
    if [ "$state" != done ]; then
        q -x -c "SELECT * FROM migrate_status('$run')" >&2 || true
        die "$run: migration ended '$state'"
    fi
    line=$(q -At -F ' ' -c "SELECT extract(epoch FROM started_at), extract(epoch FROM finished_at), batches, processed, changed
                             FROM migrate.migrations WHERE name = '$run'")
    read -r V[$run.started] V[$run.finished] V[$run.batches] V[$run.processed] V[$run.changed] <<<"$line"
    V[$run.worker_seconds]=$(calc "${V[$run.finished]} - ${V[$run.started]}")
    info "$run: migrate_wait -> $state; worker $(printf '%.2f' "${V[$run.worker_seconds]}") s, ${V[$run.batches]} batches, ${V[$run.processed]} processed, ${V[$run.changed]} changed"
    [ "${V[$run.processed]}" = "$rows" ] || info "WARNING: $run processed ${V[$run.processed]} rows, expected $rows"
    process_samples "$run" "${V[$run.started]}"
    process_batches "$run" "${V[$run.started]}"
}

# ---------------------------------------------------------------------------
# pgbench: the concurrent point-update workload
# ---------------------------------------------------------------------------
PGB_PID=
JOBS=$(( CLIENTS < $(nproc) ? CLIENTS : $(nproc) ))
start_pgbench() {   # run max_seconds
    local run=$1
    rm -f "$DIR"/pgb_"$run".*
    (cd "$DIR" && exec runuser -u postgres -- "$BIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$JOBS" -T "$2" \
         -D rows="$ROWS" -f "$DIR/point_update.sql" -l --log-prefix="$DIR/pgb_$run" \
         -h "$DIR" -p "$PORT" bench) >"$OUT/pgbench_$run.out" 2>&1 &
    PGB_PID=$!
    BG_PIDS+=("$PGB_PID")
    sleep "$WARMUP"
    kill -0 "$PGB_PID" 2>/dev/null || { cat "$OUT/pgbench_$run.out" >&2; die "pgbench ended early"; }
    info "pgbench running: $CLIENTS clients, $JOBS threads (${WARMUP}s warm-up)"
}

stop_pgbench() {
    sleep 1      # transactions held up by the operation finish and are logged
    q -At -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE application_name = 'pgbench' AND datname = current_database()" >/dev/null
    for _ in $(seq 1 300); do
        kill -0 "$PGB_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$PGB_PID" 2>/dev/null && { kill "$PGB_PID"; info "pgbench did not stop; killed"; }
    wait "$PGB_PID" 2>/dev/null || true      # exits 2: its clients were terminated
}

# tps (transactions completed in [t0, t1]) and latency of the transactions
# that overlap [t0, t1], from pgbench's per-transaction logs
pgbench_stats() {   # run t0 t1
    local run=$1 s=$2 e=$3 lat="$DIR/lat_$1" counts
    ls "$DIR"/pgb_"$run".* >/dev/null 2>&1 || die "$run: pgbench wrote no transaction log"
    : >"$lat"
    counts=$(cat "$DIR"/pgb_"$run".* | awk -v s="$s" -v e="$e" -v lf="$lat" '
        $3 == "failed" { if ($5 + $6 / 1e6 >= s && $5 + $6 / 1e6 <= e) f++; next }
        $3 == "skipped" { next }
        {
            end = $5 + $6 / 1e6; l = $3 / 1000.0
            if (end >= s && end <= e) n++
            if (end >= s && end - l / 1000.0 <= e) printf "%.3f\n", l > lf
        }
        END { printf "%d %d\n", n, f }')
    read -r V[$run.tx] V[$run.failed_tx] <<<"$counts"
    V[$run.tps]=$(calc "${V[$run.tx]} / ($e - $s)")
    read -r _ V[$run.lat_p50_ms] V[$run.lat_p99_ms] V[$run.lat_max_ms] _ <<<"$(dist "$lat")"
    cat "$DIR"/pgb_"$run".* | gzip -1 >"$OUT/pgbench_$run.log.gz"
    info "$run: pgbench $(printf '%.0f' "${V[$run.tps]}") tps; latency ms p50 ${V[$run.lat_p50_ms]}, p99 ${V[$run.lat_p99_ms]}, max ${V[$run.lat_max_ms]}; ${V[$run.failed_tx]} failed"
}

# ===========================================================================
# The runs
# ===========================================================================
TO=$(op_timeout "$ROWS")
build_template "$ROWS"

step "1. one UPDATE of the whole table"
reset_table; snap
out=$(op_update "$TO") || die "update_idle failed"
read -r t0 t1 <<<"$out"; record_time update_idle "$ROWS" "$t0" "$t1"
verify update_idle; post_stats update_idle

step "2. PL/pgSQL keyset loop, 1,000 keys a batch, COMMIT per batch"
reset_table; snap
out=$(op_loop "$TO" on) || die "loop_idle failed"
read -r t0 t1 <<<"$out"; record_time loop_idle "$ROWS" "$t0" "$t1"
verify loop_idle; post_stats loop_idle

if [ "$LOOP_ASYNC" = 1 ]; then
    step "2b. the same loop with synchronous_commit = off (as migrate's worker commits)"
    reset_table; snap
    out=$(op_loop "$TO" off) || die "loop_async_idle failed"
    read -r t0 t1 <<<"$out"; record_time loop_async_idle "$ROWS" "$t0" "$t1"
    verify loop_async_idle; post_stats loop_async_idle
fi

step "3. migrate_register + migrate_start + migrate_wait, default options"
reset_table; snap
migrate_run migrate_idle "$ROWS"
record_time migrate_idle "$ROWS" "$MIG_T0" "$MIG_T1"
verify migrate_idle; post_stats migrate_idle

step "4a. idle baseline: pgbench point updates alone for ${IDLE_SECS}s"
reset_table; snap
start_pgbench pgbench_idle $((WARMUP + IDLE_SECS + 120))
t0=$EPOCHREALTIME; sleep "$IDLE_SECS"; t1=$EPOCHREALTIME
stop_pgbench
RUNS+=(pgbench_idle); V[pgbench_idle.seconds]=$(calc "$t1 - $t0")
pgbench_stats pgbench_idle "$t0" "$t1"; post_stats pgbench_idle

step "4b. one UPDATE while pgbench runs"
reset_table; snap
start_pgbench update_load $((WARMUP + TO + 120))
out=$(op_update "$TO") || { stop_pgbench; die "update_load failed"; }
stop_pgbench
read -r t0 t1 <<<"$out"; record_time update_load "$ROWS" "$t0" "$t1"
pgbench_stats update_load "$t0" "$t1"
verify update_load; post_stats update_load

step "4c. migrate while pgbench runs"
reset_table; snap
start_pgbench migrate_load $((WARMUP + TO + 120))
migrate_run migrate_load "$ROWS"
stop_pgbench
record_time migrate_load "$ROWS" "$MIG_T0" "$MIG_T1"
pgbench_stats migrate_load "$MIG_T0" "$MIG_T1"
verify migrate_load; post_stats migrate_load

if [ "$SKIP_BIG" = 1 ]; then
    step "5. large run skipped (SKIP_BIG=1)"
else
    step "5. migrate on $BIG_ROWS rows: first vs last 10 % of batches"
    [ "$BIG_ROWS" = "$TEMPLATE_ROWS" ] || build_template "$BIG_ROWS"
    reset_table; snap
    migrate_run migrate_big "$BIG_ROWS"
    record_time migrate_big "$BIG_ROWS" "$MIG_T0" "$MIG_T1"
    verify migrate_big; post_stats migrate_big
fi

# ===========================================================================
# Report
# ===========================================================================
step "charts"
for run in migrate_idle migrate_load migrate_big; do
    grep -q "^$run," "$SAMPLES" || continue
    png="$OUT/$run.png"
    gnuplot -e "samples='$SAMPLES'; batches='$BATCHES'; run='$run'; out='$png'; win='${V[$run.rate_window_s]:-1}'; \
                ttl='migrate $run: ${V[$run.rows]} rows, $(printf '%.1f' "${V[$run.seconds]}") s, commit $COMMIT_HASH'" \
            "$HERE/chart.gp" 2>"$DIR/gnuplot.err" || { cat "$DIR/gnuplot.err" >&2; die "gnuplot failed"; }
    info "$png"
    # the charts the README shows (DOCS_CHARTS=0 leaves docs/ alone)
    if [ "${DOCS_CHARTS:-1}" = 1 ] && [ $run != migrate_big ]; then
        cp "$png" "$HERE/../../docs/bench-$run.png"
        info "docs/bench-$run.png"
    fi
done

g() { local v=${V[$1]:-}; [ -n "$v" ] && printf "%.${2:-2}f" "$v" || printf -- '-'; }

{
    echo "run,rows,seconds,rows_per_s,batches,batch_p50_ms,batch_p99_ms,batch_max_ms,first10_ms,last10_ms,first10_ms_per_krow,last10_ms_per_krow,first10_ms_samples,last10_ms_samples,wal_mb,size_after_mb,autovacuums,checkpoints,worker_rss_first_kb,worker_rss_max_kb,xmin_age_max,tps,lat_p50_ms,lat_p99_ms,lat_max_ms,failed_tx"
    for r in "${RUNS[@]}"; do
        line=$r
        for m in rows seconds rows_per_s batches batch_p50_ms batch_p99_ms batch_max_ms first10_ms last10_ms first10_ms_per_krow last10_ms_per_krow \
                 first10_ms_samples last10_ms_samples wal_mb size_after_mb autovacuums checkpoints \
                 rss_first_kb rss_max_kb xmin_age_max tps lat_p50_ms lat_p99_ms lat_max_ms failed_tx; do
            line+=",${V[$r.$m]:-}"
        done
        echo "$line"
    done
} >"$OUT/results.csv"

# ratio rows: name value target(op limit or empty)
RATIOS=()
add_ratio() { RATIOS+=("$1|$2|${3:-}|${4:-}"); }
add_ratio "migrate / UPDATE (time, idle)" "$(ratio "${V[migrate_idle.seconds]}" "${V[update_idle.seconds]}")" "<=" 1.0
add_ratio "migrate / loop 1000 (time, idle)" "$(ratio "${V[migrate_idle.seconds]}" "${V[loop_idle.seconds]}")" "<=" 0.8
[ "$LOOP_ASYNC" = 1 ] && add_ratio "migrate / loop 1000 async commit" "$(ratio "${V[migrate_idle.seconds]}" "${V[loop_async_idle.seconds]}")"
add_ratio "loop 1000 / UPDATE" "$(ratio "${V[loop_idle.seconds]}" "${V[update_idle.seconds]}")"
add_ratio "migrate under load / migrate idle (time)" "$(ratio "${V[migrate_load.seconds]}" "${V[migrate_idle.seconds]}")"
add_ratio "loaded tps / idle tps, migrate" "$(ratio "${V[migrate_load.tps]}" "${V[pgbench_idle.tps]}")" ">=" 0.85
add_ratio "loaded tps / idle tps, UPDATE" "$(ratio "${V[update_load.tps]}" "${V[pgbench_idle.tps]}")"
add_ratio "p99 / idle p99, migrate" "$(ratio "${V[migrate_load.lat_p99_ms]}" "${V[pgbench_idle.lat_p99_ms]}")" "<=" 1.5
add_ratio "p99 / idle p99, UPDATE" "$(ratio "${V[update_load.lat_p99_ms]}" "${V[pgbench_idle.lat_p99_ms]}")"
add_ratio "max latency under migrate (ms)" "${V[migrate_load.lat_max_ms]:-}" "<" 1000
add_ratio "max latency under UPDATE (ms)" "${V[update_load.lat_max_ms]:-}"
add_ratio "batch p99, migrate idle (ms)" "${V[migrate_idle.batch_p99_ms]:-}" "<=" 300
add_ratio "last / first 10% batches, ${ROWS} rows" "$(ratio "${V[migrate_idle.last10_ms]:-}" "${V[migrate_idle.first10_ms]:-}")"
add_ratio "  same per row (ms per 1000 rows), ${ROWS} rows" "$(ratio "${V[migrate_idle.last10_ms_per_krow]:-}" "${V[migrate_idle.first10_ms_per_krow]:-}")"
if [ "$SKIP_BIG" != 1 ]; then
    add_ratio "last / first 10% batches, ${BIG_ROWS} rows" "$(ratio "${V[migrate_big.last10_ms]:-}" "${V[migrate_big.first10_ms]:-}")" "<=" 1.2
    add_ratio "  same per row (ms per 1000 rows), ${BIG_ROWS} rows" "$(ratio "${V[migrate_big.last10_ms_per_krow]:-}" "${V[migrate_big.first10_ms_per_krow]:-}")"
    add_ratio "worker RssAnon max / first, big run" "$(ratio "${V[migrate_big.rss_max_kb]:-}" "${V[migrate_big.rss_first_kb]:-}")"
fi
verdict() {   # value op limit
    [ -n "$1" ] && [ -n "$2" ] || { echo ""; return; }
    awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
        ok = (op == "<=" && v <= l) || (op == "<" && v < l) || (op == ">=" && v >= l)
        print ok ? "ok" : "MISSED" }'
}
{
    echo "ratio,value,target,verdict"
    for r in "${RATIOS[@]}"; do
        IFS='|' read -r name val op lim <<<"$r"
        echo "\"$name\",$val,${op:+$op $lim},$(verdict "$val" "$op" "$lim")"
    done
} >"$OUT/ratios.csv"

{
    echo "commit: $COMMIT_NOTE"
    echo "migrate.so md5: $SO_MD5"
    echo "rows: $ROWS; big rows: $([ "$SKIP_BIG" = 1 ] && echo skipped || echo "$BIG_ROWS")"
    echo "wait: $MIGRATE_WAIT"
    echo "pgbench: $CLIENTS clients, $JOBS threads, -M prepared, idle baseline ${IDLE_SECS}s"
    echo "host: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo), $(uname -r)"
    echo "server: $("$BIN/postgres" --version)"
    echo "date: $(date -Is)"
} >"$OUT/meta.txt"

step "results ($ROWS rows; commit $COMMIT_NOTE; migrate.so $SO_MD5; wait: $MIGRATE_WAIT)"
{
printf '%-16s %9s %9s %8s %15s %7s %7s %3s %8s %8s %8s %9s\n' \
    run seconds rows/s batches "batch p50/p99" "WAL MB" "size MB" av tps "p50 ms" "p99 ms" "max ms"
for r in "${RUNS[@]}"; do
    b="-"
    [ -n "${V[$r.batch_p50_ms]:-}" ] && b="$(g "$r.batch_p50_ms" 1)/$(g "$r.batch_p99_ms" 1)"
    printf '%-16s %9s %9s %8s %15s %7s %7s %3s %8s %8s %8s %9s\n' "$r" \
        "$(g "$r.seconds")" "$(g "$r.rows_per_s" 0)" "${V[$r.batches]:--}" "$b" \
        "$(g "$r.wal_mb" 0)" "$(g "$r.size_after_mb" 0)" "${V[$r.autovacuums]:--}" \
        "$(g "$r.tps" 0)" "$(g "$r.lat_p50_ms" 2)" "$(g "$r.lat_p99_ms" 2)" "$(g "$r.lat_max_ms" 1)"
done
echo
for r in migrate_idle migrate_load migrate_big; do
    [ -n "${V[$r.rows]:-}" ] || continue
    printf '%-16s first 10%% of batches %s ms, last 10%% %s ms (samples: %s / %s); worker RssAnon %s -> %s kB\n' "$r" \
        "$(g "$r.first10_ms" 3)" "$(g "$r.last10_ms" 3)" "$(g "$r.first10_ms_samples" 3)" "$(g "$r.last10_ms_samples" 3)" \
        "${V[$r.rss_first_kb]:--}" "${V[$r.rss_max_kb]:--}"
    printf '%-16s first 10%% of rows %s ms per 1000 rows, last 10%% %s\n' "" \
        "$(g "$r.first10_ms_per_krow" 3)" "$(g "$r.last10_ms_per_krow" 3)"
    printf '%-16s oldest xmin of another session: %s xids (%s)\n' "" "${V[$r.xmin_age_max]:--}" "${V[$r.xmin_holder]:-none}"
done
echo
printf '%-44s %9s %9s %s\n' ratio value target ""
for r in "${RATIOS[@]}"; do
    IFS='|' read -r name val op lim <<<"$r"
    printf '%-44s %9s %9s %s\n' "$name" "${val:--}" "${op:+$op $lim}" "$(verdict "$val" "$op" "$lim")"
done
} | tee "$OUT/summary.txt"

# the harm to pgbench's TPC-B workload, and bloat and WAL with bigint and
# uuid keys, each on a throw-away cluster of its own (issue 10)
if [ "${SKIP_TPCB:-0}" != 1 ]; then
    step "TPC-B window (test/bench/tpcb.sh)"
    OUT="$OUT" SKIP_BUILD=1 PGVER="$PGVER" CLIENTS="$CLIENTS" bash "$(dirname "$0")/tpcb.sh" | tee -a "$OUT/summary.txt"
fi
if [ "${SKIP_BLOAT:-0}" != 1 ]; then
    step "bloat and WAL (test/bench/bloat.sh)"
    OUT="$OUT" SKIP_BUILD=1 PGVER="$PGVER" bash "$(dirname "$0")/bloat.sh" "${BLOAT_ROWS:-1000000}" | tee -a "$OUT/summary.txt"
fi
if [ "${SKIP_PARALLEL:-0}" != 1 ]; then
    step "8. parallel workers (test/bench/parallel.sh)"
    # the TPC-B figures come from step 6 (its WAYS include migrate2), not a second run
    tpcb_csv=
    [ "${SKIP_TPCB:-0}" != 1 ] && [ -f "$OUT/tpcb.csv" ] && tpcb_csv="$OUT/tpcb.csv"
    OUT="$OUT" SKIP_BUILD=1 PGVER="$PGVER" BIG_ROWS="$BIG_ROWS" SKIP_BIG="$SKIP_BIG" \
        SKIP_TPCB=1 TPCB_CSV="$tpcb_csv" bash "$(dirname "$0")/parallel.sh" "$ROWS" | tee -a "$OUT/summary.txt"
fi

step "done in $((SECONDS - T_BEGIN))s; output in $OUT"
ls -1 "$OUT" | sed 's/^/    /'
echo "$OUT"
