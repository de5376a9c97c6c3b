/*-------------------------------------------------------------------------
 *
 * series.c
 *	  The hand-over from one member of a series to the next, in the worker
 *	  of the member that finished: which member comes next, whether the
 *	  role that started the series may still start it, and why a series
 *	  stops.  (migrate_start_series, in api.c, starts a series; the members
 *	  still to run are kept in migrate.migrations.series_rest, catalog.c.)
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "series.h"
#include "catalog.h"
#include "launch.h"
#include "runner_lock.h"
#include "worker.h"

/*
 * series_member_problem
 *		Why the series started by "starter" must not go on with m, the
 *		member pinned as "next" (NULL if it may).
 *
 * A member is pinned by id when the series starts; one that was
 * unregistered since, or registered again (replace => true keeps the id;
 * registered_at tells) after the series started at "since", is not the
 * migration the starter chose.  The starter must also still be allowed to
 * start it: the hand-over happens in the previous member's worker, which
 * must not start anything on its own authority.
 */
static char *
series_member_problem(const Migration *m, const SeriesMember *next, Oid starter,
					  TimestampTz since)
{
	char	   *who = GetUserNameFromId(starter, true);

	if (m == NULL)
		return psprintf("the series stopped: migration \"%s\" was unregistered after the series started",
						next->name);
	if (strcmp(m->name, next->name) != 0 ||
		(since != 0 && m->registered_at > since))
		return psprintf("the series stopped: migration \"%s\" was registered again after the series started",
						next->name);
	if (who == NULL)
		return psprintf("the series stopped: the role that started it no longer exists, so migration \"%s\" was not started",
						next->name);
	if (!is_member_of_role(starter, m->owner))
		return psprintf("the series stopped: role \"%s\", which started it, may no longer start migration \"%s\"",
						who, next->name);
	return NULL;
}

/*
 * stop_series
 *		Record on the finished member prev why its series went no further.
 */
static void
stop_series(int64 prev_id, const char *prev_name, Oid prev_owner, const char *why)
{
	ereport(WARNING, (errmsg("migrate: %s", why)));
	migrate_catalog_stop_series(prev_id, prev_name, prev_owner, why);
}

/*
 * migrate_series_start_next
 *		In the worker of member prev of a series, after prev finished:
 *		start the next member (rest is a List of SeriesMember) that is not
 *		done yet, on behalf of the series' starter, handing it the rest of
 *		the series.  The new worker may take this worker's slot: this one
 *		exits right after.
 *
 * Runs its own transactions (migrate_unit_begin/end), outside any.  A member that is gone, replaced, or no longer
 * the starter's to start ends the series, with the reason in prev's
 * last_error.  A member that cannot be started is marked failed with the
 * reason, which also ends the series.
 */
void
migrate_series_start_next(int64 prev_id, const char *prev_name,
						  Oid prev_owner, List *rest, Oid starter,
						  TimestampTz since)
{
	while (rest != NIL)
	{
		SeriesMember *next = linitial(rest);
		MemoryContext oldcxt = CurrentMemoryContext;
		volatile bool started = false;

		rest = list_delete_first(rest);
		PG_TRY();
		{
			Migration  *m;
			char	   *problem;

			migrate_unit_begin("migrate: starting next migration of a series");
			migrate_catalog_end_series(prev_id);
			m = next->id != 0 ? migrate_catalog_load_by_id(next->id, true) :
				migrate_catalog_load(next->name, true, true);
			problem = series_member_problem(m, next, starter, since);
			if (problem)
			{
				stop_series(prev_id, prev_name, prev_owner, problem);
				started = true;
			}
			else if (!migrate_is_finished(m))
			{
				if (!migrate_runner_active(m->id))
				{
					m->series_starter = starter;
					m->series_started_at = since;
					migrate_start_locked(m, false, rest, starter, "start",
										 "next in series", true);
				}
				started = true;
			}
			migrate_unit_end();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(oldcxt);
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			migrate_unit_begin("migrate: recording failure");
			migrate_catalog_end_series(prev_id);
			{
				Migration  *m = next->id != 0 ? migrate_catalog_load_by_id(next->id, true) :
					migrate_catalog_load(next->name, true, true);

				if (m && series_member_problem(m, next, starter, since) == NULL)
					migrate_catalog_transition(m, MIGRATE_FAILED, "fail",
											  edata->message);
				else
					stop_series(prev_id, prev_name, prev_owner, edata->message);
			}
			migrate_unit_end();
			return;
		}
		PG_END_TRY();
		if (started)
			return;
	}
}
