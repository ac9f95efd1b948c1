/*
 * test_kedro.c - the Kedro-compatible endpoints (/health, /snapshot, /run)
 * through a real lighttpd and a real runner, field for field as DESIGN.md
 * section 6 says, on a copy of examples/iris (plus one DAG that fails).
 */
#include "fixture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>


/* A task that fails with exit status 3. */
static const char DAG_BOOM[] =
	"tasks:\n"
	"  - id: explode\n"
	"    command: \"echo going; exit 3\"\n";

/* cp -R src/. dst/ */
static void copy_tree(const char *src, const char *dst)
{
	char from[4200];
	if ((size_t)snprintf(from, sizeof from, "%s/.", src) >= sizeof from)
		fail_msg("path too long: %s", src);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		fail_msg("fork: %s", strerror(errno));
	if (pid == 0) {
		execlp("cp", "cp", "-R", from, dst, (char *)NULL);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			fail_msg("waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("cp -R %s %s failed", from, dst);
}

static int group_setup(void **state)
{
	(void)state;
	char src[4096];
	P = hr_project_new(2);
	snprintf(src, sizeof src, "%s/examples/iris", ht_srcdir());
	copy_tree(src, P->dir);
	hr_dag(P, "boom", DAG_BOOM);
	fx_start(NULL, true);
	return 0;
}


/* --- helpers ---------------------------------------------------------------- */

static void expect_str(ht_resp *r, json_object *o, const char *path, const char *want)
{
	json_object *v = ht_at(o, path);
	if (!v || !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), want) != 0) {
		char what[1024];
		snprintf(what, sizeof what, "%s is not \"%s\"", path, want);
		ht_fail(r, what);
	}
}

static void expect_strs(ht_resp *r, json_object *o, const char *path, const char *want)
{
	json_object *a = ht_at(o, path);
	if (!a || !json_object_is_type(a, json_type_array))
		ht_fail(r, path);
	char *got = ht_arr_join(a);
	if (strcmp(got, want) != 0) {
		char what[1024];
		snprintf(what, sizeof what, "%s is [%s], expected [%s]", path, got, want);
		free(got);
		ht_fail(r, what);
	}
	free(got);
}

/* Same strings, any order. */
static void expect_set(ht_resp *r, json_object *o, const char *path, const char *want)
{
	json_object *a = ht_at(o, path);
	if (!a || !json_object_is_type(a, json_type_array))
		ht_fail(r, path);
	size_t n = 0;
	char buf[1024];
	snprintf(buf, sizeof buf, "%s", want);
	for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		n++;
		if (!ht_arr_has_str(a, t)) {
			char what[1200];
			snprintf(what, sizeof what, "%s lacks %s (expected {%s})", path, t, want);
			ht_fail(r, what);
		}
	}
	if (json_object_array_length(a) != n) {
		char what[1200];
		snprintf(what, sizeof what, "%s is not exactly {%s}", path, want);
		ht_fail(r, what);
	}
}

static bool json_keys_only(json_object *o, const char *const *keys, size_t n)
{
	json_object_object_foreach(o, k, v) {
		(void)v;
		bool known = false;
		for (size_t i = 0; i < n; i++)
			if (!strcmp(k, keys[i]))
				known = true;
		if (!known)
			return false;
	}
	return true;
}

/* POST /run; expects HTTP 200 with run_id and duration_ms. */
static ht_resp *run(const char *body)
{
	ht_resp *r = ht_send(S, "POST", "/run", body);
	if (r->status != 200 || !r->json || !json_object_is_type(r->json, json_type_object))
		ht_fail(r, "POST /run answers 200 with a JSON object");
	json_object *id = ht_at(r->json, "run_id");
	if (!id || !json_object_is_type(id, json_type_string) || !*json_object_get_string(id))
		ht_fail(r, "every /run answer carries run_id");
	json_object *ms = ht_at(r->json, "duration_ms");
	if (!ms || !(json_object_is_type(ms, json_type_int) ||
		     json_object_is_type(ms, json_type_double)) ||
	    json_object_get_double(ms) < 0)
		ht_fail(r, "every /run answer carries duration_ms");
	return r;
}

