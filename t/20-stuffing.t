#!/usr/bin/perl
# Credential stuffing from one address: 30 sign-ins with 30 distinct
# emails (some of real accounts, most not) in well under a minute.  The
# per-address limit (MIKY_ADDRESS_FAILS, default 20 failures in ten
# minutes) answers 429 with Retry-After from the 21st on, whatever
# X-Forwarded-For, X-Real-IP or Forwarded a request carries (nginx
# passes its own view of the peer, never a header), and the right
# password from that address is refused meanwhile.  Successful sign-ins
# do not count.  This file runs the app with the default limit: the
# harness raises it for every other file, whose requests all come from
# 127.0.0.1.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is);

my $t = Miky::Test->new(env => { MIKY_ADDRESS_FAILS => undef });
my $dbh = $t->dbh;

# Three real accounts; signing up and verifying are not sign-ins.
my @real = map { $t->user(first_name => "Real$_") } 1 .. 3;

# Right passwords do not count: ten successful sign-ins first.
for my $i (1 .. 10) {
	my $u = $real[$i % 3];
	is($t->json_req(POST => '/api/auth/signin', { email => $u->{email}, password => $u->{password} })->res->code,
		200, "a right password ($i): 200, not counted");
}

my @codes;
my $forged = 0;
for my $i (1 .. 30) {
	my $email = $i <= 3 ? $real[$i - 1]{email} : "victim$i\@example.com";
	# Every other request claims to come from elsewhere.
	my %h = $i % 2 ? () : ('X-Forwarded-For' => "203.0.113.$i", 'X-Real-IP' => "198.51.100.$i",
		'Forwarded' => "for=192.0.2.$i", 'Client-IP' => "192.0.2.$i", 'True-Client-IP' => "192.0.2.$i");
	$forged++ if %h;
	my $tx = $t->json_req(POST => '/api/auth/signin', { email => $email, password => 'Password123!' }, \%h);
	push @codes, $tx->res->code;
	if ($i == 20) {
		error_is($tx, 401, 'invalid_credentials', undef, 'the 20th failure: still 401');
	} elsif ($i == 21) {
		error_is($tx, 429, 'rate_limited', undef, 'the 21st: 429 rate_limited');
		like($tx->res->headers->header('Retry-After') // '', qr/^\d+$/, 'with Retry-After');
		cmp_ok($tx->res->headers->header('Retry-After') // 0, '<=', 600, 'within the ten-minute window');
	}
}
is_deeply(\@codes, [ (401) x 20, (429) x 10 ], "30 emails from one address: 20 × 401 then 10 × 429 ($forged with forged forwarding headers)")
	or diag "@codes";

# Meanwhile the right password from this address is refused too.
{
	my $tx = $t->json_req(POST => '/api/auth/signin', { email => $real[0]{email}, password => $real[0]{password} },
		{ 'X-Forwarded-For' => '203.0.113.99' });
	error_is($tx, 429, 'rate_limited', undef, 'the right password from the blocked address: 429');
}
is($dbh->selectrow_array(q{SELECT sum(count) FROM rate_limits WHERE key LIKE 'signin_addr:%'}), 20,
	'one counter, for 127.0.0.1, at the limit: refused attempts are not counted');
is_deeply($dbh->selectcol_arrayref(q{SELECT DISTINCT key FROM rate_limits WHERE key LIKE 'signin_addr:%'}),
	['signin_addr:127.0.0.1'], 'keyed on the peer address nginx saw, never a header');

# Accounts unaffected from elsewhere: the per-account counters took one
# failure each, far from their own limit.
is($dbh->selectrow_array(q{SELECT max(count) FROM rate_limits WHERE key LIKE 'signin_fail:%'}), 1,
	'each account (or unknown email) counted one failure');
# A new window (the counter moved back by ten minutes) lets it in again.
$dbh->do(q{UPDATE rate_limits SET window_start = window_start - interval '10 minutes'
	WHERE key LIKE 'signin_addr:%'});
is($t->json_req(POST => '/api/auth/signin', { email => $real[0]{email}, password => $real[0]{password} })->res->code,
	200, 'after the window: the right password works again');

$t->done;
