/*
 * executor.c - the task instances of active runs: trigger rules, slots and
 * pools, starting tries through the run's backend (backend.c), recording
 * how they end, and the work after each commit. It owns the tries in
 * flight (r->fl): backends report ends, the executor records them.
 *
 * Each active run keeps its task states in memory (rn_run.tasks) and a
 * ready list of queued tasks in the order they were queued; every change
 * is written through state.c with its event. When a task reaches a final
 * state its downstream tasks are decided with an explicit work list, so a
 * 10,000-task chain never recurses.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsonnum.h"
#include "launch.h"
#include "runner.h"

/* Counts failed and upstream_failed as "failed", as trigger rules do. */
static bool counts_as_failed(ti_state s)
{
	return s == TI_FAILED || s == TI_UPSTREAM_FAILED;
}

/* --- small helpers ---------------------------------------------------------- */

rn_run *exec_find_run(runner *r, long long pk)
{
	for (rn_run *run = r->fl.runs; run; run = run->next)
		if (run->pk == pk)
			return run;
	return NULL;
}

/* Adds delta slots to the pool's use. */
static void pool_use(runner *r, const char *pool, int delta)
{
	json_object *v = json_object_object_get(r->fl.pool_used, pool);
	int used = (v ? json_object_get_int(v) : 0) + delta;
	json_object_object_add(r->fl.pool_used, pool, json_object_new_int(used));
}

/* Whether the pool exists and has room for slots more. */
static bool pool_has_room(runner *r, const char *pool, int slots)
{
	json_object *size = json_object_object_get(r->fl.pool_slots, pool);
	json_object *used = json_object_object_get(r->fl.pool_used, pool);
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
	if (pw_grow(&run->ready, run->n_ready, &run->cap_ready, sizeof *run->ready, 16) != 0)
		return PW_ERR;
	run->ready[run->n_ready++] = t;
	return PW_OK;
}

/* Adds a running try to r->fl.procs. */
static int procs_add(runner *r, rn_run *run, size_t t)
{
	if (pw_grow(&r->fl.procs, r->fl.n_running, &r->fl.cap_procs, sizeof *r->fl.procs,
		    16) != 0)
		return PW_ERR;
	r->fl.procs[r->fl.n_running++] = (rn_proc){run, t};
	run->n_running++;
	return PW_OK;
}

/* Removes a try from r->fl.procs (order does not matter). */
static void procs_remove(runner *r, rn_run *run, size_t t)
{
	for (size_t i = 0; i < r->fl.n_running; i++)
		if (r->fl.procs[i].run == run && r->fl.procs[i].t == t) {
			r->fl.procs[i] = r->fl.procs[--r->fl.n_running];
			run->n_running--;
			return;
		}
}

/* Gives up task t's armed try, if any: it never runs. */
static void disarm(rn_run *run, size_t t)
{
	rn_task *k = &run->tasks[t];
	if (k->arm_fd < 0)
		return;
	close(k->arm_fd);
	k->arm_fd = -1;
	run->n_armed--;
}

/* Changes task t's state (not for starting or ending a try) and records it. */
static int set_state(runner *r, rn_run *run, size_t t, ti_state state, long long now)
{
	rn_task *k = &run->tasks[t];
	ti_state prev = k->state;
	if (state != TI_PENDING && state != TI_QUEUED)
		disarm(run, t); /* it will not start */
	k->state = state;
	run->n_open += (ti_state_is_final(prev) && !ti_state_is_final(state)) -
		       (ti_state_is_final(state) && !ti_state_is_final(prev));
	run->n_waiting += (state == TI_UP_FOR_RETRY) - (prev == TI_UP_FOR_RETRY);
	if (state == TI_QUEUED && ready_push(run, t) != PW_OK)
		return PW_ERR;
	return st_ti_set_state(r, run, t, prev, now);
}

