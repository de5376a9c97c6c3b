/*-------------------------------------------------------------------------
 *
 * register.h
 *	  A migration's definition, read from migrate_register's arguments and
 *	  checked before it is stored (register.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_REGISTER_H
#define MIGRATE_REGISTER_H

#include "migrate.h"

#include "fmgr.h"

extern void migrate_register_args(FunctionCallInfo fcinfo, MigrationDef *def);
extern void migrate_validate_definition(MigrationDef *def);

#endif							/* MIGRATE_REGISTER_H */
