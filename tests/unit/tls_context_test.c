/*
 * Tests for src/tls/context.c: the two profiles against a real OpenSSL
 * client over an in-memory BIO pair — which versions and suites each
 * accepts, session resumption by session ID and by ticket, SNI, the
 * handshake log fragment, reloads, and refused key files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/span.h"
#include "tls/cert.h"
#include "tls/context.h"

#define HANDSHAKE_STEPS_MAX 64 /* a TLS 1.2 handshake takes 4 flights each way */

/* Key pairs made once in one temporary directory, and a context of each
 * profile over the ECDSA P-256 pair that `postgate init` would make. */
struct fixture {
	char dir[64];
	char cert[128], key[128];	      /* ECDSA P-256, as postgate init */
	char other_cert[128], other_key[128]; /* a second ECDSA pair */
	char rsa_cert[128], rsa_key[128];     /* RSA 2048 */
	char weak_cert[128], weak_key[128];   /* RSA 1024 */
	char encrypted_key[128];	      /* the first key, passphrase-protected */
	char missing[128];
	struct tls_context *modern, *legacy;
};

static void join(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);

	assert_true(n > 0 && (size_t) n < cap);
}

static void write_pem_key(const char *path, EVP_PKEY *key, const EVP_CIPHER *cipher)
{
	FILE *file = fopen(path, "w");

	assert_non_null(file);
	assert_int_equal(PEM_write_PrivateKey(file, key, cipher,
					      cipher != NULL ? (unsigned char *) "secret" : NULL,
					      cipher != NULL ? 6 : 0, NULL, NULL),
			 1);
	assert_int_equal(fclose(file), 0);
}

/* A self-signed RSA certificate of `bits` (tls_cert_make_selfsigned makes
 * ECDSA only). */
static void make_rsa_pair(const char *cert_path, const char *key_path, unsigned bits)
{
	EVP_PKEY *key = EVP_RSA_gen(bits);
	X509 *x509 = X509_new();
	X509_NAME *name;
	FILE *file;

	assert_non_null(key);
	assert_non_null(x509);
	assert_int_equal(X509_set_version(x509, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x509), 1), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x509), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x509), 86400));
	name = X509_get_subject_name(x509);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						    (const unsigned char *) "rsa.example.test", -1,
						    -1, 0),
			 1);
	assert_int_equal(X509_set_issuer_name(x509, name), 1);
	assert_int_equal(X509_set_pubkey(x509, key), 1);
	assert_true(X509_sign(x509, key, EVP_sha256()) > 0);
	file = fopen(cert_path, "w");
	assert_non_null(file);
	assert_int_equal(PEM_write_X509(file, x509), 1);
	assert_int_equal(fclose(file), 0);
	write_pem_key(key_path, key, NULL);
	X509_free(x509);
	EVP_PKEY_free(key);
}

static int setup(void **state)
{
	static struct fixture f;
	static const char *const names[] = { "mail.example.test", "smtp.example.test" };
	struct error err;
	EVP_PKEY *key;
	FILE *file;

	snprintf(f.dir, sizeof(f.dir), "/tmp/postgate-tls-context-test-XXXXXX");
	if (mkdtemp(f.dir) == NULL)
		return -1;
	join(f.cert, sizeof(f.cert), f.dir, "cert.pem");
	join(f.key, sizeof(f.key), f.dir, "key.pem");
	join(f.other_cert, sizeof(f.other_cert), f.dir, "other-cert.pem");
	join(f.other_key, sizeof(f.other_key), f.dir, "other-key.pem");
	join(f.rsa_cert, sizeof(f.rsa_cert), f.dir, "rsa-cert.pem");
	join(f.rsa_key, sizeof(f.rsa_key), f.dir, "rsa-key.pem");
	join(f.weak_cert, sizeof(f.weak_cert), f.dir, "weak-cert.pem");
	join(f.weak_key, sizeof(f.weak_key), f.dir, "weak-key.pem");
	join(f.encrypted_key, sizeof(f.encrypted_key), f.dir, "encrypted-key.pem");
	join(f.missing, sizeof(f.missing), f.dir, "missing.pem");
	if (tls_cert_make_selfsigned(names, ARRAY_LEN(names), 30, f.cert, f.key, &err) < 0 ||
	    tls_cert_make_selfsigned(names, 1, 30, f.other_cert, f.other_key, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err.message);
		return -1;
	}
	make_rsa_pair(f.rsa_cert, f.rsa_key, 2048);
	make_rsa_pair(f.weak_cert, f.weak_key, 1024);
	file = fopen(f.key, "r");
	if (file == NULL)
		return -1;
	key = PEM_read_PrivateKey(file, NULL, NULL, NULL);
	fclose(file);
	if (key == NULL)
		return -1;
	write_pem_key(f.encrypted_key, key, EVP_aes_256_cbc());
	EVP_PKEY_free(key);
	if (tls_context_new(f.cert, f.key, TLS_PROFILE_MODERN, &f.modern, &err) < 0 ||
	    tls_context_new(f.cert, f.key, TLS_PROFILE_LEGACY, &f.legacy, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err.message);
		return -1;
	}
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	const char *files[] = { f->cert,      f->key,	   f->other_cert,
				f->other_key, f->rsa_cert, f->rsa_key,
				f->weak_cert, f->weak_key, f->encrypted_key };

	tls_context_free(f->modern);
	tls_context_free(f->legacy);
	for (size_t i = 0; i < ARRAY_LEN(files); i++)
		unlink(files[i]);
	rmdir(f->dir);
	return 0;
}

