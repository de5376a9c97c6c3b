/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  Building, checking and running the batches of a migration.
 *
 * A batch is a key range.  The first statement of a batch finds the last
 * key of the next batch_size rows after the cursor through the key's index
 * (a keyset walk: its cost does not depend on how far the cursor is); the
 * second applies the change to exactly the rows in (cursor, last key].  The
 * caller commits the change together with the new cursor, so every row is
 * changed once whatever stops the worker.
 *
 * The user's SQL fragments are checked with the raw parser before they are
 * put into a statement, so that a fragment cannot end the statement early,
 * add a statement or turn the key range off.  Everything the user wrote
 * runs as the migration's owner with the migration's search_path; our own
 * parts of each statement are fully qualified.
 *
 * All functions here expect a transaction with SPI connected.
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

/* Aliases our statements use; unlikely to collide with user names */
#define ALIAS_TARGET	"__migrate_t"
#define ALIAS_INNER		"__migrate_i"
#define ALIAS_SUB		"__migrate_s"

/* How often a failing range may turn out empty before the error stands */
#define MAX_EMPTY_SPLITS	3

static List *parse_pinned(const char *sql, char **message);

/* The SQL pieces that describe a migration's key */
typedef struct KeySql
{
	List	   *names;			/* quoted column names */
	List	   *json_keys;		/* column names as SQL string literals */
	List	   *types;			/* qualified type names */
	char	   *gt;				/* OPERATOR(ns.>) */
	char	   *le;				/* OPERATOR(ns.<=) */
	char	   *eq;				/* OPERATOR(ns.=) */
} KeySql;

/* Which rows a statement's $1 and $2 select */
typedef enum KeyRange
{
	RANGE_FIRST,				/* key <= $2: the first batch */
	RANGE_AFTER,				/* key > $1 AND key <= $2 */
	RANGE_EXACT					/* key = $2: one row */
} KeyRange;

/* The statements of one batch */
typedef struct BatchSql
{
	char	   *bound_nth;		/* finds the batch_size-th key after the cursor */
	char	   *bound;			/* finds the last key and row count of a
								 * shorter, final batch */
	char	   *change;			/* applies the change to the key range; with
								 * keep_before, returns the count and the
								 * arrays of keys, before- and after-images */
	char	   *keys;			/* the keys in the range, as a jsonb[] */
	char	   *dry_run;		/* change plus before/after images */
} BatchSql;

/*
 * key_type_supported
 *		Can a key column of this type be kept in the jsonb cursor and read
 *		back exactly?  Scalars can; arrays, composites, ranges and JSON
 *		values come back in a form their input function does not take.
 */
static bool
key_type_supported(Oid typid)
{
	Oid			base = getBaseType(typid);
	char		typtype = get_typtype(base);

	return (typtype == TYPTYPE_BASE || typtype == TYPTYPE_ENUM) &&
		!OidIsValid(get_element_type(base)) &&
		base != JSONOID && base != JSONBOID;
}

/*
 * migrate_find_key_columns
 *		Return the names of the columns of relid's batching key.
 *
 * The key is the primary key, else the unique, valid, non-partial index
 * without expressions whose columns are all NOT NULL, not generated, of a
 * type the cursor can hold (key_type_supported) and use their type's
 * default btree operator class, preferring fewer columns.  Returns NIL if
 * there is none.  The caller holds a lock on the relation.
 */
List *
migrate_find_key_columns(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	Oid			pk = rel->rd_pkindex;
	ListCell   *lc;
	Oid			best = InvalidOid;
	int			best_natts = INT_MAX;
	List	   *result = NIL;

	foreach(lc, indexes)
	{
		Oid			indexoid = lfirst_oid(lc);
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
		Form_pg_index idx;
		bool		usable;
		bool		isnull;
		Datum		d;
		oidvector  *indclass;

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for index %u", indexoid);
		idx = (Form_pg_index) GETSTRUCT(tup);
		usable = idx->indisunique && idx->indisvalid &&
			heap_attisnull(tup, Anum_pg_index_indexprs, NULL) &&
			heap_attisnull(tup, Anum_pg_index_indpred, NULL);
		d = SysCacheGetAttr(INDEXRELID, tup, Anum_pg_index_indclass, &isnull);
		indclass = (oidvector *) DatumGetPointer(d);
		for (int i = 0; usable && i < idx->indnkeyatts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel),
												  idx->indkey.values[i] - 1);

			if (idx->indkey.values[i] <= 0 || !att->attnotnull ||
				att->attgenerated || !key_type_supported(att->atttypid) ||
				indclass->values[i] != GetDefaultOpClass(att->atttypid, BTREE_AM_OID))
				usable = false;
		}
		if (usable && (indexoid == pk ||
					   (!(OidIsValid(best) && best == pk) &&
						(idx->indnkeyatts < best_natts ||
						 (idx->indnkeyatts == best_natts && indexoid < best)))))
		{
			best = indexoid;
			best_natts = idx->indnkeyatts;
			list_free_deep(result);
			result = NIL;
			for (int i = 0; i < idx->indnkeyatts; i++)
				result = lappend(result,
								 pstrdup(NameStr(TupleDescAttr(RelationGetDescr(rel),
															   idx->indkey.values[i] - 1)->attname)));
		}
		ReleaseSysCache(tup);
	}
	table_close(rel, AccessShareLock);
	return result;
}

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
	if (range == RANGE_AFTER)
	{
		append_key(buf, k, prefix);
		appendStringInfo(buf, " %s ", k->gt);
		append_bound(buf, k, 1);
		appendStringInfoString(buf, " AND ");
	}
	append_key(buf, k, prefix);
	appendStringInfo(buf, " %s ", range == RANGE_EXACT ? k->eq : k->le);
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
 * Append "SELECT <key> FROM [ONLY] relation [WHERE key > $1] ORDER BY <key>":
 * the keys after the cursor, in key order, through the key's index.
 */
