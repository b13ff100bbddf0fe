package Miky::FakePeer;

# Miky::FakePeer — what the fakes of outside peers (Miky::FakeOpenAI,
# Miky::FakeStripe) share: a Mojolicious daemon in a forked child, on a
# loopback port the parent bound (so there is no race for it), a log of
# what it received as JSON lines in its own temp dir, and its end with
# the test.
#
#   package Miky::FakeX; use parent -norequire, 'Miky::FakePeer';
#   sub new { my $self = bless { ... }, shift; return $self->start('x') }
#   sub _serve { my ($self, $fd, $ppid) = @_; ... $self->daemon($app, $fd, $ppid) }
#
# The child calls $self->_serve($fd, $ppid); its handlers write with
# $self->_record(\%hash) and the parent reads the lines back with
# $self->records.

use strict;
use warnings;

use Carp qw(croak);
use Fcntl qw(:flock);
use File::Path qw(remove_tree);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Mojo::IOLoop;
use Mojo::JSON qw(decode_json encode_json);
use Mojo::Server::Daemon;
use POSIX ();
use Time::HiRes qw(sleep);

my @LIVE;

sub port { $_[0]{port} }
sub dir  { $_[0]{dir} }

# start($name): the temp dir, the log, the port and the child; returns
# $self.  The fake is stopped at the end of the test (or by stop()).
sub start {
	my ($self, $name) = @_;
	my $parent = $ENV{MIKY_TEST_TMP} // File::Spec->tmpdir;
	$self->{owner} = $$;
	$self->{dir} = tempdir("miky-$name-XXXXXX", DIR => $parent, CLEANUP => 0);
	chmod 0755, $self->{dir};
	$self->{log} = "$self->{dir}/requests.jsonl";
	open my $fh, '>', $self->{log} or croak "$self->{log}: $!";
	close $fh;
	my $sock = IO::Socket::INET->new(Listen => 1024, LocalAddr => '127.0.0.1',
		LocalPort => 0, Proto => 'tcp', ReuseAddr => 1)
		or croak "fake $name: no port: $!";
	$self->{port} = $sock->sockport;
	my $fd = fileno $sock;
	my $ppid = $$;
	my $pid = fork // croak "fork: $!";
	if (!$pid) {
		# Never run the test's END blocks or Test::Builder's checks.
		$SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
		$SIG{PIPE} = 'IGNORE';
		my $ok = eval { $self->_serve($fd, $ppid); 1 };
		print STDERR "fake $name: $@" unless $ok;
		POSIX::_exit($ok ? 0 : 1);
	}
	close $sock;
	$self->{pid} = $pid;
	push @LIVE, $self;
	return $self;
}

# daemon($app, $fd, $ppid, %opt): serves $app on the bound socket until
# the test (the parent) is gone.  %opt goes to Mojo::Server::Daemon.
sub daemon {
	my ($self, $app, $fd, $ppid, %opt) = @_;
	my $daemon = Mojo::Server::Daemon->new(app => $app, silent => 1,
		listen => ["http://127.0.0.1?fd=$fd"], %opt);
	Mojo::IOLoop->recurring(0.5 => sub { Mojo::IOLoop->stop if getppid() != $ppid });
	$daemon->run;
}

# The child's log: one JSON line per call.
sub _record {
	my ($self, $r) = @_;
	open my $fh, '>>:raw', $self->{log} or return;
	flock $fh, LOCK_EX;
	print $fh encode_json($r) . "\n";
	close $fh;
}

# The lines logged so far, oldest first (a line being written is left).
sub records {
	my $self = shift;
	open my $fh, '<:raw', $self->{log} or return;
	my @all;
	while (my $line = <$fh>) {
		next unless $line =~ /\n\z/;
		my $r = eval { decode_json($line) } or next;
		push @all, $r;
	}
	close $fh;
	return @all;
}

sub stop {
	my $self = shift;
	return if $$ != ($self->{owner} // 0);
	my $pid = delete $self->{pid} or return;
	kill 'TERM', $pid;
	for (1 .. 100) {
		last if waitpid($pid, POSIX::WNOHANG()) != 0;
		sleep 0.05;
	}
	if (kill 0, $pid) {
		kill 'KILL', $pid;
		waitpid($pid, 0);
	}
	remove_tree($self->{dir}) unless ($ENV{MIKY_TEST_KEEP} // '') eq '1';
}

sub DESTROY { local ($@, $!, $?); $_[0]->stop }
END { local ($@, $!, $?); $_->stop for grep { defined } @LIVE }

1;
