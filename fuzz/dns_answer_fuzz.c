/*
 * Fuzz target for the DNS answers handed to the outbound resolver
 * (src/delivery/dns.c): the input is a raw answer packet as c-ares passes it
 * to our MX callback. delivery_mx_parse (ares_parse_mx_reply, the null MX
 * rule of RFC 7505, delivery_mx_keep) must keep at most DELIVERY_MX_MAX
 * usable, NUL-terminated names, and delivery_mx_order must sort them by
 * preference. The same bytes go through the A and AAAA answer parsers that
 * c-ares applies to the address answers of each exchange.
 */
#include <ares.h>
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "delivery/dns.h"

static uint32_t counter_random(void *ctx)
{
	uint32_t *r = ctx;

	return (*r)++ * 2654435761u;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct delivery_mx mx[DELIVERY_MX_MAX];
	struct ares_addrttl a[DELIVERY_HOST_ADDRESS_MAX];
	struct ares_addr6ttl aaaa[DELIVERY_HOST_ADDRESS_MAX];
	struct hostent *host = NULL;
	size_t count = 99;
	int naddr;
	int alen = size > 65535 ? 65535 : (int) size; /* a DNS message is at most 64 KiB */
	enum delivery_mx_answer answer = delivery_mx_parse(data, alen, mx, &count);

	assert(count <= DELIVERY_MX_MAX);
	assert((answer == DELIVERY_MX_ANSWER_OK) == (count > 0));
	for (size_t i = 0; i < count; i++) {
		size_t len = strnlen(mx[i].name, sizeof(mx[i].name));

		assert(len > 0 && len < sizeof(mx[i].name));
		assert(strcmp(mx[i].name, ".") != 0);
	}
	if (count > 0) {
		uint32_t r = (uint32_t) size;

		delivery_mx_order(mx, count, counter_random, &r);
		for (size_t i = 1; i < count; i++)
			assert(mx[i - 1].preference <= mx[i].preference);
	}

	naddr = DELIVERY_HOST_ADDRESS_MAX;
	if (ares_parse_a_reply(data, alen, &host, a, &naddr) == ARES_SUCCESS)
		assert(naddr >= 0 && naddr <= DELIVERY_HOST_ADDRESS_MAX);
	if (host != NULL)
		ares_free_hostent(host);
	host = NULL;
	naddr = DELIVERY_HOST_ADDRESS_MAX;
	if (ares_parse_aaaa_reply(data, alen, &host, aaaa, &naddr) == ARES_SUCCESS)
		assert(naddr >= 0 && naddr <= DELIVERY_HOST_ADDRESS_MAX);
	if (host != NULL)
		ares_free_hostent(host);
	return 0;
}
