/*
 * store.c - the SQLite store's connection: opening and configuring it, the
 * schema and its migrations, transactions, and the statement caches. The
 * writes that belong to no other module are in store_write.c.
 *
 * Every statement is prepared once per connection (the store's own in a
 * small cache indexed by enum stmt_id, the other modules' through
 * pw_store_stmt) and uses bound parameters only. SQL errors are logged as
 * "pipewright: store: <message>" and reported as PW_ERR.
 */
#include "store_impl.h"
#include "txn.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/*
 * The migrations, in order. PRAGMA user_version holds how many have been
 * applied. Never edit an entry once it has shipped: append a new one.
 *
 * Migration 1 - the initial schema. Times are integer ms since the epoch,
 * JSON is TEXT. Indexes on runs serve the run lists of one DAG (filtered by
 * state and/or a queued_at range, ordered by queued_at, started_at or
 * ended_at, either direction; state is carried in the ordering indexes so
 * that a state filter is checked without reading the row), the per-DAG and
 * global counts by state, and the runner's "queued runs in queue order" and
 * "running runs" lookups.
 */
static const char *const migrations[] = {
	/* 1 */
	"CREATE TABLE dags (\n"
	"  dag_id TEXT PRIMARY KEY,\n"
	"  is_paused INTEGER NOT NULL,\n"
	"  next_run_at INTEGER,\n"
	"  last_scheduled_at INTEGER,\n"
	"  updated_at INTEGER\n"
	");\n"
	"CREATE TABLE runs (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  dag_id TEXT NOT NULL,\n"
	"  run_id TEXT NOT NULL,\n"
	"  state TEXT NOT NULL CHECK(state IN\n"
	"    ('queued','running','success','failed','cancelled')),\n"
	"  run_type TEXT NOT NULL,\n"
	"  conf TEXT NOT NULL DEFAULT '{}',\n"
	"  options TEXT NOT NULL DEFAULT '{}',\n"
	"  triggered_by TEXT,\n"
	"  queued_at INTEGER NOT NULL,\n"
	"  started_at INTEGER,\n"
	"  ended_at INTEGER,\n"
	"  error_type TEXT,\n"
	"  error_message TEXT,\n"
	"  UNIQUE(dag_id, run_id)\n"
	");\n"
	"CREATE INDEX runs_dag_queued ON runs(dag_id, queued_at, state);\n"
	"CREATE INDEX runs_dag_state_queued ON runs(dag_id, state, queued_at);\n"
	"CREATE INDEX runs_dag_started ON runs(dag_id, started_at, state);\n"
	"CREATE INDEX runs_dag_ended ON runs(dag_id, ended_at, state);\n"
	"CREATE INDEX runs_state_queued ON runs(state, queued_at);\n"
	"CREATE TABLE task_instances (\n"
	"  run_pk INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
	"  task_id TEXT NOT NULL,\n"
	"  state TEXT NOT NULL CHECK(state IN\n"
	"    ('pending','queued','running','success','failed','up_for_retry',\n"
	"     'upstream_failed','skipped','cancelled')),\n"
	"  try_number INTEGER NOT NULL DEFAULT 0,\n"
	"  max_tries INTEGER NOT NULL,\n"
	"  pool TEXT NOT NULL,\n"
	"  pool_slots INTEGER NOT NULL,\n"
	"  started_at INTEGER,\n"
	"  ended_at INTEGER,\n"
	"  exit_code INTEGER,\n"
	"  next_try_at INTEGER,\n"
	"  PRIMARY KEY(run_pk, task_id)\n"
	");\n"
	/* pool usage: SUM(pool_slots) by state and pool, from the index alone */
	"CREATE INDEX task_instances_state_pool\n"
	"  ON task_instances(state, pool, pool_slots);\n"
	"CREATE TABLE task_tries (\n"
	"  run_pk INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
	"  task_id TEXT NOT NULL,\n"
	"  try_number INTEGER NOT NULL,\n"
	"  state TEXT NOT NULL CHECK(state IN\n"
	"    ('pending','queued','running','success','failed','up_for_retry',\n"
	"     'upstream_failed','skipped','cancelled')),\n"
	"  started_at INTEGER,\n"
	"  ended_at INTEGER,\n"
	"  exit_code INTEGER,\n"
	"  pid INTEGER,\n"
	"  reason TEXT,\n"
	"  log_path TEXT,\n"
	"  external_id TEXT,\n"     /* e.g. the Slurm job id */
	"  PRIMARY KEY(run_pk, task_id, try_number)\n"
	");\n"
	"CREATE TABLE xcom (\n"
	"  run_pk INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
	"  task_id TEXT NOT NULL,\n"
	"  key TEXT NOT NULL,\n"
	"  value TEXT,\n"
	"  PRIMARY KEY(run_pk, task_id, key)\n"
	");\n"
	"CREATE TABLE commands (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  kind TEXT NOT NULL CHECK(kind IN ('cancel','retry')),\n"
	"  run_pk INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
	"  created_at INTEGER NOT NULL,\n"
	"  done_at INTEGER\n"
	");\n"
	/* pending commands: WHERE done_at IS NULL ORDER BY id */
	"CREATE INDEX commands_pending ON commands(done_at, id);\n"
	/* the child key of the foreign key, so deleting a run stays cheap */
	"CREATE INDEX commands_run ON commands(run_pk);\n"
	"CREATE TABLE pools (\n"
	"  name TEXT PRIMARY KEY,\n"
	"  slots INTEGER NOT NULL CHECK(slots >= 0),\n"
	"  description TEXT NOT NULL DEFAULT ''\n"
	");\n"
	"INSERT INTO pools(name, slots, description)\n"
	"  VALUES ('default_pool', 128, 'Default pool');\n"
	/* section 4: default_pool always exists */
	"CREATE TRIGGER pools_keep_default BEFORE DELETE ON pools\n"
	"  WHEN old.name = 'default_pool'\n"
	"  BEGIN SELECT RAISE(ABORT, 'default_pool cannot be deleted'); END;\n"
	"CREATE TABLE events (\n"
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"  type TEXT NOT NULL,\n"
	"  dag_id TEXT,\n"
	"  run_id TEXT,\n"
	"  task_id TEXT,\n"
	"  data TEXT NOT NULL,\n"
	"  created_at INTEGER NOT NULL\n"
	");\n"
	"CREATE INDEX events_created ON events(created_at);\n"
	"CREATE INDEX events_dag ON events(dag_id, id);\n"
	"CREATE INDEX events_run ON events(run_id, id);\n"
	"CREATE TABLE runner (\n"
	"  id INTEGER PRIMARY KEY CHECK(id = 1),\n"
	"  pid INTEGER,\n"
	"  host TEXT,\n"
	"  started_at INTEGER,\n"
	"  last_heartbeat INTEGER\n"
	");\n",
	/*
	 * 2 - the start time of a try's shim process, so that a restarted
	 * runner tells its own shim from a process that reused the pid.
	 */
	"ALTER TABLE task_tries ADD COLUMN proc_start INTEGER;\n",
	/*
	 * 3 - a DAG's finished runs with their times, so that the duration
	 * statistics of /stats read the index alone.
	 */
	"CREATE INDEX runs_dag_state_ended ON runs(dag_id, state, ended_at, started_at);\n",
	/*
	 * 4 - runs by DAG and state, kept by triggers in the transaction of
	 * every insert, state change and delete of a run, so that a page of
	 * runs answers meta.total without counting a million rows.
	 */
	"CREATE TABLE run_counts (\n"
	"  dag_id TEXT NOT NULL,\n"
	"  state TEXT NOT NULL,\n"
	"  n INTEGER NOT NULL,\n"
	"  PRIMARY KEY(dag_id, state)\n"
	") WITHOUT ROWID;\n"
	"INSERT INTO run_counts(dag_id, state, n)\n"
	"  SELECT dag_id, state, count(*) FROM runs GROUP BY dag_id, state;\n"
	"CREATE TRIGGER runs_count_insert AFTER INSERT ON runs BEGIN\n"
	"  INSERT INTO run_counts(dag_id, state, n) VALUES (NEW.dag_id, NEW.state, 1)\n"
	"    ON CONFLICT(dag_id, state) DO UPDATE SET n = n + 1;\n"
	"END;\n"
	"CREATE TRIGGER runs_count_update AFTER UPDATE OF state ON runs\n"
	"  WHEN OLD.state IS NOT NEW.state BEGIN\n"
	"  UPDATE run_counts SET n = n - 1 WHERE dag_id = OLD.dag_id AND state = OLD.state;\n"
	"  INSERT INTO run_counts(dag_id, state, n) VALUES (NEW.dag_id, NEW.state, 1)\n"
	"    ON CONFLICT(dag_id, state) DO UPDATE SET n = n + 1;\n"
	"END;\n"
	"CREATE TRIGGER runs_count_delete AFTER DELETE ON runs BEGIN\n"
	"  UPDATE run_counts SET n = n - 1 WHERE dag_id = OLD.dag_id AND state = OLD.state;\n"
	"END;\n",
	/*
	 * 5 - no index on events(created_at): every event wrote it, and only
	 * the hourly prune read it. created_at grows with id, so the prune
	 * walks ids from the oldest instead, over the rows it deletes anyway.
	 */
	"DROP INDEX events_created;\n",
	/*
	 * 6 - the operations of DESIGN.md section 5: a run's note and
	 * logical_date (the schedule tick it stands for; NULL on older rows,
	 * read as queued_at), and commands that clear or mark task instances
	 * (args: the command's JSON arguments). A CHECK constraint cannot be
	 * altered in place, so commands is rebuilt. Indexes on the run times
	 * alone serve the runs of every DAG (GET /api/v1/dags/~/runs).
	 */
	"ALTER TABLE runs ADD COLUMN note TEXT;\n"
	"ALTER TABLE runs ADD COLUMN logical_date INTEGER;\n"
	"CREATE TABLE commands_new (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  kind TEXT NOT NULL CHECK(kind IN ('cancel','retry','clear','mark')),\n"
	"  run_pk INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
	"  created_at INTEGER NOT NULL,\n"
	"  done_at INTEGER,\n"
	"  args TEXT\n"
	");\n"
	"INSERT INTO commands_new(id, kind, run_pk, created_at, done_at)\n"
	"  SELECT id, kind, run_pk, created_at, done_at FROM commands;\n"
	"DROP TABLE commands;\n"
	"ALTER TABLE commands_new RENAME TO commands;\n"
	"CREATE INDEX commands_pending ON commands(done_at, id);\n"
	"CREATE INDEX commands_run ON commands(run_pk);\n"
	"CREATE INDEX runs_queued ON runs(queued_at);\n"
	"CREATE INDEX runs_started ON runs(started_at);\n"
	"CREATE INDEX runs_ended ON runs(ended_at);\n"
	"CREATE INDEX runs_dag_logical ON runs(dag_id, logical_date);\n",
	/*
	 * 7 - the state CHECKs of task_instances and task_tries as equalities:
	 * SQLite codes a CHECK's IN list of more than two values as a
	 * temporary b-tree built on every write of a row (four on each step
	 * of a chain), and the same test written with OR builds none. A CHECK
	 * cannot be altered in place, so both tables are rebuilt, same
	 * columns in the same order. task_tries, read only by its primary
	 * key, becomes WITHOUT ROWID: a try's INSERT writes one b-tree, not
	 * the table and its key's index (a page less in each chain step's
	 * commit). task_instances keeps its rowid: the API pages by it.
	 */
	"CREATE TABLE task_instances_new (\n"
	"  run_pk INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
	"  task_id TEXT NOT NULL,\n"
	"  state TEXT NOT NULL CHECK(\n"
	"    state = 'pending' OR state = 'queued' OR state = 'running' OR\n"
	"    state = 'success' OR state = 'failed' OR state = 'up_for_retry' OR\n"
	"    state = 'upstream_failed' OR state = 'skipped' OR state = 'cancelled'),\n"
	"  try_number INTEGER NOT NULL DEFAULT 0,\n"
	"  max_tries INTEGER NOT NULL,\n"
	"  pool TEXT NOT NULL,\n"
	"  pool_slots INTEGER NOT NULL,\n"
	"  started_at INTEGER,\n"
	"  ended_at INTEGER,\n"
	"  exit_code INTEGER,\n"
	"  next_try_at INTEGER,\n"
	"  PRIMARY KEY(run_pk, task_id)\n"
	");\n"
	"INSERT INTO task_instances_new SELECT run_pk, task_id, state, try_number,\n"
	"  max_tries, pool, pool_slots, started_at, ended_at, exit_code, next_try_at\n"
	"  FROM task_instances;\n"
	"DROP TABLE task_instances;\n"
	"ALTER TABLE task_instances_new RENAME TO task_instances;\n"
	"CREATE INDEX task_instances_state_pool\n"
	"  ON task_instances(state, pool, pool_slots);\n"
	"CREATE TABLE task_tries_new (\n"
	"  run_pk INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
	"  task_id TEXT NOT NULL,\n"
	"  try_number INTEGER NOT NULL,\n"
	"  state TEXT NOT NULL CHECK(\n"
	"    state = 'pending' OR state = 'queued' OR state = 'running' OR\n"
	"    state = 'success' OR state = 'failed' OR state = 'up_for_retry' OR\n"
	"    state = 'upstream_failed' OR state = 'skipped' OR state = 'cancelled'),\n"
	"  started_at INTEGER,\n"
	"  ended_at INTEGER,\n"
	"  exit_code INTEGER,\n"
	"  pid INTEGER,\n"
	"  reason TEXT,\n"
	"  log_path TEXT,\n"
	"  external_id TEXT,\n"
	"  proc_start INTEGER,\n"
	"  PRIMARY KEY(run_pk, task_id, try_number)\n"
	") WITHOUT ROWID;\n"
	"INSERT INTO task_tries_new SELECT run_pk, task_id, try_number, state,\n"
	"  started_at, ended_at, exit_code, pid, reason, log_path, external_id,\n"
	"  proc_start FROM task_tries;\n"
	"DROP TABLE task_tries;\n"
	"ALTER TABLE task_tries_new RENAME TO task_tries;\n",
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* How long a connection waits for another's lock. */
#define BUSY_TIMEOUT_MS 5000

/* The cached statements. */
enum stmt_id {
	ST_BEGIN,
	ST_BEGIN_READ,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_USER_VERSION,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_BEGIN_READ] = "BEGIN DEFERRED",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SAVEPOINT] = "SAVEPOINT pw_store",
	[ST_RELEASE] = "RELEASE pw_store",
	[ST_ROLLBACK_TO] = "ROLLBACK TO pw_store",
	[ST_USER_VERSION] = "PRAGMA user_version",
};

