/*
 * state.c - the state store: every SQL statement the runner runs, the
 * pass's transaction, and the log they need. Writes happen inside the
 * pass's transaction (st_begin) and each state change writes its event
 * there too, so the database never shows a change without its event.
 */
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonnum.h"
#include "runner.h"

/* --- the log and the transaction ------------------------------------------ */

/*
 * The info lines of the pass's open transaction, held until its gos are
 * sent (st_log_flush) and dropped with a rollback: a chain's step writes
 * no log line between one task's end and the next one's start (stderr may
 * be a pipe whose reader wakes up on each line), and the log never tells
 * of a change that was not committed.
 */
static struct {
	char *text;
	size_t len, cap;
} held;

/* Appends line to held. false when out of memory (write it at once). */
static bool hold(const char *line, size_t n)
{
	if (held.len + n > held.cap) {
		size_t cap = held.cap ? held.cap : 4096;
		while (cap < held.len + n)
			cap *= 2;
		char *grown = realloc(held.text, cap);
		if (!grown)
			return false;
		held.text = grown;
		held.cap = cap;
	}
	memcpy(held.text + held.len, line, n);
	held.len += n;
	return true;
}

void rn_log(const runner *r, const char *level, const char *fmt, ...)
{
	char ts[32], msg[2048], line[2200];
	va_list ap;
	pw_format_iso(pw_now_ms(), ts);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	int n = snprintf(line, sizeof line, "pipewright-runner: %s %s %s\n", ts, level, msg);
	size_t len = n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
	if (r && r->tx.open && strcmp(level, "info") == 0 && hold(line, len))
		return;
	st_log_flush();
	fputs(line, stderr);
}

void st_log_flush(void)
{
	if (held.len)
		fwrite(held.text, 1, held.len, stderr);
	held.len = 0;
}

void st_log_free(void)
{
	st_log_flush();
	free(held.text);
	held.text = NULL;
	held.cap = 0;
}

void rn_fault(runner *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->tx.fault, sizeof r->tx.fault, fmt, ap);
	va_end(ap);
}

void st_crash_points(runner *r)
{
	static const char *const names[] = {
		[CRASH_BEFORE_COMMIT] = "before-commit",
		[CRASH_AFTER_COMMIT] = "after-commit",
	};
	const char *v = getenv("PIPEWRIGHT_TEST_CRASH_AT");
	r->tx.crash_at = CRASH_NONE;
	for (int i = CRASH_BEFORE_COMMIT; v && i <= CRASH_AFTER_COMMIT; i++)
		if (strcmp(v, names[i]) == 0)
			r->tx.crash_at = (rn_crash)i;
}

/* Test only: kill -9 of the runner at crash point at, in a transaction
 * that records the end of a try. */
static void crash_point(const runner *r, rn_crash at)
{
	if (r->tx.crash_at == at && r->tx.n_ends > 0) {
		fprintf(stderr, "pipewright-runner: PIPEWRIGHT_TEST_CRASH_AT: kill -9\n");
		raise(SIGKILL);
	}
}

int st_begin(runner *r)
{
	if (r->tx.open)
		return PW_OK;
	if (pw_store_begin(r->tx.store) != PW_OK)
		return PW_ERR;
	r->tx.open = true;
	return PW_OK;
}

int st_commit(runner *r)
{
	if (!r->tx.open) {
		r->tx.n_ends = 0;
		return PW_OK;
	}
	crash_point(r, CRASH_BEFORE_COMMIT);
	if (pw_store_commit(r->tx.store) != PW_OK)
		return PW_ERR; /* settle() rolls back, with the cause */
	crash_point(r, CRASH_AFTER_COMMIT);
	r->tx.open = false;
	r->tx.n_ends = 0;
	if (r->tx.stuck_since) {
		rn_info(r, "writes commit again, after %lld ms of waiting",
			pw_now_ms() - r->tx.stuck_since);
		r->tx.stuck_since = 0;
		r->tx.retry_ms = 0;
	}
	return PW_OK;
}

void st_rollback(runner *r)
{
	held.len = 0; /* the pass's lines tell of nothing committed */
	if (r->tx.open)
		pw_store_rollback(r->tx.store);
	r->tx.open = false;
	r->tx.n_ends = 0;
}

/* --- statements ----------------------------------------------------------- */

