/*
 * test_malformed.c - a table of malformed requests through a real lighttpd:
 * bad JSON, wrong types, unknown fields, traversal and oversized ids, huge
 * bodies, wrong methods and content types, SQL-looking strings, NUL bytes,
 * invalid UTF-8. Each must answer its 4xx with DESIGN.md's error envelope
 * (POST /run: FastAPI's 422 detail), never a 5xx; afterwards the same
 * pipewright.fcgi process still answers.
 *
 * lighttpd is set up to pass control characters (%00) and long request
 * lines through, so that pipewright, not the web server, answers them.
 */
#include "harness.h"
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Placeholders expanded in paths and bodies. */
#define ID251 "@251@"       /* 251 characters */
#define ID10K "@10000@"     /* 10,000 characters */
#define BIG "@2MiB@"        /* a 2 MiB JSON body */
#define NUL_BODY "@NUL@"    /* {"run_id": "a<NUL>b"} */
#define BAD_UTF8 "@UTF8@"   /* {"run_id": "<ff fe>"} */
#define DEEP "@DEEP@"       /* {"conf": [[[[...]]]]} 5,000 deep */

#define JSON "application/json"

typedef struct row {
	const char *method;
	const char *path;
	const char *ctype;  /* NULL: no body, no Content-Type */
	const char *body;   /* NULL: none */
	long status;
} row;

#define RUNS "/api/v1/dags/d/runs"
#define POOLS "/api/v1/pools"

