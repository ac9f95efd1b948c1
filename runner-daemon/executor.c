/*
 * executor.c - the task instances of active runs: trigger rules, slots and
 * pools, starting tries under their shims (or as Slurm jobs: slurm.c), and
 * recording how they end.
 *
 * Each active run keeps its task states in memory (rn_run.tasks) and a
 * ready list of queued tasks in the order they were queued; every change
 * is written through state.c with its event. When a task reaches a final
 * state its downstream tasks are decided with an explicit work list, so a
 * 10,000-task chain never recurses.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launch.h"
#include "runner.h"

const char *const ti_state_names[TI_NSTATES] = {
	[TI_PENDING] = "pending",
	[TI_QUEUED] = "queued",
	[TI_RUNNING] = "running",
	[TI_SUCCESS] = "success",
	[TI_FAILED] = "failed",
	[TI_UP_FOR_RETRY] = "up_for_retry",
	[TI_UPSTREAM_FAILED] = "upstream_failed",
	[TI_SKIPPED] = "skipped",
	[TI_CANCELLED] = "cancelled",
};

int ti_state_parse(const char *name)
{
	for (int i = 0; name && i < TI_NSTATES; i++)
		if (strcmp(ti_state_names[i], name) == 0)
			return i;
	return -1;
}

bool ti_state_is_final(ti_state s)
{
	return s == TI_SUCCESS || s == TI_FAILED || s == TI_UPSTREAM_FAILED ||
	       s == TI_SKIPPED || s == TI_CANCELLED;
}

/* Counts failed and upstream_failed as "failed", as trigger rules do. */
static bool counts_as_failed(ti_state s)
{
	return s == TI_FAILED || s == TI_UPSTREAM_FAILED;
}

/* --- small helpers ---------------------------------------------------------- */

rn_run *exec_find_run(runner *r, long long pk)
{
	for (rn_run *run = r->runs; run; run = run->next)
		if (run->pk == pk)
			return run;
	return NULL;
}

char *exec_try_path(const rn_run *run, size_t t, int try_number, const char *ext)
{
	return pw_asprintf("%s/%s/%d.%s", run->dir, run->dag->tasks[t].name, try_number, ext);
}

/* Adds delta slots to the pool's use. */
static void pool_use(runner *r, const char *pool, int delta)
{
	json_object *v = json_object_object_get(r->pool_used, pool);
	int used = (v ? json_object_get_int(v) : 0) + delta;
	json_object_object_add(r->pool_used, pool, json_object_new_int(used));
}

/* Whether the pool exists and has room for slots more. */
static bool pool_has_room(runner *r, const char *pool, int slots)
{
	json_object *size = json_object_object_get(r->pool_slots, pool);
	json_object *used = json_object_object_get(r->pool_used, pool);
	if (!size)
		return false;
	return (used ? json_object_get_int(used) : 0) + slots <= json_object_get_int(size);
}

static int ready_push(rn_run *run, size_t t)
{
	if (run->n_ready == run->cap_ready && run->head_ready > 0) {
		run->n_ready -= run->head_ready;
		memmove(run->ready, run->ready + run->head_ready, run->n_ready * sizeof *run->ready);
		run->head_ready = 0;
	}
	if (run->n_ready == run->cap_ready) {
		size_t cap = run->cap_ready ? run->cap_ready * 2 : 16;
		size_t *grown = realloc(run->ready, cap * sizeof *grown);
		if (!grown)
			return PW_ERR;
		run->ready = grown;
		run->cap_ready = cap;
	}
	run->ready[run->n_ready++] = t;
	return PW_OK;
}

/* Adds a running try to r->procs. */
static int procs_add(runner *r, rn_run *run, size_t t)
{
	if (r->n_running == r->cap_procs) {
		size_t cap = r->cap_procs ? r->cap_procs * 2 : 16;
		rn_proc *grown = realloc(r->procs, cap * sizeof *grown);
		if (!grown)
			return PW_ERR;
		r->procs = grown;
		r->cap_procs = cap;
	}
	r->procs[r->n_running++] = (rn_proc){run, t};
	run->n_running++;
	return PW_OK;
}

/* Removes a try from r->procs (order does not matter). */
static void procs_remove(runner *r, rn_run *run, size_t t)
{
	for (size_t i = 0; i < r->n_running; i++)
		if (r->procs[i].run == run && r->procs[i].t == t) {
			r->procs[i] = r->procs[--r->n_running];
			run->n_running--;
			return;
		}
}

/* Changes task t's state (not for starting or ending a try) and records it. */
static int set_state(runner *r, rn_run *run, size_t t, ti_state state, long long now)
{
	rn_task *k = &run->tasks[t];
	ti_state prev = k->state;
	k->state = state;
	run->n_open += (ti_state_is_final(prev) && !ti_state_is_final(state)) -
		       (ti_state_is_final(state) && !ti_state_is_final(prev));
	run->n_waiting += (state == TI_UP_FOR_RETRY) - (prev == TI_UP_FOR_RETRY);
	if (state == TI_QUEUED && ready_push(run, t) != PW_OK)
		return PW_ERR;
	return st_ti_set_state(r, run, t, prev, now);
}

static const char *final_run_state(const rn_run *run, const char **etype);

/* --- trigger rules ---------------------------------------------------------- */

/* The states of a task's upstream tasks that are part of the run. */
typedef struct up_counts {
	size_t total, done, success, failed, skipped;
} up_counts;

