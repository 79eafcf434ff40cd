# 031_storage_faults.t — the s3:// driver behind a fault-injecting proxy: retries, clear errors, no half objects.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use BackstopS3;
use File::Temp qw(tempdir);
use Test::More;
use Time::HiRes qw(time);

my $s3 = BackstopS3::start_s3rver(bucket => 'bs-031');
my $px = BackstopS3::start_proxy($s3);
my $ep = $px->{endpoint};
my @o = ('--storage', 's3://bs-031/f', '--retries', '3', '--retry-base-delay', '20ms');
my $tmp = tempdir('backstop-031-XXXXXX', TMPDIR => 1, CLEANUP => 1);
BackstopS3::write_random_file("$tmp/small", 4000);
BackstopS3::write_random_file("$tmp/big", 12 * 1024 * 1024 + 5);
my @mp = (@o, '--s3-multipart-threshold', '5MiB');

sub st { return BackstopS3::st($ep, @_); }
sub count_action { my ($re) = @_; return scalar grep { /$re/ } BackstopS3::proxy_requests($px); }

# Pass-through sanity.
BackstopS3::set_faults($px);
my $r = st(\@o, 'put', 'ok', "$tmp/small");
is($r->{rc}, 0, 'put through the proxy') or diag $r->{err};

# Transient faults fewer than the retries: success.
for my $f ([ 'status 500', { action => 'status', status => 500 } ],
	[ '503 SlowDown', { action => 'status', status => 503, code => 'SlowDown' } ],
	[ 'dropped connection', { action => 'drop' } ])
{
	BackstopS3::set_faults($px, { method => 'PUT', count => 2, %{ $f->[1] } });
	$r = st(\@o, 'put', "t/$f->[0]", "$tmp/small");
	is($r->{rc}, 0, "put survives 2x $f->[0]") or diag $r->{err};
	is(count_action(qr/^PUT .* (status|drop)$/), 2, "two faults were injected for $f->[0]");
	BackstopS3::set_faults($px, { method => 'GET', count => 2, %{ $f->[1] } });
	$r = st(\@o, 'get', "t/$f->[0]", { stdout => "$tmp/out" });
	ok($r->{rc} == 0 && BackstopS3::files_equal("$tmp/small", "$tmp/out"), "get survives 2x $f->[0]");
}

# Truncated body: the retry resumes where delivery stopped, output stays exact.
BackstopS3::set_faults($px, { method => 'GET', count => 1, action => 'truncate', bytes => 1500 });
$r = st(\@o, 'get', 'ok', { stdout => "$tmp/out" });
ok($r->{rc} == 0 && BackstopS3::files_equal("$tmp/small", "$tmp/out"), 'get survives a truncated body');
my @reqs = BackstopS3::proxy_requests($px);
is(scalar(@reqs), 2, 'one retry after truncation');
like($r->{err}, qr/after 1500 bytes/, 'retry logged with the resume point');

# Stall: detected by the low-speed timeout, then retried.
BackstopS3::set_faults($px, { method => 'GET', count => 1, action => 'stall', seconds => 8 });
my $t0 = time;
$r = st([ @o, '--s3-timeout', '1s' ], 'get', 'ok', { stdout => "$tmp/out" });
my $took = time - $t0;
ok($r->{rc} == 0 && BackstopS3::files_equal("$tmp/small", "$tmp/out"), 'get survives a stall');
ok($took < 6, sprintf('stall detected by the timeout (%.1f s)', $took));

# Persistent faults: clear failure with status, S3 code and attempt count.
BackstopS3::set_faults($px, { method => 'PUT', count => -1, action => 'status', status => 503, code => 'SlowDown' });
$r = st(\@o, 'put', 'never', "$tmp/small");
is($r->{rc}, 1, 'persistent 503 fails');
like($r->{err}, qr/BS002 http=503\].*HTTP 503 SlowDown.*after 4 attempts/, 'message has status, code and attempts');
is(count_action(qr/^PUT /), 4, '1 + retries attempts');

for my $code ('InvalidAccessKeyId', 'SignatureDoesNotMatch')
{
	BackstopS3::set_faults($px, { count => -1, action => 'status', status => 403, code => $code });
	$r = st(\@o, 'get', 'ok');
	like($r->{err}, qr/28000 http=403\].*$code/, "403 $code: AUTH error with the S3 code");
	is(count_action(qr/^GET /), 1, "403 $code is not retried");
}

BackstopS3::set_faults($px, { count => -1, action => 'drop' });
$r = st(\@o, 'get', 'ok');
like($r->{err}, qr/BS002 http=0\].*after 4 attempts/, 'persistent connection drops: transient error after all attempts');

# Multipart: part 2 fails for good -> no object, upload aborted.
BackstopS3::set_faults($px, { method => 'PUT', path => 'partNumber=2', count => -1, action => 'status', status => 500 });
$r = st(\@mp, 'put', 'mp/fail', "$tmp/big");
is($r->{rc}, 1, 'multipart put with a persistently failing part fails');
like($r->{err}, qr/HTTP 500 InternalError/, 'failure names the status');
ok(count_action(qr/^DELETE .*uploadId=/) >= 1, 'the multipart upload was aborted');
BackstopS3::set_faults($px);
$r = st(\@o, 'head', 'mp/fail');
is($r->{out}, "missing\n", 'no partial object is visible after a failed multipart upload');

