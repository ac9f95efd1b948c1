/*
 * http.h - the API's integration tests through a real web server: a
 * lighttpd started on 127.0.0.1 and a free port with a generated config
 * (pipewright.fcgi behind mod_fastcgi), and libcurl requests with envelope
 * assertions (DESIGN.md section 5).
 *
 * Like harness.h, every helper fails the test (cmocka's fail_msg) instead of
 * returning an error. A server is stopped by pid (SIGTERM, bounded wait,
 * SIGKILL), together with the pipewright.fcgi it spawned; ht_dump_logs
 * prints lighttpd's error log for a failed test.
 */
#ifndef PW_HTTP_H
#define PW_HTTP_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "testhelp.h"

/* How a server is set up. Zero-initialised = "/" mount, no auth. */
typedef struct ht_opts {
	/* Also mount pipewright under this prefix (e.g. "/pipewright"). */
	const char *prefix;
	/*
	 * Basic auth (mod_auth, plain backend) over every path: lines of
	 * "user:password". NULL: no authentication.
	 */
	const char *users;
	/*
	 * Let control characters (%00) in URLs through to pipewright instead
	 * of lighttpd answering 400 itself (server.http-parseopts).
	 */
	bool raw_urls;
	/* pipewright.fcgi --threads; 0: its default. */
	int threads;
} ht_opts;

typedef struct ht_server {
	pid_t pid;         /* lighttpd */
	int port;
	char *dir;         /* scratch folder: config, logs, sockets */
	char *errorlog;
	char *project;
	char base[64];     /* "http://127.0.0.1:PORT" */
	const char *user;  /* credentials sent by ht_req, or NULL */
	const char *password;
} ht_server;

/* Starts lighttpd for the project (absolute path). Waits until it answers. */
ht_server *ht_start(const char *project, const ht_opts *opts);
/* Stops lighttpd and its pipewright.fcgi, removes the folder. NULL is fine. */
void ht_stop(ht_server *s);
/* Prints lighttpd's error log to stderr. */
void ht_dump_logs(ht_server *s);
/* The pid of the pipewright.fcgi spawned by lighttpd (0 when none). */
pid_t ht_fcgi_pid(ht_server *s);

/* The builddir (PW_BUILDDIR, else ".") and srcdir (PW_SRCDIR, else "."). */
const char *ht_builddir(void);
const char *ht_srcdir(void);

/* --- requests ------------------------------------------------------------- */

typedef struct ht_resp {
	long status;
	char *headers;     /* the raw header block of the final response */
	char *body;        /* NUL-terminated (body_len bytes before the NUL) */
	size_t body_len;
	json_object *json; /* the parsed body, or NULL when it is not JSON */
	char req[512];     /* "METHOD path" for messages */
} ht_resp;

/*
 * One request. path is appended to the server's base URL as is (already
 * URL-encoded). headers: NULL-terminated "Name: value" lines, may be NULL.
 * body: NULL for none, else body_len bytes (body_len (size_t)-1: strlen).
 * A JSON body without an explicit Content-Type header gets
 * "Content-Type: application/json".
 */
ht_resp *ht_req(ht_server *s, const char *method, const char *path,
		const char *const *headers, const char *body, size_t body_len);
/* Shorthands: no extra headers; JSON body text (NUL-terminated) or NULL. */
ht_resp *ht_get(ht_server *s, const char *path);
ht_resp *ht_send(ht_server *s, const char *method, const char *path,
		 const char *json_body);
/*
 * ht_send for a client thread: calls nothing of cmocka's (whose failures
 * must happen on the test's thread). NULL on a transport failure, with
 * the reason in err; the caller fails the test from its own thread.
 */
ht_resp *ht_send_from_thread(ht_server *s, const char *method, const char *path,
			     const char *json_body, char *err, size_t err_size);
void ht_resp_free(ht_resp *r);

/* A response header's value (case-insensitive name), malloc'd, or NULL. */
char *ht_header(const ht_resp *r, const char *name);

/*
 * Asserts status, a JSON body and the success envelope ("data" and an
 * object "meta"). Returns data (owned by r).
 */
json_object *ht_ok(ht_resp *r, long status);
/*
 * Asserts status and the error envelope: data null, error.code the code of
 * the status (DESIGN.md section 5), error.message a string.
 */
void ht_err(ht_resp *r, long status);
/* The code of DESIGN.md section 5 for a status ("internal" otherwise). */
const char *ht_code(long status);
/* Fails the test with the request, status and body. */
void ht_fail(const ht_resp *r, const char *what);

/* --- JSON ------------------------------------------------------------------- */

/*
 * The value at a dotted path ("data.tasks.0.task_id"; numbers index
 * arrays), or NULL when absent. A JSON null is returned as NULL too; use
 * ht_has to tell them apart.
 */
json_object *ht_at(json_object *o, const char *path);
bool ht_has(json_object *o, const char *path);
/* The string at path; fails the test when it is not a string. */
const char *ht_str(json_object *o, const char *path);
/* The integer at path; fails the test when it is not an integer. */
long long ht_int(json_object *o, const char *path);
/* The number (int or double) at path. */
double ht_num(json_object *o, const char *path);
/* The boolean at path. */
bool ht_bool(json_object *o, const char *path);
/* The array at path; fails the test when it is not an array. */
json_object *ht_arr(json_object *o, const char *path);
/* The element of array arr whose string field key equals value, or NULL. */
json_object *ht_find(json_object *arr, const char *key, const char *value);
/* Whether array arr holds the string s. */
bool ht_arr_has_str(json_object *arr, const char *s);
/* The array as "a,b,c" (strings), malloc'd. */
char *ht_arr_join(json_object *arr);

/* Sleeps ms milliseconds (reaping children like hr_sleep_ms). */
void ht_sleep_ms(int ms);
/* Milliseconds of a monotonic clock. */
long long ht_now_ms(void);

/*
 * In a forked child: stdin from /dev/null, stdout and stderr appended to
 * log, and no PIPEWRIGHT_PROJECT_PATH/_ENV/_CONF_SOURCE inherited from the
 * test (a server must name its project itself). _exit(126) on failure.
 */
void ht_child_setup(const char *log);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int ht_free_port(void);
/* Whether something accepts connections on 127.0.0.1:port. */
bool ht_port_answers(int port);
/* Whether pid is gone: reaped here or elsewhere (the harness reaps too). */
bool ht_pid_gone(pid_t pid);

#endif