/* A statement of another module's (pw_store_stmt), keyed by its SQL's address. */
typedef struct extern_stmt {
	const char *sql;
	sqlite3_stmt *st;
} extern_stmt;

struct pw_store {
	sqlite3 *db;
	char *path;
	dev_t dev;         /* the file opened, to notice it deleted or replaced */
	ino_t ino;
	sqlite3_stmt *stmt[ST_COUNT];
	extern_stmt *ext;  /* pw_store_stmt's cache */
	size_t n_ext;
	pw_txn_wait wait;  /* the busy handler's state (txn.h) */
	bool queued;       /* holds this thread's turn in the write queue */
	int fault;         /* the error a rollback cleared (pw_store_errcode) */
};

int store_log_db_error(sqlite3 *db)
{
	fprintf(stderr, "pipewright: store: %s\n", sqlite3_errmsg(db));
	return PW_ERR;
}

int store_log_error(const char *msg)
{
	fprintf(stderr, "pipewright: store: %s\n", msg);
	return PW_ERR;
}

/*
 * The cached statement id, prepared on first use, reset and with no
 * bindings. NULL (logged) when it does not prepare.
 */
static sqlite3_stmt *stmt_get(pw_store *s, enum stmt_id id)
{
	if (!s->stmt[id] &&
	    sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
			       &s->stmt[id], NULL) != SQLITE_OK) {
		store_log_db_error(s->db);
		s->stmt[id] = NULL;
	}
	return s->stmt[id];
}

