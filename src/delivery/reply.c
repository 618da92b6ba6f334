/*
 * reply: the SMTP reply reader. RFC 5321 4.2: "Reply-code [ SP textstring ]
 * CRLF" for the last line, "Reply-code "-" [ textstring ] CRLF" for the
 * others, every line with the same code.
 */
#include "delivery/reply.h"

#include <stdio.h>
#include <string.h>

void delivery_reply_init(struct delivery_reply *reply)
{
	reply->code = 0;
	reply->line_count = 0;
	reply->is_truncated = false;
	reply->text_len = 0;
	reply->text[0] = '\0';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

enum delivery_reply_status delivery_reply_feed(struct delivery_reply *reply, struct span line)
{
	unsigned code;
	struct span text;
	bool is_last;

	if (line.len > DELIVERY_REPLY_LINE_MAX - 2 || line.len < 3 || !is_digit(line.ptr[0]) ||
	    !is_digit(line.ptr[1]) || !is_digit(line.ptr[2]) ||
	    reply->line_count >= DELIVERY_REPLY_LINES_MAX || span_has_byte(line, 0))
		return DELIVERY_REPLY_BAD;
	code = (unsigned) (line.ptr[0] - '0') * 100 + (unsigned) (line.ptr[1] - '0') * 10 +
	       (unsigned) (line.ptr[2] - '0');
	if (code < 200 || code > 599 || (reply->line_count > 0 && code != reply->code))
		return DELIVERY_REPLY_BAD;
	if (line.len == 3) {
		is_last = true;
		text = span_make(line.ptr + 3, 0);
	} else if (line.ptr[3] == ' ' || line.ptr[3] == '-') {
		is_last = line.ptr[3] == ' ';
		text = span_make(line.ptr + 4, line.len - 4);
	} else {
		return DELIVERY_REPLY_BAD;
	}
	reply->code = code;
	reply->line_count++;
	if (reply->text_len + text.len + 1 < sizeof(reply->text)) {
		if (reply->line_count > 1)
			reply->text[reply->text_len++] = '\n';
		memcpy(reply->text + reply->text_len, text.ptr, text.len);
		reply->text_len += text.len;
		reply->text[reply->text_len] = '\0';
	} else {
		reply->is_truncated = true;
	}
	return is_last ? DELIVERY_REPLY_DONE : DELIVERY_REPLY_MORE;
}

void delivery_reply_summary(const struct delivery_reply *reply, char *out, size_t out_cap)
{
	const char *last = strrchr(reply->text, '\n');
	size_t n;

	last = last == NULL ? reply->text : last + 1;
	snprintf(out, out_cap, "%u %s", reply->code, last);
	/* Remote text goes into logs and DSNs: printable ASCII only. */
	n = strlen(out);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char) out[i] < 0x20 || (unsigned char) out[i] > 0x7e)
			out[i] = '?';
	if (n > 0 && out[n - 1] == ' ')
		out[n - 1] = '\0';
}

void delivery_ehlo_parse(const struct delivery_reply *reply, struct delivery_ehlo *ehlo_out)
{
	struct span rest = span_make(reply->text, reply->text_len), line, keyword, args;
	bool is_first = true;

	memset(ehlo_out, 0, sizeof(*ehlo_out));
	while (rest.len > 0) {
		if (!span_split_first(rest, '\n', &line, &rest)) {
			line = rest;
			rest = span_make(NULL, 0);
		}
		if (is_first) { /* the greeting line: domain and text */
			is_first = false;
			continue;
		}
		span_split_word(span_trim(line), &keyword, &args);
		if (span_eq_cstr_nocase(keyword, "STARTTLS"))
			ehlo_out->has_starttls = true;
		else if (span_eq_cstr_nocase(keyword, "PIPELINING"))
			ehlo_out->has_pipelining = true;
		else if (span_eq_cstr_nocase(keyword, "8BITMIME"))
			ehlo_out->has_8bitmime = true;
		else if (span_eq_cstr_nocase(keyword, "SMTPUTF8"))
			ehlo_out->has_smtputf8 = true;
		else if (span_eq_cstr_nocase(keyword, "DSN"))
			ehlo_out->has_dsn = true;
		else if (span_eq_cstr_nocase(keyword, "SIZE")) {
			uint64_t n;

			ehlo_out->has_size = true;
			if (span_parse_u64(span_trim(args), &n))
				ehlo_out->size_max = n;
		}
	}
}
