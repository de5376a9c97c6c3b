/*-------------------------------------------------------------------------
 *
 * runner.c
 *	  The runner: what a background worker and CALL migrate_run do for each
 *	  step of a migration, written once.
 *
 * A step runs in a transaction the caller started and commits: it reads
 * the migration, decides whether to go on (with the row locked when the
 * answer is no, giving up the runner lock before the commit), asks the
 * pacer whether to hold back, runs the next batch in a subtransaction, and
 * sorts the outcome into "go on", "retry after a back-off", "done" or
 * "stopped" (a failure recorded on the way).  The two callers keep only
 * what differs: a worker commits with CommitTransactionCommand and reports
 * to the server log, CALL migrate_run commits with SPI_commit and reports
 * to the client with NOTICEs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "runner.h"
#include "batch.h"
#include "catalog.h"
#include "citus.h"
#include "horizon.h"
#include "pacing.h"
#include "ranges.h"
#include "replication.h"
#include "runner_lock.h"
#include "team.h"

/* Who holds back the vacuum is asked again after this long */
#define VACUUM_HELD_RECHECK_MS 10000

/*
 * A vacuum is due once VACUUM could remove 1/VACUUM_DUE_FRACTION of the
 * table's rows (at least VACUUM_DUE_MIN_ROWS, runner.h), batches have taken
 * VACUUM_WORK_RATIO times as long as the last vacuum since it, and the
 * file grows by VACUUM_GROWTH_SHARE of what the versions replaced since the
 * last look take; a look needs VACUUM_LOOK_MIN_BYTES of them
 */
#define VACUUM_WORK_RATIO 3
#define VACUUM_GROWTH_SHARE 0.2
#define VACUUM_LOOK_MIN_BYTES (1024.0 * 1024)

/*
 * A batch that could not get its locks is retried after a rest that
 * doubles from LOCK_RETRY_FIRST_MS with each failure in a row, up to
 * LOCK_RETRY_MAX_MS
 */
#define LOCK_RETRY_FIRST_MS 100L
#define LOCK_RETRY_MAX_MS 5000L
#define LOCK_RETRY_MAX_DOUBLINGS 6

/* How often CALL migrate_run tells its progress */
#define RUN_NOTICE_INTERVAL_MS 5000

/* How long a worker waits when every range left is in another's batch */
#define RANGES_BUSY_WAIT_MS 100

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
 * migrate_runner_init
 *		Prepare r to run migration id ("name" for messages).  in_worker says
 *		who runs it: a background worker (reports to the log) or a session
 *		(reports to the client).  keepcxt must outlive every step's
 *		transaction: a failure and the rest of a series are copied there.
 */
void
migrate_runner_init(Runner *r, int64 id, const char *name, bool in_worker,
					MemoryContext keepcxt)
{
	memset(r, 0, sizeof(*r));
	r->id = id;
	strlcpy(r->name, name, sizeof(r->name));
	r->in_worker = in_worker;
	r->keepcxt = keepcxt;
	r->started = GetCurrentTimestamp();
	r->last_report = r->started;
	r->rows_at_start = -1;
	r->changed_seen = -1;
}

/*
 * migrate_format_duration
 *		"1h 02m 03s", "2m 05s" or "7s" for a duration in microseconds.
 */
char *
migrate_format_duration(int64 us)
{
	int64		secs = us / USECS_PER_SEC;

	if (secs >= 3600)
		return psprintf(INT64_FORMAT "h %02dm %02ds", secs / 3600,
						(int) (secs % 3600 / 60), (int) (secs % 60));
	if (secs >= 60)
		return psprintf("%dm %02ds", (int) (secs / 60), (int) (secs % 60));
	return psprintf("%ds", (int) secs);
}

/*
 * report_progress
 *		After a batch: a worker LOGs, every migrate.log_interval, the rows
 *		done, the rate since it started and the estimated time left; a
 *		session sends a NOTICE with its rows and rate every few seconds.
 */
