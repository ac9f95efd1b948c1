/*
 * test_api.c - every /api/v1 endpoint through a real lighttpd, with
 * pipewright.fcgi behind it and a real pipewright-runner: the success and
 * error paths of DESIGN.md section 5 (and the REMOTE_USER and roles of
 * section 8).
 *
 * One lighttpd (mounted at "/" and "/pipewright") and one runner serve
 * the whole file; the tests run in order (health without a runner comes
 * first). Tasks are quick shell commands; waits poll every 20 ms up to a
 * deadline; no timing is asserted beyond ordering.
 */
#include "fixture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define W HR_WAIT_MS
#define ORIGIN "https://ui.example"


/* --- fixture ---------------------------------------------------------------- */

static const char DAG_QUICK[] =
	"description: quick tasks\n"
	"schedule: \"0 3 * * *\"\n"
	"tags: [alpha, shared]\n"
	"params: {n: 1, nested: {a: 1}}\n"
	"tasks:\n"
	"  - id: a\n"
	"    command: \"echo 42\"\n"
	"  - id: b\n"
	"    upstream: [a]\n"
	"    command: [\"sh\", \"-c\", \"printf '{\\\"num\\\": 7, \\\"flag\\\": true, "
	"\\\"big\\\": 12345678901234567890, \\\"neg\\\": -9223372036854775808, "
	"\\\"f\\\": 1.5e300, "
	"\\\"obj\\\": {\\\"k\\\": [1, 2]}, \\\"s\\\": \\\"str\\\"}' > \\\"$PIPEWRIGHT_XCOM\\\"\"]\n"
	"  - id: c\n"
	"    command: \"true\"\n"
	"    outputs: [ds1]\n"
	"  - id: d\n"
	"    command: \"true\"\n"
	"    inputs: [ds1]\n";

static const char DAG_FAILING[] =
	"tags: [beta]\n"
	"tasks:\n"
	"  - id: f\n"
	"    command: \"if [ -e var/failing.marker ]; then exit 0; fi; "
	"touch var/failing.marker; exit 1\"\n";

static const char DAG_ALWAYS_FAILS[] =
	"tasks:\n"
	"  - id: f\n"
	"    command: \"false\"\n";

static const char DAG_FLAKY[] =
	"tasks:\n"
	"  - id: t\n"
	"    retries: 1\n"
	"    retry_delay: 0\n"
	"    command: \"echo try $PIPEWRIGHT_TRY_NUMBER; "
	"if [ -e var/flaky.marker ]; then exit 0; fi; touch var/flaky.marker; exit 3\"\n";

static const char DAG_SLEEPER[] =
	"tasks:\n"
	"  - id: nap\n"
	"    command: [\"sleep\", \"30\"]\n"
	"  - id: after\n"
	"    upstream: [nap]\n"
	"    command: \"true\"\n";

static const char DAG_PAUSABLE[] =
	"tasks:\n"
	"  - id: x\n"
	"    command: \"true\"\n";

static const char DAG_PAUSED[] =
	"paused: true\n"
	"tags: [beta]\n"
	"tasks:\n"
	"  - id: x\n"
	"    command: \"true\"\n";

/* An unknown key on line 4: an import error. */
static const char DAG_BROKEN[] =
	"tasks:\n"
	"  - id: x\n"
	"    command: \"true\"\n"
	"    bogus_key: 1\n";

#define N_DAGS 7 /* the good ones above */

static int group_setup(void **state)
{
	(void)state;
	P = hr_project_new(4);
	hr_settings(P, "max_parallel_tasks: 4, cors_origins: [\"" ORIGIN "\"]");
	hr_catalog(P, "ds1: {type: text.TextDataset, filepath: var/ds1.txt}\n");
	hr_dag(P, "quick", DAG_QUICK);
	hr_dag(P, "failing", DAG_FAILING);
	hr_dag(P, "always_fails", DAG_ALWAYS_FAILS);
	hr_dag(P, "flaky", DAG_FLAKY);
	hr_dag(P, "sleeper", DAG_SLEEPER);
	hr_dag(P, "pausable", DAG_PAUSABLE);
	hr_dag(P, "paused_dag", DAG_PAUSED);
	hr_dag(P, "broken", DAG_BROKEN);
	fx_start(&(ht_opts){.prefix = "/pipewright"}, false);
	return 0;
}


/* Starts the runner once; tests that need runs to progress call it. */
static void need_runner(void)
{
	if (P->n_runners == 0)
		hr_runner_start(P, NULL);
}

/* --- helpers ---------------------------------------------------------------- */


/* GET path; expects 200 and returns a copy of data (caller puts it). */
static json_object *get_data(const char *path)
{
	ht_resp *r = ht_get(S, path);
	json_object *d = json_object_get(ht_ok(r, 200));
	ht_resp_free(r);
	return d;
}

/* GET path; expects status with the error envelope. */
static void get_err(const char *path, long status)
{
	ht_resp *r = ht_get(S, path);
	ht_err(r, status);
	ht_resp_free(r);
}

/* method path body; expects status with the error envelope. */
static void send_err(const char *method, const char *path, const char *body,
		     long status)
{
	ht_resp *r = ht_send(S, method, path, body);
	ht_err(r, status);
	ht_resp_free(r);
}

/* POST a trigger; expects 201; returns the run id (malloc'd). */
static char *trigger(const char *dag, const char *body)
{
	char path[512];
	snprintf(path, sizeof path, "/api/v1/dags/%s/runs", dag);
	ht_resp *r = ht_send(S, "POST", path, body);
	json_object *d = ht_ok(r, 201);
	if (strcmp(ht_str(d, "dag_id"), dag) != 0)
		ht_fail(r, "dag_id of the new run");
	char *id = strdup(ht_str(d, "run_id"));
	assert_non_null(id);
	ht_resp_free(r);
	return id;
}

/* Polls the run until it is in state; returns its data (caller puts it). */
static json_object *wait_run(const char *dag, const char *run, const char *state)
{
	char path[512];
	snprintf(path, sizeof path, "/api/v1/dags/%s/runs/%s", dag, run);
	long long end = ht_now_ms() + W;
	for (;;) {
		ht_resp *r = ht_get(S, path);
		json_object *d = ht_ok(r, 200);
		const char *st = ht_str(d, "state");
		if (!strcmp(st, state)) {
			json_object *out = json_object_get(d);
			ht_resp_free(r);
			return out;
		}
		bool final = !strcmp(st, "success") || !strcmp(st, "failed") ||
			     !strcmp(st, "cancelled");
		if (final || ht_now_ms() > end) {
			fail_msg("run %s/%s is %s, expected %s: %s", dag, run, st, state,
				 r->body);
		}
		ht_resp_free(r);
		hr_sleep_ms(20);
	}
}

/* Polls a task instance until it is in state. */
static void wait_task(const char *dag, const char *run, const char *task,
		      const char *state)
{
	char path[512];
	snprintf(path, sizeof path, "/api/v1/dags/%s/runs/%s/tasks/%s", dag, run, task);
	long long end = ht_now_ms() + W;
	for (;;) {
		ht_resp *r = ht_get(S, path);
		if (r->status == 200) {
			json_object *d = ht_ok(r, 200);
			if (!strcmp(ht_str(d, "state"), state)) {
				ht_resp_free(r);
				return;
			}
		} else if (r->status != 404) {
			ht_fail(r, "task instance");
		}
		if (ht_now_ms() > end)
			ht_fail(r, "timed out waiting for the task's state");
		ht_resp_free(r);
		hr_sleep_ms(20);
	}
}

static void expect_str(json_object *o, const char *path, const char *want)
{
	const char *got = ht_str(o, path);
	if (strcmp(got, want) != 0)
		fail_msg("%s is \"%s\", expected \"%s\" in %.2000s", path, got, want,
			 json_object_to_json_string(o));
}

static void expect_int(json_object *o, const char *path, long long want)
{
	long long got = ht_int(o, path);
	if (got != want)
		fail_msg("%s is %lld, expected %lld in %.2000s", path, got, want,
			 json_object_to_json_string(o));
}

static void expect_meta(ht_resp *r, long long total, long long limit, long long offset)
{
	json_object *m = ht_at(r->json, "meta");
	if (ht_int(m, "total") != total || ht_int(m, "limit") != limit ||
	    ht_int(m, "offset") != offset) {
		char what[128];
		snprintf(what, sizeof what, "meta is not total %lld limit %lld offset %lld",
			 total, limit, offset);
		ht_fail(r, what);
	}
}

/* The raw body holds {"key":key,"value":value} with value's exact text. */
static void expect_xcom_text(ht_resp *r, const char *key, const char *value)
{
	char want[256];
	snprintf(want, sizeof want, "{\"key\":\"%s\",\"value\":%s}", key, value);
	if (!strstr(r->body, want))
		ht_fail(r, want);
}

/* The ISO-8601 "YYYY-MM-DDTHH:MM:SS...Z" shape. */
static bool is_iso(const char *s)
{
	int y, mo, d, h, mi, se;
	return s && sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &se) == 6 &&
	       s[strlen(s) - 1] == 'Z';
}

/* --- health (first: no runner has ever run on this database) ------------- */

static void test_health_without_runner(void **state)
{
	(void)state;
	ht_resp *r = ht_get(S, "/api/v1/health");
	json_object *d = ht_ok(r, 200);
	expect_str(d, "status", "degraded");
	expect_str(d, "database.status", "ok");
	expect_str(d, "runner.status", "absent");
	if (ht_at(d, "runner.last_heartbeat") != NULL)
		ht_fail(r, "runner.last_heartbeat is not null without a runner");
	ht_num(d, "uptime_s");
	ht_resp_free(r);

	/* The API keeps working without a runner: a trigger queues. */
	char *id = trigger("pausable", "{\"run_id\": \"early\"}");
	json_object *run = get_data("/api/v1/dags/pausable/runs/early");
	expect_str(run, "state", "queued");
	json_object_put(run);
	free(id);
	passed = true;
}

static void test_health_with_runner(void **state)
{
	(void)state;
	need_runner();
	/* The queued run of the previous test starts now. */
	json_object_put(wait_run("pausable", "early", "success"));
	ht_resp *r = ht_get(S, "/api/v1/health");
	json_object *d = ht_ok(r, 200);
	expect_str(d, "status", "healthy");
	expect_str(d, "runner.status", "running");
	if (!is_iso(ht_str(d, "runner.last_heartbeat")))
		ht_fail(r, "runner.last_heartbeat is not ISO-8601");
	if (ht_int(d, "runner.pid") != P->runners[0].pid)
		ht_fail(r, "runner.pid is not the runner's pid");
	ht_resp_free(r);
	passed = true;
}

