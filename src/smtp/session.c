/*
 * session: one SMTP connection — reading command lines and message data
 * from the bufferevent, writing replies, and the worker jobs a session waits
 * for (recipient look-ups, spool writes, the commit before "250 queued").
 *
 * Input is processed only while no job is out: a pipelining client's next
 * commands wait in the input buffer (bounded by the read high-water mark) and
 * run, in order, when the job's answer has been written. So replies always
 * come in command order (RFC 2920 3.1) and nothing a client sends can run
 * ahead of the durability of what it was told.
 */
#include "smtp/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/log.h"
#include "core/metrics.h"
#include "delivery/local.h"
#include "smtp/received.h"
#include "store/address.h"
#include "tls/context.h"
#include "tls/upgrade.h"

enum smtp_job_kind {
	SMTP_JOB_RCPT,	 /* resolve a recipient */
	SMTP_JOB_BEGIN,	 /* create the spool file */
	SMTP_JOB_WRITE,	 /* append decoded bytes */
	SMTP_JOB_COMMIT, /* append the rest, fsync, rename, fsync dir */
	SMTP_JOB_ABORT,	 /* remove the spool file */
	SMTP_JOB_SENDER, /* may the authenticated user send as this address? */
};

struct smtp_job {
	enum smtp_job_kind kind;
	struct smtp_session *session; /* NULL once the session is gone */
	struct smtp_server *server;
	int rc;
	struct error err;

	/* SMTP_JOB_SENDER: address and auth_user in, is_owned and is_held out */
	char auth_user[SMTP_ADDRESS_MAX + 1];
	bool is_owned;
	bool is_held;					/* the user is on a sending hold */
	struct store_limits user_limits, domain_limits; /* their overrides */

	/* SMTP_JOB_RCPT; with want_begin, a local recipient also begins the
	 * spool file (message), saving DATA a trip to a worker */
	bool want_begin;
	char address[SMTP_ADDRESS_MAX + 16];
	struct smtp_recipient recipient;
	enum store_recipient_kind kind_found;
	bool is_bad_syntax;
	struct store_expansion *expansion;

	/* SMTP_JOB_BEGIN / WRITE / COMMIT / ABORT */
	struct queue_message *message;
	struct evbuffer *data;
	struct queue_envelope envelope;
	bool has_envelope;

	/* SMTP_JOB_COMMIT of a direct delivery: the mailboxes in, their file
	 * names out */
	bool is_direct;
	size_t direct_prefix_len;
	const char **direct_addresses;
	char (*direct_names)[256];
	size_t direct_count;
	char queue_id[QUEUE_ID_MAX + 1];
	char reverse_path[SMTP_ADDRESS_MAX + 1];
};

static void process_input(struct smtp_session *s);
static void limits_resolve(struct smtp_session *s, const struct smtp_job *job);
static void session_free(struct smtp_session *s);

/* ---- replies ----------------------------------------------------------- */

static void write_reply(struct smtp_session *s, struct smtp_reply reply)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	struct span rest = span_from_cstr(reply.text);

	for (;;) {
		struct span line, after;
		bool is_last = !span_split_first(rest, '\n', &line, &after);

		if (is_last)
			line = rest;
		evbuffer_add_printf(out, "%d%c", reply.code, is_last ? ' ' : '-');
		if (reply.enhanced != NULL)
			evbuffer_add_printf(out, "%s ", reply.enhanced);
		evbuffer_add(out, line.ptr, line.len);
		evbuffer_add(out, "\r\n", 2);
		if (is_last)
			break;
		rest = after;
	}
}

void smtp_session_reply(struct smtp_session *s, struct smtp_reply reply)
{
	if (s->bev == NULL || reply.code == 0)
		return;
	write_reply(s, reply);
	if ((reply.code >= 500 && reply.code <= 504) || reply.code == 555) {
		char shown[LOG_ESCAPED_CAP];

		s->errors++;
		log_info("sid=%s smtp error reply=%d enhanced=%s text=%s", s->sid, reply.code,
			 reply.enhanced ? reply.enhanced : "-",
			 log_escape(span_from_cstr(reply.text), shown));
		if (s->errors >= s->server->config->max_errors && !reply.closes) {
			write_reply(s, REPLY(421, "4.7.0", "Too many errors, closing connection"));
			reply.closes = true;
		}
	}
	if (reply.closes) {
		s->is_quitting = true;
		bufferevent_disable(s->bev, EV_READ);
		/* The close happens in on_write once the output is flushed. */
	}
}

/* ---- bounds in time ---------------------------------------------------- */

static struct timeval timeval_of_ms(uint64_t ms)
{
	return (struct timeval){ (time_t) (ms / 1000), (suseconds_t) (ms % 1000) * 1000 };
}

/* The idle timeouts of the bufferevent: waiting for a command (RFC 5321
 * 4.5.3.2.7, at least 5 minutes) or for the next piece of message data
 * (4.5.3.2.6, the client's DATA block wait); writes get command_timeout. */
static void set_timeouts(struct smtp_session *s, bool is_data)
{
	const struct config *config = s->server->config;
	struct timeval read =
		timeval_of_ms(is_data ? config->data_timeout_ms : config->command_timeout_ms);
	struct timeval write = timeval_of_ms(config->command_timeout_ms);

	bufferevent_set_timeouts(s->bev, &read, &write);
}

/* Say why and end the session once the reply is out. */
static void time_is_up(struct smtp_session *s, const char *text, const char *what)
{
	log_info("sid=%s smtp timeout what=%s", s->sid, what);
	write_reply(s, REPLY(421, "4.4.2", text));
	s->is_quitting = true;
	bufferevent_disable(s->bev, EV_READ);
	bufferevent_set_timeouts(s->bev, NULL, &(struct timeval){ 10, 0 });
}

static void on_line_timer(evutil_socket_t fd, short events, void *arg)
{
	struct smtp_session *s = arg;

	(void) fd;
	(void) events;
	s->is_line_timed = false;
	if (s->bev == NULL || s->is_quitting)
		return;
	time_is_up(s, "Command line not completed in time, closing connection", "line");
}

static void on_life_timer(evutil_socket_t fd, short events, void *arg)
{
	struct smtp_session *s = arg;

	(void) fd;
	(void) events;
	if (s->bev == NULL || s->is_quitting)
		return;
	/* A message not yet acknowledged is dropped: the client sends it again. */
	time_is_up(s, "Session time limit reached, closing connection", "session");
}

/* After input was handled: a partial command or AUTH line starts its
 * deadline; anything else (a whole line read, data mode) stops it. */
static void watch_line(struct smtp_session *s, bool was_line_consumed)
{
	bool is_line_mode = s->input_mode == SMTP_INPUT_COMMAND ||
			    s->input_mode == SMTP_INPUT_AUTH ||
			    s->input_mode == SMTP_INPUT_DISCARD_LINE;
	/* An overlong line being thrown away is still one unfinished line. */
	bool is_partial = s->bev != NULL && is_line_mode && !s->is_quitting &&
			  (s->input_mode == SMTP_INPUT_DISCARD_LINE ||
			   evbuffer_get_length(bufferevent_get_input(s->bev)) > 0);

	if (s->line_timer == NULL)
		return;
	if (s->is_line_timed && (was_line_consumed || !is_partial)) {
		evtimer_del(s->line_timer);
		s->is_line_timed = false;
	}
	if (is_partial && !s->is_line_timed) {
		struct timeval tv = timeval_of_ms(s->server->config->command_timeout_ms);

		evtimer_add(s->line_timer, &tv);
		s->is_line_timed = true;
	}
}

/* ---- worker jobs ------------------------------------------------------- */