static void
append_keys_after_cursor(StringInfo buf, KeySql *k, const char *only,
						 const char *relation, bool has_lower)
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
	List	   *stmts = parse_pinned(psprintf("UPDATE __migrate_x SET\n%s\n", set_clause),
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
	const char *relname = quote_identifier(get_rel_name(relid));
	bool		is_delete = strcmp(m->action, MIGRATE_ACTION_DELETE) == 0;
	bool		keep = m->keep_before;
	char	   *where = m->where_clause;
	List	   *cols = NIL;
	StringInfoData change;
	ListCell   *lc;

	initStringInfo(&change);
	if (keep)
		appendStringInfoString(&change, "WITH __migrate_c (k, b, a) AS (");
	if (m->row_fn)
	{
		char	   *fn = row_fn_name(m);

		cols = row_fn_target_columns(m, relid);
		if (cols == NIL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("table %s has no column a row function could change", m->relation),
					 errdetail("A row function's result is written to the columns outside the key that are not generated.")));

		appendStringInfo(&change, "UPDATE %s%s AS " ALIAS_TARGET " SET (", only, m->relation);
		foreach(lc, cols)
			appendStringInfo(&change, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
							 quote_identifier(lfirst(lc)));
		appendStringInfoString(&change, ") = ROW(");
		foreach(lc, cols)
			appendStringInfo(&change, "%s(" ALIAS_SUB ".__migrate_r).%s",
							 foreach_current_index(lc) > 0 ? ", " : "",
							 quote_identifier(lfirst(lc)));
		appendStringInfoString(&change, ") FROM (SELECT ");
		foreach(lc, k->names)
			appendStringInfo(&change, ALIAS_INNER ".%s, ", (char *) lfirst(lc));
		if (keep)
		{
			append_image(&change, cols, ALIAS_INNER ".");
			appendStringInfoString(&change, " AS __migrate_b, ");
		}
		appendStringInfo(&change, "%s(" ALIAS_INNER ") AS __migrate_r FROM %s%s AS " ALIAS_INNER " WHERE ",
						 fn, only, m->relation);
		append_range(&change, k, ALIAS_INNER ".", range);
		if (where)
			appendStringInfo(&change, " AND (\n%s\n)", where);
		/* lock the rows so that the function sees their latest version */
		appendStringInfoString(&change, " FOR UPDATE OF " ALIAS_INNER ") " ALIAS_SUB " WHERE ");
		foreach(lc, k->names)
			appendStringInfo(&change, ALIAS_TARGET ".%s %s " ALIAS_SUB ".%s AND ",
							 (char *) lfirst(lc), k->eq, (char *) lfirst(lc));
		/* the range again, so that the target is read through the key's index */
		append_range(&change, k, ALIAS_TARGET ".", range);
		appendStringInfoString(&change, " AND ");
		/* skip NULL results and rows whose written columns would not change */
		appendStringInfoString(&change,
							   "pg_catalog.num_nulls(" ALIAS_SUB ".__migrate_r) OPERATOR(pg_catalog.=) 0"
							   " AND NOT pg_catalog.record_image_eq(ROW(");
		foreach(lc, cols)
			appendStringInfo(&change, "%s(" ALIAS_SUB ".__migrate_r).%s",
							 foreach_current_index(lc) > 0 ? ", " : "",
							 quote_identifier(lfirst(lc)));
		appendStringInfoString(&change, "), ROW(");
		foreach(lc, cols)
			appendStringInfo(&change, "%s" ALIAS_TARGET ".%s",
							 foreach_current_index(lc) > 0 ? ", " : "",
							 quote_identifier(lfirst(lc)));
		appendStringInfoString(&change, "))");
		if (keep)
		{
			appendStringInfoString(&change, " RETURNING ");
			append_key_json(&change, k, ALIAS_TARGET ".");
			appendStringInfoString(&change, ", " ALIAS_SUB ".__migrate_b, ");
			append_image(&change, cols, ALIAS_TARGET ".");
		}
	}
	else if (is_delete)
	{
		appendStringInfo(&change, "DELETE FROM %s%s WHERE ", only, m->relation);
		append_range(&change, k, "", range);
		if (where)
			appendStringInfo(&change, " AND (\n%s\n)", where);
		if (keep)
		{
			appendStringInfoString(&change, " RETURNING ");
			append_key_json(&change, k, "");
			appendStringInfoString(&change, ", ");
			append_image(&change, stored_columns(relid), psprintf("%s.", relname));
			appendStringInfoString(&change, ", NULL::pg_catalog.jsonb");
		}
	}
	else if (!keep)
	{
		appendStringInfo(&change, "UPDATE %s%s SET\n%s\nWHERE ", only,
						 m->relation, m->set_clause);
		append_range(&change, k, "", range);
		if (where)
			appendStringInfo(&change, " AND (\n%s\n)", where);
	}
	else
	{
		/*
		 * The target keeps no alias, so that the user's fragments can name
		 * it as they would in a plain UPDATE; the subquery's columns have
		 * names no user column has.
		 */
		char	   *prefix = psprintf("%s.", relname);

		cols = set_clause_columns(m->set_clause);
		appendStringInfo(&change, "UPDATE %s%s SET\n%s\nFROM (SELECT ", only,
						 m->relation, m->set_clause);
		foreach(lc, k->names)
			appendStringInfo(&change, "%s%s AS __migrate_k%d, ",
							 prefix, (char *) lfirst(lc), foreach_current_index(lc));
		append_image(&change, cols, prefix);

		/*
		 * The subquery reads the table under its own name too, so that the
		 * where_clause means the same inside it: only the rows the change
		 * selects are locked.  The outer copy of the where_clause rechecks a
		 * row a concurrent update changed.
		 */
		appendStringInfo(&change, " AS __migrate_b FROM %s%s WHERE ", only, m->relation);
		append_range(&change, k, prefix, range);
		if (where)
			appendStringInfo(&change, " AND (\n%s\n)", where);
		appendStringInfoString(&change, " FOR UPDATE) " ALIAS_SUB " WHERE ");
		foreach(lc, k->names)
			appendStringInfo(&change, "%s%s %s " ALIAS_SUB ".__migrate_k%d AND ",
							 prefix, (char *) lfirst(lc), k->eq,
							 foreach_current_index(lc));
		/* the range again, so that the target is read through the key's index */
		append_range(&change, k, prefix, range);
		if (where)
			appendStringInfo(&change, " AND (\n%s\n)", where);
		appendStringInfoString(&change, " RETURNING ");
		append_key_json(&change, k, prefix);
		appendStringInfoString(&change, ", " ALIAS_SUB ".__migrate_b, ");
		append_image(&change, cols, prefix);
	}
	if (keep)
		appendStringInfoString(&change,
							   ") SELECT pg_catalog.count(*), pg_catalog.array_agg(k),"
							   " pg_catalog.array_agg(b), pg_catalog.array_agg(a)"
							   " FROM __migrate_c");
	return change.data;
}

