/*
 * Fuzz target for tls_sniff_client_hello: any bytes give one of the three
 * answers without reading past the span, and the answers of a stream's
 * prefixes agree: NEED_MORE only before the sixth byte, and once TLS or
 * NOT_TLS, every longer prefix gives the same answer.
 */
#include <stdint.h>
#include <stdlib.h>

#include "tls/sniff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum tls_sniff decided = TLS_SNIFF_NEED_MORE;

	for (size_t len = 0; len <= size; len++) {
		enum tls_sniff got = tls_sniff_client_hello(span_make((const char *) data, len));

		if (got != TLS_SNIFF_NEED_MORE && got != TLS_SNIFF_TLS && got != TLS_SNIFF_NOT_TLS)
			abort();
		if (got == TLS_SNIFF_NEED_MORE && len >= TLS_SNIFF_BYTES)
			abort();
		if (decided != TLS_SNIFF_NEED_MORE && got != decided)
			abort();
		if (got == TLS_SNIFF_TLS &&
		    (len < TLS_SNIFF_BYTES || data[0] != 0x16 || data[5] != 1))
			abort();
		decided = got;
		if (len > TLS_SNIFF_BYTES)
			break; /* nothing past the sixth byte is read */
	}
	return 0;
}
