/*
 * store.c - the SQLite store: schema, migrations and the writes that
 * belong to no other module (events, queued runs, heartbeat, seeding).
 *
 * Every statement is prepared once per connection (a small cache indexed by
 * enum stmt_id) and uses bound parameters only. SQL errors are logged as
 * "pipewright: store: <message>" and reported as PW_ERR.
 */
#include "store.h"
#include "txn.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
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
	ST_EVENT_INSERT,
	ST_RUN_EXISTS,
	ST_RUN_INSERT,
	ST_HEARTBEAT,
	ST_POOL_SEED,
	ST_DAG_SEED,
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
	[ST_EVENT_INSERT] =
		"INSERT INTO events(type, dag_id, run_id, task_id, data, created_at)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_RUN_EXISTS] = "SELECT 1 FROM runs WHERE dag_id = ?1 AND run_id = ?2",
	[ST_RUN_INSERT] =
		"INSERT INTO runs(dag_id, run_id, state, run_type, conf, options,"
		" triggered_by, queued_at, logical_date)"
		" VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?7, ?8)",
	[ST_HEARTBEAT] =
		"INSERT INTO runner(id, pid, host, started_at, last_heartbeat)"
		" VALUES (1, ?1, ?2, ?3, ?3)"
		" ON CONFLICT(id) DO UPDATE SET"
		"  started_at = CASE WHEN runner.pid IS excluded.pid"
		"   AND runner.host IS excluded.host"
		"   AND runner.started_at IS NOT NULL"
		"   THEN runner.started_at ELSE excluded.started_at END,"
		"  pid = excluded.pid, host = excluded.host,"
		"  last_heartbeat = excluded.last_heartbeat",
	[ST_POOL_SEED] =
		"INSERT INTO pools(name, slots, description) VALUES (?1, ?2, ?3)"
		" ON CONFLICT(name) DO NOTHING",
	[ST_DAG_SEED] =
		"INSERT INTO dags(dag_id, is_paused, updated_at) VALUES (?1, ?2, ?3)"
		" ON CONFLICT(dag_id) DO NOTHING",
};

/* A statement prepared for another store file, keyed by its SQL's address. */
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
};

/* Logs the connection's last error. Returns PW_ERR. */
static int log_db_error(sqlite3 *db)
{
	fprintf(stderr, "pipewright: store: %s\n", sqlite3_errmsg(db));
	return PW_ERR;
}

/* Logs a message that is not an SQLite error. Returns PW_ERR. */
static int log_error(const char *msg)
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
		log_db_error(s->db);
		s->stmt[id] = NULL;
	}
	return s->stmt[id];
}

/* Puts a cached statement back: reset, bindings cleared. */
static void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/*
 * Steps a bound statement that returns no row, then puts it back. Returns
 * PW_OK, or PW_ERR (logged).
 */
static int stmt_run(pw_store *s, sqlite3_stmt *st)
{
	int rc = PW_OK;
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = log_db_error(s->db);
	stmt_done(st);
	return rc;
}

/* Runs one cached statement that takes no parameters. */
static int exec_cached(pw_store *s, enum stmt_id id)
{
	sqlite3_stmt *st = stmt_get(s, id);
	return st ? stmt_run(s, st) : PW_ERR;
}

/* Binds text, or NULL when v is NULL. The text must outlive the step. */
static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
	return sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
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
		log_db_error(s->db);
	}
	stmt_done(st);
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
	return exec_cached(s, ST_BEGIN_READ);
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
	/* SQLite may already have rolled back on its own (e.g. SQLITE_FULL). */
	if (!sqlite3_get_autocommit(s->db))
		exec_cached(s, ST_ROLLBACK);
	queue_leave(s);
}

/*
 * Opens a unit of work: a BEGIN IMMEDIATE transaction, or a savepoint when
 * the caller already has a transaction open (*nested is set then), so that
 * the store's own multi-statement writes compose with a caller's.
 */
static int unit_begin(pw_store *s, int *nested)
{
	*nested = !sqlite3_get_autocommit(s->db);
	return *nested ? exec_cached(s, ST_SAVEPOINT) : pw_store_begin(s);
}

/* Commits what unit_begin opened. */
static int unit_commit(pw_store *s, int nested)
{
	return nested ? exec_cached(s, ST_RELEASE) : pw_store_commit(s);
}

