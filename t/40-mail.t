#!/usr/bin/perl
# Mail: the outbox, `miky mailer`, SMTP (through a local sink) and the dev
# mailbox.  Every mail is parsed as MIME and its link followed.
use strict;
use warnings;
use utf8;

use Test::More;
use lib 't/lib';

use Encode qw(decode encode);
use MIME::Base64 qw(decode_base64);
use Time::HiRes qw(time);
use Time::Local qw(timegm);

use Miky::Mailer;
use Miky::SMTPSink;
use Miky::Test;

binmode(Test::More->builder->$_, ':encoding(UTF-8)') for qw(output failure_output todo_output);

my $t    = Miky::Test->new;
my $dbh  = $t->dbh;
my $sink = Miky::SMTPSink->new(dir => $t->dir . '/sink');
my $FROM = 'Miky Test <noreply@mail.miky.test>';
my %SMTP = (SMTP_URL => $sink->url, MAIL_FROM => $FROM, MIKY_MAIL_RETRY_BASE_S => 1);
my $PASSWORD = 'correct horse battery staple';

# --- helpers -----------------------------------------------------------------

sub post {
	my ($path, $body) = @_;
	return $t->json_req(POST => $path, $body)->res;
}

sub signup {
	my ($email, %o) = @_;
	my $res = post('/api/auth/signup', { email => $email, password => $PASSWORD,
		first_name => 'Anna', last_name => 'Rossi', %o });
	is($res->code, 202, "sign-up of $email: 202") or diag $res->body;
}

# Headers: lower-cased name => [values], folding undone.
sub parse_head {
	my $head = shift;
	(my $unfolded = $head) =~ s/\r\n(?=[ \t])//g;
	my %h;
	for my $line (split /\r\n/, $unfolded) {
		my ($k, $v) = $line =~ /^([!-9;-~]+):[ \t]*(.*?)[ \t]*$/ or return;
		push @{ $h{ lc $k } }, $v;
	}
	return \%h;
}

