/*
 * manager: delivery of spooled messages, one attempt at a time per message.
 *
 *   load (worker)     envelope, state, the message file; local recipients
 *                     delivered into their Maildirs
 *   remote (loop)     one delivery/outbound job per recipient domain
 *   finish (worker)   outcomes into the state; DSNs enqueued (committed)
 *                     before the state that makes them due is saved; then
 *                     the message is removed, or its next attempt saved and
 *                     it moves to deferred/
 *   done (loop)       logs, submits the DSNs, arms the retry timer
 *
 * Crash windows (docs/delivery.md): a local delivery is found again by its
 * unique name; a remote 250 not yet written to ID.state is sent again; a DSN
 * committed before its state write may be sent twice, never lost.
 */
#include "queue/manager.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "delivery/local.h"
#include "delivery/outbound.h"
#include "queue/dsn.h"
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
	bool is_running; /* an attempt is out */
	bool is_again;	 /* submitted again while running */
	bool is_retry;	 /* not the first attempt: check for earlier copies */
	struct event *timer;
	enum queue_entry_action pending; /* asked for while a job was out */
};

struct queue_manager {
	struct queue_manager_params params;
	struct queue_entry *entries;
	size_t entry_count;
	bool is_stopping;
	struct delivery_outbound *outbound;
};

/* What became of one recipient in this attempt. */
enum attempt_result {
	ATTEMPT_NONE = 0, /* not tried (done before, or not reached) */
	ATTEMPT_DELIVERED,
	ATTEMPT_DEFERRED,
	ATTEMPT_FAILED,
};

struct attempt_recipient {
	enum attempt_result result;
	bool is_remote;
	bool is_relayed; /* remote without DSN support: we report success */
	char via[16];	 /* "maildir", "smtp" */
	char reply[DELIVERY_DETAIL_MAX];
	char remote_mta[DELIVERY_HOST_NAME_MAX];
};

struct queue_job {
	struct queue_entry *entry;
	int rc;
	struct error err;
	bool is_done;	 /* every recipient delivered or failed; files removed */
	bool is_loaded;	 /* env and state hold the message */
	bool is_expired; /* the pending recipients failed for the queue lifetime */
	struct queue_envelope env;
	struct queue_state state;
	int fd;
	uint64_t size;
	uint64_t now;
	struct attempt_recipient *recipients; /* env.recipient_count */
	struct delivery_outbound_job *remote_jobs;
	size_t remote_job_count, remote_pending;
	struct delivery_recipient *remote_recipients; /* env.recipient_count at most */
	size_t *remote_index; /* remote_recipients[k] is envelope recipient remote_index[k] */
	char dsn_id[QUEUE_ID_MAX + 1]; /* a DSN enqueued by finish */
};

uint64_t queue_retry_delay_s(uint64_t initial_s, uint64_t max_s, uint32_t attempt_count)
{
	uint64_t delay = initial_s;

	for (uint32_t i = 1; i < attempt_count && delay < max_s; i++)
		delay = delay > max_s / 2 ? max_s : delay * 2;
	return delay < max_s ? delay : max_s;
}

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

static void job_free(struct queue_job *job)
{
	if (job->fd >= 0)
		close(job->fd);
	queue_state_clear(&job->state);
	queue_envelope_clear(&job->env);
	free(job->recipients);
	free(job->remote_jobs);
	free(job->remote_recipients);
	free(job->remote_index);
	free(job);
}

/* --- routing: local or remote -------------------------------------------- */

enum route_kind { ROUTE_LOCAL, ROUTE_REMOTE, ROUTE_NO_USER, ROUTE_TEMPFAIL };

/* Which kind of recipient address is, now (accounts may have changed since
 * the message was accepted). Runs on the worker. */
