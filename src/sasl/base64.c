/*
 * base64: strict RFC 4648 4 encoding and decoding; see base64.h. The
 * decoder refuses before it writes: it checks the length and the padding
 * first, so a refused input leaves at most the octets of its valid prefix,
 * which it wipes (a response may hold a password).
 */
#include "sasl/base64.h"

#include <sodium.h>
#include <stdint.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of an alphabet character, or -1 (padding included). */
static int sextet_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

bool sasl_base64_encode(const unsigned char *in, size_t len, char *out, size_t out_cap,
			size_t *len_out)
{
	size_t need, o = 0, i = 0;

	if (len_out != NULL)
		*len_out = 0;
	/* SASL_BASE64_ENCODED_LEN overflows only for len near SIZE_MAX. */
	if (len > (SIZE_MAX - 1) / 4 * 3 - 2 ||
	    out_cap < (need = SASL_BASE64_ENCODED_LEN(len)) + 1) {
		if (out_cap > 0)
			out[0] = '\0';
		return false;
	}
	for (; len - i >= 3; i += 3) {
		uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];

		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = alphabet[v >> 6 & 63];
		out[o++] = alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t) in[i] << 16;

		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8;

		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = alphabet[v >> 6 & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
	if (len_out != NULL)
		*len_out = need;
	return true;
}

static bool refuse(unsigned char *out, size_t written, size_t *len_out)
{
	if (written > 0)
		sodium_memzero(out, written);
	*len_out = 0;
	return false;
}

size_t sasl_base64_decoded_len(struct span in)
{
	size_t pad = 0;

	if (in.len >= 1 && in.ptr[in.len - 1] == '=')
		pad = in.len >= 2 && in.ptr[in.len - 2] == '=' ? 2 : 1;
	/* Rounded up: an upper bound for input that is not whole quanta. */
	return (in.len + 3) / 4 * 3 - pad;
}

bool sasl_base64_decode(struct span in, unsigned char *out, size_t out_cap, size_t *len_out)
{
	const unsigned char *p = (const unsigned char *) in.ptr;
	size_t pad = 0, need, o = 0;

	*len_out = 0;
	if (in.len == 0)
		return true;
	/* RFC 4648 3.2: padding is required, so whole quanta only. */
	if (in.len % 4 != 0)
		return false;
	if (p[in.len - 1] == '=')
		pad = p[in.len - 2] == '=' ? 2 : 1;
	need = in.len / 4 * 3 - pad;
	if (need > out_cap)
		return false;
	for (size_t i = 0; i < in.len; i += 4) {
		bool is_last = i + 4 == in.len;
		size_t real = is_last ? 4 - pad : 4; /* alphabet characters in this quantum */
		uint32_t v = 0;

		for (size_t k = 0; k < 4; k++) {
			int s = k < real ? sextet_value(p[i + k]) : (p[i + k] == '=' ? 0 : -1);

			if (s < 0)
				return refuse(out, o, len_out);
			v = v << 6 | (uint32_t) s;
		}
		/* RFC 4648 3.5: pad bits are zero in a canonical encoding;
		 * refusing others keeps decode and encode inverse. */
		if ((real == 2 && (v & 0xffff) != 0) || (real == 3 && (v & 0xff) != 0))
			return refuse(out, o, len_out);
		out[o++] = (unsigned char) (v >> 16);
		if (real >= 3)
			out[o++] = (unsigned char) (v >> 8);
		if (real == 4)
			out[o++] = (unsigned char) v;
	}
	*len_out = o;
	return true;
}
