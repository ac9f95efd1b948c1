/* test_checkpoint.c - the runner's WAL checkpointer (runner-daemon/checkpoint.c). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testhelp.h"

#include "checkpoint.h"
#include "store.h"

typedef struct fixture {
	char *dir;
	char path[512];
	pw_store *store;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	char *err = NULL;
	assert_non_null(f);
	f->dir = th_mkdtemp();
	snprintf(f->path, sizeof f->path, "%s/pipewright.db", f->dir);
	if (pw_store_open(f->path, &f->store, &err) != PW_OK)
		fail_msg("open: %s", err);
	assert_int_equal(sqlite3_exec(pw_store_db(f->store),
				      "CREATE TABLE scratch(b BLOB)", NULL, NULL, NULL),
			 SQLITE_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	pw_store_close(f->store);
	th_rmtree(f->dir);
	free(f);
	return 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* n commits of one row each (a row of 3,000 bytes: a page or two a commit). */
static void commit_rows(sqlite3 *db, int n)
{
	for (int i = 0; i < n; i++)
		assert_int_equal(sqlite3_exec(db, "INSERT INTO scratch VALUES (zeroblob(3000))",
					      NULL, NULL, NULL),
				 SQLITE_OK);
}

/* Frames in the log now (it then copies them, as a checkpoint does). */
static int log_frames(sqlite3 *db)
{
	int frames = -1;
	assert_int_equal(sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE,
						   &frames, NULL),
			 SQLITE_OK);
	return frames;
}

static long rows(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM scratch", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	long n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static ckpt *start(fixture *f)
{
	char *err = NULL;
	ckpt *c = ckpt_start(f->store, &err);
	if (!c)
		fail_msg("ckpt_start: %s", err);
	return c;
}

/*
 * 3,000 commits in passes of 100 with pauses (as a runner's passes come):
 * the thread ran the checkpoints, no commit ran one, and the log started
 * over (it holds fewer frames than the commits wrote in all).
 */
static void test_thread_checkpoints_apart_from_the_commits(void **state)
{
	fixture *f = *state;
	sqlite3 *db = pw_store_db(f->store);
	ckpt *c = start(f);

	for (int pass = 0; pass < 30; pass++) {
		commit_rows(db, 100);
		sleep_ms(50);
	}
	assert_true(ckpt_count(c, false) >= 2);
	assert_int_equal(ckpt_count(c, true), 0);
	assert_null(ckpt_take_error(c));
	ckpt_stop(c);
	int frames = log_frames(db);
	assert_true(frames >= 0 && frames < CKPT_FRAMES + 500);
	assert_int_equal(rows(db), 3000);
}

/*
 * A reader's snapshot holds every checkpoint back, so the log grows; from
 * 4 x CKPT_FRAMES frames on the writer's commits run checkpoints
 * themselves, and once the reader is gone the log starts over.
 */
static void test_writer_checkpoints_at_the_bound(void **state)
{
	fixture *f = *state;
	sqlite3 *db = pw_store_db(f->store), *reader = NULL;
	ckpt *c = start(f);

	commit_rows(db, 10);
	assert_int_equal(sqlite3_open(f->path, &reader), SQLITE_OK);
	assert_int_equal(sqlite3_exec(reader, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(rows(reader), 10); /* the snapshot is taken */
	commit_rows(db, 2500);
	assert_true(ckpt_count(c, true) >= 1);
	assert_int_equal(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(reader), SQLITE_OK);
	for (int pass = 0; pass < 10; pass++) {
		commit_rows(db, 20);
		sleep_ms(50);
	}
	ckpt_stop(c);
	int frames = log_frames(db);
	assert_true(frames >= 0 && frames < 4 * CKPT_FRAMES);
	assert_int_equal(rows(db), 2710);
}

/* After ckpt_stop the writer's commits checkpoint as SQLite's do. */
static void test_stop_gives_the_checkpoints_back(void **state)
{
	fixture *f = *state;
	sqlite3 *db = pw_store_db(f->store);

	ckpt_stop(start(f));
	commit_rows(db, 1500);
	int frames = log_frames(db);
	assert_true(frames >= 0 && frames < CKPT_FRAMES + 10);
	assert_int_equal(rows(db), 1500);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_thread_checkpoints_apart_from_the_commits),
		T(test_writer_checkpoints_at_the_bound),
		T(test_stop_gives_the_checkpoints_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
