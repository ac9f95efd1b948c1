/*
 * test_ops.c - the operations of DESIGN.md section 5 through a real
 * lighttpd, pipewright.fcgi and a real pipewright-runner: clear, mark a
 * task, mark a run and its note, delete with ?purge=true, the runs of
 * every DAG (~/runs), backfills, catchup (the runner alone, restarted),
 * the DAG's source and Graphviz graph, and /api/v1/me per role; with the
 * bad input of each.
 *
 * Waits poll every 20 ms up to a deadline; nothing is timed. The order of
 * things (how many runs were active at once) is read from the times the
 * runner recorded.
 */
#include "fixture.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define W HR_WAIT_MS


static const char DAG_CHAIN[] =
	"tasks:\n"
	"  - id: a\n"
	"    command: \"echo a\"\n"
	"  - id: b\n"
	"    upstream: [a]\n"
	"    command: \"echo b\"\n"
	"  - id: c\n"
	"    upstream: [b]\n"
	"    command: \"echo c\"\n";

/* y fails on its first try only; z follows it. */
static const char DAG_ONCE_FAILS[] =
	"tasks:\n"
	"  - id: x\n"
	"    command: \"true\"\n"
	"  - id: y\n"
	"    upstream: [x]\n"
	"    command: \"if [ -e var/y.marker ]; then exit 0; fi; touch var/y.marker; exit 1\"\n"
	"  - id: z\n"
	"    upstream: [y]\n"
	"    command: \"true\"\n";

static const char DAG_FAILS[] =
	"tasks:\n"
	"  - id: f\n"
	"    command: \"false\"\n"
	"  - id: g\n"
	"    upstream: [f]\n"
	"    command: \"true\"\n";

/* q waits in a pool of no slots; r follows it. */
static const char DAG_STUCK[] =
	"tasks:\n"
	"  - id: q\n"
	"    pool: closed\n"
	"    command: \"true\"\n"
	"  - id: r\n"
	"    upstream: [q]\n"
	"    command: \"true\"\n";

static const char DAG_SLEEPER[] =
	"tasks:\n"
	"  - id: nap\n"
	"    command: [\"sleep\", \"30\"]\n";

/* Daily, at most 2 runs at once, each a little while long. */
static const char DAG_DAILY[] =
	"schedule: \"0 0 * * *\"\n"
	"paused: true\n"
	"max_active_runs: 2\n"
	"tasks:\n"
	"  - id: t\n"
	"    command: [\"sleep\", \"0.2\"]\n";

/* Hourly, up to 3 runs at once unless a backfill says otherwise. */
static const char DAG_HOURLY[] =
	"schedule: \"@hourly\"\n"
	"paused: true\n"
	"max_active_runs: 3\n"
	"tasks:\n"
	"  - id: t\n"
	"    command: [\"sleep\", \"0.2\"]\n";

static const char DAG_UNSCHEDULED[] =
	"tasks:\n"
	"  - id: t\n"
	"    command: \"true\"\n";

static int group_setup(void **state)
{
	(void)state;
	P = hr_project_new(4);
	hr_dag(P, "chain", DAG_CHAIN);
	hr_dag(P, "once_fails", DAG_ONCE_FAILS);
	hr_dag(P, "fails", DAG_FAILS);
	hr_dag(P, "stuck", DAG_STUCK);
	hr_dag(P, "sleeper", DAG_SLEEPER);
	hr_dag(P, "daily", DAG_DAILY);
	hr_dag(P, "unscheduled", DAG_UNSCHEDULED);
	hr_dag(P, "hourly", DAG_HOURLY);
	hr_dag(P, "held", "paused: true\n" "tasks:\n  - id: t\n    command: \"true\"\n");
	hr_pools(P, "closed: {slots: 0}\n");
	fx_start(NULL, true);
	return 0;
}


/* --- helpers ---------------------------------------------------------------- */

static char path_buf[1024];

static const char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *pathf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(path_buf, sizeof path_buf, fmt, ap);
	va_end(ap);
	return path_buf;
}

/* method path body; expects status; returns a copy of data (caller puts). */
static json_object *send_ok(const char *method, const char *path, const char *body,
			    long status)
{
	ht_resp *r = ht_send(S, method, path, body);
	json_object *d = json_object_get(ht_ok(r, status));
	ht_resp_free(r);
	return d;
}

