/*
 * lib/password.c: argon2id PHC strings with the OWASP parameters, hash
 * then verify, mismatches, malformed stored hashes, and password_burn,
 * which must spend a real verification (its fixed hash must be valid,
 * or an unknown email would answer faster than a wrong password).
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/password.h"
#include "t/unit/tap.h"

#define PHC_PREFIX	"$argon2id$v=19$m=19456,t=2,p=1$"

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/*
 * Runs password_burn with stderr sent to a temporary file; returns how
 * many bytes it logged (the log goes to fd 2), or -1.
 */
static long
burn_logged(const char *pw, double *ms)
{
	char path[] = "/tmp/miky-password-t-XXXXXX";
	int fd, saved;
	double t0;
	off_t n;

	if ((fd = mkstemp(path)) < 0)
		return -1;
	unlink(path);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	t0 = now_ms();
	password_burn(pw);
	*ms = now_ms() - t0;
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = lseek(fd, 0, SEEK_END);
	close(fd);
	return (long)n;
}

/* Sends the log (fd 2) to /dev/null while on, for expected errors. */
static void
quiet(int on)
{
	static int saved = -1;
	int fd;

	fflush(stderr);
	if (on && saved < 0 && (fd = open("/dev/null", O_WRONLY)) >= 0) {
		saved = dup(2);
		dup2(fd, 2);
		close(fd);
	} else if (!on && saved >= 0) {
		dup2(saved, 2);
		close(saved);
		saved = -1;
	}
}

#define FLOOD	24

static enum password_result flood_result[FLOOD];
static bool saturated_seen;

static void *
flood_one(void *arg)
{
	char out[PASSWORD_HASH_MAX];
	int i = (int)(long)arg;

	flood_result[i] = password_hash("flood password", out, sizeof(out));
	return NULL;
}

/*
 * One slot and 24 callers at once: the line holds four a slot, the rest
 * are refused at once (PASSWORD_BUSY), none fails otherwise, and every
 * caller that got in hashed.
 */
static void
test_queue(void)
{
	pthread_t th[FLOOD];
	int i, busy = 0, done = 0, other = 0;

	password_init(1);
	ok(!password_saturated(), "not saturated at rest");
	quiet(1);
	for (i = 0; i < FLOOD; i++)
		pthread_create(&th[i], NULL, flood_one, (void *)(long)i);
	for (i = 0; i < 2000 && !saturated_seen; i++) {
		struct timespec ms = { 0, 1000000 };

		saturated_seen = password_saturated();
		nanosleep(&ms, NULL);
	}
	for (i = 0; i < FLOOD; i++)
		pthread_join(th[i], NULL);
	quiet(0);
	ok(saturated_seen, "saturated while the line is full");
	ok(!password_saturated(), "not saturated once it has drained");
	for (i = 0; i < FLOOD; i++) {
		if (flood_result[i] == PASSWORD_BUSY)
			busy++;
		else if (flood_result[i] == PASSWORD_MATCH)
			done++;
		else
			other++;
	}
	ok(busy > 0, "24 hashes at once on one slot: some refused busy (%d)",
	    busy);
	ok(done >= 1 && done <= FLOOD - busy, "the others hashed (%d)", done);
	is_int(other, 0, "no other outcome");
	password_init(2);
}

/* How many threads of this process run under SCHED_IDLE. */
static int
idle_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	while (d != NULL && (e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' &&
		    sched_getscheduler(atoi(e->d_name)) == SCHED_IDLE)
			n++;
	if (d != NULL)
		closedir(d);
	return n;
}

/*
 * The hashes run on the slots' own threads at idle priority, the
 * caller's thread keeps its own; a forked child (a worker) starts
 * threads of its own and hashes as its parent did.
 */
static void
test_threads(const char *h1, const char *pw)
{
	int status = -1;
	pid_t pid;

	ok(idle_threads() >= 1 && idle_threads() <= 2,
	    "the hashes ran on SCHED_IDLE threads, one a slot (%d)",
	    idle_threads());
	is_int(sched_getscheduler(0), SCHED_OTHER, "the caller's thread "
	    "keeps its priority");
	if ((pid = fork()) == 0) {
		char h[PASSWORD_HASH_MAX];

		_exit(password_verify(h1, pw) == PASSWORD_MATCH &&
		    password_hash(pw, h, sizeof(h)) == PASSWORD_MATCH &&
		    password_verify(h, pw) == PASSWORD_MATCH &&
		    idle_threads() >= 1 ? 0 : 1);
	}
	ok(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0, "a forked child hashes and verifies "
	    "on threads of its own");
}

