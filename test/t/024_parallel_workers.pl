# Parallel workers (issue 12): exactly once with several workers on one
# migration, under faults.
#
# A 300,000-row table with a counter n = 0 is migrated with the
# non-idempotent set_clause 'n = n + 1' by three workers at once
# (workers => 3, a pause of 30 ms after each batch, so that a fault or a
# stop comes while it runs whatever the machine's speed).  Faults come in the middle of a run:
#   A. SIGKILL of one helper worker (the postmaster restarts every process),
#   B. SIGKILL of every migrate worker at once,
#   C. an immediate shutdown and a start,
# and each time the launcher must take the migration up again by itself
# and finish it.  D: pause, resume, cancel and start, four times in a run:
# once migrate_wait returns, no process of the migration works on it any
# more (its processes are gone, processed does not move, and the rows
# changed are exactly the rows counted).  After each run every row has
# n = 1 exactly, processed and changed equal the row count, and the
# counters of the ranges (migrate_ranges) add up to them.  A range split by
# hand while the workers run (migrate_split_range) is walked like the others.
# E: pg_terminate_backend of the runner stops its helpers too.
#
# Then partitioned tables (hash, 4 partitions; range, 3 partitions) with
# workers => 2: one range per leaf partition, each done at the end, with
# the rows of its partition.  Last, migrate.max_workers = 2 with
# workers => 4: the migration finishes with at most two workers and says
# why it runs fewer (workers_note).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $rows = 300_000;

my $node = migrate_node('parallel',
	'max_worker_processes = 24',
	'migrate.max_workers = 16',
	'restart_after_crash = on');

$node->safe_psql('postgres', qq{
	CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, pad text);
	INSERT INTO t (id, pad) SELECT g, repeat('x', 100) FROM generate_series(1, $rows) g;
	VACUUM ANALYZE t;
});

sub sql
{
	return $node->safe_psql('postgres', $_[0]);
}

# every process of a migration is a 'migrate worker' backend; one
# migration runs at a time in this test, so all of them count
my $all_workers_q = q{(SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'migrate worker')};

sub register
{
	my ($name, $table, $workers, $batch_size, $pause) = @_;
	$pause //= '0';
	sql(qq{SELECT migrate_register('$name', '$table', set_clause => 'n = n + 1',
	                               batch_size => $batch_size, pause => '$pause',
	                               workers => $workers)});
}

# Wait until $n processes work on migration $name.
sub wait_workers
{
	my ($name, $n, $what) = @_;
	# (the check below says what it found if the wait timed out)
	poll_until($node, qq{
		SELECT workers_running >= $n OR state <> 'running'
		  FROM migrate_status('$name')});
	is(sql(qq{SELECT state, workers_running FROM migrate_status('$name')}),
		"running|$n", "$what: $n workers run the migration");
}

# Wait until migration $name has processed at least $min rows.
sub wait_progress
{
	my ($name, $min, $what) = @_;
	poll_until($node, qq{
		SELECT processed >= $min OR state <> 'running'
		  FROM migrate_status('$name')});
	my ($state, $processed) =
	  split /\|/, sql(qq{SELECT state, processed FROM migrate_status('$name')});
	is($state, 'running', "$what: still running after $processed rows");
	cmp_ok($processed, '>=', $min, "$what: progress beyond $min rows");
	cmp_ok($processed, '<', $rows, "$what: not finished yet");
	return $processed;
}

# After a fault: wait until none of the processes in @$old_pids is left
# (the server went through its restart) and the launcher took migration
# $name up again: a worker works on it beyond $before rows, or it is done;
# the launcher says it resumed it.
sub restarted
{
	my ($name, $before, $old_pids, $what) = @_;
	wait_resumed($node, $name, "$what: after the restart", old_pids => $old_pids,
		past => $before, parallel => 1, done_ok => 1);
	cmp_ok(
		sql(qq{SELECT count(*) FROM migrate.events
			WHERE migration = '$name' AND event = 'resume'
			  AND detail = 'resumed after a server restart'}),
		'>=', 1, "$what: the launcher resumed it after the restart");
}

