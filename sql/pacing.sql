-- pacing: adaptive batch sizes, index range scans at any size, WAL
-- accounting, and holding back with migrate.pause_all
CREATE TABLE big (id bigint PRIMARY KEY, email text NOT NULL, external_id text);
INSERT INTO big SELECT g, 'User' || g || '@Example.COM' FROM generate_series(1, 100000) g;
VACUUM ANALYZE big;

-- without a batch_size the size adapts, starting at 1000; with one it is fixed
SELECT name, batch_size, adaptive, target_batch_time, min_batch_size, max_batch_size, busy_share
  FROM migrate_register('auto', 'big', set_clause => $$external_id = 'ext-' || id, email = lower(email)$$);
SELECT name, batch_size, adaptive
  FROM migrate_register('fixed', 'big', set_clause => 'email = email', batch_size => 500);
SELECT name, batch_size, adaptive
  FROM migrate_register('off', 'big', set_clause => 'email = email', target_batch_time => '0');

-- a batch is an index range scan, whatever its size
SELECT count(*) FILTER (WHERE line ~ 'Seq Scan') AS seq_scans,
       count(*) FILTER (WHERE line ~ 'Index') > 0 AS uses_index
  FROM migrate_explain('auto', 1000) AS line;
SELECT count(*) FILTER (WHERE line ~ 'Seq Scan') AS seq_scans,
       count(*) FILTER (WHERE line ~ 'Index') > 0 AS uses_index
  FROM migrate_explain('auto', 10000) AS line;
SELECT state, processed, batch_size FROM migrate_step('fixed', batch_size => 40000);
SELECT size, count(*) FILTER (WHERE line ~ 'Seq Scan') AS seq_scans,
       count(*) FILTER (WHERE line ~ 'Index') > 0 AS uses_index
  FROM unnest(ARRAY[100, 1000, 5000, 20000]) AS size,
       LATERAL migrate_explain('fixed', size) AS line
 GROUP BY size ORDER BY size;

-- an adaptive run grows its batches toward target_batch_time
CALL migrate_run('auto');
SELECT state, processed, batches < 100 AS fewer_batches, batch_size > 1000 AS grew,
       wal_bytes > 0 AS wrote_wal, throttled
  FROM migrate_status('auto');
SELECT count(*) FROM big WHERE external_id = 'ext-' || id AND email = lower(email);

-- a batch_size given to migrate_start fixes the size from then on
SELECT batch_size, adaptive FROM migrate_start('off', batch_size => 2000);
SELECT migrate_wait('off');
SELECT batch_size, adaptive, batches FROM migrate_status('off');

-- migrate.pause_all holds every runner back
ALTER SYSTEM SET migrate.pause_all = on;
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
SHOW migrate.pause_all;
SET client_min_messages = warning;
CALL migrate_run('fixed', max_duration => '1.5s');
RESET client_min_messages;
SELECT state, processed FROM migrate_status('fixed');
ALTER SYSTEM RESET migrate.pause_all;
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
SHOW migrate.pause_all;
CALL migrate_run('fixed');
SELECT state, processed, batch_size, adaptive FROM migrate_status('fixed');

-- clean up
SELECT count(migrate_unregister(name)) FROM migrate.migrations WHERE name IN ('auto', 'fixed', 'off');
DROP TABLE big;
