/*-------------------------------------------------------------------------
 *
 * ranges.c
 *	  A migration's walk in ranges, so that several workers can run it at
 *	  once: planning the ranges, picking one for the next batch, and
 *	  splitting the largest when a worker finds none free.
 *
 * A migration with workers > 1 cuts the rest of its walk into ranges when
 * it starts: the leaf partitions of a partitioned table (each walked
 * through its own key index), or else bounds sampled from the key so that
 * each range holds about as many rows as the next, never a count over the
 * table.  Each batch locks one range's row in migrate.ranges, walks from
 * that range's cursor, and commits its data with the range's new cursor
 * (catalog_ranges.c), so two batches never walk the same keys and every
 * row is changed once.  When every range is done the walk is over, and the
 * migration ends (or starts its catch-up passes) through its own cursor as
 * with one worker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "ranges.h"
#include "batch.h"
#include "catalog_ranges.h"
#include "keys.h"
#include "runner.h"
#include "statements.h"

static char *relation_name(Oid relid);

/* Ranges planned per worker, so that none idles while one straggles */
#define RANGES_PER_WORKER 4

/* Most rows migrate_split_range counts to find a range's middle */
#define SPLIT_COUNT_CAP 1000000

/* Pages sampled per range planned (at least SAMPLE_MIN in all) */
#define SAMPLE_PER_RANGE 30
#define SAMPLE_MIN 300

/*
 * A split of a busy range counts the rows of its rest in steps of twice
 * the batch size, at least SPLIT_STEP_MIN_ROWS
 */
#define SPLIT_STEP_MIN_ROWS 1000

/*
 * migrate_ranges_apply
 *		Is m's walk done in ranges: a table's forward walk (not a revert,
 *		not a catch-up pass) with several workers, or ranges planned
 *		already?  An older catalog has none.
 */
bool
migrate_ranges_apply(const Migration *m)
{
	return m->catalog_v3 && m->relation != NULL && !m->reverting &&
		m->pass == 0 && (m->ranges_total > 0 || m->workers > 1);
}

/* Is column attnum of rel one of m's key columns? */
static bool
is_key_column(const Migration *m, Relation rel, AttrNumber attnum)
{
	char	   *name = get_attname(RelationGetRelid(rel), attnum, false);
	ListCell   *lc;

	foreach(lc, m->key_columns)
		if (strcmp((char *) lfirst(lc), name) == 0)
			return true;
	return false;
}

/*
 * level_may_be_split
 *		May the partitioned table rel be walked one partition at a time, for
 *		m?  Only if its partition key is made of m's key columns (so a row
 *		moves to another partition only when its key changes, as with one
 *		cursor) and no statement-level trigger would fire differently.
 */
static bool
level_may_be_split(const Migration *m, Relation rel)
{
	PartitionKey key = RelationGetPartitionKey(rel);

	for (int i = 0; i < key->partnatts; i++)
		if (key->partattrs[i] == 0 || !is_key_column(m, rel, key->partattrs[i]))
			return false;
	if (rel->trigdesc)
		for (int i = 0; i < rel->trigdesc->numtriggers; i++)
			if (!TRIGGER_FOR_ROW(rel->trigdesc->triggers[i].tgtype))
				return false;
	return true;
}

/*
 * leaf_usable
 *		May the owner of m change leaf (open) directly, with the rights the
 *		change needs, and without row-level security (whose policies are
 *		the table's, not the partitions')?
 */
static bool
leaf_usable(const Migration *m, Relation leaf)
{
	AclMode		change = strcmp(m->action, MIGRATE_ACTION_DELETE) == 0 ?
		ACL_DELETE : ACL_UPDATE;

	/* one right at a time: pg_class_aclcheck is satisfied by any of several */
	return !leaf->rd_rel->relrowsecurity &&
		pg_class_aclcheck(RelationGetRelid(leaf), m->owner, ACL_SELECT) == ACLCHECK_OK &&
		pg_class_aclcheck(RelationGetRelid(leaf), m->owner, change) == ACLCHECK_OK;
}

/*
 * clauses_name_table
 *		Does one of m's clauses name the table (relname.column, a whole-row
 *		relname)?  Named in place of the table, a partition would not
 *		answer to it.
 */
