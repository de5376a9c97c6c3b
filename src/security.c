/*-------------------------------------------------------------------------
 *
 * security.c
 *	  Who may do what, and as whom the extension runs each piece of work.
 *
 * Two roles matter while a migration runs.  The migration's owner (the role
 * that registered it) runs the user's change, so a migration can never do
 * more than its owner could do by hand.  The owner of the catalog tables
 * (the role that created the extension) writes migrate.migrations and
 * migrate.events, which ordinary roles cannot write at all.  Both switches
 * pin search_path, the catalog one to pg_catalog, pg_temp and the owner one
 * to the search_path saved when the migration was registered.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "postmaster/bgworker.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "security.h"
#include "catalog.h"

static Oid catalog_owner(void);
static bool owner_commits(const Migration *m);

/*
 * catalog_owner
 *		Return the owner of migrate.migrations.
 *
 * Needs a transaction; errors out if the extension's catalog is missing.
 */
static Oid
catalog_owner(void)
{
	Oid			nspid;
	Oid			relid;
	Oid			owner;
	HeapTuple	tuple;

	nspid = get_namespace_oid("migrate", true);
	relid = OidIsValid(nspid) ? get_relname_relid("migrations", nspid) : InvalidOid;
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"migrate\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION migrate.")));

	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * switch_role
 *		Become "role" with search_path set to "path" until migrate_restore_role.
 *
 * The switch is local (SECURITY_LOCAL_USERID_CHANGE), so the code run
 * under it cannot SET ROLE or SET SESSION AUTHORIZATION its way out.  With
 * "restricted" it is also a SECURITY_RESTRICTED_OPERATION, as in index
 * builds and REFRESH MATERIALIZED VIEW: the user's code cannot leave
 * anything behind in the session (temporary objects, prepared statements,
 * held cursors), and every setting it changes, SET or SET LOCAL, is undone
 * when we switch back, also on error.  standard_conforming_strings is
 * pinned so that the user's fragments parse the way they were checked.
 */
static void
switch_role(RoleSwitch *rs, Oid role, const char *path, bool restricted)
{
	GetUserIdAndSecContext(&rs->saved_userid, &rs->saved_sec_context);
	SetUserIdAndSecContext(role,
						   rs->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   (restricted ? SECURITY_RESTRICTED_OPERATION : 0));
	rs->guc_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", path,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("standard_conforming_strings", "on",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/*
 * migrate_become_catalog_owner
 *		Switch to the catalog owner with search_path = pg_catalog, pg_temp.
 */
void
migrate_become_catalog_owner(RoleSwitch *rs)
{
	switch_role(rs, catalog_owner(), "pg_catalog, pg_temp", false);
	rs->revert_gucs = false;
}

/* Does the runner commit each batch itself (a worker, CALL migrate_run)? */
static bool runner_commits = false;

/*
 * migrate_set_runner_commits
 *		Say whether the current process runs batches that it commits itself,
 *		before anything else can change the session's role: a worker, or
 *		CALL migrate_run for as long as it runs.
 */
void
migrate_set_runner_commits(bool on)
{
	runner_commits = on;
}

/*
 * owner_commits
 *		Will the current transaction end as m's owner, whatever happens in it
 *		after the owner's code?
 *
 * A transaction ends (commits, runs held cursors to completion, fires
 * deferred triggers) as the session's outer user at that time.  Only when
 * that is certainly m's owner may the owner's code leave work for the end
 * of the transaction; anywhere else (a superuser's or a member's session,
 * a SECURITY DEFINER function, a worker run for another migration) the
 * owner's code runs as a security-restricted operation.
 *
 * It is certain in a runner that commits each batch itself while the outer
 * user is the owner (nothing can change the role in between), and in a
 * session that belongs to the owner through and through: authenticated
 * as, and the session user of, the owner.  A session that merely did SET
 * ROLE (or SET SESSION AUTHORIZATION) to the owner could RESET it before
 * its COMMIT, so it does not count.
 */
static bool
owner_commits(const Migration *m)
{
	if (GetUserId() != m->owner || GetOuterUserId() != m->owner ||
		InSecurityRestrictedOperation())
		return false;
	if (runner_commits)
		return true;
	return GetSessionUserId() == m->owner && GetAuthenticatedUserId() == m->owner;
}

/*
 * migrate_become_migration_owner
 *		Switch to the migration's owner with the migration's search_path.
 *
 * By construction, not by refusing tricks: the owner's code runs
 * unrestricted only in a transaction that commits as the owner (a worker
 * connected as the owner, or the owner's own session); everywhere else it
 * is a security-restricted operation, in which PostgreSQL refuses held
 * cursors, temporary objects and deferred trigger events -- everything
 * that could run later as somebody else.
 */
void
migrate_become_migration_owner(RoleSwitch *rs, const Migration *m)
{
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(m->owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("owner of migration \"%s\" no longer exists", m->name),
				 errdetail("The role with OID %u was dropped.", m->owner),
				 errhint("Register the migration again with replace => true.")));
	/* settings the owner's code changes are undone either way */
	switch_role(rs, m->owner, m->search_path, !owner_commits(m));
	rs->revert_gucs = true;
}

