#!/usr/bin/perl
# Who may use /api/admin: every route answers 401 signed out (no token, a
# bad token, an ended session) and 403 to a user who is not an admin,
# and neither changes anything; an admin's role is read again on every
# request, so one demoted or banned loses the API at once.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is);

my $t = Miky::Test->new;
my $dbh = $t->dbh;

my $admin = $t->admin(first_name => 'Ada');
my $user = $t->user(first_name => 'Bob');
my $victim = $t->user(first_name => 'Vic');
my ($cashout) = $dbh->selectrow_array(q{INSERT INTO transactions (user_id, type,
	amount, status, cashout_method, cashout_destination)
	VALUES (?, 'cashout', 12.50, 'pending', 'paypal', 'vic@example.com') RETURNING id},
	undef, $victim->{id});
$dbh->do(q{UPDATE users SET cash_earned = 20 WHERE id = ?}, undef, $victim->{id});

# Every admin route with a body that would change something.
my @routes = (
	[ GET => '/api/admin/stats' ],
	[ GET => '/api/admin/stats?days=7' ],
	[ GET => '/api/admin/users' ],
	[ PUT => "/api/admin/users/$victim->{id}",
		{ plan => 'business', role => 'admin', credits_delta => 500, banned => \1,
		  email_verified => \0 } ],
	[ GET => '/api/admin/conversations' ],
	[ GET => '/api/admin/transactions' ],
	[ PUT => "/api/admin/transactions/$cashout", { status => 'completed' } ],
	[ GET => '/api/admin/settings' ],
	[ PUT => '/api/admin/settings', { signup_credits => 7, chat_turns_per_minute => 1 } ],
);

# Everything an admin route could change, as one comparable string.
sub state {
	my @q = (
		q{SELECT id, plan, role, credits, banned_at, email_verified, cash_paid_out,
		  tokens_valid_after FROM users ORDER BY id},
		q{SELECT id, status FROM transactions ORDER BY id},
		q{SELECT key, value::text FROM admin_settings ORDER BY key},
		q{SELECT count(*) FROM admin_audit},
		q{SELECT count(*) FROM credit_ledger},
		q{SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NOT NULL},
	);
	return join "\n", map { join ';', map { join ',', map { $_ // 'NULL' } @$_ }
		@{ $dbh->selectall_arrayref($_) } } @q;
}

my $before = state();

for my $r (@routes) {
	my ($m, $path, $body) = @$r;
	my $what = "$m $path";
	my $tx = $t->json_req($m => $path, $body);
	error_is($tx, 401, 'unauthorized', undef, "$what signed out: 401");
	$tx = $t->json_req($m => $path, $body, { Authorization => 'Bearer not.a.token' });
	error_is($tx, 401, 'unauthorized', undef, "$what with a bad token: 401");
	$tx = $t->json_req($m => $path, $body, $t->auth($user));
	error_is($tx, 403, 'forbidden', undef, "$what as a user: 403");
	is(($tx->res->json // {})->{users}, undef, "$what: no data in the 403");
}
is(state(), $before, 'no route changed anything for the signed out or a user');

# A body the admin route would refuse is still refused 403 first: the
# checks run in the route table's order (auth before the body).
my $tx = $t->json_req(PUT => '/api/admin/settings', { nope => 1 }, $t->auth($user));
error_is($tx, 403, 'forbidden', undef, 'a user with a bad body: 403, not 400');
$tx = $t->json_req(PUT => "/api/admin/users/$victim->{id}", 'not json',
	{ %{ $t->auth($user) }, 'Content-Type' => 'application/json' });
error_is($tx, 403, 'forbidden', undef, 'a user with invalid JSON: 403');
is(state(), $before, 'still nothing changed');

# The admin gets through; the same session ends when the role goes.
for my $r (grep { $_->[0] eq 'GET' } @routes) {
	my ($m, $path) = @$r;
	is($t->json_req($m => $path, undef, $t->auth($admin))->res->code, 200, "$m $path as an admin: 200");
}
my $other = $t->admin(first_name => 'Oli');
$tx = $t->json_req(PUT => "/api/admin/users/$other->{id}", { role => 'user' }, $t->auth($admin));
is($tx->res->code, 200, 'an admin demotes another admin') or diag $tx->res->body;
error_is($t->json_req(GET => '/api/admin/stats', undef, $t->auth($other)), 403, 'forbidden', undef,
	'the demoted admin gets 403 at once, same token');
is($t->json_req(GET => '/api/user/profile', undef, $t->auth($other))->res->code, 200,
	'and is still a signed-in user');

$tx = $t->json_req(PUT => "/api/admin/users/$other->{id}", { role => 'admin' }, $t->auth($admin));
is($t->json_req(GET => '/api/admin/stats', undef, $t->auth($other))->res->code, 200,
	'promoted again: 200 with the same token');
$tx = $t->json_req(PUT => "/api/admin/users/$other->{id}", { banned => \1 }, $t->auth($admin));
is($tx->res->code, 200, 'an admin bans another admin');
error_is($t->json_req(GET => '/api/admin/stats', undef, $t->auth($other)), 401, 'unauthorized', undef,
	'the banned admin: 401');

# Unknown admin paths and methods.
error_is($t->json_req(GET => '/api/admin/nope', undef, $t->auth($admin)), 404, 'not_found', undef,
	'unknown admin path: 404');
$tx = $t->json_req(DELETE => '/api/admin/settings', undef, $t->auth($admin));
error_is($tx, 405, 'method_not_allowed', undef, 'DELETE /api/admin/settings: 405');
like($tx->res->headers->header('Allow') // '', qr/GET/, 'Allow names GET');

$t->done;
