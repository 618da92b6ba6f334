/*
 * service: login attempts from the protocols to a verdict (auth/service.h).
 * Owns the tickets (one per attempt), the throttle tables, the credential
 * cache, the per-process keys and the auth log lines. Everything but the
 * worker jobs runs on the event-loop thread; a job sees only its ticket,
 * whose fields it reads and writes while the loop leaves them alone.
 *
 * It must never log or keep a password, never block the loop (no store call
 * or hash here outside a job), never sleep for a delay (delays are timers),
 * and never call a callback after auth_cancel or from inside the call that
 * started the ticket.
 */
#include "auth/service.h"

#include <event2/event.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "auth/cache.h"
#include "auth/rate.h"
#include "auth/secret.h"
#include "auth/throttle.h"
#include "auth/vault.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/span.h"
#include "core/worker.h"
#include "store/address.h"
#include "store/store.h"

#define TICKET_BUCKETS 256 /* ticket ids hash here; chains stay short at thousands in flight */

/* Why an attempt failed: the log's reason= words (docs/auth.md). */
enum auth_reason {
	REASON_NONE,
	REASON_BAD_PASSWORD,
	REASON_UNKNOWN_USER,
	REASON_DISABLED,
	REASON_THROTTLED,
	REASON_MALFORMED, /* a user name that is not an address, an empty or over-long password */
	REASON_NO_SECRET, /* the user has no secret the mechanism can check */
	REASON_STORE,	  /* the store failed (AUTH_TEMPFAIL) */
	REASON_COUNT,
};

static const char *const reason_words[REASON_COUNT] = {
	[REASON_NONE] = "none",
	[REASON_BAD_PASSWORD] = "bad-password",
	[REASON_UNKNOWN_USER] = "unknown-user",
	[REASON_DISABLED] = "disabled",
	[REASON_THROTTLED] = "throttled",
	[REASON_MALFORMED] = "malformed",
	[REASON_NO_SECRET] = "no-secret",
	[REASON_STORE] = "store",
};

enum ticket_kind {
	TICKET_PASSWORD, /* auth_check_password */
	TICKET_SECRET,	 /* auth_fetch_secret, then auth_report */
};

enum ticket_state {
	TICKET_WORKING,		/* a worker job has it */
	TICKET_DELIVERING,	/* its timer will call the callback */
	TICKET_AWAITING_REPORT, /* a secret was handed out; auth_report comes next */
	TICKET_WAITING,		/* the same user and password are being hashed: waits */
};

/* What the hash job of a password check runs (after the look-up job). */
enum hash_kind {
	HASH_NONE,     /* a cache hit or a store failure: no hash */
	HASH_ARGON2ID, /* the user's argon2id secret */
	HASH_SCRAM,    /* only a SCRAM secret: PBKDF2 (auth/secret.h) */
	HASH_DUMMY,    /* unknown user, or no secret: the same work on the dummy secret */
};

struct auth_ticket {
	struct auth_ticket *next, *prev; /* in svc->tickets[id % TICKET_BUCKETS] */
	struct auth_service *svc;	 /* NULL once orphaned by auth_service_free */
	uint64_t id;
	enum ticket_kind kind;
	enum auth_secret_kind secret_kind; /* TICKET_SECRET */
	enum ticket_state state;
	bool is_cancelled;
	bool is_reported; /* TICKET_SECRET: the next delivery is auth_report's */
	/* A password check that found no cache entry leads: later checks of
	 * the same (user, password) wait for its verdict instead of hashing
	 * too (svc->leaders, svc->waiting). */
	bool is_leader;
	struct auth_ticket *leader_next, *wait_next;

	/* The request, copied. */
	char *client_ip, *listener, *mechanism, *session_id, *username;
	char user[ADDRESS_MAX + 1];	/* normalized username; "" when is_malformed */
	char user_key[ADDRESS_MAX + 1]; /* user in ASCII lower case: one key per account */
	bool is_malformed;

	/* Read by the worker job. */
	struct store *store;
	pthread_mutex_t *store_lock;
	char *password;		  /* a slot of vault, or sodium_malloc when it is full */
	struct auth_vault *vault; /* the password's vault; NULL: sodium_malloc */
	size_t password_len;
	char dummy_secret[AUTH_SECRET_MAX];
	unsigned char cache_key[AUTH_CACHE_KEY_LEN];
	bool has_cache_key;
	bool has_cached_stamp;
	struct auth_cache_stamp cached_stamp;

	/* Written by the look-up job for the hash job: what to verify the
	 * password against (t->secret holds the stored secret, or nothing
	 * for HASH_DUMMY), and what the user's row said. */
	enum hash_kind hash_kind;
	bool is_user_enabled;

	/* Written by the worker job (or the loop when no job runs). */
	enum auth_result result;
	enum auth_reason reason;
	bool is_cache_hit;
	bool is_decoy;
	unsigned hash_runs;
	struct auth_cache_stamp verified_stamp;
	char canonical[ADDRESS_MAX + 1];
	char secret[STORE_SECRET_MAX];
	char error_message[ERROR_MESSAGE_MAX];

	struct event *timer;
	auth_done_fn *done;
	auth_secret_fn *secret_done;
	void *ctx;
};

