/* Tests for src/smtp/header.c: header field names and the addresses of an
 * RFC 5322 address-list, as `postgate sendmail -t` reads To:, Cc:, Bcc:. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/span.h"
#include "smtp/header.h"

struct list_case {
	const char *name, *value;
	int rc;
	const char *want; /* the addresses joined with "|" */
};

// clang-format off
static const struct list_case list_cases[] = {
	{ "one",                "a@x.test",                                  0, "a@x.test" },
	{ "two with spaces",    " a@x.test ,  b@y.test ",                    0, "a@x.test|b@y.test" },
	{ "display name",       "Alice <a@x.test>",                          0, "a@x.test" },
	{ "quoted comma",       "\"Doe, Bob\" <b@x.test>, c@x.test",         0, "b@x.test|c@x.test" },
	{ "escaped quote",      "\"a\\\"b, c\" <d@x.test>",                  0, "d@x.test" },
	{ "comment",            "(team) c@x.test (the lead)",                0, "c@x.test" },
	{ "nested comment",     "(a (b, c) d) e@x.test",                     0, "e@x.test" },
	{ "group",              "team: a@x.test, b@x.test;, c@x.test",       0, "a@x.test|b@x.test|c@x.test" },
	{ "empty group",        "undisclosed-recipients:;",                  0, "" },
	{ "empty items",        ",, a@x.test,,",                             0, "a@x.test" },
	{ "text after angle",   "<a@x.test> junk, b@x.test",                 0, "a@x.test|b@x.test" },
	{ "source route",       "<@hop,@hop2:a@x.test>",                     0, "@hop,@hop2:a@x.test" },
	{ "bare name",          "root",                                      0, "root" },
	{ "empty",              "",                                          0, "" },
	{ "item at the limit",  "{1024}",                                    0, "{1024}" },
	{ "item one too long",  "{1025}",                                    -1, "" },
};
// clang-format on

struct joined {
	char text[4096];
};

static int join(void *ctx, struct span address)
{
	struct joined *j = ctx;
	size_t used = strlen(j->text);

	snprintf(j->text + used, sizeof(j->text) - used, "%s%.*s", used ? "|" : "",
		 (int) address.len, address.ptr);
	return 0;
}

/* "{N}": N letters 'a'. */
static const char *expand(const char *s, char *out, size_t cap)
{
	unsigned n;

	if (sscanf(s, "{%u}", &n) != 1 || n + 1 > cap)
		return s;
	memset(out, 'a', n);
	out[n] = '\0';
	return out;
}

static void test_address_list(void **state)
{
	static char value[2048], want[2048];

	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(list_cases); i++) {
		const struct list_case *c = &list_cases[i];
		struct joined got = { "" };
		const char *v = expand(c->value, value, sizeof(value));

		print_message("case: %s\n", c->name);
		assert_int_equal(smtp_header_address_list(span_from_cstr(v), join, &got), c->rc);
		if (c->rc == 0)
			assert_string_equal(got.text, expand(c->want, want, sizeof(want)));
	}
}

static int stop(void *ctx, struct span address)
{
	(void) ctx;
	(void) address;
	return -1;
}

static void test_callback_stops(void **state)
{
	(void) state;
	assert_int_equal(smtp_header_address_list(SPAN_LITERAL("a@x, b@y"), stop, NULL), -1);
}

static const struct name_case {
	const char *name, *line, *want; /* want NULL: not a field line */
} name_cases[] = {
	{ "plain", "Subject: hi", "Subject" },	  { "no space", "To:a@x", "To" },
	{ "continuation", " folded text", NULL }, { "empty name", ": x", NULL },
	{ "space in name", "Sub ject: x", NULL }, { "no colon", "just text", NULL },
	{ "8-bit", "Sub\xc3\xa9: x", NULL },	  { "empty line", "", NULL },
};

static void test_field_name(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(name_cases); i++) {
		const struct name_case *c = &name_cases[i];
		struct span name;
		bool ok = smtp_header_field_name(span_from_cstr(c->line), &name);

		print_message("case: %s\n", c->name);
		assert_int_equal(ok, c->want != NULL);
		if (ok)
			assert_true(span_eq_cstr(name, c->want));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address_list),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_field_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
