#!/usr/bin/perl
# `miky check-ledger`: passes on a ledger the app wrote, and catches each
# thing it checks when broken by hand, naming the user: a balance that is
# not the sum of its ledger, a credit hold the sweeper never refunded, a
# cash-out pending too long, referral cash available below zero.  Exit
# status 0, 1 (problems) or 2 (usage, no database).
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is);

# No janitor rounds during the test (a stale hold must stay stale).
my $t = Miky::Test->new(env => { MIKY_SWEEP_MS => 3_600_000, MIKY_STANDIN_DELAY_MS => 0 });
my $dbh = $t->dbh;
sub check { $t->run_miky('check-ledger', @_) }
# Referral cash as the app moves it: users.cash_earned with its
# cash_ledger row.
my $cash_ref = 0;
sub cash {
	my ($id, $cents, $reason) = @_;
	$dbh->do(q{UPDATE users SET cash_earned = cash_earned + ?::bigint / 100.0 WHERE id = ?}, undef, $cents, $id);
	$dbh->do(q{INSERT INTO cash_ledger (user_id, delta_cents, earned_after_cents, reason, ref)
		SELECT id, ?, (cash_earned * 100)::bigint, ?, ? FROM users WHERE id = ?},
		undef, $cents, $reason // 'referral', 'test' . ++$cash_ref, $id);
}

my ($code, $out) = check();
is($code, 0, 'an empty database passes') or diag $out;
is($out, "check-ledger: ok\n", 'and says ok');

# A ledger the app wrote: sign-ups, chat turns, admin credits, a cash-out.
my $admin = $t->admin(first_name => 'Ada');
my $u = $t->user(first_name => 'Uma');
my $v = $t->user(first_name => 'Vic');
for (1 .. 3) {
	is($t->json_req(POST => '/api/chat/send', { content => 'hi' }, $t->auth($u))->res->code, 201, 'a chat turn');
}
$t->json_req(PUT => "/api/admin/users/$v->{id}", { credits_delta => -40 }, $t->auth($admin));
$t->json_req(PUT => "/api/admin/users/$v->{id}", { credits_delta => 15 }, $t->auth($admin));
cash($v->{id}, 3000);
$dbh->do(q{INSERT INTO transactions (user_id, type, amount, status) VALUES (?, 'cashout', 20, 'pending')},
	undef, $v->{id});
($code, $out) = check();
is($code, 0, 'after chat turns, admin credits and a cash-out: passes') or diag $out;

# --- a balance broken by hand ------------------------------------------------------

$dbh->do(q{UPDATE users SET credits = credits + 7 WHERE id = ?}, undef, $u->{id});
($code, $out) = check();
is($code, 1, 'a balance off its ledger: exit 1');
my $credits = $dbh->selectrow_array('SELECT credits FROM users WHERE id = ?', undef, $u->{id});
like($out, qr/^balance: user \Q$u->{id}\E <\Q$u->{email}\E> has $credits credits, but the ledger sums to @{[ $credits - 7 ]}$/m,
	'the line names the user, the balance and the ledger sum');
like($out, qr/^check-ledger: 1 problem$/m, 'one problem');
unlike($out, qr/\Q$v->{id}\E/, 'the other users are not named');
$dbh->do(q{UPDATE users SET credits = credits - 7 WHERE id = ?}, undef, $u->{id});
is((check())[0], 0, 'put back: passes');

# A ledger row without its balance change is caught the same way.
$dbh->do(q{INSERT INTO credit_ledger (user_id, delta, balance_after, reason) VALUES (?, 5, 5, 'admin')},
	undef, $v->{id});
($code, $out) = check();
is($code, 1, 'a ledger row with no balance change: exit 1');
like($out, qr/^balance: user \Q$v->{id}\E /m, 'names that user');

# Referral cash earned without its cash ledger row, likewise.
$dbh->do(q{UPDATE users SET cash_earned = cash_earned + 1 WHERE id = ?}, undef, $u->{id});
($code, $out) = check();
like($out, qr/^earned: user \Q$u->{id}\E <\Q$u->{email}\E> has 100 cents of referral cash earned, but the cash ledger sums to 0$/m,
	'cash earned off its cash ledger: named');
$dbh->do(q{UPDATE users SET cash_earned = cash_earned - 1 WHERE id = ?}, undef, $u->{id});

# --- a stale credit hold -----------------------------------------------------------

$dbh->do(q{DELETE FROM credit_ledger WHERE user_id = ? AND reason = 'admin' AND ref IS NULL}, undef, $v->{id});
$dbh->do(q{INSERT INTO credit_holds (user_id, kind, credits, refund_reason, ref, expires_at)
	VALUES (?, 'chat', 2, 'chat_refund', 'stale', now() - interval '30 seconds')}, undef, $u->{id});
is((check())[0], 0, 'a hold just expired is left to the sweeper');
$dbh->do(q{UPDATE credit_holds SET expires_at = now() - interval '3 hours' WHERE ref = 'stale'});
($code, $out) = check();
is($code, 1, 'a hold three hours past its expiry: exit 1');
like($out, qr/^hold: user \Q$u->{id}\E <\Q$u->{email}\E> has hold [0-9a-f-]{36} of 2 credits, expired \d+ s ago and not refunded$/m,
	'names the user and the hold');

# The sweeper refunds it (with its ledger row), and all is well.
$t->stop_app;
$t->start_app(env => { MIKY_SWEEP_MS => 200 });
ok($t->wait_for(sub { !$dbh->selectrow_array(q{SELECT count(*) FROM credit_holds WHERE ref = 'stale'}) }, 20,
	'the sweeper'), 'the sweeper refunded it');
$t->allow_log(qr/expired unsettled: refunded/);
($code, $out) = check();
is($code, 0, 'then it passes: the refund has its ledger row') or diag $out;

# --- cash-outs and cash ---------------------------------------------------------------

$dbh->do(q{UPDATE transactions SET created_at = now() - interval '10 days' WHERE type = 'cashout'});
($code, $out) = check();
is($code, 1, 'a cash-out pending for 10 days: exit 1');
like($out, qr/^cashout: user \Q$v->{id}\E <\Q$v->{email}\E> has cash-out [0-9a-f-]{36} of 2000 cents pending for 10 days$/m,
	'names the user, the cash-out and its age');
is((check('--cashout-days', 30))[0], 0, '--cashout-days 30: passes');
is((check('--cashout-days', 10))[0], 1, '--cashout-days 10: not yet');

cash($v->{id}, -2500, 'clawback');
($code, $out) = check('--cashout-days', 30);
is($code, 1, 'more pending than earned: exit 1');
like($out, qr/^cash: user \Q$v->{id}\E <\Q$v->{email}\E> has -1500 cents of referral cash available, below zero$/m,
	'names the user and the amount');

# Every problem at once, one line each.
$dbh->do(q{UPDATE users SET credits = credits + 1 WHERE id = ?}, undef, $admin->{id});
($code, $out) = check();
is($code, 1, 'three problems: exit 1');
is(scalar(() = $out =~ /^(?:balance|hold|cashout|cash): /mg), 3, 'three lines');
like($out, qr/^check-ledger: 3 problems$/m, 'counted');

# --- usage -------------------------------------------------------------------------------

for my $args (['--bogus'], ['--cashout-days'], ['--cashout-days', 'x'], ['--cashout-days', '-1']) {
	($code, $out) = check(@$args);
	is($code, 2, "check-ledger @$args: exit 2");
	like($out, qr/usage: miky check-ledger/, 'with the usage');
}
($code, $out) = $t->run_miky({ DATABASE_URL => 'postgresql:///nope?host=/nonexistent&connect_timeout=2' },
	'check-ledger');
is($code, 2, 'no database: exit 2');
like($out, qr/check-ledger: no database/, 'says so');

$t->done;
