/*
 * secret: turning a password into the stored secrets and checking a password
 * against them. Stored forms are Dovecot's scheme-prefixed strings so that
 * imports and exports are lossless:
 *   {ARGON2ID}$argon2id$v=19$m=...,t=...,p=...$salt$hash   (libsodium)
 *   {SCRAM-SHA-256}<iterations>,<base64 salt>,<base64 StoredKey>,<base64 ServerKey>
 *   {CRAM-MD5}<64 hex digits>   (made by sasl_cram_md5_secret_make, src/sasl/)
 * Never logs; wipes its copies of the password. Safe from any thread after
 * auth_secret_global_init().
 */
#ifndef POSTGATE_AUTH_SECRET_H
#define POSTGATE_AUTH_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

#define AUTH_SECRET_MAX		      1024
#define AUTH_PASSWORD_MAX	      1024    /* bytes; longer passwords are refused */
#define AUTH_SCRAM_ITERATIONS_DEFAULT 4096    /* RFC 7677 4: at least 4096 */
#define AUTH_SCRAM_ITERATIONS_MIN     4096    /* RFC 7677 4 */
#define AUTH_SCRAM_ITERATIONS_MAX     1000000 /* bounds the work one secret may ask of us */
#define AUTH_SCRAM_SALT_LEN	      16      /* what we make */
#define AUTH_SCRAM_SALT_MAX	      64      /* what we accept from an imported secret */
#define AUTH_SCRAM_KEY_LEN	      32      /* SHA-256 output: StoredKey, ServerKey, ClientKey */

/* Initializes libsodium; call once at start (again is harmless). 0 or -1. */
int auth_secret_global_init(struct error *err);

/*
 * Make a stored secret from a password (its octets as given: no SASLprep).
 * Refused with ERROR_DATA: an empty password, one longer than
 * AUTH_PASSWORD_MAX, one holding a NUL byte (SASL PLAIN could never send
 * it). out_cap of AUTH_SECRET_MAX is always enough; out is "" after a
 * failure. argon2id takes about 0.1 s and 64 MiB: call it from a worker.
 */
int auth_secret_make_argon2id(const char *password, size_t password_len, char *out, size_t out_cap,
			      struct error *err);
/* iterations: AUTH_SCRAM_ITERATIONS_MIN..AUTH_SCRAM_ITERATIONS_MAX, else ERROR_DATA. */
int auth_secret_make_scram(const char *password, size_t password_len, unsigned iterations,
			   char *out, size_t out_cap, struct error *err);

/* true only for a well-formed {ARGON2ID} secret that matches. Constant-time
 * compare. Secrets whose cost parameters are beyond libsodium's "sensitive"
 * limits (or with more than one lane) are refused as malformed. */
bool auth_secret_verify_argon2id(const char *secret, const char *password, size_t password_len);

/* true only for a well-formed {SCRAM-SHA-256} secret whose StoredKey and
 * ServerKey both follow from the password: for a plaintext login (PLAIN,
 * LOGIN, USER/PASS) by a user who has only a SCRAM secret. Costs
 * `iterations` PBKDF2 rounds: call it from a worker. */
bool auth_secret_verify_scram(const char *secret, const char *password, size_t password_len);

/* Parses and validates a {SCRAM-SHA-256} secret: iterations within
 * AUTH_SCRAM_ITERATIONS_MIN..MAX, a salt of 1..min(salt_cap,
 * AUTH_SCRAM_SALT_MAX) bytes, keys of exactly 32 bytes each, standard padded
 * base64, nothing else. The scheme name matches without regard to case.
 * 0 or -1. */
int auth_secret_parse_scram(const char *secret, unsigned *iterations_out, unsigned char *salt_out,
			    size_t salt_cap, size_t *salt_len_out, unsigned char stored_key_out[32],
			    unsigned char server_key_out[32]);

/* Whether secret is a well-formed {CRAM-MD5} secret: the scheme (any case)
 * and exactly 64 hex digits (the two HMAC-MD5 key-schedule states, decision
 * 0044). */
bool auth_secret_is_cram_md5(const char *secret);

/* Whether secret is a {PLAIN} secret (the password itself, for APOP):
 * the scheme (any case) and at least one octet. */
bool auth_secret_is_plain(const char *secret);

/*
 * RFC 5802 3 key derivation with SHA-256 (RFC 7677): SaltedPassword =
 * PBKDF2-HMAC-SHA-256(password, salt, iterations), ClientKey = HMAC(
 * SaltedPassword, "Client Key"), StoredKey = SHA-256(ClientKey), ServerKey =
 * HMAC(SaltedPassword, "Server Key"). client_key_out may be NULL (a server
 * needs only StoredKey and ServerKey; a SCRAM client needs ClientKey).
 * ERROR_DATA for iterations or salt length out of bounds.
 */
int auth_secret_derive_scram(const char *password, size_t password_len, const unsigned char *salt,
			     size_t salt_len, unsigned iterations,
			     unsigned char client_key_out[AUTH_SCRAM_KEY_LEN],
			     unsigned char stored_key_out[AUTH_SCRAM_KEY_LEN],
			     unsigned char server_key_out[AUTH_SCRAM_KEY_LEN], struct error *err);

#endif
