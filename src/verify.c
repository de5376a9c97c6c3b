/*-------------------------------------------------------------------------
 *
 * verify.c
 *	  Proving a migration done: counting the rows that fail its check
 *	  (migrate_verify, in the caller's session or in a background worker),
 *	  and the catch-up passes of a catch_up migration.
 *
 * A migration's check (check_clause, or NOT (where_clause)) holds for a row
 * in the new shape.  A verification walks the table in key order in
 * batches, as a migration does, but only reads: each batch finds its last
 * key through the key's index and counts the rows of its key range that
 * still match the where_clause and fail the check.  It runs as the owner
 * (restricted unless the transaction commits as the owner, as every batch),
 * paced like a migration: the same batch sizes, rests and
 * migrate.pause_all.
 *
 * Catch-up: when the walk of a catch_up migration reaches the end, the
 * same batch transaction resets the cursor and starts pass 1 (in the
 * compare-and-set of migrate_catalog_record_batch, so a crash resumes the
 * pass from its committed cursor).  The change statement of a catch-up
 * pass also requires the check to fail, so a row that passes it is never
 * changed again.  A pass that changes nothing ends the migration, which
 * is then verified: none of its rows failed.  After max_passes passes
 * that still changed rows, one last pass only counts the rows still
 * failing (a "counting pass"), and the migration is done with them
 * reported in failing_rows.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
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
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "verify.h"
#include "batch.h"
#include "catalog.h"
#include "keys.h"
#include "launch.h"
#include "pacing.h"
#include "statements.h"
#include "worker.h"

static bool verify_batch(VerifyWalk *w, int32 batch_size);

PGDLLEXPORT void migrate_verify_worker_main(Datum main_arg);

/*
 * migrate_counting_pass
 *		Is m in the pass after its last catch-up pass, which only counts the
 *		rows still failing its check?
 */
bool
migrate_counting_pass(const Migration *m)
{
	return m->catch_up && m->pass > m->max_passes;
}

/*
 * migrate_catch_up_next_pass
 *		m's walk (or pass) has reached the end: should another pass follow?
 *		After the walk, always; after a catch-up pass that changed rows, a
 *		further catch-up pass, or after the last one the counting pass.
 *		Reads m as loaded by the batch's transaction.
 */
bool
migrate_catch_up_next_pass(const Migration *m)
{
	if (!m->catch_up || m->relation == NULL || m->reverting)
		return false;
	if (m->pass == 0)
		return true;
	return m->pass <= m->max_passes && m->pass_changed > 0;
}

/*
 * migrate_verify_range
 *		Count the rows of m's table in (lower, upper] (lower NULL: from the
 *		first key) and those that fail the check, as m's owner, and return
 *		the keys of the first *sample-limit of them (MIGRATE_VERIFY_SAMPLE
 *		if *sample is NULL on entry; otherwise as many as *sample lacks),
 *		appended to *sample.  Reads only.  Needs SPI connected.
 */
void
migrate_verify_range(Migration *m, Oid relid, Jsonb *lower, Jsonb *upper,
					 int64 *checked, int64 *failing, Jsonb **sample)
{
	char	   *sql = migrate_build_verify_sql(m, relid, lower ? KEYS_AFTER : KEYS_FIRST);
	Oid			types[3] = {JSONBOID, JSONBOID, INT4OID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	int			have = *sample ? JB_ROOT_COUNT(*sample) : 0;
	int			nestlevel;
	bool		isnull;
	Datum		keys;

	values[0] = lower ? JsonbPGetDatum(lower) : (Datum) 0;
	nulls[0] = lower ? ' ' : 'n';
	values[1] = JsonbPGetDatum(upper);
	values[2] = Int32GetDatum(Max(MIGRATE_VERIFY_SAMPLE - have, 0));
	nestlevel = NewGUCNestLevel();
	migrate_pin_key_formats();
	migrate_run_owner_sql(m, sql, 3, types, values, nulls, true);
	AtEOXact_GUC(true, nestlevel);
	*checked = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*failing = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	keys = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	if (!isnull && JB_ROOT_COUNT(DatumGetJsonbP(keys)) > 0)
		*sample = *sample == NULL ? DatumGetJsonbPCopy(keys) :
			DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(*sample), keys));
	SPI_freetuptable(SPI_tuptable);
}

