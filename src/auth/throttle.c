/*
 * throttle: the failure tables behind login delays and refusals
 * (auth/throttle.h states the rules). Owns three fixed arrays allocated
 * once; it must never allocate per attempt, read a clock, or hold a
 * password: a wrong password reaches it only as a keyed tag.
 */
#include "auth/throttle.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_KEY_LEN 16
/* A table of more records than this is a configuration mistake. */
#define RECORDS_MAX ((size_t) 1 << 24)

/* Failures per AUTH_THROTTLE_SLOT_MS, for the last AUTH_THROTTLE_SLOTS
 * slots. Slot numbers count from the clock's zero, so every count advances
 * in step and one can be subtracted from another slot by slot. */
struct window_count {
	int64_t head_slot; /* slot number of counts[head_slot % AUTH_THROTTLE_SLOTS] */
	uint16_t counts[AUTH_THROTTLE_SLOTS];
};

/* What every record begins with. */
struct record_head {
	unsigned char key[RECORD_KEY_LEN];
	int64_t last_seen_ms;
	bool is_used;
	struct window_count failures;
};

struct address_record {
	struct record_head head;
	int64_t last_failure_ms;
	bool has_failed; /* last_failure_ms is meaningful */
};

struct account_record {
	struct record_head head;
};

struct pair_record {
	struct record_head head;
	unsigned char tags[AUTH_THROTTLE_TAGS][AUTH_THROTTLE_TAG_LEN];
	uint8_t tag_count;
	uint8_t tag_next; /* ring position of the next tag to overwrite */
};

struct table {
	unsigned char *records; /* bucket_count * AUTH_THROTTLE_WAYS records of record_size */
	size_t record_size;
	size_t bucket_count;
	size_t used;
};

struct auth_throttle {
	unsigned char key[AUTH_THROTTLE_KEY_LEN];
	struct table addresses;
	struct table accounts;
	struct table pairs;
	uint64_t evictions;
	size_t bytes;
};

/* Domain separation for the keyed hashes: an address, an account and a pair
 * never share a key even if their bytes did. */
enum key_domain {
	KEY_ADDRESS_IP = 'A',
	KEY_ADDRESS_TEXT = 'T',
	KEY_ACCOUNT = 'U',
	KEY_PAIR = 'P',
};

static int64_t slot_of(int64_t now_ms)
{
	/* Floor division: a fake clock may start below zero. */
	int64_t q = now_ms / AUTH_THROTTLE_SLOT_MS;

	return (now_ms % AUTH_THROTTLE_SLOT_MS < 0) ? q - 1 : q;
}

static size_t slot_index(int64_t slot)
{
	int64_t i = slot % AUTH_THROTTLE_SLOTS;

	return (size_t) (i < 0 ? i + AUTH_THROTTLE_SLOTS : i);
}

static void window_init(struct window_count *w, int64_t now_ms)
{
	memset(w, 0, sizeof(*w));
	w->head_slot = slot_of(now_ms);
}

/* Moves the window to now, clearing the slots that fell out of it. A clock
 * that went backwards leaves the window where it is. */
static void window_advance(struct window_count *w, int64_t now_ms)
{
	int64_t slot = slot_of(now_ms);

	if (slot <= w->head_slot)
		return;
	if (slot - w->head_slot >= AUTH_THROTTLE_SLOTS) {
		memset(w->counts, 0, sizeof(w->counts));
	} else {
		for (int64_t s = w->head_slot + 1; s <= slot; s++)
			w->counts[slot_index(s)] = 0;
	}
	w->head_slot = slot;
}

static unsigned window_sum(struct window_count *w, int64_t now_ms)
{
	unsigned sum = 0;

	window_advance(w, now_ms);
	for (size_t i = 0; i < AUTH_THROTTLE_SLOTS; i++)
		sum += w->counts[i];
	return sum;
}

