# Pause, cancel and resume in the middle of a run, many times (issue 2
# "migrate_pause/resume/cancel", issue 3 "Faults").
#
# A 200,000-row migration 'n = n + 1' in batches of 100 is stopped and
# taken up again twelve times: pause/resume, cancel/migrate_start,
# pause/migrate_start and pause-then-cancel/migrate_start.  Each stop must
# take effect within one batch plus one second (the worker exits), and at
# each stop the table must agree exactly with the cursor and counters:
# rows up to the cursor have n = 1, rows after it n = 0, nothing is at
# n > 1, and processed equals the rows done (no half batch).  Then a stop
# immediately followed by a start (without waiting for the old worker to
# leave) must not be lost.  In the end every row is changed exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;
use Time::HiRes qw(time);

# (enough rows that the stops and starts at once below still find work
# left on a fast machine: with 100,000 a run once finished first)
my $rows = 200_000;

my $node = migrate_node('pause');

$node->safe_psql('postgres', qq{
	CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO t (id) SELECT g FROM generate_series(1, $rows) g;
	ANALYZE t;
	SELECT migrate_register('bump', 't', set_clause => 'n = n + 1',
	                        batch_size => 100, pause => '5ms');
});

my $no_worker_q = q{SELECT count(*) = 0 FROM pg_stat_activity
	WHERE } . worker_of('bump') . q{};

my $processed_q = q{SELECT processed FROM migrate.migrations WHERE name = 'bump'};

# Twelve stop/go cycles.  Each: wait for progress, stop, check, go on.
my @cycles = (
	[ 'pause',  'migrate_resume', 'paused' ],
	[ 'cancel', 'migrate_start',  'cancelled' ],
	[ 'pause',  'migrate_start',  'paused' ],
	[ 'pause+cancel', 'migrate_start', 'cancelled' ],
) x 3;

$node->safe_psql('postgres', q{SELECT migrate_start('bump')});
my $last = 0;
my $i = 0;
for my $c (@cycles)
{
	my ($stop, $go, $state) = @$c;
	$i++;
	poll_ok($node, qq{
			SELECT processed >= $last + 1000 AND state = 'running'
			  FROM migrate.migrations WHERE name = 'bump'},
		't', "cycle $i: running and progressing past $last");
	my $t0 = time;
	if ($stop eq 'pause+cancel')
	{
		$node->safe_psql('postgres', q{SELECT migrate_pause('bump')});
		$node->safe_psql('postgres', q{SELECT migrate_cancel('bump')});
	}
	else
	{
		$node->safe_psql('postgres', "SELECT migrate_$stop('bump')");
	}
	is($node->safe_psql('postgres', q{SELECT migrate_wait('bump', '30s')}),
		$state, "cycle $i: $stop leaves the migration $state");
	poll_ok($node, $no_worker_q,
		't', "cycle $i: worker exits");
	my $secs = time - $t0;
	cmp_ok($secs, '<', 5, "cycle $i: $stop took effect promptly ("
		  . sprintf('%.2f', $secs) . ' s)');
	is(migration_row($node, 'bump') . '|' . cursor_agrees($node, 'bump', 't'), "$state|t",
		"cycle $i: table agrees with cursor and counters after $stop");
	$last = $node->safe_psql('postgres', $processed_q);
	cmp_ok($last, '<', $rows, "cycle $i: stopped before the end");
	$node->safe_psql('postgres', "SELECT $go('bump')");
	is($node->safe_psql('postgres', q{SELECT state FROM migrate.migrations WHERE name = 'bump'}),
		'running', "cycle $i: $go makes it running again");
}

