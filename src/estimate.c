/*-------------------------------------------------------------------------
 *
 * estimate.c
 *	  What a migration will cost, before it starts (migrate_estimate):
 *	  the rows it will change, its duration, its WAL and the table's size.
 *
 * Nothing here changes anything.  The rows to change are counted on a
 * sample of the table's pages (TABLESAMPLE SYSTEM, never a full scan of a
 * big table); the time and WAL per row are measured on the migration's
 * next batch, run as its owner in a subtransaction that is rolled back,
 * together with the sample (the owner's predicates may call functions that
 * write), inside a security-restricted operation, so that the owner's code
 * leaves no deferred trigger, held cursor or temporary object behind,
 * whoever calls the estimate.  Deferred triggers are not fired at all.  A
 * session-level advisory lock the owner's code takes stays with the
 * caller's session, as with any function the caller runs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/instrument.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "estimate.h"
#include "batch.h"
#include "catalog.h"
#include "keys.h"
#include "pacing.h"
#include "runner.h"
#include "statements.h"

/* About this many rows are sampled to count the rows to change */
#define ESTIMATE_SAMPLE_ROWS 30000.0

/*
 * With vacuum on, the worker vacuums the table once the versions it
 * replaced are 5% of it; the file grows by about twice that at most.
 */
#define ESTIMATE_VACUUMED_GROWTH 0.1

/*
 * With vacuum on, a worker vacuums the table once a vacuum could remove a
 * twentieth of its rows (at least 10,000), and only while its vacuums take
 * at most a quarter of the time (runner.h: VACUUM_DUE_FRACTION,
 * VACUUM_DUE_MIN_ROWS; runner.c: VACUUM_WORK_RATIO).  Measured on the
 * tour's table, 2,000,000 rows: at most 4.9 s of vacuums in a run of
 * 31.7 s, about 15 % of the batches' time.
 */
#define ESTIMATE_VACUUM_SHARE 0.15

/*
 * A walk is simulated batch by batch while adaptive sizing still changes
 * the batch size, at most this many batches; the rest, at the size it
 * settled on, is counted at once
 */
#define ESTIMATE_MAX_SIMULATED_BATCHES 10000

/*
 * sample_fraction
 *		The share of the rows of m's table that the migration will change
 *		(migrate_failing_predicate), counted on about ESTIMATE_SAMPLE_ROWS
 *		rows: whole pages picked at random (a fixed seed, so that the same
 *		table gives the same answer), or every row of a table that small.
 *		Runs as the owner; the caller has made it a restricted operation.
 */
static double
sample_fraction(Migration *m, Oid relid, int64 total)
{
	const char *only = get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ";
	char	   *pred = migrate_failing_predicate(m);
	double		pct = total > 0 ? 100.0 * ESTIMATE_SAMPLE_ROWS / total : 100.0;

	if (pred == NULL)
		return 1.0;
	for (;;)
	{
		Oid			types[1] = {FLOAT4OID};
		Datum		values[1] = {Float4GetDatum((float4) pct)};
		bool		isnull;
		int64		sampled;
		int64		matched;

		CHECK_FOR_INTERRUPTS();
		migrate_run_owner_sql(m, psprintf("SELECT pg_catalog.count(*),"
										  " pg_catalog.count(*) FILTER (WHERE %s)"
										  " FROM %s%s%s",
										  pred, only, m->relation,
										  pct < 100.0 ? " TABLESAMPLE SYSTEM ($1) REPEATABLE (0)" : ""),
							  pct < 100.0 ? 1 : 0, types, values, NULL, false);
		sampled = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		matched = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		if (sampled > 0)
			return (double) matched / sampled;
		if (pct >= 100.0)
			return 0.0;			/* the table is empty */
		/* no page came up: a larger sample */
		pct = Min(pct * 10, 100.0);
	}
}

/* What one measuring batch found */
typedef struct BatchMeasure
{
	int64		visited;
	int64		changed;
	int64		elapsed_us;
	int64		wal_bytes;
	Jsonb	   *bound;			/* its last key */
} BatchMeasure;

/* What the measuring batches found */
typedef struct MeasureWork
{
	Migration  *m;
	bool		found;			/* there was a next batch */
	BatchMeasure first;			/* the next batch, of m's batch_size */
	bool		has_grown;		/* and batches after it, of the size
								 * batches grow to */
	BatchMeasure grown;			/* their sums (bound: the last one's) */
	Oid			relid;			/* m's table */
	int64		total;			/* its rows, estimated */
	double		fraction;		/* the share of them to change */
} MeasureWork;

/*
 * A grown measuring batch takes at most about this long, whatever
 * target_batch_time says; this many are measured, so that one batch slowed
 * down by the rest of a busy server counts for less
 */
#define ESTIMATE_MAX_MEASURE_MS 1000
#define ESTIMATE_GROWN_BATCHES 2

