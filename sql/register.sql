-- register: every kind of migration, what gets stored, and the checks made
-- at registration time
CREATE TABLE accounts (
    id bigint PRIMARY KEY,
    email text NOT NULL,
    external_id text,
    n int NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT '2020-01-01'
);
INSERT INTO accounts (id, email)
SELECT g, 'User' || g || '@Example.COM' FROM generate_series(1, 100) g;

-- a SET list
SELECT name, action, relation, key_columns, set_clause, where_clause, row_fn,
       batch_size, pause, lock_timeout, owner, state, cursor, processed
  FROM migrate_register('lower_emails', 'accounts',
                        set_clause => 'email = lower(email)',
                        where_clause => 'email <> lower(email)',
                        batch_size => 30);

-- a row function
CREATE FUNCTION fix_account(a accounts) RETURNS accounts
LANGUAGE plpgsql AS $$
BEGIN
    a.external_id := 'ext-' || a.id;
    RETURN a;
END
$$;
SELECT name, action, row_fn, state
  FROM migrate_register('fix_ids', 'accounts', row_fn => 'fix_account(accounts)');

-- a delete filter
SELECT name, action, where_clause, batch_size
  FROM migrate_register('purge_old', 'accounts', action => 'delete',
                        where_clause => $$created_at < '2000-01-01'$$, batch_size => 10);

-- a one-off task
SELECT name, action, relation, sql, state
  FROM migrate_register('seed_flag', NULL, sql => 'UPDATE accounts SET n = n + 0 WHERE id = 1');

-- composite keys: a unique index on NOT NULL columns serves as the key
CREATE TABLE pairs (a int NOT NULL, b text NOT NULL, v int, UNIQUE (a, b));
SELECT name, key_columns
  FROM migrate_register('pairs_v', 'pairs', set_clause => 'v = 1');
-- the primary key wins over other unique indexes
CREATE TABLE pk_and_uk (id int PRIMARY KEY, code text NOT NULL UNIQUE, v int);
SELECT key_columns FROM migrate_register('pk_wins', 'pk_and_uk', set_clause => 'v = 1');

