/* Tests for src/auth/secret.c: argon2id and SCRAM-SHA-256 secrets, their
 * stored forms, known vectors computed by other implementations, and the
 * refusal of malformed secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "auth/secret.h"
#include "core/span.h"

static void decode_b64(const char *b64, unsigned char *out, size_t cap, size_t *len_out)
{
	assert_int_equal(sodium_base642bin(out, cap, b64, strlen(b64), NULL, len_out, NULL,
					   sodium_base64_VARIANT_ORIGINAL),
			 0);
}

static void assert_b64_equal(const unsigned char *bin, size_t len, const char *want)
{
	char b64[128];

	sodium_bin2base64(b64, sizeof(b64), bin, len, sodium_base64_VARIANT_ORIGINAL);
	assert_string_equal(b64, want);
}

/*
 * RFC 7677 3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==,
 * 4096 iterations. The RFC gives the exchange, not the keys; the keys below
 * were computed independently with Python's hashlib:
 *   sp = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096, 32)
 *   ck = hmac.new(sp, b"Client Key", sha256).digest(); sk = sha256(ck)
 *   sv = hmac.new(sp, b"Server Key", sha256).digest()
 * and test_scram_rfc7677_exchange checks them against the RFC's own
 * ClientProof and ServerSignature.
 */
#define RFC7677_SALT	   "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC7677_CLIENT_KEY "pg/JI9Z+hkSpLRa5btpe9GVrDHJcSEN0viVTVXaZbos="
#define RFC7677_STORED_KEY "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
#define RFC7677_SERVER_KEY "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define RFC7677_SECRET \
	"{SCRAM-SHA-256}4096," RFC7677_SALT "," RFC7677_STORED_KEY "," RFC7677_SERVER_KEY

#define UTF8_PASSWORD	"p\xc3\xa4ssw\xc3\xb6rd"   /* "pässwörd", NFC */
#define UTF8_SALT	"AAECAwQFBgcICQoLDA0ODw==" /* bytes 0..15 */
#define UTF8_STORED_KEY "/JI7nN5Q9doTRTEYeT8la902SPQSgUxNCwnUVUFHg6U="

static const struct scram_vector {
	const char *name, *password, *salt_b64;
	unsigned iterations;
	const char *client_key, *stored_key, *server_key;
} scram_vectors[] = {
	{ "RFC 7677 pencil", "pencil", RFC7677_SALT, 4096, RFC7677_CLIENT_KEY, RFC7677_STORED_KEY,
	  RFC7677_SERVER_KEY },
	/* The same hashlib recipe with "pässwörd".encode() (UTF-8), salt
	 * bytes(range(16)) and 5000 iterations. */
	{ "UTF-8 password, 5000 iterations", UTF8_PASSWORD, UTF8_SALT, 5000,
	  "szTxD7OQi/e4qyqt3ejTfmzbv46nFTrNiYie9YbQa5Q=", UTF8_STORED_KEY,
	  "3jXSBMMaHK4xcW0KBIXVrr0zdtb7uDsgTQhEjfmaSoU=" },
};

static void test_scram_vectors(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(scram_vectors); i++) {
		const struct scram_vector *v = &scram_vectors[i];
		unsigned char salt[64], client_key[32], stored_key[32], server_key[32];
		size_t salt_len;
		struct error err = { 0 };

		print_message("case: %s\n", v->name);
		decode_b64(v->salt_b64, salt, sizeof(salt), &salt_len);
		assert_int_equal(auth_secret_derive_scram(v->password, strlen(v->password), salt,
							  salt_len, v->iterations, client_key,
							  stored_key, server_key, &err),
				 0);
		assert_b64_equal(client_key, sizeof(client_key), v->client_key);
		assert_b64_equal(stored_key, sizeof(stored_key), v->stored_key);
		assert_b64_equal(server_key, sizeof(server_key), v->server_key);
	}
}

/* No SASLprep: the password is its octets, so "pässwörd" with the ö
 * decomposed (o + U+0308), which SASLprep would have composed, gives other
 * keys than the composed form. */
