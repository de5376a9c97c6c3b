# An error in one batch (issue 3, "Faults"; issue 2, "The background worker").
#
# A check constraint forbids changing row 5050, so the batch (5000, 5100]
# of a migration 'n = n + 1' with batch_size 100 fails.  The migration must
# become 'failed' with last_error naming the constraint, its worker must
# exit (no crash loop: it is not restarted), the cursor must stay at 5000,
# processed at 5000, and none of the rows 5001..5100 may be changed (the
# batch is rolled back whole).  After the constraint is fixed,
# migrate_start resumes from the cursor and the migration finishes with
# every row changed exactly once.  The same holds for CALL migrate_run in
# the foreground: the error is raised, the state is failed, the cursor
# stays before the failed batch.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('batcherr');

for my $t (qw(t fg))
{
	$node->safe_psql('postgres', qq{
		CREATE TABLE $t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
		INSERT INTO $t (id) SELECT g FROM generate_series(1, 10000) g;
		ALTER TABLE $t ADD CONSTRAINT ${t}_keep_5050 CHECK (id <> 5050 OR n = 0);
		ANALYZE $t;
	});
}

$node->safe_psql('postgres', q{
	SELECT migrate_register('bump', 't', set_clause => 'n = n + 1', batch_size => 100);
	SELECT migrate_start('bump');
});
is($node->safe_psql('postgres', q{SELECT migrate_wait('bump', '60s')}),
	'failed', 'the migration fails at the bad batch');
my $err = $node->safe_psql('postgres',
	q{SELECT last_error FROM migrate.migrations WHERE name = 'bump'});
like($err, qr/new row for relation "t" violates check constraint "t_keep_5050"/,
	"last_error names the error ($err)");
is( $node->safe_psql('postgres', q{
		SELECT cursor->>'id', processed, changed, worker_pid IS NULL
		  FROM migrate.migrations WHERE name = 'bump'}),
	'5000|5000|5000|t', 'cursor and counters stay before the failed batch');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE n = 1 AND id <= 5000),
		       count(*) FILTER (WHERE n = 0 AND id > 5000),
		       count(*) FILTER (WHERE n = 1 AND id BETWEEN 5001 AND 5100)
		  FROM t}),
	'5000|5000|0', 'nothing of the failed batch was applied');
poll_ok($node, q{
		SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'migrate worker'},
	't', 'the worker exited');
is( $node->safe_psql('postgres', q{
		SELECT string_agg(event, ',' ORDER BY id) FROM migrate.events WHERE migration = 'bump'}),
	'register,start,fail', 'events: register, start, fail');
is( $node->safe_psql('postgres', q{
		SELECT detail FROM migrate.events WHERE migration = 'bump' AND event = 'fail'}),
	$err, 'the fail event carries the error');
# one failure logged, no crash, no restart of the worker
my $log = slurp_file($node->logfile);
my @fails = ($log =~ /ERROR:  new row for relation "t" violates check constraint/g);
is(scalar(@fails), 1, 'the failing batch ran once: no crash loop');
unlike($log, qr/terminated by signal|exited with exit code [^01]/, 'no process crashed');
is( $node->safe_psql('postgres', q{SELECT state, processed FROM migrate.migrations WHERE name = 'bump'}),
	'failed|5000', 'still failed and unchanged afterwards');

# Fix the data problem, then resume.
$node->safe_psql('postgres', 'ALTER TABLE t DROP CONSTRAINT t_keep_5050');
my $row = $node->safe_psql('postgres', q{SELECT (m).state, (m).last_error IS NULL FROM migrate_start('bump') m});
is($row, 'running|t', 'migrate_start after the fix: running, last_error cleared');
is($node->safe_psql('postgres', q{SELECT migrate_wait('bump', '60s')}),
	'done', 'the migration finishes after the fix');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1) FROM t}),
	'10000|0', 'every row changed exactly once across the failure');
is( $node->safe_psql('postgres', q{
		SELECT processed, changed, last_error IS NULL FROM migrate.migrations WHERE name = 'bump'}),
	'10000|10000|t', 'counters equal the row count');
is( $node->safe_psql('postgres', q{
		SELECT string_agg(event, ',' ORDER BY id) FROM migrate.events WHERE migration = 'bump'}),
	'register,start,fail,resume,done', 'events: resumed from the cursor');

# The same in the foreground.
$node->safe_psql('postgres', q{
	SELECT migrate_register('fgbump', 'fg', set_clause => 'n = n + 1', batch_size => 100)});
my ($ret, $out, $stderr) = $node->psql('postgres', q{CALL migrate_run('fgbump')});
isnt($ret, 0, 'migrate_run raises the batch error');
like($stderr, qr/violates check constraint "fg_keep_5050"/, 'migrate_run error names the constraint');
is( $node->safe_psql('postgres', q{
		SELECT state, cursor->>'id', processed, last_error ~ 'fg_keep_5050'
		  FROM migrate.migrations WHERE name = 'fgbump'}),
	'failed|5000|5000|t', 'foreground: failed, cursor before the failed batch');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n = 1 AND id > 5000) FROM fg}),
	'5000|0', 'foreground: nothing of the failed batch was applied');
$node->safe_psql('postgres', 'ALTER TABLE fg DROP CONSTRAINT fg_keep_5050');
$node->safe_psql('postgres', q{CALL migrate_run('fgbump')});
is( $node->safe_psql('postgres', q{
		SELECT m.state, m.processed, (SELECT count(*) FILTER (WHERE n <> 1) FROM fg)
		  FROM migrate.migrations m WHERE name = 'fgbump'}),
	'done|10000|0', 'foreground: resumes after the fix and changes every row once');

$node->stop;
done_testing();
