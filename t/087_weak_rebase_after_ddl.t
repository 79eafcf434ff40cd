# 087_weak_rebase_after_ddl.t — where schema changes are not captured (--ddl-capture off), a base
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
my $stopped_ws;		# a walsender this test stopped: continued whatever happens
END { kill 'CONT', $stopped_ws if $stopped_ws }

sub log_count { my ($re) = @_; my @m = slurp_file($log) =~ /$re/g; return scalar @m }
$node->safe_psql($db, q{
	CREATE EXTENSION pg_walinspect;
	CREATE TABLE public.w (id int PRIMARY KEY, v text);
	INSERT INTO public.w SELECT g, 'v' || g FROM generate_series(1, 30) g;
	CREATE TABLE public.w2 (id int PRIMARY KEY, v text);
	INSERT INTO public.w2 SELECT g, 'v' || g FROM generate_series(1, 20) g;
});
my $h = do
{
	local $ENV{BACKSTOP_TEST_TABLE_CHECK_LOCK} = $check_key;
	kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', '--db', $conn, '--storage', $storage,
		  '--data-dir', "$dir/data", '--slot', 's_wrebase', '--publication', 'p_wrebase', '--listen', $listen,
		  '--segment-age', '1s', '--table-poll-interval', '200ms', '--all-tables', '--ddl-capture', 'off' ],
		'<', \undef, '>', "$dir/archiver.out", '2>>', $log));
};
ok(wait_for('the archiver', sub { (archiver_checkpoint($listen, 'public.w', '5s'))[0] == 0 && (archiver_checkpoint($listen, 'public.w2', '5s'))[0] == 0 }, 60), 'archiver running')
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