static const row ROWS[] = {
	/* --- bodies of a trigger --- */
	{"POST", RUNS, JSON, "{", 400},
	{"POST", RUNS, JSON, "{\"run_id\":", 400},
	{"POST", RUNS, JSON, "not json", 400},
	{"POST", RUNS, JSON, "{'run_id': 'x'}", 400},
	{"POST", RUNS, JSON, "{\"run_id\": \"x\",}", 400},
	{"POST", RUNS, JSON, "{\"run_id\": \"x\"} trailing", 400},
	{"POST", RUNS, JSON, "[]", 400},
	{"POST", RUNS, JSON, "[{\"run_id\": \"x\"}]", 400},
	{"POST", RUNS, JSON, "\"run\"", 400},
	{"POST", RUNS, JSON, "42", 400},
	{"POST", RUNS, JSON, "null", 400},
	{"POST", RUNS, JSON, "{\"conf\": \"x\"}", 400},
	{"POST", RUNS, JSON, "{\"conf\": 5}", 400},
	{"POST", RUNS, JSON, "{\"conf\": [1, 2]}", 400},
	{"POST", RUNS, JSON, "{\"run_id\": 5}", 400},
	{"POST", RUNS, JSON, "{\"run_id\": null}", 400},
	{"POST", RUNS, JSON, "{\"run_id\": \"\"}", 400},
	{"POST", RUNS, JSON, "{\"run_id\": \"../x\"}", 400},
	{"POST", RUNS, JSON, "{\"run_id\": \"a/b\"}", 400},
	{"POST", RUNS, JSON, "{\"run_id\": \"x' OR '1'='1\"}", 400},
	{"POST", RUNS, JSON, "{\"run_id\": \"" ID251 "\"}", 400},
	{"POST", RUNS, JSON, "{\"tags\": \"a\"}", 400},
	{"POST", RUNS, JSON, "{\"tags\": [1]}", 400},
	{"POST", RUNS, JSON, "{\"task_ids\": {}}", 400},
	{"POST", RUNS, JSON, "{\"only_missing_outputs\": \"yes\"}", 400},
	{"POST", RUNS, JSON, "{\"unknown\": 1}", 400},
	{"POST", RUNS, JSON, "{\"run_id\": \"ok\", \"env\": \"prod\"}", 400},
	{"POST", RUNS, JSON, NUL_BODY, 400},
	/* an escaped NUL: json-c keeps it, C strings would cut at it */
	{"POST", RUNS, JSON, "{\"run_id\": \"x\\u0000y\"}", 400},
	{"POST", RUNS, JSON, "{\"run_id\": \"nt\", \"task_ids\": [\"t\\u0000\"]}", 400},
	{"POST", RUNS, JSON, "{\"run_id\": \"nc\", \"conf\": {\"a\": {\"b\": \"\\u0000\"}}}", 400},
	{"POST", RUNS, JSON, "{\"run_id\\u0000\": \"nk\"}", 400},
	{"POST", RUNS, JSON, BAD_UTF8, 400},
	{"POST", RUNS, JSON, DEEP, 400},
	{"POST", RUNS, JSON, BIG, 413},
	{"POST", RUNS, "text/plain", "{\"run_id\": \"x\"}", 415},
	{"POST", RUNS, "application/x-www-form-urlencoded", "run_id=x", 415},
	{"POST", RUNS, "application/xml", "<run/>", 415},
	/* --- PATCH a DAG --- */
	{"PATCH", "/api/v1/dags/d", JSON, "{\"is_paused\": \"true\"}", 400},
	{"PATCH", "/api/v1/dags/d", JSON, "{\"is_paused\": 1}", 400},
	{"PATCH", "/api/v1/dags/d", JSON, "{\"is_paused\": null}", 400},
	{"PATCH", "/api/v1/dags/d", JSON, "{}", 400},
	{"PATCH", "/api/v1/dags/d", JSON, "", 400},
	{"PATCH", "/api/v1/dags/d", JSON, "[true]", 400},
	{"PATCH", "/api/v1/dags/d", JSON, "{\"is_paused\": true, \"tags\": []}", 400},
	{"PATCH", "/api/v1/dags/d", "text/plain", "{\"is_paused\": true}", 415},
	{"PATCH", "/api/v1/dags/d", JSON, BIG, 413},
	/* --- pools --- */
	{"POST", POOLS, JSON, "", 400},
	{"POST", POOLS, JSON, "[]", 400},
	{"POST", POOLS, JSON, "{\"slots\": 1}", 400},
	{"POST", POOLS, JSON, "{\"name\": \"p\"}", 400},
	{"POST", POOLS, JSON, "{\"name\": \"p\", \"slots\": 1.5}", 400},
	{"POST", POOLS, JSON, "{\"name\": \"p\", \"slots\": \"3\"}", 400},
	{"POST", POOLS, JSON, "{\"name\": \"p\", \"slots\": -5}", 400},
	{"POST", POOLS, JSON, "{\"name\": 5, \"slots\": 1}", 400},
	{"POST", POOLS, JSON, "{\"name\": \"../../etc\", \"slots\": 1}", 400},
	{"POST", POOLS, JSON, "{\"name\": \"x' OR '1'='1\", \"slots\": 1}", 400},
	{"POST", POOLS, JSON, "{\"name\": \"" ID251 "\", \"slots\": 1}", 400},
	{"POST", POOLS, JSON, "{\"name\": \"p\", \"slots\": 1, \"open\": 1}", 400},
	{"POST", POOLS, "text/plain", "{\"name\": \"p\", \"slots\": 1}", 415},
	{"POST", POOLS, JSON, "{\"name\": \"pa\\u0000 evil\", \"slots\": 1}", 400},
	{"PATCH", POOLS "/default_pool", JSON, "{\"description\": \"\\u0000\"}", 400},
	{"PATCH", POOLS "/default_pool", JSON, "{\"slots\": \"x\"}", 400},
	{"PATCH", POOLS "/default_pool", JSON, "{\"slots\": -1}", 400},
	{"PATCH", POOLS "/default_pool", JSON, "{\"name\": \"y\"}", 400},
	{"PATCH", POOLS "/default_pool", JSON, "{\"slots\":", 400},
	/* --- cancel and retry take no fields --- */
	{"POST", RUNS "/r1/retry", JSON, "{\"x\": 1}", 400},
	{"POST", RUNS "/r1/retry", JSON, "{", 400},
	{"POST", RUNS "/r1/retry", JSON, "[]", 400},
	{"POST", RUNS "/r1/retry", "text/plain", "{}", 415},
	{"DELETE", RUNS "/r1", JSON, "{\"x\": 1}", 400},
	{"DELETE", RUNS "/r1", JSON, "not json", 400},
	{"DELETE", RUNS "/r1", "text/plain", "cancel", 415},
	/* --- ids in paths --- */
	{"GET", "/api/v1/dags/..%2F..%2Fetc%2Fpasswd", NULL, NULL, 404},
	{"GET", "/api/v1/dags/%2e%2e/runs", NULL, NULL, 404},
	{"GET", "/api/v1/dags/d/runs/..%2F..%2F..%2Fx", NULL, NULL, 404},
	{"GET", "/api/v1/dags/" ID251, NULL, NULL, 404},
	{"GET", "/api/v1/dags/" ID10K, NULL, NULL, 404},
	{"GET", "/api/v1/dags/d/runs/" ID251, NULL, NULL, 404},
	{"GET", "/api/v1/dags/d/runs/" ID10K "/tasks", NULL, NULL, 404},
	{"POST", "/api/v1/dags/" ID10K "/runs", JSON, "{}", 404},
	{"GET", "/api/v1/dags/x'%20OR%20'1'='1", NULL, NULL, 404},
	{"GET", "/api/v1/dags/d/runs/x'%20OR%20'1'='1", NULL, NULL, 404},
	{"GET", "/api/v1/dags/d%00/runs", NULL, NULL, 404},
	{"GET", "/api/v1/dags/-bad", NULL, NULL, 404},
	{"GET", "/api/v1/dags/d/runs/r1/tasks/x%3By", NULL, NULL, 404},
	{"PATCH", POOLS "/%20", JSON, "{\"slots\": 1}", 404},
	{"DELETE", POOLS "/x'%20OR%20'1'='1", NULL, NULL, 404},
	{"DELETE", RUNS "/" ID251, NULL, NULL, 404},
	{"GET", "/api/v2/dags", NULL, NULL, 404},
	/* --- query values --- */
	{"GET", RUNS "?state=%00", NULL, NULL, 400},
	{"GET", RUNS "?state=success%00", NULL, NULL, 400},
	{"GET", RUNS "?state=x'%20OR%20'1'='1", NULL, NULL, 400},
	{"GET", RUNS "?state=success,", NULL, NULL, 400},
	{"GET", RUNS "?order_by=queued_at%3BDROP%20TABLE%20runs", NULL, NULL, 400},
	{"GET", RUNS "?order_by=queued_at;DROP%20TABLE%20runs", NULL, NULL, 400},
	{"GET", RUNS "?order_by=--queued_at", NULL, NULL, 400},
	{"GET", RUNS "?order_by=run_id", NULL, NULL, 400},
	{"GET", RUNS "?since=notadate", NULL, NULL, 400},
	{"GET", RUNS "?since=2024-13-01T00:00:00Z", NULL, NULL, 400},
	{"GET", RUNS "?until=%27", NULL, NULL, 400},
	{"GET", RUNS "?limit=0", NULL, NULL, 400},
	{"GET", "/api/v1/dags?limit=%00", NULL, NULL, 400},
	{"GET", "/api/v1/dags?limit=1001", NULL, NULL, 400},
	{"GET", "/api/v1/dags?limit=1e3", NULL, NULL, 400},
	{"GET", "/api/v1/dags?limit=10abc", NULL, NULL, 400},
	{"GET", "/api/v1/dags?limit=99999999999999999999", NULL, NULL, 400},
	{"GET", "/api/v1/dags?limit=", NULL, NULL, 400},
	{"GET", "/api/v1/dags?offset=-5", NULL, NULL, 400},
	{"GET", "/api/v1/dags?offset=abc", NULL, NULL, 400},
	{"GET", "/api/v1/dags?paused=1%20OR%201", NULL, NULL, 400},
	{"GET", "/api/v1/dags?limit=%zz", NULL, NULL, 400},
	{"GET", POOLS "?limit=-1", NULL, NULL, 400},
	{"GET", "/api/v1/events?after_id=abc", NULL, NULL, 400},
	{"GET", "/api/v1/events?limit=5000", NULL, NULL, 400},
	/* --- methods --- */
	{"PUT", "/api/v1/dags", JSON, "{}", 405},
	{"DELETE", "/api/v1/dags", NULL, NULL, 405},
	{"POST", "/api/v1/dags", JSON, "{}", 405},
	{"PUT", POOLS, JSON, "{}", 405},
	{"DELETE", POOLS, NULL, NULL, 405},
	{"PATCH", RUNS, JSON, "{}", 405},
	{"DELETE", RUNS, NULL, NULL, 405},
	{"PUT", RUNS "/r1", JSON, "{}", 405},
	{"POST", "/api/v1/health", JSON, "{}", 405},
	{"DELETE", "/api/v1/events", NULL, NULL, 405},
	{"GET", RUNS "/r1/retry", NULL, NULL, 405},
	/* --- Kedro's /run: FastAPI's 422 --- */
	{"POST", "/run", JSON, "{", 422},
	{"POST", "/run", JSON, "[]", 422},
	{"POST", "/run", JSON, "{\"pipeline_names\": \"x\"}", 422},
	{"POST", "/run", JSON, "{\"runner\": \"a;rm -rf /\"}", 422},
	{"POST", "/run", JSON, "{\"runner\": \"x' OR '1'='1\"}", 422},
	{"POST", "/run", JSON, BAD_UTF8, 422},
	{"POST", "/run", JSON, "{\"env\": \"prod\"}", 422},
};