struct auth_service {
	struct event_base *base;
	struct worker_pool *workers;
	struct worker_pool *hash_workers; /* password hashing only */
	bool is_hash_pool_ours;
	struct store *store;
	pthread_mutex_t *store_lock;
	auth_clock_fn *clock;
	void *clock_ctx;

	struct auth_throttle *throttle;
	struct auth_vault *vault; /* passwords of the checks in flight */
	struct auth_cache *cache;
	struct auth_rates *rates; /* the login history; NULL: none */
	unsigned char decoy_key[crypto_generichash_KEYBYTES];
	char dummy_secret[AUTH_SECRET_MAX];

	uint64_t last_id;
	struct auth_ticket *leaders; /* uncached password checks in flight */
	struct auth_ticket *waiting; /* checks waiting for a leader of their key */
	struct auth_ticket *tickets[TICKET_BUCKETS];
	size_t ticket_count;
	struct auth_service_stats stats;
	/* Failures per second of the last minute: [s % 60] counts second s. */
	struct {
		int64_t second;
		uint32_t count;
	} recent[60];
};

static void count_recent_failure(struct auth_service *svc, int64_t now_ms)
{
	int64_t second = now_ms / 1000;
	size_t slot = (size_t) (second % 60);

	if (svc->recent[slot].second != second) {
		svc->recent[slot].second = second;
		svc->recent[slot].count = 0;
	}
	svc->recent[slot].count++;
}

