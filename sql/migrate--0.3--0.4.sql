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

/* ---- Citus (issue 23) ---- */

/*
 * On a Citus worker node, each migration of one shard table (a "shard
 * migration", registered there by the coordinator's lead) with its shard's
 * id: before each batch it takes the shard's metadata lock in share mode,
 * which a shard move or split takes in exclusive mode on every node while
 * it switches placements, and checks that this node still holds the shard
 * (citus.c migrate_citus_guard).  A row outlives its migration (ids are
 * not reused), so that no restart or redefinition can drop the guard.
 */
CREATE TABLE migrate.citus_shard_migrations (
    migration bigint PRIMARY KEY,
    shardid bigint NOT NULL
);
COMMENT ON TABLE migrate.citus_shard_migrations IS
    'on a Citus node: the shard each shard migration walks; each batch holds its metadata lock and checks that the shard is still on this node';
SELECT pg_catalog.pg_extension_config_dump('migrate.citus_shard_migrations', '');
REVOKE ALL ON migrate.citus_shard_migrations FROM PUBLIC;
GRANT SELECT ON migrate.citus_shard_migrations TO PUBLIC;

/*
 * On a Citus coordinator, the shards of a migration of a distributed table:
 * where each one's shard migration is and what it reported last.  The
 * migration's lead (a background worker on the coordinator) plans it at
 * its first step, starts the shard migrations, reads them back, follows
 * moves and splits, and adds the counters up into the migration's row.
 * carried_* are the counters of the placements a shard had before a move.
 */
CREATE TABLE migrate.citus_shards (
    migration bigint NOT NULL,
    shardid bigint NOT NULL,
    relation pg_catalog.text NOT NULL,
    hash_min integer,
    hash_max integer,
    child pg_catalog.text NOT NULL,
    nodename pg_catalog.text,
    nodeport integer,
    state pg_catalog.text NOT NULL DEFAULT 'pending',
    cursor pg_catalog.jsonb,
    pass integer NOT NULL DEFAULT 0,
    processed bigint NOT NULL DEFAULT 0,
    changed bigint NOT NULL DEFAULT 0,
    batches bigint NOT NULL DEFAULT 0,
    wal_bytes bigint NOT NULL DEFAULT 0,
    rows_estimate bigint,
    carried_processed bigint NOT NULL DEFAULT 0,
    carried_changed bigint NOT NULL DEFAULT 0,
    carried_batches bigint NOT NULL DEFAULT 0,
    carried_wal_bytes bigint NOT NULL DEFAULT 0,
    moves integer NOT NULL DEFAULT 0,
    split_from bigint,
    last_error pg_catalog.text,
    last_batch_at pg_catalog.timestamptz,
    seen_at pg_catalog.timestamptz,
    PRIMARY KEY (migration, shardid),
    CONSTRAINT citus_shards_state_check CHECK
        (state OPERATOR(pg_catalog.=) ANY (ARRAY['pending', 'registered', 'running', 'paused',
                                                 'cancelled', 'done', 'failed', 'split']::pg_catalog.text[]))
);
COMMENT ON TABLE migrate.citus_shards IS
    'on a Citus coordinator: the shards of each migration of a distributed table, where each one''s shard migration runs and its last counters';
SELECT pg_catalog.pg_extension_config_dump('migrate.citus_shards', '');
REVOKE ALL ON migrate.citus_shards FROM PUBLIC;
GRANT SELECT ON migrate.citus_shards TO PUBLIC;
ALTER TABLE migrate.citus_shards ENABLE ROW LEVEL SECURITY;
CREATE POLICY citus_shards_visible ON migrate.citus_shards FOR SELECT TO PUBLIC
    USING (EXISTS (SELECT 1 FROM migrate.migrations m
                    WHERE m.id OPERATOR(pg_catalog.=) citus_shards.migration));

/*
 * migrate.citus_adopt: on a node, make the migration "name" (just registered
 * on a shard table by the coordinator's lead, in the same transaction) the
 * shard migration of shard "shardid", going on from "cursor" and "pass" (a
 * shard moved or split during the run).  C: checks that the caller may
 * manage it, that it has run no batch, that its table is that shard's and
 * that this node holds the shard.
 */
