/*
 * objects.c - what several resources share: times as ISO-8601, the run
 * object, the task instance object, and the check that a DAG id of a path
 * is known to the API.
 *
 * Objects are built straight from a row of a statement prepared through
 * pw_store_stmt; the statement is reset (and its bindings cleared) before
 * the function returns, whatever happened.
 */
#include "jsonnum.h"
#include "api.h"

#include <assert.h>
#include <json-c/printbuf.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Logs an SQLite error of the connection. Returns FAILED. */
static int db_error(pw_store *store)
{
	fprintf(stderr, "pipewright: api: %s\n", sqlite3_errmsg(pw_store_db(store)));
	return FAILED;
}

/* Logs an SQLite error of the request's connection. Returns FAILED. */
int api_db_error(pw_req *req)
{
	return db_error(pw_req_store(req));
}

/* Puts a statement back for its next user. */
void api_stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int api_rows(pw_req *req, sqlite3_stmt *st, json_object *(*row)(sqlite3_stmt *st),
	     json_object *list)
{
	int rc = GO, step = SQLITE_DONE;

	assert(st && row && json_object_is_type(list, json_type_array));
	while (rc == GO && (step = sqlite3_step(st)) == SQLITE_ROW)
		if (pw_json_push(list, row(st)) != 0)
			rc = FAILED;
	if (rc == GO && step != SQLITE_DONE)
		rc = api_db_error(req);
	api_stmt_done(st);
	return rc;
}

int api_read_end(pw_req *req, int rc)
{
	pw_store *store = pw_req_store(req);

	assert(!sqlite3_get_autocommit(pw_store_db(store)));   /* one is open */
	if (pw_store_commit(store) != PW_OK) {
		pw_store_rollback(store);
		if (rc == GO)
			rc = api_db_error(req);
	}
	return rc;
}

/* Adds an ISO-8601 time, or null when ms <= 0. */
static int put_time(json_object *o, const char *key, long long ms)
{
	return ms > 0 ? pw_json_put(o, key, api_time(ms)) : pw_json_put_null(o, key);
}

/* Adds column i as an integer, or null when the column is NULL. */
static int put_col_int(json_object *o, const char *key, sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return pw_json_put_null(o, key);
	return pw_json_put(o, key, json_object_new_int64(sqlite3_column_int64(st, i)));
}

/*
 * A duration in ms: ended - started when both are known, now - started
 * while the thing runs, else -1 (null).
 */
static long long duration_ms(long long started, long long ended, bool running)
{
	if (started > 0 && ended > 0)
		return ended - started;
	if (started > 0 && running) {
		long long d = pw_now_ms() - started;
		return d > 0 ? d : 0;
	}
	return -1;
}

/* Adds duration_ms (see duration_ms). */
static int put_duration(json_object *o, long long started, long long ended,
			bool running)
{
	long long d = duration_ms(started, ended, running);

	return d < 0 ? pw_json_put_null(o, "duration_ms")
		     : pw_json_put(o, "duration_ms", json_object_new_int64(d));
}

/* The column's text as a JSON object; {} when it is not one. NULL: OOM. */
static json_object *col_object(sqlite3_stmt *st, int i)
{
	const char *text = (const char *)sqlite3_column_text(st, i);
	json_object *v = pw_json_parse_exact(text);

	if (v && json_object_is_type(v, json_type_object))
		return v;
	json_object_put(v);
	return json_object_new_object();
}

json_object *api_time(long long ms)
{
	char buf[32];

	if (ms <= 0)
		return NULL;
	pw_format_iso(ms, buf);
	return json_object_new_string(buf);
}

/* --- JSON text ------------------------------------------------------------- */

void api_text_init(api_text *t)
{
	t->pb = printbuf_new();
	t->failed = !t->pb;
}

void api_text_free(api_text *t)
{
	printbuf_free(t->pb);
	t->pb = NULL;
	t->failed = true;
}

