# 098_checkpoint_publication_left.t — a table taken out of the publication out of band (ALTER
# PUBLICATION ... DROP TABLE, a row filter or a column list added by hand) while no table check
# runs: pgoutput stops streaming (all of) its changes at that commit and says nothing.  A
# checkpoint at a later point must not answer "verified" from an archive that lacks those
# changes: it confirms the table's membership at or after its point, and refuses (409, the table
# left the publication) when it is gone, recording the gap so that recovery refuses those points
# too.  A point verified before the ALTER stays recoverable.  And a table check that puts the
# table back into the archiver's own publication records the gap (the changes in between were
# never streamed) instead of healing it silently.  Held open, not raced: table checks are skipped
# while the test holds BACKSTOP_TEST_TABLE_CHECK_LOCK.
use strict;
use warnings;

use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;
use BackstopArchiver;

my $node = new_pg_node('publeft');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('publeft');
my $key = 98098;
my $http = HTTP::Tiny->new(timeout => 120);

$node->safe_psql($db, q{
	CREATE TABLE public.t (id int PRIMARY KEY, v text);
	INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 20) g;
	CREATE TABLE public.u (id int PRIMARY KEY, v text);
	INSERT INTO public.u SELECT g, 'u' || g FROM generate_series(1, 5) g;
});

