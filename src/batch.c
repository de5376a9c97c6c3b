/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  Running one batch of a migration: as its owner, split down to the
 *	  failing rows with on_error => 'skip', and the helpers every kind of
 *	  batch shares.
 *
 * The caller commits the change together with the new cursor, so every row
 * is changed once whatever stops the runner.  Everything the user wrote
 * runs as the migration's owner with the migration's search_path
 * (security.c decides whether restricted).  All functions here expect a
 * transaction with SPI connected.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/instrument.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "optimizer/plancat.h"
#include "parser/parser.h"
#include "tcop/cmdtag.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/regproc.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "batch.h"
#include "catalog.h"
#include "catalog_ranges.h"
#include "keys.h"
#include "revert.h"
#include "security.h"
#include "statements.h"
#include "verify.h"

static void set_guc(const char *name, const char *value);
static bool error_is_row_error(const ErrorData *edata);
static void run_task(Migration *m, BatchResult *res);

/* How often a failing range may turn out empty before the error stands */
#define MAX_EMPTY_SPLITS	3

/* Set a GUC for the rest of the current GUC nest level. */
static void
set_guc(const char *name, const char *value)
{
	(void) set_config_option(name, value, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/* Set lock_timeout for the rest of this GUC nest level. */
void
migrate_set_lock_timeout(int64 ms)
{
	char		buf[32];

	snprintf(buf, sizeof(buf), INT64_FORMAT, ms);
	set_guc("lock_timeout", buf);
}

/*
 * migrate_run_owner_sql
 *		Run one of a migration's statements as its owner, with its
 *		search_path; with "cached", prepared once per process (the
 *		statements every batch runs).  Returns the SPI result code.
 */
int
migrate_run_owner_sql(const Migration *m, const char *sql, int nargs,
					  Oid *types, Datum *values, const char *nulls, bool cached)
{
	RoleSwitch	rs;
	int			ret;

	migrate_become_migration_owner(&rs, m);
	ret = cached ?
		migrate_execute_cached(sql, nargs, types, values, nulls, true) :
		SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
	migrate_restore_role(&rs);
	if (ret < 0)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	return ret;
}

/*
 * migrate_fire_deferred
 *		Fire the batch's deferred triggers and constraint checks now, inside
 *		the batch, so that their errors belong to the batch (and to its
 *		row-error splitting) rather than to COMMIT.
 *
 * Where the transaction does not commit as the owner, the change ran as a
 * security-restricted operation and PostgreSQL has already refused any
 * deferred event; there this finds nothing to fire.
 */
void
migrate_fire_deferred(const Migration *m)
{
	RoleSwitch	rs;

	migrate_become_migration_owner(&rs, m);
	if (SPI_execute("SET CONSTRAINTS ALL IMMEDIATE", false, 0) < 0)
		elog(ERROR, "SET CONSTRAINTS ALL IMMEDIATE failed");
	migrate_restore_role(&rs);
}

/*
 * migrate_pin_key_formats
 *		For the rest of the current GUC nest level, print values in formats
 *		their input functions read back exactly, whatever the session,
 *		role or database settings: keys go through jsonb as text.
 */
void
migrate_pin_key_formats(void)
{
	set_guc("extra_float_digits", "3");
	set_guc("DateStyle", "ISO, YMD");
	set_guc("IntervalStyle", "postgres");
	set_guc("bytea_output", "hex");
}

/*
 * migrate_find_batch_bound
 *		Find the last key of the next batch; false if no rows are left.
 */
bool
migrate_find_batch_bound(const Migration *m, BatchSql *b, int32 batch_size,
				 Datum *bound, int64 *rows)
{
	Oid			types[3] = {JSONBOID, INT4OID, JSONBOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	bool		isnull;
	int			nestlevel;

	values[0] = m->cursor ? JsonbPGetDatum(m->cursor) : (Datum) 0;
	nulls[0] = m->cursor ? ' ' : 'n';
	values[1] = Int32GetDatum(batch_size);
	/* the last key of the range m walks (ranges.c), if it walks one */
	values[2] = m->upper ? JsonbPGetDatum(m->upper) : (Datum) 0;
	nulls[2] = m->upper ? ' ' : 'n';

	/*
	 * The cursor is the key in jsonb, read back with its type's input
	 * function: pin the output formats so that every value round-trips.
	 */
	nestlevel = NewGUCNestLevel();
	migrate_pin_key_formats();
	migrate_run_owner_sql(m, b->bound_nth, 3, types, values, nulls, true);
	if (SPI_processed == 1)
	{
		/* a full batch */
		*rows = batch_size;
	}
	else
	{
		/* fewer rows than batch_size are left: the last key and their count */
		migrate_run_owner_sql(m, b->bound, 3, types, values, nulls, true);
		if (SPI_processed == 1)
			*rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 2, &isnull));
	}
	AtEOXact_GUC(true, nestlevel);
	if (SPI_processed == 0)
		return false;
	*bound = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return true;
}

/*
 * migrate_pin_image_formats
 *		Before-images are values in jsonb, read back by their types' input
 *		functions: make sure floats and intervals are printed in a form that
 *		reads back exactly (the server defaults), for the rest of the
 *		current GUC nest level.
 */
void
migrate_pin_image_formats(void)
{
	if (extra_float_digits < 1)
		set_guc("extra_float_digits", "1");
	if (IntervalStyle == INTSTYLE_SQL_STANDARD)
		set_guc("IntervalStyle", "postgres");
	if (DateStyle != USE_ISO_DATES)
		set_guc("DateStyle", "ISO");
}

/*
 * apply_change
 *		Apply m's change statement "sql" to the rows between lower
 *		(exclusive; NULL for none) and upper, keep their before-images if m
 *		wants them, and fire the deferred triggers the change queued.
 *		Returns the number of rows changed.
 */
static int64
apply_change(Migration *m, const char *sql, Jsonb *lower, Jsonb *upper)
{
	Oid			types[2] = {JSONBOID, JSONBOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	int64		changed;

	values[0] = lower ? JsonbPGetDatum(lower) : (Datum) 0;
	nulls[0] = lower ? ' ' : 'n';
	values[1] = JsonbPGetDatum(upper);
	migrate_run_owner_sql(m, sql, 2, types, values, nulls, true);
	if (!m->keep_before)
		changed = SPI_processed;
	else
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		changed = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		if (changed > 0)
			migrate_catalog_add_images(m, SPI_getbinval(tup, desc, 2, &isnull),
									   SPI_getbinval(tup, desc, 3, &isnull),
									   SPI_getbinval(tup, desc, 4, &isnull));
	}
	migrate_fire_deferred(m);
	return changed;
}

/*
 * error_is_row_error
 *		Is this the kind of error a single row's data causes (a data
 *		exception, a constraint violation, an error raised by a trigger or
 *		function), rather than one that every row would hit (permissions,
 *		missing objects, lock timeouts, cancels)?  Only such errors are
 *		set aside with on_error => 'skip'.
 */
static bool
error_is_row_error(const ErrorData *edata)
{
	switch (ERRCODE_TO_CATEGORY(edata->sqlerrcode))
	{
		case ERRCODE_DATA_EXCEPTION:
		case ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION:
		case ERRCODE_TRIGGERED_ACTION_EXCEPTION:
		case ERRCODE_TRIGGERED_DATA_CHANGE_VIOLATION:
		case ERRCODE_EXTERNAL_ROUTINE_EXCEPTION:
		case ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION:
		case ERRCODE_WITH_CHECK_OPTION_VIOLATION:
		case ERRCODE_PLPGSQL_ERROR:
			return true;
		default:
			return false;
	}
}

/*
 * run_in_subxact
 *		Run work(arg) in a subtransaction of the current transaction.
 *		Returns NULL on success; on an error, rolls the subtransaction back
 *		and returns the error, copied into errcxt (NULL: the caller's
 *		memory context), after writing it to the server log if "log".
 *		With row_errors_only, any error that is not a row error
 *		(error_is_row_error) is re-thrown instead.  With
 *		"rollback" the subtransaction is rolled back on success too.
 *
 * The one subtransaction runner: a runner's batch, a batch's ranges and
 * single rows, a revert's rows, a retried row and an estimate's measured
 * batch all go through it.
 */
static ErrorData *
run_in_subxact(void (*work) (void *arg), void *arg, bool row_errors_only,
			   MemoryContext errcxt, bool log, bool rollback)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		work(arg);
		if (rollback)
			RollbackAndReleaseCurrentSubTransaction();
		else
			ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(errcxt ? errcxt : oldcxt);
		edata = CopyErrorData();
		if (row_errors_only && !error_is_row_error(edata))
		{
			FreeErrorData(edata);
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcxt);
			CurrentResourceOwner = oldowner;
			PG_RE_THROW();
		}
		if (log)
			EmitErrorReport();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
	return edata;
}

