# 059_archive_startup_failures.t — start-up and reconnection: a second archiver on a slot that
# another one streams from fails (exit 1, the server's message) and stores nothing, neither in
# its own storage nor in the first one's; the first checkpoint after a PostgreSQL restart
# succeeds without an earlier failed call, and one asked while PostgreSQL is down waits for it;
# spool epoch directories are removed once uploaded, and at start-up those left behind; a
# SIGTERM during start-up stops the archiver in order once it is up; a slot of another plugin,
# a storage holding another database's archive and wal_level = replica are refused (exit 2)
# before anything is created; --drop leaves a publication of another role to its owner.
# Also refused, creating nothing: a role without REPLICATION, a damaged head.json or manifest
# (exit 3), a role that may not create the publication, every
# replication slot in use (an existing publication of other tables was set to the ones asked
# for), a base copy storage refuses again with the slot kept; `archive --drop` without --db
# (exit 2), without a server, and while the archiver streams from the slot.  A slot dropped
# between two runs: the archive goes on from a new one, recording and saying the gap.  A first
# base copy that gives way to a session's lock is taken again, and lands in several chunks; one
# that gives way every time fails the start, saying why.
# A base copy of a table with row-level security that the role does not bypass is refused (it
# took the 3 rows of 10 the policy showed, silently).
# Sealed epochs left in the spool by a crash while storage refused them: the next start says it
# cannot upload them yet and goes on; once storage takes them, nothing is lost.
use strict;
use warnings;

use Digest::MD5 ();
use File::Find ();
use HTTP::Tiny;
use IPC::Run;
use JSON::PP ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $node = new_pg_node('startup');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('startup');
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";
my $spool = "$dir/data1/spool";
my $http = HTTP::Tiny->new(timeout => 60);

$node->safe_psql($db, q{CREATE TABLE public.t (id int PRIMARY KEY, v text);
	INSERT INTO public.t SELECT g, md5(g::text) FROM generate_series(1, 1000) g;});

my $archiver;

END
{
	kill 'KILL', $archiver if $archiver;
}

sub metric
{
	my ($name) = @_;
	my $r = $http->get("http://$listen/metrics");
	return $r->{success} && $r->{content} =~ /^\Q$name\E (\S+)$/m ? $1 : undef;
}

sub epoch_dirs
{
	opendir(my $d, $spool) or return ();
	my @e = grep { /^[0-9A-F]{16}$/ && -d "$spool/$_" } readdir($d);
	closedir $d;
	return @e;
}

# Every file under a directory with its checksum and modification time (but head.json, when
# asked: the first archiver moves it forward while idle).  lease.json is the first archiver's
# heartbeat, renewed on a timer: its holder and token are what another archiver must not
# change, not its renewal time.
sub snapshot
{
	my ($root, $but_head) = @_;
	my %files;
	return {} unless -d $root;
	File::Find::find({ no_chdir => 1, wanted => sub {
		return unless -f $_;
		return if $but_head && $_ eq "$root/head.json";
		if ($but_head && $_ eq "$root/lease.json")
		{
			my $l = JSON::PP->new->decode(slurp_file($_));
			$files{$_} = "token $l->{token} owner $l->{owner}{id} released "
			  . ($l->{released} ? 1 : 0);
			return;
		}
		open(my $fh, '<:raw', $_) or die "$_: $!";
		$files{$_} = Digest::MD5->new->addfile($fh)->hexdigest . ' ' . (stat($_))[9];
	} }, $root);
	return \%files;
}

# ---- refusals before anything is created ----
# A role without REPLICATION: its SQL connection works, the replication connection does not.
$node->safe_psql($db, q{CREATE ROLE bs_norepl LOGIN});
my ($rc, $out, $err) = run_backstop({ timeout => 120 }, 'archive', '--db', node_connstr($node, $db, 'bs_norepl'),
	'--tables', 'public.t', '--storage', "file://$dir/archive_norepl", '--data-dir', "$dir/data_norepl",
	'--listen', 'off', '--slot', 'backstop_norepl', '--publication', 'backstop_norepl');
is($rc, 1, 'a role without REPLICATION: exit 1') or diag("$out\n$err");
like($err, qr/could not connect to PostgreSQL: .*superuser or replication role/s, "with the server's reason");
is($node->safe_psql($db, q{SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'backstop_norepl'}), '0',
	'no slot was created');
is_deeply(snapshot("$dir/archive_norepl"), {}, 'nothing was stored');

# A head.json that is not one: refused as a damaged archive (exit 3), left as it was.
mkdir "$dir/archive_badhead";
append_to_file("$dir/archive_badhead/head.json", '{"format": "not a head"');
($rc, $out, $err) = run_backstop({ timeout => 120 }, 'archive', '--db', $conn, '--tables', 'public.t',
	'--storage', "file://$dir/archive_badhead", '--data-dir', "$dir/data_badhead", '--listen', 'off',
	'--slot', 'backstop_badhead', '--publication', 'backstop_badhead');
