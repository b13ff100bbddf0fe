package Miky::FakeOpenAI;

# Miky::FakeOpenAI — an OpenAI-compatible peer for the chat tests.
#
#   my $fake = Miky::FakeOpenAI->new;
#   my $t = Miky::Test->new(env => $fake->env);
#   ... POST /api/chat/send {content => "t1 [[count:4]] hi"} ...
#   my ($req) = $fake->requests(tag => 't1');
#   is($req->{headers}{authorization}, 'Bearer ' . $fake->key);
#
# A Mojolicious daemon in a forked child, on a loopback port the parent
# bound (so there is no race for it), serving
#
#   POST /v1/chat/completions       streamed (SSE) as OpenAI does: a first
#       chunk with the role, one chunk per piece of content, a chunk with
#       finish_reason "stop", a usage chunk with "choices":[] (when
#       stream_options.include_usage), then "data: [DONE]";
#   POST /v1/audio/transcriptions   multipart; answers {"text": ...}.
#
# What it does is chosen per request by markers in the last user message
# (for audio: in the file's bytes), so tests running in parallel share no
# state:
#
#   [[fail500]] [[fail429]]           fail before the first token (429 with
#                                     Retry-After: 1)
#   [[fail500once]] [[fail429once]]   fail the first attempt of this exact
#                                     message, then answer
#   [[hang]]                          send nothing at all, ever
#   [[hangafter:N]]                   send N pieces, then stall
#   [[drop:N]]                        send N pieces, then close the socket
#                                     (no terminating chunk: a cut stream)
#   [[slow:MS]]                       a piece every MS milliseconds
#   [[count:N]]                       N pieces (default 3)
#   [[big:N]]                         N pieces of 668 bytes (x, 333 e-acute,
#                                     y), for answers past 200,000 bytes
#   [[crlf]]                          CRLF line ends
#   [[fail401]]                       answer 401 with a body that looks like
#                                     a stream whose content and error
#                                     message hold UPSTREAM-401-TEXT (none
#                                     of it may reach the app's client)
#   [[errorchunk:N]] [[badchunk:N]]   send N pieces, then a chunk
#                                     {"error":{...UPSTREAM-ERROR-TEXT}}
#                                     (or a malformed one, holding
#                                     UPSTREAM-MALFORMED-TEXT), then one
#                                     more piece "UPSTREAM-AFTER-TEXT", the
#                                     stop chunk and [DONE]
#   [[split]]                         the stream written in fragments of 1
#                                     to 31 bytes, 1 ms apart, that split
#                                     lines, fields and events anywhere
#   [[echo]]                          answer with the message itself, its
#                                     markers removed, in pieces of up to
#                                     8 characters (the web tests' hostile
#                                     Markdown)
#   [[demo]]                          answer with a short Markdown sample
#                                     (a list, a code block), in pieces of
#                                     up to 8 characters (the web tests'
#                                     screenshots)
#
# A marker for audio may sit anywhere in the file's bytes: [[fail500]],
# [[fail429]], [[hang]].
#
# Every request is recorded (path, headers with lower-case names incl.
# authorization, the parsed JSON body or the multipart fields and the
# file's size and SHA-256, the attempt number for that message, what was
# answered) as one JSON line, and one more line when the exchange ends:
# `cancelled` is true when the client went away before the answer was
# complete.  requests() merges them.
#
# The answer to a turn of N pieces is answer(N): piece i is piece(i).
#
# Also here, for the chat tests: parse_sse(), stream_p()/stream_req()
# (an SSE request read as it arrives, with arrival times, optionally cut
# after some deltas) and set_settings() (UPDATE admin_settings and wait
# for the app's settings cache to follow).

use strict;
use warnings;

use parent -norequire, 'Miky::FakePeer';
use Miky::FakePeer;
use Digest::SHA qw(sha256_hex);
use Exporter qw(import);
use Mojo::IOLoop;
use Mojo::JSON qw(decode_json encode_json);
use Mojo::Promise;
use Mojolicious;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(parse_sse stream_p stream_req set_settings piece answer);


