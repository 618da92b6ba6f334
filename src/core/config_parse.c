/*
 * config_parse: the syntax of the configuration file, and nothing else. Turns
 * bytes into section headers and key lines with their FILE:LINE; knows no key
 * names, touches no file system and keeps no globals, so the unit tests and
 * the fuzzer drive it directly. Every line has a bound; a malformed line is
 * an error naming its line, never skipped.
 */
#include "core/config.h"

#include <string.h>

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static bool is_name(struct span s)
{
	if (s.len == 0)
		return false;
	for (size_t i = 0; i < s.len; i++)
		if (!is_name_char(s.ptr[i]))
			return false;
	return true;
}

/* An argument (`[listener mx]`, `route example.net = ...`) is one word of
 * printable ASCII or UTF-8 without brackets or '='. */
static bool is_argument(struct span s)
{
	if (s.len == 0)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char) s.ptr[i];

		if (c <= ' ' || c == 0x7f || c == '[' || c == ']' || c == '=' || c == '#')
			return false;
	}
	return true;
}

static int parse_section(const char *file, unsigned line_number, struct span text,
			 struct config_line *line, struct error *err)
{
	struct span inner, name, arg, extra;

	if (text.len < 2 || text.ptr[text.len - 1] != ']')
		return error_set(err, ERROR_CONFIG, "%s:%u: section header must end with ']'", file,
				 line_number);
	inner = span_trim(span_make(text.ptr + 1, text.len - 2));
	span_split_word(inner, &name, &arg);
	span_split_word(arg, &arg, &extra);
	if (!is_name(name))
		return error_set(err, ERROR_CONFIG,
				 "%s:%u: section name must be lower-case letters, digits and '_'",
				 file, line_number);
	if (extra.len > 0 || (arg.len > 0 && !is_argument(arg)))
		return error_set(err, ERROR_CONFIG,
				 "%s:%u: a section header is [name] or [name argument]", file,
				 line_number);
	line->section = name;
	line->section_arg = arg;
	return 0;
}

static int parse_key_line(const char *file, unsigned line_number, struct span text,
			  struct config_line *line, struct error *err)
{
	struct span left, value, key, arg, extra;

	if (!span_split_first(text, '=', &left, &value))
		return error_set(err, ERROR_CONFIG, "%s:%u: expected `key = value`", file,
				 line_number);
	left = span_trim(left);
	span_split_word(left, &key, &arg);
	arg = span_trim(arg);
	span_split_word(arg, &arg, &extra);
	if (!is_name(key))
		return error_set(err, ERROR_CONFIG,
				 "%s:%u: a key is lower-case letters, digits and '_'", file,
				 line_number);
	if (extra.len > 0 || (arg.len > 0 && !is_argument(arg)))
		return error_set(err, ERROR_CONFIG,
				 "%s:%u: expected `key = value` or `key argument = value`", file,
				 line_number);
	line->key = key;
	line->key_arg = arg;
	line->value = span_trim(value);
	return 0;
}

int config_text_parse(const char *file, struct span text, config_line_fn *each, void *ctx,
		      struct error *err)
{
	struct config_line line = { .file = file };
	size_t pos = 0;
	unsigned line_number = 0;

	if (text.len > CONFIG_FILE_MAX)
		return error_set(err, ERROR_CONFIG, "%s: file is larger than %d bytes", file,
				 CONFIG_FILE_MAX);
	while (pos < text.len) {
		long nl = span_find(text, pos, '\n');
		size_t end = nl < 0 ? text.len : (size_t) nl;
		struct span raw = span_make(text.ptr + pos, end - pos);
		struct span body;

		line_number++;
		pos = nl < 0 ? text.len : end + 1;
		if (raw.len > 0 && raw.ptr[raw.len - 1] == '\r')
			raw.len--;
		if (raw.len > CONFIG_LINE_MAX)
			return error_set(err, ERROR_CONFIG, "%s:%u: line is longer than %d bytes",
					 file, line_number, CONFIG_LINE_MAX);
		if (span_has_byte(raw, 0) || span_has_byte(raw, '\r'))
			return error_set(err, ERROR_CONFIG,
					 "%s:%u: line holds a NUL or carriage-return byte", file,
					 line_number);
		body = span_trim(raw);
		if (body.len == 0 || body.ptr[0] == '#')
			continue;
		line.line = line_number;
		line.key = line.key_arg = line.value = span_make(NULL, 0);
		if (body.ptr[0] == '[') {
			if (parse_section(file, line_number, body, &line, err) < 0)
				return -1;
		} else if (parse_key_line(file, line_number, body, &line, err) < 0) {
			return -1;
		}
		if (each(ctx, &line, err) < 0)
			return -1;
	}
	return 0;
}
