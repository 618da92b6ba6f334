/*
 * parse: SMTP command lines, paths, EHLO names and the ESMTP parameters of
 * MAIL and RCPT (RFC 5321 4.1, with SIZE, 8BITMIME, BINARYMIME, SMTPUTF8, DSN
 * and AUTH) turned into structs.
 *
 * Pure functions: no I/O, no clock, no globals, no allocation. They read only
 * the bytes they are given, write only their out-parameters, and may be
 * called from any thread. They never choose a reply: each returns a bool or
 * an enum and the session maps it to a reply code (suggestions beside each
 * result below). Spans need not be NUL-terminated; a NUL byte is bad input.
 */
#ifndef POSTGATE_SMTP_PARSE_H
#define POSTGATE_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/span.h"
#include "smtp/limits.h"

/*
 * Split a command line (CRLF already removed) into the verb, up to the first
 * SP, and the arguments after it. RFC 5321 4.1.1 asks for exactly one SP; a
 * run of spaces is accepted, and trailing spaces are dropped from the
 * arguments (some clients send "QUIT "), so args_out is empty when there are
 * none. Both outputs borrow from line.
 */
void smtp_command_split(struct span line, struct span *verb_out, struct span *args_out);

enum smtp_line_result {
	SMTP_LINE_OK,
	SMTP_LINE_HAS_NUL,     /* a NUL byte (STYLE 4) */
	SMTP_LINE_HAS_BARE_CR, /* a CR not part of the final CRLF (RFC 5321 2.3.8) */
	SMTP_LINE_HAS_BARE_LF, /* an LF not part of the final CRLF (RFC 5321 2.3.8) */
};

/* Check a command line given without its final CRLF. The first problem in
 * the line wins. Anything but SMTP_LINE_OK gets a 500 5.5.2 (the session
 * decides). */
enum smtp_line_result smtp_line_check(struct span line);

/*
 * A reverse-path or forward-path (RFC 5321 4.1.2). Every string is
 * NUL-terminated and is "" when it does not apply. Bytes are kept as the
 * client sent them (case, quoting): normalizing is store/address's job.
 */
struct smtp_path {
	bool is_null;	    /* "<>": only a reverse-path may be null */
	bool is_postmaster; /* "<Postmaster>" without a domain (RFC 5321 4.1.1.3) */
	bool has_utf8;	    /* a non-ASCII octet in the path (RFC 6531) */
	/* The local part as it appears, quotes and backslashes included. */
	char local[SMTP_LOCAL_PART_MAX + 1];
	/* The local part with the quoting removed ("\"a b\"" -> "a b"), for
	 * lookups. */
	char local_unquoted[SMTP_LOCAL_PART_MAX + 1];
	/* The domain or address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]"). */
	char domain[SMTP_DOMAIN_MAX + 1];
	/* "local@domain" as given, without the source route; for a postmaster
	 * path, the local part alone. */
	char address[SMTP_ADDRESS_MAX + 1];
};

/*
 * Parse a path at the start of text: "<local@domain>", "<>", a source route
 * "<@a,@b:local@domain>" (accepted and dropped, RFC 5321 4.1.2 and C),
 * "<Postmaster>", or the same without angle brackets when the path is one word
 * (see parse.c). With allow_utf8 (SMTPUTF8 given on MAIL, RFC 6531) the local
 * part and the domain may hold well-formed UTF-8; without it any octet >= 0x80
 * fails. On success fills *path_out, sets *consumed_out to the octets used
 * (through the ">") and returns true; the caller decides whether is_null and
 * is_postmaster are allowed where the path stands. On failure returns false and
 * *path_out is zeroed. The limits of SMTP_LOCAL_PART_MAX and SMTP_DOMAIN_MAX
 * apply.
 */
bool smtp_path_parse(struct span text, bool allow_utf8, struct smtp_path *path_out,
		     size_t *consumed_out);

/* Domain syntax of RFC 5321 4.1.2 (LDH labels of at most SMTP_LABEL_MAX
 * octets, at most SMTP_DOMAIN_MAX in all; U-labels with allow_utf8). */
bool smtp_domain_is_valid(struct span domain, bool allow_utf8);
/* "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3), checked with
 * inet_pton. General address literals (other tags) are refused. */
bool smtp_address_literal_is_valid(struct span literal);

enum smtp_args_result {
	SMTP_ARGS_OK,
	/* Bad syntax: 501 5.5.4, or 501 5.1.7 (sender) / 501 5.1.3
	 * (recipient) when the path is at fault. */
	SMTP_ARGS_SYNTAX,
	/* A parameter this command does not know: 555 5.5.4 (RFC 5321
	 * 4.1.1.11). */
	SMTP_ARGS_UNKNOWN_PARAM,
	/* A known parameter with a bad value, or given twice: 501 5.5.4. */
	SMTP_ARGS_BAD_PARAM_VALUE,
	/* The local part or domain exceeds its limit (RFC 5321 4.5.3.1:
	 * "501 Path too long"). */
	SMTP_ARGS_TOO_LONG,
	/* A non-ASCII path without SMTPUTF8 on MAIL: 550 5.6.7 for MAIL,
	 * 553 5.6.7 for RCPT (RFC 6531 3.5). */
	SMTP_ARGS_NEEDS_SMTPUTF8,
};

