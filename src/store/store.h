/*
 * store: the accounts store — domains, users, aliases — behind one interface.
 * SQLite (store/sqlite/) is the embedded backend; another backend implements
 * the same struct store_backend and nothing above this folder changes. No
 * database type crosses this header.
 *
 * Every address and domain name handed in is normalized here
 * (store/address.h): a malformed one is ERROR_DATA with the reason, and what
 * is stored is always the normalized form. Lookups match the local part
 * case-insensitively for ASCII letters only ("Alice" finds "alice", "Ä" does
 * not find "ä"). Secrets are stored exactly as given (scheme-prefixed strings
 * made by auth/secret.h; anything else but "" is refused); the store never
 * sees a password. Messages name the subject: "domain example.org does not
 * exist", "user alice@example.org already exists".
 *
 * A struct store is used by one thread at a time. Calls block on the
 * database (up to a few seconds when another process holds its lock, then
 * ERROR_TEMPORARY): from the daemon, call them from a worker. A list
 * callback must not call back into the same struct store.
 */
#ifndef POSTGATE_STORE_STORE_H
#define POSTGATE_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "store/address.h"

#define STORE_SECRET_MAX	1024
#define STORE_ALIAS_TARGETS_MAX 64

/* Sending limits of a domain or a user (docs/auth.md): STORE_LIMIT_INHERIT
 * takes the domain's (for a user), then the configuration's; 0 is no
 * limit. The add functions ignore them (a new domain or user inherits);
 * store_*_set_limits changes them. */
#define STORE_LIMIT_INHERIT (-1)
#define STORE_LIMIT_MAX	    10000000
struct store_limits {
	int64_t messages_per_hour;
	int64_t messages_per_day;
	int64_t recipients_per_hour;
	int64_t recipients_per_day;
};

struct store_domain {
	char name[ADDRESS_DOMAIN_MAX + 1];
	char smtp_name[ADDRESS_DOMAIN_MAX + 1]; /* default "smtp.<name>" */
	char pop3_name[ADDRESS_DOMAIN_MAX + 1]; /* default "pop.<name>" */
	struct store_limits limits;
	int64_t created; /* Unix seconds */
	int64_t changed;
};

struct store_user {
	char address[ADDRESS_MAX + 1];
	char secret_argon2id[STORE_SECRET_MAX]; /* "{ARGON2ID}$argon2id$..." */
	char secret_scram[STORE_SECRET_MAX];	/* "{SCRAM-SHA-256}iter,salt,StoredKey,ServerKey" */
	/* "{CRAM-MD5}<64 hex>", password-equivalent: "" unless the
	 * administrator offers CRAM-MD5 (docs/auth.md). */
	char secret_cram_md5[STORE_SECRET_MAX];
	/* "{PLAIN}<password>", the password itself: "" unless a POP3 listener
	 * offers APOP (decision 0100). */
	char secret_plain[STORE_SECRET_MAX];
	bool is_enabled;
	bool is_held; /* sending hold: may still log in to POP3 */
	struct store_limits limits;
	int64_t created;
	int64_t changed;
};

struct store_alias {
	char address[ADDRESS_MAX + 1];
	char owner[ADDRESS_MAX + 1]; /* a user who may send as the alias; "" for none */
	size_t target_count;
	char targets[STORE_ALIAS_TARGETS_MAX][ADDRESS_MAX + 1]; /* local or remote addresses */
	int64_t created;
	int64_t changed;
};

struct store;

typedef int store_domain_fn(void *ctx, const struct store_domain *domain);
typedef int store_user_fn(void *ctx, const struct store_user *user);
typedef int store_alias_fn(void *ctx, const struct store_alias *alias);

/*
 * Open the store at `location` (for SQLite, a file path). With create, a
 * missing database is created (mode 0600) and migrated to the current schema;
 * without, a missing file is ERROR_IO "<location>: no such file", and so is an
 * empty one. An existing database with an older schema is migrated forward,
 * each step in its own transaction (a failed step leaves the previous
 * version); a newer one, a file that is not a database and another
 * program's database are refused with ERROR_IO and a message saying which.
 */
