#!/usr/bin/perl
# Passwords: forgot and reset (single-use, expiring links that end every
# session, also within the second the sessions began), change (other
# sessions end, the caller's goes on), and the password rules at
# sign-up, reset and change.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is);
use Digest::SHA qw(sha256_hex);

my $t = Miky::Test->new(workers => 2, threads => 4);
my $dbh = $t->dbh;


sub count { $dbh->selectrow_array(@_) }
sub post { $t->json_req(POST => @_) }
sub signin { post('/api/auth/signin', { email => $_[0], password => $_[1] }) }
sub session { signin($_[0]{email}, $_[0]{password})->res->json }
sub refresh { post('/api/auth/refresh-token', { refresh_token => $_[0] }) }
sub profile { $t->json_req(GET => '/api/user/profile', undef, { Authorization => "Bearer $_[0]" }) }
sub forgot { post('/api/auth/forgot-password', { email => $_[0] }) }
sub reset_pw { post('/api/auth/reset-password', { token => $_[0], password => $_[1] }) }
sub change {
	my ($access, $cur, $new) = @_;
	return post('/api/user/change-password', { current_password => $cur, new_password => $new },
		{ Authorization => "Bearer $access" });
}
sub mails { count('SELECT count(*) FROM email_outbox WHERE to_addr = ? AND template = ?', undef, @_) }
sub reset_token {
	my ($email) = @_;
	is(forgot($email)->res->code, 202, "forgot-password for $email");
	return $t->mail_token($email, 'reset');
}

my $NEWPW = 'brand new secret phrase';

# --- forgot-password ---------------------------------------------------------------

{
	my $u = $t->user(first_name => 'Fay');
	my $tx = forgot($u->{email});
	is($tx->res->code, 202, 'forgot-password for an account: 202');
	is_deeply($tx->res->json, { status => 'reset_sent' }, 'body {status: reset_sent}');
	my $known_body = $tx->res->body;
	my $m = $dbh->selectrow_hashref(q{SELECT template, user_id, payload->>'token' AS token,
		payload->'link' IS NOT NULL AS has_link, payload->>'first_name' AS first_name
		FROM email_outbox WHERE to_addr = ? AND template = 'reset'}, undef, $u->{email});
	ok($m, 'a reset mail is queued');
	is($m->{user_id}, $u->{id}, 'for the user');
	is($m->{first_name}, 'Fay', 'with the first name');
	like($m->{token}, qr{^[A-Za-z0-9_-]{43}$}, 'the token waits in the row for the mailer (t/40-mail.t)');
	ok(!$m->{has_link}, 'no link stored');
	ok(count(q{SELECT expires_at BETWEEN now() + interval '59 minutes' AND now() + interval '1 hour'
		FROM email_tokens WHERE user_id = ? AND purpose = 'reset' AND used_at IS NULL}, undef, $u->{id}),
		'the reset token expires in 1 hour');

	my $before = count('SELECT count(*) FROM email_outbox');
	$tx = forgot('nobody.here@example.com');
	is($tx->res->code, 202, 'forgot-password for an unknown email: 202');
	is($tx->res->body, $known_body, 'the same body, byte for byte');
	is(count('SELECT count(*) FROM email_outbox'), $before, 'no mail queued');

	# A second request voids the first link.
	my $first = $t->mail_token($u->{email}, 'reset');
	my $second = reset_token($u->{email});
	isnt($second, $first, 'a new link');
	error_is(reset_pw($first, $NEWPW), 400, 'invalid_token', undef, 'the earlier reset link is void');
	is(count(q{SELECT count(*) FROM email_tokens WHERE user_id = ? AND purpose = 'reset'
		AND used_at IS NULL}, undef, $u->{id}), 1, 'one live reset token');

	# Banned: the same answer, no mail.
	my $b = $t->user(first_name => 'Bo');
	$dbh->do('UPDATE users SET banned_at = now() WHERE id = ?', undef, $b->{id});
	$tx = forgot($b->{email});
	is($tx->res->code, 202, 'forgot-password for a banned account: 202');
	is(mails($b->{email}, 'reset'), 0, 'but no reset mail');

	error_is(post('/api/auth/forgot-password', {}), 400, 'invalid_input', 'email', 'no email: 400');
	error_is(post('/api/auth/forgot-password', { email => 'x' }), 400, 'invalid_input', 'email',
		'malformed email: 400');
	error_is(post('/api/auth/forgot-password', { email => $u->{email}, password => 'x' }), 400,
		'invalid_input', 'password', 'an extra field: 400');
}

