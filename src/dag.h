/*
 * dag.h - the DAG (pipeline) model: tasks, their edges, topological order,
 * and the validation rules of DESIGN.md section 3.
 *
 * A DAG is read from one file of dags/ (its id is the file stem). Task B
 * depends on task A when B names A in `upstream` or reads a dataset that A
 * writes. Tasks are referred to by name: "<namespace>.<id>", or the id when
 * the task has no namespace. `upstream` entries are task names.
 */
#ifndef PW_DAG_H
#define PW_DAG_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "doc.h"
#include "util.h"

struct pw_strmap;

/* Trigger rules, in the order of DESIGN.md; names via pw_trigger_rule_name. */
typedef enum pw_trigger_rule {
	PW_TRIGGER_ALL_SUCCESS,
	PW_TRIGGER_ALL_DONE,
	PW_TRIGGER_ALL_FAILED,
	PW_TRIGGER_ONE_SUCCESS,
	PW_TRIGGER_ONE_FAILED,
	PW_TRIGGER_NONE_FAILED,
} pw_trigger_rule;

const char *pw_trigger_rule_name(pw_trigger_rule r);
/* Returns 0 and sets *out, or -1 for an unknown name. */
int pw_trigger_rule_parse(const char *name, pw_trigger_rule *out);

typedef struct pw_task {
	char *id;         /* as written in the file */
	char *name;       /* "<namespace>.<id>", or id */
	char *namespace_; /* NULL when none */
	char **argv;      /* NULL-terminated argv command, or NULL */
	char *shell;      /* string command for /bin/sh -c, or NULL */
	char *cwd;        /* relative to the project root, or NULL */
	pw_strv inputs;   /* dataset names, including "params:..." */
	pw_strv outputs;
	pw_strv upstream; /* explicit upstream task names, as written */
	pw_strv tags;
	int retries;      /* extra tries after the first */
	int retry_delay;  /* seconds */
	int timeout;      /* seconds; 0 = none */
	char *pool;
	int pool_slots;
	pw_trigger_rule trigger_rule;
	json_object *env; /* object of string values, owned; NULL when the
			   * task sets none (an empty json-c object costs
			   * 0.8 kB, times 100,000 tasks) */
	int line_start;   /* source lines of the task's mapping */
	int line_end;
	/* Edges, filled by validation: indices into dag->tasks, sorted, unique. */
	size_t *up;
	size_t n_up;
	size_t *down;
	size_t n_down;
} pw_task;

typedef struct pw_dag {
	char *id;
	char *file;        /* path relative to the project root */
	char *description; /* "" when absent */
	char *schedule;    /* cron text, or NULL */
	bool paused;       /* initial pause state */
	int max_active_runs;
	long long start_date; /* ms since the epoch; 0 = none */
	bool catchup;      /* create the runs of missed ticks (backfill) */
	pw_strv tags;
	json_object *params; /* object, owned; never NULL */
	pw_task *tasks;
	size_t n_tasks;
	size_t *order;     /* task indices in topological order */
	/* Problems that leave the DAG loaded: free inputs the catalog and
	 * parameters do not define (a run needing them fails). */
	pw_errors warnings;
	/* Each input dataset -> the line of the first list item naming it,
	 * for those warnings (strmap.h; keys borrowed from the tasks'
	 * inputs), or NULL when no task has inputs. */
	struct pw_strmap *input_lines;
} pw_dag;

/*
 * Builds and validates a DAG from a parsed file. id is the file stem; the
 * doc's file name is recorded as dag->file. Every problem (unknown key,
 * wrong type, bad id, duplicate task id, unknown upstream, two writers of
 * one dataset, cycle, bad cron, bad trigger rule) is added to errs with the
 * file and line; when there is any, NULL is returned. The doc is not kept.
 */
pw_dag *pw_dag_from_doc(const char *id, const pw_doc *doc, pw_errors *errs);

/*
 * The same from the file's text (YAML, or JSON when as_json), or from the
 * file at path (JSON when its name ends in ".json"; file is the name for
 * messages), building each task as soon as doc.c has parsed it (see
 * pw_doc_each): the tasks of a long file never exist as one json-c tree.
 * Syntax errors are reported as pw_doc_parse reports them.
 */
pw_dag *pw_dag_parse(const char *id, const char *text, size_t len,
		     const char *file, int as_json, pw_errors *errs);
pw_dag *pw_dag_load(const char *id, const char *path, const char *file,
		    pw_errors *errs);

/* The line of the first item of a task's `inputs` naming dataset, or 0. */
int pw_dag_input_line(const pw_dag *dag, const char *dataset);

/*
 * The union of several DAGs as one pipeline named id (Kedro's sum of
 * pipelines: "__default__", or "a+b" for POST /run with two names). Tasks
 * keep their names; edges are recomputed across the union, so a dataset
 * written in one DAG and read in another links them. A task name or a
 * dataset writer appearing twice, or a cycle, is an error added to errs
 * (file NULL) and NULL is returned. The result owns copies of everything.
 */
pw_dag *pw_dag_union(const char *id, pw_dag *const *dags, size_t n,
		     pw_errors *errs);

/* Index of the task with this name, or -1. */
long pw_dag_task_index(const pw_dag *dag, const char *name);

/*
 * Pipeline inputs (datasets read but written by no task, "params:*"
 * included) and outputs (written but read by no task), each sorted.
 * When selected is non-NULL only tasks with selected[i] count.
 */
int pw_dag_io(const pw_dag *dag, const bool *selected, pw_strv *inputs,
	      pw_strv *outputs);

/* The most characters of an id (DESIGN.md section 5). */
#define PW_ID_MAX 250

/* true when s matches [A-Za-z0-9_][A-Za-z0-9_.-]* and has 1..250 chars. */
bool pw_valid_dag_id(const char *s);
/* true when s matches [A-Za-z0-9][A-Za-z0-9_.:+-]* and has 1..250 chars. */
bool pw_valid_run_id(const char *s);
#define pw_valid_task_id pw_valid_dag_id
#define pw_valid_pool_name pw_valid_run_id

void pw_dag_free(pw_dag *dag);

#endif