is($rc, 3, 'a damaged head.json: exit 3 (a damaged archive)') or diag("$out\n$err");
like($err, qr/head\.json/, 'naming head.json');
is(slurp_file("$dir/archive_badhead/head.json"), '{"format": "not a head"', 'which is left as it was');
is($node->safe_psql($db, q{SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'backstop_badhead'}), '0',
	'no slot was created');

# A table's manifest that is not one: refused as a damaged archive (exit 3), left as it was.
my $relid = $node->safe_psql($db, q{SELECT 'public.t'::regclass::oid});
mkdir "$dir/archive_badman";
mkdir "$dir/archive_badman/tables";
mkdir "$dir/archive_badman/tables/$relid";
append_to_file("$dir/archive_badman/tables/$relid/manifest.json", '{"format": 1, "relid": "no"}');
($rc, $out, $err) = run_backstop({ timeout => 120 }, 'archive', '--db', $conn, '--tables', 'public.t',
	'--storage', "file://$dir/archive_badman", '--data-dir', "$dir/data_badman", '--listen', 'off',
	'--slot', 'backstop_badman', '--publication', 'backstop_badman');
is($rc, 3, 'a damaged manifest: exit 3 (a damaged archive)') or diag("$out\n$err");
like($err, qr/tables\/$relid\/manifest\.json/, 'naming it');
is(slurp_file("$dir/archive_badman/tables/$relid/manifest.json"), '{"format": 1, "relid": "no"}', 'which is left as it was');
is($node->safe_psql($db, q{SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'backstop_badman'}), '0',
	'no slot was created');

# A role with REPLICATION that may not create the publication (no CREATE on the database): the
# start fails with the server's reason.
$node->safe_psql($db, q{CREATE ROLE bs_repl LOGIN REPLICATION});
($rc, $out, $err) = run_backstop({ timeout => 120 }, 'archive', '--db', node_connstr($node, $db, 'bs_repl'),
	'--tables', 'public.t', '--storage', "file://$dir/archive_nopub", '--data-dir', "$dir/data_nopub",
	'--listen', 'off', '--slot', 'backstop_nopub', '--publication', 'backstop_nopub');
is($rc, 1, 'a role that may not create the publication: exit 1') or diag("$out\n$err");
like($err, qr/could not set up publication "backstop_nopub": .*permission denied/s, "with the server's reason");
is($node->safe_psql($db, q{SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'backstop_nopub'}), '0',
	'no slot was created');
is($node->safe_psql($db, q{SELECT count(*) FROM pg_publication WHERE pubname = 'backstop_nopub'}), '0',
	'nor a publication');

# --drop without --db is a usage error, as the archiver's is.
($rc, $out, $err) = run_backstop({ env => { BACKSTOP_DB => undef, PGDATABASE => undef } }, 'archive', '--drop');
is($rc, 2, 'archive --drop without --db: exit 2') or diag("$out\n$err");
like($err, qr/--db is required/, 'saying so');
# --drop with a server that does not answer: exit 1, the connection's error.
my $closed_port = PostgreSQL::Test::Cluster::get_free_port();
($rc, $out, $err) = run_backstop('archive', '--drop', '--db', "host=127.0.0.1 port=$closed_port dbname=postgres",
	'--slot', 'backstop', '--publication', 'backstop');
is($rc, 1, 'archive --drop without a server: exit 1') or diag("$out\n$err");
like($err, qr/could not connect to PostgreSQL/, 'saying it could not connect');

# Empty epoch directories of an earlier run, and a directory that is not an epoch.
mkdir "$dir/data1";
mkdir $spool;
mkdir "$spool/$_" for qw(0000000000000001 00000000DEADBEEF keepme);

# The first archiver.
my $log = "$dir/first.log";
my @first = ('--db', $conn, '--tables', 'public.t', '--storage', "file://$dir/archive1", '--data-dir', "$dir/data1",
	'--listen', $listen, '--segment-age', '1s');
$archiver = spawn_archiver($log, @first);
ok(wait_for('the first archiver', sub { (archiver_checkpoint($listen, 'public.t', '5s'))[0] == 0 }, 90),
	'first archiver running') or diag(slurp_file($log));

