-- revert: keep_before => true keeps the old values of what a migration
-- writes in migrate.undo; migrate_revert puts them back in the background,
-- leaves alone (and reports) rows someone changed since, and the migration
-- ends up "reverted"
CREATE TABLE rv (
    id int PRIMARY KEY,
    amount numeric,
    at timestamptz,
    ratio float8,
    doc jsonb,
    tags text[],
    label text,
    n int NOT NULL DEFAULT 0
);
INSERT INTO rv (id, amount, at, ratio, doc, tags, label)
SELECT g,
       CASE g % 5 WHEN 0 THEN NULL WHEN 1 THEN 1.500 WHEN 2 THEN 'NaN'
                  WHEN 3 THEN 123456789012345678901234567890.000000000001 ELSE -0.1 END,
       CASE WHEN g % 7 = 0 THEN NULL
            ELSE '2024-02-29 23:59:59.123456+00'::timestamptz + g * interval '1 hour 1.000001 second' END,
       CASE g % 6 WHEN 0 THEN NULL WHEN 1 THEN 0.1 WHEN 2 THEN 1e-300 WHEN 3 THEN 'Infinity'
                  WHEN 4 THEN 'NaN' ELSE 1.0 / g END,
       CASE WHEN g % 4 = 0 THEN NULL
            ELSE jsonb_build_object('g', g, 'nested', jsonb_build_array(1.10, 'x', NULL, true)) END,
       CASE WHEN g % 3 = 0 THEN NULL WHEN g % 3 = 1 THEN '{}'::text[]
            ELSE ARRAY['a "quoted" one', NULL, 'back\slash', 'comma, here'] END,
       CASE WHEN g % 2 = 0 THEN NULL ELSE E'line\nbreak ''' || g END
  FROM generate_series(1, 200) g;
-- the exact contents to compare with after a revert
CREATE TABLE rv_snap AS SELECT * FROM rv;

-- an update by SET list; its before-images are the values of the columns it writes
SELECT name, keep_before, on_error
  FROM migrate_register('rv_set', 'rv',
                        set_clause => $$amount = amount * 2, at = at + interval '1 day',
                                        ratio = ratio / 3, doc = doc || '{"migrated": true}',
                                        tags = tags || '{new}', n = n + 1$$,
                        where_clause => 'id <= 150', batch_size => 40, keep_before => true);
CALL migrate_run('rv_set');
SELECT state, processed, changed, error_rows, keep_before, reverting, reverted, progress
  FROM migrate_status('rv_set');
SELECT count(*), count(DISTINCT key), min((key->>'id')::int), max((key->>'id')::int)
  FROM migrate.undo WHERE migration = 'rv_set';
SELECT key, before, after FROM migrate.undo WHERE migration = 'rv_set' AND key->>'id' = '1';
SELECT count(*) FILTER (WHERE n = 1) AS changed, count(*) FILTER (WHERE n = 0) AS untouched FROM rv;

-- someone else changes two of the rows after the migration did
UPDATE rv SET label = 'edited by hand' WHERE id = 21;   -- a column the migration did not write
UPDATE rv SET amount = 42 WHERE id = 22;                -- a column it wrote
-- the revert runs in the background and ends "reverted"
SELECT state, reverting, reverted FROM migrate_revert('rv_set');
SELECT migrate_wait('rv_set');
SELECT state, processed, changed, error_rows, keep_before, reverting, reverted, percent, progress,
       worker_pid, last_error
  FROM migrate_status('rv_set');
-- every row is exactly as before but for the hand edits: row 21 is
-- restored around its new label; row 22, whose written column someone
-- changed, is left as it is, and reported
SELECT count(*) AS differ
  FROM rv r JOIN rv_snap s USING (id)
 WHERE NOT (r.* *= s.*) AND id NOT IN (21, 22);
SELECT count(*) AS same_text
  FROM rv r JOIN rv_snap s USING (id)
 WHERE r::text = s::text;
