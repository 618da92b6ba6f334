/*
 * upgrade: putting TLS on a connection's bufferevent, for implicit TLS
 * (RFC 8314 3.3: submissions on 465, pop3s on 995) and for STARTTLS (RFC
 * 3207 for SMTP, RFC 2595 4 for POP3's STLS); and what a protocol engine
 * asks of the TLS layer afterwards (errors for the log, channel binding).
 *
 * Ownership (docs/decisions/0050-starttls-same-socket.md): every bufferevent
 * on a connection socket is made with BEV_OPT_CLOSE_ON_FREE, so whoever
 * holds the connection's one current bufferevent owns the socket and ends
 * the connection with bufferevent_free(). The daemon keeps making its plain
 * bufferevents exactly so; an upgrade hands back a new bufferevent that
 * replaces the old one in that role.
 *
 * Events on a returned bufferevent (callbacks are deferred,
 * BEV_OPT_DEFER_CALLBACKS):
 *   BEV_EVENT_CONNECTED  the handshake finished: log tls_handshake_describe()
 *                        of tls_bufferevent_ssl(bev); application data flows.
 *   BEV_EVENT_ERROR      the handshake failed (no shared version or suite,
 *                        plaintext where a ClientHello belonged), a record
 *                        was bad, or the socket failed: tls_error_describe().
 *   BEV_EVENT_TIMEOUT    a timeout the caller set with bufferevent_set_timeouts
 *                        (the read timeout also bounds the handshake; set it
 *                        before returning to the loop). During the handshake
 *                        it comes without BEV_EVENT_READING.
 *   BEV_EVENT_EOF        the client closed: with close_notify, with a bare
 *                        FIN, or with a reset after its last command (as
 *                        Outlook does after QUIT) all arrive as
 *                        BEV_EVENT_EOF|BEV_EVENT_READING, thanks to
 *                        SSL_OP_IGNORE_UNEXPECTED_EOF and a permitted dirty
 *                        shutdown: a normal end of session.
 *
 * Everything here runs on the event-loop thread.
 */
#ifndef POSTGATE_TLS_UPGRADE_H
#define POSTGATE_TLS_UPGRADE_H

#include <stddef.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "core/error.h"
#include "tls/context.h"

/* RFC 9266 2: 32 octets of the "EXPORTER-Channel-Binding" exporter. */
#define TLS_CHANNEL_BINDING_LEN 32
/* Room for tls_error_describe(): up to three OpenSSL reasons. */
#define TLS_ERROR_DESCRIBE_CAP 256

/*
 * Implicit TLS on a freshly accepted socket: a new bufferevent that owns fd
 * (BEV_OPT_CLOSE_ON_FREE: freeing it frees the SSL object and closes fd) and
 * is already waiting for the ClientHello (BUFFEREVENT_SSL_ACCEPTING). Set
 * callbacks, timeouts and enable EV_READ|EV_WRITE before returning to the
 * loop. On failure: NULL, err set, and fd is still the caller's to close.
 */
struct bufferevent *tls_bufferevent_accept(struct event_base *base, evutil_socket_t fd,
					   struct tls_context *ctx, struct error *err);
/*
 * The same without a socket yet, for libevent's evhttp, which asks for the
 * bufferevent before it sets the accepted socket with bufferevent_setfd()
 * (evhttp_set_bevcb). NULL with err on failure.
 */
struct bufferevent *tls_bufferevent_accept_later(struct event_base *base, struct tls_context *ctx,
						 struct error *err);

