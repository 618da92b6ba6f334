/*
 * output: what `list` and `show` print — aligned text tables, aligned
 * "key: value" lines and JSON (RFC 8259). Widths count UTF-8 characters so
 * that local parts in other scripts (RFC 6531) keep the columns straight.
 * Only writes to the FILE it is given.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/internal.h"

#define CLI_COLUMN_GAP 2

struct cli_table {
	size_t column_count;
	size_t row_count, row_cap;
	char **cells; /* row-major; row 0 is the header */
};

/* Characters, not bytes: continuation bytes (10xxxxxx) do not count. */
static size_t display_width(const char *s)
{
	size_t width = 0;

	for (; *s; s++)
		if (((unsigned char) *s & 0xc0) != 0x80)
			width++;
	return width;
}

struct cli_table *cli_table_new(size_t column_count, const char *const *headers, struct error *err)
{
	struct cli_table *table = calloc(1, sizeof(*table));

	if (table == NULL) {
		error_set(err, ERROR_SOFTWARE, "out of memory");
		return NULL;
	}
	table->column_count = column_count;
	if (cli_table_add_row(table, headers, err) < 0) {
		cli_table_free(table);
		return NULL;
	}
	return table;
}

int cli_table_add_row(struct cli_table *table, const char *const *cells, struct error *err)
{
	char **row;

	if (table->row_count == table->row_cap) {
		size_t cap = table->row_cap ? table->row_cap * 2 : 16;
		char **grown =
			reallocarray(table->cells, cap * table->column_count, sizeof(char *));

		if (grown == NULL)
			return error_set(err, ERROR_SOFTWARE, "out of memory");
		table->cells = grown;
		table->row_cap = cap;
	}
	row = table->cells + table->row_count * table->column_count;
	for (size_t c = 0; c < table->column_count; c++) {
		row[c] = strdup(cells[c] ? cells[c] : "-");
		if (row[c] == NULL) {
			while (c-- > 0)
				free(row[c]);
			return error_set(err, ERROR_SOFTWARE, "out of memory");
		}
	}
	table->row_count++;
	return 0;
}

void cli_table_print(const struct cli_table *table, FILE *out)
{
	size_t widths[16] = { 0 };
	size_t columns =
		table->column_count < ARRAY_LEN(widths) ? table->column_count : ARRAY_LEN(widths);

	for (size_t r = 0; r < table->row_count; r++)
		for (size_t c = 0; c < columns; c++) {
			size_t w = display_width(table->cells[r * table->column_count + c]);

			if (w > widths[c])
				widths[c] = w;
		}
	for (size_t r = 0; r < table->row_count; r++) {
		for (size_t c = 0; c < columns; c++) {
			const char *cell = table->cells[r * table->column_count + c];

			fputs(cell, out);
			/* No padding after the last column: no trailing blanks. */
			if (c + 1 < columns)
				fprintf(out, "%*s",
					(int) (widths[c] - display_width(cell) + CLI_COLUMN_GAP),
					"");
		}
		fputc('\n', out);
	}
}

void cli_table_free(struct cli_table *table)
{
	if (table == NULL)
		return;
	for (size_t i = 0; i < table->row_count * table->column_count; i++)
		free(table->cells[i]);
	free(table->cells);
	free(table);
}

void cli_fields_print(FILE *out, size_t count, const char *const *keys, const char *const *values)
{
	size_t width = 0;

	for (size_t i = 0; i < count; i++)
		if (display_width(keys[i]) > width)
			width = display_width(keys[i]);
	for (size_t i = 0; i < count; i++)
		fprintf(out, "%s:%*s%s\n", keys[i], (int) (width - display_width(keys[i]) + 1), "",
			values[i] ? values[i] : "-");
}

static void json_indent(struct cli_json *json)
{
	fputc('\n', json->out);
	for (size_t i = 0; i < json->depth; i++)
		fputs("  ", json->out);
}

