/*-------------------------------------------------------------------------
 *
 * keys.c
 *	  The table a migration changes and its key: finding the key columns
 *	  and their types, checking them before each batch, the table by its
 *	  name at run time, and a row estimate.
 *
 * A migration walks its table in the order of a key: the primary key, or
 * a unique index whose columns are NOT NULL and of a type the jsonb cursor
 * can hold and read back exactly.  The cursor is compared with the key by
 * its type's btree operators, so if a key column's type or collation
 * changes under a running migration (ALTER TABLE ... ALTER COLUMN ... TYPE)
 * the same cursor would compare differently and rows would be changed
 * twice or never: the key's signature is recorded when the migration is
 * registered (key_types), and a batch that finds another one fails the
 * migration before it changes anything.
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
#include "catalog/pg_collation.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_namespace.h"
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
#include "storage/lmgr.h"
#include "nodes/parsenodes.h"
#include "optimizer/plancat.h"
#include "parser/parser.h"
#include "tcop/cmdtag.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/regproc.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "keys.h"

/* The ICU locale of a collation: colliculocale before 17, colllocale since */
#if PG_VERSION_NUM >= 170000
#define COLLATION_LOCALE_ATTNUM Anum_pg_collation_colllocale
#else
#define COLLATION_LOCALE_ATTNUM Anum_pg_collation_colliculocale
#endif
#include "batch.h"
#include "catalog.h"

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

/*
 * migrate_relation_rangevar
 *		The RangeVar of a table name as the catalog stores it (quoted and
 *		qualified), for looking the table up by name at run time.
 */
RangeVar *
migrate_relation_rangevar(const char *relation)
{
#if PG_VERSION_NUM >= 160000
	return makeRangeVarFromNameList(stringToQualifiedNameList(relation, NULL));
#else
	return makeRangeVarFromNameList(stringToQualifiedNameList(relation));
#endif
}

/*
 * migrate_resolve_relation
 *		Return the OID of the migration's table, or error out if it is gone.
 */
Oid
migrate_resolve_relation(const Migration *m, bool missing_ok)
{
	Oid			expected = OidIsValid(m->range_relid) ? m->range_relid : m->relid;
	Oid			relid;
	int			nestlevel = NewGUCNestLevel();

	/*
	 * Locked for the rest of the transaction (under the migration's
	 * lock_timeout), so that the name means this table until the batch's
	 * statements have run: renaming or dropping it waits for us.
	 */
	migrate_set_lock_timeout(m->lock_timeout_ms);
	relid = RangeVarGetRelid(migrate_relation_rangevar(m->relation), AccessShareLock, true);
	AtEOXact_GUC(true, nestlevel);
	if (!OidIsValid(relid) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table %s of migration \"%s\" does not exist", m->relation, m->name),
				 errdetail("The table was dropped or renamed after the migration was registered.")));
	if (OidIsValid(relid) && OidIsValid(expected) && relid != expected)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s of migration \"%s\" is not the table it was registered on",
						m->relation, m->name),
				 errdetail("The table was renamed or dropped, and another took its name."),
				 errhint("Register the migration again with replace => true, naming the table it is to change.")));
	return relid;
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

/* The namespace of type typid. */
static Oid
type_namespace(Oid typid)
{
	HeapTuple	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	Oid			nsp;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", typid);
	nsp = ((Form_pg_type) GETSTRUCT(tup))->typnamespace;
	ReleaseSysCache(tup);
	return nsp;
}

/*
 * key_column_signature_pre04
 *		The signature 0.3 recorded: "type" or "type COLLATE collation", the
 *		collation only when it is not the type's own.  Still read, to take
 *		over a migration registered before 0.4 (migrate_check_key_types).
 */
