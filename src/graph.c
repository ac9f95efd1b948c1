/*
 * graph.c - DOT text of a DAG, and its SVG through Graphviz (graph.h).
 */
#include "graph.h"

#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fill colours of task states (Airflow's palette); others: white. */
static const struct { const char *state, *color; } state_colors[] = {
	{"success", "#90ee90"},
	{"running", "#00ff7f"},
	{"failed", "#ff6347"},
	{"upstream_failed", "#ffa500"},
	{"up_for_retry", "#ffd700"},
	{"queued", "#d3d3d3"},
	{"pending", "#f5f5f5"},
	{"skipped", "#ffb6c1"},
	{"cancelled", "#c0c0c0"},
};

static const char *state_color(const char *state)
{
	for (size_t i = 0; state && i < sizeof state_colors / sizeof *state_colors; i++)
		if (strcmp(state_colors[i].state, state) == 0)
			return state_colors[i].color;
	return "#ffffff";
}

/* A DOT string literal of s: quotes and backslashes escaped. */
static void dot_quote(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s == '\n' ? ' ' : *s, f);
	}
	fputc('"', f);
}

char *pw_graph_dot(const pw_dag *dag, json_object *states)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	fputs("digraph ", f);
	dot_quote(f, dag->id);
	fputs(" {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\","
	      " fillcolor=\"#ffffff\", fontname=\"Helvetica\"];\n", f);
	for (size_t i = 0; i < dag->n_tasks; i++) {
		const char *name = dag->tasks[i].name;
		json_object *st = NULL;
		fputs("  ", f);
		dot_quote(f, name);
		fputs(" [id=", f);
		fputs("\"task-", f);
		for (const char *p = name; *p; p++)
			fputc(*p, f);  /* task names hold no quote or backslash */
		fputc('"', f);
		if (states && json_object_object_get_ex(states, name, &st) && st) {
			const char *s = json_object_get_string(st);
			fprintf(f, ", fillcolor=\"%s\", class=\"state-", state_color(s));
			fputs(s, f);
			fputc('"', f);
			fputs(", tooltip=", f);
			dot_quote(f, s);
		}
		fputs("];\n", f);
	}
	for (size_t i = 0; i < dag->n_tasks; i++) {
		for (size_t j = 0; j < dag->tasks[i].n_down; j++) {
			fputs("  ", f);
			dot_quote(f, dag->tasks[i].name);
			fputs(" -> ", f);
			dot_quote(f, dag->tasks[dag->tasks[i].down[j]].name);
			fputs(";\n", f);
		}
	}
	fputs("}\n", f);
	if (ferror(f) || fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/*
 * Graphviz keeps global state (error handling, the text layout plugin's
 * font cache, which a freed context leaves dangling): one context for the
 * whole process, made on first use and kept, and every use under a lock.
 */
static pthread_mutex_t gv_lock = PTHREAD_MUTEX_INITIALIZER;
static GVC_t *gv_context;

/*
 * Graphviz writes '-' as "&#45;" in SVG; the same character, written
 * plainly, keeps ids such as "task-a" findable as text too. In place.
 */
static size_t unescape_hyphens(char *s, size_t n)
{
	static const char ent[] = "&#45;";
	size_t w = 0;

	for (size_t r = 0; r < n;) {
		if (n - r >= sizeof ent - 1 && memcmp(s + r, ent, sizeof ent - 1) == 0) {
			s[w++] = '-';
			r += sizeof ent - 1;
		} else {
			s[w++] = s[r++];
		}
	}
	s[w] = '\0';
	return w;
}

int pw_graph_svg(const char *dot, char **out, size_t *len)
{
	GVC_t *gvc;
	Agraph_t *g = NULL;
	char *data = NULL;
	unsigned int n = 0;
	int rc = -1;

	*out = NULL;
	*len = 0;
	pthread_mutex_lock(&gv_lock);
	if (!gv_context)
		gv_context = gvContext();
	gvc = gv_context;
	if (gvc)
		g = agmemread(dot);
	if (g && gvLayout(gvc, g, "dot") == 0) {
		if (gvRenderData(gvc, g, "svg", &data, &n) == 0 && data &&
		    (*out = malloc((size_t)n + 1))) {
			memcpy(*out, data, n);
			(*out)[n] = '\0';
			*len = unescape_hyphens(*out, n);
			rc = 0;
		}
		if (data)
			gvFreeRenderData(data);
		gvFreeLayout(gvc, g);
	}
	if (g)
		agclose(g);
	pthread_mutex_unlock(&gv_lock);
	return rc;
}

int pw_graph_render(const pw_dag *dag, json_object *states, const char *format,
		    char **out, size_t *len)
{
	bool svg = strcmp(format, "svg") == 0;
	char *dot;
	int rc;

	*out = NULL;
	*len = 0;
	if (!svg && strcmp(format, "dot") != 0)
		return -2;
	if (!(dot = pw_graph_dot(dag, states)))
		return -1;
	if (!svg) {
		*out = dot;
		*len = strlen(dot);
		return 0;
	}
	rc = pw_graph_svg(dot, out, len);
	free(dot);
	return rc;
}
