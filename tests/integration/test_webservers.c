/*
 * test_webservers.c - pipewright.fcgi behind the web server configs shipped
 * in apache-conf/, each started for real from its template
 * (webserver.h): lighttpd, Apache + mod_proxy_fcgi, Apache + mod_fcgid,
 * and Apache + mod_cgid running pipewright.fcgi as plain CGI.
 *
 * For each front end: GET /api/v1/version under the prefix, and a trigger
 * -> run -> success round trip with REMOTE_USER (basic auth in the web
 * server) recorded as triggered_by. The FastCGI front ends have a real
 * pipewright-runner beside them; the CGI one follows the shared-hosting
 * model: the test runs `pipewright-runner --once` after the trigger, as
 * cron would. The SSE tests check that an event stream comes through each
 * front end unbuffered (the first event well before the stream
 * ends itself, after PIPEWRIGHT_SSE_MAX_SECONDS=3) and resumes after
 * Last-Event-ID with nothing lost; a JSON page instead of the stream is a
 * failure. Behind
 * mod_proxy_fcgi, the stream slot of a client that left is free again once
 * Apache gives up on the client (test_apache_proxy_fcgi_gone).
 *
 * Each front end also serves the www folder of the build tree from the
 * same templates (check_static): <prefix>/ui/ and <prefix>/docs(/) and
 * <prefix>/openapi.json are the files of build/www byte for byte with
 * their MIME types, <prefix>/ redirects to <prefix>/ui/.
 *
 * One project and one server per test; the teardown stops everything the
 * test started, by pid, and prints the logs of a failed test.
 */
#include "harness.h"
#include "http.h"
#include "webserver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define W HR_WAIT_MS

static hr_project *P;
static ws_server *S;
static bool passed;

static const char DAG_HELLO[] =
	"tasks:\n"
	"  - id: hello\n"
	"    command: \"echo hello\"\n"
	"  - id: world\n"
	"    upstream: [hello]\n"
	"    command: \"echo world\"\n";

