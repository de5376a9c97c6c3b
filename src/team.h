/*-------------------------------------------------------------------------
 *
 * team.h
 *	  The workers of one migration, in shared memory: what their pacers
 *	  share so that the migration is paced as a whole (team.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_TEAM_H
#define MIGRATE_TEAM_H

#include "postgres.h"

#include "utils/timestamp.h"

/* The workers of one migration (team.c) */
typedef struct MigrateTeam MigrateTeam;

extern void migrate_team_init(void);
extern MigrateTeam *migrate_team_join(int64 id);
extern void migrate_team_count(MigrateTeam *t, int64 xacts, int64 xids);
extern void migrate_team_counts(MigrateTeam *t, int64 *xacts, int64 *xids);
extern int	migrate_team_members(MigrateTeam *t);
extern void migrate_team_decide(MigrateTeam *t, TimestampTz rest_until,
								double wal_budget);
extern void migrate_team_follow(MigrateTeam *t, TimestampTz *rest_until,
								double *wal_budget);

#endif							/* MIGRATE_TEAM_H */
