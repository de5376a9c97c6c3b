-- control: pause, resume, cancel and unregister; who may do what; the
-- migration runs as its owner; the catalog is closed to direct writes
CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO counters SELECT g FROM generate_series(1, 2000) g;
SELECT name FROM migrate_register('slow', 'counters', set_clause => 'n = n + 1',
                                  batch_size => 100, pause => '300ms');

-- state changes that make no sense are refused
SELECT migrate_pause('slow');
SELECT migrate_resume('slow');
SELECT migrate_cancel('slow');

-- pause stops after the current batch, resume goes on from the cursor
SELECT state FROM migrate_start('slow');
SELECT state FROM migrate_start('slow');         -- already running: left alone
DO $$
DECLARE   -- wait for the first batch to commit
    deadline timestamptz := clock_timestamp() + interval '120 seconds';
BEGIN
    WHILE (SELECT processed = 0 FROM migrate.migrations WHERE name = 'slow') LOOP
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'migration "slow" did no batch in 120 seconds';
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT state FROM migrate_pause('slow');
SELECT migrate_wait('slow');
SELECT state, worker_pid, processed < 2000 AS partial, cursor->>'id' = processed::text AS cursor_matches
  FROM migrate_status('slow');
SELECT count(*) FILTER (WHERE n = 1) = (SELECT processed FROM migrate.migrations WHERE name = 'slow') AS rows_match,
       count(*) FILTER (WHERE n > 1) AS twice
  FROM counters;
SELECT state FROM migrate_resume('slow');
SELECT migrate_resume('slow');                   -- not paused any more
-- cancel stops too; a later migrate_start resumes from the cursor
SELECT state FROM migrate_cancel('slow');
SELECT migrate_wait('slow');
SELECT state, worker_pid, processed < 2000 AS partial FROM migrate_status('slow');
SELECT migrate_pause('slow');
SELECT state FROM migrate_start('slow', batch_size => 500);
SELECT migrate_wait('slow');
SELECT state, processed, batch_size FROM migrate_status('slow');
SELECT n, count(*) FROM counters GROUP BY n;
SELECT event FROM migrate.events WHERE migration = 'slow' ORDER BY id;

-- cancelling a paused migration
SELECT name FROM migrate_register('slow2', 'counters', set_clause => 'n = n + 1', batch_size => 100);
SELECT state FROM migrate_step('slow2');
SELECT state FROM migrate_cancel('slow2');
SELECT state FROM migrate_cancel('slow2');

-- unregister forgets a migration that is not running; its events stay
SELECT migrate_unregister('slow2');
SELECT count(*) FROM migrate.migrations WHERE name = 'slow2';
SELECT event FROM migrate.events WHERE migration = 'slow2' ORDER BY id;
SELECT migrate_unregister('slow2');

-- roles: alice owns a table and a migration; bob may not touch it
SET ROLE migrate_alice;
CREATE TABLE alice_t (id int PRIMARY KEY, v int NOT NULL DEFAULT 0, who text);
INSERT INTO alice_t SELECT g FROM generate_series(1, 10) g;
SELECT name, owner FROM migrate_register('alice_m', 'alice_t',
                                         set_clause => 'v = v + 1, who = current_user');
RESET ROLE;
SET ROLE migrate_bob;
SELECT migrate_start('alice_m');
SELECT migrate_step('alice_m');
SELECT migrate_pause('alice_m');
SELECT migrate_cancel('alice_m');
SELECT migrate_unregister('alice_m');
SELECT * FROM migrate_dry_run('alice_m');
SELECT migrate_wait('alice_m', '1s');
SELECT migrate_register('alice_m', 'alice_t', set_clause => 'v = 0', replace => true);
CALL migrate_run('alice_m');
-- bob cannot register on alice's table without the privilege
SELECT migrate_register('bob_m', 'alice_t', set_clause => 'v = 0');
SELECT migrate_register('bob_m', 'alice_t', action => 'delete');
-- and sees neither her migrations nor their events
SELECT count(*) FROM migrate.migrations;
SELECT count(*) FROM migrate.events WHERE migration = 'alice_m';
SELECT count(*) FROM migrate_status();
-- nobody writes the catalog directly
INSERT INTO migrate.migrations (name, action, batch_size, pause, lock_timeout, search_path, owner)
VALUES ('evil', 'task', 1, '0', '1s', '', 'migrate_bob');
UPDATE migrate.migrations SET sql = 'DROP TABLE alice_t';
DELETE FROM migrate.events;
RESET ROLE;
SET ROLE migrate_alice;
UPDATE migrate.migrations SET state = 'done' WHERE name = 'alice_m';
DELETE FROM migrate.events WHERE migration = 'alice_m';
SELECT name, state FROM migrate.migrations;
RESET ROLE;
-- a member of alice's role may manage her migrations
GRANT migrate_alice TO migrate_bob;
SET ROLE migrate_bob;
SELECT state, cursor FROM migrate_step('alice_m', batch_size => 4);
SELECT name FROM migrate_status();
RESET ROLE;
REVOKE migrate_alice FROM migrate_bob;