# A whole message: {head, raw_head, parts => {type => decoded text},
# part_heads => {type => head}}, or undef if it is not the expected shape.
sub parse_mail {
	my $raw = shift;
	my ($head, $body) = split /\r\n\r\n/, $raw, 2;
	my $h = parse_head($head) or return;
	my %mail = (raw => $raw, raw_head => $head, head => $h, parts => {}, part_heads => {});
	my ($ct) = @{ $h->{'content-type'} // [] };
	my ($boundary) = ($ct // '') =~ /^multipart\/alternative;\s*boundary="([^"]+)"$/ or return;
	my @seg = split /\r\n--\Q$boundary\E(?:--)?(?:\r\n|$)/, "\r\n$body";
	shift @seg;    # the preamble
	for my $part (@seg) {
		next unless length $part;
		my ($ph, $pb) = split /\r\n\r\n/, $part, 2;
		my $p = parse_head($ph) or return;
		my ($type) = ($p->{'content-type'}[0] // '') =~ m{^(text/\w+); charset=UTF-8$} or return;
		return unless ($p->{'content-transfer-encoding'}[0] // '') eq 'base64';
		$mail{part_heads}{$type} = $p;
		$mail{parts}{$type} = decode('UTF-8', decode_base64($pb), Encode::FB_CROAK);
	}
	return \%mail;
}

sub header { ($_[0]{head}{ lc $_[1] } // [])->[0] }

# The checks every mail gets on its bytes $raw; returns the text part's
# link and the parsed mail.
sub check_mail {
	my ($raw, %w) = @_;
	my $what = $w{what};
	ok($raw !~ /(?<!\r)\n/ && $raw !~ /\r(?!\n)/, "$what: CRLF line ends only");
	my ($longest) = sort { $b <=> $a } map { length } split /\r\n/, $raw;
	cmp_ok($longest, '<=', 78, "$what: lines of at most 78 characters");
	ok($raw !~ /[^\x00-\x7f]/, "$what: 7-bit");
	my $m = parse_mail($raw);
	ok($m, "$what: multipart/alternative of base64 text/plain and text/html, UTF-8")
		or return diag $raw;
	for my $name (qw(Date From To Subject Message-ID MIME-Version Content-Type)) {
		is(scalar @{ $m->{head}{ lc $name } // [] }, 1, "$what: one $name header");
	}
	my $date = header($m, 'Date');
	my %mon; @mon{qw(Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec)} = 0 .. 11;
	if ($date =~ /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) (\w{3}) (\d{4}) (\d\d):(\d\d):(\d\d) \+0000$/
		&& exists $mon{$2}) {
		my $ts = timegm($6, $5, $4, $1, $mon{$2}, $3);
		cmp_ok(abs($ts - time), '<', 300, "$what: Date is RFC 5322 and now ($date)");
	} else {
		fail("$what: Date is RFC 5322 ($date)");
	}
	my $domain = $w{domain} // 'mail.miky.test';
	like(header($m, 'Message-ID'), qr/^<[0-9a-f]{32}\@\Q$domain\E>$/,
		"$what: Message-ID <random\@domain of MAIL_FROM>");
	is(header($m, 'From'), $w{from} // $FROM, "$what: From is MAIL_FROM");
	is(header($m, 'To'), $w{to}, "$what: To");
	is(header($m, 'MIME-Version'), '1.0', "$what: MIME-Version");
	my $subject = header($m, 'Subject');
	like($subject, qr/^=\?UTF-8\?B\?/, "$what: Subject encoded (RFC 2047)");
	is(decode('MIME-Header', $subject), $w{subject}, "$what: Subject decodes");
	my ($text, $html) = @{ $m->{parts} }{qw(text/plain text/html)};
	ok(defined $text && defined $html, "$what: both alternatives") or return;
	like($text, qr/^\Q$w{hello}\E,\r\n/, "$what: text greets by first name");
	like($text, qr/\Q$_\E/, "$what: text says '$_'") for @{ $w{says} // [] };
	my ($link) = $text =~ m{^(https?://\S+)\r$}m;
	like($link, qr{^\Q${\ $t->base }\E\Q$w{path}\E}, "$what: link under PUBLIC_BASE_URL, to $w{path}");
	like($html, qr/<a href="\Q$link\E"/, "$what: html links the same") if defined $link;
	like($html, qr/<title>\Q$w{subject}\E<\/title>/, "$what: html title");
	return ($link, $m);
}

# The n-th mail (1-based) to $to through the sink, checked.
sub smtp_mail {
	my ($to, $n, %w) = @_;
	my @m = $sink->wait_for_messages(to => $to, count => $n, timeout => 20);
	ok(@m >= $n, "$w{what}: mail $n to $to arrived over SMTP") or return;
	my $mail = $m[ $n - 1 ];
	is($mail->{from}, 'noreply@mail.miky.test', "$w{what}: envelope sender");
	is_deeply($mail->{to}, [$to], "$w{what}: envelope recipient");
	return check_mail($mail->{data}, to => $to, %w);
}

sub outbox {
	my ($to, $template) = @_;
	return $dbh->selectrow_hashref(q{
		SELECT id, status, attempts, message_id, last_error, sent_at IS NOT NULL AS has_sent_at,
		       next_attempt_at > now() AS later
		FROM email_outbox WHERE to_addr = ? AND template = ? ORDER BY id DESC LIMIT 1},
		undef, $to, $template);
}

sub token_of { ($_[0] // '') =~ /#token=([A-Za-z0-9_-]{43})$/ ? $1 : undef }

# (Sent mail is purged by the janitor of `miky serve`: t/37-holds.t.)

my $mailer = start_mailer($t, %SMTP);

# --- sign-up: the verification mail, English -------------------------------------

my $anna = 'anna@example.com';
signup($anna);
my ($link, $m) = smtp_mail($anna, 1, what => 'verify (en)', subject => 'Confirm your email – Miky',
	hello => 'Hi', path => '/verify-email#token=', says => ['valid for 48 hours']);
my $token = token_of($link);
ok($token, 'verify: the link carries the token in its fragment');
unlike($m ? $m->{raw} : '', qr/Anna/, 'verify: no text the signer-up chose (the name) in the mail') if $m;
ok($t->wait_for(sub { !$dbh->selectrow_array(q{SELECT count(*) FROM email_outbox
	WHERE to_addr = ? AND payload->'token' IS NOT NULL}, undef, $anna) }, 10, 'the token to leave'),
	'outbox: once sent, the row keeps no token');
my $res = post('/api/auth/verify-email', { token => $token, password => $PASSWORD });
is($res->code, 200, 'verify: the token from the mail verifies the email') or diag $res->body;
ok($res->json && $res->json->{access_token} && $res->json->{refresh_token}, 'verify: tokens');
is($res->json && $res->json->{user}{email_verified}, 1, 'verify: email_verified') if $res->json;

my $row = outbox($anna, 'verify');
is($row->{status}, 'sent', 'outbox: row sent');
is($row->{attempts}, 1, 'outbox: one attempt');
ok($row->{has_sent_at}, 'outbox: sent_at set');
is($row->{message_id}, header($m, 'Message-ID'), 'outbox: the Message-ID sent is stored') if $m;
my ($line) = grep { ($_->{msg} // '') eq 'mail sent' && ($_->{outbox_id} // 0) == $row->{id} }
	mailer_log_lines($t);
ok($line, 'log: one JSON line for the mail sent');
is($line && $line->{template}, 'verify', 'log: with its template');
is($line && $line->{attempt}, 1, 'log: and attempt');
unlike(mailer_log($t), qr/token=|anna\@|verify-email/, 'log: no link, token or address');

# --- Italian, HTML escaping; another language falls back to English ----------------

my $zoe = 'zoe@example.com';
signup($zoe, first_name => 'Zoë <i>&', language => 'it');
($link, $m) = smtp_mail($zoe, 1, what => 'verify (it)', subject => 'Conferma la tua email – Miky',
	hello => 'Ciao', path => '/verify-email#token=',
	says => ['Il link è valido per 48 ore', 'Il team di Miky']);
if ($m) {
	my $html = $m->{parts}{'text/html'};
	unlike($html, qr/Zo|<i>/, 'html: no name chosen at sign-up');
	like($html, qr/<html lang="it">/, 'html: lang="it"');
}

my $hans = 'hans@example.com';
signup($hans, first_name => 'Hans', language => 'de');
smtp_mail($hans, 1, what => 'verify (de → en)', subject => 'Confirm your email – Miky',
	hello => 'Hi', path => '/verify-email#token=');

# --- forgot password, password changed, already registered --------------------------
# Each language in turn: the reset link works, the new password signs in
# (the reset also verified Zoë's pending email), and a new sign-up with
# the address gets "you already have an account".

for my $c (
	{ lang => 'en', email => $anna, hello => 'Hi Anna', password => "new $PASSWORD",
	  reset => 'Reset your password – Miky', reset_says => 'valid for 1 hour',
	  changed => 'Your password was changed – Miky', changed_says => "If it wasn't you",
	  again => 'You already have an account – Miky', again_says => 'You already have an account' },
	{ lang => 'it', email => $zoe, hello => 'Ciao Zoë <i>&', password => "nuova $PASSWORD",
	  reset => 'Reimposta la tua password – Miky', reset_says => 'Il link è valido per 1 ora',
	  changed => 'La tua password è stata cambiata – Miky', changed_says => "Se invece non l'hai cambiata tu",
	  again => 'Hai già un account – Miky', again_says => 'Hai già un account',
	  signup => { first_name => 'Zoë', language => 'it' } },
) {
	my ($email, $lang, $n) = ($c->{email}, $c->{lang}, scalar $sink->messages(to => $c->{email}));
	$res = post('/api/auth/forgot-password', { email => $email });
	is($res->code, 202, "forgot-password ($lang): 202");
	($link, $m) = smtp_mail($email, ++$n, what => "reset ($lang)", subject => $c->{reset},
		hello => $c->{hello}, path => '/reset-password#token=', says => [ $c->{reset_says} ]);
	if ($m && $lang eq 'it') {
		my $html = $m->{parts}{'text/html'};
		like($html, qr/Ciao Zoë &lt;i&gt;&amp;,/, 'html: the first name is escaped');
		unlike($html, qr/<i>&/, 'html: never raw');
	}
	$res = post('/api/auth/reset-password', { token => token_of($link), password => $c->{password} });
	is($res->code, 200, "reset ($lang): the token from the mail resets the password") or diag $res->body;
	smtp_mail($email, ++$n, what => "password changed ($lang)", subject => $c->{changed},
		hello => $c->{hello}, path => '/forgot-password', says => [ $c->{changed_says} ]);
	$res = post('/api/auth/signin', { email => $email, password => $c->{password} });
	is($res->code, 200, "reset ($lang): the new password signs in");
	signup($email, %{ $c->{signup} // {} });
	($link) = smtp_mail($email, ++$n, what => "already registered ($lang)", subject => $c->{again},
		hello => $c->{hello}, path => '/signin', says => [ $c->{again_says} ]);
	is(token_of($link), undef, "already registered ($lang): no token in the link");
}

# --- the SMTP server refuses connections: retry with back-off ----------------------

$sink->stop;
my $bob = 'bob@example.com';
signup($bob, first_name => 'Bob');
ok($t->wait_for(sub { ($row = outbox($bob, 'verify')) && $row->{attempts} >= 1 }, 15, 'a failed attempt'),
	'refused: the mailer tried');
is($row->{status}, 'pending', 'refused: the row stays pending');
is($row->{attempts}, 1, 'refused: attempts 1');
ok($row->{later}, 'refused: next_attempt_at in the future');
like($row->{last_error} // '', qr/connect/i, 'refused: last_error says why');
ok($mailer->alive, 'refused: the mailer keeps running');
($line) = grep { ($_->{msg} // '') eq 'mail failed' && ($_->{outbox_id} // 0) == $row->{id} }
	mailer_log_lines($t);
ok($line && $line->{error} && $line->{status} eq 'pending' && $line->{retry_in_ms} > 0,
	'log: one JSON line for the failure, with the error and the retry');
my $mid = $row->{message_id};
$sink->start;
(undef, $m) = smtp_mail($bob, 1, what => 'after a retry', subject => 'Confirm your email – Miky',
	hello => 'Hi', path => '/verify-email#token=');
ok($t->wait_for(sub { outbox($bob, 'verify')->{status} eq 'sent' }, 10, 'sent'), 'retry: the row is sent');
cmp_ok(outbox($bob, 'verify')->{attempts}, '>=', 2, 'retry: after two attempts or more');
is(header($m, 'Message-ID'), $mid, 'retry: the Message-ID of the first attempt') if $m;
is(scalar $sink->messages(to => $bob), 1, 'retry: delivered once');

# --- the database connection goes away: the mailer reconnects and listens again ----

my $listening = sub { scalar grep { ($_->{pid} // 0) == $mailer->pid && $_->{msg} eq 'listening on miky_outbox' }
	mailer_log_lines($t) };
is($listening->(), 1, 'the mailer listens once');
ok($dbh->selectrow_array(q{SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
	WHERE application_name = 'miky-mailer'}), 'its connection is terminated');
ok($t->wait_for(sub { $listening->() == 2 }, 10, 'a new LISTEN'), 'the mailer reconnects and listens again');
my $erin = 'erin@example.com';
signup($erin, first_name => 'Erin');
smtp_mail($erin, 1, what => 'after a reconnection', subject => 'Confirm your email – Miky',
	hello => 'Hi', path => '/verify-email#token=');

# --- dead after MIKY_MAIL_MAX_ATTEMPTS --------------------------------------------

is(stop_mailer($mailer), 0, 'SIGTERM: the mailer exits with 0');
$sink->stop;
$mailer = start_mailer($t, %SMTP, MIKY_MAIL_MAX_ATTEMPTS => 2);
my $carol = 'carol@example.com';
signup($carol, first_name => 'Carol');
ok($t->wait_for(sub { ($row = outbox($carol, 'verify')) && $row->{status} eq 'dead' }, 20, 'dead'),
	'a mail that keeps failing is marked dead');
is($row->{attempts}, 2, 'dead: after MIKY_MAIL_MAX_ATTEMPTS attempts');
is(stop_mailer($mailer), 0, 'the mailer exits with 0');
$sink->start;

# --- two mailers at once: every row exactly once ------------------------------------

my @two = (start_mailer($t, %SMTP), start_mailer($t, %SMTP));
my $N = 40;
$dbh->do(q{INSERT INTO email_outbox (to_addr, template, language, payload)
	SELECT 'bulk' || i || '@example.com', 'verify', 'en',
	       jsonb_build_object('token', 'bulk' || i)
	FROM generate_series(1, ?) i}, undef, $N);
ok($t->wait_for(sub {
	$dbh->selectrow_array(q{SELECT count(*) FROM email_outbox WHERE to_addr LIKE 'bulk%' AND status = 'sent'}) == $N
}, 60, "$N rows sent"), "two mailers: all $N rows sent");
my %got;
$got{ $_->{to}[0] }++ for grep { $_->{to}[0] =~ /^bulk/ } $sink->messages;
is(scalar keys %got, $N, "two mailers: $N recipients reached");
is((grep { $_ != 1 } values %got), 0, 'two mailers: each exactly once');
my %bulk = map { $_ => 1 }
	@{ $dbh->selectcol_arrayref(q{SELECT id FROM email_outbox WHERE to_addr LIKE 'bulk%'}) };
my (%by, %sent_ids);
for my $l (grep { ($_->{msg} // '') eq 'mail sent' } mailer_log_lines($t)) {
	$sent_ids{ $l->{outbox_id} }++;
	$by{ $l->{pid} }++ if $bulk{ $l->{outbox_id} };
}
is((grep { $_ != 1 } values %sent_ids), 0, 'log: each row logged as sent once');
note('rows sent per mailer: ' . join ', ', map { 'pid ' . $_->pid . ': ' . ($by{ $_->pid } // 0) } @two);
is(stop_mailer($_), 0, 'the mailer exits with 0') for @two;

# --- no SMTP_URL: the dev mailbox ----------------------------------------------------

my $box = $t->dir . '/mailbox-new';
$mailer = start_mailer($t, SMTP_URL => undef, MAIL_FROM => undef, MIKY_MAIL_DIR => $box);
ok(-d $box, 'mailbox: made when missing');
is((stat $box)[2] & 07777, 0700, 'mailbox: mode 0700');
my $dave = 'dave@example.com';
signup($dave, first_name => 'Dave');
my $file;
ok($t->wait_for(sub {
	$row = outbox($dave, 'verify');
	$row && -f ($file = "$box/$row->{id}-verify.eml");
}, 15, 'the .eml file'), 'mailbox: <outbox id>-<template>.eml appears');
if ($file && -f $file) {
	open my $fh, '<:raw', $file or die "$file: $!";
	my $raw = do { local $/; <$fh> };
	($link) = check_mail($raw, what => 'mailbox', to => $dave,
		from => 'Miky <no-reply@miky.invalid>', domain => 'miky.invalid',
		subject => 'Confirm your email – Miky', hello => 'Hi', path => '/verify-email#token=');
	$res = post('/api/auth/verify-email', { token => token_of($link), password => $PASSWORD });
	is($res->code, 200, 'mailbox: its link verifies');
}
ok($t->wait_for(sub { outbox($dave, 'verify')->{status} eq 'sent' }, 5, 'sent'), 'mailbox: the row is sent');
my $evil = "eve\@example.com\r\nBcc: all\@example.com";
my ($bad) = $dbh->selectrow_array(q{INSERT INTO email_outbox (to_addr, template, payload)
	VALUES (?, 'reset', '{"first_name": "Eve", "token": "x"}') RETURNING id}, undef, $evil);
ok($t->wait_for(sub { ($row = outbox($evil, 'reset')) && $row->{status} ne 'pending' }, 10, 'eve'),
	'a row that can never be sent is handled');
is($row->{status}, 'dead', 'a header that would carry a line break: dead at once');
is($row->{attempts}, 1, 'dead at once: after one attempt');
like($row->{last_error} // '', qr/control/, 'dead at once: last_error says why');
ok(!$dbh->selectrow_array(q{SELECT payload->'token' IS NOT NULL FROM email_outbox WHERE id = ?}, undef, $bad),
	'dead: the row keeps no token either');
ok(!-e "$box/$bad-reset.eml", 'dead at once: nothing written');
opendir my $d, $box or die "$box: $!";
is_deeply([ grep { /^\./ && !/^\.\.?$/ } readdir $d ], [], 'mailbox: no temporary file left');
is(stop_mailer($mailer), 0, 'the mailer exits with 0');

stop_mailers();
$sink->stop;
$t->done;
