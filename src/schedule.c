/*-------------------------------------------------------------------------
 *
 * schedule.c
 *	  Scheduling migrations with pg_cron: migrate_schedule() and
 *	  migrate_unschedule().
 *
 * migrate does not link against pg_cron; it calls pg_cron's SQL functions
 * (cron.schedule, cron.unschedule) through SPI, as the calling user, so
 * that the jobs belong to, and run as, whoever scheduled them.  The jobs'
 * commands name our functions with the schema the extension lives in and
 * act only on a migration in a state they make sense for, so that a job
 * firing after the migration is done, or while it is already running,
 * does nothing and does not fail.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "migrate.h"
#include "args.h"
#include "catalog.h"
#include "security.h"

PG_FUNCTION_INFO_V1(migrate_schedule);
PG_FUNCTION_INFO_V1(migrate_unschedule);

/* Error out unless pg_cron is installed in this database. */
static void
require_pg_cron(void)
{
	if (!OidIsValid(get_extension_oid("pg_cron", true)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pg_cron is not installed in this database"),
				 errdetail("migrate_schedule() creates pg_cron jobs."),
				 errhint("Install pg_cron, add it to shared_preload_libraries, set cron.database_name to this database and run CREATE EXTENSION pg_cron.")));
}

/*
 * The pg_cron job names of migration m: start, then stop.  They carry the
 * migration's id, so that no two migrations share one, and its name for
 * the reader, clipped to what pg_cron keeps (a "name", 63 bytes).
 */
static void
job_names(const Migration *m, char **start, char **stop)
{
	char	   *names[2];
	const char *verbs[2] = {"start", "pause"};

	for (int i = 0; i < 2; i++)
	{
		char	   *full = psprintf("migrate #" INT64_FORMAT " %s %s", m->id, verbs[i], m->name);
		int			len = pg_mbcliplen(full, strlen(full), NAMEDATALEN - 1);

		full[len] = '\0';
		names[i] = full;
	}
	*start = names[0];
	*stop = names[1];
}

/*
 * schedule_job
 *		cron.schedule(jobname, schedule, command) as the current user;
 *		returns the job id.
 */
static int64
schedule_job(const char *jobname, const char *schedule, const char *command)
{
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];
	bool		isnull;

	values[0] = CStringGetTextDatum(jobname);
	values[1] = CStringGetTextDatum(schedule);
	values[2] = CStringGetTextDatum(command);
	if (SPI_execute_with_args("SELECT cron.schedule($1, $2, $3)", 3, types, values,
							  NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "cron.schedule failed");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * migrate_schedule(name, start_cron, stop_cron)
 *
 * Create (or redefine) two pg_cron jobs: one that starts or resumes the
 * migration on start_cron's schedule, one that pauses it on stop_cron's.
 * Returns the two jobs.  The caller must be allowed to manage the
 * migration and to use pg_cron; the jobs run as the caller.
 */
Datum
migrate_schedule(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	char	   *start_cron = migrate_text_arg(fcinfo, 1, "start_cron");
	char	   *stop_cron = migrate_text_arg(fcinfo, 2, "stop_cron");
	const char *schema = quote_identifier(get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid)));
	ReturnSetInfo *rsinfo;
	Migration  *m;
	char	   *jobs[2];
	char	   *crons[2] = {start_cron, stop_cron};
	char	   *commands[2];
	char	   *literal;

	InitMaterializedSRF(fcinfo, 0);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	require_pg_cron();
	m = migrate_connect_and_load_to_manage(name, "schedule", true);
	if (m->relation == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("migration \"%s\" is a one-off task, which runs in one transaction and cannot be paused", m->name),
				 errhint("Schedule it with cron.schedule() and migrate_start() directly.")));

	job_names(m, &jobs[0], &jobs[1]);
	literal = quote_literal_cstr(m->name);
	/* only where they make sense: a job firing at the wrong time does nothing */
	commands[0] = psprintf("SELECT %s.migrate_start(m.name) FROM migrate.migrations m"
						   " WHERE m.name OPERATOR(pg_catalog.=) %s"
						   " AND m.state OPERATOR(pg_catalog.=) ANY ('{registered,paused}')",
						   schema, literal);
	commands[1] = psprintf("SELECT %s.migrate_pause(m.name) FROM migrate.migrations m"
						   " WHERE m.name OPERATOR(pg_catalog.=) %s"
						   " AND m.state OPERATOR(pg_catalog.=) 'running'",
						   schema, literal);
	for (int i = 0; i < 2; i++)
	{
		int64		jobid = schedule_job(jobs[i], crons[i], commands[i]);
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = CStringGetTextDatum(jobs[i]);
		values[1] = Int64GetDatum(jobid);
		values[2] = CStringGetTextDatum(crons[i]);
		values[3] = CStringGetTextDatum(commands[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	migrate_catalog_log_event(m->name, m->owner, "schedule",
							  psprintf("start \"%s\", pause \"%s\"", start_cron, stop_cron));
	SPI_finish();
	return (Datum) 0;
}

/*
 * migrate_unschedule(name)
 *
 * Drop the pg_cron jobs migrate_schedule() created for the migration;
 * returns how many there were.
 */
Datum
migrate_unschedule(PG_FUNCTION_ARGS)
{
	char	   *name = migrate_text_arg(fcinfo, 0, "name");
	Migration  *m;
	char	   *jobs[2];
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	bool		isnull;
	int64		n;

	require_pg_cron();
	m = migrate_connect_and_load_to_manage(name, "unschedule", false);
	job_names(m, &jobs[0], &jobs[1]);
	values[0] = CStringGetTextDatum(jobs[0]);
	values[1] = CStringGetTextDatum(jobs[1]);
	if (SPI_execute_with_args("SELECT pg_catalog.count(cron.unschedule(j.jobid))"
							  " FROM cron.job j"
							  " WHERE j.jobname::pg_catalog.text OPERATOR(pg_catalog.=) ANY (ARRAY[$1, $2])"
							  " AND j.username OPERATOR(pg_catalog.=) CURRENT_USER",
							  2, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "cron.unschedule failed");
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (n == 0)
		ereport(NOTICE,
				(errmsg("migration \"%s\" has no pg_cron jobs of yours", m->name)));
	else
		migrate_catalog_log_event(m->name, m->owner, "unschedule", NULL);
	SPI_finish();
	PG_RETURN_INT32((int32) n);
}
