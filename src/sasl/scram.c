/*
 * scram: SCRAM-SHA-256 and SCRAM-SHA-256-PLUS, server side (RFC 5802 with
 * SHA-256 per RFC 7677; channel binding tls-exporter per RFC 9266).
 *
 *   C: client-first   gs2-header n=user,r=cnonce       -> NEED_SECRET
 *   S: server-first   r=cnonce+snonce,s=salt,i=count   <- sasl_exchange_secret
 *   C: client-final   c=cbind,r=cnonce+snonce,p=proof
 *   S: server-final   v=ServerSignature                (a challenge: decision 0042)
 *   C: (empty)                                         -> SUCCESS
 *
 * The server holds StoredKey and ServerKey only (decision 0003) and never
 * runs PBKDF2: verifying is two HMACs and one SHA-256. Without a usable
 * secret the exchange runs on with a mock salt and random keys and fails at
 * the proof (decision 0043). Usernames and passwords are not SASLprepped
 * (decision 0003).
 */
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sasl/base64.h"
#include "sasl/internal.h"

static const char scheme[] = "{SCRAM-SHA-256}";
static const char mock_salt_label[] = "postgate SCRAM-SHA-256 mock salt";
/* RFC 9266 2. */
static const char cb_name_tls_exporter[] = "tls-exporter";

/* A SCRAM message: valid UTF-8 (value-char of RFC 5802 7), no NUL. */
static bool message_is_valid(struct span s)
{
	return !span_has_byte(s, '\0') && sasl_utf8_is_valid(s);
}

/* Splits off the next comma-separated attribute; false at the end. */
static bool attribute_next(struct span *rest, struct span *attr_out)
{
	long comma;

	if (rest->ptr == NULL)
		return false;
	comma = span_find(*rest, 0, ',');
	if (comma < 0) {
		*attr_out = *rest;
		*rest = span_make(NULL, 0);
	} else {
		*attr_out = span_make(rest->ptr, (size_t) comma);
		*rest = span_make(rest->ptr + comma + 1, rest->len - (size_t) comma - 1);
	}
	return true;
}

/* "k=value" with the given key letter; value_out is the rest. */
static bool attribute_is(struct span attr, char key, struct span *value_out)
{
	if (attr.len < 2 || attr.ptr[0] != key || attr.ptr[1] != '=')
		return false;
	*value_out = span_make(attr.ptr + 2, attr.len - 2);
	return true;
}

/* RFC 5802 7: attr-val = ALPHA "=" value, value = 1*value-char. Unknown
 * extensions are ignored (RFC 5802 7, "extensions"). */
static bool extension_is_valid(struct span attr)
{
	unsigned char c;

	if (attr.len < 3 || attr.ptr[1] != '=')
		return false;
	c = (unsigned char) attr.ptr[0];
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* RFC 5802 7: saslname, with "=2C" for ',' and "=3D" for '='; any other
 * '=' is malformed. Decoded into an identity. */
static bool saslname_decode(struct span s, char dst[SASL_USERNAME_MAX + 1])
{
	char decoded[SASL_USERNAME_MAX];
	size_t o = 0;

	dst[0] = '\0';
	for (size_t i = 0; i < s.len; i++) {
		char c = s.ptr[i];

		if (c == ',')
			return false;
		if (c == '=') {
			if (s.len - i < 3)
				return false;
			if (s.ptr[i + 1] == '2' && s.ptr[i + 2] == 'C')
				c = ',';
			else if (s.ptr[i + 1] == '3' && s.ptr[i + 2] == 'D')
				c = '=';
			else
				return false;
			i += 2;
		}
		if (o == sizeof(decoded))
			return false;
		decoded[o++] = c;
	}
	return sasl_identity_copy(span_make(decoded, o), dst);
}

/* RFC 5802 7: printable = %x21-2B / %x2D-7E (no comma). */
static bool nonce_is_valid(struct span s, size_t max)
{
	if (s.len == 0 || s.len > max)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char) s.ptr[i];

		if (c < 0x21 || c > 0x7e || c == ',')
			return false;
	}
	return true;
}

