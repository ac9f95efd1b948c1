/* test_dag.c - the DAG model: reading, validation, edges, order, union, io. */
#include "testhelp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dag.h"
#include "doc.h"

#define FILE_NAME "dags/t.yml"

/* The two DAGs agree: both NULL, or the same tasks with the same values. */
static void expect_same(const pw_dag *a, const pw_dag *b)
{
	if (!a || !b) {
		assert_true(!a && !b);
		return;
	}
	assert_int_equal(a->n_tasks, b->n_tasks);
	for (size_t i = 0; i < a->n_tasks; i++) {
		const pw_task *x = &a->tasks[i], *y = &b->tasks[i];
		assert_string_equal(x->name, y->name);
		assert_string_equal(x->pool, y->pool);
		assert_int_equal(x->retries, y->retries);
		assert_int_equal(x->retry_delay, y->retry_delay);
		assert_int_equal(x->timeout, y->timeout);
		assert_int_equal(x->pool_slots, y->pool_slots);
		assert_int_equal(x->trigger_rule, y->trigger_rule);
		assert_int_equal(x->line_start, y->line_start);
		assert_int_equal(x->line_end, y->line_end);
		assert_int_equal(x->n_up, y->n_up);
		assert_int_equal(x->n_down, y->n_down);
	}
}

/*
 * Builds DAG id from text (YAML, or JSON when as_json) both ways: parsed
 * whole then pw_dag_from_doc, and streamed by pw_dag_parse. They must
 * agree on every error (line and message) and task; returns the second.
 */
static pw_dag *build_as(const char *id, const char *text, int as_json,
			pw_errors *errs)
{
	const char *file = as_json ? "dags/t.json" : FILE_NAME;
	pw_errors perr = { 0 }, whole_errs = { 0 };
	pw_doc *doc = pw_doc_parse(text, strlen(text), file, as_json, &perr);
	if (!doc) {
		for (size_t i = 0; i < perr.n; i++)
			print_error("doc: %d: %s\n", perr.v[i].line,
				    perr.v[i].message);
		pw_errors_free(&perr);
		fail_msg("pw_doc_parse failed");
	}
	pw_dag *whole = pw_dag_from_doc(id, doc, &whole_errs);
	pw_doc_free(doc);
	size_t before = errs->n;
	pw_dag *dag = pw_dag_parse(id, text, strlen(text), file, as_json, errs);
	assert_int_equal(errs->n - before, whole_errs.n);
	for (size_t i = 0; i < whole_errs.n; i++) {
		assert_int_equal(errs->v[before + i].line, whole_errs.v[i].line);
		assert_string_equal(errs->v[before + i].message,
				    whole_errs.v[i].message);
	}
	expect_same(whole, dag);
	pw_dag_free(whole);
	pw_errors_free(&whole_errs);
	return dag;
}

static pw_dag *build(const char *yaml, pw_errors *errs)
{
	return build_as("t", yaml, 0, errs);
}

/* A DAG that must be valid. */
static pw_dag *build_ok(const char *yaml)
{
	pw_errors errs = { 0 };
	pw_dag *dag = build(yaml, &errs);
	for (size_t i = 0; i < errs.n; i++)
		print_error("unexpected: %d: %s\n", errs.v[i].line,
			    errs.v[i].message);
	assert_int_equal(errs.n, 0);
	assert_non_null(dag);
	pw_errors_free(&errs);
	return dag;
}

static void dump_errors(const pw_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		print_error("  %s:%d: %s\n",
			    errs->v[i].file ? errs->v[i].file : "(null)",
			    errs->v[i].line, errs->v[i].message);
}

/* Index of the error at line whose message contains text, or fails. */
static size_t find_error(const pw_errors *errs, int line, const char *text)
{
	for (size_t i = 0; i < errs->n; i++)
		if (errs->v[i].line == line &&
		    strstr(errs->v[i].message, text))
			return i;
	dump_errors(errs);
	fail_msg("no error at line %d containing \"%s\"", line, text);
	return 0;
}

/* The DAG must fail with exactly one error, at line, containing text. */
static void expect_error(const char *yaml, int line, const char *text)
{
	pw_errors errs = { 0 };
	pw_dag *dag = build(yaml, &errs);
	assert_null(dag);
	if (errs.n != 1) {
		dump_errors(&errs);
		fail_msg("expected one error, got %zu", errs.n);
	}
	find_error(&errs, line, text);
	assert_string_equal(errs.v[0].file, FILE_NAME);
	pw_errors_free(&errs);
}

