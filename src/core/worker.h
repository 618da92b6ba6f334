/*
 * worker: a small pool of threads that run blocking work (fsync, Maildir
 * writes, password hashing, database queries) away from the event loop, and
 * hand each result back to the loop thread.
 *
 * A job is two functions and one argument: `job` runs on some worker thread,
 * then `done` runs on the event-loop thread (the thread that runs the
 * event_base given to worker_pool_new). Done callbacks run in the order the
 * jobs finished, which need not be the order they were submitted in when
 * there is more than one thread. The pool never touches `arg`; whoever
 * submits a job owns it, and `done` is where it is usually freed.
 *
 * Completion reaches the loop through an eventfd watched by a libevent
 * event, so the loop sleeps in its own poll and no thread but the loop thread
 * ever calls into libevent. Worker threads block every signal: signals go to
 * the loop thread, where libevent's signal events expect them.
 *
 * The queue of waiting jobs is bounded only by memory; worker_pool_pending()
 * reports its depth for metrics and for callers that want to push back.
 */
#ifndef POSTGATE_CORE_WORKER_H
#define POSTGATE_CORE_WORKER_H

#include <stddef.h>

#include "core/error.h"

struct event_base;
struct worker_pool;

#define WORKER_THREADS_MAX 64

/* Runs on a worker thread. Must not call libevent or touch loop-owned state. */
typedef void worker_job_fn(void *arg);
/* Runs afterwards on the event-loop thread, with the same arg. */
typedef void worker_done_fn(void *arg);

/*
 * Start thread_count threads (1..WORKER_THREADS_MAX) whose completions are
 * delivered on base. Call from the loop thread (or before the loop runs).
 * Returns the pool, or NULL with err filled (ERROR_USAGE for a bad count,
 * ERROR_SOFTWARE when a thread, eventfd or event cannot be made).
 */
struct worker_pool *worker_pool_new(struct event_base *base, unsigned thread_count,
				    struct error *err);

/*
 * Queue job to run on a worker thread, then done (may be NULL) on the loop
 * thread. Any thread may submit, including a done callback. Returns 0, or -1
 * when memory runs out or the pool is being freed (the job is then not run
 * and done is not called).
 */
int worker_pool_submit(struct worker_pool *pool, worker_job_fn *job, worker_done_fn *done,
		       void *arg);

/* Jobs submitted and not yet picked up by a worker thread (queue depth). */
size_t worker_pool_pending(struct worker_pool *pool);

/*
 * Run every job still queued, run the done callbacks of all jobs submitted
 * so far (on the calling thread, which must be the loop thread, and not from
 * inside a job or done callback), join the threads and free the pool. A done
 * callback that submits during this gets -1. NULL does nothing.
 */
void worker_pool_free(struct worker_pool *pool);

#endif
