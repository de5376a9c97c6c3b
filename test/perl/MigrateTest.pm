# MigrateTest: what migrate's TAP tests share, so that each test file reads
# as the guarantee it proves.
#
#   my $node = migrate_node('name', 'max_worker_processes = 20');
#   $node->safe_psql('postgres', 'SELECT pid FROM pg_stat_activity WHERE '
#                    . worker_of('bump'));
#   is(wait_for_state($node, 'bump'), 'done');
package MigrateTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;

our @EXPORT = qw(migrate_node worker_of wait_for_state);

# A started node with migrate preloaded and CREATE EXTENSION migrate done in
# the postgres database; further postgresql.conf lines may follow.
sub migrate_node
{
	my ($name, @conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init;
	$node->append_conf('postgresql.conf',
		join("\n", "shared_preload_libraries = 'migrate'", @conf) . "\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION migrate');
	return $node;
}

# The condition on pg_stat_activity (or on its alias, if given) that finds
# the worker of a migration: a worker's activity names its migration
# (application_name does not).
sub worker_of
{
	my ($migration, $alias) = @_;
	my $p = defined $alias ? "$alias." : '';
	return qq{${p}backend_type = 'migrate worker' AND ${p}query LIKE '%"$migration"%'};
}

# Wait until the migration is no longer running (or in one of @states, if
# given) and return its state.
sub wait_for_state
{
	my ($node, $migration, @states) = @_;
	my $db = 'postgres';
	my $cond = @states
	  ? 'state IN (' . join(', ', map { "'$_'" } @states) . ')'
	  : q{state <> 'running'};

	$node->poll_query_until($db,
		qq{SELECT $cond FROM migrate.migrations WHERE name = '$migration'});
	return $node->safe_psql($db,
		qq{SELECT state FROM migrate.migrations WHERE name = '$migration'});
}

# ---- high availability (issue 22): primaries that stream, standbys,
# ---- timed waits.  Used by test/t/040-042.
use Time::HiRes ();

push @EXPORT, qw(ha_primary ha_standby ha_table ha_wait);

# A started primary that streams ($streaming: 1, or 'logical' for logical
# decoding), with migrate preloaded and created in postgres; standbys and
# subscribers answer every second.  Further postgresql.conf lines may follow.
sub ha_primary
{
	my ($name, $streaming, @conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init(allows_streaming => $streaming);
	$node->append_conf('postgresql.conf',
		join("\n", "shared_preload_libraries = 'migrate'",
			'wal_receiver_status_interval = 1s', @conf) . "\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION migrate');
	return $node;
}

# A started streaming standby of $primary, from a new base backup; its
# application_name is $name.  Further postgresql.conf lines may follow.
sub ha_standby
{
	my ($primary, $name, @conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$primary->backup("${name}_base");
	$node->init_from_backup($primary, "${name}_base", has_streaming => 1);
	$node->append_conf('postgresql.conf', join("\n", @conf) . "\n") if @conf;
	$node->start;
	return $node;
}

# Create table $table (id bigint PRIMARY KEY, n int = 0, pad text) with $rows
# rows.
sub ha_table
{
	my ($node, $table, $rows) = @_;
	$node->safe_psql('postgres', qq{
		CREATE TABLE $table (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, pad text);
		INSERT INTO $table (id, pad) SELECT g, repeat('x', 100) FROM generate_series(1, $rows) g;
		VACUUM ANALYZE $table;
	});
}

# Wait until $sql returns true on $node; return the seconds it took.  Fails
# the test (and returns -1) after the default timeout.
sub ha_wait
{
	my ($node, $sql, $what) = @_;
	my $t0 = Time::HiRes::time();
	my $ok = $node->poll_query_until('postgres', $sql);
	Test::More::ok($ok, $what);
	return $ok ? Time::HiRes::time() - $t0 : -1;
}
# ---- end of high availability (issue 22)

1;
