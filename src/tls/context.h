/*
 * context: the server side of TLS as one object per certificate and profile.
 * A struct tls_context wraps an OpenSSL SSL_CTX that holds the certificate
 * chain, the private key, the protocol versions and cipher suites of its
 * profile, the session cache and the session ticket keys. It is made once at
 * start-up (as root: the key is read here, never later) and again on a
 * reload; the sessions only ever see the SSL objects made from it.
 *
 * This module also describes a finished handshake for the log and reports the
 * server name (SNI, RFC 6066 3) a client asked for.
 *
 * Everything here runs on the event-loop thread or before it starts.
 */
#ifndef POSTGATE_TLS_CONTEXT_H
#define POSTGATE_TLS_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "core/error.h"
#include "core/log.h"
#include "core/span.h"

/*
 * What a listener offers (docs/tls.md has the exact lists):
 *   MODERN  TLS 1.2 and 1.3; for 1.2 only ECDHE with AES-GCM or
 *           ChaCha20-Poly1305; security level 2. The default.
 *   LEGACY  TLS 1.0 to 1.3; adds the AES-CBC suites with SHA-1/SHA-2 MACs
 *           (ECDHE and RSA key exchange) that Vista-era Windows Mail and
 *           Outlook 2007 need, at security level 0. Never RC4 or 3DES: this
 *           OpenSSL has neither.
 */
enum tls_profile {
	TLS_PROFILE_MODERN = 0,
	TLS_PROFILE_LEGACY,
};

/* The server-side session cache (RFC 5246 7.4.1.2 session IDs): Outlook
 * resumes by session ID only. 20480 is OpenSSL's own default size
 * (SSL_SESSION_CACHE_MAX_SIZE_DEFAULT); an hour is Postfix's
 * smtpd_tls_session_cache_timeout. The timeout is also the lifetime of a
 * session ticket (RFC 5077, RFC 8446 4.6.1). */
#define TLS_SESSION_CACHE_SIZE	    20480
#define TLS_SESSION_TIMEOUT_SECONDS 3600
#define TLS_TICKETS_PER_HANDSHAKE   1 /* TLS 1.3 NewSessionTicket messages (RFC 8446 4.6.1) */

/* Room for tls_handshake_describe(): the fixed words, the longest version
 * and cipher names, and an escaped server name of up to 255 octets. */
#define TLS_DESCRIBE_CAP (128 + LOG_ESCAPED_CAP)

struct tls_context;

/*
 * Load the certificate chain (PEM: the server certificate first, then any
 * intermediates) and the unencrypted PEM private key, and build a context
 * for profile. Fails with ERROR_CONFIG (naming the file and OpenSSL's reason)
 * when a file cannot be read, the key is encrypted, the key does not match
 * the certificate, or the key is too weak for the profile (MODERN refuses
 * RSA keys under 2048 bits). On success *out is a new context the caller
 * frees with tls_context_free().
 *
 * Reloading a certificate is calling this again and swapping pointers: SSL
 * objects made from the old context keep its SSL_CTX alive (OpenSSL counts
 * references), so live sessions go on and the old context may be freed at
 * once. A reload runs as the unprivileged user, so it fails (and the caller
 * keeps the old context) unless that user can read the key.
 */
int tls_context_new(const char *cert_path, const char *key_path, enum tls_profile profile,
		    struct tls_context **out, struct error *err);
/*
 * A new context like old (same profile, the same certificate chain and key,
 * taken from memory: no file is read), without old's named certificates.
 * For a reload whose default certificate did not change: the daemon's user
 * need not be able to read a key only root could read at start.
 */
int tls_context_renew(const struct tls_context *old, struct tls_context **out, struct error *err);

/* tls_context_free(NULL) does nothing. */
void tls_context_free(struct tls_context *ctx);

/* The OpenSSL context, for code that must configure or inspect it. Borrowed:
 * valid until tls_context_free(ctx). */
SSL_CTX *tls_context_ssl_ctx(const struct tls_context *ctx);
enum tls_profile tls_context_profile(const struct tls_context *ctx);

/* A new server-side SSL object for one connection, or NULL with err set. The
 * caller owns it (SSL_free, or hand it to a bufferevent that frees it). */
SSL *tls_context_ssl_new(const struct tls_context *ctx, struct error *err);

/* "modern" and "legacy", the words of the configuration and the logs. */
const char *tls_profile_name(enum tls_profile profile);
/* ASCII case-insensitive; false for any other word. */
bool tls_profile_parse(struct span word, enum tls_profile *profile_out);

/*
 * One log fragment for a finished handshake, to follow the caller's
 * "sid=... tls" words:
 *   version=TLSv1.0 cipher=ECDHE-ECDSA-AES128-SHA resumed=no sni=smtp.example.test
 * version is TLSv1.0, TLSv1.1, TLSv1.2 or TLSv1.3; cipher is OpenSSL's name;
 * sni is the name the client sent, escaped with log_escape(), or "-". Returns
 * out, which holds cap bytes (TLS_DESCRIBE_CAP is always enough; less cuts
 * the line short but still NUL-terminates it).
 */
const char *tls_handshake_describe(const SSL *ssl, char *out, size_t cap);

/* The negotiated protocol version as the RFCs name it ("TLSv1.2",
 * "TLSv1.3"), or "unknown"; a static string. */
const char *tls_handshake_version(const SSL *ssl);

/*
 * The host name the client asked for in its server_name extension (RFC 6066
 * 3), or NULL when it sent none. For a resumed TLS 1.2 session it is the name
 * of the original handshake. Client text: escape it before logging. Valid
 * while ssl lives.
 */
const char *tls_sni(const SSL *ssl);

/* --- certificates per server name (names.c) ------------------------------ */

/* At most this many named certificates per context. */
#define TLS_NAMES_MAX 65536
#define TLS_NAME_MAX  253 /* a DNS name without the final dot (RFC 1035 2.3.4) */

/*
 * Load the named certificates of dir, certbot's live/ layout:
 * dir/<server name>/fullchain.pem (the chain, server certificate first) and
 * dir/<server name>/privkey.pem (unencrypted). Entries that are not
 * directories (certbot's README) are skipped; a directory whose name is not
 * a host name, a missing or unreadable file, an encrypted or mismatched key,
 * or a certificate that does not cover the directory's name fails the whole
 * load with ERROR_CONFIG naming the file. A client whose SNI (RFC 6066 3)
 * names one of them gets that certificate; any other client the context's
 * own. *count_out receives the number loaded. Call once, before the context
 * serves anyone; the table lives as long as the SSL_CTX (handshakes still
 * running on a context replaced by a reload keep theirs).
 */
int tls_context_load_names(struct tls_context *ctx, const char *dir, size_t *count_out,
			   struct error *err);

/*
 * The name this server answers to on ssl: the client's SNI, in lower case,
 * when the certificate it was given covers it (RFC 6125 rules,
 * X509_check_host) — so a client cannot make us call ourselves by a name of
 * its choosing. true and out filled (cap > TLS_NAME_MAX), else false and
 * out "". After the handshake.
 */
bool tls_server_name(SSL *ssl, char *out, size_t cap);

/*
 * Whether the certificate of cert_path covers host name (X509_check_host;
 * wildcards per RFC 6125). 1 yes, 0 no, -1 with err when the file cannot be
 * read. For `postgate config check`.
 */
int tls_cert_file_covers(const char *cert_path, const char *name, struct error *err);

#endif
