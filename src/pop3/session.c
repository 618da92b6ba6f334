/*
 * session: one POP3 connection — reading command lines, writing replies,
 * and the worker jobs a session waits for: opening the maildrop (create,
 * lock, list), reading a message file chunk by chunk for RETR and TOP, and
 * the UPDATE state at QUIT.
 *
 * Input is processed only while no job is out and no multi-line response
 * is being produced: a pipelining client's next commands (RFC 2449 6.6)
 * wait in the input buffer and run in order. A message is sent as it is
 * read: one chunk of POP3_READ_CHUNK bytes is read on a worker, encoded
 * (pop3/encode.h) into the output buffer, and the next is read only once
 * the output has drained below POP3_OUTPUT_LOW_WATER (the write watermark),
 * so a session holds at most a few chunks of any message in memory.
 */
#include "pop3/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/log.h"
#include "core/metrics.h"
#include "mailbox/path.h"
#include "tls/context.h"
#include "tls/upgrade.h"

enum pop3_job_kind {
	POP3_JOB_OPEN,	 /* create, lock and list the maildrop */
	POP3_JOB_READ,	 /* open a message file (first time) and read one chunk */
	POP3_JOB_UPDATE, /* UPDATE: unlink, mark seen, fsync, release the lock */
};

struct pop3_job {
	enum pop3_job_kind kind;
	struct pop3_session *session;
	int rc;
	struct error err;

	/* OPEN */
	char path[PATH_MAX];
	enum mailbox_pop_open_result open_result;
	/* OPEN (out), READ and UPDATE (in) */
	struct mailbox_pop_drop *drop;

	/* READ */
	size_t index;
	int fd; /* -1: open the message first */
	uint64_t offset;
	char *buffer;
	size_t len; /* 0: end of file */

	/* UPDATE */
	struct mailbox_pop_update_result update;
};

static void process_input(struct pop3_session *s);
static void session_free(struct pop3_session *s);
static void set_callbacks(struct pop3_session *s);
static void greet(struct pop3_session *s);

static const struct timeval idle_timeout = { POP3_TIMEOUT_IDLE_S, 0 };

/* ---- replies ----------------------------------------------------------- */

static void write_reply(struct pop3_session *s, struct pop3_reply reply)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	if (reply.is_continue) {
		/* RFC 5034 4: continue-req = "+" SP [base64] CRLF */
		evbuffer_add_printf(out, "+ %s\r\n", reply.text);
		return;
	}
	evbuffer_add(out, reply.is_ok ? "+OK" : "-ERR", reply.is_ok ? 3 : 4);
	if (reply.code != NULL)
		evbuffer_add_printf(out, " [%s]", reply.code); /* RFC 2449 8 */
	if (reply.text != NULL && reply.text[0] != '\0')
		evbuffer_add_printf(out, " %s", reply.text);
	evbuffer_add(out, "\r\n", 2);
}

void pop3_session_reply(struct pop3_session *s, struct pop3_reply reply)
{
	if (s->bev == NULL || reply.is_later)
		return;
	write_reply(s, reply);
	if (reply.is_bad) {
		char shown[LOG_ESCAPED_CAP];

		s->errors++;
		log_info("sid=%s pop3 error text=%s", s->sid,
			 log_escape(span_from_cstr(reply.text), shown));
		if (s->errors >= POP3_ERRORS_MAX && !reply.closes) {
			write_reply(s, POP3_ERR(NULL, "Too many errors, closing connection"));
			reply.closes = true;
		}
	}
	if (reply.closes) {
		s->is_quitting = true;
		bufferevent_disable(s->bev, EV_READ);
		/* The close happens in on_write once the output is flushed. */
	}
}

void pop3_session_line(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;

	if (s->bev == NULL)
		return;
	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(s->bev), fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(s->bev), "\r\n", 2);
}

static size_t output_len(const struct pop3_session *s)
{
	return evbuffer_get_length(bufferevent_get_output(s->bev));
}

/* A long response is being written: the client is busy reading, so only
 * the write side is timed (a download may take longer than the idle
 * timeout). */
static void output_busy(struct pop3_session *s, bool is_busy)
{
	bufferevent_set_timeouts(s->bev, is_busy ? NULL : &idle_timeout, &idle_timeout);
}

/* ---- worker jobs ------------------------------------------------------- */

