#!/usr/bin/perl
# The harness itself: database, app, nginx, static files, log checks.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test;

# The log scanners, on made-up lines.
my @bad = Miky::Test::scan_app_log(join("\n",
	'{"level":"info","msg":"request","status":200}',
	'{"level":"crit","msg":"out of memory"}',
	'{"level":"warn","msg":"worker died","pid":12,"signal":11}',
	'{"level":"info","msg":"worker died","pid":13,"status":0}',
	'==42==ERROR: AddressSanitizer: heap-use-after-free on address 0x6020',
	'lib/json.c:10:5: runtime error: signed integer overflow',
	'{"level":"info","msg":"a message about Segmentation faults in general"}',
	'{"level":"info","msg":"plain"'), qr/in general/);
is(scalar @bad, 4, 'scan_app_log finds crit, killed worker, ASan, UBSan')
	or diag explain \@bad;
is_deeply([ Miky::Test::scan_nginx_log(join("\n",
	'2024/01/01 00:00:00 [error] 1#1: *1 connect() failed',
	'2024/01/01 00:00:00 [alert] 1#1: worker process 7 exited on signal 11',
	'2024/01/01 00:00:00 [crit] 1#1: *2 connect() to unix:/x failed (2: No such file or directory)'),
	qr/No such file/) ], [ '2024/01/01 00:00:00 [alert] 1#1: worker process 7 exited on signal 11' ],
	'scan_nginx_log finds [alert], honours allow');
is(length $Miky::Test::JWT_SECRET, 48, 'test JWT secret is 48 bytes');

my $t = Miky::Test->new(workers => 2, threads => 4);

like($t->base, qr{^http://127\.0\.0\.1:\d+$}, 'base');
is($t->url('/api/health'), $t->base . '/api/health', 'url');
ok(-d $t->dir, 'temp dir exists');

$t->tm->get_ok('/api/health')->status_is(200)
	->json_is('/status' => 'ok');

$t->tm->get_ok('/')->status_is(200)
	->content_type_like(qr{^text/html})
	->content_like(qr{<title>Miky</title>});

is($t->dbh->selectrow_array('SELECT 1'), 1, 'DBI works');
is($t->dbh->selectrow_array('SELECT current_database()'), $t->dbname, 'on our own database');
ok($t->dbh->selectrow_array(q{SELECT to_regclass('schema_migrations') IS NOT NULL}),
	'the database is migrated');

my ($code, $out) = $t->run_miky('migrate');
is($code, 0, 'migrate again is a no-op') or diag $out;

my $tx = $t->json_req(GET => '/api/health');
is($tx->res->code, 200, 'json_req GET');
$tx = $t->json_req(POST => '/api/no-such-thing', { a => [1, 'x'] }, { 'X-Test' => 'yes' });
is($tx->req->headers->content_type, 'application/json', 'json_req sends JSON');
is($tx->req->body, '{"a":[1,"x"]}', 'json_req body');
is($tx->req->headers->header('X-Test'), 'yes', 'json_req headers');
ok($tx->res->code, 'json_req got an answer');
ok(-d $t->mail_dir, 'dev mailbox dir exists');

ok($t->app_pid, 'app runs');
ok($t->wait_for(sub { $t->worker_pids == 2 }, 10, 'two workers'), 'two workers (MIKY_WORKERS)')
	or diag 'workers: ' . join(' ', $t->worker_pids);

# SIGHUP replaces the workers; the app keeps answering.
my @before = $t->worker_pids;
$t->signal_app('HUP');
ok($t->wait_for(sub {
	my @now = $t->worker_pids;
	@now == 2 && !grep { my $p = $_; grep { $_ == $p } @before } @now
}, 20, 'new workers after SIGHUP'), 'SIGHUP replaces the workers');
$t->tm->get_ok('/api/health')->status_is(200);

# stop and start again, with a changed environment.
my $pid = $t->app_pid;
my $st = $t->stop_app;
is($st, 0, 'SIGTERM: the app exits with status 0');
ok(!$t->app_pid, 'app stopped');
$t->start_app(env => { MIKY_WORKERS => 3 });
isnt($t->app_pid, $pid, 'a new master');
ok($t->wait_for(sub { $t->worker_pids == 3 }, 10, 'three workers'), 'restarted with MIKY_WORKERS=3');
$t->tm->get_ok('/api/health')->status_is(200);

like($t->log, qr/\S/, 'the app logs something');

$t->done;
