/* Tests for src/store/address.c: address and domain normalization, every
 * length limit at the limit and one past it, IDNA conversion, and the
 * messages that say what is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/span.h"
#include "store/address.h"

/* Builds strings of exact lengths for the limit cases: n copies of c. */
static char *repeat(char *out, size_t n, char c)
{
	memset(out, c, n);
	out[n] = '\0';
	return out;
}

/* A domain of exactly len octets: labels of 63 'a's and a shorter last one
 * (never an empty one). */
static char *domain_of_length(char *out, size_t len)
{
	size_t at = 0;

	for (;;) {
		size_t left = len - at, label;

		if (left <= 63) {
			memset(out + at, 'a', left);
			break;
		}
		label = left == 64 ? 62 : 63;
		memset(out + at, 'a', label);
		at += label;
		out[at++] = '.';
	}
	out[len] = '\0';
	return out;
}

static const struct domain_case {
	const char *name, *input;
	const char *want;	/* NULL: must fail */
	const char *want_error; /* a substring of the message when it fails */
} domain_cases[] = {
	// clang-format off
	{ "plain",                  "example.org",            "example.org",            NULL },
	{ "upper case",             "EXAMPLE.Org",            "example.org",            NULL },
	{ "single label",           "localhost",              "localhost",              NULL },
	{ "digits and hyphens",     "mx-1.a2.example",        "mx-1.a2.example",        NULL },
	{ "digit first label",      "1und1.de",               "1und1.de",               NULL },
	{ "IDN U-label",            "bücher.example",         "xn--bcher-kva.example",  NULL },
	{ "IDN upper case",         "BÜCHER.Example",         "xn--bcher-kva.example",  NULL },
	{ "IDN A-label kept",       "xn--bcher-kva.example",  "xn--bcher-kva.example",  NULL },
	{ "IDN A-label upper",      "XN--BCHER-KVA.EXAMPLE",  "xn--bcher-kva.example",  NULL },
	{ "IDN nontransitional",    "faß.de",                 "xn--fa-hia.de",          NULL },
	{ "IDN ideographic dot",    "bücher\xe3\x80\x82" "example", "xn--bcher-kva.example", NULL },
	{ "IDN decomposed NFC",     "bu\xcc\x88" "cher.example", "xn--bcher-kva.example", NULL },
	{ "empty",                  "",                NULL, "domain is empty" },
	{ "trailing dot",           "example.org.",    NULL, "domain ends with a dot" },
	{ "leading dot",            ".example.org",    NULL, "domain label is empty" },
	{ "double dot",             "example..org",    NULL, "domain label is empty" },
	{ "only a dot",             ".",               NULL, "domain ends with a dot" },
	{ "leading hyphen",         "-example.org",    NULL, "domain label starts with a hyphen" },
	{ "trailing hyphen",        "example-.org",    NULL, "domain label ends with a hyphen" },
	{ "underscore",             "ex_ample.org",    NULL, "domain contains '_'" },
	{ "space",                  "exa mple.org",    NULL, "domain contains a space" },
	{ "tab",                    "exa\tmple.org",   NULL, "domain contains a control character" },
	{ "DEL",                    "exa\x7fmple.org", NULL, "domain contains a control character" },
	{ "at sign",                "a@example.org",   NULL, "domain contains '@'" },
	{ "address literal v4",     "[192.0.2.1]",     NULL, "address literals are not accepted" },
	{ "address literal v6",     "[IPv6:2001:db8::1]", NULL, "address literals are not accepted" },
	{ "bare IPv4",              "192.0.2.1",       NULL, "all-numeric label" },
	{ "numeric TLD",            "example.123",     NULL, "all-numeric label" },
	{ "reserved hyphens",       "ab--cd.example",  NULL, "third and fourth positions" },
	{ "bad A-label",            "xn--abc.example", NULL, "not a valid A-label" },
	{ "empty A-label",          "xn--.example",    NULL, "ends with a hyphen" },
	{ "bad UTF-8",              "b\xfc" "cher.example", NULL, "domain is not valid UTF-8" },
	{ "overlong UTF-8",         "\xc0\xae.example", NULL, "domain is not valid UTF-8" },
	{ "surrogate UTF-8",        "\xed\xa0\x80.example", NULL, "domain is not valid UTF-8" },
	{ "truncated UTF-8",        "example.\xc3",    NULL, "domain is not valid UTF-8" },
	{ "IDN trailing dot",       "bücher.example.", NULL, "domain ends with a dot" },
	{ "IDN underscore",         "bü_cher.example", NULL, "domain contains '_'" },
	{ "IDN disallowed joiner",  "\xe2\x80\x8d.example", NULL, "not a valid internationalized" },
	// clang-format on
};

