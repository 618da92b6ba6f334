/* Tests for src/auth/throttle.c with a fake clock: delays that grow with an
 * address's failures, refusal at the limit and its expiry, repeated wrong
 * passwords counted once, offices behind NAT and clients with many
 * accounts, the owner on a clean address during a distributed attack,
 * IPv6 /64 grouping, and tables that stay within their size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "auth/throttle.h"
#include "core/span.h"

#define T0	  ((int64_t) 1000000000) /* an arbitrary monotonic start */
#define MINUTE_MS ((int64_t) 60 * 1000)

static struct auth_throttle *throttle_make(size_t records)
{
	struct auth_throttle_params p;
	struct error err;
	struct auth_throttle *t;

	memset(&p, 0, sizeof(p));
	memset(p.key, 0x5a, sizeof(p.key));
	p.address_records = records;
	p.account_records = records;
	p.pair_records = records;
	t = auth_throttle_new(&p, &err);
	assert_non_null(t);
	return t;
}

/* A distinct wrong-password tag per n. */
static const unsigned char *tag_of(unsigned n)
{
	static unsigned char tag[AUTH_THROTTLE_TAG_LEN];

	memset(tag, 0, sizeof(tag));
	memcpy(tag, &n, sizeof(n));
	tag[7] = 0x77;
	return tag;
}

/* The reply to the n-th failure from one address (1-based) within the window. */
static const struct delay_case {
	const char *name;
	unsigned failure;
	uint32_t want_delay_ms;
} delay_cases[] = {
	{ "first failure answered at once", 1, 0 },
	{ "second failure answered at once", 2, 0 },
	{ "third failure answered at once", 3, 0 },
	{ "fourth waits 1 s", 4, 1000 },
	{ "fifth waits 2 s", 5, 2000 },
	{ "sixth waits 4 s", 6, 4000 },
	{ "seventh waits 8 s", 7, 8000 },
	{ "eighth is capped at 15 s", 8, 15000 },
	{ "twentieth stays at 15 s", 20, 15000 },
	{ "twenty-ninth stays at 15 s", 29, 15000 },
};

static void test_escalation(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(delay_cases); i++) {
		const struct delay_case *c = &delay_cases[i];
		struct auth_throttle *t = throttle_make(0);
		struct auth_throttle_outcome out = { 0, false };

		print_message("case: %s\n", c->name);
		for (unsigned n = 1; n <= c->failure; n++) {
			assert_int_equal(
				auth_throttle_check(t, T0 + n, "192.0.2.7", "alice@example.test"),
				AUTH_THROTTLE_ALLOW);
			out = auth_throttle_failure(t, T0 + n, "192.0.2.7", "alice@example.test",
						    tag_of(n));
		}
		assert_false(out.is_repeat);
		assert_int_equal(out.delay_ms, c->want_delay_ms);
		assert_int_equal(auth_throttle_address_failures(t, T0 + c->failure, "192.0.2.7"),
				 c->failure);
		auth_throttle_free(t);
	}
}

static void test_refusal_limit_is_exact(void **state)
{
	struct auth_throttle *t = throttle_make(0);
	unsigned n;

	(void) state;
	for (n = 1; n < AUTH_THROTTLE_ADDRESS_REFUSE; n++)
		auth_throttle_failure(t, T0, "192.0.2.7", "alice@example.test", tag_of(n));
	/* 29 failures: still checked. */
	assert_int_equal(auth_throttle_check(t, T0, "192.0.2.7", "alice@example.test"),
			 AUTH_THROTTLE_ALLOW);
	auth_throttle_failure(t, T0, "192.0.2.7", "alice@example.test", tag_of(n));
	/* 30: refused, for any account, malformed names included. */
	assert_int_equal(auth_throttle_check(t, T0, "192.0.2.7", "alice@example.test"),
			 AUTH_THROTTLE_REFUSE);
	assert_int_equal(auth_throttle_check(t, T0, "192.0.2.7", "bob@example.test"),
			 AUTH_THROTTLE_REFUSE);
	assert_int_equal(auth_throttle_check(t, T0, "192.0.2.7", NULL), AUTH_THROTTLE_REFUSE);
	/* Another address is untouched. */
	assert_int_equal(auth_throttle_check(t, T0, "192.0.2.8", "alice@example.test"),
			 AUTH_THROTTLE_ALLOW);
	auth_throttle_free(t);
}

