# The background worker end to end: a migration started with migrate_start
# runs to completion in a worker, shows up in pg_stat_activity, and every
# row is changed exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('worker');

$node->safe_psql('postgres', q{
	CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO t SELECT g, 0 FROM generate_series(1, 50000) g;
	SELECT migrate_register('bump', 't', set_clause => 'n = n + 1', batch_size => 100);
});

$node->safe_psql('postgres', q{SELECT migrate_start('bump')});
# seen while it runs: a run that ends before anybody looked fails here
poll_ok($node, q{
		SELECT (SELECT count(*) > 0 FROM pg_stat_activity WHERE } . worker_of('bump') . q{)
		       || '|' || state
		  FROM migrate.migrations WHERE name = 'bump'},
	qr/^true\|running$/, 'worker visible in pg_stat_activity while it runs',
	stop => qr/^false\|(?!running)/);

is($node->safe_psql('postgres', q{SELECT migrate_wait('bump', '60s')}),
	'done', 'migration finishes');
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE n <> 1) FROM t}),
	'0', 'every row changed exactly once');
is($node->safe_psql('postgres', q{SELECT processed, changed FROM migrate_status('bump')}),
	'50000|50000', 'counters match the table');

$node->stop;
done_testing();