void store_stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int store_stmt_run(pw_store *s, sqlite3_stmt *st)
{
	int rc = PW_OK;
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = store_log_db_error(s->db);
	store_stmt_done(st);
	return rc;
}

/* Runs one cached statement that takes no parameters. */
static int exec_cached(pw_store *s, enum stmt_id id)
{
	sqlite3_stmt *st = stmt_get(s, id);
	return st ? store_stmt_run(s, st) : PW_ERR;
}

sqlite3 *pw_store_db(pw_store *s)
{
	return s->db;
}

int pw_store_latest_version(void)
{
	return N_MIGRATIONS;
}

/* Reads PRAGMA user_version into *out. Returns PW_OK or PW_ERR (logged). */
static int read_user_version(pw_store *s, int *out)
{
	int rc = PW_ERR;
	sqlite3_stmt *st = stmt_get(s, ST_USER_VERSION);
	if (!st)
		return PW_ERR;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int(st, 0);
		rc = PW_OK;
	} else {
		store_log_db_error(s->db);
	}
	store_stmt_done(st);
	return rc;
}

int pw_store_schema_version(pw_store *s)
{
	int v = 0;
	return read_user_version(s, &v) == PW_OK ? v : PW_ERR;
}

/* Hands the write queue's turn on, when this connection holds it. */
static void queue_leave(pw_store *s)
{
	if (s->queued) {
		s->queued = false;
		pw_txn_leave();
	}
}