# A stop followed at once by a start, while the old worker may still be
# finishing its batch: the start must not be swallowed.
for my $x ([ 'migrate_cancel', 'migrate_start' ], [ 'migrate_pause', 'migrate_resume' ])
{
	my ($stop, $go) = @$x;
	poll_ok($node, qq{
			SELECT processed >= $last + 1000 AND state = 'running'
			  FROM migrate.migrations WHERE name = 'bump'},
		't', "$stop then $go at once: running and progressing past $last");
	my ($ret, $out, $err) = $node->psql('postgres',
		"SELECT $stop('bump'); SELECT (m).state FROM $go('bump') m");
	is($ret, 0, "$stop then $go at once: no error") or diag($err);
	is( (split /\n/, $out)[-1] // '', 'running',
		"$stop then $go at once: $go returns the migration running")
	  or diag("stderr: $err");
	is($node->safe_psql('postgres', q{SELECT state FROM migrate.migrations WHERE name = 'bump'}),
		'running', "$stop then $go at once: the migration is running afterwards");
	poll_ok($node, q{
			SELECT count(*) = 1 FROM pg_stat_activity
			 WHERE } . worker_of('bump') . q{},
		't', "$stop then $go at once: a worker runs it");
	$last = $node->safe_psql('postgres', $processed_q);
	# make sure it goes on whatever the outcome above: once the old worker
	# is gone (or a new one runs), start it (a no-op if it is running)
	poll_ok($node, qq{
			SELECT state = 'running' OR ($no_worker_q)
			  FROM migrate.migrations WHERE name = 'bump'},
		't', "$stop then $go at once: running, or its old worker gone");
	$node->safe_psql('postgres', q{SELECT migrate_start('bump')});
}

# The same with a worker that sleeps between batches (pause => '3s'), so
# that the old worker is certainly still alive when the start comes.
$node->safe_psql('postgres', q{
	CREATE TABLE t2 (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO t2 (id) SELECT g FROM generate_series(1, 100) g;
	SELECT migrate_register('slow', 't2', set_clause => 'n = n + 1',
	                        batch_size => 10, pause => '3s');
	SELECT migrate_start('slow');
});
poll_ok($node, q{
		SELECT batches >= 1 FROM migrate.migrations WHERE name = 'slow'},
	't', 'slow: first batch done, worker sleeping');
for my $x ([ 'migrate_cancel', 'migrate_start' ], [ 'migrate_pause', 'migrate_resume' ])
{
	my ($stop, $go) = @$x;
	my ($ret, $out, $err) = $node->psql('postgres',
		"SELECT $stop('slow'); SELECT (m).state FROM $go('slow') m");
	is($ret, 0, "slow: $stop then $go at once: no error") or diag($err);
	is( (split /\n/, $out)[-1] // '', 'running',
		"slow: $stop then $go at once: $go returns the migration running")
	  or diag("stderr: $err");
	is( $node->safe_psql('postgres', q{SELECT state FROM migrate.migrations WHERE name = 'slow'}),
		'running', "slow: $stop then $go at once: the migration is running afterwards");
	poll_ok($node, q{
			SELECT count(*) = 1 FROM pg_stat_activity
			 WHERE } . worker_of('slow') . q{},
		't', "slow: $stop then $go at once: a worker runs it");
}
$node->safe_psql('postgres', q{SELECT migrate_cancel('slow')});

is($node->safe_psql('postgres', q{SELECT migrate_wait('bump', '120s')}),
	'done', 'migration finishes');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1) FROM t}),
	"$rows|0", 'every row changed exactly once');
is( $node->safe_psql('postgres', q{
		SELECT processed, changed FROM migrate.migrations WHERE name = 'bump'}),
	"$rows|$rows", 'counters equal the row count');
is( $node->safe_psql('postgres', q{
		SELECT string_agg(event, ',' ORDER BY id) FROM migrate.events
		 WHERE migration = 'bump' AND event IN ('pause', 'cancel')}),
	join(',', (('pause', 'cancel', 'pause', 'pause', 'cancel') x 3), 'cancel', 'pause'),
	'every pause and cancel is in the audit log');

$node->stop;
done_testing();
