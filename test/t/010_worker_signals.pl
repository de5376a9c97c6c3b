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
use Time::HiRes qw(time usleep);

my $rows = 50_000;

my $node = PostgreSQL::Test::Cluster->new('signals');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'migrate'
restart_after_crash = on
});
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION migrate');
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

sub worker_pid
{
	my $m = shift;
	return $node->safe_psql('postgres', qq{
		SELECT pid FROM pg_stat_activity
		 WHERE } . worker_of($m) . qq{});
}

sub consistent
{
	my ($m, $t) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT count(*) FILTER (WHERE x.n = 1) = m.processed
		       AND count(*) FILTER (WHERE x.n = 1 AND x.id <= (m.cursor->>'id')::int) = m.processed
		       AND count(*) FILTER (WHERE x.n NOT IN (0, 1)) = 0
		  FROM $t x, migrate.migrations m WHERE m.name = '$m'
		 GROUP BY m.processed, m.cursor});
}

# Poll $query until it returns $expected, for at most $secs seconds (shorter
# than poll_query_until's three minutes, so that a failure is quick).
sub poll_for
{
	my ($query, $expected, $secs) = @_;
	my $deadline = time + $secs;
	while (time < $deadline)
	{
		my ($ret, $out) = $node->psql('postgres', $query);
		return 1 if $ret == 0 && $out eq $expected;
		usleep(100_000);
	}
	diag("timed out after $secs s waiting for '$expected' from: $query");
	return 0;
}

my $orphan_q = q{
	SELECT state <> 'running'
	       OR EXISTS (SELECT 1 FROM pg_stat_activity a
	                   WHERE a.backend_type = 'migrate worker'
	                     AND a.query LIKE '%"' || m.name || '"%')
	  FROM migrate.migrations m WHERE name = '%s'};

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
ok( $node->poll_query_until('postgres', q{
		SELECT processed >= 200 FROM migrate.migrations WHERE name = 'm_ib'}),
	'cancel in a batch: m_ib is under way');
my $pid = worker_pid('m_ib');
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)"), 't',
	'cancel in a batch: query cancel sent');
ok(poll_for(sprintf($orphan_q, 'm_ib'), 't', 15),
	'cancel in a batch: not left running without a worker');
my $st = $node->safe_psql('postgres',
	q{SELECT state || '|' || coalesce(last_error, '') FROM migrate.migrations WHERE name = 'm_ib'});
is($st, 'failed|canceling statement due to user request',
	'cancel in a batch: failed, last_error says the batch was cancelled');
is(consistent('m_ib', 't_ib'), 't', 'cancel in a batch: the batch was rolled back whole');
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
ok( $node->poll_query_until('postgres', q{
		SELECT processed >= 200 FROM migrate.migrations WHERE name = 'm_is'}),
	'cancel in a pause: m_is did its first batch and sleeps');
$pid = worker_pid('m_is');
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)"), 't',
	'cancel in a pause: query cancel sent');
ok(poll_for(sprintf($orphan_q, 'm_is'), 't', 15),
	'cancel in a pause: not left running without a worker')
  or diag($node->safe_psql('postgres', q{
		SELECT state, worker_pid, last_error, (SELECT worker_pid FROM migrate_status('m_is'))
		  FROM migrate.migrations WHERE name = 'm_is'}));
is(consistent('m_is', 't_is'), 't', 'cancel in a pause: table agrees with cursor and counters');
# take it up again however it ended, and finish
poll_for(q{SELECT count(*) FROM pg_stat_activity WHERE } . worker_of('m_is') . q{}, '0', 10)
  if $node->safe_psql('postgres', q{SELECT state FROM migrate.migrations WHERE name = 'm_is'}) ne 'running';
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
	ok( $node->poll_query_until('postgres', qq{
			SELECT processed >= $last + 2000 AND state = 'running'
			  FROM migrate.migrations WHERE name = 'm_term'}),
		"terminate $round: under way");
	$pid = worker_pid('m_term');
	like($pid, qr/^\d+$/, "terminate $round: worker found");
	my $t0 = time;
	is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)"), 't',
		"terminate $round: SIGTERM sent");
	ok( $node->poll_query_until('postgres', qq{
			SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid}),
		"terminate $round: worker exits");
	cmp_ok(time - $t0, '<', 3, "terminate $round: promptly");
	is($node->safe_psql('postgres', q{SELECT worker_pid IS NULL FROM migrate_status('m_term')}),
		't', "terminate $round: migrate_status shows no worker");
	is(consistent('m_term', 't_term'), 't',
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
ok( $node->poll_query_until('postgres', q{
		SELECT processed >= 2000 FROM migrate.migrations WHERE name = 's1'}),
	's1 is under way');
$pid = worker_pid('s1');
is(kill('KILL', $pid), 1, 'worker of s1 killed with SIGKILL');
ok( $node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE } . worker_of('s1') . qq{ AND pid <> $pid}),
	's1 resumed after the crash');
is($node->safe_psql('postgres', q{SELECT migrate_wait('s1', '60s')}), 'done', 's1 finishes');
ok( $node->poll_query_until('postgres', q{SELECT state FROM migrate.migrations WHERE name = 's2'},
		'done'),
	'the series goes on with s2 after the crash');
is( $node->safe_psql('postgres', q{
		SELECT (SELECT count(*) FILTER (WHERE n <> 1) FROM s1),
		       (SELECT count(*) FILTER (WHERE n <> 1) FROM s2)}),
	'0|0', 'both members changed every row exactly once');

$node->stop;
done_testing();
