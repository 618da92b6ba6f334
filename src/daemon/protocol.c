/*
 * protocol: which engine answers on each kind of listener.
 *
 * mx, submission and submissions run the SMTP server (src/smtp/): plain with
 * STARTTLS on the first two, implicit TLS on submissions, and AUTH required
 * before MAIL on both submission listeners. pop3 and pop3s run the POP3
 * server (src/pop3/): STLS on pop3, implicit TLS on pop3s. The http
 * listener is served by src/http/, whose evhttp accepts on its sockets
 * itself (listener.c hands them over): its connections never come here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "core/log.h"
#include "daemon/internal.h"
#include "tls/sniff.h"
#include "tls/upgrade.h"

/* Not reached: http connections are accepted by evhttp (src/http/). */
static void http_misrouted_start(struct daemon_session *session)
{
	log_error("sid=%s http connection reached the session engine", session->sid);
	daemon_session_close(session, "misrouted");
}

// clang-format off
/*
 * The SMTP server (src/smtp/) on a session's bufferevent. protocol_state is
 * a struct smtp_state: the SMTP session, and while the first bytes are being
 * sniffed for a TLS ClientHello (detect_implicit_tls), that event.
 */
struct smtp_state {
	struct smtp_session *smtp;
	struct event *sniff;
	uint64_t sniff_deadline_ms;
};

static void smtp_close(void *ctx, const char *reason)
{
	daemon_session_close(ctx, reason);
}

/* STARTTLS: the TLS bufferevent replaces the plain one on the same socket;
 * the session owns the new one from now on. */
static struct bufferevent *smtp_start_tls(void *ctx, struct bufferevent *plain)
{
	struct daemon_session *session = ctx;
	const struct config_listener *l = &session->daemon->config.listeners[session->listener->kind];
	struct error err;
	struct bufferevent *bev =
		tls_bufferevent_upgrade(plain, session->daemon->tls[l->tls_profile], &err);

	if (bev == NULL) {
		log_warning("sid=%s tls upgrade failed: %s", session->sid, err.message);
		return NULL;
	}
	session->bev = bev;
	return bev;
}

/* Start the SMTP session, over TLS from the first byte when is_implicit_tls. */
static void smtp_begin(struct daemon_session *session, bool is_implicit_tls)
{
	struct smtp_state *state = session->protocol_state;
	enum config_listener_kind kind = session->listener->kind;
	const struct config_listener *listener = &session->daemon->config.listeners[kind];
	char ip[DAEMON_ADDRESS_CAP];
	uint64_t port = 0;
	struct span host, port_text;
	struct smtp_session_params params = {
		.sid = session->sid,
		.client_ip = ip,
		.listener = config_listener_name(kind),
		.close = smtp_close,
		.close_ctx = session,
		.is_starttls_offered = !is_implicit_tls && listener->starttls &&
				       session->daemon->tls[listener->tls_profile] != NULL,
		.start_tls = smtp_start_tls,
		/* RFC 6409 4.1 / RFC 8314: submission needs AUTH before MAIL. */
		.is_auth_required = kind != CONFIG_LISTENER_MX,
		.is_plaintext_auth_allowed = listener->plaintext_auth,
		.is_cram_md5_offered = listener->cram_md5 && session->daemon->is_cram_md5_ready,
	};

	/* session->client is "ip:port" or "[ip6]:port". */
	if (span_split_last(span_from_cstr(session->client), ':', &host, &port_text)) {
		if (host.len >= 2 && host.ptr[0] == '[') {
			host.ptr++;
			host.len -= 2;
		}
		span_copy_cstr(host, ip, sizeof(ip));
		span_parse_u64(port_text, &port);
	} else {
		snprintf(ip, sizeof(ip), "%s", session->client);
	}
	params.client_port = (uint16_t) port;
	if (is_implicit_tls) {
		/* Implicit TLS (RFC 8314 3.3): the handshake comes first, on the
		 * socket nobody has read from yet. */
		struct error err;
		struct bufferevent *tls = tls_bufferevent_upgrade(
			session->bev, session->daemon->tls[listener->tls_profile], &err);

		if (tls == NULL) {
			log_warning("sid=%s tls: %s", session->sid, err.message);
			daemon_session_close(session, "tls-failed");
			return;
		}
		session->bev = tls;
		params.is_tls = true;
	}
	state->smtp = smtp_session_start(&session->daemon->smtp, session->bev, &params);
	if (state->smtp == NULL)
		daemon_session_close(session, "out-of-memory");
}

/*
 * detect_implicit_tls: before Outlook 2007, ticking SSL on any port but 25
 * meant implicit TLS, so those clients open 587 with a TLS ClientHello.
 * Such a client speaks first, right behind the TCP handshake; an SMTP
 * client waits for our greeting. So the greeting waits SMTP_SNIFF_WAIT_MS
 * for a first byte: a ClientHello switches to implicit TLS, anything else
 * (or nothing) is plain SMTP. MSG_PEEK leaves the bytes for whoever reads.
 */
#define SMTP_SNIFF_WAIT_MS 5

static void on_sniff(evutil_socket_t fd, short what, void *arg)
{
	struct daemon_session *session = arg;
	struct smtp_state *state = session->protocol_state;
	unsigned char head[TLS_SNIFF_BYTES];
	enum tls_sniff verdict = TLS_SNIFF_NOT_TLS;

	if (what & EV_READ) {
		ssize_t n = recv(fd, head, sizeof(head), MSG_PEEK | MSG_DONTWAIT);

		if (n > 0)
			verdict = tls_sniff_client_hello(span_make((const char *) head, (size_t) n));
		if (verdict == TLS_SNIFF_NEED_MORE && daemon_clock_ms() < state->sniff_deadline_ms) {
			struct timeval left = { 0, 1000 };

			event_add(state->sniff, &left); /* the rest of the record header */
			return;
		}
	}
	event_free(state->sniff);
	state->sniff = NULL;
	if (verdict == TLS_SNIFF_TLS)
		log_info("sid=%s smtp implicit-tls detected", session->sid);
	smtp_begin(session, verdict == TLS_SNIFF_TLS);
}

