-- run: executing migrations with migrate_step, migrate_dry_run,
-- migrate_start/migrate_wait, CALL migrate_run, tasks and series
CREATE TABLE items (
    id bigint PRIMARY KEY,
    email text NOT NULL,
    external_id text,
    n int NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL
);
INSERT INTO items (id, email, created_at)
SELECT g, 'User' || g || '@Example.COM',
       CASE WHEN g % 10 = 0 THEN '1999-01-01'::timestamptz ELSE '2024-01-01' END
  FROM generate_series(1, 1000) g;

SELECT name FROM migrate_register('lower_emails', 'items',
    set_clause => 'email = lower(email), n = n + 1',
    where_clause => 'id % 2 = 0', batch_size => 100);

-- a dry run shows the next batch's changes and changes nothing
SELECT * FROM migrate_dry_run('lower_emails', 3);
SELECT count(*) AS changed_rows FROM items WHERE n <> 0;
SELECT state, cursor, processed, changed, batches FROM migrate.migrations WHERE name = 'lower_emails';

-- one step: one batch of 100 keys, half of them match the filter
SELECT state, cursor, processed, changed, batches FROM migrate_step('lower_emails');
SELECT min(id), max(id), count(*) FROM items WHERE n = 1;
-- a step inside a transaction that rolls back leaves no trace, cursor included
BEGIN;
SELECT cursor, processed FROM migrate_step('lower_emails', batch_size => 50);
ROLLBACK;
SELECT cursor, processed, changed FROM migrate.migrations WHERE name = 'lower_emails';
SELECT count(*) FROM items WHERE n = 1;
-- the dry run starts after the cursor now
SELECT key FROM migrate_dry_run('lower_emails', 2);

-- the rest in the background
SELECT state, worker_pid IS NOT NULL AS has_worker FROM migrate_start('lower_emails');
SELECT migrate_wait('lower_emails');
SELECT state, cursor, processed, changed, batches, percent, worker_pid, last_error,
       finished_at IS NOT NULL AS finished
  FROM migrate_status('lower_emails');
SELECT n, count(*), bool_and(email = lower(email)) AS lowered FROM items GROUP BY n ORDER BY n;
-- done is done: starting again is a no-op ...
SELECT state, processed FROM migrate_start('lower_emails');
SELECT state, processed FROM migrate_step('lower_emails');
-- ... unless restarted, which starts over from the first key
SELECT state, cursor, processed FROM migrate_start('lower_emails', restart => true);
SELECT migrate_wait('lower_emails');
SELECT n, count(*) FROM items GROUP BY n ORDER BY n;
SELECT event, role, detail FROM migrate.events WHERE migration = 'lower_emails' ORDER BY id;

-- a row function: a NULL result or an unchanged row is left alone
CREATE FUNCTION set_external_id(i items) RETURNS items
LANGUAGE plpgsql AS $$
BEGIN
    IF i.id % 3 = 0 THEN
        RETURN NULL;                 -- skip
    ELSIF i.id % 3 = 1 THEN
        RETURN i;                    -- unchanged
    END IF;
    i.external_id := 'ext-' || i.id;
    i.id := -i.id;                   -- key columns are never written
    RETURN i;
END
$$;
SELECT name FROM migrate_register('ext_ids', 'items', row_fn => 'set_external_id(items)', batch_size => 250);
SELECT * FROM migrate_dry_run('ext_ids', 2);
SELECT (migrate_start('ext_ids')).state;
SELECT migrate_wait('ext_ids');
SELECT processed, changed, batches FROM migrate_status('ext_ids');
SELECT count(*) FILTER (WHERE external_id = 'ext-' || id) AS set,
       count(*) FILTER (WHERE external_id IS NULL) AS untouched,
       min(id) AS min_id
  FROM items;

-- a delete migration, run in the foreground with CALL migrate_run
SELECT name FROM migrate_register('purge_old', 'items', action => 'delete',
    where_clause => $$created_at < '2000-01-01'$$, batch_size => 300);
