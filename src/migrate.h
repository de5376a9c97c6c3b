/*-------------------------------------------------------------------------
 *
 * migrate.h
 *	  Declarations shared by the migrate extension's source files.
 *
 * A migration is one row of migrate.migrations.  The C code reads that row
 * into a Migration struct, runs batches against it and writes the cursor
 * and counters back in the same transaction as the batch.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_H
#define MIGRATE_H

#include "postgres.h"

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "nodes/primnodes.h"
#include "postmaster/bgworker.h"
#include "storage/lock.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "horizon.h"
#include "pacing.h"

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

/* Most migrations one series may have */
#define MIGRATE_MAX_SERIES			1000

/* locktag_field4 of the advisory lock a runner holds for its migration */
#define MIGRATE_RUNNER_LOCK_KIND	28007

/*
 * locktag_field4 of the advisory lock each helper worker of a migration
 * holds, shared (28008 is the start lock, launch.c)
 */
#define MIGRATE_HELPER_LOCK_KIND	28009

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

/* One range of a migration's keys, as read from migrate.ranges */
typedef struct MigrateRange
{
	int64		id;
	char	   *relation;		/* quoted, qualified: the table or a partition */
	Oid			relid;			/* the partition; InvalidOid: the table */
	Jsonb	   *lower;			/* NULL: from the first key */
	Jsonb	   *upper;			/* NULL: to the last key */
	Jsonb	   *cursor;			/* the last key done, or NULL */
	bool		done;
	int64		rows_left;		/* estimated */
} MigrateRange;

/* A partition walked in ranges, as planned (migrate.ranges) */
typedef struct PlannedLeaf
{
	Oid			relid;
	char	   *relation;		/* its name when planned */
	char	   *bound;			/* its bounds as planned; NULL: unknown */
	bool		done;			/* all its ranges are done */
	bool		left_table;		/* one was closed by 0.3 when it left */
} PlannedLeaf;

/* What a runner found when it looked for a range to walk (ranges.c) */
typedef enum RangePick
{
	RANGE_NONE,					/* the migration is not walked in ranges */
	RANGE_PICKED,				/* the Migration now walks one range */
	RANGE_SPLIT,				/* a range was split: look again */
	RANGE_BUSY,					/* every range left is in another's batch */
	RANGE_WALK_OVER				/* every range is done */
} RangePick;

/* A migration's definition, as migrate_register checks and stores it */
typedef struct MigrationDef
{
	char	   *name;
	char	   *action;			/* update, delete or task */
	Oid			relid;			/* InvalidOid for a task */
	char	   *relation;		/* quoted, qualified; NULL for a task */
	List	   *key_columns;	/* char *, in key order */
	List	   *key_types;		/* their signatures (key_types.c) */
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

/* A verification's walk over a table, and what it found so far (verify.c) */
typedef struct VerifyWalk
{
	Migration  *m;				/* cursor: the last key checked */
	MemoryContext cxt;			/* where the cursor and sample live */
	int64		checked;
	int64		failing;
	Jsonb	   *sample;			/* keys of the first failing rows */
} VerifyWalk;

#define MIGRATE_VERIFY_SAMPLE 10



/* What one step of a runner came to (runner.c) */
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

/* Callback a dry run uses to hand back one (key, before, after) row */
typedef void (*DryRunRowCallback) (void *arg, Datum key, bool key_null,
								   Datum before, bool before_null,
								   Datum after, bool after_null);

/* migrate.c: GUCs */
extern int	migrate_max_workers;
extern int	migrate_max_workers_per_role;
extern int	migrate_max_lock_retries;
extern int	migrate_log_interval_ms;

/* team.c: the workers of one migration, paced as a whole */
extern void migrate_team_init(void);
extern MigrateTeam *migrate_team_join(int64 id);
extern void migrate_team_count(MigrateTeam *t, int64 xacts, int64 xids);
extern void migrate_team_counts(MigrateTeam *t, int64 *xacts, int64 *xids);

/* security.c: roles, privileges and search_path */
typedef struct RoleSwitch
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_nestlevel;
	bool		revert_gucs;	/* undo every setting on restore */
} RoleSwitch;

extern Oid	migrate_catalog_owner(void);
extern void migrate_become_catalog_owner(RoleSwitch *rs);
extern void migrate_set_runner_commits(bool on);
extern bool migrate_owner_commits(const Migration *m);
extern void migrate_become_migration_owner(RoleSwitch *rs, const Migration *m);
extern void migrate_restore_role(RoleSwitch *rs);
extern void migrate_check_may_manage(const Migration *m, const char *what);
extern Migration *migrate_load_to_manage(const char *name, const char *what,
										 bool for_update);
