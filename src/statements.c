/*-------------------------------------------------------------------------
 *
 * statements.c
 *	  Building the SQL statements of a migration's batches and reverts.
 *
 * A batch is a key range.  The first statement of a batch finds the last
 * key of the next batch_size rows after the cursor through the key's index
 * (a keyset walk: its cost does not depend on how far the cursor is); the
 * second applies the change to exactly the rows in (cursor, last key].
 * The user's fragments go into these statements as they were checked at
 * registration (validate.c); our own parts are fully qualified, and the
 * aliases are unlikely to collide with user names.
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

#include "statements.h"
#include "validate.h"

static List *written_columns(const Migration *m, Oid relid);

/* Return "OPERATOR(ns.op)" for the btree operator of "strategy" on typid. */
static char *
key_operator(Oid typid, int16 strategy)
{
	TypeCacheEntry *tce = lookup_type_cache(typid, TYPECACHE_BTREE_OPFAMILY);
	Oid			opno;
	HeapTuple	tup;
	Form_pg_operator op;
	char	   *result;

	if (!OidIsValid(tce->btree_opf))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("key column type %s has no default btree operator class",
						format_type_be(typid))));
	opno = get_opfamily_member(tce->btree_opf, tce->btree_opintype,
							   tce->btree_opintype, strategy);
	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opno);
	op = (Form_pg_operator) GETSTRUCT(tup);
	result = psprintf("OPERATOR(%s.%s)",
					  quote_identifier(get_namespace_name(op->oprnamespace)),
					  NameStr(op->oprname));
	ReleaseSysCache(tup);
	return result;
}

/* Describe the key of migration m on relation relid as SQL pieces. */
static KeySql *
key_sql(const Migration *m, Oid relid)
{
	KeySql	   *k = palloc0(sizeof(KeySql));
	ListCell   *lc;

	foreach(lc, m->key_columns)
	{
		char	   *col = lfirst(lc);
		AttrNumber	attno = get_attnum(relid, col);
		Oid			typid;
		char	   *gt,
				   *le,
				   *eq;

		if (attno == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("key column \"%s\" of migration \"%s\" no longer exists",
							col, m->name),
					 errhint("Register the migration again with replace => true.")));
		typid = getBaseType(get_atttype(relid, attno));
		gt = key_operator(typid, BTGreaterStrategyNumber);
		le = key_operator(typid, BTLessEqualStrategyNumber);
		eq = key_operator(typid, BTEqualStrategyNumber);
		if (k->gt == NULL)
		{
			k->gt = gt;
			k->le = le;
			k->eq = eq;
		}
		else if (strcmp(k->gt, gt) != 0 || strcmp(k->le, le) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("the key columns of table %s compare with operators from different schemas",
							m->relation),
					 errhint("Use a key whose column types all have their comparison operators in one schema.")));
		k->names = lappend(k->names, (char *) quote_identifier(col));
		k->json_keys = lappend(k->json_keys, quote_literal_cstr(col));
		/* without a typmod, yet not "character" (which would mean char(1)) */
		k->types = lappend(k->types,
						   format_type_extended(typid, -1,
												FORMAT_TYPE_TYPEMOD_GIVEN |
												FORMAT_TYPE_FORCE_QUALIFY));
	}
	return k;
}

/* Append the key of alias "prefix" as an expression (ROW(...) if composite). */
static void
append_key(StringInfo buf, KeySql *k, const char *prefix)
{
	ListCell   *lc;

	if (list_length(k->names) > 1)
		appendStringInfoString(buf, "ROW(");
	foreach(lc, k->names)
		appendStringInfo(buf, "%s%s%s", foreach_current_index(lc) > 0 ? ", " : "",
						 prefix, (char *) lfirst(lc));
	if (list_length(k->names) > 1)
		appendStringInfoChar(buf, ')');
}

/* Append the key stored in the jsonb expression src, typed like the key. */
static void
append_key_from(StringInfo buf, KeySql *k, const char *src)
{
	if (list_length(k->names) > 1)
		appendStringInfoString(buf, "ROW(");
	for (int i = 0; i < list_length(k->names); i++)
		appendStringInfo(buf, "%s((%s OPERATOR(pg_catalog.->>) %s))::%s",
						 i > 0 ? ", " : "", src,
						 (char *) list_nth(k->json_keys, i),
						 (char *) list_nth(k->types, i));
	if (list_length(k->names) > 1)
		appendStringInfoChar(buf, ')');
}

