/*
 * The janitor: a thread in every worker that, every MIKY_SWEEP_MS,
 * refunds expired credit holds (credits.h), purges sent mail past its
 * retention, deletes sign-ups never verified, drops old rate-limit
 * windows, and folds the admin statistics' deltas into their days.  Each task is one idempotent statement (or one transaction a
 * hold) that any number of workers on any number of hosts may run at the
 * same time, so no host is special.
 */
#ifndef MIKY_APP_JANITOR_H
#define MIKY_APP_JANITOR_H

int	janitor_start(void);
void	janitor_stop(void);

#endif
