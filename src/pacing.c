/*-------------------------------------------------------------------------
 *
 * pacing.c
 *	  How big the next batch is, and how long a runner rests before it.
 *
 * A runner (background worker or CALL migrate_run) keeps a Pacer between
 * batches.  With adaptive sizing, the batch size follows the time batches
 * take, so that one takes about target_batch_time (a quarter of it while
 * others are at work, so that no batch holds its locks or floods the WAL
 * for long).
 *
 * How much a runner may do is decided by the harm it does, measured: the
 * transactions the rest of the server completes per second while the
 * runner works, against the same rate while it rests.  From time to time
 * (and whenever a workload appears) the runner rests for a few seconds to
 * measure that baseline; between such probes it adjusts a budget of WAL
 * bytes per second, down while the workload keeps less than 90% of its
 * baseline and up while it keeps more than 94% (smoothed over periods).
 * WAL bytes measure the runner's work whatever the cause of the harm (WAL
 * flushes, row locks, CPU or I/O), so one budget bounds them all; the cause (the most common wait of
 * the other sessions) is shown with the throttle reason.  On an idle
 * server there is no budget.  A migration's own max_wal_rate replaces the
 * automatic budget (0: none at all).  With several workers the runner
 * measures and decides for the migration as a whole (team.c): its helpers'
 * transactions count as its own, they rest while it probes, and each
 * takes its share of the budget.
 *
 * Work that completes no transactions (a long query) cannot be measured
 * that way: while other sessions are active but commit little, batches
 * take no more than busy_share of the time.  Independently of all this the
 * runner holds back while migrate.pause_all is on or a standby's replay
 * lag exceeds migrate.max_replication_lag.
 *
 * The statistics read (pacing_sample.c, from pg_stat_database) are
 * flushed by each backend at most once a second, so the runner measures
 * over windows of seconds, never over one batch.
 *
 * Everything here is a pure function of the Pacer, the samples and
 * batches it is given and the times they carry (never the clock), so that
 * test/unit/pacer_test.c can drive it with made-up workloads in
 * milliseconds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pacing.h"
#include "migrate.h"
#include "team.h"

/*
 * Other transactions per second above which the server counts as busy: a
 * monitoring loop or a trickle of application writes is not load.
 */
#define BUSY_XACTS_PER_SECOND 100.0

/* A batch this much slower per row than the recent best means contention */
#define SLOWDOWN_FACTOR 3.0

/* The recent best per-row time is forgotten by this factor per batch */
#define BEST_DECAY 1.05

/*
 * A probe: the runner rests PROBE_SETTLE_MS (so that its last batch's WAL
 * is flushed and the statistics catch up), then counts the others'
 * transactions for PROBE_COUNT_MS.  A new probe every PROBE_EVERY_MS while
 * a workload runs, which is more than BUSY_XACTS_PER_SECOND for
 * PROBE_AFTER_SAMPLES samples in a row.
 */
#define PROBE_SETTLE_MS 1000
#define PROBE_AFTER_SAMPLES 3
#define PROBE_COUNT_MS 2000
#define PROBE_EVERY_MS 60000

/*
 * A probe comes sooner, but not sooner than this, when the baseline looks
 * out of date: the workload did more while the migration worked than at
 * rest, or it keeps losing ground though the migration's budget is down to
 * LOW_BUDGET_SHARE of its pace
 */
#define PROBE_EARLY_MS 10000
#define LOW_BUDGET_SHARE 0.1

/* While it probes, the runner looks again after a sample's interval */
#define PROBE_REST_MS (PACER_SAMPLE_INTERVAL_MS + 50)

/* The budget is adjusted once per period of this length */
#define PERIOD_MS 3000

/*
 * The share of its baseline the workload keeps (smoothed over periods, as
 * one period's count is noisy), and the band around it in which the budget
 * stays as it is.  Why this target: the workload loses about the same
 * number of transactions per row changed at any pace (its loss grows with
 * the pace), while what costs it by the second whatever the pace (the
 * probes, the catalog's upkeep, the bloat of its own tables while a
 * migration goes on) grows with the migration's length.  So the least
 * total loss is at the fastest pace that keeps the workload above the
 * bound users ask for (0.85 of its rate), less a margin for the noise of
 * what is measured.
 */
#define HARM_TARGET 0.90
#define HARM_BAND 0.02

/*
 * Above the band the budget grows by RAMP_GAIN times the workload's
 * headroom per period (at most doubles); below it, it shrinks by CUT_GAIN
 * times the shortfall (at most halves).  Smoothing of the share: each
 * period counts for SHARE_WEIGHT.
 */