static void test_decay(void **state)
{
	struct auth_throttle *t = throttle_make(0);
	struct auth_throttle_outcome out;

	(void) state;
	/* 30 failures at the very start of a minute slot. */
	int64_t start = (T0 / MINUTE_MS) * MINUTE_MS;

	for (unsigned n = 1; n <= AUTH_THROTTLE_ADDRESS_REFUSE; n++)
		auth_throttle_failure(t, start, "192.0.2.7", "alice@example.test", tag_of(n));
	assert_int_equal(auth_throttle_check(t, start + 9 * MINUTE_MS, "192.0.2.7", NULL),
			 AUTH_THROTTLE_REFUSE);
	assert_int_equal(auth_throttle_check(t, start + 10 * MINUTE_MS - 1, "192.0.2.7", NULL),
			 AUTH_THROTTLE_REFUSE);
	/* Ten minutes on, the slot has left the window: refusal over, count 0. */
	assert_int_equal(auth_throttle_check(t, start + 10 * MINUTE_MS, "192.0.2.7", NULL),
			 AUTH_THROTTLE_ALLOW);
	assert_int_equal(auth_throttle_address_failures(t, start + 10 * MINUTE_MS, "192.0.2.7"), 0);
	/* And the next failure is answered at once again. */
	out = auth_throttle_failure(t, start + 10 * MINUTE_MS, "192.0.2.7", "alice@example.test",
				    tag_of(100));
	assert_int_equal(out.delay_ms, 0);

	/* Failures spread over minutes leave one minute at a time. */
	auth_throttle_free(t);
	t = throttle_make(0);
	for (int64_t m = 0; m < 5; m++)
		auth_throttle_failure(t, start + m * MINUTE_MS, "192.0.2.9", "bob@example.test",
				      tag_of((unsigned) m));
	assert_int_equal(auth_throttle_address_failures(t, start + 5 * MINUTE_MS, "192.0.2.9"), 5);
	assert_int_equal(auth_throttle_address_failures(t, start + 10 * MINUTE_MS, "192.0.2.9"), 4);
	assert_int_equal(auth_throttle_address_failures(t, start + 12 * MINUTE_MS, "192.0.2.9"), 2);
	assert_int_equal(auth_throttle_address_failures(t, start + 60 * MINUTE_MS, "192.0.2.9"), 0);
	auth_throttle_free(t);
}

