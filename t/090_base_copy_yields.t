# 090_base_copy_yields.t — the archiver's base copies give way to the tables' users.  A user's
# DROP TABLE of a partitioned table was aborted by PostgreSQL ("deadlock detected") because a
# background copy of its partitions held the parent's lock from one partition's copy while it
# waited for the next partition, which the user held.  Now each table is copied in its own
# transaction, waiting for its locks at most --base-lock-timeout (below deadlock_timeout): a copy
# that cannot lock its table is abandoned (nothing recorded), logged, and taken again later.
#
# Nothing is raced: the test holds the conflicting locks itself and waits for pg_locks and the
# archiver's log; the archiver's hooks BACKSTOP_TEST_TABLE_CHECK_LOCK (table checks wait while
# the test holds it), BACKSTOP_TEST_BASE_COPY_SNAPSHOT_LOCK (a copy waits between its snapshot and
# its lock) and BACKSTOP_TEST_BASE_COPY_LOCK (a copy waits, its table locked) decide when it
# looks at the tables and when a copy goes on (doc/HACKING.md).
# deadlock_timeout is 10 s here, so that the deadlock of the old code aborts the user's DROP
# every time (the user waits first), and the copy's lock timeout (2 s) is the one that ends.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $node = new_pg_node('bcyield', extra_conf => "deadlock_timeout = 10s\nlog_lock_waits = on\n");
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('bcyield');
my $storage = "file://$dir/archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";
my $check_key = 90090;
my $copy_key = 90091;
my $snap_key = 90092;
my $log = "$dir/archiver.log";

$node->safe_psql($db, q{
	CREATE TABLE public.anchor (id int PRIMARY KEY, v int);
	INSERT INTO public.anchor SELECT g, 0 FROM generate_series(1, 10) g;
	CREATE TABLE public.meas (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
	CREATE TABLE public.meas_1 PARTITION OF public.meas FOR VALUES FROM (1) TO (1000);
	CREATE TABLE public.meas_2 PARTITION OF public.meas FOR VALUES FROM (1000) TO (2000);
	INSERT INTO public.meas SELECT g, 'v' || g FROM generate_series(1, 60) g;
	INSERT INTO public.meas SELECT g, 'w' || g FROM generate_series(1000, 1020) g;
});

# The archiver; @extra: its options for this part of the test.
sub start_archiver
{
	my (@extra) = @_;
	local $ENV{BACKSTOP_TEST_TABLE_CHECK_LOCK} = $check_key;
	local $ENV{BACKSTOP_TEST_BASE_COPY_LOCK} = $copy_key;
	local $ENV{BACKSTOP_TEST_BASE_COPY_SNAPSHOT_LOCK} = $snap_key;
	my $h = kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', '--db', $conn, '--all-tables',
		  '--storage', $storage, '--data-dir', "$dir/data", '--listen', $listen, '--segment-age', '1s',
		  '--table-poll-interval', '200ms', '--base-lock-timeout', '2s', @extra ],
		'<', \undef, '>>', "$dir/archiver.out", '2>>', $log));
	ok(wait_for('the archiver', sub { (archiver_checkpoint($listen, 'public.meas_1', '5s'))[0] == 0 }, 60),
		'archiver running, public.meas_1 archived') or diag(slurp_file($log));
	return $h;
}

sub log_count
{
	my ($re) = @_;
	my @m = slurp_file($log) =~ /$re/g;
	return scalar @m;
}

sub advisory_waiting
{
	my ($key) = @_;
	return $node->safe_psql($db, qq{SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND classid = 0 AND objid = $key AND NOT granted});
}

# Locks of the archiver's base-copy connection on a relation (granted or waiting).
sub copy_locks
{
	my ($rel, $granted) = @_;
	return $node->safe_psql($db, qq{SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE a.application_name = 'backstop basecopy' AND l.locktype = 'relation'
		  AND l.relation = to_regclass('$rel') AND l.granted = $granted});
}

# ---- 1. A session takes the partitioned table's lock while the archiver re-bases a partition
# (a re-base as soon as a table's changes exceed 1 % of its base), after the copy's snapshot and
# before its lock (a transaction open before the snapshot holds the copy up in the snapshot's
# making, not in a lock: see below): the copy waits its lock timeout, gives way, and copies
# once the lock is gone.

my $h = start_archiver('--rebase-ratio', '1', '--rebase-min-interval', '0');
# No table check asks for the re-base before the changes are in; the copy waits between its
# snapshot and its lock for the test.
my $holder = $node->background_psql($db);
my $skipped = log_count(qr/table check skipped/);
$holder->query_safe("SELECT pg_advisory_lock($check_key), pg_advisory_lock($snap_key)");
ok(wait_for('a table check to be skipped', sub { log_count(qr/table check skipped/) > $skipped }, 60),
	'table checks wait for the test') or diag(slurp_file($log));
