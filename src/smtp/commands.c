/*
 * commands: the SMTP command table and its handlers (RFC 5321 4.1). The
 * table says which states accept each verb; the dispatcher enforces it once;
 * handlers do their own work and return a reply (or REPLY_LATER when a worker
 * job will answer). session.c writes every reply.
 */
#include "smtp/internal.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"

typedef struct smtp_reply smtp_handler_fn(struct smtp_session *s, struct span args);

struct smtp_command {
	const char *verb;
	unsigned accepted_in; /* IN(state) bits */
	smtp_handler_fn *handle;
};

#define IN(state) (1u << (state))
#define ANY_STATE ((1u << SMTP_STATE_COUNT) - 1)

static smtp_handler_fn do_auth, do_starttls, do_ehlo, do_helo, do_mail, do_rcpt, do_data, do_bdat,
	do_rset, do_noop, do_quit, do_vrfy, do_expn, do_help;

// clang-format off
static const struct smtp_command smtp_commands[] = {
	/* verb     accepted in                                  handler */
	{ "EHLO",   ANY_STATE,                                   do_ehlo },
	{ "HELO",   ANY_STATE,                                   do_helo },
	{ "STARTTLS", IN(SMTP_STATE_CONNECTED) | IN(SMTP_STATE_GREETED), do_starttls },
	{ "AUTH",   IN(SMTP_STATE_GREETED),                      do_auth },
	{ "MAIL",   IN(SMTP_STATE_GREETED),                      do_mail },
	{ "RCPT",   IN(SMTP_STATE_MAIL) | IN(SMTP_STATE_RCPT),   do_rcpt },
	{ "DATA",   IN(SMTP_STATE_MAIL) | IN(SMTP_STATE_RCPT),   do_data },
	/* BDAT is read in every state: its octets must be consumed to stay in step. */
	{ "BDAT",   ANY_STATE,                                   do_bdat },
	{ "RSET",   ANY_STATE,                                   do_rset },
	{ "NOOP",   ANY_STATE,                                   do_noop },
	{ "QUIT",   ANY_STATE,                                   do_quit },
	{ "VRFY",   ANY_STATE,                                   do_vrfy },
	{ "EXPN",   ANY_STATE,                                   do_expn },
	{ "HELP",   ANY_STATE,                                   do_help },
};
// clang-format on

size_t smtp_command_count(void)
{
	return ARRAY_LEN(smtp_commands);
}

const char *smtp_command_name(size_t index)
{
	return smtp_commands[index].verb;
}

static const struct smtp_command *command_find(struct span verb)
{
	for (size_t i = 0; i < ARRAY_LEN(smtp_commands); i++)
		if (span_eq_cstr_nocase(verb, smtp_commands[i].verb))
			return &smtp_commands[i];
	return NULL;
}

struct smtp_reply smtp_command_dispatch(struct smtp_session *s, struct span line)
{
	struct span verb, args;
	const struct smtp_command *cmd;

	smtp_command_split(line, &verb, &args);
	if ((cmd = command_find(verb)) == NULL)
		return REPLY(500, "5.5.2", "Command not recognized");
	s->command_counts[cmd - smtp_commands]++;
	if (!(cmd->accepted_in & IN(s->state))) {
		if (s->state == SMTP_STATE_CONNECTED)
			return REPLY(503, "5.5.1", "Bad sequence of commands: send EHLO first");
		if (s->state == SMTP_STATE_BDAT)
			return REPLY(503, "5.5.1", "Bad sequence of commands: BDAT expected");
		if (span_eq_cstr_nocase(verb, "MAIL"))
			return REPLY(503, "5.5.1", "Bad sequence of commands: nested MAIL");
		if (span_eq_cstr_nocase(verb, "STARTTLS"))
			return REPLY(503, "5.5.1",
				     "Bad sequence of commands: not inside a transaction");
		return REPLY(503, "5.5.1", "Bad sequence of commands: send MAIL first");
	}
	return cmd->handle(s, args);
}

static struct smtp_reply greet(struct smtp_session *s, struct span args, bool is_esmtp)
{
	const struct config *config = s->server->config;

	if (!smtp_helo_parse(args, s->helo, sizeof(s->helo)))
		return is_esmtp ? REPLY(501, "5.5.4", "Syntax: EHLO hostname")
				: REPLY(501, "5.5.4", "Syntax: HELO hostname");
	/* A later EHLO or HELO resets the session as RSET would (RFC 5321 4.1.4). */
	smtp_transaction_reset(s);
	s->state = SMTP_STATE_GREETED;
	s->is_esmtp = is_esmtp;
	if (!is_esmtp) {
		snprintf(s->reply_text, sizeof(s->reply_text), "%s", smtp_session_name(s));
		return REPLY(250, NULL, s->reply_text);
	}
	/* No enhanced code on EHLO lines: the keywords must stand alone
	 * (RFC 2034 3 exempts the EHLO response). */
	{
		char mechanisms[128];

		smtp_auth_mechanisms(s, mechanisms, sizeof(mechanisms));
		/* AUTH= too: Outlook Express, Outlook up to 2003 and Netscape 6
		 * look for the pre-RFC form (CLIENTS.md). */
		snprintf(s->reply_text, sizeof(s->reply_text),
			 "%s\nPIPELINING\nSIZE %llu\n8BITMIME\nENHANCEDSTATUSCODES\nSMTPUTF8\n"
			 "CHUNKING\nDSN%s%s%s%s%s",
			 smtp_session_name(s), (unsigned long long) config->max_message_size,
			 s->is_starttls_offered && !s->is_tls ? "\nSTARTTLS" : "",
			 mechanisms[0] ? "\nAUTH " : "", mechanisms, mechanisms[0] ? "\nAUTH=" : "",
			 mechanisms);
	}
	return REPLY(250, NULL, s->reply_text);
}

