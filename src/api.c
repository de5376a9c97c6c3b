/*-------------------------------------------------------------------------
 *
 * api.c
 *	  The SQL-callable functions of migrate.
 *
 * Each function checks its arguments and the caller's rights, locks the
 * migration's row FOR UPDATE (which serializes every state change of one
 * migration), does its work and returns the migration's row.  They run with
 * the caller's rights; catalog writes switch to the catalog owner and the
 * user's change runs as the migration's owner (see security.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "migrate.h"
#include "args.h"
#include "batch.h"
#include "catalog.h"
#include "catalog_ranges.h"
#include "citus.h"
#include "estimate.h"
#include "keys.h"
#include "launch.h"
#include "preview.h"
#include "ranges.h"
#include "register.h"
#include "runner.h"
#include "runner_lock.h"
#include "security.h"
#include "series.h"
#include "verify.h"

PG_FUNCTION_INFO_V1(migrate_register);
PG_FUNCTION_INFO_V1(migrate_start);
PG_FUNCTION_INFO_V1(migrate_resume);
PG_FUNCTION_INFO_V1(migrate_step);
PG_FUNCTION_INFO_V1(migrate_run);
PG_FUNCTION_INFO_V1(migrate_pause);
PG_FUNCTION_INFO_V1(migrate_cancel);
PG_FUNCTION_INFO_V1(migrate_wait);
PG_FUNCTION_INFO_V1(migrate_await);
PG_FUNCTION_INFO_V1(migrate_dry_run);
PG_FUNCTION_INFO_V1(migrate_explain);
PG_FUNCTION_INFO_V1(migrate_start_series);
PG_FUNCTION_INFO_V1(migrate_unregister);
PG_FUNCTION_INFO_V1(migrate_retry_errors);
PG_FUNCTION_INFO_V1(migrate_revert);
PG_FUNCTION_INFO_V1(migrate_forget);
PG_FUNCTION_INFO_V1(migrate_verify);
PG_FUNCTION_INFO_V1(migrate_estimate);
PG_FUNCTION_INFO_V1(migrate_split_range);

/* How long migrate_wait tolerates "running" with nobody running it */
#define WAIT_ORPHAN_GRACE_MS 30000

/* migrate_wait and migrate_await look at the migration this often */
#define WAIT_POLL_MS 100L

/* After this long migrate_wait warns that it holds back vacuum */
#define WAIT_HOLDS_WARNING_MS 10000

/*
 * return_row
 *		The row of migration id, as this function's result; it also ends the
 *		SPI connection the function opened (SPI_connect, or
 *		migrate_connect_and_load_to_manage), copying the row out of SPI's
 *		memory first.
 */
static Datum
return_row(int64 id)
{
	Datum		d = migrate_catalog_row_datum(id);

	SPI_finish();
	return d;
}

/* Error out: migration m is not in a state that allows "what". */
static void
wrong_state(const Migration *m, const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot %s migration \"%s\" because it is %s", what, m->name, migrate_state_name(m->state)),
			 hint ? errhint("%s", hint) : 0));
}

/*
 * forget_errors_check_undo
 *		Before m is replaced or unregistered: refuse if before-images of it
 *		are kept (they would be lost, or attach to a new definition), drop
 *		the rows it skipped, and stop its background verification, whose
 *		worker would otherwise hold a slot while it rests.  The caller holds
 *		m's row lock.
 */
static void
forget_errors_check_undo(const Migration *m, const char *what)
{
	if (!m->catalog_v2)
		return;
	if (migrate_catalog_has_undo(m))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot %s migration \"%s\" because it has before-images", what, m->name),
				 errdetail("Its rows in migrate.undo are what migrate_revert() would restore."),
				 errhint("Revert it with migrate_revert(), or drop them with migrate_forget() once you are sure.")));
	migrate_catalog_delete_errors(m, false);
	if (m->catalog_v3)
		migrate_stop_verify_worker(m);
}

/*
 * migrate_register(name, relation, set_clause, where_clause, row_fn, action,
 *					sql, batch_size, pause, lock_timeout, replace,
 *					target_batch_time, min_batch_size, max_batch_size,
 *					busy_share[, on_error, keep_before])
 *
 * Check a migration's definition completely and store it (register.c reads
 * and checks the arguments, catalog.c stores them); replace => true
 * redefines an existing migration that nobody runs.  The whole check runs
 * before anything is visible: any error leaves the catalog untouched.
 */
