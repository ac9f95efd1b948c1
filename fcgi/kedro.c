/*
 * kedro.c - Kedro's HTTP server, field for field (DESIGN.md section 6):
 *
 *   GET  /health    {"status": "healthy", "kedro_version": <our version>}
 *   GET  /snapshot  project metadata, pipelines, datasets, parameter keys
 *   POST /run       queue a run like any other, answer when it has ended
 *
 * These answers are whole bodies (pw_reply_json), not the /api/v1
 * envelope. A request body that RunRequest would refuse is answered 422
 * in FastAPI's shape ({"detail": [pydantic v2 errors]}), every error of
 * the body listed (pyerror.c); a run that fails answers 200 with
 * "status": "failure".
 */
#include "jsonnum.h"
#include "config.h"

#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "states.h"
#include "slice.h"

/* --- small JSON helpers ----------------------------------------------------- */

/* A JSON array of the strings of sv (sorted copy when sorted). NULL on OOM. */
static json_object *strv_json(const pw_strv *sv, bool sorted)
{
	pw_strv copy = {0};
	const pw_strv *src = sv;
	json_object *a = json_object_new_array();
	if (a && sorted) {
		for (size_t i = 0; i < sv->n; i++)
			if (pw_strv_push(&copy, sv->v[i]) != 0)
				goto fail;
		pw_strv_sort(&copy);
		src = &copy;
	}
	for (size_t i = 0; a && i < src->n; i++)
		if (pw_json_push(a, json_object_new_string(src->v[i])) != 0)
			goto fail;
	pw_strv_free(&copy);
	return a;
fail:
	pw_strv_free(&copy);
	json_object_put(a);
	return NULL;
}