static bool
clauses_name_table(const Migration *m, const char *relname)
{
	const char *clauses[3] = {m->set_clause, m->where_clause, m->check_clause};
	char	   *name = pstrdup(relname);
	size_t		len = strlen(name);

	for (char *c = name; *c; c++)
		*c = pg_tolower((unsigned char) *c);
	for (int i = 0; i < 3; i++)
	{
		char	   *text;

		if (clauses[i] == NULL)
			continue;
		text = pstrdup(clauses[i]);
		for (char *c = text; *c; c++)
			*c = pg_tolower((unsigned char) *c);

		/*
		 * The name as a word anywhere (q.n, q . n, q::text, "q"): a column
		 * of the same name makes the table be walked whole, which is safe
		 */
		for (char *at = strstr(text, name); at; at = strstr(at + 1, name))
		{
			bool		starts = at == text || !(IS_HIGHBIT_SET(at[-1]) || isalnum((unsigned char) at[-1]) ||
												  at[-1] == '_' || at[-1] == '$');
			char		next = at[len];
			bool		ends = !(IS_HIGHBIT_SET(next) || isalnum((unsigned char) next) ||
								 next == '_' || next == '$');

			if (starts && ends)
				return true;
		}
	}
	return false;
}

/*
 * leaf_partitions
 *		The leaf partitions of the partitioned table relid, as the ranges of
 *		m: a List of their OIDs, or NIL when m must walk the table as a
 *		whole.
 *
 * Each leaf is then named in m's statements instead of the table, so every
 * partitioned level must allow it (level_may_be_split), every leaf must be
 * usable (leaf_usable), none may be a foreign table, and no clause may
 * name the table.  A row function takes the table's row type, which a
 * leaf's may not match.
 */
static List *
leaf_partitions(const Migration *m, Oid relid)
{
	List	   *rels = find_all_inheritors(relid, AccessShareLock, NULL);
	List	   *leaves = NIL;
	ListCell   *lc;

	if (m->row_fn != NULL || clauses_name_table(m, get_rel_name(relid)))
		return NIL;
	foreach(lc, rels)
	{
		Relation	rel = table_open(lfirst_oid(lc), NoLock);
		char		relkind = rel->rd_rel->relkind;
		bool		ok;

		if (relkind == RELKIND_PARTITIONED_TABLE)
			ok = !rel->rd_rel->relrowsecurity && level_may_be_split(m, rel);
		else if (relkind == RELKIND_RELATION)
		{
			ok = leaf_usable(m, rel);
			leaves = lappend_oid(leaves, RelationGetRelid(rel));
		}
		else
			ok = false;
		table_close(rel, NoLock);
		if (!ok)
			return NIL;
	}
	return leaves;
}

/* What became of a partition a range walks, since the ranges were planned */
typedef enum LeafState
{
	LEAF_OK,					/* still a partition of the table, usable */
	LEAF_GONE,					/* dropped or detached: none of the table's
								 * rows is in it */
	LEAF_CHANGED				/* no longer to be walked on its own */
} LeafState;

/*
 * leaf_state
 *		Is leaf still a partition of m's table tableid that may be walked on
 *		its own?  Checked before each batch and split of its range: its name
 *		is looked up from its OID, never trusted from the catalog, so a
 *		table put in its place is never touched.
 */
static LeafState
leaf_state(const Migration *m, Oid tableid, Oid leaf)
{
	Relation	rel = try_relation_open(leaf, AccessShareLock);
	LeafState	state = LEAF_OK;
	List	   *ancestors;
	ListCell   *lc;

	/*
	 * The locks stay until the transaction ends: while the batch runs, the
	 * partition can be neither dropped, renamed nor detached
	 */
	if (rel == NULL)
		return LEAF_GONE;
	if (rel->rd_rel->relkind != RELKIND_RELATION || !rel->rd_rel->relispartition ||
		!list_member_oid(ancestors = get_partition_ancestors(leaf), tableid))
	{
		relation_close(rel, NoLock);
		return LEAF_GONE;
	}
	if (!leaf_usable(m, rel))
		state = LEAF_CHANGED;
	relation_close(rel, NoLock);
	foreach(lc, ancestors)
	{
		Relation	level = table_open(lfirst_oid(lc), AccessShareLock);

		if (level->rd_rel->relrowsecurity || !level_may_be_split(m, level))
			state = LEAF_CHANGED;
		table_close(level, NoLock);
		if (lfirst_oid(lc) == tableid)
			break;
	}
	return state;
}