$node->safe_psql($db, q{INSERT INTO public.meas SELECT g, 'u' || g FROM generate_series(101, 600) g});
my ($rc, $cout, $err) = checkpoint_until($listen, 'public.meas_1', 120);
is($rc, 0, 'the changes that ask for a re-base of public.meas_1 are archived') or diag("$cout\n$err");
$holder->query_safe("SELECT pg_advisory_unlock($check_key)");
ok(wait_for('the re-base to have its snapshot', sub { advisory_waiting($snap_key) > 0 }, 60),
	'the re-base of public.meas_1 has its snapshot') or diag(slurp_file($log));

my $user = $node->background_psql($db, on_error_stop => 0);
$user->query_safe('BEGIN');
$user->query_safe('LOCK TABLE public.meas IN ACCESS EXCLUSIVE MODE');
$holder->query_safe("SELECT pg_advisory_unlock($snap_key)");

ok(wait_for('the copy to wait for the lock', sub { copy_locks('public.meas', 'false') > 0 }, 60),
	'the re-base of the partition waits for the lock on its parent') or diag(slurp_file($log));
ok(wait_for('the copy to give way', sub { slurp_file($log) =~ /base copy of public\.meas_1 yielded/ }, 60),
	'the copy gives way after its lock timeout, and says so') or diag(slurp_file($log));
like(slurp_file($log), qr/base copy of public\.meas_1 yielded \(nothing recorded, taken again later\): .*lock timeout/,
	'the log names the lock as the cause');
unlike(slurp_file($log), qr/base copy failed/, 'the job did not fail: the copy gave way');

# The session was neither cancelled nor held up: it goes on and drops a partition.
my ($out, $failed) = $user->query('SELECT 1');
is($out, '1', "the user's session still runs") or diag($user->{stderr});
$user->query_safe(q{INSERT INTO public.meas SELECT g, 'x' || g FROM generate_series(61, 70) g});
($out, $failed) = $user->query('DROP TABLE public.meas_2');
ok(!$failed, "the user's DROP TABLE of a partition succeeds") or diag($user->{stderr});
$user->query_safe('COMMIT');

ok(wait_for('the copy of public.meas_1', sub { slurp_file($log) =~ /base copy of public\.meas_1 at \S+: 570 rows/ }, 60),
	'public.meas_1 is copied once the lock is gone (with the rows committed meanwhile)') or diag(slurp_file($log));
ok(wait_for('public.meas_2 to be found dropped', sub { slurp_file($log) =~ /table public\.meas_2 was dropped/ }, 60),
	'the partition dropped meanwhile is handled as a dropped table') or diag(slurp_file($log));

# A recovery at a point after the copy is exact.
$node->safe_psql($db, q{UPDATE public.meas SET v = v || '!' WHERE id % 7 = 0; DELETE FROM public.meas WHERE id > 565});
($rc, $cout, $err) = checkpoint_until($listen, 'public.meas_1', 120);
is($rc, 0, 'public.meas_1 is checkpointable') or diag("$cout\n$err\n" . slurp_file($log));
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.meas_1',
	'--latest', '--into', 'public.meas_1_r');
is($rc, 0, 'recover --latest of public.meas_1') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.meas_1_r'), content_checksum($node, $db, 'public.meas_1'),
	'the recovered partition is exactly the live one');
$h->signal('TERM');
$h->finish;

# ---- 2. The deadlock of the incident: a session holds the partitions, the copy of one holds
# the parent and waits for its partition, past deadlock_timeout (its deadlock check found no
# cycle then); the session then drops the parent.  Before, PostgreSQL aborted the session's DROP
# ("deadlock detected"); now the copy has given way long before.  New tables (their first
# copies), no re-bases.

