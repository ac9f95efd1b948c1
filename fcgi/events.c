/*
 * events.c - GET /api/v1/events: a JSON page, or with
 * `Accept: text/event-stream` the live stream (SSE).
 *
 * The JSON page:
 *   ?after_id=N   events with id > N (integer >= 0, default 0)
 *   ?last_event_id=N  the same when after_id is absent (as on the stream)
 *   ?limit=L      1..1000, default 100 (pw_req_paging's rules; an offset
 *                 is refused: pages follow after_id)
 *   ?cursor=C     the meta.next_cursor of the page before (cursor.c): the
 *                 same as its last_id as after_id; not with after_id or
 *                 last_event_id
 *   ?dag_id= ?run_id= ?types=run.state,task.state,dag.updated,pool.updated
 * data = [{id, type, data}] in id order, data being the stored event data;
 * meta = {limit, last_id, missed}, last_id the last id of the page, or
 * after_id when the page is empty (so a client passes it back as the next
 * after_id); next_cursor the same point as a cursor while more events
 * follow the page, null when it holds the newest; missed = true (with first_available_id) when events after
 * after_id have been pruned (pw_store_prune_events) and the page cannot
 * hold them.
 *
 * The stream: the same filters; it resumes after the `Last-Event-ID`
 * header, else after `?last_event_id=` (a browser's EventSource cannot set
 * headers on its first connection); without either it starts with new
 * events only (after the largest id at connect time). Headers go out at
 * once (Content-Type: text/event-stream, Cache-Control: no-cache,
 * X-Accel-Buffering: no), then one message per event, in id order:
 *   id: <id>\nevent: <type>\ndata: <one-line JSON data>\n\n
 * A resume point older than the oldest kept event first gets
 *   id: <first_available_id - 1>\nevent: events.missed\n
 *   data: {"after_id": N, "first_available_id": M}\n\n
 * so pruned events are never skipped silently.
 * A stream woken by the process's database watcher takes its new events
 * from the watcher's tail of the table (read once per commit for every
 * stream; see "the process's tail" below). Otherwise (its first read, a
 * cursor older than the tail, no watcher) it reads the table on the
 * thread's own connection, gated on PRAGMA data_version (rows are read
 * only when another connection committed), in batches of `id > cursor`
 * inside one read transaction each. Either way no id range is ever
 * skipped or sent twice. Between changes the stream sleeps
 * in poll() until the process's database watcher (dbwatch.c: inotify,
 * with a PIPEWRIGHT_SSE_FALLBACK_MS check for writers it cannot see) says
 * a commit happened, its FastCGI connection ends, or the keep-alive is
 * due; without a watcher it checks every STREAM_POLL_MS. A comment
 * `: keepalive` goes out after PIPEWRIGHT_SSE_KEEPALIVE_SECONDS (default
 * 15) of silence, and a shorter one PROBE_MS later (PROBE: so that a web
 * server finds a client that left at the first keepalive after it left,
 * not the second). A gone client is noticed as soon as the web server
 * gives up on the request (pw_stream_gone: it closed the FastCGI
 * connection or aborted), which it does when a write to the client fails
 * (docs/hosting.md); in CGI mode when a write of ours fails.
 * The handler then returns, freeing its slot. A stream ends itself after
 * PIPEWRIGHT_SSE_MAX_SECONDS (default 55, below the front ends' timeouts)
 * with `retry: 1000`, and the client resumes.
 *
 * Stream limit: a stream keeps its accepting thread busy for its whole
 * life, so it takes one of the server's long-request slots (pw_req_hold:
 * every thread but one, shared with waiting POST /run calls; 15 with the
 * default 16 threads), and PIPEWRIGHT_MAX_STREAMS, when set, caps the
 * streams of a process lower (0 turns them off). A stream beyond either
 * is answered 503 unavailable (envelope, Retry-After) at once.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api.h"

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

/*
 * Parses s (NULL: absent) as an id >= 0 into *out (0 when absent). Returns
 * GO or ANSWERED (400 naming what).
 */
static int parse_id(pw_req *req, const char *s, const char *what, long long *out)
{
	char *end = NULL;

	*out = 0;
	if (!s)
		return GO;
	errno = 0;
	*out = strtoll(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end || errno) {
		pw_reply_error(req, 400, "%s must be an integer >= 0", what);
		return ANSWERED;
	}
	return GO;
}

