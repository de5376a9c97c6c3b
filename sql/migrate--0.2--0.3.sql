/* migrate--0.2--0.3.sql: series pinned by id, key types checked before every batch, vacuum as it goes, a WAL budget */

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
    ADD COLUMN key_types pg_catalog.text[],
    ADD COLUMN vacuum boolean NOT NULL DEFAULT true,
    ADD COLUMN max_wal_rate bigint,
    ADD COLUMN run_wal_bytes bigint NOT NULL DEFAULT 0,
    ADD COLUMN size_at_start bigint,
    ADD COLUMN vacuums bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT migrations_max_wal_rate_check CHECK (max_wal_rate OPERATOR(pg_catalog.>=) 0);

COMMENT ON COLUMN migrate.migrations.vacuum IS
    'the worker vacuums the table between batches, so that new row versions fill the space of the old ones';
COMMENT ON COLUMN migrate.migrations.max_wal_rate IS
    'WAL bytes per second the migration may write; NULL: chosen from the harm measured to other sessions; 0: no budget';
COMMENT ON COLUMN migrate.migrations.size_at_start IS
    'size of the table (all its partitions) when the migration started from its first key';

COMMENT ON COLUMN migrate.migrations.series_ids IS
    'ids of the migrations in series_rest, pinned when the series started';
COMMENT ON COLUMN migrate.migrations.series_starter IS
    'role on whose behalf the series runs; each hand-over checks it may still start the next member';
COMMENT ON COLUMN migrate.migrations.series_started_at IS
    'when the series started; a member registered again after it is not run';
COMMENT ON COLUMN migrate.migrations.key_types IS
    'type and collation of each key column when the migration was registered; a batch that finds others fails';

/*
 * Verification and catch-up (issue 13).  These columns are added here, ahead
 * of migrate_status below, whose body names them; the functions that use
 * them are at the end of this file.
 */
ALTER TABLE migrate.migrations
    ADD COLUMN check_clause pg_catalog.text,
    ADD COLUMN catch_up boolean NOT NULL DEFAULT false,
    ADD COLUMN max_passes integer NOT NULL DEFAULT 3,
    ADD COLUMN pass integer NOT NULL DEFAULT 0,
    ADD COLUMN pass_visited bigint NOT NULL DEFAULT 0,
    ADD COLUMN pass_changed bigint NOT NULL DEFAULT 0,
    ADD COLUMN pass_sample pg_catalog.jsonb,
    ADD COLUMN caught_rows bigint NOT NULL DEFAULT 0,
    ADD COLUMN verified_at pg_catalog.timestamptz,
    ADD COLUMN verify_checked bigint,
    ADD COLUMN failing_rows bigint,
    ADD COLUMN verify_sample pg_catalog.jsonb,
    ADD COLUMN verify_state pg_catalog.text,
    ADD COLUMN verify_pid integer,
    ADD COLUMN verify_error pg_catalog.text,
    ADD CONSTRAINT migrations_max_passes_check
        CHECK (max_passes OPERATOR(pg_catalog.>=) 1 AND max_passes OPERATOR(pg_catalog.<=) 1000),
    ADD CONSTRAINT migrations_catch_up_check
        CHECK (NOT catch_up OR check_clause IS NOT NULL),
    ADD CONSTRAINT migrations_verify_state_check
        CHECK (verify_state OPERATOR(pg_catalog.=) ANY (ARRAY['running', 'done', 'failed']::pg_catalog.text[]));

COMMENT ON COLUMN migrate.migrations.check_clause IS
    'predicate that holds for a row in the new shape; NOT (where_clause) unless given';
COMMENT ON COLUMN migrate.migrations.catch_up IS
    'at the end of the walk, change again in further passes the rows that fail the check';
COMMENT ON COLUMN migrate.migrations.pass IS
    '0 for the walk, 1 to max_passes for catch-up passes, max_passes + 1 for the final count of rows still failing';
COMMENT ON COLUMN migrate.migrations.caught_rows IS
    'rows changed by catch-up passes';
COMMENT ON COLUMN migrate.migrations.failing_rows IS
    'rows that failed the check at the last verification (verified_at)';
COMMENT ON COLUMN migrate.migrations.verify_state IS
    'running while a background migrate_verify runs, then done or failed (verify_error)';

/*
 * The process running a migration, asked of C rather than decoded from the
 * runner lock's tag in SQL; migrate_status uses it.
 */
CREATE FUNCTION migrate.runner_pid(id bigint)
RETURNS integer
LANGUAGE c STRICT STABLE
AS 'MODULE_PATHNAME', 'migrate_runner_pid_sql';
COMMENT ON FUNCTION migrate.runner_pid IS 'pid of the process running migration id (its runner lock), or NULL';

