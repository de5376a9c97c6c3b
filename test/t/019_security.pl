# A migration never runs with more rights than its owner (issue 9): each
# finding of the attack review of 0.2 that needs background workers,
# reproduced as an ordinary login would try it.
#
# 1. The owner's code never runs in a transaction that commits as anybody
#    else: a held cursor and a deferred trigger that re-defers itself, in a
#    migration of a NOLOGIN group role, of a database owner through
#    pg_database_owner, of a role made NOLOGIN while its migration runs,
#    and run by a superuser on somebody else's migration.  Before
#    PostgreSQL 17 a worker cannot connect as a NOLOGIN role, so such a
#    migration is refused in the background (and runs with CALL
#    migrate_run); from 17 its worker connects as the role itself.
# 2. A series runs the migrations pinned when it started, on behalf of
#    who started it, and stops when one was unregistered or registered
#    again, or is no longer theirs to start.
# And what the attack review of the fix found: SET ROLE, migrate_step,
# RESET ROLE before COMMIT; a worker's own code starting another worker
# beyond the per-role limit.
# 5. An owner can cancel its own worker; migrate.max_workers_per_role
#    keeps one role from taking every slot.
# 8. Register and start in one transaction works (and a rollback leaves
#    nothing running).
# 9. application_name does not name the migration; the activity that does
#    is hidden from other roles.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('security', 'max_worker_processes = 20', 'migrate.max_workers = 10');
my $bg_nologin = $node->pg_version >= 17;

$node->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE ROLE carol LOGIN;
	CREATE ROLE readers NOLOGIN;
	GRANT readers TO alice;
	CREATE TABLE audit (what text, cur name, sess name);
	GRANT INSERT, SELECT ON audit TO PUBLIC;
	GRANT CREATE ON SCHEMA public TO PUBLIC;
});

# run $sql as $role; return (exit code, stdout, stderr)
sub as
{
	my ($role, $sql, $db) = @_;
	my ($ret, $out, $err) = $node->psql($db // 'postgres', $sql,
		extra_params => [ '-U', $role ]);
	return ($ret, $out, $err);
}

sub superusers
{
	return $node->safe_psql('postgres',
		q{SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles
		   WHERE rolsuper AND rolname IN ('alice', 'bob', 'carol', 'readers')});
}

# --- 1. a held cursor in a NOLOGIN role's task (the review's reproduction)
my $pwn = q{
	CREATE FUNCTION pg_temp.pwn() RETURNS int LANGUAGE plpgsql AS $f$
	BEGIN
		INSERT INTO public.audit VALUES ('cursor', current_user, session_user);
		IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
			EXECUTE 'ALTER ROLE alice SUPERUSER';
		END IF;
		RETURN 1;
	END $f$;
	DECLARE c CURSOR WITH HOLD FOR SELECT pg_temp.pwn();
};
my ($ret, $out, $err) = as('alice', qq{
	SET ROLE readers;
	SELECT name FROM migrate_register('a30', NULL, sql => \$task\$ $pwn \$task\$);
	SELECT (migrate_start('a30')).state;
});
if ($bg_nologin)
{
	is($ret, 0, 'held cursor: a NOLOGIN role\'s task starts in the background') or diag($err);
	is(wait_for_state($node, 'a30'), 'done', 'held cursor: the task is done');
	is($node->safe_psql('postgres', q{SELECT cur || '/' || sess FROM audit WHERE what = 'cursor'}),
		'readers/readers', 'held cursor: ran at commit as the owner, in a session of the owner');
}
else
{
	isnt($ret, 0, 'held cursor: a NOLOGIN role\'s migration is refused in the background');
	like($err, qr/could not start migration "a30" in the background/, 'with a clear error');
	like($err, qr/Its owner, role "readers", cannot log in/, 'that names the owner');
	like($err, qr/HINT:  Run it in the foreground with CALL migrate_run\('a30'\)/, 'and the way out');
	is($node->safe_psql('postgres', q{SELECT state FROM migrate.migrations WHERE name = 'a30'}),
		'registered', 'held cursor: the refused start left the migration as it was');
	($ret, $out, $err) = as('alice', q{SET ROLE readers; CALL migrate_run('a30');});
	is($ret, 0, 'held cursor: CALL migrate_run runs it as a member') or diag($err);
	is($node->safe_psql('postgres', q{SELECT cur || '/' || sess FROM audit WHERE what = 'cursor'}),
		'readers/alice', 'held cursor: ran at commit as the owner, in the member\'s session');
}
is(superusers(), '', 'held cursor: nobody became a superuser');

