#!/bin/bash
# The production path of the docs, for real, as root on Debian 12 after the
# package postgresql-$PGVER-migrate is installed (.ci/run runs it after
# test/package-check.sh):
#   1. a cluster made by pg_createcluster, with Debian's defaults (pg_hba:
#      peer over the Unix socket, a password over TCP), configured as
#      docs/operations.md says ("Schedule it with pg_cron": conf.d/migrate.conf
#      with shared_preload_libraries and the pg_cron settings), databases
#      mydb and otherdb as README.md and docs/monitoring.md name them;
#   2. migrate_schedule in mydb for a migration of postgres and one of a
#      LOGIN role app_owner: pg_cron runs both start jobs (at the next
#      minute) and both migrations finish, every row changed once;
#   3. the exporter set up as docs/monitoring.md says (the queries file
#      installed from the package's examples, the role with pg_monitor,
#      the package's /etc/default file edited), started as its systemd unit
#      starts it (user prometheus, that file's variables, $ARGS), scraped:
#      HTTP 200 and migrate's metrics of the migrations of both databases,
#      all owned by postgres.
# The configuration lines are the docs' own: the script checks that each
# one it writes is in the docs, word for word.  Two things differ from the
# docs, so that the check runs beside other clusters: the cluster gets the
# port pg_createcluster picks (or $PROD_PORT), given to the exporter as
# PGPORT, and with $PROD_EXPORTER_PORT the exporter listens there instead
# of on :9187.  Everything it makes is removed at the end (the cluster, the
# exporter, its files; /etc/default/prometheus-postgres-exporter and the
# queries file are put back as they were).
#
#   bash test/production-check.sh       # PROD_CLUSTER (default migrate-prod)
set -euo pipefail

cd "$(dirname "$0")/.."
top=$(pwd)
PGVER=${PGVER:-15}
cluster=${PROD_CLUSTER:-migrate-prod}
pkg=postgresql-$PGVER-migrate
defaults=/etc/default/prometheus-postgres-exporter
queries=/etc/prometheus/migrate-queries.yaml
examples=/usr/share/doc/$pkg/examples
timeout=${PROD_TIMEOUT:-240}