DROP VIEW migrate.status;
DROP FUNCTION @extschema@.migrate_status(pg_catalog.text);
CREATE FUNCTION @extschema@.migrate_status(name pg_catalog.text DEFAULT NULL)
RETURNS TABLE (
    name pg_catalog.text,
    relation pg_catalog.text,
    action pg_catalog.text,
    state pg_catalog.text,
    processed bigint,
    changed bigint,
    error_rows bigint,
    total_estimate bigint,
    percent numeric,
    progress pg_catalog.text,
    rows_per_second numeric,
    eta pg_catalog.interval,
    batch_size integer,
    batches bigint,
    cursor pg_catalog.jsonb,
    last_error pg_catalog.text,
    worker_pid integer,
    started_at pg_catalog.timestamptz,
    last_batch_at pg_catalog.timestamptz,
    finished_at pg_catalog.timestamptz,
    owner pg_catalog.regrole,
    started_by pg_catalog.name,
    adaptive boolean,
    wal_bytes bigint,
    throttled pg_catalog.text,
    on_error pg_catalog.text,
    keep_before boolean,
    reverting boolean,
    reverted bigint,
    wal_per_second numeric,
    max_wal_rate bigint,
    vacuum boolean,
    vacuums bigint,
    size_at_start bigint,
    size bigint,
    pass integer,
    caught_rows bigint,
    verified_at pg_catalog.timestamptz,
    failing_rows bigint,
    verify_state pg_catalog.text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT m.name, m.relation, m.action, m.state, m.processed, m.changed,
       e.n,
       t.total, p.pct,
       CASE WHEN p.pct IS NOT NULL THEN
            '[' OPERATOR(pg_catalog.||)
            pg_catalog.repeat('#', pg_catalog.floor(p.pct OPERATOR(pg_catalog./) 5)::integer)
            OPERATOR(pg_catalog.||)
            pg_catalog.repeat('.', 20 OPERATOR(pg_catalog.-)
                                   pg_catalog.floor(p.pct OPERATOR(pg_catalog./) 5)::integer)
            OPERATOR(pg_catalog.||) '] '
            OPERATOR(pg_catalog.||) pg_catalog.lpad(pg_catalog.floor(p.pct)::pg_catalog.text, 3)
            OPERATOR(pg_catalog.||) '%'
       END,
       r.rate,
       CASE WHEN m.state OPERATOR(pg_catalog.=) 'running' AND r.rate OPERATOR(pg_catalog.>) 0
            THEN pg_catalog.make_interval(secs => pg_catalog.round(
                     GREATEST(t.total OPERATOR(pg_catalog.-) c.n, 0)
                     OPERATOR(pg_catalog./) r.rate)::double precision)
       END,
       m.batch_size, m.batches, m.cursor, m.last_error,
       w.pid,
       m.started_at, m.last_batch_at, m.finished_at, m.owner, m.started_by,
       m.adaptive, m.wal_bytes,
       CASE WHEN w.pid IS NOT NULL THEN m.throttled END,
       m.on_error, m.keep_before, m.reverting, m.reverted,
       CASE WHEN m.last_batch_at OPERATOR(pg_catalog.>) m.started_at
            THEN pg_catalog.round((m.wal_bytes OPERATOR(pg_catalog.-) m.run_wal_bytes)::numeric
                   OPERATOR(pg_catalog./)
                   pg_catalog.date_part('epoch', m.last_batch_at OPERATOR(pg_catalog.-) m.started_at)::numeric)
       END,
       m.max_wal_rate, m.vacuum, m.vacuums, m.size_at_start,
       (SELECT pg_catalog.sum(pg_catalog.pg_table_size(c.oid))::bigint
          FROM pg_catalog.pg_class c
         WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(m.relation)
            OR c.oid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT pt.relid FROM pg_catalog.pg_partition_tree(pg_catalog.to_regclass(m.relation)) pt))),
       m.pass, m.caught_rows, m.verified_at, m.failing_rows,
       -- a background verify whose worker is gone was interrupted
       CASE WHEN m.verify_state OPERATOR(pg_catalog.=) 'running'
                 AND NOT EXISTS (SELECT FROM pg_catalog.pg_stat_activity a
                                  WHERE a.pid OPERATOR(pg_catalog.=) m.verify_pid
                                    AND a.backend_type OPERATOR(pg_catalog.=) 'migrate verify')
            THEN 'interrupted' ELSE m.verify_state END
  FROM migrate.migrations m
  -- the process running it, from the lock table (runner_lock.c)
  CROSS JOIN LATERAL (SELECT migrate.runner_pid(m.id) AS pid) w
  -- the counter of the current direction: rows processed, or rows restored
  CROSS JOIN LATERAL (
       SELECT CASE WHEN m.reverting THEN m.reverted ELSE m.processed END AS n) c
  CROSS JOIN LATERAL (
       SELECT CASE WHEN m.total_estimate IS NULL THEN NULL
                   ELSE GREATEST(m.total_estimate, c.n) END AS total) t
  CROSS JOIN LATERAL (
       SELECT CASE WHEN m.state OPERATOR(pg_catalog.=) ANY ('{done,reverted}') THEN 100.0
                   WHEN t.total IS NULL THEN NULL
                   ELSE LEAST(pg_catalog.round(100.0 OPERATOR(pg_catalog.*) c.n
                                   OPERATOR(pg_catalog./) GREATEST(t.total, 1), 1), 100.0)
              END AS pct) p
  CROSS JOIN LATERAL (
       SELECT CASE WHEN m.last_batch_at OPERATOR(pg_catalog.>) m.started_at
                   THEN pg_catalog.round((c.n OPERATOR(pg_catalog.-) m.run_processed)::numeric
                          OPERATOR(pg_catalog./)
                          pg_catalog.date_part('epoch', m.last_batch_at OPERATOR(pg_catalog.-) m.started_at)::numeric, 1)
              END AS rate) r
  CROSS JOIN LATERAL (
       SELECT pg_catalog.count(*) AS n FROM migrate.errors x
        WHERE x.migration OPERATOR(pg_catalog.=) m.name) e
 WHERE $1 IS NULL OR m.name OPERATOR(pg_catalog.=) $1
 ORDER BY m.id
