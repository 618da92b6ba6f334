/*
 * header: the two pieces of RFC 5322 a mail submission agent needs to read
 * in a message's header section: whether a line starts a header field (and
 * its name), and the addresses of an address-list (To:, Cc:, Bcc:, and the
 * recipients sendmail is given). `postgate sendmail -t` uses them.
 *
 * Pure: no I/O, no allocation, no globals; the fuzzer calls them directly.
 */
#ifndef POSTGATE_SMTP_HEADER_H
#define POSTGATE_SMTP_HEADER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/span.h"

/* Octets of one address-list item kept while parsing (display name and
 * comments are not kept); a longer item is an error. */
#define SMTP_HEADER_ITEM_MAX 1024

/* "Name:" at the start of line: field-name = 1*printable ASCII but ":"
 * (RFC 5322 3.6.8). Sets *name_out (borrowed from line). */
bool smtp_header_field_name(struct span line, struct span *name_out);

/* Called for each address found; return -1 to stop (the parse then returns
 * -1). address is the addr-spec, trimmed, never empty, without angle
 * brackets (a source route inside them keeps its commas); it borrows a
 * buffer valid only during the call. */
typedef int smtp_header_address_fn(void *ctx, struct span address);

/*
 * The addr-specs of an address-list (RFC 5322 3.4): items separated by
 * commas, each "addr-spec" or "display-name <addr-spec>", with quoted
 * strings, comments (nested, RFC 5322 3.2.2) and groups ("team: a@b, c@d;").
 * Commas inside quotes, comments and angle brackets do not separate; an
 * empty item is skipped. The addresses themselves are not checked here.
 * Returns 0, or -1 when each returned -1 or an item is longer than
 * SMTP_HEADER_ITEM_MAX.
 */
int smtp_header_address_list(struct span value, smtp_header_address_fn *each, void *ctx);

#endif