/* What the client asks for. max_version 0: the highest it has. */
struct client_config {
	int min_version, max_version;
	const char *ciphers; /* TLS 1.2 and below; NULL: the client default */
	uint64_t options;    /* e.g. SSL_OP_NO_TICKET */
};

/* Sessions the test clients were handed: one per TLS 1.3 ticket. */
static int sessions_received;

static int on_new_session(SSL *ssl, SSL_SESSION *session)
{
	(void) ssl;
	(void) session;
	sessions_received++;
	return 0; /* not kept: OpenSSL frees it when done */
}

static SSL_CTX *client_ctx_new(const struct client_config *config)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	assert_non_null(ctx);
	/* The test client verifies nothing; clients of the old era ask the user. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_security_level(ctx, 0);
	assert_int_equal(SSL_CTX_set_min_proto_version(ctx, config->min_version), 1);
	assert_int_equal(SSL_CTX_set_max_proto_version(ctx, config->max_version), 1);
	if (config->ciphers != NULL)
		assert_int_equal(SSL_CTX_set_cipher_list(ctx, config->ciphers), 1);
	SSL_CTX_set_options(ctx, config->options);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
	SSL_CTX_sess_set_new_cb(ctx, on_new_session);
	return ctx;
}

struct handshake {
	bool is_ok;
	int version;
	char cipher[64];
	bool is_resumed;
	bool has_session_id; /* the server sent a non-empty session ID */
	bool has_ticket;     /* ... or a ticket */
	int sessions;	     /* sessions (TLS 1.3: tickets) the client was handed */
	char describe[TLS_DESCRIBE_CAP];
	char sni[256];	      /* tls_sni() on the server, "" for NULL */
	SSL_SESSION *session; /* the client's, for a later resumption */
};

/* Step both ends until both finish or one fails. */
static bool pump(SSL *client, SSL *server)
{
	bool is_client_done = false, is_server_done = false;

	for (int i = 0; i < HANDSHAKE_STEPS_MAX && !(is_client_done && is_server_done); i++) {
		SSL *sides[2] = { client, server };
		bool *dones[2] = { &is_client_done, &is_server_done };

		for (int s = 0; s < 2; s++) {
			int r, e;

			if (*dones[s])
				continue;
			r = SSL_do_handshake(sides[s]);
			if (r == 1) {
				*dones[s] = true;
				continue;
			}
			e = SSL_get_error(sides[s], r);
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				return false;
		}
	}
	return is_client_done && is_server_done;
}

/* One connection from a fresh client SSL to the given server SSL, which this
 * frees: a caller can make it, free its context, and only then connect. */
static void run_handshake_on(SSL *server, SSL_CTX *client_ctx, const char *sni, SSL_SESSION *resume,
			     struct handshake *out)
{
	SSL *client = SSL_new(client_ctx);
	BIO *client_bio, *server_bio;
	SSL_SESSION *session;

