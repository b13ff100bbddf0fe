#!/usr/bin/perl
# SMTP needs TLS unless SMTP_URL names this machine's loopback: against a
# plain-text server (the sink offers no STARTTLS) on a non-loopback
# address of this machine, the mailer says EHLO and nothing more -- no
# AUTH, no MAIL FROM, no message, its credentials never sent -- and the
# mail stays queued with the reason logged; the same server on 127.0.0.1
# gets the mail.  `miky check-config` hides the password of SMTP_URL.
# (Which hosts count as loopback is in t/unit/smtp.c.)
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use IO::Socket::INET;
use Miky::Mailer;
use Miky::SMTPSink;
use Miky::Test;

my $t = Miky::Test->new;
my $dbh = $t->dbh;
my $FROM = 'Miky Test <noreply@mail.miky.test>';

# --- check-config ------------------------------------------------------------------

{
	my ($rc, $out) = $t->run_miky({ SMTP_URL => 'smtp://mailer:S3cret-pw@smtp.example.com:587' }, 'check-config');
	is($rc, 0, 'check-config with an SMTP_URL carrying credentials');
	like($out, qr{^SMTP_URL=smtp://mailer:\(hidden\)\@smtp\.example\.com:587$}m, 'shows the URL, the password hidden');
	unlike($out, qr/S3cret/, 'never the password');
}

# --- a plain-text server on loopback gets the mail ----------------------------------------

my $local = Miky::SMTPSink->new(dir => $t->dir . '/sink-local');
my $m = start_mailer($t, SMTP_URL => $local->url, MAIL_FROM => $FROM, MIKY_MAIL_RETRY_BASE_S => 1);
$t->signup(email => 'plain-local@example.com');
ok($local->wait_for_messages(to => 'plain-local@example.com'), 'loopback, no STARTTLS offered: the mail is delivered');
stop_mailer($m);

# --- the same server on a non-loopback address: nothing is sent -----------------------------

# An address of this machine that is not loopback: the source address
# of a route out (a UDP "connect" sends nothing).
my $ip = do {
	my $s = IO::Socket::INET->new(Proto => 'udp', PeerAddr => '192.0.2.1', PeerPort => 9);
	my $a = $s ? $s->sockhost : undef;
	defined $a && $a !~ /^(?:127\.|0\.0\.0\.0$)/ ? $a : undef;
};
SKIP: {
	skip 'this machine has no address but loopback', 7 unless $ip;
	my $remote = Miky::SMTPSink->new(dir => $t->dir . '/sink-remote', host => $ip);
	(my $url = $remote->url) =~ s{^smtp://}{smtp://mailer:S3cret-pw\@};
	$m = start_mailer($t, SMTP_URL => $url, MAIL_FROM => $FROM, MIKY_MAIL_RETRY_BASE_S => 60);
	$t->signup(email => 'plain-remote@example.com');
	my $line = $t->wait_for(sub {
		(grep { ($_->{msg} // '') eq 'mail failed' } mailer_log_lines($t))[0]
	}, 15, 'the failed attempt');
	ok($line, "smtp://$ip (not loopback) without STARTTLS: the attempt fails");
	like($line->{error} // '', qr/TLS|SSL/i, 'because TLS was required: ' . ($line->{error} // ''));
	my @cmds = $remote->commands;
	ok(@cmds && $cmds[0] =~ /^EHLO /, 'the mailer said EHLO') or diag explain \@cmds;
	ok(!grep({ /^(?:AUTH|MAIL|RCPT|DATA)\b/i } @cmds), 'and then no AUTH, MAIL, RCPT or DATA')
		or diag explain \@cmds;
	is(scalar $remote->messages, 0, 'no message reached the server');
	is($dbh->selectrow_array(q{SELECT status FROM email_outbox WHERE to_addr = 'plain-remote@example.com'}), 'pending',
		'the mail stays queued for a retry');
	unlike(mailer_log($t), qr/S3cret/, 'the password is never logged');
	stop_mailer($m);
}
stop_mailers(qr/"msg":"mail failed"/);

$t->done;
