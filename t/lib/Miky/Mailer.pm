package Miky::Mailer;

# Miky::Mailer — `miky mailer` processes beside a Miky::Test harness.
#
#   my $m = start_mailer($t, SMTP_URL => $sink->url, MAIL_FROM => '...');
#   ...
#   is(stop_mailer($m), 0, 'SIGTERM: the mailer exits with 0');
#   stop_mailers();    # before $t->done: stops the rest, checks the log
#
# A mailer gets the harness's database (DATABASE_URL => $t->db_url),
# PUBLIC_BASE_URL and MIKY_MAIL_DIR, and nothing of the caller's own
# environment that the app would read; %env goes on top (a value of undef
# removes a variable).  All mailers of a test log to $t->dir/mailer.log,
# one JSON object a line with the pid in it.  start_mailer returns once
# the new mailer listens for queued mail.  stop_mailers checks the log
# like the harness checks the app's: a sanitizer report, a crash or a
# crit line fails the test.

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use Mojo::JSON qw(decode_json);
use POSIX qw(WNOHANG);
use Test::More ();
use Time::HiRes qw(sleep time);

use Miky::Test;

our @EXPORT = qw(start_mailer stop_mailer stop_mailers mailer_log mailer_log_lines);

my $START_TIMEOUT = 15;
my $STOP_TIMEOUT  = 30;
my @MAILERS;    # every mailer started by this process

sub start_mailer {
	my ($t, %env) = @_;
	my $bin = $ENV{MIKY_BIN} // "$Miky::Test::ROOT/build/miky";
	my $log = $t->dir . '/mailer.log';
	my %e = %ENV;
	delete @e{@Miky::Test::APP_VARS};
	delete $e{$_} for grep { /^(?:MIKY_|PG)/ } keys %e;
	%e = (%e,
		DATABASE_URL    => $t->db_url,
		PUBLIC_BASE_URL => $t->base,
		MIKY_MAIL_DIR   => $t->mail_dir,
	);
	for my $k (keys %env) {
		if (defined $env{$k}) { $e{$k} = $env{$k} }
		else                  { delete $e{$k} }
	}
	my $mark = -s $log // 0;
	my $pid = fork // croak "start_mailer: fork: $!";
	if (!$pid) {
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', $log or POSIX::_exit(126);
		open STDERR, '>&', \*STDOUT;
		%ENV = %e;
		{ no warnings 'exec'; exec { $bin } $bin, 'mailer'; }
		print STDERR "exec $bin: $!\n";
		POSIX::_exit(127);
	}
	my $m = bless { pid => $pid, t => $t, log => $log }, __PACKAGE__;
	push @MAILERS, $m;
	my $ok = $t->wait_for(sub {
		!$m->alive || grep {
			($_->{pid} // 0) == $pid && ($_->{msg} // '') eq 'listening on miky_outbox'
		} mailer_log_lines($t)
	}, $START_TIMEOUT, "mailer $pid to listen");
	if (!$ok || !$m->alive) {
		my $news = substr(mailer_log($t), $mark);
		croak "start_mailer: the mailer did not start (status " . ($m->{status} // 'running')
			. "):\n$news";
	}
	return $m;
}

sub pid { $_[0]{pid} }

# alive reaps the mailer if it exited, keeping its wait status.
sub alive {
	my $m = shift;
	return 0 if defined $m->{status};
	my $r = waitpid($m->{pid}, WNOHANG);
	return 1 if $r == 0;
	$m->{status} = $r == $m->{pid} ? $? : -1;
	return 0;
}

# stop_mailer($m, $timeout = 30) sends SIGTERM, waits, and returns the
# exit code (or -1 if it had to be killed or died of a signal).
sub stop_mailer {
	my ($m, $timeout) = @_;
	$timeout //= $STOP_TIMEOUT;
	if ($m->alive) {
		kill 'TERM', $m->{pid};
		my $deadline = time + $timeout;
		sleep 0.02 while $m->alive && time < $deadline;
		if ($m->alive) {
			Test::More::diag("mailer $m->{pid} did not exit ${timeout}s after SIGTERM; SIGKILL");
			kill 'KILL', $m->{pid};
			waitpid $m->{pid}, 0;
			$m->{status} = -1;
		}
	}
	my $st = $m->{status};
	return $st == -1 || ($st & 127) ? -1 : $st >> 8;
}

# stop_mailers stops every mailer still running and checks the log
# (one test); call it before $t->done.
sub stop_mailers {
	my (@allow) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my %logs;
	for my $m (@MAILERS) {
		stop_mailer($m) if $m->alive;
		$logs{ $m->{log} } = $m->{t};
	}
	@MAILERS = ();
	for my $log (sort keys %logs) {
		my @bad = Miky::Test::scan_app_log(mailer_log($logs{$log}), @allow);
		Test::More::ok(!@bad, 'mailer log has no crash, sanitizer report or crit line')
			or Test::More::diag(join "\n", "in $log:", @bad[0 .. ($#bad > 19 ? 19 : $#bad)]);
	}
}

# mailer_log($t) is the text of the mailers' log so far.
sub mailer_log {
	my $t = shift;
	open my $fh, '<:raw', $t->dir . '/mailer.log' or return '';
	local $/;
	return <$fh> // '';
}

# mailer_log_lines($t) are its JSON lines, decoded.
sub mailer_log_lines {
	my $t = shift;
	return grep { ref eq 'HASH' }
		map { my $l = $_; eval { decode_json($l) } }
		grep { /^\{/ } split /\n/, mailer_log($t);
}

END {
	local $?;
	for my $m (@MAILERS) {
		next unless $m->alive;
		kill 'TERM', $m->{pid};
		my $deadline = time + 10;
		sleep 0.02 while $m->alive && time < $deadline;
		if ($m->alive) {
			kill 'KILL', $m->{pid};
			waitpid $m->{pid}, 0;
		}
	}
}

1;
