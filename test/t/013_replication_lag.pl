# Throttling on replication lag: while a standby's replay lag exceeds
# migrate.max_replication_lag the worker starts no batch and migrate_status
# says why; once the limit allows it, the migration goes on and finishes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

# the extension is created once the standby streams, so that it replays it
my $primary = migrate_node('primary', { init => { allows_streaming => 1 }, extension => 0 },
	q{migrate.max_replication_lag = '1s'},
	q{wal_receiver_status_interval = '1s'});
$primary->backup('base');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
# the standby replays everything 5 s late: its replay lag grows with our writes
$standby->append_conf('postgresql.conf', qq{
recovery_min_apply_delay = '5s'
wal_receiver_status_interval = '1s'
});
$standby->start;

$primary->safe_psql('postgres', q{
	CREATE EXTENSION migrate;
	CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO t SELECT g FROM generate_series(1, 20000) g;
	SELECT migrate_register('lagged', 't', set_clause => 'n = n + 1',
	                        batch_size => 200, pause => '50ms');
	SELECT migrate_start('lagged');
});

# (a run that ends without holding back fails at once)
poll_ok($primary, q{
		SELECT state || '|' || coalesce(throttled, '') FROM migrate_status('lagged')},
	qr/^running\|replication lag/, 'the worker holds back while the standby lags, and says why',
	stop => qr/^(?!running)/);
my $held = $primary->safe_psql('postgres',
	q{SELECT processed FROM migrate.migrations WHERE name = 'lagged'});
cmp_ok($held, '<', 20000, 'it held back before finishing');
is($primary->safe_psql('postgres', q{SELECT state FROM migrate.migrations WHERE name = 'lagged'}),
	'running', 'still running while it waits');

# lift the limit: the migration goes on
$primary->safe_psql('postgres', q{ALTER SYSTEM SET migrate.max_replication_lag = 0});
$primary->reload;
is($primary->safe_psql('postgres', q{SELECT migrate_wait('lagged', '120s')}), 'done',
	'with the limit off it finishes');
is($primary->safe_psql('postgres', q{SELECT n, count(*) FROM t GROUP BY n}), '1|20000',
	'every row exactly once');

$standby->stop;
$primary->stop;
done_testing();