static enum route_kind route(struct queue_manager *m, const char *address, char *mailbox_out,
			     struct error *err)
{
	struct store_user *user = malloc(sizeof(*user));
	struct store_domain *domain = malloc(sizeof(*domain));
	char normalized[ADDRESS_MAX + 1], domain_name[ADDRESS_DOMAIN_MAX + 1];
	enum route_kind kind = ROUTE_TEMPFAIL;
	struct error lookup_err;

	if (user == NULL || domain == NULL) {
		error_set(err, ERROR_SOFTWARE, "out of memory");
		goto out;
	}
	if (store_address_normalize(span_from_cstr(address), normalized, &lookup_err) < 0) {
		/* Accepted only for relaying (authenticated), so not ours. */
		kind = ROUTE_REMOTE;
		goto out;
	}
	span_copy_cstr(store_address_domain(normalized), domain_name, sizeof(domain_name));
	pthread_mutex_lock(m->params.store_lock);
	if (store_user_get(m->params.store, normalized, user, &lookup_err) == 0) {
		snprintf(mailbox_out, ADDRESS_MAX + 1, "%s", user->address);
		kind = ROUTE_LOCAL;
	} else if (lookup_err.kind != ERROR_NOT_FOUND) {
		*err = lookup_err;
	} else if (store_domain_get(m->params.store, domain_name, domain, &lookup_err) == 0) {
		error_set(err, ERROR_NOT_FOUND, "no such user");
		kind = ROUTE_NO_USER;
	} else if (lookup_err.kind == ERROR_NOT_FOUND) {
		kind = ROUTE_REMOTE;
	} else {
		*err = lookup_err;
	}
	pthread_mutex_unlock(m->params.store_lock);
out:
	free(user);
	free(domain);
	return kind;
}

/* --- load: the first worker job ---------------------------------------------- */

static void load_run(void *arg)
{
	struct queue_job *job = arg;
	struct queue_entry *entry = job->entry;
	struct queue_manager *m = entry->manager;
	struct queue_spool *spool = m->params.spool;
	struct queue_envelope *env = &job->env;
	off_t size;

	job->rc = -1;
	job->now = (uint64_t) time(NULL);
	if (queue_spool_envelope_load(spool, entry->id, env, &job->err) < 0 ||
	    queue_spool_state_load(spool, entry->id, env->recipient_count, &job->state, &job->err) <
		    0 ||
	    queue_spool_message_open(spool, entry->id, &job->fd, &job->err) < 0)
		return;
	job->is_loaded = true;
	size = lseek(job->fd, 0, SEEK_END);
	job->size = size > 0 ? (uint64_t) size : 0;
	job->recipients = calloc(env->recipient_count, sizeof(*job->recipients));
	job->remote_recipients = calloc(env->recipient_count, sizeof(*job->remote_recipients));
	job->remote_index = calloc(env->recipient_count, sizeof(*job->remote_index));
	if (job->recipients == NULL || job->remote_recipients == NULL ||
	    job->remote_index == NULL) {
		error_set(&job->err, ERROR_SOFTWARE, "out of memory");
		return;
	}
	for (size_t i = 0; i < env->recipient_count; i++) {
		struct attempt_recipient *a = &job->recipients[i];
		char mailbox[ADDRESS_MAX + 1], hint[QUEUE_ID_MAX + 24];
		struct error route_err = { 0 };
		enum delivery_result result;

		if (job->state.recipients[i].status != QUEUE_RECIPIENT_PENDING)
			continue;
		switch (route(m, env->recipients[i].address, mailbox, &route_err)) {
		case ROUTE_REMOTE:
			a->is_remote = true;
			continue;
		case ROUTE_NO_USER:
			a->result = ATTEMPT_FAILED;
			snprintf(a->via, sizeof(a->via), "maildir");
			snprintf(a->reply, sizeof(a->reply), "550 5.1.1 No such user");
			continue;
		case ROUTE_TEMPFAIL:
			a->result = ATTEMPT_DEFERRED;
			snprintf(a->via, sizeof(a->via), "maildir");
			snprintf(a->reply, sizeof(a->reply), "451 4.3.0 %.200s", route_err.message);
			continue;
		case ROUTE_LOCAL:
			break;
		}
		snprintf(a->via, sizeof(a->via), "maildir");
		snprintf(hint, sizeof(hint), "%s-%zu", entry->id, i);
		result = delivery_local_deliver(m->params.config->maildir_root, mailbox,
						env->reverse_path, job->fd, hint, entry->is_retry,
						a->reply, sizeof(a->reply));
		a->result = result == DELIVERY_DONE	  ? ATTEMPT_DELIVERED
			    : result == DELIVERY_PERMFAIL ? ATTEMPT_FAILED
							  : ATTEMPT_DEFERRED;
		/* Every outcome reads as an SMTP reply, as a remote one does: the
		 * DSN's Status comes from its enhanced code (RFC 3463: 2.0.0
		 * delivered; 4.3.0/5.2.0 a mail system or mailbox trouble). */
		{
			char detail[DELIVERY_DETAIL_MAX];

			snprintf(detail, sizeof(detail), "%s %.200s",
				 result == DELIVERY_DONE       ? "250 2.0.0 delivered as"
				 : result == DELIVERY_PERMFAIL ? "550 5.2.0"
							       : "451 4.3.0",
				 a->reply);
			snprintf(a->reply, sizeof(a->reply), "%s", detail);
		}
	}
	job->rc = 0;
}

