/*
 * control: the text protocol of the daemon's control socket
 * (<state_dir>/control.sock), by which `postgate queue` asks the running
 * queue manager to act on the spool. docs/queue.md describes it.
 *
 * One request per connection: one line, a verb and at most one queue ID
 * separated by one space, ending in LF (a CR before it is tolerated), at
 * most QUEUE_CONTROL_REQUEST_MAX bytes:
 *
 *   flush [ID]   deliver now (every message not held when ID is absent)
 *   delete ID    remove the message from the spool
 *   hold ID      set the message aside (spool hold/), never tried
 *   release ID   put a held message back in the queue and try it now
 *   status       the daemon's state as "key=value" words (docs/cli.md)
 *   activity ADDRESS  what the daemon remembers of a user's recent sending
 *                and logins, as "key=value" words (docs/cli.md, user show)
 *
 * One reply line, at most QUEUE_CONTROL_REPLY_MAX bytes with its LF:
 *
 *   ok <text>
 *   error <kind> <message>     kind: usage, data, not-found, ... (the
 *                              error_kind names below), so the command can
 *                              exit with the code it would use itself
 *
 * Pure: no I/O, no clock, no globals; the fuzzer and tests call it directly,
 * and src/daemon/control.c and src/cli/queue.c do the socket work. Texts
 * written are printable ASCII: any other byte becomes '?', so a reply can
 * never break the line protocol or a terminal.
 */
#ifndef POSTGATE_QUEUE_CONTROL_H
#define POSTGATE_QUEUE_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "core/span.h"
#include "queue/spool.h"
#include "store/address.h"

/* Bytes of a request line, LF included: "activity " and an address of
 * ADDRESS_TEXT_MAX octets (RFC 5321 4.5.3.1.3), a CR and the LF fit. */
#define QUEUE_CONTROL_REQUEST_MAX 272
/* Bytes of a reply line, LF included: an activity reply lists up to 16
 * login addresses (about 2 KiB at most). */
#define QUEUE_CONTROL_REPLY_MAX 4096
#define QUEUE_CONTROL_SOCKET	"control.sock" /* in state_dir */

enum queue_control_verb {
	QUEUE_CONTROL_FLUSH = 0,
	QUEUE_CONTROL_DELETE,
	QUEUE_CONTROL_HOLD,
	QUEUE_CONTROL_RELEASE,
	QUEUE_CONTROL_STATUS,
	QUEUE_CONTROL_ACTIVITY,
};

struct queue_control_request {
	enum queue_control_verb verb;
	bool has_id;		   /* flush may go without one, status never has one */
	char id[QUEUE_ID_MAX + 1]; /* a valid queue ID when has_id, else "" */
	/* activity: the user's address as sent (printable, no space, an '@',
	 * at most ADDRESS_TEXT_MAX octets; the daemon matches it without
	 * regard to ASCII case); "" for every other verb. */
	char address[ADDRESS_TEXT_MAX + 1];
};

/* The verb's name as the protocol spells it ("flush"). */
const char *queue_control_verb_name(enum queue_control_verb verb);

/*
 * Parse a request line given without its LF (a final CR is dropped). -1 with
 * ERROR_USAGE naming the problem: empty, too long, a byte outside printable
 * ASCII, an unknown verb, a missing or extra argument, an argument that is
 * no queue ID (no address, for activity). *out is zeroed on failure.
 */
int queue_control_request_parse(struct span line, struct queue_control_request *out,
				struct error *err);

/* The request line, LF included, NUL-terminated into out (cap bytes, at
 * least QUEUE_CONTROL_REQUEST_MAX + 1). Returns its length. */
size_t queue_control_request_format(const struct queue_control_request *request, char *out,
				    size_t cap);

/*
 * A reply line, LF included, NUL-terminated into out (cap bytes, at least
 * QUEUE_CONTROL_REPLY_MAX + 1): "ok <text>" when err is NULL, else
 * "error <kind> <err->message>". Long texts are cut to fit. Returns its length.
 */
size_t queue_control_reply_format(const struct error *err, const char *text, char *out, size_t cap);

/*
 * Parse a reply line given without its LF. 0 for "ok": the text (possibly
 * empty) is copied into text_out (cap bytes). -1 for "error": err gets the
 * kind and message the daemon sent; and -1 with ERROR_SOFTWARE for a line
 * that is neither (not our daemon, or a bug).
 */
int queue_control_reply_parse(struct span line, char *text_out, size_t cap, struct error *err);

/* "not-found" for ERROR_NOT_FOUND, and back; unknown names: false. */
const char *queue_control_error_name(enum error_kind kind);
bool queue_control_error_kind(struct span name, enum error_kind *kind_out);

#endif
