/*
 * dags.c - the DAGs of the project: GET /api/v1/dags, GET and PATCH
 * /api/v1/dags/:dag_id, GET /api/v1/import-errors.
 *
 * A DAG's definition comes from the project snapshot; its pause flag and
 * next fire time from its row in `dags` (the runner keeps next_run_at
 * current). A DAG without a row yet shows its file's `paused`, and, when it
 * has a schedule and is not paused, the next fire time computed from now.
 *
 * Everything of a DAG's object but those two fields only changes with the
 * project, so each snapshot keeps it as JSON text (api_dags_new), and an
 * answer is that text with the two fields written in between.
 */
#include <json-c/printbuf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cron.h"

/* --- JSON building -------------------------------------------------------- */

/* A JSON array of the strings of sv, or NULL when out of memory. */
static json_object *strv_array(const pw_strv *sv)
{
	json_object *a = json_object_new_array_ext((int)sv->n);

	for (size_t i = 0; a && i < sv->n; i++)
		if (pw_json_push(a, json_object_new_string(sv->v[i])) != 0) {
			json_object_put(a);
			return NULL;
		}
	return a;
}

/* The names of the tasks at indices idx[0..n) of dag, as a JSON array. */
static json_object *names_array(const pw_dag *dag, const size_t *idx, size_t n)
{
	json_object *a = json_object_new_array_ext((int)n);

	for (size_t i = 0; a && i < n; i++)
		if (pw_json_push(a, json_object_new_string(dag->tasks[idx[i]].name)) != 0) {
			json_object_put(a);
			return NULL;
		}
	return a;
}

/* --- the state of a DAG in the database ----------------------------------- */

typedef struct dag_state {
	bool paused;
	long long next_run_at; /* ms; 0 = none (yet) */
} dag_state;

/* The next fire time of a schedule after now (ms), or 0 when it has none. */
static long long cron_next_ms(const char *schedule)
{
	pw_cron cron;
	char err[256];

	if (pw_cron_parse(schedule, &cron, err, sizeof err) != 0)
		return 0; /* validated at load; cannot happen */
	int64_t next = pw_cron_next(&cron, pw_now_ms() / 1000);
	return next > 0 ? (long long)next * 1000 : 0;
}

/* Both read is_paused, next_run_at, dag_id. */
static const char state_one_sql[] =
	"SELECT is_paused, next_run_at, dag_id FROM dags WHERE dag_id = ?1";
static const char state_all_sql[] =
	"SELECT is_paused, next_run_at, dag_id FROM dags ORDER BY dag_id";

/* dag's state from q's current row when row is set, else from its file. */
static void state_from(const pw_dag *dag, sqlite3_stmt *q, bool row, dag_state *st)
{
	st->paused = row ? sqlite3_column_int(q, 0) != 0 : dag->paused;
	st->next_run_at = row ? sqlite3_column_int64(q, 1) : 0; /* NULL reads 0 */
}

/* Reads dag's row of `dags` into *st. Returns GO or FAILED (logged). */
static int dag_state_get(pw_req *req, const pw_dag *dag, dag_state *st)
{
	sqlite3_stmt *q = pw_store_stmt(pw_req_store(req), state_one_sql);

	if (!q)
		return FAILED;
	int step = sqlite3_bind_text(q, 1, dag->id, -1, SQLITE_STATIC);
	if (step == SQLITE_OK)
		step = sqlite3_step(q);
	if (step == SQLITE_ROW || step == SQLITE_DONE)
		state_from(dag, q, step == SQLITE_ROW, st);
	else
		api_db_error(req);
	api_stmt_done(q);
	return step == SQLITE_ROW || step == SQLITE_DONE ? GO : FAILED;
}

/*
 * Reads dag's state from q (state_all_sql), which is walked beside the
 * project's DAGs: both go in dag_id order (strcmp's, SQLite's BINARY).
 * *step is q's last result; q stays on the first row past dag. Returns
 * GO or FAILED (logged).
 */
static int state_next(pw_req *req, sqlite3_stmt *q, int *step, const pw_dag *dag,
		      dag_state *st)
{
	int cmp = -1;

	while (*step == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(q, 2);
		cmp = id ? strcmp(id, dag->id) : -1;
		if (cmp >= 0)
			break;
		*step = sqlite3_step(q);
	}
	if (*step != SQLITE_ROW && *step != SQLITE_DONE)
		return api_db_error(req);
	state_from(dag, q, *step == SQLITE_ROW && cmp == 0, st);
	return GO;
}

