/*-------------------------------------------------------------------------
 *
 * runner_lock.c
 *	  The runner lock: one runner per migration, whoever it is; and the
 *	  helper locks of the workers that help it walk ranges.
 *
 * Whoever runs a migration's batches (a background worker, or a session in
 * CALL migrate_run) holds a session-level advisory lock on the migration
 * for as long as it runs.  "Is it running?" is therefore answered by the
 * lock table, which forgets a runner the moment its process ends, and a
 * second runner can never start.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"

#include "runner_lock.h"
#include "catalog.h"
#include "replication.h"

static void runner_locktag(LOCKTAG *tag, Oid dbid, int64 id);

/*
 * runner_locktag
 *		Fill in the advisory lock tag of migration id in database dbid.
 *
 * The fourth field keeps it apart from pg_advisory_lock()'s keys.
 */
static void
runner_locktag(LOCKTAG *tag, Oid dbid, int64 id)
{
	SET_LOCKTAG_ADVISORY(*tag, dbid, (uint32) (((uint64) id) >> 32),
						 (uint32) id, MIGRATE_RUNNER_LOCK_KIND);
}

/* Does this process hold the runner lock of migration id? */
static bool
runner_lock_held(int64 id)
{
	LOCKTAG		tag;

	runner_locktag(&tag, MyDatabaseId, id);
#if PG_VERSION_NUM >= 170000
	return LockHeldByMe(&tag, ExclusiveLock, false);
#else
	return LockHeldByMe(&tag, ExclusiveLock);
#endif
}

/*
 * lock_holders
 *		How many processes hold (granted, in "mode") the advisory lock of
 *		kind "kind" on migration id in this database, in the lock table;
 *		only process only_pid, if not 0.  Sets *first_pid, if given, to one
 *		of them (0: none).
 */
static int
lock_holders(int64 id, int kind, const char *mode, int only_pid, int *first_pid)
{
	Oid			types[5] = {OIDOID, OIDOID, OIDOID, INT4OID, TEXTOID};
	Datum		values[5];
	bool		isnull;
	int			count;

	values[0] = ObjectIdGetDatum(MyDatabaseId);
	values[1] = ObjectIdGetDatum((Oid) (((uint64) id) >> 32));
	values[2] = ObjectIdGetDatum((Oid) (uint32) id);
	values[3] = Int32GetDatum(only_pid);
	values[4] = CStringGetTextDatum(mode);
	/* a connection of its own: callers poll this in loops */
	SPI_connect();
	migrate_server_read(psprintf("SELECT pg_catalog.count(*)::pg_catalog.int4, pg_catalog.min(pid)"
								 " FROM pg_catalog.pg_locks"
								 " WHERE locktype OPERATOR(pg_catalog.=) 'advisory'"
								 " AND granted AND mode OPERATOR(pg_catalog.=) $5"
								 " AND database OPERATOR(pg_catalog.=) $1"
								 " AND classid OPERATOR(pg_catalog.=) $2"
								 " AND objid OPERATOR(pg_catalog.=) $3"
								 " AND objsubid OPERATOR(pg_catalog.=) %d"
								 " AND ($4 OPERATOR(pg_catalog.=) 0 OR pid OPERATOR(pg_catalog.=) $4)",
								 kind),
						5, types, values, NULL);
	count = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 1, &isnull));
	if (first_pid)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		*first_pid = isnull ? 0 : DatumGetInt32(d);
	}
	SPI_finish();
	return count;
}

/*
 * migrate_runner_active
 *		Is some process (this one included) running migration id: its
 *		runner, or a helper worker still finishing a batch (one whose runner
 *		died lives until its next step)?
 *
 * Only looks at the lock table: taking the runner lock to test it could
 * make a starting runner's own attempt fail.
 */
bool
migrate_runner_active(int64 id)
{
	return runner_lock_held(id) || migrate_runner_pid(id) != 0 ||
		migrate_helper_count(id, 0) > 0;
}

/*
 * migrate_runner_pid
 *		Return the pid of the process running migration id, or 0.
 *
 * Reads the lock table, so it names the actual holder of the runner lock:
 * unlike worker_pid in the catalog, it cannot be stale or uncommitted.
 */