	memset(out, 0, sizeof(*out));
	sessions_received = 0;
	assert_non_null(client);
	assert_int_equal(BIO_new_bio_pair(&client_bio, 0, &server_bio, 0), 1);
	SSL_set_bio(client, client_bio, client_bio);
	SSL_set_bio(server, server_bio, server_bio);
	SSL_set_connect_state(client);
	SSL_set_accept_state(server);
	if (sni != NULL)
		assert_int_equal(SSL_set_tlsext_host_name(client, sni), 1);
	if (resume != NULL)
		assert_int_equal(SSL_set_session(client, resume), 1);
	out->is_ok = pump(client, server);
	if (out->is_ok) {
		char byte;
		unsigned id_len = 0;
		const char *name = tls_sni(server);

		/* TLS 1.3 tickets come after the handshake: let the client read
		 * them (nothing else is pending, so this wants more input). */
		assert_true(SSL_read(client, &byte, 1) <= 0);
		out->sessions = sessions_received;
		out->version = SSL_version(server);
		snprintf(out->cipher, sizeof(out->cipher), "%s", SSL_get_cipher_name(server));
		out->is_resumed = SSL_session_reused(server) == 1;
		assert_int_equal(SSL_session_reused(client), SSL_session_reused(server));
		tls_handshake_describe(server, out->describe, sizeof(out->describe));
		snprintf(out->sni, sizeof(out->sni), "%s", name != NULL ? name : "");
		session = SSL_get1_session(client);
		assert_non_null(session);
		SSL_SESSION_get_id(session, &id_len);
		out->has_session_id = id_len > 0 && SSL_version(client) < TLS1_3_VERSION &&
				      !SSL_SESSION_has_ticket(session);
		out->has_ticket = SSL_SESSION_has_ticket(session) == 1;
		out->session = session;
		/* An orderly close: OpenSSL forgets the session of a connection
		 * freed without close_notify sent (tls_bufferevent_shutdown). */
		SSL_shutdown(client);
		SSL_shutdown(server);
	}
	ERR_clear_error();
	SSL_free(client);
	SSL_free(server);
}

static void run_handshake(struct tls_context *ctx, SSL_CTX *client_ctx, const char *sni,
			  SSL_SESSION *resume, struct handshake *out)
{
	SSL *server = tls_context_ssl_new(ctx, NULL);

	assert_non_null(server);
	run_handshake_on(server, client_ctx, sni, resume, out);
}