#define RAMP_GAIN 5.0
#define RAMP_MAX 1.0
#define CUT_GAIN 2.0
#define CUT_MAX 0.5
#define SHARE_WEIGHT 0.5

/*
 * A probe's rate within this share of the baseline before it is the same
 * workload: the two are averaged (a probe of a few seconds is noisy); one
 * further off is a new workload and replaces it.
 */
#define BASELINE_SAME 0.1

/*
 * A period in which the workload ran this much faster than its baseline,
 * with the migration at work, calls for a new probe
 */
#define BASELINE_STALE 0.05

/* The runner's own WAL rate is smoothed with this weight per batch */
#define PEAK_WEIGHT 0.2

/* Under a workload, batches aim at this share of target_batch_time */
#define BUSY_BATCH_SHARE 0.25

/* Batches of fewer rows say nothing of a slowdown */
#define SLOWDOWN_MIN_ROWS 100

/*
 * The automatic budget starts at this share of the runner's own WAL rate
 * at full speed, and never goes below MIN_SHARE of it, so that a migration
 * always finishes.
 */
#define START_SHARE 0.25
#define MIN_SHARE 0.05

/*
 * migrate_pacer_init
 *		Start pacing migration m: the first batch has m's batch size.
 */
void
migrate_pacer_init(Pacer *p, const Migration *m)
{
	memset(p, 0, sizeof(*p));
	p->size = m->batch_size;
	p->min_size = m->min_batch_size;
	p->adaptive = m->adaptive && m->target_batch_ms > 0;
	p->baseline_rate = -1;
	p->initialized = true;
}

/*
 * migrate_pacer_batch_size
 *		The size of the next batch of m.
 */
int32
migrate_pacer_batch_size(Pacer *p, const Migration *m)
{
	if (!m->adaptive || m->target_batch_ms <= 0)
		return m->batch_size;
	return Max(m->min_batch_size, Min(m->max_batch_size, p->size));
}

/*
 * others_rate
 *		Transactions per second the rest of the cluster completed from
 *		count "from" to count "to": counted in the statistics, or by the
 *		transaction ids they used if "xids".
 */
static double
others_rate(const PacerCount *from, const PacerCount *to, bool xids)
{
	double		secs = (to->at - from->at) / 1000000.0;
	int64		all = xids ? to->xids - from->xids : to->xacts - from->xacts;
	int64		own = xids ? to->own_xids - from->own_xids :
		to->own_xacts - from->own_xacts;

	if (secs <= 0)
		return 0;
	return Max(0, all - own) / secs;
}

/*
 * set_cause
 *		Remember the most common wait of the other active sessions.
 */
static void
set_cause(Pacer *p, const char *cause)
{
	strlcpy(p->cause, cause ? cause : "", sizeof(p->cause));
}

/*
 * migrate_pacer_observe
 *		Take in a look at the server (s): the others' rate since the last
 *		look, whether they are busy, what they wait on, the standbys' lag.
 */
void
migrate_pacer_observe(Pacer *p, const PacerSample *s)
{
	PacerCount	now_count;

	if (s->active > 0)
		set_cause(p, s->cause && s->cause[0] ? s->cause : "CPU");
	p->replication_lag_s = s->replication_lag_s;
	now_count.at = s->at;
	now_count.xacts = s->xacts;
	now_count.own_xacts = s->own_xacts;
	now_count.xids = s->xids;
	now_count.own_xids = s->own_xids;
	if (p->last.at != 0)
	{
		/*
		 * The faster of the two counts: transaction ids are counted at once
		 * (and also inside a long procedure that commits as it goes, which
		 * reports its commits to pg_stat_database only when it ends), but
		 * only for transactions that write.
		 */
		p->others_rate = Max(others_rate(&p->last, &now_count, false),
							 others_rate(&p->last, &now_count, true));
		p->others_busy = s->active > 0 || p->others_rate > BUSY_XACTS_PER_SECOND;
		p->busy_samples = p->others_rate > BUSY_XACTS_PER_SECOND ?
			p->busy_samples + 1 : 0;
	}
	p->last = now_count;
}

/*
 * start_period
 *		Begin a period over which the workload's rate is compared with its
 *		baseline.
 */
static void
start_period(Pacer *p)
{
	p->period = p->last;
}

/*
 * end_probe
 *		The probe's counting window is over: the workload's rate in it is
 *		the new baseline.  An idle server needs no budget; a workload that
 *		just appeared gets a cautious one.
 */