/* Append the key stored in jsonb parameter $param, typed like the key. */
static void
append_bound(StringInfo buf, KeySql *k, int param)
{
	char		src[16];

	snprintf(src, sizeof(src), "$%d", param);
	append_key_from(buf, k, src);
}

/* Append the condition that selects the rows of "range" (see KeyRange). */
static void
append_range(StringInfo buf, KeySql *k, const char *prefix, KeyRange range)
{
	if (range == KEYS_AFTER)
	{
		append_key(buf, k, prefix);
		appendStringInfo(buf, " %s ", k->gt);
		append_bound(buf, k, 1);
		appendStringInfoString(buf, " AND ");
	}
	append_key(buf, k, prefix);
	appendStringInfo(buf, " %s ", range == KEYS_EXACT ? k->eq : k->le);
	append_bound(buf, k, 2);
}

/* Append pg_catalog.jsonb_build_object('k1', prefix k1, ...). */
static void
append_key_json(StringInfo buf, KeySql *k, const char *prefix)
{
	appendStringInfoString(buf, "pg_catalog.jsonb_build_object(");
	for (int i = 0; i < list_length(k->names); i++)
		appendStringInfo(buf, "%s%s, %s%s", i > 0 ? ", " : "",
						 (char *) list_nth(k->json_keys, i), prefix,
						 (char *) list_nth(k->names, i));
	appendStringInfoChar(buf, ')');
}

/*
 * Append "SELECT <key> FROM [ONLY] relation [WHERE key > $1] [AND key <= $3]
 * ORDER BY <key>": the keys after the cursor (up to the last key of a range,
 * with has_upper), in key order, through the key's index.
 */
static void
append_keys_after_cursor(StringInfo buf, KeySql *k, const char *only,
						 const char *relation, bool has_lower, bool has_upper)
{
	ListCell   *lc;

	appendStringInfoString(buf, "SELECT ");
	foreach(lc, k->names)
		appendStringInfo(buf, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
						 (char *) lfirst(lc));
	appendStringInfo(buf, " FROM %s%s " ALIAS_INNER, only, relation);
	if (has_lower)
	{
		appendStringInfoString(buf, " WHERE ");
		append_key(buf, k, ALIAS_INNER ".");
		appendStringInfo(buf, " %s ", k->gt);
		append_bound(buf, k, 1);
	}
	if (has_upper)
	{
		appendStringInfoString(buf, has_lower ? " AND " : " WHERE ");
		append_key(buf, k, ALIAS_INNER ".");
		appendStringInfo(buf, " %s ", k->le);
		append_bound(buf, k, 3);
	}
	appendStringInfoString(buf, " ORDER BY ");
	foreach(lc, k->names)
		appendStringInfo(buf, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
						 (char *) lfirst(lc));
}

/* Columns a row function's result is written to: all but key and generated ones (unquoted names). */
static List *
row_fn_target_columns(const Migration *m, Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *cols = NIL;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		ListCell   *lc;
		bool		is_key = false;

		if (att->attisdropped || att->attgenerated ||
			att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
			continue;
		foreach(lc, m->key_columns)
			if (strcmp(lfirst(lc), NameStr(att->attname)) == 0)
				is_key = true;
		if (!is_key)
			cols = lappend(cols, pstrdup(NameStr(att->attname)));
	}
	table_close(rel, AccessShareLock);
	return cols;
}

/* Return the qualified name of m's row function, or error out if it is gone. */
static char *
row_fn_name(const Migration *m)
{
	LOCAL_FCINFO(fcinfo, 1);
	Datum		d;
	Oid			fnoid;

	/* to_regprocedure returns NULL for a missing function */
	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = CStringGetTextDatum(m->row_fn);
	fcinfo->args[0].isnull = false;
	d = to_regprocedure(fcinfo);
	fnoid = fcinfo->isnull ? InvalidOid : DatumGetObjectId(d);
	if (!OidIsValid(fnoid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("row function %s of migration \"%s\" does not exist", m->row_fn, m->name),
				 errdetail("The function was dropped or renamed after the migration was registered.")));
	return quote_qualified_identifier(get_namespace_name(get_func_namespace(fnoid)),
									  get_func_name(fnoid));
}

/*
 * append_image
 *		Append the image of the columns cols (unquoted names) of the row
 *		"prefix": a jsonb object of each column's text form, which the
 *		column's type reads back exactly (a json value keeps its
 *		whitespace, an array its bounds, a float its sign).  The caller
 *		pins the output formats (pin_image_formats).
 */