/*
 * migrate_restore_role
 *		Undo migrate_become_*: restore the user id and the settings.
 */
void
migrate_restore_role(RoleSwitch *rs)
{
	/* after the owner's code, drop whatever it SET; our own SETs are SAVEs */
	AtEOXact_GUC(!rs->revert_gucs, rs->guc_nestlevel);
	SetUserIdAndSecContext(rs->saved_userid, rs->saved_sec_context);
}

/*
 * migrate_check_may_manage
 *		Error out unless the current user may manage migration m.
 *
 * The owner, members of the owner's role and superusers may; "what" names
 * the action for the message ("start", "pause", ...).  Row-level security
 * hides m from everybody else, so they get exactly the error of a
 * migration that does not exist: a name they may not see is not confirmed
 * by the answer.  Only a role that can see every row (BYPASSRLS) learns
 * that it is a matter of permission.
 */
void
migrate_check_may_manage(const Migration *m, const char *what)
{
	if (is_member_of_role(GetUserId(), m->owner))
		return;
	if (!has_bypassrls_privilege(GetUserId()))
		migrate_report_missing(m->name);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s migration \"%s\"", what, m->name),
			 errdetail("Only the owner of the migration, members of its role and superusers may %s it.",
					   what)));
}

/*
 * migrate_connect_and_load_to_manage
 *		The preamble of the SQL functions that act on one migration: connect
 *		SPI, read migration "name" (locking its row for_update), and check
 *		that the current user may "what" it.
 *
 * The caller is a SQL-callable function, inside a transaction and not yet
 * connected to SPI; it leaves SPI connected for the caller, who must end
 * it with SPI_finish (api.c's return_row does) before it returns.  On an
 * error the transaction's abort ends SPI.
 */
Migration *
migrate_connect_and_load_to_manage(const char *name, const char *what, bool for_update)
{
	Migration  *m;

	SPI_connect();
	m = migrate_catalog_load(name, for_update, false);
	migrate_check_may_manage(m, what);
	return m;
}

/*
 * migrate_check_table_privilege
 *		Error out unless the current user may UPDATE (or DELETE from) relid.
 */
void
migrate_check_table_privilege(Oid relid, const char *action)
{
	bool		is_delete = strcmp(action, MIGRATE_ACTION_DELETE) == 0;
	AclMode		mode = is_delete ? ACL_DELETE : ACL_UPDATE;

	if (pg_class_aclcheck(relid, GetUserId(), mode) != ACLCHECK_OK &&
		(is_delete ||
		 pg_attribute_aclcheck_all(relid, GetUserId(), ACL_UPDATE,
								   ACLMASK_ANY) != ACLCHECK_OK))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(relid)),
				 errdetail("Registering a migration that %ss rows needs the %s privilege on the table.",
						   is_delete ? "delete" : "update",
						   is_delete ? "DELETE" : "UPDATE")));
}

/*
 * check_query_privileges_walker
 *		Check the current user's privileges on every relation and column of
 *		every Query in the tree: the statement itself, its CTEs, FROM-list
 *		subqueries and sub-selects in any expression.
 */
static bool
check_query_privileges_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		Query	   *q = (Query *) node;

		CHECK_FOR_INTERRUPTS();
#if PG_VERSION_NUM >= 160000
		(void) ExecCheckPermissions(q->rtable, q->rteperminfos, true);
#else
		(void) ExecCheckRTPerms(q->rtable, true);
#endif
		return query_tree_walker(q, check_query_privileges_walker, context, 0);
	}
	return expression_tree_walker(node, check_query_privileges_walker, context);
}

/*
 * migrate_check_statement_privileges
 *		Error out unless m's owner holds every privilege statement "sql"
 *		needs, on every relation and column it references anywhere.
 *
 * Planning is not enough: the planner may fold a WHERE clause to false and
 * drop the sub-selects in it, and EXPLAIN then checks only what is left.
 * This checks the analysed statement, before any simplification, as the
 * owner with the owner's search_path.  Called at registration, inside its
 * transaction.
 */
void
migrate_check_statement_privileges(const Migration *m, const char *sql,
								   int nparams, Oid *types)
{
	RoleSwitch	rs;
	List	   *raw;
	ListCell   *lc;

	migrate_become_migration_owner(&rs, m);
	raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	foreach(lc, raw)
	{
		Query	   *q = parse_analyze_fixedparams(lfirst_node(RawStmt, lc), sql,
												  types, nparams, NULL);

		(void) check_query_privileges_walker((Node *) q, NULL);
	}
	migrate_restore_role(&rs);
}
