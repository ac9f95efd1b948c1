/*
 * server.c - the server: the project cache, the route tables, roles and
 * CORS, one request from accept to log line, and the accept loop (threads
 * on a FastCGI socket, or one CGI request).
 *
 * The project is held as a refcounted snapshot. Each thread keeps a
 * reference to the one it served its last request with, and a request
 * uses it while it is still the current one (one atomic load, no lock).
 * A request that may write (any method but GET, HEAD and OPTIONS), and a
 * read at most every RECHECK_MS, first compares the project files'
 * fingerprint with the snapshot's (a write: in a check begun after it
 * arrived, shared by the writes waiting for it) and, when they differ, loads the
 * project again and swaps the new snapshot in: a DAG file written just
 * before its trigger is seen by the trigger. Requests that still hold the old one finish
 * with it; each thread lets go of it at its next request (or its end); the
 * last one frees it.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fastcgi.h>
#include <fcgiapp.h>
#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "core.h"

/* Threads block in accept when idle; streams and waits each hold one. */
#define DEFAULT_THREADS 16
#define MAX_THREADS 256
#define DEFAULT_MAX_BODY (1024 * 1024)
/*
 * Connections the kernel queues for the threads (capped by
 * net.core.somaxconn, 4096 by default since Linux 5.4). A socket the web
 * server made and passed on fd 0 gets it too (widen_backlog): lighttpd
 * listens with 1024, and a flood of stream attempts would overflow that
 * while one thread answers their 503s, so that lighttpd answered its own
 * HTML 503 (docs/hosting.md, "Floods").
 */
#define BACKLOG 4096
/*
 * Seconds a FastCGI connection may stay silent while a thread reads it
 * (PIPEWRIGHT_FCGI_READ_TIMEOUT_SECONDS overrides): a client that connects
 * and sends nothing, or stops half-way, frees its thread after that.
 */
#define READ_TIMEOUT_S 30
#define RECHECK_MS 100
#define MAX_METHODS 8
#define CACHE_KIB 512        /* SQLite page cache per thread's connection */
#define PREFLIGHT_HEADERS "Accept, Authorization, Content-Type, Last-Event-ID"

typedef struct route_table {
	const pw_route *v;
	size_t n;
} route_table;

struct pw_server {
	/* the project's location, as given */
	char *path, *env, *conf_source;
	pthread_mutex_t lock;     /* guards swapping snap, every refs, fingerprint */
	_Atomic(pw_snap *) snap;  /* read without the lock; stored under it */
	atomic_llong checked_ms;
	/* writes' checks, under lock: see write_check */
	pthread_cond_t check_ended;
	unsigned long long checks_started, checks_done;   /* numbered from 1 */
	bool checking;
	route_table *tables;
	size_t n_tables;
	size_t max_body;
	atomic_int stopping;
	atomic_int failed;        /* a worker could not accept any more */
	atomic_int held;          /* threads held by long requests (pw_req_hold) */
	int held_max;             /* threads - 1 */
	int listen_fd;
};

/* One accepting thread: its FastCGI request, SQLite connection, snapshot. */
typedef struct worker {
	pw_server *srv;
	pthread_t tid;
	FCGX_Request fr;
	pw_store *store;
	pw_snap *snap;            /* the thread's reference, kept between requests */
} worker;

static const char *const role_names[] = {
	[PW_ROLE_PUBLIC] = "public",
	[PW_ROLE_READ] = "read",
	[PW_ROLE_OPERATE] = "operate",
	[PW_ROLE_ADMIN] = "admin",
};

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the project cache ----------------------------------------------------- */

static void snap_free(pw_snap *s)
{
	if (!s)
		return;
	api_dags_free(s->dags);
	pw_project_free(s->project);
	free(s);
}

/* Loads the project into a new snapshot (refs 1). NULL with *err. */
static pw_snap *snap_load(const pw_server *srv, long long fingerprint, char **err)
{
	const pw_project_opts opts = {srv->path, srv->env, srv->conf_source};
	pw_snap *s = calloc(1, sizeof *s);
	if (!s) {
		*err = strdup("out of memory");
		return NULL;
	}
	if (pw_project_load(&opts, &s->project, err) != PW_OK) {
		free(s);
		return NULL;
	}
	s->dags = api_dags_new(s->project);
	if (!s->dags) {
		snap_free(s);
		*err = strdup("out of memory");
		return NULL;
	}
	s->fingerprint = fingerprint ? fingerprint : pw_project_fingerprint(s->project);
	s->refs = 1;
	return s;
}

static void snap_release(pw_server *srv, pw_snap *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&srv->lock);
	int left = --s->refs;
	pthread_mutex_unlock(&srv->lock);
	if (left == 0)
		snap_free(s);
}

/*
 * Compares the files' fingerprint with the current snapshot's and swaps in
 * a new snapshot when they differ; a project that no longer loads keeps
 * the old snapshot (logged once per change of the files).
 */
