# 064_manifest_rollback.t — a manifest replaced by an older copy of itself, a segment entry deleted
# from it, its base row counts raised, or the manifest deleted while its objects remain: `verify`
# exits 3 naming the table and the evidence, `recover --latest` exits 3 and writes nothing (never
# a stale table with exit 0), and a point the evidence does not reach still recovers exactly.  An
# untouched copy of the archive verifies and recovers exactly.  The same archives from S3 (s3rver).
use strict;
use warnings;

use File::Find;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;
use BackstopS3;

my $node = new_pg_node('rollback');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('rollback');
my $archive = "$dir/archive";
my $storage = "file://$archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";
my $log = "$dir/archiver.log";

$node->safe_psql($db, q{
	CREATE TABLE public.acct (id int PRIMARY KEY, balance bigint NOT NULL, note text);
	INSERT INTO public.acct SELECT g, g * 10, 'seed' FROM generate_series(1, 1000) g;
});
my $relid = $node->safe_psql($db, "SELECT 'public.acct'::regclass::oid");
my $mpath = "$archive/tables/$relid/manifest.json";

my $h = kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', '--db', $conn, '--tables', 'public.acct',
	  '--storage', $storage, '--data-dir', "$dir/data", '--listen', $listen, '--segment-age', '1s',
	  '--status-interval', '1s' ], '<', \undef, '>', "$dir/archiver.out", '2>>', $log));