# Migration $name on $table must end done, with every row changed once.
sub check_done
{
	my ($name, $table, $nrows, $min_ranges, $what) = @_;
	is(sql(qq{SELECT migrate_wait('$name', '180s')}), 'done', "$what: done");
	poll_ok($node, "SELECT $all_workers_q = 0",
		't', "$what: no migrate worker is left");
	is(sql(qq{SELECT count(*), count(*) FILTER (WHERE n <> 1) FROM $table}),
		"$nrows|0", "$what: every row changed exactly once");
	is( sql(qq{SELECT state, processed, changed, workers_running,
		              ranges = ranges_done, ranges >= $min_ranges
		         FROM migrate_status('$name')}),
		"done|$nrows|$nrows|0|t|t",
		"$what: processed and changed equal the row count, all ranges done");
	is( sql(qq{SELECT sum(r.processed), sum(r.changed), sum(r.batches) = s.batches,
		              bool_and(r.state = 'done'), count(r.worker_pid)
		         FROM migrate_ranges('$name') r, migrate_status('$name') s
		        GROUP BY s.batches}),
		"$nrows|$nrows|t|t|0",
		"$what: the ranges' counters add up to the migration's");
	my ($ret, $out, $err) =
	  $node->psql('postgres', qq{SELECT migrate_split_range('$name') IS NULL});
	is("$ret|$out", '0|t', "$what: nothing left to split");
	is($err, '', "$what: migrate_split_range without a warning");
}

sub reset_table
{
	sql(q{UPDATE t SET n = 0});
	sql(q{VACUUM ANALYZE t});
}

# ---------------------------------------------------------------------
# A. SIGKILL of one helper worker.
register('pa', 't', 3, 2000, '30ms');
sql(q{SELECT migrate_start('pa')});
wait_workers('pa', 3, 'A');
{
	my $before = wait_progress('pa', 4000, 'A');
	my $lead = sql(q{SELECT worker_pid FROM migrate_status('pa')});
	like($lead, qr/^\d+$/, 'A: migrate_status shows the lead worker');
	my @pids = split /\n/, sql(q{SELECT pid FROM pg_stat_activity
		WHERE backend_type = 'migrate worker' ORDER BY pid});
	ok((grep { $_ == $lead } @pids), 'A: the lead is a migrate worker');
	my ($helper) = grep { $_ != $lead } @pids;
	ok(defined $helper, 'A: a helper worker runs besides the lead');
	$helper //= 0;
	$before = sql(q{SELECT processed FROM migrate_status('pa')});
	is(kill('KILL', $helper), 1, "A: SIGKILL sent to helper worker $helper");
	restarted('pa', $before, \@pids, 'A');
	ok( $node->log_contains(
			qr/background worker "migrate worker" \(PID $helper\) was terminated by signal 9/),
		'A: the server log shows the helper was killed by signal 9');
}
check_done('pa', 't', $rows, 3, 'A');

# ---------------------------------------------------------------------
# B. SIGKILL of every migrate worker at once.
reset_table();
register('pb', 't', 3, 2000, '30ms');
sql(q{SELECT migrate_start('pb')});
wait_workers('pb', 3, 'B');
{
	wait_progress('pb', 4000, 'B');
	my $before = sql(q{SELECT processed FROM migrate_status('pb')});
	my @pids = split /\n/, sql(q{SELECT pid FROM pg_stat_activity
		WHERE backend_type = 'migrate worker' ORDER BY pid});
	cmp_ok(scalar(@pids), '>=', 3, 'B: at least three migrate workers');
	is(kill('KILL', @pids), scalar(@pids), "B: SIGKILL sent to workers @pids");
	restarted('pb', $before, \@pids, 'B');
}
check_done('pb', 't', $rows, 3, 'B');

