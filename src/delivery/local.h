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

#endif
