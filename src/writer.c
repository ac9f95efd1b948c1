/*
 * writer.c - group commit: the writes of a process's threads share one
 * writer connection and one transaction per batch; see pw_store_write in
 * store.h and bench/README.md, "Writes under load".
 *
 * A thread with a write queues it as a job. When no batch is being
 * written, it leads: it takes up to BATCH_MAX queued jobs, writes them in
 * one BEGIN IMMEDIATE ... COMMIT on the writer connection, each job in
 * its own savepoint, and wakes their threads with their results. Jobs
 * queued meanwhile wait; the head of them leads the next batch.
 */
#define _POSIX_C_SOURCE 200809L
#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "store_impl.h"
#include "txn.h"

/* The most jobs one transaction holds: bounds a batch's commit latency. */
#define BATCH_MAX 64

/* A queued write, on its thread's stack. */
typedef struct job {
	pw_write_fn fn;
	void *arg;
	int rc;              /* fn's result, or PW_ERR when the batch failed */
	int code;            /* the SQLite code of a PW_ERR, or SQLITE_OK */
	bool done;           /* rc and code are final */
	bool lead;           /* this job's thread leads the next batch */
	pthread_cond_t cv;
	struct job *next;
} job;

static struct {
	pthread_mutex_t mu;
	bool leading;        /* a batch is being written: queued jobs wait */
	job *head, *tail;    /* queued jobs, FIFO */
	pw_store *conn;      /* the writer connection; only the leader uses it */
} writer = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* The failure code of a connection's last failure, never SQLITE_OK. */
static int failure_code(pw_store *w)
{
	int code = w ? pw_store_errcode(w) : SQLITE_CANTOPEN;
	return code == SQLITE_OK ? SQLITE_ERROR : code;
}

/*
 * The writer connection for the database at the caller's path, opened
 * (never created) when there is none, it is another path's, or its file
 * was deleted or replaced. NULL (logged) when it cannot be opened.
 * Leader only.
 */
static pw_store *writer_conn(pw_store *s)
{
	const char *path = pw_store_path(s);
	pw_store *w = writer.conn;

	if (w && (strcmp(pw_store_path(w), path) != 0 || pw_store_moved(w))) {
		pw_store_close(w);
		w = writer.conn = NULL;
	}
	if (!w && pw_store_open_existing(path, &w, NULL) == PW_OK)
		writer.conn = w;
	return w;
}

/* Gives every job of the batch (n jobs from first) the failure code. */
static void fail_all(job *first, int n, int code)
{
	job *j = first;
	for (int i = 0; i < n; i++, j = j->next) {
		j->rc = PW_ERR;
		j->code = code;
	}
}

/*
 * Runs one job in its own savepoint of the open transaction: its failure
 * undoes only its writes. Sets j->rc and j->code. Returns false when the
 * transaction itself is gone (SQLite rolled it back, e.g. disk full).
 */
static bool run_job(pw_store *w, job *j)
{
	int nested = 0;

	store_set_fault(w, SQLITE_OK);
	j->code = SQLITE_OK;
	j->rc = store_unit_begin(w, &nested);
	assert(nested || j->rc != PW_OK);
	if (j->rc == PW_OK) {
		j->rc = j->fn(w, j->arg);
		if (j->rc == PW_OK)
			j->rc = store_unit_commit(w, nested);
		if (j->rc != PW_OK) {
			if (j->rc == PW_ERR)
				j->code = failure_code(w);
			store_unit_rollback(w, nested);
		}
	} else {
		j->code = failure_code(w);
	}
	return !sqlite3_get_autocommit(pw_store_db(w));
}

/*
 * Writes the batch (n jobs from first) in the transaction the leader
 * began on the writer connection w. Every job gets its result; when the
 * transaction is lost or COMMIT fails, every job gets the failure. Wakes
 * the runner when a run was written.
 */
