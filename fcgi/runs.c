/*
 * runs.c - the runs of a DAG: list, trigger, one run, cancel, retry.
 *
 * Handlers only write intent: a trigger queues a run
 * (pw_store_insert_run), cancel and retry insert a command row
 * (pw_store_request); the runner does the rest.
 *
 * The list must stay fast with a million runs behind it, so its SQL is one
 * of a fixed set of statements chosen by (order column, direction, state
 * filter, time filter), each of which an index of runs serves in order
 * (see migration 1 in src/store.c); request values are only ever bound.
 */
#include "api.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slice.h"
#include "states.h"

/* --- GET /api/v1/dags/:dag_id/runs ------------------------------------ */

/* The orderings ?order_by= knows, in the order of list_sql's column index. */
static const char *const order_columns[] = {"queued_at", "started_at", "ended_at"};

/*
 * Two plans per query shape, both forced with INDEXED BY (the planner has
 * no statistics to tell them apart):
 * - scan: walk the index of the order column in order, checking the state
 *   from the index, and stop after the page: good when the filters match
 *   many runs;
 * - seek: find the matching runs through the filter's index (state, then
 *   queued_at; or the queued_at range) and sort them: good when they are
 *   few (a rare state such as running, or a short time range), where a
 *   scan would walk most of the DAG's runs to fill a page.
 * The count, which runs first, decides. A scan checks the state from the
 * index, but must read the row for queued_at, so a time range makes it
 * dearer and the seek pays off for more matches. Without a filter there
 * is nothing to seek: the scan is always used (list_sql[1][..][0][0] are
 * never chosen). The index names are migration 1's (src/store.c).
 */
#define SEEK_MAX 10000
#define SEEK_MAX_TIME 100000

/*
 * The page's row ids come from the index alone (a subquery); then each
 * row is read by its id. CROSS JOIN keeps the subquery the outer loop, so
 * the rows come out in its order.
 */
#define L_SEL(ix) "SELECT " API_RUN_COLUMNS " FROM (SELECT id AS pk FROM runs" \
	" INDEXED BY " ix " WHERE dag_id = ?1"
#define L_STATE " AND state IN (SELECT value FROM json_each(?4))"
#define L_TIME " AND queued_at BETWEEN ?2 AND ?3"
#define L_PAGE " LIMIT ?5 OFFSET ?6) CROSS JOIN runs ON runs.id = pk"
/*
 * Keyset paging (?cursor=): the rows after (?7, ?8), the order value and
 * id of the last row of the page before, or after (NULL, ?8). Ascending,
 * NULLs (started_at, ended_at of runs that did not start or end) come
 * first; descending, last: a descending page after a value that runs out
 * of values goes on with the NULLs, after (NULL, LLONG_MAX) (see
 * page_runs), so each statement keeps its index range.
 */
