/*
 * store/sqlite: the embedded accounts store, one SQLite file: opening it and
 * every statement on domains, users and aliases (schema.c owns the schema,
 * the connection settings and the migrations). No SQLite type leaves this
 * folder. It must never build SQL from input: every statement is a constant
 * in stmt_sql[] and values are bound.
 *
 * Writes run in BEGIN IMMEDIATE transactions: the write lock is taken before
 * the checks, so a check and the write it guards see the same data even
 * with another process writing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/internal.h"
#include "store/sqlite/internal.h"

enum stmt_id {
	STMT_BEGIN,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_DOMAIN_ID,
	STMT_DOMAIN_INSERT,
	STMT_DOMAIN_GET,
	STMT_DOMAIN_LIST,
	STMT_DOMAIN_COUNT_USERS,
	STMT_DOMAIN_COUNT_ALIASES,
	STMT_DOMAIN_DELETE_USERS,
	STMT_DOMAIN_DELETE_ALIASES,
	STMT_DOMAIN_DELETE,
	STMT_DOMAIN_SET_NAMES,
	STMT_USER_ID,
	STMT_USER_INSERT,
	STMT_USER_GET,
	STMT_USER_LIST_ALL,
	STMT_USER_LIST_DOMAIN,
	STMT_USER_DELETE,
	STMT_USER_SET_SECRETS,
	STMT_USER_SET_ENABLED,
	STMT_USER_SET_HELD,
	STMT_USER_SET_LIMITS,
	STMT_DOMAIN_SET_LIMITS,
	STMT_ALIAS_ID,
	STMT_ALIAS_INSERT,
	STMT_ALIAS_SET_OWNER,
	STMT_ALIAS_TOUCH,
	STMT_ALIAS_GET,
	STMT_ALIAS_LIST_ALL,
	STMT_ALIAS_LIST_DOMAIN,
	STMT_ALIAS_DELETE,
	STMT_TARGET_INSERT,
	STMT_TARGET_COUNT,
	STMT_TARGET_LIST,
	STMT_TARGET_DELETE,
	STMT_COUNT,
};

#define USER_COLUMNS                                                                        \
	"users.address, users.secret_argon2id, users.secret_scram, users.is_enabled, "      \
	"users.is_held, users.created, users.changed, users.secret_cram_md5, "              \
	"coalesce(users.messages_per_hour, -1), coalesce(users.messages_per_day, -1), "     \
	"coalesce(users.recipients_per_hour, -1), coalesce(users.recipients_per_day, -1), " \
	"users.secret_plain"
#define DOMAIN_COLUMNS                                                                    \
	"name, smtp_name, pop3_name, created, changed, coalesce(messages_per_hour, -1), " \
	"coalesce(messages_per_day, -1), coalesce(recipients_per_hour, -1), "             \
	"coalesce(recipients_per_day, -1)"
#define ALIAS_COLUMNS                                                                 \
	"aliases.id, aliases.address, coalesce(owner.address, ''), aliases.created, " \
	"aliases.changed FROM aliases LEFT JOIN users AS owner ON owner.id = aliases.owner_id"

/* Address and name comparisons use the columns' COLLATE NOCASE. */
static const char *const stmt_sql[STMT_COUNT] = {
	[STMT_BEGIN] = "BEGIN IMMEDIATE",
	[STMT_COMMIT] = "COMMIT",
	[STMT_ROLLBACK] = "ROLLBACK",
	[STMT_DOMAIN_ID] = "SELECT id FROM domains WHERE name = ?1",
	[STMT_DOMAIN_INSERT] = "INSERT INTO domains (name, smtp_name, pop3_name, created, changed) "
			       "VALUES (?1, ?2, ?3, ?4, ?4)",
	[STMT_DOMAIN_GET] = "SELECT " DOMAIN_COLUMNS " FROM domains "
			    "WHERE name = ?1",
	[STMT_DOMAIN_LIST] = "SELECT " DOMAIN_COLUMNS " FROM domains "
			     "ORDER BY name",
	[STMT_DOMAIN_COUNT_USERS] = "SELECT count(*) FROM users WHERE domain_id = ?1",
	[STMT_DOMAIN_COUNT_ALIASES] = "SELECT count(*) FROM aliases WHERE domain_id = ?1",
	[STMT_DOMAIN_DELETE_USERS] = "DELETE FROM users WHERE domain_id = ?1",
	[STMT_DOMAIN_DELETE_ALIASES] = "DELETE FROM aliases WHERE domain_id = ?1",
	[STMT_DOMAIN_DELETE] = "DELETE FROM domains WHERE id = ?1",
	[STMT_DOMAIN_SET_NAMES] = "UPDATE domains SET smtp_name = coalesce(?2, smtp_name), "
				  "pop3_name = coalesce(?3, pop3_name), changed = ?4 "
				  "WHERE name = ?1",
	[STMT_USER_ID] = "SELECT id FROM users WHERE address = ?1",
	[STMT_USER_INSERT] =
		"INSERT INTO users (address, domain_id, secret_argon2id, secret_scram, "
		"is_enabled, is_held, created, changed, secret_cram_md5, secret_plain) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)",
	[STMT_USER_GET] = "SELECT " USER_COLUMNS " FROM users WHERE address = ?1",
	[STMT_USER_LIST_ALL] = "SELECT " USER_COLUMNS " FROM users ORDER BY address",
	[STMT_USER_LIST_DOMAIN] = "SELECT " USER_COLUMNS " FROM users "
				  "WHERE domain_id = ?1 ORDER BY address",
	[STMT_USER_DELETE] = "DELETE FROM users WHERE address = ?1",
	[STMT_USER_SET_SECRETS] = "UPDATE users SET "
				  "secret_argon2id = coalesce(?2, secret_argon2id), "
				  "secret_scram = coalesce(?3, secret_scram), "
				  "secret_cram_md5 = coalesce(?5, secret_cram_md5), "
				  "secret_plain = coalesce(?6, secret_plain), changed = ?4 "
				  "WHERE address = ?1",
	[STMT_USER_SET_ENABLED] = "UPDATE users SET is_enabled = ?2, changed = ?3 "
				  "WHERE address = ?1",
	[STMT_USER_SET_HELD] = "UPDATE users SET is_held = ?2, changed = ?3 WHERE address = ?1",
	[STMT_USER_SET_LIMITS] = "UPDATE users SET messages_per_hour = ?2, messages_per_day = ?3, "
				 "recipients_per_hour = ?4, recipients_per_day = ?5, changed = ?6 "
				 "WHERE address = ?1",
	[STMT_DOMAIN_SET_LIMITS] = "UPDATE domains SET messages_per_hour = ?2, "
				   "messages_per_day = ?3, recipients_per_hour = ?4, "
				   "recipients_per_day = ?5, changed = ?6 WHERE name = ?1",
	[STMT_ALIAS_ID] = "SELECT id FROM aliases WHERE address = ?1",
	[STMT_ALIAS_INSERT] =
		"INSERT INTO aliases (address, domain_id, owner_id, created, changed) "
		"VALUES (?1, ?2, ?3, ?4, ?4)",
	[STMT_ALIAS_SET_OWNER] = "UPDATE aliases SET owner_id = ?2 WHERE id = ?1",
	[STMT_ALIAS_TOUCH] = "UPDATE aliases SET changed = ?2 WHERE id = ?1",
	[STMT_ALIAS_GET] = "SELECT " ALIAS_COLUMNS " WHERE aliases.address = ?1",
	[STMT_ALIAS_LIST_ALL] = "SELECT " ALIAS_COLUMNS " ORDER BY aliases.address",
	[STMT_ALIAS_LIST_DOMAIN] =
		"SELECT " ALIAS_COLUMNS " WHERE aliases.domain_id = ?1 ORDER BY aliases.address",
	[STMT_ALIAS_DELETE] = "DELETE FROM aliases WHERE id = ?1",
	/* A target already there (in any ASCII case) keeps its place. */
	[STMT_TARGET_INSERT] = "INSERT INTO alias_targets (alias_id, target, position) "
			       "VALUES (?1, ?2, (SELECT coalesce(max(position), 0) + 1 "
			       "FROM alias_targets WHERE alias_id = ?1)) "
			       "ON CONFLICT (alias_id, target) DO NOTHING",
	[STMT_TARGET_COUNT] = "SELECT count(*) FROM alias_targets WHERE alias_id = ?1",
	[STMT_TARGET_LIST] = "SELECT target FROM alias_targets WHERE alias_id = ?1 "
			     "ORDER BY position",
	[STMT_TARGET_DELETE] = "DELETE FROM alias_targets WHERE alias_id = ?1 AND target = ?2",
};

