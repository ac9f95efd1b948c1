/*
 * stats.c - numbers about a DAG's runs (GET /api/v1/dags/:dag_id/stats)
 * and about the whole system (GET /api/v1/metrics).
 *
 * Counts by state come from the indexes alone (runs_dag_state_queued,
 * runs_state_queued, task_instances_state_pool). Every state is present
 * in the answers, with 0 when nothing is in it.
 */
#include "api.h"
#include "states.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/*
 * A JSON number with at most `decimals` decimals as written (json-c would
 * print 0.1 as 0.10000000000000001), or NULL.
 */
static json_object *new_decimal(double v, int decimals)
{
	char buf[64];
	size_t n = (size_t)snprintf(buf, sizeof buf, "%.*f", decimals, v);

	/* trailing zeros off, one decimal kept: 1.0, 0.5, 0.6667 */
	while (strchr(buf, '.') && n > 2 && buf[n - 1] == '0' && buf[n - 2] != '.')
		buf[--n] = '\0';
	return json_object_new_double_s(v, buf);
}

/*
 * Steps a bound (state, count) statement and puts it back: counts[i] gets
 * the count of names[i] (states it does not know are ignored). GO or
 * FAILED.
 */
static int count_states(pw_req *req, sqlite3_stmt *st, const char *const *names,
			size_t n, long long *counts)
{
	int step;

	memset(counts, 0, n * sizeof *counts);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *s = (const char *)sqlite3_column_text(st, 0);
		for (size_t i = 0; s && i < n; i++)
			if (strcmp(s, names[i]) == 0)
				counts[i] = sqlite3_column_int64(st, 1);
	}
	api_stmt_done(st);
	return step == SQLITE_DONE ? GO : api_db_error(req);
}

/* {name: count, ...} for every name, or NULL. */
static json_object *counts_object(const char *const *names, size_t n,
				  const long long *counts)
{
	json_object *o = json_object_new_object();

	for (size_t i = 0; o && i < n; i++) {
		if (pw_json_put(o, names[i], json_object_new_int64(counts[i]))) {
			json_object_put(o);
			return NULL;
		}
	}
	return o;
}

/* --- GET /api/v1/dags/:dag_id/stats ----------------------------------------- */

static const char dag_counts_sql[] =
	"SELECT state, count(*) FROM runs WHERE dag_id = ?1 GROUP BY state";
/* Finished runs that ran: their durations, for avg, max and percentiles. */
static const char dag_durations_sql[] =
	"SELECT ended_at - started_at FROM runs WHERE dag_id = ?1"
	" AND state IN ('success', 'failed', 'cancelled')"
	" AND ended_at IS NOT NULL AND started_at IS NOT NULL";
static const char dag_last_sql[] =
	"SELECT run_id FROM runs WHERE dag_id = ?1 ORDER BY queued_at DESC LIMIT 1";

/* A growable list of durations (ms). */
typedef struct durations {
	long long *v;
	size_t n, cap;
} durations;

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

/* Reads the durations of the DAG's finished runs, sorted. GO or FAILED. */
static int read_durations(pw_req *req, const char *dag_id, durations *d)
{
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(req), dag_durations_sql);
	int step, rc = GO;

	if (!st)
		return FAILED;
	sqlite3_bind_text(st, 1, dag_id, -1, SQLITE_STATIC);
	while (rc == GO && (step = sqlite3_step(st)) == SQLITE_ROW) {
		if (pw_grow(&d->v, d->n, &d->cap, sizeof *d->v, 256) != 0) {
			rc = FAILED;
			break;
		}
		d->v[d->n++] = sqlite3_column_int64(st, 0);
	}
	if (rc == GO && step != SQLITE_DONE)
		rc = api_db_error(req);
	api_stmt_done(st);
	if (rc == GO && d->n)
		qsort(d->v, d->n, sizeof *d->v, cmp_ll);
	return rc;
}

/* Nearest-rank percentile p (0 < p <= 100) of n > 0 sorted values. */
static long long percentile(const durations *d, double p)
{
	size_t rank = (size_t)ceil(p / 100.0 * (double)d->n);
	return d->v[rank ? rank - 1 : 0];
}

