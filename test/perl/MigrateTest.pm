# MigrateTest: what migrate's TAP tests share, so that each test file reads
# as the guarantee it proves.  Every file in test/t uses it.
#
#   my $node = migrate_node('name', 'max_worker_processes = 20');
#   is(wait_for_state($node, 'bump'), 'done');
#   poll_ok($node, q{SELECT processed >= 1000 FROM migrate.migrations
#                    WHERE name = 'bump'}, 't', 'under way');
#   my $pid = worker_pid($node, 'bump');
#
# The helpers, one per job:
#   migrate_node      a started node with migrate preloaded and the extension
#                     created (options: another preload list, no extension,
#                     arguments for init)
#   worker_of         the pg_stat_activity condition that finds a worker
#   worker_pid        the pid(s) of a migration's worker(s)
#   migration_row     columns of a migration's row in migrate.migrations
#   wait_for_state    wait until a migration stops running (or reaches given
#                     states); returns the state, for the caller to assert
#   poll_until        poll a query until its value is what is wanted, giving
#                     up at a deadline or when a stop value shows; returns
#                     whether it got there, the last value and every value
#   poll_ok           poll_until as one check: fails on the deadline (or on
#                     a stop value) and shows the last value and the series
#   sample_series     record a query's values through a defined window (until
#                     a condition, with a deadline; a number of looks; some
#                     seconds) for assertions on the whole series
#   wait_worker_gone  a check: no worker of the migration is left
#   wait_resumed      a check: after a fault, a new worker runs the migration
#                     and it goes beyond a given point
#   cursor_agrees     't' when a table agrees with a migration's cursor and
#                     counters ('n = n + 1' migrations on an id key)
#
# A wait never ends silently: poll_ok and wait_resumed are checks that fail
# at their deadline, and poll_until/sample_series say whether they reached
# their condition, which the caller asserts.  Deadlines default to
# $PostgreSQL::Test::Utils::timeout_default (PG_TEST_TIMEOUT_DEFAULT, 180 s):
# the machines that run these tests are slow and shared.
package MigrateTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(migrate_node worker_of worker_pid migration_row wait_for_state
  poll_until poll_ok sample_series wait_worker_gone wait_resumed cursor_agrees);

