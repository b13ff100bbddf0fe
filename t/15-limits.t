#!/usr/bin/perl
# Per-account limits and races: failed sign-ins (10 per 15 minutes per
# email, then 429 with Retry-After even with the right password),
# reset mails (3 an hour) and verification mails (5 an hour) silently
# not sent beyond that, and concurrent sign-ups, verifications and
# resets with one email or one link.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is);
use Mojo::Promise;
use Time::HiRes qw(sleep);

my $t = Miky::Test->new(workers => 2, threads => 8);
my $dbh = $t->dbh;


sub count { $dbh->selectrow_array(@_) }
sub post { $t->json_req(POST => @_) }
sub signin { post('/api/auth/signin', { email => $_[0], password => $_[1] }) }
sub mails { count('SELECT count(*) FROM email_outbox WHERE to_addr = ? AND template = ?', undef, @_) }

# The limits count in fixed windows (15 minutes, 1 hour) aligned on the
# epoch.  A sub-test that needs `need` seconds waits for the next window
# if the current one ends sooner, so a boundary cannot split its count.
sub fresh_window {
	my ($window, $need) = @_;
	$dbh->do('DELETE FROM rate_limits');
	my $left = count('SELECT ?::numeric - mod(extract(epoch FROM clock_timestamp())::numeric, ?::numeric)', undef, $window, $window);
	if ($left < $need) {
		diag "waiting ${left}s for a fresh $window-second window";
		sleep $left + 0.5;
		$dbh->do('DELETE FROM rate_limits');
	}
}

# parallel(@requests): [method, path, body, headers] each, all at once; the
# transactions, in the order given.
sub parallel { $t->parallel(@_) }

# --- failed sign-ins ------------------------------------------------------------------

{
	my $u = $t->user(first_name => 'Lim');
	my $other = $t->user(first_name => 'Free');
	fresh_window(900, 30);
	for my $i (1 .. 10) {
		my $email = $i % 2 ? $u->{email} : uc $u->{email};
		error_is(signin($email, "wrong password $i"), 401, 'invalid_credentials', undef,
			"failed sign-in $i: 401");
	}
	is(count('SELECT count FROM rate_limits WHERE key = ?', undef, "signin_fail:$u->{id}"), 10,
		'ten failures counted under the account (whatever the case of its email)');
	for my $try ([ 'a wrong password', 'wrong password 11' ], [ 'the right password', $u->{password} ]) {
		my $tx = signin($u->{email}, $try->[1]);
		error_is($tx, 429, 'rate_limited', undef, "the 11th sign-in, with $try->[0]: 429 rate_limited");
		my $ra = $tx->res->headers->header('Retry-After');
		ok(defined $ra && $ra =~ /^\d+$/ && $ra >= 1 && $ra <= 900, "Retry-After: $ra (1..900 s)");
	}
	my $left = count('SELECT 900 - mod(extract(epoch FROM now())::numeric, 900)');
	my $ra = signin($u->{email}, $u->{password})->res->headers->header('Retry-After');
	ok(abs($ra - $left) <= 2, "Retry-After is the rest of the window ($ra s, about $left s)");
	is(count('SELECT count FROM rate_limits WHERE key = ?', undef, "signin_fail:$u->{id}"), 10,
		'refused attempts are not counted again');

	is(signin($other->{email}, $other->{password})->res->code, 200, 'another email is not limited');
	# A stranger's guesses at the sign-in do not lock the signed-in owner
	# out of the password checks of a session (they count apart).
	my $np = 'quite another phrase';
	is(post('/api/user/change-password', { current_password => $u->{password}, new_password => $np },
		$t->auth($u))->res->code, 200, 'change-password with the right password: 200 despite the lock');
	is(post('/api/user/change-password', { current_password => $np, new_password => $u->{password} },
		$t->auth($u))->res->code, 200, 'and back');
	is(signin($u->{email}, $u->{password})->res->code, 429, 'the sign-in is still limited');

	$dbh->do('DELETE FROM rate_limits');
	is(signin($u->{email}, $u->{password})->res->code, 200, 'the window over (rows gone): the right password signs in');

	# An unknown email is limited just the same: nothing tells them apart.
	for my $i (1 .. 10) {
		signin('ghost@example.com', "guess $i");
	}
	error_is(signin('ghost@example.com', 'guess 11'), 429, 'rate_limited', undef,
		'an unknown email: 429 after ten failures too');

	# Guesses sent at once cannot overrun the limit: each attempt takes
	# its place in the count before its password is checked.
	$dbh->do('DELETE FROM rate_limits');
	my @tx = parallel(map { [ POST => '/api/auth/signin', { email => $u->{email}, password => "parallel $_" } ] }
		1 .. 20);
	is(scalar(grep { $_->res->code == 401 } @tx), 10, '20 wrong sign-ins at once: exactly 10 checked (401)')
		or diag join ' ', map { $_->res->code } @tx;
	is(scalar(grep { $_->res->code == 429 } @tx), 10, 'and 10 refused (429)');
	is(count('SELECT count FROM rate_limits WHERE key = ?', undef, "signin_fail:$u->{id}"), 10,
		'the count is 10: refused attempts take their place back');
	$dbh->do('DELETE FROM rate_limits');
	# (An attempt holds its place while its password is checked, so more
	# than ten at once would be refused even if right.)
	@tx = parallel(map { [ POST => '/api/auth/signin', { email => $u->{email}, password => $u->{password} } ] }
		1 .. 8);
	is(scalar(grep { $_->res->code == 200 } @tx), 8, '8 right sign-ins at once: all 200');
	ok(!count('SELECT count FROM rate_limits WHERE key = ?', undef, "signin_fail:$u->{id}"),
		'successes leave no count behind');

	# Wrong passwords in change-password count against their own limit.
	$dbh->do('DELETE FROM rate_limits');
	for my $i (1 .. 10) {
		post('/api/user/change-password', { current_password => "nope $i", new_password => 'quite another phrase' },
			$t->auth($other));
	}
	error_is(post('/api/user/change-password', { current_password => $other->{password},
		new_password => 'quite another phrase' }, $t->auth($other)), 429, 'rate_limited', undef,
		'ten wrong current passwords: the 11th check is 429');
	is(count('SELECT count FROM rate_limits WHERE key = ?', undef, "reauth_fail:$other->{id}"), 10,
		'counted under the account as re-authentications');
	is(signin($other->{email}, $other->{password})->res->code, 200,
		'the sign-in is not locked by them');
	$dbh->do('DELETE FROM rate_limits');
	@tx = parallel(map { [ DELETE => '/api/user', { password => "parallel $_" }, $t->auth($other) ] } 1 .. 20);
	is(scalar(grep { $_->res->code == 401 } @tx), 10, '20 wrong DELETE passwords at once: exactly 10 checked')
		or diag join ' ', map { $_->res->code } @tx;
	is(scalar(grep { $_->res->code == 429 } @tx), 10, 'and 10 refused');
	$dbh->do('DELETE FROM rate_limits');
	is(post('/api/user/change-password', { current_password => $other->{password},
		new_password => 'quite another phrase' }, $t->auth($other))->res->code, 200,
		'a right current password works after the window');
	ok(!count('SELECT count FROM rate_limits WHERE key = ?', undef, "reauth_fail:$other->{id}"),
		'and leaves no count behind');
	$dbh->do('DELETE FROM rate_limits');
}

