/*
 * store/sqlite/schema: the accounts file's connection settings, its schema
 * and the forward migrations that bring an older file up to date. It must
 * never touch a file that is not ours: a database without our
 * application_id is refused, not migrated.
 *
 * Connection settings (docs/decisions/0002-accounts-store.md):
 *   journal_mode=DELETE  no -wal/-shm files that would outlive a root-run
 *                        `postgate` command with the wrong owner
 *   synchronous=FULL     a commit is on disk
 *   foreign_keys=ON      the schema's references are enforced
 *   busy_timeout         a writer waits for another process's transaction
 *   secure_delete=ON     a deleted secret is overwritten, not left in a free page
 *   trusted_schema=OFF   the file cannot smuggle functions into our statements
 */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "store/sqlite/internal.h"

/* How long a statement waits for another process's lock before the caller
 * gets ERROR_TEMPORARY. A `postgate` command holds the lock for
 * milliseconds; five seconds covers a migration or a forced domain delete. */
#define SQLITE_BUSY_TIMEOUT_MS 5000

/* PRAGMA application_id (SQLite file format 1.3.6): "PGTE". Marks the file as
 * ours so that another program's database is never migrated into one. */
#define SQLITE_APPLICATION_ID 0x50475445

/*
 * Forward migrations. Step N takes a database from version N-1 to N and runs
 * in its own transaction together with PRAGMA user_version = N; a failed step
 * leaves the database at N-1. Steps are never edited once released: a change
 * is a new step. tests/unit/store_test.c builds a version-1 file by hand
 * from a frozen copy of step 1 and checks the path to the current version.
 */
static const char *const migration_steps[] = {
	/* 1: domains and users. */
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
	"CREATE INDEX users_domain_id ON users (domain_id);",

	/* 2: aliases, each with one or more targets and an optional owner who
	 * may send as the alias. */
	"CREATE TABLE aliases ("
	" id INTEGER PRIMARY KEY,"
	" address TEXT NOT NULL COLLATE NOCASE UNIQUE,"
	" domain_id INTEGER NOT NULL REFERENCES domains (id),"
	" owner_id INTEGER REFERENCES users (id) ON DELETE SET NULL,"
	" created INTEGER NOT NULL,"
	" changed INTEGER NOT NULL"
	") STRICT;"
	"CREATE INDEX aliases_domain_id ON aliases (domain_id);"
	"CREATE INDEX aliases_owner_id ON aliases (owner_id);"
	"CREATE TABLE alias_targets ("
	" alias_id INTEGER NOT NULL REFERENCES aliases (id) ON DELETE CASCADE,"
	" target TEXT NOT NULL COLLATE NOCASE,"
	" position INTEGER NOT NULL,"
	" PRIMARY KEY (alias_id, target)"
	") STRICT, WITHOUT ROWID;",

	/* 3: the CRAM-MD5 secret (password-equivalent, decision 0044), stored
	 * only while a listener offers CRAM-MD5. */
	"ALTER TABLE users ADD COLUMN secret_cram_md5 TEXT NOT NULL DEFAULT '';",

	/* 4: sending limits per user and per domain; NULL takes the domain's,
	 * then the configuration's (docs/auth.md). */
	"ALTER TABLE users ADD COLUMN messages_per_hour INTEGER CHECK (messages_per_hour >= 0);"
	"ALTER TABLE users ADD COLUMN messages_per_day INTEGER CHECK (messages_per_day >= 0);"
	"ALTER TABLE users ADD COLUMN recipients_per_hour INTEGER CHECK (recipients_per_hour >= 0);"
	"ALTER TABLE users ADD COLUMN recipients_per_day INTEGER CHECK (recipients_per_day >= 0);"
	"ALTER TABLE domains ADD COLUMN messages_per_hour INTEGER CHECK (messages_per_hour >= 0);"
	"ALTER TABLE domains ADD COLUMN messages_per_day INTEGER CHECK (messages_per_day >= 0);"
	"ALTER TABLE domains ADD COLUMN recipients_per_hour INTEGER "
	"CHECK (recipients_per_hour >= 0);"
	"ALTER TABLE domains ADD COLUMN recipients_per_day INTEGER CHECK (recipients_per_day >= "
	"0);",

	/* 5: the {PLAIN} secret APOP needs (the password itself), stored only
	 * while a POP3 listener offers APOP (decision 0100). */
	"ALTER TABLE users ADD COLUMN secret_plain TEXT NOT NULL DEFAULT '';",
};

#define SCHEMA_VERSION ((int) (sizeof(migration_steps) / sizeof(migration_steps[0])))

static enum error_kind kind_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_NOMEM:
		return ERROR_TEMPORARY;
	case SQLITE_CONSTRAINT:
		return (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			       ? ERROR_EXISTS
			       : ERROR_SOFTWARE;
	case SQLITE_IOERR:
	case SQLITE_CORRUPT:
	case SQLITE_CANTOPEN:
	case SQLITE_FULL:
	case SQLITE_READONLY:
	case SQLITE_NOTADB:
	case SQLITE_PERM:
	case SQLITE_AUTH:
	case SQLITE_NOLFS:
		return ERROR_IO;
	default:
		return ERROR_SOFTWARE;
	}
}

/* Call right after the failing call: sqlite3_errmsg describes the latest. */
int store_sqlite_error(sqlite3 *db, const char *path, int rc, struct error *err)
{
	if ((rc & 0xff) == SQLITE_NOTADB)
		return error_set(err, ERROR_IO, "%s: not an SQLite database", path);
	return error_set(err, kind_of(rc), "%s: %s", path, sqlite3_errmsg(db));
}

