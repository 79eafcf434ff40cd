# 094_publication_update_concurrent_drop.t — a table check whose ALTER PUBLICATION ... SET TABLE
# meets a table of its list dropped after the list was read does not report the new tables it was
# adding as "NOT archived" (recorded as skipped) although the next check adds them: it reads the
# tables again and tries once more at once; should that fail the same way, the new tables are
# "not archived yet" (a warning, nothing recorded) and the next check archives them.
# Held open, not raced: BACKSTOP_TEST_TABLE_CHECK_LOCK holds the checks back while a new table is
# made, so the next check's list holds it; BACKSTOP_TEST_PUBLICATION_UPDATE_LOCK stops that check
# right before its update (KEY) and before its retry (KEY + 1), seen waiting in pg_locks, while
# the test drops a table of its list.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;
use BackstopArchiver;

my $node = new_pg_node('pubdrop');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('pubdrop');
my $check_key = 94001;
my $update_key = 94010;

$node->safe_psql($db, q{
	CREATE TABLE public.keep (id int PRIMARY KEY, v text);
	INSERT INTO public.keep SELECT g, 'v' || g FROM generate_series(1, 20) g;
	CREATE TABLE public.victim1 (id int PRIMARY KEY);
	CREATE TABLE public.victim2 (id int PRIMARY KEY);
	CREATE TABLE public.victim3 (id int PRIMARY KEY);
});

my $c = BackstopArchiver->new(dir => $dir, name => 'main', conn => $conn, args => [ '--all-tables' ]);
$c->start(BACKSTOP_TEST_TABLE_CHECK_LOCK => $check_key, BACKSTOP_TEST_PUBLICATION_UPDATE_LOCK => $update_key);
$c->checkpoint_ok('public.keep', 'start');

sub log_count
{
	my ($re) = @_;
	my @m = $c->log =~ /$re/g;
	return scalar @m;
}

sub waiting_on
{
	my ($key) = @_;
	return $node->safe_psql($db,
		"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $key AND NOT granted") > 0;
}

my $holder = $node->background_psql($db);

# The next check lists $new, then waits before its update for the test (holding @keys).
sub next_check_lists
{
	my ($new, @keys) = @_;
	my $n = log_count(qr/table check skipped/);
	$holder->query_safe("SELECT pg_advisory_lock($check_key)");
	ok(wait_for('a table check to be skipped', sub { log_count(qr/table check skipped/) > $n }, 60),
		'table checks are held back') or diag($c->log);
	$holder->query_safe("SELECT pg_advisory_lock($_)") for @keys;
	$node->safe_psql($db, qq{
		CREATE TABLE public.$new (id int PRIMARY KEY, v text);
		INSERT INTO public.$new SELECT g, 'n' || g FROM generate_series(1, 10) g;
	});
	$holder->query_safe("SELECT pg_advisory_unlock($check_key)");
	ok(wait_for('the check to wait before its update', sub { waiting_on($update_key) }, 60),
		"the check that lists $new waits right before it updates the publication") or diag($c->log);
}

# 1. One table dropped between the list and the update: the retry at once adds the new table.
next_check_lists('fresh1', $update_key);
$node->safe_psql($db, 'DROP TABLE public.victim1');
$holder->query_safe("SELECT pg_advisory_unlock($update_key)");
ok(wait_for('the retry', sub { $c->log_has(qr/a table to publish was dropped while the publication was updated; reading the tables again/) }, 60),
	'the failed update is noticed and the tables read again') or diag($c->log);
$c->checkpoint_ok('public.fresh1', 'the new table, added by the retry');
unlike($c->log, qr/could not set up publication/, 'the retry updated the publication: no failure reported');
unlike($c->log, qr/public\.fresh1\b[^\n]*(?:NOT archived|not in publication|not archived yet)/,
	'the new table was never reported as not archived');
ok(wait_for('victim1 found dropped', sub { $c->log_has(qr/table public\.victim1 was dropped/) }, 60),
	'the dropped table is found dropped') or diag($c->log);

# 2. A second table dropped before the retry too: the new table waits for the next check.
next_check_lists('fresh2', $update_key, $update_key + 1);
$node->safe_psql($db, 'DROP TABLE public.victim2');
$holder->query_safe("SELECT pg_advisory_unlock($update_key)");
ok(wait_for('the retry to wait', sub { waiting_on($update_key + 1) }, 60),
	'the check read the tables again and waits before its retry') or diag($c->log);
$node->safe_psql($db, 'DROP TABLE public.victim3');
$holder->query_safe("SELECT pg_advisory_unlock(" . ($update_key + 1) . ")");
ok(wait_for('the not-yet warning', sub { $c->log_has(qr/table public\.fresh2 is not archived yet/) }, 60),
	'the new table is reported as not archived yet') or diag($c->log);
like($c->log,
	qr/WARNING: table public\.fresh2 is not archived yet: the publication could not be updated \(could not set up publication "p_main": [^\n]*relation "public\.victim3" does not exist\); the next table check tries again/,
	'saying why and that the next check tries again');
like($c->log, qr/WARNING: could not set up publication "p_main": [^\n]*"public\.victim3" does not exist/,
	'the failed retry is reported');
$c->checkpoint_ok('public.fresh2', 'the new table, added by the next check');
unlike($c->log, qr/public\.fresh2 is NOT archived|public\.fresh2\b[^\n]*not in publication/,
	'the new table was not reported as refused');
my $relid = $node->safe_psql($db, "SELECT 'public.fresh2'::regclass::oid");
my $man = slurp_file("$dir/main/archive/tables/$relid/manifest.json");
like($man, qr/"status"\s*:\s*"active"/, 'its manifest is active') or diag($man);
unlike($man, qr/not in publication/, 'with no finding') or diag($man);

$holder->quit;
$c->stop('end');
done_testing();