static int setup(void **state)
{
	(void)state;
	passed = false;
	S = NULL;
	/* The servers' programs inherit the environment: only a test sets these. */
	unsetenv("PIPEWRIGHT_MAX_STREAMS");
	unsetenv("PIPEWRIGHT_SSE_MAX_SECONDS");
	unsetenv("PIPEWRIGHT_SSE_KEEPALIVE_SECONDS");
	P = hr_project_new(2);
	hr_dag(P, "hello", DAG_HELLO);
	ws_share_project(P->dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (!passed)
		ws_dump_logs(S);
	ws_stop(S);
	S = NULL;
	if (passed)
		hr_pass(P);
	hr_project_free(P);
	P = NULL;
	return 0;
}

/* --- checks ------------------------------------------------------------------ */

/* GET <prefix>/api/v1/version answers the envelope with the version. */
static void check_version(const char *prefix)
{
	char path[256];
	snprintf(path, sizeof path, "%s/api/v1/version", prefix);
	ht_resp *r = ht_get(&S->http, path);
	json_object *d = ht_ok(r, 200);
	if (strcmp(ht_str(d, "api_version"), "v1") != 0 || !*ht_str(d, "version"))
		ht_fail(r, "version and api_version v1");
	ht_resp_free(r);
}

/* POST <prefix>/api/v1/dags/hello/runs as WS_USER; the run starts queued. */
static void trigger(const char *prefix, const char *run_id)
{
	char path[256], body[128];
	snprintf(path, sizeof path, "%s/api/v1/dags/hello/runs", prefix);
	snprintf(body, sizeof body, "{\"run_id\": \"%s\"}", run_id);
	/* a client's own user headers never count: REMOTE_USER does */
	static const char *const forged[] = {"Remote-User: mallory", "X-Forwarded-User: mallory",
					     "X-Remote-User: mallory", NULL};
	ht_resp *r = ht_req(&S->http, "POST", path, forged, body, (size_t)-1);
	json_object *d = ht_ok(r, 201);
	if (strcmp(ht_str(d, "run_id"), run_id) != 0)
		ht_fail(r, "the run id asked for");
	if (!ht_has(d, "triggered_by") || !ht_at(d, "triggered_by") ||
	    strcmp(ht_str(d, "triggered_by"), WS_USER) != 0)
		ht_fail(r, "triggered_by is REMOTE_USER (" WS_USER ")");
	ht_resp_free(r);
}

/* The run's state through the API (static buffer). */
static const char *api_state(const char *prefix, const char *run_id)
{
	static char state[32];
	char path[256];
	snprintf(path, sizeof path, "%s/api/v1/dags/hello/runs/%s", prefix, run_id);
	ht_resp *r = ht_get(&S->http, path);
	json_object *d = ht_ok(r, 200);
	snprintf(state, sizeof state, "%s", ht_str(d, "state"));
	if (strcmp(ht_str(d, "triggered_by"), WS_USER) != 0)
		ht_fail(r, "triggered_by is " WS_USER);
	ht_resp_free(r);
	return state;
}

/* Polls the run through the API until success (fails on another end). */
static void wait_success(const char *prefix, const char *run_id)
{
	const char *st = "";
	for (long long end = ht_now_ms() + W; ht_now_ms() < end;) {
		st = api_state(prefix, run_id);
		if (!strcmp(st, "success"))
			return;
		if (!strcmp(st, "failed") || !strcmp(st, "cancelled"))
			break;
		ht_sleep_ms(50);
	}
	hr_dump_logs(P);
	fail_msg("%s: run %s ended %s, not success", ws_name(S->kind), run_id, st);
}

/*
 * GET prefix+path answers 200, Content-Type starting with type, and the
 * bytes of www/<file> (build tree: openapi.json is generated there).
 */
static void check_file(const char *prefix, const char *path, const char *file,
		       const char *type)
{
	char url[256], disk[1024];
	snprintf(url, sizeof url, "%s%s", prefix, path);
	snprintf(disk, sizeof disk, "%s/www/%s", ht_builddir(), file);
	char *want = th_read(disk);
	assert_non_null(want);
	ht_resp *r = ht_get(&S->http, url);
	char *ct = ht_header(r, "Content-Type");
	if (r->status != 200)
		ht_fail(r, "200");
	if (!ct || strncmp(ct, type, strlen(type)) != 0)
		ht_fail(r, type);
	if (r->body_len != strlen(want) || memcmp(r->body, want, r->body_len) != 0)
		ht_fail(r, file);
	free(ct);
	ht_resp_free(r);
	free(want);
}

/* The static part of a mount (see the header comment). */
static void check_static(const char *prefix)
{
	char url[256], want[256];
	check_file(prefix, "/ui/", "ui/index.html", "text/html");
	check_file(prefix, "/docs", "docs/index.html", "text/html");
	check_file(prefix, "/docs/", "docs/index.html", "text/html");
	check_file(prefix, "/docs/vendor/swagger-ui.css", "docs/vendor/swagger-ui.css",
		   "text/css");
	check_file(prefix, "/openapi.json", "openapi.json", "application/json");

	snprintf(url, sizeof url, "%s/openapi.json", prefix);
	ht_resp *r = ht_get(&S->http, url);
	if (!r->json || !ht_at(r->json, "paths./api/v1/dags") || !ht_has(r->json, "openapi"))
		ht_fail(r, "the OpenAPI document");
	ht_resp_free(r);

	snprintf(url, sizeof url, "%s/", prefix);
	r = ht_get(&S->http, url);
	char *loc = ht_header(r, "Location");
	snprintf(want, sizeof want, "%s/ui/", prefix);
	size_t n = loc ? strlen(loc) : 0, k = strlen(want);
	if ((r->status != 301 && r->status != 302) || n < k || strcmp(loc + n - k, want) != 0)
		ht_fail(r, "a redirect to <prefix>/ui/");
	free(loc);
	ht_resp_free(r);
	/* The API beside it is unchanged. */
	check_version(prefix);
}

/* method <prefix>path body: expects status; returns the response (caller frees). */
static ht_resp *op(const char *method, const char *prefix, const char *path, const char *body,
		   long status)
{
	char full[512];
	snprintf(full, sizeof full, "%s%s", prefix, path);
	ht_resp *r = ht_send(&S->http, method, full, body);
	if (r->status != status)
		ht_fail(r, "the status of an operation");
	return r;
}

/* Waits for pipewright-runner --once to drain the queue (CGI hosting). */
static void run_once(void)
{
	static const char *const once[] = {"--once", NULL};
	int status;
	pid_t pid = hr_runner_start(P, once);
	if (!hr_runner_wait(P, pid, W, &status))
		fail_msg("pipewright-runner --once still runs after %d ms", W);
}

/*
 * The operations of section 5 on a finished run wo1 of its own (clear, mark, note,
 * ~/runs, source, graph, me, backfills, purge) through this server.
 * daemon: a runner daemon runs; else pipewright-runner --once is run.
 */
static void check_operations(const char *prefix, bool daemon)
{
	trigger(prefix, "wo1");
	if (!daemon)
		run_once();
	wait_success(prefix, "wo1");
	ht_resp *r = op("POST", prefix, "/api/v1/dags/hello/runs/wo1/clear",
			"{\"task_ids\": [\"world\"]}", 202);
	if (strcmp(json_object_get_string(json_object_array_get_idx(
			   ht_arr(ht_ok(r, 202), "task_ids"), 0)), "world") != 0)
		ht_fail(r, "task_ids [world]");
	ht_resp_free(r);
	if (!daemon)
		run_once();
	hr_ti ti = {0};
	for (long long end = ht_now_ms() + W; ht_now_ms() < end; ht_sleep_ms(50))
		if (hr_task(P, "hello", "wo1", "world", &ti) && ti.try_number == 2 &&
		    !strcmp(ti.state, "success") && !strcmp(api_state(prefix, "wo1"), "success"))
			break;
	if (ti.try_number != 2 || strcmp(api_state(prefix, "wo1"), "success") != 0)
		fail_msg("%s: world ran again (try %d, %s)", ws_name(S->kind), ti.try_number,
			 ti.state);
	ht_resp_free(op("PATCH", prefix, "/api/v1/dags/hello/runs/wo1/tasks/world",
			"{\"state\": \"success\"}", 200));
	r = op("PATCH", prefix, "/api/v1/dags/hello/runs/wo1", "{\"note\": \"ok\"}", 200);
	if (strcmp(ht_str(ht_ok(r, 200), "note"), "ok") != 0)
		ht_fail(r, "the note");
	ht_resp_free(r);
	r = op("GET", prefix, "/api/v1/dags/~/runs?dag_id=hello", NULL, 200);
	if (ht_int(ht_at(r->json, "meta"), "total") !=
	    hr_sql_int(P, -1, "SELECT count(*) FROM runs WHERE dag_id = 'hello'", ""))
		ht_fail(r, "every run of hello");
	ht_resp_free(r);
	r = op("GET", prefix, "/api/v1/dags/hello/source", NULL, 200);
	if (strcmp(r->body, DAG_HELLO) != 0)
		ht_fail(r, "the DAG file");
	ht_resp_free(r);
	r = op("GET", prefix, "/api/v1/dags/hello/graph?run_id=wo1", NULL, 200);
	if (!strstr(r->body, "id=\"task-hello\"") || !strstr(r->body, "id=\"task-world\"") ||
	    !strstr(r->body, "</svg>"))
		ht_fail(r, "an SVG with a node per task");
	ht_resp_free(r);
	r = op("GET", prefix, "/api/v1/me", NULL, 200);
	if (strcmp(ht_str(ht_ok(r, 200), "user"), WS_USER) != 0)
		ht_fail(r, "user " WS_USER);
	ht_resp_free(r);
	ht_resp_free(op("POST", prefix, "/api/v1/dags/hello/backfills",
			"{\"from\": \"2026-01-01\", \"to\": \"2026-01-02\"}", 400));
	ht_resp_free(op("DELETE", prefix, "/api/v1/dags/hello/runs/wo1?purge=true", NULL, 204));
	ht_resp_free(op("DELETE", prefix, "/api/v1/dags/hello/runs/wo1?purge=true", NULL, 404));
}

/* Version under the prefix, then trigger -> run -> success with the daemon. */
static void round_trip(ws_kind kind)
{
	hr_runner_start(P, NULL);
	S = ws_new(kind, P->dir);
	ws_launch(S);
	check_version(WS_PREFIX);
	check_static(WS_PREFIX);
	trigger(WS_PREFIX, "wr1");
	wait_success(WS_PREFIX, "wr1");
}

/* The first event id of an SSE body, or -1. */
static long long first_id(const char *body, long long after)
{
	for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		long long id;
		if (sscanf(p, "id: %lld", &id) == 1 && id > after)
			return id;
	}
	return -1;
}

