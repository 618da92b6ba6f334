/*
 * manager: the queue manager — takes committed messages from the spool and
 * delivers each recipient, keeping per-recipient state on disk, so that a
 * message leaves the spool only when every recipient is done and a restart
 * neither loses nor repeats a delivery (docs/delivery.md).
 *
 * One attempt at a message: a worker job loads it and delivers the local
 * recipients; the remote ones go to delivery/outbound (SMTP on the loop);
 * a second worker job records every outcome, queues the DSNs the outcomes
 * call for (dsn.h) before the state that makes them final, and then removes
 * the message, or saves its next attempt (exponential backoff) and moves it
 * to deferred/. At most one attempt per message is in flight.
 *
 * Runs on the event-loop thread.
 */
#ifndef POSTGATE_QUEUE_MANAGER_H
#define POSTGATE_QUEUE_MANAGER_H

#include <pthread.h>
#include <stdbool.h>

#include <event2/event.h>

#include "core/config.h"
#include "core/error.h"
#include "core/worker.h"
#include "queue/spool.h"
#include "store/store.h"

/* The delay before attempt attempt_count + 1 after attempt_count attempts
 * (1 or more): initial_s doubled (attempt_count - 1) times, at most max_s. */
uint64_t queue_retry_delay_s(uint64_t initial_s, uint64_t max_s, uint32_t attempt_count);

struct queue_manager;

struct queue_manager_params {
	struct event_base *base;
	struct worker_pool *workers;
	struct queue_spool *spool;
	struct store *store; /* shared with other workers under store_lock */
	pthread_mutex_t *store_lock;
	const struct config *config; /* live: maildir_root */
};

struct queue_manager *queue_manager_new(const struct queue_manager_params *params,
					struct error *err);

/* At start, before the loop serves anyone: repair the spool (queue_spool_recover)
 * and schedule every message in it. Blocks. */
int queue_manager_recover(struct queue_manager *manager, struct error *err);

/* A message was just committed (is_fresh) or should be tried again now. */
void queue_manager_submit(struct queue_manager *manager, const char *id, bool is_fresh);

/* Messages known to the manager: being delivered or waiting for a retry. */
size_t queue_manager_active_count(const struct queue_manager *manager);

/* Shutting down: jobs that come back start no new job or retry timer. */
void queue_manager_stop(struct queue_manager *manager);

/* Frees timers and bookkeeping. Call after worker_pool_free, when no job is out. */
void queue_manager_free(struct queue_manager *manager);

/*
 * Administration (postgate queue, through the daemon's control socket). Loop
 * thread only; each does its one message's spool moves there (a few renames
 * and fsyncs). -1 with ERROR_NOT_FOUND for an ID not in the spool,
 * ERROR_USAGE for a malformed one, ERROR_TEMPORARY while stopping, and the
 * spool's error when a move fails.
 *
 * flush:   id NULL: every message not held; else that one (ERROR_DATA when it
 *          is held). It goes back to queue/ and is tried now, its retry
 *          timer cancelled; a message whose job is out is tried again when
 *          the job returns.
 * delete:  the message leaves the spool (queue_spool_finish) with no bounce;
 *          when its job is out, that happens as the job returns (0 now).
 * hold:    the message moves to hold/ and is never tried until released;
 *          held already: 0; job out: as the job returns.
 * release: a held message moves back to queue/ and is tried now
 *          (ERROR_DATA when it is not held).
 */
int queue_manager_flush(struct queue_manager *manager, const char *id, struct error *err);
int queue_manager_delete(struct queue_manager *manager, const char *id, struct error *err);
int queue_manager_hold(struct queue_manager *manager, const char *id, struct error *err);
int queue_manager_release(struct queue_manager *manager, const char *id, struct error *err);

#endif
