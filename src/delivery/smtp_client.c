/*
 * smtp_client: the state machine of one outgoing connection. Two switches
 * over one state enum (STYLE 3): enter() sends what the state sends,
 * on_reply() reads the reply and picks the next state.
 *
 * Host-level failures — no connection, a timeout, a greeting or EHLO that is
 * not 2xx, STARTTLS required but missing or failing, a 421, a MAIL refused
 * with 4xx on the first message — move on to the next address and host
 * (RFC 5321 5.1: "try each of the remaining addresses"), and only when none
 * is left does the message get the last temporary failure.
 */
#include "delivery/smtp_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/log.h"
#include "delivery/reply.h"

/* RFC 5321 4.5.3.2, in seconds. */
#define TIMEOUT_CONNECT_S  30 /* not in the RFC; a dead address must not hold us long */
#define TIMEOUT_GREETING_S 300
#define TIMEOUT_MAIL_S	   300
#define TIMEOUT_RCPT_S	   300
#define TIMEOUT_DATA_S	   120
#define TIMEOUT_BLOCK_S	   180
#define TIMEOUT_DOT_S	   600
#define TIMEOUT_OTHER_S	   300 /* EHLO, STARTTLS, RSET, QUIT */

enum client_state {
	CLIENT_CONNECTING,
	CLIENT_GREETING,
	CLIENT_EHLO,
	CLIENT_HELO,
	CLIENT_STARTTLS,
	CLIENT_TLS_HANDSHAKE,
	CLIENT_MAIL,
	CLIENT_RCPT,
	CLIENT_DATA,
	CLIENT_BODY,
	CLIENT_DOT,
	CLIENT_RSET,
	CLIENT_QUIT,
};

struct delivery_smtp {
	struct delivery_smtp_params params;
	struct delivery_hosts hosts;
	size_t host_index, address_index;
	struct bufferevent *bev;
	enum client_state state;
	struct delivery_reply reply;
	bool is_reading_reply;
	struct delivery_ehlo ehlo;
	bool is_tls;
	bool is_mail_failed; /* pipelined: MAIL refused, RCPT and DATA replies to skip */
	bool is_ready;	     /* a transaction has started on this connection */
	unsigned transaction_count;
	unsigned depth; /* inside a libevent callback */
	bool is_ended;	/* freed when the outermost callback returns */

	struct delivery_message *message;
	size_t rcpt_index;    /* the RCPT whose reply comes next */
	size_t accepted;      /* RCPTs accepted in this transaction */
	uint64_t body_offset; /* next byte of the file to send */
	bool at_line_start, last_was_lf;
	char last_failure[DELIVERY_DETAIL_MAX]; /* a host-level failure, for the message */
	unsigned last_failure_code;

	delivery_message_done_fn *message_done;
	delivery_message_next_fn *next;
	delivery_session_done_fn *session_done;
	void *ctx;
};

static void enter(struct delivery_smtp *c, enum client_state state);
static void try_next_address(struct delivery_smtp *c);
static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short events, void *arg);

static const char *host_name(const struct delivery_smtp *c)
{
	return c->hosts.hosts[c->host_index].name;
}

static void set_timeout(struct delivery_smtp *c, unsigned seconds)
{
	unsigned div = c->params.timeout_divisor ? c->params.timeout_divisor : 1;
	uint64_t ms = (uint64_t) seconds * 1000 / div;
	struct timeval read_tv = { (time_t) (ms / 1000), (suseconds_t) ((ms % 1000) * 1000) };
	uint64_t wms = (uint64_t) TIMEOUT_BLOCK_S * 1000 / div;
	struct timeval write_tv = { (time_t) (wms / 1000), (suseconds_t) ((wms % 1000) * 1000) };

	bufferevent_set_timeouts(c->bev, &read_tv, &write_tv);
}

