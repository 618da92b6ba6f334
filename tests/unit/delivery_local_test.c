/* Tests for delivery_local_direct (src/delivery/local.c): a message being
 * received in the spool goes straight into the local Maildirs — the message
 * file itself into the first, copies with their own Delivered-To into the
 * others — with the data synced before any name appears in new/, and the
 * names synced before it returns (checked call by call under ptrace); and a
 * failure leaves no file in any mailbox. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delivery/local.h"
#include "mailbox/path.h"
#include "queue/spool.h"
#include "syscall_trace.h"

#define BODY "Received: from x\r\nSubject: hello\r\n\r\nbody\r\n"

struct tmp {
	char dir[64];
	char spool[PATH_MAX];
	char mail[PATH_MAX];
};

static int tmp_setup(void **state)
{
	struct tmp *tmp = calloc(1, sizeof(*tmp));

	snprintf(tmp->dir, sizeof(tmp->dir), "/tmp/delivery_local_test.XXXXXX");
	if (tmp == NULL || mkdtemp(tmp->dir) == NULL)
		return -1;
	snprintf(tmp->spool, sizeof(tmp->spool), "%s/spool", tmp->dir);
	snprintf(tmp->mail, sizeof(tmp->mail), "%s/mail", tmp->dir);
	*state = tmp;
	return 0;
}

static int tmp_teardown(void **state)
{
	struct tmp *tmp = *state;
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp->dir);
	if (system(cmd) != 0)
		return -1;
	free(tmp);
	return 0;
}

/* The only file in <maildir of address>/<sub>, read whole; NULL if none. */
static char *only_file(const struct tmp *tmp, const char *address, const char *sub,
		       char name_out[256], size_t *len_out)
{
	char path[PATH_MAX], dir[PATH_MAX + 8], file[PATH_MAX + 300];
	struct dirent *e;
	char *text = NULL;
	size_t count = 0;
	DIR *d;

	assert_int_equal(mailbox_path_for(tmp->mail, address, path, sizeof(path), NULL), 0);
	snprintf(dir, sizeof(dir), "%s/%s", path, sub);
	d = opendir(dir);
	if (d == NULL)
		return NULL;
	while ((e = readdir(d)) != NULL) {
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		count++;
		snprintf(name_out, 256, "%s", e->d_name);
		snprintf(file, sizeof(file), "%s/%s", dir, e->d_name);
		f = fopen(file, "rb");
		assert_non_null(f);
		free(text);
		text = calloc(1, 65536);
		*len_out = fread(text, 1, 65535, f);
		fclose(f);
	}
	closedir(d);
	assert_true(count <= 1);
	return text;
}

static size_t dir_count(const char *path)
{
	struct dirent *e;
	size_t count = 0;
	DIR *d = opendir(path);

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL)
		count += e->d_name[0] != '.';
	closedir(d);
	return count;
}

/* Begin a message in the spool as the SMTP session does for a direct
 * delivery: the trace headers of the first address, then the message. */
static struct queue_message *message_make(struct queue_spool *spool, const char *first,
					  size_t *prefix_len_out)
{
	struct queue_message *m;
	struct error err;
	char prefix[1024];
	int len = delivery_local_prefix("sender@remote.test", first, prefix, sizeof(prefix));

	assert_true(len > 0);
	assert_int_equal(queue_spool_begin(spool, &m, &err), 0);
	assert_int_equal(queue_message_append(m, prefix, (size_t) len, &err), 0);
	assert_int_equal(queue_message_append(m, BODY, strlen(BODY), &err), 0);
	*prefix_len_out = (size_t) len;
	return m;
}

static void test_three_mailboxes(void **state)
{
	struct tmp *tmp = *state;
	const char *addresses[] = { "a@example.test", "bb@example.test", "c@other.test" };
	char names[3][256], spool_tmp[PATH_MAX + 8];
	struct queue_spool *spool;
	struct queue_message *m;
	struct error err;
	size_t prefix_len;
	char id[QUEUE_ID_MAX + 1];

	assert_int_equal(queue_spool_open(tmp->spool, &spool, &err), 0);
	m = message_make(spool, addresses[0], &prefix_len);
	snprintf(id, sizeof(id), "%s", queue_message_id(m));
	assert_int_equal(delivery_local_direct(tmp->mail, m, prefix_len, "sender@remote.test",
					       addresses, 3, id, names, &err),
			 0);
	for (size_t i = 0; i < 3; i++) {
		char name[256], want[1024], hint[64], size_tag[32];
		size_t len = 0;
		char *text = only_file(tmp, addresses[i], "new", name, &len);

		assert_non_null(text);
		assert_string_equal(name, names[i]);
		/* Each copy names its own mailbox, then the message unchanged. */
		snprintf(want, sizeof(want),
			 "Return-Path: <sender@remote.test>\r\nDelivered-To: %s\r\n" BODY,
			 addresses[i]);
		assert_int_equal(len, strlen(want));
		assert_memory_equal(text, want, len);
		/* The queue's hint, and S= the exact size. */
		snprintf(hint, sizeof(hint), "_%s-%zu.", id, i);
		snprintf(size_tag, sizeof(size_tag), ",S=%zu", len);
		assert_non_null(strstr(name, hint));
		assert_non_null(strstr(name, size_tag));
		free(text);
		assert_null(only_file(tmp, addresses[i], "tmp", name, &len));
	}
	/* Nothing is left in the spool. */
	snprintf(spool_tmp, sizeof(spool_tmp), "%s/tmp", tmp->spool);
	assert_int_equal(dir_count(spool_tmp), 0);
	queue_spool_free(spool);
}

