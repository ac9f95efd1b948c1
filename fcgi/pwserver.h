/*
 * pwserver.h - pipewright's HTTP server as a library: create a server for
 * a project, add routes beside the built-in ones, run the accept loop.
 * pipewright.fcgi is this library plus a main(); the counterpart of
 * Kedro's create_http_server().
 *
 * A handler gets one pw_req: the request (method, path, :params, query,
 * headers, body, REMOTE_USER) and the means to answer it, plus the
 * project (a cached, mtime-checked snapshot) and the thread's own SQLite
 * connection. Nothing of a request survives into the next one.
 *
 * Every /api/v1 answer is JSON in DESIGN.md's envelope:
 *   {"data": ..., "meta": {...}}                       success
 *   {"data": null, "error": {"code": "...", "message": "..."}}   error
 * with the code derived from the status (pw_status_code).
 */
#ifndef PW_SERVER_H
#define PW_SERVER_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "project.h"
#include "store.h"

typedef struct pw_server pw_server;
typedef struct pw_req pw_req;

/*
 * Roles, weakest first; a route needs at least its role. A public route
 * (health, version) needs no user even when settings.roles is set.
 */
typedef enum pw_role {
	PW_ROLE_PUBLIC,
	PW_ROLE_READ,
	PW_ROLE_OPERATE,
	PW_ROLE_ADMIN,
} pw_role;

/*
 * A handler answers the request through pw_reply_* exactly once and
 * returns 0 (or any value >= 0: pipewright's own handlers return GO or
 * ANSWERED of fcgi/api.h); a negative return (FAILED, -1) means it could
 * not, and the server answers 500 internal (unless a reply was already
 * started).
 */
typedef int (*pw_handler)(pw_req *req);

typedef struct pw_route {
	const char *method;   /* "GET", "POST", "PATCH", "DELETE" */
	const char *pattern;  /* "/api/v1/dags/:dag_id/runs"; ":name" = one segment */
	pw_handler handler;
	pw_role role;
} pw_route;

/* How the accept loop runs. */
typedef struct pw_server_config {
	const char *socket;   /* NULL: fd 0 (started by the web server) or CGI;
			       * "PATH" (unix, mode 0660) or "127.0.0.1:PORT" */
	int threads;          /* accepting threads; 0 = 4 */
	size_t max_body;      /* bytes; 0 = 1 MiB */
} pw_server_config;

/*
 * Creates a server for a project (NULL fields of opts take the
 * PIPEWRIGHT_* variables). The built-in routes are in place. Returns NULL
 * with *err (malloc'd) when the project cannot be loaded at all.
 */
pw_server *pw_server_new(const pw_project_opts *opts, char **err);
/* Adds routes (the array must outlive the server). Returns 0 or -1. */
int pw_server_add_routes(pw_server *srv, const pw_route *routes, size_t n);
/*
 * Runs the accept loop until SIGTERM/SIGINT; as plain CGI (FCGX_IsCGI and
 * no socket given) answers the one request from the environment and
 * returns. Returns 0, or -1 when the socket cannot be opened.
 */
int pw_server_run(pw_server *srv, const pw_server_config *cfg);
void pw_server_free(pw_server *srv);

/*
 * One request answered in this process, without a web server: the
 * `pipewright` CLI's local backend. The request goes through the same
 * routing, checks and handlers as one from the web server; the caller is
 * trusted (the roles of settings.roles are not checked: whoever can open
 * the database may do anything). The answer's head is parsed: *status and
 * content type; each piece of the body goes to sink as the handler writes
 * it (a stream too; sink returns non-zero when it wants no more, which the
 * handler sees as a gone client). *store is the caller's connection slot
 * for this thread (opened on first use; pw_store_close it at the end).
 * Thread-safe for calls with distinct slots.
 */
typedef struct pw_call {
	const char *method;       /* "GET" ... */
	const char *path;         /* "/api/v1/dags?paused=true" (query included) */
	const char *body;         /* or NULL */
	size_t body_len;
	const char *accept;       /* Accept header, or NULL */
	const char *user;         /* REMOTE_USER (triggered_by), or NULL */
	int (*sink)(void *ctx, const char *content_type, const char *buf, size_t n);
	void *ctx;
} pw_call;
/* Returns the HTTP status of the answer, or -1 when out of memory. */
int pw_server_call(pw_server *srv, const pw_call *call, pw_store **store);

/* The routes of pipewright itself (fcgi/routes.c). */
extern const pw_route pw_builtin_routes[];
extern const size_t pw_builtin_routes_count;

/* --- the request ----------------------------------------------------------- */