# Complete fails for good -> still no object.
BackstopS3::set_faults($px, { method => 'POST', path => 'uploadId=', count => -1, action => 'status', status => 503, code => 'SlowDown' });
$r = st(\@mp, 'put', 'mp/nocomplete', "$tmp/big");
is($r->{rc}, 1, 'multipart put fails when complete keeps failing');
BackstopS3::set_faults($px);
$r = st(\@o, 'head', 'mp/nocomplete');
is($r->{out}, "missing\n", 'no object after a failed complete');

# Multipart with transient part faults succeeds and is byte-exact.
BackstopS3::set_faults($px, { method => 'PUT', path => 'partNumber=2', count => 2, action => 'drop' },
	{ method => 'PUT', path => 'partNumber=3', count => 1, action => 'status', status => 503, code => 'SlowDown' });
$r = st(\@mp, 'put', 'mp/ok', "$tmp/big");
is($r->{rc}, 0, 'multipart put survives transient part faults') or diag $r->{err};
is(count_action(qr/^PUT .*partNumber=/), 6, '3 parts + 3 retried attempts');
BackstopS3::set_faults($px);
$r = st(\@o, 'get', 'mp/ok', { stdout => "$tmp/out" });
ok(BackstopS3::files_equal("$tmp/big", "$tmp/out"), 'multipart object intact');

# Large get truncated twice mid-way: resumes with a Range from the delivered byte.
BackstopS3::set_faults($px, { method => 'GET', count => 2, action => 'truncate', bytes => 3000000 });
$r = st(\@o, 'get', 'mp/ok', { stdout => "$tmp/out" });
ok($r->{rc} == 0 && BackstopS3::files_equal("$tmp/big", "$tmp/out"), 'large get resumes twice and is exact');

# Listing and delete retry too.
BackstopS3::set_faults($px, { method => 'GET', path => 'list-type=2', count => 2, action => 'status', status => 500 });
$r = st(\@o, 'list', '');
like($r->{out}, qr/^mp\/ok\t12582917\nok\t4000\n/, 'list survives transient faults');
BackstopS3::set_faults($px, { method => 'DELETE', count => 1, action => 'status', status => 429, code => 'SlowDown' });
$r = st(\@o, 'delete', 'ok');
is($r->{rc}, 0, 'delete survives a 429');

# backstop doctor explains storage failures.
sub doctor
{
	my (@extra) = @_;
	return BackstopS3::run(cmd => [ BackstopS3::backstop(), 'doctor', '--storage', 's3://bs-031/f',
			'--retries', '1', '--retry-base-delay', '10ms', @extra ], env => { BackstopS3::s3_env($ep) });
}
BackstopS3::set_faults($px, { count => -1, action => 'status', status => 403, code => 'InvalidAccessKeyId' });
$r = doctor();
is($r->{rc}, 1, 'doctor fails with bad credentials');
like($r->{out}, qr/reason: bad or missing credentials/, 'doctor says bad credentials');
BackstopS3::set_faults($px, { method => 'PUT', count => -1, action => 'status', status => 403, code => 'AccessDenied' });
$r = doctor('--json');
is($r->{rc}, 1, 'doctor fails without write permission');
like($r->{out}, qr/"reason": "no write permission"/, 'doctor --json says no write permission');
BackstopS3::set_faults($px, { method => 'DELETE', count => -1, action => 'status', status => 403, code => 'AccessDenied' });
$r = doctor();
is($r->{rc}, 0, 'doctor succeeds when delete is refused');
like($r->{out}, qr/delete is refused \(good for immutability\)/, 'and says so');
unlike($r->{out}, qr/WARNING: objects can be deleted/, 'no delete warning then');
BackstopS3::set_faults($px);
$r = doctor();
is($r->{rc}, 0, 'doctor succeeds on healthy storage');
like($r->{out}, qr/put +ok +[\d.]+ ms\n  get +ok +[\d.]+ ms\n  list +ok +[\d.]+ ms\n  delete +ok/, 'per-step latencies');
like($r->{out}, qr/WARNING: objects can be deleted/, 'warns that deletes are permitted');
$r = BackstopS3::run(cmd => [ BackstopS3::backstop(), 'doctor', '--storage', 's3://bs-031/f', '--retries', '1',
		'--retry-base-delay', '10ms' ], env => { BackstopS3::s3_env('http://127.0.0.1:' . BackstopS3::free_port()) });
like($r->{out}, qr/reason: storage unreachable/, 'doctor says unreachable');
$r = BackstopS3::run(cmd => [ BackstopS3::backstop(), 'doctor', '--storage', 's3://no-bucket-here', '--retries', '0' ],
	env => { BackstopS3::s3_env($ep) });
like($r->{out}, qr/reason: the bucket does not exist/, 'doctor says the bucket is missing');

done_testing();
