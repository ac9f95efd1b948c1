/*
 * test_sse.c - GET /api/v1/events as a live stream (Accept:
 * text/event-stream) through a real lighttpd (server.stream-response-body
 * = 2, see http.c) with pipewright.fcgi behind it and a real runner:
 * headers at once, events as they happen, filters, resuming with
 * Last-Event-ID / ?last_event_id= with nothing lost or repeated while the
 * runner writes, the bounded stream ending with `retry:`, events.missed
 * after pruning, and the per-process stream limit (503 at once, ordinary
 * requests still answered, idle streams costing next to no CPU). The
 * test_gone_* tests, each with a lighttpd of its own (G), check that the
 * slot of a client that left is free again as soon as the FastCGI
 * connection says so: closed or FCGI_ABORT_REQUEST (straight to
 * pipewright.fcgi), lighttpd over HTTP/2 (at once) and HTTP/1.1 (at its
 * first write to the client, a keepalive).
 *
 * A stream whose client this test closes early keeps its server thread
 * (and stream slot) until lighttpd gives up on it (at its next write to
 * the client over HTTP/1.1), at the latest the bounded end; opening a
 * stream therefore retries a 503 for a few seconds (sse_open_ok), as a
 * client honouring Retry-After would.
 *
 * The SSE client is libcurl's multi interface with a write callback that
 * parses messages as bytes arrive and stamps each with its receive time.
 * Streams end after 2 s here (PIPEWRIGHT_SSE_MAX_SECONDS in lighttpd's
 * environment, which its FastCGI children inherit); pipewright.fcgi runs
 * with --threads 4 and PIPEWRIGHT_MAX_STREAMS unset, so the threads decide:
 * 3 long requests (streams and waiting POST /run calls) at once.
 */
#include "fixture.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define W HR_WAIT_MS
#define MAX_SECONDS 2
#define MAX_STREAMS 3

static ht_server *G;     /* the gone-client tests' own lighttpd, or NULL */
static CURLM *M;

static const char DAG_QUICK[] =
	"tasks:\n"
	"  - id: a\n"
	"    command: \"true\"\n"
	"  - id: b\n"
	"    upstream: [a]\n"
	"    command: \"true\"\n"
	"  - id: c\n"
	"    command: \"true\"\n";

/* About 3 s of tasks, one at a time: spans more than one bounded stream. */
static const char DAG_SLOW[] =
	"tasks:\n"
	"  - {id: s1, command: \"sleep 0.5\"}\n"
	"  - {id: s2, upstream: [s1], command: \"sleep 0.5\"}\n"
	"  - {id: s3, upstream: [s2], command: \"sleep 0.5\"}\n"
	"  - {id: s4, upstream: [s3], command: \"sleep 0.5\"}\n"
	"  - {id: s5, upstream: [s4], command: \"sleep 0.5\"}\n"
	"  - {id: s6, upstream: [s5], command: \"sleep 0.5\"}\n";

/* Writes a line, then one more each time the test creates a marker file. */
static const char DAG_LOGGER[] =
	"tasks:\n"
	"  - id: w\n"
	"    command: \"echo first; while [ ! -e var/log.go ]; do sleep 0.05; done; "
	"echo second; while [ ! -e var/log.end ]; do sleep 0.05; done; echo third\"\n";

static const char DAG_OTHER[] =
	"tasks:\n"
	"  - id: x\n"
	"    command: \"true\"\n";

/* --- an SSE client ---------------------------------------------------------------- */

typedef struct sse_event {
	long long id;            /* -1: the message had no id line */
	char type[48];
	json_object *data;       /* parsed data line, or NULL */
	long long t_ms;          /* receive time (ht_now_ms) */
} sse_event;

typedef struct sse {
	CURL *c;
	struct curl_slist *hl;
	char *url;
	/* the wire */
	char *raw;               /* every body byte, NUL-terminated */
	size_t raw_len;
	size_t parsed;           /* raw[0..parsed) has been split into lines */
	char *headers;
	size_t headers_len;
	long long t_open, t_headers, t_end;   /* t_headers/t_end 0 until then */
	/* the message being read */
	long long cur_id;
	char cur_type[48];
	char *cur_data;
	/* what arrived */
	sse_event *ev;
	size_t n, cap;
	long long last_id;       /* the SSE "last event id" (-1: none) */
	long long retry_ms;      /* -1 until a retry: line */
	int comments;
	bool plain;              /* not SSE (a log follow): raw only */
	/* the end */
	bool done;
	CURLcode result;
	long status;
} sse;

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	assert_non_null(p);
	return p;
}

/* Dispatches the message read so far (a blank line came). */
static void sse_dispatch(sse *s)
{
	if (!s->cur_data) { /* no data: not an event (comments, retry:) */
		s->cur_type[0] = '\0';
		return;
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->ev = xrealloc(s->ev, s->cap * sizeof *s->ev);
	}
	sse_event *e = &s->ev[s->n++];
	e->id = s->cur_id;
	snprintf(e->type, sizeof e->type, "%s", s->cur_type[0] ? s->cur_type : "message");
	e->data = json_tokener_parse(s->cur_data);
	e->t_ms = ht_now_ms();
	if (s->cur_id >= 0)
		s->last_id = s->cur_id;
	free(s->cur_data);
	s->cur_data = NULL;
	s->cur_id = -1;
	s->cur_type[0] = '\0';
}

/* One line of the stream (without its newline). */
static void sse_line(sse *s, char *line)
{
	char *v = strchr(line, ':');

	if (!*line) {
		sse_dispatch(s);
		return;
	}
	if (v == line) {
		s->comments++;
		return;
	}
	if (v) {
		*v++ = '\0';
		if (*v == ' ')
			v++;
	} else {
		v = line + strlen(line);
	}
	if (!strcmp(line, "id")) {
		s->cur_id = atoll(v);
	} else if (!strcmp(line, "event")) {
		snprintf(s->cur_type, sizeof s->cur_type, "%s", v);
	} else if (!strcmp(line, "data")) {
		if (s->cur_data)
			fail_msg("%s: a message with two data lines", s->url);
		s->cur_data = strdup(v);
		assert_non_null(s->cur_data);
	} else if (!strcmp(line, "retry")) {
		s->retry_ms = atoll(v);
	} else {
		fail_msg("%s: unknown SSE field '%s'", s->url, line);
	}
}

static size_t sse_on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	sse *s = ud;
	size_t add = size * nmemb;

	s->raw = xrealloc(s->raw, s->raw_len + add + 1);
	memcpy(s->raw + s->raw_len, ptr, add);
	s->raw_len += add;
	s->raw[s->raw_len] = '\0';
	if (s->status == 0)
		curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &s->status);
	if (s->status != 200 || s->plain)
		return add; /* an error envelope or plain text: kept raw */
	for (char *nl; (nl = memchr(s->raw + s->parsed, '\n', s->raw_len - s->parsed));) {
		size_t len = (size_t)(nl - (s->raw + s->parsed));
		char *line = strndup(s->raw + s->parsed, len);
		assert_non_null(line);
		if (len && line[len - 1] == '\r')
			line[len - 1] = '\0';
		sse_line(s, line);
		free(line);
		s->parsed += len + 1;
	}
	return add;
}

static size_t sse_on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
	sse *s = ud;
	size_t add = size * nmemb;

	s->headers = xrealloc(s->headers, s->headers_len + add + 1);
	memcpy(s->headers + s->headers_len, ptr, add);
	s->headers_len += add;
	s->headers[s->headers_len] = '\0';
	if (add <= 2 && (ptr[0] == '\r' || ptr[0] == '\n')) {
		s->t_headers = ht_now_ms();
		curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &s->status);
	}
	return add;
}

/*
 * Opens GET path (below the base of srv) as a stream over HTTP version
 * (CURL_HTTP_VERSION_*); last_event_id >= 0 sends the Last-Event-ID header.
 */