# ---- spool epoch directories ----
is_deeply([ sort(epoch_dirs()) ], [], 'empty epoch directories of an earlier run are removed at start-up');
ok(-d "$spool/keepme", 'a directory that is not an epoch is left alone');
like(slurp_file($log), qr/removed 2 empty spool epoch directories/, 'and the start says how many');
my $uploaded0 = metric('backstop_segments_uploaded_total');
my @left;
for my $i (1 .. 10)
{
	$node->safe_psql($db, "UPDATE public.t SET v = 'seal $i' WHERE id = $i");
	my ($rc, $out, $err) = archiver_checkpoint($listen, 'public.t', '60s');
	is($rc, 0, "checkpoint $i (a seal of its own)") or diag("$out\n$err");
	push @left, scalar(epoch_dirs());
}
cmp_ok(metric('backstop_segments_uploaded_total') - $uploaded0, '>=', 10, 'ten epochs sealed and uploaded');
is_deeply(\@left, [ (0) x 10 ], 'no epoch directory is left after any of them') or diag("left: @left");

# ---- a second archiver on the same (active) slot ----
my $active_pid = $node->safe_psql($db, q{SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'backstop'});
like($active_pid, qr/^\d+$/, "the slot is active (walsender $active_pid)");
my $before1 = snapshot("$dir/archive1", 1);
my $confirmed = $node->safe_psql($db, q{SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'backstop'});
($rc, $out, $err) = run_backstop({ timeout => 120 }, 'archive', '--db', $conn, '--tables', 'public.t',
	'--storage', "file://$dir/archive2", '--data-dir', "$dir/data2", '--listen', 'off', '--segment-age', '1s');
is($rc, 1, 'a second archiver on the active slot exits 1') or diag("$out\n$err");
like($err, qr/replication slot "backstop" is active for PID \Q$active_pid\E/, "with the server's message (the walsender's PID)");
unlike($err, qr/stopped; confirmed/, 'never claims to have confirmed anything');
is_deeply(snapshot("$dir/archive2"), {}, 'nothing was stored in its own storage (no base copy, no head.json)');
is_deeply(snapshot("$dir/archive1", 1), $before1, "the first archiver's manifests and objects are untouched");
is($node->safe_psql($db, q{SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'backstop'}),
	$confirmed, "the slot's confirmed position did not move");
is($node->safe_psql($db, q{SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'backstop'}), $active_pid,
	'the first archiver still holds the slot');

# --drop while the archiver streams from the slot: the server refuses, nothing is dropped.
($rc, $out, $err) = run_backstop('archive', '--drop', '--db', $conn);
is($rc, 1, 'archive --drop while the archiver runs: exit 1') or diag("$out\n$err");
like($err, qr/replication slot "backstop" is active for PID \Q$active_pid\E/, "with the server's message");
is($node->safe_psql($db, q{SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'backstop'}), '1',
	'the slot is kept');
is($node->safe_psql($db, q{SELECT count(*) FROM pg_publication WHERE pubname = 'backstop'}), '1',
	'and so is the publication');

# ---- checkpoints after a PostgreSQL restart ----
$node->restart;
$node->safe_psql($db, q{INSERT INTO public.t VALUES (5001, 'after restart')});
($rc, $out, $err) = archiver_checkpoint($listen, 'public.t', '60s');
is($rc, 0, 'the first checkpoint after a restart succeeds, no failed call before it') or diag("$out\n$err\n" . slurp_file($log));
like(slurp_file($log), qr/reconnected to PostgreSQL \(checkpoint connection\)/, 'the checkpoint connection was made again');
like(slurp_file($log), qr/replication connection lost: the server ended the replication stream/,
	'the stream ending with the server is said in words');
unlike(slurp_file($log), qr/[^\x09\x0a\x20-\x7e]/, 'the log is printable text');
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', "file://$dir/archive1", '--table', 'public.t',
	'--latest', '--into', 'public.t_rec', '--yes');
is($rc, 0, 'recover --latest') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.t_rec'), content_checksum($node, $db, 'public.t'), 'exact after the restart');

# Asked while PostgreSQL is down: waits for it (within its timeout) instead of failing.
$node->stop('fast');
my ($cout, $cerr) = ('', '');
my $ch = kill_at_exit(IPC::Run::start([ backstop_bin(), 'checkpoint', '--table', 'public.t', '--listen', $listen,
	'--timeout', '120s', '--json' ], '>', \$cout, '2>', \$cerr));
ok(wait_for('the checkpoint to wait for PostgreSQL', sub { slurp_file($log) =~ /checkpoint of public\.t: .*trying again until its deadline/s }),
	'a checkpoint while PostgreSQL is down waits for it');
$node->start;
$ch->finish;
is($ch->result(0), 0, 'and succeeds once PostgreSQL is back') or diag("$cout\n$cerr\n" . slurp_file($log));
like($cout, qr/"verified":true/, 'with a verified recovery point');