SELECT id, amount, n, label FROM rv WHERE id IN (21, 22) ORDER BY id;
SELECT key, sqlstate, message, phase FROM migrate.errors WHERE migration = 'rv_set' ORDER BY id;
-- the restored rows' before-images are gone, the one left alone keeps its own
SELECT key FROM migrate.undo WHERE migration = 'rv_set';
SELECT event, detail FROM migrate.events WHERE migration = 'rv_set' ORDER BY id;

-- a reverted migration: reverting again, starting or stepping it does
-- nothing, and there is nothing to retry
SELECT state FROM migrate_revert('rv_set');
SELECT state FROM migrate_start('rv_set');
SELECT state FROM migrate_step('rv_set');
CALL migrate_run('rv_set');
SELECT * FROM migrate_dry_run('rv_set');
SELECT * FROM migrate_retry_errors('rv_set');
-- ... it cannot be unregistered, replaced or restarted while before-images are kept
SELECT migrate_unregister('rv_set');
SELECT migrate_register('rv_set', 'rv', set_clause => 'n = 0', replace => true);
SELECT migrate_start('rv_set', restart => true);
-- forgetting drops them
SELECT migrate_forget('rv_set');
SELECT migrate_forget('rv_set');
SELECT count(*) FROM migrate.undo WHERE migration = 'rv_set';
-- restart => true runs it again from the start, with new before-images
UPDATE rv SET (amount, at, ratio, doc, tags, label, n) =
       (SELECT s.amount, s.at, s.ratio, s.doc, s.tags, s.label, s.n FROM rv_snap s WHERE s.id = rv.id)
 WHERE id IN (21, 22);
SELECT count(*) AS differ FROM rv r JOIN rv_snap s USING (id) WHERE NOT (r.* *= s.*);
SELECT state, cursor, processed, reverting, reverted FROM migrate_start('rv_set', restart => true);
SELECT migrate_wait('rv_set');
SELECT state, processed, changed, reverting, reverted FROM migrate_status('rv_set');
SELECT count(*) FROM migrate.undo WHERE migration = 'rv_set';
SELECT n, count(*) FROM rv GROUP BY n ORDER BY n;
SELECT state FROM migrate_revert('rv_set');
SELECT migrate_wait('rv_set');
SELECT state, reverted FROM migrate_status('rv_set');
SELECT count(*) AS differ FROM rv r JOIN rv_snap s USING (id) WHERE NOT (r.* *= s.*);
SELECT count(*) FROM migrate.undo WHERE migration = 'rv_set';
SELECT migrate_unregister('rv_set');

-- a row function; keep_undo => true keeps the before-images after the revert
CREATE FUNCTION rv_fn(r rv) RETURNS rv LANGUAGE plpgsql AS $$
BEGIN
    IF r.id % 2 = 0 THEN
        RETURN NULL;                 -- not changed: no before-image
    END IF;
    r.label := 'fn ' || r.id;
    r.n := r.n + 10;
    RETURN r;
END
$$;
SELECT name FROM migrate_register('rv_fn', 'rv', row_fn => 'rv_fn(rv)', batch_size => 33,
                                  keep_before => true);
SELECT (migrate_start('rv_fn')).state;
SELECT migrate_wait('rv_fn');
SELECT state, processed, changed FROM migrate_status('rv_fn');
SELECT count(*) FROM migrate.undo WHERE migration = 'rv_fn';
-- a row function's before-image holds the row's columns other than the key
SELECT key, before, after FROM migrate.undo WHERE migration = 'rv_fn' AND key->>'id' = '7';
SELECT n, count(*) FROM rv GROUP BY n ORDER BY n;
SELECT state, reverting FROM migrate_revert('rv_fn', keep_undo => true);
SELECT migrate_wait('rv_fn');
SELECT state, reverted, error_rows, progress FROM migrate_status('rv_fn');
SELECT count(*) AS differ FROM rv r JOIN rv_snap s USING (id) WHERE NOT (r.* *= s.*);
SELECT count(*) FROM migrate.undo WHERE migration = 'rv_fn';
SELECT migrate_unregister('rv_fn');
SELECT migrate_forget('rv_fn');
SELECT migrate_unregister('rv_fn');