static void job_run(void *arg)
{
	struct smtp_job *job = arg;
	struct smtp_server *server = job->server;

	switch (job->kind) {
	case SMTP_JOB_RCPT: {
		char normalized[ADDRESS_MAX + 1];

		pthread_mutex_lock(server->store_lock);
		if (store_address_normalize(span_from_cstr(job->address), normalized, &job->err) ==
		    0) {
			job->rc =
				store_recipient_resolve(server->store, normalized, &job->kind_found,
							job->expansion, &job->err);
		} else {
			/* Not an address we could host (a quoted local part, an
			 * address literal): local domains have no such user, and
			 * elsewhere it is a relay attempt. */
			const char *at = strrchr(job->address, '@');
			char domain[ADDRESS_DOMAIN_MAX + 1];
			struct store_domain *d = malloc(sizeof(*d));

			job->rc = 0;
			job->expansion->count = 0;
			if (d == NULL || at == NULL ||
			    store_address_domain_normalize(span_from_cstr(at + 1), domain,
							   &job->err) < 0) {
				job->kind_found = STORE_RECIPIENT_REMOTE;
				job->is_bad_syntax = at == NULL;
			} else if (store_domain_get(server->store, domain, d, &job->err) == 0) {
				job->kind_found = STORE_RECIPIENT_UNKNOWN;
			} else if (job->err.kind == ERROR_NOT_FOUND) {
				job->kind_found = STORE_RECIPIENT_REMOTE;
			} else {
				job->rc = -1;
			}
			if (strlen(job->address) > ADDRESS_MAX)
				job->is_bad_syntax = true;
			if (job->kind_found == STORE_RECIPIENT_REMOTE && job->rc == 0) {
				job->expansion->count = 1;
				snprintf(job->expansion->targets[0].address,
					 sizeof(job->expansion->targets[0].address), "%.*s",
					 (int) ADDRESS_MAX, job->address);
				job->expansion->targets[0].is_local = false;
			}
			free(d);
		}
		pthread_mutex_unlock(server->store_lock);
		if (job->want_begin && job->rc == 0 &&
		    (job->kind_found == STORE_RECIPIENT_USER ||
		     job->kind_found == STORE_RECIPIENT_ALIAS)) {
			struct error begin_err;

			/* A failure here is DATA's to report: it begins again. */
			if (queue_spool_begin(server->spool, &job->message, &begin_err) < 0)
				job->message = NULL;
		}
		break;
	}
	case SMTP_JOB_BEGIN:
		job->rc = queue_spool_begin(server->spool, &job->message, &job->err);
		break;
	case SMTP_JOB_SENDER: {
		char normalized[ADDRESS_MAX + 1];
		struct store_alias *alias = malloc(sizeof(*alias));
		struct error lookup_err;

		job->rc = 0;
		job->is_owned = false;
		job->is_held = false;
		{
			/* A hold set since login (by an operator, or by the rate
			 * limits) applies to the next message. */
			struct store_user *user = malloc(sizeof(*user));
			struct store_domain *domain = malloc(sizeof(*domain));
			char domain_name[ADDRESS_DOMAIN_MAX + 1];
			const struct store_limits inherit = { STORE_LIMIT_INHERIT,
							      STORE_LIMIT_INHERIT,
							      STORE_LIMIT_INHERIT,
							      STORE_LIMIT_INHERIT };

			job->user_limits = inherit;
			job->domain_limits = inherit;
			span_copy_cstr(store_address_domain(job->auth_user), domain_name,
				       sizeof(domain_name));
			pthread_mutex_lock(server->store_lock);
			if (user != NULL &&
			    store_user_get(server->store, job->auth_user, user, &lookup_err) == 0) {
				job->is_held = user->is_held || !user->is_enabled;
				job->user_limits = user->limits;
			}
			if (domain != NULL &&
			    store_domain_get(server->store, domain_name, domain, &lookup_err) == 0)
				job->domain_limits = domain->limits;
			pthread_mutex_unlock(server->store_lock);
			free(user);
			free(domain);
		}
		if (alias == NULL || store_address_normalize(span_from_cstr(job->address),
							     normalized, &lookup_err) < 0) {
			free(alias);
			break; /* not an address anyone here owns */
		}
		if (strcasecmp(normalized, job->auth_user) == 0) {
			job->is_owned = true;
			free(alias);
			break;
		}
		pthread_mutex_lock(server->store_lock);
		if (store_alias_get(server->store, normalized, alias, &lookup_err) == 0)
			job->is_owned = strcasecmp(alias->owner, job->auth_user) == 0;
		else if (lookup_err.kind != ERROR_NOT_FOUND) {
			job->rc = -1;
			job->err = lookup_err;
		}
		pthread_mutex_unlock(server->store_lock);
		free(alias);
		break;
	}
	case SMTP_JOB_WRITE:
	case SMTP_JOB_COMMIT: {
		struct evbuffer_iovec vec[16];
		int n;

		job->rc = 0;
		while (job->rc == 0 && evbuffer_get_length(job->data) > 0) {
			size_t taken = 0;

			n = evbuffer_peek(job->data, -1, NULL, vec, ARRAY_LEN(vec));
			if (n > (int) ARRAY_LEN(vec))
				n = (int) ARRAY_LEN(vec);
			for (int i = 0; i < n && job->rc == 0; i++) {
				job->rc = queue_message_append(job->message, vec[i].iov_base,
							       vec[i].iov_len, &job->err);
				taken += vec[i].iov_len;
			}
			evbuffer_drain(job->data, taken);
		}
		if (job->rc == 0 && job->kind == SMTP_JOB_COMMIT && job->is_direct) {
			job->rc = delivery_local_direct(
				server->config->maildir_root, job->message, job->direct_prefix_len,
				job->reverse_path, job->direct_addresses, job->direct_count,
				job->queue_id, job->direct_names, &job->err);
			job->message = NULL; /* consumed either way */
			break;
		}
		if (job->rc == 0 && job->kind == SMTP_JOB_COMMIT)
			job->rc = queue_spool_commit(job->message, &job->envelope, &job->err);
		if (job->rc < 0) {
			queue_spool_abort(job->message);
			job->message = NULL;
		}
		break;
	}
	case SMTP_JOB_ABORT:
		queue_spool_abort(job->message);
		job->message = NULL;
		job->rc = 0;
		break;
	}
}

static void job_free(struct smtp_job *job)
{
	if (job->data != NULL)
		evbuffer_free(job->data);
	if (job->has_envelope)
		queue_envelope_clear(&job->envelope);
	free(job->expansion);
	free(job->recipient.orcpt);
	free(job->direct_addresses);
	free(job->direct_names);
	/* A spool file begun with a look-up nobody took (a session gone). */
	if (job->kind == SMTP_JOB_RCPT && job->message != NULL)
		queue_spool_abort(job->message);
	free(job);
}

static void job_done(void *arg);

static struct smtp_job *job_new(struct smtp_session *s, enum smtp_job_kind kind)
{
	struct smtp_job *job = calloc(1, sizeof(*job));

	if (job == NULL)
		return NULL;
	job->kind = kind;
	job->session = s;
	job->server = s->server;
	return job;
}

/* Hand a job to the pool; the session reads no more input until it is back.
 * On failure (out of memory, or the pool is stopping) the job is still the
 * caller's to free. */
static bool job_submit(struct smtp_session *s, struct smtp_job *job)
{
	struct worker_pool *pool = job->kind == SMTP_JOB_COMMIT && s->server->commit_workers != NULL
					   ? s->server->commit_workers
					   : s->server->workers;

	if (worker_pool_submit(pool, job_run, job_done, job) < 0)
		return false;
	s->job = job;
	return true;
}

/* An abort runs on its own: nobody waits for a file to be removed. */
static void abort_message(struct smtp_session *s)
{
	struct smtp_job *job;

	if (s->message == NULL)
		return;
	job = job_new(s, SMTP_JOB_ABORT);
	if (job == NULL)
		return; /* left in spool/tmp; removed at the next start */
	job->session = NULL;
	job->message = s->message;
	s->message = NULL;
	if (worker_pool_submit(s->server->workers, job_run, job_done, job) < 0) {
		/* Only when the pool is stopping or memory is gone: remove the
		 * never-acknowledged file here rather than leave it behind. */
		queue_spool_abort(job->message);
		job_free(job);
	}
}

static void free_transaction_arrays(struct smtp_session *s)
{
	for (size_t i = 0; s->tx.recipients != NULL && i < s->tx.recipient_count; i++)
		free(s->tx.recipients[i].orcpt);
	free(s->tx.recipients);
	free(s->tx.targets);
	free(s->tx.target_recipient);
	s->tx.recipients = NULL;
	s->tx.targets = NULL;
	s->tx.target_recipient = NULL;
	s->tx.recipients_room = 0;
	s->tx.targets_room = 0;
}

static void message_reset(struct smtp_session *s)
{
	abort_message(s);
	evbuffer_drain(s->body, evbuffer_get_length(s->body));
	s->body_bytes = 0;
	s->queue_id[0] = '\0';
	s->spool_failed = false;
}

/* Double *room (from 4) until it holds need, at most max; realloc *array. */
static bool array_reserve(void **array, size_t *room, size_t need, size_t max, size_t size)
{
	size_t grown = *room > 0 ? *room : 4;
	void *p;

	if (need <= *room)
		return true;
	while (grown < need)
		grown *= 2;
	if (grown > max)
		grown = max;
	if (grown < need || (p = realloc(*array, grown * size)) == NULL)
		return false;
	*array = p;
	*room = grown;
	return true;
}

bool smtp_transaction_arrays(struct smtp_session *s)
{
	struct smtp_transaction *tx = &s->tx;

	return array_reserve((void **) &tx->recipients, &tx->recipients_room,
			     tx->recipient_count + 1, tx->recipients_cap, sizeof(*tx->recipients));
}