static void
end_probe(Pacer *p)
{
	double		xid_rate = others_rate(&p->probe, &p->last, true);
	double		previous = p->baseline_rate;

	p->baseline_rate = others_rate(&p->probe, &p->last, false);

	/*
	 * Transaction ids are counted the moment they are assigned, while
	 * pg_stat_database lags up to a second behind: where the workload
	 * writes, count what it writes.
	 */
	p->count_xids = xid_rate >= BUSY_XACTS_PER_SECOND &&
		xid_rate >= p->baseline_rate / 2;
	if (p->count_xids)
		p->baseline_rate = xid_rate;
	if (previous > 0 && fabs(p->baseline_rate / previous - 1) < BASELINE_SAME)
		p->baseline_rate = (p->baseline_rate + previous) / 2;
	p->baseline_at = p->last.at;
	p->probe_start = 0;
	elog(DEBUG1, "migrate pacer: probe: workload at rest %.0f/s (%s)",
		 p->baseline_rate, p->count_xids ? "xids" : "transactions");
	if (p->baseline_rate < BUSY_XACTS_PER_SECOND)
		p->wal_budget = 0;
	else if (p->wal_budget <= 0 && !p->harmless)
		p->wal_budget = START_SHARE * p->peak_wal_rate;
	start_period(p);
}

/*
 * adjust_budget
 *		A period is over: compare the workload's rate in it with its
 *		baseline and move the automatic WAL budget accordingly.
 */
static void
adjust_budget(Pacer *p)
{
	double		rate = others_rate(&p->period, &p->last, p->count_xids);

	start_period(p);
	if (p->baseline_rate < BUSY_XACTS_PER_SECOND)
	{
		/* no workload at the last probe: probe again if one appeared */
		if (rate > BUSY_XACTS_PER_SECOND)
			p->baseline_at = 0;
		return;
	}
	if (rate < BUSY_XACTS_PER_SECOND && !p->others_busy)
	{
		/* the workload has gone (no session even waits): full speed */
		p->baseline_rate = -1;
		p->baseline_at = 0;
		p->wal_budget = 0;
		p->harmless = false;
		return;
	}
	/*
	 * More than its rate at rest, while the migration works: the baseline
	 * is out of date (the workload grew), probe again
	 */
	if (rate > p->baseline_rate * (1 + BASELINE_STALE))
		p->probe_early = true;
	p->workload_share = p->workload_share <= 0 ? rate / p->baseline_rate :
		(1 - SHARE_WEIGHT) * p->workload_share + SHARE_WEIGHT * rate / p->baseline_rate;
	elog(DEBUG1, "migrate pacer: period: workload %.0f/s against %.0f/s at rest, share %.2f, budget %.0f kB/s of %.0f",
		 rate, p->baseline_rate, p->workload_share, p->wal_budget / 1024, p->peak_wal_rate / 1024);
	if (p->peak_wal_rate <= 0)
		return;
	if (p->wal_budget <= 0)
		p->wal_budget = p->peak_wal_rate;
	if (p->workload_share < HARM_TARGET - HARM_BAND)
		p->wal_budget *= Max(CUT_MAX, 1 - CUT_GAIN * (HARM_TARGET - p->workload_share));
	else if (p->workload_share > HARM_TARGET + HARM_BAND)
		p->wal_budget *= 1 + Min(RAMP_MAX, RAMP_GAIN * (p->workload_share - HARM_TARGET));
	p->wal_budget = Max(p->wal_budget, MIN_SHARE * p->peak_wal_rate);
	/* full speed does no harm: so it stays after the next probe */
	p->harmless = p->wal_budget >= p->peak_wal_rate;
	if (p->harmless)
		p->wal_budget = 0;

	/*
	 * The workload keeps losing ground though the migration barely works:
	 * its rate may have fallen by itself (another job, a checkpoint), and
	 * only a probe tells
	 */
	if (p->workload_share < HARM_TARGET - HARM_BAND &&
		p->wal_budget > 0 && p->wal_budget <= LOW_BUDGET_SHARE * p->peak_wal_rate)
		p->probe_early = true;
}

/*
 * harm_hold
 *		The automatic budget's part of migrate_pacer_hold: probe the
 *		workload's rate at rest when it is due, and adjust the budget at the
 *		end of each period.  Returns why the runner rests, or NULL.
 */