/*
 * migrate_try_in_subxact
 *		Run work(arg) in a subtransaction that is kept if it succeeds; see
 *		run_in_subxact.
 */
ErrorData *
migrate_try_in_subxact(void (*work) (void *arg), void *arg,
					   bool row_errors_only, MemoryContext errcxt, bool log)
{
	return run_in_subxact(work, arg, row_errors_only, errcxt, log, false);
}

/*
 * migrate_try_rolled_back
 *		Run work(arg) in a subtransaction that is rolled back whatever
 *		happens; returns its error, if any, copied into the caller's memory
 *		context.
 */
ErrorData *
migrate_try_rolled_back(void (*work) (void *arg), void *arg)
{
	return run_in_subxact(work, arg, false, NULL, false, true);
}

/* apply_change's arguments and result, for migrate_try_in_subxact */
typedef struct ChangeWork
{
	Migration  *m;
	const char *sql;
	Jsonb	   *lower;
	Jsonb	   *upper;
	int64		changed;
} ChangeWork;

static void
change_work(void *arg)
{
	ChangeWork *w = arg;

	w->changed = apply_change(w->m, w->sql, w->lower, w->upper);
}

/*
 * try_change
 *		apply_change in a subtransaction (see migrate_try_in_subxact).  Sets
 *		*changed on success.
 */
