/*
 * internal: what the files of src/sasl/ share and nothing outside uses —
 * the exchange itself, each mechanism's state and step functions, the
 * checks every mechanism applies to identities, and the test hooks that
 * replace the random parts of a challenge with a published example's.
 */
#ifndef POSTGATE_SASL_INTERNAL_H
#define POSTGATE_SASL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sasl/sasl.h"

/* Our part of SCRAM's nonce: 24 random octets, base64 (32 characters). */
#define SASL_SCRAM_SERVER_NONCE_RANDOM_LEN 24
#define SASL_SCRAM_SERVER_NONCE_MAX	   64
/* The bounds on a stored secret's iteration count and salt, the same as
 * auth/secret.h's (sasl may not include auth/: STYLE.md 1). */
#define SASL_SCRAM_ITERATIONS_MIN 4096	  /* RFC 7677 4 */
#define SASL_SCRAM_ITERATIONS_MAX 1000000 /* AUTH_SCRAM_ITERATIONS_MAX */
#define SASL_SCRAM_SALT_MAX	  64	  /* AUTH_SCRAM_SALT_MAX */
#define SASL_SCRAM_KEY_LEN	  32	  /* SHA-256 output */
/* What an unknown user is shown: the count new secrets get
 * (AUTH_SCRAM_ITERATIONS_DEFAULT) and a salt as long as theirs
 * (AUTH_SCRAM_SALT_LEN). */
#define SASL_SCRAM_MOCK_ITERATIONS 4096
#define SASL_SCRAM_MOCK_SALT_LEN   16
/* A GS2 header: flag, channel binding name, authzid as a saslname
 * (every octet may be escaped to three). */
#define SASL_SCRAM_GS2_HEADER_MAX (32 + 3 * SASL_USERNAME_MAX + 8)
/* client-first-message-bare: "n=" saslname ",r=" nonce [extensions]. */
#define SASL_SCRAM_CLIENT_FIRST_BARE_MAX 2048
/* A {CRAM-MD5} secret decoded: two MD5 chaining states of 16 octets. */
#define SASL_CRAM_MD5_CONTEXT_LEN 32

enum sasl_state {
	SASL_STATE_START,	  /* nothing received yet */
	SASL_STATE_RESPONSE,	  /* a challenge went out; the next step brings its response */
	SASL_STATE_PASSWORD_WAIT, /* CHECK_PASSWORD went out */
	SASL_STATE_SECRET_WAIT,	  /* NEED_SECRET went out */
	SASL_STATE_DONE,	  /* SUCCESS, FAILURE or MALFORMED went out */
};

/* Which response a mechanism waits for in SASL_STATE_RESPONSE. */
enum sasl_phase {
	SASL_PHASE_FIRST,	 /* PLAIN message, SCRAM client-first, CRAM-MD5 response */
	SASL_PHASE_USERNAME,	 /* LOGIN: after "Username:" */
	SASL_PHASE_PASSWORD,	 /* LOGIN: after "Password:" */
	SASL_PHASE_CLIENT_FINAL, /* SCRAM: after server-first */
	SASL_PHASE_FINAL_EMPTY,	 /* SCRAM: after server-final, an empty response */
};

struct sasl_cram_md5 {
	/* The challenge: "<" digits "." time "@" hostname ">". */
	char challenge[SASL_HOSTNAME_MAX + 48];
	size_t challenge_len;
	unsigned char digest[16]; /* the client's HMAC-MD5, decoded from hex */
};

struct sasl_scram {
	bool is_plus; /* SCRAM-SHA-256-PLUS */
	bool is_mock; /* no usable secret: fail at the proof (decision 0043) */
	char gs2_header[SASL_SCRAM_GS2_HEADER_MAX + 1];
	size_t gs2_header_len;
	char client_first_bare[SASL_SCRAM_CLIENT_FIRST_BARE_MAX];
	size_t client_first_bare_len;
	struct span client_nonce; /* inside client_first_bare */
	char server_nonce[SASL_SCRAM_SERVER_NONCE_MAX + 1];
	size_t server_nonce_len;
	char server_first[SASL_CHALLENGE_MAX];
	size_t server_first_len;
	unsigned iterations;
	unsigned char salt[SASL_SCRAM_SALT_MAX];
	size_t salt_len;
	unsigned char stored_key[SASL_SCRAM_KEY_LEN];
	unsigned char server_key[SASL_SCRAM_KEY_LEN];
	/* Keys for a mock exchange, random per exchange: no proof matches. */
	unsigned char mock_keys[2 * SASL_SCRAM_KEY_LEN];
};

