/*
 * Fuzz target for the CRAM-MD5 mechanism (src/sasl/cram_md5.c). The input
 * is a response, optionally NUL and a stored secret to verify it with; the
 * challenge is RFC 2195's, forced so runs repeat. First octet: bit 0 uses
 * the secret from the input (else the RFC user's secret), bit 1 sends an
 * initial response (always malformed). Also checks that HMAC-MD5 through a
 * {CRAM-MD5} context equals OpenSSL's HMAC-MD5 with the response as key.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl/internal.h"
#include "sasl/sasl.h"

#define RFC2195_CHALLENGE "<1896.697170952@postoffice.reston.mci.net>"
#define TIM_SECRET	  "{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b"

static const unsigned char mock_key[SASL_MOCK_KEY_LEN];

static void check_hmac(struct span key)
{
	unsigned char context[SASL_CRAM_MD5_CONTEXT_LEN], ours[16], theirs[16];
	unsigned int len = 0;

	sasl_cram_md5_context_make((const unsigned char *) key.ptr, key.len, context);
	sasl_cram_md5_context_hmac(context, (const unsigned char *) RFC2195_CHALLENGE,
				   sizeof(RFC2195_CHALLENGE) - 1, ours);
	if (HMAC(EVP_md5(), key.ptr, (int) key.len, (const unsigned char *) RFC2195_CHALLENGE,
		 sizeof(RFC2195_CHALLENGE) - 1, theirs, &len) == NULL ||
	    memcmp(ours, theirs, 16) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sasl_server_info info = { .hostname = "postoffice.reston.mci.net",
					 .mock_key = mock_key };
	struct sasl_exchange *x;
	struct sasl_output out;
	struct span input, response, secret_part;
	char secret[256];
	enum sasl_step step;

	if (size == 0 || size > 4096)
		return 0;
	input = span_make((const char *) data + 1, size - 1);
	if (!span_split_first(input, '\0', &response, &secret_part)) {
		response = input;
		secret_part = span_make("", 0);
	}
	check_hmac(response);
	if ((x = sasl_exchange_new(SASL_MECHANISM_CRAM_MD5, &info, NULL)) == NULL ||
	    sasl_cram_md5_challenge_force(x, RFC2195_CHALLENGE) != 0)
		abort();
	if (data[0] & 2) {
		if (sasl_exchange_step(x, true, response, &out) != SASL_STEP_MALFORMED)
			abort();
		sasl_exchange_free(x);
		return 0;
	}
	if (sasl_exchange_step(x, false, span_make(NULL, 0), &out) != SASL_STEP_CHALLENGE ||
	    out.challenge_len != sizeof(RFC2195_CHALLENGE) - 1)
		abort();
	step = sasl_exchange_step(x, true, response, &out);
	if (step == SASL_STEP_NEED_SECRET) {
		size_t user_len = strlen(out.username);
		const char *use = TIM_SECRET;

		/* "user SP 32 hex digits". */
		if (user_len == 0 || user_len > SASL_USERNAME_MAX ||
		    response.len != user_len + 33 ||
		    memcmp(response.ptr, out.username, user_len) != 0)
			abort();
		if (data[0] & 1)
			use = span_copy_cstr(secret_part, secret, sizeof(secret)) ? secret : NULL;
		step = sasl_exchange_secret(x, use, &out);
		if (step != SASL_STEP_SUCCESS && step != SASL_STEP_FAILURE)
			abort();
		if (step == SASL_STEP_SUCCESS && strlen(out.username) != user_len)
			abort();
	} else if (step != SASL_STEP_MALFORMED) {
		abort();
	}
	sasl_exchange_free(x);
	return 0;
}