/* Logs the connection's last error. */
static void log_sql_error(runner *r)
{
	rn_error(r, "database: %s", sqlite3_errmsg(pw_store_db(r->tx.store)));
}

/* Steps a write statement to completion and resets it. PW_OK or PW_ERR. */
static int run_write(runner *r, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st) == SQLITE_DONE ? PW_OK : PW_ERR;
	if (rc != PW_OK)
		log_sql_error(r);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/* Prepares sql for a write; begins the pass's transaction first. */
static sqlite3_stmt *write_stmt(runner *r, const char *sql)
{
	if (st_begin(r) != PW_OK)
		return NULL;
	return pw_store_stmt(r->tx.store, sql);
}

/* Appends a task.state event for task t of run, with its exit code. */
static int task_event(runner *r, const rn_run *run, size_t t, ti_state prev,
		      int exit_code)
{
	const rn_task *k = &run->tasks[t];
	json_object *extra = NULL;
	if (exit_code != NO_EXIT_CODE) {
		extra = json_object_new_object();
		if (!extra || json_object_object_add(extra, "exit_code",
						     json_object_new_int(exit_code)) != 0) {
			json_object_put(extra);
			return PW_ERR;
		}
	}
	pw_event ev = {
		.type = "task.state",
		.dag_id = run->dag_id,
		.run_id = run->run_id,
		.task_id = run->dag->tasks[t].name,
		.state = ti_state_names[k->state],
		.previous_state = (int)prev >= 0 ? ti_state_names[prev] : NULL,
		.try_number = k->try_number,
		.extra = extra,
	};
	long long id = pw_store_add_event(r->tx.store, &ev);
	json_object_put(extra);
	return id > 0 ? PW_OK : PW_ERR;
}

/* --- runs ---------------------------------------------------------------- */

int st_run_set_state(runner *r, long long pk, const char *dag_id, const char *run_id,
		     run_state state, run_state prev, long long now,
		     const char *etype, const char *emsg)
{
	static const char sql[] =
		"UPDATE runs SET state = ?2,"
		" started_at = CASE WHEN ?2 = 'running' THEN ?3 ELSE started_at END,"
		" ended_at = CASE WHEN ?2 IN ('success','failed','cancelled') THEN ?3"
		"  WHEN ?2 = 'queued' THEN NULL ELSE ended_at END,"
		" error_type = ?4, error_message = ?5 WHERE id = ?1";
	sqlite3_stmt *st = write_stmt(r, sql);
	if (!st)
		return PW_ERR;
	sqlite3_bind_int64(st, 1, pk);
	pw_store_bind_text(st, 2, run_state_names[state]);
	sqlite3_bind_int64(st, 3, now);
	pw_store_bind_text(st, 4, etype);
	pw_store_bind_text(st, 5, emsg);
	if (run_write(r, st) != PW_OK)
		return PW_ERR;
	pw_event ev = {.type = "run.state", .dag_id = dag_id, .run_id = run_id,
		       .state = run_state_names[state],
		       .previous_state = run_state_names[prev]};
	if (pw_store_add_event(r->tx.store, &ev) <= 0)
		return PW_ERR;
	rn_info(r, "run %s/%s %s", dag_id, run_id, run_state_names[state]);
	return PW_OK;
}

/* --- task instances and tries ---------------------------------------------- */

int st_ti_insert(runner *r, rn_run *run, size_t t, long long now)
{
	static const char sql[] =
		"INSERT INTO task_instances(run_pk, task_id, state, try_number,"
		" max_tries, pool, pool_slots, ended_at)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
	const pw_task *task = &run->dag->tasks[t];
	const rn_task *k = &run->tasks[t];
	sqlite3_stmt *st = write_stmt(r, sql);
	if (!st)
		return PW_ERR;
	sqlite3_bind_int64(st, 1, run->pk);
	pw_store_bind_text(st, 2, task->name);
	pw_store_bind_text(st, 3, ti_state_names[k->state]);
	sqlite3_bind_int(st, 4, k->try_number);
	sqlite3_bind_int(st, 5, k->max_tries);
	pw_store_bind_text(st, 6, task->pool);
	sqlite3_bind_int(st, 7, task->pool_slots);
	if (ti_state_is_final(k->state))
		sqlite3_bind_int64(st, 8, now);
	if (run_write(r, st) != PW_OK)
		return PW_ERR;
	return task_event(r, run, t, (ti_state)-1, NO_EXIT_CODE);
}

