/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  migrate's background workers: the launcher, the runner and helper
 *	  workers of a migration, and what every one of them shares (worker.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_WORKER_H
#define MIGRATE_WORKER_H

#include "migrate.h"

/* What a migration worker is told at start, through bgw_extra (launch.c) */
typedef struct WorkerArgs
{
	Oid			dbid;
	Oid			connect_as;		/* role to connect as: the owner */
	TransactionId start_xid;	/* the transaction that starts us */
	int64		id;				/* migrate.migrations.id */
	bool		helper;			/* walks ranges for the runner (ranges.c) */
	int			runner_pid;		/* a helper's: the runner that started it */
	char		name[MIGRATE_MAX_NAME_LEN + 1];
} WorkerArgs;

extern void migrate_register_launcher(void);

/* For every worker: connecting, and its units of work */
extern void migrate_worker_connect(WorkerArgs *args, const char *appname);
extern void migrate_unit_begin(const char *activity);
extern void migrate_unit_end(void);
extern void migrate_worker_sleep(long ms);

#endif							/* MIGRATE_WORKER_H */