static void job_run(void *arg)
{
	struct pop3_job *job = arg;

	switch (job->kind) {
	case POP3_JOB_OPEN:
		job->open_result = mailbox_pop_open(job->path, &job->drop, &job->err);
		break;
	case POP3_JOB_READ: {
		ssize_t n;

		job->rc = 0;
		if (job->fd < 0 &&
		    mailbox_pop_message_open(job->drop, job->index, &job->fd, &job->err) < 0) {
			job->rc = -1;
			break;
		}
		do
			n = pread(job->fd, job->buffer, POP3_READ_CHUNK, (off_t) job->offset);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			job->rc =
				error_set(&job->err, ERROR_IO, "maildrop: read %s: %s",
					  mailbox_pop_name(job->drop, job->index), strerror(errno));
			break;
		}
		job->len = (size_t) n;
		break;
	}
	case POP3_JOB_UPDATE:
		job->rc = mailbox_pop_update(job->drop, &job->update, &job->err);
		/* RFC 1939 6: the lock goes once the changes are made. */
		mailbox_pop_close(job->drop);
		job->drop = NULL;
		break;
	}
}

static void job_free(struct pop3_job *job)
{
	free(job->buffer);
	free(job);
}

static void job_done(void *arg);

static struct pop3_job *job_new(struct pop3_session *s, enum pop3_job_kind kind)
{
	struct pop3_job *job = calloc(1, sizeof(*job));

	if (job == NULL)
		return NULL;
	job->kind = kind;
	job->session = s;
	job->fd = -1;
	return job;
}

/* Hand a job to the pool; the session reads no more input until it is back. */
static bool job_submit(struct pop3_session *s, struct pop3_job *job)
{
	if (worker_pool_submit(s->server->workers, job_run, job_done, job) < 0)
		return false;
	s->job = job;
	return true;
}

/* ---- the maildrop ------------------------------------------------------ */

void pop3_session_open_maildrop(struct pop3_session *s)
{
	struct pop3_job *job = job_new(s, POP3_JOB_OPEN);
	struct error err;

	if (job == NULL) {
		pop3_session_reply(s, POP3_ERR("SYS/TEMP", "Out of memory, try again later"));
		return;
	}
	if (mailbox_path_for(s->server->config->maildir_root, s->auth_user, job->path,
			     sizeof(job->path), &err) < 0) {
		log_warning("sid=%s pop3 maildrop user=%s: %s", s->sid, s->auth_user, err.message);
		job_free(job);
		pop3_session_reply(s, POP3_ERR("SYS/TEMP", "Cannot open the mailbox"));
		return;
	}
	if (!job_submit(s, job)) {
		job_free(job);
		pop3_session_reply(s, POP3_ERR("SYS/TEMP", "Cannot open the mailbox"));
	}
}

static void open_done(struct pop3_session *s, struct pop3_job *job)
{
	switch (job->open_result) {
	case MAILBOX_POP_OPENED:
		s->drop = job->drop;
		job->drop = NULL;
		s->state = POP3_STATE_TRANSACTION;
		log_info("sid=%s pop3 login user=%s mech=%s messages=%zu octets=%" PRIu64, s->sid,
			 s->auth_user, s->login_mechanism, s->drop->count, s->drop->total_size);
		snprintf(s->reply_text, sizeof(s->reply_text),
			 "Maildrop locked and ready, %zu messages (%" PRIu64 " octets)",
			 s->drop->count, s->drop->total_size);
		pop3_session_reply(s, POP3_OK(s->reply_text));
		return;
	case MAILBOX_POP_IN_USE:
		log_info("sid=%s pop3 login refused user=%s reason=in-use", s->sid, s->auth_user);
		s->auth_user[0] = '\0';
		/* RFC 2449 8.1.1 */
		pop3_session_reply(s, POP3_ERR("IN-USE", "Mailbox is in use by another session"));
		return;
	case MAILBOX_POP_FAILED:
		break;
	}
	log_warning("sid=%s pop3 maildrop user=%s: %s", s->sid, s->auth_user, job->err.message);
	s->auth_user[0] = '\0';
	pop3_session_reply(s, POP3_ERR("SYS/TEMP", "Cannot open the mailbox, try again later"));
}

