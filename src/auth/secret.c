/*
 * secret: the stored password secrets. Owns the two stored forms (Dovecot's
 * {ARGON2ID} and {SCRAM-SHA-256} strings), their creation from a password and
 * their parsing. It must never log, never keep a password after returning,
 * and never compare secret material with anything but a constant-time
 * compare.
 *
 * Passwords are used as the UTF-8 octets the client sent, without SASLprep
 * (RFC 4013): RFC 7677's SCRAM-SHA-256 asks for it, but SASLprep is
 * obsolete (RFC 7613 replaced it), libraries disagree on it, and for ASCII
 * passwords it changes nothing. docs/decisions/0003-password-secrets.md.
 */
#include "auth/secret.h"
#include "auth/hashmem.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/span.h"

#define ARGON2ID_PREFIX "{ARGON2ID}"
#define SCRAM_PREFIX	"{SCRAM-SHA-256}"

/* The {ARGON2ID} body as libsodium writes it (RFC 9106 names the fields). */
#define ARGON2ID_BODY_PREFIX "$argon2id$"
/* Bounds on an imported secret's cost: libsodium's "sensitive" limits are
 * 4 passes over 1 GiB; a login must not take longer than a few of those. */
#define ARGON2ID_PASSES_MAX 16

int auth_secret_global_init(struct error *err)
{
	/* 0: initialized now, 1: already initialized, -1: failure. */
	if (sodium_init() < 0)
		return error_set(err, ERROR_SOFTWARE, "libsodium could not be initialized");
	return 0;
}

static int check_new_password(const char *password, size_t password_len, struct error *err)
{
	if (password_len == 0)
		return error_set(err, ERROR_DATA, "password is empty");
	if (password_len > AUTH_PASSWORD_MAX)
		return error_set(err, ERROR_DATA, "password is longer than %d bytes",
				 AUTH_PASSWORD_MAX);
	/* SASL PLAIN (RFC 4616 2) separates its fields with NUL, so such a
	 * password could never be sent. */
	if (memchr(password, '\0', password_len) != NULL)
		return error_set(err, ERROR_DATA, "password contains a NUL byte");
	return 0;
}

int auth_secret_make_argon2id(const char *password, size_t password_len, char *out, size_t out_cap,
			      struct error *err)
{
	char hash[crypto_pwhash_STRBYTES];
	int n, rc;

	if (out_cap > 0)
		out[0] = '\0';
	if (check_new_password(password, password_len, err) < 0)
		return -1;
	/* crypto_pwhash_str with the algorithm named rather than left to
	 * libsodium's default. The interactive limits (2 passes, 64 MiB) keep
	 * a login near 0.1 s on our two cores while staying memory-hard. */
	auth_hashmem_begin();
	rc = crypto_pwhash_str_alg(hash, password, password_len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
				   crypto_pwhash_MEMLIMIT_INTERACTIVE,
				   crypto_pwhash_ALG_ARGON2ID13);
	auth_hashmem_end();
	if (rc != 0)
		return error_set(err, ERROR_TEMPORARY, "argon2id hashing failed: out of memory");
	n = snprintf(out, out_cap, "%s%s", ARGON2ID_PREFIX, hash);
	sodium_memzero(hash, sizeof(hash));
	if (n < 0 || (size_t) n >= out_cap) {
		if (out_cap > 0)
			sodium_memzero(out, out_cap);
		return error_set(err, ERROR_SOFTWARE, "argon2id secret does not fit in %zu bytes",
				 out_cap);
	}
	return 0;
}

/* Consumes "<name>=<decimal>" followed by sep from *rest. */
static bool take_parameter(struct span *rest, const char *name, char sep, uint64_t *value_out)
{
	struct span field, value;

	if (!span_split_first(*rest, sep, &field, rest) ||
	    !span_split_first(field, '=', &field, &value) || !span_eq_cstr(field, name))
		return false;
	return span_parse_u64(value, value_out);
}

/*
 * Reads "$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$" (the PHC string
 * format libsodium writes) and bounds the cost: libsodium would otherwise
 * allocate whatever memory an imported secret names before it can say no.
 * libsodium computes one lane only.
 */