#define D_ASC ""
#define D_DESC " DESC"
#define K_VAL_ASC(c) " AND " c " >= ?7 AND (" c " > ?7 OR id > ?8)"
#define K_VAL_DESC(c) " AND " c " <= ?7 AND (" c " < ?7 OR id < ?8)"
#define K_NULL_ASC(c) " AND (" c " IS NOT NULL OR id > ?8)"
#define K_NULL_DESC(c) " AND " c " IS NULL AND id < ?8"
#define L_ORDER(c, d) " ORDER BY " c D_##d ", id" D_##d
/* [API_AFTER_*] of one statement head */
#define L_KEYS(sel, c, d, page) {					\
	sel L_ORDER(c, d) page,						\
	sel K_VAL_##d(c) L_ORDER(c, d) page,				\
	sel K_NULL_##d(c) L_ORDER(c, d) page,				\
}
/* [state filter][time filter][API_AFTER_*] of one plan and ordering */
#define L_VARIANTS(ix, ix_state, c, d) {				\
	{L_KEYS(L_SEL(ix), c, d, L_PAGE),				\
	 L_KEYS(L_SEL(ix) L_TIME, c, d, L_PAGE)},			\
	{L_KEYS(L_SEL(ix_state) L_STATE, c, d, L_PAGE),			\
	 L_KEYS(L_SEL(ix_state) L_STATE L_TIME, c, d, L_PAGE)},		\
}
#define L_SCAN(col) {							\
	L_VARIANTS("runs_dag_" #col, "runs_dag_" #col, #col "_at", ASC), \
	L_VARIANTS("runs_dag_" #col, "runs_dag_" #col, #col "_at", DESC), \
}
#define L_SEEK(col) {							\
	L_VARIANTS("runs_dag_queued", "runs_dag_state_queued", #col "_at", ASC), \
	L_VARIANTS("runs_dag_queued", "runs_dag_state_queued", #col "_at", DESC), \
}

/* [seek][column][descending][state filter][time filter][API_AFTER_*] */
static const char *const list_sql[2][3][2][2][2][3] = {
	{L_SCAN(queued), L_SCAN(started), L_SCAN(ended)},
	{L_SEEK(queued), L_SEEK(started), L_SEEK(ended)},
};

/*
 * [time filter][state filter]. Without a time filter the total comes from
 * run_counts (migration 4: kept by triggers in the same transactions as
 * the runs), so a page costs the same with a million runs as with ten.
 */
static const char *const count_sql[2][2] = {
	{"SELECT coalesce(sum(n), 0) FROM run_counts WHERE dag_id = ?1",
	 "SELECT coalesce(sum(n), 0) FROM run_counts WHERE dag_id = ?1" L_STATE},
	{"SELECT count(*) FROM runs WHERE dag_id = ?1" L_TIME,
	 "SELECT count(*) FROM runs WHERE dag_id = ?1" L_STATE L_TIME},
};

/* A parsed list request. */
typedef struct list_query {
	const char *dag_id;
	int column;           /* index into order_columns */
	int desc;
	json_object *states;  /* JSON list of states, or NULL for all */
	int has_time;
	long long since, until;
	api_page pg;
} list_query;

/* The cursor tags: [every DAG][column][descending]. */
static const char *const list_tags[2][3][2] = {
	{{"runs:queued_at", "runs:-queued_at"}, {"runs:started_at", "runs:-started_at"},
	 {"runs:ended_at", "runs:-ended_at"}},
	{{"~runs:queued_at", "~runs:-queued_at"}, {"~runs:started_at", "~runs:-started_at"},
	 {"~runs:ended_at", "~runs:-ended_at"}},
};

/* The columns of the orderings in API_RUN_COLUMNS, and that of id. */
static const int order_cols[] = {8, 9, 10};
#define ID_COL 0

/* ?state=a,b into q->states. GO, ANSWERED (400) or FAILED. */
static int parse_states(pw_req *req, const char *arg, list_query *q)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	int rc = GO;

	q->states = json_object_new_array();
	if (!copy || !q->states) {
		free(copy);
		return FAILED;
	}
	if (!*arg) {
		free(copy);
		pw_reply_error(req, 400, "state: expected a comma-separated list of run states");
		return ANSWERED;
	}
	for (tok = strtok_r(copy, ",", &save); tok && rc == GO;
	     tok = strtok_r(NULL, ",", &save)) {
		json_object *s;
		if (run_state_parse(tok) < 0) {
			pw_reply_error(req, 400, "state: '%s' is not a run state "
				       "(queued, running, success, failed, cancelled)", tok);
			rc = ANSWERED;
		} else if (!(s = json_object_new_string(tok)) ||
			   json_object_array_add(q->states, s) != 0) {
			json_object_put(s);
			rc = FAILED;
		}
	}
	/* ",," or a trailing comma leaves an empty item: refuse it too */
	if (rc == GO && (strstr(arg, ",,") || arg[0] == ',' ||
			 arg[strlen(arg) - 1] == ',')) {
		pw_reply_error(req, 400, "state: empty item in '%s'", arg);
		rc = ANSWERED;
	}
	free(copy);
	return rc;
}

/* ?order_by=[-]column into q. GO or ANSWERED (400). */
static int parse_order(pw_req *req, const char *arg, list_query *q)
{
	const char *name = arg;

	q->column = 0;
	q->desc = 1;
	if (!arg)
		return GO;
	q->desc = name[0] == '-';
	if (q->desc)
		name++;
	for (size_t i = 0; i < sizeof order_columns / sizeof *order_columns; i++) {
		if (strcmp(name, order_columns[i]) == 0) {
			q->column = (int)i;
			return GO;
		}
	}
	pw_reply_error(req, 400, "order_by: expected queued_at, started_at or "
		       "ended_at, optionally with a '-' prefix");
	return ANSWERED;
}

/* ?since= / ?until= into *ms. GO or ANSWERED (400). */
static int parse_time(pw_req *req, const char *name, long long *ms, int *given)
{
	const char *arg = pw_req_query(req, name);

	if (!arg)
		return GO;
	if (pw_parse_iso(arg, ms) != 0) {
		pw_reply_error(req, 400, "%s: not an ISO-8601 time", name);
		return ANSWERED;
	}
	*given = 1;
	return GO;
}

/*
 * Reads every query parameter of the list (of every DAG when all). GO,
 * ANSWERED or FAILED.
 */
static int parse_list_query(pw_req *req, list_query *q, int all)
{
	const char *states = pw_req_query(req, "state");
	int rc;

	q->since = LLONG_MIN;
	q->until = LLONG_MAX;
	if (states && (rc = parse_states(req, states, q)) != GO)
		return rc;
	if ((rc = parse_order(req, pw_req_query(req, "order_by"), q)) != GO ||
	    (rc = parse_time(req, "since", &q->since, &q->has_time)) != GO ||
	    (rc = parse_time(req, "until", &q->until, &q->has_time)) != GO)
		return rc;
	return api_page_parse(req, list_tags[all][q->column][q->desc], false, &q->pg);
}

/* Binds what the chosen statement uses; the JSON text lives in q->states. */
static void bind_query(sqlite3_stmt *st, const list_query *q, int time, int page)
{
	sqlite3_bind_text(st, 1, q->dag_id, -1, SQLITE_STATIC);
	if (time) {
		sqlite3_bind_int64(st, 2, q->since);
		sqlite3_bind_int64(st, 3, q->until);
	}
	if (q->states)
		sqlite3_bind_text(st, 4, json_object_to_json_string(q->states),
				  -1, SQLITE_STATIC);
	if (page) {
		sqlite3_bind_int(st, 5, q->pg.limit + 1);
		sqlite3_bind_int64(st, 6, q->pg.offset);
		if (q->pg.after == API_AFTER_VALUE)
			sqlite3_bind_int64(st, 7, q->pg.val);
		if (q->pg.after != API_AFTER_NONE)
			sqlite3_bind_int64(st, 8, q->pg.key);
	}
}

/* A page being written: its rows so far and the key of the last one. */
typedef struct page_state {
	int n;
	bool val_null;
	long long val, id;
} page_state;

/*
 * Steps st, which fetches (the rest of) a page of q and one row more,
 * writing the run objects of the page into t, comma-separated; the extra
 * row sets q->pg.next after the page's last one. GO or FAILED.
 */
static int emit_runs(pw_req *req, sqlite3_stmt *st, list_query *q, page_state *ps,
		     api_text *t)
{
	int col = order_cols[q->column], rc = GO, step = SQLITE_DONE;

	while (rc == GO && (step = sqlite3_step(st)) == SQLITE_ROW) {
		if (ps->n++ == q->pg.limit) {
			rc = api_page_next(&q->pg, ps->val_null, ps->val, ps->id, NULL);
			break;
		}
		if (ps->n > 1)
			API_TEXT_LIT(t, ",");
		api_run_text(t, st);
		ps->val_null = sqlite3_column_type(st, col) == SQLITE_NULL;
		ps->val = sqlite3_column_int64(st, col);
		ps->id = sqlite3_column_int64(st, ID_COL);
	}
	if (rc == GO && step != SQLITE_ROW && step != SQLITE_DONE)
		rc = api_db_error(req);
	api_stmt_done(st);
	return rc;
}

/*
 * Writes the page of q with statements sql[API_AFTER_*] (time: whether
 * they filter on time). A descending page after a value of a column that
 * may be NULL goes on with the NULLs when the values run out. GO or FAILED.
 */
static int page_runs(pw_req *req, list_query *q, const char *const *sql, int time,
		     api_text *t)
{
	pw_store *store = pw_req_store(req);
	sqlite3_stmt *st = pw_store_stmt(store, sql[q->pg.after]);
	page_state ps = {0};
	int rc;

	if (!st)
		return FAILED;
	bind_query(st, q, time, 1);
	rc = emit_runs(req, st, q, &ps, t);
	if (rc != GO || !q->desc || q->column == 0 || q->pg.after != API_AFTER_VALUE ||
	    ps.n > q->pg.limit)
		return rc;
	if (!(st = pw_store_stmt(store, sql[API_AFTER_NULL])))
		return FAILED;
	q->pg.after = API_AFTER_NULL;
	q->pg.key = LLONG_MAX;
	bind_query(st, q, time, 1);
	sqlite3_bind_int(st, 5, q->pg.limit + 1 - ps.n);
	return emit_runs(req, st, q, &ps, t);
}

/* How many runs match q (paging aside). GO or FAILED. */
static int count_runs(pw_req *req, const list_query *q, long long *total)
{
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(req),
					 count_sql[q->has_time != 0][q->states != NULL]);
	int rc = FAILED;

	if (!st)
		return FAILED;
	if (q->states && !json_object_to_json_string(q->states))
		goto out;
	bind_query(st, q, q->has_time, 0);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*total = sqlite3_column_int64(st, 0);
		rc = GO;
	} else {
		api_db_error(req);
	}
out:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/*
 * How many runs of a DAG match q into *total; their run objects of the
 * page q asks for into t, comma-separated, setting q->pg.next. GO or FAILED.
 */
static int list_runs(pw_req *req, list_query *q, long long *total, api_text *t)
{
	if (count_runs(req, q, total) != GO)
		return FAILED;
	int seek = q->has_time ? *total <= SEEK_MAX_TIME
			       : q->states && *total <= SEEK_MAX;

	return page_runs(req, q, list_sql[seek][q->column][q->desc][q->states != NULL]
				     [q->has_time], q->has_time, t);
}

/*
 * Answers 200 with the page of runs that list writes for q, the total and
 * the page from one read transaction. GO or FAILED.
 */
static int reply_runs(pw_req *req, list_query *q,
		      int (*list)(pw_req *req, list_query *q, long long *total, api_text *t))
{
	api_text t;
	long long total = 0;
	int rc;

	api_text_init(&t);
	API_TEXT_LIT(&t, "{\"data\":[");
	if (pw_store_begin_read(pw_req_store(req)) != PW_OK)
		rc = api_db_error(req);
	else
		rc = api_read_end(req, list(req, q, &total, &t));
	api_text_page_end(&t, total, &q->pg);
	if (rc == GO)
		rc = api_text_reply(req, 200, &t) == 0 ? GO : FAILED;
	api_text_free(&t);
	return rc;
}

