/*
 * Tests for src/smtp/data.c: the DATA decoder (end of data, dot stuffing,
 * the SMTP smuggling variants, limits, pipelining), the BDAT line checker and
 * the BDAT argument parser. Every message is also decoded one octet at a time
 * and at every split point into two chunks, and must give the same result.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/data.h"

/* A byte string with its length, so that cases may hold NUL octets. */
#define BYTES(s)                   \
	{                          \
		(s), sizeof(s) - 1 \
	}

struct bytes {
	const char *ptr;
	size_t len;
};

#define SINK_CAP 8192

struct sink {
	char buf[SINK_CAP];
	size_t len;
	size_t calls;
	size_t fail_at_call; /* 1-based call that returns -1; 0: never */
	bool called_after_failure;
	bool has_failed;
};

static int sink_collect(void *ctx, struct span bytes)
{
	struct sink *s = ctx;

	if (s->has_failed)
		s->called_after_failure = true;
	s->calls++;
	if (s->fail_at_call != 0 && s->calls == s->fail_at_call) {
		s->has_failed = true;
		return -1;
	}
	assert_true(bytes.len > 0);
	assert_true(s->len + bytes.len <= SINK_CAP);
	memcpy(s->buf + s->len, bytes.ptr, bytes.len);
	s->len += bytes.len;
	return 0;
}

struct decode_outcome {
	enum smtp_data_result result;
	size_t consumed;
	enum smtp_data_error error;
	uint64_t error_line;
	uint64_t decoded_bytes;
	bool has_8bit;
	struct sink sink;
};

/* Decode input cut into chunks at the given points (ascending, inside the
 * input); stops at DONE like a session would. */
static void decode_in_chunks(struct span input, size_t max_line, uint64_t max_bytes,
			     const size_t *cuts, size_t cut_count, struct decode_outcome *out)
{
	struct smtp_data_decoder d;
	size_t start = 0;

	memset(out, 0, sizeof(*out));
	smtp_data_decoder_init(&d, max_line, max_bytes);
	out->result = SMTP_DATA_NEED_MORE;
	for (size_t k = 0; k <= cut_count; k++) {
		size_t end = k < cut_count ? cuts[k] : input.len;
		size_t consumed = 12345;
		/* Each chunk in its own allocation, as a network read gives it:
		 * the decoder must not look outside the chunk (ASan checks). */
		char *chunk = malloc(end - start + 1);

		assert_non_null(chunk);
		memcpy(chunk, input.ptr + start, end - start);
		out->result = smtp_data_decode(&d, span_make(chunk, end - start), sink_collect,
					       &out->sink, &consumed);
		free(chunk);
		assert_true(consumed <= end - start);
		out->consumed += consumed;
		if (out->result == SMTP_DATA_DONE)
			break;
		assert_int_equal(consumed, end - start);
		start = end;
	}
	out->error = d.line.error;
	out->error_line = d.line.error_line;
	out->decoded_bytes = d.decoded_bytes;
	out->has_8bit = d.line.has_8bit;
	assert_false(out->sink.called_after_failure);
}

static void assert_same_outcome(const struct decode_outcome *a, const struct decode_outcome *b)
{
	assert_int_equal(a->result, b->result);
	assert_int_equal(a->consumed, b->consumed);
	assert_int_equal(a->error, b->error);
	assert_int_equal(a->error_line, b->error_line);
	assert_true(a->decoded_bytes == b->decoded_bytes);
	assert_int_equal(a->has_8bit, b->has_8bit);
	assert_int_equal(a->sink.len, b->sink.len);
	assert_memory_equal(a->sink.buf, b->sink.buf, a->sink.len);
}

/* One shot, one octet at a time, and every split into two chunks: all the
 * same. Returns the one-shot outcome in *out. */
static void decode_every_way(struct span input, size_t max_line, uint64_t max_bytes,
			     struct decode_outcome *out)
{
	static struct decode_outcome other;
	static size_t cuts[SINK_CAP];

