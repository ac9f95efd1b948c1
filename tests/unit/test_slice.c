/* test_slice.c - Kedro slicing, dataset paths and only_missing_outputs. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testhelp.h"

#include "dag.h"
#include "doc.h"
#include "slice.h"
#include "util.h"

/* --- helpers ------------------------------------------------------------ */

/* A DAG built from YAML text; fails the test on any load error. */
static pw_dag *dag_from_yaml(const char *yaml)
{
	pw_errors errs = {0};
	pw_doc *doc = pw_doc_parse(yaml, strlen(yaml), "dags/t.yml", 0, &errs);
	pw_dag *dag = doc ? pw_dag_from_doc("t", doc, &errs) : NULL;
	for (size_t i = 0; i < errs.n; i++) {
		char *m = pw_error_format(&errs.v[i]);
		fprintf(stderr, "load error: %s\n", m ? m : "?");
		free(m);
	}
	pw_errors_free(&errs);
	pw_doc_free(doc);
	assert_non_null(dag);
	return dag;
}

/* Fills sv from a comma-separated list ("" = empty). */
static void strv_set(pw_strv *sv, const char *csv)
{
	char *copy = strdup(csv), *save = NULL;
	assert_non_null(copy);
	for (char *tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save))
		assert_int_equal(pw_strv_push(sv, tok), 0);
	free(copy);
}

/* The selected task names, comma-separated, in file order. malloc'd. */
static char *selection(const pw_dag *dag, const bool *sel)
{
	size_t cap = 1;
	for (size_t i = 0; i < dag->n_tasks; i++)
		cap += strlen(dag->tasks[i].name) + 1;
	char *out = calloc(cap, 1);
	assert_non_null(out);
	for (size_t i = 0; i < dag->n_tasks; i++) {
		if (!sel[i])
			continue;
		if (*out)
			strcat(out, ",");
		strcat(out, dag->tasks[i].name);
	}
	return out;
}

/*
 * Runs pw_slice with the filters given as comma-separated lists (NULL = not
 * given) and returns either the selection or "ERR <type>: <message>".
 */
typedef struct filters {
	const char *tags, *from_nodes, *to_nodes, *node_names, *from_inputs,
		*to_outputs, *namespaces;
} filters;

static char *run_slice(const pw_dag *dag, filters f)
{
	pw_slice_req req = {0};
	pw_kerror err = {0};
	char *out;
	bool *sel = calloc(dag->n_tasks + 1, sizeof *sel);
	assert_non_null(sel);
	strv_set(&req.tags, f.tags ? f.tags : "");
	strv_set(&req.from_nodes, f.from_nodes ? f.from_nodes : "");
	strv_set(&req.to_nodes, f.to_nodes ? f.to_nodes : "");
	strv_set(&req.node_names, f.node_names ? f.node_names : "");
	strv_set(&req.from_inputs, f.from_inputs ? f.from_inputs : "");
	strv_set(&req.to_outputs, f.to_outputs ? f.to_outputs : "");
	strv_set(&req.namespaces, f.namespaces ? f.namespaces : "");
	if (pw_slice(dag, &req, sel, &err) == 0) {
		assert_null(err.message);
		out = selection(dag, sel);
	} else {
		assert_non_null(err.type);
		assert_non_null(err.message);
		out = pw_asprintf("ERR %s: %s", err.type, err.message);
		assert_non_null(out);
	}
	pw_kerror_clear(&err);
	pw_slice_req_free(&req);
	free(sel);
	return out;
}

#define CHECK_SLICE(dag, expect, ...)                                      \
	do {                                                               \
		char *got_ = run_slice((dag), (filters){__VA_ARGS__});     \
		assert_string_equal(got_, (expect));                       \
		free(got_);                                                \
	} while (0)

/* Kedro's documented slicing example (docs: "Slice a pipeline"). */
static const char KEDRO_EXAMPLE[] =
	"tasks:\n"
	"  - id: len\n"
	"    command: \"true\"\n"
	"    inputs: [xs]\n"
	"    outputs: [n]\n"
	"  - id: mean_node\n"
	"    command: \"true\"\n"
	"    inputs: [xs, n]\n"
	"    outputs: [m]\n"
	"    tags: [mean]\n"
	"  - id: mean_sos\n"
	"    command: \"true\"\n"
	"    inputs: [xs, n]\n"
	"    outputs: [m2]\n"
	"    tags: [mean, variance]\n"
	"  - id: variance_node\n"
	"    command: \"true\"\n"
	"    inputs: [m, m2]\n"
	"    outputs: [v]\n"
	"    tags: [variance]\n";