/*
 * build_batch_sql
 *		Build the statements of a batch of m on relid.
 *
 * "range" says whether the batch starts after a cursor ($1), at the first
 * key, or is the one row with key $2.  The change and keys statements take
 * the cursor as $1 and the batch's last key as $2; the bound statements
 * take the cursor as $1 and the batch size as $2.
 */
static BatchSql *
build_batch_sql(const Migration *m, Oid relid, KeyRange range)
{
	BatchSql   *b = palloc0(sizeof(BatchSql));
	KeySql	   *k = key_sql(m, relid);
	const char *only = get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ";
	bool		has_lower = range == RANGE_AFTER;
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
	append_keys_after_cursor(&buf, k, only, m->relation, has_lower);
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
	append_keys_after_cursor(&buf, k, only, m->relation, has_lower);
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
 * build_revert_sql
 *		The statement that restores the before-images handed to it as $1, a
 *		jsonb array of {"i": undo id, "k": key, "b": before, "a": after},
 *		and returns the undo ids it restored as a bigint[].
 *
 * An update is undone only where the row still holds what the migration
 * wrote (its after-image, compared as stored bytes); a delete is undone by
 * inserting the row again unless its key is taken.  Everything else is
 * left alone for the caller to report.
 */
static char *
build_revert_sql(const Migration *m, Oid relid)
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

/*
 * migrate_resolve_relation
 *		Return the OID of the migration's table, or error out if it is gone.
 */
Oid
migrate_resolve_relation(const Migration *m, bool missing_ok)
{
#if PG_VERSION_NUM >= 160000
	List	   *names = stringToQualifiedNameList(m->relation, NULL);
#else
	List	   *names = stringToQualifiedNameList(m->relation);
#endif
	Oid			relid = RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, true);

	if (!OidIsValid(relid) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table %s of migration \"%s\" does not exist", m->relation, m->name),
				 errdetail("The table was dropped or renamed after the migration was registered.")));
	return relid;
}