/* Undoes what unit_begin opened; the caller's transaction stays open. */
static void unit_rollback(pw_store *s, int nested)
{
	if (!nested) {
		pw_store_rollback(s);
	} else if (!sqlite3_get_autocommit(s->db)) {
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
		log_db_error(s->db);
		sqlite3_close_v2(s->db);
	}
	free(s);
}

/* Adds key: string to obj. Returns 0, or -1 when out of memory. */
static int add_string(json_object *obj, const char *key, const char *v)
{
	json_object *j = json_object_new_string(v);
	if (!j)
		return -1;
	if (json_object_object_add(obj, key, j) != 0) {
		json_object_put(j);
		return -1;
	}
	return 0;
}

/*
 * The data of an event (see pw_store_add_event), or NULL (logged) when out
 * of memory or extra is not an object.
 */
static json_object *event_data(const pw_event *ev, long long now)
{
	char ts[32];
	json_object *data = json_object_new_object();

	if (!data)
		goto oom;
	if ((ev->dag_id && add_string(data, "dag_id", ev->dag_id)) ||
	    (ev->run_id && add_string(data, "run_id", ev->run_id)) ||
	    (ev->task_id && add_string(data, "task_id", ev->task_id)) ||
	    (ev->state && add_string(data, "state", ev->state)))
		goto oom;
	if (ev->previous_state) {
		if (add_string(data, "previous_state", ev->previous_state))
			goto oom;
	} else if (ev->state) {
		if (json_object_object_add(data, "previous_state", NULL) != 0)
			goto oom;
	}
	if (ev->task_id) {
		json_object *n = json_object_new_int(ev->try_number);
		if (!n || json_object_object_add(data, "try_number", n) != 0) {
			json_object_put(n);
			goto oom;
		}
	}
	pw_format_iso(now, ts);
	if (add_string(data, "ts", ts))
		goto oom;
	if (ev->extra) {
		if (!json_object_is_type(ev->extra, json_type_object)) {
			log_error("event extra data is not an object");
			json_object_put(data);
			return NULL;
		}
		json_object_object_foreach(ev->extra, key, val) {
			json_object *v = json_object_get(val);
			if (json_object_object_add(data, key, v) != 0) {
				json_object_put(v);
				goto oom;
			}
		}
	}
	return data;

oom:
	log_error("out of memory");
	json_object_put(data);
	return NULL;
}

/*
 * Inserts the event row: columns type, dag_id, run_id, task_id, data
 * (one-line JSON) and created_at. The caller holds a transaction, so that
 * the event commits with the change it describes.
 */
long long pw_store_add_event(pw_store *s, const pw_event *ev)
{
	long long now = pw_now_ms();
	long long id = PW_ERR;
	sqlite3_stmt *st = NULL;
	json_object *data = NULL;

	assert(!sqlite3_get_autocommit(s->db) && "events need a transaction");
	data = event_data(ev, now);
	if (!data)
		goto out;
	const char *text = json_object_to_json_string_ext(
		data, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text) {
		log_error("out of memory");
		goto out;
	}
	st = stmt_get(s, ST_EVENT_INSERT);
	if (!st)
		goto out;
	bind_text(st, 1, ev->type);
	bind_text(st, 2, ev->dag_id);
	bind_text(st, 3, ev->run_id);
	bind_text(st, 4, ev->task_id);
	bind_text(st, 5, text);
	sqlite3_bind_int64(st, 6, now);
	if (stmt_run(s, st) == PW_OK)
		id = sqlite3_last_insert_rowid(s->db);
out:
	json_object_put(data);
	return id;
}

/* Whether dag_id has a run run_id: 1, 0, or PW_ERR (logged). */
static int run_exists(pw_store *s, const char *dag_id, const char *run_id)
{
	int rc;
	sqlite3_stmt *st = stmt_get(s, ST_RUN_EXISTS);
	if (!st)
		return PW_ERR;
	bind_text(st, 1, dag_id);
	bind_text(st, 2, run_id);
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		rc = 1;
		break;
	case SQLITE_DONE:
		rc = 0;
		break;
	default:
		rc = log_db_error(s->db);
		break;
	}
	stmt_done(st);
	return rc;
}

/*
 * Picks a free generated id for the DAG into buf (>= 48 bytes): the
 * queued_at time, then with -2, -3, ... Must run inside the transaction
 * that inserts the run. Returns PW_OK or PW_ERR.
 */
