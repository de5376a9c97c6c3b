/* migrate--0.1--0.2.sql: row error quarantine, before-images and revert, pg_cron helpers, progress bar, NOTIFY */

\echo Use "ALTER EXTENSION migrate UPDATE TO '0.2'" to load this file. \quit

/*
 * Everything here keeps existing migrations as they are: new columns get
 * defaults that mean "behave as in 0.1", cursors, counters and the audit log
 * are not touched.  As in the install script, every name is qualified.
 */

ALTER TABLE migrate.migrations
    ADD COLUMN on_error pg_catalog.text NOT NULL DEFAULT 'stop',
    ADD COLUMN keep_before boolean NOT NULL DEFAULT false,
    ADD COLUMN reverting boolean NOT NULL DEFAULT false,
    ADD COLUMN keep_undo boolean NOT NULL DEFAULT false,
    ADD COLUMN revert_cursor bigint,
    ADD COLUMN reverted bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT migrations_on_error_check CHECK
        (on_error OPERATOR(pg_catalog.=) ANY (ARRAY['stop', 'skip']::pg_catalog.text[])),
    ADD CONSTRAINT migrations_keep_before_check CHECK
        (NOT (keep_before AND action OPERATOR(pg_catalog.=) 'task')),
    DROP CONSTRAINT migrations_state_check,
    ADD CONSTRAINT migrations_state_check CHECK
        (state OPERATOR(pg_catalog.=) ANY (ARRAY['registered', 'running', 'paused',
                                                 'cancelled', 'done', 'failed',
                                                 'reverted']::pg_catalog.text[]));

/*
 * Rows a migration could not change (on_error => 'skip') and rows a revert
 * left alone because someone changed them after the migration did.
 */
CREATE SEQUENCE migrate.errors_id_seq;
CREATE TABLE migrate.errors (
    id bigint NOT NULL
        DEFAULT pg_catalog.nextval('migrate.errors_id_seq'::pg_catalog.regclass)
        PRIMARY KEY,
    migration pg_catalog.text NOT NULL,
    key pg_catalog.jsonb NOT NULL,
    sqlstate pg_catalog.text NOT NULL,
    message pg_catalog.text NOT NULL,
    at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    phase pg_catalog.text NOT NULL DEFAULT 'change',
    CONSTRAINT errors_phase_check CHECK
        (phase OPERATOR(pg_catalog.=) ANY (ARRAY['change', 'revert']::pg_catalog.text[]))
);
CREATE INDEX errors_migration_idx ON migrate.errors (migration, phase, key);
COMMENT ON TABLE migrate.errors IS 'rows a migration skipped because changing them failed, and rows a revert left alone';

/*
 * Before-images (keep_before => true): the old values of the columns a
 * batch wrote (the whole row for a delete) and the values it wrote, so that
 * a revert can tell whether someone changed the row since.
 */
CREATE SEQUENCE migrate.undo_id_seq;
CREATE TABLE migrate.undo (
    migration pg_catalog.text NOT NULL,
    id bigint NOT NULL
        DEFAULT pg_catalog.nextval('migrate.undo_id_seq'::pg_catalog.regclass),
    key pg_catalog.jsonb NOT NULL,
    before pg_catalog.jsonb NOT NULL,
    after pg_catalog.jsonb,
    PRIMARY KEY (migration, id)
);
COMMENT ON TABLE migrate.undo IS 'before-images of the rows migrations with keep_before changed, for migrate_revert';

SELECT pg_catalog.pg_extension_config_dump('migrate.errors', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.errors_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.undo', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.undo_id_seq', '');

REVOKE ALL ON migrate.errors, migrate.undo FROM PUBLIC;
REVOKE ALL ON migrate.errors_id_seq, migrate.undo_id_seq FROM PUBLIC;
GRANT SELECT ON migrate.errors, migrate.undo TO PUBLIC;
ALTER TABLE migrate.errors ENABLE ROW LEVEL SECURITY;
ALTER TABLE migrate.undo ENABLE ROW LEVEL SECURITY;
-- a role sees the rows of the migrations it sees (the policy of migrations applies inside)
CREATE POLICY errors_visible ON migrate.errors FOR SELECT TO PUBLIC
    USING (EXISTS (SELECT FROM migrate.migrations m
                    WHERE m.name OPERATOR(pg_catalog.=) migration));