/* Room for need targets, in both target arrays. */
static bool targets_reserve(struct smtp_transaction *tx, size_t need)
{
	size_t room = tx->targets_room;

	return array_reserve((void **) &tx->targets, &room, need, SMTP_TARGETS_MAX,
			     sizeof(*tx->targets)) &&
	       array_reserve((void **) &tx->target_recipient, &tx->targets_room, need,
			     SMTP_TARGETS_MAX, sizeof(*tx->target_recipient));
}

void smtp_transaction_reset(struct smtp_session *s)
{
	message_reset(s);
	/* Idle sessions hold no recipient arrays (about 300 KiB with them). */
	free_transaction_arrays(s);
	s->tx.is_active = false;
	s->tx.recipient_count = 0;
	s->tx.rcpt_refused = 0;
	s->tx.target_count = 0;
	s->tx.is_failed = false;
	s->tx.is_direct = false;
	s->tx.direct_prefix_len = 0;
	memset(&s->tx.mail, 0, sizeof(s->tx.mail));
	if (s->state != SMTP_STATE_CONNECTED)
		s->state = SMTP_STATE_GREETED;
}

static void rcpt_done(struct smtp_session *s, struct smtp_job *job)
{
	struct smtp_transaction *tx = &s->tx;
	char shown[LOG_ESCAPED_CAP];

	/* The spool file begun with the look-up belongs to the transaction
	 * now: a reset removes it, DATA writes into it. */
	if (job->message != NULL && s->message == NULL) {
		s->message = job->message;
		job->message = NULL;
	}

	if (job->rc < 0) {
		log_warning("sid=%s smtp lookup failed: %s", s->sid, job->err.message);
		smtp_session_reply(s, REPLY(451, "4.3.0", "Temporary lookup failure, try again"));
		return;
	}
	switch (job->kind_found) {
	case STORE_RECIPIENT_USER:
	case STORE_RECIPIENT_ALIAS:
		break;
	case STORE_RECIPIENT_REMOTE:
		if (job->is_bad_syntax) {
			smtp_session_reply(s, REPLY(501, "5.1.3", "Bad recipient address syntax"));
			return;
		}
		/* The relay hook: only an authenticated session may send to
		 * other domains (SMTP AUTH sets is_authenticated). */
		if (!s->is_authenticated) {
			log_info("sid=%s smtp rcpt refused to=%s reason=relay", s->sid,
				 log_escape(span_from_cstr(job->address), shown));
			tx->rcpt_refused++;
			smtp_session_reply(s, REPLY(554, "5.7.1", "Relay access denied"));
			return;
		}
		break;
	case STORE_RECIPIENT_UNKNOWN:
		log_info("sid=%s smtp rcpt refused to=%s reason=unknown", s->sid,
			 log_escape(span_from_cstr(job->address), shown));
		tx->rcpt_refused++;
		smtp_session_reply(s,
				   REPLY(550, "5.1.1", "Recipient address rejected: User unknown"));
		return;
	case STORE_RECIPIENT_DISABLED:
		tx->rcpt_refused++;
		smtp_session_reply(s, REPLY(550, "5.2.1", "Mailbox disabled"));
		return;
	case STORE_RECIPIENT_LOOP:
		log_warning("sid=%s smtp rcpt refused to=%s reason=alias-loop", s->sid,
			    log_escape(span_from_cstr(job->address), shown));
		tx->rcpt_refused++;
		smtp_session_reply(s, REPLY(550, "5.4.6", "Alias loop detected"));
		return;
	case STORE_RECIPIENT_TOO_MANY:
		tx->rcpt_refused++;
		smtp_session_reply(s, REPLY(550, "5.5.3", "Alias expands to too many recipients"));
		return;
	}
	if (tx->target_count + job->expansion->count > SMTP_TARGETS_MAX) {
		smtp_session_reply(s, REPLY(452, "4.5.3", "Too many recipients"));
		return;
	}
	if (!targets_reserve(tx, tx->target_count + job->expansion->count)) {
		smtp_session_reply(s, REPLY(452, "4.3.1", "Insufficient system resources"));
		return;
	}
	if (s->is_authenticated && !smtp_session_rate_take(s, 0, 1))
		return;
	tx->recipients[tx->recipient_count] = job->recipient;
	job->recipient.orcpt = NULL; /* the transaction owns it now */
	for (size_t i = 0; i < job->expansion->count; i++) {
		bool is_duplicate = false;

		/* The same mailbox named twice in one transaction gets one copy. */
		for (size_t j = 0; j < tx->target_count && !is_duplicate; j++)
			is_duplicate = strcmp(tx->targets[j].address,
					      job->expansion->targets[i].address) == 0;
		if (is_duplicate)
			continue;
		tx->targets[tx->target_count] = job->expansion->targets[i];
		tx->target_recipient[tx->target_count] = tx->recipient_count;
		tx->target_count++;
	}
	tx->recipient_count++;
	s->state = SMTP_STATE_RCPT;
	smtp_session_reply(s, REPLY(250, "2.1.5", "Ok"));
}

static void add_received(struct smtp_session *s)
{
	char header[SMTP_RECEIVED_MAX];
	struct smtp_received r = {
		.helo = s->helo,
		.client_ip = s->client_ip,
		.hostname = s->server->config->hostname,
		.queue_id = s->queue_id,
		.recipient = s->tx.recipient_count == 1 ? s->tx.recipients[0].address : NULL,
		.is_esmtp = s->is_esmtp,
		.is_tls = s->is_tls,
		.is_authenticated = s->is_authenticated,
		.is_utf8 = s->tx.mail.is_smtputf8,
		.local_user = s->is_local ? s->auth_user + strlen("local:") : NULL,
		.when = time(NULL),
	};
	size_t len = smtp_received_format(&r, header, sizeof(header));

	if (len > 0)
		evbuffer_add(s->body, header, len);
}

/* Whether the message can go straight into the mailboxes: every target is
 * a local mailbox, and nobody asked for a delivery notice (RFC 3461
 * NOTIFY=SUCCESS: the queue writes those). */
static bool is_direct_possible(const struct smtp_session *s)
{
	const struct smtp_transaction *tx = &s->tx;

	if (tx->target_count == 0)
		return false;
	for (size_t i = 0; i < tx->target_count; i++) {
		const struct smtp_recipient *r = &tx->recipients[tx->target_recipient[i]];

		if (!tx->targets[i].is_local || (r->notify & QUEUE_NOTIFY_SUCCESS) != 0)
			return false;
	}
	return true;
}

/* A direct delivery's file starts as it will sit in the first mailbox:
 * Return-Path and Delivered-To, in front of the Received header. */
static void add_direct_prefix(struct smtp_session *s)
{
	char prefix[SMTP_ADDRESS_MAX * 2 + 64];
	int len = delivery_local_prefix(
		s->tx.mail.reverse_path.is_null ? "" : s->tx.mail.reverse_path.address,
		s->tx.targets[0].address, prefix, sizeof(prefix));

	if (len < 0)
		return; /* through the queue, then */
	evbuffer_add(s->body, prefix, (size_t) len);
	s->tx.is_direct = true;
	s->tx.direct_prefix_len = (size_t) len;
}

static void message_started(struct smtp_session *s);

static void begin_done(struct smtp_session *s, struct smtp_job *job)
{
	if (job->rc < 0) {
		log_warning("sid=%s smtp spool: %s", s->sid, job->err.message);
		if (s->input_mode == SMTP_INPUT_CHUNK) {
			/* The chunk is still read, then refused. */
			s->chunk_refused = true;
			s->chunk_reply = REPLY(452, "4.3.1", "Insufficient system storage");
			smtp_transaction_reset(s);
			return;
		}
		smtp_session_reply(s, REPLY(452, "4.3.1", "Insufficient system storage"));
		return;
	}
	s->message = job->message;
	job->message = NULL;
	message_started(s);
}

/* The spool file exists: the trace headers, then the client's octets. */
static void message_started(struct smtp_session *s)
{
	snprintf(s->queue_id, sizeof(s->queue_id), "%s", queue_message_id(s->message));
	if (is_direct_possible(s))
		add_direct_prefix(s);
	add_received(s);
	if (s->input_mode == SMTP_INPUT_CHUNK)
		return; /* the chunk's octets follow */
	smtp_data_decoder_init(&s->decoder, s->server->config->max_line_length,
			       s->server->config->max_message_size);
	s->input_mode = SMTP_INPUT_DATA;
	set_timeouts(s, true);
	smtp_session_reply(s, REPLY(354, NULL, "End data with <CR><LF>.<CR><LF>"));
}

/* The log lines and counters the queue writes for a delivery. */
static void direct_delivered(const struct smtp_job *job)
{
	for (size_t i = 0; i < job->direct_count; i++) {
		char to[LOG_ESCAPED_CAP];

		metrics_delivery(METRICS_DELIVERY_DELIVERED, "maildir", 0);
		log_info("qid=%s delivery to=%s via=maildir result=delivered delay_ms=0 "
			 "relay=none detail=250 2.0.0 delivered as %s",
			 job->queue_id, log_escape(span_from_cstr(job->direct_addresses[i]), to),
			 job->direct_names[i]);
	}
}

