/*
 * core.h - private to the server core (server.c, request.c, reply.c,
 * accesslog.c): the request context behind the opaque pw_req, the I/O it
 * goes through, and the request log.
 *
 * One pw_req lives on the stack of the accepting thread for one request.
 * Everything it owns is freed by pw_req_release; nothing survives into the
 * next request. The same code serves FastCGI (an FCGX_Request) and plain
 * CGI (environ, stdin, stdout): only the pw_io functions differ.
 */
#ifndef PW_CORE_H
#define PW_CORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "pwserver.h"

/* Where a request comes from and its answer goes to. */
typedef struct pw_io pw_io;
struct pw_io {
	/* A CGI/FastCGI parameter ("PATH_INFO", "HTTP_ORIGIN"), or NULL. */
	const char *(*param)(pw_io *io, const char *name);
	/* Reads up to n body bytes: count, 0 at the end, -1 on error. */
	long (*read)(pw_io *io, char *buf, size_t n);
	/* Writes all of buf: 0, or -1 when the client is gone. */
	int (*write)(pw_io *io, const char *buf, size_t n);
	int (*flush)(pw_io *io);
	void *ctx;               /* the FCGX_Request, or NULL for CGI */
};

/* A project snapshot, shared by the requests that use it (refcounted). */
typedef struct pw_snap {
	pw_project *project;
	struct api_dags *dags;   /* the DAGs' fixed JSON text (dags.c) */
	long long fingerprint;
	int refs;                /* under the server's mutex */
} pw_snap;

#define PW_MAX_PARAMS 8

struct pw_req {
	/* given by the server */
	pw_io *io;
	pw_snap *snap;
	pw_store **store;        /* the thread's connection slot (opened lazily) */
	const atomic_int *stopping;
	atomic_int *held;        /* the server's held threads (NULL: CGI) */
	int held_max;            /* at most this many (threads - 1) */
	bool holding;            /* this request holds one (pw_req_hold) */
	bool trusted;            /* in-process (pw_server_call): roles not checked */
	size_t max_body;
	long long t0_ms;
	/* the request, parsed once */
	const char *method;
	char *path;              /* below the mount prefix */
	const pw_route *route;
	size_t n_params;
	char *param_name[PW_MAX_PARAMS];
	char *param_value[PW_MAX_PARAMS];
	pw_strv query_keys;      /* decoded, in order; values at the same index */
	pw_strv query_values;
	char *body;              /* NUL-terminated; NULL until read */
	size_t body_len;
	json_object *json;       /* the parsed body, owned by the request */
	/* the answer */
	int status;              /* 0 until a reply started */
	pw_strv headers;         /* name, value, name, value, ... */
	bool started;
	bool streaming;
	bool client_gone;
	bool stdin_taken;        /* pw_stream_quiet read stdin's end off the socket */
	bool head_only;          /* HEAD: the head is written, the body dropped */
	bool head_sent;
};

/* request.c */

/*
 * Fills method, path and query from the parameters of io. Returns 0, or
 * an HTTP status (400 for malformed percent-encoding in the query, 500 when
 * out of memory) that the caller answers with *why (static text).
 */
int pw_req_parse(pw_req *req, const char **why);
/*
 * Sets the :name parameters of the matched route from the path. Returns
 * 0, 1 when a segment does not decode (the path then matches nothing), or
 * -1 when out of memory.
 */
int pw_req_set_params(pw_req *req, const pw_route *route);
/*
 * Reads the body (CONTENT_LENGTH bytes, at most max_body). On a problem
 * answers the request (400, 413, 500) and returns -1.
 */
int pw_req_read_body(pw_req *req);
/* Reads and discards the rest of the body (FastCGI only; request.c). */
void pw_req_drain_body(pw_req *req);
/* Frees everything the request holds (not the snapshot: the server's). */
void pw_req_release(pw_req *req);

/*
 * The request log (accesslog.c). pw_log_start starts the flusher thread
 * that batches lines (0, or -1: lines are then written one by one);
 * pw_log_stop writes what is left and joins it. pw_log_line logs n bytes
 * of line (newline included); urgent writes it, and all before it, at once.
 */
int pw_log_start(void);
void pw_log_stop(void);
void pw_log_line(const char *line, size_t n, bool urgent);

/*
 * Serves one request from io as a worker thread does, with the worker's
 * database connection *store and snapshot *snap (NULL at first; give them
 * back with pw_server_io_done). For in-process drivers such as the request
 * fuzzer (tests/fuzz/fuzz_request.c); server.c.
 */
void pw_server_serve_io(pw_server *srv, pw_io *io, pw_store **store, pw_snap **snap);
void pw_server_io_done(pw_server *srv, pw_store **store, pw_snap **snap);

/* "GET /api/v1/dags" style: does the pattern match path? (request.c) */
bool pw_route_matches(const char *pattern, const char *path);

#endif
