# 081_copyback.t — a copy-back that knows the point and the live database, and --apply:
#  1. a dropped table recovered at an earlier point: the plan warns that the later archived
#     changes are lost and prints the --latest command that keeps them; --apply --yes renames
#     it into place and validates; the table is exactly as it was at the point;
#  2. a table of that name exists again: the plan moves it aside (never drops it);
#  3. a live table after an UPDATE without WHERE and later inserts: the rows copy-back sets the
#     changed rows back (json columns compare too), keeps later inserts, and validates;
#  4. the compound case: dropped after a column was wiped; recover --latest and put it in place,
#     then --copy-back-columns from before the wipe repairs only that column;
#  5. refusals: --apply without --yes off a terminal, with --target-db, with --dry-run; unknown or
#     key columns in --copy-back-columns (exit 2, nothing written);
#  6. --apply on a terminal (script(1) gives it a pty): it asks; "n" leaves the live table and
#     keeps the recovered one (exit 1), "y" applies and validates.
use strict;
use warnings;

use IPC::Run ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $node = new_pg_node('copyback');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('copyback');
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";
my $storage = "file://$dir/archive";

$node->safe_psql($db, q{
	CREATE TABLE public.acct (id int PRIMARY KEY, email text, doc json, n int);
	INSERT INTO public.acct SELECT g, 'a' || g || '@x', json_build_object('g', g), g FROM generate_series(1, 40) g;
	CREATE TABLE public.users (id int PRIMARY KEY, email text, plan text);
	INSERT INTO public.users SELECT g, 'u' || g || '@x', 'free' FROM generate_series(1, 30) g;
	CREATE TABLE public.logs (id int PRIMARY KEY, msg text);
	INSERT INTO public.logs SELECT g, 'm' || g FROM generate_series(1, 20) g;
});
my $archiver = spawn_archiver("$dir/archive.log", '--db', $conn, '--storage', $storage, '--data-dir', "$dir/data",
	'--tables', 'public.acct,public.users,public.logs', '--listen', $listen, '--segment-age', '1s',
	'--table-poll-interval', '100ms');
END { kill 'KILL', $archiver if $archiver; }
ok(checkpoint_until($listen, $_, 90), "checkpoint of $_") for qw(public.acct public.users public.logs);

sub sum
{
	my ($table, $cols) = @_;
	return $node->safe_psql($db, "SELECT count(*) || ':' || md5(coalesce(string_agg(ROW($cols)::text, ',' ORDER BY id), '')) FROM $table");
}
sub xact
{
	my ($sql) = @_;
	return $node->safe_psql($db, "BEGIN; $sql; SELECT txid_current(); COMMIT;");
}
sub recover
{
	my (@args) = @_;
	return run_backstop('recover', '--db', $conn, '--storage', $storage, @args);
}

# ---- 1. dropped, recovered at an earlier point ----
my $logs_at = sum('public.logs', 'id, msg');
my $xid_more = xact(q{INSERT INTO public.logs SELECT g, 'late' || g FROM generate_series(21, 25) g});
$node->safe_psql($db, q{DELETE FROM public.logs WHERE id <= 3});
$node->safe_psql($db, 'DROP TABLE public.logs');
ok(checkpoint_until($listen, 'public.acct', 60), 'archiver past the drop');
ok(wait_for('logs marked dropped', sub { (run_backstop('info', '--storage', $storage, '--table', 'public.logs', '--json'))[1] =~ /"status":\s*"dropped"/ }, 90),
	'logs: dropped in the archive');
my ($rc, $out, $err) = recover('--table', 'public.logs', '--to-xid', $xid_more, '--exclusive', '--apply', '--yes');
is($rc, 0, 'logs: recovered at the earlier point and applied') or diag("$out\n$err");
like($out, qr/WARNING: changes to this table were archived after the point \(\d+ segment\(s\)/, 'logs: the later changes are named');
like($out, qr/putting this recovery in place loses them/, 'logs: and what the rename loses');
like($out, qr/To keep them, recover the latest state instead: backstop recover --storage '[^']+' --table "public"\."logs" --latest --replace/,
	'logs: with the command that keeps them');
like($out, qr/Copy-back applied to public\.logs and validated/, 'logs: applied and validated');
is(sum('public.logs', 'id, msg'), $logs_at, 'logs: the table is back in place exactly as at the point');
is($node->safe_psql($db, q{SELECT to_regclass('public.logs_recovered') IS NULL}), 't', 'logs: the recovery took its name');
is($node->safe_psql($db, q{SELECT obj_description('public.logs'::regclass, 'pg_class') IS NULL}), 't',
	'logs: the recovery mark is gone with the comment as it was (none)');

# ---- 2. a table of that name exists again ----
$node->safe_psql($db, q{CREATE TABLE public.users_new_tmp (x int)});
my $users_at = sum('public.users', 'id, email, plan');
$node->safe_psql($db, q{DROP TABLE public.users; ALTER TABLE public.users_new_tmp RENAME TO users;
	INSERT INTO public.users VALUES (42)});