# The pieces of an answer: varied on purpose (multi-byte characters,
# quotes, a newline) so that escaping and joining are exercised.
my @WORDS = ('Hello', ' wörld', ' "quoted"', "\nnew line", ' €uro', ' 😀', ' end.');

# The [[demo]] answer (ASCII: this file is not `use utf8`).
our $DEMO = <<'MD';
Here is a **three-step plan** to learn Italian fast:

1. **Listen** every day, even for ten minutes.
2. **Speak** from day one: mistakes are how you learn.
3. **Review** new words with spaced repetition.

```python
words = {"ciao": "hello", "grazie": "thank you"}
```

Shall I turn this into a weekly schedule?
MD
chomp $DEMO;

sub piece {
	my $i = shift;    # 1-based
	my $w = $WORDS[($i - 1) % @WORDS];
	return $i > @WORDS ? "$w$i" : $w;
}

sub answer {
	my $n = shift;
	return join '', map { piece($_) } 1 .. $n;
}

# --- the parent's side ------------------------------------------------------

# new(key => 'sk-test-...') starts the fake; it is stopped at the end
# of the test (or by stop()).
sub new {
	my ($class, %opt) = @_;
	my $self = bless {
		key => $opt{key} // 'sk-test-' . join('', map { ('a' .. 'z', 0 .. 9)[rand 36] } 1 .. 24),
	}, $class;
	return $self->start('fake');
}

sub key  { $_[0]{key} }
sub url  { "http://127.0.0.1:$_[0]{port}/v1" }

# env is what the app needs to talk to this fake.
sub env {
	my $self = shift;
	return { OPENAI_API_KEY => $self->key, OPENAI_BASE_URL => $self->url };
}

