#!/usr/bin/perl
# The app's database role (miky_app, schema/020) cannot rewrite money
# history or the schema: UPDATE, DELETE and TRUNCATE of credit_ledger,
# admin_audit and stripe_events are refused, and so is every kind of DDL,
# while everything the app does still works under it, deletions that
# cascade (SET NULL) into the ledger and the audit included.  `miky
# migrate` needs the owner.  A server connected as the owner says so.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test qw(error_is);
use DBI;

my $t = Miky::Test->new(env => { MIKY_SWEEP_MS => 200, MIKY_STANDIN_DELAY_MS => 0 });
my $dbh = $t->dbh;
like($t->db_url, qr/[?&]user=miky_app(?:&|$)/, 'the app connects as miky_app');
is($dbh->selectrow_array(q{SELECT count(*) FROM pg_stat_activity
	WHERE datname = current_database() AND application_name = 'miky' AND usename <> 'miky_app'}), 0,
	'every pooled connection of the app is miky_app');

my $app = DBI->connect("dbi:Pg:dbname=" . $t->dbname . ";host=$t->{pghost};port=$t->{pgport}",
	'miky_app', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0, PrintWarn => 0 });
ok($app, 'connected as miky_app');
is($app->selectrow_array('SELECT current_user'), 'miky_app', 'current_user miky_app');
ok(!$app->selectrow_array(q{SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls
	FROM pg_roles WHERE rolname = 'miky_app'}), 'no superuser, CREATEROLE, CREATEDB or BYPASSRLS');

# Something in each append-only table.
my $u = $t->user(first_name => 'Uma');
my $admin = $t->admin(first_name => 'Ada');
$t->json_req(PUT => "/api/admin/users/$u->{id}", { credits_delta => 5 }, $t->auth($admin));
$dbh->do(q{INSERT INTO stripe_events (id, type, payload) VALUES ('evt_1', 'invoice.paid', '{}')});
my $ledger = $dbh->selectrow_array('SELECT count(*) FROM credit_ledger');

# SQLSTATE 42501 (insufficient_privilege) or 42P01-like refusals only.
sub refused {
	my ($sql, $what) = @_;
	$app->begin_work;
	my $ok = $app->do($sql);
	my $state = $app->state;
	$app->rollback;
	ok(!defined $ok, "$what: refused") or diag "ran: $sql";
	is($state, '42501', "$what: insufficient_privilege (42501)") or diag $app->errstr;
}
sub allowed {
	my ($sql, $what) = @_;
	$app->begin_work;
	my $ok = $app->do($sql);
	ok(defined $ok, "$what: allowed") or diag $app->errstr;
	$app->rollback;
}

for my $table (qw(credit_ledger cash_ledger admin_audit stripe_events)) {
	refused("UPDATE $table SET created_at = created_at", "UPDATE $table")
		if $table ne 'stripe_events';
	refused("UPDATE $table SET received_at = received_at", "UPDATE $table")
		if $table eq 'stripe_events';
	refused("DELETE FROM $table", "DELETE FROM $table");
	refused("TRUNCATE $table", "TRUNCATE $table");
	refused("SELECT * FROM $table FOR UPDATE", "SELECT ... FOR UPDATE on $table");
	allowed("SELECT count(*) FROM $table", "SELECT from $table");
}
allowed(q{INSERT INTO credit_ledger (user_id, delta, balance_after, reason) VALUES
	(NULL, 1, 1, 'admin')}, 'INSERT into credit_ledger');
allowed(q{INSERT INTO admin_audit (action, target_type) VALUES ('x', 'y')}, 'INSERT into admin_audit');
allowed(q{INSERT INTO stripe_events (id, type, payload) VALUES ('evt_2', 'x', '{}')}, 'INSERT into stripe_events');
allowed(q{UPDATE users SET first_name = first_name}, 'UPDATE users');
allowed(q{DELETE FROM rate_limits}, 'DELETE FROM rate_limits');

refused('CREATE TABLE evil (x int)', 'CREATE TABLE');
refused('CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$', 'CREATE FUNCTION');
refused('CREATE INDEX evil ON users (first_name)', 'CREATE INDEX');
refused('ALTER TABLE users ADD COLUMN evil int', 'ALTER TABLE');
refused('ALTER TABLE credit_ledger DISABLE TRIGGER ALL', 'ALTER TABLE ... DISABLE TRIGGER');
refused('DROP TABLE credit_ledger', 'DROP TABLE');
refused('DROP TRIGGER stats_ledger ON credit_ledger', 'DROP TRIGGER');
refused('CREATE OR REPLACE FUNCTION miky_app_grants() RETURNS void LANGUAGE sql AS $$ SELECT $$',
	'replacing a function');
