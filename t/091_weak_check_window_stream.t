# 091_weak_check_window_stream.t — where schema changes are not captured (--ddl-capture off), a
# table check that reads the catalog after a column change committed but before the stream has
# delivered it opens a window of an unknown schema change.  Only a new base copy ended that
# window, so when the copy came late (a loaded machine, or a copy giving way to users' locks)
# every point up to it was refused, although the stream had meanwhile archived rows under the
# new columns: t/080 (seed 20261202, PostgreSQL 14, a loaded machine) counted such refusals as
# BAD REFUSAL.  Now the first row archived that commits after the check's position ends the
# window when the stream's columns there are those the check saw and nothing can have been
# dropped and added again under an old name (relnatts); otherwise the window stays open until
# the copy, and recovery keeps refusing (a column dropped and added again looks the same in the
# stream, and its old values would be wrong).
#
# Held, not raced: the walsender is stopped (SIGSTOP) while the change commits and a table check
# sees it; base copies wait on the test hook BACKSTOP_TEST_BASE_COPY_LOCK until the end.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $node = new_pg_node('wcheck');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('wcheck');
my $storage = "file://$dir/archive";
my $listen = '127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port();
my $copy_key = 91091;
my $log = "$dir/archiver.log";
my $stopped_ws;		# a walsender this test stopped: continued whatever happens
END { kill 'CONT', $stopped_ws if $stopped_ws }

sub log_count { my ($re) = @_; my @m = slurp_file($log) =~ /$re/g; return scalar @m }
sub lsn_num { my ($l) = @_; my ($h, $lo) = split m{/}, $l; return hex($h) * 2**32 + hex($lo) }

# The table's entry in `backstop info --json` (undef before its manifest is stored).
sub info_of
{
	my ($name) = @_;
	my ($rc, $out) = run_backstop('info', '--storage', $storage, '--json');
	return undef unless $rc == 0;
	my ($t) = grep { $_->{schema} eq 'public' && $_->{name} eq $name } @{ decode_json($out)->{tables} };
	return $t;
}

$node->safe_psql($db, q{
	CREATE TABLE public.w (id int PRIMARY KEY, v text, x int);
	INSERT INTO public.w SELECT g, 'v' || g, g FROM generate_series(1, 30) g;
	CREATE TABLE public.w2 (id int PRIMARY KEY, v text, y int);
	INSERT INTO public.w2 SELECT g, 'v' || g, g * 7 FROM generate_series(1, 20) g;
});
my $pid = do
{
	local $ENV{BACKSTOP_TEST_BASE_COPY_LOCK} = $copy_key;
	spawn_archiver($log, '--db', $conn, '--storage', $storage, '--data-dir', "$dir/data", '--slot', 's_wcheck',
		'--publication', 'p_wcheck', '--listen', $listen, '--segment-age', '1s', '--table-poll-interval', '200ms',
		'--all-tables', '--ddl-capture', 'off');
};
END { if ($pid) { kill 'KILL', $pid; waitpid($pid, 0) } }
# A checkpoint runs a table check that finds the archived columns: the catalog's relnatts is known.
ok(wait_for('the archiver', sub { (archiver_checkpoint($listen, 'public.w', '5s'))[0] == 0
			&& (archiver_checkpoint($listen, 'public.w2', '5s'))[0] == 0 }, 90), 'archiver running, both tables checkpointed')
  or diag(slurp_file($log));

# Base copies held from here on: only the stream can end a window.
my $holder = $node->background_psql($db);
$holder->query_safe("SELECT pg_advisory_lock($copy_key)");

