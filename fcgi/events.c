/*
 * events.c - GET /api/v1/events as a JSON page:
 *   ?after_id=N   events with id > N (integer >= 0, default 0)
 *   ?limit=L      1..1000, default 100 (pw_req_paging's rules; an offset
 *                 is refused: pages follow after_id)
 *   ?dag_id= ?run_id= ?types=run.state,task.state,dag.updated,pool.updated
 * data = [{id, type, data}] in id order, data being the stored event data;
 * meta = {limit, last_id}, last_id the last id of the page, or after_id when
 * the page is empty (so a client passes it back as the next after_id).
 *
 * The live SSE stream (Accept: text/event-stream) is not served yet: such a
 * request gets the JSON page too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

/* A handler helper that has answered the request itself (e.g. 400). */
#define ANSWERED 1

/* The event types, the values ?types= may name. */
static const char *const event_types[] = {
	"run.state", "task.state", "dag.updated", "pool.updated",
};
#define N_TYPES (sizeof event_types / sizeof *event_types)

/*
 * One statement per filter combination, so each uses its index: the id
 * range alone, events_dag(dag_id, id), events_run(run_id, id). Parameters:
 * ?1 after_id, ?2 dag_id, ?3 run_id, ?4 limit, ?5..?8 the wanted types
 * (?5 NULL: any type).
 */
#define EVENTS_SQL(where)                                                   \
	"SELECT id, type, data FROM events WHERE " where " id > ?1"         \
	" AND (?5 IS NULL OR type IN (?5, ?6, ?7, ?8))"                     \
	" ORDER BY id LIMIT ?4"

static const char *const events_sql[2][2] = {
	/* [has dag_id][has run_id] */
	{EVENTS_SQL(""), EVENTS_SQL("run_id = ?3 AND")},
	{EVENTS_SQL("dag_id = ?2 AND"), EVENTS_SQL("run_id = ?3 AND dag_id = ?2 AND")},
};

/* What the query asks for. */
typedef struct events_query {
	long long after_id;
	int limit;
	const char *dag_id;                 /* NULL: any */
	const char *run_id;
	const char *types[N_TYPES];         /* wanted types; all NULL: any */
} events_query;

/* Parses ?after_id=. Returns PW_OK or ANSWERED (400). */
static int parse_after_id(pw_req *req, events_query *eq)
{
	const char *s = pw_req_query(req, "after_id");
	char *end = NULL;

	eq->after_id = 0;
	if (!s)
		return PW_OK;
	errno = 0;
	eq->after_id = strtoll(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end || errno) {
		pw_reply_error(req, 400, "after_id must be an integer >= 0");
		return ANSWERED;
	}
	return PW_OK;
}

/* Index of type in event_types, or -1. */
static int type_index(const char *type, size_t len)
{
	for (size_t i = 0; i < N_TYPES; i++)
		if (strlen(event_types[i]) == len && strncmp(event_types[i], type, len) == 0)
			return (int)i;
	return -1;
}

/* Parses ?types=a,b (empty items skipped). PW_OK or ANSWERED (400). */
static int parse_types(pw_req *req, events_query *eq)
{
	const char *s = pw_req_query(req, "types");
	bool wanted[N_TYPES] = {false};
	size_t n = 0;

	while (s && *s) {
		size_t len = strcspn(s, ",");
		int i = type_index(s, len);
		if (len > 0 && i < 0) {
			pw_reply_error(req, 400, "unknown event type '%.*s' (types: "
				       "run.state, task.state, dag.updated, pool.updated)",
				       (int)(len > 64 ? 64 : len), s);
			return ANSWERED;
		}
		if (len > 0)
			wanted[i] = true;
		s += len + (s[len] == ',');
	}
	for (size_t i = 0; i < N_TYPES; i++)
		if (wanted[i])
			eq->types[n++] = event_types[i];
	return PW_OK;
}

/* Reads the query string into *eq. PW_OK or ANSWERED (400). */
static int parse_query(pw_req *req, events_query *eq)
{
	long long offset = 0;

	if (pw_req_paging(req, &eq->limit, &offset) != 0)
		return ANSWERED;
	if (offset != 0) {
		pw_reply_error(req, 400, "offset is not supported here; page with after_id");
		return ANSWERED;
	}
	eq->dag_id = pw_req_query(req, "dag_id");
	eq->run_id = pw_req_query(req, "run_id");
	if (eq->dag_id && !*eq->dag_id)
		eq->dag_id = NULL;
	if (eq->run_id && !*eq->run_id)
		eq->run_id = NULL;
	if (parse_after_id(req, eq) != PW_OK || parse_types(req, eq) != PW_OK)
		return ANSWERED;
	return PW_OK;
}