int sasl_scram_begin(struct sasl_exchange *x, struct error *err)
{
	struct sasl_scram *s = &x->u.scram;
	unsigned char random[SASL_SCRAM_SERVER_NONCE_RANDOM_LEN];
	bool ok;

	s->is_plus = x->mechanism == SASL_MECHANISM_SCRAM_SHA_256_PLUS;
	if (RAND_bytes(random, sizeof(random)) != 1 ||
	    RAND_bytes(s->mock_keys, sizeof(s->mock_keys)) != 1)
		return error_set(err, ERROR_SOFTWARE, "sasl: random generator failed");
	/* RFC 5802 5.1: the server's nonce part is printable and
	 * unpredictable; base64 of 24 random octets is both. */
	ok = sasl_base64_encode(random, sizeof(random), s->server_nonce, sizeof(s->server_nonce),
				&s->server_nonce_len);
	sodium_memzero(random, sizeof(random));
	if (!ok)
		return error_set(err, ERROR_SOFTWARE, "sasl: server nonce does not fit");
	return 0;
}

int sasl_scram_server_nonce_force(struct sasl_exchange *x, const char *nonce)
{
	struct sasl_scram *s = &x->u.scram;
	size_t len = strlen(nonce);

	if ((x->mechanism != SASL_MECHANISM_SCRAM_SHA_256 &&
	     x->mechanism != SASL_MECHANISM_SCRAM_SHA_256_PLUS) ||
	    x->state != SASL_STATE_START ||
	    !nonce_is_valid(span_make(nonce, len), SASL_SCRAM_SERVER_NONCE_MAX))
		return -1;
	memcpy(s->server_nonce, nonce, len + 1);
	s->server_nonce_len = len;
	return 0;
}

/*
 * The GS2 header (RFC 5802 7): gs2-cbind-flag "," [authzid] ",". Fills
 * flag_out with 'n', 'y' or 'p', the authzid (decoded) into x->authzid.
 * MALFORMED for bad syntax or a flag that does not fit the mechanism,
 * FAILURE for a downgrade.
 */
static enum sasl_step gs2_header_parse(struct sasl_exchange *x, struct span *rest,
				       struct span *header_out)
{
	struct sasl_scram *s = &x->u.scram;
	struct span flag, authzid, value;
	const char *start = rest->ptr;

	if (!attribute_next(rest, &flag) || !attribute_next(rest, &authzid) || rest->ptr == NULL)
		return SASL_STEP_MALFORMED;
	*header_out = span_make(start, (size_t) (rest->ptr - start));
	if (header_out->len > SASL_SCRAM_GS2_HEADER_MAX)
		return SASL_STEP_MALFORMED;
	if (authzid.len > 0 &&
	    (!attribute_is(authzid, 'a', &value) || !saslname_decode(value, x->authzid)))
		return SASL_STEP_MALFORMED;
	if (s->is_plus) {
		/* RFC 5802 6: -PLUS means the client binds; we bind only to
		 * tls-exporter (RFC 9266, decision 0054). */
		if (!attribute_is(flag, 'p', &value) || !span_eq_cstr(value, cb_name_tls_exporter))
			return SASL_STEP_MALFORMED;
	} else if (span_eq_cstr(flag, "y")) {
		/* RFC 5802 6: the client could bind but believes we cannot.
		 * We can (we would offer -PLUS), so someone stripped it. */
		if (x->has_channel_binding)
			return SASL_STEP_FAILURE;
	} else if (!span_eq_cstr(flag, "n")) {
		/* "p=" without -PLUS, or no flag at all. */
		return SASL_STEP_MALFORMED;
	}
	return SASL_STEP_CHALLENGE;
}

static enum sasl_step client_first(struct sasl_exchange *x, struct span input,
				   struct sasl_output *out)
{
	struct sasl_scram *s = &x->u.scram;
	struct span rest = input, header, bare, attr, value;
	enum sasl_step step;

