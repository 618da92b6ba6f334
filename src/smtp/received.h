/*
 * received: the trace header we add to every accepted message (RFC 5321
 * 4.4, RFC 5322 3.6.7), with the protocol word of RFC 3848 / RFC 6531 3.7.3.
 * Pure: the caller supplies the time.
 */
#ifndef POSTGATE_SMTP_RECEIVED_H
#define POSTGATE_SMTP_RECEIVED_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define SMTP_RECEIVED_MAX 1024

struct smtp_received {
	const char *helo;      /* as the client gave it; sanitized here */
	const char *client_ip; /* numeric */
	const char *hostname;  /* ours */
	const char *queue_id;
	const char *recipient; /* the one recipient, or NULL: never list several */
	bool is_esmtp, is_tls, is_authenticated, is_utf8;
	const char *local_user; /* local submission: shown instead of the client IP */
	time_t when;
};

/* "SMTP", "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA", "UTF8SMTP", ... */
const char *smtp_received_protocol(const struct smtp_received *r);

/* Writes the folded header with its final CRLF; returns its length, or 0 when
 * it does not fit out_cap. */
size_t smtp_received_format(const struct smtp_received *r, char *out, size_t out_cap);

#endif
