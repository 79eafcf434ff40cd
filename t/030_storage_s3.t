# 030_storage_s3.t — the s3:// driver against s3rver: put/get/range/head/list/list-after/delete/delete-many, multipart.
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

# Listing after a key, through the fault proxy: its log shows the requests made, and it
# checks what AWS checks and s3rver does not (DeleteObjects' Content-MD5 and 1,000 keys).
my $px = BackstopS3::start_proxy($s3);
my $pep = $px->{endpoint};
my @po = (@o, '--retries', '2', '--retry-base-delay', '10ms');
sub lists { return grep { /^GET \S*list-type=2/ } BackstopS3::proxy_requests($px); }
sub keys_of { return [ map { (split /\t/)[0] } split /\n/, $_[0] ]; }
BackstopS3::set_faults($px);
$r = BackstopS3::st($pep, \@po, 'list-after', 'many/', 'many/k00002');
is($r->{rc}, 0, 'list after a key') or diag $r->{err};
is_deeply(keys_of($r->{out}), [ @keys[ 2 .. 1002 ] ], 'after many/k00002: the 1001 keys that follow, in order');
my @l = lists();
is(scalar(@l), 2, 'in two pages');
like($l[0], qr/[?&]start-after=arch%2Fv1%2Fmany%2Fk00002(&|\s)/, 'the first asks S3 to start after the key (under the URL\'s prefix)');
unlike($l[1], qr/start-after/, 'the next one follows the continuation token');
BackstopS3::set_faults($px);
$r = BackstopS3::st($pep, \@po, 'list-after', 'many/', 'many/k01000');
is_deeply(keys_of($r->{out}), [ 'many/k01001', 'many/k01002', 'many/k01003' ], 'after many/k01000: three keys');
is(scalar(lists()), 1, 'in one request: the server started after the key');
$r = BackstopS3::st($pep, \@po, 'list-after', '', 'odd/a+b=c');
is_deeply(keys_of($r->{out}), [ 'odd/ü&<>"x', 'tables/t1/seg 1' ], 'a start key with URL and XML specials');
$r = BackstopS3::st($pep, \@po, 'list-after', 'many/', 'many/k01003');
is($r->{rc} . ':' . $r->{out}, '0:', 'after the last key: nothing');
$r = BackstopS3::st($pep, \@po, 'list-after', 'many/', '../x');
like($r->{err}, qr/22023.*invalid storage key/, 'an invalid start key is refused');
# A store that ignores start-after (a page from the start): nothing at or before the key is reported.
BackstopS3::set_faults($px, { method => 'GET', path => 'list-type=2', action => 'reply', count => 1,
	body => '<ListBucketResult><IsTruncated>false</IsTruncated>'
	  . join('', map { "<Contents><Key>arch/v1/many/k0000$_</Key><Size>1</Size></Contents>" } 1 .. 4)
	  . '</ListBucketResult>' });
$r = BackstopS3::st($pep, \@po, 'list-after', 'many/', 'many/k00002');
is_deeply(keys_of($r->{out}), [ 'many/k00003', 'many/k00004' ], 'keys at or before the start key are dropped client-side');

# Ranged reads: exact or refused.
$r = BackstopS3::st($ep, \@o, 'get', 'tables/t1/seg 1', 999, 1, { stdout => "$tmp/last.out" });
$want = do { open(my $f, '<:raw', "$tmp/small"); local $/; substr(<$f>, 999, 1) };
$got = do { open(my $f, '<:raw', "$tmp/last.out"); local $/; <$f> };
ok($r->{rc} == 0 && $got eq $want, 'the last byte');
$r = BackstopS3::st($ep, \@o, 'get', 'tables/t1/seg 1', 1000);
is($r->{rc} . ':' . length($r->{out}), '0:0', 'from the end to the end: nothing, no error (as locally)') or diag $r->{err};
$r = BackstopS3::st($ep, \@o, 'get', 'tables/t1/seg 1', 1000, 1);
like($r->{err}, qr/22003/, 'one byte at the end: OUT_OF_RANGE');
$r = BackstopS3::st($ep, \@o, 'get', 'tables/t1/seg 1', 5000);
like($r->{err}, qr/22003/, 'an offset past the end: OUT_OF_RANGE');
BackstopS3::set_faults($px, { method => 'GET', path => 'seg', action => 'reply', status => 206, count => 1,
	headers => { 'Content-Range' => 'bytes 0-9/1000' }, body => 'abcdefghij' });