say() { echo "production-check: $*"; }
fail() { echo "production-check: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root"
for p in "$pkg" "postgresql-$PGVER-cron" prometheus-postgres-exporter; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        fail "$p is not installed (the package: test/package.sh; the rest: bash test/install-deps.sh test)"
done
if pg_lsclusters -h | awk '{print $1 "/" $2}' | grep -qx "$PGVER/$cluster"; then
    fail "cluster $PGVER/$cluster exists already (pg_dropcluster --stop $PGVER $cluster)"
fi

# the docs say it, word for word
doc_has() {             # doc_has FILE LINE
    grep -qxF -- "$2" "$top/$1" || fail "$1 has no line: $2"
}

exporter_pid=
tmp=$(mktemp -d /tmp/migrate-prod.XXXXXX)
chmod 755 "$tmp"
cleanup() {
    local rc=$?
    if [ -n "$exporter_pid" ]; then
        kill "$exporter_pid" 2>/dev/null || true
        wait "$exporter_pid" 2>/dev/null || true
    fi
    if [ -e "$tmp/defaults.orig" ]; then
        cp -p "$tmp/defaults.orig" "$defaults"
    fi
    if [ -e "$tmp/queries.orig" ]; then
        cp -p "$tmp/queries.orig" "$queries"
    elif [ -e "$tmp/queries.made" ]; then
        rm -f "$queries"
        rmdir --ignore-fail-on-non-empty "$(dirname "$queries")" 2>/dev/null || true
    fi
    if [ $rc -ne 0 ]; then
        echo "--- server log (last 40 lines)" >&2
        tail -n 40 "/var/log/postgresql/postgresql-$PGVER-$cluster.log" >&2 2>/dev/null || true
        echo "--- exporter log (last 20 lines)" >&2
        tail -n 20 "$tmp/exporter.log" >&2 2>/dev/null || true
    fi
    pg_dropcluster --stop "$PGVER" "$cluster" 2>/dev/null || true
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. the cluster, as the docs set it up -----------------------------------
say "pg_createcluster $PGVER $cluster"
pg_createcluster "$PGVER" "$cluster" ${PROD_PORT:+-p "$PROD_PORT"} >/dev/null
port=$(pg_conftool -s "$PGVER" "$cluster" postgresql.conf show port)
confd=/etc/postgresql/$PGVER/$cluster/conf.d
conf_lines=("shared_preload_libraries = 'migrate,pg_cron'"
            "cron.database_name = 'mydb'"
            "cron.use_background_workers = on"
            "max_worker_processes = 16")
doc_has docs/operations.md "cat > /etc/postgresql/15/main/conf.d/migrate.conf <<'EOF'"
for l in "${conf_lines[@]}"; do
    doc_has docs/operations.md "$l"
done
printf '%s\n' "${conf_lines[@]}" > "$confd/migrate.conf"
pg_ctlcluster "$PGVER" "$cluster" start
say "cluster $PGVER/$cluster on port $port, with $confd/migrate.conf as docs/operations.md writes it"

# psql as postgres over the socket (peer), stopping at the first error
psql_as() {             # psql_as ROLE DB [psql args]
    local role=$1 db=$2
    shift 2
    (cd / && runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -p "$port" -U "$role" -d "$db" "$@")
}
q() { psql_as postgres "$@"; }

doc_has README.md "runuser -u postgres -- createdb mydb"
q postgres -c "CREATE DATABASE mydb" -c "CREATE DATABASE otherdb"
q mydb > /dev/null <<'SQL'
CREATE EXTENSION pg_cron;
CREATE EXTENSION migrate;
CREATE ROLE app_owner LOGIN;
GRANT USAGE ON SCHEMA cron TO app_owner;
CREATE TABLE accounts (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO accounts (id) SELECT generate_series(1, 50000);
CREATE TABLE orders (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO orders (id) SELECT generate_series(1, 30000);
ALTER TABLE orders OWNER TO app_owner;
SELECT name FROM migrate_register('nightly', 'accounts', set_clause => 'n = n + 1');
SELECT count(*) FROM migrate_schedule('nightly', '* * * * *', '0 0 1 1 *');
SET ROLE app_owner;
SELECT name FROM migrate_register('orders_fix', 'orders', set_clause => 'n = n + 1');
SELECT count(*) FROM migrate_schedule('orders_fix', '* * * * *', '0 0 1 1 *');
RESET ROLE;
SQL
q otherdb > /dev/null <<'SQL'
CREATE EXTENSION migrate;
CREATE TABLE items (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO items (id) SELECT generate_series(1, 20000);
SELECT name FROM migrate_register('items_fix', 'items', set_clause => 'n = n + 1');
SELECT state FROM migrate_start('items_fix');
CALL migrate_await('items_fix');
SQL

# --- 2. pg_cron runs the jobs of migrate_schedule -----------------------------
say "migrate_schedule made the jobs: $(q mydb -c "SELECT string_agg(username || ': ' || jobname, ', ' ORDER BY jobid) FROM cron.job")"
say "waiting (at most ${timeout}s) for pg_cron's next minute to start both migrations and for them to finish"
deadline=$((SECONDS + timeout))
while :; do
    done_n=$(q mydb -c "SELECT count(*) FROM migrate.migrations WHERE state = 'done'")
    [ "$done_n" = 2 ] && break
    failed=$(q mydb -c "SELECT string_agg(j.username || ': ' || d.return_message, '; ')
                          FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                         WHERE d.status = 'failed'")
    [ -z "$failed" ] || fail "pg_cron jobs failed: $failed"
    [ $SECONDS -lt $deadline ] || fail "after ${timeout}s: $(q mydb -c "SELECT string_agg(name || ' ' || state, ', ') FROM migrate.migrations")"
    sleep 2
done
runs=$(q mydb -c "SELECT string_agg(j.username || ' ' || d.status, ', ' ORDER BY j.username)
                    FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                   WHERE j.jobname LIKE 'migrate #% start %'")
[ "$runs" = "app_owner succeeded, postgres succeeded" ] ||
    fail "the start jobs' runs: $runs (want one run each of app_owner and postgres, succeeded)"
rows=$(q mydb -c "SELECT (SELECT count(*) FILTER (WHERE n = 1) || '/' || count(*) FROM accounts) || ' ' ||
                         (SELECT count(*) FILTER (WHERE n = 1) || '/' || count(*) FROM orders)")
[ "$rows" = "50000/50000 30000/30000" ] || fail "rows changed once: $rows"
say "pg_cron ran the start jobs of postgres and app_owner ($runs); both migrations done, every row changed once ($rows)"

# --- 3. the exporter, as docs/monitoring.md sets it up --------------------------
install_cmd="install -D -m 644 /usr/share/doc/postgresql-15-migrate/examples/prometheus-queries.yaml /etc/prometheus/migrate-queries.yaml"
role_cmd="runuser -u postgres -- psql -c 'CREATE ROLE prometheus LOGIN' -c 'GRANT pg_monitor TO prometheus'"
dsn_line="DATA_SOURCE_NAME='user=prometheus host=/run/postgresql dbname=mydb'"
args_line="ARGS='--extend.query-path=/etc/prometheus/migrate-queries.yaml --auto-discover-databases --include-databases=mydb,otherdb'"
for l in "apt install prometheus-postgres-exporter" "$install_cmd" "$role_cmd" "$dsn_line" "$args_line"; do
    doc_has docs/monitoring.md "$l"
done
if [ -e "$queries" ]; then
    cp -p "$queries" "$tmp/queries.orig"
else
    touch "$tmp/queries.made"
fi
install -D -m 644 "$examples/prometheus-queries.yaml" "$queries"
(cd / && PGPORT=$port runuser -u postgres -- psql -X -q -c 'CREATE ROLE prometheus LOGIN' -c 'GRANT pg_monitor TO prometheus')
cp -p "$defaults" "$tmp/defaults.orig"
grep -qx "DATA_SOURCE_NAME=''" "$defaults" && grep -qx 'ARGS=""' "$defaults" ||
    fail "$defaults has no lines DATA_SOURCE_NAME='' and ARGS=\"\" to replace (as the package ships it)"
DSN_LINE=$dsn_line ARGS_LINE=$args_line perl -i -pe '
    s/^DATA_SOURCE_NAME=\x27\x27$/$ENV{DSN_LINE}/;
    s/^ARGS=""$/$ENV{ARGS_LINE}/' "$defaults"
unit=/lib/systemd/system/prometheus-postgres-exporter.service
grep -qx 'User=prometheus' "$unit" && grep -qxF "EnvironmentFile=$defaults" "$unit" &&
    grep -qxF 'ExecStart=/usr/bin/prometheus-postgres-exporter $ARGS' "$unit" ||
    fail "$unit does not start the exporter as this script does"
listen=127.0.0.1:${PROD_EXPORTER_PORT:-9187}
say "starting the exporter as its unit does: user prometheus, $defaults, \$ARGS (PGPORT=$port${PROD_EXPORTER_PORT:+, --web.listen-address=$listen})"
(
    set -a
    # shellcheck disable=SC1090
    . "$defaults"
    set +a
    cd /
    exec setpriv --reuid=prometheus --regid=prometheus --init-groups env PGPORT="$port" \
        /usr/bin/prometheus-postgres-exporter $ARGS ${PROD_EXPORTER_PORT:+--web.listen-address=$listen}
) > "$tmp/exporter.log" 2>&1 &
exporter_pid=$!

# scrape until migrate's metrics of both databases are there
scrape() {
    perl -MHTTP::Tiny -e '
        my $r = HTTP::Tiny->new(timeout => 10)->get($ARGV[0]);
        print "$r->{status}\n", $r->{content} // "";' "http://$listen/metrics"
}
deadline=$((SECONDS + 60))
while :; do
    kill -0 "$exporter_pid" 2>/dev/null || fail "the exporter exited: $(tail -n 5 "$tmp/exporter.log")"
    scrape > "$tmp/metrics" || true
    status=$(head -n 1 "$tmp/metrics")
    if [ "$status" = 200 ] && grep -q '^migrate_state{database="otherdb"' "$tmp/metrics" &&
        grep -q '^migrate_state{database="mydb"' "$tmp/metrics"; then
        break
    fi
    [ $SECONDS -lt $deadline ] ||
        fail "no metrics of both databases after 60s: HTTP $status; $(sed -n '2,6p' "$tmp/metrics")"
    sleep 1
done
got=$(grep -E '^migrate_(state|processed)\{' "$tmp/metrics" |
    sed -E 's/^(migrate_[a-z]+)\{database="([^"]*)",migration="([^"]*)".*\} /\1 \2 \3 /' | sort)
want=$(printf '%s\n' "migrate_processed mydb nightly 50000" "migrate_processed mydb orders_fix 30000" \
    "migrate_processed otherdb items_fix 20000" "migrate_state mydb nightly 4" \
    "migrate_state mydb orders_fix 4" "migrate_state otherdb items_fix 4")
if [ "$got" != "$want" ]; then
    echo "want:"; echo "$want"; echo "got:"; echo "$got"
    fail "the exporter's migrate metrics differ"
fi
grep -qx 'pg_exporter_last_scrape_error 0' "$tmp/metrics" ||
    fail "the exporter reports a scrape error: $(grep -i 'level=error' "$tmp/exporter.log" | tail -n 3)"
say "the exporter answered HTTP 200 with migrate's metrics of mydb and otherdb (migrations of postgres and app_owner, seen by prometheus with pg_monitor):"
echo "$got" | sed 's/^/    /'
say "passed"
