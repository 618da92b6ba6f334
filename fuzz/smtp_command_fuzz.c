/*
 * Fuzz target for the command-line parsers: the input is one command line
 * (CRLF removed) given to smtp_line_check and smtp_command_split, and its
 * arguments to every argument parser, whatever the verb. Checks what each
 * parser promises about its output.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/data.h"
#include "smtp/parse.h"

static void check_xtext_round_trip(const char *decoded)
{
	char encoded[3 * SMTP_ORCPT_MAX + 1], back[SMTP_ORCPT_MAX + 1];
	size_t len;

	if (!smtp_xtext_encode(span_from_cstr(decoded), encoded, sizeof(encoded)) ||
	    !smtp_xtext_decode(span_from_cstr(encoded), back, sizeof(back), &len) ||
	    len != strlen(decoded) || strcmp(back, decoded) != 0)
		abort();
}

static bool is_within(struct span inner, struct span outer)
{
	return inner.len == 0 ||
	       (inner.ptr >= outer.ptr && inner.ptr + inner.len <= outer.ptr + outer.len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct span line = span_make((const char *) data, size), verb, args;
	struct smtp_mail_args mail;
	struct smtp_rcpt_args rcpt;
	char helo[SMTP_HELO_MAX + 1];
	uint64_t bdat_size;
	bool is_last;
	enum smtp_line_result lr = smtp_line_check(line);

	if ((lr == SMTP_LINE_OK) !=
	    (memchr(data, '\0', size) == NULL && memchr(data, '\r', size) == NULL &&
	     memchr(data, '\n', size) == NULL))
		abort();
	smtp_command_split(line, &verb, &args);
	if (!is_within(verb, line) || !is_within(args, line) || span_has_byte(verb, ' ') ||
	    (args.len > 0 && (args.ptr[0] == ' ' || args.ptr[args.len - 1] == ' ')))
		abort();

	if (smtp_mail_parse(args, &mail) == SMTP_ARGS_OK) {
		if (mail.reverse_path.is_postmaster ||
		    (mail.reverse_path.has_utf8 && !mail.is_smtputf8) ||
		    strlen(mail.envid) > SMTP_ENVID_MAX)
			abort();
		check_xtext_round_trip(mail.envid);
	} else if (mail.reverse_path.address[0] != '\0' || mail.has_size || mail.has_envid) {
		abort();
	}
	for (int allow_utf8 = 0; allow_utf8 <= 1; allow_utf8++) {
		if (smtp_rcpt_parse(args, allow_utf8, &rcpt) == SMTP_ARGS_OK) {
			if (rcpt.forward_path.is_null ||
			    (rcpt.forward_path.has_utf8 && !allow_utf8) ||
			    ((rcpt.notify & SMTP_NOTIFY_NEVER) && rcpt.notify != SMTP_NOTIFY_NEVER))
				abort();
			if (!allow_utf8 && rcpt.has_orcpt)
				check_xtext_round_trip(rcpt.orcpt_address);
		} else if (rcpt.forward_path.address[0] != '\0' || rcpt.notify != 0) {
			abort();
		}
	}
	if (smtp_helo_parse(args, helo, sizeof(helo))) {
		size_t len = strlen(helo);

		if (len == 0 || len > SMTP_HELO_MAX || strchr(helo, ' ') != NULL)
			abort();
		for (size_t i = 0; i < len; i++)
			if ((unsigned char) helo[i] < 0x21 || (unsigned char) helo[i] > 0x7E)
				abort();
	} else if (helo[0] != '\0') {
		abort();
	}
	if (smtp_bdat_parse(args, &bdat_size, &is_last) && args.len == 0)
		abort();
	return 0;
}
