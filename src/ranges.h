/*-------------------------------------------------------------------------
 *
 * ranges.h
 *	  A migration's walk cut into ranges of keys, for parallel workers:
 *	  planning the ranges, picking one for a batch, splitting a range
 *	  (ranges.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_RANGES_H
#define MIGRATE_RANGES_H

#include "migrate.h"

/* Most workers one migration may have */
#define MIGRATE_MAX_WORKERS_PER_MIGRATION 64

/*
 * The most ranges one migration may have (issue 20); migrate_ranges_split
 * also leaves at least the migration's min_batch_size rows on each side
 */
#define MIGRATE_MAX_RANGES 1024

/* What a runner found when it looked for a range to walk */
typedef enum RangePick
{
	PICK_NONE,					/* the migration is not walked in ranges */
	PICK_RANGE,					/* the Migration now walks one range */
	PICK_SPLIT,					/* a range was split: look again */
	PICK_BUSY,					/* every range left is in another's batch */
	PICK_WALK_OVER				/* every range is done */
} RangePick;

extern bool migrate_ranges_apply(const Migration *m);
extern RangePick migrate_ranges_pick(Migration *m, int64 prefer, bool may_plan,
									 bool by_hand, int32 batch_size);
extern int64 migrate_ranges_split(Migration *m, int64 range_id, int32 min_rows,
								  bool exact);

#endif							/* MIGRATE_RANGES_H */
