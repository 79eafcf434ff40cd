# 051_archive_storage_outage.t — the archiver writing to S3 through a fault proxy: a 30 s storage
# outage under a steady write load (spool grows, flush position frozen, health degraded, nothing
# lost), and a --spool-limit exit followed by a restart that loses nothing.
use strict;
use warnings;

use BackstopS3;
use BackstopTest;
use File::Find ();
use HTTP::Tiny;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);

my $OUTAGE_SECONDS = 30;

my $s3 = BackstopS3::start_s3rver(bucket => 'bs-051');
my $px = BackstopS3::start_proxy($s3);
BackstopS3::set_faults($px);

my $node = new_pg_node('outage');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('outage');
my $storage = 's3://bs-051/arch';
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";
my $http = HTTP::Tiny->new(timeout => 10);
my @tables = qw(public.accounts public.history);

$node->safe_psql($db, q{
	CREATE TABLE public.accounts (id int PRIMARY KEY, bal bigint NOT NULL, note text);
	CREATE TABLE public.history (id bigserial PRIMARY KEY, aid int NOT NULL, delta int, pad text,
		at timestamptz DEFAULT now());
	CREATE TABLE public.ctl (stop boolean NOT NULL);
	INSERT INTO public.ctl VALUES (false);
	INSERT INTO public.accounts SELECT g, 0, 'seed' FROM generate_series(1, 1000) g;
});

# ---------- helpers ----------

my %archiver_pid;	# pid => 1 while running, killed at the end if a test dies early

END
{
	kill 'KILL', $_ for keys %archiver_pid;
}

# Start the archiver (spawn_archiver: a PID, so that the exit status and /proc are easy to reach).
sub start_archiver
{
	my ($log, @extra) = @_;
	local %ENV = (%ENV, BackstopS3::s3_env($px->{endpoint}));
	my $pid = spawn_archiver($log, '--db', $conn, '--tables', join(',', @tables),
		'--storage', $storage, '--s3-endpoint', $px->{endpoint},
		'--data-dir', "$dir/data", '--listen', $listen,
		# Fail fast on a dead storage so that the event loop stays responsive.
		'--retries', '1', '--retry-base-delay', '50ms', '--s3-timeout', '3s',
		'--segment-age', '1s', '--status-interval', '1s', '--table-poll-interval', '2s',
		@extra);
	$archiver_pid{$pid} = 1;
	return $pid;
}

# Exit status of the archiver if it has exited (undef while it runs).
sub archiver_exited
{
	my ($pid) = @_;
	my $r = waitpid($pid, POSIX::WNOHANG());
	return undef if $r == 0;
	delete $archiver_pid{$pid};
	return $? >> 8 if $r == $pid;
	return -1;
}

sub stop_archiver
{
	my ($pid) = @_;
	kill 'TERM', $pid;
	my $deadline = time + 60;
	while (time < $deadline)
	{
		my $rc = archiver_exited($pid);
		return $rc if defined $rc;
		sleep 0.1;
	}
	kill 'KILL', $pid;
	waitpid($pid, 0);
	delete $archiver_pid{$pid};
	return -1;
}


sub metrics
{
	my $r = $http->get("http://$listen/metrics");
	return undef unless $r->{success};
	my %m;
	for my $line (split /\n/, $r->{content})
	{
		next if $line =~ /^#/;
		$m{$1} = $2 if $line =~ /^([a-z_]+) (\d+)$/;
	}
	return \%m;
}

sub health_status
{
	my $r = $http->get("http://$listen/health");
	return $r->{status};
}

sub lsn_num
{
	my ($s) = @_;
	my ($hi, $lo) = $s =~ m{^([0-9A-Fa-f]+)/([0-9A-Fa-f]+)$} or die "bad LSN \"$s\"";
	return hex($hi) * 4294967296 + hex($lo);
}

