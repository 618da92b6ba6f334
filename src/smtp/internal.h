/*
 * smtp/internal.h: what the SMTP server's files share (session.c does I/O
 * and worker jobs, commands.c the command table and handlers). Not included
 * outside src/smtp/.
 */
#ifndef POSTGATE_SMTP_INTERNAL_H
#define POSTGATE_SMTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "core/span.h"
#include "queue/envelope.h"
#include "sasl/sasl.h"
#include "smtp/data.h"
#include "smtp/limits.h"
#include "smtp/parse.h"
#include "smtp/server.h"
#include "store/recipient.h"
#include "tls/context.h"

#define SMTP_SPOOL_CHUNK       (64 * 1024)  /* bytes handed to a worker per write */
#define SMTP_INPUT_HIGH_WATER  (256 * 1024) /* stop reading the socket past this */
#define SMTP_OUTPUT_HIGH_WATER (64 * 1024)  /* stop reading commands past this */
#define SMTP_TARGETS_MAX       QUEUE_ENVELOPE_RECIPIENTS_MAX
#define SMTP_REPLY_TEXT_MAX    (SASL_CHALLENGE_ENCODED_MAX + 64)
#define SMTP_AUTH_FAILURES_MAX 3 /* failed AUTH commands before we hang up */

enum smtp_state {
	SMTP_STATE_CONNECTED = 0, /* greeting sent, no EHLO/HELO yet */
	SMTP_STATE_GREETED,	  /* no transaction */
	SMTP_STATE_MAIL,	  /* MAIL accepted, no recipient yet */
	SMTP_STATE_RCPT,	  /* at least one RCPT accepted (or refused: see rcpt_count) */
	SMTP_STATE_BDAT,	  /* inside a BDAT transaction, after a chunk without LAST */
	SMTP_STATE_COUNT,
};

enum smtp_input_mode {
	SMTP_INPUT_COMMAND,	 /* CRLF-terminated command lines */
	SMTP_INPUT_DISCARD_LINE, /* an over-long command line: drop through its LF */
	SMTP_INPUT_DATA,	 /* DATA text up to CRLF.CRLF */
	SMTP_INPUT_CHUNK,	 /* the octets of one BDAT chunk */
	SMTP_INPUT_AUTH,	 /* an AUTH exchange's response lines (RFC 4954 4) */
};

/* A reply a handler returns; one place writes it. code 0: the handler queued
 * a worker job and the reply comes later. A text with '\n' is a multi-line
 * reply: each line gets the code (RFC 5321 4.2.1). */
struct smtp_reply {
	int code;
	const char *enhanced; /* RFC 3463, without the code's class repeated elsewhere */
	const char *text;
	bool closes; /* close the connection once it is written */
};

#define REPLY(c, e, t)	     ((struct smtp_reply){ (c), (e), (t), false })
#define REPLY_CLOSE(c, e, t) ((struct smtp_reply){ (c), (e), (t), true })
#define REPLY_LATER	     ((struct smtp_reply){ 0, NULL, NULL, false })

struct smtp_recipient {
	char address[SMTP_ADDRESS_MAX + 1]; /* the forward-path as given */
	unsigned notify;		    /* QUEUE_NOTIFY_* bits, 0: not given */
	char *orcpt; /* heap "addr-type;address", decoded (RFC 3461 4.2); NULL: not given */
};

struct smtp_transaction {
	bool is_active;
	struct smtp_mail_args mail;
	/* Allocated at the first RCPT, freed with the transaction. */
	struct smtp_recipient *recipients; /* accepted ones, up to recipients_cap */
	size_t recipient_count;
	size_t recipients_cap; /* max_recipients when the session started */
	size_t rcpt_refused;
	size_t recipients_room;	      /* allocated entries of recipients */
	struct store_target *targets; /* final addresses after alias expansion */
	size_t *target_recipient;     /* index into recipients for each target */
	size_t target_count;
	size_t targets_room; /* allocated entries of targets and target_recipient */
	bool is_failed;	     /* a BDAT chunk failed: later chunks are refused */
	/* Every target a local mailbox: the message goes straight into the
	 * Maildirs at the end of DATA (delivery_local_direct), not through the
	 * queue. Decided when the spool file is begun; the file then starts with
	 * direct_prefix_len octets of trace headers for targets[0]. */
	bool is_direct;
	size_t direct_prefix_len;
};

struct smtp_job;

struct smtp_session {
	struct smtp_server *server;
	struct bufferevent *bev; /* NULL once the daemon stopped us */
	char sid[32];
	char client_ip[64];
	uint16_t client_port;
	char listener[16];
	smtp_session_close_fn *close;
	void *close_ctx;

	enum smtp_state state;
	enum smtp_input_mode input_mode;
	bool is_esmtp;
	char helo[SMTP_HELO_MAX + 1];
	bool is_authenticated; /* set by SMTP AUTH; relaying needs it */
	bool is_local;	       /* local submission: authenticated as "local:<user>" */
	bool is_tls;	       /* after STARTTLS (or on an implicit-TLS listener) */
	bool is_starttls_offered;
	bool is_upgrading;	/* 220 to STARTTLS written: upgrade once it is flushed */
	bool is_handshake_done; /* the TLS handshake completed (when is_tls) */
	bool is_greeted;	/* the 220 is out (implicit TLS: after the handshake) */
	/* The server name the client asked for by SNI, when our certificate
	 * covers it: the name we introduce ourselves with; "" for hostname. */
	char server_name[TLS_NAME_MAX + 1];
	smtp_start_tls_fn *start_tls;
	bool is_quitting;     /* reply written; close once flushed */
	bool is_stopped;      /* the daemon ended the session */
	bool is_draining;     /* shutting down: 421 at the next clean point */
	bool is_eof;	      /* the client half-closed: serve what it sent, then close */
	struct smtp_job *job; /* the worker job out, if any */

