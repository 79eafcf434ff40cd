# 083_recover_memory.t — recovery in bounded memory: a table several times larger than a small
# --memory-limit, with a big UPDATE and a TRUNCATE + reload in the window, is recovered exactly
# (PostgreSQL's checksum of the source at that LSN, and the same with and without spilling)
# with the recover process's peak RSS (GNU time's maxrss of the child) within the limit plus a
# fixed overhead, and its temporary files gone afterwards, also after a failure.  A second
# table of many small rows (400,000) makes the index of rows (one entry per key, and the keys a
# streamed recovery touches) larger than the limit by itself: it must spill too.
use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);
use BackstopTest;

# The limit, and what a recover process takes besides the rows and objects it bounds: the
# binary and its libraries (libpq, OpenSSL, curl, jansson, libpg_query), the COPY and
# checksum buffers, libpq's output buffer, and the window over the segment being read.
my $LIMIT_MIB = 8;
my $OVERHEAD_MIB = 32;

require_or_skip('GNU time (/usr/bin/time, Debian package "time")',
	-x '/usr/bin/time' && `/usr/bin/time -f %M true 2>&1` =~ /^\d+\s*$/, 'contrib/setup installs it');

my $node = new_pg_node('memory');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('memory');
my $archive = "$dir/archive";
my $storage = "file://$archive";
my $tmp = "$dir/tmp";
mkdir $tmp or die "mkdir $tmp: $!";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";

# About 60 MB: 56,000 rows of about 1 kB (kept inline, not compressed).
my $fill = q{SELECT g, %s, g % 97, repeat(md5(g::text || '%s'), 31) FROM generate_series(1, 56000) g};
$node->safe_psql($db, "CREATE TABLE public.m (id int PRIMARY KEY, label text, n int, pad text);
	ALTER TABLE public.m ALTER COLUMN pad SET STORAGE MAIN;
	INSERT INTO public.m " . sprintf($fill, q{'base ' || g}, 'base'));
my $size = $node->safe_psql($db, "SELECT pg_table_size('public.m')");
cmp_ok($size, '>', 6 * $LIMIT_MIB * 1048576, "the table ($size bytes) is several times the limit");
# Many small rows: the index (per row a hash and a reference) alone is several times the limit.
my $NK = 400_000;
$node->safe_psql($db, "CREATE TABLE public.k (id int PRIMARY KEY, v int);
	INSERT INTO public.k SELECT g, g FROM generate_series(1, $NK) g");

my $log = "$dir/archiver.log";
my $h = kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', '--db', $conn, '--tables', 'public.m,public.k',
	  '--storage', $storage, '--data-dir', "$dir/data", '--listen', $listen, '--segment-age', '1s',
	  '--base-chunk-size', '8MiB' ],
	'<', \undef, '>', "$dir/archiver.out", '2>>', $log));

sub checkpoint
{
	my $deadline = time + 300;
	for my $t ('public.m', 'public.k')
	{
		for (;;)
		{
			return 0 if time >= $deadline;
			my ($rc) = archiver_checkpoint($listen, $t, '60s');
			last if $rc == 0;
			sleep 0.3;
		}
	}
	return 1;
}
ok(checkpoint(), 'archiver running, base copy taken') or diag(slurp_file($log));

# Point 1: every row updated in one transaction (the streaming method: every row is touched).
$node->safe_psql($db, q{UPDATE public.m SET n = n + 1, label = 'updated ' || id, pad = repeat(md5(id::text || 'u'), 31)});
$node->safe_psql($db, q{UPDATE public.k SET v = v + 1});
my $lsn1 = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');
my $sum1 = content_checksum($node, $db, 'public.m');
my $ksum1 = content_checksum($node, $db, 'public.k');
# Point 2: TRUNCATE and a reload, then more changes (the table is rebuilt, not streamed).
$node->safe_psql($db, "BEGIN; TRUNCATE public.m; INSERT INTO public.m "
	  . sprintf($fill, q{'reloaded ' || g}, 'reload') . "; COMMIT;");
$node->safe_psql($db, q{UPDATE public.m SET label = 'late ' || id WHERE id % 3 = 0});
$node->safe_psql($db, q{DELETE FROM public.m WHERE id % 11 = 0});
$node->safe_psql($db, "BEGIN; TRUNCATE public.k; INSERT INTO public.k SELECT g, -g FROM generate_series(1, $NK) g; COMMIT;");
$node->safe_psql($db, q{UPDATE public.k SET v = v * 3});
$node->safe_psql($db, q{DELETE FROM public.k WHERE id % 7 = 0});
my $lsn2 = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');
my $sum2 = content_checksum($node, $db, 'public.m');
my $ksum2 = content_checksum($node, $db, 'public.k');
isnt($sum2, $sum1, 'the two points differ');
ok(checkpoint(), 'the changes are archived') or diag(slurp_file($log));

sub dir_entries
{
	my ($d) = @_;
	opendir(my $dh, $d) or die "opendir $d: $!";
	my @e = grep { $_ ne '.' && $_ ne '..' } readdir($dh);
	closedir($dh);
	return @e;
}

