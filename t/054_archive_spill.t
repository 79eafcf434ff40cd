# 054_archive_spill.t — open segments beyond --open-memory-limit are spilled to files in the
# spool directory: a transaction of a few hundred MB is archived with the archiver's peak RSS
# far below its size; kill -9 while a spilled transaction is being received, and an immediate
# PostgreSQL restart in the middle of one (the spill file is cut back to the transaction's
# start), lose nothing and duplicate nothing.  Every phase is recovered and compared with
# PostgreSQL.
use strict;
use warnings;

use BackstopTest;
use HTTP::Tiny;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);

# Phase 1: about 340 MB of pgoutput in one transaction (1 M rows of ~250 bytes, a quarter
# updated).  Phases 2 and 3: smaller ones, big enough to be caught while being received.
my $ROWS = $ENV{BACKSTOP_TEST_SPILL_ROWS} // 1_000_000;
my $ROWS_SMALL = int($ROWS * 0.45);
my $LIMIT_MIB = 16;
my $RSS_BOUND_MIB = 150;

my $node = new_pg_node('spill', extra_conf => "max_wal_size = 2GB\ncheckpoint_timeout = 30min\n");
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('spill');
my $storage = "file://$dir/archive";
my $spool = "$dir/spool";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";
my @tables = qw(public.big public.side);
my $http = HTTP::Tiny->new(timeout => 10);

$node->safe_psql($db, q{
	CREATE TABLE public.big (id bigint PRIMARY KEY, grp int NOT NULL, payload text NOT NULL);
	CREATE TABLE public.side (id int PRIMARY KEY, v text);
	INSERT INTO public.big SELECT -g, 0, 'before' FROM generate_series(1, 100) g;
	INSERT INTO public.side SELECT g, 'seed' FROM generate_series(1, 10) g;
});

my $archiver;

END
{
	kill 'KILL', $archiver if $archiver;
}

sub start_archiver
{
	my ($log, @extra) = @_;
	return spawn_archiver($log, '--db', $conn, '--tables', join(',', @tables),
		'--storage', $storage, '--data-dir', "$dir/data", '--spool-dir', $spool, '--listen', $listen,
		'--open-memory-limit', "${LIMIT_MIB}MiB", '--status-interval', '1s', '--table-poll-interval', '5s',
		@extra);
}

sub stop_archiver
{
	kill 'TERM', $archiver;
	waitpid($archiver, 0);
	my $rc = $? >> 8;
	$archiver = undef;
	return $rc;
}

sub metrics
{
	my $r = $http->get("http://$listen/metrics");
	return {} unless $r->{success};
	my %m;
	for my $line (split /\n/, $r->{content})
	{
		$m{$1} = $2 if $line =~ /^([a-z_]+) (\d+)$/;
	}
	return \%m;
}

sub spill_files
{
	return grep { -f $_ } glob("$spool/spill/*");
}

sub big_transaction
{
	my ($from, $n, $tag) = @_;
	my $to = $from + $n - 1;
	my $sqlfile = "$dir/big-$tag.sql";
	open(my $fh, '>', $sqlfile) or die "$sqlfile: $!";
	print $fh qq{
		BEGIN;
		INSERT INTO public.big
			SELECT g, g % 1000, md5(g::text) || repeat(md5((g * 31)::text), 7) || ' row ' || g
			FROM generate_series($from, $to) g;
		UPDATE public.side SET v = 'in big txn $tag' WHERE id = 1;
		UPDATE public.big SET grp = -grp, payload = upper(substr(payload, 1, 100)) || ' updated $tag'
			WHERE id BETWEEN $from AND $to AND id % 4 = 0;
		SELECT pg_sleep(2);
		COMMIT;
	};
	close $fh;
	my ($in, $out, $err) = ('', '', '');
	my $h = IPC::Run::start([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $conn, '-f', $sqlfile ],
		'<', \$in, '>', \$out, '2>', \$err);
	# Small transactions while the big one runs; the last one commits during its pg_sleep,
	# so that its record opens the big table's segment just before the big transaction.
	for my $i (1 .. 10)
	{
		$node->safe_psql($db, "INSERT INTO public.side VALUES ($from + $i, 'concurrent $tag $i') "
			. "ON CONFLICT (id) DO UPDATE SET v = excluded.v");
		sleep 0.1;
	}
	my $started = time;
	while (time - $started < 300)
	{
		last if $node->safe_psql($db,
			"SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query LIKE '%pg_sleep(2)%'") > 0;
		sleep 0.05;
	}
	$node->safe_psql($db, "INSERT INTO public.big VALUES (-1000 - $from, 1, 'just before $tag')");
	return { h => $h, err => \$err };
}

