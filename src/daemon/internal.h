/*
 * daemon/internal.h: what the files of postgated share. Not a public API:
 * nothing outside src/daemon/ includes it.
 *
 * One struct daemon holds the running process: the configuration in effect,
 * the event base, the bound listeners and the registry of live sessions.
 * Everything here runs on the one event-loop thread (or before it starts).
 */
#ifndef POSTGATE_DAEMON_INTERNAL_H
#define POSTGATE_DAEMON_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "core/config.h"
#include "core/error.h"
#include "core/id.h"
#include "core/worker.h"
#include "http/server.h"
#include "pop3/server.h"
#include "queue/manager.h"
#include "queue/spool.h"
#include "sasl/sasl.h"
#include "smtp/server.h"
#include "tls/context.h"

#define DAEMON_LISTEN_BACKLOG \
	4096 /* the kernel caps it at net.core.somaxconn (4096 since Linux 5.4) */
#define DAEMON_ACCEPT_PAUSE_MS 1000 /* after accept() fails (EMFILE): let sessions end first */
#define DAEMON_ADDRESS_CAP     (CONFIG_NAME_MAX + 16) /* "[host]:port" */
#define DAEMON_LISTENER_MAX    (CONFIG_LISTENER_KIND_COUNT * CONFIG_LISTEN_MAX)
#define DAEMON_PID_FILE	       "postgated.pid"
#define DAEMON_IP_BUCKETS      4096 /* per-address session counts (limits.c) */

/* Exit codes (sysexits.h values, written out so the table is in one place). */
#define DAEMON_EXIT_OK	    0
#define DAEMON_EXIT_FAILURE 1  /* start-up failed: cannot bind, files, store, privileges */
#define DAEMON_EXIT_USAGE   64 /* EX_USAGE: bad command line */
#define DAEMON_EXIT_CONFIG  78 /* EX_CONFIG: the configuration is wrong */

struct daemon;
struct daemon_session;

/*
 * A protocol engine as the daemon sees it. start() is called once for each
 * accepted connection, with session->bev set up (callbacks not yet set,
 * nothing enabled); from then on the engine drives the bufferevent and calls
 * daemon_session_close() when the session is over. stop() is called exactly
 * once when the session ends, whoever ends it (the engine, or the daemon at
 * the end of the shutdown timeout): it frees session->protocol_state and must
 * not write, free the bufferevent or call daemon_session_close(). stop may be
 * NULL for an engine without state.
 */
typedef void daemon_protocol_start_fn(struct daemon_session *session);
typedef void daemon_protocol_stop_fn(struct daemon_session *session);
/* Shutdown has begun: end the session at the next clean point (may close it
 * at once). NULL: the session runs until it ends or the timeout. */
typedef void daemon_protocol_drain_fn(struct daemon_session *session);

struct daemon_protocol {
	const char *name; /* in the "listening" log line */
	daemon_protocol_start_fn *start;
	daemon_protocol_stop_fn *stop;
	daemon_protocol_drain_fn *drain;
};

/* The engine that serves each kind of listener (protocol.c). */
const struct daemon_protocol *daemon_protocol_for(enum config_listener_kind kind);

/* One bound address of a listener. */
struct daemon_listener {
	struct daemon *daemon;
	enum config_listener_kind kind;
	char address[DAEMON_ADDRESS_CAP]; /* as config_address_format writes it */
	int fd;				  /* bound and listening; -1 once handed to evl */
	struct evconnlistener *evl;	  /* NULL before the loop and after shutdown */
	struct event *resume;		  /* re-enables accepting after a failure */
};

struct daemon_session {
	struct daemon_session *prev, *next; /* the registry */
	struct daemon *daemon;
	const struct daemon_listener *listener;
	const struct daemon_protocol *protocol;
	char sid[ID_CAP];
	char client[DAEMON_ADDRESS_CAP];    /* "ip:port" or "[ip6]:port" */
	char client_ip[DAEMON_ADDRESS_CAP]; /* the address alone: the limits' key */
	struct bufferevent *bev;	    /* owns the socket */
	uint64_t started_ms;		    /* monotonic clock */
	void *protocol_state;		    /* the engine's, freed by protocol->stop */
};

