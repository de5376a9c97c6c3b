/*-------------------------------------------------------------------------
 *
 * catalog_ranges.c
 *	  Reading and writing migrate.ranges: the key ranges a migration with
 *	  several workers walks, each with its own bounds, cursor and counters.
 *
 * A range's row is what its batches lock: a batch takes it FOR UPDATE
 * before anything else and moves its cursor with a compare-and-set in the
 * same transaction as the data, so every row of the range is changed once
 * whatever happens to the worker.  A split takes the same row lock, so it
 * waits for the batch in flight and the batch after it sees the new upper
 * bound.  As in catalog.c, every statement runs as the catalog owner, with
 * search_path pinned, every object qualified and every value a parameter;
 * the caller has SPI connected.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "catalog_ranges.h"
#include "catalog.h"
#include "citus.h"

static bool ranges_have_bound(void);

/* The columns range_from_tuple reads, in this order */
#define RANGE_COLUMNS \
	"id, relation, lower, upper, cursor, done, " \
	"GREATEST(rows_estimate OPERATOR(pg_catalog.-) processed, 0), " \
	"COALESCE(relid::pg_catalog.oid, 0)"

/* Fill r from row 0 of the last SPI result (RANGE_COLUMNS). */
static void
range_from_result(MigrateRange *r)
{
	HeapTuple	tup = SPI_tuptable->vals[0];
	TupleDesc	desc = SPI_tuptable->tupdesc;
	bool		isnull;
	Datum		d;

	r->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	r->relation = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
	d = SPI_getbinval(tup, desc, 3, &isnull);
	r->lower = isnull ? NULL : DatumGetJsonbPCopy(d);
	d = SPI_getbinval(tup, desc, 4, &isnull);
	r->upper = isnull ? NULL : DatumGetJsonbPCopy(d);
	d = SPI_getbinval(tup, desc, 5, &isnull);
	r->cursor = isnull ? NULL : DatumGetJsonbPCopy(d);
	r->done = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
	r->rows_left = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
	r->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 8, &isnull));
}

/* A jsonb argument, or NULL */
#define JSONB_ARG(values, nulls, i, j) \
	((values)[i] = (j) ? JsonbPGetDatum(j) : (Datum) 0, (nulls)[i] = (j) ? ' ' : 'n')

/*
 * migrate_catalog_add_range
 *		Add a range of m on "relation" after key lower (exclusive, NULL: from
 *		the first key) up to key upper (NULL: to the last key), holding
 *		about rows_estimate rows; split_from names the range it was cut
 *		from (0: none).  Its cursor starts at lower.  Returns its id.
 */
