/* Tests for src/store/store.c and src/store/sqlite/: opening and
 * creating the file, its mode, refusing what is not ours, migrations from an
 * older schema, and the rules on domains, users and aliases. Each test works
 * in its own temporary directory. Uses the sqlite3 API directly only to make
 * the files the store must cope with (an old schema, a newer one, another
 * program's database, a held lock). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/span.h"
#include "store/store.h"

#define CURRENT_SCHEMA_VERSION 5 /* update with a new migration step, and test the path */

struct tmp {
	char dir[64];
	char db[PATH_MAX];
	struct store *store; /* opened on db by store_setup */
};

static int tmp_setup(void **state)
{
	static struct tmp tmp;

	memset(&tmp, 0, sizeof(tmp));
	snprintf(tmp.dir, sizeof(tmp.dir), "/tmp/store_test.XXXXXX");
	if (mkdtemp(tmp.dir) == NULL)
		return -1;
	snprintf(tmp.db, sizeof(tmp.db), "%s/accounts.db", tmp.dir);
	*state = &tmp;
	return 0;
}

static int tmp_teardown(void **state)
{
	struct tmp *tmp = *state;
	char cmd[PATH_MAX + 16];

	store_close(tmp->store);
	tmp->store = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp->dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A fresh store with domains example.org and example.net. */
static int store_setup(void **state)
{
	struct tmp *tmp;
	struct error err = { 0 };
	struct store_domain d = { 0 };

	if (tmp_setup(state) < 0)
		return -1;
	tmp = *state;
	if (store_open(tmp->db, true, &tmp->store, &err) < 0) {
		fprintf(stderr, "store_open: %s\n", err.message);
		return -1;
	}
	snprintf(d.name, sizeof(d.name), "example.org");
	if (store_domain_add(tmp->store, &d, &err) < 0)
		return -1;
	snprintf(d.name, sizeof(d.name), "example.net");
	return store_domain_add(tmp->store, &d, &err);
}

static void path_in(const struct tmp *tmp, const char *name, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", tmp->dir, name);

	assert_true(n > 0 && (size_t) n < cap);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void sql_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *message = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &message) != SQLITE_OK)
		fail_msg("sqlite3_exec: %s", message);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void add_user(struct store *store, const char *address)
{
	struct store_user u = { 0 };
	struct error err = { 0 };

	snprintf(u.address, sizeof(u.address), "%s", address);
	snprintf(u.secret_argon2id, sizeof(u.secret_argon2id), "{ARGON2ID}$argon2id$v=19$x");
	snprintf(u.secret_scram, sizeof(u.secret_scram), "{SCRAM-SHA-256}4096,a,b,c");
	u.is_enabled = true;
	if (store_user_add(store, &u, &err) < 0)
		fail_msg("store_user_add %s: %s", address, err.message);
}

static void add_alias(struct store *store, const char *address, const char *owner,
		      const char *targets[], size_t target_count)
{
	struct store_alias *a = calloc(1, sizeof(*a));
	struct error err = { 0 };

	assert_non_null(a);
	snprintf(a->address, sizeof(a->address), "%s", address);
	snprintf(a->owner, sizeof(a->owner), "%s", owner);
	for (size_t i = 0; i < target_count; i++)
		snprintf(a->targets[i], sizeof(a->targets[i]), "%s", targets[i]);
	a->target_count = target_count;
	if (store_alias_add(store, a, &err) < 0)
		fail_msg("store_alias_add %s: %s", address, err.message);
	free(a);
}

static void assert_error(int rc, const struct error *err, enum error_kind kind,
			 const char *want_substring)
{
	assert_int_equal(rc, -1);
	if (err->kind != kind || strstr(err->message, want_substring) == NULL)
		fail_msg("got kind %d \"%s\", want kind %d with \"%s\"", err->kind, err->message,
			 kind, want_substring);
}

/* No -wal, -shm or -journal file outlives an operation (journal_mode=DELETE). */
static void assert_no_side_files(const struct tmp *tmp)
{
	static const char *const suffixes[] = { "-wal", "-shm", "-journal" };
	char path[PATH_MAX + 16];

	for (size_t i = 0; i < ARRAY_LEN(suffixes); i++) {
		snprintf(path, sizeof(path), "%s%s", tmp->db, suffixes[i]);
		assert_int_not_equal(access(path, F_OK), 0);
	}
}

