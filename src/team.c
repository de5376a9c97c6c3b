/*-------------------------------------------------------------------------
 *
 * team.c
 *	  What the workers of one migration share in shared memory, so that
 *	  the migration is paced as a whole: the transactions they commit (so
 *	  that the runner's pacer does not take its helpers for the workload),
 *	  and the runner's decisions (rest until, WAL budget) that its helpers
 *	  follow.
 *
 * One slot per migration with workers, in a small array sized by
 * max_worker_processes; a worker joins its migration's slot when it starts
 * and leaves it when it exits.  Only with shared_preload_libraries: without
 * it there is no slot, and each worker paces itself alone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "team.h"

/* One migration's team */
struct MigrateTeam
{
	Oid			dbid;			/* with id, whose team; under the spinlock */
	int64		id;
	int			members;		/* workers in it; 0: the slot is free */
	pg_atomic_uint64 xacts;		/* transactions its workers committed */
	pg_atomic_uint64 xids;		/* transaction ids they used */
	pg_atomic_uint64 rest_until;	/* the runner rests everyone until then */
	pg_atomic_uint64 budget;	/* the runner's WAL budget, bytes/s; 0: none */
};

typedef struct TeamArray
{
	slock_t		mutex;
	int			nslots;
	MigrateTeam slots[FLEXIBLE_ARRAY_MEMBER];
} TeamArray;

static TeamArray *teams = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* The team this process belongs to, left when it exits */
static MigrateTeam *my_team = NULL;

static Size
teams_size(void)
{
	return add_size(offsetof(TeamArray, slots),
					mul_size(max_worker_processes, sizeof(MigrateTeam)));
}

static void
teams_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(teams_size());
}

static void
teams_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	teams = ShmemInitStruct("migrate teams", teams_size(), &found);
	if (!found)
	{
		SpinLockInit(&teams->mutex);
		teams->nslots = max_worker_processes;
		for (int i = 0; i < teams->nslots; i++)
		{
			MigrateTeam *t = &teams->slots[i];

			t->members = 0;
			pg_atomic_init_u64(&t->xacts, 0);
			pg_atomic_init_u64(&t->xids, 0);
			pg_atomic_init_u64(&t->rest_until, 0);
			pg_atomic_init_u64(&t->budget, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * migrate_team_init
 *		Ask for the teams' shared memory; from _PG_init while preloading.
 */
void
migrate_team_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = teams_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = teams_shmem_startup;
}

/* Leave this process's team when it exits. */
static void
team_leave(int code, Datum arg)
{
	if (my_team == NULL)
		return;
	SpinLockAcquire(&teams->mutex);
	my_team->members--;
	SpinLockRelease(&teams->mutex);
	my_team = NULL;
}

/*
 * migrate_team_join
 *		Join the team of migration id in this database (creating it if this
 *		is its first worker) for the rest of this process.  Returns NULL
 *		without shared memory (not preloaded) or a free slot.
 */
MigrateTeam *
migrate_team_join(int64 id)
{
	MigrateTeam *free_slot = NULL;

	if (teams == NULL || my_team != NULL)
		return my_team;
	SpinLockAcquire(&teams->mutex);
	for (int i = 0; i < teams->nslots; i++)
	{
		MigrateTeam *t = &teams->slots[i];

		if (t->members > 0 && t->dbid == MyDatabaseId && t->id == id)
		{
			my_team = t;
			break;
		}
		if (t->members == 0 && free_slot == NULL)
			free_slot = t;
	}
	if (my_team == NULL && free_slot != NULL)
	{
		my_team = free_slot;
		my_team->dbid = MyDatabaseId;
		my_team->id = id;
		pg_atomic_write_u64(&my_team->rest_until, 0);
		pg_atomic_write_u64(&my_team->budget, 0);
	}
	if (my_team)
		my_team->members++;
	SpinLockRelease(&teams->mutex);
	if (my_team)
		before_shmem_exit(team_leave, (Datum) 0);
	return my_team;
}

/* How many workers are in team t (at least 1) */
int
migrate_team_members(MigrateTeam *t)
{
	int			n;

	SpinLockAcquire(&teams->mutex);
	n = t->members;
	SpinLockRelease(&teams->mutex);
	return Max(n, 1);
}

/* Count xacts transactions using xids transaction ids as team t's. */
void
migrate_team_count(MigrateTeam *t, int64 xacts, int64 xids)
{
	pg_atomic_fetch_add_u64(&t->xacts, (uint64) xacts);
	pg_atomic_fetch_add_u64(&t->xids, (uint64) xids);
}

/* The transactions (and ids) team t's workers have committed */
void
migrate_team_counts(MigrateTeam *t, int64 *xacts, int64 *xids)
{
	*xacts = (int64) pg_atomic_read_u64(&t->xacts);
	*xids = (int64) pg_atomic_read_u64(&t->xids);
}

/*
 * migrate_team_decide
 *		The runner's decisions for team t: everyone rests until rest_until
 *		(0: no rest), and the migration may write budget WAL bytes a second
 *		(0: no budget).
 */
void
migrate_team_decide(MigrateTeam *t, TimestampTz rest_until, double budget)
{
	pg_atomic_write_u64(&t->rest_until, (uint64) rest_until);
	pg_atomic_write_u64(&t->budget, (uint64) Max(budget, 0));
}

/* The runner's last decisions for team t */
void
migrate_team_follow(MigrateTeam *t, TimestampTz *rest_until, double *budget)
{
	*rest_until = (TimestampTz) pg_atomic_read_u64(&t->rest_until);
	*budget = (double) pg_atomic_read_u64(&t->budget);
}
