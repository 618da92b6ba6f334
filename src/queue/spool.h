/*
 * spool: the on-disk queue. It owns spool_dir/{tmp,queue,deferred}/ and is
 * the only code that creates, renames or removes anything there. Its one
 * promise is RFC 5321 4.5.4's "a server MUST NOT lose a message it has
 * acknowledged": queue_spool_commit returns 0 only when the message and its
 * envelope are on disk and their names are in queue/ durably (a syncfs(2)
 * shared by concurrent commits, core/groupsync.h, after each step), so
 * a `250` sent after it survives kill -9 and power loss; and recovery after a
 * crash at any point neither loses an accepted message nor brings back one
 * that was not accepted. docs/spool.md walks through every step and every
 * crash between two steps.
 *
 * A message is ID.msg (the bytes to deliver, without Return-Path), ID.env
 * (queue/envelope.h; the commit marker, renamed into place last) and, once a
 * recipient has an outcome, ID.state (per-recipient delivery state, replaced
 * atomically). The three live together in queue/ (to deliver now) or in
 * deferred/ (waiting for a retry); tmp/ holds what is being written.
 *
 * Threads: every function but queue_spool_recover may run on any thread;
 * they block (write, fsync, rename) and belong on the worker pool, except
 * queue_message_append, which only writes to the page cache once its buffer
 * is full. The spool itself is read-only after open; two threads must not
 * work on the same message (the same ID) at once. Nothing here logs except
 * queue_spool_recover, which runs once at start-up before any other call.
 *
 * Errors: a full disk or quota (ENOSPC, EDQUOT, EFBIG) is ERROR_TEMPORARY so
 * SMTP answers "452 4.3.1"; commit reports every failure as ERROR_TEMPORARY;
 * other I/O failures are ERROR_IO, an unknown ID ERROR_NOT_FOUND, a damaged
 * envelope or state file ERROR_DATA.
 */
#ifndef POSTGATE_QUEUE_SPOOL_H
#define POSTGATE_QUEUE_SPOOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/span.h"
#include "queue/envelope.h"

/*
 * Queue IDs: 13 characters of the base32 alphabet of core/id.h (0-9 and
 * lower-case letters without i, l, o, u, which is in ASCII order):
 *   11 characters: microseconds since 1970-01-01T00:00:00Z (55 bits, good
 *                  until the year 3111), but always one more than the last
 *                  value this process used when the clock has not moved on
 *                  or went back (the per-process counter), so the IDs of one
 *                  process strictly increase and sort by time as strings;
 *    2 characters: 10 random bits, so two processes making an ID in the same
 *                  microsecond (or one restarted after the clock stepped
 *                  back) almost never agree.
 * queue_spool_begin also refuses an ID already present in the spool, so an ID
 * names one message in a spool for as long as it is there.
 */
#define QUEUE_ID_TIME_LEN   11
#define QUEUE_ID_RANDOM_LEN 2
#define QUEUE_ID_MAX	    (QUEUE_ID_TIME_LEN + QUEUE_ID_RANDOM_LEN)

struct queue_id_generator {
	_Atomic uint64_t last_us; /* the time value used last; 0 before the first */
};

/* The next ID for Unix time now_us (microseconds), thread-safe. random_bits
 * supplies the last two characters (only its low 10 bits are used). Pure
 * apart from gen: tests pass their own clock. */
void queue_id_generate(struct queue_id_generator *gen, uint64_t now_us, unsigned random_bits,
		       char out[QUEUE_ID_MAX + 1]);

/* The next ID from the process-wide generator, the real-time clock and the
 * kernel's random bits. Thread-safe. 0, or -1 when the clock cannot be read. */
int queue_id_new(char out[QUEUE_ID_MAX + 1]);

/* Whether s has the shape of a queue ID (length and alphabet): checked before
 * any ID becomes part of a file name. */
bool queue_id_is_valid(struct span s);

/* --- the spool ----------------------------------------------------------- */

struct queue_spool;
struct queue_message;

