# Upgrading from 0.1 to the current version (through 0.2 and 0.3) with
# migrations in flight (issue 4, "Upgrades"; issue 9 for 0.3).
#
# The current library is installed; the extension is created at version
# 0.1, as a server upgraded from 0.1 has it.  One migration is half run and
# paused, another keeps running in the background while ALTER EXTENSION
# migrate UPDATE changes the catalog under it.  Both must finish with
# every row changed exactly once, keeping their cursors, counters and
# history, and the 0.2 features must then work on them; the 0.3 key types
# are recorded by their first batch after the update.  They keep one
# worker and their single cursor; the paused one then goes on with two
# workers, in ranges after its cursor.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

# the extension is created at version 0.1 below
my $node = migrate_node('upgrade', { extension => 0 });

$node->safe_psql('postgres', q{
	CREATE EXTENSION migrate VERSION '0.1';
	CREATE TABLE a (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO a (id) SELECT generate_series(1, 30000);
	CREATE TABLE b (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO b (id) SELECT generate_series(1, 30000);
	SELECT migrate_register('half', 'a', set_clause => 'n = n + 1',
	                        batch_size => 100, pause => '10ms');
	SELECT migrate_register('busy', 'b', set_clause => 'n = n + 1',
	                        batch_size => 100, pause => '20ms');
});
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'migrate'}),
	'0.1', 'installed at 0.1');

$node->safe_psql('postgres', q{SELECT migrate_start('half')});
poll_ok($node, q{
		SELECT processed >= 5000 FROM migrate.migrations WHERE name = 'half'},
	't', 'half: under way on the 0.1 catalog');
$node->safe_psql('postgres', q{SELECT migrate_pause('half')});
is($node->safe_psql('postgres', q{SELECT migrate_wait('half')}), 'paused', 'half: paused');
my ($cursor, $processed) = split /\|/, $node->safe_psql('postgres',
	q{SELECT cursor, processed FROM migrate.migrations WHERE name = 'half'});

$node->safe_psql('postgres', q{SELECT migrate_start('busy')});
poll_ok($node, q{
		SELECT processed >= 3000 FROM migrate.migrations WHERE name = 'busy'},
	't', 'busy: running');

$node->safe_psql('postgres', q{ALTER EXTENSION migrate UPDATE});
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'migrate'}),
	'0.4', 'updated to 0.4 while busy runs');
is( $node->safe_psql('postgres', q{
		SELECT cursor, processed, state FROM migrate.migrations WHERE name = 'half'}),
	"$cursor|$processed|paused", 'half kept its cursor, counters and state');

is($node->safe_psql('postgres', q{SELECT migrate_wait('busy', '120s')}), 'done',
	'busy finished across the update');
is( $node->safe_psql('postgres', q{
		SELECT string_agg(name || ':' || workers, ' ' ORDER BY name) FROM migrate.migrations}),
	'busy:1 half:1', 'the migrations registered before 0.3 have one worker');
is($node->safe_psql('postgres', q{SELECT count(*) FROM migrate.ranges}), '0',
	'busy finished with its single cursor, in no ranges');

# half goes on with two workers (issue 12): ranges after its cursor
$node->safe_psql('postgres', q{SELECT migrate_start('half', workers => 2)});
is($node->safe_psql('postgres', q{SELECT migrate_wait('half', '120s')}), 'done',
	'half finished after the update, with two workers');
is( $node->safe_psql('postgres', q{
		SELECT count(*) > 1, bool_and(state = 'done'),
		       min(lower::text) FILTER (WHERE split_from IS NULL AND lower = (SELECT cursor FROM migrate.migrations WHERE name = 'half'))
		  FROM migrate_ranges('half')}),
	"t|t|$cursor", 'half walked ranges that start at its cursor of before the update');

for my $t ('a', 'b')
{
	is($node->safe_psql('postgres', qq{SELECT count(*) FILTER (WHERE n = 1), count(*) FROM $t}),
		'30000|30000', "table $t: every row changed exactly once");
}
is( $node->safe_psql('postgres', q{
		SELECT string_agg(name || ':' || processed || ':' || error_rows || ':' || progress, ' ' ORDER BY name)
		  FROM migrate_status()}),
	'busy:30000:0:[####################] 100% half:30000:0:[####################] 100%',
	'the 0.2 status columns work on the old migrations');
is( $node->safe_psql('postgres', q{
		SELECT string_agg(name || ':' || key_types::text, ' ' ORDER BY name) FROM migrate.migrations}),
	'busy:{integer} half:{integer}', 'the key types were recorded after the update');
is( $node->safe_psql('postgres', q{
		SELECT string_agg(event, ',' ORDER BY id) FROM migrate.events WHERE migration = 'half'}),
	'register,start,pause,resume,done', 'history kept across the update');

# the 0.2 features on a migration registered after the update
$node->safe_psql('postgres', q{
	SELECT migrate_register('again', 'a', set_clause => 'n = n + 1',
	                        keep_before => true, batch_size => 5000);
	SELECT migrate_start('again');
	SELECT migrate_wait('again');
	SELECT migrate_revert('again');
	SELECT migrate_wait('again');
});
is($node->safe_psql('postgres', q{SELECT state FROM migrate.migrations WHERE name = 'again'}),
	'reverted', 'a new migration can be reverted');
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE n = 1) FROM a}),
	'30000', 'and the revert restored every row');

$node->stop;
done_testing();