/*
 * STARTTLS on plain, a socket bufferevent made with BEV_OPT_CLOSE_ON_FREE.
 *
 * The caller's contract:
 *   1. On the STARTTLS command, stop handling input at once: parse no line
 *      after it, and disable EV_READ on plain.
 *   2. Write the positive reply ("220 2.0.0 Ready to start TLS", POP3's
 *      "+OK Begin TLS negotiation") and call this function only when it has
 *      left plain's output buffer: from plain's write callback with the
 *      output empty (the default write low-water mark of 0 does exactly
 *      that). A reply still buffered makes this fail, because bytes written
 *      after the upgrade starts would be encrypted and the client would never
 *      read the 220 it waits for.
 *   3. To log the discarded pipelined input, read
 *      evbuffer_get_length(bufferevent_get_input(plain)) just before calling.
 *
 * What it does: DISCARDS every byte in plain's input buffer (commands
 * pipelined after STARTTLS in the same packet must never run: RFC 3207 4.2
 * keeps nothing from before TLS that TLS did not bring; CVE-2011-0411),
 * detaches the socket from plain and frees plain WITHOUT closing the socket,
 * and returns a new bufferevent in the accepting state on the same socket,
 * with the properties described for tls_bufferevent_accept(): no timeouts
 * until the caller sets them (it must, or a client that never sends a
 * ClientHello holds the session forever). Plaintext the client sends after
 * the reply reaches the TLS layer and fails the handshake (BEV_EVENT_ERROR).
 *
 * On success plain is gone: the caller replaces every pointer to it (the
 * daemon's session->bev included) with the returned bufferevent and sets its
 * callbacks before returning to the loop. On failure: NULL, err set, plain
 * is still valid, still owns the socket and has lost its input; end the
 * session as usual.
 */
struct bufferevent *tls_bufferevent_upgrade(struct bufferevent *plain, struct tls_context *ctx,
					    struct error *err);

/*
 * End TLS on bev just before bufferevent_free(bev): send close_notify (RFC
 * 8446 6.1, RFC 5246 7.2.1) and so keep the session resumable. OpenSSL
 * removes a session from the server cache when its connection is freed
 * without close_notify having been sent; without this call no client could
 * resume by session ID (Outlook resumes no other way). Call it at every end
 * of a TLS session, whatever ended it: after the last reply has left the
 * output buffer (QUIT, 421), on BEV_EVENT_EOF, BEV_EVENT_TIMEOUT and
 * BEV_EVENT_ERROR. After a TLS failure (bad record, fatal alert) it does
 * nothing and the session stays forgotten, as it must; after a reset it
 * keeps the session. It writes at most one alert record straight to the
 * socket, never blocks, and ignores a failed write (the process must ignore
 * SIGPIPE, as postgated does). Does nothing for a plain bufferevent or an
 * unfinished handshake.
 */
void tls_bufferevent_shutdown(struct bufferevent *bev);

/* The SSL object of a bufferevent made here, or NULL for a plain one. */
SSL *tls_bufferevent_ssl(struct bufferevent *bev);

/*
 * Why bev failed, for one log line, from the start of its event callback
 * (before anything else can change errno): OpenSSL's reasons for this
 * bufferevent, oldest first, separated by "; " (this drains them), else the
 * socket error ("Connection reset by peer"), else "closed". Returns out
 * (cap bytes; TLS_ERROR_DESCRIBE_CAP is enough for what matters).
 */
const char *tls_error_describe(struct bufferevent *bev, char *out, size_t cap);

/*
 * The tls-exporter channel binding (RFC 9266) for SCRAM-SHA-256-PLUS (RFC
 * 5802 6, RFC 7677): the TLS exporter (RFC 8446 7.5, RFC 5705) with label
 * "EXPORTER-Channel-Binding", an empty context value, 32 octets. Returns 0
 * and fills out after a finished TLS 1.3 handshake, and after a TLS 1.2
 * handshake that used the extended master secret (RFC 7627), without which
 * TLS 1.2 keys are not unique to one connection (the triple handshake
 * attack). Returns -1 otherwise (TLS 1.0/1.1, TLS 1.2 without it, handshake
 * not finished): the caller then does not offer the -PLUS mechanisms.
 */
int tls_exporter_channel_binding(SSL *ssl, unsigned char out[TLS_CHANNEL_BINDING_LEN]);

#endif
