#!/usr/bin/perl
# GET /api/admin/transactions (filters by type and status, pages, with
# the owner and where to pay a cash-out) and PUT /api/admin/transactions/:id:
# completing a pending cash-out adds it to what was paid out, failing one
# makes the money available again; anything but a pending cash-out is
# 409 and changes nothing; each end has its audit row and event.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is $UUID);
use Mojo::JSON qw(decode_json);
use Mojo::Promise;
use Mojo::Util qw(url_escape);

my $t = Miky::Test->new;
my $dbh = $t->dbh;
my $admin = $t->admin(first_name => 'Ada');
my $A = $t->auth($admin);
sub req { $t->json_req(@_) }
sub one { scalar $dbh->selectrow_array(@_) }

my $u = $t->user(first_name => 'Uma');
my $w = $t->user(first_name => 'Wes');
$dbh->do(q{UPDATE users SET cash_earned = 50.00 WHERE id IN (?, ?)}, undef, $u->{id}, $w->{id});

# Transactions as the payments and referrals code writes them.
my $ins = $dbh->prepare(q{INSERT INTO transactions (user_id, type, amount, credits, status,
	cashout_method, cashout_destination, created_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, now() - ? * interval '1 minute') RETURNING id});
my %tx;
my $age = 100;
for my $row (
	[ co_u1 => $u, 'cashout', 20.00, 0, 'pending', 'paypal', 'uma@example.com' ],
	[ co_u2 => $u, 'cashout', 15.00, 0, 'pending', 'bank', 'DE89370400440532013000' ],
	[ co_w  => $w, 'cashout', 10.00, 0, 'pending', 'paypal', 'wes@example.com' ],
	[ pack  => $u, 'credits', 9.99, 1000, 'completed', undef, undef ],
	[ sub   => $w, 'subscription', 29.99, 10000, 'completed', undef, undef ],
	[ refd  => $w, 'credits', 4.99, 500, 'refunded', undef, undef ],
	[ ref   => $u, 'referral', 2.00, 0, 'completed', undef, undef ],
	[ co_done => $w, 'cashout', 5.00, 0, 'completed', 'paypal', 'wes@example.com' ],
) {
	my ($name, $who, @v) = @$row;
	$ins->execute($who->{id}, @v, $age--);
	($tx{$name}) = $ins->fetchrow_array;
}
$ins->finish;
my $id_name = { reverse %tx };