Datum
migrate_register(PG_FUNCTION_ARGS)
{
	MigrationDef def;
	Migration  *existing;
	Migration  *m;

	migrate_register_args(fcinfo, &def);
	migrate_validate_definition(&def);

	SPI_connect();
	existing = migrate_catalog_load(def.name, true, true);
	if (existing && !def.replace)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("migration \"%s\" already exists", def.name),
				 errhint("Pass replace => true to redefine it, or choose another name.")));
	if (existing)
	{
		migrate_check_may_manage(existing, "replace");
		if (migrate_runner_active(existing->id))
			wrong_state(existing, "replace", "Pause or cancel it first.");
		forget_errors_check_undo(existing, "replace");
	}
	m = migrate_catalog_load_by_id(migrate_catalog_store(&def, existing), false);
	if (m->keep_before && migrate_citus_leads(m))
		migrate_citus_refuse(m, "keep_before");
	migrate_explain_check(m);
	migrate_catalog_log_event(m->name, m->owner, existing ? "replace" : "register",
							  def.relation ? def.relation : "one-off task");
	PG_RETURN_DATUM(return_row(m->id));
}

/*
 * start_common
 *		Start or resume m (row locked, rights checked) unless it is done or
 *		already running; the work of migrate_start and migrate_resume.
 */
static void
start_common(Migration *m, bool restart, const char *event)
{
	int			runner = migrate_runner_pid(m->id);

	if (restart)
	{
		if (runner || migrate_runner_active(m->id))
			wrong_state(m, "restart", "Pause or cancel it, and wait for it to stop first.");
		if (migrate_catalog_has_undo(m))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot restart migration \"%s\" because it has before-images", m->name),
					 errdetail("A second run would change rows again, and a revert could no longer tell which image is the original."),
					 errhint("Revert it with migrate_revert(), or drop them with migrate_forget() once you are sure.")));
		migrate_start_locked(m, true, m->series_rest, InvalidOid, "restart", NULL,
							 false);
		return;
	}
	if (m->state == MIGRATE_DONE)
	{
		ereport(NOTICE,
				(errmsg("migration \"%s\" is already done", m->name),
				 errhint("Pass restart => true to run it again from the start.")));
		return;
	}
	if (m->state == MIGRATE_REVERTED)
	{
		ereport(NOTICE,
				(errmsg("migration \"%s\" was reverted", m->name),
				 errhint("Pass restart => true to run it again from the start.")));
		return;
	}
	if (runner && m->state == MIGRATE_RUNNING &&
		m->worker_pid == runner)
	{
		ereport(NOTICE,
				(errmsg("migration \"%s\" is already running", m->name)));
		return;
	}
	if (runner)
	{
		/*
		 * A runner is alive but not (or not yet) committed as this
		 * migration's runner: one that is stopping after a pause, or a
		 * worker whose start was rolled back and that waits for the row
		 * lock we hold.  Runners decide whether to go on with the row
		 * locked, so making it the committed runner keeps it going; a
		 * second runner could not start while it holds the runner lock.
		 */
		migrate_catalog_set_runner(m, runner, event);
		return;
	}
	migrate_start_locked(m, false, m->series_rest, InvalidOid, event,
						 m->state == MIGRATE_RUNNING ?
						 "taken over: no process was running it" : NULL, false);
}

/*
 * migrate_start(name, batch_size, restart, workers)
 *
 * Start or resume a migration in a background worker (with workers > 1,
 * that worker starts the others); returns at once.
 */
Datum
migrate_start(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	bool		restart;
	Migration  *m;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("restart must not be null")));
	restart = PG_GETARG_BOOL(2);

	m = migrate_connect_and_load_to_manage(name, restart ? "restart" : "start", true);
	if (!PG_ARGISNULL(1))
		migrate_catalog_set_batch_size(m, migrate_batch_size_arg(fcinfo, 1));
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		int32		workers = migrate_workers_arg(fcinfo, 3);

		if (workers > 1 && m->relation == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a one-off task runs in one worker"),
					 errdetail("workers splits the keys of a table between workers; a task has no table.")));
		migrate_catalog_set_workers(m, workers);
	}
	start_common(m, restart,
				 m->cursor != NULL || m->state == MIGRATE_RUNNING ?
				 "resume" : "start");
	PG_RETURN_DATUM(return_row(m->id));
}

/*
 * migrate_resume(name)
 *
 * Go on with a paused migration from its cursor, in a background worker.
 */
Datum
migrate_resume(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Migration  *m;

	m = migrate_connect_and_load_to_manage(name, "resume", true);
	if (m->state != MIGRATE_PAUSED)
		wrong_state(m, "resume", "Only a paused migration can be resumed; use migrate_start() for the others.");
	start_common(m, false, "resume");
	PG_RETURN_DATUM(return_row(m->id));
}

/*
 * stop_common
 *		Move m to "paused" or "cancelled"; the runner notices after its
 *		current batch (or within a second while it sleeps).
 */
