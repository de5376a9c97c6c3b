/* migrate--0.3--0.4.sql: a wait that holds no snapshot, vacuum only when it can reclaim; a read-only monitoring path, the key guard */

\echo Use "ALTER EXTENSION migrate UPDATE TO '0.4'" to load this file. \quit

/*
 * Existing migrations keep their state, cursor and counters.  Every name is
 * qualified, as in the install script.
 */

/* ---- harm (issue 19) ---- */

/*
 * migrate_await: migrate_wait as a procedure that commits between its
 * checks, so that waiting holds no snapshot back from vacuum.
 */
CREATE PROCEDURE @extschema@.migrate_await(
    name pg_catalog.text,
    timeout pg_catalog.interval DEFAULT '1 hour',
    INOUT state pg_catalog.text DEFAULT NULL)
LANGUAGE C
AS 'MODULE_PATHNAME', 'migrate_await';
COMMENT ON PROCEDURE @extschema@.migrate_await IS
    'wait until a migration is done, failed, cancelled or paused, committing between checks so that vacuum goes on';

/* ---- end of harm (issue 19) ---- */


/* ---- security and integrity (issue 20) ---- */

/*
 * A leaf partition's range records the partition's bounds as they were when
 * it was planned (pg_get_expr of its relpartbound and of every partitioned
 * level between it and the table), so that a batch can tell a partition
 * detached and attached again with other bounds (ranges.c check_layout).
 */
ALTER TABLE migrate.ranges ADD COLUMN bound pg_catalog.text;
COMMENT ON COLUMN migrate.ranges.bound IS
    'the bounds of the leaf partition the range walks, as planned, and of every partitioned level between it and the table; NULL: the table itself, or planned before 0.4';
COMMENT ON COLUMN migrate.ranges.left_table IS
    'done because its partition left the table (before 0.4; since 0.4 a migration whose partitions change under it fails instead)';

/*
 * A read-only view of every migration for monitoring (issue 20), for
 * pg_monitor and whoever it is granted to, without membership in the roles
 * that own migrations: names, states, counters and timings, nothing of the
 * rows (no cursor, no error text, no definition).  SECURITY DEFINER, owned
 * by the extension's owner, with search_path pinned; what it calls is
 * qualified, with its argument's type, so that a function another role
 * creates in the extension's schema (migrate_status() with no argument)
 * can neither be picked nor make the call ambiguous.
 */
CREATE FUNCTION migrate.monitor()
RETURNS TABLE (
    name pg_catalog.text,
    relation pg_catalog.text,
    action pg_catalog.text,
    state pg_catalog.text,
    owner pg_catalog.regrole,
    processed bigint,
    changed bigint,
    error_rows bigint,
    total_estimate bigint,
    percent numeric,
    rows_per_second numeric,
    eta pg_catalog.interval,
    batch_size integer,
    batches bigint,
    worker_pid integer,
    started_at pg_catalog.timestamptz,
    last_batch_at pg_catalog.timestamptz,
    finished_at pg_catalog.timestamptz,
    throttled pg_catalog.text,
    wal_bytes bigint,
    wal_per_second numeric,
    max_wal_rate bigint,
    size bigint,
    pass integer,
    caught_rows bigint,
    failing_rows bigint,
    verify_state pg_catalog.text,
    workers integer,
    workers_running integer,
    ranges integer,
    ranges_done integer,
    has_error boolean)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT s.name, s.relation, s.action, s.state, s.owner, s.processed, s.changed,
       s.error_rows, s.total_estimate, s.percent, s.rows_per_second, s.eta,
       s.batch_size, s.batches, s.worker_pid, s.started_at, s.last_batch_at,
       s.finished_at, s.throttled, s.wal_bytes, s.wal_per_second, s.max_wal_rate,
       s.size, s.pass, s.caught_rows, s.failing_rows, s.verify_state, s.workers,
       s.workers_running, s.ranges, s.ranges_done, s.last_error IS NOT NULL
  FROM @extschema@.migrate_status(NULL::pg_catalog.text) s
$$;
REVOKE ALL ON FUNCTION migrate.monitor() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migrate.monitor() TO pg_monitor;
COMMENT ON FUNCTION migrate.monitor IS
    'every migration''s name, state, counters and timings, for pg_monitor: nothing of its rows (no cursor, no error text, no definition)';

/*
 * The pick of a range for the next batch (catalog_ranges.c) reads the range
 * left alone longest through this index instead of sorting every range.
 */
CREATE INDEX ranges_pick_idx ON migrate.ranges (migration, last_batch_at NULLS FIRST, id)
    WHERE NOT done;

/* ---- end of security and integrity (issue 20) ---- */


/* ---- high availability (issue 22) ---- */

/*
 * The timeline of the server on which a migration's runner last started
 * (replication.c): the launcher that resumes a migration left running
 * compares it with the server's, and says "resumed after a promotion"
 * where they differ (the row came over from the old primary).
 */
ALTER TABLE migrate.migrations ADD COLUMN timeline integer;
COMMENT ON COLUMN migrate.migrations.timeline IS
    'the timeline of the server on which its runner last started; NULL: not started since 0.4';

/* ---- end of high availability (issue 22) ---- */
