#!/usr/bin/perl
# The process model under load: a worker killed with SIGKILL is replaced,
# SIGHUP replaces every worker without failing a request, clients that go
# away mid-stream (SIGPIPE) never kill a worker, and SIGTERM lets an
# in-flight chat stream finish before the app exits 0.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(read_until);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Mojo::IOLoop;
use Mojo::JSON qw(decode_json encode_json);
use Mojo::Promise;
use POSIX ();
use Time::HiRes qw(sleep time);

# One thread a worker for the kill and reload parts: a burst of requests
# then spreads over every worker (an idle worker that registered first
# would otherwise take nearly all of a light load).
my $WORKERS = 2;
my $t = Miky::Test->new(workers => $WORKERS, threads => 1);
my $u = $t->user;

# --- helpers ----------------------------------------------------------------

# start_load($clients, $tag) forks $clients processes that each send
# requests one after the other (GET /api/health and, every other time,
# GET /api/user/profile with a token) over a keep-alive connection, until
# stop_load.  Each writes "time status request-id" per answer to its file.
# A pause of 10 ms between requests keeps the load (a few hundred per
# second) under the dev nginx's per-IP limit of 1000 r/s.
sub start_load {
	my ($clients, $tag) = @_;
	my $stop = $t->dir . "/stop-$tag";
	my @kids;
	for my $i (1 .. $clients) {
		my $file = $t->dir . "/load-$tag-$i";
		my $pid = fork // die "fork: $!";
		if (!$pid) {
			my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 30);
			my %auth = (Authorization => "Bearer $u->{access_token}");
			open my $fh, '>', $file or POSIX::_exit(1);
			$fh->autoflush(1);
			for (my $n = 0; !-e $stop; $n++) {
				my $r = $n % 2
					? $http->get($t->url('/api/user/profile'), { headers => \%auth })
					: $http->get($t->url('/api/health'));
				printf $fh "%.6f %d %s %s\n", time, $r->{status},
					$r->{headers}{'x-request-id'} // '-', $n % 2 ? 'profile' : 'health';
				sleep 0.01;
			}
			close $fh;
			POSIX::_exit(0);
		}
		push @kids, { pid => $pid, file => $file };
	}
	return { stop => $stop, kids => \@kids };
}

# load_results($load): every answer so far, [time, status, rid, what].
sub load_results {
	my $load = shift;
	my @r;
	for my $k (@{ $load->{kids} }) {
		open my $fh, '<', $k->{file} or next;
		while (my $line = <$fh>) {
			push @r, [split ' ', $line] if $line =~ /\n\z/;
		}
	}
	@r = sort { $a->[0] <=> $b->[0] } @r;
	return @r;
}

sub stop_load {
	my $load = shift;
	open my $fh, '>', $load->{stop} or die "$load->{stop}: $!";
	close $fh;
	waitpid $_->{pid}, 0 for @{ $load->{kids} };
	return load_results($load);
}

# worker_restarts(): miky_worker_restarts_total from GET /api/metrics.
sub worker_restarts {
	my $tx = $t->json_req(GET => '/api/metrics');
	return $tx->res->body =~ /^miky_worker_restarts_total (\d+)$/m ? $1 : undef;
}