kill 'TERM', $archiver;
waitpid($archiver, 0);
is($? >> 8, 0, 'first archiver stopped cleanly');
$archiver = undef;
is_deeply([ epoch_dirs() ], [], 'no epoch directory left after the stop');

# ---- the slot dropped between two runs ----
# The archive goes on from a new slot; what was committed while no slot kept it is a gap, which
# each table's manifest records and the start says; the table recovers exactly at its latest.
$node->safe_psql($db, q{SELECT pg_drop_replication_slot('backstop')});
$node->safe_psql($db, q{UPDATE public.t SET v = 'while no slot' WHERE id = 20});
my $log_gap = "$dir/gap.log";
$archiver = spawn_archiver($log_gap, @first);
ok(wait_for('the archiver on a new slot', sub { (archiver_checkpoint($listen, 'public.t', '5s'))[0] == 0 }, 90),
	'the archiver starts again from a new slot') or diag(slurp_file($log_gap));
like(slurp_file($log_gap), qr/the archive was stored up to \S+ with an earlier slot: changes committed between then and \S+ are NOT in the archive/,
	'the start says the archive has a gap');
like(slurp_file($log_gap), qr/table public\.t: changes committed from \S+ to \S+ were not archived \(a new slot starts at \S+\)/,
	'and which table it is in');
