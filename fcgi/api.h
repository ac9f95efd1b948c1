/*
 * api.h - what the resource files of pipewright.fcgi share: their handlers
 * (one file per resource, reached from the table in routes.c) and the
 * helpers that shape the objects several of them return.
 */
#ifndef PW_API_H
#define PW_API_H

#include "jsonput.h"
#include "pwserver.h"

/* dags.c */
int dags_list(pw_req *req);
int dags_get(pw_req *req);
int dags_patch(pw_req *req);
int import_errors_list(pw_req *req);

/*
 * The parts of a project's DAG objects that only change with the project,
 * as JSON text; built with each snapshot (server.c), read by dags.c
 * through api_req_dags (request.c). api_dags_new is NULL when out of memory.
 */
typedef struct api_dags api_dags;
api_dags *api_dags_new(const pw_project *p);
void api_dags_free(api_dags *d);
const api_dags *api_req_dags(const pw_req *req);

/* runs.c */
int runs_list(pw_req *req);
int runs_trigger(pw_req *req);
int runs_get(pw_req *req);
int runs_cancel(pw_req *req);
int runs_retry(pw_req *req);
int runs_list_all(pw_req *req);

/* operate.c */
int runs_clear(pw_req *req);
int runs_patch(pw_req *req);
int runs_purge(pw_req *req);
int tasks_mark(pw_req *req);

/* backfills.c */
int backfills_create(pw_req *req);

/* dagfiles.c */
int dags_source(pw_req *req);
int dags_graph(pw_req *req);
int me_get(pw_req *req);

/* tasks.c */
int tasks_list(pw_req *req);
int tasks_get(pw_req *req);
int tasks_xcom(pw_req *req);
int tasks_logs(pw_req *req);

/* stats.c */
int stats_dag(pw_req *req);
int stats_metrics(pw_req *req);

/* health.c */
int health_get(pw_req *req);
int version_get(pw_req *req);
/*
 * Whether health counts the runner as running (1) or not (0), and the
 * age of its last heartbeat in *age_ms (-1: none); -1 when the database
 * does not answer. (health.c)
 */
int api_runner_up(pw_req *req, long long *age_ms);

/* metrics.c: GET /metrics, Prometheus text format 0.0.4. */
int metrics_get(pw_req *req);
/*
 * The answering process's requests by HTTP status (server.c): copies
 * counts[0..599] and returns 1, or 0 when it does not count (plain CGI).
 */
int api_http_counts(long long counts[600]);

/* pools.c */
int pools_list(pw_req *req);
int pools_get(pw_req *req);
int pools_create(pw_req *req);
int pools_patch(pw_req *req);
int pools_delete(pw_req *req);

/* events.c */
int events_get(pw_req *req);
/*
 * A slot for a long-lived answer (an event stream, a log follow): one of
 * the server's long-request slots (pw_req_hold) within
 * PIPEWRIGHT_MAX_STREAMS. false when none is free: then 503 (envelope,
 * Retry-After) has been answered. events_slot_give returns a taken slot.
 * events_stream_max_ms: how long such an answer may stay open
 * (PIPEWRIGHT_SSE_MAX_SECONDS, default 55 s).
 */
bool events_slot_take(pw_req *req);
void events_slot_give(void);
long long events_stream_max_ms(void);
/*
 * events.c's tail of the events table, kept by the watcher's thread:
 * events_tail_refresh reads what db (the watcher's connection; NULL: it
 * failed) has after the tail, before the streams are woken;
 * events_tail_reset forgets it all (the database was replaced, or the
 * watcher stops).
 */
void events_tail_refresh(sqlite3 *db);
void events_tail_reset(void);

/* logfollow.c: GET .../logs?follow=true for the try of task row (pk, task_id). */
int logs_follow(pw_req *req, long long pk, const char *task_id, int try_number,
		long long offset);

/*
 * dbwatch.c: the process's database watcher. dbwatch_join registers a
 * waiter on the database at db_path (starting the watcher the first
 * time): a descriptor (epoll) that becomes readable when a commit
 * changed the database or the server stops; -1 when there is none (then
 * poll). dbwatch_drain makes it unreadable again until the next change,
 * dbwatch_leave closes it. dbwatch_stop wakes
 * every waiter and ends the watcher for good (the server's stop).
 */
int dbwatch_join(const char *db_path);
void dbwatch_drain(int fd);
void dbwatch_leave(int fd);
void dbwatch_stop(void);

/*
 * request.c: the FastCGI connection of a stream's request, to poll for
 * its end next to other descriptors (pw_stream_gone confirms); -1 for CGI.
 */
int pw_stream_fd(pw_req *req);
/*
 * request.c: takes the empty end-of-stdin records of the request that
 * libfcgi left unread off the front of its connection (a GET's body is
 * never read), so that the connection polls readable only for news (an
 * abort, its end). Returns whether it polls quiet now.
 */
