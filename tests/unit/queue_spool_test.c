/* Tests for src/queue/spool.c in temporary directories: queue IDs, commit and
 * abort, recovery from the on-disk state a crash leaves between any two
 * steps (made by hand, as docs/spool.md lists them), delivery state, moves,
 * finish, full disks and concurrent commits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/span.h"
#include "queue/spool.h"
#include "scratch.h"
#include "syscall_trace.h"

struct tmp {
	char dir[PATH_MAX];   /* the test's own directory */
	char spool[PATH_MAX]; /* dir/spool */
};

static int tmp_setup(void **state)
{
	struct tmp *tmp = calloc(1, sizeof(*tmp));

	if (tmp == NULL || scratch_dir_make("queue_spool_test", tmp->dir) < 0) {
		free(tmp);
		return -1;
	}
	snprintf(tmp->spool, sizeof(tmp->spool), "%s/spool", tmp->dir);
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

static int limit_setup(void **state)
{
	if (scratch_file_size_limit_save() != 0)
		return -1;
	return tmp_setup(state);
}

static int limit_teardown(void **state)
{
	if (scratch_file_size_limit_restore() != 0)
		return -1;
	return tmp_teardown(state);
}

static void envelope_make(struct queue_envelope *env, const char *from, size_t recipients)
{
	struct error err;

	queue_envelope_init(env);
	assert_int_equal(queue_envelope_string_set(&env->reverse_path, span_from_cstr(from), &err),
			 0);
	assert_int_equal(
		queue_envelope_string_set(&env->client_address, span_from_cstr("192.0.2.1"), &err),
		0);
	assert_int_equal(
		queue_envelope_string_set(&env->helo, span_from_cstr("client.example"), &err), 0);
	env->received_at = 1712345678;
	for (size_t i = 0; i < recipients; i++) {
		char address[32];

		snprintf(address, sizeof(address), "rcpt%zu@example.test", i);
		assert_int_equal(
			queue_envelope_add_recipient(env, span_from_cstr(address), NULL, &err), 0);
	}
}

/* Every file in tmp/, queue/ and deferred/ as "dir/name", sorted, joined by
 * spaces. */
static void spool_files(const char *spool, char *out, size_t cap)
{
	static const char *const dirs[] = { "deferred", "queue", "tmp" };
	char names[64][64];
	size_t count = 0, o = 0;

	for (size_t d = 0; d < ARRAY_LEN(dirs); d++) {
		char path[PATH_MAX];
		DIR *dir;
		struct dirent *e;

		snprintf(path, sizeof(path), "%s/%s", spool, dirs[d]);
		dir = opendir(path);
		assert_non_null(dir);
		while ((e = readdir(dir)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			assert_true(count < ARRAY_LEN(names));
			snprintf(names[count++], sizeof(names[0]), "%s/%s", dirs[d], e->d_name);
		}
		closedir(dir);
	}
	qsort(names, count, sizeof(names[0]), (int (*)(const void *, const void *)) strcmp);
	out[0] = '\0';
	for (size_t i = 0; i < count; i++)
		o += (size_t) snprintf(out + o, cap - o, "%s%s", i ? " " : "", names[i]);
}

static void write_file(const char *spool, const char *rel, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", spool, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* What recovery reported, as "ID:queue ID:deferred". */
struct reported {
	char text[1024];
	size_t count;
	char last_id[QUEUE_ID_MAX + 1];
	bool is_out_of_order;
};

static void record_id(void *ctx, const char *id, enum queue_place place)
{
	struct reported *r = ctx;
	size_t o = strlen(r->text);

	if (r->count > 0 && strcmp(r->last_id, id) >= 0)
		r->is_out_of_order = true;
	snprintf(r->last_id, sizeof(r->last_id), "%s", id);
	if (o < sizeof(r->text))
		snprintf(r->text + o, sizeof(r->text) - o, "%s%s:%s", r->count ? " " : "", id,
			 place == QUEUE_PLACE_ACTIVE ? "queue" : "deferred");
	r->count++;
}

/* --- queue IDs ------------------------------------------------------------- */

static const struct id_shape_case {
	const char *name;
	const char *text;
	size_t len; /* 0: strlen */
	bool is_valid;
} id_shape_cases[] = {
	{ "made by the generator", "0123456789abc", 0, true },
	{ "all of the alphabet's end", "zzzzzzzzzzzzz", 0, true },
	{ "one short", "0123456789ab", 0, false },
	{ "one long", "0123456789abcd", 0, false },
	{ "upper case", "0123456789ABC", 0, false },
	{ "letter i", "0123456789abi", 0, false },
	{ "letter l", "0123456789abl", 0, false },
	{ "letter o", "0123456789abo", 0, false },
	{ "letter u", "0123456789abu", 0, false },
	{ "a slash", "0123456789a/c", 0, false },
	{ "a dot", "../3456789abc", 0, false },
	{ "a NUL", "0123456789a\0c", 13, false },
	{ "empty", "", 0, false },
};

static void test_id_shape(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(id_shape_cases); i++) {
		const struct id_shape_case *c = &id_shape_cases[i];
		size_t len = c->len ? c->len : strlen(c->text);

		print_message("case: %s\n", c->name);
		assert_int_equal(queue_id_is_valid(span_make(c->text, len)), c->is_valid);
	}
}

static const struct id_clock_case {
	const char *name;
	uint64_t now_us[4]; /* the clock at four calls */
} id_clock_cases[] = {
	{ "clock moves on", { 1000000, 2000000, 2000001, 999999999999 } },
	{ "same microsecond", { 5, 5, 5, 5 } },
	{ "clock steps back a little",
	  { 1712345678000000, 1712345677999000, 1712345677999999, 1712345678000000 } },
	{ "clock steps back a lot", { 1712345678000000, 1000, 0, 1 } },
	{ "digit boundaries", { 31, 32, 1023, 1024 } },
};

/* IDs strictly increase as strings whatever the clock does, and sort as the
 * times they encode. */
static void test_id_sorts_by_time(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(id_clock_cases); i++) {
		const struct id_clock_case *c = &id_clock_cases[i];
		struct queue_id_generator gen = { 0 };
		char prev[QUEUE_ID_MAX + 1] = "", id[QUEUE_ID_MAX + 1];

		print_message("case: %s\n", c->name);
		for (size_t k = 0; k < ARRAY_LEN(c->now_us); k++) {
			/* Random bits at their extremes must not change the order. */
			queue_id_generate(&gen, c->now_us[k], k % 2 ? 0 : 1023, id);
			assert_true(queue_id_is_valid(span_from_cstr(id)));
			assert_true(strcmp(prev, id) < 0);
			memcpy(prev, id, sizeof(id));
		}
	}
	{
		/* Later time, larger ID, across generators (two processes). */
		struct queue_id_generator a = { 0 }, b = { 0 };
		char x[QUEUE_ID_MAX + 1], y[QUEUE_ID_MAX + 1];

		for (uint64_t t = 1; t < (UINT64_C(1) << 54); t = t * 3 + 7) {
			queue_id_generate(&a, t, 1023, x);
			queue_id_generate(&b, t + 1, 0, y);
			assert_true(strcmp(x, y) < 0);
		}
	}
}

#define ID_THREADS	    8
#define ID_CALLS_PER_THREAD 12500 /* 100,000 in all */

struct id_batch {
	char (*ids)[QUEUE_ID_MAX + 1];
	bool is_increasing;
};

static void *make_ids(void *arg)
{
	struct id_batch *batch = arg;

	batch->is_increasing = true;
	for (size_t i = 0; i < ID_CALLS_PER_THREAD; i++) {
		if (queue_id_new(batch->ids[i]) != 0 ||
		    (i > 0 && strcmp(batch->ids[i - 1], batch->ids[i]) >= 0))
			batch->is_increasing = false;
	}
	return NULL;
}

static int id_compare(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* 100,000 IDs from eight threads at once: all valid, all different, and
 * increasing within each thread. */
static void test_id_unique_across_threads(void **state)
{
	char(*all)[QUEUE_ID_MAX + 1] = calloc(ID_THREADS * ID_CALLS_PER_THREAD, sizeof(*all));
	struct id_batch batches[ID_THREADS];
	pthread_t threads[ID_THREADS];

	(void) state;
	assert_non_null(all);
	for (size_t t = 0; t < ID_THREADS; t++) {
		batches[t].ids = all + t * ID_CALLS_PER_THREAD;
		assert_int_equal(pthread_create(&threads[t], NULL, make_ids, &batches[t]), 0);
	}
	for (size_t t = 0; t < ID_THREADS; t++) {
		pthread_join(threads[t], NULL);
		assert_true(batches[t].is_increasing);
	}
	qsort(all, ID_THREADS * ID_CALLS_PER_THREAD, sizeof(*all), id_compare);
	for (size_t i = 0; i < ID_THREADS * ID_CALLS_PER_THREAD; i++) {
		assert_true(queue_id_is_valid(span_from_cstr(all[i])));
		if (i > 0)
			assert_true(strcmp(all[i - 1], all[i]) < 0);
	}
	free(all);
}

/* --- commit, abort, read back ---------------------------------------------- */

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static void test_open_makes_dirs(void **state)
{
	struct tmp *tmp = *state;
	static const char *const dirs[] = { "", "/tmp", "/queue", "/deferred" };
	struct queue_spool *spool;
	struct error err;
	mode_t old = umask(0);

	assert_int_equal(queue_spool_open(tmp->spool, &spool, &err), 0);
	umask(old);
	for (size_t i = 0; i < ARRAY_LEN(dirs); i++) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s%s", tmp->spool, dirs[i]);
		print_message("dir: %s\n", path);
		assert_int_equal(mode_of(path), 0700);
	}
	queue_spool_free(spool);
	/* Opening again is fine; the directories stay. */
	assert_int_equal(queue_spool_open(tmp->spool, &spool, &err), 0);
	queue_spool_free(spool);
	queue_spool_free(NULL);
}

static void append_pattern(struct queue_message *m, size_t total, size_t piece)
{
	char buf[70000];
	struct error err;

	assert_true(piece <= sizeof(buf));
	for (size_t off = 0; off < total; off += piece) {
		size_t n = total - off < piece ? total - off : piece;

		for (size_t i = 0; i < n; i++)
			buf[i] = (char) ((off + i) * 7 + 3);
		assert_int_equal(queue_message_append(m, buf, n, &err), 0);
	}
}

static void check_pattern(int fd, size_t total)
{
	char buf[4096];
	size_t off = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			assert_int_equal((unsigned char) buf[i],
					 (unsigned char) ((off + (size_t) i) * 7 + 3));
		off += (size_t) n;
	}
	assert_int_equal(n, 0);
	assert_int_equal(off, total);
}