/* --- finish: the second worker job ------------------------------------------- */

/* Read up to max_bytes + 1 of the message from offset 0. */
static char *read_original(int fd, uint64_t max_bytes, size_t *len_out)
{
	char *buf = malloc(max_bytes + 1);
	size_t len = 0;

	if (buf == NULL)
		return NULL;
	while (len < max_bytes + 1) {
		ssize_t n = pread(fd, buf + len, max_bytes + 1 - len, (off_t) len);

		if (n <= 0)
			break;
		len += (size_t) n;
	}
	*len_out = len;
	return buf;
}

static size_t header_length(const char *text, size_t len)
{
	for (size_t i = 0; i + 3 < len; i++)
		if (memcmp(text + i, "\r\n\r\n", 4) == 0)
			return i + 2;
	return len;
}

/*
 * Enqueue one DSN for the recipients whose outcome calls for one. Returns 0
 * when none is due or it is committed, -1 when it could not be (the attempt
 * then fails as a whole: nothing is recorded, so nothing is lost).
 */
static int enqueue_dsn(struct queue_job *job, struct error *err)
{
	struct queue_manager *m = job->entry->manager;
	const struct config *config = m->params.config;
	struct queue_envelope *env = &job->env;
	struct queue_dsn_recipient *list;
	struct queue_dsn_params params = { 0 };
	struct queue_envelope dsn_env;
	struct queue_message *message = NULL;
	struct queue_recipient *to;
	size_t count = 0, original_len = 0;
	char *original = NULL, *text = NULL, boundary[64];
	size_t text_len = 0;
	bool has_failed = false;
	/* Decided once for the attempt: the one delay DSN lists every recipient
	 * deferred now, not only the first (is_delay_warned is set below). */
	bool is_delay_due = config->delay_warning_ms > 0 && !job->state.is_delay_warned &&
			    job->now >= env->received_at + config->delay_warning_ms / 1000;
	uint32_t r = 0;
	int rc = -1;

	/* Never a DSN about a DSN (RFC 3461 6.2; RFC 5321 4.5.5). */
	if (env->reverse_path[0] == '\0')
		return 0;
	list = calloc(env->recipient_count, sizeof(*list));
	if (list == NULL)
		return error_set(err, ERROR_SOFTWARE, "out of memory");
	for (size_t i = 0; i < env->recipient_count; i++) {
		const struct attempt_recipient *a = &job->recipients[i];
		const struct queue_recipient *rcpt = &env->recipients[i];
		enum queue_dsn_action action;

		if (a->result == ATTEMPT_FAILED)
			action = QUEUE_DSN_FAILED;
		else if (a->result == ATTEMPT_DELIVERED && a->is_relayed)
			action = QUEUE_DSN_RELAYED;
		else if (a->result == ATTEMPT_DELIVERED && !a->is_remote)
			action = QUEUE_DSN_DELIVERED;
		else if (a->result == ATTEMPT_DEFERRED && is_delay_due)
			action = QUEUE_DSN_DELAYED;
		else
			continue;
		if (!queue_dsn_wanted(rcpt->notify, action))
			continue;
		has_failed |= action == QUEUE_DSN_FAILED;
		list[count++] = (struct queue_dsn_recipient){
			.address = rcpt->address,
			.orcpt = rcpt->orcpt,
			.action = action,
			.diagnostic = a->reply[0] ? a->reply : NULL,
			.remote_mta = a->remote_mta[0] ? a->remote_mta : NULL,
			.last_attempt_at = job->now,
		};
		if (action == QUEUE_DSN_DELAYED)
			job->state.is_delay_warned = true;
	}
	if (count == 0) {
		free(list);
		return 0;
	}
	queue_envelope_init(&dsn_env);
	original = read_original(job->fd, config->bounce_return_max, &original_len);
	if (original == NULL) {
		error_set(err, ERROR_SOFTWARE, "out of memory");
		goto out;
	}
	params.is_full = has_failed &&
			 queue_dsn_returns_full(env->ret, job->size, config->bounce_return_max) &&
			 original_len == job->size;
	if (!params.is_full)
		original_len = header_length(original, original_len);
	getrandom(&r, sizeof(r), GRND_NONBLOCK);
	snprintf(boundary, sizeof(boundary), "%s/%08x/dsn", job->entry->id, r);
	params.reporting_mta = config->hostname;
	params.queue_id = job->entry->id;
	params.sender = env->reverse_path;
	params.envid = env->envid;
	params.arrival_at = env->received_at;
	params.now = job->now;
	params.boundary = boundary;
	params.recipients = list;
	params.recipient_count = count;
	params.original = span_make(original, original_len);
	if (queue_dsn_build(&params, &text, &text_len, err) < 0)
		goto out;
	if (queue_envelope_string_set(&dsn_env.reverse_path, span_from_cstr(""), err) < 0 ||
	    queue_envelope_string_set(&dsn_env.client_address, span_from_cstr("127.0.0.1"), err) <
		    0 ||
	    queue_envelope_string_set(&dsn_env.helo, span_from_cstr(config->hostname), err) < 0 ||
	    queue_envelope_add_recipient(&dsn_env, span_from_cstr(env->reverse_path), &to, err) < 0)
		goto out;
	dsn_env.received_at = job->now;
	dsn_env.is_smtputf8 = env->is_smtputf8;
	dsn_env.body_type = params.is_full ? env->body_type : QUEUE_BODY_7BIT;
	/* A DSN itself asks for no DSN (RFC 3461 6.2). */
	to->notify = QUEUE_NOTIFY_NEVER;
	if (queue_spool_begin(m->params.spool, &message, err) < 0)
		goto out;
	snprintf(job->dsn_id, sizeof(job->dsn_id), "%s", queue_message_id(message));
	if (queue_message_append(message, text, text_len, err) < 0 ||
	    queue_spool_commit(message, &dsn_env, err) < 0) {
		queue_spool_abort(message);
		job->dsn_id[0] = '\0';
		goto out;
	}
	rc = 0;
out:
	queue_envelope_clear(&dsn_env);
	free(original);
	free(text);
	free(list);
	return rc;
}

