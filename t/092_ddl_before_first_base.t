# 092_ddl_before_first_base.t — a column change the stream reads (schema changes captured) while a
# new table's first base copy is taken but not yet added: the copy's snapshot is older than the
# change, and the table had no layout yet.  The change was ignored ("the first base copy records
# one"), so the copy's columns stood for every later point: t/080 (seed 13) recovered a table
# without its added column, exit 0.  Now the layout is recorded from the change, the copy goes
# before it, and a column the copy lacks is known only from a stored missing value (a constant
# default); otherwise the points after it are refused until a newer copy.
#
# Held, not raced: the test hook BACKSTOP_TEST_BASE_JOB_END_LOCK holds the job after its copy,
# while the table is changed and the stream reads the change.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $node = new_pg_node('ddlfirst');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('ddlfirst');
my $storage = "file://$dir/archive";
my $listen = '127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port();
my $log = "$dir/archiver.log";

sub log_count { my ($re) = @_; my @m = slurp_file($log) =~ /$re/g; return scalar @m }
$node->safe_psql($db, 'CREATE TABLE public.anchor (id int PRIMARY KEY); INSERT INTO public.anchor VALUES (1)');
my $end_key = 92092;
my $pid = do
{
	local $ENV{BACKSTOP_TEST_BASE_JOB_END_LOCK} = $end_key;
	spawn_archiver($log, '--db', $conn, '--storage', $storage, '--data-dir', "$dir/data", '--slot', 's_ddlfirst',
		'--publication', 'p_ddlfirst', '--listen', $listen, '--segment-age', '1s', '--table-poll-interval', '200ms',
		'--all-tables');
};
END { if ($pid) { kill 'KILL', $pid; waitpid($pid, 0) } }
ok(wait_for('the archiver', sub { (archiver_checkpoint($listen, 'public.anchor', '5s'))[0] == 0 }, 90), 'archiver running')
  or diag(slurp_file($log));
like(slurp_file($log), qr/schema changes are captured in the stream/, 'schema changes are captured');

# The job that copies the new table waits, its copy done, until the test lets it go.
my $holder = $node->background_psql($db);
$holder->query_safe("SELECT pg_advisory_lock($end_key)");
my $copies = log_count(qr/base cop(?:y|ies) done/);
$node->safe_psql($db, q{
	CREATE TABLE public.a (id int PRIMARY KEY, v text);
	INSERT INTO public.a SELECT g, 'v' || g FROM generate_series(1, 20) g;
});
ok(wait_for('the copy of public.a to be held at the end of its job', sub {
	slurp_file($log) =~ /base copy of public\.a at \S+: 20 rows/
	  && $node->safe_psql($db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 "
		  . "AND objid = $end_key AND NOT granted") > 0 }, 90),
	'public.a is copied; its job is held before the copy is added') or diag(slurp_file($log));
is(log_count(qr/base cop(?:y|ies) done/), $copies, 'the job is not done: public.a\'s copy is not added yet');

# Two column changes of public.a, read from the stream before its copy is added.
my $p1 = $node->safe_psql($db, 'ALTER TABLE public.a ADD COLUMN c int DEFAULT 7; SELECT pg_current_wal_insert_lsn()');
my $state1 = state_of($node, $db, 'public.a');
my $p2 = $node->safe_psql($db, 'ALTER TABLE public.a ADD COLUMN d timestamptz DEFAULT clock_timestamp(); SELECT pg_current_wal_insert_lsn()');
my $state2 = state_of($node, $db, 'public.a');
ok(wait_for('the stream to read both changes', sub {
	log_count(qr/table public\.a: new column layout \d+ from \S+ \(schema change read from the stream/) == 2
	  && log_count(qr/table public\.a: new column layout \d+ from \S+ \(schema change read from the stream, before its first base copy was added\)/) == 1 }, 90),
	'both changes are recorded although public.a has no base copy yet') or diag(slurp_file($log));
$holder->query_safe("SELECT pg_advisory_unlock($end_key)");
$holder->quit;
ok(wait_for('the job', sub { log_count(qr/base cop(?:y|ies) done/) > $copies }, 90), 'the job ends') or diag(slurp_file($log));
like(slurp_file($log), qr/table public\.a: column "d" added at \S+(?: got a value per existing row \(a volatile default\)|, after the base copy at \S+ was taken: its values in the copy's rows are not known)/,
	'the volatile column is marked unknown for the copy\'s rows');
unlike(slurp_file($log), qr/table public\.a: column "c" added at/, 'the constant default is known (its missing value)');

# Wait until the stream has stored the changes (public.a's checkpoint would wait for its new copy).
ok((checkpoint_until($listen, 'public.anchor', 60))[0] == 0, 'the stream is stored past both changes');
my ($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.a',
	'--to-lsn', $p1, '--into', 'public.a_p1');
is($rc, 0, 'after ADD COLUMN c DEFAULT 7: recovered from the older copy') or diag("$out\n$err");
is(state_of($node, $db, 'public.a_p1'), $state1, 'after ADD COLUMN c DEFAULT 7: exactly the table then (c = 7)');
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.a',
	'--to-lsn', $p2, '--into', 'public.a_p2');
if ($rc == 0)
{
	is(state_of($node, $db, 'public.a_p2'), $state2, 'after ADD COLUMN d (volatile): exactly the table then (from a newer copy)');
}
else
{
	like($err, qr/column "d" of public\.a was added at LSN \S+ with a value computed for each existing row/,
		'after ADD COLUMN d (volatile): refused, naming the column') or diag("$out\n$err");
}

my ($crc, $cout) = checkpoint_until($listen, 'public.a', 120);
is($crc, 0, 'public.a: checkpoint after its newer copy') or diag("$cout\n" . slurp_file($log));
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.a',
	'--latest', '--into', 'public.a_l');
is($rc, 0, 'recover --latest') or diag("$out\n$err");
is(state_of($node, $db, 'public.a_l'), state_of($node, $db, 'public.a'), 'the latest point is exact');

kill 'TERM', $pid;
waitpid($pid, 0);
$pid = undef;
$node->stop;
done_testing();
