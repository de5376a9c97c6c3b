-- verify: a migration's check (check_clause, or NOT (where_clause)) is
-- checked at registration; migrate_verify counts the rows that fail it;
-- catch_up passes change the rows written behind the cursor, each once;
-- migrate_estimate tells the cost and changes nothing
CREATE TABLE vt (id bigint PRIMARY KEY, email text NOT NULL, n int NOT NULL DEFAULT 0);
INSERT INTO vt (id, email) SELECT g * 2, 'User' || g || '@Example.COM' FROM generate_series(1, 1000) g;
CREATE TABLE vt_other (id int, email text);
-- errors with their SQLSTATE
CREATE FUNCTION pg_temp.sqlstate_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;

-- bad checks are refused at registration, with clear errors
SELECT migrate_register('v_bad', 'vt', set_clause => 'email = lower(email)',
                        check_clause => 'email = lower(email');
SELECT migrate_register('v_bad', 'vt', set_clause => 'email = lower(email)',
                        check_clause => 'vt_other.email = lower(email)');
SELECT migrate_register('v_bad', 'vt', set_clause => 'email = lower(email)',
                        check_clause => 'email IN (SELECT email FROM vt_other)');
SELECT migrate_register('v_bad', 'vt', set_clause => 'email = lower(email)',
                        check_clause => 'random() < 0.5');
SELECT migrate_register('v_bad', 'vt', set_clause => 'email = lower(email)',
                        check_clause => 'email');
SELECT migrate_register('v_bad', 'vt', set_clause => 'email = lower(email)',
                        check_clause => 'nope = 1');
SELECT migrate_register('v_bad', 'vt', set_clause => 'email = lower(email)',
                        check_clause => 'true; DROP TABLE vt');
SELECT migrate_register('v_bad', 'vt', set_clause => 'email = lower(email)',
                        check_clause => ' ');
SELECT migrate_register('v_bad', 'vt', set_clause => 'email = lower(email)',
                        catch_up => true);
SELECT migrate_register('v_bad', 'vt', set_clause => 'email = lower(email)',
                        check_clause => 'email = lower(email)', catch_up => true,
                        on_error => 'skip');
SELECT migrate_register('v_bad', 'vt', set_clause => 'email = lower(email)',
                        check_clause => 'email = lower(email)', catch_up => true,
                        keep_before => true);
SELECT migrate_register('v_bad', 'vt', set_clause => 'email = lower(email)',
                        check_clause => 'email = lower(email)', max_passes => 0);
SELECT migrate_register('v_bad', NULL, sql => 'SELECT 1', check_clause => 'true');
SELECT s AS sqlstate FROM (VALUES
    (pg_temp.sqlstate_of($$SELECT migrate_register('v_bad', 'vt', set_clause => 'n = 1', check_clause => 'n = 1 AND')$$)),
    (pg_temp.sqlstate_of($$SELECT migrate_register('v_bad', 'vt', set_clause => 'n = 1', check_clause => 'vt_other.id = 1')$$)),
    (pg_temp.sqlstate_of($$SELECT migrate_register('v_bad', 'vt', set_clause => 'n = 1', check_clause => 'EXISTS (SELECT 1)')$$)),
    (pg_temp.sqlstate_of($$SELECT migrate_register('v_bad', 'vt', set_clause => 'n = 1', check_clause => 'clock_timestamp() > now()')$$)),
    (pg_temp.sqlstate_of($$SELECT migrate_register('v_bad', 'vt', set_clause => 'n = 1', catch_up => true)$$))) t(s);
SELECT count(*) AS registered FROM migrate.migrations WHERE name = 'v_bad';
-- a row function's check cannot name the table (its batches read it under an alias)
CREATE FUNCTION vt_fn(r vt) RETURNS vt LANGUAGE sql AS $$ SELECT r.id, lower(r.email), r.n $$;
SELECT migrate_register('v_bad', 'vt', row_fn => 'vt_fn(vt)', check_clause => 'vt.email = lower(vt.email)');
-- a where_clause whose negation cannot be a check leaves the migration without one
SELECT name, check_clause FROM migrate_register('v_nocheck', 'vt', set_clause => 'n = n',
                                                where_clause => 'random() < 2');
SELECT migrate_verify('v_nocheck');
SELECT migrate_unregister('v_nocheck');

-- the check as given, qualified or not; the default is NOT (where_clause)
SELECT name, check_clause, catch_up, max_passes
  FROM migrate_register('v_low', 'vt', set_clause => 'email = lower(email), n = n + 1',
                        check_clause => 'vt.email = lower(email)', batch_size => 300);
SELECT name, check_clause
  FROM migrate_register('v_where', 'vt', set_clause => 'email = lower(email)',
                        where_clause => 'email <> lower(email)');
SELECT name, check_clause FROM migrate_register('v_plain', 'vt', set_clause => 'n = n');
SELECT migrate_verify('v_plain');

-- verify before anything ran: every row fails, the sample is the first ten keys
SELECT verified_at IS NULL AS never, failing_rows, verify_state, pass, caught_rows
  FROM migrate_status('v_low');
