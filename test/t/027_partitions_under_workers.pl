# Partitions replaced or detached under several workers (issue 20).
#
# Table p partitioned by id with a DEFAULT partition, p_1 (1-20000) and
# p_2 (20001-40000), 40,000 rows; set_clause n = n + 1, batch_size 500,
# pause 150ms, workers => 2.
# - When p_1's range cursor passes 8000, in one transaction: detach p_1,
#   copy it (LIKE), drop the original, rename the copy and attach it with
#   the same bounds.  0.3 walked the copy from its first key: 8,000 rows
#   changed twice.  Now the migration fails before another batch, and no
#   row is changed twice.
# - Detach p_2 when its cursor passes 28000 and put its rows back through
#   the table (they land in DEFAULT, whose range is done).  0.3 ended done
#   with 11,000 rows never changed.  Now the migration fails, saying why.
# - The same partitions left alone: done, every row changed once.
#
# sql/parallel.sql walks the same two faults (table pw_q) by hand with
# migrate_step, where the outcome is exact output; this file proves them
# with two workers running in the background.  They share the shape, not
# the SQL: the regress test needs small tables, fixed names and one step at
# a time for a stable expected file, this one needs tables big enough for
# the workers to be caught in the middle, and a wait for a cursor.  A shared
# setup file would take psql variables into the expected output for eight
# lines of DDL.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('parts', 'max_worker_processes = 16');

sub make_table
{
	$node->safe_psql('postgres', q{
		DROP TABLE IF EXISTS p, p_1_old, p_2_out;
		CREATE TABLE p (id int PRIMARY KEY, n int NOT NULL DEFAULT 0) PARTITION BY RANGE (id);
		CREATE TABLE p_d PARTITION OF p DEFAULT;
		CREATE TABLE p_1 PARTITION OF p FOR VALUES FROM (1) TO (20001);
		CREATE TABLE p_2 PARTITION OF p FOR VALUES FROM (20001) TO (40001);
		INSERT INTO p (id) SELECT g FROM generate_series(1, 40000) g;
		ANALYZE p;
	});
}

sub start
{
	my ($name) = @_;
	$node->safe_psql('postgres', qq{
		SELECT migrate_register('$name', 'p', set_clause => 'n = n + 1', batch_size => 500,
		                        pause => '150ms', workers => 2, replace => true);
		SELECT migrate_start('$name');
	});
}

# wait until the range of partition $part of $name has its cursor past $key
sub wait_cursor
{
	my ($name, $part, $key) = @_;
	poll_ok($node, qq{
			SELECT (r.cursor->>'id')::int >= $key
			  FROM migrate.ranges r JOIN migrate.migrations m ON m.id = r.migration
			 WHERE m.name = '$name' AND r.relid = '$part'::regclass},
		't', "$name: the range of $part is past $key");
}

# 1. a partition replaced by a copy
make_table();
start('repl');
wait_cursor('repl', 'p_1', 8000);
$node->safe_psql('postgres', q{
	BEGIN;
	ALTER TABLE p DETACH PARTITION p_1;
	CREATE TABLE p_1_copy (LIKE p_1 INCLUDING ALL);
	INSERT INTO p_1_copy SELECT * FROM p_1;
	DROP TABLE p_1;
	ALTER TABLE p_1_copy RENAME TO p_1;
	ALTER TABLE p ATTACH PARTITION p_1 FOR VALUES FROM (1) TO (20001);
	COMMIT;
});
is(wait_for_state($node, 'repl'), 'failed', 'repl: failed');
like($node->safe_psql('postgres', q{SELECT last_error FROM migrate.migrations WHERE name = 'repl'}),
	qr/the partitions of table public\.p changed while migration "repl" walked them/,
	'repl: says the partitions changed');
poll_ok($node, q{
		SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'migrate worker'},
	'0', 'repl: no migrate worker is left');
is($node->safe_psql('postgres', q{SELECT count(*) FROM p WHERE n > 1}), '0',
	'repl: no row changed twice');
my ($done, $processed) = split /\|/, $node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM p WHERE n = 1), processed FROM migrate_status('repl')});
is($done, $processed, "repl: what it processed ($processed rows) is what it changed");

# 2. a partition detached, its rows put back into DEFAULT
make_table();
start('det');
wait_cursor('det', 'p_2', 28000);
$node->safe_psql('postgres', q{
	BEGIN;
	ALTER TABLE p DETACH PARTITION p_2;
	ALTER TABLE p_2 RENAME TO p_2_out;
	INSERT INTO p SELECT * FROM p_2_out;
	COMMIT;
});
is(wait_for_state($node, 'det'), 'failed', 'det: failed');
like($node->safe_psql('postgres', q{SELECT last_error FROM migrate.migrations WHERE name = 'det'}),
	qr/the partitions of table public\.p changed while migration "det" walked them/,
	'det: says the partitions changed');
poll_ok($node, q{
		SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'migrate worker'},
	'0', 'det: no migrate worker is left');
is($node->safe_psql('postgres', q{SELECT count(*) FROM p WHERE n > 1}), '0',
	'det: no row changed twice');

# 3. left alone: done, every row once
make_table();
start('calm');
is(wait_for_state($node, 'calm'), 'done', 'calm: done');
is($node->safe_psql('postgres', q{SELECT n, count(*) FROM p GROUP BY n}), '1|40000',
	'calm: every row changed once');

$node->stop;
done_testing();