CREATE FUNCTION migrate.citus_adopt(name pg_catalog.text, shardid bigint,
                                    cursor pg_catalog.jsonb, pass integer)
RETURNS void
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migrate_citus_adopt';
COMMENT ON FUNCTION migrate.citus_adopt IS
    'on a Citus node: tie a migration just registered on a shard table to its shard, going on from a cursor (used by the coordinator''s lead)';

/*
 * migrate.citus_node_exec: on a node, run "commands" one after another as
 * "role" under search_path "path" (both local to the transaction, which
 * ends with the statement; a migration registered here records that
 * search_path, the coordinator migration's) and return the
 * first column of the last one's first row as text.  Called by the
 * coordinator's lead as the catalog owner through Citus
 * (migrate.citus_node_run), so that the whole list is one statement there,
 * one transaction, and its error is the statement's; EXECUTE revoked.
 *
 * The session on the node is the lead's, connected as the catalog owner
 * (often a superuser), and "role" is only SET LOCAL: whatever user-created
 * code a command resolves to outside migrate's own role switch could RESET
 * ROLE back to that superuser.  So every command the lead sends calls a
 * schema-qualified function with every argument cast to its parameter's
 * exact type: a user who may create functions in the extension's schema
 * (public, often writable) cannot shadow migrate_register with an overload
 * that unknown-typed literals would prefer (all text parameters), which ran
 * as a superuser before 0.4 was released (test/t/055_citus_hostile.pl).
 */
CREATE FUNCTION migrate.citus_node_exec(role pg_catalog.text, path pg_catalog.text,
                                        commands pg_catalog.text[])
RETURNS pg_catalog.text
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    c pg_catalog.text;
    result pg_catalog.text;
BEGIN
    -- set_config(..., NULL) would RESET ROLE: the commands would run as
    -- this session's user, the lead's catalog owner
    IF role IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = 'no role to run the commands of a migration as',
            DETAIL = 'The owner of the migration no longer exists.';
    END IF;
    PERFORM pg_catalog.set_config('role', role, true);
    PERFORM pg_catalog.set_config('search_path', path, true);
    FOREACH c IN ARRAY commands LOOP
        EXECUTE c INTO result;
    END LOOP;
    RETURN result;
END
$fn$;
REVOKE ALL ON FUNCTION migrate.citus_node_exec(pg_catalog.text, pg_catalog.text, pg_catalog.text[]) FROM PUBLIC;

/*
 * migrate.citus_node_run: run "commands" on a node (Citus's
 * master_run_on_worker) as "role", in one transaction there, through
 * migrate.citus_node_exec; returns (success, result).  Only for the lead
 * (EXECUTE revoked).
 */
