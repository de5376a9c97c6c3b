/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  Background workers: the per-migration worker, the launcher that
 *	  restarts running migrations after a server restart, and the hand-over
 *	  to the next member of a series.
 *
 * A worker is a session of the migration's owner.  Its main loop runs the
 * runner (runner.c) one step per transaction, rests between steps looking
 * every second whether the migration is still its to run, and records a
 * failure that happens outside a batch (a query cancel in a rest) in a
 * transaction of its own.  With workers > 1 the worker that holds the
 * runner lock starts helper workers, which walk ranges only (ranges.c) and
 * stop when the migration stops; the runner waits for them before it lets
 * go of the migration.
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
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/extension.h"
#include "commands/vacuum.h"
#include "parser/parse_node.h"
#include "parser/parser.h"
#include "executor/instrument.h"
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

#include "worker.h"
#include "catalog.h"
#include "catalog_ranges.h"
#include "citus.h"
#include "keys.h"
#include "launch.h"
#include "pacing.h"
#include "ranges.h"
#include "replication.h"
#include "runner.h"
#include "runner_lock.h"
#include "security.h"
#include "series.h"
#include "team.h"

/*
 * vacuum_cost_delay (ms) of the worker's vacuums while other sessions are
 * at work: autovacuum's own default
 */
#define VACUUM_BUSY_COST_DELAY "2"

PGDLLEXPORT void migrate_worker_main(Datum main_arg);

PGDLLEXPORT void migrate_launcher_main(Datum main_arg);

PGDLLEXPORT void migrate_recovery_main(Datum main_arg);

/* A resting worker looks whether its migration is still its own this often */
#define REST_LOOK_MS 1000

/* The launcher is restarted this many seconds after a crash */
#define LAUNCHER_RESTART_SECONDS 10

/* The migration a migration worker runs, for its activity; else NULL */
static const char *worker_subject = NULL;

/*
 * A helper worker walks ranges of a migration whose runner is another
 * worker (ranges.c); the runner starts its helpers once the ranges are
 * planned, and waits for them to exit before it gives up the runner lock.
 */
static bool is_helper = false;
static BackgroundWorkerHandle *helpers[MIGRATE_MAX_WORKERS_PER_MIGRATION];
static int	nhelpers = 0;
static bool helpers_started = false;

/*
 * migrate_unit_begin
 *		In a background worker, outside a transaction: start a transaction
 *		with a snapshot and SPI, as every unit of work needs, and report
 *		"activity" (naming the worker's migration, if it runs one) in
 *		pg_stat_activity.query, which only members of the owner's role and
 *		pg_read_all_stats can read.  migrate_unit_end commits it; on an
 *		error the caller aborts the transaction (AbortCurrentTransaction
 *		also ends SPI and pops the snapshot).
 */
void
migrate_unit_begin(const char *activity)
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

/* Commit what migrate_unit_begin started, and report the worker idle. */
void
migrate_unit_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* The worker's runner; its own commits tell its load from others' */
static Runner runner;

/* A unit of the runner's work: its commits are counted as the runner's own */
#define begin_unit(activity) migrate_unit_begin(activity)

static void
end_unit(void)
{
	migrate_runner_count_own(&runner);
	migrate_unit_end();
}

/*
 * migrate_worker_sleep
 *		In a background worker: sleep up to ms milliseconds (-1: until the
 *		latch is set) on our latch, answering interrupts and reloading the
 *		configuration when asked.
 */
void
migrate_worker_sleep(long ms)
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
	if (is_helper)
	{
		/* a helper holds nothing the runner's decisions depend on */
		claimed = migrate_helper_claims(migrate_catalog_load_by_id(id, false),
										runner.runner_pid);
		end_unit();
		return claimed;
	}
	m = migrate_catalog_load_by_id(id, stopping);
	claimed = migrate_runner_claims(m);
	if (stopping && !claimed)
	{
		/* a distributed table's lead stops its shards the same way */
		if (migrate_citus_leads(m))
			migrate_citus_stop_shards(m);
		migrate_runner_release(id, m);
	}
	end_unit();
	return claimed;
}

/*
 * wait_for_helpers
 *		Wait until every helper worker this runner started has exited
 *		(asking them to, with "terminate": their batch in flight rolls
 *		back).  A helper stops at its next step once the migration is no
 *		longer running, so after a pause this waits for their last batches.
 */