sub slot_confirmed
{
	my $v = $node->safe_psql($db,
		"SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'backstop'");
	return $v eq '' ? 0 : lsn_num($v);
}

# The archive head as stored, read straight from s3rver (not through the proxy): the position
# everything is durable up to.
sub stored_head_lsn
{
	my $r = BackstopS3::st($s3->{endpoint}, [ '--storage', $storage ], 'get', 'head.json');
	return undef unless $r->{rc} == 0;
	my ($lsn) = $r->{out} =~ /"flushed_lsn"\s*:\s*"([0-9A-Fa-f]+\/[0-9A-Fa-f]+)"/ or return undef;
	return lsn_num($lsn);
}

sub checkpoint
{
	my ($table) = @_;
	return archiver_checkpoint($listen, $table);
}

sub checkpoint_all
{
	my ($label) = @_;
	for my $t (@tables)
	{
		my ($rc, $out, $err) = checkpoint($t);
		is($rc, 0, "$label: checkpoint $t") or diag("$out\n$err");
	}
}

my $recoveries = 0;
sub check_recovery
{
	my ($label) = @_;
	for my $t (@tables)
	{
		(my $into = $t) =~ s/public\./public.r${recoveries}_/;
		my ($rc, $out, $err) = run_backstop({ env => { BackstopS3::s3_env($s3->{endpoint}) } },
			'recover', '--db', $conn, '--storage', $storage, '--s3-endpoint', $s3->{endpoint},
			'--table', $t, '--latest', '--into', $into, '--replace', '--yes');
		is($rc, 0, "$label: recover $t --latest") or diag("$out\n$err");
		my $got = $rc == 0 ? content_checksum($node, $db, $into) : "recover failed";
		is($got, content_checksum($node, $db, $t), "$label: $t recovered equals PostgreSQL");
	}
	$recoveries++;
}

# A steady write load: updates by primary key, inserts, deletes, one transaction each.
sub start_load
{
	my ($pad) = @_;
	$node->safe_psql($db, 'UPDATE public.ctl SET stop = false');
	my $sql = qq{DO \$\$ DECLARE i int := 0; BEGIN
		LOOP
			EXIT WHEN (SELECT stop FROM public.ctl);
			i := i + 1;
			UPDATE public.accounts SET bal = bal + i, note = 'upd ' || i WHERE id = 1 + (i * 7919) % 1000;
			INSERT INTO public.history (aid, delta, pad) VALUES (1 + i % 1000, i, repeat('p', $pad));
			IF i % 10 = 0 THEN
				DELETE FROM public.history WHERE id = (SELECT min(id) FROM public.history);
			END IF;
			COMMIT;
			PERFORM pg_sleep(0.005);
		END LOOP;
	END \$\$};
	my ($in, $out, $err) = ('', '', '');
	return IPC::Run::start([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $conn, '-c', $sql ],
		'<', \$in, '>', \$out, '2>', \$err);
}

sub stop_load
{
	my ($h) = @_;
	$node->safe_psql($db, 'UPDATE public.ctl SET stop = true');
	my $ok = eval { $h->finish; 1 };
	ok($ok && $h->result(0) == 0, 'write load ran without errors');
}

sub history_count { return $node->safe_psql($db, 'SELECT count(*) FROM public.history'); }

# ---------- 1. a 30 s outage under load ----------

my $log = "$dir/archiver.log";
my $pid = start_archiver($log);
ok(wait_for('archiver ready', sub { my ($rc) = checkpoint('public.accounts'); $rc == 0 }),
	'archiver started against S3 through the proxy')
  or diag(slurp_file($log));
my $confirmed_start = slot_confirmed();

my $load = start_load(100);
my $rows0 = history_count();
ok(wait_for('load archived', sub {
	my $m = metrics();
	$m && $m->{backstop_segments_uploaded_total} >= 3 && slot_confirmed() > $confirmed_start;
}), 'segments uploaded and the slot advances before the outage');