int64
migrate_catalog_add_range(const Migration *m, const char *relation, Oid relid,
						  Jsonb *lower, Jsonb *upper, int64 rows_estimate,
						  int64 split_from)
{
	Oid			types[7] = {INT8OID, TEXTOID, JSONBOID, JSONBOID, INT8OID, INT8OID, OIDOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;

	values[0] = Int64GetDatum(m->id);
	values[1] = CStringGetTextDatum(relation);
	JSONB_ARG(values, nulls, 2, lower);
	JSONB_ARG(values, nulls, 3, upper);
	values[4] = Int64GetDatum(Max(rows_estimate, 0));
	values[5] = Int64GetDatum(split_from);
	nulls[5] = split_from != 0 ? ' ' : 'n';
	values[6] = ObjectIdGetDatum(relid);
	nulls[6] = OidIsValid(relid) ? ' ' : 'n';
	migrate_catalog_exec("INSERT INTO migrate.ranges"
						 " (migration, relation, lower, upper, cursor, rows_estimate, split_from, relid)"
						 " VALUES ($1, $2, $3, $4, $3, $5, $6, $7::pg_catalog.regclass) RETURNING id",
						 7, types, values, nulls, SPI_OK_INSERT_RETURNING);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * migrate_catalog_count_ranges_locked
 *		Lock m's row for this transaction, then count its ranges: whoever
 *		plans them holds the lock, so ranges are planned once.
 */
int64
migrate_catalog_count_ranges_locked(const Migration *m)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(m->id)};
	bool		isnull;

	migrate_catalog_exec("SELECT FROM migrate.migrations WHERE id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
						 1, types, values, NULL, SPI_OK_SELECT);
	migrate_catalog_exec("SELECT pg_catalog.count(*) FROM migrate.ranges"
						 " WHERE migration OPERATOR(pg_catalog.=) $1",
						 1, types, values, NULL, SPI_OK_SELECT);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * migrate_catalog_take_range
 *		Lock a range of m that is not done, for this transaction, and read
 *		it into r.  The range "prefer" (the one the caller walked last)
 *		comes first; then, with "spread", ranges no batch has touched yet
 *		and then the one left alone longest, so that workers spread over
 *		the ranges; else the first.  Ranges whose row another batch holds
 *		are passed over, or with "wait" waited for.  Returns false if there
 *		is none.
 */
bool
migrate_catalog_take_range(const Migration *m, int64 prefer, bool spread,
						   bool wait, MigrateRange *r)
{
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2] = {Int64GetDatum(m->id), Int64GetDatum(prefer)};
	const char *lock = wait ? " FOR UPDATE" : " FOR UPDATE SKIP LOCKED";

	/*
	 * Each statement finds its row through an index (ranges_pick_idx from
	 * 0.4, else the migration's), without sorting every range of m: a
	 * batch costs the same with many ranges as with a few
	 */
	if (prefer != 0)
	{
		migrate_catalog_exec(psprintf("SELECT " RANGE_COLUMNS " FROM migrate.ranges"
									  " WHERE id OPERATOR(pg_catalog.=) $2"
									  " AND migration OPERATOR(pg_catalog.=) $1 AND NOT done%s",
									  lock),
							 2, types, values, NULL, SPI_OK_SELECT);
		if (SPI_processed > 0)
		{
			range_from_result(r);
			return true;
		}
	}
	migrate_catalog_exec(psprintf("SELECT " RANGE_COLUMNS " FROM migrate.ranges"
								  " WHERE migration OPERATOR(pg_catalog.=) $1 AND NOT done"
								  " ORDER BY %s LIMIT 1%s",
								  spread ? "last_batch_at NULLS FIRST, id" : "id", lock),
						 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	range_from_result(r);
	return true;
}

/*
 * migrate_catalog_count_ranges
 *		How many ranges m has: all of them, or with left_only those not
 *		done yet.  Reads without locking.
 */
int64
migrate_catalog_count_ranges(const Migration *m, bool left_only)
{
	Oid			types[2] = {INT8OID, BOOLOID};
	Datum		values[2] = {Int64GetDatum(m->id), BoolGetDatum(left_only)};
	bool		isnull;

	migrate_catalog_exec("SELECT pg_catalog.count(*) FROM migrate.ranges"
						 " WHERE migration OPERATOR(pg_catalog.=) $1"
						 " AND NOT ($2 AND done)",
						 2, types, values, NULL, SPI_OK_SELECT);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * migrate_catalog_lock_range
 *		Lock range id of m for this transaction, waiting for a batch that
 *		holds it (under the caller's lock_timeout), and read it into r.
 *		Returns false if m has no such range.
 */
bool
migrate_catalog_lock_range(const Migration *m, int64 id, MigrateRange *r)
{
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2] = {Int64GetDatum(m->id), Int64GetDatum(id)};

	migrate_catalog_exec("SELECT " RANGE_COLUMNS " FROM migrate.ranges"
						 " WHERE migration OPERATOR(pg_catalog.=) $1"
						 " AND id OPERATOR(pg_catalog.=) $2 FOR UPDATE",
						 2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	range_from_result(r);
	return true;
}

/*
 * migrate_catalog_largest_range
 *		The range of m, not done, with the most rows left by its estimate
 *		(into *rows_left); 0 if none.  Reads without locking.
 */
int64
migrate_catalog_largest_range(const Migration *m, int64 *rows_left)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(m->id)};
	bool		isnull;

	*rows_left = 0;
	migrate_catalog_exec("SELECT id, GREATEST(rows_estimate OPERATOR(pg_catalog.-) processed, 0)"
						 " FROM migrate.ranges"
						 " WHERE migration OPERATOR(pg_catalog.=) $1 AND NOT done"
						 " ORDER BY rows_estimate OPERATOR(pg_catalog.-) processed DESC, id"
						 " LIMIT 1",
						 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return 0;
	*rows_left = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 2, &isnull));
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * migrate_catalog_record_range
 *		Record a batch of the range m walks (m->range_id): move its cursor
 *		from m->cursor to the batch's last key, add to its counters, and
 *		mark it done when the batch found nothing left.
 *
 * A compare-and-set in the batch's transaction: if the range's cursor or
 * upper bound are no longer those the batch ran with (or the range is
 * gone), it errors out with a serialization failure and the whole batch
 * rolls back.  The caller's batch holds the range's row lock already.
 */
void
migrate_catalog_record_range(Migration *m, const BatchResult *res)
{
	Oid			types[8] = {INT8OID, JSONBOID, INT8OID, INT8OID, BOOLOID, JSONBOID,
	JSONBOID, INT8OID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(m->range_id);
	JSONB_ARG(values, nulls, 1, res->new_cursor);
	values[2] = Int64GetDatum(res->visited);
	values[3] = Int64GetDatum(res->changed);
	values[4] = BoolGetDatum(res->done);
	JSONB_ARG(values, nulls, 5, m->cursor);
	JSONB_ARG(values, nulls, 6, m->upper);
	values[7] = Int64GetDatum(res->wal_bytes);
	migrate_catalog_exec("UPDATE migrate.ranges SET"
						 " cursor = COALESCE($2, cursor),"
						 " processed = processed OPERATOR(pg_catalog.+) $3,"
						 " changed = changed OPERATOR(pg_catalog.+) $4,"
						 " batches = batches OPERATOR(pg_catalog.+) CASE WHEN $3 OPERATOR(pg_catalog.>) 0 THEN 1 ELSE 0 END,"
						 " wal_bytes = wal_bytes OPERATOR(pg_catalog.+) $8,"
						 " done = $5,"
						 " worker_pid = pg_catalog.pg_backend_pid(),"
						 " last_batch_at = pg_catalog.clock_timestamp(),"
						 " finished_at = CASE WHEN $5 THEN pg_catalog.clock_timestamp() END"
						 " WHERE id OPERATOR(pg_catalog.=) $1 AND NOT done"
						 " AND cursor IS NOT DISTINCT FROM $6"
						 " AND upper IS NOT DISTINCT FROM $7",
						 8, types, values, nulls, SPI_OK_UPDATE);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("range " INT64_FORMAT " of migration \"%s\" was changed by someone else while a batch ran",
						m->range_id, m->name),
				 errdetail("It was split, finished or forgotten meanwhile; the batch was rolled back.")));
	m->processed += res->visited;
	m->changed += res->changed;
	if (res->new_cursor)
		m->cursor = res->new_cursor;
}