struct daemon {
	struct config config; /* in effect (SIGHUP updates what can change live) */
	bool is_foreground;
	bool is_root; /* started as root and dropped to config.user */
	struct event_base *base;
	struct store *store;
	pthread_mutex_t store_lock; /* the workers share one store handle */
	struct worker_pool *workers;
	struct worker_pool *commit_workers; /* end-of-DATA commits (commit_threads) */
	struct queue_spool *spool;
	struct queue_manager *queue;
	struct smtp_server smtp;
	struct pop3_server pop3;
	struct auth_service *auth;
	struct auth_rates *rates; /* what authenticated users sent lately */
	struct http_server *http; /* NULL unless [listener http] is enabled */
	/* Every account has a CRAM-MD5 secret (checked at start and reload):
	 * listeners with cram_md5 = yes may offer it. */
	bool is_cram_md5_ready;
	bool is_apop_ready; /* every account has the {PLAIN} secret APOP needs */
	unsigned char sasl_mock_key[SASL_MOCK_KEY_LEN]; /* SCRAM salts for unknown users */
	/* One TLS context per profile in use (NULL otherwise), loaded as root. */
	struct tls_context *tls[2];		     /* [CONFIG_TLS_PROFILE_MODERN], [..._LEGACY] */
	uint64_t tls_stamp_default, tls_stamp_names; /* the files they were made from */

	struct daemon_listener listeners[DAEMON_LISTENER_MAX];
	size_t listener_count;

	struct daemon_session *sessions;		      /* live sessions, newest first */
	struct daemon_ip_count *ip_counts[DAEMON_IP_BUCKETS]; /* sessions per client address */
	size_t session_count; /* mail sessions: what a shutdown waits for */
	size_t session_counts[CONFIG_LISTENER_KIND_COUNT]; /* [HTTP]: http connections */
	struct id_generator session_ids;

	bool is_stopping;
	uint64_t started_ms;		/* monotonic, when the loop began serving */
	struct event *signal_events[3]; /* SIGTERM, SIGINT, SIGHUP */
	struct event *shutdown_timer;

	char pid_path[CONFIG_PATH_MAX + sizeof(DAEMON_PID_FILE) + 1]; /* "" when none written */
	struct daemon_control *control; /* the control socket (control.c); NULL when closed */
	struct daemon_submit *submit;	/* the local submission socket (submit.c) */
};

/* Start-up failures: log, print to stderr (and to the waiting parent when
 * detaching), exit with code. Never returns. */
