# migrate on a real Citus cluster (issue 23): a coordinator and two worker
# nodes on 127.0.0.1, Citus and migrate preloaded on each.
#
# Needs Citus built into the PostgreSQL under test: test/citus-build.sh
# (run by test/run-tests.sh as root) builds it from the tarball that
# MIGRATE_CITUS_SOURCE names.  Without that variable (or with no file there)
# the test is skipped; with a source but no matching install it tries to
# build it (which needs the rights to install) and fails if it cannot.
#
# Every migration is n = n + 1 on every row; exactly once means every row
# has n one higher after it, with processed = changed = the row count.
#   1. a plain run, started on the coordinator, of a 200,000-row table with
#      32 shards: done, each shard walked on its node (one shard migration
#      per shard, on the node that holds it), the sums on the coordinator;
#   2. a shard moved (citus_move_shard_placement, non-blocking) while its
#      shard migration is half done: the shard is finished on its new node
#      from the cursor of the old one;
#   2b. a shard split (citus_split_shard_by_split_points, its halves on
#      both workers, blocking writes: the non-blocking split's logical
#      replication fails on this PostgreSQL 15.20 with "publisher did not
#      send replica identity column expected by the logical replication
#      target relation" once a batch's UPDATE reaches it) while its shard
#      migration is half done: each half is finished from the cursor of the
#      whole;
#   3. pause, resume and cancel on the coordinator reach the nodes: after a
#      pause no shard migration runs and no row changes any more; resume
#      and a start after the cancel go on from the cursors;
#   3b. catch-up: rows the walk has done, set back to their old shape on
#      several shards while it runs, are changed again by the shard
#      migrations' catch-up passes (check_clause, catch_up => true);
#   4. kill -9 of a worker node's postmaster mid-run and its restart;
#   5. an immediate restart of the coordinator mid-run;
#   6. a reference table and a plain table on the coordinator are walked
#      there, as on any server;
#   7. keep_before (at registration), a dry run, an estimate and
#      migrate_step on a distributed table are refused with the reason.
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $src = $ENV{MIGRATE_CITUS_SOURCE} // '';
if ($src eq '' || !-f $src)
{
	plan skip_all =>
	  "Citus source not found (MIGRATE_CITUS_SOURCE='$src'): the Citus tests need test/citus-build.sh run as root with it";
}

# Citus installed into this PostgreSQL, of the tarball's version, or built now
my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
my $pkglibdir = `$pg_config --pkglibdir`;
chomp $pkglibdir;
my $sharedir = `$pg_config --sharedir`;
chomp $sharedir;
my $want = `tar -xzOf '$src' --wildcards '*/src/backend/distributed/citus.control' 2>/dev/null`;
($want) = $want =~ /default_version\s*=\s*'([^']+)'/;
my $have = '';
if (-f "$pkglibdir/citus.so" && open(my $fh, '<', "$sharedir/extension/citus.control"))
{
	local $/;
	($have) = <$fh> =~ /default_version\s*=\s*'([^']+)'/;
}
if (!defined $want || $have ne $want)
{
	my $script = dirname(__FILE__) . '/../citus-build.sh';
	note "Citus $want is not installed in $pkglibdir (found '$have'): building it";
	system('sh', $script, $src, $pg_config) == 0
	  or BAIL_OUT("could not build Citus from $src: run test/citus-build.sh as root");
}

my $port0 = $ENV{MIGRATE_CITUS_PORT} // 5750;
my ($coord, $w1, $w2) = citus_cluster('citus');
is($w1->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'migrate'}),
	'0.4', 'CREATE EXTENSION migrate on the coordinator reaches the workers');

sub sql { return $coord->safe_psql('postgres', $_[0]); }

# a distributed table t(id, n) of $rows rows in $shards shards, n = 0
sub make_table
{
	my ($t, $rows, $shards) = @_;
	sql(qq{
		SET citus.shard_count = $shards;
		CREATE TABLE $t (id bigint PRIMARY KEY, email text, external_id text, n int NOT NULL DEFAULT 0);
		SELECT create_distributed_table('$t', 'id');
		INSERT INTO $t (id, email) SELECT g, 'User' || g || '\@Example.COM' FROM generate_series(1, $rows) g;
		VACUUM ANALYZE $t;
	});
}

# every row has n = $n: "rows|rows with n = $n"
sub counts
{
	my ($t, $n) = @_;
	return sql(qq{SELECT count(*), count(*) FILTER (WHERE n = $n) FROM $t});
}

# wait for a state of the migration on the coordinator
sub await_state
{
	my ($name, $timeout) = @_;
	$timeout //= '10 min';
	return sql(qq{CALL migrate_await('$name', '$timeout')});
}

