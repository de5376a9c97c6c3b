/*-------------------------------------------------------------------------
 *
 * args.c
 *	  Reading and checking the arguments of migrate's SQL functions.
 *
 * Each helper errors out naming the argument when it is NULL or out of
 * range, in the words the SQL functions' documentation uses.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "datatype/timestamp.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "args.h"
#include "ranges.h"

/*
 * migrate_text_arg
 *		Return argument n as a C string, or error out naming it ("what")
 *		if it is NULL.
 */
char *
migrate_text_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/*
 * migrate_interval_arg_ms
 *		Interval argument n in milliseconds, checked against [min_ms, max_ms]
 *		("range" says that in words for the message).
 */
int64
migrate_interval_arg_ms(FunctionCallInfo fcinfo, int n, const char *what,
						int64 min_ms, int64 max_ms, const char *range)
{
	Interval   *iv;
	int64		ms;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	iv = PG_GETARG_INTERVAL_P(n);
	if (iv->month > 1200 || iv->month < -1200 || iv->day > 36500 || iv->day < -36500)
		ms = iv->month < 0 || iv->day < 0 ? min_ms - 1 : max_ms + 1;
	else
		ms = iv->time / 1000 +
			((int64) iv->day + (int64) iv->month * DAYS_PER_MONTH) * MSECS_PER_DAY;
	if (ms < min_ms || ms > max_ms)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between %s", what, range)));
	return ms;
}

/*
 * migrate_batch_size_arg
 *		Batch size argument n, checked: not null, greater than zero.
 */
int32
migrate_batch_size_arg(FunctionCallInfo fcinfo, int n)
{
	int32		size;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("batch_size must not be null")));
	size = PG_GETARG_INT32(n);
	if (size <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be greater than zero"),
				 errdetail("The batch_size given was %d.", size)));
	return size;
}

/*
 * migrate_workers_arg
 *		Argument n of a SQL function, a number of workers (1 to 64).
 */
int32
migrate_workers_arg(FunctionCallInfo fcinfo, int n)
{
	int32		workers;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("workers must not be null")));
	workers = PG_GETARG_INT32(n);
	if (workers < 1 || workers > MIGRATE_MAX_WORKERS_PER_MIGRATION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("workers must be between 1 and %d", MIGRATE_MAX_WORKERS_PER_MIGRATION),
				 errdetail("The workers given was %d.", workers)));
	return workers;
}