static up_counts count_upstream(const rn_run *run, size_t t)
{
	const pw_task *task = &run->dag->tasks[t];
	up_counts c = {0};
	for (size_t i = 0; i < task->n_up; i++) {
		const rn_task *u = &run->tasks[task->up[i]];
		if (!u->selected)
			continue;
		c.total++;
		c.done += ti_state_is_final(u->state);
		c.success += u->state == TI_SUCCESS;
		c.failed += counts_as_failed(u->state);
		c.skipped += u->state == TI_SKIPPED;
	}
	return c;
}

/*
 * What a pending task becomes under its trigger rule (docs/runner.md):
 * TI_QUEUED, TI_SKIPPED, TI_UPSTREAM_FAILED, or TI_PENDING to wait.
 */
static ti_state decide(pw_trigger_rule rule, const up_counts *c)
{
	bool all_done = c->done == c->total;
	if (c->total == 0)
		return TI_QUEUED;
	switch (rule) {
	case PW_TRIGGER_ALL_SUCCESS:
		if (c->failed)
			return TI_UPSTREAM_FAILED;
		if (!all_done)
			return TI_PENDING;
		return c->success == c->total ? TI_QUEUED : TI_SKIPPED;
	case PW_TRIGGER_ALL_DONE:
		return all_done ? TI_QUEUED : TI_PENDING;
	case PW_TRIGGER_ALL_FAILED:
		if (c->success || c->skipped)
			return TI_SKIPPED;
		return all_done ? TI_QUEUED : TI_PENDING;
	case PW_TRIGGER_ONE_SUCCESS:
		if (c->success)
			return TI_QUEUED;
		return all_done ? TI_UPSTREAM_FAILED : TI_PENDING;
	case PW_TRIGGER_ONE_FAILED:
		if (c->failed)
			return TI_QUEUED;
		return all_done ? TI_SKIPPED : TI_PENDING;
	case PW_TRIGGER_NONE_FAILED:
		if (c->failed)
			return TI_UPSTREAM_FAILED;
		return all_done ? TI_QUEUED : TI_PENDING;
	}
	return TI_PENDING;
}

/* A growable stack of task indices still to decide. */
typedef struct work_list {
	size_t *v;
	size_t n, cap;
} work_list;

static int work_push(work_list *w, size_t t)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		size_t *grown = realloc(w->v, cap * sizeof *grown);
		if (!grown)
			return PW_ERR;
		w->v = grown;
		w->cap = cap;
	}
	w->v[w->n++] = t;
	return PW_OK;
}

/*
 * Decides the pending tasks on the work list and, for each that reaches a
 * final state, its downstream tasks in turn. Frees the list.
 */
static int decide_all(runner *r, rn_run *run, work_list *w, long long now)
{
	int rc = PW_OK;
	while (rc == PW_OK && w->n > 0) {
		size_t t = w->v[--w->n];
		rn_task *k = &run->tasks[t];
		if (!k->selected || k->state != TI_PENDING || run->cancelling)
			continue;
		up_counts c = count_upstream(run, t);
		ti_state next = decide(run->dag->tasks[t].trigger_rule, &c);
		if (next == TI_PENDING)
			continue;
		rc = set_state(r, run, t, next, now);
		const pw_task *task = &run->dag->tasks[t];
		for (size_t i = 0; rc == PW_OK && ti_state_is_final(next) && i < task->n_down; i++)
			rc = work_push(w, task->down[i]);
	}
	free(w->v);
	return rc;
}

/* Decides the downstream tasks of t, which just reached a final state. */
static int decide_downstream(runner *r, rn_run *run, size_t t, long long now)
{
	const pw_task *task = &run->dag->tasks[t];
	work_list w = {0};
	for (size_t i = 0; i < task->n_down; i++)
		if (work_push(&w, task->down[i]) != PW_OK) {
			free(w.v);
			return PW_ERR;
		}
	return decide_all(r, run, &w, now);
}

/* --- building a run ----------------------------------------------------------- */

/*
 * Resolves "a", "__default__" or "a+b" to an owned pipeline whose params
 * are the named DAGs' params merged in order ("__default__" has none).
 */
static pw_dag *resolve_pipeline(runner *r, const char *id, pw_kerror *err)
{
	pw_strv names = {0};
	pw_dag **parts = NULL;
	bool *owned = NULL;
	pw_dag *out = NULL;
	char *copy = strdup(id), *save = NULL;
	for (char *name = copy ? strtok_r(copy, "+", &save) : NULL; name;
	     name = strtok_r(NULL, "+", &save))
		if (pw_strv_push(&names, name) != 0)
			goto out;
	parts = calloc(names.n + 1, sizeof *parts);
	owned = calloc(names.n + 1, sizeof *owned);
	if (!copy || !parts || !owned)
		goto out;
	for (size_t i = 0; i < names.n; i++)
		if (!(parts[i] = pw_project_pipeline(r->project, names.v[i], &owned[i], err)))
			goto out;
	pw_errors errs = {0};
	out = pw_dag_union(id, parts, names.n, &errs);
	if (!out && errs.n)
		pw_kerror_set(err, errs.v[0].type, "%s", errs.v[0].message);
	pw_errors_free(&errs);
	/* The union keeps no params: merge the parts', in order. */
	for (size_t i = 0; out && i < names.n; i++) {
		json_object *merged = pw_params_merge(out->params, parts[i]->params);
		if (!merged) {
			pw_dag_free(out);
			out = NULL;
			break;
		}
		json_object_put(out->params);
		out->params = merged;
	}
out:
	for (size_t i = 0; parts && i < names.n; i++)
		if (owned[i])
			pw_dag_free(parts[i]);
	if (!out && !err->type)
		pw_kerror_set(err, "MemoryError", "out of memory");
	free(parts);
	free(owned);
	free(copy);
	pw_strv_free(&names);
	return out;
}

