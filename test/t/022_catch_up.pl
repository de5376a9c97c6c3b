# Rows written behind the cursor (issue 13).
#
# An application session inserts rows and writes rows back to the old shape
# behind the cursor of a running migration, committing each write.  With
# catch_up the migration changes them in further passes: when it is done,
# migrate_verify finds no row failing the check, and no row was changed
# twice since the application last wrote it (the counter n, which the
# application resets, is 1 everywhere).  Keys are bigint and uuid.  Without
# catch_up, migrate_verify reports exactly the rows the application wrote
# behind the cursor.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MigrateTest;

my $node = migrate_node('catch_up');

$node->safe_psql('postgres', q{
	CREATE TABLE tb (id bigint PRIMARY KEY, v text NOT NULL, n int NOT NULL DEFAULT 0);
	INSERT INTO tb SELECT g * 2 + 1, 'Row' || g, 0 FROM generate_series(0, 99999) g;
	CREATE TABLE tn (LIKE tb INCLUDING ALL);
	INSERT INTO tn SELECT * FROM tb;
	CREATE TABLE tu (id uuid PRIMARY KEY, v text NOT NULL, n int NOT NULL DEFAULT 0);
	INSERT INTO tu SELECT gen_random_uuid(), 'Row' || g, 0 FROM generate_series(1, 50000) g;
	ANALYZE tb, tn, tu;

	-- the keys the application wrote behind the cursor
	CREATE TABLE behind (tbl text NOT NULL, k text NOT NULL);

	-- The application: while migration mig runs in pass < until_pass, write
	-- one row behind its cursor per transaction -- a new row, then an old
	-- row back to the old shape with its counter reset -- and log its key.
	CREATE PROCEDURE app(mig text, tbl regclass, until_pass int)
	LANGUAGE plpgsql AS $$
	DECLARE
		c jsonb;
		p int;
		st text;
		k text;
		deadline timestamptz := clock_timestamp() + interval '180 seconds';
		key_type text := (SELECT format_type(atttypid, -1) FROM pg_attribute
		                   WHERE attrelid = tbl AND attname = 'id');
	BEGIN
		LOOP
			SELECT cursor, pass, state INTO c, p, st
			  FROM migrate.migrations WHERE name = mig;
			EXIT WHEN st NOT IN ('registered', 'running') OR p >= until_pass
			       OR clock_timestamp() > deadline;
			IF c IS NOT NULL THEN
				k := NULL;
				IF key_type = 'bigint' THEN
					-- a new even key below the cursor
					EXECUTE format('INSERT INTO %s VALUES ($1, $2, 0) ON CONFLICT DO NOTHING RETURNING id', tbl)
					   INTO k
					  USING (floor(random() * ((c->>'id')::bigint / 2)) * 2)::bigint, 'New';
				ELSE
					EXECUTE format('INSERT INTO %s SELECT u, $2, 0 FROM (SELECT gen_random_uuid() u) s'
					               ' WHERE u < $1 ON CONFLICT DO NOTHING RETURNING id', tbl)
					   INTO k USING (c->>'id')::uuid, 'New';
				END IF;
				IF k IS NOT NULL THEN
					INSERT INTO behind VALUES (tbl::text, k);
				END IF;
				-- an old row below the cursor, back to the old shape
				EXECUTE format('UPDATE %1$s SET v = upper(v), n = 0 WHERE id = (SELECT id FROM %1$s'
				               ' WHERE id < ($1 ->> ''id'')::%2$s ORDER BY id DESC'
				               ' OFFSET floor(random() * 200)::int LIMIT 1) RETURNING id', tbl, key_type)
				   INTO k USING c;
				IF k IS NOT NULL THEN
					INSERT INTO behind VALUES (tbl::text, k);
				END IF;
			END IF;
			COMMIT;
			PERFORM pg_sleep(0.002);
		END LOOP;
	END
	$$;
});

# Run migration $mig on $tbl with catch_up while the application writes
# behind its cursor during the walk and the first catch-up pass.
sub catch_up_run
{
	my ($mig, $tbl) = @_;

	$node->safe_psql('postgres', qq{
		SELECT migrate_register('$mig', '$tbl', set_clause => 'v = lower(v), n = n + 1',
		                        check_clause => 'v = lower(v)', catch_up => true,
		                        batch_size => 500, pause => '5ms', busy_share => 1);
		SELECT migrate_start('$mig');
	});
	$node->safe_psql('postgres', qq{CALL app('$mig', '$tbl', 2)});
	my $wrote = $node->safe_psql('postgres',
		qq{SELECT count(*) FROM behind WHERE tbl = '$tbl'});
	cmp_ok($wrote, '>', 0, "$mig: the application wrote $wrote rows behind the cursor");
	is(wait_for_state($node, $mig), 'done', "$mig: done");

	my ($pass, $caught, $failing) = split /\|/, $node->safe_psql('postgres',
		qq{SELECT pass, caught_rows, failing_rows FROM migrate_status('$mig')});
	cmp_ok($pass, '>=', 2, "$mig: it made catch-up passes ($pass)");
	cmp_ok($caught, '>', 0, "$mig: it caught $caught rows written behind the cursor");
	is($failing, '0', "$mig: its last pass verified no row failing");
	is($node->safe_psql('postgres', qq{SELECT checked, failing FROM migrate_verify('$mig')}),
		$node->safe_psql('postgres', qq{SELECT count(*) FROM $tbl}) . '|0',
		"$mig: migrate_verify finds no row failing the check");
	is($node->safe_psql('postgres',
			qq{SELECT min(n), max(n), count(*) FILTER (WHERE v <> lower(v)) FROM $tbl}),
		'1|1|0', "$mig: every row changed exactly once since it was last written");
}

catch_up_run('cu_big', 'tb');
catch_up_run('cu_uuid', 'tu');

# Without catch_up, verify reports exactly the rows written behind the cursor.
$node->safe_psql('postgres', q{
	SELECT migrate_register('plain', 'tn', set_clause => 'v = lower(v), n = n + 1',
	                        check_clause => 'v = lower(v)',
	                        batch_size => 500, pause => '5ms', busy_share => 1);
	SELECT migrate_start('plain');
});
$node->safe_psql('postgres', q{CALL app('plain', 'tn', 1)});
is(wait_for_state($node, 'plain'), 'done', 'plain: done');
my $missed = $node->safe_psql('postgres',
	q{SELECT count(DISTINCT k) FROM behind WHERE tbl = 'tn'});
cmp_ok($missed, '>', 0, "plain: the application wrote $missed distinct rows behind the cursor");
is($node->safe_psql('postgres', q{SELECT failing FROM migrate_verify('plain')}),
	$missed, 'plain: migrate_verify reports exactly the rows missed');
is($node->safe_psql('postgres', q{
		SELECT count(*) FROM tn WHERE v <> lower(v)
		   AND id::text NOT IN (SELECT k FROM behind WHERE tbl = 'tn')}),
	'0', 'plain: every row failing was written behind the cursor');
is($node->safe_psql('postgres', q{
		SELECT bool_and(s ->> 'id' IN (SELECT k FROM behind WHERE tbl = 'tn'))
		  FROM migrate.migrations, jsonb_array_elements(verify_sample) s
		 WHERE name = 'plain'}),
	't', 'plain: the sample names rows written behind the cursor');
is($node->safe_psql('postgres', q{
		SELECT pass, caught_rows, failing_rows FROM migrate_status('plain')}),
	"0|0|$missed", 'plain: no pass, nothing caught, the failing rows in migrate_status');

$node->stop;
done_testing();
