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

/* What the administrator asked for while the message's job was out
 * (queue_manager_delete, queue_manager_hold): done when the job returns. */
enum queue_entry_action {
	QUEUE_ENTRY_ACTION_NONE = 0,
	QUEUE_ENTRY_ACTION_DELETE,
	QUEUE_ENTRY_ACTION_HOLD,
};

struct queue_entry {
	struct queue_entry *next;
	struct queue_manager *manager;
	char id[QUEUE_ID_MAX + 1];
	bool is_running;  /* a job is out */
	bool is_again;	  /* submitted again while running */
	bool is_retry;	  /* not the first attempt: check for earlier copies */
	unsigned retry_s; /* the next retry delay */
	struct event *timer;
	enum queue_entry_action pending; /* asked for while a job was out */
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

static void pending_action_apply(struct queue_entry *entry);

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
		} else if (entry->pending != QUEUE_ENTRY_ACTION_NONE) {
			pending_action_apply(entry);
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

/* --- administration: postgate queue, through the control socket -------- */

/*
 * These run on the loop thread and do their one message's spool work there
 * (a rename or unlink per file and the directory fsyncs): short enough, rare,
 * and it keeps the order of operations plain (docs/decisions/0120).
 */

static const char *const place_names[] = {
	[QUEUE_PLACE_ACTIVE] = "queue",
	[QUEUE_PLACE_DEFERRED] = "deferred",
	[QUEUE_PLACE_HOLD] = "hold",
};

static int admin_check(struct queue_manager *m, const char *id, enum queue_place *place_out,
		       struct error *err)
{
	if (m->is_stopping)
		return error_set(err, ERROR_TEMPORARY, "the daemon is shutting down");
	if (id != NULL && !queue_id_is_valid(span_from_cstr(id)))
		return error_set(err, ERROR_USAGE, "not a queue ID");
	if (id != NULL && queue_spool_locate(m->params.spool, id, place_out, err) < 0) {
		if (err->kind == ERROR_NOT_FOUND)
			return error_set(err, ERROR_NOT_FOUND, "no message %s in the queue", id);
		return -1;
	}
	return 0;
}

/* Take the message out of the manager's hands (no job is out): its retry
 * timer goes with the entry. */
static void entry_forget(struct queue_manager *m, const char *id)
{
	struct queue_entry *entry = entry_find(m, id);

	if (entry != NULL)
		entry_free(m, entry);
}

static int hold_now(struct queue_manager *m, const char *id, struct error *err)
{
	entry_forget(m, id);
	if (queue_spool_move(m->params.spool, id, QUEUE_PLACE_HOLD, err) < 0)
		return -1;
	log_info("qid=%s queue held", id);
	return 0;
}

static int delete_now(struct queue_manager *m, const char *id, struct error *err)
{
	entry_forget(m, id);
	if (queue_spool_finish(m->params.spool, id, err) < 0)
		return -1;
	log_info("qid=%s queue removed reason=deleted", id);
	return 0;
}

static void pending_action_apply(struct queue_entry *entry)
{
	struct queue_manager *m = entry->manager;
	enum queue_entry_action action = entry->pending;
	char id[QUEUE_ID_MAX + 1];
	struct error err;
	int rc;

	snprintf(id, sizeof(id), "%s", entry->id);
	entry_free(m, entry);
	rc = action == QUEUE_ENTRY_ACTION_DELETE ? delete_now(m, id, &err) : hold_now(m, id, &err);
	if (rc < 0)
		log_error("qid=%s queue %s failed: %s", id,
			  action == QUEUE_ENTRY_ACTION_DELETE ? "delete" : "hold", err.message);
}

/* Flush: a message not held goes back to queue/ and is tried now. */
static int flush_one(struct queue_manager *m, const char *id, enum queue_place place,
		     struct error *err)
{
	if (place == QUEUE_PLACE_HOLD)
		return 0;
	if (place != QUEUE_PLACE_ACTIVE) {
		struct queue_entry *entry = entry_find(m, id);

		/* A job out owns the message's files: it is tried again
		 * right after (submit below), wherever it left them. */
		if ((entry == NULL || !entry->is_running) &&
		    queue_spool_move(m->params.spool, id, QUEUE_PLACE_ACTIVE, err) < 0)
			return -1;
	}
	queue_manager_submit(m, id, false);
	return 0;
}

struct flush_walk {
	char (*ids)[QUEUE_ID_MAX + 1];
	enum queue_place *places;
	size_t count, cap;
	bool is_short; /* out of memory */
};

static void flush_collect(void *ctx, const char *id, enum queue_place place)
{
	struct flush_walk *w = ctx;

	if (w->is_short || place == QUEUE_PLACE_HOLD)
		return;
	if (w->count == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		void *ids = realloc(w->ids, cap * sizeof(*w->ids));
		void *places = ids ? realloc(w->places, cap * sizeof(*w->places)) : NULL;

		if (ids != NULL)
			w->ids = ids;
		if (places == NULL) {
			w->is_short = true;
			return;
		}
		w->places = places;
		w->cap = cap;
	}
	snprintf(w->ids[w->count], sizeof(w->ids[w->count]), "%s", id);
	w->places[w->count++] = place;
}

int queue_manager_flush(struct queue_manager *m, const char *id, struct error *err)
{
	enum queue_place place;
	struct flush_walk walk = { 0 };
	int rc = 0;

	if (admin_check(m, id, &place, err) < 0)
		return -1;
	if (id != NULL) {
		if (place == QUEUE_PLACE_HOLD)
			return error_set(err, ERROR_DATA, "message %s is held: release it", id);
		if (flush_one(m, id, place, err) < 0)
			return -1;
		log_info("qid=%s queue flushed", id);
		return 0;
	}
	/* Listed first, acted on after: nothing moves while the spool is read. */
	if (queue_spool_list(m->params.spool, flush_collect, &walk, err) < 0) {
		rc = -1;
	} else if (walk.is_short) {
		rc = error_set(err, ERROR_SOFTWARE, "out of memory");
	} else {
		for (size_t i = 0; i < walk.count && rc == 0; i++)
			rc = flush_one(m, walk.ids[i], walk.places[i], err);
		if (rc == 0)
			log_info("queue flushed messages=%zu", walk.count);
	}
	free(walk.ids);
	free(walk.places);
	return rc;
}

int queue_manager_delete(struct queue_manager *m, const char *id, struct error *err)
{
	enum queue_place place;
	struct queue_entry *entry;

	if (id == NULL)
		return error_set(err, ERROR_USAGE, "delete needs a queue ID");
	if (admin_check(m, id, &place, err) < 0)
		return -1;
	entry = entry_find(m, id);
	if (entry != NULL && entry->is_running) {
		entry->pending = QUEUE_ENTRY_ACTION_DELETE;
		log_info("qid=%s queue delete pending=delivery-attempt", id);
		return 0;
	}
	return delete_now(m, id, err);
}

int queue_manager_hold(struct queue_manager *m, const char *id, struct error *err)
{
	enum queue_place place;
	struct queue_entry *entry;

	if (id == NULL)
		return error_set(err, ERROR_USAGE, "hold needs a queue ID");
	if (admin_check(m, id, &place, err) < 0)
		return -1;
	if (place == QUEUE_PLACE_HOLD)
		return 0;
	entry = entry_find(m, id);
	if (entry != NULL && entry->is_running) {
		if (entry->pending == QUEUE_ENTRY_ACTION_NONE)
			entry->pending = QUEUE_ENTRY_ACTION_HOLD;
		log_info("qid=%s queue hold pending=delivery-attempt", id);
		return 0;
	}
	return hold_now(m, id, err);
}

int queue_manager_release(struct queue_manager *m, const char *id, struct error *err)
{
	enum queue_place place;

	if (id == NULL)
		return error_set(err, ERROR_USAGE, "release needs a queue ID");
	if (admin_check(m, id, &place, err) < 0)
		return -1;
	if (place != QUEUE_PLACE_HOLD)
		return error_set(err, ERROR_DATA, "message %s is not held (it is in %s/)", id,
				 place_names[place]);
	if (queue_spool_move(m->params.spool, id, QUEUE_PLACE_ACTIVE, err) < 0)
		return -1;
	log_info("qid=%s queue released", id);
	queue_manager_submit(m, id, false);
	return 0;
}