static int64_t monotonic_ms(void *ctx)
{
	struct timespec ts;

	(void) ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(const struct auth_service *svc)
{
	return svc->clock(svc->clock_ctx);
}

/* ---- tickets ---- */

static void ticket_link(struct auth_service *svc, struct auth_ticket *t)
{
	struct auth_ticket **head = &svc->tickets[t->id % TICKET_BUCKETS];

	t->prev = NULL;
	t->next = *head;
	if (*head != NULL)
		(*head)->prev = t;
	*head = t;
	svc->ticket_count++;
}

static void ticket_unlink(struct auth_service *svc, struct auth_ticket *t)
{
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		svc->tickets[t->id % TICKET_BUCKETS] = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
	svc->ticket_count--;
}

static struct auth_ticket *ticket_find(struct auth_service *svc, uint64_t id)
{
	for (struct auth_ticket *t = svc->tickets[id % TICKET_BUCKETS]; t != NULL; t = t->next)
		if (t->id == id)
			return t;
	return NULL;
}

static void password_wipe(struct auth_ticket *t)
{
	if (t->password != NULL && t->vault != NULL)
		auth_vault_give(t->vault, t->password); /* wipes the slot */
	else if (t->password != NULL)
		sodium_free(t->password); /* wipes before it unmaps */
	t->password = NULL;
	t->vault = NULL;
	t->password_len = 0;
}

/* Frees a ticket that is in no table. */
static void ticket_release(struct auth_ticket *t)
{
	if (t->timer != NULL)
		event_free(t->timer);
	password_wipe(t);
	free(t->client_ip);
	free(t->listener);
	free(t->mechanism);
	free(t->session_id);
	free(t->username);
	sodium_memzero(t, sizeof(*t));
	free(t);
}

static void ticket_free(struct auth_service *svc, struct auth_ticket *t)
{
	ticket_unlink(svc, t);
	ticket_release(t);
}

static char *copy_field(const char *s)
{
	return strdup(s != NULL ? s : "");
}

static void on_deliver(evutil_socket_t fd, short what, void *arg);

static struct auth_ticket *ticket_new(struct auth_service *svc, const struct auth_request *req,
				      enum ticket_kind kind)
{
	struct auth_ticket *t = calloc(1, sizeof(*t));
	struct error err;

	if (t == NULL)
		return NULL;
	t->kind = kind;
	t->client_ip = copy_field(req->client_ip);
	t->listener = copy_field(req->listener);
	t->mechanism = copy_field(req->mechanism);
	t->session_id = copy_field(req->session_id);
	t->username = copy_field(req->username);
	t->timer = evtimer_new(svc->base, on_deliver, t);
	if (t->client_ip == NULL || t->listener == NULL || t->mechanism == NULL ||
	    t->session_id == NULL || t->username == NULL || t->timer == NULL) {
		ticket_release(t);
		return NULL;
	}
	t->is_malformed = store_address_normalize(span_from_cstr(t->username), t->user, &err) < 0;
	/* The store matches local parts without regard to ASCII case
	 * (store/address.h), so "Alice@" and "alice@" must share their
	 * throttle records, cache entries and decoy salt. */
	for (size_t i = 0; i < sizeof(t->user_key) && t->user[i] != '\0'; i++)
		t->user_key[i] = (t->user[i] >= 'A' && t->user[i] <= 'Z')
					 ? (char) (t->user[i] - 'A' + 'a')
					 : t->user[i];
	t->svc = svc;
	t->id = ++svc->last_id;
	ticket_link(svc, t);
	return t;
}

/* ---- log lines (docs/auth.md) ---- */

static void log_result(const struct auth_ticket *t, uint32_t delay_ms)
{
	char buf[6][LOG_ESCAPED_CAP];
	/* The stored address on success; else the normalized name, or the
	 * name as sent when it is not an address. */
	const char *name = t->result == AUTH_OK ? t->canonical
			   : t->is_malformed	? t->username
						: t->user;
	const char *sid = log_escape(span_from_cstr(t->session_id), buf[0]);
	const char *listener = log_escape(span_from_cstr(t->listener), buf[1]);
	const char *client = log_escape(span_from_cstr(t->client_ip), buf[2]);
	const char *mech = log_escape(span_from_cstr(t->mechanism), buf[3]);
	const char *user = log_escape(span_from_cstr(name), buf[4]);

	switch (t->result) {
	case AUTH_OK:
		log_info("sid=%s auth ok listener=%s client=%s mech=%s user=%s cached=%s", sid,
			 listener, client, mech, user, t->is_cache_hit ? "yes" : "no");
		break;
	case AUTH_FAILED:
	case AUTH_THROTTLED:
		log_warning("sid=%s auth failed listener=%s client=%s mech=%s user=%s reason=%s "
			    "delay_ms=%" PRIu32,
			    sid, listener, client, mech, user, reason_words[t->reason], delay_ms);
		break;
	case AUTH_TEMPFAIL:
		log_warning("sid=%s auth tempfail listener=%s client=%s mech=%s user=%s reason=%s "
			    "error=%s",
			    sid, listener, client, mech, user, reason_words[t->reason],
			    log_escape(span_from_cstr(t->error_message), buf[5]));
		break;
	}
}

/* The login history (auth/rate.h) of users that exist: a guesser's
 * invented names leave nothing behind. A throttled attempt was never
 * checked, so whether its user exists is not known: not noted. */
static void note_login(struct auth_service *svc, const struct auth_ticket *t)
{
	if (svc->rates == NULL || t->is_malformed)
		return;
	if (t->result == AUTH_OK)
		auth_rate_login_note(svc->rates, t->canonical, t->client_ip, (int64_t) time(NULL),
				     true);
	else if (t->result == AUTH_FAILED &&
		 (t->reason == REASON_BAD_PASSWORD || t->reason == REASON_DISABLED ||
		  t->reason == REASON_NO_SECRET))
		auth_rate_login_note(svc->rates, t->user_key, t->client_ip, (int64_t) time(NULL),
				     false);
}

/* ---- delivery ---- */

static void arm(struct auth_ticket *t, uint32_t delay_ms)
{
	struct timeval tv = { (time_t) (delay_ms / 1000), (suseconds_t) (delay_ms % 1000) * 1000 };

	t->state = TICKET_DELIVERING;
	if (evtimer_add(t->timer, &tv) != 0)
		event_active(t->timer, EV_TIMEOUT, 1); /* late is better than never */
}

/* ---- one hash for concurrent checks of the same password ---- */

static bool has_leader(const struct auth_service *svc, const unsigned char *key)
{
	for (const struct auth_ticket *l = svc->leaders; l != NULL; l = l->leader_next)
		if (sodium_memcmp(l->cache_key, key, AUTH_CACHE_KEY_LEN) == 0)
			return true;
	return false;
}

static void leader_remove(struct auth_service *svc, struct auth_ticket *t)
{
	struct auth_ticket **link = &svc->leaders;

	while (*link != NULL && *link != t)
		link = &(*link)->leader_next;
	if (*link == t)
		*link = t->leader_next;
	t->leader_next = NULL;
	t->is_leader = false;
}

static void waiting_remove(struct auth_service *svc, struct auth_ticket *t)
{
	struct auth_ticket **link = &svc->waiting;

	while (*link != NULL && *link != t)
		link = &(*link)->wait_next;
	if (*link == t)
		*link = t->wait_next;
	t->wait_next = NULL;
}

static void submit(struct auth_service *svc, struct auth_ticket *t, worker_job_fn *job,
		   worker_done_fn *done);
static void lookup_job(void *arg);
static void on_lookup_done(void *arg);

/*
 * A password check with its copy of the password: answered from the cache
 * (a look-up, no hash), or made to wait while a check of the same user and
 * password is being hashed (Outlook opening several connections at once
 * costs one hash, not one each), or the leader that hashes.
 */
static void password_check_start(struct auth_service *svc, struct auth_ticket *t)
{
	t->has_cached_stamp =
		auth_cache_lookup(svc->cache, t->cache_key, now_ms(svc), &t->cached_stamp);
	if (!t->has_cached_stamp && has_leader(svc, t->cache_key)) {
		t->state = TICKET_WAITING;
		t->wait_next = svc->waiting;
		svc->waiting = t;
		return;
	}
	if (!t->has_cached_stamp) {
		t->is_leader = true;
		t->leader_next = svc->leaders;
		svc->leaders = t;
	}
	submit(svc, t, lookup_job, on_lookup_done);
}

/* The leader of key has its verdict (and, if right, its cache entry): the
 * checks that waited for it start again, most find the entry. */
static void waiting_wake(struct auth_service *svc, const unsigned char *key)
{
	struct auth_ticket *woken = NULL, **link = &svc->waiting;

	while (*link != NULL) {
		struct auth_ticket *t = *link;

		if (sodium_memcmp(t->cache_key, key, AUTH_CACHE_KEY_LEN) != 0) {
			link = &t->wait_next;
			continue;
		}
		*link = t->wait_next;
		t->wait_next = woken;
		woken = t;
	}
	while (woken != NULL) {
		struct auth_ticket *t = woken;

		woken = t->wait_next;
		t->wait_next = NULL;
		password_check_start(svc, t);
	}
}

/*
 * The verdict is known (t->result, t->reason): feed the throttle, keep the
 * cache in step, count, log, and deliver after the failure delay. A
 * cancelled ticket is accounted for all the same, then dropped.
 */
static void conclude(struct auth_service *svc, struct auth_ticket *t)
{
	int64_t now = now_ms(svc);
	const char *account = t->is_malformed ? NULL : t->user_key;
	uint32_t delay_ms = 0;
	struct auth_throttle_outcome outcome;

	switch (t->result) {
	case AUTH_OK:
		auth_throttle_success(svc->throttle, now, t->client_ip, account);
		svc->stats.ok++;
		break;
	case AUTH_FAILED:
		/* The tag of a wrong password: the first bytes of its cache
		 * key, a keyed hash that is no use outside this process. */
		outcome = auth_throttle_failure(svc->throttle, now, t->client_ip, account,
						t->has_cache_key ? t->cache_key : NULL);
		delay_ms = outcome.delay_ms;
		if (delay_ms > 0)
			metrics_auth_delayed();
		svc->stats.failed++;
		count_recent_failure(svc, now);
		break;
	case AUTH_THROTTLED:
		delay_ms = AUTH_THROTTLE_DELAY_MAX_MS;
		svc->stats.throttled++;
		count_recent_failure(svc, now);
		break;
	case AUTH_TEMPFAIL:
		svc->stats.tempfail++;
		break;
	}
	if (t->kind == TICKET_PASSWORD && t->has_cache_key) {
		if (t->result == AUTH_OK && !t->is_cache_hit)
			auth_cache_insert(svc->cache, t->cache_key, &t->verified_stamp, now);
		else if (t->result != AUTH_OK && t->result != AUTH_TEMPFAIL && t->has_cached_stamp)
			auth_cache_remove(svc->cache, t->cache_key);
	}
	metrics_auth(t->listener, t->mechanism,
		     t->result == AUTH_OK	   ? METRICS_AUTH_OK
		     : t->result == AUTH_FAILED	   ? METRICS_AUTH_FAILED
		     : t->result == AUTH_THROTTLED ? METRICS_AUTH_THROTTLED
						   : METRICS_AUTH_TEMPFAIL);
	note_login(svc, t);
	log_result(t, delay_ms);
	if (t->is_leader) {
		unsigned char key[AUTH_CACHE_KEY_LEN];

		leader_remove(svc, t);
		memcpy(key, t->cache_key, sizeof(key));
		waiting_wake(svc, key);
		sodium_memzero(key, sizeof(key));
	}
	password_wipe(t);
	sodium_memzero(t->cache_key, sizeof(t->cache_key));
	if (t->is_cancelled) {
		ticket_free(svc, t);
		return;
	}
	arm(t, delay_ms);
}

static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct auth_ticket *t = arg;
	struct auth_service *svc = t->svc;
	char secret[STORE_SECRET_MAX], canonical[ADDRESS_MAX + 1];

	(void) fd;
	(void) what;
	if (t->kind == TICKET_SECRET && !t->is_reported && t->result == AUTH_OK) {
		/* The ticket stays open for auth_report; the callback may end it
		 * (auth_cancel), so nothing of it is touched afterwards. */
		memcpy(secret, t->secret, sizeof(secret));
		memcpy(canonical, t->canonical, sizeof(canonical));
		sodium_memzero(t->secret, sizeof(t->secret));
		t->state = TICKET_AWAITING_REPORT;
		t->secret_done(t->ctx, AUTH_OK, secret, canonical);
		sodium_memzero(secret, sizeof(secret));
		return;
	}
	ticket_unlink(svc, t);
	if (t->kind == TICKET_SECRET && !t->is_reported)
		t->secret_done(t->ctx, t->result, NULL, NULL);
	else
		t->done(t->ctx, t->result, t->result == AUTH_OK ? t->canonical : NULL);
	ticket_release(t);
}