int runs_list(pw_req *req)
{
	list_query q = {.dag_id = pw_req_param(req, "dag_id")};
	int rc;

	if (!api_dag_exists_or_404(req, q.dag_id))
		return ANSWERED;
	rc = parse_list_query(req, &q, 0);
	if (rc == GO)
		rc = reply_runs(req, &q, list_runs);
	api_page_free(&q.pg);
	json_object_put(q.states);
	return rc;
}

/* --- GET /api/v1/dags/~/runs: the runs of every DAG ------------------------ */

/*
 * ?1 a JSON list of DAG ids or NULL (all); the other parameters as in
 * list_sql. The run time indexes of migration 6 serve the order.
 */
#define A_WHERE " WHERE (?1 IS NULL OR dag_id IN (SELECT value FROM json_each(?1)))" \
	" AND (?4 IS NULL OR state IN (SELECT value FROM json_each(?4)))"
#define A_SEL "SELECT " API_RUN_COLUMNS " FROM runs" A_WHERE \
	" AND queued_at BETWEEN ?2 AND ?3"
#define A_PAGE " LIMIT ?5 OFFSET ?6"
#define A_SQL(col, d) L_KEYS(A_SEL, #col "_at", d, A_PAGE)

/* [column][descending][API_AFTER_*] */
static const char *const all_sql[3][2][3] = {
	{A_SQL(queued, ASC), A_SQL(queued, DESC)},
	{A_SQL(started, ASC), A_SQL(started, DESC)},
	{A_SQL(ended, ASC), A_SQL(ended, DESC)},
};

