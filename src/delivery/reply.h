/*
 * reply: reading the replies of a remote SMTP server (RFC 5321 4.2), one
 * line at a time, into a bounded struct; and what its EHLO reply offers.
 *
 * Pure: no I/O, no clock, no globals, so the SMTP client, the tests and the
 * fuzzer (fuzz/smtp_reply_fuzz.c) call it directly. Every bound is checked:
 * a line longer than DELIVERY_REPLY_LINE_MAX, more than
 * DELIVERY_REPLY_LINES_MAX lines, a line that is not "DDD", "DDD text" or
 * "DDD-text", a code outside 200-599 or lines that disagree on the code make
 * the reply bad, and the client then drops the connection.
 */
#ifndef POSTGATE_DELIVERY_REPLY_H
#define POSTGATE_DELIVERY_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/span.h"

#define DELIVERY_REPLY_LINE_MAX	 512  /* octets with the CRLF: RFC 5321 4.5.3.1.5 */
#define DELIVERY_REPLY_LINES_MAX 100  /* a reply longer than this is hostile */
#define DELIVERY_REPLY_TEXT_MAX	 4096 /* text kept, lines joined by '\n' */

struct delivery_reply {
	unsigned code; /* 200..599 once complete */
	size_t line_count;
	bool is_truncated;		    /* text lost lines past DELIVERY_REPLY_TEXT_MAX */
	char text[DELIVERY_REPLY_TEXT_MAX]; /* each line's text after "DDD-" */
	size_t text_len;
};

enum delivery_reply_status {
	DELIVERY_REPLY_MORE, /* a continuation line: feed the next one */
	DELIVERY_REPLY_DONE, /* the last line: reply is complete */
	DELIVERY_REPLY_BAD,  /* not a reply line, or past a bound */
};

/* Start reading a new reply. */
void delivery_reply_init(struct delivery_reply *reply);

/* Feed one line without its CRLF (line.len excludes it, so at most
 * DELIVERY_REPLY_LINE_MAX - 2). */
enum delivery_reply_status delivery_reply_feed(struct delivery_reply *reply, struct span line);

/* "250 2.1.5 Ok" style one-line summary of the last line for logs and
 * DSNs: code, then the last line's text, cut to out_cap. */
void delivery_reply_summary(const struct delivery_reply *reply, char *out, size_t out_cap);

/* What an EHLO reply offers (RFC 5321 4.1.1.1: keywords on lines 2..n). */
struct delivery_ehlo {
	bool has_starttls, has_pipelining, has_8bitmime, has_smtputf8, has_dsn, has_size;
	uint64_t size_max; /* SIZE's argument; 0: none given (no limit) */
};

void delivery_ehlo_parse(const struct delivery_reply *reply, struct delivery_ehlo *ehlo_out);

#endif
