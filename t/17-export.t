#!/usr/bin/perl
# GET /api/user/export streams: an account with tens of megabytes of
# messages, over a thousand conversations, ledger rows and referrals
# (more than a page of each, with ties on created_at that the keyset
# must break by id) comes back as one valid JSON document, complete and
# in order, sent in pieces (chunked, no Content-Length) by a worker
# whose peak memory grows by far less than the document.  A small export
# keeps its Content-Length.  Nobody else's rows appear, a client that
# leaves mid-export leaves the worker serving, and an export that fails
# after its first byte ends its transfer cut short (no last chunk), never
# as if it were whole.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Miky::Test;
use IO::Socket::INET;
use Mojo::JSON qw(decode_json);
use Time::HiRes qw(time);

# One worker, so its memory can be read.
my $t = Miky::Test->new(workers => 1, threads => 4);
my $dbh = $t->dbh;
my ($worker) = $t->worker_pids;

sub export_of { $t->json_req(GET => '/api/user/export', undef, $t->auth($_[0])) }
sub rss_peak_kb {
	open my $fh, '<', "/proc/$worker/status" or return;
	while (<$fh>) { return $1 if /^VmHWM:\s+(\d+) kB/ }
	return;
}

# --- a small export: one piece, with its length ---------------------------------

my $s = $t->user(first_name => 'Small');
{
	my $tx = export_of($s);
	is($tx->res->code, 200, 'a small export: 200');
	ok(defined $tx->res->headers->content_length, 'sent whole, with a Content-Length');
	my $e = decode_json($tx->res->body);
	is_deeply([ sort keys %$e ], [ sort qw(exported_at profile conversations ledger transactions referrals) ],
		'the document\'s members');
	is_deeply($e->{conversations}, [], 'no conversations');
	is(scalar @{ $e->{ledger} }, 1, 'the sign-up grant');
}

# --- a big account ------------------------------------------------------------------

my $x = $t->user(first_name => 'Big');
my $y = $t->user(first_name => 'Other');
my $uid = $x->{id};
# Text with what escaping must handle, cut across pieces anywhere.
my $TEXT = join '', map { "line $_: \"quoted\" \\ back\\slash, tab\t, é ü € 😀 \x{2028}\n" } 1 .. 40;
my $NCONV = 1200;
$dbh->begin_work;
# 1,200 conversations made in one statement: one created_at for all.
$dbh->do(q{INSERT INTO conversations (user_id, title, persona)
	SELECT ?, 'conv ' || g, 'general' FROM generate_series(1, ?) g}, undef, $uid, $NCONV);
my @big = @{ $dbh->selectcol_arrayref(q{SELECT id FROM conversations WHERE user_id = ?
	ORDER BY created_at, id LIMIT 3}, undef, $uid) };
# Two conversations of 3,000 long messages each; a third of 1,100
# messages sharing one created_at.
for my $c (@big[0, 1]) {
	$dbh->do(q{INSERT INTO messages (conversation_id, user_id, sender, content, persona)
		SELECT ?, ?, CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END,
		'#' || g || ' ' || ?, 'general' FROM generate_series(1, 3000) g}, undef, $c, $uid, $TEXT);
}
$dbh->do(q{INSERT INTO messages (conversation_id, user_id, sender, content, persona, created_at)
	SELECT ?, ?, 'user', 'tie ' || g, 'general', '2024-01-01 00:00:00+00' FROM generate_series(1, 1100) g},
	undef, $big[2], $uid);
# One message in every other conversation.
$dbh->do(q{INSERT INTO messages (conversation_id, user_id, sender, content, persona)
	SELECT id, user_id, 'user', 'hello ' || title, 'general' FROM conversations
	WHERE user_id = ? AND id <> ALL(?)}, undef, $uid, \@big);
$dbh->do(q{UPDATE conversations c SET message_count = (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id)
	WHERE user_id = ?}, undef, $uid);
# 1,100 more ledger rows that keep the balance; 700 referrals; 3 payments.
$dbh->do(q{INSERT INTO credit_ledger (user_id, delta, balance_after, reason, ref)
	SELECT ?, CASE WHEN g % 2 = 1 THEN -1 ELSE 1 END, CASE WHEN g % 2 = 1 THEN 99 ELSE 100 END,
	'admin', 'export-test' FROM generate_series(1, 1100) g}, undef, $uid);