/* method path body; expects status with the error envelope naming what. */
static void send_err(const char *method, const char *path, const char *body, long status,
		     const char *what)
{
	ht_resp *r = ht_send(S, method, path, body);
	ht_err(r, status);
	if (what && !strstr(r->body, what))
		ht_fail(r, what);
	ht_resp_free(r);
}

/* Triggers a run of dag with this id and waits until it ends in state. */
static void run_to_end(const char *dag, const char *run_id, const char *state)
{
	char body[256];
	snprintf(body, sizeof body, "{\"run_id\": \"%s\"}", run_id);
	json_object_put(send_ok("POST", pathf("/api/v1/dags/%s/runs", dag), body, 201));
	hr_wait_run_state(P, dag, run_id, state, W);
}

/* The comma-separated task ids of data.task_ids. */
static void expect_ids(json_object *d, const char *want)
{
	char got[512] = "";
	json_object *ids = ht_arr(d, "task_ids");
	for (size_t i = 0; i < json_object_array_length(ids); i++) {
		if (i)
			strcat(got, ",");
		strcat(got, json_object_get_string(json_object_array_get_idx(ids, i)));
	}
	if (strcmp(got, want) != 0)
		fail_msg("task_ids are [%s], expected [%s]", got, want);
}

struct ti_wait {
	const char *dag, *run, *task, *state;
	int try_number;
};

static bool ti_is(hr_project *p, void *arg)
{
	struct ti_wait *w = arg;
	hr_ti ti;
	return hr_task(p, w->dag, w->run, w->task, &ti) && ti.try_number == w->try_number &&
	       strcmp(ti.state, w->state) == 0;
}

/* Waits until the task instance is in state at try try_number. */
static void wait_ti(const char *dag, const char *run, const char *task, const char *state,
		    int try_number)
{
	struct ti_wait w = {dag, run, task, state, try_number};
	hr_wait_for(P, ti_is, &w, task, W);
}

static int try_of(const char *dag, const char *run, const char *task)
{
	hr_ti ti;
	assert_true(hr_task(P, dag, run, task, &ti));
	return ti.try_number;
}

/* --- clear ---------------------------------------------------------------------- */

static void test_clear_downstream(void **state)
{
	(void)state;
	run_to_end("chain", "c1", "success");
	json_object *d = send_ok("POST", "/api/v1/dags/chain/runs/c1/clear",
				 "{\"task_ids\": [\"b\"], \"include_downstream\": true}", 202);
	expect_ids(d, "b,c");
	json_object_put(d);
	wait_ti("chain", "c1", "c", "success", 2);
	hr_wait_run_state(P, "chain", "c1", "success", W);
	assert_int_equal(try_of("chain", "c1", "a"), 1);
	assert_int_equal(try_of("chain", "c1", "b"), 2);
	assert_int_equal(try_of("chain", "c1", "c"), 2);
	/* the run went back to queued, then ran again */
	char *ev = hr_state_events(P, "chain", "c1", NULL);
	assert_string_equal(ev, "queued,running,success,queued,running,success");
	free(ev);
	ev = hr_state_events(P, "chain", "c1", "b");
	assert_non_null(strstr(ev, "success,pending,queued,running,success"));
	free(ev);
	/* include_upstream */
	d = send_ok("POST", "/api/v1/dags/chain/runs/c1/clear",
		    "{\"task_ids\": [\"b\"], \"include_upstream\": true, \"dry_run\": true}", 200);
	expect_ids(d, "a,b");
	json_object_put(d);
	passed = true;
}

static void test_clear_only_failed(void **state)
{
	(void)state;
	run_to_end("once_fails", "o1", "failed");
	assert_string_equal(hr_task_state(P, "once_fails", "o1", "z"), "upstream_failed");
	json_object *d = send_ok("POST", "/api/v1/dags/once_fails/runs/o1/clear",
				 "{\"only_failed\": true}", 202);
	expect_ids(d, "y,z");
	json_object_put(d);
	wait_ti("once_fails", "o1", "z", "success", 1);
	hr_wait_run_state(P, "once_fails", "o1", "success", W);
	assert_int_equal(try_of("once_fails", "o1", "x"), 1);
	assert_int_equal(try_of("once_fails", "o1", "y"), 2);
	passed = true;
}

