/*
 * maildir: delivery into tmp/ then new/, and the search for an earlier copy.
 * Every name is opened relative to the Maildir's directory descriptor, and
 * the order — write, fsync the file, rename without replacing, fsync new/ —
 * is what lets the queue mark a recipient delivered once this returns.
 */
#include "mailbox/maildir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/span.h"

static const char *const subdirs[] = { "tmp", "new", "cur" };

static enum error_kind kind_for(int errnum)
{
	return (errnum == ENOSPC || errnum == EDQUOT || errnum == EFBIG) ? ERROR_TEMPORARY
									 : ERROR_IO;
}

static int fsync_dir_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/*
 * mkdir -p with mode 0700. A directory this makes is only durable once its
 * parent is fsynced: otherwise a power loss could take a new Maildir, and
 * the mail already reported delivered in it, away.
 */
static int dir_make_all(const char *path, struct error *err)
{
	char copy[PATH_MAX];
	size_t len;

	if (!span_copy_cstr(span_from_cstr(path), copy, sizeof(copy)))
		return error_set(err, ERROR_DATA, "maildir: path too long");
	len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	for (size_t i = 1; i <= len; i++) {
		if (copy[i] != '/' && copy[i] != '\0')
			continue;
		if (copy[i - 1] == '/')
			continue; /* "a//b" */
		copy[i] = '\0';
		if (mkdir(copy, 0700) == 0) {
			char parent[PATH_MAX];
			char *slash;

			memcpy(parent, copy, i + 1);
			slash = strrchr(parent, '/');
			if (slash == NULL)
				memcpy(parent, ".", 2);
			else if (slash == parent)
				parent[1] = '\0';
			else
				*slash = '\0';
			if (fsync_dir_path(parent) != 0)
				return error_set(err, kind_for(errno), "maildir: fsync %s: %s",
						 parent, strerror(errno));
		} else if (errno != EEXIST) {
			int saved = errno;

			return error_set(err, kind_for(saved), "maildir: mkdir %s: %s", copy,
					 strerror(saved));
		}
		if (i < len)
			copy[i] = '/';
	}
	return 0;
}

/* Open the Maildir, creating what is missing; returns its descriptor. */
static int maildir_open(const char *maildir_path, struct error *err)
{
	bool is_made = false;
	int fd = open(maildir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0) {
		if (errno != ENOENT)
			return error_set(err, ERROR_IO, "maildir: open %s: %s", maildir_path,
					 strerror(errno));
		if (dir_make_all(maildir_path, err) < 0)
			return -1;
		fd = open(maildir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return error_set(err, ERROR_IO, "maildir: open %s: %s", maildir_path,
					 strerror(errno));
	}
	for (size_t i = 0; i < ARRAY_LEN(subdirs); i++) {
		if (mkdirat(fd, subdirs[i], 0700) == 0) {
			is_made = true;
		} else if (errno != EEXIST) {
			int saved = errno;

			close(fd);
			return error_set(err, kind_for(saved), "maildir: mkdir %s/%s: %s",
					 maildir_path, subdirs[i], strerror(saved));
		}
	}
	if (is_made && fsync(fd) != 0) {
		int saved = errno;

		close(fd);
		return error_set(err, kind_for(saved), "maildir: fsync %s: %s", maildir_path,
				 strerror(saved));
	}
	return fd;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t) n;
	}
	return 0;
}

