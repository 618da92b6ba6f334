/*
 * data: the DATA decoder and the BDAT line checker. One octet-at-a-time line
 * discipline (line_step) serves both; the DATA decoder adds the dot layer of
 * RFC 5321 4.5.2 on top of it. No I/O and no buffering of message bytes: the
 * sink gets spans of the caller's input, plus the constant "\r\n" when a CRLF
 * is split between two chunks.
 *
 * Output is defined octet by octet, never by chunk, so any split of the input
 * gives the same sink bytes, results and consumed count. A CR is held back
 * until the next octet says whether it begins a CRLF; the octets that caused
 * an error are never passed on.
 */
#include "smtp/data.h"

#include <string.h>

const char *smtp_data_error_name(enum smtp_data_error error)
{
	switch (error) {
	case SMTP_DATA_ERROR_NONE:
		return "none";
	case SMTP_DATA_ERROR_BARE_CR:
		return "bare_cr";
	case SMTP_DATA_ERROR_BARE_LF:
		return "bare_lf";
	case SMTP_DATA_ERROR_NUL:
		return "nul";
	case SMTP_DATA_ERROR_LINE_TOO_LONG:
		return "line_too_long";
	case SMTP_DATA_ERROR_TOO_BIG:
		return "too_big";
	case SMTP_DATA_ERROR_SINK_FAILED:
		return "sink_failed";
	}
	return "unknown";
}

void smtp_crlf_checker_init(struct smtp_crlf_checker *c, size_t max_line_octets)
{
	memset(c, 0, sizeof(*c));
	c->max_line_octets = max_line_octets > 0 ? max_line_octets : SMTP_TEXT_LINE_MAX;
}

/* Keep the first error only, with the line it happened on. */
static void checker_record(struct smtp_crlf_checker *c, enum smtp_data_error error)
{
	if (error == SMTP_DATA_ERROR_NONE || c->error != SMTP_DATA_ERROR_NONE)
		return;
	c->error = error;
	c->error_line = c->lines + 1;
}

/*
 * The line discipline for one octet (RFC 5321 2.3.8: lines end in CRLF and
 * nothing else). Returns the problem this octet shows, if any, and sets
 * *is_line_end_out when it is the LF of a CRLF. A CR's fate is known only at
 * the next octet, so a bare CR is reported there. The caller records errors
 * and counts the line (after recording, so error_line names the right one).
 */
static enum smtp_data_error line_step(struct smtp_crlf_checker *c, unsigned char octet,
				      bool *is_line_end_out)
{
	enum smtp_data_error problem = SMTP_DATA_ERROR_NONE;

	*is_line_end_out = false;
	c->line_octets++;
	if (c->is_cr_pending) {
		c->is_cr_pending = false;
		if (octet == '\n') {
			*is_line_end_out = true;
			problem = c->line_octets > c->max_line_octets
					  ? SMTP_DATA_ERROR_LINE_TOO_LONG
					  : SMTP_DATA_ERROR_NONE;
			c->line_octets = 0;
			return problem;
		}
		problem = SMTP_DATA_ERROR_BARE_CR;
	}
	if (octet >= 0x80)
		c->has_8bit = true;
	if (octet == '\r')
		c->is_cr_pending = true;
	else if (octet == '\n' && problem == SMTP_DATA_ERROR_NONE)
		problem = SMTP_DATA_ERROR_BARE_LF;
	else if (octet == '\0' && problem == SMTP_DATA_ERROR_NONE)
		problem = SMTP_DATA_ERROR_NUL;
	if (problem == SMTP_DATA_ERROR_NONE && c->line_octets > c->max_line_octets)
		problem = SMTP_DATA_ERROR_LINE_TOO_LONG;
	return problem;
}

void smtp_crlf_checker_feed(struct smtp_crlf_checker *c, struct span input)
{
	for (size_t i = 0; i < input.len; i++) {
		bool is_line_end;

		checker_record(c, line_step(c, (unsigned char) input.ptr[i], &is_line_end));
		if (is_line_end)
			c->lines++;
	}
}

enum smtp_data_error smtp_crlf_checker_finish(struct smtp_crlf_checker *c)
{
	if (c->is_cr_pending) {
		c->is_cr_pending = false;
		checker_record(c, SMTP_DATA_ERROR_BARE_CR);
	}
	return c->error;
}

void smtp_data_decoder_init(struct smtp_data_decoder *d, size_t max_line_octets,
			    uint64_t max_message_bytes)
{
	memset(d, 0, sizeof(*d));
	smtp_crlf_checker_init(&d->line, max_line_octets);
	d->max_message_bytes = max_message_bytes;
	/* The data begins right after the CRLF of the DATA command, so a
	 * first line of "." ends an empty message (RFC 5321 4.1.4). */
	d->state = SMTP_DATA_STATE_LINE_START;
}

/* The decoded octets of one smtp_data_decode call not yet passed to the
 * sink: one contiguous run of the input, or the constant CRLF. */
struct emitter {
	struct smtp_data_decoder *d;
	smtp_data_sink_fn *sink;
	void *sink_ctx;
	const char *run;
	size_t run_len;
};

static void emitter_flush(struct emitter *e)
{
	if (e->run_len > 0 && e->d->line.error == SMTP_DATA_ERROR_NONE &&
	    e->sink(e->sink_ctx, span_make(e->run, e->run_len)) != 0)
		checker_record(&e->d->line, SMTP_DATA_ERROR_SINK_FAILED);
	e->run_len = 0;
}

