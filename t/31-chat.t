#!/usr/bin/perl
# The chat turn, not streaming: POST /api/chat/send and
# POST /api/conversations/:id/messages against the fake OpenAI.  What the
# client gets (201 shape, titles, personas), what the model gets (the
# persona's system prompt, the history in order, the plan's model, the
# key), what it costs (exactly the persona's price, one ledger row), 402
# with nothing stored, input limits, and the labelled stand-in model.
use strict;
use warnings;
use utf8;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_code_is $UUID);
use Miky::FakeOpenAI qw(answer set_settings);
use Mojo::JSON qw(decode_json);

my $fake = Miky::FakeOpenAI->new;
my $t = Miky::Test->new(app => 0, env => $fake->env);
my $dbh = $t->dbh;
set_settings($t, ai_first_token_timeout_ms => 3000, ai_idle_timeout_ms => 3000,
	ai_total_timeout_ms => 10000, ai_max_retries => 1);
$t->start_app;

my $personas = decode_json($dbh->selectrow_array(q{SELECT value::text FROM admin_settings WHERE key = 'personas'}));
my $tag = 0;

sub req { $t->json_req(@_) }
sub credits { $dbh->selectrow_array('SELECT credits FROM users WHERE id = ?', undef, $_[0]{id}) }
sub count_rows {
	my ($sql, @bind) = @_;
	return $dbh->selectrow_array("SELECT count(*) FROM $sql", undef, @bind);
}
# The one request the fake got for a tagged message.
sub fake_req {
	my ($tag) = @_;
	my @r = $fake->requests(tag => $tag);
	is(scalar @r, 1, "the fake got one request for $tag") or diag explain [ map { $_->{last_user} } @r ];
	return $r[0] // {};
}

my $u = $t->user(first_name => 'Uma');
my $U = $t->auth($u);

# --- one turn, not streaming ---------------------------------------------------------

my $content = "t1: What is a ledger? [[count:4]]";
my $tx = req(POST => '/api/chat/send', { content => $content }, $U);
is($tx->res->code, 201, 'POST /api/chat/send: 201') or diag $tx->res->body;
like($tx->res->headers->content_type, qr{^application/json}, 'JSON answer');
my $j = $tx->res->json;
is_deeply([ sort keys %$j ], [ sort qw(conversation user_message assistant_message credits_remaining) ],
	'shape {conversation, user_message, assistant_message, credits_remaining}');
my $conv = $j->{conversation};
like($conv->{id}, $UUID, 'a new conversation');
is($conv->{persona}, 'general', 'persona defaults to general');
is($conv->{title}, $content, 'a short first message is the title');
is($conv->{message_count}, 2, 'message_count 2');
is($j->{user_message}{sender}, 'user', 'user_message sender');
is($j->{user_message}{content}, $content, 'user_message content');
is($j->{user_message}{conversation_id}, $conv->{id}, 'user_message conversation_id');
is($j->{user_message}{credits_consumed}, 0, 'user_message credits_consumed 0');
is($j->{assistant_message}{sender}, 'assistant', 'assistant_message sender');
is($j->{assistant_message}{content}, answer(4), 'assistant_message: the four pieces joined, bytes intact');
is($j->{assistant_message}{persona}, 'general', 'assistant_message persona');
is($j->{assistant_message}{credits_consumed}, 1, 'charged general\'s credits_per_message (1)');
is_deeply([ sort keys %{ $j->{assistant_message} } ],
	[ sort qw(id conversation_id sender content persona credits_consumed created_at) ], 'message fields');
is($j->{credits_remaining}, 99, 'credits_remaining 100 - 1');
is(credits($u), 99, 'users.credits reduced by exactly 1');
my $ledger = $dbh->selectall_arrayref(q{SELECT delta, balance_after, reason, ref FROM credit_ledger
	WHERE user_id = ? AND reason <> 'signup' ORDER BY id}, { Slice => {} }, $u->{id});
is_deeply($ledger, [ { delta => -1, balance_after => 99, reason => 'chat', ref => $j->{user_message}{id} } ],
	'one ledger row: chat, -1, for the user message');
my $row = $dbh->selectrow_hashref(q{SELECT model, prompt_tokens, completion_tokens, content FROM messages WHERE id = ?},
	undef, $j->{assistant_message}{id});
is($row->{model}, 'gpt-4o-mini', 'stored with the model used');
is($row->{content}, answer(4), 'stored content');

