/*-------------------------------------------------------------------------
 *
 * pacing.c
 *	  How big the next batch is and how long a runner waits before it.
 *
 * A runner (background worker or CALL migrate_run) keeps a Pacer between
 * batches.  With adaptive sizing, the batch size follows the time batches
 * take, so that one takes about target_batch_time.  The runner also watches
 * the server: when other sessions are busy (transactions committing, or
 * queries active) or its own batches slow down against their recent best,
 * it shrinks its batches and rests between them, so that it takes no more
 * than busy_share of the time.  Sessions that merely wait (in migrate_wait,
 * pg_sleep) do not count as work.  It holds back entirely while
 * migrate.pause_all is on or a standby's replay lag exceeds
 * migrate.max_replication_lag.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "migrate.h"

/* Sample the server at most this often */
#define SAMPLE_INTERVAL_MS 200

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
 * migrate_pacer_sample
 *		Look at the server: other sessions' activity and standbys' lag.
 *
 * Needs a transaction with SPI connected; reads the statistics views as
 * the catalog owner (standbys' lag is only shown to privileged roles).
 * Does nothing if the last sample is recent.
 */
void
migrate_pacer_sample(Pacer *p, int64 own_xacts)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		isnull;
	int64		active;
	int64		xacts;
	Datum		lag;

	if (p->last_sample != 0 &&
		!TimestampDifferenceExceeds(p->last_sample, now, SAMPLE_INTERVAL_MS))
		return;

	migrate_catalog_exec("SELECT"
						 " (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity"
						 "   WHERE state OPERATOR(pg_catalog.=) 'active'"
						 "     AND backend_type OPERATOR(pg_catalog.=) 'client backend'"
						 "     AND pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()"
						 "     AND wait_event_type IS DISTINCT FROM 'Extension'"
						 "     AND wait_event_type IS DISTINCT FROM 'Timeout'),"
						 " (SELECT pg_catalog.sum(xact_commit OPERATOR(pg_catalog.+) xact_rollback)::pg_catalog.int8"
						 "    FROM pg_catalog.pg_stat_database),"
						 " (SELECT pg_catalog.max(pg_catalog.date_part('epoch', replay_lag))"
						 "    FROM pg_catalog.pg_stat_replication)",
						 0, NULL, NULL, NULL, SPI_OK_SELECT);
	active = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	xacts = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (isnull)
		xacts = 0;
	lag = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	p->replication_lag_s = isnull ? 0 : DatumGetFloat8(lag);

	if (p->last_sample != 0)
	{
		double		secs = (now - p->last_sample) / 1000000.0;
		double		rate = (xacts - p->last_xacts - (own_xacts - p->last_own_xacts)) / secs;

		p->others_busy = active > 0 || rate > BUSY_XACTS_PER_SECOND;
		p->others_rate = rate;
	}
	p->last_sample = now;
	p->last_xacts = xacts;
	p->last_own_xacts = own_xacts;
}

/*
 * migrate_pacer_hold
 *		Should the runner hold back before its next batch?  Returns the
 *		reason (for migrate_status), or NULL.
 */
char *
migrate_pacer_hold(Pacer *p)
{
	if (migrate_pause_all)
		return pstrdup("migrate.pause_all is on");
	if (migrate_max_replication_lag_ms > 0 &&
		p->replication_lag_s * 1000 > migrate_max_replication_lag_ms)
		return psprintf("replication lag %.1f s exceeds migrate.max_replication_lag",
						p->replication_lag_s);
	return NULL;
}

/*
 * migrate_pacer_after_batch
 *		Learn from a batch of "rows" rows that took elapsed_us; return how
 *		many milliseconds to rest before the next one.
 *
 * Sets p->reason when the runner is holding back for other sessions.
 */
int64
migrate_pacer_after_batch(Pacer *p, const Migration *m, int64 rows,
						  int64 elapsed_us)
{
	double		per_row;
	bool		slow = false;
	bool		busy;
	int64		rest_ms = 0;

	if (rows <= 0 || elapsed_us <= 0)
		return 0;

	/* the recent best per-row time, slowly forgotten */
	per_row = (double) elapsed_us / rows;
	if (p->best_per_row_us <= 0 || per_row < p->best_per_row_us)
		p->best_per_row_us = per_row;
	else
	{
		slow = rows >= 100 && per_row > SLOWDOWN_FACTOR * p->best_per_row_us;
		p->best_per_row_us *= BEST_DECAY;
	}
	busy = p->others_busy || slow;

	if (m->adaptive && m->target_batch_ms > 0)
	{
		double		target_us = m->target_batch_ms * 1000.0 * (busy ? 0.25 : 1.0);
		double		ideal = rows * target_us / elapsed_us;
		double		next = (p->size + ideal) / 2;

		/* move smoothly: at most halve or double per batch */
		next = Max(next, p->size / 2.0);
		next = Min(next, p->size * 2.0);
		p->size = (int32) Max(m->min_batch_size, Min((double) m->max_batch_size, next));
	}

	if (p->reason)
		pfree(p->reason);
	p->reason = NULL;
	if (busy && m->busy_share > 0 && m->busy_share < 1)
	{
		rest_ms = (int64) (elapsed_us / 1000.0 * (1.0 / m->busy_share - 1.0));
		p->reason = MemoryContextStrdup(TopMemoryContext,
										psprintf("server busy (%s): batches take %.0f%% of the time",
												 slow ? "batches slowed down" : "other sessions at work",
												 m->busy_share * 100));
	}
	return rest_ms;
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
