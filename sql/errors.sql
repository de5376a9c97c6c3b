-- errors: bad arguments to every function get a clear error, and leave
-- nothing behind
CREATE TABLE e (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);
INSERT INTO e SELECT g FROM generate_series(1, 10) g;
SELECT name FROM migrate_register('e_ok', 'e', set_clause => 'v = v + 1', batch_size => 4);

-- NULLs
SELECT migrate_register(NULL, 'e', set_clause => 'v = 1');
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', action => NULL);
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', pause => NULL);
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', lock_timeout => NULL);
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', replace => NULL);
SELECT migrate_start(NULL);
SELECT migrate_start('e_ok', restart => NULL);
SELECT migrate_step(NULL);
SELECT migrate_pause(NULL);
SELECT migrate_resume(NULL);
SELECT migrate_cancel(NULL);
SELECT migrate_wait(NULL);
SELECT migrate_wait('e_ok', NULL);
SELECT * FROM migrate_dry_run(NULL);
SELECT * FROM migrate_dry_run('e_ok', NULL);
SELECT migrate_start_series(NULL);
SELECT migrate_start_series(ARRAY['e_ok', NULL]);
SELECT migrate_unregister(NULL);
CALL migrate_run(NULL);

-- unknown names
SELECT migrate_start('nope');
SELECT migrate_step('nope');
SELECT migrate_pause('nope');
SELECT migrate_resume('nope');
SELECT migrate_cancel('nope');
SELECT migrate_wait('nope');
SELECT * FROM migrate_dry_run('nope');
SELECT migrate_start_series(ARRAY['e_ok', 'nope']);
SELECT migrate_unregister('nope');
CALL migrate_run('nope');
SELECT * FROM migrate_status('nope');

-- empty, huge and strange names
SELECT migrate_register('', 'e', set_clause => 'v = 1');
SELECT migrate_register(repeat('x', 64), 'e', set_clause => 'v = 1');
SELECT migrate_register(repeat('x', 100000), 'e', set_clause => 'v = 1');
SELECT name FROM migrate_register(repeat('y', 63), 'e', set_clause => 'v = 1');
SELECT name FROM migrate_register('; DROP TABLE e; --', 'e', set_clause => 'v = 1');
SELECT name FROM migrate_register(E'new\nline', 'e', set_clause => 'v = 1');
SELECT migrate_start(repeat('x', 100000));

-- sizes and intervals out of range
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', batch_size => 0);
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', batch_size => -5);
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', pause => '-1 second');
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', pause => '2 days');
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', pause => '1000000 years');
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', lock_timeout => '0');
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', lock_timeout => '-1 ms');
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', lock_timeout => '30 days');
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', target_batch_time => NULL);
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', target_batch_time => '-1s');
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', target_batch_time => '2 hours');
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', min_batch_size => 0);
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', max_batch_size => NULL);
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', min_batch_size => 500, max_batch_size => 100);
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', busy_share => 0);
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', busy_share => 1.5);
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', busy_share => 'NaN');
SELECT migrate_register('e1', 'e', set_clause => 'v = 1', busy_share => NULL);
SELECT * FROM migrate_explain(NULL);
SELECT * FROM migrate_explain('nope');
SELECT * FROM migrate_explain('e_ok', 0);
SELECT migrate_start('e_ok', batch_size => 0);
SELECT migrate_step('e_ok', batch_size => -1);
SELECT migrate_wait('e_ok', '-1 second');
SELECT migrate_wait('e_ok', '100ms');
SELECT * FROM migrate_dry_run('e_ok', 0);
SELECT * FROM migrate_dry_run('e_ok', -1);
CALL migrate_run('e_ok', max_batches => 0);
CALL migrate_run('e_ok', max_batches => -3);
CALL migrate_run('e_ok', max_duration => '-1 minute');
SELECT migrate_start_series('{}');
SELECT migrate_start_series(ARRAY[['e_ok'], ['e_ok']]);
SELECT migrate_start_series(ARRAY['e_ok', 'e_ok']);

-- migrate_wait needs to see other transactions commit
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT migrate_wait('e_ok');
ROLLBACK;

-- none of that changed anything
SELECT name, state, processed, batch_size FROM migrate_status() ORDER BY name;
SELECT sum(v) FROM e;