static void test_repeated_password_counts_once(void **state)
{
	struct auth_throttle *t = throttle_make(0);
	struct auth_throttle_outcome out;

	(void) state;
	/* A phone retrying the old password every 2 minutes for an hour. */
	for (int64_t m = 0; m < 60; m += 2) {
		out = auth_throttle_failure(t, T0 + m * MINUTE_MS, "198.51.100.20",
					    "carol@example.test", tag_of(7));
		assert_int_equal(out.is_repeat, m != 0);
		assert_int_equal(out.delay_ms, 0);
		assert_int_equal(auth_throttle_check(t, T0 + m * MINUTE_MS, "198.51.100.20",
						     "carol@example.test"),
				 AUTH_THROTTLE_ALLOW);
		/* Counted once, and gone once it has left the window. */
		assert_int_equal(
			auth_throttle_address_failures(t, T0 + m * MINUTE_MS, "198.51.100.20"),
			m < 10 ? 1 : 0);
		assert_int_equal(
			auth_throttle_account_failures(t, T0 + m * MINUTE_MS, "carol@example.test"),
			m < 10 ? 1 : 0);
	}

	/* Four remembered per pair: A B C D are known, E pushes A out. */
	auth_throttle_free(t);
	t = throttle_make(0);
	for (unsigned n = 1; n <= AUTH_THROTTLE_TAGS; n++)
		assert_false(
			auth_throttle_failure(t, T0, "192.0.2.7", "dave@example.test", tag_of(n))
				.is_repeat);
	for (unsigned n = 1; n <= AUTH_THROTTLE_TAGS; n++)
		assert_true(
			auth_throttle_failure(t, T0, "192.0.2.7", "dave@example.test", tag_of(n))
				.is_repeat);
	assert_false(auth_throttle_failure(t, T0, "192.0.2.7", "dave@example.test",
					   tag_of(AUTH_THROTTLE_TAGS + 1))
			     .is_repeat);
	assert_false(auth_throttle_failure(t, T0, "192.0.2.7", "dave@example.test", tag_of(1))
			     .is_repeat);
	/* The same tag on another account is not a repeat there. */
	assert_false(auth_throttle_failure(t, T0, "192.0.2.7", "erin@example.test", tag_of(2))
			     .is_repeat);
	/* Without a tag (a SCRAM proof) every failure counts. */
	assert_false(
		auth_throttle_failure(t, T0, "192.0.2.7", "dave@example.test", NULL).is_repeat);
	assert_int_equal(auth_throttle_address_failures(t, T0, "192.0.2.7"),
			 AUTH_THROTTLE_TAGS + 4);
	auth_throttle_free(t);
}

static void test_nat_office_and_many_accounts(void **state)
{
	struct auth_throttle *t = throttle_make(0);
	char account[64];

	(void) state;
	/* 25 colleagues behind one address each mistype once, then log in. */
	for (unsigned u = 0; u < 25; u++) {
		snprintf(account, sizeof(account), "user%u@example.test", u);
		assert_int_equal(auth_throttle_check(t, T0 + u, "203.0.113.1", account),
				 AUTH_THROTTLE_ALLOW);
		auth_throttle_failure(t, T0 + u, "203.0.113.1", account, tag_of(u));
	}
	assert_int_equal(auth_throttle_address_failures(t, T0 + 25, "203.0.113.1"), 25);
	for (unsigned u = 0; u < 25; u++) {
		snprintf(account, sizeof(account), "user%u@example.test", u);
		assert_int_equal(auth_throttle_check(t, T0 + 30, "203.0.113.1", account),
				 AUTH_THROTTLE_ALLOW);
		auth_throttle_success(t, T0 + 30, "203.0.113.1", account);
	}
	/* Each success took back that colleague's failure. */
	assert_int_equal(auth_throttle_address_failures(t, T0 + 30, "203.0.113.1"), 0);

	/* One client with 12 accounts after a password change: every account
	 * retries its old password 10 times. 12 failures, not 120. */
	for (unsigned round = 0; round < 10; round++) {
		for (unsigned u = 0; u < 12; u++) {
			snprintf(account, sizeof(account), "box%u@example.test", u);
			assert_int_equal(
				auth_throttle_check(t, T0 + 100 + round, "192.0.2.50", account),
				AUTH_THROTTLE_ALLOW);
			auth_throttle_failure(t, T0 + 100 + round, "192.0.2.50", account,
					      tag_of(1000 + u));
		}
	}
	assert_int_equal(auth_throttle_address_failures(t, T0 + 200, "192.0.2.50"), 12);
	auth_throttle_free(t);
}

