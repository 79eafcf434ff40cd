# 084_recover_partitioned.t — a partitioned table recovered as a whole: `recover --table PARENT`
# at a point after which rows moved between partitions, one partition was detached and another
# dropped, rebuilds the partitioned table (its key) with every partition of the point, each
# exactly as it was and attached with its bound.  What the recovered tables cannot hold (another
# table's foreign key into the parent, a trigger, a row security policy, a publication) is
# printed as SQL for after the copy-back, and the printed copy-back and that SQL, run once the
# table is gone, give back a working hierarchy.  A point between a DETACH and the re-base it
# asks for is refused, never answered with the old membership; so is the whole when the
# archive's definitions predate the "partition" member (a partition alone still recovers).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use BackstopTest;

my $node = new_pg_node('parted');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('parted');
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";
my $storage = "file://$dir/archive";

$node->safe_psql($db, q{
	CREATE TABLE public.meas (id int PRIMARY KEY, region text NOT NULL DEFAULT 'eu', v int) PARTITION BY RANGE (id);
	CREATE TABLE public.meas_a PARTITION OF public.meas FOR VALUES FROM (0) TO (100);
	CREATE TABLE public.meas_b PARTITION OF public.meas FOR VALUES FROM (100) TO (200);
	CREATE TABLE public.meas_c PARTITION OF public.meas FOR VALUES FROM (200) TO (300);
	INSERT INTO public.meas (id, v) SELECT g, g * 10 FROM generate_series(1, 289) g WHERE g % 100 < 90;
	CREATE TABLE public.readings (id int PRIMARY KEY, meas_id int REFERENCES public.meas (id));
	INSERT INTO public.readings VALUES (1, 5), (2, 150);
	CREATE FUNCTION public.meas_touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.v := NEW.v + 1; RETURN NEW; END$$;
	CREATE TRIGGER meas_b_touch BEFORE UPDATE ON public.meas_b FOR EACH ROW EXECUTE FUNCTION public.meas_touch();
	ALTER TABLE public.meas_a ENABLE ROW LEVEL SECURITY;
	CREATE POLICY meas_a_positive ON public.meas_a FOR SELECT TO PUBLIC USING (v >= 0);
	CREATE PUBLICATION meas_pub FOR TABLE public.meas_c;
});

my $archiver = spawn_archiver("$dir/archive.log", '--db', $conn, '--storage', $storage, '--data-dir', "$dir/data",
	'--all-tables', '--listen', $listen, '--segment-age', '1s', '--table-poll-interval', '200ms');
END { kill 'KILL', $archiver if $archiver; }

for my $t (qw(public.meas_a public.meas_b public.meas_c public.readings))
{
	ok(checkpoint_until($listen, $t, 90), "checkpoint of $t") or diag(slurp_file("$dir/archive.log"));
}

# Changes after the base copies, then the point P.
$node->safe_psql($db, q{
	UPDATE public.meas SET v = -v WHERE id IN (3, 103, 203);
	DELETE FROM public.meas WHERE id IN (4, 104, 204);
	INSERT INTO public.meas (id, v, region) VALUES (99, 990, 'us'), (199, 1990, 'us'), (299, 2990, 'us');
});
for my $t (qw(public.meas_a public.meas_b public.meas_c))
{
	ok(checkpoint_until($listen, $t, 90), "checkpoint of $t after the changes");
}
my $point = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');
my %want;
sub rows_of
{
	my ($table) = @_;
	return $node->safe_psql($db, "SELECT md5(coalesce(string_agg(ROW(id, region, v)::text, ',' ORDER BY id), '')) FROM $table");
}
$want{$_} = rows_of("public.$_") for qw(meas meas_a meas_b meas_c);
my %bound = map { $_ => $node->safe_psql($db, "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE oid = 'public.$_'::regclass") }
	qw(meas_a meas_b meas_c);

# After P: rows move from meas_a to meas_b, meas_c is detached (and keeps changing as a table
# of its own), meas_b is dropped.
$node->safe_psql($db, q{UPDATE public.meas SET id = id + 180 WHERE id BETWEEN 10 AND 18});
my $detach_xid = $node->safe_psql($db, q{BEGIN; INSERT INTO public.meas (id, v) VALUES (95, 7);
	ALTER TABLE public.meas DETACH PARTITION public.meas_c; SELECT txid_current(); COMMIT;});
