#!/usr/bin/perl
# Access tokens' user rows are read together (lib/dbbatch.h): the threads
# of a worker that need one at the same moment share a round trip.  Here:
# under bursts of requests for many users at once, every answer is its own
# user's, a deleted or banned user in the same read still gets 401, a
# write is seen by the next request of its client whichever worker serves
# it, and a worker killed while its read holds the lane shared by the
# workers leaves the lane to the next one.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test;
use Mojo::Promise;

my $t = Miky::Test->new(workers => 2, threads => 32);
my $dbh = $t->dbh;
my $N = 40;
my @users = map { $t->user(first_name => "User$_") } 1 .. $N;

# burst(@users): GET /api/user/profile for each at once; the answers.
sub burst {
	my @tx;
	Mojo::Promise->all(map { $t->ua->get_p('/api/user/profile' => $t->auth($_)) } @_)
		->then(sub { @tx = map { $_->[0] } @_ })->wait;
	return @tx;
}

# --- every answer is its own user's ----------------------------------------------

my ($answers, $wrong) = (0, 0);
# check(\@tx): counts the answers that are not their own user's.
sub check {
	my $tx = shift;
	for my $i (0 .. $#users) {
		$answers++;
		my $j = $tx->[$i]->res->json // {};
		$wrong++ unless ($tx->[$i]->res->code // 0) == 200
			&& ($j->{user}{id} // '') eq $users[$i]{id}
			&& ($j->{user}{email} // '') eq $users[$i]{email}
			&& ($j->{user}{first_name} // '') eq 'User' . ($i + 1);
	}
}
check([burst(@users)]) for 1 .. 5;

# Whether bursts share reads depends on timing; with the users table
# locked, the first read of each worker waits and every other request
# queues behind it, so the next read takes them all at once.
{
	my ($reads0, $keys0) = map { $t->metric($_) } qw(miky_db_batch_reads_total miky_db_batch_keys_total);
	my $locker = $t->lock_table('users');
	Mojo::IOLoop->timer(1 => sub { $locker->rollback });
	check([burst(@users)]);
	$locker->disconnect;
	my ($reads, $keys) = map { $t->metric($_) } qw(miky_db_batch_reads_total miky_db_batch_keys_total);
	my ($dr, $dk) = ($reads - $reads0, $keys - $keys0);
	is($dk, $N, "each of the $N requests read its row once");
	ok($dr > 0 && $dr <= $N / 4, "in a few reads: $dr for $N rows (miky_db_batch_*)");
}
is($wrong, 0, "$answers profiles, $N users at a time: each answer is its own user's");

# --- a deleted and a banned user among the others ---------------------------------

my ($gone, $banned) = splice @users, 0, 2;
is($t->json_req(DELETE => '/api/user', { password => $gone->{password} }, $t->auth($gone))->res->code,
	204, 'one user deletes their account');
$dbh->do('UPDATE users SET banned_at = now() WHERE id = ?', undef, $banned->{id});
{
	my %bad;
	for my $round (1 .. 3) {
		my @tx = burst($gone, $banned, @users);
		my @codes = map { $_->res->code // 0 } @tx;
		$bad{gone}++ unless $codes[0] == 401;
		$bad{banned}++ unless $codes[1] == 401;
		$bad{others}++ if grep { $_ != 200 } @codes[2 .. $#codes];
		$bad{body}++ unless ($tx[1]->res->json('/error/code') // '') eq 'unauthorized';
	}
	is_deeply(\%bad, {}, 'in the same bursts: the deleted and the banned user 401, everybody else 200')
		or diag explain \%bad;
}

# --- read-your-writes ----------------------------------------------------------------

# Each user renames themselves and reads their profile back at once, all
# users together, three times: the read always sees the write before it.
{
	my $stale = 0;
	for my $round (1 .. 3) {
		Mojo::Promise->all(map {
			my $u = $_;
			my $name = "Renamed$round";
			$t->ua->put_p('/api/user/profile' => $t->auth($u) => json => { first_name => $name })
				->then(sub { $t->ua->get_p('/api/user/profile' => $t->auth($u)) })
				->then(sub { $stale++ unless ($_[0]->res->json('/user/first_name') // '') eq $name });
		} @users)->wait;
	}
	is($stale, 0, scalar(@users) . ' users x 3: a profile read right after its update sees it');
}

# --- a worker killed while its read holds the shared lane -----------------------------

# With the users table locked, a profile read waits in PostgreSQL holding
# the lane.  Every worker is killed; the new workers' first read finds
# the lane's holder dead and takes it over.
{
	my $u = $users[0];
	$t->allow_log(qr/"msg":"worker died".*"signal":9\b/);
	my @before = $t->worker_pids;
	my $locker = $t->lock_table('users');
	my $sock = $t->raw_get('/api/user/profile', $u);
	ok($t->wait_for(sub {
		$dbh->selectrow_array(q{SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock' AND query LIKE '%ANY($1::uuid[])%'})
	}, 10, 'the read to wait for the lock'), 'a read of the users waits for the lock, holding the lane');
	ok(kill('KILL', @before) == @before, 'SIGKILL every worker');
	ok($t->wait_for(sub {
		my @now = $t->worker_pids;
		@now == @before && !grep { my $p = $_; grep { $_ == $p } @before } @now
	}, 15, 'new workers'), 'new workers');
	$locker->rollback;
	$locker->disconnect;
	close $sock;
	$t->tm->get_ok('/api/user/profile' => $t->auth($u))->status_is(200)
		->json_is('/user/id' => $u->{id}, 'the new workers read user rows');
	ok($t->wait_for(sub { $t->log =~ /died holding a shared read lane; taking it over/ }, 5, 'the log line'),
		'the lane was taken over from the dead worker (logged)');
	my @tx = burst(@users);
	is(scalar(grep { ($_->res->code // 0) == 200 } @tx), scalar @users, 'and a burst after it: all 200');
}

$t->done;
