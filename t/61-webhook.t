#!/usr/bin/perl
# POST /api/payments/webhook with events signed as Stripe signs them.
# The signature (missing, wrong secret, one byte changed, stale, future,
# several v1 with one valid) before anything else; every grant exactly
# once whatever mix of replays (5 in a row, 30 in parallel), other event
# ids for the same payment and orders arrives; invoice.paid the only path
# to a plan's credits; subscription events out of order; failed payments
# (past_due, one mail); asynchronous payments; a pack bought while chat
# turns spend; refunds taken back once and never below zero.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is error_code_is);
use Miky::FakeOpenAI qw(set_settings);
use Miky::FakeStripe qw(event sign deliver deliver_p checkout_session invoice subscription charge);
use Mojo::JSON qw(encode_json);
use Mojo::Promise;

my $stripe = Miky::FakeStripe->new;
my $t = Miky::Test->new(threads => 24, db_pool => 8,
	env => { %{ $stripe->env }, MIKY_STANDIN_DELAY_MS => 0 });
my $dbh = $t->dbh;

sub row { $dbh->selectrow_array(@_) }
sub credits { row('SELECT credits FROM users WHERE id = ?', undef, $_[0]{id}) }
sub count_rows {
	my ($sql, @bind) = @_;
	return row("SELECT count(*) FROM $sql", undef, @bind);
}
sub ledger_ok {
	my ($u, $name) = @_;
	is(row('SELECT coalesce(sum(delta), 0) FROM credit_ledger WHERE user_id = ?', undef, $u->{id}), credits($u),
		"$name: the ledger sums to the balance");
}
my $n = 0;
# A user with a Stripe customer of its own.
sub payer {
	my $u = $t->user(@_);
	$u->{customer} = 'cus_wh' . ++$n . "_$$";
	$dbh->do('UPDATE users SET stripe_customer_id = ? WHERE id = ?', undef, $u->{customer}, $u->{id});
	return $u;
}
sub pack_event {
	my ($u, %f) = @_;
	return event('checkout.session.completed', checkout_session(user => $u->{id}, customer => $u->{customer}, %f));
}

my $u = payer(first_name => 'Sig');
my $base = credits($u);

# --- the signature ------------------------------------------------------------------------

my $ev = pack_event($u, credits => 500, amount => 499);
my $body = encode_json($ev);
my $good = sign($body);
(my $bad_v1 = $good) =~ s/v1=([0-9a-f])/'v1=' . ($1 eq '0' ? '1' : '0')/e;
(my $changed = $body) =~ s/"amount_total":499/"amount_total":498/ or die 'no amount in the event';
for my $c (
	[ 'no Stripe-Signature header', header => undef ],
	[ 'an empty header', header => '' ],
	[ 'junk', header => 'hello' ],
	[ 't only', header => 't=' . time ],
	[ 'v1 only', header => 'v1=' . ('0' x 64) ],
	[ 'the wrong secret', secret => 'whsec_not_the_one' ],
	[ 'the MAC changed', header => $bad_v1 ],
	# Times are taken as each request is sent, with room for a slow
	# machine on the side that could pass (the exact bounds are in
	# t/unit/hooksig.c).
	[ '301 s old', age => 301 ],
	[ '400 s ahead', age => -400 ],
	[ 'an hour old', age => 3600 ],
) {
	my ($name, %o) = @$c;
	$o{t} = time - delete $o{age} if exists $o{age};
	error_is(deliver($t, $body, %o), 400, 'invalid_signature', undef, "signature: $name: 400");
}
error_is(deliver($t, $changed, header => $good), 400, 'invalid_signature', undef,
	'one byte of the body changed after signing: 400');
is(count_rows('stripe_events'), 0, 'nothing recorded');
is(credits($u), $base, 'nothing granted');
$t->allow_log(qr/stripe webhook refused/);

