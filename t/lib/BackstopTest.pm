# BackstopTest.pm — helpers for Backstop's integration tests (binary, PostgreSQL nodes, checksums).

=pod

=head1 NAME

BackstopTest - helpers for Backstop's Perl integration tests

=head1 SYNOPSIS

  use PostgreSQL::Test::Utils;
  use Test::More;
  use BackstopTest;

  my ($rc, $out, $err) = run_backstop('config', '--data-dir', scratch_dir('cfg'));
  my $node = new_pg_node('main');
  my $sum = content_checksum($node, 'postgres', 'public.t');   # "count:sum"

=head1 DESCRIPTION

Tests are started by F<t/run-tests> (C<make check>), which sets C<BACKSTOP_BUILDDIR>,
C<BACKSTOP_SRCDIR>, C<PG_REGRESS>, C<TESTDIR>, C<PERL5LIB> and C<PATH> (PostgreSQL's bindir
first) and runs the tests as an unprivileged user.

Loading this module makes the environment hermetic for the C<backstop> binary: every
C<BACKSTOP_*> configuration variable and C<AWS_*> variable inherited from the caller is
removed (the harness's own C<BACKSTOP_BUILDDIR>, C<BACKSTOP_SRCDIR>, C<BACKSTOP_ALLOW_SKIP>,
C<BACKSTOP_TEST_*>, C<BACKSTOP_CHAOS_*> (t/080's seed and sizes) and C<BACKSTOP_REEXEC> stay), and C<BACKSTOP_CONFIG> points at an empty
file so that a machine-wide F</etc/backstop/backstop.conf> cannot change the results.

Integration tests must never skip silently in CI.  When PostgreSQL (or s3rver) cannot be
started, L</require_or_skip> fails the test (BAIL_OUT), unless C<BACKSTOP_ALLOW_SKIP=1> is set,
which turns it into a skip for developer machines.

=head1 FUNCTIONS

=over

=cut

package BackstopTest;

use strict;
use warnings;

use Carp;
use Exporter 'import';
use File::Copy ();
use File::Find ();
use File::Path qw(mkpath rmtree);
use IPC::Run;
use POSIX ();
use Time::HiRes ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(
  backstop_bin
  run_backstop
  new_pg_node
  pg_major
  pg_install_path
  node_connstr
  node_uri
  content_checksum
  content_checksum_sql
  state_of
  scratch_dir
  copy_tree
  require_or_skip
  s3_helper_available
  wait_for
  archiver_checkpoint
  checkpoint_until
  spawn_archiver
  proc_status
  asan_build
  kill_at_exit
  $REPLICATION_ROLE
);

# The role created by new_pg_node() for replication connections.
our $REPLICATION_ROLE = 'backstop_repl';

# Harness variables that are not Backstop configuration options.
my %harness_var = map { $_ => 1 }
  qw(BACKSTOP_BUILDDIR BACKSTOP_SRCDIR BACKSTOP_ALLOW_SKIP BACKSTOP_REEXEC);
# (BACKSTOP_TEST_*, e.g. BACKSTOP_TEST_PG_MAJOR, stay too.)

BEGIN
{
	croak "BACKSTOP_BUILDDIR is not set: run the tests through t/run-tests (make check)"
	  unless $ENV{BACKSTOP_BUILDDIR};
}

# Hermetic environment (see DESCRIPTION).  The empty configuration file lives in the
# scratch directory PostgreSQL::Test::Utils uses ($TESTDIR/tmp_check).
{
	for my $name (keys %ENV)
	{
		next if $harness_var{$name} || $name =~ /^BACKSTOP_(?:TEST|CHAOS)_/;
		delete $ENV{$name} if $name =~ /^BACKSTOP_/ || $name =~ /^AWS_/;
	}
	my $dir = ($ENV{TESTDIR} // '.') . '/tmp_check';
	mkpath($dir) unless -d $dir;
	my $empty = "$dir/empty.conf";
	open my $fh, '>', $empty or croak "could not create $empty: $!";
	close $fh;
	$ENV{BACKSTOP_CONFIG} = $empty;
}

=item backstop_bin()

Absolute path of the C<backstop> binary under test.

=cut

sub backstop_bin
{
	my $bin = "$ENV{BACKSTOP_BUILDDIR}/backstop";
	croak "$bin is not executable (build first)" unless -x $bin;
	return $bin;
}

=item run_backstop([\%opts,] @args)

Runs C<backstop @args> and returns C<(exit code, stdout, stderr)>.  A signal death is
reported as exit code C<128 + signal>.  Options: C<env> (hashref; a value of C<undef>
removes the variable), C<stdin> (string), C<timeout> (seconds, default
C<$PostgreSQL::Test::Utils::timeout_default>).

=cut

sub run_backstop
{
	my %opts = ref $_[0] eq 'HASH' ? %{ shift @_ } : ();
	my @cmd  = (backstop_bin(), @_);
	my ($in, $out, $err) = ($opts{stdin} // '', '', '');
	my $timeout = $opts{timeout} // $PostgreSQL::Test::Utils::timeout_default;

	local %ENV = %ENV;
	while (my ($k, $v) = each %{ $opts{env} // {} })
	{
		if (defined $v) { $ENV{$k} = $v; }
		else            { delete $ENV{$k}; }
	}
	my $h = IPC::Run::start(\@cmd, '<', \$in, '>', \$out, '2>', \$err,
		IPC::Run::timeout($timeout));
	eval { $h->finish; };
	if ($@)
	{
		$h->kill_kill;
		croak "backstop @_ timed out after ${timeout}s: $@";
	}
	my $status = $h->full_result(0);
	my $rc = ($status & 127) ? 128 + ($status & 127) : $status >> 8;
	note("backstop @_ => exit $rc");
	return ($rc, $out, $err);
}

=item require_or_skip($what, $ok, $detail)

If C<$ok> is false, BAIL_OUT naming C<$what> and C<$detail> — or, with
C<BACKSTOP_ALLOW_SKIP=1>, C<plan skip_all>.  Never skips silently in CI.

=cut

sub require_or_skip
{
	my ($what, $ok, $detail) = @_;
	return 1 if $ok;
	my $msg = "$what is not available" . (defined $detail ? ": $detail" : '');
	if (($ENV{BACKSTOP_ALLOW_SKIP} // '') eq '1')
	{
		plan skip_all => "$msg (BACKSTOP_ALLOW_SKIP=1)";
	}
	BAIL_OUT("$msg (set BACKSTOP_ALLOW_SKIP=1 to skip on a developer machine)");
}

=item pg_major()

The PostgreSQL major the tests' servers run: C<BACKSTOP_TEST_PG_MAJOR>, or 15 (Debian's, from
C<PG_BINDIR>) when it is not set.  Other majors come from npm (F<package.json>: C<pg14>,
C<pg16>, ...; C<t/tools/pg-majors> lists them); C<make check-versions> runs the core tests on
each.

=cut

sub pg_major
{
	my $m = $ENV{BACKSTOP_TEST_PG_MAJOR} // '';
	return 15 if $m eq '';
	croak "BACKSTOP_TEST_PG_MAJOR must be a major version number such as 17, not \"$m\""
	  unless $m =~ /^\d+$/;
	return $m + 0;
}

my $install_path;

=item pg_install_path()

C<undef> for Debian's PostgreSQL 15.  For another major, the C<install_path> given to
C<PostgreSQL::Test::Cluster>: a directory made once per run under the scratch directory whose
F<bin/> holds that major's C<initdb>, C<pg_ctl> and C<postgres> (links into
F<node_modules/pgNN/native>) and, for every other program in C<PG_BINDIR> (C<psql>, C<pg_dump>,
...), a wrapper that runs Debian's 15 without the server's libraries; F<lib/> is the server's
libraries (the cluster module sets C<LD_LIBRARY_PATH> to it for the commands it runs); a
F<bin/pg_config> answers C<--version> for the cluster module.  The clients stay 15: libpq 15
talks to every server major, but C<pg_dump> 15 refuses a newer server, so tests that need it
must skip on newer majors (none does today).

=cut

sub pg_install_path
{
	my $major = pg_major();
	return undef if $major == 15;
	return $install_path if defined $install_path;

	my $native = "$ENV{BACKSTOP_SRCDIR}/node_modules/pg$major/native";
	require_or_skip("PostgreSQL $major", -x "$native/bin/postgres",
		"$native/bin/postgres is missing (contrib/setup installs it with npm ci)");
	my $pg_bindir = $ENV{PG_BINDIR} // '/usr/lib/postgresql/15/bin';
	my $dir = ($ENV{TESTDIR} // '.') . "/tmp_check/pg$major";
	my $tmp = "$dir.tmp.$$";
	rmtree($tmp);
	mkpath("$tmp/bin");
	my $ok = symlink("$native/lib", "$tmp/lib");
	for my $prog (qw(initdb pg_ctl postgres))
	{
		$ok &&= symlink("$native/bin/$prog", "$tmp/bin/$prog");
	}
	croak "could not create $tmp: $!" unless $ok;
	my $version = `LD_LIBRARY_PATH='$native/lib' '$native/bin/postgres' --version`;
	croak "PostgreSQL $major from $native does not run: $version"
	  unless defined $version && $version =~ /\) (\Q$major\E\.\d+)/;
	my $full = $1;
	my $write = sub {
		my ($name, $text) = @_;
		open my $fh, '>', "$tmp/bin/$name" or croak "could not create $tmp/bin/$name: $!";
		print $fh $text;
		close $fh or croak "could not write $tmp/bin/$name: $!";
		chmod 0755, "$tmp/bin/$name" or croak "chmod $tmp/bin/$name: $!";
	};
	$write->('pg_config', <<"EOS");
#!/bin/sh
# pg_config for PostgreSQL $major from npm (it ships none): what PostgreSQL::Test::Cluster asks.
case "\$1" in
	--version) echo "PostgreSQL $full" ;;
	--bindir) echo "$native/bin" ;;
	--libdir) echo "$native/lib" ;;
	--pkglibdir) echo "$native/lib/postgresql" ;;
	--sharedir) echo "$native/share/postgresql" ;;
	*) echo "pg_config: \$1 is not known for PostgreSQL $major from npm" >&2; exit 1 ;;
esac
EOS
	opendir my $dh, $pg_bindir or croak "could not read $pg_bindir: $!";
	for my $prog (sort readdir $dh)
	{
		next if $prog =~ /^\./ || -e "$tmp/bin/$prog" || !-x "$pg_bindir/$prog";
		$write->($prog, "#!/bin/sh\nunset LD_LIBRARY_PATH\nexec '$pg_bindir/$prog' \"\$@\"\n");
	}
	closedir $dh;
	rmtree($dir);
	rename($tmp, $dir) or croak "could not rename $tmp to $dir: $!";
	$install_path = $dir;
	return $dir;
}

