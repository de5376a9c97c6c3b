/* migrate--0.3--0.4.sql: a wait that holds no snapshot, vacuum only when it can reclaim; a read-only monitoring path, the key guard */

\echo Use "ALTER EXTENSION migrate UPDATE TO '0.4'" to load this file. \quit

/*
 * Existing migrations keep their state, cursor and counters.  Every name is
 * qualified, as in the install script.
 */

/* ---- harm (issue 19) ---- */

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

/* ---- end of security and integrity (issue 20) ---- */