static int generate_run_id(pw_store *s, const char *dag_id, long long queued_at,
			   char *buf, size_t size)
{
	char base[32];

	pw_format_run_id(queued_at, base);
	snprintf(buf, size, "%s", base);
	for (int n = 2;; n++) {
		int taken = run_exists(s, dag_id, buf);
		if (taken != 1)
			return taken == 0 ? PW_OK : PW_ERR;
		if (n == INT_MAX)
			return log_error("no free run id");
		snprintf(buf, size, "%s-%d", base, n);
	}
}

/*
 * Inserts the run as 'queued' with its run.state event (state queued,
 * previous_state null, plus run_type) in one transaction, or in a savepoint
 * of the caller's. conf and options default to {}; run_type NULL means
 * "manual"; queued_at 0 means now. Nothing else is validated.
 */
int pw_store_insert_run(pw_store *s, const pw_run_new *run, char **run_id_out)
{
	char gen[48];
	const char *run_id = run->run_id;
	const char *run_type = run->run_type ? run->run_type : "manual";
	long long queued_at = run->queued_at ? run->queued_at : pw_now_ms();
	const int flags = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;
	json_object *extra = NULL;
	sqlite3_stmt *st = NULL;
	int nested = 0, in_tx = 0, rc = PW_ERR;

	if (run_id_out)
		*run_id_out = NULL;
	/* Serialized before the transaction; the strings live in the objects. */
	const char *conf = run->conf
		? json_object_to_json_string_ext(run->conf, flags) : "{}";
	const char *options = run->options
		? json_object_to_json_string_ext(run->options, flags) : "{}";
	extra = json_object_new_object();
	if (!conf || !options || !extra ||
	    add_string(extra, "run_type", run_type)) {
		log_error("out of memory");
		goto out;
	}

	if (unit_begin(s, &nested) != PW_OK)
		goto out;
	in_tx = 1;
	if (run_id) {
		int taken = run_exists(s, run->dag_id, run_id);
		if (taken != 0) {
			rc = taken == 1 ? PW_CONFLICT : PW_ERR;
			goto out;
		}
	} else {
		if (generate_run_id(s, run->dag_id, queued_at, gen,
				    sizeof gen) != PW_OK)
			goto out;
		run_id = gen;
	}

	st = stmt_get(s, ST_RUN_INSERT);
	if (!st)
		goto out;
	bind_text(st, 1, run->dag_id);
	bind_text(st, 2, run_id);
	bind_text(st, 3, run_type);
	bind_text(st, 4, conf);
	bind_text(st, 5, options);
	bind_text(st, 6, run->triggered_by);
	sqlite3_bind_int64(st, 7, queued_at);
	sqlite3_bind_int64(st, 8, run->logical_date ? run->logical_date : queued_at);
	if (stmt_run(s, st) != PW_OK)
		goto out;

	pw_event ev = {
		.type = "run.state",
		.dag_id = run->dag_id,
		.run_id = run_id,
		.state = "queued",
		.extra = extra,
	};
	if (pw_store_add_event(s, &ev) < 0)
		goto out;
	if (run_id_out && !(*run_id_out = strdup(run_id))) {
		log_error("out of memory");
		goto out;
	}
	if (unit_commit(s, nested) != PW_OK)
		goto out;
	in_tx = 0;
	rc = PW_OK;
	if (!nested)
		pw_store_wake(s);
out:
	if (in_tx)
		unit_rollback(s, nested);
	if (rc != PW_OK && run_id_out) {
		free(*run_id_out);
		*run_id_out = NULL;
	}
	json_object_put(extra);
	return rc;
}

/*
 * Upserts the single runner row. started_at is kept while the same pid on
 * the same host keeps beating; a new pid (or host) starts it afresh.
 */
int pw_store_heartbeat(pw_store *s, int pid, const char *host, long long now)
{
	sqlite3_stmt *st = stmt_get(s, ST_HEARTBEAT);
	if (!st)
		return PW_ERR;
	sqlite3_bind_int(st, 1, pid);
	bind_text(st, 2, host);
	sqlite3_bind_int64(st, 3, now);
	return stmt_run(s, st);
}

/*
 * Checks one pool definition: {"slots": int >= 0, "description"?: string
 * or null}. Returns PW_OK, or PW_ERR with a logged message.
 */
static int check_pool(const char *name, json_object *def)
{
	json_object *slots = NULL, *desc = NULL;
	const char *why = NULL;

	if (!*name)
		why = "is not a valid pool name";
	else if (!json_object_is_type(def, json_type_object))
		why = "must be an object";
	else if (!json_object_object_get_ex(def, "slots", &slots) ||
		 !json_object_is_type(slots, json_type_int))
		why = "needs an integer \"slots\"";
	else if (json_object_get_int64(slots) < 0 ||
		 json_object_get_int64(slots) > INT_MAX)
		why = "has \"slots\" out of range";
	else if (json_object_object_get_ex(def, "description", &desc) && desc &&
		 !json_object_is_type(desc, json_type_string))
		why = "has a \"description\" that is not a string";
	if (!why)
		return PW_OK;
	fprintf(stderr, "pipewright: store: pool '%s' %s\n", name, why);
	return PW_ERR;
}