sub lsn { return $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()') }

my $c = BackstopArchiver->new(dir => $dir, name => 'main', conn => $conn, args => [ '--tables', 'public.t,public.u' ]);
$c->start(BACKSTOP_TEST_TABLE_CHECK_LOCK => $key);
$c->checkpoint_ok('public.t', 'start');
$c->checkpoint_ok('public.u', 'start');

sub log_count { my ($re) = @_; my @m = $c->log =~ /$re/g; return scalar @m }

# No table check runs from here until release_checks (one already running ends first).
my $holder = $node->background_psql($db);
sub hold_checks
{
	my ($what) = @_;
	my $n = log_count(qr/table check skipped/);
	$holder->query_safe("SELECT pg_advisory_lock($key)");
	ok(wait_for('a table check to be skipped', sub { log_count(qr/table check skipped/) > $n }, 60),
		"$what: table checks are held back") or diag($c->log);
}
sub release_checks
{
	my ($what) = @_;
	$holder->query_safe("SELECT pg_advisory_unlock($key)");
	my $n = $c->metric('backstop_table_checks_total') // 0;
	ok(wait_for('two table checks', sub { ($c->metric('backstop_table_checks_total') // 0) >= $n + 2 }, 60),
		"$what: two table checks after the checks are let go") or diag($c->log);
}

# The gaps of public.t's manifest in storage (what recovery reads).
my $relid = $node->safe_psql($db, "SELECT 'public.t'::regclass::oid");
sub stored_gaps
{
	my $f = "$dir/main/archive/tables/$relid/manifest.json";
	my $m = -e $f ? eval { decode_json(slurp_file($f)) } : undef;
	return scalar @{ ($m // {})->{gaps} // [] };
}

# POST /checkpoint (at $lsn, or now): (HTTP status, decoded answer or {error}).
sub checkpoint
{
	my ($table, $lsn) = @_;
	my $url = "http://" . $c->listen . "/checkpoint?table=$table&timeout_ms=60000" . ($lsn ? "&lsn=$lsn" : '');
	my $r = $http->post($url);
	my $ans = eval { decode_json($r->{content}) } // { error => $r->{content} };
	return ($r->{status}, $ans);
}

# A verified point before the change, then the change out of band and a row change after it.
sub scenario
{
	my ($what, $alter, $change, $restore) = @_;

	hold_checks($what);
	my $gaps = stored_gaps();
	$node->safe_psql($db, "UPDATE public.t SET v = v || '<' WHERE id = 1");
	my $before = lsn();
	my $sum_before = content_checksum($node, $db, 'public.t');
	my ($st, $ans) = checkpoint('public.t', $before);
	is($st, 200, "$what: a checkpoint before the change is answered") or diag(explain($ans));
	ok($ans->{verified}, "$what: verified");

	$node->safe_psql($db, $alter);
	$node->safe_psql($db, $change);
	my $after = lsn();
	my $sum_after = content_checksum($node, $db, 'public.t');
	($st, $ans) = checkpoint('public.t', $after);
	is($st, 409, "$what: a checkpoint after the change is refused") or diag(explain($ans), $c->log);
	like($ans->{error} // '', qr/table public\.t is not in publication "p_main"[^\n]* from \S+ on/,
		"$what: saying that the table left the publication, and from where");
	($st, $ans) = checkpoint('public.t');
	is($st, 409, "$what: a checkpoint now is refused too") or diag(explain($ans));
	ok($c->log_has(qr/table public\.t left the archived set/), "$what: the log says the table left") or diag($c->log);
	ok(wait_for('the gap to be stored', sub { stored_gaps() > $gaps }, 60), "$what: the gap is stored in the manifest")
		or diag($c->log);

	my ($rc, $out, $err) = $c->recover($conn, 'public.t', 'public.r_before', '--to-lsn', $before);
	is($rc, 0, "$what: the point verified before the change is recovered") or diag("$out\n$err");
	is(content_checksum($node, $db, 'public.r_before'), $sum_before, "$what: exactly");
	for my $point ([ '--to-lsn', $after ], ['--latest'])
	{
		($rc, $out, $err) = $c->recover($conn, 'public.t', 'public.r_after', @$point);
		isnt($rc, 0, "$what: recover @$point is refused") or diag("$out\n$err");
		like($err, qr/committed from LSN \S+ on are not archived \(the table left the archived set|outside the recovery window|were never archived \(archiving resumed/,
			"$what: recover @$point says why");
		$node->safe_psql($db, 'DROP TABLE IF EXISTS public.r_after');
	}
	$node->safe_psql($db, 'DROP TABLE public.r_before');
	$node->safe_psql($db, $restore) if $restore;

	# Back in the publication (the archiver's check puts it back, or the test did): a new base
	# copy, and the gap stays refused.
	release_checks($what);
	$c->checkpoint_ok('public.t', "$what: back in the publication");
	($rc, $out, $err) = $c->recover($conn, 'public.t', 'public.r_latest', '--latest');
	is($rc, 0, "$what: --latest recovers from the new base copy") or diag("$out\n$err");
	is(content_checksum($node, $db, 'public.r_latest'), content_checksum($node, $db, 'public.t'), "$what: exactly");
	$node->safe_psql($db, 'DROP TABLE public.r_latest');
	($rc, $out, $err) = $c->recover($conn, 'public.t', 'public.r_after', '--to-lsn', $after);
	isnt($rc, 0, "$what: the point after the change stays refused") or diag("$out\n$err");
	$node->safe_psql($db, 'DROP TABLE IF EXISTS public.r_after');
	$c->checkpoint_ok('public.u', "$what: the other table");
}

# 1. DROP TABLE out of band; the archiver's next check puts it back into its publication.
scenario('drop', 'ALTER PUBLICATION p_main DROP TABLE public.t', "UPDATE public.t SET v = v || '!' WHERE id <= 5");

SKIP:
{
	skip 'row filters and column lists need PostgreSQL 15', 2 if pg_major() < 15;
	# 2. A row filter: the UPDATE of rows it filters out is not streamed.
	scenario('row filter', 'ALTER PUBLICATION p_main SET TABLE public.t WHERE (id > 10), public.u',
		"UPDATE public.t SET v = v || '?' WHERE id <= 5", 'ALTER PUBLICATION p_main SET TABLE public.t, public.u');
	# 3. A column list: the UPDATE's new v is not streamed.
	scenario('column list', 'ALTER PUBLICATION p_main SET TABLE public.t (id), public.u',
		"UPDATE public.t SET v = v || '#' WHERE id <= 5", 'ALTER PUBLICATION p_main SET TABLE public.t, public.u');
}

# 4. No checkpoint in between: the table check that puts the table back into the archiver's own
# publication records the gap (before, the changes made while it was out were lost silently).
hold_checks('check only');
my $before = lsn();
my ($st, $ans) = checkpoint('public.t', $before);
is($st, 200, 'check only: a checkpoint before the change is answered') or diag(explain($ans));
$node->safe_psql($db, 'ALTER PUBLICATION p_main DROP TABLE public.t');
$node->safe_psql($db, "UPDATE public.t SET v = v || '~' WHERE id <= 5");
my $after = lsn();
my $put_back = qr/table public\.t left the archived set: taken out of publication "p_main" outside the archiver[^\n]*the table check has put it back/;
my $left = log_count($put_back);
my $gaps = stored_gaps();
release_checks('check only');
ok(log_count($put_back) > $left,
	'check only: the check that puts it back says the table left') or diag($c->log);
$c->checkpoint_ok('public.t', 'check only: back in the publication');
ok(wait_for('the gap to be stored', sub { stored_gaps() > $gaps }, 60), 'check only: the gap is stored in the manifest')
	or diag($c->log);
my ($rc, $out, $err) = $c->recover($conn, 'public.t', 'public.r_gap', '--to-lsn', $after);
isnt($rc, 0, 'check only: a point while the table was out is refused') or diag("$out\n$err");
like($err, qr/committed from LSN \S+ on are not archived \(the table left the archived set|outside the recovery window|were never archived \(archiving resumed/,
	'check only: saying why');
$node->safe_psql($db, 'DROP TABLE IF EXISTS public.r_gap');
($rc, $out, $err) = $c->recover($conn, 'public.t', 'public.r_latest', '--latest');
is($rc, 0, 'check only: --latest recovers') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.r_latest'), content_checksum($node, $db, 'public.t'), 'check only: exactly');

$holder->quit;
$c->stop('end');
done_testing();
