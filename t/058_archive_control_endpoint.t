# 058_archive_control_endpoint.t — the archiver's control endpoint facing peers it cannot trust:
# a non-loopback --listen is refused unless allowed, and then only with a token (401 without,
# 403 with a wrong one, never from a flag); a checkpoint without a table, at an invalid LSN or
# of a table not archived is refused (400, 404) with what is wrong; oversized bodies, headers
# and URLs are refused without the archiver's memory growing; idle and trickling connections
# are closed, a checkpoint that waits longer than that is not; and under a low descriptor
# limit, a hundred idle half-sent connections neither stop the archiving (the table recovers
# exactly) nor flood the log.
use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use HTTP::Tiny;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use BackstopTest;

$SIG{PIPE} = 'IGNORE';

my $node = new_pg_node('control');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('control');
my $storage = "file://$dir/archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $local = "127.0.0.1:$port";
my @common = ('--db', $conn, '--tables', 'public.t', '--storage', $storage, '--data-dir', "$dir/data",
	'--segment-age', '1s');
my $token = 'c0ffee' x 6;
my $http = HTTP::Tiny->new(timeout => 60);

$node->safe_psql($db, q{CREATE TABLE public.t (id int PRIMARY KEY, v text);
	INSERT INTO public.t SELECT g, md5(g::text) FROM generate_series(1, 1000) g;});

my $archiver;

END
{
	kill 'KILL', $archiver if $archiver;
}

sub stop_archiver
{
	kill 'TERM', $archiver;
	waitpid($archiver, 0);
	my $rc = $? >> 8;
	$archiver = undef;
	return $rc;
}

sub write_file
{
	my ($path, $text, $mode) = @_;
	open(my $fh, '>', $path) or die "$path: $!";
	print $fh $text;
	close $fh;
	chmod($mode, $path);
}

sub metric
{
	my ($listen, $name, $tok) = @_;
	my $r = $http->get("http://$listen/metrics", { headers => $tok ? { Authorization => "Bearer $tok" } : {} });
	return undef unless $r->{success};
	return $r->{content} =~ /^\Q$name\E (\S+)$/m ? $1 : undef;
}

# Send $head, then $body_bytes of body in pieces made by $piece (until the peer stops taking
# them), and return the answer's status code, or undef when the connection was closed without
# one.  Every request asks for "Connection: close", so the answer ends with the connection.
sub raw_request
{
	my ($listen, $head, $body_bytes, $piece) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => $listen) or die "connect to $listen: $!";
	setsockopt($s, Socket::SOL_SOCKET(), Socket::SO_SNDTIMEO(), pack('l!l!', 60, 0));
	my $out = $head;
	my $sent = 0;
	while (1)
	{
		my $off = 0;
		while ($off < length $out)
		{
			my $n = syswrite($s, $out, length($out) - $off, $off);
			last unless $n;
			$off += $n;
		}
		last if $off < length $out || $sent >= ($body_bytes // 0);
		$out = $piece->();
		$sent += 1024 * 1024;
	}
	my $answer = '';
	my $sel = IO::Select->new($s);
	while ($sel->can_read(60))
	{
		my $n = sysread($s, my $buf, 65536);
		last unless $n;
		$answer .= $buf;
	}
	close $s;
	return $answer =~ m{^HTTP/1\.[01] (\d{3})} ? $1 : undef;
}

sub rejected
{
	my ($status) = @_;
	return !defined $status || $status =~ /^(400|413|414|431)$/;
}

# ---- refusals: exit 2 before anything is done ----
my ($rc, $out, $err) = run_backstop({ timeout => 60 }, 'archive', @common, '--listen', "0.0.0.0:$port");
is($rc, 2, 'a non-loopback --listen is refused (exit 2)') or diag("$out\n$err");
like($err, qr/"0\.0\.0\.0:\d+" is not a loopback address.*listen_allow_remote = on/,
	'saying why and how to allow it');
is($node->safe_psql($db, 'SELECT count(*) FROM pg_replication_slots'), '0', 'before any slot was created');
($rc, $out, $err) = run_backstop({ timeout => 60 }, 'archive', @common, '--listen', "0.0.0.0:$port",
	'--listen-allow-remote');
