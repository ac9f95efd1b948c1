/*
 * dagfiles.c - a DAG as its user wrote it and as a picture:
 * GET /api/v1/dags/:dag_id/source (the file) and .../graph (Graphviz SVG
 * or DOT, src/graph.c); and GET /api/v1/me, who the request's user is.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"

/* The DAG of the path (a DAG file of the project), or NULL answered 404. */
static const pw_dag *path_dag(pw_req *req)
{
	const char *dag_id = pw_req_param(req, "dag_id");
	const pw_project *p = pw_req_project(req);
	const pw_dag *dag = dag_id && p ? pw_project_dag(p, dag_id) : NULL;

	if (!dag) {
		if (dag_id && pw_valid_dag_id(dag_id))
			pw_reply_error(req, 404, "DAG '%s' not found", dag_id);
		else
			pw_reply_error(req, 404, "DAG not found");
	}
	return dag;
}

/* Reads a whole file (malloc'd, NUL-terminated) into *out. 0 or -1. */
static int read_all(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0;
	int rc = -1;

	*out = NULL;
	if (!f)
		return -1;
	FILE *m = open_memstream(&buf, &n);
	if (m) {
		char chunk[8192];
		size_t got;
		while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
			if (fwrite(chunk, 1, got, m) != got)
				break;
		rc = ferror(f) || ferror(m) ? -1 : 0;
		if (fclose(m) != 0)
			rc = -1;
	}
	fclose(f);
	if (rc != 0) {
		free(buf);
		return -1;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* Whether the client asked for JSON rather than the file as text. */
static bool wants_json(pw_req *req)
{
	const char *accept = pw_req_header(req, "Accept");
	const char *fmt = pw_req_query(req, "format");

	return (fmt && strcmp(fmt, "json") == 0) ||
	       (accept && strstr(accept, "application/json") && !strstr(accept, "text/plain"));
}

int dags_source(pw_req *req)
{
	const pw_project *p = pw_req_project(req);
	const pw_dag *dag = path_dag(req);
	const char *fmt = pw_req_query(req, "format");
	char *path, *text = NULL;
	size_t len = 0;
	int rc;

	if (!dag)
		return ANSWERED;
	if (fmt && strcmp(fmt, "json") != 0 && strcmp(fmt, "text") != 0)
		return pw_reply_error(req, 400, "format: expected text or json");
	if (!(path = pw_path_join(p->root, dag->file)))
		return FAILED;
	rc = read_all(path, &text, &len);
	free(path);
	if (rc != 0)
		return pw_reply_error(req, 404, "the file of DAG '%s' cannot be read", dag->id);
	if (wants_json(req)) {
		json_object *data = json_object_new_object();
		if (!data || json_object_object_add(data, "file", json_object_new_string(dag->file)) ||
		    json_object_object_add(data, "content", json_object_new_string_len(text, (int)len))) {
			json_object_put(data);
			free(text);
			return FAILED;
		}
		free(text);
		return pw_reply_data(req, 200, data, NULL);
	}
	rc = pw_reply_raw(req, 200, "text/plain; charset=utf-8", text, len);
	free(text);
	return rc;
}

/* --- graph ------------------------------------------------------------------------- */

/*
 * task name -> state of the run of the path's ?run_id=, or an answered 404
 * (all its task instances: the DAG has at most API_DETAIL_LIMIT tasks).
 */
static int run_states(pw_req *req, const char *run_id, json_object **states)
{
	json_object *run = NULL, *tis = NULL;
	long long pk = 0;
	int rc;

	*states = NULL;
	if (!pw_valid_run_id(run_id)) {
		pw_reply_error(req, 404, "run not found");
		return ANSWERED;
	}
	rc = api_run_object(req, pw_req_param(req, "dag_id"), run_id, &run, &pk);
	json_object_put(run);
	if (rc == PW_NOTFOUND) {
		pw_reply_error(req, 404, "DAG '%s' has no run '%s'", pw_req_param(req, "dag_id"),
			       run_id);
		return ANSWERED;
	}
	if (rc != GO || api_task_instances(req, pk, NULL, NULL, &tis) != GO ||
	    !(*states = json_object_new_object())) {
		json_object_put(tis);
		return FAILED;
	}
	for (size_t i = 0; i < json_object_array_length(tis); i++) {
		json_object *ti = json_object_array_get_idx(tis, i), *id = NULL, *st = NULL;
		json_object_object_get_ex(ti, "task_id", &id);
		json_object_object_get_ex(ti, "state", &st);
		if (id && st && json_object_object_add(*states, json_object_get_string(id),
						       json_object_get(st)) != 0) {
			json_object_put(tis);
			return FAILED;
		}
	}
	json_object_put(tis);
	return GO;
}

int dags_graph(pw_req *req)
{
	const pw_dag *dag = path_dag(req);
	const char *fmt = pw_req_query(req, "format");
	const char *run_id = pw_req_query(req, "run_id");
	json_object *states = NULL;
	char *out = NULL;
	size_t len = 0;
	int rc = GO;

	if (!dag)
		return ANSWERED;
	if (fmt && strcmp(fmt, "svg") != 0 && strcmp(fmt, "dot") != 0)
		return pw_reply_error(req, 400, "format: expected svg or dot");
	/* Graphviz on 100,000 nodes would hold a thread for minutes. */
	if (dag->n_tasks > API_DETAIL_LIMIT)
		return pw_reply_error(req, 400, "DAG '%s' has %zu tasks: the graph is drawn for "
				      "at most %d (page its tasks in GET /api/v1/dags/%s)",
				      dag->id, dag->n_tasks, API_DETAIL_LIMIT, dag->id);
	if (run_id)
		rc = run_states(req, run_id, &states);
	if (rc == GO) {
		bool dot = fmt && strcmp(fmt, "dot") == 0;
		if (pw_graph_render(dag, states, dot ? "dot" : "svg", &out, &len) != 0) {
			fprintf(stderr, "pipewright: graphviz could not lay out DAG '%s'\n", dag->id);
			rc = FAILED;
		} else {
			rc = pw_reply_raw(req, 200, dot ? "text/vnd.graphviz; charset=utf-8"
						      : "image/svg+xml", out, len) == 0 ? GO : FAILED;
		}
	}
	free(out);
	json_object_put(states);
	return rc;
}

/* --- GET /api/v1/me ------------------------------------------------------------------ */

/* Roles, weakest first (settings.roles values). */
static const char *const role_names[] = {"read", "operate", "admin"};
#define N_ROLES (sizeof role_names / sizeof *role_names)

int me_get(pw_req *req)
{
	const pw_project *p = pw_req_project(req);
	const char *user = pw_req_user(req);
	json_object *roles = NULL, *role = NULL, *data, *can;
	int level = N_ROLES;  /* no settings.roles: everything */
	const char *name = NULL;

	if (p && json_object_object_get_ex(p->settings, "roles", &roles) &&
	    json_object_is_type(roles, json_type_object)) {
		if (!user) {
			pw_reply_header(req, "WWW-Authenticate", "Basic realm=\"pipewright\"");
			return pw_reply_error(req, 401, "authentication required");
		}
		level = 0;
		if (json_object_object_get_ex(roles, user, &role) &&
		    json_object_is_type(role, json_type_string)) {
			for (size_t i = 0; i < N_ROLES; i++)
				if (strcmp(json_object_get_string(role), role_names[i]) == 0) {
					level = (int)i + 1;
					name = role_names[i];
				}
		}
	}
	data = json_object_new_object();
	can = json_object_new_object();
	if (!data || !can ||
	    json_object_object_add(data, "user", user ? json_object_new_string(user) : NULL) ||
	    json_object_object_add(data, "role", name ? json_object_new_string(name) : NULL)) {
		json_object_put(data);
		json_object_put(can);
		return FAILED;
	}
	for (size_t i = 0; i < N_ROLES; i++)
		if (json_object_object_add(can, role_names[i],
					   json_object_new_boolean(level > (int)i)) != 0) {
			json_object_put(data);
			json_object_put(can);
			return FAILED;
		}
	if (json_object_object_add(data, "can", can) != 0) {
		json_object_put(data);
		json_object_put(can);
		return FAILED;
	}
	return pw_reply_data(req, 200, data, NULL);
}