struct sasl_exchange {
	enum sasl_mechanism mechanism;
	enum sasl_state state;
	enum sasl_phase phase;
	char hostname[SASL_HOSTNAME_MAX + 1];
	bool has_channel_binding;
	unsigned char channel_binding[SASL_CHANNEL_BINDING_LEN];
	bool has_mock_key;
	unsigned char mock_key[SASL_MOCK_KEY_LEN];
	char username[SASL_USERNAME_MAX + 1];
	char authzid[SASL_USERNAME_MAX + 1];
	char password[SASL_PASSWORD_MAX + 1];
	size_t password_len;
	unsigned char challenge[SASL_CHALLENGE_MAX];
	size_t challenge_len;
	union {
		struct sasl_cram_md5 cram_md5;
		struct sasl_scram scram;
	} u;
};

/*
 * Mechanism steps. sasl_exchange_step has checked the state and the input
 * length; each returns the next step, sets exchange->state/phase and fills
 * out. _begin makes the mechanism's random parts in sasl_exchange_new
 * (0 or -1 with err).
 */
enum sasl_step sasl_plain_step(struct sasl_exchange *x, bool has_input, struct span input,
			       struct sasl_output *out);
enum sasl_step sasl_login_step(struct sasl_exchange *x, bool has_input, struct span input,
			       struct sasl_output *out);
int sasl_cram_md5_begin(struct sasl_exchange *x, struct error *err);
enum sasl_step sasl_cram_md5_step(struct sasl_exchange *x, bool has_input, struct span input,
				  struct sasl_output *out);
enum sasl_step sasl_cram_md5_secret(struct sasl_exchange *x, const char *stored_secret,
				    struct sasl_output *out);
int sasl_scram_begin(struct sasl_exchange *x, struct error *err);
enum sasl_step sasl_scram_step(struct sasl_exchange *x, bool has_input, struct span input,
			       struct sasl_output *out);
enum sasl_step sasl_scram_secret(struct sasl_exchange *x, const char *stored_secret,
				 struct sasl_output *out);

/* HMAC-MD5 through a precomputed key schedule (RFC 2104 4), in Dovecot's
 * layout: outer then inner MD5 chaining values, little-endian words. */
void sasl_cram_md5_context_make(const unsigned char *key, size_t key_len,
				unsigned char context_out[SASL_CRAM_MD5_CONTEXT_LEN]);
void sasl_cram_md5_context_hmac(const unsigned char context[SASL_CRAM_MD5_CONTEXT_LEN],
				const unsigned char *message, size_t len,
				unsigned char digest_out[16]);

/* Shared endings: set the state and fill out. */
enum sasl_step sasl_exchange_challenge(struct sasl_exchange *x, enum sasl_phase phase,
				       const void *challenge, size_t len, struct sasl_output *out);
enum sasl_step sasl_exchange_finish(struct sasl_exchange *x, enum sasl_step step,
				    struct sasl_output *out);

/*
 * An authentication or authorization identity as every mechanism accepts
 * it: 1..SASL_USERNAME_MAX octets of well-formed UTF-8 (RFC 3629), no
 * control characters (C0, DEL, C1). Copies it, NUL-terminated, into dst
 * (SASL_USERNAME_MAX + 1 octets).
 */
bool sasl_identity_copy(struct span s, char dst[SASL_USERNAME_MAX + 1]);
/* Well-formed UTF-8 (RFC 3629 4): no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
bool sasl_utf8_is_valid(struct span s);

/*
 * Test hooks: replace the random part of the next challenge so the
 * published examples can be replayed (RFC 2195 2, RFC 7677 3). Call right
 * after sasl_exchange_new, before the first step. -1 when the exchange has
 * another mechanism or the value does not fit the grammar.
 */
int sasl_cram_md5_challenge_force(struct sasl_exchange *x, const char *challenge);
int sasl_scram_server_nonce_force(struct sasl_exchange *x, const char *nonce);

#endif
