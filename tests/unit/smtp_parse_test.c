/*
 * Tests for src/smtp/parse.c: command splitting, line checks, paths (every
 * length limit at the limit and one past), MAIL and RCPT parameters, EHLO
 * names, domains, address literals and xtext.
 *
 * Inputs and expectations may hold "{c*N}", which stands for N copies of the
 * octet c, so limit cases read as what they test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/parse.h"

#define EXPAND_CAP 2048

/* Expand "{c*N}" into N copies of c; other octets are copied. Each call
 * returns the next of a few static buffers, so several may be live. */
static const char *expand(const char *pattern)
{
	static char bufs[8][EXPAND_CAP];
	static unsigned next;
	char *out;
	size_t n = 0;

	if (pattern == NULL)
		return NULL;
	out = bufs[next++ % 8];
	for (const char *p = pattern; *p != '\0';) {
		if (p[0] == '{' && p[1] != '\0' && p[2] == '*') {
			char c = p[1];
			char *end;
			unsigned long count = strtoul(p + 3, &end, 10);

			assert_true(*end == '}');
			assert_true(n + count < EXPAND_CAP);
			memset(out + n, c, count);
			n += count;
			p = end + 1;
		} else {
			assert_true(n + 1 < EXPAND_CAP);
			out[n++] = *p++;
		}
	}
	out[n] = '\0';
	return out;
}

static const struct split_case {
	const char *name, *line, *verb, *args;
} split_cases[] = {
	{ "verb and arguments", "MAIL FROM:<a@example.test>", "MAIL", "FROM:<a@example.test>" },
	{ "verb alone", "QUIT", "QUIT", "" },
	{ "trailing space after the verb", "QUIT ", "QUIT", "" },
	{ "run of spaces", "NOOP   x  y  ", "NOOP", "x  y" },
	{ "empty line", "", "", "" },
	{ "leading space: empty verb", " QUIT", "", "QUIT" },
	{ "tab is not a separator", "EHLO\tx", "EHLO\tx", "" },
};

static void test_command_split(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(split_cases); i++) {
		const struct split_case *c = &split_cases[i];
		struct span verb, args;

		print_message("case: %s\n", c->name);
		smtp_command_split(span_from_cstr(c->line), &verb, &args);
		assert_true(span_eq_cstr(verb, c->verb));
		assert_true(span_eq_cstr(args, c->args));
	}
}

static const struct line_case {
	const char *name;
	const char *line;
	size_t len;
	enum smtp_line_result want;
} line_cases[] = {
	{ "clean", "EHLO client.example", 19, SMTP_LINE_OK },
	{ "empty", "", 0, SMTP_LINE_OK },
	{ "NUL", "NOOP \0x", 7, SMTP_LINE_HAS_NUL },
	{ "bare CR", "NOOP \rx", 7, SMTP_LINE_HAS_BARE_CR },
	{ "bare LF", "NOOP \nx", 7, SMTP_LINE_HAS_BARE_LF },
	{ "CR at the end", "NOOP\r", 5, SMTP_LINE_HAS_BARE_CR },
	{ "first problem wins", "\nA\r\0", 4, SMTP_LINE_HAS_BARE_LF },
	{ "8-bit is not a line problem", "NOOP \xff", 6, SMTP_LINE_OK },
};

static void test_line_check(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(line_cases); i++) {
		const struct line_case *c = &line_cases[i];

		print_message("case: %s\n", c->name);
		assert_int_equal(smtp_line_check(span_make(c->line, c->len)), c->want);
	}
}

#define NUL_PATH   1u
#define POSTMASTER 2u
#define UTF8	   4u

