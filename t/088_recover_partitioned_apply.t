# 088_recover_partitioned_apply.t — `recover --table PARENT --apply` puts a partitioned table
# back, in one transaction, validated per partition:
#  1. the live table exists (rows changed after the point): its rows are replaced through its
#     partitions, each partition's content is checked against its recovered checksum;
#  2. a validation failure (a trigger on a live partition changes the rows) rolls back, exit 3;
#  3. a live hierarchy that is not the point's (a partition detached) refuses --apply (exit 1),
#     the copy-back SQL printed, nothing changed;
#  4. usage: --apply without --yes off a terminal, --copy-back-columns (exit 2);
#  5. the table dropped: a name taken by another table refuses --apply (exit 1); once free, the
#     recovered hierarchy takes its names (a partition in another schema goes back there), with
#     its bounds, each partition exactly as at the point;
#  6. two levels (a partition that is itself partitioned): printed and applied, dropped and live;
#     an ALTER TABLE on the top-level table re-bases the partitions two levels down.
use strict;
use warnings;

use JSON::PP qw(decode_json);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $node = new_pg_node('partapply');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('partapply');
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";
my $storage = "file://$dir/archive";

$node->safe_psql($db, q{
	CREATE SCHEMA s2;
	CREATE TABLE public.ev (id int PRIMARY KEY, region text NOT NULL DEFAULT 'eu', v int) PARTITION BY RANGE (id);
	CREATE TABLE public.ev_a PARTITION OF public.ev FOR VALUES FROM (0) TO (100);
	CREATE TABLE s2.ev_b PARTITION OF public.ev FOR VALUES FROM (100) TO (200);
	INSERT INTO public.ev (id, v) SELECT g, g * 10 FROM generate_series(1, 190) g;
	CREATE TABLE public.tl (id int, k text, v int, PRIMARY KEY (k, id)) PARTITION BY LIST (k);
	CREATE TABLE public.tl_x PARTITION OF public.tl FOR VALUES IN ('x') PARTITION BY RANGE (id);
	CREATE TABLE public.tl_x1 PARTITION OF public.tl_x FOR VALUES FROM (0) TO (50);
	CREATE TABLE public.tl_x2 PARTITION OF public.tl_x FOR VALUES FROM (50) TO (100);
	CREATE TABLE public.tl_y PARTITION OF public.tl FOR VALUES IN ('y');
	INSERT INTO public.tl SELECT g, CASE WHEN g % 3 = 0 THEN 'y' ELSE 'x' END, g FROM generate_series(0, 99) g;
});

my $archiver = spawn_archiver("$dir/archive.log", '--db', $conn, '--storage', $storage, '--data-dir', "$dir/data",
	'--all-tables', '--listen', $listen, '--segment-age', '1s', '--table-poll-interval', '200ms');
END { kill 'KILL', $archiver if $archiver; }

my @leaves = qw(public.ev_a s2.ev_b public.tl_x1 public.tl_x2 public.tl_y);
ok(checkpoint_until($listen, $_, 90), "checkpoint of $_") or diag(slurp_file("$dir/archive.log")) for @leaves;

$node->safe_psql($db, q{
	UPDATE public.ev SET v = -v WHERE id IN (3, 103);
	DELETE FROM public.ev WHERE id IN (4, 104);
	UPDATE public.tl SET v = -v WHERE id IN (1, 60, 3);
	DELETE FROM public.tl WHERE id IN (2, 61, 6);
});
ok(checkpoint_until($listen, $_, 90), "checkpoint of $_ after the changes") for @leaves;
my $point = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');

