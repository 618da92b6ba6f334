/*
 * commands: the POP3 command table (RFC 1939 4-7, RFC 2449 5, RFC 2595 4,
 * RFC 5034 4) and the handlers of the commands that need no I/O of their
 * own. The dispatcher enforces each row (state, argument count) once;
 * handlers return a reply that session.c writes.
 */
#include "pop3/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

#define IN(state)     (1u << (state))
#define AUTHORIZATION IN(POP3_STATE_AUTHORIZATION)
#define TRANSACTION   IN(POP3_STATE_TRANSACTION)
#define ANY_STATE     (AUTHORIZATION | TRANSACTION)

typedef struct pop3_reply pop3_handler_fn(struct pop3_session *s, const struct pop3_command *c);

struct pop3_command_row {
	const char *keyword;
	unsigned accepted_in;
	unsigned char min_args, max_args;
	bool takes_rest; /* PASS: the whole rest of the line, spaces and all */
	pop3_handler_fn *handle;
	const char *syntax; /* the -ERR text for a wrong argument count */
};

static struct pop3_reply do_capa(struct pop3_session *s, const struct pop3_command *c);
static struct pop3_reply do_stls(struct pop3_session *s, const struct pop3_command *c);
static struct pop3_reply do_user(struct pop3_session *s, const struct pop3_command *c);
static struct pop3_reply do_pass(struct pop3_session *s, const struct pop3_command *c);
static struct pop3_reply do_auth(struct pop3_session *s, const struct pop3_command *c);
static struct pop3_reply do_quit(struct pop3_session *s, const struct pop3_command *c);
static struct pop3_reply do_stat(struct pop3_session *s, const struct pop3_command *c);
static struct pop3_reply do_list(struct pop3_session *s, const struct pop3_command *c);
static struct pop3_reply do_retr(struct pop3_session *s, const struct pop3_command *c);
static struct pop3_reply do_top(struct pop3_session *s, const struct pop3_command *c);
static struct pop3_reply do_dele(struct pop3_session *s, const struct pop3_command *c);
static struct pop3_reply do_noop(struct pop3_session *s, const struct pop3_command *c);
static struct pop3_reply do_rset(struct pop3_session *s, const struct pop3_command *c);
static struct pop3_reply do_uidl(struct pop3_session *s, const struct pop3_command *c);
static struct pop3_reply do_apop(struct pop3_session *s, const struct pop3_command *c);

// clang-format off
static const struct pop3_command_row pop3_commands[] = {
	/* keyword  accepted in     args  rest   handler   syntax */
	{ "CAPA",   ANY_STATE,      0, 0, false, do_capa,  "Syntax: CAPA" },
	{ "STLS",   AUTHORIZATION,  0, 0, false, do_stls,  "Syntax: STLS" },
	{ "USER",   AUTHORIZATION,  1, 1, false, do_user,  "Syntax: USER name" },
	{ "PASS",   AUTHORIZATION,  0, 0, true,  do_pass,  "Syntax: PASS password" },
	{ "AUTH",   AUTHORIZATION,  0, 2, false, do_auth,  "Syntax: AUTH mechanism [initial-response]" },
	{ "APOP",   AUTHORIZATION,  2, 2, false, do_apop,  "Syntax: APOP name digest" },
	{ "QUIT",   ANY_STATE,      0, 0, false, do_quit,  "Syntax: QUIT" },
	{ "STAT",   TRANSACTION,    0, 0, false, do_stat,  "Syntax: STAT" },
	{ "LIST",   TRANSACTION,    0, 1, false, do_list,  "Syntax: LIST [msg]" },
	{ "RETR",   TRANSACTION,    1, 1, false, do_retr,  "Syntax: RETR msg" },
	{ "DELE",   TRANSACTION,    1, 1, false, do_dele,  "Syntax: DELE msg" },
	{ "NOOP",   TRANSACTION,    0, 0, false, do_noop,  "Syntax: NOOP" },
	{ "RSET",   TRANSACTION,    0, 0, false, do_rset,  "Syntax: RSET" },
	{ "TOP",    TRANSACTION,    2, 2, false, do_top,   "Syntax: TOP msg n" },
	{ "UIDL",   TRANSACTION,    0, 1, false, do_uidl,  "Syntax: UIDL [msg]" },
};
// clang-format on

_Static_assert(ARRAY_LEN(pop3_commands) <= 16, "command_counts holds 16");

size_t pop3_command_count(void)
{
	return ARRAY_LEN(pop3_commands);
}

const char *pop3_command_name(size_t index)
{
	return pop3_commands[index].keyword;
}