static int setup_kedro(void **state)
{
	*state = dag_from_yaml(KEDRO_EXAMPLE);
	return 0;
}

static int teardown_dag(void **state)
{
	pw_dag_free(*state);
	return 0;
}

#define ALL "len,mean_node,mean_sos,variance_node"
#define EMPTY_MSG                                                          \
	"ERR ValueError: Pipeline contains no nodes after applying all "   \
	"provided filters. Please ensure that at least one pipeline with " \
	"nodes has been defined."

/* --- Kedro's example, one filter at a time -------------------------------- */

static void test_no_filters(void **state)
{
	CHECK_SLICE(*state, ALL, .tags = NULL);
}

static void test_from_inputs(void **state)
{
	pw_dag *d = *state;
	CHECK_SLICE(d, "variance_node", .from_inputs = "m2");
	CHECK_SLICE(d, "mean_node,mean_sos,variance_node", .from_inputs = "n");
	CHECK_SLICE(d, ALL, .from_inputs = "xs");
	CHECK_SLICE(d, "variance_node", .from_inputs = "m,m2");
	/* A pipeline output is a dataset too; nothing reads it. */
	CHECK_SLICE(d, EMPTY_MSG, .from_inputs = "v");
}

static void test_to_outputs(void **state)
{
	pw_dag *d = *state;
	CHECK_SLICE(d, "len,mean_node", .to_outputs = "m");
	CHECK_SLICE(d, ALL, .to_outputs = "v");
	CHECK_SLICE(d, "len", .to_outputs = "n");
	CHECK_SLICE(d, "len,mean_node,mean_sos", .to_outputs = "m,m2");
	/* A free input is a dataset, but nobody produces it. */
	CHECK_SLICE(d, EMPTY_MSG, .to_outputs = "xs");
}

static void test_tags(void **state)
{
	pw_dag *d = *state;
	CHECK_SLICE(d, "mean_node,mean_sos,variance_node",
		    .tags = "mean,variance");
	CHECK_SLICE(d, "mean_node,mean_sos", .tags = "mean");
	CHECK_SLICE(d, "mean_sos,variance_node", .tags = "variance");
	/* An unknown tag is no error by itself, together with a known one. */
	CHECK_SLICE(d, "mean_node,mean_sos", .tags = "mean,nope");
}

static void test_from_to_nodes(void **state)
{
	pw_dag *d = *state;
	CHECK_SLICE(d, "mean_node,variance_node", .from_nodes = "mean_node");
	CHECK_SLICE(d, "len,mean_sos", .to_nodes = "mean_sos");
	CHECK_SLICE(d, ALL, .from_nodes = "len");
	CHECK_SLICE(d, "len", .to_nodes = "len");
	CHECK_SLICE(d, ALL, .to_nodes = "variance_node");
	CHECK_SLICE(d, "mean_node,mean_sos,variance_node",
		    .from_nodes = "mean_node,mean_sos");
}

static void test_node_names(void **state)
{
	pw_dag *d = *state;
	CHECK_SLICE(d, "len,variance_node",
		    .node_names = "variance_node,len");
	CHECK_SLICE(d, "mean_sos", .node_names = "mean_sos,mean_sos");
}

/* --- intersections ------------------------------------------------------ */

static void test_intersections(void **state)
{
	pw_dag *d = *state;
	CHECK_SLICE(d, "variance_node", .tags = "variance",
		    .from_inputs = "m2");
	CHECK_SLICE(d, "len,mean_node", .from_nodes = "len",
		    .to_nodes = "mean_node");
	CHECK_SLICE(d, "mean_sos", .tags = "mean", .to_outputs = "m2");
	CHECK_SLICE(d, "mean_node,mean_sos", .from_inputs = "n",
		    .to_outputs = "m,m2");
	CHECK_SLICE(d, "mean_sos", .node_names = "len,mean_sos",
		    .tags = "variance");
	/* Each filter sees the whole pipeline: to_nodes is not cut short by
	 * the node_names subset. */
	CHECK_SLICE(d, "len", .node_names = "len",
		    .to_nodes = "variance_node");
	/* Disjoint filters leave nothing. */
	CHECK_SLICE(d, EMPTY_MSG, .tags = "mean", .from_inputs = "m");
	CHECK_SLICE(d, EMPTY_MSG, .tags = "nope");
}