-- the table or the key changes under a registered migration
ALTER TABLE e RENAME TO e_renamed;
SELECT migrate_step('e_ok');
SELECT * FROM migrate_dry_run('e_ok');
SELECT (migrate_start('e_ok')).state;
SELECT migrate_wait('e_ok');
SELECT state, last_error FROM migrate_status('e_ok');
ALTER TABLE e_renamed RENAME TO e;
SELECT (migrate_start('e_ok')).state;
SELECT migrate_wait('e_ok');
SELECT state, last_error, processed FROM migrate_status('e_ok');
SELECT v, count(*) FROM e GROUP BY v;

CREATE TABLE e2 (id int PRIMARY KEY, v int);
INSERT INTO e2 SELECT g, 0 FROM generate_series(1, 10) g;
SELECT name FROM migrate_register('e2_v', 'e2', set_clause => 'v = v + 1');
ALTER TABLE e2 DROP COLUMN v;
SELECT migrate_step('e2_v');
ALTER TABLE e2 RENAME COLUMN id TO key;
SELECT migrate_step('e2_v');
DROP TABLE e2;
SELECT migrate_step('e2_v');
SELECT state FROM migrate_status('e2_v');

-- a row function that is dropped after registration
CREATE TABLE e3 (id int PRIMARY KEY, v int);
CREATE FUNCTION e3_fn(r e3) RETURNS e3 LANGUAGE sql AS 'SELECT r';
SELECT name FROM migrate_register('e3_fn', 'e3', row_fn => 'e3_fn(e3)');
DROP FUNCTION e3_fn;
SELECT migrate_step('e3_fn');

-- an error in a batch: the batch rolls back whole, the cursor stays before it
CREATE TABLE e4 (id int PRIMARY KEY, v int NOT NULL CHECK (v < 10));
INSERT INTO e4 SELECT g, CASE WHEN g = 7 THEN 9 ELSE 0 END FROM generate_series(1, 12) g;
SELECT name FROM migrate_register('e4_v', 'e4', set_clause => 'v = v + 1', batch_size => 5);
SELECT (migrate_start('e4_v')).state;
SELECT migrate_wait('e4_v');
SELECT state, last_error, cursor, processed FROM migrate_status('e4_v');
SELECT id, v FROM e4 ORDER BY id;
SELECT event, detail FROM migrate.events WHERE migration = 'e4_v' ORDER BY id;
CALL migrate_run('e4_v');
SELECT state, last_error, cursor FROM migrate_status('e4_v');
-- fix the data, and it goes on from where it stopped
UPDATE e4 SET v = 0 WHERE id = 7;
CALL migrate_run('e4_v');
SELECT state, last_error, processed FROM migrate_status('e4_v');
SELECT v, count(*) FROM e4 GROUP BY v ORDER BY v;

-- keys the cursor cannot hold exactly are not used as keys
CREATE TABLE e5 (k int[] PRIMARY KEY, v int);
SELECT migrate_register('e5', 'e5', set_clause => 'v = 1');
CREATE TABLE e6 (a int NOT NULL, k int GENERATED ALWAYS AS (a * 10) STORED PRIMARY KEY, v int);
SELECT migrate_register('e6', 'e6', set_clause => 'a = a + 100');

-- the cursor survives session settings that change how keys print
CREATE TABLE e7 (k float8 NOT NULL, t timestamptz NOT NULL, v int NOT NULL DEFAULT 0,
                 PRIMARY KEY (t, k));
INSERT INTO e7 SELECT g * 0.1 + 0.2, '2024-01-01'::timestamptz + g * interval '1 hour'
  FROM generate_series(0, 29) g;
SET extra_float_digits = 0;
SET DateStyle = 'SQL, DMY';
SELECT name FROM migrate_register('e7', 'e7', set_clause => 'v = v + 1', batch_size => 7);
CALL migrate_run('e7');
SELECT state, processed, batches, cursor FROM migrate_status('e7');
SELECT v, count(*) FROM e7 GROUP BY v;
RESET extra_float_digits;
RESET DateStyle;

-- a fragment means the same whatever standard_conforming_strings the session has
CREATE TABLE e8 (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO e8 SELECT g FROM generate_series(1, 100) g;
SET standard_conforming_strings = off;
SELECT name FROM migrate_register('e8', 'e8', set_clause => 'n = n + 1',
    where_clause => $$n::text <> '\' OR ' ) OR (true --' IS NULL$$, batch_size => 10);
SELECT processed, changed FROM migrate_step('e8');
RESET standard_conforming_strings;
SELECT n, count(*) FROM e8 GROUP BY n ORDER BY n;

-- clean up
SELECT count(migrate_unregister(name)) FROM migrate.migrations;
DROP TABLE e, e3, e4, e5, e6, e7, e8;