extern void migrate_check_table_privilege(Oid relid, const char *action);
extern void migrate_check_statement_privileges(const Migration *m,
											   const char *sql, int nparams,
											   Oid *types);

/* catalog.c: access to migrate.migrations and migrate.events */
#define MIGRATE_MAX_CACHED_ARGS 24
/* catalog_ranges.c: access to migrate.ranges */
extern int64 migrate_catalog_add_range(const Migration *m, const char *relation,
									   Oid relid, Jsonb *lower, Jsonb *upper,
									   int64 rows_estimate, int64 split_from);
extern bool migrate_catalog_ranges_have_bound(void);
extern void migrate_catalog_set_range_bound(int64 id, const char *bound);
extern List *migrate_catalog_planned_leaves(const Migration *m);
extern int64 migrate_catalog_count_ranges_locked(const Migration *m);
extern int64 migrate_catalog_count_ranges(const Migration *m);
extern bool migrate_catalog_take_range(const Migration *m, int64 prefer,
									   bool spread, bool wait, MigrateRange *r);
extern bool migrate_catalog_lock_range(const Migration *m, int64 id,
									   MigrateRange *r);
extern int64 migrate_catalog_largest_range(const Migration *m, int64 *rows_left);
extern int64 migrate_catalog_ranges_left(const Migration *m);
extern void migrate_catalog_record_range(Migration *m, const BatchResult *res);
extern int64 migrate_catalog_split_range(const Migration *m, const MigrateRange *r,
										 Jsonb *middle, int64 rows_before,
										 int64 rows_after);
extern void migrate_catalog_forget_ranges(int64 id);
extern void migrate_catalog_set_workers(Migration *m, int32 workers);
extern void migrate_catalog_set_workers_note(int64 id, const char *note);

extern int	migrate_execute_cached(const char *sql, int nargs, Oid *types,
								   Datum *values, const char *nulls,
								   bool custom_plan);
extern Migration *migrate_catalog_load(const char *name, bool for_update,
									   bool missing_ok);
extern void migrate_report_missing(const char *name);
extern void migrate_check_name_length(const char *name);
extern Migration *migrate_catalog_load_by_id(int64 id, bool for_update);
extern Datum migrate_catalog_row_datum(int64 id);
extern void migrate_catalog_log_event(const char *name, Oid owner,
									  const char *event, const char *detail);
extern void migrate_catalog_log_event_by(const char *name, Oid owner,
										 Oid actor, const char *event,
										 const char *detail);
extern const char *migrate_state_name(MigrateState state);
extern MigrateState migrate_state_parse(const char *name);
extern void migrate_catalog_transition(Migration *m, MigrateState to,
									   const char *event, const char *detail);
extern void migrate_catalog_exec(const char *sql, int nargs, Oid *types,
								 Datum *values, const char *nulls,
								 int expected);
extern void migrate_catalog_start_foreground(Migration *m, int64 total);
extern void migrate_catalog_set_batch_size(Migration *m, int32 size);
extern int64 migrate_catalog_undo_left(const Migration *m);
extern bool migrate_catalog_has_undo(const Migration *m);
extern int64 migrate_catalog_delete_errors(const Migration *m, bool revert_only);
extern void migrate_catalog_forget_run(Migration *m);
extern void migrate_catalog_mark_started(Migration *m, bool restart,
										 int64 estimate, List *series_rest,
										 Oid actor);
extern void migrate_catalog_set_runner(Migration *m, int pid, const char *event);
extern void migrate_catalog_begin_revert(Migration *m, bool keep_undo);
extern void migrate_catalog_end_revert(Migration *m);
extern int64 migrate_catalog_forget_undo(const Migration *m);
extern void migrate_catalog_delete(const Migration *m);
extern int64 migrate_catalog_store(const MigrationDef *def, bool replace);
extern void migrate_catalog_clear_runner(Migration *m);
extern void migrate_catalog_stop_series(int64 prev_id, const char *prev_name,
										Oid prev_owner, const char *why);
extern List *migrate_catalog_running_names(MemoryContext cxt);
extern bool migrate_catalog_next_undo(const Migration *m, int32 batch_size,
									  Datum *images, int64 *lowest,
									  int64 *count);
extern void migrate_catalog_add_images(const Migration *m, Datum keys,
									   Datum befores, Datum afters);
