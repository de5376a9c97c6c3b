-- schedule: migrate_schedule creates two pg_cron jobs, one that starts (or
-- resumes) a migration and one that pauses it; migrate_unschedule drops
-- them.  That the jobs fire is tested by the TAP tests.
CREATE TABLE sch (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);
INSERT INTO sch SELECT g FROM generate_series(1, 100) g;
SELECT name FROM migrate_register('nightly', 'sch', set_clause => 'v = v + 1', batch_size => 10);

-- without pg_cron in this database
SELECT * FROM migrate_schedule('nightly', '0 1 * * *', '0 5 * * *');
SELECT migrate_unschedule('nightly');

SET client_min_messages = warning;
CREATE EXTENSION pg_cron;
RESET client_min_messages;

-- the two jobs, as the caller, naming migrate's functions with their schema
SELECT regexp_replace(jobname, '#[0-9]+', '#N') AS jobname, jobid > 0 AS has_id, schedule, command
  FROM migrate_schedule('nightly', '0 1 30 2 *', '0 5 30 2 *') ORDER BY jobname;
SELECT regexp_replace(jobname, '#[0-9]+', '#N') AS jobname, schedule, command, username, database = current_database() AS here, active
  FROM cron.job ORDER BY jobname;
-- the jobs act only on the migration, and only in a state they make sense
-- for: run now, neither starts anything, as the migration is registered
-- and not running ...
SELECT command AS start_command FROM cron.job WHERE jobname LIKE 'migrate #% start nightly' \gset
SELECT command AS pause_command FROM cron.job WHERE jobname LIKE 'migrate #% pause nightly' \gset
SELECT (j.migrate_pause).state FROM (:pause_command) j;
SELECT state FROM migrate_status('nightly');
-- ... and the start job starts it
SELECT (j.migrate_start).state FROM (:start_command) j;
SELECT migrate_wait('nightly');
SELECT state, processed FROM migrate_status('nightly');
-- once done, the start job does nothing
SELECT (j.migrate_start).state FROM (:start_command) j;
SELECT state FROM migrate_status('nightly');

-- calling it again redefines the jobs: still two of them
SELECT regexp_replace(jobname, '#[0-9]+', '#N') AS jobname, schedule FROM migrate_schedule('nightly', '30 2 * * 1-5', '@daily') ORDER BY jobname;
SELECT regexp_replace(jobname, '#[0-9]+', '#N') AS jobname, schedule FROM cron.job ORDER BY jobname;
SELECT event, detail FROM migrate.events
 WHERE migration = 'nightly' AND event IN ('schedule', 'unschedule') ORDER BY id;

-- a schedule pg_cron does not understand is its error, and nothing changes
-- (terse: newer pg_cron versions add a hint)
\set VERBOSITY terse
SELECT * FROM migrate_schedule('nightly', 'every full moon', '0 5 * * *');
SELECT * FROM migrate_schedule('nightly', '0 1 * * *', '61 * * * *');
\set VERBOSITY default
SELECT regexp_replace(jobname, '#[0-9]+', '#N') AS jobname, schedule FROM cron.job ORDER BY jobname;

-- names with quotes are quoted in the commands
SELECT name FROM migrate_register($$it's "odd"$$, 'sch', set_clause => 'v = v + 1');
SELECT regexp_replace(jobname, '#[0-9]+', '#N') AS jobname, command FROM migrate_schedule($$it's "odd"$$, '0 1 * * *', '0 2 * * *') ORDER BY jobname;
SELECT migrate_unschedule($$it's "odd"$$);

-- job names carry the id; a name too long for pg_cron's 63 bytes is clipped
SELECT name FROM migrate_register(repeat('n', 60), 'sch', set_clause => 'v = v + 1');
SELECT regexp_replace(jobname, '#[0-9]+ (start|pause) n+$', '#N \1 nnn...') AS jobname,
       octet_length(jobname) AS bytes,
       substring(jobname from '#([0-9]+)')::bigint =
           (SELECT id FROM migrate.migrations WHERE name = repeat('n', 60)) AS named_by_id,
       command LIKE '%' || repeat('n', 60) || '%' AS command_names_it
  FROM migrate_schedule(repeat('n', 60), '0 1 30 2 *', '0 2 30 2 *') ORDER BY jobname;
SELECT migrate_unschedule(repeat('n', 60));

-- a one-off task cannot be paused, so it is not scheduled here
SELECT name FROM migrate_register('sch_task', NULL, sql => 'SELECT 1');
SELECT * FROM migrate_schedule('sch_task', '0 1 * * *', '0 5 * * *');

-- bad arguments
SELECT * FROM migrate_schedule(NULL, '0 1 * * *', '0 5 * * *');
SELECT * FROM migrate_schedule('nightly', NULL, '0 5 * * *');
SELECT * FROM migrate_schedule('nightly', '0 1 * * *', NULL);
SELECT * FROM migrate_schedule('nope', '0 1 * * *', '0 5 * * *');
SELECT migrate_unschedule(NULL);
SELECT migrate_unschedule('nope');

-- the jobs belong to whoever scheduled them; others cannot schedule a
-- migration they may not manage
GRANT USAGE ON SCHEMA cron TO migrate_alice;
SET ROLE migrate_alice;
CREATE TABLE alice_sch (id int PRIMARY KEY, v int);
SELECT name FROM migrate_register('alice_nightly', 'alice_sch', set_clause => 'v = 1');
SELECT regexp_replace(jobname, '#[0-9]+', '#N') AS jobname, schedule FROM migrate_schedule('alice_nightly', '0 3 * * *', '0 4 * * *') ORDER BY jobname;
SELECT regexp_replace(jobname, '#[0-9]+', '#N') AS jobname, username FROM cron.job ORDER BY jobname;
RESET ROLE;
SET ROLE migrate_bob;
SELECT * FROM migrate_schedule('alice_nightly', '* * * * *', '* * * * *');
SELECT migrate_unschedule('alice_nightly');
RESET ROLE;
-- migrate_unschedule drops only the caller's own jobs
SELECT migrate_unschedule('alice_nightly');
SELECT regexp_replace(jobname, '#[0-9]+', '#N') AS jobname, username FROM cron.job ORDER BY jobname;
SET ROLE migrate_alice;
SELECT migrate_unschedule('alice_nightly');
RESET ROLE;

-- unschedule: two jobs, then none
SELECT migrate_unschedule('nightly');
SELECT migrate_unschedule('nightly');
SELECT count(*) FROM cron.job;
SELECT event FROM migrate.events
 WHERE migration = 'nightly' AND event IN ('schedule', 'unschedule') ORDER BY id;

-- clean up
REVOKE USAGE ON SCHEMA cron FROM migrate_alice;
SELECT count(migrate_unregister(name)) FROM migrate.migrations;
DROP TABLE sch, alice_sch;
DROP EXTENSION pg_cron;
