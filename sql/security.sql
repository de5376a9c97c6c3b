-- security: look-alike functions and operators planted in public before
-- CREATE EXTENSION and before running a migration are never called by
-- migrate's own statements
DROP EXTENSION migrate;
CREATE FUNCTION public.trap() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE FUNCTION public.lookalike_text(a text, b text) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'look-alike text operator called'; END $$;
CREATE FUNCTION public.lookalike_int8(a bigint, b bigint) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'look-alike bigint operator called'; END $$;
CREATE FUNCTION public.lookalike_int8_plus(a bigint, b bigint) RETURNS bigint
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'look-alike bigint + called'; END $$;
CREATE FUNCTION public.lookalike_jsonb_text(a jsonb, b text) RETURNS text
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'look-alike ->> called'; END $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.lookalike_text);
CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.lookalike_int8);
CREATE OPERATOR public.> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.lookalike_int8);
CREATE OPERATOR public.<= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.lookalike_int8);
CREATE OPERATOR public.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.lookalike_int8_plus);
CREATE OPERATOR public.->> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = public.lookalike_jsonb_text);
CREATE FUNCTION public.now() RETURNS timestamptz
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'look-alike now() called'; END $$;
CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'look-alike clock_timestamp() called'; END $$;
CREATE FUNCTION public.nextval(regclass) RETURNS bigint
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'look-alike nextval() called'; END $$;
CREATE FUNCTION public.pg_has_role(oid, text) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'look-alike pg_has_role() called'; END $$;
CREATE FUNCTION public.jsonb_build_object(text, bigint) RETURNS jsonb
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'look-alike jsonb_build_object() called'; END $$;
CREATE FUNCTION public.to_jsonb(anyelement) RETURNS jsonb
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'look-alike to_jsonb() called'; END $$;
CREATE FUNCTION public.count(bigint) RETURNS bigint
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'look-alike count() called'; END $$;

-- a schema called migrate that someone made first is not adopted
CREATE SCHEMA migrate;
\set VERBOSITY terse
CREATE EXTENSION migrate;
\set VERBOSITY default
DROP SCHEMA migrate;

SET search_path = public, pg_catalog;
CREATE EXTENSION migrate;

CREATE TABLE sec (id bigint PRIMARY KEY, n bigint NOT NULL DEFAULT 0, tag text NOT NULL DEFAULT 'x');
INSERT INTO sec SELECT g FROM generate_series(1, 100) g;
SELECT name, state FROM migrate_register('sec_m', 'sec', set_clause => 'n = 1',
                                         where_clause => 'tag IS NOT NULL', batch_size => 30);
SELECT key FROM migrate_dry_run('sec_m', 2);
SELECT cursor, processed FROM migrate_step('sec_m');
SELECT (migrate_start('sec_m')).state;
SELECT migrate_wait('sec_m');
SELECT name, state, processed, changed, percent FROM migrate_status('sec_m');
SELECT n, count(*) FROM sec GROUP BY n;
SELECT name FROM migrate_register('sec_del', 'sec', action => 'delete', where_clause => 'id > 90');
CALL migrate_run('sec_del');
SELECT count(*) FROM sec;
SELECT event FROM migrate.events WHERE migration LIKE 'sec%' ORDER BY id;

-- clean up
RESET search_path;
SELECT count(migrate_unregister(name)) FROM migrate.migrations;
DROP TABLE sec;
DROP OPERATOR public.= (text, text), public.= (bigint, bigint), public.> (bigint, bigint),
    public.<= (bigint, bigint), public.+ (bigint, bigint), public.->> (jsonb, text);
DROP FUNCTION public.trap, public.lookalike_text, public.lookalike_int8,
    public.lookalike_int8_plus, public.lookalike_jsonb_text, public.now,
    public.clock_timestamp, public.nextval, public.pg_has_role,
    public.jsonb_build_object, public.to_jsonb, public.count;