/*
 * Parses ?after_id=; without it, ?last_event_id= (the stream's resume
 * parameter) means the same on a page, and is checked the same way (a
 * value that is not an integer >= 0 is a 400 here as on the stream).
 * Returns GO or ANSWERED (400).
 */
static int parse_after_id(pw_req *req, events_query *eq)
{
	const char *after = pw_req_query(req, "after_id");
	const char *last = pw_req_query(req, "last_event_id");
	long long ignored;

	if (after)
		return last && parse_id(req, last, "last_event_id", &ignored) != GO
			       ? ANSWERED
			       : parse_id(req, after, "after_id", &eq->after_id);
	return parse_id(req, last, "last_event_id", &eq->after_id);
}

/* Index of type in event_types, or -1. */
static int type_index(const char *type, size_t len)
{
	for (size_t i = 0; i < N_TYPES; i++)
		if (strlen(event_types[i]) == len && strncmp(event_types[i], type, len) == 0)
			return (int)i;
	return -1;
}

/* Parses ?types=a,b (empty items skipped). GO or ANSWERED (400). */
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
	return GO;
}

/* The filters ?dag_id= ?run_id= ?types= into *eq. GO or ANSWERED. */
static int parse_filters(pw_req *req, events_query *eq)
{
	eq->dag_id = pw_req_query(req, "dag_id");
	eq->run_id = pw_req_query(req, "run_id");
	if (eq->dag_id && !*eq->dag_id)
		eq->dag_id = NULL;
	if (eq->run_id && !*eq->run_id)
		eq->run_id = NULL;
	if (eq->dag_id && !api_valid_pipeline_id(eq->dag_id)) {
		pw_reply_error(req, 400, "dag_id: not a DAG id");
		return ANSWERED;
	}
	if (eq->run_id && !pw_valid_run_id(eq->run_id)) {
		pw_reply_error(req, 400, "run_id: not a run id");
		return ANSWERED;
	}
	return parse_types(req, eq);
}

/* Reads the query string of a page into *eq and pg. GO or ANSWERED (400). */
static int parse_query(pw_req *req, events_query *eq, api_page *pg)
{
	if (api_page_parse(req, "events", false, pg) != GO)
		return ANSWERED;
	eq->limit = pg->limit;
	if (pg->offset != 0) {
		pw_reply_error(req, 400, "offset is not supported here; page with after_id");
		return ANSWERED;
	}
	if (parse_filters(req, eq) != GO || parse_after_id(req, eq) != GO)
		return ANSWERED;
	if (pg->after != API_AFTER_NONE) {
		if (pw_req_query(req, "after_id") || pw_req_query(req, "last_event_id")) {
			pw_reply_error(req, 400, "give either cursor or after_id, not both");
			return ANSWERED;
		}
		eq->after_id = pg->key;
	}
	return GO;
}