	decode_in_chunks(input, max_line, max_bytes, NULL, 0, out);
	assert_true(input.len <= SINK_CAP);
	for (size_t i = 1; i < input.len; i++)
		cuts[i - 1] = i;
	decode_in_chunks(input, max_line, max_bytes, cuts, input.len > 0 ? input.len - 1 : 0,
			 &other);
	assert_same_outcome(out, &other);
	for (size_t k = 1; k < input.len; k++) {
		decode_in_chunks(input, max_line, max_bytes, &k, 1, &other);
		assert_same_outcome(out, &other);
	}
}

#define NO_LIMIT UINT64_MAX

static const struct data_case {
	const char *name;
	struct bytes input;
	size_t max_line; /* 0: SMTP_TEXT_LINE_MAX */
	uint64_t max_bytes;
	enum smtp_data_result result;
	size_t consumed; /* 0: all of input */
	struct bytes output;
	enum smtp_data_error error;
	uint64_t error_line;
	bool has_8bit;
} data_cases[] = {
	{ "simple message", BYTES("Subject: x\r\n\r\nhello\r\n.\r\n"), 0, NO_LIMIT, SMTP_DATA_DONE,
	  0, BYTES("Subject: x\r\n\r\nhello\r\n"), SMTP_DATA_ERROR_NONE, 0, false },
	{ "empty message: end at the start of the data", BYTES(".\r\n"), 0, NO_LIMIT,
	  SMTP_DATA_DONE, 0, BYTES(""), SMTP_DATA_ERROR_NONE, 0, false },
	{ "one empty line", BYTES("\r\n.\r\n"), 0, NO_LIMIT, SMTP_DATA_DONE, 0, BYTES("\r\n"),
	  SMTP_DATA_ERROR_NONE, 0, false },
	{ "dot-stuffed line", BYTES("..x\r\n.\r\n"), 0, NO_LIMIT, SMTP_DATA_DONE, 0,
	  BYTES(".x\r\n"), SMTP_DATA_ERROR_NONE, 0, false },
	{ "line of two dots", BYTES("..\r\n.\r\n"), 0, NO_LIMIT, SMTP_DATA_DONE, 0, BYTES(".\r\n"),
	  SMTP_DATA_ERROR_NONE, 0, false },
	{ "line of three dots", BYTES("...\r\n.\r\n"), 0, NO_LIMIT, SMTP_DATA_DONE, 0,
	  BYTES("..\r\n"), SMTP_DATA_ERROR_NONE, 0, false },
	{ "unstuffed leading dot is removed", BYTES("a\r\n.b\r\n.\r\n"), 0, NO_LIMIT,
	  SMTP_DATA_DONE, 0, BYTES("a\r\nb\r\n"), SMTP_DATA_ERROR_NONE, 0, false },
	{ "dot space is not the end", BYTES("a\r\n. \r\n.\r\n"), 0, NO_LIMIT, SMTP_DATA_DONE, 0,
	  BYTES("a\r\n \r\n"), SMTP_DATA_ERROR_NONE, 0, false },
	{ "dot inside a line", BYTES("a.b\r\n.\r\n"), 0, NO_LIMIT, SMTP_DATA_DONE, 0,
	  BYTES("a.b\r\n"), SMTP_DATA_ERROR_NONE, 0, false },
	{ "pipelined command after the end", BYTES("hi\r\n.\r\nQUIT\r\n"), 0, NO_LIMIT,
	  SMTP_DATA_DONE, 7, BYTES("hi\r\n"), SMTP_DATA_ERROR_NONE, 0, false },
	{ "second message after the end is not read", BYTES(".\r\n.\r\n"), 0, NO_LIMIT,
	  SMTP_DATA_DONE, 3, BYTES(""), SMTP_DATA_ERROR_NONE, 0, false },
	{ "no end yet", BYTES("hi\r\n"), 0, NO_LIMIT, SMTP_DATA_NEED_MORE, 0, BYTES("hi\r\n"),
	  SMTP_DATA_ERROR_NONE, 0, false },
	{ "no end yet: dot pending", BYTES("hi\r\n."), 0, NO_LIMIT, SMTP_DATA_NEED_MORE, 0,
	  BYTES("hi\r\n"), SMTP_DATA_ERROR_NONE, 0, false },
	{ "no end yet: dot CR pending", BYTES("hi\r\n.\r"), 0, NO_LIMIT, SMTP_DATA_NEED_MORE, 0,
	  BYTES("hi\r\n"), SMTP_DATA_ERROR_NONE, 0, false },
	{ "no end yet: CR pending", BYTES("hi\r"), 0, NO_LIMIT, SMTP_DATA_NEED_MORE, 0, BYTES("hi"),
	  SMTP_DATA_ERROR_NONE, 0, false },
	{ "8-bit text", BYTES("caf\xc3\xa9\r\n.\r\n"), 0, NO_LIMIT, SMTP_DATA_DONE, 0,
	  BYTES("caf\xc3\xa9\r\n"), SMTP_DATA_ERROR_NONE, 0, true },

	/* SMTP smuggling: none of these ends the data; each fails the message
	 * and the decoder reads on to the real <CRLF>.<CRLF>. */
	{ "smuggling LF.LF", BYTES("a\n.\nMAIL FROM:<evil@example.test>\r\n.\r\n"), 0, NO_LIMIT,
	  SMTP_DATA_DONE, 0, BYTES("a"), SMTP_DATA_ERROR_BARE_LF, 1, false },
	{ "smuggling LF.LF without a real end", BYTES("a\n.\nMAIL FROM:<evil@example.test>\r\n"), 0,
	  NO_LIMIT, SMTP_DATA_NEED_MORE, 0, BYTES("a"), SMTP_DATA_ERROR_BARE_LF, 1, false },
	{ "smuggling CR.CR", BYTES("a\r.\rMAIL FROM:<evil@example.test>\r\n.\r\n"), 0, NO_LIMIT,
	  SMTP_DATA_DONE, 0, BYTES("a"), SMTP_DATA_ERROR_BARE_CR, 1, false },
	{ "smuggling LF.CRLF", BYTES("a\n.\r\nMAIL FROM:<evil@example.test>\r\n.\r\n"), 0, NO_LIMIT,
	  SMTP_DATA_DONE, 0, BYTES("a"), SMTP_DATA_ERROR_BARE_LF, 1, false },
	{ "smuggling CRLF.LF", BYTES("a\r\n.\nMAIL FROM:<evil@example.test>\r\n.\r\n"), 0, NO_LIMIT,
	  SMTP_DATA_DONE, 0, BYTES("a\r\n"), SMTP_DATA_ERROR_BARE_LF, 2, false },
	{ "smuggling CR.CRLF", BYTES("a\r.\r\nMAIL FROM:<evil@example.test>\r\n.\r\n"), 0, NO_LIMIT,
	  SMTP_DATA_DONE, 0, BYTES("a"), SMTP_DATA_ERROR_BARE_CR, 1, false },
	{ "smuggling CRLF.CR", BYTES("a\r\n.\rMAIL FROM:<evil@example.test>\r\n.\r\n"), 0, NO_LIMIT,
	  SMTP_DATA_DONE, 0, BYTES("a\r\n"), SMTP_DATA_ERROR_BARE_CR, 2, false },
	{ "smuggling CRLF.CRCRLF", BYTES("a\r\n.\r\r\nRSET\r\n.\r\n"), 0, NO_LIMIT, SMTP_DATA_DONE,
	  0, BYTES("a\r\n"), SMTP_DATA_ERROR_BARE_CR, 2, false },
	{ "bare LF at the very start", BYTES("\n.\r\n"), 0, NO_LIMIT, SMTP_DATA_NEED_MORE, 0,
	  BYTES(""), SMTP_DATA_ERROR_BARE_LF, 1, false },
	{ "bare LF at the very start, then the end", BYTES("\n.\r\n.\r\n"), 0, NO_LIMIT,
	  SMTP_DATA_DONE, 0, BYTES(""), SMTP_DATA_ERROR_BARE_LF, 1, false },
	{ "bare CR before CRLF", BYTES("a\r\r\nb\r\n.\r\n"), 0, NO_LIMIT, SMTP_DATA_DONE, 0,
	  BYTES("a"), SMTP_DATA_ERROR_BARE_CR, 1, false },
	{ "bare LF in the second line", BYTES("a\r\nb\nc\r\n.\r\n"), 0, NO_LIMIT, SMTP_DATA_DONE, 0,
	  BYTES("a\r\nb"), SMTP_DATA_ERROR_BARE_LF, 2, false },
	{ "NUL", BYTES("a\0b\r\n.\r\n"), 0, NO_LIMIT, SMTP_DATA_DONE, 0, BYTES("a"),
	  SMTP_DATA_ERROR_NUL, 1, false },
	{ "first error wins", BYTES("a\0b\nc\r\r\n.\r\n"), 0, NO_LIMIT, SMTP_DATA_DONE, 0,
	  BYTES("a"), SMTP_DATA_ERROR_NUL, 1, false },
	{ "8-bit seen after an error", BYTES("\n\xff\r\n.\r\n"), 0, NO_LIMIT, SMTP_DATA_DONE, 0,
	  BYTES(""), SMTP_DATA_ERROR_BARE_LF, 1, true },

	/* Limits with a small line limit: 6 octets including CRLF. */
	{ "line at the limit", BYTES("abcd\r\n.\r\n"), 6, NO_LIMIT, SMTP_DATA_DONE, 0,
	  BYTES("abcd\r\n"), SMTP_DATA_ERROR_NONE, 0, false },
	{ "line one past the limit", BYTES("ok\r\nabcde\r\nok\r\n.\r\n"), 6, NO_LIMIT,
	  SMTP_DATA_DONE, 0, BYTES("ok\r\nabcde"), SMTP_DATA_ERROR_LINE_TOO_LONG, 2, false },
	{ "line one past the limit without CRLF yet", BYTES("abcdefg"), 6, NO_LIMIT,
	  SMTP_DATA_NEED_MORE, 0, BYTES("abcdef"), SMTP_DATA_ERROR_LINE_TOO_LONG, 1, false },
	{ "stuffed dot not counted", BYTES("..bcd\r\n.\r\n"), 6, NO_LIMIT, SMTP_DATA_DONE, 0,
	  BYTES(".bcd\r\n"), SMTP_DATA_ERROR_NONE, 0, false },
	{ "message at the size limit", BYTES("hello\r\n.\r\n"), 0, 7, SMTP_DATA_DONE, 0,
	  BYTES("hello\r\n"), SMTP_DATA_ERROR_NONE, 0, false },
	{ "message one past the size limit", BYTES("hello\r\n.\r\n"), 0, 6, SMTP_DATA_DONE, 0,
	  BYTES("hello"), SMTP_DATA_ERROR_TOO_BIG, 1, false },
	{ "too big, then a bare LF: first error wins", BYTES("hello\r\nx\ny\r\n.\r\n"), 0, 3,
	  SMTP_DATA_DONE, 0, BYTES("hel"), SMTP_DATA_ERROR_TOO_BIG, 1, false },
	{ "empty message with a zero size limit", BYTES(".\r\n"), 0, 0, SMTP_DATA_DONE, 0,
	  BYTES(""), SMTP_DATA_ERROR_NONE, 0, false },
	{ "one line with a zero size limit", BYTES("\r\n.\r\n"), 0, 0, SMTP_DATA_DONE, 0, BYTES(""),
	  SMTP_DATA_ERROR_TOO_BIG, 1, false },
};

