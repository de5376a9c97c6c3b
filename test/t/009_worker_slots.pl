# Running out of workers (issue 3, "Faults"; issue 2, "The background worker").
#
# max_worker_processes = 3 with the preloaded launcher taking one slot (and
# no logical replication launcher) leaves two slots for migrations:
# - a third migrate_start fails with a clear error, and the migration is
#   left as it was (paused, with its cursor), never 'running' without a
#   worker; once a slot frees, migrate_start runs it to the end;
# - after a restart with two migrations running, the launcher's recovery
#   worker itself needs a slot; whatever it cannot resume must not be
#   left 'running' with no worker: every migration is either running with
#   a worker or failed with a clear last_error;
# - with migrate.max_workers = 1 (ALTER SYSTEM + reload) a second
#   migrate_start fails with a clear error naming the limit and leaves that
#   migration untouched.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

# CREATE EXTENSION comes once the launcher is seen idle
my $node = migrate_node('slots', { extension => 0 },
	'max_worker_processes = 3',
	'max_logical_replication_workers = 0',
	'max_parallel_workers = 0',
	'max_parallel_workers_per_gather = 0',
	'migrate.max_workers = 10');

# the launcher has done its recovery pass and idles
poll_ok($node, q{
		SELECT count(*) FILTER (WHERE backend_type = 'migrate launcher' AND wait_event = 'Extension') = 1
		   AND count(*) FILTER (WHERE backend_type = 'migrate recovery') = 0
		  FROM pg_stat_activity},
	't', 'launcher is up and idle');

$node->safe_psql('postgres', 'CREATE EXTENSION migrate');
for my $i (1 .. 4)
{
	$node->safe_psql('postgres', qq{
		CREATE TABLE t$i (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
		INSERT INTO t$i (id) SELECT g FROM generate_series(1, 20000) g;
		ANALYZE t$i;
		SELECT migrate_register('m$i', 't$i', set_clause => 'n = n + 1',
		                        batch_size => 100, pause => '100ms');
	});
}

my $workers_q = q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'migrate worker'};

# m3 has done one batch by hand: paused, cursor at 100
$node->safe_psql('postgres', q{SELECT migrate_step('m3')});
is( $node->safe_psql('postgres', q{SELECT state, cursor->>'id', processed FROM migrate.migrations WHERE name = 'm3'}),
	'paused|100|100', 'm3 is paused after one batch');

$node->safe_psql('postgres', q{SELECT migrate_start('m1'); SELECT migrate_start('m2')});
is($node->safe_psql('postgres', $workers_q), '2', 'two migrations run in the two free slots');

# --- no free slot ---------------------------------------------------------
my ($ret, $out, $err) = $node->psql('postgres', q{SELECT migrate_start('m3')});
isnt($ret, 0, 'a third migrate_start fails');
like($err, qr/ERROR:  could not start migration "m3": no free background worker slot/,
	'with a clear error');
like($err, qr/max_worker_processes/, 'that names max_worker_processes');
is( $node->safe_psql('postgres', q{
		SELECT state, cursor->>'id', processed, worker_pid IS NULL, last_error IS NULL
		  FROM migrate.migrations WHERE name = 'm3'}),
	'paused|100|100|t|t', 'm3 is left paused at its cursor, not running');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM migrate.events WHERE migration = 'm3' AND event IN ('start', 'resume')}),
	'0', 'no start of m3 was recorded');
is($node->safe_psql('postgres', $workers_q), '2', 'still exactly two workers');
is( $node->safe_psql('postgres', q{SELECT t3n FROM (SELECT count(*) FILTER (WHERE n = 1) AS t3n FROM t3) s}),
	'100', 'm3 table untouched beyond its cursor');

# a slot frees: m3 can start and finish
$node->safe_psql('postgres', q{SELECT migrate_cancel('m1')});
is($node->safe_psql('postgres', q{SELECT migrate_wait('m1', '30s')}), 'cancelled', 'm1 cancelled');
poll_ok($node, "$workers_q",
	'1', 'its slot is free');
($ret, $out, $err) = $node->psql('postgres',
	q{SELECT (m).state FROM migrate_start('m3', batch_size => 5000) m});
is($out, 'running', 'm3 starts once a slot is free') or diag($err);
is($node->safe_psql('postgres', q{SELECT migrate_wait('m3', '60s')}), 'done', 'm3 finishes');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1) FROM t3}),
	'20000|0', 'm3 changed every row exactly once');