static void window_add(struct window_count *w, int64_t now_ms)
{
	uint16_t *count;

	window_advance(w, now_ms);
	count = &w->counts[slot_index(w->head_slot)];
	if (*count < UINT16_MAX)
		(*count)++;
}

/* w -= part, slot by slot, never below zero; both already advanced to the same slot. */
static void window_subtract(struct window_count *w, const struct window_count *part)
{
	for (size_t i = 0; i < AUTH_THROTTLE_SLOTS; i++)
		w->counts[i] = w->counts[i] > part->counts[i] ? w->counts[i] - part->counts[i] : 0;
}

static void keyed_hash(const struct auth_throttle *t, enum key_domain domain, const void *a,
		       size_t a_len, const void *b, size_t b_len, unsigned char out[RECORD_KEY_LEN])
{
	crypto_generichash_state state;
	unsigned char tag = (unsigned char) domain;

	crypto_generichash_init(&state, t->key, sizeof(t->key), RECORD_KEY_LEN);
	crypto_generichash_update(&state, &tag, 1);
	crypto_generichash_update(&state, a, a_len);
	if (b_len > 0)
		crypto_generichash_update(&state, b, b_len);
	crypto_generichash_final(&state, out, RECORD_KEY_LEN);
}

/*
 * An IPv4 address counts alone (offices share one behind NAT, but an
 * attacker rarely has more than a few). An IPv6 client counts by its /64:
 * RFC 4291 2.5.4 gives every subnet 64 interface bits, and one host may
 * pick any of them (RFC 8981 temporary addresses), so one /64 is one
 * customer. IPv4-mapped IPv6 (::ffff:192.0.2.7) is the IPv4 address.
 */
static void address_key(const struct auth_throttle *t, const char *client,
			unsigned char out[RECORD_KEY_LEN])
{
	unsigned char ip[16];
	struct in_addr v4;

	if (inet_pton(AF_INET, client, &v4) == 1) {
		memset(ip, 0, 10);
		ip[10] = 0xff;
		ip[11] = 0xff;
		memcpy(ip + 12, &v4, 4);
	} else if (inet_pton(AF_INET6, client, ip) == 1) {
		if (!IN6_IS_ADDR_V4MAPPED((const struct in6_addr *) ip))
			memset(ip + 8, 0, 8);
	} else {
		keyed_hash(t, KEY_ADDRESS_TEXT, client, strlen(client), NULL, 0, out);
		return;
	}
	keyed_hash(t, KEY_ADDRESS_IP, ip, sizeof(ip), NULL, 0, out);
}

static void account_key(const struct auth_throttle *t, const char *account,
			unsigned char out[RECORD_KEY_LEN])
{
	keyed_hash(t, KEY_ACCOUNT, account, strlen(account), NULL, 0, out);
}

static void pair_key(const struct auth_throttle *t, const unsigned char address[RECORD_KEY_LEN],
		     const unsigned char account[RECORD_KEY_LEN], unsigned char out[RECORD_KEY_LEN])
{
	keyed_hash(t, KEY_PAIR, address, RECORD_KEY_LEN, account, RECORD_KEY_LEN, out);
}

static int table_init(struct table *tab, size_t records, size_t record_size, size_t *bytes,
		      struct error *err)
{
	size_t buckets = (records + AUTH_THROTTLE_WAYS - 1) / AUTH_THROTTLE_WAYS;

	if (records > RECORDS_MAX)
		return error_set(err, ERROR_USAGE, "throttle table of %zu records is too large",
				 records);
	tab->record_size = record_size;
	tab->bucket_count = buckets;
	tab->used = 0;
	tab->records = calloc(buckets * AUTH_THROTTLE_WAYS, record_size);
	if (tab->records == NULL)
		return error_set(err, ERROR_TEMPORARY, "out of memory for the throttle tables");
	*bytes += buckets * AUTH_THROTTLE_WAYS * record_size;
	return 0;
}

