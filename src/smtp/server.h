/*
 * server: the SMTP server (RFC 5321) as the daemon sees it. One struct
 * smtp_server holds what every session shares — settings, the worker pool,
 * the spool, the accounts store — and one struct smtp_session serves one
 * connection over a bufferevent the daemon hands over.
 *
 * Everything here runs on the event-loop thread. Work that can block (store
 * look-ups, spool writes, fsync) goes to the worker pool and comes back to
 * the loop; while it is away the session reads nothing more from its client.
 */
#ifndef POSTGATE_SMTP_SERVER_H
#define POSTGATE_SMTP_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/bufferevent.h>

#include "auth/rate.h"
#include "auth/service.h"
#include "core/config.h"
#include "core/worker.h"
#include "queue/spool.h"
#include "store/store.h"

/* Called on the loop after a message is committed to the spool (and before
 * its 250 is written): the queue manager's hook to start delivery. */
typedef void smtp_queued_fn(void *ctx, const char *queue_id);

struct smtp_server {
	const struct config *config; /* live: hostname and limits follow a reload */
	struct worker_pool *workers;
	/* The commits at the end of DATA, which wait for a shared file system
	 * sync (core/groupsync.h); NULL: workers. */
	struct worker_pool *commit_workers;
	struct queue_spool *spool;
	struct store *store; /* shared by the workers under store_lock */
	pthread_mutex_t *store_lock;
	smtp_queued_fn *on_queued;
	void *on_queued_ctx;
	struct auth_service *auth;     /* SMTP AUTH; NULL: not offered */
	const unsigned char *mock_key; /* SASL_MOCK_KEY_LEN random octets (SCRAM) */
	/* What authenticated users sent lately (their limits: config); NULL:
	 * no sending limits. Loop thread only. */
	struct auth_rates *rates;
};

/* What the daemon does for a session: end it (flush what was written, close,
 * log "disconnect" with reason). Called at most once. */
typedef void smtp_session_close_fn(void *ctx, const char *reason);

/* STARTTLS: replace plain (all of whose input is discarded) with a TLS
 * bufferevent in the accepting state on the same socket; NULL on failure
 * (plain is then still usable). Called once the 220 has been written. */
typedef struct bufferevent *smtp_start_tls_fn(void *ctx, struct bufferevent *plain);

struct smtp_session_params {
	const char *sid;
	const char *client_ip;
	uint16_t client_port;
	const char *listener; /* "mx", "submission", ... for logs */
	smtp_session_close_fn *close;
	void *close_ctx; /* also given to start_tls */
	bool is_starttls_offered;
	smtp_start_tls_fn *start_tls;
	bool is_tls;			/* implicit TLS: the bufferevent is TLS already */
	bool is_auth_required;		/* submission: AUTH before MAIL (RFC 6409 4.1) */
	bool is_plaintext_auth_allowed; /* PLAIN/LOGIN without TLS (legacy profile) */
	/* CRAM-MD5: the listener's cram_md5 = yes, and every account has the
	 * secret (the daemon checks at start and reload). */
	bool is_cram_md5_offered;
	/* Local submission (`postgate sendmail` on submit.sock): the peer's user
	 * name, from its uid. The session is authenticated as "local:<name>"
	 * from the start: it may relay, and it is not bound to a sender (the
	 * envelope and the Received header name the user). NULL: a network
	 * client. */
	const char *local_user;
};

struct smtp_session;

/* Take over bev (callbacks, timeouts, enabling) and send the greeting. */
struct smtp_session *smtp_session_start(struct smtp_server *server, struct bufferevent *bev,
					const struct smtp_session_params *params);

/* The daemon ends the session (client gone, shutdown, or after close()).
 * The session must not touch bev again; if a worker job is still out, the
 * session is freed when it comes back. */
void smtp_session_stop(struct smtp_session *session);

/* On shutdown: a session between transactions says 421 and closes now; one
 * in the middle of a transaction finishes it first. */
void smtp_session_drain(struct smtp_session *session);

#endif