/* --- the fixed text of a snapshot's DAGs ---------------------------------- */

/*
 * Every DAG's text, one after the other. DAG i (of the project's sorted
 * list) is text[cut[3i] .. cut[3i+3]), the object without its closing
 * brace; is_paused goes in at cut[3i+1], next_run_at at cut[3i+2].
 */
struct api_dags {
	api_text text;
	size_t *cut;
};

static size_t text_len(const api_text *t)
{
	return t->failed ? 0 : (size_t)printbuf_length(t->pb);
}

/* Appends dag's fixed text to t, noting where it starts and its two gaps. */
static void dag_fixed_text(api_text *t, const pw_dag *dag, size_t cut[3])
{
	cut[0] = text_len(t);
	API_TEXT_LIT(t, "{\"dag_id\":");
	api_text_str(t, dag->id);
	API_TEXT_LIT(t, ",\"description\":");
	api_text_str(t, dag->description);
	API_TEXT_LIT(t, ",\"file\":");
	api_text_str(t, dag->file);
	API_TEXT_LIT(t, ",\"schedule\":");
	api_text_str(t, dag->schedule);
	API_TEXT_LIT(t, ",\"is_paused\":");
	cut[1] = text_len(t);
	API_TEXT_LIT(t, ",\"tags\":[");
	for (size_t i = 0; i < dag->tags.n; i++) {
		if (i > 0)
			API_TEXT_LIT(t, ",");
		api_text_str(t, dag->tags.v[i]);
	}
	API_TEXT_LIT(t, "],\"max_active_runs\":");
	api_text_int(t, dag->max_active_runs);
	API_TEXT_LIT(t, ",\"next_run_at\":");
	cut[2] = text_len(t);
	API_TEXT_LIT(t, ",\"task_count\":");
	api_text_int(t, (long long)dag->n_tasks);
}

api_dags *api_dags_new(const pw_project *p)
{
	api_dags *d = calloc(1, sizeof *d);

	if (!d)
		return NULL;
	api_text_init(&d->text);
	d->cut = malloc((3 * p->n_dags + 1) * sizeof *d->cut);
	for (size_t i = 0; d->cut && i < p->n_dags; i++)
		dag_fixed_text(&d->text, p->dags[i], d->cut + 3 * i);
	if (!d->cut || d->text.failed) {
		api_dags_free(d);
		return NULL;
	}
	d->cut[3 * p->n_dags] = text_len(&d->text);
	return d;
}

void api_dags_free(api_dags *d)
{
	if (!d)
		return;
	api_text_free(&d->text);
	free(d->cut);
	free(d);
}

/*
 * Writes DAG i of the request's snapshot with its state st, without the
 * closing brace. A DAG without a next fire time in the database gets one
 * computed from now when it is scheduled and not paused.
 */
static void dag_text(pw_req *req, api_text *t, size_t i, const dag_state *st)
{
	const api_dags *d = api_req_dags(req);
	const pw_dag *dag = pw_req_project(req)->dags[i];
	const char *s = d->text.pb->buf;
	const size_t *cut = d->cut + 3 * i;
	long long next = st->next_run_at;

	if (!next && dag->schedule && !st->paused)
		next = cron_next_ms(dag->schedule);
	api_text_raw(t, s + cut[0], cut[1] - cut[0]);
	if (st->paused)
		API_TEXT_LIT(t, "true");
	else
		API_TEXT_LIT(t, "false");
	api_text_raw(t, s + cut[1], cut[2] - cut[1]);
	api_text_time(t, next);
	api_text_raw(t, s + cut[2], cut[3] - cut[2]);
}

/* --- the objects -------------------------------------------------------- */

/* A task's command: its argv as a list, or its shell string. */
static json_object *command_value(const pw_task *t)
{
	if (t->shell)
		return json_object_new_string(t->shell);
	json_object *a = json_object_new_array();
	for (char **arg = t->argv; a && arg && *arg; arg++)
		if (pw_json_push(a, json_object_new_string(*arg)) != 0) {
			json_object_put(a);
			return NULL;
		}
	return a;
}

/*
 * One task of a DAG's detail. timeout is null when the task has none.
 * NULL when out of memory.
 */
