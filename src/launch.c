/*-------------------------------------------------------------------------
 *
 * launch.c
 *	  Starting a migration's background worker, and the helper workers its
 *	  worker starts when it walks in ranges (ranges.c).
 *
 * Starting a worker happens inside the transaction that marks the
 * migration running, with its row locked.  The worker connects as the
 * migration's owner (and only as the owner), takes the runner lock, and
 * waits for the starting transaction to end, so it only ever sees
 * committed state: if that transaction rolls back, the worker finds the
 * migration not running (or not claimed by it) and leaves quietly.  Slots
 * are counted cluster-wide (migrate.max_workers) and per owner role
 * (migrate.max_workers_per_role), under a lock so that two starts cannot
 * both take the last one.
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

#include "launch.h"
#include "catalog.h"
#include "keys.h"
#include "replication.h"
#include "runner_lock.h"
#include "worker.h"

StaticAssertDecl(sizeof(WorkerArgs) <= BGW_EXTRALEN, "WorkerArgs must fit bgw_extra");

/* How long launch_worker waits for a new worker to claim its lock */
#define WORKER_CLAIM_TIMEOUT_MS 60000

static pid_t launch_worker_locked(Migration *m, bool self_leaving);
static void check_worker_slots(const Migration *m, bool verify,
							   bool self_leaving);

/*
 * count_other_workers
 *		Count migrate workers (verify workers too) in the whole cluster,
 *		all of them (role InvalidOid) or those connected as role.  With
 *		self_leaving (a worker handing over to the next member of its
 *		series, about to exit), this process does not count itself; any
 *		other worker that starts a migration (a task can) does.
 *
 * Called with the cluster-wide start lock held, so that two starts cannot
 * both see a free slot.  A worker connects as its migration's owner, so
 * pg_stat_activity.usesysid names the role whose slot it takes.
 */
static int64
count_other_workers(Oid role, bool self_leaving)
{
	Oid			types[2] = {OIDOID, BOOLOID};
	Datum		values[2] = {ObjectIdGetDatum(role), BoolGetDatum(self_leaving)};
	bool		isnull;

	pgstat_clear_backend_activity_snapshot();
	migrate_server_read("SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity"
						" WHERE backend_type OPERATOR(pg_catalog.=) ANY ('{migrate worker,migrate verify}')"
						" AND NOT ($2 AND pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid())"
						" AND ($1 OPERATOR(pg_catalog.=) 0"
						" OR usesysid OPERATOR(pg_catalog.=) $1)",
						2, types, values, NULL);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * migrate_check_worker_can_connect
 *		Error out unless a worker can connect as m's owner.
 *
 * A worker connects as the owner and as nobody else, so that the owner's
 * code, and the commit of every transaction it runs in, has exactly the
 * owner's rights.  From PostgreSQL 17 a background worker may connect as
 * a role without LOGIN; before that it cannot, and such a migration runs
 * only in the foreground, in a session of a member of the owner's role.
 */
void
migrate_check_worker_can_connect(const Migration *m)
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
 * migrate_worker_template
 *		Fill in w for one of migrate's background workers, which connect to
 *		a database once recovery has finished, are not restarted, and run
 *		"function" of this library; bgw_name is "type" until the caller
 *		says more.
 */
void
migrate_worker_template(BackgroundWorker *w, const char *function,
						const char *type)
{
	memset(w, 0, sizeof(*w));
	w->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w->bgw_start_time = BgWorkerStart_RecoveryFinished;
	w->bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(w->bgw_library_name, "migrate", BGW_MAXLEN);
	strlcpy(w->bgw_function_name, function, BGW_MAXLEN);
	strlcpy(w->bgw_name, type, BGW_MAXLEN);
	strlcpy(w->bgw_type, type, BGW_MAXLEN);
}

/*
 * launch_worker
 *		Start a background worker for migration m and return its pid once it
 *		holds the migration's runner lock.  self_leaving: the caller is a
 *		worker about to exit, whose slot the new worker may take.
 *
 * The caller holds m's row lock and has marked m running in the current
 * transaction; the worker waits for that transaction to end before it
 * does anything.  Errors out (leaving the caller to roll back) when
 * migrate.max_workers or max_worker_processes is exhausted, or when the
 * worker dies before it claims the migration.
 */
static int
launch_worker(Migration *m, bool self_leaving)
{
	volatile pid_t pid = 0;

	/*
	 * Serialize starts across the cluster, so the slot count is exact.  The
	 * lock is held only until the new worker shows up, not until our
	 * transaction ends.
	 */
	migrate_lock_worker_start(true);
	PG_TRY();
	{
		pid = launch_worker_locked(m, self_leaving);
	}
	PG_FINALLY();
	{
		migrate_lock_worker_start(false);
	}
	PG_END_TRY();
	return (int) pid;
}

/*
 * migrate_lock_worker_start
 *		Take (lock) or release the cluster-wide lock that serializes the
 *		start of every migrate worker and verify worker, so that the slot
 *		counts of migrate_check_worker_slots are exact.  A session lock:
 *		held until released, not until the transaction ends.
 */
void
migrate_lock_worker_start(bool lock)
{
	LOCKTAG		start_tag;

	SET_LOCKTAG_ADVISORY(start_tag, InvalidOid, 0, 0, MIGRATE_START_LOCK_KIND);
	if (lock)
		(void) LockAcquire(&start_tag, ExclusiveLock, true, false);
	else
		LockRelease(&start_tag, ExclusiveLock, true);
}

/*
 * migrate_check_worker_slots
 *		Error out if one more worker for m (a verify worker if "verify")
 *		would exceed migrate.max_workers or migrate.max_workers_per_role.
 *		Call with the start lock held.
 */
void
migrate_check_worker_slots(const Migration *m, bool verify)
{
	check_worker_slots(m, verify, false);
}

/*
 * check_worker_slots
 *		The work of migrate_check_worker_slots; with self_leaving, this
 *		process is about to exit and its slot counts as free.
 */
static void
check_worker_slots(const Migration *m, bool verify, bool self_leaving)
{
	if (count_other_workers(InvalidOid, self_leaving) >= migrate_max_workers)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 verify ?
				 errmsg("could not verify migration \"%s\" in the background: all %d migrate workers are busy",
						m->name, migrate_max_workers) :
				 errmsg("could not start migration \"%s\": all %d migrate workers are busy",
						m->name, migrate_max_workers),
				 verify ?
				 errhint("Run migrate_verify() in the foreground, or wait for a worker to finish.") :
				 errhint("Wait for a running migration to finish, run this one in the foreground with CALL migrate_run(), or raise migrate.max_workers.")));
	if (migrate_max_workers_per_role > 0 &&
		count_other_workers(m->owner, self_leaving) >= migrate_max_workers_per_role)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 verify ?
				 errmsg("could not verify migration \"%s\" in the background: role \"%s\" already has %d migrate workers",
						m->name, GetUserNameFromId(m->owner, false),
						migrate_max_workers_per_role) :
				 errmsg("could not start migration \"%s\": role \"%s\" already has %d migrate workers",
						m->name, GetUserNameFromId(m->owner, false),
						migrate_max_workers_per_role),
				 verify ?
				 errhint("Run migrate_verify() in the foreground, or wait for a worker to finish.") :
				 errhint("Wait for one of its migrations to finish, run this one in the foreground with CALL migrate_run(), or raise migrate.max_workers_per_role.")));
}

