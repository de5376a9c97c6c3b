/*-------------------------------------------------------------------------
 *
 * catalog_ranges.h
 *	  Reads and writes of migrate.ranges: the ranges of keys a migration's
 *	  workers walk in parallel (catalog_ranges.c).
 *
 * As in catalog.c, every statement runs through SPI as the catalog owner;
 * the caller is connected to SPI and inside a transaction.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_CATALOG_RANGES_H
#define MIGRATE_CATALOG_RANGES_H

#include "migrate.h"

/* One range of a migration's keys, as read from migrate.ranges */
typedef struct MigrateRange
{
	int64		id;
	char	   *relation;		/* quoted, qualified: the table or a partition */
	Oid			relid;			/* the partition; InvalidOid: the table */
	Jsonb	   *lower;			/* NULL: from the first key */
	Jsonb	   *upper;			/* NULL: to the last key */
	Jsonb	   *cursor;			/* the last key done, or NULL */
	bool		done;
	int64		rows_left;		/* estimated */
} MigrateRange;

/* A partition walked in ranges, as planned (migrate.ranges) */
typedef struct PlannedLeaf
{
	Oid			relid;
	char	   *relation;		/* its name when planned */
	char	   *bound;			/* its bounds as planned; NULL: unknown */
	bool		done;			/* all its ranges are done */
	bool		left_table;		/* one was closed by 0.3 when it left */
} PlannedLeaf;

extern int64 migrate_catalog_add_range(const Migration *m, const char *relation,
									   Oid relid, Jsonb *lower, Jsonb *upper,
									   int64 rows_estimate, int64 split_from);
extern void migrate_catalog_set_range_bound(int64 id, const char *bound);
extern List *migrate_catalog_planned_leaves(const Migration *m);
extern int64 migrate_catalog_count_ranges_locked(const Migration *m);
extern int64 migrate_catalog_count_ranges(const Migration *m, bool left_only);
extern bool migrate_catalog_take_range(const Migration *m, int64 prefer,
									   bool spread, bool wait, MigrateRange *r);
extern bool migrate_catalog_lock_range(const Migration *m, int64 id,
									   MigrateRange *r);
extern int64 migrate_catalog_largest_range(const Migration *m, int64 *rows_left);
extern void migrate_catalog_record_range(Migration *m, const BatchResult *res);
extern int64 migrate_catalog_split_range(const Migration *m, const MigrateRange *r,
										 Jsonb *middle, int64 rows_before,
										 int64 rows_after);
extern void migrate_catalog_forget_ranges(int64 id);
extern void migrate_catalog_set_workers(Migration *m, int32 workers);
extern void migrate_catalog_set_workers_note(int64 id, const char *note);

#endif							/* MIGRATE_CATALOG_RANGES_H */
