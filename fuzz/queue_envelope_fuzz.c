/*
 * Fuzz target for the spool's text formats (src/queue/envelope.c): any bytes
 * given as an ID.env or an ID.state must parse or fail, never crash or read
 * out of bounds. When they parse, the format is canonical: serializing the
 * value must give back exactly the input bytes, and parsing that again the
 * same value. A mismatch aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/envelope.h"

static void check_envelope(struct span input)
{
	struct queue_envelope env, again;
	struct error err;
	char *text;
	size_t len;

	if (queue_envelope_parse(input, &env, &err) < 0) {
		queue_envelope_clear(&env);
		if (err.kind != ERROR_DATA || strncmp(err.message, "line ", 5) != 0)
			abort(); /* every refusal names its line */
		return;
	}
	if (queue_envelope_serialize(&env, &text, &len, &err) < 0)
		abort();
	if (len != input.len || memcmp(text, input.ptr, len) != 0)
		abort();
	if (queue_envelope_parse(span_make(text, len), &again, &err) < 0 ||
	    !queue_envelope_equal(&env, &again))
		abort();
	free(text);
	queue_envelope_clear(&again);
	queue_envelope_clear(&env);
}

static void check_state(struct span input)
{
	struct queue_state state, again;
	struct error err;
	char *text;
	size_t len;

	if (queue_state_parse(input, &state, &err) < 0) {
		queue_state_clear(&state);
		return;
	}
	if (queue_state_serialize(&state, &text, &len, &err) < 0)
		abort();
	if (len != input.len || memcmp(text, input.ptr, len) != 0)
		abort();
	if (queue_state_parse(span_make(text, len), &again, &err) < 0 ||
	    !queue_state_equal(&state, &again))
		abort();
	free(text);
	queue_state_clear(&again);
	queue_state_clear(&state);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct span input = { (const char *) data, size };

	check_envelope(input);
	check_state(input);
	return 0;
}