SELECT * FROM migrate_verify('v_low');
SELECT verified_at IS NOT NULL AS verified, failing_rows, verify_state FROM migrate_status('v_low');
SELECT verify_checked, failing_rows, verify_sample FROM migrate.migrations WHERE name = 'v_low';
-- two batches: 600 rows done, 400 left; the where_clause's derived check agrees
SELECT processed FROM migrate_step('v_low');
SELECT processed, cursor FROM migrate_step('v_low');
SELECT checked, failing, sample OPERATOR(pg_catalog.->) 0 AS first FROM migrate_verify('v_low');
SELECT checked, failing FROM migrate_verify('v_where');
-- rows written behind the cursor: an insert and an update to the old shape
INSERT INTO vt (id, email) VALUES (1, 'New@Example.COM');
UPDATE vt SET email = upper(email) WHERE id = 20;
SELECT processed, state FROM migrate_step('v_low');
SELECT processed, state FROM migrate_step('v_low');
SELECT state FROM migrate_step('v_low');
-- without catch_up exactly those two rows are missed, and verify finds them
SELECT checked, failing, sample FROM migrate_verify('v_low');
SELECT n, count(*) FROM vt GROUP BY n ORDER BY n;
SELECT event, detail FROM migrate.events WHERE migration = 'v_low' AND event = 'verify' ORDER BY id;
-- verify reads only: nothing changed
SELECT count(*) FILTER (WHERE email <> lower(email)) AS old_shape FROM vt;
SELECT migrate_unregister('v_low');
SELECT migrate_unregister('v_where');
SELECT migrate_unregister('v_plain');

-- catch_up, step by step: the walk, then passes over the rows failing the check
TRUNCATE vt;
INSERT INTO vt (id, email) SELECT g * 2, 'User' || g || '@Example.COM' FROM generate_series(1, 1000) g;
SELECT name, check_clause, catch_up, max_passes
  FROM migrate_register('v_cu', 'vt', set_clause => 'email = lower(email), n = n + 1',
                        check_clause => 'email = lower(email)', catch_up => true,
                        batch_size => 400);
SELECT pass, processed, changed, caught_rows FROM migrate_step('v_cu');
INSERT INTO vt (id, email) VALUES (1, 'Behind@Example.COM'), (3, 'Behind3@Example.COM');
SELECT pass, processed, changed, caught_rows FROM migrate_step('v_cu');
UPDATE vt SET email = upper(email), n = 0 WHERE id IN (4, 6);
SELECT pass, processed, changed, caught_rows FROM migrate_step('v_cu');
-- the walk ends: pass 1 starts from the first key, in the same batch
SELECT pass, cursor, state FROM migrate_step('v_cu');
SELECT pass, processed, changed, caught_rows FROM migrate_step('v_cu');
-- written behind pass 1's cursor: caught by pass 2
INSERT INTO vt (id, email) VALUES (5, 'During@Example.COM');
SELECT pass, processed, changed, caught_rows FROM migrate_step('v_cu');
SELECT pass, processed, changed, caught_rows FROM migrate_step('v_cu');
SELECT pass, cursor, caught_rows FROM migrate_step('v_cu');
SELECT pass, changed, caught_rows FROM migrate_step('v_cu');
SELECT pass, changed, caught_rows FROM migrate_step('v_cu');
SELECT pass, changed, caught_rows FROM migrate_step('v_cu');
-- pass 2 caught a row, so pass 3 follows
SELECT pass, state, changed, caught_rows FROM migrate_step('v_cu');
SELECT pass, changed, caught_rows FROM migrate_step('v_cu');
SELECT pass, changed, caught_rows FROM migrate_step('v_cu');
SELECT pass, changed, caught_rows FROM migrate_step('v_cu');
-- pass 3 found nothing: done, and verified by it
SELECT pass, state, changed, caught_rows FROM migrate_step('v_cu');
SELECT state, pass, caught_rows, failing_rows, verified_at IS NOT NULL AS verified
  FROM migrate_status('v_cu');
-- every row changed exactly once
SELECT n, count(*) FROM vt GROUP BY n ORDER BY n;
SELECT checked, failing FROM migrate_verify('v_cu');
SELECT detail FROM migrate.events WHERE migration = 'v_cu' AND event = 'done';
SELECT migrate_unregister('v_cu');

-- max_passes reached: a last pass counts the rows still failing
TRUNCATE vt;
INSERT INTO vt (id, email) SELECT g * 2, 'User' || g || '@Example.COM' FROM generate_series(1, 10) g;
SELECT name FROM migrate_register('v_max', 'vt', set_clause => 'email = lower(email), n = n + 1',
                                  check_clause => 'email = lower(email)', catch_up => true,
                                  max_passes => 1, batch_size => 5);
