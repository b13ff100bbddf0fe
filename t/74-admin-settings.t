#!/usr/bin/perl
# /api/admin/settings over settings.c's typed table (listed by `miky
# settings`): GET gives every key with the value in effect; PUT checks
# every key before writing any (unknown keys and bad values are 400
# naming the key, per key: bounds, types, shapes), writes all in one
# transaction with an audit row per change (old and new value), and the
# change reaches every worker at once (NOTIFY), long before the one-minute
# reload could.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is);
use Mojo::JSON qw(decode_json encode_json true false);
use Mojo::Promise;

my $t = Miky::Test->new(workers => 2, threads => 1);
my $dbh = $t->dbh;
my $admin = $t->admin(first_name => 'Ada');
my $A = $t->auth($admin);
sub req { $t->json_req(@_) }
sub one { scalar $dbh->selectrow_array(@_) }

# The table, from the binary.
my ($code, $out) = $t->run_miky('settings');
is($code, 0, 'miky settings lists the table');
my @lines = split /\n/, $out;
is(shift(@lines), "key\ttype\tdefault\tmin\tmax\tdescription", 'with a header');
my %def;
for (@lines) {
	my ($key, $type, $default, $min, $max, $desc) = split /\t/;
	$def{$key} = { type => $type, default => $default, min => $min, max => $max, desc => $desc };
}
ok(keys %def >= 20, scalar(keys %def) . ' settings');
ok(!grep({ !length $def{$_}{desc} } keys %def), 'each with a description');

# --- GET -----------------------------------------------------------------------------

my $tx = req(GET => '/api/admin/settings', undef, $A);
is($tx->res->code, 200, 'GET settings: 200');
my $got = $tx->res->json('/settings');
is_deeply([ sort keys %$got ], [ sort keys %def ], 'every known key, and no other');
my %rows = map { $_->[0] => decode_json($_->[1]) }
	@{ $dbh->selectall_arrayref('SELECT key, value::text FROM admin_settings') };
for my $k (sort keys %def) {
	my $want = exists $rows{$k} ? $rows{$k}
		: $def{$k}{type} eq 'int' ? 0 + $def{$k}{default} : decode_json($def{$k}{default});
	is_deeply($got->{$k}, $want, "$k: the stored value, or the default without a row");
}
# A stored value that fails its check is not in effect: the default is.
$dbh->do(q{UPDATE admin_settings SET value = '-5' WHERE key = 'signup_credits'});
is(req(GET => '/api/admin/settings', undef, $A)->res->json('/settings/signup_credits'),
	0 + $def{signup_credits}{default}, 'a bad stored value reads as the default');
$dbh->do(q{UPDATE admin_settings SET value = '100' WHERE key = 'signup_credits'});

# --- PUT: refused, per key, and nothing written ----------------------------------------

my $state = sub {
	join '|', (map { join ',', @$_ } @{ $dbh->selectall_arrayref(
		'SELECT key, value::text, updated_at FROM admin_settings ORDER BY key') }),
		one('SELECT count(*) FROM admin_audit');
};
my $before = $state->();

