/*
 * Fuzz target for address and domain normalization (src/store/address.c):
 * any bytes must normalize or fail with an ERROR_DATA message, never crash or
 * read past the span. What normalizes must satisfy the documented
 * properties, checked here so that the fuzzer finds violations too: the
 * result fits its limits, normalizing it again gives it back unchanged, and
 * its domain part is what the domain function makes of the input's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/address.h"

static void check_domain(struct span input)
{
	char out[ADDRESS_DOMAIN_MAX + 1], again[ADDRESS_DOMAIN_MAX + 1];
	struct error err;

	if (store_address_domain_normalize(input, out, &err) < 0) {
		if (err.kind != ERROR_DATA || err.message[0] == '\0' || out[0] != '\0')
			abort();
		return;
	}
	if (strlen(out) == 0 || strlen(out) > ADDRESS_DOMAIN_MAX)
		abort();
	if (store_address_domain_normalize(span_from_cstr(out), again, &err) < 0 ||
	    strcmp(out, again) != 0)
		abort();
}

static void check_address(struct span input)
{
	char out[ADDRESS_MAX + 1], again[ADDRESS_MAX + 1], domain[ADDRESS_DOMAIN_MAX + 1];
	struct span local, input_domain;
	struct error err;

	if (store_address_normalize(input, out, &err) < 0) {
		if (err.kind != ERROR_DATA || err.message[0] == '\0' || out[0] != '\0')
			abort();
		return;
	}
	if (strlen(out) > ADDRESS_TEXT_MAX)
		abort();
	if (store_address_normalize(span_from_cstr(out), again, &err) < 0 ||
	    strcmp(out, again) != 0)
		abort();
	/* The local part is kept as given; the domain is the domain function's. */
	if (!span_split_last(input, '@', &local, &input_domain) ||
	    store_address_domain_normalize(input_domain, domain, &err) < 0 ||
	    !span_eq_cstr(store_address_domain(out), domain) ||
	    strncmp(out, local.ptr, local.len) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct span input = { (const char *) data, size };

	check_address(input);
	check_domain(input);
	return 0;
}