/* ---- worker jobs: nothing here but the ticket, the store and libsodium ---- */

static int user_get(struct auth_ticket *t, struct store_user *u, struct error *err)
{
	int rc;

	pthread_mutex_lock(t->store_lock);
	rc = store_user_get(t->store, t->user, u, err);
	pthread_mutex_unlock(t->store_lock);
	return rc;
}

static void store_failed(struct auth_ticket *t, const struct error *err)
{
	t->result = AUTH_TEMPFAIL;
	t->reason = REASON_STORE;
	memcpy(t->error_message, err->message, sizeof(t->error_message));
}

/*
 * A password check's first job, on the shared workers: read the user and
 * either answer from the cache (no hash) or say what the hash job must
 * verify. Hashing is a second job on the service's own threads, so that a
 * burst of logins never queues Maildir reads or spool commits behind
 * 0.1-second hashes, and cached logins never wait behind uncached ones.
 */
static void lookup_job(void *arg)
{
	struct auth_ticket *t = arg;
	struct store_user u;
	struct auth_cache_stamp stamp;
	struct error err;

	error_clear(&err);
	if (user_get(t, &u, &err) < 0) {
		if (err.kind != ERROR_NOT_FOUND) {
			store_failed(t, &err);
			return;
		}
		/* The same argon2id work as for a real user: the reply time
		 * must not say whether the address exists. */
		t->hash_kind = HASH_DUMMY;
		t->result = AUTH_FAILED;
		t->reason = REASON_UNKNOWN_USER;
		return;
	}
	auth_cache_stamp_make(u.secret_argon2id, u.secret_scram, u.changed, &stamp);
	if (t->has_cached_stamp && u.is_enabled && auth_cache_stamp_eq(&stamp, &t->cached_stamp)) {
		/* Verified before against exactly these secrets: no hash. */
		t->result = AUTH_OK;
		t->is_cache_hit = true;
		memcpy(t->canonical, u.address, sizeof(t->canonical));
		sodium_memzero(&u, sizeof(u));
		return;
	}
	if (u.secret_argon2id[0] != '\0') {
		t->hash_kind = HASH_ARGON2ID;
		memcpy(t->secret, u.secret_argon2id, sizeof(t->secret));
	} else if (u.secret_scram[0] != '\0') {
		/* A user imported with only a SCRAM secret can still log in
		 * with PLAIN or LOGIN (auth/secret.h). */
		t->hash_kind = HASH_SCRAM;
		memcpy(t->secret, u.secret_scram, sizeof(t->secret));
	} else {
		t->hash_kind = HASH_DUMMY;
	}
	t->is_user_enabled = u.is_enabled;
	t->verified_stamp = stamp;
	memcpy(t->canonical, u.address, sizeof(t->canonical));
	sodium_memzero(&u, sizeof(u));
}

