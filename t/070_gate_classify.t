# 070_gate_classify.t — `backstop classify` against a real PostgreSQL: targets resolved to OIDs in the
# session's search_path, column facts for WHERE checks, partitions and foreign-key cascades reached,
# user functions, triggers and rules looked up; the policy file and `backstop policy check`.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

my $node = new_pg_node('gate_classify');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('gate_classify');

$node->safe_psql($db, q{
	CREATE TABLE public.users (id serial PRIMARY KEY, email text NOT NULL, deleted_at timestamptz);
	CREATE TABLE public.plain (id int, v text);
	CREATE SCHEMA other;
	CREATE TABLE other.users (id int);
	CREATE TABLE public.parent (id int, k int) PARTITION BY RANGE (k);
	CREATE TABLE public.p1 PARTITION OF public.parent FOR VALUES FROM (0) TO (10);
	CREATE TABLE public.p2 PARTITION OF public.parent FOR VALUES FROM (10) TO (20);
	CREATE TABLE public.accounts (id int PRIMARY KEY);
	CREATE TABLE public.entries (id int, account int REFERENCES public.accounts ON DELETE CASCADE);
	CREATE FUNCTION public.wipe() RETURNS void LANGUAGE plpgsql AS $$BEGIN DELETE FROM public.users; END$$;
	CREATE FUNCTION public.mystery(int) RETURNS int LANGUAGE internal VOLATILE AS 'int4abs';
	CREATE FUNCTION public.calm(int) RETURNS int LANGUAGE internal IMMUTABLE AS 'int4abs';
	CREATE TABLE public.audited (id int);
	CREATE FUNCTION public.audit_trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM public.wipe(); RETURN OLD; END$$;
	CREATE TRIGGER audited_del AFTER DELETE ON public.audited FOR EACH ROW EXECUTE FUNCTION public.audit_trg();
	CREATE TABLE public.ruled (id int);
	CREATE TABLE public.sink (id int);
	CREATE RULE ruled_del AS ON DELETE TO public.ruled DO INSTEAD DELETE FROM public.sink;
	CREATE SCHEMA scratch;
	CREATE TABLE scratch.tmp (id int);
	CREATE ROLE gate_owner;
	CREATE TABLE public.owned_t (id int);
	ALTER TABLE public.owned_t OWNER TO gate_owner;
});

sub oid_of
{
	my ($rel) = @_;
	return $node->safe_psql($db, "SELECT '$rel'::regclass::oid");
}

sub classify
{
	my (@args) = @_;
	my ($rc, $out, $err) = run_backstop('classify', '--json', @args);
	my $j = eval { decode_json($out) };
	return ($rc, $j, "$out\n$err");
}

sub target_names
{
	my ($j) = @_;
	return join ',', map { $_->{name} } map { @{ $_->{targets} } } @{ $j->{statements} };
}

my ($rc, $j, $all);

# Column facts decide whether IS NOT NULL / id > 0 select anything.
($rc, $j, $all) = classify('--db', $conn, 'DELETE FROM users WHERE deleted_at IS NOT NULL');
is($rc, 4, 'IS NOT NULL on a nullable column is a bounded DELETE (LOW, exit 4)') or diag($all);
($rc, $j, $all) = classify('DELETE FROM users WHERE deleted_at IS NOT NULL');
is($rc, 6, 'without --db the same DELETE is HIGH (nullability unknown)') or diag($all);
($rc, $j, $all) = classify('--db', $conn, 'DELETE FROM users WHERE email IS NOT NULL');
is($rc, 6, 'IS NOT NULL on a NOT NULL column matches every row (HIGH)') or diag($all);
($rc, $j, $all) = classify('--db', $conn, 'DELETE FROM users WHERE id > 0');
is($rc, 6, 'id > 0 on a serial key matches every row (HIGH)') or diag($all);
($rc, $j, $all) = classify('--db', $conn, 'DELETE FROM plain WHERE id > 0');
is($rc, 4, 'id > 0 on a plain integer column is bounded (LOW)') or diag($all);