static void test_version(void **state)
{
	(void)state;
	json_object *d = get_data("/api/v1/version");
	expect_str(d, "api_version", "v1");
	if (!*ht_str(d, "version"))
		fail_msg("empty version");
	json_object_put(d);
	/* The same answer under the /pipewright mount (SCRIPT_NAME prefix). */
	d = get_data("/pipewright/api/v1/version");
	expect_str(d, "api_version", "v1");
	json_object_put(d);
	d = get_data("/pipewright/api/v1/dags/quick");
	expect_str(d, "dag_id", "quick");
	json_object_put(d);
	get_err("/pipewright/api/v1/nothing", 404);
	passed = true;
}

/* --- DAGs ------------------------------------------------------------------- */

static void expect_dag_ids(const char *path, const char *want)
{
	ht_resp *r = ht_get(S, path);
	json_object *d = ht_ok(r, 200);
	if (!json_object_is_type(d, json_type_array))
		ht_fail(r, "data is not an array");
	char got[1024] = "";
	for (size_t i = 0; i < json_object_array_length(d); i++) {
		if (i)
			strcat(got, ",");
		strncat(got, ht_str(json_object_array_get_idx(d, i), "dag_id"),
			sizeof got - strlen(got) - 80);
	}
	if (strcmp(got, want) != 0) {
		char what[1200];
		snprintf(what, sizeof what, "dag ids are [%s], expected [%s]", got, want);
		ht_fail(r, what);
	}
	ht_resp_free(r);
}

static void test_dags_list(void **state)
{
	(void)state;
	/* Sorted by id; the broken file is left out. */
	expect_dag_ids("/api/v1/dags",
		       "always_fails,failing,flaky,pausable,paused_dag,quick,sleeper");
	ht_resp *r = ht_get(S, "/api/v1/dags");
	json_object *d = ht_ok(r, 200);
	expect_meta(r, N_DAGS, 100, 0);
	json_object *q = ht_find(d, "dag_id", "quick");
	if (!q || ht_bool(q, "is_paused") || !ht_arr_has_str(ht_arr(q, "tags"), "alpha"))
		ht_fail(r, "quick: is_paused false, tags [alpha, shared]");
	if (!ht_bool(ht_find(d, "dag_id", "paused_dag"), "is_paused"))
		ht_fail(r, "paused_dag is paused");
	ht_resp_free(r);

	expect_dag_ids("/api/v1/dags?tags=alpha", "quick");
	expect_dag_ids("/api/v1/dags?tags=beta", "failing,paused_dag");
	expect_dag_ids("/api/v1/dags?tags=alpha,beta", "failing,paused_dag,quick");
	expect_dag_ids("/api/v1/dags?tags=nothing", "");
	expect_dag_ids("/api/v1/dags?paused=true", "paused_dag");
	expect_dag_ids("/api/v1/dags?paused=false",
		       "always_fails,failing,flaky,pausable,quick,sleeper");
	expect_dag_ids("/api/v1/dags?paused=true&tags=beta", "paused_dag");

	/* Paging. */
	r = ht_get(S, "/api/v1/dags?limit=2&offset=1");
	d = ht_ok(r, 200);
	expect_meta(r, N_DAGS, 2, 1);
	if (json_object_array_length(d) != 2 ||
	    strcmp(ht_str(d, "0.dag_id"), "failing") != 0)
		ht_fail(r, "page 2 of size 2 starts at failing");
	ht_resp_free(r);
	r = ht_get(S, "/api/v1/dags?limit=1000&offset=6");
	d = ht_ok(r, 200);
	expect_meta(r, N_DAGS, 1000, 6);
	if (json_object_array_length(d) != 1)
		ht_fail(r, "one DAG after offset 6");
	ht_resp_free(r);
	r = ht_get(S, "/api/v1/dags?offset=100");
	d = ht_ok(r, 200);
	expect_meta(r, N_DAGS, 100, 100);
	if (json_object_array_length(d) != 0)
		ht_fail(r, "empty page past the end");
	ht_resp_free(r);

	get_err("/api/v1/dags?limit=0", 400);
	get_err("/api/v1/dags?limit=1001", 400);
	get_err("/api/v1/dags?limit=-1", 400);
	get_err("/api/v1/dags?limit=abc", 400);
	get_err("/api/v1/dags?offset=-1", 400);
	get_err("/api/v1/dags?paused=maybe", 400);
	passed = true;
}

static json_object *task_of(json_object *dag, const char *id)
{
	json_object *t = ht_find(ht_arr(dag, "tasks"), "task_id", id);
	if (!t)
		fail_msg("no task %s in %.2000s", id, json_object_to_json_string(dag));
	return t;
}

static void expect_list(json_object *task, const char *key, const char *want)
{
	char *got = ht_arr_join(ht_arr(task, key));
	if (strcmp(got, want) != 0)
		fail_msg("%s of %s is [%s], expected [%s]", key, ht_str(task, "task_id"),
			 got, want);
	free(got);
}

static void test_dag_detail(void **state)
{
	(void)state;
	json_object *d = get_data("/api/v1/dags/quick");
	expect_str(d, "dag_id", "quick");
	expect_str(d, "schedule", "0 3 * * *");
	if (!is_iso(ht_str(d, "next_run_at")))
		fail_msg("next_run_at is not ISO-8601: %s", json_object_to_json_string(d));
	if (ht_bool(d, "is_paused"))
		fail_msg("quick is not paused");
	expect_int(d, "params.n", 1);
	expect_int(d, "params.nested.a", 1);
	if (json_object_array_length(ht_arr(d, "tasks")) != 4)
		fail_msg("quick has 4 tasks: %s", json_object_to_json_string(d));
	expect_list(task_of(d, "a"), "upstream", "");
	expect_list(task_of(d, "a"), "downstream", "b");
	expect_list(task_of(d, "b"), "upstream", "a");
	/* The dataset edge c -> d (ds1) counts like an explicit one. */
	expect_list(task_of(d, "c"), "downstream", "d");
	expect_list(task_of(d, "d"), "upstream", "c");
	json_object_put(d);

	d = get_data("/api/v1/dags/paused_dag");
	if (!ht_bool(d, "is_paused") || ht_at(d, "schedule") != NULL)
		fail_msg("paused_dag: is_paused true, schedule null: %s",
			 json_object_to_json_string(d));
	if (ht_at(d, "next_run_at") != NULL)
		fail_msg("no next_run_at without a schedule");
	json_object_put(d);

	get_err("/api/v1/dags/nope", 404);
	get_err("/api/v1/dags/broken", 404);
	passed = true;
}

static void test_pause(void **state)
{
	(void)state;
	need_runner();
	ht_resp *r = ht_send(S, "PATCH", "/api/v1/dags/pausable", "{\"is_paused\": true}");
	json_object *d = ht_ok(r, 200);
	if (!ht_bool(d, "is_paused"))
		ht_fail(r, "is_paused is true after the PATCH");
	/* The answer is the DAG's detail, as GET's (docs/openapi.yaml: DagDetail). */
	if (!ht_at(d, "params") || !ht_arr(d, "tasks") || !ht_at(d, "tasks.0.task_id"))
		ht_fail(r, "PATCH answers the detail: params and tasks");
	ht_resp_free(r);
	d = get_data("/api/v1/dags/pausable");
	if (!ht_bool(d, "is_paused"))
		fail_msg("GET after PATCH: is_paused");
	json_object_put(d);

	/* A paused DAG accepts triggers; its runs stay queued. */
	free(trigger("pausable", "{\"run_id\": \"while-paused\"}"));
	hr_sleep_ms(1500);
	d = get_data("/api/v1/dags/pausable/runs/while-paused");
	expect_str(d, "state", "queued");
	json_object_put(d);

	r = ht_send(S, "PATCH", "/api/v1/dags/pausable", "{\"is_paused\": false}");
	if (ht_bool(ht_ok(r, 200), "is_paused"))
		ht_fail(r, "is_paused is false after the PATCH");
	ht_resp_free(r);
	json_object_put(wait_run("pausable", "while-paused", "success"));

	send_err("PATCH", "/api/v1/dags/pausable", "{\"is_paused\": \"yes\"}", 400);
	send_err("PATCH", "/api/v1/dags/pausable", "{\"is_paused\": true, \"x\": 1}", 400);
	send_err("PATCH", "/api/v1/dags/pausable", "{}", 400);
	send_err("PATCH", "/api/v1/dags/pausable", "[true]", 400);
	send_err("PATCH", "/api/v1/dags/pausable", "{\"is_paused\": ", 400);
	send_err("PATCH", "/api/v1/dags/nope", "{\"is_paused\": true}", 404);
	passed = true;
}

/* --- runs -------------------------------------------------------------------- */

static void expect_run_fields(json_object *run)
{
	static const char *const keys[] = {
		"run_id", "dag_id", "state", "run_type", "conf", "queued_at",
		"started_at", "ended_at", "duration_ms", "triggered_by",
	};
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		if (!ht_has(run, keys[i]))
			fail_msg("run has no %s: %s", keys[i], json_object_to_json_string(run));
}

static void expect_ti_fields(json_object *ti)
{
	static const char *const keys[] = {
		"task_id", "state", "try_number", "max_tries", "started_at",
		"ended_at", "duration_ms", "exit_code", "pool",
	};
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		if (!ht_has(ti, keys[i]))
			fail_msg("task instance has no %s: %s", keys[i],
				 json_object_to_json_string(ti));
}

