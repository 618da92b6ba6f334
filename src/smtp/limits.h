/*
 * limits: every bound the SMTP parsers enforce, each with the text that sets
 * it. Only constants live here; the session's own policy limits (recipients
 * per message, errors per session, message size) come from the config file.
 */
#ifndef POSTGATE_SMTP_LIMITS_H
#define POSTGATE_SMTP_LIMITS_H

/* A command line, verb and CRLF included. */
#define SMTP_COMMAND_LINE_MAX 512 /* RFC 5321 4.5.3.1.4 */
/* A line of message text, CRLF included, the leading dot of a dot-stuffed
 * line not counted. The DATA decoder's default; configurable per listener. */
/* Extensions lengthen MAIL and RCPT lines: SIZE by 26 (RFC 1870 3),
 * SMTPUTF8 by 10 (RFC 6531 3.1), AUTH= by 500 (RFC 4954 5), DSN's RET and
 * ENVID by 118 on MAIL and NOTIFY and ORCPT by 530 on RCPT (RFC 3461 4). */
#define SMTP_MAIL_LINE_MAX (SMTP_COMMAND_LINE_MAX + 26 + 10 + 500 + 118)
#define SMTP_RCPT_LINE_MAX (SMTP_COMMAND_LINE_MAX + 10 + 530)
#define SMTP_TEXT_LINE_MAX 1000 /* RFC 5321 4.5.3.1.6 */
/* The local part of a mailbox, as it appears (quotes and backslashes
 * counted). */
#define SMTP_LOCAL_PART_MAX 64 /* RFC 5321 4.5.3.1.1 */
/* A domain name or address literal, as it appears in a path or EHLO. */
#define SMTP_DOMAIN_MAX 255 /* RFC 5321 4.5.3.1.2 */
/* One label of a domain name (ASCII labels; see parse.c for U-labels). */
#define SMTP_LABEL_MAX 63 /* RFC 1035 2.3.4, RFC 5321 2.3.5 */
/* "local@domain": the buffer size that holds any accepted mailbox. */
#define SMTP_ADDRESS_MAX (SMTP_LOCAL_PART_MAX + 1 + SMTP_DOMAIN_MAX)
/* The EHLO/HELO argument: a domain, an address literal or (old Windows and
 * Mac clients) a bare host name; no longer than a domain. */
#define SMTP_HELO_MAX SMTP_DOMAIN_MAX /* RFC 5321 4.1.1.1, 4.5.3.1.2 */
/* MAIL ENVID=, as sent (xtext). */
#define SMTP_ENVID_MAX 100 /* RFC 3461 4.4 */
/* RCPT ORCPT=, addr-type ";" xtext, as sent. */
#define SMTP_ORCPT_MAX 500 /* RFC 3461 4.2 */
/* MAIL AUTH=, decoded: "<>" or a mailbox. */
#define SMTP_AUTH_PARAM_MAX SMTP_ADDRESS_MAX /* RFC 4954 5 */

#endif
