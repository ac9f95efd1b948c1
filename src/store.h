/*
 * store.h - the SQLite store: the one module that owns the schema and its
 * migrations, and the writes every part shares (events, queued runs,
 * commands). Each other subsystem keeps its own queries next to its code
 * and prepares them through pw_store_stmt (the runner in state.c, each API
 * resource in its file), always with bound parameters.
 *
 * The database is opened in WAL mode with synchronous=NORMAL, a busy
 * timeout, and foreign keys on. Migrations are numbered; PRAGMA
 * user_version records how many have been applied, each in its own
 * transaction, so opening is idempotent and a newer binary upgrades an older
 * file in place. Times are stored as integer milliseconds since the epoch.
 *
 * Every state change is written together with its event row in one
 * transaction: callers wrap pw_store_add_event and the change in
 * pw_store_begin / pw_store_commit. Event ids come from an AUTOINCREMENT
 * key, so they only ever increase, across connections and after pruning.
 */
#ifndef PW_STORE_H
#define PW_STORE_H

#include <json-c/json.h>
#include <sqlite3.h>

#include "util.h"

typedef struct pw_store pw_store;

/*
 * Opens (creating if needed) the database at path and applies pending
 * migrations. The folder must exist. Returns PW_OK and *out, or PW_ERR with
 * *err set to a malloc'd message.
 */
int pw_store_open(const char *path, pw_store **out, char **err);
/*
 * Opens the existing database at path, of this binary's schema, without
 * creating or migrating anything (the API's handlers: the runner and the
 * CLI own creation and migrations). Same returns as pw_store_open; a
 * missing file's message says what creates it.
 */
int pw_store_open_existing(const char *path, pw_store **out, char **err);
/*
 * The page cache of every connection opened after the call, in KiB (0:
 * SQLite's default, about 2 MB). pipewright.fcgi keeps it small: one
 * connection per thread (docs in bench/README.md).
 */
void pw_store_set_cache_kib(int kib);
/*
 * With on, write transactions (pw_store_begin and the store's own writes)
 * of all this process's connections take turns in arrival order before
 * they ask SQLite for the write lock (src/txn.h), and pw_store_write
 * groups its closures on one writer connection. For processes with many
 * writing threads: pipewright.fcgi. Off by default.
 */
void pw_store_set_write_queue(bool on);
/*
 * A write of a thread's, run with others in one transaction (group
 * commit). fn gets the connection to write with and arg; it returns
 * PW_OK to keep its writes, or another code (PW_ERR, PW_CONFLICT, ...)
 * to have them undone. It must not begin or commit a transaction of its
 * own (the store's writes nest: pw_store_insert_run does).
 *
 * With the write queue on (pw_store_set_write_queue), the calling thread
 * queues fn for the process's one writer connection, opened on first use
 * at s's path (never created) and opened again when its file is deleted
 * or replaced. The first thread to find no batch being written leads:
 * after its turn in the write queue (txn.h), it runs up to 64 queued
 * closures, each in its own SAVEPOINT, inside one BEGIN IMMEDIATE ...
 * COMMIT, wakes the runner once, then hands each thread its result;
 * closures queued meanwhile are the next batch. Without the queue, fn
 * runs on s in its own transaction. Call it outside a transaction of s's.
 *
 * Returns fn's result when the batch committed; PW_ERR when BEGIN,
 * COMMIT or the transaction failed (every closure of the batch gets it:
 * nothing is written). On PW_ERR, pw_store_errcode(s) and
 * pw_store_errmsg(s) say why (SQLITE_BUSY, SQLITE_FULL, ...). What fn
 * made for its caller counts only on PW_OK; the caller frees it else.
 */
typedef int (*pw_write_fn)(pw_store *w, void *arg);
int pw_store_write(pw_store *s, pw_write_fn fn, void *arg);
/* Closes the writer connection; no pw_store_write may be running. */
void pw_store_writer_close(void);

/*
 * Whether the file at the store's path is still the one it opened: NULL,
 * or why not ("the database file was deleted", "... replaced"). One
 * stat(2).
 */
const char *pw_store_moved(pw_store *s);
void pw_store_close(pw_store *s);

/* The connection, for modules that read with their own statements. */
sqlite3 *pw_store_db(pw_store *s);
/*
 * The SQLite result code of the connection's last failure: its last
 * error, or the one a pw_store_rollback since the last BEGIN cleared
 * (SQLITE_OK when there was none). What a 500 is told apart by.
 */
int pw_store_errcode(pw_store *s);
/*
 * What pw_store_errcode's failure was, in words: the connection's error
 * message, or SQLite's text for a cleared or handed-over code.
 */
const char *pw_store_errmsg(pw_store *s);
/* Number of migrations applied (PRAGMA user_version). */
int pw_store_schema_version(pw_store *s);
/* Number of migrations this binary knows. */
int pw_store_latest_version(void);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. Return PW_OK or PW_ERR. */
int pw_store_begin(pw_store *s);
/*
 * BEGIN DEFERRED: the reads up to pw_store_commit see one snapshot of the
 * database (for a count and the page it counts). PW_OK or PW_ERR.
 */
int pw_store_begin_read(pw_store *s);
int pw_store_commit(pw_store *s);
void pw_store_rollback(pw_store *s);

/*
 * One event; the NULL fields are left out of its data, and try_number
 * too unless the event is about a task (0: not tried yet).
 */