static void table_clear(struct table *tab)
{
	if (tab->records != NULL)
		sodium_memzero(tab->records,
			       tab->bucket_count * AUTH_THROTTLE_WAYS * tab->record_size);
	free(tab->records);
	tab->records = NULL;
}

/*
 * The record for key, or NULL. With create, a missing key takes a free
 * record of its bucket or, when the bucket is full, the one seen least
 * recently, and starts with no failures.
 */
static void *table_find(struct auth_throttle *t, struct table *tab,
			const unsigned char key[RECORD_KEY_LEN], int64_t now_ms, bool create)
{
	uint64_t h;
	unsigned char *bucket;
	struct record_head *victim = NULL;

	memcpy(&h, key, sizeof(h));
	bucket = tab->records +
		 (size_t) (h % tab->bucket_count) * AUTH_THROTTLE_WAYS * tab->record_size;
	for (size_t i = 0; i < AUTH_THROTTLE_WAYS; i++) {
		struct record_head *r = (struct record_head *) (bucket + i * tab->record_size);

		if (r->is_used && memcmp(r->key, key, RECORD_KEY_LEN) == 0) {
			if (create)
				r->last_seen_ms = now_ms;
			return r;
		}
		if (victim == NULL || (victim->is_used && !r->is_used) ||
		    (victim->is_used && r->is_used && r->last_seen_ms < victim->last_seen_ms))
			victim = r;
	}
	if (!create)
		return NULL;
	if (victim->is_used)
		t->evictions++;
	else
		tab->used++;
	memset(victim, 0, tab->record_size);
	memcpy(victim->key, key, RECORD_KEY_LEN);
	victim->is_used = true;
	victim->last_seen_ms = now_ms;
	window_init(&victim->failures, now_ms);
	return victim;
}

static struct address_record *address_find(struct auth_throttle *t,
					   const unsigned char key[RECORD_KEY_LEN], int64_t now_ms,
					   bool create)
{
	return table_find(t, &t->addresses, key, now_ms, create);
}

static struct account_record *account_find(struct auth_throttle *t,
					   const unsigned char key[RECORD_KEY_LEN], int64_t now_ms,
					   bool create)
{
	return table_find(t, &t->accounts, key, now_ms, create);
}

static struct pair_record *pair_find(struct auth_throttle *t,
				     const unsigned char key[RECORD_KEY_LEN], int64_t now_ms,
				     bool create)
{
	return table_find(t, &t->pairs, key, now_ms, create);
}

struct auth_throttle *auth_throttle_new(const struct auth_throttle_params *params,
					struct error *err)
{
	struct auth_throttle *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		error_set(err, ERROR_TEMPORARY, "out of memory for the throttle tables");
		return NULL;
	}
	memcpy(t->key, params->key, sizeof(t->key));
	t->bytes = sizeof(*t);
	if (table_init(&t->addresses,
		       params->address_records ? params->address_records
					       : AUTH_THROTTLE_ADDRESS_RECORDS,
		       sizeof(struct address_record), &t->bytes, err) < 0 ||
	    table_init(&t->accounts,
		       params->account_records ? params->account_records
					       : AUTH_THROTTLE_ACCOUNT_RECORDS,
		       sizeof(struct account_record), &t->bytes, err) < 0 ||
	    table_init(&t->pairs,
		       params->pair_records ? params->pair_records : AUTH_THROTTLE_PAIR_RECORDS,
		       sizeof(struct pair_record), &t->bytes, err) < 0) {
		auth_throttle_free(t);
		return NULL;
	}
	return t;
}

void auth_throttle_free(struct auth_throttle *throttle)
{
	if (throttle == NULL)
		return;
	table_clear(&throttle->addresses);
	table_clear(&throttle->accounts);
	table_clear(&throttle->pairs);
	sodium_memzero(throttle, sizeof(*throttle));
	free(throttle);
}

