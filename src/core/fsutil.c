/*
 * fsutil: creating, chowning and atomically replacing files without
 * following a symbolic link that an unprivileged user could have planted.
 * Never called on the event loop.
 */
#include "core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FSUTIL_PATH_MAX PATH_MAX

/* Split "a/b/c" into "a/b" and "c"; "c" into "." and "c"; "/c" into "/" and "c".
 * Trailing slashes are dropped. -1 when the path is empty, too long or names
 * "/" itself. */
static int path_split(const char *path, char *parent, size_t parent_cap, const char **name_out,
		      char *name_buf, size_t name_cap)
{
	size_t len = strlen(path);
	const char *slash;
	size_t parent_len;

	while (len > 1 && path[len - 1] == '/')
		len--;
	if (len == 0 || len >= parent_cap || len >= name_cap || (len == 1 && path[0] == '/'))
		return -1;
	memcpy(name_buf, path, len);
	name_buf[len] = '\0';
	slash = strrchr(name_buf, '/');
	if (slash == NULL) {
		snprintf(parent, parent_cap, ".");
		*name_out = name_buf;
		return 0;
	}
	parent_len = (size_t) (slash - name_buf);
	if (parent_len == 0)
		parent_len = 1; /* "/c" */
	memcpy(parent, name_buf, parent_len);
	parent[parent_len] = '\0';
	*name_out = slash + 1;
	return 0;
}

/* Whether a symbolic link in the directory open as dirfd may be followed:
 * only root or the caller itself can have put it there. */
static bool dir_is_trusted(int dirfd)
{
	struct stat st;

	return fstat(dirfd, &st) == 0 && (st.st_uid == 0 || st.st_uid == geteuid()) &&
	       (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/*
 * Open name inside dirfd with flags, refusing a symbolic link unless the
 * directory is trusted. Returns the descriptor, or -1 with errno set
 * (ELOOP for a refused link).
 */
static int open_beneath(int dirfd, const char *name, int flags)
{
	int fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0 || (errno != ELOOP && errno != ENOTDIR))
		return fd;
	/* O_NOFOLLOW on a link fails with ELOOP, or ENOTDIR together with O_DIRECTORY. */
	{
		struct stat st;

		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISLNK(st.st_mode)) {
			errno = ENOTDIR;
			return -1;
		}
	}
	if (!dir_is_trusted(dirfd)) {
		errno = ELOOP;
		return -1;
	}
	return openat(dirfd, name, flags | O_CLOEXEC);
}

static int link_error(const char *path, struct error *err)
{
	return error_set(err, ERROR_PERMISSION,
			 "%s: is a symbolic link in a directory that others could change; "
			 "refusing to follow it",
			 path);
}

int fsutil_dir_ensure(const char *path, mode_t mode, uid_t uid, gid_t gid, struct error *err)
{
	char parent[FSUTIL_PATH_MAX], name_buf[FSUTIL_PATH_MAX];
	const char *name;
	bool is_created = false;
	int dirfd, fd;

	if (path_split(path, parent, sizeof(parent), &name, name_buf, sizeof(name_buf)) < 0)
		return error_set(err, ERROR_IO, "%s: not a usable directory path", path);
	dirfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0 && errno == ENOENT) {
		if (fsutil_dir_ensure(parent, 0755, FSUTIL_KEEP_OWNER, FSUTIL_KEEP_GROUP, err) < 0)
			return -1;
		dirfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (dirfd < 0)
		return error_set(err, ERROR_IO, "%s: %s", parent, strerror(errno));
	if (mkdirat(dirfd, name, mode) == 0)
		is_created = true;
	else if (errno != EEXIST) {
		int e = errno;

		close(dirfd);
		return error_set(err, ERROR_IO, "cannot create %s: %s", path, strerror(e));
	}
	fd = open_beneath(dirfd, name, O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		int e = errno;

		close(dirfd);
		if (e == ELOOP)
			return link_error(path, err);
		return error_set(err, ERROR_IO, "%s: %s", path, strerror(e));
	}
	close(dirfd);
	if (is_created && fchmod(fd, mode) != 0) {
		int e = errno;

		close(fd);
		return error_set(err, ERROR_IO, "cannot set the mode of %s: %s", path, strerror(e));
	}
	if (uid != FSUTIL_KEEP_OWNER && fchown(fd, uid, gid) != 0) {
		int e = errno;

		close(fd);
		return error_set(err, ERROR_IO, "cannot change the owner of %s: %s", path,
				 strerror(e));
	}
	close(fd);
	return 0;
}

int fsutil_file_chown(const char *path, uid_t uid, gid_t gid, struct error *err)
{
	char parent[FSUTIL_PATH_MAX], name_buf[FSUTIL_PATH_MAX];
	const char *name;
	struct stat st;
	int dirfd, fd;

	if (path_split(path, parent, sizeof(parent), &name, name_buf, sizeof(name_buf)) < 0)
		return error_set(err, ERROR_IO, "%s: not a usable file path", path);
	dirfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		if (errno == ENOENT)
			return 0;
		return error_set(err, ERROR_IO, "%s: %s", parent, strerror(errno));
	}
	/* O_NONBLOCK: opening a FIFO planted under the file's name must not hang. */
	fd = open_beneath(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		int e = errno;

		close(dirfd);
		if (e == ENOENT)
			return 0;
		if (e == ELOOP)
			return link_error(path, err);
		return error_set(err, ERROR_IO, "%s: %s", path, strerror(e));
	}
	close(dirfd);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return error_set(err, ERROR_IO, "%s: not a regular file", path);
	}
	if (fchown(fd, uid, gid) != 0) {
		int e = errno;

		close(fd);
		return error_set(err, ERROR_IO, "cannot change the owner of %s: %s", path,
				 strerror(e));
	}
	close(fd);
	return 0;
}

int fsutil_dir_fsync(const char *path, struct error *err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return error_set(err, ERROR_IO, "%s: %s", path, strerror(errno));
	if (fsync(fd) != 0) {
		int e = errno;

		close(fd);
		return error_set(err, ERROR_IO, "cannot fsync %s: %s", path, strerror(e));
	}
	close(fd);
	return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		data += n;
		len -= (size_t) n;
	}
	return 0;
}

int fsutil_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			     struct error *err)
{
	char parent[FSUTIL_PATH_MAX], name_buf[FSUTIL_PATH_MAX], tmp[FSUTIL_PATH_MAX];
	const char *name;
	int n, fd, e;

	if (path_split(path, parent, sizeof(parent), &name, name_buf, sizeof(name_buf)) < 0)
		return error_set(err, ERROR_IO, "%s: not a usable file path", path);
	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long) getpid());
	if (n < 0 || (size_t) n >= sizeof(tmp))
		return error_set(err, ERROR_IO, "%s: path too long", path);
	(void) unlink(tmp); /* left by a crash of an earlier process with our pid */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return error_set(err, ERROR_IO, "cannot create %s: %s", tmp, strerror(errno));
	if (fchmod(fd, mode) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
		e = errno;
		close(fd);
		unlink(tmp);
		return error_set(err, ERROR_IO, "cannot write %s: %s", tmp, strerror(e));
	}
	if (close(fd) != 0) {
		e = errno;
		unlink(tmp);
		return error_set(err, ERROR_IO, "cannot write %s: %s", tmp, strerror(e));
	}
	if (rename(tmp, path) != 0) {
		e = errno;
		unlink(tmp);
		return error_set(err, ERROR_IO, "cannot rename %s to %s: %s", tmp, path,
				 strerror(e));
	}
	return fsutil_dir_fsync(parent, err);
}
