/*
 * manager: delivery of spooled messages. Each message is handled by one
 * worker job at a time: load the envelope and the state, deliver every
 * pending recipient, save the state, and remove the message when every
 * recipient is done. Results are logged back on the loop.
 *
 * Remote recipients are not delivered by this version (there is no SMTP
 * client yet): they stay pending in the spool, never lost, and the message
 * stays with them.
 */
#include "queue/manager.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "delivery/local.h"
#include "store/address.h"

struct queue_entry {
	struct queue_entry *next;
	struct queue_manager *manager;
	char id[QUEUE_ID_MAX + 1];
	bool is_running;  /* a job is out */
	bool is_again;	  /* submitted again while running */
	bool is_retry;	  /* not the first attempt: check for earlier copies */
	unsigned retry_s; /* the next retry delay */
	struct event *timer;
};

struct queue_manager {
	struct queue_manager_params params;
	struct queue_entry *entries;
	size_t entry_count;
	bool is_stopping;
};

enum queue_outcome_kind {
	QUEUE_OUTCOME_DELIVERED,
	QUEUE_OUTCOME_TEMPFAIL,
	QUEUE_OUTCOME_PERMFAIL,
	QUEUE_OUTCOME_REMOTE, /* left pending: no outbound delivery in this version */
};

struct queue_outcome {
	enum queue_outcome_kind kind;
	char address[ADDRESS_MAX + 1];
	char detail[DELIVERY_DETAIL_MAX];
};

struct queue_job {
	struct queue_entry *entry;
	int rc;
	struct error err;
	bool is_done; /* every recipient delivered or failed; files removed */
	uint64_t received_at;
	struct queue_outcome *outcomes;
	size_t outcome_count;
};

static void entry_free(struct queue_manager *m, struct queue_entry *entry)
{
	struct queue_entry **p = &m->entries;

	while (*p != NULL && *p != entry)
		p = &(*p)->next;
	if (*p == entry) {
		*p = entry->next;
		m->entry_count--;
	}
	if (entry->timer != NULL)
		event_free(entry->timer);
	free(entry);
}