static void write_batch(pw_store *w, job *first, int n)
{
	bool wrote = false;
	job *j = first;

	for (int i = 0; i < n; i++, j = j->next) {
		if (!run_job(w, j)) {
			fail_all(first, n, j->code != SQLITE_OK ? j->code : failure_code(w));
			pw_store_rollback(w);
			return;
		}
		wrote |= j->rc == PW_OK;
	}
	if (pw_store_commit(w) != PW_OK) {
		int code = failure_code(w);
		pw_store_rollback(w);
		fail_all(first, n, code);
		return;
	}
	if (wrote)
		pw_store_wake(w);
}

/*
 * Leads a batch: j is the queue's head. Begins the transaction on the
 * writer connection after this thread's turn in the write queue (txn.h),
 * so that the FIFO path's writers and the batches take turns; jobs keep
 * queueing meanwhile. Then takes up to BATCH_MAX jobs, writes them, marks
 * them done, wakes their threads and hands the lead to the next queued
 * job. Under writer.mu, which it lets go while it waits and writes.
 */
static void lead(pw_store *s, job *j)
{
	job *last = j;
	int n = 1;

	assert(writer.head == j && writer.leading);
	pthread_mutex_unlock(&writer.mu);
	pw_store *w = writer_conn(s);
	int code = !w ? failure_code(NULL) : pw_store_begin(w) != PW_OK ? failure_code(w) : SQLITE_OK;
	pthread_mutex_lock(&writer.mu);
	while (n < BATCH_MAX && last->next) {
		last = last->next;
		n++;
	}
	writer.head = last->next;
	if (!writer.head)
		writer.tail = NULL;
	pthread_mutex_unlock(&writer.mu);
	if (code == SQLITE_OK)
		write_batch(w, j, n);
	else
		fail_all(j, n, code);
	pthread_mutex_lock(&writer.mu);
	for (job *k = j, *next; n-- > 0; k = next) {
		next = k->next;
		k->done = true;
		if (k != j)
			pthread_cond_signal(&k->cv);
	}
	if (writer.head) {
		writer.head->lead = true;
		pthread_cond_signal(&writer.head->cv);
	} else {
		writer.leading = false;
	}
}

/* Without the write queue (one thread): fn in its own transaction on s. */
static int write_alone(pw_store *s, pw_write_fn fn, void *arg)
{
	if (pw_store_begin(s) != PW_OK)
		return PW_ERR;
	int rc = fn(s, arg);
	if (rc == PW_OK)
		rc = pw_store_commit(s);
	if (rc != PW_OK) {
		pw_store_rollback(s);
		return rc;
	}
	pw_store_wake(s);
	return PW_OK;
}

int pw_store_write(pw_store *s, pw_write_fn fn, void *arg)
{
	job j = {.fn = fn, .arg = arg, .rc = PW_ERR};

	/* A caller's own transaction would hold the turn the leader waits for. */
	assert(sqlite3_get_autocommit(pw_store_db(s)));
	if (!pw_txn_queue_on())
		return write_alone(s, fn, arg);
	if (pthread_cond_init(&j.cv, NULL) != 0)
		return store_log_error("cannot make a condition variable");
	pthread_mutex_lock(&writer.mu);
	if (writer.tail)
		writer.tail->next = &j;
	else
		writer.head = &j;
	writer.tail = &j;
	if (!writer.leading) {
		assert(writer.head == &j);
		writer.leading = true;
		j.lead = true;
	}
	while (!j.done && !j.lead)
		pthread_cond_wait(&j.cv, &writer.mu);
	if (!j.done)
		lead(s, &j);
	pthread_mutex_unlock(&writer.mu);
	pthread_cond_destroy(&j.cv);
	store_set_fault(s, j.code);
	return j.rc;
}

void pw_store_writer_close(void)
{
	pthread_mutex_lock(&writer.mu);
	assert(!writer.leading);
	pw_store_close(writer.conn);
	writer.conn = NULL;
	pthread_mutex_unlock(&writer.mu);
}