static run_state final_run_state(const rn_run *run, const char **etype);

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
	if (pw_grow(&w->v, w->n, &w->cap, sizeof *w->v, 64) != 0)
		return PW_ERR;
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
		if (!(parts[i] = pw_project_pipeline(r->cfg.project, names.v[i], &owned[i], err)))
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
	pw_catalog_view cat = {r->cfg.project->root, run->catalog, run->load_versions};
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
 * Kedro's runner names: sets run->sequential, and run->backend: the local
 * one, or for a runner of settings.runners the backend of its type, with
 * the run's copy of its options. Fails with Kedro's error.
 */
static int choose_runner(runner *r, rn_run *run, json_object *options, pw_kerror *err)
{
	const char *name = json_object_get_string(json_object_object_get(options, "runner"));
	int kind = pw_runner_resolve(r->cfg.project, name, PW_RUNNER_PARALLEL, err);
	run->backend = &rn_local_backend;
	if (kind < 0)
		return PW_ERR;
	run->sequential = kind == PW_RUNNER_SEQUENTIAL;
	if (kind != PW_RUNNER_PROJECT)
		return PW_OK;
	json_object *spec = json_object_object_get(
		json_object_object_get(r->cfg.project->settings, "runners"), name);
	const char *type = json_object_get_string(json_object_object_get(spec, "type"));
	const rn_backend *b = rn_backend_of_type(type);
	if (!b)
		return pw_kerror_set(err, "ValueError", "runner '%s': no backend of type '%s'",
				     name, type ? type : "");
	run->backend = b;
	if (b->conf_new && b->conf_new(r->cfg.project, name, &run->backend_conf) != PW_OK)
		return pw_kerror_set(err, "MemoryError", "out of memory");
	return PW_OK;
}

/*
 * The run's effective parameters into *out: conf parameters (resolved with
 * the run's conf as runtime_params) < DAG params < run conf. Then Kedro's
 * check that every free input of the selected tasks is defined.
 */
static int run_params(runner *r, rn_run *run, json_object *conf, json_object **out,
		      pw_kerror *err)
{
	json_object *base = NULL, *a = NULL;
	pw_strv missing = {0};
	int rc = PW_ERR;
	*out = NULL;
	if (pw_project_run_parameters(r->cfg.project, conf, &base, err) != 0)
		return PW_ERR;
	a = pw_params_merge(base, run->dag->params);
	*out = a ? pw_params_merge(a, conf) : NULL;
	bool *selected = calloc(run->dag->n_tasks + 1, sizeof *selected);
	for (size_t i = 0; selected && i < run->dag->n_tasks; i++)
		selected[i] = run->tasks[i].selected;
	if (!*out || !selected ||
	    pw_free_inputs_missing(run->dag, selected, run->catalog, *out, &missing) != 0)
		pw_kerror_set(err, "MemoryError", "out of memory");
	else if (missing.n)
		pw_free_inputs_error(&missing, err);
	else
		rc = PW_OK;
	free(selected);
	pw_strv_free(&missing);
	json_object_put(base);
	json_object_put(a);
	return rc;
}

