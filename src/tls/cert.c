/*
 * cert: certificate files. Makes the self-signed ECDSA P-256 certificate a
 * new instance starts with, and checks that a configured certificate and key
 * load and belong together. Never overwrites a file (O_EXCL), never leaves a
 * half-written pair behind, and never prompts for a passphrase: an encrypted
 * key is reported as an error.
 */
#include "tls/cert.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define CERT_SERIAL_LEN	     20	 /* RFC 5280 4.1.2.2: at most 20 octets, positive */
#define CERT_COMMON_NAME_MAX 64	 /* RFC 5280 appendix A.1: ub-common-name */
#define CERT_NAME_MAX	     253 /* RFC 1035 2.3.4 */
#define CERT_DAYS_MAX	     36500

/* The most recent OpenSSL reason, for an error message; clears the queue. */
static const char *openssl_reason(char *buf, size_t cap)
{
	unsigned long code = ERR_peek_last_error();

	if (code == 0) {
		snprintf(buf, cap, "unknown OpenSSL error");
	} else {
		ERR_error_string_n(code, buf, cap);
	}
	ERR_clear_error();
	return buf;
}

/* A DNS name as it may appear in a dNSName (RFC 5280 4.2.1.6: IA5String,
 * "preferred name syntax" of RFC 1034 3.5); "*." wildcards are not made here. */
static bool is_dns_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > CERT_NAME_MAX || name[0] == '.' || name[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char) name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return false;
		if (c == '.' && name[i + 1] == '.')
			return false;
	}
	return true;
}

static int set_serial(X509 *x509, struct error *err)
{
	unsigned char bytes[CERT_SERIAL_LEN];
	char reason[256];
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(bytes, sizeof(bytes)) != 1)
		return error_set(err, ERROR_SOFTWARE, "cannot make a certificate serial number: %s",
				 openssl_reason(reason, sizeof(reason)));
	/* Positive and never zero, whatever the random bytes were. */
	bytes[0] = (unsigned char) ((bytes[0] & 0x7f) | 0x40);
	bn = BN_bin2bn(bytes, sizeof(bytes), NULL);
	ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x509)) != NULL;
	BN_free(bn);
	if (!ok)
		return error_set(err, ERROR_SOFTWARE,
				 "cannot set the certificate serial number: %s",
				 openssl_reason(reason, sizeof(reason)));
	return 0;
}

static int add_ext(X509 *x509, X509V3_CTX *ctx, int nid, const char *value, struct error *err)
{
	char reason[256];
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok = ext != NULL && X509_add_ext(x509, ext, -1) == 1;

	X509_EXTENSION_free(ext);
	if (!ok)
		return error_set(err, ERROR_SOFTWARE, "cannot add the %s extension: %s",
				 OBJ_nid2sn(nid), openssl_reason(reason, sizeof(reason)));
	return 0;
}

/* RFC 5280 4.2.1.6: every name as a dNSName; critical when the subject is empty. */
static int add_subject_alt_names(X509 *x509, const char *const *names, size_t name_count,
				 bool is_critical, struct error *err)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	char reason[256];
	int ok = gens != NULL;

	for (size_t i = 0; ok && i < name_count; i++) {
		GENERAL_NAME *gen;
		ASN1_IA5STRING *ia5;
		bool is_duplicate = false;

		for (size_t j = 0; j < i; j++)
			if (strcasecmp(names[i], names[j]) == 0)
				is_duplicate = true;
		if (is_duplicate)
			continue;
		gen = GENERAL_NAME_new();
		ia5 = ASN1_IA5STRING_new();
		if (gen == NULL || ia5 == NULL ||
		    ASN1_STRING_set(ia5, names[i], (int) strlen(names[i])) != 1) {
			GENERAL_NAME_free(gen);
			ASN1_IA5STRING_free(ia5);
			ok = false;
			break;
		}
		GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
		if (sk_GENERAL_NAME_push(gens, gen) <= 0) {
			GENERAL_NAME_free(gen);
			ok = false;
		}
	}
	if (ok)
		ok = X509_add1_ext_i2d(x509, NID_subject_alt_name, gens, is_critical ? 1 : 0,
				       X509V3_ADD_DEFAULT) == 1;
	GENERAL_NAMES_free(gens);
	if (!ok)
		return error_set(err, ERROR_SOFTWARE, "cannot add the subjectAltName extension: %s",
				 openssl_reason(reason, sizeof(reason)));
	return 0;
}

