/*
 * cram_md5: the CRAM-MD5 mechanism (RFC 2195) and its stored secret. The
 * server sends "<random-digits.unix-time@hostname>", the client answers
 * "user SP hex(HMAC-MD5(password, challenge))". We verify with Dovecot's
 * {CRAM-MD5} secret, the HMAC-MD5 key schedule precomputed as RFC 2104 4
 * describes: the MD5 chaining values after the outer (key XOR opad) and
 * the inner (key XOR ipad) block, four little-endian 32-bit words each
 * (Dovecot's hmac_md5_get_cram_context), so the password itself is never
 * stored. Continuing an MD5 from saved chaining values needs OpenSSL's
 * low-level MD5 API, deprecated but present in OpenSSL 3 (decision 0044).
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <inttypes.h>
#include <openssl/md5.h>
#include <openssl/rand.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sasl/internal.h"

#define HMAC_MD5_BLOCK 64 /* RFC 2104 2: B */
#define MD5_LEN	       16 /* RFC 2104 2: L */

static const char scheme[] = "{CRAM-MD5}";

static void state_put(unsigned char out[16], const MD5_CTX *c)
{
	const MD5_LONG words[4] = { c->A, c->B, c->C, c->D };

	for (size_t i = 0; i < 4; i++) {
		out[4 * i] = (unsigned char) (words[i] & 0xff);
		out[4 * i + 1] = (unsigned char) (words[i] >> 8 & 0xff);
		out[4 * i + 2] = (unsigned char) (words[i] >> 16 & 0xff);
		out[4 * i + 3] = (unsigned char) (words[i] >> 24 & 0xff);
	}
}

/* An MD5 that has absorbed exactly one 64-octet block, resumed from its
 * chaining values. */
static void state_get(MD5_CTX *c, const unsigned char in[16])
{
	MD5_LONG words[4];

	for (size_t i = 0; i < 4; i++)
		words[i] = (MD5_LONG) in[4 * i] | (MD5_LONG) in[4 * i + 1] << 8 |
			   (MD5_LONG) in[4 * i + 2] << 16 | (MD5_LONG) in[4 * i + 3] << 24;
	MD5_Init(c);
	c->A = words[0];
	c->B = words[1];
	c->C = words[2];
	c->D = words[3];
	c->Nl = HMAC_MD5_BLOCK * 8; /* a bit count */
	c->Nh = 0;
}

void sasl_cram_md5_context_make(const unsigned char *key, size_t key_len,
				unsigned char context_out[SASL_CRAM_MD5_CONTEXT_LEN])
{
	unsigned char hashed_key[MD5_LEN], ipad[HMAC_MD5_BLOCK], opad[HMAC_MD5_BLOCK];
	MD5_CTX inner, outer;

	/* RFC 2104 2: a key longer than B is first hashed. */
	if (key_len > HMAC_MD5_BLOCK) {
		MD5(key, key_len, hashed_key);
		key = hashed_key;
		key_len = MD5_LEN;
	}
	memset(ipad, 0, sizeof(ipad));
	if (key_len > 0)
		memcpy(ipad, key, key_len);
	memcpy(opad, ipad, sizeof(opad));
	for (size_t i = 0; i < HMAC_MD5_BLOCK; i++) {
		ipad[i] ^= 0x36;
		opad[i] ^= 0x5c;
	}
	MD5_Init(&inner);
	MD5_Update(&inner, ipad, sizeof(ipad));
	MD5_Init(&outer);
	MD5_Update(&outer, opad, sizeof(opad));
	/* Dovecot's order: outer first. */
	state_put(context_out, &outer);
	state_put(context_out + 16, &inner);
	sodium_memzero(hashed_key, sizeof(hashed_key));
	sodium_memzero(ipad, sizeof(ipad));
	sodium_memzero(opad, sizeof(opad));
	sodium_memzero(&inner, sizeof(inner));
	sodium_memzero(&outer, sizeof(outer));
}

