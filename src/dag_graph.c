/*
 * dag_graph.c - the graph checks of a DAG (duplicate task names, unknown
 * upstream tasks, datasets with two writers, cycles) and what they build:
 * each task's upstream and downstream edges and a topological order.
 * Lookups by task name and dataset name go through a hash map (strmap.h),
 * so building the graph is O(tasks + edges) apart from sorting each task's
 * upstream list and the heap of Kahn's algorithm.
 */
#include "dag_impl.h"

#include <stdlib.h>
#include <string.h>

#include "strmap.h"

#define NONE ((size_t)-1)

/* ---- the graph ------------------------------------------------------ */

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

/* A binary min-heap of task indices, for Kahn's algorithm. */
struct heap {
	size_t *v;
	size_t n;
};

static void heap_push(struct heap *h, size_t x)
{
	size_t i = h->n++;
	while (i > 0 && h->v[(i - 1) / 2] > x) {
		h->v[i] = h->v[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->v[i] = x;
}

static size_t heap_pop(struct heap *h)
{
	size_t top = h->v[0], x = h->v[--h->n], i = 0;
	for (;;) {
		size_t l = 2 * i + 1, m = l + 1, s = i;
		size_t best = x;
		if (l < h->n && h->v[l] < best) {
			s = l;
			best = h->v[l];
		}
		if (m < h->n && h->v[m] < best)
			s = m;
		if (s == i)
			break;
		h->v[i] = h->v[s];
		i = s;
	}
	if (h->n)
		h->v[i] = x;
	return top;
}

/*
 * Indexes task names (reporting duplicates) and dataset writers (reporting
 * two writers). Tasks without a name are left out. Returns 0 or -1.
 */
static int index_tasks(struct vctx *c, pw_dag *dag, const struct gsrc *g,
		       pw_strmap *names, pw_strmap *writers)
{
	for (size_t i = 0; i < dag->n_tasks; i++) {
		const pw_task *t = &dag->tasks[i];
		bool created;
		if (!t->name)
			continue;
		size_t *j = pw_strmap_ref(names, t->name, strlen(t->name), &created);
		if (!j)
			return -1;
		if (created) {
			*j = i;
		} else if (g->origin) {
			if (dag_verr(c, t->line_start,
				     "task '%s' is defined in both DAG '%s' and DAG '%s'",
				     t->name, g->origin[*j], g->origin[i]) != 0)
				return -1;
		} else if (dag_verr(c, t->line_start,
				    "duplicate task '%s' (first defined at line %d)",
				    t->name, dag->tasks[*j].line_start) != 0) {
			return -1;
		}
	}
	for (size_t i = 0; i < dag->n_tasks; i++) {
		const pw_task *t = &dag->tasks[i];
		if (!t->name)
			continue;
		for (size_t k = 0; k < t->outputs.n; k++) {
			const char *d = t->outputs.v[k];
			bool created;
			size_t *j = pw_strmap_ref(writers, d, strlen(d), &created);
			if (!j)
				return -1;
			if (created)
				*j = i;
			if (*j == i)
				continue;
			int line = g->meta && k < g->meta[i].out_lines.n
					   ? g->meta[i].out_lines.v[k]
					   : t->line_start;
			/* In a union, Kedro's own error for a sum of pipelines. */
			if (g->origin ? pw_errors_add(&c->errs, NULL, 0, "OutputNotUniqueError",
						      "Output(s) ['%s'] are returned by more than one "
						      "nodes. Node outputs must be unique.", d) != 0
				      : dag_verr(c, line, "dataset '%s' is written by both '%s' and '%s'",
						 d, dag->tasks[*j].name, t->name) != 0)
				return -1;
		}
	}
	return 0;
}

/*
 * Fills every named task's up (explicit upstream and dataset writers) and
 * down arrays, sorted and unique. Reports unknown upstream names.
 * Returns 0 or -1.
 */
static int link_tasks(struct vctx *c, pw_dag *dag, const struct gsrc *g,
		      const pw_strmap *names, const pw_strmap *writers)
{
	int rc = -1;
	struct sizev tmp = { 0 };
	size_t *n_down = NULL;

	for (size_t i = 0; i < dag->n_tasks; i++) {
		pw_task *t = &dag->tasks[i];
		const size_t *j;
		if (!t->name)
			continue;
		tmp.n = 0;
		for (size_t k = 0; k < t->upstream.n; k++) {
			if ((j = pw_strmap_gets(names, t->upstream.v[k]))) {
				if (sizev_push(&tmp, *j) != 0)
					goto out;
				continue;
			}
			int line = g->meta && k < g->meta[i].up_lines.n
					   ? g->meta[i].up_lines.v[k]
					   : t->line_start;
			if (dag_verr(c, line, "task '%s': unknown upstream task '%s'",
				     t->name, t->upstream.v[k]) != 0)
				goto out;
		}
		for (size_t k = 0; k < t->inputs.n; k++) {
			if (dag_is_params(t->inputs.v[k]) ||
			    !(j = pw_strmap_gets(writers, t->inputs.v[k])))
				continue;
			if (sizev_push(&tmp, *j) != 0)
				goto out;
		}
		if (tmp.n == 0)
			continue;
		qsort(tmp.v, tmp.n, sizeof *tmp.v, cmp_size);
		size_t u = 0;
		for (size_t k = 0; k < tmp.n; k++)
			if (u == 0 || tmp.v[u - 1] != tmp.v[k])
				tmp.v[u++] = tmp.v[k];
		t->up = malloc(u * sizeof *t->up);
		if (!t->up)
			goto out;
		memcpy(t->up, tmp.v, u * sizeof *t->up);
		t->n_up = u;
	}

	n_down = calloc(dag->n_tasks ? dag->n_tasks : 1, sizeof *n_down);
	if (!n_down)
		goto out;
	for (size_t i = 0; i < dag->n_tasks; i++)
		for (size_t k = 0; k < dag->tasks[i].n_up; k++)
			n_down[dag->tasks[i].up[k]]++;
	for (size_t i = 0; i < dag->n_tasks; i++) {
		if (!n_down[i])
			continue;
		dag->tasks[i].down = malloc(n_down[i] * sizeof(size_t));
		if (!dag->tasks[i].down)
			goto out;
	}
	/* Visiting i in increasing order keeps each down array sorted. */
	for (size_t i = 0; i < dag->n_tasks; i++) {
		for (size_t k = 0; k < dag->tasks[i].n_up; k++) {
			pw_task *up = &dag->tasks[dag->tasks[i].up[k]];
			up->down[up->n_down++] = i;
		}
	}
	rc = 0;
out:
	free(tmp.v);
	free(n_down);
	return rc;
}

/*
 * Reports one cycle among the tasks not done yet, and marks its tasks done.
 * Every task not done has an upstream task not done (Kahn's invariant), so
 * walking upstream from `start` must close a loop. pos is scratch (NONE for
 * every task on entry and on return). Returns 0 or -1.
 */
static int report_cycle(struct vctx *c, const pw_dag *dag, size_t start,
			unsigned char *done, size_t *pos, struct sizev *path)
{
	int rc = -1;
	struct sbuf msg = { 0 };
	size_t v = start;

	path->n = 0;
	while (pos[v] == NONE) {
		pos[v] = path->n;
		if (sizev_push(path, v) != 0)
			goto out;
		const pw_task *t = &dag->tasks[v];
		size_t next = NONE;
		for (size_t k = 0; k < t->n_up && next == NONE; k++)
			if (!done[t->up[k]])
				next = t->up[k];
		if (next == NONE) /* cannot happen; stop rather than loop */
			goto out;
		v = next;
	}
	/*
	 * path[pos[v]..] is the loop, each entry upstream of the one before.
	 * Print it downstream, starting at the task first in the file.
	 */
	size_t first = pos[v], len = path->n - first, min_at = first;
	for (size_t k = first; k < path->n; k++)
		if (path->v[k] < path->v[min_at])
			min_at = k;
	if (sbuf_add(&msg, "cycle: ") != 0)
		goto out;
	for (size_t step = 0; step <= len; step++) {
		/* walking backwards through the path = downstream */
		size_t k = first + (min_at - first + len - step % len) % len;
		if ((step && sbuf_add(&msg, " -> ") != 0) ||
		    sbuf_add(&msg, dag->tasks[path->v[k]].name) != 0)
			goto out;
	}
	if (dag_verr(c, dag->tasks[path->v[min_at]].line_start, "%s", msg.s) != 0)
		goto out;
	for (size_t k = first; k < path->n; k++)
		done[path->v[k]] = 1;
	rc = 0;
out:
	for (size_t k = 0; k < path->n; k++)
		pos[path->v[k]] = NONE;
	free(msg.s);
	return rc;
}

/*
 * Kahn's algorithm with the smallest ready index first, so the order is
 * deterministic and follows the file where it can. Each cycle found is
 * reported once, then its tasks are taken out so that the rest can go on.
 * Sets dag->order (complete only without cycles). Returns 0 or -1.
 */
static int topo_sort(struct vctx *c, pw_dag *dag)
{
	int rc = -1;
	size_t n = dag->n_tasks, n_done = 0, scan = 0;
	size_t *indeg = NULL, *pos = NULL;
	unsigned char *done = NULL;
	struct heap h = { 0 };
	struct sizev path = { 0 };
	size_t n_order = 0;

	dag->order = malloc((n ? n : 1) * sizeof *dag->order);
	indeg = malloc((n ? n : 1) * sizeof *indeg);
	pos = malloc((n ? n : 1) * sizeof *pos);
	done = calloc(n ? n : 1, 1);
	h.v = malloc((n ? n : 1) * sizeof *h.v);
	if (!dag->order || !indeg || !pos || !done || !h.v)
		goto out;
	for (size_t i = 0; i < n; i++) {
		pos[i] = NONE;
		indeg[i] = dag->tasks[i].n_up;
		if (!indeg[i])
			heap_push(&h, i);
	}
	for (;;) {
		while (h.n) {
			size_t i = heap_pop(&h);
			dag->order[n_order++] = i;
			done[i] = 1;
			n_done++;
			for (size_t k = 0; k < dag->tasks[i].n_down; k++) {
				size_t d = dag->tasks[i].down[k];
				if (!done[d] && --indeg[d] == 0)
					heap_push(&h, d);
			}
		}
		if (n_done == n)
			break;
		while (done[scan])
			scan++;
		if (report_cycle(c, dag, scan, done, pos, &path) != 0)
			goto out;
		/* Release what the removed cycle was holding back. */
		for (size_t k = 0; k < path.n; k++) {
			size_t i = path.v[k];
			if (!done[i])
				continue;
			n_done++;
			for (size_t m = 0; m < dag->tasks[i].n_down; m++) {
				size_t d = dag->tasks[i].down[m];
				if (!done[d] && --indeg[d] == 0)
					heap_push(&h, d);
			}
		}
	}
	rc = 0;
out:
	free(indeg);
	free(pos);
	free(done);
	free(h.v);
	free(path.v);
	return rc;
}

/*
 * The graph checks (duplicate names, two writers, unknown upstream, cycles)
 * over dag's named tasks, filling their edges and dag->order. Problems go
 * to c. Returns 0, or -1 when out of memory.
 */
int dag_build_graph(struct vctx *c, pw_dag *dag, const struct gsrc *g)
{
	int rc = -1;
	pw_strmap names = { 0 }, writers = { 0 };

	if (pw_strmap_init(&names, dag->n_tasks) != 0 ||
	    pw_strmap_init(&writers, dag->n_tasks) != 0)
		goto out;
	if (index_tasks(c, dag, g, &names, &writers) != 0 ||
	    link_tasks(c, dag, g, &names, &writers) != 0 ||
	    topo_sort(c, dag) != 0)
		goto out;
	rc = 0;
out:
	pw_strmap_free(&names);
	pw_strmap_free(&writers);
	return rc;
}
