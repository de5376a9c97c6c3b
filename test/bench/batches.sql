-- Per-batch timing of a finished migrate run, from commit timestamps
-- (track_commit_timestamp = on): every batch is one transaction, so the rows
-- it changed share its xid as xmin.  Groups of one row stamped after the
-- start are the concurrent pgbench workload's own updates, not batches.
-- Variables: :run (label), :started (epoch of migrations.started_at).
-- Output: run, batch, commit_epoch, elapsed_s, rows, duration_ms
WITH g AS (
    SELECT xmin AS x, count(*) AS n
      FROM accounts
     WHERE external_id IS NOT NULL
     GROUP BY xmin
    HAVING NOT (count(*) = 1 AND min(created_at) >= to_timestamp(:started))
), t AS (
    SELECT n, pg_xact_commit_timestamp(x) AS ts FROM g
)
SELECT :'run', row_number() OVER w,
       round(extract(epoch FROM ts)::numeric, 6),
       round(extract(epoch FROM ts - to_timestamp(:started))::numeric, 6),
       n,
       round((extract(epoch FROM ts - coalesce(lag(ts) OVER w, to_timestamp(:started))) * 1000)::numeric, 3)
  FROM t
 WHERE ts IS NOT NULL
WINDOW w AS (ORDER BY ts)
 ORDER BY ts;