static void
report_progress(Runner *r, const Migration *m)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		rows = migrate_progress_done(m);
	double		secs;
	double		rate;
	StringInfoData msg;

	if (r->rows_at_start < 0)
		r->rows_at_start = rows - r->rows_this_step;
	secs = (now - r->started) / 1000000.0;
	rate = secs > 0 ? (rows - r->rows_at_start) / secs : 0;
	if (!r->in_worker)
	{
		if (!TimestampDifferenceExceeds(r->last_report, now, RUN_NOTICE_INTERVAL_MS))
			return;
		r->last_report = now;
		ereport(NOTICE,
				(errmsg("migration \"%s\": " INT64_FORMAT " rows processed, " INT64_FORMAT " changed, %.0f rows/s",
						m->name, m->processed, m->changed, rate)));
		return;
	}
	if (migrate_log_interval_ms <= 0 ||
		!TimestampDifferenceExceeds(r->last_report, now, migrate_log_interval_ms))
		return;
	r->last_report = now;
	initStringInfo(&msg);
	appendStringInfo(&msg, "%s \"%s\": " INT64_FORMAT " rows %s",
					 m->reverting ? "revert of migration" : "migration",
					 m->name, rows, m->reverting ? "restored" : "processed");
	if (m->total_estimate > 0)
		appendStringInfo(&msg, " of about " INT64_FORMAT " (%.1f%%)",
						 Max(m->total_estimate, rows),
						 100.0 * rows / Max(m->total_estimate, rows));
	appendStringInfo(&msg, ", %.0f rows/s", rate);
	if (m->total_estimate > rows && rate > 0)
		appendStringInfo(&msg, ", about %s left",
						 migrate_format_duration((int64) ((m->total_estimate - rows) / rate * USECS_PER_SEC)));
	ereport(LOG, (errmsg("migrate: %s", msg.data)));
}

/* What a runner's batch needs, for migrate_try_in_subxact */
typedef struct NextWork
{
	Runner	   *r;
	Migration  *m;
	int32		size;
	BatchResult *res;
	RangePick	pick;			/* the range it walks, with workers > 1 */
} NextWork;

/*
 * next_work
 *		Pick the range to walk if the migration is walked in ranges, then
 *		run the next batch; or no batch when the ranges say to look again
 *		(a split, all busy) or, for a helper, that the walk is over.
 */
static void
next_work(void *arg)
{
	NextWork   *w = (NextWork *) arg;

	/* a shard on a Citus node: hold it in place, or stop if it left */
	migrate_citus_guard(w->m);
	w->pick = migrate_ranges_pick(w->m, w->r->range_id, !w->r->helper, false,
								  w->size);
	if (w->pick == PICK_SPLIT || w->pick == PICK_BUSY)
		return;
	/* a helper walks ranges and nothing else: no pass, revert or end */
	if (w->r->helper && w->pick != PICK_RANGE)
		return;
	migrate_run_next(w->m, w->size, w->res);
}

/*
 * migrate_runner_claims
 *		Is m (NULL if gone) running with this process as its runner?
 */
bool
migrate_runner_claims(const Migration *m)
{
	return m != NULL && m->state == MIGRATE_RUNNING &&
		m->worker_pid == MyProcPid;
}

/*
 * migrate_helper_claims
 *		May a helper worker started by runner_pid go on walking m's ranges:
 *		is m (NULL if gone) running, with that runner still there?  A
 *		helper never serves another runner.
 */
bool
migrate_helper_claims(const Migration *m, int runner_pid)
{
	return m != NULL && m->state == MIGRATE_RUNNING &&
		m->worker_pid == runner_pid &&
		migrate_runner_pid(m->id) == runner_pid;
}

/*
 * decide_to_stop
 *		The migration is not (or, with stop_requested, no longer to be)
 *		ours to run: with its row locked, decide for good.  Returns
 *		RUNNER_GO_ON if a resume raced us and it is ours after all;
 *		otherwise gives up the runner lock (pausing the migration first if
 *		stop_requested) and returns RUNNER_STOP.
 */
static RunnerStep
decide_to_stop(Runner *r, bool stop_requested)
{
	Migration  *m = migrate_catalog_load_by_id(r->id, true);

	if (migrate_runner_claims(m) && !stop_requested)
		return RUNNER_GO_ON;
	if (migrate_runner_claims(m))
		migrate_catalog_transition(m, MIGRATE_PAUSED, "pause",
								   "migrate_run reached its limit");
	migrate_runner_release(r->id, m);
	return RUNNER_STOP;
}

/*
 * migrate_runner_fail
 *		With the row of migration id locked: mark it failed with "message"
 *		if it still runs with this process as its runner, or as one of its
 *		helpers (a user may have stopped it meanwhile), and stop being its
 *		runner.
 */
