-- issue 20: migrate.monitor() shows every migration to pg_monitor, without
-- membership in the roles that own them, and nothing of their rows; the
-- helpers of migrate_status answer nothing about migrations the caller
-- cannot see
CREATE ROLE migrate_mon LOGIN;
GRANT pg_monitor TO migrate_mon;

-- a migration of alice, failed on a row whose value its error quotes
SET ROLE migrate_alice;
CREATE TABLE mon_t (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL DEFAULT 0);
INSERT INTO mon_t VALUES (1, '7'), (2, '078-05-1120');
SELECT name FROM migrate_register('mon_fail', 'mon_t', set_clause => 'n = v::int', batch_size => 10);
CALL migrate_run('mon_fail');
SELECT state, last_error FROM migrate_status('mon_fail');
-- and one that runs, slowly, in a worker
CREATE TABLE mon_r (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO mon_r (id) SELECT g FROM generate_series(1, 100) g;
SELECT name FROM migrate_register('mon_run', 'mon_r', set_clause => 'n = n + 1',
                                  batch_size => 1, pause => '10s');
SELECT state FROM migrate_start('mon_run');
SELECT migrate.runner_pid(id) IS NOT NULL AS alice_sees_runner,
       migrate.helper_count(id) AS alice_sees_helpers
  FROM migrate.migrations WHERE name = 'mon_run';
RESET ROLE;
SELECT id AS mon_run_id FROM migrate.migrations WHERE name = 'mon_run' \gset

-- pg_monitor: every migration, its state and counters
SET ROLE migrate_mon;
SELECT count(*) FROM migrate.migrations WHERE name LIKE 'mon\_%';
SELECT name, relation, state, owner, error_rows, has_error,
       worker_pid IS NOT NULL AS has_worker, batch_size
  FROM migrate.monitor() WHERE name LIKE 'mon\_%' ORDER BY name;
-- nothing of the rows: no cursor, no error text, no definition
SELECT count(*) AS leaks FROM migrate.monitor() m
 WHERE m::text LIKE '%078-05-1120%' OR m::text LIKE '%v::int%';
SELECT column_name FROM information_schema.columns
 WHERE table_schema = 'migrate' AND table_name = 'monitor'
   AND column_name IN ('cursor', 'last_error', 'set_clause', 'where_clause');
-- the function cannot be used to reach further: it is STABLE and its
-- search_path is pinned
SELECT p.prosecdef, p.provolatile, p.proconfig
  FROM pg_proc p WHERE p.oid = 'migrate.monitor()'::regprocedure;
RESET ROLE;

-- pg_monitor granted to a NOLOGIN role reaches its login members too
CREATE ROLE migrate_monteam NOLOGIN;
GRANT pg_monitor TO migrate_monteam;
GRANT migrate_monteam TO migrate_bob;
SET ROLE migrate_bob;
SELECT count(*) AS seen FROM migrate.monitor() WHERE name LIKE 'mon\_%';
RESET ROLE;
REVOKE migrate_monteam FROM migrate_bob;
DROP ROLE migrate_monteam;

-- bob, neither a member of alice nor of pg_monitor
SET ROLE migrate_bob;
SELECT * FROM migrate.monitor();
SELECT migrate.runner_pid(:mon_run_id) AS runner, migrate.helper_count(:mon_run_id) AS helpers;
SELECT count(*) FROM migrate.status WHERE name LIKE 'mon\_%';
RESET ROLE;

-- a caller's search_path does not reach into it
CREATE FUNCTION public.count(anyelement) RETURNS bigint LANGUAGE sql AS 'SELECT 42::bigint';
SET ROLE migrate_mon;
SET search_path = public, pg_catalog;
SELECT count(*) > 0 AS some FROM migrate.monitor();
RESET search_path;
RESET ROLE;
DROP FUNCTION public.count(anyelement);
-- nor does an overload of migrate_status in the extension's schema: not
-- picked, and not making the call ambiguous
SET ROLE migrate_bob;
CREATE FUNCTION public.migrate_status() RETURNS SETOF migrate.status
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked as %', current_user; END $$;
CREATE FUNCTION public.migrate_status(VARIADIC text[]) RETURNS SETOF migrate.status
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked as %', current_user; END $$;
RESET ROLE;
SET ROLE migrate_mon;
SELECT count(*) > 0 AS some FROM migrate.monitor();
RESET ROLE;
DROP FUNCTION public.migrate_status(), public.migrate_status(VARIADIC text[]);

SET ROLE migrate_alice;
SELECT state FROM migrate_cancel('mon_run');
SELECT migrate_wait('mon_run');
SELECT migrate_unregister('mon_fail');
SELECT migrate_unregister('mon_run');
DROP TABLE mon_t, mon_r;
RESET ROLE;
DROP ROLE migrate_mon;
