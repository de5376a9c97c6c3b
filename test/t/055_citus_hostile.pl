# migrate on a Citus cluster against a hostile unprivileged user (issue 23,
# security review): a coordinator and two worker nodes on 127.0.0.1.
#
# The lead of a migration of a distributed table runs its commands on the
# nodes in a session connected as the catalog owner (a superuser here) with
# only SET LOCAL ROLE to the migration's owner (migrate.citus_node_exec).
# Any user-created code such a command resolves to, outside migrate's own
# role switch, could RESET ROLE back to the superuser.
#   1. a user with CREATE on the extension's schema (public) on a worker
#      node shadows migrate_register with an all-text overload, which the
#      lead's unknown-typed literals would prefer: another user's migration
#      must still call migrate's function (no superuser for the attacker,
#      the overload never runs) and change every row exactly once;
#   2. the attacker's own migration, whose fragments call (through an
#      IMMUTABLE wrapper folded at registration) a function that tries
#      RESET ROLE and SET ROLE in the lead's node session: refused there,
#      and the run is done;
#   3. the attacker cannot pause, cancel, unregister or adopt the victim's
#      shard migrations on a node, nor write migrate.citus_shard_migrations,
#      nor call the lead's functions;
#   4. the owner of a running migration dropped: the lead fails it instead
#      of going on with set_config('role', NULL) -- RESET ROLE -- on the
#      nodes, and citus_node_exec refuses a NULL role;
#   5. a shard moved while the migration is paused, and the first step
#      after it failing (a squatted name on the new node): every row is
#      still changed exactly once.
#
# Needs Citus built into the PostgreSQL under test (MIGRATE_CITUS_SOURCE,
# as test/t/050_citus.pl); skipped without it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $src = $ENV{MIGRATE_CITUS_SOURCE} // '';
if ($src eq '' || !-f $src)
{
	plan skip_all => "Citus source not found (MIGRATE_CITUS_SOURCE='$src')";
}
my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
my $pkglibdir = `$pg_config --pkglibdir`;
chomp $pkglibdir;
plan skip_all => "Citus is not installed in $pkglibdir (run test/t/050_citus.pl or test/citus-build.sh first)"
  unless -f "$pkglibdir/citus.so";