void pop3_session_update(struct pop3_session *s)
{
	struct pop3_job *job = job_new(s, POP3_JOB_UPDATE);

	if (job == NULL) {
		pop3_session_reply(s, POP3_CLOSE("SYS/TEMP", "Out of memory; nothing was deleted"));
		return;
	}
	job->drop = s->drop;
	s->drop = NULL;
	if (!job_submit(s, job)) {
		s->drop = job->drop;
		job_free(job);
		pop3_session_reply(s, POP3_CLOSE("SYS/TEMP", "Server busy; nothing was deleted"));
	}
}

static void update_done(struct pop3_session *s, struct pop3_job *job)
{
	log_info("sid=%s pop3 update user=%s deleted=%zu not_deleted=%zu seen=%zu", s->sid,
		 s->auth_user, job->update.deleted, job->update.not_deleted,
		 job->update.marked_seen);
	if (job->rc < 0) {
		log_warning("sid=%s pop3 update: %s", s->sid, job->err.message);
		/* RFC 1939 6: "-ERR some deleted messages not removed". */
		pop3_session_reply(s, POP3_CLOSE("SYS/TEMP", "Some deleted messages not removed"));
		return;
	}
	snprintf(s->reply_text, sizeof(s->reply_text), "%s POP3 server signing off (%zu deleted)",
		 pop3_session_name(s), job->update.deleted);
	pop3_session_reply(
		s, (struct pop3_reply){ .is_ok = true, .text = s->reply_text, .closes = true });
}

/* ---- RETR and TOP ------------------------------------------------------ */

static bool read_next(struct pop3_session *s)
{
	struct pop3_job *job = job_new(s, POP3_JOB_READ);

	if (job == NULL || (job->buffer = malloc(POP3_READ_CHUNK)) == NULL) {
		if (job != NULL)
			job_free(job);
		return false;
	}
	job->drop = s->drop;
	job->index = s->stream_index;
	job->fd = s->stream_fd;
	job->offset = s->stream_offset;
	if (!job_submit(s, job)) {
		job_free(job);
		return false;
	}
	s->stream_fd = -1; /* the job's while it is out */
	s->is_stream_waiting = false;
	return true;
}

static void stream_end(struct pop3_session *s)
{
	if (s->stream_fd >= 0)
		close(s->stream_fd);
	s->stream_fd = -1;
	s->is_streaming = false;
	s->is_stream_waiting = false;
	if (s->bev != NULL)
		output_busy(s, false);
}

void pop3_session_send_message(struct pop3_session *s, size_t index, bool is_retr,
			       uint64_t top_lines)
{
	s->is_streaming = true;
	s->is_stream_retr = is_retr;
	s->stream_index = index;
	s->stream_fd = -1;
	s->stream_offset = 0;
	pop3_encoder_init(&s->encoder, !is_retr, top_lines);
	if (!read_next(s)) {
		stream_end(s);
		pop3_session_reply(s, POP3_ERR("SYS/TEMP", "Cannot read the message now"));
		return;
	}
	output_busy(s, true);
}

static int output_sink(void *ctx, struct span bytes)
{
	struct pop3_session *s = ctx;

	return evbuffer_add(bufferevent_get_output(s->bev), bytes.ptr, bytes.len);
}

static void read_done(struct pop3_session *s, struct pop3_job *job)
{
	bool is_first = job->offset == 0;

	s->stream_fd = job->fd;
	job->fd = -1;
	if (job->rc < 0) {
		stream_end(s);
		if (!is_first) {
			/* Part of the message is out: no reply can follow it. */
			log_warning("sid=%s pop3 %s", s->sid, job->err.message);
			s->close(s->close_ctx, "read-failed");
			return;
		}
		if (job->err.kind == ERROR_NOT_FOUND) {
			pop3_session_reply(s, POP3_ERR(NULL, "Message has been removed meanwhile"));
			return;
		}
		log_warning("sid=%s pop3 %s", s->sid, job->err.message);
		pop3_session_reply(s, POP3_ERR("SYS/TEMP", "Cannot read the message now"));
		return;
	}
	if (is_first) {
		if (s->is_stream_retr) {
			snprintf(s->reply_text, sizeof(s->reply_text), "%" PRIu64 " octets",
				 s->drop->messages[s->stream_index].size);
			pop3_session_reply(s, POP3_OK(s->reply_text));
		} else {
			pop3_session_reply(s, POP3_OK("Top of message follows"));
		}
	}
	s->stream_offset += job->len;
	if (job->len > 0 &&
	    pop3_encoder_feed(&s->encoder, span_make(job->buffer, job->len), output_sink, s) < 0) {
		stream_end(s);
		s->close(s->close_ctx, "out-of-memory");
		return;
	}
	if (job->len == 0 || s->encoder.is_done) {
		if (pop3_encoder_finish(&s->encoder, output_sink, s) < 0) {
			stream_end(s);
			s->close(s->close_ctx, "out-of-memory");
			return;
		}
		if (s->is_stream_retr)
			s->drop->messages[s->stream_index].is_retrieved = true;
		stream_end(s);
		return;
	}
	if (output_len(s) > POP3_OUTPUT_LOW_WATER) {
		s->is_stream_waiting = true; /* on_write reads on */
		return;
	}
	if (!read_next(s)) {
		stream_end(s);
		s->close(s->close_ctx, "out-of-memory");
	}
}