	if (!message_is_valid(input))
		return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
	step = gs2_header_parse(x, &rest, &header);
	if (step != SASL_STEP_CHALLENGE)
		return sasl_exchange_finish(x, step, out);
	bare = rest;
	if (bare.len > sizeof(s->client_first_bare))
		return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
	/* RFC 5802 5.1: "m=" is a mandatory extension we do not know, which
	 * "MUST cause authentication failure"; it is the client's protocol
	 * we cannot speak, so 501. Then n=, r=, and ignored extensions. */
	if (!attribute_next(&rest, &attr) || !attribute_is(attr, 'n', &value) ||
	    !saslname_decode(value, x->username))
		return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
	if (!attribute_next(&rest, &attr) || !attribute_is(attr, 'r', &value) ||
	    !nonce_is_valid(value, SASL_SCRAM_NONCE_MAX))
		return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
	s->client_nonce = span_make(s->client_first_bare + (value.ptr - bare.ptr), value.len);
	while (attribute_next(&rest, &attr))
		if (!extension_is_valid(attr))
			return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
	/* RFC 5802 5.1: an authzid must be one the user may act as; ours
	 * act only as themselves. */
	if (x->authzid[0] != '\0' && strcmp(x->authzid, x->username) != 0)
		return sasl_exchange_finish(x, SASL_STEP_FAILURE, out);
	memcpy(s->gs2_header, header.ptr, header.len);
	s->gs2_header_len = header.len;
	memcpy(s->client_first_bare, bare.ptr, bare.len);
	s->client_first_bare_len = bare.len;
	return sasl_exchange_finish(x, SASL_STEP_NEED_SECRET, out);
}

/* "{SCRAM-SHA-256}iterations,salt,StoredKey,ServerKey" (decision 0003),
 * with auth_secret_parse_scram's bounds. */
static bool secret_parse(struct sasl_scram *s, const char *secret)
{
	size_t prefix = sizeof(scheme) - 1, len;
	struct span rest, field[4];
	uint64_t iterations;
	size_t n = 0;

	if (secret == NULL || strncasecmp(secret, scheme, prefix) != 0)
		return false;
	rest = span_from_cstr(secret + prefix);
	while (n < 4 && attribute_next(&rest, &field[n]))
		n++;
	if (n != 4 || rest.ptr != NULL)
		return false;
	if (!span_parse_u64(field[0], &iterations) || iterations < SASL_SCRAM_ITERATIONS_MIN ||
	    iterations > SASL_SCRAM_ITERATIONS_MAX)
		return false;
	s->iterations = (unsigned) iterations;
	if (!sasl_base64_decode(field[1], s->salt, sizeof(s->salt), &s->salt_len) ||
	    s->salt_len == 0)
		return false;
	if (!sasl_base64_decode(field[2], s->stored_key, sizeof(s->stored_key), &len) ||
	    len != SASL_SCRAM_KEY_LEN)
		return false;
	if (!sasl_base64_decode(field[3], s->server_key, sizeof(s->server_key), &len) ||
	    len != SASL_SCRAM_KEY_LEN)
		return false;
	return true;
}

/*
 * RFC 5802 5.1 suggests a mock salt for unknown users: HMAC-SHA-256 of
 * the name under the per-process mock key, so the same name always gets
 * the same salt, as a real user does. The name is ASCII-lowercased first
 * because the accounts store matches names that way (store/address.h): a
 * real user shows one salt for "Alice@" and "alice@", so a mock must too.
 */
static void mock_make(struct sasl_exchange *x)
{
	struct sasl_scram *s = &x->u.scram;
	unsigned char digest[SHA256_DIGEST_LENGTH],
		input[sizeof(mock_salt_label) + SASL_USERNAME_MAX];
	size_t name_len = strlen(x->username), len = sizeof(mock_salt_label);
	unsigned int digest_len = 0;

	memcpy(input, mock_salt_label, sizeof(mock_salt_label)); /* with its NUL */
	for (size_t i = 0; i < name_len; i++) {
		unsigned char c = (unsigned char) x->username[i];

		input[len++] = c >= 'A' && c <= 'Z' ? (unsigned char) (c - 'A' + 'a') : c;
	}
	if (HMAC(EVP_sha256(), x->mock_key, SASL_MOCK_KEY_LEN, input, len, digest, &digest_len) ==
	    NULL)
		memset(digest, 0, sizeof(digest)); /* still fails at the proof */
	memcpy(s->salt, digest, SASL_SCRAM_MOCK_SALT_LEN);
	s->salt_len = SASL_SCRAM_MOCK_SALT_LEN;
	s->iterations = SASL_SCRAM_MOCK_ITERATIONS;
	memcpy(s->stored_key, s->mock_keys, SASL_SCRAM_KEY_LEN);
	memcpy(s->server_key, s->mock_keys + SASL_SCRAM_KEY_LEN, SASL_SCRAM_KEY_LEN);
	s->is_mock = true;
	sodium_memzero(digest, sizeof(digest));
}