/* 0 up to `free` failures, then 1 s, 2 s, 4 s, ... up to the maximum. */
static uint32_t backoff_ms(unsigned failures, unsigned free_failures)
{
	unsigned step;
	uint32_t delay;

	if (failures <= free_failures)
		return 0;
	step = failures - free_failures - 1;
	if (step >= 16)
		return AUTH_THROTTLE_DELAY_MAX_MS;
	delay = (uint32_t) AUTH_THROTTLE_DELAY_FIRST_MS << step;
	return delay < AUTH_THROTTLE_DELAY_MAX_MS ? delay : AUTH_THROTTLE_DELAY_MAX_MS;
}

static bool is_dirty(const struct address_record *a, int64_t now_ms)
{
	return a != NULL && a->has_failed && now_ms - a->last_failure_ms < AUTH_THROTTLE_DIRTY_MS;
}

enum auth_throttle_verdict auth_throttle_check(struct auth_throttle *throttle, int64_t now_ms,
					       const char *client, const char *account)
{
	unsigned char akey[RECORD_KEY_LEN], ukey[RECORD_KEY_LEN];
	struct address_record *a;
	struct account_record *u;

	address_key(throttle, client, akey);
	a = address_find(throttle, akey, now_ms, false);
	if (a != NULL && window_sum(&a->head.failures, now_ms) >= AUTH_THROTTLE_ADDRESS_REFUSE)
		return AUTH_THROTTLE_REFUSE;
	if (account == NULL || !is_dirty(a, now_ms))
		return AUTH_THROTTLE_ALLOW;
	account_key(throttle, account, ukey);
	u = account_find(throttle, ukey, now_ms, false);
	if (u != NULL && window_sum(&u->head.failures, now_ms) >= AUTH_THROTTLE_ACCOUNT_REFUSE)
		return AUTH_THROTTLE_REFUSE;
	return AUTH_THROTTLE_ALLOW;
}

static bool tag_is_known(const struct pair_record *p, const unsigned char *tag)
{
	for (size_t i = 0; i < p->tag_count; i++)
		if (sodium_memcmp(p->tags[i], tag, AUTH_THROTTLE_TAG_LEN) == 0)
			return true;
	return false;
}

static void tag_remember(struct pair_record *p, const unsigned char *tag)
{
	memcpy(p->tags[p->tag_next], tag, AUTH_THROTTLE_TAG_LEN);
	p->tag_next = (uint8_t) ((p->tag_next + 1) % AUTH_THROTTLE_TAGS);
	if (p->tag_count < AUTH_THROTTLE_TAGS)
		p->tag_count++;
}

struct auth_throttle_outcome auth_throttle_failure(struct auth_throttle *throttle, int64_t now_ms,
						   const char *client, const char *account,
						   const unsigned char *tag)
{
	struct auth_throttle_outcome outcome = { 0, false };
	unsigned char akey[RECORD_KEY_LEN], ukey[RECORD_KEY_LEN], pkey[RECORD_KEY_LEN];
	struct address_record *a;
	struct account_record *u = NULL;
	struct pair_record *p = NULL;
	bool was_dirty;
	uint32_t account_delay;

	address_key(throttle, client, akey);
	a = address_find(throttle, akey, now_ms, true);
	/* Whether the address had failed before this attempt: the owner's
	 * first typo from a clean address is not held back for the account. */
	was_dirty = is_dirty(a, now_ms);
	if (account != NULL) {
		account_key(throttle, account, ukey);
		pair_key(throttle, akey, ukey, pkey);
		u = account_find(throttle, ukey, now_ms, true);
		p = pair_find(throttle, pkey, now_ms, true);
	}
	if (p != NULL && tag != NULL && tag_is_known(p, tag)) {
		/* A phone still trying the old password every few minutes. */
		outcome.is_repeat = true;
	} else {
		window_add(&a->head.failures, now_ms);
		a->has_failed = true;
		a->last_failure_ms = now_ms;
		if (u != NULL)
			window_add(&u->head.failures, now_ms);
		if (p != NULL) {
			window_add(&p->head.failures, now_ms);
			if (tag != NULL)
				tag_remember(p, tag);
		}
	}
	outcome.delay_ms =
		backoff_ms(window_sum(&a->head.failures, now_ms), AUTH_THROTTLE_ADDRESS_FREE);
	if (u != NULL && was_dirty) {
		account_delay = backoff_ms(window_sum(&u->head.failures, now_ms),
					   AUTH_THROTTLE_ACCOUNT_FREE);
		if (account_delay > outcome.delay_ms)
			outcome.delay_ms = account_delay;
	}
	return outcome;
}

