/*
 * Fuzz target for SCRAM-SHA-256(-PLUS) (src/sasl/scram.c): the input is
 * client-first, NUL, client-final, optionally NUL and the answer to
 * server-final. The server nonce is RFC 7677's, forced so runs repeat (the
 * seed corpus replays the RFC's exchange and reaches SUCCESS). First octet:
 * bits 0-1 the stored secret (RFC 7677's, none, a malformed one, or
 * RFC 7677's with the name checked), bit 2 -PLUS, bit 3 channel binding on
 * the connection. Every step must keep the contract: NEED_SECRET only with
 * a valid identity, challenges within SASL_CHALLENGE_MAX, SUCCESS only
 * after server-final and only against a real secret.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl/internal.h"
#include "sasl/sasl.h"

#define RFC7677_SECRET                                  \
	"{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==," \
	"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=," \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static const unsigned char mock_key[SASL_MOCK_KEY_LEN] = "fuzzing mock key, 32 octets long";
static const unsigned char binding[SASL_CHANNEL_BINDING_LEN] = "tls-exporter data of 32 octets!";

static struct span next_part(struct span *rest)
{
	struct span part;

	if (!span_split_first(*rest, '\0', &part, rest)) {
		part = *rest;
		*rest = span_make(NULL, 0);
	}
	return part;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const secrets[] = { RFC7677_SECRET, NULL, "{SCRAM-SHA-256}1,2,3,4",
					       RFC7677_SECRET };
	struct sasl_server_info info = { .mock_key = mock_key };
	enum sasl_mechanism mechanism;
	struct sasl_exchange *x;
	struct sasl_output out;
	struct span rest, first, final, last;
	const char *secret;
	enum sasl_step step;

	if (size == 0 || size > 3 * SASL_MESSAGE_MAX)
		return 0;
	secret = secrets[data[0] & 3];
	mechanism = data[0] & 4 ? SASL_MECHANISM_SCRAM_SHA_256_PLUS : SASL_MECHANISM_SCRAM_SHA_256;
	if (data[0] & 12) {
		info.channel_binding = binding;
		info.channel_binding_len = sizeof(binding);
	}
	rest = span_make((const char *) data + 1, size - 1);
	first = next_part(&rest);
	final = next_part(&rest);
	last = next_part(&rest);

	if ((x = sasl_exchange_new(mechanism, &info, NULL)) == NULL ||
	    sasl_scram_server_nonce_force(x, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0") != 0)
		abort();
	step = sasl_exchange_step(x, true, first, &out);
	if (step != SASL_STEP_NEED_SECRET) {
		if (step != SASL_STEP_MALFORMED && step != SASL_STEP_FAILURE)
			abort();
		sasl_exchange_free(x);
		return 0;
	}
	if (strlen(out.username) == 0 || strlen(out.username) > SASL_USERNAME_MAX)
		abort();
	if ((data[0] & 3) == 3 && strcmp(out.username, "user") != 0)
		secret = NULL;
	step = sasl_exchange_secret(x, secret, &out);
	if (step != SASL_STEP_CHALLENGE || out.challenge_len > SASL_CHALLENGE_MAX ||
	    out.challenge_len < 2 || memcmp(out.challenge, "r=", 2) != 0)
		abort();
	step = sasl_exchange_step(x, true, final, &out);
	if (step == SASL_STEP_CHALLENGE) {
		/* Only a real secret's proof gets this far. */
		if (secret == NULL || secrets[2] == secret || out.challenge_len != 46 ||
		    memcmp(out.challenge, "v=", 2) != 0)
			abort();
		step = sasl_exchange_step(x, true, last, &out);
		if (step != (last.len == 0 ? SASL_STEP_SUCCESS : SASL_STEP_MALFORMED))
			abort();
	} else if (step != SASL_STEP_MALFORMED && step != SASL_STEP_FAILURE) {
		abort();
	}
	sasl_exchange_free(x);
	return 0;
}
