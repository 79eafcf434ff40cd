# 056_archive_background_base.t — a table created while the archiver runs (--all-tables) gets its
# first base copy in the background: checkpoints of another table are answered while the copy
# runs, changes to the new table made during its copy are neither lost nor applied twice, and
# both tables recover exactly at a point during the copy and at the latest point.
#
# "During the copy" is made certain, not likely: the archiver runs with the test hook
# BACKSTOP_TEST_BASE_COPY_LOCK (doc/HACKING.md), so each copy, once it has locked its table,
# waits for an advisory lock that this test holds; the test releases it when it is done.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);
use BackstopTest;

my $node = new_pg_node('bgbase', extra_conf => "max_wal_size = 1GB\n");
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('bgbase');
my $storage = "file://$dir/archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";
my $rows = $ENV{BACKSTOP_BGBASE_ROWS} // 50000;
my $lock_key = 56056;

$node->safe_psql($db, q{
	CREATE TABLE public.busy (id int PRIMARY KEY, v int);
	INSERT INTO public.busy SELECT g, 0 FROM generate_series(1, 100) g;
});
my $log = "$dir/archiver.log";
my $h = do
{
	local $ENV{BACKSTOP_TEST_BASE_COPY_LOCK} = $lock_key;
	kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', '--db', $conn, '--all-tables',
		  '--storage', $storage, '--data-dir', "$dir/data", '--listen', $listen, '--segment-age', '1s',
		  '--table-poll-interval', '200ms' ],
		'<', \undef, '>', "$dir/archiver.out", '2>>', $log));
};
ok(wait_for('the archiver', sub { (archiver_checkpoint($listen, 'public.busy', '5s'))[0] == 0 }, 60), 'archiver running')
  or diag(slurp_file($log));

sub metric
{
	my ($name) = @_;
	my $m = '';
	IPC::Run::run([ 'curl', '-s', "http://$listen/metrics" ], '>', \$m);
	return $m =~ /^\Q$name\E (\S+)$/m ? $1 : undef;
}

sub checkpoint_seconds
{
	my ($table) = @_;
	my $t0 = time();
	my ($rc, $out, $err) = archiver_checkpoint($listen, $table, '120s');
	return ($rc, time() - $t0, "$out\n$err");
}

# The session holding the lock that base copies wait for.
my $holder = $node->background_psql($db);
sub hold_copies { $holder->query_safe("SELECT pg_advisory_lock($lock_key)") }
sub release_copies { $holder->query_safe("SELECT pg_advisory_unlock($lock_key)") }

# Backends waiting for the lock: a copy that has locked its table and is held.
sub copies_waiting
{
	return $node->safe_psql($db, qq{SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND classid = 0 AND objid = $lock_key AND NOT granted});
}

is(metric('backstop_base_copy_running'), '0', 'no base copy running at first');
hold_copies();

# A big new table: created and filled in one transaction, so that its first base copy (taken
# by the next table check) holds all of it and takes a few seconds.
$node->safe_psql($db, qq{
	BEGIN;
	CREATE TABLE public.big (id int PRIMARY KEY, payload text);
	INSERT INTO public.big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, $rows) g;
	COMMIT;
});
ok(wait_for('the base copy point', sub { slurp_file($log) =~ /base copy point \S+: copying/ }, 60),
	'the base copy of the new table started') or diag(slurp_file($log));
ok(wait_for('the copy to be held', sub { copies_waiting() == 1 }, 60), 'the copy holds its table, held by the test');
is(metric('backstop_base_copy_running'), '1', 'metric: a base copy is running');
# The walsender first decodes (and discards) the big transaction: wait until it is past it.
my ($rc0, $secs0, $diag0) = checkpoint_seconds('public.busy');
is($rc0, 0, 'warm-up checkpoint during the copy') or diag($diag0);

# During the copy: changes to both tables (those to big come after the copy's point, so they
# must come from the stream), then a checkpoint of the other table.
$node->safe_psql($db, q{
	UPDATE public.busy SET v = v + 1 WHERE id <= 50;
	UPDATE public.big SET payload = 'during ' || id WHERE id % 1000 = 0;
	INSERT INTO public.big VALUES (-1, 'inserted during the copy');
	DELETE FROM public.big WHERE id BETWEEN 10 AND 19;
});
my ($rc, $secs, $diag) = checkpoint_seconds('public.busy');
my $still = metric('backstop_base_copy_running');
is($rc, 0, 'checkpoint of another table during the copy') or diag($diag);
is($still, '1', 'the base copy was still running when the checkpoint was answered')
  or diag(slurp_file($log));
# The big table has no recovery point before its base copy is stored: no checkpoint yet.
{
	my ($c, $o, $e) = archiver_checkpoint($listen, 'public.big', '1s');
	isnt($c, 0, 'no checkpoint of the table being copied before its first base') or diag("$o\n$e");
	like("$o$e", qr/first base copy/, 'the reason is its base copy');
}
my $lsn_mid = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');
my %mid = map { $_ => content_checksum($node, $db, "public.$_") } qw(busy big);
$node->safe_psql($db, q{UPDATE public.busy SET v = v + 10 WHERE id > 90});
my ($rc2, $secs2, $diag2) = checkpoint_seconds('public.busy');
is($rc2, 0, 'a second checkpoint during the copy') or diag($diag2);
is(copies_waiting(), '1', 'the copy was held throughout');
release_copies();

ok(wait_for('the base copy to finish', sub { slurp_file($log) =~ /base cop(?:y|ies) done in ([\d.]+) s/ }, 120),
	'the base copy finished') or diag(slurp_file($log));
