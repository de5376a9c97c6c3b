/*-------------------------------------------------------------------------
 *
 * keys.h
 *	  A migration's table and key: finding the key columns, recording and
 *	  checking their types, resolving the table by name (keys.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_KEYS_H
#define MIGRATE_KEYS_H

#include "migrate.h"

#include "nodes/primnodes.h"

extern List *migrate_find_key_columns(Oid relid);
extern List *migrate_key_types(Oid relid, List *key_columns);
extern void migrate_check_key_types(const Migration *m);
extern RangeVar *migrate_relation_rangevar(const char *relation);
extern Oid	migrate_resolve_relation(const Migration *m, bool missing_ok);
extern int64 migrate_estimate_rows(Oid relid);

#endif							/* MIGRATE_KEYS_H */