static void finish_run(void *arg)
{
	struct queue_job *job = arg;
	struct queue_entry *entry = job->entry;
	struct queue_manager *m = entry->manager;
	const struct config *config = m->params.config;
	struct queue_state *state = &job->state;
	struct queue_envelope *env = &job->env;
	enum queue_place place;
	bool is_expired;

	job->rc = -1;
	job->now = (uint64_t) time(NULL);
	is_expired = job->now >= env->received_at + config->max_queue_lifetime_ms / 1000;
	for (size_t i = 0; i < env->recipient_count; i++) {
		struct attempt_recipient *a = &job->recipients[i];

		if (state->recipients[i].status != QUEUE_RECIPIENT_PENDING)
			continue;
		/* Past the queue lifetime every recipient still pending fails
		 * (RFC 5321 4.5.4.1: "give up"), with its last reply. */
		if (is_expired && a->result != ATTEMPT_DELIVERED && a->result != ATTEMPT_FAILED) {
			char reply[DELIVERY_DETAIL_MAX];
			const char *last = a->reply[0]			? a->reply
					   : state->recipients[i].reply ? state->recipients[i].reply
									: "no attempt succeeded";

			snprintf(reply, sizeof(reply), "554 5.4.7 expired in queue; last: %.200s",
				 last);
			snprintf(a->reply, sizeof(a->reply), "%s", reply);
			a->result = ATTEMPT_FAILED;
			job->is_expired = true;
		}
	}
	/* The DSN is on disk before the state that makes it due. */
	if (enqueue_dsn(job, &job->err) < 0)
		return;
	for (size_t i = 0; i < env->recipient_count; i++) {
		const struct attempt_recipient *a = &job->recipients[i];
		enum queue_recipient_status status =
			a->result == ATTEMPT_DELIVERED ? QUEUE_RECIPIENT_DELIVERED
			: a->result == ATTEMPT_FAILED  ? QUEUE_RECIPIENT_FAILED
						       : QUEUE_RECIPIENT_PENDING;

		if (a->result == ATTEMPT_NONE)
			continue;
		if (queue_state_set(state, i, status, a->reply[0] ? a->reply : NULL, &job->err) < 0)
			return;
	}
	if (queue_state_is_done(state)) {
		/* Nothing is left to do for anyone: the message leaves the spool. */
		if (queue_spool_finish(m->params.spool, entry->id, &job->err) < 0)
			return;
		job->is_done = true;
		job->rc = 0;
		return;
	}
	state->attempt_count++;
	state->next_attempt_at =
		job->now + queue_retry_delay_s(config->retry_initial_ms / 1000,
					       config->retry_max_ms / 1000, state->attempt_count);
	if (queue_spool_state_save(m->params.spool, entry->id, state, &job->err) < 0)
		return;
	/* A message the administrator held meanwhile stays held. */
	if (queue_spool_locate(m->params.spool, entry->id, &place, &job->err) < 0)
		return;
	if (place == QUEUE_PLACE_ACTIVE &&
	    queue_spool_move(m->params.spool, entry->id, QUEUE_PLACE_DEFERRED, &job->err) < 0)
		return;
	job->rc = 0;
}

