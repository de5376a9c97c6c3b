/* migrate--0.1.sql: catalog, audit log and SQL functions of migrate 0.1 */

\echo Use "CREATE EXTENSION migrate" to load this file. \quit

/*
 * Every name below is schema-qualified and every operator spelled
 * OPERATOR(pg_catalog.x), so that nothing a user created before
 * CREATE EXTENSION can be picked up instead.  CREATE SCHEMA fails if a
 * schema "migrate" already exists, so we never adopt someone else's objects.
 */
CREATE SCHEMA migrate;
COMMENT ON SCHEMA migrate IS 'catalog of the migrate extension';

CREATE SEQUENCE migrate.migrations_id_seq;
CREATE SEQUENCE migrate.events_id_seq;

CREATE TABLE migrate.migrations (
    id bigint NOT NULL
        DEFAULT pg_catalog.nextval('migrate.migrations_id_seq'::pg_catalog.regclass)
        PRIMARY KEY,
    name pg_catalog.text NOT NULL UNIQUE,
    action pg_catalog.text NOT NULL,
    relation pg_catalog.text,
    key_columns pg_catalog.text[],
    set_clause pg_catalog.text,
    where_clause pg_catalog.text,
    row_fn pg_catalog.text,
    sql pg_catalog.text,
    batch_size integer NOT NULL,
    pause pg_catalog.interval NOT NULL,
    lock_timeout pg_catalog.interval NOT NULL,
    search_path pg_catalog.text NOT NULL,
    owner pg_catalog.regrole NOT NULL,
    state pg_catalog.text NOT NULL DEFAULT 'registered',
    cursor pg_catalog.jsonb,
    processed bigint NOT NULL DEFAULT 0,
    changed bigint NOT NULL DEFAULT 0,
    batches bigint NOT NULL DEFAULT 0,
    total_estimate bigint,
    run_processed bigint NOT NULL DEFAULT 0,
    registered_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started_at pg_catalog.timestamptz,
    started_by pg_catalog.name,
    last_batch_at pg_catalog.timestamptz,
    finished_at pg_catalog.timestamptz,
    last_error pg_catalog.text,
    worker_pid integer,
    series_rest pg_catalog.text[],
    adaptive boolean NOT NULL DEFAULT true,
    target_batch_time pg_catalog.interval NOT NULL DEFAULT '200ms',
    min_batch_size integer NOT NULL DEFAULT 100,
    max_batch_size integer NOT NULL DEFAULT 100000,
    busy_share real NOT NULL DEFAULT 0.1,
    wal_bytes bigint NOT NULL DEFAULT 0,
    throttled pg_catalog.text,
    CONSTRAINT migrations_action_check CHECK
        (action OPERATOR(pg_catalog.=) ANY (ARRAY['update', 'delete', 'task']::pg_catalog.text[])),
    CONSTRAINT migrations_state_check CHECK
        (state OPERATOR(pg_catalog.=) ANY (ARRAY['registered', 'running', 'paused',
                                                 'cancelled', 'done', 'failed']::pg_catalog.text[])),
    CONSTRAINT migrations_batch_size_check CHECK (batch_size OPERATOR(pg_catalog.>) 0),
    CONSTRAINT migrations_batch_bounds_check CHECK
        (min_batch_size OPERATOR(pg_catalog.>) 0
         AND max_batch_size OPERATOR(pg_catalog.>=) min_batch_size),
    CONSTRAINT migrations_task_check CHECK
        ((action OPERATOR(pg_catalog.=) 'task') OPERATOR(pg_catalog.=) (relation IS NULL))
);
COMMENT ON TABLE migrate.migrations IS 'one row per registered migration: definition, state, cursor and counters';

CREATE TABLE migrate.events (
    id bigint NOT NULL
        DEFAULT pg_catalog.nextval('migrate.events_id_seq'::pg_catalog.regclass)
        PRIMARY KEY,
    at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    migration pg_catalog.text NOT NULL,
    event pg_catalog.text NOT NULL,
    role pg_catalog.name NOT NULL,
    owner pg_catalog.regrole NOT NULL,
    detail pg_catalog.text
);
CREATE INDEX events_migration_idx ON migrate.events (migration, id);
COMMENT ON TABLE migrate.events IS 'append-only audit log of everything done to migrations';

