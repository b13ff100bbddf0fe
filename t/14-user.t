#!/usr/bin/perl
# /api/user: the profile and its updates (no mass assignment), the credit
# ledger and its paging, the public referral-code check, the data export
# and account deletion.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is @USER_KEYS $TS);
use MIME::Base64 qw(encode_base64);

my $t = Miky::Test->new(workers => 2, threads => 4);
my $dbh = $t->dbh;



sub count { $dbh->selectrow_array(@_) }
sub req {
	my ($method, $path, $u, $body, $h) = @_;
	return $t->json_req($method => $path, $body, { %{ $u ? $t->auth($u) : {} }, %{ $h // {} } });
}
sub b64url {
	(my $s = encode_base64(shift, '')) =~ tr{+/}{-_};
	$s =~ s/=+$//;
	return $s;
}
sub row { $dbh->selectrow_hashref(q{SELECT email, first_name, last_name, language, credits, plan,
	role, email_verified, referral_code, password_hash, banned_at, tokens_valid_after,
	cash_earned, subscription_status, updated_at FROM users WHERE id = ?}, undef, $_[0]) }

# --- every endpoint needs a session but the referral check -------------------------------

for my $e ([ GET => '/api/user/profile' ], [ PUT => '/api/user/profile', {} ],
	[ GET => '/api/user/credits' ], [ GET => '/api/user/export' ],
	[ POST => '/api/user/change-password', { current_password => 'x', new_password => 'y' x 8 } ],
	[ DELETE => '/api/user', { password => 'x' } ])
{
	error_is($t->json_req($e->[0] => $e->[1], $e->[2]), 401, 'unauthorized', undef,
		"$e->[0] $e->[1] without a token: 401");
}

# --- profile ---------------------------------------------------------------------------

my $u = $t->user(first_name => 'Paula', last_name => 'Prim');
{
	my $tx = req(GET => '/api/user/profile', $u);
	is($tx->res->code, 200, 'GET /profile: 200');
	is_deeply([ keys %{ $tx->res->json } ], [ 'user' ], '{user}');
	my $p = $tx->res->json('/user');
	is_deeply([ sort keys %$p ], \@USER_KEYS, 'the user object has exactly the keys of api.md');
	is($p->{id}, $u->{id}, 'id');
	is($p->{first_name}, 'Paula', 'first_name');
	like($p->{$_}, $TS, "$_: RFC 3339 with milliseconds and Z") for qw(created_at updated_at);
	$dbh->do(q{UPDATE users SET stripe_customer_id = 'cus_SECRET_4242',
		stripe_subscription_id = 'sub_SECRET_4242' WHERE id = ?}, undef, $u->{id});
	$tx = req(GET => '/api/user/profile', $u);
	unlike($tx->res->body, qr/SECRET_4242|stripe|password|argon2/i, 'no Stripe ids, no password hash');
}

{
	my $before = row($u->{id});
	my $tx = req(PUT => '/api/user/profile', $u, { first_name => '  Zoe  ', last_name => 'Zed', language => 'pt-BR' });
	is($tx->res->code, 200, 'PUT /profile: 200');
	my $p = $tx->res->json('/user');
	is_deeply([ sort keys %$p ], \@USER_KEYS, 'answers the user object');
	is($p->{first_name}, 'Zoe', 'first_name updated and trimmed');
	is($p->{last_name}, 'Zed', 'last_name updated');
	is($p->{language}, 'pt-BR', 'language updated');
	my $after = row($u->{id});
	is($after->{first_name}, 'Zoe', 'stored');
	is($after->{language}, 'pt-BR', 'stored');
	is($after->{credits}, $before->{credits}, 'credits untouched');
	ok(count('SELECT updated_at > ?::timestamptz FROM users WHERE id = ?', undef, $before->{updated_at}, $u->{id}),
		'updated_at moved');
	like($p->{updated_at}, $TS, 'updated_at RFC 3339');
	is(req(GET => '/api/user/profile', $u)->res->json('/user/first_name'), 'Zoe', 'GET /profile shows it');

	$tx = req(PUT => '/api/user/profile', $u, { last_name => '' });
	is($tx->res->code, 200, 'only last_name, set empty');
	is($tx->res->json('/user/last_name'), '', 'last_name empty');
	is($tx->res->json('/user/first_name'), 'Zoe', 'first_name kept');
	is($tx->res->json('/user/language'), 'pt-BR', 'language kept');

	$tx = req(PUT => '/api/user/profile', $u, {});
	is($tx->res->code, 200, 'an empty object: 200');
	is($tx->res->json('/user/first_name'), 'Zoe', 'nothing changed');
	$tx = req(PUT => '/api/user/profile', $u);
	is($tx->res->code, 200, 'no body at all: 200 (an empty object)');
}

# Mass assignment: any other field is refused, and nothing changes.
{
	my $before = row($u->{id});
	my @fields = (
		[ credits => 1000000 ], [ plan => 'business' ], [ role => 'admin' ],
		[ email => 'someone.else@example.com' ], [ email_verified => Mojo::JSON::false ],
		[ id => '00000000-0000-4000-8000-000000000000' ], [ referral_code => 'AAAAAAAA' ],
		[ password_hash => 'x' ], [ password => 'another password' ], [ banned_at => undef ],
		[ tokens_valid_after => '2000-01-01T00:00:00Z' ], [ cash_earned_cents => 100000 ],
		[ subscription_status => 'active' ], [ referrals_count => 99 ], [ created_at => '2000-01-01' ],
		[ user => { role => 'admin' } ], [ First_Name => 'Case' ],
	);
	for my $f (@fields) {
		my ($k, $v) = @$f;
		error_is(req(PUT => '/api/user/profile', $u, { $k => $v }), 400, 'invalid_input', $k,
			"PUT /profile {$k}: 400 invalid_input naming $k");
		error_is(req(PUT => '/api/user/profile', $u, { first_name => 'Hacked', $k => $v }), 400,
			'invalid_input', $k, "PUT /profile {first_name, $k}: 400 too");
	}
	is_deeply(row($u->{id}), $before, 'nothing in the users row changed');
	is(count('SELECT count(*) FROM credit_ledger WHERE user_id = ?', undef, $u->{id}), 1, 'no ledger row');

	my @bad = (
		[ 'empty first_name', { first_name => '' }, 'first_name' ],
		[ 'blank first_name', { first_name => '  ' }, 'first_name' ],
		[ 'first_name null', { first_name => undef }, 'first_name' ],
		[ 'first_name of 101 characters', { first_name => 'x' x 101 }, 'first_name' ],
		[ 'first_name a number', { first_name => 7 }, 'first_name' ],
		[ 'last_name with a newline', { last_name => "a\nb" }, 'last_name' ],
		[ 'last_name with U+0085', { last_name => "a\x{85}b" }, 'last_name' ],
		[ 'language EN', { language => 'EN' }, 'language' ],
		[ 'language en-us', { language => 'en-us' }, 'language' ],
		[ 'language e1', { language => 'e1' }, 'language' ],
		[ 'language english', { language => 'english' }, 'language' ],
	);
	for my $c (@bad) {
		error_is(req(PUT => '/api/user/profile', $u, $c->[1]), 400, 'invalid_input', $c->[2],
			"PUT /profile, $c->[0]: 400");
	}
	error_is(req(PUT => '/api/user/profile', $u, '{"first_name":', { 'Content-Type' => 'application/json' }),
		400, 'invalid_json', undef, 'PUT /profile, bad JSON: 400 invalid_json');
	error_is(req(PUT => '/api/user/profile', $u, 'first_name=x', { 'Content-Type' => 'text/plain' }),
		415, 'unsupported_media_type', undef, 'PUT /profile, text/plain: 415');
	error_is(req(PUT => '/api/user/profile', $u, '["x"]', { 'Content-Type' => 'application/json' }),
		400, 'invalid_input', undef, 'PUT /profile, an array: 400 invalid_input');
	is_deeply(row($u->{id}), $before, 'still nothing changed');
	my $tx = req(POST => '/api/user/profile', $u, {});
	error_is($tx, 405, 'method_not_allowed', undef, 'POST /profile: 405');
	like($tx->res->headers->header('Allow') // '', qr/^(?=.*GET)(?=.*PUT)/, 'Allow: GET, PUT');
}

# --- credits ---------------------------------------------------------------------------

{
	my $c = $t->user(first_name => 'Cred');
	my $tx = req(GET => '/api/user/credits', $c);
	is($tx->res->code, 200, 'GET /credits: 200');
	my $j = $tx->res->json;
	is_deeply([ sort keys %$j ], [ sort qw(credits plan ledger next_cursor) ], '{credits, plan, ledger, next_cursor}');
	is($j->{credits}, 100, 'credits 100');
	is($j->{plan}, 'free', 'plan free');
	is(scalar @{ $j->{ledger} }, 1, 'one ledger entry');
	is_deeply([ sort keys %{ $j->{ledger}[0] } ], [ sort qw(delta balance_after reason created_at) ],
		'entry: {delta, balance_after, reason, created_at}');
	is($j->{ledger}[0]{delta}, 100, 'delta 100');
	is($j->{ledger}[0]{balance_after}, 100, 'balance_after 100');
	is($j->{ledger}[0]{reason}, 'signup', 'reason signup');
	like($j->{ledger}[0]{created_at}, $TS, 'created_at RFC 3339');
	ok(exists $j->{next_cursor} && !defined $j->{next_cursor}, 'next_cursor null');

	# Five more entries, written as the app would (balance and ledger together).
	my $bal = 100;
	for my $d (10, 20, -5, 30, 45) {
		$bal += $d;
		$dbh->do('UPDATE users SET credits = ? WHERE id = ?', undef, $bal, $c->{id});
		$dbh->do(q{INSERT INTO credit_ledger (user_id, delta, balance_after, reason, ref)
			VALUES (?, ?, ?, 'admin', 'test')}, undef, $c->{id}, $d, $bal);
	}
	# Someone else's entries never show.
	my $o = $t->user(first_name => 'Other');
	my $want = $dbh->selectcol_arrayref('SELECT delta FROM credit_ledger WHERE user_id = ? ORDER BY id DESC',
		undef, $c->{id});
	is_deeply($want, [ 45, 30, -5, 20, 10, 100 ], 'six entries in the database');

	$j = req(GET => '/api/user/credits', $c)->res->json;
	is($j->{credits}, 200, 'credits 200');
	is_deeply([ map { $_->{delta} } @{ $j->{ledger} } ], $want, 'all six, newest first (default limit 20)');
	is_deeply([ map { $_->{balance_after} } @{ $j->{ledger} } ], [ 200, 155, 125, 130, 110, 100 ],
		'balances after each');
	ok(!defined $j->{next_cursor}, 'next_cursor null');

	my (@seen, $cursor, $pages);
	do {
		my $url = '/api/user/credits?limit=2' . (defined $cursor ? "&cursor=$cursor" : '');
		my $tx = req(GET => $url, $c);
		is($tx->res->code, 200, "page " . ++$pages . ": 200");
		my $p = $tx->res->json;
		is(scalar @{ $p->{ledger} }, 2, 'two entries') if $pages <= 3;
		push @seen, map { $_->{delta} } @{ $p->{ledger} };
		$cursor = $p->{next_cursor};
		like($cursor, qr/^[A-Za-z0-9_-]+$/, 'next_cursor is an opaque string') if defined $cursor;
	} while (defined $cursor && $pages < 10);
	is($pages, 3, 'three pages of 2; next_cursor null on the last');
	is_deeply(\@seen, $want, 'the pages together are the ledger, in order, once each');

	$j = req(GET => '/api/user/credits?limit=6', $c)->res->json;
	is(scalar @{ $j->{ledger} }, 6, 'limit=6: all six');
	ok(!defined $j->{next_cursor}, 'and next_cursor null (nothing more)');
	$j = req(GET => '/api/user/credits?limit=5', $c)->res->json;
	is(scalar @{ $j->{ledger} }, 5, 'limit=5: five');
	ok(defined $j->{next_cursor}, 'with a cursor');
	$j = req(GET => "/api/user/credits?limit=5&cursor=$j->{next_cursor}", $c)->res->json;
	is_deeply([ map { $_->{delta} } @{ $j->{ledger} } ], [ 100 ], 'the last page: the sign-up grant');
	ok(!defined $j->{next_cursor}, 'next_cursor null');
	$j = req(GET => '/api/user/credits?limit=1', $c)->res->json;
	is(scalar @{ $j->{ledger} }, 1, 'limit=1');
	$j = req(GET => '/api/user/credits?limit=100', $c)->res->json;
	is(scalar @{ $j->{ledger} }, 6, 'limit=100');
	is(req(GET => '/api/user/credits?cursor=', $c)->res->json('/ledger/0/delta'), 45,
		'an empty cursor is the first page');

	is_deeply([ map { $_->{delta} } @{ req(GET => '/api/user/credits', $o)->res->json('/ledger') } ], [ 100 ],
		"another user sees only their own entry");
	my $first = req(GET => '/api/user/credits?limit=2', $c)->res->json('/next_cursor');
	# Her sign-up came after all of his entries: nothing older than his
	# cursor is hers, and nothing of his shows.
	is_deeply(req(GET => "/api/user/credits?cursor=$first", $o)->res->json('/ledger'), [],
		"someone else's cursor shows nothing of the other's entries");

	for my $l ('0', '101', 'abc', '-1', '1.5', '', '1e1', ' 5', '0x10', '99999999999999999999') {
		error_is(req(GET => "/api/user/credits?limit=$l", $c), 400, 'invalid_input', 'limit',
			"limit=$l: 400 invalid_input naming limit");
	}
	for my $cur ('!!!', b64url('abc'), b64url('0'), b64url('-5'), b64url('12abc'),
		b64url('9223372036854775808'), 'A', b64url("1\0"), 'x' x 400)
	{
		error_is(req(GET => "/api/user/credits?cursor=$cur", $c), 400, 'invalid_input', 'cursor',
			'a bad cursor (' . substr($cur, 0, 16) . '): 400 invalid_input naming cursor');
	}
}

# --- verify-referral ------------------------------------------------------------------

{
	my $r = $t->user(first_name => 'Reggie');
	my $code = $r->{user}{referral_code};
	my $tx = $t->json_req(POST => '/api/user/verify-referral', { referral_code => $code });
	is($tx->res->code, 200, 'verify-referral: 200, without a session');
	is_deeply($tx->res->json, { valid => Mojo::JSON::true, referrer_first_name => 'Reggie' },
		'{valid: true, referrer_first_name} and nothing else');
	is($t->json_req(POST => '/api/user/verify-referral', { referral_code => lc $code })->res->json('/valid'),
		Mojo::JSON::true, 'lower-case input is accepted');
	is($t->json_req(POST => '/api/user/verify-referral', { referral_code => " $code " })->res->code, 200,
		'surrounding spaces are ignored');
	error_is($t->json_req(POST => '/api/user/verify-referral', { referral_code => 'ZZZZZZZZ' }), 404,
		'invalid_referral_code', 'referral_code', 'an unknown code: 404 invalid_referral_code');
	error_is($t->json_req(POST => '/api/user/verify-referral', { referral_code => substr($code, 0, 7) }), 404,
		'invalid_referral_code', 'referral_code', 'a prefix of a code: 404');
	error_is($t->json_req(POST => '/api/user/verify-referral', { referral_code => "$code%" }), 404,
		'invalid_referral_code', 'referral_code', 'a code with a LIKE wildcard: 404');
	error_is($t->json_req(POST => '/api/user/verify-referral', { referral_code => '' }), 400,
		'invalid_input', 'referral_code', 'an empty code: 400');
	error_is($t->json_req(POST => '/api/user/verify-referral', {}), 400, 'invalid_input', 'referral_code',
		'no code: 400');
	error_is($t->json_req(POST => '/api/user/verify-referral', { referral_code => 'x' x 33 }), 400,
		'invalid_input', 'referral_code', 'a 33-character code: 400');
	error_is($t->json_req(POST => '/api/user/verify-referral', { referral_code => $code, email => 'a@b.co' }),
		400, 'invalid_input', 'email', 'an extra field: 400');
	$dbh->do('UPDATE users SET banned_at = now() WHERE id = ?', undef, $r->{id});
	error_is($t->json_req(POST => '/api/user/verify-referral', { referral_code => $code }), 404,
		'invalid_referral_code', 'referral_code', "a banned user's code: 404");
	$dbh->do('UPDATE users SET banned_at = NULL WHERE id = ?', undef, $r->{id});
}

# --- export ------------------------------------------------------------------------------

my $x = $t->user(first_name => 'Xena', last_name => 'Export');
my ($conv, @msg, $txn);
{
	my $tx = req(POST => '/api/conversations', $x, { persona => 'coach', title => 'Export me' });
	is($tx->res->code, 201, 'a conversation');
	$conv = $tx->res->json('/conversation/id');
	for (['user', 'How do I squat?'], ['assistant', 'Feet shoulder-width apart.']) {
		push @msg, count(q{INSERT INTO messages (conversation_id, user_id, sender, content, persona,
			credits_consumed) VALUES (?, ?, ?, ?, 'coach', ?) RETURNING id}, undef, $conv, $x->{id},
			$_->[0], $_->[1], $_->[0] eq 'assistant' ? 2 : 0);
	}
	$dbh->do('UPDATE users SET credits = credits - 2 WHERE id = ?', undef, $x->{id});
	$dbh->do(q{INSERT INTO credit_ledger (user_id, delta, balance_after, reason, ref)
		VALUES (?, -2, 98, 'chat', ?)}, undef, $x->{id}, $msg[1]);
	$txn = count(q{INSERT INTO transactions (user_id, type, amount, credits, status, pack,
		stripe_checkout_session_id, stripe_payment_intent_id)
		VALUES (?, 'credits', 4.99, 500, 'completed', 'small', 'cs_SECRET_77', 'pi_SECRET_77')
		RETURNING id}, undef, $x->{id});
	$dbh->do(q{UPDATE users SET stripe_customer_id = 'cus_SECRET_77' WHERE id = ?}, undef, $x->{id});
	# Someone Xena invited.
	is($t->json_req(POST => '/api/auth/signup', { email => 'invitee.of.x@example.com', password => 'an invitee password',
		first_name => 'Ivy', last_name => 'I', referral_code => $x->{user}{referral_code} })->res->code, 202,
		'someone signs up with her code');
	# Someone else's data, which must not appear.
	my $y = $t->user(first_name => 'Yuri');
	req(POST => '/api/conversations', $y, { persona => 'general', title => 'Not yours' });

	$tx = req(GET => '/api/user/export', $x);
	is($tx->res->code, 200, 'GET /export: 200');
	like($tx->res->headers->content_type, qr{^application/json}, 'JSON');
	like($tx->res->headers->header('Content-Disposition') // '', qr/^attachment/, 'as an attachment');
	my $e = $tx->res->json;
	ok(ref $e eq 'HASH', 'one JSON document');
	ok($e->{$_}, "has $_") for qw(profile conversations ledger transactions referrals);
	is_deeply([ sort keys %{ $e->{profile} } ], \@USER_KEYS, 'profile: the user object');
	is($e->{profile}{id}, $x->{id}, "Xena's");
	is(scalar @{ $e->{conversations} }, 1, 'one conversation');
	my $c0 = $e->{conversations}[0];
	is($c0->{conversation}{id}, $conv, 'the conversation');
	is($c0->{conversation}{title}, 'Export me', 'with its title');
	is_deeply([ map { $_->{content} } @{ $c0->{messages} } ], [ 'How do I squat?', 'Feet shoulder-width apart.' ],
		'with its messages, in order');
	is_deeply([ map { $_->{id} } @{ $c0->{messages} } ], \@msg, 'message ids');
	is_deeply([ sort keys %{ $c0->{messages}[0] } ],
		[ sort qw(id conversation_id sender content persona credits_consumed created_at) ], 'message objects');
	is_deeply([ map { [ $_->{delta}, $_->{reason} ] } @{ $e->{ledger} } ], [ [ 100, 'signup' ], [ -2, 'chat' ] ],
		'the ledger, oldest first');
	is(scalar @{ $e->{transactions} }, 1, 'one transaction');
	is_deeply($e->{transactions}[0], { id => $txn, type => 'credits', amount_cents => 499, credits => 500,
		status => 'completed', created_at => $e->{transactions}[0]{created_at} }, 'the transaction object');
	like($e->{transactions}[0]{created_at}, $TS, 'transaction created_at RFC 3339');
	is(scalar @{ $e->{referrals} }, 1, 'one referral');
	is($e->{referrals}[0]{first_name}, 'Ivy', "the invitee's first name");
	is($e->{referrals}[0]{status}, 'pending', 'pending');

	my $body = $tx->res->body;
	my $hash = count('SELECT password_hash FROM users WHERE id = ?', undef, $x->{id});
	unlike($body, qr/password|argon2/i, 'no password hash');
	unlike($body, qr/\Q$hash\E/, 'not even its value');
	unlike($body, qr/token/i, 'no tokens');
	unlike($body, qr/\Q$x->{refresh_token}\E/, 'not the refresh token');
	unlike($body, qr/SECRET_77|stripe|cus_|pi_|cs_/i, 'no Stripe ids');
	unlike($body, qr/Not yours|Yuri|invitee\.of\.x/, "nothing of anyone else (not even the invitee's email)");
}

# --- delete the account ------------------------------------------------------------------

{
	my %before = (
		conversations => count('SELECT count(*) FROM conversations WHERE user_id = ?', undef, $x->{id}),
		messages => count('SELECT count(*) FROM messages WHERE user_id = ?', undef, $x->{id}),
		refresh_tokens => count('SELECT count(*) FROM refresh_tokens WHERE user_id = ?', undef, $x->{id}),
		email_tokens => count('SELECT count(*) FROM email_tokens WHERE user_id = ?', undef, $x->{id}),
	);
	ok($before{$_}, "Xena has $_") for sort keys %before;
	my $ledger_ids = $dbh->selectcol_arrayref('SELECT id FROM credit_ledger WHERE user_id = ? ORDER BY id',
		undef, $x->{id});
	is(scalar @$ledger_ids, 2, 'two ledger rows');

	error_is(req(DELETE => '/api/user', $x, { password => 'not her password' }), 401, 'invalid_credentials', undef,
		'DELETE with a wrong password: 401 invalid_credentials');
	ok(count('SELECT count(*) FROM users WHERE id = ?', undef, $x->{id}), 'the account is still there');
	is(count("SELECT count(*) FROM $_ WHERE user_id = ?", undef, $x->{id}), $before{$_}, "$_ untouched")
		for sort keys %before;
	error_is(req(DELETE => '/api/user', $x, {}), 400, 'invalid_input', 'password', 'DELETE without a password: 400');
	error_is(req(DELETE => '/api/user', $x, { password => $x->{password}, confirm => Mojo::JSON::true }), 400,
		'invalid_input', 'confirm', 'DELETE with an extra field: 400');
	error_is(req(DELETE => '/api/user', $x), 400, 'invalid_input', 'password', 'DELETE without a body: 400');
	ok(count('SELECT count(*) FROM users WHERE id = ?', undef, $x->{id}), 'still there');

	my $tx = req(DELETE => '/api/user', $x, { password => $x->{password} });
	is($tx->res->code, 204, 'DELETE with the right password: 204');
	is($tx->res->body, '', 'no body');
	is(count('SELECT count(*) FROM users WHERE id = ?', undef, $x->{id}), 0, 'the users row is gone');
	is(count("SELECT count(*) FROM $_ WHERE user_id = ?", undef, $x->{id}), 0, "$_ gone")
		for sort keys %before;
	is(count('SELECT count(*) FROM messages WHERE id = ANY(?)', undef, \@msg), 0, 'the messages are gone');
	is(count('SELECT count(*) FROM conversations WHERE id = ?', undef, $conv), 0, 'the conversation is gone');
	is(count('SELECT count(*) FROM email_outbox WHERE to_addr = ?', undef, $x->{email}), 0, 'her queued mail too');
	is_deeply($dbh->selectcol_arrayref('SELECT id FROM credit_ledger WHERE id = ANY(?) AND user_id IS NULL ORDER BY id',
		undef, $ledger_ids), $ledger_ids, 'the ledger rows remain, with user_id NULL');
	is(count('SELECT user_id IS NULL FROM transactions WHERE id = ?', undef, $txn), 1,
		'the transaction remains, anonymised');
	is(count('SELECT count(*) FROM referrals WHERE referred_first_name = ?', undef, 'Ivy'), 0,
		'her referrals (as referrer) went with her');
	ok(!defined count('SELECT referred_by FROM users WHERE email = ?', undef, 'invitee.of.x@example.com'),
		"the invitee's account stays, referred_by cleared");

	error_is(req(GET => '/api/user/profile', $x), 401, 'unauthorized', undef, 'her access token: 401');
	error_is($t->json_req(POST => '/api/auth/refresh-token', { refresh_token => $x->{refresh_token} }), 401,
		'unauthorized', undef, 'her refresh token: 401');
	error_is($t->json_req(POST => '/api/auth/signin', { email => $x->{email}, password => $x->{password} }), 401,
		'invalid_credentials', undef, 'signing in: 401 invalid_credentials');
	error_is(req(DELETE => '/api/user', $x, { password => $x->{password} }), 401, 'unauthorized', undef,
		'deleting again: 401');
	is($t->json_req(POST => '/api/auth/signup', { email => $x->{email}, password => 'a fresh start phrase',
		first_name => 'Xena', last_name => 'Again' })->res->code, 202, 'the email can sign up again');
	is(count('SELECT credits FROM users WHERE email = ?', undef, $x->{email}), 100, 'as a new account');

	# A referred user deleting: the referrer's row stays, anonymised.
	my $ref = $t->user(first_name => 'Ruth');
	my $inv = $t->user(first_name => 'Igor', referral_code => $ref->{user}{referral_code});
	is(req(DELETE => '/api/user', $inv, { password => $inv->{password} })->res->code, 204, 'an invitee deletes');
	my $rr = $dbh->selectrow_hashref('SELECT * FROM referrals WHERE user_id = ?', undef, $ref->{id});
	ok($rr && !defined $rr->{referred_user_id}, "the referrer's referral row stays, without the user");
	is($rr->{referred_first_name}, 'Igor', 'with the first name snapshot');
}

$t->done;