# --- reset-password -----------------------------------------------------------------

{
	my $u = $t->user(first_name => 'Rae');
	my $s2 = session($u);
	my $hash0 = count('SELECT password_hash FROM users WHERE id = ?', undef, $u->{id});
	my $tok = reset_token($u->{email});

	# Rule failures do not spend the link.
	error_is(reset_pw($tok, 'short'), 400, 'invalid_input', 'password', 'a 5-character password: 400');
	error_is(reset_pw($tok, $u->{email}), 400, 'invalid_input', 'password', 'the email as password: 400');
	error_is(reset_pw($tok, 'password123'), 400, 'invalid_input', 'password', 'a common password: 400');
	is(count('SELECT password_hash FROM users WHERE id = ?', undef, $u->{id}), $hash0, 'password unchanged');
	is(profile($u->{access_token})->res->code, 200, 'sessions untouched by refused resets');

	my $changed0 = mails($u->{email}, 'password_changed');
	my $tx = reset_pw($tok, $NEWPW);
	is($tx->res->code, 200, 'reset-password: 200');
	is($tx->res->body, '{}', 'body {}');
	isnt(count('SELECT password_hash FROM users WHERE id = ?', undef, $u->{id}), $hash0, 'password replaced');
	is(mails($u->{email}, 'password_changed'), $changed0 + 1, 'a password_changed mail');

	# Every session ends, at once (these tokens are from this second or the last).
	for ([ 'verify-email session', $u ], [ 'sign-in session', $s2 ]) {
		error_is(profile($_->[1]{access_token}), 401, 'unauthorized', undef, "$_->[0]: access token ended");
		error_is(refresh($_->[1]{refresh_token}), 401, 'unauthorized', undef, "$_->[0]: refresh token ended");
	}
	is(count('SELECT count(*) FROM refresh_tokens WHERE user_id = ? AND revoked_at IS NULL', undef, $u->{id}),
		0, 'every refresh token revoked');

	error_is(signin($u->{email}, $u->{password}), 401, 'invalid_credentials', undef, 'the old password fails');
	my $n = signin($u->{email}, $NEWPW);
	is($n->res->code, 200, 'the new password signs in');
	is(profile($n->res->json('/access_token'))->res->code, 200, 'and its token works at once');

	error_is(reset_pw($tok, 'yet another good phrase'), 400, 'invalid_token', undef,
		'the link is single-use: 400 invalid_token');
	is(signin($u->{email}, $NEWPW)->res->code, 200, 'and did not change the password again');

	# Expired.
	my $e = reset_token($u->{email});
	$dbh->do(q{UPDATE email_tokens SET expires_at = now() - interval '1 second'
		WHERE user_id = ? AND purpose = 'reset' AND used_at IS NULL}, undef, $u->{id});
	error_is(reset_pw($e, 'yet another good phrase'), 400, 'invalid_token', undef, 'an expired link: 400 invalid_token');
	is(signin($u->{email}, $NEWPW)->res->code, 200, 'password unchanged');

	# Not a reset token.
	my ($vtok) = $t->signup(email => 'verify.not.reset@example.com');
	error_is(reset_pw($vtok, 'yet another good phrase'), 400, 'invalid_token', undef,
		'a verification token at reset-password: 400 invalid_token');
	for my $bad ('', 'x', 'A' x 43, ('A' x 42) . '*') {
		my $tx = reset_pw($bad, 'yet another good phrase');
		if ($bad eq '') {
			error_is($tx, 400, 'invalid_input', 'token', 'an empty token: 400 invalid_input');
		} else {
			error_is($tx, 400, 'invalid_token', undef, "token '$bad': 400 invalid_token");
		}
	}
	error_is(post('/api/auth/reset-password', { token => 'A' x 43 }), 400, 'invalid_input', 'password',
		'no password: 400');
	error_is(post('/api/auth/reset-password', { password => $NEWPW }), 400, 'invalid_input', 'token',
		'no token: 400');
}

