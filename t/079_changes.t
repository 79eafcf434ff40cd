# 079_changes.t — finding the bad transaction: `backstop changes` over every archived table
# (--summary, open end, --since/--until absolute and relative in the user's time zone, --xid,
# whole-second warnings), the printed recover command that undoes a transaction, quoted names
# pasted back; recover --to-time in the user's zone; and recovery tables left out by an
# --all-tables archiver until they are renamed into place.
use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $NY = 'America/New_York';
my $node = new_pg_node('changes', extra_conf => "track_commit_timestamp = on\n");
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('changes');
my $archive = "$dir/archive";
my $storage = "file://$archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";
my $billing = q{"Billing"."Invoice Lines"};    # as SQL, --table and the output write it

$node->safe_psql($db, qq{
	CREATE TABLE public.acct (id int PRIMARY KEY, v text);
	CREATE SCHEMA "Billing";
	CREATE TABLE $billing (id int PRIMARY KEY, amount int);
	CREATE TABLE public.logt (id int PRIMARY KEY);
	INSERT INTO public.acct SELECT g, 'v' || g FROM generate_series(1, 20) g;
	INSERT INTO $billing SELECT g, g * 100 FROM generate_series(1, 5) g;
	INSERT INTO public.logt SELECT generate_series(1, 7);
});

my $log = "$dir/archiver.log";
my $h = kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', '--db', $conn, '--all-tables', '--storage', $storage,
	  '--data-dir', "$dir/data", '--listen', $listen, '--segment-age', '1s',
	  '--table-poll-interval', '1s', '--status-interval', '1s' ],
	'<', \undef, '>', "$dir/archiver.out", '2>>', $log));

sub checkpoint { my ($rc) = archiver_checkpoint($listen, $_[0]); return $rc == 0; }
sub lsn { return $node->safe_psql($db, 'SELECT pg_current_wal_lsn()'); }
sub lsn_num { my ($hi, $lo) = split m{/}, $_[0]; return hex($hi) * 2**32 + hex($lo); }

ok(wait_for('archiver', sub { checkpoint('public.acct') && checkpoint($billing) && checkpoint('public.logt') }),
	'archiver running') or diag(slurp_file($log));

# The transactions below commit in a later whole second than the base copies (the start of the
# recovery window): a point in whole seconds at a transaction's second is then inside the window.
{
	my $sec = int(Time::HiRes::time());
	ok(wait_for('the next second', sub { int(Time::HiRes::time()) > $sec }, 5), 'a new second after the base copies');
}

# Known transactions: xid, LSN before and after, exact commit time (track_commit_timestamp).
my @tx;
sub txn
{
	my ($name, $sql) = @_;
	my $before = lsn();
	my $xid = $node->safe_psql($db, "BEGIN; $sql; SELECT pg_current_xact_id(); COMMIT;");
	my $after = lsn();
	my ($local, $utc) = split /\|/, $node->safe_psql($db,
		"SELECT to_char(pg_xact_commit_timestamp('$xid'::xid) AT TIME ZONE '$NY', 'YYYY-MM-DD HH24:MI:SS.US'), "
		  . "to_char(pg_xact_commit_timestamp('$xid'::xid) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')");
	my $t = { name => $name, xid => $xid, before => $before, after => $after, local => $local, utc => $utc };
	push @tx, $t;
	return $t;
}

my $t1 = txn('multi-table insert', "INSERT INTO public.acct VALUES (21, 'a'), (22, 'b'), (23, 'c'); "
	  . "INSERT INTO $billing VALUES (6, 600), (7, 700)");
my $t2 = txn('update and delete', "UPDATE public.acct SET v = 'x' WHERE id <= 2; DELETE FROM $billing WHERE id = 1");
my $t3 = txn('truncate', 'TRUNCATE public.logt');
my $t4 = txn('schema change', "ALTER TABLE public.acct ADD COLUMN n int; INSERT INTO public.acct VALUES (30, 'n', 1)");
my $sum_before_bad = content_checksum($node, $db, 'public.acct');
my $t5 = txn('the bad one', 'UPDATE public.acct SET v = NULL');
ok(checkpoint('public.acct') && checkpoint($billing) && checkpoint('public.logt'), 'everything archived');

