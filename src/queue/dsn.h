/*
 * dsn: delivery status notifications (RFC 3464) — the bounce, delay warning
 * and success report the queue sends to a message's envelope sender — and
 * the RFC 3461 rules for who gets which.
 *
 * Pure: no I/O, no clock, no globals (the caller passes the time, the
 * original's bytes and a boundary), so the tests call it directly. The
 * queue manager enqueues the text from the null reverse-path (RFC 3464 2;
 * RFC 5321 4.5.5) to the original envelope sender.
 */
#ifndef POSTGATE_QUEUE_DSN_H
#define POSTGATE_QUEUE_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/span.h"

enum queue_dsn_action {
	QUEUE_DSN_FAILED, /* RFC 3464 2.3.3 */
	QUEUE_DSN_DELAYED,
	QUEUE_DSN_DELIVERED, /* into a local mailbox */
	QUEUE_DSN_RELAYED,   /* to a server that does not offer DSN */
};

struct queue_dsn_recipient {
	const char *address; /* the forward-path (Final-Recipient) */
	const char *orcpt;   /* "type;address" (Original-Recipient) or NULL */
	enum queue_dsn_action action;
	const char *diagnostic;	  /* an SMTP reply "550 5.1.1 text", or NULL */
	const char *remote_mta;	  /* the host that gave the reply, or NULL */
	uint64_t last_attempt_at; /* Unix seconds; 0: not shown */
};

struct queue_dsn_params {
	const char *reporting_mta; /* our hostname */
	const char *queue_id;	   /* the original's, for the human part and X-Postgate-Queue-ID */
	const char *sender;	   /* the original's reverse-path: the DSN's To */
	const char *envid;	   /* Original-Envelope-Id, or NULL */
	uint64_t arrival_at;	   /* the original's */
	uint64_t now;
	const char *boundary; /* chosen by the caller; must not occur in original */
	const struct queue_dsn_recipient *recipients;
	size_t recipient_count; /* at least 1 */
	struct span original;	/* the whole message, or its header section */
	bool is_full;		/* original is the whole message (message/rfc822) */
};

/* The DSN's text (CRLF lines) in a heap buffer the caller frees. */
int queue_dsn_build(const struct queue_dsn_params *params, char **text_out, size_t *len_out,
		    struct error *err);

/*
 * Whether a recipient with NOTIFY bits notify (QUEUE_NOTIFY_*, 0: not given)
 * gets a DSN for action (RFC 3461 4.1): NEVER: none; given: the listed ones;
 * not given: failures and delays (the default the RFC suggests), never a
 * success report.
 */
bool queue_dsn_wanted(unsigned notify, enum queue_dsn_action action);

/* The RFC 3463 status of a reply: its enhanced code when it has one of the
 * right class, else class.0.0 from the reply code ("5.0.0"). out holds 16. */
void queue_dsn_status(const char *reply, char out[16]);

/* Whether the original is returned whole: RET=HDRS never; otherwise (FULL
 * or not given) when it is at most max_bytes. */
bool queue_dsn_returns_full(unsigned ret, uint64_t size, uint64_t max_bytes);

#endif