void api_text_raw(api_text *t, const char *s, size_t n)
{
	assert(t->failed || t->pb);   /* api_text_init came first */
	if (!t->failed && (n > INT_MAX || printbuf_memappend(t->pb, s, (int)n) < 0))
		t->failed = true;
}

void api_text_str(api_text *t, const char *s)
{
	assert(t->failed || t->pb);
	if (!t->failed && pw_json_quote(t->pb, s) != 0)
		t->failed = true;
}

void api_text_int(api_text *t, long long n)
{
	char buf[24], *p = buf + sizeof buf;
	unsigned long long u = n < 0 ? 0 - (unsigned long long)n : (unsigned long long)n;

	do
		*--p = (char)('0' + u % 10);
	while (u /= 10);
	if (n < 0)
		*--p = '-';
	api_text_raw(t, p, (size_t)(buf + sizeof buf - p));
}

void api_text_time(api_text *t, long long ms)
{
	char buf[40];   /* a quote, pw_format_iso's 32 bytes, a quote */

	if (ms <= 0) {
		API_TEXT_LIT(t, "null");
		return;
	}
	buf[0] = '"';
	pw_format_iso(ms, buf + 1);
	size_t n = strlen(buf);
	buf[n] = '"';
	api_text_raw(t, buf, n + 1);
}

