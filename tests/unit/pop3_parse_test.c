/* Tests for src/pop3/parse.c (command lines, message numbers) and
 * src/pop3/encode.c (byte-stuffing, line ends, TOP), including the encoder
 * fed one byte at a time: a message's chunks may split anywhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/span.h"
#include "pop3/encode.h"
#include "pop3/parse.h"

static const struct parse_case {
	const char *name;
	const char *line;
	size_t line_len; /* 0: strlen */
	enum pop3_parse_result want;
	const char *keyword, *rest, *arg0, *arg1;
	size_t arg_count;
	bool has_extra_args;
} parse_cases[] = {
	{ "bare keyword", "STAT", 0, POP3_PARSE_OK, "STAT", "", NULL, NULL, 0, false },
	{ "lower case", "retr 1", 0, POP3_PARSE_OK, "retr", "1", "1", NULL, 1, false },
	{ "two args", "TOP 1 10", 0, POP3_PARSE_OK, "TOP", "1 10", "1", "10", 2, false },
	{ "runs of spaces", "TOP  1   10 ", 0, POP3_PARSE_OK, "TOP", " 1   10 ", "1", "10", 2,
	  false },
	{ "password with spaces", "PASS correct horse ", 0, POP3_PARSE_OK, "PASS", "correct horse ",
	  "correct", "horse", 2, false },
	{ "three args", "TOP 1 2 3", 0, POP3_PARSE_OK, "TOP", "1 2 3", "1", "2", 2, true },
	{ "leading blanks", "  NOOP", 0, POP3_PARSE_OK, "NOOP", "", NULL, NULL, 0, false },
	{ "tab separates", "USER\tbob", 0, POP3_PARSE_OK, "USER", "bob", "bob", NULL, 1, false },
	{ "empty", "", 0, POP3_PARSE_EMPTY, NULL, NULL, NULL, NULL, 0, false },
	{ "blanks only", "   ", 0, POP3_PARSE_EMPTY, NULL, NULL, NULL, NULL, 0, false },
	{ "keyword too short", "AB", 0, POP3_PARSE_BAD_KEYWORD, NULL, NULL, NULL, NULL, 0, false },
	{ "keyword too long", "HELLO", 0, POP3_PARSE_BAD_KEYWORD, NULL, NULL, NULL, NULL, 0,
	  false },
	{ "keyword not ASCII", "N\xc3\xa9O", 0, POP3_PARSE_BAD_KEYWORD, NULL, NULL, NULL, NULL, 0,
	  false },
	{ "NUL", "NOOP\0x", 6, POP3_PARSE_HAS_NUL, NULL, NULL, NULL, NULL, 0, false },
	{ "bare CR", "NO\rOP", 0, POP3_PARSE_HAS_CONTROL, NULL, NULL, NULL, NULL, 0, false },
	{ "DEL", "NOOP\x7f", 0, POP3_PARSE_HAS_CONTROL, NULL, NULL, NULL, NULL, 0, false },
};

static void assert_span(struct span got, const char *want)
{
	if (want == NULL)
		return;
	assert_int_equal(got.len, strlen(want));
	assert_memory_equal(got.ptr, want, got.len);
}

static void test_command_parse(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct pop3_command got;
		size_t len = c->line_len ? c->line_len : strlen(c->line);

		print_message("case: %s\n", c->name);
		assert_int_equal(pop3_command_parse(span_make(c->line, len), &got), c->want);
		if (c->want != POP3_PARSE_OK)
			continue;
		assert_span(got.keyword, c->keyword);
		assert_span(got.rest, c->rest);
		assert_int_equal(got.arg_count, c->arg_count);
		if (c->arg_count > 0)
			assert_span(got.args[0], c->arg0);
		if (c->arg_count > 1)
			assert_span(got.args[1], c->arg1);
		assert_int_equal(got.has_extra_args, c->has_extra_args);
	}
}

static const struct number_case {
	const char *name, *arg;
	size_t count;
	long want; /* 0-based index, -1: refused */
} number_cases[] = {
	{ "first", "1", 3, 0 },		  { "last", "3", 3, 2 },
	{ "past the end", "4", 3, -1 },	  { "zero", "0", 3, -1 },
	{ "sign", "+1", 3, -1 },	  { "negative", "-1", 3, -1 },
	{ "letters", "1a", 3, -1 },	  { "empty", "", 3, -1 },
	{ "empty maildrop", "1", 0, -1 }, { "huge", "99999999999999999999999", 3, -1 },
};

