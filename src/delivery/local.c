/*
 * local: Maildir delivery of one message to one user, with the trace
 * headers that belong to final delivery.
 */
#include "delivery/local.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/error.h"
#include "mailbox/maildir.h"
#include "mailbox/path.h"
#include "queue/spool.h"

enum delivery_result delivery_local_deliver(const char *maildir_root, const char *address,
					    const char *reverse_path, int message_fd,
					    const char *unique_hint, bool is_retry, char *detail,
					    size_t detail_cap)
{
	char path[CONFIG_PATH_MAX], prefix[1024], name[512];
	struct error err;
	int prefix_len;

	if (mailbox_path_for(maildir_root, address, path, sizeof(path), &err) < 0) {
		snprintf(detail, detail_cap, "%s", err.message);
		return DELIVERY_PERMFAIL;
	}
	if (is_retry) {
		bool found = false;

		if (mailbox_maildir_find(path, unique_hint, &found, &err) < 0) {
			snprintf(detail, detail_cap, "%s", err.message);
			return DELIVERY_TEMPFAIL;
		}
		if (found) {
			snprintf(detail, detail_cap, "already in the mailbox");
			return DELIVERY_DONE;
		}
	}
	prefix_len = delivery_local_prefix(reverse_path, address, prefix, sizeof(prefix));
	if (prefix_len < 0) {
		snprintf(detail, detail_cap, "address too long");
		return DELIVERY_PERMFAIL;
	}
	if (mailbox_maildir_deliver(path, prefix, (size_t) prefix_len, message_fd, unique_hint,
				    name, sizeof(name), &err) < 0) {
		snprintf(detail, detail_cap, "%s", err.message);
		return err.kind == ERROR_DATA ? DELIVERY_PERMFAIL : DELIVERY_TEMPFAIL;
	}
	snprintf(detail, detail_cap, "%s", name);
	return DELIVERY_DONE;
}

int delivery_local_prefix(const char *reverse_path, const char *address, char *out, size_t cap)
{
	/* RFC 5321 4.4: the final delivery adds Return-Path with the reverse-path. */
	int len = snprintf(out, cap, "Return-Path: <%s>\r\nDelivered-To: %s\r\n", reverse_path,
			   address);

	return len < 0 || (size_t) len >= cap ? -1 : len;
}

int delivery_local_direct(const char *maildir_root, struct queue_message *message,
			  size_t prefix_len, const char *reverse_path, const char *const *addresses,
			  size_t count, const char *queue_id, char (*names_out)[256],
			  struct error *err)
{
	struct queue_spool *spool = queue_message_spool(message);
	unsigned long long device = queue_spool_device(spool);
	struct mailbox_maildir_slot *slots = calloc(count, sizeof(*slots));
	bool *is_apart = calloc(count, sizeof(*is_apart));
	uint64_t size, body_len;
	int fd = queue_message_fd(message);
	size_t opened = 0;
	int rc = -1;

	if (slots == NULL || is_apart == NULL || count == 0) {
		error_set(err, ERROR_TEMPORARY, "direct delivery: out of memory");
		goto out;
	}
	if (queue_message_flush(message, err) < 0)
		goto out;
	size = queue_message_size(message);
	if (size < prefix_len) {
		error_set(err, ERROR_SOFTWARE, "direct delivery: message shorter than its headers");
		goto out;
	}
	body_len = size - prefix_len;
	/* 1. Every Maildir opened, every copy written (not yet synced). */
	for (size_t i = 0; i < count; i++) {
		char path[CONFIG_PATH_MAX], prefix[1024], hint[64];
		int own_len = 0;

		slots[i].maildir_fd = -1;
		if (mailbox_path_for(maildir_root, addresses[i], path, sizeof(path), err) < 0)
			goto out;
		if (i > 0 && (own_len = delivery_local_prefix(reverse_path, addresses[i], prefix,
							      sizeof(prefix))) < 0) {
			error_set(err, ERROR_DATA, "direct delivery: address too long");
			goto out;
		}
		snprintf(hint, sizeof(hint), "%s-%zu", queue_id, i);
		if (mailbox_maildir_slot_open(&slots[i], path, hint,
					      i == 0 ? size : (uint64_t) own_len + body_len,
					      err) < 0)
			goto out;
		opened = i + 1;
		is_apart[i] = slots[i].device != device;
		if (i == 0 && is_apart[0]) {
			/* The message file cannot be renamed there: a copy, as is. */
			if (mailbox_maildir_slot_write(&slots[0], "", 0, fd, 0, size, true, err) <
			    0)
				goto out;
		} else if (i > 0 &&
			   mailbox_maildir_slot_write(&slots[i], prefix, (size_t) own_len, fd,
						      prefix_len, body_len, is_apart[i], err) < 0) {
			goto out;
		}
	}
	/* 2. The data of the message and of every copy is durable. */
	if (queue_spool_sync(spool, err) < 0)
		goto out;
	/* 3. Into new/: the message file itself for the first mailbox. */
	for (size_t i = 0; i < count; i++) {
		if (i == 0 && !is_apart[0]) {
			if (queue_message_place(message, slots[0].maildir_fd, slots[0].new_path,
						err) == 0) {
				message = NULL;
				slots[0].is_placed = true;
				continue;
			}
			/* One file system seen through two mounts (a bind mount):
			 * no rename between them. A copy, synced on its own. */
			if (err->kind != ERROR_UNAVAILABLE ||
			    mailbox_maildir_slot_write(&slots[0], "", 0, fd, 0, size, true, err) <
				    0 ||
			    mailbox_maildir_slot_place(&slots[0], true, err) < 0)
				goto out;
		} else if (mailbox_maildir_slot_place(&slots[i], is_apart[i], err) < 0) {
			goto out;
		}
	}
	/* 4. The names are durable: delivered. */
	if (queue_spool_sync(spool, err) < 0)
		goto out;
	for (size_t i = 0; i < count; i++)
		snprintf(names_out[i], 256, "%s", slots[i].name);
	rc = 0;
out:
	for (size_t i = 0; i < opened; i++) {
		if (rc < 0)
			mailbox_maildir_slot_discard(&slots[i]);
		mailbox_maildir_slot_close(&slots[i]);
	}
	/* Not renamed into a Maildir (a failure, or a first Maildir elsewhere). */
	queue_spool_abort(message);
	free(slots);
	free(is_apart);
	if (rc < 0 && err->kind != ERROR_TEMPORARY && err->kind != ERROR_DATA)
		err->kind = ERROR_TEMPORARY;
	return rc;
}
