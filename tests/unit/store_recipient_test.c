/* Tests for src/store/recipient.c: users, aliases (chains, diamonds, loops),
 * unknown and remote addresses, against a real SQLite store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/recipient.h"

struct fixture {
	char dir[64];
	char path[128];
	struct store *store;
};

static void add_alias(struct store *store, const char *address, const char *const *targets,
		      size_t count)
{
	struct store_alias *alias = calloc(1, sizeof(*alias));
	struct error err;

	snprintf(alias->address, sizeof(alias->address), "%s", address);
	for (size_t i = 0; i < count; i++)
		snprintf(alias->targets[i], sizeof(alias->targets[i]), "%s", targets[i]);
	alias->target_count = count;
	if (store_alias_add(store, alias, &err) != 0)
		fail_msg("alias %s: %s", address, err.message);
	free(alias);
}

static void add_user(struct store *store, const char *address, bool is_enabled)
{
	struct store_user *user = calloc(1, sizeof(*user));
	struct error err;

	snprintf(user->address, sizeof(user->address), "%s", address);
	user->is_enabled = is_enabled;
	if (store_user_add(store, user, &err) != 0)
		fail_msg("user %s: %s", address, err.message);
	if (!is_enabled)
		assert_int_equal(store_user_set_enabled(store, address, false, &err), 0);
	free(user);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_domain domain = { .name = "example.test" };
	struct error err;

	snprintf(f->dir, sizeof(f->dir), "/tmp/postgate-recipient-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/accounts.db", f->dir);
	assert_int_equal(store_open(f->path, true, &f->store, &err), 0);
	assert_int_equal(store_domain_add(f->store, &domain, &err), 0);
	add_user(f->store, "alice@example.test", true);
	add_user(f->store, "Bob@example.test", true);
	add_user(f->store, "gone@example.test", false);
	add_alias(f->store, "team@example.test",
		  (const char *[]){ "alice@example.test", "bob@example.test" }, 2);
	/* A diamond: all → team and alice again; alice gets one copy. */
	add_alias(f->store, "all@example.test",
		  (const char *[]){ "team@example.test", "alice@example.test", "x@remote.example" },
		  3);
	add_alias(f->store, "loop1@example.test", (const char *[]){ "loop2@example.test" }, 1);
	add_alias(f->store, "loop2@example.test",
		  (const char *[]){ "alice@example.test", "loop1@example.test" }, 2);
	add_alias(f->store, "dead@example.test", (const char *[]){ "gone@example.test" }, 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->store);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static const struct resolve_case {
	const char *name, *address;
	enum store_recipient_kind want;
	const char *targets; /* space-separated; remote ones prefixed with '!' */
} resolve_cases[] = {
	{ "user", "alice@example.test", STORE_RECIPIENT_USER, "alice@example.test" },
	{ "user, other case", "ALICE@example.test", STORE_RECIPIENT_USER, "alice@example.test" },
	{ "stored case kept", "bob@example.test", STORE_RECIPIENT_USER, "Bob@example.test" },
	{ "alias", "team@example.test", STORE_RECIPIENT_ALIAS,
	  "alice@example.test Bob@example.test" },
	{ "diamond delivers once", "all@example.test", STORE_RECIPIENT_ALIAS,
	  "alice@example.test Bob@example.test !x@remote.example" },
	{ "loop", "loop1@example.test", STORE_RECIPIENT_LOOP, "" },
	{ "unknown", "nobody@example.test", STORE_RECIPIENT_UNKNOWN, "" },
	{ "disabled", "gone@example.test", STORE_RECIPIENT_DISABLED, "" },
	{ "alias of a disabled user only", "dead@example.test", STORE_RECIPIENT_UNKNOWN, "" },
	{ "remote", "carol@elsewhere.example", STORE_RECIPIENT_REMOTE, "!carol@elsewhere.example" },
};

static void test_resolve(void **state)
{
	struct fixture *f = *state;
	struct store_expansion *exp = malloc(sizeof(*exp));

	for (size_t i = 0; i < ARRAY_LEN(resolve_cases); i++) {
		const struct resolve_case *c = &resolve_cases[i];
		enum store_recipient_kind kind;
		struct error err;
		char got[2048] = "";
		size_t o = 0;

		print_message("case: %s\n", c->name);
		assert_int_equal(store_recipient_resolve(f->store, c->address, &kind, exp, &err),
				 0);
		assert_int_equal(kind, c->want);
		for (size_t t = 0; t < exp->count; t++)
			o += (size_t) snprintf(got + o, sizeof(got) - o, "%s%s%s", t ? " " : "",
					       exp->targets[t].is_local ? "" : "!",
					       exp->targets[t].address);
		assert_string_equal(got, c->targets);
	}
	free(exp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
