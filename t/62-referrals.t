#!/usr/bin/perl
# Referral rewards end to end: nothing at sign-up; credits after the
# referee's first chat turn; cash at the referee's first payment (and at
# the activation when the payment came first); each once under replays;
# the monthly cap, also with activations in parallel; claw-back of the
# cash on a refund, never into cash already paid out or pending; the
# mails; /stats, /share-link and /cashout, with 10 parallel cash-outs of
# the whole balance giving exactly one.
use strict;
use warnings;
use utf8;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is $TS $UUID);
use Miky::FakeOpenAI qw(set_settings);
use Miky::FakeStripe qw(event deliver deliver_p checkout_session charge);
use Miky::Mailer;
use Encode qw(decode);
use MIME::Base64 qw(decode_base64);
use Mojo::Promise;

my $stripe = Miky::FakeStripe->new;
my $t = Miky::Test->new(threads => 24, db_pool => 8,
	env => { %{ $stripe->env }, MIKY_STANDIN_DELAY_MS => 0 });
my $dbh = $t->dbh;
set_settings($t, chat_max_concurrent_turns => 100, chat_turns_per_minute => 1000);

sub row { $dbh->selectrow_array(@_) }
sub credits { row('SELECT credits FROM users WHERE id = ?', undef, $_[0]{id}) }
sub cash { row('SELECT (cash_earned * 100)::bigint FROM users WHERE id = ?', undef, $_[0]{id}) }
sub referral { $dbh->selectrow_hashref('SELECT * FROM referrals WHERE referred_user_id = ?', undef, $_[0]{id}) }
sub mails {
	my ($u, $template) = @_;
	return row('SELECT count(*) FROM email_outbox WHERE user_id = ? AND template = ?', undef, $u->{id}, $template);
}
sub chat {
	my ($u, $text) = @_;
	my $tx = $t->json_req(POST => '/api/chat/send', { content => $text // 'hello' }, $t->auth($u));
	is($tx->res->code, 201, "$u->{first_name} chats: 201") or diag $tx->res->body;
}
my $pays = 0;
# A pack paid by $u, through the webhook; returns the session.
sub pay {
	my ($u, %f) = @_;
	my $s = checkout_session(user => $u->{id}, customer => "cus_ref_$u->{id}", credits => 100, amount => 499, %f);
	my $tx = deliver($t, event('checkout.session.completed', $s));
	is($tx->res->code, 200, "$u->{first_name} pays: 200");
	return $s;
}
sub stats { $t->json_req(GET => '/api/referrals/stats', undef, $t->auth($_[0]))->res->json }

my $r = $t->user(first_name => 'Rita', language => 'it');
my $code = $r->{user}{referral_code};
my $r0 = credits($r);

# --- nothing at sign-up, credits at the first turn ---------------------------------------------

my $a = $t->user(first_name => 'Anna', last_name => 'Secret', referral_code => $code);
is(referral($a)->{status}, 'pending', 'a sign-up with the code: pending');
is(credits($r), $r0, 'no credits for a sign-up');
is(cash($r), 0, 'no cash for a sign-up');
is(mails($r, 'referral_credits'), 0, 'no mail');
chat($a);
is(referral($a)->{status}, 'activated', 'the first chat turn: activated');
is(credits($r), $r0 + 300, 'the referrer gets 300 credits');
is(referral($a)->{credits_awarded}, 300, 'credits_awarded 300');
is(row(q{SELECT count(*) FROM credit_ledger WHERE user_id = ? AND reason = 'referral'}, undef, $r->{id}), 1,
	'a referral ledger row');
is(mails($r, 'referral_credits'), 1, 'a mail to the referrer');
is(row(q{SELECT language FROM email_outbox WHERE user_id = ? AND template = 'referral_credits'}, undef, $r->{id}), 'it',
	'in the referrer\'s language');
chat($a, 'again');
is(credits($r), $r0 + 300, 'a second turn: nothing more');
is(cash($r), 0, 'and no cash yet');

# --- cash at the first payment ----------------------------------------------------------------------

my $sa = pay($a);
is(referral($a)->{status}, 'qualified', 'the first payment: qualified');
is(cash($r), 200, 'the referrer earns 200 cents');
is(row('SELECT (cash_awarded * 100)::bigint FROM referrals WHERE referred_user_id = ?', undef, $a->{id}), 200, 'cash_awarded');
is(mails($r, 'referral_cash'), 1, 'a mail for the cash');
my $rt = $dbh->selectrow_hashref(q{SELECT type, status, (amount * 100)::bigint AS cents FROM transactions
	WHERE user_id = ? AND type = 'referral'}, undef, $r->{id});
is_deeply($rt, { type => 'referral', status => 'completed', cents => 200 }, 'a referral transaction of 200 for the referrer');
is(row(q{SELECT delta_cents FROM cash_ledger WHERE user_id = ? AND reason = 'referral'}, undef, $r->{id}), 200,
	'a cash ledger row');
for my $i (1 .. 3) { deliver($t, event('checkout.session.completed', $sa)) }
Mojo::Promise->all(map { deliver_p($t, event('checkout.session.completed', $sa)) } 1 .. 10)->wait;
pay($a);
is(cash($r), 200, 'replays and a second payment: nothing more');
is(mails($r, 'referral_cash'), 1, 'no second mail');
is(credits($r), $r0 + 300, 'credits unchanged');

# --- a payment before the activation qualifies at the activation --------------------------------------

my $b = $t->user(first_name => 'Bruno', referral_code => $code);
pay($b);
is(referral($b)->{status}, 'pending', 'paid before any chat: still pending');
is(cash($r), 200, 'no cash for a pending referral');
chat($b);
is(referral($b)->{status}, 'qualified', 'the first turn activates and qualifies it at once');
is(credits($r), $r0 + 600, '300 credits');
is(cash($r), 400, 'and 200 cents');
chat($b, 'more');
is(cash($r), 400, 'once');

# A refunded payment before the activation qualifies nothing.
my $d = $t->user(first_name => 'Dora', referral_code => $code);
my $sd = pay($d);
deliver($t, event('charge.refunded', charge(payment_intent => $sd->{payment_intent})));
chat($d);
is(referral($d)->{status}, 'activated', 'a payment refunded before the activation does not qualify');
is(cash($r), 400, 'no cash');
my $r_credits = credits($r);

# --- the monthly cap ----------------------------------------------------------------------------------------

set_settings($t, referral_monthly_cap => 3);
my $e = $t->user(first_name => 'Ezio', referral_code => $code);
chat($e);
is(referral($e)->{status}, 'activated', 'past the cap: still activated');
is(referral($e)->{credits_awarded}, 0, 'with credits_awarded 0');
is(credits($r), $r_credits, 'and no credits');
pay($e);
is(referral($e)->{status}, 'qualified', 'it qualifies');
is(cash($r), 400, 'but earns no cash');
is(mails($r, 'referral_cash'), 2, 'and sends no mail');
is(mails($r, 'referral_credits'), 3, 'three credit mails: A, B and D');

# Many invitees activating at once: the cap holds under the referrer's lock.
set_settings($t, referral_monthly_cap => 3);
my $q = $t->user(first_name => 'Quinn');
my @inv = map { $t->user(first_name => "Inv$_", referral_code => $q->{user}{referral_code}) } 1 .. 8;
my $q0 = credits($q);
my @codes;
Mojo::Promise->all(map { my $u = $_;
	$t->ua->post_p($t->url('/api/chat/send') => $t->auth($u) => json => { content => 'hi' })
		->then(sub { push @codes, shift->res->code }) } @inv)->wait;
is(scalar(grep { $_ == 201 } @codes), 8, '8 invitees chat at once: 201');
is(credits($q), $q0 + 900, 'exactly 3 rewarded (the cap)');
is(row(q{SELECT count(*) FROM referrals WHERE user_id = ? AND status = 'activated'}, undef, $q->{id}), 8, 'all 8 activated');
is(row(q{SELECT count(*) FROM referrals WHERE user_id = ? AND rewarded}, undef, $q->{id}), 3, '3 of them rewarded');
set_settings($t, referral_monthly_cap => 20);

# --- /stats and /share-link ------------------------------------------------------------------------

my $s = stats($r);
is_deeply([ sort keys %$s ], [ sort qw(referral_code referrals_count credits_earned cash_earned_cents cash_paid_out_cents
	cash_pending_cents cash_available_cents referrals) ], '/stats: the documented keys');
is($s->{referral_code}, $code, 'referral_code');
is($s->{referrals_count}, 4, 'referrals_count 4');
is($s->{credits_earned}, 900, 'credits_earned 900');
is($s->{cash_earned_cents}, 400, 'cash_earned_cents 400');
is($s->{cash_paid_out_cents}, 0, 'paid out 0');
is($s->{cash_pending_cents}, 0, 'pending 0');
is($s->{cash_available_cents}, 400, 'available 400');
is_deeply([ map { $_->{first_name} } @{ $s->{referrals} } ], [qw(Anna Bruno Dora Ezio)], 'each invitee by first name, oldest first');
is_deeply([ map { $_->{status} } @{ $s->{referrals} } ], [qw(qualified qualified activated qualified)], 'with their status');
is_deeply([ sort keys %{ $s->{referrals}[0] } ], [ sort qw(first_name status created_at credits_awarded cash_awarded_cents) ],
	'first name, status, created_at, credits and cash: nothing else');
unlike($t->json_req(GET => '/api/referrals/stats', undef, $t->auth($r))->res->body, qr/Secret|\@example/,
	'no last name, no email');
like($s->{referrals}[0]{created_at}, $TS, 'created_at');
is($s->{referrals}[0]{cash_awarded_cents}, 200, "Anna's cash");
is_deeply(stats($a)->{referrals}, [], 'an invitee has no invitees');
error_is($t->json_req(GET => '/api/referrals/stats'), 401, 'unauthorized', undef, '/stats needs a session');

my $tx = $t->json_req(GET => '/api/referrals/share-link', undef, $t->auth($r));
is($tx->res->code, 200, '/share-link: 200');
is($tx->res->json('/referral_code'), $code, 'the code');
is($tx->res->json('/url'), $t->base . "/signup?ref=$code", 'a link on PUBLIC_BASE_URL');
like($tx->res->json('/share_text'), qr/Miky.*\Q$code\E/, 'a text with the link');
like($tx->res->json('/share_text'), qr/Iscriviti/, 'in Italian for an Italian user');
like($t->json_req(GET => '/api/referrals/share-link', undef, $t->auth($a))->res->json('/share_text'), qr/Join/,
	'in English for the others');
error_is($t->json_req(GET => '/api/referrals/share-link'), 401, 'unauthorized', undef, '/share-link needs a session');

# --- cash-outs ----------------------------------------------------------------------------------------

set_settings($t, cashout_min_cents => 300, referral_cash_cents => 500);
my $R = $t->auth($r);
for my $c (
	[ {}, 'amount_cents', 'nothing' ],
	[ { amount_cents => 300, method => 'paypal' }, 'destination', 'no destination' ],
	[ { amount_cents => 300, method => 'cash', destination => 'r@example.com' }, 'method', 'a method not offered' ],
	[ { amount_cents => '300', method => 'paypal', destination => 'r@example.com' }, 'amount_cents', 'cents as a string' ],
	[ { amount_cents => 3.5, method => 'paypal', destination => 'r@example.com' }, 'amount_cents', 'a fraction' ],
	[ { amount_cents => 299, method => 'paypal', destination => 'r@example.com' }, 'amount_cents', 'below the minimum' ],
	[ { amount_cents => 401, method => 'paypal', destination => 'r@example.com' }, 'amount_cents', 'above available' ],
	[ { amount_cents => 300, method => 'paypal', destination => 'not an email' }, 'destination', 'paypal: not an email' ],
	[ { amount_cents => 300, method => 'bank', destination => 'DE89 3704 0044 0532 0130 01' }, 'destination', 'a wrong IBAN check' ],
	[ { amount_cents => 300, method => 'bank', destination => 'r@example.com' }, 'destination', 'bank: not an IBAN' ],
	[ { amount_cents => 300, method => 'paypal', destination => 'r@example.com', user_id => $a->{id} }, 'user_id', 'a user_id' ],
) {
	error_is($t->json_req(POST => '/api/referrals/cashout', $c->[0], $R), 400, 'invalid_input', $c->[1], "cash-out: $c->[2]");
}
is(row(q{SELECT count(*) FROM transactions WHERE type = 'cashout'}), 0, 'none recorded');
$tx = $t->json_req(POST => '/api/referrals/cashout',
	{ amount_cents => 300, method => 'bank', destination => ' de89 3704 0044 0532 0130 00 ' }, $R);
is($tx->res->code, 201, 'a cash-out of 300 to a bank: 201') or diag $tx->res->body;
my $co = $tx->res->json('/transaction');
is_deeply([ sort keys %$co ], [ sort qw(id type amount_cents credits status created_at) ], '{transaction}');
is($co->{type}, 'cashout', 'type cashout');
is($co->{status}, 'pending', 'pending');
is($co->{amount_cents}, 300, 'amount_cents 300');
is(row('SELECT cashout_destination FROM transactions WHERE id = ?', undef, $co->{id}), 'DE89370400440532013000',
	'the IBAN stored normalised');
$s = stats($r);
is($s->{cash_pending_cents}, 300, 'pending 300');
is($s->{cash_available_cents}, 100, 'available 100');
is($s->{cash_earned_cents}, 400, 'earned unchanged');
error_is($t->json_req(POST => '/api/referrals/cashout', { amount_cents => 300, method => 'paypal', destination => 'r@example.com' }, $R),
	400, 'invalid_input', 'amount_cents', 'the pending one counts: 300 more is above available');
is($t->json_req(GET => '/api/payments/transactions', undef, $R)->res->json('/transactions/0/type'), 'cashout',
	'the cash-out is in the transactions');

# 10 parallel cash-outs of the whole balance: exactly one.
my $k = $t->user(first_name => 'Kai');
my @kin = map { $t->user(first_name => "Kin$_", referral_code => $k->{user}{referral_code}) } 1 .. 2;
for my $i (@kin) { chat($i); pay($i) }
is(cash($k), 1000, 'two qualified invitees at 500: 1000 cents');
my @res;
Mojo::Promise->all(map {
	$t->ua->post_p($t->url('/api/referrals/cashout') => $t->auth($k) =>
		json => { amount_cents => 1000, method => 'paypal', destination => 'Kai@Example.com' })
		->then(sub { push @res, shift->res });
} 1 .. 10)->wait;
is(scalar(grep { $_->code == 201 } @res), 1, '10 parallel cash-outs of the whole balance: exactly one 201');
is(scalar(grep { $_->code == 400 && $_->json('/error/field') eq 'amount_cents' } @res), 9, 'nine 400 amount_cents');
is(row(q{SELECT count(*) FROM transactions WHERE user_id = ? AND type = 'cashout'}, undef, $k->{id}), 1, 'one cash-out recorded');
is(row(q{SELECT cashout_destination FROM transactions WHERE user_id = ? AND type = 'cashout'}, undef, $k->{id}),
	'kai@example.com', 'the PayPal address stored lower-cased');
is(stats($k)->{cash_available_cents}, 0, 'available 0');

# --- claw-back on a refund -------------------------------------------------------------------------------

# Anna's payment refunded: of Rita's 400, 300 are in a pending cash-out,
# so only the 100 available can go back.
deliver($t, event('charge.refunded', charge(payment_intent => $sa->{payment_intent}))) for 1 .. 3;
is(cash($r), 300, "Anna's refund: 100 of Rita's cash clawed back (all that was available), once");
my $ra = referral($a);
ok($ra->{cash_clawed_back}, 'the referral is marked');
is($ra->{cash_awarded}, '1.00', 'and keeps the 100 it could not take back');
is(row(q{SELECT delta_cents FROM cash_ledger WHERE user_id = ? AND reason = 'clawback'}, undef, $r->{id}), -100,
	'a clawback ledger row of -100');
is(row(q{SELECT status FROM transactions WHERE referral_id = ?}, undef, $ra->{id}), 'refunded', 'the reward is marked refunded');
$s = stats($r);
is($s->{cash_available_cents}, 0, 'available 0, not below');
is($s->{cash_pending_cents}, 300, 'the pending cash-out untouched');
is(row('SELECT status FROM transactions WHERE stripe_checkout_session_id = ?', undef, $sa->{id}), 'refunded',
	"Anna's payment is refunded");

# Kai's cash is all in a pending cash-out: nothing can be clawed back.
my $kin0 = $dbh->selectrow_hashref(q{SELECT t.stripe_payment_intent_id AS pi FROM transactions t
	WHERE t.user_id = ? AND t.type = 'credits'}, undef, $kin[0]{id});
deliver($t, event('charge.refunded', charge(payment_intent => $kin0->{pi})));
is(cash($k), 1000, 'a refund when all the cash is in a pending cash-out: nothing clawed back');
is(stats($k)->{cash_available_cents}, 0, 'available stays 0, not below');
ok(referral($kin[0])->{cash_clawed_back}, 'the claw-back is done (it took what it could: nothing)');
# The cash-out fails (as an admin would mark it): the money is available again.
$dbh->do(q{UPDATE transactions SET status = 'failed' WHERE user_id = ? AND type = 'cashout'}, undef, $k->{id});
is(stats($k)->{cash_available_cents}, 1000, 'a failed cash-out makes it available again');
my $kin1 = $dbh->selectrow_hashref(q{SELECT t.stripe_payment_intent_id AS pi FROM transactions t
	WHERE t.user_id = ? AND t.type = 'credits'}, undef, $kin[1]{id});
deliver($t, event('charge.refunded', charge(payment_intent => $kin1->{pi})));
is(cash($k), 500, 'the second refund claws back its 500');

# --- the mails, as the mailer writes them -------------------------------------------------

my $box = $t->dir . '/mailbox';
my $mailer = start_mailer($t, SMTP_URL => undef, MIKY_MAIL_DIR => $box);
ok($t->wait_for(sub { !row(q{SELECT count(*) FROM email_outbox WHERE status = 'pending'}) }, 20, 'the outbox sent'),
	'the mailer sends the reward mails');
# (subject, text part) of a user's newest mail of a template.
sub mail_of {
	my ($u, $template) = @_;
	my $id = row('SELECT max(id) FROM email_outbox WHERE user_id = ? AND template = ?', undef, $u->{id}, $template);
	open my $fh, '<:raw', "$box/$id-$template.eml" or return;
	my $raw = do { local $/; <$fh> };
	my ($subject) = $raw =~ /^Subject: (.*(?:\r\n[ \t].*)*)\r$/m;
	$subject =~ s/\r\n[ \t]+/ /g;
	my ($b64) = $raw =~ m{Content-Type: text/plain[^\r]*\r\nContent-Transfer-Encoding: base64\r\n\r\n(.*?)\r\n--}s;
	return (decode('MIME-Header', $subject), decode('UTF-8', decode_base64($b64 // '')));
}
my ($subj, $text) = mail_of($r, 'referral_credits');
is($subj, 'Un amico si è unito: hai guadagnato crediti – Miky', 'the credits mail in Italian for Rita');
like($text, qr/^Ciao Rita,/, 'greets her by first name');
like($text, qr{\Q${\ $t->base }\E/invite\r?\n}, 'links to the invitations page');
($subj, $text) = mail_of($r, 'referral_cash');
is($subj, 'Hai guadagnato un premio in denaro – Miky', 'the cash mail in Italian');
($subj, $text) = mail_of($k, 'referral_cash');
is($subj, 'You earned referral cash – Miky', 'in English for Kai');
like($text, qr/^Hi Kai,/, 'greets him');
like($text, qr/first payment/, 'says what happened');
is(stop_mailer($mailer), 0, 'the mailer exits with 0');
stop_mailers();

# --- the books -------------------------------------------------------------------------------------------

my $bad = $dbh->selectall_arrayref(q{SELECT u.id FROM users u LEFT JOIN cash_ledger l ON l.user_id = u.id
	GROUP BY u.id HAVING (u.cash_earned * 100)::bigint <> coalesce(sum(l.delta_cents), 0)});
is_deeply($bad, [], 'every user: cash_earned = sum of the cash ledger');
$bad = $dbh->selectall_arrayref(q{SELECT u.id FROM users u
	WHERE u.cash_earned - u.cash_paid_out - coalesce((SELECT sum(amount) FROM transactions p WHERE p.user_id = u.id
	AND p.type = 'cashout' AND p.status = 'pending'), 0) < 0});
is_deeply($bad, [], 'every user: available cash >= 0');
$bad = $dbh->selectall_arrayref(q{SELECT u.id FROM users u LEFT JOIN credit_ledger l ON l.user_id = u.id
	GROUP BY u.id HAVING u.credits <> coalesce(sum(l.delta), 0)});
is_deeply($bad, [], 'every user: credits = sum of the credit ledger');
$bad = $dbh->selectall_arrayref(q{SELECT u.id FROM users u WHERE (u.cash_earned * 100)::bigint <>
	(SELECT coalesce(sum((cash_awarded * 100)::bigint), 0) FROM referrals f WHERE f.user_id = u.id)});
is_deeply($bad, [], 'every referrer: cash_earned = the cash its referrals keep');

# Every reward, claw-back and cash-out counted (and check-ledger agrees).
is($t->metric('miky_grants_total', reason => 'referral', outcome => 'granted'),
	row(q{SELECT count(*) FROM credit_ledger WHERE reason = 'referral'}), 'referral credits counted');
is($t->metric('miky_grants_total', reason => 'referral_cash', outcome => 'granted'),
	row(q{SELECT count(*) FROM cash_ledger WHERE reason = 'referral'}), 'referral cash counted');
is($t->metric('miky_clawbacks_total', kind => 'cash', outcome => 'taken'),
	row(q{SELECT count(*) FROM cash_ledger WHERE reason = 'clawback'}), 'cash claw-backs counted');
is($t->metric('miky_cashouts_total', status => 'requested', outcome => 'ok'),
	row(q{SELECT count(*) FROM transactions WHERE type = 'cashout'}), 'cash-outs requested counted');
my ($rc, $out) = $t->run_miky('check-ledger');
is($rc, 0, 'miky check-ledger passes') or diag $out;

$t->done;
