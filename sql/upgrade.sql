-- upgrade: a migration half run under 0.1 survives ALTER EXTENSION migrate
-- UPDATE to 0.2 with its state, cursor, counters and audit log, and then
-- finishes from its cursor, changing every row exactly once; the same for
-- a migration half run under 0.2 and the update to 0.3
SET client_min_messages = warning;
CREATE EXTENSION migrate VERSION '0.1';
RESET client_min_messages;
SELECT extversion FROM pg_extension WHERE extname = 'migrate';
-- none of the 0.2 objects exist yet
SELECT to_regclass('migrate.errors') AS errors, to_regclass('migrate.undo') AS undo,
       to_regprocedure('migrate_revert(text,boolean)') AS revert;

CREATE TABLE up (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO up SELECT g FROM generate_series(1, 1000) g;
-- registered with the 0.1 signature (no on_error, no keep_before)
SELECT name, state, batch_size
  FROM migrate_register('up_n', 'up', set_clause => 'n = n + 1', batch_size => 300);
SELECT state, cursor, processed, changed, batches FROM migrate_step('up_n');
SELECT state, cursor, processed, changed, batches FROM migrate_step('up_n');
SELECT n, count(*) FROM up GROUP BY n ORDER BY n;
SELECT name, state, processed, changed, percent FROM migrate_status('up_n');
-- the 0.1 status has no 0.2 columns
SELECT error_rows FROM migrate_status('up_n');

ALTER EXTENSION migrate UPDATE TO '0.2';
SELECT extversion FROM pg_extension WHERE extname = 'migrate';

-- the migration is as it was, with the 0.1 behaviour as its new settings
SELECT name, state, cursor, processed, changed, batches, batch_size,
       on_error, keep_before, reverting, keep_undo, revert_cursor, reverted
  FROM migrate.migrations WHERE name = 'up_n';
SELECT state, processed, changed, error_rows, progress, on_error, keep_before,
       reverting, reverted
  FROM migrate_status('up_n');
SELECT event, role, detail FROM migrate.events WHERE migration = 'up_n' ORDER BY id;

-- the 0.2 objects are there and belong to the extension
SELECT to_regclass('migrate.errors') AS errors, to_regclass('migrate.undo') AS undo;
SELECT p.oid::regprocedure
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migrate')
   AND p.proname IN ('migrate_register', 'migrate_retry_errors', 'migrate_revert',
                     'migrate_forget', 'migrate_schedule', 'migrate_unschedule',
                     'migrate_status', 'notify_state')
 ORDER BY p.oid::regprocedure::text COLLATE "C";
-- as many members as a fresh install of 0.2 has (setup lists them)
SELECT count(*) AS members
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migrate')
   AND classid <> 'pg_type'::regclass;
SELECT count(*) AS errors_rows FROM migrate.errors;
SELECT count(*) AS undo_rows FROM migrate.undo;
-- the catalog accepts the new state and refuses settings that make no sense
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid = 'migrate.migrations'::regclass
   AND conname IN ('migrations_state_check', 'migrations_on_error_check',
                   'migrations_keep_before_check')
 ORDER BY 1;
-- the new tables are dumped with the extension's data, and state changes
-- are announced
SELECT c::regclass AS dumped FROM pg_extension, unnest(extconfig) c
 WHERE extname = 'migrate' ORDER BY c::regclass::text COLLATE "C";
SELECT tgname, tgfoid::regproc FROM pg_trigger
 WHERE tgrelid = 'migrate.migrations'::regclass AND NOT tgisinternal ORDER BY tgname;

-- the rest runs from the cursor under 0.2: every row changed exactly once
CALL migrate_run('up_n');
SELECT state, cursor, processed, changed, batches, error_rows, progress
  FROM migrate_status('up_n');
SELECT n, count(*) FROM up GROUP BY n ORDER BY n;
SELECT event FROM migrate.events WHERE migration = 'up_n' ORDER BY id;

-- a migration registered after the update gets the new options
SELECT name, on_error, keep_before
  FROM migrate_register('up_new', 'up', set_clause => 'n = n + 1', batch_size => 300,
                        on_error => 'skip', keep_before => true);
CALL migrate_run('up_new');
SELECT state, processed, changed, error_rows FROM migrate_status('up_new');
SELECT count(*) AS undo_rows FROM migrate.undo WHERE migration = 'up_new';
SELECT n, count(*) FROM up GROUP BY n ORDER BY n;

-- 0.2 -> 0.3 with a migration in flight: it goes on from its cursor; the
-- types of its key are recorded by its first batch after the update
SELECT name, state FROM migrate_register('up_03', 'up', set_clause => 'n = n + 1', batch_size => 300);
SELECT state, cursor, processed FROM migrate_step('up_03');
ALTER EXTENSION migrate UPDATE TO '0.3';
SELECT extversion FROM pg_extension WHERE extname = 'migrate';
SELECT state, cursor, processed, series_ids, series_starter, key_types
  FROM migrate.migrations WHERE name = 'up_03';
CALL migrate_run('up_03');
SELECT state, processed, changed, batches FROM migrate_status('up_03');
SELECT key_types FROM migrate.migrations WHERE name = 'up_03';
SELECT n, count(*) FROM up GROUP BY n ORDER BY n;
-- a migration registered under 0.3 records them at once
SELECT key_types FROM migrate_register('up_new3', 'up', set_clause => 'n = n + 1');

-- clean up: setup installs the extension afresh
SELECT migrate_forget('up_new');
DROP TABLE up;
DROP EXTENSION migrate;
