/*-------------------------------------------------------------------------
 *
 * revert.c
 *	  Reverting a migration: batches that restore before-images, newest
 *	  first.
 *
 * A revert batch takes the next before-images below the revert cursor,
 * restores them where the rows still hold what the migration wrote,
 * records the rows it leaves alone, and moves the revert cursor down, all
 * in the caller's transaction.
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

#include "revert.h"
#include "batch.h"
#include "catalog.h"
#include "keys.h"
#include "statements.h"

/* The revert statement's arguments and result, for migrate_try_in_subxact */
typedef struct RevertWork
{
	Migration  *m;
	const char *sql;
	Datum		images;
	Datum		restored;
	bool		none;
} RevertWork;

static void
revert_work(void *arg)
{
	RevertWork *w = arg;
	Oid			types[1] = {JSONBOID};
	Datum		values[1] = {w->images};

	migrate_run_owner_sql(w->m, w->sql, 1, types, values, NULL, true);
	w->restored = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &w->none);
	migrate_fire_deferred(w->m);
}

/*
 * try_revert
 *		Run the revert statement on the images, with the deferred triggers
 *		it queues, in a subtransaction (see migrate_try_in_subxact).  On success sets
 *		*restored to the undo ids it restored (NULL if *none).
 */
static ErrorData *
try_revert(Migration *m, const char *sql, Datum images, Datum *restored, bool *none)
{
	RevertWork	w = {m, sql, images, (Datum) 0, true};
	ErrorData  *edata = migrate_try_in_subxact(revert_work, &w, true, NULL, false);

	*restored = w.restored;
	*none = w.none;
	return edata;
}

/* Build a bigint[] of the int64s the list points to; *none if it is empty. */
static Datum
int8_list_array(List *ids, bool *none)
{
	Datum	   *elems;
	ListCell   *lc;
	Datum	   *ok;
	ArrayType  *arr;

	*none = ids == NIL;
	if (ids == NIL)
		return (Datum) 0;
	elems = palloc(sizeof(Datum) * list_length(ids));
	foreach(lc, ids)
		elems[foreach_current_index(lc)] = Int64GetDatum(*(int64 *) lfirst(lc));
	ok = elems;
	arr = construct_array(ok, list_length(ids), INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	return PointerGetDatum(arr);
}

/*
 * revert_row_by_row
 *		The images of a batch could not be restored together: restore them
 *		one at a time, so that a row that cannot be restored stops only
 *		itself (it is recorded in migrate.errors).  Returns the ids of the
 *		images restored in *restored and of those that failed in *failed
 *		(int8[], with *none_* when empty); adds the failures to
 *		res->set_aside.
 */
static void
revert_row_by_row(Migration *m, const char *revert_sql, Datum images,
				  Datum *restored, bool *none_restored,
				  Datum *failed, bool *none_failed, BatchResult *res)
{
	Oid			types[1] = {JSONBOID};
	Datum		values[1] = {images};
	List	   *ok_ids = NIL;
	List	   *bad_ids = NIL;
	uint64		n;
	Datum	   *singles;
	int64	   *ids;
	Datum	   *keys;
	bool		isnull;

	if (SPI_execute_with_args("SELECT pg_catalog.jsonb_build_array(e),"
							  " (e OPERATOR(pg_catalog.->>) 'i')::pg_catalog.int8,"
							  " e OPERATOR(pg_catalog.->) 'k'"
							  " FROM pg_catalog.jsonb_array_elements($1) e",
							  1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not split a revert batch");
	n = SPI_processed;
	singles = palloc(sizeof(Datum) * n);
	ids = palloc(sizeof(int64) * n);
	keys = palloc(sizeof(Datum) * n);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		singles[i] = PointerGetDatum(DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 1, &isnull)));
		ids[i] = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		keys[i] = PointerGetDatum(DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 3, &isnull)));
	}
	for (uint64 i = 0; i < n; i++)
	{
		Datum		one;
		bool		none;
		ErrorData  *edata;

		CHECK_FOR_INTERRUPTS();
		edata = try_revert(m, revert_sql, singles[i], &one, &none);
		if (edata)
		{
			migrate_catalog_add_error(m, keys[i], "revert", edata);
			bad_ids = lappend(bad_ids, &ids[i]);
		}
		else if (!none)
			ok_ids = lappend(ok_ids, &ids[i]);
	}
	*restored = int8_list_array(ok_ids, none_restored);
	*failed = int8_list_array(bad_ids, none_failed);
	res->set_aside = list_length(bad_ids);
}

/*
 * migrate_revert_batch
 *		Restore the next batch_size before-images of m, newest first, in the
 *		current transaction, and record the batch.
 *
 * Undo rows are handed out in descending id order below the revert cursor
 * (a row changed twice is restored to its oldest image).  A row that no
 * longer holds what the migration wrote is reported in migrate.errors and
 * left as it is; its undo row stays.  The restored undo rows are deleted
 * unless m->keep_undo.
 */
void
migrate_revert_batch(Migration *m, int32 batch_size, BatchResult *res)
{
	Oid			relid = migrate_resolve_relation(m, false);
	int			nestlevel = NewGUCNestLevel();
	int64		wal_before = pgWalUsage.wal_bytes;
	Datum		images;
	int64		lowest = 0;

	memset(res, 0, sizeof(*res));
	migrate_set_lock_timeout(m->lock_timeout_ms);
	migrate_pin_image_formats();
	if (!migrate_catalog_next_undo(m, batch_size, &images, &lowest, &res->visited))
		res->done = true;
	else
	{
		Datum		restored;
		bool		none_restored;
		Datum		failed = (Datum) 0;
		bool		none_failed = true;
		ErrorData  *edata;
		char	   *revert_sql = migrate_build_revert_sql(m, relid);

		edata = try_revert(m, revert_sql, images, &restored, &none_restored);
		if (edata)
		{
			FreeErrorData(edata);
			revert_row_by_row(m, revert_sql, images, &restored, &none_restored,
							  &failed, &none_failed, res);
		}
		res->set_aside +=
			migrate_catalog_settle_revert(m, lowest,
										  none_restored ? (Datum) 0 : restored,
										  none_failed ? (Datum) 0 : failed);
		res->changed = res->visited - res->set_aside;
	}
	res->wal_bytes = pgWalUsage.wal_bytes - wal_before;
	migrate_catalog_record_revert(m, res, lowest);
	AtEOXact_GUC(true, nestlevel);
}
