-- quarantine: with on_error => 'skip' the rows whose change fails are
-- recorded in migrate.errors and left alone, the others are changed; the
-- skipped rows can be retried once their data is fixed
CREATE TABLE q (id int PRIMARY KEY, v int NOT NULL CHECK (v < 10), note text);
INSERT INTO q SELECT g, CASE WHEN g IN (7, 13, 250) THEN 9 ELSE 0 END FROM generate_series(1, 300) g;

-- the default is still to stop at the first failing batch
SELECT name, on_error, keep_before
  FROM migrate_register('q_stop', 'q', set_clause => 'v = v + 1', batch_size => 100);
CALL migrate_run('q_stop');
SELECT state, cursor, processed, changed, error_rows FROM migrate_status('q_stop');
SELECT count(*) FILTER (WHERE v IN (1, 10)) AS changed FROM q;
SELECT count(*) FROM migrate.errors;
SELECT migrate_unregister('q_stop');

-- with skip, in the foreground: a step splits the failing batch down to
-- the bad rows, changes the good ones and commits
SELECT name, on_error
  FROM migrate_register('q_skip', 'q', set_clause => 'v = v + 1', batch_size => 100,
                        on_error => 'skip');
SELECT state, cursor, processed, changed, batches FROM migrate_step('q_skip');
SELECT migration, key, sqlstate, message, phase FROM migrate.errors ORDER BY id;
SELECT v, count(*) FROM q WHERE id <= 100 GROUP BY v ORDER BY v;
-- the rest with CALL migrate_run
CALL migrate_run('q_skip');
SELECT state, last_error, cursor, processed, changed, error_rows, batches
  FROM migrate_status('q_skip');
SELECT key, sqlstate, message, phase FROM migrate.errors ORDER BY id;
SELECT id, v FROM q WHERE v <> 1 ORDER BY id;
SELECT v, count(*) FROM q GROUP BY v ORDER BY v;

-- nothing to retry while the data is still bad: the rows keep their error
SELECT * FROM migrate_retry_errors('q_skip');
SELECT key, sqlstate FROM migrate.errors ORDER BY id;
SELECT v, count(*) FROM q GROUP BY v ORDER BY v;
-- fix two of the rows: retrying changes them once and forgets their errors
UPDATE q SET v = 0 WHERE id IN (7, 250);
SELECT * FROM migrate_retry_errors('q_skip');
SELECT key, sqlstate, message FROM migrate.errors ORDER BY id;
SELECT id, v FROM q WHERE id IN (7, 13, 250) ORDER BY id;
SELECT state, processed, changed, error_rows FROM migrate_status('q_skip');
-- a retry inside a transaction that rolls back leaves the errors alone
UPDATE q SET v = 0 WHERE id = 13;
BEGIN;
SELECT * FROM migrate_retry_errors('q_skip');
SELECT count(*) FROM migrate.errors;
ROLLBACK;
SELECT key FROM migrate.errors ORDER BY id;
SELECT * FROM migrate_retry_errors('q_skip');
SELECT * FROM migrate_retry_errors('q_skip');
SELECT state, processed, changed, error_rows FROM migrate_status('q_skip');
SELECT v, count(*) FROM q GROUP BY v ORDER BY v;
SELECT event, detail FROM migrate.events WHERE migration = 'q_skip' ORDER BY id;

-- in the background: the same split, with the worker
UPDATE q SET v = CASE WHEN id IN (1, 100, 101, 299) THEN 9 ELSE 0 END;
SELECT name FROM migrate_register('q_bg', 'q', set_clause => 'v = v + 1, note = $$seen$$',
                                  batch_size => 50, on_error => 'skip');
SELECT (migrate_start('q_bg')).state;
SELECT migrate_wait('q_bg');
SELECT state, last_error, cursor, processed, changed, error_rows, batches, progress
  FROM migrate_status('q_bg');
SELECT key, sqlstate, message, phase FROM migrate.errors WHERE migration = 'q_bg' ORDER BY (key->>'id')::int;
SELECT v, note, count(*) FROM q GROUP BY v, note ORDER BY v;
-- restarting forgets the skipped rows of the old run and finds them again
UPDATE q SET v = 0 WHERE id = 100;
SELECT state, cursor, processed FROM migrate_start('q_bg', restart => true);
SELECT migrate_wait('q_bg');
SELECT state, processed, changed, error_rows FROM migrate_status('q_bg');
SELECT key FROM migrate.errors WHERE migration = 'q_bg' ORDER BY (key->>'id')::int;
SELECT v, count(*) FROM q GROUP BY v ORDER BY v;
-- unregistering forgets the migration's errors too
SELECT migrate_unregister('q_bg');
SELECT count(*) FROM migrate.errors WHERE migration = 'q_bg';