/*
 * check_leaf
 *		Before a batch or split of range r of m: set r->relation to the
 *		current name of its partition, if it walks one.  Returns false if
 *		that partition is gone from the table; errors out if it may no
 *		longer be walked on its own.
 */
static bool
check_leaf(const Migration *m, Oid tableid, MigrateRange *r)
{
	if (!OidIsValid(r->relid))
		return true;
	switch (leaf_state(m, tableid, r->relid))
	{
		case LEAF_GONE:
			return false;
		case LEAF_CHANGED:
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("partition %s of migration \"%s\" can no longer be walked on its own",
							relation_name(r->relid), m->name),
					 errdetail("Since its ranges were planned, the partition or a partitioned table above it gained row-level security or a statement-level trigger, or the owner lost a right the change needs on it."),
					 errhint("Undo that change and start the migration again; it goes on from each range's cursor.")));
			break;
		case LEAF_OK:
			break;
	}
	r->relation = relation_name(r->relid);
	return true;
}

/*
 * leaf_bound
 *		The bounds of leaf within tableid, as text: pg_get_expr of its
 *		relpartbound and of every partitioned level between it and the
 *		table, innermost first.  NULL if leaf is not a partition of tableid
 *		(any more), or is being detached (DETACH PARTITION CONCURRENTLY
 *		begun, or interrupted): its rows may then leave the table's key
 *		space at any time.  *is_default says whether one of those levels is
 *		a DEFAULT partition.  Reads the catalog only; the caller holds the
 *		table's lock.
 */
static char *
leaf_bound(Oid leaf, Oid tableid, bool *is_default)
{
	List	   *ancestors = get_partition_ancestors(leaf);
	List	   *chain = list_make1_oid(leaf);
	StringInfoData s;
	ListCell   *lc;

	*is_default = false;
	if (!list_member_oid(ancestors, tableid))
		return NULL;
	foreach(lc, ancestors)
	{
		if (lfirst_oid(lc) == tableid)
			break;
		chain = lappend_oid(chain, lfirst_oid(lc));
	}
	initStringInfo(&s);
	foreach(lc, chain)
	{
		Oid			rel = lfirst_oid(lc);
		HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));
		Datum		d;
		bool		isnull;
		char	   *expr = "";

		if (!HeapTupleIsValid(tup))
			return NULL;
		if (PartitionHasPendingDetach(rel))
		{
			ReleaseSysCache(tup);
			return NULL;
		}
		d = SysCacheGetAttr(RELOID, tup, Anum_pg_class_relpartbound, &isnull);
		if (!isnull)
			expr = TextDatumGetCString(DirectFunctionCall2(pg_get_expr, d,
														   ObjectIdGetDatum(rel)));
		ReleaseSysCache(tup);
		if (strcmp(expr, "DEFAULT") == 0)
			*is_default = true;
		appendStringInfo(&s, "%s%s", foreach_current_index(lc) > 0 ? " / " : "", expr);
	}
	return s.data;
}

/*
 * A partition's name for a message: its name now, or the one it had when
 * its range was planned ("planned") once it is dropped
 */
static char *
partition_label(Oid relid, const char *planned)
{
	char	   *relname = get_rel_name(relid);
	char	   *nspname = relname ? get_namespace_name(get_rel_namespace(relid)) : NULL;

	if (relname == NULL || nspname == NULL)
		return psprintf("%s (dropped)", planned ? planned : "?");
	return quote_qualified_identifier(nspname, relname);
}

/* The error of a migration whose partitions changed under its ranges */
static void
layout_changed(const Migration *m, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("the partitions of table %s changed while migration \"%s\" walked them",
					m->relation, m->name),
			 errdetail_internal("%s", detail),
			 errhint("The rows already changed stay changed, and this batch changed nothing. "
					 "To finish, register the migration again with replace => true and a where_clause that leaves out the rows already changed.")));
}

