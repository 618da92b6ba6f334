/*
 * Fuzz target for the PLAIN mechanism (src/sasl/plain.c): any message is
 * either refused or yields credentials that keep the mechanism's promises —
 * an identity of 1..255 octets without NUL, an authzid that is empty or the
 * user's, a password of 1..SASL_PASSWORD_MAX octets without NUL — and the
 * verdict decides the end. First octet: bit 0 sends the message after an
 * empty challenge instead of as the initial response, bit 1 is the
 * password verdict.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl/sasl.h"

static const unsigned char mock_key[SASL_MOCK_KEY_LEN];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sasl_server_info info = { .hostname = "mail.example.test", .mock_key = mock_key };
	struct sasl_exchange *x;
	struct sasl_output out;
	struct span message;
	enum sasl_step step;
	bool is_valid;

	if (size == 0)
		return 0;
	message = span_make((const char *) data + 1, size - 1);
	is_valid = data[0] & 2;
	if ((x = sasl_exchange_new(SASL_MECHANISM_PLAIN, &info, NULL)) == NULL)
		abort();
	if (data[0] & 1) {
		if (sasl_exchange_step(x, false, span_make(NULL, 0), &out) != SASL_STEP_CHALLENGE ||
		    out.challenge_len != 0)
			abort();
	}
	step = sasl_exchange_step(x, true, message, &out);
	if (step == SASL_STEP_CHECK_PASSWORD) {
		size_t user_len = strlen(out.username);

		if (user_len == 0 || user_len > SASL_USERNAME_MAX || out.password_len == 0 ||
		    out.password_len > SASL_PASSWORD_MAX ||
		    strlen(out.password) != out.password_len ||
		    (out.authzid[0] != '\0' && strcmp(out.authzid, out.username) != 0))
			abort();
		/* The message is exactly authzid NUL authcid NUL passwd. */
		if (message.len != strlen(out.authzid) + 1 + user_len + 1 + out.password_len ||
		    memcmp(message.ptr + message.len - out.password_len, out.password,
			   out.password_len) != 0)
			abort();
		step = sasl_exchange_password_result(x, is_valid, &out);
		if (step != (is_valid ? SASL_STEP_SUCCESS : SASL_STEP_FAILURE))
			abort();
		if (is_valid && strlen(out.username) != user_len)
			abort();
	} else if (step != SASL_STEP_MALFORMED && step != SASL_STEP_FAILURE) {
		abort();
	}
	sasl_exchange_free(x);
	return 0;
}
