/* Tests for the pure parts of outbound delivery: src/delivery/reply.c (the
 * SMTP reply reader and EHLO keywords), delivery_mx_order and delivery_mx_parse
 * (src/delivery/dns.c),
 * xtext encoding (src/delivery/smtp_client.c), queue_retry_delay_s
 * (src/queue/manager.c) and the DSN builder and rules (src/queue/dsn.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "delivery/dns.h"
#include "delivery/reply.h"
#include "delivery/smtp_client.h"
#include "queue/dsn.h"
#include "queue/envelope.h"
#include "queue/manager.h"

static const struct reply_case {
	const char *name;
	const char *lines[4]; /* fed in order until NULL */
	int want;	      /* status after the last line */
	unsigned code;
	const char *text;
} reply_cases[] = {
	{ "one line", { "250 2.0.0 Ok" }, DELIVERY_REPLY_DONE, 250, "2.0.0 Ok" },
	{ "code alone", { "250" }, DELIVERY_REPLY_DONE, 250, "" },
	{ "multiline", { "250-a", "250-b", "250 c" }, DELIVERY_REPLY_DONE, 250, "a\nb\nc" },
	{ "continuation only", { "250-a" }, DELIVERY_REPLY_MORE, 250, "a" },
	{ "codes differ", { "250-a", "251 b" }, DELIVERY_REPLY_BAD, 0, NULL },
	{ "code too low", { "199 x" }, DELIVERY_REPLY_BAD, 0, NULL },
	{ "code too high", { "600 x" }, DELIVERY_REPLY_BAD, 0, NULL },
	{ "not digits", { "2x0 x" }, DELIVERY_REPLY_BAD, 0, NULL },
	{ "bad separator", { "250:x" }, DELIVERY_REPLY_BAD, 0, NULL },
	{ "too short", { "25" }, DELIVERY_REPLY_BAD, 0, NULL },
	{ "empty", { "" }, DELIVERY_REPLY_BAD, 0, NULL },
};

static void test_reply_feed(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(reply_cases); i++) {
		const struct reply_case *c = &reply_cases[i];
		struct delivery_reply reply;
		int status = -1;

		print_message("case: %s\n", c->name);
		delivery_reply_init(&reply);
		for (size_t j = 0; j < 4 && c->lines[j] != NULL; j++)
			status = delivery_reply_feed(&reply, span_from_cstr(c->lines[j]));
		assert_int_equal(status, c->want);
		if (c->text != NULL) {
			assert_int_equal(reply.code, c->code);
			assert_string_equal(reply.text, c->text);
		}
	}
}

/* RFC 5321 4.5.3.1.5: 512 octets with CRLF is the limit; one more is bad. */
static void test_reply_line_limit(void **state)
{
	char line[DELIVERY_REPLY_LINE_MAX + 1];
	struct delivery_reply reply;

	(void) state;
	memset(line, 'x', sizeof(line));
	memcpy(line, "250 ", 4);
	delivery_reply_init(&reply);
	assert_int_equal(delivery_reply_feed(&reply, span_make(line, DELIVERY_REPLY_LINE_MAX - 2)),
			 DELIVERY_REPLY_DONE);
	delivery_reply_init(&reply);
	assert_int_equal(delivery_reply_feed(&reply, span_make(line, DELIVERY_REPLY_LINE_MAX - 1)),
			 DELIVERY_REPLY_BAD);
}

static void test_reply_line_count_limit(void **state)
{
	struct delivery_reply reply;

	(void) state;
	delivery_reply_init(&reply);
	for (size_t i = 0; i < DELIVERY_REPLY_LINES_MAX - 1; i++)
		assert_int_equal(delivery_reply_feed(&reply, span_from_cstr("250-x")),
				 DELIVERY_REPLY_MORE);
	assert_int_equal(delivery_reply_feed(&reply, span_from_cstr("250 x")), DELIVERY_REPLY_DONE);
	delivery_reply_init(&reply);
	for (size_t i = 0; i < DELIVERY_REPLY_LINES_MAX; i++)
		assert_int_equal(delivery_reply_feed(&reply, span_from_cstr("250-x")),
				 DELIVERY_REPLY_MORE);
	assert_int_equal(delivery_reply_feed(&reply, span_from_cstr("250 x")), DELIVERY_REPLY_BAD);
}

