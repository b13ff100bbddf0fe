#!/usr/bin/perl
# Attacks that the other files do not make:
#   - JWT header members that name other keys or demand extensions
#     (kid, jku, jwk, x5u, x5c, crit) on tokens otherwise valid: 401;
#   - an access token in the query string (?access_token=) is ignored;
#   - log injection: CR/LF, quotes, braces, backslashes, control and
#     non-UTF-8 bytes in everything a request can put in a log line
#     leave each line of the app's log one parseable JSON object;
#   - self-referral: a sign-up under another alias of the referrer's own
#     mailbox (+tag, case, gmail dots and googlemail) with the referrer's
#     code records no referral and earns nothing once active;
#   - the server refuses to start with a short (or empty, or no)
#     JWT_SECRET: the process exits non-zero with a line naming it, and
#     never prints the value.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is);
use Digest::SHA qw(hmac_sha256);
use IO::Socket::INET;
use IO::Socket::UNIX;
use MIME::Base64 qw(encode_base64);
use Mojo::JSON qw(decode_json encode_json);

my $t = Miky::Test->new(env => { MIKY_STANDIN_DELAY_MS => 0 });
my $dbh = $t->dbh;
my $u = $t->user(first_name => 'Ann');

sub b64url {
	(my $s = encode_base64(shift, '')) =~ tr{+/}{-_};
	$s =~ s/=+$//;
	return $s;
}
sub mint {
	my ($hdr, $claims) = @_;
	my $h = b64url(ref $hdr ? encode_json($hdr) : $hdr);
	my $p = b64url(encode_json($claims));
	return "$h.$p." . b64url(hmac_sha256("$h.$p", $Miky::Test::JWT_SECRET));
}
sub claims { { iss => 'miky', sub => $u->{id}, iat => time + 1, exp => time + 901, @_ } }
sub profile { $t->json_req(GET => '/api/user/profile' . ($_[1] // ''), undef,
	defined $_[0] ? { Authorization => "Bearer $_[0]" } : {}) }

# --- JWT header members ---------------------------------------------------------

is(profile(mint({ alg => 'HS256', typ => 'JWT' }, claims()))->res->code, 200,
	'a token minted with the secret and a plain header works (control)');
for my $case (
	[ kid => { kid => '1' } ],
	[ 'kid with a path' => { kid => '../../../../../../dev/null' } ],
	[ 'kid with SQL' => { kid => "x' UNION SELECT 'secret" } ],
	[ jku => { jku => 'https://attacker.invalid/.well-known/jwks.json' } ],
	[ jwk => { jwk => { kty => 'oct', k => b64url('attacker key of 32 bytes or more!!') } } ],
	[ x5u => { x5u => 'https://attacker.invalid/cert.pem' } ],
	[ x5c => { x5c => ['MIIBszCCAVmgAwIBAgIJAL'] } ],
	[ crit => { crit => ['exp'] } ],
	[ 'crit empty' => { crit => [] } ],
	[ 'typ not JWT' => { typ => 'at+jwt' } ],
) {
	my ($name, $extra) = @$case;
	error_is(profile(mint({ alg => 'HS256', typ => 'JWT', %$extra }, claims())), 401, 'unauthorized', undef,
		"header with $name, otherwise valid: 401");
}
error_is(profile(mint('{"alg":"HS256","alg":"none"}', claims())), 401, 'unauthorized', undef,
	'a header with alg twice: 401');

# --- ?access_token= ---------------------------------------------------------------

error_is(profile(undef, "?access_token=$u->{access_token}"), 401, 'unauthorized', undef,
	'a valid token in ?access_token= alone: 401, ignored');
error_is($t->json_req(GET => "/api/user/export?access_token=$u->{access_token}"), 401, 'unauthorized', undef,
	'nor on another route');
is(profile($u->{access_token}, '?access_token=garbage')->res->code, 200,
	'a valid header with a bogus ?access_token=: 200, the query ignored');
error_is($t->json_req(POST => "/api/conversations?access_token=$u->{access_token}", { persona => 'general' }),
	401, 'unauthorized', undef, 'a POST with the token in the query: 401');

# --- log injection ---------------------------------------------------------------------

# Text that would forge a line or a field if written raw.
my $EVIL = "\"}\r\n{\"ts\":\"x\",\"level\":\"crit\",\"msg\":\"forged\"}\\u0000\t\x01\x7f";
my $EVIL_URL = join '', map { sprintf '%%%02X', ord } split //, $EVIL;
sub raw_request {
	my $req = shift;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port, Proto => 'tcp')
		or die "connect: $!";
	print $s $req;
	my $got = '';
	while (sysread($s, my $chunk, 65536)) { $got .= $chunk }
	close $s;
	return $got;
}
my $mark = length $t->log;
my $n_requests = 0;
# Raw bytes in the path: quotes, backslashes, braces, bytes that are not
# UTF-8.  nginx passes the URI undecoded.
for my $path ("/api/no\"pe\\{}\xff\xfe\xc0\xaf", "/api/x\"},{\"level\":\"crit\"}", "/api/$EVIL_URL",
		"/api/conversations/$EVIL_URL", "/api/conversations/\"\xff") {
	my $res = raw_request("GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
		. "User-Agent: \"}\xff\\\x01{\r\nX-Request-Id: \"},{\"level\":\"crit\r\n"
		. "X-Forwarded-For: \"}\r\nReferer: \\\"\r\n\r\n");
	my ($code) = $res =~ m{^HTTP/1\.1 (\d+)};
	ok(defined $code && $code =~ /^4/, 'a raw path with quotes and bad bytes: ' . ($code // 'no answer'));
	$n_requests++ if ($code // 0) == 404;
}
# The same in the fields a client controls: query, headers, JSON bodies
# (emails, names, passwords, tokens), on routes that log and that fail.
my %h = ('User-Agent' => $EVIL =~ s/[\r\n]//gr, 'X-Request-Id' => 'x"}', 'Accept' => $EVIL =~ s/[\r\n]//gr);
for my $r (
	[ POST => '/api/auth/signin', { email => $EVIL, password => $EVIL } ],
	[ POST => '/api/auth/signin', { email => 'nobody@example.com', password => $EVIL } ],
	[ POST => '/api/auth/signin', { email => $u->{email}, password => $EVIL } ],
	[ POST => '/api/auth/signup', { email => "a$EVIL\@example.com", password => $EVIL, first_name => $EVIL } ],
	[ POST => '/api/auth/refresh-token', { refresh_token => $EVIL } ],
	[ POST => '/api/auth/verify-email', { token => $EVIL, password => $EVIL } ],
	[ POST => '/api/auth/forgot-password', { email => $EVIL } ],
	[ POST => '/api/auth/signin', "{\"email\":\"$EVIL" ],
	[ POST => "/api/auth/signin?$EVIL_URL=$EVIL_URL", { email => $EVIL } ],
	[ GET => "/api/conversations?q=$EVIL_URL&cursor=$EVIL_URL", undef, 1 ],
	[ GET => "/api/conversations/$EVIL_URL", undef, 1 ],
	[ POST => '/api/conversations', { persona => $EVIL, title => $EVIL }, 1 ],
	[ POST => '/api/chat/send', { content => $EVIL }, 1 ],
	[ PUT => '/api/user/profile', { first_name => $EVIL, language => $EVIL }, 1 ],
	[ POST => '/api/user/change-password', { current_password => $EVIL, new_password => $EVIL }, 1 ],
	[ GET => '/api/user/profile', undef, 0, { Authorization => "Bearer $EVIL" =~ s/[\r\n]//gr } ],
) {
	my ($method, $path, $body, $auth, $extra) = @$r;
	my $tx = $t->json_req($method => $path, $body, { %h, ($auth ? %{ $t->auth($u) } : ()), %{ $extra // {} } });
	ok($tx->res->code, "$method $path: answered " . ($tx->res->code // 'nothing'));
	$n_requests++;
}
my @lines = split /\n/, substr($t->log, $mark);
my (@bad, $requests, $forged);
for my $line (@lines) {
	my $o = eval { decode_json($line) };
	if (ref $o ne 'HASH' || !defined $o->{ts} || !defined $o->{level} || !defined $o->{msg}) {
		push @bad, $line;
		next;
	}
	$requests++ if $o->{msg} eq 'request';
	$forged++ if $o->{level} eq 'crit' || $o->{ts} eq 'x' || $o->{msg} eq 'forged';
}
is_deeply(\@bad, [], scalar(@lines) . ' log lines since, each one JSON object with ts, level and msg')
	or diag explain \@bad;
ok(!$forged, 'no forged level, time or message');
cmp_ok($requests // 0, '>=', $n_requests, "a request line for each of the $n_requests requests");
ok(grep({ my $o = decode_json($_); ($o->{path} // '') =~ /\\\{\}\x{fffd}/ } @lines),
	'the raw path is in its line, quotes and backslash as data, bad bytes as U+FFFD');

# --- self-referral --------------------------------------------------------------------

{
	my $ref = $t->user(email => 'alice.smith@gmail.com', first_name => 'Alice');
	my $carol = $t->user(email => 'carol@example.com', first_name => 'Carol');
	my $code_a = $ref->{user}{referral_code};
	my $code_c = $carol->{user}{referral_code};
	my @self = (
		[ 'alice.smith+free@gmail.com', $code_a ],
		[ 'Alice.Smith+x@Gmail.COM', $code_a ],
		[ 'alicesmith@gmail.com', $code_a ],
		[ 'a.l.i.c.e.s.m.i.t.h@googlemail.com', $code_a ],
		[ 'ALICE.SMITH+1+2@googlemail.com', $code_a ],
		[ 'carol+more@example.com', $code_c ],
		[ 'CAROL+x@EXAMPLE.com', $code_c ],
	);
	for my $s (@self) {
		my $v = $t->user(email => $s->[0], referral_code => $s->[1], first_name => 'Alias');
		ok(!$dbh->selectrow_array('SELECT referred_by FROM users WHERE id = ?', undef, $v->{id}),
			"$s->[0] with the code of its own mailbox: not referred");
		# Active: a chat turn, which would activate a referral.
		is($t->json_req(POST => '/api/chat/send', { content => 'hi' }, $t->auth($v))->res->code, 201,
			"$s->[0]: a chat turn");
	}
	is($dbh->selectrow_array('SELECT count(*) FROM referrals WHERE user_id IN (?, ?)', undef, $ref->{id}, $carol->{id}),
		0, 'no referral rows for the aliases');
	is_deeply($dbh->selectcol_arrayref(q{SELECT reason FROM credit_ledger WHERE user_id IN (?, ?)
		ORDER BY id}, undef, $ref->{id}, $carol->{id}), [ 'signup', 'signup' ], 'no rewards: the ledgers hold the sign-ups only');
	is($t->json_req(GET => '/api/user/profile', undef, $t->auth($ref))->res->json('/user/referrals_count'), 0,
		'referrals_count 0');
	# Controls: other mailboxes with the same codes are referred.
	for my $o ([ 'bob@example.com', $code_a ], [ 'c.arol@example.com', $code_c ], [ 'alice.smith@yahoo.com', $code_a ]) {
		my $v = $t->user(email => $o->[0], referral_code => $o->[1], first_name => 'Other');
		ok($dbh->selectrow_array('SELECT referred_by FROM users WHERE id = ?', undef, $v->{id}),
			"$o->[0] (another mailbox): referred (control)");
		is($t->json_req(POST => '/api/chat/send', { content => 'hi' }, $t->auth($v))->res->code, 201,
			"$o->[0]: a chat turn");
	}
	is($dbh->selectrow_array(q{SELECT count(*) FROM credit_ledger WHERE user_id = ? AND reason = 'referral'},
		undef, $ref->{id}), 2, 'Alice is rewarded for her two real invitees only');
}

# --- a short JWT_SECRET stops the process ------------------------------------------------

$t->stop_app;
for my $case (
	[ 'a 31-byte secret', 'S3CRET-VALUE-' . ('x' x 18), qr/^JWT_SECRET: must be 32 to 4096 bytes long \(is 31\)$/m ],
	[ 'a 10-byte secret', 'S3CRET-VAL', qr/^JWT_SECRET: must be 32 to 4096 bytes long \(is 10\)$/m ],
	[ 'an empty secret', '', qr/^JWT_SECRET: not set \(at least 32 bytes/m ],
	[ 'no secret', undef, qr/^JWT_SECRET: not set \(at least 32 bytes/m ],
) {
	my ($name, $secret, $want) = @$case;
	my $mark2 = length $t->log;
	$t->start_app(env => { JWT_SECRET => $secret }, wait => 0);
	my $st = $t->wait_app_exit(15);
	ok(defined $st && $st != 0, "$name: miky serve exits non-zero") or diag "status " . ($st // 'still running');
	my $out = substr($t->log, $mark2);
	like($out, $want, "$name: one line names JWT_SECRET and what is wrong");
	like($out, qr/^miky: 1 configuration problem; not starting$/m, "$name: and says it is not starting");
	unlike($out, qr/S3CRET/, "$name: the value is never printed") if defined $secret && length $secret;
	is(scalar(grep { length } split /\n/, $out), 2, "$name: two lines, nothing else") or diag $out;
	ok(!-S $t->dir . '/miky.sock' || !IO::Socket::UNIX->can('new')
		|| !IO::Socket::UNIX->new(Peer => $t->dir . '/miky.sock'), "$name: nothing serves");
	my ($rc, $check) = $t->run_miky({ JWT_SECRET => $secret }, 'check-config');
	isnt($rc, 0, "$name: check-config fails too");
	like($check, $want, "$name: check-config says the same");
}
$t->start_app(env => { JWT_SECRET => $Miky::Test::JWT_SECRET });
is(profile($u->{access_token})->res->code, 200, 'with the right secret again: serves, old tokens valid');

$t->done;
