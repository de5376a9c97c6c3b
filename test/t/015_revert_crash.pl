# Quarantine and revert under crashes (issue 4).
#
# A 60,000-row table is migrated with a non-idempotent change
# (n = n + 1, txt = txt || '!') with on_error => 'skip' and
# keep_before => true; a CHECK constraint rejects the change on 30 known
# rows.  The worker is killed with SIGKILL during the forward run and
# again during the revert, and the server is stopped in immediate mode
# once during the revert.  Each time the launcher resumes the work.
#
# After the forward run every good row is changed exactly once, the 30 bad
# rows are in migrate.errors and unchanged.  Then the application changes
# 25 migrated rows, and the migration is reverted: every other row is back
# to its exact original values (exactly once: n = 0 again, not -1), the
# 25 rows keep the application's values and are reported with phase
# 'revert', and only their undo rows are left.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $rows = 60_000;

my $node = migrate_node('revert_crash', 'restart_after_crash = on');

$node->safe_psql('postgres', qq{
	CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0,
	                txt text NOT NULL, bad boolean NOT NULL DEFAULT false,
	                CHECK (NOT (bad AND n > 0)));
	INSERT INTO t (id, txt, bad)
	SELECT g, 'row ' || g, g % 2000 = 7 FROM generate_series(1, $rows) g;
	CREATE TABLE t_before AS SELECT * FROM t;
	ANALYZE t;
	SELECT migrate_register('bump', 't', set_clause => \$\$n = n + 1, txt = txt || '!'\$\$,
	                        batch_size => 300, pause => '5ms',
	                        on_error => 'skip', keep_before => true);
});

# Kill the worker once the counter $col is past $min, and wait until a new
# worker has gone further.
sub kill_and_wait
{
	my ($col, $min, $what) = @_;
	poll_ok($node, qq{
			SELECT $col > $min FROM migrate.migrations WHERE name = 'bump'},
		't', "$what: under way");
	my $pid = worker_pid($node, 'bump');
	like($pid, qr/^\d+$/, "$what: one worker");
	my $before = migration_row($node, 'bump', $col);
	is(kill('KILL', $pid), 1, "$what: SIGKILL sent to the worker");
	wait_resumed($node, 'bump', $what, old_pids => [$pid], column => $col, past => $before);
}

$node->safe_psql('postgres', q{SELECT migrate_start('bump')});
kill_and_wait('processed', 10000, 'forward run');
is($node->safe_psql('postgres', q{SELECT migrate_wait('bump', '300s')}),
	'done', 'forward run is done');

is( $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE n = 1 AND txt = 'row ' || id || '!'),
		       count(*) FILTER (WHERE n = 0 AND bad AND txt = 'row ' || id),
		       count(*) FILTER (WHERE n > 1 OR txt LIKE '%!!')
		  FROM t}),
	($rows - 30) . "|30|0",
	'good rows changed exactly once, bad rows untouched');
is( $node->safe_psql('postgres', q{
		SELECT processed, changed, error_rows FROM migrate_status('bump')}),
	"$rows|" . ($rows - 30) . "|30", 'status counts the skipped rows');
is( $node->safe_psql('postgres', q{
		SELECT count(*), count(DISTINCT key), min(sqlstate), max(sqlstate),
		       bool_and((key->>'id')::int % 2000 = 7)
		  FROM migrate.errors WHERE migration = 'bump' AND phase = 'change'}),
	'30|30|23514|23514|t', 'each bad row recorded once with its SQLSTATE');
is($node->safe_psql('postgres', q{SELECT count(*) FROM migrate.undo WHERE migration = 'bump'}),
	$rows - 30, 'one before-image per changed row');

# the application changes 25 migrated rows after the migration
$node->safe_psql('postgres', q{
	UPDATE t SET txt = 'app ' || id WHERE id % 2000 = 11 AND id <= 50000});

$node->safe_psql('postgres', q{SELECT migrate_revert('bump')});
kill_and_wait('reverted', 10000, 'revert');

# an immediate stop in the middle of the revert
poll_ok($node, q{
		SELECT reverted > 25000 FROM migrate.migrations WHERE name = 'bump'},
	't', 'revert goes on');
$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres', q{SELECT migrate_wait('bump', '300s')}),
	'reverted', 'revert finishes after the faults');

is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM t JOIN t_before b USING (id)
		 WHERE (t.n, t.txt, t.bad) IS NOT DISTINCT FROM (b.n, b.txt, b.bad)}),
	$rows - 25, 'every other row has exactly its original values');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE txt = 'app ' || id AND n = 1), count(*)
		  FROM t WHERE id % 2000 = 11 AND id <= 50000}),
	'25|25', 'rows the application changed keep its values');
is( $node->safe_psql('postgres', q{
		SELECT count(*), count(DISTINCT key), min(sqlstate)
		  FROM migrate.errors WHERE migration = 'bump' AND phase = 'revert'}),
	'25|25|55000', 'each of them reported once by the revert');
is( $node->safe_psql('postgres', q{
		SELECT count(*), bool_and((key->>'id')::int % 2000 = 11)
		  FROM migrate.undo WHERE migration = 'bump'}),
	'25|t', 'only their before-images are left');
is( $node->safe_psql('postgres', q{
		SELECT state, reverting, reverted, worker_pid IS NULL
		  FROM migrate.migrations WHERE name = 'bump'}),
	'reverted|f|' . ($rows - 30 - 25) . '|t', 'migration is reverted');
is( $node->safe_psql('postgres', q{SELECT migrate_forget('bump')}),
	'25', 'migrate_forget drops the rest');

$node->stop;
done_testing();
