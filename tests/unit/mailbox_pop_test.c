/* Tests for src/mailbox/pop.c: unique-ids (stable across new/ → cur/ and
 * flag changes, within RFC 1939's 70 characters), the seen name, arrival
 * order, listing with and without S=, the lock (a second open is IN_USE
 * until the first closes), and UPDATE (deletions and seen flags on disk). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/span.h"
#include "mailbox/pop.h"
#include "scratch.h"

static const struct uid_case {
	const char *name, *input, *want; /* want NULL: a 64-hex digest */
} uid_cases[] = {
	{ "new/ name", "1700000000.M1P2Q3_x-0.host,S=10", "1700000000.M1P2Q3_x-0.host,S=10" },
	{ "cur/ name with flags", "1700000000.M1P2Q3_x-0.host,S=10:2,S",
	  "1700000000.M1P2Q3_x-0.host,S=10" },
	{ "seventy characters",
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
	{ "seventy-one characters",
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL },
	{ "a space", "a b", NULL },
};

static void test_uid_make(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(uid_cases); i++) {
		const struct uid_case *c = &uid_cases[i];
		char uid[MAILBOX_POP_UID_MAX + 1];
		size_t len = mailbox_pop_uid_make(span_from_cstr(c->input), uid);

		print_message("case: %s\n", c->name);
		assert_int_equal(len, strlen(uid));
		if (c->want != NULL) {
			assert_string_equal(uid, c->want);
			continue;
		}
		assert_int_equal(len, 64);
		assert_int_equal(strspn(uid, "0123456789abcdef"), 64);
	}
}

static void test_uid_survives_the_move_to_cur(void **state)
{
	const char *name = "1700000000.M1P2Q3_x-0.a-very-long-host-name.example.test,S=1234";
	char seen[256], before[MAILBOX_POP_UID_MAX + 1], after[MAILBOX_POP_UID_MAX + 1];

	(void) state;
	assert_true(mailbox_pop_seen_name(name, seen, sizeof(seen)));
	mailbox_pop_uid_make(span_from_cstr(name), before);
	mailbox_pop_uid_make(span_from_cstr(seen), after);
	assert_string_equal(before, after);
}

static const struct seen_case {
	const char *name, *input, *want; /* want NULL: false */
} seen_cases[] = {
	{ "from new/", "m", "m:2,S" },
	{ "no flags yet", "m:2,", "m:2,S" },
	{ "kept in order", "m:2,FRT", "m:2,FRST" },
	{ "already seen", "m:2,RS", "m:2,RS" },
	{ "before lower case", "m:2,Da", "m:2,DSa" },
	{ "experimental info", "m:1,x", NULL },
};

static void test_seen_name(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(seen_cases); i++) {
		const struct seen_case *c = &seen_cases[i];
		char out[64];
		bool ok = mailbox_pop_seen_name(c->input, out, sizeof(out));

		print_message("case: %s\n", c->name);
		assert_int_equal(ok, c->want != NULL);
		if (ok)
			assert_string_equal(out, c->want);
	}
	{
		char small[4];

		assert_false(mailbox_pop_seen_name("message", small, sizeof(small)));
	}
}

static const struct arrival_case {
	const char *name, *input;
	bool ok;
	uint64_t seconds;
	uint32_t micros;
} arrival_cases[] = {
	{ "ours", "1700000000.M123456P1Q2_x.host", true, 1700000000, 123456 },
	{ "qmail", "1700000000.12345.host", true, 1700000000, 0 },
	{ "no digits", "msg.1", false, 0, 0 },
	{ "no dot", "1700000000", false, 0, 0 },
	{ "too many micro digits", "1.M1234567P", true, 1, 0 },
};

static void test_arrival_parse(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(arrival_cases); i++) {
		const struct arrival_case *c = &arrival_cases[i];
		uint64_t seconds = 0;
		uint32_t micros = 0;
		bool ok = mailbox_pop_arrival_parse(c->input, &seconds, &micros);

		print_message("case: %s\n", c->name);
		assert_int_equal(ok, c->ok);
		if (ok) {
			assert_int_equal(seconds, c->seconds);
			assert_int_equal(micros, c->micros);
		}
	}
}