# --- 1. a deferred trigger that re-defers itself and queues one more event
$node->safe_psql('postgres', q{
	CREATE TABLE dt (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, mark int NOT NULL DEFAULT 0);
	INSERT INTO dt (id) SELECT g FROM generate_series(1, 10) g;
	CREATE FUNCTION dt_trig() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.audit VALUES ('trigger', current_user, session_user);
		IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
			EXECUTE 'ALTER ROLE alice SUPERUSER';
		END IF;
		IF NEW.id = 1 AND NEW.mark = 0 THEN
			SET CONSTRAINTS ALL DEFERRED;
			UPDATE public.dt SET mark = 1 WHERE id = 1;
		END IF;
		RETURN NULL;
	END $$;
	CREATE CONSTRAINT TRIGGER dt_c AFTER UPDATE ON dt
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dt_trig();
	ALTER TABLE dt OWNER TO readers;
});
($ret, $out, $err) = as('alice', q{
	SET ROLE readers;
	SELECT name FROM migrate_register('a31', 'dt', set_clause => 'n = n + 1', batch_size => 100);
	SELECT (migrate_start('a31')).state;
});
if ($bg_nologin)
{
	is($ret, 0, 'deferred trigger: starts in the background') or diag($err);
	is(wait_for_state($node, 'a31'), 'done', 'deferred trigger: the migration is done');
}
else
{
	like($err, qr/could not start migration "a31" in the background/, 'deferred trigger: refused in the background');
	($ret, $out, $err) = as('alice', q{SET ROLE readers; CALL migrate_run('a31');});
	is($ret, 0, 'deferred trigger: CALL migrate_run runs it') or diag($err);
}
is($node->safe_psql('postgres', q{
		SELECT count(*), count(*) FILTER (WHERE cur = 'readers') FROM audit WHERE what = 'trigger'}),
	'11|11', 'deferred trigger: every firing, the re-queued one too, ran as the owner');
is($node->safe_psql('postgres', q{SELECT sum(n), sum(mark) FROM dt}), '10|1',
	'deferred trigger: every row changed once, the extra event fired');
is(superusers(), '', 'deferred trigger: nobody became a superuser');

# a superuser running somebody else's migration runs it restricted: the
# deferred event is refused, nothing runs as the superuser
$node->safe_psql('postgres', q{
	ALTER TABLE dt DISABLE TRIGGER dt_c;
	UPDATE dt SET mark = 0;
	ALTER TABLE dt ENABLE TRIGGER dt_c;
	DELETE FROM audit;
});
($ret, $out, $err) = as('alice', q{
	SELECT name FROM migrate_register('a32', 'dt', set_clause => 'n = n + 1', batch_size => 100);
});
is($ret, 0, 'alice registers a migration on a table of her group') or diag($err);
($ret, $out, $err) = $node->psql('postgres', q{SELECT migrate_step('a32')});
like($err, qr/cannot fire deferred trigger within security-restricted operation/,
	'superuser migrate_step: the owner\'s deferred trigger is refused');
($ret, $out, $err) = $node->psql('postgres', q{CALL migrate_run('a32')});
like($err, qr/cannot fire deferred trigger within security-restricted operation/,
	'superuser CALL migrate_run: refused as well');
is($node->safe_psql('postgres', q{SELECT count(*) FROM audit}), '0',
	'superuser run: the owner\'s trigger never ran');
is($node->safe_psql('postgres', q{SELECT sum(n) FROM dt}), '10', 'superuser run: dt unchanged');
# alice herself runs it in a worker connected as alice
$node->safe_psql('postgres', q{SELECT migrate_start('a32')});
is(wait_for_state($node, 'a32'), 'done', 'the owner\'s own worker runs it');
is($node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE cur = 'alice' AND sess = 'alice'), count(*) FROM audit}),
	'11|11', 'in the worker every firing ran as alice, in a session of alice');