=item new_pg_node($name, %params)

Creates, configures and starts a C<PostgreSQL::Test::Cluster> with C<wal_level=logical>,
C<max_replication_slots=20>, C<max_wal_senders=20>, C<max_connections=40> and the role
C<$REPLICATION_ROLE> (LOGIN REPLICATION, member of pg_read_all_data), running the major
L</pg_major> selects.  C<%params> may carry
C<extra_conf> (text appended to postgresql.conf).  Failure to start is fatal unless
C<BACKSTOP_ALLOW_SKIP=1> (see L</require_or_skip>).

=cut

sub new_pg_node
{
	my ($name, %params) = @_;
	my $node;
	my $inst = pg_install_path();
	my $initdb = defined $inst || grep { -x "$_/initdb" } split /:/, $ENV{PATH};
	require_or_skip("PostgreSQL", $initdb, "initdb is not on PATH");
	my $ok = eval {
		$node = PostgreSQL::Test::Cluster->new($name,
			defined $inst ? (install_path => $inst) : ());
		$node->init(allows_streaming => 'logical');
		$node->append_conf('postgresql.conf', <<'EOC');
# Added by BackstopTest.pm: room for several archivers and test connections.
max_replication_slots = 20
max_wal_senders = 20
max_connections = 40
shared_buffers = 16MB
wal_sender_timeout = 60s
EOC
		$node->append_conf('postgresql.conf', $params{extra_conf})
		  if defined $params{extra_conf};
		$node->start(fail_ok => 1) or die "server did not start\n";
		my $num = $node->safe_psql('postgres', 'SHOW server_version_num');
		die "server is version $num, not PostgreSQL " . pg_major() . "\n"
		  unless int($num / 10000) == pg_major();
		$node->safe_psql('postgres',
			"CREATE ROLE $REPLICATION_ROLE LOGIN REPLICATION; "
			  . "GRANT pg_read_all_data TO $REPLICATION_ROLE;");
		1;
	};
	require_or_skip("PostgreSQL", $ok, $@ || 'unknown error');
	return $node;
}