/*
 * measure_batch
 *		Run the batch of m of "size" rows after m's cursor as
 *		migrate_run_batch would, without recording it, into *bm: its time
 *		(finding its last key and changing its rows, as a runner times a
 *		batch) and WAL.  False if no rows are left.  Runs as the owner, in
 *		the caller's subtransaction, which the caller rolls back.
 */
static bool
measure_batch(Migration *m, Oid relid, int32 size, BatchMeasure *bm)
{
	BatchSql   *b = migrate_build_batch_sql(m, relid, m->cursor ? KEYS_AFTER : KEYS_FIRST);
	Oid			types[2] = {JSONBOID, JSONBOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	Datum		bound;
	int64		rows;
	int64		wal_before;
	bool		isnull;
	TimestampTz start;

	memset(bm, 0, sizeof(*bm));
	start = GetCurrentTimestamp();
	if (!migrate_find_batch_bound(m, b, size, &bound, &rows))
		return false;
	wal_before = pgWalUsage.wal_bytes;
	bm->bound = DatumGetJsonbPCopy(bound);
	values[0] = m->cursor ? JsonbPGetDatum(m->cursor) : (Datum) 0;
	nulls[0] = m->cursor ? ' ' : 'n';
	values[1] = JsonbPGetDatum(bm->bound);
	bm->visited = rows;
	migrate_run_owner_sql(m, b->change, 2, types, values, nulls, false);
	bm->changed = m->keep_before ?
		DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) :
		(int64) SPI_processed;
	/* deferred triggers are not fired: nothing here commits */
	bm->elapsed_us = GetCurrentTimestamp() - start;
	bm->wal_bytes = pgWalUsage.wal_bytes - wal_before;
	return true;
}

/*
 * measure_work
 *		Measure m's next batch, of its batch_size; and where adaptive sizing
 *		will make batches grow, ESTIMATE_GROWN_BATCHES more batches after
 *		it, of about the size they grow to (at most ESTIMATE_MAX_MEASURE_MS
 *		of work each): most rows are walked in batches of that size, and a
 *		small batch's time per row, mostly its fixed costs and noise, says
 *		little of theirs.  The caller rolls them all back.
 */
static void
measure_work(void *arg)
{
	MeasureWork *w = arg;
	Migration  *m = w->m;
	Jsonb	   *cursor = m->cursor;
	Oid			relid;
	int			nestlevel;

	/* the owner's predicates may call functions that write: roll them back */
	w->fraction = sample_fraction(m, w->relid, w->total);

	relid = migrate_resolve_relation(m, false);
	nestlevel = NewGUCNestLevel();

	migrate_set_lock_timeout(m->lock_timeout_ms);
	if (m->keep_before)
		migrate_pin_image_formats();
	w->found = measure_batch(m, relid, m->batch_size, &w->first);
	if (w->found && m->adaptive && m->target_batch_ms > 0 &&
		w->first.visited >= m->batch_size && w->first.elapsed_us > 0)
	{
		double		target_us = Min(m->target_batch_ms, ESTIMATE_MAX_MEASURE_MS) * 1000.0;
		double		grown = w->first.visited * target_us / w->first.elapsed_us;

		grown = Max((double) m->min_batch_size, Min((double) m->max_batch_size, grown));
		if (grown >= 2.0 * m->batch_size)
		{
			/* the batches after it, each from where the last one ended */
			m->cursor = w->first.bound;
			PG_TRY();
			{
				int			i;
				BatchMeasure bm;

				for (i = 0; i < ESTIMATE_GROWN_BATCHES; i++)
				{
					if (!measure_batch(m, relid, (int32) grown, &bm))
						break;
					w->has_grown = true;
					w->grown.visited += bm.visited;
					w->grown.changed += bm.changed;
					w->grown.elapsed_us += bm.elapsed_us;
					w->grown.wal_bytes += bm.wal_bytes;
					w->grown.bound = bm.bound;
					m->cursor = bm.bound;
				}
			}
			PG_FINALLY();
			{
				m->cursor = cursor;
			}
			PG_END_TRY();
		}
	}
	AtEOXact_GUC(true, nestlevel);
}

/*
 * walk_duration_ms
 *		How long m's runner takes to walk to_walk rows, on an idle server,
 *		when a row takes us_per_row microseconds: the batches' work plus
 *		m's pause between them.  The batches are those the runner will run:
 *		the first has m's batch_size rows; with adaptive sizing each next
 *		one is what migrate_pacer_next_size (pacing.c) makes of the one
 *		before, as the runner's pacer does on an idle server.  The rests of
 *		pacing under load cannot be foreseen and are not counted.  Pure
 *		arithmetic.
 */