my $detach_lsn = $node->safe_psql($db, 'SELECT pg_current_wal_lsn()');
$node->safe_psql($db, q{INSERT INTO public.meas_c (id, v) VALUES (250000, 1)});
$node->safe_psql($db, q{DELETE FROM public.readings WHERE meas_id >= 100; ALTER TABLE public.meas DETACH PARTITION public.meas_b; DROP TABLE public.meas_b});
ok(checkpoint_until($listen, 'public.meas_a', 90), 'checkpoint of meas_a after the moves');
ok(wait_for('the drop of meas_b archived', sub {
	my ($rc, $out) = run_backstop('info', '--storage', $storage, '--table', 'public.meas_b');
	return $rc == 0 && $out =~ /dropped/ }, 90), 'meas_b is dropped in the archive') or diag(slurp_file("$dir/archive.log"));
ok(wait_for('meas_c re-based after its DETACH', sub {
	my ($r, $o, $e) = run_backstop('recover', '--storage', $storage, '--table', 'public.meas_c', '--latest', '--dry-run');
	return $r == 0 }, 120), 'the DETACH asked meas_c for a new base copy, and it was taken')
	or diag(slurp_file("$dir/archive.log"));
like(slurp_file("$dir/archive.log"), qr/table public\.meas_c: its partitioned table public\.meas changed at/,
	'the archiver says why meas_c is copied again');

# The whole at P.
my ($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.meas',
	'--to-lsn', $point);
is($rc, 0, 'recover of the partitioned table at P') or diag("$out\n$err");
like($out, qr/Recovered public\.meas \(partitioned\) into public\.meas_recovered, PARTITION BY RANGE \(id\)/,
	'the output names the key');
is($node->safe_psql($db, q{SELECT pg_get_partkeydef('public.meas_recovered'::regclass)}), 'RANGE (id)',
	'the recovered parent is partitioned by the same key');
is(rows_of('public.meas_recovered'), $want{meas}, 'the whole table exactly as at P');
for my $p (qw(meas_a meas_b meas_c))
{
	my $r = "public.meas_recovered_$p";
	is(rows_of($r), $want{$p}, "partition $p exactly as at P");
	is($node->safe_psql($db, "SELECT i.inhparent::regclass || ' ' || pg_get_expr(c.relpartbound, c.oid) "
		. "FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid WHERE c.oid = '$r'::regclass"),
		"meas_recovered $bound{$p}", "partition $p attached with its bound");
	like($out, qr/public\.$p -> \Q$r\E \Q$bound{$p}\E: \d+ rows, checksum (\S+) \(Backstop\) = \1 \(PostgreSQL\)/,
		"partition $p validated");
}
is($node->safe_psql($db, q{SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.meas_recovered'::regclass}), '3',
	'three partitions, as at P');
is($node->safe_psql($db, q{INSERT INTO public.meas_recovered (id, v) VALUES (0, 1) RETURNING region}), 'eu',
	'the parent has its column default');
like($out, qr/-- foreign key "readings_meas_id_fkey" of public\.readings into the recovered table\n\QALTER TABLE "public"."readings" ADD CONSTRAINT "readings_meas_id_fkey" FOREIGN KEY (meas_id) REFERENCES meas(id);\E/,
	'the foreign key of another table into it is printed');
like($out, qr/\nCREATE TRIGGER meas_b_touch BEFORE UPDATE ON public\.meas_b FOR EACH ROW EXECUTE FUNCTION meas_touch\(\);/,
	'the trigger is printed');
like($out, qr/\nALTER TABLE "public"\."meas_a" ENABLE ROW LEVEL SECURITY;\n/, 'row level security is printed');
like($out, qr/\nCREATE POLICY "meas_a_positive" ON "public"\."meas_a" AS PERMISSIVE FOR SELECT TO PUBLIC USING \(\(v >= 0\)\);/,
	'the policy is printed');
like($out, qr/\nALTER PUBLICATION "meas_pub" ADD TABLE "public"\."meas_c";/, 'the publication membership is printed');
unlike($out, qr/ALTER PUBLICATION "backstop"/, "the archiver's own publication is not");
like($out, qr/the table exists: its rows are replaced/, 'the live table exists: a row copy-back');

# The point of the DETACH's own transaction: meas_c's base copy before it does not tell the
# membership there (its new base copy comes after the commit): refused.
{
	my ($r2, $o2, $e2) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.meas',
		'--to-xid', $detach_xid, '--into', 'public.meas_at_detach');
	is($r2, 1, 'the point of the DETACH is refused') or diag("$o2\n$e2");
	like($e2, qr/cannot be recovered as a whole at commits through transaction $detach_xid: the partitions of public\.meas changed at LSN \S+ \(ATTACH or DETACH PARTITION.*after the base copy of public\.meas_\w at/,
		'naming the membership change and a partition') or diag($e2);
	is($node->safe_psql($db, q{SELECT count(*) FROM pg_class WHERE relname LIKE 'meas_at_detach%'}), '0', 'nothing is left behind');
}

# A point just after the DETACH: meas_c is not part of the whole there.  Its new base copy may
# come before or after that point: the recovery is either refused (the re-base window) or
# exact without meas_c, never the old membership.
{
	my ($r2, $o2, $e2) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.meas',
		'--to-lsn', $detach_lsn, '--into', 'public.meas_detached');
	if ($r2 == 0)
	{
		is($node->safe_psql($db, q{SELECT string_agg(inhrelid::regclass::text, ',' ORDER BY inhrelid::regclass::text)
			FROM pg_inherits WHERE inhparent = 'public.meas_detached'::regclass}), 'meas_detached_meas_a,meas_detached_meas_b',
			'after the DETACH: meas_c is not in the whole');
		$node->safe_psql($db, 'DROP TABLE public.meas_detached');
	}
	else
	{
		# Every partition is re-based after the DETACH: the one named is whichever copy is not
		# taken yet at the point.
		like($e2, qr/cannot be recovered as a whole at .*: the partitions of public\.meas changed at LSN .*after the base copy of public\.meas_[abc] /,
			'after the DETACH: refused, the membership changed after a partition\'s base copy')
			or diag("$o2\n$e2");
	}
}

# A point before the partitions' base copies: the whole is refused, naming the partition.
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.meas',
	'--to-lsn', '0/1', '--into', 'public.meas_early');
