/*
 * test_model.c - the project model's rules seen from outside, through a
 * real lighttpd, pipewright.fcgi and runner (DESIGN.md section 3): free
 * inputs that nothing defines fail a run before any task starts (over
 * /run and /api/v1), ${runtime_params:...} resolves per run, a task reads
 * PIPEWRIGHT_PARAM_<NAME>, and numbers come back as they were written
 * (params file, XCom, run conf).
 */
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define W HR_WAIT_MS


#define MISSING "Pipeline input(s) {'ghost_in', 'params:topn'} not found in the DataCatalog"

static int group_setup(void **state)
{
	(void)state;
	P = hr_project_new(2);
	hr_write(P, "conf/base/globals.yml", "folder: data\n");
	hr_catalog(P,
		   "_text: &text {type: text.TextDataset}\n"
		   "raw:\n"
		   "  <<: *text\n"
		   "  filepath: ${globals:folder}/raw.txt\n"
		   "out_file:\n"
		   "  <<: *text\n"
		   "  filepath: ${runtime_params:out_dir, data}/out.txt\n");
	hr_parameters(P,
		      "top_n: 5\n"
		      "model:\n"
		      "  lr: 0.1\n"
		      "size: ${runtime_params:size, 10}\n"
		      "big: 123456789012345678901234567890\n");
	/* a typo (topn) and a dataset nobody has (ghost_in); c avoids both */
	hr_dag(P, "ghost",
	       "tasks:\n"
	       "  - id: a\n"
	       "    command: \"touch ran_a\"\n"
	       "    inputs: [ghost_in, raw]\n"
	       "    outputs: mid\n"
	       "  - id: b\n"
	       "    command: \"touch ran_b\"\n"
	       "    inputs: [mid, \"params:topn\"]\n"
	       "  - id: c\n"
	       "    command: \"echo c\"\n"
	       "    inputs: \"params:top_n\"\n");
	hr_write(P, "scripts/xcom.sh",
		 "cat > \"$PIPEWRIGHT_XCOM\" <<'EOF'\n"
		 "{\"big\": 123456789012345678901234567890, \"neg\": -0, \"huge\": 1e400,"
		 " \"tenth\": 0.1}\n"
		 "EOF\n"
		 "echo done\n");
	hr_dag(P, "ok",
	       "tasks:\n"
	       "  - id: size\n"
	       "    command: 'echo \"$PIPEWRIGHT_PARAM_SIZE\"'\n"
	       "    inputs: \"params:size\"\n"
	       "  - id: lr\n"
	       "    command: 'echo \"$PIPEWRIGHT_PARAM_MODEL_LR\"'\n"
	       "    inputs: [\"params:model.lr\"]\n"
	       "  - id: xcom\n"
	       "    command: [sh, scripts/xcom.sh]\n");
	hr_dag(P, "paths",
	       "tasks:\n"
	       "  - id: w\n"
	       "    command: 'mkdir -p \"$(dirname \"$PIPEWRIGHT_OUTPUT_OUT_FILE\")\" &&"
	       " echo hi > \"$PIPEWRIGHT_OUTPUT_OUT_FILE\"'\n"
	       "    outputs: out_file\n");
	fx_start(NULL, true);
	return 0;
}


static void expect_str(ht_resp *r, json_object *o, const char *path, const char *want)
{
	const char *got = ht_str(o, path);
	if (!got || strcmp(got, want) != 0) {
		char what[1024];
		snprintf(what, sizeof what, "%s is not \"%s\"", path, want);
		ht_fail(r, what);
	}
}

static void expect_body_has(ht_resp *r, const char *text)
{
	if (!r->body || !strstr(r->body, text)) {
		char what[512];
		snprintf(what, sizeof what, "the body does not hold %s", text);
		ht_fail(r, what);
	}
}

/* POST /run with body; the answer (status checked by the caller). */
static ht_resp *run(const char *body)
{
	ht_resp *r = ht_send(S, "POST", "/run", body);
	if (r->status != 200 || !r->json || !*ht_str(r->json, "run_id") ||
	    !ht_has(r->json, "duration_ms"))
		ht_fail(r, "POST /run answers 200 with run_id and duration_ms");
	return r;
}

/* Polls GET /api/v1/dags/:dag/runs/:run until it has ended; its data. */
static json_object *wait_end(const char *dag, const char *run_id)
{
	char path[512];
	snprintf(path, sizeof path, "/api/v1/dags/%s/runs/%s", dag, run_id);
	long long end = ht_now_ms() + W;
	for (;;) {
		ht_resp *r = ht_get(S, path);
		json_object *d = ht_ok(r, 200);
		const char *st = ht_str(d, "state");
		if (!strcmp(st, "success") || !strcmp(st, "failed") || !strcmp(st, "cancelled")) {
			json_object *out = json_object_get(d);
			ht_resp_free(r);
			return out;
		}
		if (ht_now_ms() > end)
			ht_fail(r, "the run did not end");
		ht_resp_free(r);
		hr_sleep_ms(20);
	}
}