static void snap_check(pw_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	pw_snap *s = atomic_load(&srv->snap);
	s->refs++;
	long long seen = s->fingerprint;
	pthread_mutex_unlock(&srv->lock);

	long long fp = pw_project_fingerprint(s->project);
	if (fp == seen) {
		snap_release(srv, s);
		return;
	}
	char *err = NULL;
	pw_snap *fresh = snap_load(srv, fp, &err);   /* refs 1: the server's */
	pw_snap *old = NULL;
	pthread_mutex_lock(&srv->lock);
	if (fresh) {
		old = atomic_load(&srv->snap);
		atomic_store(&srv->snap, fresh);
	} else if (atomic_load(&srv->snap) == s) {
		s->fingerprint = fp;   /* do not retry until the files change again */
	}
	pthread_mutex_unlock(&srv->lock);
	if (fresh) {
		fprintf(stderr, "pipewright.fcgi: project %s reloaded\n", fresh->project->root);
		snap_release(srv, old);
	} else {
		fprintf(stderr, "pipewright.fcgi: project not reloaded, keeping the last one: %s\n",
			err ? err : "out of memory");
		free(err);
	}
	snap_release(srv, s);
}

/*
 * The check a write needs: one that began after the write arrived, so
 * that a DAG file written before it is seen. Concurrent writes share one:
 * a write arriving while a check runs waits for it to end and for the
 * next one (begun after it arrived), which it runs itself unless another
 * waiting write does; under 64 triggering clients that is one look at the
 * project's files for a handful of writes instead of one each (about 25
 * system calls each: bench/README.md).
 */
static void write_check(pw_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	unsigned long long want = srv->checks_started + 1;   /* one that begins from now */
	while (srv->checks_done < want) {
		if (srv->checking) {
			pthread_cond_wait(&srv->check_ended, &srv->lock);
			continue;
		}
		srv->checking = true;
		unsigned long long mine = ++srv->checks_started;
		pthread_mutex_unlock(&srv->lock);
		snap_check(srv);
		pthread_mutex_lock(&srv->lock);
		srv->checking = false;
		srv->checks_done = mine;
		pthread_cond_broadcast(&srv->check_ended);
	}
	pthread_mutex_unlock(&srv->lock);
}

/*
 * The current snapshot for a request of the thread whose reference is
 * *held (NULL at first): checks the files first when `writes`
 * (write_check), or when
 * the last check is RECHECK_MS old; takes the lock only when the current
 * snapshot is not the one held, and then moves *held to it.
 */
static pw_snap *snap_acquire(pw_server *srv, pw_snap **held, bool writes)
{
	long long now = mono_ms(), last = atomic_load(&srv->checked_ms);
	if (writes)
		write_check(srv);
	else if (now - last >= RECHECK_MS &&
		 atomic_compare_exchange_strong(&srv->checked_ms, &last, now))
		snap_check(srv);
	pw_snap *s = atomic_load(&srv->snap);
	if (s == *held)
		return s;   /* alive: the thread holds a reference */
	pthread_mutex_lock(&srv->lock);
	s = atomic_load(&srv->snap);
	s->refs++;
	pthread_mutex_unlock(&srv->lock);
	snap_release(srv, *held);
	*held = s;
	return s;
}

/* --- the server object --------------------------------------------------------------- */

static int dup_opt(char **slot, const char *value)
{
	*slot = NULL;
	if (!value)
		return 0;
	*slot = strdup(value);
	return *slot ? 0 : -1;
}

pw_server *pw_server_new(const pw_project_opts *opts, char **err)
{
	static const pw_project_opts none = {0};
	pw_server *srv = calloc(1, sizeof *srv);
	*err = NULL;
	pw_umask_private();   /* a database it creates is the service's only */
	if (!opts)
		opts = &none;
	if (!srv || pthread_mutex_init(&srv->lock, NULL) != 0) {
		free(srv);
		*err = strdup("out of memory");
		return NULL;
	}
	if (pthread_cond_init(&srv->check_ended, NULL) != 0) {
		pthread_mutex_destroy(&srv->lock);
		free(srv);
		*err = strdup("out of memory");
		return NULL;
	}
	srv->listen_fd = -1;
	srv->max_body = DEFAULT_MAX_BODY;
	atomic_init(&srv->checked_ms, mono_ms());
	if (dup_opt(&srv->path, opts->path) != 0 || dup_opt(&srv->env, opts->env) != 0 ||
	    dup_opt(&srv->conf_source, opts->conf_source) != 0)
		goto fail;
	atomic_init(&srv->snap, snap_load(srv, 0, err));
	if (!atomic_load(&srv->snap) ||
	    pw_server_add_routes(srv, pw_builtin_routes, pw_builtin_routes_count) != 0)
		goto fail;
	return srv;
fail:
	if (!*err)
		*err = strdup("out of memory");
	pw_server_free(srv);
	return NULL;
}

int pw_server_add_routes(pw_server *srv, const pw_route *routes, size_t n)
{
	route_table *t = realloc(srv->tables, (srv->n_tables + 1) * sizeof *t);
	if (!t)
		return -1;
	srv->tables = t;
	t[srv->n_tables++] = (route_table){routes, n};
	return 0;
}