/*
 * BEGIN IMMEDIATE, after this thread's turn in the write queue when the
 * queue is on (txn.h). The wait for the turn and SQLite's busy handler
 * share the busy timeout: once it is spent, BEGIN is tried once without
 * waiting, so the failure is SQLite's SQLITE_BUSY, as without the queue.
 */
int pw_store_begin(pw_store *s)
{
	int rc;

	s->fault = SQLITE_OK;
	pw_txn_begin_wait(&s->wait);
	if (pw_txn_queue_on() && !s->queued && pw_txn_enter(&s->wait) == 0)
		s->queued = true;
	rc = exec_cached(s, ST_BEGIN);
	s->wait.in_begin = false;
	if (rc != PW_OK && sqlite3_get_autocommit(s->db))
		queue_leave(s);
	return rc;
}

int pw_store_begin_read(pw_store *s)
{
	s->fault = SQLITE_OK;
	return exec_cached(s, ST_BEGIN_READ);
}

/* Whether a result code says something failed. */
static bool is_error(int code)
{
	return code != SQLITE_OK && code != SQLITE_ROW && code != SQLITE_DONE;
}

int pw_store_errcode(pw_store *s)
{
	int code = sqlite3_errcode(s->db);
	return is_error(code) ? code : s->fault;
}