static ErrorData *
try_change(Migration *m, const char *sql, Jsonb *lower, Jsonb *upper,
		   int64 *changed)
{
	ChangeWork	w = {m, sql, lower, upper, 0};
	ErrorData  *edata = migrate_try_in_subxact(change_work, &w, true, NULL, false);

	*changed = w.changed;
	return edata;
}

/* The keys in (lower, upper], in key order, as Jsonb pointers. */
static Jsonb **
keys_in_range(Migration *m, const char *sql, Jsonb *lower, Jsonb *upper, int *nkeys)
{
	Oid			types[2] = {JSONBOID, JSONBOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		isnull;
	Datum		arr;
	Datum	   *elems;
	bool	   *enulls;
	Jsonb	  **keys;
	int			nestlevel;

	values[0] = lower ? JsonbPGetDatum(lower) : (Datum) 0;
	nulls[0] = lower ? ' ' : 'n';
	values[1] = JsonbPGetDatum(upper);
	nestlevel = NewGUCNestLevel();
	migrate_pin_key_formats();
	migrate_run_owner_sql(m, sql, 2, types, values, nulls, true);
	AtEOXact_GUC(true, nestlevel);
	arr = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
	{
		*nkeys = 0;
		return NULL;
	}
	deconstruct_array(DatumGetArrayTypeP(arr), JSONBOID, -1, false, TYPALIGN_INT,
					  &elems, &enulls, nkeys);
	keys = palloc(sizeof(Jsonb *) * *nkeys);
	for (int i = 0; i < *nkeys; i++)
		keys[i] = DatumGetJsonbP(elems[i]);
	return keys;
}

/*
 * change_or_split
 *		Change the rows in (lower, upper]; if that fails on some rows, split
 *		the range in two halves at a key and try each, down to single rows,
 *		which are recorded in migrate.errors and left unchanged.
 *
 * "first" and "after" are the batch statements for a range without and
 * with a lower bound.  Every row of the range is either changed or
 * recorded, in the caller's transaction.  Returns the rows changed and
 * adds the rows recorded to *set_aside.
 */
static int64
change_or_split(Migration *m, BatchSql *first, BatchSql *after,
				Jsonb *lower, Jsonb *upper, int depth, int64 *set_aside)
{
	BatchSql   *b = lower ? after : first;
	int64		changed = 0;
	int			prev_nkeys = -1;

	for (int again = 0;; again++)
	{
		ErrorData  *edata = try_change(m, b->change, lower, upper, &changed);
		Jsonb	  **keys;
		int			nkeys;
		int			half;

		if (edata == NULL)
			return changed;
		CHECK_FOR_INTERRUPTS();
		keys = keys_in_range(m, b->keys, lower, upper, &nkeys);
		if (nkeys == 1 && prev_nkeys == 1)
		{
			/* failed twice as a range of this one row: it is the culprit */
			migrate_catalog_add_error(m, JsonbPGetDatum(keys[0]), "change", edata);
			(*set_aside)++;
			return 0;
		}
		/* halving must get somewhere; the key range must not be odd */
		if (depth > 64 || again > MAX_EMPTY_SPLITS)
			ReThrowError(edata);
		prev_nkeys = nkeys;
		if (nkeys <= 1)
		{
			/* try once more: the row that failed may have changed meanwhile */
			FreeErrorData(edata);
			continue;
		}
		FreeErrorData(edata);
		half = nkeys / 2;
		return change_or_split(m, first, after, lower, keys[half - 1], depth + 1, set_aside) +
			change_or_split(m, first, after, keys[half - 1], upper, depth + 1, set_aside);
	}
}

/*
 * migrate_run_batch
 *		Run the next batch of m in the current transaction and record it.
 *
 * Leaves the transaction open: the caller commits the change and the
 * catalog update together (or, in migrate_step, leaves that to the user).
 * lock_timeout applies to the batch's statements and its catalog update,
 * so that the batch never waits unbounded while it holds row locks.
 */
void
migrate_run_batch(Migration *m, int32 batch_size, BatchResult *res)
{
	Oid			relid = migrate_resolve_relation(m, false);
	BatchSql   *b = migrate_build_batch_sql(m, relid, m->cursor ? KEYS_AFTER : KEYS_FIRST);
	int			nestlevel = NewGUCNestLevel();
	Datum		bound;
	int64		rows;

	int64		wal_before = pgWalUsage.wal_bytes;

	memset(res, 0, sizeof(*res));
	migrate_set_lock_timeout(m->lock_timeout_ms);
	if (m->keep_before)
		migrate_pin_image_formats();
	if (m->walk_over || !migrate_find_batch_bound(m, b, batch_size, &bound, &rows))
	{
		/*
		 * The end of a range (ranges.c), or of the walk: done, or another
		 * pass of catch_up (verify.c)
		 */
		if (m->range_id != 0)
			res->done = true;
		else if (migrate_catch_up_next_pass(m))
			res->next_pass = true;
		else
			res->done = true;
	}
	else
	{
		res->new_cursor = DatumGetJsonbPCopy(bound);
		res->visited = rows;
		if (migrate_counting_pass(m))
		{
			int64		checked;

			/* after the last catch-up pass: only count the rows still failing */
			migrate_verify_range(m, relid, m->cursor, res->new_cursor,
								 &checked, &res->failing, &res->sample);
		}
		else if (!m->skip_errors)
			res->changed = apply_change(m, b->change, m->cursor, res->new_cursor);
		else
		{
			BatchSql   *first = m->cursor ? migrate_build_batch_sql(m, relid, KEYS_FIRST) : b;
			BatchSql   *after = m->cursor ? b : migrate_build_batch_sql(m, relid, KEYS_AFTER);

			res->changed = change_or_split(m, first, after, m->cursor,
										   res->new_cursor, 0, &res->set_aside);
		}
	}
	res->wal_bytes = pgWalUsage.wal_bytes - wal_before;
	/* still under lock_timeout: never wait unbounded with the rows locked */
	if (m->range_id != 0)
		migrate_catalog_record_range(m, res);
	else
		migrate_catalog_record_batch(m, res);
	AtEOXact_GUC(true, nestlevel);
}

/*
 * migrate_run_next
 *		Run m's next unit of work in the current transaction: its task, the
 *		next batch of its revert, or its next batch.
 */
void
migrate_run_next(Migration *m, int32 batch_size, BatchResult *res)
{
	if (m->relation == NULL)
	{
		run_task(m, res);
		return;
	}
	{
		/* the batch's own lock_timeout also bounds the wait for its lock */
		int			nestlevel = NewGUCNestLevel();

		migrate_set_lock_timeout(m->lock_timeout_ms);
		migrate_check_key_types(m);
		AtEOXact_GUC(true, nestlevel);
	}
	if (m->reverting)
		migrate_revert_batch(m, batch_size, res);
	else
		migrate_run_batch(m, batch_size, res);
}

/*
 * migrate_retry_rows
 *		Apply m's change again to each row it set aside, one row per
 *		subtransaction, in the current transaction: rows that now succeed
 *		leave migrate.errors, the others get their new error.
 *
 * The caller holds m's row lock.  Only rows the forward change skipped
 * are retried; rows a revert left alone are not.
 */
void
migrate_retry_rows(Migration *m, int64 *retried, int64 *fixed, int64 *failing)
{
	Oid			relid = migrate_resolve_relation(m, false);
	BatchSql   *b = migrate_build_batch_sql(m, relid, KEYS_EXACT);
	int			nestlevel = NewGUCNestLevel();
	int64	   *ids;
	Jsonb	  **keys;
	int64		n;
	int64		changed = 0;

	*retried = *fixed = *failing = 0;
	migrate_set_lock_timeout(m->lock_timeout_ms);
	if (m->keep_before)
		migrate_pin_image_formats();
	n = migrate_catalog_skipped_rows(m, &ids, &keys);
	for (int64 i = 0; i < n; i++)
	{
		int64		rows = 0;
		ErrorData  *edata;

		CHECK_FOR_INTERRUPTS();
		edata = try_change(m, b->change, NULL, keys[i], &rows);
		(*retried)++;
		changed += rows;
		if (edata)
			(*failing)++;
		else
			(*fixed)++;
		migrate_catalog_settle_skipped_row(ids[i], edata);
	}
	if (changed > 0)
		migrate_catalog_add_changed(m, changed);
	AtEOXact_GUC(true, nestlevel);
}

/*
 * run_task
 *		Run a one-off task's SQL once, as its owner, in the current
 *		transaction, and record it as done.
 */
static void
run_task(Migration *m, BatchResult *res)
{
	int			nestlevel = NewGUCNestLevel();

	uint64		changed;
	int64		wal_before = pgWalUsage.wal_bytes;

	memset(res, 0, sizeof(*res));
	migrate_set_lock_timeout(m->lock_timeout_ms);
	migrate_run_owner_sql(m, m->sql, 0, NULL, NULL, NULL, false);
	changed = SPI_processed;
	migrate_fire_deferred(m);
	res->wal_bytes = pgWalUsage.wal_bytes - wal_before;
	res->done = true;
	res->visited = 1;
	res->changed = changed;
	migrate_catalog_record_batch(m, res);
	AtEOXact_GUC(true, nestlevel);
}