/* POST /run; expects status failure with error type and message. */
static void run_fails(const char *body, const char *type, const char *message,
		      bool prefix_only)
{
	ht_resp *r = run(body);
	expect_str(r, r->json, "status", "failure");
	expect_str(r, r->json, "error.type", type);
	const char *msg = ht_str(r->json, "error.message");
	bool same = prefix_only ? strncmp(msg, message, strlen(message)) == 0
				: strcmp(msg, message) == 0;
	if (!same) {
		char what[1024];
		snprintf(what, sizeof what, "error.message is not %s\"%s\"",
			 prefix_only ? "like " : "", message);
		ht_fail(r, what);
	}
	static const char *const keys[] = {"status", "run_id", "duration_ms", "error"};
	if (!json_keys_only(r->json, keys, 4))
		ht_fail(r, "a failure has status, run_id, duration_ms, error only");
	ht_resp_free(r);
}

/* --- /health, /snapshot ----------------------------------------------------- */

static void test_health(void **state)
{
	(void)state;
	ht_resp *r = ht_get(S, "/health");
	if (r->status != 200 || !r->json)
		ht_fail(r, "200 JSON");
	expect_str(r, r->json, "status", "healthy");
	if (!*ht_str(r->json, "kedro_version"))
		ht_fail(r, "kedro_version");
	static const char *const keys[] = {"status", "kedro_version"};
	if (!json_keys_only(r->json, keys, 2))
		ht_fail(r, "no other fields (no envelope)");
	ht_resp_free(r);
	passed = true;
}

static void test_snapshot(void **state)
{
	(void)state;
	ht_resp *r = ht_get(S, "/snapshot");
	json_object *j = r->json;
	if (r->status != 200 || !j)
		ht_fail(r, "200 JSON");
	expect_str(r, j, "status", "success");
	static const char *const keys[] = {"status", "metadata", "pipelines",
					   "datasets", "parameters"};
	if (!json_keys_only(j, keys, 5))
		ht_fail(r, "only status, metadata, pipelines, datasets, parameters");
	expect_str(r, j, "metadata.project_name", "Iris");
	expect_str(r, j, "metadata.package_name", "iris");
	if (!*ht_str(j, "metadata.kedro_version"))
		ht_fail(r, "metadata.kedro_version");

	json_object *pl = ht_arr(j, "pipelines");
	const char *names[] = {"__default__", "boom", "data_quality", "hello",
			       "iris_training"};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (!ht_find(pl, "name", names[i]))
			ht_fail(r, "a pipeline is missing (__default__ and one per DAG)");
	json_object *def = ht_find(pl, "name", "__default__");
	/* __default__ is the union of every DAG's tasks. */
	if (json_object_array_length(ht_arr(def, "nodes")) != 5 + 3 + 2 + 1)
		ht_fail(r, "__default__ has every node (11)");

	json_object *tr = ht_find(pl, "name", "iris_training");
	json_object *nodes = ht_arr(tr, "nodes");
	if (json_object_array_length(nodes) != 5)
		ht_fail(r, "iris_training has 5 nodes");
	json_object *split = ht_find(nodes, "name", "split_data");
	if (!split)
		ht_fail(r, "node split_data");
	if (!*ht_str(split, "func_name"))
		ht_fail(r, "func_name");
	if (!ht_has(split, "namespace") || ht_at(split, "namespace") != NULL)
		ht_fail(r, "namespace null");
	expect_strs(r, split, "tags", "prep");
	expect_strs(r, split, "inputs", "example_iris_data,params:test_size,params:random_state");
	expect_strs(r, split, "outputs", "X_train,X_test");
	if (!strstr(ht_str(split, "source.filepath"), "iris_training.yml"))
		ht_fail(r, "source.filepath names the DAG file");
	long long ls = ht_int(split, "source.line_start"), le = ht_int(split, "source.line_end");
	if (ls < 1 || le < ls)
		ht_fail(r, "source.line_start <= line_end");
	/* Pipeline inputs: read, never written (params too); outputs: never read. */
	expect_set(r, tr, "inputs",
		   "example_iris_data,params:test_size,params:random_state,"
		   "params:min_accuracy,params:report_title");
	expect_set(r, tr, "outputs", "report");

	json_object *dq = ht_find(pl, "name", "data_quality");
	json_object *chk = ht_find(ht_arr(dq, "nodes"), "name", "quality.check_schema");
	if (!chk)
		ht_fail(r, "a namespaced node is named <namespace>.<id>");
	expect_str(r, chk, "namespace", "quality");

	json_object *ds = ht_at(j, "datasets.example_iris_data");
	if (!ds)
		ht_fail(r, "datasets.example_iris_data");
	expect_str(r, ds, "name", "example_iris_data");
	expect_str(r, ds, "type", "pandas.CSVDataset");
	expect_str(r, ds, "filepath", "data/01_raw/iris.csv");
	expect_str(r, j, "datasets.model.filepath", "data/06_models/model.csv");

	/* Sorted top-level keys of the merged parameters (base, then local). */
	expect_strs(r, j, "parameters", "random_state,report_title,test_size");
	ht_resp_free(r);
	passed = true;
}