/* Copies a JSON list of strings into sv. Returns 0, or -1 (wrong shape/OOM). */
static int strv_from_json(json_object *list, pw_strv *sv)
{
	if (!list)
		return 0;
	if (!json_object_is_type(list, json_type_array))
		return -1;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *v = json_object_array_get_idx(list, i);
		if (!json_object_is_type(v, json_type_string) ||
		    pw_strv_push(sv, json_object_get_string(v)) != 0)
			return -1;
	}
	return 0;
}

/* Applies the run's slicing options to run->tasks[].selected. */
static int select_tasks(runner *r, rn_run *run, json_object *options, pw_kerror *err)
{
	pw_slice_req req = {0};
	struct { const char *key; pw_strv *sv; } filters[] = {
		{"tags", &req.tags}, {"node_names", &req.node_names},
		{"from_nodes", &req.from_nodes}, {"to_nodes", &req.to_nodes},
		{"from_inputs", &req.from_inputs}, {"to_outputs", &req.to_outputs},
		{"namespaces", &req.namespaces},
	};
	size_t n = run->dag->n_tasks;
	bool *selected = calloc(n + 1, sizeof *selected);
	int rc = selected ? PW_OK : PW_ERR;
	for (size_t i = 0; rc == PW_OK && i < sizeof filters / sizeof *filters; i++)
		if (strv_from_json(json_object_object_get(options, filters[i].key),
				   filters[i].sv) != 0)
			rc = pw_kerror_set(err, "ValueError", "run option '%s' must be a list of strings",
					   filters[i].key);
	if (rc == PW_OK && pw_slice(run->dag, &req, selected, err) != 0)
		rc = PW_ERR;
	pw_catalog_view cat = {r->project->root, r->project->catalog, run->load_versions};
	if (rc == PW_OK &&
	    json_object_get_boolean(json_object_object_get(options, "only_missing_outputs")) &&
	    pw_only_missing_outputs(run->dag, &cat, selected) != 0)
		rc = PW_ERR;
	for (size_t i = 0; rc == PW_OK && i < n; i++)
		run->tasks[i].selected = selected[i];
	free(selected);
	pw_slice_req_free(&req);
	return rc;
}

/*
 * Kedro's runner names: sets run->sequential, or run->slurm for a runner
 * of settings.runners (all of type slurm), or fails with Kedro's error.
 */
static int choose_runner(runner *r, rn_run *run, json_object *options, pw_kerror *err)
{
	const char *name = json_object_get_string(json_object_object_get(options, "runner"));
	int kind = pw_runner_resolve(r->project, name, PW_RUNNER_PARALLEL, err);
	if (kind < 0)
		return PW_ERR;
	if (kind == PW_RUNNER_PROJECT && !(run->slurm = slurm_conf_new(r->project, name)))
		return pw_kerror_set(err, "MemoryError", "out of memory");
	run->sequential = kind == PW_RUNNER_SEQUENTIAL;
	return PW_OK;
}

/* Writes the run's effective parameters: conf < DAG params < run conf. */
static int write_params(runner *r, rn_run *run, json_object *conf)
{
	json_object *a = pw_params_merge(r->project->parameters, run->dag->params);
	json_object *merged = a ? pw_params_merge(a, conf) : NULL;
	int rc = merged && json_object_to_file_ext(run->params_path, merged,
						   JSON_C_TO_STRING_PLAIN) == 0 ? PW_OK : PW_ERR;
	json_object_put(a);
	json_object_put(merged);
	return rc;
}

/* Fills the set of datasets that the run's selected tasks write. */
static int collect_outputs(rn_run *run)
{
	run->run_outputs = json_object_new_object();
	if (!run->run_outputs)
		return PW_ERR;
	for (size_t i = 0; i < run->dag->n_tasks; i++) {
		if (!run->tasks[i].selected)
			continue;
		const pw_strv *out = &run->dag->tasks[i].outputs;
		for (size_t j = 0; j < out->n; j++)
			if (json_object_object_add(run->run_outputs, out->v[j],
						   json_object_new_boolean(1)) != 0)
				return PW_ERR;
	}
	return PW_OK;
}