const char *pw_req_method(const pw_req *req);
/* The path below the mount prefix (PATH_INFO), e.g. "/api/v1/dags". */
const char *pw_req_path(const pw_req *req);
/* A ":name" segment of the route's pattern, URL-decoded. */
const char *pw_req_param(const pw_req *req, const char *name);
/*
 * The first value of query parameter name, URL-decoded, or NULL. An
 * unparseable query string has been answered with 400 before any handler.
 */
const char *pw_req_query(const pw_req *req, const char *name);
/* A request header by its HTTP name ("Accept", "Last-Event-ID"), or NULL. */
const char *pw_req_header(const pw_req *req, const char *name);
/* REMOTE_USER from the web server, or NULL. */
const char *pw_req_user(const pw_req *req);
/* The raw body (may be empty) and its length; bounded by max_body. */
const char *pw_req_body(const pw_req *req, size_t *len);
/*
 * The body as a JSON object. On a problem answers the request itself (415
 * without a JSON content type, 400 for malformed JSON or a non-object) and
 * returns NULL: the handler then just returns 0.
 */
json_object *pw_req_json(pw_req *req);
/* The project snapshot this request sees (do not free). */
const pw_project *pw_req_project(const pw_req *req);
/* The thread's store connection. */
pw_store *pw_req_store(const pw_req *req);
/*
 * Before a request: closes the thread's connection when the database file
 * was deleted or replaced since it was opened (one stat(2)); the next
 * pw_req_store opens the file now at the path, if any.
 */
void pw_req_store_check(const pw_req *req);
/* Why the last pw_req_store of this thread returned NULL. */
const char *pw_req_store_problem(void);

/* --- validating input --------------------------------------------------------- */

typedef enum pw_ftype {
	PW_F_STRING,      /* any string */
	PW_F_ID,          /* a run id or pool name: [A-Za-z0-9][A-Za-z0-9_.:+-]*, <= 250 */
	PW_F_BOOL,
	PW_F_INT,         /* integer >= 0 */
	PW_F_OBJECT,
	PW_F_STRINGS,     /* list of strings */
} pw_ftype;

typedef struct pw_field {
	const char *name;
	pw_ftype type;
	bool required;
} pw_field;

/*
 * Checks a body against a schema: unknown field, wrong type or missing
 * required field -> answers 400 bad_request naming the field and returns
 * -1; else 0.
 */
int pw_req_check_body(pw_req *req, json_object *body, const pw_field *fields, size_t n);

/*
 * Reads `limit` (default 100, 1..1000) and `offset` (default 0, >= 0).
 * A bad value answers 400 and returns -1.
 */
int pw_req_paging(pw_req *req, int *limit, long long *offset);

/* --- answering ------------------------------------------------------------------ */

/* "not_found" for 404, ..., per DESIGN.md section 5; "internal" otherwise. */
const char *pw_status_code(int status);

/* Adds a response header; before the reply starts. Returns 0 or -1. */
int pw_reply_header(pw_req *req, const char *name, const char *value);
/*
 * {"data": data, "meta": meta} with status; takes ownership of data and
 * meta (either may be NULL: data -> null, meta -> {}). Returns 0 or -1.
 */
int pw_reply_data(pw_req *req, int status, json_object *data, json_object *meta);
/* {"data": null, "error": {"code", "message"}} with status. Returns 0. */
int pw_reply_error(pw_req *req, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* 503 `unavailable` with a Retry-After header (seconds). Returns 0. */
int pw_reply_unavailable(pw_req *req, const char *retry_after, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Any JSON value as the whole body (Kedro's endpoints). Takes ownership. */
int pw_reply_json(pw_req *req, int status, json_object *body);
/* A body as is, e.g. text/plain logs. */
int pw_reply_raw(pw_req *req, int status, const char *content_type,
		 const char *body, size_t len);
/* 204 No Content. */
int pw_reply_empty(pw_req *req, int status);

/* Streaming (SSE): headers now, then writes flushed as they go. */
int pw_stream_begin(pw_req *req, int status, const char *content_type);
/* Returns 0, or -1 when the client is gone. */
int pw_stream_write(pw_req *req, const char *data, size_t len);
int pw_stream_flush(pw_req *req);
/*
 * Whether the client of a stream has left, without blocking or reading:
 * the web server closed the FastCGI connection or aborted the request.
 * Then the stream's writes fail too. Call it between writes of a stream
 * that waits a long time for data. Always false for plain CGI (a gone
 * client shows as a failed write there).
 */
bool pw_stream_gone(pw_req *req);
/*
 * Takes one of the server's slots for a request that keeps its thread
 * for long (a stream, a wait for a run): true, or false when every
 * thread but one is held already, so that ordinary requests are still
 * answered (then answer 503). The slot is given back when the request
 * ends. Always true for plain CGI (one process per request).
 */
bool pw_req_hold(pw_req *req);

#endif