static void check_case(const struct data_case *c, struct span input)
{
	struct decode_outcome got;
	size_t want_consumed = c->consumed ? c->consumed : input.len;

	decode_every_way(input, c->max_line, c->max_bytes, &got);
	assert_int_equal(got.result, c->result);
	assert_int_equal(got.consumed, want_consumed);
	assert_int_equal(got.error, c->error);
	assert_int_equal(got.error_line, c->error_line);
	assert_int_equal(got.has_8bit, c->has_8bit);
	assert_int_equal(got.sink.len, c->output.len);
	assert_memory_equal(got.sink.buf, c->output.ptr, c->output.len);
	assert_true(got.decoded_bytes >= got.sink.len);
}

static void test_data_decode(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(data_cases); i++) {
		const struct data_case *c = &data_cases[i];

		print_message("case: %s\n", c->name);
		check_case(c, span_make(c->input.ptr, c->input.len));
	}
}

static char big_input[4096];
static char big_output[4096];

/* "x" * n, then CRLF, then the end of the data; stuffed: one more leading
 * dot that the decoder removes. */
static struct span make_line_message(size_t content, bool stuffed, struct bytes *output_out)
{
	size_t n = 0;

	if (stuffed)
		big_input[n++] = '.';
	memset(big_input + n, 'x', content);
	memset(big_output, 'x', content);
	n += content;
	memcpy(big_input + n, "\r\n.\r\n", 5);
	n += 5;
	memcpy(big_output + content, "\r\n", 2);
	output_out->ptr = big_output;
	output_out->len = content + 2;
	return span_make(big_input, n);
}