static void assert_up(const pw_task *t, size_t n, const size_t *want)
{
	assert_int_equal(t->n_up, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(t->up[i], want[i]);
}

static void assert_down(const pw_task *t, size_t n, const size_t *want)
{
	assert_int_equal(t->n_down, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(t->down[i], want[i]);
}

static void assert_order(const pw_dag *dag, const size_t *want)
{
	for (size_t i = 0; i < dag->n_tasks; i++)
		assert_int_equal(dag->order[i], want[i]);
}

static const char *env_get(const pw_task *t, const char *name)
{
	json_object *v = NULL;
	if (!json_object_object_get_ex(t->env, name, &v))
		return NULL;
	assert_true(json_object_is_type(v, json_type_string));
	return json_object_get_string(v);
}

/* ---- a valid DAG ---------------------------------------------------- */

static const char *const valid_yaml =
	"description: Train the model\n"                     /*  1 */
	"schedule: \"0 3 * * *\"\n"                          /*  2 */
	"paused: true\n"                                     /*  3 */
	"max_active_runs: 2\n"                               /*  4 */
	"tags: [ml, nightly]\n"                              /*  5 */
	"params: {n_splits: 3, model: {depth: 4}}\n"         /*  6 */
	"defaults: {retries: 1, timeout: 3600, pool: small}\n" /* 7 */
	"tasks:\n"                                           /*  8 */
	"  - id: fetch\n"                                    /*  9 */
	"    command: \"curl -o data.csv http://x\"\n"       /* 10 */
	"    outputs: [raw]\n"                               /* 11 */
	"  - id: split\n"                                    /* 12 */
	"    namespace: prep\n"                              /* 13 */
	"    command: [\"sh\", \"scripts/split.sh\"]\n"      /* 14 */
	"    inputs: [raw, \"params:test_size\"]\n"          /* 15 */
	"    outputs: [X_train, X_test]\n"                   /* 16 */
	"    retries: 0\n"                                   /* 17 */
	"    retry_delay: 5\n"                               /* 18 */
	"    pool_slots: 2\n"                                /* 19 */
	"    trigger_rule: all_done\n"                       /* 20 */
	"    env: {LC_ALL: C, N: 3, F: true, R: 1.5}\n"      /* 21 */
	"    cwd: sub/dir\n"                                 /* 22 */
	"    tags: [prep]\n"                                 /* 23 */
	"  - id: train\n"                                    /* 24 */
	"    command: [python, train.py]\n"                  /* 25 */
	"    inputs: [X_train]\n"                            /* 26 */
	"    upstream: [fetch]\n"                            /* 27 */
	"    outputs: [model]\n"                             /* 28 */
	"    namespace: null\n"                              /* 29 */
	"    timeout: 0\n";                                  /* 30 */

static void test_valid_dag(void **state)
{
	(void)state;
	pw_dag *dag = build_ok(valid_yaml);

	assert_string_equal(dag->id, "t");
	assert_string_equal(dag->file, FILE_NAME);
	assert_string_equal(dag->description, "Train the model");
	assert_string_equal(dag->schedule, "0 3 * * *");
	assert_true(dag->paused);
	assert_int_equal(dag->max_active_runs, 2);
	assert_int_equal(dag->tags.n, 2);
	assert_string_equal(dag->tags.v[0], "ml");
	assert_string_equal(dag->tags.v[1], "nightly");
	json_object *v = NULL;
	assert_true(json_object_object_get_ex(dag->params, "n_splits", &v));
	assert_int_equal(json_object_get_int(v), 3);
	assert_true(json_object_object_get_ex(dag->params, "model", &v));
	assert_true(json_object_is_type(v, json_type_object));
	assert_int_equal(dag->n_tasks, 3);

	const pw_task *fetch = &dag->tasks[0], *split = &dag->tasks[1],
		      *train = &dag->tasks[2];
	/* string command -> shell; defaults from `defaults` */
	assert_string_equal(fetch->id, "fetch");
	assert_string_equal(fetch->name, "fetch");
	assert_null(fetch->namespace_);
	assert_null(fetch->argv);
	assert_string_equal(fetch->shell, "curl -o data.csv http://x");
	assert_int_equal(fetch->retries, 1);
	assert_int_equal(fetch->retry_delay, 10);
	assert_int_equal(fetch->timeout, 3600);
	assert_string_equal(fetch->pool, "small");
	assert_int_equal(fetch->pool_slots, 1);
	assert_int_equal(fetch->trigger_rule, PW_TRIGGER_ALL_SUCCESS);
	assert_null(fetch->cwd);
	assert_null(fetch->env); /* none set: no object */
	assert_int_equal(fetch->line_start, 9);
	assert_true(fetch->line_end >= 11);

	/* list command -> argv; task values override the defaults */
	assert_string_equal(split->id, "split");
	assert_string_equal(split->namespace_, "prep");
	assert_string_equal(split->name, "prep.split");
	assert_null(split->shell);
	assert_non_null(split->argv);
	assert_string_equal(split->argv[0], "sh");
	assert_string_equal(split->argv[1], "scripts/split.sh");
	assert_null(split->argv[2]);
	assert_int_equal(split->retries, 0);
	assert_int_equal(split->retry_delay, 5);
	assert_int_equal(split->timeout, 3600);
	assert_int_equal(split->pool_slots, 2);
	assert_int_equal(split->trigger_rule, PW_TRIGGER_ALL_DONE);
	assert_string_equal(split->cwd, "sub/dir");
	assert_int_equal(split->inputs.n, 2);
	assert_string_equal(split->inputs.v[1], "params:test_size");
	assert_int_equal(split->outputs.n, 2);
	assert_int_equal(split->tags.n, 1);
	assert_string_equal(split->tags.v[0], "prep");
	/* env values stored as strings */
	assert_string_equal(env_get(split, "LC_ALL"), "C");
	assert_string_equal(env_get(split, "N"), "3");
	assert_string_equal(env_get(split, "F"), "true");
	assert_string_equal(env_get(split, "R"), "1.5");
	assert_int_equal(split->line_start, 12);
	assert_true(split->line_end >= 23 && split->line_end <= 24);

	assert_string_equal(train->name, "train");
	assert_null(train->namespace_);
	assert_string_equal(train->argv[0], "python");
	assert_int_equal(train->timeout, 0);
	assert_int_equal(train->upstream.n, 1);

	/* edges: split reads raw (fetch); train reads X_train (split) and
	 * names fetch explicitly */
	assert_up(fetch, 0, NULL);
	assert_up(split, 1, (size_t[]){ 0 });
	assert_up(train, 2, (size_t[]){ 0, 1 });
	assert_down(fetch, 2, (size_t[]){ 1, 2 });
	assert_down(split, 1, (size_t[]){ 2 });
	assert_down(train, 0, NULL);
	assert_order(dag, (size_t[]){ 0, 1, 2 });

	assert_int_equal(pw_dag_task_index(dag, "prep.split"), 1);
	assert_int_equal(pw_dag_task_index(dag, "split"), -1);
	assert_int_equal(pw_dag_task_index(dag, "train"), 2);
	pw_dag_free(dag);
}

static void test_minimal_defaults(void **state)
{
	(void)state;
	pw_dag *dag = build_ok("tasks:\n  - {id: a, command: [\"true\"]}\n");

	assert_string_equal(dag->description, "");
	assert_null(dag->schedule);
	assert_false(dag->paused);
	assert_int_equal(dag->max_active_runs, 16);
	assert_int_equal(dag->tags.n, 0);
	assert_non_null(dag->params);
	assert_int_equal(json_object_object_length(dag->params), 0);
	const pw_task *a = &dag->tasks[0];
	assert_int_equal(a->retries, 0);
	assert_int_equal(a->retry_delay, 10);
	assert_int_equal(a->timeout, 0);
	assert_string_equal(a->pool, "default_pool");
	assert_int_equal(a->pool_slots, 1);
	assert_int_equal(a->trigger_rule, PW_TRIGGER_ALL_SUCCESS);
	assert_null(a->env);
	assert_int_equal(dag->order[0], 0);
	pw_dag_free(dag);

	/* null schedule, macro schedule, defaults for every key */
	dag = build_ok("schedule: null\n"
		       "tasks:\n  - {id: a, command: x}\n");
	assert_null(dag->schedule);
	pw_dag_free(dag);
	dag = build_ok("schedule: \"@daily\"\n"
		       "defaults: {retries: 3, retry_delay: 1, timeout: 9,"
		       " pool: p1, pool_slots: 4, trigger_rule: one_failed}\n"
		       "tasks:\n  - {id: a, command: x}\n");
	assert_string_equal(dag->schedule, "@daily");
	a = &dag->tasks[0];
	assert_int_equal(a->retries, 3);
	assert_int_equal(a->retry_delay, 1);
	assert_int_equal(a->timeout, 9);
	assert_string_equal(a->pool, "p1");
	assert_int_equal(a->pool_slots, 4);
	assert_int_equal(a->trigger_rule, PW_TRIGGER_ONE_FAILED);
	pw_dag_free(dag);

	/* `defaults` apply wherever they appear in the file; null lists and
	 * mappings mean empty */
	dag = build_ok("tasks:\n"
		       "  - id: a\n"
		       "    command: x\n"
		       "    inputs:\n"
		       "    env: null\n"
		       "defaults: {retries: 7}\n"
		       "params: null\n");
	assert_int_equal(dag->tasks[0].retries, 7);
	assert_int_equal(dag->tasks[0].inputs.n, 0);
	assert_null(dag->tasks[0].env);
	assert_non_null(dag->params);
	pw_dag_free(dag);
}

static void test_topo_order_deterministic(void **state)
{
	(void)state;
	pw_dag *dag = build_ok("tasks:\n"
			       "  - {id: c, command: x, upstream: [b]}\n"
			       "  - {id: a, command: x}\n"
			       "  - {id: b, command: x, upstream: [a]}\n"
			       "  - {id: d, command: x}\n"
			       "  - {id: e, command: x, inputs: [out_d]}\n"
			       "  - {id: f, command: x, outputs: [out_d]}\n");
	/* ready tasks go in file order: a, then b (made ready), c, d, f, e */
	assert_order(dag, (size_t[]){ 1, 2, 0, 3, 5, 4 });
	assert_up(&dag->tasks[4], 1, (size_t[]){ 5 });
	assert_down(&dag->tasks[5], 1, (size_t[]){ 4 });
	pw_dag_free(dag);

	/* duplicates in upstream/inputs and a dataset + explicit edge to the
	 * same task give one edge */
	dag = build_ok("tasks:\n"
		       "  - {id: a, command: x, outputs: [d1, d2]}\n"
		       "  - {id: b, command: x, inputs: [d1, d2, d1],"
		       " upstream: [a, a]}\n");
	assert_up(&dag->tasks[1], 1, (size_t[]){ 0 });
	assert_down(&dag->tasks[0], 1, (size_t[]){ 1 });
	assert_int_equal(dag->tasks[1].inputs.n, 2);
	pw_dag_free(dag);
}

static void test_json_dag(void **state)
{
	(void)state;
	pw_errors errs = { 0 };
	const char *json =
		"{\n"
		"  \"description\": \"from json\",\n"
		"  \"tasks\": [\n"
		"    {\"id\": \"a\", \"command\": [\"true\"], \"outputs\": [\"x\"]},\n"
		"    {\"id\": \"b\", \"command\": \"echo hi\", \"inputs\": [\"x\"],\n"
		"     \"env\": {\"K\": 7}}\n"
		"  ]\n"
		"}\n";
	pw_dag *dag = build_as("j", json, 1, &errs);
	assert_int_equal(errs.n, 0);
	assert_non_null(dag);
	assert_string_equal(dag->id, "j");
	assert_string_equal(dag->file, "dags/t.json");
	assert_string_equal(dag->description, "from json");
	assert_int_equal(dag->n_tasks, 2);
	assert_string_equal(dag->tasks[1].shell, "echo hi");
	assert_string_equal(env_get(&dag->tasks[1], "K"), "7");
	assert_up(&dag->tasks[1], 1, (size_t[]){ 0 });
	pw_dag_free(dag);

	const char *bad =
		"{\n"
		"  \"tasks\": [\n"
		"    {\"id\": \"a\", \"command\": \"x\",\n"
		"     \"retries\": \"two\"}\n"
		"  ]\n"
		"}\n";
	dag = build_as("j", bad, 1, &errs);
	assert_null(dag);
	assert_int_equal(errs.n, 1);
	find_error(&errs, 4, "task 'a': 'retries' must be a non-negative integer");
	assert_string_equal(errs.v[0].file, "dags/t.json");
	pw_errors_free(&errs);
}

/* ---- validation errors ---------------------------------------------- */

static void test_unknown_keys(void **state)
{
	(void)state;
	expect_error("tasks:\n"
		     "  - {id: a, command: x}\n"
		     "foo: 1\n",
		     3, "unknown key 'foo'");
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: x\n"
		     "    colour: null\n",
		     4, "unknown key 'colour' in task 'a' (allowed: id, command,");
	expect_error("defaults:\n"
		     "  retries: 1\n"
		     "  env: {A: b}\n"
		     "tasks:\n"
		     "  - {id: a, command: x}\n",
		     3, "unknown key 'env' in defaults (allowed: retries, retry_delay, timeout, "
			"pool, pool_slots, trigger_rule)");
}

static void test_wrong_types(void **state)
{
	(void)state;
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: x\n"
		     "    retries: -1\n",
		     4, "task 'a': 'retries' must be a non-negative integer");
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: x\n"
		     "    retries: two\n",
		     4, "'retries' must be a non-negative integer");
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: x\n"
		     "    timeout: 1.5\n",
		     4, "'timeout' must be a non-negative integer");
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: x\n"
		     "    pool_slots: 0\n",
		     4, "'pool_slots' must be a positive integer");
	expect_error("max_active_runs: 0\n"
		     "tasks:\n"
		     "  - {id: a, command: x}\n",
		     1, "'max_active_runs' must be a positive integer");
	expect_error("paused: \"no\"\n"
		     "tasks:\n"
		     "  - {id: a, command: x}\n",
		     1, "'paused' must be true or false");
	expect_error("description: 3\n"
		     "tasks:\n"
		     "  - {id: a, command: x}\n",
		     1, "'description' must be a string");
	expect_error("params: [1]\n"
		     "tasks:\n"
		     "  - {id: a, command: x}\n",
		     1, "'params' must be a mapping");
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: x\n"
		     "    inputs: [ok, 3]\n",
		     4, "'inputs' must be a list of non-empty strings");
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: x\n"
		     "    tags: {solo: 1}\n",
		     4, "'tags' must be a string or a list of strings");
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: []\n",
		     3, "'command' must be a non-empty list of strings");
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: [sleep, 5]\n",
		     3, "'command' must be a non-empty list of strings");
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: \"\"\n",
		     3, "'command' must be a non-empty list of strings");
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: x\n"
		     "    env: {1BAD: x}\n",
		     4, "invalid environment variable name '1BAD'");
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: x\n"
		     "    env:\n"
		     "      GOOD: 1\n"
		     "      LIST: [1]\n",
		     6, "value of 'LIST' must be a string, number or boolean");
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: x\n"
		     "    cwd: ../up\n",
		     4, "'cwd' must be a relative path without '..'");
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: x\n"
		     "    cwd: /abs\n",
		     4, "'cwd' must be a relative path");
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: x\n"
		     "    pool: \"bad pool\"\n",
		     4, "invalid pool name 'bad pool'");
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: x\n"
		     "    outputs: [\"params:x\"]\n",
		     4, "'params:x' cannot be an output");
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    namespace: \"bad ns\"\n"
		     "    command: x\n",
		     3, "invalid namespace 'bad ns'");
	expect_error("tasks:\n"
		     "  - a\n",
		     2, "task #1 must be a mapping");
	expect_error("- a\n- b\n", 1, "a DAG file must be a mapping");
}

