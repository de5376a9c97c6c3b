/*-------------------------------------------------------------------------
 *
 * citus.c
 *	  migrate on a Citus cluster: each shard of a distributed table walked
 *	  on the node that holds it, with its cursor committed there.
 *
 * A migration of a hash-distributed table registered on the coordinator is
 * run by a lead (the coordinator's migrate worker, in place of batches):
 * migrate.citus_lead (SQL, sql/migrate--0.3--0.4.sql) plans one row per
 * shard in migrate.citus_shards, registers on the node that holds each shard
 * a "shard migration" of the shard table (same definition, name
 * "<migration>/<shardid>"), starts up to "workers" of them per node, reads
 * them back and adds their counters up into the migration's row.  A shard
 * migration is an ordinary migration of that node: its batches commit the
 * shard's rows with its cursor in one local transaction, its worker
 * resumes after a crash of the node (migrate preloaded there).
 *
 * Moves and splits: before each batch a shard migration takes the shard's
 * metadata lock in share mode (lock_shard_metadata, as the catalog owner)
 * and checks that this node still holds the shard (migrate_citus_guard).
 * Citus takes that lock in exclusive mode on every node while it switches
 * a shard over (move, split), so a batch either commits before the switch,
 * and is copied with the shard, or finds the shard gone and fails the
 * shard migration ("citus shard ... is no longer on this node") without
 * changing a row.  The lead then carries the stopped migration's cursor to
 * where the shard is now (or to every shard a split made of it).
 *
 * Citus is looked up by name at run time: nothing of it is linked, and
 * without it migrate_citus_leads() is false and the guard does nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "citus.h"
#include "catalog.h"
#include "runner_lock.h"
#include "security.h"

PG_FUNCTION_INFO_V1(migrate_citus_adopt);

/* lock_shard_metadata's lock mode for a batch: ShareLock */
#define CITUS_SHARD_LOCK_MODE 5

/*
 * migrate_citus_present
 *		Is the Citus extension created in this database?  Any transaction.
 */
bool
migrate_citus_present(void)
{
	return OidIsValid(get_extension_oid("citus", true));
}

/*
 * catalog_has_citus_columns
 *		Does this catalog have migrate.citus_shards and
 *		migrate.citus_shard_migrations (0.4)?  An older catalog runs no lead and no
 *		guard.  In a transaction.
 */
static bool
catalog_has_citus_columns(void)
{
	Oid			nsp = get_namespace_oid("migrate", true);

	return OidIsValid(nsp) &&
		OidIsValid(get_relname_relid("citus_shards", nsp));
}

/*
 * migrate_citus_leads
 *		Is m a migration of a hash-distributed Citus table, which a lead runs
 *		shard by shard on the nodes?  Reference tables, Citus local tables and
 *		plain tables are walked here as on any server.  In a transaction with
 *		SPI connected.
 */
bool
migrate_citus_leads(const Migration *m)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1];

	if (m == NULL || m->relation == NULL || !OidIsValid(m->relid) ||
		!migrate_citus_present() || !catalog_has_citus_columns())
		return false;
	values[0] = ObjectIdGetDatum(m->relid);
	migrate_catalog_exec("SELECT 1 FROM pg_catalog.pg_dist_partition p"
						 " WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass"
						 "   AND p.partmethod OPERATOR(pg_catalog.=) 'h'",
						 1, types, values, NULL, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/*
 * migrate_citus_refuse
 *		Error out: "what" (a revert, a batch in the caller's transaction, ...)
 *		is not done on a distributed table yet.
 */
void
migrate_citus_refuse(const Migration *m, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s of migration \"%s\" is not supported on a distributed table",
					what, m->name),
			 errdetail("Table %s is distributed by Citus: its shards are walked on their nodes by background workers.",
					   m->relation),
			 errhint("Use migrate_start, migrate_pause, migrate_resume and migrate_cancel on the coordinator.")));
}

/*
 * stop_shards
 *		Pause ("pause") or cancel ("cancel") the shard migrations of
 *		migration id that run (a cancel: that are not done) on their nodes,
 *		through migrate.citus_stop as the catalog owner.  Best effort; the
 *		remote statements commit on their own.  SPI connected.
 */
static void
stop_shards(int64 id, const char *how)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];

	values[0] = Int64GetDatum(id);
	values[1] = CStringGetTextDatum(how);
	migrate_catalog_exec("SELECT migrate.citus_stop($1, $2)", 2, types, values, NULL,
						 SPI_OK_SELECT);
}