static void test_ehlo_parse(void **state)
{
	static const char *const lines[] = { "250-mx.example Hello", "250-PIPELINING",
					     "250-SIZE 1000",	     "250-starttls",
					     "250-8BITMIME",	     "250 DSN" };
	struct delivery_reply reply;
	struct delivery_ehlo ehlo;

	(void) state;
	delivery_reply_init(&reply);
	for (size_t i = 0; i < ARRAY_LEN(lines); i++)
		delivery_reply_feed(&reply, span_from_cstr(lines[i]));
	delivery_ehlo_parse(&reply, &ehlo);
	assert_true(ehlo.has_pipelining && ehlo.has_starttls && ehlo.has_8bitmime && ehlo.has_dsn &&
		    ehlo.has_size);
	assert_false(ehlo.has_smtputf8);
	assert_int_equal(ehlo.size_max, 1000);
}

struct fixed_random {
	const uint32_t *values;
	size_t next, count;
};

static uint32_t fixed_random(void *ctx)
{
	struct fixed_random *r = ctx;

	return r->values[r->next++ % r->count];
}

static void test_mx_order(void **state)
{
	struct delivery_mx mx[] = { { 20, "c" }, { 10, "a" }, { 30, "d" }, { 10, "b" } };
	static const uint32_t zeros[] = { 0 }, ones[] = { 1 };
	struct fixed_random r = { zeros, 0, 1 };

	(void) state;
	delivery_mx_order(mx, ARRAY_LEN(mx), fixed_random, &r);
	/* With random 0, Fisher-Yates swaps the last of the run with the first. */
	assert_string_equal(mx[0].name, "b");
	assert_string_equal(mx[1].name, "a");
	assert_string_equal(mx[2].name, "c");
	assert_string_equal(mx[3].name, "d");
	r = (struct fixed_random){ ones, 0, 1 };
	delivery_mx_order(mx, ARRAY_LEN(mx), fixed_random, &r);
	assert_int_equal(mx[0].preference, 10);
	assert_int_equal(mx[1].preference, 10);
	assert_string_equal(mx[2].name, "c");
	assert_string_equal(mx[3].name, "d");
}

/* Over many shuffles both orders of an equal-preference pair appear. */
static void test_mx_shuffle_spreads(void **state)
{
	uint32_t seq[64];
	bool seen_a_first = false, seen_b_first = false;

	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(seq); i++)
		seq[i] = (uint32_t) (i * 2654435761u);
	for (size_t i = 0; i < ARRAY_LEN(seq); i++) {
		struct delivery_mx mx[] = { { 5, "a" }, { 5, "b" } };
		struct fixed_random r = { seq, i, ARRAY_LEN(seq) };

		delivery_mx_order(mx, 2, fixed_random, &r);
		seen_a_first |= strcmp(mx[0].name, "a") == 0;
		seen_b_first |= strcmp(mx[0].name, "b") == 0;
	}
	assert_true(seen_a_first && seen_b_first);
}

static const struct mx_keep_case {
	const char *name;
	unsigned preference;
	const char *host;
	bool want_kept;
} mx_keep_cases[] = {
	/* 10 records of preference 50..59 fill the list first. */
	{ "empty name", 1, "", false },
	{ "null MX among others", 0, ".", false },
	{ "worse than every kept one", 60, "late-worse", false },
	{ "as bad as the worst kept", 59, "late-equal", false },
	{ "better, listed last", 5, "late-best", true },
	{ "better again", 49, "late-good", true },
};

/* An answer with more exchanges than DELIVERY_MX_MAX keeps the most
 * preferred, wherever they are listed. */
