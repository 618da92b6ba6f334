/*
 * fsutil: directories and files the daemon prepares while still root, and
 * small files written so that a crash never leaves half of one.
 *
 * Privileged code must not be tricked into changing a file it did not mean
 * to: a symbolic link planted by the unprivileged user (say state_dir/mail ->
 * /etc) would otherwise make root hand /etc to that user. So the last
 * component of a path is followed when it is a symbolic link only if its
 * directory is owned by root or by the caller's effective user and writable
 * by no one else (run as root: an administrator's /var/lib/postgate ->
 * /srv/postgate is fine; a link inside the daemon user's state directory is
 * refused). Components are opened relative to their directory's descriptor,
 * so the check and the change see the same file.
 *
 * Paths are absolute or relative to the current directory; errors name the
 * path and carry strerror(errno). Blocking calls: start-up and worker threads
 * only, never the event loop.
 */
#ifndef POSTGATE_CORE_FSUTIL_H
#define POSTGATE_CORE_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "core/error.h"

#define FSUTIL_KEEP_OWNER ((uid_t) -1) /* as uid: do not chown */
#define FSUTIL_KEEP_GROUP ((gid_t) -1)

/*
 * Make path a directory. Missing parents are created with mode 0755 and left
 * to the caller's user; path itself, when created, gets exactly `mode`
 * (whatever the umask). An existing directory keeps its mode. Unless uid is
 * FSUTIL_KEEP_OWNER, path (not its parents) is then owned by uid:gid.
 * 0, or -1 with ERROR_IO (ERROR_PERMISSION for a refused symbolic link).
 */
int fsutil_dir_ensure(const char *path, mode_t mode, uid_t uid, gid_t gid, struct error *err);

/*
 * Give the regular file at path to uid:gid. A missing file is not an error
 * (returns 0); anything but a regular file is. 0 or -1 as above.
 */
int fsutil_file_chown(const char *path, uid_t uid, gid_t gid, struct error *err);

/*
 * Replace path with exactly len bytes of data, mode `mode`: written to a
 * temporary file in the same directory, fsynced, renamed over path, and the
 * directory fsynced, so a reader sees the old file or the new one, whole.
 */
int fsutil_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			     struct error *err);

/* fsync a directory, making the renames and creations in it durable. */
int fsutil_dir_fsync(const char *path, struct error *err);

#endif