/* [time filter]: without one, run_counts answers (see count_sql). */
static const char *const all_count_sql[2] = {
	"SELECT coalesce(sum(n), 0) FROM run_counts" A_WHERE,
	"SELECT count(*) FROM runs" A_WHERE " AND queued_at BETWEEN ?2 AND ?3",
};

/* ?dag_id=a,b as a JSON list into *out (NULL when absent). GO, ANSWERED or FAILED. */
static int parse_dag_ids(pw_req *req, json_object **out)
{
	const char *arg = pw_req_query(req, "dag_id");
	char *copy, *save = NULL, *tok;
	int rc = GO;

	*out = NULL;
	if (!arg)
		return GO;
	if (!*arg || arg[0] == ',' || arg[strlen(arg) - 1] == ',' || strstr(arg, ",,")) {
		pw_reply_error(req, 400, "dag_id: expected a comma-separated list of DAG ids");
		return ANSWERED;
	}
	if (!(copy = strdup(arg)) || !(*out = json_object_new_array())) {
		free(copy);
		return FAILED;
	}
	for (tok = strtok_r(copy, ",", &save); tok && rc == GO; tok = strtok_r(NULL, ",", &save)) {
		if (!api_valid_pipeline_id(tok)) {
			pw_reply_error(req, 400, "dag_id: '%s' cannot name a DAG", tok);
			rc = ANSWERED;
		} else if (json_object_array_add(*out, json_object_new_string(tok)) != 0) {
			rc = FAILED;
		}
	}
	free(copy);
	return rc;
}

/* The count and the page of the runs of every DAG into t. GO or FAILED. */
static int list_all(pw_req *req, list_query *q, long long *total, api_text *t)
{
	pw_store *store = pw_req_store(req);
	sqlite3_stmt *st = pw_store_stmt(store, all_count_sql[q->has_time != 0]);
	int rc = GO;

	if (!st)
		return FAILED;
	bind_query(st, q, q->has_time, 0);
	if (sqlite3_step(st) == SQLITE_ROW)
		*total = sqlite3_column_int64(st, 0);
	else
		rc = api_db_error(req);
	api_stmt_done(st);
	return rc == GO ? page_runs(req, q, all_sql[q->column][q->desc], 1, t) : FAILED;
}

int runs_list_all(pw_req *req)
{
	list_query q = {0};
	json_object *dags = NULL;
	int rc = parse_dag_ids(req, &dags);

	if (rc == GO)
		rc = parse_list_query(req, &q, 1);
	if (rc == GO && dags && !(q.dag_id = json_object_to_json_string(dags)))
		rc = FAILED;
	if (rc == GO)
		rc = reply_runs(req, &q, list_all);
	api_page_free(&q.pg);
	json_object_put(q.states);
	json_object_put(dags);
	return rc;
}

/* --- POST /api/v1/dags/:dag_id/runs --------------------------------------- */

static const pw_field trigger_fields[] = {
	{"run_id", PW_F_ID, false},
	{"conf", PW_F_OBJECT, false},
	{"tags", PW_F_STRINGS, false},
	{"task_ids", PW_F_STRINGS, false},
	{"from_tasks", PW_F_STRINGS, false},
	{"to_tasks", PW_F_STRINGS, false},
	{"from_inputs", PW_F_STRINGS, false},
	{"to_outputs", PW_F_STRINGS, false},
	{"only_missing_outputs", PW_F_BOOL, false},
};

/* A slicing field of the body, its name in the run's options (Kedro's) and
 * where pw_slice wants it. */
