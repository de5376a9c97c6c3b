/*-------------------------------------------------------------------------
 *
 * api.c
 *	  The SQL-callable functions of migrate.
 *
 * Each function checks its arguments and the caller's rights, locks the
 * migration's row FOR UPDATE (which serializes every state change of one
 * migration), does its work and returns the migration's row.  They run with
 * the caller's rights; catalog writes switch to the catalog owner and the
 * user's change runs as the migration's owner (see security.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "migrate.h"

#define MSECS_PER_DAY (INT64CONST(86400000))

PG_FUNCTION_INFO_V1(migrate_register);
PG_FUNCTION_INFO_V1(migrate_start);
PG_FUNCTION_INFO_V1(migrate_resume);
PG_FUNCTION_INFO_V1(migrate_step);
PG_FUNCTION_INFO_V1(migrate_run);
PG_FUNCTION_INFO_V1(migrate_pause);
PG_FUNCTION_INFO_V1(migrate_cancel);
PG_FUNCTION_INFO_V1(migrate_wait);
PG_FUNCTION_INFO_V1(migrate_dry_run);
PG_FUNCTION_INFO_V1(migrate_explain);
PG_FUNCTION_INFO_V1(migrate_start_series);
PG_FUNCTION_INFO_V1(migrate_unregister);
PG_FUNCTION_INFO_V1(migrate_retry_errors);
PG_FUNCTION_INFO_V1(migrate_revert);
PG_FUNCTION_INFO_V1(migrate_forget);

/* How often migrate_run reports progress */
#define RUN_NOTICE_INTERVAL_MS 5000

/* How long migrate_wait tolerates "running" with nobody running it */
#define WAIT_ORPHAN_GRACE_MS 30000

/*
 * migrate_text_arg
 *		Return argument n as a C string, or error out naming it ("what")
 *		if it is NULL.
 */
char *
migrate_text_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/* Interval argument n in milliseconds, checked against [min_ms, max_ms]. */
static int64
interval_arg_ms(FunctionCallInfo fcinfo, int n, const char *what,
				int64 min_ms, int64 max_ms, const char *range)
{
	Interval   *iv;
	int64		ms;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	iv = PG_GETARG_INTERVAL_P(n);
	if (iv->month > 1200 || iv->month < -1200 || iv->day > 36500 || iv->day < -36500)
		ms = iv->month < 0 || iv->day < 0 ? min_ms - 1 : max_ms + 1;
	else
		ms = iv->time / 1000 +
			((int64) iv->day + (int64) iv->month * DAYS_PER_MONTH) * MSECS_PER_DAY;
	if (ms < min_ms || ms > max_ms)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between %s", what, range)));
	return ms;
}

/* Check a batch size argument. */
static int32
batch_size_arg(FunctionCallInfo fcinfo, int n)
{
	int32		size;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("batch_size must not be null")));
	size = PG_GETARG_INT32(n);
	if (size <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be greater than zero"),
				 errdetail("The batch_size given was %d.", size)));
	return size;
}

/* Set a migration's batch size for good: no more adaptive sizing. */
static void
store_batch_size(Migration *m, int32 size)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(m->id), Int32GetDatum(size)};

	migrate_catalog_exec("UPDATE migrate.migrations SET batch_size = $2, adaptive = false"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 2, types, values, NULL, SPI_OK_UPDATE);
	m->batch_size = size;
	m->adaptive = false;
}

/* Return the row of migration id as this function's result. */
static Datum
return_row(int64 id)
{
	Datum		d = migrate_catalog_row_datum(id);

	SPI_finish();
	return d;
}

/* Error out: migration m is not in a state that allows "what". */
static void
wrong_state(const Migration *m, const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot %s migration \"%s\" because it is %s", what, m->name, m->state),
			 hint ? errhint("%s", hint) : 0));
}

/*
 * progress_total
 *		What migrate_status counts progress against: the table's estimated
 *		rows, the rows a revert has to restore, or 1 for a task.
 */
static int64
progress_total(const Migration *m)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		isnull;

	if (m->relation == NULL)
		return 1;
	if (!m->reverting)
		return migrate_estimate_rows(migrate_resolve_relation(m, false));
	values[0] = CStringGetTextDatum(m->name);
	values[1] = Int64GetDatum(m->revert_cursor);
	nulls[1] = m->has_revert_cursor ? ' ' : 'n';
	migrate_catalog_exec("SELECT pg_catalog.count(*) FROM migrate.undo"
						 " WHERE migration OPERATOR(pg_catalog.=) $1"
						 " AND ($2 IS NULL OR id OPERATOR(pg_catalog.<) $2)",
						 2, types, values, nulls, SPI_OK_SELECT);
	return m->reverted + DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * migrate_start_locked
 *		Mark m running and hand it to a new background worker.
 *
 * The caller holds m's row lock and has checked rights and state.  With
 * restart the cursor and counters start over.  series_rest (a List of
 * SeriesMember) becomes the list of migrations to run after this one, on
 * behalf of m->series_starter (the current user if none is set).  actor is
 * the role on whose behalf m starts (InvalidOid: the current user, or in a
 * worker the owner); it is recorded as started_by and in the event.  Everything happens
 * in the caller's transaction: if it rolls back, the worker leaves without
 * doing anything.
 */
void
migrate_start_locked(Migration *m, bool restart, List *series_rest,
					 Oid actor, const char *event, const char *detail)
{
	Oid			types[9] = {INT8OID, BOOLOID, INT8OID, TEXTARRAYOID, NAMEOID, INT8OID,
	INT8ARRAYOID, OIDOID, TIMESTAMPTZOID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		names_null;
	bool		ids_null;
	int64		estimate = 0;
	int			pid;
	char	   *user;

	/* a worker (resuming after a restart) acts for the migration's owner */
	if (!OidIsValid(actor))
		actor = MyBgworkerEntry != NULL ? m->owner : GetUserId();
	if (!OidIsValid(m->series_starter))
		m->series_starter = actor;
	if (m->series_started_at == 0)
		m->series_started_at = GetCurrentTimestamp();
	user = GetUserNameFromId(actor, false);
	if (restart && m->catalog_v2)
	{
		/* a new run: the old run's skipped rows are found again */
		Oid			t1[2] = {INT8OID, TEXTOID};
		Datum		v1[2] = {Int64GetDatum(m->id), CStringGetTextDatum(m->name)};

		migrate_catalog_exec("UPDATE migrate.migrations SET reverting = false,"
							 " revert_cursor = NULL, reverted = 0"
							 " WHERE id OPERATOR(pg_catalog.=) $1",
							 2, t1, v1, NULL, SPI_OK_UPDATE);
		migrate_catalog_exec("DELETE FROM migrate.errors"
							 " WHERE migration OPERATOR(pg_catalog.=) $1",
							 1, t1 + 1, v1 + 1, NULL, SPI_OK_DELETE);
		m->reverting = false;
		m->has_revert_cursor = false;
		m->reverted = 0;
	}
	estimate = progress_total(m);

	values[0] = Int64GetDatum(m->id);
	values[1] = BoolGetDatum(restart);
	values[2] = Int64GetDatum(estimate);
	migrate_series_datums(series_rest, &values[3], &names_null, &values[6], &ids_null);
	nulls[3] = names_null ? 'n' : ' ';
	nulls[6] = ids_null ? 'n' : ' ';
	values[4] = DirectFunctionCall1(namein, CStringGetDatum(user));
	values[5] = Int64GetDatum(restart ? 0 : migrate_progress_done(m));
	values[7] = ObjectIdGetDatum(m->series_starter);
	nulls[7] = names_null ? 'n' : ' ';
	values[8] = TimestampTzGetDatum(m->series_started_at);
	nulls[8] = names_null ? 'n' : ' ';

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
								  " series_started_at = $9" : ""),
						 9, types, values, nulls, SPI_OK_UPDATE);
	if (restart)
	{
		m->cursor = NULL;
		m->processed = m->changed = m->batches = 0;
	}

	pid = migrate_launch_worker(m);

	{
		Oid			t2[2] = {INT8OID, INT4OID};
		Datum		v2[2] = {Int64GetDatum(m->id), Int32GetDatum(pid)};

		migrate_catalog_exec("UPDATE migrate.migrations SET worker_pid = $2"
							 " WHERE id OPERATOR(pg_catalog.=) $1",
							 2, t2, v2, NULL, SPI_OK_UPDATE);
	}
	m->state = MIGRATE_STATE_RUNNING;
	m->worker_pid = pid;
	migrate_catalog_log_event_by(m->name, m->owner, actor, event, detail);
}