SELECT pass, processed FROM migrate_step('v_max');
INSERT INTO vt (id, email) VALUES (1, 'A@X');
SELECT pass, processed FROM migrate_step('v_max');
SELECT pass, cursor FROM migrate_step('v_max');
SELECT pass, changed, caught_rows FROM migrate_step('v_max');
INSERT INTO vt (id, email) VALUES (3, 'B@X'), (5, 'C@X');
SELECT pass, changed, caught_rows FROM migrate_step('v_max');
SELECT pass, changed, caught_rows FROM migrate_step('v_max');
-- pass 1 changed rows and was the last: pass 2 only counts
SELECT pass, cursor FROM migrate_step('v_max');
SELECT pass, changed FROM migrate_step('v_max');
SELECT pass, changed FROM migrate_step('v_max');
SELECT pass, changed FROM migrate_step('v_max');
SELECT pass, state FROM migrate_step('v_max');
SELECT state, pass, caught_rows, failing_rows FROM migrate_status('v_max');
SELECT verify_checked, verify_sample FROM migrate.migrations WHERE name = 'v_max';
SELECT detail FROM migrate.events WHERE migration = 'v_max' AND event = 'done';
SELECT n, count(*) FROM vt GROUP BY n ORDER BY n;
-- restart => true starts over from the walk
SELECT pass, state, caught_rows FROM migrate_start('v_max', restart => true);
SELECT migrate_wait('v_max');
SELECT state, pass, failing_rows FROM migrate_status('v_max');
SELECT migrate_unregister('v_max');

-- a partitioned table, and a background verify
CREATE TABLE vp (id int, email text NOT NULL, PRIMARY KEY (id)) PARTITION BY RANGE (id);
CREATE TABLE vp1 PARTITION OF vp FOR VALUES FROM (0) TO (500);
CREATE TABLE vp2 PARTITION OF vp FOR VALUES FROM (500) TO (1000);
INSERT INTO vp SELECT g, CASE WHEN g % 10 = 0 THEN 'UP' ELSE 'low' END FROM generate_series(0, 999) g;
SELECT name, check_clause FROM migrate_register('v_part', 'vp', set_clause => 'email = lower(email)',
                                                check_clause => 'email = lower(email)', batch_size => 150);
SELECT checked, failing, sample FROM migrate_verify('v_part');
SELECT * FROM migrate_verify('v_part', background => true);
DO $$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '60 seconds';
BEGIN
    WHILE (SELECT verify_state IS DISTINCT FROM 'done' FROM migrate_status('v_part')) LOOP
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'background verify did not finish';
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT verify_state, failing_rows FROM migrate_status('v_part');
SELECT verify_checked, verify_sample, verify_error FROM migrate.migrations WHERE name = 'v_part';
SELECT event, detail FROM migrate.events WHERE migration = 'v_part' AND event = 'verify' ORDER BY id;

-- only those who may manage a migration may verify or estimate it
SET ROLE migrate_bob;
SELECT * FROM migrate_verify('v_part');
SELECT * FROM migrate_estimate('v_part');
RESET ROLE;
SELECT migrate_unregister('v_part');
SELECT * FROM migrate_verify(NULL);
SELECT * FROM migrate_verify('v_task_nope');

-- estimate: half of 100,000 rows to change, measured on one rolled-back batch
CREATE TABLE ve (id bigint PRIMARY KEY, flag boolean NOT NULL, pad text);
INSERT INTO ve SELECT g, g % 2 = 0, repeat('x', 40) FROM generate_series(1, 100000) g;
ANALYZE ve;
SELECT name, check_clause FROM migrate_register('v_est', 've', set_clause => 'flag = true',
                                                where_clause => 'NOT flag', batch_size => 2000);
CREATE TEMP TABLE ve_before AS SELECT md5(string_agg(id || ':' || flag, ',' ORDER BY id)) AS h FROM ve;
CREATE TEMP TABLE est AS SELECT * FROM migrate_estimate('v_est');
SELECT rows_total_estimate, rows_to_change BETWEEN 40000 AND 60000 AS about_half,
       ms_per_row > 0 AS timed, wal_bytes_per_row > 0 AS wal_measured,
       expected_duration > '0' AS has_duration, expected_wal > 0 AS has_wal,
       expected_size >= pg_table_size('ve') AS has_size
  FROM est;
-- nothing changed: the rows, the cursor, the counters
SELECT (SELECT h FROM ve_before) = md5(string_agg(id || ':' || flag, ',' ORDER BY id)) AS unchanged FROM ve;
SELECT state, cursor, processed, changed, batches, wal_bytes FROM migrate.migrations WHERE name = 'v_est';
CALL migrate_run('v_est');
SELECT state, changed FROM migrate.migrations WHERE name = 'v_est';
-- within 25% of the rows really changed
SELECT abs(e.rows_to_change - m.changed) <= 0.25 * m.changed AS within_25_percent
  FROM est e, migrate.migrations m WHERE m.name = 'v_est';
SELECT checked, failing FROM migrate_verify('v_est');
-- an estimate of a task, of a migration without rows left
SELECT rows_to_change, ms_per_row, expected_duration FROM migrate_estimate('v_est');
SELECT name FROM migrate_register('v_task', NULL, sql => 'SELECT 1');
SELECT * FROM migrate_estimate('v_task');
SELECT * FROM migrate_verify('v_task');
SELECT migrate_unregister('v_task');
SELECT migrate_unregister('v_est');
DROP FUNCTION vt_fn(vt);
DROP TABLE ve, vp, vt, vt_other;
