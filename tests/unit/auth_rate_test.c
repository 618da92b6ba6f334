/* Tests for src/auth/rate.c with a fake clock: the hourly and daily windows
 * and their sliding, recipients and messages counted apart, the hold signal
 * once per burst at twice the limit, logins from many addresses, case, and
 * users forgotten after a day idle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "auth/rate.h"
#include "core/span.h"

#define T0 ((int64_t) 1700000000 - (int64_t) 1700000000 % 3600) /* on the hour */

static const struct auth_rate_limits limits = {
	.messages_per_hour = 3,
	.messages_per_day = 5,
	.recipients_per_hour = 4,
	.recipients_per_day = 0, /* no limit */
	.hold_login_addresses = 2,
};

static enum auth_rate_verdict take(struct auth_rates *r, const char *user, int64_t now,
				   unsigned messages, unsigned recipients, bool *hold)
{
	return auth_rate_take(r, user, now, messages, recipients, &limits, hold);
}

static const struct window_case {
	const char *name;
	int64_t at;	   /* seconds after T0 */
	unsigned messages; /* 1: a message, 0: a recipient */
	enum auth_rate_verdict want;
} window_cases[] = {
	{ "first message", 0, 1, AUTH_RATE_OK },
	{ "second message", 10, 1, AUTH_RATE_OK },
	{ "third message", 20, 1, AUTH_RATE_OK },
	{ "fourth within the hour", 30, 1, AUTH_RATE_MESSAGES_HOUR },
	{ "recipients are counted apart", 40, 0, AUTH_RATE_OK },
	{ "an hour later the first has left", 3600 + 5, 1, AUTH_RATE_OK },
	{ "the fifth of the day", 3600 + 15, 1, AUTH_RATE_OK },
	{ "the sixth of the day", 3600 + 25, 1, AUTH_RATE_MESSAGES_DAY },
	{ "the day limit holds the next hour", 2 * 3600 + 30, 1, AUTH_RATE_MESSAGES_DAY },
	{ "a day later all is new", 26 * 3600, 1, AUTH_RATE_OK },
};

static void test_windows(void **state)
{
	struct auth_rates *r = auth_rates_new();
	struct auth_rate_usage usage;
	bool hold;

	(void) state;
	assert_non_null(r);
	for (size_t i = 0; i < sizeof(window_cases) / sizeof(window_cases[0]); i++) {
		const struct window_case *c = &window_cases[i];

		print_message("case: %s\n", c->name);
		assert_int_equal(take(r, "alice@example.test", T0 + c->at, c->messages,
				      c->messages ? 0 : 1, &hold),
				 c->want);
		assert_false(hold);
	}
	auth_rate_usage_get(r, "ALICE@example.test", T0 + 26 * 3600, &usage);
	assert_int_equal(usage.messages_hour, 1);
	assert_int_equal(usage.messages_day, 1);
	assert_string_equal(auth_rate_verdict_name(AUTH_RATE_RECIPIENTS_HOUR),
			    "recipients-per-hour");
	auth_rates_free(r);
}

static void test_burst_holds_once(void **state)
{
	struct auth_rates *r = auth_rates_new();
	bool hold;
	unsigned holds = 0;

	(void) state;
	/* 4 recipients an hour: the 5th to 8th are refused, the 8th refusal
	 * (twice the limit tried) signals the hold, once. */
	for (unsigned i = 0; i < 12; i++) {
		enum auth_rate_verdict v = take(r, "Bob@example.test", T0 + i, 0, 1, &hold);

		assert_int_equal(v, i < 4 ? AUTH_RATE_OK : AUTH_RATE_RECIPIENTS_HOUR);
		if (hold) {
			holds++;
			assert_int_equal(i, 7);
		}
	}
	assert_int_equal(holds, 1);
	/* Another user is not affected. */
	assert_int_equal(take(r, "carol@example.test", T0 + 20, 0, 1, &hold), AUTH_RATE_OK);
	assert_false(hold);
	auth_rates_free(r);
}

static void test_logins_from_many_addresses(void **state)
{
	struct auth_rates *r = auth_rates_new();

	(void) state;
	assert_false(auth_rate_login(r, "dave@example.test", "192.0.2.1", T0, &limits));
	assert_false(auth_rate_login(r, "dave@example.test", "192.0.2.1", T0 + 5, &limits));
	assert_false(auth_rate_login(r, "dave@example.test", "192.0.2.2", T0 + 6, &limits));
	/* The third address within 10 minutes: more than 2. */
	assert_true(auth_rate_login(r, "DAVE@example.test", "198.51.100.3", T0 + 7, &limits));
	/* Signalled once. */
	assert_false(auth_rate_login(r, "dave@example.test", "198.51.100.4", T0 + 8, &limits));
	/* Addresses older than the window do not count. */
	assert_false(auth_rate_login(r, "erin@example.test", "192.0.2.1", T0, &limits));
	assert_false(auth_rate_login(r, "erin@example.test", "192.0.2.2", T0 + 1, &limits));
	assert_false(auth_rate_login(r, "erin@example.test", "192.0.2.3",
				     T0 + AUTH_RATE_LOGIN_WINDOW_S + 10, &limits));
	auth_rates_free(r);
}

