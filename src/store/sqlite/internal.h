/*
 * store/sqlite/internal.h: what sqlite.c (the statements) and schema.c (the
 * connection settings and migrations) share. Not for use outside
 * src/store/sqlite/.
 */
#ifndef POSTGATE_STORE_SQLITE_INTERNAL_H
#define POSTGATE_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>

#include "core/error.h"

/* Fills err from rc and the connection's latest message, as "<path>: <what>",
 * with the error kind callers branch on (busy or locked: ERROR_TEMPORARY;
 * disk, permissions, not a database: ERROR_IO). Call right after the failing
 * call. Always -1. */
int store_sqlite_error(sqlite3 *db, const char *path, int rc, struct error *err);

/* Applies the connection settings to a freshly opened db, checks that the
 * file is ours (or, with create, empty) and migrates it to the current
 * schema. 0 or -1 with ERROR_IO for a file that is not ours or too new. */
int store_sqlite_schema_open(sqlite3 *db, const char *path, bool create, struct error *err);

/* PRAGMA user_version, or -1. */
int store_sqlite_schema_version(sqlite3 *db, const char *path);

#endif