static struct smtp_reply do_ehlo(struct smtp_session *s, struct span args)
{
	return greet(s, args, true);
}

static struct smtp_reply do_helo(struct smtp_session *s, struct span args)
{
	return greet(s, args, false);
}

static struct smtp_reply do_auth(struct smtp_session *s, struct span args)
{
	return smtp_auth_start(s, args);
}

static struct smtp_reply do_starttls(struct smtp_session *s, struct span args)
{
	if (!s->is_starttls_offered || s->is_tls)
		return s->is_tls ? REPLY(503, "5.5.1", "TLS already active")
				 : REPLY(502, "5.5.1", "STARTTLS is not offered here");
	if (args.len > 0)
		return REPLY(501, "5.5.4", "Syntax: STARTTLS");
	smtp_session_start_tls(s);
	return REPLY(220, "2.0.0", "Ready to start TLS");
}

static struct smtp_reply do_mail(struct smtp_session *s, struct span args)
{
	struct smtp_mail_args *mail = &s->tx.mail;

	switch (smtp_mail_parse(args, mail)) {
	case SMTP_ARGS_OK:
		break;
	case SMTP_ARGS_SYNTAX:
		return REPLY(501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]");
	case SMTP_ARGS_UNKNOWN_PARAM:
		return REPLY(555, "5.5.4", "MAIL parameter not recognized");
	case SMTP_ARGS_BAD_PARAM_VALUE:
		return REPLY(501, "5.5.4", "Bad MAIL parameter value");
	case SMTP_ARGS_TOO_LONG:
		return REPLY(501, "5.1.7", "Path too long");
	case SMTP_ARGS_NEEDS_SMTPUTF8:
		/* RFC 6531 3.5: 550 at MAIL, 553 at RCPT. */
		return REPLY(550, "5.6.7", "Non-ASCII address needs the SMTPUTF8 parameter");
	}
	/* The DSN parameters (RFC 3461 4.3, 4.4) are taken only after EHLO,
	 * where DSN was advertised, like every other extension's. */
	if (!s->is_esmtp &&
	    (mail->has_size || mail->body != SMTP_BODY_UNSPECIFIED || mail->is_smtputf8 ||
	     mail->has_auth || mail->has_envid || mail->ret != SMTP_RET_UNSPECIFIED))
		return REPLY(555, "5.5.4", "MAIL parameters need EHLO");
	if (mail->body == SMTP_BODY_BINARYMIME)
		return REPLY(555, "5.5.4", "BODY=BINARYMIME is not supported here");
	if (mail->has_size && mail->size > s->server->config->max_message_size)
		return REPLY(552, "5.3.4", "Message size exceeds fixed maximum message size");
	if (s->is_auth_required && !s->is_authenticated)
		return REPLY(530, "5.7.0", "Authentication required");
	if (!s->is_authenticated) {
		s->tx.is_active = true;
		s->state = SMTP_STATE_MAIL;
		return REPLY(250, "2.1.0", "Ok");
	}
	/* An authenticated user sends only as an address it owns; a local user
	 * (sendmail -f, docs/sendmail.md) as any, being named in the trace. */
	if (mail->reverse_path.is_null && s->is_auth_required)
		return REPLY(553, "5.7.1", "The null sender is not allowed here");
	if (mail->reverse_path.is_null || s->is_local) {
		s->tx.is_active = true;
		s->state = SMTP_STATE_MAIL;
		return REPLY(250, "2.1.0", "Ok");
	}
	smtp_session_check_sender(s);
	return REPLY_LATER;
}

static struct smtp_reply do_rcpt(struct smtp_session *s, struct span args)
{
	struct smtp_rcpt_args rcpt;
	char address[SMTP_ADDRESS_MAX + 16];

