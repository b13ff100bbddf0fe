#!/usr/bin/perl
# GET /api/admin/stats: every figure against the tables themselves, as
# writes of every kind move them (sign-ups, verification, plans, chat
# turns, refunds, payments completed and refunded, referrals, cash-outs,
# account deletion); the same after the janitor folds the deltas and
# after stats_rebuild() recounts from scratch; ?days=N adds a daily series.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is);
use POSIX qw(strftime);

my $t = Miky::Test->new(env => { MIKY_STANDIN_DELAY_MS => 0, MIKY_SWEEP_MS => 200 });
my $dbh = $t->dbh;
my $admin = $t->admin(first_name => 'Ada');
my $A = $t->auth($admin);

sub req { $t->json_req(@_) }
sub stats {
	my ($q) = @_;
	my $tx = req(GET => '/api/admin/stats' . ($q // ''), undef, $A);
	is($tx->res->code, 200, 'GET stats' . ($q // '') . ': 200') or diag $tx->res->body;
	return $tx->res->json;
}
sub one { scalar $dbh->selectrow_array(@_) }

# The figures computed from the tables, the way api.md and schema/021
# define them (UTC days: "30d" is today and the 29 days before).
sub truth {
	my $today = q{(now() AT TIME ZONE 'UTC')::date};
	my $day = q{((created_at AT TIME ZONE 'UTC')::date)};
	my $rev = q{sum((amount * 100)::bigint) FILTER (WHERE type IN ('subscription', 'credits') AND status = 'completed')};
	return {
		users => {
			total => one('SELECT count(*) FROM users'),
			verified => one('SELECT count(*) FROM users WHERE email_verified'),
			by_plan => { map { $_ => one('SELECT count(*) FROM users WHERE plan = ?', undef, $_) }
				qw(free plus business) },
			new_7d => one("SELECT count(*) FROM users WHERE $day > $today - 7"),
		},
		messages => {
			total => one('SELECT count(*) FROM messages'),
			last_24h => one(q{SELECT count(*) FROM messages WHERE created_at > now() - interval '24 hours'}),
		},
		credits_consumed_30d => one(qq{SELECT coalesce(-sum(delta), 0) FROM credit_ledger
			WHERE reason IN ('chat', 'voice', 'chat_refund', 'voice_refund') AND $day > $today - 30}),
		revenue_cents => {
			total => one("SELECT coalesce($rev, 0) FROM transactions"),
			last_30d => one("SELECT coalesce($rev, 0) FROM transactions WHERE $day > $today - 30"),
		},
		referrals => {
			total => one('SELECT count(*) FROM referrals'),
			activated => one(q{SELECT count(*) FROM referrals WHERE status IN ('activated', 'qualified')}),
			qualified => one(q{SELECT count(*) FROM referrals WHERE status = 'qualified'}),
		},
		cashouts_pending => {
			count => one(q{SELECT count(*) FROM transactions WHERE type = 'cashout' AND status = 'pending'}),
			amount_cents => one(q{SELECT coalesce((sum(amount) * 100)::bigint, 0) FROM transactions
				WHERE type = 'cashout' AND status = 'pending'}),
		},
	};
}

sub check {
	my ($name, %want) = @_;
	my $got = stats();
	is_deeply($got, truth(), "$name: every figure matches the tables") or diag explain [$got, truth()];
	for my $path (sort keys %want) {
		my $v = $got;
		$v = $v->{$_} for split m{/}, $path;
		is($v, $want{$path}, "$name: $path = $want{$path}");
	}
	return $got;
}

check('one admin', 'users/total' => 1, 'messages/total' => 0, 'revenue_cents/total' => 0);

# --- accounts -------------------------------------------------------------------

my $b = $t->user(first_name => 'Bea');
my $c = $t->user(first_name => 'Cy');
$t->signup(first_name => 'Pending');
my $d = $t->user(first_name => 'Dee', referral_code => $b->{user}{referral_code});
# An account made ten days ago (outside new_7d).
$dbh->do(q{INSERT INTO users (email, password_hash, first_name, last_name, referral_code,
	email_verified, created_at) VALUES ('old@example.com', 'x', 'Old', 'Timer', 'ABCDEFGH', true,
	now() - interval '10 days')});
req(PUT => "/api/admin/users/$b->{id}", { plan => 'plus' }, $A);
$dbh->do(q{UPDATE users SET plan = 'business' WHERE id = ?}, undef, $c->{id});
check('accounts', 'users/total' => 6, 'users/verified' => 5, 'users/new_7d' => 5,
	'users/by_plan/plus' => 1, 'users/by_plan/business' => 1, 'users/by_plan/free' => 4,
	'referrals/total' => 1, 'referrals/activated' => 0);

# --- chat turns: messages, credits, referral activation ---------------------------

for my $who ($b, $b, $d) {
	my $tx = req(POST => '/api/chat/send', { content => 'hello' }, $t->auth($who));
	is($tx->res->code, 201, 'a chat turn') or diag $tx->res->body;
}
# A message of two days ago, and a refund and charge of today on the ledger.
my ($conv) = $dbh->selectrow_array(q{SELECT id FROM conversations WHERE user_id = ?}, undef, $b->{id});
$dbh->do(q{INSERT INTO messages (conversation_id, user_id, sender, content, persona, created_at)
	VALUES (?, ?, 'user', 'old', 'general', now() - interval '2 days')}, undef, $conv, $b->{id});
$dbh->do(q{INSERT INTO credit_ledger (user_id, delta, balance_after, reason, ref, created_at) VALUES
	(?, -4, 96, 'chat', 't1', now()), (?, 1, 97, 'chat_refund', 't1', now()),
	(?, -5, 92, 'chat', 't2', now() - interval '40 days')}, undef, ($c->{id}) x 3);
check('chat', 'messages/total' => 7, 'messages/last_24h' => 6, 'credits_consumed_30d' => 6,
	'referrals/activated' => 1);

# --- money ------------------------------------------------------------------------

my $ins = $dbh->prepare(q{INSERT INTO transactions (user_id, type, amount, status, created_at)
	VALUES (?, ?, ?, ?, now() - ? * interval '1 day') RETURNING id});
my %tx;
for my $row ([pack1 => 'credits', 9.99, 'completed', 0], [sub => 'subscription', 29.99, 'completed', 40],
	[pending => 'credits', 5.00, 'pending', 0], [refunded => 'credits', 7.00, 'refunded', 0],
	[paid => 'cashout', 10.00, 'completed', 0], [co1 => 'cashout', 12.50, 'pending', 3],
	[co2 => 'cashout', 3.00, 'pending', 0], [bonus => 'referral', 2.00, 'completed', 0])
{
	my ($name, @v) = @$row;
	$ins->execute($b->{id}, @v);
	($tx{$name}) = $ins->fetchrow_array;
}
$ins->finish;
check('payments', 'revenue_cents/total' => 3998, 'revenue_cents/last_30d' => 999,
	'cashouts_pending/count' => 2, 'cashouts_pending/amount_cents' => 1550);
$dbh->do(q{UPDATE transactions SET status = 'completed' WHERE id = ?}, undef, $tx{pending});
check('a payment completes', 'revenue_cents/total' => 4498, 'revenue_cents/last_30d' => 1499);
$dbh->do(q{UPDATE transactions SET status = 'refunded' WHERE id = ?}, undef, $tx{pack1});
$dbh->do(q{UPDATE transactions SET status = 'refunded' WHERE id = ?}, undef, $tx{sub});
check('refunds take revenue back on its day', 'revenue_cents/total' => 500, 'revenue_cents/last_30d' => 500);
req(PUT => "/api/admin/transactions/$tx{co1}", { status => 'failed' }, $A);
check('a cash-out failed', 'cashouts_pending/count' => 1, 'cashouts_pending/amount_cents' => 300);
$dbh->do(q{UPDATE referrals SET status = 'qualified'});
check('a referral qualifies', 'referrals/activated' => 1, 'referrals/qualified' => 1);

# --- an account deleted -----------------------------------------------------------

is(req(DELETE => '/api/user', { password => $d->{password} }, $t->auth($d))->res->code, 204, 'an account deleted');
check('deleted: its messages go with it', 'users/total' => 5, 'users/new_7d' => 4, 'messages/total' => 5,
	'referrals/total' => 1);

# --- the janitor folds the deltas; a recount finds the same ---------------------------

my $before = stats();
ok($t->wait_for(sub { one('SELECT count(*) FROM stats_deltas') == 0 }, 20, 'the fold'),
	'the janitor folded every delta into stats_daily');
ok(one('SELECT count(*) FROM stats_daily') > 0, 'stats_daily has the days');
is_deeply(stats(), $before, 'the same figures after the fold');
$dbh->do('SELECT stats_rebuild()');
is_deeply(stats(), $before, 'and after stats_rebuild() recounts from the tables');

# --- ?days=N --------------------------------------------------------------------------

my $today = strftime('%Y-%m-%d', gmtime);
my $s = stats('?days=3');
is(scalar @{ $s->{series} }, 3, 'days=3: three days');
is($s->{series}[-1]{date}, $today, 'the last is today (UTC)');
is_deeply([ map { $_->{date} } @{ $s->{series} } ],
	[ map { strftime('%Y-%m-%d', gmtime(time - $_ * 86400)) } 2, 1, 0 ], 'oldest first, one a day');
my $series_truth = $dbh->selectall_arrayref(q{
	SELECT d::date::text,
	  (SELECT count(*) FROM users WHERE (created_at AT TIME ZONE 'UTC')::date = d::date),
	  (SELECT count(*) FROM messages WHERE (created_at AT TIME ZONE 'UTC')::date = d::date),
	  (SELECT coalesce(sum((amount * 100)::bigint), 0) FROM transactions
	    WHERE type IN ('subscription', 'credits') AND status = 'completed'
	    AND (created_at AT TIME ZONE 'UTC')::date = d::date)
	FROM generate_series((now() AT TIME ZONE 'UTC')::date - 2, (now() AT TIME ZONE 'UTC')::date,
	  interval '1 day') d ORDER BY d});
is_deeply([ map { [ @$_{qw(date users messages revenue_cents)} ] } @{ $s->{series} } ], $series_truth,
	'each day: sign-ups, messages and revenue of that day');
is($s->{series}[0]{messages}, 1, 'the message of two days ago is on its day');
ok(!exists stats()->{series}, 'no series without days');
is(scalar @{ stats('?days=1')->{series} }, 1, 'days=1: one day');
is(scalar @{ stats('?days=365')->{series} }, 365, 'days=365: a year');
for my $bad (qw(0 366 -1 abc 1.5), '') {
	error_is(req(GET => "/api/admin/stats?days=$bad", undef, $A), 400, 'invalid_input', 'days',
		"days=$bad: 400 naming days");
}

$t->done;