/* The message fails here: what came before still reaches the sink, nothing
 * after it does. */
static void emitter_fail(struct emitter *e, enum smtp_data_error error)
{
	if (error == SMTP_DATA_ERROR_NONE || e->d->line.error != SMTP_DATA_ERROR_NONE)
		return;
	emitter_flush(e);
	checker_record(&e->d->line, error);
}

/* ptr/len are decoded message octets, in order. */
static void emitter_commit(struct emitter *e, const char *ptr, size_t len)
{
	struct smtp_data_decoder *d = e->d;

	d->decoded_bytes += len;
	if (d->line.error != SMTP_DATA_ERROR_NONE)
		return;
	if (d->decoded_bytes > d->max_message_bytes) {
		emitter_fail(e, SMTP_DATA_ERROR_TOO_BIG);
		return;
	}
	if (e->run_len > 0 && e->run + e->run_len == ptr) {
		e->run_len += len;
		return;
	}
	emitter_flush(e);
	e->run = ptr;
	e->run_len = len;
}

/* An octet inside a line (after any leading dot). */
static void decode_text_octet(struct emitter *e, struct span input, size_t i)
{
	struct smtp_data_decoder *d = e->d;
	unsigned char octet = (unsigned char) input.ptr[i];
	bool is_line_end;
	enum smtp_data_error problem = line_step(&d->line, octet, &is_line_end);

	emitter_fail(e, problem);
	if (is_line_end) {
		/* The CR is the previous octet of this chunk, or ended the
		 * previous chunk and was held back. */
		if (i > 0)
			emitter_commit(e, input.ptr + i - 1, 2);
		else
			emitter_commit(e, "\r\n", 2);
		d->line.lines++;
		d->state = SMTP_DATA_STATE_LINE_START;
	} else if (octet != '\r' &&
		   (problem == SMTP_DATA_ERROR_NONE || problem == SMTP_DATA_ERROR_LINE_TOO_LONG)) {
		emitter_commit(e, input.ptr + i, 1);
	}
}

enum smtp_data_result smtp_data_decode(struct smtp_data_decoder *d, struct span input,
				       smtp_data_sink_fn *sink, void *sink_ctx,
				       size_t *consumed_out)
{
	struct emitter e = { d, sink, sink_ctx, NULL, 0 };

	if (d->state == SMTP_DATA_STATE_DONE) {
		*consumed_out = 0;
		return SMTP_DATA_DONE;
	}
	for (size_t i = 0; i < input.len; i++) {
		unsigned char octet = (unsigned char) input.ptr[i];

		switch (d->state) {
		case SMTP_DATA_STATE_LINE_START:
			/* RFC 5321 4.5.2: a leading "." is removed; if the
			 * line was "." alone, that was the end of the data. */
			if (octet == '.') {
				d->state = SMTP_DATA_STATE_DOT;
				continue;
			}
			d->state = SMTP_DATA_STATE_TEXT;
			break;
		case SMTP_DATA_STATE_DOT:
			if (d->line.is_cr_pending && octet == '\n') {
				d->state = SMTP_DATA_STATE_DONE;
				emitter_flush(&e);
				*consumed_out = i + 1;
				return SMTP_DATA_DONE;
			}
			if (!d->line.is_cr_pending && octet == '\r') {
				bool is_line_end;

				emitter_fail(&e, line_step(&d->line, octet, &is_line_end));
				continue;
			}
			/* "..x", ".x", or ".\r" then no LF: an ordinary line
			 * (the bare CR is line_step's to report). */
			d->state = SMTP_DATA_STATE_TEXT;
			break;
		case SMTP_DATA_STATE_TEXT:
			break;
		case SMTP_DATA_STATE_DONE:
		default:
			*consumed_out = i;
			return SMTP_DATA_DONE;
		}
		decode_text_octet(&e, input, i);
	}
	emitter_flush(&e);
	*consumed_out = input.len;
	return SMTP_DATA_NEED_MORE;
}

/* The next SP-separated word of *rest, or false at the end. */
static bool next_word(struct span *rest, struct span *word_out)
{
	size_t i = 0, start;

	while (i < rest->len && rest->ptr[i] == ' ')
		i++;
	if (i == rest->len)
		return false;
	start = i;
	while (i < rest->len && rest->ptr[i] != ' ')
		i++;
	*word_out = span_make(rest->ptr + start, i - start);
	*rest = span_make(rest->ptr + i, rest->len - i);
	return true;
}

bool smtp_bdat_parse(struct span args, uint64_t *size_out, bool *is_last_out)
{
	struct span rest = args, size_word, last_word, extra;
	uint64_t size;
	bool is_last = false;

	/* bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CR LF;
	 * chunk-size = 1*DIGIT; end-marker = "LAST" (RFC 3030 2). */
	if (!next_word(&rest, &size_word) || !span_parse_u64(size_word, &size))
		return false;
	if (next_word(&rest, &last_word)) {
		if (!span_eq_cstr_nocase(last_word, "LAST") || next_word(&rest, &extra))
			return false;
		is_last = true;
	}
	*size_out = size;
	*is_last_out = is_last;
	return true;
}