sub changes { return run_backstop({ env => { TZ => $NY } }, 'changes', '--storage', $storage, @_); }
sub tx_lines { my ($out) = @_; return grep { /  LSN \S+  xid \d+ / } split /\n/, $out; }
sub xids_of { return join(',', map { /  xid (\d+) / ? $1 : () } tx_lines($_[0])); }
sub line_of
{
	my ($out, $t) = @_;
	my @l = grep { /  xid \Q$t->{xid}\E / } tx_lines($out);
	return @l == 1 ? $l[0] : undef;
}

# 1. Every table, open end, summary implied.
my ($rc, $out, $err) = changes();
is($rc, 0, 'changes without --table') or diag("$out\n$err");
like($out, qr/^Transactions on all 3 archived table\(s\), committed through the latest archived point \(LSN \S+\)$/m,
	'header: all tables, up to the latest archived point');
like($out, qr/^Times in \Q$NY\E \(E[SD]T, UTC-0[45]:00\)$/m, 'says which time zone the times are in');
is(xids_of($out), join(',', map { $_->{xid} } @tx), 'the known transactions, in commit order, nothing else');
for my $t (@tx)
{
	my $l = line_of($out, $t);
	ok(defined $l, "one line for: $t->{name}") or next;
	my ($time, $l_lsn) = $l =~ /^(\S+ \S+)  LSN (\S+)  xid/;
	like($time, qr/^\Q$t->{local}\E-0[45]:00$/, "$t->{name}: commit time in $NY, exact to the microsecond");
	ok(lsn_num($l_lsn) > lsn_num($t->{before}) && lsn_num($l_lsn) <= lsn_num($t->{after}),
		"$t->{name}: commit LSN $l_lsn between $t->{before} and $t->{after}");
	like($l, qr/  undo: backstop recover --config \S+ --storage \Q$storage\E --table \S+ --to-xid $t->{xid} --exclusive/,
		"$t->{name}: ends with the recover command that undoes it");
}
like(line_of($out, $t1), qr/ public\.acct \+3 ~0 -0; '?"Billing"\."Invoice Lines" \+2 ~0 -0;/,
	'multi-table transaction: rows per table, quoted name');
like(line_of($out, $t1), qr/--table '"Billing"\."Invoice Lines"' --to-xid $t1->{xid} --exclusive$/,
	'its recover commands name both tables, shell-quoted');
like(line_of($out, $t2), qr/ public\.acct \+0 ~2 -0; "Billing"\."Invoice Lines" \+0 ~0 -1;/, 'updates and deletes counted');
like(line_of($out, $t3), qr/ public\.logt TRUNCATE;/, 'truncate shown');
like(line_of($out, $t4), qr/ public\.acct \+1 ~0 -0 SCHEMA-CHANGE;/, 'schema change shown');
like(line_of($out, $t5), qr/ public\.acct \+0 ~24 -0;/, 'the bad UPDATE: every row');
ok($out =~ /"Billing"\."Invoice Lines"/ && $out !~ /(?<!")Billing(?!")|(?<!")Invoice Lines(?!")/,
	'names are shown quoted as SQL needs them, never bare');

# 2. --xid alone.
($rc, $out, $err) = changes('--xid', $t2->{xid});
is($rc, 0, '--xid') or diag($err);
is(xids_of($out), $t2->{xid}, '--xid: just that transaction');

# 3. --since/--until: local times (TZ), the same times with an offset, and in UTC.
my @want = map { $_->{xid} } ($t2, $t3, $t4);
($rc, $out, $err) = changes('--since', $t1->{local}, '--until', $t4->{local});
is($rc, 0, '--since/--until in the local zone') or diag($err);
is(xids_of($out), join(',', @want), '--since/--until without a zone: read in TZ');
like($out, qr/after \Q$t1->{local}\E-0[45]:00 through \Q$t4->{local}\E-0[45]:00$/m, 'the range is shown in that zone');
($rc, $out, $err) = run_backstop({ env => { TZ => 'UTC' } }, 'changes', '--storage', $storage,
	'--since', $t1->{utc}, '--until', $t4->{utc});