static void test_create_mode_and_version(void **state)
{
	struct tmp *tmp = *state;
	struct error err = { 0 };
	struct store_domain d = { 0 };
	struct stat st;
	mode_t old_umask = umask(0); /* SQLite alone would then make the file 0644 */
	int rc = store_open(tmp->db, true, &tmp->store, &err);

	umask(old_umask);
	assert_int_equal(rc, 0);
	assert_int_equal(stat(tmp->db, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(store_schema_version(tmp->store), CURRENT_SCHEMA_VERSION);
	snprintf(d.name, sizeof(d.name), "example.org");
	assert_int_equal(store_domain_add(tmp->store, &d, &err), 0);
	add_user(tmp->store, "alice@example.org");
	assert_no_side_files(tmp);

	/* Open again, without create: the data is there. */
	store_close(tmp->store);
	tmp->store = NULL;
	assert_int_equal(store_open(tmp->db, false, &tmp->store, &err), 0);
	assert_int_equal(store_domain_get(tmp->store, "example.org", &d, &err), 0);
	assert_int_equal(store_schema_version(tmp->store), CURRENT_SCHEMA_VERSION);
	assert_no_side_files(tmp);
}

static void test_open_refusals(void **state)
{
	struct tmp *tmp = *state;
	struct store *store = NULL;
	struct error err = { 0 };
	char path[PATH_MAX + 16], want[PATH_MAX + 32];

	print_message("case: missing file without create\n");
	assert_error(store_open(tmp->db, false, &store, &err), &err, ERROR_IO, ": no such file");
	snprintf(want, sizeof(want), "%s: no such file", tmp->db);
	assert_string_equal(err.message, want);
	assert_null(store);
	assert_int_not_equal(access(tmp->db, F_OK), 0); /* and not created */

	print_message("case: missing directory with create\n");
	path_in(tmp, "no/such/dir/accounts.db", path, sizeof(path));
	assert_error(store_open(path, true, &store, &err), &err, ERROR_IO, "cannot create");

	print_message("case: a text file\n");
	path_in(tmp, "text.db", path, sizeof(path));
	write_file(path,
		   "this is not a database, but it is long enough to have a header....\n"
		   "0123456789012345678901234567890123456789012345678901234567890123456789\n");
	assert_error(store_open(path, true, &store, &err), &err, ERROR_IO,
		     "not an SQLite database");

	print_message("case: a directory\n");
	assert_error(store_open(tmp->dir, true, &store, &err), &err, ERROR_IO,
		     "not a regular file");

	print_message("case: another program's database\n");
	path_in(tmp, "other.db", path, sizeof(path));
	sql_exec(path, "CREATE TABLE t (x);");
	assert_error(store_open(path, true, &store, &err), &err, ERROR_IO,
		     "not a postgate accounts store");

	print_message("case: empty file without create\n");
	path_in(tmp, "empty.db", path, sizeof(path));
	write_file(path, "");
	assert_error(store_open(path, false, &store, &err), &err, ERROR_IO, "empty database");

	print_message("case: empty file with create\n");
	assert_int_equal(store_open(path, true, &store, &err), 0);
	assert_int_equal(store_schema_version(store), CURRENT_SCHEMA_VERSION);
	store_close(store);

	print_message("case: empty path\n");
	assert_error(store_open("", true, &store, &err), &err, ERROR_CONFIG, "path is empty");

	store_close(NULL);
}

/* Schema version 1 as released (src/store/sqlite/schema.c step 1), frozen
 * here: a migration must work on the files that exist, not on what step 1
 * says today. */
static const char schema_v1[] =
	"CREATE TABLE domains ("
	" id INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL COLLATE NOCASE UNIQUE,"
	" smtp_name TEXT NOT NULL,"
	" pop3_name TEXT NOT NULL,"
	" created INTEGER NOT NULL,"
	" changed INTEGER NOT NULL"
	") STRICT;"
	"CREATE TABLE users ("
	" id INTEGER PRIMARY KEY,"
	" address TEXT NOT NULL COLLATE NOCASE UNIQUE,"
	" domain_id INTEGER NOT NULL REFERENCES domains (id),"
	" secret_argon2id TEXT NOT NULL DEFAULT '',"
	" secret_scram TEXT NOT NULL DEFAULT '',"
	" is_enabled INTEGER NOT NULL DEFAULT 1 CHECK (is_enabled IN (0, 1)),"
	" is_held INTEGER NOT NULL DEFAULT 0 CHECK (is_held IN (0, 1)),"
	" created INTEGER NOT NULL,"
	" changed INTEGER NOT NULL"
	") STRICT;"
	"CREATE INDEX users_domain_id ON users (domain_id);"
	"PRAGMA application_id = 1346851909;" /* 0x50475445, "PGTE" */
	"PRAGMA user_version = 1;"
	"INSERT INTO domains VALUES (1, 'example.org', 'smtp.example.org', 'pop.example.org', 100, "
	"100);"
	"INSERT INTO users VALUES (1, 'alice@example.org', 1, '{ARGON2ID}a', '{SCRAM-SHA-256}b', "
	"1, "
	"0, 200, 201);";

static void test_migration_from_v1(void **state)
{
	struct tmp *tmp = *state;
	struct error err = { 0 };
	struct store_user u;
	struct store_alias a;
	const char *targets[] = { "alice@example.org" };

	sql_exec(tmp->db, schema_v1);
	assert_int_equal(store_open(tmp->db, false, &tmp->store, &err), 0);
	assert_int_equal(store_schema_version(tmp->store), CURRENT_SCHEMA_VERSION);
	assert_int_equal(store_user_get(tmp->store, "alice@example.org", &u, &err), 0);
	assert_string_equal(u.secret_argon2id, "{ARGON2ID}a");
	assert_string_equal(u.secret_scram, "{SCRAM-SHA-256}b");
	assert_true(u.is_enabled);
	assert_int_equal(u.created, 200);
	assert_int_equal(u.changed, 201);
	/* What version 2 brought works on the migrated file. */
	add_alias(tmp->store, "postmaster@example.org", "alice@example.org", targets, 1);
	assert_int_equal(store_alias_get(tmp->store, "postmaster@example.org", &a, &err), 0);
	assert_string_equal(a.owner, "alice@example.org");
	/* Version 3: the CRAM-MD5 secret, empty for the users there were. */
	assert_string_equal(u.secret_cram_md5, "");
	assert_int_equal(store_user_set_secrets(tmp->store, "alice@example.org", NULL, NULL,
						"{CRAM-MD5}c", NULL, &err),
			 0);
	assert_int_equal(store_user_get(tmp->store, "alice@example.org", &u, &err), 0);
	assert_string_equal(u.secret_cram_md5, "{CRAM-MD5}c");
	assert_string_equal(u.secret_scram, "{SCRAM-SHA-256}b");
	assert_no_side_files(tmp);
	store_close(tmp->store);
	tmp->store = NULL;
	/* And opening it again does nothing more. */
	assert_int_equal(store_open(tmp->db, false, &tmp->store, &err), 0);
	assert_int_equal(store_schema_version(tmp->store), CURRENT_SCHEMA_VERSION);
}

static void test_newer_version_refused(void **state)
{
	struct tmp *tmp = *state;
	struct error err = { 0 };
	struct store *store = NULL;

	assert_int_equal(store_open(tmp->db, true, &store, &err), 0);
	store_close(store);
	sql_exec(tmp->db, "PRAGMA user_version = 99;");
	assert_error(store_open(tmp->db, false, &store, &err), &err, ERROR_IO,
		     "schema version 99 is newer than this postgate knows (5)");
	assert_null(store);
}

/* Another process holding the write lock past the busy timeout: ERROR_TEMPORARY. */
static void test_locked(void **state)
{
	struct tmp *tmp = *state;
	struct store_domain d = { 0 };
	struct error err = { 0 };
	sqlite3 *other = NULL;
	time_t started;

	assert_int_equal(store_open(tmp->db, true, &tmp->store, &err), 0);
	assert_int_equal(sqlite3_open(tmp->db, &other), SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	snprintf(d.name, sizeof(d.name), "example.org");
	started = time(NULL);
	assert_error(store_domain_add(tmp->store, &d, &err), &err, ERROR_TEMPORARY, "locked");
	assert_true(time(NULL) - started >= 4); /* it waited for the lock */
	assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(other), SQLITE_OK);
	/* The store goes on once the lock is gone. */
	assert_int_equal(store_domain_add(tmp->store, &d, &err), 0);
}

/* ---- domains ---- */

struct names {
	size_t count;
	char items[8][ADDRESS_MAX + 1];
	int stop_after; /* 0: never */
};

static int collect_domain(void *ctx, const struct store_domain *d)
{
	struct names *n = ctx;

	assert_true(n->count < ARRAY_LEN(n->items));
	snprintf(n->items[n->count++], sizeof(n->items[0]), "%s", d->name);
	return n->stop_after != 0 && (int) n->count == n->stop_after ? 7 : 0;
}

static int collect_user(void *ctx, const struct store_user *u)
{
	struct names *n = ctx;

	assert_true(n->count < ARRAY_LEN(n->items));
	snprintf(n->items[n->count++], sizeof(n->items[0]), "%s", u->address);
	return 0;
}

static int collect_alias(void *ctx, const struct store_alias *a)
{
	struct names *n = ctx;

	assert_true(n->count < ARRAY_LEN(n->items));
	snprintf(n->items[n->count++], sizeof(n->items[0]), "%s", a->address);
	return 0;
}

static const struct domain_add_case {
	const char *name, *domain, *smtp_name, *pop3_name;
	enum error_kind want_kind; /* ERROR_NONE: must succeed */
	const char *want_name, *want_smtp, *want_pop3, *want_error;
} domain_add_cases[] = {
	// clang-format off
	{ "defaults", "example.com", "", "", ERROR_NONE,
	  "example.com", "smtp.example.com", "pop.example.com", NULL },
	{ "upper case", "Example.EDU", "", "", ERROR_NONE,
	  "example.edu", "smtp.example.edu", "pop.example.edu", NULL },
	{ "IDN", "bücher.example", "", "", ERROR_NONE,
	  "xn--bcher-kva.example", "smtp.xn--bcher-kva.example", "pop.xn--bcher-kva.example", NULL },
	{ "own server names", "example.info", "Mail.Example.Info", "mail.example.info", ERROR_NONE,
	  "example.info", "mail.example.info", "mail.example.info", NULL },
	{ "duplicate", "example.org", "", "", ERROR_EXISTS,
	  NULL, NULL, NULL, "domain example.org already exists" },
	{ "duplicate in other case", "EXAMPLE.ORG", "", "", ERROR_EXISTS,
	  NULL, NULL, NULL, "domain example.org already exists" },
	{ "bad name", "exa_mple.org", "", "", ERROR_DATA, NULL, NULL, NULL, "domain contains '_'" },
	{ "empty name", "", "", "", ERROR_DATA, NULL, NULL, NULL, "domain is empty" },
	{ "bad server name", "example.biz", "smtp..example.biz", "", ERROR_DATA,
	  NULL, NULL, NULL, "SMTP server name: domain label is empty" },
	// clang-format on
};

static void test_domain_add(void **state)
{
	struct tmp *tmp = *state;

	for (size_t i = 0; i < ARRAY_LEN(domain_add_cases); i++) {
		const struct domain_add_case *c = &domain_add_cases[i];
		struct store_domain d = { 0 }, got;
		struct error err = { 0 };
		time_t before = time(NULL);
		int rc;

		print_message("case: %s\n", c->name);
		snprintf(d.name, sizeof(d.name), "%s", c->domain);
		snprintf(d.smtp_name, sizeof(d.smtp_name), "%s", c->smtp_name);
		snprintf(d.pop3_name, sizeof(d.pop3_name), "%s", c->pop3_name);
		rc = store_domain_add(tmp->store, &d, &err);
		if (c->want_kind != ERROR_NONE) {
			assert_error(rc, &err, c->want_kind, c->want_error);
			continue;
		}
		if (rc != 0)
			fail_msg("%s", err.message);
		assert_int_equal(store_domain_get(tmp->store, c->domain, &got, &err), 0);
		assert_string_equal(got.name, c->want_name);
		assert_string_equal(got.smtp_name, c->want_smtp);
		assert_string_equal(got.pop3_name, c->want_pop3);
		assert_true(got.created >= before && got.created <= time(NULL));
		assert_int_equal(got.changed, got.created);
	}
}

static void test_domain_get_list_set(void **state)
{
	struct tmp *tmp = *state;
	struct store_domain d;
	struct error err = { 0 };
	struct names n = { 0 };

	print_message("case: case-insensitive get\n");
	assert_int_equal(store_domain_get(tmp->store, "EXAMPLE.Org", &d, &err), 0);
	assert_string_equal(d.name, "example.org");

	print_message("case: unknown domain\n");
	assert_error(store_domain_get(tmp->store, "example.com", &d, &err), &err, ERROR_NOT_FOUND,
		     "domain example.com does not exist");

	print_message("case: malformed name\n");
	assert_error(store_domain_get(tmp->store, "example..com", &d, &err), &err, ERROR_DATA,
		     "domain label is empty");

	print_message("case: list in name order\n");
	assert_int_equal(store_domain_list(tmp->store, collect_domain, &n, &err), 0);
	assert_int_equal(n.count, 2);
	assert_string_equal(n.items[0], "example.net");
	assert_string_equal(n.items[1], "example.org");

	print_message("case: a callback stops the walk\n");
	memset(&n, 0, sizeof(n));
	n.stop_after = 1;
	assert_int_equal(store_domain_list(tmp->store, collect_domain, &n, &err), 7);
	assert_int_equal(n.count, 1);

	print_message("case: set server names\n");
	assert_int_equal(
		store_domain_set_names(tmp->store, "example.org", "MX.example.org", NULL, &err), 0);
	assert_int_equal(store_domain_get(tmp->store, "example.org", &d, &err), 0);
	assert_string_equal(d.smtp_name, "mx.example.org");
	assert_string_equal(d.pop3_name, "pop.example.org");
	assert_int_equal(
		store_domain_set_names(tmp->store, "example.org", "", "pop3.example.org", &err), 0);
	assert_int_equal(store_domain_get(tmp->store, "example.org", &d, &err), 0);
	assert_string_equal(d.smtp_name, "smtp.example.org");
	assert_string_equal(d.pop3_name, "pop3.example.org");
	assert_error(store_domain_set_names(tmp->store, "example.com", "", "", &err), &err,
		     ERROR_NOT_FOUND, "domain example.com does not exist");
	assert_error(
		store_domain_set_names(tmp->store, "example.org", "-x.example.org", NULL, &err),
		&err, ERROR_DATA, "SMTP server name: domain label starts with a hyphen");
}

static void test_domain_del(void **state)
{
	struct tmp *tmp = *state;
	struct store_domain d;
	struct store_user u;
	struct store_alias a;
	struct error err = { 0 };
	const char *targets[] = { "alice@example.org", "someone@example.com" };
	const char *net_targets[] = { "bob@example.org" };

	add_user(tmp->store, "alice@example.org");
	add_user(tmp->store, "bob@example.org");
	add_user(tmp->store, "carol@example.net");
	add_alias(tmp->store, "sales@example.org", "alice@example.org", targets, 2);
	/* An alias in another domain, owned by a user of the doomed one. */
	add_alias(tmp->store, "team@example.net", "bob@example.org", net_targets, 1);

	print_message("case: unknown domain\n");
	assert_error(store_domain_del(tmp->store, "example.com", false, &err), &err,
		     ERROR_NOT_FOUND, "domain example.com does not exist");

	print_message("case: users and aliases without force\n");
	assert_error(store_domain_del(tmp->store, "example.org", false, &err), &err,
		     ERROR_PERMISSION, "domain example.org has 2 users and 1 alias");
	assert_int_equal(store_user_get(tmp->store, "alice@example.org", &u, &err), 0);

	print_message("case: force\n");
	assert_int_equal(store_domain_del(tmp->store, "EXAMPLE.org", true, &err), 0);
	assert_error(store_domain_get(tmp->store, "example.org", &d, &err), &err, ERROR_NOT_FOUND,
		     "does not exist");
	assert_error(store_user_get(tmp->store, "alice@example.org", &u, &err), &err,
		     ERROR_NOT_FOUND, "user alice@example.org does not exist");
	assert_error(store_alias_get(tmp->store, "sales@example.org", &a, &err), &err,
		     ERROR_NOT_FOUND, "alias sales@example.org does not exist");
	/* The other domain's alias stays, without its owner. */
	assert_int_equal(store_alias_get(tmp->store, "team@example.net", &a, &err), 0);
	assert_string_equal(a.owner, "");
	assert_int_equal(a.target_count, 1);
	assert_int_equal(store_user_get(tmp->store, "carol@example.net", &u, &err), 0);

	print_message("case: an empty domain goes without force\n");
	assert_int_equal(store_user_del(tmp->store, "carol@example.net", &err), 0);
	assert_int_equal(store_alias_del(tmp->store, "team@example.net", NULL, &err), 0);
	assert_int_equal(store_domain_del(tmp->store, "example.net", false, &err), 0);

	print_message("case: singular counts\n");
	{
		struct store_domain nd = { 0 };

		snprintf(nd.name, sizeof(nd.name), "example.com");
		assert_int_equal(store_domain_add(tmp->store, &nd, &err), 0);
		add_user(tmp->store, "dave@example.com");
		assert_error(store_domain_del(tmp->store, "example.com", false, &err), &err,
			     ERROR_PERMISSION, "domain example.com has 1 user and 0 aliases");
	}
}

/* ---- users ---- */

static const struct user_add_case {
	const char *name, *address;
	enum error_kind want_kind; /* ERROR_NONE: must succeed */
	const char *want_error;
} user_add_cases[] = {
	// clang-format off
	{ "plain", "alice@example.org", ERROR_NONE, NULL },
	{ "other domain", "alice@example.net", ERROR_NONE, NULL },
	{ "upper-case domain", "bob@EXAMPLE.ORG", ERROR_NONE, NULL },
	{ "UTF-8 local part", "jörg@example.org", ERROR_NONE, NULL },
	{ "duplicate", "alice@example.org", ERROR_EXISTS, "user alice@example.org already exists" },
	{ "duplicate in other case", "ALICE@Example.org", ERROR_EXISTS,
	  "user ALICE@example.org already exists" },
	{ "unknown domain", "alice@example.com", ERROR_NOT_FOUND,
	  "domain example.com does not exist" },
	{ "malformed", "alice@@example.org", ERROR_DATA, "more than one '@'" },
	{ "empty", "", ERROR_DATA, "address is empty" },
	// clang-format on
};

static void test_user_add(void **state)
{
	struct tmp *tmp = *state;

	for (size_t i = 0; i < ARRAY_LEN(user_add_cases); i++) {
		const struct user_add_case *c = &user_add_cases[i];
		struct store_user u = { 0 };
		struct error err = { 0 };
		int rc;

		print_message("case: %s\n", c->name);
		snprintf(u.address, sizeof(u.address), "%s", c->address);
		u.is_enabled = true;
		rc = store_user_add(tmp->store, &u, &err);
		if (c->want_kind == ERROR_NONE) {
			if (rc != 0)
				fail_msg("%s", err.message);
		} else {
			assert_error(rc, &err, c->want_kind, c->want_error);
		}
	}
}

static void test_user_get_and_change(void **state)
{
	struct tmp *tmp = *state;
	struct store_user u = { 0 }, got;
	struct error err = { 0 };
	struct names n = { 0 };

	snprintf(u.address, sizeof(u.address), "Alice@Example.ORG");
	snprintf(u.secret_argon2id, sizeof(u.secret_argon2id), "{ARGON2ID}$argon2id$v=19$m=1");
	snprintf(u.secret_scram, sizeof(u.secret_scram), "{SCRAM-SHA-256}4096,s,k,k");
	u.is_enabled = true;
	u.created = 12345; /* ignored */
	assert_int_equal(store_user_add(tmp->store, &u, &err), 0);
	add_user(tmp->store, "jörg@example.org");
	add_user(tmp->store, "bob@example.org");
	add_user(tmp->store, "carol@example.net");

	print_message("case: stored normalized, found in any ASCII case\n");
	assert_int_equal(store_user_get(tmp->store, "alice@example.org", &got, &err), 0);
	assert_string_equal(got.address, "Alice@example.org");
	assert_int_equal(store_user_get(tmp->store, "ALICE@EXAMPLE.ORG", &got, &err), 0);
	assert_string_equal(got.address, "Alice@example.org");
	assert_string_equal(got.secret_argon2id, "{ARGON2ID}$argon2id$v=19$m=1");
	assert_string_equal(got.secret_scram, "{SCRAM-SHA-256}4096,s,k,k");
	assert_true(got.is_enabled);
	assert_false(got.is_held);
	assert_int_not_equal(got.created, 12345);

	print_message("case: non-ASCII letters compare exactly\n");
	assert_int_equal(store_user_get(tmp->store, "jörg@example.org", &got, &err), 0);
	assert_int_equal(store_user_get(tmp->store, "JöRG@example.org", &got, &err), 0);
	assert_error(store_user_get(tmp->store, "jÖrg@example.org", &got, &err), &err,
		     ERROR_NOT_FOUND, "user jÖrg@example.org does not exist");

	print_message("case: IDN domain in U-labels finds the A-label form\n");
	{
		struct store_domain d = { 0 };

		snprintf(d.name, sizeof(d.name), "bücher.example");
		assert_int_equal(store_domain_add(tmp->store, &d, &err), 0);
		add_user(tmp->store, "info@xn--bcher-kva.example");
		assert_int_equal(store_user_get(tmp->store, "info@BÜCHER.example", &got, &err), 0);
		assert_string_equal(got.address, "info@xn--bcher-kva.example");
	}

	print_message("case: list all, in address order\n");
	assert_int_equal(store_user_list(tmp->store, NULL, collect_user, &n, &err), 0);
	assert_int_equal(n.count, 5);
	assert_string_equal(n.items[0], "Alice@example.org");
	assert_string_equal(n.items[1], "bob@example.org");
	assert_string_equal(n.items[2], "carol@example.net");
	assert_string_equal(n.items[3], "info@xn--bcher-kva.example");
	assert_string_equal(n.items[4], "jörg@example.org");

	print_message("case: list one domain\n");
	memset(&n, 0, sizeof(n));
	assert_int_equal(store_user_list(tmp->store, "Example.ORG", collect_user, &n, &err), 0);
	assert_int_equal(n.count, 3);
	assert_string_equal(n.items[0], "Alice@example.org");
	assert_error(store_user_list(tmp->store, "example.com", collect_user, &n, &err), &err,
		     ERROR_NOT_FOUND, "domain example.com does not exist");

	print_message("case: set secrets\n");
	assert_int_equal(store_user_set_secrets(tmp->store, "alice@example.org", "{ARGON2ID}new",
						NULL, "{CRAM-MD5}m", NULL, &err),
			 0);
	assert_int_equal(store_user_get(tmp->store, "alice@example.org", &got, &err), 0);
	assert_string_equal(got.secret_argon2id, "{ARGON2ID}new");
	assert_string_equal(got.secret_scram, "{SCRAM-SHA-256}4096,s,k,k");
	assert_string_equal(got.secret_cram_md5, "{CRAM-MD5}m");
	assert_int_equal(
		store_user_set_secrets(tmp->store, "alice@example.org", NULL, "", NULL, NULL, &err),
		0);
	assert_int_equal(store_user_get(tmp->store, "alice@example.org", &got, &err), 0);
	assert_string_equal(got.secret_argon2id, "{ARGON2ID}new");
	assert_string_equal(got.secret_scram, "");
	assert_string_equal(got.secret_cram_md5, "{CRAM-MD5}m");
	assert_int_equal(
		store_user_set_secrets(tmp->store, "alice@example.org", NULL, NULL, "", NULL, &err),
		0);
	assert_int_equal(store_user_get(tmp->store, "alice@example.org", &got, &err), 0);
	assert_string_equal(got.secret_cram_md5, "");
	assert_error(store_user_set_secrets(tmp->store, "alice@example.org", "plaintext", NULL,
					    NULL, NULL, &err),
		     &err, ERROR_DATA, "argon2id secret has no {SCHEME} prefix");
	assert_error(store_user_set_secrets(tmp->store, "alice@example.org", NULL, NULL, "0123abcd",
					    NULL, &err),
		     &err, ERROR_DATA, "CRAM-MD5 secret has no {SCHEME} prefix");
	assert_error(store_user_set_secrets(tmp->store, "nobody@example.org", "{ARGON2ID}x", NULL,
					    NULL, NULL, &err),
		     &err, ERROR_NOT_FOUND, "user nobody@example.org does not exist");

	print_message("case: sending limits\n");
	assert_int_equal(store_user_get(tmp->store, "alice@example.org", &got, &err), 0);
	assert_int_equal(got.limits.messages_per_hour, STORE_LIMIT_INHERIT);
	assert_int_equal(got.limits.recipients_per_day, STORE_LIMIT_INHERIT);
	{
		struct store_limits limits = { 50, STORE_LIMIT_INHERIT, 0, 300 };
		struct store_limits bad = { -2, STORE_LIMIT_INHERIT, STORE_LIMIT_INHERIT,
					    STORE_LIMIT_INHERIT };
		struct store_domain d;

		assert_int_equal(
			store_user_set_limits(tmp->store, "ALICE@example.org", &limits, &err), 0);
		assert_int_equal(store_user_get(tmp->store, "alice@example.org", &got, &err), 0);
		assert_int_equal(got.limits.messages_per_hour, 50);
		assert_int_equal(got.limits.messages_per_day, STORE_LIMIT_INHERIT);
		assert_int_equal(got.limits.recipients_per_hour, 0);
		assert_int_equal(got.limits.recipients_per_day, 300);
		assert_error(store_user_set_limits(tmp->store, "alice@example.org", &bad, &err),
			     &err, ERROR_DATA, "a sending limit must be between 0 and");
		bad.messages_per_hour = STORE_LIMIT_MAX + 1;
		assert_error(store_user_set_limits(tmp->store, "alice@example.org", &bad, &err),
			     &err, ERROR_DATA, "a sending limit must be between 0 and");
		assert_error(store_user_set_limits(tmp->store, "nobody@example.org", &limits, &err),
			     &err, ERROR_NOT_FOUND, "user nobody@example.org does not exist");
		assert_int_equal(store_domain_set_limits(tmp->store, "Example.ORG", &limits, &err),
				 0);
		assert_int_equal(store_domain_get(tmp->store, "example.org", &d, &err), 0);
		assert_int_equal(d.limits.messages_per_hour, 50);
		assert_int_equal(d.limits.messages_per_day, STORE_LIMIT_INHERIT);
		assert_error(store_domain_set_limits(tmp->store, "example.com", &limits, &err),
			     &err, ERROR_NOT_FOUND, "domain example.com does not exist");
	}

	print_message("case: enabled and held\n");
	assert_int_equal(store_user_set_enabled(tmp->store, "alice@example.org", false, &err), 0);
	assert_int_equal(store_user_set_held(tmp->store, "ALICE@example.org", true, &err), 0);
	assert_int_equal(store_user_get(tmp->store, "alice@example.org", &got, &err), 0);
	assert_false(got.is_enabled);
	assert_true(got.is_held);
	assert_int_equal(store_user_set_enabled(tmp->store, "alice@example.org", true, &err), 0);
	assert_int_equal(store_user_set_held(tmp->store, "alice@example.org", false, &err), 0);
	assert_int_equal(store_user_get(tmp->store, "alice@example.org", &got, &err), 0);
	assert_true(got.is_enabled);
	assert_false(got.is_held);
	assert_error(store_user_set_held(tmp->store, "nobody@example.org", true, &err), &err,
		     ERROR_NOT_FOUND, "user nobody@example.org does not exist");

	print_message("case: delete\n");
	assert_int_equal(store_user_del(tmp->store, "BOB@example.org", &err), 0);
	assert_error(store_user_get(tmp->store, "bob@example.org", &got, &err), &err,
		     ERROR_NOT_FOUND, "user bob@example.org does not exist");
	assert_error(store_user_del(tmp->store, "bob@example.org", &err), &err, ERROR_NOT_FOUND,
		     "user bob@example.org does not exist");
	assert_no_side_files(tmp);
}

static void test_user_secret_checks(void **state)
{
	struct tmp *tmp = *state;
	struct store_user u = { 0 };
	struct error err = { 0 };

	snprintf(u.address, sizeof(u.address), "alice@example.org");
	snprintf(u.secret_scram, sizeof(u.secret_scram), "SCRAM-SHA-256}4096");
	assert_error(store_user_add(tmp->store, &u, &err), &err, ERROR_DATA,
		     "SCRAM secret has no {SCHEME} prefix");
	/* A secret filling the whole array has no NUL. */
	memset(u.secret_scram, 'x', sizeof(u.secret_scram));
	u.secret_scram[0] = '{';
	assert_error(store_user_add(tmp->store, &u, &err), &err, ERROR_DATA,
		     "SCRAM secret is longer than 1023 bytes");
	/* No secrets at all is allowed: a mailbox nobody logs in to yet. */
	u.secret_scram[0] = '\0';
	assert_int_equal(store_user_add(tmp->store, &u, &err), 0);
}

/* ---- aliases ---- */

static void test_alias_rules(void **state)
{
	struct tmp *tmp = *state;
	struct store_alias *a = calloc(1, sizeof(*a));
	struct store_alias got;
	struct store_user u = { 0 };
	struct error err = { 0 };
	const char *targets[] = { "alice@example.org", "Partner@Example.COM" };

	assert_non_null(a);
	add_user(tmp->store, "alice@example.org");
	add_user(tmp->store, "bob@example.org");

	print_message("case: add with owner and a remote target\n");
	add_alias(tmp->store, "Sales@Example.org", "ALICE@example.org", targets, 2);
	assert_int_equal(store_alias_get(tmp->store, "sales@example.org", &got, &err), 0);
	assert_string_equal(got.address, "Sales@example.org");
	assert_string_equal(got.owner, "alice@example.org"); /* the user's stored form */
	assert_int_equal(got.target_count, 2);
	assert_string_equal(got.targets[0], "alice@example.org");
	assert_string_equal(got.targets[1], "Partner@example.com");

	print_message("case: append, duplicates in any case ignored, order kept\n");
	{
		const char *more[] = { "PARTNER@example.com", "bob@example.org",
				       "bob@example.org" };

		add_alias(tmp->store, "sales@example.org", "", more, 3);
	}
	assert_int_equal(store_alias_get(tmp->store, "sales@example.org", &got, &err), 0);
	assert_int_equal(got.target_count, 3);
	assert_string_equal(got.targets[0], "alice@example.org");
	assert_string_equal(got.targets[1], "Partner@example.com");
	assert_string_equal(got.targets[2], "bob@example.org");
	assert_string_equal(got.owner, "alice@example.org"); /* "" leaves the owner */

	print_message("case: change the owner without targets\n");
	add_alias(tmp->store, "sales@example.org", "bob@example.org", NULL, 0);
	assert_int_equal(store_alias_get(tmp->store, "sales@example.org", &got, &err), 0);
	assert_string_equal(got.owner, "bob@example.org");
	assert_int_equal(got.target_count, 3);

	print_message("case: unknown domain\n");
	snprintf(a->address, sizeof(a->address), "sales@example.com");
	snprintf(a->targets[0], sizeof(a->targets[0]), "alice@example.org");
	a->target_count = 1;
	assert_error(store_alias_add(tmp->store, a, &err), &err, ERROR_NOT_FOUND,
		     "domain example.com does not exist");

	print_message("case: the address is a user\n");
	snprintf(a->address, sizeof(a->address), "BOB@example.org");
	assert_error(store_alias_add(tmp->store, a, &err), &err, ERROR_EXISTS,
		     "BOB@example.org is a user");

	print_message("case: a user cannot take an alias's address\n");
	snprintf(u.address, sizeof(u.address), "SALES@example.org");
	assert_error(store_user_add(tmp->store, &u, &err), &err, ERROR_EXISTS,
		     "SALES@example.org is an alias");

	print_message("case: owner is not a user\n");
	snprintf(a->address, sizeof(a->address), "info@example.org");
	snprintf(a->owner, sizeof(a->owner), "carol@example.org");
	assert_error(store_alias_add(tmp->store, a, &err), &err, ERROR_NOT_FOUND,
		     "owner carol@example.org is not a user");
	snprintf(a->owner, sizeof(a->owner), "sales@example.org");
	assert_error(store_alias_add(tmp->store, a, &err), &err, ERROR_NOT_FOUND,
		     "owner sales@example.org is not a user");
	snprintf(a->owner, sizeof(a->owner), "not an address");
	assert_error(store_alias_add(tmp->store, a, &err), &err, ERROR_DATA,
		     "owner: address contains a space");
	a->owner[0] = '\0';

	print_message("case: a new alias needs a target\n");
	a->target_count = 0;
	assert_error(store_alias_add(tmp->store, a, &err), &err, ERROR_DATA,
		     "alias info@example.org needs at least one target");

	print_message("case: malformed target\n");
	a->target_count = 2;
	snprintf(a->targets[1], sizeof(a->targets[1]), "bob@");
	assert_error(store_alias_add(tmp->store, a, &err), &err, ERROR_DATA,
		     "target 2: domain is empty");

	print_message("case: itself as a target\n");
	snprintf(a->targets[1], sizeof(a->targets[1]), "INFO@example.org");
	assert_error(store_alias_add(tmp->store, a, &err), &err, ERROR_DATA,
		     "alias info@example.org cannot have itself as a target");
	assert_error(store_alias_get(tmp->store, "info@example.org", &got, &err), &err,
		     ERROR_NOT_FOUND, "alias info@example.org does not exist");

	print_message("case: target_count past the maximum\n");
	a->target_count = STORE_ALIAS_TARGETS_MAX + 1;
	assert_error(store_alias_add(tmp->store, a, &err), &err, ERROR_DATA,
		     "an alias has at most 64 targets");

	print_message("case: exactly the maximum, then one more\n");
	for (size_t i = 0; i < STORE_ALIAS_TARGETS_MAX; i++)
		snprintf(a->targets[i], sizeof(a->targets[i]), "t%zu@example.com", i);
	a->target_count = STORE_ALIAS_TARGETS_MAX;
	assert_int_equal(store_alias_add(tmp->store, a, &err), 0);
	assert_int_equal(store_alias_get(tmp->store, "info@example.org", &got, &err), 0);
	assert_int_equal(got.target_count, STORE_ALIAS_TARGETS_MAX);
	assert_string_equal(got.targets[63], "t63@example.com");
	snprintf(a->targets[0], sizeof(a->targets[0]), "one-more@example.com");
	a->target_count = 1;
	assert_error(store_alias_add(tmp->store, a, &err), &err, ERROR_DATA,
		     "alias info@example.org would have more than 64 targets");
	/* The refused append changed nothing. */
	assert_int_equal(store_alias_get(tmp->store, "info@example.org", &got, &err), 0);
	assert_int_equal(got.target_count, STORE_ALIAS_TARGETS_MAX);
	/* Adding one already there is no change, so it fits. */
	snprintf(a->targets[0], sizeof(a->targets[0]), "T0@example.com");
	assert_int_equal(store_alias_add(tmp->store, a, &err), 0);

	print_message("case: deleting the owner keeps the alias\n");
	assert_int_equal(store_user_del(tmp->store, "bob@example.org", &err), 0);
	assert_int_equal(store_alias_get(tmp->store, "sales@example.org", &got, &err), 0);
	assert_string_equal(got.owner, "");
	assert_int_equal(got.target_count, 3);
	/* SQLite hands a deleted last row's id to the next row: the next user
	 * must not inherit bob's right to send as the alias. */
	add_user(tmp->store, "mallory@example.org");
	assert_int_equal(store_alias_get(tmp->store, "sales@example.org", &got, &err), 0);
	assert_string_equal(got.owner, "");
	free(a);
}

static void test_alias_del_and_list(void **state)
{
	struct tmp *tmp = *state;
	struct store_alias got;
	struct error err = { 0 };
	struct names n = { 0 };
	const char *two[] = { "a@example.com", "b@example.com" };
	const char *one[] = { "c@example.com" };

	add_alias(tmp->store, "sales@example.org", "", two, 2);
	add_alias(tmp->store, "info@example.org", "", one, 1);
	add_alias(tmp->store, "abuse@example.net", "", one, 1);

	print_message("case: list all, in address order\n");
	assert_int_equal(store_alias_list(tmp->store, NULL, collect_alias, &n, &err), 0);
	assert_int_equal(n.count, 3);
	assert_string_equal(n.items[0], "abuse@example.net");
	assert_string_equal(n.items[1], "info@example.org");
	assert_string_equal(n.items[2], "sales@example.org");

	print_message("case: list one domain\n");
	memset(&n, 0, sizeof(n));
	assert_int_equal(store_alias_list(tmp->store, "example.org", collect_alias, &n, &err), 0);
	assert_int_equal(n.count, 2);

	print_message("case: delete one target\n");
	assert_int_equal(store_alias_del(tmp->store, "sales@example.org", "A@example.com", &err),
			 0);
	assert_int_equal(store_alias_get(tmp->store, "sales@example.org", &got, &err), 0);
	assert_int_equal(got.target_count, 1);
	assert_string_equal(got.targets[0], "b@example.com");

	print_message("case: a target that is not there\n");
	assert_error(store_alias_del(tmp->store, "sales@example.org", "z@example.com", &err), &err,
		     ERROR_NOT_FOUND, "z@example.com is not a target of alias sales@example.org");

	print_message("case: the last target takes the alias with it\n");
	assert_int_equal(store_alias_del(tmp->store, "sales@example.org", "b@example.com", &err),
			 0);
	assert_error(store_alias_get(tmp->store, "sales@example.org", &got, &err), &err,
		     ERROR_NOT_FOUND, "alias sales@example.org does not exist");

	print_message("case: the whole alias, and its targets with it\n");
	/* abuse@ has the highest id; a new alias may get it again and must not
	 * find the old targets. */
	assert_int_equal(store_alias_del(tmp->store, "abuse@example.net", NULL, &err), 0);
	add_alias(tmp->store, "new@example.net", "", two, 1);
	assert_int_equal(store_alias_get(tmp->store, "new@example.net", &got, &err), 0);
	assert_int_equal(got.target_count, 1);
	assert_string_equal(got.targets[0], "a@example.com");
	assert_int_equal(store_alias_del(tmp->store, "INFO@example.org", NULL, &err), 0);
	assert_error(store_alias_del(tmp->store, "info@example.org", NULL, &err), &err,
		     ERROR_NOT_FOUND, "alias info@example.org does not exist");
	assert_error(store_alias_get(tmp->store, "info@example.org", &got, &err), &err,
		     ERROR_NOT_FOUND, "alias info@example.org does not exist");
	assert_no_side_files(tmp);
}

/* A callback that calls the same list again is refused, not a corrupted walk. */
static int reenter(void *ctx, const struct store_domain *d)
{
	struct tmp *tmp = ctx;
	struct error err = { 0 };
	struct names n = { 0 };
	struct store_domain got;

	(void) d;
	/* Other statements are fine... */
	assert_int_equal(store_domain_get(tmp->store, "example.org", &got, &err), 0);
	/* ...the one being walked is not. */
	assert_error(store_domain_list(tmp->store, collect_domain, &n, &err), &err, ERROR_SOFTWARE,
		     "statement in use");
	return 0;
}

static void test_list_reentry(void **state)
{
	struct tmp *tmp = *state;
	struct error err = { 0 };

	assert_int_equal(store_domain_list(tmp->store, reenter, tmp, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_mode_and_version, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_open_refusals, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_migration_from_v1, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_newer_version_refused, tmp_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_locked, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_domain_add, store_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_domain_get_list_set, store_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_domain_del, store_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_user_add, store_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_user_get_and_change, store_setup,
						tmp_teardown),
		cmocka_unit_test_setup_teardown(test_user_secret_checks, store_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_alias_rules, store_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_alias_del_and_list, store_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_list_reentry, store_setup, tmp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