static void test_domain_cases(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(domain_cases); i++) {
		const struct domain_case *c = &domain_cases[i];
		char out[ADDRESS_DOMAIN_MAX + 1];
		struct error err = { 0 };
		int rc = store_address_domain_normalize(span_from_cstr(c->input), out, &err);

		print_message("case: %s\n", c->name);
		if (c->want != NULL) {
			if (rc != 0)
				print_message("unexpected error: %s\n", err.message);
			assert_int_equal(rc, 0);
			assert_string_equal(out, c->want);
		} else {
			assert_int_equal(rc, -1);
			assert_int_equal(err.kind, ERROR_DATA);
			assert_string_equal(out, "");
			if (strstr(err.message, c->want_error) == NULL)
				print_message("message: %s\n", err.message);
			assert_non_null(strstr(err.message, c->want_error));
		}
	}
}

static const struct address_case {
	const char *name, *input;
	const char *want;	/* NULL: must fail */
	const char *want_error; /* a substring of the message when it fails */
} address_cases[] = {
	// clang-format off
	{ "plain",                "alice@example.org",        "alice@example.org",        NULL },
	{ "local part case kept", "Alice.Smith@Example.ORG",  "Alice.Smith@example.org",  NULL },
	{ "all atext",            "a!#$%&'*+-/=?^_`{|}~z@example.org",
	                          "a!#$%&'*+-/=?^_`{|}~z@example.org", NULL },
	{ "dots inside",          "a.b.c@example.org",        "a.b.c@example.org",        NULL },
	{ "subaddress",           "alice+tag@example.org",    "alice+tag@example.org",    NULL },
	{ "UTF-8 local part",     "jörg@example.org",         "jörg@example.org",         NULL },
	{ "UTF-8 both",           "jörg@bücher.example",      "jörg@xn--bcher-kva.example", NULL },
	{ "CJK local part",       "\xe7\x94\xa8\xe6\x88\xb7@example.org",
	                          "\xe7\x94\xa8\xe6\x88\xb7@example.org", NULL },
	{ "empty",                "",                         NULL, "address is empty" },
	{ "no at",                "alice.example.org",        NULL, "address has no '@'" },
	{ "empty local part",     "@example.org",             NULL, "local part is empty" },
	{ "empty domain",         "alice@",                   NULL, "domain is empty" },
	{ "two at signs",         "alice@bob@example.org",    NULL, "more than one '@'" },
	{ "at sign last",         "alice@example.org@",       NULL, "more than one '@'" },
	{ "quoted local part",    "\"alice smith\"@example.org", NULL, "address contains a space" },
	{ "quoted no space",      "\"alice\"@example.org",    NULL, "quoted local parts are not accepted" },
	{ "quoted with at",       "\"a@b\"@example.org",      NULL, "quoted local parts are not accepted" },
	{ "leading dot",          ".alice@example.org",       NULL, "local part starts with a dot" },
	{ "trailing dot",         "alice.@example.org",       NULL, "local part ends with a dot" },
	{ "double dot",           "al..ice@example.org",      NULL, "local part has two dots in a row" },
	{ "space",                "al ice@example.org",       NULL, "address contains a space" },
	{ "leading space",        " alice@example.org",       NULL, "address contains a space" },
	{ "trailing newline",     "alice@example.org\n",      NULL, "address contains a control character" },
	{ "CR",                   "al\rice@example.org",      NULL, "address contains a control character" },
	{ "angle brackets",       "<alice@example.org>",      NULL, "local part contains '<'" },
	{ "comma",                "a,b@example.org",          NULL, "local part contains ','" },
	{ "backslash",            "a\\b@example.org",         NULL, "local part contains '\\'" },
	{ "parenthesis",          "a(b)@example.org",         NULL, "local part contains '('" },
	{ "bad UTF-8 local",      "j\xf6rg@example.org",      NULL, "local part is not valid UTF-8" },
	{ "overlong UTF-8 local", "\xc1\x81@example.org",     NULL, "local part is not valid UTF-8" },
	{ "above U+10FFFF",       "\xf4\x90\x80\x80@example.org", NULL, "local part is not valid UTF-8" },
	{ "C1 control",           "a\xc2\x85" "b@example.org", NULL, "local part contains a control character" },
	{ "bad domain",           "alice@exa_mple.org",       NULL, "domain contains '_'" },
	{ "address literal",      "alice@[192.0.2.1]",        NULL, "address literals are not accepted" },
	// clang-format on
};

