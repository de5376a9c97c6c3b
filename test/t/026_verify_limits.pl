# Background verify workers and the worker limits (issue 20).
#
# - With migrate.max_workers_per_role = 1, migrate_verify(name, background
#   => true) called for many migrations of one role, from one session and
#   then from several at once, never leaves more than one verify worker of
#   that role: a start keeps the start lock until its worker is counted.
# - With the per-role limit off and migrate.max_workers = 4, verifications
#   of several roles started at once never exceed 4 workers.
# - migrate_unregister (and replace => true) of a migration whose verify
#   worker rests stops that worker: the role's next start finds its slot.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('verify_limits',
	'max_worker_processes = 24',
	'migrate.max_workers = 4',
	'migrate.max_workers_per_role = 1');

# three login roles, twelve migrations each whose verification rests 1 s
# between batches of 100 rows
for my $r (qw(va vb vc))
{
	$node->safe_psql('postgres', qq{
		CREATE ROLE $r LOGIN;
		GRANT CREATE ON SCHEMA public TO $r;
	});
	for my $i (1 .. 12)
	{
		$node->safe_psql('postgres', qq{
			SET ROLE $r;
			CREATE TABLE ${r}_$i (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
			INSERT INTO ${r}_$i (id) SELECT g FROM generate_series(1, 2000) g;
			SELECT migrate_register('${r}_$i', '${r}_$i', set_clause => 'n = 1',
			                        where_clause => 'n = 0', batch_size => 100,
			                        pause => '1s');
		});
	}
}

# start the verifications of role r's migrations from..to, each in its own
# transaction, ignoring refusals
sub verify_all
{
	my ($r, $from, $to) = @_;
	return qq{
		SET ROLE $r;
		DO \$\$
		BEGIN
			FOR i IN $from .. $to LOOP
				BEGIN
					PERFORM migrate_verify('${r}_' || i, background => true);
				EXCEPTION WHEN OTHERS THEN NULL;
				END;
			END LOOP;
		END \$\$;
	};
}

my $per_role_q = q{
	SELECT coalesce(max(c), 0) FROM (
		SELECT count(*) AS c FROM pg_stat_activity
		 WHERE backend_type IN ('migrate worker', 'migrate verify')
		 GROUP BY usesysid) s};
my $all_q = q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type IN ('migrate worker', 'migrate verify')};

# Watch the workers while background sessions start verifications: look
# every 0.05 s at the value of $q, through at least twenty looks and until
# no session runs its verify_all DO block any more.  Returns the highest
# value seen, whether the window ended so, and the number of looks.
sub watch_starts
{
	my ($q) = @_;
	my $looks = 0;
	my ($series, $ended) = sample_series($node, qq{
		SELECT ($q) || '|' ||
		       (SELECT count(*) FROM pg_stat_activity
		         WHERE state = 'active' AND query LIKE '%PERFORM migrate_verify%'
		           AND pid <> pg_backend_pid())},
		until => sub { ++$looks >= 20 && $_[0] =~ /\|0$/ },
		interval => 0.05, timeout => 120);
	my ($max) = sort { $b <=> $a } map { (split /\|/)[0] } @$series;
	return ($max, $ended, scalar(@$series));
}

# one session
$node->safe_psql('postgres', verify_all('va', 1, 12));
is($node->safe_psql('postgres', $per_role_q), '1',
	'one session: one verify worker for the role');

# seven sessions at once, for the same role
my @bg;
for my $s (1 .. 7)
{
	push @bg, $node->background_psql('postgres', on_error_stop => 0);
}
$_->query_until(qr/started/, "\\echo started\n" . verify_all('va', 1, 12) . "\n")
  for @bg;
my ($max_seen, $ended, $looks) = watch_starts($per_role_q);
ok($ended, "seven sessions: watched until all of them made their starts ($looks looks)");
$_->quit for @bg;
is($node->safe_psql('postgres', $per_role_q), '1',
	'seven sessions: still one verify worker for the role');
cmp_ok($max_seen, '<=', 1, 'never more than one meanwhile');

# unregister of the migration whose verify worker rests stops it
my $verifying = $node->safe_psql('postgres', q{
	SELECT m.name FROM migrate.migrations m JOIN pg_stat_activity a ON a.pid = m.verify_pid
	 WHERE a.backend_type = 'migrate verify'});
like($verifying, qr/^va_\d+$/, "a verification of va runs: $verifying");
$node->safe_psql('postgres', "SET ROLE va; SELECT migrate_unregister('$verifying')");
is($node->safe_psql('postgres', $all_q), '0',
	'migrate_unregister stopped the resting verify worker');
my ($start, $repl) = grep { $_ ne $verifying } qw(va_10 va_11 va_12);
$node->safe_psql('postgres', qq{SET ROLE va; SELECT migrate_start('$start')});
is($node->safe_psql('postgres', qq{SELECT state FROM migrate.migrations WHERE name = '$start'}),
	'running', 'the role\'s next migrate_start finds its slot');
$node->safe_psql('postgres', qq{SET ROLE va; SELECT migrate_cancel('$start')});
is(wait_for_state($node, $start), 'cancelled', "$start is cancelled");
poll_ok($node, "SELECT ($all_q) = 0", 't', 'and its worker is gone');

# the same with replace => true
$node->safe_psql('postgres', qq{SET ROLE va; SELECT migrate_verify('$repl', background => true)});
is($node->safe_psql('postgres', $all_q), '1', "a verification of $repl runs");
$node->safe_psql('postgres', qq{
	SET ROLE va;
	SELECT migrate_register('$repl', '$repl', set_clause => 'n = 1', where_clause => 'n = 0',
	                        batch_size => 100, pause => '1s', replace => true)});
is($node->safe_psql('postgres', $all_q), '0',
	'replace => true stopped the resting verify worker');

# no per-role limit: four workers at most, whatever the roles
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET migrate.max_workers_per_role = 0;
	SELECT pg_reload_conf();
});
@bg = ();
for my $r (qw(va vb vc va vb vc va))
{
	push @bg, $node->background_psql('postgres', on_error_stop => 0);
	$bg[-1]->query_until(qr/started/, "\\echo started\n" . verify_all($r, 3, 12) . "\n");
}
($max_seen, $ended, $looks) = watch_starts($all_q);
ok($ended, "several roles: watched until all sessions made their starts ($looks looks)");
$_->quit for @bg;
cmp_ok($node->safe_psql('postgres', $all_q), '<=', 4,
	'several roles at once: no more than migrate.max_workers');
cmp_ok($max_seen, '<=', 4, 'never more than migrate.max_workers meanwhile');
is($node->safe_psql('postgres', $all_q), '4', 'and the slots are used');

$node->stop;
done_testing();