/* Which client each profile accepts, and what it negotiates. */
static void test_profiles_accept_and_refuse(void **state)
{
	struct fixture *f = *state;
	// clang-format off
	static const struct version_case {
		const char *name;
		enum tls_profile profile;
		struct client_config client;
		int want_version;	 /* 0: the handshake must fail */
		const char *want_cipher; /* NULL: any */
	} cases[] = {
		{ "modern: TLS 1.3 client", TLS_PROFILE_MODERN,
		  { TLS1_VERSION, 0, NULL, 0 }, TLS1_3_VERSION, NULL },
		{ "modern: TLS 1.2 client gets ECDHE-ECDSA with AES-GCM", TLS_PROFILE_MODERN,
		  { TLS1_2_VERSION, TLS1_2_VERSION, "ALL:@SECLEVEL=0", 0 }, TLS1_2_VERSION,
		  "ECDHE-ECDSA-AES128-GCM-SHA256" },
		{ "modern: TLS 1.2 ChaCha20-only client", TLS_PROFILE_MODERN,
		  { TLS1_2_VERSION, TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305", 0 },
		  TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305" },
		{ "modern refuses TLS 1.0 (Vista's ECDHE-ECDSA-AES128-SHA)", TLS_PROFILE_MODERN,
		  { TLS1_VERSION, TLS1_VERSION, "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0", 0 }, 0, NULL },
		{ "modern refuses TLS 1.0 with any suite", TLS_PROFILE_MODERN,
		  { TLS1_VERSION, TLS1_VERSION, "ALL:@SECLEVEL=0", 0 }, 0, NULL },
		{ "modern refuses TLS 1.1", TLS_PROFILE_MODERN,
		  { TLS1_1_VERSION, TLS1_1_VERSION, "ALL:@SECLEVEL=0", 0 }, 0, NULL },
		{ "modern refuses AES-CBC on TLS 1.2", TLS_PROFILE_MODERN,
		  { TLS1_2_VERSION, TLS1_2_VERSION,
		    "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256", 0 },
		  0, NULL },
		{ "legacy: TLS 1.0 with ECDHE-ECDSA-AES128-SHA (Vista)", TLS_PROFILE_LEGACY,
		  { TLS1_VERSION, TLS1_VERSION, "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0", 0 },
		  TLS1_VERSION, "ECDHE-ECDSA-AES128-SHA" },
		{ "legacy: TLS 1.0 with ECDHE-ECDSA-AES256-SHA", TLS_PROFILE_LEGACY,
		  { TLS1_VERSION, TLS1_VERSION, "ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0", 0 },
		  TLS1_VERSION, "ECDHE-ECDSA-AES256-SHA" },
		{ "legacy: TLS 1.0 picks ECDHE-ECDSA-AES128-SHA from Vista's list", TLS_PROFILE_LEGACY,
		  { TLS1_VERSION, TLS1_VERSION,
		    "AES128-SHA:AES256-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA:"
		    "ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES128-SHA:@SECLEVEL=0", 0 },
		  TLS1_VERSION, "ECDHE-ECDSA-AES128-SHA" },
		{ "legacy: TLS 1.1", TLS_PROFILE_LEGACY,
		  { TLS1_1_VERSION, TLS1_1_VERSION, "ALL:@SECLEVEL=0", 0 }, TLS1_1_VERSION, NULL },
		{ "legacy: TLS 1.2 still prefers AES-GCM", TLS_PROFILE_LEGACY,
		  { TLS1_2_VERSION, TLS1_2_VERSION, "ALL:@SECLEVEL=0", 0 }, TLS1_2_VERSION,
		  "ECDHE-ECDSA-AES128-GCM-SHA256" },
		{ "legacy: TLS 1.3", TLS_PROFILE_LEGACY,
		  { TLS1_VERSION, 0, NULL, 0 }, TLS1_3_VERSION, NULL },
	};
	// clang-format on

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct version_case *c = &cases[i];
		SSL_CTX *client_ctx = client_ctx_new(&c->client);
		struct handshake h;

		print_message("case: %s\n", c->name);
		run_handshake(c->profile == TLS_PROFILE_MODERN ? f->modern : f->legacy, client_ctx,
			      NULL, NULL, &h);
		assert_int_equal(h.is_ok, c->want_version != 0);
		if (h.is_ok) {
			print_message("      %s\n", h.describe);
			assert_int_equal(h.version, c->want_version);
			if (c->want_cipher != NULL)
				assert_string_equal(h.cipher, c->want_cipher);
			SSL_SESSION_free(h.session);
		}
		SSL_CTX_free(client_ctx);
	}
}

/* The suites on offer, read back from OpenSSL: modern has only AEAD with
 * ECDHE below TLS 1.3; legacy has the AES-CBC suites Vista needs; neither
 * has RC4, 3DES or DES (this OpenSSL has none). */
static void test_cipher_lists(void **state)
{
	struct fixture *f = *state;
	struct tls_context *ctxs[2] = { f->modern, f->legacy };
	bool has_vista_ecdsa = false, has_vista_rsa = false;

	for (size_t k = 0; k < 2; k++) {
		SSL *ssl = tls_context_ssl_new(ctxs[k], NULL);
		STACK_OF(SSL_CIPHER) *ciphers = SSL_get_ciphers(ssl);

		print_message("profile: %s\n", tls_profile_name(tls_context_profile(ctxs[k])));
		assert_true(sk_SSL_CIPHER_num(ciphers) > 0);
		for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); i++) {
			const SSL_CIPHER *cipher = sk_SSL_CIPHER_value(ciphers, i);
			const char *name = SSL_CIPHER_get_name(cipher);
			int kx = SSL_CIPHER_get_kx_nid(cipher);

			print_message("      %s\n", name);
			assert_null(strstr(name, "RC4"));
			assert_null(strstr(name, "DES"));
			assert_null(strstr(name, "NULL"));
			assert_true(kx == NID_kx_ecdhe || kx == NID_kx_any || kx == NID_kx_rsa);
			if (ctxs[k] == f->modern) {
				assert_true(SSL_CIPHER_is_aead(cipher));
				assert_true(kx == NID_kx_ecdhe || kx == NID_kx_any);
			} else {
				has_vista_ecdsa |= strcmp(name, "ECDHE-ECDSA-AES128-SHA") == 0;
				has_vista_rsa |= strcmp(name, "AES128-SHA") == 0;
			}
		}
		SSL_free(ssl);
	}
	assert_true(has_vista_ecdsa);
	assert_true(has_vista_rsa);
}

