/*
 * envelope: the two small text files that sit beside a spooled message —
 * ID.env, the SMTP envelope (RFC 5321 2.3.1: reverse-path, forward-paths and
 * the ESMTP parameters that travel with them), and ID.state, what has become
 * of each recipient so far — and their conversion to and from bytes.
 *
 * Pure: no I/O, no clock, no globals, so the fuzzer and the tests call it
 * directly; src/queue/spool.c reads and writes the files.
 *
 * Both formats are lines ending in LF, the first naming the format and its
 * version, the last "end" (a truncated file never parses). A line is a key,
 * then, when the value is not empty, one space and the value. Every string a
 * client could have chosen is xtext (RFC 3461 4: bytes outside 0x21-0x7E, '+'
 * and '=' written as "+HH", upper-case hex), so no client byte can end a line
 * or start a new key. Keys appear in one fixed order and every escape is
 * canonical, so a file that parses is byte for byte what the serializer
 * writes for the parsed value; anything else (an unknown key, a key out of
 * place or twice, a non-canonical escape, a NUL, a line over
 * QUEUE_ENVELOPE_LINE_MAX, more than QUEUE_ENVELOPE_RECIPIENTS_MAX
 * recipients) is ERROR_DATA naming the line. docs/spool.md shows both
 * formats.
 */
#ifndef POSTGATE_QUEUE_ENVELOPE_H
#define POSTGATE_QUEUE_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/span.h"

#define QUEUE_ENVELOPE_LINE_MAX	      4096 /* bytes, the LF included */
#define QUEUE_ENVELOPE_RECIPIENTS_MAX 1000 /* per message file; RFC 5321 4.5.3.1.8 asks for 100 */
/* Decoded bytes of one string. An address is at most 64 + 1 + 255 octets
 * (RFC 5321 4.5.3.1.1-2), more with SMTPUTF8 (RFC 6531); three times this plus
 * the longest key still fits one line. */
#define QUEUE_ENVELOPE_STRING_MAX 1024

/* The BODY parameter (RFC 6152 for 8BITMIME, RFC 3030 for BINARYMIME). */
enum queue_body_type {
	QUEUE_BODY_7BIT = 0,
	QUEUE_BODY_8BITMIME,
	QUEUE_BODY_BINARYMIME,
};

/* The RET parameter of MAIL (RFC 3461 4.3). */
enum queue_ret {
	QUEUE_RET_NONE = 0, /* not given */
	QUEUE_RET_FULL,
	QUEUE_RET_HDRS,
};

/* The NOTIFY parameter of RCPT (RFC 3461 4.1); 0 means not given. NEVER is
 * never combined with the others. */
#define QUEUE_NOTIFY_SUCCESS 0x1u
#define QUEUE_NOTIFY_FAILURE 0x2u
#define QUEUE_NOTIFY_DELAY   0x4u
#define QUEUE_NOTIFY_NEVER   0x8u

struct queue_recipient {
	char *address;	 /* forward-path without angle brackets, UTF-8 allowed; never NULL */
	char *orcpt;	 /* ORCPT as "addr-type;address", xtext already decoded (RFC 3461
			    4.2); NULL when not given */
	unsigned notify; /* QUEUE_NOTIFY_* bits */
	char *alias;	 /* the address this recipient was expanded from; NULL if none */
};

/*
 * Every string is owned by the envelope (heap, freed by queue_envelope_clear)
 * and holds no NUL byte. Required strings are never NULL once filled; the
 * optional ones are NULL when absent, which is not the same as empty.
 */
struct queue_envelope {
	char *reverse_path;   /* without angle brackets; "" for the null reverse-path <> */
	uint64_t received_at; /* Unix seconds at which DATA ended */
	char *client_address; /* the client's IP address, as text */
	char *helo;	      /* the EHLO or HELO argument, as the client sent it */
	char *auth_user;      /* authenticated user name, NULL when not authenticated */
	bool is_smtputf8;     /* MAIL had SMTPUTF8 (RFC 6531 3.4) */
	enum queue_body_type body_type;
	enum queue_ret ret;
	char *envid; /* ENVID, xtext already decoded (RFC 3461 4.4); NULL when not given */
	struct queue_recipient *recipients;
	size_t recipient_count;
};

