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
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "migrate.h"

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
	"series_started_at, registered_at"
#define MIGRATION_COLUMNS_PRE_V3 \
	", NULL::pg_catalog.int8[], 0::pg_catalog.oid, NULL::pg_catalog.text[], false, " \
	"NULL::pg_catalog.timestamptz, registered_at"

/*
 * load_sql
 *		The statement that reads one migration by "column" ($1), for the
 *		catalog version installed, optionally locking the row.
 */
static char *
load_sql(const char *column, bool for_update)
{
	bool		v2 = migrate_catalog_is_v2();

	return psprintf("SELECT " MIGRATION_COLUMNS "%s%s FROM migrate.migrations"
					" WHERE %s OPERATOR(pg_catalog.=) $1%s",
					v2 ? MIGRATION_COLUMNS_V2 : MIGRATION_COLUMNS_V1,
					v2 && migrate_catalog_is_v3() ? MIGRATION_COLUMNS_V3 :
					MIGRATION_COLUMNS_PRE_V3,
					column, for_update ? " FOR UPDATE" : "");
}

/*
 * migrate_text_or_null
 *		Return a palloc'd C string of a text datum, or NULL.
 */
char *
migrate_text_or_null(Datum d, bool isnull)
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
 * migrate_series_datums
 *		The text[] of names and the int8[] of ids of a list of SeriesMember,
 *		as the catalog stores them; both NULL for an empty list.
 */
