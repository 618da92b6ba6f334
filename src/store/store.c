/*
 * store: the accounts store's public face. Owns the argument rules that do
 * not depend on where the data lives — every address and domain is
 * normalized here (store/address.h), default server names are filled in,
 * secrets are checked for their scheme prefix, the clock is read — and hands
 * the rest to a backend (store/internal.h). It must never know a database
 * type: backends live in their own folders.
 */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/internal.h"

struct store {
	const struct store_backend *backend;
	void *impl;
};

/* Rewrites err's message as "<what>: <message>" to say which argument it is about. */
static int error_prefix(struct error *err, const char *what)
{
	char message[ERROR_MESSAGE_MAX];

	if (err == NULL)
		return -1;
	memcpy(message, err->message, sizeof(message));
	return error_set(err, err->kind, "%s: %s", what, message);
}

/* A NUL-ended string from a fixed array of cap bytes; ERROR_DATA when it has no NUL. */
static int field_span(const char *field, size_t cap, const char *what, struct span *span_out,
		      struct error *err)
{
	size_t len = strnlen(field, cap);

	if (len == cap)
		return error_set(err, ERROR_DATA, "%s is longer than %zu bytes", what, cap - 1);
	*span_out = span_make(field, len);
	return 0;
}

static int normalize_address(const char *input, const char *what, char out[ADDRESS_MAX + 1],
			     struct error *err)
{
	if (input == NULL)
		return error_set(err, ERROR_DATA, "%s is missing", what != NULL ? what : "address");
	if (store_address_normalize(span_from_cstr(input), out, err) < 0)
		return what != NULL ? error_prefix(err, what) : -1;
	return 0;
}

static int normalize_domain(const char *input, const char *what, char out[ADDRESS_DOMAIN_MAX + 1],
			    struct error *err)
{
	if (input == NULL)
		return error_set(err, ERROR_DATA, "%s is missing", what != NULL ? what : "domain");
	if (store_address_domain_normalize(span_from_cstr(input), out, err) < 0)
		return what != NULL ? error_prefix(err, what) : -1;
	return 0;
}

/* A server name as given, or "<prefix>.<domain>" when given empty. */
static int server_name(const char *input, const char *prefix, const char *domain, const char *what,
		       char out[ADDRESS_DOMAIN_MAX + 1], struct error *err)
{
	char composed[ADDRESS_DOMAIN_MAX + 16];

	if (input[0] != '\0')
		return normalize_domain(input, what, out, err);
	snprintf(composed, sizeof(composed), "%s.%s", prefix, domain);
	return normalize_domain(composed, what, out, err);
}

/* Empty, or "{SCHEME}..." within STORE_SECRET_MAX: the store keeps secrets
 * as given but refuses what cannot be a scheme-prefixed secret. */
static int check_secret(const char *secret, const char *what, struct error *err)
{
	size_t len;

	if (secret == NULL)
		return 0;
	len = strnlen(secret, STORE_SECRET_MAX);
	if (len == STORE_SECRET_MAX)
		return error_set(err, ERROR_DATA, "%s is longer than %d bytes", what,
				 STORE_SECRET_MAX - 1);
	if (len > 0 && (secret[0] != '{' || memchr(secret, '}', len) == NULL))
		return error_set(err, ERROR_DATA, "%s has no {SCHEME} prefix", what);
	return 0;
}

static int64_t now_seconds(void)
{
	return (int64_t) time(NULL);
}

int store_open(const char *location, bool create, struct store **store_out, struct error *err)
{
	struct store *store;

	*store_out = NULL;
	store = calloc(1, sizeof(*store));
	if (store == NULL)
		return error_set(err, ERROR_TEMPORARY, "out of memory");
	/* The one backend so far; another would be chosen by the form of
	 * location (a URI scheme) here. */
	store->backend = &store_sqlite_backend;
	if (store->backend->open(location, create, &store->impl, err) < 0) {
		free(store);
		return -1;
	}
	*store_out = store;
	return 0;
}

void store_close(struct store *store)
{
	if (store == NULL)
		return;
	store->backend->close(store->impl);
	free(store);
}

int store_schema_version(struct store *store)
{
	return store->backend->schema_version(store->impl);
}

int store_domain_add(struct store *store, const struct store_domain *domain, struct error *err)
{
	struct store_domain d;
	struct span field;

	memset(&d, 0, sizeof(d));
	if (field_span(domain->name, sizeof(domain->name), "domain", &field, err) < 0 ||
	    store_address_domain_normalize(field, d.name, err) < 0)
		return -1;
	if (field_span(domain->smtp_name, sizeof(domain->smtp_name), "SMTP server name", &field,
		       err) < 0 ||
	    field_span(domain->pop3_name, sizeof(domain->pop3_name), "POP3 server name", &field,
		       err) < 0)
		return -1;
	if (server_name(domain->smtp_name, "smtp", d.name, "SMTP server name", d.smtp_name, err) <
		    0 ||
	    server_name(domain->pop3_name, "pop", d.name, "POP3 server name", d.pop3_name, err) < 0)
		return -1;
	return store->backend->domain_add(store->impl, &d, now_seconds(), err);
}