static void test_snapshot_failure(void **state)
{
	(void)state;
	hr_project *q = hr_project_new(1);
	char *catalog = hr_path(q, "conf/base/catalog.yml");
	if (unlink(catalog) != 0)
		fail_msg("unlink %s: %s", catalog, strerror(errno));
	free(catalog);
	ht_server *s = ht_start(q->dir, NULL);
	ht_resp *r = ht_get(s, "/snapshot");
	if (r->status != 200 || !r->json) {
		ht_dump_logs(s);
		ht_fail(r, "a config error is HTTP 200 JSON");
	}
	expect_str(r, r->json, "status", "failure");
	expect_str(r, r->json, "error.type", "MissingConfigException");
	expect_str(r, r->json, "error.message",
		   "No config files found matching the pattern(s) 'catalog*'");
	static const char *const keys[] = {"status", "error"};
	if (!json_keys_only(r->json, keys, 2))
		ht_fail(r, "no data fields on failure");
	ht_resp_free(r);
	ht_stop(s);
	hr_pass(q);
	hr_project_free(q);
	passed = true;
}

/* --- /run ------------------------------------------------------------------- */

static void test_run_success(void **state)
{
	(void)state;
	ht_resp *r = run("{\"pipeline_names\": [\"hello\"]}");
	expect_str(r, r->json, "status", "success");
	if (ht_has(r->json, "error"))
		ht_fail(r, "success has no error key");
	static const char *const keys[] = {"status", "run_id", "duration_ms"};
	if (!json_keys_only(r->json, keys, 3))
		ht_fail(r, "success has status, run_id, duration_ms only");
	/* The run belongs to the DAG named in pipeline_names. */
	char path[512];
	snprintf(path, sizeof path, "/api/v1/dags/hello/runs/%s",
		 ht_str(r->json, "run_id"));
	ht_resp *g = ht_get(S, path);
	json_object *d = ht_ok(g, 200);
	expect_str(g, d, "state", "success");
	if (json_object_array_length(ht_arr(d, "task_instances")) != 2)
		ht_fail(g, "hello ran both tasks");
	ht_resp_free(g);
	ht_resp_free(r);

	/* Slicing and a runner by its dotted name. */
	r = run("{\"pipeline_names\": [\"hello\"], \"node_names\": [\"greet\"],"
		" \"runner\": \"kedro.runner.SequentialRunner\", \"params\": {\"x\": 1}}");
	expect_str(r, r->json, "status", "success");
	snprintf(path, sizeof path, "/api/v1/dags/hello/runs/%s",
		 ht_str(r->json, "run_id"));
	g = ht_get(S, path);
	d = ht_ok(g, 200);
	if (json_object_array_length(ht_arr(d, "task_instances")) != 1 ||
	    strcmp(ht_str(d, "task_instances.0.task_id"), "greet") != 0)
		ht_fail(g, "node_names [greet]: only greet ran");
	ht_resp_free(g);
	ht_resp_free(r);

	/* Several pipelines: the run's dag_id is their names joined by '+'. */
	r = run("{\"pipeline_names\": [\"hello\", \"boom\"], \"node_names\": [\"greet\"],"
		" \"runner\": \"ThreadRunner\"}");
	expect_str(r, r->json, "status", "success");
	snprintf(path, sizeof path, "/api/v1/dags/hello+boom/runs/%s",
		 ht_str(r->json, "run_id"));
	g = ht_get(S, path);
	d = ht_ok(g, 200);
	expect_str(g, d, "dag_id", "hello+boom");
	ht_resp_free(g);
	ht_resp_free(r);
	passed = true;
}

