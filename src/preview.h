/*-------------------------------------------------------------------------
 *
 * preview.h
 *	  What a migration would do, without doing it: EXPLAIN of a batch and
 *	  a dry run's before and after images (preview.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_PREVIEW_H
#define MIGRATE_PREVIEW_H

#include "migrate.h"

/* Callback a dry run uses to hand back one (key, before, after) row */
typedef void (*DryRunRowCallback) (void *arg, Datum key, bool key_null,
								   Datum before, bool before_null,
								   Datum after, bool after_null);

extern void migrate_explain_check(Migration *m);
extern void migrate_explain_batch(Migration *m, int32 batch_size,
								  void (*cb) (void *arg, const char *line),
								  void *arg);
extern void migrate_dry_run_batch(Migration *m, int32 batch_size,
								  int32 max_rows, DryRunRowCallback cb,
								  void *arg);

#endif							/* MIGRATE_PREVIEW_H */
