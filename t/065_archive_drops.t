# 065_archive_drops.t — a table dropped while the archiver is stopped, or while it is still catching
# up a backlog: the changes committed before the DROP still arrive in the stream (decoding reads the
# catalog as it was), so they must be archived, and the table marked dropped only once the stream has
# passed the drop.  `recover --latest` then gives exactly the table as it was before the DROP, `info`
# says dropped (with a dropped_at_lsn after the DROP), points after the table's last change are
# refused, and verify finds the archive clean.
#
# "Behind the drop" is made certain, not likely: the stopped archiver cannot read anything, and for
# the backlog the walsender serving the archiver is held with SIGSTOP while the changes, the DROP
# and the archiver's table check happen, so the check sees the table gone while the stream has not
# delivered its last changes yet.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;
use BackstopArchiver;

my $node = new_pg_node('drops', extra_conf => "max_wal_size = 1GB\n");
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('drops');

sub lsn { return $node->safe_psql($db, 'SELECT pg_current_wal_lsn()') }
sub lsn_gt { my ($x, $y) = @_; return $node->safe_psql($db, "SELECT '$x'::pg_lsn > '$y'::pg_lsn") eq 't' }

# DROP TABLE, returning the WAL position inside its transaction just before the commit (the
# commit record lies after it) and the position after it.
sub drop_table
{
	my ($table) = @_;
	my $in = $node->safe_psql($db, "BEGIN; DROP TABLE $table; SELECT pg_current_wal_insert_lsn(); COMMIT;");
	return ($in, lsn());
}

# One archiver configuration per case: its own storage, slot, publication and port.

