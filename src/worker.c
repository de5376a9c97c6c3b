/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  Background workers: the per-migration worker, the launcher that
 *	  restarts running migrations after a server restart, and the runner
 *	  lock that guarantees one runner per migration.
 *
 * Whoever runs a migration's batches (a background worker, or a session in
 * CALL migrate_run) holds a session-level advisory lock on the migration
 * for as long as it runs.  "Is it running?" is therefore answered by the
 * lock table, which forgets a runner the moment its process ends, and a
 * second runner can never start.
 *
 * Starting a worker happens inside the transaction that marks the
 * migration running, with its row locked.  The new worker takes the runner
 * lock, then waits for that row lock, so it only ever sees committed state:
 * if the starting transaction rolls back, the worker finds the migration
 * not running (or not claimed by it) and leaves quietly.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "migrate.h"

PGDLLEXPORT void migrate_worker_main(Datum main_arg);
PGDLLEXPORT void migrate_launcher_main(Datum main_arg);
PGDLLEXPORT void migrate_recovery_main(Datum main_arg);

/* What a migration worker is told at start, through bgw_extra */
typedef struct WorkerArgs
{
	Oid			dbid;
	Oid			connect_as;		/* role to connect as: the owner */
	TransactionId start_xid;	/* the transaction that starts us */
	int64		id;				/* migrate.migrations.id */
	char		name[MIGRATE_MAX_NAME_LEN + 1];
} WorkerArgs;

StaticAssertDecl(sizeof(WorkerArgs) <= BGW_EXTRALEN, "WorkerArgs must fit bgw_extra");

static pid_t launch_worker_locked(Migration *m);

/* How long migrate_launch_worker waits for a new worker to claim its lock */
#define WORKER_CLAIM_TIMEOUT_MS 60000

/*
 * migrate_error_is_retryable
 *		Is this the error of a batch that could not get its locks in time (or
 *		lost a race), which is worth trying again after a pause?
 */
bool
migrate_error_is_retryable(const ErrorData *edata)
{
	return edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		edata->sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		edata->sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE;
}

/*
 * migrate_runner_locktag
 *		Fill in the advisory lock tag of migration id in database dbid.
 *
 * The fourth field keeps it apart from pg_advisory_lock()'s keys.
 */
void
migrate_runner_locktag(LOCKTAG *tag, Oid dbid, int64 id)
{
	SET_LOCKTAG_ADVISORY(*tag, dbid, (uint32) (((uint64) id) >> 32),
						 (uint32) id, MIGRATE_RUNNER_LOCK_KIND);
}

/*
 * migrate_runner_active
 *		Is some process (this one included) running migration id?
 *
 * Only looks at the lock table: taking the runner lock to test it could
 * make a starting runner's own attempt fail.
 */