$$;
COMMENT ON FUNCTION @extschema@.migrate_status IS 'state, progress (with a text progress bar), rate, ETA, WAL rate and table size of migrations';

CREATE VIEW migrate.status AS SELECT * FROM @extschema@.migrate_status();
GRANT SELECT ON migrate.status TO PUBLIC;

/* migrate_register gains vacuum, max_wal_rate, check_clause, catch_up and max_passes */
DROP FUNCTION @extschema@.migrate_register(pg_catalog.text, pg_catalog.regclass,
    pg_catalog.text, pg_catalog.text, pg_catalog.regprocedure, pg_catalog.text,
    pg_catalog.text, integer, pg_catalog.interval, pg_catalog.interval, boolean,
    pg_catalog.interval, integer, integer, real, pg_catalog.text, boolean);
CREATE FUNCTION @extschema@.migrate_register(
    name pg_catalog.text,
    relation pg_catalog.regclass,
    set_clause pg_catalog.text DEFAULT NULL,
    where_clause pg_catalog.text DEFAULT NULL,
    row_fn pg_catalog.regprocedure DEFAULT NULL,
    action pg_catalog.text DEFAULT 'update',
    sql pg_catalog.text DEFAULT NULL,
    batch_size integer DEFAULT NULL,
    pause pg_catalog.interval DEFAULT '0',
    lock_timeout pg_catalog.interval DEFAULT '1s',
    replace boolean DEFAULT false,
    target_batch_time pg_catalog.interval DEFAULT '200ms',
    min_batch_size integer DEFAULT 100,
    max_batch_size integer DEFAULT 100000,
    busy_share real DEFAULT 0.1,
    on_error pg_catalog.text DEFAULT 'stop',
    keep_before boolean DEFAULT false,
    vacuum boolean DEFAULT true,
    max_wal_rate bigint DEFAULT NULL,
    check_clause pg_catalog.text DEFAULT NULL,
    catch_up boolean DEFAULT false,
    max_passes integer DEFAULT 3)
RETURNS migrate.migrations
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_register';
COMMENT ON FUNCTION @extschema@.migrate_register IS 'register a migration: a table plus a SET list, a row function or a delete filter, or a one-off SQL task';

/*
 * Proving a migration done (issue 13): migrate_verify counts the rows that
 * fail the check, migrate_estimate tells what a migration will cost before
 * it starts.
 */
CREATE FUNCTION @extschema@.migrate_verify(name pg_catalog.text, background boolean DEFAULT false)
RETURNS TABLE (checked bigint, failing bigint, sample pg_catalog.jsonb)
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_verify';
COMMENT ON FUNCTION @extschema@.migrate_verify IS 'walk the table in key batches, read only, and count the rows that fail the check; background => true in a worker';

CREATE FUNCTION @extschema@.migrate_estimate(name pg_catalog.text,
    OUT rows_total_estimate bigint,
    OUT rows_to_change bigint,
    OUT ms_per_row double precision,
    OUT wal_bytes_per_row double precision,
    OUT expected_duration pg_catalog.interval,
    OUT expected_wal bigint,
    OUT expected_size bigint)
RETURNS record
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_estimate';
COMMENT ON FUNCTION @extschema@.migrate_estimate IS 'rows to change (sampled), time and WAL per row (one rolled-back batch), expected duration, WAL and table size';