const char *pw_store_errmsg(pw_store *s)
{
	if (is_error(sqlite3_errcode(s->db)) || s->fault == SQLITE_OK)
		return sqlite3_errmsg(s->db);
	return sqlite3_errstr(s->fault);
}

void store_set_fault(pw_store *s, int code)
{
	s->fault = code;
}

/* Commits; the write queue's turn goes on once the transaction is over. */
int pw_store_commit(pw_store *s)
{
	int rc = exec_cached(s, ST_COMMIT);
	if (sqlite3_get_autocommit(s->db))
		queue_leave(s);
	return rc;
}

void pw_store_rollback(pw_store *s)
{
	int code = sqlite3_errcode(s->db);

	if (is_error(code))
		s->fault = code;   /* the ROLLBACK would clear it */
	/* SQLite may already have rolled back on its own (e.g. SQLITE_FULL). */
	if (!sqlite3_get_autocommit(s->db))
		exec_cached(s, ST_ROLLBACK);
	queue_leave(s);
}

int store_unit_begin(pw_store *s, int *nested)
{
	*nested = !sqlite3_get_autocommit(s->db);
	return *nested ? exec_cached(s, ST_SAVEPOINT) : pw_store_begin(s);
}

int store_unit_commit(pw_store *s, int nested)
{
	return nested ? exec_cached(s, ST_RELEASE) : pw_store_commit(s);
}

