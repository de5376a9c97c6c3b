-- privileges: what the attack review of 0.2 found, each reproduced
-- (issue 9: findings 2 to 4, 6, 7 and 9; findings 1, 5 and 8 need workers
-- and are in test/t/019_security.pl)
CREATE SCHEMA vic;
CREATE TABLE vic.secret (id int PRIMARY KEY, s text);
INSERT INTO vic.secret VALUES (1, 'x');
GRANT USAGE ON SCHEMA vic TO PUBLIC;
CREATE TABLE priv (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, k text);
INSERT INTO priv (id) SELECT g FROM generate_series(1, 100) g;
ALTER TABLE priv OWNER TO migrate_alice;

-- 4. sub-selects in fragments are checked with the owner's rights, even
-- where the planner would fold them away
SET ROLE migrate_alice;
SELECT migrate_register('p_where', 'priv', set_clause => 'n = 1',
                        where_clause => 'EXISTS (SELECT FROM vic.secret s WHERE s.id = priv.id)');
SELECT migrate_register('p_set', 'priv', set_clause => 'n = (SELECT count(*) FROM vic.secret)');
SELECT migrate_register('p_cte', 'priv', set_clause => 'n = 1',
                        where_clause => 'id IN (WITH c AS (SELECT id FROM vic.secret) SELECT id FROM c)');
SELECT migrate_register('p_task', NULL, sql => 'UPDATE priv SET n = (SELECT count(*) FROM vic.secret) WHERE false');
SELECT count(*) AS registered FROM migrate.migrations WHERE name LIKE 'p\_%';
RESET ROLE;
-- with the privilege (here on one column only) the same registrations work
GRANT SELECT (id) ON vic.secret TO migrate_alice;
SET ROLE migrate_alice;
SELECT name FROM migrate_register('p_where', 'priv', set_clause => 'n = 1',
                                  where_clause => 'EXISTS (SELECT FROM vic.secret s WHERE s.id = priv.id)');
SELECT migrate_register('p_col', 'priv', set_clause => 'k = (SELECT s FROM vic.secret LIMIT 1)');

-- 6. CALL migrate_run records the caller as started_by, not the catalog owner
CALL migrate_run('p_where');
SELECT state, processed, changed, started_by FROM migrate_status('p_where');
SELECT event, role FROM migrate.events WHERE migration = 'p_where' ORDER BY id;
SELECT n, count(*) FROM priv GROUP BY n ORDER BY n;