static const struct slice_field {
	const char *body;
	const char *option;
	size_t offset;
} slice_fields[] = {
	{"tags", "tags", offsetof(pw_slice_req, tags)},
	{"task_ids", "node_names", offsetof(pw_slice_req, node_names)},
	{"from_tasks", "from_nodes", offsetof(pw_slice_req, from_nodes)},
	{"to_tasks", "to_nodes", offsetof(pw_slice_req, to_nodes)},
	{"from_inputs", "from_inputs", offsetof(pw_slice_req, from_inputs)},
	{"to_outputs", "to_outputs", offsetof(pw_slice_req, to_outputs)},
};

/*
 * Copies one non-empty list of the body into the slice request and the
 * options (the list is shared with the body). Returns 0 or -1 (OOM).
 */
static int take_filter(json_object *body, const struct slice_field *f,
		       pw_slice_req *sreq, json_object *options)
{
	json_object *list = NULL;
	pw_strv *sv = (pw_strv *)((char *)sreq + f->offset);
	size_t n;

	if (!json_object_object_get_ex(body, f->body, &list) ||
	    !json_object_is_type(list, json_type_array))
		return 0;
	n = json_object_array_length(list);
	if (n == 0)
		return 0;  /* Kedro: an empty filter is no filter */
	for (size_t i = 0; i < n; i++)
		if (pw_strv_push(sv, json_object_get_string(
				 json_object_array_get_idx(list, i))) != 0)
			return -1;
	if (json_object_object_add(options, f->option, json_object_get(list)) != 0) {
		json_object_put(list);
		return -1;
	}
	return 0;
}

/* The run's options from the body: Kedro's filter names. Fills sreq too. */
static json_object *trigger_options(json_object *body, pw_slice_req *sreq)
{
	json_object *options = json_object_new_object(), *omo = NULL;

	if (!options)
		return NULL;
	for (size_t i = 0; i < sizeof slice_fields / sizeof *slice_fields; i++) {
		if (take_filter(body, &slice_fields[i], sreq, options) != 0)
			goto fail;
	}
	if (json_object_object_get_ex(body, "only_missing_outputs", &omo) && omo &&
	    json_object_object_add(options, "only_missing_outputs",
				   json_object_get(omo)) != 0) {
		json_object_put(omo);
		goto fail;
	}
	return options;
fail:
	json_object_put(options);
	return NULL;
}

/*
 * Applies the filters to the DAG now, so that a slice Kedro would refuse
 * is a 400 with Kedro's message instead of a failed run. GO, ANSWERED or
 * FAILED.
 */
static int check_slice(pw_req *req, const pw_dag *dag, const pw_slice_req *sreq)
{
	bool *selected = calloc(dag->n_tasks + 1, sizeof *selected);
	pw_kerror err = {0};
	int rc = GO;

	if (!selected)
		return FAILED;
	if (pw_slice(dag, sreq, selected, &err) != 0) {
		if (err.type && strcmp(err.type, "MemoryError") == 0) {
			rc = FAILED;
		} else {
			pw_reply_error(req, 400, "%s", err.message ? err.message
				       : "the filters select no tasks");
			rc = ANSWERED;
		}
	}
	pw_kerror_clear(&err);
	free(selected);
	return rc;
}

/* A queued run's write (pw_store_write): the run, what it gives back. */
typedef struct run_write {
	const pw_run_new *run;
	char *run_id;          /* malloc'd */
	json_object **answer;  /* the run object, or NULL: not wanted */
} run_write;

/*
 * Inserts the run and reads the answer in the inserting transaction:
 * after the commit the runner may already have claimed the run, and the
 * answer must show the run as created (queued). PW_OK, PW_CONFLICT or
 * PW_ERR.
 */
static int write_run(pw_store *w, void *arg)
{
	run_write *rw = arg;
	int rc = pw_store_insert_run(w, rw->run, &rw->run_id);
	if (rc == PW_OK && rw->answer)
		rc = api_run_object_in(w, rw->run->dag_id, rw->run_id, rw->answer, NULL);
	return rc;
}

