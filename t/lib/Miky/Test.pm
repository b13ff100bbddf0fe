package Miky::Test;

# Miky::Test — the HTTP test harness, after nginx-tests' Test::Nginx.
#
# Each test file gets its own database (cloned from the template that
# scripts/test.sh migrated), its own app (`build/miky serve` under
# spawn-fcgi) and its own nginx on a free loopback port, all in a temp dir:
#
#   use Test::More; use lib 't/lib'; use Miky::Test;
#   my $t = Miky::Test->new(env => { MIKY_WORKERS => 2 }, workers => 2, threads => 4);
#   $t->tm->get_ok('/api/health')->status_is(200)->json_is('/status' => 'ok');
#   $t->done;    # instead of done_testing: stops everything, checks the logs
#
# When the test ends, the app and nginx are stopped and their logs checked:
# a sanitizer report, a crash, a "crit" log line, a worker killed by a signal
# or an nginx [alert]/[emerg]/[crit] fails the test.  MIKY_TEST_KEEP=1 keeps
# the temp dir and the database.  See docs/testing.md.

use strict;
use warnings;

use Exporter qw(import);
use Carp qw(croak);
use Cwd qw(abs_path);
use DBI;
use File::Basename qw(basename dirname);
use File::Path qw(remove_tree);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use Mojo::JSON qw(decode_json);
use Mojo::URL;
use Mojo::Promise;
use Mojo::UserAgent;
use Mojo::Util qw(url_escape);
use POSIX qw(WNOHANG);
use Test::Mojo;
use Test::More ();
use Time::HiRes qw(sleep time);

# The repository: this file is t/lib/Miky/Test.pm.
our $ROOT = abs_path(dirname(abs_path(__FILE__)) . '/../../..');

# 48 characters, fixed so that tests can mint their own tokens.
our $JWT_SECRET = 'miky-test-jwt-secret-0123456789-abcdefghijklmnop';

# Settings the app reads: never inherited from the caller's environment
# (a developer's OPENAI_API_KEY must not reach a test), only set by us.
our @APP_VARS = qw(
	DATABASE_URL MIGRATE_DATABASE_URL JWT_SECRET PUBLIC_BASE_URL MIKY_HTTP_PORT MIKY_LISTEN
	MIKY_WORKERS MIKY_THREADS MIKY_DB_POOL MIKY_DB_LANES MIKY_DRAIN_SECONDS MIKY_MAIL_DIR
	OPENAI_API_KEY OPENAI_BASE_URL
	STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET STRIPE_API_BASE
	SMTP_URL MAIL_FROM CORS_ORIGINS
);

my $HEALTH_TIMEOUT = 15;    # seconds for /api/health after a start
my $STOP_TIMEOUT   = 60;    # seconds between SIGTERM and SIGKILL
my $COUNTER        = 0;     # instances made by this process
my @LIVE;                   # every instance, torn down in done() or END
my $BAILED         = 0;     # BAIL_OUT called: report nothing more
our $TEARING_DOWN  = 0;     # a signal now must not cut the teardown short

# --- construction -----------------------------------------------------------