my $f = fake_req('t1:');
is($f->{path}, '/v1/chat/completions', 'POST /v1/chat/completions');
is($f->{headers}{authorization}, 'Bearer ' . $fake->key, 'Authorization: Bearer <OPENAI_API_KEY>');
like($f->{headers}{'content-type'}, qr{^application/json}, 'Content-Type: application/json');
is($f->{json}{model}, 'gpt-4o-mini', 'the free plan\'s model');
ok($f->{json}{stream} && ref $f->{json}{stream}, 'stream: true');
ok($f->{json}{stream_options}{include_usage}, 'stream_options.include_usage: true');
is_deeply($f->{json}{messages}, [
	{ role => 'system', content => $personas->{general}{system_prompt} },
	{ role => 'user', content => $content },
], 'the persona\'s system prompt (from admin_settings), then the message');
is($row->{prompt_tokens}, $f->{answered}{usage}{prompt_tokens}, 'prompt_tokens from the model\'s usage');
is($row->{completion_tokens}, $f->{answered}{usage}{completion_tokens}, 'completion_tokens from the model\'s usage');
ok(!$f->{cancelled}, 'the model call ran to its end');

# --- the history, in order ---------------------------------------------------------

$tx = req(POST => "/api/conversations/$conv->{id}/messages", { content => 't2: and then? [[count:2]]' }, $U);
is($tx->res->code, 201, 'second turn via /api/conversations/:id/messages') or diag $tx->res->body;
is($tx->res->json('/conversation/id'), $conv->{id}, 'same conversation');
is($tx->res->json('/conversation/message_count'), 4, 'message_count 4');
is($tx->res->json('/conversation/title'), $content, 'the title stays');
$tx = req(POST => '/api/chat/send', { content => 't3: last one', conversation_id => $conv->{id} }, $U);
is($tx->res->code, 201, 'third turn via chat/send with conversation_id');
is($tx->res->json('/conversation/message_count'), 6, 'message_count 6');
is($tx->res->json('/credits_remaining'), 97, 'three turns: 97 left');
is_deeply(fake_req('t3:')->{json}{messages}, [
	{ role => 'system', content => $personas->{general}{system_prompt} },
	{ role => 'user', content => $content },
	{ role => 'assistant', content => answer(4) },
	{ role => 'user', content => 't2: and then? [[count:2]]' },
	{ role => 'assistant', content => answer(2) },
	{ role => 'user', content => 't3: last one' },
], 'the model got the system prompt and the whole history in order');
is(count_rows('messages WHERE conversation_id = ?', $conv->{id}), 6, 'six messages stored');

# --- personas and plans ----------------------------------------------------------

$tx = req(POST => '/api/chat/send', { content => 't4: is this legal?', persona => 'lawyer' }, $U);
is($tx->res->code, 201, 'a new conversation with persona lawyer');
is($tx->res->json('/conversation/persona'), 'lawyer', 'conversation persona lawyer');
is($tx->res->json('/assistant_message/credits_consumed'), $personas->{lawyer}{credits_per_message},
	'charged lawyer\'s price');
is($tx->res->json('/credits_remaining'), 97 - $personas->{lawyer}{credits_per_message}, 'balance reduced by it');
is(fake_req('t4:')->{json}{messages}[0]{content}, $personas->{lawyer}{system_prompt}, 'lawyer\'s system prompt');
my $lawconv = $tx->res->json('/conversation/id');
$tx = req(POST => "/api/conversations/$lawconv/messages", { content => 't5: more' }, $U);
is(fake_req('t5:')->{json}{messages}[0]{content}, $personas->{lawyer}{system_prompt},
	'a later turn keeps the conversation\'s persona');
is($tx->res->json('/assistant_message/persona'), 'lawyer', 'stored with persona lawyer');

$dbh->do(q{UPDATE users SET plan = 'plus' WHERE id = ?}, undef, $u->{id});
$tx = req(POST => '/api/chat/send', { content => 't6: on plus' }, $U);
is($tx->res->code, 201, 'a turn on the plus plan');
is(fake_req('t6:')->{json}{model}, 'gpt-4o', 'the plus plan\'s model (from the models setting)');
$dbh->do(q{UPDATE users SET plan = 'free' WHERE id = ?}, undef, $u->{id});

# --- titles -----------------------------------------------------------------------