static void test_message_number_parse(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(number_cases); i++) {
		const struct number_case *c = &number_cases[i];
		size_t index = 99;
		bool ok = pop3_message_number_parse(span_from_cstr(c->arg), c->count, &index);

		print_message("case: %s\n", c->name);
		assert_int_equal(ok, c->want >= 0);
		if (ok)
			assert_int_equal(index, (size_t) c->want);
	}
}

struct collected {
	char bytes[4096];
	size_t len;
};

static int collect(void *ctx, struct span bytes)
{
	struct collected *out = ctx;

	assert_true(out->len + bytes.len <= sizeof(out->bytes));
	memcpy(out->bytes + out->len, bytes.ptr, bytes.len);
	out->len += bytes.len;
	return 0;
}

static const struct encode_case {
	const char *name;
	const char *file;
	bool is_top;
	uint64_t top_lines;
	const char *want;
} encode_cases[] = {
	{ "CRLF file as it is", "A: b\r\n\r\nbody\r\n", false, 0, "A: b\r\n\r\nbody\r\n.\r\n" },
	{ "dot at line start stuffed", ".x\r\n..\r\n.\r\n", false, 0, "..x\r\n...\r\n..\r\n.\r\n" },
	{ "dot inside a line kept", "a.b\r\n", false, 0, "a.b\r\n.\r\n" },
	{ "bare LF gets its CR", "a\nb\n", false, 0, "a\r\nb\r\n.\r\n" },
	{ "dot after a bare LF", "a\n.b\n", false, 0, "a\r\n..b\r\n.\r\n" },
	{ "no line end at the end", "a\r\nb", false, 0, "a\r\nb\r\n.\r\n" },
	{ "CR at the very end", "a\r", false, 0, "a\r\n.\r\n" },
	{ "empty file", "", false, 0, ".\r\n" },
	{ "TOP 0: header and the empty line", "A: b\r\nC: d\r\n\r\nl1\r\nl2\r\n", true, 0,
	  "A: b\r\nC: d\r\n\r\n.\r\n" },
	{ "TOP 1", "A: b\r\n\r\nl1\r\nl2\r\n", true, 1, "A: b\r\n\r\nl1\r\n.\r\n" },
	{ "TOP more than there is", "A: b\r\n\r\nl1\r\n", true, 5, "A: b\r\n\r\nl1\r\n.\r\n" },
	{ "TOP stuffs too", "A: b\r\n\r\n.l1\r\nl2\r\n", true, 1, "A: b\r\n\r\n..l1\r\n.\r\n" },
	{ "TOP of a header-only message", "A: b\r\nC: d", true, 3, "A: b\r\nC: d\r\n.\r\n" },
	{ "TOP with LF file", "A: b\n\nl1\nl2\n", true, 1, "A: b\r\n\r\nl1\r\n.\r\n" },
};

static void encode_all(const struct encode_case *c, size_t piece, struct collected *out)
{
	struct pop3_encoder e;
	size_t len = strlen(c->file);

	out->len = 0;
	pop3_encoder_init(&e, c->is_top, c->top_lines);
	for (size_t o = 0; o < len && !e.is_done; o += piece) {
		size_t n = len - o < piece ? len - o : piece;

		assert_int_equal(pop3_encoder_feed(&e, span_make(c->file + o, n), collect, out), 0);
	}
	assert_int_equal(pop3_encoder_finish(&e, collect, out), 0);
}

static void test_encoder(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(encode_cases); i++) {
		const struct encode_case *c = &encode_cases[i];
		struct collected whole, bytewise;

		print_message("case: %s\n", c->name);
		encode_all(c, 4096, &whole);
		encode_all(c, 1, &bytewise);
		assert_int_equal(whole.len, strlen(c->want));
		assert_memory_equal(whole.bytes, c->want, whole.len);
		assert_int_equal(bytewise.len, whole.len);
		assert_memory_equal(bytewise.bytes, whole.bytes, whole.len);
	}
}

static int failing(void *ctx, struct span bytes)
{
	(void) ctx;
	(void) bytes;
	return -1;
}

static void test_encoder_reports_a_failed_sink(void **state)
{
	struct pop3_encoder e;

	(void) state;
	pop3_encoder_init(&e, false, 0);
	assert_int_equal(pop3_encoder_feed(&e, SPAN_LITERAL(".x\r\n"), failing, NULL), -1);
	assert_int_equal(pop3_encoder_finish(&e, failing, NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command_parse),
		cmocka_unit_test(test_message_number_parse),
		cmocka_unit_test(test_encoder),
		cmocka_unit_test(test_encoder_reports_a_failed_sink),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
