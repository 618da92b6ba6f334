/* path: the address → Maildir directory mapping (see path.h). */
#include "mailbox/path.h"

#include <stdbool.h>
#include <string.h>

static bool is_plain(unsigned char c, bool is_first)
{
	if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80)
		return true;
	if (c == '-' || c == '_' || c == '+' || c == '=')
		return true;
	return c == '.' && !is_first;
}

int mailbox_path_for(const char *maildir_root, const char *address, char *out, size_t out_cap,
		     struct error *err)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *at = strrchr(address, '@');
	size_t o;
	int n;

	if (at == NULL || at == address || at[1] == '\0')
		return error_set(err, ERROR_DATA, "not an address: no local part or domain");
	/* The domain is normalized already: lower-case LDH labels, no '/'. */
	n = snprintf(out, out_cap, "%s/%s/", maildir_root, at + 1);
	if (n < 0 || (size_t) n >= out_cap)
		return error_set(err, ERROR_DATA, "mailbox path is too long");
	o = (size_t) n;
	for (const char *p = address; p < at; p++) {
		unsigned char c = (unsigned char) *p;

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char) (c + 32);
		bool is_kept = is_plain(c, p == address);

		/* The byte (one or three) and the final NUL must fit. */
		if (o + (is_kept ? 1 : 3) + 1 > out_cap)
			return error_set(err, ERROR_DATA, "mailbox path is too long");
		if (is_kept) {
			out[o++] = (char) c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return 0;
}
