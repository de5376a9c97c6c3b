-- parallel: a migration with workers > 1 walks ranges of its keys (or its
-- leaf partitions), each with its own bounds, cursor and counters; here
-- the ranges are planned, walked by hand and split, and their counters add
-- up to the migration's
CREATE TABLE pw_t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO pw_t (id) SELECT g FROM generate_series(1, 2000) g;

-- bad workers are refused
SELECT migrate_register('pw_bad', 'pw_t', set_clause => 'n = n + 1', workers => 0);
SELECT migrate_register('pw_bad', 'pw_t', set_clause => 'n = n + 1', workers => 65);
SELECT migrate_register('pw_bad', 'pw_t', set_clause => 'n = n + 1', workers => NULL);
SELECT migrate_register('pw_task', NULL, sql => 'SELECT 1', workers => 2);
SELECT name, workers FROM migrate_register('pw', 'pw_t', set_clause => 'n = n + 1',
                                           batch_size => 300, workers => 2);

-- no ranges before the first batch
SELECT migrate_split_range('pw');
SELECT count(*) FROM migrate_ranges('pw');

-- the first batch plans them: 4 per worker, from the first key of each
-- page of a sample of the table (here all 9 of its pages)
SELECT processed FROM migrate_step('pw');
SELECT lower, upper, cursor, state, rows_estimate, processed, changed, batches, split_from
  FROM migrate_ranges('pw') ORDER BY lower NULLS FIRST;
SELECT processed, changed, batches, ranges, ranges_done, workers FROM migrate_status('pw');

-- a split halves the rows left after the cursor: the first range has
-- 226 rows, 300 rows a batch, so one step did it; the second is split
SELECT migrate_split_range('pw', (SELECT range FROM migrate_ranges('pw') WHERE lower = '{"id": 227}')) IS NOT NULL AS split;
SELECT migrate_split_range('pw', -1);
SELECT lower, upper, cursor, state, rows_estimate, processed, split_from IS NOT NULL AS was_split
  FROM migrate_ranges('pw') WHERE lower <= '{"id": 679}' ORDER BY lower NULLS FIRST;

-- by hand the ranges are walked in turn; CALL migrate_run finishes them
SELECT processed FROM migrate_step('pw');
SELECT processed FROM migrate_step('pw');
CALL migrate_run('pw');
SELECT state, processed, changed, ranges, ranges_done FROM migrate_status('pw');
SELECT n, count(*) FROM pw_t GROUP BY n;
SELECT sum(processed) AS processed, sum(changed) AS changed, bool_and(state = 'done') AS all_done
  FROM migrate_ranges('pw');
-- the ranges tile the keys: each starts where the one before ends
SELECT bool_and(lower IS NOT DISTINCT FROM before) AS adjacent, count(*) FILTER (WHERE upper IS NULL) AS open_ended
  FROM (SELECT lower, upper, lag(upper) OVER (ORDER BY lower NULLS FIRST) AS before
          FROM migrate_ranges('pw')) r;

-- registered again, it starts over: its ranges are forgotten
SELECT name FROM migrate_register('pw', 'pw_t', set_clause => 'n = n - 1', batch_size => 300,
                                  workers => 2, replace => true);
SELECT count(*) FROM migrate_ranges('pw');
SELECT processed FROM migrate_step('pw');
SELECT count(*) FROM migrate_ranges('pw');
SELECT migrate_unregister('pw');
SELECT count(*) FROM migrate.ranges;

-- a table partitioned by its key: one range per leaf partition, each
-- walked through its own key index
CREATE TABLE pw_h (id int PRIMARY KEY, n int NOT NULL DEFAULT 0) PARTITION BY HASH (id);
CREATE TABLE pw_h0 PARTITION OF pw_h FOR VALUES WITH (modulus 3, remainder 0);
CREATE TABLE pw_h1 PARTITION OF pw_h FOR VALUES WITH (modulus 3, remainder 1);
CREATE TABLE pw_h2 PARTITION OF pw_h FOR VALUES WITH (modulus 3, remainder 2);
INSERT INTO pw_h (id) SELECT g FROM generate_series(1, 900) g;
SELECT name FROM migrate_register('pw_hash', 'pw_h', set_clause => 'n = n + 1',
                                  batch_size => 100, workers => 3);
