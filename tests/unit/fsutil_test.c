/* Tests for src/core/fsutil.c: directory creation and modes, chown, symbolic
 * links refused where the unprivileged user could have planted them, atomic
 * writes. Each test works in its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/span.h"

struct tmp {
	char dir[64]; /* "/tmp/fsutil_test.XXXXXX": short, so joined paths fit PATH_MAX */
};

static int tmp_setup(void **state)
{
	static struct tmp tmp;

	snprintf(tmp.dir, sizeof(tmp.dir), "/tmp/fsutil_test.XXXXXX");
	if (mkdtemp(tmp.dir) == NULL)
		return -1;
	*state = &tmp;
	return 0;
}

static int tmp_teardown(void **state)
{
	struct tmp *tmp = *state;
	char cmd[sizeof(tmp->dir) + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp->dir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *join(const struct tmp *tmp, const char *rel, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", tmp->dir, rel);

	assert_true(n > 0 && (size_t) n < cap);
	return out;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* The mode asked for wins over the umask; missing parents are made. */
static void test_dir_ensure_creates_with_mode(void **state)
{
	struct tmp *tmp = *state;
	char path[PATH_MAX], parent[PATH_MAX];
	struct error err;
	mode_t old = umask(077);

	join(tmp, "a/b/spool", path, sizeof(path));
	assert_int_equal(fsutil_dir_ensure(path, 0700, FSUTIL_KEEP_OWNER, FSUTIL_KEEP_GROUP, &err),
			 0);
	umask(022);
	assert_true(S_ISDIR(mode_of(path)));
	assert_int_equal(mode_of(path) & 07777, 0700);
	join(tmp, "a/b/sub", path, sizeof(path));
	assert_int_equal(fsutil_dir_ensure(path, 0750, FSUTIL_KEEP_OWNER, FSUTIL_KEEP_GROUP, &err),
			 0);
	assert_int_equal(mode_of(path) & 07777, 0750);
	join(tmp, "a", parent, sizeof(parent));
	assert_true(S_ISDIR(mode_of(parent)));
	umask(old);
}

/* An existing directory keeps the mode its administrator gave it. */
static void test_dir_ensure_keeps_existing_mode(void **state)
{
	struct tmp *tmp = *state;
	char path[PATH_MAX];
	struct error err;

	join(tmp, "kept", path, sizeof(path));
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(chmod(path, 0751), 0);
	assert_int_equal(fsutil_dir_ensure(path, 0700, getuid(), getgid(), &err), 0);
	assert_int_equal(mode_of(path) & 07777, 0751);
	/* A trailing slash names the same directory. */
	join(tmp, "kept/", path, sizeof(path));
	assert_int_equal(fsutil_dir_ensure(path, 0700, FSUTIL_KEEP_OWNER, FSUTIL_KEEP_GROUP, &err),
			 0);
}

static void test_dir_ensure_refuses_a_file(void **state)
{
	struct tmp *tmp = *state;
	char path[PATH_MAX];
	struct error err;

	join(tmp, "plain", path, sizeof(path));
	write_file(path, "x");
	assert_int_equal(fsutil_dir_ensure(path, 0700, FSUTIL_KEEP_OWNER, FSUTIL_KEEP_GROUP, &err),
			 -1);
	assert_non_null(strstr(err.message, path));
	assert_int_equal(fsutil_dir_ensure("", 0700, FSUTIL_KEEP_OWNER, FSUTIL_KEEP_GROUP, &err),
			 -1);
}

/* A link in a directory that others could change (here: group-writable) is
 * refused for directories and files alike, and its target is left untouched. */
static void test_links_in_untrusted_directory_refused(void **state)
{
	struct tmp *tmp = *state;
	char target[PATH_MAX], area[PATH_MAX], link_dir[PATH_MAX], link_file[PATH_MAX];
	char target_file[PATH_MAX];
	struct error err;

	join(tmp, "target", target, sizeof(target));
	join(tmp, "target/file", target_file, sizeof(target_file));
	join(tmp, "area", area, sizeof(area));
	join(tmp, "area/mail", link_dir, sizeof(link_dir));
	join(tmp, "area/accounts.db", link_file, sizeof(link_file));
	assert_int_equal(mkdir(target, 0755), 0);
	write_file(target_file, "x");
	assert_int_equal(mkdir(area, 0755), 0);
	assert_int_equal(chmod(area, 0775), 0);
	assert_int_equal(symlink(target, link_dir), 0);
	assert_int_equal(symlink(target_file, link_file), 0);

	assert_int_equal(fsutil_dir_ensure(link_dir, 0700, getuid(), getgid(), &err), -1);
	assert_int_equal(err.kind, ERROR_PERMISSION);
	assert_non_null(strstr(err.message, "symbolic link"));
	assert_int_equal(fsutil_file_chown(link_file, getuid(), getgid(), &err), -1);
	assert_int_equal(err.kind, ERROR_PERMISSION);
	assert_int_equal(mode_of(target) & 07777, 0755);
}

/* A link that only the caller (or root) could have made — the directory is
 * the caller's and writable by no one else — is followed: as root, that is an
 * administrator's /var/lib/postgate -> /srv/postgate. */
static void test_links_in_own_directory_followed(void **state)
{
	struct tmp *tmp = *state;
	char target[PATH_MAX], link_dir[PATH_MAX], link_file[PATH_MAX], target_file[PATH_MAX];
	uid_t uid = geteuid() == 0 ? 1 : getuid();
	gid_t gid = geteuid() == 0 ? 1 : getgid();
	struct error err;
	struct stat st;

	join(tmp, "real", target, sizeof(target));
	join(tmp, "real/accounts.db", target_file, sizeof(target_file));
	join(tmp, "state", link_dir, sizeof(link_dir));
	join(tmp, "accounts.db", link_file, sizeof(link_file));
	assert_int_equal(chmod(tmp->dir, 0755), 0);
	assert_int_equal(mkdir(target, 0755), 0);
	write_file(target_file, "x");
	assert_int_equal(symlink(target, link_dir), 0);
	assert_int_equal(symlink(target_file, link_file), 0);
	assert_int_equal(fsutil_dir_ensure(link_dir, 0700, uid, gid, &err), 0);
	assert_int_equal(fsutil_file_chown(link_file, uid, gid, &err), 0);
	assert_int_equal(stat(target, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_uid, uid);
	assert_int_equal(st.st_gid, gid);
	assert_int_equal(stat(target_file, &st), 0);
	assert_int_equal(st.st_uid, uid);
}

static void test_file_chown(void **state)
{
	struct tmp *tmp = *state;
	char path[PATH_MAX];
	struct error err;

	join(tmp, "missing.db", path, sizeof(path));
	assert_int_equal(fsutil_file_chown(path, getuid(), getgid(), &err), 0);
	join(tmp, "missing-dir/x.db", path, sizeof(path));
	assert_int_equal(fsutil_file_chown(path, getuid(), getgid(), &err), 0);
	join(tmp, "real.db", path, sizeof(path));
	write_file(path, "x");
	assert_int_equal(fsutil_file_chown(path, getuid(), getgid(), &err), 0);
	if (geteuid() == 0) {
		struct stat st;

		assert_int_equal(fsutil_file_chown(path, 2, 3, &err), 0);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_uid, 2);
		assert_int_equal(st.st_gid, 3);
	}
	join(tmp, "dir.db", path, sizeof(path));
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(fsutil_file_chown(path, getuid(), getgid(), &err), -1);
	assert_non_null(strstr(err.message, "not a regular file"));
}

static void test_write_atomic(void **state)
{
	struct tmp *tmp = *state;
	char path[PATH_MAX], buf[64];
	struct error err;
	FILE *f;
	size_t n;

	join(tmp, "postgated.pid", path, sizeof(path));
	write_file(path, "old contents that are longer\n");
	assert_int_equal(fsutil_file_write_atomic(path, "1234\n", 5, 0644, &err), 0);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "1234\n", 5);
	assert_int_equal(mode_of(path) & 07777, 0644);
	{
		char tmp_path[PATH_MAX + 32];

		snprintf(tmp_path, sizeof(tmp_path), "%s.tmp.%ld", path, (long) getpid());
		assert_int_equal(access(tmp_path, F_OK), -1);
		assert_int_equal(errno, ENOENT);
	}
	join(tmp, "no-such-dir/postgated.pid", path, sizeof(path));
	assert_int_equal(fsutil_file_write_atomic(path, "1\n", 2, 0644, &err), -1);
	assert_non_null(strstr(err.message, "no-such-dir"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dir_ensure_creates_with_mode, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_dir_ensure_keeps_existing_mode, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_dir_ensure_refuses_a_file, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_links_in_untrusted_directory_refused,
						tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_links_in_own_directory_followed, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_file_chown, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic, tmp_setup, tmp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
