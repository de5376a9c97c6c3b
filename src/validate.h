/*-------------------------------------------------------------------------
 *
 * validate.h
 *	  Checks of the SQL fragments a user registers: SET and WHERE clauses,
 *	  a task's statement, a row function, the check (validate.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_VALIDATE_H
#define MIGRATE_VALIDATE_H

#include "migrate.h"

extern void migrate_validate_clause(const char *clause, bool is_set,
									List *key_columns);
extern void migrate_validate_task_sql(const char *sql);
extern void migrate_validate_row_fn(Oid fnoid, Oid relid);
extern void migrate_validate_check(MigrationDef *def);
extern List *migrate_parse_pinned(const char *sql, char **message);

#endif							/* MIGRATE_VALIDATE_H */
