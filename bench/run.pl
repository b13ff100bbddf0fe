#!/usr/bin/perl
# bench/run.pl — `make bench`: throughput over loopback, on real-shaped data.
#
# The stack comes up the way the tests bring it up (t/lib/Miky/Test.pm: a
# throwaway PostgreSQL cluster, `miky serve` under spawn-fcgi, nginx from
# nginx/dev.conf.in), with nginx's per-IP limits taken out (wrk sends
# everything from 127.0.0.1).  It is seeded like the peer benchmark
# (bench/seed.sql: BENCH_USERS users with BENCH_CONVS conversations of
# BENCH_MSGS messages each), and every request is for another user.  Two
# baselines are measured in the same run, and every figure is given as a
# ratio to them, because the machine is shared and noisy:
#
#   static   web/index.html from the same nginx (no FastCGI)
#   hello    nginx -> FastCGI -> a program that does nothing
#            (bench/fcgi_hello.c, libfcgi, one process a core, one
#            connection per request): the reference baseline, as
#            ../shared/bench's ceiling probe (c) measures it
#   fcgi     an unknown path under /api/: nginx -> FastCGI -> the app's
#            404, the app doing nothing over kept connections (the
#            ceiling of every endpoint; stricter than hello)
#
# Then: health (one pooled SELECT 1), profile (JWT + user row), list (a
# page of 20 conversations), get (a conversation of 20 messages, ~7 KiB),
# signin (one argon2id verification; also as a share of the machine's
# argon2 ceiling: cores / the time of one hash), webhook (signed Stripe
# invoice.paid deliveries, a third of them duplicates, then the books
# checked exact), flood (the profile beside 300 wrong-password sign-ins
# at once, against the profile idle).  `streams` (not in the default set) is the streaming
# capacity run (bench/streams.pl).
#
# Each target: a warm-up, then the measured run; between runs the app is
# let settle (nothing in flight).  The CPU columns are the share of one
# core that nginx, the app and PostgreSQL used during the measured run.
# The table goes to stdout and to bench/results/<UTC time>.txt.
#
# Environment:
#   BENCH_SECONDS (10) BENCH_WARMUP (2) BENCH_CONNECTIONS (64) BENCH_THREADS (2)
#   BENCH_TARGETS ("static hello fcgi health profile list get signin webhook flood")
#   BENCH_ROUNDS (1)  the quick targets (static to signin) that many times in
#                     turn; the report adds each one's median and range, and
#                     its ratios to the baselines (hello, fcgi) of the same
#                     round
#   BENCH_FLOOD_CONNECTIONS (300)   see bench_flood
#   BENCH_SIGNIN_CONNECTIONS (16)   see bench_signin
#   WEBHOOK_USERS (200) WEBHOOK_TRIPLES (20000)
#   BENCH_USERS (1000) BENCH_CONVS (20) BENCH_MSGS (20)
#   BENCH_KEEP=1      keep the stack's directory (logs) and info where
#   MIKY_*            passed to the app (MIKY_WORKERS, MIKY_THREADS, ...)
use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/../t/lib";

use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64);
use Mojo::JSON qw(encode_json);
use POSIX qw(strftime);
use POSIX ();
use Test::More ();
use Time::HiRes qw(sleep time);
use Miky::Test;

