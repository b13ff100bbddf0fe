#!/usr/bin/perl
# Nothing in Miky assumes one app host: two `miky serve` instances, each
# on its own socket as two hosts would be, behind one nginx upstream with
# passive health checks.  Both serve; an admin's settings change reaches
# both at once; per-account limits hold across both; one killed under
# load (SIGKILL of the whole instance) fails only the requests in flight
# on it, and once restarted it takes its share again.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is);
use HTTP::Tiny;
use Mojo::JSON qw(decode_json);
use Mojo::Promise;
use POSIX ();
use Time::HiRes qw(sleep time);

# The stand-in model answers in about three seconds: long enough for
# chat turns to be in flight when an instance is killed.
my $t = Miky::Test->new(apps => 2, workers => 2, threads => 8,
	env => { MIKY_STANDIN_DELAY_MS => 300 });
my $dbh = $t->dbh;
is($t->apps, 2, 'two app instances');
ok($t->app_pid(1) && $t->app_pid(2) && $t->app_pid(1) != $t->app_pid(2), 'each with its own master');
like(scalar(`cat '@{[ $t->dir ]}/nginx.conf'`), qr/server unix:\S+miky\.sock max_fails=1 fail_timeout=2s;\s+server unix:\S+miky-2\.sock max_fails=1/,
	'one upstream, both sockets, passive health checks');

