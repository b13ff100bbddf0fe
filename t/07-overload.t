#!/usr/bin/perl
# Clients that hold the server, and what the others see meanwhile:
#
#  - a client reading a long stream one byte a second: the app gives up
#    once its writes to nginx stall for MIKY_IO_TIMEOUT_MS, closes the
#    model call, stores what was said, and health stays prompt;
#  - every request thread busy with a stream: one more request waits for
#    a thread at most MIKY_QUEUE_MS and then gets 503 unavailable with
#    Retry-After, or is served as soon as a thread frees;
#  - 200 idle keep-alive connections (each with a connection from nginx
#    to the app kept behind it) and clients sending their headers a byte
#    at a time: health stays prompt.
#
# No timing is asserted beyond "well before nginx's own timeouts" (its
# send_timeout is 60 s, fastcgi_read_timeout 300 s).
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is read_until);
use Miky::FakeOpenAI qw(set_settings);
use IO::Select;
use IO::Socket::INET;
use Mojo::JSON qw(decode_json encode_json);
use Mojo::Promise;
use POSIX ();
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Time::HiRes qw(sleep time);

my $fake = Miky::FakeOpenAI->new;
# nginx's socket buffers towards clients fixed small (no autotuning), so
# that a stream of a few hundred KiB fills everything between the app and
# a client that hardly reads.
my $t = Miky::Test->new(app => 0, workers => 1, threads => 2,
	env => { %{ $fake->env }, MIKY_IO_TIMEOUT_MS => 2000 },
	nginx_edit => sub { my $c = shift; $c =~ s/^(\s*listen 127\.0\.0\.1:\d+)/$1 sndbuf=8k/m; $c });
set_settings($t, ai_first_token_timeout_ms => 40000, ai_idle_timeout_ms => 40000,
	ai_total_timeout_ms => 100000);
$t->start_app;

# The app's log line of a request, by its id.
sub log_line {
	my $rid = shift;
	for my $line (split /\n/, $t->log) {
		next unless $line =~ /"msg":"request"/ && $line =~ /\Q$rid\E/;
		return eval { decode_json($line) };
	}
	return undef;    ## no critic
}

# A raw HTTP/1.1 connection to nginx; opt rcvbuf sets SO_RCVBUF first.
sub raw_conn {
	my %o = @_;
	my $s = IO::Socket::INET->new(Proto => 'tcp') or die "socket: $!";
	setsockopt($s, SOL_SOCKET, SO_RCVBUF, $o{rcvbuf}) if $o{rcvbuf};
	$s->connect(Socket::pack_sockaddr_in($t->port, Socket::inet_aton('127.0.0.1')))
		or die "connect: $!";
	$s->autoflush(1);
	return $s;
}

sub stream_request {
	my ($user, $content) = @_;
	my $body = encode_json({ content => $content, stream => \1 });
	return "POST /api/chat/send HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		. "Authorization: Bearer $user->{access_token}\r\n"
		. "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
}