bool pw_stream_quiet(pw_req *req);

/* kedro.c */
int kedro_health(pw_req *req);
int kedro_snapshot(pw_req *req);
int kedro_run(pw_req *req);

/*
 * pyerror.c: POST /run's body as FastAPI and pydantic v2 see it.
 * pyerror_read_body parses the body as CPython's json.loads would take it
 * into *out (an object); pyerror_check_run validates it against Kedro's
 * RunRequest into *clean (the fields given, bools coerced). Each answers
 * a refusal 422 {"detail": [pydantic errors]} itself. GO, ANSWERED or FAILED.
 */
int pyerror_read_body(pw_req *req, json_object **out);
int pyerror_check_run(pw_req *req, json_object *body, json_object **clean);

/* --- shared helpers (objects.c) ------------------------------------------- */

/*
 * The one return vocabulary of fcgi/: what a function of a request did.
 *   GO        all fine and nothing answered yet: the caller goes on;
 *   ANSWERED  the request has its answer (a 400, a 404, ...): stop;
 *   FAILED    it could not (out of memory, the database failed: logged);
 *             a handler returning it gets 500 from the server.
 * A handler returns GO or ANSWERED once it answered, FAILED when it could
 * not (pwserver.h: >= 0 or < 0). GO and FAILED are store.h's PW_OK and
 * PW_ERR, so a store call's PW_OK/PW_ERR passes through unchanged; the
 * few functions here that write like the store and tell more than success
 * (PW_CONFLICT, PW_NOTFOUND) say so and use store.h's codes.
 */
enum { GO = PW_OK, ANSWERED = 1, FAILED = PW_ERR };

/* Logs the request's SQLite connection error. Returns FAILED. */
int api_db_error(pw_req *req);
/* Resets a statement and clears its bindings, for its next user. */
void api_stmt_done(sqlite3_stmt *st);
/*
 * A list's rows as JSON: steps st (bound) to its end, appending row(st)
 * (NULL: out of memory) of each row to the array list, and puts st back
 * either way. GO or FAILED (a database error is logged).
 */
int api_rows(pw_req *req, sqlite3_stmt *st, json_object *(*row)(sqlite3_stmt *st),
	     json_object *list);
/*
 * Ends a read transaction (pw_store_begin_read) that gave a list its
 * total and its page from one snapshot: commits it, rolls back when that
 * fails. Returns rc, or FAILED (logged) when rc was GO and the end failed.
 */
int api_read_end(pw_req *req, int rc);

/*
 * A list's paging (cursor.c): ?limit=, ?offset= and ?cursor=, and the
 * cursor of the page after this one. A list fetches limit + 1 rows: when
 * the extra one comes, api_page_next makes next from the page's last row.
 */
enum { API_AFTER_NONE, API_AFTER_VALUE, API_AFTER_NULL };
typedef struct api_page {
	const char *tag;   /* the list and its order, e.g. "runs:queued_at:desc" */
	int limit;
	long long offset;
	int after;         /* API_AFTER_*: continue after (val, key) or (NULL, key) */
	long long val;     /* the sort value of the last row seen */
	long long key;     /* its unique integer tie-breaker (rowid, position) */
	char *skey;        /* or its unique text tie-breaker (a name), owned */
	char *next;        /* meta.next_cursor, owned; NULL on the last page */
} api_page;

/*
 * Reads ?limit=, ?offset= and ?cursor= of the list tag (its rows keyed by
 * text: skey, or not: key) into pg. A cursor that does not decode, was
 * made for another tag or kind of key, or comes with an offset is
 * answered 400. GO or ANSWERED.
 */
int api_page_parse(pw_req *req, const char *tag, bool text_key, api_page *pg);
/* Makes pg->next point after the row (val or NULL, key or skey). GO or FAILED. */
int api_page_next(api_page *pg, bool val_null, long long val, long long key,
		  const char *skey);
void api_page_free(api_page *pg);
/*
 * The most items, and the default, of the list a detail embeds (a DAG's
 * tasks, a run's task instances): a detail answers that page of it, with
 * the list's meta, so a 100,000-task DAG is never one answer.
 */
#define API_DETAIL_LIMIT 1000
/*
 * api_page_parse for a detail's embedded list: ?limit= defaults to
 * API_DETAIL_LIMIT. GO or ANSWERED.
 */
int api_detail_page_parse(pw_req *req, const char *tag, api_page *pg);
/*
 * For a list fetched with limit + 1 and keyed by the unique text field of
 * its objects: drops the extra object of data and sets pg->next after the
 * last one left. GO or FAILED.
 */
int api_page_trim(api_page *pg, json_object *data, const char *field);

/*
 * A list's meta: {"total", "limit", "offset", "next_cursor"}; NULL when
 * out of memory.
 */
json_object *api_page_meta(long long total, const api_page *pg);