# Targets resolve to OIDs in the session's own search_path.
($rc, $j, $all) = classify('--db', $conn, 'DROP TABLE users');
is($rc, 6, 'DROP TABLE is HIGH');
my $t = $j->{statements}[0]{targets}[0];
is($t->{name}, 'public.users', 'resolved in the default search_path to public.users');
is($t->{oid}, oid_of('public.users'), '... with its OID');
is($j->{statements}[0]{action}, 'checkpoint', 'default policy: HIGH needs a checkpoint');
($rc, $j, $all) = classify('--db', "$conn options='-c search_path=other,public'", 'DROP TABLE users');
$t = $j->{statements}[0]{targets}[0];
is($t->{name}, 'other.users', 'with search_path=other,public the same text names other.users') or diag($all);
is($t->{oid}, oid_of('other.users'), '... and its OID');
($rc, $j, $all) = classify('--db', $conn, 'DROP TABLE IF EXISTS nosuch');
is($j->{statements}[0]{targets}[0]{exists}, JSON::PP::false, 'a missing table is resolved as absent');

# What a statement reaches.
($rc, $j, $all) = classify('--db', $conn, 'DROP TABLE parent');
is(target_names($j), 'public.parent,public.p1,public.p2', 'DROP TABLE of a partitioned table reaches its partitions')
  or diag($all);
($rc, $j, $all) = classify('--db', $conn, 'DELETE FROM accounts');
is(target_names($j), 'public.accounts,public.entries', 'an unbounded DELETE reaches ON DELETE CASCADE children')
  or diag($all);
($rc, $j, $all) = classify('--db', $conn, 'TRUNCATE accounts CASCADE');
is($rc, 6, 'TRUNCATE ... CASCADE with a connection is HIGH (its reach enumerated)') or diag($all);
is(target_names($j), 'public.accounts,public.entries', '... with the referencing table as a target');
($rc, $j, $all) = classify('TRUNCATE accounts CASCADE');
is($rc, 7, 'without a connection TRUNCATE ... CASCADE is CRITICAL');

# User functions, triggers and rules.
($rc, $j, $all) = classify('--db', $conn, 'SELECT public.wipe()');
is($rc, 6, 'a plpgsql function whose body deletes every row is HIGH') or diag($all);
is(target_names($j), 'public.users', '... and its body names the target');
($rc, $j, $all) = classify('--db', $conn, 'SELECT mystery(1)');
is($rc, 6, 'a volatile function whose body the gate cannot see is HIGH') or diag($all);
is($j->{statements}[0]{action}, 'refuse', '... and refused: no recovery point can cover unknown tables');
($rc, $j, $all) = classify('--db', $conn, 'SELECT calm(1)');
is($rc, 0, 'an immutable internal function is SAFE') or diag($all);
($rc, $j, $all) = classify('SELECT mystery(1)');
is($rc, 0, 'without --db user functions are not looked up');
($rc, $j, $all) = classify('--db', $conn, 'DELETE FROM audited WHERE id = 1');
is($rc, 6, 'a keyed DELETE whose trigger wipes a table is HIGH') or diag($all);
like(target_names($j), qr/public\.users/, '... the trigger function\'s target is the statement\'s');
($rc, $j, $all) = classify('--db', $conn, 'DELETE FROM ruled WHERE id = 1');
is($rc, 6, 'a rule that turns a keyed DELETE into a DELETE of every row is HIGH') or diag($all);
like(target_names($j), qr/public\.sink/, '... on the rule\'s table');

# Policy.
my $policy = "$dir/policy.conf";
open my $fh, '>', $policy or die;
print $fh <<'EOP';
# scratch tables may be dropped without a recovery point, by anyone
[rule scratch]
level = high
tables = scratch.*
action = allow

[rule agents]
principal = agent_*
level = >= medium
action = approve