int st_ti_set_state(runner *r, rn_run *run, size_t t, ti_state prev, long long now)
{
	static const char sql[] =
		"UPDATE task_instances SET state = ?3, max_tries = ?4, next_try_at = ?5,"
		" ended_at = CASE WHEN ?7 THEN ?6 ELSE ended_at END"
		" WHERE run_pk = ?1 AND task_id = ?2";
	const rn_task *k = &run->tasks[t];
	/* ended_at: now when final, NULL again when pending, else kept. The
	 * choice is made here: an IN list in the SQL would build a temporary
	 * b-tree on every step. */
	bool final = ti_state_is_final(k->state);
	sqlite3_stmt *st = write_stmt(r, sql);
	if (!st)
		return PW_ERR;
	sqlite3_bind_int64(st, 1, run->pk);
	pw_store_bind_text(st, 2, run->dag->tasks[t].name);
	pw_store_bind_text(st, 3, ti_state_names[k->state]);
	sqlite3_bind_int(st, 4, k->max_tries);
	if (k->state == TI_UP_FOR_RETRY)
		sqlite3_bind_int64(st, 5, k->next_try_at);
	if (final)
		sqlite3_bind_int64(st, 6, now);
	sqlite3_bind_int(st, 7, final || k->state == TI_PENDING);
	if (run_write(r, st) != PW_OK)
		return PW_ERR;
	rn_debug(r, "task %s/%s/%s %s", run->dag_id, run->run_id,
		 run->dag->tasks[t].name, ti_state_names[k->state]);
	return task_event(r, run, t, prev, NO_EXIT_CODE);
}

int st_try_start(runner *r, rn_run *run, size_t t, long long proc_start,
		 const char *log_path, const char *where, long long now)
{
	static const char ti_sql[] =
		"UPDATE task_instances SET state = 'running', try_number = ?3,"
		" started_at = ?4, ended_at = NULL, exit_code = NULL, next_try_at = NULL"
		" WHERE run_pk = ?1 AND task_id = ?2";
	static const char try_sql[] =
		"INSERT INTO task_tries(run_pk, task_id, try_number, state, started_at,"
		" pid, proc_start, log_path) VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7)";
	const rn_task *k = &run->tasks[t];
	const char *name = run->dag->tasks[t].name;
	sqlite3_stmt *st = write_stmt(r, ti_sql);
	if (!st)
		return PW_ERR;
	sqlite3_bind_int64(st, 1, run->pk);
	pw_store_bind_text(st, 2, name);
	sqlite3_bind_int(st, 3, k->try_number);
	sqlite3_bind_int64(st, 4, now);
	if (run_write(r, st) != PW_OK || !(st = pw_store_stmt(r->tx.store, try_sql)))
		return PW_ERR;
	sqlite3_bind_int64(st, 1, run->pk);
	pw_store_bind_text(st, 2, name);
	sqlite3_bind_int(st, 3, k->try_number);
	sqlite3_bind_int64(st, 4, now);
	if (k->pid > 0) /* a try of another backend may have no process here */
		sqlite3_bind_int64(st, 5, k->pid);
	if (proc_start >= 0)
		sqlite3_bind_int64(st, 6, proc_start);
	pw_store_bind_text(st, 7, log_path);
	if (run_write(r, st) != PW_OK)
		return PW_ERR;
	rn_info(r, "task %s/%s/%s running (try %d, %s)", run->dag_id, run->run_id,
		name, k->try_number, where);
	return task_event(r, run, t, TI_QUEUED, NO_EXIT_CODE);
}

