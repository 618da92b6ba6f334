/*
 * http_query_fuzz: the HTTP listener's parsers of client input — the query
 * string (http_query_find), a path segment (http_segment_decode) and the
 * Autodiscover request body (http_autodiscover_parse) — on arbitrary bytes.
 * Checks what they promise: a NUL-terminated result within its buffer, and
 * no control byte in a found value.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "http/limits.h"
#include "http/query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct span input = { (const char *) data, size };
	char value[HTTP_VALUE_MAX + 1];
	bool is_outlook;

	if (http_query_find(input, "emailaddress", value, sizeof(value)) == HTTP_QUERY_FOUND) {
		assert(strlen(value) < sizeof(value));
		for (const char *p = value; *p != '\0'; p++)
			assert((unsigned char) *p >= 0x20 && *p != 0x7F);
	}
	(void) http_query_find(input, "email", value, 8);
	if (http_segment_decode(input, value, sizeof(value)))
		assert(strchr(value, '/') == NULL);
	if (http_autodiscover_parse(input, value, sizeof(value), &is_outlook))
		assert(strlen(value) > 0 && strchr(value, '<') == NULL);
	return 0;
}
