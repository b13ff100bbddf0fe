#!/usr/bin/perl
# Concurrent turns of one user: 25 at once with credits for 5 — exactly 5
# are answered, the rest get 402, the balance never goes below zero and
# the ledger adds up.  Then the per-user limits: turns at once
# (chat_max_concurrent_turns) and turns per minute (chat_turns_per_minute)
# answer 429 rate_limited with Retry-After.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test;
use Miky::FakeOpenAI qw(answer stream_p set_settings);
use Mojo::IOLoop;
use Mojo::Promise;

my $fake = Miky::FakeOpenAI->new;
my $t = Miky::Test->new(app => 0, env => $fake->env, threads => 16);
my $dbh = $t->dbh;
# Only credits may limit the first part.
set_settings($t, ai_first_token_timeout_ms => 5000, ai_idle_timeout_ms => 5000,
	ai_total_timeout_ms => 20000, chat_max_concurrent_turns => 100,
	chat_turns_per_minute => 1000, signup_credits => 5);
$t->start_app;

sub credits { $dbh->selectrow_array('SELECT credits FROM users WHERE id = ?', undef, $_[0]{id}) }
sub count_rows {
	my ($sql, @bind) = @_;
	return $dbh->selectrow_array("SELECT count(*) FROM $sql", undef, @bind);
}

# --- 25 turns at once, credits for 5 ---------------------------------------------------

my $u = $t->user(first_name => 'Rush');
is(credits($u), 5, 'credits for exactly 5 general turns');
my $U = $t->auth($u);
my $lowest = 5;
my $poll = Mojo::IOLoop->recurring(0.02 => sub { my $c = credits($u); $lowest = $c if $c < $lowest });
my @res;
my @p = map {
	my $i = $_;
	my $stream = $i % 2;
	stream_p($t, '/api/chat/send', { content => "c-$i: go [[slow:100]][[count:3]]", ($stream ? (stream => \1) : ()) }, $U)
		->then(sub { $res[$i] = shift; $res[$i]{stream} = $stream });
} 0 .. 24;
Mojo::Promise->all(@p)->wait;
Mojo::IOLoop->remove($poll);

