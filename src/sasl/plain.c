/*
 * plain: the PLAIN mechanism (RFC 4616). One client message,
 * [authzid] NUL authcid NUL passwd, sent as the initial response (Netscape
 * 6/7, today's clients) or after an empty challenge. The password goes to
 * the caller to check; this file never judges it.
 */
#include <string.h>

#include "sasl/internal.h"

static enum sasl_step plain_message(struct sasl_exchange *x, struct span message,
				    struct sasl_output *out)
{
	struct span authzid, authcid, passwd, rest;

	/* RFC 4616 2: exactly two NULs; SAFE excludes NUL in the fields. */
	if (!span_split_first(message, '\0', &authzid, &rest) ||
	    !span_split_first(rest, '\0', &authcid, &passwd) || span_has_byte(passwd, '\0'))
		return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
	/* authcid and passwd are 1*SAFE; an authzid, when present, is too. */
	if (!sasl_identity_copy(authcid, x->username) || passwd.len == 0 ||
	    passwd.len > SASL_PASSWORD_MAX)
		return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
	if (authzid.len > 0 && !sasl_identity_copy(authzid, x->authzid))
		return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
	/* RFC 4616 2: the server decides whether authcid may act as authzid.
	 * Users act only as themselves: 535, not a password check. */
	if (authzid.len > 0 && strcmp(x->authzid, x->username) != 0)
		return sasl_exchange_finish(x, SASL_STEP_FAILURE, out);
	/* The password is not checked for UTF-8: old Windows clients send
	 * their code page, and it is compared as octets (decision 0003). */
	memcpy(x->password, passwd.ptr, passwd.len);
	x->password[passwd.len] = '\0';
	x->password_len = passwd.len;
	return sasl_exchange_finish(x, SASL_STEP_CHECK_PASSWORD, out);
}

enum sasl_step sasl_plain_step(struct sasl_exchange *x, bool has_input, struct span input,
			       struct sasl_output *out)
{
	if (x->state == SASL_STATE_START && !has_input) {
		/* RFC 4616 2 with RFC 4954 4: no initial response, so an
		 * empty challenge ("334 ") asks for the message. */
		return sasl_exchange_challenge(x, SASL_PHASE_FIRST, "", 0, out);
	}
	return plain_message(x, input, out);
}
