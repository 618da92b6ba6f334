/*
 * Fuzz target for the DATA decoder and the BDAT line checker. The first four
 * octets choose the chunk sizes (a PRNG seed), the line limit and the size
 * limit; the rest is what the client sent after "354". The input is decoded
 * in one piece, one octet at a time, and in pseudo-random chunks, and every
 * way must agree. Invariants (abort() otherwise):
 *   - the output is never larger than the input, consumed never past it;
 *   - on DONE, the data really ends in <CRLF>.<CRLF> at consumed (the data
 *     starts right after the CRLF of the DATA command);
 *   - a message without error has only CRLF line endings, no NUL, no line
 *     over the limit, and dot-stuffing it again decodes to itself;
 *   - the BDAT checker gives the same verdict however the input is split.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/data.h"

struct output {
	char *buf;
	size_t len, cap;
};

static int sink_append(void *ctx, struct span bytes)
{
	struct output *out = ctx;

	if (bytes.len == 0 || bytes.len > out->cap - out->len)
		abort(); /* more output than input, or an empty call */
	memcpy(out->buf + out->len, bytes.ptr, bytes.len);
	out->len += bytes.len;
	return 0;
}

struct run {
	enum smtp_data_result result;
	size_t consumed;
	enum smtp_data_error error;
	uint64_t error_line, decoded_bytes;
	bool has_8bit;
	struct output out;
};

static uint32_t next_random(uint32_t *state)
{
	/* xorshift32: deterministic chunk sizes from the input's own seed. */
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return *state;
}

/* chunk_max 0: one piece; otherwise pieces of 1..chunk_max octets. */
static void decode(struct span input, size_t max_line, uint64_t max_bytes, size_t chunk_max,
		   uint32_t seed, struct run *r)
{
	struct smtp_data_decoder d;
	size_t pos = 0;

	r->out.len = 0;
	r->out.cap = input.len;
	r->out.buf = malloc(input.len + 1);
	if (r->out.buf == NULL)
		abort();
	r->consumed = 0;
	r->result = SMTP_DATA_NEED_MORE;
	smtp_data_decoder_init(&d, max_line, max_bytes);
	do {
		size_t n = input.len - pos, consumed = 0;

		if (chunk_max > 0 && n > 0) {
			size_t want = 1 + next_random(&seed) % chunk_max;

			n = want < n ? want : n;
		}
		/* Each chunk in its own allocation, so ASan sees any read
		 * outside it. */
		char *chunk = malloc(n + 1);

		if (chunk == NULL)
			abort();
		memcpy(chunk, input.ptr + pos, n);
		r->result =
			smtp_data_decode(&d, span_make(chunk, n), sink_append, &r->out, &consumed);
		free(chunk);
		if (consumed > n || (r->result == SMTP_DATA_NEED_MORE && consumed != n))
			abort();
		r->consumed += consumed;
		pos += n;
	} while (r->result == SMTP_DATA_NEED_MORE && pos < input.len);
	r->error = d.line.error;
	r->error_line = d.line.error_line;
	r->decoded_bytes = d.decoded_bytes;
	r->has_8bit = d.line.has_8bit;
}

static void check_same(const struct run *a, const struct run *b)
{
	if (a->result != b->result || a->consumed != b->consumed || a->error != b->error ||
	    a->error_line != b->error_line || a->decoded_bytes != b->decoded_bytes ||
	    a->has_8bit != b->has_8bit || a->out.len != b->out.len ||
	    (a->out.len > 0 && memcmp(a->out.buf, b->out.buf, a->out.len) != 0))
		abort();
}

/* A decoded message without error: CRLF only, no NUL, lines within the
 * limit (CRLF counted). */
static void check_clean_output(const struct output *out, size_t max_line)
{
	size_t line = 0;

	for (size_t i = 0; i < out->len; i++) {
		char c = out->buf[i];

		line++;
		if (c == '\0')
			abort();
		if (c == '\r' && (i + 1 >= out->len || out->buf[i + 1] != '\n'))
			abort();
		if (c == '\n') {
			if (i == 0 || out->buf[i - 1] != '\r' || line > max_line)
				abort();
			line = 0;
		}
	}
	if (line != 0) /* a complete message ends with CRLF, or is empty */
		abort();
}

