#!/usr/bin/perl
# /api/payments against a fake Stripe: plans and packs from settings,
# Checkout Sessions for packs and plans (what Stripe is sent: form fields,
# the user from the token, prices from settings, Idempotency-Key), one
# customer per user even when first purchases race, retries with the same
# key, Stripe's failures as 502 without its text, subscription changes
# (proration, cancel at period end or now), 409s, the transaction list;
# and without STRIPE_SECRET_KEY, 503 but the plans still listed.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is error_code_is $TS $UUID);
use Miky::FakeOpenAI qw(set_settings);
use Miky::FakeStripe qw(event deliver checkout_session invoice subscription);
use Mojo::Promise;

my $stripe = Miky::FakeStripe->new;
my $t = Miky::Test->new(threads => 16);
my $dbh = $t->dbh;

sub req { $t->json_req(@_) }
sub customer_of {
	$dbh->selectrow_array('SELECT stripe_customer_id FROM users WHERE id = ?', undef, $_[0]{id});
}

# --- without Stripe ----------------------------------------------------------------

my $u = $t->user(first_name => 'Paula');
my $U = $t->auth($u);

my $tx = req(GET => '/api/payments/plans');
is($tx->res->code, 200, 'GET /plans without Stripe: 200');
my $j = $tx->res->json;
is_deeply([ sort keys %$j ], [qw(credit_packs currency plans)], '{currency, plans, credit_packs}');
is($j->{currency}, 'usd', "the currency of every price (the setting's default)");
is_deeply([ map { $_->{id} } @{ $j->{plans} } ], [qw(free plus business)], 'three plans in order');
is_deeply($j->{plans}[1], { id => 'plus', name => 'Plus', price_cents => 999, monthly_credits => 2000 },
	'a plan: id, name, price_cents, monthly_credits (no Stripe price id)');
is_deeply($j->{credit_packs}[0], { id => 'small', credits => 500, price_cents => 499 },
	'a pack: id, credits, price_cents');
is(scalar @{ $j->{credit_packs} }, 3, 'three packs');

for my $c ([ '/api/payments/create-subscription', { plan => 'plus' } ],
	[ '/api/payments/update-subscription', { plan => 'plus' } ],
	[ '/api/payments/cancel-subscription', {} ],
	[ '/api/payments/buy-credits', { pack => 'small' } ]) {
	error_is(req(POST => $c->[0], $c->[1], $U), 503, 'unavailable', undef, "$c->[0] without a key: 503");
}
error_is(deliver($t, event('invoice.paid', invoice())), 503, 'unavailable', undef,
	'the webhook without a signing secret: 503 (Stripe retries)');
$tx = req(GET => '/api/payments/transactions', undef, $U);
is($tx->res->code, 200, 'transactions need no Stripe');
is_deeply($tx->res->json, { transactions => [], next_cursor => undef }, 'none yet');
error_is(req(POST => '/api/payments/create-subscription', { plan => 'gold' }, $U), 400, 'invalid_input', 'plan',
	'input is still checked first');

# --- with the fake Stripe ----------------------------------------------------------

$t->stop_app;
# A Stripe call that hangs is given up after 5 s and tried again.
$t->start_app(env => { %{ $stripe->env }, MIKY_STRIPE_TIMEOUT_MS => 5000 });

# Unauthenticated, bad inputs.
error_is(req(POST => '/api/payments/buy-credits', { pack => 'small' }), 401, 'unauthorized', undef, 'buy-credits needs a session');
error_is(req(POST => '/api/payments/create-subscription', { plan => 'plus' }), 401, 'unauthorized', undef,
	'create-subscription needs a session');