void daemon_fatal(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* The SMTP server's hook: a message was committed to the spool. */
void daemon_message_queued(void *ctx, const char *queue_id);

/* Milliseconds of the monotonic clock, for durations. */
uint64_t daemon_clock_ms(void);

/* main.c */
/* Make the TLS contexts config asks for (modern always, legacy when a
 * listener uses it), with the named certificates of tls_cert_dir; on
 * failure nothing is kept. reuse (NULL: read the files) gives contexts
 * whose default certificate and key are taken over from memory. At start
 * and on SIGHUP. */
int daemon_tls_load(const struct config *config, struct tls_context *const reuse[2],
		    struct tls_context *out[2], size_t *names_out, struct error *err);
/* Change detectors (stat only) for tls_cert + tls_key and for tls_cert_dir. */
void daemon_tls_stamps(const struct config *config, uint64_t *default_out, uint64_t *names_out);

/* accounts.c */
/* Decide whether listeners with cram_md5 = yes may offer CRAM-MD5 (every
 * account has the secret); logs the outcome. Blocking at start, else on a
 * worker (reload). */
void daemon_cram_md5_check(struct daemon *daemon, bool is_blocking);

/* limits.c */
struct daemon_ip_count;
/* Count a new session from ip: NULL when it may be served, else why not
 * ("max-sessions", "max-sessions-per-ip") and nothing was counted. */
const char *daemon_limits_admit(struct daemon *daemon, const char *ip);
/* The session from ip has ended. */
void daemon_limits_release(struct daemon *daemon, const char *ip);
/* Tell the client of a refused connection (in its protocol) and close fd. */
void daemon_limits_refuse(enum config_listener_kind kind, evutil_socket_t fd);
/* The HTTP listener's hooks (http/server.h): an HTTP connection counts as a
 * session of listener http for the limits, status and metrics, but not in
 * session_count, so a shutdown does not wait for idle keep-alive ones. */
const char *daemon_limits_admit_http(void *daemon, const char *ip);
void daemon_limits_release_http(void *daemon, const char *ip);

/* listener.c */
/* Bind every address of every enabled listener (before privileges are dropped);
 * fatal on any failure, naming the address. */
void daemon_listeners_bind(struct daemon *daemon);
/* Wrap the bound sockets in evconnlisteners on daemon->base; fatal on failure. */
void daemon_listeners_start(struct daemon *daemon);
/* Close every listening socket at once: new connections are refused. */
void daemon_listeners_free(struct daemon *daemon);

/* session.c */
/* Register a session for an accepted socket and hand it to the listener's
 * protocol. Closes fd on failure. */
void daemon_session_accept(struct daemon_listener *listener, evutil_socket_t fd,
			   const struct sockaddr *addr, int addr_len);
/* End a session: protocol->stop, free the bufferevent (closing the socket),
 * log "disconnect" with reason (one word), leave the registry. session is
 * freed; the caller must not touch it again. */
void daemon_session_close(struct daemon_session *session, const char *reason);
/* Close every live session with reason. */
void daemon_sessions_close_all(struct daemon *daemon, const char *reason);

/* privilege.c */
struct daemon_user {
	char name[CONFIG_USER_MAX];
	uid_t uid;
	gid_t gid;
};
/* Look up config.user for a root start; fatal when missing or uid 0. */
void daemon_user_lookup(const struct config *config, struct daemon_user *user_out);
/* Create state_dir, its spool directories and maildir_root; as root give them
 * (and accounts_db) to user, else leave them to the current user (user NULL). */
void daemon_dirs_prepare(const struct config *config, const struct daemon_user *user);
/* initgroups, setgid, setuid to user; fatal unless root is gone for good. */
void daemon_privileges_drop(const struct daemon_user *user);
/* Raise the soft open-files limit to the hard one and warn when that is
 * below what max_sessions needs (privilege.c). */
void daemon_files_limit_raise(const struct config *config);

/* control.c */
/* Create <state_dir>/control.sock (0600, after the privilege drop) and serve
 * it on daemon->base; a stale file is replaced; fatal on failure. */
void daemon_control_start(struct daemon *daemon);
/* Close it, end its connections and remove the file. NULL control ok. */
void daemon_control_free(struct daemon *daemon);
/* A listening unix socket at path with mode (after the privilege drop, so
 * the daemon's user owns it). A file left there by a daemon that crashed is
 * replaced; one that answers, or that is no socket, is fatal. */
int daemon_unix_listen(const char *path, mode_t mode);

/* submit.c */
/* <state_dir>/submit.sock (0666): local submission for `postgate sendmail`,
 * served by the SMTP engine as the connecting user; fatal on failure. */
void daemon_submit_start(struct daemon *daemon);
/* Close it, stop its sessions and remove the file. */
void daemon_submit_free(struct daemon *daemon);

/* signals.c */
/* SIGTERM/SIGINT: shutdown; SIGHUP: reload. Fatal on failure. */
void daemon_signals_start(struct daemon *daemon);
void daemon_signals_free(struct daemon *daemon);
/* Called by daemon_session_close when the registry becomes empty. */
void daemon_shutdown_check(struct daemon *daemon);

#endif