rn_run *exec_run_new(runner *r, long long pk, const char *dag_id,
		     const char *run_id, json_object *conf, json_object *options,
		     char **etype, char **emsg)
{
	pw_kerror err = {0};
	rn_run *run = calloc(1, sizeof *run);
	*etype = *emsg = NULL;
	if (!run || !(run->dag_id = strdup(dag_id)) || !(run->run_id = strdup(run_id)))
		goto fail;
	run->pk = pk;
	/* Kedro's order of refusals: runner, pipeline, filters, configuration. */
	if (choose_runner(r, run, options, &err) != PW_OK ||
	    !(run->dag = resolve_pipeline(r, dag_id, &err)))
		goto fail;
	if (!(run->tasks = calloc(run->dag->n_tasks + 1, sizeof *run->tasks)))
		goto fail;
	for (size_t i = 0; i < run->dag->n_tasks; i++)
		run->tasks[i].end_fd = -1;
	run->load_versions = json_object_get(json_object_object_get(options, "load_versions"));
	if (select_tasks(r, run, options, &err) != PW_OK || collect_outputs(run) != PW_OK)
		goto fail;
	if (r->project->conf_error.type) {
		pw_kerror_set(&err, r->project->conf_error.type, "%s",
			      r->project->conf_error.message);
		goto fail;
	}
	run->dir = pw_asprintf("%s/%s/%s", r->project->logs_dir, dag_id, run_id);
	run->params_path = run->dir ? pw_asprintf("%s/params.json", run->dir) : NULL;
	if (!run->params_path || pw_mkdirs(run->dir) != 0 || write_params(r, run, conf) != PW_OK) {
		pw_kerror_set(&err, "OSError", "cannot write %s: %s",
			      run->dir ? run->dir : "the run's folder", strerror(errno));
		goto fail;
	}
	return run;
fail:
	*etype = err.type;
	*emsg = err.message;
	exec_run_free(run);
	return NULL;
}

void exec_run_free(rn_run *run)
{
	if (!run)
		return;
	for (size_t i = 0; run->tasks && run->dag && i < run->dag->n_tasks; i++) {
		if (run->tasks[i].end_fd >= 0)
			close(run->tasks[i].end_fd);
		slurm_job_free(run->tasks[i].job);
	}
	slurm_conf_free(run->slurm);
	pw_dag_free(run->dag);
	free(run->tasks);
	free(run->ready);
	free(run->dir);
	free(run->params_path);
	free(run->first_failure);
	free(run->dag_id);
	free(run->run_id);
	json_object_put(run->load_versions);
	json_object_put(run->run_outputs);
	free(run);
}

/* Inserts a new run's task instances: roots queued, the rest pending. */
static int insert_instances(runner *r, rn_run *run, long long now)
{
	for (size_t i = 0; i < run->dag->n_tasks; i++) {
		size_t t = run->dag->order[i];
		rn_task *k = &run->tasks[t];
		if (!k->selected)
			continue;
		up_counts c = count_upstream(run, t);
		k->state = c.total == 0 ? TI_QUEUED : TI_PENDING;
		k->max_tries = run->dag->tasks[t].retries + 1;
		if (st_ti_insert(r, run, t, now) != PW_OK ||
		    (k->state == TI_QUEUED && ready_push(run, t) != PW_OK))
			return PW_ERR;
	}
	return PW_OK;
}

int exec_run_begin(runner *r, rn_run *run, long long now)
{
	int loaded = st_ti_load(r, run);
	if (loaded < 0)
		return PW_ERR;
	/* A run with instances already (retried, recovered) is what they say. */
	for (size_t i = 0; loaded > 0 && i < run->dag->n_tasks; i++)
		run->tasks[i].selected = run->tasks[i].max_tries > 0;
	run->n_open = run->n_waiting = 0;
	for (size_t i = 0; i < run->dag->n_tasks; i++) {
		const rn_task *k = &run->tasks[i];
		run->n_open += k->selected && !ti_state_is_final(k->state);
		run->n_waiting += k->selected && k->state == TI_UP_FOR_RETRY;
	}
	if (loaded == 0)
		return insert_instances(r, run, now);
	/* Queue again what was queued, in order; decide what is pending. */
	work_list w = {0};
	for (size_t i = 0; i < run->dag->n_tasks; i++) {
		size_t t = run->dag->order[i];
		const rn_task *k = &run->tasks[t];
		if (k->selected && ((k->state == TI_QUEUED && ready_push(run, t) != PW_OK) ||
				    (k->state == TI_PENDING && work_push(&w, t) != PW_OK))) {
			free(w.v);
			return PW_ERR;
		}
	}
	return decide_all(r, run, &w, now);
}

int exec_retry(runner *r, rn_run *run, long long now)
{
	for (size_t t = 0; t < run->dag->n_tasks; t++) {
		rn_task *k = &run->tasks[t];
		if (!k->selected || !(counts_as_failed(k->state) || k->state == TI_CANCELLED))
			continue;
		k->max_tries = k->try_number + run->dag->tasks[t].retries + 1;
		if (set_state(r, run, t, TI_PENDING, now) != PW_OK)
			return PW_ERR;
	}
	return PW_OK;
}

int exec_clear(runner *r, rn_run *run, const bool *clear, bool active, long long now)
{
	work_list w = {0};
	for (size_t i = 0; i < run->dag->n_tasks; i++) {
		size_t t = run->dag->order[i];
		rn_task *k = &run->tasks[t];
		if (!clear[t] || !k->selected || k->state == TI_RUNNING)
			continue;
		k->max_tries = k->try_number + run->dag->tasks[t].retries + 1;
		k->next_try_at = 0;
		if (set_state(r, run, t, TI_PENDING, now) != PW_OK ||
		    (active && work_push(&w, t) != PW_OK)) {
			free(w.v);
			return PW_ERR;
		}
	}
	return decide_all(r, run, &w, now);
}

/* Whether a downstream task's state came from its upstream tasks. */
static bool state_is_derived(ti_state s)
{
	return s == TI_PENDING || s == TI_UPSTREAM_FAILED || s == TI_SKIPPED;
}

