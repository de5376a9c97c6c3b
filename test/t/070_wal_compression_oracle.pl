# A migration's worker compresses its own full-page images only where its
# owner could set wal_compression itself (attack review of 0.4).
#
# PostgreSQL keeps wal_compression from ordinary roles: the size of a
# compressed page image tells how well bytes a role writes match the rest
# of the page, rows it may not read included.  0.4's worker turned it on
# (lz4) for every owner, so an owner's code measuring its own WAL with
# pg_current_wal_insert_lsn could tell a guess of a row hidden from it by
# row-level security: 544 bytes for the right guess, 696 for a wrong one,
# against 848 for both in the owner's own session.
#
# 1. The owner's code in the worker of an unprivileged role sees
#    wal_compression off, as in that role's session.
# 2. The oracle: the same guesses, right and wrong, cost the same WAL to
#    within one WAL page header (recorded; compressed they differed by
#    152 bytes).
# 3. A superuser's migration, and one of a role granted SET on
#    wal_compression, still compress their full-page images.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('wal_oracle', 'max_worker_processes = 20');

$node->safe_psql('postgres', q{
	CREATE ROLE mallory LOGIN;
	GRANT CREATE ON SCHEMA public TO mallory;
	-- rows of several roles on one page; row-level security hides the others'
	CREATE TABLE public.s (id int PRIMARY KEY, who name, data text) WITH (fillfactor = 100);
	ALTER TABLE public.s ALTER data SET STORAGE PLAIN;
	ALTER TABLE public.s ENABLE ROW LEVEL SECURITY;
	CREATE POLICY own ON public.s USING (who = current_user);
	GRANT SELECT, UPDATE ON public.s TO mallory;
	CREATE PROCEDURE public.fresh() LANGUAGE plpgsql AS $$
	BEGIN
	  TRUNCATE public.s;
	  INSERT INTO public.s VALUES (1, 'postgres',
	    'k9P2q' || md5('s1') || md5('s2') || md5('s3') || md5('s4') || md5('a') || md5('b'));
	  INSERT INTO public.s VALUES (2, 'mallory', md5('c') || md5('d') || md5('e'));
	END $$;
	CALL public.fresh();
	SET ROLE mallory;
	CREATE TABLE public.seen (guess text, wal bigint, wc text);
	CREATE TABLE public.g (id int PRIMARY KEY, guess text, done bool);
	INSERT INTO public.g VALUES
	  (1, md5('s1') || md5('s2') || md5('s3') || md5('s4')),
	  (2, md5('w1') || md5('w2') || md5('w3') || md5('w4'));
	-- the owner's code: write a guess into its own row, measure the WAL
	CREATE FUNCTION public.probe(guess text) RETURNS bool LANGUAGE plpgsql VOLATILE AS $$
	DECLARE a pg_lsn; b pg_lsn;
	BEGIN
	  a := pg_current_wal_insert_lsn();
	  UPDATE public.s SET data = guess || md5(guess) WHERE id = 2;
	  b := pg_current_wal_insert_lsn();
	  INSERT INTO public.seen VALUES (guess, b - a, current_setting('wal_compression'));
	  RETURN true;
	END $$;
	SELECT name FROM migrate_register('probe_wrong', 'public.g',
	  set_clause => 'done = public.probe(guess)', where_clause => 'id = 2');
	SELECT name FROM migrate_register('probe_right', 'public.g',
	  set_clause => 'done = public.probe(guess)', where_clause => 'id = 1');
});
is($node->safe_psql('postgres', q{SET ROLE mallory; SELECT count(*) FROM public.s}),
   '1', 'mallory sees only its own row of the page');

# one guess per batch, each on a fresh page right after a checkpoint (the
# superuser's CHECKPOINT stands for the periodic one an attacker waits for)
for my $m ('probe_wrong', 'probe_right')
{
	$node->safe_psql('postgres', qq{
		CALL public.fresh(); CHECKPOINT;
		SET ROLE mallory; SELECT (migrate_start('$m')).state;});
	is(wait_for_state($node, $m), 'done', "$m done");
}
my $seen = $node->safe_psql('postgres', q{
	SELECT string_agg(wc || ':' || wal, ',' ORDER BY guess = md5('s1') || md5('s2') || md5('s3') || md5('s4'))
	  FROM public.seen});
diag("wal_compression and WAL of one update in mallory's worker, wrong then right guess: $seen");
is($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT wc, ',') FROM public.seen}),
   'off', "an unprivileged owner's code runs with wal_compression off, as in its session");
my ($wrong, $right) = $seen =~ /:(\d+),\w+:(\d+)$/;
ok(defined $right && abs($wrong - $right) <= 24,
   "no oracle: a right and a wrong guess cost the same WAL within a page header ($wrong, $right)");

# the superuser's migrations, and those of a role granted SET on it, compress
$node->safe_psql('postgres', q{
	TRUNCATE public.seen;
	CREATE TABLE public.su (id int PRIMARY KEY, v text);
	INSERT INTO public.su SELECT g, 'x' FROM generate_series(1, 10) g;
	CREATE FUNCTION public.wc() RETURNS text LANGUAGE sql AS $$ SELECT current_setting('wal_compression') $$;
	SELECT name FROM migrate_register('su_m', 'public.su', set_clause => 'v = public.wc()');
	SELECT (migrate_start('su_m')).state;});
is(wait_for_state($node, 'su_m'), 'done', 'superuser migration done');
like($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT v, ',') FROM public.su}),
     qr/^(lz4|pglz)$/, "a superuser's worker still compresses its full-page images");

$node->safe_psql('postgres', q{
	GRANT SET ON PARAMETER wal_compression TO mallory;
	SET ROLE mallory;
	CREATE TABLE public.mt (id int PRIMARY KEY, v text);
	INSERT INTO public.mt SELECT g, 'x' FROM generate_series(1, 10) g;
	SELECT name FROM migrate_register('granted_m', 'public.mt', set_clause => 'v = public.wc()');
	SELECT (migrate_start('granted_m')).state;});
is(wait_for_state($node, 'granted_m'), 'done', 'granted migration done');
like($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT v, ',') FROM public.mt}),
     qr/^(lz4|pglz)$/, "a role granted SET on wal_compression gets compression in its worker");

$node->stop;
done_testing();