# Sessions begun in the same second as an earlier change of
# tokens_valid_after (their iat is the next second) end at a reset too.
{
	my $u = $t->user(first_name => 'Sue');
	$dbh->do(q{UPDATE users SET tokens_valid_after = now() + interval '900 milliseconds' WHERE id = ?},
		undef, $u->{id});
	my $s = session($u);
	is(profile($s->{access_token})->res->code, 200, 'a session begun just after a change works');
	my $tok = reset_token($u->{email});
	is(reset_pw($tok, $NEWPW)->res->code, 200, 'reset in the same second');
	error_is(profile($s->{access_token}), 401, 'unauthorized', undef, 'that access token ended');
	error_is(refresh($s->{refresh_token}), 401, 'unauthorized', undef, 'that refresh token ended');
	my $n = signin($u->{email}, $NEWPW)->res->json;
	is(profile($n->{access_token})->res->code, 200, 'a new sign-in works');
}

# A reset proves the email: a pending account becomes verified.
{
	my ($vtok, $b) = $t->signup(email => 'pending.reset@example.com');
	my $tok = reset_token('pending.reset@example.com');
	ok($tok, 'a pending account gets a reset mail');
	is(reset_pw($tok, $NEWPW)->res->code, 200, 'reset-password of a pending account');
	ok(count('SELECT email_verified FROM users WHERE email = ?', undef, 'pending.reset@example.com'),
		'email_verified is now true');
	is(signin('pending.reset@example.com', $NEWPW)->res->code, 200, 'signs in with the new password');
	error_is(post('/api/auth/verify-email', { token => $vtok, password => $NEWPW }), 400,
		'invalid_token', undef,
		'the verification link is void now');
}

# --- change-password ------------------------------------------------------------------

