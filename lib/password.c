#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <argon2.h>

#include "b64.h"
#include "log.h"
#include "num.h"
#include "password.h"
#include "token.h"

#define T_COST		2
#define M_COST		(19 * 1024)	/* KiB */
#define PARALLELISM	1
#define SALT_LEN	16
#define HASH_LEN	32
#define WAIT_SECONDS	3
/* Callers that may wait for a slot, per slot; more are refused at once. */
#define QUEUE_PER_SLOT	4
#define MAX_SLOTS	64
#define PHC_PREFIX	"$argon2id$v=19$"

/*
 * A slot is the right to run one hash, with its own 19 MiB of memory,
 * mapped once (in 2 MiB pages where the kernel gives them) and reused:
 * allocating it per hash costs more in page faults than the hash itself
 * when many threads take turns.  Each slot has its own hashing thread,
 * started on first use in the process; the caller holding the slot
 * hands it the job and waits.
 */
struct slot {
	bool		 busy;		/* held by a caller */
	void		*mem;
	size_t		 size;
	pid_t		 pid;		/* of the process its thread runs in */
	pthread_cond_t	 cv;		/* a job given, or done */
	argon2_context	*job;
	int		 rc;
	bool		 done;
};

struct waiter {
	struct waiter	*next;
};

static pthread_mutex_t	 mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 cv = PTHREAD_COND_INITIALIZER;
static struct slot	 slotv[MAX_SLOTS];
static int		 nslots = 2;
/* Waiters are served in arrival order. */
static struct waiter	*queue, **queue_tail = &queue;
static int		 nwaiting;

/* The slot whose memory argon2 uses in this thread. */
static _Thread_local struct slot *mine;

void
password_init(int max_concurrent)
{
	nslots = max_concurrent < 1 ? 1 : max_concurrent > MAX_SLOTS ?
	    MAX_SLOTS : max_concurrent;
}

bool
password_saturated(void)
{
	bool full;

	pthread_mutex_lock(&mu);
	full = nwaiting >= QUEUE_PER_SLOT * nslots;
	pthread_mutex_unlock(&mu);
	return full;
}

static struct slot *
free_slot(void)
{
	int i;

	for (i = 0; i < nslots; i++)
		if (!slotv[i].busy)
			return &slotv[i];
	return NULL;
}

static void
dequeue(struct waiter *w)
{
	struct waiter **pp;

	for (pp = &queue; *pp != w; pp = &(*pp)->next)
		;
	*pp = w->next;
	if (queue_tail == &w->next)
		queue_tail = pp;
}

/*
 * Takes a slot, waiting in line for up to WAIT_SECONDS.  The line holds
 * QUEUE_PER_SLOT callers a slot: past that the caller is refused at once,
 * so a flood of sign-ins cannot park every request thread of the worker
 * here (each waiter is a thread other routes need).
 */
static int
enter(void)
{
	struct timespec deadline;
	struct waiter w = { NULL };
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WAIT_SECONDS;
	pthread_mutex_lock(&mu);
	if (nwaiting >= QUEUE_PER_SLOT * nslots) {
		pthread_mutex_unlock(&mu);
		return -1;
	}
	nwaiting++;
	*queue_tail = &w;
	queue_tail = &w.next;
	while ((queue != &w || free_slot() == NULL) && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&cv, &mu, &deadline);
	if (queue == &w && (mine = free_slot()) != NULL) {
		mine->busy = true;
		rc = 0;
	} else
		rc = -1;
	dequeue(&w);
	nwaiting--;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	if (rc != 0)
		log_warnx("password hashing busy for %d s", WAIT_SECONDS);
	return rc;
}