/* The options every request of s shares: its URL, headers and callbacks. */
static void easy_setup(sse *s)
{
	curl_easy_setopt(s->c, CURLOPT_URL, s->url);
	curl_easy_setopt(s->c, CURLOPT_HTTPHEADER, s->hl);
	curl_easy_setopt(s->c, CURLOPT_WRITEFUNCTION, sse_on_data);
	curl_easy_setopt(s->c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(s->c, CURLOPT_HEADERFUNCTION, sse_on_header);
	curl_easy_setopt(s->c, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(s->c, CURLOPT_PRIVATE, s);
	curl_easy_setopt(s->c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(s->c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(s->c, CURLOPT_FORBID_REUSE, 1L);
}

static sse *sse_open_on(const ht_server *srv, const char *path, long long last_event_id,
			long version)
{
	sse *s = calloc(1, sizeof *s);
	char h[64];

	assert_non_null(s);
	s->c = curl_easy_init();
	assert_non_null(s->c);
	s->url = malloc(strlen(srv->base) + strlen(path) + 1);
	assert_non_null(s->url);
	strcpy(s->url, srv->base);
	strcat(s->url, path);
	s->cur_id = -1;
	s->last_id = -1;
	s->retry_ms = -1;
	s->hl = curl_slist_append(NULL, "Accept: text/event-stream");
	if (last_event_id >= 0) {
		snprintf(h, sizeof h, "Last-Event-ID: %lld", last_event_id);
		s->hl = curl_slist_append(s->hl, h);
	}
	assert_non_null(s->hl);
	easy_setup(s);
	if (curl_easy_setopt(s->c, CURLOPT_HTTP_VERSION, version) != CURLE_OK)
		fail_msg("libcurl cannot speak HTTP version %ld", version);
	s->t_open = ht_now_ms();
	if (curl_multi_add_handle(M, s->c) != CURLM_OK)
		fail_msg("curl_multi_add_handle failed");
	return s;
}

/* The stream on the group's server, over HTTP/1.1. */
static sse *sse_open(const char *path, long long last_event_id)
{
	return sse_open_on(S, path, last_event_id, CURL_HTTP_VERSION_1_1);
}

/* Drives every open stream for up to ms milliseconds. */
static void pump(int ms)
{
	int running = 0, left = 0;
	CURLMsg *m;

	if (curl_multi_perform(M, &running) != CURLM_OK)
		fail_msg("curl_multi_perform failed");
	if (running && curl_multi_poll(M, NULL, 0, ms, NULL) != CURLM_OK)
		fail_msg("curl_multi_poll failed");
	if (!running)
		ht_sleep_ms(ms < 10 ? ms : 10);
	if (curl_multi_perform(M, &running) != CURLM_OK)
		fail_msg("curl_multi_perform failed");
	while ((m = curl_multi_info_read(M, &left))) {
		sse *s = NULL;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
		s->done = true;
		s->result = m->data.result;
		s->t_end = ht_now_ms();
		curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &s->status);
	}
	hr_reap();
}

/*
 * POST /run with body on the group's server, in the background (pump
 * drives it); the answer lands in raw and status.
 */
static sse *run_in_background(const char *body)
{
	sse *s = calloc(1, sizeof *s);
	assert_non_null(s);
	s->c = curl_easy_init();
	s->url = malloc(strlen(S->base) + sizeof "/run");
	s->hl = curl_slist_append(NULL, "Content-Type: application/json");
	assert_true(s->c && s->url && s->hl);
	strcpy(s->url, S->base);
	strcat(s->url, "/run");
	s->cur_id = s->last_id = s->retry_ms = -1;
	easy_setup(s);
	curl_easy_setopt(s->c, CURLOPT_COPYPOSTFIELDS, body);
	s->t_open = ht_now_ms();
	if (curl_multi_add_handle(M, s->c) != CURLM_OK)
		fail_msg("curl_multi_add_handle failed");
	return s;
}

/* Disconnects (if still open) and frees. */
static void sse_close(sse *s)
{
	if (!s)
		return;
	curl_multi_remove_handle(M, s->c);
	curl_easy_cleanup(s->c);
	curl_slist_free_all(s->hl);
	for (size_t i = 0; i < s->n; i++)
		json_object_put(s->ev[i].data);
	free(s->ev);
	free(s->cur_data);
	free(s->raw);
	free(s->headers);
	free(s->url);
	free(s);
}

/* Pumps until the headers came (fails after timeout_ms). */
static void sse_wait_headers(sse *s, int timeout_ms)
{
	for (long long end = ht_now_ms() + timeout_ms; !s->t_headers && !s->done;) {
		if (ht_now_ms() > end)
			fail_msg("%s: no headers within %d ms", s->url, timeout_ms);
		pump(20);
	}
	if (!s->t_headers)
		fail_msg("%s: ended without headers (curl: %s)", s->url,
			 curl_easy_strerror(s->result));
}

/*
 * sse_open, then waits for the headers; a 503 (every stream slot busy,
 * e.g. with streams whose clients this test closed early: the server
 * notices at its next write) is retried for a few seconds, as a client
 * honouring Retry-After would.
 */
static sse *sse_open_ok(const char *path, long long last_event_id)
{
	long long end = ht_now_ms() + (MAX_SECONDS + 3) * 1000;

	for (;;) {
		sse *s = sse_open(path, last_event_id);
		sse_wait_headers(s, 1500);
		if (s->status == 200)
			return s;
		if (s->status != 503 || ht_now_ms() > end)
			fail_msg("%s: status %ld: %s", s->url, s->status, s->raw ? s->raw : "");
		sse_close(s);
		ht_sleep_ms(100);
	}
}

/* Pumps until at least n events came (fails after timeout_ms). */
static void sse_wait_events(sse *s, size_t n, int timeout_ms)
{
	for (long long end = ht_now_ms() + timeout_ms; s->n < n;) {
		if (s->done)
			fail_msg("%s: ended after %zu of %zu events (status %ld, curl %s): %s",
				 s->url, s->n, n, s->status, curl_easy_strerror(s->result),
				 s->raw ? s->raw : "");
		if (ht_now_ms() > end)
			fail_msg("%s: %zu of %zu events within %d ms", s->url, s->n, n, timeout_ms);
		pump(20);
	}
}

/* Pumps until the stream ended by itself (fails after timeout_ms). */
static void sse_wait_end(sse *s, int timeout_ms)
{
	for (long long end = ht_now_ms() + timeout_ms; !s->done;) {
		if (ht_now_ms() > end)
			fail_msg("%s: still open after %d ms", s->url, timeout_ms);
		pump(50);
	}
	if (s->result != CURLE_OK)
		fail_msg("%s: curl: %s", s->url, curl_easy_strerror(s->result));
}

/* A response header's value in s (malloc'd), or NULL. */
static char *sse_header(const sse *s, const char *name)
{
	size_t n = strlen(name);
	for (const char *l = s->headers; l && *l;) {
		const char *e = strchr(l, '\n');
		size_t len = e ? (size_t)(e - l) : strlen(l);
		if (len > n && !strncasecmp(l, name, n) && l[n] == ':') {
			const char *v = l + n + 1;
			while (*v == ' ')
				v++;
			size_t vl = (size_t)(l + len - v);
			while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
				vl--;
			char *out = strndup(v, vl);
			assert_non_null(out);
			return out;
		}
		l += len + (e != NULL);
	}
	return NULL;
}

static void expect_header(const sse *s, const char *name, const char *prefix)
{
	char *v = sse_header(s, name);
	if (!v || strncasecmp(v, prefix, strlen(prefix)) != 0)
		fail_msg("%s: header %s is '%s', want '%s...'\n%s", s->url, name,
			 v ? v : "(none)", prefix, s->headers);
	free(v);
}

/* data.<key> of an event as a string, or "" */
static const char *ev_str(const sse_event *e, const char *key)
{
	json_object *v = e->data ? ht_at(e->data, key) : NULL;
	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
}

/* --- collecting: an EventSource that resumes with Last-Event-ID -------------------- */

typedef struct ids {
	long long *v;
	size_t n, cap;
} ids;

static void ids_add(ids *a, long long id)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 256;
		a->v = xrealloc(a->v, a->cap * sizeof *a->v);
	}
	a->v[a->n++] = id;
}

/* Whether an event ends the collection. */
typedef bool (*stop_fn)(const sse_event *e, const void *arg);

/*
 * Reads path from after resume (-1: from now on, else sent as
 * Last-Event-ID), reconnecting with Last-Event-ID whenever a stream ends
 * (each ending must carry retry:), until stop says so. Appends the event
 * ids to out; returns the number of connections used.
 */
static int collect(const char *path, long long resume, stop_fn stop, const void *arg,
		   ids *out, int timeout_ms)
{
	long long end = ht_now_ms() + timeout_ms;
	int conns = 0;

	for (;;) {
		sse *s = sse_open_ok(path, resume);
		size_t seen = 0;
		bool stopped = false;
		conns++;
		while (!stopped) {
			pump(20);
			for (; seen < s->n && !stopped; seen++) {
				ids_add(out, s->ev[seen].id);
				stopped = stop(&s->ev[seen], arg);
			}
			if (s->done && seen == s->n)
				break;
			if (ht_now_ms() > end)
				fail_msg("%s: collecting timed out after %zu events, %d connections",
					 path, out->n, conns);
		}
		if (!stopped) {
			if (s->result != CURLE_OK || s->status != 200)
				fail_msg("%s: stream failed: status %ld, curl %s", path, s->status,
					 curl_easy_strerror(s->result));
			if (s->retry_ms != 1000)
				fail_msg("%s: a stream ended without retry: 1000", path);
		}
		if (s->last_id >= 0)
			resume = s->last_id;
		else if (resume < 0)
			fail_msg("%s: a stream without events and no resume point: events "
				 "would be lost between connections", path);
		sse_close(s);
		if (stopped)
			return conns;
	}
}

/* The ids of the JSON pages after after_id up to through (inclusive). */
static void page_ids(const char *filters, long long after_id, long long through, ids *out)
{
	char path[1024];

	for (;;) {
		snprintf(path, sizeof path, "/api/v1/events?after_id=%lld&limit=1000%s", after_id,
			 filters);
		ht_resp *r = ht_get(S, path);
		json_object *d = ht_ok(r, 200);
		size_t n = json_object_array_length(d);
		bool past = false;
		for (size_t i = 0; i < n && !past; i++) {
			long long id = json_object_get_int64(
				json_object_object_get(json_object_array_get_idx(d, i), "id"));
			if (id > through)
				past = true;
			else
				ids_add(out, id);
		}
		after_id = ht_int(r->json, "meta.last_id");
		ht_resp_free(r);
		if (past || n < 1000)
			return;
	}
}

/* Fails unless a and b hold the same ids, strictly increasing. */
static void expect_same_ids(const char *what, const ids *got, const ids *want)
{
	for (size_t i = 1; i < got->n; i++)
		if (got->v[i] <= got->v[i - 1])
			fail_msg("%s: id %lld after %lld (out of order or repeated)", what,
				 got->v[i], got->v[i - 1]);
	for (size_t i = 0; i < got->n && i < want->n; i++)
		if (got->v[i] != want->v[i])
			fail_msg("%s: event %zu is id %lld, the table has %lld there", what, i,
				 got->v[i], want->v[i]);
	if (got->n != want->n)
		fail_msg("%s: %zu events streamed, the table has %zu", what, got->n, want->n);
}

/* --- fixture ----------------------------------------------------------------------- */

static int group_setup(void **state)
{
	(void)state;
	/* lighttpd's FastCGI children inherit its environment. */
	setenv("PIPEWRIGHT_SSE_MAX_SECONDS", "2", 1);
	unsetenv("PIPEWRIGHT_MAX_STREAMS");
	P = hr_project_new(4);
	hr_dag(P, "quick", DAG_QUICK);
	hr_dag(P, "other", DAG_OTHER);
	hr_dag(P, "slow", DAG_SLOW);
	hr_dag(P, "logger", DAG_LOGGER);
	/* 20 independent quick tasks: a burst of events, 4 at a time. */
	char dag[4096] = "tasks:\n";
	for (int i = 1; i <= 20; i++) {
		size_t len = strlen(dag);
		snprintf(dag + len, sizeof dag - len,
			 "  - id: t%02d\n    command: \"true\"\n", i);
	}
	hr_dag(P, "burst", dag);
	fx_start(&(ht_opts){.threads = MAX_STREAMS + 1}, true);
	M = curl_multi_init();
	assert_non_null(M);
	return 0;
}

static int group_teardown(void **state)
{
	curl_multi_cleanup(M);
	return fx_group_teardown(state);
}

/* fx_teardown, and the second server of a test (G). */
static int teardown(void **state)
{
	if (!passed)
		ht_dump_logs(G);
	fx_teardown(state);
	ht_stop(G);
	G = NULL;
	return 0;
}

static long long max_event_id(void)
{
	return hr_sql_int(P, 0, "SELECT coalesce(max(id), 0) FROM events", "");
}

/* POST a trigger with this run id; expects 201. */
static void trigger(const char *dag, const char *run_id)
{
	char path[256], body[256];
	snprintf(path, sizeof path, "/api/v1/dags/%s/runs", dag);
	snprintf(body, sizeof body, "{\"run_id\": \"%s\"}", run_id);
	ht_resp *r = ht_send(S, "POST", path, body);
	ht_ok(r, 201);
	ht_resp_free(r);
}

/* Stops at the run.state event of the run (arg) that ends it. */
static bool run_ended(const sse_event *e, const void *arg)
{
	const char *st = ev_str(e, "state");
	return !strcmp(e->type, "run.state") && !strcmp(ev_str(e, "run_id"), arg) &&
	       (!strcmp(st, "success") || !strcmp(st, "failed") || !strcmp(st, "cancelled"));
}

/* --- tests ---------------------------------------------------------------------------- */

/*
 * Headers before any event; events of a run as they happen, before the stream
 * ends; only new events; the same ids as the table; the end after
 * PIPEWRIGHT_SSE_MAX_SECONDS with retry: 1000.
 */
static void test_live_stream(void **state)
{
	(void)state;
	long long base = max_event_id();
	sse *s = sse_open_ok("/api/v1/events", -1);

	sse_wait_headers(s, 1500);
	if (s->status != 200)
		fail_msg("stream: status %ld: %s", s->status, s->raw ? s->raw : "");
	expect_header(s, "Content-Type", "text/event-stream");
	expect_header(s, "Cache-Control", "no-cache");
	expect_header(s, "X-Accel-Buffering", "no");

	long long t_trigger = ht_now_ms();
	trigger("quick", "live1");
	sse_wait_end(s, (MAX_SECONDS + 8) * 1000);

	long long took = s->t_end - s->t_open;
	if (took < MAX_SECONDS * 1000 - 300 || took > (MAX_SECONDS + 5) * 1000)
		fail_msg("stream lasted %lld ms, want about %d s", took, MAX_SECONDS);
	static const char tail[] = "retry: 1000\n\n";
	if (s->raw_len < sizeof tail - 1 ||
	    strcmp(s->raw + s->raw_len - (sizeof tail - 1), tail) != 0)
		fail_msg("stream does not end with retry: 1000: ...%s",
			 s->raw_len > 80 ? s->raw + s->raw_len - 80 : s->raw ? s->raw : "");
	if (s->n == 0)
		fail_msg("no event streamed for run live1");
	/* Incremental: the first event (the queued run) came at once. */
	sse_event *e0 = &s->ev[0];
	if (strcmp(e0->type, "run.state") || strcmp(ev_str(e0, "run_id"), "live1") ||
	    strcmp(ev_str(e0, "state"), "queued"))
		fail_msg("first event: %s %s", e0->type,
			 e0->data ? json_object_to_json_string(e0->data) : "(no data)");
	for (size_t i = 0; i < s->n; i++) {
		sse_event *e = &s->ev[i];
		if (e->id <= base)
			fail_msg("event %lld is older than the stream (max id %lld then)", e->id, base);
		if (!e->data || !json_object_is_type(e->data, json_type_object))
			fail_msg("event %lld: data is not a JSON object", e->id);
		if (strcmp(ev_str(e, "dag_id"), "quick") != 0 || !ht_has(e->data, "ts"))
			fail_msg("event %lld: %s", e->id, json_object_to_json_string(e->data));
	}
	/*
	 * Incremental, not held back until the stream ends: a stream that
	 * buffered would deliver everything within a few ms of its end. No
	 * bound on how soon after the trigger (the machines are shared).
	 */
	if (s->t_end - e0->t_ms < 250)
		fail_msg("first event %lld ms after the trigger, only %lld ms before the end",
			 e0->t_ms - t_trigger, s->t_end - e0->t_ms);
	fprintf(stderr, "live: %zu events; first %lld ms after the trigger, %lld ms before "
		"the end; the last %lld ms before the end\n", s->n, e0->t_ms - t_trigger,
		s->t_end - e0->t_ms, s->t_end - s->ev[s->n - 1].t_ms);

	/* The same events as the table holds. */
	ids got = {0}, want = {0};
	for (size_t i = 0; i < s->n; i++)
		ids_add(&got, s->ev[i].id);
	page_ids("", base, s->ev[s->n - 1].id, &want);
	expect_same_ids("live stream", &got, &want);
	free(got.v);
	free(want.v);
	sse_close(s);
	hr_wait_run_end(P, "quick", "live1", W);
	passed = true;
}

typedef struct count_arg {
	const char *type;
	const char *state;
	int want;
	int seen;
} count_arg;

/* Stops at the want-th event of a type with a state. */
static bool nth_state(const sse_event *e, const void *arg)
{
	count_arg *c = (count_arg *)arg;
	if (!strcmp(e->type, c->type) && !strcmp(ev_str(e, "state"), c->state))
		c->seen++;
	return c->seen >= c->want;
}

/* ?run_id= with ?types=, and ?dag_id=: only matching events, all of them. */
static void test_filters(void **state)
{
	(void)state;
	long long base = max_event_id();
	ids got = {0}, want = {0};
	const char *const accept[] = {"Accept: text/event-stream", NULL};

	/* A filter that cannot name a DAG or a run is a 400, page or stream. */
	static const char *const bad[] = {
		"/api/v1/events?dag_id=-bad", "/api/v1/events?run_id=%20x",
		"/api/v1/events?dag_id=a%2Fb", "/api/v1/events?run_id=.x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		ht_resp *r = ht_get(S, bad[i]);
		ht_err(r, 400);
		ht_resp_free(r);
		r = ht_req(S, "GET", bad[i], accept, NULL, 0);
		ht_err(r, 400);
		ht_resp_free(r);
	}

	/* Start after base (no event is lost before the first connection). */
	trigger("quick", "filt1");
	trigger("other", "filt2");
	count_arg three = {"task.state", "success", 3, 0};
	collect("/api/v1/events?run_id=filt1&types=task.state", base, nth_state, &three,
		&got, W);
	/* Every event is of filt1 and a task.state. */
	page_ids("&run_id=filt1&types=task.state", base, got.v[got.n - 1], &want);
	expect_same_ids("?run_id=filt1&types=task.state", &got, &want);
	ids all = {0};
	page_ids("", base, got.v[got.n - 1], &all);
	if (all.n <= got.n)
		fail_msg("the filter let everything through (%zu of %zu)", got.n, all.n);
	free(all.v);

	/* ?dag_id=other, streamed and checked event by event. */
	hr_wait_run_end(P, "other", "filt2", W);
	char path[128];
	snprintf(path, sizeof path, "/api/v1/events?dag_id=other&last_event_id=%lld", base);
	sse *s = sse_open_ok(path, -1);
	sse_wait_end(s, (MAX_SECONDS + 8) * 1000);
	if (s->n == 0)
		fail_msg("?dag_id=other: no events");
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(ev_str(&s->ev[i], "dag_id"), "other") != 0)
			fail_msg("?dag_id=other: event %lld of %s", s->ev[i].id,
				 ev_str(&s->ev[i], "dag_id"));
	ids g2 = {0}, w2 = {0};
	for (size_t i = 0; i < s->n; i++)
		ids_add(&g2, s->ev[i].id);
	page_ids("&dag_id=other", base, LLONG_MAX, &w2);
	expect_same_ids("?dag_id=other", &g2, &w2);
	free(g2.v);
	free(w2.v);
	sse_close(s);

	/* A bad filter is a 400 envelope, not a stream. */
	ht_resp *r = ht_req(S, "GET", "/api/v1/events?types=bogus", accept, NULL, 0);
	ht_err(r, 400);
	ht_resp_free(r);
	r = ht_req(S, "GET", "/api/v1/events?last_event_id=x", accept, NULL, 0);
	ht_err(r, 400);
	ht_resp_free(r);
	free(got.v);
	free(want.v);
	hr_wait_run_end(P, "quick", "filt1", W);
	passed = true;
}

