/*-------------------------------------------------------------------------
 *
 * args.h
 *	  Arguments of the SQL-callable functions, read and checked (args.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_ARGS_H
#define MIGRATE_ARGS_H

#include "migrate.h"

#include "fmgr.h"

extern char *migrate_text_arg(FunctionCallInfo fcinfo, int n, const char *what);
extern int64 migrate_interval_arg_ms(FunctionCallInfo fcinfo, int n,
									 const char *what, int64 min_ms,
									 int64 max_ms, const char *range);
extern int32 migrate_batch_size_arg(FunctionCallInfo fcinfo, int n);
extern int32 migrate_workers_arg(FunctionCallInfo fcinfo, int n);

#endif							/* MIGRATE_ARGS_H */
