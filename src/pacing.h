/*-------------------------------------------------------------------------
 *
 * pacing.h
 *	  How big a runner's next batch is and how long it rests before it
 *	  (pacing.c: the decisions, pure functions of the samples and batches
 *	  they are given and of the times these carry; pacing_sample.c: the
 *	  samples, read from the server's statistics).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_PACING_H
#define MIGRATE_PACING_H

#include "postgres.h"

#include "utils/timestamp.h"

#include "team.h"

struct Migration;

/* The server is sampled at most this often */
#define PACER_SAMPLE_INTERVAL_MS 200


/*
 * The server's transaction counts at one moment (pacing.c): the rate of
 * the others' work is the difference of two of them, less the runner's own
 */
typedef struct PacerCount
{
	TimestampTz at;				/* when they were read; 0: never */
	int64		xacts;			/* transactions in the cluster's statistics */
	int64		own_xacts;		/* of them, ours */
	int64		xids;			/* transaction ids assigned */
	int64		own_xids;		/* of them, ours */
} PacerCount;

/*
 * One look at the server (pacing_sample.c): its counts, the other sessions
 * at work and what they wait on, and the standbys' lag
 */
typedef struct PacerSample
{
	TimestampTz at;
	int64		xacts;			/* transactions in the cluster's statistics */
	int64		xids;			/* transaction ids assigned */
	int64		own_xacts;		/* of them, the runner's (and its team's) */
	int64		own_xids;
	int64		active;			/* other sessions at work now */
	const char *cause;			/* their most common wait, or NULL */
	double		replication_lag_s;	/* largest standby replay lag */
} PacerSample;

/* What a runner remembers between batches to size and pace them */
typedef struct Pacer
{
	bool		initialized;
	MigrateTeam *team;			/* the migration's workers, or NULL */
	bool		follows;		/* a helper: the runner paces the team */
	double		team_budget;	/* the runner's budget, as a helper saw it */
	bool		adaptive;		/* the batch size follows the batch time */
	int32		size;			/* size of the next batch, when adaptive */
	int32		min_size;
	double		best_per_row_us;	/* recent best time per row */
	PacerCount	last;			/* when the server was last looked at */
	bool		others_busy;	/* other sessions were at work */
	double		others_rate;	/* their transactions per second */
	int			busy_samples;	/* samples in a row above the busy rate */
	double		replication_lag_s;	/* largest standby replay lag */
	char		cause[64];		/* most common wait of other active sessions */
	/* the automatic WAL budget (pacing.c) */
	double		peak_wal_rate;	/* own WAL bytes per second of batch time */
	double		wal_budget;		/* bytes per second; 0: none */
	bool		harmless;		/* none, as the workload kept its rate with
								 * the migration at full speed */
	double		baseline_rate;	/* others' xacts/s while we rest; -1 unknown */
	TimestampTz baseline_at;	/* when it was measured */
	double		workload_share; /* others' rate / baseline, last period */
	TimestampTz probe_start;	/* a probe (full rest) since; 0: none */
	bool		probe_counting; /* past its settling time */
	bool		probe_early;	/* the baseline looks out of date */
	PacerCount	probe;			/* counts when the probe began counting */
	PacerCount	period;			/* counts when the budget's period began */
	bool		count_xids;		/* the workload writes: count its xids */
	char	   *reason;			/* why we rest, for migrate_status */
	double		last_budget;	/* WAL bytes/s allowed at the last batch */
} Pacer;

/* pacing.c: batch sizes and rests */
extern void migrate_pacer_init(Pacer *p, const struct Migration *m);
extern int32 migrate_pacer_batch_size(Pacer *p, const struct Migration *m);
extern void migrate_pacer_observe(Pacer *p, const PacerSample *s);
extern char *migrate_pacer_hold(Pacer *p, const struct Migration *m, int64 *rest_ms);
extern int64 migrate_pacer_after_batch(Pacer *p, const struct Migration *m,
									   int64 rows, int64 elapsed_us,
									   int64 wal_bytes);
extern void migrate_pacer_lock_failed(Pacer *p);
extern int32 migrate_pacer_next_size(const struct Migration *m, int32 size,
									 int64 rows, int64 elapsed_us,
									 double target_us);
extern int64 migrate_pacer_after_vacuum(Pacer *p, int64 elapsed_us, int64 wal_bytes);

/* pacing_sample.c: what the decisions are made from */
extern void migrate_pacer_sample(Pacer *p, int64 own_xacts, int64 own_xids);

/* GUCs that hold every runner back (migrate.c) */
extern bool migrate_pause_all;
extern int	migrate_max_replication_lag_ms;

#endif							/* MIGRATE_PACING_H */