is(xids_of($out), join(',', @want), 'the UTC form under TZ=UTC: the same transactions');
($rc, $out, $err) = changes('--since', "$t1->{utc}Z", '--until', "$t4->{utc}+00:00");
is(xids_of($out), join(',', @want), 'explicit zones are not read in TZ');
($rc, $out, $err) = changes('--since', "$t1->{utc}Z", '--until', "$t4->{utc}+00:00", '--table', 'public.acct',
	'--summary');
is(xids_of($out), join(',', map { $_->{xid} } ($t2, $t4)), 'with --table: only that table\'s transactions');

# Relative times.
($rc, $out, $err) = changes('--since', '1 hour ago');
is(xids_of($out), join(',', map { $_->{xid} } @tx), "--since '1 hour ago': everything");
($rc, $out, $err) = changes('--since', '20 min ago', '--until', 'now');
is(xids_of($out), join(',', map { $_->{xid} } @tx), "--since '20 min ago' --until now");
($rc, $out, $err) = changes('--until', '2 hours ago');
is($rc, 0, "--until '2 hours ago'");
ok(xids_of($out) eq '' && $out =~ /^0 transaction\(s\)$/m, 'nothing committed two hours ago, and the count says so');
($rc, $out, $err) = changes('--since', 'yesterday');
ok($rc == 2 && $err =~ /option --since: invalid value for since: "yesterday": expected a time such as .*"20 min ago"/, 'an unknown time is a usage error, saying what is expected');