my $m_before = metrics();
BackstopS3::set_faults($px, { count => -1, action => 'status', status => 503, code => 'SlowDown' });
my $outage_start = time;
note("outage started: flushed_lsn $m_before->{backstop_flushed_lsn}");

# Let an upload that was already past the proxy finish, then take the durable position.
sleep 1.5;
my $head = stored_head_lsn();
ok(defined $head, 'head.json readable directly from s3rver');
$head //= 0;
cmp_ok($head, '>=', $m_before->{backstop_flushed_lsn}, 'stored head covers what was flushed before the outage');
my $m_out = metrics();
my $flushed_out = $m_out->{backstop_flushed_lsn};
cmp_ok($flushed_out, '<=', $head, 'flushed position is not past the stored head');

my ($max_confirmed, $max_flushed, $min_health_ok, $alive) = (0, 0, 0, 1);
my ($head_moved, $samples) = (0, 0);
my $errors_first = $m_out->{backstop_upload_errors_total};
my ($m_last, $received_first) = ($m_out, $m_out->{backstop_received_lsn});
# The outage lasts at least OUTAGE_SECONDS and at least MIN_SAMPLES answers of the archiver,
# however slow the machine makes each round; a /metrics that stops answering ends it unsampled.
my ($MIN_SAMPLES, $rounds) = ($OUTAGE_SECONDS / 2, 0);
while ((time - $outage_start < $OUTAGE_SECONDS || $samples < $MIN_SAMPLES) && $rounds++ < 4 * $OUTAGE_SECONDS)
{
	sleep 1;
	if (defined archiver_exited($pid))
	{
		$alive = 0;
		last;
	}
	my $m = metrics() or next;
	$m_last = $m;
	$samples++;
	my $c = slot_confirmed();
	$max_confirmed = $c if $c > $max_confirmed;
	$max_flushed = $m->{backstop_flushed_lsn} if $m->{backstop_flushed_lsn} > $max_flushed;
	$min_health_ok++ if health_status() != 503;
	my $h = stored_head_lsn();
	$head_moved++ if !defined $h || $h != $head;
}
ok($alive, "archiver kept running through a ${OUTAGE_SECONDS} s outage") or diag(slurp_file($log));
cmp_ok($samples, '>=', $MIN_SAMPLES, "sampled the archiver during the outage ($samples samples in $rounds rounds)");
is($head_moved, 0, 'nothing reached storage during the outage (head.json unchanged)');
cmp_ok($max_confirmed, '<=', $head, "slot's confirmed_flush_lsn never passed the durable head");
is($max_flushed, $flushed_out, 'flushed LSN frozen during the outage');
cmp_ok($m_last->{backstop_upload_errors_total}, '>', $errors_first, 'backstop_upload_errors_total grows');
cmp_ok($m_last->{backstop_spool_bytes}, '>', 0, 'backstop_spool_bytes > 0');
cmp_ok($m_last->{backstop_received_lsn}, '>', $received_first, 'changes still received during the outage');
cmp_ok($m_last->{backstop_received_lsn}, '>', $head, 'received beyond the durable head');
is($min_health_ok, 0, '/health answered 503 throughout the outage');
cmp_ok(history_count(), '>', $rows0 + 100, 'the write load progressed during the outage');
{
	my ($rc, $out, $err) = run_backstop('checkpoint', '--table', 'public.accounts', '--listen', $listen,
		'--json', '--timeout', '20s');
	isnt($rc, 0, 'checkpoint fails while storage is down') or diag($out);
}
my @reqs = BackstopS3::proxy_requests($px);
cmp_ok(scalar(grep { / status$/ } @reqs), '>', 0, 'the proxy refused requests');
is(scalar(grep { !/ status$/ } @reqs), 0, 'no request got through during the outage');