static Datum
stop_common(FunctionCallInfo fcinfo, MigrateState state, const char *verb)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Migration  *m;

	m = migrate_connect_and_load_to_manage(name, verb, true);
	if (m->state != MIGRATE_RUNNING &&
		!(state == MIGRATE_CANCELLED && m->state == MIGRATE_PAUSED))
		wrong_state(m, verb, NULL);
	migrate_catalog_transition(m, state, verb, NULL);
	PG_RETURN_DATUM(return_row(m->id));
}

/*
 * migrate_pause(name): stop after the current batch; migrate_resume goes on.
 */
Datum
migrate_pause(PG_FUNCTION_ARGS)
{
	return stop_common(fcinfo, MIGRATE_PAUSED, "pause");
}

/*
 * migrate_cancel(name): stop after the current batch; a later
 * migrate_start resumes from the cursor.
 */
Datum
migrate_cancel(PG_FUNCTION_ARGS)
{
	return stop_common(fcinfo, MIGRATE_CANCELLED, "cancel");
}

/*
 * step_locked
 *		Run one batch of m (row locked) in the current transaction.
 *
 * A registered or failed migration becomes paused (partly done) or done;
 * a paused or cancelled one keeps its state.
 */
static void
step_locked(Migration *m, int32 batch_size)
{
	BatchResult res;
	RangePick	pick;

	/* with workers > 1, the batch of the first range not done (ranges.c) */
	memset(&res, 0, sizeof(res));
	pick = migrate_ranges_pick(m, 0, true, true, batch_size);
	if (pick != PICK_SPLIT && pick != PICK_BUSY)
		migrate_run_next(m, batch_size, &res);
	if ((!res.done || m->range_id != 0) &&
		(m->state == MIGRATE_REGISTERED ||
		 m->state == MIGRATE_FAILED))
		migrate_catalog_transition(m, MIGRATE_PAUSED, NULL, NULL);
}

/*
 * migrate_step(name, batch_size)
 *
 * Run exactly one batch in the caller's transaction, without committing.
 */
Datum
migrate_step(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Migration  *m;

	m = migrate_connect_and_load_to_manage(name, "run", true);
	if (migrate_citus_leads(m))
		migrate_citus_refuse(m, "a batch in the caller's transaction");
	if (migrate_runner_active(m->id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("migration \"%s\" is being run by another process", m->name),
				 errhint("Pause it first, or let its worker do the work.")));
	if (migrate_is_finished(m))
		ereport(NOTICE,
				(errmsg("migration \"%s\" is already %s", m->name, migrate_state_name(m->state))));
	else
		step_locked(m, PG_ARGISNULL(1) ? m->batch_size : migrate_batch_size_arg(fcinfo, 1));
	PG_RETURN_DATUM(return_row(m->id));
}

/*
 * migrate_run(name, max_batches, max_duration)
 *
 * A procedure: run batches in this session, committing after each, until
 * the migration is done, paused or cancelled from elsewhere, or a limit is
 * reached (then it is left paused).  A failing batch is rolled back, the
 * migration is marked failed and the error is raised.
 */
Datum
migrate_run(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	int64		max_batches = PG_ARGISNULL(1) ? -1 : PG_GETARG_INT32(1);
	int64		max_ms = -1;
	bool		nonatomic;
	Migration  *m;
	int64		batches = 0;
	TimestampTz started = GetCurrentTimestamp();
	Runner		r;

	nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
	if (!nonatomic)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("migrate_run must be called with CALL outside a transaction block"),
				 errhint("Inside a transaction, use migrate_step() to run one batch.")));
	if (max_batches == 0 || max_batches < -1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_batches must be greater than zero")));
	if (!PG_ARGISNULL(2))
		max_ms = migrate_interval_arg_ms(fcinfo, 2, "max_duration", 1, INT64CONST(100) * 365 * MSECS_PER_DAY,
								 "1 millisecond and 100 years");

	/* the error of a failed batch must outlive SPI_finish: keep it here */
	migrate_runner_init(&r, 0, name, false, CurrentMemoryContext);
	SPI_connect_ext(SPI_OPT_NONATOMIC);

	m = migrate_catalog_load(name, true, false);
	migrate_check_may_manage(m, "run");
	r.id = m->id;
	if (migrate_is_finished(m))
	{
		ereport(NOTICE, (errmsg("migration \"%s\" is already %s", m->name,
								migrate_state_name(m->state))));
		SPI_finish();
		PG_RETURN_VOID();
	}
	if (migrate_runner_active(m->id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("migration \"%s\" is being run by another process", m->name),
				 errhint("Pause it first, or let its worker do the work.")));
	migrate_runner_lock(m->id);

	PG_TRY();
	{
		migrate_catalog_start_foreground(m, migrate_progress_total(m));
		SPI_commit();
		/* from here each batch is committed here, before the role can change */
		migrate_set_runner_commits(true);

		for (;;)
		{
			RunnerStep	step;
			bool		limit_reached;

			CHECK_FOR_INTERRUPTS();
			limit_reached = (max_batches > 0 && batches >= max_batches) ||
				(max_ms > 0 && TimestampDifferenceExceeds(started, GetCurrentTimestamp(), max_ms));
			step = migrate_runner_step(&r, limit_reached);
			migrate_runner_count_own(&r);
			SPI_commit();
			if (step == RUNNER_DONE || step == RUNNER_STOP)
				break;
			if (step == RUNNER_GO_ON && r.rows_this_step > 0)
				batches++;
			if (r.pause_ms > 0)
			{
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 r.pause_ms, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
			}
		}
	}
	PG_FINALLY();
	{
		migrate_set_runner_commits(false);
		migrate_runner_unlock(r.id);
	}
	PG_END_TRY();

	SPI_finish();
	if (r.failure)
		ReThrowError(r.failure);
	PG_RETURN_VOID();
}

