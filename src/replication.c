/*-------------------------------------------------------------------------
 *
 * replication.c
 *	  What a migration owes the server's replication (issue 22): it waits
 *	  for the synchronous standbys, for standbys that lag or stopped
 *	  answering and for replication slots that keep too much WAL, reports
 *	  its last state changes only once the synchronous standbys have them,
 *	  and tells a resume after a promotion from one after a restart.
 *
 * Batches commit with synchronous_commit = off (worker.c): a crash loses
 * whole batches, data and cursor together, which are done again.  Where
 * the operator configured synchronous standbys, and the synchronous_commit
 * the migration's worker would have had (its owner's, its database's or
 * the server's, remembered when the worker starts) waits for them, the
 * migration keeps their promise in two ways:
 *
 * - before each batch, the end of the worker's last commit may be at most
 *	 migrate.max_synchronous_lag ahead of what they confirmed (the LSN up to
 *	 which PostgreSQL releases its own waiting commits, WalSndCtl->lsn):
 *	 otherwise it holds (migrate_replication_hold) and throttled says so;
 * - the transaction that makes it done, or in which its runner lets go of
 *	 it (paused, cancelled, failed), first waits until they confirmed the
 *	 worker's last commit, then commits with that synchronous_commit
 *	 (migrate_replication_before_release); a helper worker waits for its
 *	 own last commit before it exits, and the runner waits for its helpers
 *	 before it lets go.  So whoever sees "done" (migrate_wait, migrate_await,
 *	 migrate_status, NOTIFY), or a pause or cancel taken in, sees what the
 *	 synchronous standbys have.
 *
 * The other holds (standbys' bytes and silence, slots) are decided in
 * replication_decide.c from a look at pg_stat_replication and
 * pg_replication_slots taken as the catalog owner, at most every
 * PACER_SAMPLE_INTERVAL_MS.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "replication/syncrep.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/lwlock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "replication.h"
#include "catalog.h"
#include "migrate.h"
#include "pacing.h"

/* migrate.max_replication_lag_bytes (kB): a standby this far behind holds */
int			migrate_max_replication_lag_kb = 1024 * 1024;

/* migrate.max_synchronous_lag (kB): ahead of the synchronous standbys */
int			migrate_max_synchronous_lag_kb = 16 * 1024;

/* migrate.max_slot_wal (kB): WAL a replication slot may keep */
int			migrate_max_slot_wal_kb = 1024 * 1024;

/* migrate.ignore_slots: slots the migration does not wait for */
char	   *migrate_ignore_slots = NULL;

/*
 * The synchronous_commit a migration worker would have had (its owner's,
 * its database's or the server's) before it turned it off for its
 * batches; -1 outside a worker (a session's commits follow its own).
 */
static int	worker_sync_commit = -1;
static char worker_sync_commit_name[32];

/* The last look at the standbys and slots, and what held us then */
static ReplSample sample;
static TimestampTz sampled_at = 0;
static ReplHoldKind held_kind = REPL_GO;
static char held_who[64];
static TimestampTz held_since = 0;

/*
 * What was logged last, and when: a slow subscriber or standby can hold a
 * migration every few batches, and the log says so once a minute at most
 * for the same holder
 */
static ReplHoldKind logged_kind = REPL_GO;
static char logged_who[64];
static TimestampTz logged_at = 0;
#define REPL_LOG_AGAIN_MS 60000

/* The synchronous standbys' confirmed LSN, and when it last moved */
static uint64 last_sync_lsn = 0;
static TimestampTz sync_moved_at = 0;

/* A hold is looked at again after this long; the synchronous one sooner */
#define REPL_REST_MS 250
#define REPL_SYNC_REST_MS 20
#define REPL_SYNC_STALLED_REST_MS 200

/*
 * migrate_replication_define_gucs
 *		Define the settings of this module; called from _PG_init.
 */
