/*-------------------------------------------------------------------------
 *
 * replication.h
 *	  What a migration owes the server's replication (issue 22): the
 *	  synchronous standbys' confirmation, the standbys' lag in bytes and in
 *	  the age of their replies, the WAL replication slots keep, and the
 *	  timeline a migration runs on.
 *
 * replication_decide.c holds the decision, a pure function of a sample
 * and the limits (unit-tested outside the server, test/unit/
 * replication_test.c); replication.c takes the samples, holds the
 * settings, and the hooks the runner, the worker and the launcher call.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_REPLICATION_H
#define MIGRATE_REPLICATION_H

#include "postgres.h"

#include "utils/timestamp.h"

/* At most this many standbys and slots are looked at (the first ones) */
#define REPL_MAX_STANDBYS 32
#define REPL_MAX_SLOTS 64

/* A physical walsender as pg_stat_replication shows it */
typedef struct ReplStandby
{
	char		name[64];		/* application_name */
	uint64		sent;			/* sent_lsn */
	uint64		flush;			/* flush_lsn; 0: it reports none */
	uint64		replay;			/* replay_lsn; 0: it reports none */
	double		reply_age_s;	/* since its last reply; < 0: never */
} ReplStandby;

/* A replication slot as pg_replication_slots shows it */
typedef struct ReplSlot
{
	char		name[64];
	bool		logical;
	bool		active;
	bool		lost;			/* wal_status 'lost': it keeps nothing */
	uint64		lsn;			/* confirmed_flush_lsn (logical) or
								 * restart_lsn (physical); 0: none */
} ReplSlot;

/* One look at the server's replication */
typedef struct ReplSample
{
	TimestampTz at;
	uint64		insert_lsn;		/* the server's WAL insert position */
	uint64		own_commit_lsn; /* the end of this runner's last commit */
	bool		sync_wait;		/* synchronous standbys are configured and
								 * the migration's commits would wait */
	uint64		sync_lsn;		/* what they confirmed, as the migration's
								 * synchronous_commit counts it */
	int			nstandbys;
	ReplStandby standbys[REPL_MAX_STANDBYS];
	int			nslots;
	ReplSlot	slots[REPL_MAX_SLOTS];
} ReplSample;

/* The limits (the GUCs, in bytes and milliseconds) */
typedef struct ReplLimits
{
	int64		max_lag_ms;		/* migrate.max_replication_lag; 0: off */
	int64		max_lag_bytes;	/* migrate.max_replication_lag_bytes; 0: off */
	int64		max_sync_bytes; /* migrate.max_synchronous_lag; -1: off */
	int64		max_slot_bytes; /* migrate.max_slot_wal; 0: off */
	const char *ignore_slots;	/* migrate.ignore_slots: comma-separated */
} ReplLimits;

/* What holds a migration back, if anything */
typedef enum ReplHoldKind
{
	REPL_GO = 0,
	REPL_SYNC,					/* the synchronous standbys lack too much */
	REPL_SILENT,				/* a standby stopped answering */
	REPL_BEHIND,				/* a standby is too many bytes behind */
	REPL_SLOT_GONE,				/* a physical slot's standby is away */
	REPL_SLOT_FULL				/* a slot keeps too much WAL */
} ReplHoldKind;

typedef struct ReplDecision
{
	ReplHoldKind kind;
	char		who[64];		/* the standby or slot */
	int64		bytes;			/* how far ahead or behind, or kept */
	double		secs;			/* a silent standby: since its last reply */
	char		reason[256];	/* for throttled: stable while it holds */
} ReplDecision;

/* replication_decide.c */
extern void migrate_replication_decide(const ReplSample *s, const ReplLimits *l,
									   ReplDecision *d);
extern bool migrate_replication_slot_ignored(const char *list, const char *name);

/* replication.c: settings */
extern int	migrate_max_replication_lag_kb;
extern int	migrate_max_synchronous_lag_kb;
extern int	migrate_max_slot_wal_kb;
extern char *migrate_ignore_slots;
extern void migrate_replication_define_gucs(void);

/* replication.c: hooks */
extern void migrate_replication_worker_init(void);
extern char *migrate_replication_hold(const char *name, int64 *rest_ms);
extern void migrate_replication_before_release(void);
extern void migrate_replication_wait_own(void);
extern void migrate_replication_note_timeline(int64 id);
extern char *migrate_replication_resume_detail(int64 id, const char *name);

#endif							/* MIGRATE_REPLICATION_H */
