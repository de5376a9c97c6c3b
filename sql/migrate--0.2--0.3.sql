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
    'WAL bytes per second the migration may write; NULL or 0: no budget';
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
    size bigint)
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
            OR c.oid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT pt.relid FROM pg_catalog.pg_partition_tree(pg_catalog.to_regclass(m.relation)) pt)))
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

/* migrate_register gains vacuum and max_wal_rate */
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
    max_wal_rate bigint DEFAULT NULL)
RETURNS migrate.migrations
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_register';
COMMENT ON FUNCTION @extschema@.migrate_register IS 'register a migration: a table plus a SET list, a row function or a delete filter, or a one-off SQL task';