	if (s->tx.recipient_count >= s->tx.recipients_cap)
		return REPLY(452, "4.5.3", "Too many recipients");
	if (!smtp_transaction_arrays(s))
		return REPLY(452, "4.3.1", "Insufficient system resources");
	switch (smtp_rcpt_parse(args, s->tx.mail.is_smtputf8, &rcpt)) {
	case SMTP_ARGS_OK:
		break;
	case SMTP_ARGS_SYNTAX:
		return REPLY(501, "5.1.3", "Syntax: RCPT TO:<address> [parameters]");
	case SMTP_ARGS_UNKNOWN_PARAM:
		return REPLY(555, "5.5.4", "RCPT parameter not recognized");
	case SMTP_ARGS_BAD_PARAM_VALUE:
		return REPLY(501, "5.5.4", "Bad RCPT parameter value");
	case SMTP_ARGS_TOO_LONG:
		return REPLY(501, "5.1.3", "Path too long");
	case SMTP_ARGS_NEEDS_SMTPUTF8:
		return REPLY(553, "5.6.7", "Non-ASCII address needs SMTPUTF8 on MAIL");
	}
	/* NOTIFY and ORCPT (RFC 3461 4.1, 4.2) travel into the envelope. */
	if (!s->is_esmtp && (rcpt.notify != 0 || rcpt.has_orcpt))
		return REPLY(555, "5.5.4", "RCPT parameters need EHLO");
	if (rcpt.forward_path.is_postmaster) {
		/* RFC 5321 4.5.1: <Postmaster> must always be accepted; it is
		 * the postmaster of the domain this server is named in. */
		const char *dot = strchr(s->server->config->hostname, '.');

		snprintf(address, sizeof(address), "postmaster@%s",
			 dot ? dot + 1 : s->server->config->hostname);
	} else {
		snprintf(address, sizeof(address), "%s@%s", rcpt.forward_path.local_unquoted,
			 rcpt.forward_path.domain);
	}
	smtp_session_lookup_rcpt(s, &rcpt, address);
	return REPLY_LATER;
}

static struct smtp_reply no_recipients(struct smtp_session *s)
{
	(void) s;
	return REPLY(554, "5.5.1", "No valid recipients");
}

static struct smtp_reply do_data(struct smtp_session *s, struct span args)
{
	if (args.len > 0)
		return REPLY(501, "5.5.4", "Syntax: DATA");
	if (s->tx.recipient_count == 0)
		return no_recipients(s);
	smtp_session_begin_message(s, false);
	return REPLY_LATER;
}

static struct smtp_reply do_bdat(struct smtp_session *s, struct span args)
{
	uint64_t size;
	bool is_last;

	if (!smtp_bdat_parse(args, &size, &is_last)) {
		/* Without a size we cannot find the next command (RFC 3030 2). */
		return REPLY_CLOSE(501, "5.5.4", "Syntax: BDAT size [LAST]; closing");
	}
	if (!s->is_esmtp)
		smtp_session_begin_chunk(s, size, is_last, true,
					 REPLY(503, "5.5.1", "BDAT needs EHLO"));
	else if (s->state == SMTP_STATE_CONNECTED || s->state == SMTP_STATE_GREETED)
		smtp_session_begin_chunk(
			s, size, is_last, true,
			REPLY(503, "5.5.1", "Bad sequence of commands: send MAIL first"));
	else if (s->tx.recipient_count == 0)
		smtp_session_begin_chunk(s, size, is_last, true, no_recipients(s));
	else if (size > s->server->config->max_message_size ||
		 s->body_bytes > s->server->config->max_message_size - size)
		smtp_session_begin_chunk(
			s, size, is_last, true,
			REPLY(552, "5.3.4", "Message size exceeds fixed maximum message size"));
	else
		smtp_session_begin_chunk(s, size, is_last, false, REPLY_LATER);
	return REPLY_LATER;
}

static struct smtp_reply do_rset(struct smtp_session *s, struct span args)
{
	(void) args;
	smtp_transaction_reset(s);
	return REPLY(250, "2.0.0", "Ok");
}

static struct smtp_reply do_noop(struct smtp_session *s, struct span args)
{
	(void) s;
	(void) args; /* RFC 5321 4.1.1.9: a parameter is allowed and ignored */
	return REPLY(250, "2.0.0", "Ok");
}

static struct smtp_reply do_quit(struct smtp_session *s, struct span args)
{
	(void) s;
	if (args.len > 0)
		return REPLY(501, "5.5.4", "Syntax: QUIT");
	return REPLY_CLOSE(221, "2.0.0", "Bye");
}

static struct smtp_reply do_vrfy(struct smtp_session *s, struct span args)
{
	(void) s;
	(void) args;
	/* RFC 5321 3.5.3: 252 says nothing about whether the user exists, so
	 * VRFY cannot be used to harvest addresses. */
	return REPLY(252, "2.5.0",
		     "Cannot VRFY user, but will accept message and attempt delivery");
}

static struct smtp_reply do_expn(struct smtp_session *s, struct span args)
{
	(void) s;
	(void) args;
	return REPLY(502, "5.5.1", "EXPN is not available");
}

static struct smtp_reply do_help(struct smtp_session *s, struct span args)
{
	(void) s;
	(void) args;
	return REPLY(214, "2.0.0",
		     "Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY "
		     "HELP\n"
		     "See RFC 5321");
}
