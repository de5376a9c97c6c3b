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
#include "statements.h"

/* About this many rows are sampled to count the rows to change */
#define ESTIMATE_SAMPLE_ROWS 30000.0

/*
 * With vacuum on, the worker vacuums the table once the versions it
 * replaced are 5% of it; the file grows by about twice that at most.
 */
#define ESTIMATE_VACUUMED_GROWTH 0.1

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

/* What the measuring batch found */
typedef struct MeasureWork
{
	Migration  *m;
	bool		found;			/* there was a next batch */
	int64		visited;
	int64		changed;
	int64		elapsed_us;
	int64		wal_bytes;
	Oid			relid;			/* m's table */
	int64		total;			/* its rows, estimated */
	double		fraction;		/* the share of them to change */
} MeasureWork;

/*
 * measure_work
 *		Run m's next batch as migrate_run_batch would, without recording
 *		it, and measure its time and WAL.  The caller rolls it back.
 */
static void
measure_work(void *arg)
{
	MeasureWork *w = arg;
	Migration  *m = w->m;
	Oid			relid;
	BatchSql   *b;
	int			nestlevel;
	Datum		bound;
	int64		rows;

	/* the owner's predicates may call functions that write: roll them back */
	w->fraction = sample_fraction(m, w->relid, w->total);

	relid = migrate_resolve_relation(m, false);
	b = migrate_build_batch_sql(m, relid, m->cursor ? KEYS_AFTER : KEYS_FIRST);
	nestlevel = NewGUCNestLevel();

	migrate_set_lock_timeout(m->lock_timeout_ms);
	if (m->keep_before)
		migrate_pin_image_formats();
	w->found = migrate_find_batch_bound(m, b, m->batch_size, &bound, &rows);
	if (w->found)
	{
		Oid			types[2] = {JSONBOID, JSONBOID};
		Datum		values[2];
		char		nulls[2] = {' ', ' '};
		int64		wal_before = pgWalUsage.wal_bytes;
		TimestampTz start = GetCurrentTimestamp();
		bool		isnull;

		values[0] = m->cursor ? JsonbPGetDatum(m->cursor) : (Datum) 0;
		nulls[0] = m->cursor ? ' ' : 'n';
		values[1] = PointerGetDatum(DatumGetJsonbPCopy(bound));
		w->visited = rows;
		migrate_run_owner_sql(m, b->change, 2, types, values, nulls, false);
		w->changed = m->keep_before ?
			DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) :
			(int64) SPI_processed;
		/* deferred triggers are not fired: nothing here commits */
		w->elapsed_us = GetCurrentTimestamp() - start;
		w->wal_bytes = pgWalUsage.wal_bytes - wal_before;
	}
	AtEOXact_GUC(true, nestlevel);
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
	if (w.found && w.visited > 0)
	{
		e->measured = true;
		e->ms_per_row = w.elapsed_us / 1000.0 / w.visited;
		e->expected_ms = (int64) (e->ms_per_row * to_walk) +
			m->pause_ms * (to_walk / Max(m->batch_size, 1));
		if (w.changed > 0)
		{
			e->has_wal_per_row = true;
			e->wal_per_row = (double) w.wal_bytes / w.changed;
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