static json_object *task_object(const pw_dag *dag, const pw_task *t)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if (pw_json_put_str(o, "task_id", t->name) ||
	    pw_json_put(o, "command", command_value(t)) ||
	    pw_json_put(o, "upstream", names_array(dag, t->up, t->n_up)) ||
	    pw_json_put(o, "downstream", names_array(dag, t->down, t->n_down)) ||
	    pw_json_put(o, "inputs", strv_array(&t->inputs)) ||
	    pw_json_put(o, "outputs", strv_array(&t->outputs)) ||
	    pw_json_put(o, "tags", strv_array(&t->tags)) ||
	    pw_json_put_str(o, "namespace", t->namespace_) ||
	    pw_json_put_str(o, "pool", t->pool) ||
	    pw_json_put_int(o, "pool_slots", t->pool_slots) ||
	    pw_json_put_int(o, "retries", t->retries) ||
	    pw_json_put_int(o, "retry_delay", t->retry_delay) ||
	    (t->timeout > 0 ? pw_json_put_int(o, "timeout", t->timeout)
			    : pw_json_put_null(o, "timeout")) ||
	    pw_json_put_str(o, "trigger_rule", pw_trigger_rule_name(t->trigger_rule))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/*
 * The page pg asks for of dag's tasks, in file order (a cursor's key is
 * the position of the last task it has seen); sets pg->next when more
 * follow. NULL when out of memory.
 */
static json_object *tasks_array(const pw_dag *dag, api_page *pg)
{
	size_t n = dag->n_tasks;
	long long from = pg->after ? pg->key + 1 : pg->offset;
	size_t start = from < 0 ? 0 : (unsigned long long)from > n ? n : (size_t)from;
	size_t end = n - start > (size_t)pg->limit ? start + (size_t)pg->limit : n;
	/* (an initial size of 0 may be malloc(0): NULL on some libcs) */
	json_object *a = json_object_new_array_ext(end > start ? (int)(end - start) : 1);

	for (size_t i = start; a && i < end; i++)
		if (pw_json_push(a, task_object(dag, &dag->tasks[i])) != 0) {
			json_object_put(a);
			return NULL;
		}
	if (a && end < n && api_page_next(pg, true, 0, (long long)end - 1, NULL) != PW_OK) {
		json_object_put(a);
		return NULL;
	}
	return a;
}

/* --- GET /api/v1/dags ----------------------------------------------------- */

/* The list's filters: ?tags=a,b (any of them), ?paused=true|false. */
typedef struct dag_filter {
	pw_strv tags;  /* empty: any */
	int paused;    /* -1: any, else 0 or 1 */
} dag_filter;

/* Splits a comma list into sv, skipping empty items. Returns 0 or -1. */
static int split_commas(const char *s, pw_strv *sv)
{
	while (s && *s) {
		size_t len = strcspn(s, ",");
		if (len > 0) {
			char *item = strndup(s, len);
			int rc = item ? pw_strv_push(sv, item) : -1;
			free(item);
			if (rc != 0)
				return -1;
		}
		s += len + (s[len] == ',');
	}
	return 0;
}

/* Reads the filters. Returns GO, ANSWERED (400) or FAILED. */
static int filter_parse(pw_req *req, dag_filter *f)
{
	const char *paused = pw_req_query(req, "paused");

	f->paused = -1;
	if (paused && strcmp(paused, "true") == 0) {
		f->paused = 1;
	} else if (paused && strcmp(paused, "false") == 0) {
		f->paused = 0;
	} else if (paused) {
		pw_reply_error(req, 400, "paused must be true or false");
		return ANSWERED;
	}
	return split_commas(pw_req_query(req, "tags"), &f->tags) ? FAILED : GO;
}

/* Whether dag carries one of the filter's tags (or the filter has none). */
static bool tags_match(const dag_filter *f, const pw_dag *dag)
{
	if (f->tags.n == 0)
		return true;
	for (size_t i = 0; i < dag->tags.n; i++)
		if (pw_strv_contains(&f->tags, dag->tags.v[i]))
			return true;
	return false;
}

/*
 * Counts the DAGs that pass the filter into *total and writes the objects
 * of the page pg asks for (from its offset, or after its cursor's DAG id:
 * the DAGs are in id order) to t, comma-separated; sets pg->next when more
 * follow. The states of all DAGs come from one statement (one read
 * transaction). GO or FAILED.
 */
static int dags_page(pw_req *req, const dag_filter *f, api_page *pg,
		     api_text *t, long long *total)
{
	const pw_project *p = pw_req_project(req);
	sqlite3_stmt *q = pw_store_stmt(pw_req_store(req), state_all_sql);
	int rc = GO, shown = 0;
	size_t last = 0;

	if (!q)
		return FAILED;
	int step = sqlite3_step(q);
	for (size_t i = 0; rc == GO && i < p->n_dags; i++) {
		dag_state st;
		if (!tags_match(f, p->dags[i]))
			continue;
		rc = state_next(req, q, &step, p->dags[i], &st);
		if (rc != GO || (f->paused >= 0 && st.paused != (f->paused == 1)))
			continue;
		bool before = pg->skey ? strcmp(p->dags[i]->id, pg->skey) <= 0
				       : *total < pg->offset;
		if (before) {
			/* not on this page */
		} else if (shown < pg->limit) {
			if (shown++ > 0)
				API_TEXT_LIT(t, ",");
			dag_text(req, t, i, &st);
			API_TEXT_LIT(t, "}");
			last = i;
		} else if (!pg->next) {
			rc = api_page_next(pg, true, 0, 0, p->dags[last]->id);
		}
		(*total)++;
	}
	api_stmt_done(q);
	return rc;
}

int dags_list(pw_req *req)
{
	dag_filter f = {0};
	api_text t = {0};
	api_page pg = {0};
	long long total = 0;
	int rc = FAILED;

	if (api_page_parse(req, "dags", true, &pg) != GO)
		return ANSWERED;
	int frc = filter_parse(req, &f);
	if (frc != GO) {
		rc = frc;
		goto out;
	}
	api_text_init(&t);
	API_TEXT_LIT(&t, "{\"data\":[");
	if (dags_page(req, &f, &pg, &t, &total) != GO)
		goto out;
	api_text_page_end(&t, total, &pg);
	rc = api_text_reply(req, 200, &t);
out:
	api_text_free(&t);
	api_page_free(&pg);
	pw_strv_free(&f.tags);
	return rc;
}

/* --- one DAG ---------------------------------------------------------------- */

/* The DAG of the :dag_id parameter, or NULL after answering 404. */
static const pw_dag *dag_or_404(pw_req *req)
{
	const char *id = pw_req_param(req, "dag_id");
	const pw_dag *dag;

	if (!id || !pw_valid_dag_id(id)) {
		pw_reply_error(req, 404, "DAG not found");
		return NULL;
	}
	dag = pw_project_dag(pw_req_project(req), id);
	if (!dag)
		pw_reply_error(req, 404, "DAG '%s' not found", id);
	return dag;
}

/* The index of dag in the project's list. */
static size_t dag_index(const pw_project *p, const pw_dag *dag)
{
	size_t i = 0;

	while (i < p->n_dags && p->dags[i] != dag)
		i++;
	return i;
}

/*
 * Writes dag's detail after its fixed text: params, tasks and warnings
 * ({file, line, message, type}: free inputs nothing defines). The
 * project's JSON is shared between threads, so params is a deep copy
 * (json-c reference counts and serialisation buffers are not thread-safe).
 */
static json_object *error_object(const char *file, int line, const char *type,
				 const char *message);

/* The DAG's warnings as import-error objects; NULL when out of memory. */
static json_object *warnings_array(const pw_dag *dag)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; a && i < dag->warnings.n; i++) {
		const pw_error *e = &dag->warnings.v[i];
		json_object *o = error_object(e->file, e->line, e->type, e->message);
		if (!o || json_object_array_add(a, o) != 0) {
			json_object_put(o);
			json_object_put(a);
			return NULL;
		}
	}
	return a;
}

