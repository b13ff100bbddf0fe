#!/usr/bin/perl
# Voice transcription's limits:
#   - a caller short of credits is answered 402 before a byte of the
#     audio is read: over the FastCGI socket itself, a request announcing
#     20 MiB and sending none of it gets its 402 at once (a control
#     request with credits and its body is served by the same client);
#   - at most voice_max_concurrent (2) transcriptions per user: the
#     third is 429 with Retry-After, and charges nothing;
#   - at most 4 per worker process: one more, from anyone, is 503 with
#     Retry-After, and charges nothing;
#   - once the running ones end, the same callers are served again.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is);
use Miky::FakeOpenAI qw(set_settings);
use IO::Socket::INET;
use Miky::FCGI;

my $fake = Miky::FakeOpenAI->new;
# One worker: its 4 places are the whole app's.
my $t = Miky::Test->new(app => 0, env => $fake->env, workers => 1, threads => 12);
my $dbh = $t->dbh;
set_settings($t, ai_total_timeout_ms => 5000, chat_turns_per_minute => 1000);
$t->start_app;
my $URL = '/api/chat/voice-to-text';
sub credits { $dbh->selectrow_array('SELECT credits FROM users WHERE id = ?', undef, $_[0]{id}) }

# --- 402 before the body, over the FastCGI socket ----------------------------------

my $poor = $t->user(first_name => 'Poor');
$dbh->do(q{WITH u AS (UPDATE users SET credits = 2 WHERE id = ? RETURNING id)
	INSERT INTO credit_ledger (user_id, delta, balance_after, reason, ref) SELECT id, -98, 2, 'admin', 'test' FROM u},
	undef, $poor->{id});
my $rich = $t->user(first_name => 'Rich');
my %base = (REQUEST_METHOD => 'POST', REQUEST_URI => $URL, CONTENT_TYPE => 'audio/webm',
	REMOTE_ADDR => '127.0.0.1');
my $SOCK = $t->dir . '/miky.sock';
{
	my ($status, $h, $body) = eval { Miky::FCGI::request($SOCK, { %base, CONTENT_LENGTH => 20 * 1024 * 1024,
		HTTP_AUTHORIZATION => "Bearer $poor->{access_token}" }, undef, timeout => 10) };
	is($status, 402, 'short of credits, 20 MiB announced and none sent: 402, the request ended')
		or diag $@ || $body;
	like($body // '', qr/"insufficient_credits"/, 'insufficient_credits');
	is(credits($poor), 2, 'nothing charged');

	# Control: the same client, a caller with credits and the body.
	my $audio = "v-fcgi\r\n" . ('x' x 5000);
	($status, $h, $body) = Miky::FCGI::request($SOCK, { %base,
		HTTP_AUTHORIZATION => "Bearer $rich->{access_token}" }, $audio, timeout => 20);
	is($status, 200, 'control: with credits and the body sent, 200 over the same client') or diag $body;
	like($body, qr/Fake transcript of 5008 bytes/, 'transcribed');

	# Through nginx too (which takes the whole body first).
	my $tx = $t->json_req(POST => $URL, 'v-poor' . ('y' x 1_000_000), { %{ $t->auth($poor) }, 'Content-Type' => 'audio/webm' });
	error_is($tx, 402, 'insufficient_credits', undef, 'through nginx: 402');
	is(scalar $fake->requests(tag => 'v-poor'), 0, 'the provider was not called');
}

# --- the caps: per user, then per worker ----------------------------------------------

# A request written whole on its own connection, its answer read later.
sub send_raw {
	my ($u, $tag) = @_;
	my $body = "$tag [[hang]]" . ('z' x 2000);
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port, Proto => 'tcp') or die "connect: $!";
	print $s "POST $URL HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer $u->{access_token}\r\n"
		. "Content-Type: audio/webm\r\nContent-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
	return $s;
}
sub read_raw {
	my $s = shift;
	my $got = '';
	while (sysread($s, my $c, 65536)) { $got .= $c }
	return $got;
}

my @u = map { $t->user(first_name => "Cap$_") } 1 .. 3;
my @hang = (send_raw($u[0], 'hang-a1'), send_raw($u[0], 'hang-a2'));
is(scalar $fake->wait_requests(tag => 'hang-a', n => 2, timeout => 10), 2, 'two transcriptions of one user running');
{
	my $tx = $t->json_req(POST => $URL, 'v-third' . ('q' x 1000), { %{ $t->auth($u[0]) }, 'Content-Type' => 'audio/webm' });
	error_is($tx, 429, 'rate_limited', undef, 'a third of the same user: 429');
	like($tx->res->headers->header('Retry-After') // '', qr/^\d+$/, 'with Retry-After');
	is(credits($u[0]), 100 - 2 * 3, 'only the two running are held');
	is(scalar $fake->requests(tag => 'v-third'), 0, 'the provider was not called for it');
}
push @hang, send_raw($u[1], 'hang-b1'), send_raw($u[1], 'hang-b2');
is(scalar $fake->wait_requests(tag => 'hang-', n => 4, timeout => 10), 4, 'four transcriptions running in the worker');
{
	my $tx = $t->json_req(POST => $URL, 'v-fifth' . ('q' x 1000), { %{ $t->auth($u[2]) }, 'Content-Type' => 'audio/webm' });
	error_is($tx, 503, 'unavailable', undef, 'a fifth, from a third user: 503');
	is($tx->res->headers->header('Retry-After'), 5, 'with Retry-After: 5');
	is(credits($u[2]), 100, 'nothing charged');
	is(scalar $fake->requests(tag => 'v-fifth'), 0, 'the provider was not called for it');
}
# The running ones end (the model's total timeout) and are refunded.
for my $s (@hang) {
	like(read_raw($s), qr{^HTTP/1\.1 504}, 'a hanging transcription ends 504 at the total timeout');
}
is(credits($_), 100, 'refunded') for @u[0, 1];
for my $u (@u) {
	my $tx = $t->json_req(POST => $URL, 'v-after' . ('r' x 1000), { %{ $t->auth($u) }, 'Content-Type' => 'audio/webm' });
	is($tx->res->code, 200, "$u->{first_name}: served again once they ended") or diag $tx->res->body;
}

$t->done;