static X509 *make_certificate(EVP_PKEY *key, const char *const *names, size_t name_count,
			      unsigned days, struct error *err)
{
	X509 *x509 = X509_new();
	X509_NAME *subject;
	X509V3_CTX ctx;
	char reason[256];
	/* A name longer than ub-common-name cannot be the CN; the subject is then
	 * empty and subjectAltName carries the identity alone (RFC 5280 4.1.2.6). */
	bool has_common_name = strlen(names[0]) <= CERT_COMMON_NAME_MAX;

	if (x509 == NULL) {
		error_set(err, ERROR_SOFTWARE, "cannot allocate a certificate: %s",
			  openssl_reason(reason, sizeof(reason)));
		return NULL;
	}
	if (X509_set_version(x509, X509_VERSION_3) != 1 || set_serial(x509, err) < 0)
		goto fail;
	if (X509_gmtime_adj(X509_getm_notBefore(x509), 0) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x509), (int) days, 0, NULL) == NULL) {
		error_set(err, ERROR_SOFTWARE, "cannot set the validity period: %s",
			  openssl_reason(reason, sizeof(reason)));
		goto fail;
	}
	subject = X509_get_subject_name(x509);
	if (has_common_name &&
	    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
				       (const unsigned char *) names[0], -1, -1, 0) != 1) {
		error_set(err, ERROR_SOFTWARE, "cannot set the subject name: %s",
			  openssl_reason(reason, sizeof(reason)));
		goto fail;
	}
	/* Self-signed: the issuer is the subject. */
	if (X509_set_issuer_name(x509, subject) != 1 || X509_set_pubkey(x509, key) != 1) {
		error_set(err, ERROR_SOFTWARE, "cannot set the issuer or public key: %s",
			  openssl_reason(reason, sizeof(reason)));
		goto fail;
	}
	X509V3_set_ctx(&ctx, x509, x509, NULL, NULL, 0);
	if (add_ext(x509, &ctx, NID_basic_constraints, "critical,CA:FALSE", err) < 0 ||
	    add_ext(x509, &ctx, NID_key_usage, "critical,digitalSignature", err) < 0 ||
	    add_ext(x509, &ctx, NID_ext_key_usage, "serverAuth", err) < 0 ||
	    add_ext(x509, &ctx, NID_subject_key_identifier, "hash", err) < 0 ||
	    add_subject_alt_names(x509, names, name_count, !has_common_name, err) < 0)
		goto fail;
	if (X509_sign(x509, key, EVP_sha256()) <= 0) {
		error_set(err, ERROR_SOFTWARE, "cannot sign the certificate: %s",
			  openssl_reason(reason, sizeof(reason)));
		goto fail;
	}
	return x509;
fail:
	X509_free(x509);
	return NULL;
}

enum pem_kind { PEM_KIND_KEY, PEM_KIND_CERTIFICATE };

/*
 * Create path (which must not exist) with exactly `mode`, whatever the umask,
 * and write the key or the certificate into it, synced to disk. On failure
 * the file is removed again.
 */

static int write_pem(const char *path, mode_t mode, enum pem_kind kind, EVP_PKEY *key, X509 *x509,
		     struct error *err)
{
	char reason[256];
	FILE *file;
	int fd, ok;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return error_set(err, errno == EEXIST ? ERROR_EXISTS : ERROR_IO,
				 "cannot create %s: %s", path, strerror(errno));
	if (fchmod(fd, mode) < 0 || (file = fdopen(fd, "w")) == NULL) {
		int saved = errno;

		close(fd);
		unlink(path);
		return error_set(err, ERROR_IO, "cannot create %s: %s", path, strerror(saved));
	}
	if (kind == PEM_KIND_KEY)
		ok = PEM_write_PrivateKey(file, key, NULL, NULL, 0, NULL, NULL) == 1;
	else
		ok = PEM_write_X509(file, x509) == 1;
	if (!ok) {
		fclose(file);
		unlink(path);
		return error_set(err, ERROR_SOFTWARE, "cannot write %s: %s", path,
				 openssl_reason(reason, sizeof(reason)));
	}
	if (fflush(file) != 0 || fsync(fileno(file)) != 0) {
		int saved = errno;

		fclose(file);
		unlink(path);
		return error_set(err, ERROR_IO, "cannot write %s: %s", path, strerror(saved));
	}
	if (fclose(file) != 0) {
		int saved = errno;

		unlink(path);
		return error_set(err, ERROR_IO, "cannot write %s: %s", path, strerror(saved));
	}
	return 0;
}

