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
poll_ok($node, q{SELECT v > 1000 FROM counter},
	't', 'the workload commits');

# "state|throttled|processed|the workload's commits" of a migration
my $look_q = q{
	SELECT state || '|' || coalesce(throttled, '') || '|' || processed
	       || '|' || (SELECT v FROM counter)
	  FROM migrate_status('%s')};

# Both waits below stop at once, and fail, when the run ends before the
# reason showed: they used to pass on a run that never had a budget.
$node->safe_psql('postgres', q{SELECT migrate_start('paced')});
poll_ok($node, sprintf($look_q, 'paced'),
	qr/^running\|measuring the workload while the migration rests\|/,
	'the worker rests to measure the workload at rest',
	stop => qr/^(?!running)/);
poll_ok($node, sprintf($look_q, 'paced'),
	qr/^running\|server busy \(workload at [0-9]+% of its rate at rest, waiting on .*\): WAL budget [0-9]+ kB\/s\|/,
	'then it runs under a WAL budget and says how much the workload keeps',
	stop => qr/^(?!running)/);
is($node->safe_psql('postgres', q{SELECT migrate_wait('paced', '300s')}),
	'done', 'the paced migration finishes under the workload');

# 0: no budget at all, so never a probe.  The window is the whole run,
# from migrate_start until it is no longer running, looked at every 0.1 s:
# a probe rests about 3 s (PROBE_SETTLE_MS + PROBE_COUNT_MS), so it could
# not fall between two looks.  The series must show the run under way
# (many looks while running, its progress moving) with the workload still
# committing, and no look a probe or a budget.
$node->safe_psql('postgres', q{SELECT migrate_start('unpaced')});
my ($series, $ended) = sample_series($node, sprintf($look_q, 'unpaced'),
	until => qr/^(?!running)/, timeout => 300);
my @running = map { [ split /\|/, $_, -1 ] } grep { /^running\|/ } @$series;
ok($ended, 'unpaced: the window ended with the run ('
	  . scalar(@$series) . ' looks, ' . scalar(@running) . ' while running)');
cmp_ok(scalar(@running), '>=', 10, 'unpaced: looked at the run at least ten times');
my %progress = map { $_->[2] => 1 } @running;
cmp_ok(scalar(keys %progress), '>=', 3,
	'unpaced: the looks saw its progress move (' . scalar(keys %progress) . ' values)');
cmp_ok(@running ? $running[-1][3] : 0, '>', @running ? $running[0][3] : 0,
	'unpaced: the workload committed while the run was watched');
my @probed = grep { /^running\|(measuring|.*WAL budget)/ } @$series;
is(scalar(@probed), 0, 'with max_wal_rate => 0 the worker neither probes nor keeps a budget')
  or diag(join("\n", @probed));
is($node->safe_psql('postgres', q{SELECT migrate_wait('unpaced', '300s')}),
	'done', 'the unpaced migration finishes');

$node->safe_psql('postgres', q{UPDATE stop_churn SET stop = true});
$churn->quit;

is($node->safe_psql('postgres', q{SELECT n, count(*) FROM t GROUP BY n}),
	'2|300000', 'every row changed exactly once by each migration');

$node->stop;
done_testing();
