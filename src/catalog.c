/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Reading and writing migrate.migrations and migrate.events.
 *
 * Every function here expects to be called inside a transaction with SPI
 * connected; what it returns lives in the current SPI procedure context
 * unless said otherwise.  All statements run as the catalog owner with
 * search_path pinned to pg_catalog, pg_temp, name every object with its
 * schema and pass every value as a parameter.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "catalog.h"
#include "catalog_ranges.h"
#include "runner_lock.h"
#include "security.h"
#include "verify.h"

static int	execute_cached(const char *sql, int nargs, Oid *types,
						   Datum *values, const char *nulls,
						   bool custom_plan, bool read_only);
static bool catalog_is_v2(void);
static bool catalog_is_v3(void);
static char *text_or_null(Datum d, bool isnull);
static void series_datums(List *members, Datum *names, bool *names_null, Datum *ids, bool *ids_null);
static MigrateState state_parse(const char *name);

#define MIGRATION_COLUMNS \
	"id, name, action, relation, key_columns, set_clause, where_clause, " \
	"row_fn, sql, batch_size, " \
	"(pg_catalog.date_part('epoch', pause) OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8, " \
	"(pg_catalog.date_part('epoch', lock_timeout) OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8, " \
	"search_path, owner::pg_catalog.oid, state, cursor, processed, changed, " \
	"batches, worker_pid, series_rest, adaptive, " \
	"(pg_catalog.date_part('epoch', target_batch_time) OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8, " \
	"min_batch_size, max_batch_size, busy_share, " \
	"COALESCE(total_estimate, -1)"

/* The columns 0.2 added, and what a 0.1 catalog stands for instead */
#define MIGRATION_COLUMNS_V2 \
	", on_error OPERATOR(pg_catalog.=) 'skip', keep_before, " \
	"reverting, keep_undo, revert_cursor, reverted, true"
#define MIGRATION_COLUMNS_V1 \
	", false, false, false, false, NULL::pg_catalog.int8, " \
	"0::pg_catalog.int8, false"

/* The columns 0.3 added, and what an older catalog stands for instead */
#define MIGRATION_COLUMNS_V3 \
	", series_ids, COALESCE(series_starter::pg_catalog.oid, 0), key_types, true, " \
	"series_started_at, registered_at, vacuum, COALESCE(max_wal_rate, -1), " \
	"check_clause, catch_up, max_passes, pass, pass_changed, workers, " \
	"COALESCE(relid::pg_catalog.oid, 0), " \
	"(SELECT pg_catalog.count(*) FROM migrate.ranges r WHERE r.migration OPERATOR(pg_catalog.=) migrate.migrations.id), " \
	"(SELECT COALESCE(pg_catalog.sum(r.processed), 0)::pg_catalog.int8 FROM migrate.ranges r WHERE r.migration OPERATOR(pg_catalog.=) migrate.migrations.id), " \
	"(SELECT COALESCE(pg_catalog.sum(r.changed), 0)::pg_catalog.int8 FROM migrate.ranges r WHERE r.migration OPERATOR(pg_catalog.=) migrate.migrations.id), " \
	"(SELECT COALESCE(pg_catalog.sum(r.batches), 0)::pg_catalog.int8 FROM migrate.ranges r WHERE r.migration OPERATOR(pg_catalog.=) migrate.migrations.id)"
#define MIGRATION_COLUMNS_PRE_V3 \
	", NULL::pg_catalog.int8[], 0::pg_catalog.oid, NULL::pg_catalog.text[], false, " \
	"NULL::pg_catalog.timestamptz, registered_at, false, 0::pg_catalog.int8, " \
	"NULL::pg_catalog.text, false, 3, 0, 0::pg_catalog.int8, 1, 0::pg_catalog.oid, " \
	"0::pg_catalog.int8, 0::pg_catalog.int8, 0::pg_catalog.int8, 0::pg_catalog.int8"

/*
 * The positions of the columns load_sql reads, in the order of
 * MIGRATION_COLUMNS and then MIGRATION_COLUMNS_V2 (or _V1) and
 * MIGRATION_COLUMNS_V3 (or _PRE_V3).
 */
enum MigrationColumn
{
	MC_ID = 1,
	MC_NAME,
	MC_ACTION,
	MC_RELATION,
	MC_KEY_COLUMNS,
	MC_SET_CLAUSE,
	MC_WHERE_CLAUSE,
	MC_ROW_FN,
	MC_SQL,
	MC_BATCH_SIZE,
	MC_PAUSE_MS,
	MC_LOCK_TIMEOUT_MS,
	MC_SEARCH_PATH,
	MC_OWNER,
	MC_STATE,
	MC_CURSOR,
	MC_PROCESSED,
	MC_CHANGED,
	MC_BATCHES,
	MC_WORKER_PID,
	MC_SERIES_REST,
	MC_ADAPTIVE,
	MC_TARGET_BATCH_MS,
	MC_MIN_BATCH_SIZE,
	MC_MAX_BATCH_SIZE,
	MC_BUSY_SHARE,
	MC_TOTAL_ESTIMATE,
	MC_SKIP_ERRORS,
	MC_KEEP_BEFORE,
	MC_REVERTING,
	MC_KEEP_UNDO,
	MC_REVERT_CURSOR,
	MC_RESTORED,
	MC_CATALOG_V2,
	MC_SERIES_IDS,
	MC_SERIES_STARTER,
	MC_KEY_TYPES,
	MC_CATALOG_V3,
	MC_SERIES_STARTED_AT,
	MC_REGISTERED_AT,
	MC_VACUUM,
	MC_MAX_WAL_RATE,
	MC_CHECK_CLAUSE,
	MC_CATCH_UP,
	MC_MAX_PASSES,
	MC_PASS,
	MC_PASS_CHANGED,
	MC_WORKERS,
	MC_RELID,
	MC_RANGES_TOTAL,
	MC_RANGE_PROCESSED,
	MC_RANGE_CHANGED,
	MC_RANGE_BATCHES,
};

/*
 * load_sql
 *		The statement that reads one migration by "column" ($1), for the
 *		catalog version installed, optionally locking the row.
 */
static char *
load_sql(const char *column, bool for_update)
{
	bool		v2 = catalog_is_v2();

	return psprintf("SELECT " MIGRATION_COLUMNS "%s%s FROM migrate.migrations"
					" WHERE %s OPERATOR(pg_catalog.=) $1%s",
					v2 ? MIGRATION_COLUMNS_V2 : MIGRATION_COLUMNS_V1,
					v2 && catalog_is_v3() ? MIGRATION_COLUMNS_V3 :
					MIGRATION_COLUMNS_PRE_V3,
					column, for_update ? " FOR UPDATE" : "");
}

/*
 * text_or_null
 *		Return a palloc'd C string of a text datum, or NULL.
 */
static char *
text_or_null(Datum d, bool isnull)
{
	return isnull ? NULL : TextDatumGetCString(d);
}

/* Turn a text[] datum into a List of C strings (NIL for NULL). */
static List *
text_array_to_list(Datum d, bool isnull)
{
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	List	   *result = NIL;

	if (isnull)
		return NIL;
	arr = DatumGetArrayTypeP(d);
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			result = lappend(result, TextDatumGetCString(elems[i]));
	return result;
}

/* Turn a List of C strings into a text[] datum. */
static Datum
list_to_text_array(List *list)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(list), 1));
	ListCell   *lc;

	foreach(lc, list)
		elems[foreach_current_index(lc)] = CStringGetTextDatum(lfirst(lc));
	return PointerGetDatum(construct_array(elems, list_length(list), TEXTOID,
										   -1, false, TYPALIGN_INT));
}

/*
 * series_members
 *		Turn the names of a series' rest, and the ids they were pinned to
 *		when the series started (ids_null on a catalog before 0.3, or for a
 *		series started before it), into a List of SeriesMember.
 */
static List *
series_members(List *names, Datum ids, bool ids_null)
{
	Datum	   *elems = NULL;
	bool	   *nulls = NULL;
	int			n = 0;
	List	   *result = NIL;
	ListCell   *lc;

	if (!ids_null)
		deconstruct_array(DatumGetArrayTypeP(ids), INT8OID, 8, FLOAT8PASSBYVAL,
						  TYPALIGN_DOUBLE, &elems, &nulls, &n);
	foreach(lc, names)
	{
		SeriesMember *sm = palloc(sizeof(SeriesMember));
		int			i = foreach_current_index(lc);

		sm->name = lfirst(lc);
		/* ids are written with the names, always both or neither */
		sm->id = (n == list_length(names) && !nulls[i]) ? DatumGetInt64(elems[i]) : 0;
		result = lappend(result, sm);
	}
	return result;
}

/*
 * series_datums
 *		The text[] of names and the int8[] of ids of a list of SeriesMember,
 *		as the catalog stores them; both NULL for an empty list.
 */
static void
series_datums(List *members, Datum *names, bool *names_null,
					  Datum *ids, bool *ids_null)
{
	int			n = list_length(members);
	Datum	   *ne = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *ie = palloc(sizeof(Datum) * Max(n, 1));
	ListCell   *lc;

	*names_null = *ids_null = (n == 0);
	if (n == 0)
		return;
	foreach(lc, members)
	{
		SeriesMember *sm = lfirst(lc);

		ne[foreach_current_index(lc)] = CStringGetTextDatum(sm->name);
		ie[foreach_current_index(lc)] = Int64GetDatum(sm->id);
	}
	*names = PointerGetDatum(construct_array(ne, n, TEXTOID, -1, false, TYPALIGN_INT));
	*ids = PointerGetDatum(construct_array(ie, n, INT8OID, 8, FLOAT8PASSBYVAL,
										   TYPALIGN_DOUBLE));
}

/*
 * Prepared statements, kept for the life of the process.  A worker runs the
 * same few statements for every batch; parsing and analysing them once
 * instead of thousands of times is most of a small batch's overhead.  The
 * plan cache still replans when a table changes, and checks privileges and
 * row-level security against the user of each execution.
 */
typedef struct CachedStatement
{
	char	   *sql;
	int			nargs;
	Oid			types[MIGRATE_MAX_CACHED_ARGS];
	SPIPlanPtr	plan;
} CachedStatement;

#define MIGRATE_CACHED_STATEMENTS 64

static CachedStatement cached[MIGRATE_CACHED_STATEMENTS];
static int	ncached = 0;
static int	next_victim = 0;

