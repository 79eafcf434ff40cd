# 071_gate_exec.t — `backstop exec` with a running archiver: a DROP TABLE gets a verified recovery point
# first, then runs; `backstop recover --to-lsn` at that point brings the table back with its checksum;
# a table the archiver skips cannot be dropped; with the archiver stopped the DROP is refused and the
# table stays; a refused statement stops the run; a temporary table shadows a permanent one; a
# stand-in archiver's refusals (not archived, not verified in time, another error, another table
# of that name, a refusal once the table is locked) each refuse the DROP; a failing statement.
use strict;
use warnings;

use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $node = new_pg_node('gate_exec', extra_conf => "log_statement = 'all'\n");
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('gate_exec');
my $storage = "file://$dir/archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";

$node->safe_psql($db, q{
	CREATE TABLE public.orders (id serial PRIMARY KEY, customer int NOT NULL, note text);
	INSERT INTO public.orders (customer, note) SELECT g % 17, 'order ' || g FROM generate_series(1, 500) g;
	CREATE TABLE public.items (id int PRIMARY KEY, name text);
	INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 50) g;
	CREATE TABLE public.nokey (a int, b text);
	INSERT INTO public.nokey VALUES (1, 'skipped by the archiver: no replica identity');
	CREATE TABLE public.log (id int);
});

my $log = "$dir/archiver.log";
my $pid = spawn_archiver($log, '--db', $conn, '--all-tables', '--storage', $storage, '--data-dir', "$dir/data",
	'--listen', $listen, '--segment-age', '1s', '--table-poll-interval', '1s', '--status-interval', '1s');
END { kill 'KILL', $pid if $pid; }
ok(wait_for('archiver ready', sub { my ($rc) = archiver_checkpoint($listen, 'public.orders'); $rc == 0 }),
	'archiver started and answers checkpoints') or diag(slurp_file($log));
ok(wait_for('items archived', sub { my ($rc) = archiver_checkpoint($listen, 'public.items'); $rc == 0 }),
	'public.items has a base copy');

sub shellwords_of
{
	my ($cmd) = @_;
	my @w;
	while ($cmd =~ /\G\s*((?:'[^']*'|\\.|[^\s'\\])+)/gc)
	{
		my $word = $1;
		my $v = '';
		while ($word =~ /\G(?:'([^']*)'|\\(.)|([^'\\]))/gc)
		{
			$v .= defined $1 ? $1 : defined $2 ? $2 : $3;
		}
		push @w, $v;
	}
	return @w;
}

sub lsn_ge
{
	my ($a, $b) = @_;
	return 0 unless defined $a && defined $b;
	my ($ah, $al) = map { hex } split m{/}, $a;
	my ($bh, $bl) = map { hex } split m{/}, $b;
	return $ah > $bh || ($ah == $bh && $al >= $bl);
}

sub exec_gate
{
	my (@args) = @_;
	return run_backstop('exec', '--db', $conn, '--listen', $listen, '--timeout', '60s', @args);
}

