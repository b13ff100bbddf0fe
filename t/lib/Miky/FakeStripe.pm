package Miky::FakeStripe;

# Miky::FakeStripe — a Stripe API peer for the payment tests, and the
# webhook side: events built and signed as Stripe builds and signs them.
#
#   my $stripe = Miky::FakeStripe->new;
#   my $t = Miky::Test->new(env => $stripe->env);
#   ... POST /api/payments/buy-credits {pack => 'small'} ...
#   my ($req) = $stripe->requests(path => '/v1/checkout/sessions');
#   is($req->{form}{'metadata[user_id]'}, $user->{id});
#   my $tx = deliver($t, event('checkout.session.completed', $session));
#
# A Mojolicious daemon in a forked child, on a loopback port the parent
# bound, serving what the app calls, form-encoded as Stripe takes it:
#
#   POST   /v1/customers              a customer (cus_...)
#   POST   /v1/checkout/sessions      a Checkout Session (cs_test_...) with
#                                     its url, echoing mode, customer,
#                                     client_reference_id, metadata
#   GET    /v1/subscriptions/ID       a subscription added by the test
#   POST   /v1/subscriptions/ID       items[0][price], cancel_at_period_end,
#                                     metadata[...] (proration_behavior kept)
#   DELETE /v1/subscriptions/ID       canceled now (canceled_at)
#
# Like Stripe it wants `Authorization: Bearer <key>` (else 401), and it
# keeps Idempotency-Key: a POST with a key seen before gets the first
# answer again (recorded as `replayed`), and a key reused with other
# parameters gets 400 idempotency_error.  An injected failure is not
# kept, so the retry that follows it is answered for real.
#
# The test steers it through control endpoints (the parent's methods):
# fail(method, path_regex, status, count) makes the next `count` matching
# requests fail with `status` (0: the connection is closed without an
# answer; -1: no answer at all), add_subscription(%fields) creates one.
# Every request is recorded (method, path, headers with lower-case names,
# the form as a hash, the idempotency key, the status answered, replayed)
# for requests(%filter).
#
# Webhook helpers, exported: event($type, $object, %over) builds an event
# (id evt_..., created now); sign($body, $secret, $t) is the
# Stripe-Signature header; deliver($t, $event_or_body, %opt) signs with
# the fake's webhook secret (or opt secret/t/header) and POSTs it to
# /api/payments/webhook, returning the Mojo transaction; deliver_p the
# same as a promise.  checkout_session(%f), invoice(%f), subscription(%f)
# and charge(%f) build the objects in Stripe's shapes.

use strict;
use warnings;

use parent -norequire, 'Miky::FakePeer';
use Miky::FakePeer;
use Carp qw(croak);
use Digest::SHA qw(hmac_sha256_hex);
use Exporter qw(import);
use Mojo::IOLoop;
use Mojo::JSON qw(encode_json false true);
use Mojo::UserAgent;
use Mojolicious;
use Time::HiRes qw(time);

our @EXPORT_OK = qw(event sign deliver deliver_p checkout_session invoice
	subscription charge);

our $WEBHOOK_SECRET = 'whsec_test_0123456789abcdefghijklmnopqrstuv';
my $SEQ = 0;

sub _uid { sprintf '%s%d%05d', $_[0], $$, ++$SEQ }

# --- the parent's side ------------------------------------------------------

sub new {
	my ($class, %opt) = @_;
	my $self = bless {
		key => $opt{key} // 'sk_test_' . join('', map { ('a' .. 'z', 0 .. 9)[rand 36] } 1 .. 24),
	}, $class;
	return $self->start('stripe');
}

sub key  { $_[0]{key} }
sub url  { "http://127.0.0.1:$_[0]{port}" }

sub env {
	my $self = shift;
	return { STRIPE_SECRET_KEY => $self->key, STRIPE_API_BASE => $self->url,
		STRIPE_WEBHOOK_SECRET => $WEBHOOK_SECRET };
}

