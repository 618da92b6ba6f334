/*
 * spool: queue IDs, and every file operation on spool_dir. All names are
 * made from validated queue IDs and opened relative to directory
 * descriptors held since open, so nothing here ever builds a path from
 * client bytes, and a directory fsync always syncs the directory the rename
 * went into. The order of the steps in commit, move and finish is the
 * durability argument of docs/spool.md; change one only together with it.
 */
#include "queue/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/groupsync.h"
#include "core/log.h"

/* --- queue IDs ------------------------------------------------------------ */

static const char id_alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";

#define ID_TIME_BITS (QUEUE_ID_TIME_LEN * 5)

void queue_id_generate(struct queue_id_generator *gen, uint64_t now_us, unsigned random_bits,
		       char out[QUEUE_ID_MAX + 1])
{
	uint64_t last = atomic_load(&gen->last_us);
	uint64_t next;

	/* Never below the last value: a clock stepped back, or many IDs in one
	 * microsecond, still give strictly increasing IDs. */
	do {
		next = now_us > last ? now_us : last + 1;
	} while (!atomic_compare_exchange_weak(&gen->last_us, &last, next));

	next &= (UINT64_C(1) << ID_TIME_BITS) - 1;
	for (int i = QUEUE_ID_TIME_LEN - 1; i >= 0; i--) {
		out[i] = id_alphabet[next & 31];
		next >>= 5;
	}
	out[QUEUE_ID_TIME_LEN] = id_alphabet[(random_bits >> 5) & 31];
	out[QUEUE_ID_TIME_LEN + 1] = id_alphabet[random_bits & 31];
	out[QUEUE_ID_MAX] = '\0';
}

int queue_id_new(char out[QUEUE_ID_MAX + 1])
{
	static struct queue_id_generator process_generator;
	struct timespec now;
	uint16_t random_bits;

	if (clock_gettime(CLOCK_REALTIME, &now) != 0)
		return -1;
	/* Two bytes never block once the pool is ready; before that (early boot)
	 * any value will do: begin still refuses an ID in use. */
	if (getrandom(&random_bits, sizeof(random_bits), GRND_NONBLOCK) != sizeof(random_bits))
		random_bits = (uint16_t) (getpid() ^ now.tv_nsec);
	queue_id_generate(&process_generator,
			  (uint64_t) now.tv_sec * 1000000u + (uint64_t) now.tv_nsec / 1000u,
			  random_bits, out);
	return 0;
}

bool queue_id_is_valid(struct span s)
{
	if (s.len != QUEUE_ID_MAX)
		return false;
	for (size_t i = 0; i < s.len; i++)
		if (s.ptr[i] == '\0' || memchr(id_alphabet, s.ptr[i], 32) == NULL)
			return false;
	return true;
}

/* --- the spool ------------------------------------------------------------- */

#define PLACE_COUNT 3
static const char *const place_dirs[PLACE_COUNT] = {
	[QUEUE_PLACE_ACTIVE] = "queue",
	[QUEUE_PLACE_DEFERRED] = "deferred",
	[QUEUE_PLACE_HOLD] = "hold",
};

/* "ID.state" and a NUL. */
#define FILE_NAME_CAP (QUEUE_ID_MAX + 8)
/* The largest ID.env or ID.state: every line of the most recipients at the
 * longest. */
#define SPOOL_TEXT_MAX ((size_t) (QUEUE_ENVELOPE_RECIPIENTS_MAX * 4 + 16) * QUEUE_ENVELOPE_LINE_MAX)

struct queue_spool {
	struct groupsync *sync; /* shared by every commit */
	dev_t device;
	int root_fd;
	int tmp_fd;
	int place_fds[PLACE_COUNT];
};

struct queue_message {
	struct queue_spool *spool;
	int fd;
	uint64_t size;
	size_t buffered;
	bool has_failed;
	struct error failure;
	char id[QUEUE_ID_MAX + 1];
	char buffer[QUEUE_MESSAGE_BUFFER_BYTES];
};

enum spool_file { SPOOL_FILE_MSG, SPOOL_FILE_ENV, SPOOL_FILE_STATE };
static const char *const file_extensions[] = {
	[SPOOL_FILE_MSG] = "msg",
	[SPOOL_FILE_ENV] = "env",
	[SPOOL_FILE_STATE] = "state",
};

static const char *file_name(char out[FILE_NAME_CAP], const char *id, enum spool_file file)
{
	snprintf(out, FILE_NAME_CAP, "%s.%s", id, file_extensions[file]);
	return out;
}