/* RFC 5321 4.5.3.1.6: 1000 octets including CRLF, the stuffed dot not
 * counted. */
static void test_data_line_limit_default(void **state)
{
	static const struct {
		const char *name;
		size_t content;
		bool stuffed;
		enum smtp_data_error error;
	} cases[] = {
		{ "998 + CRLF = 1000 octets", 998, false, SMTP_DATA_ERROR_NONE },
		{ "999 + CRLF = 1001 octets", 999, false, SMTP_DATA_ERROR_LINE_TOO_LONG },
		{ "stuffed: dot + 998 + CRLF", 998, true, SMTP_DATA_ERROR_NONE },
		{ "stuffed: dot + 999 + CRLF", 999, true, SMTP_DATA_ERROR_LINE_TOO_LONG },
	};

	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct bytes want;
		struct span input = make_line_message(cases[i].content, cases[i].stuffed, &want);
		struct decode_outcome got;

		print_message("case: %s\n", cases[i].name);
		decode_every_way(input, 0, UINT64_MAX, &got);
		assert_int_equal(got.result, SMTP_DATA_DONE);
		assert_int_equal(got.consumed, input.len);
		assert_int_equal(got.error, cases[i].error);
		if (cases[i].error == SMTP_DATA_ERROR_NONE) {
			assert_int_equal(got.sink.len, want.len);
			assert_memory_equal(got.sink.buf, want.ptr, want.len);
		} else {
			/* Everything before the CRLF of the long line, which
			 * is where it went over. */
			assert_int_equal(got.sink.len, cases[i].content);
			assert_int_equal(got.error_line, 1);
		}
	}
}

