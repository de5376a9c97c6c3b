# Server restart with migrations in every state (issue 3, "Faults").
#
# With shared_preload_libraries = 'migrate', six migrations are brought into
# the states registered, running, paused, cancelled, done and failed (the
# failed one by a check constraint its change violates), then the server is
# restarted cleanly.  The running one must be resumed by the launcher and
# finish with every row changed exactly once; every other one must keep its
# state, cursor, counters, last_error and table contents, and get no worker.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('states');

for my $t (qw(t_reg t_run t_pau t_can t_don t_fai))
{
	$node->safe_psql('postgres', qq{
		CREATE TABLE $t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
		INSERT INTO $t (id) SELECT g FROM generate_series(1, 20000) g;
		ANALYZE $t;
	});
}
# the change must not touch row 5050 of t_fai
$node->safe_psql('postgres',
	q{ALTER TABLE t_fai ADD CONSTRAINT keep_5050 CHECK (id <> 5050 OR n = 0)});
$node->safe_psql('postgres', q{
	SELECT migrate_register('m_reg', 't_reg', set_clause => 'n = n + 1', batch_size => 200);
	SELECT migrate_register('m_run', 't_run', set_clause => 'n = n + 1', batch_size => 200, pause => '20ms');
	SELECT migrate_register('m_pau', 't_pau', set_clause => 'n = n + 1', batch_size => 200, pause => '20ms');
	SELECT migrate_register('m_can', 't_can', set_clause => 'n = n + 1', batch_size => 200, pause => '20ms');
	SELECT migrate_register('m_don', 't_don', set_clause => 'n = n + 1', batch_size => 1000);
	SELECT migrate_register('m_fai', 't_fai', set_clause => 'n = n + 1', batch_size => 100);
});

# done
$node->safe_psql('postgres', q{SELECT migrate_start('m_don')});
is($node->safe_psql('postgres', q{SELECT migrate_wait('m_don', '60s')}),
	'done', 'm_don is done');

# failed
$node->safe_psql('postgres', q{SELECT migrate_start('m_fai')});
is($node->safe_psql('postgres', q{SELECT migrate_wait('m_fai', '60s')}),
	'failed', 'm_fai failed');
like($node->safe_psql('postgres', q{SELECT last_error FROM migrate.migrations WHERE name = 'm_fai'}),
	qr/violates check constraint "keep_5050"/, 'm_fai last_error names the constraint');
wait_worker_gone($node, 'm_fai', 'm_fai worker exited');

# paused and cancelled, each after some progress
for my $x (['m_pau', 'migrate_pause', 'paused'], ['m_can', 'migrate_cancel', 'cancelled'])
{
	my ($name, $fn, $state) = @$x;
	$node->safe_psql('postgres', qq{SELECT migrate_start('$name')});
	poll_ok($node, qq{
			SELECT processed >= 1000 FROM migrate.migrations WHERE name = '$name'},
		't', "$name makes progress");
	$node->safe_psql('postgres', qq{SELECT $fn('$name')});
	is($node->safe_psql('postgres', qq{SELECT migrate_wait('$name', '60s')}),
		$state, "$name is $state");
	wait_worker_gone($node, $name, "$name worker exited");
}

# running, caught in the middle
$node->safe_psql('postgres', q{SELECT migrate_start('m_run')});
poll_ok($node, q{
		SELECT processed >= 2000 FROM migrate.migrations WHERE name = 'm_run'},
	't', 'm_run makes progress');

# What every migration but m_run looks like, with its table's contents.
my $snapshot_q = q{
	SELECT m.name, m.state, m.processed, m.changed, m.batches,
	       coalesce(m.cursor::text, '-'), coalesce(m.last_error, '-'),
	       coalesce(m.finished_at::text, '-'),
	       (SELECT pg_catalog.string_agg(format('%s:%s', n, c), ',' ORDER BY n)
	          FROM (SELECT n, count(*) AS c
	                  FROM t_reg WHERE m.name = 'm_reg' GROUP BY n
	                UNION ALL
	                SELECT n, count(*) FROM t_pau WHERE m.name = 'm_pau' GROUP BY n
	                UNION ALL
	                SELECT n, count(*) FROM t_can WHERE m.name = 'm_can' GROUP BY n
	                UNION ALL
	                SELECT n, count(*) FROM t_don WHERE m.name = 'm_don' GROUP BY n
	                UNION ALL
	                SELECT n, count(*) FROM t_fai WHERE m.name = 'm_fai' GROUP BY n) s)
	  FROM migrate.migrations m
	 WHERE m.name <> 'm_run'
	 ORDER BY m.name};
