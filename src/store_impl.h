/*
 * store_impl.h - what store.c (the connection, schema, migrations and
 * transactions) gives store_write.c (the shared writes); internal to
 * src/store*.c, not installed.
 */
#ifndef PW_STORE_IMPL_H
#define PW_STORE_IMPL_H

#include "store.h"

/* Logs the connection's last error. Returns PW_ERR. */
int store_log_db_error(sqlite3 *db);
/* Logs a message that is not an SQLite error. Returns PW_ERR. */
int store_log_error(const char *msg);

/* Puts a cached statement back: reset, bindings cleared. */
void store_stmt_done(sqlite3_stmt *st);
/*
 * Steps a bound statement that returns no row, then puts it back. Returns
 * PW_OK, or PW_ERR (logged).
 */
int store_stmt_run(pw_store *s, sqlite3_stmt *st);

/*
 * Opens a unit of work: a BEGIN IMMEDIATE transaction, or a savepoint when
 * the caller already has a transaction open (*nested is set then), so that
 * the store's own multi-statement writes compose with a caller's.
 */
int store_unit_begin(pw_store *s, int *nested);
/* Commits what store_unit_begin opened. */
int store_unit_commit(pw_store *s, int nested);
/* Undoes what store_unit_begin opened; the caller's transaction stays open. */
void store_unit_rollback(pw_store *s, int nested);

/*
 * Sets what pw_store_errcode reports until the next BEGIN (SQLITE_OK
 * clears it): a failure of the writer connection, handed to the caller's.
 */
void store_set_fault(pw_store *s, int code);

#endif
