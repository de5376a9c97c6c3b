# The worker answers SIGTERM and query cancels promptly and loses nothing
# (issue 2, "The background worker"; issue 3, "Faults").
#
# - pg_cancel_backend() on the worker, once inside a batch and once while
#   it sleeps between batches (pause): the worker does not hang, an
#   interrupted batch is rolled back whole, and the migration is never
#   left 'running' with nobody running it (inside a batch: failed with
#   last_error "canceling statement due to user request").  migrate_start
#   then finishes it exactly once.
# - pg_terminate_backend() on the worker: it exits within a second or two;
#   migrate_status shows no worker for it; migrate_start takes it over
#   from the cursor; after three such terminations the migration finishes
#   with every row changed exactly once.
# - a series survives a crash: after kill -9 of the worker of its first
#   member, the launcher resumes the member and the series goes on.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;
use Time::HiRes qw(time);

my $rows = 50_000;

my $node = migrate_node('signals', 'restart_after_crash = on');

for my $t (qw(t_term s1 s2))
{
	$node->safe_psql('postgres', qq{
		CREATE TABLE $t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
		INSERT INTO $t (id) SELECT g FROM generate_series(1, $rows) g;
		ANALYZE $t;
	});
}
$node->safe_psql('postgres', q{
	SELECT migrate_register('m_term', 't_term', set_clause => 'n = n + 1',
	                        batch_size => 200, pause => '10ms');
	SELECT migrate_register('s1', 's1', set_clause => 'n = n + 1',
	                        batch_size => 200, pause => '10ms');
	SELECT migrate_register('s2', 's2', set_clause => 'n = n + 1',
	                        batch_size => 1000);
});

# "true|state" while the migration is not left running without a worker
my $orphan_q = q{
	SELECT (state <> 'running'
	       OR EXISTS (SELECT 1 FROM pg_stat_activity a
	                   WHERE a.backend_type = 'migrate worker'
	                     AND a.query LIKE '%%"' || m.name || '"%%'))
	       || '|' || state
	  FROM migrate.migrations m WHERE name = '%s'};

# Record the orphan check of migration $m through a window (sample_series'
# options: until a value, or for some seconds): two checks, that the window
# ended as planned and that every look found the migration running with a
# worker, or not running.
sub never_orphaned
{
	my ($m, $what, %opt) = @_;
	my ($series, $ended) = sample_series($node, sprintf($orphan_q, $m), %opt);
	my @bad = grep { !/^true\|/ } @$series;
	ok($ended, "$what: the window ended as planned (" . scalar(@$series) . ' looks)');
	is(scalar(@bad), 0, "$what: not left running without a worker at any look")
	  or diag(join("\n", @bad));
	return $series->[-1];
}

# --- query cancel during a batch ---------------------------------------------
# slow_inc takes 2 ms a row, so a batch of 200 rows takes 0.4 s and the
# worker is almost always inside one.
$node->safe_psql('postgres', q{
	CREATE FUNCTION slow_inc(int) RETURNS int LANGUAGE sql
	    AS 'SELECT pg_sleep(0.002); SELECT $1 + 1';
	CREATE TABLE t_ib (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO t_ib (id) SELECT g FROM generate_series(1, 2000) g;
	SELECT migrate_register('m_ib', 't_ib', set_clause => 'n = slow_inc(n)', batch_size => 200);
	SELECT migrate_start('m_ib');
});
poll_ok($node, q{
		SELECT processed >= 200 FROM migrate.migrations WHERE name = 'm_ib'},
	't', 'cancel in a batch: m_ib is under way');
my $pid = worker_pid($node, 'm_ib');
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)"), 't',
	'cancel in a batch: query cancel sent');
# until it stops running (a failure shows within 15 s)
never_orphaned('m_ib', 'cancel in a batch', until => qr/\|(?!running$)/, timeout => 15);
my $st = $node->safe_psql('postgres',
	q{SELECT state || '|' || coalesce(last_error, '') FROM migrate.migrations WHERE name = 'm_ib'});
is($st, 'failed|canceling statement due to user request',
	'cancel in a batch: failed, last_error says the batch was cancelled');
is(cursor_agrees($node, 'm_ib', 't_ib'), 't', 'cancel in a batch: the batch was rolled back whole');
$node->safe_psql('postgres', q{SELECT migrate_start('m_ib', batch_size => 2000)});
is($node->safe_psql('postgres', q{SELECT migrate_wait('m_ib', '60s')}), 'done',
	'cancel in a batch: migrate_start finishes it');
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE n <> 1) FROM t_ib}),
	'0', 'cancel in a batch: every row changed exactly once');

