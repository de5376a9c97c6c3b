# A long transaction holds a row lock inside the next batch (issue 3,
# "Faults"; issue 2, "Batching and exactly-once").
#
# A background psql session keeps row 5050 locked (SELECT ... FOR UPDATE in
# an open transaction) while a migration with lock_timeout => '100ms' and
# batch_size 100 reaches the batch (5000, 5100].  The batch must give up at
# its lock_timeout and be retried with back-off while the migration stays
# 'running', with the cursor before that batch and none of its rows
# changed; another session updating a row of that batch must not be queued
# behind it for long; once the lock is released the migration finishes,
# every row changed exactly once.  With migrate.max_lock_retries = 3
# (ALTER SYSTEM + reload) the same situation makes the migration fail after
# exactly three attempts with the lock error in last_error, the batch not
# applied; after the lock is gone migrate_start finishes it.  CALL
# migrate_run in the foreground behaves the same way.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;
use Time::HiRes qw(time);

my $node = migrate_node('locks');

is($node->safe_psql('postgres', 'SHOW migrate.max_lock_retries'), '10',
	'migrate.max_lock_retries defaults to 10');

for my $t (qw(t t2))
{
	$node->safe_psql('postgres', qq{
		CREATE TABLE $t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
		INSERT INTO $t (id) SELECT g FROM generate_series(1, 10000) g;
		ANALYZE $t;
	});
}

my $bg = $node->background_psql('postgres');

# --- Part 1: retried until the lock goes away -----------------------------

$bg->query_safe('BEGIN; SELECT id FROM t WHERE id = 5050 FOR UPDATE;');

my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{
	SELECT migrate_register('bump', 't', set_clause => 'n = n + 1',
	                        batch_size => 100, lock_timeout => '100ms');
	SELECT migrate_start('bump');
});

ok( $node->wait_for_log(
		qr/migrate: batch of migration "bump" will be retried \(attempt 3 of 10\)/, $log_offset),
	'the blocked batch is being retried');
ok( $node->log_contains(qr/ERROR:  canceling statement due to lock timeout/, $log_offset),
	'the batch gave up at its lock_timeout');
is( $node->safe_psql('postgres', q{
		SELECT state, cursor->>'id', processed, last_error IS NULL
		  FROM migrate.migrations WHERE name = 'bump'}),
	'running|5000|5000|t', 'while retrying: running, cursor before the blocked batch');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n = 1 AND id > 5000) FROM t}),
	'5000|0', 'while retrying: no row of the blocked batch is changed');
like(worker_pid($node, 'bump'), qr/^\d+$/, 'while retrying: the worker is alive');

# An application update of another row of the blocked batch (which the
# batch locks before it reaches row 5050) gets through well within 3 s.
{
	my $t0 = time;
	my ($ret, $out, $err) = $node->psql('postgres', q{
		SET lock_timeout = '3s';
		UPDATE t SET n = n WHERE id = 5020 RETURNING n;});
	my $secs = time - $t0;
	is($ret, 0, 'an application update inside the blocked batch is not stuck behind it')
	  or diag($err);
	is($out, '0', 'the application update saw the unchanged row');
	cmp_ok($secs, '<', 3, 'the application update was not queued long ('
		  . sprintf('%.2f', $secs) . ' s)');
}

$bg->query_safe('COMMIT;');
is($node->safe_psql('postgres', q{SELECT migrate_wait('bump', '60s')}),
	'done', 'the migration finishes once the lock is gone');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1) FROM t}),
	'10000|0', 'every row changed exactly once');
is( $node->safe_psql('postgres', q{
		SELECT processed, changed, last_error IS NULL FROM migrate.migrations WHERE name = 'bump'}),
	'10000|10000|t', 'counters equal the row count, no error left');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM migrate.events WHERE migration = 'bump' AND event = 'fail'}),
	'0', 'no failure was recorded');

# --- Part 2: migrate.max_lock_retries = 3 --------------------------------

$node->safe_psql('postgres', q{ALTER SYSTEM SET migrate.max_lock_retries = 3});
$node->reload;
poll_ok($node, q{SHOW migrate.max_lock_retries},
	'3', 'migrate.max_lock_retries is now 3');

$bg->query_safe('BEGIN; SELECT id FROM t2 WHERE id = 5050 FOR UPDATE;');
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{
	SELECT migrate_register('bump2', 't2', set_clause => 'n = n + 1',
	                        batch_size => 100, lock_timeout => '100ms');
	SELECT migrate_start('bump2');
});
is($node->safe_psql('postgres', q{SELECT migrate_wait('bump2', '60s')}),
	'failed', 'with the lock held past the retries, the migration fails');
my $err = $node->safe_psql('postgres',
	q{SELECT last_error FROM migrate.migrations WHERE name = 'bump2'});
like($err, qr/lock timeout/, "last_error is the lock error ($err)");
is( $node->safe_psql('postgres', q{
		SELECT cursor->>'id', processed, worker_pid IS NULL
		  FROM migrate.migrations WHERE name = 'bump2'}),
	'5000|5000|t', 'failed with the cursor before the blocked batch');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n = 1 AND id > 5000) FROM t2}),
	'5000|0', 'no row of the blocked batch is changed');
wait_worker_gone($node, 'bump2', 'the worker exited');
{
	my $log = substr(slurp_file($node->logfile), $log_offset);
	my @timeouts = ($log =~ /ERROR:  canceling statement due to lock timeout/g);
	is(scalar(@timeouts), 3, 'exactly three attempts were made');
	like($log, qr/will be retried \(attempt 3 of 3\)/, 'retries counted against the new setting');
	unlike($log, qr/attempt 4 of/, 'no fourth attempt');
}

$bg->query_safe('COMMIT;');
$node->safe_psql('postgres', q{SELECT migrate_start('bump2')});
is($node->safe_psql('postgres', q{SELECT migrate_wait('bump2', '60s')}),
	'done', 'migrate_start finishes it once the lock is gone');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1) FROM t2}),
	'10000|0', 'every row changed exactly once across the lock failure');

# --- Part 3: the same in the foreground, CALL migrate_run ------------------

$node->safe_psql('postgres', q{
	CREATE TABLE t3 (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO t3 (id) SELECT g FROM generate_series(1, 10000) g;
	SELECT migrate_register('fg', 't3', set_clause => 'n = n + 1',
	                        batch_size => 100, lock_timeout => '100ms');
});
$bg->query_safe('BEGIN; SELECT id FROM t3 WHERE id = 5050 FOR UPDATE;');
{
	my ($ret, $out, $err) = $node->psql('postgres', q{CALL migrate_run('fg')});
	isnt($ret, 0, 'foreground: migrate_run fails after the retries');
	like($err, qr/retrying the batch \(attempt 3 of 3\)/, 'foreground: the batch was retried');
	like($err, qr/ERROR:  canceling statement due to lock timeout/,
		'foreground: the lock error is raised');
}
is( $node->safe_psql('postgres', q{
		SELECT state, cursor->>'id', processed, last_error ~ 'lock timeout'
		  FROM migrate.migrations WHERE name = 'fg'}),
	'failed|5000|5000|t', 'foreground: failed with the cursor before the blocked batch');
$bg->query_safe('COMMIT;');
$bg->quit;
$node->safe_psql('postgres', q{CALL migrate_run('fg')});
is( $node->safe_psql('postgres', q{
		SELECT m.state, m.processed, (SELECT count(*) FILTER (WHERE n <> 1) FROM t3)
		  FROM migrate.migrations m WHERE name = 'fg'}),
	'done|10000|0', 'foreground: finishes once the lock is gone, every row once');

$node->stop;
done_testing();
