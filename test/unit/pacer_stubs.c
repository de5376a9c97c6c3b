/*-------------------------------------------------------------------------
 *
 * pacer_stubs.c
 *	  The few backend functions and variables pacing.c uses, for the unit
 *	  test that links it outside the server (pacer_test.c): memory from
 *	  malloc (never freed: a test run is short), errors ignored below
 *	  ERROR, the migrate GUCs at their defaults, and no team.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pacing.h"

MemoryContext TopMemoryContext = NULL;
bool		migrate_pause_all = false;
int			migrate_max_replication_lag_ms = 10000;

char *
pstrdup(const char *in)
{
	return strdup(in);
}

char *
MemoryContextStrdup(MemoryContext context, const char *string)
{
	return strdup(string);
}

void
pfree(void *pointer)
{
	free(pointer);
}

char *
psprintf(const char *fmt,...)
{
	char		buf[1024];
	va_list		args;

	va_start(args, fmt);
	vsnprintf(buf, sizeof(buf), fmt, args);
	va_end(args);
	return strdup(buf);
}

bool
TimestampDifferenceExceeds(TimestampTz start_time, TimestampTz stop_time, int msec)
{
	return stop_time - start_time >= (int64) msec * 1000;
}

/* elog and ereport: only DEBUG1 messages are used; say nothing */
bool
errstart(int elevel, const char *domain)
{
	if (elevel >= ERROR)
	{
		fprintf(stderr, "pacer_test: unexpected error\n");
		abort();
	}
	return false;
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
}

int
errmsg_internal(const char *fmt,...)
{
	return 0;
}

int
migrate_team_members(MigrateTeam *t)
{
	abort();
}

void
migrate_team_decide(MigrateTeam *t, TimestampTz rest_until, double wal_budget)
{
	abort();
}

void
migrate_team_follow(MigrateTeam *t, TimestampTz *rest_until, double *wal_budget)
{
	abort();
}