/* The second job, on the hash threads: one argon2id (or PBKDF2) run, and
 * the verdict. */
static void hash_job(void *arg)
{
	struct auth_ticket *t = arg;
	bool is_match = false;

	switch (t->hash_kind) {
	case HASH_ARGON2ID:
		is_match = auth_secret_verify_argon2id(t->secret, t->password, t->password_len);
		break;
	case HASH_SCRAM:
		is_match = auth_secret_verify_scram(t->secret, t->password, t->password_len);
		break;
	case HASH_DUMMY:
	case HASH_NONE:
		(void) auth_secret_verify_argon2id(t->dummy_secret, t->password, t->password_len);
		break;
	}
	sodium_memzero(t->secret, sizeof(t->secret));
	t->hash_runs++;
	if (t->reason == REASON_UNKNOWN_USER) /* decided by the look-up */
		return;
	if (!t->is_user_enabled) {
		t->result = AUTH_FAILED;
		t->reason = REASON_DISABLED;
	} else if (t->hash_kind == HASH_DUMMY) {
		t->result = AUTH_FAILED;
		t->reason = REASON_NO_SECRET;
	} else if (!is_match) {
		t->result = AUTH_FAILED;
		t->reason = REASON_BAD_PASSWORD;
	} else {
		t->result = AUTH_OK;
	}
	if (t->result != AUTH_OK)
		memset(t->canonical, 0, sizeof(t->canonical));
}

static void secret_job(void *arg)
{
	struct auth_ticket *t = arg;
	struct store_user u;
	struct error err;
	unsigned iterations;
	unsigned char salt[AUTH_SCRAM_SALT_MAX], stored_key[AUTH_SCRAM_KEY_LEN],
		server_key[AUTH_SCRAM_KEY_LEN];
	size_t salt_len;

	error_clear(&err);
	/* AUTH_OK here means "carry on with the mechanism"; a decoy's reason
	 * is logged when auth_report comes. */
	t->result = AUTH_OK;
	if (user_get(t, &u, &err) < 0) {
		if (err.kind != ERROR_NOT_FOUND) {
			store_failed(t, &err);
			return;
		}
		t->is_decoy = true;
		t->reason = REASON_UNKNOWN_USER;
		return;
	}
	if (!u.is_enabled) {
		t->is_decoy = true;
		t->reason = REASON_DISABLED;
	} else if (t->secret_kind == AUTH_SECRET_PLAIN) {
		if (auth_secret_is_plain(u.secret_plain)) {
			memcpy(t->secret, u.secret_plain, sizeof(t->secret));
			memcpy(t->canonical, u.address, sizeof(t->canonical));
		} else {
			t->is_decoy = true;
			t->reason = REASON_NO_SECRET;
		}
	} else if (t->secret_kind == AUTH_SECRET_CRAM_MD5) {
		if (auth_secret_is_cram_md5(u.secret_cram_md5)) {
			memcpy(t->secret, u.secret_cram_md5, sizeof(t->secret));
			memcpy(t->canonical, u.address, sizeof(t->canonical));
		} else {
			t->is_decoy = true;
			t->reason = REASON_NO_SECRET;
		}
	} else if (auth_secret_parse_scram(u.secret_scram, &iterations, salt, sizeof(salt),
					   &salt_len, stored_key, server_key) < 0) {
		t->is_decoy = true;
		t->reason = REASON_NO_SECRET;
	} else {
		memcpy(t->secret, u.secret_scram, sizeof(t->secret));
		memcpy(t->canonical, u.address, sizeof(t->canonical));
	}
	sodium_memzero(stored_key, sizeof(stored_key));
	sodium_memzero(server_key, sizeof(server_key));
	sodium_memzero(&u, sizeof(u));
}

/* ---- results back on the loop ---- */

static void on_hash_done(void *arg);

