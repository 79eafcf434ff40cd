# 082_weak_ddl.t — schema changes where they are not captured in the stream (--ddl-capture off,
# as for a role that may not create event triggers): a change is seen only through the Relation
# message of the table's next row change, or by the archiver's table check.  The point where it
# committed is then unknown within a window; recovery refuses points inside it ("unknown point")
# and recovers points before and after it exactly.  Every recovery is compared with the source's
# checksum recorded right after the transaction (pg_current_wal_insert_lsn).
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $node = new_pg_node('weak', extra_conf => "max_wal_size = 1GB\n");
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('weak');
my $storage = "file://$dir/archive";
my $log = "$dir/archive.log";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";

sub pt { return $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()') }
sub sum { my ($t) = @_; return content_checksum($node, $db, $t) }
sub log_has { my ($re) = @_; return slurp_file($log) =~ $re }
# An unrelated transaction: a point after the table's last change that is not the same LSN.
sub other { $node->safe_psql($db, 'INSERT INTO public.keep SELECT coalesce(max(id), 0) + 1 FROM public.keep') }

$node->safe_psql($db, q{
	CREATE TABLE public.w_add (id int PRIMARY KEY, v text);
	INSERT INTO public.w_add SELECT g, 'v' || g FROM generate_series(1, 5) g;
	CREATE TABLE public.w_drop (id int PRIMARY KEY, v text, w text);
	INSERT INTO public.w_drop SELECT g, 'v' || g, 'w' || g FROM generate_series(1, 5) g;
	CREATE TABLE public.w_mid (id int PRIMARY KEY, v text, w text);
	INSERT INTO public.w_mid SELECT g, 'v' || g, 'w' || g FROM generate_series(1, 5) g;
	CREATE TABLE public.w_next (id int PRIMARY KEY, v text);
	INSERT INTO public.w_next SELECT g, 'v' || g FROM generate_series(1, 5) g;
	CREATE TABLE public.keep (id int PRIMARY KEY);
});

my $h = start_archiver('100ms');

sub checkpoint_ok
{
	my ($table, $what) = @_;
	ok(wait_for("checkpoint of $table", sub { (archiver_checkpoint($listen, $table, '10s'))[0] == 0 }, 120),
		"$what: checkpoint of $table") or diag(slurp_file($log));
}

checkpoint_ok("public.$_", 'start') for qw(w_add w_drop w_mid w_next keep);
ok(log_has(qr/schema changes are NOT captured in the stream \(--ddl-capture off/), 'the archiver runs without capture');

# Each table: a row change, then the schema change (with or without a later row change).
my %p;
sub step { my ($t, $name, $sql) = @_; $node->safe_psql($db, $sql) if $sql; $p{$t}{$name} = [ pt(), sum("public.$t") ] }

for my $t (qw(w_add w_drop w_mid w_next))
{
	step($t, 'before');    # before the table's last row change ahead of the schema change
	step($t, 'last', "UPDATE public.$t SET v = 'last' WHERE id = 1");
	other();
	step($t, 'quiet');     # after that change, before the schema change
}
# 1. ADD COLUMN with a DEFAULT, no later row change.
step('w_add', 'ddl', 'ALTER TABLE public.w_add ADD COLUMN c int DEFAULT 7');
# 2. DROP COLUMN, no later row change.
step('w_drop', 'ddl', 'ALTER TABLE public.w_drop DROP COLUMN w');
# 3. DROP COLUMN between two row changes, and 4. ADD COLUMN followed by a row change: the next
# change comes at once (the table check may or may not see the schema change first).
$p{w_mid}{ddl} = [ $node->safe_psql($db, "ALTER TABLE public.w_mid DROP COLUMN w;\nSELECT pg_current_wal_insert_lsn();"),
	sum('public.w_mid') ];
step('w_mid', 'next', "INSERT INTO public.w_mid VALUES (6, 'next')");
$p{w_next}{ddl} = [ $node->safe_psql($db, "ALTER TABLE public.w_next ADD COLUMN d int DEFAULT 5;\nSELECT pg_current_wal_insert_lsn();"),
	sum('public.w_next') ];
step('w_next', 'next', "INSERT INTO public.w_next VALUES (6, 'next')");
other();
step($_, 'after') for qw(w_add w_drop w_mid w_next);

# The table checks find the schema changes without a later row change; new base copies end
# the windows.
for my $t (qw(w_add w_drop))
{
	ok(wait_for("$t: the change found", sub { log_has(qr/table public\.$t: its columns in the catalog differ/) }, 120),
		"$t: the table check finds the schema change") or diag(slurp_file($log));
	ok(wait_for("$t: the window ended", sub { log_has(qr/table public\.$t: the base copy at \S+ ends the window/) }, 120),
		"$t: a new base copy ends the window") or diag(slurp_file($log));
}
ok(wait_for('w_mid: the change seen', sub { log_has(qr/table public\.w_mid: its columns (changed at an unknown point between|in the catalog differ)/) }, 120),
	'w_mid: the schema change is seen') or diag(slurp_file($log));
# After the base copies: a row change of each table, then a point after it.
for my $t (qw(w_add w_drop w_mid w_next))
{
	step($t, 'later', "INSERT INTO public.$t (id, v) VALUES (100, 'later')");
	checkpoint_ok("public.$t", 'after the windows');
}

my $nrec = 0;
my %refused;

# Recover at a point: exact, or (when allowed) refused naming the unknown point.
sub recover_at
{
	my ($t, $name, $want) = @_;    # want: 'exact', 'refused' or 'either'
	my ($lsn, $sum) = @{ $p{$t}{$name} };
	my $into = 'public.r_' . ++$nrec;
	my ($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', "public.$t",
		'--to-lsn', $lsn, '--into', $into, '--no-indexes');
	if ($rc == 0)
	{
		isnt($want, 'refused', "$t at $name ($lsn): recovered, a point outside the window")
			or return diag("$out\n$err");
		is(sum($into), $sum, "$t at $name ($lsn): exactly the source's table at the point");
		return;
	}
	isnt($want, 'exact', "$t at $name ($lsn): refused, a point inside the window") or return diag("$out\n$err");
	like($err, qr/the schema of public\.$t changed at an unknown point (between LSN \S+ and LSN \S+|after LSN \S+, and no base copy has been taken since) \(schema changes were not captured/,
		"$t at $name: refused, naming the window and the cause") or diag("$out\n$err");
	$refused{$t}++;
}

for my $t (qw(w_add w_drop w_mid w_next))
{
	recover_at($t, 'before', 'exact');
	# The schema change may have been in the transaction of the last row change (nothing in the
	# stream tells): from its commit on, the points are refused.
	recover_at($t, 'last', 'refused');
	recover_at($t, 'quiet', 'refused');
	# Right after the change: refused, or exact when a base copy was taken at that very position.
	recover_at($t, 'ddl', 'either');
	# After the first row change with the new columns: exact, unless the table check saw the
	# change first (the window then lasts until the new base copy).
	recover_at($t, 'next', 'either') if $p{$t}{next};
	recover_at($t, 'after', 'either');
	recover_at($t, 'later', 'exact');
}

# Latest: exact.
{
	my ($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.w_add',
		'--latest', '--into', 'public.w_add_latest', '--no-indexes');
	is($rc, 0, 'w_add --latest') or diag("$out\n$err");
	is(sum('public.w_add_latest'), sum('public.w_add'), 'w_add --latest: exactly');
}

# info and verify show the windows.
my ($rc, $out, $err) = run_backstop('info', '--storage', $storage, '--table', 'public.w_add');
is($rc, 0, 'info') or diag("$out\n$err");
like($out, qr/schema unknown: \S+ \.\. \S+/, 'info shows the window') or diag($out);
($rc, $out, $err) = run_backstop('info', '--storage', $storage, '--table', 'public.w_mid', '--json');
like($out, qr/"schema_unknown"\s*:\s*\[\s*\{/, 'info --json lists the window') or diag($out);
($rc, $out, $err) = run_backstop('verify', '--storage', $storage);
is($rc, 0, 'verify: a window is not damage') or diag("$out\n$err");
like($out, qr/warning: public\.w_drop .*the schema changed at an unknown point between/, 'verify shows the window')
	or diag($out);

sub start_archiver
{
	my ($interval) = @_;
	return kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', '--db', $conn, '--storage', $storage,
		'--data-dir', "$dir/data", '--slot', 's_weak', '--publication', 'p_weak', '--listen', $listen,
		'--segment-age', '1s', '--table-poll-interval', $interval, '--all-tables', '--ddl-capture', 'off' ],
		'<', \undef, '>>', "$dir/archive.out", '2>>', $log));
}

sub stop_archiver
{
	my ($what) = @_;
	$h->signal('TERM');
	$h->finish;
	is($h->result(0), 0, "$what: the archiver stops cleanly");
}

sub windows_ended { my ($t) = @_; my @m = slurp_file($log) =~ /table public\.$t: the base copy at \S+ ends the window/g; return scalar @m }

# A schema change right before a stop, with no table check in between (checks once an hour):
# the check at the stop finds it, and the stored archive refuses the points after it.
stop_archiver('before the stop check');
$h = start_archiver('1h');
checkpoint_ok('public.w_add', 'hourly checks');
step('w_add', 'stopped0');
$node->safe_psql($db, 'ALTER TABLE public.w_add DROP COLUMN c');
step('w_add', 'stopped1');
stop_archiver('the stop check');
ok(log_has(qr/table public\.w_add: its columns in the catalog differ/), 'the check at the stop finds the change')
	or diag(slurp_file($log));
{
	my ($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.w_add',
		'--latest', '--into', 'public.w_add_stopped', '--no-indexes');
	isnt($rc, 0, 'stopped: --latest is refused') or diag("$out\n$err");
	like($err, qr/changed at an unknown point after LSN \S+, and no base copy has been taken since/,
		'stopped: saying the schema changed at an unknown point') or diag("$out\n$err");
	($rc, $out, $err) = run_backstop('info', '--storage', $storage, '--table', 'public.w_add');
	like($out, qr/schema unknown: from \S+ on, until a new base copy/, 'stopped: info shows the open window') or diag($out);
}

# Started again: the first table check takes the new base copy, which ends the window.
my $ended = windows_ended('w_add');
$h = start_archiver('100ms');
ok(wait_for('w_add: the window ended', sub { windows_ended('w_add') > $ended }, 120),
	'restart: a new base copy ends the window') or diag(slurp_file($log));
step('w_add', 'stopped2', "INSERT INTO public.w_add (id, v) VALUES (101, 'after the restart')");
checkpoint_ok('public.w_add', 'restart');
# The window starts at the table's last row change before the stop ('later'): the schema change
# may have been in its transaction.
recover_at('w_add', 'before', 'exact');
recover_at('w_add', 'later', 'refused');
recover_at('w_add', 'stopped0', 'refused');
recover_at('w_add', 'stopped1', 'refused');
recover_at('w_add', 'stopped2', 'exact');

# A schema change while the archiver is stopped: found by the first table check after the start.
stop_archiver('stopped');
step('w_drop', 'down0');
$node->safe_psql($db, 'ALTER TABLE public.w_drop ADD COLUMN z text DEFAULT \'z\'');
step('w_drop', 'down1');
$ended = windows_ended('w_drop');
$h = start_archiver('100ms');
ok(wait_for('w_drop: the window ended', sub { windows_ended('w_drop') > $ended }, 120),
	'a change while stopped: found, and a new base copy ends its window') or diag(slurp_file($log));
step('w_drop', 'down2', "INSERT INTO public.w_drop (id, v) VALUES (101, 'after the restart')");
checkpoint_ok('public.w_drop', 'a change while stopped');
recover_at('w_drop', 'later', 'refused');
recover_at('w_drop', 'down0', 'refused');
recover_at('w_drop', 'down1', 'refused');
recover_at('w_drop', 'down2', 'exact');

stop_archiver('the end');
$node->stop;
done_testing();