# Whole seconds: a warning when a commit falls inside that second.
(my $t5_sec = $t5->{local}) =~ s/\.\d+$//;
($rc, $out, $err) = changes('--until', $t5_sec);
# The first commit inside that second is t5 or, on a fast machine, one before it in the same second.
ok($err =~ /WARNING: --until \Q$t5_sec\E\.000000-0[45]:00 has whole seconds only, and \d+ transaction\(s\) committed inside that second \(the first: xid (\d+) / && $1 <= $t5->{xid},
	'--until in whole seconds: warned that a transaction falls inside that second') or diag($err);
# Listed: exactly those committed before that second (none, when the machine ran them all in it).
is($rc, 0, '--until in whole seconds: exit 0');
is(xids_of($out), join(',', map { $_->{xid} } grep { $_->{local} lt $t5_sec } @tx),
	'and it is not listed, those before that second are');

# 4. --json summary.
($rc, $out, $err) = changes('--json', '--xid', $t1->{xid});
is($rc, 0, '--json summary') or diag($err);
my $j = eval { decode_json($out) };
ok($j, 'valid JSON') or diag($out);
is(scalar(@{ $j->{transactions} }), 1, 'one transaction');
my %by = map { ($_->{table} => $_) } @{ $j->{transactions}[0]{tables} };
is($by{'public.acct'}{inserted}, 3, 'JSON: per-table counts');
is($by{'"Billing"."Invoice Lines"'}{name}, 'Invoice Lines', 'JSON: the name as it is, and as --table takes it');
like($j->{transactions}[0]{undo}[0], qr/--to-xid $t1->{xid} --exclusive$/, 'JSON: the undo commands');
like($j->{time_zone}, qr/^\Q$NY\E/, 'JSON: the zone');

# 5. The printed name pastes back into --table; detail mode by time still works.
($rc, $out, $err) = changes('--table', $billing, '--summary');
is($rc, 0, '--table takes the printed, quoted name') or diag($err);
is(xids_of($out), join(',', map { $_->{xid} } ($t1, $t2)), 'and lists that table\'s transactions');
($rc, $out, $err) = changes('--table', 'public.acct', '--xid', $t2->{xid});
is($rc, 0, 'row changes of one transaction') or diag($err);
is(scalar(() = $out =~ /  UPDATE\s+old /g), 2, 'its two updated rows, with their images');

# 6. The printed command undoes the bad transaction.
($rc, $out, $err) = changes('--xid', $t5->{xid});
my ($undo) = (line_of($out, $t5) // '') =~ /  undo: (backstop recover .*)$/;
ok($undo, 'undo command printed') or diag($out);
$undo //= 'false';
{
	my ($o, $e) = ('', '');
	local $ENV{BACKSTOP_DB} = $conn;
	local $ENV{PATH} = "$ENV{BACKSTOP_BUILDDIR}:$ENV{PATH}";
	IPC::Run::run([ 'sh', '-c', $undo ], '<', \undef, '>', \$o, '2>', \$e);
	is($? >> 8, 0, 'the printed recover command runs') or diag("$undo\n$o\n$e");
}
is(eval { content_checksum($node, $db, 'public.acct_recovered') } // 'no table', $sum_before_bad,
	'and undoes the bad transaction exactly');

# 7. recover --to-time in the user's zone (the same point as --to-xid), and the whole-second warning.
sub point_lines { return join("\n", grep { /^(Base copy|Segments|Transactions|Last applied|Expected rows):/ } split /\n/, $_[0]); }
($rc, $out, $err) = run_backstop({ env => { TZ => $NY } }, 'recover', '--storage', $storage, '--table', 'public.acct',
	'--to-time', $t4->{local}, '--dry-run');
is($rc, 0, 'recover --to-time without a zone') or diag($err);
(my $t4_iso = "$t4->{utc}Z") =~ s/ /T/;
like($out, qr/^Point:\s+commits at or before \Q$t4->{local}\E-0[45]:00 \(\Q$t4_iso\E; /m, 'read in TZ: the point is that commit time');
like(point_lines($out), qr/Expected rows:\s+24/, 'with the rows of that point');
like($out, qr/time read in \Q$NY\E/, 'recover says which zone it read the time in');
($rc, $out, $err) = run_backstop({ env => { TZ => 'UTC' } }, 'recover', '--storage', $storage, '--table', 'public.acct',
	'--to-time', $t4->{utc}, '--dry-run');
like($out, qr/^Point:\s+commits at or before \S+ \S+ \(\Q$t4_iso\E; /m, 'the UTC form under TZ=UTC: the same point');
($rc, $out, $err) = run_backstop({ env => { TZ => $NY } }, 'recover', '--storage', $storage, '--table', 'public.acct',
	'--to-time', $t5_sec, '--dry-run');
ok($err =~ /WARNING: --to-time has whole seconds only, and transaction (\d+) committed inside that second/ && $1 <= $t5->{xid},
	'recover --to-time in whole seconds warns of the transaction inside that second') or diag($err);

# 8. An --all-tables archiver leaves a recovery table out until it is renamed into place.
my $sum_logt = content_checksum($node, $db, 'public.logt');
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.logt', '--latest',
	'--into', 'public.logt_back');
is($rc, 0, 'recover a table while the archiver runs') or diag($err);
my $rec_relid = $node->safe_psql($db, "SELECT 'public.logt_back'::regclass::oid");
$node->safe_psql($db, 'CREATE TABLE public.sentinel (id int PRIMARY KEY); INSERT INTO public.sentinel VALUES (1)');
ok(wait_for('sentinel archived', sub { checkpoint('public.sentinel') }), 'a table made after the recovery is archived')
	or diag(slurp_file($log));
ok(!-e "$archive/tables/$rec_relid", 'the recovery table, seen by the same catalog poll, has no base copy');
unlike(slurp_file($log), qr/logt_back/, 'nor is it mentioned by the archiver');
$node->safe_psql($db, 'DROP TABLE public.logt; ALTER TABLE public.logt_back RENAME TO logt');
ok(wait_for('renamed table archived', sub { -e "$archive/tables/$rec_relid/manifest.json" }),
	'renamed into place, it is archived (guard: also true before the change)');
ok(wait_for('under its name', sub { checkpoint('public.logt') }), 'under its real name');
like(slurp_file("$archive/tables/$rec_relid/manifest.json"), qr/"name"\s*:\s*"logt"/, 'the manifest names it logt');
is(content_checksum($node, $db, 'public.logt'), $sum_logt, 'the table put back is the recovered one');
# Once archived it stays archived, even renamed again (its comment still names public.logt).
$node->safe_psql($db, 'ALTER TABLE public.logt RENAME TO logt_old');
$node->safe_psql($db, 'CREATE TABLE public.sentinel2 (id int PRIMARY KEY)');
ok(wait_for('sentinel2 archived', sub { checkpoint('public.sentinel2') }), 'a later catalog poll has run');
is($node->safe_psql($db, "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'backstop' AND tablename = 'logt_old'"),
	'1', 'an archived recovery table renamed away stays in the publication');

$h->signal('TERM');
$h->finish;
done_testing();