static void test_address_cases(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(address_cases); i++) {
		const struct address_case *c = &address_cases[i];
		char out[ADDRESS_MAX + 1];
		struct error err = { 0 };
		int rc = store_address_normalize(span_from_cstr(c->input), out, &err);

		print_message("case: %s\n", c->name);
		if (c->want != NULL) {
			if (rc != 0)
				print_message("unexpected error: %s\n", err.message);
			assert_int_equal(rc, 0);
			assert_string_equal(out, c->want);
		} else {
			assert_int_equal(rc, -1);
			assert_int_equal(err.kind, ERROR_DATA);
			assert_string_equal(out, "");
			if (strstr(err.message, c->want_error) == NULL)
				print_message("message: %s\n", err.message);
			assert_non_null(strstr(err.message, c->want_error));
		}
	}
}

/* Inputs are spans: a NUL inside is refused, never a silent end of string. */
static void test_nul_byte(void **state)
{
	char out[ADDRESS_MAX + 1];
	struct error err = { 0 };

	(void) state;
	assert_int_equal(store_address_normalize(span_make("alice\0x@example.org", 19), out, &err),
			 -1);
	assert_string_equal(err.message, "address contains a NUL byte");
	assert_int_equal(
		store_address_domain_normalize(span_make("example.org\0.evil", 17), out, &err), -1);
	assert_string_equal(err.message, "domain contains a NUL byte");
	/* A span that stops before the NUL is fine: only len counts. */
	assert_int_equal(store_address_normalize(span_make("bob@example.org\0junk", 15), out, &err),
			 0);
	assert_string_equal(out, "bob@example.org");
}