static void test_trigger_and_run(void **state)
{
	(void)state;
	need_runner();
	ht_resp *r = ht_send(S, "POST", "/api/v1/dags/quick/runs",
			     "{\"run_id\": \"r1\", \"conf\": {\"n\": 2}}");
	json_object *d = ht_ok(r, 201);
	expect_run_fields(d);
	expect_str(d, "run_id", "r1");
	expect_str(d, "dag_id", "quick");
	expect_str(d, "run_type", "manual");
	expect_int(d, "conf.n", 2);
	if (!is_iso(ht_str(d, "queued_at")))
		ht_fail(r, "queued_at is not ISO-8601");
	if (ht_at(d, "triggered_by") != NULL)
		ht_fail(r, "triggered_by is null without REMOTE_USER");
	ht_resp_free(r);

	d = wait_run("quick", "r1", "success");
	expect_run_fields(d);
	if (!is_iso(ht_str(d, "started_at")) || !is_iso(ht_str(d, "ended_at")) ||
	    ht_int(d, "duration_ms") < 0)
		fail_msg("finished run times: %s", json_object_to_json_string(d));
	json_object *tis = ht_arr(d, "task_instances");
	if (json_object_array_length(tis) != 4)
		fail_msg("r1 has 4 task instances: %s", json_object_to_json_string(d));
	for (size_t i = 0; i < 4; i++) {
		json_object *ti = json_object_array_get_idx(tis, i);
		expect_ti_fields(ti);
		expect_str(ti, "state", "success");
		expect_int(ti, "try_number", 1);
		expect_int(ti, "max_tries", 1);
		expect_int(ti, "exit_code", 0);
		expect_str(ti, "pool", "default_pool");
	}
	json_object_put(d);

	/* The same run id again: 409. */
	send_err("POST", "/api/v1/dags/quick/runs", "{\"run_id\": \"r1\"}", 409);
	/* A generated id: 2024-01-01T00.00.00.000Z. */
	char *gen = trigger("quick", "{}");
	int y, mo, dd, h, mi, se, ms;
	char z = 0;
	if (sscanf(gen, "%4d-%2d-%2dT%2d.%2d.%2d.%3d%c", &y, &mo, &dd, &h, &mi, &se,
		   &ms, &z) != 8 || z != 'Z')
		fail_msg("generated run id %s is not like 2024-01-01T00.00.00.000Z", gen);
	json_object_put(wait_run("quick", gen, "success"));
	free(gen);
	/* Bad bodies fail (no body at all is {}: test_kedro's fresh DAG). */
	send_err("POST", "/api/v1/dags/quick/runs", "{\"run_id\": 5}", 400);
	send_err("POST", "/api/v1/dags/quick/runs", "{\"bogus\": 1}", 400);
	send_err("POST", "/api/v1/dags/quick/runs", "{\"conf\": [1]}", 400);
	send_err("POST", "/api/v1/dags/quick/runs", "{\"run_id\": \"bad id!\"}", 400);
	send_err("POST", "/api/v1/dags/quick/runs", "{\"task_ids\": \"a\"}", 400);
	send_err("POST", "/api/v1/dags/nope/runs", "{}", 404);
	get_err("/api/v1/dags/quick/runs/nope", 404);
	get_err("/api/v1/dags/nope/runs/r1", 404);
	passed = true;
}

static void test_task_instances(void **state)
{
	(void)state;
	need_runner();
	json_object *d = get_data("/api/v1/dags/quick/runs/r1");
	json_object_put(d); /* exists (test_trigger_and_run) */

	ht_resp *r = ht_get(S, "/api/v1/dags/quick/runs/r1/tasks");
	d = ht_ok(r, 200);
	if (!json_object_is_type(d, json_type_array) || json_object_array_length(d) != 4)
		ht_fail(r, "4 task instances");
	for (const char *t = "abcd"; *t; t++) {
		char id[2] = {*t, 0};
		if (!ht_find(d, "task_id", id))
			ht_fail(r, "a task instance is missing");
	}
	ht_resp_free(r);

	d = get_data("/api/v1/dags/quick/runs/r1/tasks/a");
	expect_ti_fields(d);
	expect_str(d, "task_id", "a");
	json_object *tries = ht_arr(d, "tries");
	if (json_object_array_length(tries) != 1)
		fail_msg("a has one try: %s", json_object_to_json_string(d));
	expect_int(tries, "0.try_number", 1);
	expect_str(tries, "0.state", "success");
	expect_int(tries, "0.exit_code", 0);
	if (!is_iso(ht_str(tries, "0.started_at")) || !is_iso(ht_str(tries, "0.ended_at")))
		fail_msg("try times: %s", json_object_to_json_string(d));
	json_object_put(d);

	/* XCom: return_value is the last stdout line, as a string. */
	d = get_data("/api/v1/dags/quick/runs/r1/tasks/a/xcom");
	json_object *rv = ht_find(d, "key", "return_value");
	if (!rv)
		fail_msg("no return_value XCom: %s", json_object_to_json_string(d));
	expect_str(rv, "value", "42");
	json_object_put(d);
	/* The XCom file's keys keep their JSON types. */
	d = get_data("/api/v1/dags/quick/runs/r1/tasks/b/xcom");
	json_object *x = ht_find(d, "key", "num");
	if (!x || ht_int(x, "value") != 7)
		fail_msg("num is the integer 7: %s", json_object_to_json_string(d));
	x = ht_find(d, "key", "flag");
	if (!x || !ht_bool(x, "value"))
		fail_msg("flag is true: %s", json_object_to_json_string(d));
	x = ht_find(d, "key", "obj");
	if (!x || ht_int(x, "value.k.1") != 2)
		fail_msg("obj is {k: [1, 2]}: %s", json_object_to_json_string(d));
	x = ht_find(d, "key", "s");
	if (!x || strcmp(ht_str(x, "value"), "str") != 0)
		fail_msg("s is \"str\": %s", json_object_to_json_string(d));
	json_object_put(d);
	/* Numbers come back as the task wrote them, digit for digit. */
	r = ht_get(S, "/api/v1/dags/quick/runs/r1/tasks/b/xcom");
	ht_ok(r, 200);
	expect_xcom_text(r, "big", "12345678901234567890");
	expect_xcom_text(r, "neg", "-9223372036854775808");
	expect_xcom_text(r, "f", "1.5e300");
	ht_resp_free(r);

	/* Logs: text/plain, the latest try or ?try_number. */
	r = ht_get(S, "/api/v1/dags/quick/runs/r1/tasks/a/logs");
	char *ct = ht_header(r, "Content-Type");
	if (r->status != 200 || !ct || strncmp(ct, "text/plain", 10) != 0 ||
	    !strstr(r->body, "42"))
		ht_fail(r, "log of a: text/plain with 42");
	free(ct);
	ht_resp_free(r);
	r = ht_get(S, "/api/v1/dags/quick/runs/r1/tasks/a/logs?try_number=1");
	if (r->status != 200 || !strstr(r->body, "42"))
		ht_fail(r, "log of try 1");
	ht_resp_free(r);
	get_err("/api/v1/dags/quick/runs/r1/tasks/a/logs?try_number=7", 404);
	get_err("/api/v1/dags/quick/runs/r1/tasks/a/logs?try_number=abc", 400);
	get_err("/api/v1/dags/quick/runs/r1/tasks/a/logs?try_number=0", 400);
	get_err("/api/v1/dags/quick/runs/r1/tasks/zz", 404);
	get_err("/api/v1/dags/quick/runs/r1/tasks/zz/xcom", 404);
	get_err("/api/v1/dags/quick/runs/r1/tasks/zz/logs", 404);
	get_err("/api/v1/dags/quick/runs/nope/tasks", 404);
	passed = true;
}

/*
 * A task writes its own log file, so it can replace it with a symlink (to
 * /etc/shadow, say) or put it behind a symlinked directory: the logs
 * endpoint serves neither (403), only regular files inside the logs folder.
 */
static void test_log_symlink(void **state)
{
	(void)state;
	static const char path[] = "/api/v1/dags/quick/runs/r1/tasks/a/logs";
	char *rel = hr_sql_text(P,
		"SELECT t.log_path FROM task_tries t JOIN runs r ON r.id = t.run_pk"
		" WHERE r.dag_id = 'quick' AND r.run_id = 'r1' AND t.task_id = 'a'"
		"   AND t.try_number = 1", "");
	char *log = hr_path(P, rel), *keep = pw_asprintf("%s.keep", log);
	char *secret = hr_path(P, "secret.txt"), *outside = hr_path(P, "outside");
	assert_non_null(keep);
	th_write(P->dir, "secret.txt", "TOP-SECRET\n");
	assert_int_equal(rename(log, keep), 0);
	assert_int_equal(symlink(secret, log), 0);
	ht_resp *r = ht_get(S, path);
	ht_err(r, 403);
	if (strstr(r->body, "TOP-SECRET"))
		ht_fail(r, "a symlinked log is not served");
	ht_resp_free(r);
	/* a symlink inside the logs folder is refused all the same */
	assert_int_equal(unlink(log), 0);
	assert_int_equal(symlink(keep, log), 0);
	get_err(path, 403);
	/* a regular file reached through a symlinked directory lies outside */
	char *dir = strdup(log), *slash = strrchr(dir, '/');
	*slash = '\0';
	char *moved = pw_asprintf("%s.moved", dir);
	assert_int_equal(unlink(log), 0);
	assert_int_equal(mkdir(outside, 0700), 0);
	char *planted = pw_asprintf("%s/%s", outside, slash + 1);
	th_write(outside, slash + 1, "TOP-SECRET\n");
	assert_int_equal(rename(dir, moved), 0);
	assert_int_equal(symlink(outside, dir), 0);
	get_err(path, 403);
	/* put back: the log serves again */
	assert_int_equal(unlink(dir), 0);
	assert_int_equal(rename(moved, dir), 0);
	assert_int_equal(rename(keep, log), 0);
	r = ht_get(S, path);
	if (r->status != 200 || !strstr(r->body, "42"))
		ht_fail(r, "the log of a serves again");
	ht_resp_free(r);
	free(planted);
	free(moved);
	free(dir);
	free(outside);
	free(secret);
	free(keep);
	free(log);
	free(rel);
	passed = true;
}

/* Fails unless relpath of the project has exactly the permission bits want. */
static void expect_mode(const char *relpath, mode_t want)
{
	char *path = hr_path(P, relpath);
	struct stat sb;
	if (stat(path, &sb) != 0)
		fail_msg("%s: %s", path, strerror(errno));
	if ((sb.st_mode & 07777) != want)
		fail_msg("%s has mode %04o, expected %04o", path,
			 (unsigned)(sb.st_mode & 07777), (unsigned)want);
	free(path);
}

/*
 * What the runner and pipewright.fcgi create is private to the service's
 * user and group: the database and its WAL 0660 (both write it), the wake
 * FIFO 0620 (the web server's group pokes it), logs and params 0640.
 */
static void test_file_modes(void **state)
{
	(void)state;
	char *log = hr_sql_text(P,
		"SELECT t.log_path FROM task_tries t JOIN runs r ON r.id = t.run_pk"
		" WHERE r.dag_id = 'quick' AND r.run_id = 'r1' AND t.task_id = 'a'", "");
	expect_mode("var/pipewright.db", 0660);
	expect_mode("var/pipewright.db-wal", 0660);
	expect_mode("var/pipewright.db.wake", 0620);
	expect_mode("var/logs/quick/r1/params.json", 0640);
	expect_mode(log, 0640);
	expect_mode("var/logs/quick/r1", 0750);
	free(log);
	passed = true;
}