/* A mailbox that cannot be made: no file anywhere, and a failure to report. */
static void test_failure_leaves_nothing(void **state)
{
	struct tmp *tmp = *state;
	const char *addresses[] = { "a@example.test", "b@blocked.test" };
	char names[2][256], path[PATH_MAX], spool_tmp[PATH_MAX + 8], name[256];
	struct queue_spool *spool;
	struct queue_message *m;
	struct error err;
	size_t prefix_len, len;
	FILE *f;

	assert_int_equal(queue_spool_open(tmp->spool, &spool, &err), 0);
	/* blocked.test's directory is a file: its Maildir cannot be made. */
	assert_int_equal(mkdir(tmp->mail, 0700), 0);
	assert_int_equal(mailbox_path_for(tmp->mail, addresses[1], path, sizeof(path), NULL), 0);
	*strrchr(path, '/') = '\0';
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	m = message_make(spool, addresses[0], &prefix_len);
	assert_int_equal(delivery_local_direct(tmp->mail, m, prefix_len, "sender@remote.test",
					       addresses, 2, "1k1cx882ezy9j", names, &err),
			 -1);
	assert_null(only_file(tmp, addresses[0], "new", name, &len));
	assert_null(only_file(tmp, addresses[0], "tmp", name, &len));
	snprintf(spool_tmp, sizeof(spool_tmp), "%s/tmp", tmp->spool);
	assert_int_equal(dir_count(spool_tmp), 0);
	queue_spool_free(spool);
}

/* --- the order of the durable steps ----------------------------------------- */

static void traced_direct(void *ctx, int report_fd)
{
	const struct tmp *tmp = ctx;
	const char *addresses[] = { "a@example.test", "b@example.test" };
	char names[2][256], report[1024];
	struct queue_spool *spool;
	struct queue_message *m;
	struct error err;
	char prefix[256];
	int len = delivery_local_prefix("s@remote.test", addresses[0], prefix, sizeof(prefix));
	char id[QUEUE_ID_MAX + 1];

	if (queue_spool_open(tmp->spool, &spool, &err) < 0 ||
	    queue_spool_begin(spool, &m, &err) < 0)
		_exit(1);
	snprintf(id, sizeof(id), "%s", queue_message_id(m));
	if (queue_message_append(m, prefix, (size_t) len, &err) < 0 ||
	    queue_message_append(m, BODY, strlen(BODY), &err) < 0 ||
	    delivery_local_direct(tmp->mail, m, (size_t) len, "s@remote.test", addresses, 2, id,
				  names, &err) < 0)
		_exit(1);
	snprintf(report, sizeof(report), "%s %s %s", id, names[0], names[1]);
	if (write(report_fd, report, strlen(report)) < 0)
		_exit(1);
}

static void test_durable_step_order(void **state)
{
	struct tmp *tmp = *state;
	struct syscall_trace t = { .root = tmp->dir };
	struct queue_spool *spool;
	struct error err;
	char cmd[PATH_MAX * 2], id[QUEUE_ID_MAX + 1], n0[256], n1[256];
	int rc;

	/* The spool and both Maildirs exist already: the trace shows only the
	 * delivery. */
	assert_int_equal(queue_spool_open(tmp->spool, &spool, &err), 0);
	queue_spool_free(spool);
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s/example.test/a/tmp %s/example.test/a/new "
		 "%s/example.test/a/cur %s/example.test/b/tmp "
		 "%s/example.test/b/new %s/example.test/b/cur",
		 tmp->mail, tmp->mail, tmp->mail, tmp->mail, tmp->mail, tmp->mail);
	assert_int_equal(system(cmd), 0);
	rc = syscall_trace_run(&t, traced_direct, tmp);
	if (rc == 1) {
		print_message("skipped: no ptrace on this system\n");
		skip();
		return;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(sscanf(t.report, "%13s %255s %255s", id, n0, n1), 3);
	print_message("trace:\n%s", t.text);
	syscall_trace_replace(t.text, n0, "N0");
	syscall_trace_replace(t.text, n1, "N1");
	syscall_trace_replace(t.text, id, "ID");
	assert_string_equal(t.text, "create spool/tmp/ID.msg\n"
				    /* the copy for b, unsynced */
				    "create mail/example.test/b/tmp/N1\n"
				    /* the data of both */
				    "syncfs spool\n"
				    /* the message file itself is a's */
				    "rename spool/tmp/ID.msg mail/example.test/a/new/N0\n"
				    "rename mail/example.test/b/tmp/N1 "
				    "mail/example.test/b/new/N1\n"
				    /* both names, before anyone is told */
				    "syncfs spool\n"
				    "report\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_three_mailboxes, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_failure_leaves_nothing, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_durable_step_order, tmp_setup, tmp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