static void commit_done(struct smtp_session *s, struct smtp_job *job)
{
	char from[LOG_ESCAPED_CAP];

	s->message = NULL; /* committed or, on failure, aborted by the job */
	if (job->rc < 0) {
		log_warning("sid=%s smtp %s failed: %s", s->sid,
			    job->is_direct ? "direct delivery" : "spool commit", job->err.message);
		smtp_session_reply(s, REPLY(452, "4.3.1", "Insufficient system storage"));
	} else if (job->is_direct) {
		log_info("sid=%s smtp delivered qid=%s from=<%s> rcpts=%zu bytes=%llu", s->sid,
			 s->queue_id,
			 log_escape(span_from_cstr(s->tx.mail.reverse_path.address), from),
			 s->tx.target_count, (unsigned long long) s->body_bytes);
		direct_delivered(job);
		metrics_message_accepted(s->listener);
		snprintf(s->reply_text, sizeof(s->reply_text), "Ok: queued as %s", s->queue_id);
		smtp_session_reply(s, REPLY(250, "2.0.0", s->reply_text));
	} else {
		log_info("sid=%s smtp queued qid=%s from=<%s> rcpts=%zu bytes=%llu", s->sid,
			 s->queue_id,
			 log_escape(span_from_cstr(s->tx.mail.reverse_path.address), from),
			 s->tx.target_count, (unsigned long long) s->body_bytes);
		if (s->server->on_queued != NULL)
			s->server->on_queued(s->server->on_queued_ctx, s->queue_id);
		metrics_message_accepted(s->listener);
		snprintf(s->reply_text, sizeof(s->reply_text), "Ok: queued as %s", s->queue_id);
		smtp_session_reply(s, REPLY(250, "2.0.0", s->reply_text));
	}
	s->queue_id[0] = '\0';
	s->body_bytes = 0;
	smtp_transaction_reset(s);
}

static void job_done(void *arg)
{
	struct smtp_job *job = arg;
	struct smtp_session *s = job->session;

	if (s == NULL) {
		job_free(job); /* an abort nobody waits for */
		return;
	}
	s->job = NULL;
	if (s->is_stopped) {
		/* The connection went away while the job was out. A message
		 * that was being written is removed: it was never acknowledged.
		 * One that was committed stays: it is durable, and delivered. */
		if (job->kind == SMTP_JOB_COMMIT && job->rc == 0 && s->server->on_queued != NULL)
			s->server->on_queued(s->server->on_queued_ctx, s->queue_id);
		/* A commit consumed the message either way; a failed write aborted it. */
		if (job->kind == SMTP_JOB_COMMIT || (job->kind == SMTP_JOB_WRITE && job->rc < 0))
			s->message = NULL;
		if ((job->kind == SMTP_JOB_BEGIN || job->kind == SMTP_JOB_RCPT) &&
		    job->message != NULL && s->message == NULL) {
			s->message = job->message;
			job->message = NULL;
		}
		job_free(job);
		session_free(s);
		return;
	}
	switch (job->kind) {
	case SMTP_JOB_RCPT:
		rcpt_done(s, job);
		break;
	case SMTP_JOB_SENDER:
		if (job->rc == 0)
			limits_resolve(s, job);
		if (job->rc < 0) {
			log_warning("sid=%s smtp sender look-up failed: %s", s->sid,
				    job->err.message);
			smtp_session_reply(s, REPLY(451, "4.3.0", "Temporary lookup failure"));
		} else if (job->is_held) {
			log_info("sid=%s smtp mail refused user=%s reason=held", s->sid,
				 s->auth_user);
			smtp_session_reply(s,
					   REPLY(550, "5.7.1",
						 "Sending is suspended for this account; contact "
						 "your provider's support"));
		} else if (!job->is_owned) {
			char shown[LOG_ESCAPED_CAP];

			log_info("sid=%s smtp mail refused from=%s user=%s reason=not-owner",
				 s->sid, log_escape(span_from_cstr(job->address), shown),
				 s->auth_user);
			smtp_session_reply(s, REPLY(553, "5.7.1",
						    "Sender address rejected: not owned by the "
						    "authenticated user"));
		} else if (!smtp_session_rate_take(s, 1, 0)) {
			/* smtp_session_rate_take answered. */
		} else {
			s->tx.is_active = true;
			s->state = SMTP_STATE_MAIL;
			smtp_session_reply(s, REPLY(250, "2.1.0", "Ok"));
		}
		break;
	case SMTP_JOB_BEGIN:
		begin_done(s, job);
		break;
	case SMTP_JOB_WRITE:
		if (job->rc < 0) {
			log_warning("sid=%s smtp spool write failed: %s", s->sid, job->err.message);
			s->message = NULL;
			s->spool_failed = true;
		}
		break;
	case SMTP_JOB_COMMIT:
		commit_done(s, job);
		break;
	case SMTP_JOB_ABORT:
		break;
	}
	job_free(job);
	process_input(s);
}

/* ---- sending limits and holds --------------------------------------- */

struct hold_job {
	struct smtp_server *server;
	char user[SMTP_ADDRESS_MAX + 1];
	const char *reason;
	int rc;
	struct error err;
};

static void hold_run(void *arg)
{
	struct hold_job *job = arg;

	pthread_mutex_lock(job->server->store_lock);
	job->rc = store_user_set_held(job->server->store, job->user, true, &job->err);
	pthread_mutex_unlock(job->server->store_lock);
}

static void hold_done(void *arg)
{
	struct hold_job *job = arg;

	if (job->rc == 0) {
		log_warning("policy hold user=%s reason=%s (postgate user release %s)", job->user,
			    job->reason, job->user);
		if (job->server->rates != NULL) /* for `postgate user show` */
			auth_rate_hold_note(job->server->rates, job->user, (int64_t) time(NULL),
					    job->reason);
	} else
		log_error("policy hold user=%s reason=%s failed: %s", job->user, job->reason,
			  job->err.message);
	free(job);
}

void smtp_server_hold_user(struct smtp_server *server, const char *user, const char *reason)
{
	struct hold_job *job = calloc(1, sizeof(*job));

	if (job == NULL) {
		log_error("policy hold user=%s reason=%s failed: out of memory", user, reason);
		return;
	}
	job->server = server;
	snprintf(job->user, sizeof(job->user), "%s", user);
	job->reason = reason;
	if (worker_pool_submit(server->workers, hold_run, hold_done, job) < 0) {
		log_error("policy hold user=%s reason=%s failed: cannot start a job", user, reason);
		free(job);
	}
}

void smtp_server_rate_limits(const struct config *config, struct auth_rate_limits *out)
{
	*out = (struct auth_rate_limits){
		.messages_per_hour = config->user_messages_per_hour,
		.messages_per_day = config->user_messages_per_day,
		.recipients_per_hour = config->user_recipients_per_hour,
		.recipients_per_day = config->user_recipients_per_day,
		.hold_login_addresses = config->hold_login_addresses,
	};
}

/* The user's limits: its own where set, else its domain's, else the
 * configuration's (docs/auth.md). Kept for the transaction's RCPTs. */
static void limits_resolve(struct smtp_session *s, const struct smtp_job *job)
{
	const int64_t user[] = { job->user_limits.messages_per_hour,
				 job->user_limits.messages_per_day,
				 job->user_limits.recipients_per_hour,
				 job->user_limits.recipients_per_day };
	const int64_t domain[] = { job->domain_limits.messages_per_hour,
				   job->domain_limits.messages_per_day,
				   job->domain_limits.recipients_per_hour,
				   job->domain_limits.recipients_per_day };
	uint64_t *out[] = { &s->limits.messages_per_hour, &s->limits.messages_per_day,
			    &s->limits.recipients_per_hour, &s->limits.recipients_per_day };

	smtp_server_rate_limits(s->server->config, &s->limits);
	for (size_t i = 0; i < ARRAY_LEN(out); i++) {
		if (user[i] != STORE_LIMIT_INHERIT)
			*out[i] = (uint64_t) user[i];
		else if (domain[i] != STORE_LIMIT_INHERIT)
			*out[i] = (uint64_t) domain[i];
	}
	s->has_limits = true;
}