/* XCom lists page like every list: total, limit, offset; ordered by key. */
static void test_xcom_paging(void **state)
{
	(void)state;
	static const char path[] = "/api/v1/dags/quick/runs/r1/tasks/b/xcom";
	ht_resp *r = ht_get(S, path);
	json_object *all = json_object_get(ht_ok(r, 200));
	size_t n = json_object_array_length(all);
	if (n < 4)
		ht_fail(r, "b has at least 4 XComs (num, flag, obj, s)");
	expect_meta(r, (long long)n, 100, 0);
	for (size_t i = 1; i < n; i++)
		if (strcmp(ht_str(json_object_array_get_idx(all, i - 1), "key"),
			   ht_str(json_object_array_get_idx(all, i), "key")) >= 0)
			ht_fail(r, "XComs are ordered by key");
	ht_resp_free(r);

	r = fx_getf("%s?limit=2&offset=1", path);
	json_object *d = ht_ok(r, 200);
	expect_meta(r, (long long)n, 2, 1);
	if (json_object_array_length(d) != 2 ||
	    strcmp(ht_str(d, "0.key"), ht_str(all, "1.key")) != 0 ||
	    strcmp(ht_str(d, "1.key"), ht_str(all, "2.key")) != 0)
		ht_fail(r, "limit=2&offset=1: the 2nd and 3rd XComs");
	ht_resp_free(r);
	r = fx_getf("%s?offset=%zu&limit=1000", path, n);
	d = ht_ok(r, 200);
	expect_meta(r, (long long)n, 1000, (long long)n);
	if (json_object_array_length(d) != 0)
		ht_fail(r, "offset=total: an empty page");
	ht_resp_free(r);
	json_object_put(all);

	static const char *const bad[] = {"limit=0", "limit=1001", "limit=abc",
					  "offset=-1", "offset=x", "limit="};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		r = fx_getf("%s?%s", path, bad[i]);
		ht_err(r, 400);
		ht_resp_free(r);
	}
	get_err("/api/v1/dags/quick/runs/r1/tasks/zz/xcom?limit=2", 404);
	passed = true;
}

static void test_retries(void **state)
{
	(void)state;
	need_runner();
	free(trigger("flaky", "{\"run_id\": \"f1\"}"));
	json_object_put(wait_run("flaky", "f1", "success"));
	json_object *d = get_data("/api/v1/dags/flaky/runs/f1/tasks/t");
	expect_str(d, "state", "success");
	expect_int(d, "try_number", 2);
	expect_int(d, "max_tries", 2);
	json_object *tries = ht_arr(d, "tries");
	if (json_object_array_length(tries) != 2)
		fail_msg("t has two tries: %s", json_object_to_json_string(d));
	expect_int(tries, "0.try_number", 1);
	expect_int(tries, "0.exit_code", 3);
	expect_int(tries, "1.try_number", 2);
	expect_str(tries, "1.state", "success");
	expect_int(tries, "1.exit_code", 0);
	json_object_put(d);
	ht_resp *r = ht_get(S, "/api/v1/dags/flaky/runs/f1/tasks/t/logs?try_number=1");
	if (r->status != 200 || !strstr(r->body, "try 1"))
		ht_fail(r, "log of try 1 says try 1");
	ht_resp_free(r);
	r = ht_get(S, "/api/v1/dags/flaky/runs/f1/tasks/t/logs");
	if (r->status != 200 || !strstr(r->body, "try 2"))
		ht_fail(r, "the latest log is try 2's");
	ht_resp_free(r);
	passed = true;
}

static void test_cancel(void **state)
{
	(void)state;
	need_runner();
	free(trigger("sleeper", "{\"run_id\": \"c1\"}"));
	wait_task("sleeper", "c1", "nap", "running");
	ht_resp *r = ht_send(S, "DELETE", "/api/v1/dags/sleeper/runs/c1", NULL);
	json_object *d = ht_ok(r, 202);
	expect_str(d, "run_id", "c1");
	ht_resp_free(r);
	d = wait_run("sleeper", "c1", "cancelled");
	json_object *tis = ht_arr(d, "task_instances");
	expect_str(ht_find(tis, "task_id", "nap"), "state", "cancelled");
	json_object *after = ht_find(tis, "task_id", "after");
	if (after && strcmp(ht_str(after, "state"), "cancelled") != 0)
		fail_msg("a task not started ends cancelled: %s", json_object_to_json_string(d));
	json_object_put(d);
	/* A finished run cannot be cancelled. */
	send_err("DELETE", "/api/v1/dags/sleeper/runs/c1", NULL, 409);
	send_err("DELETE", "/api/v1/dags/quick/runs/r1", NULL, 409);
	send_err("DELETE", "/api/v1/dags/sleeper/runs/nope", NULL, 404);
	passed = true;
}

static void test_retry_run(void **state)
{
	(void)state;
	need_runner();
	free(trigger("failing", "{\"run_id\": \"x1\"}"));
	json_object *d = wait_run("failing", "x1", "failed");
	expect_str(ht_find(ht_arr(d, "task_instances"), "task_id", "f"), "state", "failed");
	json_object_put(d);
	ht_resp *r = ht_send(S, "POST", "/api/v1/dags/failing/runs/x1/retry", NULL);
	d = ht_ok(r, 202);
	expect_str(d, "run_id", "x1");
	ht_resp_free(r);
	/* The run stays failed until the runner acts on the retry. */
	long long end = ht_now_ms() + W;
	for (;;) {
		json_object *cur = get_data("/api/v1/dags/failing/runs/x1");
		json_object *f = ht_find(ht_arr(cur, "task_instances"), "task_id", "f");
		bool retried = f && ht_int(f, "try_number") >= 2;
		bool final = strcmp(ht_str(cur, "state"), "queued") &&
			     strcmp(ht_str(cur, "state"), "running");
		json_object_put(cur);
		if (retried && final)
			break;
		if (ht_now_ms() > end)
			fail_msg("timed out waiting for the retried run x1 to end");
		hr_sleep_ms(20);
	}
	d = wait_run("failing", "x1", "success");
	json_object *f = ht_find(ht_arr(d, "task_instances"), "task_id", "f");
	expect_str(f, "state", "success");
	expect_int(f, "try_number", 2);
	json_object_put(d);
	/* A successful run cannot be retried. */
	send_err("POST", "/api/v1/dags/failing/runs/x1/retry", NULL, 409);
	send_err("POST", "/api/v1/dags/quick/runs/r1/retry", NULL, 409);
	send_err("POST", "/api/v1/dags/failing/runs/nope/retry", NULL, 404);
	passed = true;
}

static void test_runs_list(void **state)
{
	(void)state;
	need_runner();
	const char *ids[] = {"l1", "l2", "l3"};
	for (int i = 0; i < 3; i++) {
		char body[64];
		snprintf(body, sizeof body, "{\"run_id\": \"%s\"}", ids[i]);
		free(trigger("always_fails", body));
		json_object_put(wait_run("always_fails", ids[i], "failed"));
		hr_sleep_ms(5); /* distinct queued_at */
	}
	ht_resp *r = ht_get(S, "/api/v1/dags/always_fails/runs?order_by=queued_at");
	json_object *d = ht_ok(r, 200);
	expect_meta(r, 3, 100, 0);
	if (json_object_array_length(d) != 3 || strcmp(ht_str(d, "0.run_id"), "l1") ||
	    strcmp(ht_str(d, "2.run_id"), "l3"))
		ht_fail(r, "order_by=queued_at: l1, l2, l3");
	char *q2 = strdup(ht_str(d, "1.queued_at"));
	assert_non_null(q2);
	expect_run_fields(json_object_array_get_idx(d, 0));
	ht_resp_free(r);

	r = ht_get(S, "/api/v1/dags/always_fails/runs?order_by=-queued_at&limit=2");
	d = ht_ok(r, 200);
	expect_meta(r, 3, 2, 0);
	if (json_object_array_length(d) != 2 || strcmp(ht_str(d, "0.run_id"), "l3") ||
	    strcmp(ht_str(d, "1.run_id"), "l2"))
		ht_fail(r, "order_by=-queued_at: l3, l2");
	ht_resp_free(r);
	r = ht_get(S, "/api/v1/dags/always_fails/runs?order_by=-ended_at");
	d = ht_ok(r, 200);
	if (strcmp(ht_str(d, "0.run_id"), "l3") != 0)
		ht_fail(r, "order_by=-ended_at starts with l3");
	ht_resp_free(r);
	r = ht_get(S, "/api/v1/dags/always_fails/runs?order_by=started_at");
	d = ht_ok(r, 200);
	if (strcmp(ht_str(d, "0.run_id"), "l1") != 0)
		ht_fail(r, "order_by=started_at starts with l1");
	ht_resp_free(r);

	/* since/until are inclusive. */
	r = fx_getf("/api/v1/dags/always_fails/runs?order_by=queued_at&since=%s", q2);
	d = ht_ok(r, 200);
	if (json_object_array_length(d) != 2 || strcmp(ht_str(d, "0.run_id"), "l2"))
		ht_fail(r, "since=queued_at of l2: l2, l3");
	ht_resp_free(r);
	r = fx_getf("/api/v1/dags/always_fails/runs?order_by=queued_at&until=%s", q2);
	d = ht_ok(r, 200);
	if (json_object_array_length(d) != 2 || strcmp(ht_str(d, "1.run_id"), "l2"))
		ht_fail(r, "until=queued_at of l2: l1, l2");
	ht_resp_free(r);
	r = fx_getf("/api/v1/dags/always_fails/runs?since=%s&until=%s", q2, q2);
	d = ht_ok(r, 200);
	if (json_object_array_length(d) != 1 || strcmp(ht_str(d, "0.run_id"), "l2"))
		ht_fail(r, "since=until=queued_at of l2: l2");
	ht_resp_free(r);
	free(q2);

	/* State filters over a DAG with runs in several states. */
	r = ht_get(S, "/api/v1/dags/quick/runs?state=success");
	d = ht_ok(r, 200);
	for (size_t i = 0; i < json_object_array_length(d); i++)
		if (strcmp(ht_str(json_object_array_get_idx(d, i), "state"), "success"))
			ht_fail(r, "state=success");
	if (json_object_array_length(d) < 2)
		ht_fail(r, "quick has 2 successful runs");
	ht_resp_free(r);
	r = ht_get(S, "/api/v1/dags/sleeper/runs?state=failed,cancelled");
	d = ht_ok(r, 200);
	if (json_object_array_length(d) != 1 || strcmp(ht_str(d, "0.run_id"), "c1"))
		ht_fail(r, "state=failed,cancelled of sleeper: c1");
	ht_resp_free(r);
	r = ht_get(S, "/api/v1/dags/sleeper/runs?state=queued");
	d = ht_ok(r, 200);
	expect_meta(r, 0, 100, 0);
	ht_resp_free(r);

	get_err("/api/v1/dags/quick/runs?state=bogus", 400);
	get_err("/api/v1/dags/quick/runs?state=success,bogus", 400);
	get_err("/api/v1/dags/quick/runs?order_by=bogus", 400);
	get_err("/api/v1/dags/quick/runs?order_by=-", 400);
	get_err("/api/v1/dags/quick/runs?order_by=run_id", 400);
	get_err("/api/v1/dags/quick/runs?since=yesterday", 400);
	get_err("/api/v1/dags/quick/runs?until=2024-13-45T99:00:00Z", 400);
	get_err("/api/v1/dags/quick/runs?limit=0", 400);
	get_err("/api/v1/dags/quick/runs?limit=1001", 400);
	get_err("/api/v1/dags/nope/runs", 404);
	passed = true;
}