/* Are before-images of m kept in migrate.undo? */
static bool
has_undo(const Migration *m)
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
 * forget_errors_check_undo
 *		Before m is replaced or unregistered: refuse if before-images of it
 *		are kept (they would be lost, or attach to a new definition), and
 *		drop the rows it skipped.  The caller holds m's row lock.
 */
static void
forget_errors_check_undo(const Migration *m, const char *what)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(m->name)};

	if (!m->catalog_v2)
		return;
	if (has_undo(m))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot %s migration \"%s\" because it has before-images", what, m->name),
				 errdetail("Its rows in migrate.undo are what migrate_revert() would restore."),
				 errhint("Revert it with migrate_revert(), or drop them with migrate_forget() once you are sure.")));
	migrate_catalog_exec("DELETE FROM migrate.errors WHERE migration OPERATOR(pg_catalog.=) $1",
						 1, types, values, NULL, SPI_OK_DELETE);
}

/*
 * migrate_register(name, relation, set_clause, where_clause, row_fn, action,
 *					sql, batch_size, pause, lock_timeout, replace)
 *
 * Check a migration's definition completely and store it.  The whole check
 * runs before anything is visible: any error leaves the catalog untouched.
 */
Datum
migrate_register(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Oid			relid = PG_ARGISNULL(1) ? InvalidOid : PG_GETARG_OID(1);
	char	   *set_clause = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *where_clause = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	Oid			row_fn = PG_ARGISNULL(4) ? InvalidOid : PG_GETARG_OID(4);
	char	   *action = migrate_text_arg(fcinfo, 5, "action");
	char	   *sql = PG_ARGISNULL(6) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(6));
	bool		adaptive = PG_ARGISNULL(7);
	int32		batch_size = adaptive ? 1000 : batch_size_arg(fcinfo, 7);
	int64		target_ms;
	int32		min_size;
	int32		max_size;
	float4		busy_share;
	bool		replace;
	bool		skip_errors = false;
	bool		keep_before = false;
	List	   *key_columns = NIL;
	char	   *relation = NULL;
	char	   *row_fn_text = NULL;
	Migration  *existing;
	Oid			types[18];
	Datum		values[18];
	char		nulls[18];
	int64		id;
	bool		isnull;
	Datum		key_array = (Datum) 0;

	(void) interval_arg_ms(fcinfo, 8, "pause", 0, MSECS_PER_DAY, "0 and 1 day");
	(void) interval_arg_ms(fcinfo, 9, "lock_timeout", 1, INT_MAX,
						   "1 millisecond and 24 days");
	if (PG_ARGISNULL(10))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("replace must not be null")));
	replace = PG_GETARG_BOOL(10);
	target_ms = interval_arg_ms(fcinfo, 11, "target_batch_time", 0, 3600 * 1000,
								"0 and 1 hour");
	min_size = batch_size_arg(fcinfo, 12);
	max_size = batch_size_arg(fcinfo, 13);
	if (min_size > max_size)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_batch_size must not be greater than max_batch_size"),
				 errdetail("min_batch_size is %d, max_batch_size is %d.", min_size, max_size)));
	if (PG_ARGISNULL(14))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("busy_share must not be null")));
	busy_share = PG_GETARG_FLOAT4(14);
	if (!(busy_share > 0 && busy_share <= 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("busy_share must be greater than 0 and at most 1"),
				 errdetail("It is the share of time a migration's batches may take while the server is busy.")));
	adaptive = adaptive && target_ms > 0;
	/* on_error and keep_before came with 0.2 */
	if (PG_NARGS() > 15)
	{
		char	   *on_error = migrate_text_arg(fcinfo, 15, "on_error");

		if (strcmp(on_error, "stop") != 0 && strcmp(on_error, "skip") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("on_error must be \"stop\" or \"skip\", not \"%s\"", on_error)));
		skip_errors = strcmp(on_error, "skip") == 0;
		if (PG_ARGISNULL(16))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("keep_before must not be null")));
		keep_before = PG_GETARG_BOOL(16);
	}

	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("migration name must not be empty")));
	if (strlen(name) > MIGRATE_MAX_NAME_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("migration name is too long"),
				 errdetail("A migration name may have at most %d bytes.", MIGRATE_MAX_NAME_LEN)));

	if (!OidIsValid(relid))
	{
		/* a one-off task */
		if (sql == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("relation must not be null"),
					 errhint("To register a one-off task, pass its SQL as sql => '...' with relation => NULL.")));
		if (set_clause || where_clause || OidIsValid(row_fn) ||
			strcmp(action, MIGRATE_ACTION_UPDATE) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a one-off task takes only sql"),
					 errdetail("set_clause, where_clause, row_fn and action are for migrations of a table.")));
		if (skip_errors || keep_before)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a one-off task cannot skip rows or keep before-images"),
					 errdetail("A task runs once, in one transaction: it succeeds or fails whole, and migrate does not know which rows it changes."),
					 errhint("Leave on_error and keep_before at their defaults.")));
		migrate_validate_task_sql(sql);
		action = MIGRATE_ACTION_TASK;
	}
	else
	{
		char		relkind = get_rel_relkind(relid);
		bool		is_delete;

		if (sql != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("sql is only for one-off tasks"),
					 errhint("Pass relation => NULL to register a one-off task, or describe the change with set_clause, row_fn or action => 'delete'.")));
		if (strcmp(action, MIGRATE_ACTION_UPDATE) != 0 &&
			strcmp(action, MIGRATE_ACTION_DELETE) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("action must be \"update\" or \"delete\", not \"%s\"", action)));
		is_delete = strcmp(action, MIGRATE_ACTION_DELETE) == 0;
		if (is_delete && (set_clause || OidIsValid(row_fn)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a delete migration takes no set_clause or row_fn"),
					 errhint("Describe the rows to delete with where_clause.")));
		if (!is_delete && (set_clause != NULL) == OidIsValid(row_fn))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("an update migration needs exactly one of set_clause and row_fn")));

		if (relkind == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation with OID %u does not exist", relid)));
		if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("\"%s\" is not a table", get_rel_name(relid)),
					 errdetail("migrate works on ordinary and partitioned tables.")));
		if (get_rel_persistence(relid) == RELPERSISTENCE_TEMP)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot migrate temporary table \"%s\"", get_rel_name(relid)),
					 errdetail("A background worker cannot see another session's temporary tables.")));
		migrate_check_table_privilege(relid, action);
		key_columns = migrate_find_key_columns(relid);
		if (key_columns == NIL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table \"%s\" has no primary key or unique index usable as a key",
							get_rel_name(relid)),
					 errdetail("migrate walks a table in key order. A usable key is a primary key or a unique index without expressions or predicate whose columns are NOT NULL, not generated, and of a scalar type (not an array, composite, range or JSON type)."),
					 errhint("Add a primary key, or a unique index on columns that are NOT NULL.")));
		if (set_clause)
			migrate_validate_clause(set_clause, true, key_columns);
		if (where_clause)
			migrate_validate_clause(where_clause, false, key_columns);
		if (OidIsValid(row_fn))
		{
			migrate_validate_row_fn(row_fn, relid);
			row_fn_text = format_procedure_qualified(row_fn);
		}
		relation = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
											  get_rel_name(relid));
	}

	if (key_columns != NIL)
	{
		Datum	   *elems = palloc(sizeof(Datum) * list_length(key_columns));
		ListCell   *lc;

		foreach(lc, key_columns)
			elems[foreach_current_index(lc)] = CStringGetTextDatum(lfirst(lc));
		key_array = PointerGetDatum(construct_array(elems, list_length(key_columns),
													TEXTOID, -1, false, TYPALIGN_INT));
	}

	SPI_connect();
	existing = migrate_catalog_load(name, true, true);
	if (existing && !replace)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("migration \"%s\" already exists", name),
				 errhint("Pass replace => true to redefine it, or choose another name.")));
	if (existing)
	{
		migrate_check_may_manage(existing, "replace");
		if (migrate_runner_active(existing->id))
			wrong_state(existing, "replace", "Pause or cancel it first.");
		forget_errors_check_undo(existing, "replace");
	}

	memset(nulls, ' ', sizeof(nulls));
