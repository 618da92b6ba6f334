/*
 * pop: the maildrop view of a Maildir for POP3 — lock, list, UPDATE. Every
 * file is opened relative to the Maildir's descriptor, so the paths it
 * builds are short and a rename of the Maildir above cannot redirect it.
 */
#include "mailbox/pop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "mailbox/maildir.h"

/* ---- pure helpers ------------------------------------------------------ */

/* The base name: up to the ':' that starts the info (the Maildir spec). */
static struct span base_name(struct span name)
{
	struct span before, after;

	if (span_split_first(name, ':', &before, &after))
		return before;
	return name;
}

size_t mailbox_pop_uid_make(struct span name, char out[MAILBOX_POP_UID_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	struct span base = base_name(name);
	bool is_usable = base.len > 0 && base.len <= MAILBOX_POP_UID_MAX;
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;

	for (size_t i = 0; i < base.len && is_usable; i++)
		is_usable =
			(unsigned char) base.ptr[i] >= 0x21 && (unsigned char) base.ptr[i] <= 0x7e;
	if (is_usable) {
		memcpy(out, base.ptr, base.len);
		out[base.len] = '\0';
		return base.len;
	}
	/* RFC 1939 7 allows 70 characters 0x21..0x7E; a longer or stranger
	 * name is replaced by its digest, which is as stable as the name. */
	if (EVP_Digest(base.ptr, base.len, digest, &digest_len, EVP_sha256(), NULL) != 1 ||
	    digest_len < 32)
		digest_len = 0;
	for (unsigned int i = 0; i < 32; i++) {
		unsigned char b = i < digest_len ? digest[i] : 0;

		out[2 * i] = hex[b >> 4];
		out[2 * i + 1] = hex[b & 15];
	}
	out[64] = '\0';
	return 64;
}

bool mailbox_pop_seen_name(const char *name, char *out, size_t out_cap)
{
	const char *colon = strchr(name, ':');
	char flags[64];
	size_t flag_len = 0;
	bool is_placed = false;
	int n;

	if (colon == NULL) {
		n = snprintf(out, out_cap, "%s:2,S", name);
		return n > 0 && (size_t) n < out_cap;
	}
	if (strncmp(colon, ":2,", 3) != 0)
		return false;
	/* Flags are kept in ASCII order; S goes in its place, once. */
	for (const char *f = colon + 3; *f != '\0'; f++) {
		if (flag_len + 2 >= sizeof(flags))
			return false;
		if (!is_placed && *f >= 'S') {
			flags[flag_len++] = 'S';
			is_placed = true;
			if (*f == 'S')
				continue;
		}
		flags[flag_len++] = *f;
	}
	if (!is_placed)
		flags[flag_len++] = 'S';
	flags[flag_len] = '\0';
	n = snprintf(out, out_cap, "%.*s:2,%s", (int) (colon - name), name, flags);
	return n > 0 && (size_t) n < out_cap;
}

bool mailbox_pop_arrival_parse(const char *name, uint64_t *seconds_out, uint32_t *micros_out)
{
	size_t len = 0, micro_len = 0;
	uint64_t micros = 0;

	while (name[len] >= '0' && name[len] <= '9')
		len++;
	if (len == 0 || name[len] != '.' || !span_parse_u64(span_make(name, len), seconds_out))
		return false;
	*micros_out = 0;
	if (name[len + 1] != 'M')
		return true;
	while (name[len + 2 + micro_len] >= '0' && name[len + 2 + micro_len] <= '9')
		micro_len++;
	if (micro_len > 0 && micro_len <= 6 &&
	    span_parse_u64(span_make(name + len + 2, micro_len), &micros))
		*micros_out = (uint32_t) micros;
	return true;
}

/* ---- opening ----------------------------------------------------------- */

static int fsync_dir_at(int dir_fd, const char *name)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* mkdir -p, fsyncing each parent of a directory it made: delivery later
 * finds the Maildir there and relies on it being durable. */
static int dir_make_all(const char *path, struct error *err)
{
	char copy[PATH_MAX];
	size_t len;

	if (!span_copy_cstr(span_from_cstr(path), copy, sizeof(copy)))
		return error_set(err, ERROR_DATA, "maildrop: path too long");
	len = strlen(copy);
	for (size_t i = 1; i <= len; i++) {
		if (copy[i] != '/' && copy[i] != '\0')
			continue;
		if (copy[i - 1] == '/')
			continue;
		copy[i] = '\0';
		if (mkdir(copy, 0700) == 0) {
			char *slash = strrchr(copy, '/');
			int rc;

			if (slash == copy) {
				rc = fsync_dir_at(AT_FDCWD, "/");
			} else if (slash == NULL) {
				rc = fsync_dir_at(AT_FDCWD, ".");
			} else {
				*slash = '\0';
				rc = fsync_dir_at(AT_FDCWD, copy);
				*slash = '/';
			}
			if (rc != 0)
				return error_set(err, ERROR_IO, "maildrop: fsync above %s: %s",
						 copy, strerror(errno));
		} else if (errno != EEXIST) {
			return error_set(err, ERROR_IO, "maildrop: mkdir %s: %s", copy,
					 strerror(errno));
		}
		if (i < len)
			copy[i] = '/';
	}
	return 0;
}

static int maildir_open(const char *path, struct error *err)
{
	static const char *const subdirs[] = { "tmp", "new", "cur" };
	bool is_made = false;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT) {
		if (dir_make_all(path, err) < 0)
			return -1;
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0)
		return error_set(err, ERROR_IO, "maildrop: open %s: %s", path, strerror(errno));
	for (size_t i = 0; i < ARRAY_LEN(subdirs); i++) {
		if (mkdirat(fd, subdirs[i], 0700) == 0) {
			is_made = true;
		} else if (errno != EEXIST) {
			error_set(err, ERROR_IO, "maildrop: mkdir %s/%s: %s", path, subdirs[i],
				  strerror(errno));
			close(fd);
			return -1;
		}
	}
	if (is_made && fsync(fd) != 0) {
		error_set(err, ERROR_IO, "maildrop: fsync %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static bool names_add(struct mailbox_pop_drop *drop, const char *text, size_t len,
		      size_t *offset_out)
{
	if (drop->names_cap - drop->names_len < len + 1) {
		size_t cap = drop->names_cap ? drop->names_cap * 2 : 16384;
		char *names;

		while (cap - drop->names_len < len + 1)
			cap *= 2;
		if ((names = realloc(drop->names, cap)) == NULL)
			return false;
		drop->names = names;
		drop->names_cap = cap;
	}
	memcpy(drop->names + drop->names_len, text, len);
	drop->names[drop->names_len + len] = '\0';
	*offset_out = drop->names_len;
	drop->names_len += len + 1;
	return true;
}

static int list_dir(struct mailbox_pop_drop *drop, const char *sub, struct error *err)
{
	int fd = openat(drop->dir_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	bool is_cur = strcmp(sub, "cur") == 0;
	struct dirent *entry;
	DIR *d;

	if (fd < 0)
		return error_set(err, ERROR_IO, "maildrop: open %s/: %s", sub, strerror(errno));
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return error_set(err, ERROR_IO, "maildrop: read %s/: %s", sub, strerror(errno));
	}
	for (;;) {
		struct mailbox_pop_message *m;
		char path[MAILBOX_MAILDIR_NAME_MAX + 8], uid[MAILBOX_POP_UID_MAX + 1];
		size_t name_len, uid_len;
		struct stat st;
		bool has_stat = false, has_size;

		errno = 0;
		if ((entry = readdir(d)) == NULL)
			break;
		name_len = strlen(entry->d_name);
		/* Dot files are not messages (the Maildir spec). */
		if (entry->d_name[0] == '.' || name_len > MAILBOX_MAILDIR_NAME_MAX)
			continue;
		if (entry->d_type != DT_REG && entry->d_type != DT_UNKNOWN)
			continue;
		if (drop->count == MAILBOX_POP_MESSAGES_MAX)
			continue;
		if (drop->count == drop->messages_cap) {
			size_t cap = drop->messages_cap ? drop->messages_cap * 2 : 256;
			struct mailbox_pop_message *grown =
				realloc(drop->messages, cap * sizeof(*grown));

			if (grown == NULL) {
				closedir(d);
				return error_set(err, ERROR_IO, "maildrop: out of memory");
			}
			drop->messages = grown;
			drop->messages_cap = cap;
		}
		snprintf(path, sizeof(path), "%s/%s", sub, entry->d_name);
		m = &drop->messages[drop->count];
		*m = (struct mailbox_pop_message){ .is_in_cur = is_cur };
		has_size = mailbox_maildir_name_size(entry->d_name, &m->size);
		if (!mailbox_pop_arrival_parse(entry->d_name, &m->arrival_s, &m->arrival_us) ||
		    !has_size || entry->d_type == DT_UNKNOWN) {
			/* One stat, only for names that do not say it all. */
			if (fstatat(drop->dir_fd, path, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
			    !S_ISREG(st.st_mode))
				continue; /* gone meanwhile, or not a message */
			has_stat = true;
		}
		if (!has_size)
			m->size = (uint64_t) st.st_size;
		if (has_stat &&
		    !mailbox_pop_arrival_parse(entry->d_name, &m->arrival_s, &m->arrival_us)) {
			m->arrival_s = (uint64_t) st.st_mtim.tv_sec;
			m->arrival_us = (uint32_t) (st.st_mtim.tv_nsec / 1000);
		}
		uid_len = mailbox_pop_uid_make(span_make(entry->d_name, name_len), uid);
		if (!names_add(drop, path, strlen(path), &m->name_offset) ||
		    !names_add(drop, uid, uid_len, &m->uid_offset)) {
			closedir(d);
			return error_set(err, ERROR_IO, "maildrop: out of memory");
		}
		drop->count++;
	}
	if (errno != 0) {
		int saved = errno;

		closedir(d);
		return error_set(err, ERROR_IO, "maildrop: read %s/: %s", sub, strerror(saved));
	}
	closedir(d);
	return 0;
}

static int by_arrival(const void *a, const void *b, void *ctx)
{
	const struct mailbox_pop_message *x = a, *y = b;
	const char *names_of = ctx;

	if (x->arrival_s != y->arrival_s)
		return x->arrival_s < y->arrival_s ? -1 : 1;
	if (x->arrival_us != y->arrival_us)
		return x->arrival_us < y->arrival_us ? -1 : 1;
	/* Past "new/" or "cur/": the same message moved keeps its order. */
	return strcmp(names_of + x->name_offset + 4, names_of + y->name_offset + 4);
}

/*
 * A move from new/ to cur/ cut short (link made, unlink not yet) shows one
 * message under two names with the same base. Its copies have the same
 * arrival key, so they sit in one run after sorting: keep the cur/ one.
 */
static void drop_duplicates(struct mailbox_pop_drop *drop)
{
	size_t out = 0;

	/* is_deleted is false everywhere yet: it marks the copies to drop. */
	for (size_t i = 0; i < drop->count; i++) {
		struct mailbox_pop_message *m = &drop->messages[i];

		for (size_t j = i + 1; j < drop->count; j++) {
			struct mailbox_pop_message *o = &drop->messages[j];

			if (o->arrival_s != m->arrival_s || o->arrival_us != m->arrival_us)
				break;
			if (m->is_in_cur == o->is_in_cur ||
			    strcmp(drop->names + m->uid_offset, drop->names + o->uid_offset) != 0)
				continue;
			(m->is_in_cur ? o : m)->is_deleted = true;
		}
	}
	for (size_t i = 0; i < drop->count; i++) {
		if (drop->messages[i].is_deleted)
			continue;
		drop->messages[out++] = drop->messages[i];
	}
	drop->count = out;
}

enum mailbox_pop_open_result mailbox_pop_open(const char *maildir_path,
					      struct mailbox_pop_drop **drop_out, struct error *err)
{
	struct mailbox_pop_drop *drop = calloc(1, sizeof(*drop));

	*drop_out = NULL;
	if (drop == NULL) {
		error_set(err, ERROR_IO, "maildrop: out of memory");
		return MAILBOX_POP_FAILED;
	}
	drop->lock_fd = -1;
	if ((drop->dir_fd = maildir_open(maildir_path, err)) < 0)
		goto failed;
	drop->lock_fd = openat(drop->dir_fd, MAILBOX_POP_LOCK_NAME,
			       O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (drop->lock_fd < 0) {
		error_set(err, ERROR_IO, "maildrop: open %s/%s: %s", maildir_path,
			  MAILBOX_POP_LOCK_NAME, strerror(errno));
		goto failed;
	}
	if (flock(drop->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK) {
			mailbox_pop_close(drop);
			return MAILBOX_POP_IN_USE;
		}
		error_set(err, ERROR_IO, "maildrop: lock %s: %s", maildir_path, strerror(errno));
		goto failed;
	}
	if (list_dir(drop, "new", err) < 0 || list_dir(drop, "cur", err) < 0)
		goto failed;
	if (drop->count > 0) {
		qsort_r(drop->messages, drop->count, sizeof(*drop->messages), by_arrival,
			drop->names);
		drop_duplicates(drop);
	}
	for (size_t i = 0; i < drop->count; i++)
		drop->total_size += drop->messages[i].size;
	*drop_out = drop;
	return MAILBOX_POP_OPENED;

failed:
	mailbox_pop_close(drop);
	return MAILBOX_POP_FAILED;
}

const char *mailbox_pop_name(const struct mailbox_pop_drop *drop, size_t index)
{
	return drop->names + drop->messages[index].name_offset;
}

const char *mailbox_pop_uid(const struct mailbox_pop_drop *drop, size_t index)
{
	return drop->names + drop->messages[index].uid_offset;
}

int mailbox_pop_message_open(const struct mailbox_pop_drop *drop, size_t index, int *fd_out,
			     struct error *err)
{
	const char *name = mailbox_pop_name(drop, index);
	int fd = openat(drop->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return error_set(err, errno == ENOENT ? ERROR_NOT_FOUND : ERROR_IO,
				 "maildrop: open %s: %s", name, strerror(errno));
	*fd_out = fd;
	return 0;
}

int mailbox_pop_update(struct mailbox_pop_drop *drop, struct mailbox_pop_update_result *result_out,
		       struct error *err)
{
	struct mailbox_pop_update_result r = { 0 };
	bool is_new_changed = false, is_cur_changed = false;
	int failed_errno = 0;

	for (size_t i = 0; i < drop->count; i++) {
		struct mailbox_pop_message *m = &drop->messages[i];
		const char *name = mailbox_pop_name(drop, i);

		if (m->is_deleted) {
			if (unlinkat(drop->dir_fd, name, 0) == 0 || errno == ENOENT) {
				r.deleted++;
				*(m->is_in_cur ? &is_cur_changed : &is_new_changed) = true;
			} else {
				r.not_deleted++;
				failed_errno = errno;
			}
		} else if (m->is_retrieved) {
			char to[MAILBOX_MAILDIR_NAME_MAX + 16];

			if (!mailbox_pop_seen_name(name + 4, to + 4, sizeof(to) - 4))
				continue;
			memcpy(to, "cur/", 4);
			if (strcmp(to, name) == 0)
				continue; /* seen already */
			if (renameat(drop->dir_fd, name, drop->dir_fd, to) == 0) {
				r.marked_seen++;
				is_cur_changed = true;
				if (!m->is_in_cur)
					is_new_changed = true;
			}
		}
	}
	*result_out = r;
	/* RFC 1939 6: the removal is what the client's +OK reports. */
	if ((is_new_changed && fsync_dir_at(drop->dir_fd, "new") != 0) ||
	    (is_cur_changed && fsync_dir_at(drop->dir_fd, "cur") != 0))
		return error_set(err, ERROR_IO, "maildrop: fsync: %s", strerror(errno));
	if (r.not_deleted > 0)
		return error_set(err, ERROR_IO, "maildrop: %zu message(s) not removed: %s",
				 r.not_deleted, strerror(failed_errno));
	return 0;
}

void mailbox_pop_close(struct mailbox_pop_drop *drop)
{
	if (drop == NULL)
		return;
	if (drop->lock_fd >= 0)
		close(drop->lock_fd);
	if (drop->dir_fd >= 0)
		close(drop->dir_fd);
	free(drop->messages);
	free(drop->names);
	free(drop);
}