/* len bytes of message_fd from offset, with pread and write; errno on -1. */
static int copy_range(int out_fd, int message_fd, uint64_t offset, uint64_t len)
{
	char *piece = malloc(MAILBOX_MAILDIR_COPY_BYTES);
	uint64_t done = 0;

	if (piece == NULL) {
		errno = ENOMEM;
		return -1;
	}
	while (done < len) {
		size_t want = len - done < MAILBOX_MAILDIR_COPY_BYTES ? (size_t) (len - done)
								      : MAILBOX_MAILDIR_COPY_BYTES;
		ssize_t n = pread(message_fd, piece, want, (off_t) (offset + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || write_all(out_fd, piece, (size_t) n) < 0) {
			int saved = n == 0 ? EIO : errno;

			free(piece);
			errno = saved;
			return -1;
		}
		done += (uint64_t) n;
	}
	free(piece);
	return 0;
}

/* prefix, then body_size bytes of message_fd from offset 0; errno on -1
 * (EIO when the message file turned out shorter than body_size). */
static int copy_message(int out_fd, const char *prefix, size_t prefix_len, int message_fd,
			uint64_t body_size)
{
	if (write_all(out_fd, prefix, prefix_len) < 0)
		return -1;
	return copy_range(out_fd, message_fd, 0, body_size);
}

static bool name_is_valid(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && len <= MAILBOX_MAILDIR_NAME_MAX && name[0] != '.' &&
	       strchr(name, '/') == NULL;
}

/* new/name must never replace a message that is there: rename without
 * replacing, or link then unlink where the file system lacks that flag. */
static int move_into_new(int maildir_fd, const char *name)
{
	char from[MAILBOX_MAILDIR_NAME_MAX + 8], to[MAILBOX_MAILDIR_NAME_MAX + 8];

	snprintf(from, sizeof(from), "tmp/%s", name);
	snprintf(to, sizeof(to), "new/%s", name);
	if (renameat2(maildir_fd, from, maildir_fd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	if (linkat(maildir_fd, from, maildir_fd, to, 0) != 0)
		return -1;
	unlinkat(maildir_fd, from, 0);
	return 0;
}

static int store_at(int maildir_fd, const char *maildir_path, const char *name, const char *prefix,
		    size_t prefix_len, int message_fd, uint64_t body_size, struct error *err)
{
	char tmp_name[MAILBOX_MAILDIR_NAME_MAX + 8];
	int fd, new_fd, saved;

	snprintf(tmp_name, sizeof(tmp_name), "tmp/%s", name);
	fd = openat(maildir_fd, tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		    0600);
	if (fd < 0)
		return error_set(err, kind_for(errno), "maildir: create %s/%s: %s", maildir_path,
				 tmp_name, strerror(errno));
	if (copy_message(fd, prefix, prefix_len, message_fd, body_size) < 0 || fsync(fd) != 0) {
		saved = errno;
		close(fd);
		goto fail;
	}
	if (close(fd) != 0) {
		saved = errno;
		goto fail;
	}
	if (move_into_new(maildir_fd, name) != 0) {
		saved = errno;
		unlinkat(maildir_fd, tmp_name, 0);
		if (saved == EEXIST)
			return error_set(err, ERROR_EXISTS, "maildir: %s/new/%s exists already",
					 maildir_path, name);
		return error_set(err, kind_for(saved), "maildir: rename into %s/new: %s",
				 maildir_path, strerror(saved));
	}
	/* The name in new/ is the delivery: make it durable before saying so. */
	new_fd = openat(maildir_fd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (new_fd < 0 || fsync(new_fd) != 0) {
		saved = errno;
		if (new_fd >= 0)
			close(new_fd);
		return error_set(err, kind_for(saved), "maildir: fsync %s/new: %s", maildir_path,
				 strerror(saved));
	}
	close(new_fd);
	return 0;

fail:
	unlinkat(maildir_fd, tmp_name, 0);
	return error_set(err, kind_for(saved), "maildir: write %s/%s: %s", maildir_path, tmp_name,
			 strerror(saved));
}

static int body_size_of(int message_fd, uint64_t *size_out, struct error *err)
{
	struct stat st;

	if (fstat(message_fd, &st) != 0)
		return error_set(err, ERROR_IO, "maildir: stat message: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return error_set(err, ERROR_DATA, "maildir: the message is not a regular file");
	*size_out = (uint64_t) st.st_size;
	return 0;
}

int mailbox_maildir_store(const char *maildir_path, const char *name, const char *prefix,
			  size_t prefix_len, int message_fd, struct error *err)
{
	uint64_t body_size = 0;
	int maildir_fd, rc;

	if (!name_is_valid(name))
		return error_set(err, ERROR_DATA, "maildir: bad file name");
	if (body_size_of(message_fd, &body_size, err) < 0)
		return -1;
	if ((maildir_fd = maildir_open(maildir_path, err)) < 0)
		return -1;
	rc = store_at(maildir_fd, maildir_path, name, prefix, prefix_len, message_fd, body_size,
		      err);
	close(maildir_fd);
	return rc;
}

static bool hint_is_valid(const char *hint)
{
	size_t len = strlen(hint);

	if (len == 0 || len > MAILBOX_MAILDIR_HINT_MAX)
		return false;
	/* Nothing that could end the hint early for mailbox_maildir_find ('_',
	 * '.') or mean something in a Maildir name ('/', ':', ','). */
	for (size_t i = 0; i < len; i++) {
		char c = hint[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
	}
	return true;
}

/* The host name with '/' and ':' as \057 and \072 (the Maildir spec). */
static void hostname_encode(char *out, size_t cap)
{
	char host[HOST_NAME_MAX + 1];
	size_t o = 0;

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	for (const char *p = host; *p != '\0' && o + 5 < cap; p++) {
		if (*p == '/' || *p == ':') {
			snprintf(out + o, cap - o, "\\%03o", (unsigned char) *p);
			o += 4;
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
}

/* A new unique name for a file of size bytes; its length, or -1. */
static int name_make(char name[MAILBOX_MAILDIR_NAME_MAX + 1], const char *unique_hint,
		     uint64_t size, struct error *err)
{
	static _Atomic unsigned long delivery_counter;
	char host[HOST_NAME_MAX * 4 + 1];
	struct timeval now;
	int n;

	if (!hint_is_valid(unique_hint))
		return error_set(err, ERROR_DATA, "maildir: bad unique hint");
	hostname_encode(host, HOST_NAME_MAX * 4 + 1);
	gettimeofday(&now, NULL);
	n = snprintf(name, MAILBOX_MAILDIR_NAME_MAX + 1, "%lld.M%ldP%ldQ%lu_%s.%s,S=%llu",
		     (long long) now.tv_sec, (long) now.tv_usec, (long) getpid(),
		     atomic_fetch_add(&delivery_counter, 1), unique_hint, host,
		     (unsigned long long) size);
	if (n < 0 || n > MAILBOX_MAILDIR_NAME_MAX)
		return error_set(err, ERROR_DATA, "maildir: file name too long");
	return n;
}

int mailbox_maildir_deliver(const char *maildir_path, const char *prefix, size_t prefix_len,
			    int message_fd, const char *unique_hint, char *name_out,
			    size_t name_cap, struct error *err)
{
	char name[MAILBOX_MAILDIR_NAME_MAX + 1];
	uint64_t body_size = 0;
	int maildir_fd, n, rc;

	if (body_size_of(message_fd, &body_size, err) < 0)
		return -1;
	if ((n = name_make(name, unique_hint, body_size + prefix_len, err)) < 0)
		return -1;
	if ((size_t) n >= name_cap)
		return error_set(err, ERROR_DATA, "maildir: name_out too small");
	if ((maildir_fd = maildir_open(maildir_path, err)) < 0)
		return -1;
	rc = store_at(maildir_fd, maildir_path, name, prefix, prefix_len, message_fd, body_size,
		      err);
	close(maildir_fd);
	if (rc == 0)
		memcpy(name_out, name, (size_t) n + 1);
	return rc;
}

int mailbox_maildir_slot_open(struct mailbox_maildir_slot *slot, const char *maildir_path,
			      const char *unique_hint, uint64_t size, struct error *err)
{
	struct stat st;

	memset(slot, 0, sizeof(*slot));
	slot->maildir_fd = -1;
	if (name_make(slot->name, unique_hint, size, err) < 0)
		return -1;
	snprintf(slot->new_path, sizeof(slot->new_path), "new/%s", slot->name);
	if ((slot->maildir_fd = maildir_open(maildir_path, err)) < 0)
		return -1;
	if (fstat(slot->maildir_fd, &st) != 0) {
		int saved = errno;

		mailbox_maildir_slot_close(slot);
		return error_set(err, ERROR_IO, "maildir: stat %s: %s", maildir_path,
				 strerror(saved));
	}
	slot->device = (unsigned long long) st.st_dev;
	return 0;
}

int mailbox_maildir_slot_write(struct mailbox_maildir_slot *slot, const char *prefix,
			       size_t prefix_len, int message_fd, uint64_t offset, uint64_t len,
			       bool is_synced, struct error *err)
{
	char tmp_name[MAILBOX_MAILDIR_NAME_MAX + 8];
	uint64_t done = 0;
	int fd, saved = 0;

	snprintf(tmp_name, sizeof(tmp_name), "tmp/%s", slot->name);
	fd = openat(slot->maildir_fd, tmp_name,
		    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return error_set(err, kind_for(errno), "maildir: create %s: %s", tmp_name,
				 strerror(errno));
	slot->is_written = true;
	if (write_all(fd, prefix, prefix_len) < 0)
		saved = errno;
	/* The kernel copies page to page; no user-space buffer. Between file
	 * systems (Linux 5.19 and later refuse that) it is read and write. */
	while (saved == 0 && done < len) {
		loff_t from = (loff_t) (offset + done);
		ssize_t n = copy_file_range(message_fd, &from, fd, NULL, (size_t) (len - done), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && done == 0 &&
		    (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
			if (copy_range(fd, message_fd, offset, len) < 0)
				saved = errno;
			break;
		}
		if (n <= 0)
			saved = n == 0 ? EIO : errno;
		else
			done += (uint64_t) n;
	}
	if (saved == 0 && is_synced && fsync(fd) != 0)
		saved = errno;
	if (close(fd) != 0 && saved == 0)
		saved = errno;
	if (saved != 0) {
		mailbox_maildir_slot_discard(slot);
		return error_set(err, kind_for(saved), "maildir: write %s: %s", tmp_name,
				 strerror(saved));
	}
	return 0;
}

int mailbox_maildir_slot_place(struct mailbox_maildir_slot *slot, bool is_synced, struct error *err)
{
	int new_fd;

	if (move_into_new(slot->maildir_fd, slot->name) != 0) {
		int saved = errno;

		return error_set(err, saved == EEXIST ? ERROR_EXISTS : kind_for(saved),
				 "maildir: rename into new/: %s", strerror(saved));
	}
	slot->is_written = false;
	slot->is_placed = true;
	if (!is_synced)
		return 0;
	new_fd = openat(slot->maildir_fd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (new_fd < 0 || fsync(new_fd) != 0) {
		int saved = errno;

		if (new_fd >= 0)
			close(new_fd);
		return error_set(err, kind_for(saved), "maildir: fsync new/: %s", strerror(saved));
	}
	close(new_fd);
	return 0;
}

void mailbox_maildir_slot_discard(struct mailbox_maildir_slot *slot)
{
	char tmp_name[MAILBOX_MAILDIR_NAME_MAX + 8];

	if (slot->maildir_fd < 0)
		return;
	if (slot->is_written) {
		snprintf(tmp_name, sizeof(tmp_name), "tmp/%s", slot->name);
		unlinkat(slot->maildir_fd, tmp_name, 0);
	}
	if (slot->is_placed)
		unlinkat(slot->maildir_fd, slot->new_path, 0);
	slot->is_written = false;
	slot->is_placed = false;
}

void mailbox_maildir_slot_close(struct mailbox_maildir_slot *slot)
{
	if (slot->maildir_fd >= 0)
		close(slot->maildir_fd);
	slot->maildir_fd = -1;
}

int mailbox_maildir_find(const char *maildir_path, const char *unique_hint, bool *found_out,
			 struct error *err)
{
	char needle[MAILBOX_MAILDIR_HINT_MAX + 3];
	int maildir_fd;

	*found_out = false;
	if (!hint_is_valid(unique_hint))
		return error_set(err, ERROR_DATA, "maildir: bad unique hint");
	snprintf(needle, sizeof(needle), "_%s.", unique_hint);
	maildir_fd = open(maildir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (maildir_fd < 0) {
		if (errno == ENOENT)
			return 0;
		return error_set(err, ERROR_IO, "maildir: open %s: %s", maildir_path,
				 strerror(errno));
	}
	/* new/ first: that is where a delivery cut short by a crash would be. */
	for (size_t i = 1; i < ARRAY_LEN(subdirs) && !*found_out; i++) {
		int fd = openat(maildir_fd, subdirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct dirent *entry;
		DIR *d;

		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			error_set(err, ERROR_IO, "maildir: open %s/%s: %s", maildir_path,
				  subdirs[i], strerror(errno));
			close(maildir_fd);
			return -1;
		}
		if ((d = fdopendir(fd)) == NULL) {
			error_set(err, ERROR_IO, "maildir: read %s/%s: %s", maildir_path,
				  subdirs[i], strerror(errno));
			close(fd);
			close(maildir_fd);
			return -1;
		}
		for (;;) {
			errno = 0;
			if ((entry = readdir(d)) == NULL)
				break;
			if (strstr(entry->d_name, needle) != NULL) {
				*found_out = true;
				break;
			}
		}
		if (entry == NULL && errno != 0) {
			error_set(err, ERROR_IO, "maildir: read %s/%s: %s", maildir_path,
				  subdirs[i], strerror(errno));
			closedir(d);
			close(maildir_fd);
			return -1;
		}
		closedir(d);
	}
	close(maildir_fd);
	return 0;
}

bool mailbox_maildir_name_size(const char *name, uint64_t *size_out)
{
	const char *s = strstr(name, ",S=");
	size_t len = 0;

	if (s == NULL)
		return false;
	s += 3;
	while (s[len] >= '0' && s[len] <= '9')
		len++;
	/* The field ends at the next ',' (another field), ':' (the info) or the end. */
	if (s[len] != '\0' && s[len] != ',' && s[len] != ':')
		return false;
	return span_parse_u64(span_make(s, len), size_out);
}