/* How many cached statements are executing right now (nested calls) */
static int	cached_depth = 0;

/*
 * migrate_execute_cached
 *		SPI_execute_with_args, with the statement prepared once per process.
 *
 * The caller has set the role and search_path the statement must be parsed
 * with; they are part of what the plan cache checks on every execution.
 * With custom_plan, every execution is planned for its actual parameters
 * (parse analysis is still done once): a batch's key range is then always
 * planned with the real bounds and batch size.
 */
int
migrate_execute_cached(const char *sql, int nargs, Oid *types, Datum *values,
					   const char *nulls, bool custom_plan)
{
	return execute_cached(sql, nargs, types, values, nulls, custom_plan, false);
}

/*
 * execute_cached
 *		The work of migrate_execute_cached; with read_only, the statement
 *		runs as SPI's read-only execution (a SELECT with no side effects).
 */
static int
execute_cached(const char *sql, int nargs, Oid *types, Datum *values,
			   const char *nulls, bool custom_plan, bool read_only)
{
	CachedStatement *c = NULL;
	int			ret;

	/*
	 * Statements with more parameters than a slot holds are not cached.
	 * Neither is anything while a cached statement runs: the owner's code
	 * inside it may call migrate's functions again, and evicting a slot
	 * then would free the plan the outer call is executing.
	 */
	if (nargs > MIGRATE_MAX_CACHED_ARGS || cached_depth > 0)
		return SPI_execute_with_args(sql, nargs, types, values, nulls, read_only, 0);
	for (int i = 0; i < ncached; i++)
		if (cached[i].nargs == nargs && strcmp(cached[i].sql, sql) == 0 &&
			memcmp(cached[i].types, types, sizeof(Oid) * nargs) == 0)
		{
			c = &cached[i];
			break;
		}
	if (c == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types,
											  custom_plan ? CURSOR_OPT_CUSTOM_PLAN : 0);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		if (ncached < MIGRATE_CACHED_STATEMENTS)
			c = &cached[ncached++];
		else
		{
			c = &cached[next_victim];
			next_victim = (next_victim + 1) % MIGRATE_CACHED_STATEMENTS;
			SPI_freeplan(c->plan);
			pfree(c->sql);
		}
		c->sql = MemoryContextStrdup(TopMemoryContext, sql);
		c->nargs = nargs;
		if (nargs > 0)
			memcpy(c->types, types, sizeof(Oid) * nargs);
		c->plan = plan;
	}
	cached_depth++;
	PG_TRY();
	{
		ret = SPI_execute_plan(c->plan, values, nulls, read_only, 0);
	}
	PG_FINALLY();
	{
		cached_depth--;
	}
	PG_END_TRY();
	return ret;
}

/*
 * migrate_catalog_exec
 *		Run one statement on the catalog as the catalog owner.
 *
 * "expected" is the SPI result code the statement must return (or 0 to
 * accept any non-error result).  Results stay in SPI_tuptable.
 */
void
migrate_catalog_exec(const char *sql, int nargs, Oid *types, Datum *values,
					 const char *nulls, int expected)
{
	RoleSwitch	rs;
	int			ret;

	migrate_become_catalog_owner(&rs);
	ret = migrate_execute_cached(sql, nargs, types, values, nulls, false);
	migrate_restore_role(&rs);
	if (ret < 0 || (expected != 0 && ret != expected))
		elog(ERROR, "migrate catalog statement failed: %s: %s",
			 SPI_result_code_string(ret), sql);
}

/*
 * migrate_server_read
 *		Read the server's state (pg_stat_activity, pg_locks, pg_stat_database,
 *		the horizon's holders) with one SELECT, as the catalog owner, so that
 *		a worker connected as a migration's owner sees every session the way
 *		the pacer and the slot counts need.
 *
 * The statement runs read-only (SPI's read_only execution: no writes, no
 * side effects); callers pass only fixed text and parameters, never a
 * user's SQL.  What it returns may tell more than the caller's role could
 * see: callers report it to users only through migrate_horizon_holder,
 * which filters by the viewer's rights.  Results stay in SPI_tuptable.
 */
void
migrate_server_read(const char *sql, int nargs, Oid *types, Datum *values,
					const char *nulls)
{
	RoleSwitch	rs;
	int			ret;

	migrate_become_catalog_owner(&rs);
	ret = execute_cached(sql, nargs, types, values, nulls, false, true);
	migrate_restore_role(&rs);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "migrate server statement failed: %s: %s",
			 SPI_result_code_string(ret), sql);
}

/* Build a Migration from the current row of SPI_tuptable. */
static Migration *
migration_from_tuple(HeapTuple tuple, TupleDesc desc)
{
	Migration  *m = palloc0(sizeof(Migration));
	bool		isnull;
	Datum		d;

#define COL(n) (d = SPI_getbinval(tuple, desc, (n), &isnull))
#define TEXTCOL(n) (COL(n), text_or_null(d, isnull))
#define ARRAYCOL(n) (COL(n), text_array_to_list(d, isnull))
	m->id = DatumGetInt64(COL(MC_ID));
	m->name = TextDatumGetCString(COL(MC_NAME));
	m->action = TextDatumGetCString(COL(MC_ACTION));
	m->relation = TEXTCOL(MC_RELATION);
	m->key_columns = ARRAYCOL(MC_KEY_COLUMNS);
	m->set_clause = TEXTCOL(MC_SET_CLAUSE);
	m->where_clause = TEXTCOL(MC_WHERE_CLAUSE);
	m->row_fn = TEXTCOL(MC_ROW_FN);
	m->sql = TEXTCOL(MC_SQL);
	m->batch_size = DatumGetInt32(COL(MC_BATCH_SIZE));
	m->pause_ms = DatumGetInt64(COL(MC_PAUSE_MS));
	m->lock_timeout_ms = DatumGetInt64(COL(MC_LOCK_TIMEOUT_MS));
	m->search_path = TextDatumGetCString(COL(MC_SEARCH_PATH));
	m->owner = DatumGetObjectId(COL(MC_OWNER));
	m->state = state_parse(TextDatumGetCString(COL(MC_STATE)));
	COL(MC_CURSOR);
	m->cursor = isnull ? NULL : DatumGetJsonbPCopy(d);
	m->processed = DatumGetInt64(COL(MC_PROCESSED));
	m->changed = DatumGetInt64(COL(MC_CHANGED));
	m->batches = DatumGetInt64(COL(MC_BATCHES));
	COL(MC_WORKER_PID);
	m->worker_pid = isnull ? 0 : DatumGetInt32(d);
	m->series_rest = ARRAYCOL(MC_SERIES_REST);	/* names; series_members adds ids */
	m->adaptive = DatumGetBool(COL(MC_ADAPTIVE));
	m->target_batch_ms = DatumGetInt64(COL(MC_TARGET_BATCH_MS));
	m->min_batch_size = DatumGetInt32(COL(MC_MIN_BATCH_SIZE));
	m->max_batch_size = DatumGetInt32(COL(MC_MAX_BATCH_SIZE));
	m->busy_share = DatumGetFloat4(COL(MC_BUSY_SHARE));
	m->total_estimate = DatumGetInt64(COL(MC_TOTAL_ESTIMATE));
	m->skip_errors = DatumGetBool(COL(MC_SKIP_ERRORS));
	m->keep_before = DatumGetBool(COL(MC_KEEP_BEFORE));
	m->reverting = DatumGetBool(COL(MC_REVERTING));
	m->keep_undo = DatumGetBool(COL(MC_KEEP_UNDO));
	COL(MC_REVERT_CURSOR);
	m->has_revert_cursor = !isnull;
	m->revert_cursor = isnull ? 0 : DatumGetInt64(d);
	m->restored = DatumGetInt64(COL(MC_RESTORED));
	m->catalog_v2 = DatumGetBool(COL(MC_CATALOG_V2));
	COL(MC_SERIES_IDS);
	m->series_rest = series_members(m->series_rest, d, isnull);
	m->series_starter = DatumGetObjectId(COL(MC_SERIES_STARTER));
	m->key_types = ARRAYCOL(MC_KEY_TYPES);
	m->catalog_v3 = DatumGetBool(COL(MC_CATALOG_V3));
	COL(MC_SERIES_STARTED_AT);
	m->series_started_at = isnull ? 0 : DatumGetTimestampTz(d);
	m->registered_at = DatumGetTimestampTz(COL(MC_REGISTERED_AT));
	m->vacuum = DatumGetBool(COL(MC_VACUUM));
	m->max_wal_rate = DatumGetInt64(COL(MC_MAX_WAL_RATE));
	m->check_clause = TEXTCOL(MC_CHECK_CLAUSE);
	m->catch_up = DatumGetBool(COL(MC_CATCH_UP));
	m->max_passes = DatumGetInt32(COL(MC_MAX_PASSES));
	m->pass = DatumGetInt32(COL(MC_PASS));
	m->pass_changed = DatumGetInt64(COL(MC_PASS_CHANGED));
	m->workers = DatumGetInt32(COL(MC_WORKERS));
	m->relid = DatumGetObjectId(COL(MC_RELID));
	m->ranges_total = DatumGetInt64(COL(MC_RANGES_TOTAL));

	/*
	 * What its ranges did counts as the migration's (the catalog adds them
	 * up the same way; every write of these counters adds to them)
	 */
	m->processed += DatumGetInt64(COL(MC_RANGE_PROCESSED));
	m->changed += DatumGetInt64(COL(MC_RANGE_CHANGED));
	m->batches += DatumGetInt64(COL(MC_RANGE_BATCHES));
#undef COL
#undef TEXTCOL
#undef ARRAYCOL
	return m;
}

/*
 * catalog_is_v2
 *		Does the catalog have what version 0.2 added?  Between installing a
 *		new library and ALTER EXTENSION migrate UPDATE, the library runs on
 *		the 0.1 catalog: it reads the new columns as their defaults and
 *		writes none of them.
 */
