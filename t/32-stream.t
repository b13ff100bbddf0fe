#!/usr/bin/perl
# Streaming chat turns: stream:true or Accept: text/event-stream give
# text/event-stream with start, delta..., done in that order and the
# documented data; the pieces reach the client as the model sends them;
# the model's stream is read right whatever its framing (fragments that
# split lines and events, CRLF); every stream ends with done or error.
use strict;
use warnings;
use utf8;
use Test::More;
use lib 't/lib';
use Miky::Test;
use Miky::FakeOpenAI qw(answer piece parse_sse stream_req set_settings);

my $fake = Miky::FakeOpenAI->new;
my $t = Miky::Test->new(app => 0, env => $fake->env);
my $dbh = $t->dbh;
set_settings($t, ai_first_token_timeout_ms => 3000, ai_idle_timeout_ms => 3000,
	ai_total_timeout_ms => 10000, ai_max_retries => 1);
$t->start_app;

my $u = $t->user(first_name => 'Sam');
my $U = $t->auth($u);
my @all_streams;

sub credits { $dbh->selectrow_array('SELECT credits FROM users WHERE id = ?', undef, $u->{id}) }

# Checks the shape every successful stream has; returns its events.
sub good_stream {
	my ($res, $n, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	push @all_streams, [ $name, $res ];
	is($res->{code}, 200, "$name: 200") or diag $res->{raw};
	like($res->{headers}->content_type // '', qr{^text/event-stream}, "$name: Content-Type text/event-stream");
	is($res->{headers}->cache_control, 'no-store', "$name: Cache-Control: no-store");
	ok($res->{headers}->header('X-Request-Id'), "$name: X-Request-Id");
	my @ev = @{ $res->{events} };
	is_deeply([ map { $_->{event} } @ev ], [ 'start', ('delta') x $n, 'done' ], "$name: start, $n deltas, done")
		or diag explain [ map { "$_->{event} $_->{data}" } @ev ];
	is_deeply([ map { $_->{content} } map { $_->{json} } grep { $_->{event} eq 'delta' } @ev ],
		[ map { piece($_) } 1 .. $n ], "$name: one delta per piece of the model's answer, intact");
	ok(!(grep { !defined $_->{json} } @ev), "$name: every data is JSON");
	return @ev;
}

# --- stream:true: shapes and order -------------------------------------------------------

my $res = stream_req($t, '/api/chat/send', { content => 's1: stream please [[count:5]]', stream => \1 }, $U);
my @ev = good_stream($res, 5, 'stream:true');
my ($start, $done) = map { $_->{json} } @ev[0, -1];
is_deeply([ sort keys %$start ], [ 'conversation', 'user_message' ], 'start: {conversation, user_message}');
is($start->{conversation}{persona}, 'general', 'start: the new conversation');
is($start->{user_message}{content}, 's1: stream please [[count:5]]', 'start: the stored user message');
is($start->{user_message}{sender}, 'user', 'start: user_message sender');
is_deeply([ sort keys %{ $ev[1]{json} } ], [ 'content' ], 'delta: {content}');
is_deeply([ sort keys %$done ], [ sort qw(assistant_message credits_remaining usage) ],
	'done: {assistant_message, credits_remaining, usage}');
is($done->{assistant_message}{content}, answer(5), 'done: the whole answer');
is($done->{assistant_message}{sender}, 'assistant', 'done: assistant_message');
is($done->{assistant_message}{credits_consumed}, 1, 'done: credits_consumed');
is($done->{credits_remaining}, 99, 'done: credits_remaining');
my ($f) = $fake->requests(tag => 's1:');
is_deeply($done->{usage}, { prompt_tokens => $f->{answered}{usage}{prompt_tokens},
	completion_tokens => $f->{answered}{usage}{completion_tokens} }, 'done: usage as the model reported it');
is(credits(), 99, 'charged exactly once');
my $stored = $dbh->selectall_arrayref(q{SELECT sender, content FROM messages WHERE conversation_id = ? ORDER BY created_at},
	{ Slice => {} }, $start->{conversation}{id});
is_deeply($stored, [ { sender => 'user', content => 's1: stream please [[count:5]]' },
	{ sender => 'assistant', content => answer(5) } ], 'both messages stored');
is($dbh->selectrow_array('SELECT message_count FROM conversations WHERE id = ?', undef, $start->{conversation}{id}),
	2, 'message_count 2');

# The wire format: "event: NAME\ndata: JSON\n\n", nothing else.
like($res->{raw}, qr/\A(?:event: (?:start|delta|done)\ndata: \{[^\n]*\}\n\n)+\z/, 'each event is one event line and one data line');
is_deeply([ map { $_->{event} } @{ parse_sse($res->{raw}) } ], [ map { $_->{event} } @ev ], 'the whole body parses the same');

# --- Accept: text/event-stream, and the conversation route ----------------------------------

$res = stream_req($t, '/api/chat/send', { content => 's2: accept header [[count:2]]' },
	{ %$U, Accept => 'text/event-stream' });
good_stream($res, 2, 'Accept: text/event-stream');
my $conv = $res->{events}[0]{json}{conversation}{id};
$res = stream_req($t, "/api/conversations/$conv/messages", { content => 's3: again [[count:3]]', stream => \1 }, $U);
@ev = good_stream($res, 3, '/api/conversations/:id/messages stream:true');
is($ev[0]{json}{conversation}{id}, $conv, 'the same conversation');
is($ev[-1]{json}{credits_remaining}, 97, 'three turns, three credits');
$res = stream_req($t, "/api/conversations/$conv/messages", { content => 's4: accept [[count:1]]' },
	{ %$U, Accept => 'text/event-stream' });
good_stream($res, 1, '/api/conversations/:id/messages with Accept');
my $tx = $t->json_req(POST => '/api/chat/send', { content => 's5: plain [[count:1]]' }, { %$U, Accept => 'application/json' });
is($tx->res->code, 201, 'Accept: application/json: not streamed (201)');

# --- the first piece arrives before the model has finished ---------------------------------

$res = stream_req($t, '/api/chat/send', { content => 's6: slowly [[slow:300]][[count:6]]', stream => \1 }, $U);
@ev = good_stream($res, 6, 'slow model');
my @deltas = grep { $_->{event} eq 'delta' } @ev;
my $first = $deltas[0]{t} - $res->{t0};
my $spread = $ev[-1]{t} - $deltas[0]{t};
cmp_ok($first, '<', 1.5, sprintf('the first delta came %.2fs after the request', $first));
cmp_ok($spread, '>', 1.2, sprintf('the answer took %.2fs more: the first delta was not held back', $spread));
cmp_ok($ev[0]{t} - $res->{t0}, '<', 1, 'start comes at once');
my $gaps = grep { $deltas[$_]{t} - $deltas[$_ - 1]{t} > 0.15 } 1 .. $#deltas;
cmp_ok($gaps, '>=', 4, 'the deltas arrive spread out, as the model sends them');

# --- the model's framing: fragments, CRLF --------------------------------------------------

for my $case ([ 'split', '[[split]][[count:5]]', 5 ], [ 'crlf', '[[crlf]][[count:4]]', 4 ],
	[ 'split+crlf', '[[split]][[crlf]][[count:7]]', 7 ])
{
	my ($name, $markers, $n) = @$case;
	$res = stream_req($t, '/api/chat/send', { content => "s7-$name: $markers", stream => \1 }, $U);
	@ev = good_stream($res, $n, "model stream framed $name");
	is($ev[-1]{json}{assistant_message}{content}, answer($n), "$name: the answer intact");
	my ($fr) = $fake->requests(tag => "s7-$name:");
	is($ev[-1]{json}{usage}{completion_tokens}, $fr->{answered}{usage}{completion_tokens}, "$name: usage read");
	$tx = $t->json_req(POST => '/api/chat/send', { content => "s8-$name: $markers" }, $U);
	is($tx->res->json('/assistant_message/content'), answer($n), "$name: not streaming too");
}

# --- a stream that ends in error ends with an error event ------------------------------------

$res = stream_req($t, '/api/chat/send', { content => 's9: [[fail500]]', stream => \1 }, $U);
push @all_streams, [ 'failing model', $res ];
is($res->{code}, 200, 'failing model: the stream had started');
is_deeply([ map { $_->{event} } @{ $res->{events} } ], [ 'start', 'error' ], 'failing model: start, error');
is($res->{events}[-1]{json}{error}{code}, 'upstream_error', 'error: {error: {code, message}}');
ok($res->{events}[-1]{json}{error}{message}, 'error message');

# --- every stream of this file ended with done or error, and nothing after it ---------------

for my $s (@all_streams) {
	my ($name, $r) = @$s;
	my @e = @{ $r->{events} };
	ok(@e && $e[-1]{event} =~ /^(?:done|error)$/, "$name: ended with done or error");
	is(scalar(grep { $_->{event} =~ /^(?:done|error)$/ } @e), 1, "$name: exactly one final event");
	like($r->{raw}, qr/\n\n\z/, "$name: the body ends with a complete event");
}

my $bad = $dbh->selectall_arrayref(q{SELECT u.id FROM users u LEFT JOIN credit_ledger l ON l.user_id = u.id
	GROUP BY u.id HAVING u.credits <> coalesce(sum(l.delta), 0)});
is_deeply($bad, [], 'credits = sum of ledger deltas');

$t->done;
