/* Tests for src/mailbox/maildir.c in temporary directories: directories made
 * with 0700, the file is prefix + message byte for byte, the name follows the
 * Maildir spec with S= the size, find sees earlier copies, nothing is ever
 * replaced, a full disk is a temporary failure that leaves nothing behind,
 * and the calls that make a delivery durable come in the right order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/span.h"
#include "mailbox/maildir.h"
#include "scratch.h"
#include "syscall_trace.h"

struct tmp {
	char dir[PATH_MAX];
	char maildir[PATH_MAX]; /* dir/mail/example.test/alice: parents missing */
	char message[PATH_MAX]; /* dir/message: the spooled message file */
};

static int tmp_setup(void **state)
{
	struct tmp *tmp = calloc(1, sizeof(*tmp));

	if (tmp == NULL || scratch_dir_make("mailbox_maildir_test", tmp->dir) < 0) {
		free(tmp);
		return -1;
	}
	snprintf(tmp->maildir, sizeof(tmp->maildir), "%s/mail/example.test/alice", tmp->dir);
	snprintf(tmp->message, sizeof(tmp->message), "%s/message", tmp->dir);
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

static const char prefix[] = "Return-Path: <bob@example.test>\r\nDelivered-To: "
			     "alice@example.test\r\n";

/* A message file of `size` bytes with a pattern no offset mistake survives;
 * returns a descriptor read-only, as the queue opens it. */
static int message_make(const struct tmp *tmp, size_t size)
{
	FILE *f = fopen(tmp->message, "w");
	int fd;

	assert_non_null(f);
	for (size_t i = 0; i < size; i++)
		fputc((int) ((i * 31 + i / 251) & 0xff), f);
	assert_int_equal(fclose(f), 0);
	fd = open(tmp->message, O_RDONLY);
	assert_true(fd >= 0);
	return fd;
}

static void check_delivered(const struct tmp *tmp, const char *sub, const char *name,
			    size_t prefix_len, size_t size)
{
	char path[PATH_MAX * 2];
	struct stat st;
	uint64_t named_size;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", tmp->maildir, sub, name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal((size_t) st.st_size, prefix_len + size);
	assert_true(mailbox_maildir_name_size(name, &named_size));
	assert_int_equal(named_size, (uint64_t) st.st_size);
	f = fopen(path, "r");
	assert_non_null(f);
	for (size_t i = 0; i < prefix_len; i++)
		assert_int_equal(fgetc(f), (unsigned char) prefix[i]);
	for (size_t i = 0; i < size; i++)
		assert_int_equal(fgetc(f), (int) ((i * 31 + i / 251) & 0xff));
	assert_int_equal(fgetc(f), EOF);
	fclose(f);
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static size_t count_in(const struct tmp *tmp, const char *sub)
{
	char path[PATH_MAX * 2];

	snprintf(path, sizeof(path), "%s/%s", tmp->maildir, sub);
	return count_entries(path);
}

/* "<seconds>.M<microseconds>P<pid>Q<counter>_<hint>.<host>,S=<size>" */
static void check_name_shape(const char *name, const char *hint)
{
	char want_tail[128];
	const char *p = name;
	char host[256];

	assert_true(*p >= '0' && *p <= '9');
	while (*p >= '0' && *p <= '9')
		p++;
	assert_true(p[0] == '.' && p[1] == 'M');
	p += 2;
	while (*p >= '0' && *p <= '9')
		p++;
	assert_int_equal(*p, 'P');
	p++;
	assert_int_equal(strtol(p, (char **) &p, 10), (long) getpid());
	assert_int_equal(*p, 'Q');
	p++;
	while (*p >= '0' && *p <= '9')
		p++;
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	snprintf(want_tail, sizeof(want_tail), "_%s.%s,S=", hint, host);
	assert_memory_equal(p, want_tail, strlen(want_tail));
}

static const struct deliver_case {
	const char *name;
	bool has_prefix;
	size_t size;
} deliver_cases[] = {
	{ "small message", true, 100 },
	{ "empty message", true, 0 },
	{ "no prefix", false, 5000 },
	{ "exactly one piece", true, MAILBOX_MAILDIR_COPY_BYTES },
	{ "many pieces and a bit", true, 4 * MAILBOX_MAILDIR_COPY_BYTES + 3 },
};

static void test_deliver(void **state)
{
	struct tmp *tmp = *state;

	for (size_t i = 0; i < ARRAY_LEN(deliver_cases); i++) {
		const struct deliver_case *c = &deliver_cases[i];
		char name[MAILBOX_MAILDIR_NAME_MAX + 1], hint[32];
		size_t prefix_len = c->has_prefix ? sizeof(prefix) - 1 : 0;
		struct error err;
		int fd = message_make(tmp, c->size);

		print_message("case: %s\n", c->name);
		snprintf(hint, sizeof(hint), "0000000000a00-%zu", i);
		/* The descriptor's own offset is neither used nor moved. */
		assert_int_equal(lseek(fd, 7, SEEK_SET), 7);
		if (mailbox_maildir_deliver(tmp->maildir, prefix, prefix_len, fd, hint, name,
					    sizeof(name), &err) != 0)
			fail_msg("deliver: %s", err.message);
		assert_int_equal(lseek(fd, 0, SEEK_CUR), 7);
		close(fd);
		check_name_shape(name, hint);
		check_delivered(tmp, "new", name, prefix_len, c->size);
		assert_int_equal(count_in(tmp, "tmp"), 0);
		assert_int_equal(count_in(tmp, "new"), i + 1);
	}
}

/* The Maildir, its missing parents and tmp/ new/ cur/ are all 0700. */
static void test_deliver_makes_dirs(void **state)
{
	static const char *const made[] = { "/mail",
					    "/mail/example.test",
					    "/mail/example.test/alice",
					    "/mail/example.test/alice/tmp",
					    "/mail/example.test/alice/new",
					    "/mail/example.test/alice/cur" };
	struct tmp *tmp = *state;
	char name[MAILBOX_MAILDIR_NAME_MAX + 1];
	struct error err;
	mode_t old = umask(0);
	int fd = message_make(tmp, 10);

	assert_int_equal(mailbox_maildir_deliver(tmp->maildir, prefix, sizeof(prefix) - 1, fd,
						 "h-0", name, sizeof(name), &err),
			 0);
	umask(old);
	close(fd);
	for (size_t i = 0; i < ARRAY_LEN(made); i++) {
		char path[PATH_MAX * 2];
		struct stat st;

		snprintf(path, sizeof(path), "%s%s", tmp->dir, made[i]);
		print_message("dir: %s\n", made[i]);
		assert_int_equal(stat(path, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 07777, 0700);
	}
}

/* A name that exists in new/ is never replaced. */
static void test_store_refuses_overwrite(void **state)
{
	struct tmp *tmp = *state;
	static const char name[] = "1712345678.M1P1Q1_x-0.host,S=10";
	struct error err;
	int fd = message_make(tmp, 10), other;

	assert_int_equal(mailbox_maildir_store(tmp->maildir, name, "", 0, fd, &err), 0);
	other = message_make(tmp, 20);
	assert_int_equal(
		mailbox_maildir_store(tmp->maildir, name, prefix, sizeof(prefix) - 1, other, &err),
		-1);
	assert_int_equal(err.kind, ERROR_EXISTS);
	check_delivered(tmp, "new", name, 0, 10);
	assert_int_equal(count_in(tmp, "tmp"), 0);
	assert_int_equal(count_in(tmp, "new"), 1);
	close(fd);
	close(other);
}

static const struct bad_name_case {
	const char *name;
	const char *hint; /* for deliver */
	const char *file; /* for store */
} bad_name_cases[] = {
	{ "empty hint", "", NULL },
	{ "hint with '_'", "a_b", NULL },
	{ "hint with '.'", "a.b", NULL },
	{ "hint with '/'", "../x", NULL },
	{ "hint with ':'", "a:2,S", NULL },
	{ "hint with ','", "a,S=1", NULL },
	{ "hint one past the limit",
	  "12345678901234567890123456789012345678901234567890123456789012345", NULL },
	{ "file name with '/'", NULL, "../x" },
	{ "file name with a leading dot", NULL, ".hidden" },
	{ "empty file name", NULL, "" },
};

static void test_bad_names_refused(void **state)
{
	struct tmp *tmp = *state;
	int fd = message_make(tmp, 10);
	char name[MAILBOX_MAILDIR_NAME_MAX + 1];

	for (size_t i = 0; i < ARRAY_LEN(bad_name_cases); i++) {
		const struct bad_name_case *c = &bad_name_cases[i];
		struct error err = { 0 };
		bool found;

		print_message("case: %s\n", c->name);
		if (c->hint != NULL) {
			assert_int_equal(mailbox_maildir_deliver(tmp->maildir, "", 0, fd, c->hint,
								 name, sizeof(name), &err),
					 -1);
			assert_int_equal(err.kind, ERROR_DATA);
			assert_int_equal(mailbox_maildir_find(tmp->maildir, c->hint, &found, &err),
					 -1);
		} else {
			assert_int_equal(
				mailbox_maildir_store(tmp->maildir, c->file, "", 0, fd, &err), -1);
		}
		assert_int_equal(err.kind, ERROR_DATA);
	}
	/* The longest hint is fine. */
	assert_int_equal(mailbox_maildir_deliver(
				 tmp->maildir, "", 0, fd,
				 "1234567890123456789012345678901234567890123456789012345678901234",
				 name, sizeof(name), &(struct error){ 0 }),
			 0);
	{
		/* A name_out too small is refused before anything is written. */
		struct error err;
		char small[16];

		assert_int_equal(mailbox_maildir_deliver(tmp->maildir, "", 0, fd, "h-1", small,
							 sizeof(small), &err),
				 -1);
		assert_int_equal(count_in(tmp, "new"), 1);
	}
	close(fd);
}

/* find sees a delivery in new/ and, flagged by a reader, in cur/; never
 * another hint that merely starts the same. */
static void test_find(void **state)
{
	struct tmp *tmp = *state;
	char name[MAILBOX_MAILDIR_NAME_MAX + 1], from[PATH_MAX * 2], to[PATH_MAX * 2];
	struct error err;
	bool found = true;
	int fd = message_make(tmp, 10);

	assert_int_equal(mailbox_maildir_find(tmp->maildir, "0000000000a00-12", &found, &err), 0);
	assert_false(found); /* no Maildir yet */
	assert_int_equal(mailbox_maildir_deliver(tmp->maildir, prefix, sizeof(prefix) - 1, fd,
						 "0000000000a00-12", name, sizeof(name), &err),
			 0);
	close(fd);
	assert_int_equal(mailbox_maildir_find(tmp->maildir, "0000000000a00-12", &found, &err), 0);
	assert_true(found);
	assert_int_equal(mailbox_maildir_find(tmp->maildir, "0000000000a00-1", &found, &err), 0);
	assert_false(found);
	assert_int_equal(mailbox_maildir_find(tmp->maildir, "000000000a00-12", &found, &err), 0);
	assert_false(found);
	/* A reader moved it to cur/ and set flags. */
	snprintf(from, sizeof(from), "%s/new/%s", tmp->maildir, name);
	snprintf(to, sizeof(to), "%s/cur/%s:2,S", tmp->maildir, name);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(mailbox_maildir_find(tmp->maildir, "0000000000a00-12", &found, &err), 0);
	assert_true(found);
}

static const struct size_case {
	const char *name;
	const char *file_name;
	bool is_ok;
	uint64_t size;
} size_cases[] = {
	{ "ours", "1.M2P3Q4_h-0.host,S=1234", true, 1234 },
	{ "with flags", "1.M2P3Q4_h-0.host,S=1234:2,RS", true, 1234 },
	{ "Dovecot's W= after", "1.M2P3Q4.host,S=99,W=101:2,", true, 99 },
	{ "zero", "1.M2P3Q4.host,S=0", true, 0 },
	{ "no size", "1.M2P3Q4.host:2,S", false, 0 },
	{ "empty size", "1.M2P3Q4.host,S=:2,", false, 0 },
	{ "not a number", "1.M2P3Q4.host,S=12x", false, 0 },
	{ "overflows", "1.host,S=18446744073709551616", false, 0 },
};

static void test_name_size(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(size_cases); i++) {
		const struct size_case *c = &size_cases[i];
		uint64_t size = 0;

		print_message("case: %s\n", c->name);
		assert_int_equal(mailbox_maildir_name_size(c->file_name, &size), c->is_ok);
		if (c->is_ok)
			assert_int_equal(size, c->size);
	}
}

/* A pipe is no message file. */
static void test_message_must_be_a_file(void **state)
{
	struct tmp *tmp = *state;
	char name[MAILBOX_MAILDIR_NAME_MAX + 1];
	struct error err;
	int fds[2];

	assert_int_equal(pipe(fds), 0);
	assert_int_equal(mailbox_maildir_deliver(tmp->maildir, "", 0, fds[0], "h-0", name,
						 sizeof(name), &err),
			 -1);
	assert_int_equal(err.kind, ERROR_DATA);
	close(fds[0]);
	close(fds[1]);
}

/* Too big for what is left: ERROR_TEMPORARY, and no partial file anywhere. */
static void deliver_too_much(const struct tmp *tmp, const char *maildir)
{
	char name[MAILBOX_MAILDIR_NAME_MAX + 1], path[PATH_MAX * 2];
	struct error err;
	int fd = message_make(tmp, 300000);

	assert_int_equal(mailbox_maildir_deliver(maildir, prefix, sizeof(prefix) - 1, fd, "h-0",
						 name, sizeof(name), &err),
			 -1);
	close(fd);
	assert_int_equal(err.kind, ERROR_TEMPORARY);
	snprintf(path, sizeof(path), "%s/tmp", maildir);
	assert_int_equal(count_entries(path), 0);
	snprintf(path, sizeof(path), "%s/new", maildir);
	assert_int_equal(count_entries(path), 0);
}

static void test_file_size_limit_is_temporary(void **state)
{
	struct tmp *tmp = *state;
	struct rlimit old, limit;
	void (*old_handler)(int);
	int fd = message_make(tmp, 300000);

	close(fd); /* made before the limit */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	limit = old;
	limit.rlim_cur = 100000;
	old_handler = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &limit), 0);
	{
		char name[MAILBOX_MAILDIR_NAME_MAX + 1];
		struct error err;

		fd = open(tmp->message, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(mailbox_maildir_deliver(tmp->maildir, prefix, sizeof(prefix) - 1,
							 fd, "h-0", name, sizeof(name), &err),
				 -1);
		close(fd);
		assert_int_equal(err.kind, ERROR_TEMPORARY);
	}
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_handler);
	assert_int_equal(count_in(tmp, "tmp"), 0);
	assert_int_equal(count_in(tmp, "new"), 0);
}

