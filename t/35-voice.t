#!/usr/bin/perl
# POST /api/chat/voice-to-text: the audio as the raw body or as the
# `file` part of multipart/form-data reaches the model provider's
# /audio/transcriptions with its bytes intact; the price is taken and
# refunded when the provider fails; content types, empty and oversized
# bodies, ?language; the labelled stand-in without a key.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_code_is);
use Miky::FakeOpenAI qw(set_settings);
use Digest::SHA qw(sha256_hex);

my $fake = Miky::FakeOpenAI->new;
my $t = Miky::Test->new(app => 0, env => $fake->env);
my $dbh = $t->dbh;
set_settings($t, ai_total_timeout_ms => 2000, chat_turns_per_minute => 1000);
$t->start_app;
my $price = $dbh->selectrow_array(q{SELECT (value #>> '{}')::int FROM admin_settings WHERE key = 'voice_credits_per_request'});
is($price, 3, 'voice costs 3 credits (seed)');

my $u = $t->user(first_name => 'Vox');
my $U = $t->auth($u);
my $URL = '/api/chat/voice-to-text';
sub credits { $dbh->selectrow_array('SELECT credits FROM users WHERE id = ?', undef, $_[0]{id}) }
sub ledger {
	return $dbh->selectall_arrayref(q{SELECT delta, reason FROM credit_ledger WHERE user_id = ? AND reason <> 'signup' ORDER BY id},
		{ Slice => {} }, $_[0]{id});
}
# Audio-like bytes: every byte value, CRLFs, NULs, and lines that look
# like multipart delimiters.
my $NOISE = pack('N*', map { $_ * 2654435761 % 4294967296 } 1 .. 16384);    # 64 KiB
sub audio {
	my ($tag, $n) = @_;
	my $s = "$tag\r\n--boundary\r\n\r\n\0" . join('', map { chr } 0 .. 255) . "\r\n--";
	$s .= $NOISE x (1 + int(($n - length $s) / length $NOISE)) if length $s < $n;
	return substr($s, 0, $n);
}

# --- raw body ---------------------------------------------------------------------------

my $bytes = audio('v-raw', 200_000);
my $tx = $t->json_req(POST => $URL, $bytes, { %$U, 'Content-Type' => 'audio/webm' });
is($tx->res->code, 200, 'raw audio/webm: 200') or diag $tx->res->body;
my $j = $tx->res->json;
is_deeply([ sort keys %$j ], [ sort qw(text credits_consumed credits_remaining) ], 'shape {text, credits_consumed, credits_remaining}');
is($j->{text}, 'Fake transcript of 200000 bytes (auto)', 'the provider\'s text');
is($j->{credits_consumed}, $price, 'credits_consumed');
is($j->{credits_remaining}, 100 - $price, 'credits_remaining');
is(credits($u), 100 - $price, 'balance reduced by the price');
is_deeply(ledger($u), [ { delta => -$price, reason => 'voice' } ], 'one ledger row: voice');
my ($f) = $fake->requests(tag => 'v-raw');
ok($f, 'the provider was called');
is($f->{path}, '/v1/audio/transcriptions', 'POST /v1/audio/transcriptions');
is($f->{headers}{authorization}, 'Bearer ' . $fake->key, 'with the key');
like($f->{headers}{'content-type'}, qr{^multipart/form-data; boundary=}, 'as multipart/form-data');
is($f->{form}{file}{size}, length $bytes, 'the whole file');
is($f->{form}{file}{sha256}, sha256_hex($bytes), 'its bytes intact');
is($f->{form}{file}{content_type}, 'audio/webm', 'its type');
like($f->{form}{file}{filename}, qr/\.webm$/, 'a file name with the extension');
is($f->{form}{model}, 'whisper-1', 'model whisper-1');
is($f->{form}{language}, undef, 'no language when none was given');

for my $type (qw(audio/ogg audio/mpeg audio/mp4 audio/wav audio/x-m4a), 'audio/webm;codecs=opus') {
	my $b = audio("v-type-$type", 1000);
	$tx = $t->json_req(POST => $URL, $b, { %$U, 'Content-Type' => $type });
	is($tx->res->code, 200, "raw $type: 200");
	my ($r) = $fake->requests(tag => "v-type-$type");
	is($r->{form}{file}{sha256}, sha256_hex($b), "$type: bytes intact");
}

# --- multipart/form-data -------------------------------------------------------------------

$bytes = audio('v-multi', 150_000);
my $before = credits($u);
$tx = $t->ua->post($t->url($URL) => $U => form => {
	note => 'ignored',
	file => { content => $bytes, filename => 'voice note.ogg', 'Content-Type' => 'audio/ogg' },
});
is($tx->res->code, 200, 'multipart with a file part: 200') or diag $tx->res->body;
like($tx->req->headers->content_type, qr{^multipart/form-data}, 'sent as multipart/form-data');
is($tx->res->json('/credits_remaining'), $before - $price, 'charged');
($f) = $fake->requests(tag => 'v-multi');
is($f->{form}{file}{size}, length $bytes, 'the file part, whole');
is($f->{form}{file}{sha256}, sha256_hex($bytes), 'its bytes intact (CRLFs and delimiter look-alikes inside)');
is($f->{form}{file}{content_type}, 'audio/ogg', 'the part\'s type');

# A quoted boundary, and the file part not first.
my $qb = 'XyZ-quoted boundary';
$bytes = audio('v-quoted', 5000);
my $body = "preamble\r\n--$qb\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhatever\r\n"
	. "--$qb\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
	. $bytes . "\r\n--$qb--\r\n";
$tx = $t->json_req(POST => $URL, $body, { %$U, 'Content-Type' => "multipart/form-data; boundary=\"$qb\"" });
is($tx->res->code, 200, 'multipart with a quoted boundary, file second: 200') or diag $tx->res->body;
($f) = $fake->requests(tag => 'v-quoted');
is($f->{form}{file}{sha256}, sha256_hex($bytes), 'bytes intact');
is($f->{form}{file}{content_type}, 'audio/wav', 'type audio/wav');

# --- language -------------------------------------------------------------------------------

$bytes = audio('v-lang', 500);
$tx = $t->json_req(POST => "$URL?language=de", $bytes, { %$U, 'Content-Type' => 'audio/mpeg' });
is($tx->res->code, 200, '?language=de: 200');
($f) = $fake->requests(tag => 'v-lang');
is($f->{form}{language}, 'de', 'language passed on');
is($tx->res->json('/text'), 'Fake transcript of 500 bytes (de)', 'the provider saw it');
for my $bad ('bad', 'EN', 'e', 'd1', '', 'de-DE') {
	$before = credits($u);
	$tx = $t->json_req(POST => "$URL?language=$bad", audio('v-badlang', 100), { %$U, 'Content-Type' => 'audio/webm' });
	error_code_is($tx, 400, 'invalid_input', "?language=$bad");
	is($tx->res->json('/error/field'), 'language', "?language=$bad: field language");
	is(credits($u), $before, "?language=$bad: nothing charged");
}

# --- wrong types, empty, malformed --------------------------------------------------------

$before = credits($u);
my $n_fake = scalar $fake->requests;
for my $case (
	[ 'text/plain', 'hello', 415, 'unsupported_media_type' ],
	[ 'application/json', '{"file":"x"}', 415, 'unsupported_media_type' ],
	[ 'video/webm', audio('v-video', 100), 415, 'unsupported_media_type' ],
	[ 'audio/flac', audio('v-flac', 100), 415, 'unsupported_media_type' ],
	[ undef, audio('v-none', 100), 415, 'unsupported_media_type' ],
	[ 'audio/webm', '', 400, 'invalid_input' ],
	[ 'multipart/form-data; boundary=B', "--B\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--B--\r\n", 400, 'invalid_input' ],
	[ 'multipart/form-data; boundary=B', "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--\r\n", 415, 'unsupported_media_type' ],
	[ 'multipart/form-data; boundary=B', "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.ogg\"\r\nContent-Type: audio/ogg\r\n\r\n\r\n--B--\r\n", 400, 'invalid_input' ],
	[ 'multipart/form-data; boundary=B', "--B\r\nContent-Disposition: form-data; name=\"file\"\r\nContent-Type: audio/ogg\r\n\r\nno closing delimiter", 400, 'invalid_input' ],
	[ 'multipart/form-data; boundary=B', "no delimiter at all", 400, 'invalid_input' ],
	[ 'multipart/form-data', "--B\r\n\r\nx\r\n--B--\r\n", 400, 'invalid_input' ],
) {
	my ($type, $b, $status, $code) = @$case;
	my $name = sprintf '%s, %d bytes', $type // 'no Content-Type', length $b;
	my %h = (%$U, defined $type ? ('Content-Type' => $type) : ());
	$tx = $t->ua->build_tx(POST => $t->url($URL) => \%h => $b);
	$tx->req->headers->remove('Content-Type') unless defined $type;
	$tx = $t->ua->start($tx);
	error_code_is($tx, $status, $code, $name);
}
is(credits($u), $before, 'none of them was charged');
is(scalar $fake->requests, $n_fake, 'none of them reached the provider');
$tx = $t->json_req(POST => $URL, audio('v-anon', 100), { 'Content-Type' => 'audio/webm' });
error_code_is($tx, 401, 'unauthorized', 'without a token');

# --- size limits: 25 MiB in the app, 26 MiB in nginx ------------------------------------------

my $MiB = 1024 * 1024;
$bytes = audio('v-25mib', 25 * $MiB);
$tx = $t->json_req(POST => $URL, $bytes, { %$U, 'Content-Type' => 'audio/webm' });
is($tx->res->code, 200, 'exactly 25 MiB: 200') or diag $tx->res->body;
($f) = $fake->requests(tag => 'v-25mib');
is($f->{form}{file}{size}, 25 * $MiB, '25 MiB reached the provider');
is($f->{form}{file}{sha256}, sha256_hex($bytes), 'intact');
$before = credits($u);
$tx = $t->json_req(POST => $URL, $bytes . 'x', { %$U, 'Content-Type' => 'audio/webm' });
error_code_is($tx, 413, 'payload_too_large', '25 MiB + 1 byte (under nginx\'s cap): the app\'s 413');
like($tx->res->json('/error/message') // '', qr/25600 KiB|25 MiB/, 'the app says what the limit is');
like($tx->res->headers->content_type // '', qr{^application/json}, 'JSON');
for my $size (26 * $MiB, 26 * $MiB + 1, 30 * $MiB) {
	$tx = $t->json_req(POST => $URL, audio('v-big', $size), { %$U, 'Content-Type' => 'audio/webm' });
	error_code_is($tx, 413, 'payload_too_large', "$size bytes");
	like($tx->res->headers->content_type // '', qr{^application/json}, "$size bytes: a JSON error either way");
}
undef $bytes;
is(credits($u), $before, 'no 413 was charged');
ok(!$fake->requests(tag => 'v-big'), 'none reached the provider');

# --- the provider fails: 502 (or 504), refunded ---------------------------------------------

for my $case ([ 'fail500', 502, 'upstream_error' ], [ 'fail429', 502, 'upstream_error' ], [ 'hang', 504, 'upstream_timeout' ]) {
	my ($m, $status, $code) = @$case;
	$before = credits($u);
	my $n = @{ ledger($u) };
	$tx = $t->json_req(POST => $URL, audio("v-$m [[$m]]", 2000), { %$U, 'Content-Type' => 'audio/ogg' });
	error_code_is($tx, $status, $code, "provider $m");
	like($tx->res->json('/error/message') // '', qr/refunded/, "$m: the message says so");
	is(credits($u), $before, "$m: refunded");
	my @new = @{ ledger($u) }[$n .. $#{ ledger($u) }];
	is_deeply(\@new, [ { delta => -$price, reason => 'voice' }, { delta => $price, reason => 'voice_refund' } ],
		"$m: the ledger shows the charge and its refund");
	is(scalar $fake->requests(tag => "v-$m"), 1, "$m: asked once");
}

# --- 402 ------------------------------------------------------------------------------------

set_settings($t, signup_credits => 2);
my $poor = $t->user(first_name => 'Poor');
set_settings($t, signup_credits => 100);
$tx = $t->json_req(POST => $URL, audio('v-poor', 100), { %{ $t->auth($poor) }, 'Content-Type' => 'audio/webm' });
error_code_is($tx, 402, 'insufficient_credits', 'voice with 2 credits');
is(credits($poor), 2, 'nothing taken');
ok(!$fake->requests(tag => 'v-poor'), 'the provider was not asked');

my $bad = $dbh->selectall_arrayref(q{SELECT u.id FROM users u LEFT JOIN credit_ledger l ON l.user_id = u.id
	GROUP BY u.id HAVING u.credits <> coalesce(sum(l.delta), 0)});
is_deeply($bad, [], 'every user: credits = sum of ledger deltas');

# --- the stand-in, without a key -------------------------------------------------------------

is($t->stop_app, 0, 'app stopped');
$t->start_app(env => { OPENAI_API_KEY => undef, OPENAI_BASE_URL => undef });
$n_fake = scalar $fake->requests;
$tx = $t->json_req(POST => $URL, audio('v-standin', 1234), { %$U, 'Content-Type' => 'audio/mp4' });
is($tx->res->code, 200, 'without OPENAI_API_KEY: 200');
is($tx->res->json('/text'), '[Local stand-in transcription: no OPENAI_API_KEY is set. Received 1234 bytes of audio/mp4.]',
	'a labelled stand-in transcript');
is($tx->res->json('/credits_consumed'), $price, 'charged like any transcription');
is(scalar $fake->requests, $n_fake, 'the fake was not called');

my $key = $fake->key;
unlike($t->log, qr/\Q$key\E/, 'the API key never appears in the app log');

$t->done;