my $t0 = time;
my $tx = deliver($t, $body, header => "t=$t0,v1=" . ('0' x 64) . ',v0=' . ('1' x 64) . ',' . (split /,/, sign($body, undef, $t0))[1]
	. ',v1=' . ('f' x 64));
is($tx->res->code, 200, 'several v1 (and a v0), one of them valid: 200') or diag $tx->res->body;
is_deeply($tx->res->json, { received => Mojo::JSON::true }, '{received: true}');
is(credits($u), $base + 500, 'the pack is granted');
is(count_rows('stripe_events WHERE id = ?', $ev->{id}), 1, 'the event is recorded');

$tx = deliver($t, pack_event($u, credits => 1), t => time - 250);
is($tx->res->code, 200, '250 s old: in time');
$tx = deliver($t, encode_json(pack_event($u, credits => 1)), content_type => 'text/plain');
is($tx->res->code, 200, 'no content-type rule: text/plain is fine');
$tx = deliver($t, encode_json(pack_event($u, credits => 1)), content_type => undef);
is($tx->res->code, 200, 'no content type at all is fine');
$base = credits($u);

error_is(deliver($t, 'this is not JSON'), 400, 'invalid_json', undef, 'signed, not JSON: 400 invalid_json');
error_is(deliver($t, '{"id":"evt_x","type":"invoice.paid"}'), 400, 'invalid_input', undef,
	'signed JSON that is no event: 400 invalid_input');
error_is(deliver($t, '[1,2]'), 400, 'invalid_input', undef, 'a JSON array: 400');
error_code_is($t->json_req(GET => '/api/payments/webhook'), 405, 'method_not_allowed', 'GET');
my $big = '{"id":"evt_big","type":"x","created":1,"data":{"object":{"pad":"' . ('x' x (1024 * 1024)) . '"}}}';
error_code_is(deliver($t, $big), 413, 'payload_too_large', 'over 1 MiB: 413');
my $fits = '{"id":"evt_fits","type":"some.thing","created":1,"data":{"object":{"pad":"'
	. ('x' x (1024 * 1024 - 80)) . '"}}}';
cmp_ok(length $fits, '<=', 1024 * 1024, 'a body of just under 1 MiB');
is(deliver($t, $fits)->res->code, 200, 'fits: 200');
is(row(q{SELECT outcome FROM stripe_events WHERE id = 'evt_fits'}), 'ignored', 'an unknown type: recorded as ignored');

# --- the same event again and again ------------------------------------------------------

$ev = pack_event($u, credits => 300, amount => 299);
for my $i (1 .. 5) {
	$tx = deliver($t, $ev);
	is($tx->res->code, 200, "the same event, delivery $i: 200");
}
is(credits($u), $base + 300, '5 deliveries in a row: granted once');
is(count_rows('stripe_events WHERE id = ?', $ev->{id}), 1, 'one event row');
is(count_rows('transactions WHERE stripe_checkout_session_id = ?', $ev->{data}{object}{id}), 1, 'one transaction');
is(count_rows(q{credit_ledger WHERE reason = 'purchase' AND ref = ?}, $ev->{data}{object}{id}), 1, 'one ledger row');
$base = credits($u);

my $ev30 = pack_event($u, credits => 700, amount => 699);
my @codes;
Mojo::Promise->all(map { deliver_p($t, $ev30)->then(sub { push @codes, shift->res->code }) } 1 .. 30)->wait;
is(scalar(grep { $_ == 200 } @codes), 30, '30 parallel deliveries of one event: all 200');
is(credits($u), $base + 700, 'granted once');
is(count_rows(q{credit_ledger WHERE reason = 'purchase' AND ref = ?}, $ev30->{data}{object}{id}), 1, 'one ledger row');
$base = credits($u);