SELECT key, before->>'created_at' AS created_at, after FROM migrate_dry_run('purge_old', 2);
CALL migrate_run('purge_old', max_batches => 2);
SELECT state, processed, changed, batches FROM migrate_status('purge_old');
SELECT count(*) FROM items;
CALL migrate_run('purge_old');
SELECT state, processed, changed FROM migrate_status('purge_old');
SELECT count(*), count(*) FILTER (WHERE created_at < '2000-01-01') AS old FROM items;
-- migrate_run needs CALL outside a transaction block
BEGIN;
CALL migrate_run('purge_old');
ROLLBACK;
SELECT migrate_run('purge_old');

-- a one-off task runs once; starting it again is a no-op until restarted
CREATE TABLE task_log (at int);
SELECT name, action FROM migrate_register('log_once', NULL,
    sql => 'INSERT INTO task_log VALUES (1); INSERT INTO task_log VALUES (2)');
SELECT * FROM migrate_dry_run('log_once');
SELECT count(*) FROM task_log;
SELECT (migrate_start('log_once')).state;
SELECT migrate_wait('log_once');
SELECT (migrate_start('log_once')).state;
SELECT state, processed, changed, batches FROM migrate_status('log_once');
SELECT count(*) FROM task_log;
SELECT state FROM migrate_start('log_once', restart => true);
SELECT migrate_wait('log_once');
SELECT count(*) FROM task_log;
SELECT event FROM migrate.events WHERE migration = 'log_once' ORDER BY id;

-- composite keys, partitioned tables and odd names work the same way
CREATE TABLE pairs (a int NOT NULL, b text NOT NULL, v int NOT NULL DEFAULT 0, UNIQUE (a, b));
INSERT INTO pairs SELECT g / 10, 'k' || (g % 10), 0 FROM generate_series(0, 199) g;
SELECT name FROM migrate_register('pairs_v', 'pairs', set_clause => 'v = v + 1', batch_size => 7);
SELECT cursor FROM migrate_step('pairs_v');
CALL migrate_run('pairs_v');
SELECT state, processed, batches, cursor FROM migrate_status('pairs_v');
SELECT v, count(*) FROM pairs GROUP BY v;

CREATE TABLE parted (id int PRIMARY KEY, v int NOT NULL DEFAULT 0) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (500);
CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (500) TO (1000);
INSERT INTO parted SELECT g FROM generate_series(0, 999) g;
SELECT name FROM migrate_register('parted_v', 'parted', set_clause => 'v = v + 1', batch_size => 333);
SELECT (migrate_start('parted_v')).state;
SELECT migrate_wait('parted_v');
SELECT tableoid::regclass, v, count(*) FROM parted GROUP BY 1, 2 ORDER BY 1;

CREATE TABLE "Odd ""Name""" ("Key" text PRIMARY KEY, "V" int NOT NULL DEFAULT 0);
INSERT INTO "Odd ""Name""" SELECT 'k' || g FROM generate_series(1, 50) g;
SELECT name FROM migrate_register($$odd's "one"$$, '"Odd ""Name"""', set_clause => '"V" = "V" + 1', batch_size => 20);
CALL migrate_run($$odd's "one"$$);
SELECT state, processed, cursor FROM migrate_status($$odd's "one"$$);
SELECT "V", count(*) FROM "Odd ""Name""" GROUP BY 1;

-- a series runs one after another, skipping those already done
CREATE TABLE s (id int PRIMARY KEY, a int, b int, c int);
INSERT INTO s SELECT g, 0, 0, 0 FROM generate_series(1, 500) g;
SELECT name FROM migrate_register('s_a', 's', set_clause => 'a = 1', batch_size => 100);
SELECT name FROM migrate_register('s_b', 's', set_clause => 'b = a + 1', batch_size => 100);
SELECT name FROM migrate_register('s_c', 's', set_clause => 'c = b + 1', batch_size => 100);
CALL migrate_run('s_a');
SELECT name, state FROM migrate_start_series(ARRAY['s_a', 's_b', 's_c']);
SELECT migrate_wait('s_c');
SELECT name, state, processed FROM migrate_status() WHERE name LIKE 's\__' ORDER BY name;
SELECT a, b, c, count(*) FROM s GROUP BY 1, 2, 3;
SELECT migrate_start_series(ARRAY['s_a', 's_b', 's_c']);

-- the status view
SELECT name, state, percent FROM migrate.status ORDER BY name;