struct sqlite_store {
	sqlite3 *db;
	char path[PATH_MAX];
	sqlite3_stmt *stmts[STMT_COUNT]; /* prepared on first use, kept until close */
	bool is_in_use[STMT_COUNT];	 /* stepping: a list callback must not reuse it */
};

/* A value to bind: text (NULL text binds SQL NULL) or an integer. */
struct bind {
	bool is_text;
	const char *text;
	int64_t number;
};

#define BIND_TEXT(t) ((struct bind){ .is_text = true, .text = (t) })
#define BIND_INT(n)  ((struct bind){ .is_text = false, .number = (n) })

static int db_error(struct sqlite_store *s, int rc, struct error *err)
{
	return store_sqlite_error(s->db, s->path, rc, err);
}

static sqlite3_stmt *stmt_take(struct sqlite_store *s, enum stmt_id id, const struct bind *binds,
			       size_t bind_count, struct error *err)
{
	int rc;

	if (s->is_in_use[id]) {
		error_set(err, ERROR_SOFTWARE,
			  "%s: statement in use (was the store called from a list callback?)",
			  s->path);
		return NULL;
	}
	if (s->stmts[id] == NULL) {
		rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
					&s->stmts[id], NULL);
		if (rc != SQLITE_OK) {
			db_error(s, rc, err);
			return NULL;
		}
	}
	for (size_t i = 0; i < bind_count; i++) {
		int col = (int) i + 1;

		if (!binds[i].is_text)
			rc = sqlite3_bind_int64(s->stmts[id], col, binds[i].number);
		else if (binds[i].text == NULL)
			rc = sqlite3_bind_null(s->stmts[id], col);
		else
			rc = sqlite3_bind_text(s->stmts[id], col, binds[i].text, -1, SQLITE_STATIC);
		if (rc != SQLITE_OK) {
			db_error(s, rc, err);
			sqlite3_clear_bindings(s->stmts[id]);
			return NULL;
		}
	}
	s->is_in_use[id] = true;
	return s->stmts[id];
}