extern int64 migrate_catalog_skipped_rows(const Migration *m, int64 **ids,
										  Jsonb ***keys);
extern void migrate_catalog_settle_skipped_row(int64 id, const ErrorData *edata);
extern void migrate_catalog_add_changed(const Migration *m, int64 changed);
extern void migrate_catalog_count_vacuum(int64 id);
extern int64 migrate_catalog_table_size(const Migration *m);
extern void migrate_catalog_set_verified(const Migration *m, const VerifyWalk *w);
extern void migrate_catalog_begin_verify(const Migration *m, int pid);
extern void migrate_catalog_verify_failed(int64 id, int pid, const char *message);
extern int	migrate_catalog_verify_worker_pid(const Migration *m);
extern bool migrate_catalog_worker_visible(int pid, const char *backend_type, Oid role);
extern bool migrate_catalog_verify_running(const Migration *m);
extern int64 migrate_catalog_settle_revert(const Migration *m, int64 lowest,
										   Datum restored, Datum failed);
extern void migrate_catalog_update_key_types(const Migration *m, List *key_types);
extern void migrate_catalog_set_key_types(const Migration *m, List *key_types);
extern void migrate_catalog_set_series(Migration *m, List *rest);
extern bool migrate_catalog_pending_in_series(const char *name);
extern void migrate_catalog_end_series(int64 id);
extern void migrate_catalog_set_throttled(const Migration *m, const char *why);
extern void migrate_catalog_record_batch(Migration *m, const BatchResult *res);
extern void migrate_catalog_record_revert(Migration *m, const BatchResult *res,
										  int64 new_cursor);
extern void migrate_catalog_add_error(const Migration *m, Datum key,
									  const char *phase, const ErrorData *edata);
extern bool migrate_catalog_is_v2(void);
extern bool migrate_catalog_is_v3(void);
extern void migrate_series_datums(List *members, Datum *names, bool *names_null,
								  Datum *ids, bool *ids_null);
extern char *migrate_text_or_null(Datum d, bool isnull);

/* batch.c: building and running batches */
extern List *migrate_find_key_columns(Oid relid);
extern void migrate_validate_clause(const char *clause, bool is_set,
									List *key_columns);
extern void migrate_validate_task_sql(const char *sql);
extern void migrate_validate_row_fn(Oid fnoid, Oid relid);
extern void migrate_explain_check(Migration *m);
extern RangeVar *migrate_relation_rangevar(const char *relation);
extern Oid	migrate_resolve_relation(const Migration *m, bool missing_ok);
extern int64 migrate_estimate_rows(Oid relid);
extern void migrate_run_batch(Migration *m, int32 batch_size, BatchResult *res);
extern void migrate_run_task(Migration *m, BatchResult *res);
extern void migrate_revert_batch(Migration *m, int32 batch_size, BatchResult *res);
extern void migrate_run_next(Migration *m, int32 batch_size, BatchResult *res);
extern bool migrate_error_is_row_error(const ErrorData *edata);
extern ErrorData *migrate_try_in_subxact(void (*work) (void *arg), void *arg,
										 bool row_errors_only,
										 MemoryContext errcxt, bool log);
extern ErrorData *migrate_try_rolled_back(void (*work) (void *arg), void *arg);
extern void migrate_retry_rows(Migration *m, int64 *retried, int64 *fixed,
							   int64 *failing);
extern void migrate_explain_batch(Migration *m, int32 batch_size,
								  void (*cb) (void *arg, const char *line),
								  void *arg);
extern void migrate_dry_run_batch(Migration *m, int32 batch_size,
								  int32 max_rows, DryRunRowCallback cb,
								  void *arg);

/* verify.c: the check, verification and catch-up passes */
extern void migrate_validate_check(MigrationDef *def);
extern bool migrate_verify_batch(VerifyWalk *w, int32 batch_size);
extern void migrate_verify_walk(Migration *m, VerifyWalk *w);
extern bool migrate_counting_pass(const Migration *m);
extern bool migrate_catch_up_next_pass(const Migration *m);
extern void migrate_verify_range(Migration *m, Oid relid, Jsonb *lower,
								 Jsonb *upper, int64 *checked, int64 *failing,
								 Jsonb **sample);
extern void migrate_stop_verify_worker(const Migration *m);
extern void migrate_start_verify_worker(Migration *m);

