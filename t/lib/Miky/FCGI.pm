package Miky::FCGI;
# A minimal FastCGI client for tests that must talk to the app without
# nginx in between: to send parameters nginx never would (a REMOTE_ADDR
# that is not loopback, say).  One request per connection, as a responder.
#
#   my ($status, $headers, $body) = Miky::FCGI::request($socket_path,
#       { REQUEST_METHOD => 'GET', REQUEST_URI => '/api/metrics', ... }, $stdin);
use strict;
use warnings;
use IO::Socket::UNIX;
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
	my ($path, $params, $stdin) = @_;
	$stdin //= '';
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
	$out .= _record(FCGI_STDIN, '');
	print {$s} $out;
	my ($raw, $ended) = ('', 0);
	while (!$ended) {
		my $head = _read($s, 8) // last;
		my (undef, $type, undef, $len, $pad) = unpack('CCnnC', $head);
		my $content = _read($s, $len + $pad) // last;
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
	my ($s, $n) = @_;
	my $buf = '';
	while (length $buf < $n) {
		my $got = sysread($s, $buf, $n - length $buf, length $buf);
		return undef unless $got;
	}
	return $buf;
}

1;