/* --- stats, metrics ---------------------------------------------------------- */

static void test_stats(void **state)
{
	(void)state;
	need_runner();
	/* quick: r1 and one generated run, both success (test_trigger_and_run). */
	json_object *d = get_data("/api/v1/dags/quick/stats");
	expect_str(d, "dag_id", "quick");
	expect_int(d, "runs.success", 2);
	expect_int(d, "runs.failed", 0);
	expect_int(d, "runs.queued", 0);
	expect_int(d, "runs.running", 0);
	expect_int(d, "runs.cancelled", 0);
	expect_int(d, "total_runs", 2);
	double rate = ht_num(d, "success_rate");
	if (rate < 0.999 || rate > 1.001)
		fail_msg("quick: success_rate 1: %s", json_object_to_json_string(d));
	double avg = ht_num(d, "duration_ms.avg"), p50 = ht_num(d, "duration_ms.p50"),
	       p95 = ht_num(d, "duration_ms.p95"), max = ht_num(d, "duration_ms.max");
	if (avg < 0 || p50 < 0 || p95 < p50 || max < p95)
		fail_msg("durations 0 <= p50 <= p95 <= max: %s", json_object_to_json_string(d));
	expect_str(d, "last_run.dag_id", "quick");
	expect_str(d, "last_run.state", "success");
	json_object_put(d);

	/* always_fails: l1..l3 failed (test_runs_list). */
	d = get_data("/api/v1/dags/always_fails/stats");
	expect_int(d, "runs.failed", 3);
	expect_int(d, "runs.success", 0);
	rate = ht_num(d, "success_rate");
	if (rate > 0.001)
		fail_msg("always_fails: success_rate 0: %s", json_object_to_json_string(d));
	expect_str(d, "last_run.run_id", "l3");
	json_object_put(d);
	get_err("/api/v1/dags/nope/stats", 404);
	passed = true;
}

static void test_metrics(void **state)
{
	(void)state;
	need_runner();
	json_object *d = get_data("/api/v1/metrics");
	static const char *const rs[] = {"queued", "running", "success", "failed",
					 "cancelled"};
	static const char *const ts[] = {"pending", "queued", "running", "success",
					 "failed", "up_for_retry", "upstream_failed",
					 "skipped", "cancelled"};
	char path[64];
	for (size_t i = 0; i < sizeof rs / sizeof *rs; i++) {
		snprintf(path, sizeof path, "runs.%s", rs[i]);
		ht_int(d, path);
	}
	for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) {
		snprintf(path, sizeof path, "tasks.%s", ts[i]);
		ht_int(d, path);
	}
	if (ht_int(d, "runs.success") < 5 || ht_int(d, "runs.failed") < 3 ||
	    ht_int(d, "runs.cancelled") < 1 || ht_int(d, "tasks.cancelled") < 1)
		fail_msg("metrics count this file's runs: %s", json_object_to_json_string(d));
	ht_int(d, "queue_depth.runs");
	ht_int(d, "queue_depth.tasks");
	json_object *dp = ht_find(ht_arr(d, "pools"), "name", "default_pool");
	if (!dp || ht_int(dp, "slots") != 128)
		fail_msg("metrics: default_pool usage: %s", json_object_to_json_string(d));
	if (ht_num(d, "runner.heartbeat_age_s") < 0 || !is_iso(ht_str(d, "runner.last_heartbeat")))
		fail_msg("metrics: runner heartbeat age: %s", json_object_to_json_string(d));
	json_object_put(d);
	passed = true;
}

/* --- pools ------------------------------------------------------------------- */

/* GET /api/v1/pools/name answers the object the list shows for the pool. */
static void expect_pool_as_listed(const char *name)
{
	json_object *list = get_data("/api/v1/pools");
	ht_resp *r = fx_getf("/api/v1/pools/%s", name);
	json_object *listed = ht_find(list, "name", name);

	if (!listed || !json_object_equal(ht_ok(r, 200), listed))
		ht_fail(r, "the pool is the object the list shows");
	ht_resp_free(r);
	json_object_put(list);
}

static void test_pools(void **state)
{
	(void)state;
	ht_resp *r = ht_get(S, "/api/v1/pools");
	json_object *d = ht_ok(r, 200);
	json_object *dp = ht_find(d, "name", "default_pool");
	if (!dp)
		ht_fail(r, "default_pool is listed");
	expect_int(dp, "slots", 128);
	static const char *const keys[] = {"occupied_slots", "running_slots",
					   "queued_slots", "open_slots", "description"};
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		if (!ht_has(dp, keys[i]))
			ht_fail(r, "a pool field is missing");
	ht_resp_free(r);

	r = ht_send(S, "POST", "/api/v1/pools",
		    "{\"name\": \"p1\", \"slots\": 3, \"description\": \"three\"}");
	d = ht_ok(r, 201);
	expect_str(d, "name", "p1");
	expect_int(d, "slots", 3);
	expect_str(d, "description", "three");
	ht_resp_free(r);
	send_err("POST", "/api/v1/pools", "{\"name\": \"p1\", \"slots\": 1}", 409);
	send_err("POST", "/api/v1/pools", "{\"name\": \"p2\"}", 400);
	send_err("POST", "/api/v1/pools", "{\"name\": \"p2\", \"slots\": -1}", 400);
	send_err("POST", "/api/v1/pools", "{\"name\": \"p2\", \"slots\": \"1\"}", 400);
	send_err("POST", "/api/v1/pools", "{\"name\": \"bad name\", \"slots\": 1}", 400);
	send_err("POST", "/api/v1/pools", "{\"name\": \"p2\", \"slots\": 1, \"x\": 1}", 400);

	r = ht_send(S, "PATCH", "/api/v1/pools/p1", "{\"slots\": 5}");
	d = ht_ok(r, 200);
	expect_int(d, "slots", 5);
	expect_str(d, "description", "three");
	ht_resp_free(r);
	r = ht_send(S, "PATCH", "/api/v1/pools/p1", "{\"description\": \"five\"}");
	d = ht_ok(r, 200);
	expect_int(d, "slots", 5);
	expect_str(d, "description", "five");
	ht_resp_free(r);
	send_err("PATCH", "/api/v1/pools/p1", "{\"slots\": \"many\"}", 400);
	send_err("PATCH", "/api/v1/pools/p1", "{\"name\": \"p9\"}", 400);
	send_err("PATCH", "/api/v1/pools/nope", "{\"slots\": 1}", 404);

	d = get_data("/api/v1/pools");
	json_object *p1 = ht_find(d, "name", "p1");
	if (!p1 || ht_int(p1, "slots") != 5 || ht_int(p1, "open_slots") != 5)
		fail_msg("p1: 5 slots, 5 open: %s", json_object_to_json_string(d));
	json_object_put(d);
	expect_pool_as_listed("p1");
	d = get_data("/api/v1/pools/default_pool");
	expect_str(d, "name", "default_pool");
	expect_int(d, "slots", 128);
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		if (!ht_has(d, keys[i]))
			fail_msg("a pool field is missing: %s", json_object_to_json_string(d));
	json_object_put(d);
	get_err("/api/v1/pools/nope", 404);
	get_err("/api/v1/pools/a:b+c", 404);     /* a valid name, no such pool */
	get_err("/api/v1/pools/bad%20name", 404); /* never a pool name */
	get_err("/api/v1/pools/_x", 404);

	r = ht_send(S, "DELETE", "/api/v1/pools/p1", NULL);
	if (r->status != 204 || r->body_len != 0)
		ht_fail(r, "DELETE answers 204 without a body");
	ht_resp_free(r);
	send_err("DELETE", "/api/v1/pools/p1", NULL, 404);
	get_err("/api/v1/pools/p1", 404);
	send_err("DELETE", "/api/v1/pools/default_pool", NULL, 400);
	d = get_data("/api/v1/pools");
	if (ht_find(d, "name", "p1") || !ht_find(d, "name", "default_pool"))
		fail_msg("p1 gone, default_pool kept: %s", json_object_to_json_string(d));
	json_object_put(d);
	passed = true;
}

/* --- bodies: NUL characters, bodies of cancel and retry ----------------------- */

/* method path body: 400 whose message names field (NULL: not checked). */
static void expect_400_naming(const char *method, const char *path, const char *body,
			      const char *field)
{
	ht_resp *r = ht_send(S, method, path, body);
	ht_err(r, 400);
	if (field && !strstr(ht_str(r->json, "error.message"), field))
		ht_fail(r, "the message names the field");
	ht_resp_free(r);
}