void sasl_cram_md5_context_hmac(const unsigned char context[SASL_CRAM_MD5_CONTEXT_LEN],
				const unsigned char *message, size_t len,
				unsigned char digest_out[16])
{
	unsigned char inner_digest[MD5_LEN];
	MD5_CTX c;

	state_get(&c, context + 16);
	MD5_Update(&c, message, len);
	MD5_Final(inner_digest, &c);
	state_get(&c, context);
	MD5_Update(&c, inner_digest, sizeof(inner_digest));
	MD5_Final(digest_out, &c);
	sodium_memzero(inner_digest, sizeof(inner_digest));
	sodium_memzero(&c, sizeof(c));
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Exactly 2 * len hex digits, either case. */
static bool hex_decode(struct span s, unsigned char *out, size_t len)
{
	if (s.len != 2 * len)
		return false;
	for (size_t i = 0; i < len; i++) {
		int hi = hex_value((unsigned char) s.ptr[2 * i]);
		int lo = hex_value((unsigned char) s.ptr[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (unsigned char) (hi << 4 | lo);
	}
	return true;
}

int sasl_cram_md5_secret_make(const char *password, size_t password_len, char *out, size_t out_cap,
			      struct error *err)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char context[SASL_CRAM_MD5_CONTEXT_LEN];
	size_t o = sizeof(scheme) - 1;

	if (out_cap > 0)
		out[0] = '\0';
	if (password_len == 0 || password_len > SASL_PASSWORD_MAX ||
	    memchr(password, '\0', password_len) != NULL)
		return error_set(err, ERROR_DATA,
				 "a password must be 1 to %d bytes without NUL bytes",
				 SASL_PASSWORD_MAX);
	if (out_cap < SASL_CRAM_MD5_SECRET_MAX)
		return error_set(err, ERROR_SOFTWARE, "CRAM-MD5 secret buffer too small");
	sasl_cram_md5_context_make((const unsigned char *) password, password_len, context);
	memcpy(out, scheme, o);
	for (size_t i = 0; i < sizeof(context); i++) {
		out[o++] = hex[context[i] >> 4];
		out[o++] = hex[context[i] & 15];
	}
	out[o] = '\0';
	sodium_memzero(context, sizeof(context));
	return 0;
}

int sasl_cram_md5_begin(struct sasl_exchange *x, struct error *err)
{
	struct sasl_cram_md5 *c = &x->u.cram_md5;
	unsigned char random[8];
	uint64_t digits = 0;
	int n;

	if (RAND_bytes(random, sizeof(random)) != 1)
		return error_set(err, ERROR_SOFTWARE, "sasl: random generator failed");
	for (size_t i = 0; i < sizeof(random); i++)
		digits = digits << 8 | random[i];
	/* RFC 2195 2: "<random-digits.timestamp@fqdn>", in the form of an
	 * RFC 822 msg-id; the digits keep it unique within one second. */
	n = snprintf(c->challenge, sizeof(c->challenge), "<%" PRIu64 ".%lld@%s>", digits,
		     (long long) time(NULL), x->hostname);
	if (n < 0 || (size_t) n >= sizeof(c->challenge))
		return error_set(err, ERROR_SOFTWARE, "sasl: CRAM-MD5 challenge too long");
	c->challenge_len = (size_t) n;
	return 0;
}

int sasl_cram_md5_challenge_force(struct sasl_exchange *x, const char *challenge)
{
	struct sasl_cram_md5 *c = &x->u.cram_md5;
	size_t len = strlen(challenge);

	if (x->mechanism != SASL_MECHANISM_CRAM_MD5 || x->state != SASL_STATE_START || len < 2 ||
	    len >= sizeof(c->challenge) || challenge[0] != '<' || challenge[len - 1] != '>')
		return -1;
	memcpy(c->challenge, challenge, len + 1);
	c->challenge_len = len;
	return 0;
}

enum sasl_step sasl_cram_md5_step(struct sasl_exchange *x, bool has_input, struct span input,
				  struct sasl_output *out)
{
	struct sasl_cram_md5 *c = &x->u.cram_md5;
	struct span user, digest;

	if (x->state == SASL_STATE_START) {
		/* RFC 4422 3.3: the server speaks first in CRAM-MD5, so an
		 * initial response (even "=") is a protocol error. */
		if (has_input)
			return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
		return sasl_exchange_challenge(x, SASL_PHASE_FIRST, c->challenge, c->challenge_len,
					       out);
	}
	/* RFC 2195 2: "the user name, a space, and the digest" — 32 hex
	 * digits, lower case in the RFC; upper case decodes alike. The
	 * digest is last and fixed, so the last space splits: a user name
	 * may hold spaces. */
	if (!span_split_last(input, ' ', &user, &digest) || !hex_decode(digest, c->digest, 16) ||
	    !sasl_identity_copy(user, x->username))
		return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
	return sasl_exchange_finish(x, SASL_STEP_NEED_SECRET, out);
}

enum sasl_step sasl_cram_md5_secret(struct sasl_exchange *x, const char *stored_secret,
				    struct sasl_output *out)
{
	struct sasl_cram_md5 *c = &x->u.cram_md5;
	unsigned char context[SASL_CRAM_MD5_CONTEXT_LEN], expected[MD5_LEN];
	size_t prefix = sizeof(scheme) - 1;
	bool is_match;

	if (stored_secret == NULL || strncasecmp(stored_secret, scheme, prefix) != 0 ||
	    !hex_decode(span_from_cstr(stored_secret + prefix), context, sizeof(context))) {
		sodium_memzero(c->digest, sizeof(c->digest));
		return sasl_exchange_finish(x, SASL_STEP_FAILURE, out);
	}
	sasl_cram_md5_context_hmac(context, (const unsigned char *) c->challenge, c->challenge_len,
				   expected);
	is_match = sodium_memcmp(expected, c->digest, sizeof(expected)) == 0;
	sodium_memzero(context, sizeof(context));
	sodium_memzero(expected, sizeof(expected));
	sodium_memzero(c->digest, sizeof(c->digest));
	return sasl_exchange_finish(x, is_match ? SASL_STEP_SUCCESS : SASL_STEP_FAILURE, out);
}