static void test_full_disk_is_temporary(void **state)
{
	struct tmp *tmp = *state;
	char mnt[PATH_MAX], maildir[PATH_MAX + 16];

	snprintf(mnt, sizeof(mnt), "%s/small", tmp->dir);
	assert_int_equal(mkdir(mnt, 0700), 0);
	if (geteuid() != 0 || mount("tmpfs", mnt, "tmpfs", 0, "size=64k") != 0) {
		print_message("skipped: cannot mount a tmpfs (%s)\n", strerror(errno));
		skip();
		return;
	}
	snprintf(maildir, sizeof(maildir), "%s/alice", mnt);
	deliver_too_much(tmp, maildir);
	assert_int_equal(umount(mnt), 0);
}

static void traced_deliver(void *ctx, int report_fd)
{
	const struct tmp *tmp = ctx;
	char name[MAILBOX_MAILDIR_NAME_MAX + 1];
	struct error err;
	int fd = open(tmp->message, O_RDONLY);

	if (fd < 0 || mailbox_maildir_deliver(tmp->maildir, prefix, sizeof(prefix) - 1, fd,
					      "0000000000a00-0", name, sizeof(name), &err) < 0)
		_exit(1);
	if (write(report_fd, name, strlen(name)) < 0)
		_exit(1);
}