int exec_mark(runner *r, rn_run *run, size_t t, ti_state state, long long now)
{
	rn_task *k = &run->tasks[t];
	work_list w = {0}, walk = {0};
	int rc = PW_OK;
	if (!k->selected || k->state == TI_RUNNING)
		return PW_OK; /* the API answered 409; or it started meanwhile */
	if (k->state != state && set_state(r, run, t, state, now) != PW_OK)
		return PW_ERR;
	/* Every derived task downstream, back to pending, then decided again. */
	bool *seen = calloc(run->dag->n_tasks + 1, sizeof *seen);
	if (!seen || work_push(&walk, t) != PW_OK)
		rc = PW_ERR;
	while (rc == PW_OK && walk.n > 0) {
		const pw_task *task = &run->dag->tasks[walk.v[--walk.n]];
		for (size_t i = 0; rc == PW_OK && i < task->n_down; i++) {
			size_t d = task->down[i];
			rn_task *dk = &run->tasks[d];
			if (seen[d] || !dk->selected || !state_is_derived(dk->state))
				continue;
			seen[d] = true;
			if (dk->state != TI_PENDING)
				rc = set_state(r, run, d, TI_PENDING, now);
			if (rc == PW_OK)
				rc = work_push(&walk, d);
			if (rc == PW_OK)
				rc = work_push(&w, d);
		}
	}
	free(seen);
	free(walk.v);
	if (rc != PW_OK) {
		free(w.v);
		return rc;
	}
	return decide_all(r, run, &w, now);
}

const char *exec_settled_state(const rn_run *run)
{
	const char *etype;
	for (size_t t = 0; t < run->dag->n_tasks; t++)
		if (run->tasks[t].selected && !ti_state_is_final(run->tasks[t].state))
			return NULL;
	return final_run_state(run, &etype);
}

/* Remembers the run's first failure for its error_message. */
static void note_failure(rn_run *run, size_t t, const char *why)
{
	if (!run->first_failure)
		run->first_failure = pw_asprintf("Task '%s' failed: %s", run->dag->tasks[t].name, why);
}

/* --- starting tries ------------------------------------------------------------ */

/*
 * Keeps an ended try's socket until the step commits (rn_commit), with
 * its shim's pid when the shim may serve another try (else 0).
 */
static int ack_push(runner *r, int fd, pid_t pid, long long proc_start)
{
	if (r->n_ack == r->cap_ack) {
		size_t cap = r->cap_ack ? r->cap_ack * 2 : 16;
		rn_ack *grown = realloc(r->acks, cap * sizeof *grown);
		if (!grown)
			return PW_ERR;
		r->acks = grown;
		r->cap_ack = cap;
	}
	r->acks[r->n_ack++] = (rn_ack){fd, pid, proc_start};
	return PW_OK;
}

/* Keeps a started shim's go fd until the step commits (rn_commit). */
static int go_push(runner *r, int fd)
{
	if (r->n_go == r->cap_go) {
		size_t cap = r->cap_go ? r->cap_go * 2 : 16;
		int *grown = realloc(r->go_fds, cap * sizeof *grown);
		if (!grown)
			return PW_ERR;
		r->go_fds = grown;
		r->cap_go = cap;
	}
	r->go_fds[r->n_go++] = fd;
	return PW_OK;
}

/*
 * Starts the shim of a local try: through the launcher if there is one (a
 * shim kept from an earlier try, else a spare: launch.h), else forked.
 */
static int fork_shim(runner *r, rn_task *k, const pw_launch *l, long long *proc_start)
{
	int go = -1;
	k->pid = r->launcher ? pw_launcher_launch(r->launcher, l, proc_start, &go)
				  : pw_launch_start(l, proc_start, &go);
	k->proc_start = *proc_start;
	k->watched = true; /* its end shows on its socket, before its exit */
	int rc = k->pid > 0 ? go_push(r, go) : PW_ERR;
	if (k->pid > 0 && rc != PW_OK)
		close(go); /* its shim exits unstarted */
	k->end_fd = rc == PW_OK ? go : -1;
	k->end_sock = k->end_fd >= 0;
	return rc;
}

/* Builds the launch of task t's next try: forks its shim, or prepares its Slurm job. */
static int launch_try(runner *r, rn_run *run, size_t t, long long *proc_start,
		      char **log_path)
{
	const pw_task *task = &run->dag->tasks[t];
	rn_task *k = &run->tasks[t];
	pw_catalog_view cat = {r->project->root, r->project->catalog, run->load_versions};
	pw_strv env = {0};
	char *status = exec_try_path(run, t, k->try_number, "status");
	char *xcom = exec_try_path(run, t, k->try_number, "xcom.json");
	char *workdir = task->cwd ? pw_path_join(r->project->root, task->cwd)
				  : strdup(r->project->root);
	char **envv = NULL;
	int rc = PW_ERR;
	*log_path = exec_try_path(run, t, k->try_number, "log");
	pw_task_env in = {r->environ, run->dag_id, run->run_id, task, k->try_number,
			  run->params_path, xcom, &cat, run->run_outputs};
	/* The shim creates the task's folder (before go, off this path). */
	if (!status || !xcom || !workdir || !*log_path || pw_task_env_build(&in, &env) != 0 ||
	    !(envv = pw_env_vector(&env)))
		goto out;
	remove(xcom); /* a file left by an earlier runner must not count */
	pw_launch l = {workdir, task->argv, task->shell, envv, *log_path, status};
	rc = run->slurm ? slurm_prepare(r, run, t, &l) : fork_shim(r, k, &l, proc_start);
out:
	if (rc != PW_OK)
		rn_error(r, "cannot start %s/%s/%s: %s", run->dag_id, run->run_id, task->name,
			 strerror(errno));
	free(envv);
	pw_strv_free(&env);
	free(status);
	free(xcom);
	free(workdir);
	return rc;
}