void pw_server_free(pw_server *srv)
{
	if (!srv)
		return;
	snap_free(atomic_load(&srv->snap));
	pthread_mutex_destroy(&srv->lock);
	pthread_cond_destroy(&srv->check_ended);
	free(srv->tables);
	free(srv->path);
	free(srv->env);
	free(srv->conf_source);
	free(srv);
}

/* --- CORS and roles ---------------------------------------------------------------------- */

/*
 * Adds the CORS headers every answer carries: Vary: Origin when origins
 * are configured, Access-Control-Allow-Origin when this one is allowed
 * (exactly listed, or "*" listed). Returns whether it is allowed.
 */
static bool add_cors(pw_req *req)
{
	json_object *list = NULL;
	const char *origin;
	bool allowed = false;

	json_object_object_get_ex(req->snap->project->settings, "cors_origins", &list);
	if (!json_object_is_type(list, json_type_array) || json_object_array_length(list) == 0)
		return false;
	pw_reply_header(req, "Vary", "Origin");
	origin = pw_req_header(req, "Origin");
	if (!origin || !*origin)
		return false;
	for (size_t i = 0; i < json_object_array_length(list) && !allowed; i++) {
		const char *o = json_object_get_string(json_object_array_get_idx(list, i));
		allowed = o && (strcmp(o, "*") == 0 || strcmp(o, origin) == 0);
	}
	if (allowed)
		pw_reply_header(req, "Access-Control-Allow-Origin", origin);
	return allowed;
}

/*
 * Whether REMOTE_USER may use a route that needs role `need`. With no
 * settings.roles everything is allowed (authentication is the web
 * server's business), and public routes always are. Answers 401/403
 * itself and returns -1 when not.
 */
static int check_role(pw_req *req, pw_role need)
{
	json_object *roles = NULL, *role;
	const char *user = pw_req_user(req);

	if (need == PW_ROLE_PUBLIC || req->trusted ||
	    !json_object_object_get_ex(req->snap->project->settings, "roles", &roles) ||
	    !json_object_is_type(roles, json_type_object))
		return 0;
	if (!user) {
		pw_reply_header(req, "WWW-Authenticate", "Basic realm=\"pipewright\"");
		return pw_reply_error(req, 401, "authentication required"), -1;
	}
	if (!json_object_object_get_ex(roles, user, &role) ||
	    !json_object_is_type(role, json_type_string))
		return pw_reply_error(req, 403, "user '%s' has no role", user), -1;
	const char *name = json_object_get_string(role);
	for (int r = PW_ROLE_READ; r <= PW_ROLE_ADMIN; r++) {
		if (strcmp(name, role_names[r]) != 0)
			continue;
		if (r >= (int)need)
			return 0;
		break;
	}
	pw_reply_error(req, 403, "user '%s' has role '%s'; this needs role '%s'", user, name,
		       role_names[need]);
	return -1;
}

/* --- one request ---------------------------------------------------------------------------- */

/* The methods of the routes whose pattern matches a path, table order. */
typedef struct methods {
	const char *v[MAX_METHODS];
	size_t n;
	char joined[MAX_METHODS * 8 + 16];
} methods;

static void methods_add(methods *m, const char *method)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->v[i], method) == 0)
			return;
	if (m->n < MAX_METHODS)
		m->v[m->n++] = method;
}

/* "GET, POST" (plus extra when not NULL). */
static const char *methods_join(methods *m, const char *extra)
{
	size_t len = 0;
	m->joined[0] = '\0';
	for (size_t i = 0; i <= m->n; i++) {
		const char *s = i < m->n ? m->v[i] : extra;
		if (!s)
			break;
		int w = snprintf(m->joined + len, sizeof m->joined - len, "%s%s",
				 len ? ", " : "", s);
		if (w < 0 || (size_t)w >= sizeof m->joined - len)
			break;
		len += (size_t)w;
	}
	return m->joined;
}

/* The route for method and path, or NULL; m gets the path's methods. */
static const pw_route *find_route(const pw_server *srv, const char *method, const char *path,
				  methods *m)
{
	const pw_route *found = NULL;
	for (size_t t = 0; t < srv->n_tables; t++) {
		for (size_t i = 0; i < srv->tables[t].n; i++) {
			const pw_route *r = &srv->tables[t].v[i];
			if (!pw_route_matches(r->pattern, path))
				continue;
			methods_add(m, r->method);
			if (!found && strcmp(r->method, method) == 0)
				found = r;
		}
	}
	return found;
}

/* Answers an OPTIONS request on a known path (CORS preflight). */
static void preflight(pw_req *req, methods *m, bool origin_ok)
{
	pw_reply_header(req, "Allow", methods_join(m, "OPTIONS"));
	if (origin_ok) {
		pw_reply_header(req, "Access-Control-Allow-Methods", methods_join(m, "OPTIONS"));
		pw_reply_header(req, "Access-Control-Allow-Headers", PREFLIGHT_HEADERS);
		pw_reply_header(req, "Access-Control-Max-Age", "600");
	}
	pw_reply_empty(req, 204);
}

/*
 * Whether a route answers without the database (health checks report a
 * missing one themselves); every other handler may rely on pw_req_store.
 */
