/*
 * Fuzz target for the LOGIN mechanism (src/sasl/login.c): the input is up
 * to four client responses separated by LF (a response itself holds no LF
 * here; LOGIN values may, and the mechanism does not care). First octet:
 * bit 0 sends the first response as the initial response, bit 1 is the
 * password verdict. Every challenge must be "Username:" or "Password:",
 * and credentials keep the mechanism's bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl/sasl.h"

static const unsigned char mock_key[SASL_MOCK_KEY_LEN];

static bool is_prompt(const struct sasl_output *out)
{
	return (out->challenge_len == 9 && (memcmp(out->challenge, "Username:", 9) == 0 ||
					    memcmp(out->challenge, "Password:", 9) == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sasl_server_info info = { .hostname = "mail.example.test", .mock_key = mock_key };
	struct sasl_exchange *x;
	struct sasl_output out;
	struct span rest, response;
	enum sasl_step step;
	bool is_valid;

	if (size == 0)
		return 0;
	is_valid = data[0] & 2;
	rest = span_make((const char *) data + 1, size - 1);
	if ((x = sasl_exchange_new(SASL_MECHANISM_LOGIN, &info, NULL)) == NULL)
		abort();
	if (data[0] & 1) {
		step = SASL_STEP_CHALLENGE;
		out.challenge = (const unsigned char *) "Username:";
		out.challenge_len = 9;
	} else {
		step = sasl_exchange_step(x, false, span_make(NULL, 0), &out);
	}
	for (int n = 0; n < 4 && step == SASL_STEP_CHALLENGE; n++) {
		if (!is_prompt(&out))
			abort();
		if (!span_split_first(rest, '\n', &response, &rest)) {
			response = rest;
			rest = span_make("", 0);
		}
		step = sasl_exchange_step(x, true, response, &out);
	}
	if (step == SASL_STEP_CHECK_PASSWORD) {
		size_t user_len = strlen(out.username);

		if (user_len == 0 || user_len > SASL_USERNAME_MAX || out.password_len == 0 ||
		    out.password_len > SASL_PASSWORD_MAX ||
		    strlen(out.password) != out.password_len || out.authzid[0] != '\0')
			abort();
		step = sasl_exchange_password_result(x, is_valid, &out);
		if (step != (is_valid ? SASL_STEP_SUCCESS : SASL_STEP_FAILURE))
			abort();
	} else if (step != SASL_STEP_MALFORMED && step != SASL_STEP_CHALLENGE) {
		abort();
	}
	sasl_exchange_free(x);
	return 0;
}