$r = BackstopS3::st($pep, \@po, 'get', 'tables/t1/seg 1', 100, 10);
like($r->{err}, qr/08P01.*range "bytes 0-9\/1000" is not the one asked for/, 'a partial answer of other bytes is refused');
is($r->{out}, '', 'and none of its bytes is given out');

# Deleting many: 1,003 keys, 5 missing ones and one with XML specials, in DeleteObjects of at
# most 1,000 keys, each with its Content-MD5 (the proxy refuses any other).
open(my $kf, '>', "$tmp/doomed") or die;
print $kf "$_\n" for @keys[ 0 .. 1002 ], (map { "many/missing-$_" } 1 .. 5), 'odd/ü&<>"x';
close $kf;
BackstopS3::set_faults($px);
$r = BackstopS3::st($pep, \@po, 'delete-many', "$tmp/doomed");
is($r->{rc}, 0, 'delete-many of 1,009 keys') or diag $r->{err};
my @posts = grep { /^POST / } BackstopS3::proxy_requests($px);
# s3rver may answer 500 to the second (it deletes in parallel and races removing the emptied
# directory); the driver's retry then repeats it.
ok(@posts >= 2 && @posts <= 4, 'two DeleteObjects requests (and any retry)') or diag join("\n", @posts, $r->{err});
is(scalar(grep { !/^POST \/bs-030\?delete= pass$/ } @posts), 0, 'all accepted (Content-MD5 right, at most 1,000 keys)');
$r = BackstopS3::st($ep, \@o, 'list', 'many/');
is($r->{rc} . ':' . $r->{out}, '0:', 'every key is gone');
$r = BackstopS3::st($ep, \@o, 'head', 'odd/ü&<>"x');
is($r->{out}, "missing\n", 'the key with XML specials too');
$r = BackstopS3::st($ep, \@o, 'head', 'odd/a b');
like($r->{out}, qr/^exists/, 'a key not named stays');
# Keys S3 refuses one by one: a permanent refusal is reported, a transient one sent again.
for my $k ('pk/a', 'pk/b') { BackstopS3::st($ep, \@o, 'put', $k, "$tmp/small"); }
open($kf, '>', "$tmp/pk") or die;
print $kf "pk/a\npk/b\n";
close $kf;
my $refusal = sub {
	my ($code) = @_;
	return { method => 'POST', path => 'delete', action => 'reply', count => 1,
		body => "<DeleteResult><Error><Key>arch/v1/pk/a</Key><Code>$code</Code><Message>no &amp; no</Message></Error></DeleteResult>" };
};
BackstopS3::set_faults($px, $refusal->('AccessDenied'));
$r = BackstopS3::st($pep, \@po, 'delete-many', "$tmp/pk");
is($r->{rc}, 1, 'a key refused: delete-many fails');
like($r->{err}, qr/BS001.*1 of 2 keys not deleted: "pk\/a": AccessDenied: no & no/, 'naming the key, its code and message');
BackstopS3::set_faults($px, $refusal->('InternalError'));
$r = BackstopS3::st($pep, \@po, 'delete-many', "$tmp/pk");
is($r->{rc}, 0, 'a key refused for now is sent again') or diag $r->{err};
is(scalar(grep { /^POST / } BackstopS3::proxy_requests($px)), 2, 'in a second request');
$r = BackstopS3::st($ep, \@o, 'head', 'pk/a');
is($r->{out}, "missing\n", 'and is deleted (pk/b is not: the injected answer said it was)');
BackstopS3::set_faults($px, { method => 'POST', path => 'delete', action => 'reply', count => 1,
	body => '<Error><Code>AccessDenied</Code></Error>' });
$r = BackstopS3::st($pep, \@po, 'delete-many', "$tmp/pk");
like($r->{err}, qr/08P01.*DeleteObjects.*not a whole <DeleteResult>/, 'a 200 answer that is not a DeleteResult is refused');

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