/* {avg, p50, p95, max} of the durations (nulls when there are none). */
static json_object *durations_object(const durations *d)
{
	static const char *const keys[] = {"avg", "p50", "p95", "max"};
	json_object *o = json_object_new_object();
	long long vals[4];
	double sum = 0;

	if (!o)
		return NULL;
	for (size_t i = 0; i < d->n; i++)
		sum += (double)d->v[i];
	if (d->n) {
		vals[0] = llround(sum / (double)d->n);
		vals[1] = percentile(d, 50);
		vals[2] = percentile(d, 95);
		vals[3] = d->v[d->n - 1];
	}
	for (size_t i = 0; i < 4; i++) {
		if (d->n ? pw_json_put(o, keys[i], json_object_new_int64(vals[i]))
			 : pw_json_put_null(o, keys[i])) {
			json_object_put(o);
			return NULL;
		}
	}
	return o;
}

/* Adds runs, total_runs and success_rate from the per-state counts. */
static int put_run_counts(pw_req *req, json_object *o, const char *dag_id)
{
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(req), dag_counts_sql);
	long long c[RUN_NSTATES], total = 0;

	if (!st)
		return FAILED;
	sqlite3_bind_text(st, 1, dag_id, -1, SQLITE_STATIC);
	if (count_states(req, st, run_state_names, RUN_NSTATES, c) != GO)
		return FAILED;
	for (size_t i = 0; i < RUN_NSTATES; i++)
		total += c[i];
	long long ok = c[RUN_SUCCESS], bad = c[RUN_FAILED];
	if (pw_json_put(o, "runs", counts_object(run_state_names, RUN_NSTATES, c)) ||
	    pw_json_put(o, "total_runs", json_object_new_int64(total)) ||
	    (ok + bad ? pw_json_put(o, "success_rate",
			    new_decimal((double)ok / (double)(ok + bad), 4))
		      : pw_json_put_null(o, "success_rate")))
		return FAILED;
	return GO;
}

/* Adds duration_ms. */
static int put_durations(pw_req *req, json_object *o, const char *dag_id)
{
	durations d = {0};
	int rc = read_durations(req, dag_id, &d);

	if (rc == GO && pw_json_put(o, "duration_ms", durations_object(&d)))
		rc = FAILED;
	free(d.v);
	return rc;
}

/* Adds last_run: the most recently queued run, or null. */
static int put_last_run(pw_req *req, json_object *o, const char *dag_id)
{
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(req), dag_last_sql);
	json_object *run = NULL;
	char *run_id = NULL;
	int step, rc = GO;

	if (!st)
		return FAILED;
	sqlite3_bind_text(st, 1, dag_id, -1, SQLITE_STATIC);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW &&
	    !(run_id = strdup((const char *)sqlite3_column_text(st, 0))))
		rc = FAILED;
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = api_db_error(req);
	api_stmt_done(st);
	if (rc == GO && run_id &&
	    api_run_object(req, dag_id, run_id, &run, NULL) == PW_ERR)
		rc = FAILED;
	free(run_id);
	if (rc == GO && (run ? pw_json_put(o, "last_run", run) : pw_json_put_null(o, "last_run")))
		rc = FAILED;
	return rc;
}

int stats_dag(pw_req *req)
{
	const char *dag_id = pw_req_param(req, "dag_id");
	json_object *o;
	int rc = GO;

	if (!api_dag_exists_or_404(req, dag_id))
		return ANSWERED;
	o = json_object_new_object();
	if (!o || pw_json_put(o, "dag_id", json_object_new_string(dag_id)) ||
	    put_run_counts(req, o, dag_id) != GO ||
	    put_durations(req, o, dag_id) != GO ||
	    put_last_run(req, o, dag_id) != GO)
		rc = FAILED;
	if (rc == GO)
		return pw_reply_data(req, 200, o, NULL) == 0 ? GO : FAILED;
	json_object_put(o);
	return FAILED;
}

/* --- GET /api/v1/metrics ------------------------------------------------------- */

static const char run_counts_sql[] =
	"SELECT state, count(*) FROM runs GROUP BY state";
static const char task_counts_sql[] =
	"SELECT state, count(*) FROM task_instances GROUP BY state";
static const char pools_sql[] =
	"SELECT p.name, p.slots,"
	" (SELECT total(pool_slots) FROM task_instances"
	"   WHERE state = 'running' AND pool = p.name),"
	" (SELECT total(pool_slots) FROM task_instances"
	"   WHERE state = 'queued' AND pool = p.name)"
	" FROM pools p ORDER BY p.name";