static hr_project *P;
static ht_server *S;

static int setup(void **state)
{
	(void)state;
	P = hr_project_new(1);
	hr_dag(P, "d", "tasks:\n  - id: t\n    command: \"true\"\n");
	ht_opts o = {.raw_urls = true};
	S = ht_start(P->dir, &o);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ht_stop(S);
	hr_project_free(P);
	return 0;
}

/* s with every placeholder expanded; *len gets the length (NULs allowed). */
static char *expand(const char *s, size_t *len)
{
	static const char nul_body[] = "{\"run_id\": \"a\0b\"}";
	static const char utf8_body[] = "{\"run_id\": \"\xff\xfe\"}";
	char *out;

	if (!strcmp(s, NUL_BODY)) {
		*len = sizeof nul_body - 1;
		out = malloc(*len + 1);
		assert_non_null(out);
		memcpy(out, nul_body, *len + 1);
		return out;
	}
	if (!strcmp(s, BAD_UTF8)) {
		*len = sizeof utf8_body - 1;
		out = strdup(utf8_body);
		assert_non_null(out);
		return out;
	}
	if (!strcmp(s, BIG)) {
		size_t n = 2u << 20;
		out = malloc(n + 1);
		assert_non_null(out);
		memset(out, ' ', n);
		memcpy(out, "{\"conf\": {\"pad\": \"", 18);
		memset(out + 18, 'x', n - 18 - 3);
		memcpy(out + n - 3, "\"}}", 3);
		out[n] = '\0';
		*len = n;
		return out;
	}
	if (!strcmp(s, DEEP)) {
		size_t d = 5000;
		size_t n = 9 + 2 * d + 1;
		out = malloc(n + 1);
		assert_non_null(out);
		memcpy(out, "{\"conf\": ", 9);
		memset(out + 9, '[', d);
		memset(out + 9 + d, ']', d);
		out[9 + 2 * d] = '}';
		out[n] = '\0';
		*len = n;
		return out;
	}
	/* ID251 / ID10K inside a path or body. */
	const char *p = strstr(s, ID251);
	size_t plen = strlen(ID251), ilen = 251;
	if (!p) {
		p = strstr(s, ID10K);
		plen = strlen(ID10K);
		ilen = 10000;
	}
	if (!p) {
		out = strdup(s);
		assert_non_null(out);
		*len = strlen(out);
		return out;
	}
	size_t pre = (size_t)(p - s), post = strlen(p + plen);
	out = malloc(pre + ilen + post + 1);
	assert_non_null(out);
	memcpy(out, s, pre);
	memset(out + pre, 'a', ilen);
	memcpy(out + pre + ilen, p + plen, post + 1);
	*len = pre + ilen + post;
	return out;
}