bool smtp_session_rate_take(struct smtp_session *s, unsigned messages, unsigned recipients)
{
	struct auth_rate_limits limits;
	enum auth_rate_verdict verdict;
	bool should_hold = false;
	uint64_t limit = 0;

	if (s->server->rates == NULL || !s->is_authenticated)
		return true;
	if (s->has_limits)
		limits = s->limits;
	else
		smtp_server_rate_limits(s->server->config, &limits);
	verdict = auth_rate_take(s->server->rates, s->auth_user, (int64_t) time(NULL), messages,
				 recipients, &limits, &should_hold);
	if (verdict == AUTH_RATE_OK)
		return true;
	switch (verdict) {
	case AUTH_RATE_MESSAGES_HOUR:
		limit = limits.messages_per_hour;
		break;
	case AUTH_RATE_MESSAGES_DAY:
		limit = limits.messages_per_day;
		break;
	case AUTH_RATE_RECIPIENTS_HOUR:
		limit = limits.recipients_per_hour;
		break;
	case AUTH_RATE_RECIPIENTS_DAY:
		limit = limits.recipients_per_day;
		break;
	case AUTH_RATE_OK:
		break;
	}
	log_info("sid=%s smtp rate refused user=%s limit=%s max=%llu", s->sid, s->auth_user,
		 auth_rate_verdict_name(verdict), (unsigned long long) limit);
	if (should_hold)
		smtp_server_hold_user(s->server, s->auth_user, "burst");
	/* 450/452 with 4.7.1: not authorized now; RFC 5321 4.5.3.1.10 lets
	 * a client retry a 452 recipient in a later transaction. */
	snprintf(s->reply_text, sizeof(s->reply_text),
		 "Sending limit reached for this account (%llu %s); try again later",
		 (unsigned long long) limit, auth_rate_verdict_name(verdict));
	smtp_session_reply(s, messages > 0 ? REPLY(450, "4.7.1", s->reply_text)
					   : REPLY(452, "4.7.1", s->reply_text));
	return false;
}

void smtp_session_check_sender(struct smtp_session *s)
{
	struct smtp_job *job = job_new(s, SMTP_JOB_SENDER);

	if (job == NULL) {
		smtp_session_reply(s, REPLY(451, "4.3.0", "Temporary failure, try again"));
		return;
	}
	snprintf(job->address, sizeof(job->address), "%s", s->tx.mail.reverse_path.address);
	snprintf(job->auth_user, sizeof(job->auth_user), "%s", s->auth_user);
	if (!job_submit(s, job)) {
		job_free(job);
		smtp_session_reply(s, REPLY(451, "4.3.0", "Temporary failure, try again"));
	}
}

/* The parser's NOTIFY bits as the envelope spells them (RFC 3461 4.1). */
static unsigned notify_from_rcpt(unsigned notify)
{
	return (notify & SMTP_NOTIFY_NEVER ? QUEUE_NOTIFY_NEVER : 0) |
	       (notify & SMTP_NOTIFY_SUCCESS ? QUEUE_NOTIFY_SUCCESS : 0) |
	       (notify & SMTP_NOTIFY_FAILURE ? QUEUE_NOTIFY_FAILURE : 0) |
	       (notify & SMTP_NOTIFY_DELAY ? QUEUE_NOTIFY_DELAY : 0);
}

void smtp_session_lookup_rcpt(struct smtp_session *s, const struct smtp_rcpt_args *rcpt,
			      const char *address)
{
	struct smtp_job *job = job_new(s, SMTP_JOB_RCPT);

	if (job != NULL)
		job->expansion = malloc(sizeof(*job->expansion));
	if (job == NULL || job->expansion == NULL) {
		if (job != NULL)
			job_free(job);
		smtp_session_reply(s, REPLY(451, "4.3.0", "Temporary failure, try again"));
		return;
	}
	snprintf(job->address, sizeof(job->address), "%s", address);
	job->want_begin = s->message == NULL;
	snprintf(job->recipient.address, sizeof(job->recipient.address), "%s",
		 rcpt->forward_path.address);
	job->recipient.notify = notify_from_rcpt(rcpt->notify);
	if (rcpt->has_orcpt) {
		size_t len = strlen(rcpt->orcpt_type) + 1 + strlen(rcpt->orcpt_address) + 1;

		job->recipient.orcpt = malloc(len);
		if (job->recipient.orcpt == NULL) {
			job_free(job);
			smtp_session_reply(s, REPLY(451, "4.3.0", "Temporary failure, try again"));
			return;
		}
		snprintf(job->recipient.orcpt, len, "%s;%s", rcpt->orcpt_type, rcpt->orcpt_address);
	}
	if (!job_submit(s, job)) {
		job_free(job);
		smtp_session_reply(s, REPLY(451, "4.3.0", "Temporary failure, try again"));
	}
}

void smtp_session_begin_message(struct smtp_session *s, bool is_bdat)
{
	struct smtp_job *job;

	if (s->message != NULL) {
		/* Begun already, with the first local recipient's look-up. */
		message_started(s);
		return;
	}
	job = job_new(s, SMTP_JOB_BEGIN);
	if (job != NULL && job_submit(s, job))
		return;
	if (job != NULL)
		job_free(job);
	if (is_bdat) {
		/* The chunk's octets are still read, then refused: one reply. */
		s->chunk_refused = true;
		s->chunk_reply = REPLY(452, "4.3.1", "Insufficient system storage");
		smtp_transaction_reset(s);
		return;
	}
	smtp_session_reply(s, REPLY(452, "4.3.1", "Insufficient system storage"));
}

void smtp_session_begin_chunk(struct smtp_session *s, uint64_t size, bool is_last, bool is_refused,
			      struct smtp_reply refusal)
{
	s->input_mode = SMTP_INPUT_CHUNK;
	s->chunk_remaining = size;
	s->chunk_size = size;
	s->chunk_is_last = is_last;
	s->chunk_refused = is_refused;
	s->chunk_reply = refusal;
	set_timeouts(s, true);
	if (is_refused) {
		/* A refused chunk ends the transaction (RFC 3030 4.2). */
		smtp_transaction_reset(s);
		return;
	}
	if (s->state != SMTP_STATE_BDAT) {
		smtp_crlf_checker_init(&s->chunk_checker, s->server->config->max_line_length);
		s->state = SMTP_STATE_BDAT;
		smtp_session_begin_message(s, true);
	}
}

/* ---- the envelope ------------------------------------------------------ */

static int build_envelope(struct smtp_session *s, struct queue_envelope *env, struct error *err)
{
	struct smtp_transaction *tx = &s->tx;

	queue_envelope_init(env);
	env->received_at = (uint64_t) time(NULL);
	env->is_smtputf8 = tx->mail.is_smtputf8;
	env->body_type =
		tx->mail.body == SMTP_BODY_8BITMIME ? QUEUE_BODY_8BITMIME : QUEUE_BODY_7BIT;
	env->ret = tx->mail.ret == SMTP_RET_FULL   ? QUEUE_RET_FULL
		   : tx->mail.ret == SMTP_RET_HDRS ? QUEUE_RET_HDRS
						   : QUEUE_RET_NONE;
	if (tx->mail.has_envid &&
	    queue_envelope_string_set(&env->envid, span_from_cstr(tx->mail.envid), err) < 0)
		return -1;
	if (queue_envelope_string_set(&env->reverse_path,
				      span_from_cstr(tx->mail.reverse_path.is_null
							     ? ""
							     : tx->mail.reverse_path.address),
				      err) < 0 ||
	    queue_envelope_string_set(&env->client_address, span_from_cstr(s->client_ip), err) <
		    0 ||
	    queue_envelope_string_set(&env->helo, span_from_cstr(s->helo), err) < 0 ||
	    (s->is_authenticated &&
	     queue_envelope_string_set(&env->auth_user, span_from_cstr(s->auth_user), err) < 0))
		return -1;
	for (size_t i = 0; i < tx->target_count; i++) {
		const struct smtp_recipient *r = &tx->recipients[tx->target_recipient[i]];
		struct queue_recipient *qr;

		if (queue_envelope_add_recipient(env, span_from_cstr(tx->targets[i].address), &qr,
						 err) < 0)
			return -1;
		qr->notify = r->notify;
		if (r->orcpt != NULL &&
		    queue_envelope_string_set(&qr->orcpt, span_from_cstr(r->orcpt), err) < 0)
			return -1;
		if (strcasecmp(r->address, tx->targets[i].address) != 0 &&
		    queue_envelope_string_set(&qr->alias, span_from_cstr(r->address), err) < 0)
			return -1;
	}
	return 0;
}

/* ---- message data ------------------------------------------------------ */

static int body_sink(void *ctx, struct span bytes)
{
	struct smtp_session *s = ctx;

	s->body_bytes += bytes.len;
	/* After a failed spool write the message is refused at its end; the
	 * rest of it is read and dropped, not held in memory. */
	if (s->spool_failed)
		return 0;
	return evbuffer_add(s->body, bytes.ptr, bytes.len);
}

/* Hand what was decoded so far to a worker. */
static bool flush_body(struct smtp_session *s)
{
	struct smtp_job *job;

	if (s->message == NULL || s->spool_failed)
		return false;
	job = job_new(s, SMTP_JOB_WRITE);
	if (job == NULL || (job->data = evbuffer_new()) == NULL) {
		if (job != NULL)
			job_free(job);
		s->spool_failed = true;
		abort_message(s);
		return false;
	}
	evbuffer_add_buffer(job->data, s->body);
	job->message = s->message;
	if (job_submit(s, job))
		return true;
	/* Those bytes are gone with the job: the message must not be accepted. */
	job->message = NULL;
	job_free(job);
	s->spool_failed = true;
	abort_message(s);
	return false;
}