/* The order the queue's "delivered" relies on: every directory made is
 * fsynced in its parent, the file is fsynced before its rename into new/,
 * new/ is fsynced before deliver returns. */
static void test_durable_step_order(void **state)
{
	struct tmp *tmp = *state;
	struct syscall_trace t = { .root = tmp->dir };
	int fd = message_make(tmp, 1000), rc;

	close(fd);
	rc = syscall_trace_run(&t, traced_deliver, tmp);
	if (rc == 1) {
		print_message("skipped: no ptrace on this system\n");
		skip();
		return;
	}
	assert_int_equal(rc, 0);
	print_message("trace:\n%s", t.text);
	syscall_trace_replace(t.text, t.report, "NAME");
	assert_string_equal(t.text, "mkdir mail\n"
				    "fsync .\n"
				    "mkdir mail/example.test\n"
				    "fsync mail\n"
				    "mkdir mail/example.test/alice\n"
				    "fsync mail/example.test\n"
				    "mkdir mail/example.test/alice/tmp\n"
				    "mkdir mail/example.test/alice/new\n"
				    "mkdir mail/example.test/alice/cur\n"
				    "fsync mail/example.test/alice\n"
				    "create mail/example.test/alice/tmp/NAME\n"
				    "fsync mail/example.test/alice/tmp/NAME\n"
				    "rename mail/example.test/alice/tmp/NAME "
				    "mail/example.test/alice/new/NAME\n"
				    "fsync mail/example.test/alice/new\n"
				    "report\n");
	/* The second delivery into the same Maildir makes no directory. */
	assert_int_equal(syscall_trace_run(&t, traced_deliver, tmp), 0);
	syscall_trace_replace(t.text, t.report, "NAME");
	assert_string_equal(t.text, "create mail/example.test/alice/tmp/NAME\n"
				    "fsync mail/example.test/alice/tmp/NAME\n"
				    "rename mail/example.test/alice/tmp/NAME "
				    "mail/example.test/alice/new/NAME\n"
				    "fsync mail/example.test/alice/new\n"
				    "report\n");
}