/*
 * A client reads a few events of two bursts (20 quick tasks each, run
 * beside a slow chain), disconnects while the runner keeps writing, and
 * resumes with Last-Event-ID, again at each bounded end, until the slow
 * run ends: the union is every id of the table, in order, once.
 */
static void test_resume_under_load(void **state)
{
	(void)state;
	long long base = max_event_id();
	ids got = {0}, want = {0};
	char path[128];

	/* ?last_event_id= on the first connection (EventSource's way). */
	snprintf(path, sizeof path, "/api/v1/events?last_event_id=%lld", base);
	sse *s = sse_open_ok(path, -1);
	long long t0 = ht_now_ms();
	trigger("slow", "slow1");
	trigger("burst", "burst1");
	trigger("burst", "burst2");
	sse_wait_events(s, 5, W);
	for (size_t i = 0; i < s->n; i++)
		ids_add(&got, s->ev[i].id);
	long long resume = s->last_id;
	sse_close(s);   /* gone, mid-burst */
	hr_sleep_ms(150);
	long long during = max_event_id();
	int conns = collect("/api/v1/events", resume, run_ended, "slow1", &got, W);
	long long took = ht_now_ms() - t0;
	page_ids("", base, got.v[got.n - 1], &want);
	expect_same_ids("resumed stream", &got, &want);
	if (during <= resume)
		fail_msg("no event was written while the client was away (%lld)", during);
	if (conns < 2)
		fail_msg("the slow run fit in one bounded stream: no reconnect was tested");
	fprintf(stderr, "resume: %zu events in %lld ms over 1+%d connections, %lld written "
		"while away\n", got.n, took, conns, during - resume);
	free(got.v);
	free(want.v);
	hr_wait_run_end(P, "burst", "burst1", W);
	hr_wait_run_end(P, "burst", "burst2", W);
	passed = true;
}

