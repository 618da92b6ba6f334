/*
 * pop3/internal.h: what the POP3 server's files share (session.c does I/O
 * and worker jobs, commands.c the command table and handlers, auth.c USER,
 * PASS and AUTH). Not included outside src/pop3/.
 */
#ifndef POSTGATE_POP3_INTERNAL_H
#define POSTGATE_POP3_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/span.h"
#include "mailbox/pop.h"
#include "pop3/encode.h"
#include "pop3/limits.h"
#include "pop3/parse.h"
#include "pop3/server.h"
#include "sasl/sasl.h"
#include "tls/context.h"

#define POP3_READ_CHUNK	       (64 * 1024)  /* bytes of a message file per worker read */
#define POP3_INPUT_HIGH_WATER  (64 * 1024)  /* stop reading the socket past this */
#define POP3_OUTPUT_HIGH_WATER (256 * 1024) /* stop producing output past this */
#define POP3_OUTPUT_LOW_WATER  (64 * 1024)  /* ...and go on below this */
#define POP3_LIST_BATCH	       256	    /* scan listing lines written per turn */
#define POP3_REPLY_TEXT_MAX    (SASL_CHALLENGE_ENCODED_MAX + 64)

enum pop3_state {
	POP3_STATE_AUTHORIZATION = 0,
	POP3_STATE_TRANSACTION,
	POP3_STATE_COUNT,
};

enum pop3_input_mode {
	POP3_INPUT_COMMAND,	 /* CRLF-terminated command lines */
	POP3_INPUT_DISCARD_LINE, /* an over-long line: drop through its LF */
	POP3_INPUT_AUTH,	 /* an AUTH exchange's response lines (RFC 5034 4) */
};

/*
 * A reply a handler returns; one place writes it. is_later: the handler
 * queued work and the reply (or a multi-line response) comes later.
 * is_bad: a client mistake, counted towards POP3_ERRORS_MAX. code: the RFC
 * 2449 8 / RFC 3206 response code without brackets, or NULL. text: a
 * "+ " continuation's base64 when is_continue.
 */
struct pop3_reply {
	bool is_ok;
	bool is_later;
	bool is_bad;
	bool is_continue;
	bool closes;
	const char *code;
	const char *text;
};

#define POP3_OK(t)	 ((struct pop3_reply){ .is_ok = true, .text = (t) })
#define POP3_ERR(c, t)	 ((struct pop3_reply){ .code = (c), .text = (t) })
#define POP3_BAD(t)	 ((struct pop3_reply){ .is_bad = true, .text = (t) })
#define POP3_CLOSE(c, t) ((struct pop3_reply){ .code = (c), .text = (t), .closes = true })
#define POP3_CONTINUE(t) ((struct pop3_reply){ .is_continue = true, .text = (t) })
#define POP3_LATER	 ((struct pop3_reply){ .is_later = true })

struct pop3_job;

#define POP3_APOP_TIMESTAMP_MAX 320 /* "<", 40 digits, "@", a host name, ">" */

struct pop3_session {
	struct pop3_server *server;
	struct bufferevent *bev; /* NULL once the daemon stopped us */
	char sid[32];
	char client_ip[64];
	char listener[16];
	pop3_session_close_fn *close;
	void *close_ctx;
	pop3_start_tls_fn *start_tls;

	enum pop3_state state;
	enum pop3_input_mode input_mode;
	bool is_tls; /* after STLS, or on pop3s */
	bool is_stls_offered;
	bool is_plaintext_auth_allowed;
	bool is_cram_md5_offered; /* the listener's cram_md5, every account ready */
	/* APOP (RFC 1939 7): offered when the greeting carried this timestamp
	 * ("<pid.random@hostname>"); "" when not offered. */
	char apop_timestamp[POP3_APOP_TIMESTAMP_MAX];
	char apop_digest[33]; /* the client's, while its secret is fetched */
	bool is_apop_offered;
	bool is_greeted; /* the +OK greeting is out (pop3s: after the handshake) */
	/* The server name the client asked for by SNI, when our certificate
	 * covers it: the name we introduce ourselves with; "" for hostname. */
	char server_name[TLS_NAME_MAX + 1];
	bool is_upgrading;	/* +OK to STLS written: upgrade once it is flushed */
	bool is_handshake_done; /* the TLS handshake completed (when is_tls) */
	bool is_quitting;	/* reply written; close once flushed */
	bool is_stopped;	/* the daemon ended the session */
	bool is_draining;	/* shutting down */
	bool is_eof;		/* the client half-closed: serve what it sent, then close */
	struct pop3_job *job;	/* the worker job out, if any */

