/*
 * checkpoint.c - the runner's WAL checkpointer (see checkpoint.h).
 *
 * The writer's WAL hook runs after each of its commits with the log's
 * length; from CKPT_FRAMES frames on it flags a checkpoint and wakes the
 * thread (a mutex and a condition variable, taken only then).
 *
 * The log starts over (SQLite's restart) only when a write transaction
 * begins while every frame is copied. Frames committed during a
 * checkpoint are not, so after copying the bulk the thread copies what
 * came meanwhile, a few frames, again (CATCH_UP passes at most) to
 * land between two commits. Should the writer outpace it all the same,
 * the log is bounded: from CKPT_BOUND frames on, the writer's commit
 * copies the rest itself, as SQLite's own checkpoints do.
 */
#include "checkpoint.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define CATCH_UP 4                      /* passes per wake-up */
#define CKPT_BOUND (4 * CKPT_FRAMES)    /* frames: the writer copies */

struct ckpt {
	sqlite3 *writer;        /* the runner's connection (not owned) */
	pw_store *own;          /* the thread's connection */
	pthread_t thread;
	pthread_mutex_t lock;   /* guards the fields below */
	pthread_cond_t wake;
	bool wanted;            /* a commit asked for a checkpoint */
	bool stopping;
	long count;             /* checkpoints the thread ran */
	long by_writer;         /* checkpoints the writer's commits ran */
	char *error;            /* the last failure, until taken */
};

/*
 * The writer's WAL hook, in its COMMIT: flags a checkpoint from
 * CKPT_FRAMES frames on; from CKPT_BOUND on, runs one (SQLITE_BUSY, the
 * thread's under way, is no failure: the next commit tries again).
 */
static int on_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
	ckpt *c = arg;
	int rc = SQLITE_OK;

	if (frames < CKPT_FRAMES)
		return SQLITE_OK;
	if (frames >= CKPT_BOUND)
		rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	pthread_mutex_lock(&c->lock);
	c->by_writer += frames >= CKPT_BOUND && rc == SQLITE_OK;
	c->wanted = true;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	return SQLITE_OK;
}

/*
 * Runs one PASSIVE checkpoint on the thread's connection. Returns the
 * log's length it saw (frames), or -1 after a failure, which is kept
 * for ckpt_take_error.
 */
static int checkpoint_once(ckpt *c)
{
	sqlite3 *db = pw_store_db(c->own);
	int frames = -1;
	int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, NULL);
	char *error = rc == SQLITE_OK ? NULL
		: pw_asprintf("WAL checkpoint: %s", sqlite3_errmsg(db));

	pthread_mutex_lock(&c->lock);
	c->count++;
	if (error) {
		free(c->error);
		c->error = error;
	}
	pthread_mutex_unlock(&c->lock);
	return error ? -1 : frames;
}

/* A wake-up's work: the bulk, then what was committed meanwhile. */
static void checkpoint_all(ckpt *c)
{
	int seen = checkpoint_once(c), last = -1;
	for (int pass = 1; pass < CATCH_UP && seen > last; pass++) {
		last = seen;
		seen = checkpoint_once(c);
	}
}

static void *thread_main(void *arg)
{
	ckpt *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->wanted && !c->stopping)
			pthread_cond_wait(&c->wake, &c->lock);
		if (c->stopping)
			break;
		c->wanted = false;
		pthread_mutex_unlock(&c->lock);
		checkpoint_all(c);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Starts the thread with every signal blocked (they stay the main thread's). */
static int start_thread(ckpt *c)
{
	sigset_t all, old;
	sigfillset(&all);
	if (pthread_sigmask(SIG_SETMASK, &all, &old) != 0)
		return -1;
	int rc = pthread_create(&c->thread, NULL, thread_main, c);
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc == 0 ? 0 : -1;
}

ckpt *ckpt_start(pw_store *writer, char **err)
{
	ckpt *c = calloc(1, sizeof *c);
	if (!c) {
		*err = pw_asprintf("WAL checkpointer: out of memory");
		return NULL;
	}
	c->writer = pw_store_db(writer);
	if (pw_store_open_existing(pw_store_path(writer), &c->own, err) != PW_OK) {
		free(c);
		return NULL;
	}
	if (pthread_mutex_init(&c->lock, NULL) != 0)
		goto fail_mutex;
	if (pthread_cond_init(&c->wake, NULL) != 0)
		goto fail_cond;
	if (start_thread(c) != 0)
		goto fail_thread;
	sqlite3_wal_hook(c->writer, on_commit, c); /* replaces the automatic one */
	return c;

fail_thread:
	pthread_cond_destroy(&c->wake);
fail_cond:
	pthread_mutex_destroy(&c->lock);
fail_mutex:
	pw_store_close(c->own);
	free(c);
	*err = pw_asprintf("WAL checkpointer: cannot start its thread");
	return NULL;
}

void ckpt_stop(ckpt *c)
{
	if (!c)
		return;
	sqlite3_wal_autocheckpoint(c->writer, CKPT_FRAMES); /* the hook is gone */
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	pw_store_close(c->own);
	free(c->error);
	free(c);
}

long ckpt_count(ckpt *c, bool by_writer)
{
	pthread_mutex_lock(&c->lock);
	long n = by_writer ? c->by_writer : c->count;
	pthread_mutex_unlock(&c->lock);
	return n;
}

char *ckpt_take_error(ckpt *c)
{
	pthread_mutex_lock(&c->lock);
	char *error = c->error;
	c->error = NULL;
	pthread_mutex_unlock(&c->lock);
	return error;
}