static void test_scram_no_saslprep(void **state)
{
	unsigned char salt[16], stored_key[32], server_key[32];
	size_t salt_len;
	struct error err = { 0 };
	const char *decomposed = "p\xc3\xa4sswo\xcc\x88rd";

	(void) state;
	decode_b64(UTF8_SALT, salt, sizeof(salt), &salt_len);
	assert_int_equal(auth_secret_derive_scram(decomposed, strlen(decomposed), salt, salt_len,
						  5000, NULL, stored_key, server_key, &err),
			 0);
	{
		char b64[64];

		sodium_bin2base64(b64, sizeof(b64), stored_key, 32, sodium_base64_VARIANT_ORIGINAL);
		assert_string_not_equal(b64, UTF8_STORED_KEY);
	}
}

/*
 * The RFC 7677 3 exchange itself: with our StoredKey, ServerKey and
 * ClientKey, the AuthMessage of the example gives the RFC's ClientProof
 * (p=) and ServerSignature (v=) (RFC 5802 3).
 */
static void test_scram_rfc7677_exchange(void **state)
{
	static const char auth_message[] =
		"n=user,r=rOprNGfwEbeRWgbNEkqO,"
		"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
		"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
	unsigned char salt[16], client_key[32], stored_key[32], server_key[32];
	unsigned char client_signature[32], server_signature[32], proof[32], recovered[32];
	unsigned int len = 32;
	size_t salt_len;
	struct error err = { 0 };

	(void) state;
	decode_b64(RFC7677_SALT, salt, sizeof(salt), &salt_len);
	assert_int_equal(auth_secret_derive_scram("pencil", 6, salt, salt_len, 4096, client_key,
						  stored_key, server_key, &err),
			 0);
	assert_non_null(HMAC(EVP_sha256(), server_key, 32, (const unsigned char *) auth_message,
			     strlen(auth_message), server_signature, &len));
	assert_b64_equal(server_signature, 32, "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
	assert_non_null(HMAC(EVP_sha256(), stored_key, 32, (const unsigned char *) auth_message,
			     strlen(auth_message), client_signature, &len));
	for (size_t i = 0; i < 32; i++)
		proof[i] = client_key[i] ^ client_signature[i];
	assert_b64_equal(proof, 32, "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
	/* What a server does with the proof: H(proof XOR ClientSignature) = StoredKey. */
	for (size_t i = 0; i < 32; i++)
		proof[i] ^= client_signature[i];
	SHA256(proof, 32, recovered);
	assert_memory_equal(recovered, stored_key, 32);
}

static void test_scram_make(void **state)
{
	char secret[AUTH_SECRET_MAX], other[AUTH_SECRET_MAX];
	unsigned char salt[64], stored_key[32], server_key[32], want_stored[32], want_server[32];
	size_t salt_len;
	unsigned iterations;
	struct error err = { 0 };

	(void) state;
	assert_int_equal(auth_secret_make_scram("correct horse", 13, AUTH_SCRAM_ITERATIONS_DEFAULT,
						secret, sizeof(secret), &err),
			 0);
	/* {SCRAM-SHA-256}4096,<24 b64>,<44 b64>,<44 b64> */
	assert_int_equal(strncmp(secret, "{SCRAM-SHA-256}4096,", 20), 0);
	assert_int_equal(strlen(secret), 20 + 24 + 1 + 44 + 1 + 44);
	assert_int_equal(auth_secret_parse_scram(secret, &iterations, salt, sizeof(salt), &salt_len,
						 stored_key, server_key),
			 0);
	assert_int_equal(iterations, 4096);
	assert_int_equal(salt_len, AUTH_SCRAM_SALT_LEN);
	assert_int_equal(auth_secret_derive_scram("correct horse", 13, salt, salt_len, iterations,
						  NULL, want_stored, want_server, &err),
			 0);
	assert_memory_equal(stored_key, want_stored, 32);
	assert_memory_equal(server_key, want_server, 32);
	assert_true(auth_secret_verify_scram(secret, "correct horse", 13));
	assert_false(auth_secret_verify_scram(secret, "correct horsf", 13));
	assert_false(auth_secret_verify_scram(secret, "correct hors", 12));

	/* A fresh salt every time. */
	assert_int_equal(
		auth_secret_make_scram("correct horse", 13, 4096, other, sizeof(other), &err), 0);
	assert_string_not_equal(secret, other);

	print_message("case: more iterations\n");
	assert_int_equal(auth_secret_make_scram("x", 1, 10000, secret, sizeof(secret), &err), 0);
	assert_int_equal(strncmp(secret, "{SCRAM-SHA-256}10000,", 21), 0);
	assert_true(auth_secret_verify_scram(secret, "x", 1));

	print_message("case: too few iterations\n");
	assert_int_equal(auth_secret_make_scram("x", 1, 4095, secret, sizeof(secret), &err), -1);
	assert_int_equal(err.kind, ERROR_DATA);
	assert_string_equal(secret, "");

	print_message("case: too many iterations\n");
	assert_int_equal(auth_secret_make_scram("x", 1, AUTH_SCRAM_ITERATIONS_MAX + 1, secret,
						sizeof(secret), &err),
			 -1);

	print_message("case: buffer too small\n");
	assert_int_equal(auth_secret_make_scram("x", 1, 4096, secret, 100, &err), -1);
	assert_int_equal(err.kind, ERROR_SOFTWARE);
}

static void test_scram_known_secret(void **state)
{
	(void) state;
	assert_true(auth_secret_verify_scram(RFC7677_SECRET, "pencil", 6));
	assert_false(auth_secret_verify_scram(RFC7677_SECRET, "Pencil", 6));
	assert_false(auth_secret_verify_scram(RFC7677_SECRET, "", 0));
}

static const struct parse_case {
	const char *name, *secret;
	bool is_valid;
} parse_cases[] = {
	// clang-format off
	{ "RFC 7677 keys", RFC7677_SECRET, true },
	{ "scheme in lower case", "{scram-sha-256}4096," RFC7677_SALT "," RFC7677_STORED_KEY ","
	  RFC7677_SERVER_KEY, true },
	{ "more iterations", "{SCRAM-SHA-256}100000," RFC7677_SALT "," RFC7677_STORED_KEY ","
	  RFC7677_SERVER_KEY, true },
	{ "empty", "", false },
	{ "no scheme", "4096," RFC7677_SALT "," RFC7677_STORED_KEY "," RFC7677_SERVER_KEY, false },
	{ "other scheme", "{SCRAM-SHA-1}4096," RFC7677_SALT "," RFC7677_STORED_KEY ","
	  RFC7677_SERVER_KEY, false },
	{ "argon2id secret", "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$aGFzaA", false },
	{ "scheme only", "{SCRAM-SHA-256}", false },
	{ "iterations below 4096", "{SCRAM-SHA-256}4095," RFC7677_SALT "," RFC7677_STORED_KEY ","
	  RFC7677_SERVER_KEY, false },
	{ "iterations zero", "{SCRAM-SHA-256}0," RFC7677_SALT "," RFC7677_STORED_KEY ","
	  RFC7677_SERVER_KEY, false },
	{ "iterations signed", "{SCRAM-SHA-256}+4096," RFC7677_SALT "," RFC7677_STORED_KEY ","
	  RFC7677_SERVER_KEY, false },
	{ "iterations overflow", "{SCRAM-SHA-256}99999999999999999999999," RFC7677_SALT ","
	  RFC7677_STORED_KEY "," RFC7677_SERVER_KEY, false },
	{ "iterations above max", "{SCRAM-SHA-256}1000001," RFC7677_SALT "," RFC7677_STORED_KEY ","
	  RFC7677_SERVER_KEY, false },
	{ "iterations empty", "{SCRAM-SHA-256}," RFC7677_SALT "," RFC7677_STORED_KEY ","
	  RFC7677_SERVER_KEY, false },
	{ "salt empty", "{SCRAM-SHA-256}4096,," RFC7677_STORED_KEY "," RFC7677_SERVER_KEY, false },
	{ "salt not base64", "{SCRAM-SHA-256}4096,W22ZaJ0SNY7so!sUEjb6gQ==," RFC7677_STORED_KEY ","
	  RFC7677_SERVER_KEY, false },
	{ "salt without padding", "{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ," RFC7677_STORED_KEY
	  "," RFC7677_SERVER_KEY, false },
	{ "salt with space", "{SCRAM-SHA-256}4096, " RFC7677_SALT "," RFC7677_STORED_KEY ","
	  RFC7677_SERVER_KEY, false },
	{ "salt longer than 64 bytes", "{SCRAM-SHA-256}4096,"
	  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,"
	  RFC7677_STORED_KEY "," RFC7677_SERVER_KEY, false },
	{ "StoredKey 31 bytes", "{SCRAM-SHA-256}4096," RFC7677_SALT
	  ",WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4g==," RFC7677_SERVER_KEY, false },
	{ "ServerKey 33 bytes", "{SCRAM-SHA-256}4096," RFC7677_SALT "," RFC7677_STORED_KEY
	  ",wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dUA", false },
	{ "ServerKey missing", "{SCRAM-SHA-256}4096," RFC7677_SALT "," RFC7677_STORED_KEY, false },
	{ "ServerKey empty", "{SCRAM-SHA-256}4096," RFC7677_SALT "," RFC7677_STORED_KEY ",", false },
	{ "fifth field", RFC7677_SECRET ",AAAA", false },
	{ "trailing newline", RFC7677_SECRET "\n", false },
	// clang-format on
};

static void test_scram_parse(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];
		unsigned char salt[64], stored_key[32], server_key[32];
		size_t salt_len = 0;
		unsigned iterations = 0;
		int rc;

		print_message("case: %s\n", c->name);
		rc = auth_secret_parse_scram(c->secret, &iterations, salt, sizeof(salt), &salt_len,
					     stored_key, server_key);
		assert_int_equal(rc, c->is_valid ? 0 : -1);
		if (c->is_valid) {
			assert_int_equal(salt_len, 16);
			assert_true(iterations >= 4096);
			assert_b64_equal(stored_key, 32, RFC7677_STORED_KEY);
			assert_b64_equal(server_key, 32, RFC7677_SERVER_KEY);
		}
	}

	/* A caller's salt buffer smaller than the salt: refused, not overrun. */
	{
		unsigned char salt[8], stored_key[32], server_key[32];
		size_t salt_len;
		unsigned iterations;

		print_message("case: salt buffer too small\n");
		assert_int_equal(auth_secret_parse_scram(RFC7677_SECRET, &iterations, salt,
							 sizeof(salt), &salt_len, stored_key,
							 server_key),
				 -1);
	}
}