-- a row function that raises for some rows: P0001 with its message
CREATE TABLE r (id int PRIMARY KEY, s text NOT NULL);
INSERT INTO r SELECT g, 'row ' || g FROM generate_series(1, 40) g;
CREATE FUNCTION r_fix(x r) RETURNS r LANGUAGE plpgsql AS $$
BEGIN
    IF x.id % 10 = 0 THEN
        RAISE EXCEPTION 'cannot fix row %', x.id;
    END IF;
    x.s := upper(x.s);
    RETURN x;
END
$$;
SELECT name FROM migrate_register('r_fn', 'r', row_fn => 'r_fix(r)', batch_size => 15,
                                  on_error => 'skip');
CALL migrate_run('r_fn');
SELECT state, processed, changed, error_rows FROM migrate_status('r_fn');
SELECT key, sqlstate, message FROM migrate.errors WHERE migration = 'r_fn' ORDER BY id;
SELECT count(*) FILTER (WHERE s = upper(s)) AS upper, count(*) FILTER (WHERE s <> upper(s)) AS lower
  FROM r;
SELECT id, s FROM r WHERE s <> upper(s) ORDER BY id;

-- a delete migration: rows another table still references are skipped
CREATE TABLE r_ref (id int PRIMARY KEY, r_id int NOT NULL REFERENCES r);
INSERT INTO r_ref VALUES (1, 3), (2, 33);
SELECT name FROM migrate_register('r_del', 'r', action => 'delete', where_clause => 'id % 3 = 0',
                                  batch_size => 15, on_error => 'skip');
SELECT (migrate_start('r_del')).state;
SELECT migrate_wait('r_del');
SELECT state, processed, changed, error_rows FROM migrate_status('r_del');
SELECT key, sqlstate, message FROM migrate.errors WHERE migration = 'r_del' ORDER BY (key->>'id')::int;
SELECT count(*), count(*) FILTER (WHERE id % 3 = 0) AS left_over FROM r;
SELECT id FROM r WHERE id % 3 = 0 ORDER BY id;
-- once nothing references them any more, a retry deletes them
DELETE FROM r_ref;
SELECT * FROM migrate_retry_errors('r_del');
SELECT count(*) FILTER (WHERE id % 3 = 0) AS left_over FROM r;
SELECT state, processed, changed, error_rows FROM migrate_status('r_del');

-- a division by zero is a data exception (class 22): a row error too
CREATE TABLE d (id int PRIMARY KEY, a int NOT NULL, b int NOT NULL, q int);
INSERT INTO d SELECT g, g, CASE WHEN g % 25 = 0 THEN 0 ELSE 1 END FROM generate_series(1, 100) g;
SELECT name FROM migrate_register('d_q', 'd', set_clause => 'q = a / b', batch_size => 30,
                                  on_error => 'skip');
CALL migrate_run('d_q');
SELECT state, processed, changed, error_rows FROM migrate_status('d_q');
SELECT key, sqlstate, message FROM migrate.errors WHERE migration = 'd_q' ORDER BY id;
SELECT count(*) FILTER (WHERE q = a) AS set, count(*) FILTER (WHERE q IS NULL) AS unset FROM d;

-- a deferred constraint is checked with each batch, and its failures are
-- row errors too
CREATE TABLE par (id int PRIMARY KEY);
INSERT INTO par SELECT g FROM generate_series(1, 10) g;
CREATE TABLE chi (id int PRIMARY KEY,
                  par_id int REFERENCES par DEFERRABLE INITIALLY DEFERRED);
INSERT INTO chi SELECT g FROM generate_series(1, 30) g;
SELECT name FROM migrate_register('chi_par', 'chi', set_clause => 'par_id = id % 12',
                                  batch_size => 10, on_error => 'skip');
CALL migrate_run('chi_par');
SELECT state, processed, changed, error_rows FROM migrate_status('chi_par');
SELECT key, sqlstate, message FROM migrate.errors WHERE migration = 'chi_par' ORDER BY id;
SELECT count(*) FILTER (WHERE par_id IS NOT NULL) AS set, count(*) FILTER (WHERE par_id IS NULL) AS unset
  FROM chi;

