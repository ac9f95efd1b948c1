/*
 * test_project.c - loading project folders: pipewright.yml, the conf
 * environment overlay, duplicate keys, DAG import errors, pipelines.
 */
#include "testhelp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "project.h"

static const char MINIMAL_DAG[] =
	"tasks:\n"
	"  - id: a\n"
	"    command: [\"true\"]\n"
	"    outputs: [ds]\n";

/* A fresh project folder with pipewright.yml, an empty catalog and dags. */
static int setup_project(void **state)
{
	char *dir = th_mkdtemp();
	th_write(dir, "pipewright.yml", "project_name: Demo\npackage_name: demo\n");
	th_write(dir, "conf/base/catalog.yml", "{}\n");
	th_write(dir, "dags/first.yml", MINIMAL_DAG);
	*state = dir;
	return 0;
}

static int teardown_project(void **state)
{
	th_rmtree(*state);
	return 0;
}

/* Loads dir with the given env; fails the test when the load fails. */
static pw_project *load(const char *dir, const char *env)
{
	pw_project_opts opts = {.path = dir, .env = env};
	pw_project *p = NULL;
	char *err = NULL;
	int rc = pw_project_load(&opts, &p, &err);
	if (rc != PW_OK)
		fail_msg("load failed: %s", err);
	return p;
}

/* Loads dir expecting failure; returns the message (malloc'd). */
static char *load_error(const char *dir, const char *env)
{
	pw_project_opts opts = {.path = dir, .env = env};
	pw_project *p = NULL;
	char *err = NULL;
	assert_int_equal(pw_project_load(&opts, &p, &err), PW_ERR);
	assert_null(p);
	assert_non_null(err);
	return err;
}

static void test_defaults_and_metadata(void **state)
{
	const char *dir = *state;
	pw_project *p = load(dir, NULL);
	assert_string_equal(p->project_name, "Demo");
	assert_string_equal(p->package_name, "demo");
	assert_string_equal(p->env, "local");
	char *db = pw_asprintf("%s/var/pipewright.db", p->root);
	assert_string_equal(p->database, db);
	free(db);
	assert_true(p->max_parallel_tasks >= 1);
	assert_null(p->conf_error.type);
	assert_int_equal(p->n_dags, 1);
	assert_string_equal(p->dags[0]->id, "first");
	assert_string_equal(p->dags[0]->file, "dags/first.yml");
	assert_int_equal(p->import_errors.n, 0);
	pw_project_free(p);
}

static void test_settings(void **state)
{
	const char *dir = *state;
	th_write(dir, "pipewright.yml",
		 "project_name: Demo\n"
		 "settings:\n"
		 "  database: /tmp/elsewhere.db\n"
		 "  logs_dir: logs\n"
		 "  max_parallel_tasks: 3\n"
		 "  roles: {alice: admin, bob: read}\n"
		 "  cors_origins: [\"http://localhost:3000\"]\n"
		 "  runners:\n"
		 "    cluster.Slurm: {type: slurm, partition: debug, sbatch_args: [--mem=100M],\n"
		 "                    poll_interval: 0.5, time_margin: 30, status_wait: 10}\n");
	pw_project *p = load(dir, NULL);
	assert_string_equal(p->database, "/tmp/elsewhere.db");
	char *logs = pw_asprintf("%s/logs", p->root);
	assert_string_equal(p->logs_dir, logs);
	free(logs);
	assert_int_equal(p->max_parallel_tasks, 3);
	json_object *roles = json_object_object_get(p->settings, "roles");
	assert_string_equal(json_object_get_string(json_object_object_get(roles, "bob")), "read");
	pw_project_free(p);
}