ok(wait_for('users marked dropped', sub { (run_backstop('info', '--storage', $storage, '--table', 'public.users', '--json'))[1] =~ /"status":\s*"dropped"/ }, 90),
	'users: dropped in the archive');
($rc, $out, $err) = recover('--table', 'public.users', '--latest', '--apply', '--yes');
is($rc, 0, 'users: recovered and applied over a table of the same name') or diag("$out\n$err");
like($out, qr/A table named "public"\."users" exists again \(relid \d+, not the archived table's \d+\): the plan moves it aside as "users_before_recovery"/,
	'users: the plan says the table there is moved aside');
is(sum('public.users', 'id, email, plan'), $users_at, 'users: exact in place');
is($node->safe_psql($db, q{SELECT x FROM public.users_before_recovery}), '42', 'users: the other table is kept, aside');

# ---- 3. live table: UPDATE without WHERE, then later inserts ----
my $acct_before = sum('public.acct', 'id, email, doc, n');
my $xid_wipe = xact(q{UPDATE public.acct SET email = NULL, doc = '{"wiped":true}'});
$node->safe_psql($db, q{INSERT INTO public.acct VALUES (100, 'new@x', '{}', 100)});
ok(checkpoint_until($listen, 'public.acct', 60), 'acct: checkpoint after the damage');
($rc, $out, $err) = recover('--table', 'public.acct', '--to-xid', $xid_wipe, '--exclusive', '--into', 'public.acct_fix',
	'--apply', '--yes');
is($rc, 0, 'acct: rows copy-back applied') or diag("$out\n$err");
like($out, qr/ROW\(o\."email", o\."doc", o\."n"\)::text IS DISTINCT FROM ROW\(r\."email", r\."doc", r\."n"\)::text/,
	'acct: changed rows compared as text (json has no equality)');
like($out, qr/rows changed since are set back to their values at the point/, 'acct: says what it overwrites');
is($node->safe_psql($db, q{SELECT count(*) FROM public.acct WHERE email IS NULL}), '0', 'acct: the wiped column is back');
is(sum('public.acct', 'id, email, doc, n'), do {
	# the 40 rows as before the wipe, plus the later insert kept
	$node->safe_psql($db, q{SELECT count(*) || ':' || md5(coalesce(string_agg(ROW(id, email, doc, n)::text, ',' ORDER BY id), ''))
		FROM (SELECT * FROM public.acct_fix UNION ALL SELECT 100, 'new@x', '{}'::json, 100) s})
}, 'acct: every row as at the point, the later insert kept');

# ---- 4. compound: wiped, then dropped ----
$node->safe_psql($db, q{CREATE TABLE public.cust (id int PRIMARY KEY, email text, visits int);
	INSERT INTO public.cust SELECT g, 'c' || g || '@x', 0 FROM generate_series(1, 25) g});
kill 'TERM', $archiver; waitpid($archiver, 0); $archiver = undef;
$archiver = spawn_archiver("$dir/archive2.log", '--db', $conn, '--storage', $storage, '--data-dir', "$dir/data",
	'--tables', 'public.acct,public.cust', '--listen', $listen, '--segment-age', '1s', '--table-poll-interval', '100ms');
ok(checkpoint_until($listen, 'public.cust', 90), 'cust archived');
my $emails_before = $node->safe_psql($db, q{SELECT md5(string_agg(id || email, ',' ORDER BY id)) FROM public.cust});
my $xid_cwipe = xact(q{UPDATE public.cust SET email = 'x'});
$node->safe_psql($db, q{UPDATE public.cust SET visits = visits + 1 WHERE id % 2 = 0});
my $visits = $node->safe_psql($db, q{SELECT md5(string_agg(id || ':' || visits, ',' ORDER BY id)) FROM public.cust});
$node->safe_psql($db, 'DROP TABLE public.cust');
ok(wait_for('cust marked dropped', sub { (run_backstop('info', '--storage', $storage, '--table', 'public.cust', '--json'))[1] =~ /"status":\s*"dropped"/ }, 90),
	'cust: dropped in the archive');
# Columns cannot be copied into a table that is gone: refused before anything is written.
($rc, $out, $err) = recover('--table', 'public.cust', '--to-xid', $xid_cwipe, '--exclusive', '--into', 'public.r5',
	'--copy-back-columns', 'email');
is($rc, 2, 'cust gone: --copy-back-columns refused, exit 2') or diag("$out\n$err");
like($err, qr/--copy-back-columns: no table named "public"\."cust" exists to copy columns into \(recover it first/,
	'cust gone: says to recover the table first') or diag($err);
is($node->safe_psql($db, q{SELECT to_regclass('public.r5') IS NULL}), 't', 'cust gone: nothing written');
($rc, $out, $err) = recover('--table', 'public.cust', '--latest', '--apply', '--yes');
is($rc, 0, 'cust: latest state put in place') or diag("$out\n$err");
($rc, $out, $err) = recover('--table', 'public.cust', '--to-xid', $xid_cwipe, '--exclusive', '--into', 'public.cust_early',
	'--copy-back-columns', 'email', '--apply', '--yes');
is($rc, 0, 'cust: the email column copied back from before the wipe') or diag("$out\n$err");
like($out, qr/UPDATE "public"\."cust" o SET "email" = r\."email"/, 'cust: only that column is set');
is($node->safe_psql($db, q{SELECT md5(string_agg(id || email, ',' ORDER BY id)) FROM public.cust}), $emails_before,
	'cust: emails as before the wipe');
is($node->safe_psql($db, q{SELECT md5(string_agg(id || ':' || visits, ',' ORDER BY id)) FROM public.cust}), $visits,
	'cust: the later visits kept');

# ---- 5. refusals ----
for my $case (
	[ 'apply without --yes off a terminal', [ '--table', 'public.acct', '--latest', '--into', 'public.r1', '--apply' ], qr/without a terminal, add --yes/ ],
	[ 'apply with --dry-run', [ '--table', 'public.acct', '--latest', '--apply', '--yes', '--dry-run' ], qr/not with --dry-run/ ],
	[ 'apply with --target-db', [ '--table', 'public.acct', '--latest', '--apply', '--yes', '--target-db', $conn ], qr/--target-db/ ],
	[ 'unknown column', [ '--table', 'public.acct', '--latest', '--into', 'public.r2', '--copy-back-columns', 'nope' ], qr/no column "nope"/ ],
	[ 'key column', [ '--table', 'public.acct', '--latest', '--into', 'public.r3', '--copy-back-columns', 'id' ], qr/"id" is a key column/ ],
	[ 'bad list', [ '--table', 'public.acct', '--latest', '--into', 'public.r4', '--copy-back-columns', 'a,,b' ], qr/separated by commas/ ])
{
	my ($what, $args, $re) = @$case;
	($rc, $out, $err) = recover(@$args);
	is($rc, 2, "$what: exit 2") or diag("$out\n$err");
	like($err, $re, "$what: says why");
}
is($node->safe_psql($db, q{SELECT count(*) FROM pg_class WHERE relname IN ('r1', 'r2', 'r3', 'r4')}), '0',
	'nothing was created by a refused recovery');

# ---- 6. --apply on a terminal asks first ----
# script(1) runs the command on a pseudo-terminal (stdin and stderr are ttys), feeding it the
# answer; its -e returns the command's exit code, and the terminal's output is script's stdout.
sub recover_on_terminal
{
	my ($answer, @args) = @_;
	my $cmd = join(' ', map { my $a = $_; $a =~ s/'/'\\''/g; "'$a'" }
		(backstop_bin(), 'recover', '--db', $conn, '--storage', $storage, @args));
	my ($in, $out, $err) = ($answer, '', '');
	IPC::Run::run([ 'script', '-qec', $cmd, '/dev/null' ], '<', \$in, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return ($? >> 8, $out . $err);
}
$node->safe_psql($db, q{UPDATE public.acct SET n = -1 WHERE id <= 5});
my $acct_wiped = sum('public.acct', 'id, email, doc, n');
my $xid_n = $node->safe_psql($db, q{SELECT max(xmin::text::bigint) FROM public.acct WHERE id <= 5});
ok(checkpoint_until($listen, 'public.acct', 60), 'acct: checkpoint after the second damage');
($rc, $out) = recover_on_terminal("n\n", '--table', 'public.acct', '--to-xid', $xid_n, '--exclusive',
	'--into', 'public.acct_tty1', '--apply');
is($rc, 1, 'terminal, answered n: exit 1') or diag($out);
like($out, qr/Apply the copy-back above to public\.acct\? \[y\/N\]/, 'terminal: it asks, naming the live table');
like($out, qr/copy-back not applied; the recovered table public\.acct_tty1 stays/, 'terminal, n: says nothing was applied');
is(sum('public.acct', 'id, email, doc, n'), $acct_wiped, 'terminal, n: the live table is untouched');
is($node->safe_psql($db, q{SELECT to_regclass('public.acct_tty1') IS NOT NULL}), 't', 'terminal, n: the recovery is kept');
($rc, $out) = recover_on_terminal("y\n", '--table', 'public.acct', '--to-xid', $xid_n, '--exclusive',
	'--into', 'public.acct_tty2', '--apply');
is($rc, 0, 'terminal, answered y: exit 0') or diag($out);
like($out, qr/Copy-back applied to public\.acct and validated/, 'terminal, y: applied and validated');
is($node->safe_psql($db, q{SELECT count(*) FROM public.acct WHERE n = -1}), '0', 'terminal, y: the damaged rows are set back');

kill 'TERM', $archiver;
waitpid($archiver, 0);
is($? >> 8, 0, 'archiver stopped cleanly');
$archiver = undef;
done_testing();