/*
 * wait_is_over
 *		One look, for migrate_wait and migrate_await, at migration "name":
 *		is it done, failed, cancelled or paused with its runner stopped?
 *		Then returns true and sets *state.  Errors out when the wait cannot
 *		end well: the migration has not been started, is marked running
 *		with nobody running it for WAIT_ORPHAN_GRACE_MS (*orphan_since
 *		keeps that time between calls; start it at 0), or timeout_ms since
 *		"start" have passed, or the caller may no longer manage it.  Needs
 *		SPI connected; reads the catalog with a new snapshot.
 */
static bool
wait_is_over(const char *name, TimestampTz start, int64 timeout_ms,
			 TimestampTz *orphan_since, MigrateState *state)
{
	Migration  *m = migrate_catalog_load(name, false, false);
	bool		active;

	/* the caller may have lost the right since the last look */
	migrate_check_may_manage(m, "wait for");
	active = migrate_runner_active(m->id);
	*state = m->state;
	/* a stopped migration counts once its runner is gone too */
	if ((migrate_is_finished(m) ||
		 m->state == MIGRATE_FAILED || m->state == MIGRATE_CANCELLED ||
		 m->state == MIGRATE_PAUSED) && !active)
		return true;
	if (m->state == MIGRATE_RUNNING && !active)
	{
		if (*orphan_since == 0)
			*orphan_since = GetCurrentTimestamp();
		else if (TimestampDifferenceExceeds(*orphan_since, GetCurrentTimestamp(),
											WAIT_ORPHAN_GRACE_MS))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("migration \"%s\" is marked running but no process is running it", name),
					 errhint("Run migrate_start(%s) to resume it.", quote_literal_cstr(name))));
	}
	else
		*orphan_since = 0;
	/*
	 * A member handed over to between our two reads (the hand-over starts
	 * it and clears the series' rest in one transaction) is running by the
	 * time the series is found gone: read it again before saying so.
	 */
	if (m->state == MIGRATE_REGISTERED && !migrate_catalog_pending_in_series(name) &&
		migrate_catalog_load(name, false, false)->state == MIGRATE_REGISTERED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" has not been started", name),
				 errhint("Start it with migrate_start(%s), or wait for the series it belongs to.",
						 quote_literal_cstr(name))));
	if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), timeout_ms))
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("timed out waiting for migration \"%s\"", name),
				 errdetail("It is still %s.", migrate_state_name(m->state))));
	return false;
}

/*
 * wait_a_while
 *		Sleep WAIT_POLL_MS between two looks, or less if the latch is set.
 */
static void
wait_a_while(void)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 WAIT_POLL_MS, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * wait_timeout_arg
 *		migrate_wait's and migrate_await's timeout argument, in ms.
 */
static int64
wait_timeout_arg(FunctionCallInfo fcinfo, int argno)
{
	return migrate_interval_arg_ms(fcinfo, argno, "timeout", 0,
								   INT64CONST(100) * 365 * MSECS_PER_DAY,
								   "0 and 100 years");
}

/*
 * migrate_wait(name, timeout)
 *
 * Block until the migration is done, failed, cancelled or paused, and its
 * runner has stopped, and return that state.  Reads the catalog afresh
 * every WAIT_POLL_MS, so it needs READ COMMITTED.
 *
 * A function runs inside its statement, whose snapshot holds back the
 * xmin horizon until it returns: no row version that dies meanwhile can
 * be removed, by the migration's vacuums or by autovacuum anywhere in the
 * database.  After WAIT_HOLDS_WARNING_MS it says so, once, and points to
 * CALL migrate_await, which holds nothing while it waits.
 */
