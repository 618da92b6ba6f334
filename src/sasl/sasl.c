/*
 * sasl: the framework under the mechanisms — names, the response framing
 * SMTP and POP3 share, the exchange's life and state checks, and the rules
 * every mechanism applies to identities. The mechanisms themselves are in
 * plain.c, login.c, cram_md5.c and scram.c; none of them does I/O.
 */
#include "sasl/sasl.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sasl/base64.h"
#include "sasl/internal.h"

// clang-format off
static const struct {
	enum sasl_mechanism mechanism;
	const char *name;
	bool is_plaintext;
} mechanisms[] = {
	{ SASL_MECHANISM_PLAIN,		     "PLAIN",		   true },
	{ SASL_MECHANISM_LOGIN,		     "LOGIN",		   true },
	{ SASL_MECHANISM_CRAM_MD5,	     "CRAM-MD5",	   false },
	{ SASL_MECHANISM_SCRAM_SHA_256,	     "SCRAM-SHA-256",	   false },
	{ SASL_MECHANISM_SCRAM_SHA_256_PLUS, "SCRAM-SHA-256-PLUS", false },
};
// clang-format on

bool sasl_mechanism_parse(struct span name, enum sasl_mechanism *mechanism_out)
{
	/* RFC 4422 3.1: mechanism names are upper case, but RFC 4954 7 and
	 * RFC 5034 6 match commands case-insensitively; Eudora sends
	 * "AUTH cram-md5". */
	for (size_t i = 0; i < ARRAY_LEN(mechanisms); i++) {
		if (span_eq_cstr_nocase(name, mechanisms[i].name)) {
			*mechanism_out = mechanisms[i].mechanism;
			return true;
		}
	}
	return false;
}

const char *sasl_mechanism_name(enum sasl_mechanism mechanism)
{
	for (size_t i = 0; i < ARRAY_LEN(mechanisms); i++)
		if (mechanisms[i].mechanism == mechanism)
			return mechanisms[i].name;
	return "UNKNOWN";
}

bool sasl_mechanism_is_plaintext(enum sasl_mechanism mechanism)
{
	for (size_t i = 0; i < ARRAY_LEN(mechanisms); i++)
		if (mechanisms[i].mechanism == mechanism)
			return mechanisms[i].is_plaintext;
	return false;
}

bool sasl_mechanism_is_offered(enum sasl_mechanism mechanism, const struct sasl_offer *offer)
{
	switch (mechanism) {
	case SASL_MECHANISM_PLAIN:
	case SASL_MECHANISM_LOGIN:
		/* They send the password itself (RFC 4954 4, RFC 2595 6). */
		return offer->is_tls || offer->is_plaintext_allowed;
	case SASL_MECHANISM_CRAM_MD5:
		return offer->is_cram_md5_enabled;
	case SASL_MECHANISM_SCRAM_SHA_256:
		return true;
	case SASL_MECHANISM_SCRAM_SHA_256_PLUS:
		return offer->is_tls && offer->has_channel_binding;
	}
	return false;
}

void sasl_mechanisms_list(const struct sasl_offer *offer, char *out, size_t cap)
{
	static const enum sasl_mechanism order[] = {
		SASL_MECHANISM_PLAIN,
		SASL_MECHANISM_LOGIN,
		SASL_MECHANISM_CRAM_MD5,
		SASL_MECHANISM_SCRAM_SHA_256,
		SASL_MECHANISM_SCRAM_SHA_256_PLUS,
	};
	size_t o = 0;

	if (cap == 0)
		return;
	out[0] = '\0';
	for (size_t i = 0; i < ARRAY_LEN(order); i++) {
		int n;

		if (!sasl_mechanism_is_offered(order[i], offer))
			continue;
		n = snprintf(out + o, cap - o, "%s%s", o ? " " : "", sasl_mechanism_name(order[i]));
		if (n < 0 || (size_t) n >= cap - o) {
			out[o] = '\0';
			return;
		}
		o += (size_t) n;
	}
}

enum sasl_response_kind sasl_response_decode(struct span line, unsigned char *out, size_t cap,
					     size_t *len_out)
{
	*len_out = 0;
	/* RFC 4954 4, RFC 5034 4: a line of a single "*" cancels. */
	if (span_eq_cstr(line, "*"))
		return SASL_RESPONSE_CANCEL;
	/* RFC 4954 4: "=" is an empty initial response. It is not base64,
	 * so reading it as empty on a later line is unambiguous too. */
	if (span_eq_cstr(line, "="))
		return SASL_RESPONSE_OK;
	if (line.len > SASL_RESPONSE_LINE_MAX)
		return SASL_RESPONSE_TOO_LONG;
	/* Well-formed but longer than cap is "too long", not "bad". */
	if (sasl_base64_decoded_len(line) > cap)
		return SASL_RESPONSE_TOO_LONG;
	if (!sasl_base64_decode(line, out, cap, len_out))
		return SASL_RESPONSE_BAD_BASE64;
	return SASL_RESPONSE_OK;
}