/* Writes the run's effective parameters, numbers as written. */
static int write_params(rn_run *run, json_object *params)
{
	return json_object_to_file_ext(run->params_path, params, JSON_C_TO_STRING_PLAIN |
				       JSON_C_TO_STRING_NOSLASHESCAPE) == 0 ? PW_OK : PW_ERR;
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
	json_object *params = NULL;
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
		run->tasks[i].end_fd = run->tasks[i].arm_fd = -1;
	run->load_versions = json_object_get(json_object_object_get(options, "load_versions"));
	/* dataset paths may use ${runtime_params:...}: this run's catalog */
	if (r->cfg.project->conf_error.type)
		run->catalog = json_object_get(r->cfg.project->catalog);
	else if (pw_project_run_catalog(r->cfg.project, conf, &run->catalog, &err) != 0)
		goto fail;
	if (select_tasks(r, run, options, &err) != PW_OK || collect_outputs(run) != PW_OK)
		goto fail;
	if (r->cfg.project->conf_error.type) {
		pw_kerror_set(&err, r->cfg.project->conf_error.type, "%s",
			      r->cfg.project->conf_error.message);
		goto fail;
	}
	if (run_params(r, run, conf, &params, &err) != PW_OK)
		goto fail;
	run->params = json_object_get(params);
	run->dir = pw_asprintf("%s/%s/%s", r->cfg.project->logs_dir, dag_id, run_id);
	run->params_path = run->dir ? pw_asprintf("%s/params.json", run->dir) : NULL;
	if (!run->params_path || pw_mkdirs(run->dir) != 0 || write_params(run, params) != PW_OK) {
		if (run->params_path && (errno == ENOSPC || errno == EDQUOT)) { /* wait */
			rn_fault(r, "cannot write %s: %s", run->dir, strerror(errno));
			goto fail;
		}
		pw_kerror_set(&err, "OSError", "cannot write %s: %s",
			      run->dir ? run->dir : "the run's folder", strerror(errno));
		goto fail;
	}
	json_object_put(params);
	return run;
fail:
	json_object_put(params);
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
		if (run->tasks[i].arm_fd >= 0)
			close(run->tasks[i].arm_fd); /* its try never runs */
		if (run->backend && run->backend->try_free)
			run->backend->try_free(&run->tasks[i]);
	}
	if (run->backend && run->backend->conf_free)
		run->backend->conf_free(run->backend_conf);
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
	json_object_put(run->params);
	json_object_put(run->catalog);
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

int exec_settled_state(const rn_run *run)
{
	const char *etype;
	for (size_t t = 0; t < run->dag->n_tasks; t++)
		if (run->tasks[t].selected && !ti_state_is_final(run->tasks[t].state))
			return -1;
	return (int)final_run_state(run, &etype);
}

/* Remembers the run's first failure for its error_message. */
static void note_failure(rn_run *run, size_t t, const char *why)
{
	if (!run->first_failure)
		run->first_failure = pw_asprintf("Task '%s' failed: %s", run->dag->tasks[t].name, why);
}

/* --- starting tries ------------------------------------------------------------ */

/*
 * Builds the launch of try try_number of task t and has its backend arm
 * it (arm) or prepare it (else).
 */
static int launch_try(runner *r, rn_run *run, size_t t, int try_number, bool arm,
		      long long *proc_start)
{
	const pw_task *task = &run->dag->tasks[t];
	pw_catalog_view cat = {r->cfg.project->root, run->catalog, run->load_versions};
	pw_strv env = {0};
	char *status = rn_try_path(run, t, try_number, "status");
	char *xcom = rn_try_path(run, t, try_number, "xcom.json");
	char *log = rn_try_path(run, t, try_number, "log");
	char *workdir = task->cwd ? pw_path_join(r->cfg.project->root, task->cwd)
				  : strdup(r->cfg.project->root);
	char **envv = NULL;
	int rc = PW_ERR;
	pw_task_env in = {r->cfg.environ, run->dag_id, run->run_id, task, try_number,
			  run->params_path, xcom, &cat, run->run_outputs, run->params};
	/* The shim creates the task's folder (before go, off this path). */
	if (!status || !xcom || !workdir || !log || pw_task_env_build(&in, &env) != 0 ||
	    !(envv = pw_env_vector(&env)))
		goto out;
	remove(xcom); /* a file left by an earlier runner must not count */
	pw_launch l = {workdir, task->argv, task->shell, envv, log, status,
		       r->cfg.project->max_log_bytes};
	rc = arm ? run->backend->arm(r, run, t, &l) : run->backend->prepare(r, run, t, &l, proc_start);
out:
	if (rc != PW_OK && !arm)
		rn_error(r, "cannot start %s/%s/%s: %s", run->dag_id, run->run_id, task->name,
			 strerror(errno));
	free(envv);
	pw_strv_free(&env);
	free(status);
	free(xcom);
	free(log);
	free(workdir);
	return rc;
}