static void test_limits(void **state)
{
	char local[80], label[80], domain[300], input[400], out[ADDRESS_MAX + 1];
	struct error err = { 0 };

	(void) state;

	print_message("case: local part of 64 octets\n");
	snprintf(input, sizeof(input), "%s@example.org", repeat(local, 64, 'x'));
	assert_int_equal(store_address_normalize(span_from_cstr(input), out, &err), 0);
	assert_string_equal(out, input);

	print_message("case: local part of 65 octets\n");
	snprintf(input, sizeof(input), "%s@example.org", repeat(local, 65, 'x'));
	assert_int_equal(store_address_normalize(span_from_cstr(input), out, &err), -1);
	assert_string_equal(err.message, "local part is longer than 64 octets");

	print_message("case: UTF-8 local part counted in octets\n");
	/* 32 two-octet characters are 64 octets; 33 are 66. */
	input[0] = '\0';
	for (int i = 0; i < 32; i++)
		strncat(input, "\xc3\xa4", sizeof(input) - strlen(input) - 1);
	strncat(input, "@example.org", sizeof(input) - strlen(input) - 1);
	assert_int_equal(store_address_normalize(span_from_cstr(input), out, &err), 0);
	snprintf(input, sizeof(input), "\xc3\xa4%s", out);
	assert_int_equal(store_address_normalize(span_from_cstr(input), out, &err), -1);
	assert_string_equal(err.message, "local part is longer than 64 octets");

	print_message("case: label of 63 octets\n");
	snprintf(input, sizeof(input), "%s.example", repeat(label, 63, 'a'));
	assert_int_equal(store_address_domain_normalize(span_from_cstr(input), out, &err), 0);
	assert_string_equal(out, input);

	print_message("case: label of 64 octets\n");
	snprintf(input, sizeof(input), "%s.example", repeat(label, 64, 'a'));
	assert_int_equal(store_address_domain_normalize(span_from_cstr(input), out, &err), -1);
	assert_string_equal(err.message, "domain label is longer than 63 octets");

	print_message("case: U-label whose A-label is longer than 63 octets\n");
	input[0] = '\0';
	for (int i = 0; i < 60; i++)
		strncat(input, "\xc3\xbc", sizeof(input) - strlen(input) - 1);
	strncat(input, ".example", sizeof(input) - strlen(input) - 1);
	assert_int_equal(store_address_domain_normalize(span_from_cstr(input), out, &err), -1);
	assert_string_equal(err.message, "domain label is longer than 63 octets");

	print_message("case: domain of 253 octets\n");
	domain_of_length(domain, 253);
	assert_int_equal(strlen(domain), 253);
	assert_int_equal(store_address_domain_normalize(span_from_cstr(domain), out, &err), 0);
	assert_string_equal(out, domain);

	print_message("case: domain of 254 octets\n");
	domain_of_length(domain, 254);
	assert_int_equal(strlen(domain), 254);
	assert_int_equal(store_address_domain_normalize(span_from_cstr(domain), out, &err), -1);
	assert_string_equal(err.message, "domain is longer than 253 octets");

	print_message("case: address of 254 octets\n");
	domain_of_length(domain, 254 - 1 - 64);
	snprintf(input, sizeof(input), "%s@%s", repeat(local, 64, 'x'), domain);
	assert_int_equal(strlen(input), 254);
	assert_int_equal(store_address_normalize(span_from_cstr(input), out, &err), 0);
	assert_string_equal(out, input);

	print_message("case: address of 255 octets\n");
	domain_of_length(domain, 255 - 1 - 64);
	snprintf(input, sizeof(input), "%s@%s", repeat(local, 64, 'x'), domain);
	assert_int_equal(store_address_normalize(span_from_cstr(input), out, &err), -1);
	assert_string_equal(err.message, "address is longer than 254 octets");

	print_message("case: very long input\n");
	memset(input, 'a', sizeof(input) - 1);
	input[sizeof(input) - 1] = '\0';
	assert_int_equal(store_address_domain_normalize(span_from_cstr(input), out, &err), -1);
	assert_int_equal(err.kind, ERROR_DATA);
}

/* Normalizing twice changes nothing: the store re-normalizes what it gets. */
static void test_idempotent(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(address_cases); i++) {
		const struct address_case *c = &address_cases[i];
		char again[ADDRESS_MAX + 1];
		struct error err = { 0 };

		if (c->want == NULL)
			continue;
		print_message("case: %s\n", c->name);
		assert_int_equal(store_address_normalize(span_from_cstr(c->want), again, &err), 0);
		assert_string_equal(again, c->want);
	}
}

static void test_domain_of(void **state)
{
	struct span d;

	(void) state;
	d = store_address_domain("alice@example.org");
	assert_true(span_eq_cstr(d, "example.org"));
	d = store_address_domain("a@b@example.org");
	assert_true(span_eq_cstr(d, "example.org"));
	d = store_address_domain("no-at-sign");
	assert_int_equal(d.len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_domain_cases), cmocka_unit_test(test_address_cases),
		cmocka_unit_test(test_nul_byte),     cmocka_unit_test(test_limits),
		cmocka_unit_test(test_idempotent),   cmocka_unit_test(test_domain_of),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