-- 7. a key column whose type changes under a running migration stops it
-- before a batch changes anything
SELECT name, key_types FROM migrate_register('p_key', 'priv', set_clause => 'n = n + 1', batch_size => 40);
SELECT state, cursor, processed FROM migrate_step('p_key');
ALTER TABLE priv ALTER COLUMN id TYPE text;
SELECT migrate_step('p_key');
CALL migrate_run('p_key');
SELECT state, processed, last_error FROM migrate_status('p_key');
SELECT n, count(*) FROM priv GROUP BY n ORDER BY n;
-- so is a key whose collation changes
CREATE TABLE pcoll (id text PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO pcoll SELECT 'k' || g FROM generate_series(1, 100) g;
SELECT name, key_types FROM migrate_register('p_coll', 'pcoll', set_clause => 'n = n + 1', batch_size => 40);
SELECT state, cursor, processed FROM migrate_step('p_coll');
ALTER TABLE pcoll ALTER COLUMN id TYPE text COLLATE "C";
SELECT migrate_step('p_coll');
ALTER TABLE pcoll ALTER COLUMN id TYPE text COLLATE "default";
SELECT state, cursor, processed FROM migrate_step('p_coll');
RESET ROLE;
-- (issue 20) a domain key made again with another collation: the type's
-- name is the same, the order is not
CREATE DOMAIN pdom AS text COLLATE "C";
CREATE TABLE pdomt (id pdom PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO pdomt SELECT 'k' || g FROM generate_series(1, 100) g;
SELECT name, key_types FROM migrate_register('p_dom', 'pdomt', set_clause => 'n = n + 1', batch_size => 40);
SELECT state, cursor, processed FROM migrate_step('p_dom');
ALTER TABLE pdomt ALTER COLUMN id TYPE text;
DROP DOMAIN pdom;
CREATE DOMAIN pdom AS text COLLATE "POSIX";
ALTER TABLE pdomt ALTER COLUMN id TYPE pdom;
SELECT migrate_step('p_dom');
SELECT n, count(*) FROM pdomt GROUP BY n ORDER BY n;
-- an enum key whose label at the cursor is renamed, or that gains a label
CREATE TYPE penum AS ENUM ('a', 'b', 'c', 'd', 'e');
CREATE TABLE penumt (id penum, k int, n int NOT NULL DEFAULT 0, PRIMARY KEY (id, k));
INSERT INTO penumt SELECT e, g, 0 FROM unnest(enum_range(NULL::penum)) e, generate_series(1, 20) g;
SELECT name, key_types FROM migrate_register('p_enum', 'penumt', set_clause => 'n = n + 1', batch_size => 30);
SELECT state, cursor, processed FROM migrate_step('p_enum');
ALTER TYPE penum RENAME VALUE 'b' TO 'z';
SELECT migrate_step('p_enum');
ALTER TYPE penum RENAME VALUE 'z' TO 'b';
SELECT state, cursor, processed FROM migrate_step('p_enum');
ALTER TYPE penum ADD VALUE 'f';
SELECT migrate_step('p_enum');
SELECT n, count(*) FROM penumt GROUP BY n ORDER BY n;
-- a migration registered before 0.4, whose key_types 0.3 wrote, is taken
-- over at its next batch if they still match, and guarded from then on
UPDATE migrate.migrations SET key_types = '{public.pdom}', state = 'paused' WHERE name = 'p_dom';
SELECT state, cursor, processed FROM migrate_step('p_dom');
SELECT key_types FROM migrate.migrations WHERE name = 'p_dom';
SELECT migrate_unregister('p_dom');
SELECT migrate_unregister('p_enum');
DROP TABLE pdomt, penumt;
DROP DOMAIN pdom;
DROP TYPE penum;

-- 9. a migration another role may not see answers exactly like a missing one
SET ROLE migrate_bob;
SELECT migrate_start('p_coll');
SELECT migrate_start('no_such_migration');
SELECT migrate_pause('p_coll');
SELECT migrate_pause('no_such_migration');
SELECT * FROM migrate_status('p_coll');
RESET ROLE;

-- 3. a series is checked in linear time, bounded, and refuses duplicates
SELECT migrate_start_series(array_agg('m' || g)) FROM generate_series(1, 1001) g;
SELECT migrate_start_series(array_agg('m' || (g % 999))) FROM generate_series(1, 1000) g;
SELECT migrate_start_series(ARRAY['p_coll', repeat('x', 64)]);
SELECT migrate_start_series(ARRAY['p_coll', NULL]);

-- the owner's code may call migrate's functions again, many times, inside a
-- batch: no statement the batch is running is freed under it
SET ROLE migrate_alice;
CREATE TABLE nest_t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO nest_t (id) SELECT g FROM generate_series(1, 3) g;
CREATE TABLE nest_t2 (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO nest_t2 (id) SELECT g FROM generate_series(1, 200) g;
DO $$
BEGIN
    FOR k IN 1 .. 100 LOOP
        PERFORM migrate_register('p_n' || k, 'nest_t2', set_clause => 'n = ' || k, batch_size => 1);
    END LOOP;
END
$$;
CREATE FUNCTION nest(c int, fail boolean) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    FOR k IN 1 .. c LOOP
        PERFORM migrate_step('p_n' || k);
    END LOOP;
    IF fail THEN
        RAISE EXCEPTION 'nested steps done';
    END IF;
    RETURN c;
END
$$;
SELECT name FROM migrate_register('p_outer', 'nest_t', set_clause => 'n = nest(100, id = 3)', batch_size => 1);
SELECT state, processed FROM migrate_step('p_outer');
SELECT state, processed FROM migrate_step('p_outer');
SELECT state, processed FROM migrate_step('p_outer');
SELECT n, count(*) FROM nest_t GROUP BY n ORDER BY n;
SELECT count(*) FILTER (WHERE n > 0) AS stepped FROM nest_t2;
SELECT count(*) AS cursors_moved FROM migrate.migrations WHERE name LIKE 'p\_n%' AND processed = 2;
RESET ROLE;

-- clean up
SELECT count(migrate_unregister(name)) FROM migrate.migrations WHERE name LIKE 'p\_%';
DROP TABLE priv, pcoll, nest_t, nest_t2;
DROP FUNCTION nest(int, boolean);
DROP SCHEMA vic CASCADE;