void auth_throttle_success(struct auth_throttle *throttle, int64_t now_ms, const char *client,
			   const char *account)
{
	unsigned char akey[RECORD_KEY_LEN], ukey[RECORD_KEY_LEN], pkey[RECORD_KEY_LEN];
	struct address_record *a;
	struct account_record *u;
	struct pair_record *p;

	address_key(throttle, client, akey);
	a = address_find(throttle, akey, now_ms, false);
	if (account == NULL || a == NULL)
		return;
	account_key(throttle, account, ukey);
	pair_key(throttle, akey, ukey, pkey);
	p = pair_find(throttle, pkey, now_ms, false);
	if (p == NULL)
		return;
	u = account_find(throttle, ukey, now_ms, false);
	/* All three advanced to the same slot, then the pair's share taken
	 * out. The pair keeps its wrong-password tags: a phone with the old
	 * password behind the same address still counts once, not again. */
	window_advance(&p->head.failures, now_ms);
	window_advance(&a->head.failures, now_ms);
	window_subtract(&a->head.failures, &p->head.failures);
	if (u != NULL) {
		window_advance(&u->head.failures, now_ms);
		window_subtract(&u->head.failures, &p->head.failures);
	}
	memset(p->head.failures.counts, 0, sizeof(p->head.failures.counts));
	if (window_sum(&a->head.failures, now_ms) == 0)
		a->has_failed = false;
}

unsigned auth_throttle_address_failures(struct auth_throttle *throttle, int64_t now_ms,
					const char *client)
{
	unsigned char akey[RECORD_KEY_LEN];
	struct address_record *a;

	address_key(throttle, client, akey);
	a = address_find(throttle, akey, now_ms, false);
	return a != NULL ? window_sum(&a->head.failures, now_ms) : 0;
}

unsigned auth_throttle_account_failures(struct auth_throttle *throttle, int64_t now_ms,
					const char *account)
{
	unsigned char ukey[RECORD_KEY_LEN];
	struct account_record *u;

	account_key(throttle, account, ukey);
	u = account_find(throttle, ukey, now_ms, false);
	return u != NULL ? window_sum(&u->head.failures, now_ms) : 0;
}

size_t auth_throttle_throttled_clients(struct auth_throttle *throttle, int64_t now_ms)
{
	struct table *tab = &throttle->addresses;
	size_t count = 0;

	for (size_t i = 0; i < tab->bucket_count * AUTH_THROTTLE_WAYS; i++) {
		struct address_record *a =
			(struct address_record *) (tab->records + i * tab->record_size);

		if (a->head.is_used &&
		    window_sum(&a->head.failures, now_ms) > AUTH_THROTTLE_ADDRESS_FREE)
			count++;
	}
	return count;
}

void auth_throttle_usage_get(const struct auth_throttle *throttle,
			     struct auth_throttle_usage *usage_out)
{
	usage_out->address_used = throttle->addresses.used;
	usage_out->address_records = throttle->addresses.bucket_count * AUTH_THROTTLE_WAYS;
	usage_out->account_used = throttle->accounts.used;
	usage_out->account_records = throttle->accounts.bucket_count * AUTH_THROTTLE_WAYS;
	usage_out->pair_used = throttle->pairs.used;
	usage_out->pair_records = throttle->pairs.bucket_count * AUTH_THROTTLE_WAYS;
	usage_out->evictions = throttle->evictions;
	usage_out->bytes = throttle->bytes;
}
