/*
 * Fuzz target for smtp_path_parse: any bytes must parse or fail without
 * reading out of bounds, and what parses must hold its invariants. The first
 * octet's low bit chooses allow_utf8; the rest is the path text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/parse.h"

static bool has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char) *s >= 0x80)
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_path path, again;
	char bracketed[SMTP_ADDRESS_MAX + 3];
	size_t consumed = 0, consumed_again = 0;
	bool allow_utf8;
	struct span text;

	if (size == 0)
		return 0;
	allow_utf8 = data[0] & 1;
	text = span_make((const char *) data + 1, size - 1);
	if (!smtp_path_parse(text, allow_utf8, &path, &consumed)) {
		if (path.address[0] != '\0' || path.is_null || path.is_postmaster)
			abort(); /* a failure leaves a zeroed path */
		return 0;
	}
	if (consumed == 0 || consumed > text.len)
		abort();
	if (strlen(path.local) > SMTP_LOCAL_PART_MAX || strlen(path.domain) > SMTP_DOMAIN_MAX ||
	    strlen(path.local_unquoted) > strlen(path.local))
		abort();
	if (!allow_utf8 && (path.has_utf8 || has_8bit(path.address)))
		abort();
	if (path.is_null) {
		if (consumed != 2 || path.address[0] != '\0' || path.is_postmaster)
			abort();
		return 0;
	}
	if (path.is_postmaster) {
		if (path.domain[0] != '\0' || strcmp(path.address, path.local) != 0)
			abort();
	} else {
		struct span domain = span_from_cstr(path.domain);

		if (!smtp_domain_is_valid(domain, allow_utf8) &&
		    !smtp_address_literal_is_valid(domain))
			abort();
	}
	/* The address as given parses again to itself (the source route, if
	 * any, was dropped). */
	snprintf(bracketed, sizeof(bracketed), "<%s>", path.address);
	if (!smtp_path_parse(span_from_cstr(bracketed), allow_utf8, &again, &consumed_again) ||
	    consumed_again != strlen(bracketed) || strcmp(again.address, path.address) != 0 ||
	    strcmp(again.local_unquoted, path.local_unquoted) != 0 ||
	    again.is_postmaster != path.is_postmaster)
		abort();
	return 0;
}
