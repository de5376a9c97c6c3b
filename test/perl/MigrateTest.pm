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

1;
