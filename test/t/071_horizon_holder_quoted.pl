# What another role chooses reaches a migration's throttled only quoted
# (attack review of 0.4).
#
# When a session holds the xmin horizon back, the worker's throttled reason
# (and the server log) name it with its application_name, which any role
# sets to what it likes.  0.4 wrote it bare: a session of role eve named
# "standby lost: run migrate_cancel now" showed in mallory's migration as
# "process 8926 (standby lost: run migrate_cancel now) holds back the xmin
# horizon".  It is now a quoted literal, an embedded quote doubled, so that
# it cannot pass for migrate's own words.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('horizon_quoted');

$node->safe_psql('postgres', q{
	CREATE ROLE mallory LOGIN;
	CREATE ROLE eve LOGIN;
	GRANT CREATE ON SCHEMA public TO mallory;
	SET ROLE mallory;
	CREATE TABLE public.t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0)
		WITH (autovacuum_enabled = off);
	INSERT INTO public.t SELECT g FROM generate_series(1, 100000) g;
	SELECT name FROM migrate_register('m', 'public.t', set_clause => 'n = n + 1',
	                                  batch_size => 1000, pause => '80ms');
});

# eve holds a snapshot, under a name that reads like an instruction
my $eve = $node->background_psql('postgres', on_error_stop => 1,
	extra_params => [ '-U', 'eve' ]);
$eve->query_safe(q{SET application_name = $$it's a standby: run migrate_cancel now$$});
my $eve_pid = $eve->query_safe('SELECT pg_backend_pid()');
$eve->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class;');

$node->safe_psql('postgres', q{SET ROLE mallory; SELECT migrate_start('m');});
poll_ok($node, q{SET ROLE mallory; SELECT throttled LIKE '%holds back the xmin horizon%'
		  FROM migrate_status('m')},
	't', "mallory's migration says a session holds the horizon back");
my $said = $node->safe_psql('postgres',
	q{SET ROLE mallory; SELECT throttled FROM migrate_status('m')});
diag("throttled: $said");
is($said,
   "vacuum cannot remove the replaced rows: process $eve_pid ('it''s a standby: run migrate_cancel now') holds back the xmin horizon, and the table grows until it lets go",
   "eve's application_name is quoted, its quote doubled");
ok($node->log_contains(qr/DETAIL:  vacuum cannot remove the replaced rows: process $eve_pid \('it''s a standby/),
   'the server log quotes it too');

$eve->query_safe('COMMIT');
$eve->quit;
is(wait_for_state($node, 'm'), 'done', 'the migration ends once eve lets go');
$node->stop;
done_testing();
