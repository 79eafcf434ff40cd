# 068_hostile_names.t — output that cannot be forged or misread, and names PostgreSQL would cut:
# a table whose name holds a newline and a fake log line is archived, listed, verified,
# checkpointed, recovered and its changes shown without any forged line (logs, info, verify,
# checkpoint, recover with runnable copy-back SQL, changes); `changes` over a damaged segment
# ends with a line saying the list is cut; --into of 63 bytes and long default names get their
# primary key, constraints and indexes back under names that do not collide.
use strict;
use warnings;

use HTTP::Tiny;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $node = new_pg_node('hostile');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('hostile');
my $archive = "$dir/archive";
my $storage = "file://$archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";

# The fake line starts like one of Backstop's own log lines.
my $fake = '2026-01-01T00:00:00.000Z backstop[1] ERROR: forged';
my $evil = "evil\n$fake";
my $evil_sql = qq{public."$evil"};               # as SQL and --table take it
my $evil_shown = qq{public.U&"evil\\000A$fake"};    # as Backstop shows it
my $long = 'l' x 60;                               # <long>_recovered is cut to 63 bytes
my $into = 'r' x 63;                               # the longest name PostgreSQL keeps
my $idx1 = ('i' x 62) . '1';                       # 63-byte index names that differ only at
my $idx2 = ('i' x 62) . '2';                       # the end, not prefixed by the table's name

$node->safe_psql($db, qq{
	CREATE TABLE $evil_sql (id int PRIMARY KEY, v text);
	INSERT INTO $evil_sql SELECT g, 'row ' || g FROM generate_series(1, 5) g;
	CREATE TABLE public.$long (id int PRIMARY KEY, v text UNIQUE, n int CHECK (n >= 0));
	CREATE INDEX ON public.$long (n, v);
	INSERT INTO public.$long SELECT g, 'v' || g, g FROM generate_series(1, 50) g;
	CREATE TABLE public.plain (id int PRIMARY KEY, v text);
	CREATE INDEX "$idx1" ON public.plain (v);
	CREATE INDEX "$idx2" ON public.plain (v, id);
	INSERT INTO public.plain SELECT g, 'p' || g FROM generate_series(1, 20) g;
	CREATE TABLE public.dmg (id int PRIMARY KEY, v text);
});

my $log = "$dir/archiver.log";
my $h = kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', '--db', $conn, '--all-tables', '--storage', $storage,
	  '--data-dir', "$dir/data", '--listen', $listen, '--segment-age', '1s', '--status-interval', '1s' ],
	'<', \undef, '>', "$dir/archiver.out", '2>>', $log));

sub checkpoint
{
	my ($table) = @_;
	my ($rc) = archiver_checkpoint($listen, $table);
	return $rc == 0;
}

sub lsn { return $node->safe_psql($db, 'SELECT pg_current_wal_lsn()'); }

sub no_forged_line
{
	my ($what, $text) = @_;
	unlike($text, qr/^\Q2026-01-01T00:00:00.000Z backstop[1] ERROR\E/m, "$what: no forged line");
}

ok(wait_for('archiver', sub { checkpoint($evil_sql) }), 'archiver running, hostile table checkpointed')
  or diag(slurp_file($log));
ok(checkpoint("public.$long") && checkpoint('public.plain') && checkpoint('public.dmg'), 'other tables checkpointed');

# --- changes to the hostile table, with a value that looks like another change -------------
my $l0 = lsn();
$node->safe_psql($db, qq{INSERT INTO $evil_sql VALUES (10, E'x\\n0/0  xid 1  2026-01-01 00:00:00+00  DELETE forged')});
my $l_mid = lsn();
$node->safe_psql($db, qq{DELETE FROM $evil_sql WHERE id = 2});
my $l1 = lsn();
ok(checkpoint($evil_sql), 'checkpoint after the changes');

# --- the log: the name is escaped inside one line ------------------------------------------
my $logtext = slurp_file($log);
no_forged_line('archiver log', $logtext);
like($logtext, qr/base copy of public\.evil\\n\Q$fake\E at /, 'archiver log shows the name with \n escaped');

