/*
 * sniff: recognizing a TLS ClientHello from its first six octets. Reads no
 * more than that and keeps no state.
 */
#include "tls/sniff.h"

#define TLS_CONTENT_HANDSHAKE	   22	 /* RFC 8446 5.1 ContentType */
#define TLS_MAJOR_VERSION	   3	 /* SSL 3.0 (RFC 6101) to TLS 1.3: 0x03XX */
#define TLS_MINOR_VERSION_MAX	   4	 /* 0x0304, TLS 1.3's number */
#define TLS_RECORD_LENGTH_MAX	   16384 /* 2^14: RFC 8446 5.1, RFC 5246 6.2.1 */
#define TLS_HANDSHAKE_CLIENT_HELLO 1	 /* RFC 8446 4 HandshakeType */

enum tls_sniff tls_sniff_client_hello(struct span first_bytes)
{
	const unsigned char *b = (const unsigned char *) first_bytes.ptr;
	size_t len = first_bytes.len;

	if (len >= 1 && b[0] != TLS_CONTENT_HANDSHAKE)
		return TLS_SNIFF_NOT_TLS;
	if (len >= 2 && b[1] != TLS_MAJOR_VERSION)
		return TLS_SNIFF_NOT_TLS;
	if (len >= 3 && b[2] > TLS_MINOR_VERSION_MAX)
		return TLS_SNIFF_NOT_TLS;
	/* The length's high octet alone rules out anything above 2^14. */
	if (len >= 4 && b[3] > TLS_RECORD_LENGTH_MAX >> 8)
		return TLS_SNIFF_NOT_TLS;
	if (len >= 5) {
		unsigned record_len = ((unsigned) b[3] << 8) | b[4];

		/* An empty handshake record is forbidden (RFC 8446 5.1). */
		if (record_len == 0 || record_len > TLS_RECORD_LENGTH_MAX)
			return TLS_SNIFF_NOT_TLS;
	}
	if (len < TLS_SNIFF_BYTES)
		return TLS_SNIFF_NEED_MORE;
	return b[5] == TLS_HANDSHAKE_CLIENT_HELLO ? TLS_SNIFF_TLS : TLS_SNIFF_NOT_TLS;
}
