#!/usr/bin/perl
# faultproxy.pl — HTTP/1.1 proxy for tests that injects S3 faults (errors, stalls, truncation, drops).
#
# Usage: faultproxy.pl --listen PORT --upstream HOST:PORT --control FILE [--log FILE]
#
# The control file holds JSON rules, re-read for every request:
#   [ {"method":"PUT", "path":"partNumber=2", "action":"status", "status":503,
#      "code":"SlowDown", "count":2}, ... ]
# The first rule whose method (exact, optional) and path (Perl regex against the request
# target, optional) match and whose count is not exhausted applies; count is decremented
# in the file (under flock), -1 means forever.  Actions:
#   status    answer "status" with an S3 XML error document carrying "code"
#   stall     read the request, then send nothing for "seconds" and close
#   truncate  forward, but cut the response body after "bytes" bytes (default: half)
#   drop      read the request and close the connection without answering
#   pass      forward unchanged
#   reply     answer "status" (default 200) with "body" (default empty) and "headers"
#             (an object of name: value), without forwarding
# Requests without a matching rule are forwarded.  Every request is logged to --log as
# "METHOD TARGET ACTION".
#
# What AWS checks and s3rver does not is checked here, before any rule: a DeleteObjects
# (POST ?delete) must carry a Content-MD5 of its body and name at most 1,000 keys, else it
# is answered 400 as AWS does (logged as action "refused").
use strict;
use warnings;
use Fcntl qw(:flock SEEK_SET);
use Digest::MD5 qw(md5_base64);
use Getopt::Long;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX ();

my ($listen, $upstream, $control, $log);
GetOptions('listen=i' => \$listen, 'upstream=s' => \$upstream,
	'control=s' => \$control, 'log=s' => \$log) or die "bad options\n";
die "usage: $0 --listen PORT --upstream HOST:PORT --control FILE\n"
  unless $listen && $upstream && $control;

$SIG{CHLD} = sub { 1 while waitpid(-1, POSIX::WNOHANG()) > 0; };
$SIG{PIPE} = 'IGNORE';

my $server = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $listen,
	Listen => 64, ReuseAddr => 1, Proto => 'tcp')
  or die "cannot listen on $listen: $!\n";
print "faultproxy listening on 127.0.0.1:$listen\n";
STDOUT->flush;

while (1)
{
	my $client = $server->accept;
	next unless $client;	# EINTR from SIGCHLD
	my $pid = fork;
	if (!defined $pid) { close $client; next; }
	if ($pid == 0)
	{
		close $server;
		handle_connection($client);
		POSIX::_exit(0);
	}
	close $client;
}

# Read until "\r\n\r\n"; returns (head, leftover) or () on EOF.
sub read_head
{
	my ($sock, $bufref) = @_;
	while ($$bufref !~ /\r\n\r\n/)
	{
		my $n = sysread($sock, my $chunk, 65536);
		return () unless $n;
		$$bufref .= $chunk;
		return () if length($$bufref) > 1024 * 1024;
	}
	my $i = index($$bufref, "\r\n\r\n");
	my $head = substr($$bufref, 0, $i + 4);
	substr($$bufref, 0, $i + 4) = '';
	return ($head);
}

sub read_exact
{
	my ($sock, $bufref, $n) = @_;
	while (length($$bufref) < $n)
	{
		my $got = sysread($sock, my $chunk, 1024 * 1024);
		return undef unless $got;
		$$bufref .= $chunk;
	}
	my $data = substr($$bufref, 0, $n);
	substr($$bufref, 0, $n) = '';
	return $data;
}

sub write_all
{
	my ($sock, $data) = @_;
	my $off = 0;
	while ($off < length $data)
	{
		my $n = syswrite($sock, $data, length($data) - $off, $off);
		return 0 unless defined $n && $n > 0;
		$off += $n;
	}
	return 1;
}

sub log_line
{
	my ($line) = @_;
	return unless $log;
	open(my $fh, '>>', $log) or return;
	flock($fh, LOCK_EX);
	print $fh "$line\n";
	close $fh;
}

# Find and consume the first matching rule.
sub take_rule
{
	my ($method, $target) = @_;
	open(my $fh, '+<', $control) or return undef;
	flock($fh, LOCK_EX);
	local $/;
	my $text = <$fh>;
	my $rules = eval { decode_json($text && $text =~ /\S/ ? $text : '[]') } || [];
	my $found;
	for my $r (@$rules)
	{
		next if defined $r->{method} && $r->{method} ne $method;
		next if defined $r->{path} && $target !~ /$r->{path}/;
		my $count = defined $r->{count} ? $r->{count} : -1;
		next if $count == 0;
		$r->{count} = $count - 1 if $count > 0;
		$found = {%$r};
		last;
	}
	if ($found)
	{
		seek($fh, 0, SEEK_SET);
		truncate($fh, 0);
		print $fh encode_json($rules);
	}
	close $fh;
	return $found;
}