static struct pop3_reply parse_refusal(enum pop3_parse_result result)
{
	switch (result) {
	case POP3_PARSE_EMPTY:
		return POP3_BAD("Empty command");
	case POP3_PARSE_HAS_NUL:
		return POP3_BAD("NUL bytes are not allowed in commands");
	case POP3_PARSE_HAS_CONTROL:
		return POP3_BAD("Control characters are not allowed in commands");
	case POP3_PARSE_BAD_KEYWORD:
	case POP3_PARSE_OK:
		break;
	}
	return POP3_BAD("Unknown command");
}

struct pop3_reply pop3_command_dispatch(struct pop3_session *s, struct span line)
{
	struct pop3_command command;
	enum pop3_parse_result result = pop3_command_parse(line, &command);
	const struct pop3_command_row *row = NULL;
	bool is_user_kept;
	struct pop3_reply reply;

	if (result != POP3_PARSE_OK)
		return parse_refusal(result);
	for (size_t i = 0; i < ARRAY_LEN(pop3_commands) && row == NULL; i++)
		if (span_eq_cstr_nocase(command.keyword, pop3_commands[i].keyword))
			row = &pop3_commands[i];
	/* RFC 1939 7: PASS only right after USER; anything else forgets it. */
	is_user_kept = row != NULL && strcmp(row->keyword, "PASS") == 0;
	if (!is_user_kept)
		s->has_user = false;
	if (row == NULL)
		return POP3_BAD("Unknown command");
	if (!(row->accepted_in & IN(s->state)))
		return POP3_BAD(s->state == POP3_STATE_AUTHORIZATION
					? "Not logged in"
					: "Command not valid in the TRANSACTION state");
	if (!row->takes_rest && (command.arg_count < row->min_args ||
				 command.arg_count > row->max_args || command.has_extra_args))
		return POP3_BAD(row->syntax);
	s->command_counts[row - pop3_commands]++;
	reply = row->handle(s, &command);
	return reply;
}

/* ---- handlers ---------------------------------------------------------- */

static struct pop3_reply do_capa(struct pop3_session *s, const struct pop3_command *c)
{
	char mechanisms[256];

	(void) c;
	/* RFC 2449 5, 6: what a client may use now. Logins and STLS only
	 * before logging in; USER and the plaintext mechanisms only where a
	 * password may travel (TLS, or a legacy listener that allows it). */
	pop3_session_reply(s, POP3_OK("Capability list follows"));
	pop3_session_line(s, "TOP");
	pop3_session_line(s, "UIDL");
	if (s->state == POP3_STATE_AUTHORIZATION) {
		if (pop3_auth_is_plaintext_ok(s))
			pop3_session_line(s, "USER");
		pop3_auth_mechanisms(s, mechanisms, sizeof(mechanisms));
		if (mechanisms[0] != '\0' && s->server->auth != NULL)
			pop3_session_line(s, "SASL %s", mechanisms);
		if (s->is_stls_offered && !s->is_tls)
			pop3_session_line(s, "STLS");
	}
	pop3_session_line(s, "RESP-CODES");
	pop3_session_line(s, "AUTH-RESP-CODE");
	pop3_session_line(s, "PIPELINING");
	pop3_session_line(s, "IMPLEMENTATION postgate");
	pop3_session_line(s, ".");
	return POP3_LATER;
}

static struct pop3_reply do_stls(struct pop3_session *s, const struct pop3_command *c)
{
	(void) c;
	if (s->is_tls)
		return POP3_BAD("Already using TLS");
	if (!s->is_stls_offered)
		return POP3_BAD("STLS is not offered here");
	pop3_session_reply(s, POP3_OK("Begin TLS negotiation"));
	pop3_session_start_tls(s);
	return POP3_LATER;
}

static struct pop3_reply do_user(struct pop3_session *s, const struct pop3_command *c)
{
	return pop3_auth_user(s, c->args[0]);
}

static struct pop3_reply do_pass(struct pop3_session *s, const struct pop3_command *c)
{
	return pop3_auth_pass(s, c->rest);
}

static struct pop3_reply do_auth(struct pop3_session *s, const struct pop3_command *c)
{
	return pop3_auth_start(s, c);
}

static struct pop3_reply do_apop(struct pop3_session *s, const struct pop3_command *c)
{
	return pop3_auth_apop(s, c->args[0], c->args[1]);
}

static struct pop3_reply do_quit(struct pop3_session *s, const struct pop3_command *c)
{
	(void) c;
	/* RFC 1939 6: QUIT in TRANSACTION enters UPDATE; in AUTHORIZATION
	 * there is nothing to update. */
	if (s->state == POP3_STATE_TRANSACTION) {
		pop3_session_update(s);
		return POP3_LATER;
	}
	snprintf(s->reply_text, sizeof(s->reply_text), "%s POP3 server signing off",
		 pop3_session_name(s));
	return (struct pop3_reply){ .is_ok = true, .text = s->reply_text, .closes = true };
}