static void test_run_task_fails(void **state)
{
	(void)state;
	ht_resp *r = run("{\"pipeline_names\": [\"boom\"]}");
	expect_str(r, r->json, "status", "failure");
	const char *type = ht_str(r->json, "error.type");
	const char *msg = ht_str(r->json, "error.message");
	if (!*type || !strstr(msg, "explode") || !strstr(msg, "3"))
		ht_fail(r, "the error names the task (explode) and its exit status (3)");
	ht_resp_free(r);
	passed = true;
}

static void test_run_kedro_errors(void **state)
{
	(void)state;
	run_fails("{\"pipeline_names\": [\"x\"]}", "ValueError",
		  "Failed to find the pipeline named 'x'. It needs to be generated and "
		  "returned by the 'register_pipelines' function. ", false);
	run_fails("{\"pipeline_names\": [\"hello\"], \"node_names\": [\"x\"]}", "ValueError",
		  "Pipeline does not contain nodes named ['x'].", false);
	run_fails("{\"from_inputs\": [\"W\"]}", "ValueError",
		  "Pipeline does not contain datasets named ['W']", false);
	run_fails("{\"pipeline_names\": [\"hello\"], \"tags\": [\"nope\"]}", "ValueError",
		  "Pipeline contains no nodes after applying all provided filters. Please "
		  "ensure that at least one pipeline with nodes has been defined.", false);
	run_fails("{\"pipeline_names\": [\"hello\"], \"runner\": \"os.system\"}", "ValueError",
		  "Runner module 'os' is not allowed.", true);
	run_fails("{\"pipeline_names\": [\"hello\"], \"runner\": \"FooRunner\"}",
		  "AttributeError", "module 'kedro.runner' has no attribute 'FooRunner'",
		  false);
	passed = true;
}

/*
 * "The call queues a run like any other and answers when it has finished"
 * (DESIGN.md 6), and a pipeline that cannot be sliced "fails the run at
 * once" (docs/runner.md): the run_id of a Kedro error names a failed run.
 */
static void test_run_errors_are_runs(void **state)
{
	(void)state;
	ht_resp *r = run("{\"pipeline_names\": [\"hello\"], \"node_names\": [\"x\"]}");
	expect_str(r, r->json, "status", "failure");
	char path[512];
	snprintf(path, sizeof path, "/api/v1/dags/hello/runs/%s", ht_str(r->json, "run_id"));
	ht_resp *g = ht_get(S, path);
	json_object *d = ht_ok(g, 200);
	expect_str(g, d, "state", "failed");
	expect_str(g, d, "error.type", "ValueError");
	expect_str(g, d, "error.message", "Pipeline does not contain nodes named ['x'].");
	ht_resp_free(g);
	ht_resp_free(r);
	passed = true;
}

/* One 422 case: FastAPI's {"detail": [{type, loc, msg, input}]}. */
typedef struct bad {
	const char *body;     /* NULL: no body at all */
	const char *type;
	const char *loc;      /* joined by '.' */
	const char *msg;      /* NULL: any string */
	const char *input;    /* JSON text of the input, or NULL: not checked */
} bad;

