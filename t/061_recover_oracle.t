# 061_recover_oracle.t — recovery against an oracle: a single writer records the LSN, commit
# time, xid and content checksum after every transaction; recovering at each point (by LSN,
# by time, by xid, inclusive and exclusive) must reproduce that checksum exactly, across
# TRUNCATE, DELETE without WHERE and ALTER TABLE ADD/DROP COLUMN.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);
use BackstopTest;

my $node = new_pg_node('oracle');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('oracle');
my $storage = "file://$dir/archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";

$node->safe_psql($db, q{
	CREATE TABLE public.o (
		id int PRIMARY KEY, t text, n numeric(14,4), f8 double precision, ts timestamptz, d date,
		iv interval, b bytea, j jsonb, arr text[], flag boolean, big text);
	INSERT INTO public.o SELECT g, 'row ' || g, g * 1.25, g / 7.0, '2025-01-01'::timestamptz + g * interval '1 hour',
		'2025-01-01'::date + g, g * interval '1 minute', decode(lpad(to_hex(g), 4, '0'), 'hex'),
		jsonb_build_object('g', g), ARRAY['a' || g, NULL, 'x y'], g % 2 = 0, NULL
	  FROM generate_series(1, 200) g;
});

my $log = "$dir/archiver.log";
my $h = kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', '--db', $conn, '--all-tables', '--storage', $storage,
	  '--data-dir', "$dir/data", '--listen', $listen, '--segment-age', '1s', '--status-interval', '1s' ],
	'<', \undef, '>', "$dir/archiver.out", '2>>', $log));

# Retried for up to 60 s (the daemon may still be taking its base copy).
sub checkpoint { return (checkpoint_until($listen, 'public.o', 60))[0] == 0 }
ok(checkpoint(), 'archiver running') or diag(slurp_file($log));

# The workload: each entry is one transaction.
my @steps = (
	q{UPDATE public.o SET t = t || ' upd', n = n + 0.0001 WHERE id % 3 = 0},
	q{INSERT INTO public.o (id, t, f8, big) VALUES (1000, E'tab\there', 'NaN', repeat('toast ', 30000))},
	q{UPDATE public.o SET t = 'big stays' WHERE id = 1000},
	q{UPDATE public.o SET id = id + 5000 WHERE id BETWEEN 10 AND 20},
	q{DELETE FROM public.o WHERE id % 5 = 0},
	q{ALTER TABLE public.o ADD COLUMN extra text DEFAULT 'dflt'; UPDATE public.o SET extra = 'set' WHERE id < 30},
	q{INSERT INTO public.o (id, t, extra) VALUES (2000, '', NULL)},
	q{ALTER TABLE public.o DROP COLUMN d; UPDATE public.o SET t = 'after drop' WHERE id = 1},
	q{DELETE FROM public.o},
	q{INSERT INTO public.o (id, t) SELECT g, 'again ' || g FROM generate_series(1, 50) g},
	q{TRUNCATE public.o},
	q{INSERT INTO public.o (id, t, big) VALUES (1, 'after truncate', repeat('z', 10000))},
	q{UPDATE public.o SET iv = '1 day', j = '{"k": [1, 2]}' WHERE id = 1},
);

my @points;
for my $sql (@steps)
{
	my $before = $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()');
	my $xid = $node->safe_psql($db, "BEGIN; $sql; SELECT (txid_current() % 4294967296)::text; COMMIT;");
	$xid = (split /\n/, $xid)[-1];
	my $after = $node->safe_psql($db, "SELECT pg_current_wal_lsn() || ' ' || to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')");
	my ($lsn, $date, $tm) = split / /, $after;
	push @points, { sql => $sql, xid => $xid, lsn => $lsn, before => $before, time => "$date $tm+00", sum => content_checksum($node, $db, 'public.o') };
	sleep 0.01;
}
ok(checkpoint(), 'checkpoint after the workload');

my $n = 0;
my %method;				# method used, by point
my %base;				# LSN of the base copy used, by point
sub recovered
{
	my @point = @_;
	my $into = 'public.r' . $n++;
	my ($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.o',
		@point, '--into', $into, '--no-indexes');
	return "recover @point failed ($rc): $err" if $rc != 0;
	$method{"@point"} = $out =~ /^Method:\s+(streamed|rebuilt in memory)/m ? $1 : 'none';
	$base{"@point"} = $out =~ m{^Base copy:\s+LSN ([0-9A-F]+/[0-9A-F]+)}m ? $1 : undef;
	my $sum = content_checksum($node, $db, $into);
	$node->safe_psql($db, "DROP TABLE $into");
	return $sum;
}

for my $i (0 .. $#points)
{
	my $p = $points[$i];
	my $what = "after step $i ($p->{sql})";
	is(recovered('--to-lsn', $p->{lsn}), $p->{sum}, "by LSN: $what");
	is(recovered('--to-xid', $p->{xid}), $p->{sum}, "by xid: $what");
	is(recovered('--to-time', $p->{time}), $p->{sum}, "by time: $what");
	if ($i > 0)
	{
		is(recovered('--to-xid', $p->{xid}, '--exclusive'), $points[$i - 1]{sum}, "by xid, exclusive: before step $i");
	}
}
is(recovered('--latest'), $points[-1]{sum}, 'latest');
# A point streams the untouched base rows when every change since its base copy fits the
# base's layout; after a new layout or a TRUNCATE since the base (steps 5, 7 and 10) the table
# is rebuilt in memory.  The archiver re-bases the table after the ALTER TABLE in the
# background, at a point that depends on timing: the expected method follows from the base
# each recovery actually used.  A base taken while a step was committing (between its
# "before" and "after" positions) decides nothing and is skipped.
my @rewrites = (5, 7, 10);
my ($checked, $in_memory) = (0, 0);
for my $i (0 .. $#points)
{
	my $key = "--to-lsn $points[$i]{lsn}";
	my $b = $base{$key};
	if (!defined $b)
	{
		fail("point $i: the recovery output names its base copy");
		next;
	}
	my $expect = 'streamed';
	my $unsure = 0;
	for my $k (grep { $_ <= $i } @rewrites)
	{
		if (lsn_cmp($b, $points[$k]{before}) <= 0) { $expect = 'rebuilt in memory' }
		elsif (lsn_cmp($b, $points[$k]{lsn}) <= 0) { $unsure = 1 }
	}
	next if $unsure;
	is($method{$key}, $expect, "point $i (base $b): $expect");
	$checked++;
	$in_memory++ if $expect ne 'streamed';
}
is($method{"--to-lsn $points[0]{lsn}"}, 'streamed', 'the first point is streamed');
diag("method checked at $checked of " . scalar(@points) . " points, $in_memory of them rebuilt in memory");

sub lsn_cmp
{
	my ($x, $y) = map { my ($h, $l) = split m{/}, $_; hex($h) * 2**32 + hex($l) } @_;
	return $x <=> $y;
}

$h->signal('TERM');
$h->finish;
done_testing();