/*
 * parse_pinned
 *		raw_parser() with standard_conforming_strings on, the setting every
 *		statement built from the user's text runs with.  Returns NIL and sets
 *		*message on a syntax error.
 */
static List *
parse_pinned(const char *sql, char **message)
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
	stmts = parse_pinned(sql, &message);
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
	List	   *stmts = parse_pinned(sql, &message);
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
 * migrate_estimate_rows
 *		Estimate the rows of relid (summed over its partitions) the way the
 *		planner does, also for a table that was never analyzed.
 */
int64
migrate_estimate_rows(Oid relid)
{
	List	   *rels = find_all_inheritors(relid, AccessShareLock, NULL);
	ListCell   *lc;
	double		total = 0;

	foreach(lc, rels)
	{
		Relation	rel = table_open(lfirst_oid(lc), NoLock);

		if (RELKIND_HAS_STORAGE(rel->rd_rel->relkind))
		{
			BlockNumber pages;
			double		tuples;
			double		allvisfrac;

			estimate_rel_size(rel, NULL, &pages, &tuples, &allvisfrac);
			total += tuples;
		}
		table_close(rel, NoLock);
		if (get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
			break;				/* plain inheritance children are not migrated */
	}
	return (int64) total;
}

/* Set a GUC for the rest of the current GUC nest level. */
static void
set_guc(const char *name, const char *value)
{
	(void) set_config_option(name, value, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/* Set lock_timeout for the rest of this GUC nest level. */
static void
set_lock_timeout(int64 ms)
{
	char		buf[32];

	snprintf(buf, sizeof(buf), INT64_FORMAT, ms);
	set_guc("lock_timeout", buf);
}



/*
 * run_user_sql
 *		Run one of the batch's statements as the migration's owner.
 */
static int
run_user_sql(const Migration *m, const char *sql, int nargs, Oid *types,
			 Datum *values, const char *nulls)
{
	RoleSwitch	rs;
	int			ret;

	migrate_become_migration_owner(&rs, m);
	ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
	migrate_restore_role(&rs);
	if (ret < 0)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	return ret;
}

/*
 * run_batch_sql
 *		Like run_user_sql, for the statements every batch runs: prepared
 *		once per process (as the owner, with the owner's search_path).
 */
static int
run_batch_sql(const Migration *m, const char *sql, int nargs, Oid *types,
			  Datum *values, const char *nulls)
{
	RoleSwitch	rs;
	int			ret;

	migrate_become_migration_owner(&rs, m);
	ret = migrate_execute_cached(sql, nargs, types, values, nulls, true);
	migrate_restore_role(&rs);
	if (ret < 0)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	return ret;
}

/*
 * fire_deferred_as_owner
 *		Fire the batch's deferred triggers and constraint checks now, inside
 *		the batch, so that their errors belong to the batch (and to its
 *		row-error splitting) rather than to COMMIT.
 *
 * Where the transaction does not commit as the owner, the change ran as a
 * security-restricted operation and PostgreSQL has already refused any
 * deferred event; there this finds nothing to fire.
 */
static void
fire_deferred_as_owner(const Migration *m)
{
	RoleSwitch	rs;

	migrate_become_migration_owner(&rs, m);
	if (SPI_execute("SET CONSTRAINTS ALL IMMEDIATE", false, 0) < 0)
		elog(ERROR, "SET CONSTRAINTS ALL IMMEDIATE failed");
	migrate_restore_role(&rs);
}

/*
 * pin_key_formats
 *		For the rest of the current GUC nest level, print values in formats
 *		their input functions read back exactly, whatever the session,
 *		role or database settings: keys go through jsonb as text.
 */
static void
pin_key_formats(void)
{
	set_guc("extra_float_digits", "3");
	set_guc("DateStyle", "ISO, YMD");
	set_guc("IntervalStyle", "postgres");
	set_guc("bytea_output", "hex");
}

/*
 * find_batch_bound
 *		Find the last key of the next batch; false if no rows are left.
 */
static bool
find_batch_bound(const Migration *m, BatchSql *b, int32 batch_size,
				 Datum *bound, int64 *rows)
{
	Oid			types[2] = {JSONBOID, INT4OID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		isnull;
	int			nestlevel;

	values[0] = m->cursor ? JsonbPGetDatum(m->cursor) : (Datum) 0;
	nulls[0] = m->cursor ? ' ' : 'n';
	values[1] = Int32GetDatum(batch_size);

	/*
	 * The cursor is the key in jsonb, read back with its type's input
	 * function: pin the output formats so that every value round-trips.
	 */
	nestlevel = NewGUCNestLevel();
	pin_key_formats();
	run_batch_sql(m, b->bound_nth, 2, types, values, nulls);
	if (SPI_processed == 1)
	{
		/* a full batch */
		*rows = batch_size;
	}
	else
	{
		/* fewer rows than batch_size are left: the last key and their count */
		run_batch_sql(m, b->bound, 2, types, values, nulls);
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
 * pin_image_formats
 *		Before-images are values in jsonb, read back by their types' input
 *		functions: make sure floats and intervals are printed in a form that
 *		reads back exactly (the server defaults), for the rest of the
 *		current GUC nest level.
 */
static void
pin_image_formats(void)
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
	run_batch_sql(m, sql, 2, types, values, nulls);
	if (!m->keep_before)
		changed = SPI_processed;
	else
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		changed = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		if (changed > 0)
		{
			Oid			t2[4] = {TEXTOID, JSONBARRAYOID, JSONBARRAYOID, JSONBARRAYOID};
			Datum		v2[4];
			char		n2[4] = {' ', ' ', ' ', ' '};

			v2[0] = CStringGetTextDatum(m->name);
			for (int i = 1; i < 4; i++)
				v2[i] = SPI_getbinval(tup, desc, i + 1, &isnull);
			migrate_catalog_exec("INSERT INTO migrate.undo (migration, key, before, after)"
								 " SELECT $1, u.k, u.b, u.a"
								 " FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3),"
								 " pg_catalog.unnest($4)) AS u (k, b, a)",
								 4, t2, v2, n2, SPI_OK_INSERT);
		}
	}
	fire_deferred_as_owner(m);
	return changed;
}

/*
 * migrate_error_is_row_error
 *		Is this the kind of error a single row's data causes (a data
 *		exception, a constraint violation, an error raised by a trigger or
 *		function), rather than one that every row would hit (permissions,
 *		missing objects, lock timeouts, cancels)?  Only such errors are
 *		quarantined with on_error => 'skip'.
 */
bool
migrate_error_is_row_error(const ErrorData *edata)
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
 * try_row_work
 *		Run work(arg) in a subtransaction.  Returns NULL on success; on a
 *		row error (migrate_error_is_row_error), rolls the subtransaction
 *		back and returns the error, copied into the caller's memory
 *		context; any other error is re-thrown.
 */
static ErrorData *
try_row_work(void (*work) (void *arg), void *arg)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		work(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		if (!migrate_error_is_row_error(edata))
		{
			FreeErrorData(edata);
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcxt);
			CurrentResourceOwner = oldowner;
			PG_RE_THROW();
		}
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
	return edata;
}

/* apply_change's arguments and result, for try_row_work */
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
 *		apply_change in a subtransaction (see try_row_work).  Sets
 *		*changed on success.
 */
static ErrorData *
try_change(Migration *m, const char *sql, Jsonb *lower, Jsonb *upper,
		   int64 *changed)
{
	ChangeWork	w = {m, sql, lower, upper, 0};
	ErrorData  *edata = try_row_work(change_work, &w);

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
	pin_key_formats();
	run_batch_sql(m, sql, 2, types, values, nulls);
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
 * adds the rows recorded to *quarantined.
 */
static int64
change_or_split(Migration *m, BatchSql *first, BatchSql *after,
				Jsonb *lower, Jsonb *upper, int depth, int64 *quarantined)
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
			(*quarantined)++;
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
		return change_or_split(m, first, after, lower, keys[half - 1], depth + 1, quarantined) +
			change_or_split(m, first, after, keys[half - 1], upper, depth + 1, quarantined);
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
	BatchSql   *b = build_batch_sql(m, relid, m->cursor ? RANGE_AFTER : RANGE_FIRST);
	int			nestlevel = NewGUCNestLevel();
	Datum		bound;
	int64		rows;

	int64		wal_before = pgWalUsage.wal_bytes;

	memset(res, 0, sizeof(*res));
	set_lock_timeout(m->lock_timeout_ms);
	if (m->keep_before)
		pin_image_formats();
	if (!find_batch_bound(m, b, batch_size, &bound, &rows))
		res->done = true;
	else
	{
		res->new_cursor = DatumGetJsonbPCopy(bound);
		res->visited = rows;
		if (!m->skip_errors)
			res->changed = apply_change(m, b->change, m->cursor, res->new_cursor);
		else
		{
			BatchSql   *first = m->cursor ? build_batch_sql(m, relid, RANGE_FIRST) : b;
			BatchSql   *after = m->cursor ? b : build_batch_sql(m, relid, RANGE_AFTER);

			res->changed = change_or_split(m, first, after, m->cursor,
										   res->new_cursor, 0, &res->quarantined);
		}
	}
	res->wal_bytes = pgWalUsage.wal_bytes - wal_before;
	/* still under lock_timeout: never wait unbounded with the rows locked */
	migrate_catalog_record_batch(m, res);
	AtEOXact_GUC(true, nestlevel);
}

/* The revert statement's arguments and result, for try_row_work */
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

	run_batch_sql(w->m, w->sql, 1, types, values, NULL);
	w->restored = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &w->none);
	fire_deferred_as_owner(w->m);
}

/*
 * try_revert
 *		Run the revert statement on the images, with the deferred triggers
 *		it queues, in a subtransaction (see try_row_work).  On success sets
 *		*restored to the undo ids it restored (NULL if *none).
 */
static ErrorData *
try_revert(Migration *m, const char *sql, Datum images, Datum *restored, bool *none)
{
	RevertWork	w = {m, sql, images, (Datum) 0, true};
	ErrorData  *edata = try_row_work(revert_work, &w);

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
	Oid			types[3] = {TEXTOID, INT8OID, INT4OID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	bool		isnull;
	Datum		images;
	int64		lowest = 0;

	memset(res, 0, sizeof(*res));
	set_lock_timeout(m->lock_timeout_ms);
	pin_image_formats();
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
	images = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		res->done = true;
	else
	{
		Oid			t1[1] = {JSONBOID};
		Datum		v1[1];
		Datum		restored;
		bool		none_restored;
		Datum		failed = (Datum) 0;
		bool		none_failed = true;
		ErrorData  *edata;
		char	   *revert_sql = build_revert_sql(m, relid);

		lowest = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		res->visited = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
		v1[0] = images;
		edata = try_revert(m, revert_sql, images, &restored, &none_restored);
		if (edata)
		{
			/* one row at a time, so that a row that cannot be restored stops only itself */
			List	   *ok_ids = NIL;
			List	   *bad_ids = NIL;
			uint64		n;
			Datum	   *singles;
			int64	   *ids;
			Datum	   *keys;

			FreeErrorData(edata);
			if (SPI_execute_with_args("SELECT pg_catalog.jsonb_build_array(e),"
									  " (e OPERATOR(pg_catalog.->>) 'i')::pg_catalog.int8,"
									  " e OPERATOR(pg_catalog.->) 'k'"
									  " FROM pg_catalog.jsonb_array_elements($1) e",
									  1, t1, v1, NULL, true, 0) != SPI_OK_SELECT)
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
			restored = int8_list_array(ok_ids, &none_restored);
			failed = int8_list_array(bad_ids, &none_failed);
			res->quarantined = list_length(bad_ids);
		}

		{
			Oid			t2[6] = {TEXTOID, INT8OID, INT8ARRAYOID, BOOLOID, INT8OID, INT8ARRAYOID};
			Datum		v2[6];
			char		n2[6] = {' ', ' ', ' ', ' ', ' ', ' '};

			v2[0] = CStringGetTextDatum(m->name);
			v2[1] = Int64GetDatum(m->revert_cursor);
			n2[1] = m->has_revert_cursor ? ' ' : 'n';
			v2[2] = none_restored ? (Datum) 0 : restored;
			n2[2] = none_restored ? 'n' : ' ';
			v2[3] = BoolGetDatum(m->keep_undo);
			v2[4] = Int64GetDatum(lowest);
			v2[5] = none_failed ? (Datum) 0 : failed;
			n2[5] = none_failed ? 'n' : ' ';

			/* report what could not be restored; forget what was, unless kept */
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
								 6, t2, v2, n2, SPI_OK_INSERT);
			res->quarantined += SPI_processed;
			res->changed = res->visited - res->quarantined;
		}
	}
	res->wal_bytes = pgWalUsage.wal_bytes - wal_before;
	migrate_catalog_record_revert(m, res, lowest);
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
		migrate_run_task(m, res);
		return;
	}
	{
		/* the batch's own lock_timeout also bounds the wait for its lock */
		int			nestlevel = NewGUCNestLevel();

		set_lock_timeout(m->lock_timeout_ms);
		migrate_check_key_types(m, migrate_resolve_relation(m, false));
		AtEOXact_GUC(true, nestlevel);
	}
	if (m->reverting)
		migrate_revert_batch(m, batch_size, res);
	else
		migrate_run_batch(m, batch_size, res);
}