/* Binds eq to its statement. PW_OK or PW_ERR. */
static int bind_query(sqlite3_stmt *q, const events_query *eq)
{
	int rc = sqlite3_bind_int64(q, 1, eq->after_id);

	if (rc == SQLITE_OK && eq->dag_id)
		rc = sqlite3_bind_text(q, 2, eq->dag_id, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && eq->run_id)
		rc = sqlite3_bind_text(q, 3, eq->run_id, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(q, 4, eq->limit);
	for (size_t i = 0; rc == SQLITE_OK && i < N_TYPES && eq->types[i]; i++)
		rc = sqlite3_bind_text(q, 5 + (int)i, eq->types[i], -1, SQLITE_STATIC);
	return rc == SQLITE_OK ? PW_OK : PW_ERR;
}

/* Adds v under k; v NULL (out of memory) or a failed add is -1, v freed. */
static int put(json_object *o, const char *k, json_object *v)
{
	if (!v || json_object_object_add(o, k, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

/*
 * The stored data of an event, parsed, into *out. Data that does not parse
 * (it always should) becomes null. Returns 0, or -1 when out of memory
 * (json-c 0.16 has no error code for it: NULL without a parse error).
 */
static int event_data(const char *text, json_object **out)
{
	enum json_tokener_error jerr = json_tokener_success;

	*out = text ? json_tokener_parse_verbose(text, &jerr) : NULL;
	if (text && !*out && jerr == json_tokener_success)
		return -1; /* the tokener could not be allocated */
	if (!*out)
		fprintf(stderr, "pipewright: events: stored data does not parse: %s\n",
			json_tokener_error_desc(jerr));
	return 0;
}

/* The item of the current row: {id, type, data}. NULL when out of memory. */
static json_object *event_item(sqlite3_stmt *q)
{
	const char *type = (const char *)sqlite3_column_text(q, 1);
	json_object *o = json_object_new_object();
	json_object *data = NULL;

	if (!o || put(o, "id", json_object_new_int64(sqlite3_column_int64(q, 0))) ||
	    put(o, "type", json_object_new_string(type ? type : "")) ||
	    event_data((const char *)sqlite3_column_text(q, 2), &data) ||
	    json_object_object_add(o, "data", data) != 0) {
		json_object_put(data);
		json_object_put(o);
		return NULL;
	}
	return o;
}

/*
 * Runs the query, appending items to data and setting *last_id to the
 * last id seen. PW_OK or PW_ERR.
 */
static int events_page(pw_req *req, const events_query *eq, json_object *data,
		       long long *last_id)
{
	pw_store *store = pw_req_store(req);
	const char *sql = events_sql[eq->dag_id != NULL][eq->run_id != NULL];
	sqlite3_stmt *q = store ? pw_store_stmt(store, sql) : NULL;
	int step = SQLITE_ERROR, rc = PW_ERR;

	if (!q)
		return PW_ERR;
	if (bind_query(q, eq) == PW_OK) {
		while ((step = sqlite3_step(q)) == SQLITE_ROW) {
			json_object *item = event_item(q);
			if (!item || json_object_array_add(data, item) != 0) {
				json_object_put(item);
				break;
			}
			*last_id = sqlite3_column_int64(q, 0);
		}
	}
	if (step == SQLITE_DONE)
		rc = PW_OK;
	else if (step != SQLITE_ROW) /* ROW: out of memory above */
		fprintf(stderr, "pipewright: events: %s\n",
			sqlite3_errmsg(pw_store_db(store)));
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc;
}

/* {limit, last_id}, or NULL when out of memory. */
static json_object *page_meta(int limit, long long last_id)
{
	json_object *m = json_object_new_object();

	if (m && (put(m, "limit", json_object_new_int(limit)) ||
		  put(m, "last_id", json_object_new_int64(last_id)))) {
		json_object_put(m);
		return NULL;
	}
	return m;
}

int events_get(pw_req *req)
{
	events_query eq = {0};
	json_object *data = NULL, *meta = NULL;
	long long last_id;
	int rc = PW_ERR;

	if (parse_query(req, &eq) != PW_OK)
		return 0;
	last_id = eq.after_id;
	data = json_object_new_array();
	if (!data || events_page(req, &eq, data, &last_id) != PW_OK)
		goto out;
	meta = page_meta(eq.limit, last_id);
	if (!meta)
		goto out;
	rc = pw_reply_data(req, 200, data, meta);
	data = meta = NULL;
out:
	json_object_put(data);
	json_object_put(meta);
	return rc;
}
