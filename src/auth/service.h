/*
 * service: the one auth service that SMTP AUTH and POP3 (USER/PASS and
 * AUTH) share. A protocol hands it a login attempt; it applies the throttle
 * (auth/throttle.h), consults the verified-credential cache
 * (auth/cache.h), reads the user from the accounts store and checks the
 * password on a worker thread, and hands the result back on the event-loop
 * thread through a callback, after the throttle's delay for a failure. It
 * writes the one log line per result (docs/auth.md shows them).
 *
 * User names are complete email addresses, normalized with
 * store_address_normalize (domain case-insensitive, local part
 * ASCII-case-insensitive). Wrong password, unknown user and disabled user
 * are one AUTH_FAILED to the client (same work, same delay) and three
 * reasons in the log.
 *
 * Threads: every function here is called on the event-loop thread (the one
 * running params->base), and every callback runs there. Store look-ups run
 * on params->workers, holding params->store_lock around each store call;
 * password hashes (argon2id, PBKDF2) run on the service's own pool of
 * params->hash_threads, so that a burst of uncached logins uses every core
 * and delays neither the shared workers' other jobs (Maildir reads, spool
 * commits) nor a cached login, which costs a look-up and no hash.
 *
 * Never logs a password; the copy it takes lives in locked, guarded memory
 * (a slot of auth/vault.h, or sodium_malloc when every slot is taken) and is
 * wiped as soon as it is checked.
 */
#ifndef POSTGATE_AUTH_SERVICE_H
#define POSTGATE_AUTH_SERVICE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct event_base;
struct worker_pool;
struct store;
struct auth_service;
struct auth_rates;

enum auth_result {
	AUTH_OK,	/* the credentials are right; canonical_user is the stored address */
	AUTH_FAILED,	/* wrong password, unknown or disabled user, malformed name: 535 / -ERR */
	AUTH_TEMPFAIL,	/* the store could not answer: 454 4.7.0 */
	AUTH_THROTTLED, /* too many failures, not checked: 454 4.7.0 (or 421 and close) */
};

/* The stored secrets a challenge-response mechanism can ask for. (CRAM-MD5
 * has none yet: the store keeps no password-equivalent secret.) */
enum auth_secret_kind {
	AUTH_SECRET_SCRAM_SHA_256, /* "{SCRAM-SHA-256}iterations,salt,StoredKey,ServerKey" */
	AUTH_SECRET_CRAM_MD5,	   /* "{CRAM-MD5}<64 hex>" (password-equivalent) */
	AUTH_SECRET_PLAIN,	   /* "{PLAIN}<password>", for POP3 APOP */
};

/* A monotonic clock in milliseconds, for throttle windows and cache expiry. */
typedef int64_t auth_clock_fn(void *ctx);

struct auth_service_params {
	struct event_base *base;
	struct worker_pool *workers;
	/* Used only on worker threads, under store_lock (a struct store is
	 * used by one thread at a time). Both must outlive every job this
	 * service submitted: free the worker pool before closing the store. */
	struct store *store;
	pthread_mutex_t *store_lock;
	auth_clock_fn *clock; /* NULL: CLOCK_MONOTONIC */
	void *clock_ctx;
	size_t cache_entries; /* 0: AUTH_CACHE_ENTRIES */
	/* Threads of the service's own pool that run password hashes (never
	 * anything else), 1..WORKER_THREADS_MAX; 0: one per online CPU. */
	unsigned hash_threads;
	/* Or a pool of the caller's for the hashes (tests), which must then
	 * outlive the service; NULL: the service makes and frees its own. */
	struct worker_pool *hash_workers;
	int64_t cache_ttl_ms; /* 0: AUTH_CACHE_TTL_MS */
	/* Where the login history of existing users is noted (auth/rate.h,
	 * auth_rate_login_note); NULL: none. Used on the loop thread only. */
	struct auth_rates *rates;
};

/* Who asks. The service copies every field; NULL counts as "". */
struct auth_request {
	const char *client_ip;	/* "192.0.2.7", "2001:db8::7": the throttle's address */
	const char *listener;	/* "mx", "submission", "pop3", ... */
	const char *mechanism;	/* "PLAIN", "LOGIN", "SCRAM-SHA-256", "USER" */
	const char *session_id; /* the sid= of the connection */
	const char *username;	/* as the client sent it */
};

/* canonical_user: the stored address with AUTH_OK, else NULL. Valid only
 * during the call. */
typedef void auth_done_fn(void *ctx, enum auth_result result, const char *canonical_user);

/*
 * With AUTH_OK, secret is a secret of the asked kind and canonical_user the
 * user name to carry on with; run the mechanism against them, then call
 * auth_report with the ticket. For an unknown or disabled user, or one
 * without such a secret, the secret is a decoy: well-formed, with a salt
 * that stays the same for the same name for the life of the process, and
 * keys no password produces, so the mechanism fails at the proof exactly as
 * for a wrong password and the exchange reveals nothing. The mechanism
 * cannot tell a decoy; auth_report can. With any other result secret and
 * canonical_user are NULL and the ticket is over. Both strings are valid
 * only during the call.
 */