void
migrate_runner_fail(int64 id, const char *message, bool helper)
{
	Migration  *m = migrate_catalog_load_by_id(id, true);

	if (helper ? (m != NULL && m->state == MIGRATE_RUNNING) :
		migrate_runner_claims(m))
		migrate_catalog_transition(m, MIGRATE_FAILED, "fail", message);
	if (!helper)
		migrate_runner_release(id, m);
}

/*
 * say_throttled
 *		Record why the migration holds back (NULL: it does not) in its row.
 *		A batch of one range does not write that row (it would serialize
 *		the workers), so in a walk in ranges the runner writes the reason
 *		when it changes.
 */
static void
say_throttled(Runner *r, const Migration *m, const char *why)
{
	if (!r->ranged)
	{
		/* a batch's own update records the reason after it */
		if (why)
			migrate_catalog_set_throttled(m, why);
		return;
	}
	if ((why == NULL) == (r->throttled_said == NULL) &&
		(why == NULL || strcmp(why, r->throttled_said) == 0))
		return;
	migrate_catalog_set_throttled(m, why);
	if (r->throttled_said)
		pfree(r->throttled_said);
	r->throttled_said = why ? MemoryContextStrdup(TopMemoryContext, why) : NULL;
}

/*
 * throttled_reason
 *		What the migration's throttled column says: why the pacer slows or
 *		holds it ("why", or NULL), and that its vacuums cannot reclaim.
 */
static char *
throttled_reason(const Runner *r, const char *why)
{
	if (r->vacuum_held == NULL)
		return why ? pstrdup(why) : NULL;
	if (why == NULL)
		return pstrdup(r->vacuum_held);
	return psprintf("%s; %s", why, r->vacuum_held);
}

/*
 * hold_back
 *		The pacer says to rest ("why") for rest_ms: record it as the
 *		migration's throttled reason, tell a session (once per reason), and
 *		look again after that.
 */
static RunnerStep
hold_back(Runner *r, const Migration *m, const char *why, int64 rest_ms)
{
	why = throttled_reason(r, why);
	/* the runner speaks for the migration; its helpers rest with it */
	if (!r->helper)
		say_throttled(r, m, why);
	if (!r->in_worker && strncmp(r->held_for, why, sizeof(r->held_for) - 1) != 0)
		ereport(NOTICE,
				(errmsg("migration \"%s\" waits: %s", m->name, why)));
	strlcpy(r->held_for, why, sizeof(r->held_for));
	r->pause_ms = rest_ms;
	return RUNNER_GO_ON;
}

/*
 * after_failure
 *		The batch failed with edata: retry it after a back-off if it could
 *		not get its locks and attempts are left; otherwise mark the
 *		migration failed (if it still runs) and stop being its runner.
 */
static RunnerStep
after_failure(Runner *r, ErrorData *edata)
{
	if (migrate_error_is_retryable(edata) &&
		++r->lock_failures < migrate_max_lock_retries)
	{
		if (r->in_worker)
			ereport(LOG,
					(errmsg("migrate: batch of migration \"%s\" will be retried (attempt %d of %d)",
							r->name, r->lock_failures + 1, migrate_max_lock_retries)));
		else
			ereport(NOTICE,
					(errmsg("migration \"%s\": %s; retrying the batch (attempt %d of %d)",
							r->name, edata->message, r->lock_failures + 1,
							migrate_max_lock_retries)));
		FreeErrorData(edata);
		/* back off: 100 ms, 200 ms, ... up to 5 s, with a smaller batch */
		r->pause_ms = Min(LOCK_RETRY_MAX_MS,
						  LOCK_RETRY_FIRST_MS << Min(r->lock_failures - 1,
													 LOCK_RETRY_MAX_DOUBLINGS));
		migrate_pacer_lock_failed(&r->pacer);
		return RUNNER_RETRY;
	}
	r->failure = edata;
	migrate_runner_fail(r->id, edata->message, r->helper);
	return RUNNER_STOP;
}

/*
 * after_done
 *		The last batch found nothing left: keep what the caller needs after
 *		the commit (a summary, the rest of a series) and stop being the
 *		runner, in this transaction (the batch's catalog update locked the
 *		row).
 */
