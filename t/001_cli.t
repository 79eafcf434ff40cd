# 001_cli.t — the command-line interface: help, version, usage errors, configuration
# precedence and file errors, secret redaction, and docs that cover every command and option.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my @commands = qw(archive recover changes info verify expire checkpoint doctor drill config);
my $dir = scratch_dir('cli');

sub write_file
{
	my ($name, $text) = @_;
	my $path = "$dir/$name";
	open my $fh, '>', $path or die "could not write $path: $!";
	print $fh $text;
	close $fh;
	return $path;
}

# --- help and version -------------------------------------------------------------------
my ($rc, $out, $err) = run_backstop('--help');
is($rc, 0, '--help exits 0');
like($out, qr/^Usage: backstop <command> \[options\]$/m, '--help prints usage on stdout');
is($err, '', '--help prints nothing on stderr');
like($out, qr/^  \Q$_\E\s+\S/m, "--help lists $_") for @commands, 'help';
like($out, qr/Exit codes: 0 success, 1 operation failed, 2 usage or configuration error/,
	'--help documents exit codes');

($rc, $out) = run_backstop('--version');
is($rc, 0, '--version exits 0');
like($out, qr/^backstop \d+\.\d+\.\d+\n\z/, '--version prints one line with the version');
my ($version) = $out =~ /^backstop (\S+)/;

($rc, $out, $err) = run_backstop();
is($rc, 2, 'no command exits 2');
like($err, qr/Usage: backstop <command>/, 'no command prints usage on stderr');
is($out, '', 'no command prints nothing on stdout');

for my $cmd (@commands)
{
	($rc, $out, $err) = run_backstop('help', $cmd);
	is($rc, 0, "help $cmd exits 0");
	like($out, qr/^Usage: backstop \Q$cmd\E( |$)/m, "help $cmd shows its usage");
	like($out, qr/^  --config FILE /m, "help $cmd lists the general options");
	my ($rc2, $out2) = run_backstop($cmd, '--help');
	is($rc2, 0, "$cmd --help exits 0");
	is($out2, $out, "$cmd --help equals help $cmd");
}

# --- usage errors: exit 2, a one-line error naming the culprit, then usage ----------------
($rc, $out, $err) = run_backstop('frobnicate');
is($rc, 2, 'unknown command exits 2');
my @lines = split /\n/, $err;
is($lines[0], 'backstop: unknown command "frobnicate"', 'unknown command: one-line error naming it');
like($err, qr/^Usage: backstop <command>/m, 'unknown command: usage follows');
is($out, '', 'unknown command: nothing on stdout');

# The name is the user's input: control characters come back escaped, not raw.
($rc, $out, $err) = run_backstop("frob\e[2Jnicate");
is($rc, 2, 'unknown command with a control character exits 2');
like($err, qr/^backstop: unknown command "frob\\x1b\[2Jnicate"$/m, 'unknown command shown escaped');
unlike($err, qr/\e/, 'no raw escape character on the terminal');

($rc, $out, $err) = run_backstop('help', 'frobnicate');
is($rc, 2, 'help for an unknown command exits 2');
like($err, qr/^backstop: unknown command "frobnicate"$/m, 'help names the unknown command');