static void detail_text(api_text *t, const pw_dag *dag, api_page *pg)
{
	json_object *params = NULL, *tasks = tasks_array(dag, pg), *warnings = warnings_array(dag);

	if (json_object_deep_copy(dag->params, &params, NULL) != 0 || !tasks || !warnings) {
		t->failed = true;
	} else {
		API_TEXT_LIT(t, ",\"params\":");
		api_text_json(t, params);
		API_TEXT_LIT(t, ",\"tasks\":");
		api_text_json(t, tasks);
		API_TEXT_LIT(t, ",\"warnings\":");
		api_text_json(t, warnings);
	}
	json_object_put(params);
	json_object_put(tasks);
	json_object_put(warnings);
}

/*
 * Answers 200 with dag's detail, its tasks paged: ?limit= (default and at
 * most API_DETAIL_LIMIT), ?offset= or ?cursor=; meta is the page's, as a
 * list's. GO, ANSWERED or FAILED.
 */
static int reply_dag(pw_req *req, const pw_dag *dag)
{
	dag_state st;
	api_text t;
	api_page pg = {0};
	int rc;

	if (api_detail_page_parse(req, "dag_tasks", &pg) != GO)
		return ANSWERED;
	if (dag_state_get(req, dag, &st) != GO) {
		api_page_free(&pg);
		return FAILED;
	}
	api_text_init(&t);
	API_TEXT_LIT(&t, "{\"data\":");
	dag_text(req, &t, dag_index(pw_req_project(req), dag), &st);
	detail_text(&t, dag, &pg);
	API_TEXT_LIT(&t, "},");
	api_text_meta(&t, (long long)dag->n_tasks, &pg);
	API_TEXT_LIT(&t, "}");
	rc = api_text_reply(req, 200, &t) == 0 ? GO : FAILED;
	api_page_free(&pg);
	return rc;
}