#define ARG(i, type, value, isnull_) \
	(types[i] = (type), values[i] = (isnull_) ? (Datum) 0 : (value), nulls[i] = (isnull_) ? 'n' : ' ')
	ARG(0, TEXTOID, CStringGetTextDatum(name), false);
	ARG(1, TEXTOID, CStringGetTextDatum(action), false);
	ARG(2, TEXTOID, relation ? CStringGetTextDatum(relation) : 0, relation == NULL);
	ARG(3, TEXTARRAYOID, key_array, key_columns == NIL);
	ARG(4, TEXTOID, set_clause ? CStringGetTextDatum(set_clause) : 0, set_clause == NULL);
	ARG(5, TEXTOID, where_clause ? CStringGetTextDatum(where_clause) : 0, where_clause == NULL);
	ARG(6, TEXTOID, row_fn_text ? CStringGetTextDatum(row_fn_text) : 0, row_fn_text == NULL);
	ARG(7, TEXTOID, sql ? CStringGetTextDatum(sql) : 0, sql == NULL);
	ARG(8, INT4OID, Int32GetDatum(batch_size), false);
	ARG(9, INTERVALOID, PG_GETARG_DATUM(8), false);
	ARG(10, INTERVALOID, PG_GETARG_DATUM(9), false);
	ARG(11, TEXTOID, CStringGetTextDatum(GetConfigOptionByName("search_path", NULL, false)), false);
	ARG(12, OIDOID, ObjectIdGetDatum(GetUserId()), false);
	ARG(13, BOOLOID, BoolGetDatum(adaptive), false);
	ARG(14, INTERVALOID, PG_GETARG_DATUM(11), false);
	ARG(15, INT4OID, Int32GetDatum(min_size), false);
	ARG(16, INT4OID, Int32GetDatum(max_size), false);
	ARG(17, FLOAT4OID, Float4GetDatum(busy_share), false);
#undef ARG

	if (existing)
	{
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
	}
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

	if (PG_NARGS() > 15)
	{
		Oid			t2[3] = {INT8OID, TEXTOID, BOOLOID};
		Datum		v2[3] = {Int64GetDatum(id),
			CStringGetTextDatum(skip_errors ? "skip" : "stop"),
		BoolGetDatum(keep_before)};

		migrate_catalog_exec("UPDATE migrate.migrations SET on_error = $2, keep_before = $3,"
							 " reverting = false, keep_undo = false, revert_cursor = NULL,"
							 " reverted = 0 WHERE id OPERATOR(pg_catalog.=) $1",
							 3, t2, v2, NULL, SPI_OK_UPDATE);
	}
	if (migrate_catalog_is_v3())
	{
		List	   *key_types = OidIsValid(relid) ? migrate_key_types(relid, key_columns) : NIL;
		Oid			t3[2] = {INT8OID, TEXTARRAYOID};
		Datum		v3[2] = {Int64GetDatum(id), (Datum) 0};
		char		n3[2] = {' ', 'n'};
		ListCell   *lc;

		if (key_types != NIL)
		{
			Datum	   *elems = palloc(sizeof(Datum) * list_length(key_types));

			foreach(lc, key_types)
				elems[foreach_current_index(lc)] = CStringGetTextDatum(lfirst(lc));
			v3[1] = PointerGetDatum(construct_array(elems, list_length(key_types),
													TEXTOID, -1, false, TYPALIGN_INT));
			n3[1] = ' ';
		}
		migrate_catalog_exec("UPDATE migrate.migrations SET key_types = $2,"
							 " series_ids = NULL, series_starter = NULL, series_started_at = NULL"
							 " WHERE id OPERATOR(pg_catalog.=) $1",
							 2, t3, v3, n3, SPI_OK_UPDATE);
	}
	{
		Migration  *m = migrate_catalog_load_by_id(id, false);

		migrate_explain_check(m);
		migrate_catalog_log_event(name, m->owner, existing ? "replace" : "register",
								  relation ? relation : "one-off task");
	}
	PG_RETURN_DATUM(return_row(id));
}