struct tmp {
	char dir[PATH_MAX];
	char maildir[PATH_MAX];
};

static int tmp_setup(void **state)
{
	struct tmp *tmp = calloc(1, sizeof(*tmp));

	if (tmp == NULL || scratch_dir_make("mailbox_pop_test", tmp->dir) < 0) {
		free(tmp);
		return -1;
	}
	snprintf(tmp->maildir, sizeof(tmp->maildir), "%s/mail/example.test/bob", tmp->dir);
	*state = tmp;
	return 0;
}

static int tmp_teardown(void **state)
{
	struct tmp *tmp = *state;
	int rc = scratch_dir_remove(tmp->dir);

	free(tmp);
	return rc;
}

static void put(const struct tmp *tmp, const char *sub, const char *name, const char *data)
{
	char path[PATH_MAX * 2];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", tmp->maildir, sub, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	fputs(data, f);
	fclose(f);
}

static bool exists(const struct tmp *tmp, const char *sub, const char *name)
{
	char path[PATH_MAX * 2];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s/%s", tmp->maildir, sub, name);
	return stat(path, &st) == 0;
}

static void test_open_lists_in_arrival_order_and_locks(void **state)
{
	struct tmp *tmp = *state;
	struct mailbox_pop_drop *drop, *second;
	struct error err;

	/* A missing Maildir is made and is an empty maildrop. */
	assert_int_equal(mailbox_pop_open(tmp->maildir, &drop, &err), MAILBOX_POP_OPENED);
	assert_int_equal(drop->count, 0);
	mailbox_pop_close(drop);

	put(tmp, "new", "1700000002.M5P1Q1_b.host,S=3", "abc");
	put(tmp, "cur", "1700000001.M9P1Q1_a.host,S=2:2,S", "de");
	put(tmp, "new", "1700000002.M4P1Q2_c.host", "12345"); /* no S=: one stat */
	put(tmp, "new", ".hidden", "x");
	/* A move cut short: the same message in new/ and cur/. */
	put(tmp, "new", "1700000003.M1P1Q1_d.host,S=1", "z");
	put(tmp, "cur", "1700000003.M1P1Q1_d.host,S=1:2,", "z");

	assert_int_equal(mailbox_pop_open(tmp->maildir, &drop, &err), MAILBOX_POP_OPENED);
	assert_int_equal(drop->count, 4);
	assert_string_equal(mailbox_pop_name(drop, 0), "cur/1700000001.M9P1Q1_a.host,S=2:2,S");
	assert_string_equal(mailbox_pop_name(drop, 1), "new/1700000002.M4P1Q2_c.host");
	assert_string_equal(mailbox_pop_name(drop, 2), "new/1700000002.M5P1Q1_b.host,S=3");
	assert_string_equal(mailbox_pop_name(drop, 3), "cur/1700000003.M1P1Q1_d.host,S=1:2,");
	assert_int_equal(drop->messages[0].size, 2);
	assert_int_equal(drop->messages[1].size, 5);
	assert_int_equal(drop->messages[2].size, 3);
	assert_int_equal(drop->total_size, 11);
	assert_string_equal(mailbox_pop_uid(drop, 0), "1700000001.M9P1Q1_a.host,S=2");

	/* One session at a time, in this process as in another. */
	assert_int_equal(mailbox_pop_open(tmp->maildir, &second, &err), MAILBOX_POP_IN_USE);
	assert_null(second);
	mailbox_pop_close(drop);
	assert_int_equal(mailbox_pop_open(tmp->maildir, &second, &err), MAILBOX_POP_OPENED);
	mailbox_pop_close(second);
}