sub health_ok {
	my ($n, $name) = @_;
	my %codes;
	$codes{ $t->json_req(GET => '/api/health')->res->code // 0 }++ for 1 .. $n;
	is_deeply(\%codes, { 200 => $n }, $name) or diag explain \%codes;
}

# --- a client that reads one byte a second ------------------------------------

{
	my $u = $t->user;
	# A piece every millisecond for half a minute or more (~1 MiB of
	# events): more than the buffers between the app and a client that
	# hardly reads hold, long before the model is done.
	my $s = raw_conn(rcvbuf => 4096);
	print $s stream_request($u, 'slowreader [[slow:1]][[count:30000]] tell me everything');
	my $head = read_until($s, qr/\r\n\r\n/, 15);
	like($head, qr{^HTTP/1\.1 200 }, 'the stream started');
	my ($rid) = $head =~ /^X-Request-Id: ([0-9a-f]{32})\r$/mi;
	my $reader = fork // die "fork: $!";
	if (!$reader) {
		# One byte a second, until killed.
		while (1) { sysread($s, my $b, 1) or POSIX::_exit(0); sleep 1 }
	}
	my $t0 = time;
	ok($fake->wait_requests(tag => 'slowreader', ended => 1, timeout => 60),
		'the model call was closed');
	my ($m) = $fake->requests(tag => 'slowreader');
	ok($m->{cancelled}, '... by the app, before the answer was complete');
	my $l = $t->wait_for(sub { log_line($rid // 'none') }, 30, 'the log line');
	ok($l && $l->{client_gone}, 'the request ended as client_gone') or diag explain $l;
	ok(time - $t0 < 40, 'well before nginx would have given up on the client (send_timeout 60 s)');
	health_ok(5, 'health meanwhile: all 200');
	my ($sender) = $t->dbh->selectrow_array(q{SELECT count(*) FROM messages m
		JOIN users u ON u.id = m.user_id WHERE u.email = ? AND sender = 'assistant'
		AND length(content) > 0}, undef, $u->{email});
	is($sender, 1, 'the part of the answer that was sent is stored');
	kill 'KILL', $reader;
	waitpid $reader, 0;
	close $s;
}

# --- every thread busy -----------------------------------------------------------

# Two streams whose model never answers hold both threads (one worker).
# The fake counts every "busy" request of the file: wait for this call's.
my $busy = 0;
sub hold_threads {
	my @s;
	$busy += 2;
	for my $i (1, 2) {
		my $u = $t->user;
		my $s = raw_conn();
		print $s stream_request($u, "busy$i [[hang]] hello");
		push @s, $s;
	}
	ok(scalar($fake->wait_requests(tag => 'busy', n => $busy, timeout => 20)) >= $busy,
		'two streams hold the two threads');
	return @s;
}

{
	my @held = hold_threads();
	my $t0 = time;
	my $tx = $t->json_req(GET => '/api/health');
	error_is($tx, 503, 'unavailable', undef, 'one more request: 503 unavailable');
	is($tx->res->headers->header('Retry-After'), '1', '... with Retry-After: 1');
	like($tx->res->headers->header('X-Request-Id') // '', qr/^[0-9a-f]{32}$/, '... and a request id');
	ok(time - $t0 < 60, 'refused well before nginx would have timed out (300 s)');
	my $l = $t->wait_for(sub { log_line($tx->res->headers->header('X-Request-Id') // 'none') },
		10, 'the log line');
	is($l->{status}, 503, 'the refusal is in the log');
	close $_ for @held;
	# The streams see their clients gone and end; threads free up.
	ok($t->wait_for(sub { $t->json_req(GET => '/api/health')->res->code == 200 }, 30,
		'a free thread'), 'once the streams ended, health is 200 again');
	like($t->json_req(GET => '/api/metrics')->res->body // '',
		qr/^miky_http_requests_total\{route="unmatched",status="503"\} [1-9]/m,
		'the refusal is counted');
	$fake->wait_requests(tag => 'busy', n => 2, ended => 1, timeout => 30);
}

# The same with a long queue: the request waits and is served as soon as
# a thread frees.
is($t->stop_app, 0, 'the app stops cleanly');
$t->start_app(env => { MIKY_QUEUE_MS => 60000 });
{
	my @held = hold_threads();
	my $p = $t->ua->get_p('/api/health');
	my ($res, $done);
	$p->then(sub { $res = shift->res; $done = 1 });
	my $loop = Mojo::IOLoop->singleton;
	my $until = sub {
		my ($cond, $secs) = @_;
		my $deadline = time + $secs;
		$loop->one_tick while !$cond->() && time < $deadline;
		return $cond->();
	};
	my $tick = $loop->recurring(0.05 => sub { });
	$until->(sub { $done }, 2);
	ok(!$done, 'one more request waits while both threads are busy');
	close $held[0];
	ok($until->(sub { $done }, 30), 'a thread frees: it is served');
	is($res && $res->code, 200, '... 200');
	$loop->remove($tick);
	close $held[1];
	$fake->wait_requests(tag => 'busy', n => 4, ended => 1, timeout => 30);
}

# --- idle keep-alive connections and slow headers -------------------------------------

is($t->stop_app, 0, 'the app stops cleanly');
$t->start_app(env => { MIKY_QUEUE_MS => undef, MIKY_THREADS => 8, MIKY_WORKERS => 2 });
{
	# 200 clients, each one request at once (so nginx opens many
	# connections to the app and keeps them), then idle.
	my @idle = map { raw_conn() } 1 .. 200;
	print $_ "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" for @idle;
	my $answered = 0;
	for my $s (@idle) {
		$answered++ if read_until($s, qr/\r\n\r\n.*"ok"/s, 30) =~ m{^HTTP/1\.1 200 };
	}
	is($answered, 200, '200 keep-alive clients each got an answer, and stay connected');
	# Slow headers: a byte at a time, never finished.
	my @slow = map { raw_conn() } 1 .. 20;
	my $slowloris = fork // die "fork: $!";
	if (!$slowloris) {
		my $req = "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " . ('s' x 10000);
		for my $i (0 .. length($req) - 1) {
			for my $s (@slow) { print $s substr($req, $i, 1) or POSIX::_exit(0) }
			sleep 0.1;
		}
		POSIX::_exit(0);
	}
	sleep 1;
	health_ok(20, 'health beside them: all 200');
	my $tx = $t->json_req(GET => '/api/user/profile', undef, $t->auth($t->user));
	is($tx->res->code, 200, 'a signed-in request too');
	kill 'KILL', $slowloris;
	waitpid $slowloris, 0;
	close $_ for @idle, @slow;
	health_ok(5, 'and after they left');
}

$t->done;