static char *
harm_hold(Pacer *p, int64 *rest_ms)
{
	TimestampTz now = p->last.at;

	if (p->probe_start != 0)
	{
		if (!p->probe_counting &&
			TimestampDifferenceExceeds(p->probe_start, now, PROBE_SETTLE_MS))
		{
			p->probe_counting = true;
			p->probe = p->last;
		}
		else if (p->probe_counting &&
				 TimestampDifferenceExceeds(p->probe.at, now, PROBE_COUNT_MS))
		{
			end_probe(p);
			return NULL;
		}
		*rest_ms = PROBE_REST_MS;
		return pstrdup("measuring the workload while the migration rests");
	}

	/*
	 * A probe is due when a workload runs and its baseline is old.  Runs:
	 * for several samples in a row, as one sample can be a burst of the
	 * runner's own (or its helpers') commits that the statistics report
	 * late, up to a second after the runner counted them.
	 */
	if (p->peak_wal_rate > 0 &&
		p->busy_samples >= PROBE_AFTER_SAMPLES &&
		(p->baseline_at == 0 ||
		 TimestampDifferenceExceeds(p->baseline_at, now, PROBE_EVERY_MS) ||
		 (p->probe_early &&
		  TimestampDifferenceExceeds(p->baseline_at, now, PROBE_EARLY_MS))))
	{
		p->probe_early = false;
		p->probe_start = now;
		p->probe_counting = false;
		*rest_ms = PROBE_REST_MS;
		return pstrdup("measuring the workload while the migration rests");
	}

	if (p->period.at != 0 &&
		TimestampDifferenceExceeds(p->period.at, now, PERIOD_MS))
		adjust_budget(p);
	return NULL;
}

/*
 * follow_hold
 *		migrate_pacer_hold for a helper worker: rest while the runner rests
 *		(it measures the workload at rest, which the helpers' batches would
 *		disturb), and take note of the runner's budget.
 */
static char *
follow_hold(Pacer *p, int64 *rest_ms)
{
	TimestampTz until;
	TimestampTz now = p->last.at;

	migrate_team_follow(p->team, &until, &p->team_budget);
	if (until <= now)
		return NULL;
	*rest_ms = Min((until - now) / 1000 + 1, 1000);
	return pstrdup("measuring the workload while the migration rests");
}

/*
 * migrate_pacer_hold
 *		Should the runner hold back before its next batch of m?  Returns
 *		the reason (for migrate_status) and sets *rest_ms, or returns NULL.
 *		Call it right after migrate_pacer_sample.
 */
char *
migrate_pacer_hold(Pacer *p, const Migration *m, int64 *rest_ms)
{
	*rest_ms = 1000;
	if (migrate_pause_all)
		return pstrdup("migrate.pause_all is on");
	if (migrate_max_replication_lag_ms > 0 &&
		p->replication_lag_s * 1000 > migrate_max_replication_lag_ms)
		return psprintf("replication lag %.1f s exceeds migrate.max_replication_lag",
						p->replication_lag_s);
	if (m->max_wal_rate < 0 && p->team && p->follows)
		return follow_hold(p, rest_ms);
	if (m->max_wal_rate < 0)
	{
		char	   *why = harm_hold(p, rest_ms);

		/* the runner decides for all the migration's workers */
		if (p->team)
			migrate_team_decide(p->team,
								why ? TimestampTzPlusMilliseconds(p->last.at, *rest_ms + PACER_SAMPLE_INTERVAL_MS) : 0,
								p->wal_budget);
		return why;
	}
	return NULL;
}

/*
 * wal_budget
 *		The WAL bytes per second m may write now, all its workers together:
 *		its own max_wal_rate, or the automatic budget (its runner's); 0 for
 *		none.
 */
static double
wal_budget(const Pacer *p, const Migration *m)
{
	if (m->max_wal_rate >= 0)
		return (double) m->max_wal_rate;
	if (p->team && p->follows)
		return p->team_budget;
	return p->wal_budget;
}

/*
 * set_reason
 *		Say why the runner rests (NULL: it does not).
 */
static void
set_reason(Pacer *p, char *reason)
{
	if (p->reason)
		pfree(p->reason);
	p->reason = reason ? MemoryContextStrdup(TopMemoryContext, reason) : NULL;
}

/*
 * migrate_pacer_next_size
 *		The size of an adaptive migration's next batch, after one of "size"
 *		rows took elapsed_us for "rows" rows, when a batch should take
 *		target_us: half way towards the size that would have taken that,
 *		at most halving or doubling, within m's min and max batch sizes.
 *		Pure arithmetic; migrate_estimate foresees the run's batches with it.
 */
int32
migrate_pacer_next_size(const struct Migration *m, int32 size, int64 rows,
						int64 elapsed_us, double target_us)
{
	double		ideal = rows * target_us / Max(elapsed_us, 1);
	double		next = (size + ideal) / 2;

	/* move smoothly: at most halve or double per batch */
	next = Max(next, size / 2.0);
	next = Min(next, size * 2.0);
	return (int32) Max(m->min_batch_size, Min((double) m->max_batch_size, next));
}