sub rows_of
{
	my ($table) = @_;
	return $node->safe_psql($db, "SELECT count(*) || ':' || md5(coalesce(string_agg(ROW(id, v)::text, ',' ORDER BY id), '')) FROM $table");
}
# Each table of a hierarchy under root: "name parent bound" (the root has no parent).
sub hierarchy
{
	my ($root) = @_;
	return $node->safe_psql($db, qq{SELECT string_agg(relid::regclass::text || ' ' || coalesce(parentrelid::regclass::text, '-')
		|| ' ' || coalesce(pg_get_expr(c.relpartbound, c.oid), '-'), '; ' ORDER BY relid::regclass::text)
		FROM pg_partition_tree('$root') t JOIN pg_class c ON c.oid = t.relid});
}
my %want = map { $_ => rows_of($_) } qw(public.ev public.ev_a s2.ev_b public.tl public.tl_x public.tl_x1 public.tl_x2 public.tl_y);
my %tree = (ev => hierarchy('public.ev'), tl => hierarchy('public.tl'));

# After the point: rows change in every partition.
$node->safe_psql($db, q{
	UPDATE public.ev SET v = 0 WHERE id % 7 = 0;
	DELETE FROM public.ev WHERE id % 11 = 0;
	UPDATE public.tl SET v = 0 WHERE id % 7 = 0;
	DELETE FROM public.tl WHERE id % 11 = 0;
});
ok(checkpoint_until($listen, $_, 90), "checkpoint of $_ after the point") for @leaves;
isnt(rows_of('public.ev'), $want{'public.ev'}, 'the table changed after the point');

sub recover
{
	my (@args) = @_;
	return run_backstop('recover', '--db', $conn, '--storage', $storage, @args);
}

# ---- 2. a validation failure rolls back ----
$node->safe_psql($db, q{
	CREATE FUNCTION public.bump() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.v := NEW.v + 1000; RETURN NEW; END$$;
	CREATE TRIGGER ev_a_bump BEFORE INSERT ON public.ev_a FOR EACH ROW EXECUTE FUNCTION public.bump();
});
my $live = rows_of('public.ev');
my ($rc, $out, $err) = recover('--table', 'public.ev', '--to-lsn', $point, '--into', 'public.ev_r1', '--apply', '--yes');
is($rc, 3, 'a copy-back that does not validate: exit 3') or diag("$out\n$err");
like($err, qr/copy-back validation failed: partition public\.ev_a holds \d+\/\S+ \(rows\/checksum\), the recovery held \d+\/\S+; rolled back/,
	'naming the partition') or diag($err);
is(rows_of('public.ev'), $live, 'rolled back: the live table is unchanged');
$node->safe_psql($db, 'DROP TRIGGER ev_a_bump ON public.ev_a');