# A started node with migrate preloaded and CREATE EXTENSION migrate done in
# the postgres database; further postgresql.conf lines may follow.  A hash
# reference before them holds options:
#   preload   => shared_preload_libraries ('migrate'; '' preloads nothing)
#   extension => 0 to leave CREATE EXTENSION to the test (default 1)
#   init      => { arguments of PostgreSQL::Test::Cluster::init }
sub migrate_node
{
	my ($name, @conf) = @_;
	my %opt = ref $conf[0] eq 'HASH' ? %{ shift @conf } : ();
	my $preload = $opt{preload} // 'migrate';
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init(%{ $opt{init} // {} });
	unshift @conf, "shared_preload_libraries = '$preload'" if $preload ne '';
	$node->append_conf('postgresql.conf', join("\n", @conf) . "\n") if @conf;
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION migrate')
	  if $opt{extension} // 1;
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

# The pid of the worker of a migration ('' when there is none; one pid a
# line, in pid order, when several work on it).  Options: db.
sub worker_pid
{
	my ($node, $migration, %opt) = @_;
	return $node->safe_psql($opt{db} // 'postgres',
		'SELECT pid FROM pg_stat_activity WHERE ' . worker_of($migration) . ' ORDER BY pid');
}

# Columns (an SQL select list, 'state' by default) of a migration's row in
# migrate.migrations, '|'-separated.  Options: db.
sub migration_row
{
	my ($node, $migration, $columns, %opt) = @_;
	$columns //= 'state';
	return $node->safe_psql($opt{db} // 'postgres',
		qq{SELECT $columns FROM migrate.migrations WHERE name = '$migration'});
}

# Wait until the migration is no longer running (or in one of @states, if
# given) and return its state, which the caller asserts: a timeout shows as
# the state it was left in ('running'), with a diag.  A hash reference
# before @states holds options: db, timeout.
sub wait_for_state
{
	my ($node, $migration, @states) = @_;
	my %opt = @states && ref $states[0] eq 'HASH' ? %{ shift @states } : ();
	my $cond = @states
	  ? 'state IN (' . join(', ', map { "'$_'" } @states) . ')'
	  : q{state <> 'running'};

	my ($ok, $last) = poll_until($node,
		qq{SELECT $cond FROM migrate.migrations WHERE name = '$migration'}, %opt);
	my $state = migration_row($node, $migration, 'state', %opt);
	diag("wait_for_state: migration \"$migration\" still $state after the deadline")
	  unless $ok;
	return $state;
}

# Does $value satisfy $want: a string (equal), a regexp, or a code
# reference called with the value?
sub _matches
{
	my ($value, $want) = @_;
	return $want->($value) if ref $want eq 'CODE';
	return $value =~ $want if ref $want eq 'Regexp';
	return $value eq $want;
}

# Poll $query (one value, or '|'-separated columns) until its value matches
# $opt{expect} ('t' by default; a string, a regexp or a code reference).
# Gives up at the deadline ($opt{timeout} seconds) or as soon as a value
# matches $opt{stop}.  A look that fails (the server restarting, say) is
# recorded and polled past.  Returns in list context (reached, last value,
# reference to the list of every value seen, an error as "ERROR: ..."), in
# scalar context whether it was reached.  Options: expect, stop, timeout,
# interval (seconds between looks, 0.1), db.
sub poll_until
{
	my ($node, $query, %opt) = @_;
	my $want = $opt{expect} // 't';
	my $deadline = time + ($opt{timeout} // $PostgreSQL::Test::Utils::timeout_default);
	my $interval = $opt{interval} // 0.1;
	my ($last, @seen);

	while (1)
	{
		my ($ret, $out, $err) = $node->psql($opt{db} // 'postgres', $query);
		$last = $ret == 0 ? $out : "ERROR: $err";
		push @seen, $last;
		return wantarray ? (1, $last, \@seen) : 1
		  if $ret == 0 && _matches($last, $want);
		last if defined $opt{stop} && $ret == 0 && _matches($last, $opt{stop});
		last if time >= $deadline;
		usleep($interval * 1_000_000);
	}
	return wantarray ? (0, $last, \@seen) : 0;
}

# The values seen, with repeats folded ("x (5 times)"), for a diag.
sub _series_text
{
	my ($seen) = @_;
	my @runs;
	for my $v (@$seen)
	{
		if (@runs && $runs[-1][0] eq $v) { $runs[-1][1]++ }
		else { push @runs, [ $v, 1 ] }
	}
	return join("\n", map { "  $_->[0]" . ($_->[1] > 1 ? " ($_->[1] times)" : '') } @runs);
}

# One check: poll $query until it returns $expect (a string, a regexp or a
# code reference), named $name.  It fails at the deadline, or at once when
# a value matches $opt{stop}, and then shows the last value and every value
# it saw.  Returns whether it passed.  Options: as poll_until.
sub poll_ok
{
	my ($node, $query, $expect, $name, %opt) = @_;
	my ($ok, $last, $seen) = poll_until($node, $query, %opt, expect => $expect);
	ok($ok, $name)
	  or diag("poll_ok: query\n$query\nexpected "
		  . (ref $expect ? "a value matching $expect" : "'$expect'")
		  . (defined $opt{stop} && $last !~ /^ERROR: / && _matches($last, $opt{stop})
		  ? ', stopped at' : ', timed out at')
		  . " '$last'; the values seen:\n" . _series_text($seen));
	return $ok;
}

# Record the values of $query through a window: look every $opt{interval}
# seconds (0.1) until a value matches $opt{until} (a string, regexp or code
# reference; that value is recorded too), or, without until, $opt{looks}
# times or for $opt{seconds}.  Returns (reference to the list of values,
# whether the window ended by its condition); the caller asserts on the
# series and on the window.  With until, the window ends at the deadline
# $opt{timeout} at the latest.  Options: until, looks, seconds, timeout,
# interval, db.
sub sample_series
{
	my ($node, $query, %opt) = @_;
	my $until = $opt{until};
	my $end = time + ($opt{seconds} // $opt{timeout} // $PostgreSQL::Test::Utils::timeout_default);
	my $interval = $opt{interval} // 0.1;
	my @seen;

	while (1)
	{
		my ($ret, $out, $err) = $node->psql($opt{db} // 'postgres', $query);
		push @seen, $ret == 0 ? $out : "ERROR: $err";
		return (\@seen, 1) if defined $until && $ret == 0 && _matches($out, $until);
		return (\@seen, 1) if !defined $until && $opt{looks} && @seen >= $opt{looks};
		last if time >= $end;
		usleep($interval * 1_000_000);
	}
	diag("sample_series: the window of\n$query\nended at its deadline; the values seen:\n"
		  . _series_text(\@seen))
	  if defined $until;
	return (\@seen, !defined $until);
}

# One check: no worker of the migration is left in pg_stat_activity.
# Options: db, timeout.
sub wait_worker_gone
{
	my ($node, $migration, $name, %opt) = @_;
	return poll_ok($node,
		'SELECT count(*) FROM pg_stat_activity WHERE ' . worker_of($migration),
		'0', $name, %opt);
}

# One check, after a fault (a killed worker, a restart): the migration is
# running again with a new worker (exactly one, or at least one with
# parallel => 1) whose pid is not in old_pids, and its column (processed
# unless column => 'reverted' ...) is beyond past; with done_ok => 1 being
# done counts as well.  With old_pids, none of those processes may be left.
# With within => s a second check asserts it took less than s seconds.
# Returns the new worker's pid (pids, one a line, with parallel).  Options:
# old_pids, past, column, parallel, done_ok, within, timeout, db.
sub wait_resumed
{
	my ($node, $migration, $what, %opt) = @_;
	my $old = join(', ', @{ $opt{old_pids} // [] }) || '0';
	my $col = $opt{column} // 'processed';
	my $past = $opt{past} // -1;
	my $count = $opt{parallel} ? '>= 1' : '= 1';
	my $query = qq{
		SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid IN ($old))
		   AND ((m.state = 'running' AND m.$col > $past
		         AND (SELECT count(*) FROM pg_stat_activity a
		               WHERE } . worker_of($migration, 'a') . qq{
		                 AND a.pid NOT IN ($old)) $count)}
	  . ($opt{done_ok} ? q{ OR m.state = 'done'} : '') . qq{)
		  FROM migrate.migrations m WHERE m.name = '$migration'};
	my $t0 = time;
	poll_ok($node, $query, 't',
		"$what: taken up again by a new worker, beyond $past $col", %opt);
	my $secs = time - $t0;
	cmp_ok($secs, '<', $opt{within},
		"$what: within $opt{within} s (" . sprintf('%.1f', $secs) . ' s)')
	  if $opt{within};
	return worker_pid($node, $migration, %opt);
}

# 't' when $table agrees with the single cursor and the counters of
# migration $migration, an 'n = n + 1' migration keyed on id from n = 0:
# the rows at 1 are exactly the processed ones and lie up to the cursor,
# every row after the cursor is still at 0, none is above 1.  Options: db.
sub cursor_agrees
{
	my ($node, $migration, $table, %opt) = @_;
	return $node->safe_psql($opt{db} // 'postgres', qq{
		SELECT count(*) FILTER (WHERE x.n = 1) = m.processed
		       AND count(*) FILTER (WHERE x.n = 1
		                              AND x.id <= (m.cursor->>'id')::bigint) = m.processed
		       AND count(*) FILTER (WHERE x.n = 0
		                              AND x.id > (m.cursor->>'id')::bigint) = count(*) - m.processed
		       AND count(*) FILTER (WHERE x.n NOT IN (0, 1)) = 0
		  FROM $table x, migrate.migrations m WHERE m.name = '$migration'
		 GROUP BY m.processed, m.cursor});
}

# ---- high availability (issue 22): primaries that stream, standbys,
# ---- timed waits.  Used by test/t/040-042.
use Time::HiRes ();

push @EXPORT, qw(ha_primary ha_standby ha_table ha_wait);

# A started primary that streams ($streaming: 1, or 'logical' for logical
# decoding), with migrate preloaded and created in postgres; standbys and
# subscribers answer every second.  Further postgresql.conf lines may follow.
sub ha_primary
{
	my ($name, $streaming, @conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init(allows_streaming => $streaming);
	$node->append_conf('postgresql.conf',
		join("\n", "shared_preload_libraries = 'migrate'",
			'wal_receiver_status_interval = 1s', @conf) . "\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION migrate');
	return $node;
}

# A started streaming standby of $primary, from a new base backup; its
# application_name is $name.  Further postgresql.conf lines may follow.
sub ha_standby
{
	my ($primary, $name, @conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$primary->backup("${name}_base");
	$node->init_from_backup($primary, "${name}_base", has_streaming => 1);
	$node->append_conf('postgresql.conf', join("\n", @conf) . "\n") if @conf;
	$node->start;
	return $node;
}

# Create table $table (id bigint PRIMARY KEY, n int = 0, pad text) with $rows
# rows.
sub ha_table
{
	my ($node, $table, $rows) = @_;
	$node->safe_psql('postgres', qq{
		CREATE TABLE $table (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, pad text);
		INSERT INTO $table (id, pad) SELECT g, repeat('x', 100) FROM generate_series(1, $rows) g;
		VACUUM ANALYZE $table;
	});
}

# Wait until $sql returns true on $node; return the seconds it took.  Fails
# the test (and returns -1) after the default timeout.
sub ha_wait
{
	my ($node, $sql, $what) = @_;
	my $t0 = Time::HiRes::time();
	my $ok = $node->poll_query_until('postgres', $sql);
	Test::More::ok($ok, $what);
	return $ok ? Time::HiRes::time() - $t0 : -1;
}
# ---- end of high availability (issue 22)

# ---- Citus (issue 23): a coordinator and two worker nodes on 127.0.0.1,
# ---- at MIGRATE_CITUS_PORT (5750) and the next two ports.  Used by
# ---- test/t/050 and 055.

push @EXPORT, qw(citus_cluster);

# citus_cluster($prefix): start the three nodes (named "${prefix}0".."2"),
# with Citus and migrate preloaded and Citus created on each, add the
# workers to the coordinator and create migrate there (Citus creates it on
# the workers).  Returns ($coordinator, $worker1, $worker2).
sub citus_cluster
{
	my ($prefix) = @_;
	my $port0 = $ENV{MIGRATE_CITUS_PORT} // 5750;
	my @conf = (
		"shared_preload_libraries = 'citus,migrate'",
		"listen_addresses = '127.0.0.1'",
		'max_worker_processes = 24',
		'migrate.max_workers = 16',
		'max_connections = 100',
		'wal_level = logical',
		'max_wal_senders = 10',
		'max_replication_slots = 10',
		"output_plugin_libraries = 'pgoutput, test_decoding, citus'",
		'citus.defer_shard_delete_interval = 1000',
		'restart_after_crash = on');
	my @nodes;
	for my $i (0 .. 2)
	{
		my $n = PostgreSQL::Test::Cluster->new("$prefix$i", port => $port0 + $i);
		$n->init;
		$n->append_conf('postgresql.conf', join("\n", @conf) . "\n");
		$n->start;
		$n->safe_psql('postgres', 'CREATE EXTENSION citus');
		push @nodes, $n;
	}
	$nodes[0]->safe_psql('postgres', qq{
		SELECT citus_set_coordinator_host('127.0.0.1', $port0);
		SELECT citus_add_node('127.0.0.1', @{[ $port0 + 1 ]});
		SELECT citus_add_node('127.0.0.1', @{[ $port0 + 2 ]});
		CREATE EXTENSION migrate;
	});
	return @nodes;
}

# ---- end of Citus (issue 23)

1;