/*
 * launch_worker_locked
 *		The work of launch_worker, with the start lock held.
 */
static pid_t
launch_worker_locked(Migration *m, bool self_leaving)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	WorkerArgs	args;
	pid_t		pid;
	BgwHandleStatus status;
	TimestampTz deadline;

	migrate_check_worker_can_connect(m);
	check_worker_slots(m, false, self_leaving);

	memset(&args, 0, sizeof(args));
	args.dbid = MyDatabaseId;
	args.connect_as = m->owner;
	args.start_xid = GetTopTransactionIdIfAny();
	args.id = m->id;
	strlcpy(args.name, m->name, sizeof(args.name));

	migrate_worker_template(&worker, "migrate_worker_main", "migrate worker");
	snprintf(worker.bgw_name, BGW_MAXLEN, "migrate worker for %s", m->name);
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

/*
 * launch_helper_locked
 *		Start one helper worker for m, with the start lock held, and wait
 *		until it holds its helper lock (or has already exited: it found
 *		nothing left to walk).  Returns false, with *note saying why, when a
 *		limit leaves no slot for it.
 */
static bool
launch_helper_locked(const Migration *m, BackgroundWorkerHandle **handle,
					 char **note)
{
	BackgroundWorker worker;
	WorkerArgs	args;
	pid_t		pid;
	TimestampTz deadline;
	MemoryContext old;
	bool		registered;

	if (count_other_workers(InvalidOid, false) >= migrate_max_workers)
	{
		*note = psprintf("migrate.max_workers (%d) are all busy", migrate_max_workers);
		return false;
	}
	if (migrate_max_workers_per_role > 0 &&
		count_other_workers(m->owner, false) >= migrate_max_workers_per_role)
	{
		*note = psprintf("role \"%s\" has migrate.max_workers_per_role (%d) workers",
						 GetUserNameFromId(m->owner, false), migrate_max_workers_per_role);
		return false;
	}

	memset(&args, 0, sizeof(args));
	args.dbid = MyDatabaseId;
	args.connect_as = m->owner;
	args.start_xid = InvalidTransactionId;
	args.id = m->id;
	args.helper = true;
	args.runner_pid = MyProcPid;
	strlcpy(args.name, m->name, sizeof(args.name));
	migrate_worker_template(&worker, "migrate_worker_main", "migrate worker");
	snprintf(worker.bgw_name, BGW_MAXLEN, "migrate worker for %s (helper)", m->name);
	worker.bgw_notify_pid = MyProcPid;
	memcpy(worker.bgw_extra, &args, sizeof(args));
	/* the handle outlives the transaction (and SPI moves between contexts) */
	old = MemoryContextSwitchTo(TopMemoryContext);
	registered = RegisterDynamicBackgroundWorker(&worker, handle);
	MemoryContextSwitchTo(old);
	if (!registered)
	{
		*note = pstrdup("no free background worker slot (max_worker_processes)");
		return false;
	}
	if (WaitForBackgroundWorkerStartup(*handle, &pid) != BGWH_STARTED)
		return true;			/* gone already: nothing to wait for */

	/* until it shows, the slot counts above would not see it */
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   WORKER_CLAIM_TIMEOUT_MS);
	while (migrate_helper_count(m->id, (int) pid) == 0 &&
		   GetBackgroundWorkerPid(*handle, &pid) == BGWH_STARTED &&
		   GetCurrentTimestamp() < deadline)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return true;
}