bool sasl_challenge_encode(const unsigned char *challenge, size_t challenge_len, char *out,
			   size_t out_cap, size_t *len_out)
{
	return sasl_base64_encode(challenge, challenge_len, out, out_cap, len_out);
}

static bool hostname_is_valid(const char *hostname)
{
	size_t len;

	if (hostname == NULL || (len = strlen(hostname)) == 0 || len > SASL_HOSTNAME_MAX)
		return false;
	/* It sits inside "<...@hostname>" (RFC 2195 2, msg-id of RFC 822). */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char) hostname[i];

		if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '@')
			return false;
	}
	return true;
}

static bool is_scram(enum sasl_mechanism mechanism)
{
	return mechanism == SASL_MECHANISM_SCRAM_SHA_256 ||
	       mechanism == SASL_MECHANISM_SCRAM_SHA_256_PLUS;
}

struct sasl_exchange *sasl_exchange_new(enum sasl_mechanism mechanism,
					const struct sasl_server_info *info, struct error *err)
{
	struct sasl_exchange *x;
	int rc = 0;

	if (info == NULL)
		return error_set(err, ERROR_USAGE, "sasl: no server info"), NULL;
	if (mechanism == SASL_MECHANISM_CRAM_MD5 && !hostname_is_valid(info->hostname))
		return error_set(err, ERROR_USAGE, "sasl: CRAM-MD5 needs a valid host name"), NULL;
	if (info->channel_binding != NULL && info->channel_binding_len != SASL_CHANNEL_BINDING_LEN)
		return error_set(err, ERROR_USAGE,
				 "sasl: channel binding data must be %d octets (RFC 9266 2)",
				 SASL_CHANNEL_BINDING_LEN),
		       NULL;
	if (mechanism == SASL_MECHANISM_SCRAM_SHA_256_PLUS && info->channel_binding == NULL)
		return error_set(err, ERROR_USAGE,
				 "sasl: SCRAM-SHA-256-PLUS without channel binding data"),
		       NULL;
	if (is_scram(mechanism) && info->mock_key == NULL)
		return error_set(err, ERROR_USAGE, "sasl: SCRAM needs the mock key"), NULL;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return error_set(err, ERROR_SOFTWARE, "sasl: out of memory"), NULL;
	x->mechanism = mechanism;
	x->state = SASL_STATE_START;
	if (info->hostname != NULL && hostname_is_valid(info->hostname))
		memcpy(x->hostname, info->hostname, strlen(info->hostname) + 1);
	if (info->channel_binding != NULL) {
		x->has_channel_binding = true;
		memcpy(x->channel_binding, info->channel_binding, SASL_CHANNEL_BINDING_LEN);
	}
	if (info->mock_key != NULL) {
		x->has_mock_key = true;
		memcpy(x->mock_key, info->mock_key, SASL_MOCK_KEY_LEN);
	}
	if (mechanism == SASL_MECHANISM_CRAM_MD5)
		rc = sasl_cram_md5_begin(x, err);
	else if (is_scram(mechanism))
		rc = sasl_scram_begin(x, err);
	if (rc != 0) {
		sasl_exchange_free(x);
		return NULL;
	}
	return x;
}

void sasl_exchange_free(struct sasl_exchange *x)
{
	if (x == NULL)
		return;
	sodium_memzero(x, sizeof(*x));
	free(x);
}

static void output_clear(struct sasl_output *out)
{
	memset(out, 0, sizeof(*out));
}

enum sasl_step sasl_exchange_challenge(struct sasl_exchange *x, enum sasl_phase phase,
				       const void *challenge, size_t len, struct sasl_output *out)
{
	assert(len <= sizeof(x->challenge));
	if (len > 0)
		memcpy(x->challenge, challenge, len);
	x->challenge_len = len;
	x->state = SASL_STATE_RESPONSE;
	x->phase = phase;
	out->challenge = x->challenge;
	out->challenge_len = len;
	return SASL_STEP_CHALLENGE;
}