# One payment under many event ids (Stripe may send completed and
# async_payment_succeeded for one session, and resend with new ids).
my $session = checkout_session(user => $u->{id}, customer => $u->{customer}, credits => 900, amount => 899);
@codes = ();
Mojo::Promise->all(map {
	my $type = $_ % 2 ? 'checkout.session.completed' : 'checkout.session.async_payment_succeeded';
	deliver_p($t, event($type, $session))->then(sub { push @codes, shift->res->code });
} 1 .. 30)->wait;
is(scalar(grep { $_ == 200 } @codes), 30, '30 events of one Checkout Session in parallel: all 200');
is(credits($u), $base + 900, 'granted once, on the session');
is(count_rows(q{stripe_events WHERE payload->'data'->'object'->>'id' = ?}, $session->{id}), 30, 'all 30 events recorded');
is(count_rows('transactions WHERE stripe_checkout_session_id = ?', $session->{id}), 1, 'one transaction');
ledger_ok($u, 'after the replays');
$base = credits($u);

# --- plans: invoice.paid is the only path to the monthly credits ---------------------------

my $p = payer(first_name => 'Plan');
my $pbase = credits($p);
my $sub = subscription(customer => $p->{customer}, price => 'price_miky_plus', user => $p->{id}, plan => 'plus');
my $inv = invoice(customer => $p->{customer}, subscription => $sub->{id}, price => 'price_miky_plus',
	reason => 'subscription_create', amount => 999);
$tx = deliver($t, event('invoice.payment_succeeded', $inv));
is($tx->res->code, 200, 'invoice.payment_succeeded: 200');
is(credits($p), $pbase, 'invoice.payment_succeeded grants nothing');
is(row('SELECT outcome FROM stripe_events ORDER BY received_at DESC, id LIMIT 1'), 'ignored', 'it is recorded as ignored');
$tx = deliver($t, event('invoice.paid', $inv));
is(credits($p), $pbase + 2000, 'invoice.paid grants the monthly credits of plus');
deliver($t, event('invoice.paid', $inv));
deliver($t, event('invoice.payment_succeeded', $inv));
is(credits($p), $pbase + 2000, 'another invoice.paid for the same invoice: nothing more');
is(count_rows('transactions WHERE stripe_invoice_id = ?', $inv->{id}), 1, 'one transaction for the invoice');
my $j = $t->json_req(GET => '/api/user/profile', undef, $t->auth($p))->res->json('/user');
is($j->{plan}, 'plus', 'plan plus');
is($j->{subscription_status}, 'active', 'active');
my ($txrow) = @{ $dbh->selectall_arrayref('SELECT type, plan, amount, credits, status FROM transactions WHERE stripe_invoice_id = ?',
	{ Slice => {} }, $inv->{id}) };
is_deeply($txrow, { type => 'subscription', plan => 'plus', amount => '9.99', credits => 2000, status => 'completed' },
	'the transaction: subscription, plus, 9.99, 2000 credits, completed');

my $cycle = invoice(customer => $p->{customer}, subscription => $sub->{id}, price => 'price_miky_plus', amount => 999);
deliver($t, event('invoice.paid', $cycle));
is(credits($p), $pbase + 4000, 'a renewal (subscription_cycle): the credits again');
my $prorate = invoice(customer => $p->{customer}, subscription => $sub->{id}, price => 'price_miky_business',
	reason => 'subscription_update', amount => 1500);
deliver($t, event('invoice.paid', $prorate));
is(credits($p), $pbase + 4000, 'a proration (subscription_update): no credits');
is(row('SELECT credits FROM transactions WHERE stripe_invoice_id = ?', undef, $prorate->{id}), 0,
	'but the payment is recorded');
my $basil = invoice(customer => $p->{customer}, subscription => $sub->{id}, price => 'price_miky_business', amount => 2999,
	shape => 'basil');
deliver($t, event('invoice.paid', $basil));
is(credits($p), $pbase + 14000, "an invoice in the newer API's shape: business's credits");
is(row('SELECT plan FROM users WHERE id = ?', undef, $p->{id}), 'business', 'and its plan');
ledger_ok($p, 'invoices');

