# The web app in a real browser (docs/testing.md, "Browser tests"):
# t/web/browser.mjs drives Debian's chromium through playwright-core
# against this file's stack, every API real (the fake OpenAI and the fake
# Stripe are the only stand-ins): sign up with a referral link, the mail,
# verify, a streamed answer, stop, the balance, hostile Markdown, out of
# credits; a credit pack and a plan through Stripe Checkout and its return
# pages; the referrer's stats and a cash-out; an admin who adjusts credits,
# pays the cash-out and saves a setting -- and takes screenshots of each
# screen at desktop and phone width into build/artifacts/web/.  Its lines
# become tests here; its "call" lines are answered here: the database and
# the webhook deliveries are this side's.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use File::Path qw(make_path);
use IO::Handle;
use Mojo::JSON qw(encode_json);
use POSIX ();
use Time::HiRes qw(sleep);
use Miky::Test;
use Miky::FakeOpenAI;
use Miky::FakeStripe qw(event deliver checkout_session invoice);
use Miky::Mailer;

my $ROOT = $Miky::Test::ROOT;
my $CHROMIUM = $ENV{MIKY_CHROMIUM} // '/usr/bin/chromium';
my $TIMEOUT = 600;    # seconds for the whole browser run

-x $CHROMIUM or BAIL_OUT("$CHROMIUM not found: run scripts/deps.sh (Debian's chromium)");
-d "$ROOT/node_modules/playwright-core" or BAIL_OUT('playwright-core not installed: run make vendor');
-f "$ROOT/web/vendor/index.js" or BAIL_OUT('web/vendor/ is empty: run make vendor');

my $fake = Miky::FakeOpenAI->new;
my $stripe = Miky::FakeStripe->new;
my $t = Miky::Test->new(env => { %{ $fake->env }, %{ $stripe->env } });
my $dbh = $t->dbh;
# Made before the mailer runs: user() reads its token from the outbox,
# which a sent mail leaves.  Grace invites: the browser's new user signs
# up with her link, and so does Alan, who never chats (a pending
# referral).  Margaret is the administrator.
my $referrer = $t->user(first_name => 'Grace', last_name => 'Hopper');
my $code = $referrer->{user}{referral_code};
$t->user(first_name => 'Alan', last_name => 'Turing', referral_code => $code);
my $admin = $t->admin(first_name => 'Margaret', last_name => 'Hamilton');

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
	WEB_REF => $code,
	WEB_REFERRER_EMAIL => $referrer->{email}, WEB_REFERRER_PASSWORD => $referrer->{password},
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

