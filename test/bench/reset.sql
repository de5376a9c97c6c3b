-- Rebuild "accounts" from the template: same content, fresh heap and index.
-- (VACUUM ANALYZE and CHECKPOINT follow in a second session, settle.sql, so
-- that this session's insert statistics are flushed before VACUUM resets them.)
SET client_min_messages = warning;
SET synchronize_seqscans = off;
DROP TABLE IF EXISTS accounts;
CREATE TABLE accounts (
    id          bigint NOT NULL,
    email       text,
    external_id text,
    created_at  timestamptz
);
INSERT INTO accounts SELECT id, email, external_id, created_at FROM accounts_template;
ALTER TABLE accounts ADD PRIMARY KEY (id);