/* Last-Event-ID wins over ?last_event_id=; each resumes right after its id. */
static void test_resume_points(void **state)
{
	(void)state;
	ids all = {0};
	char path[128];

	page_ids("", 0, LLONG_MAX, &all);
	if (all.n < 20)
		fail_msg("too few events so far (%zu)", all.n);
	long long a = all.v[3], b = all.v[10];

	snprintf(path, sizeof path, "/api/v1/events?last_event_id=%lld", a);
	sse *s = sse_open_ok(path, -1);
	sse_wait_events(s, 2, W);
	if (s->ev[0].id != all.v[4] || s->ev[1].id != all.v[5])
		fail_msg("?last_event_id=%lld: got %lld, %lld", a, s->ev[0].id, s->ev[1].id);
	sse_close(s);

	s = sse_open_ok(path, b);
	sse_wait_events(s, 1, W);
	if (s->ev[0].id != all.v[11])
		fail_msg("Last-Event-ID %lld with ?last_event_id=%lld: first %lld, want %lld", b, a,
			 s->ev[0].id, all.v[11]);
	sse_close(s);
	free(all.v);
	passed = true;
}

/* After pruning, a resume from before the oldest kept event says so first. */
static void test_missed(void **state)
{
	(void)state;
	long long top = max_event_id();

	/* By count: the newest 5 stay. */
	int n = pw_store_prune_events(P->store, -1, 5);
	if (n <= 0)
		fail_msg("pw_store_prune_events(-1, 5) deleted %d", n);
	long long first = hr_sql_int(P, -1, "SELECT min(id) FROM events", "");
	long long kept = hr_sql_int(P, -1, "SELECT count(*) FROM events", "");
	if (first != top - 4 || kept != 5)
		fail_msg("after pruning: min id %lld (want %lld), %lld kept", first, top - 4, kept);
	/* By age: nothing is an hour old; no rule deletes nothing. */
	if (pw_store_prune_events(P->store, 3600 * 1000LL, -1) != 0 ||
	    pw_store_prune_events(P->store, -1, -1) != 0)
		fail_msg("pruning young events deleted some");

	sse *s = sse_open_ok("/api/v1/events", 1);
	sse_wait_events(s, 6, W);
	sse_event *m = &s->ev[0];
	if (strcmp(m->type, "events.missed") != 0 || ht_int(m->data, "after_id") != 1 ||
	    ht_int(m->data, "first_available_id") != first || m->id != first - 1)
		fail_msg("first message: id %lld %s %s", m->id, m->type,
			 m->data ? json_object_to_json_string(m->data) : "");
	for (int i = 1; i < 6; i++)
		if (s->ev[i].id != first + i - 1 || !strcmp(s->ev[i].type, "events.missed"))
			fail_msg("after events.missed: message %d is %lld %s", i, s->ev[i].id,
				 s->ev[i].type);
	sse_close(s);

	/* A resume point right before the oldest kept event missed nothing. */
	s = sse_open_ok("/api/v1/events", first - 1);
	sse_wait_events(s, 1, W);
	if (s->ev[0].id != first || strcmp(s->ev[0].type, "events.missed") == 0)
		fail_msg("resume at %lld: first message %lld %s", first - 1, s->ev[0].id,
			 s->ev[0].type);
	sse_close(s);

	/* The JSON page flags it too. */
	char path[128];
	ht_resp *r = ht_get(S, "/api/v1/events?after_id=1");
	ht_ok(r, 200);
	if (!ht_bool(r->json, "meta.missed") ||
	    ht_int(r->json, "meta.first_available_id") != first)
		ht_fail(r, "meta.missed after pruning");
	ht_resp_free(r);
	snprintf(path, sizeof path, "/api/v1/events?after_id=%lld", first - 1);
	r = ht_get(S, path);
	ht_ok(r, 200);
	if (ht_bool(r->json, "meta.missed"))
		ht_fail(r, "meta.missed right before the oldest event");
	ht_resp_free(r);

	/* Everything pruned: the next id still tells what was missed. */
	if (pw_store_prune_events(P->store, 0, 0) != 5)
		fail_msg("pruning everything did not delete the 5 left");
	s = sse_open_ok("/api/v1/events", top - 1);
	sse_wait_events(s, 1, W);
	if (strcmp(s->ev[0].type, "events.missed") != 0 ||
	    ht_int(s->ev[0].data, "first_available_id") != top + 1)
		fail_msg("empty table: first message %s", s->ev[0].type);
	sse_close(s);
	s = sse_open_ok("/api/v1/events", top);   /* up to date: nothing missed */
	sse_wait_headers(s, 1500);
	trigger("other", "after_prune");
	sse_wait_events(s, 1, W);
	if (s->ev[0].id != top + 1 || strcmp(s->ev[0].type, "run.state") != 0)
		fail_msg("after pruning all: first event %lld %s", s->ev[0].id, s->ev[0].type);
	sse_close(s);
	hr_wait_run_end(P, "other", "after_prune", W);
	passed = true;
}

