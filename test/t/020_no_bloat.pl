# No bloat (issue 10): a migration's worker vacuums the table as it goes,
# so that the new row versions fill the space of the old ones, where one
# UPDATE (or the migration with vacuum => false) leaves the table about
# twice its packed size.  Autovacuum is off for the table, so that only
# the worker's vacuums count; the migrations are waited for by polling
# from new sessions, which hold no snapshot back.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('nobloat');

# size after the change / size of a packed copy of the same rows
sub size_ratio
{
	my ($table) = @_;
	return $node->safe_psql('postgres', qq{
		DROP TABLE IF EXISTS packed;
		CREATE TABLE packed AS SELECT * FROM $table;
		SELECT round(pg_table_size('$table')::numeric / pg_table_size('packed'), 2)});
}

for my $vacuum ('true', 'false')
{
	my $t = "t_$vacuum";
	$node->safe_psql('postgres', qq{
		CREATE TABLE $t (id bigint PRIMARY KEY, email text NOT NULL, external_id text)
			WITH (autovacuum_enabled = off);
		INSERT INTO $t SELECT g, 'User' || g || '\@Example.COM' FROM generate_series(1, 200000) g;
		VACUUM ANALYZE $t;
		SELECT migrate_register('m_$vacuum', '$t',
		           set_clause => \$\$external_id = 'ext-' || id, email = lower(email)\$\$,
		           vacuum => $vacuum);
		SELECT migrate_start('m_$vacuum');
	});
	is(wait_for_state($node, "m_$vacuum"), 'done', "vacuum => $vacuum: done");
	is($node->safe_psql('postgres', qq{
			SELECT count(*) FILTER (WHERE external_id = 'ext-' || id AND email = lower(email)) FROM $t}),
		'200000', "vacuum => $vacuum: every row changed");
	my $ratio = size_ratio($t);
	my $vacuums = $node->safe_psql('postgres',
		qq{SELECT vacuums FROM migrate_status('m_$vacuum')});
	if ($vacuum eq 'true')
	{
		cmp_ok($vacuums, '>', 0, 'the worker vacuumed as it went');
		cmp_ok($ratio, '<=', 1.4, "size after / packed size is $ratio, well below what one UPDATE leaves");
	}
	else
	{
		is($vacuums, '0', 'vacuum => false: no vacuum');
		cmp_ok($ratio, '>=', 1.5, "vacuum => false: size after / packed size is $ratio, as one UPDATE leaves it");
	}
}

is($node->safe_psql('postgres', q{
		SELECT size_at_start > 0 AND size >= size_at_start FROM migrate_status('m_true')}),
	't', 'migrate_status shows the size at the start and now');

$node->stop;
done_testing();
