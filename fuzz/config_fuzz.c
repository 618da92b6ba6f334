/*
 * Fuzz target for the configuration syntax and key table: any bytes must load
 * or fail with a FILE:LINE message, never crash or read out of bounds.
 * Includes are not followed (config_load_text is given no usable directory
 * and an include of a missing file is an ordinary error).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

static int count_line(void *ctx, const struct config_line *line, struct error *err)
{
	(void) err;
	(void) line;
	(*(unsigned *) ctx)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config config;
	struct error err;
	unsigned lines = 0;
	struct span text = { (const char *) data, size };

	(void) config_text_parse("fuzz.conf", text, count_line, &lines, &err);
	if (config_load_text("fuzz.conf", "/nonexistent-postgate-fuzz", text, &config, &err) < 0 &&
	    strncmp(err.message, "fuzz.conf", 9) != 0 &&
	    strncmp(err.message, "/nonexistent-postgate-fuzz", 26) != 0)
		abort(); /* every error must say where it is */
	return 0;
}
