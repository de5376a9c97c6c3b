# Synchronous replication (issue 22): a primary with a synchronous standby
# (synchronous_standby_names = 'standby1', synchronous_commit = on).
#
# 1. The cost, idle: the same migration (200,000 rows, batches sized by
#    the pacer) with the standby asynchronous, synchronous, and
#    synchronous with migrate.max_synchronous_lag = 0 (every batch waits
#    for the one before), two rounds each; the times are reported.
# 2. The standby's WAL receiver is stopped (SIGSTOP) in the middle of a
#    migration: within seconds it holds, throttled says it waits for the
#    synchronous standbys, processed stops, and the primary is at most
#    about migrate.max_synchronous_lag (1 MB here) plus a batch ahead of
#    what the standby flushed.  SIGCONT: it goes on.
# 3. Stopped again, a pause (committed by a session that does not wait for
#    the standby) is not acknowledged while the standby lacks the
#    migration's last batches: the runner keeps the migration until the
#    standby has them, then migrate_wait returns "paused".  Started again,
#    it finishes, every row changed exactly once, on the standby too.
# 4. The standby asynchronous again, its WAL receiver stopped: replay_lag
#    freezes, but with WAL sent and unconfirmed for longer than
#    migrate.max_replication_lag (2 s here) the migration holds, naming the
#    standby, and goes on once it answers again.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use MigrateTest;

my $rows = 200_000;
my $primary = ha_primary('sync_primary', 1,
	'synchronous_commit = on',
	"migrate.max_synchronous_lag = '1MB'",
	'max_worker_processes = 16');
my $standby = ha_standby($primary, 'standby1');

sub sql
{
	return $primary->safe_psql('postgres', $_[0]);
}

# synchronous_standby_names = $names, in force
sub set_sync
{
	my ($names) = @_;
	sql(qq{ALTER SYSTEM SET synchronous_standby_names = '$names'});
	$primary->reload;
	my $want = $names eq '' ? 0 : 1;
	$primary->poll_query_until('postgres', qq{
		SELECT count(*) = $want FROM pg_stat_replication WHERE sync_state = 'sync'})
	  or die "synchronous_standby_names = '$names' not in force";
}

sub set_lag
{
	my ($lag) = @_;
	sql(qq{ALTER SYSTEM SET migrate.max_synchronous_lag = '$lag'});
	$primary->reload;
}

ha_table($primary, 't', $rows);
ha_table($primary, 'u', $rows);
$primary->wait_for_catchup($standby);

# ---- 1. the cost on an idle server
sql(q{SELECT migrate_register('cost', 't', set_clause => 'n = n + 1')});
my %secs;
my $first = 1;
for my $round (1, 2)
{
	for my $way ('async', 'sync', 'sync, max_synchronous_lag = 0')
	{
		set_sync($way eq 'async' ? '' : 'standby1');
		set_lag($way =~ /= 0/ ? '0' : '16MB');
		sql($first ? q{SELECT migrate_start('cost')}
			: q{SELECT migrate_start('cost', restart => true)});
		$first = 0;
		$primary->poll_query_until('postgres',
			q{SELECT state = 'done' FROM migrate.migrations WHERE name = 'cost'})
		  or die "$way did not finish";
		my $s = sql(q{SELECT extract(epoch FROM finished_at - started_at)
		                FROM migrate_status('cost')});
		push @{ $secs{$way} }, $s;
		is(sql(q{SELECT processed FROM migrate_status('cost')}), $rows,
			"cost, round $round, $way: every row");
	}
}
my %mean;
for my $way (keys %secs)
{
	my $sum = 0;
	$sum += $_ for @{ $secs{$way} };
	$mean{$way} = $sum / @{ $secs{$way} };
	note(sprintf('cost: %s: %s s (mean %.2f s)', $way, join(', ', @{ $secs{$way} }),
		$mean{$way}));
}
note(sprintf('cost: sync / async = %.2f; sync with max_synchronous_lag = 0 / async = %.2f',
	$mean{sync} / $mean{async}, $mean{'sync, max_synchronous_lag = 0'} / $mean{async}));

# ---- 2. the standby's WAL receiver stops
set_sync('standby1');
set_lag('1MB');
sql(q{SELECT migrate_register('stall', 'u', set_clause => 'n = n + 1',
                              batch_size => 2000, pause => '10ms')});
sql(q{SELECT migrate_start('stall')});
ha_wait($primary, q{SELECT processed >= 20000 FROM migrate_status('stall')},
	'the migration is under way');
my $receiver = $standby->safe_psql('postgres', 'SELECT pid FROM pg_stat_wal_receiver');
ok($receiver =~ /^\d+$/, 'the standby has a WAL receiver');

kill 'STOP', $receiver;
my $t_hold = ha_wait($primary, q{
	SELECT throttled LIKE 'waiting for the synchronous standbys: %' FROM migrate_status('stall')},
	'with the WAL receiver stopped it holds, and throttled says why');