$app->do('GRANT UPDATE ON credit_ledger TO miky_app');	# a warning, no grant
refused('UPDATE credit_ledger SET ref = ref', 'UPDATE after granting itself UPDATE');
refused('INSERT INTO schema_migrations (version, checksum) VALUES (\'x\', \'y\')',
	'writing schema_migrations');
refused('CREATE SCHEMA evil', 'CREATE SCHEMA');
is($dbh->selectrow_array('SELECT count(*) FROM credit_ledger'), $ledger, 'the ledger is as it was');

# Everything the app does works under the role.
my $tx = $t->json_req(POST => '/api/chat/send', { content => 'hi' }, $t->auth($u));
is($tx->res->code, 201, 'a chat turn') or diag $tx->res->body;
my $ledger_rows = $dbh->selectrow_array('SELECT count(*) FROM credit_ledger WHERE user_id = ?', undef, $u->{id});

# An account deleted: its ledger rows stay with user_id NULL (the foreign
# key's action runs as the table's owner).
is($t->json_req(DELETE => '/api/user', { password => $u->{password} }, $t->auth($u))->res->code, 204,
	'DELETE /api/user under miky_app');
is($dbh->selectrow_array('SELECT count(*) FROM users WHERE id = ?', undef, $u->{id}), 0, 'the account is gone');
is($dbh->selectrow_array(q{SELECT count(*) FROM credit_ledger WHERE user_id IS NULL AND ref IN (?, ?)},
	undef, $u->{id}, "admin:$admin->{id}"), 2, 'its ledger rows stay, anonymised (SET NULL)');
is($dbh->selectrow_array('SELECT count(*) FROM credit_ledger WHERE user_id = ?', undef, $u->{id}), 0,
	"none left under the user's id ($ledger_rows before)");

# An admin deleted: the audit trail stays, admin_id NULL.
my $audits = $dbh->selectrow_array('SELECT count(*) FROM admin_audit WHERE admin_id = ?', undef, $admin->{id});
ok($audits > 0, "the admin made $audits audit rows");
is($t->json_req(DELETE => '/api/user', { password => $admin->{password} }, $t->auth($admin))->res->code, 204,
	'the admin deletes their account');
is($dbh->selectrow_array(q{SELECT count(*) FROM admin_audit WHERE admin_id IS NULL AND action = 'user.update'}),
	$audits, 'their audit rows stay, admin_id NULL');

# The janitor deletes a sign-up never verified, under the role.
$t->signup(email => 'stale@example.com');
# (Past the trigger that keeps updated_at current.)
$dbh->do(q{SET session_replication_role = replica});
$dbh->do(q{UPDATE users SET updated_at = now() - interval '30 days' WHERE email = 'stale@example.com'});
$dbh->do(q{RESET session_replication_role});
ok($t->wait_for(sub { !$dbh->selectrow_array(q{SELECT count(*) FROM users WHERE email = 'stale@example.com'}) },
	20, 'the janitor'), 'the janitor purged the stale sign-up');
ok($dbh->selectrow_array(q{SELECT count(*) FROM credit_ledger WHERE reason = 'signup' AND user_id IS NULL}) >= 2,
	'its sign-up grant stays in the ledger');
unlike($t->log, qr/may UPDATE or DELETE the credit ledger/, 'the app does not warn about its role');

# `miky migrate` as the app's role cannot grant: it fails and says so.
my ($code, $out) = $t->run_miky({ MIGRATE_DATABASE_URL => $t->db_url }, 'migrate');
isnt($code, 0, 'miky migrate as miky_app fails');
like($out, qr/MIGRATE_DATABASE_URL/, 'naming MIGRATE_DATABASE_URL');
($code, $out) = $t->run_miky('migrate');
is($code, 0, 'as the owner it runs') or diag $out;

# A table a later migration adds gets the grants when `miky migrate` runs.
$dbh->do('CREATE TABLE later_table (x int)');
($code, $out) = $t->run_miky('migrate');
is($code, 0, 'migrate again');
ok($app->do('INSERT INTO later_table VALUES (1)'), 'a new table: the app may write it');
ok($app->do('DELETE FROM later_table'), 'and delete from it');
$dbh->do(q{GRANT UPDATE ON credit_ledger TO miky_app});
($code, $out) = $t->run_miky('migrate');
refused('UPDATE credit_ledger SET ref = ref', 'a grant added by hand is taken back by the next migrate');

# The server started as the owner warns.
$t->stop_app;
$t->start_app(env => { DATABASE_URL => $t->owner_url });
ok($t->wait_for(sub { $t->log =~ /may UPDATE or DELETE the credit ledger/ }, 10, 'the warning'),
	'connected as the owner, the app warns');
$t->allow_log(qr/may UPDATE or DELETE the credit ledger/);

$app->disconnect;
$t->done;