/* Where a committed message lives. */
enum queue_place {
	QUEUE_PLACE_ACTIVE = 0, /* queue/: deliver now */
	QUEUE_PLACE_DEFERRED,	/* deferred/: waiting for its next attempt */
	QUEUE_PLACE_HOLD,	/* hold/: set aside by the administrator, never tried */
};

/* Buffered bytes per message being received before a write(2). */
#define QUEUE_MESSAGE_BUFFER_BYTES 16384

/*
 * Open the spool at spool_dir, creating spool_dir and its tmp/, queue/,
 * deferred/ and hold/ (mode 0700) when missing, and making their names
 * durable. Keeps a descriptor of each directory open for the *at() calls and
 * directory fsyncs. The four must be on one file system (renames between
 * them).
 */
int queue_spool_open(const char *spool_dir, struct queue_spool **spool_out, struct error *err);
/* Close the directories. Messages still open must be finished first. NULL ok. */
void queue_spool_free(struct queue_spool *spool);

/*
 * Start receiving a message: choose a new ID and create tmp/ID.msg (O_EXCL,
 * 0600). The message belongs to the caller until a queue_spool_commit that
 * returns 0, or queue_spool_abort (also after a failed append or commit).
 */
int queue_spool_begin(struct queue_spool *spool, struct queue_message **message_out,
		      struct error *err);

/*
 * Append bytes of the message as they arrive (never needing it whole in
 * memory). Buffered; a failed write (ERROR_TEMPORARY for a full disk) is
 * also remembered, and commit then fails the same way, so the SMTP layer can
 * keep reading DATA to its end and answer once.
 */
int queue_message_append(struct queue_message *message, const void *data, size_t len,
			 struct error *err);
/* The ID chosen by begin, valid until commit or abort. */
const char *queue_message_id(const struct queue_message *message);
/* Bytes appended so far. */
uint64_t queue_message_size(const struct queue_message *message);

/*
 * Make the message durable: flush tmp/ID.msg and write tmp/ID.env; wait for
 * a sync of the file system (queue_spool_sync: both files' data durable);
 * rename ID.msg, then ID.env (the commit marker) into queue/; wait for a
 * sync again (both names durable). Only after 0 may the caller reply "250
 * 2.0.0 Ok: queued as ID". On success the message is freed (copy its ID first). On failure (-1,
 * always ERROR_TEMPORARY: answer 451 or 452) nothing of it is left in queue/,
 * and the caller still owns it and must call queue_spool_abort.
 */
int queue_spool_commit(struct queue_message *message, const struct queue_envelope *env,
		       struct error *err);

/* Drop a message being received or whose commit failed: unlink tmp/ID.msg
 * and free it. NULL ok. */
void queue_spool_abort(struct queue_message *message);

/* --- delivering without queueing (delivery/local.h) ------------------------
 *
 * A message whose recipients are all local mailboxes on the spool's file
 * system need not enter queue/ at all: its file in tmp/ becomes the first
 * mailbox's file. The caller writes the final-delivery headers first
 * (Return-Path, Delivered-To), then the message; at the end it flushes,
 * makes copies for other mailboxes, waits for queue_spool_sync (the data is
 * durable), places the file with queue_message_place, waits for
 * queue_spool_sync again (the names are durable) and only then answers 250.
 * A crash before the second sync leaves nothing acknowledged; the tmp/ file
 * is removed by recovery like any message being received.
 */

/* Write out the buffered bytes (after the last append). */
int queue_message_flush(struct queue_message *message, struct error *err);
/* The message file, open for reading too (pread; valid until place or abort). */
int queue_message_fd(const struct queue_message *message);

/*
 * Move tmp/ID.msg to dirfd/name (never replacing a file there; the directory
 * must be on the spool's file system) and free the message: from here on
 * the file is the caller's, made durable by the next queue_spool_sync. On
 * failure (-1; EXDEV when dirfd is on another file system is ERROR_UNAVAILABLE)
 * the message is still the caller's.
 */