-- an error that is not about a row fails the migration as with 'stop':
-- here the owner lost the right to update the table
SET ROLE migrate_alice;
CREATE TABLE alice_q (id int PRIMARY KEY, v int NOT NULL DEFAULT 0 CHECK (v < 2));
INSERT INTO alice_q SELECT g, CASE WHEN g = 20 THEN 1 ELSE 0 END FROM generate_series(1, 20) g;
SELECT name FROM migrate_register('alice_skip', 'alice_q', set_clause => 'v = v + 1',
                                  batch_size => 5, on_error => 'skip');
CALL migrate_run('alice_skip', max_batches => 1);
REVOKE UPDATE ON alice_q FROM migrate_alice;
RESET ROLE;
SELECT (migrate_start('alice_skip')).state;
SELECT migrate_wait('alice_skip');
SELECT state, last_error, processed, changed, error_rows FROM migrate_status('alice_skip');
SET ROLE migrate_alice;
CALL migrate_run('alice_skip');
SELECT state, last_error, processed, changed, error_rows FROM migrate_status('alice_skip');
GRANT UPDATE ON alice_q TO migrate_alice;
CALL migrate_run('alice_skip');
SELECT state, processed, changed, error_rows FROM migrate_status('alice_skip');
SELECT v, count(*) FROM alice_q GROUP BY v ORDER BY v;
-- alice sees her migration's errors and nobody else's, and cannot write them
SELECT migration, key, sqlstate FROM migrate.errors;
INSERT INTO migrate.errors (migration, key, sqlstate, message) VALUES ('alice_skip', '{}', 'x', 'y');
DELETE FROM migrate.errors;
RESET ROLE;
SELECT count(*) FROM migrate.errors;

-- the progress bar: NULL until the size of the table is known, then one
-- '#' per 5% and the percent; full when done
CREATE TABLE bar (id int PRIMARY KEY, n int NOT NULL DEFAULT 0) WITH (fillfactor = 50, autovacuum_enabled = off);
INSERT INTO bar SELECT g FROM generate_series(1, 1000) g;
VACUUM ANALYZE bar;
SELECT name FROM migrate_register('bar_5', 'bar', set_clause => 'n = n + 1', batch_size => 50);
SELECT name FROM migrate_register('bar_33', 'bar', set_clause => 'n = n + 1', batch_size => 333);
SELECT name FROM migrate_register('bar_99', 'bar', set_clause => 'n = n + 1', batch_size => 999);
SELECT name, state, total_estimate, percent, progress FROM migrate_status() WHERE name LIKE 'bar%';
CALL migrate_run('bar_5', max_batches => 1);
CALL migrate_run('bar_33', max_batches => 1);
CALL migrate_run('bar_99', max_batches => 1);
SELECT name, state, processed, total_estimate, percent, progress
  FROM migrate_status() WHERE name LIKE 'bar%' ORDER BY name COLLATE "C";
CALL migrate_run('bar_5');
SELECT name, state, processed, percent, progress FROM migrate_status('bar_5');
SELECT n, count(*) FROM bar GROUP BY n ORDER BY n;

-- bad arguments
SELECT migrate_register('x', 'q', set_clause => 'v = 1', on_error => 'bogus');
SELECT migrate_register('x', 'q', set_clause => 'v = 1', on_error => NULL);
SELECT migrate_register('x', 'q', set_clause => 'v = 1', keep_before => NULL);
SELECT migrate_register('x', NULL, sql => 'SELECT 1', on_error => 'skip');
SELECT migrate_register('x', NULL, sql => 'SELECT 1', keep_before => true);
SELECT name FROM migrate_register('q_task', NULL, sql => 'SELECT 1');
SELECT * FROM migrate_retry_errors('q_task');
SELECT * FROM migrate_retry_errors(NULL);
SELECT * FROM migrate_retry_errors('nope');
SELECT count(*) FROM migrate.migrations WHERE name = 'x';

-- clean up
SELECT count(migrate_unregister(name)) FROM migrate.migrations;
SELECT count(*) FROM migrate.errors;
DROP FUNCTION r_fix;
DROP TABLE q, r_ref, r, d, chi, par, alice_q, bar;