-- a delete: the revert inserts the rows again, unless their key was taken
SELECT name FROM migrate_register('rv_del', 'rv', action => 'delete', where_clause => 'id % 10 = 0',
                                  batch_size => 70, keep_before => true);
CALL migrate_run('rv_del');
SELECT state, processed, changed FROM migrate_status('rv_del');
SELECT count(*) FROM rv;
-- a delete's before-image is the whole row, with no after-image
SELECT key, before, after FROM migrate.undo WHERE migration = 'rv_del' AND key->>'id' = '30';
INSERT INTO rv (id, label) VALUES (50, 'new row with a deleted key');
SELECT state FROM migrate_revert('rv_del');
SELECT migrate_wait('rv_del');
SELECT state, reverted, error_rows FROM migrate_status('rv_del');
SELECT count(*) FROM rv;
SELECT count(*) AS differ FROM rv r JOIN rv_snap s USING (id) WHERE NOT (r.* *= s.*);
SELECT id, label, amount FROM rv WHERE id = 50;
SELECT key, sqlstate, message, phase FROM migrate.errors WHERE migration = 'rv_del';
SELECT key FROM migrate.undo WHERE migration = 'rv_del';
SELECT migrate_forget('rv_del');
DELETE FROM rv WHERE id = 50;
INSERT INTO rv SELECT * FROM rv_snap WHERE id = 50;
SELECT count(*) AS differ FROM rv r FULL JOIN rv_snap s USING (id) WHERE NOT (r.* *= s.*) OR r IS NULL OR s IS NULL;

-- a revert stopped part way: it goes on from its cursor, in the foreground
-- with migrate_step or in the background again; status counts restored rows
SELECT name FROM migrate_register('rv_part', 'rv', set_clause => 'n = n + 1',
                                  batch_size => 50, keep_before => true);
CALL migrate_run('rv_part');
BEGIN;
SELECT state, reverting FROM migrate_revert('rv_part');
SELECT state, reverting FROM migrate_pause('rv_part');
COMMIT;
SELECT migrate_wait('rv_part');
SELECT state, reverting, reverted, total_estimate, percent, progress FROM migrate_status('rv_part');
-- a dry run shows batches of the change, not of a revert
SELECT * FROM migrate_dry_run('rv_part');
SELECT state, reverting, reverted, revert_cursor IS NOT NULL AS has_cursor FROM migrate_step('rv_part', batch_size => 30);
SELECT state, reverting, reverted, total_estimate, percent, progress FROM migrate_status('rv_part');
SELECT n, count(*) FROM rv GROUP BY n ORDER BY n;
SELECT state, reverting, reverted FROM migrate_step('rv_part', batch_size => 60);
SELECT state, reverting, reverted, percent, progress FROM migrate_status('rv_part');
SELECT count(*) FROM migrate.undo WHERE migration = 'rv_part';
-- migrate_start goes on with the revert, not with the migration
SELECT state, reverting FROM migrate_start('rv_part');
SELECT migrate_wait('rv_part');
SELECT state, reverting, reverted, percent, progress FROM migrate_status('rv_part');
SELECT count(*) AS differ FROM rv r JOIN rv_snap s USING (id) WHERE NOT (r.* *= s.*);
SELECT count(*) FROM migrate.undo WHERE migration = 'rv_part';
SELECT event, detail FROM migrate.events WHERE migration = 'rv_part' ORDER BY id;

-- forgetting the before-images of a stopped revert abandons it: the rows
-- it restored stay restored, the others stay changed
SELECT name FROM migrate_register('rv_stop', 'rv', set_clause => 'n = n + 1',
                                  batch_size => 50, keep_before => true);