for my $case (
	[ [ 'info', '--bogus' ], 'info', '--bogus' ],
	[ [ 'info', '--bogus=1' ], 'info', '--bogus' ],
	[ [ 'recover', '-x' ], 'recover', '-x' ],
	[ [ 'info', '--slot', 'x' ], 'info', '--slot' ],    # a real option, but not for info
	[ [ 'checkpoint', '--storage', 'file:///x' ], 'checkpoint', '--storage' ])
{
	my ($args, $cmd, $name) = @$case;
	($rc, $out, $err) = run_backstop(@$args);
	is($rc, 2, "@$args exits 2");
	@lines = split /\n/, $err;
	is($lines[0], "backstop $cmd: ERROR: unknown option \"$name\"", "@$args: one-line error naming $name");
	like($lines[1] // '', qr/^Usage: backstop \Q$cmd\E /, "@$args: usage follows");
	is($out, '', "@$args: nothing on stdout");
}

($rc, $out, $err) = run_backstop('config', '--segment-size');
is($rc, 2, 'option without its value exits 2');
like($err, qr/^backstop config: ERROR: option "--segment-size" needs a value$/m, 'missing value named');

($rc, $out, $err) = run_backstop('config', '--segment-size=12parsecs');
is($rc, 2, 'malformed flag value exits 2');
like($err, qr/option --segment-size: invalid value for segment_size: "12parsecs"/, 'malformed flag value named');

($rc, $out, $err) = run_backstop('config', 'extra');
is($rc, 2, 'config with an unexpected argument exits 2');

# --- configuration precedence: flag > environment > file > default ----------------------
my $conf = write_file('precedence.conf', <<'EOF');
# comment
[backstop]
segment_size = 8MiB
segment-age = '20s'
compression = lz4
slot = from_file
EOF

sub config_value
{
	my ($text, $key) = @_;
	return $text =~ /^\Q$key\E = (.*?)\t# (.*)$/m ? "$1 ($2)" : undef;
}

($rc, $out, $err) = run_backstop('config', '--config', $conf);
is($rc, 0, 'config with a file exits 0') or diag($err);
like($out, qr/^# effective configuration \(file: \Q$conf\E\)$/m, 'config names the file it read');
is(config_value($out, 'segment_size'), "8MiB (file: $conf:3)", 'file value, with file and line');
is(config_value($out, 'segment_age'), "20s (file: $conf:4)", 'dashed key and quotes in the file');
is(config_value($out, 'rebase_age'), '7d (default)', 'default value');

my %env = (BACKSTOP_SEGMENT_SIZE => '12MiB', BACKSTOP_COMPRESSION => 'none');
($rc, $out) = run_backstop({ env => \%env }, 'config', '--config', $conf);
is(config_value($out, 'segment_size'), '12MiB (environment: BACKSTOP_SEGMENT_SIZE)', 'environment beats file');
is(config_value($out, 'slot'), "from_file (file: $conf:6)", 'file still applies to other keys');

($rc, $out) = run_backstop({ env => \%env }, 'config', '--config', $conf, '--segment-size', '32MiB',
	'--compression=zstd');
is(config_value($out, 'segment_size'), '32MiB (flag: option --segment-size)', 'flag beats environment');
is(config_value($out, 'compression'), 'zstd (flag: option --compression)', '--name=value form');

my $conf2 = write_file('other.conf', "slot = from_env_file\n");
($rc, $out) = run_backstop({ env => { BACKSTOP_CONFIG => $conf2 } }, 'config');
is(config_value($out, 'slot'), "from_env_file (file: $conf2:1)", 'BACKSTOP_CONFIG names the file');
($rc, $out) = run_backstop({ env => { BACKSTOP_CONFIG => $conf2 } }, 'config', '--config', $conf);
is(config_value($out, 'slot'), "from_file (file: $conf:6)", '--config beats BACKSTOP_CONFIG');

($rc, $out, $err) = run_backstop({ env => { BACKSTOP_SEGMENT_AGE => 'forever' } }, 'config');
is($rc, 2, 'malformed environment value exits 2');
like($err, qr/BACKSTOP_SEGMENT_AGE: invalid value for segment_age: "forever"/, 'environment variable named');

($rc, $out, $err) = run_backstop('config', '--config', "$dir/missing.conf");
is($rc, 2, 'missing --config file exits 2');
like($err, qr/\Q$dir\E\/missing\.conf/, 'missing file named');

# Errors in the file name the file, the line and the key.
my $bad = write_file('unknown.conf', "[backstop]\nslot = s\nbogus_key = 1\n");
($rc, $out, $err) = run_backstop('config', '--config', $bad);
is($rc, 2, 'unknown key in the file exits 2');
like($err, qr/^backstop config: ERROR: \Q$bad\E:3: unknown option "bogus_key"$/m, 'unknown key: file, line and key');
is($out, '', 'unknown key: nothing printed on stdout');

$bad = write_file('malformed.conf', "slot = s\n\nsegment_age = forever\n");
($rc, $out, $err) = run_backstop('config', '--config', $bad);
is($rc, 2, 'malformed value in the file exits 2');
like($err, qr/\Q$bad\E:3: invalid value for segment_age: "forever"/, 'malformed value: file, line and key');

$bad = write_file('bool.conf', "all_tables = maybe\n");
($rc, $out, $err) = run_backstop('config', '--config', $bad);
is($rc, 2, 'malformed boolean in the file exits 2');
like($err, qr/\Q$bad\E:1: invalid value for all_tables: "maybe"/, 'malformed boolean: file, line and key');

$bad = write_file('syntax.conf', "slot = s\nthis line has no equals sign\n");
($rc, $out, $err) = run_backstop('config', '--config', $bad);
is($rc, 2, 'syntax error in the file exits 2');
like($err, qr/\Q$bad\E:2: syntax error/, 'syntax error: file and line');

# The example file parses with every setting uncommented.
my $example = slurp_file("$ENV{BACKSTOP_SRCDIR}/contrib/backstop.conf.example");
$example =~ s/^# ([a-z0-9_]+ = )/$1/mg;
my $example_conf = write_file('example.conf', $example);
($rc, $out, $err) = run_backstop('config', '--config', $example_conf);
is($rc, 0, 'contrib/backstop.conf.example parses with every setting uncommented') or diag($err);
like(config_value($out, 'table_poll_interval'), qr/^10s \(file: /, 'example file sets the archiver options');

# --- derived defaults -------------------------------------------------------------------
SKIP:
{
	skip 'data_dir default differs for root', 2 if $> == 0;
	($rc, $out) = run_backstop({ env => { HOME => $dir } }, 'config');
	is(config_value($out, 'data_dir'), "$dir/.local/share/backstop (default)", 'data_dir defaults under HOME');
	is(config_value($out, 'storage'), "file://$dir/.local/share/backstop/archive (default)",
		'storage defaults to DATA_DIR/archive');
}
($rc, $out) = run_backstop('config', '--data-dir', "$dir/dd");
is(config_value($out, 'spool_dir'), "$dir/dd/spool (default)", 'spool_dir follows --data-dir');

($rc, $out) = run_backstop('config', 'all');
is($rc, 0, 'config all exits 0');
like($out, qr/^# to_lsn =\t\t# unset: /m, 'config all lists unset options');

# --- secrets are redacted ---------------------------------------------------------------
my $secret_conf = write_file('secret.conf', "s3_session_token = TOKEN-in-file-77\n");
($rc, $out, $err) = run_backstop(
	{ env => { BACKSTOP_S3_ACCESS_KEY_ID => 'AKIDENV123456' } },
	'config', '--config', $secret_conf,
	'--db', 'postgresql://alice:hunter2@db.example.com:5432/app?sslmode=require',
	'--s3-secret-access-key', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY');
is($rc, 0, 'config with secrets exits 0') or diag($err);
for my $secret ('hunter2', 'wJalrXUtnFEMI', 'TOKEN-in-file-77', 'AKIDENV123456')
{
	unlike($out . $err, qr/\Q$secret\E/, "secret $secret is not printed");
}
like(config_value($out, 'db'), qr{^postgresql://alice:\*+\@db\.example\.com:5432/app\?sslmode=require },
	'URI keeps its non-secret parts');
like(config_value($out, 's3_secret_access_key'), qr/^\*+ \(flag/, 'secret key masked');
like(config_value($out, 's3_session_token'), qr/^\*+ \(file/, 'session token from the file masked');

($rc, $out) = run_backstop('config', '--db', "host=db.example.com password='hunter2 x' user=alice");
unlike($out, qr/hunter2/, 'conninfo password is not printed');
like(config_value($out, 'db'), qr/host=db\.example\.com .*user=alice/, 'conninfo keeps its non-secret parts');

($rc, $out, $err) = run_backstop('config', '--db', 'postgresql://alice:hunter2@h/app', '--bogus');
is($rc, 2, 'usage error with a secret on the command line exits 2');
unlike($err, qr/hunter2/, 'usage error does not echo the secret');

# --- docs cover every command and option --------------------------------------------------
my $man = slurp_file("$ENV{BACKSTOP_SRCDIR}/doc/backstop.1");
$man =~ s/\\f[BIRP]//g;
$man =~ s/\\-/-/g;
my $confdoc = slurp_file("$ENV{BACKSTOP_SRCDIR}/doc/configuration.md");
like($man, qr/^\.TH BACKSTOP 1 .*"backstop \Q$version\E"/m, 'man page header carries the version');
for my $cmd (@commands)
{
	like($man, qr/^\.SS \Q$cmd\E\b/m, "man page documents command $cmd");
	(undef, $out) = run_backstop('help', $cmd);
	for my $flag ($out =~ /^  (--[a-z0-9-]+)/mg)
	{
		like($man, qr/\Q$flag\E\b/, "man page mentions $flag ($cmd)");
	}
}
(undef, $out) = run_backstop('config', 'all');
for my $key ($out =~ /^#? ?([a-z0-9_]+) =/mg)
{
	like($confdoc, qr/`\Q$key\E`/, "configuration.md documents $key");
}

done_testing();
