/*-------------------------------------------------------------------------
 *
 * pacer_test.c
 *	  Unit test of the pacer's decisions (src/pacing.c) against made-up
 *	  workloads, in simulated time: runs in milliseconds, outside the
 *	  server (make unitcheck).
 *
 * A simulated runner does what migrate_runner_step does: look at the server
 * (at most every 200 ms), ask whether to hold back, run a batch, and rest
 * as long as the pacer says.  A simulated workload completes "base"
 * transactions per second, less "harm" of them while a batch runs (the
 * migration at full speed would cost it that share), each 100 ms window
 * scaled by a deterministic noise of up to +/- "noise".  Each scenario
 * checks what the pacer should do: the share of its rate the workload kept
 * (over equal windows of the same workload without the migration, which
 * the simulation knows exactly), how much of the time the migration
 * worked, the budget, the probes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "migrate.h"
#include "pacing.h"

/* A batch: this long, writing this much WAL (1 MB per 100 ms) */
#define BATCH_US 50000
#define BATCH_ROWS 2000
#define BATCH_WAL (512 * 1024)

typedef struct Workload
{
	double		base;			/* transactions per second at rest */
	double		harm;			/* share of them lost while a batch runs */
	double		noise;			/* +/- this share, per 100 ms window */
	bool		writes;			/* each transaction uses a transaction id */
	int64		linger_us;		/* the harm lasts this long after a batch
								 * (WAL flushes, dirty buffers) */
} Workload;

typedef struct Sim
{
	Workload	w;
	TimestampTz now;			/* simulated microseconds */
	double		xacts;			/* the workload's, so far */
	double		idle_xacts;		/* what it would have done alone */
	int64		own;			/* the runner's transactions */
	int64		worked_us;		/* time in batches */
	int64		probes;			/* rests the pacer called a probe */
	uint32		seed;
	TimestampTz harm_until;		/* the last batch still harms until then */
} Sim;

static int	failures = 0;

static void
check(bool ok, const char *scenario, const char *what, double value)
{
	printf("%s %s: %s (%.3f)\n", ok ? "ok" : "not ok", scenario, what, value);
	if (!ok)
		failures++;
}

/* a deterministic pseudo-random number in [-1, 1] */
static double
noise(Sim *s)
{
	s->seed = s->seed * 1103515245 + 12345;
	return ((s->seed >> 8) & 0xffff) / 32767.5 - 1.0;
}

/* let "us" microseconds pass, with the runner working or resting */
static void
pass(Sim *s, int64 us, bool working)
{
	while (us > 0)
	{
		int64		step = Min(us, 100000);
		double		rate = s->w.base * (1 + s->w.noise * noise(s));
		bool		harmed = working || s->now < s->harm_until;

		if (!working && harmed)
			step = Min(step, s->harm_until - s->now);
		if (working)
			s->harm_until = s->now + step + s->w.linger_us;
		s->idle_xacts += rate * step / 1e6;
		s->xacts += rate * (harmed ? 1 - s->w.harm : 1) * step / 1e6;
		if (working)
			s->worked_us += step;
		s->now += step;
		us -= step;
	}
}

/* one look at the server, as pacing_sample.c would take it */
static void
sample(Sim *s, Pacer *p)
{
	PacerSample ps;

	if (p->last.at != 0 && s->now - p->last.at < PACER_SAMPLE_INTERVAL_MS * 1000)
		return;
	memset(&ps, 0, sizeof(ps));
	ps.at = s->now;
	ps.xacts = (int64) s->xacts + s->own;
	ps.xids = s->w.writes ? (int64) s->xacts + s->own : s->own;
	ps.own_xacts = s->own;
	ps.own_xids = s->own;
	ps.active = s->w.base > 0 ? 1 : 0;
	migrate_pacer_observe(p, &ps);
}

/* run the migration m for "secs" simulated seconds */
static void
run(Sim *s, Pacer *p, const Migration *m, int secs)
{
	TimestampTz end = s->now + (int64) secs * 1000000;

	while (s->now < end)
	{
		int64		rest_ms;
		char	   *hold;

		sample(s, p);
		hold = migrate_pacer_hold(p, m, &rest_ms);
		if (hold)
		{
			if (strstr(hold, "measuring"))
				s->probes++;
			pass(s, rest_ms * 1000, false);
			continue;
		}
		pass(s, BATCH_US, true);
		s->own++;
		rest_ms = migrate_pacer_after_batch(p, m, BATCH_ROWS, BATCH_US, BATCH_WAL);
		pass(s, rest_ms * 1000, false);
	}
}

static void
setup(Sim *s, Pacer *p, Migration *m, Workload w)
{
	memset(s, 0, sizeof(*s));
	s->w = w;
	s->now = 1000000;
	s->seed = 42;
	memset(m, 0, sizeof(*m));
	m->batch_size = 1000;
	m->min_batch_size = 100;
	m->max_batch_size = 100000;
	m->adaptive = true;
	m->target_batch_ms = 200;
	m->max_wal_rate = -1;
	m->busy_share = 0.1;
	migrate_pacer_init(p, m);
}

/* the share of its rate the workload kept, and of the time spent working */
static void
measure(Sim *s, Pacer *p, const Migration *m, int secs, double *kept, double *duty)
{
	double		x0 = s->xacts,
				i0 = s->idle_xacts;
	int64		w0 = s->worked_us;

	run(s, p, m, secs);
	*kept = (s->xacts - x0) / (s->idle_xacts - i0);
	*duty = (s->worked_us - w0) / (secs * 1e6);
}

