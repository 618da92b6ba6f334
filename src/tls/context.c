/*
 * context: OpenSSL server contexts for the two TLS profiles. Owns the choice
 * of protocol versions, cipher suites, options, session resumption and the
 * loading of the certificate and key. It never reads a file after
 * tls_context_new() returns, never asks for a passphrase, and never points an
 * OpenSSL callback at the struct tls_context (a reload frees it while SSL
 * objects made from it are still alive).
 */
#include "tls/context.h"
#include "tls/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/*
 * TLS 1.2 suites of the modern profile: the ECDHE suites of Mozilla's
 * "intermediate" configuration (AES-GCM, ChaCha20-Poly1305; RFC 5289, RFC
 * 7905), ECDSA first because `postgate init` makes an ECDSA key. Mozilla's
 * DHE-RSA suites are left out: every client that has these AEAD ciphers also
 * has ECDHE. TLS 1.3 keeps OpenSSL's default suites (RFC 8446 9.1).
 */
#define TLS_MODERN_CIPHERS                                           \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/*
 * The legacy profile: the modern list, then Mozilla's "old" configuration
 * without DHE and without DES-CBC3-SHA (absent from this OpenSSL). The
 * ECDHE-*-AES*-SHA suites (RFC 4492 6) are what Vista's SChannel offers with
 * ECDHE, AES*-SHA (RFC 5246 A.5, RSA key exchange) what it offers without;
 * both are TLS 1.0 suites, usable with SHA-1 signatures only at security
 * level 0.
 */
#define TLS_LEGACY_CIPHERS                                        \
	TLS_MODERN_CIPHERS ":"                                    \
			   "ECDHE-ECDSA-AES128-SHA256:"           \
			   "ECDHE-RSA-AES128-SHA256:"             \
			   "ECDHE-ECDSA-AES128-SHA:"              \
			   "ECDHE-RSA-AES128-SHA:"                \
			   "ECDHE-ECDSA-AES256-SHA384:"           \
			   "ECDHE-RSA-AES256-SHA384:"             \
			   "ECDHE-ECDSA-AES256-SHA:"              \
			   "ECDHE-RSA-AES256-SHA:"                \
			   "AES128-GCM-SHA256:AES256-GCM-SHA384:" \
			   "AES128-SHA256:AES256-SHA256:"         \
			   "AES128-SHA:AES256-SHA:@SECLEVEL=0"

/* Mozilla "intermediate": X25519 (RFC 7748), P-256, P-384. */
#define TLS_MODERN_GROUPS "X25519:P-256:P-384"

/* OpenSSL's level 2, 112-bit security: RSA and DH keys of 2048 bits and
 * more, ECC keys of 224 bits and more, no SHA-1 signatures (which TLS 1.0 and
 * 1.1 cannot do without). */
#define TLS_MODERN_SECURITY_LEVEL 2

struct tls_context {
	SSL_CTX *ssl_ctx;
	enum tls_profile profile;
};

/* OpenSSL's most recent reason, for an error message; empties the queue. */
static const char *openssl_reason(char *buf, size_t cap)
{
	unsigned long code = ERR_peek_last_error();
	const char *reason = code != 0 ? ERR_reason_error_string(code) : NULL;

	if (code == 0)
		snprintf(buf, cap, "unknown OpenSSL error");
	else if (reason != NULL)
		snprintf(buf, cap, "%s", reason);
	else
		ERR_error_string_n(code, buf, cap);
	ERR_clear_error();
	return buf;
}

/* The daemon starts unattended: an encrypted key is an error, not a prompt. */
static int refuse_passphrase(char *buf, int size, int rwflag, void *userdata)
{
	(void) buf;
	(void) size;
	(void) rwflag;
	(void) userdata;
	return -1;
}

