/* Tests for src/tls/cert.c: making a self-signed pair and checking pairs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/span.h"
#include "tls/cert.h"

/* Two pairs made once, in one temporary directory, shared by the tests. */
struct fixture {
	char dir[64];
	char cert_a[128], key_a[128];
	char cert_b[128], key_b[128];
	char missing[128];
	char garbage[128];
};

static const char *const names[] = { "mail.example.test", "smtp.example.test", "pop.example.test" };

static void join(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);

	assert_true(n > 0 && (size_t) n < cap);
}

static int setup(void **state)
{
	static struct fixture f;
	struct error err;
	FILE *file;

	snprintf(f.dir, sizeof(f.dir), "/tmp/postgate-cert-test-XXXXXX");
	if (mkdtemp(f.dir) == NULL)
		return -1;
	join(f.cert_a, sizeof(f.cert_a), f.dir, "a-cert.pem");
	join(f.key_a, sizeof(f.key_a), f.dir, "a-key.pem");
	join(f.cert_b, sizeof(f.cert_b), f.dir, "b-cert.pem");
	join(f.key_b, sizeof(f.key_b), f.dir, "b-key.pem");
	join(f.missing, sizeof(f.missing), f.dir, "missing.pem");
	join(f.garbage, sizeof(f.garbage), f.dir, "garbage.pem");
	if (tls_cert_make_selfsigned(names, ARRAY_LEN(names), 825, f.cert_a, f.key_a, &err) < 0 ||
	    tls_cert_make_selfsigned(names, 1, 1, f.cert_b, f.key_b, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err.message);
		return -1;
	}
	if ((file = fopen(f.garbage, "w")) == NULL)
		return -1;
	fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", file);
	fclose(file);
	*state = &f;
	return 0;
}

static void remove_if_present(const char *path)
{
	if (unlink(path) < 0)
		assert_int_equal(access(path, F_OK), -1);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	remove_if_present(f->cert_a);
	remove_if_present(f->key_a);
	remove_if_present(f->cert_b);
	remove_if_present(f->key_b);
	remove_if_present(f->garbage);
	return rmdir(f->dir);
}

static X509 *load_cert(const char *path)
{
	FILE *file = fopen(path, "r");
	X509 *x509;

	assert_non_null(file);
	x509 = PEM_read_X509(file, NULL, NULL, NULL);
	fclose(file);
	assert_non_null(x509);
	return x509;
}

static void test_files_and_modes(void **state)
{
	struct fixture *f = *state;
	struct stat st;

	assert_int_equal(stat(f->key_a, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(f->cert_a, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
}

static void test_certificate_contents(void **state)
{
	struct fixture *f = *state;
	X509 *x509 = load_cert(f->cert_a);
	EVP_PKEY *public_key = X509_get0_pubkey(x509);
	char common_name[256], group[64];
	size_t group_len = 0;
	int days = 0, seconds = 0;

	/* Every name is a subjectAltName dNSName (RFC 6125 6.4.4: clients ignore the CN). */
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		print_message("name: %s\n", names[i]);
		assert_int_equal(X509_check_host(x509, names[i], 0,
						 X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL),
				 1);
	}
	assert_int_equal(X509_check_host(x509, "other.example.test", 0, 0, NULL), 0);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x509), NID_commonName,
					      common_name, sizeof(common_name)) > 0);
	assert_string_equal(common_name, names[0]);
	/* Self-signed, not a CA, for TLS servers, ECDSA P-256 with SHA-256. */
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x509), X509_get_issuer_name(x509)), 0);
	assert_int_equal(X509_check_ca(x509), 0);
	assert_int_equal(X509_check_purpose(x509, X509_PURPOSE_SSL_SERVER, 0), 1);
	assert_true(X509_get_key_usage(x509) & KU_DIGITAL_SIGNATURE);
	assert_true(X509_get_extended_key_usage(x509) & XKU_SSL_SERVER);
	assert_int_equal(X509_get_signature_nid(x509), NID_ecdsa_with_SHA256);
	assert_int_equal(EVP_PKEY_get_base_id(public_key), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_utf8_string_param(public_key, "group", group, sizeof(group),
							&group_len),
			 1);
	assert_string_equal(group, "prime256v1");
	assert_int_equal(X509_get_version(x509), X509_VERSION_3);
	/* Valid from now for 825 days. */
	assert_true(X509_cmp_current_time(X509_get0_notBefore(x509)) <= 0);
	assert_int_equal(ASN1_TIME_diff(&days, &seconds, X509_get0_notBefore(x509),
					X509_get0_notAfter(x509)),
			 1);
	assert_int_equal(days, 825);
	assert_int_equal(seconds, 0);
	X509_free(x509);
}

static void test_serial_numbers_differ(void **state)
{
	struct fixture *f = *state;
	X509 *a = load_cert(f->cert_a), *b = load_cert(f->cert_b);

	/* RFC 5280 4.1.2.2: positive, unique per issuer. */
	assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(a), X509_get0_serialNumber(b)),
			     0);
	assert_int_equal(ASN1_STRING_type(X509_get0_serialNumber(a)), V_ASN1_INTEGER);
	assert_int_equal(ASN1_STRING_length(X509_get0_serialNumber(a)), 20);
	X509_free(a);
	X509_free(b);
}

