/*-------------------------------------------------------------------------
 *
 * batch.h
 *	  Running one batch of a migration: the change over one key range, as
 *	  the migration's owner, recorded with its cursor in the same
 *	  transaction (batch.c).  Also the helpers the other statement runners
 *	  (revert.c, preview.c, verify.c, estimate.c, ranges.c) share.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_BATCH_H
#define MIGRATE_BATCH_H

#include "migrate.h"
#include "statements.h"

/* The next batch of m, whatever its kind: change, task, revert or pass */
extern void migrate_run_next(Migration *m, int32 batch_size, BatchResult *res);
extern void migrate_run_batch(Migration *m, int32 batch_size, BatchResult *res);
extern void migrate_retry_rows(Migration *m, int64 *retried, int64 *fixed,
							   int64 *failing);

/* Running statements as the migration's owner */
extern int	migrate_run_owner_sql(const Migration *m, const char *sql, int nargs,
								  Oid *types, Datum *values, const char *nulls,
								  bool cached);
extern void migrate_set_lock_timeout(int64 ms);
extern void migrate_fire_deferred(const Migration *m);
extern void migrate_pin_key_formats(void);
extern void migrate_pin_image_formats(void);
extern bool migrate_find_batch_bound(const Migration *m, BatchSql *b,
									 int32 batch_size, Datum *bound, int64 *rows);

/* Errors: retried in a subtransaction, or rolled back and kept */
extern ErrorData *migrate_try_in_subxact(void (*work) (void *arg), void *arg,
										 bool row_errors_only,
										 MemoryContext errcxt, bool log);
extern ErrorData *migrate_try_rolled_back(void (*work) (void *arg), void *arg);

#endif							/* MIGRATE_BATCH_H */
