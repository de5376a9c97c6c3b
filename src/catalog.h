/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  Reads and writes of migrate.migrations, migrate.events, migrate.undo
 *	  and migrate.errors (catalog.c).
 *
 * Every statement runs through SPI as the catalog owner (the extension's
 * owner), whatever role the caller is: the caller must be connected to
 * SPI and inside a transaction.  Unless a function says otherwise, it
 * neither checks the caller's rights (security.c does) nor commits.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_CATALOG_H
#define MIGRATE_CATALOG_H

#include "migrate.h"

/* Most arguments a cached catalog statement may take */
#define MIGRATE_MAX_CACHED_ARGS 24

struct VerifyWalk;

/*
 * States of a background verification, as migrate.migrations.verify_state
 * stores them (NULL: none yet); the transitions between them are checked
 * in one table (catalog.c), as the migration's own states are.
 */
typedef enum VerifyState
{
	VERIFY_NONE,
	VERIFY_RUNNING,
	VERIFY_DONE,
	VERIFY_FAILED
} VerifyState;

#define VERIFY_NSTATES (VERIFY_FAILED + 1)

/* States, by name and back */
extern const char *migrate_state_name(MigrateState state);

/* Statements as the catalog owner */
extern int	migrate_execute_cached(const char *sql, int nargs, Oid *types,
								   Datum *values, const char *nulls,
								   bool custom_plan);
extern void migrate_catalog_exec(const char *sql, int nargs, Oid *types,
								 Datum *values, const char *nulls,
								 int expected);
extern void migrate_server_read(const char *sql, int nargs, Oid *types,
								Datum *values, const char *nulls);

/* Loading a migration */
extern Migration *migrate_catalog_load(const char *name, bool for_update,
									   bool missing_ok);
extern Migration *migrate_catalog_load_by_id(int64 id, bool for_update);
extern void migrate_report_missing(const char *name);
extern void migrate_check_name_length(const char *name);
extern Datum migrate_catalog_row_datum(int64 id);
extern List *migrate_catalog_running_names(MemoryContext cxt);
extern int64 migrate_catalog_table_size(const Migration *m);

/* Definitions */
extern int64 migrate_catalog_store(const MigrationDef *def,
								   const Migration *existing);
extern void migrate_catalog_delete(const Migration *m);
extern void migrate_catalog_update_key_types(const Migration *m, List *key_types);
extern void migrate_catalog_set_key_types(const Migration *m, List *key_types);
extern void migrate_catalog_set_batch_size(Migration *m, int32 size);

/* States and events */
extern void migrate_catalog_log_event(const char *name, Oid owner,
									  const char *event, const char *detail);
extern void migrate_catalog_log_event_by(const char *name, Oid owner,
										 Oid actor, const char *event,
										 const char *detail);
extern void migrate_catalog_transition(Migration *m, MigrateState to,
									   const char *event, const char *detail);
extern void migrate_catalog_mark_started(Migration *m, bool restart,
										 int64 estimate, List *series_rest,
										 Oid actor);
extern void migrate_catalog_start_foreground(Migration *m, int64 total);
extern void migrate_catalog_forget_run(Migration *m);
extern void migrate_catalog_set_runner(Migration *m, int pid, const char *event);
extern void migrate_catalog_clear_runner(Migration *m);
extern void migrate_catalog_set_throttled(const Migration *m, const char *why);

/* Batches: the cursor and counters, in the batch's transaction */
extern void migrate_catalog_record_batch(Migration *m, const BatchResult *res);
extern void migrate_catalog_add_changed(const Migration *m, int64 changed);
extern void migrate_catalog_count_vacuum(int64 id);

/* Rows set aside (migrate.errors) */
extern void migrate_catalog_add_error(const Migration *m, Datum key,
									  const char *phase, const ErrorData *edata);
extern int64 migrate_catalog_skipped_rows(const Migration *m, int64 **ids,
										  Jsonb ***keys);
extern void migrate_catalog_settle_skipped_row(int64 id, const ErrorData *edata);
extern int64 migrate_catalog_delete_errors(const Migration *m, bool revert_only);

/* Before-images and reverts (migrate.undo) */
extern void migrate_catalog_add_images(const Migration *m, Datum keys,
									   Datum befores, Datum afters);
extern bool migrate_catalog_next_undo(const Migration *m, int32 batch_size,
									  Datum *images, int64 *lowest,
									  int64 *count);
extern int64 migrate_catalog_settle_revert(const Migration *m, int64 lowest,
										   Datum restored, Datum failed);
extern void migrate_catalog_record_revert(Migration *m, const BatchResult *res,
										  int64 new_cursor);
extern int64 migrate_catalog_undo_left(const Migration *m);
extern bool migrate_catalog_has_undo(const Migration *m);
extern void migrate_catalog_begin_revert(Migration *m, bool keep_undo);
extern void migrate_catalog_end_revert(Migration *m);
extern int64 migrate_catalog_forget_undo(const Migration *m);

/* Verification (the verify worker, verify.c) */
extern void migrate_catalog_set_verified(const Migration *m,
										 const struct VerifyWalk *w);
extern void migrate_catalog_begin_verify(const Migration *m, int pid);
extern void migrate_catalog_verify_failed(int64 id, int pid, const char *message);
extern int	migrate_catalog_verify_worker_pid(const Migration *m);
extern bool migrate_catalog_verify_running(const Migration *m);
extern bool migrate_catalog_worker_visible(int pid, const char *backend_type,
										   Oid role);

/* Series */
extern void migrate_catalog_set_series(Migration *m, List *rest);
extern bool migrate_catalog_pending_in_series(const char *name);
extern void migrate_catalog_end_series(int64 id);
extern void migrate_catalog_stop_series(int64 prev_id, const char *prev_name,
										Oid prev_owner, const char *why);

#endif							/* MIGRATE_CATALOG_H */