# One scenario: $ddl commits while the stream is held, a table check sees it, then a row
# change commits after the check.  Returns (the point right after the DDL, the point after the
# row change, the table's state there).
sub scenario
{
	my ($table, $ddl, $row) = @_;
	my $ws = $node->safe_psql($db, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 's_wcheck' AND active");
	ok($ws =~ /^\d+$/, "$table: the archiver's walsender ($ws)");
	kill 'STOP', $ws;
	$stopped_ws = $ws;
	my $n = log_count(qr/table \Q$table\E: its columns in the catalog differ/);
	my $p0 = $node->safe_psql($db, "$ddl; SELECT pg_current_wal_insert_lsn()");
	my $state0 = state_of($node, $db, $table);
	ok(wait_for('a table check to see the change', sub { log_count(qr/table \Q$table\E: its columns in the catalog differ/) > $n }, 60),
		"$table: a table check sees the change before the stream has delivered it") or diag(slurp_file($log));
	my $p1 = $node->safe_psql($db, "$row; SELECT pg_current_wal_insert_lsn()");
	my $state1 = state_of($node, $db, $table);
	kill 'CONT', $ws;
	$stopped_ws = undef;
	ok(wait_for('the row change to be stored', sub { my $t = info_of($table =~ s/^public\.//r);
			$t && lsn_num($t->{archived_to}) >= lsn_num($p1) }, 90),
		"$table: the stream has stored the row change after the check") or diag(slurp_file($log));
	return ($p0, $state0, $p1, $state1);
}

# 1. A column dropped: the stream's columns after the check are the check's, relnatts as known.
my ($p0, $state0, $p1, $state1) = scenario('public.w', 'ALTER TABLE public.w DROP COLUMN x',
	"INSERT INTO public.w VALUES (31, 'v31')");
like(slurp_file($log), qr/table public\.w: the stream shows the columns its table check found \(at \S+\) from \S+ on: the window of their unknown change ends there/,
	'w: the row after the check ends the window') or diag(slurp_file($log));
my $w = info_of('w');
ok(@{ $w->{schema_unknown} } && !grep({ !defined $_->{to_lsn} } @{ $w->{schema_unknown} }),
	'w: info shows no open window of an unknown schema change') or diag(explain($w->{schema_unknown}));
my ($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.w',
	'--to-lsn', $p1, '--into', 'public.w_p1');
is($rc, 0, 'w: the point after the row change is recovered before any new base copy') or diag("$out\n$err");
is(state_of($node, $db, 'public.w_p1'), $state1, 'w: exactly the table then');
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.w',
	'--to-lsn', $p0, '--into', 'public.w_p0');
is($rc, 1, 'w: the point right after the drop is refused');
like($err, qr/changed at an unknown point between LSN \S+ and LSN \S+/, 'w: as inside the window of the unknown change')
  or diag("$out\n$err");

# 2. A column dropped and one dropped and added again under its name: the stream shows the
# check's columns, but relnatts grew by one more than the names it added.  The old values of y
# are gone; the window must stay open (ending it would recover them: a wrong table).
my ($q0, $qstate0, $q1, $qstate1) = scenario('public.w2',
	'ALTER TABLE public.w2 DROP COLUMN v, DROP COLUMN y; ALTER TABLE public.w2 ADD COLUMN y int',
	'INSERT INTO public.w2 VALUES (21, 147)');
like(slurp_file($log), qr/table public\.w2: the stream does not show the columns its table check found \(at \S+\): the window of their unknown change stays open until a new base copy/,
	'w2: the window stays open') or diag(slurp_file($log));
unlike(slurp_file($log), qr/table public\.w2: the stream shows the columns/, 'w2: the stream did not end it');
my $w2 = info_of('w2');
ok(grep({ !defined $_->{to_lsn} } @{ $w2->{schema_unknown} }), 'w2: info shows the open window')
  or diag(explain($w2->{schema_unknown}));
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.w2',
	'--to-lsn', $q1, '--into', 'public.w2_q1');
is($rc, 1, 'w2: the point after the row change is refused (y was added again: its values are not the archived ones)')
  or diag("$out\n$err");
like($err, qr/unknown point/, 'w2: as inside the window of the unknown change') or diag("$out\n$err");

# The base copies go on: the latest points are exact, w2's window ends at its copy.
$holder->query_safe("SELECT pg_advisory_unlock($copy_key)");
$holder->quit;
for my $table ('public.w', 'public.w2')
{
	my ($crc, $cout) = checkpoint_until($listen, $table, 120);
	is($crc, 0, "$table: checkpoint after the base copies") or diag("$cout\n" . slurp_file($log));
	(my $into = $table) =~ s/$/_l/;
	($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', $table,
		'--latest', '--into', $into);
	is($rc, 0, "$table: recover --latest") or diag("$out\n$err");
	is(state_of($node, $db, $into), state_of($node, $db, $table), "$table: the latest point is exact");
}
like(slurp_file($log), qr/table public\.w2: the base copy at \S+ ends the window of an unknown schema change/,
	'w2: its base copy ends the window');

kill 'TERM', $pid;
waitpid($pid, 0);
$pid = undef;
$node->stop;
done_testing();