static bool argon2id_body_is_sane(const char *body)
{
	struct span rest = span_from_cstr(body);
	uint64_t version, memory_kib, passes, lanes;

	if (!span_starts_with_nocase(rest, ARGON2ID_BODY_PREFIX))
		return false;
	rest.ptr += strlen(ARGON2ID_BODY_PREFIX);
	rest.len -= strlen(ARGON2ID_BODY_PREFIX);
	if (!take_parameter(&rest, "v", '$', &version) ||
	    !take_parameter(&rest, "m", ',', &memory_kib) ||
	    !take_parameter(&rest, "t", ',', &passes) || !take_parameter(&rest, "p", '$', &lanes))
		return false;
	if (version != 19 || lanes != 1 || passes == 0 || passes > ARGON2ID_PASSES_MAX)
		return false;
	return memory_kib > 0 && memory_kib <= crypto_pwhash_MEMLIMIT_SENSITIVE / 1024;
}

bool auth_secret_verify_argon2id(const char *secret, const char *password, size_t password_len)
{
	const char *body;
	int rc;

	if (secret == NULL || password == NULL || password_len > AUTH_PASSWORD_MAX)
		return false;
	/* Dovecot matches scheme names without regard to case. */
	if (strncasecmp(secret, ARGON2ID_PREFIX, strlen(ARGON2ID_PREFIX)) != 0)
		return false;
	body = secret + strlen(ARGON2ID_PREFIX);
	if (strlen(body) >= crypto_pwhash_STRBYTES || !argon2id_body_is_sane(body))
		return false;
	/* Recomputes the hash (its 64 MiB on huge pages: auth/hashmem.h) and
	 * compares in constant time. */
	auth_hashmem_begin();
	rc = crypto_pwhash_argon2id_str_verify(body, password, password_len);
	auth_hashmem_end();
	return rc == 0;
}

int auth_secret_derive_scram(const char *password, size_t password_len, const unsigned char *salt,
			     size_t salt_len, unsigned iterations,
			     unsigned char client_key_out[AUTH_SCRAM_KEY_LEN],
			     unsigned char stored_key_out[AUTH_SCRAM_KEY_LEN],
			     unsigned char server_key_out[AUTH_SCRAM_KEY_LEN], struct error *err)
{
	unsigned char salted_password[AUTH_SCRAM_KEY_LEN];
	unsigned char client_key[AUTH_SCRAM_KEY_LEN];
	unsigned int mac_len;
	int rc = -1;

	if (password_len > AUTH_PASSWORD_MAX)
		return error_set(err, ERROR_DATA, "password is longer than %d bytes",
				 AUTH_PASSWORD_MAX);
	if (iterations < AUTH_SCRAM_ITERATIONS_MIN || iterations > AUTH_SCRAM_ITERATIONS_MAX)
		return error_set(err, ERROR_DATA, "SCRAM iteration count must be %d to %d",
				 AUTH_SCRAM_ITERATIONS_MIN, AUTH_SCRAM_ITERATIONS_MAX);
	if (salt_len == 0 || salt_len > AUTH_SCRAM_SALT_MAX)
		return error_set(err, ERROR_DATA, "SCRAM salt must be 1 to %d bytes",
				 AUTH_SCRAM_SALT_MAX);

	/* RFC 5802 3: SaltedPassword := Hi(Normalize(password), salt, i), and
	 * Hi is PBKDF2 (RFC 8018 5.2) with HMAC as the PRF; RFC 7677 3 makes
	 * the hash SHA-256. */
	if (PKCS5_PBKDF2_HMAC(password_len > 0 ? password : "", (int) password_len, salt,
			      (int) salt_len, (int) iterations, EVP_sha256(),
			      sizeof(salted_password), salted_password) != 1) {
		error_set(err, ERROR_SOFTWARE, "PBKDF2-HMAC-SHA-256 failed");
		goto out;
	}
	/* ClientKey := HMAC(SaltedPassword, "Client Key"); StoredKey := H(ClientKey);
	 * ServerKey := HMAC(SaltedPassword, "Server Key"). */
	mac_len = sizeof(client_key);
	if (HMAC(EVP_sha256(), salted_password, sizeof(salted_password),
		 (const unsigned char *) "Client Key", strlen("Client Key"), client_key,
		 &mac_len) == NULL ||
	    mac_len != sizeof(client_key)) {
		error_set(err, ERROR_SOFTWARE, "HMAC-SHA-256 failed");
		goto out;
	}
	mac_len = AUTH_SCRAM_KEY_LEN;
	if (HMAC(EVP_sha256(), salted_password, sizeof(salted_password),
		 (const unsigned char *) "Server Key", strlen("Server Key"), server_key_out,
		 &mac_len) == NULL ||
	    mac_len != AUTH_SCRAM_KEY_LEN) {
		error_set(err, ERROR_SOFTWARE, "HMAC-SHA-256 failed");
		goto out;
	}
	if (SHA256(client_key, sizeof(client_key), stored_key_out) == NULL) {
		error_set(err, ERROR_SOFTWARE, "SHA-256 failed");
		goto out;
	}
	if (client_key_out != NULL)
		memcpy(client_key_out, client_key, sizeof(client_key));
	rc = 0;
out:
	sodium_memzero(salted_password, sizeof(salted_password));
	sodium_memzero(client_key, sizeof(client_key));
	return rc;
}