/*
 * Made by the reference implementation (Debian's argon2 command, not
 * libsodium):
 *   echo -n "correct horse" | argon2 somesaltsomesalt -id -t 2 -m 16 -p 1 -l 32 -e
 *   echo -n "pässwörd" | argon2 saltsaltsaltsalt -id -t 3 -m 12 -p 1 -l 32 -e
 * The second has Dovecot-like other parameters (t=3, m=4096).
 */
static const struct argon2id_vector {
	const char *name, *secret, *password;
} argon2id_vectors[] = {
	{ "interactive parameters",
	  "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
	  "6dKFi06eLdxpMoblE2YOlN8X3PMbRwSPUVV4rbOUeDs",
	  "correct horse" },
	{ "other parameters, UTF-8 password",
	  "{ARGON2ID}$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHRzYWx0c2FsdA$"
	  "swMAyjUTBUY+/Jq699wS29OwnAuksSn6oANEWNcXJNw",
	  "p\xc3\xa4ssw\xc3\xb6rd" },
};

static void test_argon2id_vectors(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(argon2id_vectors); i++) {
		const struct argon2id_vector *v = &argon2id_vectors[i];
		char wrong[64];

		print_message("case: %s\n", v->name);
		assert_true(
			auth_secret_verify_argon2id(v->secret, v->password, strlen(v->password)));
		snprintf(wrong, sizeof(wrong), "%s.", v->password);
		assert_false(auth_secret_verify_argon2id(v->secret, wrong, strlen(wrong)));
		assert_false(auth_secret_verify_argon2id(v->secret, v->password,
							 strlen(v->password) - 1));
	}
}

