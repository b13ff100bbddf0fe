#!/usr/bin/perl
# The HTTP foundation: routing (404/405), the error shape, the headers every
# response carries, request ids, body limits, the checks before a handler
# (415, invalid_json, invalid_input), query and path decoding, CORS and the
# Prometheus metrics.  Bad input is swept as a table (STYLE.md point 19).
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test;
use Mojo::JSON qw(decode_json encode_json);
use Mojo::Promise;

my $t = Miky::Test->new(workers => 2, threads => 2);
my $u = $t->user;
my $AUTH = $t->auth($u);
my $UUID = '6f1c1a8e-1111-4222-8333-444455556666';    # no such conversation

# --- helpers ----------------------------------------------------------------

# std_headers($tx, $name): X-Request-Id (nginx's 32 hex digits),
# Cache-Control: no-store and X-Content-Type-Options: nosniff, each once.
sub std_headers {
	my ($tx, $name) = @_;
	my $h = $tx->res->headers;
	my %want = ('X-Request-Id' => qr/^[0-9a-f]{32}\z/,
		'Cache-Control' => qr/^no-store\z/,
		'X-Content-Type-Options' => qr/^nosniff\z/);
	my @bad;
	for my $k (sort keys %want) {
		my @v = @{ $h->every_header($k) };
		push @bad, "$k: [@v]" unless @v == 1 && $v[0] =~ $want{$k};
	}
	ok(!@bad, "$name: X-Request-Id, Cache-Control, nosniff once each")
		or diag join "\n", @bad;
}