static void smtp_start(struct daemon_session *session)
{
	enum config_listener_kind kind = session->listener->kind;
	const struct config_listener *listener = &session->daemon->config.listeners[kind];
	struct smtp_state *state = calloc(1, sizeof(*state));

	if (state == NULL) {
		daemon_session_close(session, "out-of-memory");
		return;
	}
	session->protocol_state = state;
	if (kind == CONFIG_LISTENER_SUBMISSION && listener->detect_implicit_tls &&
	    session->daemon->tls[listener->tls_profile] != NULL) {
		struct timeval wait = { 0, SMTP_SNIFF_WAIT_MS * 1000 };

		state->sniff = event_new(session->daemon->base, bufferevent_getfd(session->bev),
					 EV_READ, on_sniff, session);
		if (state->sniff != NULL) {
			state->sniff_deadline_ms = daemon_clock_ms() + SMTP_SNIFF_WAIT_MS;
			event_add(state->sniff, &wait);
			return;
		}
	}
	smtp_begin(session, kind == CONFIG_LISTENER_SUBMISSIONS);
}

static void smtp_drain(struct daemon_session *session)
{
	struct smtp_state *state = session->protocol_state;

	if (state->smtp != NULL)
		smtp_session_drain(state->smtp);
}

static void smtp_stop(struct daemon_session *session)
{
	struct smtp_state *state = session->protocol_state;

	if (state == NULL)
		return;
	if (state->sniff != NULL)
		event_free(state->sniff);
	smtp_session_stop(state->smtp);
	free(state);
	session->protocol_state = NULL;
}

/*
 * The POP3 server (src/pop3/) on a session's bufferevent: pop3 with STLS
 * (RFC 2595), pop3s with implicit TLS (RFC 8314 3.3). protocol_state is the
 * struct pop3_session.
 */
static void pop3_close(void *ctx, const char *reason)
{
	daemon_session_close(ctx, reason);
}

static void pop3_start(struct daemon_session *session)
{
	enum config_listener_kind kind = session->listener->kind;
	const struct config_listener *listener = &session->daemon->config.listeners[kind];
	struct tls_context *tls = session->daemon->tls[listener->tls_profile];
	char ip[DAEMON_ADDRESS_CAP];
	struct span host, port_text;
	struct pop3_session_params params = {
		.sid = session->sid,
		.client_ip = ip,
		.listener = config_listener_name(kind),
		.close = pop3_close,
		.close_ctx = session,
		.is_stls_offered = kind == CONFIG_LISTENER_POP3 && listener->starttls && tls != NULL,
		.start_tls = smtp_start_tls, /* the same upgrade: the new bev becomes session->bev */
		.is_tls = kind == CONFIG_LISTENER_POP3S,
		.is_plaintext_auth_allowed = listener->plaintext_auth,
		.is_cram_md5_offered = listener->cram_md5 && session->daemon->is_cram_md5_ready,
		.is_apop_offered = listener->apop && session->daemon->is_apop_ready,
	};

	snprintf(ip, sizeof(ip), "%s", session->client);
	if (span_split_last(span_from_cstr(session->client), ':', &host, &port_text)) {
		if (host.len >= 2 && host.ptr[0] == '[') {
			host.ptr++;
			host.len -= 2;
		}
		span_copy_cstr(host, ip, sizeof(ip));
	}
	if (params.is_tls) {
		struct error err;
		struct bufferevent *bev = tls_bufferevent_upgrade(session->bev, tls, &err);

		if (bev == NULL) {
			log_warning("sid=%s tls: %s", session->sid, err.message);
			daemon_session_close(session, "tls-failed");
			return;
		}
		session->bev = bev;
	}
	session->protocol_state = pop3_session_start(&session->daemon->pop3, session->bev, &params);
	if (session->protocol_state == NULL)
		daemon_session_close(session, "out-of-memory");
}

static void pop3_drain(struct daemon_session *session)
{
	pop3_session_drain(session->protocol_state);
}

static void pop3_stop(struct daemon_session *session)
{
	pop3_session_stop(session->protocol_state);
	session->protocol_state = NULL;
}

static const struct daemon_protocol daemon_protocols[CONFIG_LISTENER_KIND_COUNT] = {
	/* listener                       name                start                   stop              drain */
	[CONFIG_LISTENER_MX]          = { "smtp",             smtp_start,             smtp_stop,        smtp_drain },
	[CONFIG_LISTENER_SUBMISSION]  = { "smtp",             smtp_start,             smtp_stop,        smtp_drain },
	[CONFIG_LISTENER_SUBMISSIONS] = { "smtps",            smtp_start,             smtp_stop,        smtp_drain },
	[CONFIG_LISTENER_POP3]        = { "pop3",             pop3_start,             pop3_stop,        pop3_drain },
	[CONFIG_LISTENER_POP3S]       = { "pop3s",            pop3_start,             pop3_stop,        pop3_drain },
	[CONFIG_LISTENER_HTTP]        = { "http",             http_misrouted_start,   NULL,             NULL },
};
// clang-format on

const struct daemon_protocol *daemon_protocol_for(enum config_listener_kind kind)
{
	return &daemon_protocols[kind];
}