static bool
catalog_is_v2(void)
{
	Oid			nsp = get_namespace_oid("migrate", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("migrations", nsp) : InvalidOid;

	return OidIsValid(relid) && get_attnum(relid, "on_error") != InvalidAttrNumber;
}

/*
 * catalog_is_v3
 *		Does the catalog have what version 0.3 added (pinned series, key
 *		types)?  On an older catalog series members are found by name and
 *		the key's types are not checked.
 */
static bool
catalog_is_v3(void)
{
	Oid			nsp = get_namespace_oid("migrate", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("migrations", nsp) : InvalidOid;

	return OidIsValid(relid) && get_attnum(relid, "key_types") != InvalidAttrNumber;
}

/*
 * migrate_catalog_load
 *		Read the migration called "name", optionally locking its row.
 *
 * With for_update the row is locked FOR UPDATE until the end of the
 * transaction, which serializes every state change of one migration.
 * Returns NULL if missing_ok and there is no such migration, else errors.
 */
Migration *
migrate_catalog_load(const char *name, bool for_update, bool missing_ok)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("migration name must not be null")));
	migrate_check_name_length(name);

	values[0] = CStringGetTextDatum(name);
	migrate_catalog_exec(load_sql("name", for_update), 1, types, values, NULL,
						 SPI_OK_SELECT);
	if (SPI_processed == 0)
	{
		if (missing_ok)
			return NULL;
		migrate_report_missing(name);
	}
	return migration_from_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
}

/*
 * migrate_check_name_length
 *		Error out if "name" is longer than a migration name may be (it must
 *		fit a worker's bgw_extra).
 */
void
migrate_check_name_length(const char *name)
{
	if (strlen(name) > MIGRATE_MAX_NAME_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("migration name is too long"),
				 errdetail("A migration name may have at most %d bytes.", MIGRATE_MAX_NAME_LEN)));
}

/*
 * migrate_report_missing
 *		Raise the error for a migration "name" that does not exist (or that
 *		the current user may not see: the two must not differ).
 */
void
migrate_report_missing(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("migration \"%s\" does not exist", name),
			 errhint("Run migrate_status() to list the migrations you can see.")));
}

/*
 * migrate_catalog_load_by_id
 *		Like migrate_catalog_load, by id; returns NULL if the row is gone.
 */
Migration *
migrate_catalog_load_by_id(int64 id, bool for_update)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	migrate_catalog_exec(load_sql("id", for_update), 1, types, values, NULL,
						 SPI_OK_SELECT);
	if (SPI_processed == 0)
		return NULL;
	return migration_from_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
}

/*
 * migrate_catalog_row_datum
 *		Return the migrate.migrations row with this id as a composite datum
 *		allocated in the caller's (upper executor) memory context.
 */
Datum
migrate_catalog_row_datum(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	bool		isnull;
	Datum		d;

	/* on a 0.3 catalog its counters add up its ranges' (catalog_ranges.c) */
	migrate_catalog_exec(catalog_is_v3() ?
						 "SELECT pg_catalog.jsonb_populate_record(m, pg_catalog.jsonb_build_object("
						 "  'processed', m.processed OPERATOR(pg_catalog.+) g.processed,"
						 "  'changed', m.changed OPERATOR(pg_catalog.+) g.changed,"
						 "  'batches', m.batches OPERATOR(pg_catalog.+) g.batches,"
						 "  'wal_bytes', m.wal_bytes OPERATOR(pg_catalog.+) g.wal_bytes))"
						 " FROM migrate.migrations m CROSS JOIN LATERAL (SELECT"
						 "  COALESCE(pg_catalog.sum(r.processed), 0) AS processed,"
						 "  COALESCE(pg_catalog.sum(r.changed), 0) AS changed,"
						 "  COALESCE(pg_catalog.sum(r.batches), 0) AS batches,"
						 "  COALESCE(pg_catalog.sum(r.wal_bytes), 0) AS wal_bytes"
						 "  FROM migrate.ranges r WHERE r.migration OPERATOR(pg_catalog.=) m.id) g"
						 " WHERE m.id OPERATOR(pg_catalog.=) $1" :
						 "SELECT m FROM migrate.migrations m"
						 " WHERE m.id OPERATOR(pg_catalog.=) $1",
						 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "migration with id " INT64_FORMAT " vanished", id);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return SPI_datumTransfer(d, false, -1);
}

/*
 * migrate_catalog_log_event
 *		Append one row to the audit log, in the current transaction.
 *
 * The acting role is the current user, or in a background worker the
 * migration's owner on whose behalf it runs.
 */
void
migrate_catalog_log_event(const char *name, Oid owner, const char *event,
						  const char *detail)
{
	/* a worker acts for the migration's owner */
	migrate_catalog_log_event_by(name, owner,
								 MyBgworkerEntry != NULL ? owner : GetUserId(),
								 event, detail);
}

/*
 * migrate_catalog_log_event_by
 *		Like migrate_catalog_log_event, naming "actor" as the acting role.
 */
void
migrate_catalog_log_event_by(const char *name, Oid owner, Oid actor,
							 const char *event, const char *detail)
{
	Oid			types[5] = {TEXTOID, TEXTOID, NAMEOID, OIDOID, TEXTOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	char	   *role = GetUserNameFromId(actor, true);

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(event);
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(role ? role : "?"));
	values[3] = ObjectIdGetDatum(owner);
	if (detail)
		values[4] = CStringGetTextDatum(detail);
	else
		nulls[4] = 'n';
	migrate_catalog_exec("INSERT INTO migrate.events (migration, event, role, owner, detail)"
						 " VALUES ($1, $2, $3, $4::pg_catalog.regrole, $5)",
						 5, types, values, nulls, SPI_OK_INSERT);
}

/* The names of the states, as migrate.migrations.state stores them */
static const char *const state_names[MIGRATE_NSTATES] = {
	[MIGRATE_REGISTERED] = "registered",
	[MIGRATE_RUNNING] = "running",
	[MIGRATE_PAUSED] = "paused",
	[MIGRATE_CANCELLED] = "cancelled",
	[MIGRATE_DONE] = "done",
	[MIGRATE_FAILED] = "failed",
	[MIGRATE_REVERTED] = "reverted",
};

#define FROM(s) (1 << (s))
#define FROM_ANY ((1 << MIGRATE_NSTATES) - 1)

/*
 * The states each state may be entered from through
 * migrate_catalog_transition: the table of docs/reference.md#states.
 * "registered" is entered by registering, and from any state by
 * registering again with replace => true (migrate_catalog_store; api.c
 * refuses while a runner is at work); "running" by
 * migrate_catalog_mark_started (from any state: a start, restart, take-over
 * or revert); "done" and "reverted" by the batch that finds nothing left
 * (migrate_catalog_record_batch and _record_revert) or, for a revert given
 * up, here.
 */
static const int allowed_from[MIGRATE_NSTATES] = {
	[MIGRATE_REGISTERED] = FROM_ANY,
	[MIGRATE_RUNNING] = FROM_ANY,
	[MIGRATE_PAUSED] = FROM(MIGRATE_RUNNING) | FROM(MIGRATE_REGISTERED) | FROM(MIGRATE_FAILED),
	[MIGRATE_CANCELLED] = FROM(MIGRATE_RUNNING) | FROM(MIGRATE_PAUSED),
	[MIGRATE_DONE] = FROM_ANY & ~(FROM(MIGRATE_DONE) | FROM(MIGRATE_REVERTED)),
	[MIGRATE_FAILED] = FROM(MIGRATE_REGISTERED) | FROM(MIGRATE_RUNNING) |
	FROM(MIGRATE_PAUSED) | FROM(MIGRATE_CANCELLED) | FROM(MIGRATE_FAILED),
	[MIGRATE_REVERTED] = FROM(MIGRATE_RUNNING) | FROM(MIGRATE_PAUSED) |
	FROM(MIGRATE_CANCELLED) | FROM(MIGRATE_FAILED),
};

/*
 * migrate_state_name
 *		The name of a state, as the catalog stores it.
 */
const char *
migrate_state_name(MigrateState state)
{
	Assert(state >= 0 && state < MIGRATE_NSTATES);
	return state_names[state];
}

/*
 * state_parse
 *		The state called "name"; errors out on a name the catalog's CHECK
 *		constraint would not have let in.
 */
static MigrateState
state_parse(const char *name)
{
	for (int i = 0; i < MIGRATE_NSTATES; i++)
		if (strcmp(state_names[i], name) == 0)
			return (MigrateState) i;
	elog(ERROR, "unknown migration state \"%s\"", name);
	return MIGRATE_REGISTERED;	/* keep the compiler quiet */
}

/*
 * check_transition
 *		Error out (an internal error: callers check states first) unless m
 *		may go from its state to "to".
 */
static void
check_transition(const Migration *m, MigrateState to)
{
	if (!(allowed_from[to] & FROM(m->state)))
		elog(ERROR, "migration \"%s\" cannot go from %s to %s",
			 m->name, migrate_state_name(m->state), migrate_state_name(to));
}

/*
 * States of a background verification (migrate.migrations.verify_state,
 * NULL before any), and the states each may be entered from.  A verifying
 * process leaves "running" only for its own verification (verify_pid); a
 * new background verification may replace a "running" one whose worker is
 * gone (the caller checked, migrate_catalog_verify_running).
 */
static const char *const verify_state_names[VERIFY_NSTATES] = {
	[VERIFY_NONE] = NULL,
	[VERIFY_RUNNING] = "running",
	[VERIFY_DONE] = "done",
	[VERIFY_FAILED] = "failed",
};

static const int verify_allowed_from[VERIFY_NSTATES] = {
	[VERIFY_NONE] = 0,
	[VERIFY_RUNNING] = FROM(VERIFY_NONE) | FROM(VERIFY_RUNNING) |
	FROM(VERIFY_DONE) | FROM(VERIFY_FAILED),
	[VERIFY_DONE] = FROM(VERIFY_NONE) | FROM(VERIFY_RUNNING) |
	FROM(VERIFY_DONE) | FROM(VERIFY_FAILED),
	[VERIFY_FAILED] = FROM(VERIFY_RUNNING),
};

/*
 * verify_from_array
 *		The names of the states verify state "to" may be entered from, as a
 *		text[] for a statement's "verify_state = ANY ($n)"; VERIFY_NONE
 *		(NULL) is tested apart.
 */
static Datum
verify_from_array(VerifyState to)
{
	List	   *names = NIL;

	for (int i = VERIFY_NONE + 1; i < VERIFY_NSTATES; i++)
		if (verify_allowed_from[to] & FROM(i))
			names = lappend(names, (char *) verify_state_names[i]);
	return list_to_text_array(names);
}

/*
 * migrate_catalog_transition
 *		Move migration m to state "to", log "event" (unless NULL) with
 *		"detail", and update m->state.
 *
 * Entering "done" or "failed" sets finished_at; "failed" stores detail as
 * last_error; "cancelled" and "failed" end a series.  worker_pid is left
 * alone: a runner clears it itself when it stops (migrate_runner_release).
 * The caller holds the row lock or is the migration's runner.
 */
