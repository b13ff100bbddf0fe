package Miky::SMTPSink;

# Miky::SMTPSink — a small SMTP server for tests, on a loopback port.
#
# It speaks enough ESMTP for a client such as libcurl (EHLO/HELO, MAIL
# FROM, RCPT TO, DATA with dot-unstuffing, RSET, NOOP, QUIT; no STARTTLS
# and no AUTH offered) and keeps every message it accepts as a file, the
# bytes exactly as received (after unstuffing), with its envelope beside:
#
#   my $sink = Miky::SMTPSink->new(dir => $t->dir . '/sink');
#   ... SMTP_URL => $sink->url ...
#   my ($m) = $sink->wait_for_messages(to => 'a@example.com');
#   $m->{from}, $m->{to} (array), $m->{data} (the message), $m->{file}
#   $sink->stop;     # nothing listens: connections are refused
#   $sink->start;    # listening again, on the same port
#   $sink->commands; # every command line received so far, in order
#
# new(host => '192.0.2.2') listens on another local address than
# 127.0.0.1 (the TLS test needs a host that is not loopback).
#
# The server runs in a forked child that serves any number of clients
# at once.  It is stopped when the object goes away or the test ends.

use strict;
use warnings;

use Carp qw(croak);
use File::Path qw(make_path);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

my $HOST = 'sink.miky.test';
my %LIVE;    # pid => 1 for every child still running, for END

# new(dir => $dir, port => $port, start => 1): the messages go to $dir
# (made if missing); without a port a free one is picked at the first
# start.
sub new {
	my ($class, %opt) = @_;
	my $self = bless {
		dir   => $opt{dir} // croak('Miky::SMTPSink->new: dir is required'),
		port  => $opt{port},
		host  => $opt{host} // '127.0.0.1',
		owner => $$,
	}, $class;
	make_path($self->{dir});
	$self->start if $opt{start} // 1;
	return $self;
}

sub dir  { $_[0]{dir} }
sub port { $_[0]{port} }
sub host { $_[0]{host} }
sub url  { "smtp://$_[0]{host}:$_[0]{port}" }

# commands lists the command lines clients sent (not message data).
sub commands {
	my $self = shift;
	open my $fh, '<:raw', "$self->{dir}/commands.log" or return;
	chomp(my @l = <$fh>);
	return @l;
}

# running is true while the server child is alive.
sub running {
	my $self = shift;
	my $pid = $self->{pid} or return 0;
	return 1 if waitpid($pid, WNOHANG) == 0;
	delete $LIVE{$pid};
	delete $self->{pid};
	return 0;
}

