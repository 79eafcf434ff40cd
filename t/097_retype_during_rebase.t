# 097_retype_during_rebase.t — a column change asks for a new base copy; while that copy is taken
# (its snapshot before the next change), a column is retyped (its text changes) and the stream
# reads it.  The retype's request joined the first one (not recorded apart), and the copy, which
# lies after the first change, met it: the retype's request was lost.  Checkpoints then answered
# for points after the retype, and recovery there failed (exit 3: the copy's rows cannot be
# converted to the new type exactly): t/080 (seed 1203, PostgreSQL 16, after a kill -9 lost the
# next copy) refused --latest.  Now adding the copy asks again, durably, for a copy after the
# retype: checkpoints wait for it, and recovery after it is exact.
#
# Held, not raced: BACKSTOP_TEST_BASE_JOB_END_LOCK holds the first copy's job until the stream
# has read the retype; BACKSTOP_TEST_BASE_COPY_LOCK holds the next copy.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;
use BackstopArchiver;

my $node = new_pg_node('retyperebase');
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('retyperebase');
my ($end_key, $copy_key) = (97097, 97098);

$node->safe_psql($db, q{
	CREATE TABLE public.t (id int PRIMARY KEY, r int, v text);
	INSERT INTO public.t SELECT g, g, 'v' || g FROM generate_series(1, 20) g;
});
my $c = BackstopArchiver->new(dir => $dir, name => 'main', conn => $conn, args => [ '--all-tables' ]);
$c->start(BACKSTOP_TEST_BASE_JOB_END_LOCK => $end_key, BACKSTOP_TEST_BASE_COPY_LOCK => $copy_key);
$c->checkpoint_ok('public.t', 'start');
ok($c->log_has(qr/schema changes are captured in the stream/), 'schema changes are captured');
sub log_count { my ($re) = @_; my @m = $c->log =~ /$re/g; return scalar @m }

# 1. A column added with a volatile default asks for a new base copy; its job is held at the end.
my $holder = $node->background_psql($db);
$holder->query_safe("SELECT pg_advisory_lock($end_key)");
my $copies = log_count(qr/base copy of public\.t at /);
$node->safe_psql($db, 'ALTER TABLE public.t ADD COLUMN a timestamptz DEFAULT clock_timestamp()');
ok(wait_for('the new copy, held at the end of its job', sub {
	log_count(qr/base copy of public\.t at /) > $copies
	  && $node->safe_psql($db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $end_key AND NOT granted") > 0 }, 90),
	'the copy the added column asked for is taken, its job held') or diag($c->log);

# 2. The retype, read by the stream while the copy is not added yet.
$node->safe_psql($db, q{ALTER TABLE public.t ALTER COLUMN r TYPE text USING (r * 10)::text || 'x'});
$node->safe_psql($db, q{UPDATE public.t SET v = 'after the retype' WHERE id = 1});
ok(wait_for('the stream to read the retype', sub { $c->log_has(qr/table public\.t: new column layout \d+ from \S+ \(schema change read from the stream\)[^\n]*\n(?:.*\n)*?.*table public\.t: new column layout \d+ from/) }, 90),
	'the stream reads the retype') or diag($c->log);

# 3. The next copy held; the first one added.
$holder->query_safe("SELECT pg_advisory_lock($copy_key)");
$holder->query_safe("SELECT pg_advisory_unlock($end_key)");
ok(wait_for('the first copy to be added', sub { $c->log_has(qr/base cop(?:y|ies) done/) && $c->log_has(qr/table public\.t: a column retyped at \S+, after the base copy at \S+ was taken, needs a newer copy/) }, 90),
	'adding the copy asks for a newer one (the retype came after it)') or diag($c->log);
my ($rc, $out, $err) = archiver_checkpoint($c->{listen}, 'public.t', '2s');
isnt($rc, 0, 'no checkpoint while the newer copy is held') or diag($out);
my $relid = $node->safe_psql($db, "SELECT 'public.t'::regclass::oid");
like(slurp_file("$dir/main/archive/tables/$relid/manifest.json"), qr/"rebase_requested_at"/,
	'the request is in the manifest (durable)');

# 4. The newer copy: a checkpoint, and --latest exact.
$holder->query_safe("SELECT pg_advisory_unlock($copy_key)");
$holder->quit;
my $sum = content_checksum($node, $db, 'public.t');
$c->checkpoint_ok('public.t', 'the newer copy');
($rc, $out, $err) = $c->recover($conn, 'public.t', 'public.t_r', '--latest');
is($rc, 0, '--latest recovers') or diag("$out\n$err");
is(content_checksum($node, $db, 'public.t_r'), $sum, '--latest is exactly the table');
$c->stop('end');
done_testing();
