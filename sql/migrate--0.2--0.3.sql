/* migrate--0.2--0.3.sql: series pinned by id, key types checked before every batch */

\echo Use "ALTER EXTENSION migrate UPDATE TO '0.3'" to load this file. \quit

/*
 * Existing migrations keep their state, cursor and counters.  A series that
 * is going on keeps its members by name (series_ids stays NULL) and runs on
 * behalf of its members' owner; key_types of a migration registered before
 * 0.3 are recorded by its first batch after this update.  Every name is
 * qualified, as in the install script.
 */

ALTER TABLE migrate.migrations
    ADD COLUMN series_ids bigint[],
    ADD COLUMN series_starter pg_catalog.regrole,
    ADD COLUMN series_started_at pg_catalog.timestamptz,
    ADD COLUMN key_types pg_catalog.text[];

COMMENT ON COLUMN migrate.migrations.series_ids IS
    'ids of the migrations in series_rest, pinned when the series started';
COMMENT ON COLUMN migrate.migrations.series_starter IS
    'role on whose behalf the series runs; each hand-over checks it may still start the next member';
COMMENT ON COLUMN migrate.migrations.series_started_at IS
    'when the series started; a member registered again after it is not run';
COMMENT ON COLUMN migrate.migrations.key_types IS
    'type and collation of each key column when the migration was registered; a batch that finds others fails';