static void test_data_sink_failure(void **state)
{
	struct smtp_data_decoder d;
	struct sink sink;
	size_t consumed;
	struct span chunk1 = SPAN_LITERAL("first\r\n");
	struct span chunk2 = SPAN_LITERAL("second\r\n.\r\nQUIT\r\n");

	(void) state;
	memset(&sink, 0, sizeof(sink));
	sink.fail_at_call = 1;
	smtp_data_decoder_init(&d, 0, UINT64_MAX);
	assert_int_equal(smtp_data_decode(&d, chunk1, sink_collect, &sink, &consumed),
			 SMTP_DATA_NEED_MORE);
	assert_int_equal(consumed, chunk1.len);
	assert_int_equal(d.line.error, SMTP_DATA_ERROR_SINK_FAILED);
	assert_int_equal(smtp_data_decode(&d, chunk2, sink_collect, &sink, &consumed),
			 SMTP_DATA_DONE);
	assert_int_equal(consumed, chunk2.len - strlen("QUIT\r\n"));
	assert_int_equal(sink.calls, 1);
	assert_false(sink.called_after_failure);
	assert_true(d.decoded_bytes == strlen("first\r\nsecond\r\n"));
}

static void test_data_after_done(void **state)
{
	struct smtp_data_decoder d;
	struct sink sink;
	size_t consumed = 99;

	(void) state;
	memset(&sink, 0, sizeof(sink));
	smtp_data_decoder_init(&d, 0, UINT64_MAX);
	assert_int_equal(
		smtp_data_decode(&d, SPAN_LITERAL("x\r\n.\r\n"), sink_collect, &sink, &consumed),
		SMTP_DATA_DONE);
	assert_int_equal(consumed, 6);
	assert_int_equal(
		smtp_data_decode(&d, SPAN_LITERAL("more\r\n.\r\n"), sink_collect, &sink, &consumed),
		SMTP_DATA_DONE);
	assert_int_equal(consumed, 0);
	assert_int_equal(sink.len, 3);
	/* An empty chunk before the end changes nothing. */
	smtp_data_decoder_init(&d, 0, UINT64_MAX);
	assert_int_equal(smtp_data_decode(&d, span_make(NULL, 0), sink_collect, &sink, &consumed),
			 SMTP_DATA_NEED_MORE);
	assert_int_equal(consumed, 0);
	assert_int_equal(d.line.error, SMTP_DATA_ERROR_NONE);
}