/* --- errors ----------------------------------------------------------- */

static void test_errors(void **state)
{
	pw_dag *d = *state;
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain nodes named "
		    "['x'].",
		    .node_names = "x");
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain nodes named "
		    "['x', 'y'].",
		    .node_names = "len,x,y,x");
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain nodes named "
		    "['x'].",
		    .from_nodes = "x");
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain nodes named "
		    "['y'].",
		    .to_nodes = "y");
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain datasets named "
		    "['W']",
		    .from_inputs = "W");
	/* The missing datasets are sorted, as Kedro sorts them. */
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain datasets named "
		    "['W', 'a']",
		    .to_outputs = "m,a,W");
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain nodes with "
		    "namespace(s) ['x'].",
		    .namespaces = "x");
}

/* The first failing filter in Kedro's order wins, whatever else fails. */
static void test_error_order(void **state)
{
	pw_dag *d = *state;
	const char *all_bad_but_tags_nodes =
		"ERR ValueError: Pipeline does not contain nodes named "
		"['f'].";
	CHECK_SLICE(d, all_bad_but_tags_nodes, .tags = "nope",
		    .from_nodes = "f", .to_nodes = "t", .node_names = "n",
		    .from_inputs = "I", .to_outputs = "O", .namespaces = "s");
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain nodes named "
		    "['t'].",
		    .to_nodes = "t", .node_names = "n", .from_inputs = "I");
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain nodes named "
		    "['n'].",
		    .node_names = "n", .from_inputs = "I", .namespaces = "s");
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain datasets named "
		    "['I']",
		    .from_inputs = "I", .to_outputs = "O", .namespaces = "s");
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain datasets named "
		    "['O']",
		    .to_outputs = "O", .namespaces = "s");
	/* Unknown names beat an empty intersection. */
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain nodes with "
		    "namespace(s) ['s'].",
		    .tags = "nope", .namespaces = "s");
}

/* --- namespaces, explicit upstream, transcoding --------------------------- */

/*
 * ns.a -da-> ns.sub.b;  ns.a -upstream-> d;  nsx.c writes df@spark and e
 * reads df@pandas (transcoded forms of df); q.a is an id with a dot and no
 * namespace, so its name ends in ".a" too.
 */
static const char NS_DAG[] =
	"tasks:\n"
	"  - id: a\n"
	"    command: \"true\"\n"
	"    namespace: ns\n"
	"    outputs: [da]\n"
	"  - id: b\n"
	"    command: \"true\"\n"
	"    namespace: ns.sub\n"
	"    inputs: [da]\n"
	"    outputs: [db]\n"
	"  - id: c\n"
	"    command: \"true\"\n"
	"    namespace: nsx\n"
	"    outputs: [\"df@spark\"]\n"
	"  - id: d\n"
	"    command: \"true\"\n"
	"    upstream: [ns.a]\n"
	"  - id: e\n"
	"    command: \"true\"\n"
	"    inputs: [\"df@pandas\"]\n"
	"  - id: q.a\n"
	"    command: \"true\"\n";

static int setup_ns(void **state)
{
	*state = dag_from_yaml(NS_DAG);
	return 0;
}

static void test_namespaces(void **state)
{
	pw_dag *d = *state;
	CHECK_SLICE(d, "ns.a,ns.sub.b", .namespaces = "ns");
	CHECK_SLICE(d, "ns.sub.b", .namespaces = "ns.sub");
	CHECK_SLICE(d, "nsx.c", .namespaces = "nsx");
	CHECK_SLICE(d, "ns.a,ns.sub.b,nsx.c", .namespaces = "nsx,ns");
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain nodes with "
		    "namespace(s) ['n', 'ns.su'].",
		    .namespaces = "ns,n,ns.su");
	CHECK_SLICE(d, "ns.sub.b", .namespaces = "ns", .tags = NULL,
		    .from_inputs = "da");
}