$dbh->do(q{INSERT INTO referrals (user_id, referred_first_name, status)
	SELECT ?, 'Friend' || g, 'pending' FROM generate_series(1, 700) g}, undef, $uid);
$dbh->do(q{INSERT INTO transactions (user_id, type, amount, credits, status, pack)
	SELECT ?, 'credits', 4.99, 500, 'completed', 'small' FROM generate_series(1, 3)}, undef, $uid);
# Someone else's rows, which must not appear.
{
	my $yc = $dbh->selectrow_array(q{INSERT INTO conversations (user_id, title, persona)
		VALUES (?, 'NOT-XS-CONVERSATION', 'general') RETURNING id}, undef, $y->{id});
	$dbh->do(q{INSERT INTO messages (conversation_id, user_id, sender, content, persona)
		VALUES (?, ?, 'user', 'NOT-XS-MESSAGE', 'general')}, undef, $yc, $y->{id});
}
$dbh->commit;

my %want = (
	conversations => $dbh->selectcol_arrayref(q{SELECT id FROM conversations WHERE user_id = ? ORDER BY created_at, id},
		undef, $uid),
	ledger => $dbh->selectall_arrayref(q{SELECT delta, reason FROM credit_ledger WHERE user_id = ? ORDER BY id},
		undef, $uid),
	referrals => $dbh->selectcol_arrayref(q{SELECT referred_first_name FROM referrals WHERE user_id = ?
		ORDER BY created_at, id}, undef, $uid),
	transactions => $dbh->selectcol_arrayref(q{SELECT id FROM transactions WHERE user_id = ?
		ORDER BY created_at, id}, undef, $uid),
);
my $nmsg = $dbh->selectrow_array('SELECT count(*) FROM messages WHERE user_id = ?', undef, $uid);
my $bytes = $dbh->selectrow_array('SELECT sum(octet_length(content)) FROM messages WHERE user_id = ?', undef, $uid);
cmp_ok($bytes, '>', 15e6, sprintf('the account holds %.1f MB of messages in %d messages', $bytes / 1e6, $nmsg));

# Warm the worker up, then read its peak memory.
export_of($s) for 1 .. 3;
my $peak0 = rss_peak_kb();

