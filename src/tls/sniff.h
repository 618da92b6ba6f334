/*
 * sniff: is the first thing a client sent the start of a TLS handshake?
 * A listener that greets in plaintext can use this to notice a client that
 * expected implicit TLS (RFC 8314 3.3) and switch to a handshake instead of
 * answering its ClientHello with an SMTP greeting. Pure: no I/O, no state.
 */
#ifndef POSTGATE_TLS_SNIFF_H
#define POSTGATE_TLS_SNIFF_H

#include "core/span.h"

/* A record header (5 octets, RFC 8446 5.1) and the handshake type. */
#define TLS_SNIFF_BYTES 6

enum tls_sniff {
	TLS_SNIFF_NEED_MORE, /* fewer than TLS_SNIFF_BYTES, all consistent so far */
	TLS_SNIFF_TLS,	     /* a TLS ClientHello starts here */
	TLS_SNIFF_NOT_TLS,   /* anything else: SMTP, POP3, HTTP, noise */
};

/*
 * TLS_SNIFF_TLS when first_bytes start with a TLS record header of content
 * type handshake (22), legacy_record_version 3.0 to 3.4 (0x0300-0x0304:
 * SSL 3.0 to TLS 1.3, whose ClientHello says 3.1 or 3.3), a length of 1 to
 * 2^14 octets (RFC 8446 5.1, RFC 5246 6.2.1), and a handshake message of type
 * client_hello (1). Only the first TLS_SNIFF_BYTES octets are read; more may
 * follow. The SSL 2.0-format ClientHello of pre-2005 clients is NOT_TLS: no
 * cipher suite they offer exists here.
 */
enum tls_sniff tls_sniff_client_hello(struct span first_bytes);

#endif
