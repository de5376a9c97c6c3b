/*-------------------------------------------------------------------------
 *
 * validate.c
 *	  Checking the user's SQL fragments, task SQL and row function at
 *	  registration.
 *
 * The fragments are checked with the raw parser before they are put into a
 * statement, so that a fragment cannot end the statement early, add a
 * statement or turn the key range off.
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

#include "migrate.h"
#include "batch.h"

/*
 * migrate_parse_pinned
 *		raw_parser() with standard_conforming_strings on, the setting every
 *		statement built from the user's text runs with.  Returns NIL and sets
 *		*message on a syntax error.
 */
List *
migrate_parse_pinned(const char *sql, char **message)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	int			nestlevel = NewGUCNestLevel();
	List	   *stmts = NIL;

	*message = NULL;
	(void) set_config_option("standard_conforming_strings", "on",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	PG_TRY();
	{
		stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		*message = edata->message;
	}
	PG_END_TRY();
	AtEOXact_GUC(true, nestlevel);
	return stmts;
}

/*
 * migrate_validate_clause
 *		Check that a set_clause (is_set) or where_clause is one fragment of
 *		the expected kind and nothing else.
 *
 * Runs the raw parser only: names are resolved later, by EXPLAIN.
 */
void
migrate_validate_clause(const char *clause, bool is_set, List *key_columns)
{
	const char *what = is_set ? "set_clause" : "where_clause";
	char	   *sql;
	List	   *stmts;
	Node	   *stmt;
	char	   *message;
	bool		ok;

	if (clause[strspn(clause, " \t\r\n")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));

	sql = is_set ? psprintf("UPDATE __migrate_x SET\n%s\n", clause)
		: psprintf("SELECT 1 WHERE\n%s\n", clause);
	stmts = migrate_parse_pinned(sql, &message);
	if (message)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s is not valid SQL: %s", what, message),
				 errdetail("The %s was: %s", what, clause)));

	ok = list_length(stmts) == 1;
	stmt = ok ? ((RawStmt *) linitial(stmts))->stmt : NULL;
	if (ok && is_set)
	{
		UpdateStmt *u = (UpdateStmt *) stmt;

		ok = IsA(u, UpdateStmt) && u->whereClause == NULL &&
			u->fromClause == NIL && u->withClause == NULL;
#if PG_VERSION_NUM >= 180000
		ok = ok && u->returningClause == NULL;
#else
		ok = ok && u->returningList == NIL;
#endif
		if (ok)
		{
			ListCell   *lc;

			foreach(lc, u->targetList)
			{
				ResTarget  *rt = lfirst_node(ResTarget, lc);
				ListCell   *kc;

				foreach(kc, key_columns)
					if (strcmp(rt->name, lfirst(kc)) == 0)
						ereport(ERROR,
								(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								 errmsg("set_clause must not change key column \"%s\"", rt->name),
								 errdetail("The migration walks the table in key order; changing the key would move rows behind or ahead of its cursor.")));
			}
		}
	}
	else if (ok)
	{
		SelectStmt *s = (SelectStmt *) stmt;

		ok = IsA(s, SelectStmt) && s->op == SETOP_NONE &&
			s->fromClause == NIL && s->groupClause == NIL &&
			s->havingClause == NULL && s->windowClause == NIL &&
			s->sortClause == NIL && s->limitCount == NULL &&
			s->limitOffset == NULL && s->lockingClause == NIL &&
			s->withClause == NULL && s->intoClause == NULL &&
			s->distinctClause == NIL && list_length(s->targetList) == 1;
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s must be a single %s", what,
						is_set ? "list of column assignments" : "boolean expression"),
				 errdetail("The %s was: %s", what, clause),
				 errhint(is_set ? "Write it as it would follow SET in an UPDATE, for example: email = lower(email)."
						 : "Write it as it would follow WHERE, for example: created_at < now() - interval '1 year'.")));
}

/*
 * migrate_validate_task_sql
 *		Check that a one-off task's SQL parses and controls no transaction.
 */
void
migrate_validate_task_sql(const char *sql)
{
	char	   *message;
	List	   *stmts = migrate_parse_pinned(sql, &message);
	ListCell   *lc;

	if (message)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("sql is not valid SQL: %s", message)));

	if (stmts == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sql must contain at least one statement")));
	foreach(lc, stmts)
	{
		Node	   *stmt = ((RawStmt *) lfirst(lc))->stmt;

		if (IsA(stmt, TransactionStmt) || IsA(stmt, VacuumStmt) ||
			IsA(stmt, CreatedbStmt) || IsA(stmt, DropdbStmt))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("a task cannot contain %s", CreateCommandName(stmt)),
					 errdetail("A task runs in one transaction.")));
	}
}

/*
 * migrate_validate_row_fn
 *		Check that fnoid is a function f(relation) RETURNS relation that the
 *		current user may execute.
 */
void
migrate_validate_row_fn(Oid fnoid, Oid relid)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fnoid));
	Form_pg_proc proc;
	Oid			reltype = get_rel_type_id(relid);

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function with OID %u does not exist", fnoid)));
	proc = (Form_pg_proc) GETSTRUCT(tup);
	if (proc->prokind != PROKIND_FUNCTION || proc->proretset ||
		proc->pronargs != 1 || proc->proargtypes.values[0] != reltype ||
		proc->prorettype != reltype)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("row_fn %s must take one row of %s and return one row of it",
						format_procedure(fnoid), format_type_be(reltype)),
				 errhint("Declare it as: CREATE FUNCTION f(r %s) RETURNS %s.",
						 format_type_be(reltype), format_type_be(reltype))));
	ReleaseSysCache(tup);
#if PG_VERSION_NUM >= 160000
	if (object_aclcheck(ProcedureRelationId, fnoid, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
#else
	if (pg_proc_aclcheck(fnoid, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
#endif
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", format_procedure(fnoid))));
}