CREATE POLICY undo_visible ON migrate.undo FOR SELECT TO PUBLIC
    USING (EXISTS (SELECT FROM migrate.migrations m
                    WHERE m.name OPERATOR(pg_catalog.=) migration));

/*
 * NOTIFY migrate on every state change, whichever code path made it.  In
 * PL/pgSQL rather than C so that a process still running the 0.1 library
 * after the update can go on writing the catalog.
 */
CREATE FUNCTION migrate.notify_state()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('migrate',
        pg_catalog.jsonb_build_object('name', NEW.name, 'state', NEW.state)::pg_catalog.text);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION migrate.notify_state() IS 'trigger: NOTIFY migrate with the name and new state of a migration';
CREATE TRIGGER notify_registered AFTER INSERT ON migrate.migrations
    FOR EACH ROW EXECUTE FUNCTION migrate.notify_state();
CREATE TRIGGER notify_state AFTER UPDATE OF state ON migrate.migrations
    FOR EACH ROW WHEN (OLD.state OPERATOR(pg_catalog.<>) NEW.state)
    EXECUTE FUNCTION migrate.notify_state();

/* migrate_register gains on_error and keep_before */
DROP FUNCTION @extschema@.migrate_register(pg_catalog.text, pg_catalog.regclass,
    pg_catalog.text, pg_catalog.text, pg_catalog.regprocedure, pg_catalog.text,
    pg_catalog.text, integer, pg_catalog.interval, pg_catalog.interval, boolean,
    pg_catalog.interval, integer, integer, real);
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
    keep_before boolean DEFAULT false)
RETURNS migrate.migrations
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_register';
COMMENT ON FUNCTION @extschema@.migrate_register IS 'register a migration: a table plus a SET list, a row function or a delete filter, or a one-off SQL task';

CREATE FUNCTION @extschema@.migrate_retry_errors(name pg_catalog.text)
RETURNS TABLE (retried bigint, fixed bigint, failing bigint)
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_retry_errors';
COMMENT ON FUNCTION @extschema@.migrate_retry_errors IS 'change the rows a migration skipped again, forgetting those that now succeed';

CREATE FUNCTION @extschema@.migrate_revert(
    name pg_catalog.text,
    keep_undo boolean DEFAULT false)
RETURNS migrate.migrations
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_revert';
COMMENT ON FUNCTION @extschema@.migrate_revert IS 'restore the before-images of a keep_before migration in a background worker';

CREATE FUNCTION @extschema@.migrate_forget(name pg_catalog.text)
RETURNS bigint
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_forget';
COMMENT ON FUNCTION @extschema@.migrate_forget IS 'drop the before-images of a migration';

CREATE FUNCTION @extschema@.migrate_schedule(
    name pg_catalog.text,
    start_cron pg_catalog.text,
    stop_cron pg_catalog.text)
RETURNS TABLE (jobname pg_catalog.text, jobid bigint, schedule pg_catalog.text, command pg_catalog.text)
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_schedule';
COMMENT ON FUNCTION @extschema@.migrate_schedule IS 'create the pg_cron jobs that start a migration and pause it again';

CREATE FUNCTION @extschema@.migrate_unschedule(name pg_catalog.text)
RETURNS integer
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_unschedule';
COMMENT ON FUNCTION @extschema@.migrate_unschedule IS 'drop the pg_cron jobs migrate_schedule created';

/* migrate_status gains error_rows, a progress bar and the revert's progress */
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
COMMENT ON FUNCTION @extschema@.migrate_status IS 'state, progress (with a text progress bar), rate and ETA of migrations';

CREATE VIEW migrate.status AS SELECT * FROM @extschema@.migrate_status();
GRANT SELECT ON migrate.status TO PUBLIC;
