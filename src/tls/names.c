/*
 * names: certificates chosen by the server name a client asks for (SNI, RFC
 * 6066 3). Each hosted domain has its own server names (smtp.<domain>,
 * pop.<domain>); a client that names one gets that name's certificate, any
 * other client the context's own (which must then carry every name: Windows
 * XP sends no SNI). The table of names hangs off the SSL_CTX as ex_data, so
 * it lives exactly as long as the context: a reload makes new contexts, and
 * handshakes still running on an old one keep their table.
 *
 * The callback also accepts every name and thereby records it: OpenSSL
 * keeps the name in a TLS 1.2 session only when the callback answers
 * SSL_TLSEXT_ERR_OK (a resumed session would otherwise have none), and the
 * ServerHello then acknowledges the extension (RFC 6066 3).
 */
#include "tls/context.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls/internal.h"

#define NAMES_CERT_FILE "fullchain.pem"
#define NAMES_KEY_FILE	"privkey.pem"

struct tls_name {
	char name[TLS_NAME_MAX + 1]; /* lower case */
	X509 *cert;
	EVP_PKEY *key;
	STACK_OF(X509) * chain; /* the intermediates */
};

struct tls_names {
	size_t count, cap;
	struct tls_name *items; /* sorted by name */
};

static int names_index = -1;
static pthread_once_t names_once = PTHREAD_ONCE_INIT;

static void name_clear(struct tls_name *n)
{
	X509_free(n->cert);
	EVP_PKEY_free(n->key);
	sk_X509_pop_free(n->chain, X509_free);
	memset(n, 0, sizeof(*n));
}

static void names_free(struct tls_names *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->count; i++)
		name_clear(&t->items[i]);
	free(t->items);
	free(t);
}

static void names_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			  void *argp)
{
	(void) parent;
	(void) ad;
	(void) idx;
	(void) argl;
	(void) argp;
	names_free(ptr);
}

static void names_index_make(void)
{
	names_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, names_ex_free);
}

static int refuse_passphrase(char *buf, int size, int rwflag, void *userdata)
{
	(void) buf;
	(void) size;
	(void) rwflag;
	(void) userdata;
	return -1;
}

/* A host name in lower case, without a final dot: letters, digits, '-' and
 * '.', labels of 1 to 63 octets (RFC 1123 2.1). false for anything else. */
static bool name_normalize(const char *in, char out[TLS_NAME_MAX + 1])
{
	size_t len = strnlen(in, TLS_NAME_MAX + 2), label = 0;

	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > TLS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char) in[i];

		if (c == '.') {
			if (label == 0 || in[i - 1] == '-')
				return false;
			label = 0;
		} else if (isalnum(c) || (c == '-' && label > 0)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
		out[i] = (char) tolower(c);
	}
	out[len] = '\0';
	return label > 0 && in[len - 1] != '-';
}

static int name_compare(const void *a, const void *b)
{
	return strcmp(((const struct tls_name *) a)->name, ((const struct tls_name *) b)->name);
}

/* OpenSSL's first reason, emptying its queue. */
static const char *reason_of(char *buf, size_t cap, bool *is_encrypted)
{
	unsigned long code;
	bool has = false;

	snprintf(buf, cap, "unknown OpenSSL error");
	while ((code = ERR_get_error()) != 0) {
		if (ERR_GET_LIB(code) == ERR_LIB_PEM &&
		    ERR_GET_REASON(code) == PEM_R_BAD_PASSWORD_READ && is_encrypted != NULL)
			*is_encrypted = true;
		if (!has && ERR_reason_error_string(code) != NULL) {
			snprintf(buf, cap, "%s", ERR_reason_error_string(code));
			has = true;
		}
	}
	return buf;
}