/*
 * start_common
 *		Start or resume m (row locked, rights checked) unless it is done or
 *		already running; the work of migrate_start and migrate_resume.
 */
static void
start_common(Migration *m, bool restart, const char *event)
{
	int			runner = migrate_runner_pid(m->id);

	if (restart)
	{
		if (runner)
			wrong_state(m, "restart", "Pause or cancel it, and wait for it to stop first.");
		if (has_undo(m))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot restart migration \"%s\" because it has before-images", m->name),
					 errdetail("A second run would change rows again, and a revert could no longer tell which image is the original."),
					 errhint("Revert it with migrate_revert(), or drop them with migrate_forget() once you are sure.")));
		migrate_start_locked(m, true, m->series_rest, InvalidOid, "restart", NULL);
		return;
	}
	if (strcmp(m->state, MIGRATE_STATE_DONE) == 0)
	{
		ereport(NOTICE,
				(errmsg("migration \"%s\" is already done", m->name),
				 errhint("Pass restart => true to run it again from the start.")));
		return;
	}
	if (strcmp(m->state, MIGRATE_STATE_REVERTED) == 0)
	{
		ereport(NOTICE,
				(errmsg("migration \"%s\" was reverted", m->name),
				 errhint("Pass restart => true to run it again from the start.")));
		return;
	}
	if (runner && strcmp(m->state, MIGRATE_STATE_RUNNING) == 0 &&
		m->worker_pid == runner)
	{
		ereport(NOTICE,
				(errmsg("migration \"%s\" is already running", m->name)));
		return;
	}
	if (runner)
	{
		/*
		 * A runner is alive but not (or not yet) committed as this
		 * migration's runner: one that is stopping after a pause, or a
		 * worker whose start was rolled back and that waits for the row
		 * lock we hold.  Runners decide whether to go on with the row
		 * locked, so making it the committed runner keeps it going; a
		 * second runner could not start while it holds the runner lock.
		 */
		Oid			types[2] = {INT8OID, INT4OID};
		Datum		values[2] = {Int64GetDatum(m->id), Int32GetDatum(runner)};

		migrate_catalog_exec("UPDATE migrate.migrations SET state = 'running',"
							 " worker_pid = $2, last_error = NULL"
							 " WHERE id OPERATOR(pg_catalog.=) $1",
							 2, types, values, NULL, SPI_OK_UPDATE);
		m->state = MIGRATE_STATE_RUNNING;
		m->worker_pid = runner;
		migrate_catalog_log_event(m->name, m->owner, event,
								  "handed to the process still running it");
		return;
	}
	migrate_start_locked(m, false, m->series_rest, InvalidOid, event,
						 strcmp(m->state, MIGRATE_STATE_RUNNING) == 0 ?
						 "taken over: no process was running it" : NULL);
}

/*
 * migrate_start(name, batch_size, restart)
 *
 * Start or resume a migration in a background worker; returns at once.
 */
Datum
migrate_start(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	bool		restart;
	Migration  *m;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("restart must not be null")));
	restart = PG_GETARG_BOOL(2);

	SPI_connect();
	m = migrate_catalog_load(name, true, false);
	migrate_check_may_manage(m, restart ? "restart" : "start");
	if (!PG_ARGISNULL(1))
		store_batch_size(m, batch_size_arg(fcinfo, 1));
	start_common(m, restart,
				 m->cursor != NULL || strcmp(m->state, MIGRATE_STATE_RUNNING) == 0 ?
				 "resume" : "start");
	PG_RETURN_DATUM(return_row(m->id));
}

/*
 * migrate_resume(name)
 *
 * Go on with a paused migration from its cursor, in a background worker.
 */
Datum
migrate_resume(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Migration  *m;

	SPI_connect();
	m = migrate_catalog_load(name, true, false);
	migrate_check_may_manage(m, "resume");
	if (strcmp(m->state, MIGRATE_STATE_PAUSED) != 0)
		wrong_state(m, "resume", "Only a paused migration can be resumed; use migrate_start() for the others.");
	start_common(m, false, "resume");
	PG_RETURN_DATUM(return_row(m->id));
}

/*
 * stop_common
 *		Move m to "paused" or "cancelled"; the runner notices after its
 *		current batch (or within a second while it sleeps).
 */
static Datum
stop_common(FunctionCallInfo fcinfo, const char *state, const char *verb)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Migration  *m;

	SPI_connect();
	m = migrate_catalog_load(name, true, false);
	migrate_check_may_manage(m, verb);
	if (strcmp(m->state, MIGRATE_STATE_RUNNING) != 0 &&
		!(strcmp(state, MIGRATE_STATE_CANCELLED) == 0 &&
		  strcmp(m->state, MIGRATE_STATE_PAUSED) == 0))
		wrong_state(m, verb, NULL);
	migrate_catalog_set_state(m, state, verb, NULL);
	PG_RETURN_DATUM(return_row(m->id));
}

/*
 * migrate_pause(name): stop after the current batch; migrate_resume goes on.
 */
Datum
migrate_pause(PG_FUNCTION_ARGS)
{
	return stop_common(fcinfo, MIGRATE_STATE_PAUSED, "pause");
}

/*
 * migrate_cancel(name): stop after the current batch; a later
 * migrate_start resumes from the cursor.
 */
Datum
migrate_cancel(PG_FUNCTION_ARGS)
{
	return stop_common(fcinfo, MIGRATE_STATE_CANCELLED, "cancel");
}

/*
 * step_locked
 *		Run one batch of m (row locked) in the current transaction.
 *
 * A registered or failed migration becomes paused (partly done) or done;
 * a paused or cancelled one keeps its state.
 */
static void
step_locked(Migration *m, int32 batch_size)
{
	BatchResult res;

	migrate_run_next(m, batch_size, &res);
	if (!res.done &&
		(strcmp(m->state, MIGRATE_STATE_REGISTERED) == 0 ||
		 strcmp(m->state, MIGRATE_STATE_FAILED) == 0))
		migrate_catalog_set_state(m, MIGRATE_STATE_PAUSED, NULL, NULL);
}

/*
 * migrate_step(name, batch_size)
 *
 * Run exactly one batch in the caller's transaction, without committing.
 */
Datum
migrate_step(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Migration  *m;

	SPI_connect();
	m = migrate_catalog_load(name, true, false);
	migrate_check_may_manage(m, "run");
	if (migrate_runner_active(m->id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("migration \"%s\" is being run by another process", m->name),
				 errhint("Pause it first, or let its worker do the work.")));
	if (migrate_is_finished(m))
		ereport(NOTICE,
				(errmsg("migration \"%s\" is already %s", m->name, m->state)));
	else
		step_locked(m, PG_ARGISNULL(1) ? m->batch_size : batch_size_arg(fcinfo, 1));
	PG_RETURN_DATUM(return_row(m->id));
}