static void test_clear_dry_run_changes_nothing(void **state)
{
	(void)state;
	run_to_end("chain", "c2", "success");
	long long commands = hr_sql_int(P, -1, "SELECT count(*) FROM commands", "");
	long long events = hr_sql_int(P, -1, "SELECT max(id) FROM events", "");
	json_object *d = send_ok("POST", "/api/v1/dags/chain/runs/c2/clear",
				 "{\"dry_run\": true}", 200);
	expect_ids(d, "a,b,c");
	json_object_put(d);
	assert_int_equal(hr_sql_int(P, -1, "SELECT count(*) FROM commands", ""), commands);
	assert_int_equal(hr_sql_int(P, -1, "SELECT max(id) FROM events", ""), events);
	assert_string_equal(hr_run_state(P, "chain", "c2"), "success");
	assert_int_equal(try_of("chain", "c2", "a"), 1);
	passed = true;
}

static void test_clear_bad_input(void **state)
{
	(void)state;
	run_to_end("chain", "c3", "success");
	send_err("POST", "/api/v1/dags/chain/runs/c3/clear",
		 "{\"task_ids\": [\"a\", \"nope\", \"ghost\"]}", 400, "'nope', 'ghost'");
	send_err("POST", "/api/v1/dags/chain/runs/c3/clear", "{\"task_ids\": \"a\"}", 400,
		 "task_ids");
	send_err("POST", "/api/v1/dags/chain/runs/c3/clear", "{\"downstream\": true}", 400,
		 "downstream");
	send_err("POST", "/api/v1/dags/chain/runs/c3/clear", "{", 400, NULL);
	send_err("POST", "/api/v1/dags/chain/runs/none/clear", "{}", 404, NULL);
	send_err("POST", "/api/v1/dags/nodag/runs/c3/clear", "{}", 404, NULL);
	assert_string_equal(hr_run_state(P, "chain", "c3"), "success");
	assert_int_equal(try_of("chain", "c3", "a"), 1);
	passed = true;
}

/* --- mark ------------------------------------------------------------------------ */

static void test_mark_success_runs_downstream(void **state)
{
	(void)state;
	run_to_end("fails", "m1", "failed");
	assert_string_equal(hr_task_state(P, "fails", "m1", "g"), "upstream_failed");
	json_object *d = send_ok("PATCH", "/api/v1/dags/fails/runs/m1/tasks/f",
				 "{\"state\": \"success\"}", 200);
	assert_string_equal(ht_str(d, "task_id"), "f");
	assert_string_equal(ht_str(d, "state"), "success");
	json_object_put(d);
	wait_ti("fails", "m1", "g", "success", 1);
	hr_wait_run_state(P, "fails", "m1", "success", W);
	assert_int_equal(try_of("fails", "m1", "f"), 1); /* not run again */
	passed = true;
}

static void test_mark_failed_fails_downstream(void **state)
{
	(void)state;
	json_object_put(send_ok("POST", "/api/v1/dags/stuck/runs", "{\"run_id\": \"m2\"}", 201));
	hr_wait_task_state(P, "stuck", "m2", "q", "queued", W);
	json_object_put(send_ok("PATCH", "/api/v1/dags/stuck/runs/m2/tasks/q",
				"{\"state\": \"failed\"}", 200));
	hr_wait_task_state(P, "stuck", "m2", "r", "upstream_failed", W);
	hr_wait_run_state(P, "stuck", "m2", "failed", W);
	assert_int_equal(try_of("stuck", "m2", "q"), 0);
	passed = true;
}

