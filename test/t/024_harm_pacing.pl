# Pacing on measured harm (issue 10): while a workload commits many small
# transactions, the worker first rests to measure the workload's rate at
# rest, then runs under a WAL budget it moves by the harm it measures, and
# says so in migrate_status; a migration with max_wal_rate => 0 has no
# budget.  Both finish with every row changed exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('harm');
$node->safe_psql('postgres', q{
	CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0,
	                pad text NOT NULL DEFAULT repeat('x', 200));
	INSERT INTO t (id) SELECT g FROM generate_series(1, 300000) g;
	CREATE TABLE counter (v bigint NOT NULL);
	INSERT INTO counter VALUES (0);
	CREATE TABLE stop_churn (stop boolean NOT NULL);
	INSERT INTO stop_churn VALUES (false);
	-- the workload: one small write transaction after another
	CREATE PROCEDURE churn() LANGUAGE plpgsql AS $$
	BEGIN
		LOOP
			UPDATE counter SET v = v + 1;
			COMMIT;
			EXIT WHEN (SELECT stop FROM stop_churn);
		END LOOP;
	END $$;
	SELECT migrate_register('paced', 't', set_clause => 'n = n + 1',
	                        max_batch_size => 2000);
	SELECT migrate_register('unpaced', 't', set_clause => 'n = n + 1',
	                        max_batch_size => 2000, max_wal_rate => 0);
});

my $churn = $node->background_psql('postgres', timeout => 900);
$churn->query_until(qr/started/, q{
	\echo started
	CALL churn();
});
ok( $node->poll_query_until('postgres',
		q{SELECT v > 1000 FROM counter}),
	'the workload commits');

$node->safe_psql('postgres', q{SELECT migrate_start('paced')});
ok( $node->poll_query_until('postgres', q{
		SELECT throttled = 'measuring the workload while the migration rests'
		  FROM migrate_status('paced')}),
	'the worker rests to measure the workload at rest');
ok( $node->poll_query_until('postgres', q{
		SELECT state <> 'running'
		    OR throttled ~ '^server busy \(workload at [0-9]+% of its rate at rest, waiting on .*\): WAL budget [0-9]+ kB/s$'
		  FROM migrate_status('paced')}),
	'then it runs under a WAL budget and says how much the workload keeps');
is($node->safe_psql('postgres', q{SELECT migrate_wait('paced', '300s')}),
	'done', 'the paced migration finishes under the workload');

# 0: no budget at all, so never a probe
$node->safe_psql('postgres', q{SELECT migrate_start('unpaced')});
my $probed = 0;
while ($node->safe_psql('postgres',
		q{SELECT state FROM migrate.migrations WHERE name = 'unpaced'}) eq 'running')
{
	$probed ||= $node->safe_psql('postgres', q{
		SELECT count(*) FROM migrate_status('unpaced')
		 WHERE throttled LIKE 'measuring%' OR throttled LIKE '%WAL budget%'});
}
is($probed, 0, 'with max_wal_rate => 0 the worker neither probes nor keeps a budget');
is($node->safe_psql('postgres', q{SELECT migrate_wait('unpaced', '300s')}),
	'done', 'the unpaced migration finishes');

$node->safe_psql('postgres', q{UPDATE stop_churn SET stop = true});
$churn->quit;

is($node->safe_psql('postgres', q{SELECT n, count(*) FROM t GROUP BY n}),
	'2|300000', 'every row changed exactly once by each migration');

$node->stop;
done_testing();
