/*
 * upgrade: TLS bufferevents on connection sockets. Owns the STARTTLS switch
 * (drop the plaintext input, hand the socket from the plain bufferevent to a
 * TLS one without closing it) and implicit TLS accepts. Never reads or
 * writes application bytes itself, and never closes a socket it was not
 * given to own.
 */
#include "tls/upgrade.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <openssl/err.h>

/* RFC 9266 2; no terminating NUL. */
#define TLS_EXPORTER_LABEL "EXPORTER-Channel-Binding"

static struct bufferevent *ssl_bufferevent_new(struct event_base *base, evutil_socket_t fd,
					       struct tls_context *ctx, struct error *err)
{
	SSL *ssl = tls_context_ssl_new(ctx, err);
	struct bufferevent *bev;

	if (ssl == NULL)
		return NULL;
	/* With BEV_OPT_CLOSE_ON_FREE libevent frees ssl (also when this
	 * fails) and closes fd when the bufferevent is freed. The socket BIO it
	 * makes for fd never closes fd by itself. */
	bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		error_set(err, ERROR_SOFTWARE, "cannot make a TLS bufferevent");
		return NULL;
	}
	/* A peer that closes without close_notify (Outlook after QUIT) is an
	 * end of stream, BEV_EVENT_EOF, not an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

struct bufferevent *tls_bufferevent_accept(struct event_base *base, evutil_socket_t fd,
					   struct tls_context *ctx, struct error *err)
{
	if (fd < 0) {
		error_set(err, ERROR_SOFTWARE, "implicit TLS on an invalid socket");
		return NULL;
	}
	return ssl_bufferevent_new(base, fd, ctx, err);
}

struct bufferevent *tls_bufferevent_accept_later(struct event_base *base, struct tls_context *ctx,
						 struct error *err)
{
	return ssl_bufferevent_new(base, -1, ctx, err);
}

struct bufferevent *tls_bufferevent_upgrade(struct bufferevent *plain, struct tls_context *ctx,
					    struct error *err)
{
	struct evbuffer *input = bufferevent_get_input(plain);
	evutil_socket_t fd = bufferevent_getfd(plain);
	struct bufferevent *bev;

	/* First and unconditionally: whatever the client sent after STARTTLS
	 * in plaintext is dropped unread (RFC 3207 4.2, CVE-2011-0411). */
	evbuffer_drain(input, evbuffer_get_length(input));
	if (bufferevent_openssl_get_ssl(plain) != NULL) {
		error_set(err, ERROR_SOFTWARE, "STARTTLS on a connection that has TLS already");
		return NULL;
	}
	if (fd < 0) {
		error_set(err, ERROR_SOFTWARE, "STARTTLS on a bufferevent without a socket");
		return NULL;
	}
	if (evbuffer_get_length(bufferevent_get_output(plain)) != 0) {
		error_set(err, ERROR_SOFTWARE,
			  "STARTTLS before the reply was written: %zu bytes still buffered",
			  evbuffer_get_length(bufferevent_get_output(plain)));
		return NULL;
	}
	/*
	 * Detach the socket: with fd -1, freeing plain cannot close it, and
	 * plain's events no longer watch it (libevent documents -1 as a valid fd
	 * for a socket bufferevent). The socket never has two owners, and no
	 * new file descriptor is needed.
	 */
	bufferevent_disable(plain, EV_READ | EV_WRITE);
	if (bufferevent_setfd(plain, -1) != 0) {
		error_set(err, ERROR_SOFTWARE, "cannot detach the socket from its bufferevent");
		return NULL;
	}
	bev = ssl_bufferevent_new(bufferevent_get_base(plain), fd, ctx, err);
	if (bev == NULL) {
		/* Give the socket back, so the caller's usual close closes it. */
		bufferevent_setfd(plain, fd);
		return NULL;
	}
	bufferevent_free(plain);
	return bev;
}

void tls_bufferevent_shutdown(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (ssl == NULL || SSL_is_init_finished(ssl) != 1)
		return;
	/* Marks the session closed cleanly (SSL_SENT_SHUTDOWN) before it tries
	 * the write, so the session stays cached even when the client is gone.
	 * After a fatal alert OpenSSL has already removed the session. */
	SSL_shutdown(ssl);
	/* libevent reads OpenSSL's error queue to tell a dirty shutdown from an
	 * error: leave nothing behind for the next connection. */
	ERR_clear_error();
}

SSL *tls_bufferevent_ssl(struct bufferevent *bev)
{
	return bufferevent_openssl_get_ssl(bev);
}

/* Appends to out (cap bytes, NUL-terminated); cuts silently, it is a log. */
static void append(char *out, size_t cap, size_t *used, const char *text)
{
	int n;

	if (*used >= cap - 1)
		return;
	n = snprintf(out + *used, cap - *used, "%s", text);
	if (n > 0)
		*used += (size_t) n < cap - *used ? (size_t) n : cap - *used - 1;
}

const char *tls_error_describe(struct bufferevent *bev, char *out, size_t cap)
{
	int socket_error = EVUTIL_SOCKET_ERROR();
	unsigned long code;
	size_t used = 0;
	bool has_reason = false;

	if (cap == 0)
		return out;
	out[0] = '\0';
	while ((code = bufferevent_get_openssl_error(bev)) != 0) {
		char text[128];
		const char *reason;

		/* libevent also files SSL_get_error()'s own code (no library:
		 * SSL_ERROR_SSL, SSL_ERROR_SYSCALL); the reasons beside it, or
		 * the socket error, say more. */
		if (ERR_GET_LIB(code) == 0)
			continue;
		reason = ERR_reason_error_string(code);
		if (reason == NULL) {
			ERR_error_string_n(code, text, sizeof(text));
			reason = text;
		}
		if (has_reason)
			append(out, cap, &used, "; ");
		append(out, cap, &used, reason);
		has_reason = true;
	}
	if (!has_reason)
		snprintf(out, cap, "%s",
			 socket_error != 0 ? evutil_socket_error_to_string(socket_error)
					   : "closed");
	return out;
}

int tls_exporter_channel_binding(SSL *ssl, unsigned char out[TLS_CHANNEL_BINDING_LEN])
{
	static const unsigned char empty_context[1];
	int version;

	if (ssl == NULL || SSL_is_init_finished(ssl) != 1)
		return -1;
	version = SSL_version(ssl);
	if (version == TLS1_2_VERSION) {
		/* RFC 9266 with RFC 7627: only with the extended master secret. */
		if (SSL_get_extms_support(ssl) != 1)
			return -1;
	} else if (version != TLS1_3_VERSION) {
		return -1;
	}
	/* use_context = 1 with a zero-length context: the "empty context
	 * value" of RFC 9266 2 (in TLS 1.3 the same as no context). */
	if (SSL_export_keying_material(ssl, out, TLS_CHANNEL_BINDING_LEN, TLS_EXPORTER_LABEL,
				       sizeof(TLS_EXPORTER_LABEL) - 1, empty_context, 0, 1) != 1) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}
