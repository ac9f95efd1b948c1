/*
 * test_model.c - the project model's rules of issue 11 (DESIGN.md section
 * 3): OmegaConf-style interpolation (src/interp.c), numbers kept as written
 * (src/jsonnum.c), free inputs of DAGs, slices and __default__, unknown keys
 * with their nearest allowed key, single strings for lists, and --env
 * naming a folder that does not exist.
 */
#include "testhelp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dag.h"
#include "doc.h"
#include "interp.h"
#include "jsonnum.h"
#include "project.h"
#include "slice.h"

/* --- interpolation ------------------------------------------------------------ */

/* locate over one doc, as project.c does over an environment's files */
static void doc_locate(void *arg, const json_object *obj, const char *key, const char **file,
		       int *line)
{
	const pw_doc *doc = arg;
	*line = pw_doc_key_line(doc, obj, key);
	*file = pw_doc_file(doc);
}

/*
 * Resolves YAML text with globals (YAML, or NULL) and runtime params (JSON,
 * or NULL). Returns the resolved tree as compact JSON (malloc'd), or NULL
 * with *err set.
 */
static char *resolve(const char *yaml, const char *globals_yaml, const char *runtime_json,
		     pw_kerror *err)
{
	pw_errors errs = {0};
	pw_doc *doc = pw_doc_parse(yaml, strlen(yaml), "conf/base/parameters.yml", 0, &errs);
	pw_doc *gdoc = globals_yaml ? pw_doc_parse(globals_yaml, strlen(globals_yaml),
						   "conf/base/globals.yml", 0, &errs) : NULL;
	assert_non_null(doc);
	json_object *runtime = runtime_json ? json_tokener_parse(runtime_json) : NULL;
	pw_interp_ctx ctx = {
		.globals = pw_doc_root(gdoc), .runtime_params = runtime,
		.defer_runtime = runtime_json == NULL, .locate = doc_locate, .locate_arg = doc,
	};
	char *out = NULL;
	if (pw_interp_resolve(pw_doc_root(doc), &ctx, err) == 0)
		out = strdup(json_object_to_json_string_ext(pw_doc_root(doc),
							    JSON_C_TO_STRING_PLAIN |
							    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(runtime);
	pw_doc_free(doc);
	pw_doc_free(gdoc);
	pw_errors_free(&errs);
	return out;
}

static void expect_resolved(const char *yaml, const char *globals, const char *runtime,
			    const char *want)
{
	pw_kerror err = {0};
	char *got = resolve(yaml, globals, runtime, &err);
	if (!got)
		fail_msg("%s\nfailed: %s: %s", yaml, err.type, err.message);
	if (strcmp(got, want) != 0)
		fail_msg("%s\nresolved to %s\nexpected    %s", yaml, got, want);
	free(got);
	pw_kerror_clear(&err);
}

static void expect_interp_error(const char *yaml, const char *globals, const char *runtime,
				const char *type, const char *message)
{
	pw_kerror err = {0};
	char *got = resolve(yaml, globals, runtime, &err);
	if (got)
		fail_msg("%s\nresolved to %s, expected %s", yaml, got, type);
	if (!err.type || strcmp(err.type, type) != 0 || strcmp(err.message, message) != 0)
		fail_msg("%s\nerror %s: %s\nexpected %s: %s", yaml, err.type, err.message, type,
			 message);
	pw_kerror_clear(&err);
}

static void test_interp_references(void **state)
{
	(void)state;
	/* a whole-string reference keeps the type; mixed text joins */
	expect_resolved("a: 1\nb: ${a}\nc: \"x-${a}-y\"\n", NULL, NULL,
			"{\"a\":1,\"b\":1,\"c\":\"x-1-y\"}");
	expect_resolved("m: {lr: 0.10}\nn: ${m.lr}\no: ${m}\n", NULL, NULL,
			"{\"m\":{\"lr\":0.10},\"n\":0.10,\"o\":{\"lr\":0.10}}");
	/* chains, list indices, forward references */
	expect_resolved("a: ${b}\nb: ${c.1}\nc: [x, y]\nd: ${c[0]}\n", NULL, NULL,
			"{\"a\":\"y\",\"b\":\"y\",\"c\":[\"x\",\"y\"],\"d\":\"x\"}");
	/* relative keys: the mapping holding the value, its parent */
	expect_resolved("top: 1\ng:\n  x: 2\n  y: ${.x}\n  z: ${..top}\n", NULL, NULL,
			"{\"top\":1,\"g\":{\"x\":2,\"y\":2,\"z\":1}}");
	/* booleans and null joined into text as OmegaConf prints them */
	expect_resolved("t: true\nn: null\ns: \"${t}/${n}\"\n", NULL, NULL,
			"{\"t\":true,\"n\":null,\"s\":\"True/None\"}");
	/* an escaped interpolation is text, also when referenced */
	expect_resolved("a: \\${x}\nb: ${a}\nc: \"<${a}>\"\n", NULL, NULL,
			"{\"a\":\"${x}\",\"b\":\"${x}\",\"c\":\"<${x}>\"}");
	/* nested interpolation in a key */
	expect_resolved("which: b\nb: 7\nv: ${${which}}\n", NULL, NULL,
			"{\"which\":\"b\",\"b\":7,\"v\":7}");
}

static void test_interp_globals(void **state)
{
	(void)state;
	const char *g = "bucket: s3://b\nn: {depth: 3}\n";
	expect_resolved("p: ${globals:bucket}/raw\nd: ${globals:n.depth}\n", g, NULL,
			"{\"p\":\"s3://b/raw\",\"d\":3}");
	expect_resolved("a: ${globals:nope, 5}\nb: ${globals:nope, 'x, y'}\n"
			"c: ${globals:nope, null}\nd: \"${globals:nope, 0.5}\"\n", g, NULL,
			"{\"a\":5,\"b\":\"x, y\",\"c\":null,\"d\":0.5}");
	/* a default that is itself an interpolation, and a nested key */
	expect_resolved("k: bucket\na: ${globals:${k}}\nb: ${globals:nope, ${k}}\n", g, NULL,
			"{\"k\":\"bucket\",\"a\":\"s3://b\",\"b\":\"bucket\"}");
	expect_interp_error("x: 1\ny: ${globals:nope}\n", g, NULL,
			    "InterpolationResolutionError",
			    "conf/base/parameters.yml:2: key 'y': Globals key 'nope' not found and "
			    "no default value provided.");
}

static void test_interp_runtime_params(void **state)
{
	(void)state;
	const char *yaml = "size: ${runtime_params:size, 10}\nlr: ${runtime_params:m.lr}\n"
			   "name: \"n-${runtime_params:size, 10}\"\nother: ${size}\n";
	expect_resolved(yaml, NULL, "{\"size\": 3, \"m\": {\"lr\": 0.5}}",
			"{\"size\":3,\"lr\":0.5,\"name\":\"n-3\",\"other\":3}");
	/* at load time: defaults apply, a parameter without one waits */
	expect_resolved(yaml, NULL, NULL,
			"{\"size\":10,\"lr\":\"${runtime_params:m.lr}\",\"name\":\"n-10\","
			"\"other\":10}");
	/* a run's parameter is a value, never evaluated again: a run's conf
	 * cannot make the project's interpolations expand */
	expect_resolved("a: ${runtime_params:x}\nb: \"${a}${a}\"\nsize: 3\n", NULL,
			"{\"x\": \"${size}${size}\"}",
			"{\"a\":\"${size}${size}\",\"b\":\"${size}${size}${size}${size}\","
			"\"size\":3}");
	/* a value using a waiting one waits too */
	expect_resolved("a: ${runtime_params:x}\nb: ${a}\nc: 1\n", NULL, NULL,
			"{\"a\":\"${runtime_params:x}\",\"b\":\"${a}\",\"c\":1}");
	expect_interp_error("a: 1\nlr: ${runtime_params:lr}\n", NULL, "{}",
			    "InterpolationResolutionError",
			    "conf/base/parameters.yml:2: key 'lr': Runtime parameter 'lr' not found "
			    "and no default value provided.");
}

static void test_interp_errors(void **state)
{
	(void)state;
	expect_interp_error("a: 1\nb:\n  c: ${nope.x}\n", NULL, NULL, "InterpolationKeyError",
			    "conf/base/parameters.yml:3: key 'b.c': Interpolation key 'nope.x' not "
			    "found");
	expect_interp_error("a: ${b}\nb: ${a}\n", NULL, NULL, "InterpolationResolutionError",
			    "conf/base/parameters.yml:2: key 'b': Recursive interpolation detected");
	expect_interp_error("a: ${a}\n", NULL, NULL, "InterpolationResolutionError",
			    "conf/base/parameters.yml:1: key 'a': Recursive interpolation detected");
	expect_interp_error("a:\n  b: ${a}\n", NULL, NULL, "InterpolationResolutionError",
			    "conf/base/parameters.yml:2: key 'a.b': Recursive interpolation "
			    "detected");
	expect_interp_error("a: ${oc.env:HOME}\n", NULL, NULL, "UnsupportedInterpolationType",
			    "conf/base/parameters.yml:1: key 'a': Unsupported interpolation type "
			    "oc.env");
	expect_interp_error("a: ${foo bar:x}\n", NULL, NULL, "GrammarParseError",
			    "conf/base/parameters.yml:1: key 'a': invalid resolver name 'foo bar'");
	expect_interp_error("a: \"${b\"\n", NULL, NULL, "GrammarParseError",
			    "conf/base/parameters.yml:1: key 'a': unterminated interpolation in "
			    "'${b'");
	expect_interp_error("a: \"${}\"\n", NULL, NULL, "GrammarParseError",
			    "conf/base/parameters.yml:1: key 'a': empty interpolation '${}'");
	expect_interp_error("a: ${globals:x, 1, 2}\n", NULL, NULL, "GrammarParseError",
			    "conf/base/parameters.yml:1: key 'a': a resolver takes a key and an "
			    "optional default");
}

/* A waiting value is evaluated once: 40 levels of doubling stay quick. */
static void test_interp_waiting_once(void **state)
{
	(void)state;
	char yaml[8192] = "a0: ${runtime_params:x}\n";
	for (int i = 1; i <= 40; i++) {
		char line[128];
		snprintf(line, sizeof line, "a%d: \"${a%d}${a%d}\"\n", i, i - 1, i - 1);
		strcat(yaml, line);
	}
	pw_kerror err = {0};
	char *got = resolve(yaml, NULL, NULL, &err);
	assert_non_null(got);
	assert_non_null(strstr(got, "\"a40\":\"${a39}${a39}\""));
	free(got);
	/* nesting of defaults is bounded too */
	char deep[4096] = "a: ";
	for (int i = 0; i < 100; i++)
		strcat(deep, "${globals:x, ");
	strcat(deep, "1");
	for (int i = 0; i < 100; i++)
		strcat(deep, "}");
	strcat(deep, "\n");
	got = resolve(deep, NULL, NULL, &err);
	assert_null(got);
	assert_string_equal(err.type, "InterpolationResolutionError");
	pw_kerror_clear(&err);
}

/* Exponential references stop at the copy budget instead of eating memory. */
static void test_interp_copy_budget(void **state)
{
	(void)state;
	char yaml[4096] = "a0: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n";
	for (int i = 1; i < 12; i++) {
		char line[256];
		snprintf(line, sizeof line,
			 "a%d: [\"${a%d}\", \"${a%d}\", \"${a%d}\", \"${a%d}\"]\n", i, i - 1,
			 i - 1, i - 1, i - 1);
		strcat(yaml, line);
	}
	pw_kerror err = {0};
	char *got = resolve(yaml, NULL, NULL, &err);
	assert_null(got);
	assert_string_equal(err.type, "InterpolationResolutionError");
	assert_non_null(strstr(err.message, "too many values"));
	pw_kerror_clear(&err);
}

/* Strings that interpolate each other twice over double at each level: the
 * text budget (16 MiB) stops them; the same at 1 MiB resolves. */
static void test_interp_text_budget(void **state)
{
	(void)state;
	for (int levels = 10; levels <= 15; levels += 5) {
		size_t cap = 4096 + 64 * (size_t)levels;
		char *yaml = malloc(cap);
		assert_non_null(yaml);
		int n = snprintf(yaml, cap, "a0: \"%01000d\"\n", 0);
		for (int i = 1; i <= levels; i++)
			n += snprintf(yaml + n, cap - (size_t)n, "a%d: \"${a%d}${a%d}\"\n", i,
				      i - 1, i - 1);
		pw_kerror err = {0};
		char *got = resolve(yaml, NULL, NULL, &err);
		if (levels == 10) { /* 1000 << 10 bytes: fine */
			assert_non_null(got);
		} else {            /* 1000 << 15 bytes: refused */
			assert_null(got);
			assert_string_equal(err.type, "InterpolationResolutionError");
			assert_non_null(strstr(err.message, "more than 16 MiB of text"));
		}
		free(got);
		free(yaml);
		pw_kerror_clear(&err);
	}
}

/* YAML aliases nested level on level (the "billion laughs") are refused
 * after a bounded number of copies, with the alias's line; a mapping of
 * defaults merged into each of 2,000 tasks is not. */
static void test_doc_alias_budget(void **state)
{
	(void)state;
	static const char laughs[] =
		"a: &a [x, x, x, x, x, x, x, x, x, x]\n"
		"b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
		"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
		"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
		"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
		"f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
	pw_errors errs = {0};
	pw_doc *doc = pw_doc_parse(laughs, strlen(laughs), "f.yml", 0, &errs);
	assert_null(doc);
	assert_int_equal(errs.n, 1);
	assert_int_equal(errs.v[0].line, 4); /* 11,110 copies of 61 values */
	assert_non_null(strstr(errs.v[0].message, "aliases expand to too many values"));
	pw_errors_free(&errs);

	size_t cap = 1 << 20, n = 0;
	char *yaml = malloc(cap);
	assert_non_null(yaml);
	n += (size_t)snprintf(yaml, cap, "defaults: &defaults\n");
	for (int k = 0; k < 20; k++)
		n += (size_t)snprintf(yaml + n, cap - n, "  k%d: v%d\n", k, k);
	n += (size_t)snprintf(yaml + n, cap - n, "tasks:\n");
	for (int t = 0; t < 2000; t++)
		n += (size_t)snprintf(yaml + n, cap - n, "  t%d: {<<: *defaults, name: t%d}\n", t, t);
	assert_true(n < cap);
	doc = pw_doc_parse(yaml, n, "dag.yml", 0, &errs);
	if (!doc)
		fail_msg("%s", errs.v[0].message);
	json_object *tasks, *t1999, *k19;
	assert_true(json_object_object_get_ex(pw_doc_root(doc), "tasks", &tasks));
	assert_true(json_object_object_get_ex(tasks, "t1999", &t1999));
	assert_true(json_object_object_get_ex(t1999, "k19", &k19));
	assert_string_equal(json_object_get_string(k19), "v19");
	pw_doc_free(doc);
	pw_errors_free(&errs);
	free(yaml);
}

/* --- numbers ------------------------------------------------------------------- */

static void expect_number(const char *text, json_type type, const char *printed)
{
	json_object *v = pw_json_number_new(text, strlen(text));
	assert_non_null(v);
	if (!json_object_is_type(v, type) ||
	    strcmp(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), printed) != 0)
		fail_msg("%s became %s (%s), expected %s", text,
			 json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
			 json_type_to_name(json_object_get_type(v)), printed);
	json_object *copy = NULL;
	assert_int_equal(json_object_deep_copy(v, &copy, NULL), 0);
	assert_string_equal(json_object_to_json_string_ext(copy, JSON_C_TO_STRING_PLAIN),
			    printed);
	json_object_put(copy);
	json_object_put(v);
}

static void test_number_text(void **state)
{
	(void)state;
	expect_number("0.1", json_type_double, "0.1");
	expect_number("1.50", json_type_double, "1.50");
	expect_number("1e400", json_type_double, "1e400");
	expect_number("-0", json_type_double, "-0");
	expect_number("-0.0", json_type_double, "-0.0");
	expect_number("42", json_type_int, "42");
	expect_number("-9223372036854775808", json_type_int, "-9223372036854775808");
	expect_number("18446744073709551615", json_type_int, "18446744073709551615");
	expect_number("123456789012345678901234567890", json_type_double,
		      "123456789012345678901234567890");
	expect_number("-123456789012345678901234567890", json_type_double,
		      "-123456789012345678901234567890");
	/* YAML forms that are not JSON print in the nearest JSON form */
	expect_number("+7", json_type_int, "7");
	expect_number("007", json_type_int, "7");
	expect_number(".5", json_type_double, "0.5");
	expect_number("1.", json_type_double, "1.0");
	expect_number("+1.e3", json_type_double, "1.0e3");
	assert_true(pw_json_number_text("-0.5e-3", 7));
	assert_false(pw_json_number_text("01", 2));
	assert_false(pw_json_number_text("1.", 2));
	assert_false(pw_json_number_text("-", 1));
}

static void expect_round_trip(const char *json)
{
	json_object *v = pw_json_parse_exact(json);
	assert_non_null(v);
	const char *out = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
	if (strcmp(out, json) != 0)
		fail_msg("%s came back as %s", json, out);
	json_object_put(v);
}

static void test_json_round_trip(void **state)
{
	(void)state;
	expect_round_trip("{\"a\":123456789012345678901234567890,\"b\":-0,\"c\":1e400,"
			  "\"d\":0.1,\"e\":[-0,99999999999999999999,{\"x\":-0}]}");
	expect_round_trip("[-123456789012345678901234567890]");
	expect_round_trip("-0");
	expect_round_trip("{\"key\":-0,\"with \\\"quote\":123456789012345678901}");
	/* duplicate keys: the last value wins, as json-c has it */
	json_object *v = pw_json_parse_exact("{\"a\":-0,\"a\":5}");
	assert_string_equal(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
			    "{\"a\":5}");
	json_object_put(v);
}

/* YAML and JSON documents keep numbers as written, also through aliases. */
static void test_doc_numbers(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int json;
		const char *want;
	} cases[] = {
		{"a: 0.1\nb: 123456789012345678901234567890\nc: -0\nd: 1e400\ne: &x 2.50\n"
		 "f: *x\ng: 0x10\n", 0,
		 "{\"a\":0.1,\"b\":123456789012345678901234567890,\"c\":-0,\"d\":1e400,"
		 "\"e\":2.50,\"f\":2.50,\"g\":16}"},
		{"{\"a\": 0.1, \"b\": 123456789012345678901234567890, \"c\": -0}", 1,
		 "{\"a\":0.1,\"b\":123456789012345678901234567890,\"c\":-0}"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		pw_errors errs = {0};
		pw_doc *doc = pw_doc_parse(cases[i].text, strlen(cases[i].text), "f",
					   cases[i].json, &errs);
		assert_non_null(doc);
		assert_string_equal(json_object_to_json_string_ext(pw_doc_root(doc),
								   JSON_C_TO_STRING_PLAIN),
				    cases[i].want);
		pw_doc_free(doc);
		pw_errors_free(&errs);
	}
}

/* --- keys ---------------------------------------------------------------------- */

static void test_key_hint(void **state)
{
	(void)state;
	static const char *const task_keys[] = {"id", "command", "inputs", "outputs",
						"upstream", "tags"};
	char *h = pw_key_hint("name", task_keys, 6);
	assert_string_equal(h, "(did you mean 'id'? allowed: id, command, inputs, outputs, "
			       "upstream, tags)");
	free(h);
	h = pw_key_hint("input", task_keys, 6);
	assert_non_null(strstr(h, "did you mean 'inputs'?"));
	free(h);
	h = pw_key_hint("comand", task_keys, 6);
	assert_non_null(strstr(h, "did you mean 'command'?"));
	free(h);
	h = pw_key_hint("depends_on", task_keys, 6);
	assert_non_null(strstr(h, "did you mean 'upstream'?"));
	free(h);
	h = pw_key_hint("zzzzzzzz", task_keys, 6);
	assert_string_equal(h, "(allowed: id, command, inputs, outputs, upstream, tags)");
	free(h);
}

/* Builds a DAG from YAML; NULL with errs filled when invalid. */
static pw_dag *dag_of(const char *yaml, pw_errors *errs)
{
	pw_doc *doc = pw_doc_parse(yaml, strlen(yaml), "dags/d.yml", 0, errs);
	assert_non_null(doc);
	pw_dag *dag = pw_dag_from_doc("d", doc, errs);
	pw_doc_free(doc);
	return dag;
}

static void test_dag_unknown_keys_and_strings(void **state)
{
	(void)state;
	pw_errors errs = {0};
	pw_dag *dag = dag_of("tasks:\n  - name: a\n    command: x\n", &errs);
	assert_null(dag);
	bool found = false;
	for (size_t i = 0; i < errs.n; i++)
		found |= errs.v[i].line == 2 &&
			 strncmp(errs.v[i].message,
				 "unknown key 'name' in task #1 (did you mean 'id'? allowed: id, "
				 "command, inputs, outputs, upstream, tags, namespace, retries,",
				 100) == 0;
	if (!found)
		fail_msg("no did-you-mean for 'name': %s", errs.n ? errs.v[0].message : "-");
	pw_errors_free(&errs);

	dag = dag_of("shedule: null\ntasks:\n  - {id: a, command: x}\n", &errs);
	assert_null(dag);
	assert_non_null(strstr(errs.v[0].message, "unknown key 'shedule' (did you mean "
						  "'schedule'? allowed: description, schedule,"));
	pw_errors_free(&errs);

	/* inputs, outputs, upstream and tags may be one string (Kedro's node) */
	dag = dag_of("tasks:\n"
		     "  - {id: a, command: x, outputs: ds, tags: t}\n"
		     "  - {id: b, command: x, inputs: ds, upstream: a}\n", &errs);
	assert_non_null(dag);
	assert_int_equal(dag->tasks[1].inputs.n, 1);
	assert_string_equal(dag->tasks[1].inputs.v[0], "ds");
	assert_string_equal(dag->tasks[0].tags.v[0], "t");
	assert_int_equal(dag->tasks[1].n_up, 1);
	pw_dag_free(dag);
	pw_errors_free(&errs);
}

/* --- free inputs --------------------------------------------------------------- */

static void expect_missing(const pw_dag *dag, const bool *selected, json_object *catalog,
			   json_object *params, const char *want_message)
{
	pw_strv missing = {0};
	pw_kerror err = {0};
	assert_int_equal(pw_free_inputs_missing(dag, selected, catalog, params, &missing), 0);
	if (!want_message) {
		if (missing.n)
			fail_msg("unexpected missing input %s", missing.v[0]);
	} else {
		assert_true(missing.n > 0);
		assert_int_equal(pw_free_inputs_error(&missing, &err), -1);
		assert_string_equal(err.type, "ValueError");
		assert_string_equal(err.message, want_message);
	}
	pw_kerror_clear(&err);
	pw_strv_free(&missing);
}

static void test_free_inputs(void **state)
{
	(void)state;
	pw_errors errs = {0};
	pw_dag *dag = dag_of("tasks:\n"
			     "  - {id: a, command: x, inputs: [raw, ghost_in, zeta], outputs: mid}\n"
			     "  - {id: b, command: x, inputs: [mid, \"params:topn\"], outputs: out}\n"
			     "  - {id: c, command: x, inputs: [\"params:model.lr\", parameters]}\n",
			     &errs);
	assert_non_null(dag);
	json_object *catalog = json_tokener_parse("{\"raw\": {\"type\": \"t\"}}");
	json_object *params = json_tokener_parse("{\"top_n\": 1, \"model\": {\"lr\": 0.1}}");
	/* several names, sorted, in a Python set */
	expect_missing(dag, NULL, catalog, params,
		       "Pipeline input(s) {'ghost_in', 'params:topn', 'zeta'} not found in the "
		       "DataCatalog");
	/* a slice: mid becomes free (outputs not in the catalog are fine) */
	bool only_b[3] = {false, true, false};
	expect_missing(dag, only_b, catalog, params,
		       "Pipeline input(s) {'mid', 'params:topn'} not found in the DataCatalog");
	bool only_c[3] = {false, false, true};
	expect_missing(dag, only_c, catalog, params, NULL);
	/* dotted keys reach into nested parameters */
	json_object *flat = json_tokener_parse("{\"model\": 1}");
	expect_missing(dag, only_c, catalog, flat,
		       "Pipeline input(s) {'params:model.lr'} not found in the DataCatalog");
	json_object_put(flat);
	/* __default__: a union links one DAG's output to another's input */
	pw_dag *other = dag_of("tasks:\n  - {id: g, command: x, outputs: [ghost_in, zeta]}\n",
			       &errs);
	pw_dag *parts[] = {dag, other};
	pw_dag *all = pw_dag_union("__default__", parts, 2, &errs);
	assert_non_null(all);
	expect_missing(all, NULL, catalog, params,
		       "Pipeline input(s) {'params:topn'} not found in the DataCatalog");
	pw_dag_free(all);
	pw_dag_free(other);
	pw_dag_free(dag);
	json_object_put(catalog);
	json_object_put(params);
	pw_errors_free(&errs);
}

/* --- projects ------------------------------------------------------------------ */

static pw_project *load(const char *dir, const char *env)
{
	pw_project_opts opts = {.path = dir, .env = env};
	pw_project *p = NULL;
	char *err = NULL;
	if (pw_project_load(&opts, &p, &err) != PW_OK)
		fail_msg("load failed: %s", err);
	return p;
}

static void test_project_conf(void **state)
{
	(void)state;
	char *dir = th_mkdtemp();
	th_write(dir, "pipewright.yml", "project_name: m\n");
	th_write(dir, "conf/base/globals.yml", "folder: data\nn: 1\n");
	th_write(dir, "conf/local/globals.yml", "n: 2\n");
	th_write(dir, "conf/base/catalog.yml",
		 "_csv: {type: pandas.CSVDataset}\n"
		 "raw:\n  type: ${_csv.type}\n  filepath: ${globals:folder}/raw.csv\n");
	th_write(dir, "conf/base/parameters.yml",
		 "_lr: 0.1\nmodel: {lr: \"${_lr}\"}\nn: ${globals:n}\n"
		 "size: ${runtime_params:size, 10}\nneed: ${runtime_params:need}\n");
	th_write(dir, "dags/d.yml",
		 "tasks:\n  - id: a\n    command: x\n    inputs: [raw, \"params:topn\"]\n"
		 "  - id: b\n    command: x\n    inputs:\n      - ghost_in\n");
	pw_project *p = load(dir, NULL);
	assert_null(p->conf_error.type);
	/* templates are gone; env globals win; references resolved */
	assert_string_equal(json_object_to_json_string_ext(p->catalog, JSON_C_TO_STRING_PLAIN |
							   JSON_C_TO_STRING_NOSLASHESCAPE),
			    "{\"raw\":{\"type\":\"pandas.CSVDataset\",\"filepath\":\"data/raw.csv\"}}");
	assert_string_equal(json_object_to_json_string_ext(p->parameters, JSON_C_TO_STRING_PLAIN),
			    "{\"model\":{\"lr\":0.1},\"n\":2,\"size\":10,"
			    "\"need\":\"${runtime_params:need}\"}");
	/* per run: runtime params resolve, or fail naming file, line and key */
	json_object *rt = json_tokener_parse("{\"size\": 3, \"need\": \"x\"}"), *out = NULL;
	pw_kerror err = {0};
	assert_int_equal(pw_project_run_parameters(p, rt, &out, &err), 0);
	assert_string_equal(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN),
			    "{\"model\":{\"lr\":0.1},\"n\":2,\"size\":3,\"need\":\"x\"}");
	json_object_put(out);
	json_object_put(rt);
	rt = json_tokener_parse("{}");
	assert_int_equal(pw_project_run_parameters(p, rt, &out, &err), -1);
	assert_string_equal(err.type, "InterpolationResolutionError");
	assert_string_equal(err.message, "conf/base/parameters.yml:5: key 'need': Runtime "
					 "parameter 'need' not found and no default value provided.");
	json_object_put(rt);
	pw_kerror_clear(&err);
	/* the catalog has no runtime_params: the loaded one, shared */
	assert_int_equal(pw_project_run_catalog(p, NULL, &out, &err), 0);
	assert_ptr_equal(out, p->catalog);
	json_object_put(out);
	/* free inputs: the DAG loads, with warnings at the reading lines */
	pw_dag *d = pw_project_dag(p, "d");
	assert_non_null(d);
	assert_int_equal(d->warnings.n, 2);
	assert_string_equal(d->warnings.v[0].message,
			    "Pipeline input(s) {'ghost_in'} not found in the DataCatalog");
	assert_int_equal(d->warnings.v[0].line, 8);
	assert_string_equal(d->warnings.v[1].message,
			    "Pipeline input(s) {'params:topn'} not found in the DataCatalog");
	assert_int_equal(d->warnings.v[1].line, 4);
	assert_string_equal(d->warnings.v[1].file, "dags/d.yml");
	pw_project_free(p);

	/* a catalog using runtime params is resolved per run */
	th_write(dir, "conf/base/catalog.yml",
		 "raw: {type: t, filepath: \"${runtime_params:dir, data}/raw.csv\"}\n");
	p = load(dir, NULL);
	assert_true(p->catalog_runtime);
	rt = json_tokener_parse("{\"dir\": \"alt\"}");
	assert_int_equal(pw_project_run_catalog(p, rt, &out, &err), 0);
	assert_string_equal(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN |
							   JSON_C_TO_STRING_NOSLASHESCAPE),
			    "{\"raw\":{\"type\":\"t\",\"filepath\":\"alt/raw.csv\"}}");
	json_object_put(out);
	json_object_put(rt);
	pw_project_free(p);

	/* an error in an interpolation names file, line and key */
	th_write(dir, "conf/base/catalog.yml", "raw:\n  type: t\n  filepath: ${globals:nope}\n");
	p = load(dir, NULL);
	assert_string_equal(p->conf_error.type, "InterpolationResolutionError");
	assert_string_equal(p->conf_error.message,
			    "conf/base/catalog.yml:3: key 'raw.filepath': Globals key 'nope' not "
			    "found and no default value provided.");
	pw_project_free(p);

	/* --env naming a missing folder is Kedro's MissingConfigException */
	p = load(dir, "prod");
	assert_string_equal(p->conf_error.type, "MissingConfigException");
	assert_non_null(strstr(p->conf_error.message, "conf/prod"));
	pw_project_free(p);
	th_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_interp_references),
		cmocka_unit_test(test_interp_globals),
		cmocka_unit_test(test_interp_runtime_params),
		cmocka_unit_test(test_interp_errors),
		cmocka_unit_test(test_interp_waiting_once),
		cmocka_unit_test(test_interp_copy_budget),
		cmocka_unit_test(test_interp_text_budget),
		cmocka_unit_test(test_doc_alias_budget),
		cmocka_unit_test(test_number_text),
		cmocka_unit_test(test_json_round_trip),
		cmocka_unit_test(test_doc_numbers),
		cmocka_unit_test(test_key_hint),
		cmocka_unit_test(test_dag_unknown_keys_and_strings),
		cmocka_unit_test(test_free_inputs),
		cmocka_unit_test(test_project_conf),
	};
	return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
