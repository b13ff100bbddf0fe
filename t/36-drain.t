#!/usr/bin/perl
# SIGTERM while three chat streams are open: the app drains — each stream
# runs to its done event and is stored, nothing is cut — and then exits 0.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test;
use Miky::FakeOpenAI qw(answer stream_p set_settings);
use Mojo::Promise;
use Time::HiRes qw(time);

my $fake = Miky::FakeOpenAI->new;
my $t = Miky::Test->new(app => 0, env => { %{ $fake->env }, MIKY_DRAIN_SECONDS => 30 });
my $dbh = $t->dbh;
set_settings($t, ai_first_token_timeout_ms => 5000, ai_idle_timeout_ms => 5000, ai_total_timeout_ms => 20000);
$t->start_app;

my $N = 10;    # pieces of each answer, 300 ms apart
my @users = map { $t->user(first_name => "Drain$_") } 1 .. 3;
my ($term_at, %started);
my @res;
my @p = map {
	my $i = $_;
	stream_p($t, '/api/chat/send', { content => "d-$i: take your time [[slow:300]][[count:$N]]", stream => \1 },
		$t->auth($users[$i]), on_event => sub {
			my ($ev) = @_;
			return unless $ev->{event} eq 'delta';
			$started{$i} = 1;
			# Once every stream is under way, stop the app.
			if (!$term_at && keys %started == 3) {
				$term_at = time;
				ok($t->signal_app('TERM'), 'SIGTERM sent with three streams open');
			}
		})->then(sub { $res[$i] = shift });
} 0 .. 2;
Mojo::Promise->all(@p)->wait;

ok($term_at, 'the signal was sent mid-stream');
for my $i (0 .. 2) {
	my $r = $res[$i];
	my @names = map { $_->{event} } @{ $r->{events} };
	is($r->{code}, 200, "stream $i: 200");
	is_deeply(\@names, [ 'start', ('delta') x $N, 'done' ], "stream $i: every delta, then done")
		or diag $r->{raw};
	cmp_ok($r->{events}[-1]{t}, '>', $term_at + 0.5, "stream $i: went on well after SIGTERM");
	is($r->{events}[-1]{json}{assistant_message}{content}, answer($N), "stream $i: the whole answer");
	is($dbh->selectrow_array(q{SELECT content FROM messages WHERE user_id = ? AND sender = 'assistant'}, undef, $users[$i]{id}),
		answer($N), "stream $i: stored");
	is($dbh->selectrow_array('SELECT credits FROM users WHERE id = ?', undef, $users[$i]{id}), 99, "stream $i: charged once");
	my ($f) = $fake->wait_requests(tag => "d-$i:", ended => 1);
	ok($f && !$f->{cancelled}, "stream $i: the model call was not cut");
}
is($dbh->selectrow_array('SELECT count(*) FROM credit_holds'), 0, 'no turn left open');

my $status = $t->wait_app_exit(30);
is($status, 0, 'then the app exits 0');
my $log = $t->log;
unlike($log, qr/drain timed out|did not drain/, 'the drain did not time out');

$t->done;