static void
append_image(StringInfo buf, List *cols, const char *prefix)
{
	ListCell   *lc;

	appendStringInfoString(buf, "pg_catalog.jsonb_object(ARRAY[");
	foreach(lc, cols)
		appendStringInfo(buf, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
						 quote_literal_cstr(lfirst(lc)));
	appendStringInfoString(buf, "]::pg_catalog.text[], ARRAY[");
	foreach(lc, cols)
		appendStringInfo(buf, "%s(%s%s)::pg_catalog.text", foreach_current_index(lc) > 0 ? ", " : "",
						 prefix, quote_identifier(lfirst(lc)));
	appendStringInfoString(buf, "]::pg_catalog.text[])");
}

/* The columns of relid a deleted row is restored with: not dropped, not generated. */
static List *
stored_columns(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *cols = NIL;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && !att->attgenerated)
			cols = lappend(cols, pstrdup(NameStr(att->attname)));
	}
	table_close(rel, AccessShareLock);
	return cols;
}

/* Append "(src ->> 'col')::type": column col of relid read back from an image. */
static void
append_from_image(StringInfo buf, Oid relid, const char *col, const char *src)
{
	AttrNumber	attno = get_attnum(relid, col);

	if (attno == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of table %s no longer exists", col, get_rel_name(relid)),
				 errdetail("Its before-images cannot be restored.")));
	/* the column's own typmod applies on assignment; char(n) must not read as char(1) */
	appendStringInfo(buf, "(%s OPERATOR(pg_catalog.->>) %s)::%s", src, quote_literal_cstr(col),
					 format_type_extended(get_atttype(relid, attno), -1,
										  FORMAT_TYPE_TYPEMOD_GIVEN |
										  FORMAT_TYPE_FORCE_QUALIFY));
}

/*
 * set_clause_columns
 *		The columns a set_clause assigns (unquoted names), each once.
 */
static List *
set_clause_columns(const char *set_clause)
{
	char	   *message;
	List	   *stmts = migrate_parse_pinned(psprintf("UPDATE __migrate_x SET\n%s\n", set_clause),
									 &message);
	UpdateStmt *u;
	ListCell   *lc;
	List	   *cols = NIL;

	if (message || list_length(stmts) != 1)
		elog(ERROR, "set_clause of a registered migration does not parse");
	u = (UpdateStmt *) ((RawStmt *) linitial(stmts))->stmt;
	foreach(lc, u->targetList)
	{
		ResTarget  *rt = lfirst_node(ResTarget, lc);

		cols = list_append_unique(cols, makeString(rt->name));
	}
	foreach(lc, cols)
		lfirst(lc) = strVal(lfirst(lc));
	return cols;
}

/* The columns m's change writes: what a revert restores. */
static List *
written_columns(const Migration *m, Oid relid)
{
	if (m->row_fn)
		return row_fn_target_columns(m, relid);
	return set_clause_columns(m->set_clause);
}

/* Append ", "-separated "prefix.col" (quoted) for each column of cols. */
static void
append_columns(StringInfo buf, List *cols, const char *prefix)
{
	ListCell   *lc;

	foreach(lc, cols)
		appendStringInfo(buf, "%s%s%s", foreach_current_index(lc) > 0 ? ", " : "",
						 prefix, quote_identifier(lfirst(lc)));
}

/*
 * Append " AND (where_clause)" if m has one, and in a catch-up pass
 * " AND (check_clause) IS NOT TRUE": a row that passes the check is never
 * changed again (verify.c).
 */
static void
append_where(StringInfo buf, const Migration *m)
{
	if (m->where_clause)
		appendStringInfo(buf, " AND (\n%s\n)", m->where_clause);
	if (m->catch_up && m->pass >= 1 && m->check_clause)
		appendStringInfo(buf, " AND (\n%s\n) IS NOT TRUE", m->check_clause);
}

/*
 * migrate_failing_predicate
 *		The condition on a row of m's table (named as itself, without an
 *		alias) that says the migration has still to change it: it matches
 *		the where_clause, if any, and fails the check, if any.  NULL when
 *		that is every row.
 */
char *
migrate_failing_predicate(const Migration *m)
{
	if (m->where_clause && m->check_clause)
		return psprintf("(\n%s\n) IS TRUE AND (\n%s\n) IS NOT TRUE",
						m->where_clause, m->check_clause);
	if (m->check_clause)
		return psprintf("(\n%s\n) IS NOT TRUE", m->check_clause);
	if (m->where_clause)
		return psprintf("(\n%s\n) IS TRUE", m->where_clause);
	return NULL;
}

