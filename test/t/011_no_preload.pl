# migrate works without shared_preload_libraries (issue 2, "The background
# worker").
#
# Without preloading: migrate_start runs the migration in a dynamic
# background worker (backend_type 'migrate worker', its activity naming
# "<name>") to the end, every row changed once; the
# migrate.max_workers setting from postgresql.conf is honoured (a second
# start errors clearly); after a server restart there is no launcher, so a
# migration that was running has no worker, migrate_status shows none, and
# migrate_start takes it over from its cursor and finishes it exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('nopreload', { preload => '' }, 'migrate.max_workers = 1');

$node->safe_psql('postgres', q{
	CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO t (id) SELECT g FROM generate_series(1, 20000) g;
	CREATE TABLE u (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO u (id) SELECT g FROM generate_series(1, 1000) g;
	ANALYZE t; ANALYZE u;
	SELECT migrate_register('bump', 't', set_clause => 'n = n + 1',
	                        batch_size => 100, pause => '20ms');
	SELECT migrate_register('other', 'u', set_clause => 'n = n + 1');
});
is($node->safe_psql('postgres', q{SHOW shared_preload_libraries}), '',
	'nothing is preloaded');

$node->safe_psql('postgres', q{SELECT migrate_start('bump')});
poll_ok($node, q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE } . worker_of('bump') . q{},
	't', 'the migration runs in a dynamic background worker');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'migrate launcher'}),
	'0', 'there is no launcher');

my ($ret, $out, $err) = $node->psql('postgres', q{SELECT migrate_start('other')});
isnt($ret, 0, 'migrate.max_workers = 1 from postgresql.conf is honoured');
like($err, qr/all 1 migrate workers are busy/, 'with a clear error');
is($node->safe_psql('postgres', q{SELECT state FROM migrate.migrations WHERE name = 'other'}),
	'registered', 'the refused migration is left registered');

poll_ok($node, q{
		SELECT processed >= 2000 FROM migrate.migrations WHERE name = 'bump'},
	't', 'the migration makes progress');
$node->restart;

my $p = $node->safe_psql('postgres', q{
	SELECT processed FROM migrate.migrations WHERE name = 'bump'});
cmp_ok($p, '<', 20000, 'it was interrupted by the restart');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'migrate%'}),
	'0', 'after the restart nothing runs it');
is($node->safe_psql('postgres', q{SELECT worker_pid IS NULL FROM migrate_status('bump')}),
	't', 'migrate_status shows no worker');
is(cursor_agrees($node, 'bump', 't'), 't', 'the table agrees with the cursor and counters');

is($node->safe_psql('postgres', q{SELECT (m).state FROM migrate_start('bump') m}),
	'running', 'migrate_start takes the migration over');
is( $node->safe_psql('postgres', q{
		SELECT detail FROM migrate.events WHERE migration = 'bump' ORDER BY id DESC LIMIT 1}),
	'taken over: no process was running it', 'the take-over is recorded');
is($node->safe_psql('postgres', q{SELECT migrate_wait('bump', '60s')}), 'done',
	'the migration finishes');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1) FROM t}),
	'20000|0', 'every row changed exactly once');
is($node->safe_psql('postgres', q{SELECT processed FROM migrate.migrations WHERE name = 'bump'}),
	'20000', 'processed equals the row count');

$node->safe_psql('postgres', q{SELECT migrate_start('other')});
is($node->safe_psql('postgres', q{SELECT migrate_wait('other', '60s')}), 'done',
	'the second migration runs once the worker is free');

$node->stop;
done_testing();
