/* Tests for src/tls/sniff.c: which first bytes are a TLS ClientHello. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "core/span.h"
#include "tls/sniff.h"

// clang-format off
static const struct sniff_case {
	const char *name;
	const char *bytes;
	size_t len;
	enum tls_sniff want;
} sniff_cases[] = {
	/* Real ClientHello starts: record version 3.1 (TLS 1.0 .. 1.3 clients), 3.3, 3.0. */
	{ "TLS 1.0 ClientHello (Vista)",     "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x01", 11, TLS_SNIFF_TLS },
	{ "TLS 1.3 ClientHello (record 3.1)", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11, TLS_SNIFF_TLS },
	{ "TLS 1.2 record version 3.3",      "\x16\x03\x03\x00\x40\x01", 6, TLS_SNIFF_TLS },
	{ "SSL 3.0 record version",          "\x16\x03\x00\x00\x40\x01", 6, TLS_SNIFF_TLS },
	{ "record version 3.4",              "\x16\x03\x04\x00\x40\x01", 6, TLS_SNIFF_TLS },
	{ "exactly six bytes",               "\x16\x03\x01\x00\x01\x01", 6, TLS_SNIFF_TLS },
	{ "length at the limit, 2^14",       "\x16\x03\x01\x40\x00\x01", 6, TLS_SNIFF_TLS },
	/* Need more: a consistent prefix. */
	{ "nothing yet",                     "", 0, TLS_SNIFF_NEED_MORE },
	{ "content type only",               "\x16", 1, TLS_SNIFF_NEED_MORE },
	{ "type and major version",          "\x16\x03", 2, TLS_SNIFF_NEED_MORE },
	{ "three bytes",                     "\x16\x03\x01", 3, TLS_SNIFF_NEED_MORE },
	{ "four bytes",                      "\x16\x03\x01\x00", 4, TLS_SNIFF_NEED_MORE },
	{ "whole record header",             "\x16\x03\x01\x00\xa5", 5, TLS_SNIFF_NEED_MORE },
	/* Not TLS. */
	{ "SMTP EHLO",                       "EHLO client.example\r\n", 22, TLS_SNIFF_NOT_TLS },
	{ "SMTP in its first byte",          "E", 1, TLS_SNIFF_NOT_TLS },
	{ "POP3 CAPA",                       "CAPA\r\n", 6, TLS_SNIFF_NOT_TLS },
	{ "HTTP GET",                        "GET / HTTP/1.1\r\n", 16, TLS_SNIFF_NOT_TLS },
	{ "CRLF",                            "\r\n", 2, TLS_SNIFF_NOT_TLS },
	{ "NUL byte",                        "\x00", 1, TLS_SNIFF_NOT_TLS },
	{ "SSL 2.0 ClientHello (XP era)",    "\x80\x31\x01\x03\x01\x00", 6, TLS_SNIFF_NOT_TLS },
	{ "alert record",                    "\x15\x03\x01\x00\x02\x02", 6, TLS_SNIFF_NOT_TLS },
	{ "application data record",         "\x17\x03\x03\x00\x20\x01", 6, TLS_SNIFF_NOT_TLS },
	{ "major version 2",                 "\x16\x02", 2, TLS_SNIFF_NOT_TLS },
	{ "major version 4",                 "\x16\x04\x01\x00\x40\x01", 6, TLS_SNIFF_NOT_TLS },
	{ "minor version 5",                 "\x16\x03\x05", 3, TLS_SNIFF_NOT_TLS },
	{ "minor version 0xff",              "\x16\x03\xff\x00\x40\x01", 6, TLS_SNIFF_NOT_TLS },
	{ "length high byte past 2^14",      "\x16\x03\x01\x41", 4, TLS_SNIFF_NOT_TLS },
	{ "length one past 2^14",            "\x16\x03\x01\x40\x01\x01", 6, TLS_SNIFF_NOT_TLS },
	{ "length 0xffff",                   "\x16\x03\x01\xff\xff\x01", 6, TLS_SNIFF_NOT_TLS },
	{ "empty handshake record",          "\x16\x03\x01\x00\x00", 5, TLS_SNIFF_NOT_TLS },
	{ "ServerHello, not ClientHello",    "\x16\x03\x03\x00\x40\x02", 6, TLS_SNIFF_NOT_TLS },
	{ "HelloRequest (type 0)",           "\x16\x03\x01\x00\x04\x00", 6, TLS_SNIFF_NOT_TLS },
};
// clang-format on

static void test_sniff_table(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(sniff_cases); i++) {
		const struct sniff_case *c = &sniff_cases[i];

		print_message("case: %s\n", c->name);
		assert_int_equal(tls_sniff_client_hello(span_make(c->bytes, c->len)), c->want);
	}
}

/* Every prefix of a ClientHello needs more, until the sixth byte decides;
 * what follows the sixth byte never changes the answer. */
static void test_sniff_prefixes(void **state)
{
	static const char hello[] = "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x01";
	static const char smtp[] = "\x16\x03\x01\x00\xa5\x02QUIT\r\n";

	(void) state;
	for (size_t len = 0; len <= sizeof(hello) - 1; len++) {
		enum tls_sniff got = tls_sniff_client_hello(span_make(hello, len));

		print_message("case: ClientHello prefix of %zu bytes\n", len);
		assert_int_equal(got, len < TLS_SNIFF_BYTES ? TLS_SNIFF_NEED_MORE : TLS_SNIFF_TLS);
	}
	for (size_t len = TLS_SNIFF_BYTES; len <= sizeof(smtp) - 1; len++)
		assert_int_equal(tls_sniff_client_hello(span_make(smtp, len)), TLS_SNIFF_NOT_TLS);
}

/* Only the first six bytes are read: a span pointing at the end of a
 * guarded buffer with a length of six must not be read past (ASan). */
static void test_sniff_reads_six_bytes(void **state)
{
	char buf[TLS_SNIFF_BYTES];

	(void) state;
	memcpy(buf, "\x16\x03\x03\x00\x10\x01", TLS_SNIFF_BYTES);
	assert_int_equal(tls_sniff_client_hello(span_make(buf, sizeof(buf))), TLS_SNIFF_TLS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sniff_table),
		cmocka_unit_test(test_sniff_prefixes),
		cmocka_unit_test(test_sniff_reads_six_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