static const struct path_case {
	const char *name, *input;
	bool allow_utf8;
	const char *address; /* NULL: must fail */
	const char *local, *unquoted, *domain;
	unsigned flags;
	size_t consumed; /* 0: all of input */
} path_cases[] = {
	{ "plain", "<alice@example.test>", false, "alice@example.test", "alice", "alice",
	  "example.test", 0, 0 },
	{ "case kept", "<Alice@Example.TEST>", false, "Alice@Example.TEST", "Alice", "Alice",
	  "Example.TEST", 0, 0 },
	{ "atext specials", "<a!#$%&'*+-/=?^_`{|}~b@x.test>", false, "a!#$%&'*+-/=?^_`{|}~b@x.test",
	  NULL, NULL, NULL, 0, 0 },
	{ "dotted local part", "<first.last@x.test>", false, "first.last@x.test", NULL, NULL, NULL,
	  0, 0 },
	{ "null path", "<>", false, "", "", "", "", NUL_PATH, 0 },
	{ "null path, rest left", "<> SIZE=1", false, "", "", "", "", NUL_PATH, 2 },
	{ "path, rest left", "<a@x.test> BODY=8BITMIME", false, "a@x.test", NULL, NULL, NULL, 0,
	  10 },
	{ "postmaster", "<postmaster>", false, "postmaster", "postmaster", "postmaster", "",
	  POSTMASTER, 0 },
	{ "postmaster any case", "<PostMaster>", false, "PostMaster", NULL, NULL, "", POSTMASTER,
	  0 },
	{ "postmaster with a domain is a mailbox", "<postmaster@x.test>", false,
	  "postmaster@x.test", NULL, NULL, "x.test", 0, 0 },
	{ "other local part without a domain", "<alice>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "quoted postmaster is not postmaster", "<\"postmaster\">", false, NULL, NULL, NULL, NULL,
	  0, 0 },
	{ "source route", "<@a.test,@b.test:bob@c.test>", false, "bob@c.test", "bob", "bob",
	  "c.test", 0, 0 },
	{ "source route, one hop", "<@a.test:bob@c.test>", false, "bob@c.test", NULL, NULL, NULL, 0,
	  0 },
	{ "source route without colon", "<@a.test,bob@c.test>", false, NULL, NULL, NULL, NULL, 0,
	  0 },
	{ "source route, empty hop", "<@,@b.test:bob@c.test>", false, NULL, NULL, NULL, NULL, 0,
	  0 },
	{ "source route to postmaster", "<@a.test:postmaster>", false, NULL, NULL, NULL, NULL, 0,
	  0 },
	{ "source route, literal hop", "<@[192.0.2.1]:bob@c.test>", false, NULL, NULL, NULL, NULL,
	  0, 0 },
	{ "quoted local part", "<\"john doe\"@x.test>", false, "\"john doe\"@x.test",
	  "\"john doe\"", "john doe", "x.test", 0, 0 },
	{ "quoted pairs", "<\"a\\\"b\\\\c\"@x.test>", false, "\"a\\\"b\\\\c\"@x.test", NULL,
	  "a\"b\\c", NULL, 0, 0 },
	{ "quoted @ and >", "<\"a@b>\"@x.test>", false, "\"a@b>\"@x.test", NULL, "a@b>", NULL, 0,
	  0 },
	{ "empty quoted local part", "<\"\"@x.test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "unterminated quote", "<\"abc@x.test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "quoted pair of a control", "<\"a\\\tb\"@x.test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "control in quotes", "<\"a\tb\"@x.test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "empty local part", "<@x.test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "leading dot", "<.a@x.test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "trailing dot", "<a.@x.test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "double dot", "<a..b@x.test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "two @", "<a@b@x.test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "space inside", "<a b@x.test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "space before >", "<a@x.test >", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "no closing bracket", "<a@x.test", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "empty", "", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "lone <", "<", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "NUL in local part", "<a\0b@x.test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "empty domain", "<a@>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "domain trailing dot", "<a@x.test.>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "domain empty label", "<a@x..test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "label starts with hyphen", "<a@-x.test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "label ends with hyphen", "<a@x-.test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "hyphen inside label", "<a@x-y.test>", false, "a@x-y.test", NULL, NULL, NULL, 0, 0 },
	{ "underscore in domain", "<a@x_y.test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "single-label domain", "<a@localhost>", false, "a@localhost", NULL, NULL, NULL, 0, 0 },
	{ "IPv4 literal", "<a@[192.0.2.1]>", false, "a@[192.0.2.1]", NULL, NULL, "[192.0.2.1]", 0,
	  0 },
	{ "IPv6 literal", "<a@[IPv6:2001:db8::1]>", false, "a@[IPv6:2001:db8::1]", NULL, NULL,
	  "[IPv6:2001:db8::1]", 0, 0 },
	{ "IPv6 tag any case", "<a@[ipv6:::1]>", false, "a@[ipv6:::1]", NULL, NULL, NULL, 0, 0 },
	{ "IPv4-mapped IPv6", "<a@[IPv6:::ffff:192.0.2.1]>", false, "a@[IPv6:::ffff:192.0.2.1]",
	  NULL, NULL, NULL, 0, 0 },
	{ "IPv4 octet too big", "<a@[192.0.2.256]>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "IPv4 three parts", "<a@[192.0.2]>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "IPv6 without tag", "<a@[2001:db8::1]>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "IPv6 bad", "<a@[IPv6:2001:db8:::1]>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "general literal refused", "<a@[x-tag:abc]>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "literal not closed", "<a@[192.0.2.1>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "empty literal", "<a@[]>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "text after literal", "<a@[192.0.2.1]x>", false, NULL, NULL, NULL, NULL, 0, 0 },

	/* Without angle brackets (old clients): one word only. */
	{ "no brackets", "alice@x.test", false, "alice@x.test", NULL, NULL, NULL, 0, 0 },
	{ "no brackets, parameters follow", "alice@x.test SIZE=10", false, "alice@x.test", NULL,
	  NULL, NULL, 0, 12 },
	{ "no brackets, postmaster", "Postmaster", false, "Postmaster", NULL, NULL, "", POSTMASTER,
	  0 },
	{ "no brackets, quoted with space", "\"a b\"@x.test", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "no brackets, quoted without space", "\"a.b\"@x.test", false, "\"a.b\"@x.test", NULL,
	  "a.b", NULL, 0, 0 },
	{ "no brackets, closing bracket", "a@x.test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "leading space", " <a@x.test>", false, NULL, NULL, NULL, NULL, 0, 0 },

	/* UTF-8 (RFC 6531): allowed only with allow_utf8, and well-formed. */
	{ "UTF-8 local part", "<j\xc3\xb6rg@x.test>", true, "j\xc3\xb6rg@x.test", NULL, NULL, NULL,
	  UTF8, 0 },
	{ "UTF-8 local part refused without SMTPUTF8", "<j\xc3\xb6rg@x.test>", false, NULL, NULL,
	  NULL, NULL, 0, 0 },
	{ "U-label",
	  "<a@b\xc3\xbc"
	  "cher.test>",
	  true,
	  "a@b\xc3\xbc"
	  "cher.test",
	  NULL, NULL,
	  "b\xc3\xbc"
	  "cher.test",
	  UTF8, 0 },
	{ "U-label refused without SMTPUTF8",
	  "<a@b\xc3\xbc"
	  "cher.test>",
	  false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "3- and 4-octet UTF-8", "<\xe2\x82\xac\xf0\x9f\x98\x80@x.test>", true,
	  "\xe2\x82\xac\xf0\x9f\x98\x80@x.test", NULL, NULL, NULL, UTF8, 0 },
	{ "UTF-8 in quotes", "<\"a \xc3\xa9\"@x.test>", true, "\"a \xc3\xa9\"@x.test", NULL,
	  "a \xc3\xa9", NULL, UTF8, 0 },
	{ "UTF-8 in source route", "<@\xc3\xa9.test:a@x.test>", true, "a@x.test", NULL, NULL, NULL,
	  UTF8, 0 },
	{ "overlong 2-octet", "<\xc0\xaf@x.test>", true, NULL, NULL, NULL, NULL, 0, 0 },
	{ "overlong 2-octet C1", "<\xc1\xbf@x.test>", true, NULL, NULL, NULL, NULL, 0, 0 },
	{ "overlong 3-octet", "<\xe0\x80\xaf@x.test>", true, NULL, NULL, NULL, NULL, 0, 0 },
	{ "overlong 4-octet", "<\xf0\x80\x80\xaf@x.test>", true, NULL, NULL, NULL, NULL, 0, 0 },
	{ "surrogate", "<\xed\xa0\x80@x.test>", true, NULL, NULL, NULL, NULL, 0, 0 },
	{ "past U+10FFFF", "<\xf4\x90\x80\x80@x.test>", true, NULL, NULL, NULL, NULL, 0, 0 },
	{ "F5 lead octet", "<\xf5\x80\x80\x80@x.test>", true, NULL, NULL, NULL, NULL, 0, 0 },
	{ "lone continuation", "<\x80@x.test>", true, NULL, NULL, NULL, NULL, 0, 0 },
	{ "truncated sequence", "<a@x.test\xc3>", true, NULL, NULL, NULL, NULL, 0, 0 },
	{ "truncated at the end of input", "a@x\xe2\x82", true, NULL, NULL, NULL, NULL, 0, 0 },
	{ "last code point", "<\xf4\x8f\xbf\xbf@x.test>", true, "\xf4\x8f\xbf\xbf@x.test", NULL,
	  NULL, NULL, UTF8, 0 },

	/* Limits: local part 64 octets as it appears (RFC 5321 4.5.3.1.1),
	 * label 63 (RFC 1035 2.3.4), domain 255 (RFC 5321 4.5.3.1.2). */
	{ "local part 64", "<{l*64}@x.test>", false, "{l*64}@x.test", NULL, NULL, NULL, 0, 0 },
	{ "local part 65", "<{l*65}@x.test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "quoted local part 64 with quotes", "<\"{q*62}\"@x.test>", false, "\"{q*62}\"@x.test",
	  NULL, "{q*62}", NULL, 0, 0 },
	{ "quoted local part 65 with quotes", "<\"{q*63}\"@x.test>", false, NULL, NULL, NULL, NULL,
	  0, 0 },
	{ "label 63", "<a@{d*63}.test>", false, "a@{d*63}.test", NULL, NULL, NULL, 0, 0 },
	{ "label 64", "<a@{d*64}.test>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "domain 255", "<a@{a*63}.{b*63}.{c*63}.{d*63}>", false, "a@{a*63}.{b*63}.{c*63}.{d*63}",
	  NULL, NULL, "{a*63}.{b*63}.{c*63}.{d*63}", 0, 0 },
	{ "domain 256", "<a@{a*63}.{b*63}.{c*63}.{d*62}.e>", false, NULL, NULL, NULL, NULL, 0, 0 },
	{ "local 64 and domain 255", "<{l*64}@{a*63}.{b*63}.{c*63}.{d*63}>", false,
	  "{l*64}@{a*63}.{b*63}.{c*63}.{d*63}", NULL, NULL, NULL, 0, 0 },
	{ "U-label over 63 octets", "<a@\xc3\xa9{x*70}.test>", true, "a@\xc3\xa9{x*70}.test", NULL,
	  NULL, NULL, UTF8, 0 },
	{ "route hop 256", "<@{a*63}.{b*63}.{c*63}.{d*62}.e:a@x.test>", false, NULL, NULL, NULL,
	  NULL, 0, 0 },
};

static void check_path_case(const struct path_case *c, struct span input)
{
	struct smtp_path got;
	size_t consumed = 4242;
	bool ok = smtp_path_parse(input, c->allow_utf8, &got, &consumed);

	assert_int_equal(ok, c->address != NULL);
	if (!ok) {
		assert_int_equal(consumed, 4242);
		assert_string_equal(got.address, "");
		assert_false(got.is_null || got.is_postmaster || got.has_utf8);
		return;
	}
	assert_string_equal(got.address, expand(c->address));
	if (c->local != NULL)
		assert_string_equal(got.local, expand(c->local));
	if (c->unquoted != NULL)
		assert_string_equal(got.local_unquoted, expand(c->unquoted));
	if (c->domain != NULL)
		assert_string_equal(got.domain, expand(c->domain));
	assert_int_equal(got.is_null, (c->flags & NUL_PATH) != 0);
	assert_int_equal(got.is_postmaster, (c->flags & POSTMASTER) != 0);
	assert_int_equal(got.has_utf8, (c->flags & UTF8) != 0);
	assert_int_equal(consumed, c->consumed ? c->consumed : input.len);
}

static void test_path_parse(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(path_cases); i++) {
		const struct path_case *c = &path_cases[i];
		const char *input = expand(c->input);

		print_message("case: %s\n", c->name);
		check_path_case(c, span_from_cstr(input));
	}
	/* A NUL inside the span (span_from_cstr would stop at it). */
	print_message("case: NUL octet inside the span\n");
	{
		struct smtp_path got;
		size_t consumed;

		assert_false(
			smtp_path_parse(span_make("<a\0b@x.test>", 12), true, &got, &consumed));
		assert_false(
			smtp_path_parse(span_make("<\"a\0b\"@x.test>", 14), true, &got, &consumed));
	}
}

/* Field checks for MAIL; unset fields must come back zero. */
struct mail_case {
	const char *name, *args;
	enum smtp_args_result result;
	const char *address;
	bool is_null;
	bool has_size;
	uint64_t size;
	enum smtp_body body;
	bool is_smtputf8;
	enum smtp_ret ret;
	const char *envid, *auth;
};

static const struct mail_case mail_cases[] = {
	{ .name = "plain", .args = "FROM:<a@x.test>", .address = "a@x.test" },
	{ .name = "lower case FROM", .args = "from:<a@x.test>", .address = "a@x.test" },
	{ .name = "null reverse-path", .args = "FROM:<>", .address = "", .is_null = true },
	{ .name = "one space after colon", .args = "FROM: <a@x.test>", .address = "a@x.test" },
	{ .name = "two spaces after colon",
	  .args = "FROM:  <a@x.test>",
	  .result = SMTP_ARGS_SYNTAX },
	{ .name = "space before colon", .args = "FROM :<a@x.test>", .result = SMTP_ARGS_SYNTAX },
	{ .name = "no FROM", .args = "<a@x.test>", .result = SMTP_ARGS_SYNTAX },
	{ .name = "TO instead of FROM", .args = "TO:<a@x.test>", .result = SMTP_ARGS_SYNTAX },
	{ .name = "empty", .args = "", .result = SMTP_ARGS_SYNTAX },
	{ .name = "no path", .args = "FROM:", .result = SMTP_ARGS_SYNTAX },
	{ .name = "no brackets", .args = "FROM:a@x.test", .address = "a@x.test" },
	{ .name = "no brackets, space, parameters",
	  .args = "FROM: a@x.test SIZE=5",
	  .address = "a@x.test",
	  .has_size = true,
	  .size = 5 },
	{ .name = "postmaster is no reverse-path",
	  .args = "FROM:<postmaster>",
	  .result = SMTP_ARGS_SYNTAX },
	{ .name = "garbage after path", .args = "FROM:<a@x.test>x", .result = SMTP_ARGS_SYNTAX },
	{ .name = "bad path", .args = "FROM:<a@@x.test>", .result = SMTP_ARGS_SYNTAX },
	{ .name = "local part 65", .args = "FROM:<{l*65}@x.test>", .result = SMTP_ARGS_TOO_LONG },
	{ .name = "local part 64", .args = "FROM:<{l*64}@x.test>", .address = "{l*64}@x.test" },
	{ .name = "domain 256",
	  .args = "FROM:<a@{a*63}.{b*63}.{c*63}.{d*62}.e>",
	  .result = SMTP_ARGS_TOO_LONG },
	{ .name = "SIZE",
	  .args = "FROM:<a@x.test> SIZE=12345",
	  .address = "a@x.test",
	  .has_size = true,
	  .size = 12345 },
	{ .name = "SIZE=0",
	  .args = "FROM:<a@x.test> SIZE=0",
	  .address = "a@x.test",
	  .has_size = true,
	  .size = 0 },
	{ .name = "SIZE max",
	  .args = "FROM:<a@x.test> SIZE=18446744073709551615",
	  .address = "a@x.test",
	  .has_size = true,
	  .size = UINT64_MAX },
	{ .name = "SIZE overflow",
	  .args = "FROM:<a@x.test> SIZE=18446744073709551616",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "SIZE negative",
	  .args = "FROM:<a@x.test> SIZE=-1",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "SIZE letters",
	  .args = "FROM:<a@x.test> SIZE=12k",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "SIZE without value",
	  .args = "FROM:<a@x.test> SIZE",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "SIZE empty value", .args = "FROM:<a@x.test> SIZE=", .result = SMTP_ARGS_SYNTAX },
	{ .name = "SIZE twice",
	  .args = "FROM:<a@x.test> SIZE=1 size=1",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "BODY=7BIT",
	  .args = "FROM:<a@x.test> BODY=7BIT",
	  .address = "a@x.test",
	  .body = SMTP_BODY_7BIT },
	{ .name = "BODY=8bitmime",
	  .args = "FROM:<a@x.test> body=8bitmime",
	  .address = "a@x.test",
	  .body = SMTP_BODY_8BITMIME },
	{ .name = "BODY=BINARYMIME",
	  .args = "FROM:<a@x.test> BODY=BINARYMIME",
	  .address = "a@x.test",
	  .body = SMTP_BODY_BINARYMIME },
	{ .name = "BODY bad",
	  .args = "FROM:<a@x.test> BODY=9BIT",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "SMTPUTF8",
	  .args = "FROM:<a@x.test> SMTPUTF8",
	  .address = "a@x.test",
	  .is_smtputf8 = true },
	{ .name = "SMTPUTF8 with value",
	  .args = "FROM:<a@x.test> SMTPUTF8=yes",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "UTF-8 path with SMTPUTF8",
	  .args = "FROM:<j\xc3\xb6rg@x.test> SMTPUTF8",
	  .address = "j\xc3\xb6rg@x.test",
	  .is_smtputf8 = true },
	{ .name = "UTF-8 path without SMTPUTF8",
	  .args = "FROM:<j\xc3\xb6rg@x.test>",
	  .result = SMTP_ARGS_NEEDS_SMTPUTF8 },
	{ .name = "ill-formed UTF-8 path",
	  .args = "FROM:<j\xc3(rg@x.test> SMTPUTF8",
	  .result = SMTP_ARGS_SYNTAX },
	{ .name = "RET=FULL",
	  .args = "FROM:<a@x.test> RET=FULL",
	  .address = "a@x.test",
	  .ret = SMTP_RET_FULL },
	{ .name = "RET=hdrs",
	  .args = "FROM:<a@x.test> RET=hdrs",
	  .address = "a@x.test",
	  .ret = SMTP_RET_HDRS },
	{ .name = "RET bad",
	  .args = "FROM:<a@x.test> RET=NONE",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "RET twice",
	  .args = "FROM:<a@x.test> RET=FULL RET=HDRS",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "RET without value",
	  .args = "FROM:<a@x.test> RET",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ENVID twice",
	  .args = "FROM:<a@x.test> ENVID=a ENVID=b",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ENVID decoded",
	  .args = "FROM:<a@x.test> ENVID=QQ+2B1+3Dx",
	  .address = "a@x.test",
	  .envid = "QQ+1=x" },
	{ .name = "ENVID 100",
	  .args = "FROM:<a@x.test> ENVID={e*100}",
	  .address = "a@x.test",
	  .envid = "{e*100}" },
	{ .name = "ENVID 101",
	  .args = "FROM:<a@x.test> ENVID={e*101}",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ENVID 101 as sent, 99 decoded",
	  .args = "FROM:<a@x.test> ENVID=+41{x*98}",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ENVID 100 as sent with hex",
	  .args = "FROM:<a@x.test> ENVID=+41{x*97}",
	  .address = "a@x.test",
	  .envid = "A{x*97}" },
	{ .name = "ENVID bad hex",
	  .args = "FROM:<a@x.test> ENVID=a+2G",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ENVID truncated hex",
	  .args = "FROM:<a@x.test> ENVID=a+2",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ENVID control decoded",
	  .args = "FROM:<a@x.test> ENVID=a+0Ab",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ENVID NUL decoded",
	  .args = "FROM:<a@x.test> ENVID=a+00b",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ENVID 8-bit decoded",
	  .args = "FROM:<a@x.test> ENVID=a+C3+A9",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "AUTH=<>",
	  .args = "FROM:<a@x.test> AUTH=<>",
	  .address = "a@x.test",
	  .auth = "<>" },
	{ .name = "AUTH mailbox",
	  .args = "FROM:<a@x.test> AUTH=e+2Bf@x.test",
	  .address = "a@x.test",
	  .auth = "e+f@x.test" },
	{ .name = "AUTH too long",
	  .args = "FROM:<a@x.test> AUTH={z*321}",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "AUTH at the limit",
	  .args = "FROM:<a@x.test> AUTH={z*320}",
	  .address = "a@x.test",
	  .auth = "{z*320}" },
	{ .name = "all parameters, several spaces",
	  .args = "FROM:<a@x.test>  SIZE=10 BODY=8BITMIME   SMTPUTF8 RET=HDRS ENVID=id1 AUTH=<>",
	  .address = "a@x.test",
	  .has_size = true,
	  .size = 10,
	  .body = SMTP_BODY_8BITMIME,
	  .is_smtputf8 = true,
	  .ret = SMTP_RET_HDRS,
	  .envid = "id1",
	  .auth = "<>" },
	{ .name = "unknown parameter",
	  .args = "FROM:<a@x.test> XFOO=1",
	  .result = SMTP_ARGS_UNKNOWN_PARAM },
	{ .name = "RCPT parameter on MAIL",
	  .args = "FROM:<a@x.test> NOTIFY=NEVER",
	  .result = SMTP_ARGS_UNKNOWN_PARAM },
	{ .name = "keyword starting with hyphen",
	  .args = "FROM:<a@x.test> -X=1",
	  .result = SMTP_ARGS_SYNTAX },
	{ .name = "keyword with underscore",
	  .args = "FROM:<a@x.test> X_Y=1",
	  .result = SMTP_ARGS_SYNTAX },
	{ .name = "value with =", .args = "FROM:<a@x.test> ENVID=a=b", .result = SMTP_ARGS_SYNTAX },
	{ .name = "value with control",
	  .args = "FROM:<a@x.test> ENVID=a\x01",
	  .result = SMTP_ARGS_SYNTAX },
	{ .name = "lone =", .args = "FROM:<a@x.test> =1", .result = SMTP_ARGS_SYNTAX },
	{ .name = "tab separator", .args = "FROM:<a@x.test>\tSIZE=1", .result = SMTP_ARGS_SYNTAX },
};

static void test_mail_parse(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(mail_cases); i++) {
		const struct mail_case *c = &mail_cases[i];
		struct smtp_mail_args got;
		enum smtp_args_result r;

		print_message("case: %s\n", c->name);
		r = smtp_mail_parse(span_from_cstr(expand(c->args)), &got);
		assert_int_equal(r, c->result);
		if (r != SMTP_ARGS_OK) {
			assert_string_equal(got.reverse_path.address, "");
			assert_false(got.has_size || got.is_smtputf8 || got.has_envid ||
				     got.has_auth);
			continue;
		}
		assert_string_equal(got.reverse_path.address, expand(c->address));
		assert_int_equal(got.reverse_path.is_null, c->is_null);
		assert_int_equal(got.has_size, c->has_size);
		assert_true(got.size == c->size);
		assert_int_equal(got.body, c->body);
		assert_int_equal(got.is_smtputf8, c->is_smtputf8);
		assert_int_equal(got.ret, c->ret);
		assert_int_equal(got.has_envid, c->envid != NULL);
		assert_string_equal(got.envid, c->envid ? expand(c->envid) : "");
		assert_int_equal(got.has_auth, c->auth != NULL);
		assert_string_equal(got.auth, c->auth ? expand(c->auth) : "");
	}
}

/* The longest MAIL command line the limits allow with every parameter we
 * know still fits in 512 octets with CRLF (RFC 5321 4.5.3.1.4), and goes
 * through smtp_line_check, smtp_command_split and smtp_mail_parse. */
static void test_mail_full_command_line(void **state)
{
	const char *line = expand("MAIL FROM:<{l*64}@{a*63}.{b*63}.{c*63}.{d*63}> "
				  "SIZE=18446744073709551615 ENVID={e*100} BODY=BINARYMIME "
				  "RET=HDRS SMTPUTF8 AUTH=a@b.c");
	struct span verb, args;
	struct smtp_mail_args got;

	(void) state;
	assert_int_equal(strlen(line) + 2, SMTP_COMMAND_LINE_MAX);
	assert_int_equal(smtp_line_check(span_from_cstr(line)), SMTP_LINE_OK);
	smtp_command_split(span_from_cstr(line), &verb, &args);
	assert_true(span_eq_cstr(verb, "MAIL"));
	assert_int_equal(smtp_mail_parse(args, &got), SMTP_ARGS_OK);
	assert_int_equal(strlen(got.reverse_path.local), SMTP_LOCAL_PART_MAX);
	assert_int_equal(strlen(got.reverse_path.domain), SMTP_DOMAIN_MAX);
	assert_int_equal(strlen(got.reverse_path.address), SMTP_ADDRESS_MAX);
	assert_true(got.has_size && got.size == UINT64_MAX);
	assert_int_equal(strlen(got.envid), SMTP_ENVID_MAX);
	assert_int_equal(got.body, SMTP_BODY_BINARYMIME);
	assert_int_equal(got.ret, SMTP_RET_HDRS);
	assert_true(got.is_smtputf8);
	assert_string_equal(got.auth, "a@b.c");
}

struct rcpt_case {
	const char *name, *args;
	bool allow_utf8;
	enum smtp_args_result result;
	const char *address;
	bool is_postmaster;
	unsigned notify;
	const char *orcpt_type, *orcpt_address;
};

static const struct rcpt_case rcpt_cases[] = {
	{ .name = "plain", .args = "TO:<b@x.test>", .address = "b@x.test" },
	{ .name = "lower case to", .args = "to:<b@x.test>", .address = "b@x.test" },
	{ .name = "one space after colon", .args = "TO: <b@x.test>", .address = "b@x.test" },
	{ .name = "no brackets", .args = "TO:b@x.test", .address = "b@x.test" },
	{ .name = "null path refused", .args = "TO:<>", .result = SMTP_ARGS_SYNTAX },
	{ .name = "postmaster",
	  .args = "TO:<Postmaster>",
	  .address = "Postmaster",
	  .is_postmaster = true },
	{ .name = "source route ignored",
	  .args = "TO:<@hop.test:b@x.test>",
	  .address = "b@x.test" },
	{ .name = "FROM instead of TO", .args = "FROM:<b@x.test>", .result = SMTP_ARGS_SYNTAX },
	{ .name = "label 64", .args = "TO:<b@{d*64}.test>", .result = SMTP_ARGS_SYNTAX },
	{ .name = "local part 65", .args = "TO:<{l*65}@x.test>", .result = SMTP_ARGS_TOO_LONG },
	{ .name = "UTF-8 without SMTPUTF8",
	  .args = "TO:<b\xc3\xa9@x.test>",
	  .result = SMTP_ARGS_NEEDS_SMTPUTF8 },
	{ .name = "UTF-8 with SMTPUTF8",
	  .args = "TO:<b\xc3\xa9@x.test>",
	  .allow_utf8 = true,
	  .address = "b\xc3\xa9@x.test" },
	{ .name = "NOTIFY=NEVER",
	  .args = "TO:<b@x.test> NOTIFY=NEVER",
	  .address = "b@x.test",
	  .notify = SMTP_NOTIFY_NEVER },
	{ .name = "NOTIFY list",
	  .args = "TO:<b@x.test> NOTIFY=success,FAILURE,Delay",
	  .address = "b@x.test",
	  .notify = SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY },
	{ .name = "NOTIFY one",
	  .args = "TO:<b@x.test> NOTIFY=FAILURE",
	  .address = "b@x.test",
	  .notify = SMTP_NOTIFY_FAILURE },
	{ .name = "NOTIFY NEVER not alone",
	  .args = "TO:<b@x.test> NOTIFY=NEVER,SUCCESS",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "NOTIFY NEVER twice",
	  .args = "TO:<b@x.test> NOTIFY=NEVER,NEVER",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "NOTIFY empty item",
	  .args = "TO:<b@x.test> NOTIFY=SUCCESS,,DELAY",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "NOTIFY trailing comma",
	  .args = "TO:<b@x.test> NOTIFY=SUCCESS,",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "NOTIFY unknown",
	  .args = "TO:<b@x.test> NOTIFY=ALWAYS",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "NOTIFY without value",
	  .args = "TO:<b@x.test> NOTIFY",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "NOTIFY twice",
	  .args = "TO:<b@x.test> NOTIFY=NEVER NOTIFY=NEVER",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ORCPT",
	  .args = "TO:<b@x.test> ORCPT=rfc822;bob@example.com",
	  .address = "b@x.test",
	  .orcpt_type = "rfc822",
	  .orcpt_address = "bob@example.com" },
	{ .name = "ORCPT xtext",
	  .args = "TO:<b@x.test> ORCPT=rfc822;b+2Bc+20d@x",
	  .address = "b@x.test",
	  .orcpt_type = "rfc822",
	  .orcpt_address = "b+c d@x" },
	{ .name = "ORCPT 500",
	  .args = "TO:<b@x.test> ORCPT=rfc822;{o*493}",
	  .address = "b@x.test",
	  .orcpt_type = "rfc822",
	  .orcpt_address = "{o*493}" },
	{ .name = "ORCPT 501",
	  .args = "TO:<b@x.test> ORCPT=rfc822;{o*494}",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ORCPT without type",
	  .args = "TO:<b@x.test> ORCPT=bob@example.com",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ORCPT empty type",
	  .args = "TO:<b@x.test> ORCPT=;bob@example.com",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ORCPT empty address",
	  .args = "TO:<b@x.test> ORCPT=rfc822;",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ORCPT bad xtext",
	  .args = "TO:<b@x.test> ORCPT=rfc822;a+ZZ",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ORCPT raw UTF-8 without SMTPUTF8",
	  .args = "TO:<b@x.test> ORCPT=utf-8;\xc3\xa9",
	  .result = SMTP_ARGS_SYNTAX },
	{ .name = "ORCPT raw UTF-8 with SMTPUTF8",
	  .args = "TO:<b@x.test> ORCPT=utf-8;\xc3\xa9",
	  .allow_utf8 = true,
	  .address = "b@x.test",
	  .orcpt_type = "utf-8",
	  .orcpt_address = "\xc3\xa9" },
	{ .name = "ORCPT type case-insensitive",
	  .args = "TO:<b@x.test> ORCPT=RFC822;bob@example.com",
	  .address = "b@x.test",
	  .orcpt_type = "RFC822",
	  .orcpt_address = "bob@example.com" },
	{ .name = "ORCPT unknown type",
	  .args = "TO:<b@x.test> ORCPT=x400;c+3Dus",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ORCPT type not an atom",
	  .args = "TO:<b@x.test> ORCPT=rfc(822);b@x",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ORCPT utf-8 type without SMTPUTF8",
	  .args = "TO:<b@x.test> ORCPT=utf-8;b@x.test",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ORCPT rfc822 with raw UTF-8",
	  .args = "TO:<b@x.test> ORCPT=rfc822;\xc3\xa9@x",
	  .allow_utf8 = true,
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ORCPT rfc822 with encoded 8-bit",
	  .args = "TO:<b@x.test> ORCPT=rfc822;+C3+A9@x",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ORCPT rfc822 control decoded",
	  .args = "TO:<b@x.test> ORCPT=rfc822;a+0Ab@x",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "ORCPT UTF-8 type with SMTPUTF8",
	  .args = "TO:<b@x.test> ORCPT=UTF-8;j+2Bx\xc3\xb6@x.test",
	  .allow_utf8 = true,
	  .address = "b@x.test",
	  .orcpt_type = "UTF-8",
	  .orcpt_address = "j+x\xc3\xb6@x.test" },
	{ .name = "ORCPT twice",
	  .args = "TO:<b@x.test> ORCPT=rfc822;a@x ORCPT=rfc822;a@x",
	  .result = SMTP_ARGS_BAD_PARAM_VALUE },
	{ .name = "NOTIFY and ORCPT",
	  .args = "TO:<b@x.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@x.test",
	  .address = "b@x.test",
	  .notify = SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE,
	  .orcpt_type = "rfc822",
	  .orcpt_address = "b@x.test" },
	{ .name = "MAIL parameter on RCPT",
	  .args = "TO:<b@x.test> SIZE=1",
	  .result = SMTP_ARGS_UNKNOWN_PARAM },
};

static void test_rcpt_parse(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(rcpt_cases); i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		struct smtp_rcpt_args got;
		enum smtp_args_result r;

		print_message("case: %s\n", c->name);
		r = smtp_rcpt_parse(span_from_cstr(expand(c->args)), c->allow_utf8, &got);
		assert_int_equal(r, c->result);
		if (r != SMTP_ARGS_OK) {
			assert_string_equal(got.forward_path.address, "");
			assert_int_equal(got.notify, 0);
			assert_false(got.has_orcpt);
			continue;
		}
		assert_string_equal(got.forward_path.address, expand(c->address));
		assert_int_equal(got.forward_path.is_postmaster, c->is_postmaster);
		assert_int_equal(got.notify, c->notify);
		assert_int_equal(got.has_orcpt, c->orcpt_type != NULL);
		assert_string_equal(got.orcpt_type, c->orcpt_type ? c->orcpt_type : "");
		assert_string_equal(got.orcpt_address,
				    c->orcpt_address ? expand(c->orcpt_address) : "");
	}
}

static const struct helo_case {
	const char *name, *args;
	const char *want; /* NULL: must fail */
} helo_cases[] = {
	{ "domain", "client.example.test", "client.example.test" },
	{ "address literal", "[192.0.2.1]", "[192.0.2.1]" },
	{ "IPv6 literal", "[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]" },
	{ "Outlook NetBIOS name", "DESKTOP3507CDS", "DESKTOP3507CDS" },
	{ "Mac Mail .local", "Johns-MacBook.local", "Johns-MacBook.local" },
	{ "underscore", "my_pc", "my_pc" },
	{ "trailing space", "client.test ", "client.test" },
	{ "empty", "", NULL },
	{ "spaces only", "   ", NULL },
	{ "two words", "client.test extra", NULL },
	{ "tab", "client\ttest", NULL },
	{ "control", "client\x01", NULL },
	{ "8-bit",
	  "b\xc3\xbc"
	  "cher.test",
	  NULL },
	{ "255 octets", "{h*255}", "{h*255}" },
	{ "256 octets", "{h*256}", NULL },
};

static void test_helo_parse(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(helo_cases); i++) {
		const struct helo_case *c = &helo_cases[i];
		char out[SMTP_HELO_MAX + 1];
		bool ok;

		print_message("case: %s\n", c->name);
		memset(out, 'z', sizeof(out));
		ok = smtp_helo_parse(span_from_cstr(expand(c->args)), out, sizeof(out));
		assert_int_equal(ok, c->want != NULL);
		assert_string_equal(out, c->want ? expand(c->want) : "");
	}
	print_message("case: output buffer too small\n");
	{
		char small[4];

		assert_false(smtp_helo_parse(span_from_cstr("abcd"), small, sizeof(small)));
		assert_string_equal(small, "");
		assert_true(smtp_helo_parse(span_from_cstr("abc"), small, sizeof(small)));
		assert_string_equal(small, "abc");
	}
}

static const struct name_case {
	const char *name, *input;
	bool allow_utf8, want;
} domain_cases[] = {
	{ "domain", "mail.example.test", false, true },
	{ "bare name", "DESKTOP3507CDS", false, true },
	{ "digits", "123.test", false, true },
	{ "underscore", "my_pc.test", false, false },
	{ "trailing dot", "x.test.", false, false },
	{ "empty", "", false, false },
	{ "literal is not a domain", "[192.0.2.1]", false, false },
	{ "U-label with UTF-8",
	  "b\xc3\xbc"
	  "cher.test",
	  true, true },
	{ "U-label without UTF-8",
	  "b\xc3\xbc"
	  "cher.test",
	  false, false },
	{ "255", "{a*63}.{b*63}.{c*63}.{d*63}", false, true },
	{ "256", "{a*63}.{b*63}.{c*63}.{d*62}.e", false, false },
	{ "label 63", "{a*63}", false, true },
	{ "label 64", "{a*64}", false, false },
};

static const struct name_case literal_cases[] = {
	{ "IPv4", "[192.0.2.1]", false, true },
	{ "IPv6", "[IPv6:2001:db8::1]", false, true },
	{ "IPv6 full", "[IPv6:2001:0db8:0000:0000:0000:0000:0000:0001]", false, true },
	{ "IPv6 too long", "[IPv6:2001:0db8:0000:0000:0000:0000:0000:0001:1]", false, false },
	{ "IPv4 leading zero", "[192.0.2.01]", false, false },
	{ "IPv4 with spaces", "[192.0.2.1 ]", false, false },
	{ "no brackets", "192.0.2.1", false, false },
	{ "empty", "[]", false, false },
	{ "IPv6 tag only", "[IPv6:]", false, false },
	{ "hostname", "[mail.example.test]", false, false },
	{ "one bracket", "[", false, false },
};

static void test_domain_and_literal(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(domain_cases); i++) {
		const struct name_case *c = &domain_cases[i];

		print_message("case: domain %s\n", c->name);
		assert_int_equal(
			smtp_domain_is_valid(span_from_cstr(expand(c->input)), c->allow_utf8),
			c->want);
	}
	for (size_t i = 0; i < ARRAY_LEN(literal_cases); i++) {
		const struct name_case *c = &literal_cases[i];

		print_message("case: literal %s\n", c->name);
		assert_int_equal(smtp_address_literal_is_valid(span_from_cstr(c->input)), c->want);
	}
}