Datum
migrate_wait(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	int64		timeout_ms = wait_timeout_arg(fcinfo, 1);
	TimestampTz start = GetCurrentTimestamp();
	TimestampTz orphan_since = 0;
	bool		warned = false;
	MigrateState state;

	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("migrate_wait cannot wait inside a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("It would never see the migration change.")));

	for (;;)
	{
		bool		over;

		/* an SPI connection per poll, so that an hour of waiting costs nothing */
		SPI_connect();
		over = wait_is_over(name, start, timeout_ms, &orphan_since, &state);
		SPI_finish();
		if (over)
			break;
		if (!warned &&
			TimestampDifferenceExceeds(start, GetCurrentTimestamp(), WAIT_HOLDS_WARNING_MS))
		{
			ereport(WARNING,
					(errmsg("migrate_wait has kept vacuum from removing dead rows for %d seconds",
							WAIT_HOLDS_WARNING_MS / 1000),
					 errdetail("A statement holds its snapshot until it ends: no row version that dies while it waits can be removed, in the migration's table or any other."),
					 errhint("Wait with CALL migrate_await(%s), which commits between its checks.",
							 quote_literal_cstr(name))));
			warned = true;
		}
		wait_a_while();
	}
	PG_RETURN_TEXT_P(cstring_to_text(migrate_state_name(state)));
}

/*
 * migrate_await(name, timeout, INOUT state)
 *
 * A procedure: wait like migrate_wait, and return the state in the OUT
 * column "state", but commit after each look, so that while it waits the
 * session holds no snapshot and no transaction id and keeps nothing from
 * being vacuumed.  Must be called with CALL outside a transaction block.
 */
Datum
migrate_await(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	int64		timeout_ms = wait_timeout_arg(fcinfo, 1);
	TimestampTz start = GetCurrentTimestamp();
	TimestampTz orphan_since = 0;
	MigrateState state;
	TupleDesc	tupdesc;
	Datum		values[1];
	bool		nulls[1] = {false};

	if (!(fcinfo->context && IsA(fcinfo->context, CallContext) &&
		  !castNode(CallContext, fcinfo->context)->atomic))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("migrate_await must be called with CALL outside a transaction block"),
				 errhint("Inside a transaction, use migrate_wait().")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "migrate_await must return a row");
	/* the result is built after the commits: keep its descriptor */
	tupdesc = BlessTupleDesc(tupdesc);

	SPI_connect_ext(SPI_OPT_NONATOMIC);
	while (!wait_is_over(name, start, timeout_ms, &orphan_since, &state))
	{
		/* let go of the snapshot (and all else) before sleeping */
		SPI_commit();
		wait_a_while();
	}
	SPI_commit();
	SPI_finish();
	values[0] = CStringGetTextDatum(migrate_state_name(state));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* State shared with the dry-run callback */
typedef struct DryRunState
{
	ReturnSetInfo *rsinfo;
	MemoryContext cxt;
} DryRunState;

/* Put one (key, before, after) row into the result. */
static void
dry_run_row(void *arg, Datum key, bool key_null, Datum before, bool before_null,
			Datum after, bool after_null)
{
	DryRunState *st = arg;
	Datum		values[3] = {key, before, after};
	bool		nulls[3] = {key_null, before_null, after_null};
	MemoryContext old = MemoryContextSwitchTo(st->cxt);

	tuplestore_putvalues(st->rsinfo->setResult, st->rsinfo->setDesc, values, nulls);
	MemoryContextSwitchTo(old);
}

/*
 * migrate_dry_run(name, max_rows)
 *
 * Run the next batch, return up to max_rows changed rows with their key,
 * before and after images, and roll the batch back.
 */
Datum
migrate_dry_run(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	int32		max_rows;
	Migration  *m;
	DryRunState st;

	if (PG_ARGISNULL(1) || PG_GETARG_INT32(1) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must be greater than zero")));
	max_rows = PG_GETARG_INT32(1);

	InitMaterializedSRF(fcinfo, 0);
	st.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	st.cxt = st.rsinfo->econtext->ecxt_per_query_memory;

	m = migrate_connect_and_load_to_manage(name, "dry-run", false);
	if (migrate_citus_leads(m))
		migrate_citus_refuse(m, "a dry run");
	if (m->reverting)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("migration \"%s\" is being reverted; a dry run shows only batches of the change", m->name)));
	if (migrate_is_finished(m))
		ereport(NOTICE,
				(errmsg("migration \"%s\" is %s; there is no next batch", m->name, migrate_state_name(m->state))));
	else
		migrate_dry_run_batch(m, m->batch_size, max_rows, dry_run_row, &st);
	SPI_finish();
	return (Datum) 0;
}

/* Put one plan line into the result. */
static void
explain_line(void *arg, const char *line)
{
	DryRunState *st = arg;
	Datum		values[1];
	bool		nulls[1] = {false};
	MemoryContext old = MemoryContextSwitchTo(st->cxt);

	values[0] = CStringGetTextDatum(line);
	tuplestore_putvalues(st->rsinfo->setResult, st->rsinfo->setDesc, values, nulls);
	MemoryContextSwitchTo(old);
}

