# 086_weak_rebase_after_ddl.t — where schema changes are not captured (--ddl-capture off), a base
# copy taken after a column change that nothing else saw: the table check before the copy found
# the archived columns (the change was not committed yet), the copy's temporary slot waited for
# the change's transaction (a slot is consistent only once the transactions running at its
# creation have ended), so the copy shows the new columns, and it was added before any later
# table check or Relation message could notice the change.  The archive then knew the old
# columns up to the table's last row change and the new ones from the copy on, and nothing
# covered the change in between: t/080 (seed 1) recovered a point right after an ALTER COLUMN
# TYPE from the older base with the old type, exit 0.  Such a copy records a window of an
# unknown schema change from the last position known to use the old columns to the copy, and
# recovery refuses the points inside it.
#
# Held open, not raced: the archiver runs with the test hooks BACKSTOP_TEST_TABLE_CHECK_LOCK
# (table checks are skipped while this test holds an advisory lock) and the change's transaction
# is held open while the copy's slot waits for it (seen in pg_locks).
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $node = new_pg_node('wrebase');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('wrebase');
my $storage = "file://$dir/archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";
my $check_key = 86086;
my $log = "$dir/archiver.log";

sub log_count { my ($re) = @_; my @m = slurp_file($log) =~ /$re/g; return scalar @m }
# The table's columns with their types and its content checksum: a retyped column differs.
sub state_of
{
	my ($table) = @_;
	my $cols = $node->safe_psql($db, "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' "
		  . "ORDER BY attname) FROM pg_attribute WHERE attrelid = '$table'::regclass AND attnum > 0 AND NOT attisdropped");
	return "$cols | " . content_checksum($node, $db, $table);
}

$node->safe_psql($db, q{
	CREATE EXTENSION pg_walinspect;
	CREATE TABLE public.w (id int PRIMARY KEY, v text);
	INSERT INTO public.w SELECT g, 'v' || g FROM generate_series(1, 30) g;
});
my $h = do
{
	local $ENV{BACKSTOP_TEST_TABLE_CHECK_LOCK} = $check_key;
	kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', '--db', $conn, '--storage', $storage,
		  '--data-dir', "$dir/data", '--slot', 's_wrebase', '--publication', 'p_wrebase', '--listen', $listen,
		  '--segment-age', '1s', '--table-poll-interval', '200ms', '--all-tables', '--ddl-capture', 'off' ],
		'<', \undef, '>', "$dir/archiver.out", '2>>', $log));
};
ok(wait_for('the archiver', sub { (archiver_checkpoint($listen, 'public.w', '5s'))[0] == 0 }, 60), 'archiver running')
  or diag(slurp_file($log));

# Table checks held back: a check already running ends before the next one is skipped.
my $holder = $node->background_psql($db);
sub hold_checks
{
	my $n = log_count(qr/table check skipped/);
	$holder->query_safe("SELECT pg_advisory_lock($check_key)");
	ok(wait_for('a table check to be skipped', sub { log_count(qr/table check skipped/) > $n }, 60),
		'table checks are held back') or diag(slurp_file($log));
}
hold_checks();

# A column added and a row change: the stream reads the new columns and asks for a new base copy.
$node->safe_psql($db, 'ALTER TABLE public.w ADD COLUMN r int DEFAULT 5');
$node->safe_psql($db, "UPDATE public.w SET v = v || '+' WHERE id = 1");
ok(wait_for('the stream to ask for a new base copy', sub { slurp_file($log) =~ /table public\.w: a column change at \S+ needs a new base copy/ }, 60),
	'the row change after ADD COLUMN asks for a new base copy') or diag(slurp_file($log));

# The retype, not committed yet: a table check sees the archived columns and starts the copy,
# whose slot then waits for the retype's transaction.
my $retype = $node->background_psql($db);
$retype->query_safe("BEGIN; ALTER TABLE public.w ALTER COLUMN r TYPE text USING (r * 10)::text || 'x'");
my $xid = $retype->query_safe('SELECT txid_current()');
$xid =~ s/\s+//g;
my $copies = log_count(qr/base cop(?:y|ies) done/);
$holder->query_safe("SELECT pg_advisory_unlock($check_key)");
ok(wait_for('the base copy to wait for the retype', sub {
	$node->safe_psql($db, "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND transactionid::text = '$xid' AND NOT granted") > 0 }, 60),
	'the base copy started by a table check waits for the retype to end') or diag(slurp_file($log));
unlike(slurp_file($log), qr/public\.w: its columns in the catalog differ/, 'no table check has seen the retype (not committed)');
hold_checks();

my $before = $node->safe_psql($db, 'SELECT pg_current_wal_flush_lsn()');
$retype->query_safe('COMMIT');
$retype->quit;
# The point right after the retype's commit record (before the copy's point, which is later).
my $point = $node->safe_psql($db, "SELECT end_lsn FROM pg_get_wal_records_info('$before', pg_current_wal_flush_lsn()) "
	  . "WHERE xid = '$xid' AND record_type = 'COMMIT'");
like($point, qr{^[0-9A-F]+/[0-9A-F]+$}, "the retype's commit record found ($point)");
my $state_after = state_of('public.w');
like($state_after, qr/r text/, 'r is text after the retype');

ok(wait_for('the base copy to be added', sub { log_count(qr/base cop(?:y|ies) done/) > $copies }, 60),
	'the base copy is added while table checks are held back') or diag(slurp_file($log));
my ($copy_lsn) = slurp_file($log) =~ /.*base copy of public\.w at (\S+): \d+ rows/s;
diag("the base copy is at $copy_lsn, the point at $point");
# Then the next row change: its Relation message shows the columns of the new copy.
$node->safe_psql($db, "UPDATE public.w SET v = v || '!' WHERE id = 2");
my ($rc, $out, $err) = checkpoint_until($listen, 'public.w', 120);
is($rc, 0, 'the archiver has stored the row change after the copy') or diag("$out\n$err\n" . slurp_file($log));
$holder->query_safe("SELECT pg_advisory_unlock($check_key)");
$holder->quit;

# Right after the retype: the columns then are text; the archive must not give the older base's
# integer column.  Exact, or refused as inside the window of an unknown schema change.
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.w',
	'--to-lsn', $point, '--into', 'public.w_p');
if ($rc == 0)
{
	is(state_of('public.w_p'), $state_after, 'right after the retype: exactly the table then');
}
else
{
	like($err, qr/changed at an unknown point between LSN \S+ and LSN \S+/, 'right after the retype: refused, inside the window of an unknown schema change')
	  or diag("$out\n$err");
}
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.w',
	'--latest', '--into', 'public.w_l');
is($rc, 0, 'recover --latest') or diag("$out\n$err");
is(state_of('public.w_l'), state_of('public.w'), 'the latest point is exact');

$h->signal('TERM');
$h->finish;
$node->stop;
done_testing();
