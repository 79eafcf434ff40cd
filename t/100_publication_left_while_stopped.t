# 100_publication_left_while_stopped.t — a table taken out of the archiver's own publication
# (ALTER PUBLICATION ... DROP TABLE) while the archiver is stopped: pgoutput never streams the
# changes committed after that ALTER, and start-up puts the table back into the publication.  It
# must record the gap (the table's archive ends where it was complete) instead of healing it
# silently: recovery before the ALTER stays exact, points after it are refused until the new base
# copy that start-up's first table check takes, and points after that copy are exact again.  Both
# archive formats (2, and the experimental 3).  With a row filter added while stopped, the table
# is left out (published in part) with its gap until the publication's owner publishes it whole;
# when start-up's update of the publication publishes it whole (another table was taken out too),
# a row filter or a column list keeps its gap as a DROP TABLE does.  And a table taken out while
# the archiver runs, stopped before a table check sees it: the stop's own membership read ends
# its archive before the ALTER.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;
use BackstopArchiver;

my $node = new_pg_node('pubstop');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('pubstop');

$node->safe_psql($db, q{
	CREATE TABLE public.t (id int PRIMARY KEY, v text);
	INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 20) g;
	CREATE TABLE public.u (id int PRIMARY KEY, v text);
	INSERT INTO public.u SELECT g, 'u' || g FROM generate_series(1, 5) g;
});