/* What a direct delivery job needs from the transaction (the job may
 * outlive it). */
static bool direct_job_fill(struct smtp_session *s, struct smtp_job *job)
{
	const struct smtp_transaction *tx = &s->tx;
	const size_t address_cap = sizeof(tx->targets[0].address);
	char *copies;

	/* One block: the pointers, then the addresses they point at. */
	job->direct_addresses =
		calloc(tx->target_count, sizeof(*job->direct_addresses) + address_cap);
	job->direct_names = calloc(tx->target_count, sizeof(*job->direct_names));
	if (job->direct_addresses == NULL || job->direct_names == NULL)
		return false;
	copies = (char *) (job->direct_addresses + tx->target_count);
	for (size_t i = 0; i < tx->target_count; i++) {
		char *copy = copies + i * address_cap;

		memcpy(copy, tx->targets[i].address, address_cap);
		job->direct_addresses[i] = copy;
	}
	job->is_direct = true;
	job->direct_count = tx->target_count;
	job->direct_prefix_len = tx->direct_prefix_len;
	snprintf(job->queue_id, sizeof(job->queue_id), "%.*s", QUEUE_ID_MAX, s->queue_id);
	snprintf(job->reverse_path, sizeof(job->reverse_path), "%s",
		 tx->mail.reverse_path.is_null ? "" : tx->mail.reverse_path.address);
	return true;
}

/* The end of a message: refuse it, or commit it and answer when durable. */
static void finish_message(struct smtp_session *s, enum smtp_data_error error)
{
	struct smtp_job *job;

	set_timeouts(s, false);
	s->input_mode = SMTP_INPUT_COMMAND;
	if (error != SMTP_DATA_ERROR_NONE || s->spool_failed || s->message == NULL) {
		struct smtp_reply reply = REPLY(452, "4.3.1", "Insufficient system storage");

		switch (error) {
		case SMTP_DATA_ERROR_NONE:
			break;
		case SMTP_DATA_ERROR_BARE_LF:
			reply = REPLY(550, "5.6.11",
				      "Bare LF in message data is not allowed; "
				      "lines must end with CRLF");
			break;
		case SMTP_DATA_ERROR_BARE_CR:
			reply = REPLY(550, "5.6.11",
				      "Bare CR in message data is not allowed; "
				      "lines must end with CRLF");
			break;
		case SMTP_DATA_ERROR_NUL:
			reply = REPLY(550, "5.6.0", "NUL bytes in message data are not allowed");
			break;
		case SMTP_DATA_ERROR_LINE_TOO_LONG:
			reply = REPLY(500, "5.5.2", "Line too long in message data");
			break;
		case SMTP_DATA_ERROR_TOO_BIG:
			reply = REPLY(552, "5.3.4",
				      "Message size exceeds fixed maximum message size");
			break;
		case SMTP_DATA_ERROR_SINK_FAILED:
			break;
		}
		log_info("sid=%s smtp message refused reason=%s", s->sid,
			 error == SMTP_DATA_ERROR_NONE ? "spool" : smtp_data_error_name(error));
		smtp_transaction_reset(s);
		smtp_session_reply(s, reply);
		return;
	}
	job = job_new(s, SMTP_JOB_COMMIT);
	if (job == NULL || (job->data = evbuffer_new()) == NULL) {
		if (job != NULL)
			job_free(job);
		smtp_transaction_reset(s);
		smtp_session_reply(s, REPLY(452, "4.3.1", "Insufficient system storage"));
		return;
	}
	evbuffer_add_buffer(job->data, s->body);
	job->message = s->message;
	if (s->tx.is_direct && !direct_job_fill(s, job)) {
		job->message = NULL; /* still the session's: aborted by the reset */
		job_free(job);
		smtp_transaction_reset(s);
		smtp_session_reply(s, REPLY(452, "4.3.1", "Insufficient system storage"));
		return;
	}
	job->has_envelope = !s->tx.is_direct;
	if (s->tx.is_direct) {
		if (job_submit(s, job))
			return;
		log_warning("sid=%s smtp cannot hand the delivery to a worker", s->sid);
	} else if (build_envelope(s, &job->envelope, &job->err) < 0) {
		log_warning("sid=%s smtp envelope: %s", s->sid, job->err.message);
	} else if (job_submit(s, job)) {
		return;
	} else {
		log_warning("sid=%s smtp cannot hand the commit to a worker", s->sid);
	}
	job->message = NULL; /* still the session's: aborted by the reset */
	job_free(job);
	smtp_transaction_reset(s);
	smtp_session_reply(s, REPLY(452, "4.3.1", "Insufficient system storage"));
}

/* DATA: decode what has arrived; returns false when it must wait. */
static bool read_data(struct smtp_session *s, struct evbuffer *in)
{
	size_t avail = evbuffer_get_length(in);
	size_t want = avail < SMTP_SPOOL_CHUNK ? avail : SMTP_SPOOL_CHUNK;
	unsigned char *bytes = evbuffer_pullup(in, (ev_ssize_t) want);
	size_t consumed = 0;
	enum smtp_data_result result;

	result = smtp_data_decode(&s->decoder, span_make((const char *) bytes, want), body_sink, s,
				  &consumed);
	evbuffer_drain(in, consumed);
	if (result == SMTP_DATA_DONE) {
		finish_message(s, s->decoder.line.error);
		return s->job == NULL;
	}
	if (s->decoder.line.error != SMTP_DATA_ERROR_NONE)
		evbuffer_drain(s->body, evbuffer_get_length(s->body)); /* it is refused anyway */
	else if (evbuffer_get_length(s->body) >= SMTP_SPOOL_CHUNK)
		flush_body(s);
	return s->job == NULL && consumed > 0;
}

/* BDAT: take the chunk's octets; returns false when it must wait. */
static bool read_chunk(struct smtp_session *s, struct evbuffer *in)
{
	size_t avail = evbuffer_get_length(in);
	size_t take = avail < s->chunk_remaining ? avail : (size_t) s->chunk_remaining;

	if (take > SMTP_SPOOL_CHUNK)
		take = SMTP_SPOOL_CHUNK;
	if (s->chunk_refused || s->message == NULL) {
		evbuffer_drain(in, take);
	} else {
		unsigned char *bytes = evbuffer_pullup(in, (ev_ssize_t) take);

		smtp_crlf_checker_feed(&s->chunk_checker, span_make((const char *) bytes, take));
		if (s->chunk_checker.error == SMTP_DATA_ERROR_NONE && !s->spool_failed)
			evbuffer_add(s->body, bytes, take);
		s->body_bytes += take;
		evbuffer_drain(in, take);
	}
	s->chunk_remaining -= take;
	if (s->chunk_remaining > 0) {
		if (!s->chunk_refused && evbuffer_get_length(s->body) >= SMTP_SPOOL_CHUNK)
			flush_body(s);
		return s->job == NULL && take > 0;
	}
	/* The chunk is complete. */
	if (s->chunk_refused) {
		s->input_mode = SMTP_INPUT_COMMAND;
		smtp_session_reply(s, s->chunk_reply);
		return true;
	}
	if (s->chunk_is_last) {
		enum smtp_data_error error = smtp_crlf_checker_finish(&s->chunk_checker);

		if (error == SMTP_DATA_ERROR_NONE &&
		    s->body_bytes > s->server->config->max_message_size)
			error = SMTP_DATA_ERROR_TOO_BIG;
		finish_message(s, error);
		return s->job == NULL;
	}
	s->input_mode = SMTP_INPUT_COMMAND;
	if (s->chunk_checker.error != SMTP_DATA_ERROR_NONE) {
		/* RFC 3030 4.2: after an error reply the client sends no
		 * further chunks of this message. */
		finish_message(s, s->chunk_checker.error);
		return s->job == NULL;
	}
	snprintf(s->reply_text, sizeof(s->reply_text), "%llu octets received",
		 (unsigned long long) s->chunk_size);
	smtp_session_reply(s, REPLY(250, "2.0.0", s->reply_text));
	return true;
}

/* ---- command lines ----------------------------------------------------- */

static struct smtp_reply line_refusal(enum smtp_line_result result)
{
	switch (result) {
	case SMTP_LINE_HAS_NUL:
		return REPLY(500, "5.5.2", "NUL bytes are not allowed in commands");
	case SMTP_LINE_HAS_BARE_CR:
		return REPLY(500, "5.5.2", "Bare CR is not allowed; lines end with CRLF");
	case SMTP_LINE_HAS_BARE_LF:
	case SMTP_LINE_OK:
		break;
	}
	return REPLY(500, "5.5.2", "Bare LF is not allowed; lines end with CRLF");
}