int tls_cert_make_selfsigned(const char *const *names, size_t name_count, unsigned days,
			     const char *cert_path, const char *key_path, struct error *err)
{
	EVP_PKEY *key = NULL;
	X509 *x509 = NULL;
	char reason[256];
	int rc = -1;

	if (name_count == 0)
		return error_set(err, ERROR_DATA, "a certificate needs at least one name");
	for (size_t i = 0; i < name_count; i++)
		if (names[i] == NULL || !is_dns_name(names[i]))
			return error_set(err, ERROR_DATA, "not a DNS name for a certificate: %s",
					 names[i] ? names[i] : "(null)");
	if (days == 0 || days > CERT_DAYS_MAX)
		return error_set(err, ERROR_DATA, "certificate validity must be 1 to %d days",
				 CERT_DAYS_MAX);

	/* FIPS 186-4 curve P-256 (prime256v1), which every TLS client since 2010 accepts. */
	key = EVP_EC_gen("P-256");
	if (key == NULL) {
		error_set(err, ERROR_SOFTWARE, "cannot make an ECDSA P-256 key: %s",
			  openssl_reason(reason, sizeof(reason)));
		goto done;
	}
	x509 = make_certificate(key, names, name_count, days, err);
	if (x509 == NULL)
		goto done;
	if (write_pem(key_path, 0600, PEM_KIND_KEY, key, NULL, err) < 0)
		goto done;
	if (write_pem(cert_path, 0644, PEM_KIND_CERTIFICATE, NULL, x509, err) < 0) {
		unlink(key_path);
		goto done;
	}
	rc = 0;
done:
	X509_free(x509);
	EVP_PKEY_free(key);
	return rc;
}

/* Refuses to ask for a passphrase: the daemon starts unattended. */
static int no_passphrase(char *buf, int size, int rwflag, void *ctx)
{
	(void) buf;
	(void) size;
	(void) rwflag;
	(void) ctx;
	return -1;
}

int tls_cert_check_pair(const char *cert_path, const char *key_path, struct error *err)
{
	char reason[256];
	EVP_PKEY *key = NULL;
	X509 *x509 = NULL;
	FILE *file;
	int rc = -1;

	if ((file = fopen(cert_path, "re")) == NULL)
		return error_set(err, ERROR_IO, "cannot read certificate %s: %s", cert_path,
				 strerror(errno));
	x509 = PEM_read_X509(file, NULL, no_passphrase, NULL);
	fclose(file);
	if (x509 == NULL) {
		error_set(err, ERROR_CONFIG, "%s: no PEM certificate found (%s)", cert_path,
			  openssl_reason(reason, sizeof(reason)));
		goto done;
	}
	if ((file = fopen(key_path, "re")) == NULL) {
		error_set(err, ERROR_IO, "cannot read private key %s: %s", key_path,
			  strerror(errno));
		goto done;
	}
	key = PEM_read_PrivateKey(file, NULL, no_passphrase, NULL);
	fclose(file);
	if (key == NULL) {
		error_set(err, ERROR_CONFIG, "%s: no unencrypted PEM private key found (%s)",
			  key_path, openssl_reason(reason, sizeof(reason)));
		goto done;
	}
	if (X509_check_private_key(x509, key) != 1) {
		ERR_clear_error();
		error_set(err, ERROR_CONFIG, "private key %s does not match certificate %s",
			  key_path, cert_path);
		goto done;
	}
	rc = 0;
done:
	EVP_PKEY_free(key);
	X509_free(x509);
	return rc;
}
