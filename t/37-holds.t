#!/usr/bin/perl
# Credit holds (app/credits.h) when the world changes under a turn: the
# account deleted mid-stream, mid-turn and during a model failure; the
# conversation deleted; the user banned; the worker SIGKILLed mid-answer
# and inside the settling transaction.  Each ends with a clean `error`
# event or error answer (or, for a dead worker, a cut stream), nothing
# crashes, every hold ends exactly once (the janitor refunds the orphans),
# and every user's credits equal the sum of their ledger.  Also the
# janitor's purge of sent mail.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test;
use Miky::FakeOpenAI qw(stream_p set_settings);
use Mojo::Promise;
use Time::HiRes qw(sleep time);

my $fake = Miky::FakeOpenAI->new;
# A turn may last 3 s; its hold expires 0.5 s after that; the janitor
# looks every 0.3 s.
my $t = Miky::Test->new(app => 0, threads => 12,
	env => { %{ $fake->env }, MIKY_SWEEP_MS => 300, MIKY_HOLD_GRACE_MS => 500 });
my $dbh = $t->dbh;
set_settings($t, ai_total_timeout_ms => 3000, ai_idle_timeout_ms => 1000,
	ai_first_token_timeout_ms => 2000, ai_max_retries => 0);
$t->start_app;