/* Standard base64 with padding (RFC 4648 4), as Dovecot writes it. */
static bool base64_put(const unsigned char *bin, size_t bin_len, char *out, size_t out_cap)
{
	if (out_cap < sodium_base64_ENCODED_LEN(bin_len, sodium_base64_VARIANT_ORIGINAL))
		return false;
	sodium_bin2base64(out, out_cap, bin, bin_len, sodium_base64_VARIANT_ORIGINAL);
	return true;
}

int auth_secret_make_scram(const char *password, size_t password_len, unsigned iterations,
			   char *out, size_t out_cap, struct error *err)
{
	unsigned char salt[AUTH_SCRAM_SALT_LEN];
	unsigned char stored_key[AUTH_SCRAM_KEY_LEN], server_key[AUTH_SCRAM_KEY_LEN];
	char salt_b64[sodium_base64_ENCODED_LEN(AUTH_SCRAM_SALT_LEN,
						sodium_base64_VARIANT_ORIGINAL)];
	char stored_b64[sodium_base64_ENCODED_LEN(AUTH_SCRAM_KEY_LEN,
						  sodium_base64_VARIANT_ORIGINAL)];
	char server_b64[sizeof(stored_b64)];
	int n, rc = -1;

	if (out_cap > 0)
		out[0] = '\0';
	if (check_new_password(password, password_len, err) < 0)
		return -1;
	/* RFC 5802 5.1: a fresh random salt per secret. */
	randombytes_buf(salt, sizeof(salt));
	if (auth_secret_derive_scram(password, password_len, salt, sizeof(salt), iterations, NULL,
				     stored_key, server_key, err) < 0)
		goto out;
	if (!base64_put(salt, sizeof(salt), salt_b64, sizeof(salt_b64)) ||
	    !base64_put(stored_key, sizeof(stored_key), stored_b64, sizeof(stored_b64)) ||
	    !base64_put(server_key, sizeof(server_key), server_b64, sizeof(server_b64))) {
		error_set(err, ERROR_SOFTWARE, "base64 encoding failed");
		goto out;
	}
	n = snprintf(out, out_cap, "%s%u,%s,%s,%s", SCRAM_PREFIX, iterations, salt_b64, stored_b64,
		     server_b64);
	if (n < 0 || (size_t) n >= out_cap) {
		if (out_cap > 0)
			sodium_memzero(out, out_cap);
		error_set(err, ERROR_SOFTWARE, "SCRAM secret does not fit in %zu bytes", out_cap);
		goto out;
	}
	rc = 0;
out:
	sodium_memzero(stored_key, sizeof(stored_key));
	sodium_memzero(server_key, sizeof(server_key));
	sodium_memzero(stored_b64, sizeof(stored_b64));
	sodium_memzero(server_b64, sizeof(server_b64));
	return rc;
}

/* Strict standard base64 of exactly the field: no spaces, correct padding,
 * nothing after it, at most cap bytes of output. */