static void test_argon2id_round_trip(void **state)
{
	char secret[AUTH_SECRET_MAX], other[AUTH_SECRET_MAX];
	struct error err = { 0 };

	(void) state;
	assert_int_equal(
		auth_secret_make_argon2id("correct horse", 13, secret, sizeof(secret), &err), 0);
	assert_int_equal(strncmp(secret, "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$", 41), 0);
	assert_true(auth_secret_verify_argon2id(secret, "correct horse", 13));
	assert_false(auth_secret_verify_argon2id(secret, "Correct horse", 13));
	assert_false(auth_secret_verify_argon2id(secret, "correct horse ", 14));
	assert_false(auth_secret_verify_argon2id(secret, "", 0));
	/* A fresh salt every time. */
	assert_int_equal(auth_secret_make_argon2id("correct horse", 13, other, sizeof(other), &err),
			 0);
	assert_string_not_equal(secret, other);
	/* The password is its octets: a NUL-free password is compared by length. */
	assert_int_equal(auth_secret_make_argon2id("abc", 3, secret, sizeof(secret), &err), 0);
	assert_false(auth_secret_verify_argon2id(secret, "abcd", 3 + 1));
	assert_true(auth_secret_verify_argon2id(secret, "abcd", 3));
}

static const struct password_case {
	const char *name;
	size_t len;
	char fill;
	bool has_nul;
	bool is_valid;
} password_cases[] = {
	{ "one byte", 1, 'a', false, true },
	{ "1024 bytes", AUTH_PASSWORD_MAX, 'a', false, true },
	{ "empty", 0, 'a', false, false },
	{ "1025 bytes", AUTH_PASSWORD_MAX + 1, 'a', false, false },
	{ "NUL inside", 8, 'a', true, false },
};