static bool store_optional(const pw_route *route)
{
	static const char *const patterns[] = {
		"/health", "/snapshot", "/api/v1/health", "/api/v1/version",
		"/api/v1/import-errors",
	};
	for (size_t i = 0; i < sizeof patterns / sizeof *patterns; i++)
		if (strcmp(route->pattern, patterns[i]) == 0)
			return true;
	return false;
}

/*
 * The target of the web server's error handler (lighttpd's
 * server.error-handler, Apache's ErrorDocument): a refusal of the web
 * server itself (411 for a POST without Content-Length, 413, 414, ...)
 * answered with its status in the JSON envelope. REDIRECT_STATUS carries
 * the status; without one (a client calling the path) it is a 404.
 */
#define ERROR_PATH "/__pipewright/error"

static void web_server_error(pw_req *req)
{
	const char *s = req->io->param(req->io, "REDIRECT_STATUS");
	int st = s ? atoi(s) : 0;
	if (st < 400 || st > 599) {
		pw_reply_error(req, 404, "no such resource: %s", req->path);
		return;
	}
	pw_reply_error(req, st, st == 411 ? "the web server refused the request: a body needs a "
					     "Content-Length header (0 for an empty body)"
					   : "the web server refused the request (HTTP %d)", st);
}

/* Routes, checks and runs one request; every path out has answered it. */
static void dispatch(pw_server *srv, pw_req *req)
{
	const char *why = NULL;
	methods m = {0};
	int st = pw_req_parse(req, &why);
	bool origin_ok = add_cors(req);
	if (st != 0) {
		pw_reply_error(req, st, "%s", why);
		return;
	}
	if (strcmp(req->path, ERROR_PATH) == 0) {
		web_server_error(req);
		return;
	}
	/* HEAD is GET without the body (reply.c drops it). */
	req->head_only = strcmp(req->method, "HEAD") == 0;
	const pw_route *route = find_route(srv, req->head_only ? "GET" : req->method,
					   req->path, &m);
	if (m.n == 0) {
		pw_reply_error(req, 404, "no such resource: %s", req->path);
		return;
	}
	if (!route && strcmp(req->method, "OPTIONS") == 0) {
		preflight(req, &m, origin_ok);
		return;
	}
	if (!route) {
		pw_reply_header(req, "Allow", methods_join(&m, NULL));
		pw_reply_error(req, 405, "method %s is not allowed here; use %s", req->method,
			       methods_join(&m, NULL));
		return;
	}
	st = pw_req_set_params(req, route);
	if (st != 0) {
		if (st < 0)
			pw_reply_error(req, 500, "out of memory");
		else
			pw_reply_error(req, 404, "no such resource: %s", req->path);
		return;
	}
	if (check_role(req, route->role) != 0 || pw_req_read_body(req) != 0)
		return;
	pw_req_store_check(req);
	if (!store_optional(route) && !pw_req_store(req)) {
		pw_reply_unavailable(req, "5", "%s", pw_req_store_problem());
		return;
	}
	int rc = route->handler(req);
	if (!req->started) {
		fprintf(stderr, "pipewright.fcgi: %s %s: handler %s without answering\n",
			route->method, route->pattern, rc < 0 ? "failed" : "returned");
		pw_reply_error(req, 500, "internal error");
	}
}

/*
 * Copies s into buf for a log line, cut to fit size: control characters
 * and bytes that are not UTF-8 become \xNN (as lighttpd's access log
 * writes them), so the log is text whatever a client sent. Returns buf.
 */
static const char *loggable(const char *s, char *buf, size_t size)
{
	size_t o = 0, n = s ? strlen(s) : 0;
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		size_t seq = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
		bool text = c < 0x80 ? c >= 0x20 && c != 0x7f && c != '\\'
				     : seq <= n - i && pw_utf8_check(s + i, seq) == seq;
		if (text) {
			if (o + seq >= size)
				break;
			memcpy(buf + o, s + i, seq);
			o += seq;
			i += seq;
			continue;
		}
		if (o + 4 >= size)
			break;
		snprintf(buf + o, size - o, "\\x%02x", c);
		o += 4;
		i++;
	}
	buf[o] = '\0';
	return buf;
}

/* The FastCGI process's answers by status (api_http_counts); not under CGI. */
static atomic_llong http_counts[600];
static atomic_int http_counting;

int api_http_counts(long long counts[600])
{
	for (size_t i = 0; i < 600; i++)
		counts[i] = atomic_load(&http_counts[i]);
	return atomic_load(&http_counting);
}

/*
 * Serves one request from io and logs it, with the thread's connection
 * slot and snapshot reference.
 */