$h = start_archiver();
$holder->query_safe("SELECT pg_advisory_lock($snap_key)");
$node->safe_psql($db, q{
	CREATE TABLE public.ec (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
	CREATE TABLE public.ec_a PARTITION OF public.ec FOR VALUES FROM (1) TO (21);
	CREATE TABLE public.ec_b PARTITION OF public.ec FOR VALUES FROM (21) TO (41);
	INSERT INTO public.ec SELECT g, 'c' || g FROM generate_series(1, 40) g;
});
ok(wait_for('a copy of a partition of public.ec to have its snapshot', sub { advisory_waiting($snap_key) > 0 }, 60),
	'the first copy of a partition of public.ec has its snapshot') or diag(slurp_file($log));
my $user3 = $node->background_psql($db, on_error_stop => 0);
$user3->query_safe('BEGIN');
$user3->query_safe('LOCK TABLE public.ec_a, public.ec_b IN ACCESS EXCLUSIVE MODE');
my $server_log_from = -s $node->logfile;
$holder->query_safe("SELECT pg_advisory_unlock($snap_key)");
# The copy waits for a partition, holding the parent: until it gives way (now), or past the
# deadlock check of its wait, which PostgreSQL logs (log_lock_waits; before).
ok(wait_for('the copy to give way or to wait past deadlock_timeout', sub {
			slurp_file($log) =~ /base copy of public\.ec_[ab] yielded/ ||
			  substr(slurp_file($node->logfile), $server_log_from) =~ /still waiting for AccessShareLock on relation/ }, 60),
	'the copy waited for the partition the session holds') or diag(slurp_file($log));
$user3->{stdin} .= "DROP TABLE public.ec;\n\\echo drop3-finished\n";
$user3->query_until(qr/drop3-finished/, '');
unlike($user3->{stderr}, qr/ERROR/, "the session's DROP TABLE of the partitioned table succeeds (not a deadlock victim)")
  or diag($user3->{stderr});
$user3->{stderr} = '';
$user3->query_safe('COMMIT');
like(slurp_file($log), qr/base copy of public\.ec_[ab] yielded \(nothing recorded, taken again later\): .*lock timeout/,
	'the copy gave way after its lock timeout');

# ---- 3. The other order: the copy holds the parent (a partition's copy runs), the session
# holds the other partition and asks for the parent.  The session's DROP must succeed.

$holder->query_safe("SELECT pg_advisory_lock($copy_key)");
$node->safe_psql($db, q{
	CREATE TABLE public.ev (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
	CREATE TABLE public.ev_a PARTITION OF public.ev FOR VALUES FROM (1) TO (21);
	CREATE TABLE public.ev_b PARTITION OF public.ev FOR VALUES FROM (21) TO (41);
	INSERT INTO public.ev SELECT g, 'e' || g FROM generate_series(1, 40) g;
});
ok(wait_for('a partition copy to hold its locks', sub { copy_locks('public.ev', 'true') > 0 &&
		  copy_locks('public.ev_a', 'true') + copy_locks('public.ev_b', 'true') > 0 }, 60),
	'the copy of a partition holds its parent and itself, and waits for the test') or diag(slurp_file($log));
my $copied = copy_locks('public.ev_a', 'true') > 0 ? 'public.ev_a' : 'public.ev_b';
my $other = $copied eq 'public.ev_a' ? 'public.ev_b' : 'public.ev_a';

my $user2 = $node->background_psql($db, on_error_stop => 0);
my $user2_pid = $user2->query_safe('SELECT pg_backend_pid()');
$user2->query_safe('BEGIN');
# Sent, not waited for: before the fix the copy's lock on the parent took every partition's.
$user2->{stdin} .= "LOCK TABLE $other IN ACCESS EXCLUSIVE MODE;\n\\echo lock-taken\n";
ok(wait_for("the user's lock on $other", sub { $user2->{run}->pump_nb; $user2->{stdout} =~ /lock-taken/ }, 60),
	"the user locks the partition the copy has not locked: the copy locks no other partition");
$user2->{stdout} = '';
# Sent, not waited for: it waits for the copy's lock on the parent.
$user2->{stdin} .= "DROP TABLE public.ev;\n\\echo drop-finished\n";
$user2->{run}->pump_nb;
ok(wait_for("the user's DROP to wait for the parent", sub { $node->safe_psql($db,
		  "SELECT count(*) FROM pg_locks WHERE pid = $user2_pid AND NOT granted AND relation = to_regclass('public.ev')") > 0 }, 60),
	"the user's DROP waits for the copy's lock on the parent");
# The copy goes on: it would next lock the partition the user holds.
$holder->query_safe("SELECT pg_advisory_unlock($copy_key)");
$user2->query_until(qr/drop-finished/, '');
unlike($user2->{stderr}, qr/ERROR/, "the user's DROP TABLE of the partitioned table succeeds (no deadlock)")
  or diag($user2->{stderr});
$user2->{stderr} = '';
$user2->query_safe('COMMIT');
is($node->safe_psql($db, "SELECT count(*) FROM pg_class WHERE relname IN ('ev', 'ev_a', 'ev_b')"), '0',
	'the partitioned table and its partitions are gone');
ok(wait_for('public.ev_b to be found dropped', sub { slurp_file($log) =~ /table public\.ev_b was dropped/ }, 60),
	'the dropped partitions are handled as dropped tables') or diag(slurp_file($log));
unlike(slurp_file($log), qr/base copy failed/, 'no base-copy job failed: the copies gave way');

# The archiver goes on.
$node->safe_psql($db, 'UPDATE public.anchor SET v = v + 1');
($rc, $cout, $err) = checkpoint_until($listen, 'public.anchor', 120);
is($rc, 0, 'the archiver still archives') or diag("$cout\n$err\n" . slurp_file($log));

$user->quit;
$user2->quit;
$user3->quit;
$holder->quit;
$h->signal('TERM');
$h->finish;
$node->stop;
done_testing();