/* An escaped NUL (\u0000) in any string or key of a body is a 400, not a cut string. */
static void test_body_nul(void **state)
{
	(void)state;
	static const char runs[] = "/api/v1/dags/quick/runs";
	expect_400_naming("POST", runs, "{\"run_id\": \"x\\u0000y\"}", "'run_id'");
	get_err("/api/v1/dags/quick/runs/x", 404);
	expect_400_naming("POST", runs, "{\"run_id\": \"nul2\", \"task_ids\": [\"a\\u0000b\"]}",
			  "'task_ids'");
	get_err("/api/v1/dags/quick/runs/nul2", 404);
	expect_400_naming("POST", runs, "{\"run_id\": \"nul3\", \"conf\": {\"k\": [1, \"\\u0000\"]}}",
			  "'conf'");
	get_err("/api/v1/dags/quick/runs/nul3", 404);
	/* keys: json-c would cut "k\0" to "k", "run_id\0x" to "run_id" */
	expect_400_naming("POST", runs, "{\"run_id\": \"nul4\", \"conf\": {\"k\\u0000\": 1}}", NULL);
	get_err("/api/v1/dags/quick/runs/nul4", 404);
	expect_400_naming("POST", runs, "{\"run_id\\u0000x\": \"nul5\"}", NULL);
	get_err("/api/v1/dags/quick/runs/nul5", 404);

	expect_400_naming("POST", "/api/v1/pools",
			  "{\"name\": \"pa\\u0000 evil\", \"slots\": 1}", "'name'");
	json_object *d = get_data("/api/v1/pools");
	if (ht_find(d, "name", "pa"))
		fail_msg("no pool pa: %s", json_object_to_json_string(d));
	char *desc = strdup(json_object_to_json_string(
		ht_at(ht_find(d, "name", "default_pool"), "description")));
	assert_non_null(desc);
	json_object_put(d);
	expect_400_naming("PATCH", "/api/v1/pools/default_pool",
			  "{\"description\": \"d\\u0000x\"}", "'description'");
	d = get_data("/api/v1/pools");
	if (strcmp(desc, json_object_to_json_string(
			   ht_at(ht_find(d, "name", "default_pool"), "description"))) != 0)
		fail_msg("default_pool's description is unchanged: %s",
			 json_object_to_json_string(d));
	json_object_put(d);
	free(desc);

	/* An escaped backslash before u0000 is no NUL. */
	ht_resp *r = ht_send(S, "POST", "/api/v1/pools",
			     "{\"name\": \"pnul\", \"slots\": 1, \"description\": \"a\\\\u0000b\"}");
	expect_str(ht_ok(r, 201), "description", "a\\u0000b");
	ht_resp_free(r);
	r = ht_send(S, "DELETE", "/api/v1/pools/pnul", NULL);
	if (r->status != 204)
		ht_fail(r, "DELETE pnul");
	ht_resp_free(r);
	passed = true;
}

/* Sends body (NULL: none) with Content-Type ctype (NULL: JSON, or none without body). */
static ht_resp *send_typed(const char *method, const char *path, const char *ctype,
			   const char *body)
{
	char ct[128];
	const char *hdrs[2] = {NULL, NULL};
	if (ctype) {
		snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
		hdrs[0] = ct;
	}
	return ht_req(S, method, path, hdrs, body, body ? strlen(body) : 0);
}

/* Bodies that cancel and retry refuse (they define no fields). */
static const struct {
	const char *ctype, *body;
	long status;
} refused_bodies[] = {
	{NULL, "{\"x\": 1}", 400},
	{NULL, "{\"dry_run\": false}", 400},
	{NULL, "{", 400},
	{NULL, "null", 400},
	{NULL, "[]", 400},
	{NULL, " ", 400},
	{"text/plain", "{}", 415},
	{"text/plain", "retry", 415},
	{"application/x-www-form-urlencoded", "x=1", 415},
};

/* Sends every refused body; each must answer its status and change nothing. */
static void expect_bodies_refused(const char *method, const char *dag, const char *run,
				  const char *path)
{
	const char *before = hr_run_state(P, dag, run);
	char *state = strdup(before ? before : "");
	assert_non_null(state);
	for (size_t i = 0; i < sizeof refused_bodies / sizeof *refused_bodies; i++) {
		ht_resp *r = send_typed(method, path, refused_bodies[i].ctype,
					refused_bodies[i].body);
		ht_err(r, refused_bodies[i].status);
		ht_resp_free(r);
	}
	long long n = hr_sql_int(P, -1, "SELECT count(*) FROM commands WHERE run_pk = ?1",
				 "l", hr_run_pk(P, dag, run));
	if (n != 0)
		fail_msg("%s %s: a refused body made %lld commands", method, path, n);
	if (strcmp(state, hr_run_state(P, dag, run)) != 0)
		fail_msg("%s %s: the run was %s, is %s", method, path, state,
			 hr_run_state(P, dag, run));
	free(state);
}

/* Waits until task f of always_fails run rb1 has failed its try n. */
static void wait_failed_try(int n)
{
	long long end = ht_now_ms() + W;
	for (;;) {
		json_object *cur = get_data("/api/v1/dags/always_fails/runs/rb1");
		json_object *f = ht_find(ht_arr(cur, "task_instances"), "task_id", "f");
		bool done = f && ht_int(f, "try_number") >= n &&
			    !strcmp(ht_str(cur, "state"), "failed");
		json_object_put(cur);
		if (done)
			return;
		if (ht_now_ms() > end)
			fail_msg("timed out waiting for try %d of rb1 to fail", n);
		hr_sleep_ms(20);
	}
}

static void test_retry_body(void **state)
{
	(void)state;
	static const char path[] = "/api/v1/dags/always_fails/runs/rb1/retry";
	need_runner();
	free(trigger("always_fails", "{\"run_id\": \"rb1\"}"));
	json_object_put(wait_run("always_fails", "rb1", "failed"));
	expect_bodies_refused("POST", "always_fails", "rb1", path);

	/* {} and an empty body (JSON, another or no Content-Type) are taken. */
	static const struct {
		const char *ctype, *body;
	} taken[] = {{NULL, "{}"}, {NULL, ""}, {"text/plain", ""}, {NULL, NULL}};
	for (size_t i = 0; i < sizeof taken / sizeof *taken; i++) {
		ht_resp *r = send_typed("POST", path, taken[i].ctype, taken[i].body);
		expect_str(ht_ok(r, 202), "run_id", "rb1");
		ht_resp_free(r);
		wait_failed_try((int)i + 2);
	}
	passed = true;
}

static void test_cancel_body(void **state)
{
	(void)state;
	static const char path[] = "/api/v1/dags/sleeper/runs/cb1";
	need_runner();
	free(trigger("sleeper", "{\"run_id\": \"cb1\"}"));
	wait_task("sleeper", "cb1", "nap", "running");
	expect_bodies_refused("DELETE", "sleeper", "cb1", path);
	ht_resp *r = send_typed("DELETE", path, NULL, "{}");
	expect_str(ht_ok(r, 202), "run_id", "cb1");
	ht_resp_free(r);
	json_object_put(wait_run("sleeper", "cb1", "cancelled"));
	passed = true;
}

/* --- keyset paging ---------------------------------------------------------- */

/* The identity of a row of a list: the values of fields (comma-separated). */
static void row_id(json_object *row, const char *fields, char *out, size_t n)
{
	char copy[128], *save = NULL;
	size_t len = 0;

	snprintf(copy, sizeof copy, "%s", fields);
	out[0] = '\0';
	for (char *f = strtok_r(copy, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
		json_object *v = ht_at(row, f);
		len += (size_t)snprintf(out + len, n - len, "%s|",
					v ? json_object_get_string(v) : "null");
		assert_true(len < n);
	}
}

/*
 * Walks the list at path (a query string ending in '?' or '&') by cursor,
 * limit rows at a time: every row comes exactly once, in the order of one
 * big page; each page answers meta.total, the last next_cursor null.
 * Offset paging still answers the same rows. Returns how many rows.
 */
static size_t walk_by_cursor(const char *path, const char *fields, int limit)
{
	ht_resp *r = fx_getf("%slimit=1000", path);
	json_object *all = json_object_get(ht_ok(r, 200));
	long long total = ht_int(r->json, "meta.total");
	size_t n = json_object_array_length(all), seen = 0;
	char *cursor = NULL, want[512], got[512];

	if (!json_object_is_type(ht_at(r->json, "meta.next_cursor"), json_type_null))
		ht_fail(r, "one big page: next_cursor null");
	ht_resp_free(r);
	for (int pages = 0;; pages++) {
		r = cursor ? fx_getf("%slimit=%d&cursor=%s", path, limit, cursor)
			   : fx_getf("%slimit=%d", path, limit);
		json_object *d = ht_ok(r, 200);
		json_object *next = ht_at(r->json, "meta.next_cursor");
		if (!ht_has(r->json, "meta.next_cursor"))
			ht_fail(r, "meta.next_cursor on every page");
		if (ht_int(r->json, "meta.total") != total || ht_int(r->json, "meta.limit") != limit)
			ht_fail(r, "meta.total and meta.limit on every page");
		for (size_t i = 0; i < json_object_array_length(d); i++, seen++) {
			if (seen >= n)
				ht_fail(r, "no more rows by cursor than on one page");
			row_id(json_object_array_get_idx(all, seen), fields, want, sizeof want);
			row_id(json_object_array_get_idx(d, i), fields, got, sizeof got);
			if (strcmp(want, got) != 0)
				ht_fail(r, "the rows by cursor in the order of one page");
		}
		free(cursor);
		cursor = NULL;
		if (json_object_is_type(next, json_type_null)) {
			ht_resp_free(r);
			break;
		}
		if (json_object_array_length(d) != (size_t)limit || pages > 1000)
			ht_fail(r, "a page with a next_cursor is full");
		cursor = strdup(json_object_get_string(next));
		assert_non_null(cursor);
		ht_resp_free(r);
	}
	if (seen != n)
		fail_msg("%s: %zu rows by cursor, %zu on one page", path, seen, n);
	/* offset still works: the second row by offset is the second row */
	if (n >= 2) {
		r = fx_getf("%slimit=1&offset=1", path);
		json_object *d = ht_ok(r, 200);
		row_id(json_object_array_get_idx(all, 1), fields, want, sizeof want);
		row_id(json_object_array_get_idx(d, 0), fields, got, sizeof got);
		if (strcmp(want, got) != 0 || ht_int(r->json, "meta.offset") != 1 ||
		    json_object_is_type(ht_at(r->json, "meta.next_cursor"),
					n > 2 ? json_type_null : json_type_string))
			ht_fail(r, "offset=1: the second row, next_cursor while more follow");
		ht_resp_free(r);
	}
	json_object_put(all);
	return n;
}

/* The cursor of the first page of path with limit=1 (malloc'd). */
static char *first_cursor(const char *path)
{
	ht_resp *r = fx_getf("%slimit=1", path);
	ht_ok(r, 200);
	char *c = strdup(ht_str(r->json, "meta.next_cursor"));
	assert_non_null(c);
	ht_resp_free(r);
	return c;
}

static void test_cursor_paging(void **state)
{
	(void)state;
	static const struct {
		const char *path, *fields;
		size_t min;
	} lists[] = {
		{"/api/v1/dags?", "dag_id", 7},
		{"/api/v1/dags?tags=alpha,beta&", "dag_id", 2},
		{"/api/v1/import-errors?", "file,line,message", 1},
		{"/api/v1/pools?", "name", 1},
		{"/api/v1/dags/quick/runs?", "run_id", 2},
		{"/api/v1/dags/quick/runs?order_by=queued_at&", "run_id", 2},
		{"/api/v1/dags/quick/runs?order_by=-started_at&", "run_id", 2},
		{"/api/v1/dags/quick/runs?order_by=ended_at&", "run_id", 2},
		{"/api/v1/dags/quick/runs?order_by=-ended_at&state=success&", "run_id", 2},
		{"/api/v1/dags/quick/runs?order_by=started_at&since=2000-01-01T00:00:00Z&",
		 "run_id", 2},
		{"/api/v1/dags/always_fails/runs?state=failed,success&order_by=-queued_at&",
		 "run_id", 3},
		{"/api/v1/dags/~/runs?", "dag_id,run_id", 6},
		{"/api/v1/dags/~/runs?order_by=started_at&", "dag_id,run_id", 6},
		{"/api/v1/dags/~/runs?order_by=-ended_at&", "dag_id,run_id", 6},
		{"/api/v1/dags/~/runs?dag_id=quick,always_fails&state=failed&", "dag_id,run_id", 3},
		{"/api/v1/dags/quick/runs/r1/tasks?", "task_id", 4},
		{"/api/v1/dags/quick/runs/r1/tasks/b/xcom?", "key", 4},
	};
	for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
		size_t n = walk_by_cursor(lists[i].path, lists[i].fields, 1);
		if (n < lists[i].min)
			fail_msg("%s: %zu rows, want at least %zu", lists[i].path, n, lists[i].min);
		walk_by_cursor(lists[i].path, lists[i].fields, 2);
	}

	/* a cursor the server did not make, or made for another list or order */
	char *runs = first_cursor("/api/v1/dags/quick/runs?");
	char *dags = first_cursor("/api/v1/dags?");
	static const char *const forged[] = {"x", "!!!!", "AAAA", "MQ", "eyJpZCI6MX0"};
	for (size_t i = 0; i < sizeof forged / sizeof *forged; i++) {
		char path[256];
		snprintf(path, sizeof path, "/api/v1/dags/quick/runs?cursor=%s", forged[i]);
		get_err(path, 400);
		snprintf(path, sizeof path, "/api/v1/pools?cursor=%s", forged[i]);
		get_err(path, 400);
	}
	/* well formed, but a text key for a list keyed by rowid, a value that
	 * is not a number, trailing junk, another version */
	get_err("/api/v1/dags/quick/runs/r1/tasks?cursor=MQp0YXNrcwpuCnN4", 400);
	get_err("/api/v1/dags/quick/runs?cursor=MQpydW5zOi1xdWV1ZWRfYXQKYWJjCmkx", 400);
	get_err("/api/v1/dags/quick/runs?cursor=MQpydW5zOi1xdWV1ZWRfYXQKNQppMXg", 400);
	get_err("/api/v1/dags/quick/runs?cursor=MgpydW5zOi1xdWV1ZWRfYXQKNQppMQ", 400);
	ht_resp *r = ht_get(S, "/api/v1/dags/quick/runs?cursor=MQpydW5zOi1xdWV1ZWRfYXQKNQppMQ");
	if (json_object_array_length(ht_ok(r, 200)) != 0 ||
	    !json_object_is_type(ht_at(r->json, "meta.next_cursor"), json_type_null))
		ht_fail(r, "after queued_at 5: nothing, and no next_cursor");
	ht_resp_free(r);
	r = fx_getf("/api/v1/dags?cursor=%s", runs);
	ht_err(r, 400);
	ht_resp_free(r);
	r = fx_getf("/api/v1/dags/quick/runs?order_by=started_at&cursor=%s", runs);
	ht_err(r, 400);
	ht_resp_free(r);
	r = fx_getf("/api/v1/dags/~/runs?cursor=%s", runs);
	ht_err(r, 400);
	ht_resp_free(r);
	r = fx_getf("/api/v1/dags/quick/runs?cursor=%s", dags);
	ht_err(r, 400);
	ht_resp_free(r);
	r = fx_getf("/api/v1/dags/quick/runs?offset=0&cursor=%s", runs);
	ht_err(r, 400);
	ht_resp_free(r);
	r = fx_getf("/api/v1/dags/quick/runs?cursor=%s", runs);
	ht_ok(r, 200);
	ht_resp_free(r);
	free(runs);
	free(dags);
	passed = true;
}

