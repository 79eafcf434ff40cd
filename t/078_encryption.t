# 078_encryption.t — encryption at rest: archive and recover exactly with a key file, a
# passphrase and on S3; nothing of the table (rows, names) readable in storage; a missing or
# wrong key is a clear error; tampered and swapped objects are refused; key rotation keeps
# the older objects readable.
use strict;
use warnings;

use File::Copy qw(copy);
use File::Find;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;
use BackstopS3;

my $node = new_pg_node('encryption');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('encryption');
my $archive = "$dir/archive";
my $storage = "file://$archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $marker = 'PLAINTEXT-MARKER-7f3a9c';

sub key_file
{
	my ($name, $content, $mode) = @_;
	my $path = "$dir/$name";
	open(my $fh, '>', $path) or die "$path: $!";
	print $fh $content;
	close $fh;
	chmod($mode // 0600, $path);
	return $path;
}
my $key_a = key_file('a.key', ('a1' x 32) . "\n");
my $key_b = key_file('b.key', ('b2' x 32) . "\n");
my $key_c = key_file('c.key', ('c3' x 32) . "\n");

sub lsn { return $node->safe_psql($db, 'SELECT pg_current_wal_lsn()'); }

# Run the archiver until every transaction committed at or before $end is in storage.
sub archive_to
{
	my ($end, $store, $slot, @extra) = @_;
	my %opts = ref $extra[0] eq 'HASH' ? %{ shift @extra } : ();
	return run_backstop({ timeout => 120, %opts }, 'archive', '--db', $conn,
		'--tables', 'public.zebra_vault,public.okapi_ledger', '--storage', $store,
		'--data-dir', "$dir/data-$slot", '--slot', $slot, '--publication', $slot,
		'--listen', "127.0.0.1:$port", '--segment-age', '1h', '--end-lsn', $end, @extra);
}

sub recover_into
{
	my ($store, $into, $point, @extra) = @_;
	my %opts = ref $extra[0] eq 'HASH' ? %{ shift @extra } : ();
	return run_backstop(\%opts, 'recover', '--db', $conn, '--storage', $store, '--table', 'public.zebra_vault',
		@$point, '--into', "public.$into", '--no-indexes', '--yes', @extra);
}

sub stored_files
{
	my ($root) = @_;
	my @files;
	find({ no_chdir => 1, wanted => sub { push @files, $_ if -f $_ } }, $root);
	return sort @files;
}

sub slurp_raw
{
	my ($f) = @_;
	open(my $fh, '<:raw', $f) or die "$f: $!";
	local $/;
	my $t = <$fh>;
	return $t // '';
}

$node->safe_psql($db, qq{
	CREATE TABLE public.zebra_vault (id int PRIMARY KEY, secret text, amount numeric(12,2));
	CREATE TABLE public.okapi_ledger (id int PRIMARY KEY, note text);
	INSERT INTO public.okapi_ledger SELECT g, 'note ' || g FROM generate_series(1, 50) g;
});
my $lsn0 = lsn();
my ($rc, $out, $err) = archive_to($lsn0, $storage, 'enc_a', '--encryption-key-file', $key_a);
is($rc, 0, 'first start with a key file: base copies, encryption.json') or diag($err);
like($err, qr/encrypted with key id [0-9a-f]{16}/, 'the archiver logs the key id');

$node->safe_psql($db, qq{
	INSERT INTO public.zebra_vault SELECT g, 'row ' || g, g * 1.5 FROM generate_series(1, 1000) g;
	INSERT INTO public.zebra_vault VALUES (5000, '$marker', 42);
	UPDATE public.zebra_vault SET amount = amount + 1 WHERE id % 3 = 0;
	DELETE FROM public.zebra_vault WHERE id BETWEEN 100 AND 150;
	UPDATE public.okapi_ledger SET note = 'changed' WHERE id < 5;
});
my $lsn1 = lsn();
my $sum1 = content_checksum($node, $db, 'public.zebra_vault');
($rc, $out, $err) = archive_to($lsn1, $storage, 'enc_a', '--encryption-key-file', $key_a);
is($rc, 0, 'second run stores the changes') or diag($err);

# 1. Storage holds no plaintext: every object starts with the encryption header.
{
	my @files = stored_files($archive);
	ok(scalar(grep { m{/seg/} } @files) >= 2, 'segments were stored') or diag(join("\n", @files));
	my @leaks = grep { my $t = slurp_raw($_); index($t, $marker) >= 0 || index($t, 'zebra_vault') >= 0 } @files;
	is_deeply(\@leaks, [], 'no stored byte holds the marker row or the table name');
	my @plain = grep { !m{/encryption\.json$} && substr(slurp_raw($_), 0, 8) ne 'BSENC001' } @files;
	is_deeply(\@plain, [], 'every object but encryption.json is encrypted (lease.json, head.json, manifests too)');
	my $cfg = decode_json(slurp_raw("$archive/encryption.json"));
	is(scalar @{ $cfg->{key_ids} }, 1, 'encryption.json records one key id');
	is($cfg->{kdf}{name}, 'scrypt', 'and the passphrase KDF with its salt');
}

# 2. Round trip: recover exactly, info and verify with the key.
($rc, $out, $err) = recover_into($storage, 'z1', [ '--to-lsn', $lsn1 ], '--encryption-key-file', $key_a);
is($rc, 0, 'recover with the key') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.z1'), $sum1, 'the recovered table is exact');
is($node->safe_psql($db, "SELECT secret FROM public.z1 WHERE id = 5000"), $marker, 'the marker row is back');
($rc, $out, $err) = run_backstop('verify', '--storage', $storage, '--encryption-key-file', $key_a);
is($rc, 0, 'verify with the key') or diag("$out\n$err");
($rc, $out, $err) = run_backstop('info', '--storage', $storage, '--encryption-key-file', $key_a);
is($rc, 0, 'info with the key') or diag("$out\n$err");
like($out, qr/zebra_vault/, 'info names the table');

# 3. A missing or wrong key: exit 2, a clear message, never garbage.
for my $cmd ([ 'info' ], [ 'verify' ], [ 'changes', '--table', 'public.zebra_vault', '--from-lsn', $lsn0, '--to-lsn', $lsn1 ])
{
	($rc, $out, $err) = run_backstop(@$cmd, '--storage', $storage);
	is($rc, 2, "$cmd->[0] without a key: exit 2") or diag("$out\n$err");
	like($err, qr/is encrypted.*configure its key/, "$cmd->[0] without a key says the archive is encrypted");
}
($rc, $out, $err) = recover_into($storage, 'zx', [ '--latest' ]);
is($rc, 2, 'recover without a key: exit 2');
($rc, $out, $err) = recover_into($storage, 'zx', [ '--latest' ], '--encryption-key-file', $key_c);
is($rc, 2, 'recover with a wrong key: exit 2') or diag($err);
like($err, qr/wrong encryption key for the archive/, 'naming the wrong key');
($rc, $out, $err) = run_backstop('info', '--storage', $storage, '--encryption-key-file', "$dir/nonexistent.key");
is($rc, 2, 'a missing key file: exit 2');
like($err, qr/could not open encryption_key_file/, 'naming the file');
key_file('loose.key', ('a1' x 32) . "\n", 0644);
($rc, $out, $err) = run_backstop('info', '--storage', $storage, '--encryption-key-file', "$dir/loose.key");
is($rc, 2, 'a key file others can read: exit 2');
like($err, qr/accessible by others/, 'saying so');
($rc, $out, $err) = run_backstop('info', '--storage', $storage, '--encryption-passphrase', 'correct horse battery');
is($rc, 2, '--encryption-passphrase on the command line is refused');
unlike($err, qr/correct horse/, 'without repeating it');
is($node->safe_psql($db, "SELECT to_regclass('public.zx') IS NULL"), 't', 'nothing written on a key error');
($rc, $out, $err) = archive_to($lsn1, $storage, 'enc_a');
is($rc, 2, 'the archiver without the key refuses the encrypted archive') or diag($err);
like($err, qr/is encrypted/, 'saying so');

# 4. Tampered and swapped objects: exit 3, naming the object.
my $relid = $node->safe_psql($db, "SELECT 'public.zebra_vault'::regclass::oid");
my $relid2 = $node->safe_psql($db, "SELECT 'public.okapi_ledger'::regclass::oid");
{
	my $bad = "$dir/tampered";
	copy_tree($archive, $bad);
	my @segs = sort glob("$bad/tables/$relid/seg/*.bso");
	open(my $f, '+<:raw', $segs[0]) or die;
	seek($f, 60, 0);
	read($f, my $byte, 1);
	seek($f, 60, 0);
	print $f chr(ord($byte) ^ 0x01);
	close($f);
	($rc, $out, $err) = recover_into("file://$bad", 'zt', [ '--to-lsn', $lsn1 ], '--encryption-key-file', $key_a);
	is($rc, 3, 'a flipped bit in a segment: exit 3') or diag($err);
	like($err, qr/seg\/.*failed authentication: wrong key or tampered/, 'naming the object');
	($rc, $out, $err) = run_backstop('verify', '--storage', "file://$bad", '--encryption-key-file', $key_a);
	is($rc, 3, 'verify finds the tampered segment') or diag("$out\n$err");
	like($out . $err, qr/failed authentication/, 'and says so');
}
{
	my $bad = "$dir/swapped";
	copy_tree($archive, $bad);
	copy("$bad/tables/$relid2/manifest.json", "$bad/tables/$relid/manifest.json") or die;
	($rc, $out, $err) = recover_into("file://$bad", 'zs', [ '--latest' ], '--encryption-key-file', $key_a);
	is($rc, 3, "another table's manifest in place of this one's: exit 3") or diag($err);
	like($err, qr/manifest\.json.*failed authentication/, 'the swap is detected');
	is($node->safe_psql($db, "SELECT to_regclass('public.zs') IS NULL"), 't', 'nothing written');
}

# 5. Rotation: key B with A as old key; new objects use B, old ones stay readable.
$node->safe_psql($db, qq{
	INSERT INTO public.zebra_vault SELECT g, 'late ' || g, g FROM generate_series(2001, 2300) g;
	DELETE FROM public.zebra_vault WHERE id BETWEEN 400 AND 420;
});
my $lsn2 = lsn();
my $sum2 = content_checksum($node, $db, 'public.zebra_vault');
($rc, $out, $err) = archive_to($lsn2, $storage, 'enc_a', '--encryption-key-file', $key_b);
is($rc, 2, 'a new key without the old one is refused') or diag($err);
like($err, qr/wrong encryption key/, 'as a wrong key');
($rc, $out, $err) = archive_to($lsn2, $storage, 'enc_a', '--encryption-key-file', $key_b,
	'--encryption-old-key-file', "$key_c,$key_a");
is($rc, 0, 'the archiver rotates to key B') or diag($err);
like($err, qr/new objects are encrypted with key id/, 'logging the new key id');
is(scalar @{ decode_json(slurp_raw("$archive/encryption.json"))->{key_ids} }, 2, 'encryption.json records both keys');
my %ids;
for my $f (stored_files($archive))
{
	next if $f =~ /encryption\.json$/;
	$ids{ unpack('H*', substr(slurp_raw($f), 12, 8)) }++;
}
is(scalar keys %ids, 2, 'objects of both keys are in storage');
($rc, $out, $err) = recover_into($storage, 'z2', [ '--to-lsn', $lsn2 ], '--encryption-key-file', $key_b,
	'--encryption-old-key-file', $key_a);
is($rc, 0, 'recover across both keys') or diag($err);
is(content_checksum($node, $db, 'public.z2'), $sum2, 'exact at the point written with B');
($rc, $out, $err) = recover_into($storage, 'z3', [ '--to-lsn', $lsn1 ], '--encryption-key-file', $key_b,
	'--encryption-old-key-file', $key_a);
is($rc, 0, 'recover the earlier point') or diag($err);
is(content_checksum($node, $db, 'public.z3'), $sum1, 'exact at the point written with A');
($rc, $out, $err) = recover_into($storage, 'z4', [ '--to-lsn', $lsn2 ], '--encryption-key-file', $key_b);
is($rc, 2, 'without the old key the objects of A cannot be read: exit 2') or diag($err);
like($err, qr/encrypted with key id [0-9a-f]{16}, which is not configured/, 'naming the missing key id');
($rc, $out, $err) = run_backstop('verify', '--storage', $storage, '--encryption-key-file', $key_b,
	'--encryption-old-key-file', $key_a);
is($rc, 0, 'verify across both keys') or diag("$out\n$err");

# 6. A passphrase (environment), in a new archive.
{
	my $pstore = "file://$dir/pass-archive";
	my %env = (env => { BACKSTOP_ENCRYPTION_PASSPHRASE => 'correct horse battery staple' });
	($rc, $out, $err) = archive_to($lsn2, $pstore, 'enc_p', \%env);
	is($rc, 0, 'archive with a passphrase from the environment') or diag($err);
	unlike(slurp_raw("$dir/pass-archive/head.json"), qr/zebra/, 'head.json is encrypted');
	($rc, $out, $err) = recover_into($pstore, 'zp', [ '--latest' ], \%env);
	is($rc, 0, 'recover with the passphrase') or diag($err);
	is(content_checksum($node, $db, 'public.zp'), $sum2, 'exact');
	my $pf = key_file('pass.txt', "wrong horse battery staple\n");
	($rc, $out, $err) = recover_into($pstore, 'zq', [ '--latest' ], '--encryption-passphrase-file', $pf);
	is($rc, 2, 'a wrong passphrase: exit 2') or diag($err);
	like($err, qr/wrong encryption key/, 'before any object is read');
	# Rotation away from the passphrase: key B, the passphrase as an old key.
	my $good = key_file('good-pass.txt', "correct horse battery staple\n");
	$node->safe_psql($db, "UPDATE public.zebra_vault SET amount = 0 WHERE id < 10");
	my $lsn3 = lsn();
	my $sum3 = content_checksum($node, $db, 'public.zebra_vault');
	($rc, $out, $err) = archive_to($lsn3, $pstore, 'enc_p', '--encryption-key-file', $key_b,
		'--encryption-old-passphrase-file', $good);
	is($rc, 0, 'rotation from a passphrase to key B') or diag($err);
	($rc, $out, $err) = recover_into($pstore, 'zr', [ '--latest' ], '--encryption-key-file', $key_b,
		'--encryption-old-passphrase-file', $good);
	is($rc, 0, 'recover across the passphrase and key B') or diag($err);
	is(content_checksum($node, $db, 'public.zr'), $sum3, 'exact');
	# A plaintext archive is never mixed with encrypted objects.
	($rc, $out, $err) = archive_to($lsn2, "file://$dir/plain-archive", 'enc_plain');
	is($rc, 0, 'a plaintext archive') or diag($err);
	# The scan of section 1 can fail: without a key, the names are there to see.
	ok(scalar(grep { index(slurp_raw($_), 'zebra_vault') >= 0 } stored_files("$dir/plain-archive")),
		'a plaintext archive shows the table name (the leak check is not vacuous)');
	($rc, $out, $err) = archive_to($lsn2, "file://$dir/plain-archive", 'enc_plain', '--encryption-key-file', $key_a);
	is($rc, 2, 'the archiver with a key refuses to write into a plaintext archive') or diag($err);
	like($err, qr/holds objects \("head\.json"\) but is not encrypted/, 'saying so');
	($rc, $out, $err) = run_backstop('info', '--storage', "file://$dir/plain-archive", '--encryption-key-file', $key_a);
	is($rc, 2, 'a reader with a key refuses a plaintext archive') or diag("$out\n$err");
	like($err, qr/is not encrypted/, 'saying so');
}

# 7. S3 (s3rver): the same, through the S3 driver.
SKIP:
{
	my $s3 = eval { BackstopS3::start_s3rver(bucket => 'bs-078') };
	skip "s3rver not available: $@", 9 unless $s3;
	my $ep = $s3->{endpoint};
	my $url = 's3://bs-078/enc';
	my %env = (env => { BackstopS3::s3_env($ep) });
	($rc, $out, $err) = archive_to($lsn2, $url, 'enc_s3', \%env, '--encryption-key-file', $key_a);
	is($rc, 0, 'archive to s3:// with a key') or diag($err);
	($rc, $out, $err) = recover_into($url, 'zs3', [ '--latest' ], \%env, '--encryption-key-file', $key_a);
	is($rc, 0, 'recover from s3://') or diag($err);
	is(content_checksum($node, $db, 'public.zs3'), content_checksum($node, $db, 'public.zebra_vault'),
		'exact (the live table has not changed since)');
	my $list = BackstopS3::st($ep, [ '--storage', $url ], 'list');
	is($list->{rc}, 0, 'list the raw objects');
	my @keys = map { (split /\t/)[0] } split /\n/, $list->{out};
	ok(scalar(grep { m{/base/.*chunk} } @keys) >= 1, 'base copies are in the bucket');
	my (@leaks, @plain);
	for my $k (@keys)
	{
		my $g = BackstopS3::st($ep, [ '--storage', $url ], 'get', $k);
		push @leaks, $k if index($g->{out}, $marker) >= 0 || index($g->{out}, 'zebra_vault') >= 0;
		push @plain, $k if $k ne 'encryption.json' && substr($g->{out}, 0, 8) ne 'BSENC001';
	}
	is_deeply(\@leaks, [], 'no object in the bucket holds the marker row or the table name');
	is_deeply(\@plain, [], 'every object in the bucket is encrypted');
	($rc, $out, $err) = recover_into($url, 'zs4', [ '--latest' ], \%env, '--encryption-key-file', $key_c);
	is($rc, 2, 'a wrong key on s3://: exit 2') or diag($err);
	($rc, $out, $err) = run_backstop({ env => $env{env} }, 'verify', '--storage', $url);
	is($rc, 2, 'verify without a key on s3://: exit 2') or diag("$out\n$err");
}

done_testing();