/*
 * Inserts the pools the table does not have, all or none: every definition
 * is checked first, then inserted with ON CONFLICT DO NOTHING in one
 * transaction (or a savepoint of the caller's). NULL pools is nothing to do.
 */
int pw_store_seed_pools(pw_store *s, json_object *pools)
{
	int nested = 0, rc = PW_ERR;

	if (!pools)
		return PW_OK;
	if (!json_object_is_type(pools, json_type_object))
		return log_error("pools must be an object of name -> "
				 "{\"slots\", \"description\"}");
	json_object_object_foreach(pools, name, def) {
		if (check_pool(name, def) != PW_OK)
			return PW_ERR;
	}

	if (unit_begin(s, &nested) != PW_OK)
		return PW_ERR;
	sqlite3_stmt *st = stmt_get(s, ST_POOL_SEED);
	if (!st)
		goto out;
	json_object_object_foreach(pools, pname, pdef) {
		json_object *slots = NULL, *desc = NULL;
		json_object_object_get_ex(pdef, "slots", &slots);
		json_object_object_get_ex(pdef, "description", &desc);
		bind_text(st, 1, pname);
		sqlite3_bind_int64(st, 2, json_object_get_int64(slots));
		bind_text(st, 3, desc ? json_object_get_string(desc) : "");
		if (stmt_run(s, st) != PW_OK)
			goto out;
	}
	if (unit_commit(s, nested) != PW_OK)
		goto out;
	rc = PW_OK;
out:
	if (rc != PW_OK)
		unit_rollback(s, nested);
	return rc;
}

/* Inserts the DAG's row unless it exists; updated_at is set on a new row. */
int pw_store_seed_dag(pw_store *s, const char *dag_id, int initially_paused)
{
	sqlite3_stmt *st = stmt_get(s, ST_DAG_SEED);
	if (!st)
		return PW_ERR;
	bind_text(st, 1, dag_id);
	sqlite3_bind_int(st, 2, initially_paused ? 1 : 0);
	sqlite3_bind_int64(st, 3, pw_now_ms());
	return stmt_run(s, st);
}

/* --- intent: commands, pause flags; waking the runner ------------------- */

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
		log_error("out of memory");
		return NULL;
	}
	s->ext = grown;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
			       NULL) != SQLITE_OK) {
		log_db_error(s->db);
		return NULL;
	}
	s->ext[s->n_ext++] = (extern_stmt){sql, st};
	return st;
}

void pw_store_wake(pw_store *s)
{
	char *fifo = pw_asprintf("%s.wake", s->path);
	if (!fifo)
		return;
	/* ENXIO: no runner has the FIFO open; ENOENT: none ever made it. */
	int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0) {
		/* A full FIFO already holds a wake-up: EAGAIN is fine too. */
		ssize_t ignored = write(fd, "w", 1);
		(void)ignored;
		close(fd);
	}
	free(fifo);
}

int pw_store_request(pw_store *s, const char *dag_id, const char *run_id,
		     const char *kind)
{
	return pw_store_command(s, dag_id, run_id, kind, NULL);
}

int pw_store_command(pw_store *s, const char *dag_id, const char *run_id,
		     const char *kind, json_object *args)
{
	static const char sql[] =
		"INSERT INTO commands(kind, run_pk, created_at, args)"
		" SELECT ?1, id, ?2, ?5 FROM runs WHERE dag_id = ?3 AND run_id = ?4";
	const char *text = args ? json_object_to_json_string_ext(args,
			JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) : NULL;
	sqlite3_stmt *st = pw_store_stmt(s, sql);
	if (!st || (args && !text))
		return PW_ERR;
	bind_text(st, 1, kind);
	sqlite3_bind_int64(st, 2, pw_now_ms());
	bind_text(st, 3, dag_id);
	bind_text(st, 4, run_id);
	bind_text(st, 5, text);
	int rc = stmt_run(s, st);
	if (rc == PW_OK && sqlite3_changes(s->db) == 0)
		return PW_NOTFOUND;
	if (rc == PW_OK)
		pw_store_wake(s);
	return rc;
}