static void test_bad_ids(void **state)
{
	(void)state;
	expect_error("tasks:\n"
		     "  - id: \"a b\"\n"
		     "    command: x\n",
		     2, "task #1: invalid task id 'a b'");
	expect_error("tasks:\n"
		     "  - {id: ok, command: x}\n"
		     "  - id: .hidden\n"
		     "    command: x\n",
		     3, "invalid task id '.hidden'");
	expect_error("tasks:\n"
		     "  - id: 12\n"
		     "    command: x\n",
		     2, "'id' must be a string");
	expect_error("tasks:\n"
		     "  - command: x\n",
		     2, "task #1: missing 'id'");

	pw_errors errs = { 0 };
	const char *text = "tasks: [{id: a, command: x}]\n";
	pw_doc *doc = pw_doc_parse(text, strlen(text), FILE_NAME, 0, &errs);
	assert_non_null(doc);
	assert_null(pw_dag_from_doc("bad id", doc, &errs));
	assert_int_equal(errs.n, 1);
	assert_non_null(strstr(errs.v[0].message, "invalid DAG id 'bad id'"));
	pw_errors_free(&errs);
	pw_doc_free(doc);
}

static void test_missing_command_and_tasks(void **state)
{
	(void)state;
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    outputs: [x]\n",
		     2, "task 'a': missing 'command'");
	expect_error("description: x\n"
		     "tasks: []\n",
		     2, "'tasks' must be a non-empty list");
	expect_error("description: x\n", 1, "missing 'tasks'");
	expect_error("tasks: {a: 1}\n", 1, "'tasks' must be a non-empty list");
}