my $long = "  t7:  Hello   world,\n this is a rather long first message that should be cut somewhere sensible please";
my $folded = join ' ', split ' ', $long;
my $want = (substr($folded, 0, 61) =~ s/ \S*\z//r) . '…';
$tx = req(POST => '/api/chat/send', { content => $long }, $U);
is($tx->res->json('/conversation/title'), $want, 'a long first message: the title is cut on a word boundary, with an ellipsis');
ok(length($want) <= 61, 'at most 60 characters and the ellipsis');
$tx = req(POST => '/api/chat/send', { content => "t8:\n\tshort  one " }, $U);
is($tx->res->json('/conversation/title'), 't8: short one', 'white space folded');

# --- input limits -------------------------------------------------------------------

for my $case (
	[ { content => '' }, 'content', 'empty content' ],
	[ {}, 'content', 'no content' ],
	[ { content => 'x' x 32001 }, 'content', '32001 characters' ],
	[ { content => 'é' x 32001 }, 'content', '32001 two-byte characters' ],
	[ { content => 'hi', persona => 'pirate' }, 'persona', 'unknown persona' ],
	[ { content => 'hi', conversation_id => 'nope' }, 'conversation_id', 'malformed conversation_id' ],
	[ { content => 'hi', stream => 'yes' }, 'stream', 'stream not a boolean' ],
	[ { content => 'hi', model => 'gpt-5' }, 'model', 'a field not in the spec' ],
	[ { content => 42 }, 'content', 'content not a string' ],
) {
	my ($body, $field, $name) = @$case;
	my $before = count_rows('messages WHERE user_id = ?', $u->{id});
	$tx = req(POST => '/api/chat/send', $body, $U);
	error_code_is($tx, 400, 'invalid_input', $name);
	is($tx->res->json('/error/field'), $field, "$name: field $field");
	is(count_rows('messages WHERE user_id = ?', $u->{id}), $before, "$name: nothing stored");
}
$tx = req(POST => '/api/chat/send', '{"content":', { %$U, 'Content-Type' => 'application/json' });
error_code_is($tx, 400, 'invalid_json', 'broken JSON');
$tx = req(POST => '/api/chat/send', 'content=hi', { %$U, 'Content-Type' => 'text/plain' });
error_code_is($tx, 415, 'unsupported_media_type', 'not JSON');
$tx = req(POST => '/api/chat/send', { content => 'hi' });
error_code_is($tx, 401, 'unauthorized', 'no token');

my $big = 't9:' . ('😀' x 31997);    # 32000 characters, 127,991 bytes
is(length $big, 32000, '32000 characters');
$tx = req(POST => '/api/chat/send', { content => $big }, $U);
is($tx->res->code, 201, '32000 four-byte characters are accepted') or diag substr($tx->res->body, 0, 300);
is($tx->res->json('/user_message/content'), $big, 'stored and returned intact');
is(fake_req('t9:')->{json}{messages}[-1]{content}, $big, 'sent to the model intact');
is($tx->res->json('/conversation/title'), 't9:' . ('😀' x 57) . '…', 'a title of 60 characters from it');

# --- another user's conversation ------------------------------------------------------

my $v = $t->user(first_name => 'Vic');
my $V = $t->auth($v);
my $vbefore = credits($v);
$tx = req(POST => '/api/chat/send', { content => 't10: sneaky', conversation_id => $conv->{id} }, $V);
error_code_is($tx, 404, 'not_found', 'conversation_id of another user');
$tx = req(POST => "/api/conversations/$conv->{id}/messages", { content => 't10: sneaky' }, $V);
error_code_is($tx, 404, 'not_found', '/api/conversations/:id/messages of another user');
$tx = req(POST => '/api/chat/send', { content => 't10: sneaky', conversation_id => '00000000-0000-4000-8000-000000000000' }, $V);
error_code_is($tx, 404, 'not_found', 'an unknown conversation_id');
is(credits($v), $vbefore, 'no credits taken');
is(count_rows('messages WHERE user_id = ?', $v->{id}), 0, 'no message stored for the caller');
is(count_rows('messages WHERE conversation_id = ?', $conv->{id}), 6, 'nothing added to the other conversation');
is(scalar $fake->requests(tag => 't10:'), 0, 'the model was not asked');

# --- 402: nothing stored --------------------------------------------------------------

set_settings($t, signup_credits => 2);    # read by the sign-up statement itself
my $poor = $t->user(first_name => 'Poor');
set_settings($t, signup_credits => 100);
my $P = $t->auth($poor);
is(credits($poor), 2, 'a user with 2 credits');
my $lawyer_price = $personas->{lawyer}{credits_per_message};
cmp_ok($lawyer_price, '>', 2, 'lawyer costs more than that');
my %before = (
	conv => count_rows('conversations WHERE user_id = ?', $poor->{id}),
	msg => count_rows('messages WHERE user_id = ?', $poor->{id}),
	ledger => count_rows('credit_ledger WHERE user_id = ?', $poor->{id}),
);
$tx = req(POST => '/api/chat/send', { content => 't11: expensive', persona => 'lawyer' }, $P);
error_code_is($tx, 402, 'insufficient_credits', 'a new conversation the user cannot pay for');
like($tx->res->json('/error/message'), qr/\b$lawyer_price\b/, 'the message names the price');
$tx = req(POST => '/api/chat/send', { content => 't11: expensive stream', persona => 'lawyer', stream => \1 }, $P);
error_code_is($tx, 402, 'insufficient_credits', 'streaming asked: still a plain 402 before any stream');
like($tx->res->headers->content_type, qr{^application/json}, 'as JSON');
is(count_rows('conversations WHERE user_id = ?', $poor->{id}), $before{conv}, '402: no conversation created');
is(count_rows('messages WHERE user_id = ?', $poor->{id}), $before{msg}, '402: no message stored');
is(count_rows('credit_ledger WHERE user_id = ?', $poor->{id}), $before{ledger}, '402: no ledger row');
is(count_rows('credit_holds WHERE user_id = ?', $poor->{id}), 0, '402: no turn left open');
is(credits($poor), 2, '402: balance unchanged');
is(scalar $fake->requests(tag => 't11:'), 0, '402: the model was not asked');

$tx = req(POST => '/api/conversations', { persona => 'lawyer', title => 'pricey' }, $P);
my $pc = $tx->res->json('/conversation/id');
$tx = req(POST => "/api/conversations/$pc/messages", { content => 't12: in a lawyer conversation' }, $P);
error_code_is($tx, 402, 'insufficient_credits', 'an existing lawyer conversation');
is(count_rows('messages WHERE conversation_id = ?', $pc), 0, 'no message in it');
is($dbh->selectrow_array('SELECT message_count FROM conversations WHERE id = ?', undef, $pc), 0, 'message_count still 0');

$tx = req(POST => '/api/chat/send', { content => 't13: cheap' }, $P);
is($tx->res->code, 201, 'general (1 credit) is affordable');
is($tx->res->json('/credits_remaining'), 1, '1 left');
$tx = req(POST => '/api/chat/send', { content => 't14: cheap' }, $P);
is($tx->res->json('/credits_remaining'), 0, '0 left');
$tx = req(POST => '/api/chat/send', { content => 't15: one too many' }, $P);
error_code_is($tx, 402, 'insufficient_credits', 'at 0 credits');
is(credits($poor), 0, 'never below zero');

# --- the books balance ------------------------------------------------------------------

my $bad = $dbh->selectall_arrayref(q{SELECT u.id, u.credits, coalesce(sum(l.delta), 0)
	FROM users u LEFT JOIN credit_ledger l ON l.user_id = u.id GROUP BY u.id
	HAVING u.credits <> coalesce(sum(l.delta), 0)});
is_deeply($bad, [], 'every user: credits = sum of ledger deltas');
is(count_rows('credit_holds'), 0, 'no turn left open');

# --- the stand-in model -----------------------------------------------------------------

is($t->stop_app, 0, 'app stopped');
$t->start_app(env => { OPENAI_API_KEY => undef, OPENAI_BASE_URL => undef, MIKY_STANDIN_DELAY_MS => 0 });
my $n_fake = scalar $fake->requests;
$tx = req(POST => '/api/chat/send', { content => 't16: anyone there?' }, $U);
is($tx->res->code, 201, 'without OPENAI_API_KEY: still 201');
like($tx->res->json('/assistant_message/content'), qr/^\[Local stand-in model: no OPENAI_API_KEY is set, so this is not a real AI answer\.\]/,
	'the stand-in says what it is');
like($tx->res->json('/assistant_message/content'), qr/t16: anyone there\?/, 'and quotes the message');
is($dbh->selectrow_array('SELECT model FROM messages WHERE id = ?', undef, $tx->res->json('/assistant_message/id')),
	'stand-in', 'stored with model stand-in');
is($tx->res->json('/assistant_message/credits_consumed'), 1, 'charged like any turn');
is(scalar $fake->requests, $n_fake, 'the fake was not called');

my $key = $fake->key;
unlike($t->log, qr/\Q$key\E/, 'the API key never appears in the app log');

$t->done;
