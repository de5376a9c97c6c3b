# Load-aware pacing: while another session is at work the worker rests
# between batches and migrate_status says why; when the load goes it runs
# at full speed again, and finishes with every row changed once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('busy');

# "state|throttled|processed" of the migration
my $status_q = q{
	SELECT state || '|' || coalesce(throttled, '') || '|' || processed
	  FROM migrate_status('paced')};

$node->safe_psql('postgres', q{
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
poll_ok($node, q{
		SELECT count(*) > 0 FROM pg_stat_activity
		 WHERE query LIKE 'SELECT count(*) FROM generate_series%' AND state = 'active'},
	't', 'the other session is at work');

$node->safe_psql('postgres', q{SELECT migrate_start('paced')});
# (a run that ends without holding back fails at once)
poll_ok($node, $status_q, qr/^running\|server busy/,
	'the worker notices the load and says it holds back', stop => qr/^(?!running)/);
is($node->safe_psql('postgres', q{SELECT state FROM migrate.migrations WHERE name = 'paced'}),
	'running', 'it keeps running while it rests');

# the load goes away
$node->safe_psql('postgres', q{
	SELECT pg_cancel_backend(pid) FROM pg_stat_activity
	 WHERE query LIKE 'SELECT count(*) FROM generate_series%' AND state = 'active'});
# psql may already have ended on the cancel (ON_ERROR_STOP)
eval { $busy->quit; };
# it must be seen running unthrottled: a run that ends still holding
# back fails (it used to pass on 'done')
my $held_at = (split /\|/, $node->safe_psql('postgres', $status_q))[2];
poll_ok($node, $status_q, qr/^running\|\|\d+$/,
	'without the load it stops holding back while it still runs',
	stop => qr/^(?!running)/);
# and goes on
poll_ok($node, qq{SELECT processed > $held_at FROM migrate_status('paced')}, 't',
	"it goes on beyond the $held_at rows it had when the load went");
is($node->safe_psql('postgres', q{SELECT migrate_wait('paced', '120s')}), 'done',
	'the migration finishes');
is($node->safe_psql('postgres', q{SELECT n, count(*) FROM t GROUP BY n}), '1|200000',
	'every row exactly once');

$node->stop;
done_testing();