SELECT pg_catalog.pg_extension_config_dump('migrate.migrations', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.migrations_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.events', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.events_id_seq', '');

/*
 * Only the extension's own functions write the catalog (they switch to the
 * catalog owner for that).  Everybody may read, but row-level security shows
 * each role only the migrations of roles it is a member of.
 */
REVOKE ALL ON ALL TABLES IN SCHEMA migrate FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA migrate FROM PUBLIC;
GRANT USAGE ON SCHEMA migrate TO PUBLIC;
GRANT SELECT ON migrate.migrations, migrate.events TO PUBLIC;
ALTER TABLE migrate.migrations ENABLE ROW LEVEL SECURITY;
ALTER TABLE migrate.events ENABLE ROW LEVEL SECURITY;
CREATE POLICY migrations_visible ON migrate.migrations FOR SELECT TO PUBLIC
    USING (pg_catalog.pg_has_role(owner::pg_catalog.oid, 'MEMBER'));
CREATE POLICY events_visible ON migrate.events FOR SELECT TO PUBLIC
    USING (pg_catalog.pg_has_role(owner::pg_catalog.oid, 'MEMBER'));

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
    busy_share real DEFAULT 0.1)
RETURNS migrate.migrations
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_register';
COMMENT ON FUNCTION @extschema@.migrate_register IS 'register a migration: a table plus a SET list, a row function or a delete filter, or a one-off SQL task';

CREATE FUNCTION @extschema@.migrate_start(
    name pg_catalog.text,
    batch_size integer DEFAULT NULL,
    restart boolean DEFAULT false)
RETURNS migrate.migrations
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_start';
COMMENT ON FUNCTION @extschema@.migrate_start IS 'start or resume a migration in a background worker';

CREATE FUNCTION @extschema@.migrate_step(
    name pg_catalog.text,
    batch_size integer DEFAULT NULL)
RETURNS migrate.migrations
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_step';
COMMENT ON FUNCTION @extschema@.migrate_step IS 'run one batch of a migration in the current transaction, without committing';

CREATE PROCEDURE @extschema@.migrate_run(
    name pg_catalog.text,
    max_batches integer DEFAULT NULL,
    max_duration pg_catalog.interval DEFAULT NULL)
LANGUAGE C
AS 'MODULE_PATHNAME', 'migrate_run';
COMMENT ON PROCEDURE @extschema@.migrate_run IS 'run a migration in this session, committing after each batch';

CREATE FUNCTION @extschema@.migrate_pause(name pg_catalog.text)
RETURNS migrate.migrations
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_pause';
COMMENT ON FUNCTION @extschema@.migrate_pause IS 'stop a running migration after its current batch; migrate_resume goes on';

CREATE FUNCTION @extschema@.migrate_resume(name pg_catalog.text)
RETURNS migrate.migrations
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_resume';
COMMENT ON FUNCTION @extschema@.migrate_resume IS 'go on with a paused migration from its cursor';

CREATE FUNCTION @extschema@.migrate_cancel(name pg_catalog.text)
RETURNS migrate.migrations
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_cancel';
COMMENT ON FUNCTION @extschema@.migrate_cancel IS 'stop a migration after its current batch; migrate_start resumes it';

CREATE FUNCTION @extschema@.migrate_wait(
    name pg_catalog.text,
    timeout pg_catalog.interval DEFAULT '1 hour')
RETURNS pg_catalog.text
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_wait';
COMMENT ON FUNCTION @extschema@.migrate_wait IS 'wait until a migration is done, failed, cancelled or paused';

CREATE FUNCTION @extschema@.migrate_dry_run(
    name pg_catalog.text,
    max_rows integer DEFAULT 10)
RETURNS TABLE (key pg_catalog.jsonb, before pg_catalog.jsonb, after pg_catalog.jsonb)
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_dry_run';
COMMENT ON FUNCTION @extschema@.migrate_dry_run IS 'run the next batch and roll it back, showing the rows it would change';

CREATE FUNCTION @extschema@.migrate_explain(
    name pg_catalog.text,
    batch_size integer DEFAULT NULL)
