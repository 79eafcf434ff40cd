# 020_storage_local.t — the file:// driver through storage_tool and `backstop doctor`, as a non-root user would run it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use BackstopS3;
use File::Temp qw(tempdir);
use Test::More;

my $tmp = tempdir('backstop-020-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $root = "$tmp/archive";
my @o = ('--storage', "file://$root");
my %env = (BACKSTOP_CONFIG => '/dev/null');
sub st { return BackstopS3::run(cmd => [ BackstopS3::tool(), @o, @_ ], env => \%env, ref $_[-1] eq 'HASH' ? %{ pop @_ } : ()); }

BackstopS3::write_random_file("$tmp/big", 9 * 1024 * 1024 + 3);
my $r = st('put', 'tables/public.t/base/chunk 1', "$tmp/big");
is($r->{rc}, 0, 'put creates the missing root and parents') or diag $r->{err};
ok(-f "$root/tables/public.t/base/chunk 1", 'object is a plain file under the root');
$r = BackstopS3::run(cmd => [ BackstopS3::tool(), @o, 'get', 'tables/public.t/base/chunk 1' ], env => \%env,
	stdout => "$tmp/big.out");
ok(BackstopS3::files_equal("$tmp/big", "$tmp/big.out"), 'get is byte-exact');
$r = BackstopS3::run(cmd => [ BackstopS3::tool(), @o, 'put-abort', 'tables/x', "$tmp/big" ], env => \%env);
is($r->{rc}, 0, 'aborted put');
opendir(my $d, "$root/tables") or die;
is_deeply([ sort grep { !/^\.\.?$/ } readdir $d ], ['public.t'], 'aborted put leaves neither object nor temp file');
closedir $d;
$r = st('list', '');
is($r->{out}, "tables/public.t/base/chunk 1\t9437187\n", 'list');
$r = st('get', '../etc/passwd');
like($r->{err}, qr/22023.*invalid storage key/, 'keys cannot escape the root');
$r = st('get', 'tables/none');
like($r->{err}, qr/58P01/, 'missing object: NOT_FOUND');

# A root that cannot be written.
SKIP:
{
	skip 'root ignores permissions', 2 if $> == 0;
	mkdir "$tmp/ro", 0500;
	$r = BackstopS3::run(cmd => [ BackstopS3::tool(), '--storage', "file://$tmp/ro/archive", 'put', 'k', "$tmp/big" ], env => \%env);
	like($r->{err}, qr/42501.*Permission denied/, 'unwritable root: PERMISSION error');
	$r = BackstopS3::run(cmd => [ BackstopS3::backstop(), 'doctor', '--storage', "file://$tmp/ro/archive" ], env => \%env);
	like($r->{out}, qr/reason: no write permission/, 'doctor explains an unwritable root');
}

$r = BackstopS3::run(cmd => [ BackstopS3::backstop(), 'doctor', @o ], env => \%env);
is($r->{rc}, 0, 'doctor on a local archive succeeds');
like($r->{out}, qr/put +ok.*\n.*get +ok.*\n.*list +ok.*\n.*delete +ok/, 'doctor runs every step');
$r = BackstopS3::run(cmd => [ BackstopS3::backstop(), 'doctor', @o, '--json' ], env => \%env);
like($r->{out}, qr/"delete_permitted": true/, 'doctor --json reports that deletes are permitted');
$r = st('list', 'doctor/');
is($r->{out}, '', 'doctor cleans up its probe object');

# --db: an unreachable server makes doctor fail; a real one (non-root only) succeeds.
$r = BackstopS3::run(cmd => [ BackstopS3::backstop(), 'doctor', @o, '--db', "host=$tmp port=1 password=hunter2 dbname=x" ], env => \%env);
is($r->{rc}, 1, 'doctor fails when the database is unreachable');
like($r->{out}, qr/database: FAILED/, 'and says the database failed');
unlike($r->{out}, qr/hunter2/, 'conninfo password not shown');

SKIP:
{
	my $bindir = $ENV{PG_BINDIR} || '/usr/lib/postgresql/15/bin';
	skip 'PostgreSQL needs a non-root user', 4 if $> == 0 || !-x "$bindir/initdb";
	my $pgdata = "$tmp/pgdata";
	system("$bindir/initdb -D $pgdata -A trust -U doctor >/dev/null 2>&1") == 0 or die 'initdb failed';
	system("$bindir/pg_ctl -D $pgdata -w -o '-k $tmp -c listen_addresses= -c wal_level=replica' -l $tmp/pg.log start >/dev/null") == 0
	  or die 'pg_ctl start failed';
	$r = BackstopS3::run(cmd => [ BackstopS3::backstop(), 'doctor', @o, '--db', "host=$tmp user=doctor dbname=postgres", '--json' ], env => \%env);
	system("$bindir/pg_ctl -D $pgdata -m fast stop >/dev/null");
	is($r->{rc}, 1, 'doctor reaches the database and finds it not ready (wal_level)');
	like($r->{out}, qr/"server_version": "15/, 'reports the server version');
	like($r->{out}, qr/"wal_level": "replica"/, 'reports wal_level');
	like($r->{out}, qr/wal_level is replica, not logical/, 'says that wal_level is not logical');
}

done_testing();
