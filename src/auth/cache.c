/*
 * cache: the verified-credential cache (auth/cache.h). One array of entries
 * allocated at creation, a chained hash index over it and a doubly linked
 * LRU list, all by 32-bit index. It must never hold a password, allocate
 * after auth_cache_new, or leave a dropped entry's bytes behind.
 */
#include "auth/cache.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

struct cache_entry {
	unsigned char key[AUTH_CACHE_KEY_LEN];
	struct auth_cache_stamp stamp;
	int64_t expires_ms;
	uint32_t hash_next; /* next entry in the same hash chain, or NONE */
	uint32_t lru_prev;  /* towards the most recently used */
	uint32_t lru_next;  /* towards the least recently used */
};

struct auth_cache {
	unsigned char hash_key[crypto_generichash_KEYBYTES];
	int64_t ttl_ms;
	size_t capacity;
	size_t count;
	uint64_t evictions;
	struct cache_entry *entries;
	uint32_t *buckets; /* bucket_count chain heads */
	size_t bucket_count;
	uint32_t lru_head; /* most recently used */
	uint32_t lru_tail; /* least recently used: the next to go */
	uint32_t free_head;
};

struct auth_cache *auth_cache_new(size_t capacity, int64_t ttl_ms, struct error *err)
{
	struct auth_cache *c;

	if (capacity == 0 || capacity > AUTH_CACHE_ENTRIES_MAX || ttl_ms <= 0) {
		error_set(err, ERROR_USAGE,
			  "credential cache needs 1 to %zu entries and a lifetime",
			  AUTH_CACHE_ENTRIES_MAX);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto oom;
	c->capacity = capacity;
	c->ttl_ms = ttl_ms;
	/* About one entry per bucket when full. */
	c->bucket_count = 1;
	while (c->bucket_count < capacity)
		c->bucket_count <<= 1;
	c->entries = calloc(capacity, sizeof(*c->entries));
	c->buckets = malloc(c->bucket_count * sizeof(*c->buckets));
	if (c->entries == NULL || c->buckets == NULL)
		goto oom;
	for (size_t i = 0; i < c->bucket_count; i++)
		c->buckets[i] = NONE;
	for (size_t i = 0; i < capacity; i++)
		c->entries[i].hash_next = i + 1 < capacity ? (uint32_t) (i + 1) : NONE;
	c->free_head = 0;
	c->lru_head = c->lru_tail = NONE;
	randombytes_buf(c->hash_key, sizeof(c->hash_key));
	return c;
oom:
	auth_cache_free(c);
	error_set(err, ERROR_TEMPORARY, "out of memory for the credential cache");
	return NULL;
}

void auth_cache_free(struct auth_cache *cache)
{
	if (cache == NULL)
		return;
	if (cache->entries != NULL)
		sodium_memzero(cache->entries, cache->capacity * sizeof(*cache->entries));
	free(cache->entries);
	free(cache->buckets);
	sodium_memzero(cache, sizeof(*cache));
	free(cache);
}

void auth_cache_key_make(const struct auth_cache *cache, const char *user, const char *password,
			 size_t password_len, unsigned char key_out[AUTH_CACHE_KEY_LEN])
{
	crypto_generichash_state state;
	size_t user_len = strlen(user);
	unsigned char len_bytes[8];

	/* The user's length first, so that ("ab", "c...") and ("a", "bc...")
	 * can never hash the same input. */
	for (size_t i = 0; i < sizeof(len_bytes); i++)
		len_bytes[i] = (unsigned char) (user_len >> (8 * i));
	crypto_generichash_init(&state, cache->hash_key, sizeof(cache->hash_key),
				AUTH_CACHE_KEY_LEN);
	crypto_generichash_update(&state, len_bytes, sizeof(len_bytes));
	crypto_generichash_update(&state, (const unsigned char *) user, user_len);
	crypto_generichash_update(&state, (const unsigned char *) password, password_len);
	crypto_generichash_final(&state, key_out, AUTH_CACHE_KEY_LEN);
	sodium_memzero(&state, sizeof(state));
}

static void hash_field(crypto_generichash_state *state, const char *field)
{
	size_t len = strlen(field);
	unsigned char len_bytes[8];

	for (size_t i = 0; i < sizeof(len_bytes); i++)
		len_bytes[i] = (unsigned char) (len >> (8 * i));
	crypto_generichash_update(state, len_bytes, sizeof(len_bytes));
	crypto_generichash_update(state, (const unsigned char *) field, len);
}

void auth_cache_stamp_make(const char *secret_argon2id, const char *secret_scram, int64_t changed,
			   struct auth_cache_stamp *stamp_out)
{
	crypto_generichash_state state;

