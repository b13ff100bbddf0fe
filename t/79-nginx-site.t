#!/usr/bin/perl
# The production nginx site (nginx/miky.conf), rendered for a deployment
# by scripts/nginx-site.sh the way docs/deploy.md does it: `nginx -t`
# accepts it, and run for real (on free ports, a throwaway certificate)
# it serves this test's app over TLS: health, a signed-in request, a
# streamed chat turn, the HTTP to HTTPS redirect, metrics on loopback
# only, nginx's own errors in the API's JSON shape.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test;
use IO::Socket::INET;
use Mojo::JSON qw(decode_json);
use Time::HiRes qw(sleep time);

my $t = Miky::Test->new(env => { MIKY_STANDIN_DELAY_MS => 0 });
my $root = $Miky::Test::ROOT;
my $dir = $t->dir . '/prod';
mkdir $_ for $dir, "$dir/acme", "$dir/logs";
chmod 0755, $dir;
my $nginx = -x '/usr/sbin/nginx' ? '/usr/sbin/nginx' : 'nginx';

sub free_port {
	my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp');
	return $s->sockport;
}
sub sh {
	my ($cmd) = @_;
	my $out = `$cmd 2>&1`;
	return ($? >> 8, $out);
}

# A throwaway certificate for miky.test.
my ($code, $out) = sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
	. " -keyout '$dir/key.pem' -out '$dir/cert.pem' -days 2 -subj /CN=miky.test"
	. " -addext subjectAltName=DNS:miky.test");
is($code, 0, 'a self-signed certificate') or diag $out;
chmod 0644, "$dir/key.pem";

# --- render ------------------------------------------------------------------

my ($http, $https) = (free_port(), free_port());
my $render = join ' ', "'$root/scripts/nginx-site.sh'", '--server-name miky.test',
	"--cert '$dir/cert.pem'", "--key '$dir/key.pem'", "--app 'unix:" . $t->dir . "/miky.sock'",
	"--web '" . $t->_webroot . "'", "--acme '$dir/acme'", "--snippets '$root/nginx/snippets'",
	"--logs '$dir/logs'", "--http-port $http", "--https-port $https", '--no-ipv6';