/*
 * run_batch_in_subxact
 *		Run the next batch of m in a subtransaction of the current
 *		transaction; return NULL on success, else the error (copied into
 *		errcxt) after rolling the subtransaction back.
 */
static ErrorData *
run_batch_in_subxact(Migration *m, int32 size, BatchResult *res,
					 MemoryContext errcxt)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		migrate_run_next(m, size, res);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(errcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
	return edata;
}

/* What one iteration of migrate_run did */
typedef enum RunStep
{
	RUN_BATCH_DONE,				/* ran a batch; go on */
	RUN_RETRY,					/* the batch could not lock; try again */
	RUN_RESUMED,				/* we were told to stop, then to go on */
	RUN_STOP					/* done, stopped, limit reached or failed */
} RunStep;

/* Progress migrate_run reports between iterations */
typedef struct RunProgress
{
	int64		processed;
	int64		changed;
	int64		pause_ms;
} RunProgress;

/*
 * run_one_batch
 *		One iteration of migrate_run, in the current transaction, with an SPI
 *		connection of its own (so nothing accumulates over a long run).
 *
 * Runs a batch unless the migration should stop; decides to stop with the
 * row locked, releasing the runner lock, so that a resume racing it is
 * never lost.  A failure is recorded and handed back in *failure
 * (allocated in errcxt); the caller commits either way.
 */
static RunStep
run_one_batch(int64 id, bool limit_reached, int *lock_failures, Pacer *pacer,
			  RunProgress *progress, MemoryContext errcxt, ErrorData **failure)
{
	Migration  *m;
	ErrorData  *edata;
	BatchResult res;
	bool		done = false;
	RunStep		step;
	TimestampTz start;
	int64		elapsed_us;
	char	   *hold;

	memset(progress, 0, sizeof(*progress));
	SPI_connect();
	m = migrate_catalog_load_by_id(id, false);
	if (limit_reached || m == NULL || strcmp(m->state, MIGRATE_STATE_RUNNING) != 0)
	{
		m = migrate_catalog_load_by_id(id, true);
		if (m && strcmp(m->state, MIGRATE_STATE_RUNNING) == 0 && !limit_reached)
		{
			SPI_finish();
			return RUN_RESUMED;
		}
		if (m && strcmp(m->state, MIGRATE_STATE_RUNNING) == 0)
			migrate_catalog_set_state(m, MIGRATE_STATE_PAUSED, "pause",
									  "migrate_run reached its limit");
		if (m)
			migrate_runner_release(m);
		SPI_finish();
		return RUN_STOP;
	}

	if (!pacer->initialized)
		migrate_pacer_init(pacer, m);
	migrate_pacer_sample(pacer, 0);
	hold = m->relation ? migrate_pacer_hold(pacer) : NULL;
	if (hold)
	{
		ereport(NOTICE,
				(errmsg("migration \"%s\" waits: %s", m->name, hold)));
		SPI_finish();
		progress->pause_ms = 1000;
		return RUN_RESUMED;
	}
	m->throttled = pacer->reason;
	memset(&res, 0, sizeof(res));
	m->adapted_size = pacer->adaptive ? migrate_pacer_batch_size(pacer, m) : 0;
	start = GetCurrentTimestamp();
	edata = run_batch_in_subxact(m, migrate_pacer_batch_size(pacer, m), &res, errcxt);
	elapsed_us = GetCurrentTimestamp() - start;
	done = res.done;
	if (edata && migrate_error_is_retryable(edata) &&
		++(*lock_failures) < migrate_max_lock_retries)
	{
		ereport(NOTICE,
				(errmsg("migration \"%s\": %s; retrying the batch (attempt %d of %d)",
						m->name, edata->message, *lock_failures + 1,
						migrate_max_lock_retries)));
		FreeErrorData(edata);
		migrate_pacer_lock_failed(pacer);
		step = RUN_RETRY;
	}
	else if (edata)
	{
		*failure = edata;
		m = migrate_catalog_load_by_id(id, true);
		if (m && strcmp(m->state, MIGRATE_STATE_RUNNING) == 0)
			migrate_catalog_set_state(m, MIGRATE_STATE_FAILED, "fail", edata->message);
		if (m)
			migrate_runner_release(m);
		step = RUN_STOP;
	}
	else
	{
		*lock_failures = 0;
		if (done)
			migrate_runner_release(m);
		progress->processed = m->processed;
		progress->changed = m->changed;
		progress->pause_ms = m->pause_ms +
			(done ? 0 : migrate_pacer_after_batch(pacer, m, res.visited, elapsed_us));
		step = done ? RUN_STOP : RUN_BATCH_DONE;
	}
	SPI_finish();
	return step;
}

/*
 * migrate_run(name, max_batches, max_duration)
 *
 * A procedure: run batches in this session, committing after each, until
 * the migration is done, paused or cancelled from elsewhere, or a limit is
 * reached (then it is left paused).  A failing batch is rolled back, the
 * migration is marked failed and the error is raised.
 */
