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
ok( $node->poll_query_until('postgres',
		'SELECT count(*) > 0 FROM pg_stat_activity WHERE ' . worker_of('bump'))
	  || $node->safe_psql('postgres', q{SELECT state FROM migrate.migrations}) eq 'done',
	'worker visible in pg_stat_activity');

is($node->safe_psql('postgres', q{SELECT migrate_wait('bump', '60s')}),
	'done', 'migration finishes');
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE n <> 1) FROM t}),
	'0', 'every row changed exactly once');
is($node->safe_psql('postgres', q{SELECT processed, changed FROM migrate_status('bump')}),
	'50000|50000', 'counters match the table');

$node->stop;
done_testing();
