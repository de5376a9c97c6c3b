/*-------------------------------------------------------------------------
 *
 * horizon.c
 *	  What keeps VACUUM from removing the row versions a migration
 *	  replaced: the runner counts the versions each batch left dead, with
 *	  the transaction id after it, and before it vacuums asks how many of
 *	  them the oldest snapshot, replication slot or prepared transaction
 *	  still lets others see.  A vacuum that could remove nothing is not
 *	  run; migrate_horizon_holder says who holds the horizon back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/transam.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/pg_list.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/rel.h"

#include "horizon.h"
#include "catalog.h"

/* The dead versions of one batch */
typedef struct DeadBatch
{
	TransactionId xid_after;	/* the next transaction id when it ended */
	int64		rows;
} DeadBatch;

/*
 * migrate_dead_versions_add
 *		A batch that is about to commit replaced "rows" row versions.  Call
 *		it inside the batch's transaction (after its transaction id was
 *		assigned), so that the next transaction id follows the batch's.
 */
void
migrate_dead_versions_add(DeadVersions *dv, int64 rows)
{
	MemoryContext old;
	DeadBatch  *b;

	if (rows <= 0)
		return;
	old = MemoryContextSwitchTo(dv->cxt);
	b = palloc(sizeof(DeadBatch));
	b->xid_after = XidFromFullTransactionId(ReadNextFullTransactionId());
	b->rows = rows;
	dv->batches = lappend(dv->batches, b);
	dv->rows += rows;
	MemoryContextSwitchTo(old);
}

/*
 * migrate_dead_versions_removable
 *		How many of the counted dead versions a VACUUM of relid started
 *		after the caller's transaction commits could remove: those of the
 *		batches that ended before the oldest transaction id anyone (a
 *		snapshot, a slot, a prepared transaction, a standby's feedback) may
 *		still need.
 *
 * The last batch counted is the caller's own, about to commit in the
 * caller's transaction, whose snapshot holds the horizon back from it: its
 * versions count when all those before it do.  Needs a transaction; takes
 * AccessShareLock on relid (0 if it is gone).
 */
int64
migrate_dead_versions_removable(const DeadVersions *dv, Oid relid)
{
	Relation	rel = try_table_open(relid, AccessShareLock);
	TransactionId horizon;
	ListCell   *lc;
	int64		removable = 0;

	if (rel == NULL)
		return 0;
	horizon = GetOldestNonRemovableTransactionId(rel);
	table_close(rel, AccessShareLock);
	foreach(lc, dv->batches)
	{
		DeadBatch  *b = lfirst(lc);

		if (lnext(dv->batches, lc) != NULL &&
			!TransactionIdPrecedesOrEquals(b->xid_after, horizon))
			break;
		removable += b->rows;
	}
	return removable;
}

/*
 * migrate_dead_versions_reset
 *		A vacuum ran (or the versions were found not worth one): count
 *		afresh.
 */
void
migrate_dead_versions_reset(DeadVersions *dv)
{
	list_free_deep(dv->batches);
	dv->batches = NIL;
	dv->rows = 0;
}

/*
 * migrate_horizon_holder
 *		Who holds the xmin horizon of this database back the longest: a
 *		session (its pid and application; and, if it is one of viewer's
 *		roles, its state and for how long its transaction has been open), a
 *		standby's feedback, a replication slot or a prepared transaction.
 *		NULL if nothing does.
 *
 * Needs a transaction with SPI connected.  Reads the statistics views as
 * the catalog owner (other roles' sessions' xmin is shown only to
 * privileged roles), and says no more of another role's session than
 * pg_stat_activity shows everybody; never what a session runs.  What any
 * role can choose (an application_name, a prepared transaction's name) is
 * quoted as a literal, so that it cannot pass for the rest of the message.
 */
char *
migrate_horizon_holder(Oid viewer)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(viewer)};
	bool		isnull;
	Datum		d;

	migrate_server_read(
		"SELECT who FROM ("
		" SELECT CASE WHEN usesysid IS NOT NULL"
		"              AND pg_catalog.pg_has_role($1, usesysid, 'MEMBER')"
		"        THEN pg_catalog.format('process %s (%L, %s for %s)', pid,"
		"          COALESCE(NULLIF(application_name, ''), backend_type::pg_catalog.text),"
		"          COALESCE(state, 'active'),"
		"          pg_catalog.date_trunc('second', pg_catalog.now() OPERATOR(pg_catalog.-)"
		"              COALESCE(xact_start, backend_start)))"
		"        WHEN NULLIF(application_name, '') IS NOT NULL"
		"        THEN pg_catalog.format('process %s (%L)', pid, application_name)"
		"        ELSE pg_catalog.format('process %s', pid)"
		"        END AS who,"
		"        GREATEST(pg_catalog.age(backend_xmin), pg_catalog.age(backend_xid)) AS age"
		"   FROM pg_catalog.pg_stat_activity"
		"  WHERE pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()"
		"    AND backend_type OPERATOR(pg_catalog.<>) 'autovacuum worker'"
		"    AND (datname OPERATOR(pg_catalog.=) pg_catalog.current_database() OR datname IS NULL)"
		" UNION ALL"
		" SELECT pg_catalog.format('standby %L (hot_standby_feedback)', application_name),"
		"        pg_catalog.age(backend_xmin)"
		"   FROM pg_catalog.pg_stat_replication"
		" UNION ALL"
		" SELECT pg_catalog.format('replication slot %s', slot_name), pg_catalog.age(xmin)"
		"   FROM pg_catalog.pg_replication_slots"
		" UNION ALL"
		" SELECT pg_catalog.format('prepared transaction %L', gid), pg_catalog.age(transaction)"
		"   FROM pg_catalog.pg_prepared_xacts"
		"  WHERE database OPERATOR(pg_catalog.=) pg_catalog.current_database()"
		") h WHERE age IS NOT NULL ORDER BY age DESC LIMIT 1",
		1, types, values, NULL);
	if (SPI_processed == 0)
		return NULL;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}