/*
 * migrate_retry_rows
 *		Apply m's change again to each row it quarantined, one row per
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
	BatchSql   *b = build_batch_sql(m, relid, RANGE_EXACT);
	int			nestlevel = NewGUCNestLevel();
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(m->name)};
	int64	   *ids;
	Jsonb	  **keys;
	uint64		n;
	int64		changed = 0;

	*retried = *fixed = *failing = 0;
	set_lock_timeout(m->lock_timeout_ms);
	if (m->keep_before)
		pin_image_formats();
	migrate_catalog_exec("SELECT id, key FROM migrate.errors"
						 " WHERE migration OPERATOR(pg_catalog.=) $1"
						 " AND phase OPERATOR(pg_catalog.=) 'change' ORDER BY id",
						 1, types, values, NULL, SPI_OK_SELECT);
	n = SPI_processed;
	ids = palloc(sizeof(int64) * (n + 1));
	keys = palloc(sizeof(Jsonb *) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		keys[i] = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
	for (uint64 i = 0; i < n; i++)
	{
		int64		rows = 0;
		ErrorData  *edata;
		Oid			t2[4] = {INT8OID, TEXTOID, TEXTOID, BOOLOID};
		Datum		v2[4];
		char		n2[4] = {' ', ' ', ' ', ' '};

		CHECK_FOR_INTERRUPTS();
		edata = try_change(m, b->change, NULL, keys[i], &rows);
		(*retried)++;
		changed += rows;
		v2[0] = Int64GetDatum(ids[i]);
		v2[1] = edata ? CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode)) : (Datum) 0;
		n2[1] = edata ? ' ' : 'n';
		v2[2] = edata ? CStringGetTextDatum(edata->message) : (Datum) 0;
		n2[2] = edata ? ' ' : 'n';
		v2[3] = BoolGetDatum(edata == NULL);
		if (edata)
			(*failing)++;
		else
			(*fixed)++;
		migrate_catalog_exec("WITH gone AS (DELETE FROM migrate.errors"
							 "  WHERE $4 AND id OPERATOR(pg_catalog.=) $1)"
							 " UPDATE migrate.errors SET sqlstate = $2, message = $3,"
							 "  at = pg_catalog.clock_timestamp()"
							 " WHERE NOT $4 AND id OPERATOR(pg_catalog.=) $1",
							 4, t2, v2, n2, 0);
	}
	if (changed > 0)
	{
		Oid			t3[2] = {INT8OID, INT8OID};
		Datum		v3[2] = {Int64GetDatum(m->id), Int64GetDatum(changed)};

		migrate_catalog_exec("UPDATE migrate.migrations SET changed = changed OPERATOR(pg_catalog.+) $2"
							 " WHERE id OPERATOR(pg_catalog.=) $1",
							 2, t3, v3, NULL, SPI_OK_UPDATE);
	}
	AtEOXact_GUC(true, nestlevel);
}

/*
 * migrate_run_task
 *		Run a one-off task's SQL once, as its owner, in the current
 *		transaction, and record it as done.
 */