static void test_password_bounds(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(password_cases); i++) {
		const struct password_case *c = &password_cases[i];
		char password[AUTH_PASSWORD_MAX + 2], secret[AUTH_SECRET_MAX];
		struct error err = { 0 };

		print_message("case: %s\n", c->name);
		memset(password, c->fill, sizeof(password));
		if (c->has_nul)
			password[3] = '\0';
		assert_int_equal(
			auth_secret_make_argon2id(password, c->len, secret, sizeof(secret), &err),
			c->is_valid ? 0 : -1);
		if (!c->is_valid) {
			assert_int_equal(err.kind, ERROR_DATA);
			assert_string_equal(secret, "");
		} else {
			assert_true(auth_secret_verify_argon2id(secret, password, c->len));
		}
		assert_int_equal(auth_secret_make_scram(password, c->len, 4096, secret,
							sizeof(secret), &err),
				 c->is_valid ? 0 : -1);
		if (c->is_valid)
			assert_true(auth_secret_verify_scram(secret, password, c->len));
	}
}

static const struct malformed_case {
	const char *name, *secret;
} malformed_cases[] = {
	// clang-format off
	{ "empty", "" },
	{ "scheme only", "{ARGON2ID}" },
	{ "no scheme", "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
	  "6dKFi06eLdxpMoblE2YOlN8X3PMbRwSPUVV4rbOUeDs" },
	{ "other scheme", "{ARGON2I}$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
	  "6dKFi06eLdxpMoblE2YOlN8X3PMbRwSPUVV4rbOUeDs" },
	{ "argon2i body", "{ARGON2ID}$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
	  "6dKFi06eLdxpMoblE2YOlN8X3PMbRwSPUVV4rbOUeDs" },
	{ "garbage", "{ARGON2ID}garbage" },
	{ "truncated hash", "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
	  "6dKFi06eLdxpMoblE2YOlN8X3PMbRwSPUVV4rb" },
	{ "tampered hash", "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
	  "7dKFi06eLdxpMoblE2YOlN8X3PMbRwSPUVV4rbOUeDs" },
	{ "old version", "{ARGON2ID}$argon2id$v=16$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
	  "6dKFi06eLdxpMoblE2YOlN8X3PMbRwSPUVV4rbOUeDs" },
	{ "memory past 1 GiB", "{ARGON2ID}$argon2id$v=19$m=1048577,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
	  "6dKFi06eLdxpMoblE2YOlN8X3PMbRwSPUVV4rbOUeDs" },
	{ "memory huge", "{ARGON2ID}$argon2id$v=19$m=99999999999999999999,t=2,p=1$"
	  "c29tZXNhbHRzb21lc2FsdA$6dKFi06eLdxpMoblE2YOlN8X3PMbRwSPUVV4rbOUeDs" },
	{ "too many passes", "{ARGON2ID}$argon2id$v=19$m=65536,t=17,p=1$c29tZXNhbHRzb21lc2FsdA$"
	  "6dKFi06eLdxpMoblE2YOlN8X3PMbRwSPUVV4rbOUeDs" },
	{ "two lanes", "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$"
	  "6dKFi06eLdxpMoblE2YOlN8X3PMbRwSPUVV4rbOUeDs" },
	{ "parameters reordered", "{ARGON2ID}$argon2id$v=19$t=2,m=65536,p=1$c29tZXNhbHRzb21lc2FsdA$"
	  "6dKFi06eLdxpMoblE2YOlN8X3PMbRwSPUVV4rbOUeDs" },
	{ "SCRAM secret", RFC7677_SECRET },
	// clang-format on
};