void
migrate_catalog_transition(Migration *m, MigrateState to, const char *event,
						   const char *detail)
{
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	check_transition(m, to);
	values[0] = Int64GetDatum(m->id);
	values[1] = CStringGetTextDatum(migrate_state_name(to));
	if (detail && to == MIGRATE_FAILED)
		values[2] = CStringGetTextDatum(detail);
	else
		nulls[2] = 'n';
	migrate_catalog_exec("UPDATE migrate.migrations SET"
						 " state = $2,"
						 " finished_at = CASE WHEN $2 OPERATOR(pg_catalog.=) ANY ('{done,failed}')"
						 "     THEN pg_catalog.clock_timestamp() ELSE finished_at END,"
						 " last_error = CASE WHEN $2 OPERATOR(pg_catalog.=) 'failed'"
						 "     THEN $3 ELSE last_error END,"
						 " series_rest = CASE WHEN $2 OPERATOR(pg_catalog.=) ANY ('{cancelled,failed}')"
						 "     THEN NULL ELSE series_rest END"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 3, types, values, nulls, SPI_OK_UPDATE);
	if (event)
		migrate_catalog_log_event(m->name, m->owner, event, detail);
	m->state = to;
}

/*
 * migrate_catalog_start_foreground
 *		Mark m running in this session (CALL migrate_run), which holds its
 *		runner lock, and log the event "run".  total is the progress total
 *		for migrate_status; started_by is the caller, not the catalog owner
 *		the statement runs as.  The caller holds m's row lock.
 */
void
migrate_catalog_start_foreground(Migration *m, int64 total)
{
	Oid			types[5] = {INT8OID, INT4OID, INT8OID, INT8OID, NAMEOID};
	Datum		values[5];

	check_transition(m, MIGRATE_RUNNING);
	values[0] = Int64GetDatum(m->id);
	values[1] = Int32GetDatum(MyProcPid);
	values[2] = Int64GetDatum(total);
	values[3] = Int64GetDatum(migrate_progress_done(m));
	values[4] = DirectFunctionCall1(namein,
									CStringGetDatum(GetUserNameFromId(GetUserId(), false)));
	migrate_catalog_exec(psprintf("UPDATE migrate.migrations SET state = 'running',"
								  " worker_pid = $2, started_at = pg_catalog.clock_timestamp(),"
								  " started_by = $5, run_processed = $4,"
								  " total_estimate = $3,"
								  " last_batch_at = NULL, finished_at = NULL, last_error = NULL%s"
								  " WHERE id OPERATOR(pg_catalog.=) $1",
								  m->catalog_v3 ? ", run_wal_bytes = wal_bytes OPERATOR(pg_catalog.+)"
								  " COALESCE((SELECT pg_catalog.sum(r.wal_bytes) FROM migrate.ranges r"
								  "  WHERE r.migration OPERATOR(pg_catalog.=) $1), 0)" : ""),
						 5, types, values, NULL, SPI_OK_UPDATE);
	m->state = MIGRATE_RUNNING;
	m->worker_pid = MyProcPid;
	migrate_catalog_log_event(m->name, m->owner, "run", "in the foreground");
}

/*
 * migrate_catalog_set_throttled
 *		Record why m's runner holds back (NULL: it does not).
 */
void
migrate_catalog_set_throttled(const Migration *m, const char *why)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};

	values[0] = Int64GetDatum(m->id);
	if (why)
		values[1] = CStringGetTextDatum(why);
	else
		nulls[1] = 'n';
	migrate_catalog_exec("UPDATE migrate.migrations SET throttled = $2"
						 " WHERE id OPERATOR(pg_catalog.=) $1"
						 " AND throttled IS DISTINCT FROM $2",
						 2, types, values, nulls, SPI_OK_UPDATE);
}

/*
 * migrate_catalog_record_batch
 *		Store what a batch did, in the batch's own transaction.
 *
 * Advances the cursor and counters, but only from the cursor the batch
 * started at (compare and set: a batch can never be recorded twice, even
 * if two runners ever raced).  When the batch found nothing left the
 * migration becomes done (whatever pause or cancel raced it: the work is
 * finished).  m->state is refreshed from the row, so the caller sees a
 * pause or cancel that committed while the batch ran.
 */
void
migrate_catalog_record_batch(Migration *m, const BatchResult *res)
{
	Oid			types[13] = {INT8OID, JSONBOID, INT8OID, INT8OID, BOOLOID, JSONBOID,
	INT4OID, INT8OID, TEXTOID, BOOLOID, INT4OID, INT8OID, JSONBOID};
	Datum		values[13];
	char		nulls[13] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;

	values[0] = Int64GetDatum(m->id);
	if (res->new_cursor)
		values[1] = JsonbPGetDatum(res->new_cursor);
	else
		nulls[1] = 'n';
	values[2] = Int64GetDatum(res->visited);
	values[3] = Int64GetDatum(res->changed);
	values[4] = BoolGetDatum(res->done);
	if (m->cursor)
		values[5] = JsonbPGetDatum(m->cursor);
	else
		nulls[5] = 'n';
	values[6] = Int32GetDatum(m->adapted_size > 0 ? m->adapted_size : m->batch_size);
	values[7] = Int64GetDatum(res->wal_bytes);
	if (m->throttled)
		values[8] = CStringGetTextDatum(m->throttled);
	else
		nulls[8] = 'n';
	values[9] = BoolGetDatum(res->next_pass);
	values[10] = Int32GetDatum(m->pass);
	values[11] = Int64GetDatum(res->failing);
	if (res->sample)
		values[12] = JsonbPGetDatum(res->sample);
	else
		nulls[12] = 'n';

	/*
	 * On a 0.3 catalog the batch also counts for its pass (verify.c): a pass
	 * that ends starts the next one from the first key, in this same
	 * compare-and-set, and a catch_up migration that is done records what
	 * its last pass found as its verification.
	 */
	migrate_catalog_exec(psprintf("UPDATE migrate.migrations SET"
						 " cursor = CASE WHEN $10 THEN NULL ELSE COALESCE($2, cursor) END,"
						 " processed = processed OPERATOR(pg_catalog.+) $3,"
						 " changed = changed OPERATOR(pg_catalog.+) $4,"
						 " batches = batches OPERATOR(pg_catalog.+) CASE WHEN $3 OPERATOR(pg_catalog.>) 0 OR $2 IS NOT NULL THEN 1 ELSE 0 END,"
						 " last_batch_at = pg_catalog.clock_timestamp(),"
						 " state = CASE WHEN $5 THEN 'done' ELSE state END,"
						 " finished_at = CASE WHEN $5 THEN pg_catalog.clock_timestamp() ELSE finished_at END,"
						 " worker_pid = CASE WHEN $5 THEN NULL ELSE worker_pid END,"
						 " last_error = CASE WHEN $5 THEN NULL ELSE last_error END,"
						 " batch_size = CASE WHEN adaptive THEN $7 ELSE batch_size END,"
						 " wal_bytes = wal_bytes OPERATOR(pg_catalog.+) $8,"
						 " throttled = $9%s"
						 " WHERE id OPERATOR(pg_catalog.=) $1"
						 " AND cursor IS NOT DISTINCT FROM $6%s"
						 " RETURNING state",
						 m->catalog_v3 ?
						 ", pass = pass OPERATOR(pg_catalog.+) CASE WHEN $10 THEN 1 ELSE 0 END,"
						 " pass_visited = CASE WHEN $10 THEN 0"
						 "  ELSE pass_visited OPERATOR(pg_catalog.+) $3 END,"
						 " pass_changed = CASE WHEN $10 THEN 0"
						 "  ELSE pass_changed OPERATOR(pg_catalog.+) $4 OPERATOR(pg_catalog.+) $12 END,"
						 " pass_sample = CASE WHEN $10 THEN NULL WHEN $13 IS NULL THEN pass_sample"
						 "  ELSE pg_catalog.jsonb_path_query_array(COALESCE(pass_sample, '[]')"
						 "   OPERATOR(pg_catalog.||) $13, '$[0 to 9]') END,"
						 " caught_rows = caught_rows OPERATOR(pg_catalog.+)"
						 "  CASE WHEN pass OPERATOR(pg_catalog.>=) 1"
						 "   AND pass OPERATOR(pg_catalog.<=) max_passes THEN $4 ELSE 0 END,"
						 " verified_at = CASE WHEN $5 AND catch_up THEN pg_catalog.clock_timestamp()"
						 "  ELSE verified_at END,"
						 " verify_checked = CASE WHEN $5 AND catch_up THEN pass_visited ELSE verify_checked END,"
						 " failing_rows = CASE WHEN $5 AND catch_up THEN"
						 "  CASE WHEN pass OPERATOR(pg_catalog.>) max_passes THEN pass_changed ELSE 0 END"
						 "  ELSE failing_rows END,"
						 " verify_sample = CASE WHEN $5 AND catch_up THEN"
						 "  CASE WHEN pass OPERATOR(pg_catalog.>) max_passes"
						 "   THEN COALESCE(pass_sample, '[]') ELSE '[]' END"
						 "  ELSE verify_sample END" : "",
						 m->catalog_v3 ? " AND pass OPERATOR(pg_catalog.=) $11" : ""),
						 13, types, values, nulls, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("migration \"%s\" was changed by someone else while a batch ran", m->name),
				 errdetail("It was unregistered, or its cursor moved; the batch was rolled back.")));
	m->state = state_parse(TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
																	 SPI_tuptable->tupdesc, 1,
																	 &isnull)));
	m->processed += res->visited;
	m->changed += res->changed;
	if (res->new_cursor)
		m->cursor = res->new_cursor;
	if (res->next_pass)
	{
		m->cursor = NULL;
		m->pass++;
		m->pass_changed = 0;
	}
	if (res->done && m->catch_up)
		migrate_catalog_log_event(m->name, m->owner, "done",
								  psprintf("processed " INT64_FORMAT ", changed " INT64_FORMAT
										   ", in %d catch-up passes; " INT64_FORMAT " rows still fail the check",
										   m->processed, m->changed, Min(m->pass, m->max_passes),
										   m->pass > m->max_passes ? m->pass_changed + res->failing : 0));
	else if (res->done)
		migrate_catalog_log_event(m->name, m->owner, "done",
								  psprintf("processed " INT64_FORMAT ", changed " INT64_FORMAT,
										   m->processed, m->changed));
}