enum sasl_step sasl_scram_secret(struct sasl_exchange *x, const char *stored_secret,
				 struct sasl_output *out)
{
	struct sasl_scram *s = &x->u.scram;
	char salt_b64[SASL_BASE64_ENCODED_LEN(SASL_SCRAM_SALT_MAX) + 1];
	int n;

	/* A malformed secret shows nothing either: the caller logs it. */
	if (!secret_parse(s, stored_secret))
		mock_make(x);
	if (!sasl_base64_encode(s->salt, s->salt_len, salt_b64, sizeof(salt_b64), NULL))
		return sasl_exchange_finish(x, SASL_STEP_FAILURE, out);
	/* RFC 5802 7: server-first-message = [reserved-mext ","] nonce ","
	 * salt "," iteration-count ["," extensions]. */
	n = snprintf(s->server_first, sizeof(s->server_first), "r=%.*s%s,s=%s,i=%u",
		     (int) s->client_nonce.len, s->client_nonce.ptr, s->server_nonce, salt_b64,
		     s->iterations);
	if (n < 0 || (size_t) n >= sizeof(s->server_first))
		return sasl_exchange_finish(x, SASL_STEP_FAILURE, out);
	s->server_first_len = (size_t) n;
	return sasl_exchange_challenge(x, SASL_PHASE_CLIENT_FINAL, s->server_first,
				       s->server_first_len, out);
}

/* c= must carry our GS2 header, and for -PLUS our channel binding data
 * (RFC 5802 7, cbind-input). */
static bool channel_binding_matches(const struct sasl_exchange *x, struct span value)
{
	const struct sasl_scram *s = &x->u.scram;
	unsigned char decoded[SASL_SCRAM_GS2_HEADER_MAX + SASL_CHANNEL_BINDING_LEN];
	unsigned char expected[sizeof(decoded)];
	size_t len, expected_len = s->gs2_header_len;

	if (!sasl_base64_decode(value, decoded, sizeof(decoded), &len))
		return false;
	memcpy(expected, s->gs2_header, s->gs2_header_len);
	if (s->is_plus) {
		memcpy(expected + expected_len, x->channel_binding, SASL_CHANNEL_BINDING_LEN);
		expected_len += SASL_CHANNEL_BINDING_LEN;
	}
	return len == expected_len && sodium_memcmp(decoded, expected, len) == 0;
}

static bool hmac_sha256(const unsigned char key[SASL_SCRAM_KEY_LEN], const unsigned char *data,
			size_t len, unsigned char out[SASL_SCRAM_KEY_LEN])
{
	unsigned int out_len = 0;

	return HMAC(EVP_sha256(), key, SASL_SCRAM_KEY_LEN, data, len, out, &out_len) != NULL &&
	       out_len == SASL_SCRAM_KEY_LEN;
}

static enum sasl_step client_final(struct sasl_exchange *x, struct span input,
				   struct sasl_output *out)
{
	struct sasl_scram *s = &x->u.scram;
	struct span without_proof, proof_attr, rest, attr, value;
	unsigned char proof[SASL_SCRAM_KEY_LEN], signature[SASL_SCRAM_KEY_LEN],
		client_key[SASL_SCRAM_KEY_LEN], computed[SASL_SCRAM_KEY_LEN];
	/* AuthMessage = client-first-message-bare "," server-first-message ","
	 * client-final-message-without-proof (RFC 5802 3). */
	unsigned char auth_message[SASL_SCRAM_CLIENT_FIRST_BARE_MAX + SASL_CHALLENGE_MAX +
				   SASL_MESSAGE_MAX + 2];
	size_t proof_len, am_len = 0;
	char final[2 + SASL_BASE64_ENCODED_LEN(SASL_SCRAM_KEY_LEN) + 1];
	bool is_valid;

