/*
 * metrics.c - GET /metrics: the state of the system in Prometheus text
 * format 0.0.4 (DESIGN.md section 8), for a scraper. Names are prefixed
 * pipewright_, values in base units (seconds), no run or task ids in
 * labels:
 *
 *   pipewright_build_info{version}                  gauge, always 1
 *   pipewright_dag_runs{dag_id,state}               gauge: runs now in each state
 *   pipewright_task_instances{state}                gauge
 *   pipewright_dag_run_duration_seconds{dag_id}     summary (_sum, _count) of
 *                                                   the finished runs that ran
 *   pipewright_queue_depth                          gauge: queued task instances
 *   pipewright_pool_slots{pool,state}               gauge: state total|running|
 *                                                   queued|open
 *   pipewright_runner_heartbeat_age_seconds         gauge (absent: no heartbeat)
 *   pipewright_runner_up                            gauge: 1 while health counts
 *                                                   the runner as running
 *   pipewright_http_requests_total{code}            counter: this process's
 *                                                   answers (absent under CGI)
 *
 * Every state of DESIGN.md section 4 gets its sample (0 included), so a
 * series does not vanish when its count drops to zero.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "api.h"
#include "states.h"


/* A label value with \, " and newline escaped, as the format wants. */
static void label_value(struct printbuf *pb, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '\\' || *s == '"')
			sprintbuf(pb, "\\%c", *s);
		else if (*s == '\n')
			printbuf_strappend(pb, "\\n");
		else
			printbuf_memappend(pb, s, 1);
	}
}

static void help_type(struct printbuf *pb, const char *name, const char *type, const char *help)
{
	sprintbuf(pb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* pipewright_dag_runs: one sample per DAG that has runs, per state. */
static int dag_runs(pw_req *req, struct printbuf *pb)
{
	static const char sql[] =
		"SELECT dag_id, state, count(*) FROM runs GROUP BY dag_id, state ORDER BY dag_id";
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(req), sql);
	long long counts[RUN_NSTATES] = {0};
	char dag[512] = "";
	bool have = false;
	int step;
	if (!st)
		return api_db_error(req);
	help_type(pb, "pipewright_dag_runs", "gauge", "Runs now in each state, by DAG.");
	for (;;) {
		step = sqlite3_step(st);
		const char *id = step == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
		if (have && (!id || strcmp(id, dag) != 0)) {
			for (size_t i = 0; i < RUN_NSTATES; i++) {
				printbuf_strappend(pb, "pipewright_dag_runs{dag_id=\"");
				label_value(pb, dag);
				sprintbuf(pb, "\",state=\"%s\"} %lld\n", run_state_names[i], counts[i]);
			}
			memset(counts, 0, sizeof counts);
		}
		if (!id)
			break;
		snprintf(dag, sizeof dag, "%s", id);
		have = true;
		int i = run_state_parse((const char *)sqlite3_column_text(st, 1));
		if (i >= 0)
			counts[i] = sqlite3_column_int64(st, 2);
	}
	api_stmt_done(st);
	return step == SQLITE_DONE ? GO : api_db_error(req);
}

/* pipewright_task_instances and pipewright_queue_depth. */
static int task_instances(pw_req *req, struct printbuf *pb)
{
	static const char sql[] = "SELECT state, count(*) FROM task_instances GROUP BY state";
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(req), sql);
	long long counts[TI_NSTATES] = {0};
	int step;
	if (!st)
		return api_db_error(req);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		int i = ti_state_parse((const char *)sqlite3_column_text(st, 0));
		if (i >= 0)
			counts[i] = sqlite3_column_int64(st, 1);
	}
	api_stmt_done(st);
	if (step != SQLITE_DONE)
		return api_db_error(req);
	help_type(pb, "pipewright_task_instances", "gauge", "Task instances now in each state.");
	for (size_t i = 0; i < TI_NSTATES; i++)
		sprintbuf(pb, "pipewright_task_instances{state=\"%s\"} %lld\n", ti_state_names[i],
			  counts[i]);
	help_type(pb, "pipewright_queue_depth", "gauge",
		  "Task instances ready to run and waiting for a slot.");
	sprintbuf(pb, "pipewright_queue_depth %lld\n", counts[TI_QUEUED]);
	return GO;
}

