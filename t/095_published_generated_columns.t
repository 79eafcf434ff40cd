# 095_published_generated_columns.t — PostgreSQL 18: a publication made by the owner with
# publish_generated_columns = stored (or a column list naming a generated column) streams stored
# generated columns, which the archiver's base copies and layouts leave out (PostgreSQL computes
# them again on recovery).  Such a table is not archived, and says why (before, its rows were
# taken for a column added by a volatile default, and every point was refused, re-base after
# re-base); once the publication stops publishing them, it is archived and recovers exactly,
# its generated column a generated column again.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;
use BackstopArchiver;

if (pg_major() < 18)
{
	plan skip_all => 'publish_generated_columns is PostgreSQL 18 and later';
}

my $node = new_pg_node('pubgen');
my $db = 'postgres';
my $role_conn = node_connstr($node, $db, $BackstopTest::REPLICATION_ROLE);
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('pubgen');

$node->safe_psql($db, q{
	CREATE TABLE public.g (id int PRIMARY KEY, qty int NOT NULL, price numeric(10,2) NOT NULL,
		total numeric GENERATED ALWAYS AS (qty * price) STORED, note text);
	INSERT INTO public.g (id, qty, price) SELECT i, i, i * 1.5 FROM generate_series(1, 20) i;
	CREATE TABLE public.h (id int PRIMARY KEY, v text);
	INSERT INTO public.h VALUES (1, 'h');
	CREATE TABLE public.h2 (id int PRIMARY KEY, q int, d int GENERATED ALWAYS AS (q * 2) STORED);
	CREATE PUBLICATION p_gen FOR TABLE public.g, public.h, public.h2 (id, q, d) WITH (publish_generated_columns = stored);
});

my $c = BackstopArchiver->new(dir => $dir, name => 'gen', conn => $role_conn,
	args => [ '--tables', 'public.g,public.h,public.h2', '--publication', 'p_gen' ]);
$c->start;
$c->checkpoint_ok('public.h', 'start');
ok($c->log_has(qr/table public\.g is NOT archived: published by publication "p_gen" with its stored generated columns \(publish_generated_columns = stored/),
	'a WARNING names the table and the setting') or diag($c->log);
ok($c->log_has(qr/table public\.h2 is NOT archived: published by publication "p_gen" with its stored generated columns/),
	'a column list naming a generated column: the same') or diag($c->log);
my ($rc, $out, $err) = archiver_checkpoint($c->{listen}, 'public.g', '5s');
isnt($rc, 0, 'no checkpoint for it');
unlike($out, qr/"verified"\s*:\s*true/, 'never "verified"');
($rc, $out, $err) = $c->recover($conn, 'public.g', 'public.g_x', '--latest');
isnt($rc, 0, 'recover refuses it');
like($err, qr/publish_generated_columns = none/, 'saying what to change');

# The owner stops publishing generated columns: archived from a new base copy on.
$node->safe_psql($db, 'ALTER PUBLICATION p_gen SET (publish_generated_columns = none)');
$c->checkpoint_ok('public.g', 'published without generated columns');
$node->safe_psql($db, q{
	UPDATE public.g SET qty = qty + 1, note = 'changed' WHERE id <= 5;
	INSERT INTO public.g (id, qty, price) VALUES (21, 3, 2.50);
	DELETE FROM public.g WHERE id = 20;
});
my $point = $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()');
my $cols = 'id, qty, price, total, note';
my $sum = $node->safe_psql($db, "SELECT md5(string_agg(ROW($cols)::text, ',' ORDER BY id)) FROM public.g");
$node->safe_psql($db, "UPDATE public.g SET note = 'later'");
$c->checkpoint_ok('public.g', 'after the changes');

# (Not --no-indexes: that leaves the definition's generated columns out too.)
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $c->{storage}, '--table', 'public.g',
	'--to-lsn', $point, '--into', 'public.g_r');
is($rc, 0, 'recovered at the point') or diag("$out\n$err\n" . $c->log);
is($node->safe_psql($db, "SELECT md5(string_agg(ROW($cols)::text, ',' ORDER BY id)) FROM public.g_r"), $sum,
	'exactly the table at the point, the generated column computed');
is($node->safe_psql($db, q{SELECT attgenerated FROM pg_attribute WHERE attrelid = 'public.g_r'::regclass AND attname = 'total'}),
	's', 'total is a stored generated column again');
$c->stop('end');
done_testing();
