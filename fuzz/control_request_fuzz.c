/*
 * Fuzz target for the control socket's line protocol (src/queue/control.c):
 * any bytes as a request line or a reply line must parse or fail, never
 * crash or read out of bounds. A request that parses formats back to the
 * same bytes (without a final CR) and parses again to the same request; a
 * refusal is always ERROR_USAGE. A reply written for any text parses back as
 * ok with printable text only. A mismatch aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/control.h"

static void check_request(struct span input)
{
	struct queue_control_request request, again;
	char line[QUEUE_CONTROL_REQUEST_MAX + 1];
	struct error err;
	size_t len;

	if (queue_control_request_parse(input, &request, &err) < 0) {
		if (err.kind != ERROR_USAGE)
			abort();
		return;
	}
	len = queue_control_request_format(&request, line, sizeof(line));
	if (input.len > 0 && input.ptr[input.len - 1] == '\r')
		input.len--;
	if (len != input.len + 1 || memcmp(line, input.ptr, input.len) != 0 ||
	    line[len - 1] != '\n')
		abort();
	if (queue_control_request_parse(span_make(line, len - 1), &again, &err) < 0 ||
	    again.verb != request.verb || again.has_id != request.has_id ||
	    strcmp(again.id, request.id) != 0 || strcmp(again.address, request.address) != 0)
		abort();
}

static void check_reply(struct span input)
{
	char text[QUEUE_CONTROL_REPLY_MAX + 1], line[QUEUE_CONTROL_REPLY_MAX + 1];
	char copy[QUEUE_CONTROL_REPLY_MAX + 1];
	struct error err;
	size_t len, n = input.len < QUEUE_CONTROL_REPLY_MAX ? input.len : QUEUE_CONTROL_REPLY_MAX;

	(void) queue_control_reply_parse(input, text, sizeof(text), &err);
	/* Whatever text the daemon wants to send comes back as one clean line. */
	memcpy(copy, input.ptr, n);
	copy[n] = '\0';
	len = queue_control_reply_format(NULL, copy, line, sizeof(line));
	if (len == 0 || len > QUEUE_CONTROL_REPLY_MAX || line[len - 1] != '\n')
		abort();
	for (size_t i = 0; i + 1 < len; i++)
		if ((unsigned char) line[i] < 0x20 || (unsigned char) line[i] > 0x7E)
			abort();
	if (queue_control_reply_parse(span_make(line, len - 1), text, sizeof(text), &err) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct span input = span_make((const char *) data, size);

	check_request(input);
	check_reply(input);
	return 0;
}