/* utime + stime of pipewright.fcgi (ms), from /proc. */
static long long fcgi_cpu_ms(void)
{
	char path[64], buf[1024];
	unsigned long long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)ht_fcgi_pid(S));
	f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof buf, f))
		fail_msg("%s: cannot read", path);
	fclose(f);
	const char *p = strrchr(buf, ')');
	/* after "pid (comm)": state is field 3, utime 14, stime 15 */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		fail_msg("%s: cannot parse", path);
	return (long long)(ut + st) * 1000 / sysconf(_SC_CLK_TCK);
}

/*
 * MAX_STREAMS streams at once; the next is 503 at once; an ordinary
 * request is still answered; a slot frees when a stream ends.
 */
static void test_stream_limit(void **state)
{
	(void)state;
	sse *s[MAX_STREAMS];
	const char *const accept[] = {"Accept: text/event-stream", NULL};

	/* Streams the earlier tests left end within MAX_SECONDS. */
	hr_sleep_ms(MAX_SECONDS * 1000 + 300);
	for (int i = 0; i < MAX_STREAMS; i++)
		s[i] = sse_open("/api/v1/events", -1);
	for (int i = 0; i < MAX_STREAMS; i++) {
		sse_wait_headers(s[i], 1500);
		if (s[i]->status != 200)
			fail_msg("stream %d: status %ld %s", i, s[i]->status, s[i]->raw ? s[i]->raw : "");
	}
	long long t0 = ht_now_ms();
	ht_resp *r = ht_req(S, "GET", "/api/v1/events", accept, NULL, 0);
	ht_err(r, 503);
	ht_resp_free(r);
	long long t_503 = ht_now_ms() - t0;
	/* A /run would wait too: 503 in FastAPI's shape, and nothing queued. */
	long long runs = hr_sql_int(P, -1, "SELECT count(*) FROM runs", NULL);
	r = ht_send(S, "POST", "/run", "{\"pipeline_names\": [\"other\"]}");
	if (r->status != 503 || !ht_has(r->json, "detail"))
		ht_fail(r, "POST /run with every slot held: 503 {\"detail\"}");
	ht_resp_free(r);
	if (hr_sql_int(P, -1, "SELECT count(*) FROM runs", NULL) != runs)
		fail_msg("a refused /run queued a run");
	r = ht_get(S, "/api/v1/version");
	ht_ok(r, 200);
	ht_resp_free(r);
	/* The JSON page is an ordinary request, not a stream. */
	r = ht_get(S, "/api/v1/events?limit=1");
	ht_ok(r, 200);
	ht_resp_free(r);
	long long t_all = ht_now_ms() - t0;
	for (int i = 0; i < MAX_STREAMS; i++)
		if (s[i]->done)
			fail_msg("stream %d ended early", i);
	/* Idle streams cost next to nothing: CPU of pipewright.fcgi over 1 s. */
	long long cpu0 = fcgi_cpu_ms(), w0 = ht_now_ms();
	while (ht_now_ms() - w0 < 1000)
		pump(50);
	long long cpu = fcgi_cpu_ms() - cpu0;
	fprintf(stderr, "limit: %d idle streams used %lld ms CPU in %lld ms\n", MAX_STREAMS,
		cpu, ht_now_ms() - w0);
	if (cpu > 100)
		fail_msg("%d idle streams used %lld ms CPU in a second", MAX_STREAMS, cpu);
	if (t_503 > 1000)
		fail_msg("the 503 took %lld ms", t_503);
	fprintf(stderr, "limit: 503 after %lld ms, version and a page after %lld ms\n", t_503,
		t_all);
	for (int i = 0; i < MAX_STREAMS; i++) {
		sse_wait_end(s[i], (MAX_SECONDS + 8) * 1000);
		sse_close(s[i]);
	}
	sse *again = sse_open_ok("/api/v1/events", -1);
	sse_wait_headers(again, 1500);
	if (again->status != 200)
		fail_msg("after the streams ended: status %ld", again->status);
	sse_close(again);
	passed = true;
}

/*
 * A POST /run waiting for its run holds a thread like a stream: with two
 * streams and a /run waiting on a paused DAG, the next stream is 503 while
 * ordinary requests are answered; the /run answers once the DAG is
 * unpaused, and its slot is free again.
 */