struct resume_case {
	const char *name;
	enum tls_profile profile;
	struct client_config client;
	bool want_session_id; /* the first handshake issued a session ID */
	bool want_ticket;     /* ... or a ticket */
};

/* A second connection offering the first one's session is resumed. */
static void test_resumption(void **state)
{
	struct fixture *f = *state;
	// clang-format off
	static const struct resume_case cases[] = {
		{ "session ID, TLS 1.2, client without tickets (Outlook)", TLS_PROFILE_MODERN,
		  { TLS1_2_VERSION, TLS1_2_VERSION, NULL, SSL_OP_NO_TICKET }, true, false },
		{ "session ID, TLS 1.0, legacy (Vista's SChannel has no tickets)", TLS_PROFILE_LEGACY,
		  { TLS1_VERSION, TLS1_VERSION, "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0",
		    SSL_OP_NO_TICKET }, true, false },
		{ "ticket, TLS 1.2", TLS_PROFILE_MODERN,
		  { TLS1_2_VERSION, TLS1_2_VERSION, NULL, 0 }, false, true },
		{ "ticket, TLS 1.3", TLS_PROFILE_MODERN,
		  { TLS1_3_VERSION, TLS1_3_VERSION, NULL, 0 }, false, true },
		{ "ticket, TLS 1.3, legacy", TLS_PROFILE_LEGACY,
		  { TLS1_3_VERSION, TLS1_3_VERSION, NULL, 0 }, false, true },
	};
	// clang-format on

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct resume_case *c = &cases[i];
		struct tls_context *ctx = c->profile == TLS_PROFILE_MODERN ? f->modern : f->legacy;
		SSL_CTX *client_ctx = client_ctx_new(&c->client);
		struct handshake first, second;

		print_message("case: %s\n", c->name);
		run_handshake(ctx, client_ctx, "smtp.example.test", NULL, &first);
		assert_true(first.is_ok);
		assert_false(first.is_resumed);
		assert_int_equal(first.has_session_id, c->want_session_id);
		assert_int_equal(first.has_ticket, c->want_ticket);
		assert_int_equal(SSL_SESSION_is_resumable(first.session), 1);
		run_handshake(ctx, client_ctx, "smtp.example.test", first.session, &second);
		assert_true(second.is_ok);
		print_message("      %s\n", second.describe);
		assert_true(second.is_resumed);
		assert_int_equal(second.version, first.version);
		/* One session per handshake: TLS 1.3 sends TLS_TICKETS_PER_HANDSHAKE
		 * tickets (OpenSSL's default is two), resumed or not. */
		if (first.version == TLS1_3_VERSION) {
			assert_int_equal(first.sessions, TLS_TICKETS_PER_HANDSHAKE);
			assert_int_equal(second.sessions, TLS_TICKETS_PER_HANDSHAKE);
		}
		assert_non_null(strstr(second.describe, "resumed=yes"));
		/* The name survives resumption (TLS 1.2 keeps it in the session). */
		assert_string_equal(second.sni, "smtp.example.test");
		SSL_SESSION_free(first.session);
		SSL_SESSION_free(second.session);
		SSL_CTX_free(client_ctx);
	}
}