static const bad BAD[] = {
	{"{\"env\": \"prod\"}", "extra_forbidden", "body.env",
	 "Extra inputs are not permitted", "\"prod\""},
	/* a NUL would cut the C string: "hello\0x" would run hello */
	{"{\"pipeline_names\": [\"hello\\u0000x\"]}", "value_error", "body",
	 "Value error, strings and keys must not contain a NUL character", NULL},
	{"{\"pipeline_names\\u0000x\": [\"hello\"]}", "value_error", "body", NULL, NULL},
	{"{\"conf_source\": \"/tmp\"}", "extra_forbidden", "body.conf_source",
	 "Extra inputs are not permitted", "\"/tmp\""},
	{"{\"tags\": \"a\"}", "list_type", "body.tags", "Input should be a valid list", "\"a\""},
	{"{\"node_names\": {}}", "list_type", "body.node_names", NULL, NULL},
	{"{\"tags\": [1]}", "string_type", "body.tags.0", "Input should be a valid string", "1"},
	{"{\"runner\": 5}", "string_type", "body.runner", "Input should be a valid string", "5"},
	{"{\"is_async\": [1]}", "bool_type", "body.is_async", NULL, NULL},
	{"{\"only_missing_outputs\": {}}", "bool_type", "body.only_missing_outputs", NULL, NULL},
	{"{\"params\": [1]}", "dict_type", "body.params", "Input should be a valid dictionary", NULL},
	{"{\"load_versions\": \"v1\"}", "dict_type", "body.load_versions", NULL, "\"v1\""},
	{"{\"load_versions\": {\"a\": 1}}", "string_type", "body.load_versions.a", NULL, NULL},
	{NULL, "missing", "body", "Field required", NULL},
	{"{bad", "json_invalid", NULL, "JSON decode error", NULL},
	{"{\"runner\": \"not a dotted.name!\"}", "value_error", "body.runner", NULL, NULL},
	/* pipeline names become a run's dag_id: DAG ids only */
	{"{\"pipeline_names\": [\"\"]}", "string_too_short", "body.pipeline_names.0",
	 "String should have at least 1 character", "\"\""},
	{"{\"pipeline_names\": [\"hello\", \"../x\"]}", "string_pattern_mismatch",
	 "body.pipeline_names.1", "String should match pattern '^[A-Za-z0-9_][A-Za-z0-9_.-]*$'",
	 "\"../x\""},
	{"{\"pipeline_names\": [\"a+b\"]}", "string_pattern_mismatch", "body.pipeline_names.0",
	 NULL, NULL},
	{"{\"pipeline_names\": [\"\xff\xfe\"]}", "json_invalid", NULL, "JSON decode error", NULL},
	{"{\"pipeline_names\": [\"\xc0\xaf\"]}", "json_invalid", NULL, "JSON decode error", NULL},
	/* a load version becomes a directory name under the dataset's path */
	{"{\"load_versions\": {\"a\": \"../../etc\"}}", "string_pattern_mismatch",
	 "body.load_versions.a", "String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.:+-]*$'",
	 "\"../../etc\""},
	{"{\"load_versions\": {\"a\": \"..\"}}", "string_pattern_mismatch",
	 "body.load_versions.a", NULL, NULL},
	{"{\"load_versions\": {\"a\": \"x/y\"}}", "string_pattern_mismatch",
	 "body.load_versions.a", NULL, NULL},
	{"{\"load_versions\": {\"a\": \"\"}}", "string_too_short", "body.load_versions.a",
	 NULL, NULL},
};

static void test_run_validation(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof BAD / sizeof *BAD; i++) {
		const bad *b = &BAD[i];
		ht_resp *r = b->body ? ht_send(S, "POST", "/run", b->body)
				     : ht_req(S, "POST", "/run", NULL, NULL, 0);
		if (r->status != 422 || !r->json)
			ht_fail(r, "422 JSON");
		json_object *detail = ht_arr(r->json, "detail");
		if (json_object_array_length(detail) < 1)
			ht_fail(r, "detail has an item");
		json_object *e = json_object_array_get_idx(detail, 0);
		expect_str(r, e, "type", b->type);
		json_object *loc = ht_arr(e, "loc");
		if (json_object_array_length(loc) < 1 ||
		    strcmp(json_object_get_string(json_object_array_get_idx(loc, 0)), "body"))
			ht_fail(r, "loc starts with \"body\"");
		if (b->loc) {
			char got[256] = "";
			for (size_t k = 0; k < json_object_array_length(loc); k++) {
				if (k)
					strcat(got, ".");
				strncat(got, json_object_get_string(json_object_array_get_idx(loc, k)),
					64);
			}
			if (strcmp(got, b->loc) != 0) {
				char what[512];
				snprintf(what, sizeof what, "loc is %s, expected %s", got, b->loc);
				ht_fail(r, what);
			}
		}
		if (b->msg)
			expect_str(r, e, "msg", b->msg);
		else
			ht_str(e, "msg");
		if (!ht_has(e, "input"))
			ht_fail(r, "an item has input");
		if (b->input) {
			json_object *in = ht_at(e, "input");
			const char *got = in ? json_object_to_json_string_ext(
						in, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
					     : "null";
			if (strcmp(got, b->input) != 0)
				ht_fail(r, "input is the offending value");
		}
		ht_resp_free(r);
	}
	passed = true;
}