static const struct commit_case {
	const char *name;
	size_t total;
	size_t piece;
} commit_cases[] = {
	{ "empty message", 0, 1 },
	{ "one byte at a time", 5000, 1 },
	{ "exactly one buffer", QUEUE_MESSAGE_BUFFER_BYTES, QUEUE_MESSAGE_BUFFER_BYTES },
	{ "pieces that straddle the buffer", 3 * QUEUE_MESSAGE_BUFFER_BYTES + 17, 4093 },
	{ "pieces bigger than the buffer", 1000000, 65536 + 3 },
};

/* Commit, then a restart's recovery reports the message; its envelope and
 * bytes read back exactly. */
static void test_commit_then_recover(void **state)
{
	struct tmp *tmp = *state;

	for (size_t i = 0; i < ARRAY_LEN(commit_cases); i++) {
		const struct commit_case *c = &commit_cases[i];
		struct queue_spool *spool;
		struct queue_message *m;
		struct queue_envelope env, back;
		struct reported r = { 0 };
		struct error err;
		char id[QUEUE_ID_MAX + 1], want[256], files[1024], path[PATH_MAX];
		int fd;

		print_message("case: %s\n", c->name);
		assert_int_equal(queue_spool_open(tmp->spool, &spool, &err), 0);
		assert_int_equal(queue_spool_begin(spool, &m, &err), 0);
		snprintf(id, sizeof(id), "%s", queue_message_id(m));
		assert_true(queue_id_is_valid(span_from_cstr(id)));
		append_pattern(m, c->total, c->piece);
		assert_int_equal(queue_message_size(m), c->total);
		envelope_make(&env, "alice@example.test", 2);
		if (queue_spool_commit(m, &env, &err) != 0)
			fail_msg("commit: %s", err.message);
		snprintf(want, sizeof(want), "queue/%s.env queue/%s.msg", id, id);
		spool_files(tmp->spool, files, sizeof(files));
		assert_string_equal(files, want);
		snprintf(path, sizeof(path), "%s/queue/%s.msg", tmp->spool, id);
		assert_int_equal(mode_of(path), 0600);
		queue_spool_free(spool);

		/* A restart. */
		assert_int_equal(queue_spool_open(tmp->spool, &spool, &err), 0);
		assert_int_equal(queue_spool_recover(spool, record_id, &r, &err), 0);
		snprintf(want, sizeof(want), "%s:queue", id);
		assert_string_equal(r.text, want);
		assert_int_equal(queue_spool_envelope_load(spool, id, &back, &err), 0);
		assert_true(queue_envelope_equal(&env, &back));
		assert_int_equal(queue_spool_message_open(spool, id, &fd, &err), 0);
		check_pattern(fd, c->total);
		close(fd);
		assert_int_equal(queue_spool_finish(spool, id, &err), 0);
		spool_files(tmp->spool, files, sizeof(files));
		assert_string_equal(files, "");
		queue_envelope_clear(&back);
		queue_envelope_clear(&env);
		queue_spool_free(spool);
	}
}

