/*-------------------------------------------------------------------------
 *
 * runner_lock.h
 *	  The advisory locks that make one process the runner of a migration
 *	  and mark its helper workers, and who holds them (runner_lock.c).
 *
 * The locks are session locks: they outlive the transactions of a
 * runner's steps and are released when it exits, whatever way it exits.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_RUNNER_LOCK_H
#define MIGRATE_RUNNER_LOCK_H

#include "migrate.h"

/* locktag_field4 of the advisory lock a runner holds for its migration */
#define MIGRATE_RUNNER_LOCK_KIND	28007

/* locktag_field4 of the cluster-wide lock around worker starts (launch.c) */
#define MIGRATE_START_LOCK_KIND		28008

/* locktag_field4 of the advisory lock each helper worker holds, shared */
#define MIGRATE_HELPER_LOCK_KIND	28009

extern bool migrate_runner_active(int64 id);
extern int	migrate_runner_pid(int64 id);
extern void migrate_runner_lock(int64 id);
extern void migrate_runner_unlock(int64 id);
extern void migrate_runner_release(int64 id, Migration *m);
extern void migrate_helper_lock(int64 id);
extern int	migrate_helper_count(int64 id, int pid);

#endif							/* MIGRATE_RUNNER_LOCK_H */