/*
 * A stream of the events of a finished run through the front end: it
 * arrives before the stream ends (no buffering) and resumes after
 * Last-Event-ID with the next event.
 */
static void check_sse(ws_kind kind)
{
	round_trip(kind);
	char path[256];
	snprintf(path, sizeof path, "%s/api/v1/events?run_id=wr1", WS_PREFIX);
	ws_stream *st = ws_sse(S, path, "0");
	/* the JSON page instead of a stream (a front end that lost Accept) fails */
	if (st->status != 200 || !st->content_type ||
	    strncmp(st->content_type, "text/event-stream", 17) != 0)
		fail_msg("%s: GET %s (SSE) -> %ld, Content-Type %s: %.1000s",
			 ws_name(kind), path, st->status,
			 st->content_type ? st->content_type : "(none)", st->body);
	long long a = first_id(st->body, 0), b = a >= 0 ? first_id(st->body, a) : -1;
	if (a < 0 || b < 0 || !strstr(st->body, "event: run.state"))
		fail_msg("%s: the stream has no two events: %.2000s", ws_name(kind), st->body);
	/* The stream lasts ~3 s; buffered, everything would come at its end. */
	if (st->first_event_ms < 0 || st->first_event_ms > st->total_ms - 1000)
		fail_msg("%s: first event after %lld ms of a %lld ms stream: buffered",
			 ws_name(kind), st->first_event_ms, st->total_ms);
	ws_stream_free(st);

	char lei[32];
	snprintf(lei, sizeof lei, "%lld", a);
	st = ws_sse(S, path, lei);
	long long c = first_id(st->body, 0);
	if (c != b)
		fail_msg("%s: resuming after %lld gave %lld first, not %lld: %.2000s",
			 ws_name(kind), a, c, b, st->body);
	ws_stream_free(st);
}

