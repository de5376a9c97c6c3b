/*-------------------------------------------------------------------------
 *
 * migrate.c
 *	  Module entry point of the migrate extension: GUCs and the launcher.
 *
 * migrate works without shared_preload_libraries: the SQL functions start
 * dynamic background workers on demand.  Preloading it adds a launcher
 * that, after every server start or crash, restarts the migrations that
 * were running.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "migrate.h"
#include "pacing.h"
#include "replication.h"
#include "team.h"
#include "worker.h"

PG_MODULE_MAGIC;

/* migrate.max_workers: migrate workers allowed at once, cluster-wide */
int			migrate_max_workers = 4;

/* migrate.max_workers_per_role: of them, what one owner role may hold */
int			migrate_max_workers_per_role = 0;

/* migrate.max_lock_retries: attempts a batch gets when it cannot lock rows */
int			migrate_max_lock_retries = 10;

/* migrate.pause_all: every runner holds back between batches */
bool		migrate_pause_all = false;

/* migrate.max_replication_lag: runners wait while a standby lags more */
int			migrate_max_replication_lag_ms = 10000;

/* migrate.log_interval: how often a worker logs its progress */
int			migrate_log_interval_ms = 30000;

void		_PG_init(void);

/*
 * _PG_init
 *		Define the GUCs; when preloaded, register the launcher and ask for
 *		the shared memory of the migrations' teams of workers.
 *
 * Nothing is registered during a binary upgrade, when no worker may touch
 * the databases.
 */
void
_PG_init(void)
{
	DefineCustomIntVariable("migrate.max_workers",
							"Maximum number of migrate background workers running at once.",
							"Counted over the whole cluster. migrate_start() fails with a clear error when all are busy.",
							&migrate_max_workers,
							4, 0, 1024,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("migrate.max_workers_per_role",
							"Maximum number of migrate background workers one owner role may have running at once.",
							"Counted over the whole cluster, by the role that owns each migration. 0 means no limit other than migrate.max_workers.",
							&migrate_max_workers_per_role,
							0, 0, 1024,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("migrate.max_lock_retries",
							"Number of attempts a batch gets when it cannot take its locks in time.",
							"A batch that hits lock_timeout, a deadlock or a serialization failure is rolled back and retried after a growing pause; after this many attempts the migration fails.",
							&migrate_max_lock_retries,
							10, 1, 1000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("migrate.pause_all",
							 "Holds every migration back between batches.",
							 "Runners stay running but start no batch while this is on; migrate_status shows why.",
							 &migrate_pause_all,
							 false,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("migrate.max_replication_lag",
							"Replay lag of a standby above which runners wait before their next batch.",
							"0 turns the check off.",
							&migrate_max_replication_lag_ms,
							10000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("migrate.log_interval",
							"Time between two progress messages of a migrate worker in the server log.",
							"Each message gives the rows done, the rate and the estimated time left. 0 turns them off; start and end are always logged.",
							&migrate_log_interval_ms,
							30000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	/* the replication limits (replication.c) */
	migrate_replication_define_gucs();

	MarkGUCPrefixReserved("migrate");

	if (process_shared_preload_libraries_in_progress && !IsBinaryUpgrade)
	{
		migrate_register_launcher();
		migrate_team_init();
	}
}
