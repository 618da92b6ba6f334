/* Tests for src/core/id.c: format, order, uniqueness when the clock stalls or steps back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/id.h"
#include "core/span.h"

static const struct format_case {
	const char *name;
	uint64_t value;
	const char *want;
} format_cases[] = {
	{ "zero", 0, "0000000000" },
	{ "one", 1, "0000000001" },
	{ "last digit of the alphabet", 31, "000000000z" },
	{ "carry into the second place", 32, "0000000010" },
	{ "no i l o u in the alphabet", 18 * 32 + 19, "00000000jk" },
	{ "largest 50-bit value", (UINT64_C(1) << 50) - 1, "zzzzzzzzzz" },
	{ "bits past 50 ignored", UINT64_C(1) << 50, "0000000000" },
};

static void test_format(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(format_cases); i++) {
		const struct format_case *c = &format_cases[i];
		char out[ID_CAP];

		print_message("case: %s\n", c->name);
		id_format(c->value, out);
		assert_string_equal(out, c->want);
	}
}

/* Each step: the time handed in and the value the id must encode. */
static const struct next_case {
	const char *name;
	uint64_t now_ms;
	uint64_t want_value;
} next_cases[] = {
	{ "first id at the epoch plus 1 ms", ID_EPOCH_MS + 1, 1u << ID_COUNTER_BITS },
	{ "same millisecond counts on", ID_EPOCH_MS + 1, (1u << ID_COUNTER_BITS) + 1 },
	{ "and again", ID_EPOCH_MS + 1, (1u << ID_COUNTER_BITS) + 2 },
	{ "next millisecond jumps to the clock", ID_EPOCH_MS + 2, 2u << ID_COUNTER_BITS },
	{ "clock steps back: keeps counting", ID_EPOCH_MS, (2u << ID_COUNTER_BITS) + 1 },
	{ "clock before the epoch: keeps counting", 0, (2u << ID_COUNTER_BITS) + 2 },
	{ "clock far ahead", ID_EPOCH_MS + 1000, 1000u << ID_COUNTER_BITS },
};

static void test_next_sequence(void **state)
{
	struct id_generator gen;

	(void) state;
	id_generator_init(&gen);
	for (size_t i = 0; i < ARRAY_LEN(next_cases); i++) {
		const struct next_case *c = &next_cases[i];
		char got[ID_CAP], want[ID_CAP];

		print_message("case: %s\n", c->name);
		id_format(c->want_value, want);
		assert_ptr_equal(id_generator_next(&gen, c->now_ms, got), got);
		assert_string_equal(got, want);
	}
}

/* More ids in one millisecond than the counter holds: still unique and in
 * order, by running ahead of the clock. */
static void test_burst_is_unique_and_sorted(void **state)
{
	struct id_generator gen;
	char prev[ID_CAP] = "", cur[ID_CAP];
	uint64_t now = id_clock_ms();

	(void) state;
	id_generator_init(&gen);
	for (unsigned i = 0; i < 5000; i++) {
		id_generator_next(&gen, now, cur);
		assert_int_equal(strlen(cur), ID_LEN);
		assert_true(strcmp(prev, cur) < 0);
		memcpy(prev, cur, sizeof(cur));
	}
}

/* A restarted process (a fresh generator) a millisecond later does not
 * repeat the ids of one that made fewer than 512 per millisecond. */
static void test_restart_does_not_repeat(void **state)
{
	struct id_generator before, after;
	char last_before[ID_CAP], first_after[ID_CAP];
	uint64_t now = ID_EPOCH_MS + 86400000;

	(void) state;
	id_generator_init(&before);
	for (unsigned i = 0; i < 511; i++)
		id_generator_next(&before, now, last_before);
	id_generator_init(&after);
	id_generator_next(&after, now + 1, first_after);
	assert_true(strcmp(last_before, first_after) < 0);
}

/* The real clock gives ids that are made of the alphabet and change. */
static void test_clock_ids(void **state)
{
	struct id_generator gen;
	char a[ID_CAP], b[ID_CAP];
	uint64_t now = id_clock_ms();

	(void) state;
	assert_true(now > ID_EPOCH_MS);
	id_generator_init(&gen);
	id_generator_next(&gen, now, a);
	id_generator_next(&gen, id_clock_ms(), b);
	assert_true(strcmp(a, b) < 0);
	assert_int_equal(strspn(a, "0123456789abcdefghjkmnpqrstvwxyz"), ID_LEN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_next_sequence),
		cmocka_unit_test(test_burst_is_unique_and_sorted),
		cmocka_unit_test(test_restart_does_not_repeat),
		cmocka_unit_test(test_clock_ids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