# What node may ask for: each answers one line (JSON, or "done").
my %calls = (
	# credits EMAIL N: that balance, set in the database.
	credits => sub {
		my ($email, $n) = @_;
		$dbh->do('UPDATE users SET credits = ? WHERE email = ?', undef, $n, lc $email);
		return 'done';
	},
	# cash EMAIL CENTS: referral cash earned, as t/73-admin-money.t gives it.
	cash => sub {
		my ($email, $cents) = @_;
		$dbh->do('UPDATE users SET cash_earned = cash_earned + ?::numeric / 100 WHERE email = ?',
			undef, $cents, lc $email);
		return 'done';
	},
	# checkout ID: the Checkout Session the app asked the fake Stripe for
	# (mode, metadata, the return pages with the session's id filled in
	# as Stripe fills it in).
	checkout => sub {
		my $id = shift;
		my ($f) = session_form($id) or return encode_json({});
		my %meta = map { /^metadata\[(\w+)\]$/ ? ($1 => $f->{$_}) : () } keys %$f;
		return encode_json({ mode => $f->{mode}, metadata => \%meta,
			success_url => $f->{success_url} =~ s/\{CHECKOUT_SESSION_ID\}/$id/r,
			cancel_url => $f->{cancel_url} });
	},
	# pay ID: Stripe's side of a paid Checkout Session -- the signed
	# webhook events it sends (a pack: checkout.session.completed; a plan:
	# that and the first invoice.paid; its subscription is kept by the
	# fake for later changes); answers their HTTP statuses.
	pay => sub {
		my $id = shift;
		my ($f) = session_form($id) or return encode_json({ codes => [] });
		my %s = (id => $id, user => $f->{'metadata[user_id]'}, customer => $f->{customer}, mode => $f->{mode});
		my @events;
		if ($f->{mode} eq 'payment') {
			push @events, event('checkout.session.completed', checkout_session(%s,
				pack => $f->{'metadata[pack]'}, credits => $f->{'metadata[credits]'},
				amount => 0 + $f->{'line_items[0][price_data][unit_amount]'}));
		} else {
			my $plan = $f->{'metadata[plan]'};
			my $price = plan_named($plan)->{price_cents};
			my $sub = $stripe->add_subscription(customer => $f->{customer}, price => $f->{'line_items[0][price]'},
				user => $s{user}, plan => $plan);
			# The invoice first: the return page then sees the plan and
			# its credits arrive together.
			push @events,
				event('invoice.paid', invoice(customer => $f->{customer}, subscription => $sub->{id},
					price => $f->{'line_items[0][price]'}, reason => 'subscription_create', amount => $price,
					metadata => { user_id => $s{user}, plan => $plan })),
				event('checkout.session.completed', checkout_session(%s, plan => $plan,
					subscription => $sub->{id}, amount => $price));
		}
		return encode_json({ codes => [ map { 0 + (deliver($t, $_)->res->code // 0) } @events ] });
	},
	plan => sub { encode_json(plan_named(shift) // {}) },    # ID: the plan as GET /api/payments/plans has it
	# What the UI's changes left in the database, for node to check.
	ledger => sub {    # EMAIL: the newest credit_ledger row
		return encode_json($dbh->selectrow_hashref(q{SELECT l.reason, l.delta, l.balance_after
			FROM credit_ledger l JOIN users u ON u.id = l.user_id WHERE u.email = ?
			ORDER BY l.id DESC LIMIT 1}, undef, lc shift) // {});
	},
	cashouts => sub {    # EMAIL: cash-outs, cash paid out
		my $email = lc shift;
		return encode_json({
			cashouts => $dbh->selectall_arrayref(q{SELECT x.status, (x.amount * 100)::bigint AS cents,
				x.cashout_method AS method, x.cashout_destination AS destination FROM transactions x JOIN users u ON u.id = x.user_id
				WHERE u.email = ? AND x.type = 'cashout' ORDER BY x.created_at}, { Slice => {} }, $email),
			paid_out_cents => 0 + $dbh->selectrow_array(q{SELECT (cash_paid_out * 100)::bigint FROM users
				WHERE email = ?}, undef, $email) });
	},
	user => sub {    # EMAIL: plan, subscription status, credits
		return encode_json($dbh->selectrow_hashref(q{SELECT plan, subscription_status, credits
			FROM users WHERE email = ?}, undef, lc shift) // {});
	},
	setting => sub {    # KEY: its stored value (JSON), or null
		my ($v) = $dbh->selectrow_array('SELECT value::text FROM admin_settings WHERE key = ?', undef, shift);
		return $v // 'null';
	},
);

sub plan_named {
	my $id = shift;
	my ($p) = grep { $_->{id} eq $id } @{ $t->json_req(GET => '/api/payments/plans')->res->json('/plans') // [] };
	return $p;
}

# The form the app sent Stripe for Checkout Session ID.
sub session_form {
	my $id = shift;
	my ($req) = grep { ($_->{answer}{id} // '') eq $id } $stripe->requests(path => '/v1/checkout/sessions');
	return $req ? $req->{form} : ();
}

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
			my $answer = $calls{$what} ? eval { $calls{$what}->(@args) } : undef;
			diag("call $what: " . ($@ || 'unknown')) unless defined $answer;
			print $to_node(($answer // 'null') . "\n");
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