static void
wait_for_helpers(bool terminate)
{
	if (nhelpers == 0)
	{
		helpers_started = false;
		return;
	}
	for (int i = 0; i < nhelpers; i++)
	{
		if (terminate)
			TerminateBackgroundWorker(helpers[i]);
		if (WaitForBackgroundWorkerShutdown(helpers[i]) == BGWH_POSTMASTER_DIED)
			proc_exit(1);
		pfree(helpers[i]);
	}
	nhelpers = 0;
	helpers_started = false;
}

/*
 * stop_helpers_at_exit
 *		However the runner exits (pg_terminate_backend included), its
 *		helpers stop too: their batch in flight rolls back.  Those that
 *		outlive it by a moment stop at their next step anyway, and
 *		migrate_wait waits for them.
 */
static void
stop_helpers_at_exit(int code, Datum arg)
{
	for (int i = 0; i < nhelpers; i++)
		TerminateBackgroundWorker(helpers[i]);
}

/*
 * worker_goes_on
 *		Between batches: is the migration still ours to run?  A cheap look
 *		first; only if it says no, the final answer with the row locked,
 *		once our helpers have stopped (so that whoever waits for the
 *		runner lock finds no batch of ours still running).
 */
static bool
worker_goes_on(int64 id)
{
	if (worker_still_claimed(id, false))
		return true;
	wait_for_helpers(false);
	return worker_still_claimed(id, true);
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
	/* the runner's helpers stop first: their batches end with it */
	wait_for_helpers(true);
	begin_unit("migrate: recording failure");
	migrate_runner_fail(id, edata->message, is_helper);
	end_unit();
}

/*
 * start_helpers
 *		The runner's walk is in ranges now: start the helper workers its
 *		migration asks for, as far as free slots allow, and record in the
 *		migration why fewer started, if they did.
 */
static void
start_helpers(int64 id)
{
	Migration  *m;
	char	   *note;

	helpers_started = true;
	begin_unit("migrate: starting helper workers");
	m = migrate_catalog_load_by_id(id, false);
	if (migrate_runner_claims(m) && m->workers > 1)
	{
		migrate_launch_helpers(m, Min(m->workers, MIGRATE_MAX_WORKERS_PER_MIGRATION) - 1,
							   helpers, &nhelpers, &note);
		migrate_catalog_set_workers_note(id, note);
		if (note)
			ereport(LOG, (errmsg("migrate: migration \"%s\" runs with %s", m->name, note)));
	}
	end_unit();
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
		long		chunk = Min(ms, REST_LOOK_MS);

		migrate_worker_sleep(chunk);
		ms -= chunk;
		if (!worker_goes_on(id))
			return false;
	}
	return true;
}

/*
 * may_vacuum
 *		May the current user (the migration's owner) VACUUM relid?  The
 *		table's owner may (and from PostgreSQL 17 a role with MAINTAIN).
 */
static bool
may_vacuum(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			relowner;

	if (!HeapTupleIsValid(tup))
		return false;
	relowner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
#ifdef ACL_MAINTAIN
	if (pg_class_aclcheck(relid, GetUserId(), ACL_MAINTAIN) == ACLCHECK_OK)
		return true;
#endif
	return has_privs_of_role(GetUserId(), relowner);
}

/*
 * worker_vacuum
 *		VACUUM the migration's table ("relation", quoted and qualified)
 *		between two batches, outside any batch transaction, as the owner;
 *		return the WAL bytes it wrote.
 *
 * The space of the row versions the batches replaced becomes reusable, so
 * the next batches' new versions fill it instead of growing the file.  It
 * frees that space in one pass over the changed pages and records it in
 * the free space map: no pass over the indexes (INDEX_CLEANUP OFF: what
 * they point to stays as a dead line pointer, which index scans and the
 * table's next autovacuum clean up), and no truncation (TRUNCATE OFF: it
 * would take an ACCESS EXCLUSIVE lock the workload waits on).  While
 * other sessions are at work it runs at autovacuum's pace
 * (VACUUM_BUSY_COST_DELAY), not at full speed.  SKIP_LOCKED: if another
 * VACUUM (autovacuum) is at work on the table, that one does the job.
 * PostgreSQL runs the VACUUM itself as the table's owner, in a
 * security-restricted operation.  An owner that may not vacuum the table
 * leaves it to autovacuum.
 */