static void test_run_holds_a_slot(void **state)
{
	(void)state;
	sse *s[MAX_STREAMS - 1];
	const char *const accept[] = {"Accept: text/event-stream", NULL};

	hr_sleep_ms(MAX_SECONDS * 1000 + 300);   /* earlier streams have ended */
	hr_set_paused(P, "other", true);
	for (int i = 0; i < MAX_STREAMS - 1; i++)
		s[i] = sse_open_ok("/api/v1/events", -1);
	sse *run = run_in_background("{\"pipeline_names\": [\"other\"]}");
	long long end = ht_now_ms() + W;
	while (hr_sql_int(P, 0, "SELECT count(*) FROM runs WHERE dag_id = 'other'"
			  " AND state = 'queued'", NULL) == 0) {
		if (ht_now_ms() > end || run->done)
			fail_msg("the /run was not queued: status %ld %s", run->status,
				 run->raw ? run->raw : "");
		pump(20);
	}
	ht_resp *r = ht_req(S, "GET", "/api/v1/events", accept, NULL, 0);
	ht_err(r, 503);
	ht_resp_free(r);
	r = ht_get(S, "/api/v1/health");
	ht_ok(r, 200);
	ht_resp_free(r);
	hr_set_paused(P, "other", false);
	for (end = ht_now_ms() + W; !run->done; pump(20))
		if (ht_now_ms() > end)
			fail_msg("the /run did not answer after the DAG was unpaused");
	if (run->status != 200 || !run->raw || !strstr(run->raw, "\"success\""))
		fail_msg("/run: status %ld %s", run->status, run->raw ? run->raw : "");
	sse_close(run);
	sse *again = sse_open_ok("/api/v1/events", -1);
	sse_close(again);
	for (int i = 0; i < MAX_STREAMS - 1; i++)
		sse_close(s[i]);
	passed = true;
}

/* --- gone clients ----------------------------------------------------------------------- */

#define GONE_STREAMS 2          /* PIPEWRIGHT_MAX_STREAMS of G */
#define GONE_WITHIN_MS 5000     /* a gone client's slot is free again by then */
/* No such DAG: nothing but keepalives is ever written to these streams. */
#define NO_DAG "no_such_dag"
#define GONE_PATH "/api/v1/events?dag_id=" NO_DAG

/*
 * Starts G: lighttpd with a pipewright.fcgi of at most GONE_STREAMS
 * streams that last a minute (so that only a gone client frees a slot
 * within a test) and a keepalive after keepalive_s of silence.
 */
static void gone_server(int keepalive_s)
{
	char ka[16];

	snprintf(ka, sizeof ka, "%d", keepalive_s);
	if (setenv("PIPEWRIGHT_MAX_STREAMS", "2", 1) != 0 ||
	    setenv("PIPEWRIGHT_SSE_MAX_SECONDS", "60", 1) != 0 ||
	    setenv("PIPEWRIGHT_SSE_KEEPALIVE_SECONDS", ka, 1) != 0)
		fail_msg("setenv: %s", strerror(errno));
	G = ht_start(P->dir, NULL);
	if (setenv("PIPEWRIGHT_SSE_MAX_SECONDS", "2", 1) != 0 ||
	    unsetenv("PIPEWRIGHT_MAX_STREAMS") != 0 ||
	    unsetenv("PIPEWRIGHT_SSE_KEEPALIVE_SECONDS") != 0)
		fail_msg("setenv: %s", strerror(errno));
}

/* --- a FastCGI client: pipewright.fcgi of G without lighttpd in between --- */

enum { FC_BEGIN = 1, FC_ABORT = 2, FC_END = 3, FC_PARAMS = 4, FC_STDIN = 5, FC_STDOUT = 6 };
#define FC_EOF (-1)
#define FC_TIMEOUT (-2)

static void fc_write(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			fail_msg("fastcgi: write: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

/* One record of request 1, without padding. */
static void fc_record(int fd, int type, const void *content, size_t len)
{
	const unsigned char h[8] = {1, (unsigned char)type, 0, 1,
				    (unsigned char)(len >> 8), (unsigned char)(len & 0xff), 0, 0};
	fc_write(fd, h, sizeof h);
	if (len)
		fc_write(fd, content, len);
}

/* Appends a name-value pair (each under 128 bytes) to buf at *len. */
static void fc_pair(unsigned char *buf, size_t cap, size_t *len, const char *name,
		    const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	if (nl > 127 || vl > 127 || *len + 2 + nl + vl > cap)
		fail_msg("fastcgi: parameter %s too long", name);
	buf[(*len)++] = (unsigned char)nl;
	buf[(*len)++] = (unsigned char)vl;
	memcpy(buf + *len, name, nl);
	memcpy(buf + *len + nl, value, vl);
	*len += nl + vl;
}

/*
 * Connects to G's pipewright.fcgi (lighttpd names its socket "-0" for the
 * first process) and asks for GONE_PATH as a stream: FCGI_BEGIN_REQUEST
 * (responder; the connection closes with the request), the parameters,
 * and with stdin_end the empty FCGI_STDIN record that ends the body.
 */
static int fc_open(bool stdin_end)
{
	static const unsigned char begin[8] = {0, 1};
	static const char *const params[][2] = {
		{"REQUEST_METHOD", "GET"}, {"SCRIPT_NAME", ""},
		{"PATH_INFO", "/api/v1/events"}, {"QUERY_STRING", "dag_id=" NO_DAG},
		{"REQUEST_URI", GONE_PATH}, {"HTTP_ACCEPT", "text/event-stream"},
		{"SERVER_PROTOCOL", "HTTP/1.1"},
	};
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	unsigned char buf[1024];
	size_t len = 0;
	int fd;

	if ((size_t)snprintf(un.sun_path, sizeof un.sun_path, "%s/fcgi.sock-0", G->dir) >=
	    sizeof un.sun_path)
		fail_msg("fastcgi: socket path too long");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&un, sizeof un) != 0)
		fail_msg("fastcgi: connect %s: %s", un.sun_path, strerror(errno));
	for (size_t i = 0; i < sizeof params / sizeof *params; i++)
		fc_pair(buf, sizeof buf, &len, params[i][0], params[i][1]);
	fc_record(fd, FC_BEGIN, begin, sizeof begin);
	fc_record(fd, FC_PARAMS, buf, len);
	fc_record(fd, FC_PARAMS, NULL, 0);
	if (stdin_end)
		fc_record(fd, FC_STDIN, NULL, 0);
	return fd;
}

/* Reads n bytes by the deadline: 1, FC_EOF (or error) or FC_TIMEOUT. */
static int fc_read(int fd, void *buf, size_t n, long long deadline)
{
	char *p = buf;

	while (n > 0) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		long long left = deadline - ht_now_ms();
		int rc = left > 0 ? poll(&pfd, 1, (int)left) : 0;
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc == 0)
			return FC_TIMEOUT;
		ssize_t r = rc < 0 ? -1 : read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return FC_EOF;
		p += r;
		n -= (size_t)r;
	}
	return 1;
}

/*
 * The type of the next record (FC_EOF, FC_TIMEOUT after timeout_ms); the
 * content of FC_STDOUT is appended to out (cap bytes, NUL-terminated).
 */
static int fc_next(int fd, char *out, size_t cap, int timeout_ms)
{
	static unsigned char body[65535 + 255];
	unsigned char h[8];
	long long deadline = ht_now_ms() + timeout_ms;
	int rc = fc_read(fd, h, sizeof h, deadline);
	size_t len = (size_t)h[4] << 8 | h[5];

	if (rc == 1)
		rc = fc_read(fd, body, len + h[6], deadline);
	if (rc != 1)
		return rc;
	if (h[1] == FC_STDOUT && out) {
		size_t have = strlen(out), add = len < cap - 1 - have ? len : cap - 1 - have;
		memcpy(out + have, body, add);
		out[have + add] = '\0';
	}
	return h[1];
}

/*
 * The status of the answer (its head read within 5 s); a stream's opening
 * comment, which follows its head at once, is read too.
 */
static int fc_status(int fd)
{
	char out[4096] = "";
	long long end = ht_now_ms() + 5000;
	int st = 0;

	while (!strstr(out, "\r\n\r\n") ||
	       (strstr(out, "Status: 200") && !strstr(out, ": stream open\n\n"))) {
		int t = fc_next(fd, out, sizeof out, (int)(end - ht_now_ms()));
		if (t < 0 || t == FC_END)
			fail_msg("fastcgi: no answer head (%s): %s",
				 t == FC_TIMEOUT ? "timed out" : "ended", out);
	}
	const char *p = strstr(out, "Status: ");
	if (!p || sscanf(p, "Status: %d", &st) != 1)
		fail_msg("fastcgi: no status in %s", out);
	return st;
}

