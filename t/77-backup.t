#!/usr/bin/perl
# The restore drill of README "Backups": dump the roles and the database
# with pg_dumpall --roles-only and pg_dump -Fc, restore both into a fresh
# cluster, then `miky migrate` has nothing to do, `miky check-ledger`
# passes, and the app started on the restored database serves the
# restored users: they sign in with their passwords and find their
# credits, conversations and the admin's settings as they were.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is);
use DBI;
use IO::Socket::INET;

my $t = Miky::Test->new(env => { MIKY_STANDIN_DELAY_MS => 0 });
my $dbh = $t->dbh;
my $dir = $t->dir;
my ($bin) = reverse sort grep { -x "$_/pg_dump" } glob('/usr/lib/postgresql/*/bin');
$bin //= '/usr/bin';

sub run {
	my ($what, @cmd) = @_;
	my $out = `@{[ join ' ', map { "'$_'" } @cmd ]} 2>&1`;
	is($?, 0, $what) or diag $out;
	return $out;
}

# --- what there is to back up -------------------------------------------------------

my $admin = $t->admin(first_name => 'Ada');
my $u = $t->user(first_name => 'Uma');
for (1 .. 2) {
	is($t->json_req(POST => '/api/chat/send', { content => 'remember me' }, $t->auth($u))->res->code, 201,
		'a chat turn');
}
$t->json_req(PUT => "/api/admin/users/$u->{id}", { plan => 'plus', credits_delta => 25 }, $t->auth($admin));
$t->json_req(PUT => '/api/admin/settings', { signup_credits => 123 }, $t->auth($admin));
my $profile = $t->json_req(GET => '/api/user/profile', undef, $t->auth($u))->res->json('/user');
my $stats = $t->json_req(GET => '/api/admin/stats', undef, $t->auth($admin))->res->json;
my $convs = $t->json_req(GET => '/api/conversations', undef, $t->auth($u))->res->json('/conversations');
is(scalar @$convs, 2, 'two conversations to keep');

# --- dump ---------------------------------------------------------------------------

my @conn = ('-h', $t->{pghost}, '-p', $t->{pgport}, '-U', 'miky');
run('pg_dumpall --roles-only', "$bin/pg_dumpall", @conn, '--roles-only', '-f', "$dir/roles.sql");
run('pg_dump -Fc', "$bin/pg_dump", @conn, '-Fc', '-f', "$dir/miky.dump", $t->dbname);
like(`cat '$dir/roles.sql'`, qr/CREATE ROLE miky_app;/, 'the roles dump has miky_app');

# --- restore into a fresh cluster -------------------------------------------------------

my $pg = "$dir/pg";    # scripts/test.sh stops a cluster left here
my $port = do {
	my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp');
	$s->sockport;
};
run('a fresh cluster', "$Miky::Test::ROOT/scripts/pg.sh", 'init', $pg, $port);
run('started', "$Miky::Test::ROOT/scripts/pg.sh", 'start', $pg);
my @new = ('-h', $pg, '-p', $port, '-U', 'miky');
# The bootstrap superuser exists already: that one statement fails, the
# rest (miky_app) is made.
`'$bin/psql' @{[ join ' ', map { "'$_'" } @new ]} -X -q -d postgres -f '$dir/roles.sql' 2>&1`;
run('createdb', "$bin/createdb", @new, 'miky');
run('pg_restore', "$bin/pg_restore", @new, '-d', 'miky', '--exit-on-error', "$dir/miky.dump");

my $url = sub { "postgresql:///miky?host=$pg&port=$port&user=$_[0]" };
my ($code, $out) = $t->run_miky({ DATABASE_URL => $url->('miky_app'), MIGRATE_DATABASE_URL => $url->('miky') },
	'migrate');
is($code, 0, 'miky migrate on the restored database') or diag $out;
like($out, qr/schema up to date \(0 applied now/, 'with nothing to apply');
($code, $out) = $t->run_miky({ DATABASE_URL => $url->('miky_app') }, 'check-ledger');
is($code, 0, 'miky check-ledger passes on the restored database') or diag $out;

my $restored = DBI->connect("dbi:Pg:dbname=miky;host=$pg;port=$port", 'miky', '',
	{ AutoCommit => 1, RaiseError => 1, PrintError => 0 });
is($restored->selectrow_array('SELECT count(*) FROM users'), $dbh->selectrow_array('SELECT count(*) FROM users'),
	'every account');
is($restored->selectrow_array('SELECT sum(delta) FROM credit_ledger'),
	$dbh->selectrow_array('SELECT sum(delta) FROM credit_ledger'), 'the whole ledger');
ok(!$restored->selectrow_array(q{SELECT has_table_privilege('miky_app', 'credit_ledger', 'UPDATE')}),
	'miky_app still may not rewrite the ledger');
$restored->disconnect;

# --- the app on the restored database --------------------------------------------------

$t->stop_app;
$t->start_app(env => { DATABASE_URL => $url->('miky_app') });
my $tx = $t->json_req(POST => '/api/auth/signin', { email => $u->{email}, password => $u->{password} });
is($tx->res->code, 200, 'a restored user signs in with their password') or diag $tx->res->body;
my $me = { access_token => $tx->res->json('/access_token') };
my $now = $t->json_req(GET => '/api/user/profile', undef, $t->auth($me))->res->json('/user');
is_deeply({ %$now, updated_at => undef }, { %$profile, updated_at => undef }, 'the same profile: credits, plan...');
is_deeply($t->json_req(GET => '/api/conversations', undef, $t->auth($me))->res->json('/conversations'), $convs,
	'the same conversations');
is($t->json_req(POST => '/api/chat/send', { content => 'and now?' }, $t->auth($me))->res->code, 201,
	'and chats on');
$tx = $t->json_req(POST => '/api/auth/signin', { email => $admin->{email}, password => $admin->{password} });
my $adm = { access_token => $tx->res->json('/access_token') };
my $after = $t->json_req(GET => '/api/admin/stats', undef, $t->auth($adm))->res->json;
is($after->{users}{total}, $stats->{users}{total}, 'the admin sees the same users');
is($after->{messages}{total}, $stats->{messages}{total} + 2, 'and the messages, with the new turn');
is($t->json_req(GET => '/api/admin/settings', undef, $t->auth($adm))->res->json('/settings/signup_credits'), 123,
	'the settings came back');
($code, $out) = $t->run_miky({ DATABASE_URL => $url->('miky_app') }, 'check-ledger');
is($code, 0, 'check-ledger still passes after the new turn') or diag $out;

# The original database is untouched by all this.
is($dbh->selectrow_array('SELECT count(*) FROM messages'), $stats->{messages}{total}, 'the source kept its messages');

$t->stop_app;
run('the restored cluster stops', "$Miky::Test::ROOT/scripts/pg.sh", 'stop', $pg);
$t->done;