static void test_duplicate_task(void **state)
{
	(void)state;
	expect_error("tasks:\n"
		     "  - {id: a, command: x}\n"
		     "  - {id: b, command: x}\n"
		     "  - {id: a, command: y}\n",
		     4, "duplicate task 'a' (first defined at line 2)");
	/* the same id in two namespaces is fine; the same name is not */
	pw_dag *dag = build_ok("tasks:\n"
			       "  - {id: a, namespace: n1, command: x}\n"
			       "  - {id: a, namespace: n2, command: x}\n"
			       "  - {id: b, command: x, upstream: [n2.a]}\n");
	assert_up(&dag->tasks[2], 1, (size_t[]){ 1 });
	pw_dag_free(dag);
	expect_error("tasks:\n"
		     "  - {id: a.b, command: x}\n"
		     "  - {id: b, namespace: a, command: x}\n",
		     3, "duplicate task 'a.b' (first defined at line 2)");
}

static void test_unknown_upstream(void **state)
{
	(void)state;
	expect_error("tasks:\n"
		     "  - {id: a, command: x}\n"
		     "  - id: b\n"
		     "    command: x\n"
		     "    upstream:\n"
		     "      - a\n"
		     "      - zz\n",
		     7, "task 'b': unknown upstream task 'zz'");
}

