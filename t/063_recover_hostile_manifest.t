# 063_recover_hostile_manifest.t — a manifest whose definitions carry SQL: `verify` reports each
# SQL-carrying field, `recover` refuses before sending anything, the database is untouched; a CHECK
# constraint that calls a volatile function is not run against the rows; a benign rewrite of the same
# manifest still recovers exactly.
use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $node = new_pg_node('hostile');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('hostile');
my $archive = "$dir/archive";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $listen = "127.0.0.1:$port";

# Every kind of SQL-carrying definition: a primary key, a CHECK, a default, an index, and
# varchar(n), numeric(p,s) and array column types.
$node->safe_psql($db, q{
	CREATE TABLE public.acct (id int PRIMARY KEY, owner varchar(40) NOT NULL, balance numeric(12,2) DEFAULT 0,
		tags text[], note text, CONSTRAINT acct_balance_check CHECK (balance >= 0));
	CREATE INDEX acct_owner_idx ON public.acct (owner);
	CREATE TABLE public.victim (id int PRIMARY KEY, v text);
	CREATE SEQUENCE public.victim_seq;
	INSERT INTO public.acct SELECT g, 'owner ' || g, g * 10, ARRAY['t' || g, 'x'], CASE WHEN g % 5 = 0 THEN 'n' || g END
	  FROM generate_series(1, 200) g;
	INSERT INTO public.victim SELECT g, 'v' || g FROM generate_series(1, 30) g;
});

my $h = kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', '--db', $conn, '--tables', 'public.acct',
	  '--storage', "file://$archive", '--data-dir', "$dir/data", '--listen', $listen, '--segment-age', '1s',
	  '--status-interval', '1s' ],
	'<', \undef, '>', "$dir/archiver.out", '2>>', "$dir/archiver.log"));
ok(wait_for('archiver', sub { (archiver_checkpoint($listen, 'public.acct'))[0] == 0 }), 'archiver running')
  or diag(slurp_file("$dir/archiver.log"));
$node->safe_psql($db, q{UPDATE public.acct SET balance = balance + 1 WHERE id % 7 = 0; DELETE FROM public.acct WHERE id > 190});
ok((archiver_checkpoint($listen, 'public.acct'))[0] == 0, 'changes archived');
$h->signal('TERM');
$h->finish;

my $sum_acct = content_checksum($node, $db, 'public.acct');
my $sum_victim = content_checksum($node, $db, 'public.victim');
my $relid = $node->safe_psql($db, "SELECT 'public.acct'::regclass::oid");
my $mpath = "tables/$relid/manifest.json";
my $json = JSON::PP->new->utf8->canonical;
my $orig = $json->decode(slurp_file("$archive/$mpath"));
ok(@{ $orig->{bases} } > 0 && $orig->{bases}[-1]{definition}, 'the manifest has a base with its definition');

my ($rc, $out, $err) = run_backstop('verify', '--storage', "file://$archive");
is($rc, 0, 'the archive as written verifies') or diag("$out\n$err");