static void
leave(void)
{
	pthread_mutex_lock(&mu);
	mine->busy = false;
	mine = NULL;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

#define HUGE_PAGE	((size_t)2 << 20)

/*
 * A slot's memory, in 2 MiB pages where the kernel has them
 * (transparent huge pages, "madvise" or "always"): argon2 reads 1 KiB
 * blocks at random over all 19 MiB, and with 4 KiB pages most of those
 * reads miss the TLB, a costly miss in a VM.  A hash took 5 % less time
 * (21.1 against 22.4 ms, medians of six interleaved runs).
 */
static void *
map_huge(size_t bytes)
{
	size_t len = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
	uint8_t *p = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (uint8_t *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	munmap(a + len, (size_t)(p + HUGE_PAGE - a));
	(void)madvise(a, len, MADV_HUGEPAGE);
	return a;
}

/* libargon2's allocator: the slot's memory when it is big enough. */
static int
slot_alloc(uint8_t **memory, size_t bytes)
{
	if (mine != NULL && mine->mem == NULL && bytes <= (size_t)M_COST *
	    1024 + 4096) {
		void *p = map_huge(bytes);

		if (p != NULL) {
			mine->mem = p;
			mine->size = bytes;
		}
	}
	if (mine != NULL && mine->mem != NULL && bytes <= mine->size) {
		*memory = mine->mem;
		return 0;
	}
	*memory = malloc(bytes);
	return *memory != NULL ? 0 : -1;
}

static void
slot_free(uint8_t *memory, size_t bytes)
{
	(void)bytes;
	if (mine == NULL || (void *)memory != mine->mem)
		free(memory);
}

/*
 * A slot's hashing thread.  It runs under SCHED_IDLE: any other thread
 * that wakes on its CPU (a request thread, nginx, PostgreSQL) preempts
 * it at once, whatever process it belongs to (a nice value would only
 * rank it among this process's threads).  The request threads cannot do
 * this themselves: an unprivileged thread may lower its priority but
 * never raise it back.  On an otherwise idle machine a hash takes as
 * long as before (sign-ins ran as fast in `make bench`); beside other
 * requests it waits for them, so a flood of sign-ins slows sign-ins,
 * not every route.
 */
static void *
hasher(void *arg)
{
	struct slot *s = arg;
	struct sched_param sp = { 0 };
	argon2_context *job;

	mine = s;
	if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0)
		log_warnx("password hashing thread: priority not lowered");
	pthread_mutex_lock(&mu);
	for (;;) {
		while (s->job == NULL)
			pthread_cond_wait(&s->cv, &mu);
		job = s->job;
		pthread_mutex_unlock(&mu);
		s->rc = argon2id_ctx(job);
		pthread_mutex_lock(&mu);
		s->job = NULL;
		s->done = true;
		pthread_cond_broadcast(&s->cv);
	}
	return NULL;
}

/*
 * Runs ctx on the hashing thread of the slot this thread holds, started
 * if this process has none yet (a forked worker starts its own).  If no
 * thread can be started, the hash runs here.
 */
static int
hash_on_slot(argon2_context *ctx)
{
	struct slot *s = mine;
	pthread_t th;
	int rc;

	pthread_mutex_lock(&mu);
	if (s->pid != getpid()) {
		pthread_cond_init(&s->cv, NULL);
		if (pthread_create(&th, NULL, hasher, s) != 0) {
			pthread_mutex_unlock(&mu);
			log_warnx("password hashing thread not started");
			return argon2id_ctx(ctx);
		}
		pthread_detach(th);
		s->pid = getpid();
	}
	s->job = ctx;
	s->done = false;
	pthread_cond_broadcast(&s->cv);
	while (!s->done)
		pthread_cond_wait(&s->cv, &mu);
	rc = s->rc;
	pthread_mutex_unlock(&mu);
	return rc;
}

/* Runs argon2id over pw and salt into out with the given costs. */
static int
run(const char *pw, const uint8_t *salt, size_t saltlen, uint32_t m,
    uint32_t t, uint32_t p, uint8_t *out, size_t outlen)
{
	argon2_context ctx = {
		.out = out, .outlen = (uint32_t)outlen,
		.pwd = (uint8_t *)(uintptr_t)pw, .pwdlen = (uint32_t)strlen(pw),
		.salt = (uint8_t *)(uintptr_t)salt,
		.saltlen = (uint32_t)saltlen,
		.t_cost = t, .m_cost = m, .lanes = p, .threads = p,
		.version = ARGON2_VERSION_13,
		.allocate_cbk = slot_alloc, .free_cbk = slot_free,
		.flags = ARGON2_DEFAULT_FLAGS,
	};

	return hash_on_slot(&ctx);
}

/* Standard base64 without padding, as PHC strings use it. */
static void
phc_b64(const uint8_t *in, size_t n, char *out)
{
	size_t len;

	b64_encode(in, n, out);
	len = strlen(out);
	while (len > 0 && out[len - 1] == '=')
		out[--len] = '\0';
}

static long
phc_unb64(const char *in, size_t n, uint8_t *out, size_t max)
{
	char tmp[128];
	size_t i;

	if (n >= sizeof(tmp) || n * 3 / 4 > max)
		return -1;
	/* The URL alphabet differs in two characters; map them over. */
	for (i = 0; i < n; i++) {
		if (in[i] == '-' || in[i] == '_')
			return -1;
		tmp[i] = in[i] == '+' ? '-' : in[i] == '/' ? '_' : in[i];
	}
	return b64url_decode(tmp, n, out);
}

struct phc {
	uint32_t	 m, t, p;
	uint8_t		 salt[64];
	size_t		 saltlen;
	uint8_t		 hash[64];
	size_t		 hashlen;
};

/* Reads one "k=N" field ending at `end` into *v. */
static int
phc_param(const char **s, char key, char end, uint32_t *v)
{
	const char *e;
	long long n;

	if ((*s)[0] != key || (*s)[1] != '=' ||
	    (e = strchr(*s + 2, end)) == NULL ||
	    num_parsen(*s + 2, (size_t)(e - *s - 2), 1, 1 << 22, &n) != 0)
		return -1;
	*v = (uint32_t)n;
	*s = e + 1;
	return 0;
}

/* Parses "$argon2id$v=19$m=M,t=T,p=P$salt$hash". */
static int
phc_parse(const char *s, struct phc *h)
{
	const char *dollar;
	long n;

	if (strncmp(s, PHC_PREFIX, sizeof(PHC_PREFIX) - 1) != 0)
		return -1;
	s += sizeof(PHC_PREFIX) - 1;
	if (phc_param(&s, 'm', ',', &h->m) != 0 ||
	    phc_param(&s, 't', ',', &h->t) != 0 ||
	    phc_param(&s, 'p', '$', &h->p) != 0 || h->p > 16 ||
	    (dollar = strchr(s, '$')) == NULL)
		return -1;
	if ((n = phc_unb64(s, (size_t)(dollar - s), h->salt,
	    sizeof(h->salt))) < 8)
		return -1;
	h->saltlen = (size_t)n;
	s = dollar + 1;
	if ((n = phc_unb64(s, strlen(s), h->hash, sizeof(h->hash))) < 16)
		return -1;
	h->hashlen = (size_t)n;
	return 0;
}

enum password_result
password_hash(const char *pw, char *out, size_t outlen)
{
	uint8_t salt[SALT_LEN], hash[HASH_LEN];
	char s64[B64_LEN(SALT_LEN) + 1], h64[B64_LEN(HASH_LEN) + 1];
	int rc, n;

	token_random(salt, sizeof(salt));
	if (enter() != 0)
		return PASSWORD_BUSY;
	rc = run(pw, salt, sizeof(salt), M_COST, T_COST, PARALLELISM, hash,
	    sizeof(hash));
	leave();
	if (rc != ARGON2_OK) {
		log_errx("argon2 hash: %s", argon2_error_message(rc));
		return PASSWORD_ERROR;
	}
	phc_b64(salt, sizeof(salt), s64);
	phc_b64(hash, sizeof(hash), h64);
	n = snprintf(out, outlen, PHC_PREFIX "m=%d,t=%d,p=%d$%s$%s", M_COST,
	    T_COST, PARALLELISM, s64, h64);
	if (n < 0 || (size_t)n >= outlen)
		return PASSWORD_ERROR;
	return PASSWORD_MATCH;
}

enum password_result
password_verify(const char *phc, const char *pw)
{
	struct phc h;
	uint8_t got[64];
	int rc;

	if (phc_parse(phc, &h) != 0) {
		log_errx("argon2 verify: malformed stored hash");
		return PASSWORD_ERROR;
	}
	if (enter() != 0)
		return PASSWORD_BUSY;
	rc = run(pw, h.salt, h.saltlen, h.m, h.t, h.p, got, h.hashlen);
	leave();
	if (rc != ARGON2_OK) {
		log_errx("argon2 verify: %s", argon2_error_message(rc));
		return PASSWORD_ERROR;
	}
	return secure_equal(got, h.hash, h.hashlen) ? PASSWORD_MATCH :
	    PASSWORD_MISMATCH;
}

enum password_result
password_burn(const char *pw)
{
	/* A real hash (of a throwaway password) with the same parameters. */
	static const char fixed[] = "$argon2id$v=19$m=19456,t=2,p=1$"
	    "bWlreS1idXJuLXNhbHQhIQ$"
	    "5ullCQ+qDWpCzCHbeW9FkeDCnYMktSwmp2EYGpl+skk";

	return password_verify(fixed, pw) == PASSWORD_BUSY ? PASSWORD_BUSY :
	    PASSWORD_MISMATCH;
}