my $before = $node->safe_psql('postgres', $snapshot_q);
note("before the restart:\n$before");
my $run_before = $node->safe_psql('postgres',
	q{SELECT processed FROM migrate.migrations WHERE name = 'm_run'});
like($node->safe_psql('postgres', q{SELECT state FROM migrate.migrations WHERE name = 'm_run'}),
	qr/^running$/, 'm_run is running at the restart');
cmp_ok($run_before, '<', 20000, 'm_run is not finished at the restart');

# sanity of the snapshot: the states are the intended ones
is( $node->safe_psql('postgres', q{
		SELECT string_agg(name || '=' || state, ',' ORDER BY name) FROM migrate.migrations}),
	'm_can=cancelled,m_don=done,m_fai=failed,m_pau=paused,m_reg=registered,m_run=running',
	'one migration in every state before the restart');

$node->restart;

# The launcher resumes m_run ...
poll_ok($node, qq{
		SELECT count(*) = 1
		  FROM pg_stat_activity a, migrate.migrations m
		 WHERE } . worker_of('m_run', 'a') . qq{
		   AND m.name = 'm_run' AND m.processed > $run_before},
	't', 'running migration resumed after the restart with a new worker')
  or diag($node->safe_psql('postgres', 'SELECT * FROM migrate.migrations'));
is($node->safe_psql('postgres', q{SELECT migrate_wait('m_run', '60s')}),
	'done', 'm_run finishes');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1) FROM t_run}),
	'20000|0', 'm_run changed every row exactly once');
is( $node->safe_psql('postgres', q{
		SELECT processed, changed FROM migrate.migrations WHERE name = 'm_run'}),
	'20000|20000', 'm_run counters match the table');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM migrate.events
		 WHERE migration = 'm_run' AND event = 'resume'
		   AND detail = 'resumed after a server restart'}),
	'1', 'the resume is recorded once in migrate.events');

# ... and its recovery pass is over (the launcher idles on its latch)
poll_ok($node, q{
		SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'migrate recovery'},
	't', 'recovery workers finished');

# ... while nothing else moved.
is($node->safe_psql('postgres', $snapshot_q), $before,
	'registered, paused, cancelled, done and failed migrations kept state, cursor, counters and data');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'migrate worker'}),
	'0', 'no migrate worker runs after the running one finished');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM migrate.events
		 WHERE migration <> 'm_run' AND event IN ('start', 'resume', 'restart')
		   AND at > pg_postmaster_start_time()}),
	'0', 'no other migration was started after the restart');
is( $node->safe_psql('postgres', q{
		SELECT string_agg(name || '=' || state, ',' ORDER BY name) FROM migrate.migrations}),
	'm_can=cancelled,m_don=done,m_fai=failed,m_pau=paused,m_reg=registered,m_run=done',
	'final states');

# The stopped ones can still be taken up by hand after the restart.
$node->safe_psql('postgres', q{SELECT migrate_resume('m_pau'); SELECT migrate_start('m_can')});
is($node->safe_psql('postgres', q{SELECT migrate_wait('m_pau', '60s')}), 'done',
	'paused migration resumes by hand and finishes');
is($node->safe_psql('postgres', q{SELECT migrate_wait('m_can', '60s')}), 'done',
	'cancelled migration starts by hand and finishes');
is( $node->safe_psql('postgres', q{
		SELECT (SELECT count(*) FILTER (WHERE n <> 1) FROM t_pau),
		       (SELECT count(*) FILTER (WHERE n <> 1) FROM t_can)}),
	'0|0', 'their rows were changed exactly once');

$node->stop;
done_testing();