int
main(void)
{
	Sim			s;
	Pacer		p;
	Migration	m;
	double		kept,
				duty;

	/* an idle server: no budget, no probe, the batches one after another */
	setup(&s, &p, &m, (Workload) {0, 0, 0, true});
	measure(&s, &p, &m, 60, &kept, &duty);
	check(duty > 0.99, "idle", "works all the time", duty);
	check(p.wal_budget == 0 && s.probes == 0, "idle", "no budget, no probe", s.probes);

	/* a burst of the runner's own commits is not a workload */
	setup(&s, &p, &m, (Workload) {0, 0, 0, true});
	s.own = 100000;
	measure(&s, &p, &m, 20, &kept, &duty);
	check(s.probes == 0 && duty > 0.99, "own commits", "no probe, full speed", duty);

	/* a workload the migration barely hurts (0.95 at full speed) */
	setup(&s, &p, &m, (Workload) {2000, 0.05, 0.05, true});
	run(&s, &p, &m, 30);
	measure(&s, &p, &m, 120, &kept, &duty);
	check(kept >= 0.93, "harm 0.05", "the workload keeps at least 0.93", kept);
	check(duty >= 0.85, "harm 0.05", "the migration works at least 85% of the time", duty);

	/* from its cautious start, a harmless migration is at full speed soon */
	setup(&s, &p, &m, (Workload) {2000, 0.02, 0.05, true});
	{
		int			secs = 0;

		while (secs < 120 && !(p.harmless && p.wal_budget == 0))
		{
			run(&s, &p, &m, 1);
			secs++;
		}
		check(secs <= 30, "ramp", "full speed within 30 s of a cautious start", secs);
	}

	/* a workload that grows by half while the migration runs */
	setup(&s, &p, &m, (Workload) {2000, 0.4, 0.1, true});
	run(&s, &p, &m, 60);
	{
		double		k = 0;

		for (int i = 0; i < 6; i++)
		{
			s.w.base *= 1.07;
			measure(&s, &p, &m, 30, &kept, &duty);
			k += kept / 6;
		}
		check(k >= 0.85 && k <= 0.95, "drift", "a growing workload keeps 0.85-0.95", k);
	}

	/*
	 * a workload that halves by itself for 40 s (another job): the pacer
	 * finds out by a probe, and does not crawl until the next minute's
	 */
	setup(&s, &p, &m, (Workload) {2000, 0.4, 0.05, true});
	run(&s, &p, &m, 60);
	s.w.base = 1000;
	measure(&s, &p, &m, 40, &kept, &duty);
	check(duty >= 0.12, "workload halves", "the migration works at least 12% of the time", duty);
	s.w.base = 2000;
	measure(&s, &p, &m, 60, &kept, &duty);
	check(kept >= 0.85 && duty >= 0.12, "workload recovers", "back near the target, working", kept);

	/* one it hurts a lot (0.6 at full speed): held near the target */
	setup(&s, &p, &m, (Workload) {2000, 0.4, 0.05, true});
	run(&s, &p, &m, 60);
	measure(&s, &p, &m, 240, &kept, &duty);
	check(kept >= 0.86 && kept <= 0.94, "harm 0.4", "the workload keeps 0.86-0.94", kept);
	check(duty >= 0.15, "harm 0.4", "the migration works at least 15% of the time", duty);

	/*
	 * harm that lasts half a second after each 50 ms batch: each batch
	 * costs 11 times its length, so the bound leaves the migration about
	 * 3% of the time
	 */
	setup(&s, &p, &m, (Workload) {2000, 0.3, 0.1, true, 500000});
	run(&s, &p, &m, 60);
	measure(&s, &p, &m, 240, &kept, &duty);
	check(kept >= 0.85 && kept <= 0.95, "lingering harm", "the workload keeps 0.85-0.95", kept);
	check(duty >= 0.03, "lingering harm", "the migration works at least 3% of the time", duty);

	/* the same with a noisy workload (+/- 30% per 100 ms) */
	setup(&s, &p, &m, (Workload) {2000, 0.4, 0.3, true});
	run(&s, &p, &m, 60);
	measure(&s, &p, &m, 240, &kept, &duty);
	check(kept >= 0.85 && kept <= 0.95, "harm 0.4, noisy", "the workload keeps 0.85-0.95", kept);
	check(duty >= 0.12, "harm 0.4, noisy", "the migration works at least 12% of the time", duty);

	/* one that stops entirely while a batch runs */
	setup(&s, &p, &m, (Workload) {2000, 1.0, 0.05, true});
	run(&s, &p, &m, 60);
	measure(&s, &p, &m, 240, &kept, &duty);
	check(kept >= 0.85, "harm 1.0", "the workload keeps at least 0.85", kept);
	check(duty >= 0.04, "harm 1.0", "the migration still works (MIN_SHARE)", duty);

	/* probes: one at the start, then one a minute, each a few seconds */
	setup(&s, &p, &m, (Workload) {2000, 0.4, 0.05, true});
	run(&s, &p, &m, 185);
	check(s.probes >= 4 * 8 && s.probes <= 4 * 20, "probes", "about four probes of 2-5 s in three minutes (rests)", s.probes);
	check(fabs(p.baseline_rate / 2000 - 1) < 0.05, "probes", "the baseline is the workload's rate at rest", p.baseline_rate);

	/* a workload that only reads: counted from the statistics */
	setup(&s, &p, &m, (Workload) {2000, 0.4, 0.05, false});
	run(&s, &p, &m, 60);
	measure(&s, &p, &m, 120, &kept, &duty);
	check(kept >= 0.85 && kept <= 0.95, "read-only", "the workload keeps 0.85-0.95", kept);

	printf("%s: %d failure(s)\n", failures ? "pacer_test FAILED" : "pacer_test passed", failures);
	return failures ? 1 : 0;
}