/*
 * migrate_build_verify_sql
 *		The statement that checks the rows of "range" of m's table (cursor
 *		$1, last key $2, as for a batch), read only: it returns how many
 *		rows there are, how many fail (migrate_failing_predicate), and the
 *		keys of the first $3 of those, in key order, as a jsonb array (NULL
 *		if none).  m has a check.
 */
char *
migrate_build_verify_sql(const Migration *m, Oid relid, KeyRange range)
{
	KeySql	   *k = key_sql(m, relid);
	const char *only = get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ";
	StringInfoData buf;
	ListCell   *lc;
	char	   *pred;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT pg_catalog.count(*),"
						   " pg_catalog.count(*) FILTER (WHERE " ALIAS_SUB ".__migrate_f),"
						   " pg_catalog.to_jsonb((pg_catalog.array_agg(" ALIAS_SUB ".__migrate_k ORDER BY ");
	foreach(lc, k->names)
		appendStringInfo(&buf, "%s" ALIAS_SUB ".%s", foreach_current_index(lc) > 0 ? ", " : "",
						 (char *) lfirst(lc));
	appendStringInfoString(&buf, ") FILTER (WHERE " ALIAS_SUB ".__migrate_f))[1:$3]) FROM (SELECT ");
	/* the table keeps its own name, so that the check can qualify columns with it */
	foreach(lc, k->names)
		appendStringInfo(&buf, "%s, ", (char *) lfirst(lc));
	append_key_json(&buf, k, "");
	pred = migrate_failing_predicate(m);
	appendStringInfo(&buf, " AS __migrate_k, %s AS __migrate_f FROM %s%s WHERE ",
					 pred ? pred : "true", only, m->relation);
	append_range(&buf, k, "", range);
	appendStringInfoString(&buf, ") " ALIAS_SUB);
	return buf.data;
}

/*
 * append_row_fn_change
 *		The change of a row_fn migration: each row in the range, locked,
 *		gets the function's result in the columns it may write, unless the
 *		result is NULL or would change nothing.
 */
static void
append_row_fn_change(StringInfo buf, const Migration *m, Oid relid, KeySql *k,
					 KeyRange range, const char *only)
{
	char	   *fn = row_fn_name(m);
	List	   *cols = row_fn_target_columns(m, relid);
	ListCell   *lc;

	if (cols == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("table %s has no column a row function could change", m->relation),
				 errdetail("A row function's result is written to the columns outside the key that are not generated.")));

	appendStringInfo(buf, "UPDATE %s%s AS " ALIAS_TARGET " SET (", only, m->relation);
	append_columns(buf, cols, "");
	appendStringInfoString(buf, ") = ROW(");
	append_columns(buf, cols, "(" ALIAS_SUB ".__migrate_r).");
	appendStringInfoString(buf, ") FROM (SELECT ");
	foreach(lc, k->names)
		appendStringInfo(buf, ALIAS_INNER ".%s, ", (char *) lfirst(lc));
	if (m->keep_before)
	{
		append_image(buf, cols, ALIAS_INNER ".");
		appendStringInfoString(buf, " AS __migrate_b, ");
	}
	appendStringInfo(buf, "%s(" ALIAS_INNER ") AS __migrate_r FROM %s%s AS " ALIAS_INNER " WHERE ",
					 fn, only, m->relation);
	append_range(buf, k, ALIAS_INNER ".", range);
	append_where(buf, m);
	/* lock the rows so that the function sees their latest version */
	appendStringInfoString(buf, " FOR UPDATE OF " ALIAS_INNER ") " ALIAS_SUB " WHERE ");
	foreach(lc, k->names)
		appendStringInfo(buf, ALIAS_TARGET ".%s %s " ALIAS_SUB ".%s AND ",
						 (char *) lfirst(lc), k->eq, (char *) lfirst(lc));
	/* the range again, so that the target is read through the key's index */
	append_range(buf, k, ALIAS_TARGET ".", range);
	appendStringInfoString(buf, " AND ");
	/* skip NULL results and rows whose written columns would not change */
	appendStringInfoString(buf,
						   "pg_catalog.num_nulls(" ALIAS_SUB ".__migrate_r) OPERATOR(pg_catalog.=) 0"
						   " AND NOT pg_catalog.record_image_eq(ROW(");
	append_columns(buf, cols, "(" ALIAS_SUB ".__migrate_r).");
	appendStringInfoString(buf, "), ROW(");
	append_columns(buf, cols, ALIAS_TARGET ".");
	appendStringInfoString(buf, "))");
	if (m->keep_before)
	{
		appendStringInfoString(buf, " RETURNING ");
		append_key_json(buf, k, ALIAS_TARGET ".");
		appendStringInfoString(buf, ", " ALIAS_SUB ".__migrate_b, ");
		append_image(buf, cols, ALIAS_TARGET ".");
	}
}

