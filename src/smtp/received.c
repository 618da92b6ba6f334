/*
 * received: formatting the Received: header. The client's HELO argument is
 * the only client text in it; it is cut and stripped of anything that could
 * end the comment or the header.
 */
#include "smtp/received.h"

#include <stdio.h>
#include <string.h>

const char *smtp_received_protocol(const struct smtp_received *r)
{
	/* RFC 3848 2 and RFC 6531 3.7.3: S for TLS, A for authenticated. */
	static const char *const esmtp[] = { "ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA" };
	static const char *const utf8[] = { "UTF8SMTP", "UTF8SMTPA", "UTF8SMTPS", "UTF8SMTPSA" };
	unsigned i = (r->is_tls ? 2u : 0u) + (r->is_authenticated ? 1u : 0u);

	if (!r->is_esmtp)
		return "SMTP";
	return r->is_utf8 ? utf8[i] : esmtp[i];
}

static void sanitize(const char *in, char *out, size_t cap)
{
	size_t o = 0;

	for (; in != NULL && *in != '\0' && o + 1 < cap; in++) {
		unsigned char c = (unsigned char) *in;

		out[o++] = (c > ' ' && c < 0x7f && c != '(' && c != ')' && c != '\\' && c != ';')
				   ? (char) c
				   : '?';
	}
	out[o] = '\0';
	if (o == 0)
		snprintf(out, cap, "unknown");
}

size_t smtp_received_format(const struct smtp_received *r, char *out, size_t out_cap)
{
	char helo[256], date[64], recipient[400] = "";
	struct tm tm;
	int n;

	sanitize(r->helo, helo, sizeof(helo));
	gmtime_r(&r->when, &tm);
	/* RFC 5322 3.3 date-time; English names whatever the locale. */
	{
		static const char *const days[] = {
			"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
		};
		static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
						      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

		snprintf(date, sizeof(date), "%s, %d %s %d %02d:%02d:%02d +0000", days[tm.tm_wday],
			 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
			 tm.tm_sec);
	}
	if (r->recipient != NULL) {
		char clean[330];

		sanitize(r->recipient, clean, sizeof(clean));
		snprintf(recipient, sizeof(recipient), "\r\n\tfor <%s>", clean);
	}
	if (r->local_user != NULL) {
		char user[128];

		sanitize(r->local_user, user, sizeof(user));
		n = snprintf(out, out_cap,
			     "Received: from %s (local user %s)\r\n"
			     "\tby %s (postgate) with %s id %s%s;\r\n"
			     "\t%s\r\n",
			     helo, user, r->hostname, smtp_received_protocol(r), r->queue_id,
			     recipient, date);
		return n < 0 || (size_t) n >= out_cap ? 0 : (size_t) n;
	}
	n = snprintf(out, out_cap,
		     "Received: from %s ([%s%s])\r\n"
		     "\tby %s (postgate) with %s id %s%s;\r\n"
		     "\t%s\r\n",
		     helo, strchr(r->client_ip, ':') ? "IPv6:" : "", r->client_ip, r->hostname,
		     smtp_received_protocol(r), r->queue_id, recipient, date);
	if (n < 0 || (size_t) n >= out_cap)
		return 0;
	return (size_t) n;
}