static void test_did_you_mean(void **state)
{
	pw_dag *d = *state;
	CHECK_SLICE(d, "ns.a,q.a", .node_names = "q.a,ns.a");
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain nodes named "
		    "['b']. Did you mean: ['ns.sub.b']?",
		    .node_names = "b");
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain nodes named "
		    "['a']. Did you mean: ['ns.a', 'q.a']?",
		    .from_nodes = "a");
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain nodes named "
		    "['sub.b', 'zz']. Did you mean: ['ns.sub.b']?",
		    .to_nodes = "d,sub.b,zz");
	/* "s.a" is not a dotted suffix of "ns.a". */
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain nodes named "
		    "['s.a'].",
		    .node_names = "s.a");
}

static void test_upstream_edges(void **state)
{
	pw_dag *d = *state;
	/* d depends on ns.a through `upstream` only. */
	CHECK_SLICE(d, "ns.a,ns.sub.b,d", .from_nodes = "ns.a");
	CHECK_SLICE(d, "ns.a,d", .to_nodes = "d");
	CHECK_SLICE(d, "ns.sub.b", .from_inputs = "da",
		    .node_names = "ns.sub.b,d");
}

static void test_transcoding(void **state)
{
	pw_dag *d = *state;
	CHECK_SLICE(d, "e", .from_inputs = "df");
	CHECK_SLICE(d, "e", .from_inputs = "df@pandas");
	CHECK_SLICE(d, "nsx.c", .to_outputs = "df");
	CHECK_SLICE(d, "nsx.c", .to_outputs = "df@spark");
	CHECK_SLICE(d,
		    "ERR ValueError: Pipeline does not contain datasets named "
		    "['df@csv']",
		    .from_inputs = "df@csv");
}

/* --- dataset paths ------------------------------------------------------- */

typedef struct cat_fixture {
	char *root;
	json_object *catalog;
	json_object *load_versions;
	pw_catalog_view view;
} cat_fixture;

static const char CATALOG[] =
	"{"
	"\"raw\": {\"type\": \"pandas.CSVDataset\","
	"          \"filepath\": \"data/01_raw/raw.csv\"},"
	"\"x\": {\"type\": \"pandas.CSVDataset\","
	"        \"filepath\": \"data/02/x.csv\", \"versioned\": false},"
	"\"z\": {\"type\": \"pandas.CSVDataset\","
	"        \"filepath\": \"data/03/z.csv\"},"
	"\"model\": {\"type\": \"pickle.PickleDataset\","
	"            \"filepath\": \"data/06_models/model.pkl\","
	"            \"versioned\": true},"
	"\"report\": {\"type\": \"pickle.PickleDataset\","
	"             \"filepath\": \"data/08/report/\", \"versioned\": true},"
	"\"nofp\": {\"type\": \"MemoryDataset\"},"
	"\"abs\": {\"type\": \"text.TextDataset\","
	"          \"filepath\": \"/abs/t.txt\"}"
	"}";

static int setup_cat(void **state)
{
	cat_fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->root = th_mkdtemp();
	f->catalog = json_tokener_parse(CATALOG);
	assert_non_null(f->catalog);
	f->view.root = f->root;
	f->view.catalog = f->catalog;
	*state = f;
	return 0;
}

static int teardown_cat(void **state)
{
	cat_fixture *f = *state;
	json_object_put(f->catalog);
	json_object_put(f->load_versions);
	th_rmtree(f->root);
	free(f);
	return 0;
}

/* Expects path == root + "/" + rel (or NULL when rel is NULL). */
static void check_path(const cat_fixture *f, char *path, const char *rel)
{
	if (!rel) {
		assert_null(path);
		return;
	}
	assert_non_null(path);
	char *want = rel[0] == '/' ? strdup(rel)
				   : pw_asprintf("%s/%s", f->root, rel);
	assert_non_null(want);
	assert_string_equal(path, want);
	free(want);
	free(path);
}

