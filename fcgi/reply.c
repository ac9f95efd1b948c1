/*
 * reply.c - answering a request: the status table, the JSON envelope of
 * DESIGN.md section 5, raw and empty bodies, and streams (SSE) that flush
 * as they go. A request is answered exactly once; the status line and the
 * headers collected so far go out with the first byte.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* Every status pipewright answers with: reason phrase, envelope code. */
static const struct {
	int status;
	const char *reason;
	const char *code;
} statuses[] = {
	{200, "OK", NULL},
	{201, "Created", NULL},
	{202, "Accepted", NULL},
	{204, "No Content", NULL},
	{304, "Not Modified", NULL},
	{400, "Bad Request", "bad_request"},
	{401, "Unauthorized", "unauthorized"},
	{403, "Forbidden", "forbidden"},
	{404, "Not Found", "not_found"},
	{405, "Method Not Allowed", "method_not_allowed"},
	{408, "Request Timeout", "request_timeout"},
	{409, "Conflict", "conflict"},
	{411, "Length Required", "length_required"},
	{413, "Payload Too Large", "payload_too_large"},
	{415, "Unsupported Media Type", "unsupported_media_type"},
	{414, "URI Too Long", "bad_request"},
	{422, "Unprocessable Entity", "unprocessable_entity"},
	{431, "Request Header Fields Too Large", "bad_request"},
	{499, "Client Closed Request", "client_closed"},   /* logged, never read */
	{500, "Internal Server Error", "internal"},
	{503, "Service Unavailable", "unavailable"},
};

#define N_STATUSES (sizeof statuses / sizeof *statuses)

const char *pw_status_code(int status)
{
	for (size_t i = 0; i < N_STATUSES; i++)
		if (statuses[i].status == status && statuses[i].code)
			return statuses[i].code;
	return status >= 400 && status < 500 ? "bad_request" : "internal";
}

/* The reason phrase of a status line. */
static const char *status_reason(int status)
{
	for (size_t i = 0; i < N_STATUSES; i++)
		if (statuses[i].status == status)
			return statuses[i].reason;
	return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
}

/* --- writing ------------------------------------------------------------------- */

/* Writes n bytes; a failure marks the client as gone. Returns 0 or -1. */
static int put(pw_req *req, const char *buf, size_t n)
{
	if (req->client_gone)
		return -1;
	if (req->head_only && req->head_sent)
		return 0; /* HEAD: a body is dropped, its Content-Length kept */
	if (n && req->io->write(req->io, buf, n) != 0) {
		req->client_gone = true;
		return -1;
	}
	return 0;
}