/*
 * migrate_catalog_add_error
 *		Record in migrate.errors that the row with this key could not be
 *		changed ("change") or restored ("revert"), with the error's SQLSTATE
 *		and message, in the current transaction.
 */
void
migrate_catalog_add_error(const Migration *m, Datum key, const char *phase,
						  const ErrorData *edata)
{
	Oid			types[5] = {TEXTOID, JSONBOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[5];

	values[0] = CStringGetTextDatum(m->name);
	values[1] = key;
	values[2] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	values[3] = CStringGetTextDatum(edata->message ? edata->message : "?");
	values[4] = CStringGetTextDatum(phase);
	migrate_catalog_exec("INSERT INTO migrate.errors (migration, key, sqlstate, message, phase)"
						 " VALUES ($1, $2, $3, $4, $5)",
						 5, types, values, NULL, SPI_OK_INSERT);
}

/*
 * migrate_catalog_record_revert
 *		Store what a revert batch did, in the batch's own transaction:
 *		move the revert cursor down to new_cursor (compare and set, as for
 *		forward batches), count the restored rows, and when nothing was
 *		left mark the migration reverted.  m->state is refreshed.
 */
void
migrate_catalog_record_revert(Migration *m, const BatchResult *res, int64 new_cursor)
{
	Oid			types[7] = {INT8OID, INT8OID, INT8OID, BOOLOID, INT8OID, INT4OID, INT8OID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;

	values[0] = Int64GetDatum(m->id);
	values[1] = Int64GetDatum(new_cursor);
	nulls[1] = res->done ? 'n' : ' ';
	values[2] = Int64GetDatum(res->changed);
	values[3] = BoolGetDatum(res->done);
	values[4] = Int64GetDatum(m->revert_cursor);
	nulls[4] = m->has_revert_cursor ? ' ' : 'n';
	values[5] = Int32GetDatum(m->adapted_size > 0 ? m->adapted_size : m->batch_size);
	values[6] = Int64GetDatum(res->wal_bytes);
	migrate_catalog_exec("UPDATE migrate.migrations SET"
						 " revert_cursor = COALESCE($2, revert_cursor),"
						 " reverted = reverted OPERATOR(pg_catalog.+) $3,"
						 " last_batch_at = pg_catalog.clock_timestamp(),"
						 " state = CASE WHEN $4 THEN 'reverted' ELSE state END,"
						 " reverting = NOT $4,"
						 " finished_at = CASE WHEN $4 THEN pg_catalog.clock_timestamp() ELSE finished_at END,"
						 " worker_pid = CASE WHEN $4 THEN NULL ELSE worker_pid END,"
						 " last_error = CASE WHEN $4 THEN NULL ELSE last_error END,"
						 " series_rest = CASE WHEN $4 THEN NULL ELSE series_rest END,"
						 " batch_size = CASE WHEN adaptive THEN $6 ELSE batch_size END,"
						 " wal_bytes = wal_bytes OPERATOR(pg_catalog.+) $7"
						 " WHERE id OPERATOR(pg_catalog.=) $1"
						 " AND reverting"
						 " AND revert_cursor IS NOT DISTINCT FROM $5"
						 " RETURNING state",
						 7, types, values, nulls, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("migration \"%s\" was changed by someone else while a revert batch ran", m->name),
				 errdetail("It was unregistered, restarted, or its revert cursor moved; the batch was rolled back.")));
	m->state = state_parse(TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
																	 SPI_tuptable->tupdesc, 1,
																	 &isnull)));
	m->restored += res->changed;
	if (!res->done)
	{
		m->revert_cursor = new_cursor;
		m->has_revert_cursor = true;
	}
	else
	{
		m->reverting = false;
		migrate_catalog_log_event(m->name, m->owner, "reverted",
								  psprintf("restored " INT64_FORMAT " rows", m->restored));
	}
}

/*
 * migrate_catalog_set_batch_size
 *		Fix m's batch size for good: no more adaptive sizing.
 */
void
migrate_catalog_set_batch_size(Migration *m, int32 size)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(m->id), Int32GetDatum(size)};

	migrate_catalog_exec("UPDATE migrate.migrations SET batch_size = $2, adaptive = false"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 2, types, values, NULL, SPI_OK_UPDATE);
	m->batch_size = size;
	m->adaptive = false;
}

/*
 * migrate_catalog_undo_left
 *		How many before-images of m a revert has still to restore.
 */
int64
migrate_catalog_undo_left(const Migration *m)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		isnull;

	values[0] = CStringGetTextDatum(m->name);
	values[1] = Int64GetDatum(m->revert_cursor);
	nulls[1] = m->has_revert_cursor ? ' ' : 'n';
	migrate_catalog_exec("SELECT pg_catalog.count(*) FROM migrate.undo"
						 " WHERE migration OPERATOR(pg_catalog.=) $1"
						 " AND ($2 IS NULL OR id OPERATOR(pg_catalog.<) $2)",
						 2, types, values, nulls, SPI_OK_SELECT);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * migrate_catalog_has_undo
 *		Are before-images of m kept in migrate.undo?
 */
bool
migrate_catalog_has_undo(const Migration *m)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(m->name)};

	if (!m->catalog_v2)
		return false;
	migrate_catalog_exec("SELECT FROM migrate.undo WHERE migration OPERATOR(pg_catalog.=) $1 LIMIT 1",
						 1, types, values, NULL, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/*
 * migrate_catalog_delete_errors
 *		Drop m's records in migrate.errors: all of them, or with
 *		revert_only those a revert left.  Returns how many.
 */
int64
migrate_catalog_delete_errors(const Migration *m, bool revert_only)
{
	Oid			types[2] = {TEXTOID, BOOLOID};
	Datum		values[2] = {CStringGetTextDatum(m->name), BoolGetDatum(revert_only)};

	if (!m->catalog_v2)
		return 0;
	migrate_catalog_exec("DELETE FROM migrate.errors WHERE migration OPERATOR(pg_catalog.=) $1"
						 " AND (NOT $2 OR phase OPERATOR(pg_catalog.=) 'revert')",
						 2, types, values, NULL, SPI_OK_DELETE);
	return (int64) SPI_processed;
}

/*
 * migrate_catalog_forget_run
 *		Before m runs again from its first key (restart => true): forget
 *		the last run's revert and the rows it skipped, which the new run
 *		finds again.
 */
void
migrate_catalog_forget_run(Migration *m)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(m->id)};

	if (!m->catalog_v2)
		return;
	migrate_catalog_exec("UPDATE migrate.migrations SET reverting = false,"
						 " revert_cursor = NULL, reverted = 0"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 1, types, values, NULL, SPI_OK_UPDATE);
	(void) migrate_catalog_delete_errors(m, false);
	m->reverting = false;
	m->has_revert_cursor = false;
	m->restored = 0;
}

/*
 * migrate_catalog_mark_started
 *		Mark m running for a new runner, from its cursor or (restart) from
 *		the first key with zeroed counters.  estimate is the progress total;
 *		series_rest (SeriesMember) runs after m on behalf of
 *		m->series_starter since m->series_started_at; actor is recorded as
 *		started_by.  The caller holds m's row lock.
 */
void
migrate_catalog_mark_started(Migration *m, bool restart, int64 estimate,
							 List *series_rest, Oid actor)
{
	Oid			types[10] = {INT8OID, BOOLOID, INT8OID, TEXTARRAYOID, NAMEOID, INT8OID,
	INT8ARRAYOID, OIDOID, TIMESTAMPTZOID, INT8OID};
	Datum		values[10];
	char		nulls[10] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		names_null;
	bool		ids_null;

	check_transition(m, MIGRATE_RUNNING);
	values[0] = Int64GetDatum(m->id);
	values[1] = BoolGetDatum(restart);
	values[2] = Int64GetDatum(estimate);
	series_datums(series_rest, &values[3], &names_null, &values[6], &ids_null);
	nulls[3] = names_null ? 'n' : ' ';
	nulls[6] = ids_null ? 'n' : ' ';
	values[4] = DirectFunctionCall1(namein,
									CStringGetDatum(GetUserNameFromId(actor, false)));
	values[5] = Int64GetDatum(restart ? 0 : migrate_progress_done(m));
	values[7] = ObjectIdGetDatum(m->series_starter);
	nulls[7] = names_null ? 'n' : ' ';
	values[8] = TimestampTzGetDatum(m->series_started_at);
	nulls[8] = names_null ? 'n' : ' ';
	/* the table's size, for a migration of a table on a 0.3 catalog */
	values[9] = Int64GetDatum(m->catalog_v3 && m->relation ?
							  migrate_catalog_table_size(m) : -1);
	nulls[9] = DatumGetInt64(values[9]) < 0 ? 'n' : ' ';

	migrate_catalog_exec(psprintf("UPDATE migrate.migrations SET"
								  " state = 'running',"
								  " cursor = CASE WHEN $2 THEN NULL ELSE cursor END,"
								  " processed = CASE WHEN $2 THEN 0 ELSE processed END,"
								  " changed = CASE WHEN $2 THEN 0 ELSE changed END,"
								  " batches = CASE WHEN $2 THEN 0 ELSE batches END,"
								  " run_processed = $6,"
								  " total_estimate = $3,"
								  " started_at = pg_catalog.clock_timestamp(),"
								  " started_by = $5,"
								  " last_batch_at = NULL,"
								  " finished_at = NULL,"
								  " last_error = NULL,"
								  " series_rest = $4%s"
								  " WHERE id OPERATOR(pg_catalog.=) $1",
								  m->catalog_v3 ?
								  ", series_ids = $7, series_starter = $8::pg_catalog.regrole,"
								  " series_started_at = $9, workers_note = NULL,"
								  " run_wal_bytes = wal_bytes OPERATOR(pg_catalog.+) COALESCE((SELECT"
								  "  pg_catalog.sum(r.wal_bytes) FROM migrate.ranges r"
								  "  WHERE r.migration OPERATOR(pg_catalog.=) $1 AND NOT $2), 0),"
								  " size_at_start = CASE WHEN $2 OR cursor IS NULL OR size_at_start IS NULL"
								  "  THEN $10 ELSE size_at_start END,"
								  " pass = CASE WHEN $2 THEN 0 ELSE pass END,"
								  " pass_visited = CASE WHEN $2 THEN 0 ELSE pass_visited END,"
								  " pass_changed = CASE WHEN $2 THEN 0 ELSE pass_changed END,"
								  " pass_sample = CASE WHEN $2 THEN NULL ELSE pass_sample END,"
								  " caught_rows = CASE WHEN $2 THEN 0 ELSE caught_rows END" : ""),
						 10, types, values, nulls, SPI_OK_UPDATE);
	if (restart && m->catalog_v3)
		migrate_catalog_forget_ranges(m->id);
	if (restart)
	{
		m->ranges_total = 0;
		m->cursor = NULL;
		m->processed = m->changed = m->batches = 0;
		m->pass = 0;
		m->pass_changed = 0;
	}
	m->state = MIGRATE_RUNNING;
}