static void serve(pw_server *srv, pw_io *io, pw_store **store, pw_snap **held)
{
	char m[16], p[512], u[128], line[sizeof m + sizeof p + sizeof u + 96];
	pw_req req = {
		.io = io,
		.store = store,
		.stopping = &srv->stopping,
		.held = io->ctx ? &srv->held : NULL,
		.held_max = srv->held_max,
		.max_body = srv->max_body,
		.t0_ms = mono_ms(),
	};
	const char *method = io->param(io, "REQUEST_METHOD");
	bool reads = method && (!strcmp(method, "GET") || !strcmp(method, "HEAD") ||
				!strcmp(method, "OPTIONS"));
	req.snap = snap_acquire(srv, held, !reads);
	dispatch(srv, &req);
	if (io->ctx && req.status >= 100 && req.status < 600)
		atomic_fetch_add(&http_counts[req.status], 1);
	pw_req_drain_body(&req);
	if (req.holding)
		atomic_fetch_sub(&srv->held, 1);
	/*
	 * No flush here: FCGX_Finish_r sends the body with the end-of-request
	 * record in one write (streams flush as they go; CGI at exit).
	 */
	const char *user = pw_req_user(&req);
	int n = snprintf(line, sizeof line, "pipewright.fcgi: %s %s %d %lldms user=%s\n",
			 loggable(req.method, m, sizeof m), loggable(req.path, p, sizeof p),
			 req.status, mono_ms() - req.t0_ms,
			 user ? loggable(user, u, sizeof u) : "-");
	if (n > 0)
		pw_log_line(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1,
			    req.status >= 500);
	pw_req_release(&req);
}

void pw_server_serve_io(pw_server *srv, pw_io *io, pw_store **store, pw_snap **snap)
{
	serve(srv, io, store, snap);
}

void pw_server_io_done(pw_server *srv, pw_store **store, pw_snap **snap)
{
	pw_store_close(*store);
	*store = NULL;
	snap_release(srv, *snap);
	*snap = NULL;
}

bool pw_req_hold(pw_req *req)
{
	if (!req->held || req->holding)
		return true;
	if (atomic_fetch_add(req->held, 1) >= req->held_max) {
		atomic_fetch_sub(req->held, 1);
		return false;
	}
	req->holding = true;
	return true;
}

/* --- I/O: FastCGI and CGI ------------------------------------------------------------------------ */

static const char *fcgx_param(pw_io *io, const char *name)
{
	return FCGX_GetParam(name, ((FCGX_Request *)io->ctx)->envp);
}

static long fcgx_read(pw_io *io, char *buf, size_t n)
{
	int want = n > 1 << 20 ? 1 << 20 : (int)n;
	int got = FCGX_GetStr(buf, want, ((FCGX_Request *)io->ctx)->in);
	return got < 0 ? -1 : got;
}

/*
 * Writes the cnt (at most 2) buffers of iov to fd, going on after
 * partial writes and signals. 0, or -1 when the connection failed.
 */
static int write_all(int fd, const struct iovec *iov, int cnt)
{
	struct iovec v[2];
	assert(cnt <= 2);
	memcpy(v, iov, sizeof *v * (size_t)cnt);
	while (cnt > 0) {
		ssize_t w = writev(fd, v, cnt);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		for (; cnt > 0 && (size_t)w >= v[0].iov_len; cnt--, memmove(v, v + 1, sizeof *v))
			w -= (ssize_t)v[0].iov_len;
		if (cnt > 0) {
			v[0].iov_base = (char *)v[0].iov_base + w;
			v[0].iov_len -= (size_t)w;
		}
	}
	return 0;
}

#define BIG_WRITE 8192           /* libfcgi's own output buffer */
#define RECORD_MAX 65528         /* FastCGI's 65535, kept a multiple of 8 */

/*
 * A body larger than libfcgi's 8 KiB output buffer (a page of runs is
 * about 36 KiB) went out as one 8 KiB record and one write(2) each, every
 * one a wake-up of the web server. Such a body is sent as FCGI_STDOUT
 * records of up to 64 KiB written straight to the connection, after what
 * libfcgi holds (so the order stays); libfcgi still ends the stream at
 * FCGX_Finish_r. 0, or -1 when the connection failed.
 */
static int fcgx_write_records(FCGX_Request *fr, const char *buf, size_t n)
{
	if (FCGX_FFlush(fr->out) != 0)
		return -1;
	while (n > 0) {
		size_t len = n > RECORD_MAX ? RECORD_MAX : n;
		FCGI_Header h = {
			.version = FCGI_VERSION_1, .type = FCGI_STDOUT,
			.requestIdB1 = (unsigned char)(fr->requestId >> 8),
			.requestIdB0 = (unsigned char)fr->requestId,
			.contentLengthB1 = (unsigned char)(len >> 8),
			.contentLengthB0 = (unsigned char)len,
		};
		struct iovec v[2] = {{&h, sizeof h}, {(char *)buf, len}};
		if (write_all(fr->ipcFd, v, 2) != 0)
			return -1;
		buf += len;
		n -= len;
	}
	return 0;
}

static int fcgx_write(pw_io *io, const char *buf, size_t n)
{
	FCGX_Request *fr = io->ctx;
	FCGX_Stream *out = fr->out;
	if (n > BIG_WRITE && fr->ipcFd >= 0)
		return fcgx_write_records(fr, buf, n);
	while (n > 0) {
		int chunk = n > 1 << 20 ? 1 << 20 : (int)n;
		if (FCGX_PutStr(buf, chunk, out) != chunk)
			return -1;
		buf += chunk;
		n -= (size_t)chunk;
	}
	return 0;
}

