/*
 * parse: splitting a POP3 command line. Lenient where old clients are (runs
 * of spaces, lower-case keywords), strict where bytes could mean something
 * else (NUL, control characters).
 */
#include "pop3/parse.h"

#include <string.h>

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

enum pop3_parse_result pop3_command_parse(struct span line, struct pop3_command *command_out)
{
	struct pop3_command *c = command_out;
	size_t i = 0;

	memset(c, 0, sizeof(*c));
	for (size_t k = 0; k < line.len; k++) {
		unsigned char byte = (unsigned char) line.ptr[k];

		if (byte == 0)
			return POP3_PARSE_HAS_NUL;
		if ((byte < 0x20 && byte != '\t') || byte == 0x7f)
			return POP3_PARSE_HAS_CONTROL;
	}
	while (i < line.len && is_blank(line.ptr[i]))
		i++;
	if (i == line.len)
		return POP3_PARSE_EMPTY;
	c->keyword.ptr = line.ptr + i;
	while (i < line.len && !is_blank(line.ptr[i]))
		i++;
	c->keyword.len = (size_t) (line.ptr + i - c->keyword.ptr);
	/* RFC 2449 3: keywords are three or four printable ASCII characters. */
	if (c->keyword.len < POP3_KEYWORD_MIN || c->keyword.len > POP3_KEYWORD_MAX)
		return POP3_PARSE_BAD_KEYWORD;
	for (size_t k = 0; k < c->keyword.len; k++)
		if ((unsigned char) c->keyword.ptr[k] > 0x7e)
			return POP3_PARSE_BAD_KEYWORD;
	/* The argument text starts after exactly one separator. */
	if (i < line.len)
		i++;
	c->rest = span_make(line.ptr + i, line.len - i);
	while (i < line.len) {
		size_t start;

		while (i < line.len && is_blank(line.ptr[i]))
			i++;
		if (i == line.len)
			break;
		start = i;
		while (i < line.len && !is_blank(line.ptr[i]))
			i++;
		if (c->arg_count == POP3_ARGS_MAX) {
			c->has_extra_args = true;
			continue;
		}
		c->args[c->arg_count++] = span_make(line.ptr + start, i - start);
	}
	return POP3_PARSE_OK;
}

bool pop3_message_number_parse(struct span arg, size_t count, size_t *index_out)
{
	uint64_t number;

	if (!span_parse_u64(arg, &number) || number == 0 || number > count)
		return false;
	*index_out = (size_t) (number - 1);
	return true;
}

bool pop3_line_count_parse(struct span arg, uint64_t *lines_out)
{
	return span_parse_u64(arg, lines_out);
}