static void stmt_give_back(struct sqlite_store *s, enum stmt_id id)
{
	sqlite3_reset(s->stmts[id]);
	sqlite3_clear_bindings(s->stmts[id]);
	s->is_in_use[id] = false;
}

/* Runs a statement that returns no rows. *changes_out (may be NULL) gets the
 * number of rows it inserted, updated or deleted. */
static int run(struct sqlite_store *s, enum stmt_id id, const struct bind *binds, size_t bind_count,
	       int *changes_out, struct error *err)
{
	sqlite3_stmt *stmt = stmt_take(s, id, binds, bind_count, err);
	int rc;

	if (stmt == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE) {
		db_error(s, rc, err);
		stmt_give_back(s, id);
		return -1;
	}
	if (changes_out != NULL)
		*changes_out = sqlite3_changes(s->db);
	stmt_give_back(s, id);
	return 0;
}

/* Runs a statement whose first row's first column is an integer. 1 with
 * *value_out set, 0 when there is no row, -1 on error. */
static int run_int(struct sqlite_store *s, enum stmt_id id, const struct bind *binds,
		   size_t bind_count, int64_t *value_out, struct error *err)
{
	sqlite3_stmt *stmt = stmt_take(s, id, binds, bind_count, err);
	int rc, found = 0;

	if (stmt == NULL)
		return -1;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		*value_out = sqlite3_column_int64(stmt, 0);
		found = 1;
	} else if (rc != SQLITE_DONE) {
		found = db_error(s, rc, err);
	}
	stmt_give_back(s, id);
	return found;
}

static int tx_begin(struct sqlite_store *s, struct error *err)
{
	return run(s, STMT_BEGIN, NULL, 0, NULL, err);
}

static int tx_commit(struct sqlite_store *s, struct error *err)
{
	if (run(s, STMT_COMMIT, NULL, 0, NULL, err) == 0)
		return 0;
	/* A COMMIT that failed (busy, disk full) leaves the transaction open. */
	if (!sqlite3_get_autocommit(s->db))
		(void) run(s, STMT_ROLLBACK, NULL, 0, NULL, NULL);
	return -1;
}

/* Ends a failed transaction; the error already reported stays the one reported. */
static int tx_abort(struct sqlite_store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		(void) run(s, STMT_ROLLBACK, NULL, 0, NULL, NULL);
	return -1;
}

/* Copies a text column; false when it does not fit (a file edited by hand). */
static bool column_copy(struct sqlite_store *s, sqlite3_stmt *stmt, int col, char *dst,
			size_t dst_cap, struct error *err)
{
	const unsigned char *text = sqlite3_column_text(stmt, col);
	size_t len = (size_t) sqlite3_column_bytes(stmt, col);

	if (text == NULL)
		len = 0;
	if (len >= dst_cap || (len > 0 && memchr(text, '\0', len) != NULL)) {
		dst[0] = '\0';
		error_set(err, ERROR_IO, "%s: column %s holds a value longer than %zu bytes",
			  s->path, sqlite3_column_name(stmt, col), dst_cap - 1);
		return false;
	}
	if (len > 0)
		memcpy(dst, text, len);
	dst[len] = '\0';
	return true;
}

static void sqlite_close(void *impl)
{
	struct sqlite_store *s = impl;

	if (s == NULL)
		return;
	for (size_t i = 0; i < STMT_COUNT; i++)
		sqlite3_finalize(s->stmts[i]);
	sqlite3_close(s->db);
	free(s);
}

/* Creates a missing file ourselves so that it is 0600 from its first
 * instant: SQLite would create it 0644 (less the umask). */
static int create_file(const char *path, struct error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0) {
		if (errno == EEXIST)
			return 0; /* another process was faster; its file is checked below */
		return error_set(err, ERROR_IO, "%s: cannot create: %s", path, strerror(errno));
	}
	if (close(fd) < 0)
		return error_set(err, ERROR_IO, "%s: %s", path, strerror(errno));
	return 0;
}

