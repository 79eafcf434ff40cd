# 076_drill.t — `backstop drill` proves that a table comes back, on local storage and on S3
# (s3rver): a scratch drill (a table of its own archived through the running archiver, a known
# workload, DROP, recovery from storage alone, checksums compared, everything cleaned up) and a
# table drill (a real table recovered into the drill's schema or another database, compared with
# the live table's checksum, the live table untouched).  Failing drills exit non-zero and clean
# up: no archiver to archive the scratch table (1), a damaged archive (3).  The result is
# exported on the archiver's /metrics.
use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Find;
use BackstopTest;
use BackstopS3;

my $node = new_pg_node('drill');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('drill');

$node->safe_psql($db, q{
	CREATE TABLE public.real (id int PRIMARY KEY, v text, n numeric, ts timestamptz);
	INSERT INTO public.real SELECT g, 'v' || g, g / 7.0, timestamptz '2020-01-01' + g * interval '1 min'
	  FROM generate_series(1, 3000) g;
	CREATE DATABASE target;
});

sub start_archiver
{
	my ($name, $storage, %env) = @_;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $listen = "127.0.0.1:$port";
	local %ENV = (%ENV, %env);
	my $pid = spawn_archiver("$dir/$name.log", '--db', $conn, '--all-tables', '--storage', $storage,
		'--data-dir', "$dir/$name", '--listen', $listen, '--segment-age', '1s', '--table-poll-interval', '1s',
		'--slot', "drill_$name", '--publication', "drill_$name");
	ok(wait_for("the $name archiver", sub { (run_backstop({ env => \%env }, 'checkpoint', '--table', 'public.real',
		'--listen', $listen, '--timeout', '5s'))[0] == 0 }, 90), "$name archiver running") or diag(slurp_file("$dir/$name.log"));
	return ($pid, $listen);
}