is($rc, 2, 'allowed, but without a token: refused (exit 2)') or diag("$out\n$err");
like($err, qr/listen_allow_remote needs a token/, 'naming the token settings');
($rc, $out, $err) = run_backstop({ timeout => 60 }, 'archive', @common, '--listen', "0.0.0.0:$port",
	'--listen-allow-remote', '--control-token', $token);
is($rc, 2, 'a token given as a flag is refused (exit 2)') or diag("$out\n$err");
like($err, qr/--control-token is refused: a command line shows in ps/, 'because ps shows it');
unlike($err, qr/\Q$token\E/, 'without echoing the token');
my $tokfile = "$dir/token";
write_file($tokfile, "$token\n", 0644);
($rc, $out, $err) = run_backstop({ timeout => 60 }, 'archive', @common, '--listen', "0.0.0.0:$port",
	'--listen-allow-remote', '--control-token-file', $tokfile);
is($rc, 2, 'a token file others can read is refused (exit 2)') or diag("$out\n$err");
like($err, qr/accessible by others/, 'saying so');
chmod(0600, $tokfile);

# ---- allowed on every interface, with a token ----
my $log = "$dir/remote.log";
$archiver = spawn_archiver($log, @common, '--listen', "0.0.0.0:$port", '--listen-allow-remote',
	'--control-token-file', $tokfile, '--listen-timeout', '2s');
my %tok_env = (BACKSTOP_CONTROL_TOKEN => $token);
ok(wait_for('the archiver', sub {
	(run_backstop({ env => \%tok_env }, 'checkpoint', '--table', 'public.t', '--listen', $local, '--timeout', '5s'))[0] == 0
}, 90), 'archiver running on 0.0.0.0 with a token; backstop checkpoint sends it (BACKSTOP_CONTROL_TOKEN)')
  or diag(slurp_file($log));
like(slurp_file($log), qr/control endpoint on http:\/\/0\.0\.0\.0:\d+ .*bearer token required/, 'the log says a token is required');

