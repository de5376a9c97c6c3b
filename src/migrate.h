/*-------------------------------------------------------------------------
 *
 * migrate.h
 *	  The migration, as every module of the extension sees it: its states,
 *	  its row of migrate.migrations read into a Migration, its definition
 *	  as registered (MigrationDef), what one batch did (BatchResult), and
 *	  the GUCs (migrate.c).
 *
 * A migration is one row of migrate.migrations.  The C code reads that row
 * into a Migration struct, runs batches against it and writes the cursor
 * and counters back in the same transaction as the batch.  Each module's
 * functions are declared in its own header (catalog.h, runner.h, ...);
 * docs/design.md lists them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_H
#define MIGRATE_H

#include "postgres.h"

#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/*
 * States of a migration.  migrate.migrations.state stores their names
 * (migrate_state_name); the transitions between them are checked by
 * migrate_catalog_transition, in one table (catalog.c).
 */
typedef enum MigrateState
{
	MIGRATE_REGISTERED,
	MIGRATE_RUNNING,
	MIGRATE_PAUSED,
	MIGRATE_CANCELLED,
	MIGRATE_DONE,
	MIGRATE_FAILED,
	MIGRATE_REVERTED
} MigrateState;

#define MIGRATE_NSTATES (MIGRATE_REVERTED + 1)

/* Kinds of change, as stored in migrate.migrations.action */
#define MIGRATE_ACTION_UPDATE		"update"
#define MIGRATE_ACTION_DELETE		"delete"
#define MIGRATE_ACTION_TASK			"task"

/* Milliseconds in a day, for interval arguments */
#define MSECS_PER_DAY (INT64CONST(86400000))

/* Longest migration name, in bytes; it must fit a worker's bgw_extra */
#define MIGRATE_MAX_NAME_LEN		63

/* One migration, as read from migrate.migrations */
typedef struct Migration
{
	int64		id;
	char	   *name;
	char	   *action;			/* update, delete or task */
	char	   *relation;		/* quoted, qualified table name; NULL for a
								 * task */
	List	   *key_columns;	/* list of char *, in key order */
	char	   *set_clause;
	char	   *where_clause;
	char	   *row_fn;			/* qualified regprocedure text */
	char	   *sql;
	int32		batch_size;
	int64		pause_ms;
	int64		lock_timeout_ms;
	char	   *search_path;
	Oid			owner;
	MigrateState state;
	Jsonb	   *cursor;			/* NULL before the first batch */
	int64		processed;
	int64		changed;
	int64		batches;
	int32		worker_pid;		/* 0 when NULL */
	List	   *series_rest;	/* SeriesMember to run after this one */
	Oid			series_starter; /* who started the series, or InvalidOid */
	TimestampTz series_started_at;	/* when; 0 for a series before 0.3 */
	TimestampTz registered_at;	/* when this definition was registered */
	bool		adaptive;		/* batch size follows target_batch_time */
	int64		target_batch_ms;
	int32		min_batch_size;
	int32		max_batch_size;
	float4		busy_share;		/* share of time for batches on a busy server */
	char	   *throttled;		/* why the runner holds back, or NULL */
	int32		adapted_size;	/* size an adaptive runner chose, to record */
	int64		total_estimate; /* rows expected, or -1 if unknown */
	/* added in 0.2; a 0.1 catalog reads as the defaults */
	bool		catalog_v2;		/* the catalog has the 0.2 columns and tables */
	bool		skip_errors;	/* on_error = 'skip': set failing rows aside */
	bool		keep_before;	/* keep before-images in migrate.undo */
	bool		reverting;		/* batches restore before-images */
	bool		keep_undo;		/* a revert keeps the undo rows it applied */
	bool		has_revert_cursor;
	int64		revert_cursor;	/* lowest undo id a revert has handled */
	int64		restored;		/* rows a revert restored (column "reverted") */
	/* added in 0.3; an older catalog reads as NULLs */
	bool		catalog_v3;
	List	   *key_types;		/* "type COLLATE collation" per key column */
	bool		vacuum;			/* the worker vacuums the table as it goes */
	int64		max_wal_rate;	/* WAL bytes per second; 0: no budget;
								 * -1 (NULL): chosen by the pacer */
	/* verification and catch-up (0.3); an older catalog reads as none */
	char	   *check_clause;	/* holds for a migrated row, or NULL */
	bool		catch_up;		/* pass again over rows failing the check */
	int32		max_passes;		/* catch-up passes at most */
	int32		pass;			/* 0: the walk; then catch-up passes (verify.c) */
	int64		pass_changed;	/* rows changed (or found failing) this pass */
	/* parallel workers (0.3); an older catalog reads as one worker */
	Oid			relid;			/* the table registered; InvalidOid: unknown */
	int32		workers;		/* workers asked for */
	int64		ranges_total;	/* ranges of the walk (ranges.c); 0: none */
	/* while a batch walks one range (ranges.c); else 0 and NULL */
	int64		range_id;
	Oid			range_relid;	/* the partition it walks, or InvalidOid */
	Jsonb	   *upper;			/* the range's last key; NULL: the last key */
	bool		walk_over;		/* every range is done: the walk ends */
} Migration;