static void test_begin_abort_leaves_nothing(void **state)
{
	struct tmp *tmp = *state;
	struct queue_spool *spool;
	struct queue_message *m;
	struct error err;
	char files[1024], want[64];

	assert_int_equal(queue_spool_open(tmp->spool, &spool, &err), 0);
	assert_int_equal(queue_spool_begin(spool, &m, &err), 0);
	append_pattern(m, 100000, 1000);
	snprintf(want, sizeof(want), "tmp/%s.msg", queue_message_id(m));
	spool_files(tmp->spool, files, sizeof(files));
	assert_string_equal(files, want);
	queue_spool_abort(m);
	queue_spool_abort(NULL);
	spool_files(tmp->spool, files, sizeof(files));
	assert_string_equal(files, "");
	queue_spool_free(spool);
}

/* A commit that fails half-way leaves nothing in queue/ of its own, and
 * nothing in tmp/: an envelope that cannot be written, and a name in queue/
 * that is taken (the commit marker rename is refused). */
static void test_commit_failure_leaves_nothing(void **state)
{
	struct tmp *tmp = *state;
	struct queue_spool *spool;
	struct queue_message *m;
	struct queue_envelope env;
	struct error err;
	char files[1024], want[128], rel[64];

	assert_int_equal(queue_spool_open(tmp->spool, &spool, &err), 0);

	assert_int_equal(queue_spool_begin(spool, &m, &err), 0);
	append_pattern(m, 1000, 100);
	envelope_make(&env, "", 0); /* no recipients: cannot be written */
	assert_int_equal(queue_spool_commit(m, &env, &err), -1);
	assert_int_equal(err.kind, ERROR_TEMPORARY);
	queue_envelope_clear(&env);
	/* Committing again fails the same way; abort frees. */
	envelope_make(&env, "a@example.test", 1);
	assert_int_equal(queue_spool_commit(m, &env, &err), -1);
	assert_int_equal(err.kind, ERROR_TEMPORARY);
	queue_envelope_clear(&env);
	queue_spool_abort(m);
	spool_files(tmp->spool, files, sizeof(files));
	assert_string_equal(files, "");

	assert_int_equal(queue_spool_begin(spool, &m, &err), 0);
	snprintf(rel, sizeof(rel), "queue/%s.env", queue_message_id(m));
	write_file(tmp->spool, rel, "someone else's\n");
	envelope_make(&env, "a@example.test", 1);
	assert_int_equal(queue_spool_commit(m, &env, &err), -1);
	assert_int_equal(err.kind, ERROR_TEMPORARY);
	queue_envelope_clear(&env);
	queue_spool_abort(m);
	snprintf(want, sizeof(want), "%s", rel);
	spool_files(tmp->spool, files, sizeof(files));
	assert_string_equal(files, want); /* the foreign file untouched, ours gone */
	queue_spool_free(spool);
}

/* --- recovery from every crash point --------------------------------------- */

#define IDA "0000000000a00"
#define IDB "0000000000b00"
#define IDC "0000000000c00"

static const char good_env[] = "postgate-envelope 1\nreceived-at 1\nclient-address "
			       "192.0.2.1\nhelo h\nreverse-path a@b\nsmtputf8 no\nbody "
			       "7bit\nret none\nrcpt c@d\nrcpt e@f\nend\n";
static const char old_state[] = "postgate-state 1\nattempts 1\nnext-attempt 0\nrcpt 0 "
				"delivered\nrcpt 1 pending\nend\n";
static const char new_state[] = "postgate-state 1\nattempts 2\nnext-attempt 0\nrcpt 0 "
				"delivered\nrcpt 1 delivered\nend\n";

static const struct crash_case {
	const char *name;
	const char *files[8]; /* made before recovery; .env and .state get valid text */
	const char *want_reported;
	const char *want_files;
} crash_cases[] = {
	{ "receiving: tmp/ID.msg only", { "tmp/" IDA ".msg" }, "", "" },
	{ "commit, envelope written in tmp/", { "tmp/" IDA ".msg", "tmp/" IDA ".env" }, "", "" },
	{ "commit, message renamed, not the envelope",
	  { "queue/" IDA ".msg", "tmp/" IDA ".env" },
	  "",
	  "" },
	{ "commit, both renamed, queue/ not yet fsynced",
	  { "queue/" IDA ".msg", "queue/" IDA ".env" },
	  IDA ":queue",
	  "queue/" IDA ".env queue/" IDA ".msg" },
	{ "power loss kept the envelope rename only",
	  { "tmp/" IDA ".msg", "queue/" IDA ".env" },
	  "",
	  "" },
	{ "state save cut short: the old state stands",
	  { "queue/" IDA ".msg", "queue/" IDA ".env", "queue/" IDA ".state", "tmp/" IDA ".state" },
	  IDA ":queue",
	  "queue/" IDA ".env queue/" IDA ".msg queue/" IDA ".state" },
	{ "move to deferred/ cut after the message",
	  { "deferred/" IDA ".msg", "queue/" IDA ".env", "queue/" IDA ".state" },
	  IDA ":queue",
	  "queue/" IDA ".env queue/" IDA ".msg queue/" IDA ".state" },
	{ "move to deferred/ cut after the state",
	  { "deferred/" IDA ".msg", "deferred/" IDA ".state", "queue/" IDA ".env" },
	  IDA ":queue",
	  "queue/" IDA ".env queue/" IDA ".msg queue/" IDA ".state" },
	{ "move to deferred/ complete",
	  { "deferred/" IDA ".msg", "deferred/" IDA ".state", "deferred/" IDA ".env" },
	  IDA ":deferred",
	  "deferred/" IDA ".env deferred/" IDA ".msg deferred/" IDA ".state" },
	{ "move back to queue/ cut after the message",
	  { "queue/" IDA ".msg", "deferred/" IDA ".env" },
	  IDA ":deferred",
	  "deferred/" IDA ".env deferred/" IDA ".msg" },
	{ "finish cut after the envelope", { "queue/" IDA ".msg", "queue/" IDA ".state" }, "", "" },
	{ "finish cut after the message", { "deferred/" IDA ".state" }, "", "" },
	{ "damage: envelope without message",
	  { "queue/" IDA ".env", "queue/" IDA ".state" },
	  "",
	  "" },
	{ "damage: message in both places",
	  { "queue/" IDA ".msg", "queue/" IDA ".env", "deferred/" IDA ".msg" },
	  IDA ":queue",
	  "queue/" IDA ".env queue/" IDA ".msg" },
	{ "damage: envelope in both places: deferred/ left alone",
	  { "queue/" IDA ".msg", "queue/" IDA ".env", "deferred/" IDA ".msg",
	    "deferred/" IDA ".env" },
	  IDA ":queue",
	  "deferred/" IDA ".env deferred/" IDA ".msg queue/" IDA ".env queue/" IDA ".msg" },
	{ "a foreign name is left alone",
	  { "queue/README", "queue/" IDA ".msg.bak", "queue/" IDA ".msg", "queue/" IDA ".env" },
	  IDA ":queue",
	  "queue/" IDA ".env queue/" IDA ".msg queue/" IDA ".msg.bak queue/README" },
	{ "several messages, reported in ID order",
	  { "queue/" IDC ".msg", "queue/" IDC ".env", "deferred/" IDA ".msg",
	    "deferred/" IDA ".env", "tmp/" IDB ".msg", "queue/" IDB ".msg" },
	  IDA ":deferred " IDC ":queue",
	  "deferred/" IDA ".env deferred/" IDA ".msg queue/" IDC ".env queue/" IDC ".msg" },
};

