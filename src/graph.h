/*
 * graph.h - a DAG as a picture: DOT text of its tasks and edges, and SVG
 * laid out by Graphviz (libgvc, the "dot" layout). The API's
 * GET /api/v1/dags/:dag_id/graph and `pipewright dags show --format
 * dot|svg` both use it. Each task's node carries id="task-<task name>";
 * with states, a node is filled with the colour of its task's state and
 * carries class="state-<state>".
 */
#ifndef PW_GRAPH_H
#define PW_GRAPH_H

#include <json-c/json.h>
#include <stddef.h>

#include "dag.h"

/*
 * The DOT text of dag (malloc'd, NUL-terminated), or NULL when out of
 * memory. states (borrowed, may be NULL): task name -> state string.
 */
char *pw_graph_dot(const pw_dag *dag, json_object *states);

/*
 * Lays out DOT text with Graphviz and renders it as SVG: *out (malloc'd,
 * NUL-terminated) and *len. Graphviz is not thread-safe: calls are
 * serialised by a mutex. Returns 0, or -1 (bad DOT, no layout plugin, out
 * of memory).
 */
int pw_graph_svg(const char *dot, char **out, size_t *len);

/*
 * What `pipewright dags show DAG --format dot|svg` prints (and the API
 * answers): format "dot" or "svg"; *out malloc'd, NUL-terminated, *len
 * bytes. Returns 0, -1 on failure, or -2 for an unknown format.
 */
int pw_graph_render(const pw_dag *dag, json_object *states, const char *format,
		    char **out, size_t *len);

#endif