# The instance that answered a request, from the request ids in their logs.
sub instance_of {
	my ($rids) = @_;
	my %log = map { $_ => $t->log($_) } 1, 2;
	my %by;
	for my $rid (@$rids) {
		for my $k (1, 2) {
			if (index($log{$k}, qq{"msg":"request","request_id":"$rid"}) >= 0) {
				$by{$rid} = $k;
				last;
			}
		}
	}
	return \%by;
}
# burst($n, $path, \%headers): $n requests at once; (answers, {instance => count}).
sub burst {
	my ($n, $path, $h) = @_;
	my @res;
	Mojo::Promise->all(map { $t->ua->get_p($path => $h // {}) } 1 .. $n)->then(sub {
		@res = map { $_->[0]->res } @_;
	})->wait;
	my @rids = map { $_->headers->header('X-Request-Id') // '' } @res;
	my $by;
	$t->wait_for(sub { $by = instance_of(\@rids); keys %$by == @rids }, 10, 'the log lines');
	my %count;
	$count{$_}++ for values %$by;
	return (\@res, \%count);
}

# --- both serve -----------------------------------------------------------------

my ($res, $count) = burst(24, '/api/health');
is(scalar(grep { $_->code == 200 } @$res), 24, '24 requests at once: all 200');
ok($count->{1} && $count->{2}, "both instances served ($count->{1}/$count->{2})") or diag explain $count;

my $admin = $t->admin(first_name => 'Ada');
my $A = $t->auth($admin);

# --- a settings change reaches both at once --------------------------------------

my $settings = $t->json_req(GET => '/api/admin/settings', undef, $A)->res->json('/settings');
my $personas = $settings->{personas};
$personas->{general}{credits_per_message} = 9;
my $tx = $t->json_req(PUT => '/api/admin/settings', { personas => $personas, chat_turns_per_minute => 6,
	chat_max_concurrent_turns => 100 }, $A);
is($tx->res->code, 200, 'an admin changes the price of general, and the chat limits') or diag $tx->res->body;
# Bursts until both instances have answered with the new price and no
# answer has the old one (an instance that missed the notification would
# keep it until its one-minute reload).
my $t0 = time;
my %saw;
ok($t->wait_for(sub {
	my ($r, $c) = burst(16, '/api/personas');
	my %price;
	for (@$r) {
		my ($g) = grep { $_->{id} eq 'general' } @{ $_->json('/personas') // [] };
		$price{ $g->{credits_per_message} // '?' }++;
	}
	return 0 unless keys %price == 1 && $price{9};
	$saw{$_} += $c->{$_} for keys %$c;
	$saw{1} && $saw{2};
}, 40, 'the new price from both instances'), 'both instances answer with the new price')
	or diag explain \%saw;
my $took = time - $t0;
cmp_ok($took, '<', 50, sprintf('in %.1f s: by NOTIFY, not the one-minute reload', $took));

# --- per-account limits hold across both --------------------------------------------

# Credits: 100, and general costs 9: 11 turns can be paid, whoever serves them.
my $u = $t->user(first_name => 'Uma');
$dbh->do(q{UPDATE users SET credits = 0 WHERE id = ?}, undef, $u->{id});
$dbh->do(q{INSERT INTO credit_ledger (user_id, delta, balance_after, reason, ref) VALUES (?, -100, 0, 'admin', 'test')},
	undef, $u->{id});
$t->json_req(PUT => "/api/admin/users/$u->{id}", { credits_delta => 45 }, $A);
my @turns;
Mojo::Promise->all(map {
	$t->ua->post_p('/api/chat/send' => $t->auth($u) => json => { content => "turn $_" })
} 1 .. 6)->then(sub { @turns = map { $_->[0]->res } @_ })->wait;
my %codes;
$codes{ $_->code }++ for @turns;
is($codes{201}, 5, 'six turns at once, credits for five: five answered') or diag explain \%codes;
is($codes{402}, 1, 'and one 402');
is($dbh->selectrow_array('SELECT credits FROM users WHERE id = ?', undef, $u->{id}), 0, 'the balance is 0, not below');
my $by = instance_of([ map { $_->headers->header('X-Request-Id') } @turns ]);
my %k;
$k{$_}++ for values %$by;
note('turns served by instance 1: ' . ($k{1} // 0) . ', instance 2: ' . ($k{2} // 0));

# The turns-per-minute limit (6): counted in PostgreSQL, whoever serves.
my $v = $t->user(first_name => 'Vic');
my @r;
Mojo::Promise->all(map {
	$t->ua->post_p('/api/chat/send' => $t->auth($v) => json => { content => "go $_" })
} 1 .. 14)->then(sub { @r = map { $_->[0]->res } @_ })->wait;
my %c;
$c{ $_->code }++ for @r;
my $windows = $dbh->selectrow_array(q{SELECT count(*) FROM rate_limits WHERE key = ?}, undef, "chat:$v->{id}");
my $max = 6 * ($windows || 1);
ok(($c{201} // 0) == $max || ($windows > 1 && ($c{201} // 0) <= $max),
	"14 turns at once, 6 a minute: " . ($c{201} // 0) . " answered in $windows window(s)") or diag explain \%c;
is(($c{201} // 0) + ($c{429} // 0), 14, 'the others 429');
my %kk;
$kk{$_}++ for values %{ instance_of([ map { $_->headers->header('X-Request-Id') } @r ]) };
ok($kk{1} && $kk{2}, 'both instances took part') or diag explain \%kk;

# --- one instance killed under load, then restarted ------------------------------------

# Clients each sending one request after the other, GET and POST mixed,
# each line "start end status rid method".
sub start_load {
	my ($clients) = @_;
	my $stop = $t->dir . '/stop-load';
	my @kids;
	for my $i (1 .. $clients) {
		my $file = $t->dir . "/load-$i";
		my $pid = fork // die "fork: $!";
		if (!$pid) {
			my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 30);
			my %h = (Authorization => "Bearer $admin->{access_token}", 'Content-Type' => 'application/json');
			open my $fh, '>', $file or POSIX::_exit(1);
			$fh->autoflush(1);
			for (my $n = 0; !-e $stop; $n++) {
				my $start = time;
				my $post = $n % 2;
				my $r = $post
					? $http->post($t->url('/api/conversations'), { headers => \%h, content => '{"persona":"general"}' })
					: $http->get($t->url('/api/user/profile'), { headers => \%h });
				printf $fh "%.6f %.6f %d %s %s\n", $start, time, $r->{status},
					$r->{headers}{'x-request-id'} // '-', $post ? 'POST' : 'GET';
				sleep 0.01;
			}
			close $fh;
			POSIX::_exit(0);
		}
		push @kids, { pid => $pid, file => $file };
	}
	return { stop => $stop, kids => \@kids };
}
sub results {
	my ($load) = @_;
	my @r;
	for my $k (@{ $load->{kids} }) {
		open my $fh, '<', $k->{file} or next;
		push @r, map { [split] } grep { /\n\z/ } <$fh>;
	}
	@r = sort { $a->[0] <=> $b->[0] } @r;
	return @r;
}
sub stop_load {
	my ($load) = @_;
	open my $fh, '>', $load->{stop} or die;
	close $fh;
	waitpid $_->{pid}, 0 for @{ $load->{kids} };
	return results($load);
}

# Chat turns of a few seconds each, sent by their own processes.
sub slow_turns {
	my ($n) = @_;
	my @kids;
	for my $i (1 .. $n) {
		my $file = $t->dir . "/turn-$i";
		my $pid = fork // die "fork: $!";
		if (!$pid) {
			my $r = HTTP::Tiny->new(timeout => 60)->post($t->url('/api/chat/send'), {
				headers => { Authorization => "Bearer $admin->{access_token}",
					'Content-Type' => 'application/json' },
				content => qq{{"content":"slow turn $i"}} });
			open my $fh, '>', $file or POSIX::_exit(1);
			print $fh "$r->{status}\n";
			close $fh;
			POSIX::_exit(0);
		}
		push @kids, { pid => $pid, file => $file };
	}
	return \@kids;
}
sub holds { scalar $dbh->selectrow_array('SELECT count(*) FROM credit_holds WHERE user_id = ?', undef, $admin->{id}) }

my $CLIENTS = 6;
my $load = start_load($CLIENTS);
ok($t->wait_for(sub { my @r = results($load); @r >= 60 }, 30, 'the load'), 'load running');
my $turns = slow_turns(6);
ok($t->wait_for(sub { holds() == 6 }, 30, 'six turns in flight'), 'six chat turns in flight, holding credits');
my $victim = $t->kill_app(2);
my $t_kill = time;
ok(!$t->app_pid(2), "instance 2 (master $victim and its workers) killed with SIGKILL");
ok($t->wait_for(sub { my @r = grep { $_->[0] > $t_kill } results($load); @r >= 60 }, 30, 'load after the kill'),
	'the load goes on');
$t->allow_log(qr/miky-2\.sock failed \((?:2: No such file or directory|13: Permission denied)\)/);
$t->start_app(instance => 2);
my $t_back = time;
ok($t->app_pid(2), 'instance 2 restarted');
# nginx tries it again once fail_timeout (2 s) has passed.
ok($t->wait_for(sub {
	my @late = grep { $_->[0] > $t_back } results($load);
	my $by = instance_of([ map { $_->[3] } @late ]);
	grep { $_ == 2 } values %$by;
}, 30, 'instance 2 serving again'), 'the restarted instance takes requests again');
my @all = stop_load($load);

# The turns in flight on the killed instance failed; their holds stay for
# the sweeper to refund.  The ones on the other instance were answered.
waitpid $_->{pid}, 0 for @$turns;
my @turn_codes = map { my $c = `cat '$_->{file}'`; chomp $c; $c } @$turns;
my $cut = grep { $_ != 201 } @turn_codes;
is(scalar(grep { $_ == 201 || $_ == 502 || $_ == 599 } @turn_codes), 6,
	"slow turns: @{[ 6 - $cut ]} answered, $cut cut (502 or a lost connection)") or diag "@turn_codes";
is(holds(), $cut, 'exactly the turns that failed left a hold (to be refunded): only those in flight there');
is($dbh->selectrow_array(q{SELECT count(*) FROM messages WHERE user_id = ? AND sender = 'assistant'},
	undef, $admin->{id}), 6 - $cut, 'an answer stored for each turn answered');

my @bad = grep { $_->[2] !~ /^20[01]$/ } @all;
ok(@all > 120, scalar(@all) . ' requests under load');
ok(@bad <= $CLIENTS, scalar(@bad) . " failed: at most the $CLIENTS that could be in flight")
	or diag explain \@bad;
is(scalar(grep { $_->[0] >= $t_kill } @bad), 0, 'none sent after the kill failed');
is(scalar(grep { $_->[1] < $t_kill - 5 } @bad), 0, 'and none that had ended before it');
is(scalar(grep { $_->[2] != 502 && $_->[2] != 599 } @bad), 0, 'the failures are 502 (or a cut connection)');
is(scalar(grep { $_->[4] eq 'GET' } @bad), 0, 'no GET failed: nginx sends it to the other instance');
my $before_kill = instance_of([ map { $_->[3] } grep { $_->[1] < $t_kill } @all ]);
ok(scalar(grep { $_ == 2 } values %$before_kill), 'instance 2 had its share before the kill');
like($t->nginx_error_log, qr/upstream server temporarily disabled .*miky-2\.sock/,
	'nginx took the dead instance out of the upstream (passive health check)');

# Each POST that succeeded made one conversation: none twice, none lost.
my $made = $dbh->selectrow_array(q{SELECT count(*) FROM conversations WHERE user_id = ?
	AND title = 'New conversation'}, undef, $admin->{id});
my $posted = grep { $_->[4] eq 'POST' && $_->[2] == 201 } @all;
ok($made >= $posted && $made <= $posted + @bad, "$made conversations for $posted POSTs answered 201");

($res, $count) = burst(24, '/api/user/profile', $A);
is(scalar(grep { $_->code == 200 } @$res), 24, 'afterwards, 24 at once: all 200');
my ($code, $out) = $t->run_miky('check-ledger');
is($code, 0, 'and the ledger checks out') or diag $out;

$t->done;