Datum
migrate_run(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	int64		max_batches = PG_ARGISNULL(1) ? -1 : PG_GETARG_INT32(1);
	int64		max_ms = -1;
	bool		nonatomic;
	Migration  *m;
	int64		id;
	int64		batches = 0;
	TimestampTz started = GetCurrentTimestamp();
	TimestampTz last_notice = started;
	MemoryContext callercxt;
	ErrorData  *volatile failure = NULL;
	volatile bool limit_reached = false;
	int			lock_failures = 0;
	volatile int64 start_processed = 0;
	Pacer		pacer;

	nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
	if (!nonatomic)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("migrate_run must be called with CALL outside a transaction block"),
				 errhint("Inside a transaction, use migrate_step() to run one batch.")));
	if (max_batches == 0 || max_batches < -1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_batches must be greater than zero")));
	if (!PG_ARGISNULL(2))
		max_ms = interval_arg_ms(fcinfo, 2, "max_duration", 1, INT64CONST(100) * 365 * MSECS_PER_DAY,
								 "1 millisecond and 100 years");

	memset(&pacer, 0, sizeof(pacer));
	/* the error of a failed batch must outlive SPI_finish: keep it here */
	callercxt = CurrentMemoryContext;
	SPI_connect_ext(SPI_OPT_NONATOMIC);

	m = migrate_catalog_load(name, true, false);
	migrate_check_may_manage(m, "run");
	id = m->id;
	if (migrate_is_finished(m))
	{
		ereport(NOTICE, (errmsg("migration \"%s\" is already %s", m->name, m->state)));
		SPI_finish();
		PG_RETURN_VOID();
	}
	if (migrate_runner_active(id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("migration \"%s\" is being run by another process", m->name),
				 errhint("Pause it first, or let its worker do the work.")));
	migrate_runner_lock(id);

	PG_TRY();
	{
		Oid			types[5] = {INT8OID, INT4OID, INT8OID, INT8OID, NAMEOID};
		Datum		values[5];

		values[0] = Int64GetDatum(id);
		values[1] = Int32GetDatum(MyProcPid);
		values[2] = Int64GetDatum(progress_total(m));
		values[3] = Int64GetDatum(migrate_progress_done(m));
		/* the caller, not the catalog owner the statement runs as */
		values[4] = DirectFunctionCall1(namein,
										CStringGetDatum(GetUserNameFromId(GetUserId(), false)));
		start_processed = migrate_progress_done(m);
		migrate_catalog_exec("UPDATE migrate.migrations SET state = 'running',"
							 " worker_pid = $2, started_at = pg_catalog.clock_timestamp(),"
							 " started_by = $5, run_processed = $4,"
							 " total_estimate = $3,"
							 " last_batch_at = NULL, finished_at = NULL, last_error = NULL"
							 " WHERE id OPERATOR(pg_catalog.=) $1",
							 5, types, values, NULL, SPI_OK_UPDATE);
		migrate_catalog_log_event(m->name, m->owner, "run", "in the foreground");
		SPI_commit();
		/* from here each batch is committed here, before the role can change */
		migrate_set_runner_commits(true);

		for (;;)
		{
			RunStep		step;
			RunProgress progress;

			CHECK_FOR_INTERRUPTS();
			if ((max_batches > 0 && batches >= max_batches) ||
				(max_ms > 0 && TimestampDifferenceExceeds(started, GetCurrentTimestamp(), max_ms)))
				limit_reached = true;
			step = run_one_batch(id, limit_reached, &lock_failures, &pacer,
								 &progress, callercxt, (ErrorData **) &failure);
			SPI_commit();
			if (step == RUN_STOP)
				break;
			if (step == RUN_RETRY)
			{
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 Min(5000L, 100L << Min(lock_failures - 1, 6)),
								 PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				continue;
			}
			if (step == RUN_BATCH_DONE)
				batches++;
			if (TimestampDifferenceExceeds(last_notice, GetCurrentTimestamp(), RUN_NOTICE_INTERVAL_MS))
			{
				double		secs = (GetCurrentTimestamp() - started) / 1000000.0;

				last_notice = GetCurrentTimestamp();
				ereport(NOTICE,
						(errmsg("migration \"%s\": " INT64_FORMAT " rows processed, " INT64_FORMAT " changed, %.0f rows/s",
								name, progress.processed, progress.changed,
								secs > 0 ? (progress.processed - start_processed) / secs : 0)));
			}
			if ((step == RUN_BATCH_DONE || step == RUN_RESUMED) && progress.pause_ms > 0)
			{
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 progress.pause_ms, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
			}
		}
	}
	PG_FINALLY();
	{
		migrate_set_runner_commits(false);
		migrate_runner_unlock(id);
	}
	PG_END_TRY();

	SPI_finish();
	if (failure)
		ReThrowError(failure);
	PG_RETURN_VOID();
}

/* Is "name" waiting for its turn in a series that is still going? */
static bool
pending_in_series(const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};

	migrate_catalog_exec("SELECT 1 FROM migrate.migrations"
						 " WHERE $1 OPERATOR(pg_catalog.=) ANY (series_rest)"
						 " AND state OPERATOR(pg_catalog.=) ANY ('{running,paused}')",
						 1, types, values, NULL, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/*
 * migrate_wait(name, timeout)
 *
 * Block until the migration is done, failed, cancelled or paused, and its
 * runner has stopped, and return that state.  Reads the catalog afresh every 100 ms, so it needs READ
 * COMMITTED.
 */
Datum
migrate_wait(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	int64		timeout_ms = interval_arg_ms(fcinfo, 1, "timeout", 0,
											 INT64CONST(100) * 365 * MSECS_PER_DAY,
											 "0 and 100 years");
	TimestampTz start = GetCurrentTimestamp();
	TimestampTz orphan_since = 0;
	char	   *state;
	MemoryContext cxt = CurrentMemoryContext;

	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("migrate_wait cannot wait inside a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("It would never see the migration change.")));

	SPI_connect();
	{
		Migration  *m = migrate_catalog_load(name, false, false);

		migrate_check_may_manage(m, "wait for");
	}
	for (;;)
	{
		Migration  *m;
		bool		active;

		/* an SPI connection per poll, so that an hour of waiting costs nothing */
		SPI_connect();
		m = migrate_catalog_load(name, false, false);
		state = MemoryContextStrdup(cxt, m->state);
		active = migrate_runner_active(m->id);
		/* a stopped migration counts once its runner is gone too */
		if ((migrate_is_finished(m) ||
			 strcmp(state, MIGRATE_STATE_FAILED) == 0 ||
			 strcmp(state, MIGRATE_STATE_CANCELLED) == 0 ||
			 strcmp(state, MIGRATE_STATE_PAUSED) == 0) && !active)
		{
			SPI_finish();
			break;
		}
		if (strcmp(state, MIGRATE_STATE_RUNNING) == 0 && !active)
		{
			if (orphan_since == 0)
				orphan_since = GetCurrentTimestamp();
			else if (TimestampDifferenceExceeds(orphan_since, GetCurrentTimestamp(),
												WAIT_ORPHAN_GRACE_MS))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("migration \"%s\" is marked running but no process is running it", name),
						 errhint("Run migrate_start('%s') to resume it.", name)));
		}
		else
			orphan_since = 0;
		if (strcmp(state, MIGRATE_STATE_REGISTERED) == 0 && !pending_in_series(name))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("migration \"%s\" has not been started", name),
					 errhint("Start it with migrate_start('%s'), or wait for the series it belongs to.", name)));
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), timeout_ms))
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("timed out waiting for migration \"%s\"", name),
					 errdetail("It is still %s.", state)));
		SPI_finish();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(state));
}

/* State shared with the dry-run callback */
typedef struct DryRunState
{
	ReturnSetInfo *rsinfo;
	MemoryContext cxt;
} DryRunState;

/* Put one (key, before, after) row into the result. */
static void
dry_run_row(void *arg, Datum key, bool key_null, Datum before, bool before_null,
			Datum after, bool after_null)
{
	DryRunState *st = arg;
	Datum		values[3] = {key, before, after};
	bool		nulls[3] = {key_null, before_null, after_null};
	MemoryContext old = MemoryContextSwitchTo(st->cxt);

	tuplestore_putvalues(st->rsinfo->setResult, st->rsinfo->setDesc, values, nulls);
	MemoryContextSwitchTo(old);
}

/*
 * migrate_dry_run(name, max_rows)
 *
 * Run the next batch, return up to max_rows changed rows with their key,
 * before and after images, and roll the batch back.
 */
