/*
 * recipient: resolving an address against the accounts store, with alias
 * expansion. An alias graph may have diamonds (two aliases sharing a target:
 * delivered once) and cycles (refused: a cycle can only be an administrator's
 * mistake, and following it would loop mail).
 */
#include "store/recipient.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct walk {
	struct store *store;
	struct store_expansion *out;
	/* The aliases on the current path from the original address. */
	const char *path[STORE_EXPANSION_DEPTH + 1];
	size_t depth;
	bool is_loop;
	bool is_too_many;
};

static bool domain_is_hosted(struct store *store, const char *address, bool *is_hosted_out,
			     struct error *err)
{
	struct store_domain *domain = malloc(sizeof(*domain));
	struct span name = store_address_domain(address);
	char name_buf[ADDRESS_DOMAIN_MAX + 1];
	struct error lookup_err;

	if (domain == NULL) {
		error_set(err, ERROR_SOFTWARE, "out of memory");
		return false;
	}
	if (!span_copy_cstr(name, name_buf, sizeof(name_buf))) {
		free(domain);
		*is_hosted_out = false;
		return true;
	}
	if (store_domain_get(store, name_buf, domain, &lookup_err) == 0) {
		*is_hosted_out = true;
	} else if (lookup_err.kind == ERROR_NOT_FOUND) {
		*is_hosted_out = false;
	} else {
		*err = lookup_err;
		free(domain);
		return false;
	}
	free(domain);
	return true;
}

static void add_target(struct walk *w, const char *address, bool is_local)
{
	for (size_t i = 0; i < w->out->count; i++)
		if (strcasecmp(w->out->targets[i].address, address) == 0)
			return;
	if (w->out->count == STORE_EXPANSION_MAX) {
		w->is_too_many = true;
		return;
	}
	snprintf(w->out->targets[w->out->count].address,
		 sizeof(w->out->targets[w->out->count].address), "%s", address);
	w->out->targets[w->out->count].is_local = is_local;
	w->out->count++;
}

/* Resolves one address; fills *kind_out for the top level. -1 on store failure. */
static int walk_address(struct walk *w, const char *address, enum store_recipient_kind *kind_out,
			struct error *err)
{
	struct store_user *user = NULL;
	struct store_alias *alias = NULL;
	struct error lookup_err;
	bool is_hosted;
	int rc = -1;

	if (!domain_is_hosted(w->store, address, &is_hosted, err))
		return -1;
	if (!is_hosted) {
		*kind_out = STORE_RECIPIENT_REMOTE;
		add_target(w, address, false);
		return 0;
	}
	user = malloc(sizeof(*user));
	alias = malloc(sizeof(*alias));
	if (user == NULL || alias == NULL) {
		error_set(err, ERROR_SOFTWARE, "out of memory");
		goto out;
	}
	if (store_user_get(w->store, address, user, &lookup_err) == 0) {
		if (!user->is_enabled) {
			*kind_out = STORE_RECIPIENT_DISABLED;
		} else {
			*kind_out = STORE_RECIPIENT_USER;
			add_target(w, user->address, true);
		}
		rc = 0;
		goto out;
	}
	if (lookup_err.kind != ERROR_NOT_FOUND) {
		*err = lookup_err;
		goto out;
	}
	if (store_alias_get(w->store, address, alias, &lookup_err) < 0) {
		if (lookup_err.kind != ERROR_NOT_FOUND) {
			*err = lookup_err;
			goto out;
		}
		*kind_out = STORE_RECIPIENT_UNKNOWN;
		rc = 0;
		goto out;
	}
	*kind_out = STORE_RECIPIENT_ALIAS;
	for (size_t i = 0; i < w->depth; i++) {
		if (strcasecmp(w->path[i], alias->address) == 0) {
			w->is_loop = true;
			rc = 0;
			goto out;
		}
	}
	if (w->depth == STORE_EXPANSION_DEPTH) {
		w->is_too_many = true;
		rc = 0;
		goto out;
	}
	w->path[w->depth++] = alias->address;
	for (size_t i = 0; i < alias->target_count && !w->is_loop && !w->is_too_many; i++) {
		enum store_recipient_kind target_kind;

		if (walk_address(w, alias->targets[i], &target_kind, err) < 0) {
			w->depth--;
			goto out;
		}
	}
	w->depth--;
	rc = 0;
out:
	free(user);
	free(alias);
	return rc;
}

int store_recipient_resolve(struct store *store, const char *address,
			    enum store_recipient_kind *kind_out,
			    struct store_expansion *expansion_out, struct error *err)
{
	struct walk w = { .store = store, .out = expansion_out };
	enum store_recipient_kind kind;

	expansion_out->count = 0;
	if (walk_address(&w, address, &kind, err) < 0)
		return -1;
	if (w.is_loop)
		kind = STORE_RECIPIENT_LOOP;
	else if (w.is_too_many)
		kind = STORE_RECIPIENT_TOO_MANY;
	else if (kind == STORE_RECIPIENT_ALIAS && expansion_out->count == 0)
		kind = STORE_RECIPIENT_UNKNOWN;
	if (kind != STORE_RECIPIENT_USER && kind != STORE_RECIPIENT_ALIAS &&
	    kind != STORE_RECIPIENT_REMOTE)
		expansion_out->count = 0;
	*kind_out = kind;
	return 0;
}
