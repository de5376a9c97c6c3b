/*-------------------------------------------------------------------------
 *
 * preview.c
 *	  Looking before you leap: EXPLAIN of a migration's statements (at
 *	  registration and for migrate_explain) and its dry run.
 *
 * Nothing here changes anything: plans are only made, and a dry run's batch
 * runs in a subtransaction that is rolled back.
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

#include "preview.h"
#include "batch.h"
#include "keys.h"
#include "security.h"
#include "statements.h"
#include "validate.h"

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
		List	   *stmts = migrate_parse_pinned(m->sql, &message);
		Node	   *stmt = ((RawStmt *) linitial(stmts))->stmt;

		if (list_length(stmts) == 1 &&
			(IsA(stmt, SelectStmt) || IsA(stmt, InsertStmt) ||
			 IsA(stmt, UpdateStmt) || IsA(stmt, DeleteStmt)))
		{
			migrate_run_owner_sql(m, psprintf("EXPLAIN (COSTS OFF) %s", m->sql),
						 0, NULL, NULL, NULL, false);
			migrate_check_statement_privileges(m, m->sql, 0, NULL);
		}
	}
	else
	{
		BatchSql   *b = migrate_build_batch_sql(m, migrate_resolve_relation(m, false), KEYS_AFTER);

		migrate_run_owner_sql(m, psprintf("EXPLAIN (COSTS OFF) %s", b->change),
					 2, types, values, nulls, false);
		migrate_check_statement_privileges(m, b->change, 2, types);
		if (m->check_clause)
		{
			/* the statement that verifies, and a catch-up pass's change */
			Oid			vtypes[3] = {JSONBOID, JSONBOID, INT4OID};
			Datum		vvalues[3] = {0, 0, 0};
			char		vnulls[3] = {'n', 'n', 'n'};
			char	   *verify = migrate_build_verify_sql(m, migrate_resolve_relation(m, false),
														  KEYS_AFTER);

			migrate_run_owner_sql(m, psprintf("EXPLAIN (COSTS OFF) %s", verify),
								  3, vtypes, vvalues, vnulls, false);
			migrate_check_statement_privileges(m, verify, 3, vtypes);
			if (m->catch_up)
			{
				Migration	pass = *m;

				pass.pass = 1;
				b = migrate_build_batch_sql(&pass, migrate_resolve_relation(m, false), KEYS_AFTER);
				migrate_run_owner_sql(m, psprintf("EXPLAIN (COSTS OFF) %s", b->change),
									  2, types, values, nulls, false);
			}
		}
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
	b = migrate_build_batch_sql(m, relid, m->cursor ? KEYS_AFTER : KEYS_FIRST);
	found = migrate_find_batch_bound(m, b, batch_size, &bound, &rows);
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
		migrate_run_owner_sql(m, psprintf("EXPLAIN (COSTS OFF) %s", stmts[i]), 2, types, values, nulls, false);
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

		migrate_set_lock_timeout(m->lock_timeout_ms);
		if (m->relation == NULL)
		{
			StringInfoData buf;

			migrate_run_owner_sql(m, m->sql, 0, NULL, NULL, NULL, false);
			initStringInfo(&buf);
			appendStringInfo(&buf, "{\"rows\": " UINT64_FORMAT "}", SPI_processed);
			MemoryContextSwitchTo(oldcxt);
			cb(arg, (Datum) 0, true, (Datum) 0, true,
			   DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)), false);
		}
		else
		{
			Oid			relid = migrate_resolve_relation(m, false);
			BatchSql   *b = migrate_build_batch_sql(m, relid, m->cursor ? KEYS_AFTER : KEYS_FIRST);
			Datum		bound;
			int64		rows;

			if (migrate_find_batch_bound(m, b, batch_size, &bound, &rows))
			{
				Oid			types[3] = {JSONBOID, JSONBOID, INT4OID};
				Datum		values[3];
				char		nulls[3] = {' ', ' ', ' '};

				values[0] = m->cursor ? JsonbPGetDatum(m->cursor) : (Datum) 0;
				nulls[0] = m->cursor ? ' ' : 'n';
				values[1] = bound;
				values[2] = Int32GetDatum(max_rows);
				migrate_run_owner_sql(m, b->dry_run, 3, types, values, nulls, false);
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