/*
 * migrate_citus_lead_step
 *		One step of the lead of m (a migration of a distributed table, running
 *		with this process as its runner), in the caller's transaction with SPI
 *		connected: migrate.citus_lead as the catalog owner, then what it says.
 *		Returns RUNNER_GO_ON (look again after r->pause_ms), or RUNNER_DONE
 *		with the migration done and the runner lock given up.  A shard
 *		migration that failed fails m (an error), after the others are
 *		paused.
 */
RunnerStep
migrate_citus_lead_step(Runner *r, Migration *m)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(m->id)};
	char	   *answer;

	if (m->reverting)
		migrate_citus_refuse(m, "a revert");
	if (r->in_worker)
		pgstat_report_activity(STATE_RUNNING,
							   psprintf("migrate: lead of \"%s\" on the Citus nodes", m->name));
	migrate_catalog_exec("SELECT migrate.citus_lead($1)", 1, types, values, NULL,
						 SPI_OK_SELECT);
	answer = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (answer == NULL || strcmp(answer, "gone") == 0)
		return RUNNER_STOP;
	if (strcmp(answer, "running") == 0)
	{
		r->pause_ms = MIGRATE_CITUS_LEAD_INTERVAL_MS;
		return RUNNER_GO_ON;
	}
	if (strcmp(answer, "done") == 0)
	{
		Migration  *done = migrate_catalog_load_by_id(m->id, true);
		MemoryContext old;

		if (!migrate_runner_claims(done))
		{
			/* a pause or cancel came first: the next step gives up */
			return RUNNER_GO_ON;
		}
		migrate_catalog_transition(done, MIGRATE_DONE, "done",
								   psprintf(INT64_FORMAT " rows processed, " INT64_FORMAT
											" changed, in " INT64_FORMAT " batches on the Citus nodes",
											done->processed, done->changed, done->batches));
		old = MemoryContextSwitchTo(r->keepcxt);
		r->summary = psprintf("is done: " INT64_FORMAT " rows processed, " INT64_FORMAT " changed",
							  done->processed, done->changed);
		MemoryContextSwitchTo(old);
		migrate_runner_release(done->id, done);
		return RUNNER_DONE;
	}

	/* "failed: ...": pause the other shards, then fail with its reason */
	stop_shards(m->id, "pause");
	ereport(ERROR,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("%s", strncmp(answer, "failed: ", 8) == 0 ? answer + 8 : answer),
			 errdetail("A shard migration of \"%s\" failed on its node; the others were paused.",
					   m->name)));
	return RUNNER_STOP;			/* not reached */
}

/*
 * migrate_citus_stop_shards
 *		m, a migration of a distributed table, is no longer running (paused,
 *		cancelled, failed): stop its shard migrations on the nodes the same
 *		way (a failure pauses them).  Best effort: a node that does not
 *		answer keeps its shard migration running until it is back.  In a
 *		transaction with SPI connected; remote statements commit on their own.
 */
void
migrate_citus_stop_shards(const Migration *m)
{
	if (m->state == MIGRATE_RUNNING)
		return;
	stop_shards(m->id, m->state == MIGRATE_CANCELLED ? "cancel" : "pause");
}

/*
 * migrate_citus_guard
 *		Before a batch of m on a Citus node: if m walks a shard, hold the
 *		shard's metadata lock (share mode) to the end of the transaction and
 *		check that this node still holds the shard; error out if it does not
 *		(moved or split), so that no batch writes a placement Citus has
 *		switched away from.  In the batch's transaction, SPI connected.
 */
void
migrate_citus_guard(const Migration *m)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	bool		isnull;
	int64		shard;

	if (!migrate_citus_present() || !catalog_has_citus_columns())
		return;
	values[0] = Int64GetDatum(m->id);
	migrate_catalog_exec("SELECT shardid FROM migrate.citus_shard_migrations"
						 " WHERE migration OPERATOR(pg_catalog.=) $1",
						 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return;
	values[0] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return;
	shard = DatumGetInt64(values[0]);

	/* first the lock; the placement is read after it, in a new snapshot */
	migrate_catalog_exec("SELECT pg_catalog.lock_shard_metadata(5,"
						 " ARRAY[$1]::pg_catalog.int8[])",
						 1, types, values, NULL, SPI_OK_SELECT);
	migrate_catalog_exec("SELECT 1 FROM pg_catalog.pg_dist_placement p,"
						 " pg_catalog.pg_dist_local_group g"
						 " WHERE p.shardid OPERATOR(pg_catalog.=) $1"
						 "   AND p.groupid OPERATOR(pg_catalog.=) g.groupid",
						 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("citus shard " INT64_FORMAT " is no longer on this node", shard),
				 errdetail("Migration \"%s\" walks %s, which Citus moved or split; no row was changed.",
						   m->name, m->relation),
				 errhint("The migration on the coordinator goes on from this cursor where the shard is now.")));
}

