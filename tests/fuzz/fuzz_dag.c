/*
 * fuzz_dag.c - libFuzzer target for DAG validation (src/dag.c) and Kedro
 * slicing (src/slice.c): the input is a DAG file in YAML. The file read
 * whole (pw_dag_from_doc) and streamed (pw_dag_parse) must give the same
 * number of errors and tasks.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "dag.h"
#include "doc.h"
#include "slice.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pw_errors errs = {0};
	pw_doc *doc = pw_doc_parse((const char *)data, size, "dags/fuzz.yml", 0, &errs);
	pw_dag *dag = doc ? pw_dag_from_doc("fuzz", doc, &errs) : NULL;
	pw_errors serrs = {0};
	pw_dag *streamed = pw_dag_parse("fuzz", (const char *)data, size, "dags/fuzz.yml", 0,
					&serrs);
	if (serrs.n != errs.n || !dag != !streamed ||
	    (dag && dag->n_tasks != streamed->n_tasks))
		abort();
	pw_dag_free(streamed);
	pw_errors_free(&serrs);
	if (dag && dag->n_tasks > 0) {
		bool *selected = calloc(dag->n_tasks, sizeof *selected);
		pw_slice_req req = {0};
		pw_kerror err = {0};
		if (selected && pw_strv_push(&req.from_nodes, dag->tasks[0].name) == 0)
			pw_slice(dag, &req, selected, &err);
		pw_strv in = {0}, out = {0};
		pw_dag_io(dag, NULL, &in, &out);
		pw_strv_free(&in);
		pw_strv_free(&out);
		pw_kerror_clear(&err);
		pw_slice_req_free(&req);
		free(selected);
	}
	pw_dag_free(dag);
	pw_doc_free(doc);
	pw_errors_free(&errs);
	return 0;
}