/*
 * migrate_catalog_split_range
 *		Cut range r of m (locked by the caller) at key "middle": r now ends
 *		there, holding about rows_before rows from its cursor on, and a new
 *		range takes the rest (about rows_after rows) up to r's old upper
 *		bound.  Returns the new range's id.
 */
int64
migrate_catalog_split_range(const Migration *m, const MigrateRange *r,
							Jsonb *middle, int64 rows_before, int64 rows_after)
{
	Oid			types[3] = {INT8OID, JSONBOID, INT8OID};
	Datum		values[3] = {Int64GetDatum(r->id), JsonbPGetDatum(middle),
	Int64GetDatum(rows_before)};

	migrate_catalog_exec("UPDATE migrate.ranges SET upper = $2,"
						 " rows_estimate = processed OPERATOR(pg_catalog.+) $3"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 3, types, values, NULL, SPI_OK_UPDATE);
	return migrate_catalog_add_range(m, r->relation, r->relid, middle, r->upper,
									 rows_after, r->id);
}

/*
 * ranges_have_bound
 *		Has migrate.ranges the bound column (0.4)?
 */
static bool
ranges_have_bound(void)
{
	Oid			nsp = get_namespace_oid("migrate", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("ranges", nsp) : InvalidOid;

	return OidIsValid(relid) && get_attnum(relid, "bound") != InvalidAttrNumber;
}

/*
 * migrate_catalog_set_range_bound
 *		Record the bounds of the partition range id walks, as planned.  A
 *		catalog before 0.4 has nowhere to keep them.
 */
void
migrate_catalog_set_range_bound(int64 id, const char *bound)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(id), CStringGetTextDatum(bound)};

	if (!ranges_have_bound())
		return;
	migrate_catalog_exec("UPDATE migrate.ranges SET bound = $2"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 2, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * migrate_catalog_planned_leaves
 *		The partitions m's ranges walk, as PlannedLeaf: each with its bounds
 *		as planned (NULL if unknown) and whether all its ranges are done;
 *		NIL when m's ranges are key ranges of the table.  Reads the latest
 *		committed state, without locking.
 */
List *
migrate_catalog_planned_leaves(const Migration *m)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(m->id)};
	List	   *leaves = NIL;
	bool		isnull;

	migrate_catalog_exec(psprintf("SELECT relid::pg_catalog.oid, %s, pg_catalog.bool_and(done),"
								  " pg_catalog.min(relation), pg_catalog.bool_or(left_table)"
								  " FROM migrate.ranges"
								  " WHERE migration OPERATOR(pg_catalog.=) $1 AND relid IS NOT NULL"
								  " GROUP BY relid",
								  ranges_have_bound() ?
								  "pg_catalog.min(bound)" : "NULL::pg_catalog.text"),
						 1, types, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		PlannedLeaf *leaf = palloc0(sizeof(PlannedLeaf));
		Datum		d;

		leaf->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		d = SPI_getbinval(tup, desc, 2, &isnull);
		leaf->bound = isnull ? NULL : TextDatumGetCString(d);
		leaf->done = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		leaf->relation = TextDatumGetCString(SPI_getbinval(tup, desc, 4, &isnull));
		leaf->left_table = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
		leaves = lappend(leaves, leaf);
	}
	return leaves;
}