sub index_of
{
	my ($list, $name) = @_;
	for my $i (0 .. $#$list)
	{
		return $i if $list->[$i]{name} eq $name;
	}
	die "no $name";
}

sub victim_sum
{
	return 'gone' if $node->safe_psql($db, "SELECT to_regclass('public.victim') IS NULL") eq 't';
	return content_checksum($node, $db, 'public.victim');
}

# Without the check (a build before it) a case drops the victim or leaves tables: put the
# database back, so that each case shows its own outcome.
sub reset_db
{
	$node->safe_psql($db, q{
		DO $$DECLARE r record; BEGIN
		  FOR r IN SELECT oid::regclass AS t FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace
		    AND (relname LIKE '%\_recovered%' OR relname = 'zz') LOOP
		    EXECUTE 'DROP TABLE ' || r.t;
		  END LOOP;
		END$$;
		CREATE TABLE IF NOT EXISTS public.victim (id int PRIMARY KEY, v text);
		INSERT INTO public.victim SELECT g, 'v' || g FROM generate_series(1, 30) g ON CONFLICT DO NOTHING;
	});
}

sub recovered_tables
{
	return $node->safe_psql($db, q{SELECT count(*) FROM pg_class WHERE relname LIKE '%\_recovered%' OR relname = 'zz'});
}

# Manifests and head.json carry no checksum of their own (doc/FORMAT.md), so an edited manifest
# is refused by the definition check or not at all: the benign rewrite below proves that the
# edit itself (decode, change, encode) is accepted.
sub write_manifest
{
	my ($to, $edit) = @_;
	my $m = $json->decode(slurp_file("$archive/$mpath"));
	my $field = $edit->($m);
	open(my $f, '>:raw', "$to/$mpath") or die "$to/$mpath: $!";
	print $f $json->encode($m);
	close($f);
	return $field;
}

my $b = $#{ $orig->{bases} };
my $ncol = sub { index_of($orig->{layouts}[0]{columns}, $_[0]) };
my $dcol = sub { index_of($orig->{bases}[$b]{definition}{columns}, $_[0]) };
my $con = sub { index_of($orig->{bases}[$b]{definition}{constraints}, $_[0]) };
my $idx = sub { index_of($orig->{bases}[$b]{definition}{indexes}, $_[0]) };
my $drop = 'DROP TABLE public.victim';

# Each hostile text runs on a build without the check: the last column's type keeps the CREATE
# TABLE whole (the rest of the column list closes a second CREATE TABLE), the others are
# executed as they are and commit with the recovery.
my @cases = (
	[ 'type of the last column (text)', sub {
		my $i = $ncol->('note');
		$_->{columns}[$i]{type} = "text); $drop; CREATE TABLE public.zz (x int" for @{ $_[0]{layouts} };
		return "layouts[0].columns[$i].type";
	} ],
	[ 'type of a numeric(p,s) column', sub {
		my $i = $ncol->('balance');
		$_->{columns}[$i]{type} = "numeric(12,2)); COMMIT; $drop; --" for @{ $_[0]{layouts} };
		return "layouts[0].columns[$i].type";
	} ],
	[ 'type of a varchar(n) column', sub {
		my $i = $ncol->('owner');
		$_->{columns}[$i]{type} = "character varying(40)\n;$drop;\n--" for @{ $_[0]{layouts} };
		return "layouts[0].columns[$i].type";
	} ],
	[ 'type of an array column', sub {
		my $i = $ncol->('tags');
		$_->{columns}[$i]{type} = "text[]) INHERITS (public.victim" for @{ $_[0]{layouts} };
		return "layouts[0].columns[$i].type";
	} ],
	[ 'column default', sub {
		my $i = $dcol->('balance');
		$_[0]{bases}[$b]{definition}{columns}[$i]{default} = "0; $drop; --";
		return "bases[$b].definition.columns[$i].default";
	} ],
	[ 'column default with an E string', sub {
		my $i = $dcol->('balance');
		$_[0]{bases}[$b]{definition}{columns}[$i]{default} = "E'\\''; $drop; --'";
		return "bases[$b].definition.columns[$i].default";
	} ],
	[ 'primary key', sub {
		my $i = $con->('acct_pkey');
		$_[0]{bases}[$b]{definition}{constraints}[$i]{def} = "PRIMARY KEY (id); $drop; --";
		return "bases[$b].definition.constraints[$i].def";
	} ],
	[ 'CHECK constraint', sub {
		my $i = $con->('acct_balance_check');
		$_[0]{bases}[$b]{definition}{constraints}[$i]{def} = "CHECK ((balance >= (0)::numeric)); $drop; --";
		return "bases[$b].definition.constraints[$i].def";
	} ],
	[ 'constraint with a second ALTER TABLE command', sub {
		my $i = $con->('acct_balance_check');
		$_[0]{bases}[$b]{definition}{constraints}[$i]{def} = 'CHECK ((balance >= (0)::numeric)), DROP COLUMN note';
		return "bases[$b].definition.constraints[$i].def";
	} ],
	[ 'index definition', sub {
		my $i = $idx->('acct_owner_idx');
		$_[0]{bases}[$b]{definition}{indexes}[$i]{def} =
		  "CREATE INDEX acct_owner_idx ON public.acct USING btree (owner); $drop; --";
		return "bases[$b].definition.indexes[$i].def";
	} ],
);

my $n = 0;
for my $case (@cases)
{
	my ($what, $edit) = @$case;
	my $to = "$dir/h" . $n++;
	copy_tree($archive, $to);
	my $field = write_manifest($to, $edit);

	($rc, $out, $err) = run_backstop('verify', '--storage', "file://$to");
	is($rc, 3, "$what: verify exits 3");
	like($out, qr/PROBLEM: public\.acct \(relid $relid\) \Q$mpath\E: \Q$field\E \(.*\) is refused: /,
		"$what: verify names the field $field") or diag("$out\n$err");

	($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', "file://$to", '--table', 'public.acct',
		'--latest');
	is($rc, 3, "$what: recover exits 3") or diag("$out\n$err");
	like($err, qr/\Q$field\E .*refused before any SQL was sent/, "$what: recover names the field");
	is($node->safe_psql($db, "SELECT to_regclass('public.victim') IS NOT NULL"), 't', "$what: victim still exists");
	is(victim_sum(), $sum_victim, "$what: victim keeps its rows");
	is(recovered_tables(), '0', "$what: nothing left behind");
	reset_db();
}

# A CHECK that is exactly one constraint but calls a volatile function: added NOT VALID, so
# recovery never runs it on the rows; the sequence it would advance stays untouched.
{
	my $to = "$dir/volatile";
	copy_tree($archive, $to);
	write_manifest($to, sub {
		my $i = $con->('acct_balance_check');
		$_[0]{bases}[$b]{definition}{constraints}[$i]{def} = q{CHECK ((nextval('public.victim_seq'::regclass) > 0))};
		return '';
	});
	($rc, $out, $err) = run_backstop('verify', '--storage', "file://$to");
	is($rc, 0, 'volatile CHECK: one constraint, verify accepts it') or diag("$out\n$err");
	($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', "file://$to", '--table', 'public.acct',
		'--latest', '--into', 'public.vol_recovered');
	is($rc, 0, 'volatile CHECK: recover succeeds') or diag("$out\n$err");
	like($out, qr/recreated NOT VALID, not checked against the rows: it calls volatile function\(s\) nextval\(regclass\)/,
		'volatile CHECK: a warning says why it was not validated');
	is($node->safe_psql($db, 'SELECT is_called FROM public.victim_seq'), 'f', 'volatile CHECK: never called');
	is($node->safe_psql($db, "SELECT convalidated FROM pg_constraint WHERE conrelid = 'public.vol_recovered'::regclass AND contype = 'c'"),
		'f', 'volatile CHECK: left NOT VALID');
	is(content_checksum($node, $db, 'public.vol_recovered'), $sum_acct, 'volatile CHECK: rows exact');
	$node->safe_psql($db, 'DROP TABLE public.vol_recovered');
}

# The same rewrite with the definitions as they were: verified and recovered exactly, with the
# primary key, the CHECK (validated), the default and the index.
{
	my $to = "$dir/benign";
	copy_tree($archive, $to);
	write_manifest($to, sub {
		my $i = $con->('acct_balance_check');
		$_[0]{bases}[$b]{definition}{constraints}[$i]{def} = $orig->{bases}[$b]{definition}{constraints}[$i]{def};
		return '';
	});
	($rc, $out, $err) = run_backstop('verify', '--storage', "file://$to");
	is($rc, 0, 'benign rewrite: verify exits 0') or diag("$out\n$err");
	($rc, $out, $err) = run_backstop('recover', '--db', $conn, '--storage', "file://$to", '--table', 'public.acct',
		'--latest');
	is($rc, 0, 'benign rewrite: recover exits 0') or diag("$out\n$err");
	is(content_checksum($node, $db, 'public.acct_recovered'), $sum_acct, 'benign rewrite: content checksum equal');
	is($node->safe_psql($db, "SELECT string_agg(conname || ':' || contype::text || ':' || convalidated, ',' ORDER BY conname) "
		  . "FROM pg_constraint WHERE conrelid = 'public.acct_recovered'::regclass"),
		'acct_recovered_balance_check:c:true,acct_recovered_pkey:p:true', 'benign rewrite: constraints recreated and validated');
	is($node->safe_psql($db, "SELECT indexname FROM pg_indexes WHERE tablename = 'acct_recovered' AND indexname LIKE '%owner%'"),
		'acct_recovered_owner_idx', 'benign rewrite: index recreated');
	is($node->safe_psql($db, "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'public.acct_recovered'::regclass"),
		'0', 'benign rewrite: default recreated');
	is($node->safe_psql($db, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'public.acct_recovered'::regclass AND attnum > 0 ORDER BY attnum"),
		"integer\ncharacter varying(40)\nnumeric(12,2)\ntext[]\ntext", 'benign rewrite: column types as archived');
}

is(victim_sum(), $sum_victim, 'victim untouched at the end');
done_testing();
