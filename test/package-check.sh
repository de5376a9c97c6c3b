#!/bin/bash
# Check the installed Debian package postgresql-$PGVER-migrate (PGVER
# defaults to 15), as root, after `apt install ./postgresql-15-migrate_*.deb`:
#   1. the package owns the extension's files (nothing left by `make install`);
#   2. the package's own tests, as Debian's autopkgtest runs them
#      (debian/tests/installcheck: pg_regress and isolation tests against the
#      installed extension, with migrate and pg_cron preloaded);
#   3. CREATE EXTENSION migrate and a short migration, run by a background
#      worker, in a pg_virtualenv cluster with shared_preload_libraries=migrate.
set -euo pipefail

cd "$(dirname "$0")/.."
PGVER=${PGVER:-15}
pkg=postgresql-$PGVER-migrate
export PATH="/usr/lib/postgresql/$PGVER/bin:$PATH"

dpkg-query -W -f='${Status} ${Version}\n' "$pkg" | grep "install ok installed" ||
    { echo "package-check: $pkg is not installed" >&2; exit 1; }
want=$(sed -n "s/^default_version = '\(.*\)'/\1/p" migrate.control)
for f in "/usr/lib/postgresql/$PGVER/lib/migrate.so" \
         "/usr/share/postgresql/$PGVER/extension/migrate.control" \
         "/usr/share/postgresql/$PGVER/extension/migrate--0.1.sql"; do
    [ -f "$f" ] || { echo "package-check: $f is missing" >&2; exit 1; }
    owner=$(dpkg -S "$f" 2>/dev/null | cut -d: -f1) || true
    [ "$owner" = "$pkg" ] || { echo "package-check: $f is not from $pkg (${owner:-no package})" >&2; exit 1; }
done
echo "package-check: $pkg owns migrate.so and the extension's scripts"

echo "package-check: debian/tests/installcheck (autopkgtest)"
debian/tests/installcheck

echo "package-check: CREATE EXTENSION migrate and a migration"
# runs from / so that nothing of this tree is at hand
cd /
NONROOT=1 pg_virtualenv -v "$PGVER" -o shared_preload_libraries=migrate \
    psql -X -q -At -v ON_ERROR_STOP=1 -v want="$want" <<'SQL'
CREATE EXTENSION migrate;
CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO t (id) SELECT generate_series(1, 20000);
SELECT migrate_register('bump', 't', set_clause => 'n = n + 1', batch_size => 1000) IS NOT NULL AS registered \gset
SELECT coalesce(worker_pid::text, 'none') AS pid FROM migrate_start('bump') \gset
SELECT migrate_wait('bump') AS state \gset
SET package_check.want = :'want';
SET package_check.pid = :'pid';
SET package_check.state = :'state';
DO $$
DECLARE
    v text := (SELECT extversion FROM pg_extension WHERE extname = 'migrate');
    changed bigint := (SELECT count(*) FROM t WHERE n = 1);
BEGIN
    IF v <> current_setting('package_check.want') THEN
        RAISE EXCEPTION 'CREATE EXTENSION installed %, migrate.control says %', v, current_setting('package_check.want');
    END IF;
    IF current_setting('package_check.pid') = 'none' THEN
        RAISE EXCEPTION 'migrate_start started no background worker';
    END IF;
    IF current_setting('package_check.state') <> 'done' OR changed <> 20000 THEN
        RAISE EXCEPTION 'bump ended %, with % of 20000 rows changed once', current_setting('package_check.state'), changed;
    END IF;
    RAISE NOTICE 'package-check: % rows migrated by background worker %', changed, current_setting('package_check.pid');
END
$$;
SQL
echo "package-check: $pkg passed"