kill 'TERM', $archiver;
waitpid($archiver, 0);
is($? >> 8, 0, 'it stops cleanly') or diag(slurp_file($log_gap));
$archiver = undef;
($rc, $out, $err) = run_backstop('info', '--storage', "file://$dir/archive1", '--table', 'public.t', '--json');
is($rc, 0, 'info') or diag("$out\n$err");
like($out, qr/"not_archived":\s*\[\s*\{\s*"from_lsn"/, 'the manifest records the gap');
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', "file://$dir/archive1", '--table', 'public.t',
	'--latest', '--into', 'public.t_rec_gap', '--yes');
is($rc, 0, 'recover --latest after the gap') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.t_rec_gap'), content_checksum($node, $db, 'public.t'), 'exact (the new base copy)');

# ---- SIGTERM during start-up ----
# Creating a slot waits for the transactions running at that moment: one held open keeps the
# archiver in its start-up, where a SIGTERM used to kill it outright (no orderly stop, its lease
# left to expire). Now the signal waits for the event loop and stops it in order.
my $holder = $node->background_psql($db);
$holder->query_safe('BEGIN; SELECT txid_current();');
my $log3 = "$dir/third.log";
$archiver = spawn_archiver($log3, '--db', $conn, '--tables', 'public.t', '--storage', "file://$dir/archive3",
	'--data-dir', "$dir/data3", '--slot', 'backstop_sigterm', '--publication', 'backstop_sigterm');
ok($node->poll_query_until($db, q{SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted}),
	'the start-up waits for the open transaction (slot creation)') or diag(slurp_file($log3));
kill 'TERM', $archiver;
$holder->query_safe('COMMIT');
$holder->quit;
waitpid($archiver, 0);
my $status = $?;
$archiver = undef;
is($status & 127, 0, 'a SIGTERM during start-up does not kill the archiver') or diag(slurp_file($log3));
is($status >> 8, 0, 'it stops in order, exit 0') or diag(slurp_file($log3));
like(slurp_file($log3), qr/stopped; confirmed/, 'with its position confirmed');

# ---- refusals at start-up, before anything is created ----
# A slot of that name made by another output plugin: a configuration error (exit 2).
$node->safe_psql($db, q{SELECT pg_create_logical_replication_slot('backstop_td', 'test_decoding')});
($rc, $out, $err) = run_backstop({ timeout => 120 }, 'archive', '--db', $conn, '--tables', 'public.t',
	'--storage', "file://$dir/archive4", '--data-dir', "$dir/data4", '--listen', 'off',
	'--slot', 'backstop_td', '--publication', 'backstop_td');
is($rc, 2, 'a slot of another output plugin: exit 2') or diag("$out\n$err");
like($err, qr/slot "backstop_td" exists but is not a pgoutput slot of database "postgres"/, 'and says which slot and why');
is($node->safe_psql($db, q{SELECT plugin FROM pg_replication_slots WHERE slot_name = 'backstop_td'}), 'test_decoding',
	'the slot is left as it was');
$node->safe_psql($db, q{SELECT pg_drop_replication_slot('backstop_td')});

# A storage that holds the archive of another database of the cluster.
$node->safe_psql($db, q{CREATE DATABASE other});
$node->safe_psql('other', q{CREATE TABLE public.t (id int PRIMARY KEY, v text)});
my $before_other = snapshot("$dir/archive1");
($rc, $out, $err) = run_backstop({ timeout => 120 }, 'archive', '--db', node_connstr($node, 'other'),
	'--tables', 'public.t', '--storage', "file://$dir/archive1", '--data-dir', "$dir/data5", '--listen', 'off',
	'--slot', 'backstop_other', '--publication', 'backstop_other');
is($rc, 2, 'the archive of another database: exit 2') or diag("$out\n$err");
like($err, qr/holds the archive of another database \(system \d+, database "postgres"\), not system \d+ database "other"/,
	'and names both databases');
is($node->safe_psql($db, q{SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'backstop_other'}), '0',
	'no slot was created');
is_deeply(snapshot("$dir/archive1"), $before_other, 'the other archive is untouched');

# --drop with a publication that another role made for this one: left to its owner.
$node->safe_psql($db, q{CREATE ROLE bs_other LOGIN; CREATE PUBLICATION pub_foreign FOR TABLE public.t});
($rc, $out, $err) = run_backstop('archive', '--drop', '--db', node_connstr($node, $db, 'bs_other'),
	'--slot', 'no_such_slot', '--publication', 'pub_foreign');
is($rc, 0, '--drop with a publication of another role: exit 0') or diag("$out\n$err");
like($err, qr/slot no_such_slot: did not exist/, 'says the slot did not exist');
like($err, qr/publication pub_foreign belongs to another role: left in place/, 'and leaves the publication to its owner');
is($node->safe_psql($db, q{SELECT count(*) FROM pg_publication WHERE pubname = 'pub_foreign'}), '1', 'which still exists');

# A base copy that storage refuses (its folder is a file): the start fails, saying where,
# and no manifest claims a base.
mkdir "$dir/archive7";
mkdir "$dir/archive7/tables";
mkdir "$dir/archive7/tables/$relid";
append_to_file("$dir/archive7/tables/$relid/base", 'in the way');
($rc, $out, $err) = run_backstop({ timeout => 120 }, 'archive', '--db', $conn, '--tables', 'public.t',
	'--storage', "file://$dir/archive7", '--data-dir', "$dir/data7", '--listen', 'off',
	'--slot', 'backstop_bc', '--publication', 'backstop_bc');
is($rc, 1, 'a base copy storage refuses: exit 1') or diag("$out\n$err");
like($err, qr/tables\/$relid\/base/, 'naming the object it could not write');
like($err, qr/a file is in the way/, 'and why');
ok(!-e "$dir/archive7/tables/$relid/manifest.json", 'no manifest was stored');
# The next start finds the slot kept and the table without a base copy: the copy it takes now
# is refused the same way, and the start fails again, saying so.
($rc, $out, $err) = run_backstop({ timeout => 120 }, 'archive', '--db', $conn, '--tables', 'public.t',
	'--storage', "file://$dir/archive7", '--data-dir', "$dir/data7", '--listen', 'off',
	'--slot', 'backstop_bc', '--publication', 'backstop_bc');
is($rc, 1, 'again, with the slot kept: exit 1') or diag("$out\n$err");
like($err, qr/tables\/$relid\/base.*a file is in the way/s, 'naming the object and why');
ok(!-e "$dir/archive7/tables/$relid/manifest.json", 'still no manifest');
# Once storage takes it, the next start (its slot kept) takes the base copy: exact.
unlink("$dir/archive7/tables/$relid/base");
my $log7 = "$dir/seventh.log";
$archiver = spawn_archiver($log7, '--db', $conn, '--tables', 'public.t', '--storage', "file://$dir/archive7",
	'--data-dir', "$dir/data7", '--listen', $listen, '--slot', 'backstop_bc', '--publication', 'backstop_bc',
	'--segment-age', '1s');
ok(wait_for('the archiver after the refused base copy', sub { (archiver_checkpoint($listen, 'public.t', '5s'))[0] == 0 }, 90),
	'the next start runs') or diag(slurp_file($log7));
kill 'TERM', $archiver;
waitpid($archiver, 0);
is($? >> 8, 0, 'and stops cleanly') or diag(slurp_file($log7));
$archiver = undef;
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', "file://$dir/archive7", '--table', 'public.t',
	'--latest', '--into', 'public.t_rec7', '--yes');
is($rc, 0, 'recover --latest from it') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.t_rec7'), content_checksum($node, $db, 'public.t'), 'exact');

# Every replication slot in use: creating the archiver's fails, with the server's reason.  The
# publication was set up before that: an existing one of other tables now holds the tables
# asked for (listed with spaces, twice and with an empty entry; a view is reported), and no others.
$node->safe_psql($db, q{CREATE TABLE public.t2 (id int PRIMARY KEY);
	CREATE VIEW public.t_view AS SELECT * FROM public.t;
	CREATE PUBLICATION backstop_full FOR TABLE public.t2});
my $free_slots = $node->safe_psql($db,
	q{SELECT current_setting('max_replication_slots')::int - count(*) FROM pg_replication_slots});
