# 077_expire.t — retention.  A table archived over several re-bases (rebase_ratio 1, so every
# batch of changes gets a new base copy at the next table check), with its content checksum
# recorded at a point after each batch.  `expire --dry-run` lists what would go and the window;
# an expire interrupted between its manifest store and its deletes (BACKSTOP_TEST_EXPIRE_EXIT_AFTER_STORE)
# leaves only unreferenced objects, which verify reports as warnings and the next expire
# removes; --keep-bases and a --keep-window computed from the recorded base times cut where
# they should; every kept point recovers exactly, every expired point is refused as expired;
# verify is clean; abandoned base copies older than --orphan-age go.  Then the archiver's own
# expiry (--expire-interval) under load, with a standalone expire refused meanwhile and a
# recovery at the oldest kept point running concurrently.  The same archive from S3 (s3rver).
use strict;
use warnings;

use File::Copy qw(copy);
use File::Find;
use File::Path qw(mkpath);
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use BackstopTest;
use BackstopS3;

my $node = new_pg_node('expire');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('expire');
my $archive = "$dir/archive";
my $storage = "file://$archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";
my $log = "$dir/archiver.log";

$node->safe_psql($db, q{
	CREATE TABLE public.acct (id int PRIMARY KEY, balance bigint NOT NULL, note text);
	INSERT INTO public.acct SELECT g, g * 10, 'seed' FROM generate_series(1, 500) g;
});
# A table dropped early on: its window is counted back from its drop, so expiry keeps it.
$node->safe_psql($db, q{
	CREATE TABLE public.gone (id int PRIMARY KEY, v int);
	INSERT INTO public.gone SELECT g, g FROM generate_series(1, 100) g;
});
my $relid = $node->safe_psql($db, "SELECT 'public.acct'::regclass::oid");
my $gone_relid = $node->safe_psql($db, "SELECT 'public.gone'::regclass::oid");
my $gpath = "$archive/tables/$gone_relid/manifest.json";
my $mpath = "$archive/tables/$relid/manifest.json";