/*
 * migrate_explain(name, batch_size)
 *
 * Show the plans of the next batch's two statements: the one that finds the
 * batch's last key, and the change.  Both should be index range scans.
 */
Datum
migrate_explain(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Migration  *m;
	DryRunState st;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	st.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	st.cxt = st.rsinfo->econtext->ecxt_per_query_memory;

	m = migrate_connect_and_load_to_manage(name, "explain", false);
	migrate_explain_batch(m, PG_ARGISNULL(1) ? m->batch_size : migrate_batch_size_arg(fcinfo, 1),
						  explain_line, &st);
	SPI_finish();
	return (Datum) 0;
}

/*
 * series_names_arg
 *		The names of migrate_start_series' argument as a List, checked: one
 *		dimension, not empty, no nulls, no duplicates, at most
 *		MIGRATE_MAX_SERIES.  Linear in the number of names (a hash table
 *		finds duplicates) and interruptible.
 */
static List *
series_names_arg(FunctionCallInfo fcinfo)
{
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	List	   *names = NIL;
	HASHCTL		ctl;
	HTAB	   *seen;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("names must not be null")));
	arr = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("names must be a one-dimensional array")));
	n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("names must not be empty")));
	if (n > MIGRATE_MAX_SERIES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a series may have at most %d migrations", MIGRATE_MAX_SERIES),
				 errdetail("%d names were given.", n),
				 errhint("Split the work into several series, or run migrations as one with a wider where_clause.")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &elem_nulls, &n);

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = MIGRATE_MAX_NAME_LEN + 1;
	ctl.entrysize = ctl.keysize;
	ctl.hcxt = CurrentMemoryContext;
	seen = hash_create("migrate series names", n, &ctl,
					   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	for (int i = 0; i < n; i++)
	{
		char	   *name;
		bool		found;

		CHECK_FOR_INTERRUPTS();
		if (elem_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("names must not contain nulls")));
		name = TextDatumGetCString(elems[i]);
		migrate_check_name_length(name);
		(void) hash_search(seen, name, HASH_ENTER, &found);
		if (found)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("migration \"%s\" appears twice in the series", name)));
		names = lappend(names, name);
	}
	hash_destroy(seen);
	return names;
}

/*
 * migrate_start_series(names)
 *
 * Run migrations one after another in the background: start the first that
 * is not done, and let each worker start the next when its migration is
 * done.  The series stops at a migration that fails or is cancelled.
 *
 * Every member is checked (exists, the caller may start it) and pinned by
 * id before anything starts; the series runs on behalf of the caller, and
 * each hand-over checks again that the caller may still start the next
 * member and that it is still the migration that was pinned.
 */
Datum
migrate_start_series(PG_FUNCTION_ARGS)
{
	List	   *names = series_names_arg(fcinfo);
	List	   *rest = NIL;
	Migration  *first = NULL;
	ListCell   *lc;

	SPI_connect();
	/* check every member first, so that a bad name starts nothing */
	foreach(lc, names)
	{
		Migration  *m;

		CHECK_FOR_INTERRUPTS();
		m = migrate_catalog_load(lfirst(lc), true, false);
		migrate_check_may_manage(m, "start");
		if (first == NULL && !migrate_is_finished(m))
			first = m;
		else if (first != NULL)
		{
			SeriesMember *sm = palloc(sizeof(SeriesMember));

			sm->id = m->id;
			sm->name = m->name;
			rest = lappend(rest, sm);
		}
	}

	if (first == NULL)
	{
		ereport(NOTICE, (errmsg("every migration of the series is already done")));
		SPI_finish();
		PG_RETURN_NULL();
	}
	first->series_starter = GetUserId();
	first->series_started_at = GetCurrentTimestamp();
	if (migrate_runner_active(first->id))
	{
		migrate_catalog_set_series(first, rest);
		ereport(NOTICE,
				(errmsg("migration \"%s\" is already running; the series goes on after it",
						first->name)));
	}
	else
		migrate_start_locked(first, false, rest, InvalidOid,
							 first->cursor ? "resume" : "start", "first of a series",
							 false);
	PG_RETURN_DATUM(return_row(first->id));
}

/*
 * migrate_unregister(name)
 *
 * Forget a migration that nobody is running.  Its events stay.
 */