static const char runner_sql[] =
	"SELECT pid, last_heartbeat FROM runner WHERE id = 1";

/* Adds key: {state: n} over names, counted by the statement sql. */
static int put_counts(pw_req *req, json_object *o, const char *key,
		      const char *sql, const char *const *names, size_t n,
		      long long *counts)
{
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(req), sql);

	if (!st || count_states(req, st, names, n, counts) != GO)
		return FAILED;
	return pw_json_put(o, key, counts_object(names, n, counts)) ? FAILED : GO;
}

/* {name, slots, running_slots, queued_slots, open_slots} of a pools row. */
static json_object *pool_from_row(sqlite3_stmt *st)
{
	json_object *p = json_object_new_object();
	long long slots = sqlite3_column_int64(st, 1);
	long long running = sqlite3_column_int64(st, 2);
	long long open = slots - running;

	if (!p || pw_json_put(p, "name", json_object_new_string(
			      (const char *)sqlite3_column_text(st, 0))) ||
	    pw_json_put(p, "slots", json_object_new_int64(slots)) ||
	    pw_json_put(p, "running_slots", json_object_new_int64(running)) ||
	    pw_json_put(p, "queued_slots", json_object_new_int64(sqlite3_column_int64(st, 3))) ||
	    pw_json_put(p, "open_slots", json_object_new_int64(open > 0 ? open : 0))) {
		json_object_put(p);
		return NULL;
	}
	return p;
}

/* Adds pools: the usage of every pool. */
static int put_pools(pw_req *req, json_object *o)
{
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(req), pools_sql);
	json_object *list = json_object_new_array();

	if (!st || !list) {
		json_object_put(list);
		return FAILED;
	}
	if (api_rows(req, st, pool_from_row, list) != GO) {
		json_object_put(list);
		return FAILED;
	}
	return pw_json_put(o, "pools", list) ? FAILED : GO;
}

/* {runs, tasks} queued, from the counts. */
static json_object *queue_depth(long long runs, long long tasks)
{
	json_object *q = json_object_new_object();

	if (!q || pw_json_put(q, "runs", json_object_new_int64(runs)) ||
	    pw_json_put(q, "tasks", json_object_new_int64(tasks))) {
		json_object_put(q);
		return NULL;
	}
	return q;
}

/* Adds runner: {last_heartbeat, heartbeat_age_s, pid}, nulls when none. */
static int put_runner(pw_req *req, json_object *o)
{
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(req), runner_sql);
	json_object *r = json_object_new_object();
	long long beat = 0, pid = 0;
	int step;

	if (!st || !r) {
		json_object_put(r);
		return FAILED;
	}
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		pid = sqlite3_column_int64(st, 0);
		beat = sqlite3_column_int64(st, 1);
	}
	api_stmt_done(st);
	if (step != SQLITE_ROW && step != SQLITE_DONE) {
		json_object_put(r);
		return api_db_error(req);
	}
	if ((beat > 0 ? pw_json_put(r, "last_heartbeat", api_time(beat))
		      : pw_json_put_null(r, "last_heartbeat")) ||
	    (beat > 0 ? pw_json_put(r, "heartbeat_age_s", new_decimal(
				    (double)(pw_now_ms() - beat) / 1000.0, 3))
		      : pw_json_put_null(r, "heartbeat_age_s")) ||
	    (pid > 0 ? pw_json_put(r, "pid", json_object_new_int64(pid))
		     : pw_json_put_null(r, "pid"))) {
		json_object_put(r);
		return FAILED;
	}
	return pw_json_put(o, "runner", r) ? FAILED : GO;
}

int stats_metrics(pw_req *req)
{
	long long runs[RUN_NSTATES], tasks[TI_NSTATES];
	json_object *o = json_object_new_object();

	if (!o || put_counts(req, o, "runs", run_counts_sql, run_state_names,
			     RUN_NSTATES, runs) != GO ||
	    put_counts(req, o, "tasks", task_counts_sql, ti_state_names,
		       TI_NSTATES, tasks) != GO ||
	    pw_json_put(o, "queue_depth", queue_depth(runs[RUN_QUEUED], tasks[TI_QUEUED])) ||
	    put_pools(req, o) != GO || put_runner(req, o) != GO) {
		json_object_put(o);
		return FAILED;
	}
	return pw_reply_data(req, 200, o, NULL) == 0 ? GO : FAILED;
}