/* pipewright_dag_run_duration_seconds: a summary without quantiles. */
static int durations(pw_req *req, struct printbuf *pb)
{
	static const char sql[] =
		"SELECT dag_id, count(*), total(ended_at - started_at) FROM runs"
		" WHERE state IN ('success', 'failed', 'cancelled')"
		" AND ended_at IS NOT NULL AND started_at IS NOT NULL GROUP BY dag_id ORDER BY dag_id";
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(req), sql);
	int step;
	if (!st)
		return api_db_error(req);
	help_type(pb, "pipewright_dag_run_duration_seconds", "summary",
		  "Durations of the finished runs that ran, by DAG.");
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *dag = (const char *)sqlite3_column_text(st, 0);
		printbuf_strappend(pb, "pipewright_dag_run_duration_seconds_sum{dag_id=\"");
		label_value(pb, dag);
		sprintbuf(pb, "\"} %.3f\n", sqlite3_column_double(st, 2) / 1000.0);
		printbuf_strappend(pb, "pipewright_dag_run_duration_seconds_count{dag_id=\"");
		label_value(pb, dag);
		sprintbuf(pb, "\"} %lld\n", sqlite3_column_int64(st, 1));
	}
	api_stmt_done(st);
	return step == SQLITE_DONE ? GO : api_db_error(req);
}

/* pipewright_pool_slots{pool,state}. */
static int pools(pw_req *req, struct printbuf *pb)
{
	static const char sql[] =
		"SELECT p.name, p.slots,"
		" (SELECT total(pool_slots) FROM task_instances"
		"   WHERE state = 'running' AND pool = p.name),"
		" (SELECT total(pool_slots) FROM task_instances"
		"   WHERE state = 'queued' AND pool = p.name)"
		" FROM pools p ORDER BY p.name";
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(req), sql);
	int step;
	if (!st)
		return api_db_error(req);
	help_type(pb, "pipewright_pool_slots", "gauge",
		  "Pool slots: total, running, queued and open.");
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		long long v[4];
		static const char *const states[] = {"total", "running", "queued", "open"};
		v[0] = sqlite3_column_int64(st, 1);
		v[1] = sqlite3_column_int64(st, 2);
		v[2] = sqlite3_column_int64(st, 3);
		v[3] = v[0] > v[1] ? v[0] - v[1] : 0;
		for (size_t i = 0; i < 4; i++) {
			printbuf_strappend(pb, "pipewright_pool_slots{pool=\"");
			label_value(pb, (const char *)sqlite3_column_text(st, 0));
			sprintbuf(pb, "\",state=\"%s\"} %lld\n", states[i], v[i]);
		}
	}
	api_stmt_done(st);
	return step == SQLITE_DONE ? GO : api_db_error(req);
}

/* The runner and this process's requests. */
static int runner_and_http(pw_req *req, struct printbuf *pb)
{
	long long age_ms = -1, counts[600];
	int up = api_runner_up(req, &age_ms);
	if (up < 0)
		return FAILED;
	if (age_ms >= 0) {
		help_type(pb, "pipewright_runner_heartbeat_age_seconds", "gauge",
			  "Age of the runner's last heartbeat.");
		sprintbuf(pb, "pipewright_runner_heartbeat_age_seconds %.3f\n", (double)age_ms / 1000.0);
	}
	help_type(pb, "pipewright_runner_up", "gauge",
		  "1 while health counts the runner as running.");
	sprintbuf(pb, "pipewright_runner_up %d\n", up);
	if (api_http_counts(counts)) {
		help_type(pb, "pipewright_http_requests_total", "counter",
			  "Requests this process answered, by HTTP status.");
		for (int code = 100; code < 600; code++)
			if (counts[code])
				sprintbuf(pb, "pipewright_http_requests_total{code=\"%d\"} %lld\n", code,
					  counts[code]);
	}
	return GO;
}

int metrics_get(pw_req *req)
{
	struct printbuf *pb = printbuf_new();
	int rc = pb ? GO : FAILED;
	if (rc == GO) {
		help_type(pb, "pipewright_build_info", "gauge", "The pipewright version serving.");
		printbuf_strappend(pb, "pipewright_build_info{version=\"");
		label_value(pb, PACKAGE_VERSION);
		printbuf_strappend(pb, "\"} 1\n");
	}
	/* one read transaction: the numbers are of one moment */
	if (rc == GO && pw_store_begin_read(pw_req_store(req)) != PW_OK)
		rc = api_db_error(req);
	if (rc == GO)
		rc = dag_runs(req, pb);
	if (rc == GO)
		rc = task_instances(req, pb);
	if (rc == GO)
		rc = durations(req, pb);
	if (rc == GO)
		rc = pools(req, pb);
	if (rc == GO)
		rc = runner_and_http(req, pb);
	pw_store_commit(pw_req_store(req));
	if (rc == GO)
		rc = pw_reply_raw(req, 200, "text/plain; version=0.0.4; charset=utf-8", pb->buf,
				  (size_t)pb->bpos);
	else
		rc = pw_reply_error(req, 503, "the database does not answer") ? FAILED : GO;
	printbuf_free(pb);
	return rc;
}