static void test_recover_after_crash(void **state)
{
	struct tmp *tmp = *state;

	log_set_level(LOG_LEVEL_ERROR); /* the warnings are expected here */
	for (size_t i = 0; i < ARRAY_LEN(crash_cases); i++) {
		const struct crash_case *c = &crash_cases[i];
		struct queue_spool *spool;
		struct reported r = { 0 };
		struct error err;
		char files[1024], cmd[PATH_MAX + 16];

		print_message("case: %s\n", c->name);
		assert_int_equal(queue_spool_open(tmp->spool, &spool, &err), 0);
		for (size_t f = 0; f < ARRAY_LEN(c->files) && c->files[f] != NULL; f++) {
			const char *name = c->files[f];
			bool is_env = strstr(name, ".env") != NULL;
			bool is_state = strstr(name, ".state") != NULL;
			/* The state in tmp/ is the newer one being saved. */
			const char *text =
				is_env	   ? good_env
				: is_state ? (strncmp(name, "tmp/", 4) == 0 ? new_state : old_state)
					   : "Subject: x\r\n\r\nbody\r\n";

			write_file(tmp->spool, name, text);
		}
		assert_int_equal(queue_spool_recover(spool, record_id, &r, &err), 0);
		assert_string_equal(r.text, c->want_reported);
		assert_false(r.is_out_of_order);
		spool_files(tmp->spool, files, sizeof(files));
		assert_string_equal(files, c->want_files);
		if (strstr(c->name, "state save") != NULL) {
			struct queue_state s;

			assert_int_equal(queue_spool_state_load(spool, IDA, 2, &s, &err), 0);
			assert_int_equal(s.attempt_count, 1); /* old_state */
			queue_state_clear(&s);
		}
		queue_spool_free(spool);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp->spool);
		assert_int_equal(system(cmd), 0);
	}
	log_set_level(LOG_LEVEL_INFO);
}

/* list reports what recover would, and changes nothing. */
static void test_list_changes_nothing(void **state)
{
	struct tmp *tmp = *state;
	struct queue_spool *spool;
	struct reported r = { 0 };
	struct error err;
	char before[1024], after[1024];

	assert_int_equal(queue_spool_open(tmp->spool, &spool, &err), 0);
	write_file(tmp->spool, "tmp/" IDB ".msg", "x");
	write_file(tmp->spool, "queue/" IDA ".msg", "x");
	write_file(tmp->spool, "queue/" IDA ".env", good_env);
	write_file(tmp->spool, "queue/" IDB ".msg", "x");
	write_file(tmp->spool, "deferred/" IDC ".msg", "x");
	write_file(tmp->spool, "deferred/" IDC ".env", good_env);
	spool_files(tmp->spool, before, sizeof(before));
	assert_int_equal(queue_spool_list(spool, record_id, &r, &err), 0);
	assert_string_equal(r.text, IDA ":queue " IDC ":deferred");
	spool_files(tmp->spool, after, sizeof(after));
	assert_string_equal(before, after);
	queue_spool_free(spool);
}

/* --- delivery state, move, finish ----------------------------------------- */

static void commit_one(struct queue_spool *spool, size_t recipients, char id[QUEUE_ID_MAX + 1])
{
	struct queue_message *m;
	struct queue_envelope env;
	struct error err;

	assert_int_equal(queue_spool_begin(spool, &m, &err), 0);
	snprintf(id, QUEUE_ID_MAX + 1, "%s", queue_message_id(m));
	assert_int_equal(queue_message_append(m, "Subject: t\r\n\r\nhi\r\n", 18, &err), 0);
	envelope_make(&env, "a@example.test", recipients);
	assert_int_equal(queue_spool_commit(m, &env, &err), 0);
	queue_envelope_clear(&env);
}