# --- checkpoint (text) --------------------------------------------------------------------
my ($rc, $out, $err) = run_backstop('checkpoint', '--table', $evil_sql, '--listen', $listen);
is($rc, 0, 'checkpoint of the hostile table') or diag($err);
is(($out =~ tr/\n//), 1, 'checkpoint prints one line');
no_forged_line('checkpoint', $out);

# --- /metrics: the name is a label value, escaped as Prometheus wants -----------------------
my $metrics = HTTP::Tiny->new(timeout => 30)->get("http://$listen/metrics");
ok($metrics->{success}, '/metrics answers');
no_forged_line('/metrics', $metrics->{content});
like($metrics->{content}, qr/^backstop_table_archived_lsn\{table="public\.evil\\n\Q$fake\E"\} \d+$/m,
	'/metrics: one sample line for the hostile table, newline escaped');

# --- info ----------------------------------------------------------------------------------
($rc, $out, $err) = run_backstop('info', '--storage', $storage);
is($rc, 0, 'info') or diag($err);
no_forged_line('info', $out);
like($out, qr/^\Q$evil_shown\E \(relid \d+\): active$/m, 'info shows the name quoted, on one line');
like($out, qr/^public\.plain \(relid \d+\): active$/m, 'plain names stay as they were');
($rc, $out, $err) = run_backstop('info', '--storage', $storage, '--table', $evil_sql);
is($rc, 0, 'info --table with the hostile name') or diag($err);
no_forged_line('info --table', $out);
($rc, $out, $err) = run_backstop('info', '--storage', $storage, '--json');
like($out, qr/"name": "evil\\n\Q$fake\E"/, 'JSON keeps the name as it is (escaped by JSON)');

# --- changes: one line per change ----------------------------------------------------------
($rc, $out, $err) = run_backstop('changes', '--storage', $storage, '--table', $evil_sql, '--from-lsn', $l0,
	'--to-lsn', $l1);
is($rc, 0, 'changes of the hostile table') or diag($err);
no_forged_line('changes', $out);
my @lines = split /\n/, $out;
is(scalar(@lines), 4, 'changes: header, two changes, count: one line each') or diag($out);
is($lines[0], "Changes to $evil_shown after LSN $l0 through $l1:", 'changes: header names the table quoted');
unlike($out, qr/^0\/0  xid 1/m, 'a value with a newline does not pass for a change');
like($lines[1], qr/INSERT .*x\\n0\/0  xid 1/, 'the value is shown with \n escaped');
is($lines[3], '2 change(s)', 'changes: count');
# The printed form pastes back: --table takes U&"..." as shown.
($rc, $out, $err) = run_backstop('changes', '--storage', $storage, '--table', $evil_shown, '--from-lsn', $l0,
	'--to-lsn', $l1);
ok($rc == 0 && $out =~ /^2 change\(s\)$/m, '--table takes the name as changes prints it (U&"...")') or diag($err);
($rc, $out, $err) = run_backstop('changes', '--storage', $storage, '--summary');
no_forged_line('changes --summary', $out);
like($out, qr/ \Q$evil_shown\E \+\d+ ~\d+ -\d+;.* --table '\Q$evil_shown\E' --to-xid \d+ --exclusive/,
	'summary: the hostile name quoted, and shell-quoted in the recover command');

# --- recover: names quoted, copy-back SQL runnable ----------------------------------------
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', $evil_sql,
	'--to-lsn', $l_mid);
is($rc, 0, 'recover the hostile table') or diag($err);
no_forged_line('recover', $out);
my $target = substr($evil, 0, 53) . '_recovered';
(my $target_shown = "public.U&\"$target\"") =~ s/\n/\\000A/g;
like($out, qr/^Recovered \Q$evil_shown\E into \Q$target_shown\E$/m, 'recover names source and target quoted');
is($node->safe_psql($db, qq{SELECT count(*) FROM public."$target"}), '6', 'recovered table has the rows at the point');
my ($copyback) = $out =~ /^-- rows were deleted[^\n]*\n(.*?)(?:\n\n|\n?\z)/ms;
ok(defined $copyback, 'copy-back SQL printed') or diag($out);
unlike($copyback // '', qr/\Q$fake\E\n|\nforged/, 'copy-back SQL keeps each name on its line');
$node->safe_psql($db, $copyback) if defined $copyback;
is($node->safe_psql($db, qq{SELECT v FROM $evil_sql WHERE id = 2}), 'row 2', 'the printed copy-back SQL runs and brings the row back');

# --- verify and info over damaged objects of the hostile table ----------------------------

sub flip_byte
{
	my ($file) = @_;
	open(my $f, '+<:raw', $file) or die "open $file: $!";
	seek($f, 40, 0);
	read($f, my $byte, 1);
	seek($f, 40, 0);
	print $f chr(ord($byte) ^ 0x01);
	close($f);
}

# dmg: two segments, the second damaged.
my $a0 = lsn();
$node->safe_psql($db, q{INSERT INTO public.dmg SELECT g, 'first ' || g FROM generate_series(1, 7) g});
ok(checkpoint('public.dmg'), 'first segment of public.dmg stored');
$node->safe_psql($db, q{INSERT INTO public.dmg SELECT g, 'second ' || g FROM generate_series(100, 104) g});
my $b1 = lsn();
ok(checkpoint('public.dmg'), 'second segment of public.dmg stored');

my $bad = "$dir/bad";
copy_tree($archive, $bad);
my $dmg_relid = $node->safe_psql($db, q{SELECT 'public.dmg'::regclass::oid});
my @segs = sort glob("$bad/tables/$dmg_relid/seg/*.bso");
cmp_ok(scalar(@segs), '>=', 2, 'public.dmg has two segments or more');
flip_byte($segs[-1]);
my $evil_relid = $node->safe_psql($db, qq{SELECT '$evil_sql'::regclass::oid});
my @chunks = glob("$bad/tables/$evil_relid/base/*/chunk-*.bso");
ok(@chunks > 0, 'the hostile table has a base chunk') and flip_byte($chunks[0]);

($rc, $out, $err) = run_backstop('verify', '--storage', "file://$bad");
is($rc, 3, 'verify finds the damage');
no_forged_line('verify', $out);
like($out, qr/^PROBLEM: \Q$evil_shown\E \(relid $evil_relid\) /m, 'verify names the hostile table quoted');

# --- changes over a damaged segment: the list says it is cut --------------------------------
($rc, $out, $err) = run_backstop('changes', '--storage', "file://$bad", '--table', 'public.dmg', '--from-lsn', $a0,
	'--to-lsn', $b1);
is($rc, 3, 'changes over a damaged segment: exit 3');
@lines = split /\n/, $out;
my $rows = grep { /  INSERT / } @lines;
like($lines[-1], qr/^INCOMPLETE: the list stops after $rows change\(s\) because of an error; changes after that point are missing$/,
	"the last line on stdout says the list is cut (after $rows rows)") or diag($out);
unlike($out, qr/second /, 'no row of the damaged segment is shown');
like($err, qr/^backstop changes: ERROR: .*\Q$dmg_relid\E\/seg\//m, 'the error names the damaged object');

# --- long names: --into of 63 bytes, default names cut to 63 bytes ---------------------------
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.plain',
	'--latest', '--into', "public.$into");
is($rc, 0, 'recover --into a 63-byte name') or diag($err);
like($out, qr/^Recovered public\.plain into public\.$into$/m, 'output names the table that was created');
is($node->safe_psql($db, qq{SELECT count(*) FROM public.$into}), '20', 'the 63-byte target exists with its rows');
like($out, qr/^Indexes and constraints recreated: 3$/m, 'primary key and both indexes recreated');
unlike($out, qr/^Warnings:/m, 'no warning');
is($node->safe_psql($db, qq{SELECT count(DISTINCT indexrelid) FROM pg_index WHERE indrelid = 'public.$into'::regclass}),
	'3', 'three indexes on the target, under distinct names');
is($node->safe_psql($db, qq{SELECT conname FROM pg_constraint WHERE conrelid = 'public.$into'::regclass AND contype = 'p'}),
	substr($into, 0, 58) . '_pkey', 'the primary key keeps its _pkey suffix');

my $relations = q{SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace};
my $before = $node->safe_psql($db, $relations);
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.plain',
	'--latest', '--into', "public.${into}x");
is($rc, 2, 'recover --into a 64-byte name: exit 2');
like($err, qr/option --into: invalid value for into: the name "${into}x" is 64 bytes long/, 'saying why');
is($node->safe_psql($db, $relations), $before, 'nothing created in the database');

($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', "public.$long", '--latest');
is($rc, 0, 'recover a 60-byte table under its default name') or diag($err);
my $default = substr($long, 0, 53) . '_recovered';
like($out, qr/^Recovered public\.$long into public\.$default$/m, 'default name cut to 63 bytes');
like($out, qr/^Indexes and constraints recreated: 4$/m, 'primary key, unique, check and index recreated');
unlike($out, qr/^Warnings:/m, 'no warning');
is($node->safe_psql($db, qq{SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.$default'::regclass}), '3',
	'three constraints on the target');

$h->kill_kill(grace => 5);
done_testing();