# --- reset mails: 3 an hour ------------------------------------------------------------

{
	my $u = $t->user(first_name => 'Res');
	fresh_window(3600, 60);
	my @bodies;
	for my $i (1 .. 4) {
		my $tx = post('/api/auth/forgot-password', { email => $u->{email} });
		is($tx->res->code, 202, "forgot-password $i: 202");
		push @bodies, $tx->res->body;
		is(mails($u->{email}, 'reset'), $i > 3 ? 3 : $i, $i > 3 ? 'the 4th mail is not sent' : "mail $i queued");
	}
	is($bodies[3], $bodies[0], 'the 4th answer is the same as the first');
	my $tok = $t->mail_token($u->{email}, 'reset');
	is(post('/api/auth/reset-password', { token => $tok, password => 'a reset after limits' })->res->code, 200,
		"the 3rd mail's link still works (the 4th request voided nothing)");
	$dbh->do('DELETE FROM rate_limits');
	is(post('/api/auth/forgot-password', { email => $u->{email} })->res->code, 202, 'a new window');
	is(mails($u->{email}, 'reset'), 4, 'mails again');
}

# --- verification mails: 5 an hour -----------------------------------------------------

{
	fresh_window(3600, 60);
	my ($tok) = $t->signup(email => 'limited.verify@example.com');
	is(mails('limited.verify@example.com', 'verify'), 1, 'the sign-up mail is the 1st');
	for my $i (2 .. 6) {
		my $tx = post('/api/auth/resend-verification', { email => 'limited.verify@example.com' });
		is($tx->res->code, 202, "resend ($i): 202");
		is(mails('limited.verify@example.com', 'verify'), $i > 5 ? 5 : $i,
			$i > 5 ? 'the 6th mail is not sent' : "mail $i queued");
	}
	my $last = $t->mail_token('limited.verify@example.com', 'verify');
	isnt($last, $tok, 'the newest link is not the first');

	# A sign-up again, over the limit: no mail, so nothing may change
	# (a new password with no link to verify it would strand the account).
	my $hash = count('SELECT password_hash FROM users WHERE email = ?', undef, 'limited.verify@example.com');
	my $tx = post('/api/auth/signup', { email => 'limited.verify@example.com', password => 'over the limit phrase',
		first_name => 'Late', last_name => 'L' });
	is($tx->res->code, 202, 'a sign-up over the mail limit: 202');
	is(mails('limited.verify@example.com', 'verify'), 5, 'no 7th mail');
	is(count('SELECT password_hash FROM users WHERE email = ?', undef, 'limited.verify@example.com'), $hash,
		'the password is not replaced');
	isnt(count('SELECT first_name FROM users WHERE email = ?', undef, 'limited.verify@example.com'), 'Late',
		'nor the names');
	is(post('/api/auth/verify-email', { token => $last, password => 'correct horse battery staple' })
		->res->code, 200,
		"the 5th mail's link works (the requests over the limit voided nothing)");
	is(signin('limited.verify@example.com', 'correct horse battery staple')->res->code, 200,
		'the password of the mailed sign-up signs in');
	error_is(signin('limited.verify@example.com', 'over the limit phrase'), 401, 'invalid_credentials', undef,
		'the one of the unmailed sign-up does not');
	$dbh->do('DELETE FROM rate_limits');
}