static char *
key_column_signature_pre04(Oid relid, const char *name)
{
	HeapTuple	tup = SearchSysCacheAttName(relid, name);
	Form_pg_attribute att;
	char	   *result;

	if (!HeapTupleIsValid(tup))
		return NULL;
	att = (Form_pg_attribute) GETSTRUCT(tup);
	result = format_type_extended(att->atttypid, att->atttypmod,
								  FORMAT_TYPE_TYPEMOD_GIVEN |
								  (type_namespace(att->atttypid) == PG_CATALOG_NAMESPACE ?
								   0 : FORMAT_TYPE_FORCE_QUALIFY));
	if (OidIsValid(att->attcollation) &&
		att->attcollation != get_typcollation(att->atttypid))
	{
		HeapTuple	ctup = SearchSysCache1(COLLOID, ObjectIdGetDatum(att->attcollation));
		Form_pg_collation coll;

		if (!HeapTupleIsValid(ctup))
			elog(ERROR, "cache lookup failed for collation %u", att->attcollation);
		coll = (Form_pg_collation) GETSTRUCT(ctup);
		result = psprintf("%s COLLATE %s", result,
						  quote_qualified_identifier(get_namespace_name(coll->collnamespace),
													 NameStr(coll->collname)));
		ReleaseSysCache(ctup);
	}
	ReleaseSysCache(tup);
	return result;
}

/* Deepest nesting of domains, arrays, ranges and row types in a key guarded */
#define KEY_SIGNATURE_MAX_DEPTH 8

static void append_type_order(StringInfo s, Oid typid, int32 typmod, int depth);

/*
 * append_collation
 *		" COLLATE name" of collation collid; a collation outside pg_catalog
 *		(which one may drop and create again with another locale) with its
 *		provider and locale too.
 */
static void
append_collation(StringInfo s, Oid collid)
{
	HeapTuple	ctup = SearchSysCache1(COLLOID, ObjectIdGetDatum(collid));
	Form_pg_collation coll;

	if (!HeapTupleIsValid(ctup))
		elog(ERROR, "cache lookup failed for collation %u", collid);
	coll = (Form_pg_collation) GETSTRUCT(ctup);
	appendStringInfo(s, " COLLATE %s",
					 quote_qualified_identifier(get_namespace_name(coll->collnamespace),
												NameStr(coll->collname)));
	if (coll->collnamespace != PG_CATALOG_NAMESPACE)
	{
		bool		isnull;
		Datum		d;

		appendStringInfo(s, " (provider %c, deterministic %s", coll->collprovider,
						 coll->collisdeterministic ? "yes" : "no");
		d = SysCacheGetAttr(COLLOID, ctup, Anum_pg_collation_collcollate, &isnull);
		if (!isnull)
			appendStringInfo(s, ", collate %s", quote_literal_cstr(TextDatumGetCString(d)));
		d = SysCacheGetAttr(COLLOID, ctup, Anum_pg_collation_collctype, &isnull);
		if (!isnull)
			appendStringInfo(s, ", ctype %s", quote_literal_cstr(TextDatumGetCString(d)));
		d = SysCacheGetAttr(COLLOID, ctup, COLLATION_LOCALE_ATTNUM, &isnull);
		if (!isnull)
			appendStringInfo(s, ", locale %s", quote_literal_cstr(TextDatumGetCString(d)));
		appendStringInfoChar(s, ')');
	}
	ReleaseSysCache(ctup);
}