int
migrate_runner_pid(int64 id)
{
	int			pid = 0;

	(void) lock_holders(id, MIGRATE_RUNNER_LOCK_KIND, "ExclusiveLock", 0, &pid);
	return pid;
}

/*
 * caller_sees_migration
 *		May the current user see migration id: does its row pass the
 *		row-level security of migrate.migrations for that user (the owner's
 *		members, superusers and BYPASSRLS roles)?  Asked as the current
 *		user, every name qualified; a SECURITY DEFINER caller such as
 *		migrate.monitor() sees what its owner sees.
 */
static bool
caller_sees_migration(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	bool		seen;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT FROM migrate.migrations WHERE id OPERATOR(pg_catalog.=) $1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read migrate.migrations");
	seen = SPI_processed > 0;
	SPI_finish();
	return seen;
}

PG_FUNCTION_INFO_V1(migrate_runner_pid_sql);

/*
 * migrate.runner_pid(id)
 *
 * The pid of the process running migration id in this database, or NULL;
 * what migrate_status shows as worker_pid.  NULL too for a migration the
 * caller cannot see.
 */
Datum
migrate_runner_pid_sql(PG_FUNCTION_ARGS)
{
	int			pid;

	/* no answer about a migration the caller cannot see */
	if (!caller_sees_migration(PG_GETARG_INT64(0)))
		PG_RETURN_NULL();
	pid = migrate_runner_pid(PG_GETARG_INT64(0));
	if (pid == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT32(pid);
}

/*
 * migrate_runner_lock
 *		Become the runner of migration id for the rest of this session (until
 *		migrate_runner_unlock); error out if another process runs it.
 */
void
migrate_runner_lock(int64 id)
{
	LOCKTAG		tag;

	runner_locktag(&tag, MyDatabaseId, id);
	if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("migration is already being run by another process")));
}

/*
 * migrate_runner_unlock
 *		Stop being the runner of migration id (if we are).
 */
void
migrate_runner_unlock(int64 id)
{
	LOCKTAG		tag;

	runner_locktag(&tag, MyDatabaseId, id);
	if (runner_lock_held(id))
		LockRelease(&tag, ExclusiveLock, true);
}

/*
 * migrate_runner_release
 *		Stop being the runner of migration id: clear m's worker_pid if it is
 *		ours and release the runner lock.  m is the migration's row, locked,
 *		or NULL if it is gone.
 *
 * Called in the runner's last transaction, with m's row locked, before
 * that transaction commits.  Whoever decides next whether m needs a new
 * runner must first get the row lock, so it finds either us still running
 * or no runner at all, never a runner on its way out.
 */
void
migrate_runner_release(int64 id, Migration *m)
{
	/* what it did is seen gone once the synchronous standbys have it */
	migrate_replication_before_release();
	if (m && m->worker_pid == MyProcPid)
		migrate_catalog_clear_runner(m);
	migrate_runner_unlock(id);
}

/*
 * migrate_helper_lock
 *		Become a helper worker of migration id for the rest of this process:
 *		a shared advisory lock, so that the lock table tells how many
 *		helpers a migration has (migrate_helper_count) and forgets each the
 *		moment its process ends.
 */
void
migrate_helper_lock(int64 id)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (((uint64) id) >> 32),
						 (uint32) id, MIGRATE_HELPER_LOCK_KIND);
	(void) LockAcquire(&tag, ShareLock, true, false);
}

/*
 * migrate_helper_count
 *		How many processes hold the helper lock of migration id in this
 *		database (only process pid, if not 0).
 */
int
migrate_helper_count(int64 id, int pid)
{
	return lock_holders(id, MIGRATE_HELPER_LOCK_KIND, "ShareLock", pid, NULL);
}

PG_FUNCTION_INFO_V1(migrate_helper_count_sql);

/*
 * migrate.helper_count(id)
 *
 * The number of helper workers of migration id in this database, besides
 * its runner; migrate_status adds them to workers_running.  NULL for a
 * migration the caller cannot see.
 */
Datum
migrate_helper_count_sql(PG_FUNCTION_ARGS)
{
	/* no answer about a migration the caller cannot see */
	if (!caller_sees_migration(PG_GETARG_INT64(0)))
		PG_RETURN_NULL();
	PG_RETURN_INT32(migrate_helper_count(PG_GETARG_INT64(0), 0));
}