static void test_mark_bad_input(void **state)
{
	(void)state;
	json_object_put(send_ok("POST", "/api/v1/dags/sleeper/runs", "{\"run_id\": \"m3\"}", 201));
	hr_wait_task_state(P, "sleeper", "m3", "nap", "running", W);
	send_err("PATCH", "/api/v1/dags/sleeper/runs/m3/tasks/nap", "{\"state\": \"success\"}",
		 409, "running");
	send_err("PATCH", "/api/v1/dags/sleeper/runs/m3", "{\"state\": \"success\"}", 409,
		 "running");
	send_err("PATCH", "/api/v1/dags/sleeper/runs/m3/tasks/nap", "{\"state\": \"running\"}",
		 400, "state");
	send_err("PATCH", "/api/v1/dags/sleeper/runs/m3/tasks/nap", "{}", 400, "state");
	send_err("PATCH", "/api/v1/dags/sleeper/runs/m3/tasks/nap",
		 "{\"state\": \"failed\", \"x\": 1}", 400, "x");
	send_err("PATCH", "/api/v1/dags/sleeper/runs/m3/tasks/ghost", "{\"state\": \"failed\"}",
		 404, NULL);
	/* an unfinished run is not purged; delete without purge still cancels */
	send_err("DELETE", "/api/v1/dags/sleeper/runs/m3?purge=true", NULL, 409, "finished");
	send_err("DELETE", "/api/v1/dags/sleeper/runs/m3?purge=yes", NULL, 400, "purge");
	json_object_put(send_ok("DELETE", "/api/v1/dags/sleeper/runs/m3", NULL, 202));
	hr_wait_run_state(P, "sleeper", "m3", "cancelled", W);
	passed = true;
}

static void test_patch_run_note_and_state(void **state)
{
	(void)state;
	run_to_end("chain", "n1", "success");
	json_object *d = send_ok("PATCH", "/api/v1/dags/chain/runs/n1",
				 "{\"note\": \"checked by ops\"}", 200);
	assert_string_equal(ht_str(d, "note"), "checked by ops");
	assert_string_equal(ht_str(d, "state"), "success");
	json_object_put(d);
	d = send_ok("PATCH", "/api/v1/dags/chain/runs/n1", "{\"state\": \"failed\"}", 200);
	assert_string_equal(ht_str(d, "state"), "failed");
	assert_string_equal(ht_str(d, "note"), "checked by ops");
	json_object_put(d);
	assert_string_equal(hr_run_state(P, "chain", "n1"), "failed");
	char *ev = hr_state_events(P, "chain", "n1", NULL);
	assert_string_equal(ev, "queued,running,success,failed");
	free(ev);
	/* a queued run (its DAG is paused) is not running either */
	json_object_put(send_ok("POST", "/api/v1/dags/held/runs", "{\"run_id\": \"h1\"}", 201));
	d = send_ok("PATCH", "/api/v1/dags/held/runs/h1", "{\"state\": \"success\"}", 200);
	assert_string_equal(ht_str(d, "state"), "success");
	json_object_put(d);
	hr_set_paused(P, "held", false);
	json_object_put(send_ok("POST", "/api/v1/dags/held/runs", "{\"run_id\": \"h2\"}", 201));
	hr_wait_run_state(P, "held", "h2", "success", W);
	assert_int_equal(hr_task_count(P, "held", "h1"), 0); /* h1 never ran */
	assert_string_equal(hr_run_state(P, "held", "h1"), "success");
	send_err("PATCH", "/api/v1/dags/chain/runs/n1", "{\"state\": \"queued\"}", 400, "state");
	send_err("PATCH", "/api/v1/dags/chain/runs/n1", "{}", 400, NULL);
	send_err("PATCH", "/api/v1/dags/chain/runs/n1", "{\"note\": 3}", 400, "note");
	passed = true;
}

/* --- delete ?purge=true --------------------------------------------------------- */

static void test_purge(void **state)
{
	(void)state;
	run_to_end("chain", "p1", "success");
	long long pk = hr_run_pk(P, "chain", "p1");
	assert_true(hr_exists(P, "var/logs/chain/p1"));
	ht_resp *r = ht_send(S, "DELETE", "/api/v1/dags/chain/runs/p1?purge=true", NULL);
	if (r->status != 204)
		ht_fail(r, "204");
	ht_resp_free(r);
	assert_null(hr_run_state(P, "chain", "p1"));
	assert_int_equal(hr_sql_int(P, -1, "SELECT count(*) FROM task_instances WHERE run_pk = ?",
				    "l", pk), 0);
	assert_int_equal(hr_sql_int(P, -1, "SELECT count(*) FROM task_tries WHERE run_pk = ?",
				    "l", pk), 0);
	assert_int_equal(hr_sql_int(P, -1, "SELECT count(*) FROM xcom WHERE run_pk = ?",
				    "l", pk), 0);
	assert_false(hr_exists(P, "var/logs/chain/p1"));
	send_err("DELETE", "/api/v1/dags/chain/runs/p1?purge=true", NULL, 404, NULL);
	send_err("GET", "/api/v1/dags/chain/runs/p1", NULL, 404, NULL);
	passed = true;
}