int store_domain_del(struct store *store, const char *name, bool force, struct error *err)
{
	char normalized[ADDRESS_DOMAIN_MAX + 1];

	if (normalize_domain(name, NULL, normalized, err) < 0)
		return -1;
	return store->backend->domain_del(store->impl, normalized, force, err);
}

int store_domain_get(struct store *store, const char *name, struct store_domain *domain_out,
		     struct error *err)
{
	char normalized[ADDRESS_DOMAIN_MAX + 1];

	if (normalize_domain(name, NULL, normalized, err) < 0)
		return -1;
	return store->backend->domain_get(store->impl, normalized, domain_out, err);
}

int store_domain_list(struct store *store, store_domain_fn *each, void *ctx, struct error *err)
{
	return store->backend->domain_list(store->impl, each, ctx, err);
}

int store_domain_set_names(struct store *store, const char *name, const char *smtp_name,
			   const char *pop3_name, struct error *err)
{
	char normalized[ADDRESS_DOMAIN_MAX + 1];
	char smtp[ADDRESS_DOMAIN_MAX + 1], pop3[ADDRESS_DOMAIN_MAX + 1];

	if (normalize_domain(name, NULL, normalized, err) < 0)
		return -1;
	if (smtp_name != NULL &&
	    server_name(smtp_name, "smtp", normalized, "SMTP server name", smtp, err) < 0)
		return -1;
	if (pop3_name != NULL &&
	    server_name(pop3_name, "pop", normalized, "POP3 server name", pop3, err) < 0)
		return -1;
	return store->backend->domain_set_names(
		store->impl, normalized, smtp_name != NULL ? smtp : NULL,
		pop3_name != NULL ? pop3 : NULL, now_seconds(), err);
}

int store_user_add(struct store *store, const struct store_user *user, struct error *err)
{
	struct store_user *u;
	struct span field;
	int rc = -1;

	/* Two secrets of STORE_SECRET_MAX: keep them off a worker's stack. */
	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return error_set(err, ERROR_TEMPORARY, "out of memory");
	if (field_span(user->address, sizeof(user->address), "address", &field, err) < 0 ||
	    store_address_normalize(field, u->address, err) < 0)
		goto out;
	if (check_secret(user->secret_argon2id, "argon2id secret", err) < 0 ||
	    check_secret(user->secret_scram, "SCRAM secret", err) < 0 ||
	    check_secret(user->secret_cram_md5, "CRAM-MD5 secret", err) < 0 ||
	    check_secret(user->secret_plain, "PLAIN secret", err) < 0)
		goto out;
	memcpy(u->secret_argon2id, user->secret_argon2id, sizeof(u->secret_argon2id));
	memcpy(u->secret_scram, user->secret_scram, sizeof(u->secret_scram));
	memcpy(u->secret_cram_md5, user->secret_cram_md5, sizeof(u->secret_cram_md5));
	memcpy(u->secret_plain, user->secret_plain, sizeof(u->secret_plain));
	u->is_enabled = user->is_enabled;
	u->is_held = user->is_held;
	rc = store->backend->user_add(store->impl, u, now_seconds(), err);
out:
	explicit_bzero(u, sizeof(*u));
	free(u);
	return rc;
}

int store_user_del(struct store *store, const char *address, struct error *err)
{
	char normalized[ADDRESS_MAX + 1];

	if (normalize_address(address, NULL, normalized, err) < 0)
		return -1;
	return store->backend->user_del(store->impl, normalized, err);
}

int store_user_get(struct store *store, const char *address, struct store_user *user_out,
		   struct error *err)
{
	char normalized[ADDRESS_MAX + 1];

	if (normalize_address(address, NULL, normalized, err) < 0)
		return -1;
	return store->backend->user_get(store->impl, normalized, user_out, err);
}

int store_user_list(struct store *store, const char *domain, store_user_fn *each, void *ctx,
		    struct error *err)
{
	char normalized[ADDRESS_DOMAIN_MAX + 1];

	if (domain == NULL)
		return store->backend->user_list(store->impl, NULL, each, ctx, err);
	if (normalize_domain(domain, NULL, normalized, err) < 0)
		return -1;
	return store->backend->user_list(store->impl, normalized, each, ctx, err);
}

int store_user_set_secrets(struct store *store, const char *address, const char *secret_argon2id,
			   const char *secret_scram, const char *secret_cram_md5,
			   const char *secret_plain, struct error *err)
{
	char normalized[ADDRESS_MAX + 1];

	if (normalize_address(address, NULL, normalized, err) < 0)
		return -1;
	if (check_secret(secret_argon2id, "argon2id secret", err) < 0 ||
	    check_secret(secret_scram, "SCRAM secret", err) < 0 ||
	    check_secret(secret_cram_md5, "CRAM-MD5 secret", err) < 0 ||
	    check_secret(secret_plain, "PLAIN secret", err) < 0)
		return -1;
	return store->backend->user_set_secrets(store->impl, normalized, secret_argon2id,
						secret_scram, secret_cram_md5, secret_plain,
						now_seconds(), err);
}