static void
after_done(Runner *r, Migration *m)
{
	MemoryContext old;
	ListCell   *lc;

	/* "done" is seen once the synchronous standbys have it (replication.c) */
	migrate_replication_before_release();
	old = MemoryContextSwitchTo(r->keepcxt);
	if (m->state == MIGRATE_REVERTED)
		r->summary = psprintf("is reverted: " INT64_FORMAT " rows restored",
							  m->restored);
	else
		r->summary = psprintf("is done: " INT64_FORMAT " rows processed, " INT64_FORMAT " changed",
							  m->processed, m->changed);
	r->series = NIL;
	foreach(lc, m->series_rest)
	{
		SeriesMember *sm = palloc(sizeof(SeriesMember));

		sm->id = ((SeriesMember *) lfirst(lc))->id;
		sm->name = pstrdup(((SeriesMember *) lfirst(lc))->name);
		r->series = lappend(r->series, sm);
	}
	/* a series started before 0.3 runs on behalf of its members' owner */
	r->series_starter = OidIsValid(m->series_starter) ? m->series_starter : m->owner;
	r->series_since = m->series_started_at;
	r->owner = m->owner;
	MemoryContextSwitchTo(old);

	/*
	 * A worker hands over to the next member of the series in a transaction
	 * of its own, and holds on to the runner lock until it exits, so that
	 * until then migrate_wait of a later member sees the series going on.
	 * A session does not hand over: the series ends here.
	 */
	if (r->series != NIL && r->in_worker)
		return;
	if (r->series != NIL)
		migrate_catalog_end_series(m->id);
	migrate_runner_release(m->id, m);
}

/*
 * vacuum_held_back
 *		A vacuum is due but could remove less than "due" of the dead
 *		versions: say who holds the horizon back (asked at most every
 *		VACUUM_HELD_RECHECK_MS), in the server log once and in the
 *		migration's throttled reason until it lets go.
 */
static void
vacuum_held_back(Runner *r, const Migration *m)
{
	TimestampTz now = GetCurrentTimestamp();
	char	   *who;
	char	   *said;

	if (r->vacuum_held &&
		!TimestampDifferenceExceeds(r->vacuum_held_at, now, VACUUM_HELD_RECHECK_MS))
		return;
	who = migrate_horizon_holder(m->owner);
	said = psprintf("vacuum cannot remove the replaced rows: %s holds back the xmin horizon, and the table grows until it lets go",
					who ? who : "a transaction that ended since");
	if (r->vacuum_held == NULL)
		ereport(LOG,
				(errmsg("migrate: migration \"%s\" cannot vacuum %s", m->name, m->relation),
				 errdetail("%s", said)));
	else
		pfree(r->vacuum_held);
	r->vacuum_held = MemoryContextStrdup(TopMemoryContext, said);
	r->vacuum_held_at = now;
}

/*
 * note_dead_rows
 *		Count the row versions a batch (of elapsed_us) replaced, in the
 *		batch's transaction; once a VACUUM could remove 5% of the table's
 *		rows (at least 10,000), a worker vacuums the table before its next
 *		batch (the VACUUM_* constants above), so that new versions fill the space of the old ones instead
 *		of growing the file.
 *
 * Only versions no snapshot can still see are removable: while a long
 * transaction, a slot or a prepared transaction holds the horizon back, a
 * vacuum would cost time and give nothing back, so none runs and the
 * migration says who holds it (vacuum_held_back).  Vacuums take at most
 * a quarter of the time: where one is dear, the next waits for more work.  And
 * only where the file grows instead of new versions finding room in the
 * pages the old ones left.  A session in CALL migrate_run cannot run VACUUM and leaves it to
 * autovacuum; of several workers, the runner vacuums for all.
 */
