# BackstopArchiver.pm — one `backstop archive` daemon of an integration test: its options, start, stop, log and checkpoint.
package BackstopArchiver;

=pod

=head1 NAME

BackstopArchiver - an archiver daemon run by a test, with the options the tests share

=head1 SYNOPSIS

  my $a = BackstopArchiver->new(dir => $dir, name => 'main', conn => $conn,
      args => [ '--tables', 'public.t' ]);
  $a->start;
  $a->checkpoint_ok('public.t', 'after the insert');
  ok($a->log_has(qr/base copy done/), '...');
  $a->stop('first run');

Each archiver gets its own storage (C<file://DIR/NAME/archive>), data directory, slot
C<s_NAME>, publication C<p_NAME>, a free port for C<--listen>, a 1 s segment age and a
100 ms table poll; C<args> are appended (a later option wins).  stdout goes to
F<DIR/NAME.out>, stderr (the log) to F<DIR/NAME.log>.

=cut

use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BackstopTest;

sub new
{
	my ($class, %o) = @_;
	my ($dir, $name) = @o{qw(dir name)};
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $self = bless {
		name    => $name,
		conn    => $o{conn},
		storage => "file://$dir/$name/archive",
		listen  => "127.0.0.1:$port",
		log     => "$dir/$name.log",
		out     => "$dir/$name.out",
	}, $class;
	$self->{common} = [ '--db', $o{conn}, '--storage', $self->{storage}, '--data-dir', "$dir/$name/data",
		'--slot', "s_$name", '--publication', "p_$name", '--listen', $self->{listen},
		'--segment-age', '1s', '--table-poll-interval', '100ms' ];
	$self->{extra} = $o{args} // [];
	return $self;
}

# The whole argument list after `archive`.
sub args { my ($self) = @_; return (@{ $self->{common} }, @{ $self->{extra} }) }

# Replaces the arguments given to new() (e.g. another --tables list) for the next start.
sub set_args { my ($self, @args) = @_; $self->{extra} = [@args]; return $self }

sub storage { return $_[0]{storage} }
sub listen  { return $_[0]{listen} }
sub logfile { return $_[0]{log} }

# Starts the daemon; %env is set for it alone (e.g. a test hook variable).
sub start
{
	my ($self, %env) = @_;
	local @ENV{ keys %env } = values %env;
	$self->{h} = kill_at_exit(IPC::Run::start([ backstop_bin(), 'archive', $self->args ],
		'<', \undef, '>>', $self->{out}, '2>>', $self->{log}));
	return $self;
}

# SIGTERM, then a test that it exits 0.
sub stop
{
	my ($self, $what) = @_;
	$self->{h}->signal('TERM');
	$self->{h}->finish;
	is($self->{h}->result(0), 0, "$what: the archiver stops cleanly on SIGTERM") or diag($self->log);
}

sub log { my ($self) = @_; return -e $self->{log} ? slurp_file($self->{log}) : '' }

sub log_has { my ($self, $re) = @_; return $self->log =~ $re }

# A test that a checkpoint of $table succeeds within 90 s (retried: the daemon may still be
# taking its first base copy).
sub checkpoint_ok
{
	my ($self, $table, $what) = @_;
	ok(wait_for("checkpoint of $table",
			sub { (archiver_checkpoint($self->{listen}, $table, '10s'))[0] == 0 }, 90),
		"$what: checkpoint of $table") or diag($self->log);
}

# A metric's value from the daemon's /metrics, or undef.
sub metric
{
	my ($self, $name) = @_;
	my $m = '';
	IPC::Run::run([ 'curl', '-s', "http://$self->{listen}/metrics" ], '>', \$m, '2>', \my $e);
	return $m =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

# recover $table at @point into $into (no indexes), with $conn; returns (exit code, stdout, stderr).
sub recover
{
	my ($self, $conn, $table, $into, @point) = @_;
	return run_backstop('recover', '--db', $conn, '--storage', $self->{storage}, '--table', $table, @point,
		'--into', $into, '--no-indexes');
}

1;
