/*
 * encode: byte-stuffing and line-end repair for RETR and TOP, in runs: the
 * bytes between two insertions go to the sink in one call.
 */
#include "pop3/encode.h"

void pop3_encoder_init(struct pop3_encoder *e, bool is_top, uint64_t top_lines)
{
	*e = (struct pop3_encoder){
		.is_top = is_top,
		.top_lines_left = top_lines,
		.is_in_header = true,
		.is_at_line_start = true,
		.is_line_empty = true,
	};
}

/* A line has ended (its LF was sent): count it for TOP. */
static void line_ended(struct pop3_encoder *e)
{
	if (e->is_top) {
		if (e->is_in_header) {
			/* The empty line ends the header (RFC 5322 2.1) and is sent. */
			if (e->is_line_empty) {
				e->is_in_header = false;
				if (e->top_lines_left == 0)
					e->is_done = true;
			}
		} else if (--e->top_lines_left == 0) {
			e->is_done = true;
		}
	}
	e->is_at_line_start = true;
	e->is_line_empty = true;
}

int pop3_encoder_feed(struct pop3_encoder *e, struct span bytes, pop3_sink_fn *sink, void *ctx)
{
	size_t run = 0; /* start of the bytes not yet given to the sink */

	for (size_t i = 0; i < bytes.len && !e->is_done; i++) {
		char c = bytes.ptr[i];

		if (e->is_at_line_start && c == '.') {
			/* RFC 1939 3: the termination octet is stuffed. */
			if (sink(ctx, span_make(bytes.ptr + run, i - run)) < 0 ||
			    sink(ctx, SPAN_LITERAL(".")) < 0)
				return -1;
			run = i;
		}
		e->is_at_line_start = false;
		if (c == '\n') {
			if (!e->is_after_cr) {
				if (sink(ctx, span_make(bytes.ptr + run, i - run)) < 0 ||
				    sink(ctx, SPAN_LITERAL("\r")) < 0)
					return -1;
				run = i;
			}
			e->is_after_cr = false;
			line_ended(e);
			if (e->is_done) {
				/* Send through this LF, nothing after it. */
				return sink(ctx, span_make(bytes.ptr + run, i + 1 - run));
			}
			continue;
		}
		e->is_after_cr = c == '\r';
		if (c != '\r')
			e->is_line_empty = false;
	}
	if (e->is_done)
		return 0;
	return sink(ctx, span_make(bytes.ptr + run, bytes.len - run));
}

int pop3_encoder_finish(struct pop3_encoder *e, pop3_sink_fn *sink, void *ctx)
{
	if (!e->is_done && !e->is_at_line_start &&
	    sink(ctx, e->is_after_cr ? SPAN_LITERAL("\n") : SPAN_LITERAL("\r\n")) < 0)
		return -1;
	e->is_done = true;
	return sink(ctx, SPAN_LITERAL(".\r\n"));
}
