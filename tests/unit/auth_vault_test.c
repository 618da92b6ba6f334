/* Tests for src/auth/vault.c: slots are handed out once each until none is
 * left, come back wiped, are reused, and a closed vault lives until its
 * last slot is back (ASan sees any use after free). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sodium.h>
#include <string.h>

#include "auth/vault.h"
#include "core/span.h"

#define SLOT_LEN 1024

static bool is_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static void test_take_until_full_and_give_back_wiped(void **state)
{
	struct error err;
	struct auth_vault *v = auth_vault_new(4, SLOT_LEN, &err);
	unsigned char *slots[4];

	(void) state;
	assert_non_null(v);
	for (int i = 0; i < 4; i++) {
		slots[i] = auth_vault_take(v);
		assert_non_null(slots[i]);
		assert_true(auth_vault_owns(v, slots[i]));
		assert_true(auth_vault_owns(v, slots[i] + SLOT_LEN - 1));
		assert_true(is_zero(slots[i], SLOT_LEN));
		for (int j = 0; j < i; j++) /* distinct and not overlapping */
			assert_true(slots[i] >= slots[j] + SLOT_LEN ||
				    slots[j] >= slots[i] + SLOT_LEN);
		memset(slots[i], 'p', SLOT_LEN);
	}
	assert_int_equal(auth_vault_in_use(v), 4);
	assert_null(auth_vault_take(v)); /* full: the caller falls back */
	assert_false(auth_vault_owns(v, &err));

	auth_vault_give(v, slots[2]);
	assert_int_equal(auth_vault_in_use(v), 3);
	/* The bytes stay mapped inside the vault; they must be wiped. */
	assert_true(is_zero(slots[2], SLOT_LEN));
	assert_ptr_equal(auth_vault_take(v), slots[2]);
	for (int i = 0; i < 4; i++)
		auth_vault_give(v, slots[i]);
	assert_int_equal(auth_vault_in_use(v), 0);
	for (int i = 0; i < 4; i++)
		assert_true(is_zero(slots[i], SLOT_LEN));
	auth_vault_close(v);
}

static void test_close_waits_for_the_last_slot(void **state)
{
	struct error err;
	struct auth_vault *v = auth_vault_new(2, SLOT_LEN, &err);
	unsigned char *a, *b;

	(void) state;
	assert_non_null(v);
	a = auth_vault_take(v);
	b = auth_vault_take(v);
	auth_vault_close(v);
	/* Still usable by the holders of a and b; nothing new is handed out. */
	memset(a, 'x', SLOT_LEN);
	auth_vault_give(v, a);
	assert_null(auth_vault_take(v));
	assert_int_equal(auth_vault_in_use(v), 1);
	memset(b, 'y', SLOT_LEN);
	auth_vault_give(v, b); /* the last one back frees the vault */
	auth_vault_close(NULL);
}

static void test_bad_parameters(void **state)
{
	struct error err;

	(void) state;
	assert_null(auth_vault_new(0, SLOT_LEN, &err));
	assert_int_equal(err.kind, ERROR_USAGE);
	assert_null(auth_vault_new(65537, SLOT_LEN, &err));
	assert_null(auth_vault_new(1, 0, &err));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_take_until_full_and_give_back_wiped),
		cmocka_unit_test(test_close_waits_for_the_last_slot),
		cmocka_unit_test(test_bad_parameters),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