/* Whether the request ends (FCGI_END_REQUEST) within timeout_ms. */
static bool fc_ends(int fd, int timeout_ms)
{
	long long end = ht_now_ms() + timeout_ms;

	for (;;) {
		int t = fc_next(fd, NULL, 0, (int)(end - ht_now_ms()));
		if (t == FC_END)
			return true;
		if (t < 0)
			return false;
	}
}

/* Whether nothing arrives on fd for ms (the request is still going on). */
static bool fc_quiet(int fd, int ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	int rc;

	while ((rc = poll(&pfd, 1, ms)) < 0 && errno == EINTR)
		;
	return rc == 0;
}

/* A new stream: its connection when answered 200, -1 when 503. */
static int fc_try(void)
{
	int fd = fc_open(true), st = fc_status(fd);

	if (st == 200)
		return fd;
	close(fd);
	if (st != 503)
		fail_msg("fastcgi: a stream answered %d", st);
	return -1;
}

/* A new stream within GONE_WITHIN_MS of t0 (503s retried); its connection. */
static int fc_open_by(long long t0, const char *what)
{
	int fd;

	while ((fd = fc_try()) < 0 && ht_now_ms() - t0 <= GONE_WITHIN_MS)
		ht_sleep_ms(50);
	if (fd < 0 || ht_now_ms() - t0 > GONE_WITHIN_MS)
		fail_msg("%s: every stream slot is still held after %lld ms", what,
			 ht_now_ms() - t0);
	fprintf(stderr, "gone (fastcgi): %s: a new stream after %lld ms\n", what,
		ht_now_ms() - t0);
	return fd;
}

/*
 * Straight to pipewright.fcgi, with keepalives far off (nothing is ever
 * written to these streams): a closed connection frees its slot at once;
 * an FCGI_STDIN end arriving after libfcgi read the request is no sign of
 * leaving (peeked, not consumed); FCGI_ABORT_REQUEST behind it ends the
 * request (FCGI_END_REQUEST) and frees the slot.
 */
static void test_gone_fastcgi(void **state)
{
	(void)state;
	gone_server(60);
	int a = fc_open(true), b = fc_open(false);

	if (fc_status(a) != 200 || fc_status(b) != 200)
		fail_msg("fastcgi: the first %d streams were not accepted", GONE_STREAMS);
	if (fc_try() >= 0)
		fail_msg("fastcgi: a stream beyond PIPEWRIGHT_MAX_STREAMS=%d", GONE_STREAMS);
	/* b's body ends now; libfcgi has long returned the request. */
	fc_record(b, FC_STDIN, NULL, 0);
	if (!fc_quiet(b, 500) || fc_try() >= 0)
		fail_msg("fastcgi: a late FCGI_STDIN end ended the stream");

	long long t0 = ht_now_ms();
	close(a);
	a = fc_open_by(t0, "connection closed");
	if (!fc_quiet(b, 0))
		fail_msg("fastcgi: the other stream ended");

	t0 = ht_now_ms();
	fc_record(b, FC_ABORT, NULL, 0);
	if (!fc_ends(b, GONE_WITHIN_MS))
		fail_msg("fastcgi: FCGI_ABORT_REQUEST did not end the request");
	close(b);
	b = fc_open_by(t0, "FCGI_ABORT_REQUEST");
	close(a);
	close(b);
	passed = true;
}

/*
 * Fills G's slots with streams over HTTP version, closes one client and
 * returns how long until lighttpd accepted a new stream (503s retried;
 * fails after within_ms). The other stream must live on.
 */
static long long slot_freed_after(long version, long long within_ms)
{
	sse *s[GONE_STREAMS], *extra;
	long long t0;

	for (int i = 0; i < GONE_STREAMS; i++)
		s[i] = sse_open_on(G, GONE_PATH, -1, version);
	for (int i = 0; i < GONE_STREAMS; i++) {
		sse_wait_headers(s[i], 1500);
		if (s[i]->status != 200)
			fail_msg("stream %d: status %ld %s", i, s[i]->status, s[i]->raw ? s[i]->raw : "");
	}
	extra = sse_open_on(G, GONE_PATH, -1, version);
	sse_wait_headers(extra, 1500);
	if (extra->status != 503)
		fail_msg("a stream beyond the limit: status %ld, want 503", extra->status);
	sse_close(extra);

	t0 = ht_now_ms();
	sse_close(s[0]);   /* the client leaves */
	for (;;) {
		extra = sse_open_on(G, GONE_PATH, -1, version);
		sse_wait_headers(extra, 1500);
		if (extra->status == 200 || ht_now_ms() - t0 > within_ms)
			break;
		if (extra->status != 503)
			fail_msg("a new stream: status %ld %s", extra->status,
				 extra->raw ? extra->raw : "");
		sse_close(extra);
		pump(100);
	}
	long long took = ht_now_ms() - t0;
	if (extra->status != 200 || took > within_ms)
		fail_msg("the slot of a gone client is still held after %lld ms (status %ld)",
			 took, extra->status);
	pump(10);
	if (s[1]->done)
		fail_msg("the other stream ended (curl: %s)", curl_easy_strerror(s[1]->result));
	for (int i = 1; i < GONE_STREAMS; i++)
		sse_close(s[i]);
	sse_close(extra);
	return took;
}

/*
 * HTTP/2 (one connection per client here): lighttpd closes the FastCGI
 * connection as soon as the client's goes, and the slot is free at once,
 * with the keepalive a minute off.
 */
