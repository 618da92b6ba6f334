/*
 * Fuzz target for the POP3 parsers: the input is one command line (CRLF
 * removed) given to pop3_command_parse, its arguments to the message-number
 * and line-count parsers, and the same bytes as a message file to the RETR
 * and TOP encoder, split in two at a point the input chooses. Checks what
 * each promises: spans inside the line, indexes inside the maildrop, and an
 * encoded message whose every line ends in CRLF, whose lines never start
 * with a lone "." before the end, and which ends in CRLF ".\r\n".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/encode.h"
#include "pop3/parse.h"

static bool is_within(struct span inner, struct span outer)
{
	return inner.len == 0 ||
	       (inner.ptr >= outer.ptr && inner.ptr + inner.len <= outer.ptr + outer.len);
}

struct output {
	char *bytes;
	size_t len, cap;
};

static int collect(void *ctx, struct span bytes)
{
	struct output *out = ctx;

	if (out->len + bytes.len > out->cap)
		abort(); /* at most twice the input, plus the end */
	memcpy(out->bytes + out->len, bytes.ptr, bytes.len);
	out->len += bytes.len;
	return 0;
}

static void check_encoded(const struct output *out)
{
	size_t start = 0;

	if (out->len < 3 || memcmp(out->bytes + out->len - 3, ".\r\n", 3) != 0)
		abort();
	if (out->len > 3 && (out->len < 5 || memcmp(out->bytes + out->len - 5, "\r\n", 2) != 0))
		abort();
	for (size_t i = 0; i < out->len; i++) {
		if (out->bytes[i] != '\n')
			continue;
		if (i == 0 || out->bytes[i - 1] != '\r')
			abort();
		/* A line of just "." may only be the last one. */
		if (i - start == 2 && out->bytes[start] == '.' && i + 1 != out->len)
			abort();
		start = i + 1;
	}
}

static void encode(const uint8_t *data, size_t size, bool is_top, uint64_t lines)
{
	struct pop3_encoder e;
	struct output out = { .cap = 2 * size + 8 };
	size_t split = size > 0 ? data[0] % (size + 1) : 0;

	out.bytes = malloc(out.cap);
	if (out.bytes == NULL)
		return;
	pop3_encoder_init(&e, is_top, lines);
	if (pop3_encoder_feed(&e, span_make((const char *) data, split), collect, &out) < 0 ||
	    pop3_encoder_feed(&e, span_make((const char *) data + split, size - split), collect,
			      &out) < 0 ||
	    pop3_encoder_finish(&e, collect, &out) < 0)
		abort();
	check_encoded(&out);
	free(out.bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct span line = { (const char *) data, size };
	struct pop3_command c;

	if (pop3_command_parse(line, &c) == POP3_PARSE_OK) {
		size_t index;
		uint64_t lines;

		if (c.keyword.len < POP3_KEYWORD_MIN || c.keyword.len > POP3_KEYWORD_MAX ||
		    !is_within(c.keyword, line) || !is_within(c.rest, line) ||
		    c.arg_count > POP3_ARGS_MAX)
			abort();
		for (size_t i = 0; i < c.arg_count; i++) {
			if (c.args[i].len == 0 || !is_within(c.args[i], c.rest))
				abort();
			if (pop3_message_number_parse(c.args[i], 1000, &index) && index >= 1000)
				abort();
			(void) pop3_line_count_parse(c.args[i], &lines);
		}
	}
	encode(data, size, false, 0);
	encode(data, size, true, size > 1 ? data[1] % 4 : 0);
	return 0;
}