/*
 * check_layout
 *		Before each batch of m whose ranges are leaf partitions of tableid
 *		(and at the end of the walk): error out, before anything is
 *		changed, if the partitions changed in a way that could make a key
 *		walked twice or never; return the leaves attached since the ranges
 *		were planned that may be walked at the end.
 *
 * Each range follows one partition, and walks that partition's keys in
 * order, so exactly once holds for the keys only while every key stays in
 * the partition it was in when the ranges were planned.  Hence it is an
 * error if:
 *
 * - a partition whose range is not done left the table (dropped, detached,
 *   replaced by a copy under another OID, being detached), or left it while
 *   0.3 walked it (left_table): its rows not yet walked may come back
 *   elsewhere, in a range already past them, or never;
 * - a partition is still there with other bounds than planned (detached
 *   and attached again): keys moved between ranges;
 * - a partition whose range is done left a table that has a DEFAULT
 *   partition while ranges are left: its rows, changed already, could be
 *   put back through the table into the default partition's range;
 * - a partition was attached while the table has a DEFAULT partition (its
 *   keys were the default partition's, which may have walked them), or
 *   after a partition walked already left (its rows may be those).
 *
 * A partition attached to a table without a default partition, none
 * having left it, holds keys that no row could have while the ranges were
 * planned: it is walked at the end, from the migration's cursor.  The
 * caller holds the table's AccessShareLock: a partition can be detached or
 * dropped only once its batch ends, and an ATTACH, which may run
 * meanwhile, cannot move rows that exist.  This costs a look at each
 * partition's bounds per batch.
 */
static List *
check_layout(const Migration *m, Oid tableid)
{
	List	   *planned = migrate_catalog_planned_leaves(m);
	List	   *current = NIL;
	List	   *bounds = NIL;
	List	   *fresh = NIL;
	bool		has_default = false;
	PlannedLeaf *gone = NULL;
	ListCell   *lc;

	if (planned == NIL)
		return NIL;				/* key ranges of the table cover every row */
	foreach(lc, find_all_inheritors(tableid, NoLock, NULL))
	{
		bool		is_default;
		char	   *bound;

		if (get_rel_relkind(lfirst_oid(lc)) != RELKIND_RELATION)
			continue;
		bound = leaf_bound(lfirst_oid(lc), tableid, &is_default);
		if (bound == NULL)
			continue;
		current = lappend_oid(current, lfirst_oid(lc));
		bounds = lappend(bounds, bound);
		has_default |= is_default;
	}
	foreach(lc, planned)
	{
		PlannedLeaf *p = lfirst(lc);
		ListCell   *c;
		char	   *bound = NULL;

		foreach(c, current)
			if (lfirst_oid(c) == p->relid)
				bound = list_nth(bounds, foreach_current_index(c));
		if (p->left_table)
			layout_changed(m, psprintf("Partition %s left the table before its range was done, while version 0.3 walked it.",
									   partition_label(p->relid, p->relation)));
		if (bound != NULL)
		{
			if (p->bound != NULL && strcmp(bound, p->bound) != 0)
				layout_changed(m, psprintf("Partition %s is attached with other bounds than when its range was planned: %s, not %s.",
										   partition_label(p->relid, p->relation), bound, p->bound));
		}
		else if (!p->done)
			layout_changed(m, psprintf("Partition %s left the table before its range was done: its rows not walked yet could be put back in another range, or never be walked.",
									   partition_label(p->relid, p->relation)));
		else
			gone = p;
	}
	if (gone != NULL && has_default && migrate_catalog_count_ranges(m, true) > 0)
		layout_changed(m, psprintf("Partition %s, whose range was done, left the table, which has a default partition: its rows, changed already, could be put back into the default partition's range.",
								   partition_label(gone->relid, gone->relation)));
	foreach(lc, current)
	{
		ListCell   *p;
		bool		known = false;

		foreach(p, planned)
			if (((PlannedLeaf *) lfirst(p))->relid == lfirst_oid(lc))
				known = true;
		if (known)
			continue;
		if (has_default)
			layout_changed(m, psprintf("Partition %s was attached to the table, which has a default partition: its keys were the default partition's, whose range may have walked them.",
									   partition_label(lfirst_oid(lc), NULL)));
		if (gone != NULL)
			layout_changed(m, psprintf("Partition %s was attached after partition %s, walked already, left the table: its rows may be those changed already.",
									   partition_label(lfirst_oid(lc), NULL),
									   partition_label(gone->relid, gone->relation)));
		fresh = lappend_oid(fresh, lfirst_oid(lc));
	}
	return fresh;
}