my $ahead = sql(q{
	SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), flush_lsn)::bigint
	  FROM pg_stat_replication WHERE application_name = 'standby1'});
my $held_at = sql(q{SELECT processed FROM migrate_status('stall')});
sql('SELECT pg_sleep(2)');
is(sql(q{SELECT processed FROM migrate_status('stall')}), $held_at,
	'no batch for 2 s while the standby is stopped');
cmp_ok($held_at, '<', $rows, 'it held before finishing');
cmp_ok($ahead, '<', 4 * 1024 * 1024,
	'the primary is less than 4 MB ahead of what the standby flushed (1 MB limit, plus a batch)');
is(sql(q{SELECT state FROM migrate.migrations WHERE name = 'stall'}), 'running',
	'still running while it waits');
like(slurp_file($primary->logfile),
	qr/migration "stall" waiting for the synchronous standbys/,
	'the log says it waits');

kill 'CONT', $receiver;
my $t_go = ha_wait($primary, qq{SELECT processed > $held_at FROM migrate_status('stall')},
	'once the WAL receiver goes on, so does the migration');

# ---- 3. a pause is acknowledged once the standby has the last batches
ha_wait($primary, qq{SELECT processed >= $held_at + 20000 FROM migrate_status('stall')},
	'it has done more');
kill 'STOP', $receiver;
my $t_hold2 = ha_wait($primary, q{
	SELECT throttled LIKE 'waiting for the synchronous standbys: %' FROM migrate_status('stall')},
	'stopped again, it holds again');
sql(q{SET synchronous_commit = local; SELECT migrate_pause('stall')});
sql('SELECT pg_sleep(2)');
is(sql(q{SELECT migrate.runner_pid(id) IS NOT NULL FROM migrate.migrations WHERE name = 'stall'}),
	't', 'paused, the runner keeps the migration while the standby lacks its last batches');
my ($ret) = $primary->psql('postgres', q{SELECT migrate_wait('stall', '1s')});
isnt($ret, 0, 'and migrate_wait does not return "paused" yet');
kill 'CONT', $receiver;
my $t0 = time;
is(sql(q{SELECT migrate_wait('stall', '60s')}), 'paused',
	'once the standby has them, the pause is acknowledged');
my $t_ack = time - $t0;

sql(q{SELECT migrate_start('stall')});
is(sql(q{SELECT migrate_wait('stall', '120s')}), 'done', 'started again, it finishes');
is(sql(q{SELECT n, count(*) FROM u GROUP BY n}), "1|$rows", 'every row changed exactly once');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', q{SELECT n, count(*) FROM u GROUP BY n}), "1|$rows",
	'and so on the standby');

note(sprintf('stall: held %.2f s after SIGSTOP, %s bytes ahead of the standby\'s flush at the hold, at %s rows; went on %.2f s after SIGCONT; held again in %.2f s; pause acknowledged %.2f s after SIGCONT',
	$t_hold, $ahead, $held_at, $t_go, $t_hold2, $t_ack));

# ---- 4. an asynchronous standby that stops answering
set_sync('');
sql(q{ALTER SYSTEM SET migrate.max_replication_lag = '2s'});
$primary->reload;
sql(q{SELECT migrate_register('quiet', 't', set_clause => 'n = n + 1',
                              batch_size => 2000, pause => '10ms')});
sql(q{SELECT migrate_start('quiet')});
ha_wait($primary, q{SELECT processed >= 20000 FROM migrate_status('quiet')},
	'async: under way');
$receiver = $standby->safe_psql('postgres', 'SELECT pid FROM pg_stat_wal_receiver');
kill 'STOP', $receiver;
my $t_quiet = ha_wait($primary, q{
	SELECT throttled LIKE 'waiting for standby "standby1": it has not answered for longer than migrate.max_replication_lag (2 s)%'
	  FROM migrate_status('quiet')},
	'async: a standby that stops answering holds it, and throttled says so');
my $quiet_at = sql(q{SELECT processed FROM migrate_status('quiet')});
my $lag = sql(q{SELECT coalesce(extract(epoch FROM replay_lag), 0) FROM pg_stat_replication});
sql('SELECT pg_sleep(2)');
is(sql(q{SELECT processed FROM migrate_status('quiet')}), $quiet_at,
	'async: no batch for 2 s while it is silent');
kill 'CONT', $receiver;
my $t_quiet_go = ha_wait($primary,
	qq{SELECT processed > $quiet_at FROM migrate_status('quiet')},
	'async: it answers again, the migration goes on');
is(sql(q{SELECT migrate_wait('quiet', '120s')}), 'done', 'async: it finishes');
is(sql(q{SELECT n, count(*) FROM t GROUP BY n}), "7|$rows",
	'async: every row changed once more (six cost runs, then this one)');
note(sprintf('silent standby: held %.2f s after SIGSTOP (limit 2 s; replay_lag read %s s then); went on %.2f s after SIGCONT',
	$t_quiet, $lag, $t_quiet_go));

$standby->stop;
$primary->stop;
done_testing();