/*
 * migrate_citus_worker_init
 *		In a migrate worker: show Citus's shard tables to this session
 *		(citus.override_table_visibility), so that a shard migration's size
 *		lookups and vacuum find its table.  Outside a transaction.
 */
void
migrate_citus_worker_init(void)
{
	if (GetConfigOption("citus.override_table_visibility", true, false) != NULL)
		SetConfigOption("citus.override_table_visibility", "off",
						PGC_USERSET, PGC_S_SESSION);
}

/*
 * migrate_citus_forget_plan
 *		Forget migration id's shards (restarted from its first key,
 *		registered again, unregistered).  Its shard migrations on the nodes
 *		are registered again (replace) at the next start.  In a transaction
 *		with SPI connected.
 */
void
migrate_citus_forget_plan(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	if (!catalog_has_citus_columns())
		return;
	migrate_catalog_exec("DELETE FROM migrate.citus_shards WHERE migration OPERATOR(pg_catalog.=) $1",
						 1, types, values, NULL, SPI_OK_DELETE);
}

/*
 * migrate_citus_adopt(name text, shardid bigint, cursor jsonb, pass int)
 *		On a node: make migration "name", just registered on a shard table,
 *		the shard migration of shard "shardid", going on from cursor and
 *		pass.  The caller must be allowed to manage it; it must not have run
 *		a batch; its table must be that shard's, and this node must hold it.
 */
Datum
migrate_citus_adopt(PG_FUNCTION_ARGS)
{
	Migration  *m;
	Oid			types[4] = {INT8OID, INT8OID, JSONBOID, INT4OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	int64		shard;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("name and shardid must not be null")));
	if (!migrate_citus_present())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"citus\" is not installed in this database")));
	shard = PG_GETARG_INT64(1);
	m = migrate_connect_and_load_to_manage(text_to_cstring(PG_GETARG_TEXT_PP(0)), "adopt", true);
	if (m->state != MIGRATE_REGISTERED || m->batches != 0 || m->cursor != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" has already run", m->name),
				 errdetail("Only a migration just registered can take over a shard's cursor.")));

	values[0] = Int64GetDatum(shard);
	values[1] = ObjectIdGetDatum(m->relid);
	types[1] = OIDOID;
	migrate_catalog_exec("SELECT 1 FROM pg_catalog.pg_dist_shard d,"
						 " pg_catalog.pg_dist_placement p, pg_catalog.pg_dist_local_group g"
						 " WHERE d.shardid OPERATOR(pg_catalog.=) $1"
						 "   AND p.shardid OPERATOR(pg_catalog.=) d.shardid"
						 "   AND p.groupid OPERATOR(pg_catalog.=) g.groupid"
						 "   AND pg_catalog.to_regclass(pg_catalog.shard_name(d.logicalrelid, d.shardid, false))"
						 "       OPERATOR(pg_catalog.=) $2::pg_catalog.regclass",
						 2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s of migration \"%s\" is not shard " INT64_FORMAT " on this node",
						m->relation, m->name, shard)));

	types[1] = INT8OID;
	values[0] = Int64GetDatum(m->id);
	values[1] = Int64GetDatum(shard);
	if (PG_ARGISNULL(2))
		nulls[2] = 'n';
	else
		values[2] = PG_GETARG_DATUM(2);
	values[3] = Int32GetDatum(PG_ARGISNULL(3) ? 0 : PG_GETARG_INT32(3));
	migrate_catalog_exec("INSERT INTO migrate.citus_shard_migrations (migration, shardid)"
						 " VALUES ($1, $2) ON CONFLICT (migration) DO UPDATE SET shardid = $2",
						 2, types, values, nulls, SPI_OK_INSERT);
	migrate_catalog_exec("UPDATE migrate.migrations SET cursor = $3, pass = $4"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 4, types, values, nulls, SPI_OK_UPDATE);
	SPI_finish();
	PG_RETURN_VOID();
}