# One table's scenario.  $ahead: the copy's slot also waits for an unrelated transaction that
# ends after the table's next row change, which the stream (its walsender stopped) reads only
# after the copy is added: the copy lies after that row change, whose Relation message then shows
# the copy's columns earlier and ends the window there.
sub scenario
{
	my ($table, $ahead) = @_;
	my $what = $ahead ? "$table (copy after the next row change)" : $table;

	hold_checks();
	# A column added and a row change: the stream reads the new columns and asks for a new base copy.
	$node->safe_psql($db, "ALTER TABLE $table ADD COLUMN r int DEFAULT 5");
	$node->safe_psql($db, "UPDATE $table SET v = v || '+' WHERE id = 1");
	ok(wait_for('the stream to ask for a new base copy', sub { slurp_file($log) =~ /table \Q$table\E: a column change at \S+ needs a new base copy/ }, 60),
		"$what: the row change after ADD COLUMN asks for a new base copy") or diag(slurp_file($log));

	# The retype, not committed yet: a table check sees the archived columns and starts the
	# copy, whose slot then waits for the retype's transaction (and the other one's).
	my $other = $node->background_psql($db);
	my $oxid = $other->query_safe('BEGIN; SELECT txid_current()');
	$oxid =~ s/\s+//g;
	my $retype = $node->background_psql($db);
	$retype->query_safe("BEGIN; ALTER TABLE $table ALTER COLUMN r TYPE text USING (r * 10)::text || 'x'");
	my $xid = $retype->query_safe('SELECT txid_current()');
	$xid =~ s/\s+//g;
	$other->query_safe('COMMIT') unless $ahead;
	my $copies = log_count(qr/base cop(?:y|ies) done/);
	$holder->query_safe("SELECT pg_advisory_unlock($check_key)");
	ok(wait_for('the base copy to wait for the retype', sub {
		$node->safe_psql($db, "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' "
			  . "AND transactionid::text IN ('$xid', '$oxid') AND NOT granted") > 0 }, 60),
		"$what: the base copy started by a table check waits for the retype to end") or diag(slurp_file($log));
	unlike(slurp_file($log), qr/\Q$table\E: its columns in the catalog differ/, "$what: no table check has seen the retype (not committed)");
	hold_checks();

	my $before = $node->safe_psql($db, 'SELECT pg_current_wal_flush_lsn()');
	$retype->query_safe('COMMIT');
	$retype->quit;
	# The point right after the retype's commit record (before the copy's point, which is later).
	my $point = $node->safe_psql($db, "SELECT end_lsn FROM pg_get_wal_records_info('$before', pg_current_wal_flush_lsn()) "
		  . "WHERE xid = '$xid' AND record_type = 'COMMIT'");
	like($point, qr{^[0-9A-F]+/[0-9A-F]+$}, "$what: the retype's commit record found ($point)");
	my $state_after = state_of($node, $db, $table);
	like($state_after, qr/r text/, "$what: r is text after the retype");

	my ($ws, $point2, $state2);
	if ($ahead)
	{
		# The stream held, the next row change, then the other transaction ends: the copy lies after the row change.
		$ws = $node->safe_psql($db, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 's_wrebase' AND active");
		ok($ws =~ /^\d+$/, "$what: the archiver's walsender ($ws)");
		kill 'STOP', $ws;
		$stopped_ws = $ws;
		$point2 = $node->safe_psql($db, "UPDATE $table SET v = v || '!' WHERE id = 2; SELECT pg_current_wal_insert_lsn()");
		$state2 = state_of($node, $db, $table);
		$other->query_safe('COMMIT');
	}
	$other->quit;
	ok(wait_for('the base copy to be added', sub { log_count(qr/base cop(?:y|ies) done/) > $copies }, 60),
		"$what: the base copy is added while table checks are held back") or diag(slurp_file($log));
	my ($copy_lsn) = slurp_file($log) =~ /.*base copy of \Q$table\E at (\S+): \d+ rows/s;
	diag("$what: the base copy is at $copy_lsn, the point after the retype at $point" . ($ahead ? ", after the next row change at $point2" : ''));
	if ($ahead) { kill 'CONT', $ws; $stopped_ws = undef }
	else
	{
		# Then the next row change: its Relation message shows the columns of the new copy.
		$node->safe_psql($db, "UPDATE $table SET v = v || '!' WHERE id = 2");
	}
	# Table checks again (the stream's Relation message may ask for another copy, which a
	# checkpoint waits for): one now finds the columns of the copy, the archived ones.
	$holder->query_safe("SELECT pg_advisory_unlock($check_key)");
	my ($rc, $out, $err) = checkpoint_until($listen, $table, 120);
	is($rc, 0, "$what: the archiver has stored the row change after the retype") or diag("$out\n$err\n" . slurp_file($log));

	# Right after the retype: the columns then are text; the archive must not give the older
	# base's integer column.  Exact, or refused as inside the window of an unknown schema change.
	(my $into = $table) =~ s/$/_p/;
	($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', $table,
		'--to-lsn', $point, '--into', $into);
	if ($rc == 0)
	{
		is(state_of($node, $db, $into), $state_after, "$what: right after the retype: exactly the table then");
	}
	else
	{
		like($err, qr/changed at an unknown point between LSN \S+ and LSN \S+/,
			"$what: right after the retype: refused, inside the window of an unknown schema change") or diag("$out\n$err");
	}
	if ($ahead)
	{
		# The row change shows the copy's columns before the copy: the window ends there, and
		# a point after it is not refused as an unknown schema change (replay may still refuse
		# to convert the older base's rows across the retype).
		ok(slurp_file($log) =~ /table \Q$table\E: the columns of its base copy at \Q$copy_lsn\E are in use from \S+ on: the window of their unknown change ends there/,
			"$what: the row change before the copy ends the copy's window") or diag(slurp_file($log));
		(my $into2 = $table) =~ s/$/_q/;
		($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', $table,
			'--to-lsn', $point2, '--into', $into2);
		if ($rc == 0)
		{
			is(state_of($node, $db, $into2), $state2, "$what: after the next row change, before the copy: exactly the table then");
		}
		else
		{
			unlike($err, qr/unknown point/, "$what: after the next row change, before the copy: not inside a window")
			  or diag("$out\n$err");
			like($err, qr/choose a point after a newer base copy/, "$what: after the next row change, before the copy: "
				  . "refused only as the retype cannot be replayed exactly") or diag("$out\n$err");
		}
	}
	(my $into3 = $table) =~ s/$/_l/;
	($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', $table,
		'--latest', '--into', $into3);
	is($rc, 0, "$what: recover --latest") or diag("$out\n$err");
	is(state_of($node, $db, $into3), state_of($node, $db, $table), "$what: the latest point is exact");
}

scenario('public.w', 0);
scenario('public.w2', 1);
$holder->quit;

$h->signal('TERM');
$h->finish;
$node->stop;
done_testing();
