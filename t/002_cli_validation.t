# 002_cli_validation.t — one validation for every command: a range per numeric option (flag,
# environment, file), malformed storage URLs, table names and other values exit 2 whatever the
# command (`config` included), --config naming a directory, names PostgreSQL would cut short,
# ranges documented, and secrets given as flags gone from the process list (/proc/PID/cmdline).
use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $dir = scratch_dir('validation');
my @base = ('--data-dir', "$dir/data");

sub write_file
{
	my ($name, $text) = @_;
	my $path = "$dir/$name";
	open my $fh, '>', $path or die "could not write $path: $!";
	print $fh $text;
	close $fh;
	return $path;
}

# A command refuses a value: exit 2, a message naming the option, nothing on stdout.
sub refused
{
	my ($what, $args, $re, $opts) = @_;
	my ($rc, $out, $err) = run_backstop($opts // {}, @$args);
	is($rc, 2, "$what: exit 2") or diag("stdout: $out\nstderr: $err");
	like($err, $re, "$what: message") if $re;
	is($out, '', "$what: nothing on stdout");
	return $err;
}

# --- a range per numeric option: zero, negative and out-of-range values -------------------
# [option, command that takes it, bad values..., the range the message states]
my @ranges = (
	[ 'compression-level',         'archive',    [ '99', '-1', '23' ],        'between 0 and 22' ],
	[ 'segment-compression-level', 'archive',    [ '23', '-3' ],              'between 0 and 22' ],
	[ 's3-multipart-threshold',    'info',       [ '0', '1MiB', '6GiB' ],     'between 5MiB and 5GiB' ],
	[ 's3-timeout',                'verify',     [ '0', '500ms', '2d' ],      'between 1s and 1d' ],
	[ 'retries',                   'changes',    [ '-1', '101' ],             'between 0 and 100' ],
	[ 'retry-base-delay',          'doctor',     [ '0', '21s' ],              'between 1ms and 20s' ],
	[ 'segment-size',              'archive',    [ '0', '63kB', '2GiB' ],     'between 64kB and 1GiB' ],
	[ 'segment-age',               'archive',    [ '0', '99ms', '2d' ],       'between 100ms and 1d' ],
	[ 'base-chunk-size',           'archive',    [ '0', '1kB', '2GiB' ],      'between 64kB and 1GiB' ],
	[ 'rebase-age',                'archive',    [ '0', '59s' ],              'between 1min and 3650d' ],
	[ 'rebase-ratio',              'archive',    [ '0', '-5', '1000001' ],    'between 1 and 1000000' ],
	[ 'rebase-min-interval',       'archive',    [ '3651d' ],                 'between 0 and 3650d' ],
	[ 'base-lock-timeout',         'archive',    [ '0', '2min' ],             'between 1ms and 1min' ],
	[ 'spool-limit',               'archive',    [ '0', '1kB' ],              'at least 64kB' ],
	[ 'open-memory-limit',         'archive',    [ '0', '512kB' ],            'at least 1MiB' ],
	[ 'status-interval',           'archive',    [ '0', '2h' ],               'between 100ms and 1h' ],
	[ 'table-poll-interval',       'archive',    [ '0', '50ms' ],             'between 100ms and 1d' ],
	[ 'timeout',                   'checkpoint', [ '0', '2d' ],               'between 100ms and 1d' ],
	[ 'stale-after',               'doctor',     [ '0', '999ms', '3651d' ],   'between 1s and 3650d' ],
	[ 'keep-window',               'expire',     [ '0', '36501d' ],           'between 1ms and 36500d' ],
	[ 'keep-bases',                'expire',     [ '0', '-1', '1000001' ],    'between 1 and 1000000' ],
	[ 'orphan-age',                'expire',     [ '3651d' ],                 'between 0 and 3650d' ],
	[ 'expire-interval',           'archive',    [ '3651d' ],                 'between 0 and 3650d' ]);
my %seen;
for my $r (@ranges)
{
	my ($opt, $cmd, $bad, $range) = @$r;
	(my $key = $opt) =~ tr/-/_/;
	$seen{$key} = $range;
	for my $v (@$bad)
	{
		refused("$cmd --$opt $v", [ $cmd, @base, "--$opt", $v ],
			qr/^backstop \Q$cmd\E: ERROR: option --\Q$opt\E: invalid value for \Q$key\E: "\Q$v\E" \(must be \Q$range\E\)$/m);
	}
	# `config` applies the same checks as the command that uses the value.
	if ($cmd ne 'checkpoint')
	{
		refused("config --$opt $bad->[0]", [ 'config', @base, "--$opt", $bad->[0] ],
			qr/invalid value for \Q$key\E: "\Q$bad->[0]\E" \(must be \Q$range\E\)/);
	}
	refused("BACKSTOP_\U$key\E=$bad->[0]", [ 'config', @base ],
		qr/BACKSTOP_\U$key\E: invalid value for \Q$key\E/, { env => { "BACKSTOP_\U$key" => $bad->[0] } });
	my $conf = write_file("$key.conf", "# range\n$key = $bad->[0]\n");
	refused("$key = $bad->[0] in the file", [ 'config', @base, '--config', $conf ],
		qr/\Q$conf\E:2: invalid value for \Q$key\E: "\Q$bad->[0]\E" \(must be \Q$range\E\)/);
}

# Every numeric option of every command has a range, shown by `backstop help` and documented
# the same way in doc/configuration.md and the man page.
my $confdoc = slurp_file("$ENV{BACKSTOP_SRCDIR}/doc/configuration.md");
my $man = slurp_file("$ENV{BACKSTOP_SRCDIR}/doc/backstop.1");
$man =~ s/\\f[BIRP]//g;
$man =~ s/\\-/-/g;
my %help_range;
for my $cmd (qw(archive recover changes info verify checkpoint doctor drill config))
{
	my (undef, $out) = run_backstop('help', $cmd);
	while ($out =~ /^  --([a-z0-9-]+)\s.*; (between \S+ and \S+|at least \S+)$/mg)
	{
		(my $key = $1) =~ tr/-/_/;
		$help_range{$key} = $2;
	}
}
for my $key (sort keys %seen)
{
	is($help_range{$key}, $seen{$key}, "backstop help shows the range of $key");
}
for my $key (sort keys %help_range)
{
	like($confdoc, qr/^\| `\Q$key\E` \|.*\Q$help_range{$key}\E/m, "configuration.md states the range of $key");
	(my $flag = $key) =~ tr/_/-/;
	like($man, qr/--\Q$flag\E.*\n(?:.*\n){0,6}?.*\Q$help_range{$key}\E/, "the man page states the range of --$flag");
}

# The bounds themselves are accepted.
my ($rc, $out, $err) = run_backstop('config', @base, '--segment-size', '64kB', '--segment-age', '100ms',
	'--rebase-min-interval', '0', '--retries', '0', '--spool-limit', '64kB', '--base-chunk-size', '1GiB',
	'--s3-multipart-threshold', '5MiB', '--compression-level', '22', '--rebase-ratio', '1000000');
is($rc, 0, 'values at the bounds accepted') or diag($err);
# A level is checked for the codec it is given to (lz4: 0..12), by config as by archive.
for my $cmd ('config', 'archive')
{
	refused("$cmd: lz4 with level 13", [ $cmd, @base, '--compression', 'lz4', '--compression-level', '13',
		($cmd eq 'archive' ? ('--db', 'dbname=x', '--all-tables') : ()) ],
		qr/option --compression-level: invalid value for compression_level: "13": lz4 compression level 13 is out of range \(0\.\.12\)/);
}

# --- malformed values exit 2 whatever the command ----------------------------------------
my @storage_cmds = (
	[ 'info' ], [ 'verify' ], [ 'doctor' ], [ 'config' ], [ 'drill', '--db', 'dbname=x' ],
	[ 'changes', '--table', 'public.t', '--from-lsn', '0/1', '--to-lsn', '0/2' ],
	[ 'recover', '--table', 'public.t', '--latest', '--dry-run' ],
	[ 'archive', '--db', 'dbname=x', '--all-tables', '--listen', 'off' ]);
for my $url ('bogus://x', 's3://A', 's3://Bad_Bucket/p', 's3://bkt/../x', 's3://bkt//a/./b', 'file://relative/path',
	's3://user:Hunter2Secret@bkt/p', "file:///tmp/a\nb")
{
	(my $shown = $url) =~ s/\n/\\n/g;
	for my $c (@storage_cmds)
	{
		my ($cmd, @rest) = @$c;
		my $e = refused("$cmd --storage $shown", [ $cmd, @base, '--storage', $url, @rest ],
			qr/^backstop \Q$cmd\E: ERROR: option --storage: invalid value for storage: invalid storage URL/m);
		unlike($e, qr/Hunter2Secret/, "$cmd --storage $shown: no secret in the message");
	}
}
refused('BACKSTOP_STORAGE malformed', [ 'info', @base ], qr/BACKSTOP_STORAGE: invalid value for storage: invalid storage URL/,
	{ env => { BACKSTOP_STORAGE => 'ftp://x' } });

my $long = 'x' x 64;
for my $table ('a.b.c', '"unterminated', '', '1abc', 'public.', "public.$long", "$long.t")
{
	for my $c ([ 'info' ], [ 'verify' ], [ 'checkpoint', '--listen', '127.0.0.1:1' ],
		[ 'changes', '--from-lsn', '0/1', '--to-lsn', '0/2' ], [ 'recover', '--latest', '--dry-run' ])
	{
		my ($cmd, @rest) = @$c;
		refused("$cmd --table '$table'", [ $cmd, @base, '--table', $table, @rest ],
			qr/^backstop \Q$cmd\E: ERROR: option --table: invalid value for table: /m);
	}
}
refused('archive --tables with a bad name', [ 'archive', @base, '--db', 'dbname=x', '--tables', 'public.t,a.b.c' ],
	qr/option --tables: invalid value for tables: invalid table name "a\.b\.c"/);
refused("archive --tables with a name over 63 bytes", [ 'archive', @base, '--db', 'dbname=x', '--tables', "public.$long" ],
	qr/option --tables: invalid value for tables: the name "$long" is 64 bytes long, longer than PostgreSQL's limit of 63 bytes/);

# --into longer than PostgreSQL's 63 bytes: refused before anything is read or written.
refused('recover --into of 64 bytes', [ 'recover', @base, '--table', 'public.t', '--latest', '--db', 'dbname=x',
	'--into', "public.$long" ],
	qr/^backstop recover: ERROR: option --into: invalid value for into: the name "$long" is 64 bytes long, longer than PostgreSQL's limit of 63 bytes$/m);
my $utf8 = "\x{e9}" x 32;    # 64 bytes in UTF-8
utf8::encode($utf8);
refused('recover --into of 32 two-byte characters', [ 'recover', @base, '--table', 'public.t', '--latest',
	'--db', 'dbname=x', '--into', "\"$utf8\"" ], qr/is 64 bytes long/);

for my $case (
	[ [ 'archive', '--db', 'host=h password=Hunter2Secret oops', '--all-tables' ], 'db', qr/not a valid connection string/ ],
	[ [ 'doctor', '--db', 'postgresql://u:Hunter2Secret@h/db?nosuch=1' ], 'db', qr/invalid URI query parameter/ ],
	[ [ 'recover', '--table', 't', '--latest', '--target-db', "password='Hunter2Secret" ], 'target-db', qr/not a valid connection string/ ],
	[ [ 'archive', '--db', 'dbname=x', '--all-tables', '--slot', 'Bad-Slot' ], 'slot', qr/lower case letters/ ],
	[ [ 'archive', '--db', 'dbname=x', '--all-tables', '--publication', "p$long" ], 'publication', qr/1 to 63 bytes/ ],
	[ [ 'archive', '--db', 'dbname=x', '--all-tables', '--listen', '127.0.0.1:0' ], 'listen', qr/port/ ],
	[ [ 'checkpoint', '--table', 't', '--listen', 'nohostport' ], 'listen', qr/HOST:PORT/ ],
	[ [ 'archive', '--db', 'dbname=x', '--all-tables', '--end-lsn', 'soon' ], 'end-lsn', qr/LSN/ ],
	[ [ 'archive', '--db', 'dbname=x', '--all-tables', '--spool-dir', 'relative' ], 'spool-dir', qr/absolute path/ ],
	[ [ 'config', '--data-dir', 'relative' ], 'data-dir', qr/absolute path/ ],
	[ [ 'recover', '--table', 't', '--to-xid', '-4' ], 'to-xid', qr/transaction id/ ],
	[ [ 'recover', '--table', 't', '--to-time', 'yesterday' ], 'to-time', qr/expected a time/ ],
	[ [ 'changes', '--table', 't', '--from-lsn', 'x', '--to-lsn', '0/2' ], 'from-lsn', qr/LSN/ ],
	[ [ 'info', '--s3-endpoint', 'ftp://x' ], 's3-endpoint', qr/http/ ],
	[ [ 'verify', '--s3-region', 'eu west' ], 's3-region', qr/region/ ])
{
	my ($args, $opt, $re) = @$case;
	(my $key = $opt) =~ tr/-/_/;
	my $e = refused("@$args", [ $args->[0], @base, @$args[ 1 .. $#$args ] ],
		qr/^backstop \Q$args->[0]\E: ERROR: option --\Q$opt\E: invalid value for \Q$key\E/m);
	like($e, $re, "@$args: says why");
	unlike($e, qr/Hunter2Secret/, "@$args: no secret in the message");
}
# A plain database name is a valid --db (libpq reads it as dbname).
($rc, $out, $err) = run_backstop('config', @base, '--db', 'app');
is($rc, 0, '--db with a database name only is accepted') or diag($err);

# `backstop config` prints one line per setting, whatever a value holds.
($rc, $out, $err) = run_backstop({ env => { BACKSTOP_S3_CA_FILE => "/ca\nslot = forged" } }, 'config', @base);
is($rc, 0, 'config with a newline in a value') or diag($err);
unlike($out, qr/^slot = forged/m, 'config: the value cannot forge another setting');
like($out, qr/^s3_ca_file = \/ca\\nslot = forged\t# environment: BACKSTOP_S3_CA_FILE$/m, 'config: newline shown as \\n');

# --- --config naming a directory is an error, not an empty configuration -------------------
mkdir "$dir/confdir";
refused('--config DIR', [ 'config', @base, '--config', "$dir/confdir" ],
	qr/^backstop config: ERROR: configuration file "\Q$dir\E\/confdir" is a directory$/m);
refused('BACKSTOP_CONFIG=DIR', [ 'info', @base ], qr/is a directory/, { env => { BACKSTOP_CONFIG => "$dir/confdir" } });
($rc, $out, $err) = run_backstop('config', @base, '--config', '/dev/null');
is($rc, 0, '--config /dev/null is an empty configuration') or diag($err);

# --- secrets given as flags are not in the process list -----------------------------------
# A listener that accepts and never answers holds `backstop archive` in its connection
# attempt: it has read its options by then (the connection is made from them).
my $srv = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', ReuseAddr => 1)
  or die "listen: $!";
my $port = $srv->sockport;
my $log = "$dir/secret.log";
my $pid = spawn_archiver($log, @base, '--storage', "file://$dir/archive", '--all-tables', '--listen', 'off',
	'--db', "host=127.0.0.1 port=$port dbname=app user=u password=Hunter2Secret connect_timeout=60",
	'--s3-secret-access-key', 'wJalrXUtnFEMIK7MDENGbPxRfiCYSECRETKEY', '--s3-access-key-id=AKIDSECRET42',
	'--s3-session-token', 'SessionTokenSecret99');
my $client = IO::Select->new($srv)->can_read(60) ? $srv->accept : undef;
ok($client, 'backstop archive connected to the stand-in server') or diag(slurp_file($log));
my $cmdline = '';
if (open(my $fh, '<', "/proc/$pid/cmdline"))
{
	local $/;
	$cmdline = <$fh>;
	close $fh;
}
like($cmdline, qr/\0--all-tables\0/, '/proc/PID/cmdline read while it runs');
for my $secret ('Hunter2Secret', 'wJalrXUtnFEMIK7MDENGbPxRfiCYSECRETKEY', 'AKIDSECRET42', 'SessionTokenSecret99')
{
	unlike($cmdline, qr/\Q$secret\E/, "$secret is not in /proc/PID/cmdline");
}
like($cmdline, qr/\0--storage\0file:\/\/\Q$dir\E\/archive\0/, 'options without secrets stay readable');
kill 'TERM', $pid;
# Missing S3 credentials are a configuration error (exit 2) for every command that reads storage.
for my $args ([ 'info' ], [ 'verify' ], [ 'recover', '--table', 'a.b', '--latest', '--dry-run' ],
	[ 'changes', '--table', 'a.b', '--from-lsn', '0/1', '--to-lsn', '0/2' ])
{
	refused("$args->[0] without S3 credentials", [ @$args, '--storage', 's3://some-bucket/p' ],
		qr/no S3 credentials/,
		{ env => { AWS_ACCESS_KEY_ID => undef, AWS_SECRET_ACCESS_KEY => undef,
			BACKSTOP_S3_ACCESS_KEY_ID => undef, BACKSTOP_S3_SECRET_ACCESS_KEY => undef } });
}

close $client if $client;
waitpid($pid, 0);
unlike(slurp_file($log), qr/Hunter2Secret|SECRETKEY|AKIDSECRET|SessionTokenSecret/, 'no secret in the log');

done_testing();
