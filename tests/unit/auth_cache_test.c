/* Tests for src/auth/cache.c: keys that separate users and passwords, stamps
 * that change with the secrets or the changed time, expiry, LRU eviction at
 * capacity, replacement and removal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "auth/cache.h"
#include "core/span.h"

#define T0 ((int64_t) 5000000)

static struct auth_cache *cache_make(size_t capacity, int64_t ttl_ms)
{
	struct error err;
	struct auth_cache *c = auth_cache_new(capacity, ttl_ms, &err);

	assert_non_null(c);
	return c;
}

static void key_of(const struct auth_cache *c, const char *user, const char *password,
		   unsigned char key[AUTH_CACHE_KEY_LEN])
{
	auth_cache_key_make(c, user, password, strlen(password), key);
}

static const struct key_case {
	const char *name;
	const char *user_a, *password_a, *user_b, *password_b;
	bool is_same;
} key_cases[] = {
	{ "same user and password", "alice@example.test", "secret", "alice@example.test", "secret",
	  true },
	{ "other password", "alice@example.test", "secret", "alice@example.test", "secreT", false },
	{ "other user", "alice@example.test", "secret", "bob@example.test", "secret", false },
	{ "boundary moved", "a@example.tes", "tsecret", "a@example.test", "secret", false },
	{ "empty password", "alice@example.test", "", "alice@example.test", "", true },
};

static void test_keys(void **state)
{
	struct auth_cache *c = cache_make(16, 1000);
	struct auth_cache *other = cache_make(16, 1000);

	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(key_cases); i++) {
		const struct key_case *k = &key_cases[i];
		unsigned char a[AUTH_CACHE_KEY_LEN], b[AUTH_CACHE_KEY_LEN];

		print_message("case: %s\n", k->name);
		key_of(c, k->user_a, k->password_a, a);
		key_of(c, k->user_b, k->password_b, b);
		assert_int_equal(memcmp(a, b, sizeof(a)) == 0, k->is_same);
	}
	{
		/* Keyed per process (per cache): another key, another hash. */
		unsigned char a[AUTH_CACHE_KEY_LEN], b[AUTH_CACHE_KEY_LEN];

		key_of(c, "alice@example.test", "secret", a);
		key_of(other, "alice@example.test", "secret", b);
		assert_memory_not_equal(a, b, sizeof(a));
	}
	auth_cache_free(c);
	auth_cache_free(other);
}

static void test_stamps(void **state)
{
	struct auth_cache_stamp base, s;

	(void) state;
	auth_cache_stamp_make("{ARGON2ID}$argon2id$a", "{SCRAM-SHA-256}x", 100, &base);
	auth_cache_stamp_make("{ARGON2ID}$argon2id$a", "{SCRAM-SHA-256}x", 100, &s);
	assert_true(auth_cache_stamp_eq(&base, &s));
	auth_cache_stamp_make("{ARGON2ID}$argon2id$b", "{SCRAM-SHA-256}x", 100, &s);
	assert_false(auth_cache_stamp_eq(&base, &s));
	auth_cache_stamp_make("{ARGON2ID}$argon2id$a", "{SCRAM-SHA-256}y", 100, &s);
	assert_false(auth_cache_stamp_eq(&base, &s));
	auth_cache_stamp_make("{ARGON2ID}$argon2id$a", "{SCRAM-SHA-256}x", 101, &s);
	assert_false(auth_cache_stamp_eq(&base, &s));
	/* Field boundaries count: "ab"+"c" is not "a"+"bc". */
	auth_cache_stamp_make("ab", "c", 1, &base);
	auth_cache_stamp_make("a", "bc", 1, &s);
	assert_false(auth_cache_stamp_eq(&base, &s));
}

static void test_lookup_insert_expire(void **state)
{
	struct auth_cache *c = cache_make(16, 1000);
	unsigned char key[AUTH_CACHE_KEY_LEN];
	struct auth_cache_stamp stamp, got;

	(void) state;
	key_of(c, "alice@example.test", "secret", key);
	auth_cache_stamp_make("{ARGON2ID}x", "", 7, &stamp);
	assert_false(auth_cache_lookup(c, key, T0, &got));
	auth_cache_insert(c, key, &stamp, T0);
	assert_int_equal(auth_cache_count(c), 1);
	assert_true(auth_cache_lookup(c, key, T0 + 999, &got));
	assert_true(auth_cache_stamp_eq(&got, &stamp));
	/* At the TTL it is gone, and dropped. */
	assert_false(auth_cache_lookup(c, key, T0 + 1000, &got));
	assert_int_equal(auth_cache_count(c), 0);

	/* Insert again replaces and restarts the lifetime. */
	auth_cache_insert(c, key, &stamp, T0);
	auth_cache_stamp_make("{ARGON2ID}y", "", 8, &stamp);
	auth_cache_insert(c, key, &stamp, T0 + 500);
	assert_int_equal(auth_cache_count(c), 1);
	assert_true(auth_cache_lookup(c, key, T0 + 1400, &got));
	assert_int_equal(got.changed, 8);

	auth_cache_remove(c, key);
	assert_false(auth_cache_lookup(c, key, T0 + 1400, &got));
	assert_int_equal(auth_cache_count(c), 0);
	auth_cache_remove(c, key); /* absent: nothing */
	auth_cache_free(c);
}

