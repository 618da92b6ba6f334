/*
 * recipient: what a recipient address means to us — a local user, a local
 * alias (expanded, recursively, to final targets), an unknown address in a
 * hosted domain, or an address elsewhere. Used by the SMTP server at RCPT
 * time and by the queue at delivery. Runs on whichever thread owns the store
 * handle (a worker), never on the event loop.
 */
#ifndef POSTGATE_STORE_RECIPIENT_H
#define POSTGATE_STORE_RECIPIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"

#define STORE_EXPANSION_MAX   100 /* final targets one address may expand to */
#define STORE_EXPANSION_DEPTH 10  /* aliases of aliases */

enum store_recipient_kind {
	STORE_RECIPIENT_USER,	  /* a local mailbox; targets[0] is the user */
	STORE_RECIPIENT_ALIAS,	  /* expanded to targets */
	STORE_RECIPIENT_UNKNOWN,  /* a hosted domain, but no such user or alias */
	STORE_RECIPIENT_DISABLED, /* a user whose account is disabled */
	STORE_RECIPIENT_REMOTE,	  /* not a hosted domain */
	STORE_RECIPIENT_LOOP,	  /* an alias that leads back to itself */
	STORE_RECIPIENT_TOO_MANY, /* expands past STORE_EXPANSION_MAX or the depth */
};

struct store_target {
	char address[ADDRESS_MAX + 1]; /* normalized */
	bool is_local;		       /* a local user's mailbox, else a remote address */
};

struct store_expansion {
	size_t count;
	struct store_target targets[STORE_EXPANSION_MAX];
};

/*
 * Resolve a normalized address. Duplicate targets (an address reached twice
 * through different aliases) appear once. Alias targets that are unknown or
 * disabled local addresses are left out; an alias left with no target is
 * STORE_RECIPIENT_UNKNOWN. Returns 0 with *kind_out set, or -1 when the store
 * failed (err says why: the caller answers with a temporary failure).
 */
int store_recipient_resolve(struct store *store, const char *address,
			    enum store_recipient_kind *kind_out,
			    struct store_expansion *expansion_out, struct error *err);

#endif
