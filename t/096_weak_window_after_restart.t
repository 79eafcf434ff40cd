# 096_weak_window_after_restart.t — where schema changes are not captured (--ddl-capture off), a
# column change is known only to lie after the table's last row change archived with the old
# columns.  After a restart the archiver took that bound from its manifest as the first commit of
# the table's newest segment, so a window opened then reached back over the segment's later row
# changes, and points between them (exact: the old columns) were refused.  t/080 (seed 404,
# PostgreSQL 17: a kill -9, then an ADD COLUMN) counted them as BAD REFUSAL.  Now the bound is
# the end of the segment's last transaction: points before it recover, points after it (where
# the change may lie) are refused until the stream or a base copy says where it lies.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;
use BackstopArchiver;

my $node = new_pg_node('wrestart');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('wrestart');
my $copy_key = 96096;

sub pt { return $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()') }
sub sum { return content_checksum($node, $db, 'public.w') }

$node->safe_psql($db, q{
	CREATE TABLE public.w (id int PRIMARY KEY, v text);
	INSERT INTO public.w SELECT g, 'v' || g FROM generate_series(1, 10) g;
	CREATE TABLE public.other (id int PRIMARY KEY);
});

# One segment holds both row changes: no seal but the one a checkpoint asks for.
my $c = BackstopArchiver->new(dir => $dir, name => 'main', conn => $conn,
	args => [ '--all-tables', '--ddl-capture', 'off', '--segment-age', '1h' ]);
$c->start;
$c->checkpoint_ok('public.w', 'start');
$node->safe_psql($db, "UPDATE public.w SET v = 'first' WHERE id = 1");
$node->safe_psql($db, 'INSERT INTO public.other VALUES (1)');
my ($p_mid, $s_mid) = (pt(), sum());
$node->safe_psql($db, "UPDATE public.w SET v = 'second' WHERE id = 2");
$node->safe_psql($db, 'INSERT INTO public.other VALUES (2)');
my ($p_after, $s_after) = (pt(), sum());
$c->checkpoint_ok('public.w', 'both row changes');
my $relid = $node->safe_psql($db, "SELECT 'public.w'::regclass::oid");
my $man = slurp_file("$dir/main/archive/tables/$relid/manifest.json");
my $nseg = () = $man =~ /"first_lsn"/g;
is($nseg, 1, 'both row changes are in one segment') or diag($man);
$c->stop('before the change');

# Restarted; base copies held (so only the stream or a later copy could end a window), the
# column added, a table check sees it.
$c->start(BACKSTOP_TEST_BASE_COPY_LOCK => $copy_key);
$c->checkpoint_ok('public.w', 'restart');
my $holder = $node->background_psql($db);
$holder->query_safe("SELECT pg_advisory_lock($copy_key)");
$node->safe_psql($db, 'ALTER TABLE public.w ADD COLUMN c int');
ok(wait_for('a table check to see the new column', sub { $c->log_has(qr/table public\.w: its columns in the catalog differ/) }, 90),
	'a table check opens a window of an unknown change') or diag($c->log);

my ($rc, $out, $err) = $c->recover($conn, 'public.w', 'public.r_mid', '--to-lsn', $p_mid);
is($rc, 0, 'a point between the two row changes recovers') or diag("$out\n$err\n" . $c->log);
is(content_checksum($node, $db, 'public.r_mid'), $s_mid, 'exactly the table there');
($rc, $out, $err) = $c->recover($conn, 'public.w', 'public.r_after', '--to-lsn', $p_after);
isnt($rc, 0, 'a point after the last row change is refused (the change may lie before it)');
like($err, qr/changed at an unknown point/, 'saying why') or diag($err);
$holder->query_safe("SELECT pg_advisory_unlock($copy_key)");
$holder->quit;
$c->stop('end');
done_testing();