/*
 * migrate_catalog_forget_ranges
 *		Delete the ranges of migration id (it starts over, or is gone).
 */
void
migrate_catalog_forget_ranges(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	migrate_catalog_exec("DELETE FROM migrate.ranges WHERE migration OPERATOR(pg_catalog.=) $1",
						 1, types, values, NULL, SPI_OK_DELETE);
	migrate_citus_forget_plan(id);
}

/*
 * migrate_catalog_set_workers
 *		Set how many workers m may have at once (its row locked).
 */
void
migrate_catalog_set_workers(Migration *m, int32 workers)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(m->id), Int32GetDatum(workers)};

	if (!m->catalog_v3)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("workers needs version 0.3 of extension \"migrate\""),
				 errhint("Run ALTER EXTENSION migrate UPDATE.")));
	migrate_catalog_exec("UPDATE migrate.migrations SET workers = $2"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 2, types, values, NULL, SPI_OK_UPDATE);
	m->workers = workers;
}

/*
 * migrate_catalog_set_workers_note
 *		Record why migration id runs with fewer workers than asked (NULL:
 *		it does not).
 */
void
migrate_catalog_set_workers_note(int64 id, const char *note)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(id), note ? CStringGetTextDatum(note) : (Datum) 0};
	char		nulls[2] = {' ', note ? ' ' : 'n'};

	migrate_catalog_exec("UPDATE migrate.migrations SET workers_note = $2"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 2, types, values, nulls, SPI_OK_UPDATE);
}