static int fcgx_flush(pw_io *io)
{
	return FCGX_FFlush(((FCGX_Request *)io->ctx)->out) == 0 ? 0 : -1;
}

static const char *cgi_param(pw_io *io, const char *name)
{
	(void)io;
	return getenv(name);
}

static long cgi_read(pw_io *io, char *buf, size_t n)
{
	(void)io;
	size_t got = fread(buf, 1, n, stdin);
	return got == 0 && ferror(stdin) ? -1 : (long)got;
}

static int cgi_write(pw_io *io, const char *buf, size_t n)
{
	(void)io;
	return fwrite(buf, 1, n, stdout) == n ? 0 : -1;
}

static int cgi_flush(pw_io *io)
{
	(void)io;
	return fflush(stdout) == 0 ? 0 : -1;
}

/* --- in-process calls (pw_server_call) --------------------------------------------------------- */

typedef struct call_io {
	pw_io io;
	const pw_call *call;
	char *env[16];            /* NAME=value, NULL-terminated */
	size_t n_env;
	size_t read_at;
	char head[4096];          /* the CGI head until its blank line */
	size_t head_len;
	bool head_done;
	int status;
	char content_type[128];
	bool refused;             /* the sink wanted no more */
} call_io;

static const char *call_param(pw_io *io, const char *name)
{
	call_io *c = (call_io *)io;
	size_t n = strlen(name);
	for (size_t i = 0; i < c->n_env; i++)
		if (strncmp(c->env[i], name, n) == 0 && c->env[i][n] == '=')
			return c->env[i] + n + 1;
	return NULL;
}

static long call_read(pw_io *io, char *buf, size_t n)
{
	call_io *c = (call_io *)io;
	size_t left = c->call->body ? c->call->body_len - c->read_at : 0;
	if (n > left)
		n = left;
	if (n)
		memcpy(buf, c->call->body + c->read_at, n);
	c->read_at += n;
	return (long)n;
}

/* Takes "Status:" and "Content-Type:" from the finished head. */
static void call_parse_head(call_io *c)
{
	for (char *line = c->head; line && *line; ) {
		char *end = strstr(line, "\r\n");
		if (end)
			*end = '\0';
		if (strncasecmp(line, "Status:", 7) == 0)
			c->status = atoi(line + 7);
		else if (strncasecmp(line, "Content-Type:", 13) == 0)
			snprintf(c->content_type, sizeof c->content_type, "%s",
				 line + 13 + strspn(line + 13, " "));
		line = end ? end + 2 : NULL;
	}
}

static int call_write(pw_io *io, const char *buf, size_t n)
{
	call_io *c = (call_io *)io;
	while (!c->head_done && n > 0) {
		if (c->head_len + 1 >= sizeof c->head)
			return -1;
		c->head[c->head_len++] = *buf++;
		n--;
		c->head[c->head_len] = '\0';
		if (c->head_len >= 4 && strcmp(c->head + c->head_len - 4, "\r\n\r\n") == 0) {
			c->head_done = true;
			call_parse_head(c);
		}
	}
	if (n == 0 || c->refused)
		return c->refused ? -1 : 0;
	if (c->call->sink && c->call->sink(c->call->ctx, c->content_type, buf, n) != 0) {
		c->refused = true;
		return -1;
	}
	return 0;
}

static int call_flush(pw_io *io)
{
	return ((call_io *)io)->refused ? -1 : 0;
}

/* Adds NAME=value to the call's environment; 0 or -1. */
static int call_env(call_io *c, const char *name, const char *value)
{
	if (!value)
		return 0;
	if (c->n_env + 1 >= sizeof c->env / sizeof *c->env ||
	    !(c->env[c->n_env] = pw_asprintf("%s=%s", name, value)))
		return -1;
	c->n_env++;
	return 0;
}

int pw_server_call(pw_server *srv, const pw_call *call, pw_store **store)
{
	call_io c = {.io = {call_param, call_read, call_write, call_flush, NULL}, .call = call};
	char len[32], *path = strdup(call->path), *query = path ? strchr(path, '?') : NULL;
	pw_snap *held = NULL;
	int rc = -1;
	if (!path)
		return -1;
	if (query)
		*query++ = '\0';
	snprintf(len, sizeof len, "%zu", call->body ? call->body_len : 0);
	if (call_env(&c, "REQUEST_METHOD", call->method) || call_env(&c, "PATH_INFO", path) ||
	    call_env(&c, "QUERY_STRING", query ? query : "") ||
	    call_env(&c, "HTTP_ACCEPT", call->accept) || call_env(&c, "REMOTE_USER", call->user) ||
	    call_env(&c, "CONTENT_LENGTH", call->body ? len : NULL) ||
	    call_env(&c, "CONTENT_TYPE", call->body ? "application/json" : NULL))
		goto out;
	pw_req req = {
		.io = &c.io,
		.store = store,
		.stopping = &srv->stopping,
		.held = NULL,
		.trusted = true,
		.max_body = srv->max_body ? srv->max_body : DEFAULT_MAX_BODY,
		.t0_ms = mono_ms(),
	};
	req.snap = snap_acquire(srv, &held, true);
	dispatch(srv, &req);
	pw_req_release(&req);
	snap_release(srv, held);
	rc = c.status ? c.status : req.status;
out:
	for (size_t i = 0; i < c.n_env; i++)
		free(c.env[i]);
	free(path);
	return rc;
}