/* {"type": ..., "message": ...} of a Kedro error, or NULL on OOM. */
static json_object *error_json(const pw_kerror *e)
{
	json_object *o = json_object_new_object();
	if (o && (pw_json_put_str(o, "type", e->type ? e->type : "RuntimeError") != 0 ||
		  pw_json_put_str(o, "message", e->message ? e->message : "") != 0)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* --- GET /health ------------------------------------------------------------- */

int kedro_health(pw_req *req)
{
	json_object *o = json_object_new_object();
	if (!o || pw_json_put_str(o, "status", "healthy") != 0 ||
	    pw_json_put_str(o, "kedro_version", PACKAGE_VERSION) != 0) {
		json_object_put(o);
		return FAILED;
	}
	return pw_reply_json(req, 200, o);
}

/* --- GET /snapshot --------------------------------------------------------------- */

/*
 * Kedro's func_name for a task: the basename of the program it runs, i.e.
 * argv[0], or for a shell string its first word after any leading NAME=value
 * assignments. malloc'd, or NULL on OOM.
 */
static char *func_name(const pw_task *t)
{
	const char *s = t->argv && t->argv[0] ? t->argv[0] : t->shell ? t->shell : "";
	size_t n = t->argv ? strlen(s) : 0;
	while (!t->argv) {
		s += strspn(s, " \t\n");
		n = strcspn(s, " \t\n");
		const char *eq = memchr(s, '=', n);
		if (!eq || eq == s || memchr(s, '/', (size_t)(eq - s)) || s[n] == '\0')
			break;
		s += n;
	}
	const char *slash = NULL;
	for (const char *c = s; c < s + n; c++)
		if (*c == '/')
			slash = c;
	if (slash) {
		n -= (size_t)(slash + 1 - s);
		s = slash + 1;
	}
	return strndup(s, n);
}

/*
 * The project-relative file that defines task `name` of dag: the DAG's own
 * file, or for a union (__default__) the file of the DAG that has the task.
 */
static const char *task_file(const pw_project *p, const pw_dag *dag, const char *name)
{
	if (dag->file)
		return dag->file;
	for (size_t i = 0; i < p->n_dags; i++)
		if (pw_dag_task_index(p->dags[i], name) >= 0)
			return p->dags[i]->file;
	return NULL;
}

/* {filepath, line_start, line_end} of a task, or NULL on OOM. */
static json_object *source_json(const pw_project *p, const pw_dag *dag, const pw_task *t)
{
	json_object *o = json_object_new_object();
	if (o && (pw_json_put_str(o, "filepath", task_file(p, dag, t->name)) != 0 ||
		  pw_json_put(o, "line_start", json_object_new_int(t->line_start)) != 0 ||
		  pw_json_put(o, "line_end", json_object_new_int(t->line_end)) != 0)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* One node of a snapshot pipeline, or NULL on OOM. */
static json_object *node_json(const pw_project *p, const pw_dag *dag, const pw_task *t)
{
	char *fn = func_name(t);
	json_object *o = json_object_new_object();
	int rc = fn && o ? 0 : -1;
	if (rc == 0)
		rc = pw_json_put_str(o, "name", t->name) | pw_json_put_str(o, "func_name", fn) |
		     pw_json_put_str(o, "namespace", t->namespace_) |
		     pw_json_put(o, "tags", strv_json(&t->tags, true)) |
		     pw_json_put(o, "inputs", strv_json(&t->inputs, false)) |
		     pw_json_put(o, "outputs", strv_json(&t->outputs, false)) |
		     pw_json_put(o, "source", source_json(p, dag, t));
	free(fn);
	if (rc != 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* One snapshot pipeline: name, nodes in topological order, inputs, outputs. */
static json_object *pipeline_json(const pw_project *p, const pw_dag *dag)
{
	pw_strv in = {0}, out = {0};
	json_object *o = json_object_new_object(), *nodes = json_object_new_array();
	int rc = o && nodes && pw_dag_io(dag, NULL, &in, &out) == 0 ? 0 : -1;
	for (size_t i = 0; rc == 0 && i < dag->n_tasks; i++)
		rc = pw_json_push(nodes, node_json(p, dag, &dag->tasks[dag->order[i]]));
	if (rc == 0) {
		rc = pw_json_put_str(o, "name", dag->id) | pw_json_put(o, "nodes", nodes);
		nodes = NULL;
		rc |= pw_json_put(o, "inputs", strv_json(&in, false)) |
		      pw_json_put(o, "outputs", strv_json(&out, false));
	}
	json_object_put(nodes);
	pw_strv_free(&in);
	pw_strv_free(&out);
	if (rc != 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/*
 * The pipelines of a snapshot: __default__ first, then every DAG by id.
 * Returns 0, or -1 with err set (a __default__ union error is Kedro's
 * ValueError; out of memory is a MemoryError).
 */
static int snapshot_pipelines(const pw_project *p, json_object *arr, pw_kerror *err)
{
	bool owned = false;
	pw_dag *def = pw_project_pipeline(p, "__default__", &owned, err);
	if (!def)
		return -1;
	int rc = pw_json_push(arr, pipeline_json(p, def));
	if (owned)
		pw_dag_free(def);
	for (size_t i = 0; rc == 0 && i < p->n_dags; i++)
		if (strcmp(p->dags[i]->id, "__default__") != 0)
			rc = pw_json_push(arr, pipeline_json(p, p->dags[i]));
	return rc == 0 ? 0 : pw_kerror_set(err, "MemoryError", "out of memory");
}

/*
 * s with the userinfo of a URL hidden, for any "scheme://userinfo@":
 * "s3://user:secret@host/x" becomes "s3://" "***@host/x". malloc'd, or
 * NULL on OOM.
 */
static char *redact_url(const char *s)
{
	const char *sep = strstr(s, "://");
	if (!sep)
		return strdup(s);
	const char *auth = sep + 3;
	size_t alen = strcspn(auth, "/?#");
	const char *at = NULL;
	for (const char *c = auth; c < auth + alen; c++)
		if (*c == '@')
			at = c;
	if (!at)
		return strdup(s);
	return pw_asprintf("%.*s***%s", (int)(auth - s), s, at);
}

/* {name, type, filepath} of one catalog entry, or NULL on OOM. */
static json_object *dataset_json(const char *name, json_object *entry)
{
	json_object *type = json_object_object_get(entry, "type");
	json_object *fp = json_object_object_get(entry, "filepath");
	char *path = NULL;
	json_object *o = json_object_new_object();
	int rc = o ? 0 : -1;
	if (rc == 0 && json_object_is_type(fp, json_type_string) &&
	    !(path = redact_url(json_object_get_string(fp))))
		rc = -1;
	if (rc == 0)
		rc = pw_json_put_str(o, "name", name) |
		     pw_json_put_str(o, "type", json_object_is_type(type, json_type_string) ?
					json_object_get_string(type) : NULL) |
		     pw_json_put_str(o, "filepath", path);
	free(path);
	if (rc != 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* The catalog's datasets by name, "_"-prefixed keys (YAML anchors) left out. */
static json_object *datasets_json(json_object *catalog)
{
	json_object *o = json_object_new_object();
	if (!o || !json_object_is_type(catalog, json_type_object))
		return o;
	json_object_object_foreach(catalog, name, entry) {
		if (name[0] == '_')
			continue;
		if (pw_json_put(o, name, dataset_json(name, entry)) != 0) {
			json_object_put(o);
			return NULL;
		}
	}
	return o;
}

/* The sorted top-level parameter keys, or NULL on OOM. */
static json_object *parameters_json(json_object *params)
{
	pw_strv keys = {0};
	json_object *a = NULL;
	int rc = 0;
	if (json_object_is_type(params, json_type_object)) {
		json_object_object_foreach(params, k, v) {
			(void)v;
			if (rc == 0)
				rc = pw_strv_push(&keys, k);
		}
	}
	if (rc == 0)
		a = strv_json(&keys, true);
	pw_strv_free(&keys);
	return a;
}

/*
 * metadata: project_name, package_name and kedro_version. Kedro reports
 * the version the project declares there (not the server's, which /health
 * gives): ours is pipewright.yml's `version`, else the server's version.
 */
static json_object *metadata_json(const pw_project *p)
{
	json_object *o = json_object_new_object();
	if (o && (pw_json_put_str(o, "project_name", p->project_name) != 0 ||
		  pw_json_put_str(o, "package_name", p->package_name) != 0 ||
		  pw_json_put_str(o, "kedro_version", p->version ? p->version : PACKAGE_VERSION) != 0)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* {"status": "failure", "error": {...}}, or NULL on OOM. */
static json_object *snapshot_failure(const pw_kerror *e)
{
	json_object *o = json_object_new_object();
	if (o && (pw_json_put_str(o, "status", "failure") != 0 || pw_json_put(o, "error", error_json(e)) != 0)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/*
 * The snapshot body; a configuration error (conf_error, or a __default__
 * union that fails) gives the failure body instead, still HTTP 200.
 */
int kedro_snapshot(pw_req *req)
{
	const pw_project *p = pw_req_project(req);
	pw_kerror err = {0};
	json_object *o = NULL, *pipes = json_object_new_array();
	int rc = pipes ? 0 : -1;
	if (rc == 0 && p->conf_error.type) {
		o = snapshot_failure(&p->conf_error);
		goto out;
	}
	if (rc == 0 && snapshot_pipelines(p, pipes, &err) != 0) {
		o = snapshot_failure(&err);
		goto out;
	}
	if (rc == 0 && (o = json_object_new_object()))
		rc = pw_json_put_str(o, "status", "success") | pw_json_put(o, "metadata", metadata_json(p)) |
		     pw_json_put(o, "pipelines", json_object_get(pipes)) |
		     pw_json_put(o, "datasets", datasets_json(p->catalog)) |
		     pw_json_put(o, "parameters", parameters_json(p->parameters));
	if (rc != 0) {
		json_object_put(o);
		o = NULL;
	}
out:
	json_object_put(pipes);
	pw_kerror_clear(&err);
	return o ? pw_reply_json(req, 200, o) : FAILED;
}

/* --- POST /run: queueing and waiting -------------------------------------------- */

/* The run's options column: runner (Kedro's default SequentialRunner) and the rest. */
static json_object *run_options(json_object *clean)
{
	static const char *const copied[] = {"node_names", "from_nodes", "to_nodes", "tags",
					     "from_inputs", "to_outputs", "namespaces",
					     "load_versions", "only_missing_outputs"};
	json_object *o = json_object_new_object(), *runner = json_object_object_get(clean, "runner");
	int rc = o ? pw_json_put(o, "runner", runner ? json_object_get(runner) :
					  json_object_new_string("SequentialRunner")) : -1;
	for (size_t i = 0; rc == 0 && i < sizeof copied / sizeof *copied; i++) {
		json_object *v = json_object_object_get(clean, copied[i]);
		if (v)
			rc = pw_json_put(o, copied[i], json_object_get(v));
	}
	if (rc != 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* The state and error of a run, as read once. */
typedef struct run_end {
	char *state;
	char *etype;
	char *emsg;
} run_end;

static void run_end_clear(run_end *e)
{
	free(e->state);
	free(e->etype);
	free(e->emsg);
	*e = (run_end){0};
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);
	return s ? strdup((const char *)s) : NULL;
}

/* Reads the run's state and error. Returns GO or FAILED. */
static int read_run(pw_store *store, const char *dag_id, const char *run_id, run_end *e)
{
	static const char sql[] =
		"SELECT state, error_type, error_message FROM runs WHERE dag_id = ?1 AND run_id = ?2";
	sqlite3_stmt *st = pw_store_stmt(store, sql);
	int rc = FAILED;
	if (!st)
		return FAILED;
	run_end_clear(e);
	if (sqlite3_bind_text(st, 1, dag_id, -1, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_bind_text(st, 2, run_id, -1, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		e->state = col_dup(st, 0);
		e->etype = col_dup(st, 1);
		e->emsg = col_dup(st, 2);
		rc = e->state ? GO : FAILED;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/* PRAGMA data_version of the connection, or -1. */
static long long data_version(pw_store *store)
{
	static const char sql[] = "PRAGMA data_version";
	sqlite3_stmt *st = pw_store_stmt(store, sql);
	long long v = -1;
	if (st && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	if (st)
		sqlite3_reset(st);
	return v;
}

static double mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static bool run_ended(const run_end *e)
{
	int s = run_state_parse(e->state);
	return s >= 0 && run_state_is_final((run_state)s);
}

/*
 * Waits until the run has ended, without busy polling: every 20 ms looks
 * at PRAGMA data_version (it changes when another connection, i.e. the
 * runner, commits) and re-reads the run only then, or after a second
 * without a change. Like Kedro's synchronous call there is no time limit,
 * but a client that has left is not waited for: returns GO then, with
 * the run (which goes on) not ended in *e.
 */
static int wait_run(pw_req *req, const char *dag_id, const char *run_id, run_end *e)
{
	pw_store *store = pw_req_store(req);
	long long seen = data_version(store);
	double last_read = mono_ms();
	if (read_run(store, dag_id, run_id, e) != GO)
		return FAILED;
	while (!run_ended(e) && !pw_stream_gone(req)) {
		nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
		long long now = data_version(store);
		if (now == seen && mono_ms() - last_read < 1000)
			continue;
		seen = now;
		last_read = mono_ms();
		if (read_run(store, dag_id, run_id, e) != GO)
			return FAILED;
	}
	return GO;
}

/*
 * duration_ms as Kedro gives it, round(ms, 2), printed like Python's repr
 * of that float (142.3, 12.34, 7.0).
 */
static json_object *duration_json(double t0)
{
	double ms = round((mono_ms() - t0) * 100) / 100;
	char buf[64];
	snprintf(buf, sizeof buf, "%.2f", ms);
	size_t n = strlen(buf);
	while (n > 0 && buf[n - 1] == '0' && buf[n - 2] != '.')
		buf[--n] = '\0';
	return json_object_new_double_s(ms, buf);
}

/* {"status", "run_id", "duration_ms", "error"?}; err NULL for success. */
static int reply_run(pw_req *req, const char *run_id, double t0, const pw_kerror *err)
{
	json_object *o = json_object_new_object();
	int rc = o ? 0 : -1;
	if (rc == 0)
		rc = pw_json_put_str(o, "status", err ? "failure" : "success") | pw_json_put_str(o, "run_id", run_id) |
		     pw_json_put(o, "duration_ms", duration_json(t0));
	if (rc == 0 && err)
		rc = pw_json_put(o, "error", error_json(err));
	if (rc != 0) {
		json_object_put(o);
		return FAILED;
	}
	return pw_reply_json(req, 200, o);
}

/*
 * The error of an ended run, from its error_type/error_message columns.
 * A cancelled run is not something Kedro knows: it fails with the type
 * "RunCancelled" (unless the runner recorded a type) so that clients see
 * "status": "failure" with a reason.
 */
static int end_error(const run_end *e, const char *run_id, pw_kerror *err)
{
	bool cancelled = strcmp(e->state, "cancelled") == 0;
	const char *type = e->etype ? e->etype : cancelled ? "RunCancelled" : "RuntimeError";
	if (e->emsg)
		return pw_kerror_set(err, type, "%s", e->emsg);
	return pw_kerror_set(err, type, "Run %s was %s", run_id, cancelled ? "cancelled" : "failed");
}

/*
 * 503 {"detail": ...} (FastAPI's shape of an HTTPException) when every
 * thread but one already streams or waits: the run is not queued.
 */
static int reply_busy(pw_req *req)
{
	json_object *o = json_object_new_object();
	if (!o || pw_json_put_str(o, "detail", "too many event streams and waiting runs in this "
			  "process; retry later") != 0) {
		json_object_put(o);
		return FAILED;
	}
	pw_reply_header(req, "Retry-After", "5");
	return pw_reply_json(req, 503, o);
}

/* Queues the run, waits for its end and answers. GO, ANSWERED or FAILED. */
static int queue_and_wait(pw_req *req, json_object *clean, const char *dag_id, double t0)
{
	if (!pw_req_hold(req))
		return reply_busy(req);
	json_object *options = run_options(clean);
	char *run_id = NULL;
	run_end e = {0};
	pw_kerror err = {0};
	pw_run_new run = {
		.dag_id = dag_id,
		.run_type = "manual",
		.conf = json_object_object_get(clean, "params"),
		.options = options,
		.triggered_by = pw_req_user(req),
	};
	int rc = options && api_queue_run(req, &run, &run_id, NULL) == PW_OK ? GO : FAILED;
	if (rc == GO)
		rc = wait_run(req, dag_id, run_id, &e);
	if (rc == GO && !run_ended(&e)) {   /* the client left: nobody to answer */
		rc = pw_reply_error(req, 499, "the client left; run %s goes on", run_id);
		goto out;
	}
	if (rc == GO && strcmp(e.state, "success") != 0) {
		end_error(&e, run_id, &err);
		if (!err.type)
			rc = FAILED;   /* out of memory */
	}
	if (rc == GO)
		rc = reply_run(req, run_id, t0, err.type ? &err : NULL);
out:
	json_object_put(options);
	free(run_id);
	run_end_clear(&e);
	pw_kerror_clear(&err);
	return rc;
}

/* Copies the strings of an optional JSON list (already validated) into sv, once each. */
static int strv_from(json_object *list, pw_strv *sv)
{
	for (size_t i = 0; list && i < json_object_array_length(list); i++)
		if (pw_strv_add_unique(sv, json_object_get_string(json_object_array_get_idx(list, i))) != 0)
			return -1;
	return 0;
}

/* The pipeline names of the request (deduplicated) and the run's dag_id. */
static int run_target(json_object *clean, pw_strv *names, char **dag_id)
{
	if (strv_from(json_object_object_get(clean, "pipeline_names"), names) != 0)
		return -1;
	if (names->n == 0 && pw_strv_push(names, "__default__") != 0)
		return -1;
	size_t len = 1;
	for (size_t i = 0; i < names->n; i++)
		len += strlen(names->v[i]) + 1;
	if (!(*dag_id = calloc(1, len)))
		return -1;
	for (size_t i = 0; i < names->n; i++) {
		if (i)
			strcat(*dag_id, "+");
		strcat(*dag_id, names->v[i]);
	}
	return 0;
}

/*
 * POST /run. Fields (all optional): the slicing filters, runner, is_async,
 * load_versions, pipeline_names, params, only_missing_outputs. is_async is
 * accepted and ignored: tasks are processes that read and write their
 * datasets themselves, so there is no loading or saving to do in threads.
 *
 * What Kedro refuses before it runs a node (an unknown runner, pipeline or
 * node, an empty slice, a configuration error) answers at once with
 * "status": "failure", a freshly generated run id and the duration, and
 * nothing is queued. Otherwise the run is queued like any other and the
 * answer comes when it has ended.
 */
int kedro_run(pw_req *req)
{
	double t0 = mono_ms();
	json_object *body = NULL, *clean = NULL;
	pw_strv names = {0};
	char *dag_id = NULL;
	pw_kerror err = {0};
	int rc = pyerror_read_body(req, &body);
	if (rc == GO)
		rc = pyerror_check_run(req, body, &clean);
	if (rc == GO)
		rc = run_target(clean, &names, &dag_id) == 0 ? GO : FAILED;
	/*
	 * Like Kedro, every valid request becomes a run: an unknown pipeline, a
	 * bad slice or runner fails that run (the runner stores Kedro's error),
	 * so the answer's run_id can always be looked up.
	 */
	if (rc == GO)
		rc = queue_and_wait(req, clean, dag_id, t0);
	json_object_put(body);
	json_object_put(clean);
	pw_strv_free(&names);
	free(dag_id);
	pw_kerror_clear(&err);
	return rc;
}