sub _control {
	my ($self, $what, $body) = @_;
	my $tx = Mojo::UserAgent->new->post($self->url . "/_control/$what" => json => $body);
	croak "fake Stripe control $what: " . ($tx->res->code // 'no answer')
		unless ($tx->res->code // 0) == 200;
	return $tx->res->json;
}

# fail($method, $path_regex, $status, $count = 1): the next $count
# requests matching fail with $status (0: the connection is dropped;
# -1: nothing is ever answered).
sub fail {
	my ($self, $method, $path, $status, $count) = @_;
	$self->_control(fail => { method => $method, path => $path,
		status => $status, count => $count // 1 });
}

# add_subscription(id, customer, price, status, metadata...) stores a
# subscription for GET/POST/DELETE /v1/subscriptions/ID; returns it.
sub add_subscription {
	my ($self, %f) = @_;
	return $self->_control(subscription => subscription(%f));
}

# requests(path => ..., method => ...) lists the requests so far, oldest
# first: { t, method, path, headers, form, idempotency_key, status,
# replayed, injected }.
sub requests {
	my ($self, %f) = @_;
	my @all = $self->records;
	@all = grep { $_->{path} eq $f{path} } @all if defined $f{path};
	@all = grep { $_->{path} =~ $f{path_like} } @all if defined $f{path_like};
	@all = grep { $_->{method} eq $f{method} } @all if defined $f{method};
	return @all;
}

# --- the child's side -------------------------------------------------------

sub _error {
	my ($status, $type, $message) = @_;
	return ($status, { error => { type => $type, message => $message } });
}

# Nested metadata[k]=v fields of a form as a hash.
sub _meta {
	my ($form, $prefix) = @_;
	my %m;
	for my $k (keys %$form) {
		$m{$1} = $form->{$k} if $k =~ /^\Q$prefix\E\[([^\]]+)\]$/;
	}
	return \%m;
}

sub _serve {
	my ($self, $fd, $ppid) = @_;
	my $app = Mojolicious->new;
	$app->log->level('fatal');
	my (%idem, @fails, %subs);
	my $r = $app->routes;

	$r->post('/_control/fail' => sub {
		my $c = shift;
		push @fails, $c->req->json;
		$c->render(json => { ok => 1 });
	});
	$r->post('/_control/subscription' => sub {
		my $c = shift;
		my $s = $c->req->json;
		$subs{ $s->{id} } = $s;
		$c->render(json => $s);
	});

	my $handle = sub {
		my ($c, $method, $path, $form) = @_;
		return _customer($form) if $method eq 'POST' && $path eq '/v1/customers';
		return _session($form) if $method eq 'POST' && $path eq '/v1/checkout/sessions';
		if ($path =~ m{^/v1/subscriptions/([^/]+)$}) {
			my $s = $subs{$1} or return _error(404, 'invalid_request_error', "No such subscription: '$1'");
			return (200, $s) if $method eq 'GET';
			if ($method eq 'DELETE') {
				$s->{status} = 'canceled';
				$s->{canceled_at} = $s->{ended_at} = int time;
				return (200, $s);
			}
			if (defined $form->{'items[0][price]'}) {
				$s->{items}{data}[0]{id} eq ($form->{'items[0][id]'} // '')
					or return _error(400, 'invalid_request_error', 'wrong subscription item');
				$s->{items}{data}[0]{price}{id} = $form->{'items[0][price]'};
			}
			$s->{cancel_at_period_end} = $form->{cancel_at_period_end} eq 'true' ? true : false
				if defined $form->{cancel_at_period_end};
			my $m = _meta($form, 'metadata');
			$s->{metadata}{$_} = $m->{$_} for keys %$m;
			return (200, $s);
		}
		return _error(404, 'invalid_request_error', "Unrecognized request URL ($method $path)");
	};

	$r->any('/*any' => { any => '' } => sub {
		my $c = shift;
		my $method = $c->req->method;
		my $path = $c->req->url->path->to_string;
		my $h = $c->req->headers->to_hash;
		my %headers = map { lc($_) => $h->{$_} } keys %$h;
		my $form = $c->req->body_params->to_hash;
		my $key = $headers{'idempotency-key'};
		my $rec = { t => time, method => $method, path => $path,
			headers => \%headers, form => $form, idempotency_key => $key };
		my ($status, $body);
		my ($fail) = grep { $_->{count} > 0 && $_->{method} eq $method && $path =~ /$_->{path}/ } @fails;
		if ($fail) {
			$fail->{count}--;
			$rec->{injected} = 1;
			$rec->{status} = $fail->{status};
			$self->_record($rec);
			if ($fail->{status} < 0) {
				$c->inactivity_timeout(600);
				return $c->render_later;    # no answer, ever
			}
			if (!$fail->{status}) {
				my $s = Mojo::IOLoop->stream($c->tx->connection);
				$s->close if $s;
				return $c->rendered;
			}
			return $c->render(status => $fail->{status},
				json => { error => { type => 'api_error', message => 'injected failure (fake)' } });
		}
		if (($headers{authorization} // '') ne 'Bearer ' . $self->{key}) {
			($status, $body) = _error(401, 'invalid_request_error', 'Invalid API Key provided');
		} elsif ($method eq 'POST' && defined $key && $idem{$key}) {
			my $old = $idem{$key};
			if ($old->{path} ne $path || encode_json($old->{form}) ne encode_json($form)) {
				($status, $body) = _error(400, 'idempotency_error',
					'Keys for idempotent requests can only be used with the same parameters they were first used with.');
			} else {
				($status, $body) = ($old->{status}, $old->{body});
				$rec->{replayed} = 1;
			}
		} else {
			($status, $body) = $handle->($c, $method, $path, $form);
			$idem{$key} = { path => $path, form => $form, status => $status, body => $body }
				if $method eq 'POST' && defined $key;
		}
		$rec->{status} = $status;
		$rec->{answer} = $body;
		$self->_record($rec);
		$c->render(status => $status, json => $body);
	});
	$self->daemon($app, $fd, $ppid, inactivity_timeout => 60);
}

sub _customer {
	my $form = shift;
	return (200, { id => _uid('cus_'), object => 'customer', email => $form->{email},
		metadata => _meta($form, 'metadata') });
}

sub _session {
	my $form = shift;
	my $id = _uid('cs_test_');
	return (200, { id => $id, object => 'checkout.session', mode => $form->{mode},
		url => "https://checkout.stripe.test/c/pay/$id",
		customer => $form->{customer}, client_reference_id => $form->{client_reference_id},
		metadata => _meta($form, 'metadata'), status => 'open', payment_status => 'unpaid',
		amount_total => $form->{'line_items[0][price_data][unit_amount]'},
		success_url => $form->{success_url}, cancel_url => $form->{cancel_url} });
}

# --- Stripe's objects and events ------------------------------------------

# checkout_session(user => $id, customer => 'cus_...', mode => 'payment',
# pack => 'small', credits => 500, amount => 499, paid => 1, id => ...,
# subscription => 'sub_...', plan => 'plus')
sub checkout_session {
	my %f = @_;
	my $mode = $f{mode} // 'payment';
	my %meta = (user_id => $f{user}, kind => $mode eq 'payment' ? 'pack' : 'subscription');
	$meta{pack} = $f{pack} // 'small' if $mode eq 'payment';
	$meta{credits} = $f{credits} // 500 if $mode eq 'payment';
	$meta{plan} = $f{plan} if $f{plan};
	%meta = (%meta, %{ $f{metadata} }) if $f{metadata};
	delete @meta{ grep { !defined $meta{$_} } keys %meta };
	$meta{$_} = "$meta{$_}" for keys %meta;    # Stripe's metadata values are strings
	return { id => $f{id} // _uid('cs_test_'), object => 'checkout.session', mode => $mode,
		customer => $f{customer}, client_reference_id => $f{user},
		metadata => \%meta, status => 'complete',
		payment_status => ($f{paid} // 1) ? 'paid' : 'unpaid',
		amount_total => $f{amount} // 499, currency => 'usd',
		payment_intent => $mode eq 'payment' ? ($f{payment_intent} // _uid('pi_')) : undef,
		subscription => $mode eq 'subscription' ? ($f{subscription} // _uid('sub_')) : undef };
}

# invoice(customer, subscription, price, reason, amount, id, period_end,
# payment_intent, charge, shape => 'basil' for the newer API shape)
sub invoice {
	my %f = @_;
	my $end = $f{period_end} // int(time) + 30 * 86400;
	my $inv = { id => $f{id} // _uid('in_'), object => 'invoice', customer => $f{customer},
		billing_reason => $f{reason} // 'subscription_cycle',
		amount_paid => $f{amount} // 999, amount_due => $f{amount} // 999, currency => 'usd',
		status => 'paid' };
	my $line = { object => 'line_item', amount => $f{amount} // 999,
		period => { start => $end - 30 * 86400, end => $end } };
	if (($f{shape} // '') eq 'basil') {
		$inv->{parent} = { type => 'subscription_details', subscription_details => {
			subscription => $f{subscription}, metadata => $f{metadata} // {} } };
		$line->{pricing} = { type => 'price_details', price_details => { price => $f{price} } };
	} else {
		$inv->{subscription} = $f{subscription};
		$inv->{subscription_details} = { metadata => $f{metadata} // {} };
		$inv->{payment_intent} = $f{payment_intent} // _uid('pi_');
		$inv->{charge} = $f{charge} // _uid('ch_');
		$line->{price} = { id => $f{price}, object => 'price' };
	}
	$inv->{lines} = { object => 'list', data => [$line] };
	return $inv;
}

# subscription(id, customer, price, status, cancel_at_period_end,
# current_period_end, metadata, user, plan)
sub subscription {
	my %f = @_;
	my %meta = %{ $f{metadata} // {} };
	$meta{user_id} = $f{user} if $f{user};
	$meta{plan} = $f{plan} if $f{plan};
	$meta{$_} = "$meta{$_}" for keys %meta;
	my $end = $f{current_period_end} // int(time) + 30 * 86400;
	return { id => $f{id} // _uid('sub_'), object => 'subscription', customer => $f{customer},
		status => $f{status} // 'active',
		cancel_at_period_end => $f{cancel_at_period_end} ? true : false,
		current_period_end => $end, metadata => \%meta,
		items => { object => 'list', data => [ { id => $f{item} // _uid('si_'),
			price => { id => $f{price}, object => 'price' }, current_period_end => $end } ] } };
}

# charge(payment_intent, id, invoice, amount, refunded => 1, amount_refunded)
sub charge {
	my %f = @_;
	my $amount = $f{amount} // 499;
	my $refunded = $f{refunded} // 1;
	return { id => $f{id} // _uid('ch_'), object => 'charge', payment_intent => $f{payment_intent},
		invoice => $f{invoice}, amount => $amount, customer => $f{customer},
		amount_refunded => $f{amount_refunded} // ($refunded ? $amount : 0),
		refunded => $refunded ? true : false };
}

# event($type, $object, id => ..., created => ...)
sub event {
	my ($type, $object, %o) = @_;
	return { id => $o{id} // _uid('evt_'), object => 'event', type => $type,
		api_version => '2024-06-20', created => $o{created} // int(time),
		livemode => false, pending_webhooks => 1,
		data => { object => $object } };
}

# sign($body, $secret, $t): "t=...,v1=..." as Stripe writes it.
sub sign {
	my ($body, $secret, $t) = @_;
	$t //= int time;
	return "t=$t,v1=" . hmac_sha256_hex("$t.$body", $secret // $WEBHOOK_SECRET);
}

sub _webhook_tx {
	my ($t, $ev, %o) = @_;
	my $body = ref $ev ? encode_json($ev) : $ev;
	my $header = exists $o{header} ? $o{header} : sign($body, $o{secret}, $o{t});
	my %h = (defined $header ? ('Stripe-Signature' => $header) : ());
	$h{'Content-Type'} = $o{content_type} // 'application/json';
	return $t->ua->build_tx(POST => $t->url('/api/payments/webhook') => \%h => $body);
}

# deliver($t, $event_or_body, secret => ..., t => ..., header => ...)
sub deliver {
	my ($t, @rest) = @_;
	return $t->ua->start(_webhook_tx($t, @rest));
}

sub deliver_p {
	my ($t, @rest) = @_;
	return $t->ua->start_p(_webhook_tx($t, @rest));
}

1;