static void test_state_move_finish(void **state)
{
	struct tmp *tmp = *state;
	struct queue_spool *spool;
	struct queue_state s, back;
	struct reported r = { 0 };
	enum queue_place place;
	struct error err;
	char id[QUEUE_ID_MAX + 1], files[1024], want[256];
	int fd;

	assert_int_equal(queue_spool_open(tmp->spool, &spool, &err), 0);
	commit_one(spool, 3, id);

	/* No ID.state yet: all pending. */
	assert_int_equal(queue_spool_state_load(spool, id, 3, &s, &err), 0);
	assert_int_equal(s.recipient_count, 3);
	assert_false(queue_state_is_done(&s));
	/* The envelope's count must match a saved state's. */
	s.attempt_count = 1;
	assert_int_equal(queue_state_set(&s, 0, QUEUE_RECIPIENT_DELIVERED, NULL, &err), 0);
	assert_int_equal(queue_spool_state_save(spool, id, &s, &err), 0);
	assert_int_equal(queue_spool_state_load(spool, id, 4, &back, &err), -1);
	assert_int_equal(err.kind, ERROR_DATA);
	queue_state_clear(&back);
	assert_int_equal(queue_spool_state_load(spool, id, 3, &back, &err), 0);
	assert_true(queue_state_equal(&s, &back));
	queue_state_clear(&back);

	/* Defer: the descriptor open before the move still reads the message. */
	assert_int_equal(queue_spool_message_open(spool, id, &fd, &err), 0);
	assert_int_equal(queue_spool_move(spool, id, QUEUE_PLACE_DEFERRED, &err), 0);
	assert_int_equal(queue_spool_move(spool, id, QUEUE_PLACE_DEFERRED, &err), 0);
	assert_int_equal(queue_spool_locate(spool, id, &place, &err), 0);
	assert_int_equal(place, QUEUE_PLACE_DEFERRED);
	{
		char buf[32];

		assert_int_equal(pread(fd, buf, sizeof(buf), 0), 18);
		close(fd);
	}
	snprintf(want, sizeof(want), "deferred/%s.env deferred/%s.msg deferred/%s.state", id, id,
		 id);
	spool_files(tmp->spool, files, sizeof(files));
	assert_string_equal(files, want);

	/* Saving a state where the message is now. */
	s.attempt_count = 2;
	s.next_attempt_at = 1712999999;
	assert_int_equal(queue_state_set(&s, 1, QUEUE_RECIPIENT_FAILED, "550 5.1.1 no", &err), 0);
	assert_int_equal(queue_spool_state_save(spool, id, &s, &err), 0);
	spool_files(tmp->spool, files, sizeof(files));
	assert_string_equal(files, want);

	/* A restart finds it deferred, with its state. */
	queue_spool_free(spool);
	assert_int_equal(queue_spool_open(tmp->spool, &spool, &err), 0);
	assert_int_equal(queue_spool_recover(spool, record_id, &r, &err), 0);
	snprintf(want, sizeof(want), "%s:deferred", id);
	assert_string_equal(r.text, want);
	assert_int_equal(queue_spool_state_load(spool, id, 3, &back, &err), 0);
	assert_true(queue_state_equal(&s, &back));
	queue_state_clear(&back);

	/* Back to queue/, last recipient done, finish. */
	assert_int_equal(queue_spool_move(spool, id, QUEUE_PLACE_ACTIVE, &err), 0);
	assert_int_equal(queue_state_set(&s, 2, QUEUE_RECIPIENT_DELIVERED, NULL, &err), 0);
	assert_int_equal(queue_spool_state_save(spool, id, &s, &err), 0);
	assert_true(queue_state_is_done(&s));
	assert_int_equal(queue_spool_finish(spool, id, &err), 0);
	spool_files(tmp->spool, files, sizeof(files));
	assert_string_equal(files, "");
	assert_int_equal(queue_spool_locate(spool, id, &place, &err), -1);
	assert_int_equal(err.kind, ERROR_NOT_FOUND);
	assert_int_equal(queue_spool_finish(spool, id, &err), -1);
	assert_int_equal(queue_spool_state_save(spool, id, &s, &err), -1);
	assert_int_equal(err.kind, ERROR_NOT_FOUND);
	queue_state_clear(&s);

	/* IDs are checked before they become names. */
	assert_int_equal(queue_spool_locate(spool, "../../etc/pas", &place, &err), -1);
	assert_int_equal(err.kind, ERROR_DATA);
	queue_spool_free(spool);
}

static void test_damaged_files_are_data_errors(void **state)
{
	struct tmp *tmp = *state;
	struct queue_spool *spool;
	struct queue_envelope env;
	struct queue_state s;
	struct error err;
	char id[QUEUE_ID_MAX + 1], rel[64];

	assert_int_equal(queue_spool_open(tmp->spool, &spool, &err), 0);
	commit_one(spool, 1, id);
	snprintf(rel, sizeof(rel), "queue/%s.state", id);
	write_file(tmp->spool, rel, "postgate-state 1\nattempts 1\n");
	assert_int_equal(queue_spool_state_load(spool, id, 1, &s, &err), -1);
	assert_int_equal(err.kind, ERROR_DATA);
	queue_state_clear(&s);
	snprintf(rel, sizeof(rel), "queue/%s.env", id);
	write_file(tmp->spool, rel, "postgate-envelope 1\nhelo x\n");
	assert_int_equal(queue_spool_envelope_load(spool, id, &env, &err), -1);
	assert_int_equal(err.kind, ERROR_DATA);
	queue_envelope_clear(&env);
	queue_spool_free(spool);
}

/* --- full disks -------------------------------------------------------------- */

/* Append far more than fits; the failure is ERROR_TEMPORARY at the append or
 * at the commit, and nothing is left behind. */
static void fill_and_check(const char *spool_dir)
{
	struct queue_spool *spool;
	struct queue_message *m;
	struct queue_envelope env;
	struct error err;
	char files[1024], piece[4096];
	bool has_failed = false;

	memset(piece, 'x', sizeof(piece));
	assert_int_equal(queue_spool_open(spool_dir, &spool, &err), 0);
	assert_int_equal(queue_spool_begin(spool, &m, &err), 0);
	for (size_t i = 0; i < 100 && !has_failed; i++) {
		if (queue_message_append(m, piece, sizeof(piece), &err) < 0) {
			assert_int_equal(err.kind, ERROR_TEMPORARY);
			has_failed = true;
		}
	}
	assert_true(has_failed);
	/* Later appends fail the same way; commit too. */
	err.kind = ERROR_NONE;
	assert_int_equal(queue_message_append(m, "y", 1, &err), -1);
	assert_int_equal(err.kind, ERROR_TEMPORARY);
	envelope_make(&env, "a@example.test", 1);
	assert_int_equal(queue_spool_commit(m, &env, &err), -1);
	assert_int_equal(err.kind, ERROR_TEMPORARY);
	queue_envelope_clear(&env);
	queue_spool_abort(m);
	spool_files(spool_dir, files, sizeof(files));
	assert_string_equal(files, "");
	queue_spool_free(spool);
}

/* A file size limit (EFBIG), which needs no privilege. */
static void test_file_size_limit_is_temporary(void **state)
{
	struct tmp *tmp = *state;
	struct rlimit old, limit;
	void (*old_handler)(int);

	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	limit = old;
	limit.rlim_cur = 100000;
	old_handler = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &limit), 0);
	fill_and_check(tmp->spool);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_handler);
}

/* A real full file system (ENOSPC): a 64 KiB tmpfs, when we may mount one. */
static void test_full_disk_is_temporary(void **state)
{
	struct tmp *tmp = *state;
	char mnt[PATH_MAX], spool_dir[PATH_MAX + 8];

	snprintf(mnt, sizeof(mnt), "%s/small", tmp->dir);
	assert_int_equal(mkdir(mnt, 0700), 0);
	if (geteuid() != 0 || mount("tmpfs", mnt, "tmpfs", 0, "size=64k") != 0) {
		print_message("skipped: cannot mount a tmpfs (%s)\n", strerror(errno));
		skip();
		return;
	}
	snprintf(spool_dir, sizeof(spool_dir), "%s/spool", mnt);
	fill_and_check(spool_dir);
	{
		/* The disk has room again once the partial message is gone. */
		struct queue_spool *spool;
		char id[QUEUE_ID_MAX + 1];
		struct error err;

		assert_int_equal(queue_spool_open(spool_dir, &spool, &err), 0);
		commit_one(spool, 1, id);
		assert_int_equal(queue_spool_finish(spool, id, &err), 0);
		queue_spool_free(spool);
	}
	assert_int_equal(umount(mnt), 0);
}

/* --- kill -9 between any two system calls ---------------------------------- */