	/* Logins (auth.c) */
	char user[SASL_USERNAME_MAX + 1]; /* USER's argument, until PASS */
	bool has_user;
	struct sasl_exchange *sasl;
	enum sasl_mechanism sasl_mechanism;
	const char *login_mechanism; /* for logs: "USER" or a SASL name */
	uint64_t auth_ticket;	     /* a call out to the auth service; 0: none */
	bool is_auth_waiting;	     /* read nothing until the auth service answers */
	bool is_scram_reporting;
	unsigned char scram_final[SASL_CHALLENGE_MAX];
	size_t scram_final_len;
	unsigned auth_failures;
	char auth_user[SASL_USERNAME_MAX + 1]; /* the canonical user, once verified */

	/* TRANSACTION */
	struct mailbox_pop_drop *drop;

	/* RETR / TOP being sent (session.c) */
	bool is_streaming;
	bool is_stream_retr; /* RETR: the message counts as retrieved when sent */
	size_t stream_index;
	int stream_fd;
	uint64_t stream_offset;
	struct pop3_encoder encoder;
	bool is_stream_waiting; /* for the output to drain before the next read */

	/* LIST / UIDL without an argument being sent */
	bool is_listing;
	bool is_listing_uidl;
	size_t listing_next;

	unsigned errors;
	unsigned command_counts[16];
	char reply_text[POP3_REPLY_TEXT_MAX];
};

/* auth.c */
/* The SASL mechanisms this session may use now, space-separated ("" when
 * none): CAPA's SASL line and the AUTH listing. */
void pop3_auth_mechanisms(const struct pop3_session *s, char *out, size_t cap);
/* USER/PASS may be used now (TLS, or plaintext allowed). */
bool pop3_auth_is_plaintext_ok(const struct pop3_session *s);
struct pop3_reply pop3_auth_user(struct pop3_session *s, struct span name);
struct pop3_reply pop3_auth_pass(struct pop3_session *s, struct span password);
/* APOP name digest (RFC 1939 7), where the greeting offered it. */
struct pop3_reply pop3_auth_apop(struct pop3_session *s, struct span name, struct span digest);
struct pop3_reply pop3_auth_start(struct pop3_session *s, const struct pop3_command *command);
struct pop3_reply pop3_auth_response(struct pop3_session *s, struct span line);
void pop3_auth_end(struct pop3_session *s); /* frees the exchange, cancels a call out */

/* commands.c */
struct pop3_reply pop3_command_dispatch(struct pop3_session *s, struct span line);
size_t pop3_command_count(void);
const char *pop3_command_name(size_t index);

/* session.c */
void pop3_session_reply(struct pop3_session *s, struct pop3_reply reply);
/* The name the server introduces itself with in this session: the SNI
 * name the client asked for (when our certificate covers it), else hostname. */
const char *pop3_session_name(const struct pop3_session *s);
/* Write one line of a multi-line response (CRLF added; the caller has
 * byte-stuffed it if it could start with "."). */
void pop3_session_line(struct pop3_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The credentials are right: open the maildrop of s->auth_user on a
 * worker; the +OK or -ERR follows. */
void pop3_session_open_maildrop(struct pop3_session *s);
/* RETR (is_retr) or TOP of message index: +OK and the message follow. */
void pop3_session_send_message(struct pop3_session *s, size_t index, bool is_retr,
			       uint64_t top_lines);
/* LIST or UIDL of every message: the +OK line is written; lines follow. */
void pop3_session_send_listing(struct pop3_session *s, bool is_uidl);
/* QUIT in TRANSACTION: the UPDATE state on a worker, then the reply. */
void pop3_session_update(struct pop3_session *s);
/* STLS accepted: nothing more is read in plaintext (RFC 2595 4). */
void pop3_session_start_tls(struct pop3_session *s);
/* Carry on with buffered input after an asynchronous answer. */
void pop3_session_resume(struct pop3_session *s);

#endif