static void check_row(const row *w, size_t i, int *failures)
{
	size_t plen, blen = 0;
	char *path = expand(w->path, &plen);
	char *body = w->body ? expand(w->body, &blen) : NULL;
	char ct[128];
	const char *hdrs[2] = {NULL, NULL};
	if (w->ctype) {
		snprintf(ct, sizeof ct, "Content-Type: %s", w->ctype);
		hdrs[0] = ct;
	}
	ht_resp *r = ht_req(S, w->method, path, hdrs, body ? body : NULL,
			    body ? blen : 0);
	char what[256] = "";
	if (r->status != w->status) {
		snprintf(what, sizeof what, "expected HTTP %ld", w->status);
	} else if (!r->json || !json_object_is_type(r->json, json_type_object)) {
		snprintf(what, sizeof what, "body is not a JSON object");
	} else if (!strcmp(w->path, "/run")) {
		json_object *d = ht_at(r->json, "detail");
		if (!d || !json_object_is_type(d, json_type_array) ||
		    json_object_array_length(d) == 0 || !ht_at(d, "0.type") ||
		    !ht_at(d, "0.loc") || !ht_at(d, "0.msg"))
			snprintf(what, sizeof what, "not FastAPI's 422 detail");
	} else {
		json_object *data, *code = ht_at(r->json, "error.code");
		if (!json_object_object_get_ex(r->json, "data", &data) || data ||
		    !code || strcmp(json_object_get_string(code), ht_code(w->status)) ||
		    !ht_at(r->json, "error.message"))
			snprintf(what, sizeof what, "not the error envelope with code %s",
				 ht_code(w->status));
	}
	if (*what) {
		(*failures)++;
		fprintf(stderr, "row %zu: %s %.200s%s [%s, %zu bytes] -> HTTP %ld: %s\n"
			"  body: %.500s\n", i, w->method, path, plen > 200 ? "..." : "",
			w->ctype ? w->ctype : "no body", blen, r->status, what, r->body);
	}
	ht_resp_free(r);
	free(path);
	free(body);
}