/* One response line of an AUTH exchange (RFC 4954 4: up to 12288 octets). */
static bool read_auth_line(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_ptr lf = evbuffer_search(in, "\n", 1, NULL);
	size_t len = lf.pos < 0 ? evbuffer_get_length(in) : (size_t) lf.pos + 1;
	unsigned char *bytes;
	struct span line;

	if (len > SASL_RESPONSE_LINE_MAX + 2) {
		smtp_auth_end(s);
		if (lf.pos < 0) {
			evbuffer_drain(in, len);
			s->input_mode = SMTP_INPUT_DISCARD_LINE;
		} else {
			evbuffer_drain(in, len);
		}
		smtp_session_reply(s,
				   REPLY(500, "5.5.6", "Authentication exchange line is too long"));
		return true;
	}
	if (lf.pos < 0)
		return false;
	bytes = evbuffer_pullup(in, (ev_ssize_t) len);
	line = span_make((const char *) bytes, len - 1);
	if (line.len == 0 || line.ptr[line.len - 1] != '\r') {
		evbuffer_drain(in, len);
		smtp_auth_end(s);
		smtp_session_reply(s, line_refusal(SMTP_LINE_HAS_BARE_LF));
		return true;
	}
	line.len--;
	{
		char copy[SASL_RESPONSE_LINE_MAX + 1];
		struct smtp_reply reply;

		memcpy(copy, line.ptr, line.len);
		evbuffer_drain(in, len);
		reply = smtp_auth_response(s, span_make(copy, line.len));
		sodium_memzero(copy, line.len);
		smtp_session_reply(s, reply);
	}
	return s->job == NULL && !s->is_auth_waiting;
}

/* One command line; returns false when it must wait (or the input is short). */
static bool read_command(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_ptr lf = evbuffer_search(in, "\n", 1, NULL);
	size_t len;
	unsigned char *bytes;
	struct span line;
	enum smtp_line_result check;

	if (s->input_mode == SMTP_INPUT_DISCARD_LINE) {
		if (lf.pos < 0) {
			evbuffer_drain(in, evbuffer_get_length(in));
			return false;
		}
		evbuffer_drain(in, (size_t) lf.pos + 1);
		s->input_mode = SMTP_INPUT_COMMAND;
		return true;
	}
	if (lf.pos < 0) {
		if (evbuffer_get_length(in) > SMTP_MAIL_LINE_MAX) {
			/* Too long already: answer now, drop the rest of it. */
			evbuffer_drain(in, evbuffer_get_length(in));
			s->input_mode = SMTP_INPUT_DISCARD_LINE;
			smtp_session_reply(s, REPLY(500, "5.5.2", "Line too long"));
			return s->bev != NULL;
		}
		return false;
	}
	len = (size_t) lf.pos + 1;
	if (len > SMTP_COMMAND_LINE_MAX) {
		/* Only MAIL and RCPT may be longer, by what their extensions add. */
		struct span verb, args;
		size_t max = SMTP_COMMAND_LINE_MAX;

		bytes = evbuffer_pullup(in, (ev_ssize_t) (len < 8 ? len : 8));
		smtp_command_split(span_make((const char *) bytes, len < 8 ? len : 8), &verb,
				   &args);
		if (span_eq_cstr_nocase(verb, "MAIL"))
			max = SMTP_MAIL_LINE_MAX;
		else if (span_eq_cstr_nocase(verb, "RCPT"))
			max = SMTP_RCPT_LINE_MAX;
		if (len > max) {
			evbuffer_drain(in, len);
			smtp_session_reply(s, REPLY(500, "5.5.2", "Line too long"));
			return true;
		}
	}
	bytes = evbuffer_pullup(in, (ev_ssize_t) len);
	line = span_make((const char *) bytes, len - 1);
	if (line.len == 0 || line.ptr[line.len - 1] != '\r') {
		evbuffer_drain(in, len);
		smtp_session_reply(s, line_refusal(SMTP_LINE_HAS_BARE_LF));
		return true;
	}
	line.len--;
	check = smtp_line_check(line);
	if (check != SMTP_LINE_OK) {
		evbuffer_drain(in, len);
		smtp_session_reply(s, line_refusal(check));
		return true;
	}
	{
		/* The handler may keep pointers into the line only until it
		 * returns; copy it out of the buffer before draining. */
		char copy[SMTP_MAIL_LINE_MAX];
		struct smtp_reply reply;

		memcpy(copy, line.ptr, line.len);
		evbuffer_drain(in, len);
		if (log_enabled(LOG_LEVEL_DEBUG)) {
			char shown[LOG_ESCAPED_CAP];
			struct span verb, args;

			smtp_command_split(span_make(copy, line.len), &verb, &args);
			/* An AUTH line carries credentials: its verb alone is traced. */
			log_debug("sid=%s smtp command line=%s", s->sid,
				  log_escape(span_eq_cstr_nocase(verb, "AUTH")
						     ? verb
						     : span_make(copy, line.len),
					     shown));
		}
		if (++s->commands > s->server->config->max_commands)
			reply = REPLY_CLOSE(421, "4.7.0", "Too many commands, closing connection");
		else if (line.len == 0)
			reply = REPLY(500, "5.5.2", "Empty command");
		else
			reply = smtp_command_dispatch(s, span_make(copy, line.len));
		smtp_session_reply(s, reply);
	}
	return s->job == NULL;
}

static void process_input(struct smtp_session *s)
{
	bool is_blocked_on_output = false;

	while (s->bev != NULL && s->job == NULL && !s->is_quitting && !s->is_upgrading &&
	       !s->is_auth_waiting) {
		struct evbuffer *in = bufferevent_get_input(s->bev);
		size_t before = evbuffer_get_length(in);
		bool is_line_mode =
			s->input_mode != SMTP_INPUT_DATA && s->input_mode != SMTP_INPUT_CHUNK;
		bool more;

		/* A client that pipelines without reading our replies waits
		 * until it has read them: on_write resumes us. */
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) > SMTP_OUTPUT_HIGH_WATER) {
			is_blocked_on_output = true;
			break;
		}

		if (evbuffer_get_length(in) == 0) {
			/* DATA may end in a chunk the worker still holds. */
			break;
		}
		switch (s->input_mode) {
		case SMTP_INPUT_DATA:
			more = read_data(s, in);
			break;
		case SMTP_INPUT_CHUNK:
			more = read_chunk(s, in);
			break;
		case SMTP_INPUT_AUTH:
			more = read_auth_line(s, in);
			break;
		case SMTP_INPUT_COMMAND:
		case SMTP_INPUT_DISCARD_LINE:
		default:
			more = read_command(s, in);
			break;
		}
		if (s->bev != NULL && is_line_mode)
			watch_line(s, evbuffer_get_length(bufferevent_get_input(s->bev)) < before &&
					      s->input_mode != SMTP_INPUT_DISCARD_LINE);
		if (!more)
			break;
	}
	if (s->bev != NULL)
		watch_line(s, false);
	/* Shutting down: between transactions, say goodbye (RFC 5321 3.8). */
	if (s->is_draining && s->bev != NULL && s->job == NULL && !s->tx.is_active &&
	    s->state != SMTP_STATE_BDAT && s->input_mode == SMTP_INPUT_COMMAND && !s->is_quitting &&
	    !s->is_upgrading && !s->is_auth_waiting) {
		if (s->is_tls && !s->is_handshake_done) {
			s->close(s->close_ctx, "shutdown"); /* no channel to say it on */
			return;
		}
		snprintf(s->reply_text, sizeof(s->reply_text), "%s Service shutting down",
			 smtp_session_name(s));
		smtp_session_reply(s, REPLY_CLOSE(421, "4.3.2", s->reply_text));
		return;
	}
	/* A zero-length BDAT chunk ends without reading a byte. */
	if (s->bev != NULL && s->job == NULL && !s->is_upgrading && !s->is_quitting &&
	    s->input_mode == SMTP_INPUT_CHUNK && s->chunk_remaining == 0)
		read_chunk(s, bufferevent_get_input(s->bev));
	/* The client has half-closed and everything it sent is answered:
	 * close once the replies are out. Nothing may touch s after close. */
	if (s->is_eof && s->bev != NULL && s->job == NULL && !s->is_auth_waiting &&
	    !is_blocked_on_output && !s->is_upgrading) {
		s->is_quitting = true;
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
			s->close(s->close_ctx, "eof");
	}
}

/* ---- bufferevent callbacks --------------------------------------------- */

static void on_read(struct bufferevent *bev, void *ctx)
{
	(void) bev;
	process_input(ctx);
}

static void on_read(struct bufferevent *bev, void *ctx);
static void on_event(struct bufferevent *bev, short events, void *ctx);

