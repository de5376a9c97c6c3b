/*-------------------------------------------------------------------------
 *
 * citus.h
 *	  migrate on a Citus cluster (citus.c): the lead of a migration of a
 *	  distributed table on the coordinator, and the guard of a shard
 *	  migration's batches on a worker node.
 *
 * Citus is found at run time (its extension in the current database); no
 * symbol of it is linked, and without it every function here is a no-op
 * or answers "no".
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_CITUS_H
#define MIGRATE_CITUS_H

#include "migrate.h"
#include "runner.h"

/* how long the lead waits between two looks at the nodes, in ms */
#define MIGRATE_CITUS_LEAD_INTERVAL_MS 500

extern bool migrate_citus_present(void);
extern bool migrate_citus_leads(const Migration *m);
extern RunnerStep migrate_citus_lead_step(Runner *r, Migration *m);
extern void migrate_citus_stop_shards(const Migration *m);
extern void migrate_citus_guard(const Migration *m);
extern void migrate_citus_worker_init(void);
extern void migrate_citus_forget_plan(int64 id);
extern void migrate_citus_refuse(const Migration *m, const char *what);

#endif							/* MIGRATE_CITUS_H */
