# Exactly once under crashes (issue 3, "Faults", first item).
#
# A 200,000-row table with a counter n = 0 is migrated with
# set_clause 'n = n + 1' in batches of 200, with shared_preload_libraries =
# 'migrate'.  While the migration runs, its worker is killed with SIGKILL
# twice (the postmaster then restarts every process) and the server is
# stopped in immediate mode and started once.  Each time the launcher must
# resume the migration on its own, within a few seconds, with a new worker
# that makes progress beyond the point reached before the fault.  At the
# end the migration is done, every row has n = 1 exactly (no batch lost,
# none applied twice) and processed equals the row count.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $rows = 200_000;

my $node = migrate_node('crash', 'restart_after_crash = on');

$node->safe_psql('postgres', qq{
	CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO t (id) SELECT g FROM generate_series(1, $rows) g;
	ANALYZE t;
	SELECT migrate_register('bump', 't', set_clause => 'n = n + 1',
	                        batch_size => 200, pause => '10ms');
});

# Wait until a worker other than $old_pid runs 'bump' and the migration has
# gone beyond $min_processed rows, within 30 s; return the new pid.
sub resumed
{
	my ($old_pid, $min_processed, $what) = @_;
	return wait_resumed($node, 'bump', $what, old_pids => [$old_pid],
		past => $min_processed, within => 30);
}

# Current progress, read just before a fault.
sub processed
{
	return migration_row($node, 'bump', 'processed');
}

$node->safe_psql('postgres', q{SELECT migrate_start('bump')});
poll_ok($node, q{SELECT processed > 2000 FROM migrate.migrations WHERE name = 'bump'},
	't', 'migration is under way');
my $pid = worker_pid($node, 'bump');
like($pid, qr/^\d+$/, 'one migrate worker is running');

my @pid_killed;

# Two SIGKILLs of the worker: the postmaster treats them as crashes and
# reinitializes; the launcher must bring the migration back.
for my $round (1, 2)
{
	my $before = processed();
	cmp_ok($before, '<', $rows, "kill $round: migration not finished yet");
	is(kill('KILL', $pid), 1, "kill $round: SIGKILL sent to worker $pid");
	push @pid_killed, $pid;
	$pid = resumed($pid, $before, "kill $round");
}

# Immediate shutdown and start.
{
	my $before = processed();
	cmp_ok($before, '<', $rows, 'immediate stop: migration not finished yet');
	$node->stop('immediate');
	$node->start;
	$pid = resumed(0, $before, 'immediate stop');
}

is($node->safe_psql('postgres', q{SELECT migrate_wait('bump', '120s')}),
	'done', 'migration finishes after the faults');
is( $node->safe_psql('postgres', q{
		SELECT count(*), count(*) FILTER (WHERE n = 1),
		       count(*) FILTER (WHERE n = 0), count(*) FILTER (WHERE n > 1)
		  FROM t}),
	"$rows|$rows|0|0", 'every row changed exactly once');
is( $node->safe_psql('postgres', q{
		SELECT state, processed, changed, last_error IS NULL, worker_pid IS NULL
		  FROM migrate.migrations WHERE name = 'bump'}),
	"done|$rows|$rows|t|t", 'processed and changed equal the row count');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM migrate.events
		 WHERE migration = 'bump' AND event = 'resume'
		   AND detail = 'resumed after a server restart'}),
	'3', 'three restarts recorded in migrate.events');

# The kills were real crashes, handled by the postmaster.
ok( $node->log_contains(
		qr/background worker "migrate worker" \(PID $pid_killed[0]\) was terminated by signal 9/),
	'server log shows the first worker was killed by signal 9');
ok( $node->log_contains(
		qr/background worker "migrate worker" \(PID $pid_killed[1]\) was terminated by signal 9/),
	'server log shows the second worker was killed by signal 9');

$node->stop;
done_testing();