my $unknown = invoice(customer => $p->{customer}, subscription => $sub->{id}, price => 'price_of_nothing', amount => 999);
my $pb = credits($p);
deliver($t, event('invoice.paid', $unknown));
is(credits($p), $pb, 'an invoice for a price of no plan (no plan in its metadata either): no credits');
is(row('SELECT status FROM transactions WHERE stripe_invoice_id = ?', undef, $unknown->{id}), 'completed',
	'but the payment is recorded');
like($t->log, qr/price of no plan/, 'and the operator is told');
deliver($t, event('invoice.paid', invoice(customer => $p->{customer}, subscription => $sub->{id},
	price => 'price_of_nothing', metadata => { plan => 'plus', user_id => $p->{id} })));
is(credits($p), $pb + 2000, "a price of no plan, the subscription's metadata naming plus: plus's credits");

# invoice.paid and payment_succeeded racing for one invoice.
my $race = invoice(customer => $p->{customer}, subscription => $sub->{id}, price => 'price_miky_plus', amount => 999);
my $before = credits($p);
Mojo::Promise->all(map { deliver_p($t, event($_ % 3 ? 'invoice.paid' : 'invoice.payment_succeeded', $race)) } 1 .. 20)->wait;
is(credits($p), $before + 2000, '20 events for one invoice in parallel: one grant');

# --- subscriptions out of order ---------------------------------------------------------------

my $s1 = payer(first_name => 'Order');
my $ts = time - 100;
my $sb = subscription(customer => $s1->{customer}, price => 'price_miky_plus', user => $s1->{id});
my $e1 = event('customer.subscription.created', { %$sb }, created => $ts);
my $business = subscription(price => 'price_miky_business')->{items};
my $e2 = event('customer.subscription.updated', { %$sb, items => $business }, created => $ts + 10);
my $e3 = event('customer.subscription.deleted', { %$sb, items => $business, status => 'canceled' }, created => $ts + 20);
sub state_of { $dbh->selectrow_hashref('SELECT plan, subscription_status AS status, subscription_plan FROM users WHERE id = ?',
	undef, $_[0]{id}) }
deliver($t, $e2);
is_deeply(state_of($s1), { plan => 'business', status => 'active', subscription_plan => 'business' }, 'updated (t+10) first: business');
deliver($t, $e1);
is(state_of($s1)->{plan}, 'business', 'then created (t+0): older, ignored');
deliver($t, $e3);
is_deeply(state_of($s1), { plan => 'free', status => 'canceled', subscription_plan => 'business' }, 'deleted (t+20): canceled, free');
deliver($t, event('customer.subscription.updated', { %$sb, status => 'active' }, created => $ts + 30));
is(state_of($s1)->{status}, 'canceled', 'a newer "active" of the canceled subscription: still canceled');
deliver($t, event('invoice.paid', invoice(customer => $s1->{customer}, subscription => $sb->{id},
	price => 'price_miky_plus', amount => 999), created => $ts + 5));
is(state_of($s1)->{status}, 'canceled', 'a late invoice.paid does not revive it');

my $s2 = payer(first_name => 'Order2');
$sb = subscription(customer => $s2->{customer}, price => 'price_miky_plus', user => $s2->{id});
deliver($t, event('customer.subscription.deleted', { %$sb, status => 'canceled' }, created => $ts + 20));
deliver($t, event('customer.subscription.updated', { %$sb, status => 'past_due' }, created => $ts + 10));
deliver($t, event('customer.subscription.created', $sb, created => $ts));
is_deeply(state_of($s2), { plan => 'free', status => 'canceled', subscription_plan => 'plus' },
	'deleted, then older updates: canceled stays');
