# 085_base_copy_concurrent_ddl.t — a base copy whose snapshot is older than a rewrite of its table
# (ALTER COLUMN TYPE, TRUNCATE) committed before the copy locked it would read the new, rewritten
# file through the old snapshot and see no rows at all: an empty base that recovery trusts (t/080
# found it: an exact-looking table of 12 rows where there were 58).  Such a copy is refused and
# taken again; the table recovers exactly.  So is one whose table gained a column in that window
# (no rewrite: COPY would send rows of another shape than the snapshot's layout).
#
# The window between the snapshot and the lock is held open, not raced: the archiver runs with the
# test hook BACKSTOP_TEST_BASE_COPY_SNAPSHOT_LOCK (doc/HACKING.md), so a background copy waits,
# after importing its snapshot and before locking its table, for an advisory lock this test holds.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $node = new_pg_node('bcddl');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('bcddl');
my $storage = "file://$dir/archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";
my $lock_key = 82082;
my $log = "$dir/archiver.log";

$node->safe_psql($db, q{
	CREATE TABLE public.anchor (id int PRIMARY KEY, v int);
	INSERT INTO public.anchor SELECT g, 0 FROM generate_series(1, 10) g;
});
my $h = do
{
	local $ENV{BACKSTOP_TEST_BASE_COPY_SNAPSHOT_LOCK} = $lock_key;
	kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', '--db', $conn, '--all-tables',
		  '--storage', $storage, '--data-dir', "$dir/data", '--listen', $listen, '--segment-age', '1s',
		  '--table-poll-interval', '200ms' ],
		'<', \undef, '>', "$dir/archiver.out", '2>>', $log));
};
ok(wait_for('the archiver', sub { (archiver_checkpoint($listen, 'public.anchor', '5s'))[0] == 0 }, 60), 'archiver running')
  or diag(slurp_file($log));
# Taken once the first copies (at start-up, which wait for it too) are done.
my $holder = $node->background_psql($db);
$holder->query_safe("SELECT pg_advisory_lock($lock_key)");

sub copies_waiting
{
	return $node->safe_psql($db, qq{SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND classid = 0 AND objid = $lock_key AND NOT granted});
}

# A new table: its first base copy (background) takes its snapshot, then waits for the lock.
$node->safe_psql($db, q{
	CREATE TABLE public.victim (id int PRIMARY KEY, v int);
	INSERT INTO public.victim SELECT g, g FROM generate_series(1, 50) g;
});
ok(wait_for('the copy of public.victim to hold its snapshot', sub { copies_waiting() > 0 }, 60),
	'the base copy has its snapshot and waits before locking the table') or diag(slurp_file($log));

# A rewrite committed inside the window, then row changes after it.
my $before = $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()');
my $sum_before = content_checksum($node, $db, 'public.victim');
$node->safe_psql($db, q{ALTER TABLE public.victim ALTER COLUMN v TYPE text USING (v * 10)::text || 'x'});
$node->safe_psql($db, q{INSERT INTO public.victim SELECT g, 'n' || g FROM generate_series(51, 55) g});
$holder->query_safe("SELECT pg_advisory_unlock($lock_key)");
$holder->quit;

ok(wait_for('the refused copy to be logged', sub { slurp_file($log) =~ /the table was rewritten \(ALTER TABLE\) after the copy's snapshot/ }, 60),
	'the copy that would have seen the rewritten table empty is refused') or diag(slurp_file($log));
my ($rc, $out, $err) = checkpoint_until($listen, 'public.victim', 120);
is($rc, 0, 'a later copy makes public.victim checkpointable') or diag("$out\n$err\n" . slurp_file($log));

($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.victim',
	'--latest', '--into', 'public.victim_r');
is($rc, 0, 'recover --latest of public.victim') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.victim_r'), content_checksum($node, $db, 'public.victim'),
	'exactly the table (55 rows), not a copy of an empty snapshot');
# Before the rewrite: the 50 rows, or a refusal (no base copy that old), never an empty table.
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.victim',
	'--to-lsn', $before, '--into', 'public.victim_b');
if ($rc == 0)
{
	is(content_checksum($node, $db, 'public.victim_b'), $sum_before, 'before the rewrite: exactly its 50 rows');
}
else
{
	like($err, qr/outside the recovery window|before/, 'before the rewrite: refused, the first base copy is later') or diag($err);
}
unlike(slurp_file($log), qr/base copy of public\.victim at \S+: 0 rows/, 'no empty base copy of public.victim was stored');

