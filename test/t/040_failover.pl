# Failover (issue 22): a primary streaming to a standby is killed (kill -9
# of its postmaster) in the middle of a migration and the standby is
# promoted.  The new primary's launcher resumes the migration by itself,
# the event and the log say it resumed after a promotion, and every row is
# changed exactly once (n = n + 1 on every row, then every n is 1), with
# one worker and with workers => 2.  Batches commit asynchronously: the
# standby may have fewer of them than the old primary had, but each with
# its cursor, so the rest is done again on the new primary.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use MigrateTest;

my $rows = 200_000;

for my $workers (1, 2)
{
	my $primary = ha_primary("fo_primary_$workers", 1,
		'max_worker_processes = 16', 'migrate.max_workers = 8');
	my $standby = ha_standby($primary, "fo_standby_$workers");

	ha_table($primary, 't', $rows);
	$primary->safe_psql('postgres', qq{
		SELECT migrate_register('fo', 't', set_clause => 'n = n + 1',
		                        batch_size => 2000, pause => '20ms',
		                        workers => $workers);
		SELECT migrate_start('fo');
	});
	ha_wait($primary, qq{SELECT processed >= $rows * 0.3 FROM migrate_status('fo')},
		"workers => $workers: the migration is under way on the primary");
	my $at_kill = $primary->safe_psql('postgres',
		q{SELECT processed FROM migrate_status('fo')});

	# the primary dies at once; its standby is promoted
	$primary->kill9;
	my $on_standby = $standby->safe_psql('postgres',
		q{SELECT processed FROM migrate_status('fo')});
	$standby->promote;
	my $t_promoted = time;
	$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
	  or die 'the standby was not promoted';
	my $t_open = time - $t_promoted;

	my $t_resume = ha_wait($standby, q{
		SELECT count(*) > 0 FROM migrate.events
		 WHERE migration = 'fo' AND event = 'resume'},
		"workers => $workers: the new primary resumes the migration by itself");
	like($standby->safe_psql('postgres', q{
			SELECT detail FROM migrate.events
			 WHERE migration = 'fo' AND event = 'resume' ORDER BY id DESC LIMIT 1}),
		qr/^resumed after a promotion: it ran on timeline 1, the server now runs on timeline 2$/,
		"workers => $workers: the event says it resumed after a promotion");
	ok($standby->log_contains(qr/migration "fo" resumes after a promotion/),
		"workers => $workers: and so does the log");

	my $t_done = ha_wait($standby, q{
		SELECT state = 'done' FROM migrate.migrations WHERE name = 'fo'},
		"workers => $workers: it finishes on the new primary");
	is($standby->safe_psql('postgres', q{SELECT n, count(*) FROM t GROUP BY n}),
		"1|$rows", "workers => $workers: every row changed exactly once");
	is($standby->safe_psql('postgres',
			q{SELECT processed, changed FROM migrate_status('fo')}),
		"$rows|$rows", "workers => $workers: processed and changed count every row once");
	is($standby->safe_psql('postgres',
			q{SELECT timeline FROM migrate.migrations WHERE name = 'fo'}),
		'2', "workers => $workers: it records the timeline it runs on now");

	note(sprintf(
		"workers => %d: %s rows processed just before the kill, %s on the standby just after; promoted, open in %.2f s; resumed %.2f s later; done %.2f s after that",
		$workers, $at_kill, $on_standby, $t_open, $t_resume, $t_done));
	$standby->stop;
}

done_testing();