my $r = $http->get("http://$local/metrics");
is($r->{status}, 401, 'no token: 401');
like($r->{headers}{'www-authenticate'} // '', qr/^Bearer/, 'with a WWW-Authenticate: Bearer challenge');
$r = $http->get("http://$local/health", { headers => { Authorization => 'Bearer ' . ('0' x 36) } });
is($r->{status}, 403, 'wrong token: 403');
$r = $http->post("http://$local/checkpoint?table=public.t", { headers => { Authorization => 'Basic eDp5' } });
is($r->{status}, 401, 'another scheme: 401, and no checkpoint');
$r = $http->get("http://$local/metrics", { headers => { Authorization => "Bearer $token" } });
is($r->{status}, 200, 'right token: 200');
like($r->{content}, qr/^backstop_control_unauthorized_total 3$/m, 'the three refusals are counted');
my @auth_lines = slurp_file($log) =~ /control endpoint: request with(?:out)? a (?:bearer|wrong) token/g;
is(scalar(@auth_lines), 1, 'and logged once (at most one such line a minute)');

($rc, $out, $err) = run_backstop({ env => { BACKSTOP_CONTROL_TOKEN => undef } }, 'checkpoint', '--table', 'public.t',
	'--listen', $local, '--timeout', '10s');
is($rc, 2, 'backstop checkpoint without the token: exit 2') or diag("$out\n$err");
like($err, qr/archiver answered 401/, 'reporting the 401');
($rc, $out, $err) = run_backstop('checkpoint', '--table', 'public.t', '--listen', $local, '--timeout', '10s',
	'--control-token-file', $tokfile, '--json');
is($rc, 0, 'backstop checkpoint --control-token-file') or diag("$out\n$err");
like($out, qr/"verified":true/, 'a verified recovery point');

# Malformed checkpoint requests: refused with what is wrong, nothing waited for.
my %auth = (headers => { Authorization => "Bearer $token" });
$r = $http->post("http://$local/checkpoint", \%auth);
is($r->{status}, 400, 'a checkpoint without a table: 400');
like($r->{content}, qr/"error":"usage: POST \/checkpoint\?table=schema\.table\[&lsn=X\/Y\]"/, 'with the usage');
$r = $http->post("http://$local/checkpoint?table=public.t&lsn=not-an-lsn", \%auth);
is($r->{status}, 400, 'a checkpoint at an invalid LSN: 400');
like($r->{content}, qr/"error":"invalid lsn"/, 'saying so');
$r = $http->post("http://$local/checkpoint?table=public.nope", \%auth);
is($r->{status}, 404, 'a checkpoint of a table not archived: 404');
like($r->{content}, qr/"error":"table \\"public\.nope\\" is not archived by this daemon"/, 'naming it');

# Oversized requests: refused without the archiver's memory growing.
my $hwm0 = proc_status($archiver, 'VmHWM');
my $mib = 'x' x (1024 * 1024);
my $status = raw_request($local, "POST /checkpoint?table=public.t HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $token\r\n"
	  . "Content-Length: " . (300 * 1024 * 1024) . "\r\nConnection: close\r\n\r\n", 300 * 1024 * 1024, sub { $mib });
ok(rejected($status), 'a 300 MiB body is refused (' . ($status // 'closed') . ')');
$status = raw_request($local, "POST /checkpoint?table=public.t HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $token\r\n"
	  . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n", 300 * 1024 * 1024,
	sub { sprintf("%x\r\n%s\r\n", length $mib, $mib) });
ok(rejected($status), 'a 300 MiB chunked body is refused (' . ($status // 'closed') . ')');
$status = raw_request($local, "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $token\r\n"
	  . "X-Big: " . ('a' x (2 * 1024 * 1024)) . "\r\nConnection: close\r\n\r\n");
ok(rejected($status), 'a 2 MiB header is refused (' . ($status // 'closed') . ')');
$status = raw_request($local, "GET /metrics?" . ('a' x (1024 * 1024)) . " HTTP/1.1\r\nHost: x\r\n"
	  . "Authorization: Bearer $token\r\nConnection: close\r\n\r\n");
ok(rejected($status), 'a 1 MiB URL is refused (' . ($status // 'closed') . ')');
$status = raw_request($local, "GET /metrics?x=" . ('a' x 4000) . " HTTP/1.1\r\nHost: x\r\n"
	  . "Authorization: Bearer $token\r\nConnection: close\r\n\r\n");
is($status, 414, 'a 4 kB URL (within the header limit) is answered 414');
my $hwm1 = proc_status($archiver, 'VmHWM');
SKIP:
{
	skip 'sanitizer build: memory figures mean nothing', 1 if asan_build();
	cmp_ok($hwm1 - $hwm0, '<', 32 * 1024 * 1024,
		sprintf('peak memory grew by %.1f MiB (from %.1f MiB), not by the bodies sent',
			($hwm1 - $hwm0) / 1048576, $hwm0 / 1048576));
}

# Idle and trickling connections are closed after listen_timeout (2s); a checkpoint that waits
# longer than that (its own timeout, for an LSN never reached) gets its answer.
{
	my $idle = IO::Socket::INET->new(PeerAddr => $local) or die "connect: $!";
	syswrite($idle, "POST /checkpoint?table=public.t HTTP/1.1\r\nHost: x\r\n");
	my $trickle = IO::Socket::INET->new(PeerAddr => $local) or die "connect: $!";
	my $req = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " . ('p' x 200) . "\r\n\r\n";
	my $sent = 0;
	# The peer sends one byte every 0.2 s: each byte would restart an inactivity timer.
	while ($sent < length($req) - 2)
	{
		last unless syswrite($trickle, substr($req, $sent, 1));
		$sent++;
		last if IO::Select->new($trickle)->can_read(0.2) && !sysread($trickle, my $b, 100);
	}
	cmp_ok($sent, '<', length($req) - 2, "a peer trickling one byte at a time is cut off (after $sent bytes)");
	ok(wait_for('the idle connection to be closed', sub { IO::Select->new($idle)->can_read(0) && !sysread($idle, my $b, 100) }),
		'an idle half-sent connection is closed');
	$r = $http->post("http://$local/checkpoint?table=public.t&lsn=FFFFFFFF/0&timeout_ms=5000",
		{ headers => { Authorization => "Bearer $token" } });
	is($r->{status}, 504, 'a checkpoint waiting 5 s (longer than listen_timeout) gets its answer (504)')
	  or diag("$r->{status} $r->{content}");
	cmp_ok(metric($local, 'backstop_control_timeouts_total', $token), '>=', 2, 'timeouts counted');
}
is(stop_archiver(), 0, 'archiver stopped cleanly');

# ---- a low descriptor limit and a hundred idle half-sent connections, while archiving ----
# Only settings the archiver had before (listen, segment_age) are given as flags, the others
# in the environment.
my $port2 = PostgreSQL::Test::Cluster::get_free_port();
my $listen2 = "127.0.0.1:$port2";
$log = "$dir/lowfd.log";
{
	local $ENV{BACKSTOP_LISTEN_TIMEOUT} = '3s';
	$archiver = spawn_archiver({ wrapper => [ 'prlimit', '--nofile=64:64' ] }, $log, @common, '--listen', $listen2);
}
ok(wait_for('the archiver under nofile=64', sub { (archiver_checkpoint($listen2, 'public.t', '5s'))[0] == 0 }, 90),
	'archiver running with 64 descriptors') or diag(slurp_file($log));
is(metric($listen2, 'backstop_control_max_connections'), 32, 'at most 32 connections: half the descriptors are kept');

my @idle;
for (1 .. 100)
{
	my $s = IO::Socket::INET->new(PeerAddr => $listen2) or die "connect $_: $!";
	syswrite($s, "POST /checkpoint?table=public.t HTTP/1.1\r\nHost: x\r\n");
	push @idle, $s;
}
for my $i (1 .. 30)
{
	$node->safe_psql($db, qq{INSERT INTO public.t SELECT g, 'w$i' FROM generate_series(1000 + $i * 100, 1099 + $i * 100) g;
		UPDATE public.t SET v = v || '+$i' WHERE id % 30 = $i % 30; DELETE FROM public.t WHERE id % 97 = $i;});
}
my $end_lsn = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');
my $sum = content_checksum($node, $db, 'public.t');
ok(wait_for('the workload in head.json', sub {
	my ($head) = (-e "$dir/archive/head.json" ? slurp_file("$dir/archive/head.json") : '') =~ /"flushed_lsn"\s*:\s*"([0-9A-F]+\/[0-9A-F]+)"/;
	$head && $node->safe_psql($db, "SELECT '$head'::pg_lsn >= '$end_lsn'::pg_lsn") eq 't';
}, 120), 'the workload is archived meanwhile') or diag(slurp_file($log));
ok(kill(0, $archiver), 'the archiver is running');
ok(wait_for('every idle connection to be closed', sub {
	my $open = 0;
	for my $s (@idle)
	{
		next unless $s;
		if (IO::Select->new($s)->can_read(0) && !sysread($s, my $b, 100)) { close $s; $s = undef; }
		else { $open++; }
	}
	$open == 0;
}, 180), 'all 100 idle connections were timed out (those waiting in the backlog too)');
($rc, $out, $err) = archiver_checkpoint($listen2, 'public.t', '60s');
is($rc, 0, 'a checkpoint afterwards succeeds') or diag("$out\n$err");
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.t',
	'--latest', '--into', 'public.t_rec', '--yes');
is($rc, 0, 'recover --latest') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.t_rec'), $sum, 'the table recovers exactly');
cmp_ok(metric($listen2, 'backstop_control_timeouts_total'), '>=', 100, 'the timeouts are counted');
my $text = slurp_file($log);
my @accept = $text =~ /accept/gi;
cmp_ok(scalar(@accept), '<=', 5, 'the log is not flooded with accept errors (' . scalar(@accept) . ' lines)');
cmp_ok(length($text), '<', 1024 * 1024, 'the log stays small (' . length($text) . ' bytes)');
is(stop_archiver(), 0, 'archiver stopped cleanly');

done_testing();
