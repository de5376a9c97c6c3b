# Progress you can watch (issue 4): NOTIFY migrate on every state change,
# worker LOG lines every migrate.log_interval, and the batch in
# pg_stat_activity.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('notify', q{migrate.log_interval = '1s'});

$node->safe_psql('postgres', q{
	CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO t (id) SELECT generate_series(1, 400);
	ANALYZE t;
});

# One session listens and drives the migration through its states; psql
# prints each notification it receives.
my ($stdout, $stderr);
$node->psql('postgres', q{
	LISTEN migrate;
	SELECT name FROM migrate_register('watch', 't', set_clause => 'n = n + 1',
	                                  batch_size => 10, pause => '100ms');
	SELECT state FROM migrate_start('watch');
	DO $$
	DECLARE   -- until its first batch is done
	    deadline timestamptz := clock_timestamp() + interval '120 seconds';
	BEGIN
	    WHILE (SELECT processed = 0 FROM migrate.migrations WHERE name = 'watch') LOOP
	        IF clock_timestamp() > deadline THEN
	            RAISE EXCEPTION 'migration "watch" did no batch in 120 seconds';
	        END IF;
	        PERFORM pg_sleep(0.05);
	    END LOOP;
	END $$;
	SELECT state FROM migrate_pause('watch');
	SELECT migrate_wait('watch');
	SELECT state FROM migrate_resume('watch');
	SELECT migrate_wait('watch');
	SELECT 1;
}, stdout => \$stdout, stderr => \$stderr);
my @states = ($stdout =~ /payload "\{"name": "watch", "state": "(\w+)"\}"/g);
is(join(',', @states), 'registered,running,paused,running,done',
	'one notification per state change, in order');

# while it runs, pg_stat_activity shows the batch
$node->safe_psql('postgres', q{
	SELECT migrate_register('slow', 't', set_clause => 'n = n + 1',
	                        batch_size => 10, pause => '300ms');
	SELECT migrate_start('slow');
});
poll_ok($node, q{
		SELECT count(*) > 0 FROM pg_stat_activity
		 WHERE backend_type = 'migrate worker'
		   AND query ~ '^migrate: batch [0-9]+ of "slow"$'},
	't', 'pg_stat_activity shows which batch the worker is on');
is($node->safe_psql('postgres', q{SELECT migrate_wait('slow')}), 'done', 'slow is done');

ok($node->log_contains(qr/LOG:  migrate: running migration "slow"/), 'start is logged');
ok( $node->log_contains(
		qr/LOG:  migrate: migration "slow": \d+ rows processed of about \d+ \(\d+\.\d%\), \d+ rows\/s, about \d+s left/),
	'progress is logged with rows, rate and time left');
ok( $node->log_contains(
		qr/LOG:  migrate: migration "slow" is done: 400 rows processed, 400 changed in \d+s/),
	'the end is logged with the totals');

$node->stop;
done_testing();