# requests(%filter) lists the requests received so far, oldest first:
# { id, t, path, method, headers, json (chat) or form (audio: model,
# language, fields, file => {filename, content_type, size, sha256}),
# last_user, attempt (of this message), markers, answered (status,
# pieces, usage...), and once the exchange ended: end_t, cancelled,
# sent_pieces }.  Filters: path => '/v1/...', tag => 'text in the last
# user message (or the first 200 bytes of the audio)'.
sub requests {
	my ($self, %f) = @_;
	my (%by, @order);
	for my $r ($self->records) {
		my $id = $r->{id};
		if (!$by{$id}) {
			$by{$id} = {};
			push @order, $id;
		}
		%{ $by{$id} } = (%{ $by{$id} }, %$r);
	}
	my @all = map { $by{$_} } @order;
	@all = grep { $_->{path} && $_->{path} eq $f{path} } @all if defined $f{path};
	@all = grep { index($_->{tag_text} // '', $f{tag}) >= 0 } @all if defined $f{tag};
	return @all;
}

# wait_requests(%filter, n => 1, ended => 0, timeout => 10): polls until
# at least n requests match (and, with ended, have ended); returns them.
sub wait_requests {
	my ($self, %f) = @_;
	my $n = delete $f{n} // 1;
	my $ended = delete $f{ended};
	my $timeout = delete $f{timeout} // 10;
	my $deadline = time + $timeout;
	my @r;
	while (1) {
		@r = $self->requests(%f);
		@r = grep { defined $_->{end_t} } @r if $ended;
		last if @r >= $n || time > $deadline;
		sleep 0.05;
	}
	return @r;
}

# --- the child's side -------------------------------------------------------

sub _serve {
	my ($self, $fd, $ppid) = @_;
	my $app = Mojolicious->new;
	$app->log->level('fatal');
	$app->secrets(['fake']);
	$app->max_request_size(64 * 1024 * 1024);
	my $seq = 0;
	my %attempts;    # message -> attempts seen
	my $r = $app->routes;
	$r->post('/v1/chat/completions' => sub { $self->_chat(shift, ++$seq, \%attempts) });
	$r->post('/v1/audio/transcriptions' => sub { $self->_audio(shift, ++$seq, \%attempts) });
	$r->any('/*any' => { any => '' } => sub {
		my $c = shift;
		$self->_record({ id => ++$seq, t => time, path => $c->req->url->path->to_string,
			method => $c->req->method, headers => _headers($c), end_t => time });
		$c->render(status => 404, json => { error => { message => 'no such route', type => 'invalid_request_error' } });
	});
	$self->daemon($app, $fd, $ppid, inactivity_timeout => 600, keep_alive_timeout => 60);
}

sub _headers {
	my $c = shift;
	my $h = $c->req->headers->to_hash;
	return { map { lc($_) => $h->{$_} } keys %$h };
}

sub _markers {
	my $text = shift // '';
	my %m;
	while ($text =~ /\[\[([a-z0-9]+)(?::(\d+))?\]\]/g) {
		$m{$1} = $2 // 1;
	}
	return \%m;
}

# The end of an exchange, whichever way it ended.
sub _on_end {
	my ($self, $c, $id, $state) = @_;
	$c->tx->on(finish => sub {
		$state->{gone} = 1;
		Mojo::IOLoop->remove($_) for @{ $state->{timers} // [] };
		$self->_record({ id => $id, end_t => time,
			cancelled => ($state->{complete} || $state->{dropped}) ? Mojo::JSON::false : Mojo::JSON::true,
			sent_pieces => $state->{sent} // 0 });
	});
}

sub _chat {
	my ($self, $c, $id, $attempts) = @_;
	my $json = eval { decode_json($c->req->body) };
	my ($last) = grep { ($_->{role} // '') eq 'user' } reverse @{ ref $json eq 'HASH' && ref $json->{messages} eq 'ARRAY' ? $json->{messages} : [] };
	my $text = ref $last eq 'HASH' && defined $last->{content} && !ref $last->{content} ? $last->{content} : '';
	my $m = _markers($text);
	my $attempt = ++$attempts->{"chat\0$text"};
	my $state = { sent => 0 };
	my $n = $m->{count} // 3;
	my $inject = $m->{errorchunk} // $m->{badchunk};
	$n = $inject if defined $inject;
	$n = $m->{hangafter} if defined $m->{hangafter} && $m->{hangafter} > $n;
	$n = $m->{drop} if defined $m->{drop} && $m->{drop} > $n;
	my @pieces = map { piece($_) } 1 .. $n;
	if ($m->{demo}) {
		@pieces = $DEMO =~ /(.{1,8})/gs;
		$n = @pieces;
	} elsif ($m->{big}) {
		# N pieces of 668 bytes (334 characters): x, 333 e-acute, y.
		@pieces = map { 'x' . ("\x{e9}" x 333) . 'y' } 1 .. $m->{big};
		$n = @pieces;
	} elsif ($m->{echo}) {
		(my $echo = $text) =~ s/\[\[[a-z0-9]+(?::\d+)?\]\]\s*//g;
		@pieces = $echo =~ /(.{1,8})/gs;
		$n = @pieces;
	}
	my $rec = { id => $id, t => time, path => '/v1/chat/completions',
		method => $c->req->method, headers => _headers($c), json => $json,
		last_user => $text, tag_text => $text, attempt => $attempt,
		markers => $m };
	$c->inactivity_timeout(600);
	$self->_on_end($c, $id, $state);

	my $fail = $m->{fail500} ? 500 : $m->{fail429} ? 429
		: ($m->{fail500once} && $attempt == 1) ? 500
		: ($m->{fail429once} && $attempt == 1) ? 429 : 0;
	if ($m->{fail401}) {
		$rec->{answered} = { status => 401 };
		$self->_record($rec);
		$state->{complete} = 1;
		$c->res->headers->content_type('text/event-stream; charset=utf-8');
		return $c->render(status => 401, data => join '',
			'data: ' . encode_json({ choices => [ { index => 0, delta => { content => 'UPSTREAM-401-TEXT in a delta' } } ] }) . "\n\n",
			'data: ' . encode_json({ error => { message => 'Incorrect API key provided: UPSTREAM-401-TEXT', type => 'invalid_request_error', code => 'invalid_api_key' } }) . "\n\n",
			"data: [DONE]\n\n");
	}
	if ($fail) {
		$rec->{answered} = { status => $fail };
		$self->_record($rec);
		$state->{complete} = 1;
		$c->res->headers->header('Retry-After' => 1) if $fail == 429;
		return $c->render(status => $fail, json => { error => {
			message => $fail == 429 ? 'Rate limit reached (fake)' : 'The server had an error (fake)',
			type => $fail == 429 ? 'rate_limit_error' : 'server_error', code => undef } });
	}
	if ($m->{hang}) {
		$rec->{answered} = { status => 0, hang => 1 };
		$self->_record($rec);
		return $c->render_later;
	}
	my $model = ref $json eq 'HASH' ? $json->{model} // 'gpt-fake' : 'gpt-fake';
	my $prompt_chars = 0;
	$prompt_chars += length($_->{content} // '') for grep { ref eq 'HASH' } @{ $json->{messages} // [] };
	my $usage = { prompt_tokens => 1 + int($prompt_chars / 4), completion_tokens => 2 * $n,
		total_tokens => 1 + int($prompt_chars / 4) + 2 * $n };
	my $cid = "chatcmpl-fake$id";
	if (!(ref $json eq 'HASH' && $json->{stream})) {
		$rec->{answered} = { status => 200, pieces => $n, stream => 0, usage => $usage };
		$self->_record($rec);
		$state->{complete} = 1;
		return $c->render(json => { id => $cid, object => 'chat.completion', created => int time,
			model => $model, choices => [ { index => 0, message => { role => 'assistant',
			content => join('', @pieces) }, finish_reason => 'stop' } ], usage => $usage });
	}
	my $with_usage = ref $json->{stream_options} eq 'HASH' && $json->{stream_options}{include_usage};
	my $eol = $m->{crlf} ? "\r\n" : "\n";
	my $chunk = sub {
		my ($choices, $u) = @_;
		my $o = { id => $cid, object => 'chat.completion.chunk', created => int time,
			model => $model, system_fingerprint => 'fp_fake', choices => $choices };
		$o->{usage} = $u if $with_usage;
		return 'data: ' . encode_json($o) . $eol . $eol;
	};
	my @events = ($chunk->([ { index => 0, delta => { role => 'assistant', content => '' },
		logprobs => undef, finish_reason => undef } ], undef));
	push @events, $chunk->([ { index => 0, delta => { content => $_ },
		logprobs => undef, finish_reason => undef } ], undef) for @pieces;
	if (defined $inject) {
		push @events, defined $m->{errorchunk}
			? 'data: ' . encode_json({ error => { message => 'UPSTREAM-ERROR-TEXT: the server had an error',
				type => 'server_error', param => undef, code => undef } }) . $eol . $eol
			: 'data: {"id":"' . $cid . '","choices":[{"index":0,"delta":{"content":"UPSTREAM-MALFORMED-TEXT' . $eol . $eol;
		push @events, $chunk->([ { index => 0, delta => { content => 'UPSTREAM-AFTER-TEXT' },
			logprobs => undef, finish_reason => undef } ], undef);
	}
	push @events, $chunk->([ { index => 0, delta => {}, logprobs => undef,
		finish_reason => 'stop' } ], undef);
	push @events, $chunk->([], $usage) if $with_usage;
	push @events, "data: [DONE]$eol$eol";
	# Pieces are events[1 .. n]; stop after piece k for hangafter/drop.
	my $stop_after = $m->{hangafter} // $m->{drop};
	$rec->{answered} = { status => 200, pieces => $stop_after // $n, stream => 1,
		usage => $usage, full => !defined $stop_after };
	$self->_record($rec);

	$c->res->headers->content_type('text/event-stream; charset=utf-8');
	$c->res->headers->cache_control('no-cache');
	if (my $stream = Mojo::IOLoop->stream($c->tx->connection)) {
		$stream->handle->setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
	}
	# The units written: whole events, or fragments of them.
	my @units;
	my $last_unit = defined $stop_after ? $stop_after : $#events;    # index in @events
	if ($m->{split}) {
		my $all = join '', @events[0 .. $last_unit];
		my @sizes = (1, 4, 2, 9, 3, 7, 5, 1, 8, 6, 17, 13, 31);
		my $k = 0;
		while (length $all) {
			push @units, [ substr($all, 0, $sizes[$k++ % @sizes], ''), 0 ];
		}
		# Count pieces as they complete: mark the unit that ends each event.
		my ($pos, $ev, $acc) = (0, 0, 0);
		my @ends;    # where each event ends in $all
		for my $e (0 .. $last_unit) {
			$acc += length $events[$e];
			push @ends, $acc;
		}
		for my $u (@units) {
			$pos += length $u->[0];
			while ($ev < @ends && $ends[$ev] <= $pos) {
				$u->[1]++;
				$ev++;
			}
		}
	} else {
		@units = map { [ $events[$_], 1 ] } 0 .. $last_unit;
	}
	my $delay = ($m->{slow} // 0) / 1000;
	my $i = 0;
	my $events_done = 0;
	my $next;
	$next = sub {
		return if $state->{gone};
		if ($i > $#units) {
			if ($m->{drop}) {
				# Not from inside the daemon's write callback.
				$state->{dropped} = 1;
				my $conn = $c->tx->connection;
				Mojo::IOLoop->next_tick(sub {
					my $s = Mojo::IOLoop->stream($conn);
					$s->close if $s;
				});
				return;
			}
			if (defined $m->{hangafter}) {
				return;    # stall: the client's clocks must end it
			}
			$state->{complete} = 1;
			return $c->write_chunk('' => sub { });
		}
		my ($bytes, $ends) = @{ $units[$i++] };
		$c->write_chunk($bytes => sub {
			return if $state->{gone};
			my $before = $events_done;
			$events_done += $ends;
			# Events 1..n are pieces.
			for my $e ($before .. $events_done - 1) {
				$state->{sent}++ if $e >= 1 && $e <= $n;
			}
			my $wait = $m->{split} ? 0.001 : ($ends && $events_done >= 1 && $events_done <= $n ? $delay : 0);
			if ($wait > 0) {
				push @{ $state->{timers} }, Mojo::IOLoop->timer($wait => $next);
			} else {
				$next->();
			}
		});
	};
	$next->();
	return;
}

sub _audio {
	my ($self, $c, $id, $attempts) = @_;
	my $req = $c->req;
	my $up = $req->upload('file');
	my $bytes = $up ? $up->asset->slurp : '';
	my $m = _markers($bytes =~ /(\[\[[a-z0-9]+(?::\d+)?\]\])/ ? $1 : '');
	my $attempt = ++$attempts->{ "audio\0" . sha256_hex($bytes) };
	my $state = {};
	my $rec = { id => $id, t => time, path => '/v1/audio/transcriptions',
		method => $req->method, headers => _headers($c),
		form => {
			model => $req->body_params->param('model'),
			language => $req->body_params->param('language'),
			fields => $req->body_params->names,
			file => $up ? { filename => $up->filename, content_type => $up->headers->content_type,
				size => length $bytes, sha256 => sha256_hex($bytes) } : undef,
		},
		tag_text => substr($bytes, 0, 200), attempt => $attempt, markers => $m };
	$self->_on_end($c, $id, $state);
	$c->inactivity_timeout(600);
	my $fail = $m->{fail500} ? 500 : $m->{fail429} ? 429 : 0;
	if ($fail) {
		$rec->{answered} = { status => $fail };
		$self->_record($rec);
		$state->{complete} = 1;
		return $c->render(status => $fail, json => { error => { message => 'fake failure', type => 'server_error' } });
	}
	if ($m->{hang}) {
		$rec->{answered} = { status => 0, hang => 1 };
		$self->_record($rec);
		return $c->render_later;
	}
	my $text = sprintf 'Fake transcript of %d bytes (%s)', length $bytes, $rec->{form}{language} // 'auto';
	$rec->{answered} = { status => 200, text => $text };
	$self->_record($rec);
	$state->{complete} = 1;
	return $c->render(json => { text => $text });
}

# --- helpers for the chat tests ---------------------------------------------

# parse_sse($text) splits an event stream into [{event, data, json}],
# lines ending in LF, CRLF or CR; `json` is the decoded data (or undef).
sub parse_sse {
	my $text = shift // '';
	my (@ev, %cur, @data);
	for my $line (split /\r\n|\n|\r/, $text, -1) {
		if ($line eq '') {
			if (@data) {
				my $d = join "\n", @data;
				push @ev, { event => $cur{event} // 'message', data => $d,
					json => scalar eval { decode_json($d) } };
			}
			(%cur, @data) = ();
			next;
		}
		next if $line =~ /^:/;
		my ($f, $v) = $line =~ /^([^:]*):? ?(.*)$/s;
		if ($f eq 'data') { push @data, $v }
		elsif ($f eq 'event') { $cur{event} = $v }
	}
	return \@ev;
}

# stream_p($t, $path, $body, \%headers, %opt) sends a request (a ref body
# as JSON) and reads the answer as it arrives.  Resolves to
# { code, headers (Mojo::Headers), raw, json (a JSON answer decoded),
# events => [{event, data, json, t}], t0, t_end, error, cut, t_cut }.
# Options: close_after => N (close the connection after N delta events),
# close_after_s => seconds (close it then, whatever came), on_event =>
# sub ($ev, $result).
sub stream_p {
	my ($t, $path, $body, $headers, %opt) = @_;
	my %h = %{ $headers // {} };
	my $ua = $t->ua;
	my $tx = ref $body
		? $ua->build_tx(POST => $t->url($path) => { 'Content-Type' => 'application/json', %h } => json => $body)
		: $ua->build_tx(POST => $t->url($path) => \%h => $body // '');
	my $res = { raw => '', events => [], t0 => time, cut => 0 };
	my $pending = '';
	my $deltas = 0;
	my $cut;
	$tx->res->content->unsubscribe('read')->on(read => sub {
		my (undef, $bytes) = @_;
		my $now = time;
		$res->{raw} .= $bytes;
		$pending .= $bytes;
		while ($pending =~ s/\A(.*?)(?:\r\n\r\n|\n\n|\r\r)//s) {
			my $ev = parse_sse("$1\n\n")->[0] or next;
			$ev->{t} = $now;
			push @{ $res->{events} }, $ev;
			$opt{on_event}->($ev, $res) if $opt{on_event};
			$deltas++ if $ev->{event} eq 'delta';
			$cut->() if $opt{close_after} && $ev->{event} eq 'delta' && $deltas == $opt{close_after};
		}
	});
	$cut = sub {
		return if $res->{cut};
		$res->{cut} = 1;
		$res->{t_cut} = time;
		my $s = $tx->connection && Mojo::IOLoop->stream($tx->connection);
		$s->close if $s;
	};
	if (my $after = $opt{close_after_s}) {
		my $timer = Mojo::IOLoop->timer($after => $cut);
		$tx->on(finish => sub { Mojo::IOLoop->remove($timer) });
	}
	my $end = sub {
		my $err = shift;
		$res->{code} = $tx->res->code;
		$res->{headers} = $tx->res->headers;
		$res->{error} = $err;
		$res->{t_end} = time;
		$res->{json} = eval { decode_json($res->{raw}) }
			if ($res->{headers}->content_type // '') =~ m{^application/json};
		return $res;
	};
	return $ua->start_p($tx)->then(sub { $end->($tx->error) }, sub { $end->({ message => shift }) });
}

# stream_req(...) is stream_p(...) waited for.
sub stream_req {
	my $res;
	stream_p(@_)->then(sub { $res = shift })->wait;
	return $res;
}

# set_settings($t, key => value, ...) stores the values (Perl data, sent
# as JSON) in admin_settings in one transaction and waits until the
# app's workers have reloaded their cache: the trigger notifies, each
# worker's listener reloads at once; a second is a wide margin.
sub set_settings {
	my ($t, %kv) = @_;
	my $dbh = $t->dbh;
	$dbh->begin_work;
	for my $k (sort keys %kv) {
		my $n = $dbh->do(q{UPDATE admin_settings SET value = ?::jsonb WHERE key = ?},
			undef, encode_json($kv{$k}), $k);
		$dbh->do(q{INSERT INTO admin_settings (key, value) VALUES (?, ?::jsonb)},
			undef, $k, encode_json($kv{$k})) if $n == 0;
	}
	$dbh->commit;
	sleep 1 if $t->app_pid;
	return;
}

1;