/* Dot-stuff a clean message again, add the end, decode: the same message. */
static void check_restuff(const struct output *out, size_t max_line)
{
	size_t cap = 2 * out->len + 3, n = 0;
	char *stuffed = malloc(cap);
	struct run again;

	if (stuffed == NULL)
		abort();
	for (size_t i = 0; i < out->len; i++) {
		if (out->buf[i] == '.' && (i == 0 || out->buf[i - 1] == '\n'))
			stuffed[n++] = '.';
		stuffed[n++] = out->buf[i];
	}
	memcpy(stuffed + n, ".\r\n", 3);
	n += 3;
	decode(span_make(stuffed, n), max_line, UINT64_MAX, 0, 0, &again);
	if (again.result != SMTP_DATA_DONE || again.consumed != n ||
	    again.error != SMTP_DATA_ERROR_NONE || again.out.len != out->len ||
	    (out->len > 0 && memcmp(again.out.buf, out->buf, out->len) != 0))
		abort();
	free(again.out.buf);
	free(stuffed);
}

static void check_crlf_checker(struct span input, size_t max_line, uint32_t seed)
{
	struct smtp_crlf_checker whole, pieces;
	size_t pos = 0;

	smtp_crlf_checker_init(&whole, max_line);
	smtp_crlf_checker_feed(&whole, input);
	smtp_crlf_checker_finish(&whole);
	smtp_crlf_checker_init(&pieces, max_line);
	while (pos < input.len) {
		size_t n = 1 + next_random(&seed) % 7;

		n = n < input.len - pos ? n : input.len - pos;
		smtp_crlf_checker_feed(&pieces, span_make(input.ptr + pos, n));
		pos += n;
	}
	smtp_crlf_checker_finish(&pieces);
	if (whole.error != pieces.error || whole.error_line != pieces.error_line ||
	    whole.lines != pieces.lines || whole.has_8bit != pieces.has_8bit)
		abort();
	if (whole.error == SMTP_DATA_ERROR_NONE &&
	    (memchr(input.ptr, '\0', input.len) != NULL || whole.lines > input.len / 2))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run one, each, random;
	struct span input;
	uint32_t seed;
	size_t max_line;
	uint64_t max_bytes;

	if (size < 4)
		return 0;
	seed = (uint32_t) data[0] | (uint32_t) data[1] << 8 | 0x10000u;
	/* Small limits so that the fuzzer reaches them: 3..66 octets per line
	 * or the default; 0..254 octets per message or no limit. */
	max_line = data[2] < 192 ? 3 + data[2] % 64 : 0;
	max_bytes = data[3] < 128 ? (uint64_t) data[3] * 2 : UINT64_MAX;
	input = span_make((const char *) data + 4, size - 4);

	decode(input, max_line, max_bytes, 0, seed, &one);
	decode(input, max_line, max_bytes, 1, seed, &each);
	decode(input, max_line, max_bytes, 1 + seed % 13, seed, &random);
	check_same(&one, &each);
	check_same(&one, &random);

	if (one.consumed > input.len || one.out.len > one.consumed)
		abort();
	if (one.result == SMTP_DATA_NEED_MORE && one.consumed != input.len)
		abort();
	if (one.result == SMTP_DATA_DONE) {
		/* "\r\n" (the DATA command's) + input ends in CRLF.CRLF at
		 * consumed. */
		static const char end[] = "\r\n.\r\n";

		for (size_t k = 0; k < 5; k++) {
			size_t at = one.consumed + 2 - 5 + k; /* index in "\r\n" + input */
			char c = at < 2 ? "\r\n"[at] : input.ptr[at - 2];

			if (one.consumed < 3 || c != end[k])
				abort();
		}
	}
	if (one.error == SMTP_DATA_ERROR_NONE) {
		if (one.decoded_bytes != one.out.len || one.out.len > max_bytes)
			abort();
		if (one.result == SMTP_DATA_DONE) {
			size_t limit = max_line ? max_line : SMTP_TEXT_LINE_MAX;

			check_clean_output(&one.out, limit);
			check_restuff(&one.out, limit);
		}
	} else if (one.error_line == 0 || one.decoded_bytes < one.out.len) {
		abort();
	}
	check_crlf_checker(input, max_line, seed);

	free(one.out.buf);
	free(each.out.buf);
	free(random.out.buf);
	return 0;
}
