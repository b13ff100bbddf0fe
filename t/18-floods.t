#!/usr/bin/perl
# Password hashing under a flood.  The line for an argon2 slot is bounded
# (four callers a slot): a flood of sign-ins is refused at once with 503
# unavailable and Retry-After instead of parking every request thread,
# and the other routes keep answering.  No request holds a database
# connection across a hash (a held one is logged as critical, which fails
# this file): eight password changes at once on a pool of two connections
# all succeed.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test;
use Mojo::Promise;

my $t = Miky::Test->new(workers => 1, threads => 48, db_pool => 2,
	env => { MIKY_HASH_CONCURRENCY => 1 });
my $u = $t->user(first_name => 'Flood');

sub parallel { $t->parallel(@_) }

# --- 40 sign-ins at once on one hashing slot ---------------------------------------

{
	my @req = map { [ POST => '/api/auth/signin', { email => "nobody$_\@example.com", password => "guess $_" } ] }
		1 .. 40;
	# Profile reads ride along with the flood.
	push @req, map { [ GET => '/api/user/profile', undef, $t->auth($u) ] } 1 .. 5;
	my @tx = parallel(@req);
	my @signin = @tx[0 .. 39];
	my @busy = grep { $_->res->code == 503 } @signin;
	my @wrong = grep { $_->res->code == 401 } @signin;
	ok(@busy > 0, 'some sign-ins were refused at once: 503 (' . scalar(@busy) . ')');
	ok(@wrong > 0, 'the others were checked: 401 (' . scalar(@wrong) . ')');
	is(@busy + @wrong, 40, 'no other answer') or diag join ' ', map { $_->res->code } @signin;
	is(scalar(grep { ($_->res->json('/error/code') // '') eq 'unavailable' } @busy), scalar @busy,
		'503 unavailable');
	is(scalar(grep { ($_->res->headers->header('Retry-After') // '') =~ /^\d+$/ } @busy), scalar @busy,
		'with Retry-After');
	is(scalar(grep { $_->res->code == 200 } @tx[40 .. 44]), 5, 'the profile reads beside them: all 200');
}

# --- change-password x 8 on a pool of 2 ----------------------------------------------

{
	my @users = map { $t->user(first_name => "Chg$_") } 1 .. 8;
	$t->dbh->do('DELETE FROM rate_limits');
	my @tx = parallel(map { [ POST => '/api/user/change-password',
		{ current_password => $_->{password}, new_password => "a brand new phrase for $_->{id}" },
		$t->auth($_) ] } @users);
	my %codes;
	$codes{ $_->res->code }++ for @tx;
	ok(($codes{200} // 0) >= 1, 'change-password x 8 on a pool of two: they succeed ('
		. ($codes{200} // 0) . ' of 8; the rest refused busy by the hashing line)');
	is(join(',', sort grep { $_ != 200 && $_ != 503 } keys %codes), '', 'nothing but 200 or 503 busy');
	is($t->json_req(GET => '/api/user/profile', undef, $t->auth($u))->res->code, 200,
		'the pool is not left empty');
}

$t->done;