# A new subscription after the old one ended.
my $sb2 = subscription(customer => $s2->{customer}, price => 'price_miky_business', user => $s2->{id});
deliver($t, event('customer.subscription.created', $sb2, created => $ts + 40));
is_deeply(state_of($s2), { plan => 'business', status => 'active', subscription_plan => 'business' },
	'a new subscription takes over');
deliver($t, event('customer.subscription.deleted', { %$sb, status => 'canceled' }, created => $ts + 50));
is(state_of($s2)->{status}, 'active', "the old subscription's replayed end does not touch the new one");
is(row('SELECT stripe_subscription_id FROM users WHERE id = ?', undef, $s2->{id}), $sb2->{id}, 'the new one is stored');
deliver($t, event('customer.subscription.updated', { %$sb2, cancel_at_period_end => Mojo::JSON::true }, created => $ts + 60));
is(row('SELECT subscription_cancel_at_period_end FROM users WHERE id = ?', undef, $s2->{id}), 1, 'cancel_at_period_end mirrored');

# A new subscription as Stripe reports it -- created, its first invoice paid,
# then the Checkout completed -- delivered Checkout first: each counts.
my $s3 = payer(first_name => 'Order3');
my $sb3 = subscription(customer => $s3->{customer}, price => 'price_miky_plus', user => $s3->{id});
my $end3 = $ts + 40 * 86400;
deliver($t, event('checkout.session.completed', checkout_session(mode => 'subscription', user => $s3->{id},
	customer => $s3->{customer}, subscription => $sb3->{id}, plan => 'plus'), created => $ts + 2));
is_deeply(state_of($s3), { plan => 'plus', status => 'active', subscription_plan => 'plus' }, 'the Checkout first: active');
deliver($t, event('invoice.paid', invoice(customer => $s3->{customer}, subscription => $sb3->{id}, price => 'price_miky_plus',
	reason => 'subscription_create', period_end => $end3), created => $ts + 1));
is(row('SELECT floor(extract(epoch FROM subscription_current_period_end)) FROM users WHERE id = ?', undef, $s3->{id}), $end3,
	'then its invoice (older than the Checkout): the period end is taken');
deliver($t, event('customer.subscription.created', { %$sb3, status => 'incomplete' }, created => $ts));
is(state_of($s3)->{status}, 'active', 'and the older "incomplete" of its creation is not');

# --- failed payments: past_due, one mail --------------------------------------------------------

my $f = payer(first_name => 'Fay', language => 'it');
my $fsub = subscription(customer => $f->{customer}, price => 'price_miky_plus', user => $f->{id});
deliver($t, event('customer.subscription.created', $fsub, created => time - 50));
my $fin = invoice(customer => $f->{customer}, subscription => $fsub->{id}, price => 'price_miky_plus', amount => 999);
my $fbase = credits($f);
for my $i (1 .. 3) {
	$tx = deliver($t, event('invoice.payment_failed', $fin, created => time - 40 + $i));
	is($tx->res->code, 200, "invoice.payment_failed $i: 200");
}
is(state_of($f)->{status}, 'past_due', 'past_due');
is(state_of($f)->{plan}, 'plus', 'the plan is kept while Stripe retries');
is(count_rows(q{email_outbox WHERE user_id = ? AND template = 'payment_failed'}, $f->{id}), 1,
	'three failures of one invoice: one mail');
is(row(q{SELECT language FROM email_outbox WHERE user_id = ? AND template = 'payment_failed'}, undef, $f->{id}), 'it',
	'in the reader\'s language');
is(row('SELECT status FROM transactions WHERE stripe_invoice_id = ?', undef, $fin->{id}), 'failed', 'a failed transaction');
is(credits($f), $fbase, 'no credits for it');
deliver($t, event('invoice.paid', $fin, created => time - 10));
is(row('SELECT status FROM transactions WHERE stripe_invoice_id = ?', undef, $fin->{id}), 'completed', 'paid at last: completed');
is(credits($f), $fbase + 2000, 'and granted');
is(state_of($f)->{status}, 'active', 'active again');
deliver($t, event('invoice.payment_failed', $fin, created => time - 30));
is(row('SELECT status FROM transactions WHERE stripe_invoice_id = ?', undef, $fin->{id}), 'completed',
	'a late failure of a paid invoice changes nothing');