int store_open(const char *location, bool create, struct store **store_out, struct error *err);
void store_close(struct store *store); /* NULL does nothing */

/* The open database's schema version (PRAGMA user_version for SQLite), or -1. */
int store_schema_version(struct store *store);

/* ERROR_EXISTS for a duplicate. Empty smtp_name/pop3_name get the defaults;
 * created/changed are ignored (the store sets them). */
int store_domain_add(struct store *store, const struct store_domain *domain, struct error *err);
/* ERROR_NOT_FOUND when absent; ERROR_PERMISSION when it has users or aliases and !force
 * (with force, its users and aliases go too). */
int store_domain_del(struct store *store, const char *name, bool force, struct error *err);
int store_domain_get(struct store *store, const char *name, struct store_domain *domain_out,
		     struct error *err);
/* Change a domain's server names: NULL leaves one as it is, "" sets the default. */
int store_domain_set_names(struct store *store, const char *name, const char *smtp_name,
			   const char *pop3_name, struct error *err);
/* Replace the domain's sending limits (each STORE_LIMIT_INHERIT or
 * 0..STORE_LIMIT_MAX, else ERROR_DATA). */
int store_domain_set_limits(struct store *store, const char *name,
			    const struct store_limits *limits, struct error *err);
/* In name order; a non-zero return from each stops the walk and is returned. */
int store_domain_list(struct store *store, store_domain_fn *each, void *ctx, struct error *err);

/* ERROR_NOT_FOUND when the domain does not exist; ERROR_EXISTS when the address
 * is a user or an alias already. is_enabled and is_held are stored as given
 * (a zeroed struct makes a disabled user); created/changed are ignored. */
int store_user_add(struct store *store, const struct store_user *user, struct error *err);
/* Aliases the user owned stay, without an owner. ERROR_NOT_FOUND when absent. */
int store_user_del(struct store *store, const char *address, struct error *err);
int store_user_get(struct store *store, const char *address, struct store_user *user_out,
		   struct error *err);
/* domain NULL: every user; in address order. ERROR_NOT_FOUND for an unknown domain. */
int store_user_list(struct store *store, const char *domain, store_user_fn *each, void *ctx,
		    struct error *err);
/* NULL leaves a secret as it is; "" removes it. */
int store_user_set_secrets(struct store *store, const char *address, const char *secret_argon2id,
			   const char *secret_scram, const char *secret_cram_md5,
			   const char *secret_plain, struct error *err);
int store_user_set_enabled(struct store *store, const char *address, bool is_enabled,
			   struct error *err);
int store_user_set_held(struct store *store, const char *address, bool is_held, struct error *err);
/* As store_domain_set_limits, for one user. */
int store_user_set_limits(struct store *store, const char *address,
			  const struct store_limits *limits, struct error *err);

/* The alias's domain must exist and the address must not be a user; adding
 * to an existing alias appends the targets (duplicates ignored) and, when
 * owner is not empty, sets the owner (which must be a user: else
 * ERROR_NOT_FOUND). A new alias needs at least one target; an alias has at
 * most STORE_ALIAS_TARGETS_MAX and never itself (ERROR_DATA). Targets are
 * kept in the order first added. */
int store_alias_add(struct store *store, const struct store_alias *alias, struct error *err);
/* target NULL: the whole alias; else that one target (the alias goes with its
 * last target). ERROR_NOT_FOUND for an unknown alias or target. */
int store_alias_del(struct store *store, const char *address, const char *target,
		    struct error *err);
int store_alias_get(struct store *store, const char *address, struct store_alias *alias_out,
		    struct error *err);
/* As store_user_list. */
int store_alias_list(struct store *store, const char *domain, store_alias_fn *each, void *ctx,
		     struct error *err);

#endif