bool
migrate_runner_active(int64 id)
{
	LOCKTAG		tag;

	migrate_runner_locktag(&tag, MyDatabaseId, id);
#if PG_VERSION_NUM >= 170000
	if (LockHeldByMe(&tag, ExclusiveLock, false))
#else
	if (LockHeldByMe(&tag, ExclusiveLock))
#endif
		return true;
	return migrate_runner_pid(id) != 0;
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
	Oid			types[3] = {OIDOID, OIDOID, OIDOID};
	Datum		values[3];
	bool		isnull;

	int			pid = 0;

	values[0] = ObjectIdGetDatum(MyDatabaseId);
	values[1] = ObjectIdGetDatum((Oid) (((uint64) id) >> 32));
	values[2] = ObjectIdGetDatum((Oid) (uint32) id);
	/* a connection of its own: callers poll this in loops */
	SPI_connect();
	migrate_catalog_exec(psprintf("SELECT pid FROM pg_catalog.pg_locks"
								  " WHERE locktype OPERATOR(pg_catalog.=) 'advisory'"
								  " AND granted AND mode OPERATOR(pg_catalog.=) 'ExclusiveLock'"
								  " AND database OPERATOR(pg_catalog.=) $1"
								  " AND classid OPERATOR(pg_catalog.=) $2"
								  " AND objid OPERATOR(pg_catalog.=) $3"
								  " AND objsubid OPERATOR(pg_catalog.=) %d",
								  MIGRATE_RUNNER_LOCK_KIND),
						 3, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
		pid = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return pid;
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

	migrate_runner_locktag(&tag, MyDatabaseId, id);
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

	migrate_runner_locktag(&tag, MyDatabaseId, id);
#if PG_VERSION_NUM >= 170000
	if (LockHeldByMe(&tag, ExclusiveLock, false))
#else
	if (LockHeldByMe(&tag, ExclusiveLock))
#endif
		LockRelease(&tag, ExclusiveLock, true);
}

/*
 * migrate_runner_release
 *		Stop being the runner of m: clear its worker_pid if it is ours and
 *		release the runner lock.
 *
 * Called in the runner's last transaction, with m's row locked, before
 * that transaction commits.  Whoever decides next whether m needs a new
 * runner must first get the row lock, so it finds either us still running
 * or no runner at all, never a runner on its way out.
 */
void
migrate_runner_release(Migration *m)
{
	if (m->worker_pid == MyProcPid)
		migrate_catalog_clear_runner(m);
	migrate_runner_unlock(m->id);
}

/* Is this worker starting the next member of its series (and about to exit)? */
static bool handing_over = false;

/*
 * count_other_workers
 *		Count migrate workers in the whole cluster, all of them (role
 *		InvalidOid) or those connected as role.  A worker handing over to the
 *		next member of its series is about to exit and does not count
 *		itself; any other worker that starts a migration (a task can) does.
 *
 * Called with the cluster-wide start lock held, so that two starts cannot
 * both see a free slot.  A worker connects as its migration's owner, so
 * pg_stat_activity.usesysid names the role whose slot it takes.
 */
static int64
count_other_workers(Oid role)
{
	Oid			types[2] = {OIDOID, BOOLOID};
	Datum		values[2] = {ObjectIdGetDatum(role), BoolGetDatum(handing_over)};
	bool		isnull;

	pgstat_clear_backend_activity_snapshot();
	migrate_catalog_exec("SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity"
						 " WHERE backend_type OPERATOR(pg_catalog.=) 'migrate worker'"
						 " AND NOT ($2 AND pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid())"
						 " AND ($1 OPERATOR(pg_catalog.=) 0"
						 " OR usesysid OPERATOR(pg_catalog.=) $1)",
						 2, types, values, NULL, SPI_OK_SELECT);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * check_worker_can_connect
 *		Error out unless a worker can connect as m's owner.
 *
 * A worker connects as the owner and as nobody else, so that the owner's
 * code, and the commit of every transaction it runs in, has exactly the
 * owner's rights.  From PostgreSQL 17 a background worker may connect as
 * a role without LOGIN; before that it cannot, and such a migration runs
 * only in the foreground, in a session of a member of the owner's role.
 */
static void
check_worker_can_connect(const Migration *m)
{
	HeapTuple	roletup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(m->owner));
	bool		canlogin;
	char	   *rolname;

	if (!HeapTupleIsValid(roletup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("owner of migration \"%s\" no longer exists", m->name),
				 errhint("Register the migration again with replace => true.")));
	canlogin = ((Form_pg_authid) GETSTRUCT(roletup))->rolcanlogin;
	rolname = pstrdup(NameStr(((Form_pg_authid) GETSTRUCT(roletup))->rolname));
	ReleaseSysCache(roletup);
#ifdef BGWORKER_BYPASS_ROLELOGINCHECK
	(void) canlogin;
	(void) rolname;
#else
	if (!canlogin)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("could not start migration \"%s\" in the background", m->name),
				 errdetail("Its owner, role \"%s\", cannot log in, and before PostgreSQL 17 a background worker can only connect as a role that can.",
						   rolname),
				 errhint("Run it in the foreground with CALL migrate_run('%s') as a member of role \"%s\", or register it as a role with LOGIN.",
						 m->name, rolname)));