$node->safe_psql($db, "SELECT pg_create_logical_replication_slot('filler_' || g, 'pgoutput') FROM generate_series(1, $free_slots) g");
($rc, $out, $err) = run_backstop({ timeout => 120 }, 'archive', '--db', $conn, '--tables', ' public.t , public.t,, public.t_view',
	'--storage', "file://$dir/archive8", '--data-dir', "$dir/data8", '--listen', 'off',
	'--slot', 'backstop_full', '--publication', 'backstop_full');
is($rc, 1, 'every replication slot in use: exit 1') or diag("$out\n$err");
like($err, qr/could not create the replication slot: .*all replication slots are in use/s, "with the server's reason");
is($node->safe_psql($db, q{SELECT string_agg(schemaname || '.' || tablename, ',') FROM pg_publication_tables WHERE pubname = 'backstop_full'}),
	'public.t', 'the existing publication holds the table asked for, once, and not the other one');
like($err, qr/table public\.t_view is NOT archived: not a table/, 'a view asked for is reported, not published');
ok(!-e "$dir/archive8/tables/$relid/manifest.json", 'no manifest was stored');
# The same on a kept slot (backstop_bc) with a table that has no base copy in this storage:
# the copy's temporary slot cannot be created either.
($rc, $out, $err) = run_backstop({ timeout => 120 }, 'archive', '--db', $conn, '--tables', 'public.t',
	'--storage', "file://$dir/archive10", '--data-dir', "$dir/data10", '--listen', 'off',
	'--slot', 'backstop_bc', '--publication', 'backstop_bc');
is($rc, 1, 'every slot in use, a base copy to take on a kept slot: exit 1') or diag("$out\n$err");
like($err, qr/could not create a temporary slot for a base copy: .*all replication slots are in use/s,
	"with the server's reason");
ok(!-e "$dir/archive10/tables/$relid/manifest.json", 'no manifest was stored');
$node->safe_psql($db, q{SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'filler\_%'});

# A first base copy that gives way to a session's lock is taken again under the same snapshot,
# and the start goes on once the session lets go.  Several chunks (a small --base-chunk-size);
# a test hook given a value that is no key is ignored, saying so.
$node->safe_psql($db, q{CREATE TABLE public.big (id int PRIMARY KEY, v text);
	INSERT INTO public.big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 2000) g;
	CREATE PUBLICATION backstop_gw FOR TABLE public.big});
# The copy is held between its snapshot and its lock (BACKSTOP_TEST_BASE_COPY_SNAPSHOT_LOCK): a
# session takes the table's lock meanwhile (after the slot was created: its transaction would
# hold that up), then the copy goes on and gives way.
my $snap_key = 59059;
my $keyholder = $node->background_psql($db);
$keyholder->query_safe("SELECT pg_advisory_lock($snap_key)");
my $log9 = "$dir/ninth.log";
{
	local $ENV{BACKSTOP_TEST_BASE_COPY_SNAPSHOT_LOCK} = $snap_key;
	local $ENV{BACKSTOP_TEST_BASE_COPY_LOCK} = 'not-a-key';
	$archiver = spawn_archiver($log9, '--db', $conn, '--tables', 'public.big', '--storage', "file://$dir/archive9",
		'--data-dir', "$dir/data9", '--listen', $listen, '--slot', 'backstop_gw', '--publication', 'backstop_gw',
		'--base-chunk-size', '64KiB', '--segment-age', '1s');
}
ok($node->poll_query_until($db, qq{SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND objid = $snap_key AND NOT granted}),
	'the first base copy has its snapshot and waits') or diag(slurp_file($log9));
my $locker = $node->background_psql($db);
$locker->query_safe('BEGIN; LOCK TABLE public.big IN ACCESS EXCLUSIVE MODE;');
$keyholder->query_safe("SELECT pg_advisory_unlock($snap_key)");
ok(wait_for('the first base copy to give way', sub { slurp_file($log9) =~ /\(taken again in 1000 ms\)/ }, 90),
	'the first base copy gives way to the lock') or diag(slurp_file($log9));
like(slurp_file($log9), qr/base copy of public\.big: another session holds or waits for a conflicting lock/,
	'saying why');
$locker->query_safe('COMMIT');
$locker->quit;
$keyholder->quit;
ok(wait_for('the archiver after the lock', sub { (archiver_checkpoint($listen, 'public.big', '5s'))[0] == 0 }, 90),
	'and is taken again once the session lets go') or diag(slurp_file($log9));
like(slurp_file($log9), qr/BACKSTOP_TEST_BASE_COPY_LOCK="not-a-key" ignored: not a non-zero integer/,
	'the bad test hook value is ignored, saying so');
