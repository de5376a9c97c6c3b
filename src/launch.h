/*-------------------------------------------------------------------------
 *
 * launch.h
 *	  Starting a migration's background workers: the slot limits, the
 *	  runner and its helpers (launch.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_LAUNCH_H
#define MIGRATE_LAUNCH_H

#include "migrate.h"

#include "postmaster/bgworker.h"

extern void migrate_start_locked(Migration *m, bool restart, List *series_rest,
								 Oid actor, const char *event,
								 const char *detail, bool self_leaving);
extern int64 migrate_progress_total(const Migration *m);
extern void migrate_launch_helpers(const Migration *m, int n,
								   BackgroundWorkerHandle **handles,
								   int *started, char **note);

/* For workers launch.c does not start itself (the verify worker) */
extern void migrate_worker_template(BackgroundWorker *w,
									const char *function, const char *type);
extern void migrate_check_worker_can_connect(const Migration *m);
extern void migrate_lock_worker_start(bool lock);
extern void migrate_check_worker_slots(const Migration *m, bool verify);

#endif							/* MIGRATE_LAUNCH_H */