# shard migrations of $name running on a node (their workers hold the runner lock)
sub running_on
{
	my ($node, $name) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT count(*) FROM migrate.migrations
		 WHERE name LIKE '$name/%' AND state = 'running'});
}

# wait until a shard of $name has done at least $lo rows but fewer than $hi
# (a shard "half done"); returns "shardid|nodeport|processed"
sub half_done_shard
{
	my ($name, $lo, $hi) = @_;
	$coord->poll_query_until('postgres', qq{
		SELECT EXISTS (SELECT 1 FROM migrate.citus_shards s JOIN migrate.migrations m ON m.id = s.migration
		 WHERE m.name = '$name' AND s.state = 'running' AND s.processed BETWEEN $lo AND $hi)})
	  or die "no shard of $name half done";
	return sql(qq{SELECT s.shardid, s.nodeport, s.processed FROM migrate.citus_shards s
		JOIN migrate.migrations m ON m.id = s.migration
		WHERE m.name = '$name' AND s.state = 'running' AND s.processed BETWEEN $lo AND $hi
		ORDER BY s.processed LIMIT 1});
}

# ---- 1. a plain run: 200,000 rows, 32 shards ----
make_table('accounts', 200_000, 32);
sql(q{SELECT migrate_register('plain', 'accounts',
	set_clause => $$external_id = 'ext-' || id, n = n + 1$$)});
my $t0 = time;
sql(q{SELECT migrate_start('plain', workers => 2)});
is(await_state('plain'), 'done', 'plain run: done');
note sprintf('plain run of 200,000 rows in 32 shards: %d s', time - $t0);
is(counts('accounts', 1), '200000|200000', 'plain run: every row changed exactly once');
is(sql(q{SELECT processed, changed, total_estimate, percent FROM migrate_status('plain')}),
	'200000|200000|200000|100.0', 'plain run: the coordinator adds up the shards');
is(sql(q{SELECT count(*), count(*) FILTER (WHERE s.state = 'done'), sum(s.processed)
	FROM migrate.citus_shards s JOIN migrate.migrations m ON m.id = s.migration WHERE m.name = 'plain'}),
	'32|32|200000', 'plain run: 32 shard migrations, each done, adding up');
# each shard was walked on the node that holds it
is( sql(q{SELECT count(*) FROM migrate.citus_shards s JOIN migrate.migrations m ON m.id = s.migration
		JOIN pg_dist_placement p ON p.shardid = s.shardid JOIN pg_dist_node d ON d.groupid = p.groupid
		WHERE m.name = 'plain' AND d.nodeport = s.nodeport}),
	'32', 'plain run: each shard walked where it lives');
is( $w1->safe_psql('postgres', q{SELECT count(*), sum(processed), bool_and(c.shardid IS NOT NULL)
		FROM migrate.migrations m LEFT JOIN migrate.citus_shard_migrations c ON c.migration = m.id
		WHERE name LIKE 'plain/%' AND state = 'done'})
	  . ' / '
	  . $w2->safe_psql('postgres', q{SELECT count(*), sum(processed)
		FROM migrate.migrations WHERE name LIKE 'plain/%' AND state = 'done'}),
	sql(q{SELECT string_agg(x, ' / ' ORDER BY p) FROM (
		SELECT s.nodeport AS p, count(*) || '|' || sum(s.processed)
		       || CASE WHEN s.nodeport = } . ($port0 + 1) . q{ THEN '|t' ELSE '' END AS x
		  FROM migrate.citus_shards s JOIN migrate.migrations m ON m.id = s.migration
		 WHERE m.name = 'plain' GROUP BY s.nodeport) y}),
	'plain run: the shard migrations on the nodes are the ones the coordinator counts');

# a smaller table with slow batches for the faults: 20,000 rows in 8 shards,
# 20 rows a batch and 100 ms between batches, 4 shard migrations at once per
# node, so that every shard is in the middle of its walk for seconds
make_table('slow', 20_000, 8);
my $expect = 0;

sub slow_run
{
	my ($name) = @_;
	sql(qq{SELECT migrate_register('$name', 'slow', set_clause => 'n = n + 1',
		batch_size => 20, pause => '100ms')});
	sql(qq{SELECT migrate_start('$name', workers => 4)});
	$expect++;
}

sub slow_done
{
	my ($name, $what) = @_;
	is(await_state($name), 'done', "$what: done");
	is(counts('slow', $expect), "20000|20000", "$what: every row changed exactly once");
	is(sql(qq{SELECT processed, changed FROM migrate.migrations WHERE name = '$name'}),
		'20000|20000', "$what: processed and changed add up to the rows");
}

