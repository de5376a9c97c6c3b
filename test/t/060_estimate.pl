# migrate_estimate against a real run (issue 24).
#
# On the tour's 500,000 rows with pause => '100ms', 0.3's estimate said
# 53.8 s and the run took 7.0 s: it charged the pause after every batch of
# the first batch's size (1,000 rows), while adaptive batches grew to about
# 25,000 rows.  The estimate now follows the batch sizes the runner will
# use (pacing.c's rule) and measures the time per row on a batch of about
# the size they grow to.  Each migration below is estimated, then run by a
# background worker; the expected duration must be within 50 % of the run's
# (started_at to finished_at) and the rows to change within 25 % of the
# rows it changed.  The figures are printed (note) for the record.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('estimate');

$node->safe_psql('postgres', q{
	CREATE TABLE accounts (
	    id          bigint PRIMARY KEY,
	    email       text,
	    external_id text,
	    created_at  timestamptz
	);
	INSERT INTO accounts (id, email, created_at)
	SELECT g, 'User' || g || '@Example.COM', now() - g * interval '1 minute'
	  FROM generate_series(1, 500000) AS g;
	VACUUM ANALYZE accounts;
});

# Estimate migration $name, run it to the end, and compare; returns the
# estimated and the real duration in seconds
sub estimate_and_run
{
	my ($name, $what) = @_;
	my ($est_rows, $est_s, $ms_per_row) = split /\|/, $node->safe_psql('postgres', qq{
		SELECT rows_to_change, extract(epoch FROM expected_duration), ms_per_row
		  FROM migrate_estimate('$name')});
	$node->safe_psql('postgres', qq{SELECT migrate_start('$name')});
	is(wait_for_state($node, $name), 'done', "$what: the run is done");
	my ($changed, $real_s, $batches, $last_size) = split /\|/, $node->safe_psql('postgres', qq{
		SELECT changed, extract(epoch FROM finished_at - started_at), batches, batch_size
		  FROM migrate_status('$name')});
	note(sprintf('%s: estimated %d rows in %.2f s (%.5f ms/row); ran %d rows in %.2f s, %d batches, the last of %d rows (estimate / run: %.2f)',
			$what, $est_rows, $est_s, $ms_per_row, $changed, $real_s, $batches,
			$last_size, $real_s > 0 ? $est_s / $real_s : 0));
	ok(abs($est_rows - $changed) <= 0.25 * $changed,
		"$what: rows_to_change $est_rows is within 25 % of the $changed rows changed");
	ok(abs($est_s - $real_s) <= 0.5 * $real_s,
		sprintf('%s: expected_duration %.2f s is within 50 %% of the run\'s %.2f s',
			$what, $est_s, $real_s));
	return ($est_s, $real_s);
}

# 1. the tour's migration: adaptive batches from 1,000 rows, a 100 ms pause
#    after each; 0.3 expected 500 pauses, 50 s
$node->safe_psql('postgres', q{
	SELECT migrate_register('fix_ids', 'accounts',
	           set_clause   => $$external_id = 'ext-' || id, email = lower(email)$$,
	           check_clause => $$external_id IS NOT NULL AND email = lower(email)$$,
	           pause        => '100ms')});
my ($est_s) = estimate_and_run('fix_ids', 'the tour\'s migration (adaptive, pause 100ms)');
cmp_ok($est_s, '<', 25,
	'the tour\'s estimate no longer charges a pause to 500 batches of 1,000 rows');

# 2. a quarter of the rows (where_clause), fixed batches of 10,000 rows,
#    20 ms apart: 50 batches, 49 pauses
$node->safe_psql('postgres', q{
	SELECT migrate_register('quarter', 'accounts',
	           set_clause   => $$email = upper(email)$$,
	           where_clause => $$id % 4 = 0$$,
	           batch_size   => 10000,
	           pause        => '20ms')});
is($node->safe_psql('postgres',
		q{SELECT adaptive FROM migrate_status('quarter')}),
	'f', 'a migration with a batch_size keeps it (not adaptive)');
estimate_and_run('quarter', 'a quarter of the rows in fixed batches');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM accounts WHERE email = upper(email)}),
	'125000', 'the second migration changed every fourth row');

done_testing();