/* ---- LIST and UIDL ----------------------------------------------------- */

void pop3_session_send_listing(struct pop3_session *s, bool is_uidl)
{
	s->is_listing = true;
	s->is_listing_uidl = is_uidl;
	s->listing_next = 0;
	output_busy(s, true);
}

/* Write listing lines until the output is full; the end line when done. */
static void continue_listing(struct pop3_session *s)
{
	const struct mailbox_pop_drop *drop = s->drop;
	unsigned written = 0;

	while (s->listing_next < drop->count && output_len(s) < POP3_OUTPUT_HIGH_WATER) {
		size_t i = s->listing_next++;

		if (drop->messages[i].is_deleted)
			continue; /* RFC 1939 5 */
		if (s->is_listing_uidl)
			pop3_session_line(s, "%zu %s", i + 1, mailbox_pop_uid(drop, i));
		else
			pop3_session_line(s, "%zu %" PRIu64, i + 1, drop->messages[i].size);
		if (++written == POP3_LIST_BATCH && output_len(s) >= POP3_OUTPUT_LOW_WATER)
			break;
	}
	if (s->listing_next < drop->count)
		return; /* on_write goes on */
	pop3_session_line(s, ".");
	s->is_listing = false;
	output_busy(s, false);
}

/* ---- job completion ---------------------------------------------------- */

static void job_done(void *arg)
{
	struct pop3_job *job = arg;
	struct pop3_session *s = job->session;

	s->job = NULL;
	if (s->is_stopped) {
		/* The connection went away while the job was out: nothing
		 * more is said, and what the job holds is let go (a maildrop
		 * just opened releases its lock). */
		if (job->kind == POP3_JOB_OPEN && job->open_result == MAILBOX_POP_OPENED)
			mailbox_pop_close(job->drop);
		if (job->fd >= 0)
			close(job->fd);
		job_free(job);
		session_free(s);
		return;
	}
	switch (job->kind) {
	case POP3_JOB_OPEN:
		open_done(s, job);
		break;
	case POP3_JOB_READ:
		read_done(s, job);
		break;
	case POP3_JOB_UPDATE:
		update_done(s, job);
		break;
	}
	job_free(job);
	if (s->bev != NULL)
		process_input(s);
}

/* ---- command lines ----------------------------------------------------- */

/* One response line of an AUTH exchange (RFC 5034 4). */
static bool read_auth_line(struct pop3_session *s, struct evbuffer *in)
{
	struct evbuffer_ptr lf = evbuffer_search(in, "\n", 1, NULL);
	size_t len = lf.pos < 0 ? evbuffer_get_length(in) : (size_t) lf.pos + 1;
	char copy[POP3_AUTH_LINE_MAX + 2];
	struct pop3_reply reply;
	struct span line;

	if (len > POP3_AUTH_LINE_MAX + 2) {
		pop3_auth_end(s);
		evbuffer_drain(in, len);
		if (lf.pos < 0)
			s->input_mode = POP3_INPUT_DISCARD_LINE;
		pop3_session_reply(s, POP3_BAD("Authentication exchange line is too long"));
		return true;
	}
	if (lf.pos < 0)
		return false;
	line = span_make((const char *) evbuffer_pullup(in, (ev_ssize_t) len), len - 1);
	if (line.len > 0 && line.ptr[line.len - 1] == '\r')
		line.len--;
	memcpy(copy, line.ptr, line.len);
	evbuffer_drain(in, len);
	reply = pop3_auth_response(s, span_make(copy, line.len));
	sodium_memzero(copy, line.len);
	pop3_session_reply(s, reply);
	return s->job == NULL && !s->is_auth_waiting;
}

