/*
 * cache: credentials verified recently, so that a client that logs in
 * again (a POP3 client polling every minute, an SMTP client per message)
 * costs one indexed store look-up instead of an argon2id run.
 *
 * An entry's key is a keyed BLAKE2b hash (libsodium crypto_generichash, a
 * random key per process) of the normalized user name and the password; its
 * value is a stamp of what the password was checked against: a hash of the
 * user's stored secrets and the row's `changed` time, plus an expiry. The
 * password itself is never kept. A hit is only a hint: the caller must
 * still read the user from the store and accept only when the user is
 * enabled and the stamp is unchanged, so a password change or a disable in
 * another process counts at once.
 *
 * Bounded: at most `capacity` entries (the least recently used one makes
 * room) and `ttl_ms` from insertion. Memory is allocated once, in
 * auth_cache_new, and wiped with sodium_memzero when entries leave.
 *
 * Not thread-safe: one thread (the event loop) owns a struct auth_cache.
 * auth_cache_stamp_make and auth_cache_stamp_eq are pure and may run on any
 * thread.
 */
#ifndef POSTGATE_AUTH_CACHE_H
#define POSTGATE_AUTH_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define AUTH_CACHE_ENTRIES     10000		/* entries kept at most */
#define AUTH_CACHE_TTL_MS      (15 * 60 * 1000) /* an entry's lifetime */
#define AUTH_CACHE_ENTRIES_MAX ((size_t) 1 << 22)
#define AUTH_CACHE_KEY_LEN     32
#define AUTH_CACHE_HASH_LEN    32

struct auth_cache;

/* What a password was verified against. */
struct auth_cache_stamp {
	unsigned char secrets_hash[AUTH_CACHE_HASH_LEN];
	int64_t changed; /* the store's user.changed */
};

/* capacity 1..AUTH_CACHE_ENTRIES_MAX and ttl_ms > 0, else ERROR_USAGE;
 * ERROR_TEMPORARY when memory runs out. */
struct auth_cache *auth_cache_new(size_t capacity, int64_t ttl_ms, struct error *err);
void auth_cache_free(struct auth_cache *cache); /* NULL does nothing; wipes every entry */

/* The entry key for (user, password): user is the normalized address,
 * NUL-ended; password is password_len bytes. */
void auth_cache_key_make(const struct auth_cache *cache, const char *user, const char *password,
			 size_t password_len, unsigned char key_out[AUTH_CACHE_KEY_LEN]);

/* The stamp of a user's row: both stored secrets (either may be "") and
 * the changed time. */
void auth_cache_stamp_make(const char *secret_argon2id, const char *secret_scram, int64_t changed,
			   struct auth_cache_stamp *stamp_out);
/* Constant-time over the hash. */
bool auth_cache_stamp_eq(const struct auth_cache_stamp *a, const struct auth_cache_stamp *b);

/* true and *stamp_out filled when key is cached and not expired at now_ms
 * (an expired entry is dropped); the entry becomes the most recently used. */
bool auth_cache_lookup(struct auth_cache *cache, const unsigned char key[AUTH_CACHE_KEY_LEN],
		       int64_t now_ms, struct auth_cache_stamp *stamp_out);
/* Adds or replaces key's entry, expiring ttl_ms after now_ms. */
void auth_cache_insert(struct auth_cache *cache, const unsigned char key[AUTH_CACHE_KEY_LEN],
		       const struct auth_cache_stamp *stamp, int64_t now_ms);
/* Drops key's entry if there is one. */
void auth_cache_remove(struct auth_cache *cache, const unsigned char key[AUTH_CACHE_KEY_LEN]);

/* Drops (and wipes) every entry and draws a new key, so that no key made
 * before matches an entry made after. Returns how many entries there were. */
size_t auth_cache_clear(struct auth_cache *cache);

size_t auth_cache_count(const struct auth_cache *cache);
uint64_t auth_cache_evictions(const struct auth_cache *cache); /* entries pushed out by capacity */

#endif