/*
 * Has the backend prepare task t's next try: the armed one when it is
 * still there, else a new one.
 */
static int prepare_try(runner *r, rn_run *run, size_t t, long long *proc_start)
{
	rn_task *k = &run->tasks[t];
	if (k->arm_fd >= 0 && k->arm_try == k->try_number) {
		run->n_armed--; /* prepare takes arm_fd, or closes it */
		if (run->backend->prepare(r, run, t, NULL, proc_start) == PW_OK)
			return PW_OK;
	}
	disarm(run, t); /* armed for another try number */
	return launch_try(r, run, t, k->try_number, false, proc_start);
}

/* Starts the next try of queued task t. */
static int start_try(runner *r, rn_run *run, size_t t, long long now)
{
	const pw_task *task = &run->dag->tasks[t];
	rn_task *k = &run->tasks[t];
	long long proc_start = -1;
	k->try_number++;
	k->stop = STOP_NONE;
	k->kill_at = 0;
	run->begun = true;
	char *log_path = rn_try_path(run, t, k->try_number, "log");
	if (!log_path || prepare_try(r, run, t, &proc_start) != PW_OK) {
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
	k->timeout_at = task->timeout > 0 && !run->backend->own_timeout
				? now + task->timeout * 1000LL : 0;
	pool_use(r, task->pool, task->pool_slots);
	char where[64];
	run->backend->describe(run, t, where, sizeof where);
	int rc = procs_add(r, run, t);
	if (rc == PW_OK)
		rc = st_try_start(r, run, t, proc_start, log_path, where, now);
	if (rc == PW_OK && k->try_number > 1) /* an earlier try's XComs go */
		rc = st_xcom_clear(r, run, t);
	free(log_path);
	return rc;
}

/* Whether one more try may start now, for this run. */
static bool has_slot(const runner *r, const rn_run *run)
{
	return r->fl.n_running < (size_t)r->cfg.project->max_parallel_tasks &&
	       !(run->sequential && run->n_running > 0);
}

/*
 * Starts up to max ready tries of one run while slots allow. Tasks waiting
 * for pool room stay at the head of the list, in order.
 */
static int start_ready_in_run(runner *r, rn_run *run, size_t max, long long now)
{
	size_t head = run->head_ready, kept = head, i, started = 0;
	int rc = PW_OK;
	for (i = head; i < run->n_ready && started < max && rc == PW_OK && has_slot(r, run);
	     i++) {
		size_t t = run->ready[i];
		const pw_task *task = &run->dag->tasks[t];
		if (run->tasks[t].state != TI_QUEUED)
			continue; /* cancelled while it waited */
		if (!pool_has_room(r, task->pool, task->pool_slots)) {
			run->ready[kept++] = t;
		} else {
			rc = start_try(r, run, t, now);
			started++;
		}
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

/*
 * Starts ready tries while slots allow: first the first try of each run
 * that has started none, so that a run claimed meanwhile does not wait
 * behind the ready tasks of the runs claimed before it; then the rest in
 * claim order (older runs first, as Airflow orders by logical date).
 */
int exec_start_ready(runner *r, long long now)
{
	size_t slots = (size_t)r->cfg.project->max_parallel_tasks;
	for (int all = 0; all <= 1; all++)
		for (rn_run *run = r->fl.runs; run && r->fl.n_running < slots; run = run->next)
			if (!run->cancelling && (all || !run->begun) &&
			    start_ready_in_run(r, run, all ? SIZE_MAX : 1, now) != PW_OK)
				return PW_ERR;
	return PW_OK;
}

/* --- ending tries ----------------------------------------------------------------- */

/* Appends "pipewright: <line>" to the current try's log (best effort). */
static void append_log(const rn_run *run, size_t t, const char *line)
{
	char *log = rn_try_path(run, t, run->tasks[t].try_number, "log");
	FILE *f = log ? fopen(log, "a") : NULL;
	if (f) {
		fprintf(f, "pipewright: %s\n", line);
		fclose(f);
	}
	free(log);
}

/*
 * Stores the XComs of a try: return_value (last_line: a successful try's)
 * and the keys of its XCom file. Returns why the try must fail (a bad
 * XCom file, said in the log), or NULL.
 */
static const char *store_xcoms(runner *r, rn_run *run, size_t t, const char *last_line)
{
	char *path = rn_try_path(run, t, run->tasks[t].try_number, "xcom.json");
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

/*
 * Says in the log of a try the runner signalled what it did: SIGTERM to
 * the group, and SIGKILL when the shim did not report (the SIGKILL ended
 * it with the task).
 */
static void note_stop(const rn_run *run, size_t t, bool reported)
{
	char line[160];
	if (run->tasks[t].stop == STOP_TIMEOUT)
		snprintf(line, sizeof line, "timeout after %d s: ", run->dag->tasks[t].timeout);
	else
		snprintf(line, sizeof line, "cancelled: ");
	size_t len = strlen(line);
	snprintf(line + len, sizeof line - len, "%s", reported
		 ? "SIGTERM sent to the task's process group"
		 : "SIGTERM sent to the task's process group, then SIGKILL");
	append_log(run, t, line);
}

/* Why a try that did not succeed ended, for its reason and the run's error. */
static void describe_end(const rn_run *run, size_t t, int found, const pw_try_result *res,
			 char *why, size_t size)
{
	const rn_task *k = &run->tasks[t];
	const char *lost = run->backend->why_lost ? run->backend->why_lost(run, t) : NULL;
	if (k->stop == STOP_TIMEOUT)
		snprintf(why, size, "timeout after %d s", run->dag->tasks[t].timeout);
	else if (k->stop == STOP_CANCEL)
		snprintf(why, size, "cancelled");
	else if (found != 0)
		snprintf(why, size, "%s", lost ? lost : "lost: the task process ended without a status");
	else if (res->signal)
		snprintf(why, size, "killed by signal %d", res->signal);
	else
		snprintf(why, size, "exit status %d", res->exit_code);
}

/*
 * Records the end of task t's running try, as its backend tells it, and
 * decides what follows; its backend lets go of it (the ack waits for the
 * commit).
 */
static int try_ended(runner *r, rn_run *run, size_t t, long long now)
{
	const pw_task *task = &run->dag->tasks[t];
	rn_task *k = &run->tasks[t];
	pw_try_result res = {0};
	int found = run->backend->result(r, run, t, &res);
	const char *xcom_failure = NULL;
	char why[96];

	describe_end(run, t, found, &res, why, sizeof why);
	if (k->stop != STOP_NONE && run->backend->signals_group)
		note_stop(run, t, found == 0);
	if (k->stop == STOP_CANCEL)
		k->state = TI_CANCELLED;
	else if (found == 0 && res.exit_code == 0 && k->stop == STOP_NONE &&
		 !(xcom_failure = store_xcoms(r, run, t, res.last_line)))
		k->state = TI_SUCCESS;
	else
		k->state = k->try_number < k->max_tries ? TI_UP_FOR_RETRY : TI_FAILED;
	if (k->state != TI_SUCCESS && !xcom_failure)
		store_xcoms(r, run, t, NULL); /* kept, as Airflow keeps them; a bad
					       * file is only noted in the log */
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
	if (run->backend->release)
		run->backend->release(r, run, t, found == 0 && res.reuse && k->stop == STOP_NONE);
	if (run->backend->try_free)
		run->backend->try_free(k);
	if (k->end_fd >= 0)
		close(k->end_fd);
	k->end_fd = -1;
	k->pid = 0;
	k->ended = false;
	r->tx.n_ends++;
	procs_remove(r, run, t);
	pool_use(r, task->pool, -task->pool_slots);
	if (ti_state_is_final(k->state))
		run->n_open--;
	int rc = st_try_end(r, run, t, TI_RUNNING, found == 0 ? res.exit_code : NO_EXIT_CODE,
			    k->state == TI_SUCCESS ? NULL : why, now);
	if (rc == PW_OK && ti_state_is_final(k->state))
		rc = decide_downstream(r, run, t, now);
	pw_try_result_free(&res);
	return rc;
}

int exec_poll(runner *r, long long now)
{
	rn_ended *e = &r->fl.ended;
	int rc = PW_OK;
	for (size_t i = 0; rc == PW_OK && rn_backends[i]; i++)
		rc = rn_backends[i]->poll(r, now);
	for (size_t i = 0; rc == PW_OK && i < e->n; i++)
		rc = try_ended(r, e->v[i].run, e->v[i].t, now);
	e->n = 0;
	return rc;
}

/* Whether task d would be queued once its upstream task up succeeds. */
static bool next_after(const rn_run *run, size_t d, size_t up)
{
	const pw_task *task = &run->dag->tasks[d];
	const rn_task *k = &run->tasks[d];
	if (!k->selected || k->state != TI_PENDING || k->arm_fd >= 0 ||
	    task->trigger_rule != PW_TRIGGER_ALL_SUCCESS)
		return false;
	for (size_t i = 0; i < task->n_up; i++)
		if (task->up[i] != up && run->tasks[task->up[i]].state != TI_SUCCESS)
			return false;
	return true;
}

/*
 * Arms task t's next try (rn_backend.arm); best effort. A failure (no
 * launcher: arming would fork the runner) ends this pass's arming.
 */
static void arm_one(runner *r, rn_run *run, size_t t, size_t *budget)
{
	rn_task *k = &run->tasks[t];
	if (launch_try(r, run, t, k->try_number + 1, true, NULL) != PW_OK) {
		*budget = 0;
		return;
	}
	k->arm_try = k->try_number + 1;
	run->n_armed++;
	(*budget)--;
}

/* How far down a running try's downstream list arm_ahead looks. */
#define ARM_LOOK 64

/*
 * Arms the tries most likely to start next, so that starting one after
 * the commit is only its go (docs/runner.md, "Group commit"): pending
 * tasks that a running try's success would queue (a chain's next task).
 * Not queued tasks waiting for a slot: another slot's task keeps a CPU
 * busy meanwhile, and arming them only put more shims in rotation. At
 * most max_parallel_tasks are armed at once: each holds a shim.
 */
static void arm_ahead(runner *r)
{
	size_t budget = (size_t)r->cfg.project->max_parallel_tasks;
	for (rn_run *run = r->fl.runs; run; run = run->next)
		budget = budget > run->n_armed ? budget - run->n_armed : 0;
	for (size_t i = 0; i < r->fl.n_running && budget; i++) {
		rn_run *run = r->fl.procs[i].run;
		const pw_task *task = &run->dag->tasks[r->fl.procs[i].t];
		if (run->cancelling || !run->backend->arm)
			continue;
		for (size_t j = 0; j < task->n_down && j < ARM_LOOK && budget; j++)
			if (next_after(run, task->down[j], r->fl.procs[i].t))
				arm_one(r, run, task->down[j], &budget);
	}
}

void exec_idle(runner *r, long long *next_wake)
{
	arm_ahead(r); /* before the backends refill what it took */
	for (size_t i = 0; rn_backends[i]; i++)
		if (rn_backends[i]->idle)
			rn_backends[i]->idle(r, next_wake);
}

/* --- timers, cancel, the end of runs ---------------------------------------------- */

/* Sends SIGTERM (then SIGKILL after the grace time) to a try's group. */
static void stop_try(runner *r, rn_run *run, size_t t, int why, long long now)
{
	rn_task *k = &run->tasks[t];
	if (k->kill_at)
		return; /* already stopping */
	k->stop = why;
	k->kill_at = now + r->cfg.grace_ms;
	run->backend->signal(r, run, t, SIGTERM);
	rn_info(r, "task %s/%s/%s: %s, %s", run->dag_id, run->run_id, run->dag->tasks[t].name,
		why == STOP_TIMEOUT ? "timed out" : "cancelled",
		run->backend->signals_group ? "sent SIGTERM" : "asked its backend to stop it");
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
	for (size_t i = 0; i < r->fl.n_running; i++) {
		rn_run *run = r->fl.procs[i].run;
		size_t t = r->fl.procs[i].t;
		rn_task *k = &run->tasks[t];
		if (k->timeout_at && now >= k->timeout_at && !k->kill_at)
			stop_try(r, run, t, STOP_TIMEOUT, now);
		if (k->kill_at && now >= k->kill_at) {
			run->backend->signal(r, run, t, SIGKILL);
			k->kill_at = now + r->cfg.grace_ms; /* and again, should it survive */
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
	for (rn_run *run = r->fl.runs; run; run = run->next)
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
static run_state final_run_state(const rn_run *run, const char **etype)
{
	*etype = NULL;
	if (run->cancelling)
		return RUN_CANCELLED;
	for (size_t t = 0; t < run->dag->n_tasks; t++)
		if (run->tasks[t].selected && counts_as_failed(run->tasks[t].state)) {
			*etype = "TaskFailedError";
			return RUN_FAILED;
		}
	return RUN_SUCCESS;
}

int exec_finish_runs(runner *r, long long now)
{
	for (rn_run **link = &r->fl.runs; *link;) {
		rn_run *run = *link;
		if (run->n_running > 0 || (run->n_open > 0 && !run->cancelling)) {
			link = &run->next;
			continue;
		}
		const char *etype;
		run_state state = final_run_state(run, &etype);
		if (st_run_set_state(r, run->pk, run->dag_id, run->run_id, state, RUN_RUNNING, now,
				     etype, etype ? run->first_failure : NULL) != PW_OK)
			return PW_ERR;
		*link = run->next;
		exec_run_free(run);
		r->work_changed = true; /* a slot of max_active_runs is free */
	}
	return PW_OK;
}

int exec_recover_try(runner *r, rn_run *run, size_t t, long long now)
{
	const pw_task *task = &run->dag->tasks[t];
	rn_task *k = &run->tasks[t];
	bool ended = false;
	if (run->backend->recover(r, run, t, now, &ended) != PW_OK)
		return PW_ERR;
	if (!run->backend->own_timeout)
		k->timeout_at = task->timeout > 0 ? k->started_at + task->timeout * 1000LL : 0;
	pool_use(r, task->pool, task->pool_slots);
	run->begun = true;
	if (procs_add(r, run, t) != PW_OK)
		return PW_ERR;
	return ended ? try_ended(r, run, t, now) : PW_OK;
}

int exec_open(runner *r)
{
	for (size_t i = 0; rn_backends[i]; i++)
		if (rn_backends[i]->open && rn_backends[i]->open(r, &r->backend_state[i]) != PW_OK)
			return PW_ERR;
	return PW_OK;
}

void exec_close(runner *r)
{
	for (size_t i = 0; rn_backends[i]; i++)
		if (rn_backends[i]->close)
			rn_backends[i]->close(r, r->backend_state[i]);
	free(r->fl.ended.v);
}

void exec_committed(runner *r)
{
	for (size_t i = 0; rn_backends[i]; i++)
		if (rn_backends[i]->committed)
			rn_backends[i]->committed(r);
	st_log_flush(); /* the pass's lines, now that its tries have their go */
}

void exec_forget(runner *r)
{
	for (size_t i = 0; rn_backends[i]; i++)
		if (rn_backends[i]->abort)
			rn_backends[i]->abort(r);
	while (r->fl.runs) {
		rn_run *next = r->fl.runs->next;
		exec_run_free(r->fl.runs); /* closes the sockets of running tries */
		r->fl.runs = next;
	}
	r->fl.n_running = 0;
	r->fl.ended.n = 0;
	json_object_object_foreach(r->fl.pool_used, pool, used) {
		(void)used;
		json_object_object_add(r->fl.pool_used, pool, json_object_new_int(0));
	}
	r->work_changed = true;
}