/* Before any value: a comma after the previous item, and a fresh line. */
static void json_before_value(struct cli_json *json)
{
	if (json->after_key) {
		json->after_key = false;
		return;
	}
	if (json->depth == 0)
		return;
	if (json->has_items[json->depth])
		fputc(',', json->out);
	json->has_items[json->depth] = true;
	json_indent(json);
}

void cli_json_init(struct cli_json *json, FILE *out)
{
	memset(json, 0, sizeof(*json));
	json->out = out;
}

static void json_begin(struct cli_json *json, char open)
{
	json_before_value(json);
	fputc(open, json->out);
	if (json->depth + 1 < CLI_JSON_DEPTH_MAX)
		json->depth++;
	json->has_items[json->depth] = false;
}

static void json_end(struct cli_json *json, char close)
{
	bool had_items = json->has_items[json->depth];

	if (json->depth > 0)
		json->depth--;
	if (had_items)
		json_indent(json);
	fputc(close, json->out);
}

void cli_json_begin_object(struct cli_json *json)
{
	json_begin(json, '{');
}

void cli_json_end_object(struct cli_json *json)
{
	json_end(json, '}');
}

void cli_json_begin_array(struct cli_json *json)
{
	json_begin(json, '[');
}

void cli_json_end_array(struct cli_json *json)
{
	json_end(json, ']');
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629 4), or 0. */
static size_t utf8_sequence_len(const unsigned char *s)
{
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		unsigned char lo = s[0] == 0xe0 ? 0xa0 : 0x80, hi = s[0] == 0xed ? 0x9f : 0xbf;

		return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		unsigned char lo = s[0] == 0xf0 ? 0x90 : 0x80, hi = s[0] == 0xf4 ? 0x8f : 0xbf;

		return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 && (s[3] & 0xc0) == 0x80
			       ? 4
			       : 0;
	}
	return 0;
}

/* RFC 8259 7: quote, backslash and controls escaped; valid UTF-8 kept as it
 * is; a byte that is not valid UTF-8 becomes U+FFFD so the output stays JSON. */
static void json_write_string(FILE *out, const char *value)
{
	const unsigned char *s = (const unsigned char *) value;

	fputc('"', out);
	while (*s) {
		unsigned char c = *s;

		if (c == '"' || c == '\\') {
			fputc('\\', out);
			fputc(c, out);
			s++;
		} else if (c == '\n') {
			fputs("\\n", out);
			s++;
		} else if (c == '\r') {
			fputs("\\r", out);
			s++;
		} else if (c == '\t') {
			fputs("\\t", out);
			s++;
		} else if (c < 0x20 || c == 0x7f) {
			fprintf(out, "\\u%04x", c);
			s++;
		} else if (c < 0x80) {
			fputc(c, out);
			s++;
		} else {
			size_t n = utf8_sequence_len(s);

			if (n == 0) {
				fputs("\\ufffd", out);
				s++;
			} else {
				fwrite(s, 1, n, out);
				s += n;
			}
		}
	}
	fputc('"', out);
}

void cli_json_key(struct cli_json *json, const char *key)
{
	json_before_value(json);
	json_write_string(json->out, key);
	fputs(": ", json->out);
	json->after_key = true;
}

void cli_json_string(struct cli_json *json, const char *value)
{
	json_before_value(json);
	if (value == NULL)
		fputs("null", json->out);
	else
		json_write_string(json->out, value);
}

void cli_json_int(struct cli_json *json, int64_t value)
{
	json_before_value(json);
	fprintf(json->out, "%lld", (long long) value);
}

void cli_json_bool(struct cli_json *json, bool value)
{
	json_before_value(json);
	fputs(value ? "true" : "false", json->out);
}

void cli_json_finish(struct cli_json *json)
{
	fputc('\n', json->out);
}

const char *cli_time_format(int64_t unix_seconds, char *out, size_t out_cap)
{
	time_t t = (time_t) unix_seconds;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(out, out_cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, out_cap, "%lld", (long long) unix_seconds);
	return out;
}