int queue_message_place(struct queue_message *message, int dirfd, const char *name,
			struct error *err);

/* Group commit: return when everything written to the spool's file system
 * before the call is durable (core/groupsync.h). Every commit waits here;
 * concurrent commits share one sync. */
int queue_spool_sync(struct queue_spool *spool, struct error *err);
/* The spool of a message being received. */
struct queue_spool *queue_message_spool(const struct queue_message *message);
/* The device number of the spool's file system (copies elsewhere are not
 * covered by queue_spool_sync). */
unsigned long long queue_spool_device(const struct queue_spool *spool);
/* How many syncs served how many waits, for the metrics. */
void queue_spool_sync_stats(struct queue_spool *spool, uint64_t *waits_out, uint64_t *syncs_out);

/* Called once per complete message, in ID order. */
typedef void queue_id_fn(void *ctx, const char *id, enum queue_place place);

/*
 * Start-up, before any other call and while no other process uses the spool:
 * bring the spool back to a state reached only by whole operations, then
 * report every committed message to each (may be NULL). Everything in tmp/
 * was never acknowledged and is removed. For each ID in queue/ and
 * deferred/: the directory holding ID.env is where the message lives (a move
 * cut short is finished or undone by bringing ID.msg and ID.state there); an
 * ID.msg or ID.state without any ID.env was never committed, or was being
 * finished, and is removed; an ID.env without ID.msg is damage: removed
 * with a warning. Names that are no spool file are left alone with a
 * warning. Logs what it removed.
 */
int queue_spool_recover(struct queue_spool *spool, queue_id_fn *each, void *ctx, struct error *err);

/* Read-only: report every complete message (ID.env and ID.msg in one
 * place), in ID order, changing nothing. For `postgate queue` while the
 * daemon runs. */
int queue_spool_list(struct queue_spool *spool, queue_id_fn *each, void *ctx, struct error *err);

/* Where message id lives now (by its ID.env); ERROR_NOT_FOUND if nowhere. */
int queue_spool_locate(struct queue_spool *spool, const char *id, enum queue_place *place_out,
		       struct error *err);

/* Read and parse ID.env into env_out (clear it after use, also on failure). */
int queue_spool_envelope_load(struct queue_spool *spool, const char *id,
			      struct queue_envelope *env_out, struct error *err);

/* Open ID.msg read-only (O_CLOEXEC) for delivery; the caller closes *fd_out.
 * The descriptor stays valid across queue_spool_move. */
int queue_spool_message_open(struct queue_spool *spool, const char *id, int *fd_out,
			     struct error *err);

/*
 * Read ID.state into state_out; a message without ID.state has all its
 * recipient_count recipients pending. ERROR_DATA when the file does not parse
 * or counts other than recipient_count recipients. Clear state_out after use.
 */
int queue_spool_state_load(struct queue_spool *spool, const char *id, size_t recipient_count,
			   struct queue_state *state_out, struct error *err);

/*
 * Replace ID.state atomically and durably (write tmp/ID.state, fsync,
 * rename over the old one, fsync the directory). Call after every recipient
 * outcome, before acting on it (before the next recipient, a bounce, or
 * finish): a crash then repeats at most the one delivery whose outcome was
 * not yet saved.
 */
int queue_spool_state_save(struct queue_spool *spool, const char *id,
			   const struct queue_state *state, struct error *err);

/* Move the message's files to place `to` (ID.msg, ID.state, then ID.env
 * last) and fsync both directories. Moving to where it is does nothing. */
int queue_spool_move(struct queue_spool *spool, const char *id, enum queue_place to,
		     struct error *err);

/*
 * The message has left the spool's care (every recipient delivered or
 * failed, bounces queued): unlink ID.env, fsync the directory, then unlink
 * ID.msg and ID.state. The envelope goes first because it is the commit
 * marker; ID.state goes last because a message without its state would be
 * delivered again to everyone.
 */
int queue_spool_finish(struct queue_spool *spool, const char *id, struct error *err);

#endif