/*
 * verify_batch
 *		Check the next batch_size rows of w's walk and add what they showed
 *		to w; false when no rows were left.  The cursor and the sample are
 *		kept in w->cxt; everything else is freed.  Needs SPI connected.
 */
static bool
verify_batch(VerifyWalk *w, int32 batch_size)
{
	MemoryContext batchcxt = AllocSetContextCreate(CurrentMemoryContext,
												   "migrate verify batch",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext oldcxt = MemoryContextSwitchTo(batchcxt);
	Migration  *m = w->m;
	Oid			relid = migrate_resolve_relation(m, false);
	BatchSql   *b = migrate_build_batch_sql(m, relid, m->cursor ? KEYS_AFTER : KEYS_FIRST);
	Datum		bound;
	int64		rows;
	int64		checked = 0;
	int64		failing = 0;
	Jsonb	   *sample = w->sample;
	bool		found;

	found = migrate_find_batch_bound(m, b, batch_size, &bound, &rows);
	if (found)
	{
		Jsonb	   *upper = DatumGetJsonbPCopy(bound);

		SPI_freetuptable(SPI_tuptable);
		migrate_verify_range(m, relid, m->cursor, upper, &checked, &failing, &sample);
		MemoryContextSwitchTo(w->cxt);
		w->checked += checked;
		w->failing += failing;
		if (sample != w->sample)
			w->sample = DatumGetJsonbPCopy(JsonbPGetDatum(sample));
		m->cursor = DatumGetJsonbPCopy(JsonbPGetDatum(upper));
	}
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(batchcxt);
	return found;
}

/*
 * verify_wait
 *		In a session verifying in the foreground: wait ms milliseconds on
 *		our latch, answering interrupts.
 */
static void
verify_wait(int64 ms)
{
	if (ms <= 0)
		return;
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 (long) ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * verify_step
 *		One paced step of a verification: hold back while the pacer says so
 *		(migrate.pause_all, replication lag), else check one batch and rest
 *		as a migration would after it.  Returns false when the walk is over.
 *		Needs SPI connected.
 */
static bool
verify_step(VerifyWalk *w, Pacer *p, int64 *rest_ms)
{
	Migration  *m = w->m;
	char	   *hold;
	TimestampTz start;
	int64		before = w->checked;
	bool		more;

	*rest_ms = 0;
	if (!p->initialized)
		migrate_pacer_init(p, m);
	migrate_pacer_sample(p, 0, 0);
	hold = migrate_pacer_hold(p, m, rest_ms);
	if (hold)
		return true;
	start = GetCurrentTimestamp();
	more = verify_batch(w, migrate_pacer_batch_size(p, m));
	if (more)
		*rest_ms = m->pause_ms +
			migrate_pacer_after_batch(p, m, w->checked - before,
									  GetCurrentTimestamp() - start, 0);
	return more;
}

/* Error out unless m has a check to verify against. */
static void
check_verifiable(const Migration *m)
{
	if (m->relation == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("migration \"%s\" is a one-off task and has no rows to verify", m->name)));
	if (m->check_clause == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" has no check", m->name),
				 m->where_clause ?
				 errdetail("Its where_clause cannot serve as one: NOT (where_clause) has a subquery, names another table or calls a volatile function.") :
				 errdetail("Without a check_clause or a where_clause nothing tells a row that is migrated from one that is not."),
				 errhint("Register it again with replace => true and check_clause => '...'.")));
}

/*
 * migrate_verify_walk
 *		Verify m in the caller's transaction: walk its whole table, paced,
 *		and leave the totals in w (set up here, in the current memory
 *		context).  Each batch's statements see the rows committed when they
 *		start (READ COMMITTED), but the caller's transaction holds back
 *		vacuum's horizon until it ends.
 */