# ---------------------------------------------------------------------
# C. Immediate shutdown and start in the middle of a run.
reset_table();
register('pc', 't', 3, 2000, '30ms');
sql(q{SELECT migrate_start('pc')});
wait_workers('pc', 3, 'C');
{
	wait_progress('pc', 4000, 'C');
	my $before = sql(q{SELECT processed FROM migrate_status('pc')});
	my @pids = split /\n/, sql(q{SELECT pid FROM pg_stat_activity
		WHERE backend_type = 'migrate worker' ORDER BY pid});
	$node->stop('immediate');
	$node->start;
	restarted('pc', $before, \@pids, 'C');
}
check_done('pc', 't', $rows, 3, 'C');

# ---------------------------------------------------------------------
# D. Pause, resume, cancel and start while three workers run.  Smaller
# batches, so that the run outlasts the four cycles.
reset_table();
register('pd', 't', 3, 500, '30ms');

# what must not change while the migration stands still: processed, its
# processes, rows changed = processed, ranges adding up to processed
my $still_q = qq{
	SELECT s.processed || '|' || s.workers_running || '|' || $all_workers_q || '|' ||
	       (SELECT count(*) FILTER (WHERE n = 1) = s.processed
	               AND count(*) FILTER (WHERE n NOT IN (0, 1)) = 0 FROM t) || '|' ||
	       ((SELECT coalesce(sum(processed), 0) FROM migrate_ranges('pd')) = s.processed)
	  FROM migrate_status('pd') s};

my @cycles = (
	[ 'pause',        'migrate_resume', 'paused' ],
	[ 'cancel',       'migrate_start',  'cancelled' ],
	[ 'pause',        'migrate_start',  'paused' ],
	[ 'pause+cancel', 'migrate_start',  'cancelled' ]);

sql(q{SELECT migrate_start('pd')});
my $last = 0;
my $i = 0;
for my $c (@cycles)
{
	my ($stop, $go, $state) = @$c;
	$i++;
	my $what = "D cycle $i ($stop, $go)";
	wait_workers('pd', 3, $what);
	wait_progress('pd', $last + 5000, $what);
	if ($i == 1)
	{
		# split the range with the most rows left while the workers run
		my ($ret, $range, $err) =
		  $node->psql('postgres', q{SELECT migrate_split_range('pd')});
		like("$ret|$range", qr/^0\|\d+$/, "$what: migrate_split_range returns a new range");
		is($err, '', "$what: migrate_split_range without a warning");
		$range = 0 unless $range =~ /^\d+$/;
		is( sql(qq{SELECT split_from IS NOT NULL AND state <> 'done'
			         FROM migrate_ranges('pd') WHERE range = $range}),
			't', "$what: the new range $range was split from another");
	}
	if ($stop eq 'pause+cancel')
	{
		sql(q{SELECT migrate_pause('pd')});
		sql(q{SELECT migrate_cancel('pd')});
	}
	else
	{
		sql("SELECT migrate_$stop('pd')");
	}
	is(sql(q{SELECT migrate_wait('pd', '60s')}), $state,
		"$what: migrate_wait returns $state");
	{
		# the processes may still be leaving pg_stat_activity, but not
		# for long
		local $PostgreSQL::Test::Utils::timeout_default = 5;
		poll_ok($node, "SELECT $all_workers_q = 0",
			't', "$what: no migrate worker is left");
	}
	my $still = sql($still_q);
	like($still, qr/^\d+\|0\|0\|true\|true$/,
		"$what: no worker, rows changed = processed = sum over the ranges ($still)");
	# nothing moves for a second and a half
	my $until = sql(q{SELECT clock_timestamp() + interval '1.5 s'});
	{
		local $PostgreSQL::Test::Utils::timeout_default = 10;
		poll_ok($node, qq{
				SELECT CASE WHEN ($still_q) IS DISTINCT FROM '$still' THEN 'moved'
				            WHEN clock_timestamp() >= '$until' THEN 'still'
				            ELSE 'wait' END},
			'still', "$what: nothing changes while it is $state", stop => 'moved')
		  or diag('now: ' . sql($still_q));
	}
	($last) = split /\|/, $still;
	cmp_ok($last, '<', $rows, "$what: stopped before the end");
	if ($go eq 'migrate_start')
	{
		sql(q{SELECT migrate_start('pd', workers => 3)});
	}
	else
	{
		sql(q{SELECT migrate_resume('pd')});
	}
	is(sql(q{SELECT state, workers FROM migrate_status('pd')}), 'running|3',
		"$what: $go makes it running again with 3 workers");
}
check_done('pd', 't', $rows, 3, 'D');