/*
 * migrate_catalog_set_runner
 *		Record pid as the process running m.  With "event", m is handed to
 *		that process, a runner still finishing its batch after a pause or
 *		cancel: m becomes running again, and the event is logged.
 */
void
migrate_catalog_set_runner(Migration *m, int pid, const char *event)
{
	Oid			types[3] = {INT8OID, INT4OID, BOOLOID};
	Datum		values[3] = {Int64GetDatum(m->id), Int32GetDatum(pid),
	BoolGetDatum(event != NULL)};

	if (event)
		check_transition(m, MIGRATE_RUNNING);
	migrate_catalog_exec("UPDATE migrate.migrations SET worker_pid = $2,"
						 " state = CASE WHEN $3 THEN 'running' ELSE state END,"
						 " last_error = CASE WHEN $3 THEN NULL ELSE last_error END"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 3, types, values, NULL, SPI_OK_UPDATE);
	m->state = MIGRATE_RUNNING;
	m->worker_pid = pid;
	if (event)
		migrate_catalog_log_event(m->name, m->owner, event,
								  "handed to the process still running it");
}

/*
 * migrate_catalog_begin_revert
 *		Make m restore its before-images from the newest down, unless it is
 *		already reverting (then it goes on from its revert cursor);
 *		keep_undo keeps the images it applies.
 */
void
migrate_catalog_begin_revert(Migration *m, bool keep_undo)
{
	Oid			types[3] = {INT8OID, BOOLOID, BOOLOID};
	Datum		values[3] = {Int64GetDatum(m->id), BoolGetDatum(keep_undo),
	BoolGetDatum(m->reverting)};

	migrate_catalog_exec("UPDATE migrate.migrations SET keep_undo = $2,"
						 " reverting = true,"
						 " revert_cursor = CASE WHEN $3 THEN revert_cursor END,"
						 " reverted = CASE WHEN $3 THEN reverted ELSE 0 END"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 3, types, values, NULL, SPI_OK_UPDATE);
	if (!m->reverting)
	{
		m->reverting = true;
		m->has_revert_cursor = false;
		m->restored = 0;
	}
	m->keep_undo = keep_undo;
}

/*
 * migrate_catalog_end_revert
 *		A stopped revert of m ends where it got (its images are gone).
 */
void
migrate_catalog_end_revert(Migration *m)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(m->id)};

	migrate_catalog_exec("UPDATE migrate.migrations SET reverting = false,"
						 " finished_at = pg_catalog.clock_timestamp()"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 1, types, values, NULL, SPI_OK_UPDATE);
	m->reverting = false;
}

/*
 * migrate_catalog_forget_undo
 *		Drop m's before-images, and what a revert reported about them;
 *		returns how many images were dropped.
 */
int64
migrate_catalog_forget_undo(const Migration *m)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(m->name)};
	int64		n;

	migrate_catalog_exec("DELETE FROM migrate.undo WHERE migration OPERATOR(pg_catalog.=) $1",
						 1, types, values, NULL, SPI_OK_DELETE);
	n = SPI_processed;
	(void) migrate_catalog_delete_errors(m, true);
	return n;
}

/*
 * migrate_catalog_delete
 *		Forget migration m (its events stay).
 */
void
migrate_catalog_delete(const Migration *m)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(m->id)};

	migrate_catalog_exec("DELETE FROM migrate.migrations WHERE id OPERATOR(pg_catalog.=) $1",
						 1, types, values, NULL, SPI_OK_DELETE);
	if (m->catalog_v3)
		migrate_catalog_forget_ranges(m->id);
}

/*
 * migrate_catalog_set_series
 *		Make rest (SeriesMember) the series that runs after m, on behalf of
 *		m->series_starter since m->series_started_at.
 */
void
migrate_catalog_set_series(Migration *m, List *rest)
{
	Oid			types[5] = {INT8OID, TEXTARRAYOID, INT8ARRAYOID, OIDOID, TIMESTAMPTZOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	bool		names_null;
	bool		ids_null;

	values[0] = Int64GetDatum(m->id);
	series_datums(rest, &values[1], &names_null, &values[2], &ids_null);
	nulls[1] = names_null ? 'n' : ' ';
	nulls[2] = ids_null ? 'n' : ' ';
	values[3] = ObjectIdGetDatum(m->series_starter);
	values[4] = TimestampTzGetDatum(m->series_started_at);
	migrate_catalog_exec(m->catalog_v3 ?
						 "UPDATE migrate.migrations SET series_rest = $2,"
						 " series_ids = $3, series_starter = $4::pg_catalog.regrole,"
						 " series_started_at = $5"
						 " WHERE id OPERATOR(pg_catalog.=) $1" :
						 "UPDATE migrate.migrations SET series_rest = $2"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 5, types, values, nulls, SPI_OK_UPDATE);
	m->series_rest = rest;
}

/*
 * migrate_catalog_pending_in_series
 *		Is "name" waiting for its turn in a series that is still going?
 */
bool
migrate_catalog_pending_in_series(const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};

	migrate_catalog_exec("SELECT id, state OPERATOR(pg_catalog.=) 'done' FROM migrate.migrations"
						 " WHERE $1 OPERATOR(pg_catalog.=) ANY (series_rest)"
						 " AND state OPERATOR(pg_catalog.=) ANY ('{running,paused,done}')",
						 1, types, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
													 SPI_tuptable->tupdesc, 1, &isnull));
		bool		done = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i],
													  SPI_tuptable->tupdesc, 2, &isnull));

		/* a member that is done hands over while its worker still holds on */
		if (!done || migrate_runner_active(id))
			return true;
	}
	return false;
}

/*
 * migrate_catalog_end_series
 *		The series after migration id has been handed over (or has
 *		stopped): forget its rest.
 */
