#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <argon2.h>

#include "log.h"
#include "password.h"
#include "token.h"

#define T_COST		2
#define M_COST		(19 * 1024)	/* KiB */
#define PARALLELISM	1
#define SALT_LEN	16
#define HASH_LEN	32
#define WAIT_SECONDS	10

static pthread_mutex_t	mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	cv = PTHREAD_COND_INITIALIZER;
static int		slots = 2;
static int		in_use;

void
password_init(int max_concurrent)
{
	slots = max_concurrent > 0 ? max_concurrent : 1;
}

static int
enter(void)
{
	struct timespec deadline;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WAIT_SECONDS;
	pthread_mutex_lock(&mu);
	while (in_use >= slots && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&cv, &mu, &deadline);
	if (in_use < slots) {
		in_use++;
		rc = 0;
	}
	pthread_mutex_unlock(&mu);
	if (rc != 0)
		log_warnx("password hashing busy for %d s", WAIT_SECONDS);
	return rc == 0 ? 0 : -1;
}

static void
leave(void)
{
	pthread_mutex_lock(&mu);
	in_use--;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
}

enum password_result
password_hash(const char *pw, char *out, size_t outlen)
{
	unsigned char salt[SALT_LEN];
	int rc;

	token_random(salt, sizeof(salt));
	if (enter() != 0)
		return PASSWORD_BUSY;
	rc = argon2id_hash_encoded(T_COST, M_COST, PARALLELISM, pw, strlen(pw),
	    salt, sizeof(salt), HASH_LEN, out, outlen);
	leave();
	if (rc != ARGON2_OK) {
		log_errx("argon2 hash: %s", argon2_error_message(rc));
		return PASSWORD_ERROR;
	}
	return PASSWORD_MATCH;
}

enum password_result
password_verify(const char *phc, const char *pw)
{
	int rc;

	if (enter() != 0)
		return PASSWORD_BUSY;
	rc = argon2id_verify(phc, pw, strlen(pw));
	leave();
	if (rc == ARGON2_OK)
		return PASSWORD_MATCH;
	if (rc == ARGON2_VERIFY_MISMATCH)
		return PASSWORD_MISMATCH;
	log_errx("argon2 verify: %s", argon2_error_message(rc));
	return PASSWORD_ERROR;
}

void
password_burn(const char *pw)
{
	/* A real hash (of a throwaway password) with the same parameters. */
	static const char fixed[] = "$argon2id$v=19$m=19456,t=2,p=1$"
	    "bWlreS1idXJuLXNhbHQhIQ$"
	    "5ullCQ+qDWpCzCHbeW9FkeDCnYMktSwmp2EYGpl+skk";

	(void)password_verify(fixed, pw);
}
