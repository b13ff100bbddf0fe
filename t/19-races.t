#!/usr/bin/perl
# Races and clean-ups the first hardening issue fixed without a test:
#   - refresh-token reuse racing rotations: for each of 40 session
#     families, a replay of its first (spent) token and a rotation of its
#     live token are sent at once; whichever wins, no token of a family
#     is left usable after its revocation, and a token a racing rotation
#     handed out is refused;
#   - the referral monthly cap under 10 invitees activating at once
#     against a cap of 3: exactly 3 rewards, ledger = balance;
#   - sign-in failures of one account under case variants of a non-ASCII
#     address (É/é, Ä/ä) share one counter, keyed on the account;
#   - the janitor (MIKY_SWEEP_MS) deletes sign-ups left unverified for
#     MIKY_PENDING_DAYS (7) by updated_at, and nothing else.
use strict;
use warnings;
use utf8;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is);
use Miky::FakeOpenAI qw(set_settings);
use Mojo::Promise;

my $t = Miky::Test->new(workers => 2, threads => 16, db_pool => 8,
	env => { MIKY_STANDIN_DELAY_MS => 0, MIKY_SWEEP_MS => 300 });
my $dbh = $t->dbh;

sub post_p { $t->ua->post_p($t->url($_[0]) => { %{ $_[2] // {} } } => json => $_[1]) }
sub post   { $t->json_req(POST => @_) }

# --- refresh-token reuse against rotations ------------------------------------------

{
	my @users = map { $t->user(first_name => "Fam$_") } 1 .. 3;
	my @fam;    # { old => spent token, live => its successor, family }
	for my $i (0 .. 39) {
		my $u = $users[$i % 3];
		my $si = post('/api/auth/signin', { email => $u->{email}, password => $u->{password} })->res->json;
		my $rt = post('/api/auth/refresh-token', { refresh_token => $si->{refresh_token} })->res->json;
		push @fam, { old => $si->{refresh_token}, live => $rt->{refresh_token} };
	}
	ok(!grep({ !$_->{live} } @fam), '40 families, each with a spent and a live token');
	# Both at once, for every family, interleaved.
	my (@p, %res);
	for my $i (0 .. $#fam) {
		push @p, post_p('/api/auth/refresh-token', { refresh_token => $fam[$i]{live} })
			->then(sub { $res{$i}{rotate} = shift->res });
		push @p, post_p('/api/auth/refresh-token', { refresh_token => $fam[$i]{old} })
			->then(sub { $res{$i}{replay} = shift->res });
	}
	Mojo::Promise->all(@p)->wait;
	my ($won, $lost) = (0, 0);
	for my $i (0 .. $#fam) {
		my ($rot, $rep) = @{ $res{$i} }{qw(rotate replay)};
		is($rep->code, 401, "family $i: the replay of a spent token: 401");
		is($rep->json('/error/code'), 'token_reused', "family $i: token_reused");
		if ($rot->code == 200) {
			$won++;
			# Its new token was revoked with the family, after it.
			my $again = post('/api/auth/refresh-token', { refresh_token => $rot->json('/refresh_token') });
			is($again->res->code, 401, "family $i: the token a racing rotation handed out is refused");
		} else {
			$lost++;
			is($rot->code, 401, "family $i: the rotation lost the race: 401");
		}
	}
	note "rotations that committed before the revocation: $won; after it: $lost";
	is($dbh->selectrow_array(q{SELECT count(*) FROM refresh_tokens t
		WHERE t.user_id = ANY(?) AND t.revoked_at IS NULL AND t.used_at IS NULL AND t.expires_at > now()
		AND t.family_id IN (SELECT family_id FROM refresh_tokens WHERE revoked_at IS NOT NULL)},
		undef, [ map { $_->{id} } @users ]), 0, 'no usable token is left in any revoked family');
	is($dbh->selectrow_array(q{SELECT count(DISTINCT family_id) FROM refresh_tokens
		WHERE user_id = ANY(?) AND revoked_at IS NOT NULL}, undef, [ map { $_->{id} } @users ]), 40,
		'all 40 families revoked');
	# The users' first sessions (from user()) are untouched.
	is(post('/api/auth/refresh-token', { refresh_token => $users[0]{refresh_token} })->res->code, 200,
		"another family of the same user still rotates (control)");
}

# --- the referral cap, ten activations at once -------------------------------------------

{
	set_settings($t, referral_monthly_cap => 3, referral_credits => 300);
	my $r = $t->user(first_name => 'Referrer');
	my @inv = map { $t->user(first_name => "Invitee$_", referral_code => $r->{user}{referral_code}) } 1 .. 10;
	is($dbh->selectrow_array(q{SELECT count(*) FROM referrals WHERE user_id = ? AND status = 'pending'}, undef, $r->{id}),
		10, 'ten pending referrals');
	my @codes;
	Mojo::Promise->all(map {
		my $u = $_;
		$t->ua->post_p($t->url('/api/chat/send') => $t->auth($u) => json => { content => 'first turn' })
			->then(sub { push @codes, shift->res->code })
	} @inv)->wait;
	is_deeply([ sort @codes ], [ (201) x 10 ], 'ten first turns at once: all 201');
	is($dbh->selectrow_array(q{SELECT count(*) FROM referrals WHERE user_id = ? AND status = 'activated'},
		undef, $r->{id}), 10, 'all ten activated');
	is($dbh->selectrow_array(q{SELECT count(*) FROM referrals WHERE user_id = ? AND credits_awarded > 0},
		undef, $r->{id}), 3, 'exactly three rewarded: the cap held');
	is($dbh->selectrow_array(q{SELECT count(*) FROM credit_ledger WHERE user_id = ? AND reason = 'referral'},
		undef, $r->{id}), 3, 'three referral ledger rows');
	my ($credits, $sum) = $dbh->selectrow_array(q{SELECT u.credits, (SELECT sum(delta) FROM credit_ledger
		WHERE user_id = u.id) FROM users u WHERE u.id = ?}, undef, $r->{id});
	is($credits, 100 + 3 * 300, 'the referrer has 3 × 300 credits more');
	is($sum, $credits, 'credits = the ledger sum');
	set_settings($t, referral_monthly_cap => 20);
}

# --- sign-in failures under case variants of a non-ASCII address ------------------------------

{
	my $u = $t->user(email => 'élodie.äger@exämple.com', first_name => 'Élodie');
	my $uid = $u->{id};
	is($dbh->selectrow_array('SELECT email FROM users WHERE id = ?', undef, $uid), 'élodie.äger@exämple.com',
		'stored in lower case');
	my @forms = ('élodie.äger@exämple.com', 'Élodie.Äger@Exämple.com', 'ÉLODIE.ÄGER@EXÄMPLE.COM',
		'élodie.ÄGER@exÄmple.com', 'Élodie.äger@EXÄMPLE.com');
	for my $i (1 .. 10) {
		my $form = $forms[$i % @forms];
		error_is(post('/api/auth/signin', { email => $form, password => "wrong $i" }), 401,
			'invalid_credentials', undef, "failure $i, as $form: 401");
	}
	is($dbh->selectrow_array('SELECT sum(count) FROM rate_limits WHERE key = ?', undef, "signin_fail:$uid"), 10,
		'ten failures on one counter, the account\'s');
	is($dbh->selectrow_array(q{SELECT count(*) FROM rate_limits WHERE key LIKE 'signin_fail:%' AND key LIKE '%@%'}), 0,
		'no counter keyed on a spelling of the address');
	for my $form (@forms) {
		error_is(post('/api/auth/signin', { email => $form, password => $u->{password} }), 429, 'rate_limited', undef,
			"then the right password as $form: 429");
	}
	# Change-password and deletion count apart: the owner is not locked out.
	is(post('/api/user/change-password', { current_password => $u->{password}, new_password => 'another long phrase' },
		$t->auth($u))->res->code, 200, 'the owner can still change the password');
	is($t->json_req(DELETE => '/api/user', { password => 'another long phrase' }, $t->auth($u))->res->code, 204,
		'and delete the account');
}

# --- the janitor: sign-ups never verified ---------------------------------------------------

{
	my %acct;
	# p8 and p6 were invited: p8's pending referral goes with p8.
	my $ref = $t->user(email => 'jan-referrer@example.com');
	my %invited = (p8 => 1, p6 => 1);
	for my $name (qw(p8 p7h p6 fresh)) {
		$t->signup(email => "jan-$name\@example.com",
			$invited{$name} ? (referral_code => $ref->{user}{referral_code}) : ());
		$acct{$name} = $dbh->selectrow_array('SELECT id FROM users WHERE email = ?', undef, "jan-$name\@example.com");
	}
	my $v8 = $t->user(email => 'jan-v8@example.com');
	$acct{v8} = $v8->{id};
	my %age = (p8 => '8 days', p7h => '7 days 1 hour', p6 => '6 days', v8 => '30 days');
	# Aged behind the trigger that keeps updated_at current.
	$dbh->begin_work;
	$dbh->do('SET LOCAL session_replication_role = replica');
	$dbh->do(q{UPDATE users SET updated_at = now() - ?::interval, created_at = now() - ?::interval WHERE id = ?},
		undef, $age{$_}, $age{$_}, $acct{$_}) for keys %age;
	$dbh->commit;
	ok($t->wait_for(sub { !$dbh->selectrow_array('SELECT count(*) FROM users WHERE id IN (?, ?)', undef, @acct{qw(p8 p7h)}) },
		15, 'the janitor'), 'pending accounts unverified for more than 7 days are deleted');
	for my $name (qw(p6 fresh v8)) {
		ok($dbh->selectrow_array('SELECT 1 FROM users WHERE id = ?', undef, $acct{$name}), "$name is kept");
	}
	is($dbh->selectrow_array(q{SELECT count(*) FROM email_tokens WHERE user_id IN (?, ?)}, undef, @acct{qw(p8 p7h)}),
		0, 'their verification tokens went with them');
	like($t->log, qr/janitor: deleted \d+ sign-ups never verified/, 'logged');
	is_deeply($dbh->selectall_arrayref(q{SELECT referred_user_id, status FROM referrals WHERE user_id = ?},
		undef, $ref->{id}), [ [ $acct{p6}, 'pending' ] ],
		"the purged invitee's pending referral went with it; the kept one's stays");
	is($dbh->selectrow_array('SELECT referrals_count FROM users WHERE id = ?', undef, $ref->{id}), 1,
		"the referrer's count follows");
	is(post('/api/auth/signup', { email => 'jan-p8@example.com', password => 'correct horse battery staple',
		first_name => 'Again', last_name => 'A' })->res->code, 202, 'the address can sign up again');
	is(post('/api/auth/signin', { email => $v8->{email}, password => $v8->{password} })->res->code, 200,
		'the old verified account signs in');
}

$t->done;