/* '/' and ':' in the host name are written \057 and \072 (in a UTS
 * namespace of our own, when we may make one). */
static void test_hostname_encoded(void **state)
{
	struct tmp *tmp = *state;
	int pipe_fds[2], status;
	char name[MAILBOX_MAILDIR_NAME_MAX + 1];
	ssize_t n;
	pid_t pid;
	int fd = message_make(tmp, 10);

	close(fd);
	assert_int_equal(pipe(pipe_fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct error err;

		close(pipe_fds[0]);
		if (unshare(CLONE_NEWUTS) != 0 || sethostname("mx/1:a.example", 14) != 0)
			_exit(3);
		fd = open(tmp->message, O_RDONLY);
		if (fd < 0 || mailbox_maildir_deliver(tmp->maildir, "", 0, fd, "h-0", name,
						      sizeof(name), &err) < 0)
			_exit(1);
		if (write(pipe_fds[1], name, strlen(name)) < 0)
			_exit(1);
		_exit(0);
	}
	close(pipe_fds[1]);
	n = read(pipe_fds[0], name, sizeof(name) - 1);
	close(pipe_fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 3) {
		print_message("skipped: cannot set a host name here\n");
		skip();
		return;
	}
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(n > 0);
	name[n] = '\0';
	print_message("name: %s\n", name);
	assert_non_null(strstr(name, "_h-0.mx\\0571\\072a.example,S=10"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_deliver, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_deliver_makes_dirs, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_store_refuses_overwrite, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_bad_names_refused, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_find, tmp_setup, tmp_teardown),
		cmocka_unit_test(test_name_size),
		cmocka_unit_test_setup_teardown(test_message_must_be_a_file, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_file_size_limit_is_temporary, limit_setup,
						limit_teardown),
		cmocka_unit_test_setup_teardown(test_full_disk_is_temporary, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_durable_step_order, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_hostname_encoded, tmp_setup, tmp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
