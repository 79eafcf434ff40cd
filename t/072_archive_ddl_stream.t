# 072_archive_ddl_stream.t — schema changes, drops and renames are attributed to the stream position
# of the transaction that made them (event triggers writing backstop.ddl logical messages), not to
# when a catalog poll noticed them.  Every recovery is compared with the source's checksum recorded
# right after the commit (pg_current_wal_insert_lsn), at points where no row change of the table
# follows the schema change.  Then the fallback: a role that may not create event triggers archives
# without capture, and info and recover say so.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;
use BackstopArchiver;

my $node = new_pg_node('ddl', extra_conf => "max_wal_size = 1GB\n");
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('ddl');

sub pt { my ($d) = @_; return $node->safe_psql($d // $db, 'SELECT pg_current_wal_insert_lsn()') }
sub sum { my ($t, $d) = @_; return content_checksum($node, $d // $db, $t) }
sub lsn_cmp { my ($x, $op, $y) = @_; return $node->safe_psql($db, "SELECT '$x'::pg_lsn $op '$y'::pg_lsn") eq 't' }

# DROP TABLE after an unrelated transaction: returns a point after that transaction (after the
# table's last change, before the DROP: recoverable only when the drop position is exact), the
# position inside the DROP's transaction just before its commit record, and a point after it.
sub drop_table
{
	my ($t) = @_;
	$node->safe_psql($db, "INSERT INTO public.keep SELECT coalesce(max(id), 0) + 1 FROM public.keep");
	my $pre = pt();
	my $in = $node->safe_psql($db, "BEGIN; DROP TABLE $t; SELECT pg_current_wal_insert_lsn(); COMMIT;");
	return ($pre, $in, pt());
}

my $nrec = 0;

# Recover (extra arguments select the table and the point) and compare with the source's sum.
sub recover_is
{
	my ($c, $want, $what, @sel) = @_;
	my $into = 'public.r_' . ++$nrec;
	my ($rc, $out, $err) = run_backstop('recover', '--db', $c->{conn}, '--storage', $c->{storage}, @sel,
		'--into', $into, '--no-indexes');
	is($rc, 0, "$what: recovered") or return diag("$out\n$err");
	my ($d) = $c->{conn} =~ /dbname='?([^'\s]+)/;
	is(sum($into, $d), $want, "$what: exactly the source's table at the point");
	return $out;
}

sub info_json
{
	my ($c, @sel) = @_;
	my ($rc, $out, $err) = run_backstop('info', '--storage', $c->{storage}, @sel, '--json');
	is($rc, 0, "info @sel") or diag("$out\n$err");
	return $out;
}

$node->safe_psql($db, q{
	CREATE TABLE public.t_add (id int PRIMARY KEY, v text);
	INSERT INTO public.t_add SELECT g, 'v' || g FROM generate_series(1, 5) g;
	CREATE TABLE public.t_dc (id int PRIMARY KEY, v text, w text);
	INSERT INTO public.t_dc SELECT g, 'v' || g, 'w' || g FROM generate_series(1, 5) g;
	CREATE TABLE public.t_old (id int PRIMARY KEY, v text);
	INSERT INTO public.t_old SELECT g, 'v' || g FROM generate_series(1, 5) g;
	CREATE TABLE public.t_rd (id int PRIMARY KEY, v text);
	INSERT INTO public.t_rd SELECT g, 'v' || g FROM generate_series(1, 5) g;
	CREATE TABLE public.t_ds (id int PRIMARY KEY, v text);
	INSERT INTO public.t_ds SELECT g, 'v' || g FROM generate_series(1, 10) g;
	CREATE TABLE public.t_bl (id int PRIMARY KEY, v text);
	INSERT INTO public.t_bl SELECT g, 'v' || g FROM generate_series(1, 10) g;
	CREATE TABLE public.big (id int PRIMARY KEY, payload text);
	CREATE TABLE public.keep (id int PRIMARY KEY);
});

my $c = BackstopArchiver->new(dir => $dir, name => 'main', conn => $conn, args => [ '--all-tables' ]);
$c->start;
$c->checkpoint_ok("public.$_", 'start') for qw(t_add t_dc t_old t_rd t_ds t_bl);
ok($c->log_has(qr/schema changes are captured in the stream/), 'a superuser archiver captures schema changes');

# 1. ADD COLUMN with a DEFAULT, DROP COLUMN: no row change of the table follows.
my ($p_add0, $s_add0) = (pt(), sum('public.t_add'));
$node->safe_psql($db, 'ALTER TABLE public.t_add ADD COLUMN c int DEFAULT 7');
my ($p_add, $s_add) = (pt(), sum('public.t_add'));
$node->safe_psql($db, 'ALTER TABLE public.t_dc DROP COLUMN w');
my ($p_dc, $s_dc) = (pt(), sum('public.t_dc'));

# 2. A rename, with changes before and after it; then a new table takes the old name.
my $xid_old = $node->safe_psql($db, "BEGIN; UPDATE public.t_old SET v = 'by xid' WHERE id = 1; SELECT txid_current(); COMMIT;");
my ($p_old, $s_old) = (pt(), sum('public.t_old'));
$node->safe_psql($db, 'ALTER TABLE public.t_old RENAME TO t_new');
$node->safe_psql($db, "INSERT INTO public.t_new VALUES (6, 'after the rename')");
my ($p_new, $s_new) = (pt(), sum('public.t_new'));
my $relid_new = $node->safe_psql($db, "SELECT 'public.t_new'::regclass::oid");
$node->safe_psql($db, "CREATE TABLE public.t_old (id int PRIMARY KEY, w text); INSERT INTO public.t_old VALUES (1, 'the new t_old')");

# 3. A rename, then changes, then a DROP while the archiver runs.
my ($p_rd0, $s_rd0) = (pt(), sum('public.t_rd'));
$node->safe_psql($db, 'ALTER TABLE public.t_rd RENAME TO t_rd2');
$node->safe_psql($db, "UPDATE public.t_rd2 SET v = 'renamed' WHERE id = 1");
my $s_rd1 = sum('public.t_rd2');
my ($pre_rd, $in_rd, $after_rd) = drop_table('public.t_rd2');

$c->checkpoint_ok($_, 'schema changes') for qw(public.t_add public.t_dc public.t_new public.t_old public.keep);
ok(wait_for('the rename+drop to be recorded', sub { $c->log_has(qr/table public\.t_rd2 was dropped \(after/) }, 90),
	'rename+drop: recorded dropped') or diag($c->log);
# (Not "is NOT archived": that is the new t_old, logged when a table check's publication update
# fails, as when its query meets the concurrent DROP of t_rd2, and retried at the next check.)
ok(!$c->log_has(qr/table public\.t_old was dropped|table public\.t_new (was dropped|is NOT)/), 'a rename is not a drop')
  or diag(join("\n", grep { /t_old|t_new/ } split /\n/, $c->log));

recover_is($c, $s_add0, 'ADD COLUMN: before it', '--table', 'public.t_add', '--to-lsn', $p_add0);
recover_is($c, $s_add, 'ADD COLUMN DEFAULT 7, no later change', '--table', 'public.t_add', '--to-lsn', $p_add);
recover_is($c, $s_dc, 'DROP COLUMN, no later change', '--table', 'public.t_dc', '--to-lsn', $p_dc);
# The Relation message of the next row change describes the layout the stream's message
# recorded (the same key flags): no second layout for it.
$node->safe_psql($db, "INSERT INTO public.t_add VALUES (100, 'after', 8)");
my $s_add2 = sum('public.t_add');
$c->checkpoint_ok('public.t_add', 'a row change after ADD COLUMN');
my $relid_add = $node->safe_psql($db, "SELECT 'public.t_add'::regclass::oid");
my $man = slurp_file("$dir/main/archive/tables/$relid_add/manifest.json");
my $nlayouts = () = $man =~ /"replident"/g;
is($nlayouts, 2, 'ADD COLUMN then a row change: two layouts (base, ADD COLUMN)') or diag($man);
recover_is($c, $s_add2, 'ADD COLUMN, then a row change', '--table', 'public.t_add', '--latest');
recover_is($c, $s_old, 'rename: the old name at a point before it', '--table', 'public.t_old', '--to-lsn', $p_old);
recover_is($c, $s_new, 'rename: the new name at a point after it', '--table', 'public.t_new', '--to-lsn', $p_new);
# --to-xid is placed by a table's own records: the table that had the name there is taken,
# not the new table that has it now.
recover_is($c, $s_old, 'rename: the old name at --to-xid before it, another table named so now', '--table', 'public.t_old',
	'--to-xid', $xid_old);
recover_is($c, $s_new, 'rename: by --relid', '--relid', $relid_new, '--to-lsn', $p_new);
my $out = info_json($c, '--table', 'public.t_new');
like($out, qr/"names"\s*:\s*\[\s*\{[^}]*"name"\s*:\s*"t_old"[^}]*\}\s*,\s*\{[^}]*"name"\s*:\s*"t_new"/s,
	'info shows the name history') or diag($out);
my (undef, $txt) = run_backstop('info', '--storage', $c->{storage}, '--relid', $relid_new);
like($txt, qr/named:\s+public\.t_old from 0\/0.*named:\s+public\.t_new from /s, 'info --relid shows the names')
	or diag($txt);

recover_is($c, $s_rd0, 'rename+drop: the first name before the rename', '--table', 'public.t_rd', '--to-lsn', $p_rd0);
recover_is($c, $s_rd1, 'rename+drop: the second name, latest', '--table', 'public.t_rd2', '--latest');
recover_is($c, $s_rd1, 'rename+drop: a point just before the DROP', '--table', 'public.t_rd2', '--to-lsn', $pre_rd);
my ($rc, $o, $e) = run_backstop('recover', '--db', $conn, '--storage', $c->{storage}, '--table', 'public.t_rd2',
	'--to-lsn', $after_rd, '--into', 'public.r_refused', '--no-indexes');
is($rc, 1, 'rename+drop: a point after the DROP is refused') or diag("$o\n$e");
$out = info_json($c, '--table', 'public.t_rd2');
my ($drop_lsn) = $out =~ /"drop_lsn"\s*:\s*"([0-9A-F]+\/[0-9A-F]+)"/;
ok(defined $drop_lsn && lsn_cmp($drop_lsn, '>=', $in_rd) && lsn_cmp($drop_lsn, '<', $after_rd),
	'rename+drop: drop_lsn is the DROP\'s commit (' . ($drop_lsn // 'none') . ')') or diag($out);

# 4. A recovered table renamed into place is archived under its real name (its own relid).
($rc, $o, $e) = run_backstop('recover', '--db', $conn, '--storage', $c->{storage}, '--table', 'public.t_new',
	'--latest', '--into', 'public.t_new_r');
is($rc, 0, 'copy-back: recovered with its primary key') or diag("$o\n$e");
# Renamed to a name of its own, with the recovery mark removed (the copy-back's COMMENT ON
# TABLE step does that): an ordinary table from then on. (Still marked, an --all-tables
# archiver leaves it out until it carries its original name: t/079.)
$node->safe_psql($db, 'ALTER TABLE public.t_new_r RENAME TO t_back; COMMENT ON TABLE public.t_back IS NULL');
my $relid_back = $node->safe_psql($db, "SELECT 'public.t_back'::regclass::oid");
$c->checkpoint_ok('public.t_back', 'copy-back rename');
$out = info_json($c, '--table', 'public.t_back');
like($out, qr/"relid"\s*:\s*$relid_back\b/, 'the renamed recovery table is archived as public.t_back') or diag($out);

# 5. Dropped while the archiver is stopped, after changes it had not received.
$c->stop('before the drop');
$node->safe_psql($db, q{
	INSERT INTO public.t_ds VALUES (11, 'x'), (12, 'y');
	UPDATE public.t_ds SET v = 'changed' WHERE id = 1;
	DELETE FROM public.t_ds WHERE id = 2;
});
my $s_ds = sum('public.t_ds');
my ($pre_ds, $in_ds, $after_ds) = drop_table('public.t_ds');
$c->start;
ok(wait_for('the drop to be recorded', sub { $c->log_has(qr/table public\.t_ds was dropped \(after/) }, 90),
	'stopped: recorded dropped') or diag($c->log);
$c->checkpoint_ok('public.keep', 'stopped');
recover_is($c, $s_ds, 'stopped: --latest', '--table', 'public.t_ds', '--latest');
recover_is($c, $s_ds, 'stopped: a point just before the DROP', '--table', 'public.t_ds', '--to-lsn', $pre_ds);
$out = info_json($c, '--table', 'public.t_ds');
($drop_lsn) = $out =~ /"drop_lsn"\s*:\s*"([0-9A-F]+\/[0-9A-F]+)"/;
ok(defined $drop_lsn && lsn_cmp($drop_lsn, '>=', $in_ds) && lsn_cmp($drop_lsn, '<', $after_ds),
	'stopped: drop_lsn is the DROP\'s commit (' . ($drop_lsn // 'none') . ')') or diag($out);

# 6. Dropped while the archiver catches up a backlog (its walsender held): the table check sees
# the drop first, the stream then gives its exact position.
my $walsender = $node->safe_psql($db, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 's_main'");
ok($walsender =~ /^\d+$/, "backlog: the archiver's walsender is $walsender");
kill 'STOP', $walsender;
$node->safe_psql($db, "INSERT INTO public.big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 50000) g");
$node->safe_psql($db, "INSERT INTO public.t_bl VALUES (11, 'x'); UPDATE public.t_bl SET v = 'late' WHERE id = 3;");
my $s_bl = sum('public.t_bl');
my ($pre_bl, $in_bl, $after_bl) = drop_table('public.t_bl');
ok(wait_for('the table check to see the drop', sub { $c->log_has(qr/table public\.t_bl was dropped;/) }),
	'backlog: the table check sees the drop while the stream is held') or diag($c->log);
kill 'CONT', $walsender;
ok(wait_for('the drop to be recorded', sub { $c->log_has(qr/table public\.t_bl was dropped \(after/) }, 120),
	'backlog: recorded dropped') or diag($c->log);
$c->checkpoint_ok('public.big', 'backlog');
recover_is($c, $s_bl, 'backlog: a point just before the DROP', '--table', 'public.t_bl', '--to-lsn', $pre_bl);
$out = info_json($c, '--table', 'public.t_bl');
($drop_lsn) = $out =~ /"drop_lsn"\s*:\s*"([0-9A-F]+\/[0-9A-F]+)"/;
ok(defined $drop_lsn && lsn_cmp($drop_lsn, '>=', $in_bl) && lsn_cmp($drop_lsn, '<', $after_bl),
	'backlog: drop_lsn is the DROP\'s commit (' . ($drop_lsn // 'none') . ')') or diag($out);
$c->stop('main');
($rc, $o, $e) = run_backstop('verify', '--storage', $c->{storage});
is($rc, 0, 'verify finds the archive clean') or diag("$o\n$e");

# 7. Fallback: a role that may not create event triggers (its own database: none are there).
$node->safe_psql($db, q{
	CREATE DATABASE fb;
	CREATE ROLE lp LOGIN REPLICATION;
	GRANT CREATE ON DATABASE fb TO lp;
});
$node->safe_psql('fb', q{
	GRANT CREATE ON SCHEMA public TO lp;
	SET ROLE lp;
	CREATE TABLE public.f (id int PRIMARY KEY, v text);
	INSERT INTO public.f SELECT g, 'v' || g FROM generate_series(1, 5) g;
});
my $f = BackstopArchiver->new(dir => $dir, name => 'fallback', conn => node_connstr($node, 'fb', 'lp'),
	args => [ '--tables', 'public.f' ]);
($rc, $o, $e) = run_backstop('archive', $f->args, '--ddl-capture', 'on');
isnt($rc, 0, 'fallback: --ddl-capture on refuses to start without capture');
like($e, qr/--ddl-capture on: schema changes cannot be captured: the role is not a superuser/, 'saying why')
	or diag("$o\n$e");
$f->start;
$f->checkpoint_ok('public.f', 'fallback');
ok($f->log_has(qr/schema changes are NOT captured in the stream \(the role is not a superuser/),
	'fallback: the log says schema changes are not captured');
my ($p_f, $s_f) = (pt('fb'), sum('public.f', 'fb'));
$f->checkpoint_ok('public.f', 'fallback');
$f->stop('fallback');
(undef, $txt) = run_backstop('info', '--storage', $f->{storage});
like($txt, qr/schema changes after the last row change are not captured/, 'fallback: info says so') or diag($txt);
$out = recover_is($f, $s_f, 'fallback: a point', '--table', 'public.f', '--to-lsn', $p_f);
like($out // '', qr/Note:\s+schema changes after the table's last row change before the point are not captured/,
	'fallback: recover says so');

$node->stop;
done_testing();