# A column dropped and added again under its name (the same count, names and types; a new
# attribute number) inside the window: COPY would read the old rows through the snapshot with
# the new column, all NULL, for a point where it held values.  Refused, taken again (and then
# taken: a domain column, which a query reports as its base type, is no difference).
$holder = $node->background_psql($db);
$holder->query_safe("SELECT pg_advisory_lock($lock_key)");
my $waiting = copies_waiting();
$node->safe_psql($db, q{
	CREATE DOMAIN public.posint AS int CHECK (VALUE > 0);
	CREATE TABLE public.victim2 (id int PRIMARY KEY, v text, w int, d public.posint);
	INSERT INTO public.victim2 SELECT g, 'v' || g, g * 2, g FROM generate_series(1, 40) g;
});
ok(wait_for('the copy of public.victim2 to hold its snapshot', sub { copies_waiting() > $waiting }, 60),
	'victim2: the base copy has its snapshot and waits before locking the table') or diag(slurp_file($log));
my $before2 = $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()');
my $sum_before2 = content_checksum($node, $db, 'public.victim2');
my $refusals = () = slurp_file($log) =~ /its columns changed \(ALTER TABLE\) after the copy's snapshot/g;
$node->safe_psql($db, q{ALTER TABLE public.victim2 DROP COLUMN w; ALTER TABLE public.victim2 ADD COLUMN w int});
$node->safe_psql($db, q{UPDATE public.victim2 SET w = -id WHERE id <= 5});
$holder->query_safe("SELECT pg_advisory_unlock($lock_key)");
$holder->quit;
ok(wait_for('the refused copy to be logged', sub { my @m = slurp_file($log) =~ /its columns changed \(ALTER TABLE\) after the copy's snapshot/g; @m > $refusals }, 60),
	'victim2: the copy whose column was dropped and added again is refused') or diag(slurp_file($log));
($rc, $out, $err) = checkpoint_until($listen, 'public.victim2', 120);
is($rc, 0, 'victim2: a later copy makes it checkpointable') or diag("$out\n$err\n" . slurp_file($log));
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.victim2',
	'--latest', '--into', 'public.victim2_r');
is($rc, 0, 'victim2: recover --latest') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.victim2_r'), content_checksum($node, $db, 'public.victim2'), 'victim2: exactly the table');
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.victim2',
	'--to-lsn', $before2, '--into', 'public.victim2_b');
if ($rc == 0)
{
	is(content_checksum($node, $db, 'public.victim2_b'), $sum_before2, 'victim2: before the DDL: its rows with their values of w');
}
else
{
	like($err, qr/outside the recovery window|before/, 'victim2: before the DDL: refused, the first base copy is later') or diag($err);
}

# A column added inside the window (no rewrite: the same file, rows of another shape).
$holder = $node->background_psql($db);
$holder->query_safe("SELECT pg_advisory_lock($lock_key)");
$node->safe_psql($db, q{
	CREATE TABLE public.grower (id int PRIMARY KEY, v int);
	INSERT INTO public.grower SELECT g, g FROM generate_series(1, 30) g;
});
ok(wait_for('the copy of public.grower to hold its snapshot', sub { copies_waiting() > 0 }, 60),
	'the copy of public.grower has its snapshot and waits') or diag(slurp_file($log));
$node->safe_psql($db, q{ALTER TABLE public.grower ADD COLUMN w text});
$node->safe_psql($db, q{UPDATE public.grower SET w = 'w' || id WHERE id <= 10});
$holder->query_safe("SELECT pg_advisory_unlock($lock_key)");
$holder->quit;
ok(wait_for('the refused copy to be logged', sub { slurp_file($log) =~ /base copy of "?public"?\.\"?grower"?: its columns changed \(ALTER TABLE\) after the copy's snapshot/ }, 60),
	'the copy whose rows would not match its layout is refused') or diag(slurp_file($log));
($rc, $out, $err) = checkpoint_until($listen, 'public.grower', 120);
is($rc, 0, 'a later copy makes public.grower checkpointable') or diag("$out\n$err\n" . slurp_file($log));
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.grower',
	'--latest', '--into', 'public.grower_r');
is($rc, 0, 'recover --latest of public.grower') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.grower_r'), content_checksum($node, $db, 'public.grower'), 'exact');

$h->signal('TERM');
$h->finish;
$node->stop;
done_testing();
