/*-------------------------------------------------------------------------
 *
 * register.c
 *	  Reading and checking a migration's definition for migrate_register.
 *
 * migrate_register_args reads the arguments into a MigrationDef and checks
 * each on its own; migrate_validate_definition checks them together and
 * against the table (kind of change, key, fragments, row function,
 * privileges), filling in what is derived from the table.  Both run in the
 * registering transaction, as the registering role, before anything is
 * stored: any error leaves the catalog untouched.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/timestamp.h"

#include "register.h"
#include "args.h"
#include "catalog.h"
#include "keys.h"
#include "security.h"
#include "validate.h"

/*
 * migrate_register_args
 *		Read migrate_register's arguments into def, each checked on its own:
 *		name, relation, set_clause, where_clause, row_fn, action, sql,
 *		batch_size (NULL: adaptive from 1000), pause, lock_timeout, replace,
 *		target_batch_time, min_batch_size, max_batch_size, busy_share, since
 *		0.2 on_error and keep_before, and since 0.3 vacuum, max_wal_rate,
 *		check_clause, catch_up, max_passes and workers.
 */
void
migrate_register_args(FunctionCallInfo fcinfo, MigrationDef *def)
{
	memset(def, 0, sizeof(*def));
	def->name = migrate_text_arg(fcinfo, 0, "name");
	def->relid = PG_ARGISNULL(1) ? InvalidOid : PG_GETARG_OID(1);
	def->set_clause = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	def->where_clause = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	def->row_fn = PG_ARGISNULL(4) ? InvalidOid : PG_GETARG_OID(4);
	def->action = migrate_text_arg(fcinfo, 5, "action");
	def->sql = PG_ARGISNULL(6) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(6));
	def->adaptive = PG_ARGISNULL(7);
	def->batch_size = def->adaptive ? 1000 : migrate_batch_size_arg(fcinfo, 7);
	(void) migrate_interval_arg_ms(fcinfo, 8, "pause", 0, MSECS_PER_DAY, "0 and 1 day");
	def->pause = PG_GETARG_DATUM(8);
	(void) migrate_interval_arg_ms(fcinfo, 9, "lock_timeout", 1, INT_MAX,
								   "1 millisecond and 24 days");
	def->lock_timeout = PG_GETARG_DATUM(9);
	if (PG_ARGISNULL(10))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("replace must not be null")));
	def->replace = PG_GETARG_BOOL(10);
	def->adaptive = def->adaptive &&
		migrate_interval_arg_ms(fcinfo, 11, "target_batch_time", 0, 3600 * 1000,
								"0 and 1 hour") > 0;
	def->target_batch_time = PG_GETARG_DATUM(11);
	def->min_batch_size = migrate_batch_size_arg(fcinfo, 12);
	def->max_batch_size = migrate_batch_size_arg(fcinfo, 13);
	if (def->min_batch_size > def->max_batch_size)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_batch_size must not be greater than max_batch_size"),
				 errdetail("min_batch_size is %d, max_batch_size is %d.",
						   def->min_batch_size, def->max_batch_size)));
	if (PG_ARGISNULL(14))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("busy_share must not be null")));
	def->busy_share = PG_GETARG_FLOAT4(14);
	if (!(def->busy_share > 0 && def->busy_share <= 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("busy_share must be greater than 0 and at most 1"),
				 errdetail("It is the share of time a migration's batches may take while the server is busy.")));
	/* on_error and keep_before came with 0.2 */
	def->has_v2_options = PG_NARGS() > 15;
	if (def->has_v2_options)
	{
		char	   *on_error = migrate_text_arg(fcinfo, 15, "on_error");

		if (strcmp(on_error, "stop") != 0 && strcmp(on_error, "skip") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("on_error must be \"stop\" or \"skip\", not \"%s\"", on_error)));
		def->skip_errors = strcmp(on_error, "skip") == 0;
		if (PG_ARGISNULL(16))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("keep_before must not be null")));
		def->keep_before = PG_GETARG_BOOL(16);
	}
	/* vacuum and max_wal_rate came with 0.3 */
	def->vacuum = true;
	def->max_wal_rate = -1;
	if (PG_NARGS() > 17)
	{
		if (PG_ARGISNULL(17))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("vacuum must not be null")));
		def->vacuum = PG_GETARG_BOOL(17);
		if (!PG_ARGISNULL(18))
		{
			def->max_wal_rate = PG_GETARG_INT64(18);
			if (def->max_wal_rate < 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("max_wal_rate must not be negative"),
						 errdetail("It is in bytes per second; 0 or NULL set no budget.")));
		}
	}
	/* check_clause, catch_up and max_passes came with 0.3 too (issue 13) */
	def->max_passes = 3;
	if (PG_NARGS() > 19)
	{
		def->check_clause = PG_ARGISNULL(19) ? NULL :
			text_to_cstring(PG_GETARG_TEXT_PP(19));
		if (PG_ARGISNULL(20))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("catch_up must not be null")));
		def->catch_up = PG_GETARG_BOOL(20);
		if (PG_ARGISNULL(21))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("max_passes must not be null")));
		def->max_passes = PG_GETARG_INT32(21);
		if (def->max_passes < 1 || def->max_passes > 1000)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_passes must be between 1 and 1000"),
					 errdetail("The max_passes given was %d.", def->max_passes)));
	}
	/* and workers (issue 12) */
	def->workers = PG_NARGS() > 22 ? migrate_workers_arg(fcinfo, 22) : 1;
	def->search_path = GetConfigOptionByName("search_path", NULL, false);
	def->owner = GetUserId();
}

