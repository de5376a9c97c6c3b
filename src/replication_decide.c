/*-------------------------------------------------------------------------
 *
 * replication_decide.c
 *	  Whether a migration must wait for the server's replication before
 *	  its next batch: a pure function of one look at the server (a
 *	  ReplSample, taken by replication.c) and the limits, so that
 *	  test/unit/replication_test.c can check it outside the server.
 *
 * In this order, the first that applies holds the migration:
 *
 * 1. The synchronous standbys: where they are configured and the
 *	  migration's commits would wait for them (its synchronous_commit is
 *	  remote_write, on or remote_apply), the end of the runner's last commit
 *	  may be at most migrate.max_synchronous_lag ahead of what they
 *	  confirmed (as PostgreSQL's own commits count it).
 * 2. A standby that stopped answering: WAL was sent to it and not
 *	  confirmed flushed, and its last reply is older than
 *	  migrate.max_replication_lag.  replay_lag freezes then; this does not.
 * 3. A standby more than migrate.max_replication_lag_bytes of WAL behind
 *	  (replayed, or flushed where it does not replay).
 * 4. A physical replication slot with no standby connected: its standby is
 *	  away, and whatever it has not got stays on the primary's disk.
 * 5. A replication slot that keeps more than migrate.max_slot_wal of WAL:
 *	  from its restart_lsn (physical) or confirmed_flush_lsn (logical: what
 *	  its subscriber confirmed; restart_lsn lags behind any long
 *	  transaction, which is not the subscriber's doing).
 *
 * Slots named in migrate.ignore_slots are left out of 4 and 5, and slots
 * whose WAL is already lost (wal_status 'lost') count for nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <stdio.h>

#include "replication.h"

/*
 * size_text
 *		Write n bytes as "16 MB" (kB, MB or GB, whole) into buf.
 */
static void
size_text(char *buf, size_t len, int64 n)
{
	if (n >= INT64CONST(1024) * 1024 * 1024 && n % (1024 * 1024 * 1024) == 0)
		snprintf(buf, len, INT64_FORMAT " GB", n / (1024 * 1024 * 1024));
	else if (n >= 1024 * 1024)
		snprintf(buf, len, INT64_FORMAT " MB", n / (1024 * 1024));
	else if (n >= 1024)
		snprintf(buf, len, INT64_FORMAT " kB", n / 1024);
	else
		snprintf(buf, len, INT64_FORMAT " bytes", n);
}

/*
 * migrate_replication_slot_ignored
 *		Is slot "name" in "list" (comma-separated names, blanks around them
 *		ignored, NULL or empty: none)?
 */
bool
migrate_replication_slot_ignored(const char *list, const char *name)
{
	const char *p = list;
	size_t		len = strlen(name);

	if (p == NULL)
		return false;
	while (*p)
	{
		const char *end;

		while (*p == ',' || isspace((unsigned char) *p))
			p++;
		end = p;
		while (*end && *end != ',')
			end++;
		/* trim the blanks after the name */
		{
			const char *last = end;

			while (last > p && isspace((unsigned char) last[-1]))
				last--;
			if ((size_t) (last - p) == len && strncmp(p, name, len) == 0)
				return true;
		}
		p = end;
	}
	return false;
}

/*
 * behind
 *		Bytes from lsn to "to" (0 if lsn is past it).
 */
static int64
behind(uint64 to, uint64 lsn)
{
	return to > lsn ? (int64) (to - lsn) : 0;
}

/*
 * migrate_replication_decide
 *		Should a runner hold back before its next batch, given sample s and
 *		limits l?  Fills d: d->kind REPL_GO if not; otherwise what holds it,
 *		who, by how much, and a reason for migrate_status that stays the same
 *		while the same thing holds it (the catalog is written when it
 *		changes).
 */
