/*
 * local: Maildir delivery of one message to one user, with the trace
 * headers that belong to final delivery.
 */
#include "delivery/local.h"

#include <stdio.h>

#include "core/config.h"
#include "core/error.h"
#include "mailbox/maildir.h"
#include "mailbox/path.h"

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
	/* RFC 5321 4.4: the final delivery adds Return-Path with the reverse-path. */
	prefix_len = snprintf(prefix, sizeof(prefix), "Return-Path: <%s>\r\nDelivered-To: %s\r\n",
			      reverse_path, address);
	if (prefix_len < 0 || (size_t) prefix_len >= sizeof(prefix)) {
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
