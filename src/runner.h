/*-------------------------------------------------------------------------
 *
 * runner.h
 *	  The steps of one migration's run, shared by its background workers
 *	  and by CALL migrate_run (runner.c).
 *
 * A step is one transaction, begun and committed by the caller (worker.c
 * or api.c), connected to SPI, as the role the caller runs as: the batch
 * itself switches to the migration's owner (batch.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_RUNNER_H
#define MIGRATE_RUNNER_H

#include "migrate.h"
#include "horizon.h"
#include "pacing.h"

/*
 * A vacuum of the runner's table is due once VACUUM could remove
 * 1/VACUUM_DUE_FRACTION of its rows, at least VACUUM_DUE_MIN_ROWS (runner.c
 * adds its other conditions; estimate.c expects vacuums by these)
 */
#define VACUUM_DUE_FRACTION 20
#define VACUUM_DUE_MIN_ROWS INT64CONST(10000)

/* What one step of a runner came to */
typedef enum RunnerStep
{
	RUNNER_GO_ON,				/* a batch ran, or a rest was asked for */
	RUNNER_RETRY,				/* the batch could not get its locks */
	RUNNER_DONE,				/* nothing is left: done or reverted */
	RUNNER_STOP					/* stopped by a user, or failed */
} RunnerStep;

/*
 * A runner of one migration: a background worker, or a session in CALL
 * migrate_run.  What it remembers between steps, and what the last step
 * left for its caller.
 */
typedef struct Runner
{
	int64		id;
	char		name[MIGRATE_MAX_NAME_LEN + 1];
	bool		in_worker;		/* reports to the log, not the client */
	bool		helper;			/* a helper worker: another process is the
								 * runner, this one only walks ranges */
	int			runner_pid;		/* a helper's: the runner that started it */
	int64		range_id;		/* the range it walked last, or 0 */
	bool		ranged;			/* the migration is walked in ranges */
	char	   *throttled_said; /* the reason last written to the catalog */
	MigrateTeam *team;			/* its migration's workers, or NULL */
	int64		changed_seen;	/* the migration's changed rows at the last
								 * step, or -1 */
	MemoryContext keepcxt;		/* outlives the steps' transactions */
	Pacer		pacer;
	char		held_for[128];	/* the last reason to hold back */
	int			lock_failures;	/* batches in a row that could not lock */
	int64		own_xacts;		/* transactions this runner committed */
	int64		own_xids;		/* transaction ids they used */
	TimestampTz started;
	int64		rows_at_start;	/* -1 until the first batch */
	int64		rows_this_step;
	TimestampTz last_report;
	DeadVersions dead;			/* row versions replaced since the last vacuum */
	char	   *vacuum_held;	/* who keeps a due vacuum from removing them */
	TimestampTz vacuum_held_at; /* when that was asked */
	int64		work_us;		/* time in batches since the last vacuum */
	int64		vacuum_us;		/* how long the last vacuum took */
	int64		looked_size;	/* table size at the last look (or vacuum) */
	int64		looked_rows;	/* dead.rows then */
	double		row_bytes;		/* the table's bytes per row at the first batch */
	/* left by the last step */
	char	   *vacuum_due;		/* vacuum this table (quoted, qualified) now */
	int64		pause_ms;		/* wait this long before the next step */
	ErrorData  *failure;		/* RUNNER_STOP by an error (in keepcxt) */
	char	   *summary;		/* RUNNER_DONE: "is done: ..." */
	List	   *series;			/* RUNNER_DONE: SeriesMember still to run */
	Oid			series_starter;
	TimestampTz series_since;
	Oid			owner;
} Runner;

extern void migrate_runner_init(Runner *r, int64 id, const char *name,
								bool in_worker, MemoryContext keepcxt);
extern RunnerStep migrate_runner_step(Runner *r, bool stop_requested);
extern void migrate_runner_count_own(Runner *r);
extern bool migrate_runner_claims(const Migration *m);
extern bool migrate_helper_claims(const Migration *m, int runner_pid);
extern void migrate_runner_fail(int64 id, const char *message, bool helper);
extern bool migrate_error_is_retryable(const ErrorData *edata);
extern char *migrate_format_duration(int64 us);

#endif							/* MIGRATE_RUNNER_H */