static bool base64_get(struct span field, unsigned char *out, size_t cap, size_t *len_out)
{
	const char *end = NULL;

	if (field.len == 0)
		return false;
	if (sodium_base642bin(out, cap, field.ptr, field.len, NULL, len_out, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		return false;
	return end == field.ptr + field.len;
}

int auth_secret_parse_scram(const char *secret, unsigned *iterations_out, unsigned char *salt_out,
			    size_t salt_cap, size_t *salt_len_out, unsigned char stored_key_out[32],
			    unsigned char server_key_out[32])
{
	struct span rest, field;
	unsigned char key[AUTH_SCRAM_KEY_LEN];
	size_t len;
	uint64_t iterations;

	if (secret == NULL || strncasecmp(secret, SCRAM_PREFIX, strlen(SCRAM_PREFIX)) != 0)
		return -1;
	rest = span_from_cstr(secret + strlen(SCRAM_PREFIX));

	if (!span_split_first(rest, ',', &field, &rest) || !span_parse_u64(field, &iterations) ||
	    iterations < AUTH_SCRAM_ITERATIONS_MIN || iterations > AUTH_SCRAM_ITERATIONS_MAX)
		return -1;
	if (!span_split_first(rest, ',', &field, &rest) ||
	    !base64_get(field, salt_out,
			salt_cap < AUTH_SCRAM_SALT_MAX ? salt_cap : AUTH_SCRAM_SALT_MAX,
			salt_len_out) ||
	    *salt_len_out == 0)
		return -1;
	if (!span_split_first(rest, ',', &field, &rest) ||
	    !base64_get(field, key, sizeof(key), &len) || len != sizeof(key))
		goto fail;
	memcpy(stored_key_out, key, sizeof(key));
	/* The last field runs to the end: a fifth field is refused as bad base64. */
	if (!base64_get(rest, key, sizeof(key), &len) || len != sizeof(key))
		goto fail;
	memcpy(server_key_out, key, sizeof(key));
	sodium_memzero(key, sizeof(key));
	*iterations_out = (unsigned) iterations;
	return 0;
fail:
	sodium_memzero(key, sizeof(key));
	sodium_memzero(stored_key_out, AUTH_SCRAM_KEY_LEN);
	return -1;
}

bool auth_secret_verify_scram(const char *secret, const char *password, size_t password_len)
{
	unsigned char salt[AUTH_SCRAM_SALT_MAX];
	unsigned char stored_key[AUTH_SCRAM_KEY_LEN], server_key[AUTH_SCRAM_KEY_LEN];
	unsigned char got_stored[AUTH_SCRAM_KEY_LEN], got_server[AUTH_SCRAM_KEY_LEN];
	size_t salt_len;
	unsigned iterations;
	bool is_match = false;

	if (password == NULL || password_len > AUTH_PASSWORD_MAX)
		return false;
	if (auth_secret_parse_scram(secret, &iterations, salt, sizeof(salt), &salt_len, stored_key,
				    server_key) < 0)
		return false;
	if (auth_secret_derive_scram(password, password_len, salt, salt_len, iterations, NULL,
				     got_stored, got_server, NULL) == 0)
		is_match = sodium_memcmp(got_stored, stored_key, sizeof(stored_key)) == 0 &&
			   sodium_memcmp(got_server, server_key, sizeof(server_key)) == 0;
	sodium_memzero(stored_key, sizeof(stored_key));
	sodium_memzero(server_key, sizeof(server_key));
	sodium_memzero(got_stored, sizeof(got_stored));
	sodium_memzero(got_server, sizeof(got_server));
	return is_match;
}

bool auth_secret_is_cram_md5(const char *secret)
{
	static const char scheme[] = "{CRAM-MD5}";
	size_t scheme_len = sizeof(scheme) - 1;

	if (secret == NULL || strncasecmp(secret, scheme, scheme_len) != 0)
		return false;
	secret += scheme_len;
	for (size_t i = 0; i < 64; i++)
		if (!isxdigit((unsigned char) secret[i]))
			return false;
	return secret[64] == '\0';
}

bool auth_secret_is_plain(const char *secret)
{
	static const char scheme[] = "{PLAIN}";

	return secret != NULL && strncasecmp(secret, scheme, sizeof(scheme) - 1) == 0 &&
	       secret[sizeof(scheme) - 1] != '\0';
}