=item node_connstr($node, $db [, $user])

libpq keyword/value connection string for C<$db> on C<$node> (Unix socket; trust
authentication), optionally as C<$user>.

=cut

sub node_connstr
{
	my ($node, $db, $user) = @_;
	my $s = $node->connstr($db // 'postgres');
	$s .= " user=$user" if defined $user;
	return $s;
}

=item node_uri($node, $db [, $user])

The same as a C<postgresql://> URI (the socket directory goes in the C<host> parameter).

=cut

sub node_uri
{
	my ($node, $db, $user) = @_;
	my $esc = sub {
		my $s = shift;
		$s =~ s/([^A-Za-z0-9._~-])/sprintf('%%%02X', ord $1)/ge;
		return $s;
	};
	my $uri = 'postgresql://' . (defined $user ? $esc->($user) . '@' : '')
	  . '/' . $esc->($db // 'postgres')
	  . '?host=' . $esc->($node->host) . '&port=' . $node->port;
	return $uri;
}

=item content_checksum_sql($table)

=item content_checksum($node, $db, $table)

The content checksum of a table, as C<"count:sum">.  This exact definition is also what
C<backstop recover> computes to validate a recovered table, so tests can compare a live
table with its recovery:

  SELECT count(*),
         coalesce(sum(('x' || substr(md5(ROW(t.*)::text), 1, 16))::bit(64)::bigint::numeric), 0)
  FROM <table> t

Each row's text form (the composite output of the whole row, columns in table order;
C<ROW(t.*)> rather than C<t> so that a column named C<t> cannot stand in for the row) is
hashed with MD5; its first 64 bits are taken as a signed bigint and summed as numeric, which
cannot overflow and does not depend on row order.  Two tables compare equal when they hold
the same multiset of rows with the same column order and types.

A row's text form depends on some session settings, so the checksum is computed with them
pinned (recovery must pin the same ones): C<TimeZone='UTC'>, C<DateStyle='ISO, YMD'>,
C<IntervalStyle='postgres'>, C<extra_float_digits=1>, C<bytea_output='hex'>.

C<$table> is inserted into the SQL as written (e.g. C<public.t>, or C<"My Schema"."T">).

=cut

my $checksum_settings =
  "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; "
  . "SET extra_float_digits = 1; SET bytea_output = 'hex';";

sub content_checksum_sql
{
	my ($table) = @_;
	return "SELECT count(*), coalesce(sum(('x'||substr(md5(ROW(t.*)::text),1,16))::bit(64)::bigint::numeric),0) "
	  . "FROM $table t";
}

sub content_checksum
{
	my ($node, $db, $table) = @_;
	my $res = $node->safe_psql($db, $checksum_settings . ' ' . content_checksum_sql($table));
	my ($count, $sum) = split /\|/, $res;
	croak "unexpected checksum result \"$res\" for $table" unless defined $sum;
	return "$count:$sum";
}

=item state_of($node, $db, $table)

A table's columns in table order, each with its type (C<format_type>, so a retyped column or
a new typmod differs), and its content checksum (C<content_checksum>), as one string: equal
for a live table and its recovery when both hold the same columns and rows.

