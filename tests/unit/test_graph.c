/* test_graph.c - DOT text of a DAG and its SVG through Graphviz (graph.h). */
#include "testhelp.h"

#include <stdlib.h>
#include <string.h>

#include "dag.h"
#include "doc.h"
#include "graph.h"

static const char YAML[] =
	"start_date: \"2026-01-02\"\n"
	"catchup: true\n"
	"tasks:\n"
	"  - id: a\n"
	"    command: \"true\"\n"
	"    outputs: [ds]\n"
	"  - id: b\n"
	"    namespace: ns\n"
	"    command: \"true\"\n"
	"    inputs: [ds]\n"
	"  - id: c\n"
	"    upstream: [a]\n"
	"    command: \"true\"\n";

static pw_dag *build(const char *yaml)
{
	pw_errors errs = {0};
	pw_doc *doc = pw_doc_parse(yaml, strlen(yaml), "dags/g.yml", 0, &errs);
	assert_non_null(doc);
	pw_dag *dag = pw_dag_from_doc("g", doc, &errs);
	pw_doc_free(doc);
	if (!dag)
		fail_msg("%s", errs.n ? errs.v[0].message : "no DAG");
	pw_errors_free(&errs);
	return dag;
}

static int count_of(const char *s, const char *what)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

static void test_start_date_and_catchup(void **state)
{
	(void)state;
	pw_dag *dag = build(YAML);
	assert_int_equal(dag->start_date, 1767312000000LL); /* 2026-01-02T00:00:00Z */
	assert_true(dag->catchup);
	pw_dag_free(dag);
}

static void test_dot(void **state)
{
	(void)state;
	pw_dag *dag = build(YAML);
	json_object *states = json_tokener_parse("{\"a\": \"success\", \"ns.b\": \"failed\"}");
	char *out = NULL;
	size_t len = 0;
	assert_int_equal(pw_graph_render(dag, states, "dot", &out, &len), 0);
	assert_int_equal(len, strlen(out));
	assert_non_null(strstr(out, "digraph \"g\""));
	assert_non_null(strstr(out, "\"a\" -> \"ns.b\""));
	assert_non_null(strstr(out, "\"a\" -> \"c\""));
	assert_non_null(strstr(out, "id=\"task-ns.b\""));
	assert_non_null(strstr(out, "class=\"state-failed\""));
	assert_int_equal(count_of(out, "class=\"state-"), 2);
	free(out);
	assert_int_equal(pw_graph_render(dag, NULL, "png", &out, &len), -2);
	assert_null(out);
	json_object_put(states);
	pw_dag_free(dag);
}

static void test_svg(void **state)
{
	(void)state;
	pw_dag *dag = build(YAML);
	char *out = NULL;
	size_t len = 0;
	assert_int_equal(pw_graph_render(dag, NULL, "svg", &out, &len), 0);
	assert_int_equal(len, strlen(out));
	assert_non_null(strstr(out, "<svg"));
	assert_non_null(strstr(out, "</svg>"));
	assert_int_equal(count_of(out, "class=\"node\""), 3);
	assert_int_equal(count_of(out, "class=\"edge\""), 2);
	assert_int_equal(count_of(out, "id=\"task-a\""), 1);
	assert_int_equal(count_of(out, "id=\"task-ns.b\""), 1);
	assert_int_equal(count_of(out, "id=\"task-c\""), 1);
	free(out);
	/* DOT that does not parse is an error, not a crash */
	assert_int_equal(pw_graph_svg("digraph {", &out, &len), -1);
	assert_null(out);
	pw_dag_free(dag);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_date_and_catchup),
		cmocka_unit_test(test_dot),
		cmocka_unit_test(test_svg),
	};
	return cmocka_run_group_tests_name("graph", tests, NULL, NULL);
}