void
migrate_verify_walk(Migration *m, VerifyWalk *w)
{
	Pacer		pacer;

	check_verifiable(m);
	memset(w, 0, sizeof(*w));
	memset(&pacer, 0, sizeof(pacer));
	w->m = palloc(sizeof(Migration));
	*w->m = *m;
	w->m->cursor = NULL;
	w->cxt = CurrentMemoryContext;
	for (;;)
	{
		int64		rest_ms;

		CHECK_FOR_INTERRUPTS();
		if (!verify_step(w, &pacer, &rest_ms))
			break;
		verify_wait(rest_ms);
	}
}

/* How long a verify worker has to show in pg_stat_activity, or to exit */
#define VERIFY_SHOW_TIMEOUT_MS 60000

/*
 * wait_until_counted
 *		With the start lock held: wait until the verify worker pid (of
 *		handle) shows in pg_stat_activity connected as m's owner, so that
 *		count_other_workers counts it.  Errors out, stopping it, if it
 *		exits first or does not show in time.
 */
static void
wait_until_counted(const Migration *m, BackgroundWorkerHandle *handle, pid_t pid)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   VERIFY_SHOW_TIMEOUT_MS);

	while (!migrate_catalog_worker_visible((int) pid, "migrate verify", m->owner))
	{
		if (GetBackgroundWorkerPid(handle, &pid) != BGWH_STARTED)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("could not verify migration \"%s\" in the background: its worker exited at start", m->name),
					 errhint("See the server log for the reason.")));
		if (GetCurrentTimestamp() > deadline)
		{
			TerminateBackgroundWorker(handle);
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("could not verify migration \"%s\" in the background: its worker did not connect", m->name)));
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * migrate_stop_verify_worker
 *		Before m is unregistered or replaced (its row locked by the caller):
 *		stop the worker of its background verification, if one runs, and
 *		wait (a few seconds at most) until it has left the slot counts.
 *
 * A resting verify worker would notice only at its next batch, holding a
 * slot of migrate.max_workers and of its owner's max_workers_per_role
 * meanwhile.  It is sent SIGTERM, as pg_terminate_backend would; the
 * caller may act on m, so may stop its verification.  Should the caller
 * roll back, the verification is simply over (verify_state says running
 * with no live worker, which migrate_status shows as not running).
 */
void
migrate_stop_verify_worker(const Migration *m)
{
	int			pid = migrate_catalog_verify_worker_pid(m);
	TimestampTz deadline;

	if (pid == 0)
		return;
	if (kill(pid, SIGTERM) != 0)
		return;					/* gone meanwhile */
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 5000);
	while (migrate_catalog_verify_worker_pid(m) == pid &&
		   GetCurrentTimestamp() < deadline)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * migrate_start_verify_worker
 *		Mark a background verification of m running and start its worker,
 *		which connects as m's owner and waits for the current transaction
 *		to end before it reads anything.  The caller holds m's row lock and
 *		has checked the caller's rights.
 */