/* --- the accept loop ---------------------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
	worker *w = arg;
	pw_server *srv = w->srv;
	pw_io io = {fcgx_param, fcgx_read, fcgx_write, fcgx_flush, &w->fr};

	while (!atomic_load(&srv->stopping)) {
		errno = 0;
		if (FCGX_Accept_r(&w->fr) < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				/* an idle accept() or a silent client passed READ_TIMEOUT_S */
				FCGX_Finish_r(&w->fr);
				continue;
			}
			if (!atomic_load(&srv->stopping)) {
				fprintf(stderr, "pipewright.fcgi: accept failed: %s\n",
					strerror(errno));
				atomic_store(&srv->failed, 1);
				kill(getpid(), SIGTERM);   /* wakes the main thread */
			}
			break;
		}
		serve(srv, &io, &w->store, &w->snap);
		FCGX_Finish_r(&w->fr);
	}
	FCGX_Finish_r(&w->fr);
	pw_store_close(w->store);
	w->store = NULL;
	snap_release(srv, w->snap);
	w->snap = NULL;
	return NULL;
}

/*
 * Gives the listening socket a receive timeout, which Linux copies to every
 * connection accept() returns: libfcgi's blocking reads of a request (in
 * FCGX_Accept_r and the body) then fail after that many seconds of silence
 * instead of holding a thread for ever. accept() itself times out too,
 * with EAGAIN, which the workers take as "accept again".
 */
static void set_read_timeout(int fd)
{
	const char *env = getenv("PIPEWRIGHT_FCGI_READ_TIMEOUT_SECONDS");
	long s = env && *env ? strtol(env, NULL, 10) : READ_TIMEOUT_S;
	struct timeval tv = {.tv_sec = s > 0 && s < 86400 ? s : READ_TIMEOUT_S};
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 && errno != ENOTSOCK)
		fprintf(stderr, "pipewright.fcgi: warning: no read timeout on the socket: %s\n",
			strerror(errno));
}

/*
 * Raises the backlog of a listening socket the web server passed on fd 0
 * to BACKLOG (listen() again on a listening socket only changes it).
 * Anything but a listening stream socket is left as it is.
 */
static void widen_backlog(int fd)
{
	int listening = 0;
	socklen_t len = sizeof listening;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening &&
	    listen(fd, BACKLOG) != 0)
		fprintf(stderr, "pipewright.fcgi: warning: cannot widen the socket's backlog: %s\n",
			strerror(errno));
}