static void test_paths_plain(void **state)
{
	cat_fixture *f = *state;
	bool oom = true;
	check_path(f, pw_dataset_save_path(&f->view, "x", "R1", &oom),
		   "data/02/x.csv");
	assert_false(oom);
	check_path(f, pw_dataset_load_path(&f->view, "x", "R1", &oom),
		   "data/02/x.csv");
	check_path(f, pw_dataset_save_path(&f->view, "abs", "R1", &oom),
		   "/abs/t.txt");
	/* Not in the catalog, or no filepath: in memory, no path, no error. */
	oom = true;
	assert_null(pw_dataset_save_path(&f->view, "memory", "R1", &oom));
	assert_false(oom);
	oom = true;
	assert_null(pw_dataset_load_path(&f->view, "nofp", "R1", &oom));
	assert_false(oom);
	assert_false(pw_dataset_exists(&f->view, "memory"));
	assert_false(pw_dataset_exists(&f->view, "nofp"));

	assert_false(pw_dataset_exists(&f->view, "x"));
	th_write(f->root, "data/02/x.csv", "a,b\n");
	assert_true(pw_dataset_exists(&f->view, "x"));
}

static void test_paths_versioned(void **state)
{
	cat_fixture *f = *state;
	const char *fp = "data/06_models/model.pkl";
	char rel[256];
	bool oom = true;

	/* Save: <filepath>/<run id>/<basename>. */
	check_path(f,
		   pw_dataset_save_path(&f->view, "model",
					"2024-03-01T00.00.00.000Z", &oom),
		   "data/06_models/model.pkl/2024-03-01T00.00.00.000Z/"
		   "model.pkl");
	assert_false(oom);
	/* Load with no version yet: the save version's path. */
	check_path(f, pw_dataset_load_path(&f->view, "model", "RUN", &oom),
		   "data/06_models/model.pkl/RUN/model.pkl");
	assert_false(pw_dataset_exists(&f->view, "model"));

	/* Load: the newest version that holds the file. */
	snprintf(rel, sizeof rel, "%s/2024-01-01T00.00.00.000Z/model.pkl", fp);
	th_write(f->root, rel, "old");
	snprintf(rel, sizeof rel, "%s/2024-02-01T00.00.00.000Z/model.pkl", fp);
	th_write(f->root, rel, "new");
	/* A newer folder without the file (a save that failed) is skipped,
	 * as are hidden entries. */
	snprintf(rel, sizeof rel, "%s/2024-09-01T00.00.00.000Z/other", fp);
	th_write(f->root, rel, "x");
	snprintf(rel, sizeof rel, "%s/.zzz/model.pkl", fp);
	th_write(f->root, rel, "x");
	check_path(f, pw_dataset_load_path(&f->view, "model", "RUN", &oom),
		   "data/06_models/model.pkl/2024-02-01T00.00.00.000Z/"
		   "model.pkl");
	assert_false(oom);
	assert_true(pw_dataset_exists(&f->view, "model"));

	/* Pinned by load_versions, whether it exists or not. */
	f->load_versions = json_tokener_parse(
		"{\"model\": \"2024-01-01T00.00.00.000Z\"}");
	assert_non_null(f->load_versions);
	f->view.load_versions = f->load_versions;
	check_path(f, pw_dataset_load_path(&f->view, "model", "RUN", &oom),
		   "data/06_models/model.pkl/2024-01-01T00.00.00.000Z/"
		   "model.pkl");
	assert_true(pw_dataset_exists(&f->view, "model"));
	json_object_object_add(f->load_versions, "model",
			       json_object_new_string("1999"));
	check_path(f, pw_dataset_load_path(&f->view, "model", "RUN", &oom),
		   "data/06_models/model.pkl/1999/model.pkl");
	assert_false(pw_dataset_exists(&f->view, "model"));
	/* The save path ignores load_versions. */
	check_path(f, pw_dataset_save_path(&f->view, "model", "RUN", &oom),
		   "data/06_models/model.pkl/RUN/model.pkl");
	/* A pin for an unversioned dataset changes nothing. */
	json_object_object_add(f->load_versions, "x",
			       json_object_new_string("V"));
	check_path(f, pw_dataset_load_path(&f->view, "x", "RUN", &oom),
		   "data/02/x.csv");

	/* A trailing slash does not hide the basename. */
	check_path(f, pw_dataset_save_path(&f->view, "report", "R", &oom),
		   "data/08/report/R/report");
}

/* --- only_missing_outputs ------------------------------------------------ */

/*
 * a: raw -> x (file)   b: x -> y (memory)   c: y, params:p -> z (file)
 * d: z -> nothing      e: raw -> model (versioned)
 */