static void test_argon2id_malformed(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(malformed_cases); i++) {
		print_message("case: %s\n", malformed_cases[i].name);
		assert_false(auth_secret_verify_argon2id(malformed_cases[i].secret, "correct horse",
							 13));
	}
	print_message("case: NULL secret\n");
	assert_false(auth_secret_verify_argon2id(NULL, "correct horse", 13));
	print_message("case: argon2id secret given to SCRAM\n");
	assert_false(auth_secret_verify_scram(argon2id_vectors[0].secret, "correct horse", 13));
	/* The scheme name is matched without regard to case, as Dovecot does. */
	print_message("case: scheme in lower case\n");
	assert_true(auth_secret_verify_argon2id("{argon2id}$argon2id$v=19$m=65536,t=2,p=1$"
						"c29tZXNhbHRzb21lc2FsdA$"
						"6dKFi06eLdxpMoblE2YOlN8X3PMbRwSPUVV4rbOUeDs",
						"correct horse", 13));
}

static int setup(void **state)
{
	struct error err = { 0 };

	(void) state;
	return auth_secret_global_init(&err);
}

static const struct cram_form_case {
	const char *name, *secret;
	bool want;
} cram_form_cases[] = {
	{ "well-formed",
	  "{CRAM-MD5}0123456789abcdef0123456789abcdef0123456789ABCDEF0123456789abcdef", true },
	{ "scheme in lower case",
	  "{cram-md5}0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true },
	{ "63 digits", "{CRAM-MD5}0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
	  false },
	{ "65 digits",
	  "{CRAM-MD5}0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", false },
	{ "not hex", "{CRAM-MD5}0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
	  false },
	{ "another scheme",
	  "{PLAIN-MD5}0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", false },
	{ "empty", "", false },
	{ "scheme alone", "{CRAM-MD5}", false },
};

static void test_cram_md5_form(void **state)
{
	(void) state;
	for (size_t i = 0; i < ARRAY_LEN(cram_form_cases); i++) {
		const struct cram_form_case *c = &cram_form_cases[i];

		print_message("case: %s\n", c->name);
		assert_int_equal(auth_secret_is_cram_md5(c->secret), c->want);
	}
	assert_false(auth_secret_is_cram_md5(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scram_vectors),
		cmocka_unit_test(test_scram_no_saslprep),
		cmocka_unit_test(test_scram_rfc7677_exchange),
		cmocka_unit_test(test_scram_make),
		cmocka_unit_test(test_scram_known_secret),
		cmocka_unit_test(test_scram_parse),
		cmocka_unit_test(test_cram_md5_form),
		cmocka_unit_test(test_argon2id_vectors),
		cmocka_unit_test(test_argon2id_round_trip),
		cmocka_unit_test(test_password_bounds),
		cmocka_unit_test(test_argon2id_malformed),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