/* --- the loop side ----------------------------------------------------------- */

static void start_job(struct queue_entry *entry);

static void on_retry(evutil_socket_t fd, short events, void *arg)
{
	struct queue_entry *entry = arg;

	(void) fd;
	(void) events;
	queue_manager_submit(entry->manager, entry->id, false);
}

static void schedule_at(struct queue_entry *entry, uint64_t delay_s)
{
	struct queue_manager *m = entry->manager;
	struct timeval tv = { (time_t) delay_s, 0 };

	if (m->is_stopping)
		return;
	if (entry->timer == NULL)
		entry->timer = evtimer_new(m->params.base, on_retry, entry);
	if (entry->timer == NULL) {
		log_error("qid=%s queue cannot schedule a retry: out of memory", entry->id);
		return;
	}
	evtimer_add(entry->timer, &tv);
}

static void log_outcomes(struct queue_job *job)
{
	static const char *const words[] = {
		[ATTEMPT_NONE] = "none",
		[ATTEMPT_DELIVERED] = "delivered",
		[ATTEMPT_DEFERRED] = "deferred",
		[ATTEMPT_FAILED] = "failed",
	};
	uint64_t delay_s = job->now > job->env.received_at ? job->now - job->env.received_at : 0;

	for (size_t i = 0; i < job->env.recipient_count; i++) {
		const struct attempt_recipient *a = &job->recipients[i];
		char to[LOG_ESCAPED_CAP], detail[LOG_ESCAPED_CAP];

		if (a->result == ATTEMPT_NONE)
			continue;
		metrics_delivery(a->result == ATTEMPT_DELIVERED	 ? METRICS_DELIVERY_DELIVERED
				 : a->result == ATTEMPT_DEFERRED ? METRICS_DELIVERY_DEFERRED
								 : METRICS_DELIVERY_FAILED,
				 a->via, delay_s * 1000);
		log_write(a->result == ATTEMPT_DELIVERED ? LOG_LEVEL_INFO : LOG_LEVEL_WARNING,
			  "qid=%s delivery to=%s via=%s result=%s delay_ms=%llu relay=%s "
			  "detail=%s",
			  job->entry->id,
			  log_escape(span_from_cstr(job->env.recipients[i].address), to), a->via,
			  words[a->result], (unsigned long long) delay_s * 1000,
			  a->remote_mta[0] ? a->remote_mta : "none",
			  log_escape(span_from_cstr(a->reply), detail));
	}
}

