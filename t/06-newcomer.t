#!/usr/bin/perl
# The newcomer's path: `make run` (scripts/dev.sh up) from a checkout whose
# parent only its owner may enter -- cloned as root into /root, say.  The
# cluster then lives where `postgres` can reach it, nginx's workers run as
# the checkout's owner, and the stack answers: health, the web page, a
# sign-up.  `make stop` (dev.sh down) stops it all.  Root only: that is the
# case at issue (as another user, the parent's mode binds no one else).
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use File::Temp qw(tempdir);
use File::Path qw(remove_tree);
use Cwd qw(abs_path);
use FindBin;
use IO::Socket::INET;
use Mojo::UserAgent;

plan skip_all => 'needs root (the parent directory only root may enter)' if $> != 0;

my $ROOT = abs_path("$FindBin::Bin/..");
my $bin = $ENV{MIKY_BIN} // "$ROOT/build/miky";

sub free_port {
	my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp')
		or die "no free port: $!";
	return $s->sockport;
}

my $tmp = tempdir('miky-newcomer-XXXXXX', TMPDIR => 1, CLEANUP => 0);
my $private = "$tmp/root";
mkdir $private, 0700 or die "$private: $!";
chmod 0700, $private;
my $co = "$private/miky";
mkdir $co or die;
# The checkout as a clone has it: tracked files, plus the binary `make` built.
system("git -C '$ROOT' ls-files -z | (cd '$ROOT' && xargs -0 tar -cf -) | tar -C '$co' -xf -") == 0
	or BAIL_OUT('could not copy the checkout');
system('mkdir', '-p', "$co/build") == 0 or die;
system('cp', $bin, "$co/build/miky") == 0 or die;

my ($http, $pgport) = (free_port(), free_port());
my %env = (PATH => $ENV{PATH}, HOME => $private, LANG => 'C.UTF-8',
	MIKY_HTTP_PORT => $http, MIKY_PG_PORT => $pgport);
my $dev = "$co/scripts/dev.sh";
sub dev {
	my @args = @_;
	my $pid = open(my $fh, '-|') // die "fork: $!";
	if (!$pid) {
		%ENV = %env;
		open STDERR, '>&', \*STDOUT;
		exec $dev, @args or die "exec: $!";
	}
	local $/;
	my $out = <$fh> // '';
	close $fh;
	return ($? >> 8, $out);
}

my ($pgdir) = (dev('pgdir'))[1] =~ /(\S+)/;
unlike($pgdir, qr/^\Q$private\E/, "the cluster goes where postgres may enter ($pgdir)");

my ($rc, $out) = dev('up');
is($rc, 0, 'dev.sh up (make run) from a checkout in a 0700 directory') or diag $out;
my $ua = Mojo::UserAgent->new(request_timeout => 10);
my $base = "http://127.0.0.1:$http";
is($ua->get("$base/api/health")->res->code, 200, 'GET /api/health: 200');
my $page = $ua->get("$base/")->res;
is($page->code, 200, 'GET /: the web page (nginx workers can read web/)');
like($page->headers->content_type // '', qr{^text/html}, 'as HTML');
my $tx = $ua->post("$base/api/auth/signup" => json => { email => 'newcomer@example.com',
	password => 'a newcomer passphrase', first_name => 'New', last_name => 'Comer' });
is($tx->res->code, 202, 'a sign-up through nginx to the app to PostgreSQL: 202');
like(`grep -h '^user ' $co/var/run/nginx.conf 2>/dev/null` // '', qr/^user root /m,
	"nginx's workers run as the checkout's owner");

($rc, $out) = dev('down');
is($rc, 0, 'dev.sh down (make stop)') or diag $out;
ok(!$ua->get("$base/api/health")->res->code, 'nothing answers any more');

remove_tree(dirname_of($pgdir)) if $pgdir =~ m{^/var/lib/miky-dev/[0-9a-f]{12}/pg$};
remove_tree($tmp);

# A cluster stays where it was made.  In a checkout `postgres` may enter,
# the first `up` chooses before var/ exists (so outside it), and `down`,
# `status` and `make psql` came after var/ was made and looked in var/pg:
# `make stop` left PostgreSQL running.
{
	my $open = tempdir('miky-newcomer-open-XXXXXX', TMPDIR => 1, CLEANUP => 1);
	chmod 0755, $open;
	system('cp', '-r', "$ROOT/scripts", "$open/scripts") == 0 or die;
	my $where = sub { my $o = `env -i PATH='$ENV{PATH}' $open/scripts/dev.sh pgdir 2>&1`; chomp $o; $o };
	my $first = $where->();
	SKIP: {
		skip "postgres may not enter $open", 2 if $first !~ m{^/var/lib/miky-dev/[0-9a-f]{12}/pg$};
		system('mkdir', '-p', "$first/data", "$open/var") == 0 or die;
		system('touch', "$first/data/PG_VERSION") == 0 or die;
		chmod 0755, "$open/var";
		is($where->(), $first, 'var/ made after the cluster: the cluster is still found where it is');
		remove_tree(dirname_of($first));
		system('mkdir', '-p', "$open/var/pg/data") == 0 or die;
		system('touch', "$open/var/pg/data/PG_VERSION") == 0 or die;
		is($where->(), "$open/var/pg", 'a cluster in var/pg is found there');
	}
}

sub dirname_of { (my $d = shift) =~ s{/[^/]+$}{}; $d }

done_testing;