	/* Unkeyed: the secrets are salted hashes already, and a worker thread
	 * makes stamps without touching the cache. */
	crypto_generichash_init(&state, NULL, 0, AUTH_CACHE_HASH_LEN);
	hash_field(&state, secret_argon2id);
	hash_field(&state, secret_scram);
	crypto_generichash_final(&state, stamp_out->secrets_hash, AUTH_CACHE_HASH_LEN);
	stamp_out->changed = changed;
}

bool auth_cache_stamp_eq(const struct auth_cache_stamp *a, const struct auth_cache_stamp *b)
{
	return sodium_memcmp(a->secrets_hash, b->secrets_hash, AUTH_CACHE_HASH_LEN) == 0 &&
	       a->changed == b->changed;
}

static size_t bucket_of(const struct auth_cache *c, const unsigned char key[AUTH_CACHE_KEY_LEN])
{
	uint64_t h;

	/* The key is a keyed hash already: any 8 of its bytes are uniform. */
	memcpy(&h, key, sizeof(h));
	return (size_t) (h & (c->bucket_count - 1));
}

static uint32_t find(const struct auth_cache *c, const unsigned char key[AUTH_CACHE_KEY_LEN])
{
	for (uint32_t i = c->buckets[bucket_of(c, key)]; i != NONE; i = c->entries[i].hash_next)
		if (sodium_memcmp(c->entries[i].key, key, AUTH_CACHE_KEY_LEN) == 0)
			return i;
	return NONE;
}

static void lru_unlink(struct auth_cache *c, uint32_t i)
{
	struct cache_entry *e = &c->entries[i];

	if (e->lru_prev != NONE)
		c->entries[e->lru_prev].lru_next = e->lru_next;
	else
		c->lru_head = e->lru_next;
	if (e->lru_next != NONE)
		c->entries[e->lru_next].lru_prev = e->lru_prev;
	else
		c->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NONE;
}

static void lru_push_front(struct auth_cache *c, uint32_t i)
{
	struct cache_entry *e = &c->entries[i];

	e->lru_prev = NONE;
	e->lru_next = c->lru_head;
	if (c->lru_head != NONE)
		c->entries[c->lru_head].lru_prev = i;
	c->lru_head = i;
	if (c->lru_tail == NONE)
		c->lru_tail = i;
}

static void drop(struct auth_cache *c, uint32_t i)
{
	struct cache_entry *e = &c->entries[i];
	uint32_t *link = &c->buckets[bucket_of(c, e->key)];

	while (*link != i)
		link = &c->entries[*link].hash_next;
	*link = e->hash_next;
	lru_unlink(c, i);
	sodium_memzero(e, sizeof(*e));
	e->hash_next = c->free_head;
	c->free_head = i;
	c->count--;
}

bool auth_cache_lookup(struct auth_cache *cache, const unsigned char key[AUTH_CACHE_KEY_LEN],
		       int64_t now_ms, struct auth_cache_stamp *stamp_out)
{
	uint32_t i = find(cache, key);

	if (i == NONE)
		return false;
	if (now_ms >= cache->entries[i].expires_ms) {
		drop(cache, i);
		return false;
	}
	lru_unlink(cache, i);
	lru_push_front(cache, i);
	*stamp_out = cache->entries[i].stamp;
	return true;
}

void auth_cache_insert(struct auth_cache *cache, const unsigned char key[AUTH_CACHE_KEY_LEN],
		       const struct auth_cache_stamp *stamp, int64_t now_ms)
{
	uint32_t i = find(cache, key);
	size_t bucket;

	if (i != NONE) {
		lru_unlink(cache, i);
	} else {
		if (cache->free_head == NONE) {
			drop(cache, cache->lru_tail);
			cache->evictions++;
		}
		i = cache->free_head;
		cache->free_head = cache->entries[i].hash_next;
		memcpy(cache->entries[i].key, key, AUTH_CACHE_KEY_LEN);
		bucket = bucket_of(cache, key);
		cache->entries[i].hash_next = cache->buckets[bucket];
		cache->buckets[bucket] = i;
		cache->count++;
	}
	cache->entries[i].stamp = *stamp;
	cache->entries[i].expires_ms = now_ms + cache->ttl_ms;
	lru_push_front(cache, i);
}

void auth_cache_remove(struct auth_cache *cache, const unsigned char key[AUTH_CACHE_KEY_LEN])
{
	uint32_t i = find(cache, key);

	if (i != NONE)
		drop(cache, i);
}

size_t auth_cache_clear(struct auth_cache *cache)
{
	size_t count = cache->count;

	while (cache->lru_head != NONE)
		drop(cache, cache->lru_head);
	randombytes_buf(cache->hash_key, sizeof(cache->hash_key));
	return count;
}

size_t auth_cache_count(const struct auth_cache *cache)
{
	return cache->count;
}

uint64_t auth_cache_evictions(const struct auth_cache *cache)
{
	return cache->evictions;
}
