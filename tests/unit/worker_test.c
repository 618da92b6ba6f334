/* Tests for src/core/worker.c with a real event_base: jobs run off the loop
 * thread, done callbacks on it, in completion order; free finishes what is
 * queued; a done callback may submit again; signals stay with the loop;
 * workers run under SCHED_BATCH (decision 0201). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/event.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/span.h"
#include "core/worker.h"

#define LOOP_TIMEOUT_SECONDS 20

struct run {
	struct event_base *base;
	struct worker_pool *pool;
	pthread_t loop_thread;
	size_t want_done;
	atomic_size_t jobs_run;
	atomic_size_t jobs_on_loop_thread; /* must stay 0 */
	atomic_size_t jobs_with_signals;   /* jobs that could take SIGTERM: must stay 0 */
	atomic_size_t jobs_not_batch;	   /* jobs on a thread not SCHED_BATCH: must stay 0 */
	size_t done_run;
	size_t done_off_loop_thread; /* must stay 0 */
	size_t done_order[4096];
	size_t chain_left;
	int submit_during_free; /* what submit returned from a done callback in free */
	bool has_timed_out;
};

struct item {
	struct run *run;
	size_t index;
	unsigned sleep_us;
};

static void job_record(void *arg)
{
	struct item *it = arg;
	sigset_t mask;

	if (pthread_equal(pthread_self(), it->run->loop_thread))
		atomic_fetch_add(&it->run->jobs_on_loop_thread, 1);
	pthread_sigmask(SIG_BLOCK, NULL, &mask);
	if (!sigismember(&mask, SIGTERM))
		atomic_fetch_add(&it->run->jobs_with_signals, 1);
	if (sched_getscheduler(0) != SCHED_BATCH)
		atomic_fetch_add(&it->run->jobs_not_batch, 1);
	if (it->sleep_us > 0)
		usleep(it->sleep_us);
	atomic_fetch_add(&it->run->jobs_run, 1);
}

static void done_record(void *arg)
{
	struct item *it = arg;
	struct run *run = it->run;

	if (!pthread_equal(pthread_self(), run->loop_thread))
		run->done_off_loop_thread++;
	if (run->done_run < ARRAY_LEN(run->done_order))
		run->done_order[run->done_run] = it->index;
	run->done_run++;
	free(it);
	if (run->done_run == run->want_done)
		event_base_loopbreak(run->base);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct run *run = arg;

	(void) fd;
	(void) what;
	run->has_timed_out = true;
	event_base_loopbreak(run->base);
}

/* Run the loop until want_done done callbacks ran, or fail after a timeout. */
static void loop_until_done(struct run *run)
{
	struct timeval limit = { LOOP_TIMEOUT_SECONDS, 0 };
	struct event *timer = evtimer_new(run->base, on_timeout, run);

	assert_non_null(timer);
	evtimer_add(timer, &limit);
	while (run->done_run < run->want_done && !run->has_timed_out)
		assert_true(event_base_dispatch(run->base) >= 0);
	event_free(timer);
	assert_false(run->has_timed_out);
}

static struct run *run_new(unsigned threads)
{
	struct run *run = calloc(1, sizeof(*run));
	struct error err;

	assert_non_null(run);
	run->base = event_base_new();
	assert_non_null(run->base);
	run->loop_thread = pthread_self();
	run->pool = worker_pool_new(run->base, threads, &err);
	assert_non_null(run->pool);
	return run;
}

static void run_free(struct run *run)
{
	worker_pool_free(run->pool);
	event_base_free(run->base);
	free(run);
}

static void submit_item(struct run *run, size_t index, unsigned sleep_us)
{
	struct item *it = malloc(sizeof(*it));

	assert_non_null(it);
	it->run = run;
	it->index = index;
	it->sleep_us = sleep_us;
	assert_int_equal(worker_pool_submit(run->pool, job_record, done_record, it), 0);
}

static const struct many_case {
	const char *name;
	unsigned threads;
	size_t jobs;
	unsigned sleep_us;
} many_cases[] = {
	{ "one thread, many jobs", 1, 2000, 0 },
	{ "four threads, many jobs", 4, 4000, 0 },
	{ "most threads, slow jobs", WORKER_THREADS_MAX, 500, 200 },
};

/* Every job runs once off the loop thread; every done once on it. */
static void test_many_jobs(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(many_cases); i++) {
		const struct many_case *c = &many_cases[i];
		struct run *run = run_new(c->threads);

		print_message("case: %s\n", c->name);
		run->want_done = c->jobs;
		for (size_t j = 0; j < c->jobs; j++)
			submit_item(run, j, c->sleep_us);
		loop_until_done(run);
		assert_int_equal(atomic_load(&run->jobs_run), c->jobs);
		assert_int_equal(run->done_run, c->jobs);
		assert_int_equal(atomic_load(&run->jobs_on_loop_thread), 0);
		assert_int_equal(atomic_load(&run->jobs_with_signals), 0);
		assert_int_equal(atomic_load(&run->jobs_not_batch), 0);
		assert_int_equal(run->done_off_loop_thread, 0);
		assert_int_equal(worker_pool_pending(run->pool), 0);
		run_free(run);
	}
}