int api_queue_run(pw_req *req, const pw_run_new *run, char **run_id, json_object **answer)
{
	run_write rw = {.run = run, .answer = answer};

	if (answer)
		*answer = NULL;
	int rc = pw_store_write(pw_req_store(req), write_run, &rw);
	if (rc != PW_OK && answer) {
		json_object_put(*answer);
		*answer = NULL;
	}
	if (rc == PW_OK && run_id)
		*run_id = rw.run_id;
	else
		free(rw.run_id);
	return rc;
}

/* Queues the run and answers 201 with it (409 for a taken run_id). */
static int queue_run(pw_req *req, const char *dag_id, json_object *body,
		     json_object *options)
{
	json_object *conf = NULL, *jid = NULL;

	json_object_object_get_ex(body, "conf", &conf);
	json_object_object_get_ex(body, "run_id", &jid);
	pw_run_new nr = {
		.dag_id = dag_id,
		.run_id = jid ? json_object_get_string(jid) : NULL,
		.run_type = "manual",
		.conf = conf,
		.options = options,
		.triggered_by = pw_req_user(req),
	};
	json_object *answer = NULL;
	int rc = api_queue_run(req, &nr, NULL, &answer);
	if (rc != PW_OK) {
		if (rc != PW_CONFLICT)
			return FAILED;
		pw_reply_error(req, 409, "DAG '%s' already has a run '%s'", dag_id, nr.run_id);
		return ANSWERED;
	}
	return pw_reply_data(req, 201, answer, NULL) == 0 ? ANSWERED : FAILED;
}

int runs_trigger(pw_req *req)
{
	const char *dag_id = pw_req_param(req, "dag_id");
	const pw_project *p = pw_req_project(req);
	const pw_dag *dag = dag_id && p ? pw_project_dag(p, dag_id) : NULL;
	pw_slice_req sreq = {0};
	json_object *body, *options = NULL;  /* the request owns body */
	json_object *empty = NULL;           /* ours: the body of no body */
	size_t len = 0;
	int rc;

	if (!dag) {
		if (dag_id && pw_valid_dag_id(dag_id))
			return pw_reply_error(req, 404, "DAG '%s' not found", dag_id);
		return pw_reply_error(req, 404, "DAG not found");
	}
	/* Every field is optional: no body at all is {}. */
	pw_req_body(req, &len);
	body = len == 0 ? (empty = json_object_new_object()) : pw_req_json(req);
	if (!body)
		return len == 0 ? -1 : 0;
	rc = pw_req_check_body(req, body, trigger_fields,
			       sizeof trigger_fields / sizeof *trigger_fields) != 0 ? ANSWERED : GO;
	if (rc == GO) {
		options = trigger_options(body, &sreq);
		rc = options ? check_slice(req, dag, &sreq) : FAILED;
	}
	if (rc == GO)
		rc = queue_run(req, dag_id, body, options);
	pw_slice_req_free(&sreq);
	json_object_put(options);
	json_object_put(empty);
	return rc;
}

/* --- one run: get, cancel, retry ------------------------------------------ */

/*
 * The run of the path (its dag_id and run_id) as its object (and row id,
 * when pk is not NULL; the caller puts the object), or an answered 404.
 * GO, ANSWERED or FAILED.
 */
int api_find_run(pw_req *req, json_object **run, long long *pk)
{
	const char *dag_id = pw_req_param(req, "dag_id");
	const char *run_id = pw_req_param(req, "run_id");
	int rc;

	*run = NULL;
	if (!api_dag_exists_or_404(req, dag_id))
		return ANSWERED;
	if (!run_id || !pw_valid_run_id(run_id)) {
		pw_reply_error(req, 404, "run not found");
		return ANSWERED;
	}
	rc = api_run_object(req, dag_id, run_id, run, pk);
	if (rc == PW_NOTFOUND) {
		pw_reply_error(req, 404, "DAG '%s' has no run '%s'", dag_id, run_id);
		return ANSWERED;
	}
	return rc == PW_OK ? GO : FAILED;
}

/* The run object's state ("" if it has none). */
static const char *state_of(json_object *run)
{
	json_object *s = NULL;

	json_object_object_get_ex(run, "state", &s);
	return s ? json_object_get_string(s) : "";
}