CALL migrate_run('pw_hash');
SELECT r.relation, r.lower, r.upper, r.state, r.processed = c.rows AS every_row
  FROM migrate_ranges('pw_hash') r
  JOIN (SELECT tableoid, count(*) AS rows FROM pw_h GROUP BY tableoid) c
    ON c.tableoid = r.relation::regclass
 ORDER BY r.relation;
SELECT n, count(*) FROM pw_h GROUP BY n;

-- a statement trigger on the partitioned table would not fire for its
-- partitions: then the table is walked as a whole, in sampled key ranges
CREATE FUNCTION pw_stmt() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE TRIGGER pw_stmt AFTER UPDATE ON pw_h FOR EACH STATEMENT EXECUTE FUNCTION pw_stmt();
SELECT name FROM migrate_register('pw_hash2', 'pw_h', set_clause => 'n = n + 1',
                                  batch_size => 100, workers => 3);
CALL migrate_run('pw_hash2');
SELECT DISTINCT relation FROM migrate_ranges('pw_hash2');
SELECT n, count(*) FROM pw_h GROUP BY n;

-- a table partitioned by list: its key (id, kind) holds the partition
-- column, as every unique key of a partitioned table must, so a row moves
-- to another partition only with a new key: one range per partition
CREATE TABLE pw_l (id int, kind text, n int NOT NULL DEFAULT 0, PRIMARY KEY (id, kind))
    PARTITION BY LIST (kind);
CREATE TABLE pw_la PARTITION OF pw_l FOR VALUES IN ('a');
CREATE TABLE pw_lb PARTITION OF pw_l FOR VALUES IN ('b');
INSERT INTO pw_l SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END FROM generate_series(1, 500) g;
SELECT name FROM migrate_register('pw_list', 'pw_l', set_clause => 'n = n + 1',
                                  batch_size => 100, workers => 2);
CALL migrate_run('pw_list');
SELECT DISTINCT relation FROM migrate_ranges('pw_list');
SELECT n, count(*) FROM pw_l GROUP BY n;

-- a partition is named from its OID before each batch, never from the
-- catalog's text; a partition attached later to a table without a default
-- partition (its keys could be in no row before) is walked at the end
CREATE TABLE pw_p (id int PRIMARY KEY, n int NOT NULL DEFAULT 0) PARTITION BY RANGE (id);
CREATE TABLE pw_p1 PARTITION OF pw_p FOR VALUES FROM (1) TO (101);
CREATE TABLE pw_p2 PARTITION OF pw_p FOR VALUES FROM (101) TO (201);
CREATE TABLE pw_p3 PARTITION OF pw_p FOR VALUES FROM (201) TO (301);
INSERT INTO pw_p (id) SELECT g FROM generate_series(1, 300) g;
SELECT name FROM migrate_register('pw_part', 'pw_p', set_clause => 'n = n + 1',
                                  batch_size => 50, workers => 2);
SELECT processed FROM migrate_step('pw_part');
SELECT r.relation, r.state, r.processed, x.bound FROM migrate_ranges('pw_part') r
  JOIN migrate.ranges x ON x.id = r.range ORDER BY r.relation;
CREATE TABLE pw_p4 PARTITION OF pw_p FOR VALUES FROM (301) TO (401);
INSERT INTO pw_p (id) SELECT g FROM generate_series(301, 350) g;
CALL migrate_run('pw_part');
SELECT state, processed FROM migrate_status('pw_part');
SELECT relation, state, processed FROM migrate_ranges('pw_part') ORDER BY relation;
SELECT tableoid::regclass, n, count(*) FROM pw_p GROUP BY 1, 2 ORDER BY 1;
-- a partition dropped (or detached) before its range is done fails the
-- migration before anything more is changed: its rows could come back
-- elsewhere (issue 20); a table put in its place is never touched
UPDATE pw_p SET n = 0;
SELECT name FROM migrate_register('pw_part', 'pw_p', set_clause => 'n = n + 1',
                                  batch_size => 50, workers => 2, replace => true);