enum smtp_body {
	SMTP_BODY_UNSPECIFIED, /* no BODY parameter */
	SMTP_BODY_7BIT,
	SMTP_BODY_8BITMIME,   /* RFC 6152 */
	SMTP_BODY_BINARYMIME, /* RFC 3030 */
};

enum smtp_ret {
	SMTP_RET_UNSPECIFIED, /* no RET parameter */
	SMTP_RET_FULL,	      /* RFC 3461 4.3 */
	SMTP_RET_HDRS,
};

/* Bits of smtp_rcpt_args.notify (RFC 3461 4.1). */
enum smtp_notify {
	SMTP_NOTIFY_NEVER = 1 << 0,
	SMTP_NOTIFY_SUCCESS = 1 << 1,
	SMTP_NOTIFY_FAILURE = 1 << 2,
	SMTP_NOTIFY_DELAY = 1 << 3,
};

struct smtp_mail_args {
	struct smtp_path reverse_path; /* may be null; never a postmaster path */
	bool has_size;
	uint64_t size; /* RFC 1870 SIZE= */
	enum smtp_body body;
	bool is_smtputf8; /* RFC 6531 SMTPUTF8 */
	enum smtp_ret ret;
	bool has_envid;
	char envid[SMTP_ENVID_MAX + 1]; /* RFC 3461 ENVID=, xtext decoded */
	bool has_auth;
	char auth[SMTP_AUTH_PARAM_MAX + 1]; /* RFC 4954 AUTH=, decoded: "<>" or a mailbox */
};

struct smtp_rcpt_args {
	struct smtp_path forward_path; /* never null; may be a postmaster path */
	unsigned notify;	       /* SMTP_NOTIFY_* bits; 0 when NOTIFY was not given */
	bool has_orcpt;
	char orcpt_type[SMTP_ORCPT_MAX + 1];	/* RFC 3461 4.2 addr-type, as given ("rfc822") */
	char orcpt_address[SMTP_ORCPT_MAX + 1]; /* xtext decoded */
};

/*
 * The arguments of MAIL ("FROM:<path> [params]", args as split by
 * smtp_command_split). "FROM:" is matched case-insensitively and one space
 * after the colon is tolerated. Parameters are keywords case-insensitively,
 * separated by spaces; each may appear once. *out is filled on SMTP_ARGS_OK and
 * zeroed otherwise. The session checks SIZE against its limit and whether the
 * extensions it advertises allow the parameters.
 */
enum smtp_args_result smtp_mail_parse(struct span args, struct smtp_mail_args *out);

/* The arguments of RCPT ("TO:<path> [params]"). allow_utf8: SMTPUTF8 was
 * given on this transaction's MAIL. Same conventions as smtp_mail_parse. */
enum smtp_args_result smtp_rcpt_parse(struct span args, bool allow_utf8,
				      struct smtp_rcpt_args *out);

/*
 * The argument of EHLO or HELO: one word of printable ASCII (0x21-0x7E) of
 * at most SMTP_HELO_MAX octets. That takes in a domain, an address literal,
 * and what real clients send instead: the bare NetBIOS name of Outlook and
 * Windows Mail ("DESKTOP3507CDS"), the ".local" name of Mac Mail. Non-ASCII
 * is refused: EHLO comes before SMTPUTF8 can be known (RFC 6531 3.7.1).
 * Trailing spaces are dropped. Copies the word NUL-terminated into out (cap octets) and
 * returns true; false (out "" when cap > 0) when args is empty, holds more than
 * one word or another octet, or does not fit. Whether the name must be a
 * domain is the session's policy (smtp_domain_is_valid,
 * smtp_address_literal_is_valid).
 */
bool smtp_helo_parse(struct span args, char *out, size_t cap);

/*
 * xtext (RFC 3461 4): octets outside "!".."~", and "+" and "=", become "+HH"
 * (upper-case hex). Writes NUL-terminated into out (cap octets); false (out ""
 * when cap > 0) when it does not fit.
 */
bool smtp_xtext_encode(struct span text, char *out, size_t cap);
/*
 * Decode xtext: every octet must be in "!".."~" except "=", and "+" must be
 * followed by two hex digits (either case accepted). Writes the decoded octets
 * NUL-terminated into out and their count into *len_out. False (out "" when
 * cap > 0) on bad syntax, when it does not fit, or when a "+00" would put a
 * NUL into the result.
 */
bool smtp_xtext_decode(struct span xtext, char *out, size_t cap, size_t *len_out);

#endif