static void
note_dead_rows(Runner *r, const Migration *m, int64 changed, int64 elapsed_us)
{
	int64		due;
	int64		size;
	double		window;

	if (!r->in_worker || r->helper || !m->vacuum || m->relation == NULL)
		return;
	if (r->row_bytes <= 0)
	{
		r->looked_size = migrate_catalog_table_size(m);
		r->row_bytes = (double) r->looked_size / Max(m->total_estimate, 1);
	}
	r->dead.cxt = TopMemoryContext;
	migrate_dead_versions_add(&r->dead, changed);
	r->work_us += elapsed_us;
	due = Max(VACUUM_DUE_MIN_ROWS, m->total_estimate / VACUUM_DUE_FRACTION);
	if (r->dead.rows < due || r->work_us < VACUUM_WORK_RATIO * r->vacuum_us)
		return;

	/*
	 * Only while the file grows by at least VACUUM_GROWTH_SHARE of what the
	 * versions replaced since the last look took (at the table's bytes per
	 * row when the migration began, over at least VACUUM_LOOK_MIN_BYTES of
	 * them): then the new versions go to new pages.
	 * While they find room in pages that old ones left (freed by the last
	 * vacuum, or by pruning where keys in random order revisit pages), a
	 * VACUUM would cost time and give little back: look again after the
	 * next batch, at what it did.
	 */
	window = (r->dead.rows - r->looked_rows) * r->row_bytes;
	if (window < VACUUM_LOOK_MIN_BYTES)
		return;					/* too little replaced since to tell */
	size = migrate_catalog_table_size(m);
	elog(DEBUG1, "migrate: vacuum of %s due: " INT64_FORMAT " dead rows, %.0f bytes of them since the last look, file grew by " INT64_FORMAT " bytes since, the last vacuum took " INT64_FORMAT " us",
		 m->relation, r->dead.rows, window, size - r->looked_size, r->vacuum_us);
	if (size - r->looked_size < VACUUM_GROWTH_SHARE * window)
	{
		r->looked_size = size;
		r->looked_rows = r->dead.rows;
		return;
	}
	if (OidIsValid(m->relid) &&
		migrate_dead_versions_removable(&r->dead, m->relid) < due)
	{
		vacuum_held_back(r, m);
		return;
	}
	if (r->vacuum_held)
	{
		ereport(LOG,
				(errmsg("migrate: migration \"%s\" vacuums %s again", m->name, m->relation)));
		pfree(r->vacuum_held);
		r->vacuum_held = NULL;
	}
	r->vacuum_due = MemoryContextStrdup(r->keepcxt, m->relation);
	r->looked_size = size;
	r->looked_rows = 0;
	migrate_dead_versions_reset(&r->dead);
	r->work_us = 0;
}

/*
 * migrate_runner_count_own
 *		Count the transaction about to commit, and the transaction ids it
 *		used (its own and its committed subtransactions'), as the runner's:
 *		the pacer tells the rest of the server's work from them.  Call it
 *		at the top level of the transaction, just before the commit.
 */
void
migrate_runner_count_own(Runner *r)
{
	TransactionId *children;

	int64		xids = 0;

	if (TransactionIdIsValid(GetTopTransactionIdIfAny()))
		xids = 1 + xactGetCommittedChildren(&children);
	r->own_xacts++;
	r->own_xids += xids;
	if (r->team)
		migrate_team_count(r->team, 1, xids);
}

/*
 * migrate_runner_step
 *		One step of migration r->id, in the caller's transaction (which the
 *		caller commits whatever the result).
 *
 * With stop_requested (CALL migrate_run reached its limit) the migration
 * is paused instead of run.  Returns RUNNER_GO_ON after a batch (or a rest
 * the pacer asked for), RUNNER_RETRY after a batch that could not get its
 * locks, RUNNER_DONE when nothing is left, RUNNER_STOP when the migration
 * was stopped by a user or failed (r->failure).  r->pause_ms is how long
 * to wait before the next step.
 */
