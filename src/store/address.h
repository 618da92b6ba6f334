/*
 * address: the one place where a mail address or domain typed by an
 * administrator or sent by a client becomes the form we store and compare.
 *
 * Rules (docs/accounts.md): the domain is lower-cased and stored as IDNA
 * A-labels (U-labels are accepted and converted); the local part is kept as
 * given (UTF-8 allowed, RFC 6531) and matched case-insensitively for ASCII
 * letters. Pure functions: no I/O, no globals; safe from any thread.
 */
#ifndef POSTGATE_STORE_ADDRESS_H
#define POSTGATE_STORE_ADDRESS_H

#include "core/error.h"
#include "core/span.h"

#define ADDRESS_LOCAL_MAX  64  /* RFC 5321 4.5.3.1.1 */
#define ADDRESS_DOMAIN_MAX 253 /* RFC 1035 2.3.4: 255 octets on the wire, 253 as text */
#define ADDRESS_LABEL_MAX  63  /* RFC 1035 2.3.4 */
#define ADDRESS_MAX	   (ADDRESS_LOCAL_MAX + 1 + ADDRESS_DOMAIN_MAX) /* buffer sizes */
/* The longest address accepted: RFC 5321 4.5.3.1.3 limits a path to 256
 * octets including "<" and ">". */
#define ADDRESS_TEXT_MAX 254

/* "Bücher.Example" -> "xn--bcher-kva.example". out must hold
 * ADDRESS_DOMAIN_MAX + 1 bytes and is "" after a failure. 0, or -1 with
 * ERROR_DATA and a message naming what is wrong. Idempotent: a normalized
 * domain normalizes to itself. */
int store_address_domain_normalize(struct span input, char *out, struct error *err);

/* "Local@Domain" -> "Local@domain" (A-labels). out must hold ADDRESS_MAX + 1
 * bytes and is "" after a failure; the result is at most ADDRESS_TEXT_MAX
 * octets. 0, or -1 with ERROR_DATA and a message naming what is wrong
 * ("local part is longer than 64 octets"). Idempotent. */
int store_address_normalize(struct span input, char *out, struct error *err);

/* The domain part of a normalized address (after the last '@'); an empty
 * span when there is no '@'. Borrows from normalized. */
struct span store_address_domain(const char *normalized);

#endif