my ($copy_secs) = slurp_file($log) =~ /base cop(?:y|ies) done in ([\d.]+) s/;
is(metric('backstop_base_copy_running'), '0', 'metric: no base copy running afterwards');
diag(sprintf('base copy %.1f s; checkpoints during it %.2f s (warm-up), %.2f s and %.2f s',
	$copy_secs, $secs0, $secs, $secs2));

# More changes after the copy; then both tables at the latest point.
$node->safe_psql($db, q{
	UPDATE public.busy SET v = v + 100 WHERE id % 2 = 0;
	UPDATE public.big SET payload = 'after' WHERE id % 777 = 0;
	INSERT INTO public.big VALUES (-2, 'after the copy');
});
for my $t (qw(busy big))
{
	my ($c, $o, $e) = archiver_checkpoint($listen, "public.$t", '120s');
	is($c, 0, "checkpoint of $t after the copy") or diag("$o\n$e");
}
my $lsn_late = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');
my %late = map { $_ => content_checksum($node, $db, "public.$_") } qw(busy big);

my ($vrc, $vout, $verr) = run_backstop('verify', '--storage', $storage);
is($vrc, 0, 'verify: the archive is consistent') or diag("$vout\n$verr");
for my $t (qw(busy big))
{
	for my $p ([ 'mid', $lsn_mid, \%mid ], [ 'late', $lsn_late, \%late ])
	{
		my ($name, $lsn, $sums) = @$p;
		my ($c, $o, $e) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', "public.$t",
			'--to-lsn', $lsn, '--into', "public.${t}_$name", '--no-indexes');
		is($c, 0, "recover $t at the $name point") or diag("$o\n$e");
		is(content_checksum($node, $db, "public.${t}_$name"), $sums->{$t}, "$t recovered exactly at the $name point");
	}
}

is(scalar(() = slurp_file($log) =~ /base copy point/g), 1, 'one background base copy so far (no needless re-base)')
  or diag(slurp_file($log));

sub copies_started { return scalar(() = slurp_file($log) =~ /base copy point/g) }

# A table dropped while its first base copy runs: the DROP waits for the copy's lock; the
# archiver carries on and marks the table dropped.
my $half = int($rows / 2);
hold_copies();
$node->safe_psql($db, qq{
	BEGIN;
	CREATE TABLE public.victim (id int PRIMARY KEY, payload text);
	INSERT INTO public.victim SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, $half) g;
	COMMIT;
});
ok(wait_for('the copy of victim', sub { copies_started() >= 2 && copies_waiting() == 1 }, 60),
	'the copy of victim started and is held');
my ($dout, $derr) = ('', '');
my $dropper = IPC::Run::start([ 'psql', '-XAtq', '-d', $conn, '-c', 'DROP TABLE public.victim' ],
	'>', \$dout, '2>', \$derr);
ok(wait_for('the DROP to wait for the copy', sub { $node->safe_psql($db, q{SELECT count(*) FROM pg_locks
		WHERE locktype = 'relation' AND relation = 'public.victim'::regclass AND NOT granted}) == 1 }, 60),
	'the DROP waits for the copy');
release_copies();
ok(wait_for('the drop to be seen', sub { slurp_file($log) =~ /table public\.victim was dropped/ }, 120),
	'the table dropped during its copy is marked dropped') or diag(slurp_file($log));
$dropper->finish;
# The DROP read from the stream can mark the table before the copy's job is retired.
ok(wait_for('the copy to end', sub { metric('backstop_base_copy_running') eq '0' }, 60),
	'no base copy running after the drop') or diag(slurp_file($log));
($rc, $secs, $diag) = checkpoint_seconds('public.busy');
is($rc, 0, 'the archiver carries on after the drop') or diag($diag);

# SIGTERM during a base copy: the copy is cancelled, the archiver stops promptly and cleanly.
hold_copies();
$node->safe_psql($db, qq{
	BEGIN;
	CREATE TABLE public.big2 (id int PRIMARY KEY, payload text);
	INSERT INTO public.big2 SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, $rows) g;
	COMMIT;
});
my $before = copies_started();
ok(wait_for('the copy of big2', sub { copies_started() > $before && copies_waiting() == 1 }, 60),
	'the copy of big2 started and is held');
my $t0 = time();
$h->signal('TERM');
{
	# A guard against a hang, not a speed test: the copy cannot end while the lock is held.
	local $SIG{ALRM} = sub { die "the archiver did not stop within 300 s of SIGTERM\n" };
	alarm(300);
	$h->finish;
	alarm(0);
}
my $stop_secs = time() - $t0;
is($node->safe_psql($db, qq{SELECT count(*) FROM pg_locks
	WHERE locktype = 'advisory' AND classid = 0 AND objid = $lock_key AND granted}), '1',
	'the archiver stopped while its copy was still held (it did not wait for the copy)');
release_copies();
$holder->quit;
diag(sprintf('stopped %.2f s after SIGTERM during a base copy', $stop_secs));
my $final = slurp_file($log);
like($final, qr/stopping: waiting for the base copy to stop/, 'the running copy was asked to stop');
unlike($final, qr/base copy of public\.big2 at/, 'the copy of big2 did not complete');
like($final, qr/stopped; confirmed/, 'orderly stop');
# A table check that read the table list before the DROP and set the publication after it
# fails with the server's ERROR and is tried again by the next check (tables_check_publication):
# a warning, not an error of the archiver.
my @errors = grep { /ERROR|FATAL|PANIC/
	  && !/WARNING: could not set up publication "backstop": query failed: ERROR:  relation "public\.victim" does not exist$/ }
  split /\n/, $final;
is_deeply(\@errors, [], 'no errors in the archiver log') or diag($final);
done_testing();