void
migrate_catalog_end_series(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	migrate_catalog_exec("UPDATE migrate.migrations SET series_rest = NULL"
						 " WHERE id OPERATOR(pg_catalog.=) $1 AND series_rest IS NOT NULL",
						 1, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * migrate_catalog_store
 *		Store the checked definition def as a new migration (existing is
 *		NULL), or as the new definition of "existing", the migration of that
 *		name, which starts over as registered; returns its id.  The caller
 *		holds the existing row's lock and has made sure no runner works on
 *		it.  The columns of later catalog versions are written only
 *		where the catalog has them.
 */
int64
migrate_catalog_store(const MigrationDef *def, const Migration *existing)
{
	bool		replace = existing != NULL;
	Oid			types[18];
	Datum		values[18];
	char		nulls[18];
	int64		id;
	bool		isnull;

	memset(nulls, ' ', sizeof(nulls));
#define ARG(i, type, value, isnull_) \
	(types[i] = (type), values[i] = (isnull_) ? (Datum) 0 : (value), nulls[i] = (isnull_) ? 'n' : ' ')
#define TEXT_OR_NULL(i, str) ARG(i, TEXTOID, (str) ? CStringGetTextDatum(str) : 0, (str) == NULL)
	ARG(0, TEXTOID, CStringGetTextDatum(def->name), false);
	ARG(1, TEXTOID, CStringGetTextDatum(def->action), false);
	TEXT_OR_NULL(2, def->relation);
	ARG(3, TEXTARRAYOID, def->key_columns ? list_to_text_array(def->key_columns) : 0,
		def->key_columns == NIL);
	TEXT_OR_NULL(4, def->set_clause);
	TEXT_OR_NULL(5, def->where_clause);
	TEXT_OR_NULL(6, def->row_fn_text);
	TEXT_OR_NULL(7, def->sql);
	ARG(8, INT4OID, Int32GetDatum(def->batch_size), false);
	ARG(9, INTERVALOID, def->pause, false);
	ARG(10, INTERVALOID, def->lock_timeout, false);
	ARG(11, TEXTOID, CStringGetTextDatum(def->search_path), false);
	ARG(12, OIDOID, ObjectIdGetDatum(def->owner), false);
	ARG(13, BOOLOID, BoolGetDatum(def->adaptive), false);
	ARG(14, INTERVALOID, def->target_batch_time, false);
	ARG(15, INT4OID, Int32GetDatum(def->min_batch_size), false);
	ARG(16, INT4OID, Int32GetDatum(def->max_batch_size), false);
	ARG(17, FLOAT4OID, Float4GetDatum(def->busy_share), false);
#undef TEXT_OR_NULL
#undef ARG

	if (replace)
		check_transition(existing, MIGRATE_REGISTERED);
	if (replace)
		migrate_catalog_exec("UPDATE migrate.migrations SET"
							 " action = $2, relation = $3, key_columns = $4,"
							 " set_clause = $5, where_clause = $6, row_fn = $7, sql = $8,"
							 " batch_size = $9, pause = $10, lock_timeout = $11,"
							 " search_path = $12, owner = $13::pg_catalog.regrole,"
							 " state = 'registered', cursor = NULL, processed = 0,"
							 " changed = 0, batches = 0, total_estimate = NULL,"
							 " run_processed = 0, registered_at = pg_catalog.clock_timestamp(),"
							 " started_at = NULL, started_by = NULL, last_batch_at = NULL,"
							 " finished_at = NULL, last_error = NULL, worker_pid = NULL,"
							 " series_rest = NULL, adaptive = $14, target_batch_time = $15,"
							 " min_batch_size = $16, max_batch_size = $17, busy_share = $18,"
							 " wal_bytes = 0, throttled = NULL"
							 " WHERE name OPERATOR(pg_catalog.=) $1 RETURNING id",
							 18, types, values, nulls, SPI_OK_UPDATE_RETURNING);
	else
		migrate_catalog_exec("INSERT INTO migrate.migrations"
							 " (name, action, relation, key_columns, set_clause,"
							 "  where_clause, row_fn, sql, batch_size, pause,"
							 "  lock_timeout, search_path, owner, adaptive, target_batch_time,"
							 "  min_batch_size, max_batch_size, busy_share)"
							 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
							 "  $13::pg_catalog.regrole, $14, $15, $16, $17, $18) RETURNING id",
							 18, types, values, nulls, SPI_OK_INSERT_RETURNING);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	if (def->has_v2_options)
	{
		Oid			t2[3] = {INT8OID, TEXTOID, BOOLOID};
		Datum		v2[3] = {Int64GetDatum(id),
			CStringGetTextDatum(def->skip_errors ? "skip" : "stop"),
		BoolGetDatum(def->keep_before)};

		migrate_catalog_exec("UPDATE migrate.migrations SET on_error = $2, keep_before = $3,"
							 " reverting = false, keep_undo = false, revert_cursor = NULL,"
							 " reverted = 0 WHERE id OPERATOR(pg_catalog.=) $1",
							 3, t2, v2, NULL, SPI_OK_UPDATE);
	}
	if (catalog_is_v3())
	{
		Oid			t3[9] = {INT8OID, TEXTARRAYOID, BOOLOID, INT8OID, TEXTOID, BOOLOID, INT4OID,
		INT4OID, OIDOID};
		Datum		v3[9] = {Int64GetDatum(id), (Datum) 0, BoolGetDatum(def->vacuum),
			Int64GetDatum(def->max_wal_rate),
			def->check_clause ? CStringGetTextDatum(def->check_clause) : (Datum) 0,
			BoolGetDatum(def->catch_up), Int32GetDatum(def->max_passes),
		Int32GetDatum(Max(def->workers, 1)), ObjectIdGetDatum(def->relid)};
		char		n3[9] = {' ', 'n', ' ', def->max_wal_rate < 0 ? 'n' : ' ',
		def->check_clause ? ' ' : 'n', ' ', ' ', ' ', OidIsValid(def->relid) ? ' ' : 'n'};

		if (def->key_types != NIL)
		{
			v3[1] = list_to_text_array(def->key_types);
			n3[1] = ' ';
		}
		migrate_catalog_exec("UPDATE migrate.migrations SET key_types = $2,"
							 " series_ids = NULL, series_starter = NULL, series_started_at = NULL,"
							 " vacuum = $3, max_wal_rate = $4, size_at_start = NULL, vacuums = 0,"
							 " check_clause = $5, catch_up = $6, max_passes = $7, pass = 0,"
							 " pass_visited = 0, pass_changed = 0, pass_sample = NULL,"
							 " caught_rows = 0, verified_at = NULL, verify_checked = NULL,"
							 " failing_rows = NULL, verify_sample = NULL, verify_state = NULL,"
							 " verify_pid = NULL, verify_error = NULL,"
							 " workers = $8, workers_note = NULL, relid = $9::pg_catalog.regclass"
							 " WHERE id OPERATOR(pg_catalog.=) $1",
							 9, t3, v3, n3, SPI_OK_UPDATE);
		/* a definition registered again starts over: its ranges too */
		migrate_catalog_forget_ranges(id);
	}
	return id;
}

/*
 * migrate_catalog_set_key_types
 *		Record the key types of m, registered before 0.3, as they are now.
 */
void
migrate_catalog_set_key_types(const Migration *m, List *key_types)
{
	Oid			types[2] = {INT8OID, TEXTARRAYOID};
	Datum		values[2] = {Int64GetDatum(m->id), list_to_text_array(key_types)};

	migrate_catalog_exec("UPDATE migrate.migrations SET key_types = $2"
						 " WHERE id OPERATOR(pg_catalog.=) $1 AND key_types IS NULL",
						 2, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * migrate_catalog_update_key_types
 *		Record the key types of m, registered before 0.4, in 0.4's spelling,
 *		if they are still those 0.3 recorded (m->key_types).
 */
void
migrate_catalog_update_key_types(const Migration *m, List *key_types)
{
	Oid			types[3] = {INT8OID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[3] = {Int64GetDatum(m->id), list_to_text_array(key_types),
	list_to_text_array(m->key_types)};

	migrate_catalog_exec("UPDATE migrate.migrations SET key_types = $2"
						 " WHERE id OPERATOR(pg_catalog.=) $1 AND key_types OPERATOR(pg_catalog.=) $3",
						 3, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * migrate_catalog_clear_runner
 *		This process no longer runs m: clear worker_pid if it names us.
 */
void
migrate_catalog_clear_runner(Migration *m)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(m->id), Int32GetDatum(MyProcPid)};

	migrate_catalog_exec("UPDATE migrate.migrations SET worker_pid = NULL"
						 " WHERE id OPERATOR(pg_catalog.=) $1"
						 " AND worker_pid OPERATOR(pg_catalog.=) $2",
						 2, types, values, NULL, SPI_OK_UPDATE);
	m->worker_pid = 0;
}

/*
 * migrate_catalog_stop_series
 *		Record on the finished member prev_id of a series why the series
 *		went no further: its last_error, and the event "series stopped".
 */
void
migrate_catalog_stop_series(int64 prev_id, const char *prev_name, Oid prev_owner,
							const char *why)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(prev_id), CStringGetTextDatum(why)};

	migrate_catalog_exec("UPDATE migrate.migrations SET last_error = $2"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 2, types, values, NULL, SPI_OK_UPDATE);
	migrate_catalog_log_event(prev_name, prev_owner, "series stopped", why);
}

/*
 * migrate_catalog_running_names
 *		The names of the migrations marked running, oldest first, in cxt.
 */
List *
migrate_catalog_running_names(MemoryContext cxt)
{
	List	   *names = NIL;

	migrate_catalog_exec("SELECT name FROM migrate.migrations"
						 " WHERE state OPERATOR(pg_catalog.=) 'running' ORDER BY id",
						 0, NULL, NULL, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i],
									  SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(cxt);

		names = lappend(names, TextDatumGetCString(d));
		MemoryContextSwitchTo(old);
	}
	return names;
}

/*
 * migrate_catalog_next_undo
 *		The next batch_size before-images of m below its revert cursor,
 *		newest first, as a jsonb array of {i: id, k: key, b: before,
 *		a: after} in *images, with the lowest id and their count.  Returns
 *		false when none is left.
 */
bool
migrate_catalog_next_undo(const Migration *m, int32 batch_size, Datum *images,
						  int64 *lowest, int64 *count)
{
	Oid			types[3] = {TEXTOID, INT8OID, INT4OID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	bool		isnull;

	values[0] = CStringGetTextDatum(m->name);
	values[1] = Int64GetDatum(m->revert_cursor);
	nulls[1] = m->has_revert_cursor ? ' ' : 'n';
	values[2] = Int32GetDatum(batch_size);
	migrate_catalog_exec("SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object("
						 "'i', u.id, 'k', u.key, 'b', u.before, 'a', u.after) ORDER BY u.id DESC),"
						 " pg_catalog.min(u.id), pg_catalog.count(*)"
						 " FROM (SELECT id, key, before, after FROM migrate.undo"
						 "  WHERE migration OPERATOR(pg_catalog.=) $1"
						 "  AND ($2 IS NULL OR id OPERATOR(pg_catalog.<) $2)"
						 "  ORDER BY id DESC LIMIT $3) u",
						 3, types, values, nulls, SPI_OK_SELECT);
	*images = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return false;
	*lowest = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	*count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	return true;
}

/*
 * migrate_catalog_settle_revert
 *		After a revert batch of m over the images down to id "lowest":
 *		forget the images restored (int8[] "restored", 0 for none) unless
 *		keep_undo, and record in migrate.errors every image of the batch
 *		that was neither restored nor failed (int8[] "failed"): its row was
 *		changed or removed after the migration wrote it.  Returns how many
 *		such rows were recorded.
 */
int64
migrate_catalog_settle_revert(const Migration *m, int64 lowest, Datum restored,
							  Datum failed)
{
	Oid			types[6] = {TEXTOID, INT8OID, INT8ARRAYOID, BOOLOID, INT8OID, INT8ARRAYOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = CStringGetTextDatum(m->name);
	values[1] = Int64GetDatum(m->revert_cursor);
	nulls[1] = m->has_revert_cursor ? ' ' : 'n';
	values[2] = restored;
	nulls[2] = restored == (Datum) 0 ? 'n' : ' ';
	values[3] = BoolGetDatum(m->keep_undo);
	values[4] = Int64GetDatum(lowest);
	values[5] = failed;
	nulls[5] = failed == (Datum) 0 ? 'n' : ' ';
	migrate_catalog_exec("WITH batch AS MATERIALIZED (SELECT id, key FROM migrate.undo"
						 "  WHERE migration OPERATOR(pg_catalog.=) $1"
						 "  AND ($2 IS NULL OR id OPERATOR(pg_catalog.<) $2)"
						 "  AND id OPERATOR(pg_catalog.>=) $5),"
						 " done AS MATERIALIZED (SELECT pg_catalog.unnest($3) AS id),"
						 " failed AS MATERIALIZED (SELECT pg_catalog.unnest($6) AS id),"
						 " gone AS (DELETE FROM migrate.undo u USING done"
						 "  WHERE NOT $4 AND u.migration OPERATOR(pg_catalog.=) $1"
						 "  AND u.id OPERATOR(pg_catalog.=) done.id)"
						 " INSERT INTO migrate.errors (migration, key, sqlstate, message, phase)"
						 " SELECT $1, b.key, '55000',"
						 "  'row was changed or removed after the migration wrote it; left as it is',"
						 "  'revert' FROM batch b"
						 "  WHERE NOT EXISTS (SELECT FROM done d WHERE d.id OPERATOR(pg_catalog.=) b.id)"
						 "  AND NOT EXISTS (SELECT FROM failed f WHERE f.id OPERATOR(pg_catalog.=) b.id)",
						 6, types, values, nulls, SPI_OK_INSERT);
	return (int64) SPI_processed;
}

/*
 * migrate_catalog_add_images
 *		Keep the before-images of a batch of m in migrate.undo: three
 *		parallel jsonb[] of keys, before- and after-images.
 */
void
migrate_catalog_add_images(const Migration *m, Datum keys, Datum befores,
						   Datum afters)
{
	Oid			types[4] = {TEXTOID, JSONBARRAYOID, JSONBARRAYOID, JSONBARRAYOID};
	Datum		values[4] = {CStringGetTextDatum(m->name), keys, befores, afters};

	migrate_catalog_exec("INSERT INTO migrate.undo (migration, key, before, after)"
						 " SELECT $1, u.k, u.b, u.a"
						 " FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3),"
						 " pg_catalog.unnest($4)) AS u (k, b, a)",
						 4, types, values, NULL, SPI_OK_INSERT);
}

/*
 * migrate_catalog_skipped_rows
 *		The rows m's change set aside (migrate.errors, phase "change"),
 *		oldest first: their ids and keys, palloc'd; returns how many.
 */
int64
migrate_catalog_skipped_rows(const Migration *m, int64 **ids, Jsonb ***keys)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(m->name)};
	uint64		n;

	migrate_catalog_exec("SELECT id, key FROM migrate.errors"
						 " WHERE migration OPERATOR(pg_catalog.=) $1"
						 " AND phase OPERATOR(pg_catalog.=) 'change' ORDER BY id",
						 1, types, values, NULL, SPI_OK_SELECT);
	n = SPI_processed;
	*ids = palloc(sizeof(int64) * (n + 1));
	*keys = palloc(sizeof(Jsonb *) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		(*ids)[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		(*keys)[i] = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
	return (int64) n;
}

/*
 * migrate_catalog_settle_skipped_row
 *		A set-aside row (migrate.errors id) was tried again: forget it if
 *		it now succeeded (edata NULL), else record its new error.
 */
void
migrate_catalog_settle_skipped_row(int64 id, const ErrorData *edata)
{
	Oid			types[4] = {INT8OID, TEXTOID, TEXTOID, BOOLOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(id);
	values[1] = edata ? CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode)) : (Datum) 0;
	nulls[1] = edata ? ' ' : 'n';
	values[2] = edata ? CStringGetTextDatum(edata->message) : (Datum) 0;
	nulls[2] = edata ? ' ' : 'n';
	values[3] = BoolGetDatum(edata == NULL);
	migrate_catalog_exec("WITH gone AS (DELETE FROM migrate.errors"
						 "  WHERE $4 AND id OPERATOR(pg_catalog.=) $1)"
						 " UPDATE migrate.errors SET sqlstate = $2, message = $3,"
						 "  at = pg_catalog.clock_timestamp()"
						 " WHERE NOT $4 AND id OPERATOR(pg_catalog.=) $1",
						 4, types, values, nulls, 0);
}

/*
 * migrate_catalog_add_changed
 *		Count "changed" more rows changed by m (rows retried by hand).
 */
void
migrate_catalog_add_changed(const Migration *m, int64 changed)
{
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2] = {Int64GetDatum(m->id), Int64GetDatum(changed)};

	migrate_catalog_exec("UPDATE migrate.migrations SET changed = changed OPERATOR(pg_catalog.+) $2"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 2, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * migrate_catalog_count_vacuum
 *		Count a VACUUM of m's table by its worker.
 */
void
migrate_catalog_count_vacuum(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	migrate_catalog_exec("UPDATE migrate.migrations SET vacuums = vacuums OPERATOR(pg_catalog.+) 1"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 1, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * migrate_catalog_table_size
 *		The size of m's table with all its partitions, in bytes (-1 if it is
 *		gone).
 */
int64
migrate_catalog_table_size(const Migration *m)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(m->relation)};
	bool		isnull;
	Datum		d;

	migrate_catalog_exec("SELECT pg_catalog.sum(pg_catalog.pg_table_size(c.oid))::pg_catalog.int8"
						 " FROM pg_catalog.pg_class c"
						 " WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)"
						 " OR c.oid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT pt.relid FROM"
						 "  pg_catalog.pg_partition_tree(pg_catalog.to_regclass($1)) pt))",
						 1, types, values, NULL, SPI_OK_SELECT);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? -1 : DatumGetInt64(d);
}

/*
 * migrate_catalog_set_verified
 *		Record what a verification of m found (w): the rows checked, those
 *		failing the check and the keys of the first of them, with the time.
 *		A background verify (verify_pid is ours) is over.
 */
void
migrate_catalog_set_verified(const Migration *m, const VerifyWalk *w)
{
	Oid			types[8] = {INT8OID, INT8OID, INT8OID, JSONBOID, INT4OID,
	TEXTARRAYOID, BOOLOID, TEXTOID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(m->id);
	values[1] = Int64GetDatum(w->checked);
	values[2] = Int64GetDatum(w->failing);
	if (w->sample)
		values[3] = JsonbPGetDatum(w->sample);
	else
		nulls[3] = 'n';
	values[4] = Int32GetDatum(MyProcPid);
	values[5] = verify_from_array(VERIFY_DONE);
	values[6] = BoolGetDatum((verify_allowed_from[VERIFY_DONE] & FROM(VERIFY_NONE)) != 0);
	values[7] = CStringGetTextDatum(verify_state_names[VERIFY_DONE]);
	migrate_catalog_exec("UPDATE migrate.migrations SET"
						 " verified_at = pg_catalog.clock_timestamp(),"
						 " verify_checked = $2, failing_rows = $3,"
						 " verify_sample = COALESCE($4, '[]'),"
						 " verify_error = NULL,"
						 " verify_state = CASE WHEN (verify_state IS NULL AND $7)"
						 "  OR (verify_state OPERATOR(pg_catalog.=) ANY ($6)"
						 "   AND (verify_state OPERATOR(pg_catalog.<>) 'running'"
						 "    OR verify_pid OPERATOR(pg_catalog.=) $5))"
						 "  THEN $8 ELSE verify_state END,"
						 " verify_pid = CASE WHEN verify_pid OPERATOR(pg_catalog.=) $5"
						 "  THEN NULL ELSE verify_pid END"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 8, types, values, nulls, SPI_OK_UPDATE);
}

/*
 * migrate_catalog_begin_verify
 *		Mark a background verification of m running in process pid.  The
 *		caller holds m's row lock.
 */
void
migrate_catalog_begin_verify(const Migration *m, int pid)
{
	Oid			types[4] = {INT8OID, INT4OID, TEXTOID, TEXTARRAYOID};
	Datum		values[4] = {Int64GetDatum(m->id), Int32GetDatum(pid),
		CStringGetTextDatum(verify_state_names[VERIFY_RUNNING]),
	verify_from_array(VERIFY_RUNNING)};

	Assert(verify_allowed_from[VERIFY_RUNNING] & FROM(VERIFY_NONE));
	migrate_catalog_exec("UPDATE migrate.migrations SET verify_state = $3,"
						 " verify_pid = $2, verify_error = NULL"
						 " WHERE id OPERATOR(pg_catalog.=) $1"
						 " AND (verify_state IS NULL"
						 "  OR verify_state OPERATOR(pg_catalog.=) ANY ($4))",
						 4, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * migrate_catalog_verify_failed
 *		The background verification of migration id in process pid failed
 *		with "message"; unless another one has started since.
 */
void
migrate_catalog_verify_failed(int64 id, int pid, const char *message)
{
	Oid			types[5] = {INT8OID, INT4OID, TEXTOID, TEXTOID, TEXTARRAYOID};
	Datum		values[5] = {Int64GetDatum(id), Int32GetDatum(pid),
		CStringGetTextDatum(message),
		CStringGetTextDatum(verify_state_names[VERIFY_FAILED]),
	verify_from_array(VERIFY_FAILED)};

	/* only a running verification fails, and only its own process says so */
	migrate_catalog_exec("UPDATE migrate.migrations SET verify_state = $4,"
						 " verify_pid = NULL, verify_error = $3"
						 " WHERE id OPERATOR(pg_catalog.=) $1"
						 " AND verify_pid OPERATOR(pg_catalog.=) $2"
						 " AND verify_state OPERATOR(pg_catalog.=) ANY ($5)",
						 5, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * migrate_catalog_verify_worker_pid
 *		The pid of the live migrate verify worker that runs m's background
 *		verification in this database, connected as m's owner, or 0.
 */
int
migrate_catalog_verify_worker_pid(const Migration *m)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(m->id)};
	bool		isnull;

	pgstat_clear_backend_activity_snapshot();
	migrate_server_read("SELECT a.pid FROM migrate.migrations m, pg_catalog.pg_stat_activity a"
						" WHERE m.id OPERATOR(pg_catalog.=) $1"
						" AND m.verify_state OPERATOR(pg_catalog.=) 'running'"
						" AND a.pid OPERATOR(pg_catalog.=) m.verify_pid"
						" AND a.usesysid OPERATOR(pg_catalog.=) m.owner::pg_catalog.oid"
						" AND a.datid OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_database"
						"  WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"
						" AND a.backend_type OPERATOR(pg_catalog.=) 'migrate verify'",
						1, types, values, NULL);
	if (SPI_processed == 0)
		return 0;
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * migrate_catalog_worker_visible
 *		Does process pid show in pg_stat_activity as a migrate worker of
 *		type backend_type, connected as role, so that count_other_workers
 *		(launch.c) counts it?
 */
bool
migrate_catalog_worker_visible(int pid, const char *backend_type, Oid role)
{
	Oid			types[3] = {INT4OID, TEXTOID, OIDOID};
	Datum		values[3] = {Int32GetDatum(pid), CStringGetTextDatum(backend_type),
	ObjectIdGetDatum(role)};

	pgstat_clear_backend_activity_snapshot();
	migrate_server_read("SELECT FROM pg_catalog.pg_stat_activity"
						" WHERE pid OPERATOR(pg_catalog.=) $1"
						" AND backend_type OPERATOR(pg_catalog.=) $2"
						" AND usesysid OPERATOR(pg_catalog.=) $3",
						3, types, values, NULL);
	return SPI_processed > 0;
}

/*
 * migrate_catalog_verify_running
 *		Is a background verification of m running: marked so, by a process
 *		that is a live migrate verify worker?
 */
bool
migrate_catalog_verify_running(const Migration *m)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(m->id)};

	pgstat_clear_backend_activity_snapshot();
	migrate_server_read("SELECT FROM migrate.migrations m, pg_catalog.pg_stat_activity a"
						" WHERE m.id OPERATOR(pg_catalog.=) $1"
						" AND m.verify_state OPERATOR(pg_catalog.=) 'running'"
						" AND a.pid OPERATOR(pg_catalog.=) m.verify_pid"
						" AND a.backend_type OPERATOR(pg_catalog.=) 'migrate verify'",
						1, types, values, NULL);
	return SPI_processed > 0;
}
