# 066_archive_slot_lost.t — the archiver's slot invalidated while it runs (max_slot_wal_keep_size
# exceeded, wal_status = lost): the changes it has not received are gone for good, so retrying
# cannot help.  The archiver must store what it did receive, then stop with a clear error and its
# own exit code (4), which the systemd unit lists in RestartPreventExitStatus; a restart on the lost
# slot fails the same way.
#
# The invalidation is real and certain: the archiver is held with SIGSTOP (so it confirms nothing
# and the slot's restart_lsn stays put), the test writes WAL across several segments and runs
# CHECKPOINT, which invalidates the slot (the server terminates the walsender to do so); the test
# checks wal_status = 'lost' before it lets the archiver go on with SIGCONT.
use strict;
use warnings;

use IPC::Run;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

# 1MB is less than one WAL segment: any slot behind the current segment is invalidated at the
# next checkpoint.
my $node = new_pg_node('slotlost', extra_conf => "max_slot_wal_keep_size = 1MB\nwal_keep_size = 0\n");
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('slotlost');
my $storage = "file://$dir/archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";
my $log = "$dir/archiver.log";
my @args = ('--db', $conn, '--tables', 'public.t', '--storage', $storage, '--data-dir', "$dir/data",
	'--listen', $listen, '--segment-age', '1h', '--table-poll-interval', '1s');

my $pid;
END { kill 'KILL', $pid if $pid && kill(0, $pid); }

sub metric
{
	my ($name) = @_;
	my $m = '';
	IPC::Run::run([ 'curl', '-s', "http://$listen/metrics" ], '>', \$m);
	return $m =~ /^\Q$name\E (\S+)$/m ? $1 : undef;
}

sub lsn_num { my ($hi, $lo) = split m{/}, $_[0]; return hex($hi) * 2**32 + hex($lo) }

$node->safe_psql($db, q{
	CREATE TABLE public.t (id int PRIMARY KEY, v text);
	INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 100) g;
	CREATE TABLE public.junk (x text);
});
$pid = spawn_archiver($log, @args);
ok(wait_for('the archiver', sub { (archiver_checkpoint($listen, 'public.t', '5s'))[0] == 0 }, 60), 'archiver running')
  or diag(slurp_file($log));

# Changes received but not yet sealed (segment age 1 h): they must still be stored at the stop.
$node->safe_psql($db, q{UPDATE public.t SET v = 'received' WHERE id <= 10; DELETE FROM public.t WHERE id > 90;});
my $sum = content_checksum($node, $db, 'public.t');
my $lsn = lsn_num($node->safe_psql($db, 'SELECT pg_current_wal_lsn()'));
ok(wait_for('the changes to be received', sub { (metric('backstop_received_lsn') // 0) >= $lsn }), 'changes received');
ok((metric('backstop_open_segment_bytes') // 0) > 0, 'and still open (not sealed yet)');

kill 'STOP', $pid;
for (1 .. 3)
{
	$node->safe_psql($db, q{INSERT INTO public.junk SELECT repeat('x', 1000) FROM generate_series(1, 100); SELECT pg_switch_wal();});
}
$node->safe_psql($db, 'CHECKPOINT');
is($node->safe_psql($db, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'backstop'"), 'lost',
	'the slot is invalidated (wal_status = lost)');
kill 'CONT', $pid;

my $status;
ok(wait_for('the archiver to exit', sub { my $r = waitpid($pid, POSIX::WNOHANG()); $status = $? if $r == $pid; $r == $pid }, 90),
	'the archiver stops by itself') or diag(slurp_file($log));
$pid = undef;
is(defined $status ? $status >> 8 : undef, 4, 'with exit code 4 (slot lost)');
my $text = slurp_file($log);
like($text, qr/replication slot "backstop" was invalidated while the archiver ran \(wal_status = lost: max_slot_wal_keep_size exceeded\)/,
	'a clear error naming the slot and the cause');
unlike($text, qr/reconnecting in/, 'no reconnection attempts');

my ($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.t',
	'--latest', '--into', 'public.t_r', '--no-indexes');
is($rc, 0, 'recover --latest') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.t_r'), $sum, 'what was received before the loss was stored');
($rc, $out, $err) = run_backstop('verify', '--storage', $storage);
is($rc, 0, 'verify') or diag("$out\n$err");

# A restart on the lost slot fails the same way, at once.
($rc, $out, $err) = run_backstop({ timeout => 60 }, 'archive', @args);
is($rc, 4, 'a restart on the lost slot exits 4 too') or diag($err);
like($err, qr/slot "backstop" was invalidated \(wal_status = lost/, 'saying why');

# The systemd unit does not restart into it.
like(slurp_file("$ENV{BACKSTOP_SRCDIR}/contrib/systemd/backstop-archive.service"), qr/^RestartPreventExitStatus=.*\b4\b/m,
	'the systemd unit does not restart on exit code 4');

$node->stop;

# PostgreSQL 18 also invalidates a slot left inactive longer than idle_replication_slot_timeout
# (at a checkpoint): invalidation_reason = idle_timeout, which wal_status does not show.  The
# archiver must refuse it as lost (exit 4), not fail to stream from it.
SKIP:
{
	skip 'idle_replication_slot_timeout is new in PostgreSQL 18', 4 if pg_major() < 18;
	my $idle = new_pg_node('idle', extra_conf => "idle_replication_slot_timeout = 1min\n");
	$idle->safe_psql($db, q{
		CREATE TABLE public.t (id int PRIMARY KEY, v text);
		SELECT pg_create_logical_replication_slot('idle', 'pgoutput');
	});
	ok(wait_for('the slot to be inactive for over a minute', sub {
		$idle->safe_psql($db, "SELECT inactive_since < now() - interval '65 seconds' FROM pg_replication_slots "
			. "WHERE slot_name = 'idle'") eq 't';
	}, 180), 'the slot has been inactive for over a minute');
	$idle->safe_psql($db, 'CHECKPOINT');
	is($idle->safe_psql($db, "SELECT invalidation_reason FROM pg_replication_slots WHERE slot_name = 'idle'"),
		'idle_timeout', 'a checkpoint invalidates it (invalidation_reason = idle_timeout)');
	($rc, $out, $err) = run_backstop({ timeout => 60 }, 'archive', '--db', node_connstr($idle, $db), '--slot', 'idle',
		'--tables', 'public.t', '--storage', "file://$dir/idle", '--data-dir', "$dir/idle-data", '--listen', $listen);
	is($rc, 4, 'the archiver exits 4 on it (slot lost)') or diag($err);
	like($err, qr/slot "idle" was invalidated \(invalidation_reason = idle_timeout\)/, 'saying why');
	$idle->stop;
}
done_testing();