static int64
walk_duration_ms(const Migration *m, int64 to_walk, double us_per_row)
{
	bool		adaptive = m->adaptive && m->target_batch_ms > 0;
	double		size = Max(m->batch_size, 1);
	double		left = (double) to_walk;
	double		n = 0;
	int			simulated;

	for (simulated = 0; left > 0 && simulated < ESTIMATE_MAX_SIMULATED_BATCHES; simulated++)
	{
		double		rows = Min(size, left);
		double		next;

		left -= rows;
		n += 1;
		if (!adaptive || us_per_row <= 0)
			break;
		/* as the pacer decides it, with rows * us_per_row as the time */
		next = migrate_pacer_next_size(m, (int32) size, (int64) rows,
									   (int64) (rows * us_per_row),
									   m->target_batch_ms * 1000.0);
		if (next < 1)
			next = 1;
		if (next == size)
			break;				/* settled */
		size = next;
	}
	/* the rest at the settled size */
	if (left > 0)
		n += ceil(left / size);
	/* a pause follows every batch but the last */
	return (int64) (us_per_row * to_walk / 1000.0 + m->pause_ms * Max(n - 1, 0));
}

/*
 * vacuum_ms
 *		How long the worker's vacuums of m's table add to work_ms of
 *		batches that change rows_to_change of its rows_total rows:
 *		ESTIMATE_VACUUM_SHARE of the work, none where fewer than two would
 *		be due.  A migration run by CALL migrate_run does not vacuum, nor
 *		one with vacuum off, nor a delete (its table does not grow).
 */
static int64
vacuum_ms(const Migration *m, int64 rows_total, int64 rows_to_change,
		  int64 work_ms)
{
	int64		due = Max(VACUUM_DUE_MIN_ROWS,
						  rows_total / VACUUM_DUE_FRACTION);

	if (!m->vacuum || strcmp(m->action, MIGRATE_ACTION_DELETE) == 0 ||
		rows_to_change < 2 * due)
		return 0;
	return (int64) (work_ms * ESTIMATE_VACUUM_SHARE);
}

/*
 * migrate_estimate_run
 *		Estimate what running m from its cursor will cost, into e, changing
 *		nothing.  Needs SPI connected; the caller may manage m.
 */
void
migrate_estimate_run(Migration *m, Estimate *e)
{
	Oid			relid;
	Oid			save_userid;
	int			save_sec_context;
	MeasureWork w;
	ErrorData  *volatile edata = NULL;
	volatile double fraction = 1.0;
	int64		to_walk;
	int64		size;

	if (m->relation == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("migration \"%s\" is a one-off task and has no rows to estimate", m->name)));
	if (m->reverting)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("migration \"%s\" is being reverted; an estimate is for its change", m->name)));
	memset(e, 0, sizeof(*e));
	relid = migrate_resolve_relation(m, false);
	e->rows_total = migrate_estimate_rows(relid);
	size = migrate_catalog_table_size(m);

	/* the owner's code runs restricted, whoever asks, and is rolled back */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(save_userid, save_sec_context | SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		memset(&w, 0, sizeof(w));
		w.m = m;
		w.relid = relid;
		w.total = e->rows_total;
		edata = migrate_try_rolled_back(measure_work, &w);
		fraction = w.fraction;
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	if (edata)
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("could not measure a batch of migration \"%s\": %s", m->name, edata->message),
				 errdetail("The estimate runs the next batch and rolls it back.")));

	e->rows_to_change = (int64) (e->rows_total * fraction + 0.5);
	to_walk = m->cursor ? Max(e->rows_total - m->processed, 0) : e->rows_total;
	if (w.found && w.first.visited > 0)
	{
		/* the time per row of the batches most rows are walked in */
		BatchMeasure *t = w.has_grown && w.grown.visited > w.first.visited ?
			&w.grown : &w.first;
		int64		changed = w.first.changed + w.grown.changed;

		e->measured = true;
		e->ms_per_row = t->elapsed_us / 1000.0 / t->visited;
		e->expected_ms = walk_duration_ms(m, to_walk, e->ms_per_row * 1000.0) +
			vacuum_ms(m, e->rows_total, e->rows_to_change,
					  (int64) (e->ms_per_row * to_walk));
		if (changed > 0)
		{
			e->has_wal_per_row = true;
			e->wal_per_row = (double) (w.first.wal_bytes + w.grown.wal_bytes) / changed;
			e->expected_wal = (int64) (e->wal_per_row * e->rows_to_change);
		}
	}
	if (strcmp(m->action, MIGRATE_ACTION_DELETE) == 0 || size < 0)
		e->expected_size = size;
	else
	{
		double		growth = e->rows_total > 0 ? (double) e->rows_to_change / e->rows_total : 0;

		if (m->vacuum)
			growth = Min(growth, ESTIMATE_VACUUMED_GROWTH);
		e->expected_size = (int64) (size * (1.0 + growth));
	}
}