static void test_distributed_attack_spares_the_clean_owner(void **state)
{
	struct auth_throttle *t = throttle_make(0);
	struct auth_throttle_outcome out;
	char client[64];
	unsigned a;

	(void) state;
	/* 200 addresses guess alice's password once each. */
	for (a = 0; a < 200; a++) {
		snprintf(client, sizeof(client), "10.0.%u.%u", a / 250, a % 250 + 1);
		assert_int_equal(auth_throttle_check(t, T0 + a, client, "alice@example.test"),
				 AUTH_THROTTLE_ALLOW);
		out = auth_throttle_failure(t, T0 + a, client, "alice@example.test", tag_of(a));
		/* The first failure of a clean address is never held back. */
		assert_int_equal(out.delay_ms, 0);
	}
	assert_int_equal(auth_throttle_account_failures(t, T0 + 200, "alice@example.test"), 200);

	/* Each of them, having failed, is refused on that account... */
	assert_int_equal(auth_throttle_check(t, T0 + 300, "10.0.0.1", "alice@example.test"),
			 AUTH_THROTTLE_REFUSE);
	/* ...but not on another account. */
	assert_int_equal(auth_throttle_check(t, T0 + 300, "10.0.0.1", "bob@example.test"),
			 AUTH_THROTTLE_ALLOW);
	/* The owner from a clean address: checked, and a typo answered at once. */
	assert_int_equal(auth_throttle_check(t, T0 + 300, "198.51.100.1", "alice@example.test"),
			 AUTH_THROTTLE_ALLOW);
	out = auth_throttle_failure(t, T0 + 300, "198.51.100.1", "alice@example.test",
				    tag_of(9999));
	assert_int_equal(out.delay_ms, 0);
	/* A clean address that has never failed stays allowed however long
	 * the attack lasts. */
	for (int64_t m = 0; m < 50; m++) {
		assert_int_equal(auth_throttle_check(t, T0 + m * MINUTE_MS, "198.51.100.2",
						     "alice@example.test"),
				 AUTH_THROTTLE_ALLOW);
		snprintf(client, sizeof(client), "10.1.%u.1", (unsigned) m);
		auth_throttle_failure(t, T0 + m * MINUTE_MS, client, "alice@example.test",
				      tag_of(5000 + (unsigned) m));
	}
	auth_throttle_free(t);
}

static void test_account_slows_dirty_addresses(void **state)
{
	struct auth_throttle *t = throttle_make(0);
	struct auth_throttle_outcome out;
	char client[64];

	(void) state;
	/* An address fails once on bob's account (on its own it would be
	 * answered at once for two more failures). */
	auth_throttle_failure(t, T0, "192.0.2.99", "bob@example.test", tag_of(1));
	/* Then 10 other addresses fail on bob's account: 11 in the window. */
	for (unsigned a = 0; a < 10; a++) {
		snprintf(client, sizeof(client), "10.2.0.%u", a + 1);
		auth_throttle_failure(t, T0 + 1, client, "bob@example.test", tag_of(a + 10));
	}
	/* The dirty address's next failure: 12 on the account, 2 past the free 10. */
	out = auth_throttle_failure(t, T0 + 2, "192.0.2.99", "bob@example.test", tag_of(2));
	assert_int_equal(out.delay_ms, 2000);
	auth_throttle_free(t);
}