static void send_line(struct delivery_smtp *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void send_line(struct delivery_smtp *c, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

bool delivery_xtext_encode(const char *s, char *out, size_t out_cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
		if (*p >= 0x21 && *p <= 0x7e && *p != '+' && *p != '=') {
			if (n + 1 >= out_cap)
				return false;
			out[n++] = (char) *p;
		} else {
			if (n + 3 >= out_cap)
				return false;
			out[n++] = '+';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	if (n >= out_cap)
		return false;
	out[n] = '\0';
	return true;
}

/* --- ending ---------------------------------------------------------------- */

static void close_connection(struct delivery_smtp *c)
{
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
}

/* The owner hears of the end once; c is freed when no callback of ours is
 * on the stack any more. */
static void session_end(struct delivery_smtp *c)
{
	close_connection(c);
	if (c->is_ended)
		return;
	c->is_ended = true;
	c->session_done(c->ctx);
	if (c->depth == 0)
		free(c);
}

static void callback_enter(struct delivery_smtp *c)
{
	c->depth++;
}

/* True when c was freed: the callback must return at once. */
static bool callback_leave(struct delivery_smtp *c)
{
	if (--c->depth == 0 && c->is_ended) {
		free(c);
		return true;
	}
	return false;
}

/* Every recipient without a code gets this one. */
static void message_fail_all(struct delivery_message *m, unsigned code, const char *text)
{
	for (size_t i = 0; i < m->recipient_count; i++) {
		if (m->recipients[i].code != 0)
			continue;
		m->recipients[i].code = code;
		snprintf(m->recipients[i].reply, sizeof(m->recipients[i].reply), "%s", text);
	}
}

static void message_finish(struct delivery_smtp *c)
{
	struct delivery_message *m = c->message;

	c->message = NULL;
	c->message_done(c->ctx, m);
}

/* The connection broke (or the server said 421) during a transaction or
 * between two: the message in flight is deferred and the session ends. */
static void connection_lost(struct delivery_smtp *c, const char *why)
{
	char text[DELIVERY_DETAIL_MAX];

	log_info("delivery smtp host=%s lost reason=\"%s\"", host_name(c), why);
	if (c->message != NULL) {
		struct delivery_message *m = c->message;

		snprintf(text, sizeof(text), "421 4.4.2 %s: %s", host_name(c), why);
		/* A RCPT the server accepted is not a delivery: only the reply to
		 * the final dot is (RFC 5321 4.1.1.4). The transaction never ended,
		 * so those recipients are deferred too; refusals (4xx, 5xx) stand. */
		for (size_t i = 0; i < m->recipient_count; i++)
			if (m->recipients[i].code / 100 == 2)
				m->recipients[i].code = 0;
		message_fail_all(m, 421, text);
		message_finish(c);
	}
	session_end(c);
}

/* A failure before the first transaction started: note it and try the next
 * address; the message is failed with it only when none is left. */
static void host_failed(struct delivery_smtp *c, unsigned code, const char *why)
{
	snprintf(c->last_failure, sizeof(c->last_failure), "%s: %s", host_name(c), why);
	c->last_failure_code = code;
	log_info("delivery smtp host=%s failed reason=\"%s\"", host_name(c), why);
	close_connection(c);
	if (c->is_ready) {
		connection_lost(c, why);
		return;
	}
	c->address_index++;
	try_next_address(c);
}

/* --- the message body ------------------------------------------------------ */

/* Queue more of the body: dot-stuffed (RFC 5321 4.5.2), until the output
 * holds DELIVERY_SMTP_OUTPUT_HIGH bytes or the message ends. */
static void body_fill(struct delivery_smtp *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char chunk[DELIVERY_SMTP_CHUNK_BYTES];

	while (evbuffer_get_length(out) < DELIVERY_SMTP_OUTPUT_HIGH) {
		ssize_t n = pread(c->message->fd, chunk, sizeof(chunk), (off_t) c->body_offset);
		size_t i = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			char why[128];

			snprintf(why, sizeof(why), "reading the spooled message: %s",
				 strerror(errno));
			/* Our failure, not the server's: drop the connection before
			 * the final dot so nothing half-sent is delivered. */
			connection_lost(c, why);
			return;
		}
		if (n == 0) {
			if (!c->last_was_lf)
				evbuffer_add(out, "\r\n", 2);
			evbuffer_add(out, ".\r\n", 3);
			enter(c, CLIENT_DOT);
			return;
		}
		while (i < (size_t) n) {
			const char *nl = memchr(chunk + i, '\n', (size_t) n - i);
			size_t end = nl == NULL ? (size_t) n : (size_t) (nl - chunk) + 1;

			if (c->at_line_start && chunk[i] == '.')
				evbuffer_add(out, ".", 1);
			evbuffer_add(out, chunk + i, end - i);
			c->at_line_start = nl != NULL;
			i = end;
		}
		c->last_was_lf = chunk[n - 1] == '\n';
		c->body_offset += (uint64_t) n;
	}
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct delivery_smtp *c = arg;

	if (bev != c->bev)
		return;
	callback_enter(c);
	if (c->state == CLIENT_BODY)
		body_fill(c);
	callback_leave(c);
}

/* --- sending --------------------------------------------------------------- */

static void send_mail(struct delivery_smtp *c)
{
	struct delivery_message *m = c->message;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char xtext[DELIVERY_XTEXT_CAP];

	evbuffer_add_printf(out, "MAIL FROM:<%s>", m->reverse_path);
	if (c->ehlo.has_size)
		evbuffer_add_printf(out, " SIZE=%llu", (unsigned long long) m->size);
	if (m->body == DELIVERY_BODY_8BITMIME && c->ehlo.has_8bitmime)
		evbuffer_add_printf(out, " BODY=8BITMIME");
	if (m->is_smtputf8)
		evbuffer_add_printf(out, " SMTPUTF8");
	if (c->ehlo.has_dsn) {
		if (m->ret != 0)
			evbuffer_add_printf(out, " RET=%s", m->ret == 1 ? "FULL" : "HDRS");
		if (m->envid != NULL && delivery_xtext_encode(m->envid, xtext, sizeof(xtext)))
			evbuffer_add_printf(out, " ENVID=%s", xtext);
	}
	evbuffer_add(out, "\r\n", 2);
}

static void send_rcpt(struct delivery_smtp *c, size_t i)
{
	struct delivery_recipient *r = &c->message->recipients[i];
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char xtext[DELIVERY_XTEXT_CAP];

	evbuffer_add_printf(out, "RCPT TO:<%s>", r->address);
	if (c->ehlo.has_dsn && r->notify != 0) {
		static const char *const words[] = { "SUCCESS", "FAILURE", "DELAY" };
		bool first = true;

		evbuffer_add_printf(out, " NOTIFY=");
		if (r->notify & DELIVERY_NOTIFY_NEVER)
			evbuffer_add_printf(out, "NEVER");
		for (unsigned b = 0; b < 3; b++)
			if (r->notify & (1u << b)) {
				evbuffer_add_printf(out, "%s%s", first ? "" : ",", words[b]);
				first = false;
			}
	}
	if (c->ehlo.has_dsn && r->orcpt != NULL) {
		const char *semi = strchr(r->orcpt, ';');

		if (semi != NULL && delivery_xtext_encode(semi + 1, xtext, sizeof(xtext)))
			evbuffer_add_printf(out, " ORCPT=%.*s;%s", (int) (semi - r->orcpt),
					    r->orcpt, xtext);
	}
	evbuffer_add(out, "\r\n", 2);
}

/* Next recipient that still needs a RCPT (none has a code before RCPT). */
static void enter(struct delivery_smtp *c, enum client_state state)
{
	struct delivery_message *m = c->message;

	c->state = state;
	switch (state) {
	case CLIENT_CONNECTING:
	case CLIENT_TLS_HANDSHAKE:
		set_timeout(c, TIMEOUT_CONNECT_S);
		break;
	case CLIENT_GREETING:
		set_timeout(c, TIMEOUT_GREETING_S);
		break;
	case CLIENT_EHLO:
		send_line(c, "EHLO %s", c->params.helo_name);
		set_timeout(c, TIMEOUT_OTHER_S);
		break;
	case CLIENT_HELO:
		send_line(c, "HELO %s", c->params.helo_name);
		set_timeout(c, TIMEOUT_OTHER_S);
		break;
	case CLIENT_STARTTLS:
		send_line(c, "STARTTLS");
		set_timeout(c, TIMEOUT_OTHER_S);
		break;
	case CLIENT_MAIL:
		c->transaction_count++;
		c->is_mail_failed = false;
		c->rcpt_index = 0;
		c->accepted = 0;
		c->body_offset = 0;
		c->at_line_start = true;
		c->last_was_lf = false;
		c->is_ready = true;
		snprintf(m->remote_mta, sizeof(m->remote_mta), "%s", host_name(c));
		m->remote_has_dsn = c->ehlo.has_dsn;
		m->is_tls = c->is_tls;
		/* RFC 6531 3.2 and RFC 6152 3: refuse what the server cannot take. */
		if (m->is_smtputf8 && !c->ehlo.has_smtputf8) {
			char text[DELIVERY_DETAIL_MAX];

			snprintf(text, sizeof(text),
				 "553 5.6.7 %s does not support SMTPUTF8 and the message needs it",
				 host_name(c));
			message_fail_all(m, 553, text);
			message_finish(c);
			enter(c, CLIENT_RSET);
			return;
		}
		if (m->body != DELIVERY_BODY_7BIT && !c->ehlo.has_8bitmime) {
			char text[DELIVERY_DETAIL_MAX];

			snprintf(text, sizeof(text),
				 "554 5.6.3 %s does not support 8BITMIME and the message has an "
				 "8-bit body",
				 host_name(c));
			message_fail_all(m, 554, text);
			message_finish(c);
			enter(c, CLIENT_RSET);
			return;
		}
		if (c->ehlo.has_size && c->ehlo.size_max != 0 && m->size > c->ehlo.size_max) {
			char text[DELIVERY_DETAIL_MAX];

			snprintf(text, sizeof(text),
				 "552 5.3.4 message of %llu bytes is over %s's limit of %llu",
				 (unsigned long long) m->size, host_name(c),
				 (unsigned long long) c->ehlo.size_max);
			message_fail_all(m, 552, text);
			message_finish(c);
			enter(c, CLIENT_RSET);
			return;
		}
		send_mail(c);
		if (c->ehlo.has_pipelining) {
			/* RFC 2920 3.1: MAIL, every RCPT and DATA in one group. */
			for (size_t i = 0; i < m->recipient_count; i++)
				send_rcpt(c, i);
			send_line(c, "DATA");
		}
		set_timeout(c, TIMEOUT_MAIL_S);
		break;
	case CLIENT_RCPT:
		if (!c->ehlo.has_pipelining)
			send_rcpt(c, c->rcpt_index);
		set_timeout(c, TIMEOUT_RCPT_S);
		break;
	case CLIENT_DATA:
		if (!c->ehlo.has_pipelining)
			send_line(c, "DATA");
		set_timeout(c, TIMEOUT_DATA_S);
		break;
	case CLIENT_BODY:
		set_timeout(c, TIMEOUT_BLOCK_S);
		body_fill(c);
		break;
	case CLIENT_DOT:
		set_timeout(c, TIMEOUT_DOT_S);
		break;
	case CLIENT_RSET: {
		struct delivery_message *next = c->message == NULL ? c->next(c->ctx) : c->message;

		if (next == NULL) {
			enter(c, CLIENT_QUIT);
			return;
		}
		c->message = next;
		send_line(c, "RSET");
		set_timeout(c, TIMEOUT_OTHER_S);
		break;
	}
	case CLIENT_QUIT:
		send_line(c, "QUIT");
		set_timeout(c, TIMEOUT_OTHER_S);
		break;
	}
}

/* --- replies --------------------------------------------------------------- */

static void start_tls(struct delivery_smtp *c)
{
	SSL *ssl = SSL_new(c->params.tls_ctx);
	struct bufferevent *tls_bev;

	if (ssl == NULL) {
		host_failed(c, 421, "cannot start TLS: out of memory");
		return;
	}
	SSL_set_tlsext_host_name(ssl, host_name(c));
	if (c->params.tls == CONFIG_OUTBOUND_TLS_VERIFY) {
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
		SSL_set1_host(ssl, host_name(c));
	} else {
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	}
	/* Whatever came after the 220 was sent before the handshake and could
	 * be an injection (RFC 3207 6): drop it. */
	evbuffer_drain(bufferevent_get_input(c->bev),
		       evbuffer_get_length(bufferevent_get_input(c->bev)));
	tls_bev = bufferevent_openssl_filter_new(c->params.base, c->bev, ssl,
						 BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tls_bev == NULL) {
		SSL_free(ssl);
		host_failed(c, 421, "cannot start TLS");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tls_bev, 1);
	bufferevent_setcb(tls_bev, on_read, on_write, on_event, c);
	bufferevent_setwatermark(tls_bev, EV_WRITE, DELIVERY_SMTP_CHUNK_BYTES, 0);
	bufferevent_enable(tls_bev, EV_READ | EV_WRITE);
	c->bev = tls_bev;
	c->is_tls = true;
	enter(c, CLIENT_TLS_HANDSHAKE);
}

static bool tls_is_required(const struct delivery_smtp *c)
{
	return c->params.tls == CONFIG_OUTBOUND_TLS_REQUIRE ||
	       c->params.tls == CONFIG_OUTBOUND_TLS_VERIFY;
}

static void after_ehlo(struct delivery_smtp *c)
{
	if (!c->is_tls && c->params.tls != CONFIG_OUTBOUND_TLS_NONE && c->ehlo.has_starttls) {
		enter(c, CLIENT_STARTTLS);
		return;
	}
	if (!c->is_tls && tls_is_required(c)) {
		host_failed(c, 421, "TLS is required but the server does not offer STARTTLS");
		return;
	}
	enter(c, CLIENT_MAIL);
}

static void record_rcpt(struct delivery_smtp *c, const char *summary)
{
	struct delivery_recipient *r = &c->message->recipients[c->rcpt_index];

	r->code = c->reply.code;
	snprintf(r->reply, sizeof(r->reply), "%s", summary);
	if (c->reply.code / 100 == 2)
		c->accepted++;
}

static void after_rcpts(struct delivery_smtp *c)
{
	if (c->accepted > 0 || c->ehlo.has_pipelining)
		enter(c, CLIENT_DATA); /* pipelined: DATA was sent, its reply comes */
	else {
		message_finish(c);
		enter(c, CLIENT_RSET);
	}
}

static void on_reply(struct delivery_smtp *c)
{
	unsigned code = c->reply.code;
	char summary[DELIVERY_DETAIL_MAX];

	delivery_reply_summary(&c->reply, summary, sizeof(summary));
	log_debug("delivery smtp host=%s state=%d reply=\"%s\"", host_name(c), c->state, summary);
	if (code == 421 && c->state != CLIENT_QUIT) {
		/* RFC 5321 3.8: the server is closing. */
		if (c->is_ready)
			connection_lost(c, summary);
		else
			host_failed(c, 421, summary);
		return;
	}
	switch (c->state) {
	case CLIENT_GREETING:
		if (code / 100 != 2)
			host_failed(c, code, summary);
		else
			enter(c, CLIENT_EHLO);
		return;
	case CLIENT_EHLO:
		if (code / 100 == 2) {
			delivery_ehlo_parse(&c->reply, &c->ehlo);
			after_ehlo(c);
		} else if (!c->is_tls) {
			enter(c, CLIENT_HELO); /* RFC 5321 3.2: fall back to HELO */
		} else {
			host_failed(c, code, summary);
		}
		return;
	case CLIENT_HELO:
		if (code / 100 != 2) {
			host_failed(c, code, summary);
			return;
		}
		memset(&c->ehlo, 0, sizeof(c->ehlo));
		if (tls_is_required(c)) {
			host_failed(c, 421, "TLS is required but the server does not speak ESMTP");
			return;
		}
		enter(c, CLIENT_MAIL);
		return;
	case CLIENT_STARTTLS:
		if (code == 220)
			start_tls(c);
		else if (tls_is_required(c))
			host_failed(c, code, summary);
		else
			enter(c, CLIENT_MAIL); /* opportunistic: go on in plaintext */
		return;
	case CLIENT_MAIL:
		if (code / 100 == 2) {
			enter(c, CLIENT_RCPT);
			return;
		}
		/* A temporary refusal of the first message: another MX may take it. */
		if (code / 100 == 4 && c->transaction_count == 1 && !c->ehlo.has_pipelining &&
		    c->host_index + 1 < c->hosts.count) {
			c->is_ready = false;
			host_failed(c, code, summary);
			return;
		}
		message_fail_all(c->message, code, summary);
		if (c->ehlo.has_pipelining) {
			/* The RCPT and DATA replies still come; skip them. */
			c->rcpt_index = 0;
			c->accepted = 0;
			c->state = CLIENT_RCPT;
			c->is_mail_failed = true;
			return;
		}
		message_finish(c);
		enter(c, CLIENT_RSET);
		return;
	case CLIENT_RCPT:
		if (!c->is_mail_failed)
			record_rcpt(c, summary);
		c->rcpt_index++;
		if (c->rcpt_index < c->message->recipient_count) {
			enter(c, CLIENT_RCPT);
			return;
		}
		if (c->is_mail_failed) {
			c->state = CLIENT_DATA; /* the DATA reply of a failed MAIL */
			return;
		}
		after_rcpts(c);
		return;
	case CLIENT_DATA:
		if (c->is_mail_failed) {
			c->is_mail_failed = false;
			if (code == 354) { /* nothing to send: an empty message is dropped */
				evbuffer_add(bufferevent_get_output(c->bev), ".\r\n", 3);
				c->state = CLIENT_DOT;
				c->accepted = 0;
				return;
			}
			message_finish(c);
			enter(c, CLIENT_RSET);
			return;
		}
		if (code == 354 && c->accepted > 0) {
			enter(c, CLIENT_BODY);
			return;
		}
		if (code == 354) { /* pipelined, every RCPT refused (RFC 2920 3.1) */
			evbuffer_add(bufferevent_get_output(c->bev), ".\r\n", 3);
			c->state = CLIENT_DOT;
			return;
		}
		/* DATA refused: the recipients the server had accepted share it. */
		for (size_t i = 0; i < c->message->recipient_count; i++) {
			struct delivery_recipient *r = &c->message->recipients[i];

			if (r->code / 100 == 2) {
				r->code = code;
				snprintf(r->reply, sizeof(r->reply), "%s", summary);
			}
		}
		message_finish(c);
		enter(c, CLIENT_RSET);
		return;
	case CLIENT_DOT:
		if (c->message != NULL && c->accepted > 0) {
			for (size_t i = 0; i < c->message->recipient_count; i++) {
				struct delivery_recipient *r = &c->message->recipients[i];

				if (r->code / 100 == 2) {
					r->code = code;
					snprintf(r->reply, sizeof(r->reply), "%s", summary);
				}
			}
		}
		if (c->message != NULL)
			message_finish(c);
		enter(c, CLIENT_RSET);
		return;
	case CLIENT_RSET:
		if (code / 100 != 2) {
			connection_lost(c, summary);
			return;
		}
		enter(c, CLIENT_MAIL);
		return;
	case CLIENT_QUIT:
		session_end(c);
		return;
	case CLIENT_CONNECTING:
	case CLIENT_TLS_HANDSHAKE:
	case CLIENT_BODY:
		/* A reply nobody asked for (during the body, say). */
		if (c->is_ready)
			connection_lost(c, "unexpected reply");
		else
			host_failed(c, 421, "unexpected reply");
		return;
	}
}

static void read_replies(struct delivery_smtp *c, struct bufferevent *bev)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	while (!c->is_ended && c->bev == bev) {
		size_t eol_len = 0;
		struct evbuffer_ptr eol =
			evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		char line[DELIVERY_REPLY_LINE_MAX];
		enum delivery_reply_status status;

		if (eol.pos < 0) {
			if (evbuffer_get_length(in) >= DELIVERY_REPLY_LINE_MAX) {
				if (c->is_ready)
					connection_lost(c, "reply line too long");
				else
					host_failed(c, 421, "reply line too long");
			}
			return;
		}
		if ((size_t) eol.pos > DELIVERY_REPLY_LINE_MAX - 2) {
			if (c->is_ready)
				connection_lost(c, "reply line too long");
			else
				host_failed(c, 421, "reply line too long");
			return;
		}
		evbuffer_remove(in, line, (size_t) eol.pos);
		evbuffer_drain(in, eol_len);
		if (!c->is_reading_reply) {
			delivery_reply_init(&c->reply);
			c->is_reading_reply = true;
		}
		status = delivery_reply_feed(&c->reply, span_make(line, (size_t) eol.pos));
		if (status == DELIVERY_REPLY_BAD) {
			if (c->is_ready)
				connection_lost(c, "malformed reply");
			else
				host_failed(c, 421, "malformed reply");
			return;
		}
		if (status == DELIVERY_REPLY_MORE)
			continue;
		c->is_reading_reply = false;
		/* on_reply may end the session or switch bufferevents: the loop
		 * condition checks. */
		on_reply(c);
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct delivery_smtp *c = arg;

	callback_enter(c);
	read_replies(c, bev);
	callback_leave(c);
}

static void handle_event(struct delivery_smtp *c, short events)
{
	char why[192];

	if (events & BEV_EVENT_CONNECTED) {
		if (c->state == CLIENT_TLS_HANDSHAKE) {
			enter(c, CLIENT_EHLO); /* RFC 3207 4.2: forget what was said */
		} else {
			enter(c, CLIENT_GREETING);
		}
		return;
	}
	if (events & BEV_EVENT_TIMEOUT)
		snprintf(why, sizeof(why), "timeout in state %d", c->state);
	else if (c->state == CLIENT_TLS_HANDSHAKE || (events & BEV_EVENT_ERROR && c->is_tls)) {
		unsigned long e = bufferevent_get_openssl_error(c->bev);

		snprintf(why, sizeof(why), "TLS: %s",
			 e != 0 ? ERR_reason_error_string(e) : "handshake failed");
	} else if (events & BEV_EVENT_ERROR)
		snprintf(why, sizeof(why), "%s", strerror(EVUTIL_SOCKET_ERROR()));
	else
		snprintf(why, sizeof(why), "connection closed");
	if (c->state == CLIENT_QUIT) {
		session_end(c);
		return;
	}
	if (c->is_ready)
		connection_lost(c, why);
	else
		host_failed(c, 421, why);
}

static void on_event(struct bufferevent *bev, short events, void *arg)
{
	struct delivery_smtp *c = arg;

	if (bev != c->bev)
		return; /* the plain bufferevent under a TLS filter */
	callback_enter(c);
	handle_event(c, events);
	callback_leave(c);
}

static void try_next_address(struct delivery_smtp *c)
{
	for (;;) {
		const struct delivery_host *h;

		if (c->host_index >= c->hosts.count) {
			char text[DELIVERY_DETAIL_MAX];

			snprintf(text, sizeof(text), "451 4.4.1 %.200s",
				 c->last_failure[0] ? c->last_failure : "no host to try");
			/* A 5xx greeting is not a verdict on the recipients (RFC 5321
			 * 3.1: "554 No SMTP service here"): defer. */
			message_fail_all(c->message, 451, text);
			message_finish(c);
			session_end(c);
			return;
		}
		h = &c->hosts.hosts[c->host_index];
		if (c->address_index >= h->address_count) {
			c->host_index++;
			c->address_index = 0;
			continue;
		}
		break;
	}
	c->is_tls = false;
	c->is_reading_reply = false;
	c->bev = bufferevent_socket_new(c->params.base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		host_failed(c, 421, "out of memory");
		return;
	}
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, DELIVERY_SMTP_CHUNK_BYTES, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	enter(c, CLIENT_CONNECTING);
	{
		const struct delivery_host *h = &c->hosts.hosts[c->host_index];

		if (bufferevent_socket_connect(
			    c->bev, (const struct sockaddr *) &h->addresses[c->address_index],
			    (int) h->address_lens[c->address_index]) < 0)
			host_failed(c, 421, "cannot connect");
	}
}

static void on_start(evutil_socket_t fd, short events, void *arg)
{
	struct delivery_smtp *c = arg;

	(void) fd;
	(void) events;
	if (c->is_ended) { /* aborted before it started */
		callback_leave(c);
		return;
	}
	try_next_address(c);
	callback_leave(c);
}

struct delivery_smtp *delivery_smtp_start(const struct delivery_smtp_params *params,
					  const struct delivery_hosts *hosts,
					  struct delivery_message *first,
					  delivery_message_done_fn *message_done,
					  delivery_message_next_fn *next,
					  delivery_session_done_fn *session_done, void *ctx)
{
	struct delivery_smtp *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->params = *params;
	c->hosts = *hosts;
	c->message = first;
	c->message_done = message_done;
	c->next = next;
	c->session_done = session_done;
	c->ctx = ctx;
	/* Connect from the loop, so that no callback runs before we return. */
	if (event_base_once(params->base, -1, EV_TIMEOUT, on_start, c, NULL) < 0) {
		free(c);
		return NULL;
	}
	c->depth = 1; /* until on_start: abort must not free c under the timer */
	return c;
}

void delivery_smtp_abort(struct delivery_smtp *c)
{
	if (c->is_ended)
		return;
	callback_enter(c);
	connection_lost(c, "shutting down");
	callback_leave(c);
}
