/*
 * base64: strict RFC 4648 4 base64 (standard alphabet, "=" padding), the
 * encoding of every SASL challenge and response on the wire (RFC 4954 4,
 * RFC 5034 4) and of SCRAM's salt, nonce and proofs (RFC 5802 5.1). The
 * decoder accepts exactly what a conforming encoder makes (RFC 4648 3.1,
 * 3.3, 3.5): no white space, no line breaks, no characters outside the
 * alphabet, padding required, pad bits zero. So decode and encode are
 * inverse on everything decode accepts. Works in place in the caller's
 * buffers: no allocation, constant memory.
 */
#ifndef POSTGATE_SASL_BASE64_H
#define POSTGATE_SASL_BASE64_H

#include <stdbool.h>
#include <stddef.h>

#include "core/span.h"

/* Octets of the encoding of len octets, without the NUL. */
#define SASL_BASE64_ENCODED_LEN(len) (((len) + 2) / 3 * 4)

/*
 * Encode len octets into out and NUL-terminate it. false (out "" when
 * out_cap > 0) when out_cap < SASL_BASE64_ENCODED_LEN(len) + 1. len_out,
 * when not NULL, gets the encoded length.
 */
bool sasl_base64_encode(const unsigned char *in, size_t len, char *out, size_t out_cap,
			size_t *len_out);

/* What in decodes to if it is well-formed: three octets per four
 * characters (rounded up), less one per trailing "=" (at most two). */
size_t sasl_base64_decoded_len(struct span in);

/*
 * Decode strict base64. false for anything not accepted (see above) or
 * when the decoded octets would not fit in out_cap; out is then wiped and
 * *len_out is 0. Never writes past out_cap. An empty input decodes to
 * zero octets.
 */
bool sasl_base64_decode(struct span in, unsigned char *out, size_t out_cap, size_t *len_out);

#endif
