# 030_storage_s3.t — the s3:// driver against s3rver: put/get/range/head/list/delete, multipart.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use BackstopS3;
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use Test::More;

my $s3 = BackstopS3::start_s3rver(bucket => 'bs-030');
my $ep = $s3->{endpoint};
my $url = "s3://bs-030/arch/v1";
my @o = ('--storage', $url);
my $tmp = tempdir('backstop-030-XXXXXX', TMPDIR => 1, CLEANUP => 1);

my $r = BackstopS3::st($ep, \@o, 'head', 'none');
is($r->{out}, "missing\n", 'head of a missing key says missing');

BackstopS3::write_random_file("$tmp/small", 1000);
$r = BackstopS3::st($ep, \@o, 'put', 'tables/t1/seg 1', "$tmp/small");
is($r->{rc}, 0, 'small put') or diag $r->{err};
$r = BackstopS3::st($ep, \@o, 'get', 'tables/t1/seg 1', { stdout => "$tmp/small.out" });
ok(BackstopS3::files_equal("$tmp/small", "$tmp/small.out"), 'small get is byte-exact');
$r = BackstopS3::st($ep, \@o, 'head', 'tables/t1/seg 1');
like($r->{out}, qr/^exists 1000 \d+$/, 'head reports size');

$r = BackstopS3::st($ep, \@o, 'get', 'tables/t1/seg 1', 100, 50, { stdout => "$tmp/range.out" });
my $want = do { open(my $f, '<:raw', "$tmp/small"); local $/; substr(<$f>, 100, 50) };
my $got = do { open(my $f, '<:raw', "$tmp/range.out"); local $/; <$f> };
is($got, $want, 'range get 100+50');
$r = BackstopS3::st($ep, \@o, 'get', 'tables/t1/seg 1', 990, 20);
isnt($r->{rc}, 0, 'range past the end fails');
like($r->{err}, qr/22003/, 'with OUT_OF_RANGE');

$r = BackstopS3::st($ep, \@o, 'get', 'tables/t1/nope');
is($r->{rc}, 1, 'get of a missing key fails');
like($r->{err}, qr/58P01 http=404.*NoSuchKey/, 'NOT_FOUND with HTTP status and S3 code');

# Empty object.
$r = BackstopS3::st($ep, \@o, 'put', 'empty', '/dev/null');
is($r->{rc}, 0, 'empty put');
$r = BackstopS3::st($ep, \@o, 'get', 'empty');
is($r->{rc} . ':' . length($r->{out}), '0:0', 'empty get');

# Multipart: 20 MiB with 5 MiB parts, streamed in 1 MiB writes.
BackstopS3::write_random_file("$tmp/big", 20 * 1024 * 1024 + 123);
$r = BackstopS3::st($ep, [ @o, '--s3-multipart-threshold', '5MiB' ], 'put', 'big/obj', "$tmp/big");
is($r->{rc}, 0, 'multipart put') or diag $r->{err};
$r = BackstopS3::st($ep, \@o, 'get', 'big/obj', { stdout => "$tmp/big.out" });
ok(BackstopS3::files_equal("$tmp/big", "$tmp/big.out"), 'multipart object reads back byte-exact');
$r = BackstopS3::st($ep, \@o, 'get', 'big/obj', 5 * 1024 * 1024 - 10, 20, { stdout => "$tmp/br.out" });
$want = do { open(my $f, '<:raw', "$tmp/big"); local $/; substr(<$f>, 5 * 1024 * 1024 - 10, 20) };
$got = do { open(my $f, '<:raw', "$tmp/br.out"); local $/; <$f> };
is($got, $want, 'range across a part boundary');
$r = BackstopS3::run(cmd => [ BackstopS3::tool(), @o, '--s3-multipart-threshold', '5MiB', 'put-abort', 'big/aborted', "$tmp/big" ],
	env => { BackstopS3::s3_env($ep) });
is($r->{rc}, 0, 'aborted multipart put');
$r = BackstopS3::st($ep, \@o, 'head', 'big/aborted');
is($r->{out}, "missing\n", 'aborted multipart object is not visible');