/* Sort pg_enum rows by enumsortorder */
static int
enum_order_cmp(const void *a, const void *b)
{
	float4		x = (*(Form_pg_enum const *) a)->enumsortorder;
	float4		y = (*(Form_pg_enum const *) b)->enumsortorder;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* " ('label', ...)": the labels of enum typid, in their sort order */
static void
append_enum_labels(StringInfo s, Oid typid)
{
	CatCList   *list = SearchSysCacheList1(ENUMTYPOIDNAME, ObjectIdGetDatum(typid));
	Form_pg_enum *rows = palloc(sizeof(Form_pg_enum) * Max(list->n_members, 1));

	for (int i = 0; i < list->n_members; i++)
		rows[i] = (Form_pg_enum) GETSTRUCT(&list->members[i]->tuple);
	qsort(rows, list->n_members, sizeof(Form_pg_enum), enum_order_cmp);
	appendStringInfoString(s, " (");
	for (int i = 0; i < list->n_members; i++)
		appendStringInfo(s, "%s%s", i > 0 ? ", " : "",
						 quote_literal_cstr(NameStr(rows[i]->enumlabel)));
	appendStringInfoChar(s, ')');
	ReleaseSysCacheList(list);
}

/*
 * append_type_order
 *		Append to s what decides how values of typid sort and how the
 *		cursor reads them back: its name, and for a domain what it is over,
 *		for an enum its labels in order, for an array, a range or a row type
 *		the types (and collations) of what they hold.  Errors out for a
 *		type that cannot be guarded.
 */
static void
append_type_order(StringInfo s, Oid typid, int32 typmod, int depth)
{
	HeapTuple	tup;
	Form_pg_type typ;
	char		typtype;
	Oid			basetype;
	int32		basetypmod;
	Oid			elem;
	Oid			typrelid;

	if (depth > KEY_SIGNATURE_MAX_DEPTH)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a key column of type %s cannot be guarded", format_type_be(typid)),
				 errdetail("Its domains, arrays, ranges or row types are nested more than %d deep.",
						   KEY_SIGNATURE_MAX_DEPTH)));
	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", typid);
	typ = (Form_pg_type) GETSTRUCT(tup);
	typtype = typ->typtype;
	basetype = typ->typbasetype;
	basetypmod = typ->typtypmod;
	elem = IsTrueArrayType(typ) ? typ->typelem : InvalidOid;
	typrelid = typ->typrelid;
	ReleaseSysCache(tup);

	/* the same text whatever the search_path: types outside pg_catalog are qualified */
	appendStringInfoString(s, format_type_extended(typid, typmod,
												   FORMAT_TYPE_TYPEMOD_GIVEN |
												   (type_namespace(typid) == PG_CATALOG_NAMESPACE ?
													0 : FORMAT_TYPE_FORCE_QUALIFY)));
	switch (typtype)
	{
		case TYPTYPE_DOMAIN:
			appendStringInfoString(s, " over ");
			append_type_order(s, basetype, basetypmod, depth + 1);
			break;
		case TYPTYPE_ENUM:
			append_enum_labels(s, typid);
			break;
		case TYPTYPE_RANGE:
			appendStringInfoString(s, " of ");
			append_type_order(s, get_range_subtype(typid), -1, depth + 1);
			if (OidIsValid(get_range_collation(typid)))
				append_collation(s, get_range_collation(typid));
			break;
		case TYPTYPE_MULTIRANGE:
			appendStringInfoString(s, " of ");
			append_type_order(s, get_multirange_range(typid), -1, depth + 1);
			break;
		case TYPTYPE_COMPOSITE:
			{
				TupleDesc	desc = lookup_rowtype_tupdesc_copy(typid, -1);
				bool		first = true;

				(void) typrelid;
				appendStringInfoString(s, " (");
				for (int i = 0; i < desc->natts; i++)
				{
					Form_pg_attribute att = TupleDescAttr(desc, i);

					if (att->attisdropped)
						continue;
					appendStringInfoString(s, first ? "" : ", ");
					first = false;
					append_type_order(s, att->atttypid, att->atttypmod, depth + 1);
					if (OidIsValid(att->attcollation))
						append_collation(s, att->attcollation);
				}
				appendStringInfoChar(s, ')');
			}
			break;
		case TYPTYPE_BASE:
			if (OidIsValid(elem))
			{
				appendStringInfoString(s, " of ");
				append_type_order(s, elem, -1, depth + 1);
			}
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("a key column of type %s cannot be guarded", format_type_be(typid)),
					 errdetail("Only base types, enums, domains, arrays, ranges and row types of them can be keys of a migration.")));
	}
}

/*
 * key_column_signature
 *		What decides the order of column "name" of relid, as the cursor
 *		walks it: its type as append_type_order spells it, then always its
 *		collation, if it has one.  NULL if there is no such column.
 *
 * Compared by text, so that a dump and restore (new OIDs) keeps it, yet a
 * domain dropped and made again with another collation, an enum value
 * renamed or added, or a collation made again with another locale, all
 * show.  What a type's default operator class does is not looked at: only
 * the type's owner or a superuser can change it.
 */