void api_text_json(api_text *t, json_object *v)
{
	size_t len = 0;
	const char *s = json_object_to_json_string_length(
		v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

	if (s)
		api_text_raw(t, s, len);
	else
		t->failed = true;
}

void api_text_page_end(api_text *t, long long total, const api_page *pg)
{
	API_TEXT_LIT(t, "],");
	api_text_meta(t, total, pg);
	API_TEXT_LIT(t, "}");
}

void api_text_meta(api_text *t, long long total, const api_page *pg)
{
	API_TEXT_LIT(t, "\"meta\":{\"total\":");
	api_text_int(t, total);
	API_TEXT_LIT(t, ",\"limit\":");
	api_text_int(t, pg->limit);
	API_TEXT_LIT(t, ",\"offset\":");
	api_text_int(t, pg->offset);
	API_TEXT_LIT(t, ",\"next_cursor\":");
	api_text_str(t, pg->next);
	API_TEXT_LIT(t, "}");
}

int api_text_reply(pw_req *req, int status, api_text *t)
{
	int rc = t->failed ? -1
		 : pw_reply_raw(req, status, "application/json", t->pb->buf,
				(size_t)printbuf_length(t->pb));
	api_text_free(t);
	return rc;
}

/* --- runs ----------------------------------------------------------------- */

static const char run_sql[] =
	"SELECT " API_RUN_COLUMNS " FROM runs WHERE dag_id = ?1 AND run_id = ?2";

/* API_RUN_COLUMNS, by position. */
enum {
	RC_ID, RC_DAG, RC_RUN, RC_STATE, RC_TYPE, RC_CONF, RC_OPTIONS,
	RC_BY, RC_QUEUED, RC_STARTED, RC_ENDED, RC_ETYPE, RC_EMSG, RC_LOGICAL,
	RC_NOTE,
};

#define COL_TEXT(st, i) ((const char *)sqlite3_column_text((st), (i)))

/* Whether col_object would read column i as {} without parsing it. */
static bool col_empty(sqlite3_stmt *st, int i)
{
	const char *text = COL_TEXT(st, i);

	return !text || strcmp(text, "{}") == 0;
}

/* "error": null, or {"type", "message"} when the run has one. */
static void run_error_text(api_text *t, sqlite3_stmt *st)
{
	const char *type = COL_TEXT(st, RC_ETYPE);
	const char *msg = COL_TEXT(st, RC_EMSG);

	if (!type && !msg) {
		API_TEXT_LIT(t, ",\"error\":null");
		return;
	}
	API_TEXT_LIT(t, ",\"error\":{\"type\":");
	api_text_str(t, type);
	API_TEXT_LIT(t, ",\"message\":");
	api_text_str(t, msg);
	API_TEXT_LIT(t, "}");
}

/*
 * What the options column is worth showing: "runner" (the Kedro runner
 * asked for, null for the default) and "options" (the slicing filters,
 * only_missing_outputs, load_versions as stored).
 */
static void run_options_text(api_text *t, sqlite3_stmt *st)
{
	json_object *opts, *runner = NULL;

	if (col_empty(st, RC_OPTIONS)) {
		API_TEXT_LIT(t, ",\"runner\":null,\"options\":{}");
		return;
	}
	opts = col_object(st, RC_OPTIONS);
	if (!opts) {
		t->failed = true;
		return;
	}
	json_object_object_get_ex(opts, "runner", &runner);
	API_TEXT_LIT(t, ",\"runner\":");
	api_text_str(t, json_object_is_type(runner, json_type_string)
				? json_object_get_string(runner) : NULL);
	API_TEXT_LIT(t, ",\"options\":");
	api_text_json(t, opts);
	json_object_put(opts);
}

/* A JSON object column (conf), as col_object reads it. */
static void object_col_text(api_text *t, sqlite3_stmt *st, int i)
{
	if (col_empty(st, i)) {
		API_TEXT_LIT(t, "{}");
		return;
	}
	json_object *v = col_object(st, i);

	if (v)
		api_text_json(t, v);
	else
		t->failed = true;
	json_object_put(v);
}

void api_run_text(api_text *t, sqlite3_stmt *st)
{
	const char *state = COL_TEXT(st, RC_STATE);
	long long started = sqlite3_column_int64(st, RC_STARTED);
	long long ended = sqlite3_column_int64(st, RC_ENDED);
	long long d = duration_ms(started, ended, state && strcmp(state, "running") == 0);

	API_TEXT_LIT(t, "{\"run_id\":");
	api_text_str(t, COL_TEXT(st, RC_RUN));
	API_TEXT_LIT(t, ",\"dag_id\":");
	api_text_str(t, COL_TEXT(st, RC_DAG));
	API_TEXT_LIT(t, ",\"state\":");
	api_text_str(t, state);
	API_TEXT_LIT(t, ",\"run_type\":");
	api_text_str(t, COL_TEXT(st, RC_TYPE));
	API_TEXT_LIT(t, ",\"conf\":");
	object_col_text(t, st, RC_CONF);
	API_TEXT_LIT(t, ",\"logical_date\":");
	api_text_time(t, sqlite3_column_int64(st, RC_LOGICAL));
	API_TEXT_LIT(t, ",\"note\":");
	api_text_str(t, COL_TEXT(st, RC_NOTE));
	API_TEXT_LIT(t, ",\"queued_at\":");
	api_text_time(t, sqlite3_column_int64(st, RC_QUEUED));
	API_TEXT_LIT(t, ",\"started_at\":");
	api_text_time(t, started);
	API_TEXT_LIT(t, ",\"ended_at\":");
	api_text_time(t, ended);
	API_TEXT_LIT(t, ",\"duration_ms\":");
	if (d < 0)
		API_TEXT_LIT(t, "null");
	else
		api_text_int(t, d);
	API_TEXT_LIT(t, ",\"triggered_by\":");
	api_text_str(t, COL_TEXT(st, RC_BY));
	run_error_text(t, st);
	run_options_text(t, st);
	API_TEXT_LIT(t, "}");
}

/*
 * The run object of st's current row as a json-c tree: api_run_text read
 * back, so both forms say the same. Deep enough for a conf or options of
 * json-c's default depth inside the run. NULL when out of memory.
 */
static json_object *run_from_row(sqlite3_stmt *st)
{
	api_text t;
	json_object *o = NULL;

	api_text_init(&t);
	api_run_text(&t, st);
	json_tokener *tok = t.failed ? NULL : json_tokener_new_ex(2 * JSON_TOKENER_DEFAULT_DEPTH);
	if (tok) {
		o = json_tokener_parse_ex(tok, t.pb->buf, printbuf_length(t.pb));
		json_tokener_free(tok);
		if (o && pw_json_keep_numbers(&o, t.pb->buf, (size_t)printbuf_length(t.pb)) != 0) {
			json_object_put(o);
			o = NULL;
		}
	}
	api_text_free(&t);
	return o;
}

int api_run_object(pw_req *req, const char *dag_id, const char *run_id,
		   json_object **out, long long *pk)
{
	return api_run_object_in(pw_req_store(req), dag_id, run_id, out, pk);
}

int api_run_object_in(pw_store *store, const char *dag_id, const char *run_id,
		      json_object **out, long long *pk)
{
	sqlite3_stmt *st = pw_store_stmt(store, run_sql);
	int rc = PW_ERR;

	*out = NULL;
	if (!st)
		return PW_ERR;
	sqlite3_bind_text(st, 1, dag_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, run_id, -1, SQLITE_STATIC);
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		if (pk)
			*pk = sqlite3_column_int64(st, RC_ID);
		*out = run_from_row(st);
		rc = *out ? GO : FAILED;
		if (!*out)
			fprintf(stderr, "pipewright: api: out of memory\n");
		break;
	case SQLITE_DONE:
		rc = PW_NOTFOUND;
		break;
	default:
		rc = db_error(store);
		break;
	}
	api_stmt_done(st);
	return rc;
}