/*
 * append_delete_change
 *		The change of a delete migration: the rows in the range that match
 *		the where_clause go, with their whole-row images if kept.
 */
static void
append_delete_change(StringInfo buf, const Migration *m, Oid relid, KeySql *k,
					 KeyRange range, const char *only)
{
	appendStringInfo(buf, "DELETE FROM %s%s WHERE ", only, m->relation);
	append_range(buf, k, "", range);
	append_where(buf, m);
	if (m->keep_before)
	{
		appendStringInfoString(buf, " RETURNING ");
		append_key_json(buf, k, "");
		appendStringInfoString(buf, ", ");
		append_image(buf, stored_columns(relid),
					 psprintf("%s.", quote_identifier(get_rel_name(relid))));
		appendStringInfoString(buf, ", NULL::pg_catalog.jsonb");
	}
}

/*
 * append_set_change
 *		The change of a set_clause migration.  Without before-images, a
 *		plain UPDATE of the range.  With them, the rows are read and locked
 *		in a subquery that takes their images, and the UPDATE returns the
 *		key and both images of each row it changes.
 */
static void
append_set_change(StringInfo buf, const Migration *m, Oid relid, KeySql *k,
				  KeyRange range, const char *only)
{
	char	   *prefix;
	List	   *cols;
	ListCell   *lc;

	if (!m->keep_before)
	{
		appendStringInfo(buf, "UPDATE %s%s SET\n%s\nWHERE ", only,
						 m->relation, m->set_clause);
		append_range(buf, k, "", range);
		append_where(buf, m);
		return;
	}

	/*
	 * The target keeps no alias, so that the user's fragments can name it as
	 * they would in a plain UPDATE; the subquery's columns have names no user
	 * column has.
	 */
	prefix = psprintf("%s.", quote_identifier(get_rel_name(relid)));
	cols = set_clause_columns(m->set_clause);
	appendStringInfo(buf, "UPDATE %s%s SET\n%s\nFROM (SELECT ", only,
					 m->relation, m->set_clause);
	foreach(lc, k->names)
		appendStringInfo(buf, "%s%s AS __migrate_k%d, ",
						 prefix, (char *) lfirst(lc), foreach_current_index(lc));
	append_image(buf, cols, prefix);

	/*
	 * The subquery reads the table under its own name too, so that the
	 * where_clause means the same inside it: only the rows the change selects
	 * are locked.  The outer copy of the where_clause rechecks a row a
	 * concurrent update changed.
	 */
	appendStringInfo(buf, " AS __migrate_b FROM %s%s WHERE ", only, m->relation);
	append_range(buf, k, prefix, range);
	append_where(buf, m);
	appendStringInfoString(buf, " FOR UPDATE) " ALIAS_SUB " WHERE ");
	foreach(lc, k->names)
		appendStringInfo(buf, "%s%s %s " ALIAS_SUB ".__migrate_k%d AND ",
						 prefix, (char *) lfirst(lc), k->eq,
						 foreach_current_index(lc));
	/* the range again, so that the target is read through the key's index */
	append_range(buf, k, prefix, range);
	append_where(buf, m);
	appendStringInfoString(buf, " RETURNING ");
	append_key_json(buf, k, prefix);
	appendStringInfoString(buf, ", " ALIAS_SUB ".__migrate_b, ");
	append_image(buf, cols, prefix);
}

/*
 * build_change_sql
 *		The statement that applies m's change to the rows of "range".
 *
 * With keep_before it also captures, in the same statement, the key,
 * the before-image and the after-image of every row it changes, and
 * returns them aggregated into one row (count, keys, befores, afters).
 * The before-image comes from a FOR UPDATE subquery: the row is locked
 * before it is read, so a concurrent update is either seen or waited for,
 * never lost from the image.
 */
static char *
build_change_sql(const Migration *m, Oid relid, KeySql *k, KeyRange range)
{
	const char *only = get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ";
	StringInfoData change;

	initStringInfo(&change);
	if (m->keep_before)
		appendStringInfoString(&change, "WITH __migrate_c (k, b, a) AS (");
	if (m->row_fn)
		append_row_fn_change(&change, m, relid, k, range, only);
	else if (strcmp(m->action, MIGRATE_ACTION_DELETE) == 0)
		append_delete_change(&change, m, relid, k, range, only);
	else
		append_set_change(&change, m, relid, k, range, only);
	if (m->keep_before)
		appendStringInfoString(&change,
							   ") SELECT pg_catalog.count(*), pg_catalog.array_agg(k),"
							   " pg_catalog.array_agg(b), pg_catalog.array_agg(a)"
							   " FROM __migrate_c");
	return change.data;
}