is($rc, 1, 'a point no partition can be recovered at is refused');
like($err, qr/public\.meas cannot be recovered as a whole: its partition public\.meas_\w \(relid \d+\) cannot be recovered at the point: .*outside the recovery window/,
	'naming the partition and why') or diag($err);
is($node->safe_psql($db, q{SELECT count(*) FROM pg_class WHERE relname LIKE 'meas_early%'}), '0', 'nothing is left behind');

# --dry-run --json lists the partitions of the point.
($rc, $out, $err) = run_backstop('recover', '--storage', $storage, '--table', 'public.meas', '--to-lsn', $point,
	'--dry-run', '--json');
is($rc, 0, 'dry run of the whole') or diag($err);
{
	my $j = JSON::PP::decode_json($out);
	is(join(',', map { "$_->{partition}=$_->{bound}" } @{ $j->{partitions} }),
		join(',', map { "public.$_=$bound{$_}" } qw(meas_a meas_b meas_c)), 'dry run: the partitions and bounds of the point');
}

# A partition recovered alone: its attachment is printed for after the copy-back.
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.meas_a',
	'--to-lsn', $point, '--into', 'public.meas_a_alone');
is($rc, 0, 'a partition recovered alone') or diag("$out\n$err");
like($out, qr/-- attachment of public\.meas_a to its partitioned table public\.meas\n\QALTER TABLE "public"."meas" ATTACH PARTITION "public"."meas_a" FOR VALUES FROM (0) TO (100);\E/,
	'its attachment to the parent is printed');
is(rows_of('public.meas_a_alone'), $want{meas_a}, 'the partition alone, exactly as at P');
$node->safe_psql($db, 'DROP TABLE public.meas_a_alone');

