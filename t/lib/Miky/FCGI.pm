package Miky::FCGI;
# A minimal FastCGI client for tests that must talk to the app without
# nginx in between: to send parameters nginx never would (a REMOTE_ADDR
# that is not loopback, say).  One request per connection, as a responder.
#
#   my ($status, $headers, $body) = Miky::FCGI::request($socket_path,
#       { REQUEST_METHOD => 'GET', REQUEST_URI => '/api/metrics', ... }, $stdin);
#
# With $stdin undef and CONTENT_LENGTH among the params, no byte of the
# body is sent and the stream is left open: the app must answer without
# it (a 402 before the body) or the request times out (timeout => s,
# default 30; then it dies).
use strict;
use warnings;
use IO::Select;
use IO::Socket::UNIX;
use Time::HiRes qw(time);
use Socket qw(SOCK_STREAM);

use constant { FCGI_BEGIN_REQUEST => 1, FCGI_END_REQUEST => 3, FCGI_PARAMS => 4,
	FCGI_STDIN => 5, FCGI_STDOUT => 6, FCGI_RESPONDER => 1 };

sub _record {
	my ($type, $content) = @_;
	my $pad = (8 - length($content) % 8) % 8;
	return pack('CCnnCC', 1, $type, 1, length $content, $pad, 0) . $content . ("\0" x $pad);
}

sub _len { my $n = length shift; $n < 128 ? pack('C', $n) : pack('N', $n | 0x80000000) }

sub _params {
	my ($p) = @_;
	return join '', map { _len($_) . _len($p->{$_}) . $_ . $p->{$_} } sort keys %$p;
}

# request($path, \%params, $stdin): the response's status (from its
# Status header, 200 without one), its headers (lower-cased names) and
# body.  Dies if the app closes without ending the request.
sub request {
	my ($path, $params, $stdin, %opt) = @_;
	my $open = !defined $stdin && defined $params->{CONTENT_LENGTH};
	$stdin //= '';
	my $deadline = time + ($opt{timeout} // 30);
	my %p = (GATEWAY_INTERFACE => 'CGI/1.1', SERVER_PROTOCOL => 'HTTP/1.1',
		REQUEST_METHOD => 'GET', QUERY_STRING => '', CONTENT_LENGTH => length $stdin, %$params);
	$p{DOCUMENT_URI} //= ($p{REQUEST_URI} // '/') =~ s/\?.*//r;
	my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $path)
		or die "connect $path: $!";
	my $out = _record(FCGI_BEGIN_REQUEST, pack('nCx5', FCGI_RESPONDER, 0))
		. _record(FCGI_PARAMS, _params(\%p)) . _record(FCGI_PARAMS, '');
	for (my $at = 0; $at < length $stdin; $at += 65528) {
		$out .= _record(FCGI_STDIN, substr($stdin, $at, 65528));
	}
	$out .= _record(FCGI_STDIN, '') unless $open;
	print {$s} $out;
	my ($raw, $ended) = ('', 0);
	while (!$ended) {
		my $head = _read($s, 8, $deadline) // last;
		my (undef, $type, undef, $len, $pad) = unpack('CCnnC', $head);
		my $content = _read($s, $len + $pad, $deadline) // last;
		$content = substr($content, 0, $len);
		$raw .= $content if $type == FCGI_STDOUT;
		$ended = 1 if $type == FCGI_END_REQUEST;
	}
	close $s;
	die "the app closed the connection without ending the request\n" unless $ended;
	my ($head, $body) = split /\r?\n\r?\n/, $raw, 2;
	my %h;
	for (split /\r?\n/, $head // '') {
		my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
		$h{ lc $k } = $v;
	}
	my ($status) = ($h{status} // '200') =~ /^(\d+)/;
	return ($status, \%h, $body // '');
}

sub _read {
	my ($s, $n, $deadline) = @_;
	my $buf = '';
	my $sel = IO::Select->new($s);
	while (length $buf < $n) {
		my $left = $deadline - time;
		die "no answer from the app in time\n" if $left <= 0 || !$sel->can_read($left);
		my $got = sysread($s, $buf, $n - length $buf, length $buf);
		return undef unless $got;
	}
	return $buf;
}

1;