CALL migrate_run('rv_stop');
BEGIN;
SELECT state, reverting FROM migrate_revert('rv_stop');
SELECT state, reverting FROM migrate_pause('rv_stop');
COMMIT;
SELECT migrate_wait('rv_stop');
SELECT reverting, reverted FROM migrate_step('rv_stop', batch_size => 50);
SELECT migrate_forget('rv_stop');
-- the revert ends where it got to
SELECT state, reverting, reverted FROM migrate_status('rv_stop');
SELECT count(*) FROM migrate.undo WHERE migration = 'rv_stop';
SELECT n, count(*) FROM rv GROUP BY n ORDER BY n;
SELECT event, detail FROM migrate.events WHERE migration = 'rv_stop' AND event = 'forget';
UPDATE rv SET n = 0;
SELECT count(*) AS differ FROM rv r JOIN rv_snap s USING (id) WHERE NOT (r.* *= s.*);

-- with on_error => 'skip' the skipped rows have no before-image until a
-- retry changes them; the revert restores the retried rows too
CREATE TABLE rs (id int PRIMARY KEY, v int NOT NULL CHECK (v < 10));
INSERT INTO rs SELECT g, CASE WHEN g = 5 THEN 9 ELSE 0 END FROM generate_series(1, 20) g;
SELECT name FROM migrate_register('rs_m', 'rs', set_clause => 'v = v + 1', batch_size => 8,
                                  on_error => 'skip', keep_before => true);
CALL migrate_run('rs_m');
SELECT state, processed, changed, error_rows FROM migrate_status('rs_m');
SELECT count(*), count(*) FILTER (WHERE key = '{"id": 5}') AS of_5 FROM migrate.undo WHERE migration = 'rs_m';
UPDATE rs SET v = 3 WHERE id = 5;
SELECT * FROM migrate_retry_errors('rs_m');
SELECT key, before, after FROM migrate.undo WHERE migration = 'rs_m' AND key = '{"id": 5}';
SELECT state FROM migrate_revert('rs_m');
SELECT migrate_wait('rs_m');
SELECT state, changed, reverted, error_rows FROM migrate_status('rs_m');
SELECT v, count(*) FROM rs GROUP BY v ORDER BY v;

-- a row whose before-image breaks a constraint added since is not
-- restored: it is reported with its error, and the others are restored
SELECT name FROM migrate_register('rs_up', 'rs', set_clause => 'v = v + 5', batch_size => 8,
                                  keep_before => true);
CALL migrate_run('rs_up');
ALTER TABLE rs ADD CONSTRAINT rs_v_min CHECK (v >= 5 OR id > 10) NOT VALID;
SELECT state FROM migrate_revert('rs_up');
SELECT migrate_wait('rs_up');
SELECT state, reverting, reverted, error_rows, last_error FROM migrate_status('rs_up');
SELECT key, sqlstate, message, phase FROM migrate.errors WHERE migration = 'rs_up'
 ORDER BY (key->>'id')::int;
SELECT id, v FROM rs WHERE v <> 0 ORDER BY id;
SELECT count(*) FROM migrate.undo WHERE migration = 'rs_up';
SELECT migrate_forget('rs_up');

-- a running migration cannot be reverted, its before-images dropped, its
-- rows retried or the migration unregistered: hold its first batch on an
-- advisory lock until it has been asked
CREATE FUNCTION rv_gate() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(4242);
    RETURN 1;
END
$$;
SELECT name FROM migrate_register('rv_busy', 'rv', set_clause => 'n = n + rv_gate()',
                                  batch_size => 50, lock_timeout => '5min', keep_before => true);
SELECT pg_advisory_lock(4242);
SELECT (migrate_start('rv_busy')).state;
DO $$
DECLARE   -- wait for the worker to block on the advisory lock inside its batch
    deadline timestamptz := clock_timestamp() + interval '120 seconds';
