#!/usr/bin/perl
# streams.pl — the streaming capacity run (bench/run.sh, target `streams`).
#
# Opens N streaming chat turns at once against an app whose model is the
# slow fake (a piece every 100 ms for 30 s), and while they are all open
# runs wrk against GET /api/user/profile, so the figure that matters is
# how quick requests fare beside many open streams.  Prints one line:
#
#   STREAMS n=1000 done=1000 failed=0 ... p99_ms=... rss_per_stream_kb=...
#
# Usage: streams.pl BASE TOKENS_FILE N PIECES PIECE_MS APP_MASTER_PID NGINX_PID
# (TOKENS_FILE: access tokens, one per line; the streams take them in turn)
use strict;
use warnings;

use Mojo::IOLoop;
use Mojo::UserAgent;
use Mojo::JSON qw(encode_json);
use Time::HiRes qw(time);

my ($base, $tokens, $n, $pieces, $piece_ms, $master, $nginx) = @ARGV;
die "usage: streams.pl BASE TOKENS_FILE N PIECES PIECE_MS MASTER NGINX\n"
	unless defined $nginx;
open my $tf, '<', $tokens or die "$tokens: $!\n";
my @tokens = grep { length } map { s/\s+//gr } <$tf>;
die "no tokens in $tokens\n" unless @tokens;
my $token = $tokens[0];

# Resident memory of a process and its children, in KiB.
sub rss_kb {
	my ($pid) = @_;
	my @pids = ($pid, split ' ', `pgrep -P $pid` // '');
	my $kb = 0;
	for my $p (@pids) {
		open my $fh, '<', "/proc/$p/status" or next;
		while (<$fh>) { $kb += $1 if /^VmRSS:\s+(\d+)/ }
	}
	return $kb;
}

sub threads_of {
	my ($pid) = @_;
	my $n = 0;
	for my $p (split ' ', `pgrep -P $pid` // '') {
		open my $fh, '<', "/proc/$p/status" or next;
		while (<$fh>) { $n += $1 if /^Threads:\s+(\d+)/ }
	}
	return $n;
}

my $ua = Mojo::UserAgent->new(inactivity_timeout => 120, request_timeout => 0,
	connect_timeout => 30, max_response_size => 0);
my %st = (done => 0, error => 0, cut => 0, deltas => 0, open => 0, peak => 0);
my (@first_delta, @first_start);
my $t0 = time;
my $content = "[[slow:$piece_ms]][[count:$pieces]] bench stream";
my $rss0 = rss_kb($master);
my $nginx0 = rss_kb($nginx);
my ($rss1, $nginx1, $threads1, $wrk_out);

for my $i (1 .. $n) {
	# Spread the starts over a few seconds: a thousand clients do not
	# all press enter in the same millisecond.
	Mojo::IOLoop->timer(0.004 * $i => sub {
		my $tx = $ua->build_tx(POST => "$base/api/chat/send" => {
			Authorization => "Bearer $tokens[$i % @tokens]",
			'Content-Type' => 'application/json',
			Accept => 'text/event-stream' } => encode_json({
			content => "$content $i", stream => \1 }));
		my ($buf, $ended, $started) = ('', '', time);
		$tx->res->content->unsubscribe('read')->on(read => sub {
			my (undef, $bytes) = @_;
			$buf .= $bytes;
			while ($buf =~ s/\A(.*?)\n\n//s) {
				my ($ev) = $1 =~ /^event: (\S+)/m;
				next unless defined $ev;
				push @first_start, time - $started if $ev eq 'start';
				if ($ev eq 'delta') {
					push @first_delta, time - $started
						unless $st{deltas_seen}{$i}++;
					$st{deltas}++;
				}
				$ended = $ev if $ev eq 'done' || $ev eq 'error';
			}
		});
		$st{open}++;
		$st{peak} = $st{open} if $st{open} > $st{peak};
		$ua->start($tx => sub {
			my (undef, $tx) = @_;
			$st{open}--;
			if ($ended eq 'done') { $st{done}++ }
			elsif ($ended eq 'error') { $st{error}++ }
			else { $st{cut}++ }
			Mojo::IOLoop->stop if $st{done} + $st{error} + $st{cut} == $n;
		});
	});
}

# Once all are open: memory, then wrk against the profile for 20 s, in a
# child so the streams keep being read meanwhile.
my $ramp = 0.004 * $n + 3;
Mojo::IOLoop->timer($ramp => sub {
	$rss1 = rss_kb($master);
	$nginx1 = rss_kb($nginx);
	$threads1 = threads_of($master);
	$st{open_at_wrk} = $st{open};
	Mojo::IOLoop->subprocess->run(
		sub {
			local $ENV{BENCH_TOKEN} = $token;
			return scalar `wrk -t1 -c16 -d20s --timeout 10s -s bench/request.lua $base/api/user/profile 2>&1`;
		},
		sub { $wrk_out = $_[2] // "wrk: $_[1]" });
});
Mojo::IOLoop->timer($ramp + $pieces * $piece_ms / 1000 + 120 => sub {
	Mojo::IOLoop->stop });
Mojo::IOLoop->start;

my ($rps, $p50, $p99, $non2xx, $errs) = ('-', '-', '-', '-', '-');
if (($wrk_out // '') =~ /^BENCH (.*)$/m) {
	my %kv = map { split /=/, $_, 2 } split ' ', $1;
	($rps, $p50, $p99, $non2xx, $errs) = @kv{qw(rps p50_ms p99_ms non2xx errors)};
}
my @fd = sort { $a <=> $b } @first_delta;
my @fs = sort { $a <=> $b } @first_start;
my $open = $st{open_at_wrk} || 1;
printf "STREAMS n=%d done=%d failed=%d cut=%d deltas=%d peak_open=%d "
	. "open_during_wrk=%d seconds=%.1f start_p50_ms=%.0f start_p99_ms=%.0f "
	. "first_delta_p50_ms=%.0f "
	. "first_delta_p99_ms=%.0f profile_rps=%s profile_p50_ms=%s "
	. "profile_p99_ms=%s profile_errors=%s app_rss_kb=%d app_rss_open_kb=%d "
	. "app_threads=%d rss_per_stream_kb=%.1f nginx_rss_per_stream_kb=%.1f\n",
	$n, $st{done}, $st{error}, $st{cut}, $st{deltas}, $st{peak},
	$st{open_at_wrk} // 0, time - $t0,
	@fs ? 1000 * $fs[int(@fs / 2)] : -1,
	@fs ? 1000 * $fs[int(@fs * 0.99)] : -1,
	@fd ? 1000 * $fd[int(@fd / 2)] : -1,
	@fd ? 1000 * $fd[int(@fd * 0.99)] : -1,
	$rps, $p50, $p99, ($non2xx eq '-' ? '-' : $non2xx + $errs),
	$rss0, $rss1 // 0, $threads1 // 0,
	(($rss1 // $rss0) - $rss0) / $open, (($nginx1 // $nginx0) - $nginx0) / $open;
print STDERR $wrk_out // "wrk did not run\n" if ($wrk_out // '') !~ /^BENCH /m;
