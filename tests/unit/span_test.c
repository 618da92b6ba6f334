/* Tests for src/core/span.c: splitting, comparisons, number parsing, copies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/span.h"

static const struct u64_case {
	const char *name, *input;
	bool ok;
	uint64_t want;
} u64_cases[] = {
	{ "zero", "0", true, 0 },
	{ "plain", "12345", true, 12345 },
	{ "max", "18446744073709551615", true, UINT64_MAX },
	{ "one past max", "18446744073709551616", false, 0 },
	{ "empty", "", false, 0 },
	{ "sign", "-1", false, 0 },
	{ "plus", "+1", false, 0 },
	{ "trailing garbage", "12abc", false, 0 },
	{ "space", " 1", false, 0 },
};

static void test_parse_u64(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(u64_cases); i++) {
		const struct u64_case *c = &u64_cases[i];
		uint64_t got = 777;

		print_message("case: %s\n", c->name);
		assert_int_equal(span_parse_u64(span_from_cstr(c->input), &got), c->ok);
		if (c->ok)
			assert_true(got == c->want);
		else
			assert_true(got == 777);
	}
}

static void test_split_word(void **state)
{
	struct span word, rest;

	(void) state;
	span_split_word(span_from_cstr("MAIL   FROM:<a@b>"), &word, &rest);
	assert_true(span_eq_cstr(word, "MAIL"));
	assert_true(span_eq_cstr(rest, "FROM:<a@b>"));
	span_split_word(span_from_cstr("QUIT"), &word, &rest);
	assert_true(span_eq_cstr(word, "QUIT"));
	assert_int_equal(rest.len, 0);
	span_split_word(span_from_cstr(""), &word, &rest);
	assert_int_equal(word.len, 0);
	assert_int_equal(rest.len, 0);
}

static void test_split_first_last(void **state)
{
	struct span a, b;

	(void) state;
	assert_true(span_split_last(span_from_cstr("\"a@b\"@example.test"), '@', &a, &b));
	assert_true(span_eq_cstr(a, "\"a@b\""));
	assert_true(span_eq_cstr(b, "example.test"));
	assert_true(span_split_first(span_from_cstr("k=v=w"), '=', &a, &b));
	assert_true(span_eq_cstr(a, "k"));
	assert_true(span_eq_cstr(b, "v=w"));
	assert_false(span_split_first(span_from_cstr("none"), '=', &a, &b));
	assert_false(span_split_last(span_from_cstr(""), '@', &a, &b));
}

static void test_compare_and_trim(void **state)
{
	(void) state;
	assert_true(span_eq_cstr_nocase(span_from_cstr("eHlO"), "EHLO"));
	assert_false(span_eq_cstr_nocase(span_from_cstr("EHLO "), "EHLO"));
	assert_true(span_starts_with_nocase(span_from_cstr("from:<x>"), "FROM:"));
	assert_false(span_starts_with_nocase(span_from_cstr("fro"), "FROM:"));
	assert_true(span_eq_cstr(span_trim(span_from_cstr(" \t x y \t")), "x y"));
	assert_int_equal(span_trim(span_from_cstr("   ")).len, 0);
}

static void test_copy_cstr(void **state)
{
	char small[4];
	static const char with_nul[] = { 'a', '\0', 'b' };

	(void) state;
	assert_true(span_copy_cstr(span_from_cstr("abc"), small, sizeof(small)));
	assert_string_equal(small, "abc");
	assert_false(span_copy_cstr(span_from_cstr("abcd"), small, sizeof(small)));
	assert_string_equal(small, "");
	assert_false(span_copy_cstr(span_make(with_nul, sizeof(with_nul)), small, sizeof(small)));
	assert_false(span_copy_cstr(span_from_cstr("a"), small, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_u64),	 cmocka_unit_test(test_split_word),
		cmocka_unit_test(test_split_first_last), cmocka_unit_test(test_compare_and_trim),
		cmocka_unit_test(test_copy_cstr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
