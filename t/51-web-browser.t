# The web app in a real browser (docs/testing.md, "Browser tests"):
# t/web/browser.mjs drives Debian's chromium through playwright-core
# against this file's stack -- sign up with a referral link, the mail,
# verify, a streamed answer, stop, the balance, hostile Markdown, out of
# credits, the other screens, an admin -- and takes screenshots of each
# screen at desktop and phone width into build/artifacts/web/.  Its lines
# become tests here; steps that need an API this server lacks (payments,
# referral stats, admin) are skipped with the reason.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use File::Path qw(make_path);
use IO::Handle;
use POSIX ();
use Time::HiRes qw(sleep);
use Miky::Test;
use Miky::FakeOpenAI;
use Miky::Mailer;

my $ROOT = $Miky::Test::ROOT;
my $CHROMIUM = $ENV{MIKY_CHROMIUM} // '/usr/bin/chromium';
my $TIMEOUT = 600;    # seconds for the whole browser run

-x $CHROMIUM or BAIL_OUT("$CHROMIUM not found: run scripts/deps.sh (Debian's chromium)");
-d "$ROOT/node_modules/playwright-core" or BAIL_OUT('playwright-core not installed: run make vendor');
-f "$ROOT/web/vendor/index.js" or BAIL_OUT('web/vendor/ is empty: run make vendor');

my $fake = Miky::FakeOpenAI->new;
my $t = Miky::Test->new(env => $fake->env);
# The admin, whose referral code the new user signs up with (before the
# mailer runs: user() reads its token from the outbox, which a sent mail
# leaves).
my $admin = $t->user(first_name => 'Grace', last_name => 'Hopper');
my ($rc, $out) = $t->run_miky('user', 'promote', $admin->{email});
is($rc, 0, 'miky user promote') or diag($out);

# The mailer writes the dev mailbox (.eml files), as under make run.
start_mailer($t);

my $art = "$ROOT/build/artifacts/web";
make_path($art);
unlink glob "$art/*.png";
my $profile = $t->dir . '/chromium-profile';
make_path($profile);

my %env = (
	%ENV,
	WEB_BASE => $t->base, WEB_MAIL_DIR => $t->mail_dir, WEB_ARTIFACTS => $art,
	WEB_PROFILE => $profile, WEB_CHROMIUM => $CHROMIUM,
	WEB_REF => $admin->{user}{referral_code},
	WEB_ADMIN_EMAIL => $admin->{email}, WEB_ADMIN_PASSWORD => $admin->{password},
);

# node in its own process group, its stdout read here line by line, its
# stdin answering its "call" lines.
pipe(my $from_node, my $node_out) or die "pipe: $!";
pipe(my $node_in, my $to_node) or die "pipe: $!";
my $pid = fork // die "fork: $!";
if (!$pid) {
	POSIX::setsid();
	close $from_node;
	close $to_node;
	open STDIN, '<&', $node_in or POSIX::_exit(126);
	open STDOUT, '>&', $node_out or POSIX::_exit(126);
	%ENV = %env;
	chdir $ROOT;
	{ no warnings 'exec'; exec 'node', 't/web/browser.mjs'; }
	print STDERR "exec node: $!\n";
	POSIX::_exit(127);
}
close $node_out;
close $node_in;
$to_node->autoflush(1);

my %calls = (
	credits => sub {
		my ($email, $n) = @_;
		$t->dbh->do('UPDATE users SET credits = ? WHERE email = ?', undef, $n, lc $email);
	},
);

my $finished = eval {
	local $SIG{ALRM} = sub { die "timeout\n" };
	alarm $TIMEOUT;
	while (my $line = <$from_node>) {
		chomp $line;
		if ($line =~ /^ok - (.*)$/) {
			pass($1);
		} elsif ($line =~ /^not ok - (.*)$/) {
			fail($1);
		} elsif ($line =~ /^skip - (.*?) # (.*)$/) {
			SKIP: { skip("$1: $2", 1) }
		} elsif ($line =~ /^# ?(.*)$/) {
			diag($1);
		} elsif ($line =~ /^call (\w+)\s*(.*)$/) {
			my ($what, @args) = ($1, split ' ', $2);
			$calls{$what} ? $calls{$what}->(@args) : diag("unknown call $what");
			print $to_node "done\n";
		} else {
			diag("node: $line");
		}
	}
	alarm 0;
	1;
};
fail("the browser run ended within ${TIMEOUT}s: $@") unless $finished;

# End what is left: node's group, and any chromium of this profile (it
# may have made a process group of its own).
kill 'TERM', -$pid;
my $status;
for (1 .. 100) {
	last if waitpid($pid, POSIX::WNOHANG()) == $pid && defined($status = $?);
	sleep 0.1;
}
if (!defined $status) {
	kill 'KILL', -$pid;
	waitpid($pid, 0);
	$status = $?;
}
is($status, 0, 'node exited cleanly');

sub browsers {
	my @p;
	for my $dir (glob '/proc/[0-9]*') {
		open my $fh, '<', "$dir/cmdline" or next;
		my $cmd = do { local $/; <$fh> } // '';
		push @p, $dir =~ s{^/proc/}{}r if index($cmd, $profile) >= 0;
	}
	return @p;
}
my @left;
for (1 .. 50) {
	@left = browsers() or last;
	sleep 0.1;
}
kill 'KILL', @left if @left;
ok(!@left, 'no chromium process is left') or diag("killed: @left");
close $from_node;
close $to_node;

stop_mailers();
$t->done;
