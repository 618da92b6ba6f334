/*
 * store/internal.h: what a backend implements. store.c checks and
 * normalizes every argument, fills defaults and reads the clock; a backend
 * only keeps the data and enforces, inside its own transactions, the rules
 * that need the data (the domain exists, a user and an alias never share an
 * address, the owner is a user, at most STORE_ALIAS_TARGETS_MAX targets).
 *
 * Arguments reaching a backend are normalized (store/address.h), NUL-ended
 * and within their buffer sizes. Error messages follow store.h's wording.
 * Not for use outside src/store/.
 */
#ifndef POSTGATE_STORE_INTERNAL_H
#define POSTGATE_STORE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "store/store.h"

enum store_user_flag {
	STORE_USER_FLAG_ENABLED,
	STORE_USER_FLAG_HELD,
};

struct store_backend {
	const char *name; /* "sqlite" */

	int (*open)(const char *location, bool create, void **impl_out, struct error *err);
	void (*close)(void *impl);
	int (*schema_version)(void *impl);

	/* now: Unix seconds for created/changed. */
	int (*domain_add)(void *impl, const struct store_domain *domain, int64_t now,
			  struct error *err);
	int (*domain_del)(void *impl, const char *name, bool force, struct error *err);
	int (*domain_get)(void *impl, const char *name, struct store_domain *domain_out,
			  struct error *err);
	int (*domain_list)(void *impl, store_domain_fn *each, void *ctx, struct error *err);
	/* NULL leaves a server name as it is. */
	int (*domain_set_names)(void *impl, const char *name, const char *smtp_name,
				const char *pop3_name, int64_t now, struct error *err);

	int (*user_add)(void *impl, const struct store_user *user, int64_t now, struct error *err);
	int (*user_del)(void *impl, const char *address, struct error *err);
	int (*user_get)(void *impl, const char *address, struct store_user *user_out,
			struct error *err);
	int (*user_list)(void *impl, const char *domain, store_user_fn *each, void *ctx,
			 struct error *err);
	/* NULL leaves a secret as it is. */
	int (*user_set_secrets)(void *impl, const char *address, const char *secret_argon2id,
				const char *secret_scram, const char *secret_cram_md5,
				const char *secret_plain, int64_t now, struct error *err);
	int (*user_set_flag)(void *impl, const char *address, enum store_user_flag flag, bool value,
			     int64_t now, struct error *err);
	/* is_user: a user's limits, else a domain's (name). */
	int (*set_limits)(void *impl, bool is_user, const char *name,
			  const struct store_limits *limits, int64_t now, struct error *err);

	int (*alias_add)(void *impl, const struct store_alias *alias, int64_t now,
			 struct error *err);
	int (*alias_del)(void *impl, const char *address, const char *target, int64_t now,
			 struct error *err);
	int (*alias_get)(void *impl, const char *address, struct store_alias *alias_out,
			 struct error *err);
	int (*alias_list)(void *impl, const char *domain, store_alias_fn *each, void *ctx,
			  struct error *err);
};

extern const struct store_backend store_sqlite_backend;

#endif