static void test_bad_settings_fail_with_line(void **state)
{
	const char *dir = *state;
	static const struct {
		const char *yml;
		const char *message;
	} cases[] = {
		{"project_name: x\nsettings:\n  colour: red\n",
		 "pipewright.yml:3: unknown setting 'colour' (allowed: database, logs_dir, "
		 "max_parallel_tasks, events_keep_days, events_keep_max, max_log_bytes, runners, cors_origins, "
		 "roles, runner, trusted_user_header)"},
		{"settings:\n  max_parallel_tasks: many\n",
		 "pipewright.yml:2: setting 'max_parallel_tasks' must be an integer from 1 to 4096"},
		{"settings:\n  roles: {alice: root}\n",
		 "pipewright.yml:2: setting 'roles' must map user names to read, operate or admin"},
		{"settings:\n  runners: {fast: {type: k8s}}\n",
		 "pipewright.yml:2: setting 'runners' entry 'fast': unknown type 'k8s'"
		 " (known types: slurm)"},
		{"settings:\n  runners: {fast: {partition: debug}}\n",
		 "pipewright.yml:2: setting 'runners' entry 'fast' must be a mapping with a 'type'"},
		{"settings:\n  runners: {fast: {type: slurm, queue: x}}\n",
		 "pipewright.yml:2: setting 'runners' entry 'fast': unknown option 'queue'"
		 " for type slurm"},
		{"settings:\n  runners: {fast: {type: slurm, sbatch_args: --mem=1G}}\n",
		 "pipewright.yml:2: setting 'runners' entry 'fast': option 'sbatch_args'"
		 " must be a list of strings"},
		{"settings:\n  runners: {fast: {type: slurm, poll_interval: 0}}\n",
		 "pipewright.yml:2: setting 'runners' entry 'fast': option 'poll_interval'"
		 " must be a number of seconds from 0.1 to 3600"},
		{"settings:\n  runners: {fast: {type: slurm, time_margin: 1.5}}\n",
		 "pipewright.yml:2: setting 'runners' entry 'fast': option 'time_margin'"
		 " must be a whole number of seconds from 0 to 86400"},
		{"settings:\n  runners: {fast: {type: slurm, partition: \"\"}}\n",
		 "pipewright.yml:2: setting 'runners' entry 'fast': option 'partition'"
		 " must be a non-empty string"},
		{"project_name: x\nowner: me\n", "pipewright.yml:2: unknown key 'owner' (allowed: "
		 "project_name, package_name, version, settings)"},
		{"project_name: [x]\n", "pipewright.yml:1: 'project_name' must be a string"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		th_write(dir, "pipewright.yml", cases[i].yml);
		char *err = load_error(dir, NULL);
		assert_string_equal(err, cases[i].message);
		free(err);
	}
}

static void test_not_a_project(void **state)
{
	char *dir = th_mkdtemp();
	char *err = load_error(dir, NULL);
	assert_non_null(strstr(err, "is not a pipewright project: pipewright.yml not found"));
	free(err);
	th_rmtree(dir);
	err = load_error("/nonexistent/pipewright-project", NULL);
	assert_non_null(strstr(err, "No such file or directory"));
	free(err);
	(void)state;
}

/* The environment is read over base; a top-level key replaces base's. */
static void test_env_overlay(void **state)
{
	const char *dir = *state;
	th_write(dir, "conf/base/parameters.yml",
		 "model: {depth: 3, rate: 0.1}\nseed: 1\nonly_base: true\n");
	th_write(dir, "conf/local/parameters.yml", "model: {depth: 5}\nseed: 2\n");
	th_write(dir, "conf/prod/parameters.json", "{\"seed\": 3}");
	pw_project *p = load(dir, NULL);
	json_object *model = json_object_object_get(p->parameters, "model");
	assert_int_equal(json_object_get_int(json_object_object_get(model, "depth")), 5);
	assert_null(json_object_object_get(model, "rate")); /* replaced whole */
	assert_int_equal(json_object_get_int(json_object_object_get(p->parameters, "seed")), 2);
	assert_true(json_object_get_boolean(json_object_object_get(p->parameters, "only_base")));
	pw_project_free(p);

	p = load(dir, "prod");
	assert_int_equal(json_object_get_int(json_object_object_get(p->parameters, "seed")), 3);
	model = json_object_object_get(p->parameters, "model");
	assert_non_null(json_object_object_get(model, "rate")); /* base only */
	pw_project_free(p);

	setenv("PIPEWRIGHT_ENV", "prod", 1);
	p = load(dir, NULL);
	unsetenv("PIPEWRIGHT_ENV");
	assert_string_equal(p->env, "prod");
	pw_project_free(p);
}

static void test_env_name_refused(void **state)
{
	const char *bad[] = {"../etc", "a b", "x;rm", "ünï"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char *err = load_error(*state, bad[i]);
		assert_non_null(strstr(err, "invalid environment name"));
		free(err);
	}
	assert_true(pw_valid_env_name("staging-2_b"));
	assert_false(pw_valid_env_name(""));
}

static void test_duplicate_keys_in_one_env(void **state)
{
	const char *dir = *state;
	th_write(dir, "conf/base/catalog.yml", "a: {type: MemoryDataset}\n");
	th_write(dir, "conf/base/catalog_more.yml", "b: {type: MemoryDataset}\na: {type: X}\n");
	pw_project *p = load(dir, NULL);
	assert_string_equal(p->conf_error.type, "ValueError");
	assert_string_equal(p->conf_error.message,
			    "Duplicate keys found in conf/base/catalog.yml and "
			    "conf/base/catalog_more.yml: ['a']");
	assert_int_equal(p->n_dags, 1); /* DAGs still load */
	pw_project_free(p);

	/* The same key in base and local is an overlay, not a duplicate. */
	th_write(dir, "conf/base/catalog_more.yml", "b: {type: MemoryDataset}\n");
	th_write(dir, "conf/local/catalog.yml", "a: {type: pandas.CSVDataset, filepath: a.csv}\n");
	p = load(dir, NULL);
	assert_null(p->conf_error.type);
	json_object *a = json_object_object_get(p->catalog, "a");
	assert_string_equal(json_object_get_string(json_object_object_get(a, "filepath")), "a.csv");
	assert_int_equal(json_object_object_length(p->catalog), 2);
	pw_project_free(p);
}

static void test_missing_catalog(void **state)
{
	const char *dir = *state;
	char *path = pw_asprintf("%s/conf/base/catalog.yml", dir);
	remove(path);
	free(path);
	pw_project *p = load(dir, NULL);
	assert_string_equal(p->conf_error.type, "MissingConfigException");
	assert_string_equal(p->conf_error.message,
			    "No config files found matching the pattern(s) 'catalog*'");
	pw_project_free(p);
}

static void test_conf_source(void **state)
{
	const char *dir = *state;
	th_write(dir, "other/base/catalog.yml", "x: {type: MemoryDataset}\n");
	pw_project_opts opts = {.path = dir, .conf_source = "other"};
	pw_project *p = NULL;
	char *err = NULL;
	assert_int_equal(pw_project_load(&opts, &p, &err), PW_OK);
	assert_non_null(json_object_object_get(p->catalog, "x"));
	pw_project_free(p);

	opts.conf_source = "missing";
	assert_int_equal(pw_project_load(&opts, &p, &err), PW_OK);
	assert_string_equal(p->conf_error.type, "MissingConfigException");
	assert_non_null(strstr(p->conf_error.message, "does not exist"));
	pw_project_free(p);

	setenv("PIPEWRIGHT_PROJECT_PATH", dir, 1);
	setenv("PIPEWRIGHT_CONF_SOURCE", "other", 1);
	pw_project_opts none = {0};
	assert_int_equal(pw_project_load(&none, &p, &err), PW_OK);
	unsetenv("PIPEWRIGHT_PROJECT_PATH");
	unsetenv("PIPEWRIGHT_CONF_SOURCE");
	assert_non_null(json_object_object_get(p->catalog, "x"));
	pw_project_free(p);
}

static void test_bad_catalog_and_pools(void **state)
{
	const char *dir = *state;
	th_write(dir, "conf/base/catalog.yml", "d: {type: X, versioned: maybe}\n");
	pw_project *p = load(dir, NULL);
	assert_string_equal(p->conf_error.type, "DatasetError");
	assert_non_null(strstr(p->conf_error.message, "dataset 'd'"));
	pw_project_free(p);

	th_write(dir, "conf/base/catalog.yml", "{}\n");
	th_write(dir, "conf/base/pools.yml", "gpu: {slots: 2, description: GPUs}\n");
	p = load(dir, NULL);
	assert_null(p->conf_error.type);
	json_object *gpu = json_object_object_get(p->pools, "gpu");
	assert_int_equal(json_object_get_int(json_object_object_get(gpu, "slots")), 2);
	pw_project_free(p);

	th_write(dir, "conf/base/pools.yml", "gpu: {slots: -1}\n");
	p = load(dir, NULL);
	assert_string_equal(p->conf_error.type, "ValueError");
	assert_non_null(strstr(p->conf_error.message, "pool 'gpu'"));
	pw_project_free(p);
}

/* A broken DAG file is an import error; the other DAGs still load. */
static void test_broken_dag_does_not_hide_others(void **state)
{
	const char *dir = *state;
	th_write(dir, "dags/second.json",
		 "{\"tasks\": [{\"id\": \"b\", \"command\": \"echo hi\", \"inputs\": [\"ds\"]}]}");
	th_write(dir, "dags/broken.yml", "tasks:\n  - id: x\n    command: [\"true\"]\n    colour: red\n");
	th_write(dir, "dags/syntax.yml", "tasks: [\n");
	th_write(dir, "dags/first.json",
		 "{\"tasks\": [{\"id\": \"j\", \"command\": \"true\"}]}");
	th_write(dir, "dags/bad id!.yml", MINIMAL_DAG);
	th_write(dir, "dags/notes.txt", "not a DAG");
	pw_project *p = load(dir, NULL);
	assert_int_equal(p->n_dags, 2);
	assert_string_equal(p->dags[0]->id, "first");
	assert_string_equal(p->dags[1]->id, "second");
	bool saw_key = false, saw_syntax = false, saw_dup = false, saw_id = false;
	for (size_t i = 0; i < p->import_errors.n; i++) {
		const pw_error *e = &p->import_errors.v[i];
		if (strcmp(e->file, "dags/broken.yml") == 0) {
			saw_key = true;
			assert_int_equal(e->line, 4);
			assert_non_null(strstr(e->message, "colour"));
		}
		saw_syntax |= strcmp(e->file, "dags/syntax.yml") == 0 && e->line > 0;
		saw_dup |= strcmp(e->file, "dags/first.yml") == 0 &&
			   strstr(e->message, "already defines DAG 'first'") != NULL;
		saw_id |= strcmp(e->file, "dags/bad id!.yml") == 0;
	}
	assert_true(saw_key);
	assert_true(saw_syntax);
	assert_true(saw_dup); /* first.json sorts before first.yml */
	assert_true(saw_id);
	pw_project_free(p);
}

static void test_pipelines(void **state)
{
	const char *dir = *state;
	th_write(dir, "dags/second.yml",
		 "tasks:\n  - id: b\n    command: [\"true\"]\n    inputs: [ds]\n");
	pw_project *p = load(dir, NULL);
	pw_kerror err = {0};
	bool owned;
	pw_dag *d = pw_project_pipeline(p, "second", &owned, &err);
	assert_non_null(d);
	assert_false(owned);

	d = pw_project_pipeline(p, "__default__", &owned, &err);
	assert_non_null(d);
	assert_true(owned);
	assert_int_equal(d->n_tasks, 2);
	long b = pw_dag_task_index(d, "b");
	assert_true(b >= 0);
	assert_int_equal(d->tasks[b].n_up, 1); /* ds links the two DAGs */
	pw_dag_free(d);

	assert_null(pw_project_pipeline(p, "nope", &owned, &err));
	assert_string_equal(err.type, "ValueError");
	assert_string_equal(err.message,
			    "Failed to find the pipeline named 'nope'. It needs to be generated "
			    "and returned by the 'register_pipelines' function. ");
	pw_kerror_clear(&err);
	pw_project_free(p);
}

static void test_params_merge(void **state)
{
	(void)state;
	json_object *base = json_tokener_parse(
		"{\"model\": {\"depth\": 3, \"opts\": {\"a\": 1, \"b\": 2}}, \"list\": [1, 2], \"x\": 1}");
	json_object *over = json_tokener_parse(
		"{\"model\": {\"opts\": {\"b\": 20, \"c\": 30}}, \"list\": [9], \"y\": null}");
	json_object *m = pw_params_merge(base, over);
	assert_non_null(m);
	assert_string_equal(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN),
			    "{\"model\":{\"depth\":3,\"opts\":{\"a\":1,\"b\":20,\"c\":30}},"
			    "\"list\":[9],\"x\":1,\"y\":null}");
	/* the inputs are untouched */
	assert_string_equal(json_object_to_json_string_ext(base, JSON_C_TO_STRING_PLAIN),
			    "{\"model\":{\"depth\":3,\"opts\":{\"a\":1,\"b\":2}},\"list\":[1,2],\"x\":1}");
	json_object_put(m);
	/* no override: a copy of base; scalars replace */
	m = pw_params_merge(base, NULL);
	assert_true(json_object_equal(m, base));
	json_object_put(m);
	json_object *three = json_object_new_int(3);
	m = pw_params_merge(base, three);
	assert_int_equal(json_object_get_int(m), 3);
	json_object_put(m);
	json_object_put(three);
	json_object_put(base);
	json_object_put(over);
}

/* The shipped example project must load without a single problem. */
static void test_example_project_validates(void **state)
{
	(void)state;
	char *path = pw_asprintf("%s/examples/iris", th_srcdir());
	pw_project *p = load(path, NULL);
	for (size_t i = 0; i < p->import_errors.n; i++)
		print_error("%s: %s\n", p->import_errors.v[i].file, p->import_errors.v[i].message);
	assert_null(p->conf_error.type);
	assert_int_equal(p->import_errors.n, 0);
	assert_true(p->n_dags >= 2);
	pw_project_free(p);
	free(path);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_project, teardown_project)
	const struct CMUnitTest tests[] = {
		T(test_defaults_and_metadata),
		T(test_settings),
		T(test_bad_settings_fail_with_line),
		T(test_not_a_project),
		T(test_env_overlay),
		T(test_env_name_refused),
		T(test_duplicate_keys_in_one_env),
		T(test_missing_catalog),
		T(test_conf_source),
		T(test_bad_catalog_and_pools),
		T(test_broken_dag_does_not_hide_others),
		T(test_pipelines),
		cmocka_unit_test(test_params_merge),
		cmocka_unit_test(test_example_project_validates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