static int configure_profile(SSL_CTX *ssl_ctx, enum tls_profile profile, struct error *err)
{
	/* Both profiles: no TLS compression (CRIME), no renegotiation (no
	 * client of ours needs it, and RFC 9266 channel binding is not defined
	 * with it), our own suite order, and a peer that closes without
	 * close_notify is an end of stream, not an error: Outlook sends RST
	 * after QUIT without closing TLS. */
	uint64_t options = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
			   SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF;
	const char *ciphers = TLS_MODERN_CIPHERS;
	int min_version = TLS1_2_VERSION;
	char reason[256];

	if (profile == TLS_PROFILE_LEGACY) {
		/* SSL_OP_ALL is OpenSSL's set of interoperability workarounds; here
		 * the one that matters is SSL_OP_DONT_INSERT_EMPTY_FRAGMENTS: the
		 * TLS 1.0 CBC countermeasure of empty records breaks old Eudora and
		 * old Microsoft clients. (SSL_OP_MICROSOFT_BIG_SSLV3_BUFFER is 0 in
		 * OpenSSL 3 and does nothing.) */
		options |= SSL_OP_ALL;
		ciphers = TLS_LEGACY_CIPHERS;
		min_version = TLS1_VERSION;
		SSL_CTX_set_security_level(ssl_ctx, 0);
	} else {
		SSL_CTX_set_security_level(ssl_ctx, TLS_MODERN_SECURITY_LEVEL);
		if (SSL_CTX_set1_groups_list(ssl_ctx, TLS_MODERN_GROUPS) != 1)
			return error_set(err, ERROR_SOFTWARE, "cannot set the TLS groups: %s",
					 openssl_reason(reason, sizeof(reason)));
	}
	SSL_CTX_set_options(ssl_ctx, options);
	/* Session tickets stay on (RFC 5077, RFC 8446 4.6.1), with the ticket
	 * keys OpenSSL makes for each context: a reload or a restart changes
	 * them, and the old tickets then fall back to a full handshake. */
	SSL_CTX_clear_options(ssl_ctx, SSL_OP_NO_TICKET);
	/* One TLS 1.3 ticket per handshake, not OpenSSL's two (RFC 8446
	 * 4.6.1 lets the server choose). A second ticket serves a browser's
	 * parallel connections; a mail client reconnects one at a time and
	 * gets a fresh ticket on every resumed connection. Each ticket costs
	 * an encryption, a MAC and a record on the wire of every handshake. */
	if (SSL_CTX_set_num_tickets(ssl_ctx, TLS_TICKETS_PER_HANDSHAKE) != 1)
		return error_set(err, ERROR_SOFTWARE, "cannot set the number of TLS tickets: %s",
				 openssl_reason(reason, sizeof(reason)));
	/* Tens of thousands of idle sessions: give back the 34 KB of record
	 * buffers between reads. */
	SSL_CTX_set_mode(ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_min_proto_version(ssl_ctx, min_version) != 1 ||
	    SSL_CTX_set_max_proto_version(ssl_ctx, 0) != 1)
		return error_set(err, ERROR_SOFTWARE, "cannot set the TLS protocol versions: %s",
				 openssl_reason(reason, sizeof(reason)));
	if (SSL_CTX_set_cipher_list(ssl_ctx, ciphers) != 1)
		return error_set(err, ERROR_SOFTWARE, "cannot set the TLS cipher suites: %s",
				 openssl_reason(reason, sizeof(reason)));
	return 0;
}

static int configure_sessions(SSL_CTX *ssl_ctx, enum tls_profile profile, struct error *err)
{
	const char *id_context = tls_profile_name(profile);
	char reason[256];

	/* A server-side cache of session IDs (RFC 5246 7.4.1.2): clients
	 * without ticket support (SChannel before Windows 8, Outlook) resume
	 * only this way. The context names the profile, so a session of one
	 * profile never resumes on the other. */
	SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(ssl_ctx, TLS_SESSION_CACHE_SIZE);
	SSL_CTX_set_timeout(ssl_ctx, TLS_SESSION_TIMEOUT_SECONDS);
	if (SSL_CTX_set_session_id_context(ssl_ctx, (const unsigned char *) id_context,
					   (unsigned) strlen(id_context)) != 1)
		return error_set(err, ERROR_SOFTWARE, "cannot set the TLS session context: %s",
				 openssl_reason(reason, sizeof(reason)));
	SSL_CTX_set_tlsext_servername_callback(ssl_ctx, tls_names_on_server_name);
	return 0;
}

/* The kind of failure behind OpenSSL's error queue, and its first reason
 * (with OpenSSL's detail) in buf; empties the queue. */