/* The most a line may hold, CRLF included, given its first bytes: AUTH
 * may carry an initial response past RFC 2449's 255 octets (RFC 5034 4). */
static size_t line_max(struct evbuffer *in)
{
	unsigned char head[5];
	ev_ssize_t n = evbuffer_copyout(in, head, sizeof(head));

	if (n == 5 && (head[0] | 0x20) == 'a' && (head[1] | 0x20) == 'u' &&
	    (head[2] | 0x20) == 't' && (head[3] | 0x20) == 'h' && head[4] == ' ')
		return POP3_AUTH_LINE_MAX + 64;
	return POP3_COMMAND_LINE_MAX;
}

/* One command line; returns false when it must wait (or the input is short). */
static bool read_command(struct pop3_session *s, struct evbuffer *in)
{
	struct evbuffer_ptr lf = evbuffer_search(in, "\n", 1, NULL);
	size_t len, max = line_max(in);
	static char copy[POP3_AUTH_LINE_MAX + 64]; /* the loop thread only */
	struct pop3_reply reply;
	struct span line;

	if (s->input_mode == POP3_INPUT_DISCARD_LINE) {
		if (lf.pos < 0) {
			evbuffer_drain(in, evbuffer_get_length(in));
			return false;
		}
		evbuffer_drain(in, (size_t) lf.pos + 1);
		s->input_mode = POP3_INPUT_COMMAND;
		return true;
	}
	if (lf.pos < 0) {
		if (evbuffer_get_length(in) >= max) {
			/* Too long already: answer now, drop the rest of it. */
			evbuffer_drain(in, evbuffer_get_length(in));
			s->input_mode = POP3_INPUT_DISCARD_LINE;
			s->has_user = false;
			pop3_session_reply(s, POP3_BAD("Line too long"));
			return s->bev != NULL;
		}
		return false;
	}
	len = (size_t) lf.pos + 1;
	if (len > max) {
		evbuffer_drain(in, len);
		s->has_user = false;
		pop3_session_reply(s, POP3_BAD("Line too long"));
		return true;
	}
	line = span_make((const char *) evbuffer_pullup(in, (ev_ssize_t) len), len - 1);
	/* RFC 1939 3 ends lines with CRLF; a bare LF is taken too (scripts). */
	if (line.len > 0 && line.ptr[line.len - 1] == '\r')
		line.len--;
	/* The handler may keep pointers into the line only until it returns. */
	memcpy(copy, line.ptr, line.len);
	evbuffer_drain(in, len);
	line = span_make(copy, line.len);
	if (log_enabled(LOG_LEVEL_DEBUG)) {
		char shown[LOG_ESCAPED_CAP];
		struct span keyword, args;

		span_split_word(line, &keyword, &args);
		/* PASS and AUTH carry credentials: their keyword alone is traced. */
		log_debug("sid=%s pop3 command line=%s", s->sid,
			  log_escape(span_eq_cstr_nocase(keyword, "PASS") ||
						     span_eq_cstr_nocase(keyword, "AUTH")
					     ? keyword
					     : line,
				     shown));
	}
	reply = pop3_command_dispatch(s, line);
	sodium_memzero(copy, line.len);
	pop3_session_reply(s, reply);
	return s->job == NULL;
}

static bool is_busy(const struct pop3_session *s)
{
	return s->bev == NULL || s->job != NULL || s->is_quitting || s->is_upgrading ||
	       s->is_auth_waiting || s->is_streaming;
}

static void process_input(struct pop3_session *s)
{
	bool is_blocked_on_output = false;

	while (!is_busy(s)) {
		struct evbuffer *in = bufferevent_get_input(s->bev);
		bool more;

		if (s->is_listing) {
			continue_listing(s);
			if (s->is_listing) {
				is_blocked_on_output = true;
				break;
			}
			continue;
		}
		/* A client that pipelines without reading our replies waits
		 * until it has read them: on_write resumes us. */
		if (output_len(s) > POP3_OUTPUT_HIGH_WATER) {
			is_blocked_on_output = true;
			break;
		}
		if (evbuffer_get_length(in) == 0)
			break;
		if (s->input_mode == POP3_INPUT_AUTH)
			more = read_auth_line(s, in);
		else
			more = read_command(s, in);
		if (!more)
			break;
	}
	if (is_busy(s) || s->is_listing)
		return;
	/* Shutting down: between commands, say goodbye; nothing is deleted. */
	if (s->is_draining && s->input_mode == POP3_INPUT_COMMAND) {
		if (s->is_tls && !s->is_handshake_done) {
			s->close(s->close_ctx, "shutdown"); /* no channel to say it on */
			return;
		}
		snprintf(s->reply_text, sizeof(s->reply_text), "%s POP3 server shutting down",
			 pop3_session_name(s));
		pop3_session_reply(s, POP3_CLOSE("SYS/TEMP", s->reply_text));
		return;
	}
	/* The client has half-closed and everything it sent is answered:
	 * close once the replies are out. Nothing may touch s after close. */
	if (s->is_eof && !is_blocked_on_output) {
		s->is_quitting = true;
		if (output_len(s) == 0)
			s->close(s->close_ctx, "eof");
	}
}

