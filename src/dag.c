/*
 * dag.c - the DAG model (DESIGN.md section 3): trigger rules and the rules
 * for names, freeing and copying DAGs, the union of several DAGs, a
 * pipeline's inputs and outputs, and the validation errors that reading a
 * DAG file (dag_fields.c) and building its graph (dag_graph.c) report.
 * See dag.h; dag_impl.h lists the files.
 *
 * Validation collects every problem of a file instead of stopping at the
 * first; errors are reported sorted by line.
 */
#include "dag_impl.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

/* Airflow's default for max_active_runs. */
#define PW_DAG_DEFAULT_MAX_ACTIVE_RUNS 16

/* ---- trigger rules -------------------------------------------------- */

static const char *const trigger_names[] = {
	[PW_TRIGGER_ALL_SUCCESS] = "all_success",
	[PW_TRIGGER_ALL_DONE] = "all_done",
	[PW_TRIGGER_ALL_FAILED] = "all_failed",
	[PW_TRIGGER_ONE_SUCCESS] = "one_success",
	[PW_TRIGGER_ONE_FAILED] = "one_failed",
	[PW_TRIGGER_NONE_FAILED] = "none_failed",
};
#define N_TRIGGERS (sizeof trigger_names / sizeof trigger_names[0])

const char *pw_trigger_rule_name(pw_trigger_rule r)
{
	if ((size_t)r >= N_TRIGGERS)
		return NULL;
	return trigger_names[r];
}

int pw_trigger_rule_parse(const char *name, pw_trigger_rule *out)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < N_TRIGGERS; i++) {
		if (strcmp(name, trigger_names[i]) == 0) {
			*out = (pw_trigger_rule)i;
			return 0;
		}
	}
	return -1;
}

/* ---- identifiers ---------------------------------------------------- */

static bool is_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9');
}

/*
 * true when s has 1..PW_ID_MAX chars, its first is alphanumeric or one of
 * first_extra, and the others alphanumeric or one of rest_extra.
 */
static bool valid_ident(const char *s, const char *first_extra,
			const char *rest_extra)
{
	if (!s || !*s)
		return false;
	if (!is_alnum(s[0]) && !strchr(first_extra, s[0]))
		return false;
	size_t i = 1;
	for (; s[i]; i++) {
		if (i >= PW_ID_MAX)
			return false;
		if (!is_alnum(s[i]) && !strchr(rest_extra, s[i]))
			return false;
	}
	return true;
}

bool pw_valid_dag_id(const char *s)
{
	return valid_ident(s, "_", "_.-");
}

bool pw_valid_run_id(const char *s)
{
	return valid_ident(s, "", "_.:+-");
}