($code, $out) = sh("$render > '$dir/site.conf'");
is($code, 0, 'scripts/nginx-site.sh renders the site') or diag $out;
my $site = do { local (@ARGV, $/) = "$dir/site.conf"; <> };
like($site, qr/server_name miky\.test;/, 'with its server name');
unlike(join("\n", grep { !/^\s*#/ } split /\n/, $site), qr/miky\.example|\/etc\/ssl\/miky|\/srv\/miky|\/var\/www/,
	'and no example value left');
like($site, qr/\A# Miky: rendered by scripts\/nginx-site\.sh/, 'saying how it was made');
like($site, qr/^upstream miky \{\n    server unix:\S+\/miky\.sock max_fails=1 fail_timeout=5s;\n\}/m,
	'the upstream with passive health checks');

($code, $out) = sh("'$root/scripts/nginx-site.sh' --server-name 'bad name'");
is($code, 2, 'a bad server name is refused');
($code, $out) = sh("'$root/scripts/nginx-site.sh' --server-name x.test --app 'evil; include /etc/passwd'");
is($code, 2, 'an --app that is not an address is refused');

# The site goes in the http{} block of Debian's nginx.conf; this is a
# minimal one like it.
open my $fh, '>', "$dir/nginx.conf" or die;
print $fh <<"EOF";
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    client_body_temp_path $dir/client_body_temp;
    fastcgi_temp_path $dir/fastcgi_temp;
    proxy_temp_path $dir/proxy_temp;
    uwsgi_temp_path $dir/uwsgi_temp;
    scgi_temp_path $dir/scgi_temp;
    include $dir/site.conf;
}
EOF
close $fh;
($code, $out) = sh("$nginx -t -p '$dir/' -c '$dir/nginx.conf' -e '$dir/error.log'");
is($code, 0, 'nginx -t accepts the production site') or diag $out;
like($out, qr/test is successful/, 'test is successful');

# --- serve -------------------------------------------------------------------

($code, $out) = sh("$nginx -p '$dir/' -c '$dir/nginx.conf' -e '$dir/error.log'");
is($code, 0, 'nginx starts with it') or diag $out;
my $pid = $t->wait_for(sub { open my $p, '<', "$dir/nginx.pid" or return 0; (<$p> // '') =~ /(\d+)/ ? $1 : 0 },
	10, 'the pid file');
END { kill 'QUIT', $pid if $pid }

my $curl = "curl -sS --max-time 30 --resolve miky.test:$https:127.0.0.1 --resolve miky.test:$http:127.0.0.2 -k";
sub curl {
	my ($args) = @_;
	my ($c, $o) = sh("$curl -D - $args");
	my ($head, $body) = split /\r\n\r\n/, $o, 2;
	# Skip a 100 Continue.
	($head, $body) = split /\r\n\r\n/, $body, 2 if ($head // '') =~ m{^HTTP/\S+ 100};
	my ($status) = ($head // '') =~ m{^HTTP/\S+ (\d+)};
	return ($status // 0, $head // '', $body // '', $c);
}

my ($status, $head, $body) = curl("https://miky.test:$https/api/health");
is($status, 200, 'GET /api/health over TLS: 200');
is_deeply(eval { decode_json($body) }, { status => 'ok' }, '{"status":"ok"}');
like($head, qr/^strict-transport-security: max-age=\d+/mi, 'with HSTS');
like($head, qr/^x-request-id: [0-9a-f]{32}/mi, 'with X-Request-Id');
like($head, qr/^x-content-type-options: nosniff/mi, 'with nosniff');
like(scalar(`$curl -o /dev/null -w '%{http_version}' https://miky.test:$https/api/health`), qr/^2/,
	'over HTTP/2');

my $u = $t->user(first_name => 'Tia');
($status, $head, $body) = curl("-H 'Authorization: Bearer $u->{access_token}' https://miky.test:$https/api/user/profile");
is($status, 200, 'a signed-in request through the production site');
is(eval { decode_json($body)->{user}{id} }, $u->{id}, 'the right user');

($status, $head, $body) = curl("-N -H 'Authorization: Bearer $u->{access_token}' -H 'Content-Type: application/json'"
	. " --data '{\"content\":\"hello over TLS\",\"stream\":true}' https://miky.test:$https/api/chat/send");
is($status, 200, 'a streamed chat turn');
like($head, qr{^content-type: text/event-stream}mi, 'as server-sent events');
like($body, qr/event: start.*event: delta.*event: done/s, 'start, deltas, done');

($status, $head) = curl("http://miky.test:$http/api/health");
is($status, 301, 'plain HTTP: 301');
like($head, qr{^location: https://miky\.test:$https/api/health\r?$}mi, 'to the same path over HTTPS');

($status, $head, $body) = curl("http://127.0.0.1:$http/api/metrics");
is($status, 200, 'metrics over plain HTTP on loopback');
like($body, qr/^miky_http_requests_total\{/m, 'Prometheus text');
($status, $head, $body) = curl("http://127.0.0.1:$http/api/health");
is($status, 404, 'nothing else on the loopback server');

my $big = 'x' x 300_000;
open $fh, '>', "$dir/big.json" or die;
print $fh qq{{"email":"$big"}};
close $fh;
($status, $head, $body) = curl("-H 'Content-Type: application/json' --data-binary \@$dir/big.json https://miky.test:$https/api/auth/signin");
is($status, 413, "a body over nginx's cap: 413 from nginx");
is(eval { decode_json($body)->{error}{code} }, 'payload_too_large', 'in the API error shape');

# An app that is down: nginx answers 502 in the API's shape.
$t->stop_app;
($status, $head, $body) = curl("https://miky.test:$https/api/health");
is($status, 502, 'the app stopped: 502');
is(eval { decode_json($body)->{error}{code} }, 'upstream_error', 'upstream_error');
$t->start_app;
$t->wait_for(sub { (curl("https://miky.test:$https/api/health"))[0] == 200 }, 10, 'the site back');

kill 'QUIT', $pid;
$t->wait_for(sub { !kill 0, $pid }, 10, 'nginx to stop');
undef $pid;
my $errors = do { local (@ARGV, $/) = "$dir/error.log"; <> } // '';
my @bad = grep { /\[(?:alert|emerg)\]/ || (/\[crit\]/ && !/miky\.sock failed/) } split /\n/, $errors;
is_deeply(\@bad, [], "the production nginx logged no alert, emerg or unexpected crit");

$t->done;