/*
 * add_new_leaves
 *		The walk of m in ranges of partitions is over: add a range for each
 *		partition in "fresh" (attached since, and allowed by check_layout:
 *		its rows are the table's too), from m's cursor as the others.
 *		Returns how many.
 */
static int
add_new_leaves(Migration *m, Oid tableid, List *fresh)
{
	ListCell   *lc;
	int			added = 0;

	foreach(lc, fresh)
	{
		MigrateRange r;
		bool		is_default;
		char	   *bound = leaf_bound(lfirst_oid(lc), tableid, &is_default);

		memset(&r, 0, sizeof(r));
		r.relid = lfirst_oid(lc);
		if (bound == NULL || !check_leaf(m, tableid, &r))
			continue;
		migrate_catalog_set_range_bound(migrate_catalog_add_range(m, r.relation, r.relid,
																  m->cursor, NULL,
																  migrate_estimate_rows(r.relid), 0),
										bound);
		added++;
	}
	return added;
}

/* The quoted, qualified name of relation relid */
static char *
relation_name(Oid relid)
{
	char	   *relname = get_rel_name(relid);
	char	   *nspname = get_namespace_name(get_rel_namespace(relid));

	if (relname == NULL || nspname == NULL)
		elog(ERROR, "cache lookup failed for relation %u", relid);
	return quote_qualified_identifier(nspname, relname);
}