/* A full disk or quota is the client's cue to try later (RFC 5321 4.2.5 452). */
static enum error_kind kind_for(int errnum)
{
	return (errnum == ENOSPC || errnum == EDQUOT || errnum == EFBIG) ? ERROR_TEMPORARY
									 : ERROR_IO;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

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

/* rename that refuses to replace an existing name (a second message with one
 * ID must never overwrite the first). */
static int rename_noreplace(int from_fd, const char *from, int to_fd, const char *to)
{
	struct stat st;

	if (renameat2(from_fd, from, to_fd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* A file system without RENAME_NOREPLACE: check, then rename. Nothing
	 * else creates these names while the caller holds the message. */
	if (fstatat(to_fd, to, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		errno = EEXIST;
		return -1;
	}
	return renameat(from_fd, from, to_fd, to);
}

static bool file_exists(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
}

static int dir_open_or_make(int parent_fd, const char *name, bool *made_out, struct error *err)
{
	int fd;

	if (mkdirat(parent_fd, name, 0700) == 0)
		*made_out = true;
	else if (errno != EEXIST)
		return error_set(err, kind_for(errno), "spool: mkdir %s: %s", name,
				 strerror(errno));
	fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return error_set(err, ERROR_IO, "spool: open %s: %s", name, strerror(errno));
	return fd;
}

void queue_spool_free(struct queue_spool *spool)
{
	if (spool == NULL)
		return;
	groupsync_free(spool->sync);
	if (spool->root_fd >= 0)
		close(spool->root_fd);
	if (spool->tmp_fd >= 0)
		close(spool->tmp_fd);
	for (int i = 0; i < PLACE_COUNT; i++)
		if (spool->place_fds[i] >= 0)
			close(spool->place_fds[i]);
	free(spool);
}

/* After mkdir of path, its name in the parent must reach the disk too. */
static int parent_fsync(const char *path, struct error *err)
{
	char copy[PATH_MAX];
	int fd;

	if (!span_copy_cstr(span_from_cstr(path), copy, sizeof(copy)))
		return error_set(err, ERROR_IO, "spool: path too long: %s", path);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		error_set(err, ERROR_IO, "spool: fsync parent of %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int queue_spool_open(const char *spool_dir, struct queue_spool **spool_out, struct error *err)
{
	struct queue_spool *spool = calloc(1, sizeof(*spool));
	bool is_made = false;
	struct stat root_st, st;

	if (spool == NULL)
		return error_set(err, ERROR_SOFTWARE, "spool: out of memory");
	spool->tmp_fd = -1;
	for (int i = 0; i < PLACE_COUNT; i++)
		spool->place_fds[i] = -1;
	spool->root_fd = -1;
	if (mkdir(spool_dir, 0700) == 0) {
		if (parent_fsync(spool_dir, err) < 0)
			goto fail;
	} else if (errno != EEXIST) {
		error_set(err, kind_for(errno), "spool: mkdir %s: %s", spool_dir, strerror(errno));
		goto fail;
	}
	spool->root_fd = open(spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (spool->root_fd < 0) {
		error_set(err, ERROR_IO, "spool: open %s: %s", spool_dir, strerror(errno));
		goto fail;
	}
	if ((spool->tmp_fd = dir_open_or_make(spool->root_fd, "tmp", &is_made, err)) < 0)
		goto fail;
	for (int i = 0; i < PLACE_COUNT; i++)
		if ((spool->place_fds[i] =
			     dir_open_or_make(spool->root_fd, place_dirs[i], &is_made, err)) < 0)
			goto fail;
	if (is_made && fsync(spool->root_fd) != 0) {
		error_set(err, ERROR_IO, "spool: fsync %s: %s", spool_dir, strerror(errno));
		goto fail;
	}
	/* rename(2) cannot cross file systems: find out now, not at the first commit. */
	if (fstat(spool->root_fd, &root_st) != 0)
		goto fail_stat;
	for (int i = 0; i < PLACE_COUNT + 1; i++) {
		if (fstat(i < PLACE_COUNT ? spool->place_fds[i] : spool->tmp_fd, &st) != 0)
			goto fail_stat;
		if (st.st_dev != root_st.st_dev) {
			error_set(err, ERROR_CONFIG,
				  "spool: %s: tmp, queue, deferred and hold must be on one file "
				  "system",
				  spool_dir);
			goto fail;
		}
	}
	spool->device = root_st.st_dev;
	if (groupsync_new(spool->root_fd, NULL, NULL, &spool->sync, err) < 0)
		goto fail;
	*spool_out = spool;
	return 0;

fail_stat:
	error_set(err, ERROR_IO, "spool: stat in %s: %s", spool_dir, strerror(errno));
fail:
	queue_spool_free(spool);
	return -1;
}

/* Whether a message with this ID is in queue/, deferred/ or hold/ (its
 * ID.env, the commit marker, says so). IDs of one process strictly increase,
 * so this only matters across a restart with the clock stepped back; an
 * ID.msg or ID.state left without its envelope at that moment would make the
 * commit's rename fail (a 452), never replace a file. */
static bool id_in_use(struct queue_spool *spool, const char *id)
{
	char name[FILE_NAME_CAP];

	for (int p = 0; p < PLACE_COUNT; p++)
		if (file_exists(spool->place_fds[p], file_name(name, id, SPOOL_FILE_ENV)))
			return true;
	return false;
}

#define BEGIN_TRIES 8

int queue_spool_begin(struct queue_spool *spool, struct queue_message **message_out,
		      struct error *err)
{
	struct queue_message *m = malloc(sizeof(*m));
	char name[FILE_NAME_CAP];

	if (m == NULL)
		return error_set(err, ERROR_TEMPORARY, "spool: out of memory");
	for (int attempt = 0; attempt < BEGIN_TRIES; attempt++) {
		if (queue_id_new(m->id) < 0) {
			free(m);
			return error_set(err, ERROR_IO, "spool: cannot read the clock: %s",
					 strerror(errno));
		}
		m->fd = openat(spool->tmp_fd, file_name(name, m->id, SPOOL_FILE_MSG),
			       O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (m->fd < 0) {
			if (errno == EEXIST)
				continue;
			error_set(err, kind_for(errno), "spool: create tmp/%s: %s", name,
				  strerror(errno));
			free(m);
			return -1;
		}
		if (id_in_use(spool, m->id)) {
			unlinkat(spool->tmp_fd, name, 0);
			close(m->fd);
			continue;
		}
		m->spool = spool;
		m->size = 0;
		m->buffered = 0;
		m->has_failed = false;
		error_clear(&m->failure);
		*message_out = m;
		return 0;
	}
	free(m);
	return error_set(err, ERROR_TEMPORARY, "spool: no unused queue ID after %d tries",
			 BEGIN_TRIES);
}

static int message_fail(struct queue_message *m, int errnum, const char *what, struct error *err)
{
	m->has_failed = true;
	error_set(&m->failure, kind_for(errnum), "spool: %s tmp/%s.msg: %s", what, m->id,
		  strerror(errnum));
	if (err != NULL)
		*err = m->failure;
	return -1;
}

static int message_flush(struct queue_message *m, struct error *err)
{
	if (m->buffered == 0)
		return 0;
	if (write_all(m->fd, m->buffer, m->buffered) < 0)
		return message_fail(m, errno, "write", err);
	m->buffered = 0;
	return 0;
}

int queue_message_append(struct queue_message *m, const void *data, size_t len, struct error *err)
{
	if (m->has_failed) {
		if (err != NULL)
			*err = m->failure;
		return -1;
	}
	if (len > sizeof(m->buffer) - m->buffered && message_flush(m, err) < 0)
		return -1;
	if (len >= sizeof(m->buffer)) {
		if (write_all(m->fd, data, len) < 0)
			return message_fail(m, errno, "write", err);
	} else {
		memcpy(m->buffer + m->buffered, data, len);
		m->buffered += len;
	}
	m->size += len;
	return 0;
}

const char *queue_message_id(const struct queue_message *m)
{
	return m->id;
}

uint64_t queue_message_size(const struct queue_message *m)
{
	return m->size;
}

void queue_spool_abort(struct queue_message *m)
{
	char name[FILE_NAME_CAP];

	if (m == NULL)
		return;
	close(m->fd);
	unlinkat(m->spool->tmp_fd, file_name(name, m->id, SPOOL_FILE_MSG), 0);
	free(m);
}

int queue_message_flush(struct queue_message *m, struct error *err)
{
	if (m->has_failed) {
		if (err != NULL)
			*err = m->failure;
		return -1;
	}
	return message_flush(m, err);
}

int queue_message_fd(const struct queue_message *m)
{
	return m->fd;
}

struct queue_spool *queue_message_spool(const struct queue_message *m)
{
	return m->spool;
}

int queue_message_place(struct queue_message *m, int dirfd, const char *name, struct error *err)
{
	char msg_name[FILE_NAME_CAP];

	if (m->has_failed) {
		if (err != NULL)
			*err = m->failure;
		return -1;
	}
	file_name(msg_name, m->id, SPOOL_FILE_MSG);
	if (rename_noreplace(m->spool->tmp_fd, msg_name, dirfd, name) != 0) {
		int saved = errno;

		return error_set(err, saved == EXDEV ? ERROR_UNAVAILABLE : kind_for(saved),
				 "spool: rename tmp/%s to %s: %s", msg_name, name, strerror(saved));
	}
	close(m->fd);
	free(m);
	return 0;
}

int queue_spool_sync(struct queue_spool *spool, struct error *err)
{
	return groupsync_wait(spool->sync, err);
}

unsigned long long queue_spool_device(const struct queue_spool *spool)
{
	return (unsigned long long) spool->device;
}

void queue_spool_sync_stats(struct queue_spool *spool, uint64_t *waits_out, uint64_t *syncs_out)
{
	struct groupsync_stats stats;

	groupsync_stats(spool->sync, &stats);
	*waits_out = stats.waits;
	*syncs_out = stats.syncs;
}

/* Write a whole new file in dirfd, and fsync it unless the caller waits for
 * a sync of the file system anyway; on failure nothing is left. */
static int file_write(int dirfd, const char *name, const char *text, size_t len, int flags,
		      bool is_synced, struct error *err)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | flags, 0600);
	int saved;

	if (fd < 0)
		return error_set(err, kind_for(errno), "spool: create tmp/%s: %s", name,
				 strerror(errno));
	if (write_all(fd, text, len) < 0 || (is_synced && fsync(fd) != 0)) {
		saved = errno;
		close(fd);
		unlinkat(dirfd, name, 0);
		return error_set(err, kind_for(saved), "spool: write tmp/%s: %s", name,
				 strerror(saved));
	}
	if (close(fd) != 0) {
		saved = errno;
		unlinkat(dirfd, name, 0);
		return error_set(err, kind_for(saved), "spool: close tmp/%s: %s", name,
				 strerror(saved));
	}
	return 0;
}

int queue_spool_commit(struct queue_message *m, const struct queue_envelope *env, struct error *err)
{
	struct queue_spool *spool = m->spool;
	int queue_fd = spool->place_fds[QUEUE_PLACE_ACTIVE];
	char msg_name[FILE_NAME_CAP], env_name[FILE_NAME_CAP];
	bool is_msg_renamed = false, is_env_renamed = false;
	struct error local;
	char *text = NULL;
	size_t text_len;
	int saved;

	file_name(msg_name, m->id, SPOOL_FILE_MSG);
	file_name(env_name, m->id, SPOOL_FILE_ENV);

	/* 1. The message bytes and the envelope, written whole, reach the disk
	 * while both are still under tmp/ (one sync for both, shared with
	 * every commit running meanwhile). */
	if (m->has_failed) {
		local = m->failure;
		goto fail;
	}
	if (message_flush(m, &local) < 0)
		goto fail;
	if (queue_envelope_serialize(env, &text, &text_len, &local) < 0)
		goto fail;
	if (file_write(spool->tmp_fd, env_name, text, text_len, O_EXCL, false, &local) < 0)
		goto fail;
	if (groupsync_wait(spool->sync, &local) < 0)
		goto fail;
	/* 2. (Steps 2 to 4 are renames: nothing new to write.) */
	/* 3. The message into queue/; without its envelope it is not yet a
	 * message there, and recovery removes it. */
	if (rename_noreplace(spool->tmp_fd, msg_name, queue_fd, msg_name) != 0) {
		saved = errno;
		error_set(&local, kind_for(saved), "spool: rename %s into queue/: %s", msg_name,
			  strerror(saved));
		goto fail;
	}
	is_msg_renamed = true;
	/* 4. The commit marker. */
	if (rename_noreplace(spool->tmp_fd, env_name, queue_fd, env_name) != 0) {
		saved = errno;
		error_set(&local, kind_for(saved), "spool: rename %s into queue/: %s", env_name,
			  strerror(saved));
		goto fail;
	}
	is_env_renamed = true;
	/* 5. Both names durable: from here on the message is acknowledged. */
	if (groupsync_wait(spool->sync, &local) < 0)
		goto fail;
	free(text);
	close(m->fd);
	free(m);
	return 0;

fail:
	/* Undo in reverse order: the envelope (the commit marker) first. */
	if (is_env_renamed)
		unlinkat(queue_fd, env_name, 0);
	else
		unlinkat(spool->tmp_fd, env_name, 0);
	if (is_msg_renamed)
		unlinkat(queue_fd, msg_name, 0);
	else
		unlinkat(spool->tmp_fd, msg_name, 0);
	if (is_msg_renamed)
		(void) fsync(queue_fd);
	free(text);
	/* The caller still owns the message and aborts it; a second commit
	 * fails the same way. */
	m->has_failed = true;
	error_set(&m->failure, ERROR_TEMPORARY, "%s", local.message);
	return error_set(err, ERROR_TEMPORARY, "%s", local.message);
}

/* --- finding messages ----------------------------------------------------- */

static int id_check(const char *id, struct error *err)
{
	if (id == NULL || !queue_id_is_valid(span_from_cstr(id)))
		return error_set(err, ERROR_DATA, "spool: not a queue ID");
	return 0;
}

int queue_spool_locate(struct queue_spool *spool, const char *id, enum queue_place *place_out,
		       struct error *err)
{
	char name[FILE_NAME_CAP];
	struct stat st;

	if (id_check(id, err) < 0)
		return -1;
	file_name(name, id, SPOOL_FILE_ENV);
	for (int p = 0; p < PLACE_COUNT; p++) {
		if (fstatat(spool->place_fds[p], name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			*place_out = (enum queue_place) p;
			return 0;
		}
		if (errno != ENOENT)
			return error_set(err, ERROR_IO, "spool: stat %s/%s: %s", place_dirs[p],
					 name, strerror(errno));
	}
	return error_set(err, ERROR_NOT_FOUND, "spool: no message %s", id);
}

/* Whole file of at most SPOOL_TEXT_MAX bytes, into a heap buffer. */
static int file_read_text(int dirfd, const char *dir, const char *name, char **text_out,
			  size_t *len_out, struct error *err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	size_t len = 0, cap = 4096;
	char *text = NULL;

	if (fd < 0)
		return error_set(err, errno == ENOENT ? ERROR_NOT_FOUND : ERROR_IO,
				 "spool: open %s/%s: %s", dir, name, strerror(errno));
	for (;;) {
		ssize_t n;

		if (len == cap || text == NULL) {
			char *grown;

			if (text != NULL)
				cap *= 2;
			if (cap > SPOOL_TEXT_MAX + 1)
				cap = SPOOL_TEXT_MAX + 1;
			grown = realloc(text, cap);
			if (grown == NULL) {
				error_set(err, ERROR_SOFTWARE, "spool: out of memory");
				goto fail;
			}
			text = grown;
		}
		n = read(fd, text + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			error_set(err, ERROR_IO, "spool: read %s/%s: %s", dir, name,
				  strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t) n;
		if (len > SPOOL_TEXT_MAX) {
			error_set(err, ERROR_DATA, "spool: %s/%s is too large", dir, name);
			goto fail;
		}
	}
	close(fd);
	*text_out = text;
	*len_out = len;
	return 0;
fail:
	close(fd);
	free(text);
	return -1;
}

int queue_spool_envelope_load(struct queue_spool *spool, const char *id,
			      struct queue_envelope *env_out, struct error *err)
{
	enum queue_place place;
	char name[FILE_NAME_CAP];
	struct error parse_err;
	char *text;
	size_t len;
	int rc;

	queue_envelope_init(env_out);
	if (queue_spool_locate(spool, id, &place, err) < 0)
		return -1;
	if (file_read_text(spool->place_fds[place], place_dirs[place],
			   file_name(name, id, SPOOL_FILE_ENV), &text, &len, err) < 0)
		return -1;
	rc = queue_envelope_parse(span_make(text, len), env_out, &parse_err);
	free(text);
	if (rc < 0)
		return error_set(err, parse_err.kind, "spool: %s/%s: %s", place_dirs[place], name,
				 parse_err.message);
	return 0;
}

int queue_spool_message_open(struct queue_spool *spool, const char *id, int *fd_out,
			     struct error *err)
{
	enum queue_place place;
	char name[FILE_NAME_CAP];
	int fd;

	if (queue_spool_locate(spool, id, &place, err) < 0)
		return -1;
	fd = openat(spool->place_fds[place], file_name(name, id, SPOOL_FILE_MSG),
		    O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return error_set(err, ERROR_IO, "spool: open %s/%s: %s", place_dirs[place], name,
				 strerror(errno));
	*fd_out = fd;
	return 0;
}

/* --- delivery state ------------------------------------------------------- */

int queue_spool_state_load(struct queue_spool *spool, const char *id, size_t recipient_count,
			   struct queue_state *state_out, struct error *err)
{
	enum queue_place place;
	char name[FILE_NAME_CAP];
	struct error local;
	char *text;
	size_t len;
	int rc;

	memset(state_out, 0, sizeof(*state_out));
	if (queue_spool_locate(spool, id, &place, err) < 0)
		return -1;
	if (file_read_text(spool->place_fds[place], place_dirs[place],
			   file_name(name, id, SPOOL_FILE_STATE), &text, &len, &local) < 0) {
		if (local.kind == ERROR_NOT_FOUND)
			return queue_state_init(state_out, recipient_count, err);
		if (err != NULL)
			*err = local;
		return -1;
	}
	rc = queue_state_parse(span_make(text, len), state_out, &local);
	free(text);
	if (rc < 0)
		return error_set(err, local.kind, "spool: %s/%s: %s", place_dirs[place], name,
				 local.message);
	if (state_out->recipient_count != recipient_count)
		return error_set(err, ERROR_DATA, "spool: %s/%s: %zu recipients, envelope has %zu",
				 place_dirs[place], name, state_out->recipient_count,
				 recipient_count);
	return 0;
}

int queue_spool_state_save(struct queue_spool *spool, const char *id,
			   const struct queue_state *state, struct error *err)
{
	enum queue_place place;
	char name[FILE_NAME_CAP];
	char *text;
	size_t len;
	int place_fd, rc;

	if (queue_spool_locate(spool, id, &place, err) < 0)
		return -1;
	place_fd = spool->place_fds[place];
	if (queue_state_serialize(state, &text, &len, err) < 0)
		return -1;
	file_name(name, id, SPOOL_FILE_STATE);
	/* O_TRUNC: a save cut short earlier may have left tmp/ID.state behind. */
	rc = file_write(spool->tmp_fd, name, text, len, O_TRUNC, false, err);
	free(text);
	if (rc < 0)
		return -1;
	/* The new state's bytes are durable before its name replaces the old. */
	if (groupsync_wait(spool->sync, err) < 0) {
		unlinkat(spool->tmp_fd, name, 0);
		return -1;
	}
	if (renameat(spool->tmp_fd, name, place_fd, name) != 0) {
		int saved = errno;

		unlinkat(spool->tmp_fd, name, 0);
		return error_set(err, kind_for(saved), "spool: rename %s into %s/: %s", name,
				 place_dirs[place], strerror(saved));
	}
	return groupsync_wait(spool->sync, err);
}

/* --- moving and finishing ------------------------------------------------- */

int queue_spool_move(struct queue_spool *spool, const char *id, enum queue_place to,
		     struct error *err)
{
	static const enum spool_file order[] = { SPOOL_FILE_MSG, SPOOL_FILE_STATE, SPOOL_FILE_ENV };
	enum queue_place from;
	int from_fd, to_fd;
	bool is_moved[ARRAY_LEN(order)] = { false };
	char name[FILE_NAME_CAP];
	size_t i;
	int saved;

	if ((unsigned) to >= PLACE_COUNT)
		return error_set(err, ERROR_SOFTWARE, "spool: bad place");
	if (queue_spool_locate(spool, id, &from, err) < 0)
		return -1;
	if (from == to)
		return 0;
	from_fd = spool->place_fds[from];
	to_fd = spool->place_fds[to];
	/* The envelope last: until it moves, the message is still where it was
	 * (recovery brings the others back), after it, where it is going. */
	for (i = 0; i < ARRAY_LEN(order); i++) {
		file_name(name, id, order[i]);
		if (rename_noreplace(from_fd, name, to_fd, name) == 0) {
			is_moved[i] = true;
			continue;
		}
		if (errno == ENOENT && order[i] == SPOOL_FILE_STATE)
			continue;
		saved = errno;
		error_set(err, kind_for(saved), "spool: move %s from %s/ to %s/: %s", name,
			  place_dirs[from], place_dirs[to], strerror(saved));
		while (i-- > 0)
			if (is_moved[i])
				renameat(to_fd, file_name(name, id, order[i]), from_fd, name);
		return -1;
	}
	/* Both directories at once. */
	return groupsync_wait(spool->sync, err);
}

int queue_spool_finish(struct queue_spool *spool, const char *id, struct error *err)
{
	enum queue_place place;
	char name[FILE_NAME_CAP];
	int place_fd;

	if (queue_spool_locate(spool, id, &place, err) < 0)
		return -1;
	place_fd = spool->place_fds[place];
	if (unlinkat(place_fd, file_name(name, id, SPOOL_FILE_ENV), 0) != 0)
		return error_set(err, ERROR_IO, "spool: unlink %s/%s: %s", place_dirs[place], name,
				 strerror(errno));
	/* Until the envelope's removal is durable, the state must stay: without
	 * it, a message brought back by a power loss would go to everyone again. */
	if (groupsync_wait(spool->sync, err) < 0)
		return -1;
	/* No envelope: whatever of these survives a crash, recovery removes. */
	if (unlinkat(place_fd, file_name(name, id, SPOOL_FILE_MSG), 0) != 0 && errno != ENOENT)
		return error_set(err, ERROR_IO, "spool: unlink %s/%s: %s", place_dirs[place], name,
				 strerror(errno));
	if (unlinkat(place_fd, file_name(name, id, SPOOL_FILE_STATE), 0) != 0 && errno != ENOENT)
		return error_set(err, ERROR_IO, "spool: unlink %s/%s: %s", place_dirs[place], name,
				 strerror(errno));
	return 0;
}

/* --- scanning and recovery ------------------------------------------------ */

/* One spool file found in queue/, deferred/ or hold/. */
struct found_file {
	char id[QUEUE_ID_MAX + 1];
	unsigned char place;
	unsigned char file;
};

struct found_list {
	struct found_file *files;
	size_t count;
	size_t cap;
};

static int found_compare(const void *a, const void *b)
{
	const struct found_file *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	if (c != 0)
		return c;
	if (x->place != y->place)
		return x->place - y->place;
	return x->file - y->file;
}

/* "ID.ext" with a valid ID and a known extension. */
static bool name_parse(const char *name, struct found_file *out)
{
	struct span s = span_from_cstr(name), id, ext;

	if (!span_split_first(s, '.', &id, &ext) || !queue_id_is_valid(id))
		return false;
	for (size_t f = 0; f < ARRAY_LEN(file_extensions); f++) {
		if (span_eq_cstr(ext, file_extensions[f])) {
			memcpy(out->id, id.ptr, QUEUE_ID_MAX);
			out->id[QUEUE_ID_MAX] = '\0';
			out->file = (unsigned char) f;
			return true;
		}
	}
	return false;
}

typedef int dir_entry_fn(void *ctx, const char *name, struct error *err);

/* Every name in dirfd but "." and "..". A fresh open of ".": descriptors made
 * by dup() share one offset, and this directory was read before. */
static int dir_scan(int dirfd, const char *dir, dir_entry_fn *fn, void *ctx, struct error *err)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *entry;
	DIR *d;

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		error_set(err, ERROR_IO, "spool: open %s/: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	for (;;) {
		errno = 0;
		entry = readdir(d);
		if (entry == NULL)
			break;
		if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
			continue;
		if (fn(ctx, entry->d_name, err) < 0) {
			closedir(d);
			return -1;
		}
	}
	if (errno != 0) {
		error_set(err, ERROR_IO, "spool: read %s/: %s", dir, strerror(errno));
		closedir(d);
		return -1;
	}
	closedir(d);
	return 0;
}

struct collect_ctx {
	struct found_list *list;
	unsigned char place;
	bool is_recovering; /* warn about unknown names */
};

static int collect_one(void *opaque, const char *name, struct error *err)
{
	struct collect_ctx *ctx = opaque;
	struct found_list *list = ctx->list;
	struct found_file found;

	if (!name_parse(name, &found)) {
		if (ctx->is_recovering) {
			char escaped[LOG_ESCAPED_CAP];

			log_warning("spool recover unknown_file=%s dir=%s left=yes",
				    log_escape(span_from_cstr(name), escaped),
				    place_dirs[ctx->place]);
		}
		return 0;
	}
	found.place = ctx->place;
	if (list->count == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 256;
		struct found_file *grown = realloc(list->files, cap * sizeof(*grown));

		if (grown == NULL)
			return error_set(err, ERROR_SOFTWARE, "spool: out of memory");
		list->files = grown;
		list->cap = cap;
	}
	list->files[list->count++] = found;
	return 0;
}

static int collect(struct queue_spool *spool, bool is_recovering, struct found_list *list,
		   struct error *err)
{
	memset(list, 0, sizeof(*list));
	for (int p = 0; p < PLACE_COUNT; p++) {
		struct collect_ctx ctx = { list, (unsigned char) p, is_recovering };

		if (dir_scan(spool->place_fds[p], place_dirs[p], collect_one, &ctx, err) < 0) {
			free(list->files);
			return -1;
		}
	}
	if (list->count > 0)
		qsort(list->files, list->count, sizeof(*list->files), found_compare);
	return 0;
}

/* has[place] is a bit set of the files of one ID, by enum spool_file. */
#define HAS(f) (1u << (f))

struct id_group {
	const char *id;
	unsigned has[PLACE_COUNT];
	size_t next; /* index of the first file of the next ID */
};

static void group_next(const struct found_list *list, size_t start, struct id_group *g)
{
	size_t i = start;

	g->id = list->files[start].id;
	for (int p = 0; p < PLACE_COUNT; p++)
		g->has[p] = 0;
	while (i < list->count && strcmp(list->files[i].id, g->id) == 0) {
		g->has[list->files[i].place] |= HAS(list->files[i].file);
		i++;
	}
	g->next = i;
}

/* Where a message lives: the place of its envelope (queue/ if, by damage,
 * both have one); -1 without an envelope. */
static int group_home(const struct id_group *g)
{
	for (int p = 0; p < PLACE_COUNT; p++)
		if (g->has[p] & HAS(SPOOL_FILE_ENV))
			return p;
	return -1;
}

int queue_spool_list(struct queue_spool *spool, queue_id_fn *each, void *ctx, struct error *err)
{
	struct found_list list;
	struct id_group g;

	if (collect(spool, false, &list, err) < 0)
		return -1;
	for (size_t i = 0; i < list.count; i = g.next) {
		int home;

		group_next(&list, i, &g);
		home = group_home(&g);
		if (home >= 0 && (g.has[home] & HAS(SPOOL_FILE_MSG)) && each != NULL)
			each(ctx, g.id, (enum queue_place) home);
	}
	free(list.files);
	return 0;
}

static int tmp_remove_one(void *opaque, const char *name, struct error *err)
{
	struct queue_spool *spool = ((void **) opaque)[0];
	size_t *count = ((void **) opaque)[1];
	char escaped[LOG_ESCAPED_CAP];

	(void) err;
	if (unlinkat(spool->tmp_fd, name, 0) == 0)
		(*count)++;
	else
		log_warning("spool recover tmp_file=%s error=\"%s\" left=yes",
			    log_escape(span_from_cstr(name), escaped), strerror(errno));
	return 0;
}

struct recover_counts {
	size_t removed_uncommitted; /* files of IDs without an envelope */
	size_t removed_damaged;	    /* envelopes without a message */
	size_t moved;		    /* files brought to their envelope's place */
	bool is_changed[PLACE_COUNT];
};

static void recover_unlink(struct queue_spool *spool, const char *id, int place,
			   enum spool_file file, struct recover_counts *counts)
{
	char name[FILE_NAME_CAP];

	if (unlinkat(spool->place_fds[place], file_name(name, id, file), 0) == 0)
		counts->is_changed[place] = true;
	else
		log_warning("qid=%s spool recover unlink=%s/%s error=\"%s\"", id, place_dirs[place],
			    name, strerror(errno));
}

/* Bring one ID to a state a whole operation leaves; true when it is a
 * complete message at its home place. */
static bool recover_group(struct queue_spool *spool, struct id_group *g,
			  struct recover_counts *counts)
{
	int home = group_home(g);

	if (home < 0) {
		/* Never committed (a crash inside commit) or being finished: not a
		 * message. */
		for (int p = 0; p < PLACE_COUNT; p++)
			for (int f = 0; f < (int) ARRAY_LEN(file_extensions); f++)
				if (g->has[p] & HAS(f)) {
					recover_unlink(spool, g->id, p, f, counts);
					counts->removed_uncommitted++;
				}
		log_info("qid=%s spool recover removed=uncommitted", g->id);
		return false;
	}
	for (int other = 0; other < PLACE_COUNT; other++) {
		if (other == home)
			continue;
		if (g->has[other] & HAS(SPOOL_FILE_ENV)) {
			log_warning("qid=%s spool recover envelope_in=%s,%s kept=%s left=%s", g->id,
				    place_dirs[home], place_dirs[other], place_dirs[home],
				    place_dirs[other]);
			continue;
		}
		/* A move cut short: finish it, or undo it, by going to the envelope. */
		for (int f = SPOOL_FILE_MSG; f <= SPOOL_FILE_STATE; f++) {
			char name[FILE_NAME_CAP];

			if (f == SPOOL_FILE_ENV || !(g->has[other] & HAS(f)))
				continue;
			file_name(name, g->id, f);
			if (g->has[home] & HAS(f)) {
				log_warning("qid=%s spool recover duplicate=%s kept=%s", g->id,
					    name, place_dirs[home]);
				recover_unlink(spool, g->id, other, f, counts);
				continue;
			}
			if (renameat(spool->place_fds[other], name, spool->place_fds[home], name) !=
			    0) {
				log_warning("qid=%s spool recover move=%s to=%s error=\"%s\"",
					    g->id, name, place_dirs[home], strerror(errno));
				continue;
			}
			g->has[home] |= HAS(f);
			counts->is_changed[home] = counts->is_changed[other] = true;
			counts->moved++;
			log_info("qid=%s spool recover moved=%s to=%s", g->id, name,
				 place_dirs[home]);
		}
	}
	if (g->has[home] & HAS(SPOOL_FILE_MSG))
		return true;
	/* Nothing we do leaves an envelope without its message: damage. */
	log_warning("qid=%s spool recover removed=envelope reason=\"no message file\" dir=%s",
		    g->id, place_dirs[home]);
	recover_unlink(spool, g->id, home, SPOOL_FILE_ENV, counts);
	if (g->has[home] & HAS(SPOOL_FILE_STATE))
		recover_unlink(spool, g->id, home, SPOOL_FILE_STATE, counts);
	counts->removed_damaged++;
	return false;
}

int queue_spool_recover(struct queue_spool *spool, queue_id_fn *each, void *ctx, struct error *err)
{
	struct recover_counts counts = { 0 };
	size_t tmp_removed = 0, complete = 0;
	void *tmp_ctx[2] = { spool, &tmp_removed };
	struct found_list list;
	struct id_group g;
	struct found_file *homes = NULL;

	if (dir_scan(spool->tmp_fd, "tmp", tmp_remove_one, tmp_ctx, err) < 0)
		return -1;
	if (collect(spool, true, &list, err) < 0)
		return -1;
	if (list.count > 0) {
		homes = calloc(list.count, sizeof(*homes));
		if (homes == NULL) {
			free(list.files);
			return error_set(err, ERROR_SOFTWARE, "spool: out of memory");
		}
	}
	for (size_t i = 0; i < list.count; i = g.next) {
		group_next(&list, i, &g);
		if (recover_group(spool, &g, &counts)) {
			memcpy(homes[complete].id, g.id, sizeof(homes[complete].id));
			homes[complete].place = (unsigned char) group_home(&g);
			complete++;
		}
	}
	free(list.files);
	/* The repaired state reaches the disk before anyone acts on it. */
	for (int p = 0; p < PLACE_COUNT; p++) {
		if (counts.is_changed[p] && fsync(spool->place_fds[p]) != 0) {
			free(homes);
			return error_set(err, ERROR_IO, "spool: fsync %s/: %s", place_dirs[p],
					 strerror(errno));
		}
	}
	log_info("spool recover messages=%zu tmp_removed=%zu uncommitted_removed=%zu "
		 "damaged_removed=%zu moved=%zu",
		 complete, tmp_removed, counts.removed_uncommitted, counts.removed_damaged,
		 counts.moved);
	for (size_t i = 0; i < complete && each != NULL; i++)
		each(ctx, homes[i].id, (enum queue_place) homes[i].place);
	free(homes);
	return 0;
}