is(superusers(), '', 'superuser run: nobody became a superuser');

# a superuser who SET ROLE to the owner could RESET ROLE before COMMIT:
# migrate_step leaves the commit to its caller, so the owner's code runs
# restricted there, and nothing is left for the commit
($ret, $out, $err) = as('alice', qq{
	SET ROLE readers;
	SELECT name FROM migrate_register('a35', NULL, sql => \$task\$ $pwn \$task\$);
});
is($ret, 0, 'readers registers a task with a held cursor') or diag($err);
$node->safe_psql('postgres', q{DELETE FROM audit});
($ret, $out, $err) = $node->psql('postgres', q{
	BEGIN; SET ROLE readers; SELECT migrate_step('a35'); RESET ROLE; COMMIT;});
like($err, qr/cannot create a cursor WITH HOLD within security-restricted operation/,
	'SET ROLE, migrate_step, RESET ROLE: the held cursor is refused');
is($node->safe_psql('postgres', q{SELECT count(*) FROM audit}), '0',
	'SET ROLE, migrate_step, RESET ROLE: nothing ran at commit');
is(superusers(), '', 'SET ROLE, migrate_step, RESET ROLE: nobody became a superuser');

# --- 1. a database owner through pg_database_owner
$node->safe_psql('postgres', q{CREATE DATABASE adb OWNER alice});
$node->safe_psql('adb', q{
	CREATE EXTENSION migrate;
	CREATE TABLE audit (what text, cur name, sess name);
	GRANT INSERT, SELECT ON audit TO PUBLIC;
});
($ret, $out, $err) = as('alice', qq{
	SET ROLE pg_database_owner;
	SELECT name FROM migrate_register('a34', NULL, sql => \$task\$ $pwn \$task\$);
	SELECT (migrate_start('a34')).state;
}, 'adb');
if ($bg_nologin)
{
	is($ret, 0, 'pg_database_owner: starts in the background') or diag($err);
	is(wait_for_state($node, 'a34', { db => 'adb' }), 'done', 'pg_database_owner: done');
	is($node->safe_psql('adb', q{SELECT cur || '/' || sess FROM audit}),
		'pg_database_owner/pg_database_owner', 'pg_database_owner: ran as that role only');
}
else
{
	like($err, qr/could not start migration "a34" in the background/,
		'pg_database_owner: refused in the background');
}
is(superusers(), '', 'pg_database_owner: nobody became a superuser');

# --- 1. a role made NOLOGIN while its migration runs, then a restart
$node->safe_psql('postgres', q{
	CREATE TABLE bt (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO bt (id) SELECT g FROM generate_series(1, 3000) g;
	ALTER TABLE bt OWNER TO bob;
});
as('bob', q{SELECT migrate_register('b33', 'bt', set_clause => 'n = n + 1',
                                     batch_size => 20, pause => '20ms');
            SELECT migrate_start('b33');});
poll_ok($node, q{SELECT processed > 0 FROM migrate.migrations WHERE name = 'b33'},
	't', 'NOLOGIN later: bob\'s migration runs');
is($node->safe_psql('postgres', q{
		SELECT usename FROM pg_stat_activity a JOIN migrate.migrations m ON a.pid = m.worker_pid
		 WHERE m.name = 'b33'}),
	'bob', 'the worker is connected as bob');
$node->safe_psql('postgres', q{ALTER ROLE bob NOLOGIN});
$node->restart;
if ($bg_nologin)
{
	is(wait_for_state($node, 'b33'), 'done', 'NOLOGIN later: resumed after the restart and done');
	is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE n <> 1) FROM bt}), '0',
		'NOLOGIN later: every row changed exactly once');
	is($node->safe_psql('postgres', q{
			SELECT role FROM migrate.events WHERE migration = 'b33' AND event = 'resume'}),
		'bob', 'NOLOGIN later: resumed on behalf of bob');
}
else
{
	is(wait_for_state($node, 'b33'), 'failed', 'NOLOGIN later: not resumed as anybody else');
	like($node->safe_psql('postgres', q{SELECT last_error FROM migrate.migrations WHERE name = 'b33'}),
		qr/could not resume after a server restart: could not start migration "b33" in the background/,
		'NOLOGIN later: with the reason');
}
$node->safe_psql('postgres', q{ALTER ROLE bob LOGIN});
is(superusers(), '', 'NOLOGIN later: nobody became a superuser');