sub all_ok {
	my ($n, $name) = @_;
	my %codes;
	$codes{ $t->json_req(GET => '/api/health')->res->code // 0 }++ for 1 .. $n;
	is_deeply(\%codes, { 200 => $n }, $name) or diag explain \%codes;
}

# --- a worker killed with SIGKILL under load --------------------------------

{
	my @before = $t->worker_pids;
	is(scalar @before, $WORKERS, "$WORKERS workers");
	my $load = start_load(4, 'kill');
	ok($t->wait_for(sub { load_results($load) >= 40 }, 20, 'load'), 'load is running');

	my $victim = $before[0];
	$t->allow_log(qr/"msg":"worker died".*"worker":$victim,"signal":9\b/);
	ok(kill('KILL', $victim), "SIGKILL worker $victim");
	ok($t->wait_for(sub {
		my @now = $t->worker_pids;
		@now == $WORKERS && !grep { $_ == $victim } @now
	}, 15, 'a new worker'), "back to $WORKERS workers");
	my @after = $t->worker_pids;
	my @new = grep { my $p = $_; !grep { $_ == $p } @before } @after;
	is(scalar @new, 1, 'exactly one new worker');
	ok(grep({ $_ == $before[1] } @after), 'the other worker was left alone');

	# The load carries on through the new worker too.
	my $t_back = time;
	ok($t->wait_for(sub { (grep { $_->[0] > $t_back } load_results($load)) >= 40 }, 20,
		'load after the restart'), 'requests after the restart');
	my @r = stop_load($load);
	my @bad = grep { $_->[1] != 200 } @r;
	my @late = grep { $_->[0] > $t_back && $_->[1] != 200 } @r;
	ok(@r > 80, scalar(@r) . ' requests under load');
	ok(@bad <= 4, 'at most the 4 requests in flight on the killed worker failed')
		or diag explain \@bad;
	# 502 from nginx, or (an answer cut after its headers) a lost connection.
	is(scalar(grep { $_->[1] != 502 && $_->[1] != 599 } @bad), 0, 'and those as 502 from nginx');
	is_deeply(\@late, [], 'no failure once the worker was replaced');

	like($t->log, qr/"msg":"worker died".*"worker":$victim,"signal":9\b/, 'the death is logged with the signal');
	# Later requests succeed, and the new worker takes its share: nginx
	# closes each kept connection after 10 s of use (keepalive_time), and
	# the new ones spread over both workers.
	my ($codes, $pids) = $t->spread([ $new[0] // 0 ], 25);
	my %codes = %$codes;
	my %pids = %$pids;
	my $n = 0;
	$n += $_ for values %codes;
	ok($n >= 50, "$n requests after the restart, 25 at a time");
	is_deeply(\%codes, { 200 => $n }, '... all 200') or diag explain \%codes;
	ok($pids{ $new[0] // 0 }, 'the new worker served some of them') or diag explain \%pids;
	is(worker_restarts(), 1, 'miky_worker_restarts_total is 1');
}

# --- SIGHUP: new workers, no failed request ----------------------------------

{
	my @before = $t->worker_pids;
	my $load = start_load(4, 'hup');
	ok($t->wait_for(sub { load_results($load) >= 40 }, 20, 'load'), 'load is running');
	my $t_hup = time;
	ok($t->signal_app('HUP'), 'SIGHUP');
	ok($t->wait_for(sub {
		my @now = $t->worker_pids;
		@now == $WORKERS && !grep { my $p = $_; grep { $_ == $p } @before } @now
	}, 30, 'new workers'), 'every worker replaced');
	my $t_new = time;
	my @after = $t->worker_pids;
	ok($t->wait_for(sub { (grep { $_->[0] > $t_new } load_results($load)) >= 40 }, 20,
		'load after the reload'), 'requests after the reload');
	my @r = stop_load($load);
	my @bad = grep { $_->[1] != 200 } @r;
	is(scalar @bad, 0, 'no request failed across the reload (' . scalar(@r) . ' made)')
		or diag explain [ @bad[0 .. ($#bad > 9 ? 9 : $#bad)] ];
	ok((grep { $_->[0] < $t_hup } @r) >= 40, 'the load ran before the SIGHUP');
	ok((grep { $_->[0] > $t_new } @r) >= 40, 'and after the new workers took over');

	my $log = $t->request_log;
	my %pid_of = map { $_->[2] => ($log->{ $_->[2] } // {})->{pid} // 0 } @r;
	my %old = map { $_ => 1 } @before;
	my %new = map { $_ => 1 } @after;
	ok((grep { $old{$_} } values %pid_of), 'old workers served part of the load');
	ok((grep { $new{$_} } values %pid_of), 'new workers served part of the load');
	is(scalar(grep { !$old{$_} && !$new{$_} } values %pid_of), 0, 'every request is in the log');
	my @deaths = $t->log =~ /("msg":"worker (?:died|exited)".*)/g;
	is(scalar @deaths, 1, 'the only worker death is the SIGKILL above') or diag explain \@deaths;
	is(worker_restarts(), 1, 'a reload is not a restart: still 1');
	all_ok(20, 'requests after the reload: all 200');
}

# --- the streams: more threads, and a slow stand-in model -----------------------

is($t->stop_app, 0, 'the app stops cleanly (exit 0)');
$t->start_app(env => { MIKY_THREADS => 4, MIKY_STANDIN_DELAY_MS => 300 });
ok($t->wait_for(sub { $t->worker_pids == $WORKERS }, 10, 'the workers'), "restarted with $WORKERS workers");

# --- clients that go away mid-stream -------------------------------------------

# open_stream($user): a raw HTTP/1.1 connection to nginx asking for a
# streamed chat turn.
sub open_stream {
	my $user = shift;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port,
		Proto => 'tcp', Timeout => 5) or die "connect: $!";
	my $body = encode_json({ content => 'Tell me a long story, please.', stream => \1 });
	print $s "POST /api/chat/send HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		. "Authorization: Bearer $user->{access_token}\r\n"
		. "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n"
		. "Connection: close\r\n\r\n$body";
	return $s;
}

{
	my @before = $t->worker_pids;
	my @users = map { $t->user } 1 .. 4;
	my (@socks, @rids);
	for my $v (@users) {
		my $s = open_stream($v);
		my $got = read_until($s, qr/event: delta/, 15);
		like($got, qr{^HTTP/1\.1 200 .*?\r\n\r\n.*event: start.*event: delta}s, 'a stream started');
		push @rids, $got =~ /^X-Request-Id: ([0-9a-f]{32})\r$/mi ? $1 : 'none';
		push @socks, $s;
	}
	# Go away mid-answer: nginx drops the FastCGI connection and the
	# worker's next write fails (EPIPE, not a deadly SIGPIPE).
	close $_ for @socks;
	my $log;
	ok($t->wait_for(sub { $log = $t->request_log; !grep { !$log->{$_} } @rids }, 20,
		'the streams to end'), 'every stream ended in the app');
	for my $rid (@rids) {
		my $l = $log->{$rid} // {};
		ok($l->{client_gone}, "stream $rid: logged as client_gone") or diag explain $l;
	}
	is_deeply([ $t->worker_pids ], \@before, 'the same workers are alive');
	all_ok(10, 'health after the disconnects: all 200');
	is(worker_restarts(), 0, 'no worker restarted');
}

# --- a FastCGI peer that is gone before the answer -----------------------------
#
# Straight to the app's socket: a complete request, then close at once.
# The worker reads it and answers into a closed unix socket: its writes
# fail with EPIPE, which must never become a deadly SIGPIPE.

# fcgi_record($type, $id, $content): one FastCGI record.
sub fcgi_record {
	my ($type, $id, $content) = @_;
	return pack('CCnnCC', 1, $type, $id, length $content, 0, 0) . $content;
}

sub fcgi_params {
	my %p = @_;
	my $s = '';
	for my $k (sort keys %p) {
		$s .= join '', map { length($_) < 128 ? pack('C', length) : pack('N', length($_) | 0x80000000) } $k, $p{$k};
		$s .= $k . $p{$k};
	}
	return $s;
}

{
	my @before = $t->worker_pids;
	my $n = 40;
	for my $i (1 .. $n) {
		my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $t->dir . '/miky.sock')
			or die "connect miky.sock: $!";
		my $path = $i % 2 ? '/api/metrics' : '/api/personas';
		print $s fcgi_record(1, 1, pack('nCx5', 1, 0))
			. fcgi_record(4, 1, fcgi_params(REQUEST_METHOD => 'GET', REQUEST_URI => $path,
				REQUEST_ID => sprintf('%032x', 0xfeed0000 + $i), REMOTE_ADDR => '127.0.0.1',
				SERVER_PROTOCOL => 'HTTP/1.1'))
			. fcgi_record(4, 1, '') . fcgi_record(5, 1, '');
		close $s;
	}
	my @rids = map { sprintf '%032x', 0xfeed0000 + $_ } 1 .. $n;
	my $log;
	ok($t->wait_for(sub { $log = $t->request_log; !grep { !$log->{$_} } @rids }, 20,
		'the requests of gone peers'), "the app served all $n requests of peers that had gone");
	is(scalar(grep { ($log->{$_}{status} // 0) != 200 } @rids), 0, '... each to the end (200)');
	is_deeply([ $t->worker_pids ], \@before, 'the same workers are alive');
	all_ok(10, 'health after: all 200');
	is(worker_restarts(), 0, 'no worker restarted');
}

# --- a kept FastCGI connection, straight on the socket -----------------------------
#
# nginx keeps its connections to the app (FCGI_KEEP_CONN) and sends the next
# request as soon as it has END_REQUEST, even when the app answered without
# reading the body (413): the end of that body and the next request then
# come in one piece.  Both must be answered, on the same connection.

# fcgi_request($id, $keep, %params, [body]): BEGIN_REQUEST, PARAMS, STDIN.
sub fcgi_request {
	my ($id, $keep, $params, $body) = @_;
	my $s = fcgi_record(1, $id, pack('nCx5', 1, $keep ? 1 : 0))
		. fcgi_record(4, $id, fcgi_params(%$params)) . fcgi_record(4, $id, '');
	$body //= '';
	for (my $off = 0; $off < length $body; $off += 65535) {
		$s .= fcgi_record(5, $id, substr($body, $off, 65535));
	}
	return $s . fcgi_record(5, $id, '');
}

# fcgi_responses($sock, $n): the STDOUT of the next $n requests to end,
# each up to its END_REQUEST (undef for one that never came).
sub fcgi_responses {
	my ($s, $n) = @_;
	my ($buf, @out, $cur) = ('');
	my $sel = IO::Select->new($s);
	my $deadline = time + 30;
	while (@out < $n && time < $deadline) {
		if (length($buf) >= 8) {
			my ($v, $type, $rid, $len, $pad) = unpack('CCnnC', $buf);
			if (length($buf) >= 8 + $len + $pad) {
				my $content = substr($buf, 8, $len);
				substr($buf, 0, 8 + $len + $pad, '');
				$cur .= $content if $type == 6;
				if ($type == 3) { push @out, $cur // ''; undef $cur }
				if ($type == 10) { push @out, "VALUES:$content" }
				next;
			}
		}
		last unless $sel->can_read(1) || time < $deadline;
		my $got = sysread $s, $buf, 65536, length $buf;
		last if defined $got && $got == 0;
	}
	return @out;
}

{
	my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $t->dir . '/miky.sock')
		or die "connect miky.sock: $!";
	my %get = (REQUEST_METHOD => 'GET', REQUEST_URI => '/api/health', SERVER_PROTOCOL => 'HTTP/1.1');
	print $s fcgi_request(1, 1, \%get);
	my ($r1) = fcgi_responses($s, 1);
	like($r1 // '', qr/^Status: 200 /, 'kept connection: the first request answered');
	print $s fcgi_request(1, 1, \%get);
	my ($r2) = fcgi_responses($s, 1);
	like($r2 // '', qr/^Status: 200 /, '... and the second, on the same connection');

	# A sign-up announcing a body over its limit, which the app answers
	# without reading the body, and the next request right behind it, in
	# one write: the app reads them together when it skips the body.  (The
	# body is shorter than announced, so that it all fits in one read.)
	for my $body ('{}', '{"email":"' . ('x' x 70000) . '"}') {
		print $s fcgi_request(1, 1, { REQUEST_METHOD => 'POST', REQUEST_URI => '/api/auth/signup',
			CONTENT_TYPE => 'application/json', CONTENT_LENGTH => 70000,
			SERVER_PROTOCOL => 'HTTP/1.1' }, $body) . fcgi_request(1, 1, \%get);
		my @r = fcgi_responses($s, 2);
		my $what = length($body) . '-byte body';
		like($r[0] // '', qr/^Status: 413 /, "$what over the limit: 413 before it is read");
		like($r[1] // '', qr/^Status: 200 /, "$what: the request behind it, in the same write, answered");
	}

	# Management: FCGI_GET_VALUES answers that we do not multiplex.
	print $s fcgi_record(9, 0, fcgi_params(FCGI_MPXS_CONNS => ''));
	my ($v) = fcgi_responses($s, 1);
	is($v, "VALUES:\x0f\x01FCGI_MPXS_CONNS0", 'FCGI_GET_VALUES: FCGI_MPXS_CONNS is 0');
	close $s;
	all_ok(5, 'health after: all 200');
}

# --- SIGTERM drains an in-flight stream ---------------------------------------------

{
	my $v = $t->user;
	my $loop = Mojo::IOLoop->singleton;
	my $tx = $t->ua->build_tx(POST => $t->url('/api/chat/send'),
		{ Authorization => "Bearer $v->{access_token}" }, json => { content => 'hi', stream => \1 });
	my ($buf, $finished) = ('', 0);
	$tx->res->content->unsubscribe('read')->on(read => sub { $buf .= $_[1] });
	$t->ua->start($tx => sub { $finished = 1 });
	my $tick = $loop->recurring(0.05 => sub { });
	my $until = sub {
		my ($cond, $secs) = @_;
		my $deadline = time + $secs;
		$loop->one_tick while !$cond->() && time < $deadline;
		return $cond->();
	};
	ok($until->(sub { $buf =~ /event: delta/ }, 15), 'the stream is under way');
	my $master = $t->app_pid;
	ok($t->signal_app('TERM'), 'SIGTERM while it streams');
	sleep 0.5;
	is($t->app_pid, $master, 'half a second later the app still runs (draining)');
	ok($until->(sub { $finished }, 60), 'the stream ended');
	$loop->remove($tick);
	is($tx->res->code, 200, 'stream: 200');

	my @ev;
	for my $block (split /\n\n/, $buf) {
		my ($name) = $block =~ /^event: (\S+)$/m;
		my ($data) = $block =~ /^data: (.*)$/m;
		push @ev, [$name, eval { decode_json($data) }] if defined $name;
	}
	is($ev[0][0], 'start', 'first event: start');
	is($ev[-1][0], 'done', 'last event: done (the drain let it finish)');
	my @deltas = grep { $_->[0] eq 'delta' } @ev;
	ok(@deltas >= 3, scalar(@deltas) . ' deltas');
	my $text = join '', map { $_->[1]{content} // '' } @deltas;
	my $msg = $ev[-1][1]{assistant_message} // {};
	is($msg->{content}, $text, 'done carries the whole answer');

	my $st = $t->wait_app_exit(30);
	is($st, 0, 'the app exits 0 after the drain');
	my ($sender, $content) = $t->dbh->selectrow_array(
		'SELECT sender, content FROM messages WHERE id = ?', undef, $msg->{id} // '00000000-0000-0000-0000-000000000000');
	is($sender, 'assistant', 'the assistant message is in the database');
	is($content, $text, '... with the streamed text');
	like($t->log, qr/"msg":"draining workers and stopping"/, 'the master logged the drain');
	like($t->log, qr/"msg":"stopped"/, 'and its end');
}

$t->done;