/*
 * migrate_build_batch_sql
 *		Build the statements of a batch of m on relid.
 *
 * "range" says whether the batch starts after a cursor ($1), at the first
 * key, or is the one row with key $2.  The change and keys statements take
 * the cursor as $1 and the batch's last key as $2; the bound statements
 * take the cursor as $1, the batch size as $2 and, when m walks one range
 * of its keys (ranges.c), the range's last key as $3.
 */
BatchSql *
migrate_build_batch_sql(const Migration *m, Oid relid, KeyRange range)
{
	BatchSql   *b = palloc0(sizeof(BatchSql));
	KeySql	   *k = key_sql(m, relid);
	const char *only = get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ";
	bool		has_lower = range == KEYS_AFTER;
	StringInfoData buf;
	StringInfoData before;
	ListCell   *lc;
	bool		is_delete = strcmp(m->action, MIGRATE_ACTION_DELETE) == 0;
	char	   *change_plain;

	/* last key of the next batch_size rows, and how many rows there are */
	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT ");
	append_key_json(&buf, k, ALIAS_SUB ".");
	appendStringInfoString(&buf, ", pg_catalog.count(*) OVER () FROM (");
	append_keys_after_cursor(&buf, k, only, m->relation, has_lower, m->upper != NULL);
	appendStringInfoString(&buf, " LIMIT $2) " ALIAS_SUB " ORDER BY ");
	foreach(lc, k->names)
		appendStringInfo(&buf, "%s" ALIAS_SUB ".%s DESC",
						 foreach_current_index(lc) > 0 ? ", " : "",
						 (char *) lfirst(lc));
	appendStringInfoString(&buf, " LIMIT 1");
	b->bound = buf.data;

	/*
	 * The common case, a full batch, needs only the batch_size-th key after
	 * the cursor: an index (only) scan that stops there, with nothing
	 * collected on the way.
	 */
	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT ");
	append_key_json(&buf, k, ALIAS_SUB ".");
	appendStringInfoString(&buf, " FROM (");
	append_keys_after_cursor(&buf, k, only, m->relation, has_lower, m->upper != NULL);
	appendStringInfoString(&buf, " OFFSET $2 OPERATOR(pg_catalog.-) 1 LIMIT 1) " ALIAS_SUB);
	b->bound_nth = buf.data;

	/* the change itself */
	b->change = build_change_sql(m, relid, k, range);

	/* the keys of the range, for splitting a batch that failed */
	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT pg_catalog.array_agg(");
	append_key_json(&buf, k, ALIAS_INNER ".");
	appendStringInfoString(&buf, " ORDER BY ");
	append_key(&buf, k, ALIAS_INNER ".");
	appendStringInfo(&buf, ") FROM %s%s AS " ALIAS_INNER " WHERE ", only, m->relation);
	append_range(&buf, k, ALIAS_INNER ".", range);
	b->keys = buf.data;

	/* dry run: the change (without images) with its before and after images */
	{
		Migration	plain = *m;

		plain.keep_before = false;
		change_plain = build_change_sql(&plain, relid, k, range);
	}
	initStringInfo(&before);
	appendStringInfoString(&before, "WITH __migrate_before AS MATERIALIZED (SELECT ");
	append_key_json(&before, k, ALIAS_INNER ".");
	appendStringInfo(&before, " AS key, pg_catalog.to_jsonb(" ALIAS_INNER ") AS img FROM %s%s AS " ALIAS_INNER " WHERE ",
					 only, m->relation);
	append_range(&before, k, ALIAS_INNER ".", range);
	appendStringInfo(&before, "), __migrate_after AS (%s RETURNING ", change_plain);
	if (m->row_fn)
	{
		append_key_json(&before, k, ALIAS_TARGET ".");
		appendStringInfoString(&before, " AS key, pg_catalog.to_jsonb(" ALIAS_TARGET ") AS img");
	}
	else
	{
		const char *relname = quote_identifier(get_rel_name(relid));

		append_key_json(&before, k, "");
		if (is_delete)
			appendStringInfoString(&before, " AS key, NULL::pg_catalog.jsonb AS img");
		else
			appendStringInfo(&before, " AS key, pg_catalog.to_jsonb(%s.*) AS img", relname);
	}
	appendStringInfoString(&before,
						   ") SELECT a.key, b.img, a.img FROM __migrate_after a"
						   " LEFT JOIN __migrate_before b ON b.key OPERATOR(pg_catalog.=) a.key"
						   " ORDER BY a.key LIMIT $3");
	b->dry_run = before.data;
	return b;
}

/*
 * append_sample_from
 *		The FROM and WHERE of a key sample: the pages of "relation" that
 *		TABLESAMPLE SYSTEM ($2) picks, with has_lower the keys after $1.
 */
static void
append_sample_from(StringInfo buf, KeySql *k, const char *only,
				   const char *relation, bool has_lower)
{
	appendStringInfo(buf, " FROM %s%s AS " ALIAS_INNER
					 " TABLESAMPLE SYSTEM ($2) REPEATABLE (0)", only, relation);
	if (has_lower)
	{
		appendStringInfoString(buf, " WHERE ");
		append_key(buf, k, ALIAS_INNER ".");
		appendStringInfo(buf, " %s ", k->gt);
		append_bound(buf, k, 1);
	}
}

/*
 * migrate_build_sample_sql
 *		The statement that samples the keys of m on relid after the cursor
 *		($1, with has_lower), in key order, as jsonb: the first key of each
 *		page of a TABLESAMPLE SYSTEM of $2 percent of the pages, with a
 *		fixed seed, so that planning the same ranges twice gives the same
 *		bounds.  One key per page: the rows of a page lie close together in
 *		key order when the table was filled in key order, so more of them
 *		would tell little more.  An owner that may not read ctid and
 *		tableoid (column privileges only) gets every key of those pages.
 *		Run as the owner.
 */
char *
migrate_build_sample_sql(const Migration *m, Oid relid, bool has_lower)
{
	KeySql	   *k = key_sql(m, relid);
	const char *only = get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ";
	const char *page = "(" ALIAS_INNER ".ctid::pg_catalog.text::pg_catalog.point)[0]";
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);

	/*
	 * An owner with column privileges only (on the key and what the change
	 * touches) may not read ctid and tableoid: then every key of the pages
	 * sampled, which plans as well, with more rows to sort
	 */
	if (pg_class_aclcheck(relid, m->owner, ACL_SELECT) != ACLCHECK_OK &&
		(pg_attribute_aclcheck(relid, SelfItemPointerAttributeNumber, m->owner,
							   ACL_SELECT) != ACLCHECK_OK ||
		 pg_attribute_aclcheck(relid, TableOidAttributeNumber, m->owner,
							   ACL_SELECT) != ACLCHECK_OK))
	{
		appendStringInfoString(&buf, "SELECT ");
		append_key_json(&buf, k, ALIAS_INNER ".");
		append_sample_from(&buf, k, only, m->relation, has_lower);
		appendStringInfoString(&buf, " ORDER BY ");
		append_key(&buf, k, ALIAS_INNER ".");
		return buf.data;
	}
	appendStringInfoString(&buf, "SELECT ");
	append_key_json(&buf, k, ALIAS_SUB ".");
	appendStringInfo(&buf, " FROM (SELECT DISTINCT ON (" ALIAS_INNER ".tableoid, %s) ", page);
	foreach(lc, k->names)
		appendStringInfo(&buf, "%s" ALIAS_INNER ".%s", foreach_current_index(lc) > 0 ? ", " : "",
						 (char *) lfirst(lc));
	append_sample_from(&buf, k, only, m->relation, has_lower);
	appendStringInfo(&buf, " ORDER BY " ALIAS_INNER ".tableoid, %s, ", page);
	append_key(&buf, k, ALIAS_INNER ".");
	appendStringInfoString(&buf, ") " ALIAS_SUB " ORDER BY ");
	append_key(&buf, k, ALIAS_SUB ".");
	return buf.data;
}