BEGIN
    WHILE NOT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND objsubid = 1
                                             AND NOT granted) LOOP
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'the worker of "rv_busy" did not block on the advisory lock in 120 seconds';
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT migrate_revert('rv_busy');
SELECT migrate_forget('rv_busy');
SELECT * FROM migrate_retry_errors('rv_busy');
SELECT migrate_unregister('rv_busy');
SELECT state FROM migrate_pause('rv_busy');
SELECT pg_advisory_unlock(4242);
SELECT migrate_wait('rv_busy');
SELECT state, processed, changed FROM migrate_status('rv_busy');
SELECT n, count(*) FROM rv GROUP BY n ORDER BY n;
-- a partly done migration can be reverted too
SELECT state FROM migrate_revert('rv_busy');
SELECT migrate_wait('rv_busy');
SELECT state, processed, reverted, error_rows FROM migrate_status('rv_busy');
SELECT count(*) AS differ FROM rv r JOIN rv_snap s USING (id) WHERE NOT (r.* *= s.*);

-- reverting a delete inserts rows, as the migration's owner: refused
-- while the owner may not insert into the table
SET ROLE migrate_alice;
CREATE TABLE alice_rv (id int PRIMARY KEY, v int);
INSERT INTO alice_rv SELECT g, g FROM generate_series(1, 10) g;
SELECT name FROM migrate_register('alice_del', 'alice_rv', action => 'delete',
                                  where_clause => 'id > 5', keep_before => true);
CALL migrate_run('alice_del');
REVOKE INSERT ON alice_rv FROM migrate_alice;
RESET ROLE;
SELECT migrate_revert('alice_del');
SELECT state, reverting FROM migrate_status('alice_del');
GRANT INSERT ON alice_rv TO migrate_alice;
SELECT state FROM migrate_revert('alice_del');
SELECT migrate_wait('alice_del');
SELECT state, reverted FROM migrate_status('alice_del');
SELECT count(*), sum(v) FROM alice_rv;

-- values whose text is more than their jsonb value survive a round trip
-- too, whatever the session prints: json with its spacing and key order,
-- a negative zero, array bounds, intervals, bytea
CREATE TABLE ex (id int PRIMARY KEY, j json, f float8, a int[], iv interval, b bytea,
                 n int NOT NULL DEFAULT 0);
INSERT INTO ex VALUES
    (1, '{"b": 1,  "a": [2, 1]}', '-0', '[0:1]={1,2}', '1 mon -1 day 0.5 sec', '\x00ff'),
    (2, '[ 1,2 ]', 1.0 / 3, '{{1,2},{3,4}}', '-2 years 3 hours', ''),
    (3, NULL, 'NaN', '{}', '0', NULL);
CREATE TABLE ex_snap AS SELECT * FROM ex;
CREATE FUNCTION ex_fn(r ex) RETURNS ex LANGUAGE plpgsql AS $$
BEGIN
    r.n := r.n + 1;
    RETURN r;
END
$$;
SET extra_float_digits = 0;
SET IntervalStyle = 'sql_standard';
SET bytea_output = 'escape';
SET DateStyle = 'SQL, DMY';
SELECT name FROM migrate_register('ex_fn', 'ex', row_fn => 'ex_fn(ex)', keep_before => true);
CALL migrate_run('ex_fn');
SELECT name FROM migrate_register('ex_set', 'ex',
                                  set_clause => $$j = '{"z": 1,   "y": 2}', f = -f, a = '[5:5]={9}',
                                                  iv = iv * 2, b = b || '\x01'::bytea$$,
                                  keep_before => true);