	/* SMTP AUTH (auth.c) */
	bool is_auth_required;
	bool is_plaintext_auth_allowed;
	bool is_cram_md5_offered; /* the listener's cram_md5, every account ready */
	struct sasl_exchange *sasl;
	enum sasl_mechanism sasl_mechanism;
	uint64_t auth_ticket; /* a call out to the auth service; 0: none */
	bool is_auth_waiting; /* read nothing until the auth service answers */
	bool is_scram_reporting;
	unsigned char scram_final[SASL_CHALLENGE_MAX]; /* "v=..." until the verdict */
	size_t scram_final_len;
	unsigned auth_failures;
	char auth_user[SMTP_ADDRESS_MAX + 1];

	struct smtp_transaction tx;

	/* The message being received. */
	struct queue_message *message;
	char queue_id[64];
	struct evbuffer *body; /* decoded bytes not yet handed to a worker */
	uint64_t body_bytes;   /* all decoded bytes of this message */
	struct smtp_data_decoder decoder;
	struct smtp_crlf_checker chunk_checker;
	uint64_t chunk_remaining; /* octets of the current BDAT chunk still to read */
	uint64_t chunk_size;
	bool chunk_is_last;
	bool chunk_refused; /* the chunk is read only to stay in step */
	struct smtp_reply chunk_reply;
	bool spool_failed; /* a write failed: the message is lost, answer 4xx at its end */

	unsigned errors;
	unsigned commands; /* command lines read, for max_commands */
	/* Bounds in time (config: command_timeout, max_session_time): a
	 * command line must be whole within command_timeout of its first
	 * byte (a client sending a byte a second is cut off), and no session
	 * outlives max_session_time. */
	struct event *line_timer;
	bool is_line_timed;
	struct event *life_timer;
	/* The authenticated user's sending limits, resolved at MAIL. */
	struct auth_rate_limits limits;
	bool has_limits;
	unsigned command_counts[32];
	char reply_text[SMTP_REPLY_TEXT_MAX];
};

/* auth.c */
/* EHLO's AUTH keyword line ("PLAIN LOGIN SCRAM-SHA-256"), "" when AUTH is
 * not offered in this session now. */
void smtp_auth_mechanisms(const struct smtp_session *s, char *out, size_t cap);
struct smtp_reply smtp_auth_start(struct smtp_session *s, struct span args);
struct smtp_reply smtp_auth_response(struct smtp_session *s, struct span line);
void smtp_auth_end(struct smtp_session *s); /* frees the exchange, cancels a call out */

/* commands.c */
struct smtp_reply smtp_command_dispatch(struct smtp_session *s, struct span line);
/* The verbs, for the disconnect log line's counters. */
size_t smtp_command_count(void);
const char *smtp_command_name(size_t index);
void smtp_transaction_reset(struct smtp_session *s);
/* Room in the recipient arrays of a transaction for one more RCPT; false
 * when memory is short. They grow as recipients come (a message to one
 * recipient allocates little), up to recipients_cap and SMTP_TARGETS_MAX. */
bool smtp_transaction_arrays(struct smtp_session *s);
/* MAIL from an authenticated session: is the reverse-path the user's own
 * address or an alias it owns? Answers 250 or 553 when the look-up returns. */
void smtp_session_check_sender(struct smtp_session *s);
/* Carry on with buffered input after an asynchronous answer (auth.c). */
void smtp_session_resume(struct smtp_session *s);

/* session.c */
void smtp_session_reply(struct smtp_session *s, struct smtp_reply reply);

/* Count messages (MAIL) or recipients (RCPT) against the authenticated
 * user's sending limits: true when within them; else the 450/452 reply is
 * written (and a burst puts the user on hold) and false. */
bool smtp_session_rate_take(struct smtp_session *s, unsigned messages, unsigned recipients);
/* The limits of the configuration. */
void smtp_server_rate_limits(const struct config *config, struct auth_rate_limits *out);
/* Put user on a sending hold in the store (a worker job), logging why. */
void smtp_server_hold_user(struct smtp_server *server, const char *user, const char *reason);
/* The name the server introduces itself with in this session: the SNI name
 * the client asked for (when covered by our certificate), else hostname. */
const char *smtp_session_name(const struct smtp_session *s);
/* Queue a recipient look-up; the reply is written when it returns. */
void smtp_session_lookup_rcpt(struct smtp_session *s, const struct smtp_rcpt_args *rcpt,
			      const char *address);
/* Start receiving a message: DATA (is_bdat false) or a first BDAT chunk. */
void smtp_session_begin_message(struct smtp_session *s, bool is_bdat);
/* A BDAT command for the current message. */
/* STARTTLS accepted: nothing more is read in plaintext; the upgrade follows
 * once the reply is flushed (RFC 3207 4.2). */
void smtp_session_start_tls(struct smtp_session *s);
void smtp_session_begin_chunk(struct smtp_session *s, uint64_t size, bool is_last, bool is_refused,
			      struct smtp_reply refusal);

#endif