static void set_callbacks(struct smtp_session *s);
static void greet(struct smtp_session *s);

void smtp_session_start_tls(struct smtp_session *s)
{
	s->is_upgrading = true;
	/* Whatever the client sent after STARTTLS is never run (RFC 3207 4.2,
	 * the CVE-2011-0411 class): the upgrade discards it. */
	bufferevent_disable(s->bev, EV_READ);
}

/* The 220 is out: switch the socket to TLS and start over (RFC 3207 4.2:
 * the client must send EHLO again; nothing said before counts). */
static void upgrade(struct smtp_session *s)
{
	size_t discarded = evbuffer_get_length(bufferevent_get_input(s->bev));
	struct bufferevent *tls = s->start_tls(s->close_ctx, s->bev);

	s->is_upgrading = false;
	if (tls == NULL) {
		s->close(s->close_ctx, "tls-failed");
		return;
	}
	if (discarded > 0)
		log_info("sid=%s smtp starttls discarded=%zu", s->sid, discarded);
	s->bev = tls;
	s->is_tls = true;
	s->is_handshake_done = false;
	/* Nothing learned in plaintext survives, an earlier AUTH included. */
	smtp_auth_end(s);
	s->is_authenticated = false;
	s->auth_user[0] = '\0';
	smtp_transaction_reset(s);
	s->state = SMTP_STATE_CONNECTED;
	s->is_esmtp = false;
	s->helo[0] = '\0';
	s->input_mode = SMTP_INPUT_COMMAND;
	set_callbacks(s);
}

static void on_write(struct bufferevent *bev, void *ctx)
{
	struct smtp_session *s = ctx;

	if (s->is_upgrading) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			upgrade(s);
		return;
	}

	if (s->is_quitting) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			s->close(s->close_ctx, "quit");
		return;
	}
	process_input(s);
}

static void on_event(struct bufferevent *bev, short events, void *ctx)
{
	struct smtp_session *s = ctx;

	(void) bev;
	if (events & BEV_EVENT_CONNECTED) {
		char described[TLS_DESCRIBE_CAP];

		s->is_handshake_done = true;
		metrics_tls_handshake(s->listener, tls_handshake_version(tls_bufferevent_ssl(bev)));
		log_info("sid=%s tls %s", s->sid,
			 tls_handshake_describe(tls_bufferevent_ssl(bev), described,
						sizeof(described)));
		tls_server_name(tls_bufferevent_ssl(bev), s->server_name, sizeof(s->server_name));
		if (!s->is_greeted)
			greet(s); /* implicit TLS: now that the name is known */
		return;
	}
	if (events & BEV_EVENT_ERROR && s->is_tls) {
		char described[TLS_ERROR_DESCRIBE_CAP];

		/* Read OpenSSL's queue before anything else can touch it. */
		log_info("sid=%s tls error=%s", s->sid,
			 tls_error_describe(bev, described, sizeof(described)));
	}
	if ((events & BEV_EVENT_TIMEOUT) && (events & BEV_EVENT_READING) &&
	    (s->job != NULL || s->is_auth_waiting) && !s->is_quitting) {
		/* We are the slow one (the disk, the store, a password check or
		 * a failure delay): the client is waiting for our answer, not
		 * idle. Keep listening; the clock starts again. */
		bufferevent_enable(s->bev, EV_READ);
		return;
	}
	if (events & BEV_EVENT_TIMEOUT) {
		write_reply(s, REPLY(421, "4.4.2", "Timeout, closing connection"));
		s->is_quitting = true;
		bufferevent_disable(s->bev, EV_READ);
		bufferevent_set_timeouts(s->bev, NULL, &(struct timeval){ 10, 0 });
		/* If even the goodbye cannot be written, give up. */
		if (events & BEV_EVENT_WRITING)
			s->close(s->close_ctx, "timeout");
		return;
	}
	if (events & BEV_EVENT_EOF) {
		/* Before the TLS handshake is done nothing can still reach the
		 * client: end now. */
		if (s->is_quitting || s->is_upgrading || (s->is_tls && !s->is_handshake_done)) {
			s->close(s->close_ctx, s->is_quitting ? "quit" : "eof");
			return;
		}
		/* A client may send its whole session and half-close (nc -N,
		 * scripts): what it sent is still served, then we close. */
		s->is_eof = true;
		bufferevent_disable(bev, EV_READ);
		process_input(s);
		return;
	}
	if (events & BEV_EVENT_ERROR)
		s->close(s->close_ctx, s->is_quitting ? "quit" : "reset");
}

/* ---- life cycle -------------------------------------------------------- */

struct smtp_session *smtp_session_start(struct smtp_server *server, struct bufferevent *bev,
					const struct smtp_session_params *params)
{
	struct smtp_session *s = calloc(1, sizeof(*s));
	size_t max = server->config->max_recipients;

	if (s == NULL)
		return NULL;
	s->server = server;
	s->bev = bev;
	s->close = params->close;
	s->close_ctx = params->close_ctx;
	s->client_port = params->client_port;
	snprintf(s->sid, sizeof(s->sid), "%s", params->sid);
	snprintf(s->client_ip, sizeof(s->client_ip), "%s", params->client_ip);
	snprintf(s->listener, sizeof(s->listener), "%s", params->listener);
	s->body = evbuffer_new();
	s->line_timer = evtimer_new(bufferevent_get_base(bev), on_line_timer, s);
	s->life_timer = evtimer_new(bufferevent_get_base(bev), on_life_timer, s);
	if (s->body == NULL || s->line_timer == NULL || s->life_timer == NULL) {
		session_free(s);
		return NULL;
	}
	{
		struct timeval life = timeval_of_ms(server->config->max_session_time_ms);

		evtimer_add(s->life_timer, &life);
	}
	/* A transaction keeps the recipient limit it started with, even if a
	 * reload lowers it. */
	s->tx.recipients_cap = max;
	s->is_starttls_offered = params->is_starttls_offered && params->start_tls != NULL;
	s->is_tls = params->is_tls;
	s->is_auth_required = params->is_auth_required;
	s->is_plaintext_auth_allowed = params->is_plaintext_auth_allowed;
	s->is_cram_md5_offered = params->is_cram_md5_offered;
	s->start_tls = params->start_tls;
	if (params->local_user != NULL) {
		s->is_local = true;
		s->is_authenticated = true;
		snprintf(s->auth_user, sizeof(s->auth_user), "local:%s", params->local_user);
	}
	set_callbacks(s);
	/* Implicit TLS: the greeting waits for the handshake, which tells
	 * which of our names the client asked for. */
	if (!s->is_tls)
		greet(s);
	return s;
}

const char *smtp_session_name(const struct smtp_session *s)
{
	return s->server_name[0] != '\0' ? s->server_name : s->server->config->hostname;
}

static void greet(struct smtp_session *s)
{
	s->is_greeted = true;
	snprintf(s->reply_text, sizeof(s->reply_text), "%s ESMTP", smtp_session_name(s));
	write_reply(s, REPLY(220, NULL, s->reply_text));
}

static void set_callbacks(struct smtp_session *s)
{
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SMTP_INPUT_HIGH_WATER);
	set_timeouts(s, false);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static void session_free(struct smtp_session *s)
{
	smtp_auth_end(s);
	abort_message(s);
	if (s->body != NULL)
		evbuffer_free(s->body);
	free_transaction_arrays(s);
	if (s->line_timer != NULL)
		event_free(s->line_timer);
	if (s->life_timer != NULL)
		event_free(s->life_timer);
	free(s);
}

void smtp_session_resume(struct smtp_session *s)
{
	process_input(s);
}

void smtp_session_drain(struct smtp_session *s)
{
	if (s == NULL)
		return;
	s->is_draining = true;
	process_input(s);
}

void smtp_session_stop(struct smtp_session *s)
{
	if (s == NULL)
		return;
	s->bev = NULL;
	s->is_stopped = true;
	/* No timer may fire for a session the daemon has ended. */
	if (s->line_timer != NULL)
		evtimer_del(s->line_timer);
	if (s->life_timer != NULL)
		evtimer_del(s->life_timer);
	{
		char counts[512] = "";
		size_t o = 0;

		for (size_t i = 0; i < smtp_command_count() && o + 32 < sizeof(counts); i++) {
			if (s->command_counts[i] == 0)
				continue;
			o += (size_t) snprintf(counts + o, sizeof(counts) - o, " %s=%u",
					       smtp_command_name(i), s->command_counts[i]);
		}
		for (size_t i = 0; counts[i] != '\0' && i < o; i++)
			if (counts[i] >= 'A' && counts[i] <= 'Z')
				counts[i] = (char) (counts[i] + 32);
		counts[o] = '\0';
		log_info("sid=%s smtp commands%s errors=%u", s->sid, counts, s->errors);
	}
	if (s->job != NULL)
		return; /* freed when the job comes back */
	session_free(s);
}
