/*
 * header: RFC 5322 field names and address lists (see header.h).
 */
#include "smtp/header.h"

bool smtp_header_field_name(struct span line, struct span *name_out)
{
	for (size_t i = 0; i < line.len; i++) {
		unsigned char c = (unsigned char) line.ptr[i];

		if (c == ':') {
			*name_out = span_make(line.ptr, i);
			return i > 0;
		}
		if (c <= ' ' || c >= 0x7F)
			return false;
	}
	return false;
}

int smtp_header_address_list(struct span value, smtp_header_address_fn *each, void *ctx)
{
	char item[SMTP_HEADER_ITEM_MAX];
	size_t len = 0;
	int depth = 0;
	bool in_quote = false, has_angle = false, in_angle = false, is_long = false;

	for (size_t i = 0; i <= value.len; i++) {
		char c = i < value.len ? value.ptr[i] : ',';

		if (in_quote) {
			if (c == '\\' && i + 1 < value.len)
				i++;
			else if (c == '"')
				in_quote = false;
			continue; /* a display name, or a quoted local part we drop */
		}
		if (depth > 0) {
			if (c == '\\' && i + 1 < value.len)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		switch (c) {
		case '"':
			in_quote = true;
			continue;
		case '(':
			depth = 1;
			continue;
		case '<':
			/* The angle address replaces whatever came before it. */
			len = 0;
			is_long = false;
			has_angle = in_angle = true;
			continue;
		case '>':
			in_angle = false;
			continue;
		case ':':
			if (!in_angle) {
				len = 0; /* a group's display name */
				is_long = false;
				continue;
			}
			break;
		case ',':
		case ';':
			if (in_angle)
				break;
			if (is_long)
				return -1;
			{
				struct span address = span_trim(span_make(item, len));

				if (address.len > 0 && each(ctx, address) < 0)
					return -1;
			}
			len = 0;
			has_angle = false;
			continue;
		default:
			break;
		}
		if (has_angle && !in_angle)
			continue; /* after "<...>": nothing more of this mailbox */
		if (len < sizeof(item))
			item[len++] = c;
		else
			is_long = true;
	}
	return 0;
}