# info, recover --latest, a point after the last change, verify.
sub check_dropped
{
	my ($c, $table, $sum, $in_drop, $lsn_drop, $what) = @_;
	my ($rc, $out, $err) = run_backstop('info', '--storage', $c->{storage}, '--table', $table, '--json');
	is($rc, 0, "$what: info") or diag("$out\n$err");
	like($out, qr/"status"\s*:\s*"dropped"/, "$what: info says dropped");
	my ($dropped_at) = $out =~ /"dropped_at_lsn"\s*:\s*"([0-9A-F]+\/[0-9A-F]+)"/;
	ok(defined $dropped_at && lsn_gt($dropped_at, $in_drop),
		"$what: dropped_at_lsn (" . ($dropped_at // 'none') . ") is after the DROP's commit (after $in_drop)");
	($rc, $out, $err) = run_backstop('info', '--storage', $c->{storage}, '--table', $table);
	like($out, qr/dropped after \S+ and before \S+: recoverable up to its last change/,
		"$what: info says between which positions it was dropped") or diag($out);

	(my $into = $table) =~ s/\./.r_latest_/;
	($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $c->{storage}, '--table', $table,
		'--latest', '--into', $into, '--no-indexes');
	is($rc, 0, "$what: recover --latest") or diag("$out\n$err");
	is(content_checksum($node, $db, $into), $sum, "$what: --latest gives exactly the table before the DROP");

	# After the last change the table may already be gone: the archive does not vouch for it.
	($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $c->{storage}, '--table', $table,
		'--to-lsn', $lsn_drop, '--into', "${into}_after", '--no-indexes');
	is($rc, 1, "$what: a point after the DROP is refused") or diag("$out\n$err");
	like($err, qr/the table was dropped after \S+ and before \S+/, "$what: saying why");

	($rc, $out, $err) = run_backstop('verify', '--storage', $c->{storage});
	is($rc, 0, "$what: verify finds the archive clean") or diag("$out\n$err");
}

# 1. Dropped while the archiver was stopped, with --all-tables and with --tables.
for my $mode ('all', 'list')
{
	my $t = "a_$mode";
	$node->safe_psql($db, qq{
		CREATE TABLE public.$t (id int PRIMARY KEY, v text);
		INSERT INTO public.$t SELECT g, 'v' || g FROM generate_series(1, 10) g;
		CREATE TABLE public.keep_$mode (id int PRIMARY KEY);
	});
	my $c = BackstopArchiver->new(dir => $dir, name => "stopped_$mode", conn => $conn, args => [ $mode eq 'all' ? '--all-tables' : ('--tables', "public.$t,public.keep_$mode") ]);
	$c->start;
	$c->checkpoint_ok("public.$t", "stopped/$mode");
	$c->stop("stopped/$mode, first run");

	# Five changes the archiver has not received, then the DROP, all while it is stopped.
	$node->safe_psql($db, qq{
		INSERT INTO public.$t VALUES (11, 'x'), (12, 'y'), (13, 'z');
		UPDATE public.$t SET v = 'changed' WHERE id = 1;
		DELETE FROM public.$t WHERE id = 2;
	});
	my $sum = content_checksum($node, $db, "public.$t");
	my ($in_drop, $lsn_drop) = drop_table("public.$t");

	$c->start;
	ok(wait_for('the drop to be found', sub { $c->log_has(qr/table public\.$t was dropped while the archiver was stopped/) }),
		"stopped/$mode: the restart finds the table dropped") or diag($c->log);
	ok(wait_for('the drop to be recorded', sub { $c->log_has(qr/table public\.$t was dropped \(after \S+, before \S+\)/) }, 90),
		"stopped/$mode: marked dropped once the stream has passed the drop") or diag($c->log);
	$c->checkpoint_ok("public.keep_$mode", "stopped/$mode");
	$c->stop("stopped/$mode, second run");
	check_dropped($c, "public.$t", $sum, $in_drop, $lsn_drop, "stopped/$mode");
}

# 2. Dropped while the archiver catches up a backlog: the walsender is held, so the table check
# sees the drop while the stream is behind the table's last changes.
{
	$node->safe_psql($db, q{
		CREATE TABLE public.c (id int PRIMARY KEY, v text);
		INSERT INTO public.c SELECT g, 'v' || g FROM generate_series(1, 10) g;
		CREATE TABLE public.big (id int PRIMARY KEY, payload text);
	});
	my $c = BackstopArchiver->new(dir => $dir, name => 'backlog', conn => $conn, args => [ '--all-tables' ]);
	$c->start;
	$c->checkpoint_ok('public.c', 'backlog');
	my $walsender = $node->safe_psql($db, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 's_backlog'");
	ok($walsender =~ /^\d+$/, "backlog: the archiver's walsender is $walsender");
	kill 'STOP', $walsender;

	# A backlog, the table's last five changes, then the DROP.
	for my $i (0 .. 4)
	{
		my $from = $i * 20000 + 1;
		$node->safe_psql($db, "INSERT INTO public.big SELECT g, repeat(md5(g::text), 4) FROM generate_series($from, $from + 19999) g");
	}
	my $before_changes = lsn();
	$node->safe_psql($db, q{
		INSERT INTO public.c VALUES (11, 'x'), (12, 'y'), (13, 'z');
		UPDATE public.c SET v = 'changed' WHERE id = 1;
		DELETE FROM public.c WHERE id = 2;
	});
	my $sum = content_checksum($node, $db, 'public.c');
	my $sum_big = content_checksum($node, $db, 'public.big');
	my ($in_drop, $lsn_drop) = drop_table('public.c');
	ok(wait_for('the table check to see the drop', sub { $c->log_has(qr/table public\.c was dropped/) }),
		'backlog: the table check sees the drop while the stream is held') or diag($c->log);
	my $m = '';
	IPC::Run::run([ 'curl', '-s', "http://$c->{listen}/metrics" ], '>', \$m);
	my ($received) = $m =~ /^backstop_received_lsn (\d+)$/m;
	my ($hi, $lo) = split m{/}, $before_changes;
	ok(defined $received && $received < hex($hi) * 2**32 + hex($lo),
		"backlog: the stream had not reached the table's last changes then") or diag($m);
	kill 'CONT', $walsender;

	ok(wait_for('the drop to be recorded', sub { $c->log_has(qr/table public\.c was dropped \(after \S+, before \S+\)/) }, 120),
		'backlog: marked dropped once the stream has passed the drop') or diag($c->log);
	$c->checkpoint_ok('public.big', 'backlog');
	$c->stop('backlog');
	check_dropped($c, 'public.c', $sum, $in_drop, $lsn_drop, 'backlog');
	my ($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $c->{storage}, '--table', 'public.big',
		'--latest', '--into', 'public.big_r', '--no-indexes');
	is($rc, 0, 'backlog: the backlog table recovers') or diag("$out\n$err");
	is(content_checksum($node, $db, 'public.big_r'), $sum_big, 'backlog: exactly');
}

# 3. Changes and the DROP in one transaction: the changes were never a state of the table (it
# is gone when they commit), so --latest gives the state before that transaction and its window
# ends before the transaction's commit.
{
	$node->safe_psql($db, q{
		CREATE TABLE public.s (id int PRIMARY KEY, v text);
		INSERT INTO public.s SELECT g, 'v' || g FROM generate_series(1, 10) g;
		CREATE TABLE public.keep_s (id int PRIMARY KEY);
	});
	my $c = BackstopArchiver->new(dir => $dir, name => 'same_txn', conn => $conn, args => [ '--tables', 'public.s,public.keep_s' ]);
	$c->start;
	$c->checkpoint_ok('public.s', 'same txn');
	$node->safe_psql($db, q{UPDATE public.s SET v = 'last' WHERE id = 3});
	$c->checkpoint_ok('public.s', 'same txn');
	my $sum = content_checksum($node, $db, 'public.s');
	my $in_drop = $node->safe_psql($db, q{
		BEGIN;
		INSERT INTO public.s VALUES (11, 'x');
		UPDATE public.s SET v = 'changed' WHERE id = 1;
		DELETE FROM public.s WHERE id = 2;
		DROP TABLE public.s;
		SELECT pg_current_wal_insert_lsn();
		COMMIT;
	});
	my $lsn_drop = lsn();
	ok(wait_for('the drop to be recorded', sub { $c->log_has(qr/table public\.s was dropped \(after \S+, before \S+\)/) }, 90),
		'same txn: marked dropped once the stream has passed the drop') or diag($c->log);
	$c->checkpoint_ok('public.keep_s', 'same txn');
	$c->stop('same txn');
	my ($rc, $out, $err) = run_backstop('info', '--storage', $c->{storage}, '--table', 'public.s', '--json');
	like($out, qr/"status"\s*:\s*"dropped"/, 'same txn: info says dropped');
	($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $c->{storage}, '--table', 'public.s',
		'--to-lsn', $lsn_drop, '--into', 'public.s_after', '--no-indexes');
	is($rc, 1, 'same txn: a point after the DROP is refused') or diag("$out\n$err");
	($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $c->{storage}, '--table', 'public.s',
		'--latest', '--into', 'public.s_latest', '--no-indexes');
	is($rc, 0, 'same txn: recover --latest') or diag("$out\n$err");
	# The DROP's own position comes from the stream (DDL capture): the dropping transaction's
	# changes are not a state the table ever had.
	is($rc == 0 ? content_checksum($node, $db, 'public.s_latest') : '', $sum,
		'same txn: --latest gives the table before the dropping transaction, without its changes');
	($rc, $out, $err) = run_backstop('verify', '--storage', $c->{storage});
	is($rc, 0, 'same txn: verify finds the archive clean') or diag("$out\n$err");
}

$node->stop;
done_testing();
