# 053_archive_drop_mid_txn.t — a table dropped while another table's large transaction is still
# being received: the table check (every 100 ms here) must not seal the open segments in the
# middle of that transaction (its records would be cut in two, with no end LSN yet), and the
# big table must still be recovered exactly.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);
use BackstopTest;

my $node = new_pg_node('dropmid', extra_conf => "max_wal_size = 1GB\n");
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('dropmid');
my $storage = "file://$dir/archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";

$node->safe_psql($db, q{
	CREATE TABLE public.big (id int PRIMARY KEY, payload text);
	CREATE TABLE public.gone1 (id int PRIMARY KEY);
	CREATE TABLE public.gone2 (id int PRIMARY KEY);
	CREATE TABLE public.gone3 (id int PRIMARY KEY);
	INSERT INTO public.gone1 VALUES (1);
	INSERT INTO public.gone2 VALUES (2);
	INSERT INTO public.gone3 VALUES (3);
});
my $log = "$dir/archiver.log";
my $h = kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', '--db', $conn, '--tables', 'public.big,public.gone1,public.gone2,public.gone3',
	  '--storage', $storage, '--data-dir', "$dir/data", '--listen', $listen, '--segment-age', '1s',
	  '--table-poll-interval', '100ms' ],
	'<', \undef, '>', "$dir/archiver.out", '2>>', $log));
ok(wait_for('the archiver', sub { (archiver_checkpoint($listen, 'public.big', '5s'))[0] == 0 }, 60), 'archiver running')
  or diag(slurp_file($log));

# Large transactions, each received over a second or more after its commit; a table is
# dropped a little later each time, so that table checks see a drop while the archiver is
# inside one of them.
for my $i (1 .. 3)
{
	my $from = ($i - 1) * 200000 + 1;
	$node->safe_psql($db, "INSERT INTO public.big SELECT g, repeat(md5(g::text), 8) FROM generate_series($from, $from + 199999) g");
	$node->safe_psql($db, q{UPDATE public.big SET payload = 'u' || payload WHERE id % 3 = 0});
	sleep(0.3 * $i);
	$node->safe_psql($db, "DROP TABLE public.gone$i");
}
my $expect = content_checksum($node, $db, 'public.big');
my $lsn = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');
my ($rc, $out, $err) = archiver_checkpoint($listen, 'public.big', '120s');
is($rc, 0, 'checkpoint after the workload') or diag("$out\n$err\n" . slurp_file($log));
like(slurp_file($log), qr/table public\.gone3 was dropped/, 'the drops were seen');

($rc, $out, $err) = run_backstop('verify', '--storage', $storage);
is($rc, 0, 'verify: the archive is consistent') or diag("$out\n$err");
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.big',
	'--to-lsn', $lsn, '--into', 'public.big_r', '--no-indexes');
is($rc, 0, 'recover') or diag($err);
is(content_checksum($node, $db, 'public.big_r'), $expect, 'recovered exactly across the drop');
for my $i (1 .. 3)
{
	($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', "public.gone$i",
		'--latest', '--into', "public.gone${i}_r", '--no-indexes');
	is($rc, 0, "dropped table gone$i is recovered") or diag($err);
	is($node->safe_psql($db, "SELECT id FROM public.gone${i}_r"), $i, 'with its row');
}

$h->signal('TERM');
$h->finish;
done_testing();