/* --- import errors, events -------------------------------------------------- */

static void test_import_errors(void **state)
{
	(void)state;
	ht_resp *r = ht_get(S, "/api/v1/import-errors");
	json_object *d = ht_ok(r, 200);
	if (!json_object_is_type(d, json_type_array) || json_object_array_length(d) != 1)
		ht_fail(r, "one import error");
	if (!strstr(ht_str(d, "0.file"), "broken.yml"))
		ht_fail(r, "the file is dags/broken.yml");
	if (ht_int(d, "0.line") != 4)
		ht_fail(r, "the unknown key is on line 4");
	if (!*ht_str(d, "0.message"))
		ht_fail(r, "a message");
	ht_resp_free(r);
	passed = true;
}

static void test_events(void **state)
{
	(void)state;
	need_runner();
	ht_resp *r = ht_get(S, "/api/v1/events?limit=1000");
	json_object *d = ht_ok(r, 200);
	size_t n = json_object_array_length(ht_arr(r->json, "data"));
	if (n < 10)
		ht_fail(r, "the runs so far made events");
	long long prev = 0, mid = 0;
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(d, i);
		long long id = ht_int(e, "id");
		ht_str(e, "type");
		if (!json_object_is_type(ht_at(e, "data"), json_type_object))
			ht_fail(r, "an event's data is an object");
		if (id <= prev)
			ht_fail(r, "event ids increase");
		prev = id;
		if (i == n / 2)
			mid = id;
	}
	/* The run.state events of r1, in order. */
	char states[256] = "";
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(d, i);
		if (strcmp(ht_str(e, "type"), "run.state") ||
		    strcmp(ht_str(e, "data.dag_id"), "quick") ||
		    strcmp(ht_str(e, "data.run_id"), "r1"))
			continue;
		if (*states)
			strcat(states, ",");
		strncat(states, ht_str(e, "data.state"), 32);
		if (strlen(states) > 200)
			break;
	}
	if (strcmp(states, "queued,running,success") != 0)
		fail_msg("run.state events of r1: %s", states);
	ht_resp_free(r);

	r = fx_getf("/api/v1/events?after_id=%lld&limit=1000", mid);
	d = ht_ok(r, 200);
	if (json_object_array_length(d) != n - n / 2 - 1 || ht_int(d, "0.id") <= mid)
		ht_fail(r, "after_id: the events after it");
	ht_resp_free(r);

	r = ht_get(S, "/api/v1/events?types=run.state&limit=1000");
	d = ht_ok(r, 200);
	if (json_object_array_length(d) == 0)
		ht_fail(r, "run.state events");
	for (size_t i = 0; i < json_object_array_length(d); i++)
		if (strcmp(ht_str(json_object_array_get_idx(d, i), "type"), "run.state"))
			ht_fail(r, "types=run.state: only run.state");
	ht_resp_free(r);

	r = ht_get(S, "/api/v1/events?limit=2");
	d = ht_ok(r, 200);
	if (json_object_array_length(d) != 2)
		ht_fail(r, "limit=2: two events");
	ht_resp_free(r);
	/* ?last_event_id= pages like after_id, with the stream's 400s. */
	r = fx_getf("/api/v1/events?last_event_id=%lld&limit=1000", mid);
	d = ht_ok(r, 200);
	if (json_object_array_length(d) != n - n / 2 - 1 || ht_int(d, "0.id") <= mid)
		ht_fail(r, "last_event_id: the events after it");
	ht_resp_free(r);
	/* By cursor, 7 at a time: the same events in the same order. */
	r = ht_get(S, "/api/v1/events?limit=1000");
	json_object *all = json_object_get(ht_ok(r, 200));
	ht_resp_free(r);
	size_t seen = 0;
	char *cursor = NULL;
	for (;;) {
		r = cursor ? fx_getf("/api/v1/events?limit=7&cursor=%s", cursor)
			   : ht_get(S, "/api/v1/events?limit=7");
		d = ht_ok(r, 200);
		for (size_t i = 0; i < json_object_array_length(d) && seen < n; i++, seen++)
			if (ht_int(json_object_array_get_idx(d, i), "id") !=
			    ht_int(json_object_array_get_idx(all, seen), "id"))
				ht_fail(r, "events by cursor: the same ids in order");
		free(cursor);
		cursor = NULL;
		if (!ht_has(r->json, "meta.next_cursor"))
			ht_fail(r, "meta.next_cursor");
		json_object *next = ht_at(r->json, "meta.next_cursor");
		if (seen >= n || !next) {
			if (!next && json_object_array_length(d) == 7 && seen < n)
				ht_fail(r, "a next_cursor while events follow");
			ht_resp_free(r);
			break;
		}
		cursor = strdup(json_object_get_string(next));
		assert_non_null(cursor);
		ht_resp_free(r);
	}
	free(cursor);
	if (seen != n)
		fail_msg("events by cursor: %zu of %zu", seen, n);
	json_object_put(all);
	r = ht_get(S, "/api/v1/events?limit=1");
	ht_ok(r, 200);
	char *c = strdup(ht_str(r->json, "meta.next_cursor"));
	assert_non_null(c);
	ht_resp_free(r);
	r = fx_getf("/api/v1/events?after_id=0&cursor=%s", c);
	ht_err(r, 400);
	ht_resp_free(r);
	r = fx_getf("/api/v1/pools?cursor=%s", c);
	ht_err(r, 400);
	ht_resp_free(r);
	free(c);
	get_err("/api/v1/events?cursor=bm9wZQ", 400);
	get_err("/api/v1/events?last_event_id=-1", 400);
	get_err("/api/v1/events?last_event_id=abc", 400);
	get_err("/api/v1/events?after_id=1&last_event_id=x", 400);
	get_err("/api/v1/events?after_id=abc", 400);
	get_err("/api/v1/events?limit=0", 400);
	get_err("/api/v1/events?limit=1001", 400);
	passed = true;
}

/* --- HTTP-level behaviour --------------------------------------------------- */