static void test_idle_users_are_forgotten(void **state)
{
	struct auth_rates *r = auth_rates_new();
	char user[64];
	bool hold;

	(void) state;
	for (unsigned i = 0; i < 100; i++) {
		snprintf(user, sizeof(user), "user%u@example.test", i);
		assert_int_equal(take(r, user, T0, 1, 0, &hold), AUTH_RATE_OK);
	}
	assert_int_equal(auth_rates_count(r), 100);
	assert_int_equal(take(r, "late@example.test", T0 + 86400 + 60, 1, 0, &hold), AUTH_RATE_OK);
	assert_int_equal(auth_rates_count(r), 1);
	auth_rates_free(r);
	auth_rates_free(NULL);
}

/* The login history: counts per window, addresses newest first, at most
 * AUTH_RATE_HISTORY_ADDRS_MAX of them, the least recent evicted. */
static const struct history_case {
	const char *name;
	int64_t at; /* seconds after T0 */
	const char *ip;
	bool is_ok;
} history_cases[] = {
	{ "ok from a", 0, "192.0.2.1", true },
	{ "failed from b", 10, "192.0.2.2", false },
	{ "failed from b again", 20, "192.0.2.2", false },
	{ "ok from a again", 3700, "192.0.2.1", true },
	{ "ok from v6", 3800, "2001:db8::1", true },
};

static void test_login_history(void **state)
{
	struct auth_rates *r = auth_rates_new();
	struct auth_rate_activity a;
	char ip[AUTH_RATE_IP_MAX];

	(void) state;
	auth_rate_activity_get(r, "alice@example.test", T0, &a);
	assert_false(a.is_tracked);
	for (size_t i = 0; i < sizeof(history_cases) / sizeof(history_cases[0]); i++)
		auth_rate_login_note(r, "Alice@Example.Test", history_cases[i].ip,
				     T0 + history_cases[i].at, history_cases[i].is_ok);
	auth_rate_activity_get(r, "alice@example.test", T0 + 3800, &a);
	assert_true(a.is_tracked);
	assert_int_equal(a.logins_ok_hour, 2); /* 3700 and 3800 */
	assert_int_equal(a.logins_failed_hour, 0);
	assert_int_equal(a.logins_ok_day, 3);
	assert_int_equal(a.logins_failed_day, 2);
	assert_int_equal(a.address_count, 3);
	assert_string_equal(a.addresses[0].ip, "2001:db8::1");
	assert_string_equal(a.addresses[1].ip, "192.0.2.1");
	assert_int_equal(a.addresses[1].ok, 2);
	assert_int_equal(a.addresses[1].last_s, T0 + 3700);
	assert_string_equal(a.addresses[2].ip, "192.0.2.2");
	assert_int_equal(a.addresses[2].failed, 2);
	assert_int_equal(a.addresses[2].ok, 0);
	assert_int_equal(a.hold_s, 0);

	/* Twenty more addresses: the table keeps the newest sixteen. */
	for (int i = 0; i < 20; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", i);
		auth_rate_login_note(r, "alice@example.test", ip, T0 + 4000 + i, false);
	}
	auth_rate_activity_get(r, "alice@example.test", T0 + 4100, &a);
	assert_int_equal(a.address_count, AUTH_RATE_HISTORY_ADDRS_MAX);
	assert_string_equal(a.addresses[0].ip, "198.51.100.19");
	assert_string_equal(a.addresses[AUTH_RATE_HISTORY_ADDRS_MAX - 1].ip, "198.51.100.4");
	assert_int_equal(a.logins_failed_hour, 20);

	auth_rate_hold_note(r, "alice@example.test", T0 + 4200, "burst");
	auth_rate_activity_get(r, "alice@example.test", T0 + 4300, &a);
	assert_int_equal(a.hold_s, T0 + 4200);
	assert_string_equal(a.hold_reason, "burst");

	/* A day later the addresses are out of the report. */
	auth_rate_activity_get(r, "alice@example.test", T0 + 4200 + 86401, &a);
	assert_int_equal(a.address_count, 0);
	assert_int_equal(a.logins_failed_day, 0);
	auth_rates_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_windows),
		cmocka_unit_test(test_burst_holds_once),
		cmocka_unit_test(test_logins_from_many_addresses),
		cmocka_unit_test(test_idle_users_are_forgotten),
		cmocka_unit_test(test_login_history),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
