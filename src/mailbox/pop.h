/*
 * pop: a Maildir as a POP3 maildrop (RFC 1939): the lock that keeps one
 * session per mailbox, the list of messages a session sees (new/ and cur/,
 * in arrival order, each with its size and unique-id), and the UPDATE
 * state's changes (deletions, and the seen flag for retrieved messages).
 * It knows nothing of the protocol: the POP3 engine (src/pop3/) asks.
 *
 * Lock (docs/decisions/0101-pop3-maildrop-lock.md): an exclusive flock() on
 * MAILDIR/postgate-pop3.lock, held by a descriptor the maildrop keeps open.
 * flock locks belong to the open file description, so a second session of
 * this same process is refused as one of another process would be, and the
 * kernel drops the lock when the descriptor is closed — by
 * mailbox_pop_close, or by the end of the process, a crash or kill -9
 * included. Nothing is ever left to clean up.
 *
 * Sizes come from the ",S=<size>" that our delivery writes into every name
 * (mailbox/maildir.h: the exact size of a file stored with CRLF line ends,
 * which is what RFC 1939 counts); a name without it costs one stat. Order
 * is the arrival time at the start of the Maildir name ("<seconds>.M<micro
 * seconds>..."), then the name; a name without one costs one stat for its
 * modification time. Nothing else touches a message before it is asked for.
 *
 * Unique-ids (docs/decisions/0102-pop3-uidl.md): the Maildir base name (up
 * to the ':' that starts the flags, so it survives new/ → cur/ and flag
 * changes) when it is 1..70 characters 0x21..0x7E (RFC 1939 7), else the
 * first 64 hex digits of its SHA-256.
 *
 * Blocking (open, readdir, unlink, rename, fsync): worker threads only. A
 * maildrop is used by one thread at a time. The pure helpers
 * (mailbox_pop_uid_make, mailbox_pop_seen_name, mailbox_pop_arrival_parse)
 * do no I/O.
 */
#ifndef POSTGATE_MAILBOX_POP_H
#define POSTGATE_MAILBOX_POP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/span.h"

#define MAILBOX_POP_LOCK_NAME "postgate-pop3.lock"
#define MAILBOX_POP_UID_MAX   70 /* RFC 1939 7 */
/* Messages one session lists; a larger maildrop shows its oldest ones. */
#define MAILBOX_POP_MESSAGES_MAX 1000000

struct mailbox_pop_message {
	size_t name_offset; /* into the maildrop's names: "new/NAME" or "cur/NAME", NUL-ended */
	size_t uid_offset;  /* into the names: the unique-id, NUL-ended */
	uint64_t size;	    /* octets, as RETR sends them for a CRLF file */
	uint64_t arrival_s; /* sort key */
	uint32_t arrival_us;
	bool is_in_cur;
	bool is_deleted;   /* DELE: removed at UPDATE */
	bool is_retrieved; /* RETR: moved to cur/ with the S flag at UPDATE */
};

struct mailbox_pop_drop {
	int dir_fd;  /* the Maildir */
	int lock_fd; /* holds the flock */
	struct mailbox_pop_message *messages;
	size_t count, messages_cap;
	uint64_t total_size;
	char *names; /* every name and unique-id, NUL-separated */
	size_t names_len, names_cap;
};

enum mailbox_pop_open_result {
	MAILBOX_POP_OPENED,
	MAILBOX_POP_IN_USE, /* another session holds the lock: -ERR [IN-USE] */
	MAILBOX_POP_FAILED, /* err says why: -ERR [SYS/TEMP] */
};

/*
 * Take the maildrop at maildir_path: create the Maildir (tmp/, new/, cur/,
 * mode 0700, parents fsynced) when it does not exist yet, take the lock
 * without waiting, and list new/ and cur/. On MAILBOX_POP_OPENED *drop_out
 * is the caller's, to free with mailbox_pop_close.
 */
enum mailbox_pop_open_result
mailbox_pop_open(const char *maildir_path, struct mailbox_pop_drop **drop_out, struct error *err);

/* The file and unique-id of message index (0-based). */
const char *mailbox_pop_name(const struct mailbox_pop_drop *drop, size_t index);
const char *mailbox_pop_uid(const struct mailbox_pop_drop *drop, size_t index);

/* Open message index for reading (O_RDONLY, not following links). A
 * message that has gone (another program removed it) is ERROR_NOT_FOUND. */
int mailbox_pop_message_open(const struct mailbox_pop_drop *drop, size_t index, int *fd_out,
			     struct error *err);

/* What UPDATE did. */
struct mailbox_pop_update_result {
	size_t deleted;	    /* files removed (or already gone) */
	size_t not_deleted; /* unlink failed: the message stays */
	size_t marked_seen; /* retrieved messages moved to cur/ with S */
};

/*
 * The UPDATE state (RFC 1939 6): unlink every message marked deleted, give
 * every retrieved one left the S flag in cur/ (new/NAME → cur/NAME:2,S;
 * cur/NAME:2,FLAGS gains S), then fsync new/ and cur/ so the deletions are
 * durable before the client hears +OK. -1 with err when a deletion failed
 * or the fsync did (result says how far it got); a flag that could not be
 * set is not an error (the message is still there, unseen).
 */
int mailbox_pop_update(struct mailbox_pop_drop *drop, struct mailbox_pop_update_result *result_out,
		       struct error *err);

/* Close the descriptors (releasing the lock) and free. NULL does nothing.
 * Closing a descriptor does not wait for the disk: any thread may call it. */
void mailbox_pop_close(struct mailbox_pop_drop *drop);

/*
 * The unique-id of a Maildir file name (with or without its ":2,FLAGS"):
 * writes it NUL-ended to out (MAILBOX_POP_UID_MAX + 1 bytes) and returns
 * its length, never 0 for a non-empty name.
 */
size_t mailbox_pop_uid_make(struct span name, char out[MAILBOX_POP_UID_MAX + 1]);

/*
 * The cur/ name of name once seen: "NAME:2,S" when name has no info, else
 * its flags with S added in ASCII order (the Maildir spec). false when out
 * is too small or name's info is not ":2,": the file then keeps its name.
 */
bool mailbox_pop_seen_name(const char *name, char *out, size_t out_cap);

/* The "<seconds>.M<microseconds>" or "<seconds>." at the start of a Maildir
 * name; false when it has none (the microseconds are 0 without "M"). */
bool mailbox_pop_arrival_parse(const char *name, uint64_t *seconds_out, uint32_t *micros_out);

#endif