like(slurp_file($log9), qr/base copy of public\.big at \S+: 2000 rows in ([2-9]|\d\d+) chunk\(s\)/, 'in several chunks');
kill 'TERM', $archiver;
waitpid($archiver, 0);
is($? >> 8, 0, 'and stops cleanly') or diag(slurp_file($log9));
$archiver = undef;
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', "file://$dir/archive9", '--table', 'public.big',
	'--latest', '--into', 'public.big_rec', '--yes');
is($rc, 0, 'recover --latest from it') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.big_rec'), content_checksum($node, $db, 'public.big'), 'exact');

# A session that keeps the lock through every attempt: the start fails, saying why and what to do
# (after its back-off, 1 + 2 + 4 + 8 + 16 s: the archiver's own waits, not the test's).
$keyholder = $node->background_psql($db);
$keyholder->query_safe("SELECT pg_advisory_lock($snap_key)");
my $log10 = "$dir/tenth.log";
{
	local $ENV{BACKSTOP_TEST_BASE_COPY_SNAPSHOT_LOCK} = $snap_key;
	$archiver = spawn_archiver($log10, '--db', $conn, '--tables', 'public.big', '--storage', "file://$dir/archive9b",
		'--data-dir', "$dir/data9b", '--listen', 'off', '--slot', 'backstop_gw6', '--publication', 'backstop_gw');
}
ok($node->poll_query_until($db, qq{SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND objid = $snap_key AND NOT granted}),
	'a first base copy has its snapshot and waits') or diag(slurp_file($log10));
$locker = $node->background_psql($db);
$locker->query_safe('BEGIN; LOCK TABLE public.big IN ACCESS EXCLUSIVE MODE;');
$keyholder->query_safe("SELECT pg_advisory_unlock($snap_key)");
waitpid($archiver, 0);
is($? >> 8, 1, 'a first base copy that gives way every time: exit 1') or diag(slurp_file($log10));
$archiver = undef;
like(slurp_file($log10), qr/the first base copy of public\.big gave way 6 times \(start again when the session holding its lock is done\)/,
	'saying so');
$locker->query_safe('COMMIT');
$locker->quit;
$keyholder->quit;
$node->safe_psql($db, q{SELECT pg_drop_replication_slot('backstop_gw6')});

# ---- spool recovery at start-up, storage still refusing ----
# Storage refuses the table's objects (its folder read-only); the archiver seals changes into its
# spool, cannot upload them, and is killed (-9).  The next start finds the sealed epochs, cannot
# upload them yet either, says so and goes on; once storage takes them again, they are
# uploaded and the table recovers exactly.
my $bigrelid = $node->safe_psql($db, q{SELECT 'public.big'::regclass::oid});
my @table_dirs;
File::Find::find({ no_chdir => 1, wanted => sub { push @table_dirs, $_ if -d $_ } }, "$dir/archive9/tables/$bigrelid");
my $log11 = "$dir/eleventh.log";
my @ninth = ('--db', $conn, '--tables', 'public.big', '--storage', "file://$dir/archive9", '--data-dir', "$dir/data9",
	'--listen', $listen, '--slot', 'backstop_gw', '--publication', 'backstop_gw', '--segment-age', '1s');
$archiver = spawn_archiver($log11, @ninth);
ok(wait_for('the archiver on archive9', sub { (archiver_checkpoint($listen, 'public.big', '5s'))[0] == 0 }, 90),
	'the archiver runs again') or diag(slurp_file($log11));
