/*
 * txn.h - how store connections wait for the database's write lock
 * (bench/README.md, "Writes under load").
 *
 * SQLite lets one connection write at a time; the others get SQLITE_BUSY
 * and call their busy handler. SQLite's own handler (sqlite3_busy_timeout)
 * sleeps 1, 2, 5, 10, ... up to 100 ms between tries, so with many
 * threads a writer can lose the race again and again and wait seconds
 * while the lock was free most of that time.
 *
 * - The write queue: within one process, write transactions take turns
 *   in arrival order (FIFO, handed from one to the next) before they ask
 *   SQLite for the lock, so the threads of pipewright.fcgi never race
 *   each other in the busy handler. Off unless pw_store_set_write_queue
 *   (store.h) turns it on: pipewright.fcgi does.
 * - Group commit (src/writer.c, pw_store_write in store.h): with the
 *   queue on, the triggers (POST .../runs, Kedro's POST /run) do not
 *   queue one transaction each: their threads hand closures to the
 *   process's one writer connection, and the thread that leads a batch
 *   takes one turn of the queue for all of it (one BEGIN IMMEDIATE, a
 *   SAVEPOINT per closure, one COMMIT). The other writes (pools,
 *   operate, backfills, PATCH) take turns as above, between batches.
 * - The busy handler: for the other processes (the runner, the CLI),
 *   tries again after 0.1 ms, later 0.5 ms and 2 ms, up to the timeout.
 */
#ifndef PW_TXN_H
#define PW_TXN_H

#include <stdbool.h>

/*
 * A connection's waiting state (pw_txn_busy's argument). A BEGIN's wait in
 * the queue and then in the busy handler share one timeout.
 */
typedef struct pw_txn_wait {
	long long since_us;   /* when the current wait began */
	int timeout_ms;       /* how long a wait may last */
	bool in_begin;        /* since_us is the BEGIN's: the handler keeps it */
} pw_txn_wait;

/* Whether pw_store_set_write_queue (store.h) turned the queue on. */
bool pw_txn_queue_on(void);

/* Starts a BEGIN's wait: the clock of its timeout runs from now. */
void pw_txn_begin_wait(pw_txn_wait *w);
/*
 * Waits for this thread's turn in the write queue, for what is left of
 * w's timeout (none when w is NULL). Returns 0 with the turn held
 * (pw_txn_leave hands it on), -1 timed out.
 */
int pw_txn_enter(const pw_txn_wait *w);
/* Hands the turn to the longest waiter, or frees it. */
void pw_txn_leave(void);

/* The busy handler (sqlite3_busy_handler), with a pw_txn_wait. */
int pw_txn_busy(void *wait, int count);

#endif
