# lib.sh — helpers shared by the shell scripts (sourced, not run):
# scripts/test.sh, scripts/dev.sh, bench/run.sh.  ROOT must be set.

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
	perl -MIO::Socket::INET -e '
		my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
			LocalPort => 0, Proto => "tcp") or die "no free port: $!\n";
		print $s->sockport, "\n";'
}

# render_nginx_template TEMPLATE PREFIX PORT SOCKET WEBROOT [USER_LINE]: the
# dev template with its placeholders filled, on stdout.  USER_LINE is the
# nginx `user` directive for its workers (default: `user nobody nogroup;`
# when we are root, none otherwise; see nginx_user_line).
# t/lib/Miky/Test.pm does the same in Perl.
render_nginx_template() {
	local user_line=${6-}
	[[ $# -ge 6 ]] || { [[ $EUID -eq 0 ]] && user_line="user nobody nogroup;"; }
	R_PREFIX=$2 R_PORT=$3 R_SOCKET=$4 R_WEBROOT=$5 R_NGINXDIR=$ROOT/nginx \
	R_USER_LINE=$user_line R_MORE_SERVERS="" \
		perl -pe 's/\@(PREFIX|PORT|SOCKET|WEBROOT|NGINXDIR|USER_LINE|MORE_SERVERS)\@/$ENV{"R_$1"}/g' "$1"
}

# nginx_user_line RUNDIR WEBROOT: as root, nginx's workers run as nobody
# when nobody can reach the socket's directory and read the web root, else
# as the owner of the checkout, who can (a checkout under /root, or any
# directory only its owner may enter).  Not root: no user line.
nginx_user_line() {
	[[ $EUID -eq 0 ]] || return 0
	if runuser -u nobody -- test -x "$1" 2>/dev/null &&
	    { [[ ! -d "$2" ]] || runuser -u nobody -- test -r "$2" -a -x "$2" 2>/dev/null; }; then
		echo "user nobody nogroup;"
	else
		echo "user $(stat -c '%U %G' "$ROOT");"
	fi
}