# --- 5. an owner cancels its own worker; one role cannot take every slot
$node->safe_psql('postgres', q{
	CREATE TABLE slow (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO slow (id) SELECT g FROM generate_series(1, 100000) g;
	ALTER TABLE slow OWNER TO bob;
	CREATE TABLE slow2 (LIKE slow INCLUDING ALL);
	INSERT INTO slow2 SELECT * FROM slow;
	ALTER TABLE slow2 OWNER TO bob;
	CREATE TABLE slow3 (LIKE slow INCLUDING ALL);
	INSERT INTO slow3 SELECT * FROM slow;
	ALTER TABLE slow3 OWNER TO carol;
	ALTER SYSTEM SET migrate.max_workers_per_role = 1;
	SELECT pg_reload_conf();
});
as('bob', q{SELECT migrate_register('b5', 'slow', set_clause => 'n = n + 1', batch_size => 10, pause => '50ms');
            SELECT migrate_register('b6', 'slow2', set_clause => 'n = n + 1', batch_size => 10, pause => '50ms');});
as('carol', q{SELECT migrate_register('c5', 'slow3', set_clause => 'n = n + 1', batch_size => 10, pause => '50ms');});
($ret, $out, $err) = as('bob', q{SELECT (migrate_start('b5')).state});
is($out, 'running', 'per-role limit: bob\'s first migration starts') or diag($err);
($ret, $out, $err) = as('bob', q{SELECT (migrate_start('b6')).state});
like($err, qr/could not start migration "b6": role "bob" already has 1 migrate workers/,
	'per-role limit: bob\'s second is refused, naming the limit');
like($err, qr/migrate\.max_workers_per_role/, 'per-role limit: the hint names the setting');
($ret, $out, $err) = as('carol', q{SELECT (migrate_start('c5')).state});
is($out, 'running', 'per-role limit: carol still gets a worker') or diag($err);

# 9. what other roles see of a worker
poll_ok($node, q{
		SELECT count(*) = 2 FROM pg_stat_activity
		 WHERE backend_type = 'migrate worker' AND query LIKE 'migrate: %'},
	't', 'both workers report their activity');
my $b5_pid = $node->safe_psql('postgres', q{SELECT worker_pid FROM migrate.migrations WHERE name = 'b5'});
($ret, $out, $err) = as('carol', qq{
	SELECT application_name, query FROM pg_stat_activity WHERE pid = $b5_pid});
is($out, 'migrate worker|<insufficient privilege>',
	'another role sees neither the name nor the activity of bob\'s worker');
($ret, $out, $err) = as('bob', q{
	SELECT application_name, query LIKE '%"b5"%' FROM pg_stat_activity a
	 WHERE a.backend_type = 'migrate worker' AND a.usename = 'bob'});
is($out, 'migrate worker|t', 'bob sees his worker\'s activity, which names the migration');

($ret, $out, $err) = as('bob', q{
	SELECT pg_cancel_backend(worker_pid) FROM migrate.migrations WHERE name = 'b5'});
is($out, 't', 'bob may cancel his own worker') or diag($err);
isnt(wait_for_state($node, 'b5'), 'running', 'the cancelled migration stopped');
poll_ok($node, q{
		SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'migrate worker' AND usename = 'bob'},
	't', 'bob\'s worker is gone');
($ret, $out, $err) = as('bob', q{SELECT (migrate_start('b6')).state});
is($out, 'running', 'per-role limit: with his slot free bob starts another') or diag($err);
$node->safe_psql('postgres', q{
	SELECT migrate_cancel(name) FROM migrate.migrations WHERE name IN ('b6', 'c5') AND state = 'running';
	ALTER SYSTEM RESET migrate.max_workers_per_role;
	SELECT pg_reload_conf();
});
isnt(wait_for_state($node, $_), 'running', "$_ stopped after its cancel") for ('b6', 'c5');

# a worker's own code starting another migration counts against the limit
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET migrate.max_workers_per_role = 1;
	SELECT pg_reload_conf();
});
as('bob', q{
	SELECT migrate_register('b_main', NULL, sql => $$SELECT migrate_start('b6')$$);
	SELECT migrate_start('b_main');
});
is(wait_for_state($node, 'b_main'), 'failed', 'per-role limit: a task starting a second worker of bob fails');
like($node->safe_psql('postgres', q{SELECT last_error FROM migrate.migrations WHERE name = 'b_main'}),
	qr/role "bob" already has 1 migrate workers/, 'per-role limit: with the limit as the reason');