sub finish_big
{
	my ($b) = @_;
	return eval { $b->{h}->finish; 1 } && $b->{h}->result(0) == 0;
}

# Wait until the archiver holds at least $bytes of a spilled open segment.
sub wait_spilling
{
	my ($bytes, $timeout) = @_;
	my $deadline = time + $timeout;
	while (time < $deadline)
	{
		my $m = metrics();
		return $m->{backstop_open_spilled_bytes} if ($m->{backstop_open_spilled_bytes} // 0) >= $bytes;
		sleep 0.05;
	}
	return 0;
}

sub recover_and_compare
{
	my ($what) = @_;
	for my $t (@tables)
	{
		(my $into = $t) =~ s/public\./public.r_/;
		my ($r, $o, $e) = run_backstop({ timeout => 600 }, 'recover', '--db', $conn, '--storage', $storage,
			'--table', $t, '--latest', '--into', $into, '--replace', '--yes');
		is($r, 0, "$what: recover $t --latest") or diag("$o\n$e");
		my $got = $r == 0 ? content_checksum($node, $db, $into) : 'recover failed';
		is($got, content_checksum($node, $db, $t), "$what: $t recovered equals PostgreSQL");
	}
}

# ---- phase 1: a transaction of a few hundred MB through a 16 MiB memory limit ----
my $log = "$dir/archiver.log";
$archiver = start_archiver($log, '--segment-age', '1s');
my ($rc, $out) = checkpoint_until($listen, 'public.big', 60);
is($rc, 0, 'archiver started') or diag(slurp_file($log));
my $rss_idle = proc_status($archiver, 'VmRSS') // 0;
my $recv0 = metrics()->{backstop_received_bytes_total} // 0;

my $t0 = time;
my $big = big_transaction(1, $ROWS, 'p1');
ok(finish_big($big), 'phase 1: big transaction committed') or diag(${ $big->{err} });
my $t1 = time;
($rc, $out) = checkpoint_until($listen, 'public.big', 300);
is($rc, 0, 'phase 1: checkpoint after the big transaction') or diag($out . slurp_file($log));
like($out, qr/"verified":true/, 'phase 1: checkpoint verified');
my $t_archive = time - $t1;
($rc, $out) = checkpoint_until($listen, 'public.side', 60);
is($rc, 0, 'phase 1: checkpoint of the side table') or diag($out);

my $m = metrics();
my $recv_mb = (($m->{backstop_received_bytes_total} // 0) - $recv0) / 1048576;
my $hwm = proc_status($archiver, 'VmHWM') // 0;
diag(sprintf("phase 1: %d rows, %.0f MB of changes received; caught up %.1f s after COMMIT; "
	  . "RSS idle %.0f MiB, peak (VmHWM) %.0f MiB with --open-memory-limit %d MiB",
	$ROWS, $recv_mb, $t_archive, $rss_idle / 1048576, $hwm / 1048576, $LIMIT_MIB));
cmp_ok($recv_mb, '>=', 250 * $ROWS / 1_000_000, sprintf('phase 1: the archiver received %.0f MB of changes', $recv_mb));
cmp_ok($m->{backstop_spills_total} // 0, '>=', 1, 'phase 1: the open segment was spilled');
like(slurp_file($log), qr/public\.big: open segment of \d+ bytes spilled to \Q$spool\E\/spill\//,
	'phase 1: the spill is logged');
ok($hwm > 0, 'VmHWM readable');
SKIP:
{
	skip 'peak RSS is not meaningful under AddressSanitizer (shadow memory, quarantine)', 1 if asan_build();
	cmp_ok($hwm / 1048576, '<', $RSS_BOUND_MIB,
		"phase 1: peak RSS stays below $RSS_BOUND_MIB MiB for a transaction of ${\ int($recv_mb)} MB");
}
is(stop_archiver(), 0, 'phase 1: archiver stops cleanly');
is(scalar(spill_files()), 0, 'phase 1: no spill file left after an orderly stop');
recover_and_compare('phase 1');

# ---- phase 2: kill -9 while a spilled transaction is being received ----
$log = "$dir/archiver-kill.log";
$archiver = start_archiver($log, '--segment-age', '1s');
($rc, $out) = checkpoint_until($listen, 'public.big', 60);
is($rc, 0, 'phase 2: archiver started') or diag(slurp_file($log));
my $from2 = 10_000_000;
$big = big_transaction($from2, $ROWS_SMALL, 'p2');
ok(finish_big($big), 'phase 2: big transaction committed') or diag(${ $big->{err} });
my $spilled = wait_spilling(($LIMIT_MIB + 8) * 1048576, 300);
ok($spilled, "phase 2: caught the archiver with $spilled bytes spilled") or diag(slurp_file($log));
kill 'KILL', $archiver;
waitpid($archiver, 0);
$archiver = undef;
my @left = spill_files();
cmp_ok(scalar(@left), '>=', 1, 'phase 2: kill -9 leaves a spill file (' . join(', ', map { s{.*/}{}r } @left) . ')');
$archiver = start_archiver($log, '--segment-age', '1s');
ok(wait_for('the spill files to be removed', sub { slurp_file($log) =~ /removed \d+ spill files? of segments never sealed/ }, 60),
	'phase 2: spill files of the killed run are removed at start-up') or diag(slurp_file($log));
ok(!grep({ -e $_ } @left), 'phase 2: the leftover spill files are gone');
($rc, $out) = checkpoint_until($listen, 'public.big', 300);
is($rc, 0, 'phase 2: checkpoint after the restart') or diag($out . slurp_file($log));
($rc, $out) = checkpoint_until($listen, 'public.side', 60);
is($rc, 0, 'phase 2: checkpoint of the side table') or diag($out);
is(stop_archiver(), 0, 'phase 2: archiver stops cleanly');
is(scalar(spill_files()), 0, 'phase 2: no spill file left');
recover_and_compare('phase 2 (kill -9 mid-spill)');

# ---- phase 3: PostgreSQL stops (immediate) in the middle of a spilled transaction ----
# A long segment age keeps the record committed just before the big transaction in the same
# open segment, so that the spill file must be cut back to the big transaction's start.
$log = "$dir/archiver-pgrestart.log";
$archiver = start_archiver($log, '--segment-age', '60s');
($rc, $out) = checkpoint_until($listen, 'public.big', 60);
is($rc, 0, 'phase 3: archiver started') or diag(slurp_file($log));
my $from3 = 20_000_000;
$big = big_transaction($from3, $ROWS_SMALL, 'p3');
ok(finish_big($big), 'phase 3: big transaction committed') or diag(${ $big->{err} });
$spilled = wait_spilling(($LIMIT_MIB + 8) * 1048576, 300);
ok($spilled, "phase 3: caught the archiver with $spilled bytes spilled") or diag(slurp_file($log));
$node->stop('immediate');
$node->start;
ok(wait_for('the disconnect', sub { slurp_file($log) =~ /replication connection lost/ }, 60),
	'phase 3: the archiver saw the disconnect');
like(slurp_file($log), qr/public\.big: spill file cut back to \d+ bytes \(1 records\)/,
	'phase 3: the partial transaction was dropped from the spill file');
($rc, $out) = checkpoint_until($listen, 'public.big', 300);
is($rc, 0, 'phase 3: checkpoint after the reconnect') or diag($out . slurp_file($log));
($rc, $out) = checkpoint_until($listen, 'public.side', 60);
is($rc, 0, 'phase 3: checkpoint of the side table') or diag($out);
is(stop_archiver(), 0, 'phase 3: archiver stops cleanly');
is(scalar(spill_files()), 0, 'phase 3: no spill file left');
($rc, $out, my $err) = run_backstop('verify', '--storage', $storage);
is($rc, 0, 'verify: the archive is consistent') or diag("$out\n$err");
recover_and_compare('phase 3 (PostgreSQL stopped mid-spill)');

$node->stop;
done_testing();
