/*
 * id: time-ordered short identifiers. Pure arithmetic except id_clock_ms();
 * never allocates.
 */
#include "core/id.h"

#include <time.h>

#define ID_VALUE_MASK ((UINT64_C(1) << ID_VALUE_BITS) - 1)

/* Crockford's base32, lower case. */
static const char id_alphabet[32] = "0123456789abcdefghjkmnpqrstvwxyz";

void id_generator_init(struct id_generator *gen)
{
	gen->last = 0;
}

const char *id_generator_next(struct id_generator *gen, uint64_t now_ms, char out[ID_CAP])
{
	uint64_t since_epoch = now_ms > ID_EPOCH_MS ? now_ms - ID_EPOCH_MS : 0;
	uint64_t value = (since_epoch << ID_COUNTER_BITS) & ID_VALUE_MASK;

	/* A clock that steps back, or more than 512 ids in one millisecond, must
	 * not repeat an id: carry on counting from the last one. */
	if (value <= gen->last)
		value = (gen->last + 1) & ID_VALUE_MASK;
	gen->last = value;
	id_format(value, out);
	return out;
}

void id_format(uint64_t value, char out[ID_CAP])
{
	for (int i = ID_LEN - 1; i >= 0; i--) {
		out[i] = id_alphabet[value & 31];
		value >>= 5;
	}
	out[ID_LEN] = '\0';
}

uint64_t id_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}