int st_try_end(runner *r, rn_run *run, size_t t, ti_state prev, int exit_code,
	       const char *reason, long long now)
{
	static const char ti_sql[] =
		"UPDATE task_instances SET state = ?3, ended_at = ?4, exit_code = ?5,"
		" next_try_at = ?6 WHERE run_pk = ?1 AND task_id = ?2";
	static const char try_sql[] =
		"UPDATE task_tries SET state = ?4, ended_at = ?5, exit_code = ?6, reason = ?7"
		" WHERE run_pk = ?1 AND task_id = ?2 AND try_number = ?3";
	const rn_task *k = &run->tasks[t];
	const char *name = run->dag->tasks[t].name;
	/* A try that will be retried failed; the instance is up_for_retry. */
	ti_state try_state = k->state == TI_UP_FOR_RETRY ? TI_FAILED : k->state;
	sqlite3_stmt *st = write_stmt(r, ti_sql);
	if (!st)
		return PW_ERR;
	sqlite3_bind_int64(st, 1, run->pk);
	pw_store_bind_text(st, 2, name);
	pw_store_bind_text(st, 3, ti_state_names[k->state]);
	sqlite3_bind_int64(st, 4, now);
	if (exit_code != NO_EXIT_CODE)
		sqlite3_bind_int(st, 5, exit_code);
	if (k->state == TI_UP_FOR_RETRY)
		sqlite3_bind_int64(st, 6, k->next_try_at);
	if (run_write(r, st) != PW_OK || !(st = pw_store_stmt(r->tx.store, try_sql)))
		return PW_ERR;
	sqlite3_bind_int64(st, 1, run->pk);
	pw_store_bind_text(st, 2, name);
	sqlite3_bind_int(st, 3, k->try_number);
	pw_store_bind_text(st, 4, ti_state_names[try_state]);
	sqlite3_bind_int64(st, 5, now);
	if (exit_code != NO_EXIT_CODE)
		sqlite3_bind_int(st, 6, exit_code);
	pw_store_bind_text(st, 7, reason);
	if (run_write(r, st) != PW_OK)
		return PW_ERR;
	rn_info(r, "task %s/%s/%s %s (try %d, exit %d%s%s)", run->dag_id, run->run_id,
		name, ti_state_names[k->state], k->try_number, exit_code,
		reason ? ", " : "", reason ? reason : "");
	return task_event(r, run, t, prev, exit_code);
}

int st_xcom_put(runner *r, rn_run *run, size_t t, const char *key, json_object *value)
{
	static const char sql[] =
		"INSERT INTO xcom(run_pk, task_id, key, value) VALUES (?1, ?2, ?3, ?4)"
		" ON CONFLICT(run_pk, task_id, key) DO UPDATE SET value = excluded.value";
	sqlite3_stmt *st = write_stmt(r, sql);
	if (!st)
		return PW_ERR;
	sqlite3_bind_int64(st, 1, run->pk);
	pw_store_bind_text(st, 2, run->dag->tasks[t].name);
	pw_store_bind_text(st, 3, key);
	pw_store_bind_text(st, 4, json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
	return run_write(r, st);
}

int st_xcom_clear(runner *r, rn_run *run, size_t t)
{
	static const char sql[] = "DELETE FROM xcom WHERE run_pk = ?1 AND task_id = ?2";
	sqlite3_stmt *st = write_stmt(r, sql);
	if (!st)
		return PW_ERR;
	sqlite3_bind_int64(st, 1, run->pk);
	pw_store_bind_text(st, 2, run->dag->tasks[t].name);
	return run_write(r, st);
}

int st_ti_load(runner *r, rn_run *run)
{
	static const char sql[] =
		"SELECT task_id, state, try_number, max_tries, next_try_at, started_at"
		" FROM task_instances WHERE run_pk = ?1";
	sqlite3_stmt *st = pw_store_stmt(r->tx.store, sql);
	int rc = PW_OK, step, rows = 0;
	if (!st)
		return PW_ERR;
	sqlite3_bind_int64(st, 1, run->pk);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		long t = pw_dag_task_index(run->dag, (const char *)sqlite3_column_text(st, 0));
		int state = ti_state_parse((const char *)sqlite3_column_text(st, 1));
		rows++;
		if (t < 0 || state < 0)
			continue; /* a task the DAG no longer has */
		rn_task *k = &run->tasks[t];
		k->selected = true;
		k->state = (ti_state)state;
		k->try_number = sqlite3_column_int(st, 2);
		k->max_tries = sqlite3_column_int(st, 3);
		k->next_try_at = sqlite3_column_int64(st, 4);
		k->started_at = sqlite3_column_int64(st, 5);
	}
	if (step != SQLITE_DONE) {
		log_sql_error(r);
		rc = PW_ERR;
	}
	sqlite3_reset(st);
	return rc == PW_OK ? rows : rc;
}