error_is(req(GET => '/api/payments/transactions'), 401, 'unauthorized', undef, 'transactions need a session');
for my $c (
	[ '/api/payments/buy-credits', {}, 'pack', 'no pack' ],
	[ '/api/payments/buy-credits', { pack => 5 }, 'pack', 'pack a number' ],
	[ '/api/payments/buy-credits', { pack => 'small', user_id => $u->{id} }, 'user_id', 'a user_id in the body' ],
	[ '/api/payments/buy-credits', { pack => 'small', price_cents => 1 }, 'price_cents', 'a price in the body' ],
	[ '/api/payments/buy-credits', { pack => 'small', metadata => { user_id => 'x' } }, 'metadata', 'metadata in the body' ],
	[ '/api/payments/create-subscription', { plan => 'free' }, 'plan', 'plan free' ],
	[ '/api/payments/create-subscription', { plan => 'gold' }, 'plan', 'an unknown plan' ],
	[ '/api/payments/create-subscription', { plan => 'plus', price => 'price_x' }, 'price', 'a price id in the body' ],
	[ '/api/payments/update-subscription', {}, 'plan', 'update without plan' ],
	[ '/api/payments/cancel-subscription', { at_period_end => 'yes' }, 'at_period_end', 'at_period_end a string' ],
) {
	error_is(req(POST => $c->[0], $c->[1], $U), 400, 'invalid_input', $c->[2], "$c->[0]: $c->[3]");
}
error_is(req(POST => '/api/payments/buy-credits', { pack => 'huge' }, $U), 400, 'invalid_input', 'pack',
	'a pack that is not in the settings');
error_code_is(req(POST => '/api/payments/buy-credits', 'pack=small', { %$U, 'Content-Type' => 'application/x-www-form-urlencoded' }),
	415, 'unsupported_media_type', 'a form body');
is(scalar $stripe->requests, 0, 'none of that reached Stripe');

# A credit pack: a customer first, then the Checkout Session.
$tx = req(POST => '/api/payments/buy-credits', { pack => 'small' }, $U);
is($tx->res->code, 200, 'buy-credits: 200') or diag $tx->res->body;
$j = $tx->res->json;
is_deeply([ sort keys %$j ], [qw(checkout_url session_id)], '{checkout_url, session_id}');
like($j->{session_id}, qr/^cs_test_/, 'the session id');
is($j->{checkout_url}, "https://checkout.stripe.test/c/pay/$j->{session_id}", "Stripe's checkout url");
my @cust = $stripe->requests(path => '/v1/customers');
is(scalar @cust, 1, 'one customer created');
is($cust[0]{method}, 'POST', 'POST /v1/customers');
is($cust[0]{headers}{authorization}, 'Bearer ' . $stripe->key, 'with the secret key');
is($cust[0]{idempotency_key}, "miky-customer-$u->{id}", 'the customer key is the user');
is($cust[0]{form}{email}, $u->{email}, 'the email');
is($cust[0]{form}{'metadata[user_id]'}, $u->{id}, 'metadata[user_id]');
my $cus = customer_of($u);
is($cus, $cust[0]{answer}{id}, 'the customer is stored');
my @sess = $stripe->requests(path => '/v1/checkout/sessions');
is(scalar @sess, 1, 'one Checkout Session');
my $f = $sess[0]{form};
like($sess[0]{idempotency_key}, qr/^[A-Za-z0-9_-]{43}$/, 'a random Idempotency-Key');
like($sess[0]{headers}{'content-type'}, qr{^application/x-www-form-urlencoded}, 'form-encoded');
is($f->{mode}, 'payment', 'mode payment');
is($f->{customer}, $cus, 'the customer');
is($f->{client_reference_id}, $u->{id}, 'client_reference_id: the user');
is($f->{'metadata[user_id]'}, $u->{id}, 'metadata[user_id]: from the token');
is($f->{'metadata[kind]'}, 'pack', 'metadata[kind]');
is($f->{'metadata[pack]'}, 'small', 'metadata[pack]');
is($f->{'metadata[credits]'}, 500, 'metadata[credits] from the settings');
is($f->{'payment_intent_data[metadata][user_id]'}, $u->{id}, 'the payment intent names the user too');
is($f->{'line_items[0][quantity]'}, 1, 'one item');
is($f->{'line_items[0][price_data][unit_amount]'}, 499, 'the price from the settings');
is($f->{'line_items[0][price_data][currency]'}, 'usd', 'the currency from the settings');
like($f->{'line_items[0][price_data][product_data][name]'}, qr/500/, 'a product name');
is($f->{success_url}, $t->base . '/billing/success?session_id={CHECKOUT_SESSION_ID}',
	'success_url on PUBLIC_BASE_URL');
