/*
 * data: the message text of DATA and BDAT as it arrives, in chunks that may
 * split anywhere (between CR and LF, between "." and CR).
 *
 * - smtp_data_decoder reads DATA (RFC 5321 4.1.4, 4.5.2): removes the dot
 *   stuffing, finds the end of the data and streams the message to a sink.
 *   Only <CRLF>.<CRLF> ends the data (the start of the data counts as just
 *   after a CRLF). A bare CR or LF, wherever it stands, never ends it: it
 *   fails the message, and the decoder reads on to the real end so the
 *   session stays in step with the client. That is what closes SMTP
 *   smuggling.
 * - smtp_crlf_checker applies the same line rules to BDAT chunks (RFC 3030),
 *   which carry no dot stuffing and are counted, not terminated.
 *
 * Pure: no I/O, no clock, no globals, no allocation. Memory is O(1) whatever
 * the message size: the decoder never holds message bytes, it passes spans of
 * its input to the sink. Structs are embedded by the caller; fields not
 * marked as results are private.
 */
#ifndef POSTGATE_SMTP_DATA_H
#define POSTGATE_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/span.h"
#include "smtp/limits.h"

/* Why a message failed. Sticky: the first error wins and later ones are not
 * recorded. Suggested replies after the final ".": 550 5.6.0 for the line
 * errors (bare CR/LF, NUL, line length; RFC 5321 4.5.3.1.6 suggests 500 for
 * a line too long), 552 5.3.4 for TOO_BIG, 451 4.3.0 for SINK_FAILED. */
enum smtp_data_error {
	SMTP_DATA_ERROR_NONE,
	SMTP_DATA_ERROR_BARE_CR,       /* a CR not followed by LF (RFC 5321 2.3.8) */
	SMTP_DATA_ERROR_BARE_LF,       /* an LF not preceded by CR (RFC 5321 2.3.8) */
	SMTP_DATA_ERROR_NUL,	       /* a NUL octet (RFC 5322 2.3 forbids it) */
	SMTP_DATA_ERROR_LINE_TOO_LONG, /* a line over max_line_octets */
	SMTP_DATA_ERROR_TOO_BIG,       /* decoded size over max_message_bytes */
	SMTP_DATA_ERROR_SINK_FAILED,   /* the sink returned -1 (disk full, ...) */
};

/* A short lower-case name for logs ("bare_lf"). */
const char *smtp_data_error_name(enum smtp_data_error error);

/*
 * The line rules over a stream of octets: lines end only in CRLF; no bare CR,
 * bare LF or NUL; no line longer than max_line_octets (CRLF included). Used
 * as is for BDAT, and under the DATA decoder for DATA.
 */
struct smtp_crlf_checker {
	/* Results, valid at any time. */
	enum smtp_data_error error; /* the first error, or NONE */
	uint64_t error_line;	    /* its line number, from 1; 0 when NONE */
	uint64_t lines;		    /* lines ended by CRLF so far */
	bool has_8bit;		    /* an octet >= 0x80 was seen (BODY=7BIT check) */
	/* Private. */
	uint64_t max_line_octets;
	uint64_t line_octets;
	bool is_cr_pending;
};

/* max_line_octets counts CRLF; 0 means SMTP_TEXT_LINE_MAX. */
void smtp_crlf_checker_init(struct smtp_crlf_checker *c, size_t max_line_octets);
/* Feed the next chunk; any length, any split. */
void smtp_crlf_checker_feed(struct smtp_crlf_checker *c, struct span input);
/* At the end of the data (BDAT ... LAST): a CR left waiting for its LF is a
 * bare CR. Returns c->error. A last line without CRLF is not an error here
 * (RFC 3030 does not require one); the session may add CRLF when it stores. */
enum smtp_data_error smtp_crlf_checker_finish(struct smtp_crlf_checker *c);

/* Receives decoded message bytes, in order, in pieces of any size; bytes
 * borrows from the decoder's input (or a constant) and is valid only during
 * the call. Return 0, or -1 to stop: the decoder then records
 * SMTP_DATA_ERROR_SINK_FAILED and reads on to the end of the data. */
typedef int smtp_data_sink_fn(void *ctx, struct span bytes);

enum smtp_data_state {
	SMTP_DATA_STATE_LINE_START, /* the next octet starts a line */
	SMTP_DATA_STATE_DOT,	    /* a line started with "." */
	SMTP_DATA_STATE_TEXT,	    /* inside a line */
	SMTP_DATA_STATE_DONE,	    /* <CRLF>.<CRLF> seen */
};

struct smtp_data_decoder {
	/* Results: line rules, error (including TOO_BIG and SINK_FAILED) and
	 * has_8bit are in line. */
	struct smtp_crlf_checker line;
	uint64_t decoded_bytes; /* the decoded message size, counted on past any error */
	/* Private. */
	uint64_t max_message_bytes;
	enum smtp_data_state state;
};

/*
 * Start a message, right after the 354 reply. max_line_octets counts CRLF
 * and not the stuffed dot (RFC 5321 4.5.3.1.6); 0 means SMTP_TEXT_LINE_MAX.
 * A message whose decoded size exceeds max_message_bytes fails with TOO_BIG.
 */
void smtp_data_decoder_init(struct smtp_data_decoder *d, size_t max_line_octets,
			    uint64_t max_message_bytes);

enum smtp_data_result {
	SMTP_DATA_NEED_MORE, /* all of input was data; feed the next chunk */
	SMTP_DATA_DONE,	     /* the end of the data was found */
};

/*
 * Decode the next chunk. The sink receives the message (dot stuffing
 * removed, CRLF line endings kept, the final <CRLF>.<CRLF> not included: the
 * message ends with the CRLF before the dot) until the first error; after an
 * error it is never called again, and what it got is exactly the message up
 * to that point, the same however the input was split. *consumed_out is the
 * number of input octets that belonged to the data: all of them on
 * NEED_MORE; on DONE, the rest of input is the client's next (pipelined)
 * command. Once DONE, further calls consume nothing and return DONE; check
 * d->line.error before accepting the message.
 */
enum smtp_data_result smtp_data_decode(struct smtp_data_decoder *d, struct span input,
				       smtp_data_sink_fn *sink, void *sink_ctx,
				       size_t *consumed_out);

/*
 * The arguments of "BDAT <chunk-size> [LAST]" (RFC 3030 2): the size in
 * digits only (no sign, no overflow), then optionally LAST in any case.
 * Spaces between and after are tolerated. False on anything else.
 */
bool smtp_bdat_parse(struct span args, uint64_t *size_out, bool *is_last_out);

#endif