sub checkpoint { my ($rc) = archiver_checkpoint($listen, 'public.acct'); return $rc == 0; }
sub sum { return content_checksum($node, $db, $_[0] // 'public.acct'); }
sub exists_table { return $node->safe_psql($db, "SELECT to_regclass('$_[0]') IS NOT NULL") eq 't'; }

# $n transactions, one row update each.
sub batch
{
	my ($tag, $n) = @_;
	$node->safe_psql($db, "DO \$\$ BEGIN FOR i IN 1..$n LOOP UPDATE public.acct SET balance = balance + i, "
		  . "note = '$tag ' || i WHERE id = 1 + (i * 37) % 1000; COMMIT; END LOOP; END \$\$");
}

ok(wait_for('archiver', \&checkpoint), 'archiver running') or diag(slurp_file($log));

# History: a first batch, then the manifest as it is now is kept (the "older copy"); then 150
# more transactions in three batches, each sealed by a checkpoint.
batch('b0', 20);
ok(checkpoint(), 'checkpoint after batch 0');
my $old_manifest = slurp_file($mpath);
my $sum_b0 = sum();
my $old_archived_to = decode_json($old_manifest)->{archived_to};
batch('b1', 50);
ok(checkpoint(), 'checkpoint after batch 1');
my $lsn_b1 = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');
my $sum_b1 = sum();
batch('b2', 50);
ok(checkpoint(), 'checkpoint after batch 2');
batch('b3', 50);
ok(checkpoint(), 'checkpoint after batch 3');
my $sum_final = sum();
$h->signal('TERM');
ok(eval { $h->finish; 1 } && $h->result(0) == 0, 'archiver stopped cleanly');
isnt($sum_b0, $sum_final, 'the older copy is 150 transactions old');

sub lsn_num
{
	my ($s) = @_;
	my ($hi, $lo) = $s =~ m{^([0-9A-Fa-f]+)/([0-9A-Fa-f]+)$} or die "bad LSN \"$s\"";
	return hex($hi) * 4294967296 + hex($lo);
}

sub edit_manifest
{
	my ($root, $edit) = @_;
	my $p = "$root/tables/$relid/manifest.json";
	my $m = decode_json(slurp_file($p));
	$edit->($m);
	open(my $fh, '>', $p) or die "$p: $!";
	print $fh JSON::PP->new->canonical->encode($m);
	close $fh;
}

# The segment holding the first transactions of batch 2: deleting its entry leaves a hole
# after batch 1.
my $manifest = decode_json(slurp_file($mpath));
my ($hole) = grep { lsn_num($_->{first_lsn}) > lsn_num($lsn_b1) } @{ $manifest->{segments} };
ok($hole, "a segment after batch 1: $hole->{key}");
ok(scalar(grep { lsn_num($_->{first_lsn}) > lsn_num($hole->{first_lsn}) } @{ $manifest->{segments} }) > 0,
	'and segments after it');

# The scenarios: [name, how to damage a copy, what verify and recover must say].
my %scenario;
$scenario{clean} = { edit => sub { } };
$scenario{rollback} = {
	edit => sub { my ($root) = @_; open(my $fh, '>', "$root/tables/$relid/manifest.json") or die; print $fh $old_manifest; close $fh; },
	verify => qr/public\.acct \(relid $relid\) tables\/$relid\/manifest\.json: manifest is generation \d+, but head\.json records generation \d+ for it: it was replaced by an older copy/,
	recover => qr/the archive of public\.acct cannot rebuild this point exactly: .*replaced by an older copy/,
	# A point the older copy covers is still exact.
	earlier => [ $old_archived_to, $sum_b0 ],
};
$scenario{hole} = {
	edit => sub { my ($root) = @_; edit_manifest($root, sub { $_[0]{segments} = [ grep { $_->{key} ne $hole->{key} } @{ $_[0]{segments} } ]; }); },
	verify => qr/public\.acct \(relid $relid\) \Q$hole->{key}\E: not listed in the manifest, yet holds \d+ transaction\(s\) committed from \S+ to \S+ that no listed segment has.*a segment entry was removed from the manifest/,
	recover => qr/the archive of public\.acct cannot rebuild this point exactly: \Q$hole->{key}\E: not listed in the manifest/,
	earlier => [ $hole->{first_lsn}, $sum_b1 ],
};
$scenario{rows} = {
	edit => sub { my ($root) = @_; edit_manifest($root, sub { my $b = $_[0]{bases}[-1]; $b->{rows} += 5; $b->{chunks}[0]{rows} += 5; }); },
	verify => qr/public\.acct \(relid $relid\) tables\/$relid\/base\/\S+\/chunk-000001\.bso: holds \d+ rows of COPY text, the manifest records \d+/,
	recover => qr/holds \d+ rows but the manifest records \d+/,
};
$scenario{deleted} = {
	edit => sub { my ($root) = @_; unlink("$root/tables/$relid/manifest.json") or die; },
	verify => qr/tables\/$relid\/manifest\.json: missing, but head\.json records generation \d+ of the manifest of public\.acct \(relid $relid\): it was deleted; \d+ object\(s\) remain/,
	recover => qr/the archive of public\.acct is damaged: tables\/$relid\/manifest\.json is missing, but head\.json records generation \d+ of it .*the manifest was deleted/,
};

my $n = 0;
sub check_scenario
{
	my ($name, $url, $env) = @_;
	my $s = $scenario{$name};
	my $opts = { env => $env // {} };
	my $where = $url =~ /^s3/ ? 's3' : 'local';
	$n++;
	my ($rc, $out, $err) = run_backstop($opts, 'verify', '--storage', $url);
	if ($name eq 'clean')
	{
		is($rc, 0, "$where $name: verify exit 0") or diag("$out\n$err");
		like($out, qr/^OK: 1 table\(s\)/m, "$where $name: verify says OK");
	}
	else
	{
		is($rc, 3, "$where $name: verify exit 3") or diag("$out\n$err");
		like($out, $s->{verify}, "$where $name: verify names the table and the evidence");
	}
	($rc, $out, $err) = run_backstop($opts, 'recover', '--db', $conn, '--storage', $url, '--table', 'public.acct',
		'--latest', '--into', "public.r${n}_latest");
	if ($name eq 'clean')
	{
		is($rc, 0, "$where $name: recover --latest") or diag("$out\n$err");
		is(exists_table("public.r${n}_latest") ? sum("public.r${n}_latest") : 'none', $sum_final,
			"$where $name: recovered exactly");
	}
	else
	{
		is($rc, 3, "$where $name: recover --latest exit 3") or diag("$out\n$err");
		like($err, $s->{recover}, "$where $name: saying what is wrong");
		ok(!exists_table("public.r${n}_latest"), "$where $name: nothing written");
	}
	if ($s->{earlier})
	{
		my ($point, $expect) = @{ $s->{earlier} };
		($rc, $out, $err) = run_backstop($opts, 'recover', '--db', $conn, '--storage', $url, '--table', 'public.acct',
			'--to-lsn', $point, '--exclusive', '--into', "public.r${n}_earlier");
		is($rc, 0, "$where $name: a point before the evidence ($point) is still recoverable") or diag("$out\n$err");
		is(exists_table("public.r${n}_earlier") ? sum("public.r${n}_earlier") : 'none', $expect,
			"$where $name: and exact");
	}
}

for my $name (qw(clean rollback hole rows deleted))
{
	my $copy = "$dir/$name";
	copy_tree($archive, $copy);
	$scenario{$name}{edit}->($copy);
	$scenario{$name}{dir} = $copy;
	check_scenario($name, "file://$copy");
}

# The same damaged archives served from S3.
SKIP:
{
	my $s3 = eval { BackstopS3::start_s3rver(bucket => 'bs-064') };
	skip "s3rver not available: $@", 1 unless $s3;
	my $ep = $s3->{endpoint};
	for my $name (qw(clean rollback hole rows deleted))
	{
		my $root = $scenario{$name}{dir};
		my $url = "s3://bs-064/$name";
		find({ no_chdir => 1, wanted => sub {
			return unless -f $_;
			# The local driver's lock files are not objects.
			return if m{/\.bs-tmp-[^/]*$};
			(my $key = $File::Find::name) =~ s/^\Q$root\E\///;
			my $r = BackstopS3::st($ep, [ '--storage', $url ], 'put', $key, $_);
			die "put $key: $r->{err}" if $r->{rc};
		} }, $root);
		check_scenario($name, $url, { BackstopS3::s3_env($ep) });
	}
}

done_testing();