static void test_mx_keep(void **state)
{
	struct delivery_mx mx[DELIVERY_MX_MAX];
	size_t count = 0;
	char name[16], too_long[DELIVERY_HOST_NAME_MAX + 1];
	unsigned highest = 0;
	bool has_best = false;

	(void) state;
	for (unsigned i = 0; i < DELIVERY_MX_MAX; i++) {
		snprintf(name, sizeof(name), "mx%u", i);
		assert_true(delivery_mx_keep(mx, &count, 50 + i, name));
	}
	assert_int_equal(count, DELIVERY_MX_MAX);
	memset(too_long, 'a', sizeof(too_long) - 1);
	too_long[sizeof(too_long) - 1] = '\0';
	assert_false(delivery_mx_keep(mx, &count, 1, too_long));
	for (size_t i = 0; i < ARRAY_LEN(mx_keep_cases); i++) {
		const struct mx_keep_case *c = &mx_keep_cases[i];

		print_message("case: %s\n", c->name);
		assert_int_equal(delivery_mx_keep(mx, &count, c->preference, c->host),
				 c->want_kept);
		assert_int_equal(count, DELIVERY_MX_MAX);
	}
	for (size_t i = 0; i < count; i++) {
		highest = mx[i].preference > highest ? mx[i].preference : highest;
		has_best |= strcmp(mx[i].name, "late-best") == 0;
	}
	/* 59 and 58 made room for 5 and 49. */
	assert_int_equal(highest, 57);
	assert_true(has_best);
	count = 0;
	assert_false(delivery_mx_keep(mx, &count, 1, "."));
	assert_int_equal(count, 0);
}

/* An MX answer packet (RFC 1035 4.1) for example.org with the records
 * given; cut is how many bytes to drop from its end. */
struct mx_record {
	unsigned preference;
	const char *exchange; /* dotted; "." is the root */
};

static size_t mx_answer_build(unsigned char *buf, size_t cap, const struct mx_record *records,
			      size_t count)
{
	static const unsigned char question[] = { 7,   'e', 'x', 'a', 'm', 'p', 'l', 'e', 3,
						  'o', 'r', 'g', 0,   0,   15,	0,   1 };
	size_t len = 0;

	assert_true(cap >= 12 + sizeof(question));
	memset(buf, 0, 12);
	buf[0] = 0x12;
	buf[2] = 0x81;
	buf[3] = 0x80;
	buf[5] = 1;			/* QDCOUNT */
	buf[7] = (unsigned char) count; /* ANCOUNT */
	len = 12;
	memcpy(buf + len, question, sizeof(question));
	len += sizeof(question);
	for (size_t i = 0; i < count; i++) {
		unsigned char rdata[300];
		size_t rlen = 2;
		const char *p = records[i].exchange;

		rdata[0] = (unsigned char) (records[i].preference >> 8);
		rdata[1] = (unsigned char) records[i].preference;
		while (*p != '\0' && strcmp(p, ".") != 0) {
			const char *dot = strchr(p, '.');
			size_t label = dot == NULL ? strlen(p) : (size_t) (dot - p);

			rdata[rlen++] = (unsigned char) label;
			memcpy(rdata + rlen, p, label);
			rlen += label;
			p += label + (dot != NULL);
		}
		rdata[rlen++] = 0;
		assert_true(len + 12 + rlen <= cap);
		/* name: pointer to the question; type MX, class IN, TTL 300 */
		memcpy(buf + len, "\xc0\x0c\x00\x0f\x00\x01\x00\x00\x01\x2c", 10);
		buf[len + 10] = (unsigned char) (rlen >> 8);
		buf[len + 11] = (unsigned char) rlen;
		memcpy(buf + len + 12, rdata, rlen);
		len += 12 + rlen;
	}
	return len;
}

static const struct mx_parse_case {
	const char *name;
	struct mx_record records[3];
	size_t count;
	size_t cut;
	enum delivery_mx_answer want;
	size_t want_count;
	const char *want_first; /* the most preferred kept */
} mx_parse_cases[] = {
	{ "two exchanges",
	  { { 20, "mx2.example.org" }, { 10, "mx1.example.org" } },
	  2,
	  0,
	  DELIVERY_MX_ANSWER_OK,
	  2,
	  "mx1.example.org" },
	{ "null MX (RFC 7505)", { { 0, "." } }, 1, 0, DELIVERY_MX_ANSWER_NULL_MX, 0, NULL },
	{ "null MX among others is ignored",
	  { { 0, "." }, { 10, "mx.example.org" } },
	  2,
	  0,
	  DELIVERY_MX_ANSWER_OK,
	  1,
	  "mx.example.org" },
	{ "root exchange, preference 10",
	  { { 10, "." } },
	  1,
	  0,
	  DELIVERY_MX_ANSWER_NO_HOST,
	  0,
	  NULL },
	{ "truncated record",
	  { { 10, "mx1.example.org" } },
	  1,
	  5,
	  DELIVERY_MX_ANSWER_BAD,
	  0,
	  NULL },
	{ "header only", { { 10, "mx1.example.org" } }, 1, 40, DELIVERY_MX_ANSWER_BAD, 0, NULL },
	{ "no answer records", { { 0, NULL } }, 0, 0, DELIVERY_MX_ANSWER_BAD, 0, NULL },
};