typedef void auth_secret_fn(void *ctx, enum auth_result result, const char *secret,
			    const char *canonical_user);

/* Counters since auth_service_new, for metrics and tests. */
struct auth_service_stats {
	uint64_t ok;
	uint64_t failed;
	uint64_t tempfail;
	uint64_t throttled;
	uint64_t cache_hits;	     /* password checks answered without hashing */
	uint64_t hash_runs;	     /* argon2id or SCRAM (PBKDF2) password verifications run */
	uint64_t cancelled;	     /* tickets ended by auth_cancel before their callback */
	size_t in_flight;	     /* tickets not yet answered or ended */
	size_t cache_entries;	     /* entries in the credential cache */
	uint64_t failed_last_minute; /* failed and throttled, the last 60 seconds */
};

/*
 * Needs base, workers, store and store_lock (else ERROR_USAGE); makes the
 * throttle tables, the cache and the per-process keys, and hashes one dummy
 * argon2id secret (about 0.1 s) that unknown users are checked against so
 * that they cost what known ones do. NULL with err filled on failure.
 */
struct auth_service *auth_service_new(const struct auth_service_params *params, struct error *err);

/*
 * Ends every ticket without calling its callback and frees the service.
 * A job still on a worker thread finishes there and is freed when its
 * result reaches the loop (so the worker pool may be freed before or after
 * this). NULL does nothing. Not from inside a callback of this service.
 */
void auth_service_free(struct auth_service *svc);

/*
 * Check a password (PLAIN, LOGIN, POP3 PASS): password_len bytes, not
 * NUL-ended, copied at once (the caller may wipe its buffer on return).
 * Returns a ticket id (never 0), and done is called exactly once later,
 * never from inside this call, unless the ticket is cancelled. Returns 0
 * only when memory runs out: then done is never called; answer as for
 * AUTH_TEMPFAIL.
 */
uint64_t auth_check_password(struct auth_service *svc, const struct auth_request *req,
			     const char *password, size_t password_len, auth_done_fn *done,
			     void *ctx);

/*
 * Fetch the stored secret for a challenge-response mechanism (SCRAM,
 * CRAM-MD5). An unknown or disabled user, or one without that kind of
 * secret, gets a decoy of the same form that no response can match (the
 * client learns nothing before its proof fails; the log says why).
 * Returns a ticket id as auth_check_password does. After done has been
 * called with AUTH_OK the ticket stays open until auth_report or
 * auth_cancel ends it: a session that goes away must cancel it.
 */
uint64_t auth_fetch_secret(struct auth_service *svc, const struct auth_request *req,
			   enum auth_secret_kind kind, auth_secret_fn *done, void *ctx);

/*
 * The mechanism's verdict on a fetched secret: is_proof_valid when the
 * client's proof matched it. The service logs the result, feeds the
 * throttle, and calls done (after the failure delay) with AUTH_OK only for
 * a valid proof against a real secret of an enabled user. Returns ticket
 * (the same id, still cancellable), or 0 when ticket is not a fetch
 * waiting for its report (done is then never called).
 */
uint64_t auth_report(struct auth_service *svc, uint64_t ticket, bool is_proof_valid,
		     auth_done_fn *done, void *ctx);

/*
 * The session went away: the ticket's callback will not be called. A check
 * already on a worker still completes, is logged and counts for the
 * throttle (disconnecting does not escape a failure). Unknown or finished
 * tickets are ignored.
 */
void auth_cancel(struct auth_service *svc, uint64_t ticket);

void auth_service_stats_get(const struct auth_service *svc, struct auth_service_stats *stats_out);

/* Client addresses the throttle holds back now (auth_throttle_throttled_clients):
 * a scan of its address table, for /metrics and status. */
size_t auth_service_throttled_clients(struct auth_service *svc);

/* Empties the credential cache (a reload: SIGHUP): every next login is
 * hashed once again. Returns the number of entries dropped. */
size_t auth_service_cache_clear(struct auth_service *svc);

/* Called for each account without a usable CRAM-MD5 secret. Non-zero stops. */
typedef int auth_account_fn(void *ctx, const char *address);

/*
 * CRAM-MD5 may be advertised only while every account of the store has a
 * well-formed {CRAM-MD5} secret (Eudora never falls back from a failed
 * CRAM-MD5). Walks every user, disabled ones too (enabling one must not
 * break the rule), counting in *missing_out those without one and handing
 * each to each (may be NULL). Blocks on the store: from the CLI, at start,
 * or from a worker under the store lock.
 */
int auth_cram_md5_missing(struct store *store, auth_account_fn *each, void *ctx,
			  size_t *missing_out, struct error *err);
/* The same for the {PLAIN} secret APOP needs. */
int auth_plain_missing(struct store *store, auth_account_fn *each, void *ctx, size_t *missing_out,
		       struct error *err);

#endif
