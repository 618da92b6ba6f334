/*
 * span: a borrowed view of bytes that need not end in NUL, which is what the
 * network and the config file hand us. Spans never own memory; whoever made
 * the bytes keeps them alive. Nothing here allocates.
 */
#ifndef POSTGATE_CORE_SPAN_H
#define POSTGATE_CORE_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct span {
	const char *ptr;
	size_t len;
};

#define SPAN_LITERAL(s) ((struct span){ (s), sizeof(s) - 1 })

struct span span_from_cstr(const char *s);
struct span span_make(const char *ptr, size_t len);

bool span_eq(struct span a, struct span b);
bool span_eq_cstr(struct span a, const char *s);
/* ASCII case-insensitive comparisons: protocol keywords and domains. */
bool span_eq_nocase(struct span a, struct span b);
bool span_eq_cstr_nocase(struct span a, const char *s);
bool span_starts_with_nocase(struct span a, const char *prefix);

/* Strip ASCII space and tab on both ends. */
struct span span_trim(struct span s);
/* Split at the first run of spaces: verb and the rest (rest is trimmed at its start). */
void span_split_word(struct span s, struct span *word_out, struct span *rest_out);
/* Split at the first or last occurrence of c; false when c is absent. */
bool span_split_first(struct span s, char c, struct span *before_out, struct span *after_out);
bool span_split_last(struct span s, char c, struct span *before_out, struct span *after_out);
/* Index of the first c at or after from, or -1. */
long span_find(struct span s, size_t from, char c);
bool span_has_byte(struct span s, unsigned char byte);

/* Decimal digits only: no sign, no space, no overflow, at least one digit. */
bool span_parse_u64(struct span s, uint64_t *value_out);

/*
 * Copy into a fixed array and NUL-terminate. Returns false (and writes an
 * empty string) when it does not fit or when s holds a NUL byte: truncation is
 * bad input, never a silent cut.
 */
bool span_copy_cstr(struct span s, char *dst, size_t dst_cap);

#endif