/*
 * migrate_build_revert_sql
 *		The statement that restores the before-images handed to it as $1, a
 *		jsonb array of {"i": undo id, "k": key, "b": before, "a": after},
 *		and returns the undo ids it restored as a bigint[].
 *
 * An update is undone only where the row still holds what the migration
 * wrote (its after-image, compared as stored bytes); a delete is undone by
 * inserting the row again unless its key is taken.  Everything else is
 * left alone for the caller to report.
 */
char *
migrate_build_revert_sql(const Migration *m, Oid relid)
{
	KeySql	   *k = key_sql(m, relid);
	const char *only = get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ";
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	if (strcmp(m->action, MIGRATE_ACTION_DELETE) == 0)
	{
		List	   *cols = stored_columns(relid);

		appendStringInfo(&buf,
						 "WITH __migrate_u AS MATERIALIZED (SELECT"
						 " (__migrate_e OPERATOR(pg_catalog.->>) 'i')::pg_catalog.int8 AS __migrate_id,"
						 " __migrate_e OPERATOR(pg_catalog.->) 'k' AS __migrate_k,"
						 " __migrate_e OPERATOR(pg_catalog.->) 'b' AS __migrate_b"
						 " FROM pg_catalog.jsonb_array_elements($1) AS __migrate_e),"
						 " __migrate_d AS (INSERT INTO %s AS " ALIAS_TARGET " (",
						 m->relation);
		foreach(lc, cols)
			appendStringInfo(&buf, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
							 quote_identifier(lfirst(lc)));
		appendStringInfoString(&buf, ") OVERRIDING SYSTEM VALUE SELECT ");
		foreach(lc, cols)
		{
			if (foreach_current_index(lc) > 0)
				appendStringInfoString(&buf, ", ");
			append_from_image(&buf, relid, lfirst(lc), "__migrate_u.__migrate_b");
		}
		appendStringInfoString(&buf, " FROM __migrate_u ON CONFLICT DO NOTHING RETURNING ");
		foreach(lc, k->names)
			appendStringInfo(&buf, "%s" ALIAS_TARGET ".%s", foreach_current_index(lc) > 0 ? ", " : "",
							 (char *) lfirst(lc));

		/*
		 * Which images went back in: match the inserted keys with the stored
		 * ones as typed values (as jsonb, a timestamptz key would depend on
		 * the TimeZone it was printed in).
		 */
		appendStringInfoString(&buf, ") SELECT pg_catalog.array_agg(__migrate_u.__migrate_id)"
							   " FROM __migrate_u JOIN __migrate_d ON ");
		append_key(&buf, k, "__migrate_d.");
		appendStringInfo(&buf, " %s ", k->eq);
		append_key_from(&buf, k, "__migrate_u.__migrate_k");
	}
	else
	{
		List	   *cols = written_columns(m, relid);

		appendStringInfo(&buf, "WITH __migrate_d AS (UPDATE %s%s AS " ALIAS_TARGET " SET ",
						 only, m->relation);
		foreach(lc, cols)
		{
			appendStringInfo(&buf, "%s%s = ", foreach_current_index(lc) > 0 ? ", " : "",
							 quote_identifier(lfirst(lc)));
			append_from_image(&buf, relid, lfirst(lc), "__migrate_u.__migrate_b");
		}
		appendStringInfoString(&buf,
							   " FROM (SELECT"
							   " (__migrate_e OPERATOR(pg_catalog.->>) 'i')::pg_catalog.int8 AS __migrate_id,"
							   " __migrate_e OPERATOR(pg_catalog.->) 'k' AS __migrate_k,"
							   " __migrate_e OPERATOR(pg_catalog.->) 'b' AS __migrate_b,"
							   " __migrate_e OPERATOR(pg_catalog.->) 'a' AS __migrate_a"
							   " FROM pg_catalog.jsonb_array_elements($1) AS __migrate_e) __migrate_u WHERE ");
		append_key(&buf, k, ALIAS_TARGET ".");
		appendStringInfo(&buf, " %s ", k->eq);
		append_key_from(&buf, k, "__migrate_u.__migrate_k");
		/*
		 * Only where the row still holds what the migration wrote: compared
		 * as text, both sides printed here (the after-image read back
		 * through the type first), so that settings such as TimeZone that
		 * differed when the image was taken do not matter.
		 */
		foreach(lc, cols)
		{
			StringInfoData now;
			StringInfoData then;

			initStringInfo(&now);
			appendStringInfo(&now, "(" ALIAS_TARGET ".%s)::pg_catalog.text",
							 quote_identifier(lfirst(lc)));
			initStringInfo(&then);
			appendStringInfoChar(&then, '(');
			append_from_image(&then, relid, lfirst(lc), "__migrate_u.__migrate_a");
			appendStringInfoString(&then, ")::pg_catalog.text");
			/* equal, or both NULL */
			appendStringInfo(&buf, " AND COALESCE(%s OPERATOR(pg_catalog.=) %s, %s IS NULL AND %s IS NULL)",
							 now.data, then.data, now.data, then.data);
		}
		appendStringInfoString(&buf, " RETURNING __migrate_u.__migrate_id)"
							   " SELECT pg_catalog.array_agg(__migrate_id) FROM __migrate_d");
	}
	return buf.data;
}