static void on_lookup_done(void *arg)
{
	struct auth_ticket *t = arg;
	struct auth_service *svc = t->svc;

	if (svc == NULL) {
		ticket_release(t); /* orphaned by auth_service_free */
		return;
	}
	if (t->hash_kind != HASH_NONE) {
		/* Even for a cancelled ticket: leaving does not skip the work
		 * or the failure's record. */
		if (worker_pool_submit(svc->hash_workers, hash_job, on_hash_done, t) == 0)
			return;
		sodium_memzero(t->secret, sizeof(t->secret));
		t->result = AUTH_TEMPFAIL;
		t->reason = REASON_STORE;
		snprintf(t->error_message, sizeof(t->error_message),
			 "the hash threads did not take the job");
	}
	on_hash_done(t);
}

static void on_hash_done(void *arg)
{
	struct auth_ticket *t = arg;
	struct auth_service *svc = t->svc;

	if (svc == NULL) {
		ticket_release(t); /* orphaned by auth_service_free */
		return;
	}
	svc->stats.hash_runs += t->hash_runs;
	if (t->is_cache_hit)
		svc->stats.cache_hits++;
	conclude(svc, t);
}

/*
 * RFC 5802 5.1 has the server send a salt and iteration count before the
 * client proves anything, so an unknown user needs them too: the salt is a
 * keyed hash of the name (stable for the process, like a real user's), the
 * count the default one, the keys random (no password leads to them).
 */
static void decoy_make(const struct auth_service *svc, struct auth_ticket *t)
{
	const char *name = t->is_malformed ? t->username : t->user_key;
	unsigned char salt[AUTH_SCRAM_SALT_LEN], keys[2 * AUTH_SCRAM_KEY_LEN];
	char salt_b64[sodium_base64_ENCODED_LEN(AUTH_SCRAM_SALT_LEN,
						sodium_base64_VARIANT_ORIGINAL)];
	char key_b64[2]
		    [sodium_base64_ENCODED_LEN(AUTH_SCRAM_KEY_LEN, sodium_base64_VARIANT_ORIGINAL)];

	crypto_generichash(salt, sizeof(salt), (const unsigned char *) name, strlen(name),
			   svc->decoy_key, sizeof(svc->decoy_key));
	randombytes_buf(keys, sizeof(keys));
	sodium_bin2base64(salt_b64, sizeof(salt_b64), salt, sizeof(salt),
			  sodium_base64_VARIANT_ORIGINAL);
	sodium_bin2base64(key_b64[0], sizeof(key_b64[0]), keys, AUTH_SCRAM_KEY_LEN,
			  sodium_base64_VARIANT_ORIGINAL);
	sodium_bin2base64(key_b64[1], sizeof(key_b64[1]), keys + AUTH_SCRAM_KEY_LEN,
			  AUTH_SCRAM_KEY_LEN, sodium_base64_VARIANT_ORIGINAL);
	snprintf(t->secret, sizeof(t->secret), "{SCRAM-SHA-256}%u,%s,%s,%s",
		 AUTH_SCRAM_ITERATIONS_DEFAULT, salt_b64, key_b64[0], key_b64[1]);
	/* The name the mechanism carries on with, as for a real user. */
	snprintf(t->canonical, sizeof(t->canonical), "%s", t->is_malformed ? t->username : t->user);
	sodium_memzero(keys, sizeof(keys));
	if (t->secret_kind == AUTH_SECRET_PLAIN) {
		/* A random "password" nobody knows. */
		unsigned char noise[24];
		char hex[2 * sizeof(noise) + 1];

		randombytes_buf(noise, sizeof(noise));
		sodium_bin2hex(hex, sizeof(hex), noise, sizeof(noise));
		snprintf(t->secret, sizeof(t->secret), "{PLAIN}%s", hex);
	}
	if (t->secret_kind == AUTH_SECRET_CRAM_MD5) {
		/* Random key-schedule states: no password leads to them. */
		unsigned char states[32];
		char hex[2 * sizeof(states) + 1];

		randombytes_buf(states, sizeof(states));
		sodium_bin2hex(hex, sizeof(hex), states, sizeof(states));
		snprintf(t->secret, sizeof(t->secret), "{CRAM-MD5}%s", hex);
		sodium_memzero(states, sizeof(states));
	}
}

static void on_secret_done(void *arg)
{
	struct auth_ticket *t = arg;
	struct auth_service *svc = t->svc;

	if (svc == NULL) {
		ticket_release(t);
		return;
	}
	if (t->result == AUTH_TEMPFAIL) {
		conclude(svc, t);
		return;
	}
	if (t->is_cancelled) {
		/* Nothing was decided yet: no verdict to log or count. */
		ticket_free(svc, t);
		return;
	}
	if (t->is_decoy)
		decoy_make(svc, t);
	arm(t, 0);
}

/* ---- public ---- */

/* One hash at a time per core: argon2id is bound by memory bandwidth and
 * 64 MiB a run, so more threads than cores only add memory. */
static unsigned hash_thread_count(unsigned asked)
{
	long online = sysconf(_SC_NPROCESSORS_ONLN);

	if (asked != 0)
		return asked;
	if (online < 1)
		return 1;
	return online > WORKER_THREADS_MAX ? WORKER_THREADS_MAX : (unsigned) online;
}

struct auth_service *auth_service_new(const struct auth_service_params *params, struct error *err)
{
	struct auth_service *svc;
	struct auth_throttle_params throttle_params;
	char dummy_password[32];

