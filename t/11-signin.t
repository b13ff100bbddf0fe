#!/usr/bin/perl
# Sign-in: the answer and its tokens, the user object, unknown email and
# wrong password told apart by nothing (status, body, time), pending and
# banned accounts, email normalisation and the input checks.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is @USER_KEYS $TS);
use Digest::SHA qw(sha256_hex);
use List::Util qw(max min);
use MIME::Base64 qw(decode_base64);
use Mojo::JSON qw(decode_json);
use Time::HiRes qw(time);

my $t = Miky::Test->new(workers => 2, threads => 4);
my $dbh = $t->dbh;



sub count { $dbh->selectrow_array(@_) }
sub post { $t->json_req(POST => @_) }
sub signin { post('/api/auth/signin', { email => $_[0], password => $_[1] }, $_[2]) }

sub b64url_json {
	my $s = shift;
	$s =~ tr{-_}{+/};
	$s .= '=' x ((4 - length($s) % 4) % 4);
	return decode_json(decode_base64($s));
}

my $al = $t->user(first_name => 'Alma', last_name => 'Ahl');
$dbh->do('DELETE FROM rate_limits');

# --- success -----------------------------------------------------------------

my $t0 = time;
my $tx = signin($al->{email}, $al->{password}, { 'User-Agent' => 'miky-test/1.0' });
is($tx->res->code, 200, 'sign-in: 200');
my $j = $tx->res->json;
is_deeply([ sort keys %$j ], [ sort qw(user access_token refresh_token token_type expires_in) ],
	'{user, access_token, refresh_token, token_type, expires_in}');
is($j->{token_type}, 'Bearer', 'token_type');
is($j->{expires_in}, 900, 'expires_in');
is($tx->res->headers->header('Cache-Control'), 'no-store', 'Cache-Control: no-store');

my $user = $j->{user};
is_deeply([ sort keys %$user ], \@USER_KEYS, 'the user object has exactly the keys of api.md');
ok(!grep({ /password|stripe|token|hash|banned/i } keys %$user), 'no password, Stripe or token fields');
unlike($tx->res->body, qr/argon2|password_hash|stripe/i, 'nothing of the kind anywhere in the body');
is($user->{id}, $al->{id}, 'id');
is($user->{email}, $al->{email}, 'email');
is($user->{first_name}, 'Alma', 'first_name');
is($user->{last_name}, 'Ahl', 'last_name');
is($user->{credits}, 100, 'credits');
is($user->{plan}, 'free', 'plan');
is($user->{role}, 'user', 'role');
is($user->{language}, 'en', 'language defaults to en');
ok($user->{email_verified} && ref $user->{email_verified}, 'email_verified is JSON true');
like($user->{referral_code}, qr/^[A-HJ-NP-Z2-9]{8}$/, 'referral_code');
is($user->{referrals_count}, 0, 'referrals_count');
is($user->{cash_earned_cents}, 0, 'cash_earned_cents');
is($user->{cash_paid_out_cents}, 0, 'cash_paid_out_cents');
ok(exists $user->{subscription_status} && !defined $user->{subscription_status},
	'subscription_status null');
like($user->{created_at}, $TS, 'created_at RFC 3339 with ms and Z');
like($user->{updated_at}, $TS, 'updated_at RFC 3339 with ms and Z');
my $db_created = count(q{SELECT to_char(created_at AT TIME ZONE 'UTC',
	'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') FROM users WHERE id = ?}, undef, $al->{id});
is($user->{created_at}, $db_created, 'created_at is the stored time in UTC');

# The access token: an HS256 JWT for this user, 15 minutes.
my ($h, $p, $s) = split /\./, $j->{access_token};
my $hdr = b64url_json($h);
my $pl = b64url_json($p);
is($hdr->{alg}, 'HS256', 'JWT alg HS256');
is($pl->{iss}, 'miky', 'iss miky');
is($pl->{sub}, $al->{id}, 'sub is the user id');
ok($pl->{iat} >= int($t0) - 1 && $pl->{iat} <= time + 1, 'iat is now');
is($pl->{exp} - $pl->{iat}, 900, 'exp = iat + 900');
like($s, qr/^[A-Za-z0-9_-]{43}$/, 'a 32-byte signature');
{
	require Digest::SHA;
	(my $mac = MIME::Base64::encode_base64(
		Digest::SHA::hmac_sha256("$h.$p", $Miky::Test::JWT_SECRET), '')) =~ tr{+/}{-_};
	$mac =~ s/=+$//;
	is($s, $mac, 'signed with JWT_SECRET');
}