/* Starts the next try of queued task t. */
static int start_try(runner *r, rn_run *run, size_t t, long long now)
{
	const pw_task *task = &run->dag->tasks[t];
	rn_task *k = &run->tasks[t];
	long long proc_start = -1;
	char *log_path = NULL;
	k->try_number++;
	k->stop = STOP_NONE;
	k->kill_at = 0;
	if (launch_try(r, run, t, &proc_start, &log_path) != PW_OK) {
		free(log_path);
		k->pid = 0;
		k->state = k->try_number < k->max_tries ? TI_UP_FOR_RETRY : TI_FAILED;
		k->next_try_at = now + task->retry_delay * 1000LL;
		if (k->state == TI_FAILED) {
			run->n_open--;
			note_failure(run, t, "the task could not be started");
		} else {
			run->n_waiting++;
		}
		return st_try_end(r, run, t, TI_QUEUED, NO_EXIT_CODE,
				  "the task could not be started", now);
	}
	now = pw_now_ms(); /* the step began earlier; this is when it started */
	k->state = TI_RUNNING;
	k->started_at = now;
	/* A Slurm job's timeout counts from when Slurm runs it (slurm.c). */
	k->timeout_at = task->timeout > 0 && !k->job ? now + task->timeout * 1000LL : 0;
	pool_use(r, task->pool, task->pool_slots);
	int rc = procs_add(r, run, t);
	if (rc == PW_OK)
		rc = st_try_start(r, run, t, proc_start, log_path, now);
	free(log_path);
	return rc;
}

/* Whether one more try may start now, for this run. */
static bool has_slot(const runner *r, const rn_run *run)
{
	return r->n_running < (size_t)r->project->max_parallel_tasks &&
	       !(run->sequential && run->n_running > 0);
}

/*
 * Starts the ready tries of one run while slots allow. Tasks waiting for
 * pool room stay at the head of the list, in order.
 */
static int start_ready_in_run(runner *r, rn_run *run, long long now)
{
	size_t head = run->head_ready, kept = head, i;
	int rc = PW_OK;
	for (i = head; i < run->n_ready && rc == PW_OK && has_slot(r, run); i++) {
		size_t t = run->ready[i];
		const pw_task *task = &run->dag->tasks[t];
		if (run->tasks[t].state != TI_QUEUED)
			continue; /* cancelled while it waited */
		if (!pool_has_room(r, task->pool, task->pool_slots))
			run->ready[kept++] = t;
		else
			rc = start_try(r, run, t, now);
	}
	if (kept == head) {
		run->head_ready = i;
	} else {
		memmove(run->ready + kept, run->ready + i, (run->n_ready - i) * sizeof *run->ready);
		run->n_ready = kept + (run->n_ready - i);
	}
	if (run->head_ready == run->n_ready)
		run->head_ready = run->n_ready = 0;
	return rc;
}

int exec_start_ready(runner *r, long long now)
{
	for (rn_run *run = r->runs; run; run = run->next) {
		if (r->n_running >= (size_t)r->project->max_parallel_tasks)
			break;
		if (!run->cancelling && start_ready_in_run(r, run, now) != PW_OK)
			return PW_ERR;
	}
	return PW_OK;
}

/* --- ending tries ----------------------------------------------------------------- */

/* Appends "pipewright: <line>" to the current try's log (best effort). */
static void append_log(const rn_run *run, size_t t, const char *line)
{
	char *log = exec_try_path(run, t, run->tasks[t].try_number, "log");
	FILE *f = log ? fopen(log, "a") : NULL;
	if (f) {
		fprintf(f, "pipewright: %s\n", line);
		fclose(f);
	}
	free(log);
}

/* Stores the XComs of a successful try; a bad XCom file fails the try. */
static const char *store_xcoms(runner *r, rn_run *run, size_t t, const char *last_line)
{
	char *path = exec_try_path(run, t, run->tasks[t].try_number, "xcom.json");
	json_object *obj = NULL;
	char *err = NULL;
	const char *failure = NULL;
	if (!path || pw_xcom_read(path, &obj, &err) != 0) {
		append_log(run, t, err ? err : "cannot read the XCom file");
		failure = "invalid XCom file";
	}
	if (!failure && last_line) {
		json_object *s = json_object_new_string(last_line);
		if (!s || st_xcom_put(r, run, t, "return_value", s) != PW_OK)
			failure = "cannot store XCom";
		json_object_put(s);
	}
	if (!failure && obj) {
		json_object_object_foreach(obj, key, value) {
			/* return_value is stdout's last line, always a string. */
			if (!strcmp(key, "return_value")) {
				append_log(run, t, "the XCom file's return_value is "
					   "ignored: it is the last line of stdout");
				continue;
			}
			if (st_xcom_put(r, run, t, key, value) != PW_OK)
				failure = "cannot store XCom";
		}
	}
	json_object_put(obj);
	free(err);
	free(path);
	return failure;
}