is(count_rows(q{email_outbox WHERE user_id = ? AND template = 'payment_failed'}, $f->{id}), 1, 'and sends no mail');
my $create_fail = invoice(customer => $f->{customer}, subscription => 'sub_other', reason => 'subscription_create',
	price => 'price_miky_plus');
deliver($t, event('invoice.payment_failed', $create_fail));
is(count_rows(q{email_outbox WHERE user_id = ? AND template = 'payment_failed'}, $f->{id}), 1,
	'a first invoice failing (at Checkout): no mail');

# --- asynchronous payments ----------------------------------------------------------------------

my $a = payer(first_name => 'Async');
my $abase = credits($a);
my $as = checkout_session(user => $a->{id}, customer => $a->{customer}, credits => 400, amount => 399, paid => 0);
deliver($t, event('checkout.session.completed', $as));
is(row('SELECT status FROM transactions WHERE stripe_checkout_session_id = ?', undef, $as->{id}), 'pending', 'unpaid: pending');
is(credits($a), $abase, 'no credits yet');
deliver($t, event('checkout.session.async_payment_succeeded', { %$as, payment_status => 'paid' }));
is(row('SELECT status FROM transactions WHERE stripe_checkout_session_id = ?', undef, $as->{id}), 'completed', 'succeeded: completed');
is(credits($a), $abase + 400, 'granted');
deliver($t, event('checkout.session.async_payment_failed', { %$as, payment_status => 'unpaid' }));
is(row('SELECT status FROM transactions WHERE stripe_checkout_session_id = ?', undef, $as->{id}), 'completed',
	'a failure after success changes nothing');
my $as2 = checkout_session(user => $a->{id}, customer => $a->{customer}, credits => 400, amount => 399, paid => 0);
deliver($t, event('checkout.session.async_payment_succeeded', { %$as2, payment_status => 'paid' }));
deliver($t, event('checkout.session.completed', $as2));
is(row('SELECT status FROM transactions WHERE stripe_checkout_session_id = ?', undef, $as2->{id}), 'completed',
	'succeeded before completed (unpaid): completed stays');
is(credits($a), $abase + 800, 'granted once');
my $as3 = checkout_session(user => $a->{id}, customer => $a->{customer}, credits => 400, amount => 399, paid => 0);
deliver($t, event('checkout.session.completed', $as3));
deliver($t, event('checkout.session.async_payment_failed', $as3));
is(row('SELECT status FROM transactions WHERE stripe_checkout_session_id = ?', undef, $as3->{id}), 'failed', 'failed');
is(credits($a), $abase + 800, 'no credits');
my $other = checkout_session(user => $a->{id}, customer => $a->{customer}, metadata => { kind => 'donation' });
deliver($t, event('checkout.session.completed', $other));
is(count_rows('transactions WHERE stripe_checkout_session_id = ?', $other->{id}), 0,
	'a Checkout Session that is not ours (no pack): nothing');
ledger_ok($a, 'asynchronous payments');
# A customer unknown to Miky, and a user named only in metadata.
$tx = deliver($t, event('checkout.session.completed', checkout_session(user => undef, customer => 'cus_nobody')));
is($tx->res->code, 200, 'a customer of no account: 200, nothing');
my $m = $t->user(first_name => 'Meta');
my $mbase = credits($m);
deliver($t, event('checkout.session.completed', checkout_session(user => $m->{id}, customer => 'cus_new_meta', credits => 50)));
is(credits($m), $mbase + 50, 'a user named in metadata only: granted');
$t->allow_log(qr/no account for customer|names no customer/);