CREATE FUNCTION migrate.citus_node_run(nodename pg_catalog.text, nodeport integer,
                                       role pg_catalog.text, path pg_catalog.text,
                                       VARIADIC commands pg_catalog.text[],
                                       OUT success boolean, OUT result pg_catalog.text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    SELECT r.success, r.result INTO success, result
      FROM pg_catalog.master_run_on_worker(ARRAY[nodename], ARRAY[nodeport],
               ARRAY[pg_catalog.format('SELECT migrate.citus_node_exec(%L::pg_catalog.text,'
                                       ' %L::pg_catalog.text, %L::pg_catalog.text[])',
                                       role, path, commands)], false) r;
END
$fn$;
REVOKE ALL ON FUNCTION migrate.citus_node_run(pg_catalog.text, integer, pg_catalog.text, pg_catalog.text, pg_catalog.text[]) FROM PUBLIC;

/*
 * migrate.citus_lead: one step of the lead of migration "mid" of a
 * distributed table, on the coordinator, as the catalog owner (called by
 * citus.c only; EXECUTE revoked).  Plans the shards at the first step,
 * reads every node's shard migrations, follows moves and splits, starts
 * shard migrations up to "workers" per node, and writes the sums into the
 * migration's row.  Returns 'running', 'done', or the error of a shard
 * migration that failed ('failed: ...').
 */
CREATE FUNCTION migrate.citus_lead(mid bigint)
RETURNS pg_catalog.text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    m migrate.migrations;
    ext pg_catalog.text;
    owner_name pg_catalog.text;
    s record;
    nd record;
    res record;
    cmd pg_catalog.text;
    cmds pg_catalog.text[];
    lanes pg_catalog.text[];
    js pg_catalog.json;
    running integer;
    free integer;
    left_over integer;
    failure pg_catalog.text;
BEGIN
    SELECT * INTO m FROM migrate.migrations WHERE id OPERATOR(pg_catalog.=) mid;
    IF NOT FOUND THEN
        RETURN 'gone';
    END IF;
    SELECT n.nspname INTO ext FROM pg_catalog.pg_extension e
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
     WHERE e.extname OPERATOR(pg_catalog.=) 'migrate';
    SELECT r.rolname INTO owner_name FROM pg_catalog.pg_roles r
     WHERE r.oid OPERATOR(pg_catalog.=) m.owner::pg_catalog.oid;
    IF owner_name IS NULL THEN
        -- dropped while its migration ran: nothing may run on the nodes
        -- in its name (citus_node_exec would run it as the catalog owner)
        RETURN pg_catalog.format('failed: the owner of migration %s (role with OID %s) no longer exists',
                                 m.name, m.owner);
    END IF;

    -- the plan: one row per shard, once per run from the first key
    IF NOT EXISTS (SELECT 1 FROM migrate.citus_shards c WHERE c.migration OPERATOR(pg_catalog.=) mid) THEN
        INSERT INTO migrate.citus_shards (migration, shardid, relation, hash_min, hash_max, child)
        SELECT mid, d.shardid, pg_catalog.shard_name(d.logicalrelid, d.shardid, false),
               d.shardminvalue::integer, d.shardmaxvalue::integer,
               m.name OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) d.shardid::pg_catalog.text
          FROM pg_catalog.pg_dist_shard d
         WHERE d.logicalrelid OPERATOR(pg_catalog.=) m.relid;
    END IF;

    -- 1. read back every node's shard migrations, one statement per node;
    -- "queued": registered, and waiting in a series that runs there
    FOR nd IN SELECT c.nodename, c.nodeport, pg_catalog.array_agg(c.child) AS children
                FROM migrate.citus_shards c
               WHERE c.migration OPERATOR(pg_catalog.=) mid AND c.nodename IS NOT NULL
                 AND c.state OPERATOR(pg_catalog.<>) ALL (ARRAY['pending', 'done', 'split'])
               GROUP BY c.nodename, c.nodeport
    LOOP
        cmd := pg_catalog.format(
            'SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_object('
            '''child'', x.name, ''state'', CASE WHEN x.state OPERATOR(pg_catalog.=) ''registered'''
            ' AND EXISTS (SELECT 1 FROM migrate.migrations o WHERE o.state OPERATOR(pg_catalog.=) ''running'''
            ' AND x.name OPERATOR(pg_catalog.=) ANY (o.series_rest)) THEN ''queued'' ELSE x.state END,'
            '''cursor'', x.cursor, ''pass'', x.pass,'
            '''processed'', x.processed, ''changed'', x.changed, ''batches'', x.batches,'
            '''wal_bytes'', x.wal_bytes, ''rows_estimate'', x.total_estimate,'
            '''last_error'', x.last_error, ''last_batch_at'', x.last_batch_at)), ''[]'')::pg_catalog.text'
            ' FROM migrate.migrations x WHERE x.name OPERATOR(pg_catalog.=) ANY (%L::pg_catalog.text[])',
            nd.children);
        res := migrate.citus_node_run(nd.nodename, nd.nodeport, owner_name, 'pg_catalog, pg_temp', cmd);
        IF NOT res.success THEN
            CONTINUE;           -- node down: its shards wait, the rest go on
        END IF;
        js := res.result::pg_catalog.json;
        UPDATE migrate.citus_shards c
           SET state = CASE j.state WHEN 'reverted' THEN 'done' WHEN 'queued' THEN 'running' ELSE j.state END,
               cursor = j.cursor, pass = j.pass,
               processed = j.processed, changed = j.changed, batches = j.batches,
               wal_bytes = j.wal_bytes, rows_estimate = j.rows_estimate,
               last_error = j.last_error, last_batch_at = j.last_batch_at,
               seen_at = pg_catalog.clock_timestamp()
          FROM pg_catalog.json_to_recordset(js) AS j(child pg_catalog.text, state pg_catalog.text,
               cursor pg_catalog.jsonb, pass integer, processed bigint, changed bigint,
               batches bigint, wal_bytes bigint, rows_estimate bigint, last_error pg_catalog.text,
               last_batch_at pg_catalog.timestamptz)
         WHERE c.migration OPERATOR(pg_catalog.=) mid AND c.child OPERATOR(pg_catalog.=) j.child
           AND c.nodename OPERATOR(pg_catalog.=) nd.nodename
           AND c.nodeport OPERATOR(pg_catalog.=) nd.nodeport
           AND c.state OPERATOR(pg_catalog.<>) ALL (ARRAY['pending', 'done', 'split']);
    END LOOP;

    -- 2. each shard not done: where is it now?  A shard migration that
    -- stopped (not running) on a node that no longer holds its shard hands
    -- its cursor on: final, as its batches hold the shard's metadata lock.
    -- Only as read from its node in this step (seen_at): the cursor kept
    -- here may be older than the node's (a pause marks the shards paused
    -- without reading them; a step that failed rolled its reads back), and
    -- going on from an older cursor would change rows twice.  A node that
    -- does not answer keeps its moved shards waiting.
    FOR s IN SELECT c.*, cur.nodename AS cur_name, cur.nodeport AS cur_port
               FROM migrate.citus_shards c
               LEFT JOIN LATERAL (
                    SELECT n.nodename, n.nodeport
                      FROM pg_catalog.pg_dist_placement p
                      JOIN pg_catalog.pg_dist_node n ON n.groupid OPERATOR(pg_catalog.=) p.groupid
                     WHERE p.shardid OPERATOR(pg_catalog.=) c.shardid
                       AND n.noderole OPERATOR(pg_catalog.=) 'primary'
                     LIMIT 1) cur ON true
              WHERE c.migration OPERATOR(pg_catalog.=) mid
                AND c.state OPERATOR(pg_catalog.<>) ALL (ARRAY['done', 'split', 'running'])
                AND (c.nodename IS NULL OR c.seen_at OPERATOR(pg_catalog.>=) pg_catalog.now())
                AND (c.nodename IS NULL OR cur.nodename IS NULL
                     OR (c.nodename, c.nodeport) IS DISTINCT FROM (cur.nodename, cur.nodeport))
              ORDER BY c.shardid
    LOOP
        IF s.cur_name IS NULL THEN
            -- split (or gone): its cursor goes to every shard now inside its
            -- hash range, where the split copied its rows at one instant
            INSERT INTO migrate.citus_shards (migration, shardid, relation, hash_min, hash_max,
                                              child, cursor, pass, split_from)
            SELECT mid, d.shardid, pg_catalog.shard_name(d.logicalrelid, d.shardid, false),
                   d.shardminvalue::integer, d.shardmaxvalue::integer,
                   m.name OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) d.shardid::pg_catalog.text,
                   s.cursor, s.pass, s.shardid
              FROM pg_catalog.pg_dist_shard d
             WHERE d.logicalrelid OPERATOR(pg_catalog.=) m.relid
               AND d.shardminvalue::integer OPERATOR(pg_catalog.>=) s.hash_min
               AND d.shardmaxvalue::integer OPERATOR(pg_catalog.<=) s.hash_max
            ON CONFLICT DO NOTHING;
            UPDATE migrate.citus_shards c SET state = 'split'
             WHERE c.migration OPERATOR(pg_catalog.=) mid AND c.shardid OPERATOR(pg_catalog.=) s.shardid;
        ELSIF s.nodename IS NOT NULL THEN
            -- moved: go on from its cursor where the shard is now.  The
            -- stopped shard migration stays on its old node (its batches
            -- would find the shard gone): unregistering it there, which
            -- commits on its own, would leave nothing to read its final
            -- cursor from if this step failed and rolled back.
            UPDATE migrate.citus_shards c
               SET carried_processed = c.carried_processed OPERATOR(pg_catalog.+) c.processed,
                   carried_changed = c.carried_changed OPERATOR(pg_catalog.+) c.changed,
                   carried_batches = c.carried_batches OPERATOR(pg_catalog.+) c.batches,
                   carried_wal_bytes = c.carried_wal_bytes OPERATOR(pg_catalog.+) c.wal_bytes,
                   processed = 0, changed = 0, batches = 0, wal_bytes = 0,
                   moves = c.moves OPERATOR(pg_catalog.+) 1,
                   nodename = NULL, nodeport = NULL, state = 'pending'
             WHERE c.migration OPERATOR(pg_catalog.=) mid AND c.shardid OPERATOR(pg_catalog.=) s.shardid;
        END IF;
    END LOOP;

    -- 3. register the pending shards' migrations where their shards are,
    -- from their cursors: one statement (one transaction) per node
    FOR nd IN SELECT n.nodename, n.nodeport,
                     pg_catalog.array_agg(c.shardid ORDER BY c.shardid) AS shards
                FROM migrate.citus_shards c
                JOIN pg_catalog.pg_dist_placement p ON p.shardid OPERATOR(pg_catalog.=) c.shardid
                JOIN pg_catalog.pg_dist_node n ON n.groupid OPERATOR(pg_catalog.=) p.groupid
                                              AND n.noderole OPERATOR(pg_catalog.=) 'primary'
               WHERE c.migration OPERATOR(pg_catalog.=) mid AND c.state OPERATOR(pg_catalog.=) 'pending'
               GROUP BY n.nodename, n.nodeport
    LOOP
        cmds := '{}';
        FOR s IN SELECT * FROM migrate.citus_shards c
                  WHERE c.migration OPERATOR(pg_catalog.=) mid
                    AND c.shardid OPERATOR(pg_catalog.=) ANY (nd.shards)
                  ORDER BY c.shardid
        LOOP
            cmds := cmds OPERATOR(pg_catalog.||) pg_catalog.format(
                'SELECT %1$I.migrate_register(name => %2$L::pg_catalog.text,'
                ' relation => %3$L::pg_catalog.regclass, set_clause => %4$L::pg_catalog.text,'
                ' where_clause => %5$L::pg_catalog.text, row_fn => %6$L::pg_catalog.regprocedure,'
                ' action => %7$L::pg_catalog.text, batch_size => %8$L::pg_catalog.int4,'
                ' pause => %9$L::pg_catalog.interval, lock_timeout => %10$L::pg_catalog.interval,'
                ' replace => true, target_batch_time => %11$L::pg_catalog.interval,'
                ' min_batch_size => %12$L::pg_catalog.int4, max_batch_size => %13$L::pg_catalog.int4,'
                ' busy_share => %14$L::pg_catalog.float4, on_error => %15$L::pg_catalog.text,'
                ' keep_before => %16$L::pg_catalog.bool, vacuum => %17$L::pg_catalog.bool,'
                ' max_wal_rate => %18$L::pg_catalog.int8, check_clause => %19$L::pg_catalog.text,'
                ' catch_up => %20$L::pg_catalog.bool, max_passes => %21$L::pg_catalog.int4)',
                ext, s.child, s.relation, m.set_clause, m.where_clause, m.row_fn, m.action,
                CASE WHEN m.adaptive THEN NULL ELSE m.batch_size END,
                m.pause, m.lock_timeout, m.target_batch_time, m.min_batch_size, m.max_batch_size,
                m.busy_share, m.on_error, m.keep_before, m.vacuum, m.max_wal_rate,
                m.check_clause, m.catch_up, m.max_passes)
                OPERATOR(pg_catalog.||) pg_catalog.format('SELECT migrate.citus_adopt(%L::pg_catalog.text,'
                                                          ' %L::pg_catalog.int8, %L::pg_catalog.jsonb,'
                                                          ' %L::pg_catalog.int4)',
                                                          s.child, s.shardid, s.cursor, s.pass);
        END LOOP;
        res := migrate.citus_node_run(nd.nodename, nd.nodeport, owner_name, m.search_path, VARIADIC cmds);
        IF NOT res.success THEN
            IF res.result LIKE '%connect%' OR res.result LIKE '%terminat%' OR res.result LIKE '%shutdown%' THEN
                CONTINUE;       -- node down: again at the next step
            END IF;
            RETURN pg_catalog.format('failed: registering on %s:%s: %s', nd.nodename, nd.nodeport,
                                     res.result);
        END IF;
        UPDATE migrate.citus_shards c
           SET nodename = nd.nodename, nodeport = nd.nodeport, state = 'registered'
         WHERE c.migration OPERATOR(pg_catalog.=) mid AND c.shardid OPERATOR(pg_catalog.=) ANY (nd.shards);
    END LOOP;

    -- 4. a shard migration that failed fails the migration, unless it only
    -- found its shard gone (a move or split switched over: seen at a later
    -- step, once the coordinator's metadata says so too) or found no free
    -- worker slot on its node (a series' hand-over while
    -- migrate.max_workers are at work there): those start again in 5.
    SELECT pg_catalog.format('failed: shard %s on %s:%s: %s', c.shardid, c.nodename, c.nodeport,
                             c.last_error) INTO failure
      FROM migrate.citus_shards c
     WHERE c.migration OPERATOR(pg_catalog.=) mid AND c.state OPERATOR(pg_catalog.=) 'failed'
       AND c.last_error NOT LIKE 'citus shard % is no longer on this node%'
       AND c.last_error NOT LIKE 'could not start migration % migrate workers are busy%'
     ORDER BY c.shardid LIMIT 1;
    IF failure IS NOT NULL THEN
        RETURN failure;
    END IF;

    -- 5. start shard migrations, up to "workers" at once per node: each
    -- free lane runs a series of them, handed over on the node
    FOR nd IN SELECT c.nodename, c.nodeport,
                     pg_catalog.count(*) FILTER (WHERE c.state OPERATOR(pg_catalog.=) 'running') AS busy,
                     pg_catalog.array_agg(c.child ORDER BY c.shardid)
                         FILTER (WHERE c.state OPERATOR(pg_catalog.=) ANY (ARRAY['registered', 'paused', 'cancelled', 'failed'])) AS idle
                FROM migrate.citus_shards c
               WHERE c.migration OPERATOR(pg_catalog.=) mid AND c.nodename IS NOT NULL
                 AND c.state OPERATOR(pg_catalog.<>) ALL (ARRAY['pending', 'done', 'split'])
               GROUP BY c.nodename, c.nodeport
    LOOP
        free := LEAST(m.workers - nd.busy, COALESCE(pg_catalog.cardinality(nd.idle), 0));
        CONTINUE WHEN free OPERATOR(pg_catalog.<=) 0;
        cmds := '{}';
        FOR i IN 1..free LOOP
            SELECT pg_catalog.array_agg(x ORDER BY o) INTO lanes
              FROM pg_catalog.unnest(nd.idle) WITH ORDINALITY AS u(x, o)
             WHERE ((o OPERATOR(pg_catalog.-) 1) OPERATOR(pg_catalog.%) free) OPERATOR(pg_catalog.=) (i OPERATOR(pg_catalog.-) 1);
            cmds := cmds OPERATOR(pg_catalog.||)
                pg_catalog.format('SELECT %I.migrate_start_series(%L::pg_catalog.text[])', ext, lanes);
        END LOOP;
        res := migrate.citus_node_run(nd.nodename, nd.nodeport, owner_name, 'pg_catalog, pg_temp',
                                      VARIADIC cmds);
        IF res.success THEN
            UPDATE migrate.citus_shards c SET state = 'running'
             WHERE c.migration OPERATOR(pg_catalog.=) mid AND c.child OPERATOR(pg_catalog.=) ANY (nd.idle);
        END IF;
    END LOOP;

    -- 6. the sums, into the migration's row, which migrate_status reads
    UPDATE migrate.migrations mm
       SET processed = t.processed, changed = t.changed, batches = t.batches,
           wal_bytes = t.wal_bytes,
           total_estimate = GREATEST(CASE WHEN t.unknown OPERATOR(pg_catalog.=) 0 THEN t.rows_estimate
                                          ELSE mm.total_estimate END, t.processed),
           last_batch_at = t.last_batch_at
      FROM (SELECT COALESCE(pg_catalog.sum(c.processed OPERATOR(pg_catalog.+) c.carried_processed), 0)::bigint AS processed,
                   COALESCE(pg_catalog.sum(c.changed OPERATOR(pg_catalog.+) c.carried_changed), 0)::bigint AS changed,
                   COALESCE(pg_catalog.sum(c.batches OPERATOR(pg_catalog.+) c.carried_batches), 0)::bigint AS batches,
                   COALESCE(pg_catalog.sum(c.wal_bytes OPERATOR(pg_catalog.+) c.carried_wal_bytes), 0)::bigint AS wal_bytes,
                   -- a shard migration's estimate is of its whole shard (a
                   -- split's halves: of each half); until every shard has
                   -- one, the estimate of the start stays
                   COALESCE(pg_catalog.sum(c.rows_estimate)
                            FILTER (WHERE c.state OPERATOR(pg_catalog.<>) 'split'), 0)::bigint AS rows_estimate,
                   pg_catalog.count(*) FILTER (WHERE c.state OPERATOR(pg_catalog.<>) 'split'
                                               AND c.rows_estimate IS NULL) AS unknown,
                   pg_catalog.max(c.last_batch_at) AS last_batch_at
              FROM migrate.citus_shards c WHERE c.migration OPERATOR(pg_catalog.=) mid) t
     WHERE mm.id OPERATOR(pg_catalog.=) mid;

    SELECT pg_catalog.count(*) INTO left_over FROM migrate.citus_shards c
     WHERE c.migration OPERATOR(pg_catalog.=) mid
       AND c.state OPERATOR(pg_catalog.<>) ALL (ARRAY['done', 'split']);
    IF left_over OPERATOR(pg_catalog.>) 0 THEN
        RETURN 'running';
    END IF;
    -- done: the rows are counted, no longer estimated
    UPDATE migrate.migrations mm SET total_estimate = mm.processed
     WHERE mm.id OPERATOR(pg_catalog.=) mid;
    RETURN 'done';
END
$fn$;
REVOKE ALL ON FUNCTION migrate.citus_lead(bigint) FROM PUBLIC;

/*
 * migrate.citus_stop: fan a pause ("pause") or a cancel ("cancel") of
 * migration "mid" of a distributed table out to its shard migrations
 * that run (or, for a cancel, that are not done).  Best effort: a node
 * that is down is stopped when its migrations are next started.  Called by
 * citus.c as the catalog owner.
 */
CREATE FUNCTION migrate.citus_stop(mid bigint, how pg_catalog.text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    ext pg_catalog.text;
    owner_name pg_catalog.text;
    s record;
    res record;
    n integer := 0;
BEGIN
    SELECT n.nspname INTO ext FROM pg_catalog.pg_extension e
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
     WHERE e.extname OPERATOR(pg_catalog.=) 'migrate';
    SELECT r.rolname INTO owner_name FROM migrate.migrations m
      JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) m.owner::pg_catalog.oid
     WHERE m.id OPERATOR(pg_catalog.=) mid;
    IF owner_name IS NULL THEN
        RETURN 0;               -- its owner was dropped: nothing runs in its name
    END IF;
    FOR s IN SELECT c.* FROM migrate.citus_shards c
              WHERE c.migration OPERATOR(pg_catalog.=) mid AND c.nodename IS NOT NULL
                AND (c.state OPERATOR(pg_catalog.=) 'running'
                     OR (how OPERATOR(pg_catalog.=) 'cancel'
                         AND c.state OPERATOR(pg_catalog.=) ANY (ARRAY['paused', 'registered'])))
    LOOP
        res := migrate.citus_node_run(s.nodename, s.nodeport, owner_name, 'pg_catalog, pg_temp',
            pg_catalog.format('SELECT %I.%I(%L::pg_catalog.text)', ext,
                              CASE how WHEN 'cancel' THEN 'migrate_cancel' ELSE 'migrate_pause' END,
                              s.child));
        IF res.success THEN
            n := n OPERATOR(pg_catalog.+) 1;
            UPDATE migrate.citus_shards c
               SET state = CASE how WHEN 'cancel' THEN 'cancelled' ELSE 'paused' END
             WHERE c.migration OPERATOR(pg_catalog.=) mid AND c.shardid OPERATOR(pg_catalog.=) s.shardid;
        END IF;
    END LOOP;
    RETURN n;
END
$fn$;
REVOKE ALL ON FUNCTION migrate.citus_stop(bigint, pg_catalog.text) FROM PUBLIC;

/* ---- end of Citus (issue 23) ---- */