void store_unit_rollback(pw_store *s, int nested)
{
	if (!nested) {
		pw_store_rollback(s);
	} else if (!sqlite3_get_autocommit(s->db)) {
		if (is_error(sqlite3_errcode(s->db)))
			s->fault = sqlite3_errcode(s->db);
		exec_cached(s, ST_ROLLBACK_TO);
		exec_cached(s, ST_RELEASE);
	}
}

/*
 * Applies migration *version + 1 in one BEGIN IMMEDIATE transaction with
 * its user_version, unless another connection did it since *version was
 * read (it is read again under the write lock). Updates *version. Returns
 * PW_OK, or PW_ERR with *msg malloc'd.
 */
static int migrate_step(pw_store *s, int *version, char **msg)
{
	char pragma[64];
	char *exec_err = NULL;
	int rc = PW_ERR, in_tx = 0, apply = 0;

	if (pw_store_begin(s) != PW_OK)
		goto out;
	in_tx = 1;
	if (read_user_version(s, version) != PW_OK)
		goto out;
	apply = *version < N_MIGRATIONS;
	if (apply) {
		if (sqlite3_exec(s->db, migrations[*version], NULL, NULL,
				 &exec_err) != SQLITE_OK)
			goto out;
		/* An integer of ours, not a request value: safe to format. */
		snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d",
			 *version + 1);
		if (sqlite3_exec(s->db, pragma, NULL, NULL, &exec_err) !=
		    SQLITE_OK)
			goto out;
	}
	if (pw_store_commit(s) != PW_OK)
		goto out;
	in_tx = 0;
	if (apply)
		(*version)++;
	rc = PW_OK;
out:
	if (rc != PW_OK) {
		*msg = pw_asprintf("migration %d: %s", *version + 1,
				   exec_err ? exec_err : sqlite3_errmsg(s->db));
		if (in_tx)
			pw_store_rollback(s);
	}
	sqlite3_free(exec_err);
	return rc;
}

/*
 * Applies the migrations the file does not have yet, one transaction each,
 * so that two processes opening a fresh file at once do not both apply one.
 * A file from a newer binary is refused. Returns PW_OK, or PW_ERR with *msg
 * malloc'd.
 */
static int migrate(pw_store *s, char **msg)
{
	int version = 0;

	if (read_user_version(s, &version) != PW_OK) {
		*msg = pw_asprintf("user_version: %s", sqlite3_errmsg(s->db));
		return PW_ERR;
	}
	while (version < N_MIGRATIONS) {
		if (migrate_step(s, &version, msg) != PW_OK)
			return PW_ERR;
	}
	if (version > N_MIGRATIONS) {
		*msg = pw_asprintf("database schema version %d is newer than "
				   "this pipewright knows (%d)",
				   version, N_MIGRATIONS);
		return PW_ERR;
	}
	return PW_OK;
}

/*
 * Switches the file to WAL. The busy handler does not cover a journal mode
 * change that races another connection's (two processes opening a fresh
 * file), so SQLITE_BUSY is retried here for up to BUSY_TIMEOUT_MS.
 */
static int set_wal(pw_store *s, char **msg)
{
	sqlite3_stmt *st = NULL;
	int rc = PW_ERR, step;

	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st,
			       NULL) != SQLITE_OK) {
		*msg = pw_asprintf("journal_mode: %s", sqlite3_errmsg(s->db));
		return PW_ERR;
	}
	for (int waited = 0;; waited += 10) {
		step = sqlite3_step(st);
		if (step == SQLITE_ROW || (step & 0xff) != SQLITE_BUSY ||
		    waited >= BUSY_TIMEOUT_MS)
			break;
		sqlite3_reset(st);
		sqlite3_sleep(10);
	}
	if (step != SQLITE_ROW) {
		*msg = pw_asprintf("journal_mode: %s", sqlite3_errmsg(s->db));
		goto out;
	}
	const char *mode = (const char *)sqlite3_column_text(st, 0);
	if (!mode || (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)) {
		*msg = pw_asprintf("cannot use WAL journal mode (got %s)",
				   mode ? mode : "nothing");
		goto out;
	}
	rc = PW_OK;
