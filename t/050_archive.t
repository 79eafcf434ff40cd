# 050_archive.t — the continuous archiver against a real PostgreSQL: many types, TOAST, replica
# identities, TRUNCATE, ALTER TABLE mid-stream, kill -9 under load, PostgreSQL restart; every
# archived table is recovered and compared with what PostgreSQL holds.
use strict;
use warnings;

use IPC::Run;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);
use BackstopTest;

my $node = new_pg_node('archive');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('archive');
my $storage = "file://$dir/archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";

$node->safe_psql($db, q{
	CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
	CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
	CREATE TYPE pair AS (a int, b text);
	CREATE TABLE public.many (
		id bigint PRIMARY KEY,
		i2 smallint, i4 integer, n numeric(20,6), f8 double precision, f4 real,
		t text, vc varchar(20), b bytea, j json, jb jsonb, arr int[], tarr text[],
		ts timestamptz, d date, tm time, iv interval, u uuid, m mood, p posint, c pair,
		big text, flag boolean, inet_col inet
	);
	CREATE TABLE public.full_ident (a int, b text);
	ALTER TABLE public.full_ident REPLICA IDENTITY FULL;
	CREATE TABLE public.idx_ident (a int NOT NULL, b text, c int);
	CREATE UNIQUE INDEX idx_ident_a ON public.idx_ident (a);
	ALTER TABLE public.idx_ident REPLICA IDENTITY USING INDEX idx_ident_a;
	CREATE TABLE public.nokey (a int, b text);
	INSERT INTO public.many (id, t, big) SELECT g, 'seed ' || g, NULL FROM generate_series(1, 50) g;
	INSERT INTO public.full_ident VALUES (1, 'x'), (1, 'x'), (2, 'y');
	INSERT INTO public.idx_ident VALUES (1, 'one', 1), (2, 'two', 2);
	INSERT INTO public.nokey VALUES (1, 'n');
});

my @common = ('--storage', $storage, '--data-dir', "$dir/data", '--listen', $listen);

# Archivers still running when the script ends (also when it dies half-way) are killed.
my %running;
END { kill 'KILL', $_ for grep { waitpid($_, POSIX::WNOHANG()) == 0 } keys %running }

# The archiver's PID (spawn_archiver: stdout and stderr appended to $log).
sub start_archiver
{
	my ($log, @args) = @_;
	my $pid = spawn_archiver($log, @args);
	$running{$pid} = 1;
	return $pid;
}

# Stop it with a signal and reap it: the wait status ($?).
sub stop_archiver
{
	my ($pid, $signal) = @_;
	kill $signal, $pid;
	my $r = waitpid($pid, 0);
	my $st = $?;
	delete $running{$pid};
	return $r == $pid ? $st : -1;
}

my @main_args = ('--db', $conn, '--all-tables', @common, '--segment-age', '1s', '--table-poll-interval', '1s',
	'--status-interval', '1s');


sub checkpoint
{
	my ($table) = @_;
	return archiver_checkpoint($listen, $table);
}

sub recovered_checksum
{
	my ($table, $into, @point) = @_;
	@point = ('--latest') unless @point;
	my ($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage,
		'--table', $table, @point, '--into', $into, '--replace', '--yes');
	is($rc, 0, "recover $table @point") or diag("$out\n$err");
	return $rc == 0 ? content_checksum($node, $db, $into) : "recover failed: $err";
}

my $log = "$dir/archiver.log";
my $pid = start_archiver($log, @main_args);
ok((checkpoint_until($listen, 'public.many', 60))[0] == 0, 'archiver started and answers checkpoints')
  or diag(slurp_file($log));

my $slot = $node->safe_psql($db, "SELECT plugin FROM pg_replication_slots WHERE slot_name = 'backstop'");
is($slot, 'pgoutput', 'slot created with pgoutput');
like(slurp_file($log), qr/public\.nokey is NOT archived/, 'table without a usable replica identity is skipped loudly');

# UPDATE/DELETE on the skipped table must keep working on the primary.
my ($prc, $pout, $perr) = $node->psql($db, "UPDATE public.nokey SET b = 'm'; DELETE FROM public.nokey WHERE a = 2;");
is($prc, 0, 'UPDATE/DELETE on a table without replica identity still succeed') or diag($perr);