/* The XCom return_value of a task of a run, as text. malloc'd. */
static char *return_value(const char *dag, const char *run_id, const char *task)
{
	char path[512];
	snprintf(path, sizeof path, "/api/v1/dags/%s/runs/%s/tasks/%s/xcom", dag, run_id, task);
	ht_resp *r = ht_get(S, path);
	json_object *d = ht_ok(r, 200);
	json_object *x = ht_find(d, "key", "return_value");
	if (!x)
		ht_fail(r, "no return_value");
	char *v = strdup(ht_str(x, "value"));
	ht_resp_free(r);
	return v;
}

/* --- free inputs -------------------------------------------------------------- */

static void test_dag_lists_warnings(void **state)
{
	(void)state;
	ht_resp *r = ht_get(S, "/api/v1/dags/ghost");
	json_object *d = ht_ok(r, 200);
	json_object *w = ht_arr(d, "warnings");
	if (json_object_array_length(w) != 2)
		ht_fail(r, "two warnings: ghost_in and params:topn");
	expect_str(r, d, "warnings.0.file", "dags/ghost.yml");
	expect_str(r, d, "warnings.0.type", "ValueError");
	expect_str(r, d, "warnings.0.message",
		   "Pipeline input(s) {'ghost_in'} not found in the DataCatalog");
	if (ht_int(d, "warnings.0.line") != 4 || ht_int(d, "warnings.1.line") != 8)
		ht_fail(r, "warnings name the lines that read the inputs (4, 8)");
	ht_resp_free(r);
	r = ht_get(S, "/api/v1/dags/ok");
	d = ht_ok(r, 200);
	if (json_object_array_length(ht_arr(d, "warnings")) != 0)
		ht_fail(r, "a DAG whose inputs are defined has no warnings");
	ht_resp_free(r);
	passed = true;
}

static void test_run_fails_before_any_task(void **state)
{
	(void)state;
	static const char *const bodies[] = {
		"{\"pipeline_names\": [\"ghost\"]}",
		"{}", /* __default__: every DAG */
	};
	for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
		ht_resp *r = run(bodies[i]);
		expect_str(r, r->json, "status", "failure");
		expect_str(r, r->json, "error.type", "ValueError");
		expect_str(r, r->json, "error.message", MISSING);
		char path[512];
		snprintf(path, sizeof path, "/api/v1/dags/%s/runs/%s",
			 i == 0 ? "ghost" : "__default__", ht_str(r->json, "run_id"));
		ht_resp *g = ht_get(S, path);
		json_object *d = ht_ok(g, 200);
		expect_str(g, d, "state", "failed");
		if (json_object_array_length(ht_arr(d, "task_instances")) != 0)
			ht_fail(g, "no task started");
		ht_resp_free(g);
		ht_resp_free(r);
	}
	if (hr_exists(P, "ran_a") || hr_exists(P, "ran_b"))
		fail_msg("a task ran");
	/* A slice that avoids them runs; one that makes mid free does not. */
	ht_resp *r = run("{\"pipeline_names\": [\"ghost\"], \"node_names\": [\"c\"]}");
	expect_str(r, r->json, "status", "success");
	ht_resp_free(r);
	r = run("{\"pipeline_names\": [\"ghost\"], \"node_names\": [\"b\"],"
		" \"params\": {\"topn\": 1}}");
	expect_str(r, r->json, "status", "failure");
	expect_str(r, r->json, "error.message",
		   "Pipeline input(s) {'mid'} not found in the DataCatalog");
	ht_resp_free(r);
	passed = true;
}

static void test_trigger_fails_before_any_task(void **state)
{
	(void)state;
	ht_resp *r = ht_send(S, "POST", "/api/v1/dags/ghost/runs", "{\"run_id\": \"t1\"}");
	ht_ok(r, 201);
	ht_resp_free(r);
	json_object *d = wait_end("ghost", "t1");
	if (strcmp(ht_str(d, "state"), "failed") != 0 ||
	    json_object_array_length(ht_arr(d, "task_instances")) != 0)
		fail_msg("the run failed before any task: %s", json_object_to_json_string(d));
	if (strcmp(ht_str(d, "error.type"), "ValueError") != 0 ||
	    strcmp(ht_str(d, "error.message"), MISSING) != 0)
		fail_msg("the run's error is Kedro's: %s", json_object_to_json_string(d));
	json_object_put(d);
	/* The run's conf defines params:topn; the slice still needs ghost_in. */
	r = ht_send(S, "POST", "/api/v1/dags/ghost/runs",
		    "{\"run_id\": \"t2\", \"conf\": {\"topn\": 2}, \"task_ids\": [\"a\", \"b\"]}");
	ht_ok(r, 201);
	ht_resp_free(r);
	d = wait_end("ghost", "t2");
	if (strcmp(ht_str(d, "error.message"),
		   "Pipeline input(s) {'ghost_in'} not found in the DataCatalog") != 0)
		fail_msg("conf params count as defined: %s", json_object_to_json_string(d));
	json_object_put(d);
	passed = true;
}

