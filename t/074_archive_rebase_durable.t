# 074_archive_rebase_durable.t — a rewriting column change (ALTER COLUMN ... TYPE ... USING) makes
# every point after it unrecoverable from the older base copy (its rows' old text form would not be
# exact): the archiver asks for a new base copy at the change itself, and records the request in
# the table's manifest before the change's position is confirmed, so that a stop before the copy
# is taken does not forget it.  info shows the refused window; the restart takes the copy at once;
# points after the copy recover exactly, points in the window are refused (exit 3), and a point
# before the change recovers exactly.
#
# "Stopped before the copy is taken" is made certain: the archiver runs with the test hook
# BACKSTOP_TEST_BASE_COPY_LOCK (doc/HACKING.md), so the re-base waits for an advisory lock that
# this test holds until the archiver is stopped.
use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;
use BackstopArchiver;

my $node = new_pg_node('rebase');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('rebase');
my $arch = BackstopArchiver->new(dir => $dir, name => 'archiver', conn => $conn, args => [ '--tables', 'public.a' ]);
my $storage = $arch->storage;
my $log = $arch->logfile;
my $lock_key = 74074;

sub lsn { return $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()') }

sub stored_manifest
{
	my $relid = $node->safe_psql($db, "SELECT 'public.a'::regclass::oid");
	my $f = "$dir/archiver/archive/tables/$relid/manifest.json";
	return -f $f ? decode_json(slurp_file($f)) : {};
}

$node->safe_psql($db, q{
	CREATE TABLE public.a (id int PRIMARY KEY, v int);
	INSERT INTO public.a SELECT g, g FROM generate_series(1, 20) g;
});
$arch->start(BACKSTOP_TEST_BASE_COPY_LOCK => $lock_key);
$arch->checkpoint_ok('public.a', 'first run');
$node->safe_psql($db, q{UPDATE public.a SET v = v + 100 WHERE id <= 5});
$arch->checkpoint_ok('public.a', 'first run');
my $sum_before = content_checksum($node, $db, 'public.a');
my $lsn_before = lsn();

# The re-base this change asks for is held by the test.
my $holder = $node->background_psql($db);
$holder->query_safe("SELECT pg_advisory_lock($lock_key)");
$node->safe_psql($db, q{ALTER TABLE public.a ALTER COLUMN v TYPE text USING (v * 10)::text || 'x'});
$node->safe_psql($db, q{
	INSERT INTO public.a VALUES (21, 'new');
	UPDATE public.a SET v = v || '!' WHERE id BETWEEN 6 AND 8;
	DELETE FROM public.a WHERE id = 9;
});
my $lsn_window = lsn();
ok(wait_for('the re-base request', sub { slurp_file($log) =~ /table public\.a: a column change at (\S+) needs a new base copy/ }),
	'the column change asks for a new base copy') or diag(slurp_file($log));
ok(wait_for('the copy to be held', sub { $node->safe_psql($db, qq{SELECT count(*) FROM pg_locks
	WHERE locktype = 'advisory' AND classid = 0 AND objid = $lock_key AND NOT granted}) == 1 }),
	'the re-base is running, held by the test');
ok(wait_for('the request in storage', sub { defined stored_manifest()->{rebase_requested_at} }),
	'the request is in the stored manifest') or diag(slurp_file($log));
my ($rc, $out, $err) = archiver_checkpoint($arch->listen, 'public.a', '2s');
isnt($rc, 0, 'no checkpoint answers a point in the refused window') or diag("$out\n$err");
like($out . $err, qr/new base copy/, 'the checkpoint says what it waits for') or diag("$out\n$err");
$arch->stop('first run (re-base not taken)');
$holder->query_safe("SELECT pg_advisory_unlock($lock_key)");
$holder->quit;

my $requested = stored_manifest()->{rebase_requested_at};
ok(defined $requested, 'the request survives the stop');
($rc, $out, $err) = run_backstop('info', '--storage', $storage, '--table', 'public.a');
like($out, qr/points from \Q$requested\E until the next base copy are refused/, 'info shows the refused window')
	or diag("$out\n$err");

# The restart takes the copy at once (nothing else asks for one).
my $copies = () = slurp_file($log) =~ /base cop(?:y|ies) done/g;
$arch->start;
ok(wait_for('the re-base', sub { (() = slurp_file($log) =~ /base cop(?:y|ies) done/g) > $copies }),
	'the restart takes the requested base copy') or diag(slurp_file($log));
$node->safe_psql($db, q{UPDATE public.a SET v = 'after' WHERE id = 1});
$arch->checkpoint_ok('public.a', 'second run');
my $sum_after = content_checksum($node, $db, 'public.a');
$arch->stop('second run');
ok(!defined stored_manifest()->{rebase_requested_at}, 'the request is cleared by the new base copy');
($rc, $out, $err) = run_backstop('info', '--storage', $storage, '--table', 'public.a');
unlike($out, qr/until the next base copy are refused/, 'info: no refused window any more') or diag($out);
like($out, qr/refused: +\S+ \.\. \S+ \(column "v" retyped/, 'info still lists the retyped column\'s window')
	or diag($out);

($rc, $out, $err) = $arch->recover($conn, 'public.a', 'public.a_latest', '--latest');
is($rc, 0, 'recover --latest') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.a_latest'), $sum_after, '--latest: exactly');
($rc, $out, $err) = $arch->recover($conn, 'public.a', 'public.a_before', '--to-lsn', $lsn_before);
is($rc, 0, 'a point before the change') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.a_before'), $sum_before, 'before the change: exactly');
($rc, $out, $err) = $arch->recover($conn, 'public.a', 'public.a_window', '--to-lsn', $lsn_window);
is($rc, 3, 'a point in the window before the new base copy is refused (exit 3)') or diag("$out\n$err");
like($err, qr/choose a point after a newer base copy/, 'saying why') or diag($err);

($rc, $out, $err) = run_backstop('verify', '--storage', $storage);
is($rc, 0, 'verify finds the archive clean') or diag("$out\n$err");

$node->stop;
done_testing();