static void test_update_deletes_and_marks_seen(void **state)
{
	struct tmp *tmp = *state;
	struct mailbox_pop_drop *drop;
	struct mailbox_pop_update_result result;
	struct error err;
	int fd;

	assert_int_equal(mailbox_pop_open(tmp->maildir, &drop, &err), MAILBOX_POP_OPENED);
	mailbox_pop_close(drop);
	put(tmp, "new", "1700000001.M1P1Q1_a.host,S=1", "a");
	put(tmp, "new", "1700000002.M1P1Q1_b.host,S=1", "b");
	put(tmp, "cur", "1700000003.M1P1Q1_c.host,S=1:2,F", "c");
	put(tmp, "new", "1700000004.M1P1Q1_d.host,S=1", "d");
	assert_int_equal(mailbox_pop_open(tmp->maildir, &drop, &err), MAILBOX_POP_OPENED);
	assert_int_equal(drop->count, 4);
	assert_int_equal(mailbox_pop_message_open(drop, 1, &fd, &err), 0);
	close(fd);
	drop->messages[0].is_deleted = true;
	drop->messages[1].is_retrieved = true;
	drop->messages[2].is_retrieved = true;
	/* Deleted and retrieved: deleted wins. */
	drop->messages[3].is_deleted = true;
	drop->messages[3].is_retrieved = true;
	assert_int_equal(mailbox_pop_update(drop, &result, &err), 0);
	assert_int_equal(result.deleted, 2);
	assert_int_equal(result.marked_seen, 2);
	assert_int_equal(result.not_deleted, 0);
	mailbox_pop_close(drop);
	assert_false(exists(tmp, "new", "1700000001.M1P1Q1_a.host,S=1"));
	assert_false(exists(tmp, "new", "1700000004.M1P1Q1_d.host,S=1"));
	assert_true(exists(tmp, "cur", "1700000002.M1P1Q1_b.host,S=1:2,S"));
	assert_true(exists(tmp, "cur", "1700000003.M1P1Q1_c.host,S=1:2,FS"));

	/* A message removed by someone else: gone is gone, and RETR says so. */
	assert_int_equal(mailbox_pop_open(tmp->maildir, &drop, &err), MAILBOX_POP_OPENED);
	assert_int_equal(drop->count, 2);
	{
		char path[PATH_MAX * 2];

		snprintf(path, sizeof(path), "%s/%s", tmp->maildir, mailbox_pop_name(drop, 0));
		assert_int_equal(unlink(path), 0);
	}
	assert_int_equal(mailbox_pop_message_open(drop, 0, &fd, &err), -1);
	assert_int_equal(err.kind, ERROR_NOT_FOUND);
	drop->messages[0].is_deleted = true;
	assert_int_equal(mailbox_pop_update(drop, &result, &err), 0);
	assert_int_equal(result.deleted, 1);
	mailbox_pop_close(drop);
}

static void test_a_thousand_messages(void **state)
{
	struct tmp *tmp = *state;
	struct mailbox_pop_drop *drop;
	struct error err;

	assert_int_equal(mailbox_pop_open(tmp->maildir, &drop, &err), MAILBOX_POP_OPENED);
	mailbox_pop_close(drop);
	for (int i = 0; i < 1000; i++) {
		char name[128];

		/* Name order differs from arrival order. */
		snprintf(name, sizeof(name), "%d.M%dP1Q%d_m.host,S=4", 1700000000 + i, 999 - i, i);
		put(tmp, i % 2 ? "cur" : "new", name, "data");
	}
	assert_int_equal(mailbox_pop_open(tmp->maildir, &drop, &err), MAILBOX_POP_OPENED);
	assert_int_equal(drop->count, 1000);
	for (size_t i = 0; i < drop->count; i++) {
		char want[128];

		snprintf(want, sizeof(want), "%zu.M%zuP1Q%zu_m.host,S=4", 1700000000 + i, 999 - i,
			 i);
		assert_string_equal(mailbox_pop_uid(drop, i), want);
	}
	assert_int_equal(drop->total_size, 4000);
	mailbox_pop_close(drop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uid_make),
		cmocka_unit_test(test_uid_survives_the_move_to_cur),
		cmocka_unit_test(test_seen_name),
		cmocka_unit_test(test_arrival_parse),
		cmocka_unit_test_setup_teardown(test_open_lists_in_arrival_order_and_locks,
						tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_update_deletes_and_marks_seen, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_a_thousand_messages, tmp_setup, tmp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