static void test_mx_parse(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(mx_parse_cases); i++) {
		const struct mx_parse_case *c = &mx_parse_cases[i];
		unsigned char packet[1024];
		struct delivery_mx mx[DELIVERY_MX_MAX];
		size_t count = 99,
		       len = mx_answer_build(packet, sizeof(packet), c->records, c->count);
		size_t first = 0;

		print_message("case: %s\n", c->name);
		assert_true(len > c->cut);
		assert_int_equal(delivery_mx_parse(packet, (int) (len - c->cut), mx, &count),
				 c->want);
		assert_int_equal(count, c->want_count);
		for (size_t j = 1; j < count; j++)
			if (mx[j].preference < mx[first].preference)
				first = j;
		if (c->want_first != NULL)
			assert_string_equal(mx[first].name, c->want_first);
	}
	{
		struct delivery_mx mx[DELIVERY_MX_MAX];
		size_t count = 99;

		assert_int_equal(delivery_mx_parse(NULL, 0, mx, &count), DELIVERY_MX_ANSWER_BAD);
		assert_int_equal(count, 0);
	}
}

static void test_xtext(void **state)
{
	char out[32];

	(void) state;
	assert_true(delivery_xtext_encode("a+b=c d", out, sizeof(out)));
	assert_string_equal(out, "a+2Bb+3Dc+20d");
	assert_false(delivery_xtext_encode("++++++++++", out, 10));
}

static const struct backoff_case {
	const char *name;
	uint64_t initial, max;
	uint32_t attempts;
	uint64_t want;
} backoff_cases[] = {
	{ "first", 300, 14400, 1, 300 },
	{ "second doubles", 300, 14400, 2, 600 },
	{ "sixth", 300, 14400, 6, 9600 },
	{ "ceiling", 300, 14400, 7, 14400 },
	{ "far past the ceiling", 300, 14400, 4000000000u, 14400 },
	{ "initial above max", 500, 100, 1, 100 },
};

static void test_backoff(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(backoff_cases); i++) {
		const struct backoff_case *c = &backoff_cases[i];

		print_message("case: %s\n", c->name);
		assert_int_equal(queue_retry_delay_s(c->initial, c->max, c->attempts), c->want);
	}
}

static const struct wanted_case {
	const char *name;
	unsigned notify;
	enum queue_dsn_action action;
	bool want;
} wanted_cases[] = {
	{ "default failure", 0, QUEUE_DSN_FAILED, true },
	{ "default delay", 0, QUEUE_DSN_DELAYED, true },
	{ "default success", 0, QUEUE_DSN_DELIVERED, false },
	{ "never failure", QUEUE_NOTIFY_NEVER, QUEUE_DSN_FAILED, false },
	{ "success only, failure", QUEUE_NOTIFY_SUCCESS, QUEUE_DSN_FAILED, false },
	{ "success, relayed", QUEUE_NOTIFY_SUCCESS, QUEUE_DSN_RELAYED, true },
	{ "failure only, delay", QUEUE_NOTIFY_FAILURE, QUEUE_DSN_DELAYED, false },
	{ "delay, delay", QUEUE_NOTIFY_DELAY, QUEUE_DSN_DELAYED, true },
};

static void test_dsn_wanted(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(wanted_cases); i++) {
		const struct wanted_case *c = &wanted_cases[i];

		print_message("case: %s\n", c->name);
		assert_int_equal(queue_dsn_wanted(c->notify, c->action), c->want);
	}
}

