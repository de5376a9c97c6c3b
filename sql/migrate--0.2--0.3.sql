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

/*
 * The process running a migration, asked of C rather than decoded from the
 * runner lock's tag in SQL; migrate_status uses it.
 */
CREATE FUNCTION migrate.runner_pid(id bigint)
RETURNS integer
LANGUAGE c STRICT STABLE
AS 'MODULE_PATHNAME', 'migrate_runner_pid_sql';
COMMENT ON FUNCTION migrate.runner_pid IS 'pid of the process running migration id (its runner lock), or NULL';

CREATE OR REPLACE FUNCTION @extschema@.migrate_status(name pg_catalog.text DEFAULT NULL)
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
    reverted bigint)
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
       m.on_error, m.keep_before, m.reverting, m.reverted
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