is($node->safe_psql('postgres', q{SELECT state FROM migrate.migrations WHERE name = 'b6'}),
	'cancelled', 'per-role limit: the other migration did not start');
$node->safe_psql('postgres', q{
	ALTER SYSTEM RESET migrate.max_workers_per_role;
	SELECT pg_reload_conf();
});

# --- 8. register and start in one transaction
$node->safe_psql('postgres', q{
	CREATE TABLE tx (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO tx (id) SELECT g FROM generate_series(1, 500) g;
	ALTER TABLE tx OWNER TO bob;
});
($ret, $out, $err) = as('bob', q{
	BEGIN;
	SELECT name FROM migrate_register('b8', 'tx', set_clause => 'n = n + 1', batch_size => 100);
	SELECT (migrate_start('b8')).state;
	COMMIT;
});
is($ret, 0, 'register and start in one transaction: accepted') or diag($err);
is(wait_for_state($node, 'b8'), 'done', 'register and start in one transaction: done once committed');
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE n = 1) FROM tx}), '500',
	'register and start in one transaction: every row changed once');
($ret, $out, $err) = as('bob', q{
	BEGIN;
	SELECT name FROM migrate_register('b9', 'tx', set_clause => 'n = n + 1', batch_size => 100);
	SELECT (migrate_start('b9')).state;
	ROLLBACK;
});
is($ret, 0, 'register and start, rolled back') or diag($err);
poll_ok($node, q{
		SELECT count(*) = 0 FROM pg_stat_activity WHERE } . worker_of('b9'),
	't', 'rolled back: its worker left');
is($node->safe_psql('postgres', q{
		SELECT (SELECT count(*) FROM migrate.migrations WHERE name = 'b9'),
		       (SELECT count(*) FILTER (WHERE n <> 1) FROM tx)}),
	'0|0', 'rolled back: no migration, no row changed');