Datum
migrate_dry_run(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	int32		max_rows;
	Migration  *m;
	DryRunState st;

	if (PG_ARGISNULL(1) || PG_GETARG_INT32(1) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must be greater than zero")));
	max_rows = PG_GETARG_INT32(1);

	InitMaterializedSRF(fcinfo, 0);
	st.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	st.cxt = st.rsinfo->econtext->ecxt_per_query_memory;

	SPI_connect();
	m = migrate_catalog_load(name, false, false);
	migrate_check_may_manage(m, "dry-run");
	if (m->reverting)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("migration \"%s\" is being reverted; a dry run shows only batches of the change", m->name)));
	if (migrate_is_finished(m))
		ereport(NOTICE,
				(errmsg("migration \"%s\" is %s; there is no next batch", m->name, m->state)));
	else
		migrate_dry_run_batch(m, m->batch_size, max_rows, dry_run_row, &st);
	SPI_finish();
	return (Datum) 0;
}

/* Put one plan line into the result. */
static void
explain_line(void *arg, const char *line)
{
	DryRunState *st = arg;
	Datum		values[1];
	bool		nulls[1] = {false};
	MemoryContext old = MemoryContextSwitchTo(st->cxt);

	values[0] = CStringGetTextDatum(line);
	tuplestore_putvalues(st->rsinfo->setResult, st->rsinfo->setDesc, values, nulls);
	MemoryContextSwitchTo(old);
}

/*
 * migrate_explain(name, batch_size)
 *
 * Show the plans of the next batch's two statements: the one that finds the
 * batch's last key, and the change.  Both should be index range scans.
 */
Datum
migrate_explain(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Migration  *m;
	DryRunState st;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	st.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	st.cxt = st.rsinfo->econtext->ecxt_per_query_memory;

	SPI_connect();
	m = migrate_catalog_load(name, false, false);
	migrate_check_may_manage(m, "explain");
	migrate_explain_batch(m, PG_ARGISNULL(1) ? m->batch_size : batch_size_arg(fcinfo, 1),
						  explain_line, &st);
	SPI_finish();
	return (Datum) 0;
}

/*
 * series_names_arg
 *		The names of migrate_start_series' argument as a List, checked: one
 *		dimension, not empty, no nulls, no duplicates, at most
 *		MIGRATE_MAX_SERIES.  Linear in the number of names (a hash table
 *		finds duplicates) and interruptible.
 */
static List *
series_names_arg(FunctionCallInfo fcinfo)
{
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	List	   *names = NIL;
	HASHCTL		ctl;
	HTAB	   *seen;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("names must not be null")));
	arr = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("names must be a one-dimensional array")));
	n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("names must not be empty")));
	if (n > MIGRATE_MAX_SERIES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a series may have at most %d migrations", MIGRATE_MAX_SERIES),
				 errdetail("%d names were given.", n),
				 errhint("Split the work into several series, or run migrations as one with a wider where_clause.")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &elem_nulls, &n);

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = MIGRATE_MAX_NAME_LEN + 1;
	ctl.entrysize = ctl.keysize;
	ctl.hcxt = CurrentMemoryContext;
	seen = hash_create("migrate series names", n, &ctl,
					   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	for (int i = 0; i < n; i++)
	{
		char	   *name;
		bool		found;

		CHECK_FOR_INTERRUPTS();
		if (elem_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("names must not contain nulls")));
		name = TextDatumGetCString(elems[i]);
		if (strlen(name) > MIGRATE_MAX_NAME_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_NAME_TOO_LONG),
					 errmsg("migration name is too long"),
					 errdetail("A migration name may have at most %d bytes.", MIGRATE_MAX_NAME_LEN)));
		(void) hash_search(seen, name, HASH_ENTER, &found);
		if (found)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("migration \"%s\" appears twice in the series", name)));
		names = lappend(names, name);
	}
	hash_destroy(seen);
	return names;
}

/*
 * migrate_start_series(names)
 *
 * Run migrations one after another in the background: start the first that
 * is not done, and let each worker start the next when its migration is
 * done.  The series stops at a migration that fails or is cancelled.
 *
 * Every member is checked (exists, the caller may start it) and pinned by
 * id before anything starts; the series runs on behalf of the caller, and
 * each hand-over checks again that the caller may still start the next
 * member and that it is still the migration that was pinned.
 */
Datum
migrate_start_series(PG_FUNCTION_ARGS)
{
	List	   *names = series_names_arg(fcinfo);
	List	   *rest = NIL;
	Migration  *first = NULL;
	ListCell   *lc;

	SPI_connect();
	/* check every member first, so that a bad name starts nothing */
	foreach(lc, names)
	{
		Migration  *m;

		CHECK_FOR_INTERRUPTS();
		m = migrate_catalog_load(lfirst(lc), true, false);
		migrate_check_may_manage(m, "start");
		if (first == NULL && !migrate_is_finished(m))
			first = m;
		else if (first != NULL)
		{
			SeriesMember *sm = palloc(sizeof(SeriesMember));

			sm->id = m->id;
			sm->name = m->name;
			rest = lappend(rest, sm);
		}
	}

	if (first == NULL)
	{
		ereport(NOTICE, (errmsg("every migration of the series is already done")));
		SPI_finish();
		PG_RETURN_NULL();
	}
	first->series_starter = GetUserId();
	first->series_started_at = GetCurrentTimestamp();
	if (migrate_runner_active(first->id))
	{
		Oid			types[5] = {INT8OID, TEXTARRAYOID, INT8ARRAYOID, OIDOID, TIMESTAMPTZOID};
		Datum		values[5];
		char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
		bool		names_null;
		bool		ids_null;

		values[0] = Int64GetDatum(first->id);
		migrate_series_datums(rest, &values[1], &names_null, &values[2], &ids_null);
		nulls[1] = names_null ? 'n' : ' ';
		nulls[2] = ids_null ? 'n' : ' ';
		values[3] = ObjectIdGetDatum(first->series_starter);
		values[4] = TimestampTzGetDatum(first->series_started_at);
		migrate_catalog_exec(first->catalog_v3 ?
							 "UPDATE migrate.migrations SET series_rest = $2,"
							 " series_ids = $3, series_starter = $4::pg_catalog.regrole,"
							 " series_started_at = $5"
							 " WHERE id OPERATOR(pg_catalog.=) $1" :
							 "UPDATE migrate.migrations SET series_rest = $2"
							 " WHERE id OPERATOR(pg_catalog.=) $1",
							 5, types, values, nulls, SPI_OK_UPDATE);
		ereport(NOTICE,
				(errmsg("migration \"%s\" is already running; the series goes on after it",
						first->name)));
	}
	else
		migrate_start_locked(first, false, rest, InvalidOid,
							 first->cursor ? "resume" : "start", "first of a series");
	PG_RETURN_DATUM(return_row(first->id));
}

/*
 * migrate_unregister(name)
 *
 * Forget a migration that nobody is running.  Its events stay.
 */
