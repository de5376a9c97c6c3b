-- Benchmark setup, run once per template size (psql variable :rows).
-- The template is the starting content of every run: reset.sql copies it
-- into a fresh table "accounts" before each measurement.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS migrate;

DROP TABLE IF EXISTS accounts_template;
CREATE UNLOGGED TABLE accounts_template (
    id          bigint NOT NULL,
    email       text,
    external_id text,
    created_at  timestamptz
);
INSERT INTO accounts_template (id, email, created_at)
SELECT g,
       CASE g % 4
           WHEN 0 THEN 'User' || g || '@Example.COM'
           WHEN 1 THEN 'MAIL.' || g || '@EXAMPLE.ORG'
           WHEN 2 THEN 'Someone_' || g || '@Mail.Example.NET'
           ELSE        'user' || g || '@example.net'
       END,
       timestamptz '2024-01-01 00:00:00+00' - g * interval '17 seconds'
  FROM generate_series(1, :rows) AS g;
VACUUM (ANALYZE) accounts_template;

-- (2) the hand-written keyset loop: each batch is the key range
-- (previous last key, last key of the next batch_size keys], COMMIT per batch
CREATE OR REPLACE PROCEDURE bench_loop(batch_size integer DEFAULT 1000)
LANGUAGE plpgsql AS $$
DECLARE
    cur bigint;
    hi  bigint;
BEGIN
    SELECT min(id) - 1 INTO cur FROM accounts;
    LOOP
        SELECT max(s.id) INTO hi
          FROM (SELECT id FROM accounts WHERE id > cur ORDER BY id LIMIT batch_size) s;
        EXIT WHEN hi IS NULL;
        UPDATE accounts
           SET external_id = 'ext-' || id, email = lower(email)
         WHERE id > cur AND id <= hi;
        cur := hi;
        COMMIT;
    END LOOP;
END
$$;

-- MIGRATE_WAIT=poll: wait for a migration like migrate_wait does, but with a
-- COMMIT between polls, so that the waiting session does not hold one
-- snapshot (and with it the xmin horizon) for the whole run.
CREATE OR REPLACE PROCEDURE bench_wait(mname text, timeout_s double precision, INOUT state text DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => timeout_s);
BEGIN
    LOOP
        SELECT s.state INTO state FROM migrate_status(mname) s WHERE s.worker_pid IS NULL;
        EXIT WHEN state IN ('done', 'failed', 'cancelled', 'paused');
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'timed out waiting for migration "%"', mname;
        END IF;
        COMMIT;
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
