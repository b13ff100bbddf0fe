#!/usr/bin/perl
# When the model fails: errors before the first token (500, 429) are
# retried up to ai_max_retries, honouring Retry-After, then answered 502
# (or an error event) with the credits refunded; first-token, idle and
# total timeouts; a model that breaks off mid-answer; a client that goes
# away mid-answer (the model call is cancelled, the part received is
# kept and charged).  Each case is its own user, and they all run at once.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test;
use Miky::FakeOpenAI qw(answer stream_p set_settings);
use Mojo::Promise;
use Time::HiRes ();

my $fake = Miky::FakeOpenAI->new;
my $t = Miky::Test->new(app => 0, env => $fake->env, threads => 12);
my $dbh = $t->dbh;
my %S = (ai_first_token_timeout_ms => 1000, ai_idle_timeout_ms => 1000,
	ai_total_timeout_ms => 4000, ai_max_retries => 2);
set_settings($t, %S);
$t->start_app;

# name => [content markers, stream, expected outcome, options]
#   outcome: 'refund' (502/504 or an error event: only the user message
#   kept, credits back), 'partial' (streaming: the deltas seen kept and
#   charged, then an error event), 'gone' (the client hung up mid-answer:
#   the part received is kept and charged), 'ok'.
my @CASES = (
	[ fail500      => '[[fail500]]',             0, refund  => status => 502, code => 'upstream_error', requests => 3 ],
	[ fail500_sse  => '[[fail500]]',             1, refund  => code => 'upstream_error', requests => 3 ],
	[ fail429      => '[[fail429]]',             0, refund  => status => 502, code => 'upstream_error', requests => 3, min_gap => 0.9 ],
	[ once500      => '[[fail500once]]',         0, ok      => status => 201, requests => 2, max_gap => 0.9 ],
	[ once429_sse  => '[[fail429once]]',         1, ok      => requests => 2, min_gap => 0.9 ],
	[ hang         => '[[hang]]',                0, refund  => status => 504, code => 'upstream_timeout', requests => 1, min_s => 1.0, max_s => 2.5, cancelled => 1 ],
	[ hang_sse     => '[[hang]]',                1, refund  => code => 'upstream_timeout', requests => 1, min_s => 1.0, max_s => 2.5, cancelled => 1 ],
	[ idle         => '[[hangafter:2]]',         0, refund  => status => 504, code => 'upstream_timeout', requests => 1, min_s => 1.0, max_s => 2.5, cancelled => 1 ],
	[ idle_sse     => '[[hangafter:2]]',         1, partial => deltas => 2, code => 'upstream_timeout', requests => 1, min_s => 1.0, max_s => 2.5, cancelled => 1 ],
	[ total        => '[[slow:300]][[count:40]]', 0, refund  => status => 504, code => 'upstream_timeout', requests => 1, min_s => 3.9, max_s => 5.5, cancelled => 1 ],
	[ drop         => '[[drop:2]]',              0, refund  => status => 502, code => 'upstream_error', requests => 1 ],
	[ drop_sse     => '[[drop:2]]',              1, partial => deltas => 2, code => 'upstream_error', requests => 1 ],
	[ gone_sse     => '[[slow:200]][[count:20]]', 1, gone    => close_after => 2, requests => 1, cancelled => 1 ],
	[ gone_json    => '[[slow:200]][[count:20]]', 0, gone    => close_after_s => 1, requests => 1, cancelled => 1 ],
);