static void test_two_writers(void **state)
{
	(void)state;
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: x\n"
		     "    outputs: [x]\n"
		     "  - id: b\n"
		     "    command: x\n"
		     "    outputs:\n"
		     "      - y\n"
		     "      - x\n",
		     9, "dataset 'x' is written by both 'a' and 'b'");
}

static void test_cycles(void **state)
{
	(void)state;
	expect_error("tasks:\n"
		     "  - {id: z, command: x}\n"
		     "  - {id: a, command: x, upstream: [c]}\n"
		     "  - {id: b, command: x, upstream: [a]}\n"
		     "  - {id: c, command: x, upstream: [b]}\n"
		     "  - {id: d, command: x, upstream: [c]}\n",
		     3, "cycle: a -> b -> c -> a");
	/* through datasets */
	expect_error("tasks:\n"
		     "  - {id: a, command: x, inputs: [y], outputs: [x]}\n"
		     "  - {id: b, command: x, inputs: [x], outputs: [y]}\n",
		     2, "cycle: a -> b -> a");
	/* a task listing itself */
	expect_error("tasks:\n"
		     "  - {id: ok, command: x}\n"
		     "  - {id: a, command: x, upstream: [a]}\n",
		     3, "cycle: a -> a");
	/* reading its own output */
	expect_error("tasks:\n"
		     "  - {id: a, command: x, inputs: [d], outputs: [d]}\n",
		     2, "cycle: a -> a");

	/* two separate cycles are both reported; the rest is unaffected */
	pw_errors errs = { 0 };
	assert_null(build("tasks:\n"
			  "  - {id: p, command: x, upstream: [q]}\n"
			  "  - {id: q, command: x, upstream: [p]}\n"
			  "  - {id: r, command: x, upstream: [p]}\n"
			  "  - {id: s, command: x, upstream: [s, r]}\n",
			  &errs));
	assert_int_equal(errs.n, 2);
	find_error(&errs, 2, "cycle: p -> q -> p");
	find_error(&errs, 5, "cycle: s -> s");
	pw_errors_free(&errs);
}

static void test_bad_cron_and_trigger(void **state)
{
	(void)state;
	expect_error("description: x\n"
		     "schedule: \"61 * * * *\"\n"
		     "tasks:\n"
		     "  - {id: a, command: x}\n",
		     2, "'schedule': invalid cron expression '61 * * * *'");
	expect_error("schedule: 5\n"
		     "tasks:\n"
		     "  - {id: a, command: x}\n",
		     1, "'schedule' must be a cron expression");
	expect_error("tasks:\n"
		     "  - id: a\n"
		     "    command: x\n"
		     "    trigger_rule: sometimes\n",
		     4, "unknown trigger rule 'sometimes'");
	expect_error("defaults: {trigger_rule: never}\n"
		     "tasks:\n"
		     "  - {id: a, command: x}\n",
		     1, "defaults: unknown trigger rule 'never'");
}

