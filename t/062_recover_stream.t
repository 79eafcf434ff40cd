# 062_recover_stream.t — streaming recovery: base rows that no change touches go straight to
# COPY, the touched ones through the in-memory state.  Exact against PostgreSQL's own checksum
# for key changes, delete-and-reinsert, unchanged TOASTed values, identical rows of a table
# without a key, several base chunks; and a damaged later chunk, found after rows were
# already sent, still leaves nothing behind (not even a dropped --replace target).
use strict;
use warnings;

use File::Copy qw(copy);
use File::Find qw(find);
use File::Path qw(mkpath);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);
use BackstopTest;

my $node = new_pg_node('stream');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('stream');
my $archive = "$dir/archive";
my $storage = "file://$archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";

# k: keyed, about 7 MB in 2 MiB base chunks (each read in several pieces, lines split across
# them); f: no key, REPLICA IDENTITY FULL, identical rows.
$node->safe_psql($db, q{
	CREATE TABLE public.k (id int PRIMARY KEY, t text, big text, n numeric);
	ALTER TABLE public.k ALTER COLUMN big SET STORAGE EXTERNAL;
	INSERT INTO public.k SELECT g, 'row ' || g || E'\tx\\y' || repeat('p', 90), CASE WHEN g % 500 = 0 THEN repeat('B' || g, 3000) END, g / 3.0
	  FROM generate_series(1, 60000) g;
	CREATE TABLE public.f (a int, b text);
	ALTER TABLE public.f REPLICA IDENTITY FULL;
	INSERT INTO public.f SELECT g % 50, 'v' || (g % 50) FROM generate_series(1, 3000) g;
});

my $log = "$dir/archiver.log";
my $h = kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', '--db', $conn, '--all-tables', '--storage', $storage,
	  '--data-dir', "$dir/data", '--listen', $listen, '--segment-age', '1s', '--base-chunk-size', '2MiB' ],
	'<', \undef, '>', "$dir/archiver.out", '2>>', $log));

# Retried for up to 60 s (the daemon may still be taking its base copy).
sub checkpoint { return (checkpoint_until($listen, $_[0], 60))[0] == 0 }
ok(checkpoint('public.k') && checkpoint('public.f'), 'archiver running') or diag(slurp_file($log));

my @steps = (
	q{UPDATE public.k SET id = id + 100000 WHERE id BETWEEN 100 AND 120 OR id BETWEEN 30000 AND 30010},	# key changes
	q{DELETE FROM public.k WHERE id BETWEEN 200 AND 210; INSERT INTO public.k (id, t) SELECT g, 'again' FROM generate_series(200, 205) g},
	q{UPDATE public.k SET t = 'toast kept' WHERE id IN (500, 1000, 5500, 59500)},	# big stays unchanged ('u')
	q{DELETE FROM public.k WHERE id = 7; UPDATE public.k SET id = 7, t = 'moved' WHERE id = 60000},	# key reused
	q{UPDATE public.f SET b = 'one of many' WHERE ctid = (SELECT min(ctid) FROM public.f WHERE a = 3)},
	q{DELETE FROM public.f WHERE ctid IN (SELECT ctid FROM public.f WHERE a = 4 LIMIT 7)},
	q{INSERT INTO public.f VALUES (5, 'v5'), (5, 'v5'), (NULL, NULL)},
);
my @points;
for my $sql (@steps)
{
	$node->safe_psql($db, "BEGIN; $sql; COMMIT;");
	push @points, { sql => $sql, lsn => $node->safe_psql($db, 'SELECT pg_current_wal_lsn()'),
		k => content_checksum($node, $db, 'public.k'), f => content_checksum($node, $db, 'public.f') };
}
ok(checkpoint('public.k') && checkpoint('public.f'), 'checkpoint after the workload');

my $relid = $node->safe_psql($db, "SELECT 'public.k'::regclass::oid");
my @chunks = sort glob("$archive/tables/$relid/base/*/chunk-*.bso");
cmp_ok(scalar(@chunks), '>=', 3, 'the base of public.k has several chunks');

my $n = 0;
sub recover_ok
{
	my ($table, $lsn, $expect, $what, $into) = @_;
	$into //= 'public.r' . $n++;
	my ($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', $table,
		'--to-lsn', $lsn, '--into', $into);
	is($rc, 0, "$what: exit 0") or diag($err);
	like($out, qr/^Method:\s+streamed/m, "$what: streamed");
	is(content_checksum($node, $db, $into), $expect, "$what: exact");
}
for my $i (0 .. $#points)
{
	my $p = $points[$i];
	my ($table) = $p->{sql} =~ /public\.(\w)/;
	recover_ok("public.$table", $p->{lsn}, $p->{$table}, "after step $i ($p->{sql})");
}

# Indexes are recreated on the streamed table: the primary key holds, so no duplicate key
# slipped through between the streamed and the rebuilt rows.
recover_ok('public.k', $points[-1]{lsn}, $points[-1]{k}, 'with indexes', 'public.kidx');
is($node->safe_psql($db, q{SELECT count(*) FROM pg_indexes WHERE tablename = 'kidx'}), '1', 'primary key recreated');

# A damaged later chunk: rows of the earlier chunks were already sent when it is found.
my $bad = "$dir/bad";
find({ no_chdir => 1, wanted => sub {
	(my $rel = $File::Find::name) =~ s/^\Q$archive\E//;
	if (-d $_) { mkpath("$bad$rel"); }
	else { copy($_, "$bad$rel") or die "copy $_: $!"; }
} }, $archive);
(my $last = $chunks[-1]) =~ s/^\Q$archive\E/$bad/;
{
	open(my $f, '+<:raw', $last) or die "$last: $!";
	seek($f, 60, 0);
	read($f, my $byte, 1);
	seek($f, 60, 0);
	print $f chr(ord($byte) ^ 0x20);
	close($f);
}
my ($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', "file://$bad", '--table', 'public.k',
	'--latest', '--into', 'public.kidx', '--replace', '--yes');
is($rc, 3, 'damaged last chunk: exit 3');
like($err, qr/chunk-\d+\.bso/, 'naming the chunk');
is(content_checksum($node, $db, 'public.kidx'), $points[-1]{k},
	'the earlier recovery it was to replace is untouched (the DROP was rolled back)');
is($node->safe_psql($db, q{SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public'
	AND tablename NOT IN ('k', 'f', 'kidx') AND tablename !~ '^r[0-9]+$'}), '', 'no stray tables');

$h->signal('TERM');
$h->finish;
done_testing();