RETURNS SETOF pg_catalog.text
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_explain';
COMMENT ON FUNCTION @extschema@.migrate_explain IS 'show the plans of the next batch''s statements';

CREATE FUNCTION @extschema@.migrate_start_series(names pg_catalog.text[])
RETURNS migrate.migrations
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_start_series';
COMMENT ON FUNCTION @extschema@.migrate_start_series IS 'run migrations one after another in the background';

CREATE FUNCTION @extschema@.migrate_unregister(name pg_catalog.text)
RETURNS void
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_unregister';
COMMENT ON FUNCTION @extschema@.migrate_unregister IS 'forget a migration that is not running; its events stay';

/*
 * Status: one row per migration the caller may see.  The live worker pid
 * comes from the lock table: a runner holds an advisory lock on its
 * migration for as long as it lives, so a pid left behind by a crash is not
 * shown.
 */
CREATE FUNCTION @extschema@.migrate_status(name pg_catalog.text DEFAULT NULL)
RETURNS TABLE (
    name pg_catalog.text,
    relation pg_catalog.text,
    action pg_catalog.text,
    state pg_catalog.text,
    processed bigint,
    changed bigint,
    total_estimate bigint,
    percent numeric,
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
    throttled pg_catalog.text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT m.name, m.relation, m.action, m.state, m.processed, m.changed,
       t.total,
       CASE WHEN m.state OPERATOR(pg_catalog.=) 'done' THEN 100.0
            WHEN t.total IS NULL THEN NULL
            ELSE pg_catalog.round(100.0 OPERATOR(pg_catalog.*) m.processed
                                  OPERATOR(pg_catalog./) GREATEST(t.total, 1), 1)
       END,
       r.rate,
       CASE WHEN m.state OPERATOR(pg_catalog.=) 'running' AND r.rate OPERATOR(pg_catalog.>) 0
            THEN pg_catalog.make_interval(secs => pg_catalog.round(
                     (t.total OPERATOR(pg_catalog.-) m.processed) OPERATOR(pg_catalog./) r.rate)::double precision)
       END,
       m.batch_size, m.batches, m.cursor, m.last_error,
       w.pid,
       m.started_at, m.last_batch_at, m.finished_at, m.owner, m.started_by,
       m.adaptive, m.wal_bytes,
       CASE WHEN w.pid IS NOT NULL THEN m.throttled END
  FROM migrate.migrations m
  CROSS JOIN LATERAL (
       SELECT CASE WHEN m.total_estimate IS NULL THEN NULL
                   ELSE GREATEST(m.total_estimate, m.processed) END AS total) t
  CROSS JOIN LATERAL (
       SELECT CASE WHEN m.last_batch_at OPERATOR(pg_catalog.>) m.started_at
                   THEN pg_catalog.round((m.processed OPERATOR(pg_catalog.-) m.run_processed)::numeric
                          OPERATOR(pg_catalog./)
                          pg_catalog.date_part('epoch', m.last_batch_at OPERATOR(pg_catalog.-) m.started_at)::numeric, 1)
              END AS rate) r
  LEFT JOIN LATERAL (
       SELECT l.pid FROM pg_catalog.pg_locks l
        WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'
          AND l.granted
          AND l.database OPERATOR(pg_catalog.=)
              (SELECT d.oid FROM pg_catalog.pg_database d
                WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
          AND l.classid OPERATOR(pg_catalog.=) (m.id OPERATOR(pg_catalog.>>) 32)::pg_catalog.oid
          AND l.objid OPERATOR(pg_catalog.=) (m.id OPERATOR(pg_catalog.&) 4294967295)::pg_catalog.oid
          AND l.objsubid OPERATOR(pg_catalog.=) 28007
        LIMIT 1) w ON true
 WHERE $1 IS NULL OR m.name OPERATOR(pg_catalog.=) $1
 ORDER BY m.id
$$;
COMMENT ON FUNCTION @extschema@.migrate_status IS 'state, progress, rate and ETA of migrations';

CREATE VIEW migrate.status AS SELECT * FROM @extschema@.migrate_status();
GRANT SELECT ON migrate.status TO PUBLIC;
