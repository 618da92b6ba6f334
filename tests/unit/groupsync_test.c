/* Tests for src/core/groupsync.c with a sync function that the test holds
 * and releases: a waiter is served only by a sync that started after it
 * arrived; waiters that arrive during one sync share the next; a failed
 * sync fails exactly the waiters it covered; and the real syncfs(2) works
 * on a temporary directory. No timing is asserted: every step waits for a
 * state (a counter), not for a duration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/groupsync.h"

#define WAITERS_MAX 16

/* The fake sync: each call is numbered; a call blocks while `is_held`, and
 * fails with fail_errno when its number is fail_call. */
struct fake {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned calls;	   /* syncs started */
	unsigned finished; /* syncs returned */
	bool is_held;
	unsigned fail_call;
	int fail_errno;
};

static int fake_sync(int fd, void *ctx)
{
	struct fake *f = ctx;
	unsigned number;
	int rc = 0;

	(void) fd;
	pthread_mutex_lock(&f->lock);
	number = ++f->calls;
	pthread_cond_broadcast(&f->cond);
	while (f->is_held)
		pthread_cond_wait(&f->cond, &f->lock);
	if (number == f->fail_call) {
		errno = f->fail_errno;
		rc = -1;
	}
	f->finished++;
	pthread_mutex_unlock(&f->lock);
	return rc;
}

static void fake_init(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
}