my $t0 = time;
my $tx = export_of($x);
my $took = time - $t0;
is($tx->res->code, 200, 'the big export: 200') or diag substr($tx->res->body, 0, 300);
my $body = $tx->res->body;
note sprintf 'export: %.1f MB in %.2f s', length($body) / 1e6, $took;
like($tx->res->headers->content_type // '', qr{^application/json}, 'JSON');
like($tx->res->headers->header('Content-Disposition') // '', qr/^attachment/, 'as an attachment');
ok($tx->res->headers->header('X-Request-Id'), 'with the usual headers');
my $e = eval { decode_json($body) };
ok(ref $e eq 'HASH', 'one valid JSON document') or diag $@, substr($body, -300);
$e //= {};

is_deeply([ map { $_->{conversation}{id} } @{ $e->{conversations} // [] } ], $want{conversations},
	"all $NCONV conversations, in order (one created_at: paged by id)");
my %by_id = map { $_->{conversation}{id} => $_ } @{ $e->{conversations} // [] };
my $got_msgs = 0;
$got_msgs += @{ $_->{messages} } for values %by_id;
is($got_msgs, $nmsg, "all $nmsg messages");
for my $c (@big) {
	my $ids = $dbh->selectcol_arrayref(q{SELECT id FROM messages WHERE conversation_id = ? ORDER BY created_at, id},
		undef, $c);
	is_deeply([ map { $_->{id} } @{ $by_id{$c}{messages} // [] } ], $ids,
		scalar(@$ids) . ' messages of one conversation, in order');
	ok(!grep({ $_->{conversation_id} ne $c } @{ $by_id{$c}{messages} // [] }), 'each under its conversation');
}
{
	my $m = $by_id{ $big[0] }{messages} // [];
	is($m->[0]{content}, "#1 $TEXT", 'the text survives escaping');
	is($m->[-1]{content}, "#3000 $TEXT", 'to the last message');
	is_deeply([ sort keys %{ $m->[0] // {} } ],
		[ sort qw(id conversation_id sender content persona credits_consumed created_at) ], 'message objects');
	is_deeply([ sort keys %{ $by_id{ $big[0] }{conversation} // {} } ],
		[ sort qw(id title persona message_count created_at updated_at) ], 'conversation objects');
}
is_deeply([ map { [ $_->{delta}, $_->{reason} ] } @{ $e->{ledger} // [] } ], $want{ledger},
	scalar(@{ $want{ledger} }) . ' ledger rows, oldest first');
is_deeply([ map { $_->{first_name} } @{ $e->{referrals} // [] } ], $want{referrals},
	scalar(@{ $want{referrals} }) . ' referrals, in order');
is_deeply([ map { $_->{id} } @{ $e->{transactions} // [] } ], $want{transactions}, 'the transactions');
is($e->{profile}{id}, $uid, 'the profile');
unlike($body, qr/NOT-XS|\Q$y->{id}\E/, 'nothing of anyone else');

# Memory: the worker's peak grew by far less than the document.
SKIP: {
	skip 'under ASan freed memory stays in quarantine', 1
		if `ldd $t->{bin} 2>/dev/null` =~ /libasan/;
	my $peak1 = rss_peak_kb();
	skip 'no /proc status', 1 unless defined $peak0 && defined $peak1;
	my $grew = ($peak1 - $peak0) / 1024;
	cmp_ok($grew, '<', length($body) / 4 / 1048576, sprintf(
		'the worker\'s peak memory grew by %.1f MiB for a %.1f MiB document', $grew, length($body) / 1048576));
}

# --- a client that leaves mid-export -----------------------------------------------

{
	my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port, Proto => 'tcp')
		or die "connect: $!";
	print $sock "GET /api/user/export HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		. "Authorization: Bearer $x->{access_token}\r\n\r\n";
	my $got = '';
	while (length $got < 100_000) {
		my $n = sysread($sock, my $chunk, 65536) or last;
		$got .= $chunk;
	}
	like($got, qr{^HTTP/1\.1 200}, 'an export starts');
	my ($head) = split /\r\n\r\n/, $got, 2;
	like($head, qr/^Transfer-Encoding: chunked\r$/mi, 'streamed: sent chunked');
	unlike($head, qr/^Content-Length:/mi, 'with no Content-Length');
	close $sock;
}
$t->tm->get_ok('/api/health')->status_is(200, 'the app serves after a client left mid-export');

# --- an error after the first byte: the transfer is cut, not ended -------------------

# The referrals come last: locked away, the export streams everything
# before them and then waits; its database session is then ended.
{
	my $locker = $t->lock_table('referrals');
	my $sock = $t->raw_get('/api/user/export', $x);
	my $waiting = $t->wait_for(sub {
		$dbh->selectrow_array(q{SELECT pid FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock' AND query LIKE '%FROM referrals%'})
	}, 30, 'the export to reach the referrals');
	ok($waiting, 'the export streamed up to the referrals and waits');
	$dbh->selectrow_array('SELECT pg_terminate_backend(?)', undef, $waiting) if $waiting;
	$locker->rollback;
	$locker->disconnect;
	my $got = '';
	while (sysread($sock, my $chunk, 1 << 20)) { $got .= $chunk }
	close $sock;
	my ($head, $rest) = split /\r\n\r\n/, $got, 2;
	like($head // '', qr{^HTTP/1\.1 200}, 'it had started: 200');
	cmp_ok(length($rest // ''), '>', 1e6, sprintf('%.1f MB had been sent', length($rest // '') / 1e6));
	unlike($rest // '', qr/\r\n0\r\n\r\n\z/, 'the transfer ends without its last chunk: cut, not complete');
	like($t->log, qr/export cut short after it started/, 'the app logged it');
	like($t->log, qr/"path":"\/api\/user\/export","status":200[^\n]*"error":"aborted"/, 'and its request line says so');
}
$t->tm->get_ok('/api/health')->status_is(200, 'the app serves after an export was cut');
is(export_of($s)->res->code, 200, 'and exports');

is_deeply([ $t->worker_pids ], [ $worker ], 'the same worker throughout');
unlike($t->log =~ s/^.*(?:export cut short|db STMT_EXPORT|terminating connection).*\n//mgr, qr/"level":"(?:error|crit)"/,
	'no other errors in the log');

$t->done;
