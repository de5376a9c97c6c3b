/*-------------------------------------------------------------------------
 *
 * estimate.h
 *	  What a migration will cost, before it starts (estimate.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_ESTIMATE_H
#define MIGRATE_ESTIMATE_H

#include "migrate.h"

typedef struct Estimate
{
	int64		rows_total;
	int64		rows_to_change;
	bool		measured;		/* a batch was run to measure */
	double		ms_per_row;
	bool		has_wal_per_row;
	double		wal_per_row;
	int64		expected_ms;
	int64		expected_wal;
	int64		expected_size;
} Estimate;

extern void migrate_estimate_run(Migration *m, Estimate *e);

#endif							/* MIGRATE_ESTIMATE_H */