/* --- ~/runs ------------------------------------------------------------------------ */

static void test_runs_of_every_dag(void **state)
{
	(void)state;
	run_to_end("unscheduled", "u1", "success");
	long long total = hr_sql_int(P, -1, "SELECT count(*) FROM runs", "");
	json_object *seen = json_object_new_object();
	long long listed = 0;
	for (int offset = 0; offset < total + 2; offset += 2) {
		ht_resp *r = ht_get(S, pathf("/api/v1/dags/~/runs?limit=2&offset=%d", offset));
		json_object *d = ht_ok(r, 200);
		json_object *meta = ht_at(r->json, "meta");
		assert_int_equal(ht_int(meta, "total"), total);
		for (size_t i = 0; i < json_object_array_length(d); i++) {
			json_object *run = json_object_array_get_idx(d, i);
			char key[600];
			snprintf(key, sizeof key, "%s/%s", ht_str(run, "dag_id"), ht_str(run, "run_id"));
			assert_false(json_object_object_get_ex(seen, key, NULL));
			json_object_object_add(seen, key, NULL);
			listed++;
		}
		ht_resp_free(r);
	}
	assert_int_equal(listed, total);
	assert_true(json_object_object_get_ex(seen, "unscheduled/u1", NULL));
	assert_true(json_object_object_get_ex(seen, "chain/c1", NULL));
	json_object_put(seen);
	/* ?dag_id= and the usual filters */
	ht_resp *r = ht_get(S, "/api/v1/dags/~/runs?dag_id=unscheduled,fails&state=success"
			       "&order_by=-queued_at");
	json_object *d = ht_ok(r, 200);
	assert_int_equal(ht_int(ht_at(r->json, "meta"), "total"),
			 hr_sql_int(P, -1, "SELECT count(*) FROM runs WHERE state = 'success'"
				    " AND dag_id IN ('unscheduled', 'fails')", ""));
	for (size_t i = 0; i < json_object_array_length(d); i++) {
		json_object *run = json_object_array_get_idx(d, i);
		assert_string_equal(ht_str(run, "state"), "success");
		assert_true(!strcmp(ht_str(run, "dag_id"), "unscheduled") ||
			    !strcmp(ht_str(run, "dag_id"), "fails"));
	}
	ht_resp_free(r);
	send_err("GET", "/api/v1/dags/~/runs?dag_id=a,,b", NULL, 400, "dag_id");
	send_err("GET", "/api/v1/dags/~/runs?dag_id=%2Fetc", NULL, 400, "dag_id");
	send_err("GET", "/api/v1/dags/~/runs?state=bogus", NULL, 400, "state");
	send_err("GET", "/api/v1/dags/~/runs?limit=0", NULL, 400, "limit");
	passed = true;
}

/* --- backfills ------------------------------------------------------------------- */

