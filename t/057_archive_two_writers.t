# 057_archive_two_writers.t — one writer per archive.  Two archivers on one storage prefix with
# different slots: the second refuses to start, naming the holder (host, pid, slot, since), and
# creates nothing, while the first keeps archiving.  After the first is killed with -9 the
# second takes over at once (same host, the holder's process is gone); the changes committed
# while no archiver ran are a declared gap: a point inside it is refused, points on either side
# recover exactly.  A third started with --take-over while the second runs: the second stops at
# its next write, naming the new holder, and the archive stays exact.  A lease of another host:
# refused while fresh, taken once expired.  On local storage and on s3rver.
use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Sys::Hostname qw(hostname);
use Test::More;
use Time::HiRes qw(time);
use BackstopTest;
use BackstopS3;

my $node = new_pg_node('writers');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('writers');
my $host = hostname();
my %running;	# pid => 1 until reaped

END
{
	kill 'KILL', $_ for keys %running;
}

$node->safe_psql($db, q{
	CREATE TABLE public.t (id int PRIMARY KEY, v text NOT NULL);
	INSERT INTO public.t SELECT g, 'seed ' || g FROM generate_series(1, 200) g;
});

sub sum { return content_checksum($node, $db, $_[0] // 'public.t'); }
sub exists_table { return $node->safe_psql($db, "SELECT to_regclass('$_[0]') IS NOT NULL") eq 't'; }
sub slot_exists { return $node->safe_psql($db, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$_[0]'") eq '1'; }
sub write_rows
{
	my ($tag, $n) = @_;
	$node->safe_psql($db, "DO \$\$ BEGIN FOR i IN 1..$n LOOP INSERT INTO public.t (id, v) VALUES "
		  . "((SELECT max(id) + 1 FROM public.t), '$tag ' || i); COMMIT; END LOOP; END \$\$");
}

sub start_archiver
{
	my ($c, $name, @extra) = @_;
	my $log = "$dir/$c->{label}-$name.log";
	local %ENV = (%ENV, %{ $c->{env} });
	my $pid = spawn_archiver($log, '--db', $conn, '--tables', 'public.t', '--storage', $c->{storage},
		'--data-dir', "$dir/$c->{label}-$name", '--slot', "$c->{label}_$name", '--listen', $c->{listen}{$name},
		'--segment-age', '1s', '--status-interval', '1s', @extra);
	$running{$pid} = 1;
	return ($pid, $log);
}

# Exit code of pid once it has exited (undef while it runs).
sub exited
{
	my ($pid) = @_;
	my $r = waitpid($pid, POSIX::WNOHANG());
	return undef if $r == 0;
	delete $running{$pid};
	return $? >> 8;
}

sub checkpoint_json
{
	my ($listen) = @_;
	my ($rc, $out) = archiver_checkpoint($listen, 'public.t');
	return $rc == 0 ? decode_json($out) : undef;
}

sub recover
{
	my ($c, $into, @point) = @_;
	return run_backstop({ env => $c->{env} }, 'recover', '--db', $conn, '--storage', $c->{storage},
		'--table', 'public.t', @point, '--into', $into);
}

sub scenario
{
	my ($c) = @_;
	my $l = $c->{label};
	my ($rc, $out, $err);
	$c->{listen}{$_} = '127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port() for qw(a b c);

	# A holds the archive.
	my ($pid_a, $log_a) = start_archiver($c, 'a');
	my $cp;
	ok(wait_for("$l: archiver A", sub { $cp = checkpoint_json($c->{listen}{a}) }), "$l: archiver A running")
	  or diag(slurp_file($log_a));
	like(slurp_file($log_a), qr/holding the archive's lease: host \Q$host\E, pid $pid_a, slot "${l}_a"/,
		"$l: A says it holds the lease");

	# B, another slot on the same prefix: refused at start, naming A; creates nothing.
	($rc, $out, $err) = run_backstop({ env => $c->{env}, timeout => 120 }, 'archive', '--db', $conn,
		'--tables', 'public.t', '--storage', $c->{storage}, '--data-dir', "$dir/$l-b", '--slot', "${l}_b",
		'--listen', $c->{listen}{b});
	isnt($rc, 0, "$l: a second archiver on the same prefix refuses to start (exit $rc)");
	like($err, qr/is being archived by another archiver: host \Q$host\E, pid $pid_a, slot "${l}_a", since \d{4}-\d\d-\d\dT[0-9:.]+Z \(lease token \d+/,
		"$l: naming the holder (host, pid, slot, since)") or diag($err);
	like($err, qr/--take-over/, "$l: and the way out");
	ok(!slot_exists("${l}_b"), "$l: the refused archiver created no slot");

	# A keeps archiving.
	write_rows("$l a", 30);
	$cp = checkpoint_json($c->{listen}{a});
	ok($cp, "$l: A still archives after the refusal");
	ok(!defined exited($pid_a), "$l: A still runs");
	my $sum_a = sum();
	my $point_a = $cp->{lsn};
	($rc, $out, $err) = recover($c, "public.${l}_r1", '--latest');
	is($rc, 0, "$l: recover --latest through A") or diag("$out\n$err");
	is(exists_table("public.${l}_r1") ? sum("public.${l}_r1") : 'none', $sum_a, "$l: exact");

	# kill -9 A; changes while nothing archives; then B takes over at once.
	kill 'KILL', $pid_a;
	waitpid($pid_a, 0);
	delete $running{$pid_a};
	write_rows("$l gap", 10);
	my $in_gap = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');
	my $sum_gap = sum();
	my ($pid_b, $log_b) = start_archiver($c, 'b');
	ok(wait_for("$l: archiver B", sub { checkpoint_json($c->{listen}{b}) }), "$l: B starts after A was killed with -9")
	  or diag(slurp_file($log_b));
	like(slurp_file($log_b), qr/taking over the archive's lease from host \Q$host\E, pid $pid_a, slot "${l}_a".*: its process no longer runs on this host/,
		"$l: B took the lease of the killed holder, saying why");
	write_rows("$l b", 30);
	ok(checkpoint_json($c->{listen}{b}), "$l: B archives");
	my $sum_b = sum();
	($rc, $out, $err) = recover($c, "public.${l}_r2", '--latest');
	is($rc, 0, "$l: recover --latest through B") or diag("$out\n$err");
	is(exists_table("public.${l}_r2") ? sum("public.${l}_r2") : 'none', $sum_b, "$l: exact after the takeover");
	($rc, $out, $err) = recover($c, "public.${l}_r3", '--to-lsn', $point_a, '--exclusive');
	is($rc, 0, "$l: a point archived by A") or diag("$out\n$err");
	is(exists_table("public.${l}_r3") ? sum("public.${l}_r3") : 'none', $sum_a, "$l: still exact");
	($rc, $out, $err) = recover($c, "public.${l}_r4", '--to-lsn', $in_gap);
	isnt($rc, 0, "$l: a point while no archiver ran is refused");
	like($err, qr/changes to public\.t committed from LSN \S+ to \S+ were never archived \(archiving resumed with a new base copy at \S+: from a new replication slot/,
		"$l: saying the changes were never archived") or diag($err);
	ok(!exists_table("public.${l}_r4"), "$l: nothing written");
	($rc, $out, $err) = run_backstop({ env => $c->{env} }, 'info', '--storage', $c->{storage}, '--table', 'public.t');
	like($out, qr/not archived: \S+ \.\. \S+ \(archiving resumed with a new base copy\)/, "$l: info shows the gap");

	# C with --take-over while B runs: B stops at its next write, naming C.
	my ($pid_c, $log_c) = start_archiver($c, 'c', '--take-over');
	ok(wait_for("$l: archiver C", sub { checkpoint_json($c->{listen}{c}) }), "$l: C starts with --take-over")
	  or diag(slurp_file($log_c));
	like(slurp_file($log_c), qr/--take-over: taking the archive's lease from a holder that looks alive \(host \Q$host\E, pid $pid_b/,
		"$l: C says whom it took the lease from");
	my $rc_b;
	write_rows("$l c", 5);
	ok(wait_for("$l: B to stop", sub {
		write_rows("$l nudge", 1);
		defined($rc_b = exited($pid_b));
	}, 120), "$l: B stops once the lease is taken");
	isnt($rc_b // 0, 0, "$l: with a non-zero exit");
	like(slurp_file($log_b), qr/the lease of .+ was taken over by another archiver \(host \Q$host\E, pid $pid_c, slot "${l}_c".*this archiver \(lease token \d+\) stops without writing/,
		"$l: naming the new holder");
	write_rows("$l c2", 20);
	ok(checkpoint_json($c->{listen}{c}), "$l: C archives");
	my $sum_c = sum();
	($rc, $out, $err) = recover($c, "public.${l}_r5", '--latest');
	is($rc, 0, "$l: recover --latest through C") or diag("$out\n$err");
	is(exists_table("public.${l}_r5") ? sum("public.${l}_r5") : 'none', $sum_c, "$l: exact");

	# An orderly stop releases the lease: the next archiver takes it without waiting.
	kill 'TERM', $pid_c;
	ok(wait_for("$l: C to stop", sub { defined exited($pid_c) }), "$l: C stops");
	like(slurp_file($log_c), qr/released the archive's lease/, "$l: releasing the lease");
	# Verified at rest: s3rver does not write objects atomically, a concurrent read may see half.
	($rc, $out, $err) = run_backstop({ env => $c->{env} }, 'verify', '--storage', $c->{storage});
	is($rc, 0, "$l: verify finds the archive clean") or diag("$out\n$err");

	# A lease of another host: refused while fresh, taken once expired (no waiting: written so).
	my $lease = decode_json($c->{get}->('lease.json'));
	my $fresh = { %$lease, owner => { %{ $lease->{owner} }, host => 'elsewhere.example', id => 'f' x 32, pid => 4242 },
		released => JSON::PP::false, renewed => '2099-01-01T00:00:00Z' };
	$c->{put}->('lease.json', encode_json($fresh));
	($rc, $out, $err) = run_backstop({ env => $c->{env}, timeout => 120 }, 'archive', '--db', $conn,
		'--tables', 'public.t', '--storage', $c->{storage}, '--data-dir', "$dir/$l-c", '--slot', "${l}_c",
		'--listen', $c->{listen}{c});
	isnt($rc, 0, "$l: a fresh lease of another host is refused");
	like($err, qr/host elsewhere\.example, pid 4242, slot "${l}_c"/, "$l: naming that host") or diag($err);
	$fresh->{renewed} = '2001-01-01T00:00:00Z';
	$c->{put}->('lease.json', encode_json($fresh));
	my $log_c2;
	($pid_c, $log_c2) = start_archiver($c, 'c');
	ok(wait_for("$l: archiver C again", sub { checkpoint_json($c->{listen}{c}) }), "$l: an expired lease is taken")
	  or diag(slurp_file($log_c2));
	like(slurp_file($log_c2), qr/taking over the archive's lease from host elsewhere\.example.*: it was not renewed within its timeout/,
		"$l: saying it expired");
	kill 'TERM', $pid_c;
	ok(wait_for("$l: C to stop", sub { defined exited($pid_c) }), "$l: C stops again");

	# The slots of the archivers that are gone pin WAL: drop them.
	$node->safe_psql($db, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE '${l}\\_%' AND NOT active");
}

my $local = "$dir/archive";
scenario({ label => 'local', storage => "file://$local", env => {},
	get => sub { slurp_file("$local/$_[0]") },
	put => sub { open(my $fh, '>', "$local/$_[0]") or die; print $fh $_[1]; close $fh; } });

SKIP:
{
	my $s3 = eval { BackstopS3::start_s3rver(bucket => 'bs-057') };
	skip "s3rver not available: $@", 1 unless $s3;
	my $ep = $s3->{endpoint};
	my $url = 's3://bs-057/arch';
	my $tmp = "$dir/s3-object";
	scenario({ label => 's3', storage => $url, env => { BackstopS3::s3_env($ep) },
		get => sub { my $r = BackstopS3::st($ep, [ '--storage', $url ], 'get', $_[0]); die $r->{err} if $r->{rc}; $r->{out} },
		put => sub {
			open(my $fh, '>', $tmp) or die; print $fh $_[1]; close $fh;
			my $r = BackstopS3::st($ep, [ '--storage', $url ], 'put', $_[0], $tmp);
			die $r->{err} if $r->{rc};
		} });
}

done_testing();