/* The describe line and tls_sni() for what the client sent. */
static void test_describe_and_sni(void **state)
{
	struct fixture *f = *state;
	// clang-format off
	static const struct describe_case {
		const char *name;
		enum tls_profile profile;
		struct client_config client;
		const char *sni;	     /* sent by the client; NULL: none */
		const char *want_describe; /* NULL: only the sni= part is checked */
		const char *want_sni;      /* tls_sni(), "" for NULL */
	} cases[] = {
		{ "legacy TLS 1.0 with a name", TLS_PROFILE_LEGACY,
		  { TLS1_VERSION, TLS1_VERSION, "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0", 0 },
		  "smtp.example.test",
		  "version=TLSv1.0 cipher=ECDHE-ECDSA-AES128-SHA resumed=no sni=smtp.example.test",
		  "smtp.example.test" },
		{ "no name (Windows XP sends none)", TLS_PROFILE_LEGACY,
		  { TLS1_1_VERSION, TLS1_1_VERSION, "ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0", 0 }, NULL,
		  "version=TLSv1.1 cipher=ECDHE-ECDSA-AES256-SHA resumed=no sni=-", "" },
		{ "TLS 1.3 with a name", TLS_PROFILE_MODERN,
		  { TLS1_3_VERSION, TLS1_3_VERSION, NULL, 0 }, "pop.example.test",
		  "version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 resumed=no sni=pop.example.test",
		  "pop.example.test" },
		{ "a name with a space and a quote is escaped", TLS_PROFILE_MODERN,
		  { TLS1_2_VERSION, TLS1_2_VERSION, NULL, 0 }, "a b\"c",
		  "version=TLSv1.2 cipher=ECDHE-ECDSA-AES128-GCM-SHA256 resumed=no sni=\"a b\\x22c\"",
		  "a b\"c" },
	};
	// clang-format on

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct describe_case *c = &cases[i];
		SSL_CTX *client_ctx = client_ctx_new(&c->client);
		struct handshake h;

		print_message("case: %s\n", c->name);
		run_handshake(c->profile == TLS_PROFILE_MODERN ? f->modern : f->legacy, client_ctx,
			      c->sni, NULL, &h);
		assert_true(h.is_ok);
		assert_string_equal(h.describe, c->want_describe);
		assert_string_equal(h.sni, c->want_sni);
		SSL_SESSION_free(h.session);
		SSL_CTX_free(client_ctx);
	}
}

/* A short buffer cuts the line but still ends it. */
static void test_describe_short_buffer(void **state)
{
	struct fixture *f = *state;
	SSL *server = tls_context_ssl_new(f->modern, NULL);
	char full[TLS_DESCRIBE_CAP], small[12];

	assert_non_null(server);
	tls_handshake_describe(server, full, sizeof(full));
	memset(small, 'x', sizeof(small));
	assert_ptr_equal(tls_handshake_describe(server, small, sizeof(small)), small);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_memory_equal(small, full, sizeof(small) - 1);
	assert_ptr_equal(tls_handshake_describe(server, small, 0), small);
	assert_int_equal(small[0], full[0]);
	SSL_free(server);
}

/* A reload: a new context serves new connections; a connection whose SSL
 * was made from the old one completes after the old context is freed (run
 * under ASan, a use after free fails here); old sessions do not resume on the
 * new context. */
static void test_reload(void **state)
{
	struct fixture *f = *state;
	struct client_config config = { TLS1_2_VERSION, TLS1_2_VERSION, NULL, SSL_OP_NO_TICKET };
	SSL_CTX *client_ctx = client_ctx_new(&config);
	struct tls_context *old_ctx, *new_ctx;
	struct handshake first, late, again;
	struct error err;
	SSL *in_flight;

	assert_int_equal(tls_context_new(f->cert, f->key, TLS_PROFILE_MODERN, &old_ctx, &err), 0);
	run_handshake(old_ctx, client_ctx, NULL, NULL, &first);
	assert_true(first.is_ok);
	in_flight = tls_context_ssl_new(old_ctx, &err);
	assert_non_null(in_flight);

	assert_int_equal(
		tls_context_new(f->other_cert, f->other_key, TLS_PROFILE_MODERN, &new_ctx, &err),
		0);
	tls_context_free(old_ctx);

	run_handshake_on(in_flight, client_ctx, NULL, NULL, &late);
	assert_true(late.is_ok);
	run_handshake(new_ctx, client_ctx, NULL, first.session, &again);
	assert_true(again.is_ok);
	assert_false(again.is_resumed);
	SSL_SESSION_free(first.session);
	SSL_SESSION_free(late.session);
	SSL_SESSION_free(again.session);
	tls_context_free(new_ctx);
	SSL_CTX_free(client_ctx);
}