void
migrate_run_task(Migration *m, BatchResult *res)
{
	int			nestlevel = NewGUCNestLevel();

	uint64		changed;
	int64		wal_before = pgWalUsage.wal_bytes;

	memset(res, 0, sizeof(*res));
	set_lock_timeout(m->lock_timeout_ms);
	run_user_sql(m, m->sql, 0, NULL, NULL, NULL);
	changed = SPI_processed;
	fire_deferred_as_owner(m);
	res->wal_bytes = pgWalUsage.wal_bytes - wal_before;
	res->done = true;
	res->visited = 1;
	res->changed = changed;
	migrate_catalog_record_batch(m, res);
	AtEOXact_GUC(true, nestlevel);
}

/*
 * migrate_explain_check
 *		Plan m's statements without running them, as m's owner.
 *
 * This resolves every name in the user's fragments and checks the owner's
 * privileges on everything they reference (sub-selects included), so that
 * mistakes surface at registration and not in the worker.  A task is planned only if it is a single plannable statement.
 */
void
migrate_explain_check(Migration *m)
{
	Oid			types[2] = {JSONBOID, JSONBOID};
	Datum		values[2] = {0, 0};
	char		nulls[2] = {'n', 'n'};

	if (m->relation == NULL)
	{
		char	   *message;
		List	   *stmts = parse_pinned(m->sql, &message);
		Node	   *stmt = ((RawStmt *) linitial(stmts))->stmt;

		if (list_length(stmts) == 1 &&
			(IsA(stmt, SelectStmt) || IsA(stmt, InsertStmt) ||
			 IsA(stmt, UpdateStmt) || IsA(stmt, DeleteStmt)))
		{
			run_user_sql(m, psprintf("EXPLAIN (COSTS OFF) %s", m->sql),
						 0, NULL, NULL, NULL);
			migrate_check_statement_privileges(m, m->sql, 0, NULL);
		}
	}
	else
	{
		BatchSql   *b = build_batch_sql(m, migrate_resolve_relation(m, false), RANGE_AFTER);

		run_user_sql(m, psprintf("EXPLAIN (COSTS OFF) %s", b->change),
					 2, types, values, nulls);
		migrate_check_statement_privileges(m, b->change, 2, types);
	}
}