# ---- 2. a move of a half-done shard ----
slow_run('mv');
my ($shard, $port, $done_before) = split /\|/, half_done_shard('mv', 100, 1500);
my $to = $port == $port0 + 1 ? $port0 + 2 : $port0 + 1;
sql(qq{SELECT citus_move_shard_placement($shard, '127.0.0.1', $port, '127.0.0.1', $to)});
note "moved shard $shard from $port to $to with $done_before of its rows done";
slow_done('mv', 'move of a half-done shard');
my ($moves, $nport, $carried, $after) = split /\|/, sql(qq{SELECT s.moves, s.nodeport, s.carried_processed, s.processed
	FROM migrate.citus_shards s JOIN migrate.migrations m ON m.id = s.migration
	WHERE m.name = 'mv' AND s.shardid = $shard});
is("$moves|$nport", "1|$to", 'move: the shard was finished on its new node');
cmp_ok($carried, '>=', $done_before, 'move: the rows done on the old node were carried over');
cmp_ok($after, '>', 0, 'move: rows were done on the new node');
is(sql(qq{SELECT count(*) FROM slow WHERE n = $expect AND get_shard_id_for_distribution_column('slow', id) = $shard}),
	$carried + $after, 'move: the shard\'s rows were each changed once, before or after the move');

# ---- 2b. a split of a half-done shard, its halves on both workers ----
slow_run('sp');
($shard, $port, $done_before) = split /\|/, half_done_shard('sp', 100, 1500);
my ($lo, $hi) = split /\|/, sql(qq{SELECT shardminvalue, shardmaxvalue FROM pg_dist_shard WHERE shardid = $shard});
my $mid = int(($lo + $hi) / 2);
sql(qq{SELECT citus_split_shard_by_split_points($shard, ARRAY['$mid'],
	ARRAY(SELECT nodeid FROM pg_dist_node WHERE nodeport IN (@{[ $port0 + 1 ]}, @{[ $port0 + 2 ]}) ORDER BY nodeport),
	shard_transfer_mode => 'block_writes')});
note "split shard $shard at $mid with $done_before of its rows done";
slow_done('sp', 'split of a half-done shard');
is( sql(qq{SELECT string_agg(s.state || ':' || s.nodeport, ',' ORDER BY s.shardid)
		FROM migrate.citus_shards s JOIN migrate.migrations m ON m.id = s.migration
		WHERE m.name = 'sp' AND (s.shardid = $shard OR s.split_from = $shard)}),
	"split:$port,done:@{[ $port0 + 1 ]},done:@{[ $port0 + 2 ]}",
	'split: the shard stopped, its two halves were finished on their nodes');

# ---- 3. pause, resume, cancel from the coordinator ----
slow_run('pr');
half_done_shard('pr', 100, 1500);
is(sql(q{SELECT state FROM migrate_pause('pr')}), 'paused', 'pause on the coordinator');
is(await_state('pr'), 'paused', 'paused');
for my $n ($w1, $w2)
{
	$n->poll_query_until('postgres', q{SELECT count(*) = 0 FROM migrate.migrations
		WHERE name LIKE 'pr/%' AND state = 'running'})
	  or die 'shard migrations still running after the pause';
	$n->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity
		WHERE backend_type = 'migrate worker' AND query LIKE '%"pr/%'})
	  or die 'shard migration workers still there after the pause';
}
my $changed_at_pause = sql(qq{SELECT count(*) FROM slow WHERE n = $expect});
ok($changed_at_pause > 0 && $changed_at_pause < 20000, "pause: $changed_at_pause rows done, the rest waits");
is(sql(qq{SELECT count(*) FROM slow WHERE n = $expect}), $changed_at_pause,
	'pause: no row changes once every shard migration has stopped');
sql(q{SELECT migrate_resume('pr')});
slow_done('pr', 'pause and resume');

slow_run('cx');
half_done_shard('cx', 100, 1500);
is(sql(q{SELECT state FROM migrate_cancel('cx')}), 'cancelled', 'cancel on the coordinator');
is(await_state('cx'), 'cancelled', 'cancelled');
for my $n ($w1, $w2)
{
	$n->poll_query_until('postgres', q{SELECT count(*) = 0 FROM migrate.migrations
		WHERE name LIKE 'cx/%' AND state = 'running'})
	  or die 'shard migrations still running after the cancel';
}
sql(q{SELECT migrate_start('cx')});
slow_done('cx', 'cancel, then start again from the cursors');

# ---- 3b. catch-up of rows written behind the cursors on several shards ----
sql(q{SELECT migrate_register('cu', 'slow', set_clause => 'n = n + 1',
	check_clause => 'n = } . ($expect + 1) . q{', catch_up => true, batch_size => 20, pause => '100ms')});