/* Zero everything: no strings, no recipients. */
void queue_envelope_init(struct queue_envelope *env);
/* Free every string and the recipient array, then init again. */
void queue_envelope_clear(struct queue_envelope *env);

/*
 * Replace *field with a heap copy of value (the old string is freed). Use it
 * for every string of the envelope and its recipients. -1 with ERROR_DATA
 * when value holds a NUL or is longer than QUEUE_ENVELOPE_STRING_MAX,
 * ERROR_SOFTWARE when memory runs out; *field is then unchanged.
 */
int queue_envelope_string_set(char **field, struct span value, struct error *err);

/*
 * Append a recipient with the given address (no ORCPT, NOTIFY or alias) and
 * point *recipient_out at it (valid until the next add or clear). -1 with
 * ERROR_DATA past QUEUE_ENVELOPE_RECIPIENTS_MAX or for a bad address.
 */
int queue_envelope_add_recipient(struct queue_envelope *env, struct span address,
				 struct queue_recipient **recipient_out, struct error *err);

/*
 * The ID.env text for env, in a heap buffer the caller frees. -1 with
 * ERROR_DATA when env cannot be written: no recipients, a required string
 * NULL, a string over the limit or with a NUL, a NOTIFY combining NEVER.
 */
int queue_envelope_serialize(const struct queue_envelope *env, char **text_out, size_t *len_out,
			     struct error *err);

/* Parse ID.env text into env_out (initialized here; clear it after use, also
 * after a failure). */
int queue_envelope_parse(struct span text, struct queue_envelope *env_out, struct error *err);

/* Same values, strings compared byte for byte and NULL only equal to NULL. */
bool queue_envelope_equal(const struct queue_envelope *a, const struct queue_envelope *b);

/* --- ID.state: per-recipient delivery outcomes ------------------------- */

enum queue_recipient_status {
	QUEUE_RECIPIENT_PENDING = 0, /* not yet delivered: try (again) */
	QUEUE_RECIPIENT_DELIVERED,   /* accepted by the mailbox or the next server: never again */
	QUEUE_RECIPIENT_FAILED,	     /* permanently refused or expired: bounce, never again */
};

struct queue_recipient_state {
	enum queue_recipient_status status;
	char *reply; /* the last reply or reason ("550 5.1.1 No such user"); NULL if none */
};

/* recipients[i] is the outcome for envelope recipient i. */
struct queue_state {
	uint32_t attempt_count;	  /* delivery attempts started so far */
	uint64_t next_attempt_at; /* Unix seconds; 0: as soon as possible */
	bool is_delay_warned;	  /* a delay DSN went out (written "delay-warned", only when set) */
	struct queue_recipient_state *recipients;
	size_t recipient_count;
};

/* A state of recipient_count recipients (1..QUEUE_ENVELOPE_RECIPIENTS_MAX),
 * all pending, no attempts: the state of a message with no ID.state file. */
int queue_state_init(struct queue_state *state, size_t recipient_count, struct error *err);
void queue_state_clear(struct queue_state *state);

/* Record recipient index's outcome; reply may be NULL. -1 with ERROR_DATA for
 * an index out of range or a reply queue_envelope_string_set would refuse. */
int queue_state_set(struct queue_state *state, size_t index, enum queue_recipient_status status,
		    const char *reply, struct error *err);

/* Whether every recipient is delivered or failed: the message may leave the
 * spool (after any bounce it needs has been queued). */
bool queue_state_is_done(const struct queue_state *state);

int queue_state_serialize(const struct queue_state *state, char **text_out, size_t *len_out,
			  struct error *err);
/* Parse ID.state text into state_out (clear it after use, also after a failure). */
int queue_state_parse(struct span text, struct queue_state *state_out, struct error *err);
bool queue_state_equal(const struct queue_state *a, const struct queue_state *b);

#endif