is($f->{cancel_url}, $t->base . '/billing/cancel', 'cancel_url on PUBLIC_BASE_URL');
is(scalar $dbh->selectrow_array('SELECT count(*) FROM transactions'), 0,
	'a Checkout Session is no transaction: the webhook records payments');

# The same user again: the stored customer, no new one.
$tx = req(POST => '/api/payments/buy-credits', { pack => 'large' }, $U);
is($tx->res->code, 200, 'a second purchase: 200');
is(scalar $stripe->requests(path => '/v1/customers'), 1, 'no second customer');
is(($stripe->requests(path => '/v1/checkout/sessions'))[-1]{form}{customer}, $cus, 'the stored one');

# A pack with a Stripe price.
set_settings($t, credit_packs => [ { id => 'small', credits => 10, price_cents => 123, stripe_price_id => 'price_pack_small' } ]);
$tx = req(POST => '/api/payments/buy-credits', { pack => 'small' }, $U);
is($tx->res->code, 200, 'a pack with a Stripe price: 200');
$f = ($stripe->requests(path => '/v1/checkout/sessions'))[-1]{form};
is($f->{'line_items[0][price]'}, 'price_pack_small', 'line_items[0][price] from the settings');
ok(!exists $f->{'line_items[0][price_data][unit_amount]'}, 'and no price_data');
is($f->{'metadata[credits]'}, 10, 'the credits of the new setting');
error_is(req(POST => '/api/payments/buy-credits', { pack => 'large' }, $U), 400, 'invalid_input', 'pack',
	'a pack removed from the settings');
set_settings($t, credit_packs => [ { id => 'small', credits => 500, price_cents => 499 },
	{ id => 'large', credits => 3000, price_cents => 1999 } ]);