static int sqlite_open(const char *location, bool create, void **impl_out, struct error *err)
{
	struct sqlite_store *s;
	struct stat st;
	int rc;

	*impl_out = NULL;
	if (location == NULL || location[0] == '\0')
		return error_set(err, ERROR_CONFIG, "accounts database path is empty");
	if (stat(location, &st) < 0) {
		if (errno != ENOENT)
			return error_set(err, ERROR_IO, "%s: %s", location, strerror(errno));
		if (!create)
			return error_set(err, ERROR_IO, "%s: no such file", location);
		if (create_file(location, err) < 0)
			return -1;
	} else if (!S_ISREG(st.st_mode)) {
		return error_set(err, ERROR_IO, "%s: not a regular file", location);
	}

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return error_set(err, ERROR_TEMPORARY, "out of memory");
	if (!span_copy_cstr(span_from_cstr(location), s->path, sizeof(s->path))) {
		free(s);
		return error_set(err, ERROR_CONFIG, "accounts database path is too long");
	}
	/* Never SQLITE_OPEN_CREATE: the file exists by now, and a file that
	 * vanished in between must not come back 0644. */
	rc = sqlite3_open_v2(location, &s->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
			     NULL);
	if (rc != SQLITE_OK) {
		if (s->db != NULL)
			db_error(s, rc, err);
		else
			error_set(err, ERROR_TEMPORARY, "%s: out of memory", location);
		sqlite_close(s);
		return -1;
	}
	if (store_sqlite_schema_open(s->db, s->path, create, err) < 0) {
		sqlite_close(s);
		return -1;
	}
	*impl_out = s;
	return 0;
}

static int sqlite_schema_version(void *impl)
{
	struct sqlite_store *s = impl;

	return store_sqlite_schema_version(s->db, s->path);
}

/* 1 with *id_out, or -1 with ERROR_NOT_FOUND "domain X does not exist". */
static int domain_id(struct sqlite_store *s, const char *name, int64_t *id_out, struct error *err)
{
	struct bind b[] = { BIND_TEXT(name) };
	int found = run_int(s, STMT_DOMAIN_ID, b, ARRAY_LEN(b), id_out, err);

	if (found == 0)
		return error_set(err, ERROR_NOT_FOUND, "domain %s does not exist", name);
	return found;
}

static int sqlite_domain_add(void *impl, const struct store_domain *domain, int64_t now,
			     struct error *err)
{
	struct sqlite_store *s = impl;
	struct bind id_b[] = { BIND_TEXT(domain->name) };
	struct bind b[] = { BIND_TEXT(domain->name), BIND_TEXT(domain->smtp_name),
			    BIND_TEXT(domain->pop3_name), BIND_INT(now) };
	int64_t id;
	int found;

	if (tx_begin(s, err) < 0)
		return -1;
	found = run_int(s, STMT_DOMAIN_ID, id_b, ARRAY_LEN(id_b), &id, err);
	if (found < 0)
		return tx_abort(s);
	if (found > 0) {
		error_set(err, ERROR_EXISTS, "domain %s already exists", domain->name);
		return tx_abort(s);
	}
	if (run(s, STMT_DOMAIN_INSERT, b, ARRAY_LEN(b), NULL, err) < 0)
		return tx_abort(s);
	return tx_commit(s, err);
}