Datum
migrate_unregister(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Migration  *m;
	Oid			types[1] = {INT8OID};
	Datum		values[1];

	SPI_connect();
	m = migrate_catalog_load(name, true, false);
	migrate_check_may_manage(m, "unregister");
	if (migrate_runner_active(m->id))
		wrong_state(m, "unregister", "Pause or cancel it first.");
	forget_errors_check_undo(m, "unregister");
	values[0] = Int64GetDatum(m->id);
	migrate_catalog_exec("DELETE FROM migrate.migrations WHERE id OPERATOR(pg_catalog.=) $1",
						 1, types, values, NULL, SPI_OK_DELETE);
	migrate_catalog_log_event(m->name, m->owner, "unregister", NULL);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * migrate_retry_errors(name)
 *
 * Apply the change again to the rows the migration skipped (after the
 * cause was fixed), one row at a time, in the caller's transaction.  Rows
 * that now succeed leave migrate.errors; the others keep their row with
 * the new error.  Returns the counts.
 */
Datum
migrate_retry_errors(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Migration  *m;
	int64		retried,
				fixed,
				failing;
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	SPI_connect();
	m = migrate_catalog_load(name, true, false);
	migrate_check_may_manage(m, "retry");
	if (m->relation == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("migration \"%s\" is a one-off task and has no rows to retry", m->name)));
	if (m->reverting || strcmp(m->state, MIGRATE_STATE_REVERTED) == 0)
		wrong_state(m, "retry the rows of", m->reverting ? "Its revert is not finished." :
					"Its changes were undone; restart it to run it again.");
	if (migrate_runner_active(m->id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("migration \"%s\" is being run by another process", m->name),
				 errhint("Retry its rows once it is done, paused or cancelled.")));
	migrate_retry_rows(m, &retried, &fixed, &failing);
	if (retried > 0)
		migrate_catalog_log_event(m->name, m->owner, "retry",
								  psprintf(INT64_FORMAT " rows retried, " INT64_FORMAT " fixed, " INT64_FORMAT " still failing",
										   retried, fixed, failing));
	SPI_finish();
	values[0] = Int64GetDatum(retried);
	values[1] = Int64GetDatum(fixed);
	values[2] = Int64GetDatum(failing);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/*
 * migrate_revert(name, keep_undo)
 *
 * Restore the before-images of a keep_before migration in a background
 * worker, newest first, with the same exactly-once cursor discipline as
 * the forward batches; the migration ends up "reverted".  A stopped
 * revert goes on from where it was.  Rows changed by someone else since
 * are reported in migrate.errors and left alone.
 */
Datum
migrate_revert(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	bool		keep_undo;
	Migration  *m;
	Oid			types[2] = {INT8OID, BOOLOID};
	Datum		values[2];

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("keep_undo must not be null")));
	keep_undo = PG_GETARG_BOOL(1);

	SPI_connect();
	m = migrate_catalog_load(name, true, false);
	migrate_check_may_manage(m, "revert");
	if (!m->keep_before)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" kept no before-images", m->name),
				 errhint("Only a migration registered with keep_before => true can be reverted.")));
	if (strcmp(m->state, MIGRATE_STATE_REVERTED) == 0)
	{
		ereport(NOTICE,
				(errmsg("migration \"%s\" is already reverted", m->name)));
		PG_RETURN_DATUM(return_row(m->id));
	}
	if (migrate_runner_active(m->id))
	{
		if (m->reverting && strcmp(m->state, MIGRATE_STATE_RUNNING) == 0)
		{
			ereport(NOTICE,
					(errmsg("migration \"%s\" is already being reverted", m->name)));
			PG_RETURN_DATUM(return_row(m->id));
		}
		wrong_state(m, "revert", "Pause or cancel it first, and wait for its worker to stop.");
	}
	if (strcmp(m->action, MIGRATE_ACTION_DELETE) == 0)
	{
		Oid			relid = migrate_resolve_relation(m, false);

		if (pg_class_aclcheck(relid, m->owner, ACL_INSERT) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for table %s", get_rel_name(relid)),
					 errdetail("Reverting a delete inserts the rows again, as the migration's owner %s, who needs the INSERT privilege.",
							   GetUserNameFromId(m->owner, false))));
	}
	values[0] = Int64GetDatum(m->id);
	values[1] = BoolGetDatum(keep_undo);
	if (!m->reverting)
	{
		migrate_catalog_exec("UPDATE migrate.migrations SET reverting = true,"
							 " revert_cursor = NULL, reverted = 0, keep_undo = $2"
							 " WHERE id OPERATOR(pg_catalog.=) $1",
							 2, types, values, NULL, SPI_OK_UPDATE);
		m->reverting = true;
		m->has_revert_cursor = false;
		m->reverted = 0;
	}
	else
		migrate_catalog_exec("UPDATE migrate.migrations SET keep_undo = $2"
							 " WHERE id OPERATOR(pg_catalog.=) $1",
							 2, types, values, NULL, SPI_OK_UPDATE);
	m->keep_undo = keep_undo;
	migrate_start_locked(m, false, NIL, InvalidOid, "revert",
						 m->has_revert_cursor ? "resumed" : NULL);
	PG_RETURN_DATUM(return_row(m->id));
}

/*
 * migrate_forget(name)
 *
 * Drop the before-images of a migration, once the team is sure it will not
 * be reverted.  Returns the number of undo rows dropped.
 */
Datum
migrate_forget(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Migration  *m;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	int64		n;

	SPI_connect();
	m = migrate_catalog_load(name, true, false);
	migrate_check_may_manage(m, "forget");
	if (migrate_runner_active(m->id))
		wrong_state(m, "forget the before-images of", "Pause or cancel it first.");
	values[0] = CStringGetTextDatum(m->name);
	migrate_catalog_exec("DELETE FROM migrate.undo WHERE migration OPERATOR(pg_catalog.=) $1",
						 1, types, values, NULL, SPI_OK_DELETE);
	n = SPI_processed;
	/* what a revert reported about those images goes with them */
	migrate_catalog_exec("DELETE FROM migrate.errors WHERE migration OPERATOR(pg_catalog.=) $1"
						 " AND phase OPERATOR(pg_catalog.=) 'revert'",
						 1, types, values, NULL, SPI_OK_DELETE);
	migrate_catalog_log_event(m->name, m->owner, "forget",
							  psprintf(INT64_FORMAT " before-images dropped%s", n,
									   m->reverting ? "; the unfinished revert ends here" : ""));
	if (m->reverting)
	{
		/*
		 * A stopped revert ends here, as far as it got: with its images
		 * gone it cannot go on, and going forward again would not redo the
		 * rows it restored.
		 */
		Oid			t2[1] = {INT8OID};
		Datum		v2[1] = {Int64GetDatum(m->id)};

		migrate_catalog_exec("UPDATE migrate.migrations SET reverting = false,"
							 " finished_at = pg_catalog.clock_timestamp()"
							 " WHERE id OPERATOR(pg_catalog.=) $1",
							 1, t2, v2, NULL, SPI_OK_UPDATE);
		migrate_catalog_set_state(m, MIGRATE_STATE_REVERTED, "reverted",
								  psprintf("restored " INT64_FORMAT " rows; the rest of the revert was given up", m->reverted));
	}
	SPI_finish();
	PG_RETURN_INT64(n);
}