/* --- task instances ----------------------------------------------------------- */

#define TI_COLS "SELECT task_id, state, try_number, max_tries, pool," \
	" pool_slots, started_at, ended_at, exit_code, next_try_at, rowid" \
	" FROM task_instances WHERE run_pk = ?1"

/*
 * Rowid order is creation order: the runner creates them topologically.
 * ?5 the rowid a page goes on after (0 for the first).
 */
static const char ti_all_sql[] = TI_COLS " AND rowid > ?5 ORDER BY rowid LIMIT ?3 OFFSET ?4";
static const char ti_one_sql[] = TI_COLS " AND task_id = ?2";

enum {
	TC_TASK, TC_STATE, TC_TRY, TC_MAX, TC_POOL, TC_SLOTS, TC_STARTED,
	TC_ENDED, TC_EXIT, TC_NEXT, TC_ROWID,
};

/* The task instance object of the statement's current row. */
static json_object *ti_from_row(sqlite3_stmt *st)
{
	json_object *o = json_object_new_object();
	const char *state = COL_TEXT(st, TC_STATE);
	long long started = sqlite3_column_int64(st, TC_STARTED);
	long long ended = sqlite3_column_int64(st, TC_ENDED);

	if (!o || pw_json_put_str(o, "task_id", COL_TEXT(st, TC_TASK)) ||
	    pw_json_put_str(o, "state", state) ||
	    put_col_int(o, "try_number", st, TC_TRY) ||
	    put_col_int(o, "max_tries", st, TC_MAX) ||
	    put_time(o, "started_at", started) ||
	    put_time(o, "ended_at", ended) ||
	    put_duration(o, started, ended,
			 state && strcmp(state, "running") == 0) ||
	    put_col_int(o, "exit_code", st, TC_EXIT) ||
	    pw_json_put_str(o, "pool", COL_TEXT(st, TC_POOL)) ||
	    put_col_int(o, "pool_slots", st, TC_SLOTS) ||
	    put_time(o, "next_try_at", sqlite3_column_int64(st, TC_NEXT))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int api_task_instances(pw_req *req, long long run_pk, const char *task_id,
		       api_page *pg, json_object **out)
{
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(req),
					 task_id ? ti_one_sql : ti_all_sql);
	json_object *list = json_object_new_array();
	long long last = 0;
	int rc = FAILED, step, n = 0;

	assert(!(task_id && pg));   /* one task is not paged */
	*out = NULL;
	if (!st || !list)
		goto out;
	sqlite3_bind_int64(st, 1, run_pk);
	if (task_id) {
		sqlite3_bind_text(st, 2, task_id, -1, SQLITE_STATIC);
	} else {
		sqlite3_bind_int(st, 3, pg ? pg->limit + 1 : -1);
		sqlite3_bind_int64(st, 4, pg ? pg->offset : 0);
		sqlite3_bind_int64(st, 5, pg && pg->after ? pg->key : 0);
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (pg && n++ == pg->limit) {
			if (api_page_next(pg, true, 0, last, NULL) != GO)
				goto out;
			continue;
		}
		last = sqlite3_column_int64(st, TC_ROWID);
		json_object *ti = ti_from_row(st);
		if (!ti || json_object_array_add(list, ti) != 0) {
			json_object_put(ti);
			fprintf(stderr, "pipewright: api: out of memory\n");
			goto out;
		}
	}
	if (step != SQLITE_DONE) {
		api_db_error(req);
		goto out;
	}
	*out = list;
	list = NULL;
	rc = GO;
out:
	if (st)
		api_stmt_done(st);
	json_object_put(list);
	return rc;
}

/* --- DAG ids ---------------------------------------------------------------------- */

bool api_valid_pipeline_id(const char *s)
{
	size_t seg = 0, total = 0;

	for (; *s; s++, total++) {
		char c = *s;
		bool word = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			    (c >= '0' && c <= '9') || c == '_';
		if (c == '+') {
			if (seg == 0)
				return false;
			seg = 0;
		} else if (word || (seg > 0 && (c == '.' || c == '-'))) {
			if (++seg > 250)
				return false;
		} else {
			return false;
		}
		if (total > 4096)
			return false;
	}
	return seg > 0;
}

static const char dag_has_runs_sql[] =
	"SELECT 1 FROM runs WHERE dag_id = ?1 LIMIT 1";

bool api_dag_exists_or_404(pw_req *req, const char *dag_id)
{
	const pw_project *p = pw_req_project(req);
	sqlite3_stmt *st;
	int step;

	if (dag_id && p && pw_project_dag(p, dag_id))
		return true;
	if (!dag_id || !api_valid_pipeline_id(dag_id)) {
		pw_reply_error(req, 404, "DAG not found");
		return false;
	}
	st = pw_store_stmt(pw_req_store(req), dag_has_runs_sql);
	if (!st) {
		pw_reply_error(req, 500, "database error");
		return false;
	}
	sqlite3_bind_text(st, 1, dag_id, -1, SQLITE_STATIC);
	step = sqlite3_step(st);
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		api_db_error(req);
	api_stmt_done(st);
	if (step == SQLITE_ROW)
		return true;
	if (step == SQLITE_DONE)
		pw_reply_error(req, 404, "DAG '%s' not found", dag_id);
	else
		pw_reply_error(req, 500, "database error");
	return false;
}

json_object *api_page_meta(long long total, const api_page *pg)
{
	json_object *m = json_object_new_object();
	json_object *next = pg->next ? json_object_new_string(pg->next) : NULL;

	if (!m || (pg->next && !next) ||
	    json_object_object_add(m, "total", json_object_new_int64(total)) ||
	    json_object_object_add(m, "limit", json_object_new_int(pg->limit)) ||
	    json_object_object_add(m, "offset", json_object_new_int64(pg->offset)) ||
	    json_object_object_add(m, "next_cursor", next)) {
		json_object_put(m);
		json_object_put(next);
		return NULL;
	}
	return m;
}

int api_task_instance_count(pw_req *req, long long run_pk, long long *total)
{
	static const char sql[] = "SELECT count(*) FROM task_instances WHERE run_pk = ?1";
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(req), sql);
	int rc = PW_ERR;

	if (!st)
		return PW_ERR;
	sqlite3_bind_int64(st, 1, run_pk);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*total = sqlite3_column_int64(st, 0);
		rc = PW_OK;
	} else {
		api_db_error(req);
	}
	api_stmt_done(st);
	return rc;
}
