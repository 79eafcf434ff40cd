# 060_recover.t — `backstop recover` and `backstop changes` against a real archive: a dropped
# table, DELETE without WHERE, damaged and missing objects, the recovery window, --dry-run,
# existing targets, and the same archive served from S3 (s3rver).
use strict;
use warnings;

use File::Find;
use IPC::Run;
use JSON::PP qw(decode_json);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);
use BackstopTest;
use BackstopS3;

my $node = new_pg_node('recover');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('recover');
my $archive = "$dir/archive";
my $storage = "file://$archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";

$node->safe_psql($db, q{
	CREATE TABLE public.acct (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) DEFAULT 0,
		note text, CONSTRAINT acct_balance_check CHECK (balance >= 0));
	CREATE INDEX acct_owner_idx ON public.acct (owner);
	CREATE TABLE public.gone (k int PRIMARY KEY, v text);
	INSERT INTO public.acct SELECT g, 'owner ' || g, g * 10, CASE WHEN g % 5 = 0 THEN 'a "note", (x)\ty' END
	  FROM generate_series(1, 500) g;
	INSERT INTO public.gone SELECT g, 'v' || g FROM generate_series(1, 50) g;
});

my $log = "$dir/archiver.log";
my $h = kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', '--db', $conn, '--all-tables', '--storage', $storage,
	  '--data-dir', "$dir/data", '--listen', $listen, '--segment-age', '1s',
	  '--table-poll-interval', '1s', '--status-interval', '1s' ],
	'<', \undef, '>', "$dir/archiver.out", '2>>', $log));


sub checkpoint
{
	my ($table) = @_;
	my ($rc) = archiver_checkpoint($listen, $table);
	return $rc == 0;
}

sub lsn { return $node->safe_psql($db, 'SELECT pg_current_wal_lsn()'); }

sub exists_table { return $node->safe_psql($db, "SELECT to_regclass('$_[0]') IS NOT NULL") eq 't'; }

ok(wait_for('archiver', sub { checkpoint('public.acct') }), 'archiver running') or diag(slurp_file($log));

# Some history: updates (TOAST-free), a key change, deletes.
$node->safe_psql($db, q{
	UPDATE public.acct SET balance = balance + 1 WHERE id % 3 = 0;
	UPDATE public.acct SET id = id + 10000 WHERE id BETWEEN 100 AND 110;
	DELETE FROM public.acct WHERE id BETWEEN 200 AND 210;
	UPDATE public.gone SET v = 'changed' WHERE k < 10;
});
my $before_delete = lsn();
my $sum_before_delete = content_checksum($node, $db, 'public.acct');
my $sum_gone = content_checksum($node, $db, 'public.gone');
$node->safe_psql($db, 'DELETE FROM public.acct');
my $after_delete = lsn();
$node->safe_psql($db, 'DROP TABLE public.gone');
$node->safe_psql($db, "INSERT INTO public.acct VALUES (1, 'after', 1, NULL)");
ok(checkpoint('public.acct'), 'checkpoint after the accident');
# The drop is seen when the archiver polls the catalog: the manifest then says so.
my ($rc0, $out0);
ok(wait_for('drop noticed', sub {
	for my $m (glob("$archive/tables/*/manifest.json"))
	{
		my $j = slurp_file($m);
		return 1 if $j =~ /"name"\s*:\s*"gone"/ && $j =~ /"status"\s*:\s*"dropped"/;
	}
	return 0;
}), 'the archiver recorded the drop');
($rc0, $out0) = run_backstop('recover', '--storage', $storage, '--table', 'public.gone', '--latest', '--dry-run', '--json');
like($out0, qr/"expected_rows": 50/, 'dropped table archived to its end');

# 1. DELETE without WHERE: recover to just before it.
my ($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.acct',
	'--to-lsn', $before_delete);
is($rc, 0, 'recover before DELETE') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.acct_recovered'), $sum_before_delete, 'recovered rows equal the table before DELETE');
like($out, qr/Checksum:\s+(-?\d+) \(Backstop\) = \1 \(PostgreSQL\)/, 'both checksums printed and equal');
like($out, qr/INSERT INTO "public"."acct" .*WHERE NOT EXISTS/s, 'copy-back SQL for deleted rows printed');
like($out, qr/UPDATE "public"."acct" o SET/, 'copy-back SQL for changed rows printed');
is($node->safe_psql($db, 'SELECT count(*) FROM public.acct'), '1', 'copy-back SQL was not executed');
like($node->safe_psql($db, "SELECT obj_description('public.acct_recovered'::regclass)"), qr/^backstop recovery of public\.acct/,
	'recovered table marked by its comment');
my $idx = $node->safe_psql($db, "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'acct_recovered'");
is($idx, 'acct_recovered_owner_idx,acct_recovered_pkey', 'indexes recreated under non-colliding names');
is($node->safe_psql($db, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.acct_recovered'::regclass AND contype = 'c'"),
	'1', 'check constraint recreated');
is($node->safe_psql($db, "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'public.acct_recovered'::regclass"),
	'0', 'column default recreated');

# --exclusive at the LSN right after the DELETE's commit still sees the rows only when before it.
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.acct',
	'--to-lsn', $after_delete, '--into', 'public.acct_after');