static void finish_done(void *arg)
{
	struct queue_job *job = arg;
	struct queue_entry *entry = job->entry;
	struct queue_manager *m = entry->manager;

	entry->is_running = false;
	entry->is_retry = true;
	if (job->rc == 0)
		log_outcomes(job);
	if (job->dsn_id[0] != '\0') {
		metrics_bounce();
		log_info("qid=%s queue dsn qid=%s to=<%s>", entry->id, job->dsn_id,
			 job->env.reverse_path);
		queue_manager_submit(m, job->dsn_id, true);
	}
	if (job->rc < 0) {
		log_warning("qid=%s queue attempt failed: %s", entry->id, job->err.message);
		job_free(job);
		if (entry->pending != QUEUE_ENTRY_ACTION_NONE)
			pending_action_apply(entry); /* delete or hold asked for meanwhile */
		else
			schedule_at(entry, m->params.config->retry_initial_ms / 1000);
		return;
	}
	if (job->is_done) {
		log_info("qid=%s queue removed reason=%s", entry->id,
			 job->is_expired ? "expired" : "done");
		job_free(job);
		entry_free(m, entry);
		return;
	}
	{
		uint64_t next = job->state.next_attempt_at;
		uint64_t delay = next > job->now ? next - job->now : 0;

		log_info("qid=%s queue deferred attempts=%u retry_in_s=%llu", entry->id,
			 job->state.attempt_count, (unsigned long long) delay);
		job_free(job);
		if (entry->pending != QUEUE_ENTRY_ACTION_NONE)
			pending_action_apply(entry); /* delete or hold asked for meanwhile */
		else if (entry->is_again)
			start_job(entry);
		else
			schedule_at(entry, delay);
	}
}

static void submit_finish(struct queue_job *job)
{
	struct queue_entry *entry = job->entry;

	if (entry->manager->is_stopping) {
		/* Nothing recorded: every recipient not saved is tried again at
		 * the next start. */
		entry->is_running = false;
		job_free(job);
		return;
	}
	if (worker_pool_submit(entry->manager->params.workers, finish_run, finish_done, job) < 0) {
		entry->is_running = false;
		job_free(job);
		schedule_at(entry, entry->manager->params.config->retry_initial_ms / 1000);
	}
}