static void test_backfill(void **state)
{
	(void)state;
	hr_set_paused(P, "daily", false);
	json_object *d = send_ok("POST", "/api/v1/dags/daily/backfills",
				 "{\"from\": \"2026-01-01\", \"to\": \"2026-01-10T00:00:00Z\"}", 201);
	json_object *runs = ht_arr(d, "runs");
	assert_int_equal(json_object_array_length(runs), 10);
	assert_int_equal(ht_int(d, "max_active_runs"), 2);
	for (int i = 0; i < 10; i++) {
		json_object *run = json_object_array_get_idx(runs, i);
		char want[32];
		snprintf(want, sizeof want, "2026-01-%02dT00:00:00.000Z", i + 1);
		assert_string_equal(ht_str(run, "logical_date"), want);
		assert_string_equal(ht_str(run, "run_type"), "backfill");
		assert_string_equal(ht_str(run, "state"), "queued");
	}
	json_object_put(d);
	for (int i = 1; i <= 10; i++) {
		char id[64];
		snprintf(id, sizeof id, "backfill__2026-01-%02dT00.00.00.000Z", i);
		hr_wait_run_state(P, "daily", id, "success", W);
	}
	/* never more than max_active_runs running: at each start, count overlaps */
	assert_int_equal(hr_sql_int(P, -1,
		"SELECT max((SELECT count(*) FROM runs o WHERE o.dag_id = 'daily'"
		" AND o.started_at <= r.started_at AND o.ended_at > r.started_at))"
		" FROM runs r WHERE r.dag_id = 'daily'", ""), 2);
	/* again: every tick has its run (reprocess none) */
	d = send_ok("POST", "/api/v1/dags/daily/backfills",
		    "{\"from\": \"2026-01-01\", \"to\": \"2026-01-10\", \"max_active_runs\": 1}", 201);
	assert_int_equal(json_object_array_length(ht_arr(d, "runs")), 0);
	json_object_put(d);
	assert_int_equal(hr_sql_int(P, -1, "SELECT count(*) FROM runs WHERE dag_id = 'daily'", ""),
			 10);
	send_err("POST", "/api/v1/dags/daily/backfills",
		 "{\"from\": \"2026-01-10\", \"to\": \"2026-01-01\"}", 400, "from");
	send_err("POST", "/api/v1/dags/daily/backfills", "{\"from\": \"yesterday\", \"to\": "
		 "\"2026-01-01\"}", 400, "ISO");
	send_err("POST", "/api/v1/dags/daily/backfills", "{\"to\": \"2026-01-01\"}", 400, "from");
	send_err("POST", "/api/v1/dags/daily/backfills",
		 "{\"from\": \"2026-01-01\", \"to\": \"2026-01-02\", \"reprocess\": \"some\"}",
		 400, "reprocess");
	send_err("POST", "/api/v1/dags/daily/backfills",
		 "{\"from\": \"2026-01-01\", \"to\": \"2026-01-02\", \"max_active_runs\": 0}",
		 400, "max_active_runs");
	send_err("POST", "/api/v1/dags/unscheduled/backfills",
		 "{\"from\": \"2026-01-01\", \"to\": \"2026-01-02\"}", 400, "schedule");
	send_err("POST", "/api/v1/dags/nodag/backfills",
		 "{\"from\": \"2026-01-01\", \"to\": \"2026-01-02\"}", 404, NULL);
	passed = true;
}

/* The body's max_active_runs bounds the backfill instead of the DAG's. */
static void test_backfill_max_active_runs(void **state)
{
	(void)state;
	hr_set_paused(P, "hourly", false);
	json_object *d = send_ok("POST", "/api/v1/dags/hourly/backfills",
				 "{\"from\": \"2026-03-01T00:30:00Z\", \"to\": \"2026-03-01T04:00:00Z\","
				 " \"max_active_runs\": 1, \"conf\": {\"k\": 1}}", 201);
	json_object *runs = ht_arr(d, "runs");
	assert_int_equal(json_object_array_length(runs), 4); /* 01:00 .. 04:00 */
	assert_string_equal(ht_str(json_object_array_get_idx(runs, 0), "logical_date"),
			    "2026-03-01T01:00:00.000Z");
	assert_string_equal(ht_str(json_object_array_get_idx(runs, 3), "logical_date"),
			    "2026-03-01T04:00:00.000Z");
	assert_int_equal(ht_int(json_object_array_get_idx(runs, 0), "conf.k"), 1);
	assert_int_equal(ht_int(d, "max_active_runs"), 1);
	json_object_put(d);
	hr_wait_run_state(P, "hourly", "backfill__2026-03-01T04.00.00.000Z", "success", W);
	for (int h = 1; h <= 3; h++) {
		char id[64];
		snprintf(id, sizeof id, "backfill__2026-03-01T%02d.00.00.000Z", h);
		hr_wait_run_state(P, "hourly", id, "success", W);
	}
	assert_int_equal(hr_sql_int(P, -1,
		"SELECT max((SELECT count(*) FROM runs o WHERE o.dag_id = 'hourly'"
		" AND o.started_at <= r.started_at AND o.ended_at > r.started_at))"
		" FROM runs r WHERE r.dag_id = 'hourly'", ""), 1);
	/* in tick order */
	assert_int_equal(hr_sql_int(P, -1,
		"SELECT count(*) FROM runs a JOIN runs b ON a.dag_id = b.dag_id"
		" WHERE a.dag_id = 'hourly' AND a.logical_date < b.logical_date"
		" AND a.started_at > b.started_at", ""), 0);
	/* reprocess all: the finished runs run again */
	d = send_ok("POST", "/api/v1/dags/hourly/backfills",
		    "{\"from\": \"2026-03-01T01:00:00Z\", \"to\": \"2026-03-01T01:00:00Z\","
		    " \"reprocess\": \"all\"}", 201);
	assert_int_equal(json_object_array_length(ht_arr(d, "runs")), 0);
	assert_int_equal(json_object_array_length(ht_arr(d, "reprocessed")), 1);
	json_object_put(d);
	wait_ti("hourly", "backfill__2026-03-01T01.00.00.000Z", "t", "success", 2);
	hr_wait_run_state(P, "hourly", "backfill__2026-03-01T01.00.00.000Z", "success", W);
	passed = true;
}

