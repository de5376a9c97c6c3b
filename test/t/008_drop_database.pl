# A worker must never make DROP DATABASE or DROP EXTENSION hang (issue 2,
# "The background worker"; issue 3, "Faults").
#
# With a migration running in database d2:
# - DROP DATABASE d2 without FORCE fails with the usual "is being accessed
#   by other users" error, within PostgreSQL's usual 5 s wait, and the
#   migration goes on undisturbed;
# - DROP DATABASE d2 WITH (FORCE) succeeds within seconds: the worker gives
#   way to the SIGTERM, the database is gone, no worker is left and no
#   process crashed.
# With a migration running in database d3, DROP EXTENSION migrate either
# refuses with a clear error (and the migration keeps running) or succeeds
# and the worker is gone within seconds, without a crash.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use MigrateTest;

# the extension lives in d2 and d3 only
my $node = migrate_node('dropdb', { extension => 0 });
my $started = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');

for my $db (qw(d2 d3))
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, q{
		CREATE EXTENSION migrate;
		CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
		INSERT INTO t (id) SELECT g FROM generate_series(1, 50000) g;
		ANALYZE t;
		SELECT migrate_register('bump', 't', set_clause => 'n = n + 1',
		                        batch_size => 100, pause => '50ms');
		SELECT migrate_start('bump');
	});
	poll_ok($node, q{
			SELECT processed >= 200 AND state = 'running'
			  FROM migrate.migrations WHERE name = 'bump'},
		't', "$db: migration is running", db => $db);
}

my $worker_in = sub {
	my $db = shift;
	return $node->safe_psql('postgres', qq{
		SELECT count(*) FROM pg_stat_activity
		 WHERE backend_type = 'migrate worker' AND datname = '$db'});
};
is($worker_in->('d2'), '1', 'd2: one migrate worker is connected');

# --- DROP DATABASE without FORCE -----------------------------------------
{
	my $t0 = time;
	my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE d2');
	my $secs = time - $t0;
	isnt($ret, 0, 'DROP DATABASE without FORCE fails');
	like($err, qr/database "d2" is being accessed by other users/,
		'with the usual error');
	like($err, qr/There is 1 other session using the database/,
		'counting the worker as the one other session');
	cmp_ok($secs, '<', 15, 'and does not hang (' . sprintf('%.1f', $secs) . ' s)');
}
my $p = $node->safe_psql('d2',
	q{SELECT processed FROM migrate.migrations WHERE name = 'bump'});
poll_ok($node, qq{
		SELECT processed > $p AND state = 'running'
		  FROM migrate.migrations WHERE name = 'bump'},
	't', 'd2: the migration goes on after the failed DROP DATABASE', db => 'd2');

# --- DROP DATABASE WITH (FORCE) ------------------------------------------
{
	my $t0 = time;
	my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE d2 WITH (FORCE)');
	my $secs = time - $t0;
	is($ret, 0, 'DROP DATABASE WITH (FORCE) succeeds') or diag($err);
	cmp_ok($secs, '<', 10, 'promptly (' . sprintf('%.1f', $secs) . ' s)');
}
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_database WHERE datname = 'd2'}),
	'0', 'd2 is gone');
poll_ok($node, q{
		SELECT count(*) = 0 FROM pg_stat_activity
		 WHERE backend_type = 'migrate worker' AND datname IS DISTINCT FROM 'd3'},
	't', 'the d2 worker is gone');
is($worker_in->('d3'), '1', 'the d3 migration is not disturbed');

# --- DROP EXTENSION with a running migration -----------------------------
{
	my $t0 = time;
	my ($ret, $out, $err) = $node->psql('d3', 'DROP EXTENSION migrate');
	my $secs = time - $t0;
	cmp_ok($secs, '<', 10, 'DROP EXTENSION returns promptly (' . sprintf('%.1f', $secs) . ' s)');
	if ($ret != 0)
	{
		like($err, qr/migrat.*(running|worker)|(running|worker).*migrat/i,
			"DROP EXTENSION refuses clearly ($err)");
		is( $node->safe_psql('d3',
				q{SELECT state FROM migrate.migrations WHERE name = 'bump'}),
			'running', 'the migration keeps running after the refusal');
		$node->safe_psql('d3', q{SELECT migrate_cancel('bump')});
		is($node->safe_psql('d3', q{SELECT migrate_wait('bump', '30s')}), 'cancelled',
			'it can then be cancelled');
	}
	else
	{
		pass('DROP EXTENSION succeeded');
		poll_ok($node, q{
				SELECT count(*) = 0 FROM pg_stat_activity
				 WHERE backend_type = 'migrate worker' AND datname = 'd3'},
			't', 'its worker is gone');
		is($node->safe_psql('d3', q{SELECT count(*) FROM pg_namespace WHERE nspname = 'migrate'}),
			'0', 'the catalog schema is gone');
	}
	my $t = $node->safe_psql('d3', q{
		SELECT count(*) FILTER (WHERE n NOT IN (0, 1)) FROM t});
	is($t, '0', 'd3: no row changed twice');
}

is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'),
	$started, 'the server did not restart');
ok(!$node->log_contains(qr/terminated by signal|exited with exit code [^01]/),
	'no process crashed');

$node->stop;
done_testing();
