/*
 * server: the HTTP listener (docs/http.md), built on libevent's evhttp. It
 * serves client auto-configuration (Thunderbird autoconfig, Outlook
 * Autodiscover, Apple's mobileconfig) and the setup pages, per hosted
 * domain, from the live configuration and the accounts store.
 *
 * The daemon binds the listening sockets (as root) and hands each to
 * http_server_accept; evhttp accepts on them from then on
 * (docs/decisions/0150-http-listener-on-evhttp.md). Connections are not
 * daemon sessions: each gets its own sid for the log, and a shutdown closes
 * them when the loop ends. They count against the daemon's session limits
 * through the admit hook: a connection over a limit is answered 503 to its
 * first request, with "Connection: close", and closed.
 *
 * /metrics renders core/metrics.h's registry for the clients metrics_allow
 * names (403 for others), after counting the spool on a worker.
 *
 * Store look-ups run on the worker pool under store_lock; the reply is
 * rendered and sent on the loop. Everything here runs on the event-loop
 * thread.
 */
#ifndef POSTGATE_HTTP_SERVER_H
#define POSTGATE_HTTP_SERVER_H

#include <pthread.h>

#include <event2/event.h>

#include "auth/service.h"
#include "core/config.h"
#include "core/error.h"
#include "core/id.h"
#include "core/worker.h"
#include "queue/spool.h"
#include "store/store.h"
#include "tls/context.h"

/* A fresh session id, unique in the daemon. */
typedef void http_session_id_fn(void *ctx, char out[ID_CAP]);
typedef const char *http_admit_fn(void *ctx, const char *ip);
typedef void http_release_fn(void *ctx, const char *ip);

struct http_server_params {
	struct event_base *base;
	struct worker_pool *workers;
	const struct config *config; /* live: reloads show at the next request */
	struct store *store;	     /* shared by the workers under store_lock */
	pthread_mutex_t *store_lock;
	/* The daemon's TLS contexts by profile (reloads swap them): used when
	 * the http listener has tls = yes. */
	struct tls_context *const *tls;
	http_session_id_fn *new_sid;
	void *new_sid_ctx;
	/* /metrics (docs/http.md): the spool, counted on a worker (NULL: no
	 * queue gauges), the live sessions per listener kind (the daemon's
	 * array, read on the loop) and when the daemon started (Unix time). */
	struct queue_spool *spool;
	const size_t *session_counts;
	uint64_t started_at_s;
	/* The auth service, for the throttled-clients gauge; NULL: none. */
	struct auth_service *auth;
	/* The daemon's session limits (max_sessions, max_sessions_per_ip) by
	 * client address: admit counts a new connection and returns NULL, or
	 * returns why not ("max-sessions-per-ip"); release is called once for
	 * every admitted connection when it ends. NULL: every one is served. */
	http_admit_fn *admit;
	http_release_fn *release;
	void *limits_ctx;
};

struct http_server;

/* NULL with err on failure. */
struct http_server *http_server_new(const struct http_server_params *params, struct error *err);

/* Serve on fd, a bound and listening socket (address for the log). The server
 * owns fd from then on, also on failure. */
int http_server_accept(struct http_server *server, int fd, const char *address, struct error *err);

/* Stop accepting: close every listening socket. Open connections go on. */
void http_server_close_listeners(struct http_server *server);

/* Close every connection and free the server. Worker jobs still out find
 * their request gone and only free themselves. NULL does nothing. */
void http_server_free(struct http_server *server);

#endif