# The refresh token: stored only as its SHA-256, in a family of its own.
like($j->{refresh_token}, qr/^[A-Za-z0-9_-]{43}$/, 'refresh token: 43 base64url characters');
my $rt = $dbh->selectrow_hashref(q{SELECT user_id, family_id, user_agent, used_at, revoked_at,
	expires_at > now() + interval '29 days' AS long_lived
	FROM refresh_tokens WHERE token_hash = decode(?, 'hex')}, undef, sha256_hex($j->{refresh_token}));
ok($rt, 'refresh_tokens has its SHA-256');
is($rt->{user_id}, $al->{id}, 'for this user');
is($rt->{user_agent}, 'miky-test/1.0', 'with the User-Agent');
ok(!$rt->{used_at} && !$rt->{revoked_at}, 'live');
ok($rt->{long_lived}, 'expires in 30 days');
is($pl->{sid}, $rt->{family_id}, 'the access token names the session family (sid)');
is(count(q{SELECT count(*) FROM refresh_tokens WHERE token_hash = convert_to(?, 'UTF8')}, undef,
	$j->{refresh_token}), 0, 'the token itself is not stored');

$tx = $t->json_req(GET => '/api/user/profile', undef, { Authorization => "Bearer $j->{access_token}" });
is($tx->res->code, 200, 'the access token works');
is_deeply($tx->res->json('/user'), $user, 'GET /profile gives the same user object');

# Every sign-in is a session family of its own.
my $j2 = signin($al->{email}, $al->{password})->res->json;
isnt($j2->{refresh_token}, $j->{refresh_token}, 'a second sign-in: another refresh token');
my $fam2 = count(q{SELECT family_id FROM refresh_tokens WHERE token_hash = decode(?, 'hex')}, undef,
	sha256_hex($j2->{refresh_token}));
isnt($fam2, $rt->{family_id}, 'in another family');

# --- failures -------------------------------------------------------------------

my $unknown = signin('no.such.person@example.com', $al->{password});
my $wrong = signin($al->{email}, 'wrong password, surely');
error_is($unknown, 401, 'invalid_credentials', undef, 'unknown email: 401 invalid_credentials');
error_is($wrong, 401, 'invalid_credentials', undef, 'wrong password: 401 invalid_credentials');
is($unknown->res->body, $wrong->res->body, 'the same body, byte for byte');
is(join(',', sort grep { !/^(?:Date|X-Request-Id|Content-Length)$/i } @{ $unknown->res->headers->names }),
	join(',', sort grep { !/^(?:Date|X-Request-Id|Content-Length)$/i } @{ $wrong->res->headers->names }),
	'the same headers');
error_is(signin($al->{email}, uc $al->{password}), 401, 'invalid_credentials', undef,
	'the password in upper case: 401');
error_is(signin($al->{email}, "$al->{password} "), 401, 'invalid_credentials', undef,
	'the password with a trailing space: 401 (passwords are not trimmed)');