sql(q{SELECT migrate_start('cu', workers => 4)});
$expect++;
$coord->poll_query_until('postgres', q{
	SELECT count(*) >= 4 FROM migrate.citus_shards s JOIN migrate.migrations m ON m.id = s.migration
	 WHERE m.name = 'cu' AND s.processed BETWEEN 100 AND 1500})
  or die 'no four shards of cu half done';
# the application sets rows the walk has done back to their old shape
my $set_back = sql(qq{CREATE TEMP TABLE b AS
	WITH u AS (UPDATE slow SET n = n - 1 WHERE n = $expect AND id % 3 = 0 RETURNING id) SELECT id FROM u;
	SELECT count(*) || '|' || count(DISTINCT get_shard_id_for_distribution_column('slow', id)) FROM b});
my ($back_rows, $back_shards) = split /\|/, $set_back;
note "set back $back_rows rows behind the cursors of $back_shards shards";
cmp_ok($back_shards, '>=', 2, 'catch-up: rows set back behind the cursors of several shards');
is(await_state('cu'), 'done', 'catch-up: done');
is(counts('slow', $expect), '20000|20000', 'catch-up: every row in the new shape, the rows set back changed once more');
is(sql(q{SELECT changed FROM migrate.migrations WHERE name = 'cu'}), 20000 + $back_rows,
	'catch-up: the changes add up to the rows plus the rows set back');

# ---- 4. kill -9 of a worker node mid-run, and its restart ----
slow_run('k9');
half_done_shard('k9', 100, 1500);
$w1->kill9;
# its backends leave once they see the postmaster gone; until then the old
# shared memory is in use and a start fails: try again for a while
my $started = 0;
for (1 .. 60)
{
	last if ($started = $w1->start(fail_ok => 1));
	$w1->{_pid} = undef;    # the pid file start read is the dead postmaster's
	sleep 1;
}
ok($started, 'kill -9: the worker node starts again');
slow_done('k9', 'kill -9 of a worker node and its restart');

# ---- 5. an immediate restart of the coordinator mid-run ----
slow_run('cr');
half_done_shard('cr', 100, 1500);
$coord->stop('immediate');
$coord->start;
slow_done('cr', 'immediate restart of the coordinator');

# ---- 6. a reference table and a plain table on the coordinator ----
sql(q{
	CREATE TABLE ref (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
	SELECT create_reference_table('ref');
	INSERT INTO ref (id) SELECT generate_series(1, 5000);
	CREATE TABLE loc (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO loc (id) SELECT generate_series(1, 5000);
	SELECT migrate_register('r', 'ref', set_clause => 'n = n + 1');
	SELECT migrate_register('l', 'loc', set_clause => 'n = n + 1');
	SELECT migrate_start('r');
	SELECT migrate_start('l');
});
is(await_state('r') . '|' . await_state('l'), 'done|done', 'reference and plain tables: done');
is(sql(q{SELECT (SELECT count(*) FILTER (WHERE n = 1) FROM ref) || '|' || (SELECT count(*) FILTER (WHERE n = 1) FROM loc)}),
	'5000|5000', 'reference and plain tables: every row changed exactly once, on the coordinator');
is(sql(q{SELECT count(*) FROM migrate.citus_shards s JOIN migrate.migrations m ON m.id = s.migration
	WHERE m.name IN ('r', 'l')}), '0', 'reference and plain tables: no shard migrations');

# ---- 7. what is not done on a distributed table yet is refused, with the reason ----
my (undef, undef, $err) = $coord->psql('postgres',
	q{SELECT migrate_register('kb', 'accounts', set_clause => 'n = n + 1', keep_before => true)});
like($err, qr/keep_before of migration "kb" is not supported on a distributed table/,
	'keep_before refused at registration on a distributed table');
is(sql(q{SELECT count(*) FROM migrate.migrations WHERE name = 'kb'}), '0', 'keep_before: nothing registered');
(undef, undef, $err) = $coord->psql('postgres', q{SELECT * FROM migrate_dry_run('plain')});
like($err, qr/a dry run of migration "plain" is not supported on a distributed table/, 'dry run refused');
(undef, undef, $err) = $coord->psql('postgres', q{SELECT * FROM migrate_estimate('plain')});
like($err, qr/an estimate of migration "plain" is not supported on a distributed table/, 'estimate refused');
(undef, undef, $err) = $coord->psql('postgres', q{SELECT migrate_step('plain')});
like($err, qr/a batch in the caller's transaction of migration "plain" is not supported/, 'migrate_step refused');

$_->stop('fast') for ($coord, $w2, $w1);
done_testing();
