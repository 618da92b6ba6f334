/*
 * parse: POP3 command lines (RFC 1939 3, RFC 2449 3) as bytes in, structs
 * out. No sockets, no clock, no globals: the session, the unit tests and the
 * fuzzer call it alike. What a command means is the command table's
 * business (commands.c); this only says what the line holds.
 */
#ifndef POSTGATE_POP3_PARSE_H
#define POSTGATE_POP3_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/span.h"
#include "pop3/limits.h"

enum pop3_parse_result {
	POP3_PARSE_OK,
	POP3_PARSE_EMPTY,	/* nothing but blanks */
	POP3_PARSE_HAS_NUL,	/* a NUL byte in the line */
	POP3_PARSE_HAS_CONTROL, /* another control byte (a bare CR, a tab is fine) */
	POP3_PARSE_BAD_KEYWORD, /* not 3 or 4 printable non-blank characters */
};

/*
 * One command line without its CRLF. keyword is the first word; rest is
 * everything after the single space that follows it, untrimmed (PASS takes
 * it whole: a password may hold spaces, RFC 1939 7); args are the words of
 * rest separated by runs of spaces. Every span points into line.
 * has_extra_args: rest holds more than POP3_ARGS_MAX words (only commands
 * that take rest whole accept that).
 */
struct pop3_command {
	struct span keyword;
	struct span rest;
	size_t arg_count;
	struct span args[POP3_ARGS_MAX];
	bool has_extra_args;
};

enum pop3_parse_result pop3_command_parse(struct span line, struct pop3_command *command_out);

/*
 * A message number (RFC 1939 5: 1-based, decimal, no sign) that must be at
 * most count. Writes the 0-based index. false for anything else.
 */
bool pop3_message_number_parse(struct span arg, size_t count, size_t *index_out);

/* TOP's line count: a non-negative decimal number (RFC 1939 7). */
bool pop3_line_count_parse(struct span arg, uint64_t *lines_out);

#endif