static BIO *open_file(const char *path, struct error *err)
{
	struct stat st;
	BIO *bio;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	if (fd < 0) {
		error_set(err, ERROR_CONFIG, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		error_set(err, ERROR_CONFIG, "%s is not a regular file", path);
		return NULL;
	}
	bio = BIO_new_fd(fd, BIO_CLOSE);
	if (bio == NULL) {
		close(fd);
		error_set(err, ERROR_SOFTWARE, "out of memory reading %s", path);
	}
	return bio;
}

/* The certificate of path, then its chain (chain_out may be NULL). */
static int read_chain(const char *path, X509 **cert_out, STACK_OF(X509) * *chain_out,
		      struct error *err)
{
	char reason[256];
	BIO *bio = open_file(path, err);
	X509 *extra;

	*cert_out = NULL;
	if (chain_out != NULL)
		*chain_out = NULL;
	if (bio == NULL)
		return -1;
	ERR_clear_error();
	*cert_out = PEM_read_bio_X509(bio, NULL, refuse_passphrase, NULL);
	if (*cert_out == NULL) {
		BIO_free(bio);
		return error_set(err, ERROR_CONFIG, "cannot use certificate %s: %s", path,
				 reason_of(reason, sizeof(reason), NULL));
	}
	if (chain_out != NULL) {
		*chain_out = sk_X509_new_null();
		while (*chain_out != NULL &&
		       (extra = PEM_read_bio_X509(bio, NULL, refuse_passphrase, NULL)) != NULL)
			if (sk_X509_push(*chain_out, extra) == 0) {
				X509_free(extra);
				break;
			}
	}
	/* The end of the file shows as "no start line": not an error. */
	ERR_clear_error();
	BIO_free(bio);
	if (chain_out != NULL && *chain_out == NULL) {
		X509_free(*cert_out);
		*cert_out = NULL;
		return error_set(err, ERROR_SOFTWARE, "out of memory reading %s", path);
	}
	return 0;
}

static int name_load(SSL_CTX *ssl_ctx, const char *dir, const char *entry, struct tls_name *n,
		     struct error *err)
{
	char cert_path[4096], key_path[4096], reason[256];
	bool is_encrypted = false;
	BIO *bio;
	SSL *probe;

	snprintf(cert_path, sizeof(cert_path), "%s/%s/%s", dir, entry, NAMES_CERT_FILE);
	snprintf(key_path, sizeof(key_path), "%s/%s/%s", dir, entry, NAMES_KEY_FILE);
	if (read_chain(cert_path, &n->cert, &n->chain, err) < 0)
		return -1;
	if ((bio = open_file(key_path, err)) == NULL)
		return -1;
	n->key = PEM_read_bio_PrivateKey(bio, NULL, refuse_passphrase, NULL);
	BIO_free(bio);
	if (n->key == NULL) {
		reason_of(reason, sizeof(reason), &is_encrypted);
		if (is_encrypted)
			return error_set(
				err, ERROR_CONFIG,
				"private key %s is encrypted: the daemon starts unattended "
				"and needs it without a passphrase",
				key_path);
		return error_set(err, ERROR_CONFIG, "cannot use private key %s: %s", key_path,
				 reason);
	}
	if (X509_check_private_key(n->cert, n->key) != 1) {
		ERR_clear_error();
		return error_set(err, ERROR_CONFIG, "private key %s does not match certificate %s",
				 key_path, cert_path);
	}
	if (X509_check_host(n->cert, n->name, 0, 0, NULL) != 1)
		return error_set(err, ERROR_CONFIG, "certificate %s does not cover the name %s",
				 cert_path, n->name);
	/* What the profile's security level will say at the handshake, now. */
	probe = SSL_new(ssl_ctx);
	if (probe == NULL || SSL_use_cert_and_key(probe, n->cert, n->key, n->chain, 1) != 1) {
		SSL_free(probe);
		return error_set(err, ERROR_CONFIG, "cannot use certificate %s: %s", cert_path,
				 reason_of(reason, sizeof(reason), NULL));
	}
	SSL_free(probe);
	return 0;
}

int tls_context_load_names(struct tls_context *ctx, const char *dir, size_t *count_out,
			   struct error *err)
{
	SSL_CTX *ssl_ctx = tls_context_ssl_ctx(ctx);
	struct tls_names *t;
	struct dirent *d;
	DIR *dp;
	int rc = -1;

	*count_out = 0;
	pthread_once(&names_once, names_index_make);
	if (names_index < 0)
		return error_set(err, ERROR_SOFTWARE, "cannot register the TLS names table");
	if (SSL_CTX_get_ex_data(ssl_ctx, names_index) != NULL)
		return error_set(err, ERROR_SOFTWARE, "the TLS names are loaded already");
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return error_set(err, ERROR_SOFTWARE, "out of memory");
	dp = opendir(dir);
	if (dp == NULL) {
		error_set(err, ERROR_CONFIG, "tls_cert_dir %s: %s", dir, strerror(errno));
		goto out;
	}
	while ((errno = 0, d = readdir(dp)) != NULL) {
		struct tls_name *n;
		struct stat st;

		if (d->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(dp), d->d_name, &st, 0) != 0 || !S_ISDIR(st.st_mode))
			continue; /* certbot's README, stray files */
		if (t->count == TLS_NAMES_MAX) {
			error_set(err, ERROR_CONFIG, "tls_cert_dir %s: more than %d names", dir,
				  TLS_NAMES_MAX);
			goto out;
		}
		if (t->count == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 16;
			struct tls_name *items = realloc(t->items, cap * sizeof(*items));

			if (items == NULL) {
				error_set(err, ERROR_SOFTWARE, "out of memory");
				goto out;
			}
			t->items = items;
			t->cap = cap;
		}
		n = &t->items[t->count];
		memset(n, 0, sizeof(*n));
		if (!name_normalize(d->d_name, n->name)) {
			error_set(err, ERROR_CONFIG, "tls_cert_dir %s: %s is not a host name", dir,
				  d->d_name);
			goto out;
		}
		t->count++; /* counted now so that a failure below frees it */
		if (name_load(ssl_ctx, dir, d->d_name, n, err) < 0)
			goto out;
	}
	if (errno != 0) {
		error_set(err, ERROR_IO, "tls_cert_dir %s: %s", dir, strerror(errno));
		goto out;
	}
	qsort(t->items, t->count, sizeof(*t->items), name_compare);
	for (size_t i = 1; i < t->count; i++)
		if (strcmp(t->items[i - 1].name, t->items[i].name) == 0) {
			error_set(err, ERROR_CONFIG, "tls_cert_dir %s: %s appears twice", dir,
				  t->items[i].name);
			goto out;
		}
	if (SSL_CTX_set_ex_data(ssl_ctx, names_index, t) != 1) {
		error_set(err, ERROR_SOFTWARE, "cannot attach the TLS names table");
		goto out;
	}
	*count_out = t->count;
	t = NULL;
	rc = 0;
out:
	if (dp != NULL)
		closedir(dp);
	names_free(t);
	return rc;
}