RunnerStep
migrate_runner_step(Runner *r, bool stop_requested)
{
	Migration  *m;
	BatchResult res;
	ErrorData  *edata;
	TimestampTz start;
	int64		elapsed_us;
	char	   *hold;
	int64		hold_ms;
	RunnerStep	step;
	NextWork	w;
	char	   *table;

	r->pause_ms = 0;
	r->vacuum_due = NULL;
	r->failure = NULL;
	r->rows_this_step = 0;
	SPI_connect();
	m = migrate_catalog_load_by_id(r->id, false);
	/* a distributed table: the lead runs its shards on their nodes */
	if (!r->helper && migrate_citus_leads(m))
	{
		if (!stop_requested && migrate_runner_claims(m))
		{
			step = migrate_citus_lead_step(r, m);
			SPI_finish();
			return step;
		}
		migrate_citus_stop_shards(m);
	}
	if (r->helper && !migrate_helper_claims(m, r->runner_pid))
	{
		/* a helper holds nothing to give up: it just stops */
		SPI_finish();
		return RUNNER_STOP;
	}
	if (!r->helper && (stop_requested || !migrate_runner_claims(m)))
	{
		step = decide_to_stop(r, stop_requested);
		SPI_finish();
		return step;
	}
	table = m->relation;

	if (!r->pacer.initialized)
	{
		migrate_pacer_init(&r->pacer, m);
		r->pacer.team = r->team;
		r->pacer.follows = r->helper;
	}
	if (r->team)
	{
		int64		xacts,
					xids;

		/* all the migration's workers' transactions are its own */
		migrate_team_counts(r->team, &xacts, &xids);
		migrate_pacer_sample(&r->pacer, xacts, xids);
	}
	else
		migrate_pacer_sample(&r->pacer, r->own_xacts, r->own_xids);
	hold = m->relation ? migrate_pacer_hold(&r->pacer, m, &hold_ms) : NULL;
	/* the standbys, synchronous ones first, and the slots (replication.c) */
	if (hold == NULL && m->relation)
		hold = migrate_replication_hold(m->name, &hold_ms);
	if (hold)
	{
		step = hold_back(r, m, hold, hold_ms);
		SPI_finish();
		return step;
	}
	m->throttled = throttled_reason(r, r->pacer.reason);
	if (r->in_worker)
		pgstat_report_activity(STATE_RUNNING,
							   m->reverting ?
							   psprintf("migrate: revert of \"%s\", " INT64_FORMAT " rows restored",
										m->name, m->restored) :
							   psprintf("migrate: batch " INT64_FORMAT " of \"%s\"",
										m->batches + 1, m->name));

	memset(&res, 0, sizeof(res));
	m->adapted_size = r->pacer.adaptive ? migrate_pacer_batch_size(&r->pacer, m) : 0;
	start = GetCurrentTimestamp();
	w.r = r;
	w.m = m;
	w.size = migrate_pacer_batch_size(&r->pacer, m);
	w.res = &res;
	w.pick = PICK_NONE;
	/* in a worker the error goes to the log; a session gets it at the end */
	edata = migrate_try_in_subxact(next_work, &w, false, r->keepcxt, r->in_worker);
	elapsed_us = GetCurrentTimestamp() - start;
	if (edata)
	{
		step = after_failure(r, edata);
		SPI_finish();
		return step;
	}

	r->ranged = w.pick != PICK_NONE;
	if (w.pick == PICK_SPLIT || w.pick == PICK_BUSY)
	{
		/* no batch: look again, at once after a split */
		r->pause_ms = w.pick == PICK_BUSY ? RANGES_BUSY_WAIT_MS : 0;
		SPI_finish();
		return RUNNER_GO_ON;
	}
	if (r->helper && w.pick != PICK_RANGE)
	{
		/* the walk in ranges is over: the runner does the rest */
		SPI_finish();
		return RUNNER_STOP;
	}
	r->range_id = res.done ? 0 : m->range_id;
	r->lock_failures = 0;
	r->held_for[0] = '\0';
	r->rows_this_step = res.visited;
	if (!r->helper)
	{
		report_progress(r, m);
		if (m->range_id != 0)
			say_throttled(r, m, m->throttled);
	}
	m->relation = table;
	if (res.done && m->range_id == 0)
	{
		after_done(r, m);
		step = RUNNER_DONE;
	}
	else if (m->state != MIGRATE_RUNNING)
	{
		/*
		 * A pause or cancel committed while the batch ran.  The next step
		 * gives up the runner lock, in a transaction of its own: released
		 * here, before this batch commits, a migrate_wait could see the
		 * migration stopped while its last batch is still uncommitted.
		 */
		step = RUNNER_GO_ON;
	}
	else
	{
		r->pause_ms = m->pause_ms +
			migrate_pacer_after_batch(&r->pacer, m, res.visited, elapsed_us,
									  res.wal_bytes);
		/* in a walk in ranges, the rows every worker changed since */
		note_dead_rows(r, m, r->ranged && r->changed_seen >= 0 ?
					   m->changed - r->changed_seen : res.changed, elapsed_us);
		r->changed_seen = m->changed;
		step = RUNNER_GO_ON;
	}
	SPI_finish();
	return step;
}