sub count { $dbh->selectrow_array(@_) }
sub credits { count('SELECT credits FROM users WHERE id = ?', undef, $_[0]{id}) }
sub ledger_ok {
	return !count(q{SELECT count(*) FROM users u WHERE u.credits <>
		(SELECT coalesce(sum(delta), 0) FROM credit_ledger l WHERE l.user_id = u.id)});
}
sub holds { count('SELECT count(*) FROM credit_holds WHERE user_id = ?', undef, $_[0]{id}) }
sub refunds {
	count(q{SELECT count(*) FROM credit_ledger WHERE reason = 'chat_refund' AND ref IN
		(SELECT id::text FROM messages WHERE user_id = ? AND sender = 'user')}, undef, $_[0]{id});
}
sub last_event { $_[0]{events}[-1] // {} }

# until_p(sub {...}, $timeout, $what): runs the event loop (so the
# streams in flight go on) until the sub returns true; false on timeout.
sub until_p {
	my ($cond, $timeout, $what) = @_;
	my ($ok, $deadline) = (0, time + $timeout);
	my $id = Mojo::IOLoop->recurring(0.05 => sub {
		if ($cond->()) { $ok = 1; Mojo::IOLoop->stop }
		elsif (time > $deadline) { Mojo::IOLoop->stop }
	});
	Mojo::IOLoop->start;
	Mojo::IOLoop->remove($id);
	diag("timed out after ${timeout}s waiting for $what") unless $ok;
	return $ok;
}

# A slow answer: ten pieces, 250 ms apart.
my $SLOW = '[[slow:250]][[count:10]]';

# --- the account deleted: mid-stream, mid-turn, during a model failure ----------

{
	my %c = (
		stream  => { markers => $SLOW, stream => 1 },
		plain   => { markers => $SLOW, stream => 0 },
		failing => { markers => '[[hangafter:1]]', stream => 0 },
	);
	my @p;
	for my $name (sort keys %c) {
		my $c = $c{$name};
		$c->{user} = $t->user(first_name => "Gone$name");
		my $u = $c->{user};
		push @p, stream_p($t, '/api/chat/send', { content => "h-del-$name: $c->{markers}",
			($c->{stream} ? (stream => \1) : ()) }, $t->auth($u))->then(sub { $c->{res} = shift });
	}
	# Each deletes itself once its turn is under way (its hold exists).
	for my $name (sort keys %c) {
		my $u = $c{$name}{user};
		ok(until_p(sub { holds($u) == 1 }, 10, "the $name turn"), "deleted ($name): the turn is running");
		my $tx = $t->json_req(DELETE => '/api/user', { password => $u->{password} }, $t->auth($u));
		is($tx->res->code, 204, "deleted ($name): DELETE /api/user answers 204 during the turn");
	}
	Mojo::Promise->all(@p)->wait;
	my $s = $c{stream}{res};
	is($s->{code}, 200, 'deleted mid-stream: the stream had started');
	ok(scalar(grep { $_->{event} eq 'delta' } @{ $s->{events} }), 'deleted mid-stream: deltas came');
	is(last_event($s)->{event}, 'error', 'deleted mid-stream: it ends with an error event');
	is(last_event($s)->{json}{error}{code}, 'unauthorized', 'deleted mid-stream: unauthorized');
	like(last_event($s)->{json}{error}{message} // '', qr/deleted/, 'deleted mid-stream: it says the account was deleted');
	my $p = $c{plain}{res};
	is($p->{code}, 401, 'deleted mid-turn (not streaming): 401');
	is($p->{json}{error}{code}, 'unauthorized', 'deleted mid-turn (not streaming): unauthorized');
	is($c{failing}{res}{code}, 401, 'deleted during a model failure: 401 unauthorized');
	is($c{failing}{res}{json}{error}{code}, 'unauthorized', 'deleted during a model failure: its code');
	for my $name (sort keys %c) {
		is(count('SELECT count(*) FROM users WHERE id = ?', undef, $c{$name}{user}{id}), 0, "deleted ($name): gone");
		is(count('SELECT count(*) FROM credit_holds WHERE user_id = ?', undef, $c{$name}{user}{id}), 0,
			"deleted ($name): no hold left");
	}
	ok(ledger_ok(), "deleted: every user's credits equal their ledger sum");
}

# --- the conversation deleted, the user banned: refunded with a clear error ------

{
	my $cu = $t->user(first_name => 'Convgone');
	my $bu = $t->user(first_name => 'Banned');
	my ($cres, $bres);
	my $conv = $t->json_req(POST => '/api/conversations', { persona => 'general' }, $t->auth($cu))
		->res->json('/conversation/id');
	my @p = (
		stream_p($t, "/api/conversations/$conv/messages", { content => "h-conv: $SLOW", stream => \1 },
			$t->auth($cu))->then(sub { $cres = shift }),
		stream_p($t, '/api/chat/send', { content => "h-ban: $SLOW", stream => \1 }, $t->auth($bu))
			->then(sub { $bres = shift }),
	);
	ok(until_p(sub { holds($cu) == 1 && holds($bu) == 1 }, 10, 'both turns'), 'two turns running');
	is($t->json_req(DELETE => "/api/conversations/$conv", undef, $t->auth($cu))->res->code, 204,
		'the conversation is deleted mid-turn');
	$dbh->do('UPDATE users SET banned_at = now() WHERE id = ?', undef, $bu->{id});
	Mojo::Promise->all(@p)->wait;

	is(last_event($cres)->{event}, 'error', 'conversation deleted: an error event ends the stream');
	is(last_event($cres)->{json}{error}{code}, 'not_found', 'conversation deleted: not_found');
	like(last_event($cres)->{json}{error}{message} // '', qr/refunded/, 'conversation deleted: says refunded');
	is(credits($cu), 100, 'conversation deleted: the credits are back');
	is(refunds($cu) + count(q{SELECT count(*) FROM credit_ledger WHERE user_id = ? AND reason = 'chat_refund'},
		undef, $cu->{id}), 1, 'conversation deleted: one refund row');
	is(count(q{SELECT count(*) FROM messages WHERE user_id = ?}, undef, $cu->{id}), 0,
		'conversation deleted: no message left');

	is(last_event($bres)->{event}, 'error', 'banned: an error event ends the stream');
	is(last_event($bres)->{json}{error}{code}, 'forbidden', 'banned: forbidden');
	is(credits($bu), 100, 'banned: the credits are back');
	is(refunds($bu), 1, 'banned: one refund row');
	is(count(q{SELECT count(*) FROM messages WHERE user_id = ? AND sender = 'assistant'}, undef, $bu->{id}), 0,
		'banned: no answer stored');
	is(holds($cu) + holds($bu), 0, 'no hold left');
	ok(ledger_ok(), "every user's credits equal their ledger sum");
}

# --- SIGKILL of the workers mid-answer: the janitor refunds the hold -------------

{
	my $u = $t->user(first_name => 'Killed');
	my $res;
	my $p = stream_p($t, '/api/chat/send', { content => "h-kill: $SLOW", stream => \1 }, $t->auth($u),
		on_event => sub {
			my ($ev, $r) = @_;
			return unless $ev->{event} eq 'delta' && 2 == grep { $_->{event} eq 'delta' } @{ $r->{events} };
			my @w = $t->worker_pids;
			$t->allow_log(qr/"msg":"worker died".*"signal":9\b/);
			kill 'KILL', @w;
		})->then(sub { $res = shift });
	$p->wait;
	ok(!grep({ $_->{event} =~ /^(?:done|error)$/ } @{ $res->{events} }), 'killed: the stream was cut');
	is(credits($u), 99, 'killed: the hold still holds the credit at first');
	my $t0 = time;
	ok($t->wait_for(sub { holds($u) == 0 }, 15, 'the sweep'), 'killed: the janitor settles the orphan hold');
	note(sprintf 'swept %.1f s after the cut (the hold lasts 3.5 s)', time - $t0);
	is(credits($u), 100, 'killed: the credits are back');
	is(refunds($u), 1, 'killed: exactly one refund row, for the user message');
	is(count(q{SELECT count(*) FROM messages WHERE user_id = ? AND sender = 'assistant'}, undef, $u->{id}), 0,
		'killed: no answer stored');
	ok(ledger_ok(), "killed: every user's credits equal their ledger sum");
	ok($t->wait_for(sub { $t->json_req(GET => '/api/health')->res->code == 200 }, 10, 'health'),
		'the workers are back');
}

# --- SIGKILL inside the settling transaction: all or nothing -------------------
# A referred user's turn settles under its referrer's row lock, after it
# has stored the answer and ended the hold.  The test holds that lock, so
# the settle waits inside its transaction; the worker is killed there.

{
	my $ref = $t->user(first_name => 'Referrer');
	my $code = $ref->{user}{referral_code};
	my $u = $t->user(first_name => 'Inside', referral_code => $code);
	my $lock = $t->dbh->clone({ AutoCommit => 0 });
	$lock->do('SELECT 1 FROM users WHERE id = ? FOR UPDATE', undef, $ref->{id});
	my $res;
	my $p = stream_p($t, '/api/chat/send', { content => 'h-inside: [[count:2]]', stream => \1 }, $t->auth($u))
		->then(sub { $res = shift });
	my $blocked = until_p(sub {
		count(q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
			AND application_name = 'miky' AND state = 'active'});
	}, 10, 'the settle to wait on the lock');
	ok($blocked, 'inside: the settle waits inside its transaction');
	is(count(q{SELECT count(*) FROM messages WHERE user_id = ? AND sender = 'assistant'}, undef, $u->{id}), 0,
		'inside: its answer is not visible yet');
	$t->allow_log(qr/"msg":"worker died".*"signal":9\b/);
	kill 'KILL', $t->worker_pids;
	$p->wait;
	$lock->rollback;
	$lock->disconnect;
	ok($t->wait_for(sub { holds($u) == 0 }, 15, 'the sweep'), 'inside: the janitor ends the hold');
	is(count(q{SELECT count(*) FROM messages WHERE user_id = ? AND sender = 'assistant'}, undef, $u->{id}), 0,
		'inside: nothing of the settle was kept (no answer)');
	is(credits($u), 100, 'inside: the credits are back');
	is(refunds($u), 1, 'inside: one refund row');
	is(count(q{SELECT status FROM referrals WHERE referred_user_id = ?}, undef, $u->{id}), 'pending',
		'inside: the referral was not activated');
	is(credits($ref), 100, 'inside: the referrer got nothing');
	ok(ledger_ok(), "inside: every user's credits equal their ledger sum");
	ok($t->wait_for(sub { $t->json_req(GET => '/api/health')->res->code == 200 }, 10, 'health'),
		'the workers are back');
	# The same turn again, unlocked: it completes and activates.
	my $again = stream_p($t, '/api/chat/send', { content => 'h-again: [[count:2]]', stream => \1 }, $t->auth($u));
	my $r2;
	$again->then(sub { $r2 = shift })->wait;
	is(last_event($r2)->{event}, 'done', 'unlocked, a turn completes');
	is(count(q{SELECT status FROM referrals WHERE referred_user_id = ?}, undef, $u->{id}), 'activated',
		'and activates the referral');
	ok(ledger_ok(), "every user's credits equal their ledger sum");
}

# --- the janitor purges sent mail past its retention -------------------------------

{
	$dbh->do(q{INSERT INTO email_outbox (to_addr, template, status, sent_at, created_at) VALUES
		('old.sent@example.com', 'reset', 'sent', now() - interval '31 days', now() - interval '31 days'),
		('old.dead@example.com', 'reset', 'dead', NULL, now() - interval '31 days'),
		('new.sent@example.com', 'reset', 'sent', now() - interval '29 days', now() - interval '29 days'),
		('old.pending@example.com', 'reset', 'pending', NULL, now() - interval '40 days')});
	ok($t->wait_for(sub { !count(q{SELECT count(*) FROM email_outbox WHERE to_addr LIKE 'old.%'
		AND status <> 'pending'}) }, 10, 'the purge'), 'sent and dead mail older than 30 days is purged');
	is(count(q{SELECT count(*) FROM email_outbox WHERE to_addr = 'new.sent@example.com'}), 1,
		'younger sent mail stays');
	is(count(q{SELECT count(*) FROM email_outbox WHERE to_addr = 'old.pending@example.com'}), 1,
		'pending mail is never purged');
}

$t->done;