typedef struct pw_event {
	const char *type;           /* run.state task.state dag.updated pool.updated */
	const char *dag_id;
	const char *run_id;
	const char *task_id;
	const char *state;
	const char *previous_state;
	int try_number;
	json_object *extra;         /* more data fields (borrowed), or NULL */
} pw_event;

/*
 * Appends an event; data gets the fields above plus "ts" (ISO-8601 now).
 * Must be called inside a transaction. Returns the new event id (> 0), or
 * PW_ERR.
 */
long long pw_store_add_event(pw_store *s, const pw_event *ev);

/*
 * Prunes the events table (the runner calls it now and then; never inside
 * a transaction). An event is deleted when it is older than older_than_ms
 * (created_at < now - older_than_ms) OR is not among the newest keep_max
 * events; so what stays is at most keep_max events, none older than the
 * age. A negative older_than_ms or keep_max switches that rule off (both
 * negative: nothing is deleted). Suggested defaults:
 * PW_EVENTS_KEEP_MS (7 days) and PW_EVENTS_KEEP_MAX (1,000,000).
 *
 * Cheap: events are cut by id (created_at grows with id, ids have no gaps
 * but the pruned prefix), found through the primary key and the
 * created_at index, and deleted oldest first in batches, one short write
 * transaction each, so the runner's writers are never held up for long.
 * Ids are never reused (AUTOINCREMENT): a stream resuming from a pruned id
 * is told so (events.missed, see fcgi/events.c).
 * Returns the number of events deleted (saturating at INT_MAX), or PW_ERR.
 */
#define PW_EVENTS_KEEP_MS (7LL * 24 * 3600 * 1000)
#define PW_EVENTS_KEEP_MAX 1000000LL
int pw_store_prune_events(pw_store *s, long long older_than_ms, long long keep_max);

/* A run to queue. */
typedef struct pw_run_new {
	const char *dag_id;
	const char *run_id;        /* NULL: generate from queued_at */
	const char *run_type;      /* "manual", "scheduled" or "backfill" */
	json_object *conf;         /* run parameters (borrowed), or NULL */
	json_object *options;      /* slicing, runner, load_versions, ... or NULL */
	const char *triggered_by;  /* REMOTE_USER, or NULL */
	long long queued_at;       /* ms; 0 = now */
	long long logical_date;    /* the schedule tick (ms); 0 = queued_at */
} pw_run_new;

/*
 * Inserts a queued run and its run.state event in one transaction. A
 * generated id is the queued_at time formatted as a run id, with "-2", "-3",
 * ... appended when the DAG already has that id. Wakes the runner. Returns PW_OK with
 * *run_id_out (malloc'd, may be NULL if not wanted), PW_CONFLICT when the
 * given run_id exists for the DAG, or PW_ERR.
 */
int pw_store_insert_run(pw_store *s, const pw_run_new *run, char **run_id_out);

/*
 * Asks the runner to act on a run: kind "cancel" or "retry". Inserts a
 * command row (the runner decides what it means for the run's state then)
 * and wakes the runner. Returns PW_OK, PW_NOTFOUND when the DAG has no
 * such run, or PW_ERR.
 */
int pw_store_request(pw_store *s, const char *dag_id, const char *run_id,
		     const char *kind);

/*
 * pw_store_request with arguments: kind "clear" ({"task_ids": [...]}) or
 * "mark" ({"task_id", "state"}); args (borrowed, may be NULL) is stored
 * as JSON text for the runner. Same returns.
 */
int pw_store_command(pw_store *s, const char *dag_id, const char *run_id,
		     const char *kind, json_object *args);

/*
 * Sets a DAG's pause flag (creating its row if needed) with a dag.updated
 * event, and wakes the runner. Returns PW_OK or PW_ERR.
 */
int pw_store_set_paused(pw_store *s, const char *dag_id, int paused);

/*
 * Wakes the runner after a commit: writes a byte to the FIFO
 * "<database>.wake" when a runner holds it open. Never blocks, never fails
 * the caller (no runner is not an error).
 */
void pw_store_wake(pw_store *s);

/*
 * A prepared statement for sql, cached per connection and keyed by the
 * address of sql (pass a static string). Bind, step, then sqlite3_reset it.
 * For the other store files; NULL on error (logged).
 */
sqlite3_stmt *pw_store_stmt(pw_store *s, const char *sql);

/*
 * Binds text to parameter i of st, or NULL when v is NULL (sqlite3_bind_text
 * does). The text must outlive the step. Returns SQLite's code.
 */
static inline int pw_store_bind_text(sqlite3_stmt *st, int i, const char *v)
{
	return sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

/* The database file's path, as given to pw_store_open. */
const char *pw_store_path(pw_store *s);

/*
 * Records the runner's heartbeat (the single row of table `runner`).
 * started_at is kept from the first call of the same pid.
 */
int pw_store_heartbeat(pw_store *s, int pid, const char *host, long long now);

/*
 * Creates the pools of the pools* configuration that the database lacks
 * (object: name -> {"slots": n, "description": s}); existing pools keep the
 * values the API gave them. Returns PW_OK or PW_ERR.
 */
int pw_store_seed_pools(pw_store *s, json_object *pools);

/*
 * Makes sure every DAG id has a row in `dags`, with its initial pause state
 * when the row is new. Existing rows keep their pause flag.
 */
int pw_store_seed_dag(pw_store *s, const char *dag_id, int initially_paused);

#endif