/* The number of runs of every DAG, from GET /api/v1/metrics. */
static long long all_runs(void)
{
	ht_resp *r = ht_get(S, "/api/v1/metrics");
	json_object *runs = ht_at(r->json, "data.runs");
	long long n = 0;
	if (r->status != 200 || !json_object_is_type(runs, json_type_object))
		ht_fail(r, "metrics has data.runs");
	json_object_object_foreach(runs, state, count) {
		(void)state;
		n += json_object_get_int64(count);
	}
	ht_resp_free(r);
	return n;
}

/*
 * A 200,000-character pipeline name is a 422 string_too_long, and none of
 * the refused names of test_run_validation became a run.
 */
static void test_run_long_name(void **state)
{
	(void)state;
	size_t n = 200000;
	char *body = malloc(n + 64);
	assert_non_null(body);
	int k = snprintf(body, n + 64, "{\"pipeline_names\": [\"");
	memset(body + k, 'a', n);
	strcpy(body + k + n, "\"]}");
	ht_resp *r = ht_send(S, "POST", "/run", body);
	free(body);
	if (r->status != 422 || !r->json)
		ht_fail(r, "422 JSON");
	json_object *e = json_object_array_get_idx(ht_arr(r->json, "detail"), 0);
	expect_str(r, e, "type", "string_too_long");
	expect_str(r, e, "msg", "String should have at most 250 characters");
	if (json_object_get_int(ht_at(e, "ctx.max_length")) != 250)
		ht_fail(r, "ctx.max_length is 250");
	ht_resp_free(r);
	long long before = all_runs();
	for (size_t i = 0; i < sizeof BAD / sizeof *BAD; i++)
		if (BAD[i].body)
			ht_resp_free(ht_send(S, "POST", "/run", BAD[i].body));
	assert_int_equal(all_runs(), before);   /* a refused /run queues no run */
	passed = true;
}

/*
 * A DAG file written just before the call is the one that runs: the API
 * checks the files before a write, the runner before it claims new work
 * (each otherwise looks at most every 0.1 s / 2 s). First a new file, then
 * the same file with another task.
 */
static void test_run_fresh_dag_file(void **state)
{
	(void)state;
	char path[512];
	hr_dag(P, "fresh", "tasks:\n  - id: v1\n    command: [\"true\"]\n");
	ht_resp *r = run("{\"pipeline_names\": [\"fresh\"]}");
	expect_str(r, r->json, "status", "success");
	ht_resp_free(r);

	hr_dag(P, "fresh", "tasks:\n  - id: v1\n    command: [\"true\"]\n"
	       "  - id: v2\n    upstream: [v1]\n    command: \"echo second\"\n");
	r = run("{\"pipeline_names\": [\"fresh\"], \"node_names\": [\"v2\"]}");
	expect_str(r, r->json, "status", "success");
	snprintf(path, sizeof path, "/api/v1/dags/fresh/runs/%s/tasks/v2/logs",
		 ht_str(r->json, "run_id"));
	ht_resp *g = ht_get(S, path);
	if (g->status != 200 || !g->body || !strstr(g->body, "second"))
		ht_fail(g, "v2 of the new file ran");
	ht_resp_free(g);
	ht_resp_free(r);

	/*
	 * The same through the Airflow-style trigger of a DAG new to the API,
	 * with no body at all (every field is optional: {}).
	 */
	hr_dag(P, "fresh2", "tasks:\n  - id: only\n    command: [\"true\"]\n");
	r = ht_req(S, "POST", "/api/v1/dags/fresh2/runs", NULL, NULL, 0);
	char *id = strdup(ht_str(ht_ok(r, 201), "run_id"));
	ht_resp_free(r);
	const char *end = hr_wait_run_end(P, "fresh2", id, 30000);
	if (strcmp(end, "success") != 0)
		fail_msg("fresh2/%s ended %s, not success", id, end);
	free(id);
	passed = true;
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_health),
		T(test_snapshot),
		T(test_snapshot_failure),
		T(test_run_success),
		T(test_run_task_fails),
		T(test_run_kedro_errors),
		T(test_run_errors_are_runs),
		T(test_run_validation),
		T(test_run_long_name),
		T(test_run_fresh_dag_file),
	};
	return cmocka_run_group_tests_name("kedro", tests, group_setup, fx_group_teardown);
}