# error_shape($tx, $name, $code, $field): the body is exactly
# {"error":{"code","message"[,"field"]}}.
sub error_shape {
	my ($tx, $name, $code, $field) = @_;
	my $j = eval { decode_json($tx->res->body) };
	my @keys = defined $field ? qw(code field message) : qw(code message);
	my $ok = ref $j eq 'HASH' && join(',', sort keys %$j) eq 'error'
		&& ref $j->{error} eq 'HASH'
		&& join(',', sort keys %{ $j->{error} }) eq join(',', @keys)
		&& ($j->{error}{code} // '') eq $code
		&& !ref $j->{error}{message} && length($j->{error}{message} // '') > 0
		&& (!defined $field || ($j->{error}{field} // '') eq $field);
	ok($ok, "$name: error $code" . (defined $field ? " field $field" : '') . ', nothing else')
		or diag 'got: ' . $tx->res->body;
	like($tx->res->headers->content_type // '', qr{^application/json}, "$name: JSON")
		if $tx->res->body ne '';
}

# The app's JSON log lines for one request id.
sub log_lines_for {
	my $rid = shift;
	my @l;
	for my $line (split /\n/, $t->log) {
		next unless $line =~ /^\{/ && index($line, $rid) >= 0;
		my $j = eval { decode_json($line) } or next;
		push @l, $j if ($j->{request_id} // '') eq $rid;
	}
	return @l;
}

# request_log_line($rid): the "request" log line of a request the app
# served, once it is written (a worker logs a request as it ends).
sub request_log_line {
	my $rid = shift;
	my @l;
	$t->wait_for(sub { @l = grep { ($_->{msg} // '') eq 'request' } log_lines_for($rid) }, 5,
		"the log line of $rid");
	is(scalar @l, 1, "one request log line for $rid");
	return $l[0] // {};
}

sub rid { $_[0]->res->headers->header('X-Request-Id') // '' }

# --- health, 404, 405 -------------------------------------------------------

{
	my $tx = $t->json_req(GET => '/api/health');
	is($tx->res->code, 200, 'health 200');
	is_deeply($tx->res->json, { status => 'ok' }, 'health body is exactly {"status":"ok"}');
	like($tx->res->headers->content_type, qr{^application/json}, 'health is JSON');
	std_headers($tx, 'health');
}

# --- request ids --------------------------------------------------------------

{
	my $tx = $t->json_req(GET => '/api/health', undef, { 'X-Request-Id' => 'chosen-by-the-client' });
	my $rid = rid($tx);
	like($rid, qr/^[0-9a-f]{32}\z/, 'X-Request-Id is 32 hex digits');
	isnt($rid, 'chosen-by-the-client', 'a client X-Request-Id is not taken');
	my $l = request_log_line($rid);
	is($l->{status}, 200, 'the log line has the status');
	is($l->{path}, '/api/health', 'the log line has the route');
	# nginx buffers its access log and writes it at least once a second.
	my $access = '';
	$t->wait_for(sub {
		$access = do { local (@ARGV, $/) = ($t->dir . '/access.log'); <> } // '';
		$access =~ /rid=\Q$rid\E$/m
	}, 10, 'the access log line');
	like($access, qr/"GET \/api\/health HTTP\/1\.1" 200 .* rid=\Q$rid\E$/m,
		"nginx's access log has the same id (it is \$request_id)");

	my $tx2 = $t->json_req(GET => '/api/health');
	isnt(rid($tx2), $rid, 'every request gets its own id');
}

# --- the bad-input sweep ------------------------------------------------------
#
# One row per request: method, path, headers (AUTH: a valid token), body
# (a reference: sent as JSON; a string: as it is, with
# Content-Type: application/json unless headers say otherwise; undef:
# none), expected status, error code, field; `allow` for 405s.

my $deep = sub { my $n = shift; '{"email":' . ('[' x $n) . (']' x $n) . '}' };
my $pad = sub {    # a valid sign-in body of exactly $n bytes
	my $n = shift;
	my $b = '{"email":"nobody@example.com","password":"wrong password"}';
	return $b . (' ' x ($n - length $b));
};
my $JSON = { 'Content-Type' => 'application/json' };
my $SIGNIN = '/api/auth/signin';

my @rows = (
	# path and method
	{ name => 'unknown path', method => 'GET', path => '/api/nope', status => 404, code => 'not_found' },
	{ name => 'unknown deeper path', method => 'GET', path => '/api/health/more', status => 404, code => 'not_found' },
	{ name => 'the /api/ root', method => 'DELETE', path => '/api/', status => 404, code => 'not_found' },
	{ name => 'encoded slash is not a separator', method => 'GET', path => '/api%2Fhealth', status => 404, code => 'not_found' },
	{ name => 'unknown path with a token', method => 'POST', path => '/api/conversations/x/y/z', headers => 'AUTH', body => {}, status => 404, code => 'not_found' },
	{ name => 'POST health', method => 'POST', path => '/api/health', status => 405, code => 'method_not_allowed', allow => 'GET' },
	{ name => 'PATCH a conversation', method => 'PATCH', path => "/api/conversations/$UUID", headers => 'AUTH', status => 405, code => 'method_not_allowed', allow => 'GET, PUT, DELETE' },
	{ name => 'GET sign-in', method => 'GET', path => $SIGNIN, status => 405, code => 'method_not_allowed', allow => 'POST' },
	{ name => 'DELETE profile', method => 'DELETE', path => '/api/user/profile', headers => 'AUTH', status => 405, code => 'method_not_allowed', allow => 'GET, PUT' },
	{ name => 'malformed id', method => 'GET', path => '/api/conversations/not-a-uuid', headers => 'AUTH', status => 404, code => 'not_found' },
	{ name => 'id with a suffix', method => 'GET', path => "/api/conversations/${UUID}0", headers => 'AUTH', status => 404, code => 'not_found' },
	{ name => 'malformed id before auth', method => 'DELETE', path => '/api/conversations/not-a-uuid', status => 404, code => 'not_found' },
	{ name => 'malformed id in a sub-path', method => 'POST', path => '/api/conversations/123/messages', headers => 'AUTH', body => { content => 'hi' }, status => 404, code => 'not_found' },

	# auth
	{ name => 'no token', method => 'GET', path => '/api/user/profile', status => 401, code => 'unauthorized' },
	{ name => 'garbage token', method => 'GET', path => '/api/user/profile', headers => { Authorization => 'Bearer not.a.jwt' }, status => 401, code => 'unauthorized' },
	{ name => 'Basic auth', method => 'GET', path => '/api/user/profile', headers => { Authorization => 'Basic dXNlcjpwYXNz' }, status => 401, code => 'unauthorized' },

	# body size (the app's 64 KiB, nginx lets up to 128 KiB through)
	{ name => 'body of exactly 64 KiB', method => 'POST', path => $SIGNIN, body => $pad->(64 * 1024), status => 401, code => 'invalid_credentials' },
	{ name => 'body of 64 KiB + 1', method => 'POST', path => $SIGNIN, body => $pad->(64 * 1024 + 1), status => 413, code => 'payload_too_large' },
	{ name => 'body of 100 KiB', method => 'POST', path => $SIGNIN, body => $pad->(100 * 1024), status => 413, code => 'payload_too_large' },
	{ name => 'big body, auth route first', method => 'PUT', path => '/api/user/profile', body => $pad->(100 * 1024), status => 413, code => 'payload_too_large' },

	# media type
	{ name => 'text/plain', method => 'POST', path => $SIGNIN, headers => { 'Content-Type' => 'text/plain' }, body => '{"email":"a@b.co","password":"x"}', status => 415, code => 'unsupported_media_type' },
	{ name => 'form data', method => 'POST', path => $SIGNIN, headers => { 'Content-Type' => 'application/x-www-form-urlencoded' }, body => 'email=a@b.co&password=x', status => 415, code => 'unsupported_media_type' },
	{ name => 'a longer media type', method => 'POST', path => $SIGNIN, headers => { 'Content-Type' => 'application/json-patch+json' }, body => '{"email":"a@b.co","password":"x"}', status => 415, code => 'unsupported_media_type' },
	{ name => 'no Content-Type', method => 'POST', path => $SIGNIN, headers => { 'Content-Type' => '' }, body => '{"email":"a@b.co","password":"x"}', status => 415, code => 'unsupported_media_type' },
	{ name => 'JSON with a charset', method => 'POST', path => $SIGNIN, headers => { 'Content-Type' => 'Application/JSON; charset=utf-8' }, body => '{"email":"nobody@example.com","password":"x"}', status => 401, code => 'invalid_credentials' },

	# not JSON
	{ name => 'truncated JSON', method => 'POST', path => $SIGNIN, body => '{"email":', status => 400, code => 'invalid_json' },
	{ name => 'single quotes', method => 'POST', path => $SIGNIN, body => "{'email':'a\@b.co'}", status => 400, code => 'invalid_json' },
	{ name => 'invalid UTF-8', method => 'POST', path => $SIGNIN, body => qq({"email":"a\xff\@b.co","password":"x"}), status => 400, code => 'invalid_json' },
	{ name => 'overlong UTF-8', method => 'POST', path => $SIGNIN, body => qq({"email":"a\xc0\xaf\@b.co","password":"x"}), status => 400, code => 'invalid_json' },
	{ name => 'a \\u0000 escape', method => 'POST', path => $SIGNIN, body => '{"email":"a@b.co","password":"x\u0000y"}', status => 400, code => 'invalid_json' },
	{ name => 'a raw control character', method => 'POST', path => $SIGNIN, body => qq({"email":"a\@b.co","password":"x\x01y"}), status => 400, code => 'invalid_json' },
	{ name => 'nesting 17 deep', method => 'POST', path => $SIGNIN, body => $deep->(16), status => 400, code => 'invalid_json' },
	{ name => 'nesting 16 deep is JSON', method => 'POST', path => $SIGNIN, body => $deep->(15), status => 400, code => 'invalid_input', field => 'email' },
	{ name => 'trailing garbage', method => 'POST', path => $SIGNIN, body => '{"email":"a@b.co","password":"x"} x', status => 400, code => 'invalid_json' },
	{ name => 'two objects', method => 'POST', path => $SIGNIN, body => '{}{}', status => 400, code => 'invalid_json' },
	{ name => 'trailing white space is fine', method => 'POST', path => $SIGNIN, body => qq({"email":"nobody\@example.com","password":"x"} \r\n\t), status => 401, code => 'invalid_credentials' },

	# JSON, but not the input the route takes
	{ name => 'unknown field', method => 'POST', path => $SIGNIN, body => { email => 'a@b.co', password => 'x', remember => \1 }, status => 400, code => 'invalid_input', field => 'remember' },
	{ name => 'wrong type', method => 'POST', path => $SIGNIN, body => { email => 42, password => 'x' }, status => 400, code => 'invalid_input', field => 'email' },
	{ name => 'wrong type (object)', method => 'POST', path => $SIGNIN, body => { email => 'a@b.co', password => { x => 1 } }, status => 400, code => 'invalid_input', field => 'password' },
	{ name => 'null for a required field', method => 'POST', path => $SIGNIN, body => { email => 'a@b.co', password => undef }, status => 400, code => 'invalid_input', field => 'password' },
	{ name => 'missing required field', method => 'POST', path => $SIGNIN, body => { email => 'a@b.co' }, status => 400, code => 'invalid_input', field => 'password' },
	{ name => 'duplicate key', method => 'POST', path => $SIGNIN, body => '{"email":"a@b.co","password":"x","email":"c@d.co"}', status => 400, code => 'invalid_input', field => 'email' },
	{ name => 'empty body', method => 'POST', path => $SIGNIN, body => '', status => 400, code => 'invalid_input', field => 'email' },
	{ name => 'no body, no type', method => 'POST', path => $SIGNIN, status => 400, code => 'invalid_input', field => 'email' },
	{ name => 'empty object', method => 'POST', path => $SIGNIN, body => {}, status => 400, code => 'invalid_input', field => 'email' },
	{ name => 'array body', method => 'POST', path => $SIGNIN, body => '[{"email":"a@b.co","password":"x"}]', status => 400, code => 'invalid_input' },
	{ name => 'string body', method => 'POST', path => $SIGNIN, body => '"email"', status => 400, code => 'invalid_input' },
	{ name => 'null body', method => 'POST', path => $SIGNIN, body => 'null', status => 400, code => 'invalid_input' },
	{ name => 'number body', method => 'POST', path => $SIGNIN, body => '12', status => 400, code => 'invalid_input' },
	{ name => 'unknown field (authenticated)', method => 'PUT', path => '/api/user/profile', headers => 'AUTH', body => { credits => 1000000 }, status => 400, code => 'invalid_input', field => 'credits' },

	# query strings
	{ name => 'bad percent escape in the query', method => 'GET', path => '/api/conversations?limit=%zz', headers => 'AUTH', status => 400, code => 'invalid_input' },
	{ name => 'cut percent escape in the query', method => 'GET', path => '/api/conversations?limit=2%', headers => 'AUTH', status => 400, code => 'invalid_input' },
	{ name => 'invalid UTF-8 in the query', method => 'GET', path => '/api/conversations?q=%ff', headers => 'AUTH', status => 400, code => 'invalid_input' },
	{ name => '%00 in the query', method => 'GET', path => '/api/conversations?q=a%00b', headers => 'AUTH', status => 400, code => 'invalid_input' },
	{ name => 'bad query before auth', method => 'GET', path => '/api/conversations?limit=%zz', status => 400, code => 'invalid_input' },

	# percent-decoded paths
	{ name => 'percent-encoded letters', method => 'GET', path => '/api/%68ealth', status => 200 },
	{ name => 'percent-encoded segment', method => 'GET', path => '/api/user/%70rofile', headers => 'AUTH', status => 200 },
);

for my $row (@rows) {
	my $name = $row->{name};
	my %h = ref $row->{headers} ? %{ $row->{headers} } : $row->{headers} ? %$AUTH : ();
	my $body = $row->{body};
	$h{'Content-Type'} //= 'application/json' if defined $body && !ref $body;
	delete $h{'Content-Type'} if defined $h{'Content-Type'} && $h{'Content-Type'} eq '';
	my $tx = $t->json_req($row->{method} => $row->{path}, $body, \%h);
	subtest "$name: $row->{method} $row->{path} -> $row->{status}" => sub {
		is($tx->res->code, $row->{status}, 'status') or diag $tx->res->body;
		std_headers($tx, $name);
		if ($row->{status} >= 400) {
			error_shape($tx, $name, $row->{code}, $row->{field});
		}
		if ($row->{status} == 401) {
			is_deeply($tx->res->headers->every_header('WWW-Authenticate'), ['Bearer'],
				'WWW-Authenticate: Bearer');
		} else {
			is($tx->res->headers->header('WWW-Authenticate'), undef, 'no WWW-Authenticate');
		}
		if (defined $row->{allow}) {
			is($tx->res->headers->header('Allow'), $row->{allow}, "Allow: $row->{allow}");
		}
	};
}

# The percent-decoded id reaches the handler.
{
	my $tx = $t->json_req(POST => '/api/conversations', { persona => 'coach', title => 'Decoded' }, $AUTH);
	is($tx->res->code, 201, 'a conversation to look at') or diag $tx->res->body;
	my $id = $tx->res->json('/conversation/id') // '';
	(my $enc = $id) =~ s/-/%2D/g;
	$enc =~ s/^(.)/sprintf '%%%02X', ord $1/e;
	$tx = $t->json_req(GET => "/api/conversations/$enc", undef, $AUTH);
	is($tx->res->code, 200, "GET /api/conversations/$enc") or diag $tx->res->body;
	is($tx->res->json('/conversation/id'), $id, 'the decoded id was used');
	is($tx->res->json('/conversation/title'), 'Decoded', 'the right conversation');
}

# --- 413: the app's and nginx's own ---------------------------------------------

{
	my $tx = $t->json_req(POST => $SIGNIN, $pad->(100 * 1024), $JSON);
	is($tx->res->code, 413, 'app 413 for 100 KiB on a 64 KiB route');
	error_shape($tx, 'app 413', 'payload_too_large');
	my $l = request_log_line(rid($tx));
	is($l->{status}, 413, 'log line: status 413');
	is($l->{path}, $SIGNIN, 'log line: the sign-in route');
	is($l->{method}, 'POST', 'log line: POST');

	$tx = $t->json_req(POST => $SIGNIN, $pad->(200 * 1024), $JSON);
	is($tx->res->code, 413, "nginx's own 413 above its 128 KiB cap");
	error_shape($tx, 'nginx 413', 'payload_too_large');
	std_headers($tx, 'nginx 413');
	# A request after it, once logged, shows the app is past that point.
	request_log_line(rid($t->json_req(GET => '/api/health')));
	is(scalar(log_lines_for(rid($tx))), 0, 'the app never saw it');
}

# --- 204 ------------------------------------------------------------------------

{
	my $v = $t->user;
	my $tx = $t->json_req(POST => '/api/auth/logout', { refresh_token => $v->{refresh_token} });
	is($tx->res->code, 204, 'logout 204');
	is($tx->res->body, '', '204 has no body');
	std_headers($tx, 'logout 204');

	$tx = $t->json_req(OPTIONS => '/api/user/profile', undef, { Origin => 'https://app.example' });
	is($tx->res->code, 204, 'OPTIONS 204');
	std_headers($tx, 'OPTIONS 204');
	is($tx->res->headers->header('Allow'), 'GET, PUT', 'OPTIONS: Allow');
	is($tx->res->headers->header('Access-Control-Allow-Origin'), undef,
		'no CORS_ORIGINS: no Access-Control-Allow-Origin');
}

# --- nginx's 502 while the app is down ---------------------------------------------

{
	$t->allow_log(qr/connect\(\) to unix:\S+ failed/);
	is($t->stop_app, 0, 'the app stops cleanly');
	my $tx = $t->json_req(GET => '/api/health');
	is($tx->res->code, 502, 'app down: nginx answers 502');
	error_shape($tx, 'nginx 502', 'upstream_error');
	std_headers($tx, 'nginx 502');
}

# --- CORS -----------------------------------------------------------------------------

# One thread a worker from here on: a worker accepts connections only
# while it has a thread to spare, so a burst then spreads over both
# workers (the metrics below sum them), where an idle worker would take a
# light load alone.
$t->start_app(env => { CORS_ORIGINS => 'https://app.example, https://two.example',
	MIKY_THREADS => 1 });
{
	my %pre = ('Access-Control-Request-Method' => 'PUT',
		'Access-Control-Request-Headers' => 'authorization, content-type');
	my $tx = $t->json_req(OPTIONS => '/api/user/profile', undef,
		{ Origin => 'https://app.example', %pre });
	my $h = $tx->res->headers;
	is($tx->res->code, 204, 'preflight: 204');
	is($tx->res->body, '', 'preflight: no body');
	std_headers($tx, 'preflight');
	is_deeply($h->every_header('Access-Control-Allow-Origin'), ['https://app.example'],
		'preflight: the origin is echoed once');
	is($h->header('Access-Control-Allow-Methods'), 'GET, PUT', 'preflight: Allow-Methods');
	like($h->header('Access-Control-Allow-Headers') // '', qr/\bAuthorization\b/i, 'preflight: Authorization allowed');
	like($h->header('Access-Control-Allow-Headers') // '', qr/\bContent-Type\b/i, 'preflight: Content-Type allowed');
	like($h->header('Access-Control-Max-Age') // '', qr/^\d+$/, 'preflight: Max-Age');
	like($h->header('Vary') // '', qr/\bOrigin\b/, 'preflight: Vary: Origin');
	is($h->header('Access-Control-Allow-Credentials'), undef, 'no credentials mode (bearer tokens)');

	$tx = $t->json_req(OPTIONS => '/api/user/profile', undef, { Origin => 'https://two.example', %pre });
	is($tx->res->headers->header('Access-Control-Allow-Origin'), 'https://two.example',
		'the second listed origin (after ", ") is echoed');

	for my $origin ('https://evil.example', 'https://app.example.evil.example',
		'https://app.exampl', 'http://app.example', 'null')
	{
		$tx = $t->json_req(OPTIONS => '/api/user/profile', undef, { Origin => $origin, %pre });
		is($tx->res->code, 204, "preflight from $origin: 204");
		is($tx->res->headers->header('Access-Control-Allow-Origin'), undef, "$origin: no ACAO");
		is($tx->res->headers->header('Access-Control-Allow-Methods'), undef, "$origin: no Allow-Methods");
	}

	$tx = $t->json_req(OPTIONS => '/api/nope', undef, { Origin => 'https://app.example', %pre });
	is($tx->res->code, 404, 'preflight of an unknown path: 404');

	$tx = $t->json_req(GET => '/api/user/profile', undef, { Origin => 'https://app.example', %$AUTH });
	is($tx->res->code, 200, 'cross-origin GET');
	is($tx->res->headers->header('Access-Control-Allow-Origin'), 'https://app.example', 'GET: ACAO');
	like($tx->res->headers->header('Access-Control-Expose-Headers') // '', qr/\bX-Request-Id\b/,
		'GET: X-Request-Id is exposed');
	is($tx->res->json('/user/email'), $u->{email}, 'GET: the profile');

	$tx = $t->json_req(GET => '/api/user/profile', undef, { Origin => 'https://app.example' });
	is($tx->res->code, 401, 'cross-origin 401');
	is($tx->res->headers->header('Access-Control-Allow-Origin'), 'https://app.example',
		'errors carry ACAO too (the browser may read them)');

	$tx = $t->json_req(GET => '/api/health', undef, { Origin => 'https://evil.example' });
	is($tx->res->code, 200, 'GET from an unlisted origin is served');
	is($tx->res->headers->header('Access-Control-Allow-Origin'), undef, '... without ACAO');
}

# --- metrics ----------------------------------------------------------------------

my $NAME = qr/[a-zA-Z_:][a-zA-Z0-9_:]*/;
my $NUM  = qr/[+-]?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+|Inf)|NaN/;

# parse_metrics($text) -> (\@samples, \%type, \@problems): the Prometheus
# text format, version 0.0.4.  A sample is {name, family, labels, value}.
sub parse_metrics {
	my $text = shift;
	my (@s, %type, %help, @bad);
	push @bad, 'does not end with a newline' unless $text =~ /\n\z/;
	for my $line (split /\n/, $text) {
		if ($line =~ /^# HELP ($NAME) (\S.*)$/) {
			push @bad, "second HELP for $1" if $help{$1}++;
		} elsif ($line =~ /^# TYPE ($NAME) (counter|gauge|histogram|summary|untyped)$/) {
			push @bad, "second TYPE for $1" if $type{$1};
			$type{$1} = $2;
		} elsif ($line =~ /^($NAME)(?:\{(.*)\})? ($NUM)$/) {
			my ($name, $lab, $val) = ($1, $2 // '', $3);
			my %l;
			pos($lab) = 0;
			while (pos($lab) < length $lab) {
				if ($lab =~ /\G([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(?:,|\z)/gc) {
					push @bad, "label $1 twice: $line" if exists $l{$1};
					$l{$1} = $2;
				} else {
					push @bad, "bad labels: $line";
					last;
				}
			}
			(my $fam = $name) =~ s/_(?:bucket|sum|count)$//;
			$fam = $name unless ($type{$fam} // '') eq 'histogram';
			push @bad, "no TYPE before $line" unless $type{$fam};
			push @bad, "no HELP for $fam" unless $help{$fam};
			push @s, { name => $name, family => $fam, labels => \%l,
				value => $val =~ /Inf/ ? ($val =~ /^-/ ? -9**9**9 : 9**9**9) : $val };
		} else {
			push @bad, "not a comment or a sample: $line";
		}
	}
	return (\@s, \%type, \@bad);
}

# metric(\@samples, $name, %labels): the sum of the matching samples' values
# (undef if none matches).
sub metric {
	my ($s, $name, %want) = @_;
	my @m = grep {
		my $x = $_;
		$x->{name} eq $name && !grep { ($x->{labels}{$_} // "\0") ne $want{$_} } keys %want
	} @$s;
	return undef unless @m;    ## no critic
	my $sum = 0;
	$sum += $_->{value} for @m;
	return $sum;
}

sub scrape {
	my $tx = $t->json_req(GET => '/api/metrics');
	is($tx->res->code, 200, 'GET /api/metrics 200') or diag $tx->res->body;
	return ($tx, parse_metrics($tx->res->body));
}

{
	my ($tx, $s0, $type, $bad) = scrape();
	like($tx->res->headers->content_type, qr{^text/plain; version=0\.0\.4}, 'metrics: Prometheus text type');
	std_headers($tx, 'metrics');
	is_deeply($bad, [], 'every line is a HELP/TYPE comment or a sample');
	is($type->{miky_http_requests_total}, 'counter', 'requests_total is a counter');
	is($type->{miky_http_request_duration_seconds}, 'histogram', 'duration is a histogram');
	is($type->{miky_http_requests_in_flight}, 'gauge', 'in_flight is a gauge');
	is($type->{miky_worker_restarts_total}, 'counter', 'worker_restarts_total is a counter');
	ok(metric($s0, 'miky_http_requests_in_flight') >= 1, 'in flight >= 1 (this very request)');
	is(metric($s0, 'miky_worker_restarts_total'), 0, 'no worker restarted');
	my @req = grep { $_->{name} eq 'miky_http_requests_total' } @$s0;
	ok(@req > 0, 'some requests counted');
	is(scalar(grep { !defined $_->{labels}{route} || ($_->{labels}{status} // '') !~ /^(?:[1-5]\d\d|other)$/ } @req),
		0, 'every requests_total sample has a route and a status label');

	# Counts grow by exactly the requests made.
	my %made = ('GET /api/health' => [200, 7], 'unmatched' => [404, 3],
		'POST /api/auth/signin' => [401, 2], 'GET /api/user/profile' => [200, 4]);
	$t->json_req(GET => '/api/health') for 1 .. 7;
	$t->json_req(GET => "/api/nope$_") for 1 .. 3;
	$t->json_req(POST => $SIGNIN, { email => 'nobody@example.com', password => 'wrong' }) for 1 .. 2;
	$t->json_req(GET => '/api/user/profile', undef, $AUTH) for 1 .. 4;
	my ($tx1, $s1, undef, $bad1) = scrape();
	is_deeply($bad1, [], 'still well-formed');
	for my $route (sort keys %made) {
		my ($status, $n) = @{ $made{$route} };
		my $before = metric($s0, 'miky_http_requests_total', route => $route, status => $status) // 0;
		my $after  = metric($s1, 'miky_http_requests_total', route => $route, status => $status) // 0;
		is($after - $before, $n, "requests_total{route=\"$route\",status=\"$status\"} grew by $n");
	}
	is((metric($s1, 'miky_http_requests_total', route => 'GET /api/metrics', status => 200) // 0)
		- (metric($s0, 'miky_http_requests_total', route => 'GET /api/metrics', status => 200) // 0),
		1, 'the first scrape counts once, after it answered');

	# Histograms: cumulative buckets ending at +Inf = _count = the route's requests.
	my %routes = map { $_->{labels}{route} => 1 }
		grep { $_->{name} eq 'miky_http_request_duration_seconds_bucket' } @$s1;
	ok(keys %routes >= 4, 'histograms for the routes used');
	for my $route (sort keys %routes) {
		my @b = grep { $_->{name} eq 'miky_http_request_duration_seconds_bucket'
			&& $_->{labels}{route} eq $route } @$s1;
		my @problems;
		for my $i (1 .. $#b) {
			my ($le, $prev) = map { $_ eq '+Inf' ? 9**9**9 : $_ } $b[$i]{labels}{le}, $b[$i - 1]{labels}{le};
			push @problems, "le $b[$i]{labels}{le} not above $b[$i-1]{labels}{le}" unless $le > $prev;
			push @problems, "count falls at le=$b[$i]{labels}{le}" if $b[$i]{value} < $b[$i - 1]{value};
		}
		push @problems, 'last bucket is not le="+Inf"' unless @b && $b[-1]{labels}{le} eq '+Inf';
		push @problems, "a bucket before the last is +Inf"
			if grep { $_->{labels}{le} eq '+Inf' } @b[0 .. $#b - 1];
		my $count = metric($s1, 'miky_http_request_duration_seconds_count', route => $route);
		my $sum = metric($s1, 'miky_http_request_duration_seconds_sum', route => $route);
		my $total = metric($s1, 'miky_http_requests_total', route => $route);
		push @problems, "+Inf $b[-1]{value} != _count " . ($count // 'none')
			unless defined $count && @b && $b[-1]{value} == $count;
		push @problems, "_count $count != requests_total $total"
			unless defined $total && defined $count && $total == $count;
		push @problems, 'no or negative _sum' unless defined $sum && $sum >= 0;
		ok(!@problems, "histogram of $route: cumulative, +Inf = _count = requests")
			or diag join "\n", @problems;
	}

	# Sums across workers: requests at once, until both workers served some.
	my $h0 = metric($s1, 'miky_http_requests_total', route => 'GET /api/health', status => 200) // 0;
	my @w = $t->worker_pids;
	is(scalar @w, 2, 'two workers');
	my ($codes, $pids) = $t->spread(\@w, 20);
	my $made = $codes->{200} // 0;
	is_deeply([ sort { $a <=> $b } keys %$pids ], [ sort { $a <=> $b } @w ],
		'both workers served some of the requests');
	ok($made >= 40, "$made health requests made at once, 20 at a time");
	my (undef, $s2) = scrape();
	is((metric($s2, 'miky_http_requests_total', route => 'GET /api/health', status => 200) // 0) - $h0,
		$made, "requests_total grew by $made: the workers' counts are summed");
}

# nginx refuses a request target it cannot parse before choosing a
# location; that 400 has the API's shape and headers too.
for my $path ('/api/conversations/%zz', '/api/x%00y') {
	my $tx = $t->json_req(GET => $path);
	is($tx->res->code, 400, "nginx 400 for $path");
	error_shape($tx, "nginx 400 for $path", 'invalid_input');
	std_headers($tx, "nginx 400 for $path");
}

$t->done;