enum load_problem { LOAD_OTHER, LOAD_ENCRYPTED, LOAD_MISMATCH };

static enum load_problem load_problem(char *buf, size_t cap)
{
	enum load_problem problem = LOAD_OTHER;
	bool has_reason = false;
	unsigned long code;
	const char *data;
	int flags;

	snprintf(buf, cap, "unknown OpenSSL error");
	while ((code = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		const char *reason = ERR_reason_error_string(code);

		if (ERR_GET_LIB(code) == ERR_LIB_PEM &&
		    ERR_GET_REASON(code) == PEM_R_BAD_PASSWORD_READ)
			problem = LOAD_ENCRYPTED;
		if (ERR_GET_LIB(code) == ERR_LIB_X509 &&
		    ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH)
			problem = LOAD_MISMATCH;
		if (has_reason || reason == NULL)
			continue;
		if ((flags & ERR_TXT_STRING) && data != NULL && data[0] != '\0')
			snprintf(buf, cap, "%s: %s", reason, data);
		else
			snprintf(buf, cap, "%s", reason);
		has_reason = true;
	}
	return problem;
}

/* A clear message for a missing or unreadable file before OpenSSL's. */
static int check_readable(const char *what, const char *path, struct error *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	if (fd < 0)
		return error_set(err, ERROR_CONFIG, "cannot read %s %s: %s", what, path,
				 strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return error_set(err, ERROR_CONFIG, "%s %s is not a regular file", what, path);
	}
	close(fd);
	return 0;
}

static int load_key_pair(SSL_CTX *ssl_ctx, const char *cert_path, const char *key_path,
			 struct error *err)
{
	char reason[256];

	if (check_readable("certificate", cert_path, err) < 0 ||
	    check_readable("private key", key_path, err) < 0)
		return -1;
	SSL_CTX_set_default_passwd_cb(ssl_ctx, refuse_passphrase);
	/* The chain form: a fullchain.pem with intermediates works as is. */
	if (SSL_CTX_use_certificate_chain_file(ssl_ctx, cert_path) != 1) {
		load_problem(reason, sizeof(reason));
		return error_set(err, ERROR_CONFIG, "cannot use certificate %s: %s", cert_path,
				 reason);
	}
	/* OpenSSL checks here that the key matches the certificate. */
	if (SSL_CTX_use_PrivateKey_file(ssl_ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ssl_ctx) != 1) {
		switch (load_problem(reason, sizeof(reason))) {
		case LOAD_ENCRYPTED:
			return error_set(
				err, ERROR_CONFIG,
				"private key %s is encrypted: the daemon starts unattended "
				"and needs it without a passphrase",
				key_path);
		case LOAD_MISMATCH:
			return error_set(err, ERROR_CONFIG,
					 "private key %s does not match certificate %s", key_path,
					 cert_path);
		case LOAD_OTHER:
			break;
		}
		return error_set(err, ERROR_CONFIG, "cannot use private key %s: %s", key_path,
				 reason);
	}
	return 0;
}

int tls_context_new(const char *cert_path, const char *key_path, enum tls_profile profile,
		    struct tls_context **out, struct error *err)
{
	struct tls_context *ctx;
	char reason[256];

	*out = NULL;
	if (profile != TLS_PROFILE_MODERN && profile != TLS_PROFILE_LEGACY)
		return error_set(err, ERROR_SOFTWARE, "unknown TLS profile %d", (int) profile);
	ERR_clear_error();
	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL)
		return error_set(err, ERROR_SOFTWARE, "out of memory");
	ctx->profile = profile;
	ctx->ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (ctx->ssl_ctx == NULL) {
		error_set(err, ERROR_SOFTWARE, "cannot make a TLS context: %s",
			  openssl_reason(reason, sizeof(reason)));
		free(ctx);
		return -1;
	}
	/* The profile first: the security level decides which keys load. */
	if (configure_profile(ctx->ssl_ctx, profile, err) < 0 ||
	    configure_sessions(ctx->ssl_ctx, profile, err) < 0 ||
	    load_key_pair(ctx->ssl_ctx, cert_path, key_path, err) < 0) {
		tls_context_free(ctx);
		return -1;
	}
	*out = ctx;
	return 0;
}

