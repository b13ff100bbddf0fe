#!/usr/bin/perl
# The webhook while PostgreSQL is down: a signed event is answered 5xx (so
# Stripe delivers it again), nothing is half applied, and the redelivery
# after recovery applies it once; further replays change nothing.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test;
use Miky::FakeStripe qw(event deliver checkout_session invoice);

my $stripe = Miky::FakeStripe->new;
my $t = Miky::Test->new(own_pg => 1, workers => 1, threads => 4, env => $stripe->env);
my $dbh = $t->dbh;
my $u = $t->user(first_name => 'Outage');
$dbh->do(q{UPDATE users SET stripe_customer_id = 'cus_outage' WHERE id = ?}, undef, $u->{id});
my $base = $dbh->selectrow_array('SELECT credits FROM users WHERE id = ?', undef, $u->{id});

my $pack = event('checkout.session.completed', checkout_session(user => $u->{id}, customer => 'cus_outage',
	credits => 500, amount => 499));
my $inv = event('invoice.paid', invoice(customer => 'cus_outage', subscription => 'sub_outage',
	price => 'price_miky_plus', reason => 'subscription_create'));

$t->stop_pg;
for my $ev ($pack, $inv) {
	for my $i (1 .. 2) {
		my $tx = deliver($t, $ev);
		cmp_ok($tx->res->code, '>=', 500, "$ev->{type} with the database down, try $i: 5xx (Stripe retries)");
		is($tx->res->json('/error/code'), 'unavailable', 'unavailable');
		unlike($tx->res->body, qr/postgres|connection|socket|SQL/i, 'no database details');
	}
}
$t->allow_log(qr/not applied|db |database|postgres|connect/i);
$t->start_pg;
$dbh = $t->dbh;
is($dbh->selectrow_array('SELECT count(*) FROM stripe_events'), 0, 'nothing was recorded meanwhile');
is($dbh->selectrow_array('SELECT credits FROM users WHERE id = ?', undef, $u->{id}), $base, 'nothing was granted');

# Stripe delivers again; the pool reconnects on its own.
my $ok = $t->wait_for(sub { deliver($t, $pack)->res->code == 200 }, 30, 'the webhook to work again');
ok($ok, 'after recovery the redelivery is answered 200');
is(deliver($t, $inv)->res->code, 200, 'and the invoice too');
deliver($t, $_) for $pack, $inv, $pack;
is($dbh->selectrow_array('SELECT credits FROM users WHERE id = ?', undef, $u->{id}), $base + 500 + 2000,
	'each applied once: the pack and the monthly credits');
is($dbh->selectrow_array('SELECT count(*) FROM stripe_events'), 2, 'two events recorded');
is($dbh->selectrow_array(q{SELECT count(*) FROM credit_ledger WHERE user_id = ? AND reason IN ('purchase', 'subscription')},
	undef, $u->{id}), 2, 'two grants in the ledger');
is($dbh->selectrow_array('SELECT plan FROM users WHERE id = ?', undef, $u->{id}), 'plus', 'the plan is active');

$t->done;