int st_try_pid(runner *r, rn_run *run, size_t t, pid_t *pid, long long *proc_start)
{
	static const char sql[] =
		"SELECT pid, proc_start FROM task_tries"
		" WHERE run_pk = ?1 AND task_id = ?2 AND try_number = ?3";
	sqlite3_stmt *st = pw_store_stmt(r->tx.store, sql);
	int rc = PW_NOTFOUND;
	*pid = 0;
	*proc_start = -1;
	if (!st)
		return PW_ERR;
	sqlite3_bind_int64(st, 1, run->pk);
	pw_store_bind_text(st, 2, run->dag->tasks[t].name);
	sqlite3_bind_int(st, 3, run->tasks[t].try_number);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*pid = (pid_t)sqlite3_column_int64(st, 0);
		*proc_start = sqlite3_column_type(st, 1) == SQLITE_NULL
				      ? -1 : sqlite3_column_int64(st, 1);
		rc = PW_OK;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

int st_try_external(runner *r, rn_run *run, size_t t, const char *external_id)
{
	static const char sql[] =
		"UPDATE task_tries SET external_id = ?4"
		" WHERE run_pk = ?1 AND task_id = ?2 AND try_number = ?3";
	sqlite3_stmt *st = write_stmt(r, sql);
	if (!st)
		return PW_ERR;
	sqlite3_bind_int64(st, 1, run->pk);
	pw_store_bind_text(st, 2, run->dag->tasks[t].name);
	sqlite3_bind_int(st, 3, run->tasks[t].try_number);
	pw_store_bind_text(st, 4, external_id);
	return run_write(r, st);
}

int st_try_external_get(runner *r, rn_run *run, size_t t, long long *job_id)
{
	static const char sql[] =
		"SELECT external_id FROM task_tries"
		" WHERE run_pk = ?1 AND task_id = ?2 AND try_number = ?3";
	sqlite3_stmt *st = pw_store_stmt(r->tx.store, sql);
	*job_id = 0;
	if (!st)
		return PW_ERR;
	sqlite3_bind_int64(st, 1, run->pk);
	pw_store_bind_text(st, 2, run->dag->tasks[t].name);
	sqlite3_bind_int(st, 3, run->tasks[t].try_number);
	int step = sqlite3_step(st), rc = PW_OK;
	if (step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		*job_id = strtoll((const char *)sqlite3_column_text(st, 0), NULL, 10);
	if (step != SQLITE_ROW && step != SQLITE_DONE) {
		log_sql_error(r);
		rc = PW_ERR;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/* --- pools, pause flags, schedules, commands -------------------------------- */

int st_pools(runner *r, json_object **slots)
{
	static const char sql[] = "SELECT name, slots FROM pools";
	sqlite3_stmt *st = pw_store_stmt(r->tx.store, sql);
	json_object *out = json_object_new_object();
	int step;
	if (!st || !out) {
		json_object_put(out);
		return PW_ERR;
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW)
		json_object_object_add(out, (const char *)sqlite3_column_text(st, 0),
				       json_object_new_int(sqlite3_column_int(st, 1)));
	sqlite3_reset(st);
	if (step != SQLITE_DONE) {
		log_sql_error(r);
		json_object_put(out);
		return PW_ERR;
	}
	*slots = out;
	return PW_OK;
}

int st_next_run(runner *r, const char *dag_id, long long *next_run_at, bool *paused)
{
	static const char sql[] = "SELECT next_run_at, is_paused FROM dags WHERE dag_id = ?1";
	sqlite3_stmt *st = pw_store_stmt(r->tx.store, sql);
	int rc = PW_NOTFOUND;
	if (!st)
		return PW_ERR;
	pw_store_bind_text(st, 1, dag_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*next_run_at = sqlite3_column_type(st, 0) == SQLITE_NULL
				       ? 0 : sqlite3_column_int64(st, 0);
		*paused = sqlite3_column_int(st, 1) != 0;
		rc = PW_OK;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

int st_set_next_run(runner *r, const char *dag_id, long long next_run_at, long long fired)
{
	static const char sql[] =
		"UPDATE dags SET next_run_at = ?2,"
		" last_scheduled_at = COALESCE(?3, last_scheduled_at) WHERE dag_id = ?1";
	sqlite3_stmt *st = write_stmt(r, sql);
	if (!st)
		return PW_ERR;
	pw_store_bind_text(st, 1, dag_id);
	if (next_run_at > 0)
		sqlite3_bind_int64(st, 2, next_run_at);
	if (fired > 0)
		sqlite3_bind_int64(st, 3, fired);
	return run_write(r, st);
}

/* A row copied out of a statement, so callbacks may write meanwhile. */
typedef struct copied_row {
	long long id, pk;
	char *kind, *dag_id, *run_id, *state, *conf, *options, *args;
} copied_row;

static void copied_row_free(copied_row *c)
{
	free(c->kind), free(c->dag_id), free(c->run_id), free(c->state);
	free(c->conf), free(c->options), free(c->args);
}

static char *column_dup(sqlite3_stmt *st, int i)
{
	const char *v = (const char *)sqlite3_column_text(st, i);
	return v ? strdup(v) : NULL;
}

int st_each_command(runner *r, st_command_fn fn, void *arg)
{
	static const char sql[] =
		"SELECT c.id, c.kind, r.id, r.dag_id, r.run_id, r.state, r.conf, r.options,"
		" c.args FROM commands c JOIN runs r ON r.id = c.run_pk"
		" WHERE c.done_at IS NULL ORDER BY c.id";
	sqlite3_stmt *st = pw_store_stmt(r->tx.store, sql);
	copied_row *rows = NULL;
	size_t n = 0, cap = 0;
	int rc = st ? PW_OK : PW_ERR, step = SQLITE_DONE;
	while (rc == PW_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
		if (pw_grow(&rows, n, &cap, sizeof *rows, 16) != 0) {
			rc = PW_ERR;
			break;
		}
		rows[n++] = (copied_row){
			sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 2),
			column_dup(st, 1), column_dup(st, 3), column_dup(st, 4),
			column_dup(st, 5), column_dup(st, 6), column_dup(st, 7),
			column_dup(st, 8),
		};
	}
	if (st && step != SQLITE_DONE && rc == PW_OK) {
		log_sql_error(r);
		rc = PW_ERR;
	}
	if (st)
		sqlite3_reset(st);
	for (size_t i = 0; i < n; i++) {
		copied_row *c = &rows[i];
		json_object *conf = pw_json_parse_exact(c->conf);
		json_object *opts = c->options ? json_tokener_parse(c->options) : NULL;
		json_object *args = c->args ? json_tokener_parse(c->args) : NULL;
		int state = run_state_parse(c->state);
		st_command cmd = {c->id, c->kind,
				  {c->pk, c->dag_id, c->run_id, (run_state)state, conf, opts}, args};
		if (rc == PW_OK && c->kind && c->dag_id && c->run_id && state >= 0)
			rc = fn(r, &cmd, arg);
		json_object_put(conf);
		json_object_put(opts);
		json_object_put(args);
		copied_row_free(c);
	}
	free(rows);
	return rc;
}

/*
 * Copies the rows of st (id, dag_id, run_id, conf, options, bound by the
 * caller), resets it, then calls fn on each as a run in state; stops at
 * fn's first error. The copies let fn write meanwhile.
 */
static int each_run_row(runner *r, sqlite3_stmt *st, run_state state, st_run_fn fn, void *arg)
{
	copied_row *rows = NULL;
	size_t n = 0, cap = 0;
	int rc = PW_OK, step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (pw_grow(&rows, n, &cap, sizeof *rows, 16) != 0) {
			rc = PW_ERR;
			break;
		}
		rows[n++] = (copied_row){
			.pk = sqlite3_column_int64(st, 0), .dag_id = column_dup(st, 1),
			.run_id = column_dup(st, 2), .conf = column_dup(st, 3),
			.options = column_dup(st, 4),
		};
	}
	if (rc == PW_OK && step != SQLITE_DONE) {
		log_sql_error(r);
		rc = PW_ERR;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	for (size_t i = 0; i < n; i++) {
		copied_row *c = &rows[i];
		json_object *conf = pw_json_parse_exact(c->conf);
		json_object *opts = c->options ? json_tokener_parse(c->options) : NULL;
		st_run_row row = {c->pk, c->dag_id, c->run_id, state, conf, opts};
		if (rc == PW_OK && c->dag_id && c->run_id)
			rc = fn(r, &row, arg);
		json_object_put(conf);
		json_object_put(opts);
		copied_row_free(c);
	}
	free(rows);
	return rc;
}

int st_each_run(runner *r, run_state state, st_run_fn fn, void *arg)
{
	static const char sql[] =
		"SELECT id, dag_id, run_id, conf, options FROM runs"
		" WHERE state = ?1 ORDER BY queued_at, id";
	sqlite3_stmt *st = pw_store_stmt(r->tx.store, sql);
	if (!st)
		return PW_ERR;
	pw_store_bind_text(st, 1, run_state_names[state]);
	return each_run_row(r, st, state, fn, arg);
}

/*
 * Steps the queued runs, oldest first, with only what pick needs (no
 * copies, no JSON parsing: a backlog of thousands is read on every pass
 * that may claim); the pks pick takes go to *taken (malloc'd, *n_taken).
 */
static int pick_queued(runner *r, st_pick_fn pick, void *arg, long long **taken,
		       size_t *n_taken)
{
	static const char sql[] =
		"SELECT r.id, r.dag_id, CASE WHEN json_valid(r.options)"
		" AND json_type(r.options, '$.max_active_runs') = 'integer'"
		" THEN json_extract(r.options, '$.max_active_runs') END, d.is_paused"
		" FROM runs r LEFT JOIN dags d ON d.dag_id = r.dag_id"
		" WHERE r.state = 'queued' ORDER BY r.queued_at, r.id";
	sqlite3_stmt *st = pw_store_stmt(r->tx.store, sql);
	size_t cap = 0;
	int rc = st ? PW_OK : PW_ERR, step = SQLITE_DONE;
	*taken = NULL;
	*n_taken = 0;
	while (rc == PW_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *dag_id = (const char *)sqlite3_column_text(st, 1);
		long long limit = sqlite3_column_int64(st, 2);
		st_queued_row q = {sqlite3_column_int64(st, 0), dag_id ? dag_id : "",
				   limit > 0 && limit <= INT_MAX ? (int)limit : 0,
				   sqlite3_column_int(st, 3) != 0};
		int took = pick(r, &q, arg);
		if (took < 0 || (took && pw_grow(taken, *n_taken, &cap, sizeof **taken, 8) != 0))
			rc = PW_ERR;
		else if (took)
			(*taken)[(*n_taken)++] = q.pk;
	}
	if (st && rc == PW_OK && step != SQLITE_DONE) {
		log_sql_error(r);
		rc = PW_ERR;
	}
	if (st)
		sqlite3_reset(st);
	return rc;
}

int st_claim_queued(runner *r, st_pick_fn pick, st_run_fn fn, void *arg)
{
	static const char sql[] = "SELECT id, dag_id, run_id, conf, options FROM runs"
				  " WHERE id = ?1 AND state = 'queued'";
	long long *taken = NULL;
	size_t n = 0;
	int rc = pick_queued(r, pick, arg, &taken, &n);
	for (size_t i = 0; rc == PW_OK && i < n; i++) {
		sqlite3_stmt *st = pw_store_stmt(r->tx.store, sql);
		if (!st) {
			rc = PW_ERR;
			break;
		}
		sqlite3_bind_int64(st, 1, taken[i]);
		rc = each_run_row(r, st, RUN_QUEUED, fn, arg);
	}
	free(taken);
	return rc;
}

int st_command_done(runner *r, long long id, long long now)
{
	static const char sql[] = "UPDATE commands SET done_at = ?2 WHERE id = ?1";
	sqlite3_stmt *st = write_stmt(r, sql);
	if (!st)
		return PW_ERR;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	return run_write(r, st);
}

int st_changed(runner *r, bool *changed)
{
	static const char sql[] = "PRAGMA data_version";
	sqlite3_stmt *st = pw_store_stmt(r->tx.store, sql);
	if (!st)
		return PW_ERR;
	long long v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_reset(st);
	*changed = v != r->tx.data_version;
	r->tx.data_version = v;
	return v < 0 ? PW_ERR : PW_OK;
}

bool st_can_write(runner *r)
{
	sqlite3 *db = pw_store_db(r->tx.store);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return false;
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return true;
}

int st_runner_stopped(runner *r, int pid)
{
	static const char sql[] = "DELETE FROM runner WHERE pid = ?1";
	sqlite3_stmt *st = pw_store_stmt(r->tx.store, sql);
	if (!st)
		return PW_ERR;
	sqlite3_bind_int(st, 1, pid);
	return run_write(r, st);
}