static void test_malformed_table(void **state)
{
	(void)state;
	size_t n = sizeof ROWS / sizeof *ROWS;
	int failures = 0;

	assert_true(n >= 60);
	/* A queued run r1 (no runner here) for the paths that name it. */
	ht_resp *r = ht_send(S, "POST", RUNS, "{\"run_id\": \"r1\"}");
	ht_ok(r, 201);
	ht_resp_free(r);
	pid_t before = ht_fcgi_pid(S);
	assert_true(before > 0);

	for (size_t i = 0; i < n; i++)
		check_row(&ROWS[i], i, &failures);

	/* SQL-looking values that are valid filters just match nothing. */
	r = ht_get(S, "/api/v1/dags?tags=x'%20OR%20'1'='1");
	if (json_object_array_length(ht_ok(r, 200)) != 0)
		ht_fail(r, "a SQL-looking tag matches nothing");
	ht_resp_free(r);

	/* Still the same process, still answering. */
	r = ht_get(S, "/api/v1/health");
	ht_ok(r, 200);
	ht_resp_free(r);
	pid_t after = ht_fcgi_pid(S);
	if (after != before)
		fail_msg("pipewright.fcgi was pid %d, is now %d (it crashed?)", (int)before,
			 (int)after);
	r = ht_get(S, RUNS "/r1");
	ht_ok(r, 200);
	ht_resp_free(r);
	/* Refused requests changed nothing: r1 still queued, no runs or pools made. */
	const char *st = hr_run_state(P, "d", "r1");
	if (!st || strcmp(st, "queued") != 0)
		fail_msg("r1 is %s, expected queued", st ? st : "gone");
	if (hr_sql_int(P, -1, "SELECT count(*) FROM commands", "") != 0)
		fail_msg("a refused cancel or retry made a command");
	if (hr_sql_int(P, -1, "SELECT count(*) FROM runs", "") != 1)
		fail_msg("a refused trigger made a run");
	if (hr_sql_int(P, -1, "SELECT count(*) FROM pools WHERE name <> 'default_pool'", "") != 0)
		fail_msg("a refused request made a pool");
	if (hr_sql_int(P, -1, "SELECT count(*) FROM pools WHERE name = 'default_pool'"
		       " AND description = 'Default pool'", "") != 1)
		fail_msg("a refused PATCH changed default_pool");
	if (failures) {
		ht_dump_logs(S);
		fail_msg("%d of %zu malformed requests were not answered as expected",
			 failures, n);
	}
	hr_pass(P);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_malformed_table, setup, teardown),
	};
	return cmocka_run_group_tests_name("malformed", tests, NULL, NULL);
}