# Storage back: the spool drains, everything becomes durable.
BackstopS3::set_faults($px);
stop_load($load);
checkpoint_all('after the outage');
my $m_after = metrics();
is($m_after->{backstop_spool_bytes}, 0, 'spool drained after the outage');
cmp_ok($m_after->{backstop_flushed_lsn}, '>', $m_last->{backstop_received_lsn}, 'flushed past what was received during the outage');
ok(wait_for('health ok', sub { health_status() == 200 }, 30), '/health answers 200 again');
ok(wait_for('slot advance', sub { slot_confirmed() >= $m_after->{backstop_flushed_lsn} }, 30),
	'slot confirmed up to the new flushed position');
check_recovery('after a 30 s outage');

is(stop_archiver($pid), 0, 'archiver stops cleanly (exit 0)');

# ---------- 2. --spool-limit: exit before the spool overflows, lose nothing ----------

my $log2 = "$dir/archiver-limit.log";
$pid = start_archiver($log2, '--spool-limit', '64kB');
ok(wait_for('archiver ready', sub { my ($rc) = checkpoint('public.accounts'); $rc == 0 }),
	'archiver restarted with --spool-limit 64kB')
  or diag(slurp_file($log2));
BackstopS3::set_faults($px, { count => -1, action => 'drop' });
# A marker transaction committed after storage went away: PostgreSQL must still hold it for
# the slot when the archiver has given up.
my $marker_xid = $node->safe_psql($db, q{
	BEGIN;
	INSERT INTO public.history (aid, delta, pad) VALUES (0, 0, 'marker');
	SELECT pg_current_xact_id()::xid;
	COMMIT;
});
$load = start_load(100);
my $exit;
ok(wait_for('archiver exit', sub { $exit = archiver_exited($pid); defined $exit }, 120),
	'archiver exits while storage is down and the spool fills');
isnt($exit // 0, 0, 'exit status is non-zero');
like(slurp_file($log2), qr/spool_limit/, 'the error mentions spool_limit');
stop_load($load);
my ($spool_size, $spool_segs) = (0, 0);
File::Find::find(sub { if (-f $_ && /\.seg$/) { $spool_size += -s $_; $spool_segs++; } }, "$dir/data/spool")
  if -d "$dir/data/spool";
note("spool holds $spool_segs segments, $spool_size bytes after the spool_limit exit");
cmp_ok($spool_segs, '>', 0, 'segments were spooled before the exit');
# The limit is checked against the records; each spooled segment adds its small header.
cmp_ok($spool_size, '<=', 64 * 1024 + 64 * $spool_segs, 'spooled segments stay within spool_limit');
# The slot has not been confirmed past the marker: peek (the archiver is gone) and find it.
is($node->safe_psql($db, qq{
	SELECT count(*) > 0 FROM pg_logical_slot_peek_binary_changes('backstop', NULL, NULL,
		'proto_version', '1', 'publication_names', 'backstop') WHERE xid = '$marker_xid'::xid}),
	't', 'the slot still holds the transaction committed after storage went away');

# More writes while no archiver runs, then storage back and a restart.
$node->safe_psql($db, q{
	INSERT INTO public.history (aid, delta, pad) SELECT g, -g, 'offline' FROM generate_series(1, 200) g;
	UPDATE public.accounts SET note = 'offline' WHERE id % 3 = 0;
	DELETE FROM public.history WHERE id % 7 = 0;
});
BackstopS3::set_faults($px);
my $log3 = "$dir/archiver-restart.log";
$pid = start_archiver($log3);
ok(wait_for('archiver ready', sub { my ($rc) = checkpoint('public.accounts'); $rc == 0 }),
	'archiver restarted with storage back')
  or diag(slurp_file($log3));
checkpoint_all('after the spool_limit exit');
is((metrics() // {})->{backstop_spool_bytes}, 0, 'spool drained after the restart');
check_recovery('after the spool_limit exit');
is(stop_archiver($pid), 0, 'archiver stops cleanly (exit 0)');

$node->stop;
done_testing();