/* Why a try that did not succeed ended, for its reason and the run's error. */
static void describe_end(const rn_run *run, size_t t, int found, const pw_try_result *res,
			 char *why, size_t size)
{
	const rn_task *k = &run->tasks[t];
	if (k->stop == STOP_TIMEOUT)
		snprintf(why, size, "timeout after %d s", run->dag->tasks[t].timeout);
	else if (k->stop == STOP_CANCEL)
		snprintf(why, size, "cancelled");
	else if (found != 0)
		snprintf(why, size, "%s", slurm_why(k->job) ? slurm_why(k->job)
				   : "lost: the task process ended without a status");
	else if (res->signal)
		snprintf(why, size, "killed by signal %d", res->signal);
	else
		snprintf(why, size, "exit status %d", res->exit_code);
}

int exec_try_ended(runner *r, rn_run *run, size_t t, long long now)
{
	const pw_task *task = &run->dag->tasks[t];
	rn_task *k = &run->tasks[t];
	pw_try_result res = {0};
	char *status = exec_try_path(run, t, k->try_number, "status");
	int found = k->end_sock ? pw_launch_read_end(k->end_fd, &res) : 1;
	if (found == 1) /* not on the socket: the file, if the shim wrote one */
		found = status ? pw_launch_read_status(status, &res) : -1;
	const char *xcom_failure = NULL;
	char why[96];

	describe_end(run, t, found, &res, why, sizeof why);
	if (k->stop == STOP_CANCEL)
		k->state = TI_CANCELLED;
	else if (found == 0 && res.exit_code == 0 && k->stop == STOP_NONE &&
		 !(xcom_failure = store_xcoms(r, run, t, res.last_line)))
		k->state = TI_SUCCESS;
	else
		k->state = k->try_number < k->max_tries ? TI_UP_FOR_RETRY : TI_FAILED;
	if (xcom_failure)
		snprintf(why, sizeof why, "%s", xcom_failure);
	if (k->state == TI_FAILED)
		note_failure(run, t, why);
	if (k->state == TI_UP_FOR_RETRY)
		run->n_waiting++;
	k->next_try_at = now + task->retry_delay * 1000LL;
	/*
	 * A shim that offers reuse serves another try after the ack, unless
	 * this one was signalled: a SIGKILL to its group may still be on its
	 * way to it.
	 */
	pid_t keep = found == 0 && res.reuse && k->stop == STOP_NONE ? k->pid : 0;
	k->pid = 0;
	slurm_job_free(k->job);
	k->job = NULL;
	if (k->end_fd >= 0 && (!k->end_sock || ack_push(r, k->end_fd, keep, k->proc_start) != PW_OK))
		close(k->end_fd); /* an unacked shim writes its status file */
	k->end_fd = -1;
	k->end_sock = false;
	procs_remove(r, run, t);
	pool_use(r, task->pool, -task->pool_slots);
	if (ti_state_is_final(k->state))
		run->n_open--;
	int rc = st_try_end(r, run, t, TI_RUNNING, found == 0 ? res.exit_code : NO_EXIT_CODE,
			    k->state == TI_SUCCESS ? NULL : why, now);
	if (rc == PW_OK && ti_state_is_final(k->state))
		rc = decide_downstream(r, run, t, now);
	pw_try_result_free(&res);
	free(status);
	return rc;
}

/* Finds the running try of a shim pid; false when it is none of ours. */
static bool find_pid(runner *r, pid_t pid, rn_run **run_out, size_t *t_out)
{
	for (size_t i = 0; i < r->n_running; i++)
		if (r->procs[i].run->tasks[r->procs[i].t].pid == pid) {
			*run_out = r->procs[i].run;
			*t_out = r->procs[i].t;
			return true;
		}
	return false;
}

int exec_reap(runner *r, long long now)
{
	pid_t pid;
	int status;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		rn_run *run;
		size_t t;
		if (r->launcher && pid == pw_launcher_pid(r->launcher)) {
			rn_error(r, "the launcher exited; forking shims directly from now on");
			pw_launcher_close(r->launcher);
			r->launcher = NULL;
		} else if (find_pid(r, pid, &run, &t) && exec_try_ended(r, run, t, now) != PW_OK) {
			return PW_ERR;
		}
	}
	return PW_OK;
}

/* --- timers, cancel, the end of runs ---------------------------------------------- */

/* Signals a running try: its shim's group, or its Slurm job (scancel). */
static void signal_try(runner *r, rn_task *k, int sig)
{
	if (k->job)
		slurm_signal(r, k, sig == SIGKILL);
	else if (k->pid > 0 && kill(-k->pid, sig) != 0 && errno != ESRCH)
		rn_error(r, "kill %d: %s", (int)k->pid, strerror(errno));
}

/* Sends SIGTERM (then SIGKILL after the grace time) to a try's group. */
static void stop_try(runner *r, rn_run *run, size_t t, int why, long long now)
{
	rn_task *k = &run->tasks[t];
	if (k->kill_at)
		return; /* already stopping */
	k->stop = why;
	k->kill_at = now + r->grace_ms;
	signal_try(r, k, SIGTERM);
	rn_info(r, "task %s/%s/%s: %s, %s", run->dag_id, run->run_id, run->dag->tasks[t].name,
		why == STOP_TIMEOUT ? "timed out" : "cancelled",
		k->job ? "cancelling its Slurm job" : "sent SIGTERM");
}

/* Lowers *next to when if when is set and earlier. */
static void earliest(long long *next, long long when)
{
	if (when > 0 && (*next == 0 || when < *next))
		*next = when;
}