my $ROOT = "$Bin/..";
my %O = (
	seconds => $ENV{BENCH_SECONDS} // 10,
	warmup  => $ENV{BENCH_WARMUP} // 2,
	conns   => $ENV{BENCH_CONNECTIONS} // 64,
	threads => $ENV{BENCH_THREADS} // 2,
	users   => $ENV{BENCH_USERS} // 1000,
	convs   => $ENV{BENCH_CONVS} // 20,
	msgs    => $ENV{BENCH_MSGS} // 20,
);
my @TARGETS = split ' ', ($ENV{BENCH_TARGETS} // 'static hello fcgi health profile list get signin webhook flood');
my $PASSWORD = 'bench-password-1';
my $CORES = `nproc` + 0 || 1;
my $ROUNDS = $ENV{BENCH_ROUNDS} // 1;

sub info { print STDERR "bench: @_\n" }
sub die_ { info(@_); exit 1 }

for my $target (@TARGETS) {
	main->can("bench_$target") or die_("no target '$target'");
}
for my $cmd (qw(wrk spawn-fcgi psql cc pkg-config)) {
	system("command -v $cmd >/dev/null 2>&1") == 0 or die_("$cmd not found (run scripts/deps.sh)");
}

# The harness reports its log checks as tests; they go to stderr here.
my $tb = Test::More->builder;
$tb->output(\*STDERR);
$tb->failure_output(\*STDERR);
$ENV{MIKY_TEST_KEEP} = 1 if $ENV{BENCH_KEEP};
# The whole data set in PostgreSQL's own cache, as the peer bench's
# cluster has it (1GB), not the tests' 32MB.
$ENV{MIKY_PG_SHARED_BUFFERS} //= '1GB';

# Descriptors a process may have: nginx's workers take all of them (a
# root without CAP_SYS_RESOURCE cannot raise the hard limit).
my $NOFILE = `sh -c 'ulimit -Hn'` =~ /^(\d+)/ ? ($1 > 70000 ? 70000 : $1) : 8192;
# The hello target's FastCGI socket (nginx's configuration is written
# before the stack's directory is known).
my $HELLO_SOCK = "/tmp/miky-bench-hello-$$.sock";
my @HELLO_PIDS;
# The webhook target signs its events with this.
my $WEBHOOK_SECRET = 'whsec_bench_' . join '', map { ('a' .. 'z', 0 .. 9)[rand 36] } 1 .. 32;
# wrk sends everything from one address: no per-address sign-in limit.
my %app_env = (MIKY_STANDIN_DELAY_MS => 0, STRIPE_WEBHOOK_SECRET => $WEBHOOK_SECRET,
	MIKY_ADDRESS_FAILS => 1000000,
	map { $_ => $ENV{$_} } grep { /^MIKY_/ && !/^MIKY_TEST_/ } keys %ENV);
info "starting PostgreSQL, the app and nginx";
my $t = Miky::Test->new(
	workers => $ENV{MIKY_WORKERS} // $CORES,
	threads => $ENV{MIKY_THREADS} // 64,
	db_pool => $ENV{MIKY_DB_POOL} // 8,
	env     => \%app_env,
	# wrk sends everything from one address: no per-IP limits (the
	# all-clients limit on the hashing routes stays).  Room for tens of
	# thousands of connections (the streams target).
	nginx_edit => sub {
		my $c = shift;
		$c =~ s/^\s*limit_(?:req|conn)\s(?![^\n]*zone=miky_hash)[^\n]*\n//mg;
		$c =~ s/worker_connections\s+\d+/worker_connections @{[$NOFILE - 200]}/;
		$c =~ s/worker_rlimit_nofile\s+\d+/worker_rlimit_nofile $NOFILE/;
		# The hello target: FastCGI with nginx's defaults (a connection
		# per request), as ../shared/bench/ceiling/nginx.conf.in has it.
		$c =~ s{^(\s*)(# --- the API ---)}{$1location = /bench-hello {
$1    include /etc/nginx/fastcgi_params;
$1    fastcgi_pass unix:$HELLO_SOCK;
$1}
$1$2}m or die_('no API section in the nginx template');
		$c
	},
);
my $DIR = $t->dir;

# --- data ---------------------------------------------------------------------

# One real sign-up gives the argon2id hash every seeded user shares.
sub seed {
	my $u = $t->user(email => 'template@bench.test', password => $PASSWORD);
	my ($hash) = $t->dbh->selectrow_array('SELECT password_hash FROM users WHERE id = ?', undef, $u->{id});
	info "seeding $O{users} users x $O{convs} conversations x $O{msgs} messages";
	my $t0 = time;
	system('psql', '-X', '-q', $t->owner_url, '-v', "users=$O{users}", '-v', "convs=$O{convs}",
		'-v', "msgs=$O{msgs}", '-v', "pwhash=$hash", '-f', "$Bin/seed.sql") == 0
		or die_('seeding failed');
	info sprintf 'seeded in %.1f s', time - $t0;
}

sub b64url { (my $s = encode_base64(shift, '')) =~ tr{+/}{-_}; $s =~ s/=+$//; $s }

# An access token as the app issues it (HS256 with the harness's secret).
sub token {
	my $sub = shift;
	my $h = b64url(encode_json({ alg => 'HS256', typ => 'JWT' }));
	my $p = b64url(encode_json({ iss => 'miky', sub => $sub, iat => int(time), exp => int(time) + 3600 }));
	return "$h.$p." . b64url(hmac_sha256("$h.$p", $Miky::Test::JWT_SECRET));
}

sub write_lines {
	my ($name, @lines) = @_;
	open my $fh, '>', "$DIR/$name" or die_("$DIR/$name: $!");
	print $fh map { "$_\n" } @lines;
	close $fh;
	return "$DIR/$name";
}

my (%FILE, %USER_TOKEN);
sub data_files {
	my $users = $t->dbh->selectall_arrayref(
		q{SELECT id, email FROM users WHERE email LIKE 'user%@bench.test'
		  ORDER BY substr(md5(email), 1, 8)});
	$USER_TOKEN{ $_->[0] } = token($_->[0]) for @$users;
	$FILE{tokens} = write_lines('tokens.txt', map { $USER_TOKEN{ $_->[0] } } @$users);
	$FILE{signin} = write_lines('signin.txt', map { "$_->[1] $PASSWORD" } @$users);
	# The five newest conversations of each user, in an order that
	# changes user at every line.
	my $convs = $t->dbh->selectall_arrayref(q{
		SELECT user_id, id FROM (
		  SELECT user_id, id, row_number() OVER (PARTITION BY user_id ORDER BY updated_at DESC) AS k
		  FROM conversations) c
		WHERE k <= 5 ORDER BY k, substr(md5(user_id::text), 1, 8)});
	$FILE{get} = write_lines('get.txt', map { "$USER_TOKEN{ $_->[0] } $_->[1]" } @$convs);
}

# --- measuring ----------------------------------------------------------------

# CPU ticks (user + system) of a process and its children.
sub family { my $pid = shift; ($pid, split ' ', `pgrep -P $pid 2>/dev/null` // '') }
sub ticks {
	my $sum = 0;
	for my $pid (@_) {
		open my $fh, '<', "/proc/$pid/stat" or next;
		my @f = split ' ', (<$fh> // '') =~ s/^.*\) //r;
		$sum += $f[11] + $f[12];
	}
	return $sum;
}
my $HZ = `getconf CLK_TCK` + 0 || 100;
sub postmaster { open my $fh, '<', "$t->{pghost}/data/postmaster.pid" or return; my $p = <$fh>; chomp $p; $p }
sub cpu_now {
	return { nginx => ticks(family($t->{nginx_pid})), app => ticks(family($t->app_pid)),
		pg => ticks(family(postmaster())), hello => ticks(@HELLO_PIDS), at => time };
}

sub metric_value {
	my $name = shift;
	my $body = $t->json_req(GET => '/api/metrics')->res->body // '';
	return $body =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

# Waits until the app has nothing in flight but the metrics request itself
# (sign-ins queued for a hash slot when wrk stopped must not count against
# the next run).
sub settle {
	my $quiet = 0;
	for (1 .. 600) {
		my $n = metric_value('miky_http_requests_in_flight');
		return if defined $n && $n <= 1 && ++$quiet >= 2;
		$quiet = 0 unless defined $n && $n <= 1;
		sleep 0.2;
	}
	info('the app still has requests in flight after 120 s; measuring anyway');
}

# %R: each target's last run; %RUNS: every run of it, one a round.
my (@ORDER, %R, %RUNS);
my $ROUND = 1;
# measure(NAME, CONNECTIONS, VAR => value, ...): the VARs go to rotate.lua.
sub measure {
	my ($name, $conns, %var) = @_;
	my $script = delete $var{BENCH_SCRIPT} // 'rotate.lua';
	my $warmup = delete $var{BENCH_WARMUP} // $O{warmup};
	my $busy = delete $var{BENCH_BUSY};	# measured under other load: no settling
	$var{BENCH_FILE} //= $FILE{tokens};
	my $threads = $O{threads} < $conns ? $O{threads} : $conns;
	my @wrk = ('wrk', "-t$threads", "-c$conns", '--timeout', '10s', '-s', "$Bin/$script",
		$t->base . ($var{BENCH_URL_PATH} // ''));
	info "$name: " . ($var{BENCH_METHOD} // 'POST') . ' ' . ($var{BENCH_PATH} // $var{BENCH_URL_PATH})
		. ", $conns connections, $warmup s warm-up + $O{seconds} s";
	local @ENV{ keys %var } = values %var;
	settle() unless $busy;
	if ($warmup > 0) {
		system("@wrk -d${warmup}s >/dev/null") == 0 or die_("wrk failed");
		settle();
	}
	my $c0 = cpu_now();
	open my $fh, '-|', @wrk, "-d$O{seconds}s" or die_("wrk: $!");
	my $out = do { local $/; <$fh> };
	close $fh;
	my $c1 = cpu_now();
	my ($line) = $out =~ /^BENCH (.*)$/m or die_("$name: no summary from wrk:\n$out");
	my %r = map { split /=/, $_, 2 } split ' ', $line;
	$r{ok_rps} = ($r{requests} - $r{non2xx}) / $r{seconds};
	my $secs = $c1->{at} - $c0->{at};
	$r{"cpu_$_"} = 100 * ($c1->{$_} - $c0->{$_}) / $HZ / $secs for qw(nginx app pg hello);
	$r{cpu_app} = $r{cpu_hello} if $name eq 'hello';    # its app is fcgi_hello
	push @ORDER, $name unless $R{$name};
	$R{$name} = \%r;
	$r{round} = $ROUND;
	push @{ $RUNS{$name} }, \%r;
	info sprintf '%s: %.0f req/s, p99 %.1f ms', $name, $r{rps}, $r{p99_ms};
	return \%r;
}

sub check_status {
	my ($what, $want, $tx) = @_;
	my $code = $tx->res->code // 0;
	die_("$what answered $code, not $want: " . substr($tx->res->body // '', 0, 300)) if $code != $want;
}

sub first_line { open my $fh, '<', shift or return ''; my $l = <$fh>; chomp $l; split ' ', $l }

# --- the targets ----------------------------------------------------------------

my %NOTE;

sub bench_static {
	my $tx = $t->json_req(GET => '/index.html');
	check_status('static', 200, $tx);
	measure('static', $O{conns}, BENCH_METHOD => 'GET', BENCH_PATH => '/index.html');
	$NOTE{static} = sprintf 'a %d-byte file, nginx alone', length $tx->res->body;
}

# The reference do-nothing FastCGI program: built and started once.
sub hello_up {
	return if @HELLO_PIDS;
	my $bin = "$DIR/fcgi_hello";
	system("cc -std=c17 -O2 -o $bin $Bin/fcgi_hello.c -lfcgi") == 0
		or die_('cannot build bench/fcgi_hello.c (libfcgi-dev: scripts/deps.sh bench)');
	unlink $HELLO_SOCK;
	system('spawn-fcgi', '-s', $HELLO_SOCK, '-M', '0666', '-F', $CORES, '-P', "$DIR/hello.pids",
		'--', $bin) == 0 or die_('spawn-fcgi fcgi_hello failed');
	@HELLO_PIDS = grep { /^\d+$/ } split ' ', do { local (@ARGV, $/) = "$DIR/hello.pids"; <> // '' };
	die_('spawn-fcgi recorded no fcgi_hello process') unless @HELLO_PIDS;
}
# Only the process that started them (not a child forked later that exits).
my $HELLO_OWNER = $$;
END { if ($$ == $HELLO_OWNER) { kill 'TERM', @HELLO_PIDS if @HELLO_PIDS; unlink $HELLO_SOCK } }

sub bench_hello {
	hello_up();
	my $tx = $t->json_req(GET => '/bench-hello');
	check_status('hello', 200, $tx);
	measure('hello', $O{conns}, BENCH_METHOD => 'GET', BENCH_PATH => '/bench-hello');
	$NOTE{hello} = sprintf 'nginx -> FastCGI -> a program that does nothing (libfcgi, %d processes, '
		. 'a connection a request; %d bytes)', scalar @HELLO_PIDS, length $tx->res->body;
}

sub bench_fcgi {
	check_status('fcgi', 404, $t->json_req(GET => '/api/bench-nothing'));
	my $r = measure('fcgi', $O{conns}, BENCH_METHOD => 'GET', BENCH_PATH => '/api/bench-nothing');
	$r->{non2xx} = 0;    # every answer is the 404 it should be
	$NOTE{fcgi} = 'an unknown path: the app does nothing (404)';
}

sub bench_health {
	check_status('health', 200, $t->json_req(GET => '/api/health'));
	measure('health', $O{conns}, BENCH_METHOD => 'GET', BENCH_PATH => '/api/health');
	$NOTE{health} = 'one pooled SELECT 1';
}

sub bench_profile {
	my ($tok) = first_line($FILE{tokens});
	check_status('profile', 200, $t->json_req(GET => '/api/user/profile', undef, { Authorization => "Bearer $tok" }));
	my ($reads, $keys) = map { metric_value($_) // 0 } qw(miky_db_batch_reads_total miky_db_batch_keys_total);
	measure('profile', $O{conns}, BENCH_METHOD => 'GET', BENCH_PATH => '/api/user/profile', BENCH_AUTH => 1);
	$reads = (metric_value('miky_db_batch_reads_total') // 0) - $reads;
	$keys = (metric_value('miky_db_batch_keys_total') // 0) - $keys;
	$NOTE{profile} = sprintf 'JWT + the user row (%.1f rows a shared read)', $reads ? $keys / $reads : 0;
}

sub bench_list {
	my ($tok) = first_line($FILE{tokens});
	my $tx = $t->json_req(GET => '/api/conversations?limit=20', undef, { Authorization => "Bearer $tok" });
	check_status('list', 200, $tx);
	my $n = @{ $tx->res->json('/conversations') // [] };
	die_("list: $n conversations, not 20") unless $n == 20 || $O{convs} < 20;
	measure('list', $O{conns}, BENCH_METHOD => 'GET', BENCH_PATH => '/api/conversations?limit=20', BENCH_AUTH => 1);
	$NOTE{list} = sprintf 'JWT + user row + a page of 20 (%.1f KiB)', length($tx->res->body) / 1024;
}

sub bench_get {
	my ($tok, $id) = first_line($FILE{get});
	my $tx = $t->json_req(GET => "/api/conversations/$id", undef, { Authorization => "Bearer $tok" });
	check_status('get', 200, $tx);
	my $n = @{ $tx->res->json('/messages') // [] };
	die_("get: $n messages, not $O{msgs}") unless $n == $O{msgs};
	measure('get', $O{conns}, BENCH_METHOD => 'GET', BENCH_PATH => '/api/conversations/$2',
		BENCH_AUTH => 1, BENCH_FILE => $FILE{get});
	$NOTE{get} = sprintf 'JWT + user row + %d messages (%.1f KiB)', $n, length($tx->res->body) / 1024;
}

# The ceiling of sign-ins: cores / the time of one hash, measured with the
# app's own lib/password.c (bench/argon2_time.c) just before and just
# after the run, and the mean taken: on this kind of shared machine the
# same hash takes from 21 to 34 ms from one minute to the next.  Hashing
# on every core at once is measured too, after the run: the hashes then
# share the last-level cache and the memory bus, which the issue's
# ceiling does not count.
my $ARGON2;
my $ARGON2_BIN;
sub argon2_ms {
	my $threads = shift // 1;
	unless ($ARGON2_BIN) {
		my @san = `grep -c -- -fsanitize $ROOT/build/.flags 2>/dev/null` > 0 ? ('-fsanitize=address,undefined') : ();
		my $libs = `pkg-config --libs libpq libcjson libcurl libargon2 libcrypto`;
		chomp $libs;
		system("cc -std=c17 -O2 -D_GNU_SOURCE -pthread -I$ROOT @san -o $DIR/argon2_time "
			. "$Bin/argon2_time.c $ROOT/build/libmiky.a $libs -lm") == 0
			or die_('cannot build bench/argon2_time.c (run make first)');
		$ARGON2_BIN = "$DIR/argon2_time";
	}
	my $ms = `$ARGON2_BIN 20 $threads` + 0;
	die_('argon2_time failed') unless $ms > 0;
	return $ms;
}

sub bench_signin {
	my ($email, $pw) = first_line($FILE{signin});
	check_status('signin', 200, $t->json_req(POST => '/api/auth/signin', { email => $email, password => $pw }));
	my $before = argon2_ms();
	# The app admits a few sign-ins a hashing slot at once and refuses the
	# rest at once (503 with Retry-After, lib/password.c); wrk retries
	# without waiting, so at 64 connections the run would measure a loop
	# of refusals.  16 connections stay within what it admits.
	my $conns = $ENV{BENCH_SIGNIN_CONNECTIONS} // ($O{conns} < 16 ? $O{conns} : 16);
	my $r = measure('signin', $conns, BENCH_METHOD => 'POST', BENCH_PATH => '/api/auth/signin',
		BENCH_FILE => $FILE{signin}, BENCH_BODY => '{"email":"$1","password":"$2"}');
	my $after = argon2_ms();
	my $all = argon2_ms($CORES);
	my $ms = ($before + $after) / 2;
	my $ceiling = $CORES * 1000 / $ms;
	$r->{conns} = $conns;
	$r->{ceiling} = $ceiling;
	$ARGON2 = sprintf 'one argon2id hash (lib/password.c, median of 20): %.1f ms before the run, %.1f after; '
		. 'ceiling %d cores / %.1f ms = %.1f sign-ins/s; with %d hashing at once, %.1f ms each (%.1f/s)',
		$before, $after, $CORES, $ms, $ceiling, $CORES, $all, $CORES * 1000 / $all;
	# What counts is sign-ins done; the rest were refused at once (503,
	# the hash queue full) and are in the errors column.
	$NOTE{signin} = sprintf '%d connections; %.1f sign-ins/s: %.2f of the argon2 ceiling (%.1f/s), %.2f of %d at once',
		$conns, $r->{ok_rps}, $r->{ok_rps} / $ceiling, $ceiling, $r->{ok_rps} * $all / ($CORES * 1000), $CORES;
}

# A sign-in flood beside the profile (issue 7): BENCH_FLOOD_CONNECTIONS
# (300) connections send wrong-password sign-ins for BENCH_SECONDS while a
# second wrk measures GET /api/user/profile at 16 connections; the profile
# measured idle just before is the baseline.  The hashing line refuses what
# it cannot take at once (503 with Retry-After), so the profile's p99 should
# stay within 3x its idle p99, and no answer be a 5xx other than that 503.
my $FLOOD_LINE;
sub bench_flood {
	my $conns = $ENV{BENCH_FLOOD_CONNECTIONS} // 300;
	my %profile = (BENCH_METHOD => 'GET', BENCH_PATH => '/api/user/profile', BENCH_AUTH => 1);
	my $idle = measure('idle16', 16, %profile);
	# The flood: wrong passwords for real accounts, 300 at a time.
	my @wrk = ('wrk', "-t$O{threads}", "-c$conns", '--timeout', '10s', '-s', "$Bin/flood.lua", $t->base);
	{
		local %ENV = (%ENV, BENCH_FILE => $FILE{signin}, BENCH_METHOD => 'POST',
			BENCH_PATH => '/api/auth/signin', BENCH_BODY => '{"email":"$1","password":"wrong $2"}');
		open(my $fh, '-|', @wrk, '-d' . ($O{seconds} + 4) . 's') or die_("wrk: $!");
		$FLOOD_LINE = { fh => $fh };
	}
	sleep 2;
	my $busy = measure('flood16', 16, %profile, BENCH_WARMUP => 0, BENCH_BUSY => 1);
	my $out = do { local $/; readline $FLOOD_LINE->{fh} };
	close $FLOOD_LINE->{fh};
	my ($f) = $out =~ /^FLOOD (.*)$/m or die_("flood: no counts from wrk:\n$out");
	my %c = map { split /=/, $_, 2 } split ' ', $f;
	my $ratio = $busy->{p99_ms} / ($idle->{p99_ms} || 1);
	$NOTE{idle16} = 'GET /api/user/profile, 16 connections, idle';
	$NOTE{flood16} = sprintf 'the same beside %d wrong-password sign-ins at once: p99 %.2fx idle', $conns, $ratio;
	$FLOOD_LINE = sprintf 'sign-in flood (%d connections, %d s): %d checked (401), %d refused busy (503), '
		. '%d rate-limited (429), %d other 5xx, %d other; profile p99 %.1f ms idle, %.1f ms beside it '
		. '(%.2fx; goal <= 3x, and no 5xx but the 503)', $conns, $O{seconds} + 4, $c{s401}, $c{s503},
		$c{s429}, $c{s5xx}, $c{other} + $c{s2xx}, $idle->{p99_ms}, $busy->{p99_ms}, $ratio;
	info $FLOOD_LINE;
}

# The Stripe webhook: signed invoice.paid deliveries (bench/webhook.pl: new
# invoices of WEBHOOK_USERS customers, a third of the deliveries
# duplicates -- the same event again, or another event for the same
# invoice), BENCH_CONNECTIONS at a time.  Each delivery checks the
# signature over the raw body, records the event, and for a new invoice
# locks the payer, records the payment and grants its 2000 credits, in
# one transaction.  Afterwards the books must be exact: each invoice
# granted once, every balance equal to the sum of its ledger, every
# customer credited 2000 per invoice.  The events are signed just before
# the run (Stripe's 300 s tolerance).
my $WEBHOOK_LINE;
sub bench_webhook {
	my $users = $ENV{WEBHOOK_USERS} // 200;
	my $triples = $ENV{WEBHOOK_TRIPLES} // 20000;
	my $dbh = $t->dbh;
	$dbh->do(q{
		INSERT INTO users (email, password_hash, first_name, last_name,
		    referral_code, email_verified, stripe_customer_id)
		SELECT 'hook' || i || '@example.com', password_hash, 'Hook', 'User' || i,
		    'H' || lpad(translate(i::text, '01', 'AB'), 7, 'Z'), true, 'cus_bench_' || i
		FROM users, generate_series(1, ?::int) i
		WHERE email = 'template@bench.test'}, undef, $users);
	for (["$DIR/warm.txt", 500], ["$DIR/events.txt", $triples]) {
		system('perl', "$Bin/webhook.pl", $WEBHOOK_SECRET, $users, $_->[1], $_->[0]) == 0
			or die_('webhook: could not sign the events');
	}
	my ($sig, $body) = (first_line_raw("$DIR/warm.txt") =~ /^([^\t]*)\t(.*)$/);
	my $tx = $t->json_req(POST => '/api/payments/webhook', $body,
		{ 'Content-Type' => 'application/json', 'Stripe-Signature' => $sig });
	check_status('webhook', 200, $tx);
	my $threads = $O{threads} < $O{conns} ? $O{threads} : $O{conns};
	{
		local @ENV{qw(BENCH_EVENTS BENCH_WRK_THREADS)} = ("$DIR/warm.txt", $threads);
		system("wrk -t$threads -c$O{conns} --timeout 10s -s $Bin/webhook.lua -d$O{warmup}s "
			. $t->url('/api/payments/webhook') . ' >/dev/null') == 0 or die_('wrk failed');
	}
	my $r = measure('webhook', $O{conns}, BENCH_SCRIPT => 'webhook.lua', BENCH_WARMUP => 0,
		BENCH_URL_PATH => '/api/payments/webhook', BENCH_EVENTS => "$DIR/events.txt",
		BENCH_WRK_THREADS => $threads);
	my ($events, $invoices, $txs, $grants, $unbalanced, $wrong) = $dbh->selectrow_array(q{
		SELECT (SELECT count(*) FROM stripe_events),
		 (SELECT count(DISTINCT payload->'data'->'object'->>'id') FROM stripe_events),
		 (SELECT count(*) FROM transactions WHERE stripe_invoice_id LIKE 'in_bench_%'),
		 (SELECT count(*) FROM credit_ledger WHERE reason = 'subscription'
		   AND ref LIKE 'in_bench_%'),
		 (SELECT count(*) FROM users u WHERE credits <> (SELECT coalesce(sum(delta), 0)
		   FROM credit_ledger l WHERE l.user_id = u.id)),
		 (SELECT count(*) FROM users u WHERE email LIKE 'hook%' AND credits <> 2000
		   * (SELECT count(*) FROM transactions t WHERE t.user_id = u.id))});
	die_("webhook: the ledger is NOT exact: $invoices invoices, $txs transactions, $grants grants, "
		. "$unbalanced balances off their ledger, $wrong customers off 2000 per invoice")
		if $invoices != $txs || $txs != $grants || $unbalanced != 0 || $wrong != 0;
	$WEBHOOK_LINE = sprintf 'webhook: %d deliveries measured (%d signed, a third duplicates; the '
		. "warm-up's too in the totals): %d events recorded, %d invoices, each granted once; "
		. 'every balance = its ledger', $r->{requests}, 3 * $triples, $events, $invoices;
	$NOTE{webhook} = 'events/s; ledger exact';
}

sub first_line_raw { open my $fh, '<', shift or return ''; my $l = <$fh> // ''; chomp $l; $l }

# The streaming capacity run (not in the default set: it restarts the
# app).  STREAMS chat turns (10000) stream at once from a slow model
# (bench/slowmodel.c: a piece every STREAM_INTERVAL_MS (1000) for
# STREAM_PIECES (90) pieces), opened STREAM_RATE (300) a second by
# bench/streamload.c (both in C, so the fakes cost next to nothing),
# while wrk measures GET /api/user/profile beside them over 16
# connections for BENCH_SECONDS.  Every stream must end with `done`, and
# its answer be stored.  Memory per stream: the growth of the app's and
# nginx's resident memory from before the streams to when all are open,
# divided by their number.  A stream holds a request thread for its
# length: the app runs with STREAM_THREADS per worker (enough for all).
my @STREAMS;
sub bench_streams {
	my $n = $ENV{STREAMS} // 10000;
	my $pieces = $ENV{STREAM_PIECES} // 90;
	my $ms = $ENV{STREAM_INTERVAL_MS} // 1000;
	my $rate = $ENV{STREAM_RATE} // 300;
	# A stream takes about four descriptors in the app (the connection
	# from nginx, the model's, and curl's own pair): enough workers that
	# none needs more than its limit.
	my $per = int(($NOFILE - 1000) / 4);
	my $workers = $ENV{STREAM_WORKERS} // do {
		my $w = int(($n + $per - 1) / $per);
		$w > $CORES ? $w : $CORES;
	};
	my $threads = $ENV{STREAM_THREADS} // int($n / $workers * 1.2) + 100;
	for my $prog (qw(slowmodel streamload)) {
		system('cc', '-O2', '-Wall', '-Wextra', '-Werror', '-o', "$DIR/$prog", "$Bin/$prog.c") == 0
			or die_("streams: cannot build bench/$prog.c");
	}
	my $model = fork // die_("fork: $!");
	if (!$model) {
		open STDOUT, '>', '/dev/null';
		exec "$DIR/slowmodel", "$DIR/model.port", $pieces, $ms or POSIX::_exit(127);
	}
	my $port;
	for (1 .. 100) { last if -s "$DIR/model.port" && ($port = first_line_raw("$DIR/model.port")); sleep 0.1 }
	die_('streams: the slow model did not start') unless $port;
	$t->dbh->do(q{UPDATE admin_settings SET value = ?::jsonb WHERE key = ?}, undef, @$_)
		for ['100', 'chat_max_concurrent_turns'], ['10000', 'chat_turns_per_minute'];
	info "streams: restarting the app with $threads threads a worker and the slow model";
	$t->stop_app;
	$t->start_app(env => { OPENAI_API_KEY => 'sk-bench', OPENAI_BASE_URL => "http://127.0.0.1:$port/v1",
		MIKY_THREADS => $threads, MIKY_WORKERS => $workers });
	my $app0 = rss_kb(family($t->app_pid));
	my $ngx0 = rss_kb(family($t->{nginx_pid}));
	my ($before) = $t->dbh->selectrow_array(q{SELECT count(*) FROM messages WHERE sender = 'assistant'});
	info "streams: $n turns, $rate a second, of $pieces pieces $ms ms apart";
	open my $load, '-|', "$DIR/streamload", $t->port, $FILE{tokens}, $n, $rate or die_("streamload: $!");
	my (%open, $summary, $wrk);
	while (my $line = <$load>) {
		chomp $line;
		if ($line =~ /^open (\d+)/) {
			%open = (n => $1, app => rss_kb(family($t->app_pid)), nginx => rss_kb(family($t->{nginx_pid})),
				threads => threads_of(family($t->app_pid)), at => time);
			info "streams: $1 open; profile beside them";
			local @ENV{qw(BENCH_FILE BENCH_METHOD BENCH_PATH BENCH_AUTH)} =
				($FILE{tokens}, 'GET', '/api/user/profile', 1);
			my $c0 = cpu_now();
			$wrk = `wrk -t1 -c16 -d$O{seconds}s --timeout 10s -s $Bin/rotate.lua ${\ $t->base}`;
			my $c1 = cpu_now();
			$open{"cpu_$_"} = 100 * ($c1->{$_} - $c0->{$_}) / $HZ / ($c1->{at} - $c0->{at})
				for qw(nginx app pg);
		} elsif ($line =~ /^STREAMS /) {
			$summary = $line;
		}
	}
	close $load;
	kill 'TERM', $model;
	waitpid $model, 0;
	my ($stored) = $t->dbh->selectrow_array(q{SELECT count(*) FROM messages WHERE sender = 'assistant'
		AND content LIKE 'Hello word 1 %' AND content LIKE ?}, undef, "% word $pieces");
	my %s = map { split /=/, $_, 2 } split ' ', ($summary // 'STREAMS') =~ s/^STREAMS //r;
	my %w = ($wrk // '') =~ /^BENCH (.*)$/m ? map { split /=/, $_, 2 } split ' ', $1 : ();
	my $open = $open{n} || 1;
	push @STREAMS, sprintf('streaming capacity: %d streams, %d pieces each %d ms apart, opened %d a second, '
		. 'the app with %d workers of up to %d threads', $n, $pieces, $ms, $rate, $workers, $threads),
		sprintf('  ended: %s done, %s error, %s cut; %s stored with every piece (of %d); %s deltas in %s s',
			$s{done} // '?', $s{error} // '?', $s{cut} // '?', $stored, $n, $s{deltas} // '?', $s{seconds} // '?'),
		sprintf('  latency from the request: start p50 %s ms p99 %s ms; first delta p50 %s ms p99 %s ms',
			@s{qw(start_p50_ms start_p99_ms first_delta_p50_ms first_delta_p99_ms)}),
		sprintf('  beside %d open streams, GET /api/user/profile (16 connections): %s req/s, p50 %s ms, '
			. 'p99 %s ms, %d errors; CPU nginx %.0f%%, app %.0f%%, pg %.0f%%', $open{n} // 0,
			$w{rps} // '-', $w{p50_ms} // '-', $w{p99_ms} // '-', ($w{non2xx} // 0) + ($w{errors} // 0),
			$open{cpu_nginx} // 0, $open{cpu_app} // 0, $open{cpu_pg} // 0),
		sprintf('  memory per open stream: app %.1f KiB (%d -> %d KiB, %d threads), nginx %.1f KiB '
			. '(%d -> %d KiB)', (($open{app} // $app0) - $app0) / $open, $app0, $open{app} // 0,
			$open{threads} // 0, (($open{nginx} // $ngx0) - $ngx0) / $open, $ngx0, $open{nginx} // 0);
	info $_ for @STREAMS;
}

# Resident memory (KiB) and threads of processes.
sub rss_kb { my $kb = 0; for (@_) { open my $fh, '<', "/proc/$_/status" or next;
	while (<$fh>) { $kb += $1 if /^VmRSS:\s+(\d+)/ } } $kb }
sub threads_of { my $n = 0; for (@_) { open my $fh, '<', "/proc/$_/status" or next;
	while (<$fh>) { $n += $1 if /^Threads:\s+(\d+)/ } } $n }

# --- the report ---------------------------------------------------------------

sub median { my @v = sort { $a <=> $b } @_; @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2 }
sub spread_of { my @v = sort { $a <=> $b } @_; sprintf '%s (%s-%s)', map { $_ >= 100 ? sprintf('%.0f', $_) : sprintf('%.3f', $_) } median(@v), $v[0], $v[-1] }

# With BENCH_ROUNDS > 1: each target's median and range over the rounds,
# and its ratio to the do-nothing path measured in the same round (the
# ratio of neighbours in time, not of medians taken minutes apart).
sub rounds {
	my @l = (sprintf('%d rounds, the targets in turn: median (lowest-highest)', $ROUNDS),
		sprintf('%-8s %-26s %-22s %-22s %s', 'target', 'req/s', 'vs hello', 'vs fcgi',
			'sign-ins / argon2 ceiling'));
	# This run's ratios to the baseline b of the same round.
	my $vs = sub {
		my ($b, @runs) = @_;
		my @v = map { my $f = $RUNS{$b} && $RUNS{$b}[ $_->{round} - 1 ]; $f ? $_->{rps} / $f->{rps} : () } @runs;
		@v ? spread_of(@v) : '-';
	};
	for my $name (@ORDER) {
		my @runs = @{ $RUNS{$name} };
		next if @runs < 2;
		my @ceil = map { $_->{ceiling} ? $_->{ok_rps} / $_->{ceiling} : () } @runs;
		push @l, sprintf '%-8s %-26s %-22s %-22s %s', $name, spread_of(map { $_->{rps} } @runs),
			$vs->('hello', @runs), $vs->('fcgi', @runs), @ceil ? spread_of(@ceil) : '';
	}
	return @l;
}

sub report {
	my @l;
	my $rev = `git -C $ROOT describe --always --dirty 2>/dev/null` // '?';
	chomp $rev;
	push @l, sprintf 'Miky bench %s, %s', strftime('%Y-%m-%d %H:%M:%S UTC', gmtime), $rev;
	push @l, sprintf 'host: %d cores, %s; wrk, nginx, the app and PostgreSQL share them (loopback)',
		$CORES, `uname -sr` =~ s/\s+$//r;
	push @l, 'build: SANITIZE=1 (ASan+UBSan): these figures understate a normal build'
		if `grep -c -- -fsanitize $ROOT/build/.flags 2>/dev/null` > 0;
	push @l, sprintf 'app: MIKY_WORKERS=%s MIKY_THREADS=%s MIKY_DB_POOL=%s; nginx: dev template, no per-IP limits',
		$ENV{MIKY_WORKERS} // $CORES, $ENV{MIKY_THREADS} // 64, $ENV{MIKY_DB_POOL} // 8;
	push @l, sprintf 'data: %d users x %d conversations x %d messages; each request for another user',
		@O{qw(users convs msgs)};
	push @l, sprintf 'wrk: -t%d -c%d -d%ds after %ds of warm-up', @O{qw(threads conns seconds warmup)};
	push @l, $ARGON2 if $ARGON2;
	push @l, '';
	push @l, sprintf '%-8s %9s %8s %8s %9s %8s %8s %7s %7s %7s %6s  %s', 'target', 'req/s', 'p50 ms',
		'p99 ms', 'vs static', 'vs hello', 'vs fcgi', 'nginx%', 'app%', 'pg%', 'errors', 'note';
	for my $name (@ORDER) {
		my $r = $R{$name};
		my $ratio = sub { my $b = $R{ $_[0] } or return '-'; sprintf '%.3f', $r->{rps} / $b->{rps} };
		push @l, sprintf '%-8s %9.0f %8.2f %8.2f %9s %8s %8s %7.0f %7.0f %7.0f %6d  %s', $name, $r->{rps},
			$r->{p50_ms}, $r->{p99_ms}, $ratio->('static'), $ratio->('hello'), $ratio->('fcgi'), $r->{cpu_nginx},
			$r->{cpu_app}, $r->{cpu_pg}, $r->{non2xx} + $r->{errors}, $NOTE{$name} // '';
	}
	push @l, '', 'CPU: % of one core used during the measured run (client excluded; app% of hello is fcgi_hello)';
	push @l, '', rounds() if $ROUNDS > 1;
	push @l, '', $WEBHOOK_LINE if $WEBHOOK_LINE;
	push @l, '', $FLOOD_LINE if $FLOOD_LINE && !ref $FLOOD_LINE;
	push @l, '', @STREAMS if @STREAMS;
	return join "\n", @l, '';
}

# Targets that can run again on the same data (the webhook's events and
# the flood's accounts are spent by a run).
my %AGAIN = map { $_ => 1 } qw(static hello fcgi health profile list get signin);
seed();
data_files();
for ($ROUND = 1; $ROUND <= $ROUNDS; $ROUND++) {
	for my $target (@TARGETS) {
		next if $ROUND > 1 && !$AGAIN{$target};
		no strict 'refs';
		&{"bench_$target"}();
	}
}
my $text = report();
print $text;
mkdir "$Bin/results";
my $file = "$Bin/results/" . strftime('%Y%m%dT%H%M%SZ', gmtime) . '.txt';
open my $out, '>', $file or die_("$file: $!");
print $out $text;
close $out;
info "written to bench/results/" . ($file =~ s{.*/}{}r);
$t->done;
