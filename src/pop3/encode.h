/*
 * encode: a message file as a POP3 multi-line response (RFC 1939 3): every
 * line ends in CRLF (a bare LF from a file some other tool wrote gets its
 * CR), a line that starts with "." gets one more (byte-stuffing), and the
 * response ends in ".\r\n" after a final CRLF. For TOP (RFC 1939 7) it stops
 * after the header, the empty line and n lines of the body.
 *
 * The encoder is fed the file in chunks of any size and keeps its state
 * between them, so a message is never in memory whole. Pure: no I/O.
 */
#ifndef POSTGATE_POP3_ENCODE_H
#define POSTGATE_POP3_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/span.h"

/* Receives encoded bytes; returns 0, or -1 to stop (out of memory). */
typedef int pop3_sink_fn(void *ctx, struct span bytes);

struct pop3_encoder {
	bool is_top;		 /* stop after the header and top_lines body lines */
	uint64_t top_lines_left; /* body lines still to send (TOP) */
	bool is_in_header;	 /* no empty line seen yet */
	bool is_at_line_start;	 /* the next byte starts a line */
	bool is_after_cr;	 /* the last byte was CR */
	bool is_line_empty;	 /* the current line has had nothing but CR */
	bool is_done;		 /* TOP has sent what it must; the rest is ignored */
};

/* RETR: is_top false. TOP msg n: is_top true, top_lines n. */
void pop3_encoder_init(struct pop3_encoder *e, bool is_top, uint64_t top_lines);

/* Encode the next bytes of the file. -1 when the sink failed. Bytes after
 * TOP's last line are ignored (is_done tells the caller to stop reading). */
int pop3_encoder_feed(struct pop3_encoder *e, struct span bytes, pop3_sink_fn *sink, void *ctx);

/* The file has ended: end the last line if it had no line end, then the
 * terminating ".\r\n". -1 when the sink failed. */
int pop3_encoder_finish(struct pop3_encoder *e, pop3_sink_fn *sink, void *ctx);

#endif