out:
	sqlite3_finalize(st);
	return rc;
}

/* Page cache of each connection opened from now on, in KiB; 0: SQLite's. */
static _Atomic int cache_kib;

void pw_store_set_cache_kib(int kib)
{
	cache_kib = kib > 0 ? kib : 0;
}

/*
 * Sets the connection up: busy handler (txn.h), WAL, synchronous=NORMAL, foreign
 * keys, the page cache of pw_store_set_cache_kib. Returns PW_OK, or
 * PW_ERR with *msg malloc'd.
 */
static int configure(pw_store *s, char **msg)
{
	char cache[48];
	int kib = cache_kib;

	s->wait.timeout_ms = BUSY_TIMEOUT_MS;
	if (sqlite3_busy_handler(s->db, pw_txn_busy, &s->wait) != SQLITE_OK) {
		*msg = pw_asprintf("busy handler: %s", sqlite3_errmsg(s->db));
		return PW_ERR;
	}
	if (set_wal(s, msg) != PW_OK)
		return PW_ERR;
	if (sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL;"
			 " PRAGMA foreign_keys = ON;",
			 NULL, NULL, NULL) != SQLITE_OK) {
		*msg = pw_asprintf("pragmas: %s", sqlite3_errmsg(s->db));
		return PW_ERR;
	}
	snprintf(cache, sizeof cache, "PRAGMA cache_size = -%d", kib);
	if (kib > 0 && sqlite3_exec(s->db, cache, NULL, NULL, NULL) != SQLITE_OK) {
		*msg = pw_asprintf("pragmas: %s", sqlite3_errmsg(s->db));
		return PW_ERR;
	}
	return PW_OK;
}

/*
 * An existing file's schema must be this binary's: handlers neither create
 * nor migrate. Returns PW_OK, or PW_ERR with *msg malloc'd.
 */
static int check_version(pw_store *s, char **msg)
{
	int version = 0;

	if (read_user_version(s, &version) != PW_OK) {
		*msg = pw_asprintf("user_version: %s", sqlite3_errmsg(s->db));
		return PW_ERR;
	}
	if (version == N_MIGRATIONS)
		return PW_OK;
	*msg = pw_asprintf("database schema version %d, this pipewright needs %d: %s",
			   version, N_MIGRATIONS,
			   version < N_MIGRATIONS
			   ? "start the runner (pipewright-runner or `pipewright server "
			     "start`) or run `pipewright db migrate`"
			   : "this pipewright is older than the database");
	return PW_ERR;
}

/*
 * Why a database that exists may fail to open for writing: "" or a
 * sentence (its file system is read-only; the file or its folder, where
 * SQLite makes its -wal and -shm files, cannot be written by this user).
 */
static const char *open_hint(const char *path)
{
	struct statvfs vfs;
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1,
		 slash ? (slash == path ? "/" : path) : ".");
	if (statvfs(path, &vfs) == 0 && (vfs.f_flag & ST_RDONLY))
		return " (its file system is read-only)";
	if (access(path, W_OK) != 0 || access(dir, W_OK) != 0)
		return " (this user cannot write the file or its folder, where SQLite "
		       "makes its -wal and -shm files)";
	return "";
}

/*
 * Before SQLite's first use in the process: statement journals (the
 * undo of one statement inside a larger transaction, as a trigger's
 * INSERTs are) stay in memory up to 120 KiB instead of SQLite's 64 KiB.
 * A trigger's journal is about 70 KiB: past the default it went to a
 * temporary file that was made, unlinked, written and closed at every
 * trigger (11 system calls and an inode; bench/README.md). SQLite
 * allocates the whole limit at once: below glibc's 128 KiB mmap
 * threshold it comes from the heap, not from an mmap and munmap (a TLB
 * flush) each time. Too late when the process used SQLite already
 * (SQLITE_MISUSE, ignored: the default stays).
 */
static void sqlite_config(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, 120 * 1024);
}

/*
 * Opens path; with create, creating it and applying migrations, else only
 * an existing database of this schema. See pw_store_open.
 */
