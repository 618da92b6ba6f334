/*
 * id: short identifiers for sessions (sid=) and, later, messages (qid=).
 *
 * An id is 10 characters of Crockford's base32 alphabet in lower case
 * (0-9 a-h j k m n p-t v-z: no i, l, o, u, so it survives being read aloud or
 * retyped from a log). It encodes a 50-bit number: the milliseconds since
 * 2024-01-01T00:00:00Z shifted left by 9 bits, or the previous id plus one
 * when that would not be larger. So ids from one generator strictly increase
 * (they sort as text in the order they were made), up to 512 per millisecond
 * are made without running ahead of the clock, and a restarted process does
 * not repeat an earlier one unless the clock stepped back or the old process
 * made more than 512 ids per millisecond on average. The count wraps in 2093.
 *
 * Nothing here reads the clock except id_clock_ms(); tests pass their own
 * time. A generator is used by one thread.
 */
#ifndef POSTGATE_CORE_ID_H
#define POSTGATE_CORE_ID_H

#include <stdint.h>

#define ID_LEN		10
#define ID_CAP		(ID_LEN + 1)
#define ID_EPOCH_MS	1704067200000ULL /* 2024-01-01T00:00:00Z in Unix milliseconds */
#define ID_COUNTER_BITS 9
#define ID_VALUE_BITS	(ID_LEN * 5)

struct id_generator {
	uint64_t last; /* the value of the id made last; 0 before the first */
};

void id_generator_init(struct id_generator *gen);

/*
 * Make the next id for Unix time now_ms and write it, NUL-terminated, to out.
 * Returns out.
 */
const char *id_generator_next(struct id_generator *gen, uint64_t now_ms, char out[ID_CAP]);

/* The 10 characters for a 50-bit value (higher bits are ignored). */
void id_format(uint64_t value, char out[ID_CAP]);

/* Unix time in milliseconds from the real-time clock. */
uint64_t id_clock_ms(void);

#endif