int pw_store_set_paused(pw_store *s, const char *dag_id, int paused)
{
	static const char sql[] =
		"INSERT INTO dags(dag_id, is_paused, updated_at) VALUES (?1, ?2, ?3)"
		" ON CONFLICT(dag_id) DO UPDATE SET is_paused = excluded.is_paused,"
		"  updated_at = excluded.updated_at";
	int nested = 0;
	json_object *extra = json_object_new_object();
	if (!extra || json_object_object_add(extra, "is_paused",
					     json_object_new_boolean(paused)) != 0) {
		json_object_put(extra);
		return log_error("out of memory");
	}
	pw_event ev = {.type = "dag.updated", .dag_id = dag_id, .extra = extra};
	sqlite3_stmt *st = pw_store_stmt(s, sql);
	int rc = st ? unit_begin(s, &nested) : PW_ERR;
	if (rc == PW_OK) {
		bind_text(st, 1, dag_id);
		sqlite3_bind_int(st, 2, paused ? 1 : 0);
		sqlite3_bind_int64(st, 3, pw_now_ms());
		rc = stmt_run(s, st);
		if (rc == PW_OK && pw_store_add_event(s, &ev) < 0)
			rc = PW_ERR;
		if (rc == PW_OK)
			rc = unit_commit(s, nested);
		if (rc != PW_OK)
			unit_rollback(s, nested);
	}
	json_object_put(extra);
	if (rc == PW_OK && !nested)
		pw_store_wake(s);
	return rc;
}

/* --- pruning events ----------------------------------------------------------- */

/* Events deleted per write transaction by pw_store_prune_events. */
#define PRUNE_BATCH 5000

/*
 * The first column of a one-row query, with ?1 bound to *arg when arg is
 * non-NULL, into *out (dflt when there is no row or it is NULL). Returns
 * PW_OK or PW_ERR (logged).
 */
static int query_int(pw_store *s, const char *sql, const long long *arg, long long dflt,
		     long long *out)
{
	sqlite3_stmt *st = pw_store_stmt(s, sql);
	int rc;

	*out = dflt;
	if (!st)
		return PW_ERR;
	if (arg && sqlite3_bind_int64(st, 1, *arg) != SQLITE_OK) {
		stmt_done(st);
		return log_db_error(s->db);
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		*out = sqlite3_column_int64(st, 0);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		log_db_error(s->db);
	stmt_done(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? PW_OK : PW_ERR;
}

int pw_store_prune_events(pw_store *s, long long older_than_ms, long long keep_max)
{
	static const char max_sql[] = "SELECT max(id) FROM events";
	static const char min_sql[] = "SELECT min(id) FROM events";
	/*
	 * The oldest event young enough to keep: created_at grows with id, so
	 * the walk in id order stops there, having seen only what goes.
	 */
	static const char young_sql[] =
		"SELECT id FROM events WHERE created_at >= ?1 ORDER BY id LIMIT 1";
	static const char delete_sql[] = "DELETE FROM events WHERE id <= ?1";
	long long max_id, cut = 0, lo, deleted = 0;

	assert(sqlite3_get_autocommit(s->db) && "pruning runs its own transactions");
	if (query_int(s, max_sql, NULL, 0, &max_id) != PW_OK)
		return PW_ERR;
	/* Everything with id <= cut goes. */
	if (keep_max >= 0 && max_id - keep_max > cut)
		cut = max_id - keep_max;
	if (older_than_ms >= 0) {
		long long cutoff = pw_now_ms() - older_than_ms, young;
		if (query_int(s, young_sql, &cutoff, max_id + 1, &young) != PW_OK)
			return PW_ERR;
		if (young - 1 > cut)
			cut = young - 1;
	}
	/* Oldest first, PRUNE_BATCH ids per statement (its own transaction). */
	while (cut > 0) {
		if (query_int(s, min_sql, NULL, cut + 1, &lo) != PW_OK)
			return PW_ERR;
		if (lo > cut)
			break;
		long long hi = cut - lo >= PRUNE_BATCH ? lo + PRUNE_BATCH - 1 : cut;
		sqlite3_stmt *st = pw_store_stmt(s, delete_sql);
		if (!st)
			return PW_ERR;
		sqlite3_bind_int64(st, 1, hi);
		if (stmt_run(s, st) != PW_OK)
			return PW_ERR;
		deleted += sqlite3_changes(s->db);
	}
	return deleted > INT_MAX ? INT_MAX : (int)deleted;
}