/* --- tests -------------------------------------------------------------------- */

/*
 * A POST with no Content-Length at all (curl -X POST .../retry): lighttpd
 * refuses it itself (411), Apache passes it to pipewright (a retry of a
 * successful run: 409); either way in the JSON envelope.
 */
static void check_no_length(long want)
{
	static const char *const no_length[] = {"Content-Length:", NULL};
	ht_resp *r = ht_req(&S->http, "POST", WS_PREFIX "/api/v1/dags/hello/runs/wr1/retry",
			    no_length, NULL, 0);
	ht_err(r, want);
	char *ct = ht_header(r, "Content-Type");
	if (!ct || strncmp(ct, "application/json", 16) != 0)
		ht_fail(r, "the refusal is application/json");
	free(ct);
	ht_resp_free(r);
}

static void test_lighttpd(void **state)
{
	(void)state;
	round_trip(WS_LIGHTTPD);
	check_no_length(411);
	/* The "/" mount (fix-root-scriptname) serves the same API. */
	check_version("");
	check_static("");
	if (strcmp(api_state("", "wr1"), "success") != 0)
		fail_msg("wr1 through the / mount");
	trigger("", "wr2");
	wait_success("", "wr2");
	check_operations(WS_PREFIX, true);
	passed = true;
}

static void test_lighttpd_sse(void **state)
{
	(void)state;
	check_sse(WS_LIGHTTPD);
	passed = true;
}

/* How many lines of text hold needle followed by a space. */
static int count_lines_with(const char *text, const char *needle)
{
	int n = 0;
	size_t len = strlen(needle);
	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += len)
		if (p[len] == ' ')
			n++;
	return n;
}

/*
 * The request log of a FastCGI server (pipewright.fcgi --socket, its
 * stderr in backend.log) is batched: LOG_REQUESTS answers each get their
 * line exactly once, within a second, while the server keeps running.
 */
