/*
 * webserver.h - pipewright.fcgi behind real web servers configured from the
 * shipped templates in apache-conf/: lighttpd (mod_fastcgi), Apache httpd
 * with mod_proxy_fcgi (pipewright.fcgi on its own unix socket), with
 * mod_fcgid, and with mod_cgid (plain CGI).
 *
 * Each server gets a scratch folder with a generated main config that
 * loads what it needs, listens on 127.0.0.1 and a free port, asks for
 * basic auth (user WS_USER, password WS_PASSWORD: REMOTE_USER reaches
 * pipewright) and includes the template filled in (@BINDIR@, @PROJECT@,
 * @PREFIX@ = WS_PREFIX, @RUNDIR@). pipewright.fcgi gets
 * PIPEWRIGHT_SSE_MAX_SECONDS=3 so that event streams end quickly (under
 * lighttpd and proxy_fcgi: unless the test's environment sets it; the
 * rest of the test's environment is passed on too).
 *
 * Running as root, Apache's children (and so pipewright.fcgi under fcgid
 * and cgid, and the proxy_fcgi backend started here) run as "nobody":
 * ws_share_project hands the project to that user, the way a real install
 * makes the project writable by www-data. Not root: everything runs as the
 * current user and ws_share_project does nothing. What Apache's user runs
 * is staged in the scratch folder (mode 0755, under $TMPDIR or /tmp): a
 * copy of pipewright.fcgi, so that a build tree in a private folder (a
 * clone in /root) works too.
 *
 * Like http.h, every helper fails the test (cmocka's fail_msg) instead of
 * returning an error. ws_stop stops the server by pid (SIGTERM, bounded
 * wait, SIGKILL), then every process it had started that is still alive.
 */
#ifndef PW_WEBSERVER_H
#define PW_WEBSERVER_H

#include <sys/types.h>

#include "http.h"

#define WS_USER "bob"
#define WS_PASSWORD "bpw"
#define WS_PREFIX "/pipewright"

typedef enum ws_kind {
	WS_LIGHTTPD,        /* apache-conf/lighttpd.conf: "/" and WS_PREFIX */
	WS_APACHE_PROXY,    /* apache-conf/apache-proxy-fcgi.conf: WS_PREFIX */
	WS_APACHE_FCGID,    /* apache-conf/apache-fcgid.conf: WS_PREFIX */
	WS_APACHE_CGI,      /* apache-conf/apache-cgi.conf: WS_PREFIX */
} ws_kind;

typedef struct ws_server {
	ws_kind kind;
	ht_server http;    /* base URL and credentials for ht_req (no pid) */
	pid_t pid;         /* lighttpd or the apache2 parent */
	pid_t backend;     /* pipewright.fcgi --socket (proxy_fcgi), else 0 */
	char *dir;         /* scratch folder: configs, logs, sockets */
	char *bin;         /* the pipewright.fcgi it runs (Apache: a copy in dir) */
} ws_server;

/* "lighttpd", "apache+proxy_fcgi", ... */
const char *ws_name(ws_kind kind);
/*
 * Makes the project folder (absolute path) and everything in it belong to
 * the user the web server runs programs as, when running as root.
 */
void ws_share_project(const char *project);
/*
 * A server for the project (absolute path), not started yet: its scratch
 * folder exists, so ws_stop can clean up even when ws_launch fails.
 */
ws_server *ws_new(ws_kind kind, const char *project);
/* Starts the server (and a proxy_fcgi backend); waits until it answers. */
void ws_launch(ws_server *s);
/* Stops it and what it started; removes the folder. NULL is fine. */
void ws_stop(ws_server *s);
/* Prints the server's logs (and the backend's) to stderr: for a failed test. */
void ws_dump_logs(ws_server *s);

/* An SSE request read to its end (the stream ends itself). */
typedef struct ws_stream {
	long status;
	char *content_type;      /* malloc'd, or NULL */
	char *body;              /* NUL-terminated */
	size_t len;
	long long first_event_ms; /* when the first "id:" line arrived; -1 none */
	long long total_ms;       /* when the stream ended */
} ws_stream;

/*
 * GET path with "Accept: text/event-stream" and, when last_event_id is
 * not NULL, "Last-Event-ID: <last_event_id>". Gives up after 30 s.
 */
ws_stream *ws_sse(ws_server *s, const char *path, const char *last_event_id);
void ws_stream_free(ws_stream *st);

#endif