int tls_names_on_server_name(SSL *ssl, int *alert, void *arg)
{
	const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	const struct tls_names *t;
	struct tls_name key;
	const struct tls_name *found;

	(void) alert;
	(void) arg;
	if (sni == NULL || names_index < 0)
		return SSL_TLSEXT_ERR_OK;
	t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), names_index);
	if (t == NULL || t->count == 0 || !name_normalize(sni, key.name))
		return SSL_TLSEXT_ERR_OK;
	found = bsearch(&key, t->items, t->count, sizeof(*t->items), name_compare);
	if (found != NULL &&
	    SSL_use_cert_and_key(ssl, found->cert, found->key, found->chain, 1) != 1)
		ERR_clear_error(); /* checked at load; the default one stays */
	return SSL_TLSEXT_ERR_OK;
}

bool tls_server_name(SSL *ssl, char *out, size_t cap)
{
	const char *sni = ssl != NULL ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;
	char name[TLS_NAME_MAX + 1];
	X509 *cert = ssl != NULL ? SSL_get_certificate(ssl) : NULL;

	if (cap > 0)
		out[0] = '\0';
	if (sni == NULL || cert == NULL || cap <= TLS_NAME_MAX || !name_normalize(sni, name))
		return false;
	if (X509_check_host(cert, name, 0, 0, NULL) != 1)
		return false;
	snprintf(out, cap, "%s", name);
	return true;
}

int tls_cert_file_covers(const char *cert_path, const char *name, struct error *err)
{
	X509 *cert;
	int rc;

	if (read_chain(cert_path, &cert, NULL, err) < 0)
		return -1;
	rc = X509_check_host(cert, name, 0, 0, NULL) == 1 ? 1 : 0;
	X509_free(cert);
	return rc;
}
