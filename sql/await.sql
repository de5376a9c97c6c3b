-- await: CALL migrate_await waits like migrate_wait and returns the state,
-- committing between its looks (so that it holds no snapshot: see TAP
-- 025_vacuum_horizon.pl); it takes migrate_wait's arguments and errors
CREATE TABLE aw (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO aw (id) SELECT generate_series(1, 3000);
SELECT name FROM migrate_register('aw', 'aw', set_clause => 'n = n + 1', batch_size => 500);
-- not started: an error at once
CALL migrate_await('aw');
SELECT state FROM migrate_start('aw');
CALL migrate_await('aw');
SELECT count(*) FILTER (WHERE n = 1) AS once, count(*) AS rows FROM aw;
-- finished: at once, whatever the timeout
CALL migrate_await('aw', '1 second');
CALL migrate_await('aw', timeout => '0');

-- a timeout while it runs
SELECT name FROM migrate_register('aw_slow', 'aw', set_clause => 'n = n', batch_size => 1, pause => '1 second');
SELECT state FROM migrate_start('aw_slow');
CALL migrate_await('aw_slow', '200 milliseconds');
SELECT state FROM migrate_pause('aw_slow');
CALL migrate_await('aw_slow');

-- bad arguments
CALL migrate_await(NULL);
CALL migrate_await('aw', NULL);
CALL migrate_await('aw', '-1 second');
CALL migrate_await('nope');
-- hints quote the name
SELECT name FROM migrate_register('aw''q', 'aw', set_clause => 'n = n');
CALL migrate_await('aw''q');

-- only with CALL outside a transaction block: it commits
BEGIN;
CALL migrate_await('aw');
ROLLBACK;

-- another role sees no migration of postgres's
CREATE ROLE aw_other;
SET ROLE aw_other;
CALL migrate_await('aw');
RESET ROLE;
DROP ROLE aw_other;

SELECT count(migrate_unregister(name)) FROM migrate.migrations WHERE name LIKE 'aw%';
DROP TABLE aw;