void
migrate_replication_define_gucs(void)
{
	DefineCustomIntVariable("migrate.max_replication_lag_bytes",
							"WAL a standby may be behind (not yet replayed) before runners wait before their next batch.",
							"Measured from the primary's WAL insert position to the standby's replay position (its flush position if it does not replay). 0 turns the check off.",
							&migrate_max_replication_lag_kb,
							1024 * 1024, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("migrate.max_synchronous_lag",
							"WAL a migration's worker may have committed beyond what the synchronous standbys confirmed before it waits.",
							"Applies where synchronous_standby_names is set and the worker's synchronous_commit (as configured for its owner, database or server) waits for standbys. 0: every batch waits for the previous one to be confirmed; -1: do not wait.",
							&migrate_max_synchronous_lag_kb,
							16 * 1024, -1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("migrate.max_slot_wal",
							"WAL a replication slot may keep before runners wait before their next batch.",
							"From the slot's restart_lsn (physical) or confirmed_flush_lsn (logical) to the WAL insert position. 0 turns the check off.",
							&migrate_max_slot_wal_kb,
							1024 * 1024, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomStringVariable("migrate.ignore_slots",
							   "Replication slots runners do not wait for, comma-separated.",
							   "Neither their WAL nor, for a physical slot, a disconnected standby holds a migration.",
							   &migrate_ignore_slots,
							   "",
							   PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
}

/*
 * migrate_replication_worker_init
 *		In a migration's worker, connected, before it turns synchronous
 *		commit off for its batches: remember the synchronous_commit it had.
 */
void
migrate_replication_worker_init(void)
{
	worker_sync_commit = synchronous_commit;
	strlcpy(worker_sync_commit_name,
			GetConfigOption("synchronous_commit", false, false),
			sizeof(worker_sync_commit_name));
}

/*
 * sync_mode
 *		Which confirmation of the synchronous standbys the worker's
 *		configured synchronous_commit waits for (SYNC_REP_WAIT_*), or -1
 *		for none: not a worker, a level that does not wait for standbys, no
 *		synchronous_standby_names, or no WAL senders at all.
 */
static int
sync_mode(void)
{
	if (worker_sync_commit <= SYNCHRONOUS_COMMIT_LOCAL_FLUSH ||
		max_wal_senders == 0 ||
		SyncRepStandbyNames == NULL || SyncRepStandbyNames[0] == '\0' ||
		migrate_max_synchronous_lag_kb < 0)
		return -1;
	switch (worker_sync_commit)
	{
		case SYNCHRONOUS_COMMIT_REMOTE_WRITE:
			return SYNC_REP_WAIT_WRITE;
		case SYNCHRONOUS_COMMIT_REMOTE_APPLY:
			return SYNC_REP_WAIT_APPLY;
		default:
			return SYNC_REP_WAIT_FLUSH;
	}
}

/*
 * sync_confirmed
 *		What the synchronous standbys confirmed in "mode": the LSN up to
 *		which PostgreSQL releases the commits that wait for them.
 */
static uint64
sync_confirmed(int mode)
{
	uint64		lsn;

	LWLockAcquire(SyncRepLock, LW_SHARED);
	lsn = WalSndCtl->lsn[mode];
	LWLockRelease(SyncRepLock);
	return lsn;
}

/*
 * wait_confirmed
 *		Wait until the synchronous standbys confirmed WAL up to lsn, as the
 *		worker's configured synchronous_commit asks (no further than
 *		flushed: SyncRepWaitForLSN's rule for what is not a commit).  The
 *		current synchronous_commit must be that one.  Any transaction
 *		state; a query cancel or termination ends the wait with a warning,
 *		as it ends a commit's.
 */
static void
wait_confirmed(XLogRecPtr lsn)
{
	if (XLogRecPtrIsInvalid(lsn) || sync_mode() < 0)
		return;
	/* batches committed asynchronously: what is not flushed is not sent */
	XLogFlush(lsn);
	SyncRepWaitForLSN(lsn, false);
}

/*
 * migrate_replication_before_release
 *		In the transaction in which a migration's worker lets go of it
 *		(done, paused, cancelled, failed), before anyone can see that: wait
 *		until the synchronous standbys have the worker's last commit, and
 *		make this transaction's commit wait for them as configured.  Does
 *		nothing outside a worker, or without synchronous standbys.  Must be
 *		called at the top level of the transaction (the setting is local
 *		to it).
 */
void
migrate_replication_before_release(void)
{
	if (sync_mode() < 0)
		return;
	(void) set_config_option("synchronous_commit", worker_sync_commit_name,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
							 true, 0, false);
	wait_confirmed(XactLastCommitEnd);
}

/*
 * migrate_replication_wait_own
 *		Before a worker exits: wait until the synchronous standbys have its
 *		last commit.  The runner waits for its helpers to exit before it
 *		lets go of the migration, so that covers their batches too.  Outside
 *		a transaction.
 */
void
migrate_replication_wait_own(void)
{
	if (sync_mode() < 0)
		return;
	SetConfigOption("synchronous_commit", worker_sync_commit_name,
					PGC_USERSET, PGC_S_SESSION);
	wait_confirmed(XactLastCommitEnd);
}

/*
 * sample_standbys_and_slots
 *		Read the physical standbys (pg_stat_replication, less the walsenders
 *		of logical slots) and the replication slots into s.
 *
 * Needs SPI connected.  Runs as the catalog owner: the standbys' positions
 * are shown only to superusers and members of pg_read_all_stats, and the
 * standbys of a catalog owner without that are not seen.
 */
static void
sample_standbys_and_slots(ReplSample *s)
{
	TimestampTz now = GetCurrentTimestamp();
	uint64		n;

	migrate_server_read("SELECT r.application_name::pg_catalog.text,"
						" pg_catalog.pg_wal_lsn_diff(r.sent_lsn, '0/0'::pg_catalog.pg_lsn)::pg_catalog.int8,"
						" pg_catalog.pg_wal_lsn_diff(r.flush_lsn, '0/0'::pg_catalog.pg_lsn)::pg_catalog.int8,"
						" pg_catalog.pg_wal_lsn_diff(r.replay_lsn, '0/0'::pg_catalog.pg_lsn)::pg_catalog.int8,"
						" r.reply_time"
						" FROM pg_catalog.pg_stat_replication r"
						" WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_replication_slots l"
						"   WHERE l.active_pid OPERATOR(pg_catalog.=) r.pid"
						"   AND l.slot_type OPERATOR(pg_catalog.=) 'logical')"
						" ORDER BY r.pid LIMIT " CppAsString2(REPL_MAX_STANDBYS),
						0, NULL, NULL, NULL);
	s->nstandbys = 0;
	for (n = 0; n < SPI_processed; n++)
	{
		ReplStandby *sb = &s->standbys[s->nstandbys++];
		HeapTuple	tup = SPI_tuptable->vals[n];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;

		d = SPI_getbinval(tup, desc, 1, &isnull);
		strlcpy(sb->name, isnull ? "" : TextDatumGetCString(d), sizeof(sb->name));
		d = SPI_getbinval(tup, desc, 2, &isnull);
		sb->sent = isnull ? 0 : (uint64) DatumGetInt64(d);
		d = SPI_getbinval(tup, desc, 3, &isnull);
		sb->flush = isnull ? 0 : (uint64) DatumGetInt64(d);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		sb->replay = isnull ? 0 : (uint64) DatumGetInt64(d);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		sb->reply_age_s = isnull ? -1 :
			Max(0, (now - DatumGetTimestampTz(d)) / 1000000.0);
	}

	migrate_server_read("SELECT slot_name::pg_catalog.text,"
						" slot_type OPERATOR(pg_catalog.=) 'logical', active,"
						" wal_status IS NOT DISTINCT FROM 'lost',"
						" pg_catalog.pg_wal_lsn_diff(CASE WHEN slot_type OPERATOR(pg_catalog.=) 'logical'"
						"   THEN confirmed_flush_lsn ELSE restart_lsn END,"
						"   '0/0'::pg_catalog.pg_lsn)::pg_catalog.int8"
						" FROM pg_catalog.pg_replication_slots"
						" ORDER BY slot_name LIMIT " CppAsString2(REPL_MAX_SLOTS),
						0, NULL, NULL, NULL);
	s->nslots = 0;
	for (n = 0; n < SPI_processed; n++)
	{
		ReplSlot   *sl = &s->slots[s->nslots++];
		HeapTuple	tup = SPI_tuptable->vals[n];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;

		d = SPI_getbinval(tup, desc, 1, &isnull);
		strlcpy(sl->name, TextDatumGetCString(d), sizeof(sl->name));
		d = SPI_getbinval(tup, desc, 2, &isnull);
		sl->logical = !isnull && DatumGetBool(d);
		d = SPI_getbinval(tup, desc, 3, &isnull);
		sl->active = !isnull && DatumGetBool(d);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		sl->lost = !isnull && DatumGetBool(d);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		sl->lsn = isnull ? 0 : (uint64) DatumGetInt64(d);
	}
	sampled_at = now;
}

/*
 * size_pretty
 *		n bytes as "12.3 MB".
 */
static char *
size_pretty(int64 n)
{
	if (n >= 1024 * 1024)
		return psprintf("%.1f MB", n / (1024.0 * 1024));
	if (n >= 1024)
		return psprintf("%.1f kB", n / 1024.0);
	return psprintf(INT64_FORMAT " bytes", n);
}

/*
 * migrate_replication_hold
 *		Before the next batch of migration "name": must the runner wait for
 *		the server's replication?  Returns the reason (for throttled; the
 *		same text while the same thing holds it) and sets *rest_ms, or
 *		returns NULL.  Logs when a hold begins and when it ends.
 *
 * Needs a transaction with SPI connected.
 */
char *
migrate_replication_hold(const char *name, int64 *rest_ms)
{
	TimestampTz now = GetCurrentTimestamp();
	ReplLimits	l;
	ReplDecision d;
	int			mode = sync_mode();

	if (RecoveryInProgress())
		return NULL;
	if (sampled_at == 0 ||
		TimestampDifferenceExceeds(sampled_at, now, PACER_SAMPLE_INTERVAL_MS))
		sample_standbys_and_slots(&sample);
	sample.at = now;
	sample.insert_lsn = GetXLogInsertRecPtr();
	sample.own_commit_lsn = XactLastCommitEnd;
	sample.sync_wait = mode >= 0;
	sample.sync_lsn = mode >= 0 ? sync_confirmed(mode) : 0;
	if (sample.sync_lsn != last_sync_lsn)
	{
		last_sync_lsn = sample.sync_lsn;
		sync_moved_at = now;
	}

	l.max_lag_ms = migrate_max_replication_lag_ms;
	l.max_lag_bytes = (int64) migrate_max_replication_lag_kb * 1024;
	l.max_sync_bytes = migrate_max_synchronous_lag_kb < 0 ? -1 :
		(int64) migrate_max_synchronous_lag_kb * 1024;
	l.max_slot_bytes = (int64) migrate_max_slot_wal_kb * 1024;
	l.ignore_slots = migrate_ignore_slots;
	migrate_replication_decide(&sample, &l, &d);

	if (d.kind == REPL_GO)
	{
		if (held_kind != REPL_GO &&
			TimestampDifferenceExceeds(held_since, now, 1000))
			ereport(LOG,
					(errmsg("migrate: migration \"%s\" goes on after waiting %.1f s for replication",
							name, (now - held_since) / 1000000.0)));
		held_kind = REPL_GO;
		return NULL;
	}
	if (held_kind == REPL_GO)
		held_since = now;
	if (logged_kind != d.kind || strcmp(logged_who, d.who) != 0 ||
		TimestampDifferenceExceeds(logged_at, now, REPL_LOG_AGAIN_MS))
	{
		char	   *detail;

		if (d.kind == REPL_SYNC)
			detail = psprintf("Its last commit is %s ahead of what the synchronous standbys confirmed.",
							  size_pretty(d.bytes));
		else if (d.kind == REPL_SILENT)
			detail = psprintf("Standby \"%s\" has not answered for %.1f s; %s sent to it are unconfirmed.",
							  d.who, d.secs, size_pretty(d.bytes));
		else if (d.kind == REPL_BEHIND)
			detail = psprintf("Standby \"%s\" is %s behind.", d.who, size_pretty(d.bytes));
		else
			detail = psprintf("Replication slot \"%s\" keeps %s of WAL.", d.who,
							  size_pretty(d.bytes));
		ereport(LOG,
				(errmsg("migrate: migration \"%s\" %s", name, d.reason),
				 errdetail_internal("%s", detail)));
		logged_kind = d.kind;
		strlcpy(logged_who, d.who, sizeof(logged_who));
		logged_at = now;
	}
	held_kind = d.kind;
	strlcpy(held_who, d.who, sizeof(held_who));

	if (d.kind == REPL_SYNC)
		*rest_ms = TimestampDifferenceExceeds(sync_moved_at, now, 1000) ?
			REPL_SYNC_STALLED_REST_MS : REPL_SYNC_REST_MS;
	else
		*rest_ms = REPL_REST_MS;
	return pstrdup(d.reason);
}

/*
 * timeline_column
 *		Does migrate.migrations have its "timeline" column (0.4 on)?  The
 *		library may be newer than the extension's objects until ALTER
 *		EXTENSION migrate UPDATE.
 */
static bool
timeline_column(void)
{
	Oid			nsp = get_namespace_oid("migrate", true);
	Oid			rel = OidIsValid(nsp) ? get_relname_relid("migrations", nsp) : InvalidOid;

	return OidIsValid(rel) && get_attnum(rel, "timeline") != InvalidAttrNumber;
}

/*
 * migrate_replication_note_timeline
 *		Record in migration id's row the timeline its new runner starts on,
 *		in the caller's transaction (which marks it running).  Needs SPI.
 */
void
migrate_replication_note_timeline(int64 id)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2];

	if (RecoveryInProgress() || !timeline_column())
		return;
	values[0] = Int64GetDatum(id);
	values[1] = Int32GetDatum((int32) GetWALInsertionTimeLine());
	migrate_catalog_exec("UPDATE migrate.migrations SET timeline = $2"
						 " WHERE id OPERATOR(pg_catalog.=) $1"
						 " AND timeline IS DISTINCT FROM $2",
						 2, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * migrate_replication_resume_detail
 *		The event detail of migration id ("name"), left running, as the
 *		launcher resumes it after the server started: after a promotion if
 *		it last started on another timeline than the server's now (its row
 *		came over from the old primary), which is also logged; else after
 *		a restart.  Needs SPI.
 */
char *
migrate_replication_resume_detail(int64 id, const char *name)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	bool		isnull;
	Datum		d;
	TimeLineID	was;
	TimeLineID	now;

	if (RecoveryInProgress() || !timeline_column())
		return pstrdup("resumed after a server restart");
	values[0] = Int64GetDatum(id);
	migrate_catalog_exec("SELECT timeline FROM migrate.migrations"
						 " WHERE id OPERATOR(pg_catalog.=) $1",
						 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return pstrdup("resumed after a server restart");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	now = GetWALInsertionTimeLine();
	if (isnull || (TimeLineID) DatumGetInt32(d) == now)
		return pstrdup("resumed after a server restart");
	was = (TimeLineID) DatumGetInt32(d);
	ereport(LOG,
			(errmsg("migrate: migration \"%s\" resumes after a promotion", name),
			 errdetail("It last started on timeline %u; this server runs on timeline %u.",
					   was, now)));
	return psprintf("resumed after a promotion: it ran on timeline %u, the server now runs on timeline %u",
					was, now);
}