Datum
migrate_unregister(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Migration  *m;

	m = migrate_connect_and_load_to_manage(name, "unregister", true);
	if (migrate_runner_active(m->id))
		wrong_state(m, "unregister", "Pause or cancel it first.");
	forget_errors_check_undo(m, "unregister");
	migrate_catalog_delete(m);
	migrate_catalog_log_event(m->name, m->owner, "unregister", NULL);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * migrate_retry_errors(name)
 *
 * Apply the change again to the rows the migration skipped (after the
 * cause was fixed), one row at a time, in the caller's transaction.  Rows
 * that now succeed leave migrate.errors; the others keep their row with
 * the new error.  Returns the counts.
 */
Datum
migrate_retry_errors(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Migration  *m;
	int64		retried,
				fixed,
				failing;
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	m = migrate_connect_and_load_to_manage(name, "retry", true);
	if (m->relation == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("migration \"%s\" is a one-off task and has no rows to retry", m->name)));
	if (m->reverting || m->state == MIGRATE_REVERTED)
		wrong_state(m, "retry the rows of", m->reverting ? "Its revert is not finished." :
					"Its changes were undone; restart it to run it again.");
	if (migrate_runner_active(m->id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("migration \"%s\" is being run by another process", m->name),
				 errhint("Retry its rows once it is done, paused or cancelled.")));
	migrate_retry_rows(m, &retried, &fixed, &failing);
	if (retried > 0)
		migrate_catalog_log_event(m->name, m->owner, "retry",
								  psprintf(INT64_FORMAT " rows retried, " INT64_FORMAT " fixed, " INT64_FORMAT " still failing",
										   retried, fixed, failing));
	SPI_finish();
	values[0] = Int64GetDatum(retried);
	values[1] = Int64GetDatum(fixed);
	values[2] = Int64GetDatum(failing);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/*
 * migrate_revert(name, keep_undo)
 *
 * Restore the before-images of a keep_before migration in a background
 * worker, newest first, with the same exactly-once cursor discipline as
 * the forward batches; the migration ends up "reverted".  A stopped
 * revert goes on from where it was.  Rows changed by someone else since
 * are reported in migrate.errors and left alone.
 */
Datum
migrate_revert(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	bool		keep_undo;
	Migration  *m;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("keep_undo must not be null")));
	keep_undo = PG_GETARG_BOOL(1);

	m = migrate_connect_and_load_to_manage(name, "revert", true);
	if (migrate_citus_leads(m))
		migrate_citus_refuse(m, "a revert");
	if (!m->keep_before)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" kept no before-images", m->name),
				 errhint("Only a migration registered with keep_before => true can be reverted.")));
	if (m->state == MIGRATE_REVERTED)
	{
		ereport(NOTICE,
				(errmsg("migration \"%s\" is already reverted", m->name)));
		PG_RETURN_DATUM(return_row(m->id));
	}
	if (migrate_runner_active(m->id))
	{
		if (m->reverting && m->state == MIGRATE_RUNNING)
		{
			ereport(NOTICE,
					(errmsg("migration \"%s\" is already being reverted", m->name)));
			PG_RETURN_DATUM(return_row(m->id));
		}
		wrong_state(m, "revert", "Pause or cancel it first, and wait for its worker to stop.");
	}
	if (strcmp(m->action, MIGRATE_ACTION_DELETE) == 0)
	{
		Oid			relid = migrate_resolve_relation(m, false);

		if (pg_class_aclcheck(relid, m->owner, ACL_INSERT) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for table %s", get_rel_name(relid)),
					 errdetail("Reverting a delete inserts the rows again, as the migration's owner %s, who needs the INSERT privilege.",
							   GetUserNameFromId(m->owner, false))));
	}
	migrate_catalog_begin_revert(m, keep_undo);
	migrate_start_locked(m, false, NIL, InvalidOid, "revert",
						 m->has_revert_cursor ? "resumed" : NULL, false);
	PG_RETURN_DATUM(return_row(m->id));
}

/*
 * migrate_forget(name)
 *
 * Drop the before-images of a migration, once the team is sure it will not
 * be reverted.  Returns the number of undo rows dropped.
 */
Datum
migrate_forget(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Migration  *m;
	int64		n;

	m = migrate_connect_and_load_to_manage(name, "forget", true);
	if (migrate_runner_active(m->id))
		wrong_state(m, "forget the before-images of", "Pause or cancel it first.");
	n = migrate_catalog_forget_undo(m);
	migrate_catalog_log_event(m->name, m->owner, "forget",
							  psprintf(INT64_FORMAT " before-images dropped%s", n,
									   m->reverting ? "; the unfinished revert ends here" : ""));
	if (m->reverting)
	{
		/*
		 * A stopped revert ends here, as far as it got: with its images
		 * gone it cannot go on, and going forward again would not redo the
		 * rows it restored.
		 */
		migrate_catalog_end_revert(m);
		migrate_catalog_transition(m, MIGRATE_REVERTED, "reverted",
								   psprintf("restored " INT64_FORMAT " rows; the rest of the revert was given up",
											m->restored));
	}
	SPI_finish();
	PG_RETURN_INT64(n);
}