/* ---- bufferevent callbacks --------------------------------------------- */

static void on_read(struct bufferevent *bev, void *ctx)
{
	(void) bev;
	process_input(ctx);
}

void pop3_session_start_tls(struct pop3_session *s)
{
	s->is_upgrading = true;
	/* Whatever the client sent after STLS is never run (RFC 2595 4, the
	 * CVE-2011-0411 class): the upgrade discards it. */
	bufferevent_disable(s->bev, EV_READ);
}

/* The +OK is out: switch the socket to TLS. RFC 2595 4: the server forgets
 * what it learned before (a USER name). */
static void upgrade(struct pop3_session *s)
{
	size_t discarded = evbuffer_get_length(bufferevent_get_input(s->bev));
	struct bufferevent *tls = s->start_tls(s->close_ctx, s->bev);

	s->is_upgrading = false;
	if (tls == NULL) {
		s->close(s->close_ctx, "tls-failed");
		return;
	}
	if (discarded > 0)
		log_info("sid=%s pop3 stls discarded=%zu", s->sid, discarded);
	s->bev = tls;
	s->is_tls = true;
	s->is_handshake_done = false;
	pop3_auth_end(s);
	s->has_user = false;
	s->input_mode = POP3_INPUT_COMMAND;
	set_callbacks(s);
}

static void on_write(struct bufferevent *bev, void *ctx)
{
	struct pop3_session *s = ctx;

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
	if (s->is_streaming && s->is_stream_waiting && s->job == NULL) {
		if (output_len(s) <= POP3_OUTPUT_LOW_WATER && !read_next(s)) {
			stream_end(s);
			s->close(s->close_ctx, "out-of-memory");
		}
		return;
	}
	process_input(s);
}

static void on_event(struct bufferevent *bev, short events, void *ctx)
{
	struct pop3_session *s = ctx;

	if (events & BEV_EVENT_CONNECTED) {
		char described[TLS_DESCRIBE_CAP];

		s->is_handshake_done = true;
		metrics_tls_handshake(s->listener, tls_handshake_version(tls_bufferevent_ssl(bev)));
		log_info("sid=%s tls %s", s->sid,
			 tls_handshake_describe(tls_bufferevent_ssl(bev), described,
						sizeof(described)));
		tls_server_name(tls_bufferevent_ssl(bev), s->server_name, sizeof(s->server_name));
		if (!s->is_greeted)
			greet(s); /* pop3s: now that the name is known */
		return;
	}
	if (events & BEV_EVENT_ERROR && s->is_tls) {
		char described[TLS_ERROR_DESCRIBE_CAP];

		log_info("sid=%s tls error=%s", s->sid,
			 tls_error_describe(bev, described, sizeof(described)));
	}
	if (events & BEV_EVENT_TIMEOUT) {
		/* RFC 1939 3: the autologout timer ends the session without
		 * entering UPDATE. */
		if ((events & BEV_EVENT_WRITING) || (s->is_tls && !s->is_handshake_done)) {
			s->close(s->close_ctx, "timeout");
			return;
		}
		write_reply(s, POP3_ERR(NULL, "Autologout; idle for too long"));
		s->is_quitting = true;
		bufferevent_disable(s->bev, EV_READ);
		bufferevent_set_timeouts(s->bev, NULL, &(struct timeval){ 10, 0 });
		return;
	}
	if (events & BEV_EVENT_EOF) {
		if (s->is_quitting || s->is_upgrading || (s->is_tls && !s->is_handshake_done)) {
			s->close(s->close_ctx, s->is_quitting ? "quit" : "eof");
			return;
		}
		/* What the client sent before it half-closed is still served. */
		s->is_eof = true;
		bufferevent_disable(bev, EV_READ);
		process_input(s);
		return;
	}
	if (events & BEV_EVENT_ERROR)
		s->close(s->close_ctx, s->is_quitting ? "quit" : "reset");
}