# A workload over every type, TOASTed values, key changes.
$node->safe_psql($db, q{
	UPDATE public.many SET i2 = 7, i4 = -2147483648, n = 12345678901234.123456, f8 = 1.0/3, f4 = 0.1,
		t = 'héllo wörld ✓ 日本', vc = 'tab	and
newline', b = '\x00ff10', j = '{"a": [1, 2]}', jb = '{"z": null, "a": 1}', arr = '{1,NULL,3}',
		tarr = '{"a b","c,d",NULL,"\\"q\\""}', ts = '2026-11-26 12:34:56.789+05', d = '2000-02-29', tm = '23:59:59.999999',
		iv = '1 year 2 mons 3 days 04:05:06', u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', m = 'happy', p = 42,
		c = ROW(1, 'x,y'), flag = true, inet_col = '192.168.0.1/24'
	WHERE id <= 10;
	UPDATE public.many SET big = repeat('toast-me ', 20000) WHERE id IN (11, 12);
	UPDATE public.many SET t = 'changed while big stays' WHERE id = 11;
	UPDATE public.many SET id = 1000 WHERE id = 12;
	DELETE FROM public.many WHERE id BETWEEN 40 AND 45;
	INSERT INTO public.many (id, t, f8) VALUES (2000, NULL, 'NaN'), (2001, '', '-Infinity');
	DELETE FROM public.full_ident WHERE a = 1 AND ctid = (SELECT min(ctid) FROM public.full_ident WHERE a = 1);
	UPDATE public.full_ident SET b = 'yy' WHERE a = 2;
	UPDATE public.idx_ident SET a = 10, b = 'ten' WHERE a = 1;
	DELETE FROM public.idx_ident WHERE a = 2;
});
my ($rc, $out, $err) = checkpoint('public.many');
is($rc, 0, 'checkpoint after the workload') or diag($err);
like($out, qr/"verified":true/, 'checkpoint answer says verified');