# --- restart with two migrations running, one slot taken by recovery -----
$node->safe_psql('postgres', q{SELECT migrate_start('m1')});
poll_ok($node, "$workers_q",
	'2', 'm1 and m2 running again');
$node->restart;
poll_ok($node, q{
		SELECT count(*) FILTER (WHERE backend_type = 'migrate launcher' AND wait_event = 'Extension') = 1
		   AND count(*) FILTER (WHERE backend_type = 'migrate recovery') = 0
		  FROM pg_stat_activity},
	't', 'after the restart the launcher finished its recovery pass');
# every migration that claims to run has a worker running it
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM migrate.migrations m
		 WHERE m.state = 'running'
		   AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
		                    WHERE a.backend_type = 'migrate worker'
		                      AND a.query LIKE '%"' || m.name || '"%')}),
	'0', 'no migration is left running without a worker');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM migrate.migrations
		 WHERE name IN ('m1', 'm2')
		   AND (state = 'running'
		        OR (state = 'failed' AND last_error ~ 'could not resume after a server restart.*(slot|worker)'))}),
	'2', 'm1 and m2 are each running again or failed with a clear reason');
note($node->safe_psql('postgres',
	q{SELECT string_agg(name || '=' || state || ':' || coalesce(last_error, ''), E'\n') FROM migrate.migrations}));

# whatever failed can be started by hand and everything finishes
for my $m (qw(m1 m2))
{
	poll_ok($node, qq{
			SELECT state = 'running' OR
			       (SELECT count(*) < 2 FROM pg_stat_activity WHERE backend_type = 'migrate worker')
			  FROM migrate.migrations WHERE name = '$m'},
		't', "$m: running, or a slot is free for it");
	# bigger batches from here on, to finish quickly
	$node->safe_psql('postgres', "SELECT migrate_start('$m', batch_size => 10000)");
}
for my $m (qw(m1 m2))
{
	is($node->safe_psql('postgres', "SELECT migrate_wait('$m', '60s')"), 'done', "$m finishes");
}
is( $node->safe_psql('postgres', q{
		SELECT (SELECT count(*) FILTER (WHERE n <> 1) FROM t1),
		       (SELECT count(*) FILTER (WHERE n <> 1) FROM t2)}),
	'0|0', 'm1 and m2 changed every row exactly once');

# --- migrate.max_workers = 1 ----------------------------------------------
$node->safe_psql('postgres', 'ALTER SYSTEM SET migrate.max_workers = 1');
$node->reload;
poll_ok($node, 'SHOW migrate.max_workers',
	'1', 'migrate.max_workers is now 1');
$node->safe_psql('postgres', q{SELECT migrate_register('m5', 't1', set_clause => 'n = n + 1',
	batch_size => 1000, pause => '30ms')});
$node->safe_psql('postgres', q{SELECT migrate_start('m4', batch_size => 1000)});
($ret, $out, $err) = $node->psql('postgres', q{SELECT migrate_start('m5')});
isnt($ret, 0, 'a second migrate_start fails with migrate.max_workers = 1');
like($err, qr/ERROR:  could not start migration "m5": all 1 migrate workers are busy/,
	'with a clear error naming the limit');
like($err, qr/HINT:  .*migrate\.max_workers/, 'and a hint about migrate.max_workers');
is( $node->safe_psql('postgres', q{
		SELECT state, processed, worker_pid IS NULL FROM migrate.migrations WHERE name = 'm5'}),
	'registered|0|t', 'm5 is left registered, not running');
is( $node->safe_psql('postgres', q{
		SELECT state FROM migrate.migrations WHERE name = 'm4'}),
	'running', 'm4 keeps running');
is($node->safe_psql('postgres', $workers_q), '1', 'exactly one worker');
is($node->safe_psql('postgres', q{SELECT migrate_wait('m4', '60s')}), 'done', 'm4 finishes');
poll_ok($node, "$workers_q",
	'0', 'its worker is gone');
$node->safe_psql('postgres', q{SELECT migrate_start('m5')});
is($node->safe_psql('postgres', q{SELECT migrate_wait('m5', '60s')}), 'done',
	'm5 starts and finishes once the worker is free');
is( $node->safe_psql('postgres', q{
		SELECT (SELECT count(*) FILTER (WHERE n <> 1) FROM t4),
		       (SELECT count(*) FILTER (WHERE n <> 2) FROM t1)}),
	'0|0', 'm4 and m5 changed every row exactly once');

$node->stop;
done_testing();