static int64
worker_vacuum(int64 id, const char *relation, bool busy)
{
	char	   *sql = psprintf("VACUUM (SKIP_LOCKED, INDEX_CLEANUP OFF, TRUNCATE OFF) %s",
							   relation);
	char	   *cost_delay = pstrdup(GetConfigOption("vacuum_cost_delay", false, false));
	int64		wal_before = pgWalUsage.wal_bytes;
	List	   *stmts;
	ParseState *pstate;
	Oid			relid;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, psprintf("migrate: vacuum of %s for \"%s\"",
												   relation, worker_subject));
	relid = RangeVarGetRelid(migrate_relation_rangevar(relation), NoLock, true);
	if (!OidIsValid(relid) || !may_vacuum(relid))
	{
		CommitTransactionCommand();
		return 0;
	}
	stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
	pstate = make_parsestate(NULL);
	pstate->p_sourcetext = sql;
	/*
	 * VACUUM commits and starts transactions of its own, so an error in it
	 * would leave this setting behind; but such an error fails the migration
	 * and ends this worker (run_migration), so it never outlives the vacuum.
	 */
	if (busy)
		SetConfigOption("vacuum_cost_delay", VACUUM_BUSY_COST_DELAY,
						PGC_SUSET, PGC_S_SESSION);
	ExecVacuum(pstate, castNode(VacuumStmt, linitial_node(RawStmt, stmts)->stmt), true);
	CommitTransactionCommand();
	if (busy)
		SetConfigOption("vacuum_cost_delay", cost_delay, PGC_SUSET, PGC_S_SESSION);

	begin_unit("migrate: counting a vacuum");
	migrate_catalog_count_vacuum(id);
	end_unit();
	return pgWalUsage.wal_bytes - wal_before;
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

	/* stopped by a user: our helpers' last batches end before we let go */
	if (nhelpers > 0 && !worker_still_claimed(args->id, false))
		wait_for_helpers(false);
	begin_unit("migrate: reading migration");
	exit_if_extension_dropped();
	step = migrate_runner_step(&runner, false);
	end_unit();
	if (step == RUNNER_DONE || step == RUNNER_STOP)
		wait_for_helpers(false);
	else if (!is_helper && runner.ranged && !helpers_started)
		start_helpers(args->id);

	switch (step)
	{
		case RUNNER_DONE:
			ereport(LOG, (errmsg("migrate: migration \"%s\" %s in %s", args->name,
								 runner.summary,
								 migrate_format_duration(GetCurrentTimestamp() - runner.started))));
			if (runner.series != NIL)
				migrate_series_start_next(args->id, args->name, runner.owner,
										  runner.series, runner.series_starter,
										  runner.series_since);
			return true;
		case RUNNER_STOP:
			return true;
		case RUNNER_GO_ON:
		case RUNNER_RETRY:
			break;
	}
	if (runner.vacuum_due)
	{
		TimestampTz start = GetCurrentTimestamp();
		int64		wal_bytes;

		wal_bytes = worker_vacuum(args->id, runner.vacuum_due, runner.pacer.others_busy);
		runner.vacuum_us = GetCurrentTimestamp() - start;
		/* its WAL counts against the migration's budget, like a batch's */
		runner.pause_ms = Max(runner.pause_ms,
							  migrate_pacer_after_vacuum(&runner.pacer, runner.vacuum_us,
														 wal_bytes));
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
	runner.helper = is_helper;
	runner.runner_pid = args->runner_pid;
	runner.team = migrate_team_join(args->id);
	ereport(is_helper ? DEBUG1 : LOG,
			(errmsg("migrate: %s migration \"%s\"",
					is_helper ? "helping to run" : "running", args->name)));

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
			migrate_worker_sleep(0);
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
 * migrate_worker_connect
 *		In a background worker of migrate (a migration's or a background
 *		verification's): read its WorkerArgs into args, set up its signals,
 *		and connect to its database as the migration's owner and nobody
 *		else, under the application_name appname.
 */
void
migrate_worker_connect(WorkerArgs *args, const char *appname)
{
	memcpy(args, MyBgworkerEntry->bgw_extra, sizeof(*args));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* the owner, and only the owner: see check_worker_can_connect */
	Assert(OidIsValid(args->connect_as));
#ifdef BGWORKER_BYPASS_ROLELOGINCHECK
	BackgroundWorkerInitializeConnectionByOid(args->dbid, args->connect_as,
											  BGWORKER_BYPASS_ROLELOGINCHECK);
#else
	BackgroundWorkerInitializeConnectionByOid(args->dbid, args->connect_as, 0);
#endif

	/*
	 * Any role may read application_name in pg_stat_activity, so it does not
	 * name the migration; the activity does, and only the owner's members
	 * and pg_read_all_stats see that.
	 */
	SetConfigOption("application_name", appname, PGC_USERSET, PGC_S_SESSION);
	pgstat_report_appname(appname);
}

/*
 * migrate_worker_main
 *		Entry point of a migration's background worker.
 */
void
migrate_worker_main(Datum main_arg)
{
	WorkerArgs	args;

	migrate_worker_connect(&args, "migrate worker");
	migrate_citus_worker_init();

	/*
	 * Each batch commits its cursor with its data, so batches lost to a
	 * crash before their commit reached disk are simply done again: the
	 * worker need not wait for WAL flushes.  Synchronous standbys, if its
	 * synchronous_commit waits for them, are waited for where it matters
	 * (replication.c).
	 */
	migrate_replication_worker_init();
	SetConfigOption("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION);

	/*
	 * A backfill's WAL is largely full-page images of the pages it is the
	 * first to change after a checkpoint: unless the server compresses them
	 * already, compress the worker's own, with lz4 where the server has it.
	 * Other sessions are not affected.
	 *
	 * Only where the owner could set wal_compression itself (a superuser, or
	 * a role granted SET on it): PostgreSQL keeps it from other roles
	 * because the size of a compressed page image tells how well the owner's
	 * own bytes match the rest of the page, rows it may not read included
	 * (a compression oracle; the owner's code measures its WAL with
	 * pg_current_wal_insert_lsn).  Set as the owner with PGC_USERSET, it is
	 * checked as it would be in the owner's own session (in a transaction:
	 * the check reads the catalog), and quietly left off otherwise.
	 */
	if (strcmp(GetConfigOption("wal_compression", false, false), "off") == 0)
	{
		StartTransactionCommand();
		if (set_config_option("wal_compression", "lz4", PGC_USERSET, PGC_S_SESSION,
							  GUC_ACTION_SET, true, DEBUG1, false) <= 0)
			(void) set_config_option("wal_compression", "pglz", PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_SET, true, DEBUG1, false);
		CommitTransactionCommand();
	}

	/* each batch commits as the owner, the only role this session has */
	migrate_set_runner_commits(true);
	worker_subject = args.name;
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("migrate: waiting to start \"%s\"", args.name));
	if (args.helper)
	{
		/* started by the runner, from a transaction of its own, committed */
		is_helper = true;
		runner.runner_pid = args.runner_pid;
		migrate_helper_lock(args.id);
	}
	else
	{
		migrate_runner_lock(args.id);
		before_shmem_exit(stop_helpers_at_exit, (Datum) 0);
		wait_for_starter(&args);
	}
	run_migration(&args);
	wait_for_helpers(false);
	migrate_replication_wait_own();
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
									 migrate_replication_resume_detail(m->id, name), false);
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

		migrate_worker_template(&worker, "migrate_recovery_main", "migrate recovery");
		snprintf(worker.bgw_name, BGW_MAXLEN, "migrate recovery for database %u", lfirst_oid(lc));
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
		migrate_worker_sleep(-1L);
}

/*
 * migrate_register_launcher
 *		Register the launcher; called from _PG_init while preloading.
 */
void
migrate_register_launcher(void)
{
	BackgroundWorker worker;

	migrate_worker_template(&worker, "migrate_launcher_main", "migrate launcher");
	/* the launcher comes back after a crash, to resume the migrations */
	worker.bgw_restart_time = LAUNCHER_RESTART_SECONDS;
	RegisterBackgroundWorker(&worker);
}