/*
 * validate_task
 *		A one-off task (no relation) takes only its SQL, checked here.
 */
static void
validate_task(MigrationDef *def)
{
	if (def->sql == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("relation must not be null"),
				 errhint("To register a one-off task, pass its SQL as sql => '...' with relation => NULL.")));
	if (def->set_clause || def->where_clause || OidIsValid(def->row_fn) ||
		strcmp(def->action, MIGRATE_ACTION_UPDATE) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a one-off task takes only sql"),
				 errdetail("set_clause, where_clause, row_fn and action are for migrations of a table.")));
	if (def->check_clause || def->catch_up)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a one-off task has no check_clause and cannot catch up"),
				 errdetail("A check is a predicate on the rows of a table.")));
	if (def->workers > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a one-off task runs in one worker"),
				 errdetail("workers splits the keys of a table between workers; a task has no table."),
				 errhint("Leave workers at 1.")));
	if (def->skip_errors || def->keep_before)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a one-off task cannot skip rows or keep before-images"),
				 errdetail("A task runs once, in one transaction: it succeeds or fails whole, and migrate does not know which rows it changes."),
				 errhint("Leave on_error and keep_before at their defaults.")));
	migrate_validate_task_sql(def->sql);
	def->action = MIGRATE_ACTION_TASK;
}

/*
 * validate_change_kind
 *		A migration of a table is an update (by exactly one of set_clause
 *		and row_fn) or a delete (by where_clause), never SQL.
 */
static void
validate_change_kind(const MigrationDef *def)
{
	bool		is_delete;

	if (def->sql != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sql is only for one-off tasks"),
				 errhint("Pass relation => NULL to register a one-off task, or describe the change with set_clause, row_fn or action => 'delete'.")));
	if (strcmp(def->action, MIGRATE_ACTION_UPDATE) != 0 &&
		strcmp(def->action, MIGRATE_ACTION_DELETE) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("action must be \"update\" or \"delete\", not \"%s\"", def->action)));
	is_delete = strcmp(def->action, MIGRATE_ACTION_DELETE) == 0;
	if (is_delete && (def->set_clause || OidIsValid(def->row_fn)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a delete migration takes no set_clause or row_fn"),
				 errhint("Describe the rows to delete with where_clause.")));
	if (!is_delete && (def->set_clause != NULL) == OidIsValid(def->row_fn))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an update migration needs exactly one of set_clause and row_fn")));
}

/*
 * validate_table
 *		The relation must be an ordinary or partitioned table that a worker
 *		can see, which the registering role may change, with a usable key.
 *		Fills in def's key columns and their types.
 */
static void
validate_table(MigrationDef *def)
{
	Oid			relid = def->relid;
	char		relkind = get_rel_relkind(relid);

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
	migrate_check_table_privilege(relid, def->action);
	def->key_columns = migrate_find_key_columns(relid);
	if (def->key_columns == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has no primary key or unique index usable as a key",
						get_rel_name(relid)),
				 errdetail("migrate walks a table in key order. A usable key is a primary key or a unique index without expressions or predicate whose columns are NOT NULL, not generated, and of a scalar type (not an array, composite, range or JSON type)."),
				 errhint("Add a primary key, or a unique index on columns that are NOT NULL.")));
	def->key_types = migrate_key_types(relid, def->key_columns);
	def->relation = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
											   get_rel_name(relid));
}

/*
 * migrate_validate_definition
 *		Check def as a whole, and against its table: a one-off task, or a
 *		change of a table whose fragments and row function fit it.
 */
void
migrate_validate_definition(MigrationDef *def)
{
	if (def->name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("migration name must not be empty")));
	migrate_check_name_length(def->name);
	if (!OidIsValid(def->relid))
	{
		validate_task(def);
		return;
	}
	validate_change_kind(def);
	validate_table(def);
	if (def->set_clause)
		migrate_validate_clause(def->set_clause, true, def->key_columns);
	if (def->where_clause)
		migrate_validate_clause(def->where_clause, false, def->key_columns);
	if (OidIsValid(def->row_fn))
	{
		migrate_validate_row_fn(def->row_fn, def->relid);
		def->row_fn_text = format_procedure_qualified(def->row_fn);
	}
	migrate_validate_check(def);
}