chmod 0555, @table_dirs;
my $errors0 = metric('backstop_upload_errors_total');
$node->safe_psql($db, q{UPDATE public.big SET v = 'during the outage' WHERE id <= 100});
my $spool9 = "$dir/data9/spool";
my $sealed = sub {
	opendir(my $d, $spool9) or return 0;
	my @e = grep { /^[0-9A-F]{16}$/ && -e "$spool9/$_/COMPLETE" } readdir($d);
	closedir $d;
	return scalar @e;
};
ok(wait_for('a sealed epoch storage refuses', sub { $sealed->() > 0 && (metric('backstop_upload_errors_total') // 0) > $errors0 }, 90),
	'the changes are sealed in the spool and their upload fails') or diag(slurp_file($log11));
kill 'KILL', $archiver;
waitpid($archiver, 0);
$archiver = undef;
ok($sealed->() > 0, 'the sealed epoch is still in the spool after the crash');
my $log12 = "$dir/twelfth.log";
$archiver = spawn_archiver($log12, @ninth);
ok(wait_for('the start to try the spool', sub { -e $log12 && slurp_file($log12) =~ /could not upload the spool yet \(will retry\)/ }, 90),
	'the next start cannot upload the spool yet, says so') or diag(slurp_file($log12));
ok(wait_for('the archiver to run', sub { defined metric('backstop_upload_errors_total') }, 90),
	'and goes on (its endpoint answers)') or diag(slurp_file($log12));
chmod 0755, @table_dirs;
ok(wait_for('the spool to be uploaded', sub { (archiver_checkpoint($listen, 'public.big', '5s'))[0] == 0 }, 90),
	'once storage takes it again, a checkpoint succeeds') or diag(slurp_file($log12));
kill 'TERM', $archiver;
waitpid($archiver, 0);
is($? >> 8, 0, 'and it stops cleanly') or diag(slurp_file($log12));
$archiver = undef;
is($sealed->(), 0, 'nothing is left in the spool');
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', "file://$dir/archive9", '--table', 'public.big',
	'--latest', '--into', 'public.big_rec2', '--yes');
is($rc, 0, 'recover --latest after the outage') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.big_rec2'), content_checksum($node, $db, 'public.big'), 'exact, the changes of the outage included');

# The documented least-privilege role (REPLICATION, pg_read_all_data) and a table with row-level
# security: the role's queries see only what the policies show it (3 rows of 10), which a base
# copy must not take for the table.  The copy is refused, saying what the role needs.
$node->safe_psql($db, q{CREATE ROLE bs_ro LOGIN REPLICATION; GRANT pg_read_all_data TO bs_ro;
	CREATE TABLE public.guarded (id int PRIMARY KEY, v text);
	INSERT INTO public.guarded SELECT g, 's' || g FROM generate_series(1, 10) g;
	ALTER TABLE public.guarded ENABLE ROW LEVEL SECURITY;
	CREATE POLICY some_rows ON public.guarded FOR SELECT USING (id <= 3);
	CREATE PUBLICATION backstop_rls FOR TABLE public.guarded});
my $end = $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()');
($rc, $out, $err) = run_backstop({ timeout => 120 }, 'archive', '--db', node_connstr($node, $db, 'bs_ro'),
	'--tables', 'public.guarded', '--storage', "file://$dir/archive_rls", '--data-dir', "$dir/data_rls",
	'--listen', 'off', '--slot', 'backstop_rls', '--publication', 'backstop_rls', '--end-lsn', $end);
is($rc, 1, 'a table whose rows the role sees only in part: exit 1') or diag("$out\n$err");
unlike($err, qr/base copy of public\.guarded at \S+: 3 rows/, 'no base copy of the rows the policy shows');
like($err, qr/base copy of public\.guarded: the role of the archiver does not bypass row-level security/,
	'saying what the role needs');
ok(!-e "$dir/archive_rls/tables/" . $node->safe_psql($db, q{SELECT 'public.guarded'::regclass::oid}) . '/manifest.json',
	'no manifest was stored');
$node->safe_psql($db, q{ALTER ROLE bs_ro BYPASSRLS});
($rc, $out, $err) = run_backstop({ timeout => 120 }, 'archive', '--db', node_connstr($node, $db, 'bs_ro'),
	'--tables', 'public.guarded', '--storage', "file://$dir/archive_rls", '--data-dir', "$dir/data_rls",
	'--listen', 'off', '--slot', 'backstop_rls', '--publication', 'backstop_rls', '--end-lsn', $end);
is($rc, 0, 'with BYPASSRLS: exit 0') or diag("$out\n$err");
like($err, qr/base copy of public\.guarded at \S+: 10 rows/, 'every row copied');
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', "file://$dir/archive_rls", '--table', 'public.guarded',
	'--latest', '--into', 'public.guarded_rec', '--yes');
is($rc, 0, 'recover --latest of it') or diag("$out\n$err");
is($node->safe_psql($db, 'SELECT count(*) FROM public.guarded_rec'), '10', 'all 10 rows');
is(content_checksum($node, $db, 'public.guarded_rec'), content_checksum($node, $db, 'public.guarded'), 'exact');
$node->safe_psql($db, q{SELECT pg_drop_replication_slot('backstop_rls')});

# wal_level below logical (the slots must go first, or the server would not start).
$node->safe_psql($db, q{SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots});
$node->append_conf('postgresql.conf', 'wal_level = replica');
$node->restart;
($rc, $out, $err) = run_backstop({ timeout => 120 }, 'archive', '--db', $conn, '--tables', 'public.t',
	'--storage', "file://$dir/archive6", '--data-dir', "$dir/data6", '--listen', 'off');
is($rc, 2, 'wal_level = replica: exit 2') or diag("$out\n$err");
like($err, qr/wal_level is "replica": logical replication needs wal_level = logical/, 'and says what to set');
is_deeply(snapshot("$dir/archive6"), {}, 'nothing was stored');

done_testing();