/*
 * A child process runs `step` under ptrace and is killed with SIGKILL at its
 * n-th system-call stop (entry: the call never ran; exit: it ran), for every
 * n until it finishes on its own. After each kill the parent recovers the
 * spool and checks the invariant of the operation. This is kill -9 at every
 * point of the operation; power loss is argued in docs/spool.md.
 */
typedef void child_step_fn(const char *spool_dir, int report_fd);
typedef void after_kill_fn(const char *spool_dir, bool has_reported, const char *report);

/* -1 when the child finished before stop n, 0 when it was killed there, 1
 * when tracing is not allowed here. */
static int run_killed_at(const char *spool_dir, child_step_fn *step, unsigned n, char *report,
			 size_t report_cap, bool *has_reported)
{
	int pipe_fds[2], status;
	pid_t pid;
	ssize_t got;
	int rc = -1;

	assert_int_equal(pipe(pipe_fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pipe_fds[0]);
		if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
			_exit(3);
		raise(SIGSTOP);
		step(spool_dir, pipe_fds[1]);
		_exit(0); /* not exit(): no leak check, no atexit in the child */
	}
	close(pipe_fds[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 3) {
		close(pipe_fds[0]);
		return 1;
	}
	assert_true(WIFSTOPPED(status));
	ptrace(PTRACE_SETOPTIONS, pid, NULL,
	       (void *) (long) (PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL));
	for (unsigned stop = 0;; stop++) {
		if (stop == n) {
			kill(pid, SIGKILL);
			assert_int_equal(waitpid(pid, &status, 0), pid);
			rc = 0;
			break;
		}
		assert_int_equal(ptrace(PTRACE_SYSCALL, pid, NULL, NULL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
			rc = -1;
			break;
		}
	}
	got = read(pipe_fds[0], report, report_cap - 1);
	report[got > 0 ? got : 0] = '\0';
	*has_reported = got > 0;
	close(pipe_fds[0]);
	return rc;
}

static void kill_everywhere(struct tmp *tmp, const char *name, void (*setup)(const char *),
			    child_step_fn *step, after_kill_fn *check)
{
	char cmd[PATH_MAX + 16], report[256];
	unsigned n;

	log_set_level(LOG_LEVEL_ERROR);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp->spool);
	for (n = 0;; n++) {
		bool has_reported;
		int rc;

		assert_int_equal(system(cmd), 0);
		if (setup != NULL)
			setup(tmp->spool);
		rc = run_killed_at(tmp->spool, step, n, report, sizeof(report), &has_reported);
		if (rc == 1) {
			print_message("skipped: ptrace is not allowed here\n");
			log_set_level(LOG_LEVEL_INFO);
			skip();
			return;
		}
		check(tmp->spool, has_reported, report);
		if (rc < 0)
			break; /* ran to the end: every point was tried */
	}
	print_message("case: %s: killed at each of %u system-call stops\n", name, n);
	log_set_level(LOG_LEVEL_INFO);
	assert_true(n > 10);
}

#define KILLED_BODY_BYTES (3 * QUEUE_MESSAGE_BUFFER_BYTES + 5)

/* Receive and commit; report the ID once commit returned 0. */
static void child_commit(const char *spool_dir, int report_fd)
{
	struct queue_spool *spool;
	struct queue_message *m;
	struct queue_envelope env;
	struct error err;
	char piece[4096];

	if (queue_spool_open(spool_dir, &spool, &err) < 0 || queue_spool_begin(spool, &m, &err) < 0)
		_exit(1);
	for (size_t off = 0; off < KILLED_BODY_BYTES; off += sizeof(piece)) {
		size_t len = KILLED_BODY_BYTES - off < sizeof(piece) ? KILLED_BODY_BYTES - off
								     : sizeof(piece);

		memset(piece, 'a' + (int) (off / sizeof(piece)) % 26, len);
		if (queue_message_append(m, piece, len, &err) < 0)
			_exit(1);
	}
	envelope_make(&env, "a@example.test", 2);
	if (queue_spool_commit(m, &env, &err) < 0)
		_exit(1);
	if (write(report_fd, "committed", 9) != 9)
		_exit(1);
}

/* Whatever recovery reports is complete: the whole body, an envelope that
 * parses. Returns how many messages it reported. */
static size_t recover_and_check_complete(const char *spool_dir, char first_id[QUEUE_ID_MAX + 1])
{
	struct queue_spool *spool;
	struct reported r = { 0 };
	struct error err;
	char files[1024];

	assert_int_equal(queue_spool_open(spool_dir, &spool, &err), 0);
	assert_int_equal(queue_spool_recover(spool, record_id, &r, &err), 0);
	if (r.count == 1) {
		struct queue_envelope env;
		struct stat st;
		int fd;

		memcpy(first_id, r.text, QUEUE_ID_MAX);
		first_id[QUEUE_ID_MAX] = '\0';
		assert_int_equal(queue_spool_envelope_load(spool, first_id, &env, &err), 0);
		assert_int_equal(env.recipient_count, 2);
		queue_envelope_clear(&env);
		assert_int_equal(queue_spool_message_open(spool, first_id, &fd, &err), 0);
		assert_int_equal(fstat(fd, &st), 0);
		assert_int_equal(st.st_size, KILLED_BODY_BYTES);
		close(fd);
	} else {
		/* Nothing was accepted: nothing may be left over either. */
		assert_int_equal(r.count, 0);
		spool_files(spool_dir, files, sizeof(files));
		assert_string_equal(files, "");
	}
	queue_spool_free(spool);
	return r.count;
}

static void after_commit_killed(const char *spool_dir, bool has_reported, const char *report)
{
	char id[QUEUE_ID_MAX + 1];
	size_t count = recover_and_check_complete(spool_dir, id);

	/* Acknowledged means kept. */
	if (has_reported) {
		assert_string_equal(report, "committed");
		assert_int_equal(count, 1);
	}
}

/* A message with two recipients, the first already delivered. */
static void setup_half_delivered(const char *spool_dir)
{
	struct queue_spool *spool;
	struct queue_message *m;
	struct queue_envelope env;
	struct queue_state s;
	struct error err;
	char piece[4096];

	memset(piece, 'b', sizeof(piece));
	assert_int_equal(queue_spool_open(spool_dir, &spool, &err), 0);
	assert_int_equal(queue_spool_begin(spool, &m, &err), 0);
	for (size_t off = 0; off < KILLED_BODY_BYTES; off += sizeof(piece))
		assert_int_equal(queue_message_append(m, piece,
						      KILLED_BODY_BYTES - off < sizeof(piece)
							      ? KILLED_BODY_BYTES - off
							      : sizeof(piece),
						      &err),
				 0);
	envelope_make(&env, "a@example.test", 2);
	assert_int_equal(queue_spool_commit(m, &env, &err), 0);
	queue_envelope_clear(&env);
	{
		struct reported r = { 0 };
		char id[QUEUE_ID_MAX + 1];

		assert_int_equal(queue_spool_list(spool, record_id, &r, &err), 0);
		memcpy(id, r.text, QUEUE_ID_MAX);
		id[QUEUE_ID_MAX] = '\0';
		assert_int_equal(queue_state_init(&s, 2, &err), 0);
		s.attempt_count = 1;
		assert_int_equal(queue_state_set(&s, 0, QUEUE_RECIPIENT_DELIVERED, NULL, &err), 0);
		assert_int_equal(queue_spool_state_save(spool, id, &s, &err), 0);
		queue_state_clear(&s);
	}
	queue_spool_free(spool);
}

static void child_for_each_id(const char *spool_dir, queue_id_fn *fn, void *ctx)
{
	struct queue_spool *spool;
	struct error err;

	if (queue_spool_open(spool_dir, &spool, &err) < 0 ||
	    queue_spool_list(spool, fn, ctx, &err) < 0)
		_exit(1);
	queue_spool_free(spool);
}

static void finish_one(void *ctx, const char *id, enum queue_place place)
{
	int report_fd = *(int *) ctx;
	struct queue_spool *spool;
	struct queue_state s;
	struct error err;

	(void) place;
	/* The spool of the walk is still open; a second handle is fine. */
	if (queue_spool_open(".", &spool, &err) < 0 ||
	    queue_spool_state_load(spool, id, 2, &s, &err) < 0 ||
	    queue_state_set(&s, 1, QUEUE_RECIPIENT_DELIVERED, NULL, &err) < 0 ||
	    queue_spool_state_save(spool, id, &s, &err) < 0 ||
	    queue_spool_finish(spool, id, &err) < 0)
		_exit(1);
	queue_state_clear(&s);
	queue_spool_free(spool);
	if (write(report_fd, "finished", 8) != 8)
		_exit(1);
}

/* Record the second recipient's delivery, then finish. */
static void child_finish(const char *spool_dir, int report_fd)
{
	if (chdir(spool_dir) != 0)
		_exit(1);
	child_for_each_id(".", finish_one, &report_fd);
}

/* Never delivered twice: the message is gone, or back with a state that
 * still says recipient 0 was delivered. Never lost before it finished. */
static void after_finish_killed(const char *spool_dir, bool has_reported, const char *report)
{
	char id[QUEUE_ID_MAX + 1];
	size_t count = recover_and_check_complete(spool_dir, id);

	if (has_reported) {
		assert_string_equal(report, "finished");
		assert_int_equal(count, 0);
	}
	if (count == 1) {
		struct queue_spool *spool;
		struct queue_state s;
		struct error err;

		assert_int_equal(queue_spool_open(spool_dir, &spool, &err), 0);
		assert_int_equal(queue_spool_state_load(spool, id, 2, &s, &err), 0);
		assert_int_equal(s.recipients[0].status, QUEUE_RECIPIENT_DELIVERED);
		queue_state_clear(&s);
		queue_spool_free(spool);
	}
}

static void move_one(void *ctx, const char *id, enum queue_place place)
{
	int report_fd = *(int *) ctx;
	struct queue_spool *spool;
	struct error err;

	(void) place;
	if (queue_spool_open(".", &spool, &err) < 0 ||
	    queue_spool_move(spool, id, QUEUE_PLACE_DEFERRED, &err) < 0)
		_exit(1);
	if (write(report_fd, "deferred", 8) != 8)
		_exit(1);
	if (queue_spool_move(spool, id, QUEUE_PLACE_ACTIVE, &err) < 0)
		_exit(1);
	queue_spool_free(spool);
}

/* Defer, then bring back. */
static void child_move(const char *spool_dir, int report_fd)
{
	if (chdir(spool_dir) != 0)
		_exit(1);
	child_for_each_id(".", move_one, &report_fd);
}

/* A move never loses the message or its state. */
static void after_move_killed(const char *spool_dir, bool has_reported, const char *report)
{
	char id[QUEUE_ID_MAX + 1];
	struct queue_spool *spool;
	struct queue_state s;
	struct error err;

	(void) has_reported;
	(void) report;
	assert_int_equal(recover_and_check_complete(spool_dir, id), 1);
	assert_int_equal(queue_spool_open(spool_dir, &spool, &err), 0);
	assert_int_equal(queue_spool_state_load(spool, id, 2, &s, &err), 0);
	assert_int_equal(s.recipients[0].status, QUEUE_RECIPIENT_DELIVERED);
	queue_state_clear(&s);
	queue_spool_free(spool);
}

static void test_kill_at_every_step(void **state)
{
	struct tmp *tmp = *state;

	kill_everywhere(tmp, "commit", NULL, child_commit, after_commit_killed);
	kill_everywhere(tmp, "state save and finish", setup_half_delivered, child_finish,
			after_finish_killed);
	kill_everywhere(tmp, "move to deferred/ and back", setup_half_delivered, child_move,
			after_move_killed);
}

/* --- the order of the durable steps ---------------------------------------- */

/* The ID of the one message in the spool. */
static void only_id(const char *spool_dir, char id[QUEUE_ID_MAX + 1])
{
	struct queue_spool *spool;
	struct reported r = { 0 };
	struct error err;

	assert_int_equal(queue_spool_open(spool_dir, &spool, &err), 0);
	assert_int_equal(queue_spool_list(spool, record_id, &r, &err), 0);
	assert_int_equal(r.count, 1);
	memcpy(id, r.text, QUEUE_ID_MAX);
	id[QUEUE_ID_MAX] = '\0';
	queue_spool_free(spool);
}

static void traced_commit(void *ctx, int report_fd)
{
	const char *spool_dir = ctx;
	struct queue_spool *spool;
	struct queue_message *m;
	struct queue_envelope env;
	struct error err;
	char id[QUEUE_ID_MAX + 1];

	if (queue_spool_open(spool_dir, &spool, &err) < 0 || queue_spool_begin(spool, &m, &err) < 0)
		_exit(1);
	snprintf(id, sizeof(id), "%s", queue_message_id(m));
	envelope_make(&env, "a@example.test", 1);
	if (queue_message_append(m, "Subject: x\r\n\r\n", 14, &err) < 0 ||
	    queue_spool_commit(m, &env, &err) < 0)
		_exit(1);
	if (write(report_fd, id, strlen(id)) < 0)
		_exit(1);
}

static void traced_finish(void *ctx, int report_fd)
{
	struct queue_spool *spool;
	struct queue_state s;
	struct error err;
	const char *spool_dir = ((const char **) ctx)[0], *id = ((const char **) ctx)[1];

	if (queue_spool_open(spool_dir, &spool, &err) < 0 ||
	    queue_spool_state_load(spool, id, 2, &s, &err) < 0 ||
	    queue_state_set(&s, 1, QUEUE_RECIPIENT_DELIVERED, NULL, &err) < 0 ||
	    queue_spool_state_save(spool, id, &s, &err) < 0)
		_exit(1);
	if (write(report_fd, "saved", 5) < 0 || queue_spool_finish(spool, id, &err) < 0)
		_exit(1);
}

static void traced_move(void *ctx, int report_fd)
{
	struct queue_spool *spool;
	struct error err;
	const char *spool_dir = ((const char **) ctx)[0], *id = ((const char **) ctx)[1];

	if (queue_spool_open(spool_dir, &spool, &err) < 0 ||
	    queue_spool_move(spool, id, QUEUE_PLACE_DEFERRED, &err) < 0)
		_exit(1);
	if (write(report_fd, "deferred", 8) < 0 ||
	    queue_spool_move(spool, id, QUEUE_PLACE_ACTIVE, &err) < 0)
		_exit(1);
}

static void check_trace(struct syscall_trace *t, const char *id, const char *want)
{
	print_message("trace:\n%s", t->text);
	syscall_trace_replace(t->text, id, "ID");
	assert_string_equal(t->text, want);
}

/* What a power loss keeps depends on the order of fsyncs and renames, which
 * kill -9 cannot show: check each operation makes exactly the calls, in
 * exactly the order, that docs/spool.md argues from. */
static void test_durable_step_order(void **state)
{
	struct tmp *tmp = *state;
	struct syscall_trace t = { .root = tmp->dir };
	char id[QUEUE_ID_MAX + 1], cmd[PATH_MAX + 16];
	const char *args[2] = { tmp->spool, id };
	int rc = syscall_trace_run(&t, traced_commit, tmp->spool);

	if (rc == 1) {
		print_message("skipped: no ptrace on this system\n");
		skip();
		return;
	}
	assert_int_equal(rc, 0);
	snprintf(id, sizeof(id), "%s", t.report);
	check_trace(&t, id,
		    "mkdir spool\n"
		    "fsync .\n" /* the spool's own name */
		    "mkdir spool/tmp\n"
		    "mkdir spool/queue\n"
		    "mkdir spool/deferred\n"
		    "mkdir spool/hold\n"
		    "fsync spool\n"
		    "create spool/tmp/ID.msg\n"
		    "create spool/tmp/ID.env\n"
		    /* Both files' data, in one sync shared with other commits. */
		    "syncfs spool\n"
		    "rename spool/tmp/ID.msg spool/queue/ID.msg\n"
		    "rename spool/tmp/ID.env spool/queue/ID.env\n"
		    /* Both names. */
		    "syncfs spool\n"
		    "report\n");

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp->spool);
	assert_int_equal(system(cmd), 0);
	setup_half_delivered(tmp->spool);
	only_id(tmp->spool, id);
	assert_int_equal(syscall_trace_run(&t, traced_move, args), 0);
	check_trace(&t, id,
		    "rename spool/queue/ID.msg spool/deferred/ID.msg\n"
		    "rename spool/queue/ID.state spool/deferred/ID.state\n"
		    "rename spool/queue/ID.env spool/deferred/ID.env\n"
		    "syncfs spool\n" /* both directories */
		    "report\n"
		    "rename spool/deferred/ID.msg spool/queue/ID.msg\n"
		    "rename spool/deferred/ID.state spool/queue/ID.state\n"
		    "rename spool/deferred/ID.env spool/queue/ID.env\n"
		    "syncfs spool\n");

	assert_int_equal(syscall_trace_run(&t, traced_finish, args), 0);
	check_trace(&t, id,
		    "create spool/tmp/ID.state\n"
		    "syncfs spool\n" /* the new state's bytes */
		    "rename spool/tmp/ID.state spool/queue/ID.state\n"
		    "syncfs spool\n" /* its name */
		    "report\n"
		    "unlink spool/queue/ID.env\n"
		    "syncfs spool\n" /* the envelope is gone before the state goes */
		    "unlink spool/queue/ID.msg\n"
		    "unlink spool/queue/ID.state\n");
}

