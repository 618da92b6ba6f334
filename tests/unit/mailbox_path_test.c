/* Tests for src/mailbox/path.c: the address → Maildir directory mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/span.h"
#include "mailbox/path.h"

static const struct path_case {
	const char *name, *address, *want; /* want NULL: must fail */
} path_cases[] = {
	{ "plain", "bob@example.test", "/m/example.test/bob" },
	{ "case folded", "Alice@example.test", "/m/example.test/alice" },
	{ "dots and plus", "a.b+tag@example.test", "/m/example.test/a.b+tag" },
	{ "slash encoded", "a/b@example.test", "/m/example.test/a%2Fb" },
	{ "dot-slash cannot climb", "a/./..b@example.test", "/m/example.test/a%2F.%2F..b" },
	{ "leading dot encoded", ".hidden@example.test", "/m/example.test/%2Ehidden" },
	{ "percent encoded", "100%@example.test", "/m/example.test/100%25" },
	{ "utf-8 kept", "j\xc3\xb6rg@example.test", "/m/example.test/j\xc3\xb6rg" },
	{ "no at", "bob", NULL },
	{ "empty local part", "@example.test", NULL },
	{ "empty domain", "bob@", NULL },
};

static void test_paths(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(path_cases); i++) {
		const struct path_case *c = &path_cases[i];
		char out[256];
		struct error err;
		int rc = mailbox_path_for("/m", c->address, out, sizeof(out), &err);

		print_message("case: %s\n", c->name);
		assert_int_equal(rc, c->want ? 0 : -1);
		if (c->want)
			assert_string_equal(out, c->want);
	}
}

static void test_too_long(void **state)
{
	char out[24];
	struct error err;

	(void) state;
	assert_int_equal(mailbox_path_for("/m", "bob@example.test", out, 20, &err), 0);
	assert_int_equal(mailbox_path_for("/m", "bobby@example.test", out, 20, &err), -1);
	assert_int_equal(err.kind, ERROR_DATA);
	/* Encoding makes paths longer: three bytes for each '/'. */
	assert_int_equal(mailbox_path_for("/m", "//@example.test", out, 23, &err), 0);
	assert_string_equal(out, "/m/example.test/%2F%2F");
	assert_int_equal(mailbox_path_for("/m", "//@example.test", out, 22, &err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_too_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
