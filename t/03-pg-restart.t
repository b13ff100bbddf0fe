#!/usr/bin/perl
# PostgreSQL goes away and comes back: the app answers 503 `unavailable`
# meanwhile, keeps running, and serves again once the database is back,
# with the same processes (the pool reconnects; no restart).
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test;
use Mojo::JSON qw(decode_json);
use Mojo::Promise;
use Time::HiRes qw(time);

# One thread a worker: requests made at once then reach both workers.
my $t = Miky::Test->new(own_pg => 1, workers => 2, threads => 1);
my $u = $t->user;
my $SIGNIN = '/api/auth/signin';

sub error_is {
	my ($tx, $status, $code, $name) = @_;
	my $j = eval { decode_json($tx->res->body) };
	is($tx->res->code, $status, "$name: $status") or diag $tx->res->body;
	ok(ref $j eq 'HASH' && join(',', sort keys %$j) eq 'error'
		&& join(',', sort keys %{ $j->{error} }) eq 'code,message'
		&& $j->{error}{code} eq $code && length $j->{error}{message},
		"$name: {\"error\":{\"code\":\"$code\",\"message\":...}} and nothing else")
		or diag $tx->res->body;
	unlike($tx->res->body, qr/postgres|socket|connection to server|PQ|SQL|\/tmp/i,
		"$name: no database details leak");
	my $h = $tx->res->headers;
	ok(@{ $h->every_header('X-Request-Id') } == 1 && $h->header('X-Request-Id') =~ /^[0-9a-f]{32}$/
		&& @{ $h->every_header('Cache-Control') } == 1 && $h->header('Cache-Control') eq 'no-store'
		&& @{ $h->every_header('X-Content-Type-Options') } == 1,
		"$name: the usual headers, once each");
}

$t->tm->get_ok('/api/health')->status_is(200)->json_is('/status' => 'ok');
$t->tm->get_ok('/api/user/profile' => $t->auth($u))->status_is(200)
	->json_is('/user/email' => $u->{email});
# Every worker has a pooled connection open.
Mojo::Promise->all(map { $t->ua->get_p('/api/user/profile' => $t->auth($u)) } 1 .. 10)->wait;

my $master = $t->app_pid;
my @workers = $t->worker_pids;
is(scalar @workers, 2, 'two workers');

# --- the database goes away ---------------------------------------------------

$t->stop_pg;
# The first request of each worker finds its pooled connection dead, tries
# to reconnect and fails: that too is 503, whatever the route.  Sent at
# once, so that both workers get some.
{
	my @tx;
	Mojo::Promise->all(
		(map { $t->ua->get_p('/api/user/profile' => $t->auth($u)) } 1 .. 6),
		(map { $t->ua->post_p($SIGNIN => json => { email => $u->{email}, password => 'x' }) } 1 .. 2),
	)->then(sub { @tx = map { $_->[0] } @_ })->wait;
	my %codes;
	$codes{ $_->res->code // 0 }++ for @tx;
	is_deeply(\%codes, { 503 => 8 }, 'the first requests after the database went away: all 503')
		or diag explain \%codes;
	error_is($tx[0], 503, 'unavailable', 'profile on a dead pooled connection');
	error_is($tx[-1], 503, 'unavailable', 'sign-in on a dead pooled connection');
}
for my $i (1 .. 6) {
	error_is($t->json_req(GET => '/api/health'), 503, 'unavailable', "health without the database ($i)");
}
error_is($t->json_req(GET => '/api/user/profile', undef, $t->auth($u)), 503, 'unavailable',
	'an authenticated request without the database');
error_is($t->json_req(POST => '/api/auth/signin', { email => $u->{email}, password => $u->{password} }),
	503, 'unavailable', 'sign-in without the database');
# Checks before the database still answer as usual.
is($t->json_req(GET => '/api/nope')->res->code, 404, 'routing needs no database');
is($t->json_req(GET => '/api/user/profile')->res->code, 401, 'a missing token needs no database');

is($t->app_pid, $master, 'the app master still runs');
is_deeply([ $t->worker_pids ], \@workers, 'the same workers still run');

# --- and comes back -------------------------------------------------------------

$t->start_pg;
my $t0 = time;
ok($t->wait_for(sub { ($t->json_req(GET => '/api/health')->res->code // 0) == 200 }, 10,
	'health 200 after the restart'), 'health is 200 again');
my $took = time - $t0;
ok($took < 10, sprintf 'within a few seconds (%.1f s)', $took);
is($t->app_pid, $master, 'no app restart: the same master');
is_deeply([ $t->worker_pids ], \@workers, 'no app restart: the same workers');

# Every worker recovers: requests at once until both workers served some
# (nginx may have kept its connections to one of them).
my ($codes, $pids) = $t->spread(\@workers, 10);
my $n = 0;
$n += $_ for values %$codes;
is_deeply($codes, { 200 => $n }, "$n more health checks, 10 at a time: all 200");
is_deeply([ sort { $a <=> $b } keys %$pids ], \@workers, 'both workers served some');
$t->tm->get_ok('/api/user/profile' => $t->auth($u))->status_is(200)
	->json_is('/user/email' => $u->{email}, 'the old token works after the restart');
my $tx = $t->json_req(POST => '/api/auth/signin', { email => $u->{email}, password => $u->{password} });
is($tx->res->code, 200, 'sign-in works after the restart') or diag $tx->res->body;
$t->tm->get_ok('/api/user/profile' => { Authorization => 'Bearer ' . ($tx->res->json('/access_token') // '') })
	->status_is(200)->json_is('/user/id' => $u->{id}, 'and its new token too');
my $v = $t->user;
ok($v->{access_token}, 'a new account can sign up and verify after the restart');

is($t->app_pid, $master, 'still the same master at the end');
is_deeply([ $t->worker_pids ], \@workers, 'still the same workers at the end');

$t->done;