my $port0 = $ENV{MIGRATE_CITUS_PORT} // 5750;
my @nodes = citus_cluster('hostile');
my ($coord, $w1, $w2) = @nodes;
$coord->safe_psql('postgres', qq{
	CREATE ROLE victim LOGIN;
	CREATE ROLE attacker LOGIN;
	-- the extension's schema writable, as in PostgreSQL 14 and before
	GRANT CREATE ON SCHEMA public TO victim, attacker;
	CREATE SCHEMA att AUTHORIZATION attacker;
	SET ROLE victim;
	SET citus.shard_count = 4;
	CREATE TABLE v (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
	SELECT create_distributed_table('v', 'id');
	INSERT INTO v (id) SELECT generate_series(1, 20000);
	RESET ROLE;
	SET ROLE attacker;
	SET citus.shard_count = 4;
	CREATE TABLE a (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
	SELECT create_distributed_table('a', 'id');
	INSERT INTO a (id) SELECT generate_series(1, 2000);
});

sub as
{
	my ($node, $role, $sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => [ '-U', $role ]);
}

sub try_as
{
	my ($node, $role, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, extra_params => [ '-U', $role ]);
	return $ret == 0 ? "ok: $out" : $err;
}

# the attacker's tools on every node, created there only (no propagation):
# a log, a function that tries to become the session's superuser, an
# IMMUTABLE wrapper of it, and the overload of migrate_register
my $tools = q{
	SET citus.enable_ddl_propagation = off;
	CREATE TABLE att.log (pid int DEFAULT pg_backend_pid(), cu text, su text, what text);
	GRANT ALL ON att.log TO PUBLIC;
	CREATE FUNCTION att.escape(x int) RETURNS int LANGUAGE plpgsql AS $f$
	DECLARE msg text;
	BEGIN
	  BEGIN
	    RESET ROLE;
	    EXECUTE 'ALTER ROLE attacker SUPERUSER';
	    INSERT INTO att.log (cu, su, what) VALUES (current_user, session_user, 'escaped');
	  EXCEPTION WHEN others THEN
	    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
	    INSERT INTO att.log (cu, su, what) VALUES (current_user, session_user, msg);
	  END;
	  RETURN x;
	END $f$;
	CREATE FUNCTION att.imm(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE
	  AS $f$ BEGIN RETURN att.escape(x); END $f$;
	GRANT EXECUTE ON FUNCTION att.escape(int), att.imm(int) TO PUBLIC;
	CREATE FUNCTION public.migrate_register(name text, relation text, set_clause text,
	    where_clause text, row_fn text, action text, batch_size text, pause text,
	    lock_timeout text, replace boolean, target_batch_time text, min_batch_size text,
	    max_batch_size text, busy_share text, on_error text, keep_before text, vacuum text,
	    max_wal_rate text, check_clause text, catch_up text, max_passes text)
	RETURNS migrate.migrations LANGUAGE plpgsql AS $f$
	DECLARE me text := current_user; r migrate.migrations;
	BEGIN
	  INSERT INTO att.log (cu, su, what) VALUES (current_user, session_user, 'overload called');
	  RESET ROLE;
	  EXECUTE 'ALTER ROLE attacker SUPERUSER';
	  INSERT INTO att.log (cu, su, what) VALUES (current_user, session_user, 'escaped');
	  -- then, unnoticed, what the lead asked for
	  PERFORM pg_catalog.set_config('role', me, true);
	  SELECT * INTO r FROM public.migrate_register(name => name, relation => relation::regclass,
	     set_clause => set_clause, where_clause => where_clause, row_fn => row_fn::regprocedure,
	     action => action, batch_size => batch_size::int, pause => pause::interval,
	     lock_timeout => lock_timeout::interval, replace => replace,
	     target_batch_time => target_batch_time::interval, min_batch_size => min_batch_size::int,
	     max_batch_size => max_batch_size::int, busy_share => busy_share::real, on_error => on_error,
	     keep_before => keep_before::boolean, vacuum => vacuum::boolean,
	     max_wal_rate => max_wal_rate::bigint, check_clause => check_clause,
	     catch_up => catch_up::boolean, max_passes => max_passes::int);
	  RETURN r;
	END $f$;
};
as($_, 'attacker', $tools) for ($coord, $w1, $w2);

# 1. the victim's migration, with the overload waiting on both workers
as($coord, 'victim', q{SELECT migrate_register('vm', 'v', set_clause => 'n = n + 1')});
as($coord, 'victim', q{SELECT migrate_start('vm')});
as($coord, 'victim', q{CALL migrate_await('vm', '5 min')});
is(as($coord, 'victim', q{SELECT state, processed, changed FROM migrate_status('vm')}),
	'done|20000|20000', 'the victim\'s migration is done, every row once');
is(as($coord, 'victim', q{SELECT count(*), count(*) FILTER (WHERE n = 1) FROM v}),
	'20000|20000', 'every row of the victim\'s table changed once');
for my $w ($w1, $w2)
{
	is($w->safe_psql('postgres', q{SELECT count(*) FROM att.log}),
		'0', 'the lead never called the overload of migrate_register on ' . $w->name);
	is($w->safe_psql('postgres', q{SELECT count(*) FROM migrate.migrations WHERE name LIKE 'vm/%' AND state = 'done'}),
		'2', 'the victim\'s shard migrations on ' . $w->name . ' are migrate\'s own, done');
}

# 2. the attacker's own migration: its fragments try to escape in the
# lead's node session (the wrapper is folded when migrate_register plans
# the batch there) and in the workers
as($coord, 'attacker', q{SET search_path = att, public, pg_catalog;
	SELECT migrate_register('am', 'a', set_clause => 'n = n + att.imm(1)',
	                        where_clause => 'att.imm(1) = 1')});
as($coord, 'attacker', q{SELECT migrate_start('am')});
as($coord, 'attacker', q{CALL migrate_await('am', '5 min')});
is(as($coord, 'attacker', q{SELECT state, processed, changed FROM migrate_status('am')}),
	'done|2000|2000', 'the attacker\'s migration is done');
for my $w ($w1, $w2)
{
	my $seen = $w->safe_psql('postgres', q{
		SELECT string_agg(DISTINCT cu || '/' || su || ': ' || what, '; ') FROM att.log});
	note $w->name . ": $seen";
	like($seen, qr{attacker/postgres: cannot set parameter "role" within security-definer function},
		'in the lead\'s session on ' . $w->name . ' (the superuser\'s) the owner\'s code cannot RESET ROLE');
	unlike($seen, qr/escaped|overload/, 'nothing escaped on ' . $w->name);
}
for my $n ($coord, $w1, $w2)
{
	is($n->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'attacker'}),
		'f', 'the attacker is no superuser on ' . $n->name);
}

# 3. the victim's shard migrations are out of the attacker's reach
my $shard = $coord->safe_psql('postgres', q{
	SELECT min(shardid) FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
	  JOIN pg_dist_node n USING (groupid)
	 WHERE logicalrelid = 'v'::regclass AND n.nodeport = } . ($port0 + 1));
for my $q ("SELECT migrate_pause('vm/$shard')", "SELECT migrate_cancel('vm/$shard')",
	"SELECT migrate_unregister('vm/$shard')",
	"SELECT migrate.citus_adopt('vm/$shard', $shard, '{\"id\": 1}', 0)")
{
	like(try_as($w1, 'attacker', $q), qr/migration "vm\/$shard" does not exist/, "refused: $q");
}
like(try_as($w1, 'attacker', "INSERT INTO migrate.citus_shard_migrations VALUES (9999, $shard)"),
	qr/permission denied for table citus_shard_migrations/, 'citus_shard_migrations is not writable');
like(try_as($w1, 'attacker', q{SELECT migrate.citus_node_exec('postgres', 'pg_catalog', ARRAY['SELECT 1'])}),
	qr/permission denied for function citus_node_exec/, 'citus_node_exec is not callable');
like(try_as($coord, 'attacker', q{SELECT migrate.citus_stop(1, 'cancel')}),
	qr/permission denied for function citus_stop/, 'citus_stop is not callable');
like(try_as($coord, 'attacker', q{SELECT migrate_pause('vm')}),
	qr/migration "vm" does not exist/, 'the victim\'s migration is hidden on the coordinator');
is(as($coord, 'attacker', q{SELECT count(*) FROM migrate.citus_shards c
	JOIN migrate.migrations m ON m.id = c.migration WHERE m.name = 'vm'}),
	'0', 'the victim\'s shards are hidden in migrate.citus_shards');

# 4. the owner of a running migration dropped (REASSIGN OWNED, DROP OWNED,
# DROP ROLE): the lead must not go on in its name, which was a RESET ROLE
# in the nodes' sessions (set_config('role', NULL)): it fails the migration
like(try_as($w1, $w1->safe_psql('postgres', 'SELECT current_user'),
		q{SELECT migrate.citus_node_exec(NULL, 'pg_catalog', ARRAY['SELECT current_user::text'])}),
	qr/no role to run the commands of a migration as/, 'citus_node_exec refuses a NULL role');
$coord->safe_psql('postgres', q{
	CREATE ROLE leaver LOGIN;
	GRANT CREATE ON SCHEMA public TO leaver;
	SET ROLE leaver;
	SET citus.shard_count = 4;
	CREATE TABLE l (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
	SELECT create_distributed_table('l', 'id');
	INSERT INTO l (id) SELECT generate_series(1, 4000);
	SELECT 1 FROM migrate_register('lm', 'l', set_clause => 'n = n + 1', batch_size => 100, pause => '1s');
	SELECT 1 FROM migrate_start('lm');
});
ok(poll_until($coord, q{SELECT processed > 0 FROM migrate.migrations WHERE name = 'lm'}, timeout => 300),
	'the leaver\'s migration runs');
$coord->safe_psql('postgres', q{REASSIGN OWNED BY leaver TO victim; DROP OWNED BY leaver; DROP ROLE leaver});
is(wait_for_state($coord, 'lm', { timeout => 300 }, 'failed'), 'failed',
	'the migration of a dropped owner fails');
like(migration_row($coord, 'lm', 'last_error'), qr/the owner of migration lm \(role with OID \d+\) no longer exists/,
	'with the reason');
for my $w ($w1, $w2)
{
	is($w->safe_psql('postgres', q{SELECT count(*) FROM migrate.migrations m JOIN pg_roles r ON r.oid = m.owner::oid
		WHERE m.name LIKE 'lm/%'}), '0', 'no shard migration of lm runs as an existing role on ' . $w->name);
}

# 5. exactly once across a shard move made while the migration is paused,
# when the first step after it fails (here: a name squatted by the
# attacker on the new node, "migration ... does not exist" to the victim)
# and rolls its bookkeeping back.  The lead used to unregister the old
# shard migration in that step (committed on the old node), so the next
# step went on from the cursor kept since before the pause: the rows done
# in between were changed twice, with the migration "done" and no error.
$coord->safe_psql('postgres', q{
	SET ROLE victim;
	SET citus.shard_count = 4;
	CREATE TABLE w (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
	SELECT create_distributed_table('w', 'id');
	INSERT INTO w (id) SELECT generate_series(1, 200000);
	SELECT 1 FROM migrate_register('wm', 'w', set_clause => 'n = n + 1', batch_size => 500, pause => '200ms');
	SELECT 1 FROM migrate_start('wm');
});
my ($wshard, $wfrom) = split /\|/, $coord->safe_psql('postgres', q{
	SELECT s.shardid, n.nodeport FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
	  JOIN pg_dist_node n USING (groupid)
	 WHERE s.logicalrelid = 'w'::regclass AND n.nodeport <> } . $port0 . q{ ORDER BY 1 LIMIT 1});
my ($wsrc) = grep { $_->port == $wfrom } ($w1, $w2);
my ($wdst) = grep { $_->port != $wfrom } ($w1, $w2);
ok(poll_until($wsrc, qq{SELECT processed >= 3000 FROM migrate.migrations WHERE name = 'wm/$wshard'}, timeout => 300),
	"shard $wshard under way on its node");
as($coord, 'victim', q{SELECT migrate_pause('wm')});
ok(poll_until($wsrc, qq{SELECT state = 'paused' FROM migrate.migrations WHERE name = 'wm/$wshard'}, timeout => 300),
	'paused on its node');
note 'cursor on the node ' . $wsrc->safe_psql('postgres', qq{SELECT cursor FROM migrate.migrations WHERE name = 'wm/$wshard'})
  . ', on the coordinator ' . $coord->safe_psql('postgres', qq{SELECT cursor FROM migrate.citus_shards WHERE shardid = $wshard});
$coord->safe_psql('postgres', qq{SELECT citus_move_shard_placement($wshard, '127.0.0.1', $wfrom, '127.0.0.1', @{[ $wdst->port ]},
	shard_transfer_mode => 'block_writes')});
my $ashard = $coord->safe_psql('postgres', q{SELECT pg_catalog.shard_name('a'::regclass, min(shardid)) FROM pg_dist_shard s
	JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)
	WHERE logicalrelid = 'a'::regclass AND n.nodeport = } . $wdst->port);
as($wdst, 'attacker', qq{SELECT 1 FROM migrate_register('wm/$wshard', '$ashard', set_clause => 'n = n')});
as($coord, 'victim', q{SELECT migrate_resume('wm')});
is(wait_for_state($coord, 'wm', { timeout => 300 }, 'failed'), 'failed', 'the squatted name fails the victim\'s step');
like(migration_row($coord, 'wm', 'last_error'), qr/registering on 127\.0\.0\.1:\d+: .*"wm\/$wshard" does not exist/,
	'with the registration\'s error');
as($wdst, 'attacker', qq{SELECT migrate_unregister('wm/$wshard')});
as($coord, 'victim', q{SELECT migrate_start('wm')});
as($coord, 'victim', q{CALL migrate_await('wm', '10 min')});
is(as($coord, 'victim', q{SELECT state, processed, changed FROM migrate_status('wm')}),
	'done|200000|200000', 'the victim\'s migration is done, every row counted once');
is(as($coord, 'victim', q{SELECT count(*), count(*) FILTER (WHERE n = 1) FROM w}),
	'200000|200000', 'every row of w changed exactly once across the move and the failed step');
is($coord->safe_psql('postgres', qq{SELECT moves, state FROM migrate.citus_shards WHERE shardid = $wshard}),
	'1|done', "shard $wshard finished on its new node");

$_->stop for @nodes;
done_testing();