static void test_success_resets_only_its_pair(void **state)
{
	struct auth_throttle *t = throttle_make(0);
	struct auth_throttle_outcome out;

	(void) state;
	for (unsigned n = 1; n <= 5; n++)
		auth_throttle_failure(t, T0, "192.0.2.7", "alice@example.test", tag_of(n));
	for (unsigned n = 1; n <= 2; n++)
		auth_throttle_failure(t, T0, "192.0.2.7", "bob@example.test", tag_of(n + 10));
	assert_int_equal(auth_throttle_address_failures(t, T0, "192.0.2.7"), 7);

	/* bob logs in: his 2 go, alice's 5 stay. */
	auth_throttle_success(t, T0 + 1, "192.0.2.7", "bob@example.test");
	assert_int_equal(auth_throttle_address_failures(t, T0 + 1, "192.0.2.7"), 5);
	/* alice logs in: the address is clean again. */
	auth_throttle_success(t, T0 + 2, "192.0.2.7", "alice@example.test");
	assert_int_equal(auth_throttle_address_failures(t, T0 + 2, "192.0.2.7"), 0);
	assert_int_equal(auth_throttle_account_failures(t, T0 + 2, "alice@example.test"), 0);
	out = auth_throttle_failure(t, T0 + 3, "192.0.2.7", "alice@example.test", tag_of(50));
	assert_int_equal(out.delay_ms, 0);
	/* Her old wrong passwords are still remembered: a stale device
	 * retrying one does not count. */
	out = auth_throttle_failure(t, T0 + 4, "192.0.2.7", "alice@example.test", tag_of(3));
	assert_true(out.is_repeat);
	assert_int_equal(auth_throttle_address_failures(t, T0 + 4, "192.0.2.7"), 1);
	/* A success from elsewhere does nothing for this address. */
	auth_throttle_success(t, T0 + 5, "192.0.2.8", "alice@example.test");
	assert_int_equal(auth_throttle_address_failures(t, T0 + 5, "192.0.2.7"), 1);
	auth_throttle_free(t);
}

static const struct address_case {
	const char *name, *a, *b;
	bool is_same;
} address_cases[] = {
	{ "same IPv6 /64", "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true },
	{ "other IPv6 /64", "2001:db8:1:2::1", "2001:db8:1:3::1", false },
	{ "IPv4-mapped is IPv4", "::ffff:192.0.2.1", "192.0.2.1", true },
	{ "IPv4 neighbours differ", "192.0.2.1", "192.0.2.2", false },
	{ "text keys as text", "unix:/run/socket", "unix:/run/socket", true },
	{ "text differs", "unix:/run/a", "unix:/run/b", false },
};

static void test_address_grouping(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(address_cases); i++) {
		const struct address_case *c = &address_cases[i];
		struct auth_throttle *t = throttle_make(0);

		print_message("case: %s\n", c->name);
		auth_throttle_failure(t, T0, c->a, "alice@example.test", tag_of(1));
		auth_throttle_failure(t, T0, c->b, "alice@example.test", tag_of(2));
		assert_int_equal(auth_throttle_address_failures(t, T0, c->a), c->is_same ? 2 : 1);
		auth_throttle_free(t);
	}
}

static void test_malformed_name_counts_for_the_address(void **state)
{
	struct auth_throttle *t = throttle_make(0);

	(void) state;
	for (unsigned n = 0; n < AUTH_THROTTLE_ADDRESS_REFUSE; n++)
		auth_throttle_failure(t, T0, "192.0.2.66", NULL, NULL);
	assert_int_equal(auth_throttle_check(t, T0, "192.0.2.66", "alice@example.test"),
			 AUTH_THROTTLE_REFUSE);
	assert_int_equal(auth_throttle_account_failures(t, T0, "alice@example.test"), 0);
	auth_throttle_free(t);
}