# new(%opt) starts a database, the app and nginx, and waits for health.
# Options: env => {NAME => value or undef}, workers (2), threads (8),
# db_pool (4), own_pg => 1 (a private cluster even under test.sh),
# app => 0 (start nginx but not the app; call start_app yourself),
# bin (the binary; default $MIKY_BIN or build/miky), nginx_template,
# apps => N (N app instances, each with its own socket and log, behind
# one nginx upstream, as N hosts would be; instance 1 is "the app"),
# nginx_edit => sub { my $conf = shift; ...; $conf } (changes the rendered
# config: the bench takes the rate limits out).
# Infrastructure failures BAIL_OUT: nothing else could pass anyway.
sub new {
	my ($class, %opt) = @_;
	my $self = bless {
		opt     => \%opt,
		owner   => $$,
		allow   => [],
		env     => { %{ $opt{env} // {} } },
		workers => $opt{workers} // 2,
		threads => $opt{threads} // 8,
		db_pool => $opt{db_pool} // 4,
		bin     => $opt{bin} // $ENV{MIKY_BIN} // "$ROOT/build/miky",
		serial  => ++$COUNTER,
		napps   => $opt{apps} // 1,
		apps    => {},
	}, $class;
	# A strong reference: teardown happens in done() or END, where a
	# failing log check can still fail the test, not whenever perl
	# happens to destroy $t.
	push @LIVE, $self;
	_catch_signals();

	-x $self->{bin}
		or _bail("$self->{bin} is not built (run make, or set MIKY_BIN)");

	my $parent = $ENV{MIKY_TEST_TMP} // File::Spec->tmpdir;
	$self->{dir} = tempdir('miky-t-XXXXXX', DIR => $parent, CLEANUP => 0);
	# postgres (own cluster) and nobody (nginx workers) must get in.
	chmod 0755, $self->{dir};
	mkdir "$self->{dir}/mail";
	$self->_write_pids;

	$self->_setup_db;
	$self->_start_nginx;
	if ($opt{app} // 1) {
		$self->start_app(instance => $_) for 1 .. $self->{napps};
	}
	return $self;
}

# --- accessors --------------------------------------------------------------

sub dir        { $_[0]{dir} }
sub port       { $_[0]{port} }
sub base       { "http://127.0.0.1:$_[0]{port}" }
# app_pid($k = 1): instance k's master, undef when it is not running.
sub app_pid    { $_[0]->_app_alive($_[1]) ? $_[0]->_inst($_[1])->{pid} : undef }
sub apps       { $_[0]{napps} }
sub dbname     { $_[0]{dbname} }
sub mail_dir   { "$_[0]{dir}/mail" }
sub jwt_secret { $_[0]->_app_env->{JWT_SECRET} }

# url($path) is the absolute URL of $path through this test's nginx.
sub url {
	my ($self, $path) = @_;
	$path //= '/';
	return $path if $path =~ m{^[a-z][a-z0-9+.-]*://}i;
	$path = "/$path" unless $path =~ m{^/};
	return $self->base . $path;
}

# db_url is the libpq URL of this test's database as the app connects to
# it: as the restricted role miky_app (schema/020).  owner_url is the same
# database as the cluster's superuser `miky`, which migrates it and which
# $t->dbh uses.
sub db_url    { $_[0]->_url('miky_app') }
sub owner_url { $_[0]->_url('miky') }

sub _url {
	my ($self, $role) = @_;
	my $safe = '^A-Za-z0-9\-._~/';
	return sprintf 'postgresql:///%s?host=%s&port=%d&user=%s',
		url_escape($self->{dbname}, $safe), url_escape($self->{pghost}, $safe),
		$self->{pgport}, $role;
}

# ua is a Mojo::UserAgent whose relative URLs ('/api/health') go to this
# test's nginx.
sub ua {
	my $self = shift;
	return $self->{ua} //= do {
		my $ua = Mojo::UserAgent->new(max_response_size => 0,
			inactivity_timeout => 30, connect_timeout => 5);
		$ua->server(Miky::Test::Server->new(base => $self->base));
		$ua;
	};
}

# tm is a Test::Mojo over ua: $t->tm->get_ok('/api/health')->status_is(200).
sub tm {
	my $self = shift;
	return $self->{tm} //= Test::Mojo->new->ua($self->ua);
}

# dbh is a DBI handle on this test's database (AutoCommit, RaiseError); it
# reconnects when the server went away (restart_pg).
sub dbh {
	my $self = shift;
	return $self->{dbh} if $self->{dbh} && $self->{dbh}->ping;
	$self->{dbh} = _connect($self->{pghost}, $self->{pgport}, $self->{dbname});
	return $self->{dbh};
}

# lock_table($table): a second DBI handle holding ACCESS EXCLUSIVE on
# $table in an open transaction; $h->rollback releases it.
sub lock_table {
	my ($self, $table) = @_;
	my $h = _connect($self->{pghost}, $self->{pgport}, $self->{dbname});
	$h->begin_work;
	$h->do("LOCK TABLE $table IN ACCESS EXCLUSIVE MODE");
	return $h;
}

# raw_get($path, $user): a socket on which GET $path (with $user's token)
# was sent through nginx, for a test that reads the answer itself, or
# never.
sub raw_get {
	my ($self, $path, $u) = @_;
	my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->port, Proto => 'tcp')
		or Carp::croak("connect: $!");
	print $sock "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
		. "Authorization: Bearer $u->{access_token}\r\n\r\n";
	return $sock;
}

# log is the app's log (its stderr and stdout) so far; nginx_error_log too.
# log($k = 1) is instance k's log.
sub log             { _slurp($_[0]->_app_file($_[1], 'log')) }
sub nginx_error_log { join '', map { _slurp($_) } $_[0]->_nginx_error_logs }

# mails lists the files in the dev mailbox, oldest first.
sub mails {
	my $self = shift;
	opendir my $d, $self->mail_dir or return;
	my @f = map { "$self->{dir}/mail/$_" } grep { !/^\./ } readdir $d;
	return sort { (stat $a)[9] <=> (stat $b)[9] || $a cmp $b } @f;
}

# allow_log(qr/.../, ...): log lines matching any of these are expected
# (a test that kills a worker on purpose, say) and do not fail the test.
sub allow_log {
	my ($self, @re) = @_;
	push @{ $self->{allow} }, @re;
	return $self;
}

# --- assertions ----------------------------------------------------------

our @EXPORT_OK = qw(error_is error_code_is read_until @USER_KEYS $TS $UUID);

# The API's shapes: the user object's keys (sorted), an RFC 3339
# timestamp with milliseconds, a UUID.
our @USER_KEYS = sort qw(id email first_name last_name credits plan role
	language email_verified referral_code referrals_count cash_earned_cents
	cash_paid_out_cents subscription_status created_at updated_at);
our $TS = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
our $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

# error_is($tx, $status, $code, $field, $name): the answer is api.md's
# error shape exactly -- {"error":{"code","message","field"?}} and
# nothing else -- with that status and code; $field undef means the
# error names no field.  A 401 must carry WWW-Authenticate: Bearer.
sub error_is {
	my ($tx, $status, $code, $field, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $res = $tx->res;
	my $j = eval { $res->json };
	my $e = ref $j eq 'HASH' ? $j->{error} : undef;
	my $ok = ($res->code // 0) == $status && ref $e eq 'HASH'
		&& ($e->{code} // '') eq $code
		&& (defined $field ? ($e->{field} // '') eq $field : !exists $e->{field})
		&& length($e->{message} // '') > 0
		&& !grep { !/^(?:code|message|field)$/ } keys %$e;
	$ok &&= ($res->headers->header('WWW-Authenticate') // '') =~ /^Bearer/
		if $status == 401;
	Test::More::ok($ok, $name)
		or Test::More::diag('got ' . ($res->code // 'no answer') . ' ' . $res->body);
}

# error_code_is($tx, $status, $code, $name): status and error code only.
sub error_code_is {
	my ($tx, $status, $code, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	Test::More::is($tx->res->code, $status, "$name: $status")
		and Test::More::is($tx->res->json('/error/code'), $code, "$name: $code")
		or Test::More::diag(substr($tx->res->body // '', 0, 300));
}

# --- HTTP helpers -----------------------------------------------------------

# read_until($sock, qr/.../, $timeout): what was read from a raw socket
# when the pattern showed up (or the time ran out, or the peer closed).
sub read_until {
	my ($s, $re, $timeout) = @_;
	my ($buf, $sel, $deadline) = ('', IO::Select->new($s), time + $timeout);
	while ($buf !~ $re && time < $deadline) {
		next unless $sel->can_read(0.1);
		my $n = sysread $s, $buf, 65536, length $buf;
		last unless $n;
	}
	return $buf;
}

# json_req($method, $path, $body, \%headers) sends one request and returns
# the Mojo transaction.  A reference body is sent as JSON (Content-Type:
# application/json unless given); a plain string is sent as it is.
sub json_req {
	my ($self, $method, $path, $body, $headers) = @_;
	my %h = %{ $headers // {} };
	my $url = $self->url($path);
	my $tx;
	if (ref $body) {
		$h{'Content-Type'} = 'application/json'
			unless grep { lc eq 'content-type' } keys %h;
		$tx = $self->ua->build_tx($method => $url => \%h => json => $body);
	} elsif (defined $body) {
		$tx = $self->ua->build_tx($method => $url => \%h => $body);
	} else {
		$tx = $self->ua->build_tx($method => $url => \%h);
	}
	return $self->ua->start($tx);
}

# parallel([$method, $path, $body, \%headers], ...) sends the requests at
# once (a body as JSON) and returns their transactions, in order.
sub parallel {
	my ($self, @req) = @_;
	my @tx;
	my @p = map {
		my ($i, $r) = ($_, $req[$_]);
		my $tx = $self->ua->build_tx($r->[0] => $self->url($r->[1]) => $r->[3] // {}
			=> (defined $r->[2] ? (json => $r->[2]) : ()));
		$self->ua->start_p($tx)->then(sub { $tx[$i] = shift })
	} 0 .. $#req;
	Mojo::Promise->all(@p)->wait;
	return @tx;
}

# signup(%fields) signs a new account up (POST /api/auth/signup) and
# returns the link token of its verification mail, read from the outbox.
# Fields default to a fresh unique email, a good password and names.
my $user_seq = 0;
sub signup {
	my ($self, %f) = @_;
	$user_seq++;
	my %body = (
		email => "user$$-$user_seq\@example.com",
		password => 'correct horse battery staple',
		first_name => 'Test', last_name => "User$user_seq",
		%f,
	);
	my $tx = $self->json_req(POST => '/api/auth/signup', \%body);
	Carp::croak('signup: ' . $tx->res->code . ' ' . $tx->res->body)
		unless $tx->res->code == 202;
	return ($self->mail_token(lc $body{email}, 'verify'), \%body);
}

# mail_token($email, $template) is the token of the newest queued mail of
# that template to that address (undef if none).
sub mail_token {
	my ($self, $email, $template) = @_;
	my ($token) = $self->dbh->selectrow_array(
		q{SELECT payload->>'token' FROM email_outbox
		  WHERE to_addr = ? AND template = ? ORDER BY id DESC LIMIT 1},
		undef, $email, $template);
	return $token;
}

# user(%fields) makes a verified, signed-in account: a hash with id,
# email, password, access_token, refresh_token and the user object.
sub user {
	my ($self, %f) = @_;
	my ($token, $body) = $self->signup(%f);
	my $tx = $self->json_req(POST => '/api/auth/verify-email',
		{ token => $token, password => $body->{password} });
	Carp::croak('verify: ' . $tx->res->code . ' ' . $tx->res->body)
		unless $tx->res->code == 200;
	my $j = $tx->res->json;
	return { %$body, id => $j->{user}{id}, user => $j->{user},
		access_token => $j->{access_token},
		refresh_token => $j->{refresh_token} };
}

# admin(%fields) is user(%fields) made an administrator with `miky user
# promote`, the way the first one is made.
sub admin {
	my ($self, %f) = @_;
	my $u = $self->user(%f);
	my ($code, $out) = $self->run_miky('user', 'promote', $u->{email});
	Carp::croak("user promote: $out") if $code;
	$u->{user}{role} = 'admin';
	return $u;
}

# auth($user) is the Authorization header of a user from user().
sub auth { return { Authorization => "Bearer $_[1]{access_token}" } }

# metric($name, %labels) is the value of one series of GET /api/metrics
# (the labels in any order), or 0 when there is no such series.
sub metric {
	my ($self, $name, %labels) = @_;
	my $body = $self->json_req(GET => '/api/metrics')->res->body // '';
	for my $line (split /\n/, $body) {
		next unless $line =~ /^\Q$name\E(?:\{(.*)\})? (\S+)$/;
		my ($l, $v) = ($1 // '', $2);
		my %got = $l =~ /(\w+)="([^"]*)"/g;
		next unless keys %got == keys %labels
			&& !grep { ($got{$_} // "\0") ne $labels{$_} } keys %labels;
		return 0 + $v;
	}
	return 0;
}

# request_log: the app's request log lines by request id
# ({rid => {pid, status, ...}}).
sub request_log {
	my $self = shift;
	my %by;
	for my $line (split /\n/, $self->log) {
		next unless $line =~ /"msg":"request"/;
		my $j = eval { decode_json($line) } or next;
		$by{ $j->{request_id} } = $j if $j->{request_id};
	}
	return \%by;
}

# burst($n): $n GET /api/health at once; returns ({status => count}, {pid
# that served one => count}) once every answer's log line is written.
sub burst {
	my ($self, $n) = @_;
	my (%codes, @rids);
	Mojo::Promise->all(map { $self->ua->get_p('/api/health') } 1 .. $n)->then(sub {
		for my $r (@_) {
			$codes{ $r->[0]->res->code // 0 }++;
			push @rids, $r->[0]->res->headers->header('X-Request-Id') // '';
		}
	})->wait;
	my %pids;
	$self->wait_for(sub {
		my $log = $self->request_log;
		%pids = ();
		$pids{ $log->{$_}{pid} }++ for grep { $log->{$_} } @rids;
		!grep { !$log->{$_} } @rids;
	}, 10, 'the log lines of the burst');
	return (\%codes, \%pids);
}

# spread(\@pids, $n): bursts of $n health checks, at least two, until every
# worker in @pids served one or 25 s have passed; returns the bursts'
# summed ({status => count}, {pid => count}).  nginx keeps its FastCGI
# connections for 10 s of use (keepalive_time), so a worker that has none
# gets its share only once nginx opens new ones.
sub spread {
	my ($self, $want, $n) = @_;
	my (%codes, %pids);
	my $until = time + 25;
	for (my $round = 1; $round <= 2 || time < $until; $round++) {
		my ($c, $p) = $self->burst($n);
		$codes{$_} += $c->{$_} for keys %$c;
		$pids{$_} += $p->{$_} for keys %$p;
		last if $round >= 2 && !grep { !$pids{$_} } @$want;
		sleep 0.25;
	}
	return (\%codes, \%pids);
}

# wait_for(sub { ... }, $timeout = 10, $what) polls the sub until it
# returns true and returns that value; on timeout it diags and returns undef.
sub wait_for {
	my ($self, $code, $timeout, $what) = @_;
	$timeout //= 10;
	my $deadline = time + $timeout;
	while (1) {
		my $r = $code->();
		return $r if $r;
		last if time > $deadline;
		sleep 0.05;
	}
	Test::More::diag("timed out after ${timeout}s waiting for " . ($what // 'a condition'));
	return undef;    ## no critic (ProhibitExplicitReturnUndef)
}

# run_miky([\%env,] @args) runs `miky @args` (e.g. 'user', 'promote',
# $email) with the app's environment; returns (exit code, output).
sub run_miky {
	my ($self, @args) = @_;
	my $over = ref $args[0] eq 'HASH' ? shift @args : {};
	# `miky migrate` connects as the owner; nothing else reads this.
	my %env = (%{ $self->_child_env }, MIGRATE_DATABASE_URL => $self->owner_url,
		%{ $self->_app_env($over) });
	my ($status, $out) = _capture(\%env, $self->{bin}, @args);
	return ($status == -1 ? -1 : $status >> 8, $out);
}

# --- the app ----------------------------------------------------------------

# start_app(env => {...}, wait => 1) starts `miky serve` under spawn-fcgi
# with the socket on fd 0.  env is merged over the env given to new (a value
# of undef removes a variable) and is kept for later starts.  With wait (the
# default), it returns once /api/health answers 200 and BAILs after 15 s.
# With wait => 0 it returns at once (to test a start that must fail: see
# wait_app_exit).  Returns the app master's pid.
sub start_app {
	my ($self, %o) = @_;
	my $k = $o{instance} // 1;
	croak "start_app: no instance $k" if $k < 1 || $k > $self->{napps};
	croak 'start_app: the app is already running' if $self->_app_alive($k);
	if ($o{env}) {
		$self->{env}{$_} = $o{env}{$_} for keys %{ $o{env} };
	}
	my $sock = $self->_app_file($k, 'sock');
	my $log  = $self->_app_file($k, 'log');
	my %env  = (%{ $self->_child_env }, %{ $self->_app_env });
	my $in   = $self->{apps}{$k} = { log_mark => -s $log // 0 };
	# A stale socket would pass the wait below before spawn-fcgi replaces
	# it, and nginx logs [crit] for the moment it is missing.
	unlink $sock;

	my $pid = fork // _bail("fork: $!");
	if (!$pid) {
		# Own process group: the whole app (master and workers) can be
		# signalled at once, and a terminal's ^C goes to the harness,
		# which then stops the app in order.
		POSIX::setsid();
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', $log or POSIX::_exit(126);
		open STDERR, '>&', \*STDOUT;
		%ENV = %env;
		{
			no warnings 'exec';
			exec { 'spawn-fcgi' } 'spawn-fcgi', '-n', '-s', $sock, '-M', '0666',
				'--', $self->{bin}, 'serve';
		}
		print STDERR "miky-test: exec spawn-fcgi: $!\n";
		POSIX::_exit(127);
	}
	$in->{pid} = $pid;
	$self->_write_pids;

	# spawn-fcgi binds the socket, sets its mode, listens, and then becomes
	# the app.  Before the mode is set nginx's workers (nobody) would get
	# EACCES, which nginx logs as [crit].
	$self->wait_for(sub {
		!$self->_app_alive($k) || (-S $sock && ((stat _)[2] & 0777) == 0666)
	}, 10, 'the FastCGI socket');

	if ($o{wait} // 1) {
		# Through nginx, an answer may come from another instance:
		# wait for this one's master to have forked its workers too.
		$self->_wait_healthy($k);
		$self->wait_for(sub {
			!$self->_app_alive($k)
				|| substr($self->log($k), $in->{log_mark}) =~ /"msg":"serving with/
		}, $HEALTH_TIMEOUT, "instance $k serving") if $k > 1;
	}
	return $pid;
}

# stop_app($timeout = 60, $k = 1) sends SIGTERM (drain) and waits for the
# master of instance k to exit, then SIGKILLs its process group.  Returns
# the wait status ($?-style) of the master, or undef if it was not running.
sub stop_app {
	my ($self, $timeout, $k) = @_;
	$timeout //= $STOP_TIMEOUT;
	my $in = $self->_inst($k);
	my $pid = $in->{pid} or return undef;    ## no critic
	if ($self->_app_alive($k)) {
		kill 'TERM', $pid;
		$self->_reap_app($timeout, $k);
		if ($self->_app_alive($k)) {
			Test::More::diag("the app (pid $pid) did not exit ${timeout}s after SIGTERM; SIGKILL");
			push @{ $self->{problems} }, "the app did not exit ${timeout}s after SIGTERM";
			kill 'KILL', -$pid;
			$self->_reap_app(10, $k);
		}
	}
	# Workers must not outlive their master.
	my @left;
	for (1 .. 50) {
		@left = _group_members($pid) or last;
		sleep 0.1;
	}
	if (@left) {
		push @{ $self->{problems} }, "processes left after the app master exited: @left";
		kill 'KILL', @left;
	}
	$self->_write_pids;
	return $in->{status};
}

# kill_app($k = 1, $sig = 'KILL') sends a signal to the whole process
# group of instance k (master and workers at once, as a host that dies)
# and, for KILL, reaps the master.  Returns the master's pid.
sub kill_app {
	my ($self, $k, $sig) = @_;
	$sig //= 'KILL';
	my $pid = $self->app_pid($k) or croak "kill_app: instance @{[ $k // 1 ]} is not running";
	kill $sig, -$pid;
	if ($sig eq 'KILL') {
		$self->_reap_app(10, $k);
		$self->wait_for(sub { !_group_members($pid) }, 10, 'the killed group');
		$self->_write_pids;
	}
	return $pid;
}

# wait_app_exit($timeout = 15) waits for the app to exit by itself and
# returns its wait status, or undef if it still runs.
sub wait_app_exit {
	my ($self, $timeout) = @_;
	$self->_reap_app($timeout // $HEALTH_TIMEOUT);
	return $self->_app_alive ? undef : $self->_inst->{status};    ## no critic
}

# signal_app($sig) signals the app master ('HUP', 'TERM', ...).
sub signal_app {
	my ($self, $sig) = @_;
	my $pid = $self->app_pid or croak 'signal_app: the app is not running';
	return kill $sig, $pid;
}

# worker_pids($k = 1) lists the live children of the app master (their
# number in scalar context).
sub worker_pids {
	my ($self, $k) = @_;
	my $master = $self->app_pid($k) or return;
	my @kids;
	for my $st (_proc_stats()) {
		push @kids, $st->{pid} if $st->{ppid} == $master && $st->{state} ne 'Z';
	}
	@kids = sort { $a <=> $b } @kids;
	return wantarray ? @kids : scalar @kids;
}

# --- PostgreSQL (own_pg => 1 only) ------------------------------------------

sub stop_pg {
	my $self = shift;
	$self->_need_own_pg('stop_pg');
	$self->_pg('stop');
	return $self;
}

sub start_pg {
	my $self = shift;
	$self->_need_own_pg('start_pg');
	$self->_pg('start');
	return $self;
}

sub restart_pg {
	my $self = shift;
	$self->_need_own_pg('restart_pg');
	$self->_pg('stop');
	$self->_pg('start');
	return $self;
}

# --- the end ----------------------------------------------------------------

# done(@args) ends the test file: it stops nginx and the app of every live
# harness instance, checks their logs (a failing test per bad log), drops
# the databases, and then calls done_testing(@args).
sub done {
	my ($self, @args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	for my $t (grep { defined } @LIVE) {
		$t->_teardown(1);
	}
	Test::More::done_testing(@args);
}

sub DESTROY {
	my $self = shift;
	return if $self->{torn_down};
	local ($@, $!, $?);
	$self->_teardown(${^GLOBAL_PHASE} ne 'DESTRUCT' && _can_add_tests());
}

# At exit, tear down what is left.  Problems found when no test can be
# added any more (the file called plain done_testing) still fail the file,
# through its exit code.
END {
	my $unreported = 0;
	{
		local $?;
		for my $t (grep { defined } @LIVE) {
			$unreported += $t->_teardown(_can_add_tests()) // 0;
		}
	}
	$? = 1 if $unreported && !$?;
}

# scan_app_log($text, @allow) returns the lines that fail a test: sanitizer
# reports, crashes, JSON lines at level crit (or worse), and "worker died"
# lines with a signal.  Lines matching a regexp in @allow are skipped.
sub scan_app_log {
	my ($text, @allow) = @_;
	my @bad;
	LINE: for my $line (split /\r?\n/, $text // '') {
		for my $re (@allow) { next LINE if $line =~ $re }
		if ($line =~ /AddressSanitizer|LeakSanitizer|ThreadSanitizer|MemorySanitizer|runtime error:|Segmentation fault|stack smashing detected|double free or corruption|malloc\(\): /) {
			push @bad, $line;
			next;
		}
		next unless $line =~ /^\s*\{/;
		my $j = eval { decode_json($line) };
		if (ref $j eq 'HASH') {
			my $level = lc($j->{level} // '');
			if ($level eq 'crit' || $level eq 'alert' || $level eq 'emerg') {
				push @bad, $line;
			} elsif (($j->{msg} // '') eq 'worker died' && $j->{signal}) {
				push @bad, $line;
			}
		} elsif ($line =~ /"level"\s*:\s*"(?:crit|alert|emerg)"/
			|| $line =~ /"msg"\s*:\s*"worker died".*"signal"\s*:\s*"?[1-9]/
			|| $line =~ /"signal"\s*:\s*"?[1-9].*"msg"\s*:\s*"worker died"/)
		{
			push @bad, $line;
		}
	}
	return @bad;
}

# scan_nginx_log($text, @allow) returns nginx's [alert], [emerg] and [crit]
# lines not matching @allow.
sub scan_nginx_log {
	my ($text, @allow) = @_;
	my @bad;
	LINE: for my $line (split /\r?\n/, $text // '') {
		for my $re (@allow) { next LINE if $line =~ $re }
		push @bad, $line if $line =~ /\[(?:alert|emerg|crit)\]/;
	}
	return @bad;
}

# --- internals --------------------------------------------------------------

sub _bail {
	my ($why, @diag) = @_;
	Test::More::diag($_) for @diag;
	$BAILED = 1;
	Test::More::BAIL_OUT($why);
}

# A ^C or kill of the test must still stop what it started: turn the
# signals into exit, so that END runs.
sub _catch_signals {
	for my $sig (qw(INT TERM HUP)) {
		next if defined $SIG{$sig} && $SIG{$sig} ne 'DEFAULT' && $SIG{$sig} ne '';
		$SIG{$sig} = sub {
			# Already ending: exit inside END would skip the teardown.
			return if $TEARING_DOWN || ${^GLOBAL_PHASE} ne 'RUN';
			Test::More::diag("caught SIG$sig, cleaning up");
			exit 1;
		};
	}
}

# Tests may still be added while no plan exists (done_testing not called).
sub _can_add_tests {
	return 0 if $BAILED;
	my $tb = Test::More->builder;
	return !defined $tb->has_plan;
}

sub _slurp {
	my $file = shift;
	open my $fh, '<:raw', $file or return '';
	local $/;
	my $s = <$fh>;
	return $s // '';
}

sub _free_port {
	my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
		LocalPort => 0, Proto => 'tcp', ReuseAddr => 1)
		or _bail("no free port: $!");
	return $s->sockport;
}

sub _connect {
	my ($host, $port, $db) = @_;
	return DBI->connect("dbi:Pg:dbname=$db;host=$host;port=$port", 'miky', '',
		{ AutoCommit => 1, RaiseError => 1, PrintError => 0 });
}

# _capture(\%env, @cmd) runs @cmd with exactly %env and returns
# ($?, stdout and stderr together).  Nothing reaches the TAP stream.
sub _capture {
	my ($env, @cmd) = @_;
	my $pid = open(my $fh, '-|') // _bail("fork: $!");
	if (!$pid) {
		open STDERR, '>&', \*STDOUT;
		open STDIN, '<', '/dev/null';
		%ENV = %$env;
		{ no warnings 'exec'; exec { $cmd[0] } @cmd; }
		print "exec $cmd[0]: $!\n";
		POSIX::_exit(127);
	}
	local $/;
	my $out = <$fh> // '';
	close $fh;
	return ($?, $out);
}

# _child_env is our environment without anything the app would read.
sub _child_env {
	my %env = %ENV;
	delete @env{@APP_VARS};
	delete $env{$_} for grep { /^(?:MIKY_|PG)/ } keys %env;
	return \%env;
}

# _app_env(\%extra) is what the app gets on top of _child_env.
sub _app_env {
	my ($self, $extra) = @_;
	my %env = (
		DATABASE_URL    => $self->db_url,
		JWT_SECRET      => $JWT_SECRET,
		PUBLIC_BASE_URL => $self->base,
		MIKY_WORKERS    => $self->{workers},
		MIKY_THREADS    => $self->{threads},
		MIKY_DB_POOL    => $self->{db_pool},
		MIKY_MAIL_DIR   => $self->mail_dir,
		# Every test request comes from 127.0.0.1: the per-address
		# sign-in limit is tested on its own (t/20-stuffing.t).
		MIKY_ADDRESS_FAILS => 100000,
	);
	for my $over ($self->{env}, $extra // {}) {
		for my $k (keys %$over) {
			if (defined $over->{$k}) { $env{$k} = $over->{$k} }
			else                     { delete $env{$k} }
		}
	}
	return \%env;
}

sub _db_name {
	my $self = shift;
	(my $base = lc basename($0)) =~ s/\.t$//;
	$base =~ s/[^a-z0-9]+/_/g;
	$base = substr($base, 0, 30);
	return "t_${base}_$$" . ($self->{serial} > 1 ? "_$self->{serial}" : '');
}

sub _pg {
	my ($self, @args) = @_;
	my %env = (%ENV, MIKY_PG_FAST => 1);
	my ($st, $out) = _capture(\%env, "$ROOT/scripts/pg.sh", $args[0], $self->{pghost}, @args[1 .. $#args]);
	_bail("scripts/pg.sh @args failed", $out) if $st;
	return $out;
}

sub _need_own_pg {
	my ($self, $what) = @_;
	croak "$what needs Miky::Test->new(own_pg => 1)" unless $self->{own_pg};
}

# _setup_db clones the template in the shared cluster of scripts/test.sh,
# or makes a private cluster (own_pg, or a test run by hand with prove).
sub _setup_db {
	my $self = shift;
	$self->{dbname} = $self->_db_name;
	if (!$self->{opt}{own_pg} && $ENV{MIKY_TEST_PGHOST}) {
		$self->{pghost} = $ENV{MIKY_TEST_PGHOST};
		$self->{pgport} = $ENV{MIKY_TEST_PGPORT} // _bail('MIKY_TEST_PGHOST without MIKY_TEST_PGPORT');
		my $template = $ENV{MIKY_TEST_TEMPLATE} // 'miky_template';
		my $admin = eval { _connect($self->{pghost}, $self->{pgport}, 'postgres') }
			or _bail("cannot reach the test cluster in $self->{pghost}: $@");
		for my $try (1 .. 50) {
			last if eval { $admin->do(qq{CREATE DATABASE "$self->{dbname}" TEMPLATE "$template"}); 1 };
			# Another session on the template (a concurrent clone): retry.
			_bail("CREATE DATABASE $self->{dbname}: $@")
				if $try == 50 || $@ !~ /being accessed by other users/;
			sleep 0.1;
		}
		$admin->disconnect;
		$self->{made_db} = 1;
		return;
	}
	$self->{own_pg} = 1;
	$self->{pghost} = "$self->{dir}/pg";
	$self->{pgport} = _free_port();
	$self->_pg('init', $self->{pgport});
	$self->_pg('start');
	$self->_pg('createdb', $self->{dbname});
	my %env = (%{ $self->_child_env }, DATABASE_URL => $self->owner_url);
	my ($st, $out) = _capture(\%env, $self->{bin}, 'migrate');
	_bail("$self->{bin} migrate failed", $out) if $st;
}

sub _drop_db {
	my $self = shift;
	return unless $self->{made_db};
	my $admin = eval { _connect($self->{pghost}, $self->{pgport}, 'postgres') } or return;
	eval { $admin->do(qq{DROP DATABASE IF EXISTS "$self->{dbname}" WITH (FORCE)}) }
		or Test::More::diag("dropping $self->{dbname}: $@");
	$admin->disconnect;
}

# _inst($k = 1) is the state of app instance k: pid, status, log_mark.
sub _inst { $_[0]{apps}{ $_[1] // 1 } //= {} }

# _app_file($k, 'sock' or 'log'): miky.sock and miky.log for instance 1,
# miky-K.sock and miky-K.log for the others.
sub _app_file {
	my ($self, $k, $ext) = @_;
	$k //= 1;
	return "$self->{dir}/miky" . ($k > 1 ? "-$k" : '') . ".$ext";
}

# _app_alive($k = 1) reaps the master if it exited (keeping its status).
sub _app_alive {
	my ($self, $k) = @_;
	my $in = $self->_inst($k);
	my $pid = $in->{pid} or return 0;
	return 0 if defined $in->{status};
	my $r = waitpid($pid, WNOHANG);
	return 1 if $r == 0;
	$in->{status} = $r == $pid ? $? : -1;
	return 0;
}

sub _reap_app {
	my ($self, $timeout, $k) = @_;
	my $deadline = time + $timeout;
	while ($self->_app_alive($k) && time < $deadline) {
		sleep 0.05;
	}
}

sub _wait_healthy {
	my ($self, $k) = @_;
	my $ua = Mojo::UserAgent->new(request_timeout => 3, connect_timeout => 2);
	my $url = $self->url('/api/health');
	my $deadline = time + $HEALTH_TIMEOUT;
	my $last = 'no answer';
	while (time < $deadline) {
		if (!$self->_app_alive($k)) {
			_bail("the app exited at startup (wait status " . $self->_inst($k)->{status} . ")",
				"--- app log since start:", $self->_log_news($k));
		}
		my $tx = $ua->get($url);
		my $code = $tx->res->code // 0;
		return 1 if $code == 200;
		$last = $code ? "HTTP $code" : ($tx->error // {})->{message} // 'no answer';
		sleep 0.1;
	}
	_bail("$url did not answer 200 within ${HEALTH_TIMEOUT}s (last: $last)",
		"--- app log since start:", $self->_log_news($k),
		"--- nginx error log:", $self->nginx_error_log);
}

sub _log_news {
	my ($self, $k) = @_;
	my $log = $self->log($k);
	my $news = substr($log, $self->_inst($k)->{log_mark} // 0);
	my @l = split /\n/, $news;
	@l = @l[-40 .. -1] if @l > 40;
	return join "\n", @l;
}

# _proc_stats: pid, ppid, pgrp and state of every process.
sub _proc_stats {
	my @st;
	opendir my $d, '/proc' or return;
	for my $pid (grep { /^\d+$/ } readdir $d) {
		open my $fh, '<', "/proc/$pid/stat" or next;
		my $line = <$fh> // next;
		$line =~ /\)\s+(\S)\s+(\d+)\s+(\d+)/ or next;
		push @st, { pid => $pid, state => $1, ppid => $2, pgrp => $3 };
	}
	return @st;
}

# _group_members($pgid) lists the live (non-zombie) processes of a group.
sub _group_members {
	my $pgid = shift;
	return map { $_->{pid} } grep { $_->{pgrp} == $pgid && $_->{state} ne 'Z' } _proc_stats();
}

sub _pid_alive {
	my $pid = shift;
	open my $fh, '<', "/proc/$pid/stat" or return 0;
	my $line = <$fh> // return 0;
	return $line =~ /\)\s+(\S)/ && $1 ne 'Z';
}

# _write_pids records this test process and the process groups it started
# (the app's, nginx's), for scripts/test.sh to sweep if the test could not
# clean up (prove gave up on it after a BAIL_OUT elsewhere, say).
sub _write_pids {
	my $self = shift;
	open my $fh, '>', "$self->{dir}/pids.tmp" or return;
	print $fh "test $self->{owner}\n";
	for my $k (sort keys %{ $self->{apps} }) {
		print $fh "app $self->{apps}{$k}{pid}\n" if $self->_app_alive($k);
	}
	print $fh "nginx $self->{nginx_pid}\n" if $self->{nginx_pid};
	close $fh;
	rename "$self->{dir}/pids.tmp", "$self->{dir}/pids";
}

# --- nginx ------------------------------------------------------------------

sub _template {
	my $self = shift;
	return $self->{opt}{nginx_template} // $ENV{MIKY_NGINX_TEMPLATE} // "$ROOT/nginx/dev.conf.in";
}

# _webroot is the repository's web/, or, when nginx's workers (nobody, as
# we are root) cannot read it — a checkout under a 0700 directory, as CI
# may make —, a copy of it in the test's dir.
sub _webroot {
	my $self = shift;
	return $self->{webroot} //= do {
		my $web = "$ROOT/web";
		my $ok = 1;
		if ($> == 0 && -d $web) {
			my ($st) = _capture({ %ENV }, 'runuser', '-u', 'nobody', '--', 'test', '-r', $web, '-a', '-x', $web);
			$ok = !$st;
		}
		if (!$ok) {
			my ($st, $out) = _capture({ %ENV }, 'cp', '-R', $web, "$self->{dir}/web");
			_bail("copying $web: $out") if $st;
			system('chmod', '-R', 'a+rX', "$self->{dir}/web");
			$web = "$self->{dir}/web";
		}
		$web;
	};
}

sub _render_nginx {
	my $self = shift;
	my $tpl = $self->_template;
	-f $tpl or _bail("no nginx template $tpl");
	my %v = (
		PREFIX    => $self->{dir},
		PORT      => $self->{port},
		SOCKET    => $self->_app_file(1, 'sock'),
		# The other instances beside the first in the upstream, with
		# passive health checks: a server that fails is left alone for
		# two seconds (a lone server never is).
		MORE_SERVERS => join("\n        ", map {
			'server unix:' . $self->_app_file($_, 'sock') . ' max_fails=1 fail_timeout=2s;'
		} 2 .. $self->{napps}),
		WEBROOT   => $self->_webroot,
		NGINXDIR  => "$ROOT/nginx",
		USER_LINE => $> == 0 ? 'user nobody nogroup;' : '',
	);
	my $conf = _slurp($tpl);
	$conf =~ s/\@(PREFIX|PORT|SOCKET|WEBROOT|NGINXDIR|USER_LINE|MORE_SERVERS)\@/$v{$1}/g;
	if (my @left = $conf =~ /(\@[A-Z_]+\@)/g) {
		Test::More::diag("unknown placeholders in $tpl: @left");
	}
	$conf = $self->{opt}{nginx_edit}->($conf) if $self->{opt}{nginx_edit};
	open my $fh, '>', "$self->{dir}/nginx.conf" or _bail("write nginx.conf: $!");
	print $fh $conf;
	close $fh;
	return $conf;
}

# _conf_paths($conf, $directive) lists the file arguments of a directive in
# the rendered config, made absolute against the prefix.
sub _conf_paths {
	my ($self, $conf, $directive) = @_;
	my @p;
	while ($conf =~ /^\s*\Q$directive\E\s+([^;\s]+)/mg) {
		my $p = $1;
		next if $p =~ /^(?:stderr|syslog:|memory:|off$)/;
		$p = "$self->{dir}/$p" unless $p =~ m{^/};
		push @p, $p;
	}
	return @p;
}

sub _nginx_error_logs {
	my $self = shift;
	my %seen;
	return grep { !$seen{$_}++ } "$self->{dir}/error.log",
		$self->_conf_paths($self->{nginx_conf} // '', 'error_log');
}

sub _start_nginx {
	my $self = shift;
	my $nginx = -x '/usr/sbin/nginx' ? '/usr/sbin/nginx' : 'nginx';
	if ($> == 0) {
		my ($st) = _capture({ %ENV }, 'runuser', '-u', 'nobody', '--', 'test', '-x', $self->{dir});
		_bail("user nobody (nginx workers) cannot enter $self->{dir}: make its parents world-searchable")
			if $st;
	}
	for my $try (1 .. 5) {
		$self->{port} = _free_port();
		my $conf = $self->{nginx_conf} = $self->_render_nginx;
		my ($pidfile) = $self->_conf_paths($conf, 'pid');
		my @g;
		if (!$pidfile) {
			$pidfile = "$self->{dir}/nginx.pid";
			@g = ('-g', "pid $pidfile;");
		}
		unlink $pidfile;
		my ($st, $out) = _capture({ %ENV }, $nginx, '-p', "$self->{dir}/",
			'-c', "$self->{dir}/nginx.conf", '-e', "$self->{dir}/error.log", @g);
		if ($st) {
			next if $out =~ /Address already in use/ && $try < 5;
			_bail('nginx did not start', $out);
		}
		# The daemon writes its pid just after the parent returns.
		my $pid = $self->wait_for(sub { my $p = _slurp($pidfile); $p =~ /(\d+)/ ? $1 : 0 },
			10, 'the nginx pid file') or _bail("nginx wrote no pid file $pidfile");
		$self->{nginx_pid} = $pid;
		$self->_write_pids;
		return;
	}
}

sub _stop_nginx {
	my $self = shift;
	my $pid = delete $self->{nginx_pid} or return;
	# Graceful: in-flight requests finish.  Then fast, then kill.
	for my $step (['QUIT', 10], ['TERM', 5], ['KILL', 5]) {
		last unless _pid_alive($pid);
		kill $step->[0], $step->[0] eq 'KILL' ? -$pid : $pid;
		my $deadline = time + $step->[1];
		sleep 0.05 while _pid_alive($pid) && time < $deadline;
	}
	$self->_write_pids;
}

# _teardown($report) runs once, in the process that made the instance:
# stop nginx and the app, check the logs (as tests when $report, else as
# diag), drop the database, remove the dir unless MIKY_TEST_KEEP=1.
# Returns how many problems were found but could not be reported as tests.
sub _teardown {
	my ($self, $report) = @_;
	return 0 if $self->{torn_down} || $$ != $self->{owner};
	$self->{torn_down} = 1;
	local $TEARING_DOWN = 1;
	# prove may be gone (^C): TAP output then fails, which must not kill us
	# before the app is stopped.
	local $SIG{PIPE} = 'IGNORE';
	local $Test::Builder::Level = $Test::Builder::Level + 2;

	if (my $dbh = delete $self->{dbh}) {
		eval { $dbh->disconnect };
	}
	delete $self->{tm};
	delete $self->{ua};
	$self->_stop_nginx;
	$self->stop_app(undef, $_) for 1 .. $self->{napps};

	my @allow = @{ $self->{allow} };
	my @app   = map { scan_app_log($self->log($_), @allow) } 1 .. $self->{napps};
	my @ngx   = scan_nginx_log($self->nginx_error_log, @allow);
	my @other = @{ $self->{problems} // [] };
	my $name  = $self->{serial} > 1 ? " (harness #$self->{serial})" : '';
	my @checks = (
		[ "app log has no crash, sanitizer report or crit line$name", \@app,
			join(', ', map { $self->_app_file($_, 'log') } 1 .. $self->{napps}) ],
		[ "nginx error log has no alert, emerg or crit$name", \@ngx, "$self->{dir}/error.log" ],
		[ "app stopped cleanly$name", \@other, '' ],
	);
	my $unreported = 0;
	for my $c (@checks) {
		my ($what, $lines, $file) = @$c;
		my @show = @$lines > 20 ? (@$lines[0 .. 19], '...') : @$lines;
		if ($report) {
			Test::More::ok(!@$lines, $what)
				or Test::More::diag(join "\n", ($file ? "in $file:" : ()), @show);
		} elsif (@$lines && !$BAILED) {
			Test::More::diag(join "\n", "NOT OK: $what (found after the plan; use \$t->done)",
				($file ? "in $file:" : ()), @show);
			$unreported++;
		}
	}

	if (($ENV{MIKY_TEST_KEEP} // '') eq '1') {
		Test::More::diag("MIKY_TEST_KEEP=1: kept $self->{dir} and database "
			. $self->owner_url . ($self->{own_pg} ? ' (cluster stopped: scripts/pg.sh start ' . $self->{pghost} . ')' : ''));
		$self->_pg('stop') if $self->{own_pg};
		return $unreported;
	}
	$self->_drop_db;
	$self->_pg('stop') if $self->{own_pg};
	remove_tree($self->{dir});
	return $unreported;
}

# A Mojo::UserAgent::Server that serves no app of its own: relative URLs
# resolve against the harness's nginx.
package Miky::Test::Server;
use Mojo::Base 'Mojo::UserAgent::Server';

has 'base';

sub url     { Mojo::URL->new($_[0]->base . '/') }
sub nb_url  { Mojo::URL->new($_[0]->base . '/') }
sub restart { $_[0] }

1;
