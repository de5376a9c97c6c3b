# DDL on the migrated table while the migration runs (issue 3, "Faults").
#
# Three migrations run in background workers; meanwhile one table is
# dropped, one renamed, and one loses the column the change writes.  Each
# migration must end 'failed' with a last_error that says what went wrong
# (table does not exist / column does not exist), its worker must exit and
# release it (no worker_pid, nothing in pg_stat_activity), the failure must
# be in migrate.events, and the renamed table must still agree with the
# counters (no half batch).  A fourth migration on an untouched table runs
# alongside and must finish normally, and the server must not restart.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('ddl');

my $started = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');

for my $t (qw(t_drop t_ren t_col t_other))
{
	$node->safe_psql('postgres', qq{
		CREATE TABLE $t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
		INSERT INTO $t (id) SELECT g FROM generate_series(1, 20000) g;
		ANALYZE $t;
		SELECT migrate_register('m_' || substr('$t', 3), '$t', set_clause => 'n = n + 1',
		                        batch_size => 100, pause => '20ms');
		SELECT migrate_start('m_' || substr('$t', 3));
	});
}

for my $m (qw(m_drop m_ren m_col m_other))
{
	poll_ok($node, qq{
			SELECT processed >= 1000 AND state = 'running'
			  FROM migrate.migrations WHERE name = '$m'},
		't', "$m is running and making progress");
}

$node->safe_psql('postgres', 'DROP TABLE t_drop');
$node->safe_psql('postgres', 'ALTER TABLE t_ren RENAME TO t_ren2');
$node->safe_psql('postgres', 'ALTER TABLE t_col DROP COLUMN n');

my %expect = (
	m_drop => qr/t_drop.*does not exist|does not exist.*t_drop/,
	m_ren => qr/t_ren.*does not exist|does not exist.*t_ren/,
	m_col => qr/column "n".* does not exist/);

for my $m (sort keys %expect)
{
	is($node->safe_psql('postgres', qq{SELECT migrate_wait('$m', '60s')}),
		'failed', "$m fails");
	my $err = $node->safe_psql('postgres',
		qq{SELECT last_error FROM migrate.migrations WHERE name = '$m'});
	like($err, $expect{$m}, "$m: last_error says what happened ($err)");
	wait_worker_gone($node, $m, "$m: worker exited");
	is( $node->safe_psql('postgres', qq{
			SELECT worker_pid IS NULL, finished_at IS NOT NULL,
			       (SELECT worker_pid IS NULL FROM migrate_status('$m'))
			  FROM migrate.migrations WHERE name = '$m'}),
		't|t|t', "$m: no worker recorded, finished_at set");
	is( $node->safe_psql('postgres', qq{
			SELECT count(*) FROM migrate.events e, migrate.migrations m
			 WHERE e.migration = '$m' AND e.event = 'fail'
			   AND m.name = '$m' AND e.detail = m.last_error}),
		'1', "$m: the failure is in migrate.events with its error");
}

# The renamed table holds exactly what the counters say.
is(cursor_agrees($node, 'm_ren', 't_ren2'), 't',
	'renamed table agrees with the cursor and counters');

# A failed migration can be started again once the table is back.
$node->safe_psql('postgres', 'ALTER TABLE t_ren2 RENAME TO t_ren');
$node->safe_psql('postgres', q{SELECT migrate_start('m_ren')});
is($node->safe_psql('postgres', q{SELECT migrate_wait('m_ren', '60s')}),
	'done', 'm_ren resumes after the table got its name back');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1) FROM t_ren}),
	'20000|0', 'm_ren: every row changed exactly once across the failure');

# Nothing else is disturbed.
is($node->safe_psql('postgres', q{SELECT migrate_wait('m_other', '60s')}),
	'done', 'the migration of an untouched table finishes');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1) FROM t_other}),
	'20000|0', 'untouched table: every row changed exactly once');
is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'),
	$started, 'the server did not restart');
ok(!$node->log_contains(qr/terminated by signal|server process .* exited with exit code [^01]/),
	'no process crashed');

$node->stop;
done_testing();