# --- 2. a series runs what was pinned, on behalf of its starter
$node->safe_psql('postgres', q{
	CREATE TABLE af (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO af (id) SELECT g FROM generate_series(1, 400) g;
	ALTER TABLE af OWNER TO alice;
	CREATE TABLE ash (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO ash (id) SELECT g FROM generate_series(1, 100) g;
	ALTER TABLE ash OWNER TO alice;
	CREATE TABLE bobt (id int PRIMARY KEY);
	INSERT INTO bobt SELECT g FROM generate_series(1, 100) g;
	ALTER TABLE bobt OWNER TO bob;
});
# a plain series of two of alice's migrations
as('alice', q{
	SELECT migrate_register('s1', 'af', set_clause => 'n = n + 1', batch_size => 100);
	SELECT migrate_register('s2', 'ash', set_clause => 'n = n + 1', batch_size => 100);
	SELECT migrate_start_series(ARRAY['s1', 's2']);
});
is(wait_for_state($node, 's1'), 'done', 'series: the first member is done');
poll_ok($node, q{SELECT state = 'done' FROM migrate.migrations WHERE name = 's2'},
	't', 'series: the second member ran after it');
is($node->safe_psql('postgres', q{
		SELECT started_by || '/' || (SELECT role FROM migrate.events WHERE migration = 's2' AND event = 'start')
		  FROM migrate.migrations WHERE name = 's2'}),
	'alice/alice', 'series: the second member was started on behalf of alice');

# alice's member is replaced by bob's migration of the same name
as('alice', q{
	SELECT migrate_register('first', 'af', set_clause => 'n = n + 1', batch_size => 20, pause => '50ms');
	SELECT migrate_register('shared', 'ash', set_clause => 'n = n + 1');
	SELECT migrate_start_series(ARRAY['first', 'shared']);
	SELECT migrate_unregister('shared');
});
($ret, $out, $err) = as('bob', q{
	SELECT name FROM migrate_register('shared', 'bobt', action => 'delete', where_clause => 'true')});
is($out, 'shared', 'series: bob registers his own "shared"') or diag($err);
is(wait_for_state($node, 'first'), 'done', 'series: the first member finished');
poll_ok($node, q{
		SELECT last_error IS NOT NULL FROM migrate.migrations WHERE name = 'first'},
	't', 'series: the hand-over was refused');
is($node->safe_psql('postgres', q{
		SELECT m.state, (SELECT count(*) FROM bobt), f.last_error
		  FROM migrate.migrations m, migrate.migrations f
		 WHERE m.name = 'shared' AND f.name = 'first'}),
	'registered|100|the series stopped: migration "shared" was unregistered after the series started',
	'series: bob\'s migration did not run, and the reason is in last_error');
is($node->safe_psql('postgres', q{
		SELECT count(*) FROM migrate.events WHERE migration = 'first' AND event = 'series stopped'}),
	'1', 'series: the stop is in the audit log');

# a member registered again (replace => true keeps its id) is not run either
as('alice', q{
	UPDATE af SET n = 0;
	SELECT migrate_register('first2', 'af', set_clause => 'n = n + 1', batch_size => 20, pause => '50ms');
	SELECT migrate_register('second2', 'ash', set_clause => 'n = n + 1');
	SELECT migrate_start_series(ARRAY['first2', 'second2']);
	SELECT migrate_register('second2', 'ash', set_clause => 'n = n + 100', replace => true);
});
is(wait_for_state($node, 'first2'), 'done', 'series, replaced: the first member finished');
poll_ok($node, q{
		SELECT last_error IS NOT NULL FROM migrate.migrations WHERE name = 'first2'},
	't', 'series, replaced: the hand-over was refused');
is($node->safe_psql('postgres', q{
		SELECT m.state, f.last_error FROM migrate.migrations m, migrate.migrations f
		 WHERE m.name = 'second2' AND f.name = 'first2'}),
	'registered|the series stopped: migration "second2" was registered again after the series started',
	'series, replaced: the new definition did not run');

# carol starts a series of her own migration and one of readers (she is a
# member), then loses the membership before the hand-over
$node->safe_psql('postgres', q{
	GRANT readers TO carol;
	CREATE TABLE cf (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO cf (id) SELECT g FROM generate_series(1, 400) g;
	ALTER TABLE cf OWNER TO carol;
	DROP TRIGGER dt_c ON dt;
	UPDATE dt SET n = 0, mark = 0;
});
($ret, $out, $err) = as('carol', q{
	SELECT migrate_register('c1', 'cf', set_clause => 'n = n + 1', batch_size => 20, pause => '50ms');
	SET ROLE readers;
	SELECT migrate_register('r1', 'dt', set_clause => 'n = n + 1');
	RESET ROLE;
	SELECT (migrate_start_series(ARRAY['c1', 'r1'])).state;
});
is($ret, 0, 'series across roles: carol starts it') or diag($err);
$node->safe_psql('postgres', q{REVOKE readers FROM carol});
is(wait_for_state($node, 'c1'), 'done', 'series across roles: carol\'s member is done');
poll_ok($node, q{SELECT last_error IS NOT NULL FROM migrate.migrations WHERE name = 'c1'},
	't', 'series across roles: the hand-over was refused');
is($node->safe_psql('postgres', q{
		SELECT r.state, (SELECT sum(n) FROM dt), c.last_error
		  FROM migrate.migrations r, migrate.migrations c WHERE r.name = 'r1' AND c.name = 'c1'}),
	'registered|0|the series stopped: role "carol", which started it, may no longer start migration "r1"',
	'series across roles: readers\' migration was not run on carol\'s behalf');

is(superusers(), '', 'in the end nobody became a superuser');
done_testing();