SELECT processed FROM migrate_step('pw_part');
DROP TABLE pw_p2;
CREATE TABLE pw_p2 (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO pw_p2 VALUES (150, 0);
ALTER TABLE pw_p DETACH PARTITION pw_p3;
CALL migrate_run('pw_part');
SELECT state, processed, last_error FROM migrate_status('pw_part');
SELECT tableoid::regclass, n, count(*) FROM pw_p GROUP BY 1, 2 ORDER BY 1, 2;
SELECT n, count(*) FROM pw_p2 GROUP BY n;
SELECT n, count(*) FROM pw_p3 GROUP BY n;
-- one that gained row-level security stops the migration
SELECT name FROM migrate_register('pw_part', 'pw_p', set_clause => 'n = n + 1',
                                  batch_size => 50, workers => 2, replace => true);
SELECT processed FROM migrate_step('pw_part');
ALTER TABLE pw_p4 ENABLE ROW LEVEL SECURITY;
CALL migrate_run('pw_part');
SELECT state, last_error FROM migrate_status('pw_part');
ALTER TABLE pw_p4 DISABLE ROW LEVEL SECURITY;
SELECT migrate_unregister('pw_part');

-- a clause that names the table, or an owner that may only read the
-- partitions: the table is walked as a whole
SELECT name FROM migrate_register('pw_named', 'pw_p', set_clause => 'n = n + 1',
                                  where_clause => 'pw_p.n < 10', batch_size => 50, workers => 2);
SELECT processed FROM migrate_step('pw_named');
SELECT DISTINCT relation FROM migrate_ranges('pw_named');
SELECT migrate_unregister('pw_named');
CREATE ROLE pw_reader;
GRANT SELECT, UPDATE ON pw_p TO pw_reader;
GRANT SELECT ON pw_p1, pw_p4 TO pw_reader;
SET ROLE pw_reader;
SELECT name FROM migrate_register('pw_reads', 'pw_p', set_clause => 'n = n + 1',
                                  batch_size => 50, workers => 2);
SELECT processed FROM migrate_step('pw_reads');
SELECT DISTINCT relation FROM migrate_ranges('pw_reads');
SELECT migrate_unregister('pw_reads');
RESET ROLE;
REVOKE ALL ON pw_p, pw_p1, pw_p4 FROM pw_reader;
DROP ROLE pw_reader;
DROP TABLE pw_p, pw_p2, pw_p3;

-- on_error => 'skip' and keep_before work range by range; the revert
-- (one worker) puts every row back
CREATE TABLE pw_k (id int PRIMARY KEY, n int NOT NULL DEFAULT 0 CHECK (id <> 777 OR n = 0));
INSERT INTO pw_k (id) SELECT g FROM generate_series(1, 1000) g;
SELECT name FROM migrate_register('pw_keep', 'pw_k', set_clause => 'n = n + 1', batch_size => 100,
                                  workers => 2, on_error => 'skip', keep_before => true);
CALL migrate_run('pw_keep');
SELECT state, processed, changed, error_rows, ranges = ranges_done AS all_done FROM migrate_status('pw_keep');
SELECT key FROM migrate.errors WHERE migration = 'pw_keep';
SELECT count(*) FROM migrate.undo WHERE migration = 'pw_keep';
SELECT n, count(*) FROM pw_k GROUP BY n ORDER BY n;
SELECT state FROM migrate_revert('pw_keep');
SELECT migrate_wait('pw_keep');
SELECT state, reverted FROM migrate_status('pw_keep');
SELECT n, count(*) FROM pw_k GROUP BY n;

-- a migration is bound to the table it was registered on: renamed, and
-- another put under its name, the other is never touched
CREATE TABLE pw_x (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO pw_x (id) SELECT g FROM generate_series(1, 10) g;
SELECT name FROM migrate_register('pw_bound', 'pw_x', set_clause => 'n = n + 1', batch_size => 5);
SELECT processed FROM migrate_step('pw_bound');
ALTER TABLE pw_x RENAME TO pw_x_old;
CREATE TABLE pw_x (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO pw_x (id) SELECT g FROM generate_series(1, 10) g;
SELECT processed FROM migrate_step('pw_bound');
SELECT sum(n) FROM pw_x;
DROP TABLE pw_x;
ALTER TABLE pw_x_old RENAME TO pw_x;
SELECT processed FROM migrate_step('pw_bound');
SELECT sum(n) FROM pw_x;
SELECT migrate_unregister('pw_bound');
DROP TABLE pw_x;

-- a partition that leaves the table while its range is not done fails the
-- migration, even if it comes back (issue 20): its rows could have moved
CREATE TABLE pw_d (id int PRIMARY KEY, n int NOT NULL DEFAULT 0) PARTITION BY RANGE (id);
CREATE TABLE pw_d1 PARTITION OF pw_d FOR VALUES FROM (1) TO (101);
CREATE TABLE pw_d2 PARTITION OF pw_d FOR VALUES FROM (101) TO (201);
CREATE TABLE pw_d3 PARTITION OF pw_d FOR VALUES FROM (201) TO (301);
INSERT INTO pw_d (id) SELECT g FROM generate_series(1, 300) g;
SELECT name FROM migrate_register('pw_back', 'pw_d', set_clause => 'n = n + 1',
                                  batch_size => 60, workers => 2);
SELECT processed FROM migrate_step('pw_back');
SELECT processed FROM migrate_step('pw_back');
SELECT processed FROM migrate_step('pw_back');
SELECT processed FROM migrate_step('pw_back');
ALTER TABLE pw_d DETACH PARTITION pw_d2;
SELECT processed FROM migrate_step('pw_back');
SELECT relation, state, cursor, processed FROM migrate_ranges('pw_back') ORDER BY relation;
ALTER TABLE pw_d ATTACH PARTITION pw_d2 FOR VALUES FROM (101) TO (201);
-- back with the same bounds, it goes on from its cursor
CALL migrate_run('pw_back');
SELECT state, processed FROM migrate_status('pw_back');
SELECT n, count(*) FROM pw_d GROUP BY n;
-- back with other bounds, its keys moved: the migration fails
UPDATE pw_d SET n = 0;
SELECT name FROM migrate_register('pw_back', 'pw_d', set_clause => 'n = n + 1',
                                  batch_size => 60, workers => 2, replace => true);
SELECT processed FROM migrate_step('pw_back');
BEGIN;
ALTER TABLE pw_d DETACH PARTITION pw_d1;
ALTER TABLE pw_d DETACH PARTITION pw_d2;
DELETE FROM pw_d1 WHERE id > 50;
ALTER TABLE pw_d ATTACH PARTITION pw_d1 FOR VALUES FROM (1) TO (51);
INSERT INTO pw_d2 SELECT g, 1 FROM generate_series(51, 60) g;
ALTER TABLE pw_d ATTACH PARTITION pw_d2 FOR VALUES FROM (51) TO (201);
INSERT INTO pw_d2 SELECT g, 0 FROM generate_series(61, 100) g;
COMMIT;
CALL migrate_run('pw_back');
SELECT state, last_error FROM migrate_status('pw_back');
SELECT max(n) FROM pw_d;
-- a range 0.3 closed when its partition left (left_table), partition back:
-- its rows after its cursor were never walked, so the migration fails
UPDATE pw_d SET n = 0;
SELECT name FROM migrate_register('pw_back', 'pw_d', set_clause => 'n = n + 1',
                                  batch_size => 60, workers => 2, replace => true);
SELECT processed FROM migrate_step('pw_back');
UPDATE migrate.ranges SET done = true, left_table = true
 WHERE migration = (SELECT id FROM migrate.migrations WHERE name = 'pw_back') AND cursor IS NOT NULL;
SELECT processed FROM migrate_step('pw_back');
SELECT migrate_unregister('pw_back');
DROP TABLE pw_d;

-- issue 20: a table with a DEFAULT partition.  A partition replaced by a
-- copy (another OID) while its range is not done, a partition whose rows
-- are put back through the table into the DEFAULT partition, a partition
-- attached (its keys were the DEFAULT partition's): each fails the
-- migration before a row is changed twice or skipped
CREATE TABLE pw_q (id int PRIMARY KEY, n int NOT NULL DEFAULT 0) PARTITION BY RANGE (id);
CREATE TABLE pw_q0 PARTITION OF pw_q DEFAULT;
CREATE TABLE pw_q1 PARTITION OF pw_q FOR VALUES FROM (1) TO (201);
CREATE TABLE pw_q2 PARTITION OF pw_q FOR VALUES FROM (201) TO (401);
INSERT INTO pw_q (id) SELECT g FROM generate_series(1, 400) g;
INSERT INTO pw_q (id) SELECT g FROM generate_series(1001, 1050) g;
SELECT name FROM migrate_register('pw_q', 'pw_q', set_clause => 'n = n + 1',
                                  batch_size => 50, workers => 2);
SELECT processed FROM migrate_step('pw_q');
SELECT processed FROM migrate_step('pw_q');
SELECT relation, state, cursor FROM migrate_ranges('pw_q') ORDER BY relation;
BEGIN;
ALTER TABLE pw_q DETACH PARTITION pw_q1;
CREATE TABLE pw_q1_copy (LIKE pw_q1 INCLUDING ALL);
INSERT INTO pw_q1_copy SELECT * FROM pw_q1;
DROP TABLE pw_q1;
ALTER TABLE pw_q1_copy RENAME TO pw_q1;
ALTER TABLE pw_q ATTACH PARTITION pw_q1 FOR VALUES FROM (1) TO (201);
COMMIT;
CALL migrate_run('pw_q');
SELECT state, last_error FROM migrate_status('pw_q');
SELECT n, count(*) FROM pw_q GROUP BY n ORDER BY n;
-- the same by hand: migrate_step fails too, and changes nothing
SELECT processed FROM migrate_step('pw_q');
-- rows of a partition put back through the table land in the DEFAULT one
UPDATE pw_q SET n = 0;
SELECT name FROM migrate_register('pw_q', 'pw_q', set_clause => 'n = n + 1',
                                  batch_size => 50, workers => 2, replace => true);
SELECT processed FROM migrate_step('pw_q');
SELECT processed FROM migrate_step('pw_q');
SELECT processed FROM migrate_step('pw_q');
SELECT relation, state, cursor FROM migrate_ranges('pw_q') ORDER BY relation;
BEGIN;
ALTER TABLE pw_q DETACH PARTITION pw_q2;
INSERT INTO pw_q SELECT * FROM pw_q2;
DROP TABLE pw_q2;
COMMIT;
CALL migrate_run('pw_q');
SELECT state, last_error FROM migrate_status('pw_q');
SELECT n, count(*) FROM pw_q GROUP BY n ORDER BY n;
-- a done partition dropped from a table with a DEFAULT partition, ranges left
DROP TABLE pw_q;
CREATE TABLE pw_q (id int PRIMARY KEY, n int NOT NULL DEFAULT 0) PARTITION BY RANGE (id);
CREATE TABLE pw_q1 PARTITION OF pw_q FOR VALUES FROM (1) TO (51);
CREATE TABLE pw_q2 PARTITION OF pw_q FOR VALUES FROM (51) TO (201);
CREATE TABLE pw_q0 PARTITION OF pw_q DEFAULT;
INSERT INTO pw_q (id) SELECT g FROM generate_series(1, 300) g;
SELECT name FROM migrate_register('pw_q', 'pw_q', set_clause => 'n = n + 1',
                                  batch_size => 50, workers => 2, replace => true);
SELECT processed FROM migrate_step('pw_q');
SELECT processed FROM migrate_step('pw_q');
SELECT relation, state FROM migrate_ranges('pw_q') ORDER BY relation;
ALTER TABLE pw_q DETACH PARTITION pw_q1;
SELECT processed FROM migrate_step('pw_q');
ALTER TABLE pw_q ATTACH PARTITION pw_q1 FOR VALUES FROM (1) TO (51);
-- a partition attached to a table with a DEFAULT partition
CREATE TABLE pw_q3 PARTITION OF pw_q FOR VALUES FROM (301) TO (401);
SELECT processed FROM migrate_step('pw_q');
DROP TABLE pw_q3;
-- back as planned, the walk goes on and ends with every row changed once
CALL migrate_run('pw_q');
SELECT state, processed FROM migrate_status('pw_q');
SELECT n, count(*) FROM pw_q GROUP BY n ORDER BY n;
SELECT migrate_unregister('pw_q');
-- without a DEFAULT partition, a partition done and dropped is no harm
DROP TABLE pw_q;
CREATE TABLE pw_q (id int PRIMARY KEY, n int NOT NULL DEFAULT 0) PARTITION BY RANGE (id);
CREATE TABLE pw_q1 PARTITION OF pw_q FOR VALUES FROM (1) TO (51);
CREATE TABLE pw_q2 PARTITION OF pw_q FOR VALUES FROM (51) TO (201);
INSERT INTO pw_q (id) SELECT g FROM generate_series(1, 200) g;
SELECT name FROM migrate_register('pw_q', 'pw_q', set_clause => 'n = n + 1',
                                  batch_size => 50, workers => 2);
SELECT processed FROM migrate_step('pw_q');
SELECT processed FROM migrate_step('pw_q');
DROP TABLE pw_q1;
CALL migrate_run('pw_q');
SELECT state, processed FROM migrate_status('pw_q');
SELECT n, count(*) FROM pw_q GROUP BY n ORDER BY n;
-- but a partition attached after one walked already left may hold its
-- rows: refused
CREATE TABLE pw_q1 PARTITION OF pw_q FOR VALUES FROM (1) TO (51);
INSERT INTO pw_q (id) SELECT g FROM generate_series(1, 50) g;
UPDATE pw_q SET n = 0;
SELECT name FROM migrate_register('pw_q', 'pw_q', set_clause => 'n = n + 1',
                                  batch_size => 50, workers => 2, replace => true);
SELECT processed FROM migrate_step('pw_q', 500);
SELECT processed FROM migrate_step('pw_q', 500);
SELECT relation, state FROM migrate_ranges('pw_q') ORDER BY relation;
ALTER TABLE pw_q DETACH PARTITION pw_q2;
CREATE TABLE pw_q4 PARTITION OF pw_q FOR VALUES FROM (51) TO (201);
INSERT INTO pw_q4 SELECT * FROM pw_q2;
SELECT processed FROM migrate_step('pw_q', 500);
SELECT n, count(*) FROM pw_q GROUP BY n ORDER BY n;
SELECT migrate_unregister('pw_q');
DROP TABLE pw_q, pw_q2;

-- (issue 20) splitting by hand is bounded: each half keeps at least
-- min_batch_size rows (100 by default); the walk then takes no more
-- batches than that allows
CREATE TABLE pw_s (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO pw_s (id) SELECT g FROM generate_series(1, 3000) g;
ANALYZE pw_s;
SELECT name FROM migrate_register('pw_split', 'pw_s', set_clause => 'n = n + 1',
                                  batch_size => 10, workers => 2);
SELECT processed FROM migrate_step('pw_split');
DO $$
BEGIN
    FOR i IN 1 .. 200 LOOP
        PERFORM migrate_split_range('pw_split');
    END LOOP;
END
$$;
SELECT count(*) <= 30 AS bounded, count(*) > 8 AS split FROM migrate_ranges('pw_split');
SELECT count(*) AS too_small FROM (
    SELECT (SELECT count(*) FROM pw_s
             WHERE id > coalesce((r.cursor->>'id')::int, 0)
               AND id <= coalesce((r.upper->>'id')::int, 3000)) AS rows
      FROM migrate_ranges('pw_split') r WHERE r.state <> 'done') x
 WHERE rows < 100;
CALL migrate_run('pw_split');
SELECT state, processed FROM migrate_status('pw_split');
SELECT n, count(*) FROM pw_s GROUP BY n;
SELECT migrate_unregister('pw_split');
DROP TABLE pw_s;

-- (issue 20) an owner with column privileges only (the key, and what the
-- change reads and writes) may use several workers: the sample of the
-- keys reads no system column it may not read
CREATE ROLE pw_cols;
CREATE TABLE pw_c (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, secret text DEFAULT 'x');
INSERT INTO pw_c (id) SELECT g FROM generate_series(1, 1000) g;
ANALYZE pw_c;
GRANT SELECT (id, n), UPDATE (n) ON pw_c TO pw_cols;
SET ROLE pw_cols;
SELECT name FROM migrate_register('pw_cols', 'pw_c', set_clause => 'n = n + 1',
                                  batch_size => 50, workers => 3);
SELECT processed FROM migrate_step('pw_cols');
SELECT count(*) > 1 AS ranges FROM migrate_ranges('pw_cols');
CALL migrate_run('pw_cols');
SELECT state, processed FROM migrate_status('pw_cols');
SELECT migrate_unregister('pw_cols');
RESET ROLE;
SELECT n, count(*) FROM pw_c GROUP BY n;
DROP TABLE pw_c;
DROP ROLE pw_cols;

-- workers can be changed when starting; a task cannot have several
SELECT migrate_start('pw_task_nope', workers => 2);
SELECT name FROM migrate_register('pw_task', NULL, sql => 'SELECT 1');
SELECT migrate_start('pw_task', workers => 2);
SELECT migrate_start('pw_list', workers => 0);

-- someone else's migration's ranges cannot be split
CREATE ROLE pw_other;
SET ROLE pw_other;
SELECT migrate_split_range('pw_list');
-- nor seen: their bounds and cursors are keys of its table
SELECT count(*) FROM migrate.ranges;
SELECT count(*) FROM migrate_ranges('pw_list');
RESET ROLE;
SELECT count(*) > 0 AS some FROM migrate.ranges;
DROP ROLE pw_other;

SELECT migrate_unregister(name) FROM migrate.migrations WHERE name LIKE 'pw%' ORDER BY name;
SELECT count(*) FROM migrate.ranges;
DROP TABLE pw_t, pw_h, pw_l, pw_k;
DROP FUNCTION pw_stmt();