/*
 * migrate_launch_helpers
 *		Start up to n helper workers for m, which its runner (this process)
 *		runs in ranges; their handles go to handles[], in TopMemoryContext,
 *		and *started counts them.  Fewer than n is no error: *note then says
 *		why (else NULL), for migrate_status.
 *
 * Helpers connect as m's owner, like the runner, and count against
 * migrate.max_workers and migrate.max_workers_per_role; they are started
 * under the same cluster-wide start lock as every migrate worker.
 */
void
migrate_launch_helpers(const Migration *m, int n, BackgroundWorkerHandle **handles,
					   int *started, char **note)
{
	*note = NULL;
	migrate_lock_worker_start(true);
	PG_TRY();
	{
		/* counted as they start: an error part-way loses none of them */
		while (*started < n && launch_helper_locked(m, &handles[*started], note))
			(*started)++;
	}
	PG_FINALLY();
	{
		migrate_lock_worker_start(false);
	}
	PG_END_TRY();
	if (*note)
		*note = psprintf("%d of %d workers: %s", *started + 1, n + 1, *note);
}

/*
 * migrate_progress_total
 *		What migrate_status counts progress against: the table's estimated
 *		rows, the rows a revert has to restore, or 1 for a task.
 */
int64
migrate_progress_total(const Migration *m)
{
	if (m->relation == NULL)
		return 1;
	if (!m->reverting)
		return migrate_estimate_rows(migrate_resolve_relation(m, false));
	return m->restored + migrate_catalog_undo_left(m);
}

/*
 * migrate_start_locked
 *		Mark m running and hand it to a new background worker.
 *
 * The caller holds m's row lock and has checked rights and state.  With
 * restart the cursor and counters start over.  series_rest (a List of
 * SeriesMember) becomes the list of migrations to run after this one, on
 * behalf of m->series_starter (the current user if none is set).  actor is
 * the role on whose behalf m starts (InvalidOid: the current user, or in a
 * worker the owner); it is recorded as started_by and in the event.
 * self_leaving: the caller is a worker that exits once it commits (it hands
 * over to the next member of its series), so its own slot is free for the
 * new worker.  Everything happens in the caller's transaction: if it rolls
 * back, the worker leaves without doing anything.
 */
void
migrate_start_locked(Migration *m, bool restart, List *series_rest,
					 Oid actor, const char *event, const char *detail,
					 bool self_leaving)
{
	int			pid;

	/* a worker (resuming after a restart) acts for the migration's owner */
	if (!OidIsValid(actor))
		actor = MyBgworkerEntry != NULL ? m->owner : GetUserId();
	if (!OidIsValid(m->series_starter))
		m->series_starter = actor;
	if (m->series_started_at == 0)
		m->series_started_at = GetCurrentTimestamp();
	if (restart)
		migrate_catalog_forget_run(m);
	migrate_catalog_mark_started(m, restart, migrate_progress_total(m), series_rest, actor);
	migrate_replication_note_timeline(m->id);
	pid = launch_worker(m, self_leaving);
	migrate_catalog_set_runner(m, pid, NULL);
	migrate_catalog_log_event_by(m->name, m->owner, actor, event, detail);
}
