/*
 * dag_impl.h - what the files of the DAG model share; internal to
 * src/dag*.c, not installed.
 *
 *   dag.c         the model: names, freeing, copying, unions, inputs and
 *                 outputs, and the validation errors every check reports
 *   dag_fields.c  reading a DAG file through tables of its keys
 *   dag_graph.c   edges, duplicate names and writers, cycles, the order
 *   dag_vec.h     the growable arrays they use
 */
#ifndef PW_DAG_IMPL_H
#define PW_DAG_IMPL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <string.h>

#include "dag.h"
#include "dag_vec.h"

/* Source lines of one task's list items, parallel to its strvs, and which
 * of its fields the file set (bit i: task_fields[i] of dag_fields.c). */
struct tmeta {
	struct intv up_lines;
	struct intv out_lines;
	struct intv in_lines;
	unsigned set;
};

struct vctx {
	const pw_doc *doc;      /* NULL for a union */
	const char *file;       /* NULL: errors carry line 0 */
	pw_errors errs;         /* collected here, then sorted into the caller's */
	char where[560];        /* message prefix: "task 'x': ", "defaults: " */
	pw_task *tmpl;          /* task defaults while reading a DAG file */
	bool tasks_seen;
	bool tasks_ok;          /* `tasks` is a non-empty list */
	struct tmeta *meta;     /* of the task being read */
};

/* Where graph errors point and what they may name. */
struct gsrc {
	const struct tmeta *meta;  /* item lines per task, or NULL */
	const char *const *origin; /* DAG id per task (union), or NULL */
};

/*
 * Records a validation error at line, prefixed with c->where. Returns 0, or
 * -1 when out of memory.
 */
__attribute__((format(printf, 3, 4)))
int dag_verr(struct vctx *c, int line, const char *fmt, ...);

/*
 * The end of pw_dag_from_doc and pw_dag_union: returns dag when rc is 0 and
 * nothing was found; otherwise hands the errors to errs (sorted by line,
 * plus "out of memory" when rc is -1), frees dag and returns NULL.
 */
pw_dag *dag_finish(struct vctx *c, pw_dag *dag, int rc, pw_errors *errs);

/* A DAG with its defaults and no tasks; NULL when out of memory. */
pw_dag *dag_new(const char *id, const char *file);
/* Frees what t holds and zeroes it. */
void dag_task_free(pw_task *t);

/* An environment variable's name: [A-Za-z_][A-Za-z0-9_]* */
bool dag_valid_env_name(const char *s);

/* Whether a dataset is a parameter ("params:x"): read-only, no writer. */
static inline bool dag_is_params(const char *dataset)
{
	return strncmp(dataset, "params:", 7) == 0;
}

/*
 * The graph checks (duplicate names, two writers, unknown upstream, cycles)
 * over dag's named tasks, filling their edges and dag->order. Problems go
 * to c. Returns 0, or -1 when out of memory.
 */
int dag_build_graph(struct vctx *c, pw_dag *dag, const struct gsrc *g);

#endif