/* A header name is an HTTP token; a value has no control characters. */
static bool valid_header(const char *name, const char *value)
{
	if (!*name || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789!#$%&'*+-.^_`|~") != strlen(name))
		return false;
	for (const unsigned char *v = (const unsigned char *)value; *v; v++)
		if ((*v < 0x20 && *v != '\t') || *v == 0x7f)
			return false;
	return true;
}

int pw_reply_header(pw_req *req, const char *name, const char *value)
{
	if (req->started || !name || !value || !valid_header(name, value))
		return -1;
	if (pw_strv_push(&req->headers, name) != 0)
		return -1;
	if (pw_strv_push(&req->headers, value) != 0) {
		free(req->headers.v[--req->headers.n]);
		return -1;
	}
	return 0;
}

/* A reply head being formatted: what fits in size bytes, and the length. */
typedef struct head_buf {
	char *p;
	size_t size, len;
	bool bad;
} head_buf;

/* Appends to h like snprintf: counts what does not fit. */
__attribute__((format(printf, 2, 3)))
static void head_add(head_buf *h, const char *fmt, ...)
{
	va_list ap;
	size_t at = h->len < h->size ? h->len : h->size;
	va_start(ap, fmt);
	int w = vsnprintf(h->p + at, h->size - at, fmt, ap);
	va_end(ap);
	if (w < 0)
		h->bad = true;
	else
		h->len += (size_t)w;
}

/* Formats the head into h (see begin). */
static void head_format(const pw_req *req, head_buf *h, int status, const char *content_type,
			long long length)
{
	head_add(h, "Status: %d %s\r\n", status, status_reason(status));
	if (content_type)
		head_add(h, "Content-Type: %s\r\n", content_type);
	if (length >= 0)
		head_add(h, "Content-Length: %lld\r\n", length);
	for (size_t i = 0; i + 1 < req->headers.n; i += 2)
		head_add(h, "%s: %s\r\n", req->headers.v[i], req->headers.v[i + 1]);
	head_add(h, "\r\n");
}

/* Writes the head; from then on a HEAD request's body is dropped. */
static int head_put(pw_req *req, const char *head, size_t n)
{
	int rc = put(req, head, n);
	req->head_sent = true;
	return rc;
}

/*
 * Starts the reply: status line, Content-Type (unless NULL), Content-Length
 * (unless < 0), the collected headers and the blank line. Formatted on the
 * stack; a head too long for it is formatted again in the heap. Returns 0
 * or -1.
 */
static int begin(pw_req *req, int status, const char *content_type, long long length)
{
	char small[1024];
	head_buf h = {small, sizeof small, 0, false};

	assert(!req->started && "a request is answered once");
	req->started = true;
	req->status = status;
	head_format(req, &h, status, content_type, length);
	if (h.bad)
		return -1;
	if (h.len < sizeof small)
		return head_put(req, small, h.len);
	h = (head_buf){malloc(h.len + 1), h.len + 1, 0, false};
	if (!h.p)
		return -1;
	head_format(req, &h, status, content_type, length);
	int rc = h.bad || h.len >= h.size ? -1 : head_put(req, h.p, h.len);
	free(h.p);
	return rc;
}

int pw_reply_raw(pw_req *req, int status, const char *content_type, const char *body,
		 size_t len)
{
	if (begin(req, status, content_type, (long long)len) != 0)
		return -1;
	return put(req, body, len);
}

int pw_reply_empty(pw_req *req, int status)
{
	return begin(req, status, NULL, -1);
}

int pw_reply_json(pw_req *req, int status, json_object *body)
{
	size_t len = 0;
	const char *s = json_object_to_json_string_length(
		body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	int rc = s ? pw_reply_raw(req, status, "application/json", s, len) : -1;
	json_object_put(body);
	return rc;
}

int pw_reply_data(pw_req *req, int status, json_object *data, json_object *meta)
{
	json_object *env = json_object_new_object();
	if (!meta)
		meta = json_object_new_object();
	if (!env || !meta || json_object_object_add(env, "data", data) != 0) {
		json_object_put(env);
		json_object_put(data);
		json_object_put(meta);
		return -1;
	}
	if (json_object_object_add(env, "meta", meta) != 0) {
		json_object_put(env);
		json_object_put(meta);
		return -1;
	}
	return pw_reply_json(req, status, env);
}

/*
 * Database faults that pass by themselves, or once an operator acts: a
 * handler's 500 caused by one is answered 503 `unavailable` with
 * Retry-After (seconds), so that clients retry instead of giving up.
 */
static const struct {
	int code;            /* primary SQLite result code */
	const char *what;
	const char *retry_after;
} db_faults[] = {
	{SQLITE_BUSY, "the database is locked by another connection", "2"},
	{SQLITE_LOCKED, "the database is locked by another connection", "2"},
	{SQLITE_FULL, "the disk holding the database is full", "30"},
	{SQLITE_IOERR, "the database cannot be read or written (I/O error)", "10"},
	{SQLITE_READONLY, "the database is read-only", "30"},
	{SQLITE_CANTOPEN, "the database cannot be opened", "10"},
};

/* The db_faults index of the request's connection's last error, or -1. */
static int db_fault(const pw_req *req)
{
	pw_store *store = req->store ? *req->store : NULL;
	int code = store ? pw_store_errcode(store) & 0xff : SQLITE_OK;

	for (size_t i = 0; i < sizeof db_faults / sizeof *db_faults; i++)
		if (db_faults[i].code == code)
			return (int)i;
	return -1;
}

int pw_reply_unavailable(pw_req *req, const char *retry_after, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = pw_vasprintf(fmt, ap);
	va_end(ap);
	pw_reply_header(req, "Retry-After", retry_after);
	pw_reply_error(req, 503, "%s", msg ? msg : "service unavailable");
	free(msg);
	return 0;
}

int pw_reply_error(pw_req *req, int status, const char *fmt, ...)
{
	static const char fallback[] =
		"{\"data\":null,\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
	int fault = status == 500 ? db_fault(req) : -1;
	if (fault >= 0) {
		pw_store *store = *req->store;
		fprintf(stderr, "pipewright.fcgi: %s %s: %s: %s\n", req->method ? req->method : "-",
			req->path ? req->path : "-", db_faults[fault].what,
			pw_store_errmsg(store));
		return pw_reply_unavailable(req, db_faults[fault].retry_after,
					    "%s (%s); retry later", db_faults[fault].what,
					    pw_store_errmsg(store));
	}
	va_list ap;
	va_start(ap, fmt);
	char *msg = pw_vasprintf(fmt, ap);
	va_end(ap);

	json_object *env = json_object_new_object();
	json_object *err = json_object_new_object();
	int ok = env && err && msg &&
		 json_object_object_add(env, "data", NULL) == 0 &&
		 json_object_object_add(err, "code",
					json_object_new_string(pw_status_code(status))) == 0 &&
		 json_object_object_add(err, "message", json_object_new_string(msg)) == 0 &&
		 json_object_object_add(env, "error", err) == 0;
	free(msg);
	if (ok) {
		pw_reply_json(req, status, env);
		return 0;
	}
	if (!json_object_object_get_ex(env, "error", NULL))
		json_object_put(err);
	json_object_put(env);
	pw_reply_raw(req, 500, "application/json", fallback, sizeof fallback - 1);
	return 0;
}

/* --- streams ------------------------------------------------------------------------ */

int pw_stream_begin(pw_req *req, int status, const char *content_type)
{
	req->streaming = true;
	if (begin(req, status, content_type, -1) != 0)
		return -1;
	return pw_stream_flush(req);
}

int pw_stream_write(pw_req *req, const char *data, size_t len)
{
	/* A server that is stopping ends its streams as if their clients left. */
	if (atomic_load(req->stopping))
		return -1;
	return put(req, data, len);
}

int pw_stream_flush(pw_req *req)
{
	if (req->client_gone || atomic_load(req->stopping))
		return -1;
	if (req->io->flush(req->io) != 0) {
		req->client_gone = true;
		return -1;
	}
	return 0;
}
