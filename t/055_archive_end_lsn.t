# 055_archive_end_lsn.t — positions the archiver learns from keepalives, not commits:
# `backstop archive --end-lsn` stops by itself once every transaction committed at or before
# the LSN is durable in storage, exits 0, keeps nothing committed after it, and the next start
# carries on from there without a gap or a duplicate; and a checkpoint whose target lies past
# the last archived commit (WAL the publication does not send) is answered by the seal it asks
# for, not by a later one.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $node = new_pg_node('endlsn');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('endlsn');
my $storage = "file://$dir/archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my @common = ('--db', $conn, '--tables', 'public.t', '--storage', $storage, '--data-dir', "$dir/data",
	'--listen', "127.0.0.1:$port", '--segment-age', '1h');

my ($rc, $out, $err) = run_backstop({ timeout => 60 }, 'archive', @common, '--end-lsn', 'nonsense');
is($rc, 2, 'a malformed --end-lsn is a usage error') or diag("$out\n$err");
like($err, qr/option --end-lsn: invalid value for end_lsn: "nonsense": expected an LSN/, 'naming the option and the value');

$node->safe_psql($db, 'CREATE TABLE public.t (id int PRIMARY KEY, v text)');
# First start: base copy (the table is empty), then stop at the current position.
my $lsn0 = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');
($rc, $out, $err) = run_backstop({ timeout => 60 }, 'archive', @common, '--end-lsn', $lsn0);
is($rc, 0, 'first run with --end-lsn at the current position exits 0 by itself') or diag($err);
my $lsnb = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');	# after the base copy

$node->safe_psql($db, "INSERT INTO public.t SELECT g, 'a' || g FROM generate_series(1, 1000) g");
$node->safe_psql($db, "UPDATE public.t SET v = 'b' || id WHERE id % 2 = 0");
my $lsn1 = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');
my $sum1 = content_checksum($node, $db, 'public.t');
$node->safe_psql($db, "DELETE FROM public.t WHERE id > 500");
my $lsn2 = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');
my $sum2 = content_checksum($node, $db, 'public.t');

($rc, $out, $err) = run_backstop({ timeout => 60 }, 'archive', @common, '--end-lsn', $lsn1);
is($rc, 0, 'second run stops at the end LSN, exit 0') or diag($err);
like($err, qr/end LSN \Q$lsn1\E reached: all received after [0-9.]+ s/, 'logs when everything was received');
like($err, qr/everything through \S+ is durable in storage/, 'and when it was durable');

# Nothing committed after the end LSN is in the archive: the window ends before the DELETE.
($rc, $out, $err) = run_backstop('changes', '--storage', $storage, '--table', 'public.t',
	'--from-lsn', $lsnb, '--to-lsn', $lsn2);
is($rc, 1, 'changes up to after the DELETE: outside the window') or diag("$out\n$err");
like($err, qr/outside the recovery window of public\.t/, 'the DELETE after the end LSN was not archived');
($rc, $out, $err) = run_backstop('changes', '--storage', $storage, '--table', 'public.t',
	'--from-lsn', $lsnb, '--to-lsn', $lsn1, '--json');
is($rc, 0, 'changes up to the end LSN') or diag($err);
is(scalar(() = $out =~ /"op"\s*:/g), 1500, 'all 1000 inserts and 500 updates are there') or diag(substr($out, 0, 2000));
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.t',
	'--latest', '--into', 'public.t_at1', '--no-indexes', '--yes');
is($rc, 0, 'recover --latest after the second run') or diag($err);
is(content_checksum($node, $db, 'public.t_at1'), $sum1, 'the archive ends exactly at the end LSN');

# The next run resumes from the confirmed position: the DELETE arrives once.
($rc, $out, $err) = run_backstop({ timeout => 60 }, 'archive', @common, '--end-lsn', $lsn2);
is($rc, 0, 'third run') or diag($err);
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.t',
	'--latest', '--into', 'public.t_at2', '--no-indexes', '--yes');
is($rc, 0, 'recover --latest after the third run') or diag($err);
is(content_checksum($node, $db, 'public.t_at2'), $sum2, 'no gap and no duplicate across the runs');
($rc, $out, $err) = run_backstop('verify', '--storage', $storage);
is($rc, 0, 'verify') or diag("$out\n$err");

# A daemon that seals only on request (segment age 1 h): a change to the archived table, then
# WAL that is not sent (a table outside the publication).  The checkpoint's target is past the
# last commit received; the keepalive that passes it must let this checkpoint's seal cover it.
my $log = "$dir/daemon.log";
my $h = kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', @common ], '<', \undef, '>', "$dir/daemon.out", '2>>', $log));
ok(wait_for('the archiver', sub { (archiver_checkpoint("127.0.0.1:$port", 'public.t', '5s'))[0] == 0 }, 60),
	'daemon running') or diag(slurp_file($log));
$node->safe_psql($db, q{INSERT INTO public.t VALUES (5001, 'pending');
	CREATE TABLE public.other (x int); INSERT INTO public.other SELECT generate_series(1, 1000);});
($rc, $out, $err) = archiver_checkpoint("127.0.0.1:$port", 'public.t', '10s');
is($rc, 0, 'checkpoint past the last archived commit is answered') or diag("$out\n$err\n" . slurp_file($log));
my ($got) = $out =~ /"lsn":"([0-9A-F]+\/[0-9A-F]+)"/;
my ($want) = $out =~ /"requested_lsn":"([0-9A-F]+\/[0-9A-F]+)"/;
ok(defined $got && $node->safe_psql($db, "SELECT '$got'::pg_lsn >= '$want'::pg_lsn") eq 't',
	'the recovery point is at or past the requested LSN') or diag($out);
$h->signal('TERM');
$h->finish;
is($h->result(0), 0, 'daemon stopped cleanly') or diag(slurp_file($log));

done_testing();