-- names with quotes and semicolons are just names
SELECT name FROM migrate_register($$it's; a "name"$$, 'accounts', set_clause => 'n = n');

-- the registration is in the audit log with its role
SELECT migration, event, role, detail FROM migrate.events ORDER BY id;

-- a name is registered once ...
SELECT migrate_register('lower_emails', 'accounts', set_clause => 'email = email');
-- ... unless replaced, which starts it over with the new definition
SELECT name, set_clause, where_clause, batch_size, state
  FROM migrate_register('lower_emails', 'accounts',
                        set_clause => 'email = lower(email)', batch_size => 25,
                        replace => true);
SELECT event FROM migrate.events WHERE migration = 'lower_emails' ORDER BY id;

-- checks made against the table at registration time
SELECT migrate_register('x', 'accounts', set_clause => 'no_such_column = 1');
SELECT migrate_register('x', 'accounts', set_clause => 'email = no_such_function(email)');
SELECT migrate_register('x', 'accounts', set_clause => 'n = 1', where_clause => 'nope > 0');
SELECT migrate_register('x', 'accounts', set_clause => 'n = ''not a number''');
SELECT migrate_register('x', 'accounts', set_clause => 'id = id + 1');
SELECT migrate_register('x', 'accounts', set_clause => 'n = 1; DROP TABLE accounts');
SELECT migrate_register('x', 'accounts', set_clause => 'n = 1 WHERE false');
SELECT migrate_register('x', 'accounts', set_clause => 'n = 1 FROM pairs');
SELECT migrate_register('x', 'accounts', set_clause => 'n = 1 RETURNING *');
SELECT migrate_register('x', 'accounts', set_clause => 'n = 1 /* unterminated');
SELECT migrate_register('x', 'accounts', set_clause => 'n = 1', where_clause => 'true) OR (true');
SELECT migrate_register('x', 'accounts', set_clause => 'n = 1', where_clause => 'true ORDER BY 1');
SELECT migrate_register('x', 'accounts', set_clause => 'n = 1', where_clause => 'true UNION SELECT 1');
SELECT migrate_register('x', 'accounts', set_clause => 'n = 1', where_clause => 'n');
SELECT migrate_register('x', 'accounts', set_clause => 'n = 1', where_clause => '   ');
SELECT migrate_register('x', NULL, sql => 'SELECT FROM no_such_table');
SELECT migrate_register('x', NULL, sql => 'BEGIN; UPDATE accounts SET n = 1; COMMIT');
SELECT migrate_register('x', NULL, sql => 'VACUUM accounts');
SELECT migrate_register('x', NULL, sql => 'this is not sql');
SELECT migrate_register('x', NULL, sql => '');
-- a comment at the end of a fragment does not swallow the key range
SELECT name FROM migrate_register('commented', 'accounts',
                                  set_clause => 'n = n -- a comment',
                                  where_clause => 'true -- another');

-- exactly one kind of change
SELECT migrate_register('x', 'accounts');
SELECT migrate_register('x', 'accounts', set_clause => 'n = 1', row_fn => 'fix_account(accounts)');
SELECT migrate_register('x', 'accounts', action => 'delete', set_clause => 'n = 1');
SELECT migrate_register('x', 'accounts', action => 'truncate');
SELECT migrate_register('x', 'accounts', set_clause => 'n = 1', sql => 'SELECT 1');
SELECT migrate_register('x', NULL);
SELECT migrate_register('x', NULL, sql => 'SELECT 1', set_clause => 'n = 1');
SELECT migrate_register('x', NULL, sql => 'SELECT 1', action => 'delete');

-- row functions must map a row of the table to a row of the table
CREATE FUNCTION wrong_shape(a accounts) RETURNS int LANGUAGE sql AS 'SELECT 1';
SELECT migrate_register('x', 'accounts', row_fn => 'wrong_shape(accounts)');
CREATE FUNCTION other_table(p pairs) RETURNS pairs LANGUAGE sql AS 'SELECT p';
SELECT migrate_register('x', 'accounts', row_fn => 'other_table(pairs)');
CREATE FUNCTION many(a accounts) RETURNS SETOF accounts LANGUAGE sql AS 'SELECT a';
SELECT migrate_register('x', 'accounts', row_fn => 'many(accounts)');

-- tables it cannot work on
CREATE TABLE no_key (id int, v int);
SELECT migrate_register('x', 'no_key', set_clause => 'v = 1');
CREATE TABLE nullable_unique (id int UNIQUE, v int);
SELECT migrate_register('x', 'nullable_unique', set_clause => 'v = 1');
CREATE VIEW accounts_view AS SELECT * FROM accounts;
SELECT migrate_register('x', 'accounts_view', set_clause => 'n = 1');
CREATE MATERIALIZED VIEW accounts_mv AS SELECT * FROM accounts;
SELECT migrate_register('x', 'accounts_mv', set_clause => 'n = 1');
CREATE SEQUENCE some_seq;
SELECT migrate_register('x', 'some_seq', set_clause => 'n = 1');
CREATE TEMP TABLE temp_t (id int PRIMARY KEY, v int);
SELECT migrate_register('x', 'temp_t', set_clause => 'v = 1');
SELECT migrate_register('x', 'no_such_table', set_clause => 'v = 1');

-- tables it can work on: unlogged and partitioned
CREATE UNLOGGED TABLE unlogged_t (id int PRIMARY KEY, v int);
SELECT name, relation FROM migrate_register('unlogged_ok', 'unlogged_t', set_clause => 'v = 1');
CREATE TABLE parted (id int PRIMARY KEY, v int) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (50);
CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (50) TO (100);
SELECT name, relation, key_columns FROM migrate_register('parted_ok', 'parted', set_clause => 'v = 1');
CREATE TABLE "Odd ""Name""" ("Key" int PRIMARY KEY, "V" int);
SELECT name, relation, key_columns FROM migrate_register('odd_ok', '"Odd ""Name"""', set_clause => '"V" = 1');

-- nothing of the failed registrations was left behind
SELECT count(*) FROM migrate.migrations WHERE name = 'x';
SELECT count(*) FROM migrate.events WHERE migration = 'x';

-- clean up for the next test file
SELECT count(migrate_unregister(name)) FROM migrate.migrations;
SET client_min_messages = warning;
DROP TABLE accounts, pairs, pk_and_uk, no_key, nullable_unique, unlogged_t, parted,
    "Odd ""Name""", temp_t CASCADE;
DROP SEQUENCE some_seq;
RESET client_min_messages;
