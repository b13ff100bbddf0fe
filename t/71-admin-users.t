#!/usr/bin/perl
# GET /api/admin/users (search by email or name prefix, plan filter,
# pages) and PUT /api/admin/users/:id: plan, role, credits through the
# ledger (never below zero), bans that end every session at once,
# verification; one audit row per change with the fields before and
# after; no admin may demote or ban themselves; bad input changes nothing.
use strict;
use warnings;
use utf8;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is @USER_KEYS $UUID);
use Mojo::JSON qw(decode_json);
use Mojo::Util qw(encode url_escape);

my $t = Miky::Test->new;
my $dbh = $t->dbh;
my $admin = $t->admin(first_name => 'Ada', last_name => 'Admin');
my $A = $t->auth($admin);

sub req { $t->json_req(@_) }
sub get_users {
	my ($query) = @_;
	my $tx = req(GET => "/api/admin/users$query", undef, $A);
	is($tx->res->code, 200, "GET users$query: 200") or diag $tx->res->body;
	return $tx->res->json // {};
}
sub emails { [ map { $_->{email} } @{ $_[0]{users} // [] } ] }
sub audit_rows {
	my ($target) = @_;
	return $dbh->selectall_arrayref(q{SELECT admin_id, action, target_type, target_id,
		before::text, after::text, host(ip) AS ip FROM admin_audit WHERE target_id = ? ORDER BY id},
		{ Slice => {} }, $target);
}
sub ledger {
	my ($id) = @_;
	return $dbh->selectall_arrayref(q{SELECT delta, balance_after, reason, ref
		FROM credit_ledger WHERE user_id = ? ORDER BY id}, { Slice => {} }, $id);
}
sub credits { scalar $dbh->selectrow_array('SELECT credits FROM users WHERE id = ?', undef, $_[0]) }

# --- the list ----------------------------------------------------------------------

my %u;
$u{ann}   = $t->user(email => 'ann.smith@example.com', first_name => 'Ann', last_name => 'Smith');
$u{anna}  = $t->user(email => 'anna@example.org', first_name => 'Anna', last_name => 'Kowalska');
$u{bob}   = $t->user(email => 'bob@example.com', first_name => 'Bob', last_name => 'Annandale');
$u{zoe}   = $t->user(email => 'zoe_x@example.com', first_name => 'Zoë', last_name => 'Ängström');
$u{pct}   = $t->user(email => 'percent@example.com', first_name => 'Per', last_name => 'Cent');
$t->signup(email => 'pending@example.com', first_name => 'Pen', last_name => 'Ding');
$dbh->do(q{UPDATE users SET plan = 'plus' WHERE id IN (?, ?)}, undef, $u{anna}{id}, $u{bob}{id});

my $all = get_users('');
my $n = $dbh->selectrow_array('SELECT count(*) FROM users');
is(scalar @{ $all->{users} }, $n, "every account listed, pending ones too ($n)");
is($all->{next_cursor}, undef, 'one page: next_cursor null');
is_deeply([ sort keys %{ $all->{users}[0] } ], [ sort @USER_KEYS, 'banned' ],
	'a user as admins see it: the user object and banned');
is_deeply(emails($all), $dbh->selectcol_arrayref(
	'SELECT email FROM users ORDER BY created_at DESC, id DESC'), 'newest first');
ok(!grep({ exists $_->{password_hash} } @{ $all->{users} }), 'no password hash');

my %search = (
	'ann'           => [qw(ann.smith@example.com anna@example.org bob@example.com)],
	'ANN'           => [qw(ann.smith@example.com anna@example.org bob@example.com)],
	'ann.'          => [qw(ann.smith@example.com)],
	'anna@'         => [qw(anna@example.org)],
	'ann smi'       => [qw(ann.smith@example.com)],
	'kowal'         => [qw(anna@example.org)],
	'zoë'           => [qw(zoe_x@example.com)],
	'ZOË ÄNG'       => [qw(zoe_x@example.com)],
	'zoe_'          => [qw(zoe_x@example.com)],
	'zoe%'          => [],
	'%'             => [],
	'_'             => [],
	'smith'         => [qw(ann.smith@example.com)],
	'example'       => [],
	'pen'           => [qw(pending@example.com)],
	'nobody-here'   => [],
);
for my $q (sort keys %search) {
	my $got = get_users('?q=' . url_escape(encode('UTF-8', $q)));
	is_deeply([ sort @{ emails($got) } ], [ sort @{ $search{$q} } ], "q=$q: a prefix of the email or a name");
}
is_deeply([ sort @{ emails(get_users('?plan=plus')) } ], [ sort qw(anna@example.org bob@example.com) ],
	'plan=plus');
is_deeply(emails(get_users('?plan=plus&q=bob')), ['bob@example.com'], 'plan and q together');
is_deeply(emails(get_users('?plan=business')), [], 'plan=business: none');

# Pages of 2 walk the whole list once, in order.
my (@walk, $cursor, $pages);
do {
	my $page = get_users('?limit=2' . (defined $cursor ? '&cursor=' . url_escape($cursor) : ''));
	push @walk, @{ emails($page) };
	$cursor = $page->{next_cursor};
	$pages++;
} while (defined $cursor && $pages < 20);
is_deeply(\@walk, emails($all), "pages of 2 give the same list ($pages pages)");

for my $bad (['?plan=gold', 'plan'], ['?limit=0', 'limit'], ['?limit=101', 'limit'],
	['?cursor=@@', 'cursor'], ['?cursor=' . url_escape('MTIz'), 'cursor'],
	['?q=' . ('a' x 255), 'q'])
{
	my ($query, $field) = @$bad;
	error_is(req(GET => "/api/admin/users$query", undef, $A), 400, 'invalid_input', $field,
		"GET users" . substr($query, 0, 30) . ": 400 naming $field");
}

# --- PUT: bad input changes nothing ------------------------------------------------

my $v = $t->user(email => 'victim@example.com', first_name => 'Vic');
my $vid = $v->{id};
my $snap = sub {
	join '|', map { $_ // 'NULL' } $dbh->selectrow_array(q{SELECT plan, role, credits,
		banned_at, email_verified, tokens_valid_after FROM users WHERE id = ?}, undef, $vid),
		$dbh->selectrow_array('SELECT count(*) FROM admin_audit'),
		$dbh->selectrow_array('SELECT count(*) FROM credit_ledger');
};
my $before = $snap->();
my @bad = (
	[ { credits => 5 }, 'credits' ],
	[ { plan => 'gold' }, 'plan' ],
	[ { plan => undef }, 'plan' ],
	[ { role => 'root' }, 'role' ],
	[ { credits_delta => 1.5 }, 'credits_delta' ],
	[ { credits_delta => '5' }, 'credits_delta' ],
	[ { credits_delta => 2000000000 }, 'credits_delta' ],
	[ { credits_delta => -2000000000 }, 'credits_delta' ],
	[ { banned => 'yes' }, 'banned' ],
	[ { banned => 1 }, 'banned' ],
	[ { email_verified => 'true' }, 'email_verified' ],
	[ { email => 'x@example.com' }, 'email' ],
	[ { plan => 'plus', credits_delta => -101 }, 'credits_delta' ],
);
for my $c (@bad) {
	my ($body, $field) = @$c;
	error_is(req(PUT => "/api/admin/users/$vid", $body, $A), 400, 'invalid_input', $field,
		'PUT ' . Mojo::JSON::encode_json($body) . ": 400 naming $field");
}
error_is(req(PUT => "/api/admin/users/$vid", '{"plan":', { %$A, 'Content-Type' => 'application/json' }),
	400, 'invalid_json', undef, 'broken JSON: 400 invalid_json');
error_is(req(PUT => "/api/admin/users/$vid", 'plan=plus', { %$A, 'Content-Type' => 'text/plain' }),
	415, 'unsupported_media_type', undef, 'not JSON: 415');
error_is(req(PUT => '/api/admin/users/8b0f7a4e-52a4-4f5e-9f0a-000000000000', { plan => 'plus' }, $A),
	404, 'not_found', undef, 'unknown user: 404');
error_is(req(PUT => '/api/admin/users/not-a-uuid', { plan => 'plus' }, $A),
	404, 'not_found', undef, 'malformed id: 404');
is($snap->(), $before, 'none of them changed the user, the ledger or the audit');

# The balance stays where it is when a delta would take it below zero.
my $tx = req(PUT => "/api/admin/users/$vid", { credits_delta => -101 }, $A);
like($tx->res->json('/error/message') // '', qr/100 credits/, 'the message gives the balance');
is(credits($vid), 100, 'credits unchanged (never clamped to zero)');

# --- PUT: each change, its ledger and audit rows ------------------------------------

$tx = req(PUT => "/api/admin/users/$vid", {}, $A);
is($tx->res->code, 200, 'an empty change: 200');
is($tx->res->json('/user/id'), $vid, 'with the user');
is(scalar @{ audit_rows($vid) }, 0, 'and no audit row');

$tx = req(PUT => "/api/admin/users/$vid", { plan => 'business' }, $A);
is($tx->res->code, 200, 'plan business: 200') or diag $tx->res->body;
is($tx->res->json('/user/plan'), 'business', 'the answer has the new plan');
is($tx->res->json('/user/banned'), Mojo::JSON::false, 'banned false');
is($tx->res->json('/user/subscription_status'), undef, 'Stripe untouched: no subscription');
my $rows = audit_rows($vid);
is(scalar @$rows, 1, 'one audit row');
is($rows->[0]{admin_id}, $admin->{id}, 'by the admin');
is($rows->[0]{action}, 'user.update', 'action user.update');
is($rows->[0]{target_type}, 'user', 'target type user');
is_deeply(decode_json($rows->[0]{before}), { plan => 'free' }, 'before: the old plan only');
is_deeply(decode_json($rows->[0]{after}), { plan => 'business' }, 'after: the new plan');
is($rows->[0]{ip}, '127.0.0.1', 'the address it came from');

$tx = req(PUT => "/api/admin/users/$vid", { plan => 'business' }, $A);
is(scalar @{ audit_rows($vid) }, 1, 'the same plan again: no new audit row');

$tx = req(PUT => "/api/admin/users/$vid", { credits_delta => 250 }, $A);
is($tx->res->json('/user/credits'), 350, 'credits_delta +250: 350');
$tx = req(PUT => "/api/admin/users/$vid", { credits_delta => -350 }, $A);
is($tx->res->json('/user/credits'), 0, 'credits_delta -350: exactly zero is allowed');
is_deeply([ map { [ @$_{qw(delta balance_after reason)} ] } @{ ledger($vid) } ],
	[ [100, 100, 'signup'], [250, 350, 'admin'], [-350, 0, 'admin'] ],
	'the ledger has both changes, reason admin');
is(ledger($vid)->[1]{ref}, "admin:$admin->{id}", 'the ledger ref names the admin');
is($dbh->selectrow_array('SELECT sum(delta) FROM credit_ledger WHERE user_id = ?', undef, $vid),
	credits($vid), 'the ledger sums to the balance');
$rows = audit_rows($vid);
is_deeply(decode_json($rows->[-1]{after}), { credits => 0, credits_delta => -350 }, 'audit after: credits and delta');
is_deeply(decode_json($rows->[-1]{before}), { credits => 350 }, 'audit before: the old balance');
error_is(req(PUT => "/api/admin/users/$vid", { credits_delta => -1 }, $A), 400, 'invalid_input',
	'credits_delta', 'at zero, -1: 400');
$tx = req(PUT => "/api/admin/users/$vid", { credits_delta => 0 }, $A);
is($tx->res->code, 200, 'credits_delta 0: 200');
is(scalar @{ ledger($vid) }, 3, 'and no ledger row');

# Several fields at once: one audit row with all of them.
$tx = req(PUT => "/api/admin/users/$vid", { plan => 'plus', role => 'admin', credits_delta => 40 }, $A);
is($tx->res->code, 200, 'plan, role and credits at once');
$rows = audit_rows($vid);
is_deeply(decode_json($rows->[-1]{after}), { plan => 'plus', role => 'admin', credits => 40, credits_delta => 40 },
	'one audit row with every field changed');
is(req(GET => '/api/admin/stats', undef, $t->auth($v))->res->code, 200, 'the new admin gets in');
req(PUT => "/api/admin/users/$vid", { role => 'user' }, $A);
is(req(GET => '/api/admin/stats', undef, $t->auth($v))->res->code, 403, 'demoted again: 403');

# A ban ends every session at once: access tokens, refresh tokens, new sign-ins.
my $second = req(POST => '/api/auth/signin', { email => $v->{email}, password => $v->{password} })->res->json;
is(req(GET => '/api/user/profile', undef, $t->auth($v))->res->code, 200, 'the user is signed in');
$tx = req(PUT => "/api/admin/users/$vid", { banned => \1 }, $A);
is($tx->res->json('/user/banned'), Mojo::JSON::true, 'banned: true');
for my $s ($v, $second) {
	error_is(req(GET => '/api/user/profile', undef, { Authorization => "Bearer $s->{access_token}" }),
		401, 'unauthorized', undef, 'an access token of the banned user: 401 at once');
	is(req(POST => '/api/auth/refresh-token', { refresh_token => $s->{refresh_token} })->res->code, 401,
		'its refresh token: 401');
}
is($dbh->selectrow_array(q{SELECT count(*) FROM refresh_tokens WHERE user_id = ? AND revoked_at IS NULL},
	undef, $vid), 0, 'every refresh token revoked');
error_is(req(POST => '/api/auth/signin', { email => $v->{email}, password => $v->{password} }),
	403, 'forbidden', undef, 'signing in: 403 suspended');
ok($dbh->selectrow_array('SELECT banned_at IS NOT NULL FROM users WHERE id = ?', undef, $vid), 'banned_at set');
ok(scalar(grep { $_->{banned} } @{ get_users('?q=victim')->{users} }), 'the list shows banned');
is_deeply(decode_json(audit_rows($vid)->[-1]{after}), { banned => Mojo::JSON::true }, 'audited');
my $at = $dbh->selectrow_array('SELECT banned_at FROM users WHERE id = ?', undef, $vid);
req(PUT => "/api/admin/users/$vid", { banned => \1 }, $A);
is($dbh->selectrow_array('SELECT banned_at FROM users WHERE id = ?', undef, $vid), $at,
	'banned again: the first date stays');

$tx = req(PUT => "/api/admin/users/$vid", { banned => \0 }, $A);
is($tx->res->json('/user/banned'), Mojo::JSON::false, 'unbanned');
my $back = req(POST => '/api/auth/signin', { email => $v->{email}, password => $v->{password} });
is($back->res->code, 200, 'and can sign in again');

# Verification: taken away, the account's tokens stop working.
$tx = req(PUT => "/api/admin/users/$vid", { email_verified => \0 }, $A);
is($tx->res->json('/user/email_verified'), Mojo::JSON::false, 'email_verified false');
is(req(GET => '/api/user/profile', undef, { Authorization => 'Bearer ' . $back->res->json('/access_token') })
	->res->code, 401, 'its session no longer works');
$tx = req(PUT => "/api/admin/users/$vid", { email_verified => \1 }, $A);
is($tx->res->json('/user/email_verified'), Mojo::JSON::true, 'verified again');
ok($dbh->selectrow_array('SELECT email_verified_at IS NOT NULL FROM users WHERE id = ?', undef, $vid),
	'email_verified_at kept');

# A pending sign-up can be verified by an admin.
my ($pid) = $dbh->selectrow_array(q{SELECT id FROM users WHERE email = 'pending@example.com'});
$tx = req(PUT => "/api/admin/users/$pid", { email_verified => \1 }, $A);
is($tx->res->json('/user/email_verified'), Mojo::JSON::true, 'a pending account verified by an admin');

# --- no admin demotes or bans themselves ----------------------------------------------

my $me = $admin->{id};
my $mine = $snap->();
error_is(req(PUT => "/api/admin/users/$me", { role => 'user' }, $A), 400, 'invalid_input', 'role',
	'demoting yourself: 400 naming role');
error_is(req(PUT => "/api/admin/users/$me", { banned => \1 }, $A), 400, 'invalid_input', 'banned',
	'banning yourself: 400 naming banned');
error_is(req(PUT => "/api/admin/users/$me", { plan => 'plus', role => 'user' }, $A), 400, 'invalid_input', 'role',
	'with another change: still 400');
error_is(req(PUT => "/api/admin/users/$me", { email_verified => \0 }, $A), 400, 'invalid_input', 'email_verified',
	'unverifying yourself (it would end your sessions too): 400');
is($dbh->selectrow_array('SELECT role || plan FROM users WHERE id = ?', undef, $me), 'adminfree',
	'still an admin on the free plan');
is($dbh->selectrow_array('SELECT banned_at FROM users WHERE id = ?', undef, $me), undef, 'not banned');
is(scalar @{ audit_rows($me) }, 1, 'no audit row but the promotion');
is(req(GET => '/api/admin/stats', undef, $A)->res->code, 200, 'and still gets in');
$tx = req(PUT => "/api/admin/users/$me", { role => 'admin', banned => \0, credits_delta => 5 }, $A);
is($tx->res->code, 200, 'keeping your own role, unbanned, credits for yourself: 200');
is($tx->res->json('/user/credits'), 105, 'credits given');

# Another admin can demote this one.
my $boss = $t->admin(first_name => 'Boss');
$tx = req(PUT => "/api/admin/users/$me", { role => 'user' }, $t->auth($boss));
is($tx->res->json('/user/role'), 'user', 'another admin can demote them');
error_is(req(GET => '/api/admin/users', undef, $A), 403, 'forbidden', undef, 'who is then out');

# The events are counted.
my $metrics = req(GET => '/api/metrics')->res->body;
like($metrics, qr/^miky_admin_actions_total\{action="user\.update",outcome="ok"\} \d+$/m,
	'admin actions counted');
like($metrics, qr/^miky_grants_total\{reason="admin",outcome="granted"\} 3$/m, 'admin grants counted');
like($metrics, qr/^miky_grants_total\{reason="admin",outcome="taken"\} 1$/m, 'admin takes counted');
my $signups = $dbh->selectrow_array(q{SELECT count(*) FROM credit_ledger WHERE reason = 'signup'});
like($metrics, qr/^miky_grants_total\{reason="signup",outcome="granted"\} $signups$/m,
	"sign-up grants counted ($signups)");
like($t->log, qr/"msg":"event",.*"event":"admin","action":"user\.update","outcome":"ok","target":"$vid"/,
	'and logged as events with their target');

$t->done;