void
migrate_start_verify_worker(Migration *m)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	WorkerArgs	args;
	pid_t		pid;

	check_verifiable(m);
	migrate_check_worker_can_connect(m);
	memset(&args, 0, sizeof(args));
	args.dbid = MyDatabaseId;
	args.connect_as = m->owner;
	args.id = m->id;
	strlcpy(args.name, m->name, sizeof(args.name));
	/* the worker must find verify_pid set: make this transaction have an xid */
	args.start_xid = GetTopTransactionId();

	migrate_worker_template(&worker, "migrate_verify_worker_main", "migrate verify");
	snprintf(worker.bgw_name, BGW_MAXLEN, "migrate verify for %s", m->name);
	worker.bgw_notify_pid = MyProcPid;
	memcpy(worker.bgw_extra, &args, sizeof(args));

	/* a verify worker takes a slot like a migration's, under the same limits */
	migrate_lock_worker_start(true);
	PG_TRY();
	{
		migrate_check_worker_slots(m, true);
		if (!RegisterDynamicBackgroundWorker(&worker, &handle))
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not verify migration \"%s\" in the background: no free background worker slot", m->name),
					 errdetail("All max_worker_processes slots are in use."),
					 errhint("Run migrate_verify('%s') in the foreground, or raise max_worker_processes.", m->name)));
		if (WaitForBackgroundWorkerStartup(handle, &pid) != BGWH_STARTED)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("could not verify migration \"%s\" in the background: its worker did not start", m->name),
					 errhint("See the server log for the reason.")));

		/*
		 * Keep the start lock until the new worker shows in the counts of
		 * migrate_check_worker_slots (it connects first, then waits for us),
		 * as a migration's start waits for its runner lock: else the next
		 * start would not see it and slip past the limits.
		 */
		wait_until_counted(m, handle, pid);
	}
	PG_FINALLY();
	{
		migrate_lock_worker_start(false);
	}
	PG_END_TRY();
	migrate_catalog_begin_verify(m, (int) pid);
	migrate_catalog_log_event(m->name, m->owner, "verify", "in the background");
}

/*
 * verify_worker_claimed
 *		In a transaction of the verify worker: is migration id still there,
 *		with this process as its background verification?  Returns it, or
 *		NULL.
 */
static Migration *
verify_worker_claimed(int64 id)
{
	Migration  *m;

	if (!OidIsValid(get_extension_oid("migrate", true)))
		return NULL;
	m = migrate_catalog_load_by_id(id, false);
	if (m == NULL || !m->catalog_v3)
		return NULL;
	/* verify_pid is not in the Migration struct: ask the catalog */
	return migrate_catalog_verify_running(m) ? m : NULL;
}

/*
 * migrate_verify_worker_main
 *		Entry point of a background verification's worker: connected as the
 *		migration's owner, it checks one batch per transaction, rests
 *		between batches as the migration would, and records the result (or
 *		its failure) in the catalog.
 */
void
migrate_verify_worker_main(Datum main_arg)
{
	WorkerArgs	args;
	MemoryContext walkcxt;
	VerifyWalk	w;
	Pacer		pacer;
	Jsonb	   *volatile cursor = NULL;

	migrate_worker_connect(&args, "migrate verify");

	/* only committed state: wait for the transaction that started us */
	StartTransactionCommand();
	XactLockTableWait(args.start_xid, NULL, NULL, XLTW_None);
	CommitTransactionCommand();

	walkcxt = AllocSetContextCreate(TopMemoryContext, "migrate verify walk",
									ALLOCSET_DEFAULT_SIZES);
	memset(&w, 0, sizeof(w));
	memset(&pacer, 0, sizeof(pacer));
	w.cxt = walkcxt;
	PG_TRY();
	{
		for (;;)
		{
			Migration  *m;
			int64		rest_ms = 0;
			bool		more;

			CHECK_FOR_INTERRUPTS();
			if (ConfigReloadPending)
			{
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
			}
			migrate_unit_begin(psprintf("migrate: verifying \"%s\"", args.name));
			m = verify_worker_claimed(args.id);
			if (m == NULL)
			{
				/* unregistered, replaced, or verified by another worker since */
				migrate_unit_end();
				proc_exit(0);
			}
			/* the definition as it is now, from our cursor (kept in walkcxt) */
			m->cursor = cursor;
			w.m = m;
			check_verifiable(w.m);
			more = verify_step(&w, &pacer, &rest_ms);
			cursor = m->cursor;
			if (!more)
				migrate_catalog_set_verified(w.m, &w);
			migrate_unit_end();
			if (!more)
				break;
			if (rest_ms > 0)
				migrate_worker_sleep(rest_ms);
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(walkcxt);
		edata = CopyErrorData();
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		migrate_unit_begin("migrate: recording a verification's failure");
		migrate_catalog_verify_failed(args.id, MyProcPid, edata->message);
		migrate_unit_end();
	}
	PG_END_TRY();
	proc_exit(0);
}
