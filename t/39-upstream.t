#!/usr/bin/perl
# What the model provider says that must not reach the client, and what
# the app must always tell the provider:
#   - a 401 (or any non-2xx) answer's text never reaches the client, even
#     when its body looks like a stream of content; the turn is refunded
#     and the call not retried;
#   - an {"error":...} chunk or a malformed chunk in mid-stream ends the
#     answer as a failure: an `error` event, none of the chunk's text (nor
#     anything after it) forwarded or stored, and the charge matching
#     what is stored (the part the client saw, or a refund);
#   - every call carries max_tokens (the ai_max_tokens setting), and the
#     history sent is capped by chat_history_messages and by
#     chat_history_budget_chars.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test;
use Miky::FakeOpenAI qw(answer stream_p set_settings);
use Mojo::Promise;
use Encode ();

my $fake = Miky::FakeOpenAI->new;
my $t = Miky::Test->new(app => 0, env => $fake->env, threads => 12);
my $dbh = $t->dbh;
set_settings($t, ai_max_retries => 2);
$t->start_app;

sub rows { $dbh->selectall_arrayref(shift, { Slice => {} }, @_) }

# name => [markers, stream, outcome (refund | partial), deltas, status]
my @CASES = (
	[ u401_json  => '[[fail401]]',       0, 'refund', 0, 502 ],
	[ u401_sse   => '[[fail401]]',       1, 'refund', 0 ],
	[ err2_sse   => '[[errorchunk:2]]',  1, 'partial', 2 ],
	[ err0_sse   => '[[errorchunk:0]]',  1, 'refund', 0 ],
	[ err2_json  => '[[errorchunk:2]]',  0, 'refund', 0, 502 ],
	[ bad3_sse   => '[[badchunk:3]]',    1, 'partial', 3 ],
	[ bad0_sse   => '[[badchunk:0]]',    1, 'refund', 0 ],
	[ bad2_json  => '[[badchunk:2]]',    0, 'refund', 0, 502 ],
	[ bad2_split => '[[badchunk:2]][[split]]', 1, 'partial', 2 ],
);
my %case;
my @p;
for my $c (@CASES) {
	my ($name, $markers, $stream, $outcome, $deltas, $status) = @$c;
	my $u = $t->user(first_name => $name =~ s/[^a-z0-9]//gr);
	$case{$name} = { user => $u, stream => $stream, outcome => $outcome, deltas => $deltas,
		status => $status, content => "up-$name: $markers" };
	push @p, stream_p($t, '/api/chat/send', { content => $case{$name}{content}, ($stream ? (stream => \1) : ()) },
		$t->auth($u))->then(sub { $case{$name}{res} = shift });
}
Mojo::Promise->all(@p)->wait;

for my $name (map { $_->[0] } @CASES) {
	my $c = $case{$name};
	my ($res, $uid) = ($c->{res}, $c->{user}{id});
	unlike($res->{raw}, qr/UPSTREAM|invalid_api_key|Incorrect API key/, "$name: none of the provider's text reaches the client")
		or diag $res->{raw};
	if ($c->{stream}) {
		is($res->{code}, 200, "$name: the stream started");
		my @names = map { $_->{event} } @{ $res->{events} };
		is_deeply(\@names, [ 'start', ('delta') x $c->{deltas}, 'error' ], "$name: start, $c->{deltas} deltas, error")
			or diag $res->{raw};
		is($res->{events}[-1]{json}{error}{code}, 'upstream_error', "$name: error event upstream_error");
		is(join('', map { $_->{json}{content} } grep { $_->{event} eq 'delta' } @{ $res->{events} }),
			answer($c->{deltas}), "$name: the deltas are the pieces before the bad chunk");
	} else {
		is($res->{code}, $c->{status}, "$name: $c->{status}");
		is($res->{json}{error}{code}, 'upstream_error', "$name: upstream_error");
		like($res->{json}{error}{message} // '', qr/refunded/, "$name: says the credits were refunded");
	}
	my @r = $fake->wait_requests(tag => "up-$name:", ended => 1, timeout => 5);
	is(scalar @r, 1, "$name: asked once (not retried)");

	$t->wait_for(sub { !$dbh->selectrow_array('SELECT count(*) FROM credit_holds WHERE user_id = ?', undef, $uid) },
		10, "$name: settled");
	my $msgs = rows(q{SELECT sender, content, credits_consumed FROM messages WHERE user_id = ? ORDER BY created_at}, $uid);
	my $credits = $dbh->selectrow_array('SELECT credits FROM users WHERE id = ?', undef, $uid);
	my $ledger = $dbh->selectrow_array('SELECT sum(delta) FROM credit_ledger WHERE user_id = ?', undef, $uid);
	is($ledger, $credits, "$name: credits = the ledger's sum");
	ok(!grep({ $_->{content} =~ /UPSTREAM/ } @$msgs), "$name: none of it stored");
	if ($c->{outcome} eq 'partial') {
		is(scalar @$msgs, 2, "$name: the part the client saw is stored");
		is($msgs->[1]{content}, answer($c->{deltas}), "$name: exactly that part");
		is($msgs->[1]{credits_consumed}, 1, "$name: charged on the message");
		is($credits, 99, "$name: and charged once");
	} else {
		is(scalar @$msgs, 1, "$name: only the user message is stored");
		is($credits, 100, "$name: refunded");
	}
}
my $log = $t->log;
unlike($log, qr/UPSTREAM/, "the provider's text is not logged either");
like($log, qr/model stream sent an error/, 'an error chunk is logged as such');
like($log, qr/model stream sent a malformed chunk/, 'a malformed chunk too');

# --- max_tokens, always ------------------------------------------------------------

my $h = $t->user(first_name => 'Hist');
{
	my $tx = $t->json_req(POST => '/api/chat/send', { content => 'mt-1: hi' }, $t->auth($h));
	is($tx->res->code, 201, 'a turn') or diag $tx->res->body;
	set_settings($t, ai_max_tokens => 77);
	$t->json_req(POST => '/api/chat/send', { content => 'mt-2: hi',
		conversation_id => $tx->res->json('/conversation/id') }, $t->auth($h));
	my @all = $fake->requests(path => '/v1/chat/completions');
	ok(@all > 10, scalar(@all) . ' model calls in this file');
	is_deeply([ grep { !defined $_->{json}{max_tokens} } @all ], [], 'every one carried max_tokens');
	is(($fake->requests(tag => 'mt-1:'))[0]{json}{max_tokens}, 2048, 'the default, 2048');
	is(($fake->requests(tag => 'mt-2:'))[0]{json}{max_tokens}, 77, 'and the setting once changed');
}

# --- the history sent is capped ---------------------------------------------------------

{
	my $conv = $dbh->selectrow_array(q{INSERT INTO conversations (user_id, title, persona)
		VALUES (?, 'long', 'general') RETURNING id}, undef, $h->{id});
	# 300 earlier messages, each 100 characters, oldest first.
	$dbh->do(q{INSERT INTO messages (conversation_id, user_id, sender, content, persona, created_at)
		SELECT ?, ?, CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END,
		rpad('old ' || g || ' ', 100, 'x'), 'general', now() - interval '1 hour' + g * interval '1 second'
		FROM generate_series(1, 300) g}, undef, $conv, $h->{id});
	my $turn = sub {
		my $tag = shift;
		my $tx = $t->json_req(POST => '/api/chat/send', { content => "$tag: next", conversation_id => $conv },
			$t->auth($h));
		is($tx->res->code, 201, "$tag: a turn in a conversation of 300+ messages") or diag $tx->res->body;
		my ($r) = $fake->requests(tag => "$tag:");
		return $r->{json}{messages};
	};
	set_settings($t, chat_history_messages => 50, chat_history_budget_chars => 24000);
	my $m = $turn->('hc-default');
	is(scalar @$m, 52, 'default: system, the newest 50 messages, the new one');
	is($m->[0]{role}, 'system', 'the system prompt first');
	is($m->[-1]{content}, 'hc-default: next', 'the new message last');
	like($m->[-2]{content}, qr/^\S/, 'the newest history right before it');
	set_settings($t, chat_history_messages => 6);
	$m = $turn->('hc-six');
	is(scalar @$m, 8, 'chat_history_messages 6: system, 6 messages, the new one');
	set_settings($t, chat_history_messages => 200, chat_history_budget_chars => 1000);
	# What fits in 1,000 bytes with the new message, newest first.
	my $sizes = $dbh->selectcol_arrayref(q{SELECT octet_length(content) FROM messages
		WHERE conversation_id = ? ORDER BY created_at DESC, id DESC}, undef, $conv);
	my ($used, $fit) = (length 'hc-budget: next', 0);
	$fit++ while $fit < @$sizes && ($used += $sizes->[$fit]) <= 1000;
	$m = $turn->('hc-budget');
	is(scalar @$m, $fit + 2, "chat_history_budget_chars 1000: the $fit newest messages that fit");
	cmp_ok($fit, '>=', 3, 'some history still goes') and cmp_ok($fit, '<', 50, 'but not 50 messages');
	set_settings($t, chat_history_messages => 0, chat_history_budget_chars => 24000);
	$m = $turn->('hc-none');
	is_deeply([ map { $_->{role} } @$m ], [ 'system', 'user' ], 'chat_history_messages 0: no history');
}

# --- an answer past 200,000 bytes: cut on a character, the turn complete ------

for my $stream (1, 0) {
	my $u = $t->user(first_name => 'Big' . $stream);
	my $res;
	stream_p($t, '/api/chat/send', { content => "u-big$stream [[big:320]][[slow:2]]", ($stream ? (stream => \1) : ()) },
		$t->auth($u))->then(sub { $res = shift })->wait;
	my $what = $stream ? 'streamed' : 'not streamed';
	if ($stream) {
		is($res->{events}[-1]{event}, 'done', "a 214 KB answer ($what): done");
		my $seen = join '', map { $_->{json}{content} } grep { $_->{event} eq 'delta' } @{ $res->{events} };
		my $bytes = do { use bytes; length(Encode::encode('UTF-8', $seen)) };
		cmp_ok($bytes, '<=', 200000, "  the deltas stop at 200,000 bytes ($bytes)");
		unlike($seen, qr/\x{fffd}/, '  no character cut in two');
	} else {
		is($res->{code}, 201, "a 214 KB answer ($what): 201");
	}
	my ($chars, $octets, $last) = $dbh->selectrow_array(q{SELECT char_length(content), octet_length(content),
		right(content, 1) FROM messages WHERE user_id = ? AND sender = 'assistant'}, undef, $u->{id});
	ok(defined $chars && $octets <= 200000 && $octets > 199000, "  stored, cut near 200,000 bytes ($octets)");
	is($last, "\x{e9}", '  on a whole character');
	is($dbh->selectrow_array(q{SELECT credits FROM users WHERE id = ?}, undef, $u->{id}), 99, '  charged once');
	is($dbh->selectrow_array(q{SELECT count(*) FROM credit_holds WHERE user_id = ?}, undef, $u->{id}), 0,
		'  the hold settled');
	my $r = $t->wait_for(sub { my ($q) = $fake->requests(tag => "u-big$stream");
		$q && defined $q->{cancelled} ? $q : undef }, 10, 'the end of the model call');
	ok($r && $r->{cancelled}, '  the model call was ended there');
}

$t->done;
