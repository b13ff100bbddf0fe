#!/usr/bin/perl
# The systemd units of docs/deploy.md: systemd-analyze accepts them (when
# systemd is there), the services run as the app's user and role, the
# migrations as the owner's, and the nightly timer runs check-ledger; the
# site renderer also works from where `make install` puts it.
use strict;
use warnings;
use Test::More;
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use lib 't/lib';
use Miky::Test;

my $root = $Miky::Test::ROOT;
my $bin = $ENV{MIKY_BIN} // "$root/build/miky";
my $tmp = tempdir('miky-units-XXXXXX', TMPDIR => 1, CLEANUP => 1);
sub slurp { local (@ARGV, $/) = @_; <> }

my %unit = map { (m{([^/]+)$})[0] => slurp($_) } glob("$root/systemd/*.service $root/systemd/*.timer");
ok($unit{$_}, "systemd/$_") for qw(miky.service miky-mailer.service miky-migrate.service
	miky-check-ledger.service miky-check-ledger.timer);

like($unit{'miky-check-ledger.service'}, qr/^ExecStart=\S+ check-ledger\b/m, 'the check runs miky check-ledger');
like($unit{'miky-check-ledger.service'}, qr/^Type=oneshot$/m, 'once per start');
like($unit{'miky-check-ledger.timer'}, qr/^OnCalendar=\S/m, 'the timer has a calendar');
like($unit{'miky-check-ledger.timer'}, qr/^Persistent=true$/m, 'and catches up after downtime');
like($unit{'miky-check-ledger.timer'}, qr/^WantedBy=timers\.target$/m, 'enabled with the timers');
for my $u (qw(miky.service miky-mailer.service miky-check-ledger.service)) {
	like($unit{$u}, qr/^User=miky$/m, "$u runs as miky");
	like($unit{$u}, qr{^EnvironmentFile=/etc/miky/miky\.env$}m, "$u reads miky.env (DATABASE_URL: miky_app)");
}
like($unit{'miky-migrate.service'}, qr/^User=miky-migrate$/m, 'migrations run as their own user');
like($unit{'miky-migrate.service'}, qr/^Environment=MIGRATE_DATABASE_URL=\S+user=miky_owner$/m,
	'connecting as the owner');
unlike($unit{'miky-migrate.service'}, qr{^EnvironmentFile=/etc/miky/miky\.env}m, "without the app's secrets");

SKIP: {
	my $analyze = (grep { -x } '/usr/bin/systemd-analyze', '/bin/systemd-analyze')[0];
	skip 'no systemd-analyze', 1 unless $analyze;
	for my $name (keys %unit) {
		(my $text = $unit{$name}) =~ s{/usr/local/bin/miky}{$bin}g;
		open my $fh, '>', "$tmp/$name" or die;
		print $fh $text;
		close $fh;
	}
	my $out = `'$analyze' verify $tmp/*.service $tmp/*.timer 2>&1`;
	is($? >> 8, 0, 'systemd-analyze verify accepts every unit') or diag $out;
}

# The renderer as installed: $PREFIX/share/miky/{scripts,nginx}.
my $share = "$tmp/share/miky";
make_path("$share/scripts", "$share/nginx/snippets");
system('cp', "$root/scripts/nginx-site.sh", "$share/scripts/") == 0 or die;
system('cp', "$root/nginx/miky.conf", "$share/nginx/") == 0 or die;
my $site = `'$share/scripts/nginx-site.sh' --server-name miky.example.org 2>&1`;
is($? >> 8, 0, 'nginx-site.sh runs from the installed layout') or diag $site;
like($site, qr/server_name miky\.example\.org;/, 'and renders the site');
like($site, qr{server unix:/run/miky/miky\.sock max_fails=1 fail_timeout=5s;}, 'for the default socket');

done_testing;