my @ok = grep { ($_->{code} // 0) == 201 || (($_->{code} // 0) == 200 && @{ $_->{events} } && $_->{events}[-1]{event} eq 'done') } @res;
my @refused = grep { ($_->{code} // 0) == 402 } @res;
is(scalar @ok, 5, 'exactly 5 turns answered');
is(scalar @refused, 20, 'the other 20: 402');
is(scalar(grep { ($_->{json}{error}{code} // '') eq 'insufficient_credits' } @refused), 20, '402 insufficient_credits');
is(scalar(grep { ($_->{headers}->content_type // '') !~ m{^application/json} } @refused), 0,
	'every 402 is plain JSON, streaming asked or not');
ok(scalar(grep { $_->{stream} } @refused), 'some of them asked for a stream');
is(scalar(grep { $_->{stream} && $_->{code} == 200 } @ok) + scalar(grep { !$_->{stream} && $_->{code} == 201 } @ok), 5,
	'streamed turns end in done, others in 201');
my @remaining = sort { $a <=> $b } map { $_->{stream} ? $_->{events}[-1]{json}{credits_remaining} : $_->{json}{credits_remaining} } @ok;
is_deeply(\@remaining, [ 0 .. 4 ], 'credits_remaining 4, 3, 2, 1, 0: each turn took one');
cmp_ok($lowest, '>=', 0, 'the balance was never seen below zero');
is(credits($u), 0, 'balance 0');
is($dbh->selectrow_array('SELECT coalesce(sum(delta), 0) FROM credit_ledger WHERE user_id = ?', undef, $u->{id}), 0,
	'users.credits = sum of ledger deltas');
is(count_rows(q{credit_ledger WHERE user_id = ? AND balance_after < 0}, $u->{id}), 0, 'no ledger row below zero');
is(count_rows(q{credit_ledger WHERE user_id = ? AND reason = 'chat'}, $u->{id}), 5, '5 chat ledger rows');
is(count_rows(q{credit_ledger WHERE user_id = ? AND reason = 'chat_refund'}, $u->{id}), 0, 'no refunds');
is(count_rows(q{messages WHERE user_id = ? AND sender = 'assistant'}, $u->{id}), 5, 'exactly 5 assistant messages');
is(count_rows(q{messages WHERE user_id = ? AND sender = 'user'}, $u->{id}), 5, 'exactly 5 user messages (a 402 stores none)');
is(count_rows(q{conversations WHERE user_id = ?}, $u->{id}), 5, 'exactly 5 conversations');
is(count_rows(q{messages WHERE user_id = ? AND sender = 'assistant' AND content <> ?}, $u->{id}, answer(3)), 0,
	'each answer complete');
is(scalar $fake->requests(tag => 'c-'), 5, 'the model was asked 5 times');
is(count_rows(q{credit_holds WHERE user_id = ?}, $u->{id}), 0, 'no turn left open');

# --- turns at once: chat_max_concurrent_turns ----------------------------------------

set_settings($t, chat_max_concurrent_turns => 2, signup_credits => 100);
my $v = $t->user(first_name => 'Busy');
my $V = $t->auth($v);
@res = ();
@p = map {
	my $i = $_;
	stream_p($t, '/api/chat/send', { content => "k-$i: [[slow:300]][[count:4]]" }, $V)->then(sub { $res[$i] = shift });
} 0 .. 2;
Mojo::Promise->all(@p)->wait;
my @codes = sort map { $_->{code} } @res;
is_deeply(\@codes, [ 201, 201, 429 ], 'three at once with a limit of two: 201, 201, 429');
my ($limited) = grep { $_->{code} == 429 } @res;
is($limited->{json}{error}{code}, 'rate_limited', '429 rate_limited');
like($limited->{headers}->header('Retry-After') // '', qr/^[1-9]\d*$/, 'with Retry-After');
is(credits($v), 98, 'two turns charged, the refused one not');
is(count_rows(q{messages WHERE user_id = ?}, $v->{id}), 4, 'the refused turn stored nothing');
is(count_rows(q{credit_ledger WHERE user_id = ? AND reason <> 'signup'}, $v->{id}), 2, 'two ledger rows');
my $tx = $t->json_req(POST => '/api/chat/send', { content => 'k-after: now [[count:1]]' }, $V);
is($tx->res->code, 201, 'once they finished, a new turn is allowed');
# A streaming request over the limit is refused before the stream starts.
@res = ();
@p = map {
	my $i = $_;
	stream_p($t, '/api/chat/send', { content => "k2-$i: [[slow:300]][[count:4]]", stream => \1 }, $V)->then(sub { $res[$i] = shift });
} 0 .. 2;
Mojo::Promise->all(@p)->wait;
is_deeply([ sort map { $_->{code} } @res ], [ 200, 200, 429 ], 'streaming: 200, 200, 429');
($limited) = grep { $_->{code} == 429 } @res;
is($limited->{json}{error}{code}, 'rate_limited', 'a plain JSON 429');
is(scalar(grep { $_->{code} == 200 && $_->{events}[-1]{event} eq 'done' } @res), 2, 'the two streams end in done');

# --- turns per minute: chat_turns_per_minute ------------------------------------------

set_settings($t, chat_max_concurrent_turns => 100, chat_turns_per_minute => 3);
my $w = $t->user(first_name => 'Chatty');
my $W = $t->auth($w);
# The window is the clock minute: do not start in its last seconds.
$t->wait_for(sub { $dbh->selectrow_array(q{SELECT extract(second FROM now()) < 55}) }, 20, 'the start of a minute');
for my $i (1 .. 3) {
	$tx = $t->json_req(POST => '/api/chat/send', { content => "m-$i: [[count:1]]" }, $W);
	is($tx->res->code, 201, "turn $i of 3 in a minute: 201");
}
$tx = $t->json_req(POST => '/api/chat/send', { content => 'm-4: [[count:1]]' }, $W);
is($tx->res->code, 429, 'turn 4 in the same minute: 429');
is($tx->res->json('/error/code'), 'rate_limited', 'rate_limited');
my $ra = $tx->res->headers->header('Retry-After') // '';
like($ra, qr/^\d+$/, "Retry-After: $ra");
ok($ra >= 1 && $ra <= 60, 'Retry-After within the minute');
$tx = $t->json_req(POST => '/api/chat/send', { content => 'm-5: [[count:1]]', stream => \1 }, $W);
is($tx->res->code, 429, 'a streaming turn too: 429');
is(credits($w), 97, 'three turns charged');
is(count_rows(q{messages WHERE user_id = ? AND content LIKE 'm-4:%'}, $w->{id}), 0, 'the refused turn stored nothing');
is(scalar $fake->requests(tag => 'm-4:'), 0, 'and never reached the model');
my $x = $t->user(first_name => 'Other');
$tx = $t->json_req(POST => '/api/chat/send', { content => 'm-other: [[count:1]]' }, $t->auth($x));
is($tx->res->code, 201, 'another user is not limited by it');

my $bad = $dbh->selectall_arrayref(q{SELECT u.id FROM users u LEFT JOIN credit_ledger l ON l.user_id = u.id
	GROUP BY u.id HAVING u.credits <> coalesce(sum(l.delta), 0)});
is_deeply($bad, [], 'every user: credits = sum of ledger deltas');

$t->done;
