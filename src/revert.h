/*-------------------------------------------------------------------------
 *
 * revert.h
 *	  A revert's batch: before-images restored from migrate.undo, in the
 *	  batch's transaction with the revert cursor (revert.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_REVERT_H
#define MIGRATE_REVERT_H

#include "migrate.h"

extern void migrate_revert_batch(Migration *m, int32 batch_size,
								 BatchResult *res);

#endif							/* MIGRATE_REVERT_H */