/*
 * JSON text written straight into a buffer (json-c's printbuf), for the
 * answers that are hot enough not to build a json-c tree first. The text
 * reads exactly as json-c would serialise the same values (strings through
 * pw_json_quote). The first failed append (out of memory) sticks: later
 * ones do nothing and api_text_reply fails.
 */
typedef struct api_text {
	struct printbuf *pb;
	bool failed;
} api_text;

void api_text_init(api_text *t);
void api_text_free(api_text *t);
void api_text_raw(api_text *t, const char *s, size_t n);
#define API_TEXT_LIT(t, s) api_text_raw((t), "" s, sizeof(s) - 1)
/* A JSON string; null when s is NULL. */
void api_text_str(api_text *t, const char *s);
void api_text_int(api_text *t, long long n);
/* An ISO-8601 string; null when ms <= 0. */
void api_text_time(api_text *t, long long ms);
/* json-c's serialisation of v (which must not be shared with other threads). */
void api_text_json(api_text *t, json_object *v);
/* Ends a page: `],"meta":{"total":N,"limit":L,"offset":O,"next_cursor":C}}`. */
void api_text_page_end(api_text *t, long long total, const api_page *pg);
/* A list's meta: `"meta":{"total":N,"limit":L,"offset":O,"next_cursor":C}`. */
void api_text_meta(api_text *t, long long total, const api_page *pg);
/* Answers status with the text as the JSON body and frees it. 0 or -1. */
int api_text_reply(pw_req *req, int status, api_text *t);

/* The columns of runs that api_run_text reads, from column 0 on. */
#define API_RUN_COLUMNS "id, dag_id, run_id, state, run_type, conf, options," \
	" triggered_by, queued_at, started_at, ended_at, error_type, error_message," \
	" coalesce(logical_date, queued_at), note"

/* The run object of st's current row (API_RUN_COLUMNS) as JSON text. */
void api_run_text(api_text *t, sqlite3_stmt *st);

/* ISO-8601 string of ms since the epoch, or JSON null when ms <= 0. */
json_object *api_time(long long ms);

/*
 * The run with this DAG and run id as its API object (run_id, dag_id,
 * state, run_type, conf, queued_at, started_at, ended_at, duration_ms,
 * triggered_by, ...), or NULL. *pk gets its row id when pk is non-NULL.
 * Returns PW_OK (found), PW_NOTFOUND or PW_ERR (store.h's codes).
 */
int api_run_object(pw_req *req, const char *dag_id, const char *run_id,
		   json_object **out, long long *pk);
/*
 * Queues a run through the process's writer (pw_store_write: group
 * commit) and, when answer is not NULL, reads its run object in the
 * inserting transaction (the runner may claim it right after). *run_id
 * (malloc'd; run_id may be NULL) and *answer (ours) are set on PW_OK.
 * Returns PW_OK, PW_CONFLICT (the run_id is taken) or PW_ERR.
 */
int api_queue_run(pw_req *req, const pw_run_new *run, char **run_id, json_object **answer);
/* api_run_object read through store (a pw_store_write closure's connection). */
int api_run_object_in(pw_store *store, const char *dag_id, const char *run_id,
		      json_object **out, long long *pk);

/*
 * Whether a DAG id is known to the API: a DAG of the project, or a
 * pipeline name that has runs ("__default__", "a+b" from POST /run).
 * Answers 404 itself and returns false otherwise.
 */
bool api_dag_exists_or_404(pw_req *req, const char *dag_id);
/*
 * Whether s can name a pipeline: DAG ids ([A-Za-z0-9_][A-Za-z0-9_.-]*,
 * 1..250 characters each) joined by '+', as POST /run names a union.
 */
bool api_valid_pipeline_id(const char *s);
/*
 * Whether JSON text n bytes long (already parsed) holds the escape
 * \u0000, the one way a NUL gets into a string or a key (request.c).
 */
bool api_json_has_nul(const char *s, size_t n);

/*
 * The task instances of a run as a list of objects (task_id, state,
 * try_number, max_tries, pool, pool_slots, started_at, ended_at,
 * duration_ms, exit_code, next_try_at), in the order the runner created
 * them. task_id non-NULL keeps only that task (the list is then empty or
 * holds one object). pg NULL means all of them, else the page it asks
 * for (setting its next). Returns GO or FAILED.
 */
int api_task_instances(pw_req *req, long long run_pk, const char *task_id,
		       api_page *pg, json_object **out);
/* How many task instances the run has, into *total. PW_OK or PW_ERR. */
int api_task_instance_count(pw_req *req, long long run_pk, long long *total);

/* Opens a task's log file safely (tasks.c; see there). */
int api_log_open(const char *path, const char *logs_dir, const char **refused);

/* The run of the path, or an answered 404 (runs.c). GO, ANSWERED or FAILED. */
int api_find_run(pw_req *req, json_object **run, long long *pk);

#endif