/* The decoder's memory does not grow with the message. */
static void test_data_memory_is_constant(void **state)
{
	(void) state;
	assert_true(sizeof(struct smtp_data_decoder) <= 128);
	assert_true(sizeof(struct smtp_crlf_checker) <= 64);
}

static const struct crlf_case {
	const char *name;
	struct bytes input;
	size_t max_line;
	enum smtp_data_error error; /* after finish */
	uint64_t error_line;
	uint64_t lines;
	bool has_8bit;
} crlf_cases[] = {
	{ "clean", BYTES("a\r\nb\r\n"), 0, SMTP_DATA_ERROR_NONE, 0, 2, false },
	{ "empty", BYTES(""), 0, SMTP_DATA_ERROR_NONE, 0, 0, false },
	{ "last line without CRLF", BYTES("a\r\nb"), 0, SMTP_DATA_ERROR_NONE, 0, 1, false },
	{ "dots are data", BYTES(".\r\n..\r\n"), 0, SMTP_DATA_ERROR_NONE, 0, 2, false },
	{ "bare LF", BYTES("a\r\nb\nc\r\n"), 0, SMTP_DATA_ERROR_BARE_LF, 2, 2, false },
	{ "bare CR", BYTES("a\rb\r\n"), 0, SMTP_DATA_ERROR_BARE_CR, 1, 1, false },
	{ "CR at the very end", BYTES("a\r\nb\r"), 0, SMTP_DATA_ERROR_BARE_CR, 2, 1, false },
	{ "NUL", BYTES("a\r\n\0\r\n"), 0, SMTP_DATA_ERROR_NUL, 2, 2, false },
	{ "8-bit", BYTES("\x80\r\n"), 0, SMTP_DATA_ERROR_NONE, 0, 1, true },
	{ "line at the limit", BYTES("abcd\r\n"), 6, SMTP_DATA_ERROR_NONE, 0, 1, false },
	{ "line one past the limit", BYTES("abcde\r\n"), 6, SMTP_DATA_ERROR_LINE_TOO_LONG, 1, 1,
	  false },
	{ "first error wins", BYTES("a\nb\0\r"), 0, SMTP_DATA_ERROR_BARE_LF, 1, 0, false },
};

static void crlf_check_in_chunks(struct span input, size_t max_line, const size_t *cuts,
				 size_t cut_count, struct smtp_crlf_checker *c)
{
	size_t start = 0;

	smtp_crlf_checker_init(c, max_line);
	for (size_t k = 0; k <= cut_count; k++) {
		size_t end = k < cut_count ? cuts[k] : input.len;

		smtp_crlf_checker_feed(c, span_make(input.ptr + start, end - start));
		start = end;
	}
	(void) smtp_crlf_checker_finish(c);
}

static void test_crlf_checker(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(crlf_cases); i++) {
		const struct crlf_case *cc = &crlf_cases[i];
		struct span input = span_make(cc->input.ptr, cc->input.len);
		struct smtp_crlf_checker c;
		size_t cuts[64];

		print_message("case: %s\n", cc->name);
		assert_true(input.len < ARRAY_LEN(cuts));
		for (size_t k = 1; k < input.len; k++)
			cuts[k - 1] = k;
		for (size_t way = 0; way <= input.len + 1; way++) {
			if (way == 0) {
				crlf_check_in_chunks(input, cc->max_line, NULL, 0, &c);
			} else if (way == 1) {
				crlf_check_in_chunks(input, cc->max_line, cuts,
						     input.len > 0 ? input.len - 1 : 0, &c);
			} else {
				size_t cut = way - 1;

				if (cut >= input.len)
					continue;
				crlf_check_in_chunks(input, cc->max_line, &cut, 1, &c);
			}
			assert_int_equal(c.error, cc->error);
			assert_int_equal(c.error_line, cc->error_line);
			assert_int_equal(c.lines, cc->lines);
			assert_int_equal(c.has_8bit, cc->has_8bit);
		}
	}
}

