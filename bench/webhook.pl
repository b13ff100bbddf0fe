#!/usr/bin/perl
# webhook.pl — signed Stripe invoice.paid deliveries for the webhook bench,
# one per line: "<Stripe-Signature>\t<body>", signed now as Stripe signs
# (HMAC-SHA256 of "t.body" with the endpoint's secret).
#
#   perl bench/webhook.pl SECRET USERS TRIPLES OUT
#
# Lines come in threes: two new invoices, then a duplicate of the first of
# them -- every other one the same event again (a redelivery), the others
# a new event for the same invoice -- so a third of the deliveries are
# duplicates.  The invoices go to the customers cus_bench_1 .. USERS in
# turn, each a subscription_cycle of the plus plan (price_miky_plus).
use strict;
use warnings;
use Digest::SHA qw(hmac_sha256_hex);

my ($secret, $users, $triples, $out) = @ARGV;
die "usage: webhook.pl SECRET USERS TRIPLES OUT\n" unless $out;
open my $fh, '>', $out or die "$out: $!\n";
my $t = time;
my $end = $t + 30 * 86400;
my $ev = 0;

sub event {
	my ($inv, $user) = @_;
	my $id = sprintf 'evt_bench_%d_%d', $$, ++$ev;
	return qq({"id":"$id","object":"event","type":"invoice.paid","created":$t,"livemode":false,)
		. qq("data":{"object":{"id":"$inv","object":"invoice","customer":"cus_bench_$user",)
		. qq("subscription":"sub_bench_$user","billing_reason":"subscription_cycle","amount_paid":999,)
		. qq("currency":"usd","status":"paid","payment_intent":"pi_$inv","charge":"ch_$inv",)
		. qq("lines":{"object":"list","data":[{"object":"line_item","amount":999,)
		. qq("period":{"start":$t,"end":$end},"price":{"id":"price_miky_plus"}}]}}}});
}

sub line {
	my $body = shift;
	print $fh "t=$t,v1=" . hmac_sha256_hex("$t.$body", $secret) . "\t$body\n";
}

for my $k (1 .. $triples) {
	my ($a, $b) = map { sprintf 'in_bench_%d_%d_%d', $$, $k, $_ } 1, 2;
	my $ua = ($k * 2) % $users + 1;
	my $ea = event($a, $ua);
	line($ea);
	line(event($b, ($k * 2 + 1) % $users + 1));
	line($k % 2 ? $ea : event($a, $ua));
}
close $fh or die "$out: $!\n";
