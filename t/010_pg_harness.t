# 010_pg_harness.t — proves the integration harness: a logical-replication-ready PostgreSQL
# cluster (15, or the major BACKSTOP_TEST_PG_MAJOR selects) started as an unprivileged user,
# queries, slots, and the content checksum definition.
use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use Math::BigInt;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

isnt($>, 0, 'tests do not run as root (initdb refuses root)');

my $node = new_pg_node('main');

my $major = pg_major();
like($node->safe_psql('postgres', 'SHOW server_version_num'), qr/^$major\d{4}$/, "PostgreSQL $major server");
is($node->safe_psql('postgres', 'SELECT 1 + 1'), '2', 'query runs');
is($node->safe_psql('postgres', 'SHOW wal_level'), 'logical', 'wal_level is logical');
cmp_ok($node->safe_psql('postgres', 'SHOW max_replication_slots'), '>=', 10, 'enough replication slots');
cmp_ok($node->safe_psql('postgres', 'SHOW max_wal_senders'), '>=', 10, 'enough WAL senders');

# A logical slot with pgoutput, created by the replication role over a replication connection.
is($node->safe_psql('postgres',
		"SELECT rolreplication FROM pg_roles WHERE rolname = '$REPLICATION_ROLE'"),
	't', "role $REPLICATION_ROLE has REPLICATION");
my ($rc, $out, $err) = $node->psql('postgres',
	'CREATE_REPLICATION_SLOT harness_slot LOGICAL pgoutput',
	extra_params => [ '-d', node_connstr($node, 'postgres', $REPLICATION_ROLE) . ' replication=database' ]);
is($rc, 0, 'logical slot created over a replication connection') or diag($err);
is($node->safe_psql('postgres',
		"SELECT plugin || ':' || slot_type FROM pg_replication_slots WHERE slot_name = 'harness_slot'"),
	'pgoutput:logical', 'slot is a pgoutput logical slot');
$node->safe_psql('postgres', "SELECT pg_drop_replication_slot('harness_slot')");
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_replication_slots'), '0', 'slot dropped');

# Changes are visible through a slot (SQL interface, test_decoding ships with the server).
$node->safe_psql('postgres', q{
	CREATE TABLE public.t (id int PRIMARY KEY, v text);
	SELECT pg_create_logical_replication_slot('sql_slot', 'test_decoding');
	INSERT INTO public.t VALUES (1, 'a'), (2, 'b'), (3, NULL);
});
like($node->safe_psql('postgres',
		"SELECT string_agg(data, E'\\n') FROM pg_logical_slot_get_changes('sql_slot', NULL, NULL)"),
	qr/table public\.t: INSERT: id\[integer\]:3 v\[text\]:null/, 'slot decodes the inserts');
$node->safe_psql('postgres', "SELECT pg_drop_replication_slot('sql_slot')");

# The connection helpers work for the backstop binary's libpq too (psql stands in here).
like(node_uri($node, 'postgres'), qr{^postgresql:///postgres\?host=%2F.*&port=\d+$}, 'URI form');
is($node->safe_psql('postgres', 'SELECT current_user',
		extra_params => [ '-d', node_uri($node, 'postgres', $REPLICATION_ROLE) ]),
	$REPLICATION_ROLE, 'URI connects as the replication role');

# content_checksum: the documented definition, recomputed independently here.
sub expected_checksum
{
	my $sum = Math::BigInt->new(0);
	for my $row (@_)
	{
		my $v = Math::BigInt->from_hex(substr(md5_hex($row), 0, 16));
		$v -= Math::BigInt->new(2)**64 if $v >= Math::BigInt->new(2)**63;
		$sum += $v;
	}
	return scalar(@_) . ':' . $sum->bstr;
}
is(content_checksum($node, 'postgres', 'public.t'),
	expected_checksum('(1,a)', '(2,b)', '(3,)'), 'checksum matches its definition');

$node->safe_psql('postgres', q{
	CREATE TABLE public.t2 (id int, v text);
	INSERT INTO public.t2 VALUES (3, NULL), (1, 'a'), (2, 'b');
	CREATE TABLE public.empty (id int);
});
is(content_checksum($node, 'postgres', 'public.t2'), content_checksum($node, 'postgres', 'public.t'),
	'checksum ignores physical row order');
is(content_checksum($node, 'postgres', 'public.empty'), '0:0', 'empty table is 0:0');
$node->safe_psql('postgres', "UPDATE public.t2 SET v = 'B' WHERE id = 2");
isnt(content_checksum($node, 'postgres', 'public.t2'), content_checksum($node, 'postgres', 'public.t'),
	'checksum detects a changed value');

# Session settings that change a row's text form are pinned.
$node->safe_psql('postgres', q{
	CREATE TABLE public.ts (at timestamptz, f float8);
	INSERT INTO public.ts VALUES ('2024-01-02 03:04:05+00', 0.1);
	ALTER DATABASE postgres SET TimeZone = 'Asia/Kolkata';
	ALTER DATABASE postgres SET extra_float_digits = 3;
});
is(content_checksum($node, 'postgres', 'public.ts'),
	expected_checksum('("2024-01-02 03:04:05+00",0.1)'), 'checksum is independent of session settings');

my $dir = scratch_dir('harness');
ok(-d $dir && -w $dir, 'scratch directory is writable');

$node->stop;
done_testing();