static void test_many_errors(void **state)
{
	(void)state;
	pw_errors errs = { 0 };
	pw_dag *dag = build("tasks:\n"                                   /* 1 */
			    "  - id: a\n"                                /* 2 */
			    "    command: x\n"                           /* 3 */
			    "    retries: many\n"                        /* 4 */
			    "    upstream: [c]\n"                        /* 5 */
			    "  - id: b\n"                                /* 6 */
			    "    upstream: [nope]\n"                     /* 7 */
			    "  - id: c\n"                                /* 8 */
			    "    command: x\n"                           /* 9 */
			    "    upstream: [a]\n"                        /* 10 */
			    "    trigger_rule: maybe\n"                  /* 11 */
			    "schedule: \"* * *\"\n"                      /* 12 */
			    "bogus: true\n",                             /* 13 */
			    &errs);
	assert_null(dag);
	if (errs.n != 7)
		dump_errors(&errs);
	assert_int_equal(errs.n, 7);
	/* sorted by line */
	for (size_t i = 1; i < errs.n; i++)
		assert_true(errs.v[i - 1].line <= errs.v[i].line);
	find_error(&errs, 2, "cycle: a -> c -> a");
	find_error(&errs, 4, "task 'a': 'retries' must be a non-negative integer");
	find_error(&errs, 6, "task 'b': missing 'command'");
	find_error(&errs, 7, "task 'b': unknown upstream task 'nope'");
	find_error(&errs, 11, "task 'c': unknown trigger rule 'maybe'");
	find_error(&errs, 12, "'schedule'");
	find_error(&errs, 13, "unknown key 'bogus'");
	for (size_t i = 0; i < errs.n; i++)
		assert_string_equal(errs.v[i].file, FILE_NAME);
	pw_errors_free(&errs);
}

/* ---- union ---------------------------------------------------------- */

static void test_union(void **state)
{
	(void)state;
	pw_dag *p = build_ok("tasks:\n"
			     "  - {id: a, command: [\"true\"], outputs: [x],"
			     " env: {K: v}}\n"
			     "  - {id: a2, command: y, upstream: [a]}\n");
	pw_dag *q = build_ok("description: q\n"
			     "params: {k: 1}\n"
			     "tasks:\n"
			     "  - {id: b, namespace: ns, command: z, inputs: [x]}\n");
	pw_dag *const both[] = { q, p };
	pw_errors errs = { 0 };
	pw_dag *u = pw_dag_union("q+p", both, 2, &errs);
	assert_int_equal(errs.n, 0);
	assert_non_null(u);
	pw_dag_free(p);
	pw_dag_free(q);

	assert_string_equal(u->id, "q+p");
	assert_null(u->file);
	assert_string_equal(u->description, "");
	assert_int_equal(json_object_object_length(u->params), 0);
	assert_int_equal(u->n_tasks, 3);
	assert_string_equal(u->tasks[0].name, "ns.b");
	assert_string_equal(u->tasks[1].name, "a");
	assert_string_equal(u->tasks[2].name, "a2");
	assert_string_equal(u->tasks[1].argv[0], "true");
	assert_string_equal(env_get(&u->tasks[1], "K"), "v");
	/* the dataset x links DAG p's a to DAG q's b */
	assert_up(&u->tasks[0], 1, (size_t[]){ 1 });
	assert_up(&u->tasks[2], 1, (size_t[]){ 1 });
	assert_down(&u->tasks[1], 2, (size_t[]){ 0, 2 });
	assert_order(u, (size_t[]){ 1, 0, 2 });
	pw_dag_free(u);

	/* no DAGs: an empty pipeline */
	u = pw_dag_union("__default__", NULL, 0, &errs);
	assert_non_null(u);
	assert_int_equal(u->n_tasks, 0);
	pw_dag_free(u);
}

static void test_union_errors(void **state)
{
	(void)state;
	pw_dag *p = build_ok("tasks:\n  - {id: a, command: x, outputs: [d]}\n");
	pw_dag *q = build_ok("tasks:\n  - {id: a, command: x}\n");
	pw_dag *r = build_ok("tasks:\n  - {id: r, command: x, outputs: [d]}\n");
	pw_dag *s = build_ok("tasks:\n  - {id: s, command: x, inputs: [d],"
			     " outputs: [e]}\n");
	pw_dag *t = build_ok("tasks:\n  - {id: t, command: x, inputs: [e],"
			     " outputs: [d]}\n");
	free(p->id), p->id = strdup("p");
	free(q->id), q->id = strdup("q");
	pw_errors errs = { 0 };

	pw_dag *const dup[] = { p, q };
	assert_null(pw_dag_union("p+q", dup, 2, &errs));
	assert_int_equal(errs.n, 1);
	assert_null(errs.v[0].file);
	assert_int_equal(errs.v[0].line, 0);
	assert_string_equal(errs.v[0].message,
			    "task 'a' is defined in both DAG 'p' and DAG 'q'");
	pw_errors_free(&errs);

	pw_dag *const writers[] = { p, r };
	assert_null(pw_dag_union("x", writers, 2, &errs));
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.v[0].type, "OutputNotUniqueError");
	assert_string_equal(errs.v[0].message,
			    "Output(s) ['d'] are returned by more than one nodes. "
			    "Node outputs must be unique.");
	pw_errors_free(&errs);

	pw_dag *const cyc[] = { s, t };
	assert_null(pw_dag_union("x", cyc, 2, &errs));
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.v[0].message, "cycle: s -> t -> s");
	pw_errors_free(&errs);

	pw_dag_free(p);
	pw_dag_free(q);
	pw_dag_free(r);
	pw_dag_free(s);
	pw_dag_free(t);
}

/* ---- io ------------------------------------------------------------- */