# --- races ------------------------------------------------------------------------------

# 20 sign-ups with one new email at once: one account, 202 for all.
{
	fresh_window(3600, 60);
	my @tx = parallel(map {
		[ POST => '/api/auth/signup', { email => $_ % 2 ? 'race@example.com' : 'Race@Example.COM',
			password => 'one race password', first_name => "Racer$_", last_name => 'R' } ]
	} 1 .. 20);
	is(scalar(grep { $_ && $_->res->code == 202 } @tx), 20, '20 concurrent sign-ups, one email: all 202')
		or diag join ' ', map { $_ ? $_->res->code . ($_->res->code == 202 ? '' : ' ' . $_->res->body) : 'none' } @tx;
	is(scalar(grep { $_->res->body eq $tx[0]->res->body } @tx), 20, 'all the same answer');
	is(count(q{SELECT count(*) FROM users WHERE email = 'race@example.com'}), 1, 'exactly one users row');
	my $id = count(q{SELECT id FROM users WHERE email = 'race@example.com'});
	is(count('SELECT count(*) FROM credit_ledger WHERE user_id = ?', undef, $id), 1, 'one sign-up grant');
	is(count('SELECT credits FROM users WHERE id = ?', undef, $id), 100, 'credits 100');
	my $n = mails('race@example.com', 'verify');
	ok($n >= 1 && $n <= 5, "between 1 and 5 verify mails ($n): the hourly limit holds under a race");
	is(count(q{SELECT count(*) FROM email_tokens WHERE user_id = ? AND purpose = 'verify' AND used_at IS NULL},
		undef, $id), 1, 'exactly one live link');
	my $tok = $t->mail_token('race@example.com', 'verify');

	# Five verifications with that one link at once: one wins.
	@tx = parallel(map { [ POST => '/api/auth/verify-email',
		{ token => $tok, password => 'one race password' } ] } 1 .. 5);
	is(scalar(grep { $_->res->code == 200 } @tx), 1, 'one link, five verifications at once: one 200');
	is(scalar(grep { $_->res->code == 400 && ($_->res->json('/error/code') // '') eq 'invalid_token' } @tx), 4,
		'four 400 invalid_token');
	is(count('SELECT count(*) FROM refresh_tokens WHERE user_id = ?', undef, $id), 1, 'one session made');
	$dbh->do('DELETE FROM rate_limits');
}

# Different emails at once: each its own account.
{
	my @tx = parallel(map {
		[ POST => '/api/auth/signup', { email => "crowd$_\@example.com", password => 'a crowd password',
			first_name => "C$_", last_name => 'C' } ]
	} 1 .. 10);
	is(scalar(grep { $_->res->code == 202 } @tx), 10, '10 concurrent sign-ups, different emails: all 202');
	is(count(q{SELECT count(*) FROM users WHERE email LIKE 'crowd%@example.com'}), 10, 'ten accounts');
	is(count(q{SELECT count(DISTINCT referral_code) FROM users WHERE email LIKE 'crowd%@example.com'}), 10,
		'ten different referral codes');
	is(count(q{SELECT count(*) FROM credit_ledger l JOIN users u ON u.id = l.user_id
		WHERE u.email LIKE 'crowd%@example.com'}), 10, 'ten grants');
}

# One reset link used five times at once: one password change.
{
	my $u = $t->user(first_name => 'Racy');
	my $s = signin($u->{email}, $u->{password})->res->json;
	is(post('/api/auth/forgot-password', { email => $u->{email} })->res->code, 202, 'forgot-password');
	my $tok = $t->mail_token($u->{email}, 'reset');
	my @tx = parallel(map {
		[ POST => '/api/auth/reset-password', { token => $tok, password => "concurrent reset $_" } ]
	} 1 .. 5);
	my @won = grep { $tx[$_]->res->code == 200 } 0 .. 4;
	is(scalar @won, 1, 'one reset link, five resets at once: one 200');
	is(scalar(grep { $_->res->code == 400 && ($_->res->json('/error/code') // '') eq 'invalid_token' } @tx), 4,
		'four 400 invalid_token');
	is(count('SELECT count(*) FROM email_outbox WHERE to_addr = ? AND template = ?', undef, $u->{email},
		'password_changed'), 1, 'one password_changed mail');
	my $pw = 'concurrent reset ' . ($won[0] + 1);
	is(signin($u->{email}, $pw)->res->code, 200, "the winner's password signs in");
	is($t->json_req(GET => '/api/user/profile', undef, { Authorization => "Bearer $s->{access_token}" })->res->code,
		401, 'the earlier session ended');
}

$t->done;