sub manifest { return decode_json(slurp_file($mpath)); }
sub sum { return content_checksum($node, $db, $_[0] // 'public.acct'); }
sub exists_table { return $node->safe_psql($db, "SELECT to_regclass('$_[0]') IS NOT NULL") eq 't'; }
sub checkpoint { my ($rc) = archiver_checkpoint($listen, 'public.acct'); return $rc == 0; }

sub lsn_num
{
	my ($s) = @_;
	my ($hi, $lo) = $s =~ m{^([0-9A-Fa-f]+)/([0-9A-Fa-f]+)$} or die "bad LSN \"$s\"";
	return hex($hi) * 4294967296 + hex($lo);
}

# Unix seconds (float) of a manifest time.
sub epoch_of
{
	my ($t) = @_;
	return $node->safe_psql($db, "SELECT extract(epoch FROM '$t'::timestamptz)");
}

my @archiver = (backstop_bin(), 'archive', '--db', $conn, '--tables', 'public.acct,public.gone', '--storage', $storage,
	'--data-dir', "$dir/data", '--listen', $listen, '--segment-age', '200ms', '--status-interval', '1s',
	'--table-poll-interval', '200ms');
my $h = kill_at_exit(IPC::Run::start([ @archiver, '--rebase-ratio', '1', '--rebase-min-interval', '0' ],
	'<', \undef, '>', "$dir/archiver.out", '2>>', $log));
ok(wait_for('archiver', \&checkpoint), 'archiver running') or diag(slurp_file($log));
ok(wait_for('the first base', sub { -e $mpath && @{ manifest()->{bases} } >= 1 }), 'first base copy stored');

ok(wait_for('the base of public.gone', sub { -e $gpath && @{ decode_json(slurp_file($gpath))->{bases} } >= 1 }),
	'public.gone archived');
$node->safe_psql($db, "UPDATE public.gone SET v = v + 1 WHERE id <= 10");
my $sum_gone = sum('public.gone');
# Re-based for that change (rebase_ratio 1): two base copies, then dropped.
ok(wait_for('a second base of public.gone', sub { checkpoint() && @{ decode_json(slurp_file($gpath))->{bases} } >= 2 }),
	'public.gone has two base copies');
$node->safe_psql($db, "DROP TABLE public.gone");
ok(wait_for('public.gone marked dropped', sub { checkpoint() && decode_json(slurp_file($gpath))->{status} eq 'dropped' }),
	'public.gone marked dropped');

# Points: LSN, time and checksum after each round's batch (one transaction, so the content
# at any LSN from a point up to the next batch's start is the point's).
my @points;
my ($l0, $t0) = split /\|/, $node->safe_psql($db, "SELECT pg_current_wal_lsn(), clock_timestamp()");
push @points, { lsn => $l0, time => $t0, sum => sum(), round => 0 };
my $rounds = 5;
for my $i (1 .. $rounds)
{
	my $nb = @{ manifest()->{bases} };
	my $start = $node->safe_psql($db, "SELECT pg_current_wal_insert_lsn()");
	my ($lsn, $ts) = split /\|/, $node->safe_psql($db, "UPDATE public.acct SET balance = balance + $i, "
		  . "note = 'round $i' WHERE id % 25 = $i; SELECT pg_current_wal_lsn(), clock_timestamp()");
	push @points, { lsn => $lsn, time => $ts, sum => sum(), round => $i, start => $start };
	ok(checkpoint(), "round $i: checkpoint");
	ok(wait_for("round $i re-base", sub { checkpoint() && @{ manifest()->{bases} } > $nb }), "round $i: a new base copy");
}
# The last base was taken ahead of the stream: complete once the stream passes it.
ok(wait_for('the stream to pass the last base', sub {
	my $m = manifest();
	checkpoint() && lsn_num($m->{archived_to}) >= lsn_num($m->{bases}[-1]{lsn}) }), 'the stream passed the last base');
$h->signal('TERM');
ok(eval { $h->finish; 1 } && $h->result(0) == 0, 'archiver stopped cleanly');

my $m0 = manifest();
cmp_ok(scalar(@{ $m0->{bases} }), '>=', $rounds + 1, scalar(@{ $m0->{bases} }) . ' base copies');

# The table's content at an LSN: a point's, from it until the next batch starts (each batch
# is one transaction); undef inside a batch (from its start to the point after its commit).
sub content_at
{
	my ($lsn) = @_;
	for my $i (0 .. $#points)
	{
		next if lsn_num($points[$i]{lsn}) > lsn_num($lsn);
		return $points[$i]{sum} if $i == $#points || lsn_num($lsn) < lsn_num($points[$i + 1]{start});
	}
	return undef;
}

# The oldest point at or after $lsn whose content is known: $lsn itself when it is not inside
# a batch (a re-base taken while the next batch ran), else the next recorded point.
sub known_point_from
{
	my ($lsn) = @_;
	return ($lsn, content_at($lsn)) if defined content_at($lsn);
	my ($p) = grep { lsn_num($_->{lsn}) >= lsn_num($lsn) } @points;
	return ($p->{lsn}, $p->{sum});
}

# The objects a cut at base index $k removes.
sub doomed_by
{
	my ($m, $k) = @_;
	my $cut = lsn_num($m->{bases}[$k]{lsn});
	my @keys;
	for my $b (@{ $m->{bases} }[ 0 .. $k - 1 ])
	{
		push @keys, map { $_->{key} } @{ $b->{chunks} };
	}
	push @keys, map { $_->{key} } grep { lsn_num($_->{last_end_lsn}) <= $cut } @{ $m->{segments} };
	return sort @keys;
}

# A copy of the untouched archive for the S3 part.
sub clone_archive
{
	my ($to) = @_;
	find({ no_chdir => 1, wanted => sub {
		(my $rel = $File::Find::name) =~ s/^\Q$archive\E//;
		return if $rel =~ m{/\.bs-tmp-};
		if (-d $_) { mkpath("$to$rel"); }
		else { copy($_, "$to$rel") or die "copy $_: $!"; }
	} }, $archive);
}
clone_archive("$dir/pristine");

# Recovering a point: [exit code, stderr, checksum or 'none'].
my $n = 0;
sub recover_at
{
	my ($url, $env, @target) = @_;
	$n++;
	my ($rc, $out, $err) = run_backstop({ env => $env // {} }, 'recover', '--db', $conn, '--storage', $url,
		'--table', 'public.acct', @target, '--into', "public.r$n");
	return ($rc, "$out\n$err", exists_table("public.r$n") ? sum("public.r$n") : 'none');
}

# Everything about one archive (local or S3) from here.
sub check_archive
{
	my ($url, $where, $env, $local) = @_;
	my $o = { env => $env // {} };
	my $m = decode_json(slurp_file("$dir/pristine/tables/$relid/manifest.json"));
	my $k = @{ $m->{bases} } - 3;	# --keep-bases 3

	# Dry run: what would go, and the window after; nothing is touched.
	my ($rc, $out, $err) = run_backstop($o, 'expire', '--storage', $url, '--keep-bases', '3', '--dry-run', '--json');
	is($rc, 0, "$where: expire --dry-run") or diag("$out\n$err");
	my $plan = eval { decode_json($out) } // {};
	my ($t) = grep { ($_->{relid} // 0) == $relid } @{ $plan->{tables} // [] };
	is_deeply([ sort @{ $t->{objects} // [] } ], [ doomed_by($m, $k) ],
		"$where: dry run lists the base chunks before the third newest base and the segments ending before it");
	is($t->{bases_removed}, $k, "$where: dry run: $k base copies would go");
	is($t->{window}{from_lsn}, $m->{bases}[$k]{lsn}, "$where: dry run: the window would start at the kept base");
	($rc, $out, $err) = run_backstop($o, 'expire', '--storage', $url, '--keep-bases', '3', '--dry-run');
	like($out, qr/^public\.acct \(relid $relid, active\): would remove $k base copies, \d+ segment\(s\), 0 orphan\(s\), \d+ bytes; window after expiry: \Q$m->{bases}[$k]{lsn}\E \(base copy taken [^)]+\) to \S+$/m,
		"$where: dry run text names the table, what goes and the window") or diag($out);
	like($out, qr/^  would delete \Q$m->{bases}[0]{chunks}[0]{key}\E$/m, "$where: dry run lists the keys");
	($rc, $out, $err) = run_backstop($o, 'verify', '--storage', $url);
	is($rc, 0, "$where: the dry run changed nothing (verify)") or diag("$out\n$err");
	($rc, $out, $err) = recover_at($url, $env, '--to-lsn', $points[0]{lsn});
	is($err, $points[0]{sum}, "$where: the oldest point still recovers after the dry run") or diag($out);

	# Interrupted between the manifest store and the deletes.
	($rc, $out, $err) = run_backstop({ env => { %{ $env // {} }, BACKSTOP_TEST_EXPIRE_EXIT_AFTER_STORE => 1 } },
		'expire', '--storage', $url, '--keep-bases', '3');
	is($rc, 1, "$where: expire stopped by the test hook after the manifest store");
	like($err, qr/exiting after the manifest store/, "$where: says so");
	($rc, $out, $err) = run_backstop($o, 'verify', '--storage', $url);
	is($rc, 0, "$where: verify after the interrupted expire: not damaged") or diag("$out\n$err");
	my @left = doomed_by($m, $k);
	my $noted = grep { my $key = $_; $out =~ /^warning: .*\Q$key\E: not listed in the manifest: (expired|an expired base copy)/m } @left;
	is($noted, scalar(@left), "$where: verify notes each of the " . scalar(@left) . " objects left as expired leftovers")
		or diag($out);
	# A point before the new window: refused as expired, not as damage.
	my ($expired) = grep { lsn_num($_->{lsn}) < lsn_num($m->{bases}[$k]{lsn}) } reverse @points;
	($rc, $out, $err) = recover_at($url, $env, '--to-lsn', $expired->{lsn});
	isnt($rc, 0, "$where: a point before the window is refused");
	like($out, qr/LSN \Q$expired->{lsn}\E was expired by the archive's retention \(backstop expire at [^)]+\): the recovery window of public\.acct now starts at LSN \Q$m->{bases}[$k]{lsn}\E/,
		"$where: refused as expired") or diag($out);
	unlike($out, qr/damaged|corrupt/i, "$where: not as damage");
	is($err, 'none', "$where: nothing written");
	($rc, $out, $err) = recover_at($url, $env, '--to-time', $points[0]{time});
	like($out, qr/time .* was expired by the archive's retention/, "$where: a time before the window is refused as expired")
		or diag($out);
	($rc, $out, $err) = run_backstop($o, 'info', '--storage', $url, '--table', 'public.acct');
	like($out, qr/^  recoverable:  \Q$m->{bases}[$k]{lsn}\E /m, "$where: info shows the window after expiry") or diag($out);
	like($out, qr/^  expired:      points before \Q$m->{bases}[$k]{lsn}\E /m, "$where: info shows the expiry");

	# Now with a window computed from the recorded base times: the cut falls after base k+1's
	# time and before base k+2's, so base k+1 serves the window's start.
	my $keep = $k + 1;
	my $t_keep = epoch_of($m->{bases}[$keep]{time});
	my $window_ms = int((time() - $t_keep) * 1000);
	($rc, $out, $err) = run_backstop($o, 'expire', '--storage', $url, '--keep-window', "${window_ms}ms", '--json');
	is($rc, 0, "$where: expire --keep-window ${window_ms}ms") or diag("$out\n$err");
	my $res = eval { decode_json($out) } // {};
	($t) = grep { ($_->{relid} // 0) == $relid } @{ $res->{tables} // [] };
	is($t->{window}{from_lsn}, $m->{bases}[$keep]{lsn}, "$where: the window starts at the base taken at or before its start")
		or diag($out);
	is_deeply([ sort @{ $t->{orphans} // [] } ], [ @left ], "$where: the leftovers of the interrupted expire are removed");
	if ($local)
	{
		is(scalar(grep { -e "$archive/$_" } doomed_by($m, $keep)), 0, "$where: no expired object is left in storage");
	}
	my ($tg) = grep { ($_->{relid} // 0) == $gone_relid } @{ $res->{tables} // [] };
	is($tg->{bases_removed}, 0, "$where: the dropped table keeps its base copies (its window ends at its drop)")
		or diag($out);
	($rc, $out, $err) = run_backstop($o, 'recover', '--db', $conn, '--storage', $url, '--table', 'public.gone',
		'--latest', '--into', "public.gone_$where");
	is($rc, 0, "$where: the dropped table still recovers") or diag("$out\n$err");
	is(exists_table("public.gone_$where") ? sum("public.gone_$where") : 'none', $sum_gone, "$where: exactly");
	my $after = decode_json((run_backstop($o, 'info', '--storage', $url, '--table', 'public.acct', '--json'))[1]);
	my ($ti) = @{ $after->{tables} };
	is($ti->{recovery_window}{from_lsn}, $m->{bases}[$keep]{lsn}, "$where: info --json: the window after expiry");
	is($ti->{expired}{before_lsn}, $m->{bases}[$keep]{lsn}, "$where: info --json: expired before");

	# Every kept point exactly; every expired one refused as expired.
	for my $p (@points)
	{
		my $kept = lsn_num($p->{lsn}) >= lsn_num($m->{bases}[$keep]{lsn});
		($rc, $out, $err) = recover_at($url, $env, '--to-lsn', $p->{lsn});
		if ($kept)
		{
			is($rc, 0, "$where: round $p->{round} point $p->{lsn} (kept) recovers") or diag($out);
			is($err, $p->{sum}, "$where: round $p->{round}: exact");
		}
		else
		{
			like($out, qr/was expired by the archive's retention/, "$where: round $p->{round} point $p->{lsn} (expired) refused as expired");
		}
	}
	# The oldest kept point is the kept base itself.
	my ($first, $first_sum) = known_point_from($m->{bases}[$keep]{lsn});
	($rc, $out, $err) = recover_at($url, $env, '--to-lsn', $first);
	is($err, $first_sum, "$where: the oldest kept point ($first; the kept base is $m->{bases}[$keep]{lsn}) recovers exactly")
		or diag($out);
	($rc, $out, $err) = run_backstop($o, 'verify', '--storage', $url);
	is($rc, 0, "$where: verify clean after expiry") or diag("$out\n$err");
	unlike($out, qr/not listed/, "$where: no leftovers") or diag($out);
	# Nothing more to do: a second run keeping as much removes nothing.
	($rc, $out, $err) = run_backstop($o, 'expire', '--storage', $url, '--keep-bases', scalar(@{ $m->{bases} }) - $keep);
	like($out, qr/^expired: 0 object\(s\) removed$/m, "$where: a second run removes nothing") or diag("$out\n$err");
	return $keep;
}

# ---------- local storage ----------
my $kept = check_archive($storage, 'local', {}, 1);

# Abandoned base copies: under a table's directory (a base never listed) and a directory
# without any manifest (a table dropped during its first copy).  Old ones go, a fresh one
# (perhaps an upload in progress) stays until it is --orphan-age old.
my $old = time() - 3 * 86400;
for my $f ("tables/$relid/base/00000000FF000000/chunk-000001.bso", "tables/4000000000/base/0000000001000000/chunk-000001.bso")
{
	(my $d = "$archive/$f") =~ s{/[^/]+$}{};
	mkpath($d);
	open(my $fh, '>', "$archive/$f") or die; print $fh "abandoned\n"; close $fh;
	utime($old, $old, "$archive/$f") or die;
}
mkpath("$archive/tables/$relid/base/00000000FF000001");
open(my $fresh, '>', "$archive/tables/$relid/base/00000000FF000001/chunk-000001.bso") or die;
print $fresh "uploading\n";
close $fresh;
my ($rc, $out, $err) = run_backstop('expire', '--storage', $storage, '--keep-bases', '10');
is($rc, 0, 'expire removes orphans') or diag("$out\n$err");
ok(!-e "$archive/tables/$relid/base/00000000FF000000/chunk-000001.bso", 'an old abandoned base copy is removed');
ok(!-e "$archive/tables/4000000000/base/0000000001000000/chunk-000001.bso", 'an old directory without a manifest is removed');
ok(-e "$archive/tables/$relid/base/00000000FF000001/chunk-000001.bso", 'a fresh one stays');
($rc, $out, $err) = run_backstop('expire', '--storage', $storage, '--keep-bases', '10', '--orphan-age', '0');
ok(!-e "$archive/tables/$relid/base/00000000FF000001/chunk-000001.bso", '--orphan-age 0 removes it');
($rc, $out, $err) = run_backstop('verify', '--storage', $storage);
is($rc, 0, 'verify clean') or diag("$out\n$err");
like($out, qr/: 0 problem\(s\), 0 warning\(s\)/, 'no warnings') or diag($out);

# Usage.
($rc, $out, $err) = run_backstop('expire', '--storage', $storage);
is($rc, 2, 'expire without a policy: usage error');
like($err, qr/no retention policy: give --keep-window and\/or --keep-bases/, 'saying what is missing');

mkpath("$dir/empty");
($rc, $out, $err) = run_backstop('expire', '--storage', "file://$dir/empty", '--keep-bases', '1');
is($rc, 1, 'expire where there is no archive fails');
like($err, qr/no archive at file:\/\/\Q$dir\E\/empty/, 'saying so');
ok(!-e "$dir/empty/lease.json", 'and writes no lease there');

# ---------- the archiver's own expiry, under load ----------
# The stream resumes; the archiver expires down to its newest base every second while a
# load runs and a recovery of the oldest kept point runs at the same time.
my $m1 = manifest();
my $newest = $m1->{bases}[-1];
my ($newest_point, $at_newest) = known_point_from($newest->{lsn});
$h = kill_at_exit(IPC::Run::start([ @archiver, '--expire-interval', '1s', '--keep-bases', '1' ],
	'<', \undef, '>', "$dir/archiver2.out", '2>>', $log));
ok(wait_for('archiver', \&checkpoint), 'archiver running again') or diag(slurp_file($log));
my $load = $node->background_psql($db);
$load->query_safe("INSERT INTO public.acct SELECT g, g, 'load' FROM generate_series(1001, 1100) g");
my $rec = IPC::Run::start([ backstop_bin(), 'recover', '--db', $conn, '--storage', $storage, '--table', 'public.acct',
	'--to-lsn', $newest_point, '--into', 'public.concurrent' ], '<', \undef, '>', \my $rec_out, '2>', \my $rec_err);
ok(wait_for('the archiver expires', sub { slurp_file($log) =~ /expire: public\.acct: removing \d+ base cop/ }),
	'the archiver expired the table') or diag(slurp_file($log));
($rc, $out, $err) = run_backstop('expire', '--storage', $storage, '--keep-bases', '1');
is($rc, 1, 'a standalone expire is refused while the archiver holds the lease');
like($err, qr/an archiver writes to this archive .*run expiry inside it with --expire-interval, or stop it first/s,
	'saying to use --expire-interval or stop it') or diag($err);
$load->query_safe("UPDATE public.acct SET balance = balance + 1 WHERE id > 1000");
ok(checkpoint(), 'checkpoint under load');
ok(wait_for('the expire pass', sub { slurp_file($log) =~ /expire: \d+ object\(s\) removed/ }), 'objects removed');
$rec->finish;
is($rec->result(0), 0, 'the concurrent recovery at the oldest kept point succeeded') or diag("$rec_out\n$rec_err");
is(exists_table('public.concurrent') ? sum('public.concurrent') : 'none', $at_newest, 'and is exact');
$load->quit;
my $sum_load = sum();
ok(checkpoint(), 'final checkpoint');
$h->signal('TERM');
ok(eval { $h->finish; 1 } && $h->result(0) == 0, 'archiver stopped cleanly');
my $m2 = manifest();
is(scalar(@{ $m2->{bases} }), 1, 'one base copy left');
is($m2->{expired_before}, $newest->{lsn}, 'expired before the newest base');
($rc, $out, $err) = recover_at($storage, {}, '--latest');
is($err, $sum_load, 'the latest point recovers exactly after expiry under load') or diag($out);
($rc, $out, $err) = recover_at($storage, {}, '--to-lsn', $newest_point);
is($err, $at_newest, 'the oldest kept point recovers exactly') or diag($out);
for my $p (grep { lsn_num($_->{lsn}) < lsn_num($newest->{lsn}) } @points)
{
	($rc, $out, $err) = recover_at($storage, {}, '--to-lsn', $p->{lsn});
	like($out, qr/was expired by the archive's retention/, "round $p->{round}: expired by the archiver, refused as expired");
}
is(scalar(@{ decode_json(slurp_file($gpath))->{bases} }), 1, 'the archiver expired the dropped table down to one base too');
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.gone', '--latest',
	'--into', 'public.gone_after');
is(exists_table('public.gone_after') ? sum('public.gone_after') : 'none', $sum_gone, 'and it still recovers exactly')
	or diag("$out\n$err");
($rc, $out, $err) = run_backstop('verify', '--storage', $storage);
is($rc, 0, 'verify clean after the archiver\'s expiry') or diag("$out\n$err");
unlike($out, qr/not listed/, 'no leftovers') or diag($out);

# ---------- S3 ----------
SKIP:
{
	my $s3 = eval { BackstopS3::start_s3rver(bucket => 'bs-077') };
	skip "s3rver not available: $@", 1 unless $s3;
	my $ep = $s3->{endpoint};
	my $root = "$dir/pristine";
	my $url = "s3://bs-077/a";
	find({ no_chdir => 1, wanted => sub {
		return unless -f $_;
		return if m{/\.bs-tmp-[^/]*$};
		(my $key = $File::Find::name) =~ s/^\Q$root\E\///;
		my $r = BackstopS3::st($ep, [ '--storage', $url ], 'put', $key, $_);
		die "put $key: $r->{err}" if $r->{rc};
	} }, $root);
	check_archive($url, 's3', { BackstopS3::s3_env($ep) }, 0);
}

done_testing();