/* --- parameters ----------------------------------------------------------------- */

static void test_runtime_params_per_run(void **state)
{
	(void)state;
	ht_resp *r = run("{\"pipeline_names\": [\"ok\"], \"node_names\": [\"size\"],"
			 " \"params\": {\"size\": 3}}");
	expect_str(r, r->json, "status", "success");
	char *v = return_value("ok", ht_str(r->json, "run_id"), "size");
	if (strcmp(v, "3") != 0)
		fail_msg("size with params {size: 3} is %s", v);
	free(v);
	ht_resp_free(r);
	r = run("{\"pipeline_names\": [\"ok\"], \"node_names\": [\"size\"]}");
	expect_str(r, r->json, "status", "success");
	v = return_value("ok", ht_str(r->json, "run_id"), "size");
	if (strcmp(v, "10") != 0)
		fail_msg("size without params is the default 10, not %s", v);
	free(v);
	ht_resp_free(r);
	/* the catalog too: a dataset's path follows the run's params */
	r = run("{\"pipeline_names\": [\"paths\"], \"params\": {\"out_dir\": \"alt\"}}");
	expect_str(r, r->json, "status", "success");
	ht_resp_free(r);
	r = run("{\"pipeline_names\": [\"paths\"]}");
	expect_str(r, r->json, "status", "success");
	ht_resp_free(r);
	if (!hr_exists(P, "alt/out.txt") || !hr_exists(P, "data/out.txt"))
		fail_msg("out_file went to alt/ with params {out_dir: alt}, else to data/");
	passed = true;
}

static void test_param_env_and_exact_numbers(void **state)
{
	(void)state;
	ht_resp *r = ht_send(S, "POST", "/api/v1/dags/ok/runs",
			     "{\"run_id\": \"n1\", \"conf\": {\"n\": 123456789012345678901234567890,"
			     " \"z\": -0, \"f\": 0.1}}");
	json_object *d = ht_ok(r, 201);
	(void)d;
	expect_body_has(r, "\"n\":123456789012345678901234567890");
	expect_body_has(r, "\"z\":-0");
	expect_body_has(r, "\"f\":0.1");
	ht_resp_free(r);
	json_object *run = wait_end("ok", "n1");
	if (strcmp(ht_str(run, "state"), "success") != 0)
		fail_msg("run n1: %s", json_object_to_json_string(run));
	json_object_put(run);
	r = ht_get(S, "/api/v1/dags/ok/runs/n1");
	ht_ok(r, 200);
	expect_body_has(r, "\"n\":123456789012345678901234567890");
	expect_body_has(r, "\"z\":-0");
	ht_resp_free(r);

	char *v = return_value("ok", "n1", "lr");
	if (strcmp(v, "0.1") != 0)
		fail_msg("PIPEWRIGHT_PARAM_MODEL_LR is %s, not 0.1", v);
	free(v);

	char *params = hr_read(P, "var/logs/ok/n1/params.json");
	if (!params || !strstr(params, "\"lr\":0.1") ||
	    !strstr(params, "\"big\":123456789012345678901234567890") ||
	    !strstr(params, "\"n\":123456789012345678901234567890") || !strstr(params, "\"z\":-0"))
		fail_msg("the params file keeps numbers as written: %s", params ? params : "(none)");
	free(params);

	r = ht_get(S, "/api/v1/dags/ok/runs/n1/tasks/xcom/xcom");
	ht_ok(r, 200);
	expect_body_has(r, "123456789012345678901234567890");
	expect_body_has(r, "\"value\":-0");
	expect_body_has(r, "\"value\":1e400");
	expect_body_has(r, "\"value\":0.1");
	ht_resp_free(r);
	passed = true;
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_dag_lists_warnings),
		T(test_run_fails_before_any_task),
		T(test_trigger_fails_before_any_task),
		T(test_runtime_params_per_run),
		T(test_param_env_and_exact_numbers),
	};
	return cmocka_run_group_tests_name("model", tests, group_setup, fx_group_teardown);
}