static void assert_strv(const pw_strv *sv, size_t n, const char *const *want)
{
	if (sv->n != n)
		for (size_t i = 0; i < sv->n; i++)
			print_error("  got %s\n", sv->v[i]);
	assert_int_equal(sv->n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(sv->v[i], want[i]);
}

static void test_io(void **state)
{
	(void)state;
	pw_dag *dag = build_ok(
		"tasks:\n"
		"  - {id: a, command: x, inputs: [raw, \"params:p\"],"
		" outputs: [x]}\n"
		"  - {id: b, command: x, inputs: [x], outputs: [z, y]}\n"
		"  - {id: c, command: x, inputs: [y, \"params:p\"],"
		" outputs: [w]}\n");
	pw_strv in = { 0 }, out = { 0 };

	assert_int_equal(pw_dag_io(dag, NULL, &in, &out), 0);
	assert_strv(&in, 2, (const char *[]){ "params:p", "raw" });
	assert_strv(&out, 2, (const char *[]){ "w", "z" });
	pw_strv_free(&in);
	pw_strv_free(&out);

	bool only_b[] = { false, true, false };
	assert_int_equal(pw_dag_io(dag, only_b, &in, &out), 0);
	assert_strv(&in, 1, (const char *[]){ "x" });
	assert_strv(&out, 2, (const char *[]){ "y", "z" });
	pw_strv_free(&in);
	pw_strv_free(&out);

	bool a_b[] = { true, true, false };
	assert_int_equal(pw_dag_io(dag, a_b, &in, &out), 0);
	assert_strv(&in, 2, (const char *[]){ "params:p", "raw" });
	assert_strv(&out, 2, (const char *[]){ "y", "z" });
	pw_strv_free(&in);
	pw_strv_free(&out);

	bool none[] = { false, false, false };
	assert_int_equal(pw_dag_io(dag, none, &in, &out), 0);
	assert_int_equal(in.n, 0);
	assert_int_equal(out.n, 0);
	pw_dag_free(dag);
}

/* ---- identifiers and trigger rules ---------------------------------- */

static void test_validators(void **state)
{
	(void)state;
	char id[300];

	memset(id, 'a', 250);
	id[250] = '\0';
	assert_true(pw_valid_dag_id(id));
	assert_true(pw_valid_run_id(id));
	id[250] = 'a';
	id[251] = '\0';
	assert_false(pw_valid_dag_id(id));
	assert_false(pw_valid_run_id(id));

	assert_true(pw_valid_dag_id("a"));
	assert_true(pw_valid_dag_id("_private"));
	assert_true(pw_valid_dag_id("Train_v2.1-final"));
	assert_false(pw_valid_dag_id(""));
	assert_false(pw_valid_dag_id(NULL));
	assert_false(pw_valid_dag_id(".."));
	assert_false(pw_valid_dag_id("../etc"));
	assert_false(pw_valid_dag_id(".hidden"));
	assert_false(pw_valid_dag_id("-x"));
	assert_false(pw_valid_dag_id("a b"));
	assert_false(pw_valid_dag_id("a/b"));
	assert_false(pw_valid_dag_id("a:b"));
	assert_false(pw_valid_dag_id("caf\xc3\xa9"));

	assert_true(pw_valid_run_id("manual__2024-01-01T00:00:00+00:00"));
	assert_true(pw_valid_run_id("2024-01-01T00.00.00.000Z"));
	assert_false(pw_valid_run_id("_x"));
	assert_false(pw_valid_run_id(".."));
	assert_false(pw_valid_run_id("-x"));
	assert_false(pw_valid_run_id(":x"));
	assert_false(pw_valid_run_id("a/../b"));
	assert_false(pw_valid_run_id("a b"));
	assert_false(pw_valid_run_id(""));

	assert_true(pw_valid_pool_name("default_pool"));
	assert_false(pw_valid_pool_name("bad pool"));
}

static void test_trigger_rules(void **state)
{
	(void)state;
	static const char *const names[] = { "all_success", "all_done",
					     "all_failed", "one_success",
					     "one_failed", "none_failed" };
	for (int i = 0; i < 6; i++) {
		pw_trigger_rule r = PW_TRIGGER_ALL_SUCCESS;
		assert_string_equal(pw_trigger_rule_name((pw_trigger_rule)i),
				    names[i]);
		assert_int_equal(pw_trigger_rule_parse(names[i], &r), 0);
		assert_int_equal(r, i);
	}
	pw_trigger_rule r = PW_TRIGGER_ONE_FAILED;
	assert_int_equal(pw_trigger_rule_parse("ALL_SUCCESS", &r), -1);
	assert_int_equal(pw_trigger_rule_parse("", &r), -1);
	assert_int_equal(r, PW_TRIGGER_ONE_FAILED);
	assert_null(pw_trigger_rule_name((pw_trigger_rule)6));
}

/* ---- scale ---------------------------------------------------------- */

enum { BIG = 10000 };

/* Appends to a growing buffer. */
static void append(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);
	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*buf = realloc(*buf, *cap);
		assert_non_null(*buf);
	}
	memcpy(*buf + *len, s, n + 1);
	*len += n;
}

/* Streaming: an anchored task stays for its aliases, with its lines; a
 * syntax error after the tasks is the only error. */