sub lsn { return $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()') }
sub sum { my ($t) = @_; return content_checksum($node, $db, $t) }
my $refused = qr/committed from LSN \S+ on are not archived \(the table left the archived set|outside the recovery window|were never archived \(archiving resumed/;

# recover public.t at @point: exact (the checksum $want), or refused with a reason.
sub recovers
{
	my ($c, $what, $want, @point) = @_;
	my ($rc, $out, $err) = $c->recover($conn, 'public.t', 'public.r', @point);
	if (defined $want)
	{
		is($rc, 0, "$what: recover @point succeeds") or diag("$out\n$err");
		is(sum('public.r'), $want, "$what: recover @point is exact");
	}
	else
	{
		isnt($rc, 0, "$what: recover @point is refused") or diag("$out\n$err", $c->log);
		like($err, $refused, "$what: recover @point says why");
	}
	$node->safe_psql($db, 'DROP TABLE IF EXISTS public.r');
}

# A verified point, the archiver stopped, the ALTER and a row change, the archiver started again.
sub scenario
{
	my ($name, $what, $alter, $change, $restore, @args) = @_;
	my $c = BackstopArchiver->new(dir => $dir, name => $name, conn => $conn,
		args => [ '--tables', 'public.t,public.u', @args ]);

	$c->start;
	$c->checkpoint_ok('public.t', "$what: start");
	$node->safe_psql($db, "UPDATE public.t SET v = v || '<' WHERE id = 1");
	my $before = lsn();
	my $sum_before = sum('public.t');
	# Archived past $before (the archive is complete up to the end of this last commit).
	$node->safe_psql($db, "UPDATE public.u SET v = v || '<' WHERE id = 1");
	$c->checkpoint_ok('public.t', "$what: after a change");
	$c->checkpoint_ok('public.u', "$what: after a change");
	$c->stop("$what: before the ALTER");

	$node->safe_psql($db, $alter);
	$node->safe_psql($db, $change);
	my $after = lsn();
	my $sum_after = sum('public.t');
	$node->safe_psql($db, "UPDATE public.u SET v = v || '$name' WHERE id = 2");

	$c->start;
	$c->checkpoint_ok('public.u', "$what: restarted, the other table");
	ok(wait_for('the table to leave', sub { $c->log_has(qr/table public\.t left the archived set/) }, 60),
		"$what: the log says the table left the archived set") or diag($c->log);
	recovers($c, "$what: before the ALTER", $sum_before, '--to-lsn', $before);
	recovers($c, "$what: after the ALTER", undef, '--to-lsn', $after);
	if ($restore)
	{
		recovers($c, "$what: out of the publication", undef, '--latest');
		$node->safe_psql($db, $restore);
	}
	else
	{
		ok($c->log_has(qr/table public\.t left the archived set: taken out of publication "p_$name" outside the archiver while it was stopped[^\n]*start-up has put it back/),
			"$what: start-up says it put the table back") or diag($c->log);
	}
	# Back in the publication: a new base copy, after which points are exact again.
	$c->checkpoint_ok('public.t', "$what: back in the publication");
	recovers($c, "$what: after the new base copy", sum('public.t'), '--latest');
	$node->safe_psql($db, "UPDATE public.t SET v = v || '>' WHERE id = 2");
	my $later = lsn();
	my $sum_later = sum('public.t');
	$c->checkpoint_ok('public.t', "$what: a later change");
	recovers($c, "$what: a later change", $sum_later, '--to-lsn', $later);
	recovers($c, "$what: before the ALTER, still", $sum_before, '--to-lsn', $before);
	recovers($c, "$what: after the ALTER, still", undef, '--to-lsn', $after);
	$c->stop("$what: end");
}

scenario('f2', 'format 2, drop', 'ALTER PUBLICATION p_f2 DROP TABLE public.t',
	"UPDATE public.t SET v = v || '!' WHERE id <= 5");
scenario('f3', 'format 3, drop', 'ALTER PUBLICATION p_f3 DROP TABLE public.t',
	"UPDATE public.t SET v = v || '!' WHERE id <= 5", undef, '--archive-format', '3');
SKIP:
{
	skip 'row filters and column lists need PostgreSQL 15', 3 if pg_major() < 15;
	scenario('rf', 'row filter', 'ALTER PUBLICATION p_rf SET TABLE public.t WHERE (id > 10), public.u',
		"UPDATE public.t SET v = v || '?' WHERE id <= 5", 'ALTER PUBLICATION p_rf SET TABLE public.t, public.u');
	# The other table taken out too: start-up's update of the publication (SET TABLE) publishes
	# public.t whole again, and the changes the filter or the list left out were not streamed.
	scenario('rs', 'row filter, put back', 'ALTER PUBLICATION p_rs SET TABLE public.t WHERE (id > 10)',
		"UPDATE public.t SET v = v || '%' WHERE id <= 5");
	scenario('cl', 'column list, put back', 'ALTER PUBLICATION p_cl SET TABLE public.t (id)',
		"UPDATE public.t SET v = v || '&' WHERE id <= 5");
}

# Taken out while the archiver runs, and stopped before a table check sees it (checks held by
# BACKSTOP_TEST_TABLE_CHECK_LOCK): the stream went on without the table's changes up to the stop.
# The stop reads the membership itself, so the table's archive ends before the ALTER, not at the
# stop, and a point between the two is refused.
{
	my $key = 100100;
	my $c = BackstopArchiver->new(dir => $dir, name => 'rn', conn => $conn, args => [ '--tables', 'public.t,public.u' ]);
	my $what = 'left while running';
	my $holder = $node->background_psql($db);
	my $skipped = sub { my @m = $c->log =~ /table check skipped/g; return scalar @m };

	$c->start(BACKSTOP_TEST_TABLE_CHECK_LOCK => $key);
	$c->checkpoint_ok('public.t', "$what: start");
	$c->checkpoint_ok('public.u', "$what: start");
	my $n = $skipped->();
	$holder->query_safe("SELECT pg_advisory_lock($key)");
	ok(wait_for('a table check to be skipped', sub { $skipped->() > $n }, 60), "$what: table checks are held back")
		or diag($c->log);
	# Confirmed published at (or after) $before by this checkpoint, checks held.
	my $before = lsn();
	my $sum_before = sum('public.t');
	$c->checkpoint_ok('public.t', "$what: before the ALTER");
	$node->safe_psql($db, 'ALTER PUBLICATION p_rn DROP TABLE public.t');
	$node->safe_psql($db, "UPDATE public.t SET v = v || '*' WHERE id <= 5");
	my $mid = lsn();
	$node->safe_psql($db, "UPDATE public.u SET v = v || '*' WHERE id = 3");
	$c->checkpoint_ok('public.u', "$what: the other table, after the ALTER");
	$c->stop("$what: stopped before a table check");
	$holder->query_safe("SELECT pg_advisory_unlock($key)");
	$holder->quit;
	ok($c->log_has(qr/table public\.t left the archived set: [^\n]*found at the stop/),
		"$what: the stop says the table left the archived set") or diag($c->log);

	$c->start;
	$c->checkpoint_ok('public.t', "$what: restarted, back in the publication");
	recovers($c, "$what: before the ALTER", $sum_before, '--to-lsn', $before);
	recovers($c, "$what: between the ALTER and the stop", undef, '--to-lsn', $mid);
	recovers($c, "$what: after the new base copy", sum('public.t'), '--latest');
	$c->stop("$what: end");
}

done_testing();
