/*-------------------------------------------------------------------------
 *
 * verify.h
 *	  The check of a migration: verification walks (in the foreground or
 *	  in a verify worker), counting passes and catch-up passes (verify.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_VERIFY_H
#define MIGRATE_VERIFY_H

#include "migrate.h"

/* Keys of failing rows a verification keeps as a sample */
#define MIGRATE_VERIFY_SAMPLE 10

/* A verification's walk over a table, and what it found so far */
typedef struct VerifyWalk
{
	Migration  *m;				/* cursor: the last key checked */
	MemoryContext cxt;			/* where the cursor and sample live */
	int64		checked;
	int64		failing;
	Jsonb	   *sample;			/* keys of the first failing rows */
} VerifyWalk;

/* Passes of a migration's walk (batch.c asks) */
extern bool migrate_counting_pass(const Migration *m);
extern bool migrate_catch_up_next_pass(const Migration *m);
extern void migrate_verify_range(Migration *m, Oid relid, Jsonb *lower,
								 Jsonb *upper, int64 *checked, int64 *failing,
								 Jsonb **sample);

/* Verifications (api.c) */
extern void migrate_verify_walk(Migration *m, VerifyWalk *w);
extern void migrate_start_verify_worker(Migration *m);
extern void migrate_stop_verify_worker(const Migration *m);

#endif							/* MIGRATE_VERIFY_H */
