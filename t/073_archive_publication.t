# 073_archive_publication.t — coverage is claimed only for what the stream delivers.  The
# documented least-privilege set-up: the archiver's role has REPLICATION and pg_read_all_data,
# and the publication is made (and owned) by another role.  The archiver must start and use the
# publication as it is; a table it was asked to archive that the publication does not stream is
# reported (log, metric, info) and never claimed (no checkpoint answers for it, recovery refuses
# it); a table that leaves the publication (ALTER PUBLICATION ... DROP TABLE) ends its archive
# there (points after are refused, points before recover exactly); a restart works as that role;
# a table removed from --tables between runs ends its archive at the restart point; one added to
# the publication again gets a new base copy (the gap stays refused); a publication
# FOR ALL TABLES made once by a superuser archives a table created later.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;
use BackstopArchiver;

my $node = new_pg_node('pub');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $role_conn = node_connstr($node, $db, $BackstopTest::REPLICATION_ROLE);
my $dir = scratch_dir('pub');

sub lsn { return $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()') }

# Two table checks of the archiver completed after this call: the second began after the first
# ended, so it read its WAL position after everything written before this call.
sub wait_for_table_checks
{
	my ($c, $what) = @_;
	my $n0 = $c->metric('backstop_table_checks_total');
	ok(defined $n0 && wait_for('two table checks', sub { ($c->metric('backstop_table_checks_total') // 0) >= $n0 + 2 }),
		"$what: two table checks after the point") or diag($c->log);
}

$node->safe_psql($db, q{
	CREATE TABLE public.t_in (id int PRIMARY KEY, v text);
	CREATE TABLE public.t_out (id int PRIMARY KEY, v text);
	CREATE TABLE public.t_left (id int PRIMARY KEY, v text);
	CREATE TABLE public.t_rm (id int PRIMARY KEY, v text);
	CREATE TABLE public.t_rf (id int PRIMARY KEY, v text);
	CREATE TABLE public.t_cl (id int PRIMARY KEY, v text, w text);
	INSERT INTO public.t_in SELECT g, 'in' || g FROM generate_series(1, 10) g;
	INSERT INTO public.t_out SELECT g, 'out' || g FROM generate_series(1, 10) g;
	INSERT INTO public.t_left SELECT g, 'left' || g FROM generate_series(1, 10) g;
	INSERT INTO public.t_rm SELECT g, 'rm' || g FROM generate_series(1, 10) g;
	-- Made by the tables' owner; the archiver's role can neither alter it nor add tables.
	CREATE PUBLICATION p_least FOR TABLE public.t_in, public.t_left, public.t_rm;

});

# 1. Least privilege, a FOR TABLE list made by the owner that lacks one of the tables.
# PostgreSQL 15 and later: a row filter streams part of a table, which is not archived either.
my $row_filters = $node->safe_psql($db, 'SHOW server_version_num') >= 150000;
$node->safe_psql($db, 'ALTER PUBLICATION p_least ADD TABLE public.t_rf WHERE (id > 5)') if $row_filters;
# And a column list (two of the three columns; another list naming all of them publishes it whole).
$node->safe_psql($db, 'ALTER PUBLICATION p_least ADD TABLE public.t_cl (id, v)') if $row_filters;
my $c = BackstopArchiver->new(dir => $dir, name => 'least', conn => $role_conn, args => [ '--tables', 'public.t_in,public.t_out,public.t_left,public.t_rm,public.t_rf,public.t_cl' ]);
$c->start;
$c->checkpoint_ok('public.t_in', 'least');
ok($c->log_has(qr/publication "p_least" is used as it is \(the archiver's role does not own it\)/),
	'least: the archiver uses the publication as it is') or diag($c->log);
ok($c->log_has(qr/table public\.t_out is NOT archived: not in publication "p_least"/),
	'least: a WARNING names the table the publication does not stream') or diag($c->log);
if ($row_filters)
{
	ok($c->log_has(qr/table public\.t_rf is NOT archived: not in publication "p_least" as a whole: it is published with a row filter/),
		'least: a WARNING names the table published with a row filter') or diag($c->log);
	my ($rc, $out, $err) = archiver_checkpoint($c->{listen}, 'public.t_rf', '5s');
	isnt($rc, 0, 'least: no checkpoint for a table published with a row filter');
	ok($c->log_has(qr/table public\.t_cl is NOT archived: not in publication "p_least" as a whole/),
		'least: a WARNING names the table published with a column list') or diag($c->log);
	($rc, $out, $err) = archiver_checkpoint($c->{listen}, 'public.t_cl', '5s');
	isnt($rc, 0, 'least: no checkpoint for a table published with a column list');
}
# (Before 15, t_rf and t_cl are not in the publication at all: unpublished as well.)
is($c->metric('backstop_tables_unpublished'), 3, 'least: backstop_tables_unpublished counts them');
my ($rc, $out, $err) = archiver_checkpoint($c->{listen}, 'public.t_out', '5s');
isnt($rc, 0, 'least: no checkpoint for a table the publication does not stream');
unlike($out, qr/"verified"\s*:\s*true/, 'least: never "verified"');
$node->safe_psql($db, q{INSERT INTO public.t_out SELECT g, 'later' FROM generate_series(11, 30) g});
$c->checkpoint_ok('public.t_in', 'least');
($rc, $out, $err) = run_backstop('info', '--storage', $c->{storage}, '--table', 'public.t_out');
like($out, qr/skipped: not in publication "p_least"/, 'least: info says why t_out is not archived') or diag("$out\n$err");
($rc, $out, $err) = $c->recover($conn, 'public.t_out', 'public.t_out_r', '--latest');
isnt($rc, 0, 'least: recover of the unstreamed table is refused') or diag("$out\n$err");
like($err, qr/not archived .*not in publication/, 'least: saying why') or diag($err);

# 2. A table that leaves the publication: its archive ends there.
$node->safe_psql($db, q{UPDATE public.t_left SET v = 'before' WHERE id <= 3});
$c->checkpoint_ok('public.t_left', 'left');
my $sum_before = content_checksum($node, $db, 'public.t_left');
my $lsn_before = lsn();
wait_for_table_checks($c, 'left');
$node->safe_psql($db, 'ALTER PUBLICATION p_least DROP TABLE public.t_left');
$node->safe_psql($db, q{DELETE FROM public.t_left WHERE id > 5; UPDATE public.t_left SET v = 'after'});
my $lsn_after = lsn();
ok(wait_for('the archiver to see t_left leave', sub { $c->log_has(qr/table public\.t_left left the archived set/) }),
	'left: the archiver notices the table left the publication') or diag($c->log);
($rc, $out, $err) = archiver_checkpoint($c->{listen}, 'public.t_left', '5s');
isnt($rc, 0, 'left: no checkpoint for it any more');
unlike($out, qr/"verified"\s*:\s*true/, 'left: never "verified"');
like($out . $err, qr/not in publication "p_least"/, 'left: the checkpoint says why') or diag("$out\n$err");
$c->checkpoint_ok('public.t_in', 'left');

# 3. A restart as the least-privilege role, with one table removed from --tables.  Its archive
# is complete up to where the first run stopped, which is at or after a checkpoint's point.
my $sum_rm = content_checksum($node, $db, 'public.t_rm');
my $lsn_rm = lsn();
$c->checkpoint_ok('public.t_rm', 'removed');
$c->stop('least, first run');
$c->set_args('--tables', 'public.t_in,public.t_out,public.t_left,public.t_rf');
$c->start;
ok(wait_for('the restart', sub { $c->log_has(qr/table public\.t_rm \(relid \d+\) still exists but is no longer among the tables to archive: its archive ends at/) }),
	'removed: the restart records that the archive of t_rm ends') or diag($c->log);
$node->safe_psql($db, q{UPDATE public.t_rm SET v = 'unarchived'; UPDATE public.t_in SET v = 'second run'});
my $sum_in = content_checksum($node, $db, 'public.t_in');
$c->checkpoint_ok('public.t_in', 'restart');
$c->stop('least, second run');

($rc, $out, $err) = $c->recover($conn, 'public.t_in', 'public.t_in_r', '--latest');
is($rc, 0, 'restart: t_in recovers') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.t_in_r'), $sum_in, 'restart: exactly');

($rc, $out, $err) = $c->recover($conn, 'public.t_left', 'public.t_left_r1', '--to-lsn', $lsn_before);
is($rc, 0, 'left: a point before it left recovers') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.t_left_r1'), $sum_before, 'left: exactly');
for my $point ([ '--to-lsn', $lsn_after ], ['--latest'])
{
	($rc, $out, $err) = $c->recover($conn, 'public.t_left', 'public.t_left_r2', @$point);
	is($rc, 1, "left: @$point after it left is refused (exit 1, outside the window)") or diag("$out\n$err");
	like($err, qr/committed from LSN \S+ on are not archived \(the table left the archived set/,
		"left: @$point: saying why") or diag($err);
}
($rc, $out, $err) = run_backstop('info', '--storage', $c->{storage}, '--table', 'public.t_left');
like($out, qr/not archived: from \S+ on \(the table left the archived set\)/, 'left: info shows where its archive ends')
	or diag("$out\n$err");

($rc, $out, $err) = $c->recover($conn, 'public.t_rm', 'public.t_rm_r1', '--to-lsn', $lsn_rm, '--exclusive');
is($rc, 0, 'removed: the point of the first run\'s stop recovers') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.t_rm_r1'), $sum_rm, 'removed: exactly');
($rc, $out, $err) = $c->recover($conn, 'public.t_rm', 'public.t_rm_r2', '--latest');
is($rc, 1, 'removed: --latest is refused (exit 1), not the stale state') or diag("$out\n$err");
like($err, qr/not archived \(the table left the archived set/, 'removed: saying why') or diag($err);

($rc, $out, $err) = run_backstop('verify', '--storage', $c->{storage});
is($rc, 0, 'verify finds the archive clean') or diag("$out\n$err");

# 3b. The table that left is added to the publication again: a new base copy from there, the
# gap it was out stays refused.
$c->start;
$c->checkpoint_ok('public.t_in', 'rejoin');
$node->safe_psql($db, 'ALTER PUBLICATION p_least ADD TABLE public.t_left');
$node->safe_psql($db, q{UPDATE public.t_left SET v = 'back' WHERE id <= 2});
ok(wait_for('t_left to rejoin', sub { $c->log_has(qr/table public\.t_left is in publication "p_least" again: taking a new base copy/) }),
	'rejoin: the archiver notices the table is published again') or diag($c->log);
$c->checkpoint_ok('public.t_left', 'rejoin');
my $sum_back = content_checksum($node, $db, 'public.t_left');
$c->stop('least, third run');
($rc, $out, $err) = $c->recover($conn, 'public.t_left', 'public.t_left_r3', '--latest');
is($rc, 0, 'rejoin: --latest recovers from the new base copy') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.t_left_r3'), $sum_back, 'rejoin: exactly');
($rc, $out, $err) = $c->recover($conn, 'public.t_left', 'public.t_left_r4', '--to-lsn', $lsn_after);
is($rc, 1, 'rejoin: a point while it was out is still refused (exit 1)') or diag("$out\n$err");
# (A closed gap does not record why: the message names both causes.)
like($err, qr/changes to public\.t_left committed from LSN \S+ to \S+ were never archived \(archiving resumed with a new base copy at \S+: from a new replication slot, or after the table was out of the archived set\)/,
	'rejoin: saying which changes are missing') or diag($err);

# 4. FOR ALL TABLES, made once by a superuser: the least-privilege archiver archives a table
# created later.
$node->safe_psql($db, 'CREATE PUBLICATION p_all FOR ALL TABLES');
my $all = BackstopArchiver->new(dir => $dir, name => 'all', conn => $role_conn, args => [ '--all-tables' ]);
$all->start;
$all->checkpoint_ok('public.t_in', 'all');
ok($all->log_has(qr/publication "p_all" is used as it is \(it is FOR ALL TABLES\)/),
	'all: a FOR ALL TABLES publication is used as it is') or diag($all->log);
$node->safe_psql($db, q{
	CREATE TABLE public.t_new (id int PRIMARY KEY, v text);
	INSERT INTO public.t_new SELECT g, 'new' || g FROM generate_series(1, 20) g;
});
$all->checkpoint_ok('public.t_new', 'all');
my $sum_new = content_checksum($node, $db, 'public.t_new');
$all->stop('all');
($rc, $out, $err) = $all->recover($conn, 'public.t_new', 'public.t_new_r', '--latest');
is($rc, 0, 'all: the new table recovers') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.t_new_r'), $sum_new, 'all: exactly');

$node->stop;
done_testing();