enum sasl_step sasl_exchange_finish(struct sasl_exchange *x, enum sasl_step step,
				    struct sasl_output *out)
{
	switch (step) {
	case SASL_STEP_CHECK_PASSWORD:
		x->state = SASL_STATE_PASSWORD_WAIT;
		out->username = x->username;
		out->authzid = x->authzid;
		out->password = x->password;
		out->password_len = x->password_len;
		break;
	case SASL_STEP_NEED_SECRET:
		x->state = SASL_STATE_SECRET_WAIT;
		out->username = x->username;
		break;
	case SASL_STEP_SUCCESS:
		x->state = SASL_STATE_DONE;
		out->username = x->username;
		out->authzid = x->authzid;
		break;
	case SASL_STEP_FAILURE:
	case SASL_STEP_MALFORMED:
		x->state = SASL_STATE_DONE;
		break;
	case SASL_STEP_CHALLENGE:
		assert(!"challenges end through sasl_exchange_challenge");
		break;
	}
	if (step != SASL_STEP_CHECK_PASSWORD && x->password_len > 0) {
		sodium_memzero(x->password, sizeof(x->password));
		x->password_len = 0;
	}
	return step;
}

enum sasl_step sasl_exchange_step(struct sasl_exchange *x, bool has_input, struct span input,
				  struct sasl_output *out)
{
	output_clear(out);
	/* Stepping is for the start and for a challenge's response; any other
	 * call is the caller's bug. */
	assert(x->state == SASL_STATE_START || x->state == SASL_STATE_RESPONSE);
	assert(has_input || x->state == SASL_STATE_START);
	if (x->state != SASL_STATE_START && x->state != SASL_STATE_RESPONSE)
		return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
	if (!has_input)
		input = span_make("", 0);
	if (input.len > SASL_MESSAGE_MAX)
		return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
	switch (x->mechanism) {
	case SASL_MECHANISM_PLAIN:
		return sasl_plain_step(x, has_input, input, out);
	case SASL_MECHANISM_LOGIN:
		return sasl_login_step(x, has_input, input, out);
	case SASL_MECHANISM_CRAM_MD5:
		return sasl_cram_md5_step(x, has_input, input, out);
	case SASL_MECHANISM_SCRAM_SHA_256:
	case SASL_MECHANISM_SCRAM_SHA_256_PLUS:
		return sasl_scram_step(x, has_input, input, out);
	}
	return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
}

enum sasl_step sasl_exchange_password_result(struct sasl_exchange *x, bool is_valid,
					     struct sasl_output *out)
{
	output_clear(out);
	assert(x->state == SASL_STATE_PASSWORD_WAIT);
	if (x->state != SASL_STATE_PASSWORD_WAIT)
		return sasl_exchange_finish(x, SASL_STEP_FAILURE, out);
	return sasl_exchange_finish(x, is_valid ? SASL_STEP_SUCCESS : SASL_STEP_FAILURE, out);
}

enum sasl_step sasl_exchange_secret(struct sasl_exchange *x, const char *stored_secret,
				    struct sasl_output *out)
{
	output_clear(out);
	assert(x->state == SASL_STATE_SECRET_WAIT);
	if (x->state != SASL_STATE_SECRET_WAIT)
		return sasl_exchange_finish(x, SASL_STEP_FAILURE, out);
	if (x->mechanism == SASL_MECHANISM_CRAM_MD5)
		return sasl_cram_md5_secret(x, stored_secret, out);
	if (is_scram(x->mechanism))
		return sasl_scram_secret(x, stored_secret, out);
	return sasl_exchange_finish(x, SASL_STEP_FAILURE, out);
}

bool sasl_utf8_is_valid(struct span s)
{
	const unsigned char *p = (const unsigned char *) s.ptr;
	size_t i = 0;

	while (i < s.len) {
		unsigned char c = p[i];
		size_t n;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			n = 1, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			n = 2, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			n = 3, cp = c & 0x07, min = 0x10000;
		else
			return false;
		if (s.len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

bool sasl_identity_copy(struct span s, char dst[SASL_USERNAME_MAX + 1])
{
	const unsigned char *p = (const unsigned char *) s.ptr;

	dst[0] = '\0';
	if (s.len == 0 || s.len > SASL_USERNAME_MAX || !sasl_utf8_is_valid(s))
		return false;
	for (size_t i = 0; i < s.len; i++) {
		/* C0 and DEL; C1 (U+0080..U+009F) is 0xc2 0x80..0x9f. */
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
		if (p[i] == 0xc2 && i + 1 < s.len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
			return false;
	}
	memcpy(dst, s.ptr, s.len);
	dst[s.len] = '\0';
	return true;
}