#endif
}

/*
 * migrate_launch_worker
 *		Start a background worker for migration m and return its pid once it
 *		holds the migration's runner lock.
 *
 * The caller holds m's row lock and has marked m running in the current
 * transaction; the worker waits for that transaction to end before it
 * does anything.  Errors out (leaving the caller to roll back) when
 * migrate.max_workers or max_worker_processes is exhausted, or when the
 * worker dies before it claims the migration.
 */
int
migrate_launch_worker(Migration *m)
{
	LOCKTAG		start_tag;
	volatile pid_t pid = 0;

	/*
	 * Serialize starts across the cluster, so the slot count is exact.  The
	 * lock is held only until the new worker shows up, not until our
	 * transaction ends.
	 */
	SET_LOCKTAG_ADVISORY(start_tag, InvalidOid, 0, 0, MIGRATE_RUNNER_LOCK_KIND + 1);
	(void) LockAcquire(&start_tag, ExclusiveLock, true, false);
	PG_TRY();
	{
		pid = launch_worker_locked(m);
	}
	PG_FINALLY();
	{
		LockRelease(&start_tag, ExclusiveLock, true);
	}
	PG_END_TRY();
	return (int) pid;
}

/*
 * launch_worker_locked
 *		The work of migrate_launch_worker, with the start lock held.
 */
static pid_t
launch_worker_locked(Migration *m)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	WorkerArgs	args;
	pid_t		pid;
	BgwHandleStatus status;
	TimestampTz deadline;
	int64		others;

	check_worker_can_connect(m);
	others = count_other_workers(InvalidOid);
	if (others >= migrate_max_workers)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start migration \"%s\": all %d migrate workers are busy",
						m->name, migrate_max_workers),
				 errhint("Wait for a running migration to finish, run this one in the foreground with CALL migrate_run(), or raise migrate.max_workers.")));
	if (migrate_max_workers_per_role > 0 &&
		count_other_workers(m->owner) >= migrate_max_workers_per_role)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start migration \"%s\": role \"%s\" already has %d migrate workers",
						m->name, GetUserNameFromId(m->owner, false),
						migrate_max_workers_per_role),
				 errhint("Wait for one of its migrations to finish, run this one in the foreground with CALL migrate_run(), or raise migrate.max_workers_per_role.")));

	memset(&args, 0, sizeof(args));
	args.dbid = MyDatabaseId;
	args.connect_as = m->owner;
	args.start_xid = GetTopTransactionIdIfAny();
	args.id = m->id;
	strlcpy(args.name, m->name, sizeof(args.name));

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "migrate", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "migrate_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "migrate worker for %s", m->name);
	strlcpy(worker.bgw_type, "migrate worker", BGW_MAXLEN);
	worker.bgw_notify_pid = MyProcPid;
	memcpy(worker.bgw_extra, &args, sizeof(args));

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start migration \"%s\": no free background worker slot", m->name),
				 errdetail("All max_worker_processes slots are in use."),
				 errhint("Raise max_worker_processes, or wait for other background workers to finish.")));

	status = WaitForBackgroundWorkerStartup(handle, &pid);
	if (status != BGWH_STARTED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start migration \"%s\": its background worker did not start", m->name),
				 errhint("See the server log for the reason.")));

	/* wait until the new worker holds the runner lock */
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   WORKER_CLAIM_TIMEOUT_MS);
	while (migrate_runner_pid(m->id) != (int) pid)
	{
		if (GetBackgroundWorkerPid(handle, &pid) != BGWH_STARTED)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("could not start migration \"%s\": its background worker exited at start", m->name),
					 errhint("See the server log for the reason.")));
		if (GetCurrentTimestamp() > deadline)
		{
			TerminateBackgroundWorker(handle);
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("could not start migration \"%s\": its background worker did not report for duty", m->name)));
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return pid;
}