my (%case, @p);
for my $c (@CASES) {
	my ($name, $markers, $stream, $outcome, %o) = @$c;
	my $u = $t->user(first_name => $name =~ s/[^a-z0-9]//gr);
	$case{$name} = { user => $u, outcome => $outcome, stream => $stream, %o,
		content => "f-$name: please answer $markers" };
}
# All at once: each case is one user, so they share nothing.
for my $name (map { $_->[0] } @CASES) {
	my $c = $case{$name};
	push @p, stream_p($t, '/api/chat/send', { content => $c->{content}, ($c->{stream} ? (stream => \1) : ()) },
		$t->auth($c->{user}), map { $_ => $c->{$_} } grep { exists $c->{$_} } qw(close_after close_after_s))
		->then(sub { $c->{res} = shift });
}
Mojo::Promise->all(@p)->wait;

sub rows {
	my ($sql, @bind) = @_;
	return $dbh->selectall_arrayref($sql, { Slice => {} }, @bind);
}

for my $name (map { $_->[0] } @CASES) {
	my $c = $case{$name};
	my ($u, $res) = @$c{qw(user res)};
	my $uid = $u->{id};
	my $elapsed = $res->{t_end} - $res->{t0};
	note sprintf '%s: %.2fs, HTTP %s', $name, $elapsed, $res->{code} // '-';

	# What the client got.
	if ($c->{outcome} eq 'gone') {
		ok($res->{cut}, "$name: the client hung up") or diag explain $res;
	} elsif (!$c->{stream}) {
		is($res->{code}, $c->{status}, "$name: HTTP $c->{status}") or diag $res->{raw};
		if ($c->{code}) {
			is($res->{json}{error}{code}, $c->{code}, "$name: $c->{code}");
			like($res->{json}{error}{message} // '', qr/refunded/, "$name: the message says the credits were refunded");
		} else {
			is($res->{json}{assistant_message}{content}, answer(3), "$name: the answer");
		}
	} else {
		is($res->{code}, 200, "$name: the stream started (200)");
		my @names = map { $_->{event} } @{ $res->{events} };
		my @want = $c->{outcome} eq 'ok' ? ('start', ('delta') x 3, 'done')
			: $c->{outcome} eq 'partial' ? ('start', ('delta') x $c->{deltas}, 'error')
			: ('start', 'error');
		is_deeply(\@names, \@want, "$name: events @want") or diag $res->{raw};
		if ($c->{code}) {
			is($res->{events}[-1]{json}{error}{code}, $c->{code}, "$name: error event $c->{code}");
			ok($res->{events}[-1]{json}{error}{message}, "$name: error event message");
		}
		like($res->{raw}, qr/\n\n\z/, "$name: the stream ends with a complete event");
	}
	cmp_ok($elapsed, '>=', $c->{min_s}, "$name: not before ${\ $c->{min_s}}s") if $c->{min_s};
	cmp_ok($elapsed, '<=', $c->{max_s}, "$name: within ${\ $c->{max_s}}s") if $c->{max_s};

	# What the model got.
	my @r = $fake->wait_requests(tag => "f-$name:", n => $c->{requests}, ended => 1, timeout => 5);
	is(scalar @r, $c->{requests}, "$name: the model was asked $c->{requests} time(s)");
	if ($c->{min_gap} || $c->{max_gap}) {
		my @gaps = map { $r[$_]{t} - $r[$_ - 1]{t} } 1 .. $#r;
		for my $g (@gaps) {
			cmp_ok($g, '>=', $c->{min_gap}, sprintf('%s: retried after %.2fs (Retry-After: 1)', $name, $g)) if $c->{min_gap};
			cmp_ok($g, '<', $c->{max_gap}, sprintf('%s: retried after %.2fs (back-off)', $name, $g)) if $c->{max_gap};
		}
	}
	if ($c->{cancelled}) {
		ok($r[-1]{cancelled}, "$name: the model call was cancelled (the app hung up)");
	}

	# What was stored and charged.  A client that hung up is not waited
	# for: the app settles the turn by itself.
	my $want_assistant = $c->{outcome} ne 'refund';
	$t->wait_for(sub {
		!$dbh->selectrow_array('SELECT count(*) FROM credit_holds WHERE user_id = ?', undef, $uid)
	}, 10, "$name: the turn to settle");
	my $msgs = rows(q{SELECT id, sender, content, credits_consumed FROM messages WHERE user_id = ? ORDER BY created_at}, $uid);
	my $ledger = rows(q{SELECT delta, reason, ref FROM credit_ledger WHERE user_id = ? AND reason <> 'signup' ORDER BY id}, $uid);
	my $conv = rows(q{SELECT id, message_count FROM conversations WHERE user_id = ?}, $uid);
	my $credits = $dbh->selectrow_array('SELECT credits FROM users WHERE id = ?', undef, $uid);
	is(scalar @$conv, 1, "$name: one conversation");
	is($msgs->[0]{sender}, 'user', "$name: the user message is stored");
	is($msgs->[0]{content}, $c->{content}, "$name: its content");
	is($conv->[0]{message_count}, scalar @$msgs, "$name: message_count matches the messages");
	my $umid = $msgs->[0]{id};
	if ($want_assistant) {
		is(scalar @$msgs, 2, "$name: an assistant message is stored");
		is($msgs->[1]{sender}, 'assistant', "$name: sender assistant");
		is($msgs->[1]{credits_consumed}, 1, "$name: charged on the message");
		is($credits, 99, "$name: charged 1 credit");
		is_deeply($ledger, [ { delta => -1, reason => 'chat', ref => $umid } ], "$name: one ledger row, chat, no refund");
		if ($c->{outcome} eq 'ok') {
			is($msgs->[1]{content}, answer(3), "$name: the whole answer");
		} elsif ($c->{outcome} eq 'partial') {
			is($msgs->[1]{content}, answer($c->{deltas}), "$name: the part received is kept");
		} elsif ($c->{stream}) {
			my $seen = join '', map { $_->{json}{content} } grep { $_->{event} eq 'delta' } @{ $res->{events} };
			is($seen, answer($c->{close_after}), "$name: the client saw $c->{close_after} deltas");
			is($msgs->[1]{content}, $seen, "$name: the partial answer the client saw is stored");
		} else {
			# The client saw nothing; what the app had received is kept:
			# the pieces the model sent, but perhaps the last in flight.
			my $sent = $r[-1]{sent_pieces};
			my ($k) = grep { answer($_) eq $msgs->[1]{content} } 1 .. 20;
			ok($k && $k <= $sent && $k >= $sent - 1,
				"$name: the part received is stored (" . ($k // 'no') . " of $sent pieces sent)")
				or diag $msgs->[1]{content};
		}
	} else {
		is(scalar @$msgs, 1, "$name: nothing but the user message is stored");
		is($credits, 100, "$name: credits refunded");
		is_deeply($ledger, [ { delta => -1, reason => 'chat', ref => $umid }, { delta => 1, reason => 'chat_refund', ref => $umid } ],
			"$name: the ledger shows the reservation and its refund");
	}
}

# The app hung up on the model soon after its client hung up.
for my $name (qw(gone_sse gone_json)) {
	my $c = $case{$name};
	my ($r) = $fake->requests(tag => "f-$name:");
	my $lag = ($r->{end_t} // 1e10) - $c->{res}{t_cut};
	cmp_ok($lag, '<', 1.0, sprintf('%s: the model call ended %.2fs after the client left', $name, $lag));
	cmp_ok($r->{sent_pieces}, '<', 20, "$name: the model had not finished ($r->{sent_pieces} of 20 pieces sent)");
}

# --- a retry that comes too late for the total budget is not made --------------------

set_settings($t, ai_total_timeout_ms => 1500, ai_max_retries => 3);
my $w = $t->user(first_name => 'Late');
my $t0 = Time::HiRes::time();
my $tx = $t->json_req(POST => '/api/chat/send', { content => 'f-late: [[fail429]]' }, $t->auth($w));
my $took = Time::HiRes::time() - $t0;
is($tx->res->code, 502, 'total budget 1.5 s with Retry-After 1: 502');
is(scalar $fake->requests(tag => 'f-late:'), 2, 'one retry fits in the budget, the next does not');
cmp_ok($took, '<', 2.5, sprintf('answered in %.2fs, not after more waiting', $took));
set_settings($t, %S);

# --- the books ------------------------------------------------------------------------

my $bad = $dbh->selectall_arrayref(q{SELECT u.id FROM users u LEFT JOIN credit_ledger l ON l.user_id = u.id
	GROUP BY u.id HAVING u.credits <> coalesce(sum(l.delta), 0)});
is_deeply($bad, [], 'every user: credits = sum of ledger deltas');
is($dbh->selectrow_array('SELECT count(*) FROM credit_holds'), 0, 'no turn left open');

my $key = $fake->key;
my $log = $t->log;
unlike($log, qr/\Q$key\E/, 'the API key never appears in the app log');
like($log, qr/model call/, 'the failures were logged');

$t->done;