/* Binds and listens on a new socket; -1 with a message on failure. */
static int listen_on(int domain, const struct sockaddr *sa, socklen_t len, const char *spec)
{
	int one = 1;
	int fd = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (domain == AF_INET && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
		goto fail;
	if (domain == AF_UNIX) {
		mode_t old = umask(0117);   /* created 0660, never wider */
		int rc = bind(fd, sa, len);
		umask(old);
		if (rc != 0 || chmod(spec, 0660) != 0)
			goto fail;
	} else if (bind(fd, sa, len) != 0) {
		goto fail;
	}
	if (listen(fd, BACKLOG) != 0)
		goto fail;
	return fd;
fail:
	fprintf(stderr, "pipewright.fcgi: cannot listen on %s: %s\n", spec, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/*
 * Opens the listening socket of spec: "127.0.0.1:PORT", ":PORT" or
 * "localhost:PORT" (loopback only), or a unix socket path (mode 0660; a
 * stale socket at the path is replaced, any other file is not). Done here
 * rather than by FCGX_OpenSocket, which exits the process when bind fails.
 * Returns the descriptor, or -1 with a message on stderr.
 */
static int open_socket(const char *spec)
{
	const char *colon = strrchr(spec, ':');
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	struct stat st;

	if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
		struct sockaddr_in in = {.sin_family = AF_INET};
		char host[64];
		long port = strtol(colon + 1, NULL, 10);
		size_t hl = (size_t)(colon - spec);
		if (hl >= sizeof host || port < 1 || port > 65535)
			goto bad_tcp;
		memcpy(host, spec, hl);
		host[hl] = '\0';
		if (!*host || strcmp(host, "localhost") == 0)
			strcpy(host, "127.0.0.1");
		if (inet_pton(AF_INET, host, &in.sin_addr) != 1 ||
		    (ntohl(in.sin_addr.s_addr) >> 24) != 127)
			goto bad_tcp;
		in.sin_port = htons((uint16_t)port);
		if (!getenv("FCGI_WEB_SERVER_ADDRS"))
			fprintf(stderr, "pipewright.fcgi: WARNING: listening on TCP %s: every local "
					"user can connect and claim any REMOTE_USER. Prefer a unix "
					"socket (--socket PATH, mode 0660), or set "
					"FCGI_WEB_SERVER_ADDRS to the web server's address\n", spec);
		return listen_on(AF_INET, (struct sockaddr *)&in, sizeof in, spec);
	}
	if (strchr(spec, ':') || !*spec || strlen(spec) >= sizeof un.sun_path) {
		fprintf(stderr, "pipewright.fcgi: --socket %s: neither a unix socket path "
				"(no ':', under %zu bytes) nor 127.0.0.1:PORT\n",
			spec, sizeof un.sun_path);
		return -1;
	}
	strcpy(un.sun_path, spec);
	if (lstat(spec, &st) == 0 && S_ISSOCK(st.st_mode)) {
		/* stale unless somebody still listens on it */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool live = probe >= 0 && connect(probe, (struct sockaddr *)&un, sizeof un) == 0;
		if (probe >= 0)
			close(probe);
		if (live) {
			fprintf(stderr, "pipewright.fcgi: cannot listen on %s: another "
					"server is listening there\n", spec);
			return -1;
		}
		unlink(spec);
	}
	return listen_on(AF_UNIX, (struct sockaddr *)&un, sizeof un, spec);
bad_tcp:
	fprintf(stderr, "pipewright.fcgi: --socket %s: a TCP socket must be "
			"127.0.0.1:PORT (loopback only)\n", spec);
	return -1;
}

/*
 * Answers the one request of a CGI process. libfcgi's set-up caught
 * SIGTERM for its own graceful stop; a web server giving up on a CGI
 * request (a client that left, a timeout) sends SIGTERM and expects an
 * end, also of a `/run` waiting on its run (the run goes on).
 */
static int run_cgi(pw_server *srv)
{
	pw_io io = {cgi_param, cgi_read, cgi_write, cgi_flush, NULL};
	pw_store *store = NULL;
	pw_snap *snap = NULL;
	signal(SIGTERM, SIG_DFL);
	serve(srv, &io, &store, &snap);
	dbwatch_stop();
	cgi_flush(&io);
	pw_store_close(store);
	snap_release(srv, snap);
	return 0;
}

int pw_server_run(pw_server *srv, const pw_server_config *cfg)
{
	static const pw_server_config defaults = {0};
	sigset_t stop, old;
	int sig, rc = 0;
	size_t started = 0;

	if (!cfg)
		cfg = &defaults;
	srv->max_body = cfg->max_body ? cfg->max_body : DEFAULT_MAX_BODY;
	size_t n = cfg->threads > 0 ? (size_t)cfg->threads : DEFAULT_THREADS;
	if (n > MAX_THREADS)
		n = MAX_THREADS;
	srv->held_max = (int)n - 1;
	signal(SIGPIPE, SIG_IGN);   /* a gone client is an error return, not death */
	if (!cfg->socket && FCGX_IsCGI())
		return run_cgi(srv);
	if (FCGX_Init() != 0) {
		fprintf(stderr, "pipewright.fcgi: FCGX_Init failed\n");
		return -1;
	}
	pw_store_set_cache_kib(CACHE_KIB);   /* n connections: bench/README.md */
	pw_store_set_write_queue(true);      /* n writing threads: src/txn.h */
	srv->listen_fd = cfg->socket ? open_socket(cfg->socket) : 0;
	if (srv->listen_fd < 0)
		return -1;
	atomic_store(&http_counting, 1);
	set_read_timeout(srv->listen_fd);
	if (!cfg->socket)
		widen_backlog(srv->listen_fd);
	worker *w = calloc(n, sizeof *w);
	if (!w) {
		rc = -1;
		goto out;
	}
	/* Workers inherit a mask that keeps the stop signals for sigwait below. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGUSR1);   /* the graceful stop of mod_fastcgi */
	pthread_sigmask(SIG_BLOCK, &stop, &old);
	(void)pw_log_start();   /* without the flusher, lines go out one by one */
	for (; started < n; started++) {
		w[started].srv = srv;
		if (FCGX_InitRequest(&w[started].fr, srv->listen_fd, 0) != 0 ||
		    pthread_create(&w[started].tid, NULL, worker_main, &w[started]) != 0) {
			fprintf(stderr, "pipewright.fcgi: cannot start thread %zu\n", started + 1);
			break;
		}
	}
	if (started > 0)
		sigwait(&stop, &sig);
	else
		rc = -1;
	atomic_store(&srv->stopping, 1);
	dbwatch_stop();   /* wakes the streams, which see `stopping` */
	FCGX_ShutdownPending();
	shutdown(srv->listen_fd, SHUT_RDWR);   /* wakes the threads in accept() */
	for (size_t i = 0; i < started; i++)
		pthread_join(w[i].tid, NULL);
	pw_store_writer_close();
	pw_log_stop();
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (atomic_load(&srv->failed))
		rc = -1;
	free(w);
out:
	if (cfg->socket) {
		close(srv->listen_fd);
		if (!strchr(cfg->socket, ':'))
			unlink(cfg->socket);
	}
	srv->listen_fd = -1;
	return rc;
}
