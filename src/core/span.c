/*
 * span: comparisons, splitting and number parsing over borrowed bytes. Every
 * function is pure and bounds-checked; none allocates or reads past len.
 */
#include "core/span.h"

#include <string.h>

static unsigned char ascii_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char) (c + 32) : c;
}

struct span span_from_cstr(const char *s)
{
	return (struct span){ s, s ? strlen(s) : 0 };
}

struct span span_make(const char *ptr, size_t len)
{
	return (struct span){ ptr, len };
}

bool span_eq(struct span a, struct span b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

bool span_eq_cstr(struct span a, const char *s)
{
	return span_eq(a, span_from_cstr(s));
}

bool span_eq_nocase(struct span a, struct span b)
{
	if (a.len != b.len)
		return false;
	for (size_t i = 0; i < a.len; i++)
		if (ascii_lower((unsigned char) a.ptr[i]) != ascii_lower((unsigned char) b.ptr[i]))
			return false;
	return true;
}

bool span_eq_cstr_nocase(struct span a, const char *s)
{
	return span_eq_nocase(a, span_from_cstr(s));
}

bool span_starts_with_nocase(struct span a, const char *prefix)
{
	struct span p = span_from_cstr(prefix);

	return a.len >= p.len && span_eq_nocase(span_make(a.ptr, p.len), p);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

struct span span_trim(struct span s)
{
	while (s.len > 0 && is_blank(s.ptr[0])) {
		s.ptr++;
		s.len--;
	}
	while (s.len > 0 && is_blank(s.ptr[s.len - 1]))
		s.len--;
	return s;
}

void span_split_word(struct span s, struct span *word_out, struct span *rest_out)
{
	size_t i = 0;

	while (i < s.len && s.ptr[i] != ' ')
		i++;
	*word_out = span_make(s.ptr, i);
	while (i < s.len && s.ptr[i] == ' ')
		i++;
	*rest_out = span_make(s.ptr + i, s.len - i);
}

bool span_split_first(struct span s, char c, struct span *before_out, struct span *after_out)
{
	long at = span_find(s, 0, c);

	if (at < 0)
		return false;
	*before_out = span_make(s.ptr, (size_t) at);
	*after_out = span_make(s.ptr + at + 1, s.len - (size_t) at - 1);
	return true;
}

bool span_split_last(struct span s, char c, struct span *before_out, struct span *after_out)
{
	for (size_t i = s.len; i > 0; i--) {
		if (s.ptr[i - 1] == c) {
			*before_out = span_make(s.ptr, i - 1);
			*after_out = span_make(s.ptr + i, s.len - i);
			return true;
		}
	}
	return false;
}

long span_find(struct span s, size_t from, char c)
{
	for (size_t i = from; i < s.len; i++)
		if (s.ptr[i] == c)
			return (long) i;
	return -1;
}

bool span_has_byte(struct span s, unsigned char byte)
{
	return s.len > 0 && memchr(s.ptr, byte, s.len) != NULL;
}

bool span_parse_u64(struct span s, uint64_t *value_out)
{
	uint64_t v = 0;

	if (s.len == 0)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		unsigned d = (unsigned char) s.ptr[i] - '0';

		if (d > 9)
			return false;
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*value_out = v;
	return true;
}

bool span_copy_cstr(struct span s, char *dst, size_t dst_cap)
{
	if (dst_cap == 0)
		return false;
	if (s.len >= dst_cap || span_has_byte(s, 0)) {
		dst[0] = '\0';
		return false;
	}
	if (s.len > 0)
		memcpy(dst, s.ptr, s.len);
	dst[s.len] = '\0';
	return true;
}
