# 089_checkpoint_named_lsn.t — a checkpoint that names its LSN, once the stream has passed it and
# schema changes are captured, asks PostgreSQL nothing: no query of the archiver's session runs on
# its event loop (the statements are counted in the server's log, log_statement = all).  A
# checkpoint without an LSN still reads the server's position (the log shows it), and the named
# point's answer is the same as before: 200, the requested LSN, verified.
use strict;
use warnings;

use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;
use BackstopArchiver;

my $node = new_pg_node('named_lsn', extra_conf => "log_statement = 'all'\nlog_line_prefix = '%m [%p] app=%a '\n");
my $db = 'postgres';
my $conn = node_connstr($node, $db);
my $dir = scratch_dir('named_lsn');
my $http = HTTP::Tiny->new(timeout => 60);

$node->safe_psql($db, q{CREATE TABLE public.t (id int PRIMARY KEY, v text);
	INSERT INTO public.t SELECT g, md5(g::text) FROM generate_series(1, 100) g;});

# No table check while the statements are counted: it queries on the same session.
my $a = BackstopArchiver->new(dir => $dir, name => 'main', conn => $conn,
	args => [ '--tables', 'public.t', '--table-poll-interval', '1h' ]);
$a->start;
$a->checkpoint_ok('public.t', 'first base copy');
ok($a->log_has(qr/schema changes are captured in the stream/), 'schema changes are captured') or diag($a->log);

# The archiver's own statements (its non-replication session) logged after $from bytes.
sub archiver_statements
{
	my ($from) = @_;
	my $log = slurp_file($node->logfile, $from);
	return grep { /app=backstop archive LOG:  (?:statement|execute [^:]*): / } split /\n/, $log;
}

$node->safe_psql($db, "INSERT INTO public.t VALUES (1001, 'x')");
my $lsn = $node->safe_psql($db, 'SELECT pg_current_wal_insert_lsn()');

# A checkpoint "now" after the insert: once answered, the stream has passed $lsn.
my $from = -s $node->logfile;
my $r = $http->post("http://" . $a->listen . "/checkpoint?table=public.t&timeout_ms=60000");
is($r->{status}, 200, 'a checkpoint without an LSN is answered') or diag($r->{content});
my @now = archiver_statements($from);
ok((grep { /pg_current_wal_insert_lsn/ } @now), 'it read the server position on the archiver\'s session (the log sees it)')
	or diag(join("\n", @now));

# The named point: nothing asked of PostgreSQL.
$from = -s $node->logfile;
$r = $http->post("http://" . $a->listen . "/checkpoint?table=public.t&lsn=$lsn&timeout_ms=60000");
is($r->{status}, 200, 'a checkpoint naming an LSN the stream has passed is answered') or diag($r->{content});
my $ans = eval { decode_json($r->{content}) } // {};
is($ans->{requested_lsn}, $lsn, 'at the LSN it named');
is($ans->{table}, 'public.t', 'of the table');
ok($ans->{verified}, 'verified');
my @named = archiver_statements($from);
is(scalar(@named), 0, 'and no query ran on the archiver\'s session for it') or diag(join("\n", @named));

# The point is a real one: recovered there, the table has the row.
my ($rc, $out, $err) = $a->recover($conn, 'public.t', 'public.r1', '--to-lsn', $lsn);
is($rc, 0, 'recovered at the named point') or diag("$out\n$err");
is($node->safe_psql($db, 'SELECT count(*) FROM public.r1'), '101', 'with every row up to it');

$a->stop('end');
done_testing();
