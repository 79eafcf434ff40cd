# 075_doctor.t — `backstop doctor` knows PostgreSQL: each misconfiguration is a finding with its
# severity and the exact fix, the verdict gives the exit code (0 ready, 8 degraded, 1 not ready),
# and --json parses.  Misconfigurations: a cluster with wal_level = replica, a table without
# replica identity, an unlogged table, a role without REPLICATION (nor SELECT), an inactive slot
# holding WAL (the archiver's own once it stopped, and a stranger's), max_slot_wal_keep_size
# unset, an archiver that does not answer at --listen, and an archive older than --stale-after.
use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $node = new_pg_node('doctor');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('doctor');
my $storage = "file://$dir/archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";

my $pid;
END { kill 'KILL', $pid if $pid && kill(0, $pid); }

$node->safe_psql($db, q{
	CREATE TABLE public.good (id int PRIMARY KEY, v text);
	INSERT INTO public.good SELECT g, 'v' || g FROM generate_series(1, 50) g;
	CREATE TABLE public.nokey (a int, b text);
	CREATE UNLOGGED TABLE public.unl (id int PRIMARY KEY);
	CREATE TABLE public.parted (id int, k int, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
	CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES IN (1);
	CREATE ROLE norepl LOGIN;
});

sub doctor
{
	my ($rc, $out, $err) = run_backstop('doctor', '--storage', $storage, '--data-dir', "$dir/data", @_);
	return ($rc, $out, $err);
}

sub doctor_json
{
	my ($rc, $out, $err) = doctor(@_, '--json');
	my $j = eval { decode_json($out) };
	ok($j, '--json parses') or diag("$out\n$err");
	return ($rc, $j // { findings => [] });
}

# The findings whose message matches $re.
sub findings
{
	my ($j, $re) = @_;
	return grep { $_->{message} =~ $re } @{ $j->{findings} };
}

sub has_finding
{
	my ($j, $severity, $re, $fix, $name) = @_;
	my @f = findings($j, $re);
	ok(scalar(@f), "$name: found") or diag(explain($j->{findings}));
	is($f[0]{severity}, $severity, "$name: $severity") if @f;
	like($f[0]{fix} // '', $fix, "$name: the fix") if @f && defined $fix;
}

# --- not ready: tables that cannot be archived, no archiver at the --listen given ---
my ($rc, $j) = doctor_json('--db', $conn, '--tables', 'public.good,public.nokey,public.unl,public.parted',
	'--listen', $listen);
is($rc, 1, 'not ready: exit 1');
is($j->{verdict}, 'not ready', 'verdict not ready');
has_finding($j, 'error', qr/^public\.nokey has no primary key/,
	qr/^ALTER TABLE "public"\."nokey" ADD PRIMARY KEY \(\.\.\.\);  -- or: ALTER TABLE "public"\."nokey" REPLICA IDENTITY FULL;$/,
	'a table without replica identity');
has_finding($j, 'warning', qr/^public\.unl is unlogged/, qr/^ALTER TABLE "public"\."unl" SET LOGGED;$/, 'an unlogged table');
has_finding($j, 'info', qr/^public\.parted: partitioned table: .*partition.*public\.parted_1/, undef,
	'a partitioned table says how it is archived');
has_finding($j, 'error', qr/the archiver does not answer at \Q$listen\E/, qr/--listen/, 'no archiver at --listen');
has_finding($j, 'warning', qr/max_slot_wal_keep_size is unset/,
	qr/^ALTER SYSTEM SET max_slot_wal_keep_size = '\d+GB'; SELECT pg_reload_conf\(\);/, 'max_slot_wal_keep_size unset');
has_finding($j, 'info', qr/slot "backstop" does not exist yet/, undef, 'the slot is created at first start');
has_finding($j, 'info', qr/track_commit_timestamp is off: it does not change --to-time/, undef,
	'track_commit_timestamp: says that it does not matter');
ok(!findings($j, qr/REPLICATION/), 'a superuser needs no REPLICATION finding');
has_finding($j, 'info', qr/event triggers are not in place yet: the archiver creates them at start/, undef,
	'DDL capture: a superuser archiver will create the event triggers');
my ($trc, $text) = doctor('--db', $conn, '--tables', 'public.good,public.nokey', '--listen', $listen);
is($trc, 1, 'text output: the same exit code');
like($text, qr/^  ERROR   \[tables\] public\.nokey has no primary key.*\n +fix: ALTER TABLE "public"\."nokey" ADD PRIMARY KEY/m,
	'text: one line per finding with its severity, then the fix');
like($text, qr/^verdict: not ready \(\d+ errors?, \d+ warnings?\)$/m, 'text: the verdict');

# --- a role without REPLICATION nor SELECT ---
($rc, $j) = doctor_json('--db', node_connstr($node, $db, 'norepl'), '--tables', 'public.good', '--listen', 'off');
is($rc, 1, 'role without REPLICATION: exit 1');
has_finding($j, 'error', qr/role "norepl" lacks REPLICATION/, qr/^ALTER ROLE "norepl" REPLICATION;$/, 'no REPLICATION');
has_finding($j, 'error', qr/role "norepl" may not SELECT public\.good/, qr/^GRANT SELECT ON "public"\."good" TO "norepl";$/,
	'no SELECT');
has_finding($j, 'warning', qr/schema changes are not captured in the stream: the event triggers are not in place and role "norepl"/,
	qr/as a superuser, start `backstop archive` once/, 'DDL capture: a role that cannot create the event triggers');
has_finding($j, 'error', qr/publication "backstop" does not exist and role "norepl" may not create it/,
	qr/^GRANT CREATE ON DATABASE "postgres" TO "norepl";/, 'no CREATE on the database for the publication');

# --- ready: the archiver runs, the limit is set ---
$node->safe_psql($db, "ALTER SYSTEM SET max_slot_wal_keep_size = '1GB'; SELECT pg_reload_conf();");
$pid = spawn_archiver("$dir/archiver.log", '--db', $conn, '--tables', 'public.good', '--storage', $storage,
	'--data-dir', "$dir/data", '--listen', $listen, '--segment-age', '1s', '--table-poll-interval', '1s');
ok(wait_for('the archiver', sub { (archiver_checkpoint($listen, 'public.good', '5s'))[0] == 0 }, 60), 'archiver running')
  or diag(slurp_file("$dir/archiver.log"));
($rc, $j) = doctor_json('--db', $conn, '--tables', 'public.good', '--listen', $listen);
is($rc, 0, 'ready: exit 0') or diag(explain($j->{findings}));
is($j->{verdict}, 'ready', 'verdict ready');
has_finding($j, 'info', qr/schema changes are captured in the stream/, undef, 'DDL capture: the archiver made its event triggers');
is($j->{archiver}{health}{streaming}, JSON::PP::true, 'the archiver\'s /health is read');
ok(defined $j->{archiver}{slot_retained_wal_bytes}, 'and its /metrics (WAL the slot holds)');
is(scalar(grep { $_->{table} eq 'public.good' } @{ $j->{freshness} }), 1, 'freshness: the table\'s latest point');
ok($j->{db}{slot}{active}, 'the slot is active');

# The archiver's metrics: every series has # HELP and # TYPE; the new ones are there.
{
	my $m = '';
	IPC::Run::run([ 'curl', '-s', "http://$listen/metrics" ], '>', \$m);
	my (%help, %type, %series);
	for (split /\n/, $m)
	{
		if (/^# HELP (\S+) \S/) { $help{$1} = 1 }
		elsif (/^# TYPE (\S+) (gauge|counter)$/) { $type{$1} = 1 }
		elsif (/^([a-z_]+)(\{[^}]*\})? \S+$/) { $series{$1} = 1 }
	}
	my @nohelp = grep { !$help{$_} || !$type{$_} } sort keys %series;
	is("@nohelp", '', 'every series has # HELP and # TYPE') or diag($m);
	like($m, qr/^backstop_build_info\{version="[^"]+"\} 1$/m, 'build info');
	like($m, qr/^backstop_slot_retained_wal_bytes \d+$/m, 'the WAL the slot holds, from the server');
	like($m, qr/^backstop_seconds_behind [\d.]+$/m, 'seconds behind');
	like(slurp_file("$dir/archiver.log"), qr/backlog at start: \d+ bytes of WAL to catch up/, 'the archiver logs its backlog at start');
}

# --- degraded: the archiver stopped (its slot inactive, holding WAL), a stranger's slot too ---
kill 'TERM', $pid;
waitpid($pid, 0);
$pid = undef;
$node->safe_psql($db, q{
	SELECT pg_create_logical_replication_slot('stranger', 'test_decoding');
	INSERT INTO public.good SELECT g, 'w' FROM generate_series(51, 500) g;
});
($rc, $j) = doctor_json('--db', $conn, '--tables', 'public.good');
is($rc, 8, 'degraded: exit 8');
is($j->{verdict}, 'degraded', 'verdict degraded');
has_finding($j, 'warning', qr/^slot "backstop" is not active \(no archiver streams from it\) and holds [\d.]+ (bytes|kB|MB) of WAL/,
	qr/backstop archive --drop/, 'the archiver\'s slot inactive, holding WAL');
has_finding($j, 'warning', qr/^slot "stranger" \(not Backstop's\) is inactive and holds/,
	qr/^SELECT pg_drop_replication_slot\('stranger'\);/, 'another inactive slot holding WAL');
has_finding($j, 'info', qr/no archiver answers at 127\.0\.0\.1:9816 \(the default --listen\)/, undef,
	'no archiver at the default address is not an error');

# --- an archive older than --stale-after ---
ok(wait_for('a stale finding', sub {
	my ($r, $o) = doctor('--json', '--stale-after', '1s');
	$o =~ /the latest verified point of public\.good \(LSN [0-9A-F]+\/[0-9A-F]+, [^)]*\) is \d+ s old, more than --stale-after/;
}), 'a table archived longer ago than --stale-after is a warning');
($rc, $j) = doctor_json('--stale-after', '1h');
is($rc, 0, 'storage alone, fresh enough: ready');

# --- a second cluster with wal_level = replica ---
my $replica = PostgreSQL::Test::Cluster->new('doctor_replica');
$replica->init(allows_streaming => 1);
$replica->start;
($rc, $j) = doctor_json('--db', node_connstr($replica, 'postgres'), '--tables', 'public.x');
is($rc, 1, 'wal_level = replica: exit 1');
has_finding($j, 'error', qr/^wal_level is replica, not logical/,
	qr/^ALTER SYSTEM SET wal_level = logical;  -- then restart PostgreSQL$/, 'wal_level replica');
has_finding($j, 'error', qr/public\.x/, qr/--tables/, 'a table that does not exist');
$replica->stop;

done_testing();