/* Runs a constant PRAGMA that returns one integer. */
static int pragma_int(sqlite3 *db, const char *path, const char *sql, int64_t *value_out,
		      struct error *err)
{
	sqlite3_stmt *stmt = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);

	if (rc != SQLITE_OK)
		return store_sqlite_error(db, path, rc, err);
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW) {
		store_sqlite_error(db, path, rc == SQLITE_DONE ? SQLITE_ERROR : rc, err);
		sqlite3_finalize(stmt);
		return -1;
	}
	*value_out = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return 0;
}

static int exec_constant(sqlite3 *db, const char *path, const char *sql, struct error *err)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : store_sqlite_error(db, path, rc, err);
}

/* Ends a failed transaction, if one is open (a failed COMMIT leaves it open). */
static int rollback(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		(void) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static int configure(sqlite3 *db, const char *path, struct error *err)
{
	sqlite3_stmt *stmt = NULL;
	const unsigned char *mode;
	int rc;

	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, SQLITE_BUSY_TIMEOUT_MS);
	/* The first statement reads the file header: a file that is not a
	 * database fails here with SQLITE_NOTADB. */
	rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = DELETE", -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return store_sqlite_error(db, path, rc, err);
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW) {
		store_sqlite_error(db, path, rc == SQLITE_DONE ? SQLITE_ERROR : rc, err);
		sqlite3_finalize(stmt);
		return -1;
	}
	mode = sqlite3_column_text(stmt, 0);
	if (mode == NULL || strcmp((const char *) mode, "delete") != 0) {
		error_set(err, ERROR_IO, "%s: cannot switch to journal_mode=DELETE (it is %s)",
			  path, mode != NULL ? (const char *) mode : "unknown");
		sqlite3_finalize(stmt);
		return -1;
	}
	sqlite3_finalize(stmt);
	return exec_constant(db, path,
			     "PRAGMA foreign_keys = ON;"
			     "PRAGMA synchronous = FULL;"
			     "PRAGMA secure_delete = ON;"
			     "PRAGMA trusted_schema = OFF;",
			     err);
}

static int migrate_step(sqlite3 *db, const char *path, int version, struct error *err)
{
	char pragma[64];
	sqlite3_stmt *check = NULL;
	int64_t current;
	int rc;

	if (exec_constant(db, path, "BEGIN IMMEDIATE", err) < 0)
		return -1;
	/* Another process may have migrated while we waited for the lock. */
	if (pragma_int(db, path, "PRAGMA user_version", &current, err) < 0)
		return rollback(db);
	if (current >= version)
		return exec_constant(db, path, "COMMIT", err) < 0 ? rollback(db) : 0;
	if (exec_constant(db, path, migration_steps[version - 1], err) < 0)
		goto fail;
	/* PRAGMA values cannot be bound; these two are integers from this
	 * file, never input. */
	snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", version);
	if (exec_constant(db, path, pragma, err) < 0)
		goto fail;
	if (version == 1) {
		snprintf(pragma, sizeof(pragma), "PRAGMA application_id = %d",
			 SQLITE_APPLICATION_ID);
		if (exec_constant(db, path, pragma, err) < 0)
			goto fail;
	}
	/* A step that moves data must leave every reference intact. */
	rc = sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &check, NULL);
	if (rc != SQLITE_OK) {
		store_sqlite_error(db, path, rc, err);
		goto fail;
	}
	rc = sqlite3_step(check);
	sqlite3_finalize(check);
	if (rc == SQLITE_ROW) {
		error_set(err, ERROR_SOFTWARE, "%s: foreign key check failed", path);
		goto fail;
	}
	if (rc != SQLITE_DONE) {
		store_sqlite_error(db, path, rc, err);
		goto fail;
	}
	if (exec_constant(db, path, "COMMIT", err) < 0)
		goto fail;
	return 0;
fail:
	rollback(db);
	/* Keep the cause, say where it happened. */
	if (err != NULL) {
		char cause[ERROR_MESSAGE_MAX];

		memcpy(cause, err->message, sizeof(cause));
		error_set(err, err->kind, "migration to schema version %d failed: %s", version,
			  cause);
	}
	return -1;
}

int store_sqlite_schema_open(sqlite3 *db, const char *path, bool create, struct error *err)
{
	int64_t version, application_id, object_count;

	if (configure(db, path, err) < 0)
		return -1;
	if (pragma_int(db, path, "PRAGMA user_version", &version, err) < 0 ||
	    pragma_int(db, path, "PRAGMA application_id", &application_id, err) < 0 ||
	    pragma_int(db, path, "SELECT count(*) FROM sqlite_schema", &object_count, err) < 0)
		return -1;
	if (application_id == 0 && version == 0 && object_count == 0) {
		if (!create)
			return error_set(err, ERROR_IO,
					 "%s: empty database, not an initialized accounts store",
					 path);
	} else if (application_id != SQLITE_APPLICATION_ID) {
		return error_set(err, ERROR_IO,
				 "%s: an SQLite database, but not a postgate accounts store", path);
	}
	if (version > SCHEMA_VERSION)
		return error_set(err, ERROR_IO,
				 "%s: schema version %" PRId64
				 " is newer than this postgate knows (%d); upgrade postgate",
				 path, version, SCHEMA_VERSION);
	for (int step = (int) version + 1; step <= SCHEMA_VERSION; step++)
		if (migrate_step(db, path, step, err) < 0)
			return -1;
	return 0;
}

int store_sqlite_schema_version(sqlite3 *db, const char *path)
{
	int64_t version;

	if (pragma_int(db, path, "PRAGMA user_version", &version, NULL) < 0)
		return -1;
	return (int) version;
}