	if (!message_is_valid(input) || !span_split_last(input, ',', &without_proof, &proof_attr) ||
	    !attribute_is(proof_attr, 'p', &value) ||
	    !sasl_base64_decode(value, proof, sizeof(proof), &proof_len) ||
	    proof_len != SASL_SCRAM_KEY_LEN)
		return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
	rest = without_proof;
	if (!attribute_next(&rest, &attr) || !attribute_is(attr, 'c', &value))
		return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
	/* RFC 5802 5.1: a wrong binding is an authentication failure
	 * (e=channel-bindings-dont-match), as is a wrong nonce. */
	if (!channel_binding_matches(x, value))
		return sasl_exchange_finish(x, SASL_STEP_FAILURE, out);
	if (!attribute_next(&rest, &attr) || !attribute_is(attr, 'r', &value) ||
	    !nonce_is_valid(value, SASL_SCRAM_NONCE_MAX + SASL_SCRAM_SERVER_NONCE_MAX))
		return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
	if (value.len != s->client_nonce.len + s->server_nonce_len ||
	    memcmp(value.ptr, s->client_nonce.ptr, s->client_nonce.len) != 0 ||
	    memcmp(value.ptr + s->client_nonce.len, s->server_nonce, s->server_nonce_len) != 0)
		return sasl_exchange_finish(x, SASL_STEP_FAILURE, out);
	while (attribute_next(&rest, &attr))
		if (!extension_is_valid(attr))
			return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);

	memcpy(auth_message, s->client_first_bare, s->client_first_bare_len);
	am_len = s->client_first_bare_len;
	auth_message[am_len++] = ',';
	memcpy(auth_message + am_len, s->server_first, s->server_first_len);
	am_len += s->server_first_len;
	auth_message[am_len++] = ',';
	memcpy(auth_message + am_len, without_proof.ptr, without_proof.len);
	am_len += without_proof.len;

	/* RFC 5802 3: ClientSignature = HMAC(StoredKey, AuthMessage);
	 * ClientKey = ClientProof XOR ClientSignature; the proof holds when
	 * H(ClientKey) = StoredKey. */
	is_valid = hmac_sha256(s->stored_key, auth_message, am_len, signature);
	for (size_t i = 0; i < SASL_SCRAM_KEY_LEN; i++)
		client_key[i] = proof[i] ^ signature[i];
	SHA256(client_key, sizeof(client_key), computed);
	is_valid = is_valid && sodium_memcmp(computed, s->stored_key, SASL_SCRAM_KEY_LEN) == 0 &&
		   !s->is_mock;
	/* ServerSignature = HMAC(ServerKey, AuthMessage), for v=. */
	is_valid = is_valid && hmac_sha256(s->server_key, auth_message, am_len, signature);
	if (is_valid) {
		memcpy(final, "v=", 2);
		is_valid = sasl_base64_encode(signature, sizeof(signature), final + 2,
					      sizeof(final) - 2, NULL);
	}
	sodium_memzero(proof, sizeof(proof));
	sodium_memzero(signature, sizeof(signature));
	sodium_memzero(client_key, sizeof(client_key));
	sodium_memzero(computed, sizeof(computed));
	sodium_memzero(s->stored_key, sizeof(s->stored_key));
	sodium_memzero(s->server_key, sizeof(s->server_key));
	if (!is_valid)
		return sasl_exchange_finish(x, SASL_STEP_FAILURE, out);
	/* Decision 0042: neither SMTP's 235 nor POP3's +OK carries data, so
	 * server-final goes out as a challenge (RFC 4422 3.6). */
	return sasl_exchange_challenge(x, SASL_PHASE_FINAL_EMPTY, final, strlen(final), out);
}

enum sasl_step sasl_scram_step(struct sasl_exchange *x, bool has_input, struct span input,
			       struct sasl_output *out)
{
	if (x->state == SASL_STATE_START) {
		/* SCRAM is client-first; without an initial response an
		 * empty challenge asks for it (RFC 4954 4). */
		if (!has_input)
			return sasl_exchange_challenge(x, SASL_PHASE_FIRST, "", 0, out);
		return client_first(x, input, out);
	}
	switch (x->phase) {
	case SASL_PHASE_FIRST:
		return client_first(x, input, out);
	case SASL_PHASE_CLIENT_FINAL:
		return client_final(x, input, out);
	case SASL_PHASE_FINAL_EMPTY:
		/* The answer to server-final is empty (RFC 4422 3.6). */
		if (input.len != 0)
			return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
		return sasl_exchange_finish(x, SASL_STEP_SUCCESS, out);
	case SASL_PHASE_USERNAME:
	case SASL_PHASE_PASSWORD:
		break;
	}
	return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
}
