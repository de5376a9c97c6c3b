# Replication slots (issue 22).
#
# 1. A physical slot whose standby disconnects: a primary streams to a
#    standby through slot "standby_slot"; the standby is stopped in the
#    middle of a migration.  Within seconds the migration holds and
#    throttled names the slot; started again, the standby lets it go on.
#    Stopped once more, migrate.ignore_slots = 'standby_slot' lets it go on
#    without the standby; it finishes, every row changed exactly once.
# 2. A logical subscriber: a second cluster subscribes to a publication of
#    the migrated table.  With the subscriber stopped, the migration goes
#    on until the subscription's slot keeps migrate.max_slot_wal (2 MB
#    here), then holds, naming the slot, and goes on when the subscriber
#    comes back; it finishes, and the subscriber's copy ends with every
#    row changed exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use MigrateTest;

my $rows = 100_000;

# ---- 1. a physical slot
{
	my $primary = ha_primary('slot_primary', 1);
	$primary->safe_psql('postgres',
		q{SELECT pg_create_physical_replication_slot('standby_slot', true)});
	my $standby = ha_standby($primary, 'slot_standby',
		q{primary_slot_name = 'standby_slot'});
	ha_table($primary, 't', $rows);
	$primary->safe_psql('postgres', q{
		SELECT migrate_register('phys', 't', set_clause => 'n = n + 1',
		                        batch_size => 2000, pause => '20ms');
		SELECT migrate_start('phys');
	});
	ha_wait($primary, q{SELECT processed >= 20000 FROM migrate_status('phys')},
		'physical: under way');

	$standby->stop;
	my $t_hold = ha_wait($primary, q{
		SELECT throttled LIKE '%physical replication slot "standby_slot": it is disconnected%'
		  FROM migrate_status('phys')},
		'physical: with the standby gone it holds, naming its slot');
	my $held_at = $primary->safe_psql('postgres', q{SELECT processed FROM migrate_status('phys')});
	my $kept = $primary->safe_psql('postgres', q{
		SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), restart_lsn)::bigint
		  FROM pg_replication_slots WHERE slot_name = 'standby_slot'});
	$primary->safe_psql('postgres', 'SELECT pg_sleep(2)');
	is($primary->safe_psql('postgres', q{SELECT processed FROM migrate_status('phys')}),
		$held_at, 'physical: no batch for 2 s while it is gone');
	cmp_ok($held_at, '<', $rows, 'physical: it held before finishing');

	$standby->start;
	my $t_go = ha_wait($primary,
		qq{SELECT processed > $held_at FROM migrate_status('phys')},
		'physical: the standby back, it goes on');

	$standby->stop;
	ha_wait($primary, q{
		SELECT throttled LIKE '%physical replication slot "standby_slot"%' FROM migrate_status('phys')},
		'physical: gone again, it holds again');
	$primary->safe_psql('postgres', q{ALTER SYSTEM SET migrate.ignore_slots = 'other, standby_slot'});
	$primary->reload;
	is($primary->safe_psql('postgres', q{SELECT migrate_wait('phys', '120s')}), 'done',
		'physical: with the slot in migrate.ignore_slots it finishes without its standby');
	is($primary->safe_psql('postgres', q{SELECT n, count(*) FROM t GROUP BY n}), "1|$rows",
		'physical: every row changed exactly once');
	note(sprintf('physical: held %.2f s after the standby stopped, at %s rows, the slot keeping %s bytes; went on %.2f s after it started again',
		$t_hold, $held_at, $kept, $t_go));
	$primary->stop;
}

# ---- 2. a logical subscriber
{
	my $publisher = ha_primary('publisher', 'logical', q{migrate.max_slot_wal = '2MB'});
	my $subscriber = PostgreSQL::Test::Cluster->new('subscriber');
	$subscriber->init;
	$subscriber->append_conf('postgresql.conf', "wal_receiver_status_interval = 1s\n");
	$subscriber->start;

	ha_table($publisher, 't', $rows);
	$publisher->safe_psql('postgres', 'CREATE PUBLICATION pub FOR TABLE t');
	$subscriber->safe_psql('postgres', q{
		CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, pad text)});
	my $connstr = $publisher->connstr . ' dbname=postgres';
	$subscriber->safe_psql('postgres',
		qq{CREATE SUBSCRIPTION sub CONNECTION '$connstr' PUBLICATION pub});
	$subscriber->wait_for_subscription_sync($publisher, 'sub');
	is($subscriber->safe_psql('postgres', q{SELECT n, count(*) FROM t GROUP BY n}), "0|$rows",
		'logical: the subscriber has the table');

	$publisher->safe_psql('postgres', q{
		SELECT migrate_register('logi', 't', set_clause => 'n = n + 1',
		                        batch_size => 2000, pause => '20ms');
		SELECT migrate_start('logi');
	});
	ha_wait($publisher, q{SELECT processed >= 10000 FROM migrate_status('logi')},
		'logical: under way');

	$subscriber->stop;
	my $t_hold = ha_wait($publisher, q{
		SELECT throttled LIKE 'waiting for logical replication slot "sub": it keeps more than 2 MB of WAL%'
		  FROM migrate_status('logi')},
		'logical: with the subscriber stopped it holds at the slot limit, naming the slot');
	my $held_at = $publisher->safe_psql('postgres', q{SELECT processed FROM migrate_status('logi')});
	my $kept = $publisher->safe_psql('postgres', q{
		SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), confirmed_flush_lsn)::bigint
		  FROM pg_replication_slots WHERE slot_name = 'sub'});
	$publisher->safe_psql('postgres', 'SELECT pg_sleep(2)');
	is($publisher->safe_psql('postgres', q{SELECT processed FROM migrate_status('logi')}),
		$held_at, 'logical: no batch for 2 s while the subscriber is stopped');
	cmp_ok($held_at, '<', $rows, 'logical: it held before finishing');
	cmp_ok($kept, '<', 6 * 1024 * 1024,
		'logical: the slot keeps less than 6 MB (2 MB limit, plus a batch)');

	$subscriber->start;
	my $t_go = ha_wait($publisher,
		qq{SELECT processed > $held_at FROM migrate_status('logi')},
		'logical: the subscriber back, it goes on');
	is($publisher->safe_psql('postgres', q{SELECT migrate_wait('logi', '120s')}), 'done',
		'logical: it finishes');
	is($publisher->safe_psql('postgres', q{SELECT n, count(*) FROM t GROUP BY n}), "1|$rows",
		'logical: every row changed exactly once on the publisher');
	$publisher->wait_for_catchup('sub');
	is($subscriber->safe_psql('postgres', q{SELECT n, count(*) FROM t GROUP BY n}), "1|$rows",
		'logical: and in the subscriber\'s copy');
	note(sprintf('logical: held %.2f s after the subscriber stopped, at %s rows, the slot keeping %s bytes; went on %.2f s after it started again',
		$t_hold, $held_at, $kept, $t_go));

	$subscriber->stop;
	$publisher->stop;
}

done_testing();