# Similar time: medians of a few tries each, within a loose factor.
{
	my (@tu, @tw);
	for my $i (1 .. 5) {
		my $s0 = time;
		signin("ghost$i\@example.com", 'whatever password');
		push @tu, time - $s0;
		$s0 = time;
		signin($al->{email}, "wrong password $i");
		push @tw, time - $s0;
	}
	my $med = sub { my @v = sort { $a <=> $b } @_; $v[$#v / 2] };
	my ($mu, $mw) = ($med->(@tu), $med->(@tw));
	ok($mu > $mw / 3 && $mu < $mw * 3, sprintf('similar time: unknown email %.1f ms, '
		. 'wrong password %.1f ms (median of 5)', $mu * 1000, $mw * 1000));
	ok($mu > 0.005, 'an unknown email spends a password hash too (> 5 ms)');
}
$dbh->do('DELETE FROM rate_limits');

# Pending account.
{
	my ($tok, $b) = $t->signup(email => 'pending@example.com');
	error_is(signin('pending@example.com', $b->{password}), 403, 'email_not_verified', undef,
		'pending, right password: 403 email_not_verified');
	error_is(signin('pending@example.com', 'not the password'), 401, 'invalid_credentials', undef,
		'pending, wrong password: 401 invalid_credentials');
	is(count(q{SELECT count(*) FROM refresh_tokens r JOIN users u ON u.id = r.user_id
		WHERE u.email = 'pending@example.com'}), 0, 'no session for a pending account');
}

# Banned account.
{
	my $b = $t->user(email => 'banned@example.com');
	$dbh->do('UPDATE users SET banned_at = now() WHERE id = ?', undef, $b->{id});
	my $n = count('SELECT count(*) FROM refresh_tokens WHERE user_id = ?', undef, $b->{id});
	error_is(signin('banned@example.com', $b->{password}), 403, 'forbidden', undef,
		'banned, right password: 403 forbidden');
	error_is(signin('banned@example.com', 'not the password'), 401, 'invalid_credentials', undef,
		'banned, wrong password: 401 invalid_credentials');
	is(count('SELECT count(*) FROM refresh_tokens WHERE user_id = ?', undef, $b->{id}), $n,
		'no session for a banned account');
	$dbh->do('UPDATE users SET banned_at = NULL WHERE id = ?', undef, $b->{id});
	is(signin('banned@example.com', $b->{password})->res->code, 200, 'unbanned: signs in');
}

# Normalisation: trimmed and case-folded like at sign-up.
{
	my $n = $t->user(email => 'Case.Folded@Example.com');
	is($n->{user}{email}, 'case.folded@example.com', 'stored lower-cased');
	is(signin('  CASE.FOLDED@EXAMPLE.COM  ', $n->{password})->res->code, 200,
		'"  CASE.FOLDED@EXAMPLE.COM  " signs in');
	is(signin("case.folded\@example.com\n", $n->{password})->res->code, 200,
		'with a trailing newline too');
}

# Input checks.
{
	my @cases = (
		[ 'no password', { email => $al->{email} }, 'password' ],
		[ 'empty password', { email => $al->{email}, password => '' }, 'password' ],
		[ 'password a number', { email => $al->{email}, password => 12345678 }, 'password' ],
		[ 'no email', { password => 'x' }, 'email' ],
		[ 'malformed email', { email => 'nope', password => 'x' }, 'email' ],
		[ 'email null', { email => undef, password => 'x' }, 'email' ],
		[ 'an extra field', { email => $al->{email}, password => $al->{password}, remember => 1 },
			'remember' ],
	);
	for my $c (@cases) {
		error_is(post('/api/auth/signin', $c->[1]), 400, 'invalid_input', $c->[2], "signin: $c->[0]");
	}
	error_is(post('/api/auth/signin', '{"email":"x', { 'Content-Type' => 'application/json' }), 400,
		'invalid_json', undef, 'signin: invalid JSON');
	error_is(post('/api/auth/signin', "email=$al->{email}", { 'Content-Type' => 'text/plain' }), 415,
		'unsupported_media_type', undef, 'signin: text/plain');
	my $tx = $t->json_req(PUT => '/api/auth/signin', { email => $al->{email} });
	error_is($tx, 405, 'method_not_allowed', undef, 'PUT /signin: 405');
	is($tx->res->headers->header('Allow'), 'POST', 'Allow: POST');
	# A long password is checked (and refused) without trouble.
	error_is(signin($al->{email}, 'x' x 1024), 401, 'invalid_credentials', undef,
		'a 1024-character password: 401');
	error_is(signin($al->{email}, 'x' x 1025), 400, 'invalid_input', 'password',
		'a 1025-character password: 400');
}

$t->done;