static const char OMO_DAG[] =
	"tasks:\n"
	"  - id: a\n"
	"    command: \"true\"\n"
	"    inputs: [raw]\n"
	"    outputs: [x]\n"
	"  - id: b\n"
	"    command: \"true\"\n"
	"    inputs: [x]\n"
	"    outputs: [y]\n"
	"  - id: c\n"
	"    command: \"true\"\n"
	"    inputs: [y, \"params:p\"]\n"
	"    outputs: [z]\n"
	"  - id: d\n"
	"    command: \"true\"\n"
	"    inputs: [z]\n"
	"  - id: e\n"
	"    command: \"true\"\n"
	"    inputs: [raw, parameters]\n"
	"    outputs: [model]\n";

/* Runs only_missing_outputs over the tasks named in csv (all when NULL). */
static char *omo(const pw_dag *dag, const cat_fixture *f, const char *csv)
{
	bool *sel = calloc(dag->n_tasks, sizeof *sel);
	assert_non_null(sel);
	for (size_t i = 0; i < dag->n_tasks; i++) {
		const char *nm = dag->tasks[i].name;
		size_t ln = strlen(nm);
		if (!csv) {
			sel[i] = true;
			continue;
		}
		for (const char *p = csv; (p = strstr(p, nm)); p += ln)
			if ((p == csv || p[-1] == ',') &&
			    (p[ln] == ',' || p[ln] == '\0'))
				sel[i] = true;
	}
	assert_int_equal(pw_only_missing_outputs(dag, &f->view, sel), 0);
	char *out = selection(dag, sel);
	free(sel);
	return out;
}

#define CHECK_OMO(dag, f, csv, expect)                                     \
	do {                                                               \
		char *got_ = omo((dag), (f), (csv));                       \
		assert_string_equal(got_, (expect));                       \
		free(got_);                                                \
	} while (0)

static void test_only_missing(void **state)
{
	cat_fixture *f = *state;
	pw_dag *dag = dag_from_yaml(OMO_DAG);

	/* Nothing on disk: everything with a persisted output runs, and b
	 * because c needs its in-memory y. */
	CHECK_OMO(dag, f, NULL, "a,b,c,d,e");

	/* All persisted outputs exist: only d (no outputs) runs; it needs z,
	 * which exists, so c stays out, and so do b and a. */
	th_write(f->root, "data/02/x.csv", "x");
	th_write(f->root, "data/03/z.csv", "z");
	th_write(f->root, "data/06_models/model.pkl/V1/model.pkl", "m");
	CHECK_OMO(dag, f, NULL, "d");

	/* z missing: c runs, needs y (memory) so b runs; b's x exists. */
	char *z = pw_asprintf("%s/data/03/z.csv", f->root);
	assert_non_null(z);
	assert_int_equal(remove(z), 0);
	CHECK_OMO(dag, f, NULL, "b,c,d");
	/* Within a selection: b is not selected, so it stays out. */
	CHECK_OMO(dag, f, "c,d", "c,d");
	CHECK_OMO(dag, f, "a,b", "");

	/* x missing too: a runs as well. */
	char *x = pw_asprintf("%s/data/02/x.csv", f->root);
	assert_non_null(x);
	assert_int_equal(remove(x), 0);
	CHECK_OMO(dag, f, NULL, "a,b,c,d");

	/* Only x missing: a runs for its own output; b and c do not. */
	th_write(f->root, "data/03/z.csv", "z");
	CHECK_OMO(dag, f, NULL, "a,d");

	/* A versioned output counts as existing when a version exists;
	 * a pinned version that does not exist makes it missing. */
	th_write(f->root, "data/02/x.csv", "x");
	f->load_versions = json_tokener_parse("{\"model\": \"V0\"}");
	f->view.load_versions = f->load_versions;
	CHECK_OMO(dag, f, NULL, "d,e");

	free(z);
	free(x);
	pw_dag_free(dag);
}