# --- query cancel while the worker sleeps between batches ----------------------
$node->safe_psql('postgres', q{
	CREATE TABLE t_is (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO t_is (id) SELECT g FROM generate_series(1, 2000) g;
	SELECT migrate_register('m_is', 't_is', set_clause => 'n = n + 1',
	                        batch_size => 200, pause => '3s');
	SELECT migrate_start('m_is');
});
poll_ok($node, q{
		SELECT processed >= 200 FROM migrate.migrations WHERE name = 'm_is'},
	't', 'cancel in a pause: m_is did its first batch and sleeps');
$pid = worker_pid($node, 'm_is');
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)"), 't',
	'cancel in a pause: query cancel sent');
# through 5 s, longer than the worker's 3 s pause
never_orphaned('m_is', 'cancel in a pause', seconds => 5);
note($node->safe_psql('postgres', q{
		SELECT state, worker_pid, last_error, (SELECT worker_pid FROM migrate_status('m_is'))
		  FROM migrate.migrations WHERE name = 'm_is'}));
is(cursor_agrees($node, 'm_is', 't_is'), 't', 'cancel in a pause: table agrees with cursor and counters');
# take it up again however it ended, and finish: unless it runs, its
# worker must be gone first
poll_ok($node, q{
		SELECT state = 'running'
		       OR (SELECT count(*) = 0 FROM pg_stat_activity WHERE } . worker_of('m_is') . q{)
		  FROM migrate.migrations WHERE name = 'm_is'},
	't', 'cancel in a pause: running, or its worker gone', timeout => 15);
$node->safe_psql('postgres', q{SELECT migrate_start('m_is', batch_size => 2000)});
is($node->safe_psql('postgres', q{SELECT migrate_wait('m_is', '60s')}), 'done',
	'cancel in a pause: the migration can be finished');
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE n <> 1) FROM t_is}),
	'0', 'cancel in a pause: every row changed exactly once');

# --- SIGTERM, three times ----------------------------------------------------
$node->safe_psql('postgres', q{SELECT migrate_start('m_term')});
my $last = 0;
for my $round (1 .. 3)
{
	poll_ok($node, qq{
			SELECT processed >= $last + 2000 AND state = 'running'
			  FROM migrate.migrations WHERE name = 'm_term'},
		't', "terminate $round: under way");
	$pid = worker_pid($node, 'm_term');
	like($pid, qr/^\d+$/, "terminate $round: worker found");
	my $t0 = time;
	is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)"), 't',
		"terminate $round: SIGTERM sent");
	poll_ok($node, qq{
			SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid},
		't', "terminate $round: worker exits");
	cmp_ok(time - $t0, '<', 3, "terminate $round: promptly");
	is($node->safe_psql('postgres', q{SELECT worker_pid IS NULL FROM migrate_status('m_term')}),
		't', "terminate $round: migrate_status shows no worker");
	is(cursor_agrees($node, 'm_term', 't_term'), 't',
		"terminate $round: table agrees with cursor and counters");
	$last = $node->safe_psql('postgres',
		q{SELECT processed FROM migrate.migrations WHERE name = 'm_term'});
	my ($ret, $out, $err) = $node->psql('postgres',
		q{SELECT (m).state FROM migrate_start('m_term') m});
	# (the worker is gone, so this is a take-over)
	is($out, 'running', "terminate $round: migrate_start takes it over") or diag($err);
}
is($node->safe_psql('postgres', q{SELECT migrate_wait('m_term', '60s')}), 'done', 'm_term finishes');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE n <> 1), (SELECT processed FROM migrate.migrations WHERE name = 'm_term')
		  FROM t_term}),
	"0|$rows", 'm_term changed every row exactly once');

# --- a series across a crash -------------------------------------------------
$node->safe_psql('postgres', q{SELECT migrate_start_series(ARRAY['s1', 's2'])});
poll_ok($node, q{
		SELECT processed >= 2000 FROM migrate.migrations WHERE name = 's1'},
	't', 's1 is under way');
$pid = worker_pid($node, 's1');
is(kill('KILL', $pid), 1, 'worker of s1 killed with SIGKILL');
poll_ok($node, qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE } . worker_of('s1') . qq{ AND pid <> $pid},
	't', 's1 resumed after the crash');
is($node->safe_psql('postgres', q{SELECT migrate_wait('s1', '60s')}), 'done', 's1 finishes');
poll_ok($node, q{SELECT state FROM migrate.migrations WHERE name = 's2'},
	'done', 'the series goes on with s2 after the crash');
is( $node->safe_psql('postgres', q{
		SELECT (SELECT count(*) FILTER (WHERE n <> 1) FROM s1),
		       (SELECT count(*) FILTER (WHERE n <> 1) FROM s2)}),
	'0|0', 'both members changed every row exactly once');

$node->stop;
done_testing();
