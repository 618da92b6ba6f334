/*
 * groupsync: one leader at a time runs the sync; the others wait on a
 * condition variable for the sync whose number they were given.
 *
 * Syncs are numbered 1, 2, ... in the order they start, and never overlap.
 * A caller arriving when `started` syncs have started needs sync number
 * started + 1: every earlier one started before its writes were complete
 * (or before they were even requested). When that sync has finished, its
 * result is the caller's. Results are kept in a ring; a caller that wakes
 * so late that its result was overwritten counts it as failed (it can only
 * cost a retry, never an acknowledgement of something not durable).
 */
#include "core/groupsync.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RESULTS_RING 256

struct groupsync {
	int fd;
	groupsync_fn *sync;
	void *ctx;
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	uint64_t started;	   /* syncs started so far */
	uint64_t finished;	   /* syncs finished so far (== started, or one less) */
	int results[RESULTS_RING]; /* errno of sync n at n % RESULTS_RING; 0 ok */
	uint64_t waits;
};

static int sync_default(int fd, void *ctx)
{
	(void) ctx;
	return syncfs(fd);
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
	pthread_cond_init(&g->done_cond, NULL);
	*out = g;
	return 0;
}

void groupsync_free(struct groupsync *g)
{
	if (g == NULL)
		return;
	pthread_cond_destroy(&g->done_cond);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

int groupsync_wait(struct groupsync *g, struct error *err)
{
	uint64_t needed;
	int result;

	pthread_mutex_lock(&g->lock);
	g->waits++;
	needed = g->started + 1;
	while (g->finished < needed) {
		if (g->started == g->finished) {
			/* No sync is running: lead the next one. It starts after
			 * this caller's writes, and after those of everyone now
			 * waiting, so it serves them all. */
			uint64_t number = ++g->started;
			int rc, saved;

			pthread_mutex_unlock(&g->lock);
			rc = g->sync(g->fd, g->ctx);
			saved = rc == 0 ? 0 : (errno != 0 ? errno : EIO);
			pthread_mutex_lock(&g->lock);
			g->results[number % RESULTS_RING] = saved;
			g->finished = number;
			pthread_cond_broadcast(&g->done_cond);
		} else {
			pthread_cond_wait(&g->done_cond, &g->lock);
		}
	}
	result = g->finished - needed < RESULTS_RING ? g->results[needed % RESULTS_RING] : EIO;
	pthread_mutex_unlock(&g->lock);
	if (result == 0)
		return 0;
	return error_set(err, (result == ENOSPC || result == EDQUOT) ? ERROR_TEMPORARY : ERROR_IO,
			 "syncfs: %s", strerror(result));
}

void groupsync_stats(struct groupsync *g, struct groupsync_stats *out)
{
	pthread_mutex_lock(&g->lock);
	out->waits = g->waits;
	out->syncs = g->finished;
	pthread_mutex_unlock(&g->lock);
}
