/*
 * Fuzz target for src/smtp/header.c: any bytes as a header line and as an
 * address-list must parse or fail, never crash or read out of bounds. Every
 * address reported is non-empty, trimmed, within SMTP_HEADER_ITEM_MAX, and
 * holds no angle bracket (commas may stay inside one: "<@a,@b:c@d>"); a
 * field name is a
 * non-empty prefix of the line followed by ':'. A mismatch aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/header.h"

static int check_address(void *ctx, struct span address)
{
	(void) ctx;
	if (address.len == 0 || address.len > SMTP_HEADER_ITEM_MAX)
		abort();
	if (address.ptr[0] == ' ' || address.ptr[0] == '\t' ||
	    address.ptr[address.len - 1] == ' ' || address.ptr[address.len - 1] == '\t')
		abort();
	if (memchr(address.ptr, '<', address.len) != NULL ||
	    memchr(address.ptr, '>', address.len) != NULL)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct span input = span_make((const char *) data, size), name;

	if (smtp_header_field_name(input, &name) &&
	    (name.ptr != input.ptr || name.len == 0 || name.len >= input.len ||
	     input.ptr[name.len] != ':'))
		abort();
	(void) smtp_header_address_list(input, check_address, NULL);
	return 0;
}