{
	my $u = $t->user(first_name => 'Cy');
	my $me = session($u);       # the caller
	my $other = session($u);    # another device
	my $hash0 = count('SELECT password_hash FROM users WHERE id = ?', undef, $u->{id});

	error_is(change($me->{access_token}, 'not my password', $NEWPW), 401, 'invalid_credentials', undef,
		'wrong current password: 401 invalid_credentials');
	is(count('SELECT password_hash FROM users WHERE id = ?', undef, $u->{id}), $hash0, 'nothing changed');
	is(profile($other->{access_token})->res->code, 200, 'no session ended');

	error_is(change($me->{access_token}, $u->{password}, 'short'), 400, 'invalid_input', 'new_password',
		'a short new password: 400 naming new_password');
	error_is(post('/api/user/change-password', { current_password => $u->{password} },
		{ Authorization => "Bearer $me->{access_token}" }), 400, 'invalid_input', 'new_password',
		'no new_password: 400');
	error_is(post('/api/user/change-password', { new_password => $NEWPW },
		{ Authorization => "Bearer $me->{access_token}" }), 400, 'invalid_input', 'current_password',
		'no current_password: 400');
	error_is(post('/api/user/change-password', { current_password => $u->{password}, new_password => $NEWPW }),
		401, 'unauthorized', undef, 'without an access token: 401');
	is(count('SELECT password_hash FROM users WHERE id = ?', undef, $u->{id}), $hash0, 'still unchanged');

	my $n0 = mails($u->{email}, 'password_changed');
	my $tx = change($me->{access_token}, $u->{password}, $NEWPW);
	is($tx->res->code, 200, 'change-password: 200');
	is($tx->res->body, '{}', 'body {}');
	is(mails($u->{email}, 'password_changed'), $n0 + 1, 'a password_changed mail');

	# api.md: "other sessions end"; the caller's session goes on, its
	# access token included (tokens_valid_family spares its family).
	is(profile($me->{access_token})->res->code, 200, "the caller's access token still works");
	error_is(profile($other->{access_token}), 401, 'unauthorized', undef, "the other session's access token ended");
	error_is(refresh($other->{refresh_token}), 401, 'unauthorized', undef, "the other session's refresh token ended");
	error_is(refresh($u->{refresh_token}), 401, 'unauthorized', undef, 'the verify-email session ended');
	my $r = refresh($me->{refresh_token});
	is($r->res->code, 200, "the caller's refresh token still works");
	is(profile($r->res->json('/access_token'))->res->code, 200, 'and gives a working access token');

	error_is(signin($u->{email}, $u->{password}), 401, 'invalid_credentials', undef, 'the old password fails');
	is(signin($u->{email}, $NEWPW)->res->code, 200, 'the new password signs in');

	# The spared session is spared once: a later end of all sessions
	# (logout everywhere from another session) ends it as well.
	my $third = session({ email => $u->{email}, password => $NEWPW });
	is(post('/api/auth/logout', { refresh_token => $third->{refresh_token}, all => Mojo::JSON::true },
		{ Authorization => "Bearer $third->{access_token}" })->res->code, 204, 'logout everywhere');
	error_is(profile($me->{access_token}), 401, 'unauthorized', undef,
		"then the caller's old access token ends too");
	error_is(profile($r->res->json('/access_token')), 401, 'unauthorized', undef,
		'and its refreshed one');
}

# The same when the sessions began in the second of an earlier change.
{
	my $u = $t->user(first_name => 'Di');
	$dbh->do(q{UPDATE users SET tokens_valid_after = now() + interval '900 milliseconds' WHERE id = ?},
		undef, $u->{id});
	my $me = session($u);
	my $other = session($u);
	is(profile($other->{access_token})->res->code, 200, 'sessions begun just after a change work');
	is(change($me->{access_token}, $u->{password}, $NEWPW)->res->code, 200, 'change in the same second');
	is(profile($me->{access_token})->res->code, 200, "the caller's access token still works");
	error_is(profile($other->{access_token}), 401, 'unauthorized', undef, "the other access token ended");
	error_is(refresh($other->{refresh_token}), 401, 'unauthorized', undef, 'the other refresh token ended');
	my $r = refresh($me->{refresh_token})->res->json;
	is(profile($r->{access_token})->res->code, 200, "the caller refreshes and goes on");
}

# --- the password rules, at sign-up, reset and change ----------------------------------