static char *
key_column_signature(Oid relid, const char *name)
{
	HeapTuple	tup = SearchSysCacheAttName(relid, name);
	Form_pg_attribute att;
	Oid			typid;
	int32		typmod;
	Oid			collid;
	StringInfoData s;

	if (!HeapTupleIsValid(tup))
		return NULL;
	att = (Form_pg_attribute) GETSTRUCT(tup);
	typid = att->atttypid;
	typmod = att->atttypmod;
	collid = att->attcollation;
	ReleaseSysCache(tup);

	initStringInfo(&s);
	append_type_order(&s, typid, typmod, 0);
	if (OidIsValid(collid))
		append_collation(&s, collid);
	return s.data;
}

/*
 * migrate_key_types
 *		The signatures of relid's columns key_columns, in key order, for the
 *		catalog's key_types.  The caller holds a lock on relid.
 */
List *
migrate_key_types(Oid relid, List *key_columns)
{
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, key_columns)
	{
		char	   *sig = key_column_signature(relid, lfirst(lc));

		if (sig == NULL)
			elog(ERROR, "key column \"%s\" of relation %u not found",
				 (char *) lfirst(lc), relid);
		result = lappend(result, sig);
	}
	return result;
}

/*
 * migrate_check_key_types
 *		Before a batch of m: lock its table as the batch will, then error
 *		out unless every key column still has the type and collation
 *		recorded at registration.
 *
 * Taking the batch's lock first, by name and rechecking the name (as
 * RangeVarGetRelidExtended does), means no ALTER TABLE or DROP can commit
 * between this check and the batch.  A migration registered before 0.3
 * records its key types here, at its first batch after the update.
 */
void
migrate_check_key_types(const Migration *m)
{
	ListCell   *col;
	ListCell   *was;
	Oid			relid;

	/* lock the table by name, as the batch will: a concurrent DROP or rename is seen */
	relid = RangeVarGetRelidExtended(migrate_relation_rangevar(m->relation),
									 RowExclusiveLock, RVR_MISSING_OK, NULL, NULL);
	if (!OidIsValid(relid))
		(void) migrate_resolve_relation(m, false);	/* says it is gone */
	if (m->key_types == NIL)
	{
		/* registered before 0.3: what the key is now is what it stays */
		if (m->catalog_v3)
			migrate_catalog_set_key_types(m, migrate_key_types(relid, m->key_columns));
		return;
	}
	/*
	 * Registered before 0.4, with the signatures of 0.3: taken over as they
	 * are now if those still match (they cannot match one of 0.4, which
	 * names more for every type where they differ)
	 */
	{
		bool		pre04 = false;
		bool		same = true;

		forboth(col, m->key_columns, was, m->key_types)
		{
			char	   *now = key_column_signature(relid, lfirst(col));
			char	   *old = key_column_signature_pre04(relid, lfirst(col));

			if (now == NULL || strcmp(now, lfirst(was)) != 0)
			{
				same = false;
				if (old != NULL && strcmp(old, lfirst(was)) == 0)
					pre04 = true;
				else
				{
					pre04 = false;
					break;
				}
			}
		}
		if (same)
			return;
		if (pre04)
		{
			migrate_catalog_update_key_types(m, migrate_key_types(relid, m->key_columns));
			return;
		}
	}
	forboth(col, m->key_columns, was, m->key_types)
	{
		char	   *now = key_column_signature(relid, lfirst(col));

		if (now == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("key column \"%s\" of migration \"%s\" no longer exists",
							(char *) lfirst(col), m->name),
					 errhint("Register the migration again with replace => true.")));
		if (strcmp(now, lfirst(was)) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("key column \"%s\" of migration \"%s\" changed type from %s to %s",
							(char *) lfirst(col), m->name, (char *) lfirst(was), now),
					 errdetail("The migration's cursor orders keys as %s; walking on could change rows twice or never. Nothing was changed by this batch.",
							   (char *) lfirst(was)),
					 errhint("Change the column back, or register the migration again with replace => true and start it with restart => true.")));
	}
}