static int store_open(const char *path, bool create, pw_store **out, char **err)
{
	char *msg = NULL;
	pw_store *s = calloc(1, sizeof *s);
	struct stat before, after;

	*out = NULL;
	if (err)
		*err = NULL;
	if (!s || !(s->path = strdup(path))) {
		msg = pw_asprintf("out of memory");
		goto fail;
	}
	if (!create && stat(path, &before) != 0) {
		msg = pw_asprintf("%s", errno == ENOENT
			? "no database yet: start the runner (pipewright-runner, or "
			  "`pipewright server start`) or run `pipewright db migrate`, "
			  "which create it"
			: strerror(errno));
		goto fail;
	}
	/*
	 * A new database is 0660 (SQLite would make it 0644): the runner and
	 * pipewright.fcgi may be two users of one group. Its -wal and -shm
	 * files take its mode. An existing file keeps the mode it was given.
	 */
	static pthread_once_t configured = PTHREAD_ONCE_INIT;
	pthread_once(&configured, sqlite_config);
	bool created = create && access(path, F_OK) != 0;
	if (sqlite3_open_v2(path, &s->db,
			    SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		msg = pw_asprintf("%s", s->db ? sqlite3_errmsg(s->db)
					      : "out of memory");
		goto fail;
	}
	if (created && strcmp(path, ":memory:") != 0 && chmod(path, 0660) != 0) {
		msg = pw_asprintf("chmod: %s", strerror(errno));
		goto fail;
	}
	/* The file we opened: the same before and after, else it moved. */
	if (!create && (stat(path, &after) != 0 || before.st_dev != after.st_dev ||
			before.st_ino != after.st_ino)) {
		msg = pw_asprintf("the file changed while it was opened");
		goto fail;
	}
	if (create && stat(path, &after) != 0)
		after = (struct stat){0};  /* ":memory:" */
	s->dev = after.st_dev;
	s->ino = after.st_ino;
	if (configure(s, &msg) != PW_OK ||
	    (create ? migrate(s, &msg) : check_version(s, &msg)) != PW_OK)
		goto fail;
	*out = s;
	return PW_OK;

fail:
	if (err)
		*err = pw_asprintf("%s: %s%s", path, msg ? msg : "out of memory",
				   s && s->db ? open_hint(path) : "");
	else
		fprintf(stderr, "pipewright: store: %s: %s\n", path,
			msg ? msg : "out of memory");
	free(msg);
	pw_store_close(s);
	return PW_ERR;
}

int pw_store_open(const char *path, pw_store **out, char **err)
{
	return store_open(path, true, out, err);
}

int pw_store_open_existing(const char *path, pw_store **out, char **err)
{
	return store_open(path, false, out, err);
}

const char *pw_store_moved(pw_store *s)
{
	struct stat st;

	if (stat(s->path, &st) != 0)
		return errno == ENOENT ? "the database file was deleted" : "the database file cannot be read";
	if (st.st_dev != s->dev || st.st_ino != s->ino)
		return "the database file was replaced";
	return NULL;
}

void pw_store_close(pw_store *s)
{
	if (!s)
		return;
	queue_leave(s);   /* a transaction left open ends with the connection */
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	for (size_t i = 0; i < s->n_ext; i++)
		sqlite3_finalize(s->ext[i].st);
	free(s->ext);
	free(s->path);
	if (s->db && sqlite3_close(s->db) != SQLITE_OK) {
		/* A statement some other module did not finalize. */
		store_log_db_error(s->db);
		sqlite3_close_v2(s->db);
	}
	free(s);
}

const char *pw_store_path(pw_store *s)
{
	return s->path;
}

sqlite3_stmt *pw_store_stmt(pw_store *s, const char *sql)
{
	for (size_t i = 0; i < s->n_ext; i++)
		if (s->ext[i].sql == sql)
			return s->ext[i].st;
	extern_stmt *grown = realloc(s->ext, (s->n_ext + 1) * sizeof *grown);
	if (!grown) {
		store_log_error("out of memory");
		return NULL;
	}
	s->ext = grown;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
			       NULL) != SQLITE_OK) {
		store_log_db_error(s->db);
		return NULL;
	}
	s->ext[s->n_ext++] = (extern_stmt){sql, st};
	return st;
}