/* An RSA certificate: the RSA key-exchange suites work under legacy; a
 * 1024-bit key is refused by modern (security level 2) only. */
static void test_rsa_keys(void **state)
{
	struct fixture *f = *state;
	struct client_config config = { TLS1_VERSION, TLS1_VERSION, "AES128-SHA:@SECLEVEL=0", 0 };
	SSL_CTX *client_ctx = client_ctx_new(&config);
	struct tls_context *ctx;
	struct handshake h;
	struct error err;

	assert_int_equal(tls_context_new(f->rsa_cert, f->rsa_key, TLS_PROFILE_LEGACY, &ctx, &err),
			 0);
	run_handshake(ctx, client_ctx, NULL, NULL, &h);
	assert_true(h.is_ok);
	assert_string_equal(h.cipher, "AES128-SHA");
	SSL_SESSION_free(h.session);
	tls_context_free(ctx);

	assert_int_equal(tls_context_new(f->weak_cert, f->weak_key, TLS_PROFILE_LEGACY, &ctx, &err),
			 0);
	tls_context_free(ctx);
	ctx = (struct tls_context *) 1;
	assert_int_equal(tls_context_new(f->weak_cert, f->weak_key, TLS_PROFILE_MODERN, &ctx, &err),
			 -1);
	assert_null(ctx);
	assert_int_equal(err.kind, ERROR_CONFIG);
	print_message("      %s\n", err.message);
	assert_non_null(strstr(err.message, f->weak_cert));
	SSL_CTX_free(client_ctx);
}

/* Files that cannot make a context, each with the file named. */
static void test_refused_files(void **state)
{
	struct fixture *f = *state;
	const struct refused_case {
		const char *name, *cert, *key, *want_in_message;
	} cases[] = {
		{ "missing certificate", f->missing, f->key, f->missing },
		{ "missing key", f->cert, f->missing, f->missing },
		{ "key is a certificate", f->cert, f->cert, f->cert },
		{ "key of another certificate", f->cert, f->other_key, f->other_key },
		{ "encrypted key", f->cert, f->encrypted_key, f->encrypted_key },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct refused_case *c = &cases[i];

		for (int p = 0; p < 2; p++) {
			struct tls_context *ctx = (struct tls_context *) 1;
			struct error err;

			print_message("case: %s (%s)\n", c->name, tls_profile_name(p));
			error_clear(&err);
			assert_int_equal(tls_context_new(c->cert, c->key, p, &ctx, &err), -1);
			assert_null(ctx);
			assert_int_equal(err.kind, ERROR_CONFIG);
			print_message("      %s\n", err.message);
			assert_non_null(strstr(err.message, c->want_in_message));
			assert_int_equal(ERR_peek_error(), 0);
		}
	}
	tls_context_free(NULL);
}

static void test_profile_names(void **state)
{
	static const struct name_case {
		const char *word;
		bool is_ok;
		enum tls_profile want;
	} cases[] = {
		{ "modern", true, TLS_PROFILE_MODERN },
		{ "legacy", true, TLS_PROFILE_LEGACY },
		{ "LEGACY", true, TLS_PROFILE_LEGACY },
		{ "Modern", true, TLS_PROFILE_MODERN },
		{ "", false, 0 },
		{ "old", false, 0 },
		{ "legacy ", false, 0 },
		{ "moder", false, 0 },
	};

	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		enum tls_profile got = TLS_PROFILE_MODERN;

		print_message("case: \"%s\"\n", cases[i].word);
		assert_int_equal(tls_profile_parse(span_from_cstr(cases[i].word), &got),
				 cases[i].is_ok);
		if (cases[i].is_ok) {
			assert_int_equal(got, cases[i].want);
			assert_true(span_eq_cstr_nocase(span_from_cstr(tls_profile_name(got)),
							cases[i].word));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_profiles_accept_and_refuse),
		cmocka_unit_test(test_cipher_lists),
		cmocka_unit_test(test_resumption),
		cmocka_unit_test(test_describe_and_sni),
		cmocka_unit_test(test_describe_short_buffer),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_rsa_keys),
		cmocka_unit_test(test_refused_files),
		cmocka_unit_test(test_profile_names),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