sub available {
	my ($id) = @_;
	return one(q{SELECT ((u.cash_earned - u.cash_paid_out - coalesce((SELECT sum(amount)
		FROM transactions WHERE user_id = u.id AND type = 'cashout' AND status = 'pending'), 0))
		* 100)::bigint FROM users u WHERE id = ?}, undef, $id);
}
sub list {
	my ($q) = @_;
	my $tx = req(GET => "/api/admin/transactions$q", undef, $A);
	is($tx->res->code, 200, "GET transactions$q: 200") or diag $tx->res->body;
	return $tx->res->json // {};
}
sub names { [ map { $id_name->{ $_->{id} } // $_->{id} } @{ $_[0]{transactions} } ] }

# --- the list -------------------------------------------------------------------------

my $all = list('');
is_deeply(names($all), [qw(co_done ref refd sub pack co_w co_u2 co_u1)], 'newest first, every user');
my ($co) = grep { $_->{id} eq $tx{co_u2} } @{ $all->{transactions} };
is_deeply($co, {
	id => $tx{co_u2}, type => 'cashout', amount_cents => 1500, credits => 0, status => 'pending',
	created_at => $co->{created_at}, user_id => $u->{id}, user_email => $u->{email},
	method => 'bank', destination => 'DE89370400440532013000',
}, 'a cash-out: the transaction, its owner, and where to pay it');
my ($pack) = grep { $_->{id} eq $tx{pack} } @{ $all->{transactions} };
is($pack->{method}, undef, 'a purchase has no method');
is($pack->{amount_cents}, 999, 'amount in cents');

is_deeply(names(list('?type=cashout&status=pending')), [qw(co_w co_u2 co_u1)], 'pending cash-outs');
is_deeply(names(list('?type=cashout')), [qw(co_done co_w co_u2 co_u1)], 'type=cashout');
is_deeply(names(list('?status=completed')), [qw(co_done ref sub pack)], 'status=completed');
is_deeply(names(list('?status=refunded&type=credits')), [qw(refd)], 'both');
is_deeply(names(list('?type=subscription&status=failed')), [], 'none');

my (@walk, $cursor, $n);
do {
	my $page = list('?limit=3' . (defined $cursor ? '&cursor=' . url_escape($cursor) : ''));
	push @walk, @{ names($page) };
	$cursor = $page->{next_cursor};
} while (defined $cursor && ++$n < 10);
is_deeply(\@walk, names($all), 'pages of 3: the same list');

for my $bad (['?type=gift', 'type'], ['?status=done', 'status'], ['?limit=500', 'limit'],
	['?cursor=abc', 'cursor'])
{
	error_is(req(GET => "/api/admin/transactions$bad->[0]", undef, $A), 400, 'invalid_input', $bad->[1],
		"GET transactions$bad->[0]: 400");
}

# --- ending a cash-out -----------------------------------------------------------------

is(available($u->{id}), 1500, 'Uma: 50.00 earned, 35.00 pending, 15.00 available');

my $snap = sub {
	join '|', @{ $dbh->selectcol_arrayref(q{SELECT status || cash_paid_out FROM transactions t
		JOIN users u ON u.id = t.user_id ORDER BY t.id}) },
		one('SELECT count(*) FROM admin_audit');
};
my $before = $snap->();
for my $c (
	[ $tx{pack}, { status => 'completed' }, 409, 'conflict', 'a purchase' ],
	[ $tx{ref}, { status => 'failed' }, 409, 'conflict', 'a referral reward' ],
	[ $tx{co_done}, { status => 'failed' }, 409, 'conflict', 'a completed cash-out' ],
	[ $tx{co_u1}, { status => 'pending' }, 400, 'invalid_input', 'status pending' ],
	[ $tx{co_u1}, { status => 'refunded' }, 400, 'invalid_input', 'status refunded' ],
	[ $tx{co_u1}, {}, 400, 'invalid_input', 'no status' ],
	[ $tx{co_u1}, { status => 'completed', amount_cents => 1 }, 400, 'invalid_input', 'another field' ],
	[ '0b6e7d38-5b9a-4a2f-8d7e-000000000000', { status => 'completed' }, 404, 'not_found', 'no such id' ],
	[ 'nope', { status => 'completed' }, 404, 'not_found', 'a malformed id' ],
) {
	my ($id, $body, $status, $code, $what) = @$c;
	my $tx = req(PUT => "/api/admin/transactions/$id", $body, $A);
	is($tx->res->code, $status, "$what: $status") or diag $tx->res->body;
	is($tx->res->json('/error/code'), $code, "$what: $code");
}
is($snap->(), $before, 'none of them changed a transaction, a balance or the audit');

my $tx = req(PUT => "/api/admin/transactions/$tx{co_u1}", { status => 'completed' }, $A);
is($tx->res->code, 200, 'complete a pending cash-out: 200') or diag $tx->res->body;
is($tx->res->json('/transaction/status'), 'completed', 'status completed');
is($tx->res->json('/transaction/user_email'), $u->{email}, 'with its owner');
is(one('SELECT cash_paid_out FROM users WHERE id = ?', undef, $u->{id}), '20.00', 'paid out += 20.00');
is(available($u->{id}), 1500, 'available unchanged: the money left pending for paid out');
my $audit = $dbh->selectrow_hashref(q{SELECT admin_id, action, target_type, before::text AS b,
	after::text AS a FROM admin_audit WHERE target_id = ?}, undef, $tx{co_u1});
is($audit->{action}, 'cashout.complete', 'audited as cashout.complete');
is($audit->{admin_id}, $admin->{id}, 'by the admin');
is($audit->{target_type}, 'transaction', 'of a transaction');
is_deeply([ decode_json($audit->{b}), decode_json($audit->{a}) ],
	[ { status => 'pending' }, { status => 'completed' } ], 'before pending, after completed');
is(req(GET => '/api/user/profile', undef, $t->auth($u))->res->json('/user/cash_paid_out_cents'), 2000,
	'the user sees 2000 cents paid out');

$tx = req(PUT => "/api/admin/transactions/$tx{co_u1}", { status => 'failed' }, $A);
error_is($tx, 409, 'conflict', undef, 'ending it again: 409');
is(one('SELECT cash_paid_out FROM users WHERE id = ?', undef, $u->{id}), '20.00', 'paid out once');

$tx = req(PUT => "/api/admin/transactions/$tx{co_u2}", { status => 'failed' }, $A);
is($tx->res->json('/transaction/status'), 'failed', 'fail a pending cash-out: status failed');
is(one('SELECT cash_paid_out FROM users WHERE id = ?', undef, $u->{id}), '20.00', 'nothing paid out');
is(available($u->{id}), 3000, 'its 15.00 is available again');
is(one(q{SELECT action FROM admin_audit WHERE target_id = ?}, undef, $tx{co_u2}), 'cashout.fail',
	'audited as cashout.fail');

# Two admins ending the same cash-out at once: one wins.
my $admin2 = $t->admin(first_name => 'Abe');
my @codes;
Mojo::Promise->all(map {
	my ($who, $status) = @$_;
	$t->ua->put_p($t->url("/api/admin/transactions/$tx{co_w}") => $t->auth($who) => json => { status => $status })
} [ $admin, 'completed' ], [ $admin2, 'failed' ])->then(sub { @codes = sort map { $_->[0]->res->code } @_ })->wait;
is_deeply(\@codes, [200, 409], 'two admins at once: one 200, one 409');
my $end = one('SELECT status FROM transactions WHERE id = ?', undef, $tx{co_w});
is(one('SELECT cash_paid_out FROM users WHERE id = ?', undef, $w->{id}),
	$end eq 'completed' ? '10.00' : '0.00', "paid out matches the winner ($end)");
is(one('SELECT count(*) FROM admin_audit WHERE target_id = ?', undef, $tx{co_w}), 1, 'one audit row');

# A cash-out of an account deleted since can still be failed or completed.
my $gone = $t->user(first_name => 'Gus');
$dbh->do(q{UPDATE users SET cash_earned = 30 WHERE id = ?}, undef, $gone->{id});
$ins = $dbh->prepare(q{INSERT INTO transactions (user_id, type, amount, status, cashout_method,
	cashout_destination) VALUES (?, 'cashout', 30, 'pending', 'paypal', 'gus@example.com') RETURNING id});
$ins->execute($gone->{id});
my ($orphan) = $ins->fetchrow_array;
$ins->finish;
is(req(DELETE => '/api/user', { password => $gone->{password} }, $t->auth($gone))->res->code, 204, 'account deleted');
$tx = req(PUT => "/api/admin/transactions/$orphan", { status => 'completed' }, $A);
is($tx->res->code, 200, "a deleted account's cash-out completed");
is($tx->res->json('/transaction/user_id'), undef, 'with no owner left');

my $metrics = req(GET => '/api/metrics')->res->body;
like($metrics, qr/^miky_cashouts_total\{status="completed",outcome="ok"\} [23]$/m, 'completed cash-outs counted')
	or diag join "\n", grep { /cashout/ } split /\n/, $metrics;
like($metrics, qr/^miky_cashouts_total\{status="failed",outcome="ok"\} \d$/m, 'failed ones too');
like($metrics, qr/^miky_admin_actions_total\{action="cashout\.complete",outcome="ok"\} \d$/m, 'admin actions');

$t->done;