/* The migration a migration worker runs, for its activity; else NULL */
static const char *worker_subject = NULL;

/*
 * begin_unit
 *		Start a transaction with a snapshot and SPI, as every unit of work
 *		needs, and report "activity" (naming the worker's migration) in
 *		pg_stat_activity.query, which only members of the owner's role and
 *		pg_read_all_stats can read.
 */
static void
begin_unit(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	if (worker_subject)
		activity = psprintf("%s of \"%s\"", activity, worker_subject);
	pgstat_report_activity(STATE_RUNNING, activity);
}

/* The worker's runner; its own commits tell its load from others' */
static Runner runner;

/* Commit what begin_unit started. */
static void
end_unit(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	runner.own_xacts++;
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* Sleep up to ms milliseconds on our latch, answering interrupts. */
static void
worker_sleep(long ms)
{
	(void) WaitLatch(MyLatch,
					 WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | (ms >= 0 ? WL_TIMEOUT : 0),
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/*
 * exit_if_extension_dropped
 *		In a worker's transaction: if DROP EXTENSION migrate has committed
 *		(it waited for our last batch to end), end the transaction and exit.
 */
static void
exit_if_extension_dropped(void)
{
	if (OidIsValid(get_extension_oid("migrate", true)))
		return;
	end_unit();
	ereport(LOG,
			(errmsg("migrate: extension \"migrate\" was dropped; worker \"%s\" exits",
					MyBgworkerEntry->bgw_name)));
	proc_exit(0);
}

/*
 * worker_still_claimed
 *		Is migration id still running with this process as its worker?
 *
 * Runs its own short transaction.  With stopping, the answer is final: the
 * row is locked, and if the migration is no longer ours to run we give up
 * being its runner before the transaction commits (so a migrate_resume
 * that raced the pause either finds us still running or finds no runner).
 */
static bool
worker_still_claimed(int64 id, bool stopping)
{
	Migration  *m;
	bool		claimed;

	begin_unit("migrate: checking state");
	exit_if_extension_dropped();
	m = migrate_catalog_load_by_id(id, stopping);
	claimed = m != NULL && m->state == MIGRATE_RUNNING &&
		m->worker_pid == MyProcPid;
	if (stopping && !claimed)
	{
		if (m)
			migrate_runner_release(m);
		else
			migrate_runner_unlock(id);
	}
	end_unit();
	return claimed;
}

/*
 * worker_goes_on
 *		Between batches: is the migration still ours to run?  A cheap look
 *		first; only if it says no, the final answer with the row locked.
 */
static bool
worker_goes_on(int64 id)
{
	return worker_still_claimed(id, false) || worker_still_claimed(id, true);
}

/*
 * worker_record_failure
 *		Mark migration id failed with the error's message, in a transaction
 *		of its own, unless someone else changed its state meanwhile, and
 *		stop being its runner.
 */
static void
worker_record_failure(int64 id, ErrorData *edata)
{
	Migration  *m;

	begin_unit("migrate: recording failure");
	m = migrate_catalog_load_by_id(id, true);
	if (m && m->state == MIGRATE_RUNNING &&
		m->worker_pid == MyProcPid)
		migrate_catalog_transition(m, MIGRATE_FAILED, "fail", edata->message);
	if (m)
		migrate_runner_release(m);
	else
		migrate_runner_unlock(id);
	end_unit();
}

/*
 * series_member_problem
 *		Why the series started by "starter" must not go on with m, the
 *		member pinned as "next" (NULL if it may).
 *
 * A member is pinned by id when the series starts; one that was
 * unregistered since, or registered again (replace => true keeps the id;
 * registered_at tells) after the series started at "since", is not the
 * migration the starter chose.  The starter must also still be allowed to
 * start it: the hand-over happens in the previous member's worker, which
 * must not start anything on its own authority.
 */
static char *
series_member_problem(const Migration *m, const SeriesMember *next, Oid starter,
					  TimestampTz since)
{
	char	   *who = GetUserNameFromId(starter, true);

	if (m == NULL)
		return psprintf("the series stopped: migration \"%s\" was unregistered after the series started",
						next->name);
	if (strcmp(m->name, next->name) != 0 ||
		(since != 0 && m->registered_at > since))
		return psprintf("the series stopped: migration \"%s\" was registered again after the series started",
						next->name);
	if (who == NULL)
		return psprintf("the series stopped: the role that started it no longer exists, so migration \"%s\" was not started",
						next->name);
	if (!is_member_of_role(starter, m->owner))
		return psprintf("the series stopped: role \"%s\", which started it, may no longer start migration \"%s\"",
						who, next->name);
	return NULL;
}

/*
 * stop_series
 *		Record on the finished member prev why its series went no further.
 */
static void
stop_series(int64 prev_id, const char *prev_name, Oid prev_owner, const char *why)
{
	ereport(WARNING, (errmsg("migrate: %s", why)));
	migrate_catalog_stop_series(prev_id, prev_name, prev_owner, why);
}

/*
 * start_next_in_series
 *		After member prev of a series finished, start the next member (a
 *		List of SeriesMember) that is not done yet, on behalf of the series'
 *		starter, handing it the rest of the series.
 *
 * Runs its own transactions.  A member that is gone, replaced, or no longer
 * the starter's to start ends the series, with the reason in prev's
 * last_error.  A member that cannot be started is marked failed with the
 * reason, which also ends the series.
 */
static void
start_next_in_series(int64 prev_id, const char *prev_name, Oid prev_owner,
					 List *rest, Oid starter, TimestampTz since)
{
	while (rest != NIL)
	{
		SeriesMember *next = linitial(rest);
		MemoryContext oldcxt = CurrentMemoryContext;
		volatile bool started = false;

		rest = list_delete_first(rest);
		PG_TRY();
		{
			Migration  *m;
			char	   *problem;

			begin_unit("migrate: starting next migration of a series");
			m = next->id != 0 ? migrate_catalog_load_by_id(next->id, true) :
				migrate_catalog_load(next->name, true, true);
			problem = series_member_problem(m, next, starter, since);
			if (problem)
			{
				stop_series(prev_id, prev_name, prev_owner, problem);
				started = true;
			}
			else if (!migrate_is_finished(m))
			{
				if (!migrate_runner_active(m->id))
				{
					m->series_starter = starter;
					m->series_started_at = since;
					handing_over = true;
					migrate_start_locked(m, false, rest, starter, "start", "next in series");
					handing_over = false;
				}
				started = true;
			}
			end_unit();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(oldcxt);
			handing_over = false;
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			begin_unit("migrate: recording failure");
			{
				Migration  *m = next->id != 0 ? migrate_catalog_load_by_id(next->id, true) :
					migrate_catalog_load(next->name, true, true);

				if (m && series_member_problem(m, next, starter, since) == NULL)
					migrate_catalog_transition(m, MIGRATE_FAILED, "fail",
											  edata->message);
				else
					stop_series(prev_id, prev_name, prev_owner, edata->message);
			}
			end_unit();
			return;
		}
		PG_END_TRY();
		if (started)
			return;
	}
}

/*
 * worker_rest
 *		Wait ms milliseconds between steps, looking every second whether the
 *		migration is still ours to run.  Returns false when it is not.
 */
static bool
worker_rest(int64 id, int64 ms)
{
	while (ms > 0)
	{
		long		chunk = Min(ms, 1000);

		worker_sleep(chunk);
		ms -= chunk;
		if (!worker_goes_on(id))
			return false;
	}
	return true;
}

/*
 * worker_step
 *		One step of the runner in its own transaction; returns true when the
 *		worker should exit (done, with the next member of a series started,
 *		or no longer ours to run).
 */
static bool
worker_step(const WorkerArgs *args)
{
	RunnerStep	step;

	begin_unit("migrate: reading migration");
	exit_if_extension_dropped();
	step = migrate_runner_step(&runner, false);
	end_unit();

	switch (step)
	{
		case RUNNER_DONE:
			ereport(LOG, (errmsg("migrate: migration \"%s\" %s in %s", args->name,
								 runner.summary,
								 migrate_format_duration(GetCurrentTimestamp() - runner.started))));
			if (runner.series != NIL)
				start_next_in_series(args->id, args->name, runner.owner,
									 runner.series, runner.series_starter,
									 runner.series_since);
			return true;
		case RUNNER_STOP:
			return true;
		case RUNNER_GO_ON:
		case RUNNER_RETRY:
			break;
	}
	return !worker_rest(args->id, runner.pause_ms);
}

/*
 * run_migration
 *		The worker's main loop: one step (a transaction) at a time until the
 *		migration is done, stopped by the user, or fails.
 */
static void
run_migration(const WorkerArgs *args)
{
	MemoryContext loopcxt = AllocSetContextCreate(TopMemoryContext,
												  "migrate worker loop",
												  ALLOCSET_DEFAULT_SIZES);

	if (!worker_still_claimed(args->id, true))
	{
		elog(DEBUG1, "migrate: migration \"%s\" was not claimed for this worker", args->name);
		return;
	}
	migrate_runner_init(&runner, args->id, args->name, true, loopcxt);
	ereport(LOG, (errmsg("migrate: running migration \"%s\"", args->name)));

	for (;;)
	{
		volatile bool exit_loop = false;
		ErrorData  *volatile failure = NULL;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(loopcxt);
		MemoryContextSwitchTo(loopcxt);

		/*
		 * A batch's own errors are the runner's; anything else an iteration
		 * meets, sleeps included (a query cancel in a rest), fails the
		 * migration with its message instead of killing the worker and
		 * leaving the migration orphaned.
		 */
		PG_TRY();
		{
			exit_loop = worker_step(args);
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(loopcxt);
			failure = CopyErrorData();
			EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
			pgstat_report_activity(STATE_IDLE, NULL);
		}
		PG_END_TRY();

		if (failure)
		{
			worker_record_failure(args->id, failure);
			return;
		}
		if (exit_loop)
			return;
		if (ConfigReloadPending)
			worker_sleep(0);
	}
}

/*
 * wait_for_starter
 *		Wait until the transaction that started us has ended.
 *
 * Called holding the runner lock, which is what the starter waits for.
 * The starter may also have registered the migration in the same
 * transaction, so the row is not even visible before that transaction
 * commits; if it rolls back, the worker finds nothing to run and leaves.
 */
static void
wait_for_starter(const WorkerArgs *args)
{
	if (!TransactionIdIsValid(args->start_xid))
		return;
	StartTransactionCommand();
	XactLockTableWait(args->start_xid, NULL, NULL, XLTW_None);
	CommitTransactionCommand();
}

/*
 * migrate_worker_main
 *		Entry point of a migration's background worker.
 */
void
migrate_worker_main(Datum main_arg)
{
	WorkerArgs	args;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* the owner, and only the owner: see check_worker_can_connect */
	Assert(OidIsValid(args.connect_as));
#ifdef BGWORKER_BYPASS_ROLELOGINCHECK
	BackgroundWorkerInitializeConnectionByOid(args.dbid, args.connect_as,
											  BGWORKER_BYPASS_ROLELOGINCHECK);
#else
	BackgroundWorkerInitializeConnectionByOid(args.dbid, args.connect_as, 0);
#endif

	/*
	 * Any role may read application_name in pg_stat_activity, so it does not
	 * name the migration; the activity does, and only the owner's members
	 * and pg_read_all_stats see that.
	 */
	SetConfigOption("application_name", "migrate worker", PGC_USERSET, PGC_S_SESSION);
	pgstat_report_appname("migrate worker");

	/*
	 * Each batch commits its cursor with its data, so batches lost to a
	 * crash before their commit reached disk are simply done again: the
	 * worker need not wait for WAL flushes.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION);

	/* each batch commits as the owner, the only role this session has */
	migrate_set_runner_commits(true);
	worker_subject = args.name;
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("migrate: waiting to start \"%s\"", args.name));
	migrate_runner_lock(args.id);
	wait_for_starter(&args);
	run_migration(&args);
	proc_exit(0);
}

/*
 * migrate_recovery_main
 *		Entry point of the worker the launcher starts in each database after
 *		a server start: restart every migration left "running" there.
 */
void
migrate_recovery_main(Datum main_arg)
{
	Oid			dbid = DatumGetObjectId(main_arg);
	List	   *names = NIL;
	ListCell   *lc;
	MemoryContext cxt = CurrentMemoryContext;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);

	begin_unit("migrate: looking for migrations to resume");
	if (OidIsValid(get_extension_oid("migrate", true)))
		names = migrate_catalog_running_names(cxt);
	end_unit();

	foreach(lc, names)
	{
		char	   *name = lfirst(lc);

		PG_TRY();
		{
			Migration  *m;

			begin_unit("migrate: resuming a migration");
			m = migrate_catalog_load(name, true, true);
			if (m && m->state == MIGRATE_RUNNING &&
				!migrate_runner_active(m->id))
				migrate_start_locked(m, false, m->series_rest, InvalidOid, "resume",
									 "resumed after a server restart");
			end_unit();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
			begin_unit("migrate: recording failure");
			{
				Migration  *m = migrate_catalog_load(name, true, true);

				if (m && m->state == MIGRATE_RUNNING)
					migrate_catalog_transition(m, MIGRATE_FAILED, "fail",
											  psprintf("could not resume after a server restart: %s",
													   edata->message));
			}
			end_unit();
		}
		PG_END_TRY();
	}
	proc_exit(0);
}

/*
 * migrate_launcher_main
 *		Entry point of the launcher (only with shared_preload_libraries):
 *		once per server start, run a recovery worker in every database that
 *		accepts connections, then idle until shutdown.
 */
void
migrate_launcher_main(Datum main_arg)
{
	List	   *dbs = NIL;
	ListCell   *lc;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		if (db->datallowconn && !db->datistemplate)
			dbs = lappend_oid(dbs, db->oid);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();

	foreach(lc, dbs)
	{
		BackgroundWorker worker;
		BackgroundWorkerHandle *handle;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = BGW_NEVER_RESTART;
		strlcpy(worker.bgw_library_name, "migrate", BGW_MAXLEN);
		strlcpy(worker.bgw_function_name, "migrate_recovery_main", BGW_MAXLEN);
		snprintf(worker.bgw_name, BGW_MAXLEN, "migrate recovery for database %u", lfirst_oid(lc));
		strlcpy(worker.bgw_type, "migrate recovery", BGW_MAXLEN);
		worker.bgw_main_arg = ObjectIdGetDatum(lfirst_oid(lc));
		worker.bgw_notify_pid = MyProcPid;
		if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		{
			ereport(WARNING,
					(errmsg("migrate: could not start recovery worker for database %u: no free background worker slot",
							lfirst_oid(lc))));
			continue;
		}
		(void) WaitForBackgroundWorkerShutdown(handle);
	}

	for (;;)
		worker_sleep(-1L);
}

/*
 * migrate_register_launcher
 *		Register the launcher; called from _PG_init while preloading.
 */
void
migrate_register_launcher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	strlcpy(worker.bgw_library_name, "migrate", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "migrate_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "migrate launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "migrate launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}