/*
 * migrate_pacer_after_batch
 *		Learn from a batch of "rows" rows that took elapsed_us and wrote
 *		wal_bytes; return how many milliseconds to rest before the next one.
 *
 * Sets p->reason when the runner rests for other sessions or a budget.
 */
int64
migrate_pacer_after_batch(Pacer *p, const Migration *m, int64 rows,
						  int64 elapsed_us, int64 wal_bytes)
{
	double		per_row;
	double		budget;
	bool		slow = false;
	bool		busy;
	bool		measured;
	int64		rest_ms = 0;

	if (rows <= 0 || elapsed_us <= 0)
		return 0;

	/* the recent best per-row time, slowly forgotten */
	per_row = (double) elapsed_us / rows;
	if (p->best_per_row_us <= 0 || per_row < p->best_per_row_us)
		p->best_per_row_us = per_row;
	else
	{
		slow = rows >= SLOWDOWN_MIN_ROWS && per_row > SLOWDOWN_FACTOR * p->best_per_row_us;
		p->best_per_row_us *= BEST_DECAY;
	}
	busy = p->others_busy || slow;

	/*
	 * The runner's own WAL rate while it works, smoothed; with several
	 * workers, the migration's (each works at about the same rate)
	 */
	if (wal_bytes > 0)
	{
		double		rate = wal_bytes * 1000000.0 / elapsed_us *
			(p->team ? migrate_team_members(p->team) : 1);

		p->peak_wal_rate = p->peak_wal_rate <= 0 ? rate :
			(1 - PEAK_WEIGHT) * p->peak_wal_rate + PEAK_WEIGHT * rate;
	}

	if (m->adaptive && m->target_batch_ms > 0)
	{
		double		target_us = m->target_batch_ms * 1000.0 * (busy ? BUSY_BATCH_SHARE : 1.0);

		p->size = migrate_pacer_next_size(m, p->size, rows, elapsed_us, target_us);
	}

	set_reason(p, NULL);

	/*
	 * A workload whose transactions are counted is paced by the budget
	 * below; only one that is not (long queries) by busy_share.
	 */
	measured = m->max_wal_rate < 0 && p->baseline_rate >= BUSY_XACTS_PER_SECOND;

	/*
	 * A batch that only slowed down (a checkpoint, the runner's own vacuum,
	 * another worker of the migration on the same cores) makes batches
	 * smaller, but is no reason to rest: only other sessions at work are
	 */
	if (p->others_busy && !measured && m->busy_share > 0 && m->busy_share < 1)
	{
		rest_ms = (int64) (elapsed_us / 1000.0 * (1.0 / m->busy_share - 1.0));
		set_reason(p, psprintf("server busy (other sessions at work): batches take %.0f%% of the time",
							   m->busy_share * 100));
	}

	budget = wal_budget(p, m);
	p->last_budget = budget;
	if (budget > 0 && wal_bytes > 0)
	{
		/* each of the migration's workers takes its share */
		double		share = budget / (p->team ? migrate_team_members(p->team) : 1);
		int64		due_ms = (int64) (wal_bytes * 1000.0 / share - elapsed_us / 1000.0);

		if (due_ms > rest_ms)
		{
			rest_ms = due_ms;
			if (m->max_wal_rate > 0)
				set_reason(p, psprintf("WAL budget: " INT64_FORMAT " bytes/s",
									   m->max_wal_rate));
			else
				set_reason(p, psprintf("server busy (workload at %.0f%% of its rate at rest, waiting on %s): WAL budget %.0f kB/s",
									   p->workload_share * 100,
									   p->cause[0] ? p->cause : "nothing",
									   budget / 1024));
		}
	}
	return rest_ms;
}

/*
 * migrate_pacer_after_vacuum
 *		A vacuum of the table by the runner took elapsed_us and wrote
 *		wal_bytes: the rest it owes the WAL budget in force at its last
 *		batch, in milliseconds (0 without a budget).
 */
int64
migrate_pacer_after_vacuum(Pacer *p, int64 elapsed_us, int64 wal_bytes)
{
	double		share;

	if (p->last_budget <= 0 || wal_bytes <= 0)
		return 0;
	share = p->last_budget / (p->team ? migrate_team_members(p->team) : 1);
	return Max(0, (int64) (wal_bytes * 1000.0 / share - elapsed_us / 1000.0));
}

/*
 * migrate_pacer_lock_failed
 *		A batch gave up on a lock: try a smaller one next.
 */
void
migrate_pacer_lock_failed(Pacer *p)
{
	if (p->adaptive)
		p->size = Max(p->min_size, p->size / 2);
}