void
migrate_series_datums(List *members, Datum *names, bool *names_null,
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
	CachedStatement *c = NULL;
	int			ret;

	/*
	 * Statements with more parameters than a slot holds are not cached.
	 * Neither is anything while a cached statement runs: the owner's code
	 * inside it may call migrate's functions again, and evicting a slot
	 * then would free the plan the outer call is executing.
	 */
	if (nargs > MIGRATE_MAX_CACHED_ARGS || cached_depth > 0)
		return SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
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
		ret = SPI_execute_plan(c->plan, values, nulls, false, 0);
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

/* Build a Migration from the current row of SPI_tuptable. */
static Migration *
migration_from_tuple(HeapTuple tuple, TupleDesc desc)
{
	Migration  *m = palloc0(sizeof(Migration));
	bool		isnull;
	Datum		d;

#define COL(n) (d = SPI_getbinval(tuple, desc, (n), &isnull))
#define TEXTCOL(n) (COL(n), migrate_text_or_null(d, isnull))
#define ARRAYCOL(n) (COL(n), text_array_to_list(d, isnull))
	m->id = DatumGetInt64(COL(1));
	m->name = TextDatumGetCString(COL(2));
	m->action = TextDatumGetCString(COL(3));
	m->relation = TEXTCOL(4);
	m->key_columns = ARRAYCOL(5);
	m->set_clause = TEXTCOL(6);
	m->where_clause = TEXTCOL(7);
	m->row_fn = TEXTCOL(8);
	m->sql = TEXTCOL(9);
	m->batch_size = DatumGetInt32(COL(10));
	m->pause_ms = DatumGetInt64(COL(11));
	m->lock_timeout_ms = DatumGetInt64(COL(12));
	m->search_path = TextDatumGetCString(COL(13));
	m->owner = DatumGetObjectId(COL(14));
	m->state = TextDatumGetCString(COL(15));
	COL(16);
	m->cursor = isnull ? NULL : DatumGetJsonbPCopy(d);
	m->processed = DatumGetInt64(COL(17));
	m->changed = DatumGetInt64(COL(18));
	m->batches = DatumGetInt64(COL(19));
	COL(20);
	m->worker_pid = isnull ? 0 : DatumGetInt32(d);
	m->series_rest = ARRAYCOL(21);	/* names; series_members adds ids */
	m->adaptive = DatumGetBool(COL(22));
	m->target_batch_ms = DatumGetInt64(COL(23));
	m->min_batch_size = DatumGetInt32(COL(24));
	m->max_batch_size = DatumGetInt32(COL(25));
	m->busy_share = DatumGetFloat4(COL(26));
	m->total_estimate = DatumGetInt64(COL(27));
	m->skip_errors = DatumGetBool(COL(28));
	m->keep_before = DatumGetBool(COL(29));
	m->reverting = DatumGetBool(COL(30));
	m->keep_undo = DatumGetBool(COL(31));
	COL(32);
	m->has_revert_cursor = !isnull;
	m->revert_cursor = isnull ? 0 : DatumGetInt64(d);
	m->reverted = DatumGetInt64(COL(33));
	m->catalog_v2 = DatumGetBool(COL(34));
	COL(35);
	m->series_rest = series_members(m->series_rest, d, isnull);
	m->series_starter = DatumGetObjectId(COL(36));
	m->key_types = ARRAYCOL(37);
	m->catalog_v3 = DatumGetBool(COL(38));
	COL(39);
	m->series_started_at = isnull ? 0 : DatumGetTimestampTz(d);
	m->registered_at = DatumGetTimestampTz(COL(40));
#undef COL
#undef TEXTCOL
#undef ARRAYCOL
	return m;
}

/*
 * migrate_catalog_is_v2
 *		Does the catalog have what version 0.2 added?  Between installing a
 *		new library and ALTER EXTENSION migrate UPDATE, the library runs on
 *		the 0.1 catalog: it reads the new columns as their defaults and
 *		writes none of them.
 */
bool
migrate_catalog_is_v2(void)
{
	Oid			nsp = get_namespace_oid("migrate", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("migrations", nsp) : InvalidOid;

	return OidIsValid(relid) && get_attnum(relid, "on_error") != InvalidAttrNumber;
}

/*
 * migrate_catalog_is_v3
 *		Does the catalog have what version 0.3 added (pinned series, key
 *		types)?  On an older catalog series members are found by name and
 *		the key's types are not checked.
 */
bool
migrate_catalog_is_v3(void)
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
	if (strlen(name) > MIGRATE_MAX_NAME_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("migration name is too long"),
				 errdetail("A migration name may have at most %d bytes.", MIGRATE_MAX_NAME_LEN)));

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

	migrate_catalog_exec("SELECT m FROM migrate.migrations m"
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

/*
 * migrate_catalog_set_state
 *		Set the state of migration m, log "event" and update m->state.
 *
 * Entering "done" or "failed" sets finished_at; "failed" stores detail as
 * last_error; "cancelled" and "failed" end a series.  worker_pid is left
 * alone: a runner clears it itself when it stops (migrate_runner_release).
 * The caller holds the row lock or is the migration's runner.
 */
void
migrate_catalog_set_state(const Migration *m, const char *state,
						  const char *event, const char *detail)
{
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	values[0] = Int64GetDatum(m->id);
	values[1] = CStringGetTextDatum(state);
	if (detail && strcmp(state, MIGRATE_STATE_FAILED) == 0)
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
	((Migration *) m)->state = pstrdup(state);
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
	Oid			types[9] = {INT8OID, JSONBOID, INT8OID, INT8OID, BOOLOID, JSONBOID,
	INT4OID, INT8OID, TEXTOID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
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

	migrate_catalog_exec("UPDATE migrate.migrations SET"
						 " cursor = COALESCE($2, cursor),"
						 " processed = processed OPERATOR(pg_catalog.+) $3,"
						 " changed = changed OPERATOR(pg_catalog.+) $4,"
						 " batches = batches OPERATOR(pg_catalog.+) CASE WHEN $3 OPERATOR(pg_catalog.>) 0 OR $2 IS NOT NULL THEN 1 ELSE 0 END,"
						 " last_batch_at = pg_catalog.clock_timestamp(),"
						 " state = CASE WHEN $5 THEN 'done' ELSE state END,"
						 " finished_at = CASE WHEN $5 THEN pg_catalog.clock_timestamp() ELSE finished_at END,"
						 " worker_pid = CASE WHEN $5 THEN NULL ELSE worker_pid END,"
						 " last_error = CASE WHEN $5 THEN NULL ELSE last_error END,"
						 " series_rest = CASE WHEN $5 THEN NULL ELSE series_rest END,"
						 " batch_size = CASE WHEN adaptive THEN $7 ELSE batch_size END,"
						 " wal_bytes = wal_bytes OPERATOR(pg_catalog.+) $8,"
						 " throttled = $9"
						 " WHERE id OPERATOR(pg_catalog.=) $1"
						 " AND cursor IS NOT DISTINCT FROM $6"
						 " RETURNING state",
						 9, types, values, nulls, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("migration \"%s\" was changed by someone else while a batch ran", m->name),
				 errdetail("It was unregistered, or its cursor moved; the batch was rolled back.")));
	m->state = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1,
												 &isnull));
	m->processed += res->visited;
	m->changed += res->changed;
	if (res->new_cursor)
		m->cursor = res->new_cursor;
	if (res->done)
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
	m->state = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1,
												 &isnull));
	m->reverted += res->changed;
	if (!res->done)
	{
		m->revert_cursor = new_cursor;
		m->has_revert_cursor = true;
	}
	else
	{
		m->reverting = false;
		migrate_catalog_log_event(m->name, m->owner, "reverted",
								  psprintf("restored " INT64_FORMAT " rows", m->reverted));
	}
}