# start listens (on the port of the last start, if any) and serves in a
# child process.  It returns once the port accepts connections.
sub start {
	my $self = shift;
	croak 'Miky::SMTPSink: already running' if $self->running;
	my $listen;
	for my $try (1 .. 50) {
		$listen = IO::Socket::INET->new(Listen => 32, LocalAddr => $self->{host},
			LocalPort => $self->{port} // 0, Proto => 'tcp', ReuseAddr => 1)
			and last;
		sleep 0.1;    # the old child may still be letting go of the port
	}
	$listen or croak "Miky::SMTPSink: cannot listen on port " . ($self->{port} // 0) . ": $!";
	$self->{port} = $listen->sockport;
	my $pid = fork // croak "Miky::SMTPSink: fork: $!";
	if (!$pid) {
		# No END blocks, no test output from here: leave with _exit.
		$SIG{$_} = 'DEFAULT' for qw(INT HUP);
		$SIG{TERM} = sub { POSIX::_exit(0) };
		eval { $self->_serve($listen) };
		print STDERR "Miky::SMTPSink: $@" if $@;
		POSIX::_exit($@ ? 1 : 0);
	}
	# Only the child listens, so that stop() leaves nothing listening.
	close $listen;
	$self->{pid} = $pid;
	$LIVE{$pid} = 1;
	return $self;
}

# stop ends the server; afterwards connections to the port are refused.
sub stop {
	my $self = shift;
	my $pid = $self->{pid} or return $self;
	kill 'TERM', $pid;
	my $deadline = time + 5;
	while ($self->running && time < $deadline) {
		sleep 0.02;
	}
	if ($self->running) {
		kill 'KILL', $pid;
		waitpid $pid, 0;
	}
	delete $LIVE{$pid};
	delete $self->{pid};
	return $self;
}

sub restart { $_[0]->stop->start }

# messages(to => $addr) lists the messages received (only those with
# $addr among the recipients, if given), oldest first, as hashes
# { file, from, to => [...], data }.
sub messages {
	my ($self, %f) = @_;
	opendir my $d, $self->{dir} or return;
	my @files = sort grep { /^\d+\.eml$/ } readdir $d;
	closedir $d;
	my @m;
	for my $f (@files) {
		my $m = $self->read_message("$self->{dir}/$f") or next;
		next if defined $f{to} && !grep { lc $_ eq lc $f{to} } @{ $m->{to} };
		push @m, $m;
	}
	return @m;
}

# read_message($file) is one stored message as a hash (see messages).
sub read_message {
	my ($self, $file) = @_;
	(my $env = $file) =~ s/\.eml$/.env/;
	my %m = (file => $file, to => []);
	open my $fh, '<:raw', $file or return;
	{ local $/; $m{data} = <$fh> // '' }
	close $fh;
	open $fh, '<', $env or return;
	while (my $line = <$fh>) {
		chomp $line;
		$m{from} = $1 if $line =~ /^from (.*)$/;
		push @{ $m{to} }, $1 if $line =~ /^to (.*)$/;
	}
	close $fh;
	return \%m;
}

# wait_for_messages(to => $addr, count => 1, timeout => 15) waits until
# at least `count` matching messages are there and returns them all
# (the empty list on timeout).
sub wait_for_messages {
	my ($self, %o) = @_;
	my $count = delete $o{count} // 1;
	my $timeout = delete $o{timeout} // 15;
	my $deadline = time + $timeout;
	while (1) {
		my @m = $self->messages(%o);
		return @m if @m >= $count;
		return if time > $deadline;
		sleep 0.05;
	}
}

sub DESTROY {
	my $self = shift;
	local ($@, $!, $?);
	$self->stop if $$ == $self->{owner};
}

END {
	local $?;
	for my $pid (keys %LIVE) {
		kill 'KILL', $pid;
		waitpid $pid, 0;
	}
}

# --- the server (in the child) -----------------------------------------------

sub _serve {
	my ($self, $listen) = @_;
	my $sel = IO::Select->new($listen);
	my %conn;
	opendir my $d, $self->{dir} or die "opendir $self->{dir}: $!\n";
	my ($seq) = sort { $b <=> $a } map { /^(\d+)\.eml$/ ? $1 : () } readdir $d;
	closedir $d;
	$self->{seq} = $seq // 0;
	while (1) {
		for my $fh ($sel->can_read) {
			if ($fh == $listen) {
				my $s = $listen->accept or next;
				$sel->add($s);
				$conn{ fileno $s } = { sock => $s, in => '', to => [] };
				_say($s, "220 $HOST ESMTP Miky test sink");
				next;
			}
			my $c = $conn{ fileno $fh };
			my $n = sysread $fh, my $chunk, 65536;
			if (!$n || !$self->_input($c, $chunk)) {
				$sel->remove($fh);
				delete $conn{ fileno $fh };
				close $fh;
			}
		}
	}
}

# _input takes what a client sent; false once the connection is to end.
sub _input {
	my ($self, $c, $chunk) = @_;
	$c->{in} .= $chunk;
	while ($c->{in} =~ s/\A(.*?)(\r?\n)//s) {
		my ($line, $eol) = ($1, $2);
		if (defined $c->{data}) {
			if ($line eq '.') {
				$self->_store($c);
				_say($c->{sock}, "250 2.0.0 OK queued as $self->{seq}");
				_reset($c);
				next;
			}
			$line =~ s/\A\.//;    # dot-unstuffing (RFC 5321 4.5.2)
			$c->{data} .= $line . $eol;
			next;
		}
		return 0 unless $self->_command($c, $line);
	}
	return 1;
}

sub _reset {
	my $c = shift;
	delete @{$c}{qw(from data)};
	$c->{to} = [];
}

# _command answers one command line; false after QUIT.
sub _command {
	my ($self, $c, $line) = @_;
	my $s = $c->{sock};
	if (open my $log, '>>:raw', "$self->{dir}/commands.log") {
		print $log "$line\n";
		close $log;
	}
	if ($line =~ /\AEHLO\s+(\S+)/i) {
		_reset($c);
		_say($s, "250-$HOST greets $1", '250-8BITMIME', '250-SIZE 10485760',
			'250 ENHANCEDSTATUSCODES');
	} elsif ($line =~ /\AHELO\s+\S+/i) {
		_reset($c);
		_say($s, "250 $HOST");
	} elsif ($line =~ /\AMAIL FROM:\s*<([^>]*)>/i) {
		_reset($c);
		$c->{from} = $1;
		_say($s, '250 2.1.0 OK');
	} elsif ($line =~ /\ARCPT TO:\s*<([^>]+)>/i) {
		if (!defined $c->{from}) {
			_say($s, '503 5.5.1 MAIL first');
		} else {
			push @{ $c->{to} }, $1;
			_say($s, '250 2.1.5 OK');
		}
	} elsif ($line =~ /\ADATA\s*\z/i) {
		if (!@{ $c->{to} }) {
			_say($s, '503 5.5.1 RCPT first');
		} else {
			$c->{data} = '';
			_say($s, '354 End data with <CR><LF>.<CR><LF>');
		}
	} elsif ($line =~ /\ARSET\s*\z/i) {
		_reset($c);
		_say($s, '250 2.0.0 OK');
	} elsif ($line =~ /\ANOOP\b/i) {
		_say($s, '250 2.0.0 OK');
	} elsif ($line =~ /\AQUIT\s*\z/i) {
		_say($s, "221 2.0.0 $HOST closing");
		return 0;
	} elsif ($line =~ /\A(?:MAIL|RCPT)\b/i) {
		_say($s, '501 5.5.4 Syntax error');
	} else {
		_say($s, '502 5.5.2 Command not implemented');
	}
	return 1;
}

# _store writes the message and its envelope, each to a temporary name
# first: a reader sees a message whole or not at all.
sub _store {
	my ($self, $c) = @_;
	my $base = sprintf '%s/%06d', $self->{dir}, ++$self->{seq};
	_write("$base.env", join '', "from $c->{from}\n", map { "to $_\n" } @{ $c->{to} });
	_write("$base.eml", $c->{data});
}

sub _write {
	my ($file, $bytes) = @_;
	open my $fh, '>:raw', "$file.tmp" or die "write $file.tmp: $!\n";
	print $fh $bytes;
	close $fh or die "close $file.tmp: $!\n";
	rename "$file.tmp", $file or die "rename $file: $!\n";
}

sub _say {
	my ($s, @lines) = @_;
	my $out = join '', map { "$_\r\n" } @lines;
	while (length $out) {
		my $n = syswrite $s, $out;
		return unless defined $n;    # the client went away
		substr($out, 0, $n) = '';
	}
}

1;