static void test_gone_http2(void **state)
{
	(void)state;
	gone_server(60);
	curl_multi_setopt(M, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
	long long took = slot_freed_after(CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE, GONE_WITHIN_MS);
	curl_multi_setopt(M, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	fprintf(stderr, "gone (HTTP/2): a new stream %lld ms after the client left\n", took);
	passed = true;
}

/*
 * HTTP/1.1: lighttpd takes the client's FIN for a half-close and keeps the
 * FastCGI connection until a write to the client fails: the first
 * keepalive after the client left (GONE_KEEPALIVE_S after the stream
 * began). The slot is then free at once (3 s of slack), not a keepalive
 * later, as it used to be.
 */
#define GONE_KEEPALIVE_S 5
static void test_gone_http1(void **state)
{
	(void)state;
	gone_server(GONE_KEEPALIVE_S);
	long long took = slot_freed_after(CURL_HTTP_VERSION_1_1, GONE_KEEPALIVE_S * 1000 + 3000);
	fprintf(stderr, "gone (HTTP/1.1, keepalive %d s): a new stream %lld ms after the "
		"client left\n", GONE_KEEPALIVE_S, took);
	passed = true;
}

/*
 * A change written by another process (the runner, or here this test
 * through the store, as the CLI would) reaches an open stream while
 * nothing but the database watcher can wake it: the fallback check is
 * off (PIPEWRIGHT_SSE_FALLBACK_MS=0), the keepalive and the bounded end
 * an hour and a minute away. Each change arrives, and so does the
 * runner's run with its tasks.
 */
static void test_woken_by_other_process(void **state)
{
	(void)state;
	if (setenv("PIPEWRIGHT_SSE_FALLBACK_MS", "0", 1) != 0 ||
	    setenv("PIPEWRIGHT_SSE_KEEPALIVE_SECONDS", "3600", 1) != 0 ||
	    setenv("PIPEWRIGHT_SSE_MAX_SECONDS", "60", 1) != 0)
		fail_msg("setenv: %s", strerror(errno));
	G = ht_start(P->dir, NULL);
	if (unsetenv("PIPEWRIGHT_SSE_FALLBACK_MS") != 0 ||
	    unsetenv("PIPEWRIGHT_SSE_KEEPALIVE_SECONDS") != 0 ||
	    setenv("PIPEWRIGHT_SSE_MAX_SECONDS", "2", 1) != 0)
		fail_msg("setenv: %s", strerror(errno));

	sse *s = sse_open_on(G, "/api/v1/events?dag_id=other", -1, CURL_HTTP_VERSION_1_1);
	sse_wait_headers(s, 5000);
	if (s->status != 200)
		fail_msg("stream: status %ld: %s", s->status, s->raw ? s->raw : "");
	pump(300);   /* the stream reaches its first wait */
	for (int i = 0; i < 4; i++) {
		hr_set_paused(P, "other", i % 2 == 0);
		sse_wait_events(s, (size_t)i + 1, 20000);
		sse_event *e = &s->ev[i];
		if (strcmp(e->type, "dag.updated") != 0)
			fail_msg("change %d: event %s, want dag.updated", i, e->type);
		pump(50);
	}
	/* The runner's own writes: the run from queued to success. */
	ht_resp *r = ht_send(G, "POST", "/api/v1/dags/other/runs", "{\"run_id\": \"woken1\"}");
	ht_ok(r, 201);
	ht_resp_free(r);
	for (long long end = ht_now_ms() + 30000;;) {
		if (s->n > 4 && run_ended(&s->ev[s->n - 1], "woken1"))
			break;
		if (s->done || ht_now_ms() > end)
			fail_msg("run woken1 did not reach the stream: %zu events, done %d", s->n,
				 s->done);
		pump(50);
	}
	if (s->done)
		fail_msg("the stream ended early");
	fprintf(stderr, "woken: %zu events from another process, no fallback\n", s->n);
	sse_close(s);
	hr_set_paused(P, "other", false);
	passed = true;
}

/*
 * The process's tail of the events table (events.c): one commit of more
 * events than it holds (1,500; it keeps 1,024) sends a waiting stream to
 * the table, and the single commits after it (of this DAG and another)
 * come from the tail. With a
 * dag_id filter, the stream has every event of that DAG once, in id
 * order, as the table has them, and no other.
 */
static void test_tail(void **state)
{
	static const char one[] = "INSERT INTO events(type, dag_id, data, created_at)"
				  " VALUES ('dag.updated', ?, '{\"one\": 1}', 0)";
	(void)state;
	sse *s = sse_open_ok("/api/v1/events?dag_id=tailtest", -1);
	pump(300);   /* the stream reaches its first wait */
	long long base = max_event_id();
	hr_sql(P, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)"
		  " INSERT INTO events(type, dag_id, data, created_at)"
		  " SELECT 'dag.updated', CASE WHEN i % 3 = 0 THEN 'other' ELSE 'tailtest' END,"
		  " '{\"i\": ' || i || '}', 0 FROM n", "");
	for (int i = 0; i < 6; i++) {
		pump(100);   /* one commit at a time, each seen by the watcher */
		hr_sql(P, one, "s", i % 2 ? "tailtest" : "other");
	}
	ids want = {0}, got = {0};
	page_ids("&dag_id=tailtest", base, max_event_id(), &want);
	if (want.n != 1003)
		fail_msg("the table has %zu events of tailtest, want 1003", want.n);
	sse_wait_events(s, want.n, W);
	pump(300);   /* nothing more may come */
	for (size_t i = 0; i < s->n; i++)
		ids_add(&got, s->ev[i].id);
	expect_same_ids("tail", &got, &want);
	sse_close(s);
	free(want.v);
	free(got.v);
	passed = true;
}

/* The log file of try 1 of logger/l1/w holds want (a wait predicate). */
static bool log_holds(hr_project *p, void *want)
{
	char *log = hr_try_log(p, "logger", "l1", "w", 1);
	bool yes = log && strstr(log, want);
	free(log);
	return yes;
}

/* Pumps until s's body holds want (fails when it ends first or after timeout_ms). */
static void wait_body(sse *s, const char *want, int timeout_ms)
{
	for (long long end = ht_now_ms() + timeout_ms; !s->raw || !strstr(s->raw, want);) {
		if (s->done || ht_now_ms() > end)
			fail_msg("%s: no '%s' (done %d, status %ld): %s", s->url, want, s->done,
				 s->status, s->raw ? s->raw : "");
		pump(20);
	}
}

/* GET path on the group's server; expects status and (200) exactly body. */
static void expect_log(const char *path, long status, const char *body)
{
	ht_resp *r = ht_get(S, path);
	if (status != 200)
		ht_err(r, status);
	else if (r->status != 200 || strcmp(r->body, body) != 0)
		ht_fail(r, body);
	ht_resp_free(r);
}

/*
 * GET .../logs?follow=true (one long-lived text/plain answer, on a lighttpd
 * of its own whose bound is 60 s): a running try's lines arrive on the open
 * request as the task writes them; the answer ends by itself once the try
 * ended, with the whole log; ?offset= continues where a client stopped; a
 * finished try's follow ends at once; bad values are 400; a log file that
 * is a symlink is refused (403).
 */
static void test_log_follow(void **state)
{
	(void)state;
	static const char base[] = "/api/v1/dags/logger/runs/l1/tasks/w/logs";
	char path[256];

	if (setenv("PIPEWRIGHT_SSE_MAX_SECONDS", "60", 1) != 0)
		fail_msg("setenv: %s", strerror(errno));
	G = ht_start(P->dir, NULL);
	if (setenv("PIPEWRIGHT_SSE_MAX_SECONDS", "2", 1) != 0)
		fail_msg("setenv: %s", strerror(errno));
	trigger("logger", "l1");
	hr_wait_for(P, log_holds, (void *)"first\n", "the first log line", W);

	snprintf(path, sizeof path, "%s?follow=true", base);
	sse *s = sse_open_on(G, path, -1, CURL_HTTP_VERSION_1_1);
	s->plain = true;
	wait_body(s, "first\n", W);
	expect_header(s, "Content-Type", "text/plain");
	hr_write(P, "var/log.go", "");
	wait_body(s, "second\n", W);        /* written after the request started */
	if (strcmp(hr_task_state(P, "logger", "l1", "w"), "running") != 0)
		fail_msg("w ended before var/log.end");
	hr_write(P, "var/log.end", "");
	sse_wait_end(s, W);
	if (s->status != 200 || strcmp(s->raw, "first\nsecond\nthird\n") != 0)
		fail_msg("follow: status %ld, body '%s'", s->status, s->raw ? s->raw : "");
	/* It ended because the try did. */
	const char *st = hr_task_state(P, "logger", "l1", "w");
	if (strcmp(st, "success") != 0)
		fail_msg("the follow ended with w %s", st);
	sse_close(s);

	/* A finished try: the whole log (or from offset), at once. */
	snprintf(path, sizeof path, "%s?follow=true", base);
	expect_log(path, 200, "first\nsecond\nthird\n");
	snprintf(path, sizeof path, "%s?follow=true&try_number=1&offset=6", base);
	expect_log(path, 200, "second\nthird\n");
	snprintf(path, sizeof path, "%s?follow=true&offset=99", base);
	expect_log(path, 200, "");
	snprintf(path, sizeof path, "%s?follow=false", base);
	expect_log(path, 200, "first\nsecond\nthird\n");
	/* Bad values. */
	static const char *const bad[] = {"?follow=yes", "?follow=", "?follow=true&offset=-1",
		"?follow=true&offset=abc", "?follow=true&offset=", "?offset=3",
		"?follow=true&offset=99999999999999999999"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		snprintf(path, sizeof path, "%s%s", base, bad[i]);
		expect_log(path, 400, NULL);
	}
	snprintf(path, sizeof path, "%s?follow=true&try_number=9", base);
	expect_log(path, 404, NULL);
	/* A log file that became a symlink (a task writes its own log) is refused. */
	char *file = hr_path(P, "var/logs/logger/l1/w/1.log");
	if (unlink(file) != 0 || symlink("/etc/passwd", file) != 0)
		fail_msg("%s: %s", file, strerror(errno));
	free(file);
	snprintf(path, sizeof path, "%s?follow=true", base);
	expect_log(path, 403, NULL);
	passed = true;
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_live_stream),
		T(test_filters),
		T(test_resume_under_load),
		T(test_resume_points),
		T(test_missed),
		T(test_stream_limit),
		T(test_run_holds_a_slot),
		T(test_gone_fastcgi),
		T(test_gone_http2),
		T(test_gone_http1),
		T(test_woken_by_other_process),
		T(test_log_follow),
		T(test_tail),
	};
	return cmocka_run_group_tests_name("sse", tests, group_setup, group_teardown);
}