#define LOG_REQUESTS 40
static void check_request_log(void)
{
	char log[4096], path[64], needle[96];
	snprintf(log, sizeof log, "%s/backend.log", S->dir);
	for (int i = 0; i < LOG_REQUESTS; i++) {
		snprintf(path, sizeof path, WS_PREFIX "/api/v1/dags/logged%d", i);
		ht_resp *r = ht_get(&S->http, path);
		ht_err(r, 404);
		ht_resp_free(r);
	}
	long long end = ht_now_ms() + 1000;
	for (int i = 0; i < LOG_REQUESTS; i++) {
		snprintf(needle, sizeof needle, "pipewright.fcgi: GET /api/v1/dags/logged%d 404", i);
		int n;
		char *text;
		while ((n = count_lines_with(text = th_read(log), needle)) == 0 && ht_now_ms() < end) {
			free(text);
			ht_sleep_ms(20);
		}
		if (n != 1)
			fail_msg("%s: \"%s\" is in the request log %d times, not once: %.3000s",
				 ws_name(S->kind), needle, n, text);
		free(text);
	}
}

static void test_apache_proxy_fcgi(void **state)
{
	(void)state;
	round_trip(WS_APACHE_PROXY);
	check_no_length(409);
	/* The query string reaches pipewright as sent ("%65" is "e"). */
	ht_resp *r = ht_get(&S->http, WS_PREFIX "/api/v1/dags/hello/runs?state=succ%65ss&limit=5");
	json_object *d = ht_ok(r, 200);
	if (json_object_array_length(d) != 1)
		ht_fail(r, "one successful run");
	ht_resp_free(r);
	check_request_log();
	check_operations(WS_PREFIX, true);
	passed = true;
}

static void test_apache_proxy_fcgi_sse(void **state)
{
	(void)state;
	check_sse(WS_APACHE_PROXY);
	passed = true;
}

/* --- a client that leaves ------------------------------------------------------ */

#define GONE_KEEPALIVE_S 4
/* No such DAG: nothing but keepalives is ever written to these streams. */
#define GONE_PATH WS_PREFIX "/api/v1/events?dag_id=no_such_dag"

/*
 * Reads until the end of the head into buf; fails after 3 s, less than a
 * keepalive: Apache sends a stream's head only with its first bytes, so
 * this checks that a stream writes some (its opening comment) at once.
 */
static void read_head(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	long long end = ht_now_ms() + 3000;

	buf[0] = '\0';
	while (!strstr(buf, "\r\n\r\n")) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		long long left = end - ht_now_ms();
		int rc = left > 0 ? poll(&pfd, 1, (int)left) : 0;
		if (rc < 0 && errno == EINTR)
			continue;
		ssize_t n = rc > 0 && len + 1 < cap ? read(fd, buf + len, cap - 1 - len) : -1;
		if (n <= 0)
			fail_msg("%s: no answer head: %s", ws_name(S->kind), buf);
		len += (size_t)n;
		buf[len] = '\0';
	}
}

/*
 * GET GONE_PATH as a stream on a connection of its own (HTTP/1.1, basic
 * auth as WS_USER); *sent_ms is when the request went out. Returns the
 * connection when answered 200, -1 (closed) when 503; fails else.
 */
static int raw_stream(long long *sent_ms)
{
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S->http.port)};
	char req[512], head[4096];
	int st = 0, n, fd;

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	n = snprintf(req, sizeof req,
		     "GET " GONE_PATH " HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		     "Authorization: Basic Ym9iOmJwdw==\r\n" /* WS_USER:WS_PASSWORD */
		     "Accept: text/event-stream\r\n\r\n", S->http.port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&in, sizeof in) != 0 ||
	    write(fd, req, (size_t)n) != n)
		fail_msg("%s: cannot send a request: %s", ws_name(S->kind), strerror(errno));
	*sent_ms = ht_now_ms();
	read_head(fd, head, sizeof head);
	if (sscanf(head, "HTTP/1.1 %d", &st) != 1 || (st != 200 && st != 503))
		fail_msg("%s: GET %s (SSE): %s", ws_name(S->kind), GONE_PATH, head);
	if (st == 200)
		return fd;
	close(fd);
	return -1;
}

/*
 * Leaves the way a client normally does: what arrived is read, then the
 * connection is closed (a FIN; unread data would make it a reset).
 */
