# Watching migrate like any other server (issue 14): Debian's
# prometheus-postgres-exporter, given monitoring/prometheus-queries.yaml,
# exports every migration's state, progress, rate, ETA, throttle reason,
# error rows and WAL rate with the labels database, migration and relation,
# and the values it serves over HTTP are those of migrate_status.
# Since 0.4 (issue 20) it connects as a role that has pg_monitor and nothing
# else, sees every migration through migrate.monitor(), and exports no row
# value: a failed migration's error, which quotes a row, is not served.
use strict;
use warnings;
use File::Basename qw(dirname);
use HTTP::Tiny;
use IPC::Run;
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $exporter = '/usr/bin/prometheus-postgres-exporter';
plan skip_all => "$exporter is not installed" unless -x $exporter;

my $queries = dirname(__FILE__) . '/../../monitoring/prometheus-queries.yaml';
ok(-r $queries, 'the queries file is in monitoring/');

my $node = migrate_node('prom');
$node->safe_psql('postgres', q{
	CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO t (id) SELECT generate_series(1, 10000);
	CREATE TABLE e (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO e (id) SELECT generate_series(1, 100);
	ANALYZE t, e;
	SELECT migrate_register('slow', 't', set_clause => 'n = n + 1',
	                        batch_size => 10, pause => '50ms', max_wal_rate => 1000000);
	SELECT migrate_start('slow');
	-- done, with every fifth row set aside
	SELECT migrate_register('skippy', 'e', set_clause => 'n = 100 / (id % 5)',
	                        batch_size => 10, on_error => 'skip');
	SELECT migrate_start('skippy');
	-- failed on a row whose value its error quotes, owned by another role
	CREATE ROLE app LOGIN;
	CREATE TABLE f (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL DEFAULT 0);
	INSERT INTO f VALUES (1, '078-05-1120');
	ALTER TABLE f OWNER TO app;
	SET ROLE app;
	SELECT migrate_register('broken', 'f', set_clause => 'n = v::int');
	RESET ROLE;
	-- the exporter's role: pg_monitor, no membership in the owners' roles
	CREATE ROLE prom LOGIN;
	GRANT pg_monitor TO prom;
});
$node->psql('postgres', q{SET ROLE app; CALL migrate_run('broken')});
is($node->safe_psql('postgres', q{SELECT state, last_error FROM migrate_status('broken')}),
	'failed|invalid input syntax for type integer: "078-05-1120"', 'broken failed on a row value');
is($node->safe_psql('postgres', q{SELECT migrate_wait('skippy')}), 'done', 'skippy is done');
is($node->safe_psql('postgres', q{SELECT error_rows FROM migrate_status('skippy')}),
	'20', 'skippy set 20 rows aside');

# slow holds back (migrate.pause_all) after a few batches and runs none
# while we look, so that its values stand still
poll_ok($node, q{SELECT processed >= 30 FROM migrate_status('slow')}, 't',
	'slow did a few batches');
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET migrate.pause_all = on;
	SELECT pg_reload_conf();
});
poll_ok($node, q{
		SELECT throttled = 'migrate.pause_all is on' AND worker_pid IS NOT NULL
		  FROM migrate_status('slow')},
	't', 'slow is running and holds back');

# the exporter, on a free port, connected through the node's socket
my $port = PostgreSQL::Test::Cluster::get_free_port();
local $ENV{DATA_SOURCE_NAME} = sprintf('host=%s port=%d user=prom dbname=postgres sslmode=disable',
	$node->host, $node->port);
my $log = "$PostgreSQL::Test::Utils::tmp_check/exporter.log";
our $h = IPC::Run::start(
	[ $exporter, "--web.listen-address=127.0.0.1:$port",
	  "--extend.query-path=$queries", '--disable-default-metrics',
	  '--disable-settings-metrics' ],
	'<', \undef, '>&', $log);

END { $h->kill_kill if $h }