=cut

sub state_of
{
	my ($node, $db, $table) = @_;
	my $cols = $node->safe_psql($db, "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' "
		  . "ORDER BY attnum) FROM pg_attribute WHERE attrelid = '$table'::regclass AND attnum > 0 AND NOT attisdropped");
	return "$cols | " . content_checksum($node, $db, $table);
}

=item scratch_dir($name)

A fresh, empty directory under the test scratch area (removed after a passing run).

=cut

sub scratch_dir
{
	my ($name) = @_;
	$name //= 'scratch';
	croak "invalid scratch name \"$name\"" unless $name =~ /^[A-Za-z0-9_.-]+$/;
	return PostgreSQL::Test::Utils::tempdir($name);
}

=item copy_tree($from, $to)

Copies the directory C<$from> (a C<file://> archive, say) with everything below it to C<$to>,
created as needed; dies on a failed copy.

=cut

sub copy_tree
{
	my ($from, $to) = @_;
	File::Find::find({ no_chdir => 1, wanted => sub {
		(my $rel = $File::Find::name) =~ s/^\Q$from\E//;
		# A storage's temporary file (a put in progress, renamed into place) is never copied.
		return if m{/\.bs-tmp-[^/]*$};
		if (-d $_) { mkpath("$to$rel"); }
		else { File::Copy::copy($_, "$to$rel") or die "copy $_: $!"; }
	} }, $from);
	return;
}

=item wait_for($what, $cond [, $timeout])

Polls C<$cond> every 0.2 s until it returns true (returns 1) or C<$timeout> seconds (default
60) pass (returns 0, with a C<diag> naming C<$what>).

=cut

sub wait_for
{
	my ($what, $cond, $timeout) = @_;
	my $deadline = Time::HiRes::time() + ($timeout // 60);
	while (Time::HiRes::time() < $deadline)
	{
		return 1 if $cond->();
		Time::HiRes::sleep(0.2);
	}
	Test::More::diag("timed out waiting for $what");
	return 0;
}

=item kill_at_exit($harness)

Registers an C<IPC::Run> harness (a background archiver) to be killed when the test script
exits, also when it dies half-way, so that no daemon outlives its test.  Returns the harness.

=cut

my @background;

sub kill_at_exit
{
	my ($h) = @_;
	push @background, $h;
	return $h;
}

END
{
	for my $h (@background)
	{
		eval { $h->kill_kill(grace => 2) if $h->pumpable; 1 };
	}
}

=item archiver_checkpoint($listen, $table [, $timeout])

Runs C<backstop checkpoint --table $table --listen $listen --json> (daemon-side timeout
C<$timeout>, default C<60s>) and returns C<(exit code, stdout, stderr)>.

=cut

sub archiver_checkpoint
{
	my ($listen, $table, $timeout) = @_;
	return run_backstop('checkpoint', '--table', $table, '--listen', $listen, '--json',
		'--timeout', $timeout // '60s');
}

=item s3_helper_available()

True when F<t/lib/BackstopS3.pm> (s3rver and the fault proxy) exists and loads.

=cut

sub s3_helper_available
{
	return eval { require BackstopS3; 1 } ? 1 : 0;
}

=item checkpoint_until($listen, $table, $seconds)

Retries C<archiver_checkpoint> (daemon-side timeout 120 s) until one succeeds or
C<$seconds> have passed: the daemon answers 504 after its own timeout while it is still
receiving a big transaction.  Returns C<(0, stdout)> or C<(exit code, stdout and stderr)>.

=cut

sub checkpoint_until
{
	my ($listen, $table, $seconds) = @_;
	my $deadline = Time::HiRes::time() + $seconds;
	my ($rc, $out, $err) = (1, '', 'never tried');
	while (Time::HiRes::time() < $deadline)
	{
		($rc, $out, $err) = archiver_checkpoint($listen, $table, '120s');
		return (0, $out) if $rc == 0;
		Time::HiRes::sleep(0.5);
	}
	return ($rc, "$out\n$err");
}

=item spawn_archiver([\%opts,] $log, @args)

Forks C<backstop archive @args> with stdout and stderr appended to C<$log> and returns its
PID (for tests that read F</proc/PID> or send it signals themselves).  Options: C<wrapper>
(arrayref: a command that execs the rest, e.g. C<['prlimit', '--nofile=64']>; the PID is
the archiver's once the wrapper has exec'ed it).

=cut

sub spawn_archiver
{
	my %opts = ref $_[0] eq 'HASH' ? %{ shift @_ } : ();
	my ($log, @args) = @_;
	my $pid = fork;
	croak "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null') or POSIX::_exit(127);
		open(STDOUT, '>>', $log) or POSIX::_exit(127);
		open(STDERR, '>&', \*STDOUT) or POSIX::_exit(127);
		exec(@{ $opts{wrapper} // [] }, backstop_bin(), 'archive', @args) or POSIX::_exit(127);
	}
	return $pid;
}

=item proc_status($pid, $field)

A memory field of F</proc/PID/status> (e.g. C<VmHWM>, C<VmRSS>) in bytes, or undef.

=cut

sub proc_status
{
	my ($pid, $field) = @_;
	open(my $fh, '<', "/proc/$pid/status") or return undef;
	while (<$fh>)
	{
		return $1 * 1024 if /^\Q$field\E:\s+(\d+) kB/;
	}
	return undef;
}

=item asan_build()

True for a C<--enable-sanitizers> build, whose memory use says nothing about Backstop's.

=cut

sub asan_build
{
	open(my $fh, '<:raw', backstop_bin()) or return 0;
	local $/;
	my $bin = <$fh>;
	return index($bin, '__asan_init') >= 0;
}

=back

=cut

1;