# ---------------------------------------------------------------------
# E. pg_terminate_backend of the runner: its helpers stop with it (their
# batch in flight rolls back); a pause and migrate_wait then see no
# process of the migration, and nothing changes any more; a new start
# finishes it, with new helpers, never the old ones.
reset_table();
register('pe', 't', 3, 2000, '30ms');
sql(q{SELECT migrate_start('pe')});
wait_workers('pe', 3, 'E');
wait_progress('pe', 20_000, 'E');
my @helpers_e = split /\n/, sql(q{SELECT pid FROM pg_stat_activity
	WHERE backend_type = 'migrate worker'
	  AND pid <> (SELECT worker_pid FROM migrate_status('pe'))});
sql(q{SELECT pg_terminate_backend(worker_pid) FROM migrate_status('pe')});
sql(q{SELECT migrate_pause('pe')});
is(sql(q{SELECT migrate_wait('pe', '60s')}), 'paused', 'E: paused once the runner is gone');
is(sql(qq{SELECT count(*) FROM pg_stat_activity WHERE pid IN (@{[join(',', @helpers_e)]})}),
	'0', 'E: its helpers are gone when migrate_wait returns');
my $still_e = sql(q{SELECT processed FROM migrate_status('pe')});
is(sql(q{SELECT count(*) FROM t WHERE n = 1}), $still_e,
	'E: the rows changed are exactly the rows counted');
# looked at through a second and a half, every look the same
my ($looks_e) = sample_series($node, q{SELECT processed FROM migrate_status('pe')}, seconds => 1.5);
is(join(',', grep { $_ ne $still_e } @$looks_e), '',
	'E: nothing changes any more (' . scalar(@$looks_e) . ' looks in 1.5 s)');
sql(q{SELECT migrate_resume('pe')});
check_done('pe', 't', $rows, 3, 'E');

# ---------------------------------------------------------------------
# Partitioned tables: one range per leaf partition.
my $prows = 60_000;
$node->safe_psql('postgres', qq{
	CREATE TABLE ph (id bigint, n int NOT NULL DEFAULT 0, pad text, PRIMARY KEY (id))
		PARTITION BY HASH (id);
	CREATE TABLE ph_0 PARTITION OF ph FOR VALUES WITH (MODULUS 4, REMAINDER 0);
	CREATE TABLE ph_1 PARTITION OF ph FOR VALUES WITH (MODULUS 4, REMAINDER 1);
	CREATE TABLE ph_2 PARTITION OF ph FOR VALUES WITH (MODULUS 4, REMAINDER 2);
	CREATE TABLE ph_3 PARTITION OF ph FOR VALUES WITH (MODULUS 4, REMAINDER 3);
	INSERT INTO ph (id, pad) SELECT g, repeat('x', 100) FROM generate_series(1, $prows) g;
	CREATE TABLE pr (id bigint, n int NOT NULL DEFAULT 0, pad text, PRIMARY KEY (id))
		PARTITION BY RANGE (id);
	CREATE TABLE pr_1 PARTITION OF pr FOR VALUES FROM (MINVALUE) TO (20001);
	CREATE TABLE pr_2 PARTITION OF pr FOR VALUES FROM (20001) TO (40001);
	CREATE TABLE pr_3 PARTITION OF pr FOR VALUES FROM (40001) TO (MAXVALUE);
	INSERT INTO pr (id, pad) SELECT g, repeat('x', 100) FROM generate_series(1, $prows) g;
	VACUUM ANALYZE ph, pr;
});

