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

-- the worker vacuums the table as it goes (vacuum => true, the default),
-- once the rows it replaced are 5% of the table; status shows the table's
-- size at the start and now
SELECT name, vacuum, max_wal_rate
  FROM migrate_register('vac', 'big', set_clause => 'external_id = external_id || $$!$$');
SELECT state FROM migrate_start('vac');
CALL migrate_await('vac');
SELECT state, processed, vacuum, vacuums > 0 AS vacuumed_as_it_went,
       size_at_start > 0 AS has_size_at_start, size > 0 AS has_size
  FROM migrate_status('vac');
SELECT name, vacuum FROM migrate_register('novac', 'big', set_clause => 'email = email', vacuum => false);
SELECT state FROM migrate_start('novac');
SELECT migrate_wait('novac');
SELECT state, vacuums FROM migrate_status('novac');

-- a WAL budget: the runner rests so that the migration writes no more WAL
-- per second than max_wal_rate, and says why
CREATE TABLE walt (id int PRIMARY KEY, pad text NOT NULL);
INSERT INTO walt SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g;
SELECT name, max_wal_rate
  FROM migrate_register('budget', 'walt', set_clause => $$pad = repeat('y', 200)$$,
                        batch_size => 1000, max_wal_rate => 2000000);
SELECT state FROM migrate_start('budget');
DO $$
DECLARE   -- until the runner has said why it rests: it must, before it is done
    deadline timestamptz := clock_timestamp() + interval '120 seconds';
    m record;
BEGIN
    LOOP
        SELECT state, throttled INTO m FROM migrate.migrations WHERE name = 'budget';
        EXIT WHEN m.throttled LIKE 'WAL budget%';
        IF m.state <> 'running' OR clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'migration "budget" never said it rests on its WAL budget (state %)', m.state;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT throttled FROM migrate.migrations WHERE name = 'budget';
SELECT migrate_wait('budget');
SELECT state, processed, wal_bytes > 2000000 AS wrote_enough_to_rest,
       wal_per_second <= max_wal_rate * 1.2 AS within_budget
  FROM migrate_status('budget');
SELECT migrate_register('bad', 'walt', set_clause => 'pad = pad', max_wal_rate => -1);
SELECT migrate_register('bad', 'walt', set_clause => 'pad = pad', vacuum => NULL);

-- clean up
SELECT count(migrate_unregister(name)) FROM migrate.migrations
 WHERE name IN ('auto', 'fixed', 'off', 'vac', 'novac', 'budget');
DROP TABLE big, walt;
