/*
 * Fuzz target for the SMTP client's reply reader (src/delivery/reply.c): the
 * input is split at LF into lines fed one by one; every reply must stay
 * within its bounds, and a complete one has a code of 200..599 and
 * NUL-terminated text; the EHLO parser reads any complete reply.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "delivery/reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct delivery_reply reply;
	size_t pos = 0;

	delivery_reply_init(&reply);
	while (pos < size) {
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		size_t end = nl == NULL ? size : (size_t) (nl - data);
		enum delivery_reply_status status = delivery_reply_feed(
			&reply, span_make((const char *) data + pos, end - pos));

		assert(reply.text_len < sizeof(reply.text));
		assert(reply.line_count <= DELIVERY_REPLY_LINES_MAX);
		if (status == DELIVERY_REPLY_DONE) {
			struct delivery_ehlo ehlo;
			char summary[256];

			assert(reply.code >= 200 && reply.code <= 599);
			assert(strlen(reply.text) == reply.text_len);
			delivery_ehlo_parse(&reply, &ehlo);
			delivery_reply_summary(&reply, summary, sizeof(summary));
			delivery_reply_init(&reply);
		} else if (status == DELIVERY_REPLY_BAD) {
			delivery_reply_init(&reply);
		}
		pos = end + 1;
	}
	return 0;
}
