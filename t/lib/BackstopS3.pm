# BackstopS3.pm — test helper: runs s3rver and the fault proxy on free loopback ports, runs tools.
package BackstopS3;

use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);

our $SRCDIR = abs_path(dirname(__FILE__) . '/../..');
our $BUILDDIR = $ENV{BACKSTOP_BUILDDIR} || $SRCDIR;
our @PIDS;

END
{
	my $status = $?;
	for my $pid (@PIDS)
	{
		kill 'TERM', $pid;
		waitpid($pid, 0);
	}
	$? = $status;
}

sub tool { return "$BUILDDIR/t/unit/storage_tool"; }
sub backstop { return "$BUILDDIR/backstop"; }

sub free_port
{
	my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', Listen => 1)
	  or die "no free port: $!";
	my $port = $s->sockport;
	close $s;
	return $port;
}

# Die (test failure) when a required server cannot start, unless skipping is allowed.
sub unavailable
{
	my ($why) = @_;
	plan skip_all => $why if $ENV{BACKSTOP_ALLOW_SKIP};
	BAIL_OUT($why);
}

# Start a program with stdout+stderr to $logfile; wait until the log matches $ready.
sub spawn_and_wait
{
	my ($argv, $logfile, $ready, $timeout) = @_;
	my $pid = fork;
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		POSIX::setsid();
		# s3rver's continuation tokens use DES, which OpenSSL 3 keeps in the legacy provider.
		$ENV{NODE_OPTIONS} = '--openssl-legacy-provider';
		open(STDOUT, '>', $logfile) or POSIX::_exit(127);
		open(STDERR, '>&', \*STDOUT) or POSIX::_exit(127);
		exec(@$argv) or POSIX::_exit(127);
	}
	push @PIDS, $pid;
	my $deadline = time + $timeout;
	while (time < $deadline)
	{
		if (open(my $fh, '<', $logfile))
		{
			local $/;
			my $text = <$fh> // '';
			return $pid if $text =~ $ready;
		}
		return undef if waitpid($pid, POSIX::WNOHANG()) == $pid;
		sleep 0.1;
	}
	return undef;
}

# Start s3rver with one bucket; returns a hash: port, endpoint, bucket, dir.
sub start_s3rver
{
	my (%opt) = @_;
	my $bucket = $opt{bucket} || 'backstop-test';
	my $bin = "$SRCDIR/node_modules/.bin/s3rver";
	unavailable("s3rver not installed (run npm ci in $SRCDIR)") unless -x $bin;
	my $dir = tempdir('backstop-s3rver-XXXXXX', TMPDIR => 1, CLEANUP => 1);
	my $port = free_port();
	# Through t/lib/s3rver-atomic.js: objects replaced whole, as S3 does (see there).
	my $pid = spawn_and_wait([ 'node', "$SRCDIR/t/lib/s3rver-atomic.js", "$SRCDIR/node_modules/s3rver", '-d', "$dir/data", '-a', '127.0.0.1', '-p', $port,
		'--configure-bucket', $bucket ], "$dir/s3rver.log", qr/S3rver listening/, 30);
	unless ($pid)
	{
		my $log = do { local (@ARGV, $/) = ("$dir/s3rver.log"); <> } // '';
		unavailable("s3rver did not start: $log");
	}
	return { pid => $pid, port => $port, bucket => $bucket, dir => $dir,
		endpoint => "http://127.0.0.1:$port" };
}

# Start the fault proxy in front of an s3rver; returns port, endpoint, control, log.
sub start_proxy
{
	my ($s3) = @_;
	my $dir = tempdir('backstop-proxy-XXXXXX', TMPDIR => 1, CLEANUP => 1);
	my $port = free_port();
	my $control = "$dir/rules.json";
	open(my $fh, '>', $control) or die;
	print $fh "[]";
	close $fh;
	my $pid = spawn_and_wait([ $^X, "$SRCDIR/t/tools/faultproxy.pl", '--listen', $port,
		'--upstream', "127.0.0.1:$s3->{port}", '--control', $control, '--log', "$dir/requests.log" ],
		"$dir/proxy.out", qr/faultproxy listening/, 15);
	unavailable("fault proxy did not start") unless $pid;
	return { pid => $pid, port => $port, control => $control, log => "$dir/requests.log",
		endpoint => "http://127.0.0.1:$port" };
}

sub set_faults
{
	my ($proxy, @rules) = @_;
	open(my $fh, '>', "$proxy->{control}.new") or die;
	print $fh encode_json(\@rules);
	close $fh;
	rename("$proxy->{control}.new", $proxy->{control}) or die;
	truncate($proxy->{log}, 0) if -e $proxy->{log};
}

sub proxy_requests
{
	my ($proxy) = @_;
	open(my $fh, '<', $proxy->{log}) or return ();
	chomp(my @lines = <$fh>);
	return @lines;
}

# Environment for backstop and storage_tool talking to $endpoint.
sub s3_env
{
	my ($endpoint) = @_;
	return (AWS_ACCESS_KEY_ID => 'S3RVER', AWS_SECRET_ACCESS_KEY => 'S3RVER',
		AWS_REGION => 'us-east-1', AWS_ENDPOINT_URL => $endpoint,
		BACKSTOP_CONFIG => '/dev/null');
}

# Run a command with extra environment and optional stdin file; returns {rc, out, err}.
sub run
{
	my (%a) = @_;
	my $dir = tempdir('backstop-run-XXXXXX', TMPDIR => 1, CLEANUP => 1);
	my $pid = fork;
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		%ENV = (%ENV, %{ $a{env} || {} });
		open(STDIN, '<', $a{stdin} || '/dev/null') or POSIX::_exit(127);
		open(STDOUT, '>', $a{stdout} || "$dir/out") or POSIX::_exit(127);
		open(STDERR, '>', "$dir/err") or POSIX::_exit(127);
		exec(@{ $a{cmd} }) or POSIX::_exit(127);
	}
	waitpid($pid, 0);
	my $rc = $? >> 8;
	my $slurp = sub { my $f = shift; return '' unless -e $f; local (@ARGV, $/) = ($f); my $t = <>; $t // '' };
	return { rc => $rc, out => ($a{stdout} ? '' : $slurp->("$dir/out")), err => $slurp->("$dir/err") };
}

# storage_tool with an S3 endpoint: st($endpoint, [options], cmd, args...)
sub st
{
	my ($endpoint, $opts, @args) = @_;
	my %extra = ref $args[-1] eq 'HASH' ? %{ pop @args } : ();
	return run(cmd => [ tool(), @$opts, @args ], env => { s3_env($endpoint) }, %extra);
}

sub write_random_file
{
	my ($path, $size) = @_;
	open(my $fh, '>:raw', $path) or die "$path: $!";
	my $chunk = join('', map { chr(int(rand(256))) } 1 .. 65536);
	my $left = $size;
	my $i = 0;
	while ($left > 0)
	{
		my $n = $left < 65536 ? $left : 65536;
		# Vary chunks so that misplaced parts are detected.
		print $fh pack('N', $i++) . substr($chunk, 4, $n - 4) if $n >= 4;
		print $fh substr($chunk, 0, $n) if $n < 4;
		$left -= $n;
	}
	close $fh;
}

sub files_equal
{
	my ($a, $b) = @_;
	return system('cmp', '-s', $a, $b) == 0;
}

1;