/* The messages not marked deleted (RFC 1939 5: deleted ones are not
 * counted). */
static void visible_totals(const struct pop3_session *s, size_t *count_out, uint64_t *size_out)
{
	*count_out = 0;
	*size_out = 0;
	for (size_t i = 0; i < s->drop->count; i++) {
		if (s->drop->messages[i].is_deleted)
			continue;
		(*count_out)++;
		*size_out += s->drop->messages[i].size;
	}
}

static struct pop3_reply do_stat(struct pop3_session *s, const struct pop3_command *c)
{
	size_t count;
	uint64_t size;

	(void) c;
	visible_totals(s, &count, &size);
	snprintf(s->reply_text, sizeof(s->reply_text), "%zu %" PRIu64, count, size);
	return POP3_OK(s->reply_text);
}

/* A message number argument that names a message not marked deleted. */
static bool message_arg(struct pop3_session *s, struct span arg, size_t *index_out,
			struct pop3_reply *refusal_out)
{
	if (!pop3_message_number_parse(arg, s->drop->count, index_out)) {
		*refusal_out = POP3_BAD("No such message");
		return false;
	}
	if (s->drop->messages[*index_out].is_deleted) {
		*refusal_out = POP3_BAD("Message is deleted");
		return false;
	}
	return true;
}

static struct pop3_reply do_list(struct pop3_session *s, const struct pop3_command *c)
{
	struct pop3_reply refusal;
	size_t index, count;
	uint64_t size;

	if (c->arg_count == 1) {
		if (!message_arg(s, c->args[0], &index, &refusal))
			return refusal;
		snprintf(s->reply_text, sizeof(s->reply_text), "%zu %" PRIu64, index + 1,
			 s->drop->messages[index].size);
		return POP3_OK(s->reply_text);
	}
	visible_totals(s, &count, &size);
	snprintf(s->reply_text, sizeof(s->reply_text), "%zu messages (%" PRIu64 " octets)", count,
		 size);
	pop3_session_reply(s, POP3_OK(s->reply_text));
	pop3_session_send_listing(s, false);
	return POP3_LATER;
}

static struct pop3_reply do_uidl(struct pop3_session *s, const struct pop3_command *c)
{
	struct pop3_reply refusal;
	size_t index;

	if (c->arg_count == 1) {
		if (!message_arg(s, c->args[0], &index, &refusal))
			return refusal;
		snprintf(s->reply_text, sizeof(s->reply_text), "%zu %s", index + 1,
			 mailbox_pop_uid(s->drop, index));
		return POP3_OK(s->reply_text);
	}
	pop3_session_reply(s, POP3_OK("Unique-ID listing follows"));
	pop3_session_send_listing(s, true);
	return POP3_LATER;
}

static struct pop3_reply do_retr(struct pop3_session *s, const struct pop3_command *c)
{
	struct pop3_reply refusal;
	size_t index;

	if (!message_arg(s, c->args[0], &index, &refusal))
		return refusal;
	pop3_session_send_message(s, index, true, 0);
	return POP3_LATER;
}

static struct pop3_reply do_top(struct pop3_session *s, const struct pop3_command *c)
{
	struct pop3_reply refusal;
	size_t index;
	uint64_t lines;

	if (!message_arg(s, c->args[0], &index, &refusal))
		return refusal;
	if (!pop3_line_count_parse(c->args[1], &lines))
		return POP3_BAD("Syntax: TOP msg n (n a number of lines)");
	pop3_session_send_message(s, index, false, lines);
	return POP3_LATER;
}

static struct pop3_reply do_dele(struct pop3_session *s, const struct pop3_command *c)
{
	struct pop3_reply refusal;
	size_t index;

	if (!message_arg(s, c->args[0], &index, &refusal))
		return refusal;
	/* Only marked: the file goes at QUIT (RFC 1939 6), never before. */
	s->drop->messages[index].is_deleted = true;
	snprintf(s->reply_text, sizeof(s->reply_text), "Message %zu deleted", index + 1);
	return POP3_OK(s->reply_text);
}

static struct pop3_reply do_noop(struct pop3_session *s, const struct pop3_command *c)
{
	(void) s;
	(void) c;
	return POP3_OK("");
}

static struct pop3_reply do_rset(struct pop3_session *s, const struct pop3_command *c)
{
	size_t count;
	uint64_t size;

	(void) c;
	for (size_t i = 0; i < s->drop->count; i++)
		s->drop->messages[i].is_deleted = false;
	visible_totals(s, &count, &size);
	snprintf(s->reply_text, sizeof(s->reply_text),
		 "Maildrop has %zu messages (%" PRIu64 " octets)", count, size);
	return POP3_OK(s->reply_text);
}