CALL migrate_run('ex_set');
RESET extra_float_digits;
RESET IntervalStyle;
RESET bytea_output;
RESET DateStyle;
SELECT count(*) AS differ FROM ex e JOIN ex_snap s USING (id) WHERE NOT (e.* *= s.*);
SELECT state FROM migrate_revert('ex_set');
SELECT migrate_wait('ex_set');
SELECT state FROM migrate_revert('ex_fn');
SELECT migrate_wait('ex_fn');
SELECT name, state, reverted, error_rows FROM migrate_status() WHERE name LIKE 'ex%' ORDER BY name COLLATE "C";
SELECT count(*) AS differ FROM ex e JOIN ex_snap s USING (id) WHERE NOT (e.* *= s.*);
SELECT id, j, f::text, a, iv, b FROM ex ORDER BY id;

-- types whose name without a length means length 1 (char(n), bit(n)), and
-- a timestamptz key read back under another TimeZone
CREATE TABLE ty (at timestamptz PRIMARY KEY, c char(5), b bit(3), ca char(4)[], v int);
INSERT INTO ty SELECT '2024-01-01 00:00+00'::timestamptz + g * interval '1 hour',
                      'ab' || g, (g % 8)::bit(3), ARRAY['x' || g, 'yy'], g
  FROM generate_series(1, 6) g;
CREATE TABLE ty_snap AS SELECT * FROM ty;
-- the images are taken here, in Tokyo time; the worker reverts in the server's
SET TimeZone = 'Asia/Tokyo';
SELECT name FROM migrate_register('ty_set', 'ty', set_clause => $$c = 'zz', b = B'111', ca = '{q}'$$,
                                  where_clause => 'v <= 3', keep_before => true);
CALL migrate_run('ty_set');
SELECT name FROM migrate_register('ty_del', 'ty', action => 'delete', where_clause => 'v > 3',
                                  keep_before => true);
CALL migrate_run('ty_del');
SELECT count(*) FROM ty;
SELECT key FROM migrate.undo WHERE migration = 'ty_del' ORDER BY id LIMIT 1;
RESET TimeZone;
SELECT state FROM migrate_revert('ty_del');
SELECT migrate_wait('ty_del');
SELECT state FROM migrate_revert('ty_set');
SELECT migrate_wait('ty_set');
SELECT name, state, reverted, error_rows FROM migrate_status() WHERE name LIKE 'ty%' ORDER BY name COLLATE "C";
SELECT count(*) AS differ FROM ty t FULL JOIN ty_snap s USING (at) WHERE NOT (t.* *= s.*) OR t.at IS NULL OR s.at IS NULL;
SELECT c, b, ca FROM ty ORDER BY at;

-- a char(n) key walks the table (its bound must not read back as char(1))
CREATE TABLE ck (k char(3) PRIMARY KEY, v int NOT NULL DEFAULT 0);
INSERT INTO ck (k) SELECT chr(97 + g / 26) || chr(97 + g % 26) || 'x' FROM generate_series(0, 99) g;
SELECT name FROM migrate_register('ck_m', 'ck', set_clause => 'v = v + 1', batch_size => 10);
CALL migrate_run('ck_m');
SELECT state, processed, batches FROM migrate_status('ck_m');
SELECT count(*) FILTER (WHERE v = 1), count(*) FROM ck;

-- refusals and bad arguments
SELECT name FROM migrate_register('rv_plain', 'rv', set_clause => 'n = n + 1', batch_size => 50);
SELECT migrate_revert('rv_plain');
SELECT migrate_forget('rv_plain');
SELECT migrate_revert('rv_part', keep_undo => NULL);
SELECT migrate_revert(NULL);
SELECT migrate_revert('nope');
SELECT migrate_forget(NULL);
SELECT migrate_forget('nope');

-- clean up
SELECT count(migrate_unregister(name)) FROM migrate.migrations;
SELECT count(*) FROM migrate.undo;
DROP FUNCTION rv_fn, rv_gate, ex_fn;
DROP TABLE rv, rv_snap, rs, alice_rv, ex, ex_snap, ty, ty_snap, ck;