/* --- source, graph ---------------------------------------------------------------- */

static int count_of(const char *s, const char *what)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

static void test_source(void **state)
{
	(void)state;
	ht_resp *r = ht_get(S, "/api/v1/dags/chain/source");
	assert_int_equal(r->status, 200);
	char *ct = ht_header(r, "Content-Type");
	assert_non_null(strstr(ct, "text/plain"));
	free(ct);
	assert_string_equal(r->body, DAG_CHAIN);
	ht_resp_free(r);
	const char *h[] = {"Accept: application/json", NULL};
	r = ht_req(S, "GET", "/api/v1/dags/chain/source", h, NULL, 0);
	json_object *d = ht_ok(r, 200);
	assert_string_equal(ht_str(d, "content"), DAG_CHAIN);
	assert_string_equal(ht_str(d, "file"), "dags/chain.yml");
	ht_resp_free(r);
	send_err("GET", "/api/v1/dags/nodag/source", NULL, 404, NULL);
	passed = true;
}

static void test_graph(void **state)
{
	(void)state;
	ht_resp *r = ht_get(S, "/api/v1/dags/chain/graph");
	assert_int_equal(r->status, 200);
	char *ct = ht_header(r, "Content-Type");
	assert_non_null(strstr(ct, "image/svg+xml"));
	free(ct);
	/* well-formed: one svg element, balanced groups, one node per task */
	assert_non_null(strstr(r->body, "<svg"));
	assert_int_equal(count_of(r->body, "<svg"), 1);
	assert_int_equal(count_of(r->body, "</svg>"), 1);
	assert_int_equal(count_of(r->body, "<g "), count_of(r->body, "</g>"));
	assert_int_equal(count_of(r->body, "class=\"node"), 3);
	assert_int_equal(count_of(r->body, "id=\"task-a\""), 1);
	assert_int_equal(count_of(r->body, "id=\"task-b\""), 1);
	assert_int_equal(count_of(r->body, "id=\"task-c\""), 1);
	assert_int_equal(count_of(r->body, "class=\"edge"), 2);
	ht_resp_free(r);
	/* coloured by a run's states */
	r = ht_get(S, "/api/v1/dags/fails/graph?run_id=m1");
	assert_int_equal(r->status, 200);
	assert_int_equal(count_of(r->body, "state-success"), 2);
	ht_resp_free(r);
	r = ht_get(S, "/api/v1/dags/chain/graph?format=dot");
	assert_int_equal(r->status, 200);
	assert_non_null(strstr(r->body, "digraph"));
	assert_non_null(strstr(r->body, "\"a\" -> \"b\""));
	ht_resp_free(r);
	send_err("GET", "/api/v1/dags/chain/graph?format=png", NULL, 400, "format");
	send_err("GET", "/api/v1/dags/chain/graph?run_id=ghost", NULL, 404, NULL);
	send_err("GET", "/api/v1/dags/nodag/graph", NULL, 404, NULL);
	passed = true;
}

/* --- me ----------------------------------------------------------------------------- */

static void expect_me(ht_server *s, const char *user, const char *pw, const char *role,
		      bool rd, bool op, bool ad)
{
	s->user = user;
	s->password = pw;
	ht_resp *r = ht_get(s, "/api/v1/me");
	json_object *d = ht_ok(r, 200);
	if (user)
		assert_string_equal(ht_str(d, "user"), user);
	else
		assert_true(json_object_is_type(ht_at(d, "user"), json_type_null));
	if (role)
		assert_string_equal(ht_str(d, "role"), role);
	else
		assert_true(json_object_is_type(ht_at(d, "role"), json_type_null));
	assert_int_equal(ht_bool(d, "can.read"), rd);
	assert_int_equal(ht_bool(d, "can.operate"), op);
	assert_int_equal(ht_bool(d, "can.admin"), ad);
	ht_resp_free(r);
}

