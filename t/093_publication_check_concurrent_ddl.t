# 093_publication_check_concurrent_ddl.t — table checks and a session's DDL or locks on a
# published table.  1. A table check that reads the publication's members while a DROP COLUMN of
# a published table commits still sees the whole table published.  From
# PostgreSQL 16 on, pg_publication_tables gives a table without a column list the columns of its
# current descriptor, read after the DROP's lock is released, while the statement's snapshot still
# shows the dropped column: compared, the table looked published with a column list, was taken
# out of the archive, and every point from the check on was refused until a new base copy.
# Held open, not raced: BACKSTOP_TEST_PUBLICATION_MEMBERS_LOCK stops the check right before the
# read, the DROP begins, the read starts and waits for the DROP's lock (seen in pg_locks, from
# 16 on), then the DROP commits.  2. From 16 on, listing a publication opens its tables: while a
# session holds a lock on one (LOCK TABLE, a rewrite), a table check waits at most
# --base-lock-timeout, fails and says why, and the daemon goes on answering (health,
# checkpoints) instead of waiting with its event loop until the lock is released.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;
use BackstopArchiver;

# Case 1 holds the read open for as long as the test needs: no lock timeout cuts it short.
my $node = new_pg_node('pubddl', extra_conf => "deadlock_timeout = 10min\n");
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('pubddl');
my $key = 93093;

$node->safe_psql($db, q{
	CREATE TABLE public.t (id int PRIMARY KEY, v text, w text);
	INSERT INTO public.t SELECT g, 'v' || g, 'w' || g FROM generate_series(1, 20) g;
});

my $c = BackstopArchiver->new(dir => $dir, name => 'main', conn => $conn,
	args => [ '--all-tables', '--base-lock-timeout', '1min' ]);
$c->start(BACKSTOP_TEST_PUBLICATION_MEMBERS_LOCK => $key);
$c->checkpoint_ok('public.t', 'start');

# The next check stops before its read of the publication's members.
my $holder = $node->background_psql($db);
$holder->query_safe("SELECT pg_advisory_lock($key)");
ok(wait_for('a table check to wait for the test', sub {
	$node->safe_psql($db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $key AND NOT granted") > 0 }, 60),
	'a table check waits right before it reads the members') or diag($c->log);

my $ddl = $node->background_psql($db);
$ddl->query_safe('BEGIN; ALTER TABLE public.t DROP COLUMN w');
$holder->query_safe("SELECT pg_advisory_unlock($key)");
# From 16 on the read waits for the DROP's lock (the archiver's event loop with it: nothing asks
# the daemon meanwhile).  Before 16 the read takes no lock: the race does not exist there.
if (pg_major() >= 16)
{
	ok(wait_for('the read to wait for the DROP', sub {
		$node->safe_psql($db, "SELECT count(*) FROM pg_locks WHERE relation = 'public.t'::regclass AND NOT granted") > 0 }, 60),
		'the read of the members waits for the open DROP') or diag($c->log);
}
$ddl->query_safe('COMMIT');
$ddl->quit;
$holder->quit;
my $point = $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()');
my $sum = content_checksum($node, $db, 'public.t');
$node->safe_psql($db, "INSERT INTO public.t VALUES (21, 'after')");

# Two more checks: the one that read during the DROP has ended and reported what it found.
my $n0 = $c->metric('backstop_table_checks_total');
ok(wait_for('two table checks', sub { ($c->metric('backstop_table_checks_total') // 0) >= $n0 + 2 }, 60),
	'two table checks after the DROP') or diag($c->log);
$c->checkpoint_ok('public.t', 'after the DROP');
unlike($c->log, qr/public\.t\b[^\n]*(?:not in publication|NOT archived|still not archived)/,
	'the table is still archived as a whole');
my $relid = $node->safe_psql($db, "SELECT 'public.t'::regclass::oid");
my $man = slurp_file("$dir/main/archive/tables/$relid/manifest.json");
unlike($man, qr/"gaps"\s*:\s*\[\s*\{/, 'no gap in the archive of public.t') or diag($man);

my ($rc, $out, $err) = $c->recover($conn, 'public.t', 'public.r_drop', '--to-lsn', $point);
is($rc, 0, 'recovered at the DROP COLUMN') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.r_drop'), $sum, 'exactly the table after the DROP COLUMN');

$c->stop('case 1');

# 2. A lock held on a published table, with the default --base-lock-timeout (100 ms).
$node->safe_psql($db, q{
	CREATE TABLE public.u (id int PRIMARY KEY, v text);
	INSERT INTO public.u SELECT g, 'u' || g FROM generate_series(1, 5) g;
});
my $l = BackstopArchiver->new(dir => $dir, name => 'lock', conn => $conn, args => [ '--tables', 'public.t,public.u' ]);
$l->start;
$l->checkpoint_ok('public.u', 'lock: start');
my $locker = $node->background_psql($db);
$locker->query_safe('BEGIN; LOCK TABLE public.t IN ACCESS EXCLUSIVE MODE');
if (pg_major() >= 16)
{
	ok(wait_for('a table check to fail on the lock', sub { $l->log_has(qr/table check failed: could not list the tables of publication "p_lock" within 100 ms/) }, 60),
		'lock: a table check gives up on the lock and says why') or diag($l->log);
}
# The lock is still held: the daemon answers (before, it waited for the lock with its event loop).
my ($hrc, $health) = (1, '');
IPC::Run::run([ 'curl', '-s', '-m', '60', "http://$l->{listen}/health" ], '>', \$health, '2>', \my $herr);
like($health, qr/"status"\s*:\s*"ok"/, 'lock: /health answers while the lock is held') or diag($herr);
my ($crc, $cout, $cerr) = archiver_checkpoint($l->{listen}, 'public.u', '60s');
is($crc, 0, 'lock: a checkpoint of another table is answered while the lock is held') or diag("$cout\n$cerr");
$locker->query_safe('COMMIT');
$locker->quit;
if (pg_major() >= 16)
{
	ok(wait_for('table checks to succeed again', sub { $l->log_has(qr/table checks succeed again, after \d+ failed/) }, 60),
		'lock: table checks succeed again once the lock is released') or diag($l->log);
	my $n = () = $l->log =~ /table check failed: could not list/g;
	is($n, 1, 'lock: the same failure is logged once');
}
$l->checkpoint_ok('public.t', 'lock: after the lock');
$l->stop('case 2');
done_testing();