void
migrate_replication_decide(const ReplSample *s, const ReplLimits *l,
						   ReplDecision *d)
{
	char		size[32];

	memset(d, 0, sizeof(*d));

	/* 1. the operator's synchronous standbys */
	if (s->sync_wait && l->max_sync_bytes >= 0 && s->own_commit_lsn != 0 &&
		behind(s->own_commit_lsn, s->sync_lsn) > l->max_sync_bytes)
	{
		d->kind = REPL_SYNC;
		d->bytes = behind(s->own_commit_lsn, s->sync_lsn);
		size_text(size, sizeof(size), l->max_sync_bytes);
		snprintf(d->reason, sizeof(d->reason),
				 "waiting for the synchronous standbys: the migration's WAL is more than %s ahead of what they confirmed (migrate.max_synchronous_lag)",
				 size);
		return;
	}

	for (int i = 0; i < s->nstandbys; i++)
	{
		const ReplStandby *sb = &s->standbys[i];

		/* 2. silent: WAL sent, not confirmed, no reply for too long */
		if (l->max_lag_ms > 0 && sb->flush != 0 && sb->sent > sb->flush &&
			sb->reply_age_s >= 0 && sb->reply_age_s * 1000 >= l->max_lag_ms)
		{
			d->kind = REPL_SILENT;
			strlcpy(d->who, sb->name, sizeof(d->who));
			d->bytes = behind(sb->sent, sb->flush);
			d->secs = sb->reply_age_s;
			snprintf(d->reason, sizeof(d->reason),
					 "waiting for standby \"%s\": it has not answered for longer than migrate.max_replication_lag (%.0f s) with WAL sent to it unconfirmed",
					 sb->name, l->max_lag_ms / 1000.0);
			return;
		}
	}
	for (int i = 0; i < s->nstandbys; i++)
	{
		const ReplStandby *sb = &s->standbys[i];
		uint64		has = sb->replay != 0 ? sb->replay : sb->flush;

		/* 3. too many bytes behind */
		if (l->max_lag_bytes > 0 && has != 0 &&
			behind(s->insert_lsn, has) > l->max_lag_bytes)
		{
			d->kind = REPL_BEHIND;
			strlcpy(d->who, sb->name, sizeof(d->who));
			d->bytes = behind(s->insert_lsn, has);
			size_text(size, sizeof(size), l->max_lag_bytes);
			snprintf(d->reason, sizeof(d->reason),
					 "waiting for standby \"%s\": it is more than %s of WAL behind (migrate.max_replication_lag_bytes)",
					 sb->name, size);
			return;
		}
	}
	for (int i = 0; i < s->nslots; i++)
	{
		const ReplSlot *sl = &s->slots[i];

		/* 4. a physical slot whose standby is away */
		if (!sl->logical && !sl->active && !sl->lost && sl->lsn != 0 &&
			!migrate_replication_slot_ignored(l->ignore_slots, sl->name))
		{
			d->kind = REPL_SLOT_GONE;
			strlcpy(d->who, sl->name, sizeof(d->who));
			d->bytes = behind(s->insert_lsn, sl->lsn);
			snprintf(d->reason, sizeof(d->reason),
					 "waiting for the standby of physical replication slot \"%s\": it is disconnected (migrate.ignore_slots leaves a slot out)",
					 sl->name);
			return;
		}
	}
	for (int i = 0; i < s->nslots; i++)
	{
		const ReplSlot *sl = &s->slots[i];

		/* 5. a slot that keeps too much */
		if (l->max_slot_bytes > 0 && !sl->lost && sl->lsn != 0 &&
			behind(s->insert_lsn, sl->lsn) > l->max_slot_bytes &&
			!migrate_replication_slot_ignored(l->ignore_slots, sl->name))
		{
			d->kind = REPL_SLOT_FULL;
			strlcpy(d->who, sl->name, sizeof(d->who));
			d->bytes = behind(s->insert_lsn, sl->lsn);
			size_text(size, sizeof(size), l->max_slot_bytes);
			snprintf(d->reason, sizeof(d->reason),
					 "waiting for %s replication slot \"%s\": it keeps more than %s of WAL (migrate.max_slot_wal)",
					 sl->logical ? "logical" : "physical", sl->name, size);
			return;
		}
	}
}