/* A dataset in the catalog but without filepath is in memory. */
static void test_only_missing_nofp(void **state)
{
	cat_fixture *f = *state;
	pw_dag *dag = dag_from_yaml("tasks:\n"
				    "  - id: p\n"
				    "    command: \"true\"\n"
				    "    outputs: [nofp]\n"
				    "  - id: q\n"
				    "    command: \"true\"\n"
				    "    inputs: [nofp]\n"
				    "    outputs: [x]\n"
				    "  - id: r\n"
				    "    command: \"true\"\n"
				    "    inputs: [nofp]\n");
	/* x missing: q runs and needs p's in-memory output. */
	CHECK_OMO(dag, f, NULL, "p,q,r");
	th_write(f->root, "data/02/x.csv", "x");
	/* r has no outputs: runs, and needs nofp, so p runs; q does not. */
	CHECK_OMO(dag, f, NULL, "p,r");
	CHECK_OMO(dag, f, "p,q", "");
	pw_dag_free(dag);
}

/* A long chain: slicing and only_missing_outputs stay linear. */
static void test_large_chain(void **state)
{
	(void)state;
	enum { N = 10000 };
	size_t cap = (size_t)N * 96 + 16, len = 0;
	char *yaml = malloc(cap);
	assert_non_null(yaml);
	len += (size_t)snprintf(yaml + len, cap - len, "tasks:\n");
	for (int i = 0; i < N; i++)
		len += (size_t)snprintf(yaml + len, cap - len,
					"  - {id: t%d, command: \"true\", "
					"inputs: [d%d], outputs: [d%d]}\n",
					i, i, i + 1);
	pw_dag *dag = dag_from_yaml(yaml);
	free(yaml);

	pw_slice_req req = {0};
	pw_kerror err = {0};
	bool *sel = calloc(N, sizeof *sel);
	assert_non_null(sel);
	assert_int_equal(pw_strv_push(&req.from_nodes, "t5000"), 0);
	assert_int_equal(pw_strv_push(&req.to_outputs, "d7000"), 0);
	assert_int_equal(pw_slice(dag, &req, sel, &err), 0);
	size_t count = 0;
	for (size_t i = 0; i < N; i++)
		count += sel[i];
	assert_int_equal(count, 2000);
	assert_true(sel[5000] && sel[6999] && !sel[4999] && !sel[7000]);

	pw_catalog_view view = {.root = "/nonexistent"};
	assert_int_equal(pw_only_missing_outputs(dag, &view, sel), 0);
	count = 0;
	for (size_t i = 0; i < N; i++)
		count += sel[i];
	/* All outputs are in memory and nothing runs without a reason. */
	assert_int_equal(count, 0);

	free(sel);
	pw_slice_req_free(&req);
	pw_kerror_clear(&err);
	pw_dag_free(dag);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_filters, setup_kedro,
						teardown_dag),
		cmocka_unit_test_setup_teardown(test_from_inputs, setup_kedro,
						teardown_dag),
		cmocka_unit_test_setup_teardown(test_to_outputs, setup_kedro,
						teardown_dag),
		cmocka_unit_test_setup_teardown(test_tags, setup_kedro,
						teardown_dag),
		cmocka_unit_test_setup_teardown(test_from_to_nodes,
						setup_kedro, teardown_dag),
		cmocka_unit_test_setup_teardown(test_node_names, setup_kedro,
						teardown_dag),
		cmocka_unit_test_setup_teardown(test_intersections,
						setup_kedro, teardown_dag),
		cmocka_unit_test_setup_teardown(test_errors, setup_kedro,
						teardown_dag),
		cmocka_unit_test_setup_teardown(test_error_order, setup_kedro,
						teardown_dag),
		cmocka_unit_test_setup_teardown(test_namespaces, setup_ns,
						teardown_dag),
		cmocka_unit_test_setup_teardown(test_did_you_mean, setup_ns,
						teardown_dag),
		cmocka_unit_test_setup_teardown(test_upstream_edges, setup_ns,
						teardown_dag),
		cmocka_unit_test_setup_teardown(test_transcoding, setup_ns,
						teardown_dag),
		cmocka_unit_test_setup_teardown(test_paths_plain, setup_cat,
						teardown_cat),
		cmocka_unit_test_setup_teardown(test_paths_versioned,
						setup_cat, teardown_cat),
		cmocka_unit_test_setup_teardown(test_only_missing, setup_cat,
						teardown_cat),
		cmocka_unit_test_setup_teardown(test_only_missing_nofp,
						setup_cat, teardown_cat),
		cmocka_unit_test(test_large_chain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