# --- a pack bought while chat turns spend ------------------------------------------------------------

set_settings($t, chat_max_concurrent_turns => 100, chat_turns_per_minute => 1000);
my $c = payer(first_name => 'Race');
my $have = credits($c);
$dbh->do(q{WITH u AS (UPDATE users SET credits = 0 WHERE id = ? RETURNING id)
	INSERT INTO credit_ledger (user_id, delta, balance_after, reason) SELECT id, ?, 0, 'admin' FROM u},
	undef, $c->{id}, -$have);
is(credits($c), 0, 'a user with no credits');
ledger_ok($c, 'the start');
my $C = $t->auth($c);
my (@turns, @packs);
my @sessions = map { checkout_session(user => $c->{id}, customer => $c->{customer}, credits => 3, amount => 100) } 1 .. 10;
my $lowest = 0;
Mojo::Promise->all(
	(map { my $i = $_; $t->ua->post_p($t->url('/api/chat/send') => $C => json => { content => "race $i" })
		->then(sub { push @turns, shift->res->code }) } 1 .. 40),
	(map { my $s = $_; map { deliver_p($t, event('checkout.session.completed', $s))->then(sub { push @packs, shift->res->code }) } 1 .. 3 } @sessions),
)->wait;
is(scalar(grep { $_ == 200 } @packs), 30, '30 pack deliveries (10 sessions, 3 each) during the turns: all 200');
my $ok = grep { $_ == 201 } @turns;
my $short = grep { $_ == 402 } @turns;
is($ok + $short, 40, "40 turns: $ok answered, $short refused for credits");
is(credits($c), 30 - $ok, 'final balance = 10 packs of 3 - the turns answered');
cmp_ok($ok, '<=', 30, 'never more turns than credits');
ledger_ok($c, 'the race');
is(count_rows(q{credit_ledger WHERE user_id = ? AND balance_after < 0}, $c->{id}), 0, 'no ledger row below zero');
is(count_rows(q{credit_ledger WHERE user_id = ? AND reason = 'purchase'}, $c->{id}), 10, 'ten purchases');

# --- refunds: taken back once, never below zero --------------------------------------------------------

my $r = payer(first_name => 'Refund');
my $rbase = credits($r);
my $rs = checkout_session(user => $r->{id}, customer => $r->{customer}, credits => 500, amount => 499);
deliver($t, event('checkout.session.completed', $rs));
is(credits($r), $rbase + 500, 'a pack of 500');
my $partial = charge(payment_intent => $rs->{payment_intent}, amount => 499, refunded => 0, amount_refunded => 100);
deliver($t, event('charge.refunded', $partial));
is(credits($r), $rbase + 500, 'a partial refund: nothing taken');
is(row('SELECT status FROM transactions WHERE stripe_checkout_session_id = ?', undef, $rs->{id}), 'completed', 'still completed');
my $full = charge(id => $partial->{id}, payment_intent => $rs->{payment_intent}, amount => 499);
my $rev = event('charge.refunded', $full);
@codes = ();
Mojo::Promise->all(map { deliver_p($t, $_ % 2 ? $rev : event('charge.refunded', $full))->then(sub { push @codes, shift->res->code }) } 1 .. 10)->wait;
is(scalar(grep { $_ == 200 } @codes), 10, 'the full refund 10 times (two event ids), in parallel: 200');
is(credits($r), $rbase, 'the 500 credits taken back once');
is(row('SELECT status FROM transactions WHERE stripe_checkout_session_id = ?', undef, $rs->{id}), 'refunded', 'refunded');
is(count_rows(q{credit_ledger WHERE user_id = ? AND reason = 'refund'}, $r->{id}), 1, 'one refund ledger row');
is(row(q{SELECT delta FROM credit_ledger WHERE user_id = ? AND reason = 'refund'}, undef, $r->{id}), -500, 'of -500');
ledger_ok($r, 'after the refund');