# Run recover under GNU time: (exit code, JSON result, stderr, peak RSS in bytes).
sub recover_measured
{
	my ($table, $lsn, $into, @extra) = @_;
	my ($out, $err) = ('', '');
	my $rss = "$dir/rss";
	unlink $rss;
	my @cmd = ('/usr/bin/time', '-f', '%M', '-o', $rss, backstop_bin(), 'recover', '--db', $conn,
		'--storage', $storage, '--table', $table, '--to-lsn', $lsn, '--into', "public.$into", '--json', @extra);
	my $run = IPC::Run::start(\@cmd, '<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout(3 * $PostgreSQL::Test::Utils::timeout_default));	# spilled indexes are slow
	$run->finish;
	my $rc = $run->result(0);
	note("backstop recover --table $table --to-lsn $lsn --into public.$into @extra => exit $rc");
	my $kb = -e $rss ? (slurp_file($rss) =~ /(\d+)\s*$/ ? $1 : 0) : 0;
	my $res = $rc == 0 ? eval { decode_json($out) } : undef;
	diag($err) if $rc != 0;
	return ($rc, $res, $err, $kb * 1024);
}

my $bound = ($LIMIT_MIB + $OVERHEAD_MIB) * 1048576;
my %sum = ('public.m' => { 1 => $sum1, 2 => $sum2 }, 'public.k' => { 1 => $ksum1, 2 => $ksum2 });
my %lsn = (1 => $lsn1, 2 => $lsn2);
for my $t ('public.m', 'public.k')
{
	my $tn = $t =~ s/^public\.//r;
	for my $p (1, 2)
	{
		my ($rc, $res, $err, $peak) = recover_measured($t, $lsn{$p}, "${tn}_small_$p", '--memory-limit',
			"${LIMIT_MIB}MiB", '--temp-dir', $tmp);
		is($rc, 0, "$t point $p: recover with --memory-limit ${LIMIT_MIB}MiB succeeds");
		is($rc == 0 ? content_checksum($node, $db, "public.${tn}_small_$p") : '', $sum{$t}{$p},
			"$t point $p: the recovered table is exactly the source at that LSN");
		is($res && $res->{method}, $p == 1 ? 'streamed' : 'in-memory',
			"$t point $p: method " . ($p == 1 ? 'streamed' : 'rebuilt'));
		cmp_ok($res ? $res->{spilled_rows} : 0, '>', 0, "$t point $p: rows spilled to disk past the limit");
		diag(sprintf("%s point %d: peak RSS %.1f MiB (limit %d MiB + %d MiB overhead), %d rows (%.1f MB) spilled",
			$t, $p, $peak / 1048576, $LIMIT_MIB, $OVERHEAD_MIB, $res ? $res->{spilled_rows} : 0,
			($res ? $res->{spilled_bytes} : 0) / 1e6));
		SKIP:
		{
			skip 'peak RSS is not meaningful under AddressSanitizer', 1 if asan_build();
			ok($peak > 0 && $peak <= $bound, sprintf("%s point %d: peak RSS %.1f MiB is within %d MiB + %d MiB",
				$t, $p, $peak / 1048576, $LIMIT_MIB, $OVERHEAD_MIB));
		}
		is_deeply([ dir_entries($tmp) ], [], "$t point $p: no temporary file is left in --temp-dir");

		# The same point with the default limit (nothing spills): the same table.
		($rc, $res) = recover_measured($t, $lsn{$p}, "${tn}_default_$p", '--temp-dir', $tmp);
		is($rc, 0, "$t point $p: recover with the default limit succeeds");
		is($res && $res->{spilled_rows}, 0, "$t point $p: nothing spilled with the default limit");
		is($rc == 0 ? content_checksum($node, $db, "public.${tn}_default_$p") : '', $sum{$t}{$p},
			"$t point $p: the same contents with and without spilling");
	}
}

# A failure after the temporary files were made (the target exists and is not a recovery
# table): they are gone all the same.  Without --temp-dir they go to $TMPDIR.
my $tmp2 = "$dir/tmp2";
mkdir $tmp2 or die "mkdir $tmp2: $!";
$node->safe_psql($db, 'CREATE TABLE public.taken (x int)');
my ($rc, $out, $err) = run_backstop({ env => { TMPDIR => $tmp2 } }, 'recover', '--db', $conn, '--storage', $storage,
	'--table', 'public.m', '--to-lsn', $lsn2, '--into', 'public.taken', '--memory-limit', "${LIMIT_MIB}MiB");
isnt($rc, 0, 'recover into an existing table fails');
like($err, qr/taken/, 'naming the table');
is_deeply([ dir_entries($tmp2) ], [], 'no temporary file is left in $TMPDIR after the failure');

# A bad limit is a usage error.
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.m',
	'--latest', '--memory-limit', 'lots');
is($rc, 2, 'a bad --memory-limit is a usage error (exit 2)');
like($err, qr/memory.limit/, 'naming the option');

$h->signal('TERM');
$h->finish;
done_testing();