/* A reload empties the cache and changes the key: nothing made before matches. */
static void test_clear(void **state)
{
	struct auth_cache *c = cache_make(16, 1000000);
	unsigned char key[3][AUTH_CACHE_KEY_LEN], again[AUTH_CACHE_KEY_LEN];
	struct auth_cache_stamp stamp, got;
	const char *users[3] = { "alice@example.test", "bob@example.test", "carol@example.test" };

	(void) state;
	auth_cache_stamp_make("{ARGON2ID}x", "", 7, &stamp);
	for (int i = 0; i < 3; i++) {
		key_of(c, users[i], "secret", key[i]);
		auth_cache_insert(c, key[i], &stamp, T0);
	}
	assert_int_equal(auth_cache_clear(c), 3);
	assert_int_equal(auth_cache_count(c), 0);
	for (int i = 0; i < 3; i++)
		assert_false(auth_cache_lookup(c, key[i], T0 + 1, &got));
	key_of(c, users[0], "secret", again);
	assert_memory_not_equal(again, key[0], AUTH_CACHE_KEY_LEN);
	/* Still a working cache, of the same capacity. */
	for (int i = 0; i < 16; i++) {
		again[0] = (unsigned char) i;
		auth_cache_insert(c, again, &stamp, T0);
	}
	assert_int_equal(auth_cache_count(c), 16);
	assert_int_equal(auth_cache_evictions(c), 0);
	assert_int_equal(auth_cache_clear(c), 16);
	assert_int_equal(auth_cache_clear(c), 0);
	auth_cache_free(c);
}

static void test_lru_eviction(void **state)
{
	struct auth_cache *c = cache_make(4, 1000000);
	unsigned char keys[6][AUTH_CACHE_KEY_LEN];
	struct auth_cache_stamp stamp, got;
	char user[32];

	(void) state;
	auth_cache_stamp_make("{ARGON2ID}x", "", 1, &stamp);
	for (int i = 0; i < 6; i++) {
		snprintf(user, sizeof(user), "u%d@example.test", i);
		key_of(c, user, "pw", keys[i]);
	}
	for (int i = 0; i < 4; i++)
		auth_cache_insert(c, keys[i], &stamp, T0 + i);
	/* Touch 0 so that 1 is the least recently used. */
	assert_true(auth_cache_lookup(c, keys[0], T0 + 10, &got));
	auth_cache_insert(c, keys[4], &stamp, T0 + 11);
	assert_int_equal(auth_cache_count(c), 4);
	assert_int_equal(auth_cache_evictions(c), 1);
	assert_false(auth_cache_lookup(c, keys[1], T0 + 12, &got));
	assert_true(auth_cache_lookup(c, keys[0], T0 + 12, &got));
	assert_true(auth_cache_lookup(c, keys[2], T0 + 12, &got));
	assert_true(auth_cache_lookup(c, keys[3], T0 + 12, &got));
	assert_true(auth_cache_lookup(c, keys[4], T0 + 12, &got));
	/* Next out is 0 (touched before 2, 3, 4). */
	auth_cache_insert(c, keys[5], &stamp, T0 + 13);
	assert_false(auth_cache_lookup(c, keys[0], T0 + 14, &got));
	assert_int_equal(auth_cache_count(c), 4);
	auth_cache_free(c);
}

static void test_many_entries_stay_bounded(void **state)
{
	struct auth_cache *c = cache_make(AUTH_CACHE_ENTRIES, AUTH_CACHE_TTL_MS);
	unsigned char key[AUTH_CACHE_KEY_LEN];
	struct auth_cache_stamp stamp, got;
	char user[32];

	(void) state;
	auth_cache_stamp_make("{ARGON2ID}x", "", 1, &stamp);
	for (int i = 0; i < 3 * AUTH_CACHE_ENTRIES; i++) {
		snprintf(user, sizeof(user), "u%d@example.test", i);
		key_of(c, user, "pw", key);
		auth_cache_insert(c, key, &stamp, T0);
		/* Remove every seventh to mix free-list reuse with eviction. */
		if (i % 7 == 0)
			auth_cache_remove(c, key);
	}
	assert_true(auth_cache_count(c) <= AUTH_CACHE_ENTRIES);
	assert_true(auth_cache_evictions(c) > 0);
	/* The last one is there; the first is not. */
	assert_true(auth_cache_lookup(c, key, T0 + 1, &got));
	key_of(c, "u1@example.test", "pw", key);
	assert_false(auth_cache_lookup(c, key, T0 + 1, &got));
	auth_cache_free(c);
}

static void test_bad_parameters(void **state)
{
	struct error err;

	(void) state;
	assert_null(auth_cache_new(0, 1000, &err));
	assert_int_equal(err.kind, ERROR_USAGE);
	assert_null(auth_cache_new(AUTH_CACHE_ENTRIES_MAX + 1, 1000, &err));
	assert_null(auth_cache_new(10, 0, &err));
	auth_cache_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_stamps),
		cmocka_unit_test(test_lookup_insert_expire),
		cmocka_unit_test(test_clear),
		cmocka_unit_test(test_lru_eviction),
		cmocka_unit_test(test_many_entries_stay_bounded),
		cmocka_unit_test(test_bad_parameters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
