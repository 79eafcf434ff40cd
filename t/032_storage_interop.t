# 032_storage_interop.t — objects written by the s3:// driver and by awscli are read back byte-exact by the other.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use BackstopS3;
use File::Temp qw(tempdir);
use Test::More;

my $s3 = BackstopS3::start_s3rver(bucket => 'bs-032');
my $ep = $s3->{endpoint};
my @o = ('--storage', 's3://bs-032/interop', '--s3-multipart-threshold', '8MiB');
my $tmp = tempdir('backstop-032-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my %env = BackstopS3::s3_env($ep);

sub aws { return BackstopS3::run(cmd => [ 'aws', '--endpoint-url', $ep, @_ ], env => \%env); }

BackstopS3::write_random_file("$tmp/big", 40 * 1024 * 1024 + 77);
BackstopS3::write_random_file("$tmp/small", 3333);

for my $case ([ 'driver-big', 'x/big object ü.bin', "$tmp/big" ],
	[ 'driver-small', "x/small 'quoted' & <tag> é.bin", "$tmp/small" ])
{
	my ($name, $key, $file) = @$case;
	my $r = BackstopS3::st($ep, \@o, 'put', $key, $file);
	is($r->{rc}, 0, "$name: driver put") or diag $r->{err};
	$r = aws('s3', 'cp', '--quiet', "s3://bs-032/interop/$key", "$tmp/$name.aws");
	is($r->{rc}, 0, "$name: aws s3 cp reads it") or diag $r->{err};
	ok(BackstopS3::files_equal($file, "$tmp/$name.aws"), "$name: byte-exact via awscli");
	$r = aws('s3api', 'head-object', '--bucket', 'bs-032', '--key', "interop/$key");
	like($r->{out}, qr/"ContentLength": ${\ (-s $file)}/, "$name: s3api head-object size");
}

for my $case ([ 'aws-big', 'y/aws big ü.bin', "$tmp/big" ], [ 'aws-small', 'y/aws small + é.bin', "$tmp/small" ])
{
	my ($name, $key, $file) = @$case;
	my $r = aws('s3', 'cp', '--quiet', $file, "s3://bs-032/interop/$key");
	is($r->{rc}, 0, "$name: aws s3 cp writes it") or diag $r->{err};
	$r = BackstopS3::st($ep, \@o, 'get', $key, { stdout => "$tmp/$name.drv" });
	is($r->{rc}, 0, "$name: driver get") or diag $r->{err};
	ok(BackstopS3::files_equal($file, "$tmp/$name.drv"), "$name: byte-exact via the driver");
	$r = BackstopS3::st($ep, \@o, 'head', $key);
	like($r->{out}, qr/^exists ${\ (-s $file)} /, "$name: driver head size");
}

my $r = BackstopS3::st($ep, \@o, 'list', '');
my @listed = map { (split /\t/)[0] } split /\n/, $r->{out};
is_deeply(\@listed, [ sort("x/big object ü.bin", "x/small 'quoted' & <tag> é.bin", 'y/aws big ü.bin', 'y/aws small + é.bin') ],
	'driver lists objects from both writers');
$r = aws('s3api', 'list-objects-v2', '--bucket', 'bs-032', '--prefix', 'interop/', '--query', 'Contents[].Key', '--output', 'text');
is(join("\n", sort split /\t|\n/, $r->{out}), join("\n", map { "interop/$_" } @listed), 'awscli lists the same keys');

$r = BackstopS3::st($ep, \@o, 'delete', 'y/aws big ü.bin');
$r = aws('s3api', 'head-object', '--bucket', 'bs-032', '--key', 'interop/y/aws big ü.bin');
isnt($r->{rc}, 0, 'awscli no longer sees an object the driver deleted');

# s3rver does not check SigV4 signatures: check libcurl's against botocore's signer instead.
SKIP:
{
	my $py = BackstopS3::run(cmd => [ 'python3', '-c', 'import botocore.auth' ]);
	skip 'python3 botocore not available', 2 if $py->{rc} != 0;
	my $port = BackstopS3::free_port();
	open(my $fh, '>', "$tmp/sig.py") or die;
	print $fh <<'PY';
import json, re, socket, sys
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', int(sys.argv[1]))); srv.listen(8); srv.settimeout(20)
print('ready', flush=True)
for _ in range(int(sys.argv[2])):
    c, _a = srv.accept(); data = b''
    while b'\r\n\r\n' not in data: data += c.recv(65536)
    head, body = data.split(b'\r\n\r\n', 1)
    lines = head.decode('latin1').split('\r\n')
    h = {k.strip().lower(): v.strip() for k, v in (l.split(':', 1) for l in lines[1:])}
    n = int(h.get('content-length', '0'))
    while len(body) < n: body += c.recv(65536)
    c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'); c.close()
    method, target, _v = lines[0].split(' ')
    signed = re.search(r'SignedHeaders=([^,]+)', h['authorization']).group(1).split(';')
    sig = re.search(r'Signature=([0-9a-f]+)', h['authorization']).group(1)
    req = AWSRequest(method=method, url='http://' + h['host'] + target,
                     headers={k: v for k, v in h.items() if k in signed}, data=body)
    req.context['timestamp'] = h['x-amz-date']
    a = S3SigV4Auth(Credentials('AKIDEXAMPLE', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY'), 's3', 'eu-west-1')
    cr = a.canonical_request(req)
    print(method, 'OK' if a.signature(a.string_to_sign(req, cr), req) == sig else 'MISMATCH', flush=True)
PY
	close $fh;
	my $pid = BackstopS3::spawn_and_wait([ 'python3', "$tmp/sig.py", $port, 5 ], "$tmp/sig.out", qr/ready/, 10);
	ok($pid, 'signature checker started');
	my %senv = (AWS_ACCESS_KEY_ID => 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY => 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
		AWS_REGION => 'eu-west-1', AWS_ENDPOINT_URL => "http://127.0.0.1:$port", BACKSTOP_CONFIG => '/dev/null');
	my @so = ('--storage', 's3://bs-032/p x', '--retries', '0');
	BackstopS3::run(cmd => [ BackstopS3::tool(), @so, @$_ ], env => \%senv)
	  for ([ 'put', "a b/ü+&=~'.txt", "$tmp/small" ], [ 'get', 'k', 5, 10 ], [ 'list', 'pre/fix' ],
		[ 'delete', 'k' ], [ 'head', 'k' ]);
	waitpid($pid, 0);
	my $out = do { local (@ARGV, $/) = ("$tmp/sig.out"); <> };
	is(() = $out =~ /^(PUT|GET|DELETE|HEAD) OK$/mg, 5, 'libcurl SigV4 signatures match botocore for put/get/list/delete/head')
	  or diag $out;
}

done_testing();