/*
 * migrate_verify(name, background)
 *
 * Walk the migration's table in key batches, read only, paced like the
 * migration, and return how many rows were checked, how many fail the
 * check and the keys of the first few; the result is also recorded with
 * its time.  background => true starts a worker that does it and returns
 * no row at once (migrate_status shows verify_state).  The foreground
 * walk runs in the caller's transaction without locking the migration.
 */
Datum
migrate_verify(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	bool		background;
	Migration  *m;
	ReturnSetInfo *rsinfo;
	VerifyWalk	w;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	MemoryContext old;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("background must not be null")));
	background = PG_GETARG_BOOL(1);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	m = migrate_connect_and_load_to_manage(name, "verify", background);
	if (background)
	{
		if (migrate_catalog_verify_running(m))
			ereport(NOTICE,
					(errmsg("migration \"%s\" is already being verified in the background", m->name)));
		else
			migrate_start_verify_worker(m);
		SPI_finish();
		return (Datum) 0;
	}
	migrate_verify_walk(m, &w);
	migrate_catalog_set_verified(m, &w);
	migrate_catalog_log_event(m->name, m->owner, "verify",
							  psprintf(INT64_FORMAT " rows checked, " INT64_FORMAT " failing the check",
									   w.checked, w.failing));
	values[0] = Int64GetDatum(w.checked);
	values[1] = Int64GetDatum(w.failing);
	values[2] = w.sample ? JsonbPGetDatum(w.sample) :
		DirectFunctionCall1(jsonb_in, CStringGetDatum("[]"));
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	MemoryContextSwitchTo(old);
	SPI_finish();
	return (Datum) 0;
}

/*
 * migrate_estimate(name)
 *
 * What running the migration from its cursor will cost, changing nothing:
 * the rows it will change (counted on a sample), the time and WAL per row
 * (measured on its next batch, rolled back), and from them the expected
 * duration, WAL and table size.
 */
Datum
migrate_estimate(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Migration  *m;
	Estimate	e;
	TupleDesc	desc;
	Datum		values[7];
	bool		nulls[7] = {false, false, false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	m = migrate_connect_and_load_to_manage(name, "estimate", false);
	/* the coordinator's table is an empty shell: its figures would be 0 */
	if (migrate_citus_leads(m))
		migrate_citus_refuse(m, "an estimate");
	migrate_estimate_run(m, &e);
	SPI_finish();

	values[0] = Int64GetDatum(e.rows_total);
	values[1] = Int64GetDatum(e.rows_to_change);
	values[2] = Float8GetDatum(e.ms_per_row);
	nulls[2] = !e.measured;
	values[3] = Float8GetDatum(e.wal_per_row);
	nulls[3] = !e.has_wal_per_row;
	if (e.measured)
	{
		Interval   *iv = palloc0(sizeof(Interval));

		iv->time = e.expected_ms * INT64CONST(1000);
		values[4] = IntervalPGetDatum(iv);
	}
	else
		nulls[4] = true;
	values[5] = Int64GetDatum(e.expected_wal);
	nulls[5] = !e.has_wal_per_row;
	values[6] = Int64GetDatum(e.expected_size);
	nulls[6] = e.expected_size < 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/*
 * migrate_split_range(name, range)
 *
 * Split a range of a migration walked in ranges (by default the one with
 * the most rows left) half way through the rows after its cursor, in the
 * caller's transaction; returns the new range's id, or NULL if the range
 * is done or either half would keep fewer than min_batch_size rows;
 * refuses past MIGRATE_MAX_RANGES ranges.  Waits for a batch in flight on
 * the range.  Workers split ranges on their own when one runs out of
 * work; this is for the impatient, and for tests.
 */
Datum
migrate_split_range(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Migration  *m;
	MigrateRange r;
	int64		id = 0;
	int64		new_range;

	/* the migration's row is not locked: a batch may need it to finish */
	m = migrate_connect_and_load_to_manage(name, "split a range of", false);
	if (!migrate_ranges_apply(m) || m->ranges_total == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" is not walked in ranges", m->name),
				 errhint("Ranges are planned when a migration with workers > 1 takes its first batch.")));
	if (!PG_ARGISNULL(1))
	{
		id = PG_GETARG_INT64(1);
		if (!migrate_catalog_lock_range(m, id, &r))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("migration \"%s\" has no range " INT64_FORMAT, m->name, id)));
	}
	if (migrate_catalog_count_ranges(m, false) >= MIGRATE_MAX_RANGES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("migration \"%s\" already has %d ranges", m->name, MIGRATE_MAX_RANGES),
				 errdetail("Each range costs the walk a batch at least; more would slow it down rather than spread it.")));
	/* each half keeps at least a batch's worth of rows */
	new_range = migrate_ranges_split(m, id, Max(m->min_batch_size, 1), true);
	SPI_finish();
	if (new_range == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(new_range);
}