static void fake_set_held(struct fake *f, bool is_held)
{
	pthread_mutex_lock(&f->lock);
	f->is_held = is_held;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

/* Block until the fake has started `calls` syncs. */
static void fake_wait_calls(struct fake *f, unsigned calls)
{
	pthread_mutex_lock(&f->lock);
	while (f->calls < calls)
		pthread_cond_wait(&f->cond, &f->lock);
	pthread_mutex_unlock(&f->lock);
}

struct waiter {
	pthread_t thread;
	struct groupsync *g;
	struct fake *fake;
	unsigned calls_at_return; /* syncs started when wait returned */
	int rc;
	struct error err;
};

static void *waiter_run(void *arg)
{
	struct waiter *w = arg;

	w->rc = groupsync_wait(w->g, &w->err);
	pthread_mutex_lock(&w->fake->lock);
	w->calls_at_return = w->fake->calls;
	pthread_mutex_unlock(&w->fake->lock);
	return NULL;
}

static void waiter_start(struct waiter *w, struct groupsync *g, struct fake *f)
{
	memset(w, 0, sizeof(*w));
	w->g = g;
	w->fake = f;
	assert_int_equal(pthread_create(&w->thread, NULL, waiter_run, w), 0);
}

/* Block until groupsync has counted `waits` calls of groupsync_wait. */
static void wait_waits(struct groupsync *g, uint64_t waits)
{
	struct groupsync_stats stats;

	for (;;) {
		groupsync_stats(g, &stats);
		if (stats.waits >= waits)
			return;
		usleep(1000);
	}
}

/* --- the cases ------------------------------------------------------------ */

struct sharing_case {
	const char *name;
	size_t late_waiters; /* arrive while the first sync is held */
	unsigned fail_call;  /* 0: none fails */
	int fail_errno;
	enum error_kind late_kind; /* what the late waiters get */
	enum error_kind first_kind;
};

static const struct sharing_case sharing_cases[] = {
	{ "one late waiter: served by a second sync", 1, 0, 0, ERROR_NONE, ERROR_NONE },
	{ "seven late waiters share one second sync", 7, 0, 0, ERROR_NONE, ERROR_NONE },
	{ "the second sync fails: the late waiters fail, the first does not", 5, 2, EIO, ERROR_IO,
	  ERROR_NONE },
	{ "a full disk is a temporary failure", 3, 2, ENOSPC, ERROR_TEMPORARY, ERROR_NONE },
	{ "the first sync fails: only the first waiter fails", 4, 1, EIO, ERROR_NONE, ERROR_IO },
};

static void test_sharing(void **state)
{
	(void) state;
	for (size_t c = 0; c < sizeof(sharing_cases) / sizeof(sharing_cases[0]); c++) {
		const struct sharing_case *tc = &sharing_cases[c];
		struct waiter first, late[WAITERS_MAX];
		struct groupsync_stats stats;
		struct groupsync *g;
		struct fake f;
		struct error err;

		print_message("case: %s\n", tc->name);
		fake_init(&f);
		f.fail_call = tc->fail_call;
		f.fail_errno = tc->fail_errno;
		assert_int_equal(groupsync_new(-1, fake_sync, &f, &g, &err), 0);
		/* The first waiter leads sync 1, which is held. */
		fake_set_held(&f, true);
		waiter_start(&first, g, &f);
		fake_wait_calls(&f, 1);
		/* The late ones arrive during sync 1: it may have missed their
		 * writes, so it must not serve them. */
		for (size_t i = 0; i < tc->late_waiters; i++)
			waiter_start(&late[i], g, &f);
		wait_waits(g, 1 + tc->late_waiters);
		fake_set_held(&f, false);
		pthread_join(first.thread, NULL);
		for (size_t i = 0; i < tc->late_waiters; i++)
			pthread_join(late[i].thread, NULL);

		assert_int_equal(first.rc, tc->first_kind == ERROR_NONE ? 0 : -1);
		if (tc->first_kind != ERROR_NONE)
			assert_int_equal(first.err.kind, tc->first_kind);
		for (size_t i = 0; i < tc->late_waiters; i++) {
			/* Returned only after a second sync had started. */
			assert_true(late[i].calls_at_return >= 2);
			assert_int_equal(late[i].rc, tc->late_kind == ERROR_NONE ? 0 : -1);
			if (tc->late_kind != ERROR_NONE)
				assert_int_equal(late[i].err.kind, tc->late_kind);
		}
		/* All the late ones were served by one sync. */
		assert_int_equal(f.calls, 2);
		groupsync_stats(g, &stats);
		assert_int_equal(stats.syncs, 2);
		assert_int_equal(stats.waits, 1 + tc->late_waiters);
		groupsync_free(g);
	}
}

/* One caller alone: one sync per call, each after the call. */
static void test_alone(void **state)
{
	struct groupsync_stats stats;
	struct groupsync *g;
	struct fake f;
	struct error err;

	(void) state;
	fake_init(&f);
	assert_int_equal(groupsync_new(-1, fake_sync, &f, &g, &err), 0);
	for (unsigned i = 1; i <= 3; i++) {
		assert_int_equal(groupsync_wait(g, &err), 0);
		assert_int_equal(f.calls, i);
		assert_int_equal(f.finished, i);
	}
	groupsync_stats(g, &stats);
	assert_int_equal(stats.syncs, 3);
	assert_int_equal(stats.waits, 3);
	groupsync_free(g);
	groupsync_free(NULL);
}

/* Many threads, many waits, syncs as fast as the fake can go: nobody is
 * left asleep (the lead of the next sync always passes to a waiter of it),
 * and every wait returns only after a sync that started no earlier than
 * the call has finished. The test runner's timeout catches a hang. */
#define STRESS_THREADS 8
#define STRESS_WAITS   3000

struct stresser {
	pthread_t thread;
	struct groupsync *g;
	struct fake *fake;
	unsigned violations, failures;
};

static void *stresser_run(void *arg)
{
	struct stresser *st = arg;

	for (unsigned i = 0; i < STRESS_WAITS; i++) {
		unsigned started_before, finished_after;
		struct error err;

		pthread_mutex_lock(&st->fake->lock);
		started_before = st->fake->calls;
		pthread_mutex_unlock(&st->fake->lock);
		if (groupsync_wait(st->g, &err) < 0)
			st->failures++;
		pthread_mutex_lock(&st->fake->lock);
		finished_after = st->fake->finished;
		pthread_mutex_unlock(&st->fake->lock);
		if (finished_after < started_before + 1)
			st->violations++;
	}
	return NULL;
}

static void test_many_threads(void **state)
{
	struct stresser st[STRESS_THREADS];
	struct groupsync_stats stats;
	struct groupsync *g;
	struct fake f;
	struct error err;

	(void) state;
	fake_init(&f);
	assert_int_equal(groupsync_new(-1, fake_sync, &f, &g, &err), 0);
	for (size_t i = 0; i < STRESS_THREADS; i++) {
		st[i] = (struct stresser){ .g = g, .fake = &f };
		assert_int_equal(pthread_create(&st[i].thread, NULL, stresser_run, &st[i]), 0);
	}
	for (size_t i = 0; i < STRESS_THREADS; i++) {
		pthread_join(st[i].thread, NULL);
		assert_int_equal(st[i].violations, 0);
		assert_int_equal(st[i].failures, 0);
	}
	groupsync_stats(g, &stats);
	assert_int_equal(stats.waits, STRESS_THREADS * STRESS_WAITS);
	assert_int_equal(stats.syncs, f.calls);
	assert_true(stats.syncs <= stats.waits);
	groupsync_free(g);
}

/* The real syncfs(2), on the file system of a temporary directory. */
static void test_syncfs(void **state)
{
	char dir[] = "/tmp/groupsync_test.XXXXXX";
	struct groupsync *g;
	struct error err;
	int fd;

	(void) state;
	assert_non_null(mkdtemp(dir));
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(groupsync_new(fd, NULL, NULL, &g, &err), 0);
	assert_int_equal(groupsync_wait(g, &err), 0);
	groupsync_free(g);
	close(fd);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sharing),
		cmocka_unit_test(test_alone),
		cmocka_unit_test(test_many_threads),
		cmocka_unit_test(test_syncfs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