/* estimate.c: what a migration will cost, before it starts */
typedef struct Estimate
{
	int64		rows_total;
	int64		rows_to_change;
	bool		measured;		/* a batch was run to measure */
	double		ms_per_row;
	bool		has_wal_per_row;
	double		wal_per_row;
	int64		expected_ms;
	int64		expected_wal;
	int64		expected_size;
} Estimate;

extern void migrate_estimate_run(Migration *m, Estimate *e);

/* ranges.c: a migration's walk in ranges, for parallel workers */
#define MIGRATE_MAX_WORKERS_PER_MIGRATION 64
extern bool migrate_ranges_apply(const Migration *m);
extern RangePick migrate_ranges_pick(Migration *m, int64 prefer, bool may_plan,
									 bool by_hand, int32 batch_size);
/*
 * The most ranges one migration may have (issue 20); migrate_split_range
 * also leaves at least the migration's min_batch_size rows on each side
 */
#define MIGRATE_MAX_RANGES 1024
extern int64 migrate_ranges_split(Migration *m, int64 range_id, int32 min_rows,
								  bool exact);

/* keys.c: the key's types, recorded and checked */
extern List *migrate_key_types(Oid relid, List *key_columns);
extern void migrate_check_key_types(const Migration *m);

/* What a migration worker is told at start, through bgw_extra (launch.c) */
typedef struct WorkerArgs
{
	Oid			dbid;
	Oid			connect_as;		/* role to connect as: the owner */
	TransactionId start_xid;	/* the transaction that starts us */
	int64		id;				/* migrate.migrations.id */
	bool		helper;			/* walks ranges for the runner (ranges.c) */
	int			runner_pid;		/* a helper's: the runner that started it */
	char		name[MIGRATE_MAX_NAME_LEN + 1];
} WorkerArgs;

extern void migrate_worker_connect(WorkerArgs *args, const char *appname);

/* runner.c: the steps of a migration, for workers and CALL migrate_run */
extern void migrate_runner_init(Runner *r, int64 id, const char *name,
								bool in_worker, MemoryContext keepcxt);
extern RunnerStep migrate_runner_step(Runner *r, bool stop_requested);
extern void migrate_runner_count_own(Runner *r);
extern bool migrate_runner_claims(const Migration *m);
extern bool migrate_helper_claims(const Migration *m, int runner_pid);
extern void migrate_runner_fail(int64 id, const char *message, bool helper);
extern char *migrate_format_duration(int64 us);

/* launch.c, runner_lock.c, worker.c: background workers and runner locks */
extern bool migrate_handing_over;
extern bool migrate_error_is_retryable(const ErrorData *edata);
extern void migrate_runner_locktag(LOCKTAG *tag, Oid dbid, int64 id);
extern bool migrate_runner_active(int64 id);
extern int	migrate_runner_pid(int64 id);
extern void migrate_runner_lock(int64 id);
extern void migrate_runner_unlock(int64 id);
extern void migrate_runner_release(int64 id, Migration *m);
extern void migrate_helper_lock(int64 id);
extern int	migrate_helper_count(int64 id, int pid);
extern void migrate_worker_template(BackgroundWorker *w,
									const char *function, const char *type);
extern int	migrate_launch_worker(Migration *m);
extern void migrate_check_worker_can_connect(const Migration *m);
extern void migrate_lock_worker_start(bool lock);
extern void migrate_check_worker_slots(const Migration *m, bool verify);
extern void migrate_launch_helpers(const Migration *m, int n,
								   BackgroundWorkerHandle **handles, int *started,
								   char **note);
extern void migrate_register_launcher(void);

/* args.c: arguments of the SQL functions */
extern char *migrate_text_arg(FunctionCallInfo fcinfo, int n, const char *what);
extern int64 migrate_interval_arg_ms(FunctionCallInfo fcinfo, int n,
									 const char *what, int64 min_ms,
									 int64 max_ms, const char *range);
extern int32 migrate_batch_size_arg(FunctionCallInfo fcinfo, int n);
extern int32 migrate_workers_arg(FunctionCallInfo fcinfo, int n);

/* register.c: a migration's definition, read and checked */
extern void migrate_register_args(FunctionCallInfo fcinfo, MigrationDef *def);
extern void migrate_validate_definition(MigrationDef *def);

/* launch.c: starting a migration in a worker */
extern int64 migrate_progress_total(const Migration *m);
extern void migrate_start_locked(Migration *m, bool restart, List *series_rest,
								 Oid starter, const char *event,
								 const char *detail);

#endif							/* MIGRATE_H */