/* With one thread jobs finish in submission order, and done callbacks keep
 * the order in which jobs finished. */
static void test_done_in_completion_order(void **state)
{
	struct run *run = run_new(1);

	(void) state;
	run->want_done = 1000;
	for (size_t j = 0; j < run->want_done; j++)
		submit_item(run, j, 0);
	loop_until_done(run);
	for (size_t j = 0; j < run->want_done; j++)
		assert_int_equal(run->done_order[j], j);
	run_free(run);
}

static void done_submit_during_free(void *arg)
{
	struct item *it = arg;
	struct run *run = it->run;

	run->submit_during_free = worker_pool_submit(run->pool, job_record, NULL, it);
	done_record(arg);
}

/* Free with jobs queued: all of them run, all done callbacks run on the
 * calling thread before free returns, and no new job is taken meanwhile. */
static void test_free_with_jobs_pending(void **state)
{
	struct run *run = run_new(2);
	struct item *last = malloc(sizeof(*last));

	(void) state;
	run->want_done = 201;
	for (size_t j = 0; j < 200; j++)
		submit_item(run, j, 500);
	assert_true(worker_pool_pending(run->pool) > 0);
	assert_non_null(last);
	last->run = run;
	last->index = 200;
	last->sleep_us = 0;
	assert_int_equal(worker_pool_submit(run->pool, job_record, done_submit_during_free, last),
			 0);
	worker_pool_free(run->pool);
	run->pool = NULL;
	assert_int_equal(atomic_load(&run->jobs_run), 201);
	assert_int_equal(run->done_run, 201);
	assert_int_equal(run->done_off_loop_thread, 0);
	assert_int_equal(run->submit_during_free, -1);
	event_base_free(run->base);
	free(run);
}

static void done_chain(void *arg)
{
	struct item *it = arg;
	struct run *run = it->run;

	if (run->chain_left > 0) {
		run->chain_left--;
		submit_item(run, it->index + 1, 0);
	}
	/* submit_item used done_record; count this link too. */
	done_record(arg);
}

/* A done callback may submit the next job (what a queue manager does). */
static void test_submit_from_done(void **state)
{
	struct run *run = run_new(3);
	struct item *first = malloc(sizeof(*first));

	(void) state;
	assert_non_null(first);
	first->run = run;
	first->index = 0;
	first->sleep_us = 0;
	run->chain_left = 1;
	run->want_done = 2;
	assert_int_equal(worker_pool_submit(run->pool, job_record, done_chain, first), 0);
	loop_until_done(run);
	assert_int_equal(run->done_order[1], 1);
	assert_int_equal(atomic_load(&run->jobs_run), 2);
	run_free(run);
}

struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool has_started;
	bool is_open;
};

static void job_wait_at_gate(void *arg)
{
	struct gate *g = arg;

	pthread_mutex_lock(&g->lock);
	g->has_started = true;
	pthread_cond_broadcast(&g->cond);
	while (!g->is_open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

/* pending counts jobs not yet picked up by a thread. */
static void test_pending_counts_waiting_jobs(void **state)
{
	struct run *run = run_new(1);
	struct gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false };

	(void) state;
	assert_int_equal(worker_pool_pending(run->pool), 0);
	assert_int_equal(worker_pool_submit(run->pool, job_wait_at_gate, NULL, &g), 0);
	pthread_mutex_lock(&g.lock);
	while (!g.has_started)
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
	for (size_t j = 0; j < 5; j++)
		submit_item(run, j, 0);
	assert_int_equal(worker_pool_pending(run->pool), 5);
	pthread_mutex_lock(&g.lock);
	g.is_open = true;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	run->want_done = 5;
	loop_until_done(run);
	assert_int_equal(worker_pool_pending(run->pool), 0);
	run_free(run);
}

static const struct count_case {
	const char *name;
	unsigned threads;
	bool is_ok;
} count_cases[] = {
	{ "zero threads", 0, false },
	{ "one thread", 1, true },
	{ "at the limit", WORKER_THREADS_MAX, true },
	{ "one past the limit", WORKER_THREADS_MAX + 1, false },
};

static void test_thread_count_bounds(void **state)
{
	struct event_base *base = event_base_new();

	(void) state;
	assert_non_null(base);
	for (size_t i = 0; i < ARRAY_LEN(count_cases); i++) {
		const struct count_case *c = &count_cases[i];
		struct error err = { 0 };
		struct worker_pool *pool = worker_pool_new(base, c->threads, &err);

		print_message("case: %s\n", c->name);
		assert_int_equal(pool != NULL, c->is_ok);
		if (!c->is_ok)
			assert_int_equal(err.kind, ERROR_USAGE);
		worker_pool_free(pool);
	}
	worker_pool_free(NULL);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_jobs),
		cmocka_unit_test(test_done_in_completion_order),
		cmocka_unit_test(test_free_with_jobs_pending),
		cmocka_unit_test(test_submit_from_done),
		cmocka_unit_test(test_pending_counts_waiting_jobs),
		cmocka_unit_test(test_thread_count_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