sub drill
{
	my ($env, @args) = @_;
	my ($rc, $out, $err) = run_backstop({ env => $env }, 'drill', '--db', $conn, '--timeout', '90s', '--json', @args);
	my $j = eval { decode_json($out) };
	ok($j, '--json parses') or diag("$out\n$err");
	return ($rc, $j // {}, $err);
}

sub leftovers
{
	return $node->safe_psql($db, q{SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'backstop_drill'}) . '/'
	  . $node->safe_psql($db, q{SELECT count(*) FROM pg_namespace WHERE nspname = 'backstop_drill'});
}

sub metric
{
	my ($listen, $name) = @_;
	my $m = '';
	IPC::Run::run([ 'curl', '-s', "http://$listen/metrics" ], '>', \$m);
	return $m =~ /^\Q$name\E (\S+)$/m ? $1 : undef;
}

sub drills
{
	my ($label, $storage, $listen, $data_dir, %env) = @_;
	my @common = ('--storage', $storage, '--listen', $listen, '--data-dir', $data_dir);

	# scratch
	my ($rc, $j, $err) = drill(\%env, @common);
	is($rc, 0, "$label: scratch drill passes") or diag(explain($j), $err);
	is($j->{mode}, 'scratch', "$label: scratch mode by default");
	is($j->{validation}, 'scratch checksum', "$label: compared with the scratch table's checksum");
	is($j->{recovered_checksum}, $j->{expected_checksum}, "$label: the recovered copy is exact");
	like($j->{recovered_checksum} // '', qr/^1820:-?\d+$/, "$label: the workload's 1820 rows recovered");
	ok(($j->{bytes_read} // 0) > 0, "$label: bytes read from storage reported");
	ok(defined $j->{rpo_seconds} && defined $j->{rto_seconds}, "$label: RPO and RTO reported");
	ok(defined $j->{phases_seconds}{$_}, "$label: phase $_ timed") for qw(archive_new_table workload checkpoint recover compare);
	is(leftovers(), '0/0', "$label: the scratch table, its copy and the schema are gone");
	ok(wait_for('the drill result on /metrics', sub { (metric($listen, 'backstop_drill_last_success') // '') eq '1' }),
		"$label: /metrics exports the drill's success");

	# a real table, live checksum; a change after the base copy, so that the recovery applies a
	# transaction and the drill checks that the live snapshot saw it
	$node->safe_psql($db, "UPDATE public.real SET v = v || '+' WHERE id = 1");
	my $live_before = content_checksum($node, $db, 'public.real');
	my $writes = $node->safe_psql($db, q{SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE relid = 'public.real'::regclass});
	($rc, $j, $err) = drill(\%env, @common, '--table', 'public.real');
	is($rc, 0, "$label: table drill passes") or diag(explain($j), $err);
	is($j->{validation}, 'live table checksum', "$label: compared with the live table's checksum");
	is($j->{recovered_checksum}, $j->{expected_checksum}, "$label: the copy equals the live table");
	like($j->{recovered_checksum} // '', qr/^3000:/, "$label: every row");
	like($j->{last_commit_lsn} // '', qr{^[0-9A-F]+/[0-9A-F]+$}, "$label: the recovery applied a transaction (the snapshot check ran)")
	  or diag(explain($j));
	is($j->{note}, undef, "$label: the snapshot saw it: no note");
	is(content_checksum($node, $db, 'public.real'), $live_before, "$label: the live table is unchanged");
	$node->safe_psql($db, 'SELECT pg_stat_force_next_flush()');
	is($node->safe_psql($db, q{SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE relid = 'public.real'::regclass}),
		$writes, "$label: nothing was written to the live table");
	is(leftovers(), '0/0', "$label: the copy is dropped");

	# without an archiver (--listen off): the latest archived point, the archive's own checksum
	($rc, $j, $err) = drill(\%env, @common, '--table', 'public.real', '--listen', 'off');
	is($rc, 0, "$label: table drill without an archiver passes") or diag(explain($j), $err);
	is($j->{validation}, 'archive checksum', "$label: validated against the archive's own checksum");
	is($j->{point}, 'everything archived', "$label: at the latest archived point");
	like($j->{recovered_checksum} // '', qr/^3000:/, "$label: every row");
	# ... and its text report
	my ($trc, $tout, $terr) = run_backstop({ env => \%env }, 'drill', '--db', $conn, '--timeout', '90s', @common,
		'--table', 'public.real', '--listen', 'off');
	is($trc, 0, "$label: text report, exit 0") or diag("$tout\n$terr");
	like($tout, qr/^drill PASSED: public\.real \(table\)\n  validation:  archive checksum\n  checksum:    3000:\S+\n  point:       everything archived\n  RTO:         [0-9.]+ s \(recover and compare\)\n  bytes read:  \d+\n  phases:      recover [0-9.]+ s; compare [0-9.]+ s;\n  note:        no --listen archiver: recovered at the latest archived point/,
		"$label: the text report names the table, validation, checksum, point, RTO, bytes, phases and why") or diag($tout);

	# into another database
	($rc, $j, $err) = drill(\%env, @common, '--table', 'public.real', '--to-db', node_connstr($node, 'target'));
	is($rc, 0, "$label: table drill into --to-db passes") or diag(explain($j), $err);
	is($j->{recovered_checksum}, $j->{expected_checksum}, "$label: --to-db copy exact");
	is($node->safe_psql('target', q{SELECT count(*) FROM pg_namespace WHERE nspname = 'backstop_drill'}), '0',
		"$label: nothing left in --to-db");
}

my ($pid1, $listen1) = start_archiver('local', "file://$dir/archive");
END { kill 'KILL', $pid1 if $pid1 && kill(0, $pid1); }
drills('local', "file://$dir/archive", $listen1, "$dir/local");

# --- failing drills ---
# no archiver to archive the scratch table
my $dead = '127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port();
my ($rc, $j, $err) = drill({}, '--storage', "file://$dir/archive", '--listen', $dead, '--data-dir', "$dir/local");
is($rc, 1, 'no archiver: the drill fails with exit 1');
is($j->{ok}, JSON::PP::false, 'and says so in --json');
like($j->{error} // '', qr/could not reach the archiver/, 'naming the cause');
is(leftovers(), '0/0', 'a failed drill cleans up too');
ok(wait_for('the failure on /metrics', sub { (metric($listen1, 'backstop_drill_last_success') // '') eq '0' }),
	'/metrics exports the failure');

# a schema of that name that is not the drill's is left alone
$node->safe_psql($db, 'CREATE SCHEMA backstop_drill');
($rc, $j, $err) = drill({}, '--storage', "file://$dir/archive", '--listen', $listen1, '--data-dir', "$dir/local");
is($rc, 2, 'a foreign backstop_drill schema: refused (exit 2)');
is($node->safe_psql($db, q{SELECT count(*) FROM pg_namespace WHERE nspname = 'backstop_drill'}), '1', 'and not dropped');
$node->safe_psql($db, 'DROP SCHEMA backstop_drill');
# ... also in --to-db
$node->safe_psql('target', 'CREATE SCHEMA backstop_drill');
($rc, $j, $err) = drill({}, '--storage', "file://$dir/archive", '--listen', $listen1, '--data-dir', "$dir/local",
	'--table', 'public.real', '--to-db', node_connstr($node, 'target'));
is($rc, 2, 'a foreign backstop_drill schema in --to-db: refused (exit 2)');
like($j->{error} // '', qr/schema backstop_drill exists but was not created by backstop drill/, '... saying why');
is($node->safe_psql('target', q{SELECT count(*) FROM pg_namespace WHERE nspname = 'backstop_drill'}), '1', '... and not dropped');
$node->safe_psql('target', 'DROP SCHEMA backstop_drill');
# --to-db that cannot be reached
($rc, $j, $err) = drill({}, '--storage', "file://$dir/archive", '--listen', $listen1, '--data-dir', "$dir/local",
	'--table', 'public.real', '--to-db', 'host=/nonexistent-backstop-dir');
is($rc, 1, 'an unreachable --to-db: exit 1');
like($j->{error} // '', qr/could not connect to PostgreSQL/, '... saying why');
is($j->{table}, 'public.real', '... naming the table');
is(leftovers(), '0/0', '... leaving nothing');

# a damaged archive: every base chunk of public.real flipped
my $relid = $node->safe_psql($db, q{SELECT 'public.real'::regclass::oid});
my @chunks;
find(sub { push @chunks, $File::Find::name if -f $_ && $File::Find::name =~ m{/tables/$relid/base/} }, "$dir/archive");
ok(@chunks > 0, 'base chunks found') or diag(`find $dir/archive -type f | head -20`);
for my $f (@chunks)
{
	open(my $fh, '+<:raw', $f) or die "$f: $!";
	seek($fh, -5, 2);
	print $fh 'XXXXX';
	close $fh;
}
($rc, $j, $err) = drill({}, '--storage', "file://$dir/archive", '--listen', $listen1, '--data-dir', "$dir/local",
	'--table', 'public.real');
is($rc, 3, 'a damaged archive: the table drill fails with exit 3') or diag(explain($j), $err);
is($j->{ok}, JSON::PP::false, 'not ok');
is(leftovers(), '0/0', 'and cleans up');

# --- S3 ---
SKIP:
{
	my $s3 = eval { BackstopS3::start_s3rver(bucket => 'bs-076') };
	skip "s3rver not available: $@", 1 unless $s3;
	my %env = BackstopS3::s3_env($s3->{endpoint});
	my ($pid2, $listen2) = start_archiver('s3', 's3://bs-076/arch', %env);
	drills('s3', 's3://bs-076/arch', $listen2, "$dir/s3", %env);
	kill 'TERM', $pid2;
	waitpid($pid2, 0);
}

done_testing();
