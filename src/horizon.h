/*-------------------------------------------------------------------------
 *
 * horizon.h
 *	  What keeps VACUUM from removing the row versions a migration
 *	  replaced (horizon.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_HORIZON_H
#define MIGRATE_HORIZON_H

#include "postgres.h"

/*
 * The row versions batches replaced since the last vacuum: a batch's
 * versions are removable once the horizon has passed "xid_after" (the
 * next transaction id when it ended).
 */
typedef struct DeadVersions
{
	List	   *batches;		/* DeadBatch, oldest first, in "cxt" (which
								 * outlives the runner's steps) */
	int64		rows;			/* all of them */
	MemoryContext cxt;
} DeadVersions;

extern void migrate_dead_versions_add(DeadVersions *dv, int64 rows);
extern int64 migrate_dead_versions_removable(const DeadVersions *dv, Oid relid);
extern void migrate_dead_versions_reset(DeadVersions *dv);
extern char *migrate_horizon_holder(Oid viewer);

#endif							/* MIGRATE_HORIZON_H */
