# Load-aware pacing: while another session is at work the worker rests
# between batches and migrate_status says why; when the load goes it runs
# at full speed again, and finishes with every row changed once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('busy');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'migrate'");
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION migrate;
	CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO t SELECT g FROM generate_series(1, 200000) g;
	SELECT migrate_register('paced', 't', set_clause => 'n = n + 1',
	                        batch_size => 500, pause => '20ms');
});

# another session busy with a long query
my $busy = $node->background_psql('postgres');
$busy->query_until(qr/started/, q{
	\echo started
	SELECT count(*) FROM generate_series(1, 2000000000);
});
ok( $node->poll_query_until('postgres', q{
		SELECT count(*) > 0 FROM pg_stat_activity
		 WHERE query LIKE 'SELECT count(*) FROM generate_series%' AND state = 'active'}),
	'the other session is at work');

$node->safe_psql('postgres', q{SELECT migrate_start('paced')});
ok( $node->poll_query_until('postgres', q{
		SELECT throttled LIKE 'server busy%' FROM migrate_status('paced')}),
	'the worker notices the load and says it holds back');
is($node->safe_psql('postgres', q{SELECT state FROM migrate.migrations WHERE name = 'paced'}),
	'running', 'it keeps running while it rests');

# the load goes away
$node->safe_psql('postgres', q{
	SELECT pg_cancel_backend(pid) FROM pg_stat_activity
	 WHERE query LIKE 'SELECT count(*) FROM generate_series%' AND state = 'active'});
# psql may already have ended on the cancel (ON_ERROR_STOP)
eval { $busy->quit; };
ok( $node->poll_query_until('postgres', q{
		SELECT state = 'done' OR throttled IS NULL FROM migrate_status('paced')}),
	'without the load it stops holding back');
is($node->safe_psql('postgres', q{SELECT migrate_wait('paced', '120s')}), 'done',
	'the migration finishes');
is($node->safe_psql('postgres', q{SELECT n, count(*) FROM t GROUP BY n}), '1|200000',
	'every row exactly once');

$node->stop;
done_testing();