sub error_response
{
	my ($status, $code) = @_;
	my %reason = (400 => 'Bad Request', 403 => 'Forbidden', 404 => 'Not Found',
		408 => 'Request Timeout', 429 => 'Too Many Requests', 500 => 'Internal Server Error',
		503 => 'Service Unavailable');
	$code ||= $status >= 500 ? 'InternalError' : 'AccessDenied';
	my %msg = (SlowDown => 'Please reduce your request rate.',
		InternalError => 'We encountered an internal error. Please try again.',
		InvalidAccessKeyId => 'The AWS Access Key Id you provided does not exist in our records.',
		InvalidRequest => 'Missing required header for this request: Content-MD5',
		BadDigest => 'The Content-MD5 you specified did not match what we received.',
		MalformedXML => 'The XML you provided was not well-formed or did not validate against our published schema',
		SignatureDoesNotMatch => 'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
		AccessDenied => 'Access Denied');
	my $body = qq{<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>$code</Code><Message>}
	  . ($msg{$code} || 'Injected fault') . qq{</Message><RequestId>FAULTPROXY</RequestId></Error>};
	return "HTTP/1.1 $status " . ($reason{$status} || 'Error') . "\r\n"
	  . "Content-Type: application/xml\r\nContent-Length: " . length($body) . "\r\n"
	  . "x-amz-request-id: FAULTPROXY\r\n\r\n" . $body;
}

sub handle_connection
{
	my ($client) = @_;
	my $buf = '';
	while (1)
	{
		my ($head) = read_head($client, \$buf);
		return unless defined $head;
		my ($method, $target) = $head =~ /^(\S+) (\S+) HTTP/;
		return unless $method;
		my $body = '';
		if ($head =~ /^Content-Length:\s*(\d+)/mi)
		{
			my $len = $1;
			# Answer an Expect: 100-continue ourselves so that the body arrives.
			write_all($client, "HTTP/1.1 100 Continue\r\n\r\n") if $head =~ /^Expect:\s*100-continue/mi;
			$body = read_exact($client, \$buf, $len);
			return unless defined $body;
		}
		elsif ($head =~ /^Transfer-Encoding:\s*chunked/mi)
		{
			write_all($client, error_response(501, 'NotImplemented'));
			return;
		}
		if ($method eq 'POST' && $target =~ /[?&]delete(?:=|&|$)/)
		{
			my ($md5) = $head =~ /^Content-MD5:\s*(\S+)/mi;
			# md5_base64 leaves out the padding.
			my $code = !defined $md5 ? 'InvalidRequest'
			  : $md5 ne md5_base64($body) . '==' ? 'BadDigest'
			  : (() = $body =~ /<Object>/g) > 1000 ? 'MalformedXML' : undef;
			if ($code)
			{
				log_line("$method $target refused");
				write_all($client, error_response(400, $code));
				next;
			}
		}
		my $rule = take_rule($method, $target);
		my $action = $rule ? $rule->{action} : 'pass';
		log_line("$method $target $action");
		if ($action eq 'reply')
		{
			my $rbody = defined $rule->{body} ? $rule->{body} : '';
			my $status = $rule->{status} || 200;
			my $hdrs = join('', map { "$_: $rule->{headers}{$_}\r\n" } sort keys %{ $rule->{headers} || {} });
			write_all($client, "HTTP/1.1 $status Reply\r\n$hdrs" . "Content-Length: " . length($rbody)
				  . "\r\nx-amz-request-id: FAULTPROXY\r\n\r\n" . $rbody);
			next;
		}
		if ($action eq 'status')
		{
			write_all($client, error_response($rule->{status} || 500, $rule->{code}));
			next;
		}
		if ($action eq 'stall')
		{
			sleep($rule->{seconds} || 30);
			return;
		}
		return if $action eq 'drop';
		# Forward with a fresh upstream connection; strip Expect (already answered).
		(my $fwd = $head) =~ s/^Expect:[^\r\n]*\r\n//mig;
		my $up = IO::Socket::INET->new(PeerAddr => $upstream, Proto => 'tcp') or return;
		write_all($up, $fwd . $body) or return;
		my $ubuf = '';
		my ($rhead) = read_head($up, \$ubuf);
		return unless defined $rhead;
		while ($rhead =~ /^HTTP\/1\.\d 1\d\d/)
		{
			($rhead) = read_head($up, \$ubuf);
			return unless defined $rhead;
		}
		my $rbody;
		if ($method eq 'HEAD' || $rhead =~ /^HTTP\/1\.\d (204|304)/)
		{
			$rbody = '';
		}
		elsif ($rhead =~ /^Content-Length:\s*(\d+)/mi)
		{
			my $len = $1;
			$rbody = read_exact($up, \$ubuf, $len);
			return unless defined $rbody;
		}
		else
		{
			# Chunked or close-delimited: relay until EOF and close.
			$rbody = $ubuf;
			while (sysread($up, my $chunk, 65536)) { $rbody .= $chunk; }
			close $up;
			write_all($client, $rhead . $rbody);
			return;
		}
		close $up;
		if ($action eq 'truncate')
		{
			my $n = defined $rule->{bytes} ? $rule->{bytes} : int(length($rbody) / 2);
			write_all($client, $rhead . substr($rbody, 0, $n));
			return;
		}
		write_all($client, $rhead . $rbody) or return;
		return if $rhead =~ /^Connection:\s*close/mi;
	}
}
