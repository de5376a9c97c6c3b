/*-------------------------------------------------------------------------
 *
 * security.h
 *	  Who runs what: switching to the catalog owner or to a migration's
 *	  owner and back, and the checks of a caller's rights (security.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_SECURITY_H
#define MIGRATE_SECURITY_H

#include "migrate.h"

/* A role switch, to be undone by migrate_restore_role */
typedef struct RoleSwitch
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_nestlevel;
	bool		revert_gucs;	/* undo every setting on restore */
} RoleSwitch;

extern void migrate_become_catalog_owner(RoleSwitch *rs);
extern void migrate_become_migration_owner(RoleSwitch *rs, const Migration *m);
extern void migrate_restore_role(RoleSwitch *rs);
extern void migrate_set_runner_commits(bool on);
extern void migrate_check_may_manage(const Migration *m, const char *what);
extern Migration *migrate_connect_and_load_to_manage(const char *name,
													 const char *what,
													 bool for_update);
extern void migrate_check_table_privilege(Oid relid, const char *action);
extern void migrate_check_statement_privileges(const Migration *m,
											   const char *sql, int nparams,
											   Oid *types);

#endif							/* MIGRATE_SECURITY_H */
