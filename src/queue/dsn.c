/*
 * dsn: the multipart/report of RFC 3464 (RFC 6522 for the container): a
 * human-readable part, the message/delivery-status fields, then the
 * original's headers (text/rfc822-headers) or the whole of it
 * (message/rfc822).
 */
#include "queue/dsn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue/envelope.h"

struct out {
	char *ptr;
	size_t len, cap;
	bool is_failed;
};

static void out_add(struct out *o, const char *bytes, size_t len)
{
	if (o->is_failed)
		return;
	if (o->len + len + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		char *grown;

		while (cap < o->len + len + 1)
			cap *= 2;
		grown = realloc(o->ptr, cap);
		if (grown == NULL) {
			o->is_failed = true;
			return;
		}
		o->ptr = grown;
		o->cap = cap;
	}
	memcpy(o->ptr + o->len, bytes, len);
	o->len += len;
	o->ptr[o->len] = '\0';
}

static void out_cstr(struct out *o, const char *s)
{
	out_add(o, s, strlen(s));
}

static void out_printf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_printf(struct out *o, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	out_add(o, line, (size_t) n < sizeof(line) ? (size_t) n : sizeof(line) - 1);
}

/* RFC 5322 3.3 date-time, in UTC. */
static void format_date(uint64_t t, char out[64])
{
	time_t tt = (time_t) t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 64, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

bool queue_dsn_wanted(unsigned notify, enum queue_dsn_action action)
{
	if (notify & QUEUE_NOTIFY_NEVER)
		return false;
	switch (action) {
	case QUEUE_DSN_FAILED:
		return notify == 0 || (notify & QUEUE_NOTIFY_FAILURE);
	case QUEUE_DSN_DELAYED:
		return notify == 0 || (notify & QUEUE_NOTIFY_DELAY);
	case QUEUE_DSN_DELIVERED:
	case QUEUE_DSN_RELAYED:
		return (notify & QUEUE_NOTIFY_SUCCESS) != 0;
	}
	return false;
}

void queue_dsn_status(const char *reply, char out[16])
{
	char cls = reply != NULL && reply[0] >= '2' && reply[0] <= '5' ? reply[0] : '4';
	const char *p;
	size_t n = 0;

	if (cls == '3')
		cls = '4';
	snprintf(out, 16, "%c.0.0", cls);
	if (reply == NULL || strlen(reply) < 5 || reply[3] != ' ')
		return;
	p = reply + 4;
	/* class "." 1*3digit "." 1*3digit (RFC 3463 2), class agreeing. */
	if (p[0] != cls || p[1] != '.')
		return;
	n = 2;
	for (int part = 0; part < 2; part++) {
		size_t digits = 0;

		while (p[n] >= '0' && p[n] <= '9' && digits < 3) {
			n++;
			digits++;
		}
		if (digits == 0)
			return;
		if (part == 0) {
			if (p[n] != '.')
				return;
			n++;
		}
	}
	if (p[n] != ' ' && p[n] != '\0')
		return;
	snprintf(out, 16, "%.*s", (int) n, p);
}

bool queue_dsn_returns_full(unsigned ret, uint64_t size, uint64_t max_bytes)
{
	return ret != QUEUE_RET_HDRS && size <= max_bytes;
}

static const char *action_word(enum queue_dsn_action a)
{
	static const char *const words[] = { "failed", "delayed", "delivered", "relayed" };

	return words[a];
}

/* A header field value must not break the DSN: control bytes become '?'. */
static void out_field_value(struct out *o, const char *s)
{
	for (; *s; s++) {
		char c = (unsigned char) *s < 0x20 || *s == 0x7f ? '?' : *s;

		out_add(o, &c, 1);
	}
}

int queue_dsn_build(const struct queue_dsn_params *p, char **text_out, size_t *len_out,
		    struct error *err)
{
	struct out o = { 0 };
	char date[64];
	bool has_failed = false, has_delayed = false;
	const char *subject;

	if (p->recipient_count == 0)
		return error_set(err, ERROR_DATA, "dsn: no recipients");
	for (size_t i = 0; i < p->recipient_count; i++) {
		has_failed |= p->recipients[i].action == QUEUE_DSN_FAILED;
		has_delayed |= p->recipients[i].action == QUEUE_DSN_DELAYED;
	}
	subject = has_failed	? "Undelivered Mail Returned to Sender"
		  : has_delayed ? "Delayed Mail (still being retried)"
				: "Successful Mail Delivery Report";
	format_date(p->now, date);
	out_printf(&o, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", p->reporting_mta);
	out_cstr(&o, "To: <");
	out_field_value(&o, p->sender);
	out_cstr(&o, ">\r\n");
	out_printf(&o, "Subject: %s\r\n", subject);
	out_printf(&o, "Date: %s\r\n", date);
	out_printf(&o, "Message-ID: <%s.%llu.dsn@%s>\r\n", p->queue_id, (unsigned long long) p->now,
		   p->reporting_mta);
	/* RFC 3834 5: automatic, so that responders do not answer it. */
	out_cstr(&o, "Auto-Submitted: auto-replied\r\n");
	out_cstr(&o, "MIME-Version: 1.0\r\n");
	out_printf(&o,
		   "Content-Type: multipart/report; report-type=delivery-status;\r\n"
		   "\tboundary=\"%s\"\r\n\r\n",
		   p->boundary);
	out_cstr(&o, "This is a MIME-encapsulated message.\r\n\r\n");

	/* 1: for people. */
	out_printf(&o,
		   "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
		   "Content-Description: Notification\r\n\r\n",
		   p->boundary);
	out_printf(&o, "This is the mail system at %s.\r\n\r\n", p->reporting_mta);
	if (has_failed)
		out_cstr(&o, "Your message could not be delivered to one or more recipients.\r\n"
			     "It is attached below.\r\n\r\n");
	if (has_delayed)
		out_cstr(&o,
			 "Your message has not been delivered yet to one or more recipients.\r\n"
			 "The mail system will keep trying; you need not send it again.\r\n\r\n");
	for (size_t i = 0; i < p->recipient_count; i++) {
		const struct queue_dsn_recipient *r = &p->recipients[i];

		out_cstr(&o, "<");
		out_field_value(&o, r->address);
		out_printf(&o, ">: %s", action_word(r->action));
		if (r->diagnostic != NULL) {
			out_cstr(&o, ": ");
			out_field_value(&o, r->diagnostic);
		}
		out_cstr(&o, "\r\n");
	}
	out_cstr(&o, "\r\n");

	/* 2: message/delivery-status (RFC 3464 2.2, 2.3). */
	out_printf(&o, "--%s\r\nContent-Type: message/delivery-status\r\n\r\n", p->boundary);
	out_printf(&o, "Reporting-MTA: dns; %s\r\n", p->reporting_mta);
	out_printf(&o, "X-Postgate-Queue-ID: %s\r\n", p->queue_id);
	if (p->envid != NULL) {
		out_cstr(&o, "Original-Envelope-Id: ");
		out_field_value(&o, p->envid);
		out_cstr(&o, "\r\n");
	}
	format_date(p->arrival_at, date);
	out_printf(&o, "Arrival-Date: %s\r\n", date);
	for (size_t i = 0; i < p->recipient_count; i++) {
		const struct queue_dsn_recipient *r = &p->recipients[i];
		char status[16];

		out_cstr(&o, "\r\n");
		if (r->orcpt != NULL && strchr(r->orcpt, ';') != NULL) {
			const char *semi = strchr(r->orcpt, ';');

			out_printf(&o, "Original-Recipient: %.*s; ", (int) (semi - r->orcpt),
				   r->orcpt);
			out_field_value(&o, semi + 1);
			out_cstr(&o, "\r\n");
		}
		out_cstr(&o, "Final-Recipient: rfc822; ");
		out_field_value(&o, r->address);
		out_cstr(&o, "\r\n");
		out_printf(&o, "Action: %s\r\n", action_word(r->action));
		if (r->diagnostic != NULL)
			queue_dsn_status(r->diagnostic, status);
		else
			snprintf(status, sizeof(status), "%s",
				 r->action == QUEUE_DSN_FAILED	  ? "5.0.0"
				 : r->action == QUEUE_DSN_DELAYED ? "4.0.0"
								  : "2.0.0");
		out_printf(&o, "Status: %s\r\n", status);
		if (r->remote_mta != NULL && r->remote_mta[0] != '\0')
			out_printf(&o, "Remote-MTA: dns; %s\r\n", r->remote_mta);
		if (r->diagnostic != NULL && r->remote_mta != NULL && r->remote_mta[0] != '\0') {
			out_cstr(&o, "Diagnostic-Code: smtp; ");
			out_field_value(&o, r->diagnostic);
			out_cstr(&o, "\r\n");
		}
		if (r->last_attempt_at != 0) {
			format_date(r->last_attempt_at, date);
			out_printf(&o, "Last-Attempt-Date: %s\r\n", date);
		}
	}
	out_cstr(&o, "\r\n");

	/* 3: the original. */
	out_printf(&o, "--%s\r\nContent-Type: %s\r\n\r\n", p->boundary,
		   p->is_full ? "message/rfc822" : "text/rfc822-headers");
	out_add(&o, p->original.ptr, p->original.len);
	if (p->original.len < 2 || memcmp(p->original.ptr + p->original.len - 2, "\r\n", 2) != 0)
		out_cstr(&o, "\r\n");
	out_printf(&o, "\r\n--%s--\r\n", p->boundary);
	if (o.is_failed) {
		free(o.ptr);
		return error_set(err, ERROR_SOFTWARE, "dsn: out of memory");
	}
	*text_out = o.ptr;
	*len_out = o.len;
	return 0;
}
