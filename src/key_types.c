/*-------------------------------------------------------------------------
 *
 * key_types.c
 *	  The types and collations of a migration's key columns: recorded at
 *	  registration, checked before every batch.
 *
 * A migration's cursor is the last key it handled, kept in jsonb and
 * compared with the key columns by their type's btree operators.  If a key
 * column's type or collation changes under a running migration (ALTER
 * TABLE ... ALTER COLUMN ... TYPE), the same cursor compares differently:
 * rows would be changed twice or never.  So the key's signature is recorded
 * when the migration is registered, and a batch that finds another one
 * fails the migration before it changes anything.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "migrate.h"

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
 * key_column_signature
 *		"type" or "type COLLATE collation" of column "name" of relid, or NULL
 *		if there is no such column.
 */
static char *
key_column_signature(Oid relid, const char *name)
{
	HeapTuple	tup = SearchSysCacheAttName(relid, name);
	Form_pg_attribute att;
	char	   *result;

	if (!HeapTupleIsValid(tup))
		return NULL;
	att = (Form_pg_attribute) GETSTRUCT(tup);
	/*
	 * The same text whatever the search_path: types outside pg_catalog are
	 * qualified.  A collation is named only if it is not the type's own.
	 */
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
 *		Before a batch of m on relid: lock relid as the batch will, then
 *		error out unless every key column still has the type and collation
 *		recorded at registration.
 *
 * Taking the batch's lock first means no ALTER TABLE can commit between
 * this check and the batch.  A migration registered before 0.3 recorded
 * nothing and is not checked.
 */
void
migrate_check_key_types(const Migration *m, Oid relid)
{
	ListCell   *col;
	ListCell   *was;

	LockRelationOid(relid, RowExclusiveLock);
	if (m->key_types == NIL)
	{
		/* registered before 0.3: what the key is now is what it stays */
		if (m->catalog_v3)
			migrate_catalog_set_key_types(m, migrate_key_types(relid, m->key_columns));
		return;
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