static void raw_leave(int fd)
{
	char buf[4096];
	while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
		;
	close(fd);
}

/*
 * Reads the stream on fd until needle arrives; fails after ms. What came
 * before is thrown away (the needle must not straddle two reads: the
 * comments come in writes of their own).
 */
static void wait_for_text(int fd, const char *needle, int ms)
{
	char buf[4096];
	long long end = ht_now_ms() + ms;

	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		long long left = end - ht_now_ms();
		int rc = left > 0 ? poll(&pfd, 1, (int)left) : 0;
		if (rc < 0 && errno == EINTR)
			continue;
		ssize_t n = rc > 0 ? read(fd, buf, sizeof buf - 1) : -1;
		if (n <= 0)
			fail_msg("%s: no \"%s\" on the stream", ws_name(S->kind), needle);
		buf[n] = '\0';
		if (strstr(buf, needle))
			return;
	}
}

/*
 * Apache + mod_proxy_fcgi over HTTP/1.1, one stream slot, streams that
 * last a minute: a client leaves right after a keepalive came. Apache
 * notices only when a write to it fails, and the first write after the
 * client left still goes out (the client's reset comes back): the short
 * probe comment pipewright writes after each keepalive is that write's
 * follower, so Apache gives up at the next keepalive; it then closes the
 * FastCGI connection (no FCGI_ABORT_REQUEST) and pipewright frees the slot
 * at once: the request that gets it goes out within one keepalive (plus
 * 2.5 s) of the client leaving, where it used to take two (and three
 * before that). Each answer's head comes at once, with the stream's
 * opening comment (read_head).
 */
static void test_apache_proxy_fcgi_gone(void **state)
{
	(void)state;
	char ka[16];
	long long sent;
	int fd;

	snprintf(ka, sizeof ka, "%d", GONE_KEEPALIVE_S);
	if (setenv("PIPEWRIGHT_MAX_STREAMS", "1", 1) != 0 ||
	    setenv("PIPEWRIGHT_SSE_MAX_SECONDS", "60", 1) != 0 ||
	    setenv("PIPEWRIGHT_SSE_KEEPALIVE_SECONDS", ka, 1) != 0)
		fail_msg("setenv: %s", strerror(errno));
	S = ws_new(WS_APACHE_PROXY, P->dir);
	ws_launch(S);

	int a = raw_stream(&sent);
	if (a < 0)
		fail_msg("%s: the first stream was refused", ws_name(S->kind));
	if ((fd = raw_stream(&sent)) >= 0)
		fail_msg("%s: a second stream beyond PIPEWRIGHT_MAX_STREAMS=1", ws_name(S->kind));
	wait_for_text(a, ": keepalive", 2 * GONE_KEEPALIVE_S * 1000);
	long long t0 = ht_now_ms(), within = GONE_KEEPALIVE_S * 1000 + 2500;
	raw_leave(a);
	while ((fd = raw_stream(&sent)) < 0) {
		if (ht_now_ms() - t0 > within)
			break;
		ht_sleep_ms(100);
	}
	if (fd < 0 || sent - t0 > within)
		fail_msg("%s: the slot of a gone client is still held %lld ms after it left",
			 ws_name(S->kind), (fd < 0 ? ht_now_ms() : sent) - t0);
	fprintf(stderr, "%s: a stream asked for %lld ms after the client left got the slot "
		"(keepalive %d s)\n", ws_name(S->kind), sent - t0, GONE_KEEPALIVE_S);
	close(fd);
	passed = true;
}

/* --- POSTs answered before their body is read ------------------------------------ */

/*
 * POST path with a body of len bytes of JSON-ish filler and content_type;
 * the answer must be want in the error envelope.
 */
static void post_early(const char *path, const char *content_type, size_t len, long want)
{
	char ct[128];
	const char *const headers[] = {ct, NULL};
	char *body = malloc(len);

	if (!body)
		fail_msg("out of memory");
	snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
	memset(body, ' ', len);
	body[0] = '{';
	body[len - 1] = '}';
	ht_resp *r = ht_req(&S->http, "POST", path, headers, body, len);
	ht_err(r, want);
	ht_resp_free(r);
	free(body);
}

