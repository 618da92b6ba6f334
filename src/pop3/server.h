/*
 * server: the POP3 server (RFC 1939, with RFC 2449 CAPA, RFC 2595 STLS and
 * RFC 5034 AUTH) as the daemon sees it. One struct pop3_server holds what
 * every session shares; one struct pop3_session serves one connection over
 * a bufferevent the daemon hands over. Maildrops are src/mailbox/pop.h;
 * logins go through the auth service (src/auth/), as SMTP AUTH's do.
 *
 * Everything here runs on the event-loop thread. Work that can block
 * (opening, locking and listing the maildrop, reading message files, the
 * UPDATE state's unlinks and fsyncs) goes to the worker pool; while a job
 * is out the session reads no command, so replies keep command order.
 */
#ifndef POSTGATE_POP3_SERVER_H
#define POSTGATE_POP3_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/bufferevent.h>

#include "auth/service.h"
#include "core/config.h"
#include "core/worker.h"

struct pop3_server {
	const struct config *config; /* live: hostname and maildir_root */
	struct worker_pool *workers;
	struct auth_service *auth;     /* logins; NULL: every login fails with SYS/TEMP */
	const unsigned char *mock_key; /* SASL_MOCK_KEY_LEN random octets (SCRAM) */
};

/* End the session: flush, close, log "disconnect" with reason. Called at
 * most once. */
typedef void pop3_session_close_fn(void *ctx, const char *reason);

/* STLS: replace plain (whose input is discarded) with a TLS bufferevent on
 * the same socket, accepting; NULL on failure. Called once "+OK" has left
 * the output buffer (tls/upgrade.h). */
typedef struct bufferevent *pop3_start_tls_fn(void *ctx, struct bufferevent *plain);

struct pop3_session_params {
	const char *sid;
	const char *client_ip;
	const char *listener; /* "pop3", "pop3s": for logs and the auth service */
	pop3_session_close_fn *close;
	void *close_ctx; /* also given to start_tls */
	bool is_stls_offered;
	pop3_start_tls_fn *start_tls;
	bool is_tls;			/* implicit TLS: the bufferevent is TLS already */
	bool is_plaintext_auth_allowed; /* USER/PASS, PLAIN, LOGIN without TLS (legacy) */
	/* CRAM-MD5: the listener's cram_md5 = yes, and every account has the
	 * secret (the daemon checks at start and reload). */
	bool is_cram_md5_offered;
	/* APOP: the listener's apop = yes, and every account has the {PLAIN}
	 * secret (decision 0100). */
	bool is_apop_offered;
};

struct pop3_session;

/* Take over bev (callbacks, timeouts, enabling) and send the greeting.
 * NULL when memory runs out (bev untouched). */
struct pop3_session *pop3_session_start(struct pop3_server *server, struct bufferevent *bev,
					const struct pop3_session_params *params);

/* The daemon ends the session (client gone, timeout, shutdown, or after
 * close()). The session must not touch bev again. Nothing marked deleted is
 * removed: only QUIT enters the UPDATE state (RFC 1939 6). If a worker job
 * is still out the session (and its maildrop lock) is freed when the job
 * comes back. NULL does nothing. */
void pop3_session_stop(struct pop3_session *session);

/* On shutdown: at the next point between commands say -ERR [SYS/TEMP] and
 * close, without UPDATE. */
void pop3_session_drain(struct pop3_session *session);

#endif
