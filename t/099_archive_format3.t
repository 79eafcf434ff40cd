# 099_archive_format3.t — the archiver writing a format-3 archive (--archive-format 3,
# doc/design/format2.md 3.3): one pack per seal under log/ holding every touched table's runs and
# events, no per-table manifest, head.json format 3, a catalog written at restart.  Recovery from
# it is exact at points before and after a restart, a column added, a rename and a drop; the
# archive keeps its format without the option; a format-2 archive is not converted.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;
use BackstopArchiver;

my $node = new_pg_node('fmt3');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('fmt3');

sub pt { return $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()') }
sub sum { my ($t) = @_; return content_checksum($node, $db, $t) }
sub keys_under
{
	my ($root, $sub) = @_;
	return () unless -d "$root/$sub";
	opendir(my $dh, "$root/$sub") or die $!;
	my @k = sort grep { !/^\./ } readdir($dh);
	closedir($dh);
	return @k;
}

$node->safe_psql($db, q{
	CREATE TABLE public.a (id int PRIMARY KEY, v text, n numeric);
	INSERT INTO public.a SELECT g, 'v' || g, g * 1.5 FROM generate_series(1, 200) g;
	CREATE TABLE public.b (k text, w int);
	ALTER TABLE public.b REPLICA IDENTITY FULL;
	INSERT INTO public.b SELECT 'k' || g, g FROM generate_series(1, 50) g;
	CREATE TABLE public.c (id int PRIMARY KEY, t timestamptz);
	INSERT INTO public.c SELECT g, '2026-01-01'::timestamptz + g * interval '1 hour' FROM generate_series(1, 30) g;
});

my $c = BackstopArchiver->new(dir => $dir, name => 'main', conn => $conn,
	args => [ '--all-tables', '--archive-format', '3' ]);
my $root = "$dir/main/archive";
$c->start;
$c->checkpoint_ok('public.a', 'start');

my %points;
sub mark
{
	my ($label, $bname) = @_;
	$points{$label} = { lsn => pt(), a => sum('public.a'), b => sum($bname // 'public.b'), c => sum('public.c') };
}
mark('base');
$node->safe_psql($db, "UPDATE public.a SET v = 'u1' WHERE id <= 20");
$node->safe_psql($db, "DELETE FROM public.b WHERE w % 3 = 0");
$node->safe_psql($db, "INSERT INTO public.c VALUES (31, now())");
mark('one');
$c->checkpoint_ok('public.a', 'first changes');
$node->safe_psql($db, "UPDATE public.a SET n = n + 1 WHERE id > 150");
$node->safe_psql($db, "UPDATE public.b SET w = -w WHERE w < 10");
mark('two');
$c->checkpoint_ok('public.b', 'second changes');

# The storage: packs in the log, no per-table manifest, a format-3 head.
my @packs = keys_under($root, 'log');
ok(scalar(@packs) >= 2, 'packs in log/ (' . scalar(@packs) . ')');
ok((grep { /^[0-9A-F]{16}\.bsp$/ } @packs) == @packs, 'named by sequence number') or diag("@packs");
my @manifests = glob("$root/tables/*/manifest.json");
is(scalar(@manifests), 0, 'no per-table manifest');
my $head = slurp_file("$root/head.json");
like($head, qr/"format"\s*:\s*3/, 'head.json is format 3') or diag($head);
# A seal writes one object for every table it touched (format 2: a segment and a manifest each).
my $before = scalar(keys_under($root, 'log'));
$node->safe_psql($db, q{
	BEGIN;
	UPDATE public.a SET v = 'three' WHERE id = 1;
	UPDATE public.b SET w = 1000 WHERE k = 'k1';
	UPDATE public.c SET t = now() WHERE id = 1;
	COMMIT;
});
mark('three');
$c->checkpoint_ok('public.c', 'three tables in one transaction');
my $after = scalar(keys_under($root, 'log'));
is($after - $before, 1, 'one seal touching three tables wrote one pack');
my @segs = glob("$root/tables/*/seg/*");
is(scalar(@segs), 0, 'and no segment object');

my ($rc, $out, $err) = run_backstop('info', '--storage', "file://$root", '--table', 'public.a', '--json');
is($rc, 0, 'info --table reads the format-3 archive') or diag("$out\n$err");
like($out, qr/"relid"/, 'with its summary');

$c->stop('before restart');

# Restarted without the option: the archive keeps its format; the packs of the first run go
# into a catalog.
$c->set_args('--all-tables');
$c->start;
$c->checkpoint_ok('public.a', 'restart');
ok(scalar(keys_under($root, 'catalog')) >= 1, 'a catalog was written at restart');
$head = slurp_file("$root/head.json");
like($head, qr/"catalog_seq"\s*:\s*[1-9]/, 'the head names it') or diag($head);
$node->safe_psql($db, "ALTER TABLE public.a ADD COLUMN extra int DEFAULT 7");
$node->safe_psql($db, "UPDATE public.a SET extra = id WHERE id % 10 = 0");
mark('four');
$node->safe_psql($db, "ALTER TABLE public.b RENAME TO b2");
$node->safe_psql($db, "INSERT INTO public.b2 VALUES ('new', 1)");
mark('five', 'public.b2');
$node->safe_psql($db, "DELETE FROM public.c WHERE id > 25");
mark('six', 'public.b2');
$c->checkpoint_ok('public.b2', 'after the rename');
$node->safe_psql($db, "DROP TABLE public.c");
ok(wait_for('the drop to be archived', sub { $c->log_has(qr/table public\.c was dropped/) }, 120),
	'the drop is seen') or diag($c->log);
$c->checkpoint_ok('public.a', 'after the drop');
$c->stop('end');

# Every point, every table: exactly the table there.
my $i = 0;
for my $label (qw(base one two three four five six))
{
	my $p = $points{$label};
	for my $t (qw(a b c))
	{
		my $name = $t eq 'b' && ($label eq 'five' || $label eq 'six') ? 'public.b2' : "public.$t";
		my $into = "public.r_${t}_$label";
		($rc, $out, $err) = $c->recover($conn, $name, $into, '--to-lsn', $p->{lsn});
		is($rc, 0, "$name at $label recovers") or diag("$out\n$err");
		is(sum($into), $p->{$t}, "$name at $label: exactly the table there");
		$i++;
	}
}
($rc, $out, $err) = $c->recover($conn, 'public.c', 'public.r_c_latest', '--latest');
is($rc, 0, 'the dropped table recovers at its last state') or diag("$out\n$err");
is(sum('public.r_c_latest'), $points{six}{c}, 'exactly its last state');

# verify checks the whole log, every table and every run; a pack deleted in the middle of the
# log is a hole it names (exit 3).
($rc, $out, $err) = run_backstop('verify', '--storage', "file://$root");
is($rc, 0, 'verify: the format-3 archive is sound') or diag("$out\n$err");
like($out, qr/^OK: \d+ pack\(s\), [1-9]\d* table\(s\), [1-9]\d* run\(s\), .*: 0 problem\(s\)/m,
	'with its packs, tables and runs') or diag($out);
my @logpacks = grep { /^[0-9A-F]{16}\.bsp$/ } keys_under($root, 'log');
ok(@logpacks >= 3, 'the log holds at least three packs') or diag(join(' ', @logpacks));
my $middle = $logpacks[ int(@logpacks / 2) ];
unlink("$root/log/$middle") or die "unlink $middle: $!";
($rc, $out, $err) = run_backstop('verify', '--storage', "file://$root");
is($rc, 3, 'verify: a pack deleted in the middle of the log is damage (exit 3)') or diag("$out\n$err");
like($out, qr{^PROBLEM: - log/\Q$middle\E: missing from the log}m, 'naming the missing pack') or diag($out);

# A stop between a pack's put and the spool's cleanup (the position not yet confirmed): the next
# start finds the pack in the log and forgets the spooled epochs it holds, rather than putting
# their records in the log a second time (which no reader could fold).
my $k = BackstopArchiver->new(dir => $dir, name => 'crash', conn => $conn,
	args => [ '--all-tables', '--archive-format', '3' ]);
$k->start(BACKSTOP_TEST_EXIT_AFTER_PACK => 1);
$k->checkpoint_ok('public.a', 'crash: start');
$node->safe_psql($db, "UPDATE public.a SET v = 'crash' WHERE id <= 5");
my %crash = (lsn => pt(), a => sum('public.a'));
archiver_checkpoint($k->listen, 'public.a', '5s');
ok(wait_for('the archiver to exit after the put', sub { $k->log_has(qr/exiting after the put of "log\//) }, 90),
	'the archiver exits right after a pack with records is put') or diag($k->log);
$k->{h}->finish;
isnt($k->{h}->result(0), 0, 'as a crash would (exit status)');
$k->start;
$k->checkpoint_ok('public.a', 'crash: restart');
ok($k->log_has(qr/spool epoch \S+ is in the archive's log already/), 'the spooled epoch is forgotten')
	or diag($k->log);
$node->safe_psql($db, "UPDATE public.a SET v = 'after crash' WHERE id = 6");
$crash{latest} = sum('public.a');
$k->checkpoint_ok('public.a', 'crash: after restart');
$k->stop('crash');
($rc, $out, $err) = $k->recover($conn, 'public.a', 'public.r_crash', '--to-lsn', $crash{lsn});
is($rc, 0, 'the point in the pack put before the exit recovers') or diag("$out\n$err");
is(sum('public.r_crash'), $crash{a}, 'exactly the table there');
($rc, $out, $err) = $k->recover($conn, 'public.a', 'public.r_crash_latest', '--latest');
is($rc, 0, 'the latest point recovers') or diag("$out\n$err");
is(sum('public.r_crash_latest'), $crash{latest}, 'exactly the table there');
($rc, $out, $err) = run_backstop('verify', '--storage', $k->storage);
is($rc, 0, 'verify: the archive written across the exit is sound') or diag("$out\n$err");

# A format-2 archive is not converted.
my $c2 = BackstopArchiver->new(dir => $dir, name => 'two', conn => $conn, args => [ '--all-tables' ]);
$c2->start;
$c2->checkpoint_ok('public.a', 'format 2');
$c2->stop('format 2');
$c2->set_args('--all-tables', '--archive-format', '3');
($rc, $out, $err) = run_backstop('archive', $c2->args, '--end-lsn', pt());
isnt($rc, 0, 'archive_format 3 on a format-2 archive is refused');
like($err, qr/is in format 2; archive_format 3 applies to a new archive/, 'saying why') or diag($err);
done_testing();
