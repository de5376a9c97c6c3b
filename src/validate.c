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
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "optimizer/plancat.h"
#include "parser/parse_coerce.h"
#include "parser/parse_expr.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
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

#include "validate.h"
#include "batch.h"
#include "statements.h"

static Node *parse_fragment(const char *clause, bool is_set, const char *what,
							List *key_columns);

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
	(void) parse_fragment(clause, is_set, is_set ? "set_clause" : "where_clause",
						  key_columns);
}

/*
 * parse_fragment
 *		The work of migrate_validate_clause for a fragment called "what";
 *		returns its raw statement (an UpdateStmt, or a SelectStmt whose
 *		whereClause is the expression).
 */
static Node *
parse_fragment(const char *clause, bool is_set, const char *what,
			   List *key_columns)
{
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
	return stmt;
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

/*
 * validate_check_expr
 *		Check that "clause" is fit to be the check of a migration of table
 *		relid ("relation", quoted): one boolean expression over the columns
 *		of that table alone, without subqueries or volatile functions.  A
 *		row_fn migration's batches read the table under an alias, so there
 *		the expression must not name the table either.
 *
 * Parse analysis runs as the registering role with its search_path, as the
 * check will run as the owner with the search_path saved now.
 */
static void
validate_check_expr(const char *clause, Oid relid, const char *relation,
					bool row_fn)
{
	SelectStmt *stmt = (SelectStmt *) parse_fragment(clause, false, "check_clause", NIL);
	ParseState *pstate = make_parsestate(NULL);
	Relation	rel = table_open(relid, AccessShareLock);
	MemoryContext oldcxt = CurrentMemoryContext;
	ParseNamespaceItem *nsitem;
	Node	   *expr = NULL;

	nsitem = addRangeTableEntryForRelation(pstate, rel, AccessShareLock,
										   row_fn ? makeAlias(ALIAS_INNER, NIL) : NULL,
										   true, true);
	addNSItemToQuery(pstate, nsitem, false, true, true);
	PG_TRY();
	{
		expr = transformExpr(pstate, stmt->whereClause, EXPR_KIND_WHERE);
		expr = coerce_to_boolean(pstate, expr, "check_clause");
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_UNDEFINED_TABLE)
			PG_RE_THROW();
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				 errmsg("check_clause may only refer to table %s", relation),
				 errdetail("A check is a predicate on one row of the table: %s.", edata->message),
				 row_fn ? errhint("A row_fn migration's check_clause cannot name the table; write its columns unqualified.") : 0));
	}
	PG_END_TRY();
	if (pstate->p_hasSubLinks)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("check_clause must not contain a subquery"),
				 errdetail("A check is a predicate on one row of the table %s alone.", relation)));
	if (contain_volatile_functions(expr))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("check_clause must not call volatile functions"),
				 errdetail("A check must give the same answer each time it looks at the same row."),
				 errhint("Use only immutable or stable functions.")));
	table_close(rel, NoLock);
	free_parsestate(pstate);
}

/* validate_check_expr's arguments, for migrate_try_in_subxact */
typedef struct CheckWork
{
	const char *clause;
	const MigrationDef *def;
} CheckWork;

static void
check_work(void *arg)
{
	CheckWork  *w = arg;

	validate_check_expr(w->clause, w->def->relid, w->def->relation,
						OidIsValid(w->def->row_fn));
}

/*
 * migrate_validate_check
 *		Settle the check of def, a migration of a table: check_clause as
 *		given, else NOT (where_clause), else none.  A given check that is
 *		not fit is an error; a where_clause whose negation is not fit (it
 *		has a subquery, names another table, calls a volatile function)
 *		leaves the migration without a check, silently (migrate_verify
 *		says so).  catch_up needs a check, and is refused with on_error =>
 *		'skip' and with keep_before.  Runs in the registering transaction,
 *		as the registering role.
 */
void
migrate_validate_check(MigrationDef *def)
{
	if (def->check_clause)
	{
		if (def->check_clause[strspn(def->check_clause, " \t\r\n")] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("check_clause must not be empty")));
		validate_check_expr(def->check_clause, def->relid, def->relation,
							OidIsValid(def->row_fn));
	}
	else if (def->where_clause)
	{
		CheckWork	w;
		ErrorData  *edata;

		w.clause = psprintf("NOT (\n%s\n)", def->where_clause);
		w.def = def;
		edata = migrate_try_in_subxact(check_work, &w, false, NULL, false);
		if (edata == NULL)
			def->check_clause = (char *) w.clause;
		else
			FreeErrorData(edata);
	}
	if (def->catch_up && def->check_clause == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("catch_up needs a check"),
				 errdetail("A catch-up pass changes the rows that fail the migration's check."),
				 errhint("Pass check_clause => '...', the predicate that holds for a row that is migrated.")));
	if (def->catch_up && def->skip_errors)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("catch_up cannot be combined with on_error => 'skip'"),
				 errdetail("A row set aside fails the check, and each catch-up pass would try it again.")));
	if (def->catch_up && def->keep_before)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("catch_up cannot be combined with keep_before"),
				 errdetail("A row changed again by a catch-up pass would have two before-images, and a revert restores one image per row.")));
}
