/* Tests for src/smtp/received.c: the Received: header and its protocol word. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/span.h"
#include "smtp/received.h"

static const struct protocol_case {
	const char *name;
	bool is_esmtp, is_tls, is_authenticated, is_utf8;
	const char *want;
} protocol_cases[] = {
	{ "helo", false, false, false, false, "SMTP" },
	{ "ehlo", true, false, false, false, "ESMTP" },
	{ "tls", true, true, false, false, "ESMTPS" },
	{ "auth", true, false, true, false, "ESMTPA" },
	{ "tls and auth", true, true, true, false, "ESMTPSA" },
	{ "utf8", true, false, false, true, "UTF8SMTP" },
	{ "utf8 tls auth", true, true, true, true, "UTF8SMTPSA" },
};

static void test_protocol_words(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(protocol_cases); i++) {
		const struct protocol_case *c = &protocol_cases[i];
		struct smtp_received r = { .is_esmtp = c->is_esmtp,
					   .is_tls = c->is_tls,
					   .is_authenticated = c->is_authenticated,
					   .is_utf8 = c->is_utf8 };

		print_message("case: %s\n", c->name);
		assert_string_equal(smtp_received_protocol(&r), c->want);
	}
}

static void test_format(void **state)
{
	char out[SMTP_RECEIVED_MAX];
	struct smtp_received r = {
		.helo = "client.example",
		.client_ip = "192.0.2.7",
		.hostname = "mail.example.test",
		.queue_id = "1k1cd15f7b1hg",
		.recipient = "bob@example.test",
		.is_esmtp = true,
		.when = 1795928802, /* 2026-11-29T05:06:42Z */
	};
	size_t len = smtp_received_format(&r, out, sizeof(out));

	(void) state;
	assert_int_equal(len, strlen(out));
	assert_string_equal(out, "Received: from client.example ([192.0.2.7])\r\n"
				 "\tby mail.example.test (postgate) with ESMTP id 1k1cd15f7b1hg\r\n"
				 "\tfor <bob@example.test>;\r\n"
				 "\tSun, 29 Nov 2026 05:06:42 +0000\r\n");
}

static void test_local_submission(void **state)
{
	char out[SMTP_RECEIVED_MAX];
	struct smtp_received r = {
		.helo = "localhost",
		.client_ip = "local",
		.hostname = "mail.example.test",
		.queue_id = "1k1cd15f7b1hg",
		.is_esmtp = true,
		.is_authenticated = true,
		.local_user = "www-data",
		.when = 1795928802,
	};

	size_t len;

	(void) state;
	len = smtp_received_format(&r, out, sizeof(out));
	assert_int_equal(len, strlen(out));
	assert_string_equal(out,
			    "Received: from localhost (local user www-data)\r\n"
			    "\tby mail.example.test (postgate) with ESMTPA id 1k1cd15f7b1hg;\r\n"
			    "\tSun, 29 Nov 2026 05:06:42 +0000\r\n");
	/* A user name cannot end the comment or the line either. */
	r.local_user = "x)\r\nX-Injected: yes";
	assert_true(smtp_received_format(&r, out, sizeof(out)) > 0);
	assert_null(strstr(out, "\r\nX-Injected"));
	assert_non_null(strstr(out, "(local user x???X-Injected:?yes)"));
}

static void test_hostile_helo_and_ipv6(void **state)
{
	char out[SMTP_RECEIVED_MAX];
	struct smtp_received r = {
		.helo = "evil)\r\nX-Injected: yes;(",
		.client_ip = "2001:db8::1",
		.hostname = "mail.example.test",
		.queue_id = "q",
		.recipient = NULL,
		.is_esmtp = false,
		.when = 0,
	};

	(void) state;
	assert_true(smtp_received_format(&r, out, sizeof(out)) > 0);
	/* The client's text cannot end the comment, the line or the header. */
	assert_null(strstr(out, "X-Injected: yes\r"));
	assert_null(strstr(out, "evil)"));
	assert_non_null(strstr(out, "from evil???X-Injected:?yes?? ([IPv6:2001:db8::1])"));
	assert_null(strstr(out, "for <"));
	assert_non_null(strstr(out, "with SMTP id q;\r\n\tThu, 1 Jan 1970 00:00:00 +0000\r\n"));
	/* Only the final CRLF ends the header; the others fold it. */
	for (char *p = strstr(out, "\r\n"); p != NULL && p[2] != '\0'; p = strstr(p + 2, "\r\n"))
		assert_true(p[2] == '\t');
	/* Empty HELO and a buffer that is too small. */
	r.helo = "";
	assert_true(smtp_received_format(&r, out, sizeof(out)) > 0);
	assert_non_null(strstr(out, "from unknown ("));
	assert_int_equal(smtp_received_format(&r, out, 20), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_protocol_words),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_local_submission),
		cmocka_unit_test(test_hostile_helo_and_ipv6),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
