/* Tests for src/auth/hashmem.c: the process's mmap() gives huge-page advice
 * to a password hash's large anonymous mapping only, and only on a thread
 * inside auth_hashmem_begin/end; every other mapping is passed through as
 * asked; libsodium's argon2id really maps its memory through it, and the
 * hashes come out the same. The advice is read back from the kernel
 * (/proc/self/smaps: VmFlags "hg"). Sanitizer builds, which leave mmap() to
 * their runtime, skip these. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "auth/hashmem.h"
#include "auth/secret.h"
#include "core/span.h"

#define HASH_REGION_BYTES ((size_t) 64 << 20) /* argon2id's, at the interactive limit */

/* Whether the mapping that starts at p carries MADV_HUGEPAGE ("hg"). */
static bool is_advised(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool is_in_region = false, is_hg = false;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long start, end;

		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') < line + 17) {
			is_in_region = start == (unsigned long) p;
			continue;
		}
		if (is_in_region && strncmp(line, "VmFlags:", 8) == 0) {
			is_hg = strstr(line, " hg") != NULL;
			break;
		}
	}
	fclose(f);
	return is_hg;
}

struct map_case {
	const char *name;
	bool is_in_scope;
	size_t len;
	int flags;
	bool is_file;
	bool want_advised;
};

static void test_which_mappings_are_advised(void **state)
{
	// clang-format off
	static const struct map_case cases[] = {
		{ "hash region in a hash",          true,  HASH_REGION_BYTES, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, false, true },
		{ "without MAP_POPULATE",           true,  HASH_REGION_BYTES, MAP_PRIVATE | MAP_ANONYMOUS,                false, true },
		{ "at the minimum size",            true,  AUTH_HASHMEM_MIN_BYTES, MAP_PRIVATE | MAP_ANONYMOUS,           false, true },
		{ "same region outside a hash",     false, HASH_REGION_BYTES, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, false, false },
		{ "one page under the minimum",     true,  AUTH_HASHMEM_MIN_BYTES - 4096, MAP_PRIVATE | MAP_ANONYMOUS,    false, false },
		{ "shared anonymous",               true,  HASH_REGION_BYTES, MAP_SHARED | MAP_ANONYMOUS,                 false, false },
		{ "a file",                         true,  HASH_REGION_BYTES, MAP_PRIVATE,                                true,  false },
	};
	// clang-format on
	char path[] = "/tmp/auth_hashmem_test.XXXXXX";
	int fd = mkstemp(path);

	(void) state;
	if (!auth_hashmem_is_active())
		skip();
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t) HASH_REGION_BYTES), 0);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct map_case *c = &cases[i];
		uint64_t before = auth_hashmem_advised_count();
		unsigned char *p;

		print_message("case: %s\n", c->name);
		if (c->is_in_scope)
			auth_hashmem_begin();
		p = mmap(NULL, c->len, PROT_READ | PROT_WRITE, c->flags, c->is_file ? fd : -1, 0);
		auth_hashmem_end();
		assert_true(p != MAP_FAILED);
		assert_int_equal(is_advised(p), c->want_advised);
		assert_int_equal(auth_hashmem_advised_count() - before, c->want_advised ? 1 : 0);
		/* The memory the caller asked for, zeroed and writable, either way. */
		assert_int_equal(p[0] | p[c->len / 2] | p[c->len - 1], 0);
		p[0] = p[c->len - 1] = 0x5a;
		assert_int_equal(munmap(p, c->len), 0);
	}
	close(fd);
	unlink(path);
}

/* A failure is reported as the C library's mmap reports it. */
static void test_failure_passes_through(void **state)
{
	(void) state;
	if (!auth_hashmem_is_active())
		skip();
	auth_hashmem_begin();
	assert_true(mmap(NULL, HASH_REGION_BYTES, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, 12345,
			 1) == MAP_FAILED); /* misaligned offset */
	assert_true(mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED);
	auth_hashmem_end();
}

/* libsodium's argon2id maps its 64 MiB through this module, once per run,
 * and the results are what they always were. */
static void test_argon2id_maps_through_it(void **state)
{
	char secret[AUTH_SECRET_MAX], plain[crypto_pwhash_STRBYTES];
	struct error err;
	uint64_t before;

	(void) state;
	if (!auth_hashmem_is_active())
		skip();
	assert_int_equal(auth_secret_global_init(&err), 0);
	before = auth_hashmem_advised_count();
	assert_int_equal(
		auth_secret_make_argon2id("correct horse", 13, secret, sizeof(secret), &err), 0);
	assert_int_equal(auth_hashmem_advised_count() - before, 1);
	assert_true(auth_secret_verify_argon2id(secret, "correct horse", 13));
	assert_false(auth_secret_verify_argon2id(secret, "correct horsf", 13));
	assert_int_equal(auth_hashmem_advised_count() - before, 3);
	/* The same hashes with and without huge pages: a secret made outside a
	 * scope (4 KiB pages) verifies inside one, and the reverse. */
	assert_int_equal(crypto_pwhash_str_alg(
				 plain, "battery staple", 14, crypto_pwhash_OPSLIMIT_INTERACTIVE,
				 crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13),
			 0);
	snprintf(secret, sizeof(secret), "{ARGON2ID}%s", plain);
	assert_true(auth_secret_verify_argon2id(secret, "battery staple", 14));
	assert_int_equal(auth_hashmem_advised_count() - before, 4);
	assert_int_equal(
		auth_secret_make_argon2id("battery staple", 14, secret, sizeof(secret), &err), 0);
	assert_int_equal(
		crypto_pwhash_str_verify(secret + strlen("{ARGON2ID}"), "battery staple", 14), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_which_mappings_are_advised),
		cmocka_unit_test(test_failure_passes_through),
		cmocka_unit_test(test_argon2id_maps_through_it),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
