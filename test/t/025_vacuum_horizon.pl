# Vacuum and the xmin horizon (issue 19).
#
# A session holding a snapshot keeps VACUUM from removing any row version
# that died after it began.  While one does, the migration's worker runs no
# vacuum (it could remove nothing) and its throttled reason names the
# process that holds the horizon back; once that session ends, the worker
# vacuums again.  Waiting for a migration with CALL migrate_await holds no
# snapshot (the waiting backend shows no backend_xmin), where SELECT
# migrate_wait holds one for the whole wait and says so with a WARNING
# after ten seconds.  Every row is changed exactly once all along.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('horizon');

$node->safe_psql('postgres', q{
	CREATE TABLE t (id bigint PRIMARY KEY, email text NOT NULL, n int NOT NULL DEFAULT 0)
		WITH (autovacuum_enabled = off);
	INSERT INTO t (id, email) SELECT g, 'user' || g FROM generate_series(1, 300000) g;
	VACUUM ANALYZE t;
});

# the holder: an open REPEATABLE READ transaction with its snapshot taken
my $holder = $node->background_psql('postgres');
my $holder_pid = $holder->query_safe('SELECT pg_backend_pid()');
$holder->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class;');

$node->safe_psql('postgres', q{
	SELECT migrate_register('m', 't', set_clause => 'n = n + 1',
	                        batch_size => 1000, pause => '80ms');
	SELECT migrate_start('m');
});

poll_ok($node, qq{
		SELECT throttled LIKE '%vacuum cannot remove the replaced rows: process $holder_pid (%'
		   AND throttled LIKE '%holds back the xmin horizon%'
		  FROM migrate_status('m')},
	't', 'throttled names the process that holds the horizon back');
is($node->safe_psql('postgres', q{SELECT vacuums, state FROM migrate_status('m')}),
	'0|running', 'no vacuum runs while it could remove nothing');

# CALL migrate_await commits between its looks: it holds nothing back
my $awaiter = $node->background_psql('postgres');
my $await_pid = $awaiter->query_safe('SELECT pg_backend_pid()');
$awaiter->query_until(qr/awaiting/, "\\echo awaiting\nCALL migrate_await('m');\n");
# ten looks, 0.15 s apart, while the migration runs
my ($await_looks) = sample_series($node, qq{
	SELECT (backend_xmin IS NULL AND backend_xid IS NULL) || '|' || m.state
	  FROM pg_stat_activity, migrate.migrations m
	 WHERE pid = $await_pid AND m.name = 'm'}, looks => 10, interval => 0.15);
my $await_free = grep { $_ eq 'true|running' } @$await_looks;
cmp_ok($await_free, '>=', 8,
	"CALL migrate_await held no snapshot in $await_free of 10 looks, the migration running")
  or diag(join("\n", @$await_looks));

# the holder lets go: the worker vacuums again
$holder->query_safe('COMMIT');
poll_ok($node, q{
		SELECT vacuums > 0 AND (throttled IS NULL OR throttled NOT LIKE '%vacuum cannot%')
		  FROM migrate_status('m')},
	't', 'once the horizon moves on, the worker vacuums');

# SELECT migrate_wait is one statement: it holds its snapshot all along,
# the worker names it, and it says what it costs
my $waiter = $node->background_psql('postgres');
my $wait_pid = $waiter->query_safe('SELECT pg_backend_pid()');
$waiter->query_until(qr/waiting/, "\\echo waiting\nSELECT migrate_wait('m');\n");
poll_ok($node, qq{
		SELECT throttled LIKE '%vacuum cannot remove the replaced rows: process $wait_pid (%'
		  FROM migrate_status('m')},
	't', 'a session in SELECT migrate_wait holds the horizon back, and is named');

my ($await_out) = $awaiter->query('SELECT 1');
like($await_out, qr/^done\n1$/, 'CALL migrate_await returned the state done');
my ($wait_out) = $waiter->query('SELECT 1');
like($wait_out, qr/^done\n1$/, 'SELECT migrate_wait returned done');
like($waiter->{stderr},
	qr/WARNING:  migrate_wait has kept vacuum from removing dead rows for 10 seconds/,
	'migrate_wait warned that it holds back vacuum');
unlike($awaiter->{stderr}, qr/WARNING/, 'migrate_await warned of nothing');
$_->quit for ($holder, $awaiter, $waiter);

is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE n = 1), count(*) FROM t}),
	'300000|300000', 'every row changed exactly once');
ok($node->log_contains(qr/migrate: migration "m" cannot vacuum public\.t/),
	'the log says when the worker cannot vacuum');
ok($node->log_contains(qr/migrate: migration "m" vacuums public\.t again/),
	'and when it can again');

# migrate_await is a procedure: inside a transaction it refuses
my ($ret, $out, $err) = $node->psql('postgres', q{BEGIN; CALL migrate_await('m'); COMMIT;});
like($err, qr/migrate_await must be called with CALL outside a transaction block/,
	'migrate_await refuses to run inside a transaction block');

$node->stop;
done_testing();