	if (params->base == NULL || params->workers == NULL || params->store == NULL ||
	    params->store_lock == NULL) {
		error_set(err, ERROR_USAGE,
			  "auth service needs an event base, workers, a store and its lock");
		return NULL;
	}
	if (auth_secret_global_init(err) < 0)
		return NULL;
	svc = calloc(1, sizeof(*svc));
	if (svc == NULL) {
		error_set(err, ERROR_TEMPORARY, "auth service: out of memory");
		return NULL;
	}
	svc->base = params->base;
	svc->workers = params->workers;
	svc->store = params->store;
	svc->store_lock = params->store_lock;
	svc->rates = params->rates;
	svc->clock = params->clock != NULL ? params->clock : monotonic_ms;
	svc->clock_ctx = params->clock_ctx;
	svc->hash_workers = params->hash_workers;
	if (svc->hash_workers == NULL) {
		svc->hash_workers =
			worker_pool_new(params->base, hash_thread_count(params->hash_threads), err);
		if (svc->hash_workers == NULL)
			goto fail;
		svc->is_hash_pool_ours = true;
	}

	memset(&throttle_params, 0, sizeof(throttle_params));
	randombytes_buf(throttle_params.key, sizeof(throttle_params.key));
	svc->throttle = auth_throttle_new(&throttle_params, err);
	sodium_memzero(&throttle_params, sizeof(throttle_params));
	if (svc->throttle == NULL)
		goto fail;
	svc->cache = auth_cache_new(
		params->cache_entries ? params->cache_entries : AUTH_CACHE_ENTRIES,
		params->cache_ttl_ms ? params->cache_ttl_ms : AUTH_CACHE_TTL_MS, err);
	if (svc->cache == NULL)
		goto fail;
	svc->vault = auth_vault_new(AUTH_VAULT_SLOTS, AUTH_PASSWORD_MAX, err);
	if (svc->vault == NULL)
		goto fail;
	randombytes_buf(svc->decoy_key, sizeof(svc->decoy_key));
	/* A secret no one knows the password of, made with the same cost as
	 * every new one, for unknown users to be checked against. */
	randombytes_buf(dummy_password, sizeof(dummy_password));
	for (size_t i = 0; i < sizeof(dummy_password); i++)
		dummy_password[i] = (char) ('a' + (unsigned char) dummy_password[i] % 26);
	if (auth_secret_make_argon2id(dummy_password, sizeof(dummy_password), svc->dummy_secret,
				      sizeof(svc->dummy_secret), err) < 0) {
		sodium_memzero(dummy_password, sizeof(dummy_password));
		goto fail;
	}
	sodium_memzero(dummy_password, sizeof(dummy_password));
	return svc;
fail:
	auth_service_free(svc);
	return NULL;
}

void auth_service_free(struct auth_service *svc)
{
	if (svc == NULL)
		return;
	for (size_t b = 0; b < TICKET_BUCKETS; b++) {
		struct auth_ticket *t = svc->tickets[b], *next;

		for (; t != NULL; t = next) {
			next = t->next;
			if (t->state == TICKET_WORKING) {
				/* Its job still runs; on_*_done frees it. */
				t->svc = NULL;
				t->next = t->prev = NULL;
				event_free(t->timer);
				t->timer = NULL;
			} else {
				ticket_release(t);
			}
		}
	}
	/* Runs the hashes still queued; their results find no service and
	 * free their tickets. */
	if (svc->is_hash_pool_ours)
		worker_pool_free(svc->hash_workers);
	auth_throttle_free(svc->throttle);
	auth_cache_free(svc->cache);
	/* Orphaned tickets still on a worker give their slots back later. */
	auth_vault_close(svc->vault);
	sodium_memzero(svc, sizeof(*svc));
	free(svc);
}

/* Starts a worker job; a pool that refuses it is a temporary failure. */
static void submit(struct auth_service *svc, struct auth_ticket *t, worker_job_fn *job,
		   worker_done_fn *done)
{
	t->store = svc->store;
	t->store_lock = svc->store_lock;
	t->state = TICKET_WORKING;
	if (worker_pool_submit(svc->workers, job, done, t) == 0)
		return;
	t->result = AUTH_TEMPFAIL;
	t->reason = REASON_STORE;
	snprintf(t->error_message, sizeof(t->error_message),
		 "the worker pool did not take the job");
	conclude(svc, t);
}

uint64_t auth_check_password(struct auth_service *svc, const struct auth_request *req,
			     const char *password, size_t password_len, auth_done_fn *done,
			     void *ctx)
{
	struct auth_ticket *t = ticket_new(svc, req, TICKET_PASSWORD);
	uint64_t id;

	if (t == NULL)
		return 0;
	id = t->id;
	t->done = done;
	t->ctx = ctx;
	if (auth_throttle_check(svc->throttle, now_ms(svc), t->client_ip,
				t->is_malformed ? NULL : t->user_key) == AUTH_THROTTLE_REFUSE) {
		t->result = AUTH_THROTTLED;
		t->reason = REASON_THROTTLED;
		conclude(svc, t);
		return id;
	}
	if (!t->is_malformed) {
		auth_cache_key_make(svc->cache, t->user_key, password, password_len, t->cache_key);
		t->has_cache_key = true;
	}
	if (t->is_malformed || password_len == 0 || password_len > AUTH_PASSWORD_MAX ||
	    memchr(password, '\0', password_len) != NULL) {
		t->result = AUTH_FAILED;
		t->reason = REASON_MALFORMED;
		conclude(svc, t);
		return id;
	}
	t->password = auth_vault_take(svc->vault);
	if (t->password != NULL)
		t->vault = svc->vault;
	else
		t->password = sodium_malloc(password_len);
	if (t->password == NULL) {
		ticket_free(svc, t);
		return 0;
	}
	memcpy(t->password, password, password_len);
	t->password_len = password_len;
	memcpy(t->dummy_secret, svc->dummy_secret, sizeof(t->dummy_secret));
	password_check_start(svc, t);
	return id;
}

