# pg_dump keeps migrate's catalog: a dump of a database with a half-done
# migration restores into a new database with its definition, cursor,
# counters and audit log, and the migration finishes there from its cursor.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('dump');

$node->safe_psql('postgres', q{
	CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO t SELECT g, 0 FROM generate_series(1, 1000) g;
	SELECT migrate_register('bump', 't', set_clause => 'n = n + 1', batch_size => 100);
	SELECT migrate_step('bump');
	SELECT migrate_step('bump');
});
is($node->safe_psql('postgres', q{SELECT state, cursor, processed FROM migrate.migrations}),
	'paused|{"id": 200}|200', 'half done before the dump');

my $dump = $node->basedir . '/dump.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ],
	'pg_dump succeeds');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'), '-f', $dump ],
	'the dump restores');

is($node->safe_psql('restored',
		q{SELECT name, relation, state, cursor, processed, changed, batches FROM migrate.migrations}),
	'bump|public.t|paused|{"id": 200}|200|200|2',
	'definition, cursor and counters restored');
is($node->safe_psql('restored', q{SELECT string_agg(event, ',' ORDER BY id) FROM migrate.events}),
	'register', 'audit log restored');

$node->safe_psql('restored', q{SELECT migrate_start('bump')});
is($node->safe_psql('restored', q{SELECT migrate_wait('bump', '60s')}), 'done',
	'the restored migration finishes');
is($node->safe_psql('restored', q{SELECT n, count(*) FROM t GROUP BY n}), '1|1000',
	'every row exactly once across dump and restore');
is($node->safe_psql('restored', q{SELECT processed FROM migrate.migrations}), '1000',
	'counters continue from the dump');

# new migrations get fresh ids after the restore (the sequence came along)
$node->safe_psql('restored',
	q{SELECT migrate_register('again', 't', set_clause => 'n = n', batch_size => 100)});
is($node->safe_psql('restored', q{SELECT count(DISTINCT id) FROM migrate.migrations}), '2',
	'ids stay unique after the restore');

$node->stop;
done_testing();