-- the change runs as the owner even when a superuser starts it
SELECT state FROM migrate_start('alice_m');
SELECT migrate_wait('alice_m');
SELECT v, who, count(*) FROM alice_t GROUP BY v, who;
SELECT event, role FROM migrate.events WHERE migration = 'alice_m' ORDER BY id;

-- ... so it cannot do what its owner may not do
CREATE TABLE secret (x int);
INSERT INTO secret VALUES (42);
SET ROLE migrate_alice;
SELECT migrate_register('peek', 'alice_t', set_clause => 'v = (SELECT x FROM secret)');
CREATE FUNCTION alice_peek() RETURNS int LANGUAGE sql AS 'SELECT x FROM secret';
SELECT name FROM migrate_register('peek', 'alice_t', set_clause => 'v = alice_peek()');
RESET ROLE;
SELECT state FROM migrate_start('peek');
SELECT migrate_wait('peek');
SELECT state, last_error, processed FROM migrate_status('peek');
SELECT count(*) FROM alice_t WHERE v = 42;
SET ROLE migrate_alice;
SELECT migrate_register('superuser_only', 'alice_t', set_clause => $$who = pg_read_file('/etc/hostname')$$);
SELECT name FROM migrate_register('become', 'alice_t', set_clause => 'v = 1', where_clause => $$set_config('role', 'postgres', true) IS NOT NULL$$);
SELECT migrate_step('become');
RESET ROLE;

-- the owner's code leaves nothing behind in the caller's session, and its
-- deferred triggers fire as the owner, not as whoever commits
SET ROLE migrate_alice;
CREATE TABLE trig_log (who text, at_commit boolean);
CREATE FUNCTION alice_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO trig_log VALUES (current_user, true);
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER alice_deferred AFTER UPDATE ON alice_t
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION alice_note();
CREATE FUNCTION alice_meddle() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('search_path', 'alice_was_here', false);
    PERFORM set_config('lock_timeout', '1ms', false);
    RETURN 7;
END $$;
SELECT name FROM migrate_register('meddle', 'alice_t', set_clause => 'v = alice_meddle()', batch_size => 2);
CREATE FUNCTION alice_temp() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    CREATE TEMP TABLE alice_trojan (x int);
    RETURN 8;
END $$;
SELECT name FROM migrate_register('trojan', 'alice_t', set_clause => 'v = alice_temp()', batch_size => 2);
-- under SET ROLE the session could RESET ROLE before its COMMIT, so
-- migrate_step, which leaves the commit to its caller, runs her code
-- restricted: the deferred trigger is refused
BEGIN;
SELECT cursor FROM migrate_step('meddle');
ROLLBACK;
-- CALL migrate_run commits each batch itself, as her: her code runs
-- unrestricted, its deferred trigger fires, and the settings it changes
-- are undone
SHOW search_path;
CALL migrate_run('meddle', max_batches => 1);
SELECT cursor FROM migrate_status('meddle');
SHOW search_path;
SHOW lock_timeout;
RESET ROLE;
-- in another role's session her code runs as a restricted operation
SELECT migrate_step('trojan');
SELECT count(*) FROM pg_class WHERE relname = 'alice_trojan';
SELECT migrate_step('meddle');
-- in the background the deferred trigger fires as alice, though a
-- superuser started it
SELECT state FROM migrate_start('meddle');
SELECT migrate_wait('meddle');
SELECT who, count(*) FROM trig_log GROUP BY who;

-- clean up
SELECT count(migrate_unregister(name)) FROM migrate.migrations;
DROP TABLE counters, secret, alice_t, trig_log CASCADE;
DROP FUNCTION alice_peek, alice_note, alice_meddle, alice_temp;