int
main(void)
{
	char h1[PASSWORD_HASH_MAX], h2[PASSWORD_HASH_MAX], small[40];
	char mangled[PASSWORD_HASH_MAX];
	const char *pw = "correct horse battery staple";
	const char *uni = "\xc3\xb1\xc3\xa7\xc3\xbc\xc3\xa9\xc3\xa5\xc3\xb8"
	    "\xc3\x9f\xc4\x91";	/* ñçüéåøßđ */
	double t0, verify_ms, burn_ms;
	long logged;
	int i;

	password_init(2);

	is_int(password_hash(pw, h1, sizeof(h1)), PASSWORD_MATCH,
	    "password_hash succeeds");
	ok(strncmp(h1, PHC_PREFIX, strlen(PHC_PREFIX)) == 0,
	    "the PHC string is argon2id v=19 with m=19456,t=2,p=1 (%s)", h1);
	/* $argon2id$v=19$m=19456,t=2,p=1$<22 salt chars>$<43 hash chars> */
	is_int(strlen(h1), strlen(PHC_PREFIX) + 22 + 1 + 43,
	    "16-byte salt and 32-byte hash");
	ok(strchr(h1 + strlen(PHC_PREFIX), '$') == h1 + strlen(PHC_PREFIX) + 22,
	    "salt and hash separated by '$'");

	is_int(password_verify(h1, pw), PASSWORD_MATCH, "verify: the right "
	    "password");
	is_int(password_verify(h1, "correct horse battery stapl"),
	    PASSWORD_MISMATCH, "verify: one character short");
	is_int(password_verify(h1, "Correct horse battery staple"),
	    PASSWORD_MISMATCH, "verify: different case");
	is_int(password_verify(h1, ""), PASSWORD_MISMATCH, "verify: empty");

	is_int(password_hash(pw, h2, sizeof(h2)), PASSWORD_MATCH,
	    "the same password again");
	ok(strcmp(h1, h2) != 0, "a fresh salt each time: the strings differ");
	is_int(password_verify(h2, pw), PASSWORD_MATCH, "the second hash "
	    "verifies too");

	is_int(password_hash(uni, h2, sizeof(h2)), PASSWORD_MATCH,
	    "a multibyte password hashes");
	is_int(password_verify(h2, uni), PASSWORD_MATCH, "and verifies");
	is_int(password_verify(h2, "nccueaosd"), PASSWORD_MISMATCH, "and its "
	    "ASCII look-alike does not");

	/* These log an argon2 error each, as they should: not shown. */
	quiet(1);
	is_int(password_hash(pw, small, sizeof(small)), PASSWORD_ERROR,
	    "a buffer too small for the PHC string is an error");

	/* Malformed stored strings are errors, not mismatches. */
	is_int(password_verify("", pw), PASSWORD_ERROR, "empty PHC string");
	is_int(password_verify("not a hash", pw), PASSWORD_ERROR,
	    "garbage PHC string");
	is_int(password_verify("$argon2id$v=19$m=19456,t=2,p=1$", pw),
	    PASSWORD_ERROR, "PHC string without salt and hash");
	snprintf(mangled, sizeof(mangled), "%s", h1);
	mangled[strlen(mangled) - 30] = '*';
	is_int(password_verify(mangled, pw), PASSWORD_ERROR, "a '*' inside "
	    "the hash");
	snprintf(mangled, sizeof(mangled), "$argon2i$%s", h1 + 10);
	is_int(password_verify(mangled, pw), PASSWORD_ERROR, "argon2i label "
	    "on an argon2id verifier");
	snprintf(mangled, sizeof(mangled), "$bcrypt$%s", h1 + 10);
	is_int(password_verify(mangled, pw), PASSWORD_ERROR, "an unknown "
	    "algorithm label");
	quiet(0);

	/*
	 * password_burn: no error logged (its fixed hash parses), and it
	 * takes about as long as a real verification.
	 */
	t0 = now_ms();
	for (i = 0; i < 3; i++)
		(void)password_verify(h1, "wrong password");
	verify_ms = (now_ms() - t0) / 3;
	burn_ms = 0;
	logged = 0;
	for (i = 0; i < 3; i++) {
		double ms = 0;
		long n = burn_logged("some password", &ms);

		logged = n < 0 || logged < 0 ? -1 : logged + n;
		burn_ms += ms;
	}
	burn_ms /= 3;
	is_int(logged, 0, "password_burn logs nothing (no argon2 error)");
	ok(burn_ms > verify_ms / 3 && burn_ms < verify_ms * 3,
	    "password_burn takes about as long as a verification "
	    "(%.1f ms vs %.1f ms)", burn_ms, verify_ms);

	test_threads(h1, pw);
	test_queue();
	return tap_done();
}
