#!/usr/bin/perl
# Sessions: refresh token rotation and reuse detection, logout of one
# session and of all, and access tokens: forged, tampered, expired, of
# deleted or banned users, and the Authorization header's forms.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is);
use Digest::SHA qw(hmac_sha256 hmac_sha512 sha256_hex);
use MIME::Base64 qw(encode_base64 decode_base64);
use Mojo::JSON qw(encode_json decode_json);

my $t = Miky::Test->new(workers => 2, threads => 4);
my $dbh = $t->dbh;


sub count { $dbh->selectrow_array(@_) }
sub post { $t->json_req(POST => @_) }
sub signin { post('/api/auth/signin', { email => $_[0]{email}, password => $_[0]{password} })->res->json }
sub refresh { post('/api/auth/refresh-token', { refresh_token => $_[0] }) }
sub profile { $t->json_req(GET => '/api/user/profile', undef, { Authorization => "Bearer $_[0]" }) }
sub profile_with { $t->json_req(GET => '/api/user/profile', undef, { Authorization => $_[0] }) }

sub b64url {
	(my $s = encode_base64(shift, '')) =~ tr{+/}{-_};
	$s =~ s/=+$//;
	return $s;
}

sub unb64url {
	my $s = shift;
	$s =~ tr{-_}{+/};
	return decode_base64($s . '=' x ((4 - length($s) % 4) % 4));
}