static void test_crlf_checker_default_limit(void **state)
{
	static char line[1002];
	struct smtp_crlf_checker c;

	(void) state;
	memset(line, 'x', sizeof(line));
	print_message("case: 1000 octets with CRLF\n");
	memcpy(line + 998, "\r\n", 2);
	smtp_crlf_checker_init(&c, 0);
	smtp_crlf_checker_feed(&c, span_make(line, 1000));
	assert_int_equal(smtp_crlf_checker_finish(&c), SMTP_DATA_ERROR_NONE);
	print_message("case: 1001 octets with CRLF\n");
	memset(line, 'x', sizeof(line));
	memcpy(line + 999, "\r\n", 2);
	smtp_crlf_checker_init(&c, 0);
	smtp_crlf_checker_feed(&c, span_make(line, 1001));
	assert_int_equal(smtp_crlf_checker_finish(&c), SMTP_DATA_ERROR_LINE_TOO_LONG);
}

static const struct bdat_case {
	const char *name, *args;
	bool ok;
	uint64_t size;
	bool is_last;
} bdat_cases[] = {
	{ "size", "100", true, 100, false },
	{ "size and LAST", "100 LAST", true, 100, true },
	{ "LAST in lower case", "0 last", true, 0, true },
	{ "runs of spaces", "  7   LaSt  ", true, 7, true },
	{ "largest size", "18446744073709551615", true, UINT64_MAX, false },
	{ "size overflows", "18446744073709551616", false, 0, false },
	{ "empty", "", false, 0, false },
	{ "no size", "LAST", false, 0, false },
	{ "negative", "-1", false, 0, false },
	{ "plus sign", "+1", false, 0, false },
	{ "exponent", "1e3", false, 0, false },
	{ "other marker", "10 FIRST", false, 0, false },
	{ "extra word", "10 LAST x", false, 0, false },
	{ "tab", "10\tLAST", false, 0, false },
};

static void test_bdat_parse(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(bdat_cases); i++) {
		const struct bdat_case *c = &bdat_cases[i];
		uint64_t size = 42;
		bool is_last = false;

		print_message("case: %s\n", c->name);
		assert_int_equal(smtp_bdat_parse(span_from_cstr(c->args), &size, &is_last), c->ok);
		if (c->ok) {
			assert_true(size == c->size);
			assert_int_equal(is_last, c->is_last);
		} else {
			assert_true(size == 42);
		}
	}
}

static void test_error_names(void **state)
{
	(void) state;
	assert_string_equal(smtp_data_error_name(SMTP_DATA_ERROR_NONE), "none");
	assert_string_equal(smtp_data_error_name(SMTP_DATA_ERROR_BARE_LF), "bare_lf");
	assert_string_equal(smtp_data_error_name(SMTP_DATA_ERROR_BARE_CR), "bare_cr");
	assert_string_equal(smtp_data_error_name(SMTP_DATA_ERROR_NUL), "nul");
	assert_string_equal(smtp_data_error_name(SMTP_DATA_ERROR_LINE_TOO_LONG), "line_too_long");
	assert_string_equal(smtp_data_error_name(SMTP_DATA_ERROR_TOO_BIG), "too_big");
	assert_string_equal(smtp_data_error_name(SMTP_DATA_ERROR_SINK_FAILED), "sink_failed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_data_decode),
		cmocka_unit_test(test_data_line_limit_default),
		cmocka_unit_test(test_data_sink_failure),
		cmocka_unit_test(test_data_after_done),
		cmocka_unit_test(test_data_memory_is_constant),
		cmocka_unit_test(test_crlf_checker),
		cmocka_unit_test(test_crlf_checker_default_limit),
		cmocka_unit_test(test_bdat_parse),
		cmocka_unit_test(test_error_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
