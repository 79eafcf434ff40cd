# 067_archive_skipped_kinds.t — tables the archiver cannot archive are reported, never left out
# silently: an unlogged table (--all-tables) and one without columns are skipped with a finding in
# `info`, a warning in the
# log and backstop_tables_skipped; a temporary table named in --tables gets its own finding; a
# partitioned table is archived through its partitions, and naming the parent in `recover`
# rebuilds it with them (t/084 in depth).  And finding a table by name does not depend on every other
# table's manifest being readable: with another table's manifest damaged, `recover` of a table
# works, with a warning naming the damaged manifest.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $node = new_pg_node('kinds');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('kinds');
my $storage = "file://$dir/archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";
my $log = "$dir/archiver.log";

sub metric
{
	my ($name) = @_;
	my $m = '';
	IPC::Run::run([ 'curl', '-s', "http://$listen/metrics" ], '>', \$m);
	return $m =~ /^\Q$name\E (\S+)$/m ? $1 : undef;
}

$node->safe_psql($db, q{
	CREATE TABLE public.b (id int PRIMARY KEY, v text);
	INSERT INTO public.b SELECT g, 'v' || g FROM generate_series(1, 50) g;
	CREATE UNLOGGED TABLE public.u (id int PRIMARY KEY, v text);
	INSERT INTO public.u VALUES (1, 'not in the WAL');
	CREATE TABLE public.parted (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
	CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (0) TO (100);
	CREATE TABLE public.parted_2 PARTITION OF public.parted FOR VALUES FROM (100) TO (200);
	INSERT INTO public.parted SELECT g, 'p' || g FROM generate_series(1, 150) g;
	CREATE TABLE public.nocols ();
	ALTER TABLE public.nocols REPLICA IDENTITY FULL;
	INSERT INTO public.nocols DEFAULT VALUES;
	CREATE TABLE public.parted_empty (id int PRIMARY KEY) PARTITION BY RANGE (id);
});
my $h = kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', '--db', $conn, '--all-tables',
	  '--storage', $storage, '--data-dir', "$dir/data", '--listen', $listen, '--segment-age', '1s',
	  '--table-poll-interval', '200ms' ],
	'<', \undef, '>', "$dir/archiver.out", '2>>', $log));
ok(wait_for('the archiver', sub { (archiver_checkpoint($listen, 'public.b', '5s'))[0] == 0 }, 60), 'archiver running')
  or diag(slurp_file($log));

# Unlogged: skipped, loudly.
like(slurp_file($log), qr/WARNING.*table public\.u is NOT archived: unlogged table: its changes are not written to the WAL/,
	'the log warns about the unlogged table');
# A table without columns (REPLICA IDENTITY FULL, so usable otherwise): nothing to archive.  It
# used to fail the start (exit 2, "cannot get array length of a scalar" from the publication check).
like(slurp_file($log), qr/WARNING.*table public\.nocols is NOT archived: no columns/, 'the log warns about the table without columns');
is(metric('backstop_tables_skipped'), '2', 'backstop_tables_skipped counts them (and not the partitioned parents)');
my ($rc, $out, $err) = run_backstop('info', '--storage', $storage, '--table', 'public.u');
is($rc, 0, 'info of the unlogged table') or diag("$out\n$err");
like($out, qr/skipped: unlogged table/, 'info shows the finding');

# Partitioned: the partitions are archived as tables; the parent says so and names them.
like(slurp_file($log), qr/table public\.parted: partitioned table: not archived as a whole; each partition is archived/,
	'the log says what happens to the partitioned table');
like(slurp_file($log), qr/table public\.parted_empty: partitioned table: .*; it has no partitions/,
	'and that one without partitions has none');
$node->safe_psql($db, q{UPDATE public.parted SET v = 'changed' WHERE id IN (5, 105); DELETE FROM public.parted WHERE id = 150;});
for my $p ('public.parted_1', 'public.parted_2')
{
	my ($c) = archiver_checkpoint($listen, $p, '60s');
	is($c, 0, "checkpoint of partition $p");
}
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.parted',
	'--latest', '--into', 'public.parted_r');
is($rc, 0, 'recover of the partitioned parent rebuilds it with its partitions') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.parted_r'), content_checksum($node, $db, 'public.parted'), 'the whole, exactly');
for my $p ('parted_1', 'parted_2')
{
	($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', "public.$p",
		'--latest', '--into', "public.${p}_r", '--no-indexes');
	is($rc, 0, "partition $p recovers") or diag("$out\n$err");
	is(content_checksum($node, $db, "public.${p}_r"), content_checksum($node, $db, "public.$p"), "exactly");
}
$h->signal('TERM');
$h->finish;
is($h->result(0), 0, 'archiver stopped');

# Temporary: named in --tables (it exists only while its session lives).
{
	my $s = $node->background_psql($db);
	my $schema = $s->query_safe('CREATE TEMP TABLE tmp (id int PRIMARY KEY); SELECT pg_my_temp_schema()::regnamespace');
	chomp $schema;
	my $end = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');
	my $st2 = "file://$dir/archive2";
	($rc, $out, $err) = run_backstop({ timeout => 120 }, 'archive', '--db', $conn, '--tables', "$schema.tmp,public.b",
		'--storage', $st2, '--data-dir', "$dir/data2", '--slot', 's2', '--publication', 'p2', '--listen', 'off',
		'--end-lsn', $end);
	is($rc, 0, 'a run naming a temporary table') or diag($err);
	like($err, qr/table \Q$schema\E\.tmp is NOT archived: temporary table/, 'warns about the temporary table');
	($rc, $out, $err) = run_backstop('info', '--storage', $st2, '--table', "$schema.tmp");
	like($out, qr/skipped: temporary table/, 'info shows the finding') or diag("$out\n$err");
	$s->quit;
}

# Another table's manifest damaged (or caught half-written): lookups of other tables still work.
my $relid = $node->safe_psql($db, q{SELECT 'public.parted_2'::regclass::oid});
my $key = "$dir/archive/tables/$relid/manifest.json";
my $good = slurp_file($key);
open(my $fh, '>', $key) or die "$key: $!";
print $fh substr($good, 0, length($good) / 2);
close $fh;
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.b',
	'--latest', '--into', 'public.b_r', '--no-indexes');
is($rc, 0, 'recover of a table while another manifest is damaged') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.b_r'), content_checksum($node, $db, 'public.b'), 'exactly');
like($err, qr/WARNING.*tables\/$relid\/manifest\.json: invalid manifest.*skipped while looking for table public\.b/,
	'with a warning naming the damaged manifest');
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.nosuch',
	'--latest', '--into', 'public.nosuch_r');
is($rc, 3, 'a name found nowhere while a manifest is unreadable: refused as damage') or diag("$out\n$err");
like($err, qr/not among the readable manifests .* could not be read \(tables\/$relid\/manifest\.json\): one of them may be it/,
	'saying the damaged manifest may be it');

$node->stop;
done_testing();
