/*
 * worker: the thread pool. Two FIFO lists under one mutex: jobs waiting for
 * a thread, and jobs finished and waiting for their done callback. A worker
 * that finishes a job moves it to the finished list and bumps the eventfd;
 * the loop's read callback takes the whole finished list at once and runs
 * the callbacks outside the lock, so a done callback may submit again.
 * Only a push onto an empty finished list bumps the eventfd: a list that
 * is not empty has its wakeup on the way.
 */
#include "core/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct worker_job {
	struct worker_job *next;
	worker_job_fn *job;
	worker_done_fn *done;
	void *arg;
};

struct job_list {
	struct worker_job *head;
	struct worker_job *tail;
};

struct worker_pool {
	struct event_base *base;
	struct event *wakeup_event;
	int wakeup_fd;

	pthread_mutex_t lock;
	pthread_cond_t has_work;
	struct job_list waiting;  /* submitted, not yet started */
	struct job_list finished; /* run, done callback not yet called */
	size_t waiting_count;
	bool is_stopping;

	unsigned thread_count;
	pthread_t threads[WORKER_THREADS_MAX];
};

static void job_list_push(struct job_list *list, struct worker_job *j)
{
	j->next = NULL;
	if (list->tail != NULL)
		list->tail->next = j;
	else
		list->head = j;
	list->tail = j;
}

static struct worker_job *job_list_pop(struct job_list *list)
{
	struct worker_job *j = list->head;

	if (j != NULL) {
		list->head = j->next;
		if (list->head == NULL)
			list->tail = NULL;
	}
	return j;
}

static void wakeup_loop(struct worker_pool *pool)
{
	uint64_t one = 1;

	/* An eventfd write only fails when the counter would overflow, and then
	 * the loop has a wakeup pending anyway. */
	while (write(pool->wakeup_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static void *worker_main(void *opaque)
{
	struct worker_pool *pool = opaque;
	struct sched_param batch = { 0 };

	/* SCHED_BATCH: a worker woken by a submit does not preempt the loop
	 * thread that submitted it (it runs on the other core, or when the
	 * loop next waits). Under load the default policy switched the loop
	 * out about four times per SMTP session (decision 0201). A failure
	 * leaves the default policy, which only costs speed. */
	(void) pthread_setschedparam(pthread_self(), SCHED_BATCH, &batch);
	pthread_mutex_lock(&pool->lock);
	for (;;) {
		struct worker_job *j;

		while (pool->waiting.head == NULL && !pool->is_stopping)
			pthread_cond_wait(&pool->has_work, &pool->lock);
		j = job_list_pop(&pool->waiting);
		if (j == NULL)
			break; /* stopping and nothing left to run */
		pool->waiting_count--;
		pthread_mutex_unlock(&pool->lock);

		j->job(j->arg);

		pthread_mutex_lock(&pool->lock);
		/* The loop takes the whole finished list per wakeup: a list that
		 * was not empty already has one on its way. */
		if (pool->finished.head == NULL)
			wakeup_loop(pool);
		job_list_push(&pool->finished, j);
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

/* Loop thread: run the done callback of everything finished so far. */
static void run_finished(struct worker_pool *pool)
{
	struct job_list batch;
	struct worker_job *j;

	pthread_mutex_lock(&pool->lock);
	batch = pool->finished;
	pool->finished.head = pool->finished.tail = NULL;
	pthread_mutex_unlock(&pool->lock);

	while ((j = job_list_pop(&batch)) != NULL) {
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
}

static void on_wakeup(evutil_socket_t fd, short what, void *opaque)
{
	struct worker_pool *pool = opaque;
	uint64_t count;

	(void) what;
	/* Non-blocking: EAGAIN just means another callback already drained it. */
	while (read(fd, &count, sizeof(count)) < 0 && errno == EINTR)
		;
	run_finished(pool);
}

static void stop_threads(struct worker_pool *pool, unsigned started)
{
	pthread_mutex_lock(&pool->lock);
	pool->is_stopping = true;
	pthread_cond_broadcast(&pool->has_work);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < started; i++)
		pthread_join(pool->threads[i], NULL);
}

struct worker_pool *worker_pool_new(struct event_base *base, unsigned thread_count,
				    struct error *err)
{
	struct worker_pool *pool;
	sigset_t all, old;
	unsigned started = 0;
	int rc = 0;

	if (thread_count == 0 || thread_count > WORKER_THREADS_MAX) {
		error_set(err, ERROR_USAGE, "worker threads: %u is not in 1..%d", thread_count,
			  WORKER_THREADS_MAX);
		return NULL;
	}
	pool = calloc(1, sizeof(*pool));
	if (pool == NULL) {
		error_set(err, ERROR_SOFTWARE, "worker pool: out of memory");
		return NULL;
	}
	pool->base = base;
	pool->thread_count = thread_count;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->has_work, NULL);
	pool->wakeup_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (pool->wakeup_fd < 0) {
		error_set(err, ERROR_SOFTWARE, "worker pool: eventfd: %s", strerror(errno));
		goto fail;
	}
	pool->wakeup_event =
		event_new(base, pool->wakeup_fd, EV_READ | EV_PERSIST, on_wakeup, pool);
	if (pool->wakeup_event == NULL || event_add(pool->wakeup_event, NULL) != 0) {
		error_set(err, ERROR_SOFTWARE, "worker pool: cannot watch the eventfd");
		goto fail;
	}

	/* Threads inherit the mask: block everything so signals reach the loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (; started < thread_count; started++) {
		rc = pthread_create(&pool->threads[started], NULL, worker_main, pool);
		if (rc != 0)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		error_set(err, ERROR_SOFTWARE, "worker pool: pthread_create: %s", strerror(rc));
		stop_threads(pool, started);
		goto fail;
	}
	return pool;

fail:
	if (pool->wakeup_event != NULL)
		event_free(pool->wakeup_event);
	if (pool->wakeup_fd >= 0)
		close(pool->wakeup_fd);
	pthread_cond_destroy(&pool->has_work);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
	return NULL;
}

int worker_pool_submit(struct worker_pool *pool, worker_job_fn *job, worker_done_fn *done,
		       void *arg)
{
	struct worker_job *j = malloc(sizeof(*j));

	if (j == NULL)
		return -1;
	j->job = job;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&pool->lock);
	if (pool->is_stopping) {
		pthread_mutex_unlock(&pool->lock);
		free(j);
		return -1;
	}
	job_list_push(&pool->waiting, j);
	pool->waiting_count++;
	pthread_cond_signal(&pool->has_work);
	pthread_mutex_unlock(&pool->lock);
	return 0;
}

size_t worker_pool_pending(struct worker_pool *pool)
{
	size_t n;

	pthread_mutex_lock(&pool->lock);
	n = pool->waiting_count;
	pthread_mutex_unlock(&pool->lock);
	return n;
}

void worker_pool_free(struct worker_pool *pool)
{
	if (pool == NULL)
		return;
	/* Workers drain the waiting list before they see is_stopping and exit. */
	stop_threads(pool, pool->thread_count);
	run_finished(pool);
	event_free(pool->wakeup_event);
	close(pool->wakeup_fd);
	pthread_cond_destroy(&pool->has_work);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}