is($rc, 0, 'recover after DELETE');
is($node->safe_psql($db, 'SELECT count(*) FROM public.acct_after'), '0', 'after the DELETE the table was empty');
unlike($err, qr/\r|MB fetched|changes applied|rows copied/, 'not a terminal: no progress lines on stderr');
unlike($out, qr/\r|MB fetched/, 'no progress lines on stdout');
like($out, qr/^Timings:\s+plan [0-9.]+s, fetch [0-9.]+s, (?:(?:copy|replay) [0-9.]+s, ){2}validate [0-9.]+s, index [0-9.]+s, commit [0-9.]+s; total [0-9.]+s$/m,
	'the phase breakdown is printed');

# --json carries the phase timings.
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.acct',
	'--to-lsn', $before_delete, '--into', 'public.acct_json', '--json');
is($rc, 0, 'recover --json') or diag($err);
{
	my $j = decode_json($out);
	my $ph = $j->{phases};
	is(join(',', sort keys %$ph), 'commit,copy,fetch,index,plan,replay,validate', 'phases: plan, fetch, replay, copy, validate, index, commit')
		or diag(explain($ph));
	ok(!grep({ $_ !~ /^[0-9.]+$/ || $_ < 0 } values %$ph), 'each phase a number of seconds');
	my $sum = 0;
	$sum += $_ for values %$ph;
	ok($sum <= $j->{seconds}{total} + 0.01, 'phases add up to at most the total');
}
is($err, '', '--json: nothing on stderr');

# On a terminal (stderr a pseudo-terminal), the progress line shows the segments being fetched:
# bytes of the total and segments done.  Drawn from the first update (test hook).
SKIP:
{
	skip 'IO::Pty is not installed', 3 unless eval { require IO::Pty; 1 };
	my $pty = IO::Pty->new;
	my $slave = $pty->slave;
	my $pid = fork() // die "fork: $!";
	if ($pid == 0)
	{
		close($pty);
		open(STDIN, '<', '/dev/null') or die;
		open(STDOUT, '>', '/dev/null') or die;
		open(STDERR, '>&', $slave) or die;
		$ENV{BACKSTOP_TEST_PROGRESS_DELAY} = '0';
		exec(backstop_bin(), 'recover', '--db', $conn, '--storage', $storage, '--table', 'public.acct',
			'--to-lsn', $before_delete, '--into', 'public.acct_tty') or die "exec: $!";
	}
	close($slave);
	my $tty = '';
	while (1)
	{
		my $n = sysread($pty, my $buf, 65536);
		last unless $n;			# EIO once the child is gone
		$tty .= $buf;
	}
	waitpid($pid, 0);
	is($? >> 8, 0, 'recover with stderr on a terminal');
	like($tty, qr/\rrecover fetch: [0-9.]+\/[0-9.]+ MB fetched, \d+ of [1-9]\d* segments fetched/,
		'the progress line shows the bytes and segments fetched of their totals') or diag(explain($tty));
	like($tty, qr/\rrecover (?:replay|copy)/, 'then the next phase');
}

# verify: the same, its phases being the listing and the checking of the objects.
($rc, $out, $err) = run_backstop('verify', '--storage', $storage, '--json');
is($rc, 0, 'verify --json') or diag("$out\n$err");
{
	my $j = decode_json($out);
	is(join(',', sort keys %{ $j->{phases} }), 'check,list', 'verify --json: phases list and check')
		or diag(explain($j->{phases}));
}
is($err, '', 'verify --json: nothing on stderr');
($rc, $out, $err) = run_backstop('verify', '--storage', $storage);
is($rc, 0, 'verify');
unlike($out . $err, qr/\r|objects checked|MB fetched/, 'verify, not a terminal: no progress lines');

# 2. The dropped table, with --latest.
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.gone', '--latest');
is($rc, 0, 'recover dropped table') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.gone_recovered'), $sum_gone, 'dropped table recovered exactly');
like($out, qr/ALTER TABLE "public"."gone_recovered" RENAME TO "gone"/, 'copy-back renames a dropped table');

# 3. Existing target refused; --replace only replaces Backstop's own tables.
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.acct', '--latest');
isnt($rc, 0, 'existing target refused');
like($err, qr/already exists/, 'saying so');
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.acct', '--latest',
	'--replace', '--yes');
is($rc, 0, '--replace replaces an earlier recovery') or diag($err);
is($node->safe_psql($db, 'SELECT count(*) FROM public.acct_recovered'), '1', 'now at the latest point');
$node->safe_psql($db, 'CREATE TABLE public.mine (x int)');
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.acct', '--latest',
	'--into', 'public.mine', '--replace', '--yes');
