/*
 * groupsync: one leader at a time runs the sync; the others sleep until the
 * sync whose number they were given has finished.
 *
 * Syncs are numbered 1, 2, ... in the order they start, and never overlap.
 * A caller arriving when `started` syncs have started needs sync number
 * started + 1: every earlier one started before its writes were complete
 * (or before they were even requested). When that sync has finished, its
 * result is the caller's. Results are kept in a ring; a caller that wakes
 * so late that its result was overwritten goes by the last sync that
 * failed: none since its own, and its own succeeded; one since, and it
 * counts its own as failed too (a retry at worst, never an acknowledgement
 * of something not durable).
 *
 * Waiters only ever need the running sync or the one after it, so they
 * sleep on one of two futex words by the parity of the number they need.
 * The end of sync n wakes those who needed n and nobody else, and hands the
 * lead of sync n + 1, if anyone needs it, to one of its waiters. A woken
 * waiter whose sync is done reads its result without taking the lock: a
 * dozen waiters woken at once would otherwise queue on the mutex, each
 * sleeping once more (a context switch each; decision 0201).
 */
#include "core/groupsync.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RESULTS_RING 256

struct groupsync {
	int fd;
	groupsync_fn *sync;
	void *ctx;
	pthread_mutex_t lock;
	uint64_t started;	       /* syncs started so far; under lock */
	_Atomic uint64_t finished;     /* syncs finished (== started, or one less) */
	_Atomic uint32_t wake_word[2]; /* futex words, changed to wake parity n & 1 */
	_Atomic size_t waiting[2];     /* sleepers (or about to be) on each word */
	/* sync n's number << 16 | its errno (0: ok), at n % RESULTS_RING */
	_Atomic uint64_t results[RESULTS_RING];
	_Atomic uint64_t last_failed; /* number of the last sync that failed, 0: none */
	_Atomic int last_failed_errno;
	uint64_t waits; /* under lock */
};

static int sync_default(int fd, void *ctx)
{
	(void) ctx;
	return syncfs(fd);
}

static void futex_sleep(_Atomic uint32_t *word, uint32_t seen)
{
	/* Returns at once when *word != seen: a change made before the call is
	 * never missed. EINTR and spurious returns: the caller looks again. */
	(void) syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word, int count)
{
	(void) syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}

int groupsync_new(int fd, groupsync_fn *sync, void *ctx, struct groupsync **out, struct error *err)
{
	struct groupsync *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return error_set(err, ERROR_SOFTWARE, "groupsync: out of memory");
	g->fd = fd;
	g->sync = sync != NULL ? sync : sync_default;
	g->ctx = ctx;
	pthread_mutex_init(&g->lock, NULL);
	*out = g;
	return 0;
}

void groupsync_free(struct groupsync *g)
{
	if (g == NULL)
		return;
	pthread_mutex_destroy(&g->lock);
	free(g);
}

/* Run sync number `number` (the lock is not held), publish its result and
 * wake its waiters, and one waiter of the next to lead it. */
static void lead(struct groupsync *g, uint64_t number)
{
	unsigned mine = (unsigned) (number & 1), next = mine ^ 1;
	int rc = g->sync(g->fd, g->ctx), saved = rc == 0 ? 0 : (errno != 0 ? errno : EIO);
	bool is_next_wanted;

	pthread_mutex_lock(&g->lock);
	atomic_store(&g->results[number % RESULTS_RING], number << 16 | (uint16_t) saved);
	if (saved != 0) {
		atomic_store(&g->last_failed_errno, saved);
		atomic_store(&g->last_failed, number);
	}
	atomic_store(&g->finished, number);
	atomic_fetch_add(&g->wake_word[mine], 1);
	/* A waiter of number + 1 registers under the lock: either it is
	 * counted here, or it will find no sync running and lead itself. */
	is_next_wanted = atomic_load(&g->waiting[next]) > 0;
	if (is_next_wanted)
		atomic_fetch_add(&g->wake_word[next], 1);
	pthread_mutex_unlock(&g->lock);
	futex_wake(&g->wake_word[mine], INT_MAX);
	if (is_next_wanted)
		futex_wake(&g->wake_word[next], 1);
}

int groupsync_wait(struct groupsync *g, struct error *err)
{
	uint64_t needed, slot;
	int result;

	pthread_mutex_lock(&g->lock);
	g->waits++;
	needed = g->started + 1;
	for (;;) {
		unsigned parity = (unsigned) (needed & 1);
		uint32_t seen;

		/* Here the lock is held. */
		if (atomic_load(&g->finished) >= needed) {
			pthread_mutex_unlock(&g->lock);
			break;
		}
		if (g->started == atomic_load(&g->finished)) {
			/* No sync is running: lead the next one. It starts after
			 * this caller's writes, and after those of everyone now
			 * waiting, so it serves them all. */
			uint64_t number = ++g->started;

			pthread_mutex_unlock(&g->lock);
			lead(g, number);
			pthread_mutex_lock(&g->lock);
			continue;
		}
		atomic_fetch_add(&g->waiting[parity], 1);
		seen = atomic_load(&g->wake_word[parity]);
		pthread_mutex_unlock(&g->lock);
		while (atomic_load(&g->finished) < needed &&
		       atomic_load(&g->wake_word[parity]) == seen)
			futex_sleep(&g->wake_word[parity], seen);
		atomic_fetch_sub(&g->waiting[parity], 1);
		if (atomic_load(&g->finished) >= needed)
			break; /* the common case: no lock again */
		/* Woken to lead the next sync (or by a change not ours). */
		pthread_mutex_lock(&g->lock);
	}
	slot = atomic_load(&g->results[needed % RESULTS_RING]);
	if (slot >> 16 == needed)
		result = (int) (slot & 0xffff);
	else if (atomic_load(&g->last_failed) >= needed)
		result = atomic_load(&g->last_failed_errno); /* its slot was reused */
	else
		result = 0; /* no sync has failed since this one: neither did it */
	if (result == 0)
		return 0;
	return error_set(err, (result == ENOSPC || result == EDQUOT) ? ERROR_TEMPORARY : ERROR_IO,
			 "syncfs: %s", strerror(result));
}

void groupsync_stats(struct groupsync *g, struct groupsync_stats *out)
{
	pthread_mutex_lock(&g->lock);
	out->waits = g->waits;
	out->syncs = atomic_load(&g->finished);
	pthread_mutex_unlock(&g->lock);
}