int dags_get(pw_req *req)
{
	const pw_dag *dag = dag_or_404(req);

	return dag ? reply_dag(req, dag) : ANSWERED;
}

/*
 * PATCH {"is_paused": bool}: sets the pause flag (with its dag.updated event,
 * waking the runner) and answers the DAG's detail, as GET does.
 */
int dags_patch(pw_req *req)
{
	static const pw_field fields[] = {
		{"is_paused", PW_F_BOOL, true},
	};
	const pw_dag *dag = dag_or_404(req);
	json_object *body = dag ? pw_req_json(req) : NULL; /* owned by req */
	json_object *paused = NULL;

	if (!body)
		return ANSWERED;
	if (pw_req_check_body(req, body, fields, sizeof fields / sizeof *fields) != 0)
		return ANSWERED;
	json_object_object_get_ex(body, "is_paused", &paused);
	if (pw_store_set_paused(pw_req_store(req), dag->id,
				json_object_get_boolean(paused)) != PW_OK)
		return FAILED;
	return reply_dag(req, dag);
}

/* --- GET /api/v1/import-errors ------------------------------------------- */

/* One import error: {file, line, message, type}; NULL when out of memory. */
static json_object *error_object(const char *file, int line, const char *type,
				 const char *message)
{
	json_object *o = json_object_new_object();

	if (o && (pw_json_put_str(o, "file", file) ||
		  (line > 0 ? pw_json_put_int(o, "line", line) : pw_json_put_null(o, "line")) ||
		  pw_json_put_str(o, "message", message) ||
		  pw_json_put_str(o, "type", type ? type : "ValueError"))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/*
 * Whether the error at position pos goes on the page pg asks for (from
 * its offset, or after its cursor's position); sets pg->next at the first
 * one after the page. *shown counts the page's errors. GO or FAILED.
 */
static int error_on_page(api_page *pg, long long pos, int *shown, bool *on)
{
	*on = false;
	if (pg->after ? pos <= pg->key : pos < pg->offset)
		return GO;
	if (*shown < pg->limit) {
		(*shown)++;
		*on = true;
		return GO;
	}
	return pg->next ? GO : api_page_next(pg, true, 0, pos - 1, NULL);
}

/*
 * The configuration error first (file null), then the DAG files that failed,
 * paged. GO or FAILED.
 */
static int errors_page(const pw_project *p, api_page *pg, json_object *data,
		       long long *total)
{
	long long pos = 0;
	int shown = 0;
	bool on;

	if (p->conf_error.type) {
		if (error_on_page(pg, pos, &shown, &on) != GO ||
		    (on && pw_json_push(data, error_object(NULL, 0, p->conf_error.type,
						   p->conf_error.message)) != 0))
			return FAILED;
		pos++;
	}
	for (size_t i = 0; i < p->import_errors.n; i++, pos++) {
		const pw_error *e = &p->import_errors.v[i];
		if (error_on_page(pg, pos, &shown, &on) != GO ||
		    (on && pw_json_push(data, error_object(e->file, e->line, e->type, e->message)) != 0))
			return FAILED;
	}
	*total = pos;
	return GO;
}

int import_errors_list(pw_req *req)
{
	json_object *data = NULL, *meta = NULL;
	api_page pg = {0};
	long long total = 0;
	int rc = FAILED;

	if (api_page_parse(req, "import_errors", false, &pg) != GO)
		return ANSWERED;
	data = json_object_new_array();
	if (!data || errors_page(pw_req_project(req), &pg, data, &total) != GO)
		goto out;
	meta = api_page_meta(total, &pg);
	if (!meta)
		goto out;
	rc = pw_reply_data(req, 200, data, meta);
	data = meta = NULL;
out:
	json_object_put(data);
	json_object_put(meta);
	api_page_free(&pg);
	return rc;
}