static void test_key_loads(void **state)
{
	struct fixture *f = *state;
	FILE *file = fopen(f->key_a, "r");
	EVP_PKEY *key;

	assert_non_null(file);
	key = PEM_read_PrivateKey(file, NULL, NULL, NULL);
	fclose(file);
	assert_non_null(key);
	assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
	EVP_PKEY_free(key);
}

static void test_check_pair(void **state)
{
	struct fixture *f = *state;
	const struct pair_case {
		const char *name, *cert, *key;
		bool ok;
		enum error_kind kind;
	} cases[] = {
		{ "matching pair", f->cert_a, f->key_a, true, ERROR_NONE },
		{ "second matching pair", f->cert_b, f->key_b, true, ERROR_NONE },
		{ "key of another pair", f->cert_a, f->key_b, false, ERROR_CONFIG },
		{ "certificate of another pair", f->cert_b, f->key_a, false, ERROR_CONFIG },
		{ "missing certificate", f->missing, f->key_a, false, ERROR_IO },
		{ "missing key", f->cert_a, f->missing, false, ERROR_IO },
		{ "key given as certificate", f->key_a, f->key_a, false, ERROR_CONFIG },
		{ "certificate given as key", f->cert_a, f->cert_a, false, ERROR_CONFIG },
		{ "garbage certificate", f->garbage, f->key_a, false, ERROR_CONFIG },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct pair_case *c = &cases[i];
		struct error err;
		int rc;

		print_message("case: %s\n", c->name);
		error_clear(&err);
		rc = tls_cert_check_pair(c->cert, c->key, &err);
		assert_int_equal(rc, c->ok ? 0 : -1);
		assert_int_equal(err.kind, c->kind);
		if (!c->ok)
			assert_true(strlen(err.message) > 0);
	}
}

static void test_make_refuses(void **state)
{
	struct fixture *f = *state;
	const char *const bad_name[] = { "mail.example.test", "bad name.example" };
	const char *const empty_name[] = { "" };
	char cert[160], key[160];
	const struct make_case {
		const char *name;
		const char *const *names;
		size_t name_count;
		unsigned days;
		const char *cert, *key;
		enum error_kind kind;
	} cases[] = {
		{ "no names", names, 0, 825, cert, key, ERROR_DATA },
		{ "a name with a space", bad_name, 2, 825, cert, key, ERROR_DATA },
		{ "an empty name", empty_name, 1, 825, cert, key, ERROR_DATA },
		{ "zero days", names, 1, 0, cert, key, ERROR_DATA },
		{ "existing key", names, 1, 825, cert, f->key_a, ERROR_EXISTS },
		{ "existing certificate", names, 1, 825, f->cert_a, key, ERROR_EXISTS },
	};
	struct stat before, after;

	join(cert, sizeof(cert), f->dir, "refused-cert.pem");
	join(key, sizeof(key), f->dir, "refused-key.pem");
	assert_int_equal(stat(f->cert_a, &before), 0);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct make_case *c = &cases[i];
		struct error err;

		print_message("case: %s\n", c->name);
		error_clear(&err);
		assert_int_equal(tls_cert_make_selfsigned(c->names, c->name_count, c->days, c->cert,
							  c->key, &err),
				 -1);
		assert_int_equal(err.kind, c->kind);
		/* Nothing new is left behind and nothing existing is touched. */
		assert_int_equal(access(cert, F_OK), -1);
		assert_int_equal(access(key, F_OK), -1);
	}
	assert_int_equal(stat(f->cert_a, &after), 0);
	assert_int_equal(before.st_size, after.st_size);
	assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
	assert_int_equal(tls_cert_check_pair(f->cert_a, f->key_a, NULL), 0);
}

/* A name longer than a CN may be (64) still goes into subjectAltName. */
static void test_long_name(void **state)
{
	struct fixture *f = *state;
	const char *const long_names[] = {
		"a-very-long-host-name-that-does-not-fit-into-a-common-name.example.test",
		"smtp.example.test",
	};
	char cert[160], key[160];
	struct error err;
	X509 *x509;

	join(cert, sizeof(cert), f->dir, "long-cert.pem");
	join(key, sizeof(key), f->dir, "long-key.pem");
	assert_true(strlen(long_names[0]) > 64);
	assert_int_equal(tls_cert_make_selfsigned(long_names, 2, 30, cert, key, &err), 0);
	x509 = load_cert(cert);
	assert_int_equal(X509_check_host(x509, long_names[0], 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x509, long_names[1], 0, 0, NULL), 1);
	assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(x509)), 0);
	X509_free(x509);
	assert_int_equal(tls_cert_check_pair(cert, key, &err), 0);
	assert_int_equal(unlink(cert), 0);
	assert_int_equal(unlink(key), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_files_and_modes),
		cmocka_unit_test(test_certificate_contents),
		cmocka_unit_test(test_serial_numbers_differ),
		cmocka_unit_test(test_key_loads),
		cmocka_unit_test(test_check_pair),
		cmocka_unit_test(test_make_refuses),
		cmocka_unit_test(test_long_name),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