static void test_me(void **state)
{
	(void)state;
	expect_me(S, NULL, NULL, NULL, true, true, true);  /* no roles, no user */
	hr_project *q = hr_project_new(2);
	hr_settings(q, "roles: {alice: read, bob: operate, carol: admin}");
	hr_dag(q, "d", DAG_UNSCHEDULED);
	ht_opts o = {.users = "alice:apw\nbob:bpw\ncarol:cpw\ndave:dpw\n"};
	ht_server *s = ht_start(q->dir, &o);
	expect_me(s, "alice", "apw", "read", true, false, false);
	expect_me(s, "bob", "bpw", "operate", true, true, false);
	expect_me(s, "carol", "cpw", "admin", true, true, true);
	expect_me(s, "dave", "dpw", NULL, false, false, false);
	/* a reader may not clear or mark */
	s->user = "alice";
	s->password = "apw";
	ht_resp *r = ht_send(s, "POST", "/api/v1/dags/d/runs/x/clear", "{}");
	ht_err(r, 403);
	ht_resp_free(r);
	ht_stop(s);
	hr_pass(q);
	hr_project_free(q);
	passed = true;
}

/* --- catchup: the runner alone ------------------------------------------------------- */

static void test_catchup_once(void **state)
{
	(void)state;
	hr_project *q = hr_project_new(2);
	time_t now = time(NULL), start = now - 3 * 86400;
	struct tm tm;
	char yaml[512], date[16];
	gmtime_r(&start, &tm);
	strftime(date, sizeof date, "%Y-%m-%d", &tm);
	snprintf(yaml, sizeof yaml,
		 "schedule: \"0 0 * * *\"\n"
		 "start_date: \"%s\"\n"
		 "catchup: true\n"
		 "max_active_runs: 4\n"
		 "tasks:\n"
		 "  - id: t\n"
		 "    command: \"true\"\n", date);
	hr_dag(q, "caught", yaml);
	const char *const once[] = {"--once", NULL};
	int status = 0;
	pid_t pid = hr_runner_start(q, once);
	assert_true(hr_runner_wait(q, pid, W, &status));
	/* ticks start_date, +1 day, +2 days, today 00:00: all <= now */
	long long n = hr_sql_int(q, -1, "SELECT count(*) FROM runs WHERE dag_id = 'caught'", "");
	assert_int_equal(n, 4);
	assert_int_equal(hr_sql_int(q, -1, "SELECT count(*) FROM runs WHERE dag_id = 'caught'"
				    " AND run_type = 'backfill' AND state = 'success'", ""), 4);
	assert_int_equal(hr_sql_int(q, -1, "SELECT min(logical_date) FROM runs", ""),
			 (long long)(start - start % 86400) * 1000);
	pid = hr_runner_start(q, once);
	assert_true(hr_runner_wait(q, pid, W, &status));
	assert_int_equal(hr_sql_int(q, -1, "SELECT count(*) FROM runs", ""), 4);
	hr_pass(q);
	hr_project_free(q);
	passed = true;
}

/* A DAG file with a bad start_date is an import error. */
static void test_start_date_checked(void **state)
{
	(void)state;
	hr_dag(P, "bad_start", "start_date: \"soon\"\ntasks:\n  - id: t\n    command: \"true\"\n");
	ht_resp *r = ht_get(S, "/api/v1/import-errors");
	ht_ok(r, 200);
	assert_non_null(strstr(r->body, "start_date"));
	ht_resp_free(r);
	passed = true;
}

#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_clear_downstream),
		T(test_clear_only_failed),
		T(test_clear_dry_run_changes_nothing),
		T(test_clear_bad_input),
		T(test_mark_success_runs_downstream),
		T(test_mark_failed_fails_downstream),
		T(test_mark_bad_input),
		T(test_patch_run_note_and_state),
		T(test_purge),
		T(test_runs_of_every_dag),
		T(test_backfill),
		T(test_backfill_max_active_runs),
		T(test_source),
		T(test_graph),
		T(test_me),
		T(test_catchup_once),
		T(test_start_date_checked),
	};
	return cmocka_run_group_tests_name("ops", tests, group_setup, fx_group_teardown);
}
