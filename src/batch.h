/*-------------------------------------------------------------------------
 *
 * batch.h
 *	  What the files that build and run batches share among themselves
 *	  (keys.c, statements.c, validate.c, batch.c, revert.c, preview.c,
 *	  verify.c, estimate.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_BATCH_H
#define MIGRATE_BATCH_H

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
	RANGE_FIRST,				/* key <= $2: the first batch */
	RANGE_AFTER,				/* key > $1 AND key <= $2 */
	RANGE_EXACT					/* key = $2: one row */
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

/* statements.c */
extern BatchSql *migrate_build_batch_sql(const Migration *m, Oid relid, KeyRange range);
extern char *migrate_build_revert_sql(const Migration *m, Oid relid);
extern List *migrate_written_columns(const Migration *m, Oid relid);
extern char *migrate_failing_predicate(const Migration *m);
extern char *migrate_build_verify_sql(const Migration *m, Oid relid, KeyRange range);
extern char *migrate_build_sample_sql(const Migration *m, Oid relid, bool has_lower);

/* validate.c */
extern List *migrate_parse_pinned(const char *sql, char **message);

/* batch.c */
extern void migrate_set_guc(const char *name, const char *value);
extern void migrate_set_lock_timeout(int64 ms);
extern int	migrate_run_owner_sql(const Migration *m, const char *sql, int nargs,
								  Oid *types, Datum *values, const char *nulls,
								  bool cached);
extern void migrate_fire_deferred(const Migration *m);
extern void migrate_pin_key_formats(void);
extern void migrate_pin_image_formats(void);
extern bool migrate_find_batch_bound(const Migration *m, BatchSql *b,
									 int32 batch_size, Datum *bound, int64 *rows);

#endif							/* MIGRATE_BATCH_H */