/* ---- life cycle -------------------------------------------------------- */

static void set_callbacks(struct pop3_session *s)
{
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, POP3_INPUT_HIGH_WATER);
	bufferevent_setwatermark(s->bev, EV_WRITE, POP3_OUTPUT_LOW_WATER, 0);
	bufferevent_set_timeouts(s->bev, &idle_timeout, &idle_timeout);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

struct pop3_session *pop3_session_start(struct pop3_server *server, struct bufferevent *bev,
					const struct pop3_session_params *params)
{
	struct pop3_session *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->server = server;
	s->bev = bev;
	s->close = params->close;
	s->close_ctx = params->close_ctx;
	s->start_tls = params->start_tls;
	s->stream_fd = -1;
	s->login_mechanism = "USER";
	snprintf(s->sid, sizeof(s->sid), "%s", params->sid);
	snprintf(s->client_ip, sizeof(s->client_ip), "%s", params->client_ip);
	snprintf(s->listener, sizeof(s->listener), "%s", params->listener);
	s->is_stls_offered = params->is_stls_offered && params->start_tls != NULL;
	s->is_tls = params->is_tls;
	s->is_plaintext_auth_allowed = params->is_plaintext_auth_allowed;
	s->is_cram_md5_offered = params->is_cram_md5_offered;
	set_callbacks(s);
	s->is_apop_offered = params->is_apop_offered;
	/* pop3s: the greeting waits for the handshake, which tells which of
	 * our names the client asked for. */
	if (!s->is_tls)
		greet(s);
	return s;
}

const char *pop3_session_name(const struct pop3_session *s)
{
	return s->server_name[0] != '\0' ? s->server_name : s->server->config->hostname;
}

static void greet(struct pop3_session *s)
{
	s->is_greeted = true;
	if (s->is_apop_offered) {
		/* RFC 1939 7: a timestamp unique to this greeting; the random
		 * part makes it unguessable, so a recorded digest is no use. */
		unsigned char noise[8];
		char hex[2 * sizeof(noise) + 1];

		randombytes_buf(noise, sizeof(noise));
		sodium_bin2hex(hex, sizeof(hex), noise, sizeof(noise));
		snprintf(s->apop_timestamp, sizeof(s->apop_timestamp), "<%ld.%s@%s>",
			 (long) getpid(), hex, pop3_session_name(s));
		snprintf(s->reply_text, sizeof(s->reply_text), "%s POP3 server ready %s",
			 pop3_session_name(s), s->apop_timestamp);
	} else {
		snprintf(s->reply_text, sizeof(s->reply_text), "%s POP3 server ready",
			 pop3_session_name(s));
	}
	write_reply(s, POP3_OK(s->reply_text));
}

static void session_free(struct pop3_session *s)
{
	pop3_auth_end(s);
	if (s->stream_fd >= 0)
		close(s->stream_fd);
	/* Closing the maildrop releases its lock: a dropped connection or a
	 * timeout deletes nothing (RFC 1939 6). */
	mailbox_pop_close(s->drop);
	free(s);
}

void pop3_session_resume(struct pop3_session *s)
{
	if (s->bev != NULL)
		process_input(s);
}

void pop3_session_drain(struct pop3_session *s)
{
	if (s == NULL)
		return;
	s->is_draining = true;
	process_input(s);
}

void pop3_session_stop(struct pop3_session *s)
{
	char counts[512] = "";
	size_t o = 0;

	if (s == NULL)
		return;
	s->bev = NULL;
	s->is_stopped = true;
	for (size_t i = 0; i < pop3_command_count() && o + 32 < sizeof(counts); i++) {
		if (s->command_counts[i] == 0)
			continue;
		o += (size_t) snprintf(counts + o, sizeof(counts) - o, " %s=%u",
				       pop3_command_name(i), s->command_counts[i]);
	}
	for (size_t i = 0; i < o; i++)
		if (counts[i] >= 'A' && counts[i] <= 'Z')
			counts[i] = (char) (counts[i] + 32);
	log_info("sid=%s pop3 commands%s errors=%u", s->sid, counts, s->errors);
	if (s->job != NULL)
		return; /* freed when the job comes back */
	session_free(s);
}