# Spent in part: back down to zero, never below.
my $rs2 = checkout_session(user => $r->{id}, customer => $r->{customer}, credits => 500, amount => 499);
deliver($t, event('checkout.session.completed', $rs2));
my $spend = credits($r) - 120;
$dbh->do(q{WITH u AS (UPDATE users SET credits = credits - ? WHERE id = ? RETURNING id, credits)
	INSERT INTO credit_ledger (user_id, delta, balance_after, reason) SELECT id, -?::bigint, credits, 'chat' FROM u},
	undef, $spend, $r->{id}, $spend);
is(credits($r), 120, 'spent all but 120');
deliver($t, event('charge.refunded', charge(payment_intent => $rs2->{payment_intent}, amount => 499)));
is(credits($r), 0, 'refunded: the 120 left are taken, not more');
is(row(q{SELECT delta FROM credit_ledger WHERE user_id = ? AND reason = 'refund' ORDER BY id DESC LIMIT 1}, undef, $r->{id}),
	-120, 'a refund row of -120');
ledger_ok($r, 'refund down to zero');
# A refund of a subscription invoice, found by its charge.
my $rinv = invoice(customer => $r->{customer}, subscription => 'sub_r', price => 'price_miky_plus', reason => 'subscription_create');
deliver($t, event('invoice.paid', $rinv));
is(credits($r), 2000, 'a plan invoice: 2000');
deliver($t, event('charge.refunded', charge(id => $rinv->{charge}, amount => 999)));
is(credits($r), 0, 'its refund, found by the charge: taken back');
is(row('SELECT status FROM transactions WHERE stripe_invoice_id = ?', undef, $rinv->{id}), 'refunded', 'refunded');
$tx = deliver($t, event('charge.refunded', charge(payment_intent => 'pi_unknown')));
is($tx->res->code, 200, 'a refund of a charge that is not ours: 200, nothing');
$t->allow_log(qr/no payment of ours/);

my $bad = $dbh->selectall_arrayref(q{SELECT u.id FROM users u LEFT JOIN credit_ledger l ON l.user_id = u.id
	GROUP BY u.id HAVING u.credits <> coalesce(sum(l.delta), 0)});
is_deeply($bad, [], 'every user: credits = sum of ledger deltas');

# Each event counted by type and outcome, each grant and claw-back too.
for my $row (@{ $dbh->selectall_arrayref(q{SELECT type, count(*) FROM stripe_events
	WHERE outcome = 'handled' GROUP BY type}) })
{
	is($t->metric('miky_webhook_events_total', type => $row->[0], outcome => 'applied'), $row->[1],
		"miky_webhook_events_total: $row->[1] $row->[0] applied");
}
is($t->metric('miky_webhook_events_total', type => 'other', outcome => 'ignored'),
	row(q{SELECT count(*) FROM stripe_events WHERE outcome = 'ignored'}), 'types not handled: counted as other');
ok($t->metric('miky_webhook_events_total', type => 'checkout.session.completed', outcome => 'duplicate') > 0,
	'replays counted as duplicate');
ok($t->metric('miky_webhook_events_total', type => 'unknown', outcome => 'bad_signature') >= 5,
	'bad signatures counted');
for my $reason (qw(purchase subscription)) {
	is($t->metric('miky_grants_total', reason => $reason, outcome => 'granted'),
		row(q{SELECT count(*) FROM credit_ledger WHERE reason = ?}, undef, $reason), "$reason grants counted");
}
is($t->metric('miky_clawbacks_total', kind => 'credits', outcome => 'taken'),
	row(q{SELECT count(*) FROM credit_ledger WHERE reason = 'refund'}), 'credits taken back: counted');
like($t->log, qr/"msg":"event",.*"event":"webhook","type":"invoice\.paid","outcome":"applied"/,
	'and logged as events');

$t->done;