/* A migration's definition, as migrate_register checks and stores it */
typedef struct MigrationDef
{
	char	   *name;
	char	   *action;			/* update, delete or task */
	Oid			relid;			/* InvalidOid for a task */
	char	   *relation;		/* quoted, qualified; NULL for a task */
	List	   *key_columns;	/* char *, in key order */
	List	   *key_types;		/* their signatures (keys.c) */
	char	   *set_clause;
	char	   *where_clause;
	Oid			row_fn;
	char	   *row_fn_text;	/* qualified regprocedure text */
	char	   *sql;
	int32		batch_size;
	bool		adaptive;
	Datum		pause;			/* intervals, as given */
	Datum		lock_timeout;
	Datum		target_batch_time;
	int32		min_batch_size;
	int32		max_batch_size;
	float4		busy_share;
	bool		has_v2_options; /* called with on_error and keep_before */
	bool		skip_errors;
	bool		keep_before;
	bool		replace;
	bool		vacuum;
	int64		max_wal_rate;	/* -1: NULL */
	char	   *check_clause;	/* given, or derived from where_clause */
	bool		catch_up;
	int32		max_passes;
	int32		workers;
	char	   *search_path;	/* the registering session's */
	Oid			owner;			/* the registering role */
} MigrationDef;

/* One migration still to run in a series, pinned by id when it started */
typedef struct SeriesMember
{
	int64		id;				/* 0: not pinned (series started before 0.3) */
	char	   *name;
} SeriesMember;

/* Is m done, or reverted: nothing left to run? */
static inline bool
migrate_is_finished(const Migration *m)
{
	return m->state == MIGRATE_DONE ||
		m->state == MIGRATE_REVERTED;
}

/* The progress counter of m's current direction: rows processed or restored */
static inline int64
migrate_progress_done(const Migration *m)
{
	return m->reverting ? m->restored : m->processed;
}

/* What one batch did */
typedef struct BatchResult
{
	bool		done;			/* no rows were left after the cursor */
	int64		visited;		/* rows in the batch's key range */
	int64		changed;		/* rows written or deleted */
	int64		set_aside;	/* rows recorded in migrate.errors */
	Jsonb	   *new_cursor;		/* last key of the batch, or NULL */
	int64		wal_bytes;		/* WAL the batch wrote */
	bool		next_pass;		/* the walk ended: start a catch-up pass */
	int64		failing;		/* rows failing the check (a counting pass) */
	Jsonb	   *sample;			/* keys of the first of them, or NULL */
} BatchResult;

/* GUCs (migrate.c; those of the pacer are in pacing.h) */
extern int	migrate_max_workers;
extern int	migrate_max_workers_per_role;
extern int	migrate_max_lock_retries;
extern int	migrate_log_interval_ms;

#endif							/* MIGRATE_H */