static void test_memory_is_bounded(void **state)
{
	struct auth_throttle *t = throttle_make(64);
	struct auth_throttle_usage before, after;
	char client[64], account[64];

	(void) state;
	auth_throttle_usage_get(t, &before);
	assert_int_equal(before.address_records, 64);
	assert_int_equal(before.pair_records, 64);
	assert_int_equal(before.address_used, 0);
	for (unsigned n = 0; n < 20000; n++) {
		snprintf(client, sizeof(client), "10.%u.%u.%u", n >> 16, (n >> 8) & 255, n & 255);
		snprintf(account, sizeof(account), "u%u@example.test", n);
		(void) auth_throttle_check(t, T0 + n, client, account);
		auth_throttle_failure(t, T0 + n, client, account, tag_of(n));
		auth_throttle_success(t, T0 + n, client, account);
	}
	auth_throttle_usage_get(t, &after);
	assert_true(after.address_used <= after.address_records);
	assert_true(after.account_used <= after.account_records);
	assert_true(after.pair_used <= after.pair_records);
	assert_true(after.evictions >= 3 * (20000 - 64));
	assert_int_equal(after.bytes, before.bytes);
	/* The newest record survives and counts. */
	auth_throttle_failure(t, T0 + 30000, "192.0.2.1", "x@example.test", tag_of(1));
	auth_throttle_failure(t, T0 + 30000, "192.0.2.1", "x@example.test", tag_of(2));
	assert_int_equal(auth_throttle_address_failures(t, T0 + 30000, "192.0.2.1"), 2);
	auth_throttle_free(t);

	/* Default sizes: a few MiB, whatever the traffic. */
	t = throttle_make(0);
	auth_throttle_usage_get(t, &after);
	assert_int_equal(after.address_records, AUTH_THROTTLE_ADDRESS_RECORDS);
	assert_int_equal(after.pair_records, AUTH_THROTTLE_PAIR_RECORDS);
	assert_true(after.bytes < 8u * 1024 * 1024);
	auth_throttle_free(t);
}

/* The gauge: addresses past AUTH_THROTTLE_ADDRESS_FREE failures, until
 * their failures leave the window or a success clears them. */
static void test_throttled_clients(void **state)
{
	struct auth_throttle *t = throttle_make(0);
	unsigned n;

	(void) state;
	assert_int_equal(auth_throttle_throttled_clients(t, T0), 0);
	for (n = 1; n <= AUTH_THROTTLE_ADDRESS_FREE; n++)
		auth_throttle_failure(t, T0, "192.0.2.7", "alice@example.test", tag_of(n));
	assert_int_equal(auth_throttle_throttled_clients(t, T0), 0); /* not yet delayed */
	auth_throttle_failure(t, T0, "192.0.2.7", "alice@example.test", tag_of(n));
	assert_int_equal(auth_throttle_throttled_clients(t, T0), 1);
	for (n = 1; n <= AUTH_THROTTLE_ADDRESS_REFUSE; n++)
		auth_throttle_failure(t, T0, "2001:db8::1", "bob@example.test", tag_of(n));
	/* The same /64 is the same client. */
	auth_throttle_failure(t, T0, "2001:db8::2", "bob@example.test", tag_of(100));
	assert_int_equal(auth_throttle_throttled_clients(t, T0), 2);
	auth_throttle_success(t, T0 + 1, "192.0.2.7", "alice@example.test");
	assert_int_equal(auth_throttle_throttled_clients(t, T0 + 1), 1);
	assert_int_equal(auth_throttle_throttled_clients(t, T0 + AUTH_THROTTLE_WINDOW_MS), 0);
	auth_throttle_free(t);
}

static void test_absurd_size_refused(void **state)
{
	struct auth_throttle_params p;
	struct error err;

	(void) state;
	memset(&p, 0, sizeof(p));
	p.pair_records = (size_t) 1 << 30;
	assert_null(auth_throttle_new(&p, &err));
	assert_int_equal(err.kind, ERROR_USAGE);
	auth_throttle_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escalation),
		cmocka_unit_test(test_refusal_limit_is_exact),
		cmocka_unit_test(test_decay),
		cmocka_unit_test(test_repeated_password_counts_once),
		cmocka_unit_test(test_nat_office_and_many_accounts),
		cmocka_unit_test(test_distributed_attack_spares_the_clean_owner),
		cmocka_unit_test(test_account_slows_dirty_addresses),
		cmocka_unit_test(test_success_resets_only_its_pair),
		cmocka_unit_test(test_address_grouping),
		cmocka_unit_test(test_malformed_name_counts_for_the_address),
		cmocka_unit_test(test_memory_is_bounded),
		cmocka_unit_test(test_absurd_size_refused),
		cmocka_unit_test(test_throttled_clients),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