# An archive whose definitions predate the "partition" member (a copy with it taken out) still
# reads, and recovery of the whole is refused with a message saying why.
{
	my $old = "$dir/old-archive";
	(my $src = $storage) =~ s{^file://}{};
	system('cp', '-a', $src, $old) == 0 or die "cp: $?";
	for my $f (glob("$old/tables/*/manifest.json"))
	{
		my $m = JSON::PP::decode_json(slurp_file($f));
		for my $b (@{ $m->{bases} })
		{
			delete $b->{definition}{partition} if ref $b->{definition};
		}
		open(my $fh, '>', $f) or die "$f: $!";
		print $fh JSON::PP->new->canonical->encode($m);
		close $fh;
	}
	my ($r3, $o3, $e3) = run_backstop('recover', '--storage', "file://$old", '--table', 'public.meas', '--to-lsn', $point,
		'--dry-run');
	is($r3, 1, 'definitions without partitions: the whole is refused') or diag("$o3\n$e3");
	like($e3, qr/public\.meas cannot be recovered as a whole: the definition of table .* was captured by a Backstop that did not record partitions/,
		'saying the definitions predate partitions') or diag($e3);
	($r3, $o3, $e3) = run_backstop('recover', '--storage', "file://$old", '--table', 'public.meas_a', '--to-lsn', $point,
		'--dry-run');
	is($r3, 0, 'definitions without partitions: a partition alone still recovers') or diag("$o3\n$e3");
}

# The latest point: meas_c is no partition any more, meas_b is gone.
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.meas',
	'--latest', '--into', 'public.meas_now');
is($rc, 0, 'recover of the partitioned table at the latest point') or diag("$out\n$err");
is($node->safe_psql($db, q{SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
	WHERE i.inhparent = 'public.meas_now'::regclass}), 'meas_now_meas_a', 'latest: meas_a alone (meas_c detached, meas_b dropped)');
is(rows_of('public.meas_now'), rows_of('public.meas'), 'latest: exactly the live table');

# The table is gone: the printed copy-back renames the hierarchy into place, and the SQL for
# after it gives back the foreign key, trigger, policy and publication.
$node->safe_psql($db, q{DROP TABLE public.meas CASCADE; DROP TABLE public.meas_c; DROP TABLE public.meas_recovered; DROP TABLE public.meas_now});
ok(wait_for('the drops archived', sub {
	my ($r, $o) = run_backstop('info', '--storage', $storage, '--table', 'public.meas_a');
	return $r == 0 && $o =~ /dropped/ }, 90), 'meas_a is dropped in the archive') or diag(slurp_file("$dir/archive.log"));
($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', $storage, '--table', 'public.meas',
	'--to-lsn', $point);
is($rc, 0, 'recover at P once the table is gone') or diag("$out\n$err");
like($out, qr/the table is gone: the recovered hierarchy takes its names/, 'a rename copy-back');
my ($copyback) = $out =~ /^(BEGIN;\n.*?\nCOMMIT;)$/ms;
ok(defined $copyback, 'the copy-back is printed') or diag($out);
$node->safe_psql($db, $copyback);
my ($after) = $out =~ /what the recovered tables cannot hold\n(.*?)(?:\nNotes:|\z)/s;
$node->safe_psql($db, $after);
is(rows_of('public.meas'), $want{meas}, 'after the copy-back: the table is back as at P');
is($node->safe_psql($db, q{SELECT string_agg(c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid), '; ' ORDER BY c.relname)
	FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'public.meas'::regclass}),
	"meas_a $bound{meas_a}; meas_b $bound{meas_b}; meas_c $bound{meas_c}", 'the hierarchy under its names, with its bounds');
is($node->safe_psql($db, q{SELECT obj_description('public.meas'::regclass, 'pg_class') IS NULL}), 't',
	'the recovery mark is gone');
my ($frc, $fout, $ferr) = $node->psql($db, q{INSERT INTO public.readings VALUES (9, 12345)});
isnt($frc, 0, 'the foreign key into the table works again');
like($ferr, qr/violates foreign key constraint "readings_meas_id_fkey"/, 'named as it was');
is($node->safe_psql($db, q{UPDATE public.meas SET v = 0 WHERE id = 150 RETURNING v}), '1', 'the trigger works again');
is($node->safe_psql($db, q{SELECT polname FROM pg_policy WHERE polrelid = 'public.meas_a'::regclass}), 'meas_a_positive',
	'the policy is back');
is($node->safe_psql($db, q{SELECT string_agg(tablename, ',') FROM pg_publication_tables WHERE pubname = 'meas_pub'}), 'meas_c',
	'the publication membership is back');

kill 'TERM', $archiver;
waitpid($archiver, 0);
is($? >> 8, 0, 'archiver stopped cleanly');
$archiver = undef;
done_testing();
