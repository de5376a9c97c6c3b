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
 * Parallel workers (issue 12).  A migration with workers > 1 walks its
 * table as ranges of keys (or leaf partitions), each with its own cursor
 * and counters, committed with each batch of that range; migrate_status
 * adds them up.  A migration registered before keeps workers = 1 and its
 * single cursor.  Ranges are deleted with their migration (by the C code,
 * not a foreign key, so that pg_dump restores the two tables in any order).
 */
ALTER TABLE migrate.migrations
    ADD COLUMN relid pg_catalog.regclass,
    ADD COLUMN workers integer NOT NULL DEFAULT 1,
    ADD COLUMN workers_note pg_catalog.text,
    ADD CONSTRAINT migrations_workers_check
        CHECK (workers OPERATOR(pg_catalog.>=) 1 AND workers OPERATOR(pg_catalog.<=) 64);

-- the table each migration was registered on, by identity: a batch that
-- finds another table under its name (renamed, then replaced) fails
UPDATE migrate.migrations SET relid = pg_catalog.to_regclass(relation)
 WHERE relation IS NOT NULL;
COMMENT ON COLUMN migrate.migrations.relid IS
    'the table registered (relation is its name then): a batch that finds another table under that name fails';
COMMENT ON COLUMN migrate.migrations.workers IS
    'background workers that walk the table at once, each on its own range of keys';
COMMENT ON COLUMN migrate.migrations.workers_note IS
    'why fewer workers than asked run the migration, or NULL';

CREATE TABLE migrate.ranges (
    id bigserial PRIMARY KEY,
    migration bigint NOT NULL,
    relation pg_catalog.text NOT NULL,
    relid pg_catalog.regclass,
    left_table boolean NOT NULL DEFAULT false,
    lower pg_catalog.jsonb,
    upper pg_catalog.jsonb,
    cursor pg_catalog.jsonb,
    done boolean NOT NULL DEFAULT false,
    rows_estimate bigint NOT NULL DEFAULT 0,
    processed bigint NOT NULL DEFAULT 0,
    changed bigint NOT NULL DEFAULT 0,
    batches bigint NOT NULL DEFAULT 0,
    wal_bytes bigint NOT NULL DEFAULT 0,
    worker_pid integer,
    split_from bigint,
    created_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    last_batch_at pg_catalog.timestamptz,
    finished_at pg_catalog.timestamptz
);
CREATE INDEX ranges_migration_idx ON migrate.ranges (migration, id);
COMMENT ON TABLE migrate.ranges IS
    'the key ranges of a migration with workers > 1: bounds, cursor and counters of each';
COMMENT ON COLUMN migrate.ranges.relation IS
    'the table the range walks: the migration''s, or one leaf partition of it';
COMMENT ON COLUMN migrate.ranges.relid IS
    'the leaf partition the range walks, checked to still be one of the table before each batch; NULL: the table itself';
COMMENT ON COLUMN migrate.ranges.left_table IS
    'done because its partition left the table (dropped or detached); taken up again from its cursor if it comes back';