/*
 * Behind Apache, POSTs with bodies larger than the socket's buffers
 * (1.5 MiB: under mod_fcgid's FcgidMaxRequestLen of the shipped config,
 * 2 MiB) answered before pipewright read them (413 for a body over the
 * 1 MiB limit, 404 for no such resource, 403 for a user whose role is read; 415
 * reads the body first) are answered, and leave no "AH00574 ... Connection
 * reset by peer" (nor any other proxy error) in Apache's error log:
 * pw_req_drain_body reads what is left before the request is finished
 * (without it, behind proxy_fcgi, Apache waits on the connection until
 * the client gives up). Leaves bob with the read role.
 */
static void check_early_answers(void)
{
	static const char *const bad[] = {"AH00574", "AH01075", "Connection reset by peer",
					  "Broken pipe"};
	char log[4096];

	for (int i = 0; i < 3; i++) {
		post_early(WS_PREFIX "/api/v1/dags/hello/runs", "application/json", 3u << 19, 413);
		post_early(WS_PREFIX "/api/v1/no/such/thing", "application/json", 3u << 19, 404);
		post_early(WS_PREFIX "/api/v1/dags/hello/runs", "text/plain", 512u << 10, 415);
	}
	/* bob may only read now (a write reloads the project first) */
	hr_settings(P, "roles: {bob: read}");
	for (int i = 0; i < 3; i++)
		post_early(WS_PREFIX "/api/v1/dags/hello/runs", "application/json", 3u << 19, 403);
	/* what Apache logs about a request is written before it answers the next */
	check_version(WS_PREFIX);
	snprintf(log, sizeof log, "%s/error.log", S->dir);
	char *text = th_read(log);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (strstr(text, bad[i]))
			fail_msg("%s: Apache's error log has \"%s\": %.3000s", ws_name(S->kind),
				 bad[i], text);
	free(text);
}

static void test_apache_proxy_fcgi_early_answers(void **state)
{
	(void)state;
	S = ws_new(WS_APACHE_PROXY, P->dir);
	ws_launch(S);
	check_early_answers();
	passed = true;
}

static void test_apache_fcgid(void **state)
{
	(void)state;
	round_trip(WS_APACHE_FCGID);
	check_operations(WS_PREFIX, true);
	check_early_answers();
	passed = true;
}

static void test_apache_fcgid_sse(void **state)
{
	(void)state;
	check_sse(WS_APACHE_FCGID);
	passed = true;
}

/* Shared hosting: CGI for the API, `pipewright-runner --once` from cron. */
static void test_apache_cgi(void **state)
{
	(void)state;
	static const char *const once[] = {"--once", NULL};
	int status;

	S = ws_new(WS_APACHE_CGI, P->dir);
	ws_launch(S);
	check_version(WS_PREFIX);
	check_static(WS_PREFIX);
	trigger(WS_PREFIX, "wr1");
	if (strcmp(api_state(WS_PREFIX, "wr1"), "queued") != 0)
		fail_msg("wr1 is queued before any runner ran");
	pid_t pid = hr_runner_start(P, once);
	if (!hr_runner_wait(P, pid, W, &status))
		fail_msg("pipewright-runner --once still runs after %d ms", W);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("pipewright-runner --once: wait status %d", status);
	if (strcmp(api_state(WS_PREFIX, "wr1"), "success") != 0)
		fail_msg("wr1 is %s after pipewright-runner --once",
			 api_state(WS_PREFIX, "wr1"));
	check_operations(WS_PREFIX, false);
	passed = true;
}

static void test_apache_cgi_sse(void **state)
{
	(void)state;
	check_sse(WS_APACHE_CGI);
	passed = true;
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_lighttpd),
		T(test_lighttpd_sse),
		T(test_apache_proxy_fcgi),
		T(test_apache_proxy_fcgi_sse),
		T(test_apache_proxy_fcgi_gone),
		T(test_apache_proxy_fcgi_early_answers),
		T(test_apache_fcgid),
		T(test_apache_fcgid_sse),
		T(test_apache_cgi),
		T(test_apache_cgi_sse),
	};
	return cmocka_run_group_tests_name("webservers", tests, NULL, NULL);
}
