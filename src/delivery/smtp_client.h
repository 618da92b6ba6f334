/*
 * smtp_client: one outgoing SMTP connection (RFC 5321), asynchronous on the
 * event loop with bufferevents. It tries the hosts it is given in order
 * (each address of each host) until one greets and answers EHLO (or HELO),
 * upgrades with STARTTLS as the TLS mode says, then sends messages one after
 * another over that connection (RSET between), each with PIPELINING when
 * offered, and reports every recipient's reply. The message is read from its
 * file in DELIVERY_SMTP_CHUNK_BYTES chunks, dot-stuffed on the way
 * (decision 0081: small blocking reads of a spooled, page-cached file on the
 * loop).
 *
 * Knows nothing of the queue: the caller hands it struct delivery_message
 * values and gets them back filled in.
 *
 * Loop thread only.
 */
#ifndef POSTGATE_DELIVERY_SMTP_CLIENT_H
#define POSTGATE_DELIVERY_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "core/config.h"
#include "delivery/dns.h"
#include "delivery/local.h"

#define DELIVERY_SMTP_CHUNK_BYTES 16384
#define DELIVERY_XTEXT_CAP	  (3 * 1024 + 1)
#define DELIVERY_SMTP_OUTPUT_HIGH 65536 /* bytes queued for the socket before we wait */

/* RFC 3461 NOTIFY bits, the same values as the queue's. */
#define DELIVERY_NOTIFY_SUCCESS 0x1u
#define DELIVERY_NOTIFY_FAILURE 0x2u
#define DELIVERY_NOTIFY_DELAY	0x4u
#define DELIVERY_NOTIFY_NEVER	0x8u

struct delivery_recipient {
	const char *address; /* forward-path without brackets */
	const char *orcpt;   /* "type;address" or NULL */
	unsigned notify;     /* DELIVERY_NOTIFY_* or 0 */
	/* Filled in: */
	unsigned code; /* 2xx, 4xx or 5xx; 0 until known */
	char reply[DELIVERY_DETAIL_MAX];
};

enum delivery_body {
	DELIVERY_BODY_7BIT = 0,
	DELIVERY_BODY_8BITMIME,
	DELIVERY_BODY_BINARYMIME,
};

/* One transaction. Strings and the file stay valid until its done call. */
struct delivery_message {
	int fd; /* read with pread from offset 0 */
	uint64_t size;
	const char *reverse_path; /* "" for <> */
	bool is_smtputf8;
	enum delivery_body body;
	const char *envid; /* NULL if none */
	unsigned ret;	   /* 0 none, 1 FULL, 2 HDRS */
	struct delivery_recipient *recipients;
	size_t recipient_count;
	/* Filled in: */
	char remote_mta[DELIVERY_HOST_NAME_MAX]; /* the host that answered; "" if none */
	bool remote_has_dsn;			 /* it offered DSN (RFC 3461) */
	bool is_tls;
};

struct delivery_smtp_params {
	struct event_base *base;
	SSL_CTX *tls_ctx; /* client context with the trust store loaded */
	enum config_outbound_tls tls;
	const char *helo_name;	  /* our hostname */
	unsigned timeout_divisor; /* 1: RFC 5321 4.5.3.2 timeouts as they are */
};

struct delivery_smtp;

/* A transaction ended: every recipient of message has a code. */
typedef void delivery_message_done_fn(void *ctx, struct delivery_message *message);
/* The connection can take another message: return it, or NULL to QUIT. */
typedef struct delivery_message *delivery_message_next_fn(void *ctx);
/* The connection is gone; the client frees itself after this returns. */
typedef void delivery_session_done_fn(void *ctx);

/*
 * Connect to the first host that answers and send first. hosts is copied.
 * When no host can be used, first's recipients get the last failure (4xx:
 * connection refused, timeouts, greeting refused...). Returns NULL only when
 * memory runs out (no callback is then called). No callback comes before
 * this returns; the client is valid until session_done has returned.
 */
struct delivery_smtp *delivery_smtp_start(const struct delivery_smtp_params *params,
					  const struct delivery_hosts *hosts,
					  struct delivery_message *first,
					  delivery_message_done_fn *message_done,
					  delivery_message_next_fn *next,
					  delivery_session_done_fn *session_done, void *ctx);

/* Drop the connection now (shutdown): the message in flight gets 4xx, no
 * more callbacks after session_done. */
void delivery_smtp_abort(struct delivery_smtp *client);

/* Encode s as xtext (RFC 3461 4) into out; false when it does not fit. */
bool delivery_xtext_encode(const char *s, char *out, size_t out_cap);

#endif