COMMENT ON COLUMN migrate.ranges.lower IS 'the range starts after this key (NULL: at the first key)';
COMMENT ON COLUMN migrate.ranges.upper IS 'the range ends at this key (NULL: at the last key)';
COMMENT ON COLUMN migrate.ranges.cursor IS 'the last key done; moves with each batch of the range';
SELECT pg_catalog.pg_extension_config_dump('migrate.ranges', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.ranges_id_seq', '');
REVOKE ALL ON migrate.ranges, migrate.ranges_id_seq FROM PUBLIC;
GRANT SELECT ON migrate.ranges TO PUBLIC;
-- bounds and cursors are keys of the owner's table: a role sees the ranges
-- of the migrations it sees (the policy of migrations applies inside)
ALTER TABLE migrate.ranges ENABLE ROW LEVEL SECURITY;
CREATE POLICY ranges_visible ON migrate.ranges FOR SELECT TO PUBLIC
    USING (EXISTS (SELECT FROM migrate.migrations m
                    WHERE m.id OPERATOR(pg_catalog.=) migration));

/*
 * The process running a migration, asked of C rather than decoded from the
 * runner lock's tag in SQL; migrate_status uses it.
 */
CREATE FUNCTION migrate.runner_pid(id bigint)
RETURNS integer
LANGUAGE c STRICT STABLE
AS 'MODULE_PATHNAME', 'migrate_runner_pid_sql';
COMMENT ON FUNCTION migrate.runner_pid IS 'pid of the process running migration id (its runner lock), or NULL';

/* How many helper workers (besides the runner) work on migration id now */
CREATE FUNCTION migrate.helper_count(id bigint)
RETURNS integer
LANGUAGE c STRICT STABLE
AS 'MODULE_PATHNAME', 'migrate_helper_count_sql';
COMMENT ON FUNCTION migrate.helper_count IS 'number of helper workers of migration id (their locks), besides its runner';

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
    verify_state pg_catalog.text,
    workers integer,
    workers_running integer,
    workers_note pg_catalog.text,
    ranges integer,
    ranges_done integer)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT m.name, m.relation, m.action, m.state,
       m.processed OPERATOR(pg_catalog.+) g.processed,
       m.changed OPERATOR(pg_catalog.+) g.changed,
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
       m.batch_size, m.batches OPERATOR(pg_catalog.+) g.batches, m.cursor, m.last_error,
       w.pid,
       m.started_at, l.at, m.finished_at, m.owner, m.started_by,
       m.adaptive, m.wal_bytes OPERATOR(pg_catalog.+) g.wal_bytes,
       CASE WHEN w.pid IS NOT NULL THEN m.throttled END,
       m.on_error, m.keep_before, m.reverting, m.reverted,
       CASE WHEN l.at OPERATOR(pg_catalog.>) m.started_at
            THEN pg_catalog.round((m.wal_bytes OPERATOR(pg_catalog.+) g.wal_bytes
                                   OPERATOR(pg_catalog.-) m.run_wal_bytes)::numeric
                   OPERATOR(pg_catalog./)
                   pg_catalog.date_part('epoch', l.at OPERATOR(pg_catalog.-) m.started_at)::numeric)
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
            THEN 'interrupted' ELSE m.verify_state END,
       m.workers,
       -- the runner and the other workers of the migration (ranges.c)
       CASE WHEN w.pid IS NULL THEN 0 ELSE 1 END
            OPERATOR(pg_catalog.+) migrate.helper_count(m.id),
       CASE WHEN w.pid IS NOT NULL THEN m.workers_note END,
       g.ranges::integer, g.ranges_done::integer
  FROM migrate.migrations m
  -- the process running it, from the lock table (runner_lock.c)
  CROSS JOIN LATERAL (SELECT migrate.runner_pid(m.id) AS pid) w
  -- what its ranges did, with workers > 1
  CROSS JOIN LATERAL (
       SELECT COALESCE(pg_catalog.sum(x.processed), 0)::bigint AS processed,
              COALESCE(pg_catalog.sum(x.changed), 0)::bigint AS changed,
              COALESCE(pg_catalog.sum(x.batches), 0)::bigint AS batches,
              COALESCE(pg_catalog.sum(x.wal_bytes), 0)::bigint AS wal_bytes,
              pg_catalog.count(*) AS ranges,
              pg_catalog.count(*) FILTER (WHERE x.done) AS ranges_done,
              pg_catalog.max(x.last_batch_at) AS last_batch_at
         FROM migrate.ranges x
        WHERE x.migration OPERATOR(pg_catalog.=) m.id) g
  CROSS JOIN LATERAL (
       SELECT GREATEST(m.last_batch_at, g.last_batch_at) AS at) l
  -- the counter of the current direction: rows processed, or rows restored
  CROSS JOIN LATERAL (
       SELECT CASE WHEN m.reverting THEN m.reverted
                   ELSE m.processed OPERATOR(pg_catalog.+) g.processed END AS n) c
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
       SELECT CASE WHEN l.at OPERATOR(pg_catalog.>) m.started_at
                   THEN pg_catalog.round((c.n OPERATOR(pg_catalog.-) m.run_processed)::numeric
                          OPERATOR(pg_catalog./)
                          pg_catalog.date_part('epoch', l.at OPERATOR(pg_catalog.-) m.started_at)::numeric, 1)
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
    max_passes integer DEFAULT 3,
    workers integer DEFAULT 1)
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

/*
 * Parallel workers (issue 12): migrate_start takes workers, the ranges can
 * be listed and split.
 */
DROP FUNCTION @extschema@.migrate_start(pg_catalog.text, integer, boolean);
CREATE FUNCTION @extschema@.migrate_start(
    name pg_catalog.text,
    batch_size integer DEFAULT NULL,
    restart boolean DEFAULT false,
    workers integer DEFAULT NULL)
RETURNS migrate.migrations
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_start';
COMMENT ON FUNCTION @extschema@.migrate_start IS 'start or resume a migration in background workers (workers => n: n of them at once)';

CREATE FUNCTION @extschema@.migrate_ranges(name pg_catalog.text)
RETURNS TABLE (
    range bigint,
    relation pg_catalog.text,
    lower pg_catalog.jsonb,
    upper pg_catalog.jsonb,
    cursor pg_catalog.jsonb,
    state pg_catalog.text,
    rows_estimate bigint,
    processed bigint,
    changed bigint,
    batches bigint,
    worker_pid integer,
    split_from bigint)
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
SELECT r.id, r.relation, r.lower, r.upper, r.cursor,
       CASE WHEN r.done THEN 'done'
            WHEN r.batches OPERATOR(pg_catalog.>) 0 THEN 'started'
            ELSE 'waiting' END,
       r.rows_estimate, r.processed, r.changed, r.batches,
       CASE WHEN NOT r.done THEN r.worker_pid END,
       r.split_from
  FROM migrate.ranges r
  JOIN migrate.migrations m ON m.id OPERATOR(pg_catalog.=) r.migration
 WHERE m.name OPERATOR(pg_catalog.=) $1
 ORDER BY r.relation, r.id
$$;
COMMENT ON FUNCTION @extschema@.migrate_ranges IS 'the key ranges of a migration with workers > 1: bounds, cursor, state and counters of each';

CREATE FUNCTION @extschema@.migrate_split_range(name pg_catalog.text, range bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_split_range';
COMMENT ON FUNCTION @extschema@.migrate_split_range IS 'split a range (by default the one with the most rows left) half way through its rest; returns the new range, or NULL';
