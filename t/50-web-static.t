# nginx serving web/: caching, gzip, the CSP, index.html for the app's
# screens and a 404 for a missing file -- with /api/ untouched.  The app
# itself in a browser: t/51-web-browser.t.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test;

my $t = Miky::Test->new;
my $ua = $t->ua;
my $vendor = (glob "$Miky::Test::ROOT/web/vendor/marked-*.js")[0]
	or BAIL_OUT('web/vendor/ is empty: run make vendor');
$vendor =~ s{.*/web/}{/};

my $csp = qr/default-src 'self'; script-src 'self'; style-src 'self';/;

# get($path, %headers): the response as nginx sent it (Mojo would
# otherwise ask for gzip, decompress it and drop Content-Encoding).
sub get {
	my ($path, %h) = @_;
	$h{'Accept-Encoding'} //= 'identity';
	my $tx = $ua->build_tx(GET => $t->url($path) => \%h);
	$tx->res->content->auto_decompress(0);
	return $ua->start($tx)->res;
}

# index.html, directly and as every screen of the app.
for my $path ('/', '/index.html', '/chat', '/chat/0b3e9c52-3c8e-4c55-9a39-0bd1f6c3b1ee', '/verify-email', '/signup?ref=ABCDEFGH') {
	my $res = get($path);
	is($res->code, 200, "$path: 200");
	like($res->body, qr{<script type="module" src="/js/main.js"></script>}, "$path: the app's index.html");
	is($res->headers->cache_control, 'no-cache', "$path: Cache-Control: no-cache");
	like($res->headers->header('Content-Security-Policy') // '', $csp, "$path: the CSP");
	is($res->headers->header('X-Frame-Options'), 'DENY', "$path: X-Frame-Options");
}
my $index = get('/');
unlike($index->headers->header('Content-Security-Policy'), qr/unsafe-inline|unsafe-eval|\*/, 'the CSP allows nothing inline, no eval, no wildcard');
like($index->headers->header('Content-Security-Policy'), qr/connect-src 'self'/, 'API calls to this origin only');
like($index->headers->header('Content-Security-Policy'), qr/media-src 'self' blob:/, 'recorded voice from blob: URLs');
like($index->headers->header('Permissions-Policy'), qr/microphone=\(self\)/, 'the microphone for this origin');
unlike($index->body, qr{<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=}i, 'index.html has no inline script, style or handler');

# The app's own modules: revalidated on every load, 304 when unchanged.
my $js = get('/js/main.js');
is($js->code, 200, '/js/main.js: 200');
like($js->headers->content_type, qr{^application/javascript}, 'as JavaScript');
is($js->headers->cache_control, 'no-cache', 'revalidated (no-cache)');
ok(my $etag = $js->headers->etag, 'with an ETag');
is(get('/js/main.js', 'If-None-Match' => $etag)->code, 304, 'unchanged: 304');
like(get('/css/app.css')->headers->content_type, qr{^text/css}, '/css/app.css is CSS');

# The vendored libraries carry their version: cached for a year.
my $v = get($vendor);
is($v->code, 200, "$vendor: 200");
is($v->headers->cache_control, 'public, max-age=31536000, immutable', "$vendor: immutable for a year");
is(get('/vendor/index.js')->headers->cache_control, 'no-cache', '/vendor/index.js (unversioned): no-cache');

# gzip for text, when asked for.
my $gz = get('/js/screens/chat.js', 'Accept-Encoding' => 'gzip');
is($gz->headers->content_encoding, 'gzip', 'JavaScript is gzipped');
like($gz->headers->vary // '', qr/Accept-Encoding/, 'with Vary: Accept-Encoding');
is(get('/', 'Accept-Encoding' => 'gzip')->headers->content_encoding, 'gzip', 'index.html is gzipped');
is(get('/js/screens/chat.js')->headers->content_encoding, undef, 'not without Accept-Encoding');

# A missing file under the asset directories is a 404, never index.html
# (which a browser would then run as a module, or cache as a style sheet).
for my $path ('/js/nope.js', '/css/nope.css', '/vendor/marked-0.0.0.js', '/img/nope.svg') {
	my $res = get($path);
	is($res->code, 404, "$path: 404");
	unlike($res->body, qr/main\.js/, "$path: not the app");
}
is(get('/.git/config')->code, 404, 'no dotfiles');
is(get('/.env')->code, 404, 'no dotfiles at the root');

# /api/ is the app's, as before: JSON, no-store, never gzipped.
my $api = get('/api/health', 'Accept-Encoding' => 'gzip');
is($api->code, 200, '/api/health: 200');
is($api->headers->cache_control, 'no-store', '/api/: no-store');
is($api->headers->content_encoding, undef, '/api/: never gzipped');
my $nf = get('/api/nope');
is($nf->code, 404, 'an unknown /api/ path is the app\'s 404');
is($nf->json('/error/code'), 'not_found', 'in the API\'s shape, not index.html');

$t->done;
