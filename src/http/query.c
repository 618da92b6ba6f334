/*
 * query: query-string and Autodiscover-body parsing (see query.h). Every
 * loop is bounded by the input's length; nothing is allocated.
 */
#include "http/query.h"

#include <stdio.h>
#include <string.h>

#include "http/limits.h"

#define OUTLOOK_SCHEMA \
	"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode s into out (NUL-terminated). is_form: '+' is a space. Refuses bad
 * escapes, control bytes (decoded or not) and what does not fit. */
static bool decode(struct span s, bool is_form, char *out, size_t out_cap)
{
	size_t n = 0;

	if (out_cap == 0)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char) s.ptr[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= s.len)
				return false;
			hi = hex_value(s.ptr[i + 1]);
			lo = hex_value(s.ptr[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			c = (unsigned char) (hi * 16 + lo);
			i += 2;
		} else if (c == '+' && is_form) {
			c = ' ';
		}
		if (c < 0x20 || c == 0x7F)
			return false;
		if (n + 1 >= out_cap)
			return false;
		out[n++] = (char) c;
	}
	out[n] = '\0';
	return true;
}

enum http_query_result http_query_find(struct span query, const char *name, char *out,
				       size_t out_cap)
{
	enum http_query_result result = HTTP_QUERY_ABSENT;
	size_t pairs = 0, start = 0;
	char found[HTTP_VALUE_MAX + 1] = "";

	if (out_cap > 0)
		out[0] = '\0';
	if (query.len > HTTP_QUERY_MAX)
		return HTTP_QUERY_MALFORMED;
	while (start <= query.len) {
		long amp = span_find(query, start, '&');
		size_t end = amp < 0 ? query.len : (size_t) amp;
		struct span pair = span_make(query.ptr + start, end - start);
		struct span key, value;
		char key_text[HTTP_VALUE_MAX + 1], value_text[HTTP_VALUE_MAX + 1];

		start = end + 1;
		if (pair.len == 0) /* "a=1&&b=2", a trailing '&' or an empty query */
			continue;
		if (++pairs > HTTP_QUERY_PARAMS_MAX)
			return HTTP_QUERY_MALFORMED;
		if (!span_split_first(pair, '=', &key, &value)) {
			key = pair;
			value = span_make(pair.ptr + pair.len, 0);
		}
		if (!decode(key, true, key_text, sizeof(key_text)) ||
		    !decode(value, true, value_text, sizeof(value_text)))
			return HTTP_QUERY_MALFORMED;
		if (strcmp(key_text, name) != 0)
			continue;
		/* Two values for one name: which one a client meant is a guess. */
		if (result == HTTP_QUERY_FOUND)
			return HTTP_QUERY_MALFORMED;
		if (strlen(value_text) >= out_cap)
			return HTTP_QUERY_MALFORMED;
		memcpy(found, value_text, strlen(value_text) + 1);
		result = HTTP_QUERY_FOUND;
	}
	/* Only a query that is well formed throughout yields its value. */
	if (result == HTTP_QUERY_FOUND)
		memcpy(out, found, strlen(found) + 1);
	return result;
}

bool http_segment_decode(struct span segment, char *out, size_t out_cap)
{
	if (!decode(segment, false, out, out_cap))
		return false;
	return strchr(out, '/') == NULL;
}

/* The content of the first <tag>...</tag> in body; false when absent. */
static bool element_text(struct span body, const char *tag, struct span *text_out)
{
	char open[64], close[64];
	const char *p, *q;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	p = memmem(body.ptr, body.len, open, strlen(open));
	if (p == NULL)
		return false;
	p += strlen(open);
	q = memmem(p, body.len - (size_t) (p - body.ptr), close, strlen(close));
	if (q == NULL)
		return false;
	while (p < q && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	while (q > p && (q[-1] == ' ' || q[-1] == '\t' || q[-1] == '\r' || q[-1] == '\n'))
		q--;
	*text_out = span_make(p, (size_t) (q - p));
	return true;
}

bool http_autodiscover_parse(struct span body, char *out, size_t out_cap,
			     bool *is_outlook_schema_out)
{
	struct span text, schema;

	*is_outlook_schema_out = true;
	if (out_cap > 0)
		out[0] = '\0';
	if (body.len > HTTP_BODY_MAX || body.ptr == NULL)
		return false;
	if (element_text(body, "AcceptableResponseSchema", &schema))
		*is_outlook_schema_out = span_eq_cstr(schema, OUTLOOK_SCHEMA);
	if (!element_text(body, "EMailAddress", &text) || text.len == 0 ||
	    span_has_byte(text, '<') || span_has_byte(text, '&') || span_has_byte(text, 0))
		return false;
	return span_copy_cstr(text, out, out_cap);
}