for my $p ([ 'ph', 4 ], [ 'pr', 3 ])
{
	my ($table, $leaves) = @$p;
	my $name = "m_$table";
	register($name, $table, 2, 2000);
	sql(qq{SELECT migrate_start('$name')});
	# the first ranges (not split from another) are the leaf partitions
	poll_ok($node, qq{
			SELECT (SELECT array_agg(relation::regclass::oid ORDER BY relation::regclass::oid)
			          FROM migrate_ranges('$name') WHERE split_from IS NULL)
			     = (SELECT array_agg(relid::oid ORDER BY relid::oid)
			          FROM pg_partition_tree('$table') WHERE isleaf)},
		't', "$table: one range per leaf partition");
	is( sql(qq{SELECT count(*), count(DISTINCT relation), count(*) FILTER
		               (WHERE relation::regclass NOT IN
		                  (SELECT relid FROM pg_partition_tree('$table') WHERE isleaf))
		         FROM migrate_ranges('$name') WHERE split_from IS NULL}),
		"$leaves|$leaves|0", "$table: $leaves first ranges, each on its own partition");
	check_done($name, $table, $prows, $leaves, $table);
	is( sql(qq{SELECT count(*), bool_and(r.processed = c.cnt)
		         FROM (SELECT relation::regclass AS rel, sum(processed) AS processed
		                 FROM migrate_ranges('$name') GROUP BY 1) r
		         JOIN (SELECT tableoid::regclass AS rel, count(*) AS cnt
		                 FROM $table GROUP BY 1) c USING (rel)}),
		"$leaves|t", "$table: the ranges of each partition processed its rows");
}

# ---------------------------------------------------------------------
# migrate.max_workers = 2 with workers => 4.
sql(q{ALTER SYSTEM SET migrate.max_workers = 2; SELECT pg_reload_conf();});
poll_ok($node, q{SELECT current_setting('migrate.max_workers') = '2'},
	't', 'max_workers: migrate.max_workers is 2');
reset_table();
sql(q{CREATE TABLE samples (state text, workers_running int, note text, procs bigint)});
register('p4', 't', 4, 2000);
sql(q{SELECT migrate_start('p4')});
# sample the status every poll until the run ends
poll_ok($node, qq{
		WITH s AS (SELECT state, workers_running, workers_note, $all_workers_q AS procs
		             FROM migrate_status('p4')),
		     i AS (INSERT INTO samples SELECT * FROM s)
		SELECT state <> 'running' FROM s},
	't', 'max_workers: the run ends');
my ($samples, $max_running, $max_procs, $noted) = split /\|/, sql(q{
	SELECT count(*), max(workers_running), max(procs), bool_or(note IS NOT NULL)
	  FROM samples WHERE state = 'running'});
cmp_ok($samples, '>=', 1, "max_workers: $samples samples while running");
cmp_ok($max_running, '>=', 1, "max_workers: workers ran it (at most $max_running at once)");
cmp_ok($max_running, '<=', 2, 'max_workers: workers_running never above 2');
cmp_ok($max_procs, '<=', 2, "max_workers: at most $max_procs migrate workers at once");
is($noted, 't', 'max_workers: workers_note says why fewer workers run than asked');
# expected here, not a warning: the test set migrate.max_workers to 2
like(sql(q{SELECT note FROM samples WHERE note IS NOT NULL LIMIT 1}),
	qr/^[12] of 4 workers: migrate\.max_workers \(2\) are all busy$/,
	'max_workers: workers_note names the limit that holds the other workers back');
check_done('p4', 't', $rows, 1, 'max_workers');

$node->stop;
done_testing();