my %json_bad = (
	plans => [ {}, { free => { name => 'Free', price_cents => 0, monthly_credits => 0 } },
		{ %{ $got->{plans} }, gold => $got->{plans}{plus} },
		{ %{ $got->{plans} }, plus => { %{ $got->{plans}{plus} }, price_cents => -1 } },
		{ %{ $got->{plans} }, plus => { %{ $got->{plans}{plus} }, extra => 1 } } ],
	credit_packs => [ {}, [ { id => 'a', credits => 0, price_cents => 100 } ],
		[ { id => 'a', credits => 10, price_cents => 100 }, { id => 'a', credits => 20, price_cents => 200 } ],
		[ map { { id => "p$_", credits => 10, price_cents => 100 } } 1 .. 21 ] ],
	models => [ [], { free => 'x', plus => 'y' }, { free => 'x', plus => 'y', business => 3 } ],
	personas => [ {}, { %{ $got->{personas} }, general => { %{ $got->{personas}{general} },
		credits_per_message => -1 } }, { %{ $got->{personas} }, wizard => $got->{personas}{general} } ],
);
for my $k (sort keys %def) {
	my @bad = (undef, 'text', \1);
	push @bad, [] unless $k eq 'credit_packs';	# no packs is fine
	if ($def{$k}{type} eq 'int') {
		push @bad, $def{$k}{min} - 1, $def{$k}{max} + 1, $def{$k}{min} + 0.5, "$def{$k}{min}", { n => 1 };
	} else {
		push @bad, 5, @{ $json_bad{$k} // [] };
	}
	for my $v (@bad) {
		my $what = "$k = " . substr(encode_json([$v]), 1, 40) =~ s/\]$//r;
		my $tx = req(PUT => '/api/admin/settings', { $k => $v }, $A);
		error_is($tx, 400, 'invalid_input', $k, "$what: 400 naming $k");
		like($tx->res->json('/error/message') // '', qr/'\Q$k\E'/, "$what: the message names it");
	}
	if ($def{$k}{type} eq 'int') {
		like(req(PUT => '/api/admin/settings', { $k => $def{$k}{max} + 1 }, $A)->res->json('/error/message'),
			qr/from \Q$def{$k}{min}\E to \Q$def{$k}{max}\E/, "$k: the message gives the bounds");
	}
}
error_is(req(PUT => '/api/admin/settings', { no_such_setting => 1 }, $A), 400, 'invalid_input',
	'no_such_setting', 'an unknown key: 400 naming it');
error_is(req(PUT => '/api/admin/settings', { signup_credits => 5, SIGNUP_CREDITS => 5 }, $A), 400,
	'invalid_input', 'SIGNUP_CREDITS', 'keys are case-sensitive');
$tx = req(PUT => '/api/admin/settings', { signup_credits => 5, referral_credits => 7, ai_max_retries => 11 }, $A);
error_is($tx, 400, 'invalid_input', 'ai_max_retries', 'good keys with one bad: 400 naming the bad one');
$tx = req(PUT => '/api/admin/settings', { ai_max_retries => 11, chat_turns_per_minute => 0 }, $A);
is($tx->res->json('/error/field'), 'chat_turns_per_minute', 'two bad keys: the first in the table is named');
error_is(req(PUT => '/api/admin/settings', [1, 2], $A), 400, 'invalid_input', undef, 'an array: 400');
error_is(req(PUT => '/api/admin/settings', '{"signup_credits":', { %$A, 'Content-Type' => 'application/json' }),
	400, 'invalid_json', undef, 'broken JSON: 400');
is($state->(), $before, 'no refused request wrote a setting or an audit row');

# --- PUT: bounds accepted, one transaction, audit rows ---------------------------------

my %edge = map { $_ => 0 + $def{$_}{min} } grep { $def{$_}{type} eq 'int' } keys %def;
$tx = req(PUT => '/api/admin/settings', \%edge, $A);
is($tx->res->code, 200, 'every integer at its minimum: 200') or diag $tx->res->body;
is($tx->res->json("/settings/$_"), $edge{$_}, "$_ = $edge{$_}") for sort keys %edge;
my %max = map { $_ => 0 + $def{$_}{max} } keys %edge;
is(req(PUT => '/api/admin/settings', \%max, $A)->res->code, 200, 'every integer at its maximum: 200');
is(one(q{SELECT value::text FROM admin_settings WHERE key = 'voice_max_bytes'}), $def{voice_max_bytes}{max},
	'stored');

my %restore = map { $_ => exists $rows{$_} ? $rows{$_} : 0 + $def{$_}{default} } keys %edge;
is(req(PUT => '/api/admin/settings', \%restore, $A)->res->code, 200, 'restored');
my $audits = one('SELECT count(*) FROM admin_audit');

$tx = req(PUT => '/api/admin/settings', { signup_credits => 250, chat_turns_per_minute => 20,
	models => { free => 'small-model', plus => 'big-model', business => 'big-model' } }, $A);
is($tx->res->code, 200, 'PUT three keys: 200');
is($tx->res->json('/settings/signup_credits'), 250, 'the answer has the new values');
is_deeply($tx->res->json('/settings/models'), { free => 'small-model', plus => 'big-model', business => 'big-model' },
	'a JSON value');
is(scalar keys %{ $tx->res->json('/settings') }, scalar keys %def, 'and every other key');
my $rows = $dbh->selectall_arrayref(q{SELECT admin_id, action, target_type, target_id, before::text, after::text
	FROM admin_audit WHERE id > (SELECT max(id) - 2 FROM admin_audit) ORDER BY id});
is(one('SELECT count(*) FROM admin_audit') - $audits, 2,
	'two audit rows: chat_turns_per_minute did not change (20 already)');
is_deeply([ map { [ @$_[1 .. 3] ] } @$rows ], [ map { ['settings.update', 'setting', $_] } qw(signup_credits models) ],
	'settings.update of each changed key');
is($rows->[0][0], $admin->{id}, 'by the admin');
is_deeply([ decode_json($rows->[0][4]), decode_json($rows->[0][5]) ], [100, 250], 'signup_credits: old 100, new 250');
is(decode_json($rows->[1][5])->{free}, 'small-model', 'models: the new value');
is(one(q{SELECT updated_by FROM admin_settings WHERE key = 'signup_credits'}), $admin->{id}, 'updated_by');

# A key without a row gets one.
$dbh->do(q{DELETE FROM admin_settings WHERE key = 'voice_max_concurrent'});
$tx = req(PUT => '/api/admin/settings', { voice_max_concurrent => 4 }, $A);
is($tx->res->json('/settings/voice_max_concurrent'), 4, 'a key without a row: written');
is(one(q{SELECT before FROM admin_audit WHERE target_id = 'voice_max_concurrent'}), undef,
	'audited with no old row (the default was in force)');

# The new sign-up grant is used by the workers.
my $new = $t->user(first_name => 'New');
is($new->{user}{credits}, 250, 'a new account gets the new signup_credits');

# --- every worker, at once ----------------------------------------------------------

sub personas_prices {
	my %price;
	my @rids;
	Mojo::Promise->all(map { $t->ua->get_p('/api/personas') } 1 .. 8)->then(sub {
		for my $r (@_) {
			my ($g) = grep { $_->{id} eq 'general' } @{ $r->[0]->res->json('/personas') // [] };
			$price{ $g->{credits_per_message} // 'none' }++;
			push @rids, $r->[0]->res->headers->header('X-Request-Id');
		}
	})->wait;
	return (\%price, \@rids);
}
# Bursts until both workers have answered with the new price, and no
# answer has the old one: a worker that missed the notification would
# keep the old price until its one-minute reload, past the deadline.
my %pids;
my $personas = $got->{personas};
$personas->{general}{credits_per_message} = 7;
$tx = req(PUT => '/api/admin/settings', { personas => $personas }, $A);
is($tx->res->code, 200, 'personas: general costs 7') or diag $tx->res->body;
my $start = time;
my $seen = $t->wait_for(sub {
	my ($price, $rids) = personas_prices();
	return 0 unless keys %$price == 1 && $price->{7};
	my $log = $t->log;
	for my $rid (@$rids) {
		$pids{$1}++ if $log =~ /"pid":(\d+),"msg":"request","request_id":"\Q$rid\E"/;
	}
	return keys %pids >= 2;
}, 40, 'both workers to answer with the new price');
ok($seen, 'both workers answer with the new price') or diag explain \%pids;
cmp_ok(time - $start, '<', 50, 'well before the one-minute reload (NOTIFY)');
my ($price) = personas_prices();
is_deeply($price, { 7 => 8 }, 'eight requests at once, all 7');

# System prompts may be long: the body may pass 64 KiB.
$personas->{$_}{system_prompt} = 'Be helpful. ' x 1400 for keys %$personas;
my $body = encode_json({ personas => $personas });
cmp_ok(length $body, '>', 150_000, 'a body of ' . length($body) . ' bytes');
is(req(PUT => '/api/admin/settings', { personas => $personas }, $A)->res->code, 200, 'accepted');
$personas->{general}{system_prompt} = 'x' x 20001;
error_is(req(PUT => '/api/admin/settings', { personas => $personas }, $A), 400, 'invalid_input', 'personas',
	'a system prompt over 20,000 characters: 400');
error_is(req(PUT => '/api/admin/settings', { models => { free => 'x' x 600_000 } }, $A), 413,
	'payload_too_large', undef, 'a body over 512 KiB: 413');

$t->done;
