#!/usr/bin/perl
# A path that differs from a route only by slashes is no route: it cannot
# slip past the nginx location that guards the route (the metrics, the
# streaming chat locations, the webhook's body cap).  The app answers
# metrics to loopback addresses only, whatever location let the request
# through.  And no query string -- a token that reached a URL by mistake --
# is kept in nginx's access log, the Referer's included.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is);
use Miky::FCGI;

my $t = Miky::Test->new;

# --- slashes ---------------------------------------------------------------------

is($t->json_req(GET => '/api/metrics')->res->code, 200, 'GET /api/metrics from loopback: 200');
for my $path ('/api/metrics/', '/api/metrics//', '//api/metrics', '/api//metrics', '/api/metrics%2F',
	'/api/chat/send/', '/api/chat/voice-to-text/', '/api/payments/webhook/', '/api/health/',
	'/api/user/profile/', '/api/conversations/')
{
	my $tx = $t->json_req(GET => $path);
	error_is($tx, 404, 'not_found', undef, "GET $path: 404");
	unlike($tx->res->body, qr/miky_requests_total/, "GET $path: no metrics");
}
error_is($t->json_req(POST => '/api/chat/send/', { content => 'x' }), 404, 'not_found', undef,
	'POST /api/chat/send/: 404 (not a turn outside its location)');

# --- metrics only for loopback, at the app -----------------------------------------

my $sock = $t->dir . '/miky.sock';
for my $c ([ '127.0.0.1', 200 ], [ '127.1.2.3', 200 ], [ '::1', 200 ], [ '::ffff:127.0.0.1', 200 ],
	[ '203.0.113.5', 404 ], [ '10.0.0.1', 404 ], [ '::ffff:10.0.0.1', 404 ], [ '2001:db8::1', 404 ],
	[ '', 404 ], [ 'not an address', 404 ])
{
	my ($status, $h, $body) = Miky::FCGI::request($sock, { REQUEST_URI => '/api/metrics',
		REMOTE_ADDR => $c->[0] });
	is($status, $c->[1], "metrics straight to the app from REMOTE_ADDR '$c->[0]': $c->[1]");
	if ($c->[1] == 404) {
		unlike($body, qr/miky_/, "  and no metric in the answer");
	} else {
		like($body, qr/^miky_/m, "  the metrics");
	}
}
my ($status) = Miky::FCGI::request($sock, { REQUEST_URI => '/api/metrics' });
is($status, 404, 'metrics straight to the app with no REMOTE_ADDR: 404');

# --- no query string in the access log ------------------------------------------------

my $secret = 'Q' x 20 . 'secretquery';
my $ref = 'R' x 20 . 'secretreferer';
for my $path ("/reset-password?token=$secret", "/verify-email?token=$secret",
	"/api/user/profile?access_token=$secret")
{
	$t->ua->get($t->url($path) => { Referer => $t->base . "/reset-password?token=$ref" });
}
my ($log) = grep { -f } map { $t->dir . "/$_" } qw(access.log nginx/access.log);
ok($log, 'the access log exists');
my $text = do { local (@ARGV, $/) = ($log); <> } // '';
like($text, qr{"GET /reset-password HTTP/1\.1"}, 'the page is logged, by its path');
like($text, qr{/reset-password" "}, 'the Referer is logged without its query');
unlike($text, qr/secretquery/, 'no query string in the access log');
unlike($text, qr/secretreferer/, "no Referer's query string either");

$t->done;