{
	my $email = 'rules.person@example.com';
	my @bad = (
		[ '7 characters', 'abcdefg' ],
		[ '129 characters', 'x' x 129 ],
		[ 'the email', $email ],
		[ 'the email in upper case', uc $email ],
		[ "the email's local part", 'rules.person' ],
		[ "the local part, mixed case", 'Rules.Person' ],
		[ 'password123', 'password123' ],
		[ 'PASSWORD123', 'PASSWORD123' ],
		[ 'qwertyuiop', 'qwertyuiop' ],
		[ 'QwErTyUiOp', 'QwErTyUiOp' ],
		[ 'password', 'password' ],
		[ '7 multibyte characters (14 bytes)', "\x{f1}\x{e7}\x{fc}\x{e9}\x{e5}\x{f8}\x{df}" ],
		[ '4 emoji (16 bytes)', "\x{1f600}\x{1f601}\x{1f602}\x{1f603}" ],
		[ '129 multibyte characters', "\x{e9}" x 129 ],
	);
	my @good = (
		[ '8 characters', 'abcdefgh' ],
		[ '128 characters', 'y' x 128 ],
		[ '8 multibyte characters', "\x{f1}\x{e7}\x{fc}\x{e9}\x{e5}\x{f8}\x{df}\x{111}" ],
		[ '128 multibyte characters', "\x{e9}" x 128 ],
		[ 'the local part and more', 'rules.person.2024!' ],
		[ 'a common password with a twist', 'password123 but longer' ],
	);

	# Sign-up: refused, and nothing created.
	for my $c (@bad) {
		my $tx = post('/api/auth/signup', { email => $email, password => $c->[1],
			first_name => 'R', last_name => 'P' });
		error_is($tx, 400, 'invalid_input', 'password', "signup, password $c->[0]: 400 invalid_input");
	}
	is(count('SELECT count(*) FROM users WHERE email = ?', undef, $email), 0, 'no account made');
	is(count('SELECT count(*) FROM email_outbox WHERE to_addr = ?', undef, $email), 0, 'no mail');
	my $i = 0;
	for my $c (@good) {
		$i++;
		my $tx = post('/api/auth/signup', { email => "good$i\@example.com", password => $c->[1],
			first_name => 'G', last_name => 'P' });
		is($tx->res->code, 202, "signup, password $c->[0]: 202");
	}
	# The multibyte password works end to end.
	my $tok = $t->mail_token('good3@example.com', 'verify');
	is(post('/api/auth/verify-email', { token => $tok, password => $good[2][1] })->res->code, 200,
		'verified');
	is(signin('good3@example.com', $good[2][1])->res->code, 200, 'signs in with 8 multibyte characters');
	error_is(signin('good3@example.com', 'nceeaosd'), 401, 'invalid_credentials', undef,
		'its ASCII look-alike does not');

	# Passwords are taken as typed: white space is part of them.
	my $sp = $t->user(email => 'spaces@example.com', password => '  padded secret  ');
	is(signin('spaces@example.com', '  padded secret  ')->res->code, 200, 'a password with spaces, as typed');
	error_is(signin('spaces@example.com', 'padded secret'), 401, 'invalid_credentials', undef,
		'not trimmed');

	# Reset: the rules against the account's email.
	my $r = $t->user(email => $email, password => 'the original phrase');
	$tok = reset_token($email);
	for my $c (@bad) {
		error_is(reset_pw($tok, $c->[1]), 400, 'invalid_input', 'password', "reset, password $c->[0]: 400");
	}
	is(reset_pw($tok, "\x{f1}\x{e7}\x{fc}\x{e9}\x{e5}\x{f8}\x{df}\x{111}")->res->code, 200,
		'reset to 8 multibyte characters: 200 (the refusals left the link usable)');
	my $s = signin($email, "\x{f1}\x{e7}\x{fc}\x{e9}\x{e5}\x{f8}\x{df}\x{111}");
	is($s->res->code, 200, 'signs in with it');

	# Change: the same rules, naming new_password.
	my $access = $s->res->json('/access_token');
	for my $c (@bad) {
		error_is(change($access, "\x{f1}\x{e7}\x{fc}\x{e9}\x{e5}\x{f8}\x{df}\x{111}", $c->[1]), 400,
			'invalid_input', 'new_password', "change, new password $c->[0]: 400");
	}
	is(profile($access)->res->code, 200, 'the refusals ended no session');
	is(change($access, "\x{f1}\x{e7}\x{fc}\x{e9}\x{e5}\x{f8}\x{df}\x{111}", 'y' x 128)->res->code, 200,
		'change to 128 characters: 200');
	is(signin($email, 'y' x 128)->res->code, 200, 'signs in with it');
}

$t->done;