# An asynchronous commit is visible before its WAL is written: the checkpoint must still cover
# it (target = insert position, and the daemon has the server flush its WAL).
my $after_async = $node->safe_psql($db, q{SET synchronous_commit = off;
	UPDATE public.many SET t = 'async commit' WHERE id = 2000;
	SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')});
($rc, $out, $err) = checkpoint('public.many');
is($rc, 0, 'checkpoint after an asynchronous commit') or diag($err);
my ($requested) = $out =~ /"requested_lsn":"([0-9A-F]+\/[0-9A-F]+)"/;
ok(defined $requested && $node->safe_psql($db, "SELECT pg_wal_lsn_diff('$requested', '0/0') >= $after_async") eq 't',
	'its target is at or past the asynchronous commit') or diag($out);

for my $t (qw(public.many public.full_ident public.idx_ident))
{
	(my $into = $t) =~ s/public\./public.r_/;
	is(recovered_checksum($t, $into), content_checksum($node, $db, $t), "$t archived exactly (types, TOAST, identity)");
}

# TRUNCATE and ALTER TABLE mid-stream.
$node->safe_psql($db, q{
	TRUNCATE public.idx_ident;
	INSERT INTO public.idx_ident VALUES (5, 'five', 5);
	ALTER TABLE public.many ADD COLUMN extra text DEFAULT 'dflt';
	UPDATE public.many SET extra = 'set' WHERE id = 1;
	ALTER TABLE public.many DROP COLUMN vc;
	UPDATE public.many SET t = 'after drop' WHERE id = 2;
	INSERT INTO public.many (id, t, extra) VALUES (3000, 'new', NULL);
});
($rc, $out, $err) = checkpoint('public.many');
is($rc, 0, 'checkpoint after TRUNCATE and ALTER TABLE') or diag($err);
is(recovered_checksum('public.idx_ident', 'public.r_idx2'), content_checksum($node, $db, 'public.idx_ident'), 'TRUNCATE archived');
is(recovered_checksum('public.many', 'public.r_many2'), content_checksum($node, $db, 'public.many'), 'ADD/DROP COLUMN archived');

# A table created while the archiver runs gets a base copy without a restart.
$node->safe_psql($db, q{CREATE TABLE public.late (id int PRIMARY KEY, v text); INSERT INTO public.late VALUES (1, 'early');});
ok((checkpoint_until($listen, 'public.late', 60))[0] == 0, 'new table picked up');
$node->safe_psql($db, q{INSERT INTO public.late VALUES (2, 'later'); UPDATE public.late SET v = 'changed' WHERE id = 1;});
checkpoint('public.late');
is(recovered_checksum('public.late', 'public.r_late'), content_checksum($node, $db, 'public.late'), 'late table archived exactly');

# Metrics and health.
my ($mrc, $metrics) = (0, '');
{
	my $curl = IPC::Run::run([ 'curl', '-s', "http://$listen/metrics" ], '>', \$metrics);
}
like($metrics, qr/^backstop_flushed_lsn \d+$/m, 'metrics expose the flushed LSN');
like($metrics, qr/backstop_table_archived_lsn\{table="public.many"\}/, 'per-table archived LSN metric');
# Storage requests (contrib/bench/scale reads them): every object in the archive was put by this
# archiver (the only writer so far; lease.json is a conditional put), every segment and manifest
# stored is one put, and the bytes put cover the segments' and manifests' bytes.
{
	my %m = map { /^(\S+) (\d+)$/ ? ($1 => $2) : () } split /\n/, $metrics;
	my $puts = $m{'backstop_storage_requests_total{op="put"}'} // -1;
	my @objects = grep { -f $_ && !m{/lease\.json$} } glob("$dir/archive/*.json $dir/archive/tables/*/*.json "
		. "$dir/archive/tables/*/seg/* $dir/archive/tables/*/base/*/*");
	ok($m{backstop_segments_uploaded_total} > 0 && $m{backstop_manifests_stored_total} > 0 && $m{backstop_seals_total} > 0,
		'metrics count segments, manifests and seals') or diag($metrics);
	cmp_ok($puts, '>=', $m{backstop_segments_uploaded_total} + $m{backstop_manifests_stored_total},
		'a put per segment and per manifest stored');
	cmp_ok($puts, '>=', scalar(@objects), 'at least a put per object in the archive (' . scalar(@objects) . ')');
	cmp_ok($m{'backstop_storage_bytes_total{op="put"}'}, '>=',
		$m{backstop_uploaded_bytes_total} + $m{backstop_manifest_bytes_total}, 'bytes put cover segments and manifests');
	ok($m{'backstop_storage_requests_total{op="put_if"}'} >= 1 && $m{'backstop_storage_requests_total{op="get_tagged"}'} >= 1,
		'the lease is written and checked with conditional requests');
}

# kill -9 under load at several points (early, mid-seal, late), then restart: no gap, no duplicate.
my $round = 0;
for my $delay (0.1, 0.6, 1.5)
{
	$round++;
	my $load = IPC::Run::start([ 'psql', '-X', '-q', '-d', $conn, '-c',
		"DO \$\$ BEGIN FOR i IN 1..300 LOOP INSERT INTO public.many (id, t) VALUES ($round * 100000 + i, 'load ' || i); "
		. "UPDATE public.many SET t = 'upd ' || i WHERE id = 1; DELETE FROM public.many WHERE id = $round * 100000 + i - 7; "
		. "COMMIT; END LOOP; END \$\$" ]);
	# Not a synchronisation: the kill lands at some point of the load, whichever.
	sleep $delay;
	my $st = stop_archiver($pid, 'KILL');
	ok(POSIX::WIFSIGNALED($st) && POSIX::WTERMSIG($st) == 9, "killed by kill -9 #$round") or diag("wait status $st");
	$load->finish;
	$pid = start_archiver($log, @main_args);
	($rc, $out) = checkpoint_until($listen, 'public.many', 60);
	is($rc, 0, "restarted after kill -9 #$round (after ${delay}s of load)") or diag($out);
	is(recovered_checksum('public.many', "public.r_kill$round"), content_checksum($node, $db, 'public.many'),
		"no gap and no duplicate after kill -9 #$round");
}

# PostgreSQL restart: the archiver reconnects and resumes.
$node->restart;
$node->safe_psql($db, q{INSERT INTO public.many (id, t) VALUES (5000, 'after restart')});
ok((checkpoint_until($listen, 'public.many', 90))[0] == 0, 'reconnected after PostgreSQL restart');
is(recovered_checksum('public.many', 'public.r_many4'), content_checksum($node, $db, 'public.many'), 'exact after PostgreSQL restart');

# Orderly stop confirms everything: the slot has nothing left to send.
$node->safe_psql($db, q{INSERT INTO public.many (id, t) VALUES (5001, 'before stop')});
checkpoint('public.many');
my $st = stop_archiver($pid, 'TERM');
ok(POSIX::WIFEXITED($st), 'archiver exits on SIGTERM') or diag("wait status $st");
is($st >> 8, 0, 'exit code 0 after SIGTERM');
my $lag = $node->safe_psql($db, "SELECT pg_current_wal_lsn() >= confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'backstop'");
is($lag, 't', 'confirmed_flush_lsn reported');

($rc, $out, $err) = run_backstop('verify', '--storage', $storage);
is($rc, 0, 'backstop verify finds the archive clean') or diag("$out\n$err");
($rc, $out, $err) = run_backstop('info', '--storage', $storage);
like($out, qr/nokey/, 'info lists the skipped table');

# --tables naming a table dropped while the archiver was stopped: start anyway, mark it
# dropped, keep its archive recoverable; a name never archived is refused.
{
	my $st2 = "file://$dir/archive2";
	my @a2 = ('--db', $conn, '--storage', $st2, '--data-dir', "$dir/data2", '--slot', 's2',
		'--publication', 'p2', '--listen', 'off', '--segment-age', '1s', '--table-poll-interval', '1s',
		'--rebase-ratio', '50', '--rebase-min-interval', '0');
	$node->safe_psql($db, q{CREATE TABLE public.gone (id int PRIMARY KEY, v text); INSERT INTO public.gone VALUES (1, 'a'), (2, 'b');});
	my $log2 = "$dir/archiver2.log";
	my $pid2 = start_archiver($log2, @a2, '--tables', 'public.gone,public.late');
	ok(wait_for('second archiver base copies', sub { -e "$dir/archive2/head.json" }), 'second archiver started');
	$node->safe_psql($db, q{UPDATE public.gone SET v = 'c' WHERE id = 1;});
	# Changes outweigh the base of public.late: a re-base follows, exact at its own LSN, and
	# points before it still recover from the first base plus the changes.
	$node->safe_psql($db, q{UPDATE public.late SET v = 'one ' || g FROM generate_series(1, 50) g WHERE id = 1;});
	my $mid_lsn = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');
	my $mid = content_checksum($node, $db, 'public.late');
	ok(wait_for('re-base of public.late', sub {
		my ($r, $o) = run_backstop('info', '--storage', $st2, '--table', 'public.late', '--json');
		$o =~ /"bases"\s*:\s*\[[^\]]*\{[^\]]*\},\s*\{/s }), 'a second base copy was taken (rebase_ratio)');
	$node->safe_psql($db, q{UPDATE public.late SET v = 'after rebase' WHERE id = 2;});
	# Stored when head.json passes the server's position after it (no --listen: no checkpoint).
	my $after_update = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');
	ok(wait_for('the second archiver to store the update', sub {
		my ($head) = (-e "$dir/archive2/head.json" ? slurp_file("$dir/archive2/head.json") : '')
		  =~ /"flushed_lsn"\s*:\s*"([0-9A-F]+\/[0-9A-F]+)"/;
		defined $head && $node->safe_psql($db, "SELECT '$head'::pg_lsn >= '$after_update'::pg_lsn") eq 't' }),
		'the update after the re-base is stored');
	($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $st2, '--table', 'public.late',
		'--to-lsn', $mid_lsn, '--into', 'public.late_mid', '--yes');
	is($rc, 0, 'recover before the re-base') or diag("$out\n$err");
	is(content_checksum($node, $db, 'public.late_mid'), $mid, 'exact before the re-base');
	($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $st2, '--table', 'public.late',
		'--latest', '--into', 'public.late_now', '--yes', '--json');
	is($rc, 0, 'recover after the re-base') or diag("$out\n$err");
	my ($info_rc, $info) = run_backstop('info', '--storage', $st2, '--table', 'public.late', '--json');
	my @base_lsns = $info =~ /"lsn"\s*:\s*"([0-9A-F]+\/[0-9A-F]+)"/g;
	my ($used) = $out =~ /"base_lsn"\s*:\s*"([^"]+)"/;
	ok(defined $used && grep({ $_ eq $used } @base_lsns) && $used ne $base_lsns[0], "the newest base ($used) was used")
	  or diag("bases: @base_lsns; recover said: $out");
	is(content_checksum($node, $db, 'public.late_now'), content_checksum($node, $db, 'public.late'), 'exact after the re-base');
	stop_archiver($pid2, 'TERM');
	my $before = content_checksum($node, $db, 'public.gone');
	$node->safe_psql($db, 'DROP TABLE public.gone');
	$pid2 = start_archiver($log2, @a2, '--tables', 'public.gone,public.late');
	# "Keeps running": it goes on to stream (the third start below counts on this start's line),
	# and records the drop once the stream has passed it (info below reads that record).
	ok(wait_for('restart with a dropped table', sub {
		my $log = slurp_file("$dir/archiver2.log");
		my @streaming = $log =~ /(streaming from slot s2)/g;
		return $log =~ /public\.gone was dropped while the archiver was stopped/ && @streaming >= 2
		  && $log =~ /table public\.gone was dropped \(after \S+, before \S+\); its archive is kept/;
	}), 'restart marks the dropped table, keeps running and records the drop') or diag(slurp_file("$dir/archiver2.log"));
	# SIGHUP re-reads the configuration file; a broken file is refused and the daemon goes on.
	my $conf = "$dir/a2.conf";
	PostgreSQL::Test::Utils::append_to_file($conf, "log_level = info\n");
	stop_archiver($pid2, 'TERM');
	$pid2 = start_archiver($log2, @a2, '--config', $conf, '--tables', 'public.gone,public.late');
	ok(wait_for('archiver with a configuration file', sub { slurp_file("$dir/archiver2.log") =~ /streaming from slot s2.*streaming from slot s2.*streaming from slot s2/s }),
		'third start streaming');
	PostgreSQL::Test::Utils::append_to_file($conf, "segment_size = 1MiB\n");
	kill 'HUP', $pid2;
	ok(wait_for('reload', sub { slurp_file("$dir/archiver2.log") =~ /SIGHUP: configuration reloaded/ }), 'SIGHUP reloads the configuration');
	PostgreSQL::Test::Utils::append_to_file($conf, "segment_size = huge\n");
	kill 'HUP', $pid2;
	ok(wait_for('refused reload', sub { slurp_file("$dir/archiver2.log") =~ /SIGHUP: configuration not reloaded: .*segment_size/ }),
		'a malformed file is refused on SIGHUP, naming the key');
	$node->safe_psql($db, q{UPDATE public.late SET v = 'after hup' WHERE id = 1;});
	$st = stop_archiver($pid2, 'TERM');
	ok(POSIX::WIFEXITED($st) && $st >> 8 == 0, 'second archiver stopped cleanly') or diag("wait status $st");
	($rc, $out, $err) = run_backstop('info', '--storage', $st2, '--table', 'public.gone');
	like($out, qr/dropped/, 'info says dropped');
	($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $st2, '--table', 'public.gone', '--latest', '--yes');
	is($rc, 0, 'dropped table recovered with --latest') or diag("$out\n$err");
	like($out, qr/ALTER TABLE "public"\."gone_recovered" RENAME TO "gone";/, 'copy-back SQL renames the recovered table into place');
	is(content_checksum($node, $db, 'public.gone_recovered'), $before, 'dropped table recovered exactly');
	($rc, $out, $err) = run_backstop('archive', @a2, '--tables', 'public.late,public.nosuchtable');
	is($rc, 1, 'a table that never existed is refused');
	like($err, qr/public\.nosuchtable" does not exist and was never archived/, 'with a clear message');
	($rc, $out, $err) = run_backstop('archive', @a2, '--tables', 'public.nosuchtable');
	is($rc, 1, 'no listed table exists: refused');
	like($err, qr/none of the tables to archive exists: "public\.nosuchtable"/, 'naming the list');
	($rc, $out, $err) = run_backstop('archive', @a2, '--drop');
	is($rc, 0, 'second slot dropped');
}

($rc, $out, $err) = run_backstop('archive', '--db', $conn, '--drop', @common);
is($rc, 0, 'archive --drop') or diag($err);
is($node->safe_psql($db, "SELECT count(*) FROM pg_replication_slots"), '0', 'slot dropped');
is($node->safe_psql($db, "SELECT count(*) FROM pg_publication"), '0', 'publication dropped');

$node->stop;
done_testing();
