#!/usr/bin/perl
# Sign-up, email verification and resend: one answer whatever the email's
# state, the right mail for each state, pending accounts replaced by a new
# sign-up, single-use expiring links, email normalisation, referral codes
# at sign-up, the sign-up credit grant, and the input checks of
# /api/auth/signup, /verify-email and /resend-verification.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is @USER_KEYS $TS $UUID);

my $t = Miky::Test->new(workers => 2, threads => 4);
my $dbh = $t->dbh;

my $PW = 'correct horse battery staple';


sub count { $dbh->selectrow_array(@_) }
sub post { $t->json_req(POST => @_) }

sub signup {
	my (%f) = @_;
	return post('/api/auth/signup', {
		password => $PW, first_name => 'Ann', last_name => 'Lee', %f });
}

sub outbox {
	my ($email, $template) = @_;
	return $dbh->selectall_arrayref(q{SELECT id, template, payload->>'token' AS token,
		(payload->'link' IS NOT NULL) AS has_link, payload->>'first_name' AS first_name, language, user_id
		FROM email_outbox WHERE to_addr = ? AND (?::text IS NULL OR template = ?)
		ORDER BY id}, { Slice => {} }, $email, $template, $template);
}

sub token_of { ($_[0] // '') =~ /^([A-Za-z0-9_-]{43})$/ ? $1 : undef }

# verify($token, $password): POST /verify-email, the password of the sign-up.
sub verify { post('/api/auth/verify-email', { token => $_[0], password => $_[1] // $PW }) }

sub signin { post('/api/auth/signin', { email => $_[0], password => $_[1] }) }

# --- a new email ------------------------------------------------------------

my $email = 'new.person@example.com';
my $tx = signup(email => $email, first_name => 'Nina', last_name => 'Neu',
	language => 'de');
is($tx->res->code, 202, 'sign-up of a new email: 202');
is_deeply($tx->res->json, { status => 'verification_sent', email => $email },
	'body: {status, email}');
my $body_new = $tx->res->body;
is($tx->res->headers->content_type, 'application/json', 'JSON content type');
is($tx->res->headers->header('Cache-Control'), 'no-store', 'Cache-Control: no-store');
is($tx->res->headers->header('X-Content-Type-Options'), 'nosniff', 'nosniff');
ok($tx->res->headers->header('X-Request-Id'), 'X-Request-Id');

my $u = $dbh->selectrow_hashref('SELECT * FROM users WHERE email = ?', undef, $email);
ok($u, 'a users row');
ok(!$u->{email_verified}, 'pending: email_verified false');
is($u->{first_name}, 'Nina', 'first_name stored');
is($u->{last_name}, 'Neu', 'last_name stored');
is($u->{language}, 'de', 'language stored');
is($u->{role}, 'user', 'role user');
is($u->{plan}, 'free', 'plan free');
is($u->{credits}, 100, 'signup_credits (100) granted');
like($u->{referral_code}, qr/^[A-HJ-NP-Z2-9]{8}$/, 'a referral code of 8 unambiguous letters');
like($u->{password_hash}, qr/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, 'argon2id hash stored');
unlike($u->{password_hash}, qr/\Q$PW\E/, 'not the password itself');
ok(!defined $u->{referred_by}, 'not referred');

my $ledger = $dbh->selectall_arrayref(
	'SELECT delta, balance_after, reason, ref FROM credit_ledger WHERE user_id = ? ORDER BY id',
	{ Slice => {} }, $u->{id});
is_deeply($ledger, [ { delta => 100, balance_after => 100, reason => 'signup', ref => $u->{id} } ],
	'the sign-up grant is the first and only ledger row');
is(count('SELECT sum(delta) FROM credit_ledger WHERE user_id = ?', undef, $u->{id}),
	$u->{credits}, 'sum of ledger deltas == users.credits');

my $mails = outbox($email);
is(scalar @$mails, 1, 'one mail queued');
is($mails->[0]{template}, 'verify', 'template verify');
ok(!defined $mails->[0]{first_name},
	'no first name: a verification mail carries no text the signer-up chose');
is($mails->[0]{language}, 'de', 'mail in the account language');
is($mails->[0]{user_id}, $u->{id}, 'mail belongs to the user');
ok(!$mails->[0]{has_link}, 'no link stored: the mailer builds it when it sends');
my $tok1 = token_of($mails->[0]{token});
ok($tok1, 'the token (43 characters) waits in the row until the mail is sent');
my $et = $dbh->selectall_arrayref(q{SELECT purpose, used_at IS NULL AS live,
	expires_at > now() + interval '47 hours 59 minutes' AND expires_at <= now() + interval '48 hours' AS ttl48,
	encode(token_hash, 'hex') AS h FROM email_tokens WHERE user_id = ?}, { Slice => {} }, $u->{id});
is(scalar @$et, 1, 'one email token');
is($et->[0]{purpose}, 'verify', 'purpose verify');
ok($et->[0]{live} && $et->[0]{ttl48}, 'unused, expires in 48 h');
{
	require Digest::SHA;
	is($et->[0]{h}, Digest::SHA::sha256_hex($tok1), 'only the SHA-256 of the link token is stored');
}

error_is(signin($email, $PW), 403, 'email_not_verified', undef,
	'pending account, right password: 403 email_not_verified');

# --- the same email again, while pending -------------------------------------

my $PW2 = 'a different horse entirely';
$tx = signup(email => $email, password => $PW2, first_name => 'Nora', last_name => 'Nix',
	language => 'fr');
is($tx->res->code, 202, 'sign-up of a pending email: 202');
is($tx->res->body, $body_new, 'the same body, byte for byte');
is(count('SELECT count(*) FROM users WHERE email = ?', undef, $email), 1, 'still one users row');
my $u2 = $dbh->selectrow_hashref('SELECT * FROM users WHERE email = ?', undef, $email);
is($u2->{id}, $u->{id}, 'the same account');
isnt($u2->{password_hash}, $u->{password_hash}, 'password replaced');
is($u2->{first_name}, 'Nora', 'first name replaced');
is($u2->{last_name}, 'Nix', 'last name replaced');
is($u2->{language}, 'fr', 'language replaced');
is($u2->{credits}, 100, 'no second grant');
is(count('SELECT count(*) FROM credit_ledger WHERE user_id = ?', undef, $u->{id}), 1,
	'still one ledger row');
$mails = outbox($email);
is(scalar @$mails, 2, 'a second mail');
is($mails->[1]{template}, 'verify', 'template verify');
ok(!defined $mails->[1]{first_name}, 'no name in it');
my $tok2 = token_of($mails->[1]{token});
ok($tok2 && $tok2 ne $tok1, 'a new link');
is(count('SELECT count(*) FROM email_tokens WHERE user_id = ? AND used_at IS NULL', undef, $u->{id}),
	1, 'only the new link is live');

error_is(verify($tok1, $PW2), 400, 'invalid_token', undef,
	'the earlier link is void: 400 invalid_token');
error_is(verify($tok2, $PW), 401, 'invalid_credentials', undef,
	'the new link with the replaced password: 401 invalid_credentials');
error_is(verify($tok2, 'not even close'), 401, 'invalid_credentials', undef,
	'the new link with a wrong password: 401');
is(count(q{SELECT count(*) FROM rate_limits WHERE key = 'signin_fail:' || ?}, undef, $u->{id}), 1,
	'the failures count against the account sign-in limit');
ok(!count('SELECT email_verified FROM users WHERE id = ?', undef, $u->{id}), 'still pending');
$tx = verify($tok2, $PW2);
is($tx->res->code, 200, 'the new link with the password of its sign-up verifies: the token was kept');
my $j = $tx->res->json;
is_deeply([ sort keys %$j ], [ sort qw(user access_token refresh_token token_type expires_in) ],
	'verify-email: {user, access_token, refresh_token, token_type, expires_in}');
is($j->{token_type}, 'Bearer', 'token_type Bearer');
is($j->{expires_in}, 900, 'expires_in 900');
like($j->{access_token}, qr/^[\w-]+\.[\w-]+\.[\w-]+$/, 'a JWT');
like($j->{refresh_token}, qr/^[\w-]{43}$/, 'an opaque refresh token');
is_deeply([ sort keys %{ $j->{user} } ], \@USER_KEYS, 'the user object has exactly the keys of api.md');
is($j->{user}{id}, $u->{id}, 'user id');
like($j->{user}{id}, $UUID, 'id is a UUID');
is($j->{user}{email}, $email, 'email');
ok($j->{user}{email_verified}, 'email_verified true now');
is($j->{user}{first_name}, 'Nora', 'names of the latest sign-up');
is($j->{user}{credits}, 100, 'credits');
is($j->{user}{referral_code}, $u->{referral_code}, 'referral_code');
is($j->{user}{referrals_count}, 0, 'referrals_count');
is($j->{user}{cash_earned_cents}, 0, 'cash_earned_cents');
is($j->{user}{cash_paid_out_cents}, 0, 'cash_paid_out_cents');
ok(exists $j->{user}{subscription_status} && !defined $j->{user}{subscription_status},
	'subscription_status null');
like($j->{user}{$_}, $TS, "$_ is RFC 3339 UTC with milliseconds") for qw(created_at updated_at);
ok(defined $dbh->selectrow_array('SELECT email_verified_at FROM users WHERE id = ?', undef, $u->{id}),
	'email_verified_at set');
my $verified = $j;

$tx = $t->json_req(GET => '/api/user/profile', undef,
	{ Authorization => "Bearer $verified->{access_token}" });
is($tx->res->code, 200, 'the access token of verify-email works');
is($tx->res->json('/user/id'), $u->{id}, 'for this user');

error_is(verify($tok2, $PW2), 400, 'invalid_token', undef,
	'the link is single-use: 400 invalid_token the second time');
is(signin($email, $PW2)->res->code, 200, 'the new password signs in');
error_is(signin($email, $PW), 401, 'invalid_credentials', undef, 'the replaced password does not');

# --- the same email again, now verified --------------------------------------

my $hash_before = $dbh->selectrow_array('SELECT password_hash FROM users WHERE id = ?', undef, $u->{id});
$tx = signup(email => $email, password => 'an attacker chosen pass', first_name => 'Eve',
	last_name => 'Evil', language => 'it');
is($tx->res->code, 202, 'sign-up of a verified email: 202');
is($tx->res->body, $body_new, 'the same body, byte for byte');
$mails = outbox($email);
is(scalar @$mails, 3, 'a third mail');
is($mails->[2]{template}, 'already_registered', 'template already_registered');
ok(!defined $mails->[2]{token} && !$mails->[2]{has_link}, 'no token, no stored link');
is($mails->[2]{first_name}, 'Nora', 'addressed by the account name, not the new one');
is($mails->[2]{language}, 'fr', 'in the account language');
my $u3 = $dbh->selectrow_hashref('SELECT * FROM users WHERE id = ?', undef, $u->{id});
is($u3->{password_hash}, $hash_before, 'password unchanged');
is($u3->{first_name}, 'Nora', 'names unchanged');
is($u3->{language}, 'fr', 'language unchanged');
ok($u3->{email_verified}, 'still verified');
is(count('SELECT count(*) FROM email_tokens WHERE user_id = ? AND used_at IS NULL', undef, $u->{id}),
	0, 'no new link');
is(count('SELECT count(*) FROM users WHERE email = ?', undef, $email), 1, 'still one users row');
is(count('SELECT count(*) FROM credit_ledger WHERE user_id = ?', undef, $u->{id}), 1,
	'no second grant');
error_is(signin($email, 'an attacker chosen pass'), 401, 'invalid_credentials', undef,
	"the attacker's password does not sign in");
is(signin($email, $PW2)->res->code, 200, 'the owner still signs in');
$tx = $t->json_req(GET => '/api/user/profile', undef,
	{ Authorization => "Bearer $verified->{access_token}" });
is($tx->res->code, 200, "the owner's session is untouched");

# --- verify-email: expiry, purpose, malformed --------------------------------

{
	my ($tok, $b) = $t->signup(email => 'expiring@example.com');
	$dbh->do(q{UPDATE email_tokens SET expires_at = now() - interval '1 second'
		WHERE user_id = (SELECT id FROM users WHERE email = ?)}, undef, 'expiring@example.com');
	error_is(verify($tok), 400, 'invalid_token', undef, 'an expired link: 400 invalid_token');
	ok(!count('SELECT email_verified FROM users WHERE email = ?', undef, 'expiring@example.com'),
		'and the account stays pending');
	$dbh->do(q{UPDATE email_tokens SET expires_at = now() + interval '1 minute'
		WHERE user_id = (SELECT id FROM users WHERE email = ?)}, undef, 'expiring@example.com');
	is(verify($tok)->res->code, 200, 'the same link within its time verifies (control)');

	# A reset link is not a verification link.
	is(post('/api/auth/forgot-password', { email => 'expiring@example.com' })->res->code, 202,
		'forgot-password');
	my $reset = $t->mail_token('expiring@example.com', 'reset');
	ok($reset, 'a reset link');
	error_is(verify($reset), 400, 'invalid_token', undef,
		'a reset token at verify-email: 400 invalid_token');

	for my $bad ('abc', 'A' x 42, 'A' x 44, ('A' x 42) . '!', ('A' x 42) . '=',
		'A' x 43, "$tok\n")
	{
		error_is(verify($bad), 400, 'invalid_token', undef,
			"verify-email with token '" . substr($bad, 0, 12) . "...' (" . length($bad) . ')');
	}
	error_is(post('/api/auth/verify-email', { password => $PW }), 400, 'invalid_input', 'token',
		'verify-email without token: invalid_input token');
	error_is(post('/api/auth/verify-email', { token => $tok }), 400, 'invalid_input', 'password',
		'verify-email without password: invalid_input password');
	error_is(post('/api/auth/verify-email', { token => 42, password => $PW }), 400, 'invalid_input',
		'token', 'verify-email with a number');
	error_is(post('/api/auth/verify-email', { token => $tok, password => 42 }), 400, 'invalid_input',
		'password', 'verify-email with a numeric password');
	error_is(post('/api/auth/verify-email', { token => $tok, password => $PW, email => 'x@y.z' }),
		400, 'invalid_input', 'email', 'verify-email with an extra field');
}

# A banned pending account cannot verify; the link is not spent by trying.
{
	my ($tok) = $t->signup(email => 'banned.pending@example.com');
	$dbh->do('UPDATE users SET banned_at = now() WHERE email = ?', undef, 'banned.pending@example.com');
	error_is(verify($tok), 403, 'forbidden', undef, 'verify-email of a banned account: 403 forbidden');
	ok(!count('SELECT email_verified FROM users WHERE email = ?', undef, 'banned.pending@example.com'),
		'not verified');
	is(count('SELECT count(*) FROM refresh_tokens r JOIN users u ON u.id = r.user_id WHERE u.email = ?',
		undef, 'banned.pending@example.com'), 0, 'no session made');
	$dbh->do('UPDATE users SET banned_at = NULL WHERE email = ?', undef, 'banned.pending@example.com');
	is(verify($tok)->res->code, 200, 'unbanned, the same link works: it was not spent');
}

# --- the takeover of a pending account (api.md, verify-email) -----------------
# A stranger signs up again with someone's pending email: the password
# becomes the stranger's, and the owner's newest link then needs it.  The
# stranger never sees the link; the owner's own password does not verify
# it; the owner signs up again and gets the account back.
{
	my $victim = 'victim@example.com';
	is(signup(email => $victim, password => 'the owner password 1')->res->code, 202,
		'the owner signs up');
	is(signup(email => $victim, password => 'the stranger password')->res->code, 202,
		'a stranger signs up with the same pending email');
	my $link = $t->mail_token($victim, 'verify');
	error_is(verify($link, 'the owner password 1'), 401, 'invalid_credentials', undef,
		"the owner's password does not verify the newest link");
	ok(!count('SELECT email_verified FROM users WHERE email = ?', undef, $victim),
		'nobody verified the account');
	is(count('SELECT count(*) FROM refresh_tokens r JOIN users u ON u.id = r.user_id WHERE u.email = ?',
		undef, $victim), 0, 'no session for anyone');
	is(signup(email => $victim, password => 'the owner password 1')->res->code, 202,
		'the owner signs up again');
	my $own = $t->mail_token($victim, 'verify');
	error_is(verify($link, 'the stranger password'), 400, 'invalid_token', undef,
		"the link the stranger's sign-up sent is void now");
	error_is(verify($own, 'the stranger password'), 401, 'invalid_credentials', undef,
		"the stranger's password does not verify the owner's link");
	$tx = verify($own, 'the owner password 1');
	is($tx->res->code, 200, 'the owner verifies with their own password');
	error_is(signin($victim, 'the stranger password'), 401, 'invalid_credentials', undef,
		"the stranger's password signs nobody in");
}

# --- resend-verification ------------------------------------------------------

{
	my ($tok, $b) = $t->signup(email => 'resend@example.com');
	my $n0 = scalar @{ outbox('resend@example.com', 'verify') };
	$tx = post('/api/auth/resend-verification', { email => 'resend@example.com' });
	is($tx->res->code, 202, 'resend for a pending account: 202');
	is_deeply($tx->res->json, { status => 'verification_sent', email => 'resend@example.com' },
		'body {status, email}');
	my $m = outbox('resend@example.com', 'verify');
	is(scalar @$m, $n0 + 1, 'a new verify mail');
	my $new = token_of($m->[-1]{token});
	error_is(verify($tok), 400, 'invalid_token', undef, 'the earlier link is void after a resend');

	# Unknown and verified emails: the same answer, no mail.
	my $before = count('SELECT count(*) FROM email_outbox');
	$tx = post('/api/auth/resend-verification', { email => 'nobody@example.com' });
	is($tx->res->code, 202, 'resend for an unknown email: 202');
	is_deeply($tx->res->json, { status => 'verification_sent', email => 'nobody@example.com' },
		'the same body shape');
	$tx = post('/api/auth/resend-verification', { email => $email });
	is($tx->res->code, 202, 'resend for a verified account: 202');
	is(count('SELECT count(*) FROM email_outbox'), $before, 'neither queued a mail');

	is(verify($new)->res->code, 200, 'the resent link works');
	error_is(post('/api/auth/resend-verification', {}), 400, 'invalid_input', 'email',
		'resend without email');
	error_is(post('/api/auth/resend-verification', { email => 'not an email' }), 400,
		'invalid_input', 'email', 'resend with a malformed email');
}

# --- email normalisation ------------------------------------------------------

{
	$tx = signup(email => ' A@B.COM ', first_name => 'Ab');
	is($tx->res->code, 202, 'sign-up with " A@B.COM "');
	is($tx->res->json('/email'), 'a@b.com', 'answered as a@b.com');
	is(count('SELECT count(*) FROM users WHERE email = ?', undef, 'a@b.com'), 1,
		'stored trimmed and lower-cased');
	$tx = signup(email => 'a@B.cOm', first_name => 'Ab2');
	is($tx->res->code, 202, 'sign-up with a@B.cOm');
	is(count(q{SELECT count(*) FROM users WHERE lower(email) = 'a@b.com'}), 1,
		'the same account, not a second one');
	is(count('SELECT first_name FROM users WHERE email = ?', undef, 'a@b.com'), 'Ab2',
		'the second sign-up replaced the pending names');
	my $tok = $t->mail_token('a@b.com', 'verify');
	is(verify($tok)->res->code, 200, 'verified');
	$tx = signin(' A@B.COM ', $PW);
	is($tx->res->code, 200, '" A@B.COM " signs in');
	is($tx->res->json('/user/email'), 'a@b.com', 'as a@b.com');
	is(post('/api/auth/resend-verification', { email => "\tA\@b.com\n" })->res->json('/email'),
		'a@b.com', 'resend normalises too');

	# Letters beyond ASCII are folded as the database folds them (its
	# CHECK (email = lower(email))), not refused with a conflict.
	$tx = signup(email => "\x{c9}lodie\@Example.com", first_name => 'Elo');
	is($tx->res->code, 202, 'sign-up with a non-ASCII capital (E-acute lodie@Example.com): 202');
	is(count('SELECT count(*) FROM users WHERE email = ?', undef, "\x{e9}lodie\@example.com"), 1,
		'stored lower-cased, e-acute included');
	$tx = signup(email => "\x{e9}lodie\@example.com", first_name => 'Elo2');
	is($tx->res->code, 202, 'sign-up with the lower-case form: 202');
	is(count(q{SELECT count(*) FROM users WHERE email LIKE '%lodie@example.com'}), 1, 'the same account');
	my $etok = $t->mail_token("\x{e9}lodie\@example.com", 'verify');
	ok($etok, 'its verify mail is addressed to the lower-case form');
	is(verify($etok)->res->code, 200, 'verified');
	is(signin("\x{c9}LODIE\@EXAMPLE.COM", $PW)->res->code, 200, 'signs in in capitals, E-acute included');
}

# --- referral codes at sign-up ------------------------------------------------

{
	my $ref = $t->user(first_name => 'Rita');
	my $code = $ref->{user}{referral_code};
	$tx = signup(email => 'invited@example.com', first_name => 'Ivo', referral_code => $code);
	is($tx->res->code, 202, 'sign-up with a referral code: 202');
	my $inv = $dbh->selectrow_hashref('SELECT * FROM users WHERE email = ?', undef, 'invited@example.com');
	is($inv->{referred_by}, $ref->{id}, 'referred_by is the referrer');
	my $r = $dbh->selectall_arrayref('SELECT * FROM referrals WHERE referred_user_id = ?',
		{ Slice => {} }, $inv->{id});
	is(scalar @$r, 1, 'one referrals row');
	is($r->[0]{user_id}, $ref->{id}, 'owned by the referrer');
	is($r->[0]{status}, 'pending', 'pending');
	is($r->[0]{referred_first_name}, 'Ivo', 'with the invitee first name');
	is($r->[0]{credits_awarded}, 0, 'no credits awarded at sign-up');
	is($dbh->selectrow_array('SELECT credits FROM users WHERE id = ?', undef, $ref->{id}), 100,
		'the referrer gets nothing at sign-up');

	$tx = signup(email => 'invited2@example.com', first_name => 'Ida', referral_code => lc " $code ");
	is($tx->res->code, 202, 'a lower-case, padded code is accepted');
	is(count('SELECT referred_by FROM users WHERE email = ?', undef, 'invited2@example.com'),
		$ref->{id}, 'and refers');

	$tx = $t->json_req(GET => '/api/user/profile', undef, $t->auth($ref));
	is($tx->res->json('/user/referrals_count'), 2, 'referrals_count counts them');

	my %before = map { $_ => count("SELECT count(*) FROM $_") }
		qw(users email_outbox email_tokens credit_ledger referrals);
	$tx = signup(email => 'badref@example.com', referral_code => 'ZZZZZZZZ');
	error_is($tx, 400, 'invalid_referral_code', 'referral_code', 'an unknown code: 400 invalid_referral_code');
	is(count("SELECT count(*) FROM $_"), $before{$_}, "nothing added to $_")
		for sort keys %before;
	is(count('SELECT count(*) FROM users WHERE email = ?', undef, 'badref@example.com'), 0,
		'no users row');
	error_is(signup(email => 'badref@example.com', referral_code => 'x' x 33), 400, 'invalid_input',
		'referral_code', 'a 33-character code: invalid_input');

	# A pending account re-signing up with a code keeps its first answer.
	$tx = signup(email => 'plain@example.com', referral_code => undef);
	is($tx->res->code, 202, 'referral_code null is no code');
	$tx = signup(email => 'plain2@example.com', referral_code => '');
	is($tx->res->code, 202, 'referral_code "" is no code');
	ok(!defined count('SELECT referred_by FROM users WHERE email = ?', undef, 'plain2@example.com'),
		'not referred');

	# A banned referrer's code is not valid.
	$dbh->do('UPDATE users SET banned_at = now() WHERE id = ?', undef, $ref->{id});
	error_is(signup(email => 'late@example.com', referral_code => $code), 400, 'invalid_referral_code',
		'referral_code', "a banned referrer's code: invalid_referral_code");
	is(count('SELECT count(*) FROM users WHERE email = ?', undef, 'late@example.com'), 0,
		'no users row');
	$dbh->do('UPDATE users SET banned_at = NULL WHERE id = ?', undef, $ref->{id});
}

# --- input checks of /signup --------------------------------------------------

{
	my %ok = (email => 'shape@example.com', password => $PW, first_name => 'S', last_name => 'T');
	my @cases = (
		[ 'no email', { %ok, email => undef }, 'email' ],
		[ 'malformed email', { %ok, email => 'not-an-email' }, 'email' ],
		[ 'email without domain dot', { %ok, email => 'a@localhost' }, 'email' ],
		[ 'email as a number', { %ok, email => 42 }, 'email' ],
		[ 'email of 255 characters', { %ok, email => ('a' x 243) . '@example.com' }, 'email' ],
		[ 'no password', { %ok, password => undef }, 'password' ],
		[ 'password null', { %ok, password => \undef }, 'password' ],
		[ 'no first_name', { %ok, first_name => undef }, 'first_name' ],
		[ 'empty first_name', { %ok, first_name => '' }, 'first_name' ],
		[ 'blank first_name', { %ok, first_name => '   ' }, 'first_name' ],
		[ 'first_name with a newline', { %ok, first_name => "A\nB" }, 'first_name' ],
		[ 'first_name of 101 characters', { %ok, first_name => 'x' x 101 }, 'first_name' ],
		[ 'no last_name', { %ok, last_name => undef }, 'last_name' ],
		[ 'last_name with a tab', { %ok, last_name => "A\tB" }, 'last_name' ],
		[ 'language "english"', { %ok, language => 'english' }, 'language' ],
		[ 'language "EN"', { %ok, language => 'EN' }, 'language' ],
		[ 'language "pt-br"', { %ok, language => 'pt-br' }, 'language' ],
		[ 'language "pt_BR"', { %ok, language => 'pt_BR' }, 'language' ],
		[ 'unknown field credits', { %ok, credits => 1000000 }, 'credits' ],
		[ 'unknown field role', { %ok, role => 'admin' }, 'role' ],
		[ 'unknown field email_verified', { %ok, email_verified => \1 }, 'email_verified' ],
	);
	for my $c (@cases) {
		my ($name, $body, $field) = @$c;
		my %b = %$body;
		for (keys %b) {
			delete $b{$_} unless defined $b{$_};
			$b{$_} = undef if ref $b{$_} eq 'SCALAR' && !defined ${ $b{$_} };
		}
		error_is(post('/api/auth/signup', \%b), 400, 'invalid_input', $field, "signup: $name");
	}
	$tx = signup(email => 'lang@example.com', language => 'pt-BR');
	is($tx->res->code, 202, 'language pt-BR is fine');
	$tx = signup(email => 'nolast@example.com', last_name => '');
	is($tx->res->code, 202, 'an empty last_name is fine');

	my $ct = { 'Content-Type' => 'application/json' };
	error_is(post('/api/auth/signup', '{"email":', $ct), 400, 'invalid_json', undef, 'truncated JSON');
	error_is(post('/api/auth/signup', '[]', $ct), 400, 'invalid_input', undef, 'a JSON array');
	error_is(post('/api/auth/signup', '{"email":"a@b.co","email":"c@d.co"}', $ct), 400, 'invalid_input',
		'email', 'a field given twice');
	error_is($t->json_req(POST => '/api/auth/signup', 'email=a@b.co&password=x',
		{ 'Content-Type' => 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type',
		undef, 'a form body: 415');
	error_is(post('/api/auth/signup', { %ok, first_name => 'x' x 70000 }), 413, 'payload_too_large',
		undef, 'a 70 KB body: 413');
	$tx = $t->json_req(GET => '/api/auth/signup');
	error_is($tx, 405, 'method_not_allowed', undef, 'GET /api/auth/signup: 405');
	is($tx->res->headers->header('Allow'), 'POST', 'Allow: POST');
	is(count('SELECT count(*) FROM users WHERE email = ?', undef, 'shape@example.com'), 0,
		'no bad sign-up created an account');
}

$t->done;