/*
 * migrate_explain_batch
 *		EXPLAIN the statements of m's next batch of batch_size rows, as the
 *		owner, handing each plan line to cb.
 *
 * Finds the batch's last key with the (read-only) bound statement, then
 * plans both statements with the real cursor and bound, as a batch would.
 */
void
migrate_explain_batch(Migration *m, int32 batch_size,
					  void (*cb) (void *arg, const char *line), void *arg)
{
	Oid			relid;
	BatchSql   *b;
	Datum		bound = (Datum) 0;
	int64		rows;
	bool		found;
	Oid			types[2];
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	const char *stmts[2];

	if (m->relation == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("migration \"%s\" is a one-off task and has no batches", m->name)));
	relid = migrate_resolve_relation(m, false);
	b = build_batch_sql(m, relid, m->cursor ? RANGE_AFTER : RANGE_FIRST);
	found = find_batch_bound(m, b, batch_size, &bound, &rows);
	if (found)
		bound = PointerGetDatum(DatumGetJsonbPCopy(bound));

	stmts[0] = b->bound_nth;
	stmts[1] = b->change;
	for (int i = 0; i < 2; i++)
	{
		types[0] = JSONBOID;
		values[0] = m->cursor ? JsonbPGetDatum(m->cursor) : (Datum) 0;
		nulls[0] = m->cursor ? ' ' : 'n';
		if (i == 0)
		{
			types[1] = INT4OID;
			values[1] = Int32GetDatum(batch_size);
			nulls[1] = ' ';
		}
		else
		{
			types[1] = JSONBOID;
			values[1] = bound;
			nulls[1] = found ? ' ' : 'n';
		}
		run_user_sql(m, psprintf("EXPLAIN (COSTS OFF) %s", stmts[i]), 2, types, values, nulls);
		for (uint64 r = 0; r < SPI_processed; r++)
			cb(arg, SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1));
	}
}