isnt($rc, 0, '--replace refuses a table Backstop did not create');
like($err, qr/not created by backstop recover/, 'saying why');
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.acct', '--latest',
	'--into', 'public.acct');
is($rc, 2, 'the source table itself is never a target');

# 4. Usage and the recovery window.
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.acct');
is($rc, 2, 'no point: usage error');
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.acct',
	'--latest', '--to-lsn', '0/1');
is($rc, 2, 'two points: usage error');
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.acct',
	'--to-lsn', '0/1', '--into', 'public.w1');
isnt($rc, 0, 'point before the window refused');
like($err, qr/outside the recovery window of public\.acct: LSN \S+ .* to \S+/, 'naming the window');
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.acct',
	'--to-lsn', 'FF/0', '--into', 'public.w1');
isnt($rc, 0, 'point after the window refused');
ok(!exists_table('public.w1'), 'nothing written for a refused point');
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.acct',
	'--to-xid', '4000000000', '--into', 'public.w1');
like($err, qr/did not change table public\.acct/, 'xid that never touched the table refused');

# 5. --dry-run writes nothing and needs no database.
($rc, $out, $err) = run_backstop('recover', '--storage', $storage, '--table', 'public.acct', '--to-lsn', $before_delete,
	'--into', 'public.dry', '--dry-run');
is($rc, 0, 'dry run') or diag($err);
like($out, qr/Expected rows:\s+489/, 'dry run predicts the row count');
like($out, qr/Transactions:\s+\d+ \(\d+ row operations\)/, 'dry run counts transactions and operations');
like($out, qr/Download:\s+\d+ bytes/, 'dry run reports bytes to download');
ok(!exists_table('public.dry'), 'dry run wrote nothing');

# 6. changes: the DELETE shows full old images.
($rc, $out, $err) = run_backstop('changes', '--storage', $storage, '--table', 'public.acct', '--from-lsn', $before_delete,
	'--to-lsn', $after_delete, '--json');
is($rc, 0, 'changes') or diag($err);
my $ndel = () = $out =~ /"op": "DELETE"/g;
is($ndel, 489, 'every deleted row listed');
like($out, qr/"old": \{\s*"id": "1",\s*"owner": "owner 1"/s, 'deleted rows carry their full old image');

# 7. Damaged and missing objects: refused with exit 3, nothing written.
my $bad = "$dir/bad";
copy_tree($archive, $bad);
my $relid = $node->safe_psql($db, "SELECT 'public.acct'::regclass::oid");
my @segs = sort glob("$bad/tables/$relid/seg/*.bso");
ok(@segs > 0, 'segments exist');
{
	open(my $f, '+<:raw', $segs[0]) or die;
	seek($f, 40, 0);
	read($f, my $byte, 1);
	seek($f, 40, 0);
	print $f chr(ord($byte) ^ 0x01);
	close($f);
}
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', "file://$bad", '--table', 'public.acct',
	'--latest', '--into', 'public.bad1');
is($rc, 3, 'flipped byte: exit 3');
like($err, qr/\Q$relid\E\/seg\/.*(corrupt|verification)/, 'naming the object');
ok(!exists_table('public.bad1'), 'nothing written for a corrupt archive');
unlink($segs[0]);
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', "file://$bad", '--table', 'public.acct',
	'--latest', '--into', 'public.bad1');
is($rc, 3, 'missing segment: exit 3');
like($err, qr/is missing/, 'saying it is missing');
ok(!exists_table('public.bad1'), 'nothing written for a missing segment');

# 8. The same archive from S3.
SKIP:
{
	my $s3 = eval { BackstopS3::start_s3rver(bucket => 'bs-060') };
	skip "s3rver not available: $@", 3 unless $s3;
	my $ep = $s3->{endpoint};
	my $url = 's3://bs-060/arch';
	find({ no_chdir => 1, wanted => sub {
		# The archiver still runs: its temporary files (renamed into place) are not the archive's.
		return unless -f $_ && !/\/\.bs-tmp-[^\/]*$/;
		(my $key = $File::Find::name) =~ s/^\Q$archive\E\///;
		my $r = BackstopS3::st($ep, [ '--storage', $url ], 'put', $key, $_);
		die "put $key: $r->{err}" if $r->{rc};
	} }, $archive);
	($rc, $out, $err) = run_backstop({ env => { BackstopS3::s3_env($ep) } }, 'recover', '--db', $conn,
		'--storage', $url, '--table', 'public.acct', '--to-lsn', $before_delete, '--into', 'public.from_s3');
	is($rc, 0, 'recover from s3://') or diag("$out\n$err");
	is(content_checksum($node, $db, 'public.from_s3'), $sum_before_delete, 'S3 recovery is exact');
	($rc, $out, $err) = run_backstop({ env => { BackstopS3::s3_env($ep) } }, 'recover', '--storage', $url,
		'--table', 'public.gone', '--latest', '--dry-run');
	is($rc, 0, 'dry run from s3://');
}

$h->signal('TERM');
$h->finish;
done_testing();