# scrape until the migrations' metrics are there
my $http = HTTP::Tiny->new(timeout => 10);
my $body = '';
my $scraped = 0;
my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
while (time < $deadline)
{
	my $r = $http->get("http://127.0.0.1:$port/metrics");
	$body = $r->{content} if $r->{success};
	$scraped = $body =~ /^migrate_processed\{.*migration="skippy"/m
	  && $body =~ /^migrate_processed\{.*migration="slow"/m
	  && $body =~ /^migrate_processed\{.*migration="broken"/m;
	last if $scraped;
	usleep(100_000);
}
$h->kill_kill;
undef $h;
like($body, qr/^migrate_processed\{/m, 'the exporter serves migrate_processed')
  or diag(slurp_file($log));
ok($scraped, 'it served all three migrations before the deadline');

note(join("\n", grep { /^migrate_(processed|state_info)\{/ } split /\n/, $body));

# name => { labels => value } of every migrate_* sample
my %got;
for my $line (split /\n/, $body)
{
	next unless $line =~ /^(migrate_\w+)\{(.*)\} (\S+)$/;
	my ($name, $labels, $value) = ($1, $2, $3);
	my %l = $labels =~ /(\w+)="((?:[^"\\]|\\.)*)"/g;
	$got{$name}{ $l{migration} } = { %l, value => $value };
}

my %state_code = (registered => 0, running => 1, paused => 2, cancelled => 3,
	done => 4, failed => 5, reverted => 6);
my @columns = qw(processed changed error_rows total_estimate percent
  rows_per_second eta_seconds batch_size batches wal_bytes wal_per_second max_wal_rate);

# a NULL is NaN to Prometheus; numbers compare as numbers
sub same
{
	my ($exported, $sql) = @_;
	return $exported eq 'NaN' if $sql eq '';
	return $exported ne 'NaN' && abs($exported - $sql) <= 1e-9 * abs($sql);
}

for my $m (qw(slow skippy))
{
	my %s;
	@s{ 'state', 'relation', 'worker', 'throttled', @columns } = split /\|/,
	  $node->safe_psql('postgres', qq{
		SELECT state, relation, (worker_pid IS NOT NULL)::int, coalesce(throttled, ''),
		       processed, changed, error_rows, total_estimate, percent,
		       rows_per_second, extract(epoch FROM eta), batch_size, batches,
		       wal_bytes, wal_per_second, max_wal_rate
		  FROM migrate_status('$m')}), -1;

	my $p = $got{migrate_processed}{$m};
	is_deeply(
		[ map { $p->{$_} } qw(database migration relation) ],
		[ 'postgres', $m, $s{relation} ],
		"$m: labels database, migration, relation");
	for my $c (@columns)
	{
		my $e = $got{"migrate_$c"}{$m}{value} // '(none)';
		ok(same($e, $s{$c}), "$m: migrate_$c is migrate_status's $c")
		  or diag("exported $e, migrate_status says '$s{$c}'");
	}
	is($got{migrate_state}{$m}{value}, $state_code{ $s{state} }, "$m: migrate_state is $s{state}");
	is($got{migrate_worker}{$m}{value}, $s{worker}, "$m: migrate_worker");
	is($got{migrate_throttled}{$m}{value}, $s{throttled} eq '' ? 0 : 1, "$m: migrate_throttled");
	my $i = $got{migrate_state_info}{$m};
	is_deeply([ $i->{state}, $i->{throttled}, $i->{value} ], [ $s{state}, $s{throttled}, 1 ],
		"$m: migrate_state_info has the state and the throttle reason as labels");
}

# what the values say, so that the comparisons above compare something
my $slow = $got{migrate_state_info}{slow};
is($slow->{throttled}, 'migrate.pause_all is on', 'slow exports why it holds back');
ok($got{migrate_rows_per_second}{slow}{value} > 0
	  && $got{migrate_eta_seconds}{slow}{value} > 0
	  && $got{migrate_wal_per_second}{slow}{value} > 0
	  && $got{migrate_max_wal_rate}{slow}{value} == 1000000,
	'slow has a rate, an ETA, a WAL rate and its WAL budget');
is($got{migrate_error_rows}{skippy}{value}, 20, 'skippy exports its 20 error rows');

# the role with pg_monitor sees another role's migration, and nothing of its rows
is($got{migrate_state}{broken}{value}, 5, 'broken, owned by app, is exported as failed');
is($got{migrate_error}{broken}{value}, 1, 'broken exports that an error stopped it');
is($got{migrate_error}{slow}{value}, 0, 'slow has no error');
unlike($body, qr/078-05-1120/, 'no row value is served');
unlike($body, qr/last_error/, 'no error text label is served');
is($node->safe_psql('postgres', q{SET ROLE prom; SELECT count(*) FROM migrate.status}),
	'0', 'prom sees no migration in migrate.status: it is no member of their owners');

$node->stop;
done_testing();