/*
 * migrate_dry_run_batch
 *		Run the next batch of m in a subtransaction, hand each changed row
 *		to cb, and roll the subtransaction back.
 *
 * Nothing the batch did survives, the cursor included.  Values handed to
 * cb live in the caller's memory context.
 */
void
migrate_dry_run_batch(Migration *m, int32 batch_size, int32 max_rows,
					  DryRunRowCallback cb, void *arg)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		int			nestlevel = NewGUCNestLevel();

		set_lock_timeout(m->lock_timeout_ms);
		if (m->relation == NULL)
		{
			StringInfoData buf;

			run_user_sql(m, m->sql, 0, NULL, NULL, NULL);
			initStringInfo(&buf);
			appendStringInfo(&buf, "{\"rows\": " UINT64_FORMAT "}", SPI_processed);
			MemoryContextSwitchTo(oldcxt);
			cb(arg, (Datum) 0, true, (Datum) 0, true,
			   DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)), false);
		}
		else
		{
			Oid			relid = migrate_resolve_relation(m, false);
			BatchSql   *b = build_batch_sql(m, relid, m->cursor ? RANGE_AFTER : RANGE_FIRST);
			Datum		bound;
			int64		rows;

			if (find_batch_bound(m, b, batch_size, &bound, &rows))
			{
				Oid			types[3] = {JSONBOID, JSONBOID, INT4OID};
				Datum		values[3];
				char		nulls[3] = {' ', ' ', ' '};

				values[0] = m->cursor ? JsonbPGetDatum(m->cursor) : (Datum) 0;
				nulls[0] = m->cursor ? ' ' : 'n';
				values[1] = bound;
				values[2] = Int32GetDatum(max_rows);
				run_user_sql(m, b->dry_run, 3, types, values, nulls);
				for (uint64 i = 0; i < SPI_processed; i++)
				{
					HeapTuple	tup = SPI_tuptable->vals[i];
					TupleDesc	desc = SPI_tuptable->tupdesc;
					bool		n1,
								n2,
								n3;
					Datum		d1 = SPI_getbinval(tup, desc, 1, &n1);
					Datum		d2 = SPI_getbinval(tup, desc, 2, &n2);
					Datum		d3 = SPI_getbinval(tup, desc, 3, &n3);

					MemoryContextSwitchTo(oldcxt);
					cb(arg, n1 ? 0 : PointerGetDatum(DatumGetJsonbPCopy(d1)), n1,
					   n2 ? 0 : PointerGetDatum(DatumGetJsonbPCopy(d2)), n2,
					   n3 ? 0 : PointerGetDatum(DatumGetJsonbPCopy(d3)), n3);
				}
			}
		}
		AtEOXact_GUC(true, nestlevel);
	}
	PG_CATCH();
	{
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		PG_RE_THROW();
	}
	PG_END_TRY();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
}