# Another currency: the plans name it, and Checkout asks Stripe for it.
set_settings($t, currency => 'eur');
ok($t->wait_for(sub { (req(GET => '/api/payments/plans')->res->json('/currency') // '') eq 'eur' }, 30, 'currency eur'),
	'GET /plans names the currency of the setting');
is(req(POST => '/api/payments/buy-credits', { pack => 'small' }, $U)->res->code, 200, 'a purchase in euros: 200');
is(($stripe->requests(path => '/v1/checkout/sessions'))[-1]{form}{'line_items[0][price_data][currency]'}, 'eur',
	'the Checkout Session in that currency');
set_settings($t, currency => 'usd');
ok($t->wait_for(sub { (req(GET => '/api/payments/plans')->res->json('/currency') // '') eq 'usd' }, 30, 'currency usd'),
	'and back');

# Retries: 500 then 200, a dropped connection then 200 -- the same key.
for my $c ([ 500, '5xx' ], [ 0, 'a dropped connection' ], [ 429, '429' ], [ -1, 'no answer (a timeout)' ]) {
	my $before = () = $stripe->requests(path => '/v1/checkout/sessions');
	$stripe->fail(POST => '^/v1/checkout/sessions$', $c->[0], 1);
	$tx = req(POST => '/api/payments/buy-credits', { pack => 'small' }, $U);
	is($tx->res->code, 200, "$c->[1], then 200: the client gets 200") or diag $tx->res->body;
	my @s = ($stripe->requests(path => '/v1/checkout/sessions'))[$before .. $before + 1];
	is(scalar(grep { defined } @s), 2, "$c->[1]: tried twice");
	ok($s[0]{injected} && !$s[1]{injected}, "$c->[1]: the first failed, the second answered");
	is($s[1]{idempotency_key}, $s[0]{idempotency_key}, "$c->[1]: the retry has the same Idempotency-Key");
	is_deeply($s[1]{form}, $s[0]{form}, "$c->[1]: and the same form");
	is($tx->res->json('/session_id'), $s[1]{answer}{id}, "$c->[1]: the session of the answer");
}

# Failures: 502 upstream_error, never Stripe's text.
my $before = () = $stripe->requests(path => '/v1/checkout/sessions');
$stripe->fail(POST => '^/v1/checkout/sessions$', 500, 3);
$tx = req(POST => '/api/payments/buy-credits', { pack => 'small' }, $U);
error_is($tx, 502, 'upstream_error', undef, '500 three times: 502 upstream_error');
unlike($tx->res->body, qr/injected|fake|api_error/, "without Stripe's text");
my @s = ($stripe->requests(path => '/v1/checkout/sessions'))[$before .. $before + 3];
is(scalar(grep { defined } @s), 3, 'three attempts, no more');
is(scalar(keys %{ { map { $_->{idempotency_key} => 1 } grep { defined } @s } }), 1, 'all with one key');
$before = () = $stripe->requests(path => '/v1/checkout/sessions');
$stripe->fail(POST => '^/v1/checkout/sessions$', 400, 1);
$tx = req(POST => '/api/payments/buy-credits', { pack => 'small' }, $U);
error_is($tx, 502, 'upstream_error', undef, 'a 400 from Stripe: 502');
is(scalar $stripe->requests(path => '/v1/checkout/sessions'), $before + 1, 'a 400 is not retried');
$t->allow_log(qr/"msg":"stripe /);

# Concurrent first purchases of a new user: one customer.
my $v = $t->user(first_name => 'Vera');
my $V = $t->auth($v);
my @res;
Mojo::Promise->all(map {
	my $i = $_;
	$t->ua->post_p($t->url('/api/payments/buy-credits') => $V => json => { pack => 'small' })
		->then(sub { $res[$i] = shift->res });
} 0 .. 7)->wait;
is(scalar(grep { $_->code == 200 } @res), 8, '8 parallel first purchases: all 200');
my @vc = grep { $_->{form}{'metadata[user_id]'} eq $v->{id} } $stripe->requests(path => '/v1/customers');
is(scalar(grep { !$_->{replayed} } @vc), 1, 'Stripe created one customer (the same key for all)');
is(scalar(keys %{ { map { $_->{answer}{id} => 1 } @vc } }), 1, 'every answer names it');
is(customer_of($v), $vc[0]{answer}{id}, 'and it is the one stored');
my @vs = grep { $_->{form}{'metadata[user_id]'} eq $v->{id} } $stripe->requests(path => '/v1/checkout/sessions');
is(scalar(grep { $_->{form}{customer} eq customer_of($v) } @vs), 8, 'all 8 sessions for that customer');

# --- subscriptions ------------------------------------------------------------------------

$tx = req(POST => '/api/payments/create-subscription', { plan => 'plus' }, $U);
is($tx->res->code, 200, 'create-subscription: 200') or diag $tx->res->body;
like($tx->res->json('/checkout_url'), qr{^https://checkout\.stripe\.test/}, 'a checkout url');
$f = ($stripe->requests(path => '/v1/checkout/sessions'))[-1]{form};
is($f->{mode}, 'subscription', 'mode subscription');
is($f->{'line_items[0][price]'}, 'price_miky_plus', "the plan's Stripe price from the settings");
is($f->{customer}, $cus, 'the customer');
is($f->{'metadata[user_id]'}, $u->{id}, 'metadata[user_id]');
is($f->{'metadata[plan]'}, 'plus', 'metadata[plan]');
is($f->{'subscription_data[metadata][user_id]'}, $u->{id}, 'the subscription names the user');
is($f->{'subscription_data[metadata][plan]'}, 'plus', 'and the plan');

# A plan without a Stripe price cannot be sold.
my $plans = { free => { name => 'Free', price_cents => 0, monthly_credits => 0 },
	plus => { name => 'Plus', price_cents => 999, monthly_credits => 2000, stripe_price_id => 'price_miky_plus' },
	business => { name => 'Business', price_cents => 2999, monthly_credits => 10000 } };
set_settings($t, plans => $plans);
error_is(req(POST => '/api/payments/create-subscription', { plan => 'business' }, $U), 503, 'unavailable', undef,
	'a plan without stripe_price_id: 503');
$plans->{business}{stripe_price_id} = 'price_miky_business';
set_settings($t, plans => $plans);

error_is(req(POST => '/api/payments/update-subscription', { plan => 'business' }, $U), 409, 'conflict', undef,
	'update without a subscription: 409');
error_is(req(POST => '/api/payments/cancel-subscription', {}, $U), 409, 'conflict', undef,
	'cancel without a subscription: 409');

# The checkout completes: the webhook makes the subscription active.
my $sub = $stripe->add_subscription(customer => $cus, price => 'price_miky_plus', user => $u->{id}, plan => 'plus');
$tx = deliver($t, event('checkout.session.completed', checkout_session(mode => 'subscription',
	user => $u->{id}, customer => $cus, subscription => $sub->{id}, plan => 'plus', amount => 999)));
is($tx->res->code, 200, 'checkout.session.completed (subscription): 200') or diag $tx->res->body;
$j = req(GET => '/api/user/profile', undef, $U)->res->json('/user');
is($j->{plan}, 'plus', 'the plan is plus');
is($j->{subscription_status}, 'active', 'subscription_status active');
error_is(req(POST => '/api/payments/create-subscription', { plan => 'business' }, $U), 409, 'conflict', undef,
	'already subscribed: 409');
for my $st (qw(past_due trialing)) {
	$dbh->do('UPDATE users SET subscription_status = ? WHERE id = ?', undef, $st, $u->{id});
	error_is(req(POST => '/api/payments/create-subscription', { plan => 'plus' }, $U), 409, 'conflict', undef,
		"a subscription $st: 409");
}
$dbh->do(q{UPDATE users SET subscription_status = 'active', subscription_cancel_at_period_end = true WHERE id = ?},
	undef, $u->{id});
error_is(req(POST => '/api/payments/create-subscription', { plan => 'plus' }, $U), 409, 'conflict', undef,
	'one set to cancel at period end: 409 as well');
$dbh->do('UPDATE users SET subscription_cancel_at_period_end = false WHERE id = ?', undef, $u->{id});

# Change the plan: the price, with proration.
$before = () = $stripe->requests;
$tx = req(POST => '/api/payments/update-subscription', { plan => 'business' }, $U);
is($tx->res->code, 200, 'update-subscription: 200') or diag $tx->res->body;
$j = $tx->res->json('/subscription');
is_deeply([ sort keys %$j ], [qw(cancel_at_period_end current_period_end plan status)],
	'subscription: plan, status, current_period_end, cancel_at_period_end');
is($j->{plan}, 'business', 'plan business');
is($j->{status}, 'active', 'status active');
like($j->{current_period_end}, $TS, 'current_period_end a timestamp');
is($j->{cancel_at_period_end}, Mojo::JSON::false, 'not canceling');
my @calls = ($stripe->requests)[$before .. $before + 1];
is($calls[0]{method} . ' ' . $calls[0]{path}, "GET /v1/subscriptions/$sub->{id}", 'the subscription read first');
is($calls[1]{method} . ' ' . $calls[1]{path}, "POST /v1/subscriptions/$sub->{id}", 'then changed');
is($calls[1]{form}{'items[0][id]'}, $sub->{items}{data}[0]{id}, 'its item');
is($calls[1]{form}{'items[0][price]'}, 'price_miky_business', 'to the new price');
is($calls[1]{form}{proration_behavior}, 'create_prorations', 'with proration');
ok($calls[1]{idempotency_key}, 'with an Idempotency-Key');
ok(!defined $calls[0]{idempotency_key}, 'a GET needs none');

# Cancel at period end, then now.
$tx = req(POST => '/api/payments/cancel-subscription', undef, $U);
is($tx->res->code, 200, 'cancel-subscription with no body: 200') or diag $tx->res->body;
is($tx->res->json('/subscription/cancel_at_period_end'), Mojo::JSON::true, 'cancel_at_period_end: true');
is($tx->res->json('/subscription/status'), 'active', 'still active until the period ends');
my $last = ($stripe->requests)[-1];
is("$last->{method} $last->{path}", "POST /v1/subscriptions/$sub->{id}", 'a POST');
is($last->{form}{cancel_at_period_end}, 'true', 'cancel_at_period_end=true');
$tx = req(POST => '/api/payments/cancel-subscription', { at_period_end => Mojo::JSON::false }, $U);
is($tx->res->code, 200, 'cancel now: 200');
is($tx->res->json('/subscription/status'), 'canceled', 'canceled');
$last = ($stripe->requests)[-1];
is("$last->{method} $last->{path}", "DELETE /v1/subscriptions/$sub->{id}", 'a DELETE');
$j = req(GET => '/api/user/profile', undef, $U)->res->json('/user');
is($j->{subscription_status}, 'canceled', 'the mirror says canceled at once');
is($j->{plan}, 'free', 'and the plan is free');
# A late event of the canceled subscription changes nothing.
$sub->{status} = 'active';
$tx = deliver($t, event('customer.subscription.updated', $sub, created => time + 5));
is($tx->res->code, 200, 'a later "active" of a canceled subscription: 200');
is(req(GET => '/api/user/profile', undef, $U)->res->json('/user/subscription_status'), 'canceled',
	'a canceled subscription stays canceled');
error_is(req(POST => '/api/payments/cancel-subscription', {}, $U), 409, 'conflict', undef, 'cancel again: 409');
$tx = req(POST => '/api/payments/create-subscription', { plan => 'plus' }, $U);
is($tx->res->code, 200, 'after the end, a new subscription may start');

# Stripe failing in the middle of a change: 502, nothing claimed.
my $w = $t->user(first_name => 'Wes');
$tx = req(POST => '/api/payments/buy-credits', { pack => 'small' }, $t->auth($w));
my $wsub = $stripe->add_subscription(customer => customer_of($w), price => 'price_miky_plus');
deliver($t, event('customer.subscription.updated', $wsub));
$stripe->fail(GET => '^/v1/subscriptions/', 404, 1);
error_is(req(POST => '/api/payments/update-subscription', { plan => 'business' }, $t->auth($w)), 502, 'upstream_error',
	undef, 'a subscription Stripe does not find: 502');

# --- the caller's transactions ------------------------------------------------------------

for my $i (1 .. 3) {
	$tx = deliver($t, event('checkout.session.completed', checkout_session(user => $u->{id}, customer => $cus,
		credits => 100 * $i, amount => 100 * $i)));
	is($tx->res->code, 200, "pack $i paid");
}
deliver($t, event('checkout.session.completed', checkout_session(user => $w->{id}, customer => customer_of($w))));
$tx = req(GET => '/api/payments/transactions', undef, $U);
is($tx->res->code, 200, 'GET /transactions: 200');
my $list = $tx->res->json('/transactions');
is(scalar @$list, 3, 'the three, not the other user\'s');
is_deeply([ map { $_->{amount_cents} } @$list ], [ 300, 200, 100 ], 'newest first');
is_deeply([ sort keys %{ $list->[0] } ], [ sort qw(id type amount_cents credits status created_at) ], 'the transaction object');
like($list->[0]{id}, $UUID, 'id');
is($list->[0]{type}, 'credits', 'type credits');
is($list->[0]{credits}, 300, 'credits');
is($list->[0]{status}, 'completed', 'completed');
like($list->[0]{created_at}, $TS, 'created_at');
my @ids;
my $cursor;
for my $page (1 .. 3) {
	$tx = req(GET => '/api/payments/transactions?limit=1' . ($cursor ? "&cursor=$cursor" : ''), undef, $U);
	push @ids, map { $_->{id} } @{ $tx->res->json('/transactions') };
	$cursor = $tx->res->json('/next_cursor');
}
is_deeply(\@ids, [ map { $_->{id} } @$list ], 'paged one by one: the same order');
is($cursor, undef, 'and the last page ends it');
error_is(req(GET => '/api/payments/transactions?cursor=xyz', undef, $U), 400, 'invalid_input', 'cursor', 'a bad cursor');
error_is(req(GET => '/api/payments/transactions?limit=0', undef, $U), 400, 'invalid_input', 'limit', 'limit 0');

$t->done;