static void test_unknown_and_methods(void **state)
{
	(void)state;
	get_err("/api/v1/nothing", 404);
	get_err("/api/v1", 404);
	get_err("/api/v1/dags/quick/runs/r1/tasks/a/nothing", 404);
	get_err("/nothing", 404);

	ht_resp *r = ht_send(S, "PUT", "/api/v1/dags", "{}");
	ht_err(r, 405);
	char *allow = ht_header(r, "Allow");
	if (!allow || !strstr(allow, "GET"))
		ht_fail(r, "405 has Allow: GET");
	free(allow);
	ht_resp_free(r);
	r = ht_send(S, "DELETE", "/api/v1/pools", NULL);
	ht_err(r, 405);
	allow = ht_header(r, "Allow");
	if (!allow || !strstr(allow, "GET") || !strstr(allow, "POST"))
		ht_fail(r, "405 has Allow: GET, POST");
	free(allow);
	ht_resp_free(r);
	r = ht_send(S, "POST", "/api/v1/dags/quick", "{}");
	ht_err(r, 405);
	allow = ht_header(r, "Allow");
	if (!allow || !strstr(allow, "GET") || !strstr(allow, "PATCH"))
		ht_fail(r, "405 has Allow: GET, PATCH");
	free(allow);
	ht_resp_free(r);
	send_err("GET", "/api/v1/dags/quick/runs/r1/retry", NULL, 405);
	passed = true;
}

/* HEAD: GET's status and head (Content-Length included), no body. */
static void expect_head_like_get(const char *path, const char *const *headers)
{
	ht_resp *g = ht_req(S, "GET", path, headers, NULL, 0);
	ht_resp *h = ht_req(S, "HEAD", path, headers, NULL, 0);
	char *glen = ht_header(g, "Content-Length"), *hlen = ht_header(h, "Content-Length");
	char *gtype = ht_header(g, "Content-Type"), *htype = ht_header(h, "Content-Type");
	if (h->status != g->status || h->body_len != 0)
		ht_fail(h, "HEAD answers as GET, without a body");
	if (!glen || !hlen || strcmp(glen, hlen) != 0 || !gtype || !htype ||
	    strcmp(gtype, htype) != 0)
		ht_fail(h, "HEAD has GET's Content-Length and Content-Type");
	free(glen);
	free(hlen);
	free(gtype);
	free(htype);
	ht_resp_free(g);
	ht_resp_free(h);
}

static void test_head(void **state)
{
	(void)state;
	static const char *const sse[] = {"Accept: text/event-stream", NULL};
	expect_head_like_get("/api/v1/version", NULL);
	expect_head_like_get("/api/v1/dags", NULL);
	expect_head_like_get("/api/v1/dags/nosuch", NULL); /* 404, envelope's length */
	expect_head_like_get("/health", NULL);
	/* A stream would never end: HEAD gets the JSON page's head instead. */
	ht_resp *h = ht_req(S, "HEAD", "/api/v1/events", sse, NULL, 0);
	char *type = ht_header(h, "Content-Type");
	if (h->status != 200 || !type || !strstr(type, "application/json"))
		ht_fail(h, "HEAD /api/v1/events as a stream: the page's head");
	free(type);
	ht_resp_free(h);
	h = ht_req(S, "HEAD", "/api/v1/pools/default_pool/nothing", NULL, NULL, 0);
	if (h->status != 404 || h->body_len != 0)
		ht_fail(h, "HEAD on an unknown path: 404 without a body");
	ht_resp_free(h);
	h = ht_req(S, "HEAD", "/run", NULL, NULL, 0); /* POST only */
	if (h->status != 405 || h->body_len != 0)
		ht_fail(h, "HEAD on a POST route: 405 without a body");
	ht_resp_free(h);
	passed = true;
}

static void test_cors(void **state)
{
	(void)state;
	const char *pre[] = {"Origin: " ORIGIN, "Access-Control-Request-Method: POST",
			     "Access-Control-Request-Headers: Content-Type", NULL};
	ht_resp *r = ht_req(S, "OPTIONS", "/api/v1/dags/quick/runs", pre, NULL, 0);
	char *acao = ht_header(r, "Access-Control-Allow-Origin");
	char *acam = ht_header(r, "Access-Control-Allow-Methods");
	if (r->status != 204 || !acao || strcmp(acao, ORIGIN) != 0)
		ht_fail(r, "preflight: 204 with Access-Control-Allow-Origin: " ORIGIN);
	if (!acam || !strstr(acam, "POST"))
		ht_fail(r, "preflight: Access-Control-Allow-Methods names POST");
	free(acao);
	free(acam);
	ht_resp_free(r);

	const char *simple[] = {"Origin: " ORIGIN, NULL};
	r = ht_req(S, "GET", "/api/v1/version", simple, NULL, 0);
	ht_ok(r, 200);
	acao = ht_header(r, "Access-Control-Allow-Origin");
	if (!acao || strcmp(acao, ORIGIN) != 0)
		ht_fail(r, "GET with an allowed Origin gets Access-Control-Allow-Origin");
	free(acao);
	ht_resp_free(r);

	const char *other[] = {"Origin: https://evil.example",
			       "Access-Control-Request-Method: POST", NULL};
	r = ht_req(S, "OPTIONS", "/api/v1/dags/quick/runs", other, NULL, 0);
	acao = ht_header(r, "Access-Control-Allow-Origin");
	if (acao)
		ht_fail(r, "no Access-Control-Allow-Origin for another origin");
	ht_resp_free(r);
	passed = true;
}

/* REMOTE_USER (basic auth in lighttpd) and settings.roles, on a second project. */
static void test_remote_user_and_roles(void **state)
{
	(void)state;
	hr_project *q = hr_project_new(2);
	hr_settings(q, "roles: {alice: read, bob: operate, carol: admin}");
	hr_dag(q, "d", DAG_PAUSABLE);
	ht_opts o = {.users = "alice:apw\nbob:bpw\ncarol:cpw\n"};
	ht_server *s = ht_start(q->dir, &o);

	s->user = "bob";
	s->password = "bpw";
	ht_resp *r = ht_send(s, "POST", "/api/v1/dags/d/runs", "{\"run_id\": \"u1\"}");
	json_object *d = ht_ok(r, 201);
	if (!ht_has(d, "triggered_by") || strcmp(ht_str(d, "triggered_by"), "bob") != 0)
		ht_fail(r, "triggered_by is bob (REMOTE_USER)");
	ht_resp_free(r);
	r = ht_get(s, "/api/v1/dags/d/runs/u1");
	if (strcmp(ht_str(ht_ok(r, 200), "triggered_by"), "bob") != 0)
		ht_fail(r, "triggered_by is bob");
	ht_resp_free(r);
	/* operate may trigger but not manage pools (admin). */
	r = ht_send(s, "POST", "/api/v1/pools", "{\"name\": \"pp\", \"slots\": 1}");
	ht_err(r, 403);
	ht_resp_free(r);

	s->user = "alice";
	s->password = "apw";
	r = ht_send(s, "POST", "/api/v1/dags/d/runs", "{}");
	ht_err(r, 403);
	ht_resp_free(r);
	r = ht_send(s, "PATCH", "/api/v1/dags/d", "{\"is_paused\": true}");
	ht_err(r, 403);
	ht_resp_free(r);
	r = ht_get(s, "/api/v1/dags");
	ht_ok(r, 200);
	ht_resp_free(r);

	s->user = "carol";
	s->password = "cpw";
	r = ht_send(s, "POST", "/api/v1/pools", "{\"name\": \"pp\", \"slots\": 1}");
	ht_ok(r, 201);
	ht_resp_free(r);

	/* Wrong credentials never reach pipewright (lighttpd answers 401). */
	s->password = "wrong";
	r = ht_get(s, "/api/v1/dags");
	if (r->status != 401)
		ht_fail(r, "401 from the web server");
	ht_resp_free(r);

	ht_stop(s);
	hr_pass(q);
	hr_project_free(q);
	passed = true;
}

/* Triggers run_id on DAG d of s with extra headers; returns triggered_by or "(null)". */
static char *trigger_as(ht_server *s, const char *run_id, const char *const *headers)
{
	char body[128];
	snprintf(body, sizeof body, "{\"run_id\": \"%s\"}", run_id);
	ht_resp *r = ht_req(s, "POST", "/api/v1/dags/d/runs", headers, body, (size_t)-1);
	json_object *d = ht_ok(r, 201);
	json_object *by = ht_at(d, "triggered_by");
	char *who = strdup(by ? json_object_get_string(by) : "(null)");
	assert_non_null(who);
	ht_resp_free(r);
	return who;
}

/*
 * A user header a client sends never becomes the user: only REMOTE_USER
 * from the web server does, or the one header settings.trusted_user_header
 * names (an authenticating proxy's).
 */
static void test_user_headers(void **state)
{
	(void)state;
	static const char *const forged[] = {
		"Remote-User: mallory", "X-Forwarded-User: mallory", "X-Remote-User: mallory",
		"X-User: mallory", "Remote_User: mallory", "Auth-User: mallory", NULL};
	hr_project *q = hr_project_new(2);
	hr_dag(q, "d", DAG_PAUSABLE);
	ht_server *s = ht_start(q->dir, NULL);
	char *who = trigger_as(s, "h1", forged);
	if (strcmp(who, "(null)") != 0)
		fail_msg("a client's user header became triggered_by: %s", who);
	free(who);
	ht_stop(s);
	hr_settings(q, "trusted_user_header: X-Forwarded-User");
	s = ht_start(q->dir, NULL);
	who = trigger_as(s, "h2", forged);
	if (strcmp(who, "mallory") != 0)
		fail_msg("trusted_user_header X-Forwarded-User: triggered_by is %s", who);
	free(who);
	static const char *const other[] = {"Remote-User: eve", NULL};
	who = trigger_as(s, "h3", other);
	if (strcmp(who, "(null)") != 0)
		fail_msg("only the trusted header counts: triggered_by is %s", who);
	free(who);
	ht_stop(s);
	hr_pass(q);
	hr_project_free(q);
	passed = true;
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_health_without_runner),
		T(test_health_with_runner),
		T(test_version),
		T(test_dags_list),
		T(test_dag_detail),
		T(test_pause),
		T(test_trigger_and_run),
		T(test_task_instances),
		T(test_log_symlink),
		T(test_file_modes),
		T(test_xcom_paging),
		T(test_retries),
		T(test_cancel),
		T(test_retry_run),
		T(test_runs_list),
		T(test_stats),
		T(test_metrics),
		T(test_pools),
		T(test_body_nul),
		T(test_retry_body),
		T(test_cancel_body),
		T(test_import_errors),
		T(test_cursor_paging),
		T(test_events),
		T(test_unknown_and_methods),
		T(test_head),
		T(test_cors),
		T(test_remote_user_and_roles),
		T(test_user_headers),
	};
	return cmocka_run_group_tests_name("api", tests, group_setup, fx_group_teardown);
}