static const char *plural(int64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static int sqlite_domain_del(void *impl, const char *name, bool force, struct error *err)
{
	struct sqlite_store *s = impl;
	int64_t id, users = 0, aliases = 0;

	if (tx_begin(s, err) < 0)
		return -1;
	if (domain_id(s, name, &id, err) < 0)
		return tx_abort(s);
	{
		struct bind b[] = { BIND_INT(id) };

		if (run_int(s, STMT_DOMAIN_COUNT_USERS, b, ARRAY_LEN(b), &users, err) < 0 ||
		    run_int(s, STMT_DOMAIN_COUNT_ALIASES, b, ARRAY_LEN(b), &aliases, err) < 0)
			return tx_abort(s);
		if ((users > 0 || aliases > 0) && !force) {
			error_set(err, ERROR_PERMISSION,
				  "domain %s has %" PRId64 " %s and %" PRId64
				  " %s; delete them first or force the deletion",
				  name, users, plural(users, "user", "users"), aliases,
				  plural(aliases, "alias", "aliases"));
			return tx_abort(s);
		}
		/* Aliases first: their targets go by ON DELETE CASCADE, and
		 * aliases elsewhere owned by these users lose their owner by
		 * ON DELETE SET NULL. */
		if (run(s, STMT_DOMAIN_DELETE_ALIASES, b, ARRAY_LEN(b), NULL, err) < 0 ||
		    run(s, STMT_DOMAIN_DELETE_USERS, b, ARRAY_LEN(b), NULL, err) < 0 ||
		    run(s, STMT_DOMAIN_DELETE, b, ARRAY_LEN(b), NULL, err) < 0)
			return tx_abort(s);
	}
	return tx_commit(s, err);
}

static void limits_from_row(sqlite3_stmt *stmt, int first, struct store_limits *limits)
{
	limits->messages_per_hour = sqlite3_column_int64(stmt, first);
	limits->messages_per_day = sqlite3_column_int64(stmt, first + 1);
	limits->recipients_per_hour = sqlite3_column_int64(stmt, first + 2);
	limits->recipients_per_day = sqlite3_column_int64(stmt, first + 3);
}

static bool domain_from_row(struct sqlite_store *s, sqlite3_stmt *stmt, struct store_domain *d,
			    struct error *err)
{
	memset(d, 0, sizeof(*d));
	if (!column_copy(s, stmt, 0, d->name, sizeof(d->name), err) ||
	    !column_copy(s, stmt, 1, d->smtp_name, sizeof(d->smtp_name), err) ||
	    !column_copy(s, stmt, 2, d->pop3_name, sizeof(d->pop3_name), err))
		return false;
	d->created = sqlite3_column_int64(stmt, 3);
	d->changed = sqlite3_column_int64(stmt, 4);
	limits_from_row(stmt, 5, &d->limits);
	return true;
}

static int sqlite_domain_get(void *impl, const char *name, struct store_domain *domain_out,
			     struct error *err)
{
	struct sqlite_store *s = impl;
	struct bind b[] = { BIND_TEXT(name) };
	sqlite3_stmt *stmt = stmt_take(s, STMT_DOMAIN_GET, b, ARRAY_LEN(b), err);
	int rc, result = -1;

	if (stmt == NULL)
		return -1;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		result = domain_from_row(s, stmt, domain_out, err) ? 0 : -1;
	else if (rc == SQLITE_DONE)
		error_set(err, ERROR_NOT_FOUND, "domain %s does not exist", name);
	else
		db_error(s, rc, err);
	stmt_give_back(s, STMT_DOMAIN_GET);
	return result;
}

static int sqlite_domain_list(void *impl, store_domain_fn *each, void *ctx, struct error *err)
{
	struct sqlite_store *s = impl;
	sqlite3_stmt *stmt = stmt_take(s, STMT_DOMAIN_LIST, NULL, 0, err);
	struct store_domain d;
	int rc, result = 0;

	if (stmt == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (!domain_from_row(s, stmt, &d, err)) {
			result = -1;
			break;
		}
		if ((result = each(ctx, &d)) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		result = db_error(s, rc, err);
	stmt_give_back(s, STMT_DOMAIN_LIST);
	return result;
}

static int sqlite_domain_set_names(void *impl, const char *name, const char *smtp_name,
				   const char *pop3_name, int64_t now, struct error *err)
{
	struct sqlite_store *s = impl;
	struct bind b[] = { BIND_TEXT(name), BIND_TEXT(smtp_name), BIND_TEXT(pop3_name),
			    BIND_INT(now) };
	int changes;

	if (run(s, STMT_DOMAIN_SET_NAMES, b, ARRAY_LEN(b), &changes, err) < 0)
		return -1;
	if (changes == 0)
		return error_set(err, ERROR_NOT_FOUND, "domain %s does not exist", name);
	return 0;
}

/* 1 when the address is a user (or an alias, for STMT_ALIAS_ID), 0 when not. */
static int address_id(struct sqlite_store *s, enum stmt_id id, const char *address, int64_t *id_out,
		      struct error *err)
{
	struct bind b[] = { BIND_TEXT(address) };

	return run_int(s, id, b, ARRAY_LEN(b), id_out, err);
}

static int sqlite_user_add(void *impl, const struct store_user *user, int64_t now,
			   struct error *err)
{
	struct sqlite_store *s = impl;
	char domain[ADDRESS_DOMAIN_MAX + 1];
	int64_t domain_row, other;
	int found;

	if (!span_copy_cstr(store_address_domain(user->address), domain, sizeof(domain)))
		return error_set(err, ERROR_DATA, "%s: bad domain", user->address);
	if (tx_begin(s, err) < 0)
		return -1;
	if (domain_id(s, domain, &domain_row, err) < 0)
		return tx_abort(s);
	if ((found = address_id(s, STMT_USER_ID, user->address, &other, err)) != 0) {
		if (found > 0)
			error_set(err, ERROR_EXISTS, "user %s already exists", user->address);
		return tx_abort(s);
	}
	if ((found = address_id(s, STMT_ALIAS_ID, user->address, &other, err)) != 0) {
		if (found > 0)
			error_set(err, ERROR_EXISTS, "%s is an alias", user->address);
		return tx_abort(s);
	}
	{
		struct bind b[] = { BIND_TEXT(user->address),
				    BIND_INT(domain_row),
				    BIND_TEXT(user->secret_argon2id),
				    BIND_TEXT(user->secret_scram),
				    BIND_INT(user->is_enabled ? 1 : 0),
				    BIND_INT(user->is_held ? 1 : 0),
				    BIND_INT(now),
				    BIND_TEXT(user->secret_cram_md5),
				    BIND_TEXT(user->secret_plain) };

		if (run(s, STMT_USER_INSERT, b, ARRAY_LEN(b), NULL, err) < 0)
			return tx_abort(s);
	}
	return tx_commit(s, err);
}

static int sqlite_user_del(void *impl, const char *address, struct error *err)
{
	struct sqlite_store *s = impl;
	struct bind b[] = { BIND_TEXT(address) };
	int changes;

	/* Aliases this user owned keep their targets and lose their owner
	 * (ON DELETE SET NULL). */
	if (run(s, STMT_USER_DELETE, b, ARRAY_LEN(b), &changes, err) < 0)
		return -1;
	if (changes == 0)
		return error_set(err, ERROR_NOT_FOUND, "user %s does not exist", address);
	return 0;
}

static bool user_from_row(struct sqlite_store *s, sqlite3_stmt *stmt, struct store_user *u,
			  struct error *err)
{
	memset(u, 0, sizeof(*u));
	if (!column_copy(s, stmt, 0, u->address, sizeof(u->address), err) ||
	    !column_copy(s, stmt, 1, u->secret_argon2id, sizeof(u->secret_argon2id), err) ||
	    !column_copy(s, stmt, 2, u->secret_scram, sizeof(u->secret_scram), err) ||
	    !column_copy(s, stmt, 7, u->secret_cram_md5, sizeof(u->secret_cram_md5), err))
		return false;
	u->is_enabled = sqlite3_column_int64(stmt, 3) != 0;
	u->is_held = sqlite3_column_int64(stmt, 4) != 0;
	u->created = sqlite3_column_int64(stmt, 5);
	u->changed = sqlite3_column_int64(stmt, 6);
	limits_from_row(stmt, 8, &u->limits);
	return column_copy(s, stmt, 12, u->secret_plain, sizeof(u->secret_plain), err);
}

static int sqlite_user_get(void *impl, const char *address, struct store_user *user_out,
			   struct error *err)
{
	struct sqlite_store *s = impl;
	struct bind b[] = { BIND_TEXT(address) };
	sqlite3_stmt *stmt = stmt_take(s, STMT_USER_GET, b, ARRAY_LEN(b), err);
	int rc, result = -1;

	if (stmt == NULL)
		return -1;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		result = user_from_row(s, stmt, user_out, err) ? 0 : -1;
	else if (rc == SQLITE_DONE)
		error_set(err, ERROR_NOT_FOUND, "user %s does not exist", address);
	else
		db_error(s, rc, err);
	stmt_give_back(s, STMT_USER_GET);
	return result;
}

static int sqlite_user_list(void *impl, const char *domain, store_user_fn *each, void *ctx,
			    struct error *err)
{
	struct sqlite_store *s = impl;
	enum stmt_id id = domain == NULL ? STMT_USER_LIST_ALL : STMT_USER_LIST_DOMAIN;
	struct store_user *u;
	struct bind b[1];
	sqlite3_stmt *stmt;
	int64_t domain_row = 0;
	int rc, result = 0;

	if (domain != NULL && domain_id(s, domain, &domain_row, err) < 0)
		return -1;
	b[0] = BIND_INT(domain_row);
	stmt = stmt_take(s, id, b, domain == NULL ? 0 : 1, err);
	if (stmt == NULL)
		return -1;
	u = malloc(sizeof(*u));
	if (u == NULL) {
		stmt_give_back(s, id);
		return error_set(err, ERROR_TEMPORARY, "out of memory");
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (!user_from_row(s, stmt, u, err)) {
			result = -1;
			break;
		}
		result = each(ctx, u);
		if (result != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		result = db_error(s, rc, err);
	stmt_give_back(s, id);
	explicit_bzero(u, sizeof(*u)); /* secrets are hashes, but no need to leave them */
	free(u);
	return result;
}

static int sqlite_user_set_secrets(void *impl, const char *address, const char *secret_argon2id,
				   const char *secret_scram, const char *secret_cram_md5,
				   const char *secret_plain, int64_t now, struct error *err)
{
	struct sqlite_store *s = impl;
	struct bind b[] = {
		BIND_TEXT(address), BIND_TEXT(secret_argon2id), BIND_TEXT(secret_scram),
		BIND_INT(now),	    BIND_TEXT(secret_cram_md5), BIND_TEXT(secret_plain)
	};
	int changes;

	if (run(s, STMT_USER_SET_SECRETS, b, ARRAY_LEN(b), &changes, err) < 0)
		return -1;
	if (changes == 0)
		return error_set(err, ERROR_NOT_FOUND, "user %s does not exist", address);
	return 0;
}

static struct bind bind_limit(int64_t value)
{
	return value == STORE_LIMIT_INHERIT ? BIND_TEXT(NULL) : BIND_INT(value);
}

static int sqlite_set_limits(void *impl, bool is_user, const char *name,
			     const struct store_limits *limits, int64_t now, struct error *err)
{
	struct sqlite_store *s = impl;
	struct bind b[] = { BIND_TEXT(name),
			    bind_limit(limits->messages_per_hour),
			    bind_limit(limits->messages_per_day),
			    bind_limit(limits->recipients_per_hour),
			    bind_limit(limits->recipients_per_day),
			    BIND_INT(now) };
	int changes;

	if (run(s, is_user ? STMT_USER_SET_LIMITS : STMT_DOMAIN_SET_LIMITS, b, ARRAY_LEN(b),
		&changes, err) < 0)
		return -1;
	if (changes == 0)
		return error_set(err, ERROR_NOT_FOUND, "%s %s does not exist",
				 is_user ? "user" : "domain", name);
	return 0;
}

static int sqlite_user_set_flag(void *impl, const char *address, enum store_user_flag flag,
				bool value, int64_t now, struct error *err)
{
	struct sqlite_store *s = impl;
	struct bind b[] = { BIND_TEXT(address), BIND_INT(value ? 1 : 0), BIND_INT(now) };
	enum stmt_id id =
		flag == STORE_USER_FLAG_ENABLED ? STMT_USER_SET_ENABLED : STMT_USER_SET_HELD;
	int changes;

	if (run(s, id, b, ARRAY_LEN(b), &changes, err) < 0)
		return -1;
	if (changes == 0)
		return error_set(err, ERROR_NOT_FOUND, "user %s does not exist", address);
	return 0;
}

static int sqlite_alias_add(void *impl, const struct store_alias *alias, int64_t now,
			    struct error *err)
{
	struct sqlite_store *s = impl;
	char domain[ADDRESS_DOMAIN_MAX + 1];
	int64_t domain_row, alias_row, owner_row = 0, other, target_count;
	bool has_owner = alias->owner[0] != '\0';
	int found;

	if (!span_copy_cstr(store_address_domain(alias->address), domain, sizeof(domain)))
		return error_set(err, ERROR_DATA, "%s: bad domain", alias->address);
	if (tx_begin(s, err) < 0)
		return -1;
	if (domain_id(s, domain, &domain_row, err) < 0)
		return tx_abort(s);
	if ((found = address_id(s, STMT_USER_ID, alias->address, &other, err)) != 0) {
		if (found > 0)
			error_set(err, ERROR_EXISTS, "%s is a user", alias->address);
		return tx_abort(s);
	}
	if (has_owner) {
		found = address_id(s, STMT_USER_ID, alias->owner, &owner_row, err);
		if (found == 0)
			error_set(err, ERROR_NOT_FOUND, "owner %s is not a user", alias->owner);
		if (found <= 0)
			return tx_abort(s);
	}
	found = address_id(s, STMT_ALIAS_ID, alias->address, &alias_row, err);
	if (found < 0)
		return tx_abort(s);
	if (found == 0) {
		struct bind b[] = { BIND_TEXT(alias->address), BIND_INT(domain_row),
				    has_owner ? BIND_INT(owner_row) : BIND_TEXT(NULL),
				    BIND_INT(now) };

		if (alias->target_count == 0) {
			error_set(err, ERROR_DATA, "alias %s needs at least one target",
				  alias->address);
			return tx_abort(s);
		}
		if (run(s, STMT_ALIAS_INSERT, b, ARRAY_LEN(b), NULL, err) < 0)
			return tx_abort(s);
		alias_row = sqlite3_last_insert_rowid(s->db);
	} else {
		struct bind owner_b[] = { BIND_INT(alias_row), BIND_INT(owner_row) };
		struct bind touch_b[] = { BIND_INT(alias_row), BIND_INT(now) };

		if ((has_owner &&
		     run(s, STMT_ALIAS_SET_OWNER, owner_b, ARRAY_LEN(owner_b), NULL, err) < 0) ||
		    run(s, STMT_ALIAS_TOUCH, touch_b, ARRAY_LEN(touch_b), NULL, err) < 0)
			return tx_abort(s);
	}
	for (size_t i = 0; i < alias->target_count; i++) {
		struct bind b[] = { BIND_INT(alias_row), BIND_TEXT(alias->targets[i]) };

		if (run(s, STMT_TARGET_INSERT, b, ARRAY_LEN(b), NULL, err) < 0)
			return tx_abort(s);
	}
	{
		struct bind b[] = { BIND_INT(alias_row) };

		if (run_int(s, STMT_TARGET_COUNT, b, ARRAY_LEN(b), &target_count, err) < 0)
			return tx_abort(s);
	}
	if (target_count > STORE_ALIAS_TARGETS_MAX) {
		error_set(err, ERROR_DATA, "alias %s would have more than %d targets",
			  alias->address, STORE_ALIAS_TARGETS_MAX);
		return tx_abort(s);
	}
	return tx_commit(s, err);
}

/* 1 with *id_out, or -1 with ERROR_NOT_FOUND "alias X does not exist". */
static int alias_id(struct sqlite_store *s, const char *address, int64_t *id_out, struct error *err)
{
	int found = address_id(s, STMT_ALIAS_ID, address, id_out, err);

	if (found == 0)
		return error_set(err, ERROR_NOT_FOUND, "alias %s does not exist", address);
	return found;
}

static int sqlite_alias_del(void *impl, const char *address, const char *target, int64_t now,
			    struct error *err)
{
	struct sqlite_store *s = impl;
	int64_t alias_row, remaining;
	int changes;

	if (tx_begin(s, err) < 0)
		return -1;
	if (alias_id(s, address, &alias_row, err) < 0)
		return tx_abort(s);
	if (target != NULL) {
		struct bind del_b[] = { BIND_INT(alias_row), BIND_TEXT(target) };
		struct bind count_b[] = { BIND_INT(alias_row) };
		struct bind touch_b[] = { BIND_INT(alias_row), BIND_INT(now) };

		if (run(s, STMT_TARGET_DELETE, del_b, ARRAY_LEN(del_b), &changes, err) < 0)
			return tx_abort(s);
		if (changes == 0) {
			error_set(err, ERROR_NOT_FOUND, "%s is not a target of alias %s", target,
				  address);
			return tx_abort(s);
		}
		if (run_int(s, STMT_TARGET_COUNT, count_b, ARRAY_LEN(count_b), &remaining, err) < 0)
			return tx_abort(s);
		if (remaining > 0) {
			if (run(s, STMT_ALIAS_TOUCH, touch_b, ARRAY_LEN(touch_b), NULL, err) < 0)
				return tx_abort(s);
			return tx_commit(s, err);
		}
	}
	{
		/* The whole alias, or its last target went: targets follow by
		 * ON DELETE CASCADE. */
		struct bind b[] = { BIND_INT(alias_row) };

		if (run(s, STMT_ALIAS_DELETE, b, ARRAY_LEN(b), NULL, err) < 0)
			return tx_abort(s);
	}
	return tx_commit(s, err);
}

/* Fills an alias from an ALIAS_COLUMNS row and its targets. */
static bool alias_from_row(struct sqlite_store *s, sqlite3_stmt *stmt, struct store_alias *a,
			   struct error *err)
{
	struct bind b[] = { BIND_INT(sqlite3_column_int64(stmt, 0)) };
	sqlite3_stmt *targets;
	bool is_ok = true;
	int rc;

	memset(a, 0, sizeof(*a));
	if (!column_copy(s, stmt, 1, a->address, sizeof(a->address), err) ||
	    !column_copy(s, stmt, 2, a->owner, sizeof(a->owner), err))
		return false;
	a->created = sqlite3_column_int64(stmt, 3);
	a->changed = sqlite3_column_int64(stmt, 4);
	targets = stmt_take(s, STMT_TARGET_LIST, b, ARRAY_LEN(b), err);
	if (targets == NULL)
		return false;
	while ((rc = sqlite3_step(targets)) == SQLITE_ROW) {
		if (a->target_count == STORE_ALIAS_TARGETS_MAX) {
			error_set(err, ERROR_IO, "%s: alias %s has more than %d targets", s->path,
				  a->address, STORE_ALIAS_TARGETS_MAX);
			is_ok = false;
			break;
		}
		if (!column_copy(s, targets, 0, a->targets[a->target_count], sizeof(a->targets[0]),
				 err)) {
			is_ok = false;
			break;
		}
		a->target_count++;
	}
	if (is_ok && rc != SQLITE_DONE) {
		db_error(s, rc, err);
		is_ok = false;
	}
	stmt_give_back(s, STMT_TARGET_LIST);
	return is_ok;
}

static int sqlite_alias_get(void *impl, const char *address, struct store_alias *alias_out,
			    struct error *err)
{
	struct sqlite_store *s = impl;
	struct bind b[] = { BIND_TEXT(address) };
	sqlite3_stmt *stmt = stmt_take(s, STMT_ALIAS_GET, b, ARRAY_LEN(b), err);
	int rc, result = -1;

	if (stmt == NULL)
		return -1;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		result = alias_from_row(s, stmt, alias_out, err) ? 0 : -1;
	else if (rc == SQLITE_DONE)
		error_set(err, ERROR_NOT_FOUND, "alias %s does not exist", address);
	else
		db_error(s, rc, err);
	stmt_give_back(s, STMT_ALIAS_GET);
	return result;
}

static int sqlite_alias_list(void *impl, const char *domain, store_alias_fn *each, void *ctx,
			     struct error *err)
{
	struct sqlite_store *s = impl;
	enum stmt_id id = domain == NULL ? STMT_ALIAS_LIST_ALL : STMT_ALIAS_LIST_DOMAIN;
	struct store_alias *a;
	struct bind b[1];
	sqlite3_stmt *stmt;
	int64_t domain_row = 0;
	int rc, result = 0;

	if (domain != NULL && domain_id(s, domain, &domain_row, err) < 0)
		return -1;
	b[0] = BIND_INT(domain_row);
	stmt = stmt_take(s, id, b, domain == NULL ? 0 : 1, err);
	if (stmt == NULL)
		return -1;
	/* About 20 KiB: not for a worker thread's stack. */
	a = malloc(sizeof(*a));
	if (a == NULL) {
		stmt_give_back(s, id);
		return error_set(err, ERROR_TEMPORARY, "out of memory");
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (!alias_from_row(s, stmt, a, err)) {
			result = -1;
			break;
		}
		result = each(ctx, a);
		if (result != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		result = db_error(s, rc, err);
	stmt_give_back(s, id);
	free(a);
	return result;
}

const struct store_backend store_sqlite_backend = {
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.schema_version = sqlite_schema_version,
	.domain_add = sqlite_domain_add,
	.domain_del = sqlite_domain_del,
	.domain_get = sqlite_domain_get,
	.domain_list = sqlite_domain_list,
	.domain_set_names = sqlite_domain_set_names,
	.user_add = sqlite_user_add,
	.user_del = sqlite_user_del,
	.user_get = sqlite_user_get,
	.user_list = sqlite_user_list,
	.user_set_secrets = sqlite_user_set_secrets,
	.user_set_flag = sqlite_user_set_flag,
	.set_limits = sqlite_set_limits,
	.alias_add = sqlite_alias_add,
	.alias_del = sqlite_alias_del,
	.alias_get = sqlite_alias_get,
	.alias_list = sqlite_alias_list,
};