static void on_remote_done(void *ctx, struct delivery_outbound_job *ojob)
{
	struct queue_job *job = ctx;

	for (size_t k = 0; k < ojob->message.recipient_count; k++) {
		struct delivery_recipient *r = &ojob->message.recipients[k];
		size_t i = job->remote_index[r - job->remote_recipients];
		struct attempt_recipient *a = &job->recipients[i];

		snprintf(a->via, sizeof(a->via), "smtp");
		snprintf(a->reply, sizeof(a->reply), "%s", r->reply);
		snprintf(a->remote_mta, sizeof(a->remote_mta), "%s", ojob->message.remote_mta);
		a->result = r->code / 100 == 2	 ? ATTEMPT_DELIVERED
			    : r->code / 100 == 5 ? ATTEMPT_FAILED
						 : ATTEMPT_DEFERRED;
		/* NOTIFY went to a server that speaks DSN; it reports success
		 * itself. Otherwise we say "relayed" (RFC 3461 5.2.2). */
		a->is_relayed = a->result == ATTEMPT_DELIVERED && !ojob->message.remote_has_dsn;
	}
	if (--job->remote_pending == 0)
		submit_finish(job);
}

static enum delivery_body body_of(enum queue_body_type t)
{
	return t == QUEUE_BODY_8BITMIME	    ? DELIVERY_BODY_8BITMIME
	       : t == QUEUE_BODY_BINARYMIME ? DELIVERY_BODY_BINARYMIME
					    : DELIVERY_BODY_7BIT;
}

static const char *domain_of(const char *address)
{
	const char *at = strrchr(address, '@');

	return at != NULL ? at + 1 : "";
}

/* One outbound job per domain, its recipients contiguous in
 * job->remote_recipients. Returns how many. */
static size_t plan_remote(struct queue_job *job)
{
	struct queue_envelope *env = &job->env;
	size_t k = 0, count = 0;
	bool *taken = calloc(env->recipient_count, sizeof(*taken));

	job->remote_jobs = calloc(env->recipient_count, sizeof(*job->remote_jobs));
	if (taken == NULL || job->remote_jobs == NULL) {
		free(taken);
		return 0;
	}
	for (size_t i = 0; i < env->recipient_count; i++) {
		struct delivery_outbound_job *oj;
		const char *domain;

		if (!job->recipients[i].is_remote || taken[i])
			continue;
		domain = domain_of(env->recipients[i].address);
		oj = &job->remote_jobs[count++];
		snprintf(oj->domain, sizeof(oj->domain), "%s", domain);
		oj->message = (struct delivery_message){
			.fd = job->fd,
			.size = job->size,
			.reverse_path = env->reverse_path,
			.is_smtputf8 = env->is_smtputf8,
			.body = body_of(env->body_type),
			.envid = env->envid,
			.ret = env->ret == QUEUE_RET_FULL   ? 1
			       : env->ret == QUEUE_RET_HDRS ? 2
							    : 0,
			.recipients = &job->remote_recipients[k],
		};
		oj->done = on_remote_done;
		oj->ctx = job;
		for (size_t j = i; j < env->recipient_count; j++) {
			if (!job->recipients[j].is_remote || taken[j] ||
			    strcasecmp(domain_of(env->recipients[j].address), domain) != 0)
				continue;
			taken[j] = true;
			job->remote_index[k] = j;
			job->remote_recipients[k] = (struct delivery_recipient){
				.address = env->recipients[j].address,
				.orcpt = env->recipients[j].orcpt,
				.notify = env->recipients[j].notify,
			};
			k++;
			oj->message.recipient_count++;
		}
	}
	free(taken);
	return count;
}

static void load_done(void *arg)
{
	struct queue_job *job = arg;
	struct queue_entry *entry = job->entry;
	struct queue_manager *m = entry->manager;
	size_t count;

	if (job->rc < 0) {
		entry->is_running = false;
		log_warning("qid=%s queue attempt failed: %s", entry->id, job->err.message);
		job_free(job);
		if (!m->is_stopping)
			schedule_at(entry, m->params.config->retry_initial_ms / 1000);
		return;
	}
	count = plan_remote(job);
	if (count == 0 || m->is_stopping) {
		submit_finish(job);
		return;
	}
	job->remote_job_count = count;
	job->remote_pending = count;
	for (size_t i = 0; i < count; i++)
		delivery_outbound_submit(m->outbound, &job->remote_jobs[i]);
}

