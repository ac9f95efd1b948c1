/*
 * test_walvfs.c - the runner's WAL-gathering VFS (runner-daemon/walvfs.c).
 *
 * The unix VFS's pwrite is replaced (xSetSystemCall) by one that counts the
 * writes to WAL files and can fail them, so the tests see the system calls
 * the VFS makes. A second connection on the plain unix VFS reads back.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testhelp.h"

#include <sqlite3.h>

#include "walvfs.h"

typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);

static pwrite_fn real_pwrite;
static const char *pwrite_name; /* "pwrite64" or "pwrite", as SQLite was built */
static int wal_writes;          /* pwrite calls on a WAL file */
static bool fail_wal_writes;    /* they fail with ENOSPC */

static bool is_wal(int fd)
{
	char link[64], path[1024];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof path - 1);
	if (n < 4)
		return false;
	path[n] = '\0';
	return strcmp(path + n - 4, "-wal") == 0;
}

static ssize_t counting_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (is_wal(fd)) {
		wal_writes++;
		if (fail_wal_writes) {
			errno = ENOSPC;
			return -1;
		}
	}
	return real_pwrite(fd, buf, n, off);
}

typedef struct fixture {
	char *dir;
	char path[512];
	sqlite3 *db;     /* through walvfs */
	sqlite3 *reader; /* through the plain unix VFS */
} fixture;

/* Once: counting pwrite under the unix VFS, walvfs over it as the default. */
static int group_setup(void **state)
{
	(void)state;
	sqlite3_vfs *unix_vfs = sqlite3_vfs_find("unix");
	assert_non_null(unix_vfs);
	static const char *const names[] = {"pwrite64", "pwrite"};
	for (size_t i = 0; i < 2 && !pwrite_name; i++) {
		pwrite_fn fn = (pwrite_fn)unix_vfs->xGetSystemCall(unix_vfs, names[i]);
		if (fn && unix_vfs->xSetSystemCall(unix_vfs, names[i],
						   (sqlite3_syscall_ptr)counting_pwrite) == SQLITE_OK) {
			real_pwrite = fn;
			pwrite_name = names[i];
		}
	}
	assert_non_null(pwrite_name);
	assert_int_equal(walvfs_register(), 0);
	assert_string_equal(sqlite3_vfs_find(NULL)->zName, WALVFS_NAME);
	return 0;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err ? err : "?");
}

static long long int_of(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	long long v = -1;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->dir = th_mkdtemp();
	snprintf(f->path, sizeof f->path, "%s/w.db", f->dir);
	assert_int_equal(sqlite3_open(f->path, &f->db), SQLITE_OK);
	exec_ok(f->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
		       " PRAGMA wal_autocheckpoint = 0; CREATE TABLE t(k INTEGER PRIMARY KEY, b BLOB)");
	assert_int_equal(sqlite3_open_v2(f->path, &f->reader, SQLITE_OPEN_READWRITE, "unix"),
			 SQLITE_OK);
	fail_wal_writes = false;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	fail_wal_writes = false;
	sqlite3_close(f->reader);
	sqlite3_close(f->db);
	th_rmtree(f->dir);
	free(f);
	return 0;
}

/* A commit of a dozen pages writes the WAL once, where SQLite writes 24 times. */
static void test_commit_is_one_write(void **state)
{
	fixture *f = *state;
	exec_ok(f->db, "INSERT INTO t VALUES (1, zeroblob(100))"); /* the WAL's header */
	wal_writes = 0;
	exec_ok(f->db, "BEGIN");
	for (int i = 0; i < 12; i++)
		exec_ok(f->db, "INSERT INTO t(b) VALUES (randomblob(3500))");
	exec_ok(f->db, "COMMIT");
	if (wal_writes != 1)
		fail_msg("the commit wrote the WAL %d times", wal_writes);
	assert_int_equal(int_of(f->reader, "SELECT count(*) FROM t"), 13);
}

/* Commits larger than one write of the base VFS arrive whole. */
static void test_large_commit_arrives_whole(void **state)
{
	fixture *f = *state;
	exec_ok(f->db, "BEGIN");
	for (int i = 0; i < 300; i++)
		exec_ok(f->db, "INSERT INTO t(b) VALUES (randomblob(3000))");
	exec_ok(f->db, "COMMIT");
	assert_int_equal(int_of(f->reader, "SELECT count(*) FROM t"), 300);
	assert_int_equal(int_of(f->reader, "SELECT sum(length(b)) FROM t"), 900000);
	exec_ok(f->reader, "PRAGMA wal_checkpoint(TRUNCATE)");
	assert_int_equal(int_of(f->reader, "SELECT count(*) FROM pragma_integrity_check"
					   " WHERE integrity_check <> 'ok'"), 0);
	for (int i = 0; i < 50; i++) /* the log starts over */
		exec_ok(f->db, "UPDATE t SET b = randomblob(2000) WHERE k % 50 = 0");
	assert_int_equal(int_of(f->reader, "SELECT sum(length(b)) FROM t"),
			 900000 - 6 * 1000);
}

/*
 * A write that fails fails the COMMIT with SQLite's error (the disk is
 * full), before anything is published: readers keep the last commit, and
 * the writer goes on once writes succeed again.
 */
static void test_failed_write_fails_the_commit(void **state)
{
	fixture *f = *state;
	exec_ok(f->db, "INSERT INTO t VALUES (1, zeroblob(100))");
	exec_ok(f->db, "BEGIN");
	for (int i = 0; i < 5; i++)
		exec_ok(f->db, "INSERT INTO t(b) VALUES (randomblob(3500))");
	fail_wal_writes = true;
	int rc = sqlite3_exec(f->db, "COMMIT", NULL, NULL, NULL);
	fail_wal_writes = false;
	assert_int_equal(rc, SQLITE_FULL);
	if (!sqlite3_get_autocommit(f->db))
		exec_ok(f->db, "ROLLBACK");
	assert_int_equal(int_of(f->reader, "SELECT count(*) FROM t"), 1);
	assert_int_equal(int_of(f->db, "SELECT count(*) FROM t"), 1);
	exec_ok(f->db, "INSERT INTO t(b) VALUES (randomblob(3500))");
	assert_int_equal(int_of(f->reader, "SELECT count(*) FROM t"), 2);
	exec_ok(f->reader, "PRAGMA wal_checkpoint(TRUNCATE)");
	assert_int_equal(int_of(f->reader, "SELECT count(*) FROM pragma_integrity_check"
					   " WHERE integrity_check <> 'ok'"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commit_is_one_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_commit_arrives_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_write_fails_the_commit, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