/* Binds eq to its statement. GO or FAILED. */
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
	return rc == SQLITE_OK ? GO : FAILED;
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

	if (!o || pw_json_put(o, "id", json_object_new_int64(sqlite3_column_int64(q, 0))) ||
	    pw_json_put(o, "type", json_object_new_string(type ? type : "")) ||
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
 * last id seen. GO or FAILED.
 */
static int events_page(pw_req *req, const events_query *eq, json_object *data,
		       long long *last_id)
{
	pw_store *store = pw_req_store(req);
	const char *sql = events_sql[eq->dag_id != NULL][eq->run_id != NULL];
	sqlite3_stmt *q = store ? pw_store_stmt(store, sql) : NULL;
	int step = SQLITE_ERROR, rc = FAILED;

	if (!q)
		return FAILED;
	if (bind_query(q, eq) == GO) {
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
		rc = GO;
	else if (step != SQLITE_ROW) /* ROW: out of memory above */
		fprintf(stderr, "pipewright: events: %s\n",
			sqlite3_errmsg(pw_store_db(store)));
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc;
}

/*
 * The integer of a one-row, one-column statement (no parameters) into
 * *out. GO or FAILED (logged).
 */
static int single_int(pw_store *store, const char *sql, long long *out)
{
	sqlite3_stmt *q = pw_store_stmt(store, sql);
	int step;

	if (!q)
		return FAILED;
	step = sqlite3_step(q);
	if (step == SQLITE_ROW)
		*out = sqlite3_column_int64(q, 0);
	else
		fprintf(stderr, "pipewright: events: %s\n", sqlite3_errmsg(pw_store_db(store)));
	sqlite3_reset(q);
	return step == SQLITE_ROW ? GO : FAILED;
}

/*
 * The oldest id still kept: min(id), or when pruning emptied the table the
 * next id to come (AUTOINCREMENT never reuses one). A reader after id N
 * has missed events when N + 1 < this.
 */
static const char first_available_sql[] =
	"SELECT coalesce((SELECT min(id) FROM events),"
	" (SELECT seq + 1 FROM sqlite_sequence WHERE name = 'events'), 1)";
/* The largest id so far (0 for none): where a stream without resume starts. */
static const char max_id_sql[] = "SELECT coalesce(max(id), 0) FROM events";
/* Changes whenever another connection has committed. */
static const char data_version_sql[] = "PRAGMA data_version";

/*
 * {limit, last_id, next_cursor, missed[, first_available_id]}, or NULL (out
 * of memory).
 */
static json_object *page_meta(const api_page *pg, long long last_id, long long after_id,
			      long long first)
{
	json_object *m = json_object_new_object();
	bool missed = after_id + 1 < first;

	if (m && (pw_json_put(m, "limit", json_object_new_int(pg->limit)) ||
		  pw_json_put(m, "last_id", json_object_new_int64(last_id)) ||
		  pw_json_put_str(m, "next_cursor", pg->next) ||
		  pw_json_put(m, "missed", json_object_new_boolean(missed)) ||
		  (missed && pw_json_put(m, "first_available_id", json_object_new_int64(first))))) {
		json_object_put(m);
		return NULL;
	}
	return m;
}

/* The JSON page. */
static int events_json(pw_req *req)
{
	events_query eq = {0};
	api_page pg = {0};
	json_object *data = NULL, *meta = NULL;
	long long last_id, first = 1;
	int rc = FAILED;

	if (parse_query(req, &eq, &pg) != GO) {
		api_page_free(&pg);
		return ANSWERED;
	}
	last_id = eq.after_id;
	data = json_object_new_array();
	eq.limit = pg.limit + 1; /* one more: whether events follow the page */
	/* Read after the page: a prune in between flags missed, never hides it. */
	if (!data || events_page(req, &eq, data, &last_id) != GO ||
	    single_int(pw_req_store(req), first_available_sql, &first) != GO)
		goto out;
	if (json_object_array_length(data) > (size_t)pg.limit) {
		json_object *last = json_object_array_get_idx(data, (size_t)pg.limit - 1), *id;
		if (!json_object_object_get_ex(last, "id", &id))
			goto out;
		last_id = json_object_get_int64(id);
		if (json_object_array_del_idx(data, (size_t)pg.limit, 1) != 0 ||
		    api_page_next(&pg, true, 0, last_id, NULL) != GO)
			goto out;
	}
	meta = page_meta(&pg, last_id, eq.after_id, first);
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

/* --- the live stream (SSE) ------------------------------------------------------ */

#define STREAM_POLL_MS 25        /* data_version checks without a watcher */
#define GONE_CHECK_MS 1000       /* pw_stream_gone checks of a noisy connection */
#define DEFAULT_KEEPALIVE_S 15   /* a comment after this much silence */
#define STREAM_BATCH 200         /* events per read transaction */
#define DEFAULT_MAX_SECONDS 55   /* below lighttpd's and Apache's timeouts */
#define DEFAULT_MAX_STREAMS 4096 /* the threads decide (pw_req_hold) */
#define RETRY_HINT "retry: 1000\n\n"
#define KEEPALIVE ": keepalive\n\n"
/*
 * A second, shorter comment PROBE_MS after each keepalive. A web server
 * learns that its client left only when a write to it fails, and the
 * first write after the client closed still succeeds (the client's reset
 * comes back to it): without the probe, Apache gives up one keepalive
 * interval later than it could (docs/hosting.md).
 */
#define PROBE ":\n"
#define PROBE_MS 250
/*
 * The first bytes of every stream: a comment, so that a front end that
 * holds the head until body bytes come (Apache's mod_proxy_fcgi) sends
 * the head at once, and the client's EventSource opens at once.
 */
#define OPENING ": stream open\n\n"

/* Streams open in this process (all threads). */
static atomic_int open_streams;

/* A growing text buffer: the messages of one batch. */
typedef struct sbuf {
	char *p;
	size_t len, cap;
} sbuf;

/* Appends formatted text. Returns 0, or -1 when out of memory. */
__attribute__((format(printf, 2, 3)))
static int sbuf_printf(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -1;
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return 0;
		}
		size_t cap = b->cap ? b->cap : 4096;
		while (cap - b->len <= (size_t)n)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return -1;
		b->p = p;
		b->cap = cap;
	}
}

/* An integer from the environment within lo..hi; dflt when unset or bad. */
static long long env_int(const char *name, long long dflt, long long lo, long long hi)
{
	const char *s = getenv(name);
	char *end = NULL;
	long long v;

	if (!s || !*s)
		return dflt;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end || errno || v < lo || v > hi) {
		fprintf(stderr, "pipewright: events: %s=%s is not %lld..%lld; using %lld\n",
			name, s, lo, hi, dflt);
		return dflt;
	}
	return v;
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One stream's state. */
typedef struct stream {
	pw_req *req;
	pw_store *store;
	events_query eq;       /* filters; eq.after_id is the cursor */
	long long resume;      /* the client's resume point, or -1 */
	long long keepalive_ms;
	bool conn_noisy;       /* the connection has unread input (stream_wait) */
	bool conn_idle;        /* stream_wait's poll saw nothing on it: not gone */
	sbuf out;
} stream;

/* The current row (id, type, data) as one SSE message into out. 0, or -1 (memory). */
static int format_event(sbuf *out, sqlite3_stmt *q)
{
	const char *type = (const char *)sqlite3_column_text(q, 1);
	const char *text = (const char *)sqlite3_column_text(q, 2);
	json_object *data = NULL;
	int rc;

	/* Stored data is one-line JSON; anything else is re-serialised. */
	if (!text || strpbrk(text, "\r\n")) {
		if (event_data(text, &data) != 0)
			return -1;
		text = data ? json_object_to_json_string_ext(
				      data, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
			    : "null";
	}
	rc = sbuf_printf(out, "id: %lld\nevent: %s\ndata: %s\n\n",
			 (long long)sqlite3_column_int64(q, 0), type ? type : "", text ? text : "null");
	json_object_put(data);
	return rc;
}

/*
 * Reads the next batch (events with id > cursor matching the filters) in
 * one read transaction, formatting them into st->out, and moves the
 * cursor: to the last event read when the batch is full, else to the
 * largest id of the same snapshot (later commits only add larger ids, so
 * nothing is skipped; the filtered rows in between are not read again).
 * The first call also checks the resume point against pruning. Sets *more
 * when a full batch was read. GO or FAILED (logged).
 */
static int read_batch(stream *st, bool *more)
{
	const char *sql = events_sql[st->eq.dag_id != NULL][st->eq.run_id != NULL];
	sqlite3_stmt *q = pw_store_stmt(st->store, sql);
	long long first, top = 0;
	int step = SQLITE_ERROR, n = 0, rc = FAILED;

	*more = false;
	if (!q)
		return FAILED;
	if (pw_store_begin_read(st->store) != PW_OK) {
		fprintf(stderr, "pipewright: events: %s\n",
			sqlite3_errmsg(pw_store_db(st->store)));
		return FAILED;
	}
	if (st->resume >= 0) {
		if (single_int(st->store, first_available_sql, &first) != GO)
			goto out;
		if (st->resume + 1 < first &&
		    sbuf_printf(&st->out, "id: %lld\nevent: events.missed\n"
				"data: {\"after_id\": %lld, \"first_available_id\": %lld}\n\n",
				first - 1, st->resume, first) != 0)
			goto out;
		st->resume = -1;
	}
	st->eq.limit = STREAM_BATCH;
	if (bind_query(q, &st->eq) != GO)
		goto out;
	while ((step = sqlite3_step(q)) == SQLITE_ROW) {
		if (format_event(&st->out, q) != 0)
			break;
		st->eq.after_id = sqlite3_column_int64(q, 0);
		n++;
	}
	if (step != SQLITE_DONE && step != SQLITE_ROW)
		fprintf(stderr, "pipewright: events: %s\n",
			sqlite3_errmsg(pw_store_db(st->store)));
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	if (step != SQLITE_DONE)
		goto out;
	*more = n == STREAM_BATCH;
	if (!*more) {
		if (single_int(st->store, max_id_sql, &top) != GO)
			goto out;
		if (top > st->eq.after_id)
			st->eq.after_id = top;
	}
	rc = GO;
out:
	/* Ends the read transaction (a COMMIT of a reader cannot conflict). */
	if (pw_store_commit(st->store) != PW_OK) {
		pw_store_rollback(st->store);
		rc = FAILED;
	}
	return rc;
}

/*
 * Sends everything new, batch by batch. Returns 1 when something was
 * sent, 0 when nothing was, -1 when the stream must end: the client is
 * gone, the server stops, or the database failed (logged; the client
 * resumes where it was).
 */
static int send_new(stream *st)
{
	bool more = true;
	int sent = 0;

	while (more) {
		st->out.len = 0;
		if (read_batch(st, &more) != GO)
			return -1;
		if (st->out.len == 0)
			continue;
		if (pw_stream_write(st->req, st->out.p, st->out.len) != 0 ||
		    pw_stream_flush(st->req) != 0)
			return -1;
		sent = 1;
	}
	return sent;
}

/* --- the process's tail of the events table --------------------------------------- */

/*
 * The newest events, read once per commit for every stream of the process
 * by the database watcher's thread (dbwatch.c calls events_tail_refresh
 * before it wakes the streams), each kept as its SSE message: a woken
 * stream filters them in memory instead of reading the table itself (one
 * read per commit instead of one per stream: with 32 streams that was
 * most of the CPU of a trigger). The tail holds every event with
 * floor < id <= top, TAIL_CAP at most (the oldest go first); a stream
 * whose cursor is below floor, or on another database than the watcher's,
 * reads the table (read_batch). Ids are given in commit order (one writer
 * at a time), so `id > top` after a commit is exactly what is new.
 */
#define TAIL_CAP 1024

typedef struct tail_event {
	long long id;
	char *type, *dag_id, *run_id;   /* dag_id, run_id: NULL when none */
	char *msg;                      /* "id: ...\n\n" */
	size_t len;
} tail_event;

static struct {
	pthread_mutex_t lock;
	tail_event ev[TAIL_CAP];   /* a ring: ev[(start + i) % TAIL_CAP], i < n */
	size_t start, n;
	long long floor, top;      /* floor -1: the tail knows nothing */
} tail = {.lock = PTHREAD_MUTEX_INITIALIZER, .floor = -1, .top = -1};

static void tail_event_free(tail_event *e)
{
	free(e->type);
	free(e->dag_id);
	free(e->run_id);
	free(e->msg);
	*e = (tail_event){0};
}

/* Empties the tail (under tail.lock); it knows nothing until a refresh. */
static void tail_clear(void)
{
	for (size_t i = 0; i < tail.n; i++)
		tail_event_free(&tail.ev[(tail.start + i) % TAIL_CAP]);
	tail.start = tail.n = 0;
	tail.floor = tail.top = -1;
}

void events_tail_reset(void)
{
	pthread_mutex_lock(&tail.lock);
	tail_clear();
	pthread_mutex_unlock(&tail.lock);
}

/* strdup of a column; NULL for NULL. Sets *oom when out of memory. */
static char *column_dup(sqlite3_stmt *q, int col, bool *oom)
{
	const char *v = (const char *)sqlite3_column_text(q, col);
	char *d = v ? strdup(v) : NULL;
	if (v && !d)
		*oom = true;
	return d;
}

/* Appends the current row (id, type, data, dag_id, run_id) to the tail. 0 or -1. */
static int tail_push(sqlite3_stmt *q, sbuf *scratch)
{
	tail_event e = {.id = sqlite3_column_int64(q, 0)};
	bool oom = false;

	scratch->len = 0;
	e.type = column_dup(q, 1, &oom);
	e.dag_id = column_dup(q, 3, &oom);
	e.run_id = column_dup(q, 4, &oom);
	if (oom || !e.type || format_event(scratch, q) != 0 ||
	    !(e.msg = malloc(scratch->len))) {
		tail_event_free(&e);
		return -1;
	}
	memcpy(e.msg, scratch->p, scratch->len);
	e.len = scratch->len;
	if (tail.n == TAIL_CAP) {   /* the oldest goes */
		tail.floor = tail.ev[tail.start].id;
		tail_event_free(&tail.ev[tail.start]);
		tail.start = (tail.start + 1) % TAIL_CAP;
		tail.n--;
	}
	tail.ev[(tail.start + tail.n++) % TAIL_CAP] = e;
	tail.top = e.id;
	return 0;
}

void events_tail_refresh(sqlite3 *db)
{
	static const char tail_sql[] =
		"SELECT id, type, data, dag_id, run_id FROM events WHERE id > ?1 ORDER BY id";
	sqlite3_stmt *top_q = NULL, *q = NULL;
	sbuf scratch = {0};
	long long newest = -1;
	int step = SQLITE_ERROR;

	pthread_mutex_lock(&tail.lock);
	/* One snapshot for both statements: the newest id and what is new. */
	if (!db || sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		goto out;
	if (sqlite3_prepare_v2(db, max_id_sql, -1, &top_q, NULL) == SQLITE_OK &&
	    sqlite3_step(top_q) == SQLITE_ROW)
		newest = sqlite3_column_int64(top_q, 0);
	if (newest < 0)
		goto out;
	/* Starting, or too far behind to be worth reading: start at the newest. */
	if (tail.floor < 0 || newest < tail.top || newest - tail.top > TAIL_CAP) {
		tail_clear();
		tail.floor = tail.top = newest;
		step = SQLITE_DONE;
		goto out;
	}
	if (sqlite3_prepare_v2(db, tail_sql, -1, &q, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(q, 1, tail.top) != SQLITE_OK)
		goto out;
	while ((step = sqlite3_step(q)) == SQLITE_ROW)
		if (tail_push(q, &scratch) != 0)
			break;
out:
	if (step != SQLITE_DONE) {
		if (db)
			fprintf(stderr, "pipewright: events: the tail: %s\n", sqlite3_errmsg(db));
		tail_clear();   /* the streams read the table themselves */
	}
	pthread_mutex_unlock(&tail.lock);
	sqlite3_finalize(top_q);
	sqlite3_finalize(q);
	if (db && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	free(scratch.p);
}

/* Whether the stream's filters take e. */
static bool tail_wants(const events_query *eq, const tail_event *e)
{
	if ((eq->dag_id && (!e->dag_id || strcmp(eq->dag_id, e->dag_id) != 0)) ||
	    (eq->run_id && (!e->run_id || strcmp(eq->run_id, e->run_id) != 0)))
		return false;
	if (!eq->types[0])
		return true;
	for (size_t i = 0; i < N_TYPES && eq->types[i]; i++)
		if (strcmp(eq->types[i], e->type) == 0)
			return true;
	return false;
}

/*
 * The stream's new events from the tail into st->out, moving its cursor
 * to the tail's top. Returns 1 when the tail covers the cursor (st->out
 * may still be empty), 0 when it does not (read the table), -1 when out
 * of memory.
 */
static int tail_take(stream *st)
{
	int rc = 0;

	st->out.len = 0;
	pthread_mutex_lock(&tail.lock);
	if (tail.floor >= 0 && st->eq.after_id >= tail.floor) {
		rc = 1;
		size_t i = tail.n;   /* the first event after the cursor */
		while (i > 0 && tail.ev[(tail.start + i - 1) % TAIL_CAP].id > st->eq.after_id)
			i--;
		for (; i < tail.n && rc == 1; i++) {
			const tail_event *e = &tail.ev[(tail.start + i) % TAIL_CAP];
			if (tail_wants(&st->eq, e) &&
			    sbuf_printf(&st->out, "%.*s", (int)e->len, e->msg) != 0)
				rc = -1;
		}
		if (rc == 1 && tail.top > st->eq.after_id)
			st->eq.after_id = tail.top;
	}
	pthread_mutex_unlock(&tail.lock);
	return rc;
}

/*
 * Sends what the tail has for the stream. Returns as send_new does, or 2
 * when the tail does not cover the stream's cursor (nothing sent).
 */
static int send_from_tail(stream *st)
{
	int rc = tail_take(st);

	if (rc <= 0)
		return rc < 0 ? -1 : 2;
	if (st->out.len == 0)
		return 0;
	if (pw_stream_write(st->req, st->out.p, st->out.len) != 0 ||
	    pw_stream_flush(st->req) != 0)
		return -1;
	return 1;
}

/*
 * Sleeps until the database watcher wakes the stream (efd; without one,
 * STREAM_POLL_MS at most), the web server's connection shows its end, or
 * ms pass. Input on the connection that is neither its end nor an abort
 * is the end of stdin that libfcgi left (pw_stream_quiet takes it off);
 * anything else there makes the connection noisy: then it is watched for
 * hang-ups only, and checked with pw_stream_gone every GONE_CHECK_MS.
 */
static void stream_wait(stream *st, int efd, long long ms)
{
	struct pollfd p[2];
	int n = 0, cfd = pw_stream_fd(st->req);

	if (efd >= 0)
		p[n++] = (struct pollfd){.fd = efd, .events = POLLIN};
	else if (ms > STREAM_POLL_MS)
		ms = STREAM_POLL_MS;
	if (cfd >= 0)
		p[n++] = (struct pollfd){.fd = cfd,
					 .events = st->conn_noisy ? POLLRDHUP : POLLIN | POLLRDHUP};
	if (st->conn_noisy && ms > GONE_CHECK_MS)
		ms = GONE_CHECK_MS;
	int ready = poll(p, (nfds_t)n, ms < 0 ? 0 : (int)ms);
	/* No hang-up, no abort record: pw_stream_gone would find nothing. */
	st->conn_idle = ready >= 0 && cfd >= 0 && !st->conn_noisy && !p[n - 1].revents;
	if (ready <= 0)
		return;
	if (efd >= 0 && p[0].revents)
		dbwatch_drain(efd);
	if (cfd >= 0 && p[n - 1].revents == POLLIN && !pw_stream_gone(st->req) &&
	    !pw_stream_quiet(st->req))
		st->conn_noisy = true;
}

/*
 * Tails the events table until the deadline, the client leaves or the
 * server stops, sleeping in stream_wait between changes and keep-alives.
 */
static void stream_loop(stream *st, long long max_ms)
{
	long long now = mono_ms(), deadline = now + max_ms, quiet_since = now;
	long long seen = 0, version = 0, probe_at = 0;   /* 0: no probe due */
	bool first = true;
	int efd = dbwatch_join(sqlite3_db_filename(pw_store_db(st->store), "main"));

	for (;;) {
		/* A zero-length write does no I/O: it tells a stopping server. */
		if (pw_stream_write(st->req, "", 0) != 0 ||
		    (!st->conn_idle && pw_stream_gone(st->req)))
			break;
		st->conn_idle = false;
		now = mono_ms();
		if (now >= deadline) {
			if (pw_stream_write(st->req, RETRY_HINT, sizeof RETRY_HINT - 1) == 0)
				pw_stream_flush(st->req);
			break;
		}
		/* Woken by the watcher: its tail has what is new (first: the table). */
		int sent = !first && efd >= 0 ? send_from_tail(st) : 2;
		if (sent < 0)
			break;
		if (sent == 2) {
			if (single_int(st->store, data_version_sql, &version) != GO)
				break;
			/* Read before the rows: a commit after this read changes it again. */
			sent = first || version != seen ? send_new(st) : 0;
			if (sent < 0)
				break;
			seen = version;
			first = false;
		}
		if (sent)
			quiet_since = now;
		if (now - quiet_since >= st->keepalive_ms) {
			if (pw_stream_write(st->req, KEEPALIVE, sizeof KEEPALIVE - 1) != 0 ||
			    pw_stream_flush(st->req) != 0)
				break;
			quiet_since = now;
			probe_at = now + PROBE_MS;
		} else if (probe_at && now >= probe_at) {
			if (pw_stream_write(st->req, PROBE, sizeof PROBE - 1) != 0 ||
			    pw_stream_flush(st->req) != 0)
				break;
			probe_at = 0;
		}
		long long until = probe_at ? probe_at : quiet_since + st->keepalive_ms;
		stream_wait(st, efd, (until < deadline ? until : deadline) - now);
	}
	dbwatch_leave(efd);
}

/*
 * The resume point: the Last-Event-ID header, else ?last_event_id=; -1
 * when neither (an empty header counts as none). GO or ANSWERED.
 */
static int parse_resume(pw_req *req, long long *resume)
{
	const char *h = pw_req_header(req, "Last-Event-ID");
	const char *q = pw_req_query(req, "last_event_id");

	*resume = -1;
	if (h && *h)
		return parse_id(req, h, "Last-Event-ID", resume);
	if (q)
		return parse_id(req, q, "last_event_id", resume);
	return GO;
}

bool events_slot_take(pw_req *req)
{
	long long max_streams = env_int("PIPEWRIGHT_MAX_STREAMS", DEFAULT_MAX_STREAMS, 0, 4096);

	if (atomic_fetch_add(&open_streams, 1) >= max_streams || !pw_req_hold(req)) {
		atomic_fetch_sub(&open_streams, 1);
		pw_reply_header(req, "Retry-After", "5");
		pw_reply_error(req, 503, "too many event streams, log follows and waiting "
			       "runs in this process; retry later");
		return false;
	}
	return true;
}

void events_slot_give(void)
{
	atomic_fetch_sub(&open_streams, 1);
}

long long events_stream_max_ms(void)
{
	return 1000 * env_int("PIPEWRIGHT_SSE_MAX_SECONDS", DEFAULT_MAX_SECONDS, 1, 86400);
}

/* The stream; a slot of the stream limit is held meanwhile. */
static int events_stream(pw_req *req)
{
	stream st = {.req = req, .store = pw_req_store(req), .resume = -1};
	int rc = FAILED;

	st.keepalive_ms = 1000 * env_int("PIPEWRIGHT_SSE_KEEPALIVE_SECONDS",
					 DEFAULT_KEEPALIVE_S, 1, 3600);
	if (parse_filters(req, &st.eq) != GO || parse_resume(req, &st.resume) != GO)
		return ANSWERED;
	if (!events_slot_take(req))
		return ANSWERED;
	if (!st.store)
		goto out;
	st.eq.after_id = st.resume;
	if (st.resume < 0 && single_int(st.store, max_id_sql, &st.eq.after_id) != GO)
		goto out;
	if (pw_reply_header(req, "Cache-Control", "no-cache") != 0 ||
	    pw_reply_header(req, "X-Accel-Buffering", "no") != 0)
		goto out;
	rc = GO;
	if (pw_stream_begin(req, 200, "text/event-stream") == 0 &&
	    pw_stream_write(req, OPENING, sizeof OPENING - 1) == 0 &&
	    pw_stream_flush(req) == 0)
		stream_loop(&st, events_stream_max_ms());
out:
	free(st.out.p);
	events_slot_give();
	return rc;
}

/*
 * The q parameter of one Accept range [p, end), times 1000; 1000 without
 * one or when it does not parse as 0..1.
 */
static int range_q(const char *p, const char *end)
{
	while ((p = memchr(p, ';', (size_t)(end - p))) != NULL) {
		p += 1 + strspn(p + 1, " \t");
		if ((*p == 'q' || *p == 'Q') && p[1] == '=') {
			char *after;
			double v = strtod(p + 2, &after);
			return after > p + 2 && v >= 0 && v <= 1 ? (int)(v * 1000 + 0.5) : 1000;
		}
	}
	return 1000;
}

/*
 * How much an Accept header wants type, as the q (times 1000) of its most
 * specific range naming it: the type itself, else (when wildcards) its
 * major type with any subtype, else any type. -1 when no range names it.
 */
static int accept_q(const char *accept, const char *type, bool wildcards)
{
	size_t major = strcspn(type, "/") + 1;   /* "application/" */
	int best_rank = 0, best_q = -1;
	for (const char *p = accept; *p;) {
		const char *end = p + strcspn(p, ","), *media = p + strspn(p, " \t");
		size_t len = strcspn(media, ";, \t");
		int rank = 0;
		if (len == strlen(type) && !strncasecmp(media, type, len))
			rank = 3;
		else if (wildcards && len == major + 1 && !strncasecmp(media, type, major) &&
			 media[major] == '*')
			rank = 2;
		else if (wildcards && len == 3 && !strncmp(media, "*/*", 3))
			rank = 1;
		if (rank > best_rank) {
			best_rank = rank;
			best_q = range_q(media, end);
		}
		p = *end ? end + 1 : end;
	}
	return best_q;
}

/*
 * Whether the client asks for the stream: Accept names text/event-stream
 * itself, with a q above 0 and not below JSON's. HEAD gets the page's
 * head: a stream would never end.
 */
static bool wants_stream(pw_req *req)
{
	const char *accept = pw_req_header(req, "Accept");
	if (!accept || !strcmp(pw_req_method(req), "HEAD"))
		return false;
	int sse = accept_q(accept, "text/event-stream", false);
	return sse > 0 && sse >= accept_q(accept, "application/json", true);
}

int events_get(pw_req *req)
{
	return wants_stream(req) ? events_stream(req) : events_json(req);
}