static void start_job(struct queue_entry *entry)
{
	struct queue_job *job = calloc(1, sizeof(*job));

	if (job == NULL) {
		schedule_at(entry, entry->manager->params.config->retry_initial_ms / 1000);
		return;
	}
	job->entry = entry;
	job->fd = -1;
	queue_envelope_init(&job->env);
	entry->is_running = true;
	entry->is_again = false;
	if (worker_pool_submit(entry->manager->params.workers, load_run, load_done, job) < 0) {
		entry->is_running = false;
		free(job);
		schedule_at(entry, entry->manager->params.config->retry_initial_ms / 1000);
	}
}

static struct queue_entry *entry_get(struct queue_manager *m, const char *id, bool is_fresh)
{
	struct queue_entry *entry = entry_find(m, id);

	if (entry != NULL)
		return entry;
	entry = calloc(1, sizeof(*entry));
	if (entry == NULL) {
		/* It is on disk: the next start delivers it. */
		log_error("qid=%s queue out of memory; delivery waits for a restart", id);
		return NULL;
	}
	entry->manager = m;
	snprintf(entry->id, sizeof(entry->id), "%s", id);
	entry->is_retry = !is_fresh;
	entry->next = m->entries;
	m->entries = entry;
	m->entry_count++;
	return entry;
}

void queue_manager_submit(struct queue_manager *m, const char *id, bool is_fresh)
{
	struct queue_entry *entry;

	if (m->is_stopping)
		return; /* it is on disk: the next start delivers it */
	entry = entry_get(m, id, is_fresh);
	if (entry == NULL)
		return;
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
	m->outbound = delivery_outbound_new(params->base, params->config, err);
	if (m->outbound == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

/* A deferred message keeps its schedule across a restart (next-attempt in
 * ID.state); anything else is tried now. */
static void recovered(void *ctx, const char *id, enum queue_place place)
{
	struct queue_manager *m = ctx;
	struct queue_envelope env;
	struct queue_state state = { 0 };
	struct queue_entry *entry;
	struct error err;
	uint64_t now = (uint64_t) time(NULL), delay = 0;

	if (place == QUEUE_PLACE_HOLD)
		return; /* the administrator set it aside */
	if (place == QUEUE_PLACE_DEFERRED) {
		queue_envelope_init(&env);
		if (queue_spool_envelope_load(m->params.spool, id, &env, &err) == 0 &&
		    queue_spool_state_load(m->params.spool, id, env.recipient_count, &state,
					   &err) == 0 &&
		    state.next_attempt_at > now)
			delay = state.next_attempt_at - now;
		queue_state_clear(&state);
		queue_envelope_clear(&env);
	}
	if (delay == 0) {
		queue_manager_submit(m, id, false);
		return;
	}
	entry = entry_get(m, id, false);
	if (entry != NULL) {
		log_info("qid=%s queue deferred retry_in_s=%llu reason=recovered", id,
			 (unsigned long long) delay);
		schedule_at(entry, delay);
	}
}

int queue_manager_recover(struct queue_manager *m, struct error *err)
{
	return queue_spool_recover(m->params.spool, recovered, m, err);
}

void queue_manager_stop(struct queue_manager *m)
{
	m->is_stopping = true;
	/* Remote jobs in flight come back with 421 and record nothing. */
	delivery_outbound_stop(m->outbound);
}

size_t queue_manager_active_count(const struct queue_manager *m)
{
	return m->entry_count;
}

void queue_manager_free(struct queue_manager *m)
{
	if (m == NULL)
		return;
	delivery_outbound_free(m->outbound);
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