[defaults]
critical = refuse
EOP
close $fh;
($rc, $j, $all) = classify('--db', $conn, '--policy', $policy, 'DROP TABLE scratch.tmp');
is($j->{statements}[0]{action}, 'allow', 'a rule on scratch.* allows dropping scratch.tmp') or diag($all);
($rc, $j, $all) = classify('--db', $conn, '--policy', $policy, 'DROP TABLE scratch.tmp, users');
is($j->{statements}[0]{action}, 'checkpoint', 'the strictest target wins: users still needs a checkpoint')
  or diag($all);
is_deeply($j->{statements}[0]{cover}, [1], '... and only users needs the recovery point');
($rc, $j, $all) = classify('--db', $conn, '--policy', $policy, '--principal', 'agent_7', 'ALTER TABLE users ADD COLUMN c int');
is($j->{statements}[0]{action}, 'approve', 'a principal rule holds MEDIUM statements of agents for approval')
  or diag($all);
my ($prc, $pout, $perr) = run_backstop('policy', 'check', $policy);
is($prc, 0, 'policy check accepts the file');
like($pout, qr/rule "scratch" \(line 2\): level HIGH; tables scratch\.\* -> allow/, 'policy check prints the rules')
  or diag($pout);
like($pout, qr/otherwise: SAFE allow, LOW allow, MEDIUM allow, HIGH checkpoint, CRITICAL refuse/, '... and the defaults');
open $fh, '>', "$dir/bad.conf" or die;
print $fh "[rule x]\nlevel = HUGE\naction = allow\n";
close $fh;
($prc, $pout, $perr) = run_backstop('policy', 'check', "$dir/bad.conf");
is($prc, 2, 'an invalid policy is a usage error');
like($perr, qr/bad\.conf:2: invalid level "HUGE"/, '... naming file, line and value');

# Input forms, refusal, session checks.
open $fh, '>', "$dir/stmts.sql" or die;
print $fh "SELECT 1;\n-- a comment\nDELETE FROM users WHERE id = \$1;\n";
close $fh;
($rc, $j, $all) = classify('-f', "$dir/stmts.sql");
is($rc, 4, '-f FILE: the highest of its statements (LOW)') or diag($all);
is(scalar @{ $j->{statements} }, 2, '... two statements');
($rc, my $out, my $err) = run_backstop({ stdin => "DROP SCHEMA other CASCADE" }, 'classify', '-f', '-');
is($rc, 7, '-f - reads standard input (CRITICAL)');
($rc, $out, $err) = run_backstop('classify', 'SELEC 1');
is($rc, 7, 'unparsable SQL is refused (exit 7)');
like($out, qr/cannot parse: syntax error at or near "SELEC"/, '... saying why');
($rc, $out, $err) = run_backstop('classify', '--db', "$conn options='-c standard_conforming_strings=off'", 'SELECT 1');
is($rc, 1, 'a session with standard_conforming_strings off is not classified');
like($err, qr/standard_conforming_strings = off/, '... with the reason');
($rc, $out, $err) = run_backstop('classify', '--db', 'host=/nonexistent/backstop-gate port=1 connect_timeout=2', 'SELECT 1');
is($rc, 1, 'a database that cannot be reached: the classification fails (exit 1)');
like($err, qr/could not connect to PostgreSQL/, '... saying so');

# What a schema or a role reaches, looked up in the session.
($rc, $j, $all) = classify('--db', $conn, 'DROP SCHEMA other');
is($rc, 7, 'DROP SCHEMA with --db: CRITICAL') or diag($all);
is(target_names($j), 'other,other.users', '... naming the tables in the schema') or diag($all);
($rc, $j, $all) = classify('--db', $conn, 'DROP OWNED BY gate_owner');
is($rc, 7, 'DROP OWNED with --db: CRITICAL') or diag($all);
is(target_names($j), 'gate_owner,public.owned_t', '... naming the tables the role owns') or diag($all);
($rc, $out, $err) = run_backstop('classify', 'SELECT 1', 'SELECT 2');
is($rc, 2, 'two SQL arguments are a usage error');
is($node->safe_psql($db, 'SELECT count(*) FROM pg_class WHERE relname = \'users\''), '2', 'classify ran nothing');

done_testing();
