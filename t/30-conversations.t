#!/usr/bin/perl
# /api/conversations and /api/personas: create, list (cursor pages, title
# search), read with message paging, update, delete; ownership (another
# user's id and a malformed id are 404 on every route); the persona list
# and its live reload from admin_settings.
use strict;
use warnings;
use utf8;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_code_is $UUID);
use Mojo::JSON qw(decode_json);

# The stand-in model (no OPENAI_API_KEY) answers at once.
my $t = Miky::Test->new(env => { MIKY_STANDIN_DELAY_MS => 0 });
my $dbh = $t->dbh;

my $alice = $t->user(first_name => 'Alice');
my $bob   = $t->user(first_name => 'Bob');
my $A = $t->auth($alice);
my $B = $t->auth($bob);

my $TS   = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

sub req { $t->json_req(@_) }


sub create {
	my ($auth, %body) = @_;
	my $tx = req(POST => '/api/conversations', { persona => 'general', %body }, $auth);
	is($tx->res->code, 201, "create '" . ($body{title} // '') . "'") or diag $tx->res->body;
	return $tx->res->json('/conversation');
}

# --- create ------------------------------------------------------------------

my $tx = req(POST => '/api/conversations', { persona => 'coach', title => '  My training plan ' }, $A);
is($tx->res->code, 201, 'POST /api/conversations: 201');
my $c = $tx->res->json('/conversation');
is_deeply([ sort keys %$c ], [ sort qw(id title persona message_count created_at updated_at) ],
	'conversation object has exactly the documented fields');
like($c->{id}, $UUID, 'id is a uuid');
is($c->{title}, 'My training plan', 'title trimmed');
is($c->{persona}, 'coach', 'persona');
is($c->{message_count}, 0, 'message_count 0');
like($c->{created_at}, $TS, 'created_at RFC 3339 with ms');
like($c->{updated_at}, $TS, 'updated_at RFC 3339 with ms');
is($dbh->selectrow_array('SELECT user_id FROM conversations WHERE id = ?', undef, $c->{id}),
	$alice->{id}, 'stored for its owner');

my $untitled = create($A, persona => 'sensei');
is($untitled->{title}, 'New conversation', 'no title: a default one');

for my $case (
	[ {}, 'persona', 'persona required' ],
	[ { persona => 'pirate' }, 'persona', 'unknown persona' ],
	[ { persona => 'general', title => '' }, 'title', 'empty title' ],
	[ { persona => 'general', title => 'x' x 201 }, 'title', 'title of 201 characters' ],
	[ { persona => 'general', title => "two\nlines" }, 'title', 'title with a control character' ],
	[ { persona => 'general', message_count => 5 }, 'message_count', 'a field not in the spec' ],
) {
	my ($body, $field, $name) = @$case;
	$tx = req(POST => '/api/conversations', $body, $A);
	error_code_is($tx, 400, 'invalid_input', $name);
	is($tx->res->json('/error/field'), $field, "$name: field $field");
}
$tx = req(POST => '/api/conversations', { persona => 'general' });
error_code_is($tx, 401, 'unauthorized', 'create without a token');
$tx = req(POST => '/api/conversations', 'persona=general', { %$A, 'Content-Type' => 'application/x-www-form-urlencoded' });
error_code_is($tx, 415, 'unsupported_media_type', 'create with a form body');
is(create($A, title => 'x' x 200)->{title}, 'x' x 200, 'a title of 200 characters is fine');

# --- list: order, cursor pages, stable under inserts ---------------------------

my $carol = $t->user(first_name => 'Carol');
my $C = $t->auth($carol);
my @made = map { create($C, title => "conv $_") } 1 .. 5;    # conv 5 is the newest

$tx = req(GET => '/api/conversations', undef, $C);
is($tx->res->code, 200, 'GET /api/conversations: 200');
is_deeply([ map { $_->{title} } @{ $tx->res->json('/conversations') } ],
	[ map { "conv $_" } reverse 1 .. 5 ], 'most recently updated first');
is($tx->res->json('/next_cursor'), undef, 'one page: next_cursor null');
is_deeply([ sort keys %{ $tx->res->json('/conversations/0') } ],
	[ sort qw(id title persona message_count created_at updated_at) ], 'list items are conversation objects');

$tx = req(GET => '/api/conversations?limit=2', undef, $C);
my $page1 = $tx->res->json;
is_deeply([ map { $_->{title} } @{ $page1->{conversations} } ], [ 'conv 5', 'conv 4' ], 'page 1 of 2');
ok(defined $page1->{next_cursor} && length $page1->{next_cursor}, 'page 1 has a next_cursor');

# New conversations between pages do not shift the later pages.
create($C, title => 'conv 6');
create($C, title => 'conv 7');
$tx = req(GET => "/api/conversations?limit=2&cursor=$page1->{next_cursor}", undef, $C);
my $page2 = $tx->res->json;
is_deeply([ map { $_->{title} } @{ $page2->{conversations} } ], [ 'conv 3', 'conv 2' ],
	'page 2 continues where page 1 ended, despite two inserts');
$tx = req(GET => "/api/conversations?limit=2&cursor=$page2->{next_cursor}", undef, $C);
my $page3 = $tx->res->json;
is_deeply([ map { $_->{title} } @{ $page3->{conversations} } ], [ 'conv 1' ], 'page 3: the last one');
is($page3->{next_cursor}, undef, 'last page: next_cursor null');

# A page that ends exactly at the last row says so.
$tx = req(GET => '/api/conversations?limit=7', undef, $C);
is(scalar @{ $tx->res->json('/conversations') }, 7, 'limit 7 of 7');
is($tx->res->json('/next_cursor'), undef, 'exactly full last page: next_cursor null');

# Carol's cursor gives Bob nothing of hers.
$tx = req(GET => "/api/conversations?limit=2&cursor=$page1->{next_cursor}", undef, $B);
is_deeply($tx->res->json('/conversations'), [], "another user's cursor shows none of her conversations");

for my $q ('limit=0', 'limit=101', 'limit=abc', 'limit=-1', 'cursor=%%%', 'cursor=bm90LWEtY3Vyc29y') {
	$tx = req(GET => "/api/conversations?$q", undef, $C);
	error_code_is($tx, 400, 'invalid_input', "list ?$q");
}
$tx = req(GET => '/api/conversations?limit=100', undef, $C);
is($tx->res->code, 200, 'limit=100 is allowed');

# --- q: title search, wildcards taken literally ------------------------------

my $dave = $t->user(first_name => 'Dave');
my $D = $t->auth($dave);
create($D, title => $_) for ('100% sure', '100 percent', 'a_b test', 'aXb test', 'back\\slash', 'Unicode ÉTÉ');
sub titles_for {
	my $q = shift;
	my $tx = req(GET => '/api/conversations?q=' . Mojo::Util::url_escape($q), undef, $D);
	is($tx->res->code, 200, "q=$q: 200") or diag $tx->res->body;
	return [ sort map { $_->{title} } @{ $tx->res->json('/conversations') // [] } ];
}
is_deeply(titles_for('%'), [ '100% sure' ], 'q=% matches a literal percent only');
is_deeply(titles_for('_'), [ 'a_b test' ], 'q=_ matches a literal underscore only');
is_deeply(titles_for('a_b'), [ 'a_b test' ], 'q=a_b does not match aXb');
is_deeply(titles_for('\\'), [ 'back\\slash' ], 'q=\\ matches a literal backslash');
is_deeply(titles_for('SURE'), [ '100% sure' ], 'q is case-insensitive');
is_deeply(titles_for('100'), [ '100 percent', '100% sure' ], 'q matches anywhere in the title');
is_deeply(titles_for('zzz'), [], 'q without a match: empty list');
is_deeply(titles_for(''), [ sort('100% sure', '100 percent', 'a_b test', 'aXb test', 'back\\slash', 'Unicode ÉTÉ') ],
	'empty q: everything');
$tx = req(GET => '/api/conversations?q=' . ('x' x 201), undef, $D);
error_code_is($tx, 400, 'invalid_input', 'q of 201 bytes');
$tx = req(GET => '/api/conversations?q=sure', undef, $A);
is_deeply($tx->res->json('/conversations'), [], "q searches only the caller's conversations");

# --- GET /:id with messages, limit and before ---------------------------------

my $conv = create($A, title => 'paging');
for my $i (1 .. 4) {
	$tx = req(POST => "/api/conversations/$conv->{id}/messages", { content => "question $i" }, $A);
	is($tx->res->code, 201, "turn $i in the conversation") or diag $tx->res->body;
}
$tx = req(GET => "/api/conversations/$conv->{id}", undef, $A);
is($tx->res->code, 200, 'GET /api/conversations/:id: 200');
my $got = $tx->res->json;
is_deeply([ sort keys %$got ], [ sort qw(conversation messages messages_cursor) ], 'shape {conversation, messages, messages_cursor}');
is($got->{conversation}{message_count}, 8, 'message_count counts both sides of 4 turns');
is(scalar @{ $got->{messages} }, 8, 'all 8 messages (default limit 50)');
is($got->{messages_cursor}, undef, 'all shown: messages_cursor null');
is_deeply([ map { $_->{sender} } @{ $got->{messages} } ], [ ('user', 'assistant') x 4 ], 'oldest first, user then assistant');
is_deeply([ map { $_->{content} } grep { $_->{sender} eq 'user' } @{ $got->{messages} } ],
	[ map { "question $_" } 1 .. 4 ], 'user messages in order');
my $m0 = $got->{messages}[0];
is_deeply([ sort keys %$m0 ], [ sort qw(id conversation_id sender content persona credits_consumed created_at) ],
	'message object has exactly the documented fields');
is($m0->{conversation_id}, $conv->{id}, 'message conversation_id');
is($got->{messages}[1]{credits_consumed}, 1, 'assistant message: credits_consumed');
is($m0->{credits_consumed}, 0, 'user message: credits_consumed 0');
is($dbh->selectrow_array('SELECT count(*) FROM messages WHERE conversation_id = ?', undef, $conv->{id}),
	8, '8 rows in messages');
my @all_ids = map { $_->{id} } @{ $got->{messages} };

$tx = req(GET => "/api/conversations/$conv->{id}?limit=3", undef, $A);
my $p1 = $tx->res->json;
is_deeply([ map { $_->{id} } @{ $p1->{messages} } ], [ @all_ids[5 .. 7] ], 'limit=3: the latest three, oldest first');
ok($p1->{messages_cursor}, 'more before: messages_cursor set');
is($p1->{conversation}{id}, $conv->{id}, 'each page has the conversation');
$tx = req(GET => "/api/conversations/$conv->{id}?limit=3&before=$p1->{messages_cursor}", undef, $A);
my $p2 = $tx->res->json;
is_deeply([ map { $_->{id} } @{ $p2->{messages} } ], [ @all_ids[2 .. 4] ], 'before: the three before');
$tx = req(GET => "/api/conversations/$conv->{id}?limit=3&before=$p2->{messages_cursor}", undef, $A);
my $p3 = $tx->res->json;
is_deeply([ map { $_->{id} } @{ $p3->{messages} } ], [ @all_ids[0 .. 1] ], 'the first two');
is($p3->{messages_cursor}, undef, 'the beginning: messages_cursor null');
# Before the oldest message: the conversation with an empty page.
{
	my ($key) = $dbh->selectrow_array('SELECT api_us(created_at) || \',\' || id FROM messages'
		. ' WHERE conversation_id = ? ORDER BY created_at, id LIMIT 1', undef, $conv->{id});
	my $cursor = Mojo::Util::b64_encode($key, '') =~ tr{+/=}{-_}dr;
	$tx = req(GET => "/api/conversations/$conv->{id}?limit=3&before=$cursor", undef, $A);
	is($tx->res->code, 200, 'before the oldest message: 200');
	is($tx->res->json('/conversation/id'), $conv->{id}, '... with the conversation');
	is_deeply($tx->res->json('/messages'), [], '... and no messages');
	is($tx->res->json('/messages_cursor'), undef, '... nor a cursor');
}
# A conversation without messages.
{
	my $empty = create($A, title => 'nothing yet');
	$tx = req(GET => "/api/conversations/$empty->{id}", undef, $A);
	is($tx->res->code, 200, 'a conversation without messages: 200');
	is_deeply($tx->res->json('/conversation'), $empty, '... the conversation as created');
	is_deeply($tx->res->json('/messages'), [], '... no messages');
	is($tx->res->json('/messages_cursor'), undef, '... no cursor');
}

# A new turn does not disturb paging back with an old cursor.
$tx = req(POST => "/api/conversations/$conv->{id}/messages", { content => 'question 5' }, $A);
is($tx->res->code, 201, 'turn 5');
$tx = req(GET => "/api/conversations/$conv->{id}?limit=3&before=$p1->{messages_cursor}", undef, $A);
is_deeply([ map { $_->{id} } @{ $tx->res->json('/messages') } ], [ @all_ids[2 .. 4] ], 'an old cursor still pages from where it was');
$tx = req(GET => "/api/conversations/$conv->{id}?limit=1", undef, $A);
is($tx->res->json('/conversation/message_count'), 10, 'message_count 10 after 5 turns');
is($tx->res->json('/messages/0/sender'), 'assistant', 'limit=1: the latest message');

for my $q ('limit=0', 'limit=201', 'limit=x', 'before=garbage!', 'before=MTIzLGFiYw') {
	$tx = req(GET => "/api/conversations/$conv->{id}?$q", undef, $A);
	error_code_is($tx, 400, 'invalid_input', "GET /:id ?$q");
}
$tx = req(GET => "/api/conversations/$conv->{id}?limit=200", undef, $A);
is($tx->res->code, 200, 'limit=200 is allowed');

# --- PUT ----------------------------------------------------------------------

$tx = req(PUT => "/api/conversations/$c->{id}", { title => 'Renamed' }, $A);
is($tx->res->code, 200, 'PUT title: 200');
is($tx->res->json('/conversation/title'), 'Renamed', 'title changed');
is($tx->res->json('/conversation/persona'), 'coach', 'persona kept');
$tx = req(PUT => "/api/conversations/$c->{id}", { persona => 'lawyer' }, $A);
is($tx->res->json('/conversation/persona'), 'lawyer', 'persona changed');
is($tx->res->json('/conversation/title'), 'Renamed', 'title kept');
$tx = req(PUT => "/api/conversations/$c->{id}", {}, $A);
is($tx->res->code, 200, 'PUT {}: 200, nothing changes');
is($tx->res->json('/conversation/title'), 'Renamed', 'still Renamed');
for my $case (
	[ { title => '' }, 'title' ], [ { persona => 'nobody' }, 'persona' ],
	[ { message_count => 0 }, 'message_count' ], [ { title => 'x' x 201 }, 'title' ],
) {
	$tx = req(PUT => "/api/conversations/$c->{id}", $case->[0], $A);
	error_code_is($tx, 400, 'invalid_input', "PUT with bad $case->[1]");
	is($tx->res->json('/error/field'), $case->[1], "PUT bad $case->[1]: field named");
}
is($dbh->selectrow_array('SELECT title FROM conversations WHERE id = ?', undef, $c->{id}), 'Renamed',
	'bad updates changed nothing');

# --- every route with another user's id, a malformed id, an unknown id --------

my $bobs = create($B, title => 'Bob private');
$tx = req(POST => "/api/conversations/$bobs->{id}/messages", { content => 'bob says hi' }, $B);
is($tx->res->code, 201, 'Bob has a message');
my @routes = (
	[ GET    => '',          undef ],
	[ PUT    => '',          { title => 'hijacked' } ],
	[ DELETE => '',          undef ],
	[ POST   => '/messages', { content => 'intruder' } ],
);
for my $case ([ $bobs->{id}, "another user's id" ], [ '00000000-0000-0000-0000-000000000000', 'an unknown id' ],
	[ 'not-a-uuid', 'a malformed id' ], [ '12345', 'a number' ], [ "$bobs->{id}x", 'an id too long' ],
	[ substr($bobs->{id}, 0, 35), 'an id too short' ], [ uc($bobs->{id}) =~ tr/-/_/r, 'underscores for dashes' ],
	[ '%27%20OR%201=1', 'an injection attempt' ])
{
	my ($id, $what) = @$case;
	for my $r (@routes) {
		my ($method, $suffix, $body) = @$r;
		$tx = req($method => "/api/conversations/$id$suffix", $body, $A);
		error_code_is($tx, 404, 'not_found', "$method /api/conversations/:id$suffix with $what");
	}
}
$tx = req(GET => "/api/conversations/$bobs->{id}", undef, $B);
is($tx->res->code, 200, "Bob still sees his conversation");
is($tx->res->json('/conversation/title'), 'Bob private', 'its title untouched');
is($tx->res->json('/conversation/message_count'), 2, 'its messages untouched');
is($dbh->selectrow_array(q{SELECT count(*) FROM messages WHERE conversation_id = ? AND content = 'intruder'},
	undef, $bobs->{id}), 0, 'no intruder message stored');
my $chat = req(POST => '/api/chat/send', { content => 'intruder 2', conversation_id => $bobs->{id} }, $A);
error_code_is($chat, 404, 'not_found', 'chat/send with another user\'s conversation_id');
$tx = req(GET => "/api/conversations/$bobs->{id}");
error_code_is($tx, 401, 'unauthorized', 'GET /:id without a token');

# --- DELETE -------------------------------------------------------------------

my $gone = $conv->{id};
ok($dbh->selectrow_array('SELECT count(*) FROM messages WHERE conversation_id = ?', undef, $gone) > 0,
	'the conversation to delete has messages');
$tx = req(DELETE => "/api/conversations/$gone", undef, $A);
is($tx->res->code, 204, 'DELETE: 204');
is($tx->res->body, '', 'DELETE: no body');
$tx = req(GET => "/api/conversations/$gone", undef, $A);
error_code_is($tx, 404, 'not_found', 'GET after DELETE');
$tx = req(DELETE => "/api/conversations/$gone", undef, $A);
error_code_is($tx, 404, 'not_found', 'DELETE again');
is($dbh->selectrow_array('SELECT count(*) FROM messages WHERE conversation_id = ?', undef, $gone), 0,
	'its messages are deleted');
is($dbh->selectrow_array('SELECT count(*) FROM conversations WHERE id = ?', undef, $gone), 0,
	'the row is deleted');
$tx = req(GET => '/api/conversations?limit=100', undef, $A);
ok(!grep({ $_->{id} eq $gone } @{ $tx->res->json('/conversations') }), 'not listed any more');
ok($dbh->selectrow_array(q{SELECT count(*) FROM credit_ledger WHERE user_id = ? AND reason = 'chat'},
	undef, $alice->{id}) >= 5, 'the ledger keeps the charges of deleted messages');

# --- personas -----------------------------------------------------------------

my @ORDER = qw(academic marketer engineer coach sensei lawyer medical god-mode richman general);
my $set = decode_json($dbh->selectrow_array(q{SELECT value::text FROM admin_settings WHERE key = 'personas'}));
$tx = req(GET => '/api/personas');
is($tx->res->code, 200, 'GET /api/personas without a token: 200');
my $ps = $tx->res->json('/personas');
is_deeply([ map { $_->{id} } @$ps ], \@ORDER, 'the ten personas in the order of api.md');
is_deeply([ sort keys %{ $tx->res->json } ], [ 'personas' ], 'shape {personas}');
for my $p (@$ps) {
	my $s = $set->{ $p->{id} };
	is_deeply($p, { id => $p->{id}, name => $s->{name}, description => $s->{description},
		credits_per_message => $s->{credits_per_message} }, "persona $p->{id}: id, name, description, credits_per_message from settings");
}
unlike($tx->res->body, qr/system_prompt/, 'no system_prompt field');
my $prompt_bit = substr($set->{general}{system_prompt}, 0, 40);
unlike($tx->res->body, qr/\Q$prompt_bit\E/, 'no system prompt text');
is($ps->[-1]{credits_per_message}, 1, 'general costs 1 before the change');

# A settings change shows without a restart (LISTEN/NOTIFY).
my $pid = $t->app_pid;
$dbh->do(q{UPDATE admin_settings SET value = jsonb_set(value, '{general,credits_per_message}', '5') WHERE key = 'personas'});
my $seen = $t->wait_for(sub {
	# Several answers in a row, so that every worker has reloaded.
	for (1 .. 6) {
		my $tx = req(GET => '/api/personas');
		my ($g) = grep { $_->{id} eq 'general' } @{ $tx->res->json('/personas') // [] };
		return 0 unless $g && $g->{credits_per_message} == 5;
	}
	1;
}, 5, 'credits_per_message 5 in /api/personas');
ok($seen, 'a settings change is visible in /api/personas within seconds');
is($t->app_pid, $pid, 'without a restart');
$tx = req(POST => '/api/chat/send', { content => 'priced at 5' }, $D);
is($tx->res->code, 201, 'a turn at the new price');
is($tx->res->json('/assistant_message/credits_consumed'), 5, 'charged the new price');
is($dbh->selectrow_array(q{SELECT credits FROM users WHERE id = ?}, undef, $dave->{id}), 95, 'balance 100 - 5');

# --- reads sent along with the user's row -------------------------------------------
#
# The list's first page and a conversation's newest messages go to the
# database in the same round trip as the user's row (sql_prefetch()),
# before the session is known to be good: whatever they read must reach
# no one whose session the row then refuses, and another user's id must
# still find nothing.

{
	my $eve = $t->user(first_name => 'Eve');
	my $E = $t->auth($eve);
	my $conv = create($E, title => 'Eve prefetched');
	is(req(POST => "/api/conversations/$conv->{id}/messages", { content => 'hello' }, $E)->res->code,
		201, 'a turn in it');
	my $list = req(GET => '/api/conversations', undef, $E);
	is($list->res->json('/conversations/0/id'), $conv->{id}, 'the first page, as prefetched');
	my $get = req(GET => "/api/conversations/$conv->{id}", undef, $E);
	is(scalar @{ $get->res->json('/messages') // [] }, 2, 'its messages, as prefetched');
	error_code_is(req(GET => "/api/conversations/$conv->{id}", undef, $A), 404, 'not_found',
		"someone else's conversation, prefetched with their id");

	$dbh->do('UPDATE users SET banned_at = now() WHERE id = ?', undef, $eve->{id});
	for my $path ('/api/conversations', "/api/conversations/$conv->{id}",
		"/api/conversations?limit=5", "/api/conversations/$conv->{id}?limit=1") {
		my $tx = req(GET => $path, undef, $E);
		error_code_is($tx, 401, 'unauthorized', "banned: $path");
		unlike($tx->res->body, qr/Eve prefetched|hello|\Q$conv->{id}\E/, "banned: $path shows nothing");
	}
	$dbh->do('UPDATE users SET banned_at = NULL, tokens_valid_after = now() + interval \'5 seconds\' WHERE id = ?',
		undef, $eve->{id});
	for my $path ('/api/conversations', "/api/conversations/$conv->{id}") {
		my $tx = req(GET => $path, undef, $E);
		error_code_is($tx, 401, 'unauthorized', "sessions ended: $path");
		unlike($tx->res->body, qr/Eve prefetched|hello/, "sessions ended: $path shows nothing");
	}
}

$t->done;
