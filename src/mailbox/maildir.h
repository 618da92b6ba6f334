/*
 * maildir: putting a message into a Maildir (tmp/ → fsync → new/) and finding
 * an earlier copy, the way Dovecot, Courier and qmail read the format
 * (https://cr.yp.to/proto/maildir.html). It owns no directory layout of its
 * own (mailbox/path.h says where a user's Maildir is) and never delivers over
 * an existing file. A delivery that returns 0 is on disk: the file and its
 * name in new/ are fsynced, and so is every directory it had to create.
 *
 * File names in new/ are
 *   <seconds>.M<microseconds>P<pid>Q<counter>_<hint>.<hostname>,S=<size>
 * with '/' and ':' in the host name written as \057 and \072, and S= the
 * file's exact size in bytes, so a POP3 LIST needs no stat (Dovecot reads
 * S= the same way). The bytes are stored exactly as given — the queue gives
 * CRLF line endings, as SMTP carried them, so S= is also the RFC 1939 octet
 * count (docs/decisions/0033).
 *
 * Blocking (write, fsync, rename): worker threads only. Thread-safe.
 * Errors: ENOSPC, EDQUOT or EFBIG (a full disk, a quota, a file size limit)
 * are ERROR_TEMPORARY (try again later: 452 or a deferred delivery); others
 * ERROR_IO; bad arguments ERROR_DATA. Every failure removes the partial file
 * from tmp/.
 */
#ifndef POSTGATE_MAILBOX_MAILDIR_H
#define POSTGATE_MAILBOX_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define MAILBOX_MAILDIR_NAME_MAX   255	 /* NAME_MAX: one file name */
#define MAILBOX_MAILDIR_HINT_MAX   64	 /* "<queue ID>-<recipient index>" fits easily */
#define MAILBOX_MAILDIR_COPY_BYTES 65536 /* one pread/write piece */

/*
 * Deliver prefix (prefix_len bytes, e.g. "Return-Path: <...>\r\nDelivered-To:
 * ...\r\n"; may be empty) followed by the whole file open as message_fd, read
 * with pread from offset 0 in MAILBOX_MAILDIR_COPY_BYTES pieces (the
 * descriptor's offset is not used or moved). maildir_path and its missing
 * parents, tmp/, new/ and cur/ are created with mode 0700 as needed.
 *
 * unique_hint (1..MAILBOX_MAILDIR_HINT_MAX of A-Z a-z 0-9 '-') goes into the
 * name so that mailbox_maildir_find can tell later whether this delivery
 * happened; the queue passes "<queue ID>-<recipient index>".
 *
 * On success the new file's name (in new/, without a directory) is written
 * to name_out (name_cap bytes; MAILBOX_MAILDIR_NAME_MAX + 1 always suffices).
 */
int mailbox_maildir_deliver(const char *maildir_path, const char *prefix, size_t prefix_len,
			    int message_fd, const char *unique_hint, char *name_out,
			    size_t name_cap, struct error *err);

/*
 * The same under a name chosen by the caller (no '/', no leading '.', at most
 * MAILBOX_MAILDIR_NAME_MAX bytes): tmp/name, then new/name. Refuses to
 * replace an existing new/name (ERROR_EXISTS). mailbox_maildir_deliver is
 * this with a fresh unique name; tests use it to name a collision.
 */
int mailbox_maildir_store(const char *maildir_path, const char *name, const char *prefix,
			  size_t prefix_len, int message_fd, struct error *err);

/*
 * Whether new/ or cur/ of maildir_path holds a message whose name contains
 * "_<unique_hint>." — a delivery made before a crash (the user's client may
 * have moved it to cur/ and added flags since). A missing Maildir is not an
 * error: *found_out is false. Reads whole directories: for recovery only.
 */
int mailbox_maildir_find(const char *maildir_path, const char *unique_hint, bool *found_out,
			 struct error *err);

/* --- delivery in steps, for the group commit of delivery/local.h ----------
 *
 * The same file names and order as mailbox_maildir_deliver, but without an
 * fsync of its own: the caller makes the writes durable with one sync of
 * the whole file system (core/groupsync.h) before placing the file in new/,
 * and again before reporting it delivered. Only for a Maildir on the file
 * system the caller syncs (compare `device`).
 */
struct mailbox_maildir_slot {
	int maildir_fd;				     /* -1 when closed */
	unsigned long long device;		     /* st_dev of the Maildir */
	bool is_written;			     /* tmp/name exists */
	bool is_placed;				     /* new/name exists */
	char name[MAILBOX_MAILDIR_NAME_MAX + 1];     /* the file's name in tmp/ and new/ */
	char new_path[MAILBOX_MAILDIR_NAME_MAX + 8]; /* "new/<name>", relative to maildir_fd */
};

/*
 * Open (creating what is missing, durably) the Maildir and choose the name
 * of a file of `size` bytes for unique_hint (as for mailbox_maildir_deliver).
 */
int mailbox_maildir_slot_open(struct mailbox_maildir_slot *slot, const char *maildir_path,
			      const char *unique_hint, uint64_t size, struct error *err);
/* Write tmp/name: prefix, then len bytes of message_fd from offset. With
 * is_synced the file is fsynced too (a Maildir on another file system). */
int mailbox_maildir_slot_write(struct mailbox_maildir_slot *slot, const char *prefix,
			       size_t prefix_len, int message_fd, uint64_t offset, uint64_t len,
			       bool is_synced, struct error *err);
/* Rename tmp/name to new/name, never replacing; with is_synced, fsync new/. */
int mailbox_maildir_slot_place(struct mailbox_maildir_slot *slot, bool is_synced,
			       struct error *err);
/* Undo: remove tmp/name or new/name, whichever this slot made. */
void mailbox_maildir_slot_discard(struct mailbox_maildir_slot *slot);
/* Close the Maildir's descriptor (the file stays). Safe to call twice. */
void mailbox_maildir_slot_close(struct mailbox_maildir_slot *slot);

/* The S=<size> of a Maildir file name; false when the name has none. */
bool mailbox_maildir_name_size(const char *name, uint64_t *size_out);

#endif
