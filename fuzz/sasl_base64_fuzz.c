/*
 * Fuzz target for src/sasl/base64.c and sasl_response_decode: any bytes
 * decode or are refused without writing past the buffer (which is exactly
 * cap bytes of heap, so ASan sees one byte over); what decodes encodes back
 * to the same text (the decoder is canonical); what is encoded decodes back
 * to the same bytes. The first octet picks the decode buffer's cap.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl/base64.h"
#include "sasl/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct span text;
	size_t cap, len = 1, encoded_len;
	unsigned char *decoded;
	char *encoded;

	if (size == 0)
		return 0;
	text = span_make((const char *) data + 1, size - 1);
	/* 0..127: small caps that cut inputs short; otherwise room for all. */
	cap = data[0] < 128 ? data[0] : text.len;
	decoded = malloc(cap > 0 ? cap : 1);
	encoded = malloc(SASL_BASE64_ENCODED_LEN(text.len) + 1);
	if (decoded == NULL || encoded == NULL)
		abort();

	if (sasl_base64_decode(text, decoded, cap, &len)) {
		if (len > cap || len != sasl_base64_decoded_len(text))
			abort();
		if (!sasl_base64_encode(decoded, len, encoded, SASL_BASE64_ENCODED_LEN(len) + 1,
					&encoded_len) ||
		    encoded_len != text.len || memcmp(encoded, text.ptr, text.len) != 0)
			abort();
	} else if (len != 0) {
		abort();
	}

	switch (sasl_response_decode(text, decoded, cap, &len)) {
	case SASL_RESPONSE_OK:
		if (len > cap)
			abort();
		break;
	case SASL_RESPONSE_CANCEL:
		if (text.len != 1 || text.ptr[0] != '*' || len != 0)
			abort();
		break;
	case SASL_RESPONSE_BAD_BASE64:
	case SASL_RESPONSE_TOO_LONG:
		if (len != 0)
			abort();
		break;
	}

	/* Any bytes encode and decode back. */
	if (!sasl_base64_encode((const unsigned char *) text.ptr, text.len, encoded,
				SASL_BASE64_ENCODED_LEN(text.len) + 1, &encoded_len) ||
	    encoded_len != SASL_BASE64_ENCODED_LEN(text.len) || strlen(encoded) != encoded_len)
		abort();
	free(decoded);
	decoded = malloc(text.len > 0 ? text.len : 1);
	if (decoded == NULL)
		abort();
	if (!sasl_base64_decode(span_make(encoded, encoded_len), decoded, text.len, &len) ||
	    len != text.len || memcmp(decoded, text.ptr, len) != 0)
		abort();
	free(decoded);
	free(encoded);
	return 0;
}