/* The pages of relid, all its partitions' if it is partitioned */
static double
relation_pages(Oid relid)
{
	List	   *rels = find_all_inheritors(relid, AccessShareLock, NULL);
	double		pages = 0;
	ListCell   *lc;

	foreach(lc, rels)
	{
		Relation	rel = table_open(lfirst_oid(lc), NoLock);

		if (RELKIND_HAS_STORAGE(rel->rd_rel->relkind))
			pages += RelationGetNumberOfBlocks(rel);
		table_close(rel, NoLock);
		if (get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
			break;
	}
	return pages;
}

/*
 * sample_ranges
 *		Plan about nranges ranges of m on relid from a sample of its keys
 *		after m's cursor, one per page sampled: bounds at equal steps of
 *		the sample, so that each range spans about as many pages, and so
 *		rows.  Returns how many were planned.
 */
static int
sample_ranges(Migration *m, Oid relid, const char *relation, int nranges)
{
	int64		estimate = migrate_estimate_rows(relid);
	double		pages = relation_pages(relid);
	double		target = Max(SAMPLE_MIN, (double) nranges * SAMPLE_PER_RANGE);
	float4		percent = pages > target ? (float4) (100.0 * target / pages) : 100;
	Oid			types[2] = {JSONBOID, FLOAT4OID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	int			nestlevel;
	int64		nsample;
	Jsonb	   *lower = m->cursor;
	int64		from = 0;
	int			planned = 0;
	Migration	w = *m;

	w.relation = (char *) relation;
	values[0] = m->cursor ? JsonbPGetDatum(m->cursor) : (Datum) 0;
	nulls[0] = m->cursor ? ' ' : 'n';
	values[1] = Float4GetDatum(percent);
	nestlevel = NewGUCNestLevel();
	migrate_pin_key_formats();
	migrate_run_owner_sql(&w, migrate_build_sample_sql(&w, relid, m->cursor != NULL),
						  2, types, values, nulls, false);
	AtEOXact_GUC(true, nestlevel);

	nsample = (int64) SPI_processed;
	if (nsample < nranges)
		nranges = Max(1, (int) nsample);
	{
		SPITupleTable *sample = SPI_tuptable;

		/*
		 * Range i ends at the sampled key (nsample * i / nranges), the
		 * first key of a page: so the first range does not end at the
		 * first key sampled, nor the last start at the last.
		 */
		for (int i = 1; i <= nranges; i++)
		{
			int64		to = i == nranges ? nsample : (int64) i * nsample / nranges;
			Jsonb	   *upper = NULL;
			bool		isnull;

			if (i < nranges)
			{
				upper = DatumGetJsonbPCopy(SPI_getbinval(sample->vals[to],
														 sample->tupdesc, 1, &isnull));
				if (lower && compareJsonbContainers(&lower->root, &upper->root) == 0)
					continue;
			}
			(void) migrate_catalog_add_range(m, relation, InvalidOid, lower, upper,
											 nsample > 0 ? (int64) ((double) estimate * (to - from) / nsample) : estimate,
											 0);
			planned++;
			lower = upper;
			from = to;
		}
	}
	return planned;
}

/*
 * plan_ranges
 *		Cut the rest of m's walk (after its cursor) into ranges: its leaf
 *		partitions, or sampled key ranges, about RANGES_PER_WORKER per
 *		worker, with m's row locked, unless they are planned already.
 */
static void
plan_ranges(Migration *m)
{
	Oid			relid = migrate_resolve_relation(m, false);
	List	   *leaves = NIL;
	int			planned = 0;
	ListCell   *lc;

	/* planned meanwhile by another (a session stepping it by hand)? */
	m->ranges_total = migrate_catalog_count_ranges_locked(m);
	if (m->ranges_total > 0)
		return;
	if (get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE)
		leaves = leaf_partitions(m, relid);
	foreach(lc, leaves)
	{
		bool		is_default;
		char	   *bound = leaf_bound(lfirst_oid(lc), relid, &is_default);

		migrate_catalog_set_range_bound(migrate_catalog_add_range(m, relation_name(lfirst_oid(lc)),
																  lfirst_oid(lc), m->cursor, NULL,
																  migrate_estimate_rows(lfirst_oid(lc)), 0),
										bound ? bound : "");
		planned++;
	}
	if (leaves == NIL)
		planned = sample_ranges(m, relid, m->relation,
								m->workers * RANGES_PER_WORKER);
	m->ranges_total = planned;
}

/* Make m walk range r: its table, cursor and last key. */
static void
walk_range(Migration *m, const MigrateRange *r)
{
	m->range_id = r->id;
	m->range_relid = r->relid;
	m->relation = r->relation;
	m->cursor = r->cursor;
	m->upper = r->upper;
}

/* What a split needs, for migrate_try_in_subxact */
typedef struct SplitWork
{
	Migration  *m;
	int32		min_rows;
	int64		new_range;
} SplitWork;

static void
split_work(void *arg)
{
	SplitWork  *w = arg;

	w->new_range = migrate_ranges_split(w->m, 0, w->min_rows, false);
}

/*
 * migrate_ranges_pick
 *		Before a batch of m: if m walks in ranges, lock one for this
 *		transaction and make m walk it (PICK_RANGE).  With may_plan (m's
 *		runner), plan the ranges first if there are none yet.  When none is
 *		free, split the largest range still walked by another batch
 *		(PICK_SPLIT, no batch this time) or, if none is worth it, return
 *		PICK_BUSY; when all are done, set m->walk_over and return
 *		PICK_WALK_OVER.  "prefer" is the range the caller walked last; by
 *		hand (migrate_step) the first range not done is taken, waiting for
 *		its lock.  Returns PICK_NONE for a migration walked with one
 *		cursor.
 */
RangePick
migrate_ranges_pick(Migration *m, int64 prefer, bool may_plan, bool by_hand,
					int32 batch_size)
{
	MigrateRange r;
	Oid			tableid;
	List	   *fresh;

	if (!migrate_ranges_apply(m))
		return PICK_NONE;
	if (m->ranges_total == 0)
	{
		if (!may_plan)
			return PICK_WALK_OVER;
		plan_ranges(m);
	}
	tableid = migrate_resolve_relation(m, false);
	fresh = check_layout(m, tableid);
	for (;;)
	{
		if (migrate_catalog_take_range(m, prefer, !by_hand, by_hand, &r))
		{
			if (!check_leaf(m, tableid, &r))
				layout_changed(m, psprintf("Partition %s left the table before its range was done: its rows not walked yet could be put back in another range, or never be walked.",
										   partition_label(r.relid, r.relation)));
			walk_range(m, &r);
			return PICK_RANGE;
		}
		if (migrate_catalog_count_ranges(m, true) > 0)
			break;
		if (!may_plan || add_new_leaves(m, tableid, fresh) == 0)
		{
			m->walk_over = true;
			return PICK_WALK_OVER;
		}
		fresh = NIL;
	}

	/*
	 * Every range left is in another batch: split the largest, unless its
	 * batch holds it longer than lock_timeout.
	 */
	{
		SplitWork	w = {m, (int32) Min(Max((int64) 2 * batch_size, SPLIT_STEP_MIN_ROWS),
										PG_INT32_MAX / 4), 0};
		int			nestlevel = NewGUCNestLevel();
		ErrorData  *edata;

		migrate_set_lock_timeout(m->lock_timeout_ms);
		edata = migrate_try_in_subxact(split_work, &w, false, NULL, false);
		AtEOXact_GUC(true, nestlevel);
		if (edata && !migrate_error_is_retryable(edata))
			ReThrowError(edata);
		return w.new_range != 0 ? PICK_SPLIT : PICK_BUSY;
	}
}

/*
 * migrate_ranges_split
 *		Split range range_id of m (0: the one with the most rows left) half
 *		way through the rows left after its cursor, if both halves would
 *		hold at least min_rows.  The rows left are the range's estimate
 *		(the largest range is chosen by it, and one it says is too small is
 *		not locked at all), or counted if "exact".  Returns the new range's
 *		id, or 0.
 *
 * Waits for the range's row lock, so for the batch in flight on it (under
 * the caller's lock_timeout); the next batch of the range sees its new
 * upper bound, and a batch that ran with the old one fails its
 * compare-and-set.  Finding the middle walks the key's index over half the
 * rows left, as a batch's bound does.  A migration never has more than
 * MIGRATE_MAX_RANGES ranges.
 */
int64
migrate_ranges_split(Migration *m, int64 range_id, int32 min_rows, bool exact)
{
	MigrateRange r;
	Migration	w = *m;
	Oid			relid;
	BatchSql   *b;
	Datum		bound;
	int64		rows = 0;
	int64		half;
	Jsonb	   *middle;

	/* bounded: every range costs the walk a batch at least */
	if (migrate_catalog_count_ranges(m, false) >= MIGRATE_MAX_RANGES)
		return 0;
	if (range_id == 0)
	{
		int64		rows_left;

		/*
		 * By the estimate, without a lock: a worker must not keep taking
		 * the lock of a range too small to split from the worker walking it
		 */
		range_id = migrate_catalog_largest_range(m, &rows_left);
		if (!exact && rows_left < 2 * (int64) min_rows)
			return 0;
	}
	if (range_id == 0 || !migrate_catalog_lock_range(m, range_id, &r) || r.done ||
		!check_leaf(m, migrate_resolve_relation(m, false), &r))
		return 0;
	walk_range(&w, &r);
	relid = migrate_resolve_relation(&w, false);
	b = migrate_build_batch_sql(&w, relid, w.cursor ? KEYS_AFTER : KEYS_FIRST);

	/* the rows left: the range's estimate, or asked to be exact, counted */
	if (exact)
	{
		if (!migrate_find_batch_bound(&w, b, SPLIT_COUNT_CAP, &bound, &rows))
			return 0;
		r.rows_left = rows;
	}

	/* the key half way through them; the estimate may be off */
	half = Min(r.rows_left / 2, (int64) PG_INT32_MAX);
	for (int tries = 0;; tries++)
	{
		if (half < Max(min_rows, 1))
			return 0;
		if (!migrate_find_batch_bound(&w, b, (int32) half, &bound, &rows))
			return 0;
		if (rows == half)
			break;
		if (tries > 0)
			return 0;
		half = rows / 2;		/* fewer rows left than estimated */
	}
	middle = DatumGetJsonbPCopy(bound);

	/* is anything left after the middle, for the new range? */
	w.cursor = middle;
	b = migrate_build_batch_sql(&w, relid, KEYS_AFTER);
	if (!migrate_find_batch_bound(&w, b, 1, &bound, &rows))
		return 0;
	return migrate_catalog_split_range(m, &r, middle, half,
									   Max(r.rows_left - half, half));
}