# Listing with more than one page (s3rver pages at 1000 keys) and odd keys.
my @keys = map { sprintf('many/k%05d', $_) } 1 .. 1003;
for my $k ('odd/a b', 'odd/ü&<>"x', "odd/a'quote", 'odd/a+b=c') { push @keys, $k; }
my $fail = 0;
make_path("$tmp/bulk/many");
for my $i (1 .. 1003)
{
	open(my $fh, '>', sprintf("$tmp/bulk/many/k%05d", $i)) or die;
	print $fh "x" x ($i % 7);
	close $fh;
}
$r = BackstopS3::run(cmd => [ 'aws', '--endpoint-url', $ep, 's3', 'cp', '--recursive', '--quiet',
		"$tmp/bulk/", "s3://bs-030/arch/v1/" ], env => { BackstopS3::s3_env($ep) });
is($r->{rc}, 0, 'bulk upload with awscli') or diag $r->{err};
for my $k (@keys[ 1003 .. $#keys ])
{
	$r = BackstopS3::st($ep, \@o, 'put', $k, "$tmp/small");
	$fail++ if $r->{rc};
}
is($fail, 0, 'odd keys written');
$r = BackstopS3::st($ep, \@o, 'list', 'many/');
is($r->{rc}, 0, 'list of many keys') or diag $r->{err};
my @listed = map { (split /\t/)[0] } split /\n/, $r->{out};
is(scalar(@listed), 1003, 'list across pages returns every key once');
is_deeply(\@listed, [ sort @listed ], 'list is in lexicographic order');
is((split /\n/, $r->{out})[6], "many/k00007\t0", 'list reports sizes');
$r = BackstopS3::st($ep, \@o, 'list', 'odd/');
is_deeply([ map { (split /\t/)[0] } split /\n/, $r->{out} ], [ sort @keys[ 1003 .. $#keys ] ],
	'XML-escaped keys come back exactly');
$r = BackstopS3::st($ep, \@o, 'get', 'odd/ü&<>"x', { stdout => "$tmp/odd.out" });
ok(BackstopS3::files_equal("$tmp/small", "$tmp/odd.out"), 'get of a key with XML specials');
$r = BackstopS3::st($ep, [ '--storage', 's3://bs-030/arch' ], 'list', 'v1/odd/a');
like($r->{out}, qr/^v1\/odd\/a b\t1000\nv1\/odd\/a'quote\t1000\nv1\/odd\/a\+b=c\t1000\n$/, 'prefix is relative to the URL');

# Delete is idempotent.
$r = BackstopS3::st($ep, \@o, 'delete', 'tables/t1/seg 1');
is($r->{rc}, 0, 'delete');
$r = BackstopS3::st($ep, \@o, 'head', 'tables/t1/seg 1');
is($r->{out}, "missing\n", 'deleted object is gone');
$r = BackstopS3::st($ep, \@o, 'delete', 'tables/t1/seg 1');
is($r->{rc}, 0, 'deleting again succeeds');

# Configuration errors.
$r = BackstopS3::st($ep, [ '--storage', 's3://no-such-bucket' ], 'put', 'x', "$tmp/small");
like($r->{err}, qr/http=404.*NoSuchBucket/, 'missing bucket named in the error');
$r = BackstopS3::run(cmd => [ BackstopS3::tool(), @o, 'head', 'x' ],
	env => { BackstopS3::s3_env($ep), AWS_ACCESS_KEY_ID => '', AWS_SECRET_ACCESS_KEY => '' });
like($r->{err}, qr/no S3 credentials/, 'missing credentials reported');
$r = BackstopS3::run(cmd => [ BackstopS3::tool(), @o, 'get', 'x' ],
	env => { BackstopS3::s3_env($ep), AWS_ACCESS_KEY_ID => 'WRONGKEY', AWS_SECRET_ACCESS_KEY => 'verysecretvalue' });
like($r->{err}, qr/28000 http=403.*InvalidAccessKeyId/, 'unknown access key: AUTH error with code');
unlike($r->{err}, qr/verysecretvalue/, 'secret never printed');
$r = BackstopS3::run(cmd => [ BackstopS3::tool(), @o, 'head', 'x' ],
	env => { BackstopS3::s3_env($ep), AWS_ACCESS_KEY_ID => 'WRONGKEY', AWS_SECRET_ACCESS_KEY => 'verysecretvalue' });
like($r->{err}, qr/28000 http=403.*credentials/, 'HEAD without error document still explains 403');
unlike($r->{err}, qr/verysecretvalue/, 'secret never printed');

done_testing();
