-- setup: install the extension and the roles the other tests use
SET client_min_messages = warning;
CREATE EXTENSION migrate;
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'migrate_alice') THEN
        CREATE ROLE migrate_alice LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'migrate_bob') THEN
        CREATE ROLE migrate_bob LOGIN;
    END IF;
END
$$;
RESET client_min_messages;
GRANT CREATE ON SCHEMA public TO migrate_alice, migrate_bob;
SELECT extname, extversion FROM pg_extension WHERE extname = 'migrate';
SELECT pg_describe_object(classid, objid, objsubid) AS member
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migrate')
   AND classid <> 'pg_type'::regclass
 ORDER BY pg_describe_object(classid, objid, objsubid) COLLATE "C";