/* --- threads --------------------------------------------------------------- */

#define COMMIT_THREADS	   8
#define COMMITS_PER_THREAD 40

struct committer {
	struct queue_spool *spool;
	int failures;
};

static void *commit_many(void *arg)
{
	struct committer *c = arg;

	for (int i = 0; i < COMMITS_PER_THREAD; i++) {
		struct queue_message *m;
		struct queue_envelope env;
		struct error err;
		char line[64];
		int n;

		if (queue_spool_begin(c->spool, &m, &err) < 0) {
			c->failures++;
			continue;
		}
		n = snprintf(line, sizeof(line), "X-Index: %d\r\n", i);
		envelope_make(&env, "a@example.test", 1);
		if (queue_message_append(m, line, (size_t) n, &err) < 0 ||
		    queue_spool_commit(m, &env, &err) < 0) {
			c->failures++;
			queue_spool_abort(m);
		}
		queue_envelope_clear(&env);
	}
	return NULL;
}

static void test_concurrent_commits(void **state)
{
	struct tmp *tmp = *state;
	struct queue_spool *spool;
	struct committer committers[COMMIT_THREADS];
	pthread_t threads[COMMIT_THREADS];
	struct reported r = { 0 };
	struct error err;

	assert_int_equal(queue_spool_open(tmp->spool, &spool, &err), 0);
	for (int t = 0; t < COMMIT_THREADS; t++) {
		committers[t] = (struct committer){ spool, 0 };
		assert_int_equal(pthread_create(&threads[t], NULL, commit_many, &committers[t]), 0);
	}
	for (int t = 0; t < COMMIT_THREADS; t++) {
		pthread_join(threads[t], NULL);
		assert_int_equal(committers[t].failures, 0);
	}
	assert_int_equal(queue_spool_recover(spool, record_id, &r, &err), 0);
	assert_int_equal(r.count, COMMIT_THREADS * COMMITS_PER_THREAD);
	assert_false(r.is_out_of_order);
	queue_spool_free(spool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_id_shape),
		cmocka_unit_test(test_id_sorts_by_time),
		cmocka_unit_test(test_id_unique_across_threads),
		cmocka_unit_test_setup_teardown(test_open_makes_dirs, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_commit_then_recover, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_begin_abort_leaves_nothing, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_commit_failure_leaves_nothing, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_recover_after_crash, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_list_changes_nothing, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_state_move_finish, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_damaged_files_are_data_errors, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_file_size_limit_is_temporary, limit_setup,
						limit_teardown),
		cmocka_unit_test_setup_teardown(test_full_disk_is_temporary, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_kill_at_every_step, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_durable_step_order, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_commits, tmp_setup, tmp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