/*
 * The run with its task instances paged as GET .../tasks pages them (the
 * same cursors), but ?limit= defaults to API_DETAIL_LIMIT; meta is the
 * page's. The run, the count and the page come from one snapshot.
 */
int runs_get(pw_req *req)
{
	json_object *run = NULL, *tis = NULL, *meta = NULL;
	api_page pg = {0};
	long long pk = 0, total = 0;
	int rc = api_detail_page_parse(req, "tasks", &pg);

	if (rc == GO && pw_store_begin_read(pw_req_store(req)) != PW_OK)
		rc = api_db_error(req);
	else if (rc == GO) {
		rc = api_find_run(req, &run, &pk);
		if (rc == GO && (api_task_instance_count(req, pk, &total) != PW_OK ||
				 api_task_instances(req, pk, NULL, &pg, &tis) != GO ||
				 !(meta = api_page_meta(total, &pg))))
			rc = FAILED;
		rc = api_read_end(req, rc);
	}
	if (rc == GO) {
		if (json_object_object_add(run, "task_instances", tis) != 0)
			rc = FAILED;
		else
			tis = NULL;
	}
	if (rc == GO) {
		rc = pw_reply_data(req, 200, run, meta) == 0 ? GO : FAILED;
		run = meta = NULL;
	}
	json_object_put(tis);
	json_object_put(run);
	json_object_put(meta);
	api_page_free(&pg);
	return rc;
}

/* Which runs cancel and retry take. */
static bool cancellable(run_state s)
{
	return !run_state_is_final(s);
}

static bool retryable(run_state s)
{
	return s == RUN_FAILED || s == RUN_CANCELLED;
}

/*
 * The body of a cancel or a retry, which define no fields: none, an empty
 * one (whatever its Content-Type: Airflow's clients send none) or {}.
 * Anything else is answered as any other body would be: 415 for another
 * content type, 400 for malformed JSON or an unknown field. GO or
 * ANSWERED.
 */
static int check_no_fields(pw_req *req)
{
	size_t len = 0;
	json_object *body;   /* owned by req */

	pw_req_body(req, &len);
	if (len == 0)
		return GO;
	body = pw_req_json(req);
	if (!body || pw_req_check_body(req, body, NULL, 0) != 0)
		return ANSWERED;
	return GO;
}

/*
 * Asks the runner to act on the run of the path (kind "cancel" or "retry")
 * when takes(its state), else 409; answers 202 with
 * the run. A body it does not take is refused before anything changes.
 */
static int request_run(pw_req *req, const char *kind, bool (*takes)(run_state s))
{
	json_object *run = NULL;
	const char *dag_id = pw_req_param(req, "dag_id");
	const char *run_id = pw_req_param(req, "run_id");
	int rc = api_find_run(req, &run, NULL);

	if (rc == GO)
		rc = check_no_fields(req);
	int state = rc == GO ? run_state_parse(state_of(run)) : -1;
	if (rc == GO && (state < 0 || !takes((run_state)state))) {
		pw_reply_error(req, 409, "cannot %s run '%s': it is %s", kind,
			       run_id, state_of(run));
		rc = ANSWERED;
	}
	if (rc == GO) {
		int r = pw_store_request(pw_req_store(req), dag_id, run_id, kind);
		if (r == PW_NOTFOUND) {
			pw_reply_error(req, 404, "DAG '%s' has no run '%s'", dag_id, run_id);
			rc = ANSWERED;
		} else if (r != PW_OK) {
			rc = FAILED;
		}
	}
	if (rc == GO) {
		rc = pw_reply_data(req, 202, run, NULL) == 0 ? GO : FAILED;
		run = NULL;
	}
	json_object_put(run);
	return rc;
}

int runs_cancel(pw_req *req)
{
	const char *purge = pw_req_query(req, "purge");

	if (purge && strcmp(purge, "true") == 0)
		return runs_purge(req);
	if (purge && strcmp(purge, "false") != 0)
		return pw_reply_error(req, 400, "purge: expected true or false");
	/* any state but a finished one */
	return request_run(req, "cancel", cancellable);
}

int runs_retry(pw_req *req)
{
	return request_run(req, "retry", retryable);
}
