/*
 * operate.c - what an operator does to a run after the fact: clear task
 * instances (POST .../runs/:run_id/clear), mark one (PATCH
 * .../tasks/:task_id), mark a run or set its note (PATCH .../runs/:run_id),
 * delete a finished run (DELETE .../runs/:run_id?purge=true).
 *
 * Clear and mark change execution state, so they are intent: a command
 * row the runner acts on (pw_store_command), as cancel and retry are. A
 * run's note is configuration-like and written here; so are the state of
 * a run that is not running (no runner holds it) and a purge, both in one
 * transaction that checks the state it changes.
 */
#include "api.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *str_field(json_object *o, const char *key)
{
	json_object *v = NULL;

	json_object_object_get_ex(o, key, &v);
	return v ? json_object_get_string(v) : NULL;
}

static bool bool_field(json_object *o, const char *key)
{
	json_object *v = NULL;

	return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

/* --- clear ------------------------------------------------------------------------ */

static const pw_field clear_fields[] = {
	{"task_ids", PW_F_STRINGS, false},
	{"include_downstream", PW_F_BOOL, false},
	{"include_upstream", PW_F_BOOL, false},
	{"only_failed", PW_F_BOOL, false},
	{"dry_run", PW_F_BOOL, false},
};

/* The index of the instance named name in tis, or -1. */
static long ti_index(json_object *tis, const char *name)
{
	for (size_t i = 0; i < json_object_array_length(tis); i++)
		if (strcmp(str_field(json_object_array_get_idx(tis, i), "task_id"), name) == 0)
			return (long)i;
	return -1;
}

/* The task of dag named name, or -1. */
static long dag_index(const pw_dag *dag, const char *name)
{
	for (size_t t = 0; dag && t < dag->n_tasks; t++)
		if (strcmp(dag->tasks[t].name, name) == 0)
			return (long)t;
	return -1;
}

/*
 * Marks in pick[] (by instance index) everything reachable from the
 * picked instances along the DAG's down (or up) edges. Returns 0 or -1.
 */
static int expand(const pw_dag *dag, json_object *tis, bool *pick, bool down)
{
	size_t n = json_object_array_length(tis);
	size_t *stack = calloc(n + 1, sizeof *stack), top = 0;

	if (!stack)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (pick[i])
			stack[top++] = i;
	while (top > 0) {
		size_t i = stack[--top];
		long t = dag_index(dag, str_field(json_object_array_get_idx(tis, i), "task_id"));
		if (t < 0)
			continue;
		const pw_task *task = &dag->tasks[t];
		size_t m = down ? task->n_down : task->n_up;
		for (size_t j = 0; j < m; j++) {
			long k = ti_index(tis, dag->tasks[down ? task->down[j] : task->up[j]].name);
			if (k >= 0 && !pick[k]) {
				pick[k] = true;
				stack[top++] = (size_t)k;
			}
		}
	}
	free(stack);
	return 0;
}

/* "'a', 'b'" of a list of strings (malloc'd), or NULL when out of memory. */
static char *join_names(json_object *list)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	for (size_t i = 0; i < json_object_array_length(list); i++)
		fprintf(f, "%s'%s'", i ? ", " : "",
			json_object_get_string(json_object_array_get_idx(list, i)));
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/*
 * The task ids a clear body selects among the run's instances tis, as a
 * JSON list (instance order), or NULL with the request answered (400 for
 * unknown ids) or failed (*rc).
 */
static json_object *clear_selection(pw_req *req, json_object *body, json_object *tis, int *rc)
{
	const pw_project *p = pw_req_project(req);
	const pw_dag *dag = p ? pw_project_dag(p, pw_req_param(req, "dag_id")) : NULL;
	size_t n = json_object_array_length(tis);
	json_object *ids = NULL, *out = NULL, *unknown = NULL;
	bool *pick = calloc(n + 1, sizeof *pick);

	*rc = FAILED;
	if (!pick || !(out = json_object_new_array()) || !(unknown = json_object_new_array()))
		goto done;
	if (!json_object_object_get_ex(body, "task_ids", &ids) || !ids ||
	    json_object_array_length(ids) == 0) {
		for (size_t i = 0; i < n; i++)
			pick[i] = true;
	}
	for (size_t i = 0; ids && i < json_object_array_length(ids); i++) {
		json_object *id = json_object_array_get_idx(ids, i);
		long k = ti_index(tis, json_object_get_string(id));
		if (k >= 0)
			pick[k] = true;
		else if (json_object_array_add(unknown, json_object_get(id)) != 0)
			goto done;
	}
	if (json_object_array_length(unknown) > 0) {
		char *names = join_names(unknown);
		if (!names)
			goto done;
		pw_reply_error(req, 400, "task_ids: run '%s' has no task instances named %s",
			       pw_req_param(req, "run_id"), names);
		free(names);
		*rc = ANSWERED;
		goto done;
	}
	if ((bool_field(body, "include_downstream") && expand(dag, tis, pick, true) != 0) ||
	    (bool_field(body, "include_upstream") && expand(dag, tis, pick, false) != 0))
		goto done;
	for (size_t i = 0; i < n; i++) {
		json_object *ti = json_object_array_get_idx(tis, i);
		const char *state = str_field(ti, "state");
		if (!pick[i] || strcmp(state, "running") == 0)
			continue;  /* a running task is left to finish */
		if (bool_field(body, "only_failed") && strcmp(state, "failed") != 0 &&
		    strcmp(state, "upstream_failed") != 0)
			continue;
		if (json_object_array_add(out, json_object_new_string(str_field(ti, "task_id"))) != 0)
			goto done;
	}
	*rc = GO;
done:
	free(pick);
	json_object_put(unknown);
	if (*rc != GO) {
		json_object_put(out);
		out = NULL;
	}
	return out;
}

int runs_clear(pw_req *req)
{
	json_object *run = NULL, *tis = NULL, *owned = NULL, *ids = NULL, *body, *args = NULL;
	long long pk = 0;
	size_t len = 0;
	int rc = api_find_run(req, &run, &pk);

	/* Every field is optional: no body at all is {}. */
	if (rc == GO) {
		pw_req_body(req, &len);
		body = len == 0 ? (owned = json_object_new_object()) : pw_req_json(req);
		if (!body)
			rc = len == 0 ? FAILED : ANSWERED;
	}
	if (rc == GO && pw_req_check_body(req, body, clear_fields,
					  sizeof clear_fields / sizeof *clear_fields) != 0)
		rc = ANSWERED;
	if (rc == GO && api_task_instances(req, pk, NULL, NULL, &tis) != GO)
		rc = FAILED;
	if (rc == GO)
		ids = clear_selection(req, body, tis, &rc);
	if (rc == GO && !bool_field(body, "dry_run") && json_object_array_length(ids) > 0) {
		if (!(args = json_object_new_object()) ||
		    json_object_object_add(args, "task_ids", json_object_get(ids)) != 0)
			rc = FAILED;
		else if (pw_store_command(pw_req_store(req), pw_req_param(req, "dag_id"),
					  pw_req_param(req, "run_id"), "clear", args) != PW_OK)
			rc = FAILED;
	}
	if (rc == GO) {
		json_object *data = json_object_new_object();
		if (!data || json_object_object_add(data, "task_ids", ids) != 0) {
			json_object_put(data);
			rc = FAILED;
		} else {
			ids = NULL;
			rc = pw_reply_data(req, bool_field(body, "dry_run") ? 200 : 202, data, NULL)
				== 0 ? GO : FAILED;
		}
	}
	json_object_put(args);
	json_object_put(ids);
	json_object_put(tis);
	json_object_put(run);
	json_object_put(owned);
	return rc;
}

/* --- mark a task instance ------------------------------------------------------------ */

static const pw_field mark_fields[] = {
	{"state", PW_F_STRING, true},
};

static const char *const mark_states[] = {"success", "failed", "skipped"};
static const char *const run_mark_states[] = {"success", "failed"};

static bool one_of(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

#define ONE_OF(s, list) one_of((s), (list), sizeof(list) / sizeof *(list))

int tasks_mark(pw_req *req)
{
	json_object *run = NULL, *tis = NULL, *body = NULL, *args = NULL, *ti;
	const char *task_id = pw_req_param(req, "task_id"), *state = NULL;
	long long pk = 0;
	int rc = api_find_run(req, &run, &pk);

	if (rc == GO && (!task_id || !pw_valid_task_id(task_id))) {
		pw_reply_error(req, 404, "task not found");
		rc = ANSWERED;
	}
	if (rc == GO && api_task_instances(req, pk, task_id, NULL, &tis) != GO)
		rc = FAILED;
	if (rc == GO && json_object_array_length(tis) == 0) {
		pw_reply_error(req, 404, "run '%s' has no task '%s'", pw_req_param(req, "run_id"),
			       task_id);
		rc = ANSWERED;
	}
	if (rc == GO && (!(body = pw_req_json(req)) ||
			 pw_req_check_body(req, body, mark_fields, 1) != 0))
		rc = ANSWERED;
	if (rc == GO && !ONE_OF(state = str_field(body, "state"), mark_states)) {
		pw_reply_error(req, 400, "state: expected success, failed or skipped");
		rc = ANSWERED;
	}
	ti = rc == GO ? json_object_array_get_idx(tis, 0) : NULL;
	if (rc == GO && strcmp(str_field(ti, "state"), "running") == 0) {
		pw_reply_error(req, 409, "cannot mark task '%s': it is running", task_id);
		rc = ANSWERED;
	}
	if (rc == GO) {
		if (!(args = json_object_new_object()) ||
		    json_object_object_add(args, "task_id", json_object_new_string(task_id)) ||
		    json_object_object_add(args, "state", json_object_new_string(state)) ||
		    pw_store_command(pw_req_store(req), pw_req_param(req, "dag_id"),
				     pw_req_param(req, "run_id"), "mark", args) != PW_OK)
			rc = FAILED;
	}
	if (rc == GO) {
		/* The answer is the instance as marked: the runner applies it. */
		json_object_object_add(ti, "state", json_object_new_string(state));
		rc = pw_reply_data(req, 200, json_object_get(ti), NULL) == 0 ? GO : FAILED;
	}
	json_object_put(args);
	json_object_put(tis);
	json_object_put(run);
	return rc;
}

/* --- PATCH a run: its state or its note -------------------------------------------- */

static const pw_field run_patch_fields[] = {
	{"state", PW_F_STRING, false},
	{"note", PW_F_STRING, false},
};

/*
 * Marks a run that is not running, with the tasks it has left to do,
 * each change with its event. PW_OK, PW_CONFLICT (it is running now) or
 * PW_ERR.
 */
static int mark_run(pw_req *req, long long pk, const char *prev, const char *state)
{
	static const char run_sql[] =
		"UPDATE runs SET state = ?2, ended_at = ?3,"
		" started_at = coalesce(started_at, ?3) WHERE id = ?1 AND state <> 'running'";
	/* the unfinished instances, with the state each event says it left */
	static const char tis_sql[] =
		"SELECT task_id, state, try_number FROM task_instances WHERE run_pk = ?1"
		" AND state IN ('pending','queued','up_for_retry')";
	static const char tis_set_sql[] =
		"UPDATE task_instances SET state = ?2, ended_at = ?3 WHERE run_pk = ?1"
		" AND state IN ('pending','queued','up_for_retry')";
	pw_store *store = pw_req_store(req);
	sqlite3_stmt *st = pw_store_stmt(store, run_sql);
	const char *dag_id = pw_req_param(req, "dag_id"), *run_id = pw_req_param(req, "run_id");
	long long now = pw_now_ms();
	int rc = PW_ERR, step;

	if (!st)
		return PW_ERR;
	sqlite3_bind_int64(st, 1, pk);
	sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	step = sqlite3_step(st);
	api_stmt_done(st);
	if (step != SQLITE_DONE)
		return api_db_error(req);
	if (sqlite3_changes(pw_store_db(store)) == 0)
		return PW_CONFLICT;
	pw_event ev = {.type = "run.state", .dag_id = dag_id, .run_id = run_id,
		       .state = state, .previous_state = prev};
	if (pw_store_add_event(store, &ev) < 0 || !(st = pw_store_stmt(store, tis_sql)))
		return PW_ERR;
	sqlite3_bind_int64(st, 1, pk);
	rc = PW_OK;
	while (rc == PW_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
		pw_event tev = {.type = "task.state", .dag_id = dag_id, .run_id = run_id,
				.task_id = (const char *)sqlite3_column_text(st, 0),
				.state = state,
				.previous_state = (const char *)sqlite3_column_text(st, 1),
				.try_number = sqlite3_column_int(st, 2)};
		if (pw_store_add_event(store, &tev) < 0)
			rc = PW_ERR;
	}
	if (rc == PW_OK && step != SQLITE_DONE)
		rc = api_db_error(req);
	api_stmt_done(st);
	if (rc != PW_OK || !(st = pw_store_stmt(store, tis_set_sql)))
		return PW_ERR;
	sqlite3_bind_int64(st, 1, pk);
	sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	step = sqlite3_step(st);
	api_stmt_done(st);
	return step == SQLITE_DONE ? PW_OK : api_db_error(req);
}

/* Sets the run's note (NULL clears it). GO or FAILED. */
static int set_note(pw_req *req, long long pk, const char *note)
{
	static const char sql[] = "UPDATE runs SET note = ?2 WHERE id = ?1";
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(req), sql);
	int step;

	if (!st)
		return FAILED;
	sqlite3_bind_int64(st, 1, pk);
	sqlite3_bind_text(st, 2, note, -1, SQLITE_STATIC);
	step = sqlite3_step(st);
	api_stmt_done(st);
	return step == SQLITE_DONE ? GO : api_db_error(req);
}

int runs_patch(pw_req *req)
{
	json_object *run = NULL, *body = NULL;
	const char *dag_id = pw_req_param(req, "dag_id"), *run_id = pw_req_param(req, "run_id");
	const char *state = NULL, *note = NULL, *prev;
	long long pk = 0;
	int rc = api_find_run(req, &run, &pk), r = PW_OK;
	pw_store *store = pw_req_store(req);

	if (rc == GO && (!(body = pw_req_json(req)) ||
			 pw_req_check_body(req, body, run_patch_fields, 2) != 0))
		rc = ANSWERED;
	if (rc == GO) {
		state = str_field(body, "state");
		note = str_field(body, "note");
		if (!state && !note) {
			pw_reply_error(req, 400, "expected \"state\" or \"note\"");
			rc = ANSWERED;
		} else if (state && !ONE_OF(state, run_mark_states)) {
			pw_reply_error(req, 400, "state: expected success or failed");
			rc = ANSWERED;
		}
	}
	prev = rc == GO ? str_field(run, "state") : NULL;
	if (rc == GO && state && strcmp(prev, "running") == 0) {
		pw_reply_error(req, 409, "cannot mark run '%s': it is running", run_id);
		rc = ANSWERED;
	}
	if (rc == GO) {
		if (pw_store_begin(store) != PW_OK)
			rc = FAILED;
		if (rc == GO && note)
			r = set_note(req, pk, note);
		if (rc == GO && r == PW_OK && state && strcmp(state, prev) != 0)
			r = mark_run(req, pk, prev, state);
		json_object_put(run);
		run = NULL;
		if (rc == GO && r == PW_OK)
			r = api_run_object(req, dag_id, run_id, &run, NULL);
		if (rc == GO && r == PW_OK)
			r = pw_store_commit(store);
		if (rc == GO && r != PW_OK) {
			pw_store_rollback(store);
			if (r == PW_CONFLICT) {
				pw_reply_error(req, 409, "cannot mark run '%s': it is running", run_id);
				rc = ANSWERED;
			} else {
				rc = FAILED;
			}
		}
	}
	if (rc == GO) {
		pw_store_wake(store);
		rc = pw_reply_data(req, 200, run, NULL) == 0 ? GO : FAILED;
		run = NULL;
	}
	json_object_put(run);
	return rc;
}

/* --- DELETE ?purge=true ------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* Removes a run's log folder and everything in it; gone already is fine. */
static int remove_tree(const char *dir)
{
	int rc = nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

	return rc == 0 || errno == ENOENT ? 0 : -1;
}

int runs_purge(pw_req *req)
{
	static const char sql[] =
		"DELETE FROM runs WHERE id = ?1 AND state IN ('success','failed','cancelled')";
	json_object *run = NULL;
	const char *dag_id = pw_req_param(req, "dag_id"), *run_id = pw_req_param(req, "run_id");
	const pw_project *p = pw_req_project(req);
	pw_store *store = pw_req_store(req);
	sqlite3_stmt *st;
	long long pk = 0;
	int rc = api_find_run(req, &run, &pk), step;
	char *dir = NULL;

	json_object_put(run);
	if (rc != GO)
		return rc;
	if (!(st = pw_store_stmt(store, sql)))
		return FAILED;
	sqlite3_bind_int64(st, 1, pk);
	step = sqlite3_step(st);
	api_stmt_done(st);
	if (step != SQLITE_DONE)
		return api_db_error(req), -1;
	if (sqlite3_changes(pw_store_db(store)) == 0)
		return pw_reply_error(req, 409, "cannot delete run '%s': it has not finished "
				      "(cancel it first)", run_id);
	/* The ids are valid: no '/' or '..' can reach the path. */
	dir = p ? pw_asprintf("%s/%s/%s", p->logs_dir, dag_id, run_id) : NULL;
	if (dir && remove_tree(dir) != 0)
		fprintf(stderr, "pipewright: cannot remove %s: %s\n", dir, strerror(errno));
	free(dir);
	return pw_reply_empty(req, 204);
}
