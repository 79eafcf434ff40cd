# 086_recover_volatile_default.t — ALTER TABLE ... ADD COLUMN with a volatile default
# (gen_random_uuid(), a serial's nextval) rewrites the table: every existing row gets its own
# value, PostgreSQL stores no missing value, and the stream carries none of it.  Rows from a base
# copy older than the change cannot be given theirs: the archiver marks the column in the layout
# (missing_unknown) and recovery refuses the points between the change and the next base copy
# (exit 3), naming the column, the change's LSN and the base copy from which points are exact.
# Points before the change and from the new base copy on recover exactly.
#
# Both ways a change reaches the archive: captured in the stream (a superuser archiver, event
# triggers: table_rewrite then ddl_command_end) and not captured (--ddl-capture off: the Relation
# message of the next row change, the catalog telling whether the column has a default and no
# missing value; a long table-poll interval in the first run keeps the table check from seeing it
# first).
#
# The points in the window exist for certain: the archiver runs with the test hook
# BACKSTOP_TEST_BASE_COPY_LOCK (doc/HACKING.md) and the test holds the advisory lock that the
# re-base waits for until the archiver is stopped.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;
use BackstopArchiver;

my $db = 'postgres';

sub run_mode
{
	my ($mode, $lock_key) = @_;
	my $node = new_pg_node("vol_$mode");
	my $conn = node_connstr($node, $db);
	my $dir = scratch_dir("vol_$mode");
	my @extra = $mode eq 'weak' ? ('--ddl-capture', 'off', '--table-poll-interval', '1h') : ();
	my $arch = BackstopArchiver->new(dir => $dir, name => $mode, conn => $conn,
		args => [ '--tables', 'public.v_uuid,public.v_serial', @extra ]);
	my %p;

	my $lsn = sub { return $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()') };
	my $point = sub { my ($t, $name) = @_; $p{$t}{$name} = [ $lsn->(), content_checksum($node, $db, "public.$t") ] };
	my $manifest = sub {
		my ($t) = @_;
		my $relid = $node->safe_psql($db, "SELECT 'public.$t'::regclass::oid");
		my $f = "$dir/$mode/archive/tables/$relid/manifest.json";
		my $m = -f $f ? eval { decode_json(slurp_file($f)) } : undef;
		return $m // {};
	};

	$node->safe_psql($db, q{
		CREATE TABLE public.v_uuid (id int PRIMARY KEY, v text);
		INSERT INTO public.v_uuid SELECT g, 'v' || g FROM generate_series(1, 20) g;
		CREATE TABLE public.v_serial (id int PRIMARY KEY, v text);
		INSERT INTO public.v_serial SELECT g, 'v' || g FROM generate_series(1, 20) g;
	});
	$arch->start(BACKSTOP_TEST_BASE_COPY_LOCK => $lock_key);
	$arch->checkpoint_ok("public.$_", "$mode: start") for qw(v_uuid v_serial);
	ok($arch->log_has(qr/schema changes are NOT captured in the stream/), "$mode: the archiver runs without capture")
		if $mode eq 'weak';

	my $holder = $node->background_psql($db);
	$holder->query_safe("SELECT pg_advisory_lock($lock_key)");
	for my $t (qw(v_uuid v_serial))
	{
		$node->safe_psql($db, "UPDATE public.$t SET v = 'upd' WHERE id <= 3");
		$point->($t, 'before');
		# Without capture, the points after the table's last change before the schema change are
		# in the window of an unknown schema change: 'before' lies before that change.
		$node->safe_psql($db, "UPDATE public.$t SET v = 'last' WHERE id = 4");
	}
	my %add = (v_uuid => 'u uuid DEFAULT gen_random_uuid()', v_serial => 'n serial');
	for my $t (qw(v_uuid v_serial))
	{
		if ($mode eq 'capture')
		{
			# The change alone (captured at its own LSN), then a row change after it.
			$node->safe_psql($db, "ALTER TABLE public.$t ADD COLUMN $add{$t}");
			$point->($t, 'ddl');
			$node->safe_psql($db, "INSERT INTO public.$t (id, v) VALUES (21, 'new')");
		}
		else
		{
			# Seen through the Relation message of the row change in the same transaction.
			$node->safe_psql($db, "BEGIN; ALTER TABLE public.$t ADD COLUMN $add{$t}; "
				  . "INSERT INTO public.$t (id, v) VALUES (21, 'new'); COMMIT;");
		}
		$node->safe_psql($db, "UPDATE public.$t SET v = 'win' WHERE id = 5");
		$point->($t, 'window');
	}
	for my $t (qw(v_uuid v_serial))
	{
		ok(wait_for("$mode $t: the re-base request stored", sub { defined $manifest->($t)->{rebase_requested_at} }),
			"$mode $t: the re-base request is stored") or diag($arch->log);
		my $col = $t eq 'v_uuid' ? 'u' : 'n';
		my @marked = map { $_->{name} } grep { $_->{missing_unknown} } map { @{ $_->{columns} } }
		  @{ $manifest->($t)->{layouts} // [] };
		is("@marked", $col, "$mode $t: the added column is marked missing_unknown in the manifest")
			or diag(encode_json($manifest->($t)));
	}
	# Without capture the first run makes no table check after its start (1 h): nothing takes
	# the copy, and the change cannot be seen by a check before its Relation message.
	ok(wait_for("$mode: the re-base held", sub { $node->safe_psql($db, qq{SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND classid = 0 AND objid = $lock_key AND NOT granted}) >= 1 }),
		"$mode: the re-base is running, held by the test") if $mode eq 'capture';
	$arch->stop("$mode: first run (re-base not taken)");
	$holder->query_safe("SELECT pg_advisory_unlock($lock_key)");
	$holder->quit;

	# The restart takes the requested copies.
	$arch->set_args('--tables', 'public.v_uuid,public.v_serial', $mode eq 'weak' ? ('--ddl-capture', 'off') : ());
	$arch->start;
	for my $t (qw(v_uuid v_serial))
	{
		ok(wait_for("$mode $t: the new base copy", sub { my $m = $manifest->($t);
			@{ $m->{bases} // [] } >= 2 && !defined $m->{rebase_requested_at} }),
			"$mode $t: the restart takes the new base copy") or diag($arch->log);
		$node->safe_psql($db, "UPDATE public.$t SET v = 'after' WHERE id = 6");
		# The point before the checkpoint: the checkpoint vouches for its own position, which
		# is not before it (WAL written after it need not reach the archive before the stop).
		$point->($t, 'after');
		$arch->checkpoint_ok("public.$t", "$mode: after the new base copy");
	}
	$arch->stop("$mode: second run");

	my $n = 0;
	for my $t (qw(v_uuid v_serial))
	{
		my $col = $t eq 'v_uuid' ? 'u' : 'n';
		my $base2 = $manifest->($t)->{bases}[1]{lsn};

		for my $name (qw(before after))
		{
			my ($rc, $out, $err) = $arch->recover($conn, "public.$t", "public.r_${t}_" . ++$n, '--to-lsn', $p{$t}{$name}[0]);
			is($rc, 0, "$mode $t: a point $name the window recovers") or diag("$out\n$err");
			is(content_checksum($node, $db, "public.r_${t}_$n"), $p{$t}{$name}[1], "$mode $t at $name: exactly");
		}
		for my $name (grep { $p{$t}{$_} } qw(ddl window))
		{
			my ($rc, $out, $err) = $arch->recover($conn, "public.$t", "public.r_${t}_" . ++$n, '--to-lsn', $p{$t}{$name}[0]);
			is($rc, 3, "$mode $t: a point in the window ($name) is refused (exit 3)")
				or diag("$out\n$err" . ($rc == 0 ? "\nrecovered: " . content_checksum($node, $db, "public.r_${t}_$n")
					. ", the source at the point: $p{$t}{$name}[1]" : ''));
			like($err, qr/column "$col" of public\.$t was added at LSN (\S+) with a value computed for each existing row .*choose a point before \1 or at or after the base copy at \Q$base2\E/,
				"$mode $t at $name: naming the column, the change and the base copy") or diag($err);
		}
		{
			# info shows the refused window, also once the new base copy closed it.
			my ($rc, $out, $err) = run_backstop('info', '--storage', $arch->storage, '--table', "public.$t");
			like($out, qr/refused: +\S+ \.\. \Q$base2\E \(column "$col" added with a per-row default\)/,
				"$mode $t: info shows the refused window") or diag("$out\n$err");
		}
		my ($rc, $out, $err) = $arch->recover($conn, "public.$t", "public.r_${t}_latest", '--latest');
		is($rc, 0, "$mode $t: --latest") or diag("$out\n$err");
		is(content_checksum($node, $db, "public.r_${t}_latest"), content_checksum($node, $db, "public.$t"),
			"$mode $t --latest: exactly");
	}
	my ($rc, $out, $err) = run_backstop('verify', '--storage', $arch->storage);
	is($rc, 0, "$mode: verify finds the archive clean") or diag("$out\n$err");
	$node->stop;
}

run_mode('capture', 86001);
run_mode('weak', 86002);

done_testing();