int tls_context_renew(const struct tls_context *old, struct tls_context **out, struct error *err)
{
	struct tls_context *ctx;
	X509 *cert = SSL_CTX_get0_certificate(old->ssl_ctx);
	EVP_PKEY *key = SSL_CTX_get0_privatekey(old->ssl_ctx);
	STACK_OF(X509) *chain = NULL;
	char reason[256];

	*out = NULL;
	ERR_clear_error();
	if (cert == NULL || key == NULL || SSL_CTX_get0_chain_certs(old->ssl_ctx, &chain) != 1)
		return error_set(err, ERROR_SOFTWARE, "the TLS context has no certificate");
	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL)
		return error_set(err, ERROR_SOFTWARE, "out of memory");
	ctx->profile = old->profile;
	ctx->ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (ctx->ssl_ctx == NULL || configure_profile(ctx->ssl_ctx, ctx->profile, err) < 0 ||
	    configure_sessions(ctx->ssl_ctx, ctx->profile, err) < 0) {
		if (ctx->ssl_ctx == NULL)
			error_set(err, ERROR_SOFTWARE, "cannot make a TLS context: %s",
				  openssl_reason(reason, sizeof(reason)));
		tls_context_free(ctx);
		return -1;
	}
	if (SSL_CTX_use_cert_and_key(ctx->ssl_ctx, cert, key, chain, 1) != 1) {
		error_set(err, ERROR_SOFTWARE, "cannot reuse the certificate: %s",
			  openssl_reason(reason, sizeof(reason)));
		tls_context_free(ctx);
		return -1;
	}
	*out = ctx;
	return 0;
}

void tls_context_free(struct tls_context *ctx)
{
	if (ctx == NULL)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

SSL_CTX *tls_context_ssl_ctx(const struct tls_context *ctx)
{
	return ctx->ssl_ctx;
}

enum tls_profile tls_context_profile(const struct tls_context *ctx)
{
	return ctx->profile;
}

SSL *tls_context_ssl_new(const struct tls_context *ctx, struct error *err)
{
	char reason[256];
	SSL *ssl = SSL_new(ctx->ssl_ctx);

	if (ssl == NULL)
		error_set(err, ERROR_SOFTWARE, "cannot make a TLS connection object: %s",
			  openssl_reason(reason, sizeof(reason)));
	return ssl;
}

const char *tls_profile_name(enum tls_profile profile)
{
	return profile == TLS_PROFILE_LEGACY ? "legacy" : "modern";
}

bool tls_profile_parse(struct span word, enum tls_profile *profile_out)
{
	if (span_eq_cstr_nocase(word, "modern"))
		*profile_out = TLS_PROFILE_MODERN;
	else if (span_eq_cstr_nocase(word, "legacy"))
		*profile_out = TLS_PROFILE_LEGACY;
	else
		return false;
	return true;
}

/* The RFCs' names (RFC 2246, 4346, 5246, 8446), not OpenSSL's "TLSv1". */
static const char *version_name(int version)
{
	switch (version) {
	case TLS1_VERSION:
		return "TLSv1.0";
	case TLS1_1_VERSION:
		return "TLSv1.1";
	case TLS1_2_VERSION:
		return "TLSv1.2";
	case TLS1_3_VERSION:
		return "TLSv1.3";
	default:
		return "unknown";
	}
}

const char *tls_handshake_version(const SSL *ssl)
{
	return version_name(SSL_version(ssl));
}

const char *tls_handshake_describe(const SSL *ssl, char *out, size_t cap)
{
	char escaped[LOG_ESCAPED_CAP];
	const char *sni = tls_sni(ssl);
	const char *cipher = SSL_get_cipher_name(ssl);

	if (cap == 0)
		return out;
	snprintf(out, cap, "version=%s cipher=%s resumed=%s sni=%s", version_name(SSL_version(ssl)),
		 cipher != NULL ? cipher : "-", SSL_session_reused(ssl) ? "yes" : "no",
		 sni != NULL ? log_escape(span_from_cstr(sni), escaped) : "-");
	return out;
}

const char *tls_sni(const SSL *ssl)
{
	return SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
}