# ---- 3. a live hierarchy that is not the point's: refused ----
$node->safe_psql($db, 'ALTER TABLE public.ev DETACH PARTITION s2.ev_b');
($rc, $out, $err) = recover('--table', 'public.ev', '--to-lsn', $point, '--into', 'public.ev_r2', '--apply', '--yes');
is($rc, 1, 'a live table whose partitions differ from the point: --apply refused, exit 1') or diag("$out\n$err");
like($err, qr/--apply refused: s2\.ev_b is not a partition of public\.ev as at the point/, 'saying which partition') or diag($err);
like($out, qr/Copy-back SQL \(not executed; .*\nDELETE FROM "public"\."ev";\nINSERT INTO "public"\."ev" \("id", "region", "v"\) SELECT "id", "region", "v" FROM "public"\."ev_r2";\nCOMMIT;/s,
	'the copy-back SQL is printed instead') or diag($out);
is(rows_of('public.ev_a'), rows_of('public.ev'), 'nothing changed');
$node->safe_psql($db, q{ALTER TABLE public.ev ATTACH PARTITION s2.ev_b FOR VALUES FROM (100) TO (200)});

# ---- 1. the live table exists: rows replaced, validated ----
($rc, $out, $err) = recover('--table', 'public.ev', '--to-lsn', $point, '--into', 'public.ev_r3', '--apply', '--yes');
is($rc, 0, 'live table: --apply --yes') or diag("$out\n$err");
like($out, qr/Copy-back SQL \(applied in one transaction and validated\)/, 'says it was applied');
like($out, qr/Copy-back applied to public\.ev and validated/, 'and validated');
is(rows_of($_), $want{$_}, "live table: $_ exactly as at the point") for qw(public.ev public.ev_a s2.ev_b);
is(hierarchy('public.ev'), $tree{ev}, 'live table: the hierarchy and bounds as at the point');

# ---- 4. usage ----
for my $case (
	[ 'apply without --yes off a terminal', [ '--apply' ], qr/without a terminal, add --yes/ ],
	[ '--copy-back-columns', [ '--copy-back-columns', 'v' ], qr/--copy-back-columns does not apply to a partitioned table/ ])
{
	my ($what, $args, $re) = @$case;
	($rc, $out, $err) = recover('--table', 'public.ev', '--to-lsn', $point, '--into', 'public.ev_u', @{$args});
	is($rc, 2, "$what: exit 2") or diag("$out\n$err");
	like($err, $re, "$what: the message");
}
is($node->safe_psql($db, q{SELECT count(*) FROM pg_class WHERE relname LIKE 'ev_u%'}), '0', 'usage errors: nothing written');

# ---- 5. the table dropped ----
$node->safe_psql($db, q{DROP TABLE public.ev; DROP TABLE public.ev_r1, public.ev_r2, public.ev_r3});
ok(wait_for('the drops archived', sub {
	my ($r, $o) = run_backstop('info', '--storage', $storage, '--table', 'public.ev_a');
	return $r == 0 && $o =~ /dropped/ }, 90), 'ev_a is dropped in the archive') or diag(slurp_file("$dir/archive.log"));
$node->safe_psql($db, q{CREATE TABLE s2.ev_b (x int)});
($rc, $out, $err) = recover('--table', 'public.ev', '--to-lsn', $point, '--apply', '--yes');
is($rc, 1, 'dropped, but a partition\'s name is taken: --apply refused, exit 1') or diag("$out\n$err");
like($err, qr/--apply refused: a table named s2\.ev_b exists/, 'naming the table') or diag($err);
like($out, qr/the table is gone: the recovered hierarchy takes its names\nBEGIN;\n.*ALTER TABLE "public"\."ev_recovered_ev_b" SET SCHEMA "s2";\n/s,
	'the copy-back SQL is printed, the partition going back to its schema') or diag($out);
is($node->safe_psql($db, q{SELECT to_regclass('public.ev') IS NULL}), 't', 'nothing was renamed');
$node->safe_psql($db, q{DROP TABLE s2.ev_b});
($rc, $out, $err) = recover('--table', 'public.ev', '--to-lsn', $point, '--apply', '--yes', '--replace');
is($rc, 0, 'dropped: --apply --yes') or diag("$out\n$err");
is(rows_of($_), $want{$_}, "dropped: $_ exactly as at the point") for qw(public.ev public.ev_a s2.ev_b);
is(hierarchy('public.ev'), $tree{ev}, 'dropped: the hierarchy and bounds as at the point (ev_b in s2)');
is($node->safe_psql($db, q{SELECT count(*) FROM pg_class WHERE relname LIKE 'ev\_recovered%' AND relkind IN ('r', 'p')}), '0', 'the recovered names are gone');
is($node->safe_psql($db, q{SELECT count(*) FROM pg_class WHERE oid IN ('public.ev'::regclass, 'public.ev_a'::regclass, 's2.ev_b'::regclass)
	AND obj_description(oid, 'pg_class') IS NOT NULL}), '0', 'the recovery marks are gone');
is($node->safe_psql($db, q{INSERT INTO public.ev (id, v) VALUES (0, 1) RETURNING region}), 'eu', 'the parent works, with its default');

# ---- 6. two levels ----
($rc, $out, $err) = recover('--table', 'public.tl', '--to-lsn', $point, '--into', 'public.tl_r');
is($rc, 0, 'two levels: recovered') or diag("$out\n$err");
(my $rtree = hierarchy('public.tl_r')) =~ s/tl_r_(tl_\w+)/$1/g;
$rtree =~ s/tl_r\b/tl/g;
is($rtree, $tree{tl}, 'two levels: the recovered hierarchy and bounds are the point\'s');
is(rows_of($_ eq 'tl' ? 'public.tl_r' : "public.tl_r_$_"), $want{"public.$_"}, "two levels: $_ exactly as at the point")
	for qw(tl tl_x tl_x1 tl_x2 tl_y);
like($out, qr/public\.tl_x1 -> public\.tl_r_tl_x1 FOR VALUES FROM \(0\) TO \(50\): \d+ rows, checksum (\S+) \(Backstop\) = \1 \(PostgreSQL\), base LSN \S+ \(of public\.tl_x\)\n/,
	'two levels: a partition of the middle level validated, its parent named') or diag($out);
like($out, qr/public\.tl_x -> public\.tl_r_tl_x FOR VALUES IN \('x'\): partitioned by RANGE \(id\)\n/, 'two levels: the middle level listed');
is($node->safe_psql($db, q{SELECT pg_get_partkeydef('public.tl_r_tl_x'::regclass)}), 'RANGE (id)', 'the middle level has its key');
# The same as a dry run, in text and in JSON: every level listed, nothing written.
($rc, $out, $err) = run_backstop('recover', '--storage', $storage, '--table', 'public.tl', '--to-lsn', $point,
	'--into', 'public.tl_d', '--dry-run');
is($rc, 0, 'two levels: dry run') or diag("$out\n$err");
like($out, qr/^Table:\s+public\.tl \(partitioned, relid \d+\)\nPoint:\s+commits at or before LSN \Q$point\E\nTarget:\s+public\.tl_d$/m,
	'dry run: the table, point and target') or diag($out);
like($out, qr/^Partition:\s+public\.tl_x1 FOR VALUES FROM \(0\) TO \(50\) \(of public\.tl_x\)$/m,
	'dry run: a partition of the middle level, its parent named') or diag($out);
like($out, qr/^Partition:\s+public\.tl_y FOR VALUES IN \('y'\)$/m, 'dry run: a partition of the top level') or diag($out);
like($out, qr/^Partition:\s+public\.tl_x FOR VALUES IN \('x'\), partitioned by RANGE \(id\)$/m,
	'dry run: the middle level and its key') or diag($out);
($rc, $out, $err) = run_backstop('recover', '--storage', $storage, '--table', 'public.tl', '--to-lsn', $point,
	'--into', 'public.tl_d', '--dry-run', '--json');
is($rc, 0, 'two levels: dry run --json') or diag("$out\n$err");
{
	my $j = decode_json($out);
	is(join(',', sort map { "$_->{partition}>$_->{target}" } @{ $j->{partitions} }),
		'public.tl_x1>public.tl_d_tl_x1,public.tl_x2>public.tl_d_tl_x2,public.tl_y>public.tl_d_tl_y',
		'dry run --json: the leaf partitions and their targets');
	is(join(',', map { "$_->{partition}>$_->{target} of $_->{parent} $_->{bound} by $_->{key}" } @{ $j->{partitioned_partitions} }),
		"public.tl_x>public.tl_d_tl_x of public.tl FOR VALUES IN ('x') by RANGE (id)",
		'dry run --json: the middle level, its parent, bound and key');
}
is($node->safe_psql($db, q{SELECT count(*) FROM pg_class WHERE relname LIKE 'tl\_d%'}), '0', 'dry runs: nothing written');

# --json of the recovery itself: every partition validated, the middle level, the copy-back not applied.
($rc, $out, $err) = recover('--table', 'public.tl', '--to-lsn', $point, '--into', 'public.tl_j', '--json');
is($rc, 0, 'two levels: --json') or diag("$out\n$err");
{
	my $j = decode_json($out);
	ok($j->{partitioned} && !$j->{copy_back_applied} && $j->{target} eq 'public.tl_j' && $j->{partition_key} eq "LIST (k)",
		'--json: partitioned, its key, the target, not applied') or diag($out);
	is(join(',', map { $_->{checksum} eq $_->{postgres_checksum} ? 'same' : 'differs' } @{ $j->{partitions} }),
		'same,same,same', '--json: each partition\'s checksum is PostgreSQL\'s');
	my $rows = 0;
	$rows += $_->{rows} for @{ $j->{partitions} };
	is($j->{rows}, $rows, '--json: the rows are the partitions\' rows');
	is($rows, $node->safe_psql($db, 'SELECT count(*) FROM public.tl_j'), '--json: as many rows as the recovered table');
	is(scalar @{ $j->{partitioned_partitions} }, 1, '--json: the middle level listed');
	ok(@{ $j->{copy_back} } == 1 && $j->{copy_back}[0]{sql} =~ /public/, '--json: the copy-back SQL') or diag($out);
}
$node->safe_psql($db, q{DROP TABLE public.tl_j});
$node->safe_psql($db, q{DROP TABLE public.tl_r});
($rc, $out, $err) = recover('--table', 'public.tl', '--to-lsn', $point, '--into', 'public.tl_r', '--apply', '--yes');
is($rc, 0, 'two levels, live: --apply --yes') or diag("$out\n$err");
is(rows_of($_), $want{$_}, "two levels, live: $_ exactly as at the point") for qw(public.tl public.tl_x public.tl_x1 public.tl_x2 public.tl_y);
# An ALTER TABLE on the top-level table re-bases the partitions two levels down too (their
# base copies would not tell the membership after it).
$node->safe_psql($db, q{ALTER TABLE public.tl DETACH PARTITION public.tl_x; ALTER TABLE public.tl ATTACH PARTITION public.tl_x FOR VALUES IN ('x')});
ok(wait_for('tl_x1 re-based after the DETACH above its parent',
	sub { slurp_file("$dir/archive.log") =~ /table public\.tl_x1: its partitioned table public\.tl changed at/ }, 90),
	'a partition of a partition is re-based when the top-level table changes') or diag(slurp_file("$dir/archive.log"));
for my $t (qw(public.tl_x1 public.tl_x2 public.tl_y))
{
	ok(wait_for("$t re-based", sub {
		my ($r) = run_backstop('recover', '--storage', $storage, '--table', $t, '--latest', '--dry-run');
		return $r == 0 }, 120), "$t: its new base copy was taken") or diag(slurp_file("$dir/archive.log"));
}
$node->safe_psql($db, q{DROP TABLE public.tl, public.tl_r});
ok(wait_for('the drops archived', sub {
	my ($r, $o) = run_backstop('info', '--storage', $storage, '--table', 'public.tl_x1');
	return $r == 0 && $o =~ /dropped/ }, 90), 'tl_x1 is dropped in the archive') or diag(slurp_file("$dir/archive.log"));
($rc, $out, $err) = recover('--table', 'public.tl', '--to-lsn', $point, '--apply', '--yes');
is($rc, 0, 'two levels, dropped: --apply --yes') or diag("$out\n$err");
is(rows_of($_), $want{$_}, "two levels, dropped: $_ exactly as at the point") for qw(public.tl public.tl_x public.tl_x1 public.tl_x2 public.tl_y);
is(hierarchy('public.tl'), $tree{tl}, 'two levels, dropped: the hierarchy and bounds as at the point');

kill 'TERM', $archiver;
waitpid($archiver, 0);
is($? >> 8, 0, 'archiver stopped cleanly');
$archiver = undef;
done_testing();