static const struct status_case {
	const char *reply, *want;
} status_cases[] = {
	{ "550 5.1.1 no such user", "5.1.1" }, { "451 4.7.1 greylisted", "4.7.1" },
	{ "550 no enhanced code", "5.0.0" },   { "550 4.1.1 wrong class", "5.0.0" },
	{ "556 5.1.10 null MX", "5.1.10" },    { "", "4.0.0" },
};

static void test_dsn_status(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(status_cases); i++) {
		char out[16];

		print_message("case: %s\n", status_cases[i].reply);
		queue_dsn_status(status_cases[i].reply, out);
		assert_string_equal(out, status_cases[i].want);
	}
}

static void test_dsn_build(void **state)
{
	static const char original[] = "Subject: hi\r\nFrom: a@example.test\r\n\r\nbody\r\n";
	struct queue_dsn_recipient r[] = {
		{ "x@remote.test", "rfc822;X@remote.test", QUEUE_DSN_FAILED, "550 5.1.1 nope",
		  "mx1.remote.test", 1700000000 },
		{ "y@remote.test", NULL, QUEUE_DSN_DELAYED, "451 4.2.0 later", "mx1.remote.test",
		  1700000000 },
	};
	struct queue_dsn_params p = {
		.reporting_mta = "mail.example.test",
		.queue_id = "1k1cmmscr74zj",
		.sender = "a@example.test",
		.envid = "ENV1",
		.arrival_at = 1700000000,
		.now = 1700000100,
		.boundary = "BOUNDARY",
		.recipients = r,
		.recipient_count = 2,
		.original = span_make(original, strlen(original)),
		.is_full = false,
	};
	char *text = NULL;
	size_t len = 0;
	struct error err;

	(void) state;
	assert_int_equal(queue_dsn_build(&p, &text, &len, &err), 0);
	assert_int_equal(strlen(text), len);
	assert_non_null(
		strstr(text, "Content-Type: multipart/report; report-type=delivery-status;"));
	assert_non_null(strstr(text, "Reporting-MTA: dns; mail.example.test\r\n"));
	assert_non_null(strstr(text, "Original-Envelope-Id: ENV1\r\n"));
	assert_non_null(strstr(text, "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
	assert_non_null(strstr(text, "Original-Recipient: rfc822; X@remote.test\r\n"
				     "Final-Recipient: rfc822; x@remote.test\r\n"
				     "Action: failed\r\nStatus: 5.1.1\r\n"
				     "Remote-MTA: dns; mx1.remote.test\r\n"
				     "Diagnostic-Code: smtp; 550 5.1.1 nope\r\n"));
	assert_non_null(strstr(text, "Action: delayed\r\nStatus: 4.2.0\r\n"));
	assert_non_null(strstr(text, "Content-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\n"));
	assert_non_null(strstr(text, "Subject: Undelivered Mail Returned to Sender\r\n"));
	assert_non_null(strstr(text, "\r\n--BOUNDARY--\r\n"));
	assert_null(strstr(text, "\n\n"));
	free(text);
	p.recipient_count = 0;
	assert_int_equal(queue_dsn_build(&p, &text, &len, &err), -1);
}

static void test_dsn_returns_full(void **state)
{
	(void) state;
	assert_true(queue_dsn_returns_full(QUEUE_RET_NONE, 100, 100));
	assert_false(queue_dsn_returns_full(QUEUE_RET_NONE, 101, 100));
	assert_true(queue_dsn_returns_full(QUEUE_RET_FULL, 50, 100));
	assert_false(queue_dsn_returns_full(QUEUE_RET_HDRS, 50, 100));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_feed),
		cmocka_unit_test(test_reply_line_limit),
		cmocka_unit_test(test_reply_line_count_limit),
		cmocka_unit_test(test_ehlo_parse),
		cmocka_unit_test(test_mx_order),
		cmocka_unit_test(test_mx_shuffle_spreads),
		cmocka_unit_test(test_mx_keep),
		cmocka_unit_test(test_mx_parse),
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_dsn_wanted),
		cmocka_unit_test(test_dsn_status),
		cmocka_unit_test(test_dsn_build),
		cmocka_unit_test(test_dsn_returns_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