# mint(\%header or $header_json, \%claims or $claims_json, %opt): a JWT
# as an attacker or the server would make it. opt: key, sig (the third
# part as given), mac => 'sha512'.
sub mint {
	my ($hdr, $claims, %o) = @_;
	my $h = b64url(ref $hdr ? encode_json($hdr) : $hdr);
	my $p = b64url(ref $claims ? encode_json($claims) : $claims);
	my $key = $o{key} // $Miky::Test::JWT_SECRET;
	my $sig = exists $o{sig} ? $o{sig}
		: b64url(($o{mac} // '') eq 'sha512' ? hmac_sha512("$h.$p", $key) : hmac_sha256("$h.$p", $key));
	return "$h.$p.$sig";
}

my $HS256 = { alg => 'HS256', typ => 'JWT' };
sub claims_for {
	my ($id, %over) = @_;
	# iat one second ahead: a user made in this very second has
	# tokens_valid_after later than the second's start.
	my %c = (iss => 'miky', sub => $id, iat => time + 1, exp => time + 901, %over);
	delete $c{$_} for grep { !defined $c{$_} } keys %c;
	return \%c;
}

my $u = $t->user(first_name => 'Sam');

# --- refresh rotation -------------------------------------------------------------

{
	my $s = signin($u);
	my $r1 = $s->{refresh_token};
	my $fam = count(q{SELECT family_id FROM refresh_tokens WHERE token_hash = decode(?, 'hex')},
		undef, sha256_hex($r1));
	my $tx = refresh($r1);
	is($tx->res->code, 200, 'refresh: 200');
	my $j = $tx->res->json;
	is_deeply([ sort keys %$j ], [ sort qw(access_token refresh_token token_type expires_in) ],
		'{access_token, refresh_token, token_type, expires_in}');
	is($j->{token_type}, 'Bearer', 'token_type Bearer');
	is($j->{expires_in}, 900, 'expires_in 900');
	my $r2 = $j->{refresh_token};
	like($r2, qr/^[A-Za-z0-9_-]{43}$/, 'a new refresh token');
	isnt($r2, $r1, 'not the old one');
	is(profile($j->{access_token})->res->code, 200, 'the new access token works');
	my $claims = decode_json(unb64url((split /\./, $j->{access_token})[1]));
	is($claims->{sub}, $u->{id}, 'for the same user');
	is($claims->{sid}, $fam, 'in the same session family');
	my $rows = $dbh->selectall_arrayref(q{SELECT encode(token_hash, 'hex') AS h,
		used_at IS NOT NULL AS used, revoked_at IS NOT NULL AS revoked
		FROM refresh_tokens WHERE family_id = ? ORDER BY created_at, used_at NULLS LAST},
		{ Slice => {} }, $fam);
	is(scalar @$rows, 2, 'two tokens in the family');
	my %by = map { $_->{h} => $_ } @$rows;
	ok($by{ sha256_hex($r1) }{used} && !$by{ sha256_hex($r1) }{revoked}, 'the old one is spent');
	ok(!$by{ sha256_hex($r2) }{used} && !$by{ sha256_hex($r2) }{revoked}, 'the new one is live');

	# Rotation goes on: r2 -> r3.
	my $r3 = refresh($r2)->res->json('/refresh_token');
	ok($r3 && $r3 ne $r2, 'refresh again: r2 -> r3');

	# Another session of the same user, to see that reuse ends only one.
	my $other = signin($u);

	# r1 again: reuse.  The family ends, the new token with it.
	error_is(refresh($r1), 401, 'token_reused', undef, 'a spent token again: 401 token_reused');
	is(count('SELECT count(*) FROM refresh_tokens WHERE family_id = ? AND revoked_at IS NULL',
		undef, $fam), 0, 'every token of the family is revoked');
	error_is(refresh($r3), 401, 'unauthorized', undef, 'the newest token of that family: 401');
	error_is(refresh($r2), 401, 'token_reused', undef, 'another spent token of it: token_reused again');
	is(refresh($other->{refresh_token})->res->code, 200, "the user's other session is unaffected");
}

# Bad refresh tokens.
{
	error_is(refresh('A' x 43), 401, 'unauthorized', undef, 'an unknown token: 401 unauthorized');
	error_is(refresh('garbage'), 401, 'unauthorized', undef, 'a malformed token: 401');
	error_is(refresh(('A' x 42) . '+'), 401, 'unauthorized', undef, "a token with '+': 401");
	my $s = signin($u);
	error_is(refresh($s->{access_token}), 400, 'invalid_input', 'refresh_token',
		'an access token as refresh token: 400 (longer than any refresh token)');
	error_is(refresh(substr($s->{access_token}, 0, 43)), 401, 'unauthorized', undef,
		'its first 43 characters: 401');

	$dbh->do(q{UPDATE refresh_tokens SET expires_at = now() - interval '1 second'
		WHERE token_hash = decode(?, 'hex')}, undef, sha256_hex($s->{refresh_token}));
	error_is(refresh($s->{refresh_token}), 401, 'unauthorized', undef, 'an expired refresh token: 401');

	my $b = $t->user(first_name => 'Ban');
	$dbh->do('UPDATE users SET banned_at = now() WHERE id = ?', undef, $b->{id});
	error_is(refresh($b->{refresh_token}), 401, 'unauthorized', undef, "a banned user's refresh token: 401");
	$dbh->do('UPDATE users SET banned_at = NULL WHERE id = ?', undef, $b->{id});
	is(refresh($b->{refresh_token})->res->code, 200,
		'unbanned: the same token works (the failed try did not spend it)');

	error_is(post('/api/auth/refresh-token', {}), 400, 'invalid_input', 'refresh_token',
		'no refresh_token: 400 invalid_input');
	error_is(post('/api/auth/refresh-token', { refresh_token => 'x' x 257 }), 400, 'invalid_input',
		'refresh_token', 'a 257-character token: 400');
	error_is(post('/api/auth/refresh-token', { refresh_token => 'A' x 43, user_id => $u->{id} }), 400,
		'invalid_input', 'user_id', 'an extra field: 400');
}

# Two concurrent refreshes with one token: exactly one wins.
{
	my $s = signin($u);
	my @codes;
	my @p = map {
		$t->ua->post_p($t->url('/api/auth/refresh-token') => json => { refresh_token => $s->{refresh_token} })
			->then(sub { push @codes, $_[0]->res->code })
	} 1 .. 4;
	Mojo::Promise->all(@p)->wait;
	is(scalar(grep { $_ == 200 } @codes), 1, 'four concurrent refreshes of one token: one 200')
		or diag "@codes";
	is(scalar(grep { $_ == 401 } @codes), 3, 'and three 401');
}

# --- logout ---------------------------------------------------------------------------

{
	my $s1 = signin($u);
	my $s2 = signin($u);
	my $tx = post('/api/auth/logout', { refresh_token => $s1->{refresh_token} });
	is($tx->res->code, 204, 'logout: 204');
	is($tx->res->body, '', 'no body');
	error_is(refresh($s1->{refresh_token}), 401, 'unauthorized', undef,
		"the session's refresh token stops working");
	is(refresh($s2->{refresh_token})->res->code, 200, 'another session goes on');

	# A rotated session: logging out with the latest token ends the family.
	my $s3 = signin($u);
	my $r = refresh($s3->{refresh_token})->res->json('/refresh_token');
	is(post('/api/auth/logout', { refresh_token => $r })->res->code, 204, 'logout after a rotation');
	error_is(refresh($r), 401, 'unauthorized', undef, 'the latest token is revoked');

	is(post('/api/auth/logout', { refresh_token => 'A' x 43 })->res->code, 204,
		'logout with an unknown token: 204 all the same');
	is(post('/api/auth/logout', { refresh_token => 'junk' })->res->code, 204,
		'logout with a malformed token: 204');
	is(post('/api/auth/logout', { refresh_token => $s1->{refresh_token} })->res->code, 204,
		'logout twice: 204');
	error_is(post('/api/auth/logout', {}), 400, 'invalid_input', 'refresh_token', 'logout without a token: 400');
	error_is(post('/api/auth/logout', { refresh_token => 'A' x 43, all => 'yes' }), 400, 'invalid_input',
		'all', 'all must be a boolean');
}

# Logout everywhere.
{
	my $v = $t->user(first_name => 'Val');
	my $s1 = signin($v);
	my $s2 = signin($v);
	my $other = $t->user(first_name => 'Otto');

	# all:true needs a valid access token; nothing ends without one.
	error_is(post('/api/auth/logout', { refresh_token => $s1->{refresh_token}, all => Mojo::JSON::true }),
		401, 'unauthorized', undef, 'all:true without an access token: 401');
	error_is(post('/api/auth/logout', { refresh_token => $s1->{refresh_token}, all => Mojo::JSON::true },
		{ Authorization => 'Bearer not.a.token' }), 401, 'unauthorized', undef,
		'all:true with an invalid access token: 401');
	my $expired = mint($HS256, claims_for($v->{id}, iat => time - 2000, exp => time - 1000));
	error_is(post('/api/auth/logout', { refresh_token => $s1->{refresh_token}, all => Mojo::JSON::true },
		{ Authorization => "Bearer $expired" }), 401, 'token_expired', undef,
		'all:true with an expired access token: 401 token_expired');
	is(count('SELECT count(*) FROM refresh_tokens WHERE user_id = ? AND revoked_at IS NOT NULL',
		undef, $v->{id}), 0, 'nothing was revoked by those');
	is(profile($s2->{access_token})->res->code, 200, 'access tokens still work');

	my $tx = post('/api/auth/logout', { refresh_token => $s1->{refresh_token}, all => Mojo::JSON::true },
		{ Authorization => "Bearer $s1->{access_token}" });
	is($tx->res->code, 204, 'logout all:true with an access token: 204');
	for ([ 'verify-email', $v ], [ 'first sign-in', $s1 ], [ 'second sign-in', $s2 ]) {
		my ($name, $s) = @$_;
		error_is(refresh($s->{refresh_token}), 401, 'unauthorized', undef, "$name: refresh token ended");
		error_is(profile($s->{access_token}), 401, 'unauthorized', undef, "$name: access token ended");
	}
	is(count('SELECT count(*) FROM refresh_tokens WHERE user_id = ? AND revoked_at IS NULL',
		undef, $v->{id}), 0, 'every family of the user is revoked');
	is(profile($other->{access_token})->res->code, 200, "another user's session is untouched");
	is(refresh($other->{refresh_token})->res->code, 200, "another user's refresh token too");

	# Signing in again at once (same second) gives a working session.
	my $s3 = signin($v);
	is(profile($s3->{access_token})->res->code, 200, 'a new sign-in right after works');
	is(refresh($s3->{refresh_token})->res->code, 200, 'and refreshes');
}

# Within one second: sessions begun just after an earlier end of all
# sessions (their iat is rounded up to the next second) must end at the
# next logout-all too.  tokens_valid_after is set a little ahead, as a
# change in this very second leaves it, so that this does not depend on
# where the second boundary falls.
{
	my $w = $t->user(first_name => 'Wes');
	for my $round (1 .. 3) {
		$dbh->do(q{UPDATE users SET tokens_valid_after = now() + interval '900 milliseconds'
			WHERE id = ?}, undef, $w->{id});
		my $s = signin($w);
		is(profile($s->{access_token})->res->code, 200, "round $round: a session begun after the change works");
		my $r = refresh($s->{refresh_token})->res->json;
		is(profile($r->{access_token})->res->code, 200, "round $round: and its refreshed token");
		is(post('/api/auth/logout', { refresh_token => $s->{refresh_token}, all => Mojo::JSON::true },
			{ Authorization => "Bearer $r->{access_token}" })->res->code, 204, "round $round: logout all");
		error_is(profile($s->{access_token}), 401, 'unauthorized', undef,
			"round $round: its first access token ended in the same second");
		error_is(profile($r->{access_token}), 401, 'unauthorized', undef,
			"round $round: its refreshed access token ended too");
		my $n = signin($w);
		is(profile($n->{access_token})->res->code, 200, "round $round: a sign-in after that works");
	}
}

# --- access tokens ---------------------------------------------------------------

my $now = time;
my $good = mint($HS256, claims_for($u->{id}));
is(profile($good)->res->code, 200, 'a token minted with the secret works (control)');
is(profile_with("bearer $good")->res->code, 200, 'the scheme is case-insensitive ("bearer")');

my ($gh, $gp, $gs) = split /\./, $good;
my $victim = $t->user(first_name => 'Vic');
my @forged = (
	[ 'alg none, no signature', mint({ alg => 'none', typ => 'JWT' }, claims_for($u->{id}), sig => '') ],
	[ 'alg none, signature kept', mint({ alg => 'none', typ => 'JWT' }, claims_for($u->{id}), sig => $gs) ],
	[ 'alg none with a correct HS256 MAC', mint({ alg => 'none', typ => 'JWT' }, claims_for($u->{id})) ],
	[ 'alg None', mint({ alg => 'None' }, claims_for($u->{id}), sig => '') ],
	[ 'alg HS512 with a correct HS256 MAC', mint({ alg => 'HS512', typ => 'JWT' }, claims_for($u->{id})) ],
	[ 'alg HS512 with an HS512 MAC', mint({ alg => 'HS512', typ => 'JWT' }, claims_for($u->{id}), mac => 'sha512') ],
	[ 'alg RS256, any signature', mint({ alg => 'RS256', typ => 'JWT' }, claims_for($u->{id}), sig => b64url('x' x 256)) ],
	[ 'alg RS256 with a correct HS256 MAC', mint({ alg => 'RS256', typ => 'JWT' }, claims_for($u->{id})) ],
	[ 'no alg', mint({ typ => 'JWT' }, claims_for($u->{id})) ],
	[ 'wrong key', mint($HS256, claims_for($u->{id}), key => 'another-secret-that-is-long-enough-0123456789') ],
	[ 'empty key', mint($HS256, claims_for($u->{id}), key => '') ],
	[ "tampered sub, signature kept", join('.', $gh, b64url(encode_json(claims_for($victim->{id},
		iat => decode_json(unb64url($gp))->{iat}, exp => decode_json(unb64url($gp))->{exp}))), $gs) ],
	[ 'signature of another token', join('.', $gh, $gp, (split /\./, mint($HS256, claims_for($victim->{id})))[2]) ],
	[ 'signature cut', join('.', $gh, $gp, substr($gs, 0, 40)) ],
	[ 'no signature part', "$gh.$gp" ],
	[ 'empty signature', "$gh.$gp." ],
	[ 'four parts', "$good.$gs" ],
	[ 'iss evil', mint($HS256, claims_for($u->{id}, iss => 'evil')) ],
	[ 'iss missing', mint($HS256, claims_for($u->{id}, iss => undef)) ],
	[ 'exp missing', mint($HS256, claims_for($u->{id}, exp => undef)) ],
	[ 'iat missing', mint($HS256, claims_for($u->{id}, iat => undef)) ],
	[ 'sub missing', mint($HS256, claims_for($u->{id}, sub => undef)) ],
	[ 'exp a string', mint($HS256, claims_for($u->{id}, exp => '' . ($now + 900))) ],
	[ 'exp fractional', mint($HS256, sprintf('{"iss":"miky","sub":"%s","iat":%d,"exp":%d.5}', $u->{id}, $now, $now + 900)) ],
	[ 'iat an hour ahead', mint($HS256, claims_for($u->{id}, iat => $now + 3600, exp => $now + 4500)) ],
	[ 'sub not a UUID', mint($HS256, claims_for('admin')) ],
	[ 'sub an upper-case UUID of nobody', mint($HS256, claims_for('00000000-0000-0000-0000-00000000000A')) ],
	[ 'sub a UUID of nobody', mint($HS256, claims_for('00000000-0000-4000-8000-000000000000')) ],
	[ 'sub with SQL', mint($HS256, claims_for("' OR 1=1 --")) ],
	[ 'garbage', 'garbage' ],
	[ 'three dots', 'a.b.c' ],
	[ 'a refresh token', $u->{refresh_token} ],
);
for my $f (@forged) {
	error_is(profile($f->[1]), 401, 'unauthorized', undef, "forged access token: $f->[0] -> 401");
}

my $exp = mint($HS256, claims_for($u->{id}, iat => $now - 1000, exp => $now - 100));
error_is(profile($exp), 401, 'token_expired', undef, 'an expired token: 401 token_expired');
my $exp_forged = mint($HS256, claims_for($u->{id}, iat => $now - 1000, exp => $now - 100), key => 'x' x 48);
error_is(profile($exp_forged), 401, 'unauthorized', undef,
	'an expired token with a bad signature: unauthorized, not token_expired');
is(profile(mint($HS256, claims_for($u->{id}, iat => $now + 30, exp => $now + 930)))->res->code, 200,
	'iat 30 s ahead is within the clock leeway');

# Tokens of users that are no longer usable.
{
	my $d = $t->user(first_name => 'Del');
	my $tok = mint($HS256, claims_for($d->{id}));
	is(profile($tok)->res->code, 200, 'a token of a live user works (control)');
	$dbh->do('UPDATE users SET banned_at = now() WHERE id = ?', undef, $d->{id});
	error_is(profile($tok), 401, 'unauthorized', undef, 'the same token once banned: 401');
	error_is(profile($d->{access_token}), 401, 'unauthorized', undef, 'its own issued token too');
	$dbh->do('UPDATE users SET banned_at = NULL WHERE id = ?', undef, $d->{id});
	is(profile($tok)->res->code, 200, 'unbanned: works again');
	$dbh->do('DELETE FROM users WHERE id = ?', undef, $d->{id});
	error_is(profile($tok), 401, 'unauthorized', undef, 'the user deleted: 401');

	my ($ptok) = $t->signup(email => 'not.yet@example.com');
	my $pid = count('SELECT id FROM users WHERE email = ?', undef, 'not.yet@example.com');
	error_is(profile(mint($HS256, claims_for($pid))), 401, 'unauthorized', undef,
		'a minted token of a pending (unverified) user: 401');
}

# The Authorization header's forms.
{
	my @bad = (
		[ 'no header', undef ],
		[ 'empty', '' ],
		[ '"Bearer" with nothing', 'Bearer' ],
		[ '"Bearer " and spaces', 'Bearer    ' ],
		[ 'Basic', 'Basic ' . encode_base64("$u->{email}:$u->{password}", '') ],
		[ 'Token scheme', "Token $good" ],
		[ 'JWT scheme', "JWT $good" ],
		[ 'the token alone', $good ],
		[ '"Bearer" glued to the token', "Bearer$good" ],
		[ 'two tokens', "Bearer $good $good" ],
		[ 'a comma-separated pair', "Bearer $good, Bearer $good" ],
	);
	for my $b (@bad) {
		my $tx = defined $b->[1] ? profile_with($b->[1]) : $t->json_req(GET => '/api/user/profile');
		error_is($tx, 401, 'unauthorized', undef, "Authorization: $b->[0] -> 401");
	}
}

$t->done;