# 1. DROP TABLE: recovery point first, then the drop; recover brings the table back.
my $before = content_checksum($node, $db, 'public.orders');
my ($rc, $out, $err) = exec_gate('-c', 'DELETE FROM orders WHERE id = 1; DROP TABLE orders');
is($rc, 0, 'exec of a keyed DELETE and a DROP TABLE succeeds with the archiver running') or diag("$out\n$err");
like($out, qr/\[1\] DELETE FROM orders WHERE id = 1\n    level LOW, action allow/, 'the keyed DELETE is LOW and allowed');
my ($lsn) = $out =~ m{recovery point: public\.orders at ([0-9A-F]+/[0-9A-F]+)};
ok(defined $lsn, 'the DROP got a recovery point (an LSN)') or diag($out);
my ($undo) = $out =~ m{undo: (backstop recover [^\n]*)};
like($undo // '', qr{^backstop recover --db '.*' --table 'public\.orders' --to-lsn \Q$lsn\E$}, '... and the exact recover command')
  if defined $lsn;
is($node->safe_psql($db, "SELECT to_regclass('public.orders') IS NULL"), 't', 'the table was dropped');
like($err, qr/gate decision: \{.*"action":"checkpoint".*"outcome":"executed"/, 'the decision is logged with its outcome');

# The order the gate's session did it in, from the server's statement log: in one transaction,
# lock, read the WAL position, (recovery point), then the statement.
my @lines = split /\n/, slurp_file($node->logfile);
my ($exec_pid) = map { /\[(\d+)\] .*LOG:  statement: DROP TABLE orders$/ ? $1 : () } @lines;
# Simple-protocol statements are logged "statement: ", extended-protocol ones "execute <unnamed>: ".
my @stmts = map { /\[\Q$exec_pid\E\] .*LOG:  (?:statement|execute <unnamed>): (.*)$/ ? $1 : () } @lines;
my @want = ('BEGIN', 'LOCK TABLE "public"."orders" IN ACCESS EXCLUSIVE MODE',
	'SELECT pg_catalog.pg_current_wal_insert_lsn()::text', 'DROP TABLE orders', 'COMMIT');
my $at = 0;
for my $s (@stmts)
{
	$at++ if $at < @want && $s eq $want[$at];
}
is($at, scalar @want, 'the session locked the table, read the WAL position, then dropped it, in one transaction')
  or diag(join("\n", @stmts));

# The printed command, run by a shell (plus --storage and a target name): it must parse.
my @words = shellwords_of($undo // '');
is($words[0], 'backstop', 'the recover command splits into shell words');
my %arg = @words[2 .. $#words];
is($arg{'--db'}, $conn, '... giving the connection back exactly');
is($arg{'--to-lsn'}, $lsn, '... and the LSN');

# Recovery at the point waits for nothing but the archive passing the drop (event: info's window).
ok(wait_for('the recovery window to reach the point', sub {
	my ($irc, $iout) = run_backstop('info', '--storage', $storage, '--table', 'public.orders', '--json');
	my $info = eval { decode_json($iout) } or return 0;
	my $w = $info->{tables}[0]{recovery_window} or return 0;
	return lsn_ge($w->{to_lsn}, $lsn);
}), 'the recovery window of the dropped table reaches the recovery point');
my ($rrc, $rout, $rerr) = run_backstop('recover', '--db', $arg{'--db'}, '--storage', $storage, '--table', $arg{'--table'},
	'--to-lsn', $arg{'--to-lsn'}, '--into', 'public.orders_back', '--yes');
is($rrc, 0, 'recover --to-lsn at the recovery point succeeds') or diag("$rout\n$rerr");
my $after_delete = $node->safe_psql($db, 'SELECT count(*) FROM public.orders_back');
is($after_delete, '499', 'the recovered table holds the rows just before the DROP (after the DELETE)');
$node->safe_psql($db, "INSERT INTO public.orders_back (id, customer, note) VALUES (1, 1 % 17, 'order 1')");
is(content_checksum($node, $db, 'public.orders_back'), $before, 'with the deleted row put back, the checksum is the original one');

# 2. A table the archiver skips (no replica identity) cannot be dropped through the gate.
($rc, $out, $err) = exec_gate('-c', 'DROP TABLE nokey');
is($rc, 1, 'DROP TABLE of a table the archiver skips is refused');
like($err, qr/public\.nokey is not archived by the running archiver/, '... saying it is not archived') or diag($err);
like($err, qr/primary key or REPLICA IDENTITY FULL/, '... and what to do');
is($node->safe_psql($db, "SELECT count(*) FROM public.nokey"), '1', 'the table is still there');

# 3. A refused statement stops the run; what came before ran, nothing after it does.
($rc, $out, $err) = exec_gate('-c', 'INSERT INTO log VALUES (1); DROP SCHEMA public CASCADE; INSERT INTO log VALUES (2)');
is($rc, 1, 'a CRITICAL statement stops the run');
like($out, qr/\[2\] DROP SCHEMA public CASCADE\n    level CRITICAL, action refuse/, 'the DROP SCHEMA is refused by the default policy');
is($node->safe_psql($db, 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM public.log'), '1',
	'the statement before it ran, the one after did not');

# 4. A temporary table shadows a permanent one: the gate resolves the name in the session.
($rc, $out, $err) = exec_gate('--json', '-c', 'CREATE TEMP TABLE items (id int); INSERT INTO items VALUES (1); DROP TABLE items');
is($rc, 0, 'DROP TABLE of a temporary table that shadows public.items runs') or diag("$out\n$err");
my $j = eval { decode_json($out) };
my $drop = $j ? $j->{statements}[2] : {};
is($drop->{targets}[0]{temporary}, JSON::PP::true, 'the target resolved to the temporary table') or diag($out);
like($drop->{targets}[0]{name}, qr/^pg_temp_\d+\.items$/, '... in the session\'s temporary schema');
is_deeply($drop->{recovery_points}, [], '... which needs no recovery point (its rows end with the session)');
is($node->safe_psql($db, 'SELECT count(*) FROM public.items'), '50', 'public.items is untouched');

# 5. Approval is not available yet: refused, saying so.
open my $fh, '>', "$dir/policy.conf" or die;
print $fh "[rule careful]\nlevel = low\ntables = items\naction = approve\n";
close $fh;
($rc, $out, $err) = exec_gate('--policy', "$dir/policy.conf", '-c', 'UPDATE items SET name = \'x\' WHERE id = 3');
is($rc, 1, 'a statement the policy holds for approval is refused');
like($err, qr/needs a human's approval/, '... saying approval is required');
is($node->safe_psql($db, 'SELECT name FROM public.items WHERE id = 3'), 'item 3', '... and did not run');

# 6. With the archiver stopped, the DROP is refused and the table is still there.
kill 'TERM', $pid;
waitpid($pid, 0);
$pid = undef;
($rc, $out, $err) = exec_gate('-c', 'DROP TABLE items');
is($rc, 1, 'with the archiver stopped, DROP TABLE is refused');
like($err, qr/could not reach the archiver at \Q$listen\E/, '... because the archiver cannot be reached') or diag($err);
like($err, qr/start `backstop archive/, '... saying what to do');
is($node->safe_psql($db, 'SELECT count(*) FROM public.items'), '50', 'the table and its rows are still there');
($rc, $out, $err) = exec_gate('-c', 'SELECT count(*) FROM items');
is($rc, 0, 'reads still run without the archiver');

# 7. Usage.
($rc, $out, $err) = run_backstop('exec', '--db', $conn, 'DROP TABLE items');
is($rc, 2, 'SQL as an argument is a usage error (exec takes -c or -f)');
($rc, $out, $err) = run_backstop('exec', '--db', $conn, '-c', 'SELEC 1');
is($rc, 1, 'unparsable SQL is refused');
like($out, qr/REFUSED: cannot parse/, '... nothing executed');

# 8. A stand-in archiver: each answer it gives to /checkpoint refuses the DROP with its own advice.
# It serves one answer per connection, in order; the child leaves with POSIX::_exit (no END blocks).
sub fake_archiver
{
	my (@answers) = @_;
	my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16, ReuseAddr => 1)
	  or die "fake archiver: $!";
	my $child = fork() // die "fork: $!";
	if ($child == 0)
	{
		for my $a (@answers)
		{
			my $c = $srv->accept or last;
			my $req = '';
			while ($req !~ /\r\n\r\n/)
			{
				my $n = sysread($c, my $buf, 4096);
				last unless $n;
				$req .= $buf;
			}
			my ($status, $body) = @$a;
			print $c "HTTP/1.1 $status X\r\nContent-Type: application/json\r\nContent-Length: " . length($body)
			  . "\r\nConnection: close\r\n\r\n$body";
			close $c;
		}
		POSIX::_exit(0);
	}
	my $addr = '127.0.0.1:' . $srv->sockport;
	close $srv;
	return ($child, $addr);
}

sub exec_fake
{
	my ($answers, @args) = @_;
	my ($child, $addr) = fake_archiver(@$answers);
	my @r = run_backstop('exec', '--db', $conn, '--listen', $addr, '--timeout', '5s', @args);
	# exec has asked all it will ask: the stand-in goes (whatever answers it had left)
	kill 'KILL', $child;
	waitpid($child, 0);
	return @r;
}

my $items_oid = $node->safe_psql($db, "SELECT 'public.items'::regclass::oid");
my @refusals = (
	[[[404, '{"error": "not archived"}']], qr/public\.items is not archived by the running archiver \(not archived\): archive it first/,
		'not archived (404)'],
	[[[504, '{"error": "not yet"}']], qr/the archiver could not verify a recovery point of public\.items in time \(not yet\): see the archiver's log, or raise --timeout/,
		'not verified in time (504)'],
	[[[500, '{"error": "boom"}']], qr/the archiver could not give a recovery point of public\.items \(HTTP 500: boom\)/,
		'another error (500)'],
	[[[500, '{"no": "error"}']], qr/the archiver could not give a recovery point of public\.items \(HTTP 500: no reason given\)/,
		'an answer without a reason'],
	[[[500, 'not json']], qr/the archiver could not give a recovery point of public\.items \(archiver answered 500: not json\)\n/,
		'an answer that is not JSON (not "start the archiver": it answered)'],
	[[[200, '{"lsn": "0/1", "relid": 1}']], qr/the archiver archives another table named public\.items \(relid 1, not OID $items_oid\): let it catch up/,
		'another table of that name (relid)'],
	[[[200, qq({"lsn": "0/1", "relid": $items_oid})], [504, '{"error": "late"}']],
		qr/could not verify a recovery point of public\.items in time \(late\)/, 'a refusal once the table is locked'],
);
for my $case (@refusals)
{
	my ($answers, $re, $what) = @$case;
	($rc, $out, $err) = exec_fake($answers, '-c', 'DROP TABLE items');
	is($rc, 1, "stand-in archiver, $what: the DROP is refused");
	like($err, qr/backstop exec: ERROR: statement 1 refused: /, '... statement 1 refused') or diag($err);
	like($out, $re, '... with its advice') or diag($out);
	is($node->safe_psql($db, 'SELECT count(*) FROM public.items'), '50', '... and the table is untouched');
}
is($node->safe_psql($db, "SELECT count(*) FROM pg_locks WHERE relation = 'public.items'::regclass AND pid <> pg_backend_pid()"),
	'0', 'no lock is left behind (the refused transaction was rolled back)');

# 9. A statement that fails when it runs: FAILED, nothing committed, the next one does not run.
($rc, $out, $err) = exec_gate('-c', "INSERT INTO log VALUES (101); INSERT INTO items VALUES (1, 'duplicate'); INSERT INTO log VALUES (102)");
is($rc, 1, 'a statement that fails stops the run');
like($out, qr/\[2\] INSERT INTO items .*\n(?:.*\n)*?    FAILED: the statement failed: ERROR:  duplicate key value violates unique constraint/,
	'... FAILED with the server\'s error') or diag($out);
like($err, qr/backstop exec: ERROR: statement 2 failed: /, '... statement 2 failed');
is($node->safe_psql($db, 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM log WHERE id > 100'), '101', '... the first ran, the third did not');

# 9b. A statement that changes how the session lexes SQL: CRITICAL, refused by default; a policy
# that allows it lets it run, and the run stops right after it (the gate would read what follows
# differently from the server).
($rc, $out, $err) = exec_gate('-c', "SET standard_conforming_strings = off");
is($rc, 1, 'SET standard_conforming_strings = off is refused by default');
like($out, qr/CRITICAL  SET standard_conforming_strings off: the server would lex later statements differently/, '... as CRITICAL');
open $fh, '>', "$dir/lexing.conf" or die;
print $fh "[rule lexing]\nlevel = critical\naction = allow\n";
close $fh;
($rc, $out, $err) = exec_gate('--policy', "$dir/lexing.conf", '-c', "SET standard_conforming_strings = off; INSERT INTO log VALUES (103)");
is($rc, 1, 'allowed by the policy, SET standard_conforming_strings = off runs and stops the run');
like($err, qr/statement 1 ran, but nothing after it runs: after it, the session has standard_conforming_strings = off: the gate parses with it on/,
	'... saying why') or diag($err);
like($out, qr/\[1\] SET standard_conforming_strings = off\n(?:.*\n)*?    executed: SET\n    STOPPED: after it, the session has standard_conforming_strings = off/,
	'... as the statement\'s outcome: executed, and the run stopped')
  or diag($out);
is($node->safe_psql($db, 'SELECT count(*) FROM log WHERE id = 103'), '0', '... and the next statement did not run');

# 10. Both answers good: the DROP runs, with the stand-in's point (no segment: nothing since the base copy).
($rc, $out, $err) = exec_fake([[200, qq({"lsn": "0/1", "relid": $items_oid})], [200, qq({"lsn": "0/2", "relid": $items_oid, "segment": null})]],
	'-c', 'DROP TABLE items');
is($rc, 0, 'stand-in archiver with a verified point: the DROP runs') or diag("$out\n$err");
like($out, qr/recovery point: public\.items at [0-9A-F]+\/[0-9A-F]+ \(segment none: no changes since the base copy; archived to 0\/2, verified\)/,
	'... printing the point and that there is no segment') or diag($out);
is($node->safe_psql($db, "SELECT to_regclass('public.items') IS NULL"), 't', '... and the table is gone');

done_testing();
