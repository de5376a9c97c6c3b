/*-------------------------------------------------------------------------
 *
 * statements.h
 *	  The SQL text of a migration's statements: a batch's key bound and
 *	  change, a revert, a verification, a sample of keys (statements.c).
 *
 * The builders only make text; they run nothing and need no transaction
 * beyond the catalog lookups of the table's columns and key operators.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_STATEMENTS_H
#define MIGRATE_STATEMENTS_H

#include "migrate.h"

/* Aliases our statements use; unlikely to collide with user names */
#define ALIAS_TARGET	"__migrate_t"

#define ALIAS_INNER		"__migrate_i"

#define ALIAS_SUB		"__migrate_s"

/* The SQL pieces that describe a migration's key */
typedef struct KeySql
{
	List	   *names;			/* quoted column names */
	List	   *json_keys;		/* column names as SQL string literals */
	List	   *types;			/* qualified type names */
	char	   *gt;				/* OPERATOR(ns.>) */
	char	   *le;				/* OPERATOR(ns.<=) */
	char	   *eq;				/* OPERATOR(ns.=) */
} KeySql;

/* Which rows a statement's $1 and $2 select */
typedef enum KeyRange
{
	KEYS_FIRST,					/* key <= $2: the first batch */
	KEYS_AFTER,					/* key > $1 AND key <= $2 */
	KEYS_EXACT					/* key = $2: one row */
} KeyRange;

/* The statements of one batch */
typedef struct BatchSql
{
	char	   *bound_nth;		/* finds the batch_size-th key after the cursor */
	char	   *bound;			/* finds the last key and row count of a
								 * shorter, final batch */
	char	   *change;			/* applies the change to the key range; with
								 * keep_before, returns the count and the
								 * arrays of keys, before- and after-images */
	char	   *keys;			/* the keys in the range, as a jsonb[] */
	char	   *dry_run;		/* change plus before/after images */
} BatchSql;

extern BatchSql *migrate_build_batch_sql(const Migration *m, Oid relid,
										 KeyRange range);
extern char *migrate_build_revert_sql(const Migration *m, Oid relid);
extern char *migrate_failing_predicate(const Migration *m);
extern char *migrate_build_verify_sql(const Migration *m, Oid relid,
									  KeyRange range);
extern char *migrate_build_sample_sql(const Migration *m, Oid relid,
									  bool has_lower);

#endif							/* MIGRATE_STATEMENTS_H */