static int check_limits(const struct store_limits *limits, struct error *err)
{
	const int64_t values[] = { limits->messages_per_hour, limits->messages_per_day,
				   limits->recipients_per_hour, limits->recipients_per_day };

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		if (values[i] != STORE_LIMIT_INHERIT &&
		    (values[i] < 0 || values[i] > STORE_LIMIT_MAX))
			return error_set(err, ERROR_DATA,
					 "a sending limit must be between 0 and %d, or inherit",
					 STORE_LIMIT_MAX);
	return 0;
}

int store_domain_set_limits(struct store *store, const char *name,
			    const struct store_limits *limits, struct error *err)
{
	char normalized[ADDRESS_DOMAIN_MAX + 1];

	if (normalize_domain(name, NULL, normalized, err) < 0 || check_limits(limits, err) < 0)
		return -1;
	return store->backend->set_limits(store->impl, false, normalized, limits, now_seconds(),
					  err);
}

int store_user_set_limits(struct store *store, const char *address,
			  const struct store_limits *limits, struct error *err)
{
	char normalized[ADDRESS_MAX + 1];

	if (normalize_address(address, NULL, normalized, err) < 0 || check_limits(limits, err) < 0)
		return -1;
	return store->backend->set_limits(store->impl, true, normalized, limits, now_seconds(),
					  err);
}

static int set_flag(struct store *store, const char *address, enum store_user_flag flag, bool value,
		    struct error *err)
{
	char normalized[ADDRESS_MAX + 1];

	if (normalize_address(address, NULL, normalized, err) < 0)
		return -1;
	return store->backend->user_set_flag(store->impl, normalized, flag, value, now_seconds(),
					     err);
}

int store_user_set_enabled(struct store *store, const char *address, bool is_enabled,
			   struct error *err)
{
	return set_flag(store, address, STORE_USER_FLAG_ENABLED, is_enabled, err);
}

int store_user_set_held(struct store *store, const char *address, bool is_held, struct error *err)
{
	return set_flag(store, address, STORE_USER_FLAG_HELD, is_held, err);
}

int store_alias_add(struct store *store, const struct store_alias *alias, struct error *err)
{
	struct store_alias *a;
	struct span field;
	char what[64];
	int rc = -1;

	if (alias->target_count > STORE_ALIAS_TARGETS_MAX)
		return error_set(err, ERROR_DATA, "an alias has at most %d targets",
				 STORE_ALIAS_TARGETS_MAX);
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return error_set(err, ERROR_TEMPORARY, "out of memory");
	if (field_span(alias->address, sizeof(alias->address), "address", &field, err) < 0 ||
	    store_address_normalize(field, a->address, err) < 0)
		goto out;
	if (field_span(alias->owner, sizeof(alias->owner), "owner", &field, err) < 0)
		goto out;
	if (field.len > 0 && store_address_normalize(field, a->owner, err) < 0) {
		error_prefix(err, "owner");
		goto out;
	}
	for (size_t i = 0; i < alias->target_count; i++) {
		snprintf(what, sizeof(what), "target %zu", i + 1);
		if (field_span(alias->targets[i], sizeof(alias->targets[i]), what, &field, err) < 0)
			goto out;
		if (store_address_normalize(field, a->targets[i], err) < 0) {
			error_prefix(err, what);
			goto out;
		}
		/* Longer loops are for delivery to catch; this one is always a mistake. */
		if (span_eq_nocase(span_from_cstr(a->targets[i]), span_from_cstr(a->address))) {
			error_set(err, ERROR_DATA, "alias %s cannot have itself as a target",
				  a->address);
			goto out;
		}
	}
	a->target_count = alias->target_count;
	rc = store->backend->alias_add(store->impl, a, now_seconds(), err);
out:
	free(a);
	return rc;
}

int store_alias_del(struct store *store, const char *address, const char *target, struct error *err)
{
	char normalized[ADDRESS_MAX + 1], normalized_target[ADDRESS_MAX + 1];

	if (normalize_address(address, NULL, normalized, err) < 0)
		return -1;
	if (target != NULL && normalize_address(target, "target", normalized_target, err) < 0)
		return -1;
	return store->backend->alias_del(store->impl, normalized,
					 target != NULL ? normalized_target : NULL, now_seconds(),
					 err);
}

int store_alias_get(struct store *store, const char *address, struct store_alias *alias_out,
		    struct error *err)
{
	char normalized[ADDRESS_MAX + 1];

	if (normalize_address(address, NULL, normalized, err) < 0)
		return -1;
	return store->backend->alias_get(store->impl, normalized, alias_out, err);
}

int store_alias_list(struct store *store, const char *domain, store_alias_fn *each, void *ctx,
		     struct error *err)
{
	char normalized[ADDRESS_DOMAIN_MAX + 1];

	if (domain == NULL)
		return store->backend->alias_list(store->impl, NULL, each, ctx, err);
	if (normalize_domain(domain, NULL, normalized, err) < 0)
		return -1;
	return store->backend->alias_list(store->impl, normalized, each, ctx, err);
}