static void test_streamed(void **state)
{
	(void)state;
	pw_errors errs = { 0 };
	pw_dag *dag = build("tasks:\n"
			    "  - &a\n"
			    "    id: a\n"
			    "    command: x\n"
			    "    retries: -1\n"
			    "  - <<: *a\n"
			    "    id: b\n",
			    &errs);
	assert_null(dag);
	assert_int_equal(errs.n, 2);
	find_error(&errs, 5, "task 'a': 'retries' must be a non-negative");
	find_error(&errs, 5, "task 'b': 'retries' must be a non-negative");
	pw_errors_free(&errs);

	/* on one line, the file's own errors come first, as they always did */
	assert_null(build("{tasks: [{id: 1, command: x}], schedule: 5}\n", &errs));
	assert_int_equal(errs.n, 2);
	assert_non_null(strstr(errs.v[0].message, "'schedule'"));
	assert_non_null(strstr(errs.v[1].message, "task #1: 'id'"));
	pw_errors_free(&errs);

	/* a list of tasks with an anchor (or an alias's copy) cannot be
	 * streamed: it is read whole, with the same tasks (fuzz_dag found
	 * it read as empty) */
	pw_dag *anchored = build_ok("tasks: &all\n"
				    "  - {id: a, command: x}\n"
				    "  - {id: b, command: x, upstream: [a]}\n");
	assert_int_equal(anchored->n_tasks, 2);
	assert_string_equal(anchored->tasks[1].name, "b");
	pw_dag_free(anchored);
	assert_null(build("tasks: &all\n  - &n\n  - &m\n", &errs));
	assert_int_equal(errs.n, 2);
	find_error(&errs, 1, "task #1 must be a mapping"); /* null items: the list's line */
	pw_errors_free(&errs);

	const char *text = "tasks:\n"
			   "  - id: 1\n"
			   "    command: x\n"
			   "  - id: b\n"
			   "    command: [\n";
	assert_null(pw_dag_parse("t", text, strlen(text), FILE_NAME, 0, &errs));
	assert_int_equal(errs.n, 1);
	assert_null(strstr(errs.v[0].message, "must be a string"));
	pw_errors_free(&errs);
}

static void test_big_chain(void **state)
{
	(void)state;
	char *text = NULL, line[160];
	size_t len = 0, cap = 0;

	/* task i (in file order) depends on task i+1: the order is reversed */
	append(&text, &len, &cap, "tasks:\n");
	for (int i = 0; i < BIG; i++) {
		if (i + 1 < BIG)
			snprintf(line, sizeof line,
				 "  - {id: t%d, command: x, upstream: [t%d]}\n",
				 i, i + 1);
		else
			snprintf(line, sizeof line,
				 "  - {id: t%d, command: x}\n", i);
		append(&text, &len, &cap, line);
	}
	pw_dag *dag = build_ok(text);
	assert_int_equal(dag->n_tasks, BIG);
	for (size_t i = 0; i < BIG; i++)
		assert_int_equal(dag->order[i], BIG - 1 - i);
	assert_up(&dag->tasks[0], 1, (size_t[]){ 1 });
	assert_down(&dag->tasks[BIG - 1], 1, (size_t[]){ BIG - 2 });
	assert_int_equal(pw_dag_task_index(dag, "t9999"), BIG - 1);
	pw_dag_free(dag);

	/* a dataset chain, plus one task reading every dataset (fan-in) */
	len = 0;
	append(&text, &len, &cap, "tasks:\n");
	for (int i = 0; i < BIG; i++) {
		snprintf(line, sizeof line,
			 "  - {id: d%d, command: x, inputs: [ds%d],"
			 " outputs: [ds%d]}\n",
			 i, i - 1, i);
		append(&text, &len, &cap, line);
	}
	append(&text, &len, &cap, "  - id: sink\n    command: x\n"
				  "    inputs:\n");
	for (int i = 0; i < BIG; i++) {
		snprintf(line, sizeof line, "      - ds%d\n", i);
		append(&text, &len, &cap, line);
	}
	dag = build_ok(text);
	assert_int_equal(dag->n_tasks, BIG + 1);
	for (size_t i = 0; i <= BIG; i++)
		assert_int_equal(dag->order[i], i);
	assert_int_equal(dag->tasks[BIG].n_up, BIG);
	assert_int_equal(dag->tasks[0].n_down, 2);
	pw_strv in = { 0 }, out = { 0 };
	assert_int_equal(pw_dag_io(dag, NULL, &in, &out), 0);
	assert_strv(&in, 1, (const char *[]){ "ds-1" });
	assert_int_equal(out.n, 0);
	pw_strv_free(&in);
	pw_strv_free(&out);

	/* the union of a big DAG with itself reports every duplicate */
	pw_dag *const twice[] = { dag, dag };
	pw_errors errs = { 0 };
	assert_null(pw_dag_union("x", twice, 2, &errs));
	assert_true(errs.n >= BIG + 1);
	pw_errors_free(&errs);
	pw_dag_free(dag);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_dag),
		cmocka_unit_test(test_minimal_defaults),
		cmocka_unit_test(test_topo_order_deterministic),
		cmocka_unit_test(test_json_dag),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_bad_ids),
		cmocka_unit_test(test_missing_command_and_tasks),
		cmocka_unit_test(test_duplicate_task),
		cmocka_unit_test(test_unknown_upstream),
		cmocka_unit_test(test_two_writers),
		cmocka_unit_test(test_cycles),
		cmocka_unit_test(test_bad_cron_and_trigger),
		cmocka_unit_test(test_many_errors),
		cmocka_unit_test(test_union),
		cmocka_unit_test(test_union_errors),
		cmocka_unit_test(test_io),
		cmocka_unit_test(test_validators),
		cmocka_unit_test(test_trigger_rules),
		cmocka_unit_test(test_streamed),
		cmocka_unit_test(test_big_chain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