static const struct xtext_case {
	const char *name;
	const char *text;
	size_t text_len;
	const char *xtext;
} xtext_cases[] = {
	{ "plain", "abc", 3, "abc" },
	{ "plus and equals", "a+b=c", 5, "a+2Bb+3Dc" },
	{ "space and controls", "a b\t\r\n", 6, "a+20b+09+0D+0A" },
	{ "8-bit", "\xc3\xa9", 2, "+C3+A9" },
	{ "NUL", "a\0b", 3, "a+00b" },
	{ "tilde and bang kept", "!~", 2, "!~" },
	{ "DEL", "\x7f", 1, "+7F" },
	{ "empty", "", 0, "" },
};

static void test_xtext(void **state)
{
	char out[64];
	size_t len;

	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(xtext_cases); i++) {
		const struct xtext_case *c = &xtext_cases[i];

		print_message("case: encode %s\n", c->name);
		assert_true(smtp_xtext_encode(span_make(c->text, c->text_len), out, sizeof(out)));
		assert_string_equal(out, c->xtext);
		if (memchr(c->text, '\0', c->text_len) != NULL) {
			assert_false(smtp_xtext_decode(span_from_cstr(c->xtext), out, sizeof(out),
						       &len));
			continue;
		}
		print_message("case: decode %s\n", c->name);
		assert_true(smtp_xtext_decode(span_from_cstr(c->xtext), out, sizeof(out), &len));
		assert_int_equal(len, c->text_len);
		assert_memory_equal(out, c->text, len);
	}

	static const struct {
		const char *name, *xtext, *want; /* want NULL: must fail */
	} decode_cases[] = {
		{ "lower-case hex accepted", "+2b", "+" },
		{ "bad hex", "+2G", NULL },
		{ "truncated", "a+2", NULL },
		{ "plus at end", "a+", NULL },
		{ "raw equals", "a=b", NULL },
		{ "raw space", "a b", NULL },
		{ "raw 8-bit", "\xc3\xa9", NULL },
		{ "decoded NUL", "+00", NULL },
	};
	for (size_t i = 0; i < ARRAY_LEN(decode_cases); i++) {
		bool ok;

		print_message("case: decode %s\n", decode_cases[i].name);
		memset(out, 'z', sizeof(out));
		ok = smtp_xtext_decode(span_from_cstr(decode_cases[i].xtext), out, sizeof(out),
				       &len);
		assert_int_equal(ok, decode_cases[i].want != NULL);
		assert_string_equal(out, ok ? decode_cases[i].want : "");
	}

	print_message("case: encode exactly fits, one octet short\n");
	assert_true(smtp_xtext_encode(SPAN_LITERAL("a+"), out, 5));
	assert_string_equal(out, "a+2B");
	assert_false(smtp_xtext_encode(SPAN_LITERAL("a+"), out, 4));
	assert_string_equal(out, "");
	print_message("case: decode exactly fits, one octet short\n");
	assert_true(smtp_xtext_decode(SPAN_LITERAL("ab+2B"), out, 4, &len));
	assert_string_equal(out, "ab+");
	assert_false(smtp_xtext_decode(SPAN_LITERAL("ab+2B"), out, 3, &len));
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command_split),
		cmocka_unit_test(test_line_check),
		cmocka_unit_test(test_path_parse),
		cmocka_unit_test(test_mail_parse),
		cmocka_unit_test(test_mail_full_command_line),
		cmocka_unit_test(test_rcpt_parse),
		cmocka_unit_test(test_helo_parse),
		cmocka_unit_test(test_domain_and_literal),
		cmocka_unit_test(test_xtext),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
