/*
 * login: the LOGIN mechanism (draft-murchison-sasl-login-00, Microsoft's
 * MS-XLOGIN). The server asks "Username:" then "Password:"; each answer is
 * the bare value. Outlook Express and Outlook recognize only exactly these
 * prompts (Exim's spec; Stalwart PR 400; mox issue 51), and Netscape 4/6
 * send the user name as the initial response (MS-XLOGIN 2.2.2 allows
 * both), after which only "Password:" is asked.
 */
#include <string.h>

#include "sasl/internal.h"

static const char username_prompt[] = "Username:"; /* base64 VXNlcm5hbWU6 */
static const char password_prompt[] = "Password:"; /* base64 UGFzc3dvcmQ6 */

static enum sasl_step ask_password(struct sasl_exchange *x, struct span username,
				   struct sasl_output *out)
{
	if (!sasl_identity_copy(username, x->username))
		return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
	return sasl_exchange_challenge(x, SASL_PHASE_PASSWORD, password_prompt,
				       sizeof(password_prompt) - 1, out);
}

enum sasl_step sasl_login_step(struct sasl_exchange *x, bool has_input, struct span input,
			       struct sasl_output *out)
{
	if (x->state == SASL_STATE_START) {
		if (has_input)
			return ask_password(x, input, out);
		return sasl_exchange_challenge(x, SASL_PHASE_USERNAME, username_prompt,
					       sizeof(username_prompt) - 1, out);
	}
	if (x->phase == SASL_PHASE_USERNAME)
		return ask_password(x, input, out);
	/* The password: octets as sent (decision 0003), but not empty and
	 * without NUL, which no stored password can hold. */
	if (input.len == 0 || input.len > SASL_PASSWORD_MAX || span_has_byte(input, '\0'))
		return sasl_exchange_finish(x, SASL_STEP_MALFORMED, out);
	memcpy(x->password, input.ptr, input.len);
	x->password[input.len] = '\0';
	x->password_len = input.len;
	return sasl_exchange_finish(x, SASL_STEP_CHECK_PASSWORD, out);
}