uint64_t auth_fetch_secret(struct auth_service *svc, const struct auth_request *req,
			   enum auth_secret_kind kind, auth_secret_fn *done, void *ctx)
{
	struct auth_ticket *t;
	uint64_t id;

	t = ticket_new(svc, req, TICKET_SECRET);
	if (t == NULL)
		return 0;
	id = t->id;
	t->secret_kind = kind;
	t->secret_done = done;
	t->ctx = ctx;
	if (auth_throttle_check(svc->throttle, now_ms(svc), t->client_ip,
				t->is_malformed ? NULL : t->user_key) == AUTH_THROTTLE_REFUSE) {
		t->result = AUTH_THROTTLED;
		t->reason = REASON_THROTTLED;
		conclude(svc, t);
		return id;
	}
	if (t->is_malformed) {
		t->result = AUTH_OK;
		t->is_decoy = true;
		t->reason = REASON_MALFORMED;
		decoy_make(svc, t);
		arm(t, 0);
		return id;
	}
	submit(svc, t, secret_job, on_secret_done);
	return id;
}

uint64_t auth_report(struct auth_service *svc, uint64_t ticket, bool is_proof_valid,
		     auth_done_fn *done, void *ctx)
{
	struct auth_ticket *t = ticket_find(svc, ticket);

	if (t == NULL || t->kind != TICKET_SECRET || t->state != TICKET_AWAITING_REPORT)
		return 0;
	t->is_reported = true;
	t->done = done;
	t->ctx = ctx;
	if (t->is_decoy) {
		/* No proof can match a decoy's random keys; a mechanism that
		 * says otherwise is wrong, and the answer stays no. */
		t->result = AUTH_FAILED;
	} else if (is_proof_valid) {
		t->result = AUTH_OK;
		t->reason = REASON_NONE;
	} else {
		t->result = AUTH_FAILED;
		t->reason = REASON_BAD_PASSWORD;
	}
	conclude(svc, t);
	return ticket;
}

void auth_cancel(struct auth_service *svc, uint64_t ticket)
{
	struct auth_ticket *t = ticket_find(svc, ticket);

	if (t == NULL || t->is_cancelled)
		return;
	svc->stats.cancelled++;
	if (t->state == TICKET_WORKING) {
		/* The job runs on; its result is accounted for, then dropped. */
		t->is_cancelled = true;
		return;
	}
	if (t->state == TICKET_WAITING)
		waiting_remove(svc, t);
	ticket_free(svc, t);
}

void auth_service_stats_get(const struct auth_service *svc, struct auth_service_stats *stats_out)
{
	int64_t second = now_ms(svc) / 1000;

	*stats_out = svc->stats;
	stats_out->failed_last_minute = 0;
	for (size_t i = 0; i < 60; i++)
		if (svc->recent[i].second > second - 60 && svc->recent[i].second <= second)
			stats_out->failed_last_minute += svc->recent[i].count;
	stats_out->in_flight = svc->ticket_count;
	stats_out->cache_entries = auth_cache_count(svc->cache);
}

size_t auth_service_throttled_clients(struct auth_service *svc)
{
	return auth_throttle_throttled_clients(svc->throttle, now_ms(svc));
}

size_t auth_service_cache_clear(struct auth_service *svc)
{
	return auth_cache_clear(svc->cache);
}

struct cram_walk {
	auth_account_fn *each;
	void *ctx;
	size_t missing;
	bool is_plain; /* the {PLAIN} secret, else {CRAM-MD5} */
};

static int cram_walk_one(void *ctx, const struct store_user *user)
{
	struct cram_walk *walk = ctx;

	if (walk->is_plain ? auth_secret_is_plain(user->secret_plain)
			   : auth_secret_is_cram_md5(user->secret_cram_md5))
		return 0;
	walk->missing++;
	return walk->each != NULL ? walk->each(walk->ctx, user->address) : 0;
}

int auth_cram_md5_missing(struct store *store, auth_account_fn *each, void *ctx,
			  size_t *missing_out, struct error *err)
{
	struct cram_walk walk = { each, ctx, 0, false };
	int rc = store_user_list(store, NULL, cram_walk_one, &walk, err);

	*missing_out = walk.missing;
	return rc < 0 ? -1 : 0;
}

int auth_plain_missing(struct store *store, auth_account_fn *each, void *ctx, size_t *missing_out,
		       struct error *err)
{
	struct cram_walk walk = { each, ctx, 0, true };
	int rc = store_user_list(store, NULL, cram_walk_one, &walk, err);

	*missing_out = walk.missing;
	return rc < 0 ? -1 : 0;
}