static struct queue_entry *entry_find(struct queue_manager *m, const char *id)
{
	for (struct queue_entry *e = m->entries; e != NULL; e = e->next)
		if (strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

/* Which kind of recipient address is, now (accounts may have changed since
 * the message was accepted). Runs on the worker. */
static enum queue_outcome_kind route(struct queue_manager *m, const char *address,
				     char *mailbox_out, struct error *err)
{
	struct store_user *user = malloc(sizeof(*user));
	struct store_domain *domain = malloc(sizeof(*domain));
	char normalized[ADDRESS_MAX + 1], domain_name[ADDRESS_DOMAIN_MAX + 1];
	enum queue_outcome_kind kind = QUEUE_OUTCOME_TEMPFAIL;
	struct error lookup_err;

	if (user == NULL || domain == NULL) {
		error_set(err, ERROR_SOFTWARE, "out of memory");
		goto out;
	}
	if (store_address_normalize(span_from_cstr(address), normalized, &lookup_err) < 0) {
		/* Accepted only for relaying (authenticated), so not ours. */
		kind = QUEUE_OUTCOME_REMOTE;
		goto out;
	}
	span_copy_cstr(store_address_domain(normalized), domain_name, sizeof(domain_name));
	pthread_mutex_lock(m->params.store_lock);
	if (store_user_get(m->params.store, normalized, user, &lookup_err) == 0) {
		snprintf(mailbox_out, ADDRESS_MAX + 1, "%s", user->address);
		kind = QUEUE_OUTCOME_DELIVERED;
	} else if (lookup_err.kind != ERROR_NOT_FOUND) {
		*err = lookup_err;
	} else if (store_domain_get(m->params.store, domain_name, domain, &lookup_err) == 0) {
		error_set(err, ERROR_NOT_FOUND, "no such user");
		kind = QUEUE_OUTCOME_PERMFAIL;
	} else if (lookup_err.kind == ERROR_NOT_FOUND) {
		kind = QUEUE_OUTCOME_REMOTE;
	} else {
		*err = lookup_err;
	}
	pthread_mutex_unlock(m->params.store_lock);
out:
	free(user);
	free(domain);
	return kind;
}

static void job_run(void *arg)
{
	struct queue_job *job = arg;
	struct queue_entry *entry = job->entry;
	struct queue_manager *m = entry->manager;
	struct queue_spool *spool = m->params.spool;
	struct queue_envelope env;
	struct queue_state state = { 0 };
	int fd = -1;

	queue_envelope_init(&env);
	job->rc = -1;
	if (queue_spool_envelope_load(spool, entry->id, &env, &job->err) < 0 ||
	    queue_spool_state_load(spool, entry->id, env.recipient_count, &state, &job->err) < 0 ||
	    queue_spool_message_open(spool, entry->id, &fd, &job->err) < 0)
		goto out;
	job->received_at = env.received_at;
	job->outcomes = calloc(env.recipient_count, sizeof(*job->outcomes));
	if (job->outcomes == NULL) {
		error_set(&job->err, ERROR_SOFTWARE, "out of memory");
		goto out;
	}
	state.attempt_count++;
	for (size_t i = 0; i < env.recipient_count; i++) {
		struct queue_outcome *o;
		char mailbox[ADDRESS_MAX + 1], hint[QUEUE_ID_MAX + 24];
		struct error route_err = { 0 };
		enum delivery_result result;

		if (state.recipients[i].status != QUEUE_RECIPIENT_PENDING)
			continue;
		o = &job->outcomes[job->outcome_count++];
		snprintf(o->address, sizeof(o->address), "%s", env.recipients[i].address);
		o->kind = route(m, env.recipients[i].address, mailbox, &route_err);
		if (o->kind == QUEUE_OUTCOME_REMOTE) {
			snprintf(o->detail, sizeof(o->detail),
				 "remote delivery is not available in this version");
			continue;
		}
		if (o->kind != QUEUE_OUTCOME_DELIVERED) {
			snprintf(o->detail, sizeof(o->detail), "%.200s", route_err.message);
			if (o->kind == QUEUE_OUTCOME_PERMFAIL)
				queue_state_set(&state, i, QUEUE_RECIPIENT_FAILED,
						"550 5.1.1 No such user", &job->err);
			continue;
		}
		snprintf(hint, sizeof(hint), "%s-%zu", entry->id, i);
		result = delivery_local_deliver(m->params.config->maildir_root, mailbox,
						env.reverse_path, fd, hint, entry->is_retry,
						o->detail, sizeof(o->detail));
		if (result == DELIVERY_DONE) {
			queue_state_set(&state, i, QUEUE_RECIPIENT_DELIVERED, NULL, &job->err);
		} else if (result == DELIVERY_PERMFAIL) {
			o->kind = QUEUE_OUTCOME_PERMFAIL;
			queue_state_set(&state, i, QUEUE_RECIPIENT_FAILED, o->detail, &job->err);
		} else {
			o->kind = QUEUE_OUTCOME_TEMPFAIL;
		}
	}
	if (queue_state_is_done(&state)) {
		/* Nothing is left to do for anyone: the message leaves the spool. */
		if (queue_spool_finish(spool, entry->id, &job->err) < 0)
			goto out;
		job->is_done = true;
	} else if (queue_spool_state_save(spool, entry->id, &state, &job->err) < 0) {
		goto out;
	}
	job->rc = 0;
out:
	if (fd >= 0)
		close(fd);
	queue_state_clear(&state);
	queue_envelope_clear(&env);
}

static void on_retry(evutil_socket_t fd, short events, void *arg)
{
	struct queue_entry *entry = arg;

	(void) fd;
	(void) events;
	queue_manager_submit(entry->manager, entry->id, false);
}

static void schedule_retry(struct queue_entry *entry)
{
	struct queue_manager *m = entry->manager;
	struct timeval tv = { entry->retry_s, 0 };

	if (m->is_stopping)
		return;

	if (entry->timer == NULL)
		entry->timer = evtimer_new(m->params.base, on_retry, entry);
	if (entry->timer == NULL) {
		log_error("qid=%s queue cannot schedule a retry: out of memory", entry->id);
		return;
	}
	evtimer_add(entry->timer, &tv);
	log_info("qid=%s queue deferred retry_in_s=%u", entry->id, entry->retry_s);
	entry->retry_s =
		entry->retry_s * 2 > QUEUE_RETRY_MAX_S ? QUEUE_RETRY_MAX_S : entry->retry_s * 2;
}

static void job_done(void *arg)
{
	struct queue_job *job = arg;
	struct queue_entry *entry = job->entry;
	struct queue_manager *m = entry->manager;
	uint64_t now_ms = (uint64_t) time(NULL) * 1000;
	uint64_t delay_ms = now_ms > job->received_at * 1000 ? now_ms - job->received_at * 1000 : 0;
	bool has_tempfail = job->rc < 0;
	static const char *const results[] = {
		[QUEUE_OUTCOME_DELIVERED] = "delivered",
		[QUEUE_OUTCOME_TEMPFAIL] = "deferred",
		[QUEUE_OUTCOME_PERMFAIL] = "failed",
		[QUEUE_OUTCOME_REMOTE] = "pending",
	};

	entry->is_running = false;
	entry->is_retry = true;
	for (size_t i = 0; i < job->outcome_count; i++) {
		const struct queue_outcome *o = &job->outcomes[i];
		char to[LOG_ESCAPED_CAP], detail[LOG_ESCAPED_CAP];

		if (o->kind == QUEUE_OUTCOME_TEMPFAIL)
			has_tempfail = true;
		log_write(o->kind == QUEUE_OUTCOME_DELIVERED ? LOG_LEVEL_INFO : LOG_LEVEL_WARNING,
			  "qid=%s delivery to=%s via=%s result=%s delay_ms=%llu detail=%s",
			  entry->id, log_escape(span_from_cstr(o->address), to),
			  o->kind == QUEUE_OUTCOME_REMOTE ? "none" : "maildir", results[o->kind],
			  (unsigned long long) delay_ms,
			  log_escape(span_from_cstr(o->detail), detail));
	}
	if (job->rc < 0)
		log_warning("qid=%s queue attempt failed: %s", entry->id, job->err.message);
	if (job->is_done)
		log_info("qid=%s queue removed reason=done", entry->id);
	{
		bool is_done = job->is_done;

		free(job->outcomes);
		free(job);
		if (is_done) {
			entry_free(m, entry);
		} else if (entry->is_again) {
			queue_manager_submit(m, entry->id, false);
		} else if (has_tempfail) {
			schedule_retry(entry);
		} else {
			/* Only recipients this version cannot deliver are left:
			 * the message waits in the spool. */
			entry_free(m, entry);
		}
	}
}

static void start_job(struct queue_entry *entry)
{
	struct queue_job *job = calloc(1, sizeof(*job));

	if (job == NULL) {
		schedule_retry(entry);
		return;
	}
	job->entry = entry;
	entry->is_running = true;
	entry->is_again = false;
	if (worker_pool_submit(entry->manager->params.workers, job_run, job_done, job) < 0) {
		entry->is_running = false;
		free(job);
		schedule_retry(entry);
	}
}

void queue_manager_submit(struct queue_manager *m, const char *id, bool is_fresh)
{
	struct queue_entry *entry;

	if (m->is_stopping)
		return; /* it is on disk: the next start delivers it */
	entry = entry_find(m, id);
	if (entry == NULL) {
		entry = calloc(1, sizeof(*entry));
		if (entry == NULL) {
			/* It is on disk: the next start delivers it. */
			log_error("qid=%s queue out of memory; delivery waits for a restart", id);
			return;
		}
		entry->manager = m;
		snprintf(entry->id, sizeof(entry->id), "%s", id);
		entry->is_retry = !is_fresh;
		entry->retry_s = QUEUE_RETRY_FIRST_S;
		entry->next = m->entries;
		m->entries = entry;
		m->entry_count++;
	}
	if (entry->is_running) {
		entry->is_again = true;
		return;
	}
	if (entry->timer != NULL)
		evtimer_del(entry->timer);
	start_job(entry);
}

struct queue_manager *queue_manager_new(const struct queue_manager_params *params,
					struct error *err)
{
	struct queue_manager *m = calloc(1, sizeof(*m));

	if (m == NULL) {
		error_set(err, ERROR_SOFTWARE, "out of memory");
		return NULL;
	}
	m->params = *params;
	return m;
}

static void recovered(void *ctx, const char *id, enum queue_place place)
{
	if (place == QUEUE_PLACE_HOLD)
		return; /* the administrator set it aside */
	queue_manager_submit(ctx, id, false);
}

int queue_manager_recover(struct queue_manager *m, struct error *err)
{
	return queue_spool_recover(m->params.spool, recovered, m, err);
}

void queue_manager_stop(struct queue_manager *m)
{
	m->is_stopping = true;
}

size_t queue_manager_active_count(const struct queue_manager *m)
{
	return m->entry_count;
}

void queue_manager_free(struct queue_manager *m)
{
	if (m == NULL)
		return;
	while (m->entries != NULL)
		entry_free(m, m->entries);
	free(m);
}
