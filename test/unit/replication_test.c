/*-------------------------------------------------------------------------
 *
 * replication_test.c
 *	  Unit test of the replication holds (src/replication_decide.c): made-up
 *	  looks at a primary's standbys and slots, and what must hold a
 *	  migration, outside the server (make unitcheck).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "replication.h"

#define MB (INT64CONST(1024) * 1024)

static int	failures = 0;

static void
check(bool ok, const char *what)
{
	printf("%s - %s\n", ok ? "ok" : "not ok", what);
	if (!ok)
		failures++;
}

/* The defaults, scaled down: 2 s, 64 MB behind, 16 MB ahead, 64 MB kept */
static ReplLimits
limits(void)
{
	ReplLimits	l;

	l.max_lag_ms = 2000;
	l.max_lag_bytes = 64 * MB;
	l.max_sync_bytes = 16 * MB;
	l.max_slot_bytes = 64 * MB;
	l.ignore_slots = "";
	return l;
}

/* A primary at 1000 MB with one healthy standby and no slot */
static ReplSample
healthy(void)
{
	ReplSample	s;

	memset(&s, 0, sizeof(s));
	s.insert_lsn = 1000 * MB;
	s.own_commit_lsn = 1000 * MB;
	s.nstandbys = 1;
	strlcpy(s.standbys[0].name, "standby1", sizeof(s.standbys[0].name));
	s.standbys[0].sent = 1000 * MB;
	s.standbys[0].flush = 1000 * MB;
	s.standbys[0].replay = 999 * MB;
	s.standbys[0].reply_age_s = 0.1;
	return s;
}

static ReplSlot *
add_slot(ReplSample *s, const char *name, bool logical, bool active, uint64 lsn)
{
	ReplSlot   *sl = &s->slots[s->nslots++];

	memset(sl, 0, sizeof(*sl));
	strlcpy(sl->name, name, sizeof(sl->name));
	sl->logical = logical;
	sl->active = active;
	sl->lsn = lsn;
	return sl;
}

int
main(void)
{
	ReplLimits	l = limits();
	ReplSample	s;
	ReplDecision d;
	char		first[256];

	s = healthy();
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_GO, "a healthy standby holds nothing");

	/* synchronous standbys */
	s = healthy();
	s.sync_wait = true;
	s.sync_lsn = 990 * MB;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_GO, "10 MB ahead of the synchronous standbys: goes on");
	s.sync_lsn = 980 * MB;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_SYNC && d.bytes == 20 * MB,
		  "20 MB ahead of the synchronous standbys, limit 16 MB: holds, 20 MB");
	check(strstr(d.reason, "synchronous standbys") != NULL &&
		  strstr(d.reason, "16 MB") != NULL, "the reason names them and the limit");
	strlcpy(first, d.reason, sizeof(first));
	s.sync_lsn = 900 * MB;
	migrate_replication_decide(&s, &l, &d);
	check(strcmp(first, d.reason) == 0, "the reason stays the same while it holds");
	s.sync_wait = false;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_GO, "commits that would not wait for them: nothing to hold for");
	s.sync_wait = true;
	l.max_sync_bytes = -1;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_GO, "migrate.max_synchronous_lag = -1: off");
	l.max_sync_bytes = 0;
	s.sync_lsn = 1000 * MB - 1;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_SYNC, "migrate.max_synchronous_lag = 0: one byte short holds");
	s.sync_lsn = 1000 * MB;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_GO, "migrate.max_synchronous_lag = 0: confirmed goes on");
	l = limits();
	s.own_commit_lsn = 0;
	s.sync_lsn = 0;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_GO, "a runner that has committed nothing yet goes on");

	/* a standby that stopped answering */
	s = healthy();
	s.standbys[0].sent = 1003 * MB;
	s.standbys[0].reply_age_s = 1.0;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_GO, "3 MB unconfirmed for 1 s: goes on");
	s.standbys[0].reply_age_s = 2.5;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_SILENT && strcmp(d.who, "standby1") == 0 && d.bytes == 3 * MB,
		  "3 MB unconfirmed for 2.5 s, limit 2 s: holds, naming the standby");
	s.standbys[0].sent = s.standbys[0].flush;
	s.standbys[0].reply_age_s = 60;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_GO, "an idle standby that has everything may be quiet for long");
	s.standbys[0].sent = 1003 * MB;
	s.standbys[0].flush = 0;
	s.standbys[0].replay = 0;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_GO, "a receiver that reports no flush (pg_basebackup) is not judged");
	s = healthy();
	s.standbys[0].sent = 1003 * MB;
	s.standbys[0].reply_age_s = 60;
	l.max_lag_ms = 0;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_GO, "migrate.max_replication_lag = 0: off");
	l = limits();

	/* bytes behind */
	s = healthy();
	s.standbys[0].replay = 900 * MB;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_BEHIND && d.bytes == 100 * MB,
		  "replayed 100 MB behind, limit 64 MB: holds");
	s.standbys[0].replay = 0;
	s.standbys[0].flush = 990 * MB;
	s.standbys[0].sent = 990 * MB;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_GO, "one that does not replay is judged by its flush: 10 MB");

	/* slots */
	s = healthy();
	add_slot(&s, "standby1_slot", false, true, 999 * MB);
	add_slot(&s, "sub", true, false, 950 * MB);
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_GO, "an active physical slot and a logical one 50 MB behind: go on");
	s.slots[0].active = false;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_SLOT_GONE && strcmp(d.who, "standby1_slot") == 0,
		  "a physical slot without its standby holds");
	check(strstr(d.reason, "\"standby1_slot\"") != NULL, "the reason names the slot");
	l.ignore_slots = "old_one, standby1_slot";
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_GO, "unless migrate.ignore_slots names it");
	l = limits();
	s.slots[0].lost = true;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_GO, "a slot whose WAL is lost keeps nothing: goes on");
	s.slots[0].lost = false;
	s.slots[0].active = true;
	s.slots[1].lsn = 930 * MB;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_SLOT_FULL && strcmp(d.who, "sub") == 0 && d.bytes == 70 * MB,
		  "a logical slot 70 MB behind, limit 64 MB: holds, naming it");
	check(strstr(d.reason, "logical replication slot \"sub\"") != NULL &&
		  strstr(d.reason, "64 MB") != NULL, "the reason says which slot and the limit");
	l.max_slot_bytes = 0;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_GO, "migrate.max_slot_wal = 0: off");
	l = limits();
	s.sync_wait = true;
	s.sync_lsn = 900 * MB;
	migrate_replication_decide(&s, &l, &d);
	check(d.kind == REPL_SYNC, "the synchronous standbys come first");

	/* the list of slots to leave out */
	check(migrate_replication_slot_ignored(" a , b ", "b"), "\" a , b \" has b");
	check(migrate_replication_slot_ignored(" a , b ", "a"), "\" a , b \" has a");
	check(!migrate_replication_slot_ignored(" a , b ", "ab"), "\" a , b \" has no ab");
	check(!migrate_replication_slot_ignored("", "a"), "\"\" has nothing");
	check(!migrate_replication_slot_ignored(NULL, "a"), "NULL has nothing");
	check(!migrate_replication_slot_ignored("abc", "ab"), "\"abc\" has no ab");

	if (failures)
		printf("replication_test: %d failed\n", failures);
	else
		printf("replication_test: all passed\n");
	return failures ? 1 : 0;
}
