# Scheduling with a real pg_cron (issue 4, "pg_cron").
#
# pg_cron runs jobs at minute granularity, so this test waits for real
# minutes: in the first, a job made by migrate_schedule() starts migration
# "night" and a job made with cron.schedule() runs CALL migrate_run() for
# migration "call" to the end; in the next, the pause job made by
# migrate_schedule() pauses "night", which is slow enough to be still
# running.  The jobs run as the user who scheduled them, over libpq.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

# pg_cron connects over libpq to the host every node of this test uses
# (PostgreSQL::Test::Cluster puts it in PGHOST)
my $node = migrate_node('cron', { preload => 'migrate,pg_cron' },
	q{cron.database_name = 'postgres'},
	"cron.host = '$ENV{PGHOST}'");

$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_cron;
	CREATE TABLE night (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO night (id) SELECT generate_series(1, 20000);
	CREATE TABLE call (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO call (id) SELECT generate_series(1, 5000);
	SELECT migrate_register('night', 'night', set_clause => 'n = n + 1',
	                        batch_size => 10, pause => '1s');
	SELECT migrate_register('call', 'call', set_clause => 'n = n + 1',
	                        batch_size => 500);
});

is( $node->safe_psql('postgres', q{
		SELECT string_agg(regexp_replace(jobname, '#[0-9]+', '#N') || ' ' || schedule, ', ' ORDER BY jobname)
		  FROM migrate_schedule('night', '* * * * *', '0 0 1 1 *')}),
	'migrate #N pause night 0 0 1 1 *, migrate #N start night * * * * *',
	'migrate_schedule creates the start and the pause job');
$node->safe_psql('postgres', q{
	SELECT cron.schedule('fix-call', '* * * * *',
	                     $$CALL migrate_run('call', max_duration => '4 hours')$$)});
is($node->safe_psql('postgres', q{SELECT count(*) FROM cron.job WHERE active}),
	'3', 'three pg_cron jobs are active');

# pg_cron's first tick is at the next minute
poll_ok($node, q{
		SELECT state = 'running' AND processed > 0
		  FROM migrate.migrations WHERE name = 'night'},
	't', 'the start job started the migration, which advanced');
poll_ok($node, q{
		SELECT state = 'done' FROM migrate.migrations WHERE name = 'call'},
	't', 'the CALL migrate_run job ran the other migration to the end');
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE n = 1), count(*) FROM call}),
	'5000|5000', 'every row of it changed exactly once');
is( $node->safe_psql('postgres', q{
		SELECT string_agg(DISTINCT event, ',' ORDER BY event) FROM migrate.events
		 WHERE migration = 'night' AND event = 'start'}),
	'start', 'the start is in the audit log');
poll_ok($node, q{
		SELECT count(DISTINCT j.jobname) FROM cron.job_run_details d JOIN cron.job j USING (jobid)
		 WHERE (j.jobname LIKE 'migrate #% start night' OR j.jobname = 'fix-call')
		   AND d.status = 'succeeded'},
	'2', 'pg_cron recorded both runs as succeeded (each job at least once)');

# now the pause job: make it fire at the next minute
$node->safe_psql('postgres', q{
	SELECT migrate_schedule('night', '0 0 1 1 *', '* * * * *')});
is($node->safe_psql('postgres', q{SELECT count(*) FROM cron.job WHERE jobname LIKE 'migrate #%'}),
	'2', 'scheduling again redefines the two jobs');
poll_ok($node, q{
		SELECT state = 'paused' FROM migrate.migrations WHERE name = 'night'},
	't', 'the pause job paused the migration');
is($node->safe_psql('postgres', q{SELECT migrate_wait('night')}), 'paused',
	'its worker stops after the batch it was on');
is( $node->safe_psql('postgres', q{
		SELECT processed BETWEEN 10 AND 19990, worker_pid IS NULL
		  FROM migrate.migrations WHERE name = 'night'}),
	't|t', 'it stopped part of the way, with no worker left');
my $processed = $node->safe_psql('postgres',
	q{SELECT processed FROM migrate.migrations WHERE name = 'night'});
is($node->safe_psql('postgres', q{SELECT count(*) FROM night WHERE n = 1}),
	$processed, 'rows changed match the cursor exactly');

is($node->safe_psql('postgres', q{SELECT migrate_unschedule('night')}),
	'2', 'migrate_unschedule drops both jobs');
is($node->safe_psql('postgres', q{SELECT count(*) FROM cron.job WHERE jobname LIKE 'migrate #%'}),
	'0', 'no migrate job is left');

$node->stop;
done_testing();
