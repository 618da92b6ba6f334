/*
 * local: delivering one message to one local user's Maildir. Knows nothing
 * of the queue: it is given the message's bytes (a file descriptor), the
 * envelope sender and the mailbox's address. Blocks (writes, fsync): call it
 * on a worker thread.
 */
#ifndef POSTGATE_DELIVERY_LOCAL_H
#define POSTGATE_DELIVERY_LOCAL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

enum delivery_result {
	DELIVERY_DONE,	   /* in the mailbox (or found there already) */
	DELIVERY_TEMPFAIL, /* try again later: disk full, I/O error */
	DELIVERY_PERMFAIL, /* will never work */
};

#define DELIVERY_DETAIL_MAX 256

/*
 * Deliver to the Maildir of address (a normalized local user address) under
 * maildir_root, adding Return-Path: (RFC 5321 4.4) and Delivered-To: in front
 * of the message read from message_fd (from offset 0). unique_hint names this
 * delivery (queue ID and recipient index); with is_retry, a copy already in
 * the mailbox under that hint counts as delivered, so a crash between the
 * Maildir rename and the queue's state write does not deliver twice. detail
 * receives a short reason for the log.
 */
enum delivery_result delivery_local_deliver(const char *maildir_root, const char *address,
					    const char *reverse_path, int message_fd,
					    const char *unique_hint, bool is_retry, char *detail,
					    size_t detail_cap);

/*
 * The final-delivery trace headers for address: "Return-Path: <reverse_path>"
 * (RFC 5321 4.4) and "Delivered-To: address", CRLF-ended. Their length, or
 * -1 when they do not fit in cap.
 */
int delivery_local_prefix(const char *reverse_path, const char *address, char *out, size_t cap);

/*
 * Delivery without queueing, at the end of DATA (docs/decisions/0200): the
 * message being received in the spool is written as it will sit in the
 * first mailbox — delivery_local_prefix for addresses[0], then the message —
 * and is delivered here to the Maildirs of all count addresses (normalized
 * local users) under maildir_root, in one group commit:
 *   1. copies for the other mailboxes (their own Delivered-To, then the
 *      message) are written into their tmp/, unsynced;
 *   2. queue_spool_sync: the data of the message and of every copy is
 *      durable;
 *   3. the message file itself is renamed into the first Maildir's new/ (no
 *      second copy), each copy into its new/;
 *   4. queue_spool_sync: the names are durable.
 * Only after 0 may the 250 be sent. A Maildir on another file system than
 * the spool gets a copy that is fsynced on its own; so does the first one
 * when the rename fails with EXDEV (the same file system through another
 * mount). On failure (-1;
 * ERROR_TEMPORARY for a full disk) every file made is removed, so the client
 * can send again without a duplicate. The message is consumed either way.
 * names_out[i] receives the new/ file name of addresses[i]; the hints are
 * "<queue_id>-<i>", as the queue's.
 */
struct queue_message;
int delivery_local_direct(const char *maildir_root, struct queue_message *message,
			  size_t prefix_len, const char *reverse_path, const char *const *addresses,
			  size_t count, const char *queue_id, char (*names_out)[256],
			  struct error *err);

#endif