/* Timeouts of running tries: SIGTERM at the timeout, SIGKILL after grace. */
static void running_timers(runner *r, long long now, long long *next)
{
	for (size_t i = 0; i < r->n_running; i++) {
		rn_run *run = r->procs[i].run;
		size_t t = r->procs[i].t;
		rn_task *k = &run->tasks[t];
		if (k->timeout_at && now >= k->timeout_at && !k->kill_at)
			stop_try(r, run, t, STOP_TIMEOUT, now);
		if (k->kill_at && now >= k->kill_at) {
			signal_try(r, k, SIGKILL);
			k->kill_at = now + r->grace_ms; /* and again, should it survive */
		}
		earliest(next, k->kill_at ? k->kill_at : k->timeout_at);
	}
}

/* Queues the up_for_retry tasks of a run whose retry delay has passed. */
static int retry_timers(runner *r, rn_run *run, long long now, long long *next)
{
	for (size_t t = 0; run->n_waiting > 0 && t < run->dag->n_tasks; t++) {
		rn_task *k = &run->tasks[t];
		if (!k->selected || k->state != TI_UP_FOR_RETRY)
			continue;
		if (now < k->next_try_at)
			earliest(next, k->next_try_at);
		else if (set_state(r, run, t, TI_QUEUED, now) != PW_OK)
			return PW_ERR;
	}
	return PW_OK;
}

int exec_timers(runner *r, long long now, long long *next_wake)
{
	running_timers(r, now, next_wake);
	for (rn_run *run = r->runs; run; run = run->next)
		if (!run->cancelling && run->n_waiting > 0 &&
		    retry_timers(r, run, now, next_wake) != PW_OK)
			return PW_ERR;
	return PW_OK;
}

int exec_cancel(runner *r, rn_run *run, long long now)
{
	run->cancelling = true;
	run->n_ready = run->head_ready = 0;
	for (size_t t = 0; t < run->dag->n_tasks; t++) {
		rn_task *k = &run->tasks[t];
		if (!k->selected)
			continue;
		if (k->state == TI_RUNNING)
			stop_try(r, run, t, STOP_CANCEL, now);
		else if (!ti_state_is_final(k->state) &&
			 set_state(r, run, t, TI_CANCELLED, now) != PW_OK)
			return PW_ERR;
	}
	return PW_OK;
}

/* The final state of a run with nothing left to do, and its error. */
static const char *final_run_state(const rn_run *run, const char **etype)
{
	*etype = NULL;
	if (run->cancelling)
		return "cancelled";
	for (size_t t = 0; t < run->dag->n_tasks; t++)
		if (run->tasks[t].selected && counts_as_failed(run->tasks[t].state)) {
			*etype = "TaskFailedError";
			return "failed";
		}
	return "success";
}

int exec_finish_runs(runner *r, long long now)
{
	for (rn_run **link = &r->runs; *link;) {
		rn_run *run = *link;
		if (run->n_running > 0 || (run->n_open > 0 && !run->cancelling)) {
			link = &run->next;
			continue;
		}
		const char *etype, *state = final_run_state(run, &etype);
		if (st_run_set_state(r, run->pk, run->dag_id, run->run_id, state, "running", now,
				     etype, etype ? run->first_failure : NULL) != PW_OK)
			return PW_ERR;
		*link = run->next;
		exec_run_free(run);
		r->work_changed = true; /* a slot of max_active_runs is free */
	}
	return PW_OK;
}

int exec_track(runner *r, rn_run *run, size_t t)
{
	const pw_task *task = &run->dag->tasks[t];
	pool_use(r, task->pool, task->pool_slots);
	return procs_add(r, run, t);
}

int exec_adopt(runner *r, rn_run *run, size_t t, pid_t pid, long long proc_start)
{
	const pw_task *task = &run->dag->tasks[t];
	rn_task *k = &run->tasks[t];
	k->pid = pid;
	k->proc_start = proc_start;
	k->watched = true;
	k->end_fd = pw_pidfd_open(pid);
	k->end_sock = false;
	k->timeout_at = task->timeout > 0 ? k->started_at + task->timeout * 1000LL : 0;
	return exec_track(r, run, t);
}

/* Whether a watched try has ended: its end_fd is readable, or it is gone. */
static bool watched_exited(const rn_task *k)
{
	if (k->end_fd >= 0) {
		struct pollfd p = {.fd = k->end_fd, .events = POLLIN};
		return poll(&p, 1, 0) > 0;
	}
	return kill(k->pid, 0) != 0 || pw_proc_start_time(k->pid) != k->proc_start;
}

int exec_check_watched(runner *r, long long now)
{
	for (size_t i = 0; i < r->n_running; i++) {
		rn_run *run = r->procs[i].run;
		size_t t = r->procs[i].t;
		rn_task *k = &run->tasks[t];
		if (!k->watched || !watched_exited(k))
			continue;
		if (exec_try_ended(r, run, t, now) != PW_OK)
			return PW_ERR;
		i--; /* exec_try_ended moved the last entry here */
	}
	return PW_OK;
}

void exec_drop_unstarted(runner *r)
{
	for (size_t i = 0; i < r->n_go; i++) {
		for (size_t j = 0; j < r->n_running; j++) {
			rn_task *k = &r->procs[j].run->tasks[r->procs[j].t];
			if (k->end_fd == r->go_fds[i])
				k->end_fd = -1;
		}
		close(r->go_fds[i]);
	}
	r->n_go = 0;
}