bool dag_valid_env_name(const char *s)
{
	if (!*s || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (; *s; s++)
		if (!is_alnum(*s) && *s != '_')
			return false;
	return true;
}

/* ---- freeing -------------------------------------------------------- */

void dag_task_free(pw_task *t)
{
	free(t->id);
	free(t->name);
	free(t->namespace_);
	if (t->argv)
		for (char **a = t->argv; *a; a++)
			free(*a);
	free(t->argv);
	free(t->shell);
	free(t->cwd);
	pw_strv_free(&t->inputs);
	pw_strv_free(&t->outputs);
	pw_strv_free(&t->upstream);
	pw_strv_free(&t->tags);
	free(t->pool);
	json_object_put(t->env);
	free(t->up);
	free(t->down);
	memset(t, 0, sizeof *t);
}

void pw_dag_free(pw_dag *dag)
{
	if (!dag)
		return;
	free(dag->id);
	free(dag->file);
	free(dag->description);
	free(dag->schedule);
	pw_strv_free(&dag->tags);
	json_object_put(dag->params);
	for (size_t i = 0; i < dag->n_tasks; i++)
		dag_task_free(&dag->tasks[i]);
	free(dag->tasks);
	free(dag->order);
	pw_errors_free(&dag->warnings);
	if (dag->input_lines)
		pw_strmap_free(dag->input_lines);
	free(dag->input_lines);
	free(dag);
}

pw_dag *dag_new(const char *id, const char *file)
{
	pw_dag *dag = calloc(1, sizeof *dag);
	if (!dag)
		return NULL;
	dag->id = strdup(id ? id : "");
	dag->file = file ? strdup(file) : NULL;
	dag->description = strdup("");
	dag->params = json_object_new_object();
	dag->max_active_runs = PW_DAG_DEFAULT_MAX_ACTIVE_RUNS;
	if (!dag->id || (file && !dag->file) || !dag->description ||
	    !dag->params) {
		pw_dag_free(dag);
		return NULL;
	}
	return dag;
}

/* ---- validation errors ---------------------------------------------- */

int dag_verr(struct vctx *c, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = pw_vasprintf(fmt, ap);
	va_end(ap);
	if (!msg)
		return -1;
	int rc = pw_errors_add(&c->errs, c->file, c->file ? line : 0, NULL,
			       "%s%s", c->where, msg);
	free(msg);
	return rc;
}

struct lined {
	int line;
	size_t seq;
};

static int cmp_lined(const void *a, const void *b)
{
	const struct lined *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Adds the collected errors to dst, sorted by line (stable). Returns 0 or
 * -1 when out of memory.
 */
static int errors_flush(pw_errors *src, pw_errors *dst)
{
	int rc = -1;
	struct lined *ord = NULL;

	if (src->n == 0)
		return 0;
	ord = malloc(src->n * sizeof *ord);
	if (!ord)
		goto out;
	for (size_t i = 0; i < src->n; i++)
		ord[i] = (struct lined){ src->v[i].line, i };
	qsort(ord, src->n, sizeof *ord, cmp_lined);
	for (size_t i = 0; i < src->n; i++) {
		const pw_error *e = &src->v[ord[i].seq];
		if (pw_errors_add(dst, e->file, e->line, e->type, "%s",
				  e->message) != 0)
			goto out;
	}
	rc = 0;
out:
	free(ord);
	return rc;
}

pw_dag *dag_finish(struct vctx *c, pw_dag *dag, int rc, pw_errors *errs)
{
	if (rc == 0 && c->errs.n == 0) {
		pw_errors_free(&c->errs);
		return dag;
	}
	if (errors_flush(&c->errs, errs) != 0 || rc != 0)
		pw_errors_add(errs, c->file, 0, NULL, "out of memory");
	pw_errors_free(&c->errs);
	pw_dag_free(dag);
	return NULL;
}

/* ---- copies, unions, inputs and outputs ----------------------------- */

static int strv_copy(pw_strv *dst, const pw_strv *src)
{
	for (size_t i = 0; i < src->n; i++)
		if (pw_strv_push(dst, src->v[i]) != 0)
			return -1;
	return 0;
}

/* Copies a string field unless it is NULL. Returns 0 or -1. */
static int dup_opt(char **dst, const char *src)
{
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -1;
}

/*
 * Deep copy of src's fields into the zeroed d, without edges. Returns 0 or
 * -1; d then holds what was copied (dag_task_free releases it).
 */
static int task_copy(pw_task *d, const pw_task *s)
{
	if (dup_opt(&d->id, s->id) || dup_opt(&d->name, s->name) ||
	    dup_opt(&d->namespace_, s->namespace_) ||
	    dup_opt(&d->shell, s->shell) || dup_opt(&d->cwd, s->cwd) ||
	    dup_opt(&d->pool, s->pool))
		return -1;
	if (s->argv) {
		size_t n = 0;
		while (s->argv[n])
			n++;
		d->argv = calloc(n + 1, sizeof *d->argv);
		if (!d->argv)
			return -1;
		for (size_t i = 0; i < n; i++)
			if (dup_opt(&d->argv[i], s->argv[i]) != 0)
				return -1;
	}
	if (strv_copy(&d->inputs, &s->inputs) ||
	    strv_copy(&d->outputs, &s->outputs) ||
	    strv_copy(&d->upstream, &s->upstream) ||
	    strv_copy(&d->tags, &s->tags))
		return -1;
	d->retries = s->retries;
	d->retry_delay = s->retry_delay;
	d->timeout = s->timeout;
	d->pool_slots = s->pool_slots;
	d->trigger_rule = s->trigger_rule;
	d->line_start = s->line_start;
	d->line_end = s->line_end;
	if (s->env)
		return json_object_deep_copy(s->env, &d->env, NULL) == 0 ? 0 : -1;
	return 0;
}

pw_dag *pw_dag_union(const char *id, pw_dag *const *dags, size_t n,
		     pw_errors *errs)
{
	int rc = -1;
	struct vctx c = { 0 };
	const char **origin = NULL;
	size_t total = 0;
	pw_dag *dag = dag_new(id, NULL);

	if (!dag)
		goto out;
	for (size_t d = 0; d < n; d++)
		total += dags[d]->n_tasks;
	dag->tasks = calloc(total ? total : 1, sizeof *dag->tasks);
	origin = calloc(total ? total : 1, sizeof *origin);
	if (!dag->tasks || !origin)
		goto out;
	for (size_t d = 0; d < n; d++) {
		for (size_t i = 0; i < dags[d]->n_tasks; i++) {
			origin[dag->n_tasks] = dags[d]->id;
			if (task_copy(&dag->tasks[dag->n_tasks++],
				      &dags[d]->tasks[i]) != 0)
				goto out;
		}
	}
	struct gsrc g = { NULL, origin };
	if (dag_build_graph(&c, dag, &g) != 0)
		goto out;
	rc = 0;
out:
	free(origin);
	return dag_finish(&c, dag, rc, errs);
}

int pw_dag_input_line(const pw_dag *dag, const char *dataset)
{
	const size_t *line = dag->input_lines
		? pw_strmap_get(dag->input_lines, dataset, strlen(dataset))
		: NULL;
	return line ? (int)*line : 0;
}

long pw_dag_task_index(const pw_dag *dag, const char *name)
{
	for (size_t i = 0; i < dag->n_tasks; i++)
		if (dag->tasks[i].name && strcmp(dag->tasks[i].name, name) == 0)
			return (long)i;
	return -1;
}

/* On failure (out of memory) both vectors are left empty. */
int pw_dag_io(const pw_dag *dag, const bool *selected, pw_strv *inputs,
	      pw_strv *outputs)
{
	enum { READ = 1, WRITTEN = 2 };
	int rc = -1;
	pw_strmap m = { 0 };
	bool created;

	if (pw_strmap_init(&m, 64) != 0)
		goto out;
	for (size_t i = 0; i < dag->n_tasks; i++) {
		const pw_task *t = &dag->tasks[i];
		if (selected && !selected[i])
			continue;
		for (size_t k = 0; k < t->inputs.n; k++) {
			const char *d = t->inputs.v[k];
			size_t *f = pw_strmap_ref(&m, d, strlen(d), &created);
			if (!f)
				goto out;
			*f |= READ;
		}
		for (size_t k = 0; k < t->outputs.n; k++) {
			const char *d = t->outputs.v[k];
			size_t *f = pw_strmap_ref(&m, d, strlen(d), &created);
			if (!f)
				goto out;
			*f |= WRITTEN;
		}
	}
	for (size_t i = 0; i < m.cap; i++) {
		const pw_strmap_ent *e = &m.v[i];
		if (!e->key)
			continue;
		if (e->val == READ && pw_strv_push(inputs, e->key) != 0)
			goto out;
		if (e->val == WRITTEN && pw_strv_push(outputs, e->key) != 0)
			goto out;
	}
	pw_strv_sort(inputs);
	pw_strv_sort(outputs);
	rc = 0;
out:
	pw_strmap_free(&m);
	if (rc != 0) {
		pw_strv_free(inputs);
		pw_strv_free(outputs);
	}
	return rc;
}
