/*
 * request.c - reading a request: method, path below the mount prefix,
 * :params, the query string, headers, the body (bounded), the body as a
 * JSON object and its schema check, paging; and watching the connection
 * of a stream for its client leaving. Parsed once per request into the
 * pw_req; the accessors hand out pointers that live as long as it.
 */
#include <ctype.h>
#include <errno.h>
#include <fastcgi.h>
#include <fcgiapp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jsonnum.h"
#include "api.h"
#include "core.h"
#include "dag.h"

#define DEFAULT_LIMIT 100
#define MAX_LIMIT 1000

/* --- URL decoding ------------------------------------------------------------ */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decodes n bytes of s (%XX; '+' as a space when plus is set) into a new
 * string. Returns 0, 1 when the encoding is malformed or decodes to a NUL
 * byte, or -1 when out of memory.
 */
static int url_decode(const char *s, size_t n, bool plus, char **out)
{
	char *d = malloc(n + 1);
	size_t j = 0;
	*out = NULL;
	if (!d)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (n - i < 3 || hexval((unsigned char)s[i + 1]) < 0 ||
			    hexval((unsigned char)s[i + 2]) < 0)
				goto bad;
			int c = hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]);
			if (c == 0)
				goto bad;
			d[j++] = (char)c;
			i += 2;
		} else if (s[i] == '+' && plus) {
			d[j++] = ' ';
		} else if (s[i] == '\0') {
			goto bad;
		} else {
			d[j++] = s[i];
		}
	}
	d[j] = '\0';
	*out = d;
	return 0;
bad:
	free(d);
	return 1;
}

/* --- parsing the request ------------------------------------------------------- */

/* The path to route on: PATH_INFO, else REQUEST_URI without SCRIPT_NAME. */
static char *request_path(pw_io *io)
{
	const char *pi = io->param(io, "PATH_INFO");
	if (pi && *pi)
		return strdup(pi);
	const char *uri = io->param(io, "REQUEST_URI");
	if (!uri)
		return strdup("");
	size_t n = strcspn(uri, "?#");
	const char *sn = io->param(io, "SCRIPT_NAME");
	size_t ls = sn ? strlen(sn) : 0;
	if (ls && ls < n && strncmp(uri, sn, ls) == 0 && uri[ls] == '/') {
		uri += ls;
		n -= ls;
	}
	return strndup(uri, n);
}

/*
 * Splits a query string into decoded key/value pairs, in order ("a" alone
 * has the value ""). Returns 0, 1 for malformed encoding, -1 out of memory.
 */
static int parse_query(pw_req *req, const char *qs)
{
	while (qs && *qs) {
		size_t n = strcspn(qs, "&"); /* only & separates, as WHATWG URLs say */
		const char *eq = memchr(qs, '=', n);
		size_t kn = eq ? (size_t)(eq - qs) : n;
		if (n > 0) {
			char *k = NULL, *v = NULL;
			int rc = url_decode(qs, kn, true, &k);
			if (rc == 0)
				rc = eq ? url_decode(eq + 1, n - kn - 1, true, &v) : url_decode("", 0, true, &v);
			if (rc == 0 && (pw_strv_push(&req->query_keys, k) != 0 ||
					pw_strv_push(&req->query_values, v) != 0))
				rc = -1;
			free(k);
			free(v);
			if (rc != 0)
				return rc;
		}
		qs += n;
		if (*qs)
			qs++;
	}
	return 0;
}

int pw_req_parse(pw_req *req, const char **why)
{
	pw_io *io = req->io;
	const char *m = io->param(io, "REQUEST_METHOD");
	req->method = m && *m ? m : "GET";
	req->path = request_path(io);
	if (!req->path) {
		*why = "out of memory";
		return 500;
	}
	int rc = parse_query(req, io->param(io, "QUERY_STRING"));
	if (rc < 0) {
		*why = "out of memory";
		return 500;
	}
	if (rc > 0) {
		*why = "malformed percent-encoding in the query string";
		return 400;
	}
	return 0;
}

/* The next segment of a path after *p (which points at a '/'); length. */
static size_t next_segment(const char **p)
{
	if (**p == '/')
		(*p)++;
	return strcspn(*p, "/");
}

/*
 * Segment by segment; a literal one is compared as it is walked, so most
 * patterns of the table are left at their first differing byte.
 */
bool pw_route_matches(const char *pattern, const char *path)
{
	if (*pattern != '/' || *path != '/')
		return false;
	while (*pattern == '/' && *path == '/') {
		pattern++;
		path++;
		if (*pattern == ':') {
			if (!*path || *path == '/')
				return false;   /* a :param is never empty */
			pattern += strcspn(pattern, "/");
			path += strcspn(path, "/");
			continue;
		}
		while (*pattern && *pattern != '/' && *pattern == *path) {
			pattern++;
			path++;
		}
	}
	return !*pattern && !*path;
}

int pw_req_set_params(pw_req *req, const pw_route *route)
{
	const char *pattern = route->pattern, *path = req->path;
	req->route = route;
	while (*pattern && *path) {
		size_t np = next_segment(&pattern), ns = next_segment(&path);
		if (*pattern == ':' && req->n_params < PW_MAX_PARAMS) {
			size_t i = req->n_params;
			int rc = url_decode(path, ns, false, &req->param_value[i]);
			if (rc != 0)
				return rc;
			req->param_name[i] = strndup(pattern + 1, np - 1);
			req->n_params++;
			if (!req->param_name[i])
				return -1;
		}
		pattern += np;
		path += ns;
	}
	return 0;
}

/* Parses a decimal number of digits only, at most max. Returns 0 or -1. */
static int parse_number(const char *s, long long max, long long *out)
{
	long long v = 0;
	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (max - (*s - '0')) / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return 0;
}

/* Reads until the end of the body or max + 1 bytes. Returns bytes or -1. */
static long read_all(pw_req *req, char *buf, size_t max)
{
	size_t got = 0;
	while (got < max) {
		long n = req->io->read(req->io, buf + got, max - got);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (long)got;
}

int pw_req_read_body(pw_req *req)
{
	const char *cl = req->io->param(req->io, "CONTENT_LENGTH");
	const char *te = pw_req_header(req, "Transfer-Encoding");
	long long want = 0;
	size_t cap;

	if (cl && *cl) {
		if (parse_number(cl, LLONG_MAX, &want) != 0)
			return pw_reply_error(req, 400, "invalid Content-Length"), -1;
		if ((unsigned long long)want > req->max_body)
			goto too_large;
		cap = (size_t)want;
	} else if (te && *te) {
		cap = req->max_body + 1;   /* read to the end, one byte more tells */
	} else {
		cap = 0;
	}
	if (cap == 0)
		return 0;   /* no body: pw_req_body gives "" */
	req->body = malloc(cap + 1);
	if (!req->body)
		return pw_reply_error(req, 500, "out of memory"), -1;
	long got = read_all(req, req->body, cap);
	if (got < 0)
		return pw_reply_error(req, 400, "could not read the request body"), -1;
	req->body_len = (size_t)got;
	req->body[got] = '\0';
	if (cl && *cl && (long long)got < want)
		return pw_reply_error(req, 400, "request body shorter than Content-Length"), -1;
	if (req->body_len > req->max_body)
		goto too_large;
	return 0;
too_large:
	pw_reply_error(req, 413, "request body larger than %zu bytes", req->max_body);
	return -1;
}

void pw_req_release(pw_req *req)
{
	free(req->path);
	for (size_t i = 0; i < req->n_params; i++) {
		free(req->param_name[i]);
		free(req->param_value[i]);
	}
	pw_strv_free(&req->query_keys);
	pw_strv_free(&req->query_values);
	free(req->body);
	json_object_put(req->json);
	pw_strv_free(&req->headers);
}

/* --- a stream's client --------------------------------------------------------------- */

#define PEEK_MAX 512   /* bytes looked at for an FCGI_ABORT_REQUEST */

/*
 * Whether the whole records at the start of p (n bytes, as peeked from a
 * FastCGI connection) include an FCGI_ABORT_REQUEST for request id. Other
 * records (the end of stdin that libfcgi has not read) are stepped over.
 */
static bool holds_abort(const unsigned char *p, size_t n, int id)
{
	while (n >= FCGI_HEADER_LEN) {
		const FCGI_Header *h = (const FCGI_Header *)p;
		size_t len = FCGI_HEADER_LEN + h->paddingLength +
			     ((size_t)h->contentLengthB1 << 8 | h->contentLengthB0);
		if (h->version != FCGI_VERSION_1)
			return false;
		if (h->type == FCGI_ABORT_REQUEST && (h->requestIdB1 << 8 | h->requestIdB0) == id)
			return true;
		if (len > n)
			return false;
		p += len;
		n -= len;
	}
	return false;
}

/*
 * The connection is gone when the web server closed it (end of file,
 * hang-up, reset: a web server never half-closes a FastCGI connection
 * whose answer it still wants) or asked to abort. Only ever peeks. (ipcFd
 * is below fcgiapp.h's "don't use" line; libfcgi 2.4 has it as is.)
 */
int pw_stream_fd(pw_req *req)
{
	const FCGX_Request *fr = req->io->ctx;
	return fr ? fr->ipcFd : -1;
}

bool pw_stream_quiet(pw_req *req)
{
	const FCGX_Request *fr = req->io->ctx;
	unsigned char buf[FCGI_HEADER_LEN];
	struct pollfd pfd;

	if (!fr || fr->ipcFd < 0)
		return true;
	while (recv(fr->ipcFd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT) == FCGI_HEADER_LEN) {
		const FCGI_Header *h = (const FCGI_Header *)buf;
		if (h->version != FCGI_VERSION_1 || h->type != FCGI_STDIN ||
		    h->contentLengthB1 || h->contentLengthB0 || h->paddingLength ||
		    (h->requestIdB1 << 8 | h->requestIdB0) != fr->requestId ||
		    recv(fr->ipcFd, buf, sizeof buf, MSG_DONTWAIT) != FCGI_HEADER_LEN)
			break;
	}
	pfd = (struct pollfd){.fd = fr->ipcFd, .events = POLLIN};
	return poll(&pfd, 1, 0) == 0;
}

bool pw_stream_gone(pw_req *req)
{
	const FCGX_Request *fr = req->io->ctx;
	unsigned char buf[PEEK_MAX];
	struct pollfd pfd;
	ssize_t n;

	if (req->client_gone)
		return true;
	if (!fr || fr->ipcFd < 0)
		return false;   /* CGI: no connection of ours to watch */
	pfd = (struct pollfd){.fd = fr->ipcFd, .events = POLLIN | POLLRDHUP};
	if (poll(&pfd, 1, 0) <= 0)
		return false;   /* nothing new (or EINTR: the next tick looks again) */
	if (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR))
		goto gone;
	n = recv(fr->ipcFd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno == ECONNRESET))
		goto gone;
	if (n > 0 && holds_abort(buf, (size_t)n, fr->requestId))
		goto gone;
	return false;
gone:
	req->client_gone = true;
	return true;
}

/* --- accessors --------------------------------------------------------------------- */

const char *pw_req_method(const pw_req *req)
{
	return req->method;
}

const char *pw_req_path(const pw_req *req)
{
	return req->path;
}

const char *pw_req_param(const pw_req *req, const char *name)
{
	for (size_t i = 0; i < req->n_params; i++)
		if (strcmp(req->param_name[i], name) == 0)
			return req->param_value[i];
	return NULL;
}

const char *pw_req_query(const pw_req *req, const char *name)
{
	long i = pw_strv_index(&req->query_keys, name);
	return i < 0 ? NULL : req->query_values.v[i];
}

const char *pw_req_header(const pw_req *req, const char *name)
{
	char var[128];
	size_t n = strlen(name);
	if (strcasecmp(name, "Content-Type") == 0)
		return req->io->param(req->io, "CONTENT_TYPE");
	if (strcasecmp(name, "Content-Length") == 0)
		return req->io->param(req->io, "CONTENT_LENGTH");
	if (n == 0 || n + sizeof "HTTP_" > sizeof var)
		return NULL;
	memcpy(var, "HTTP_", 5);
	for (size_t i = 0; i < n; i++)
		var[5 + i] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
	var[5 + n] = '\0';
	return req->io->param(req->io, var);
}

const char *pw_req_user(const pw_req *req)
{
	const char *u = req->io->param(req->io, "REMOTE_USER");
	return u && *u ? u : NULL;
}

const char *pw_req_body(const pw_req *req, size_t *len)
{
	if (len)
		*len = req->body_len;
	return req->body ? req->body : "";
}

const pw_project *pw_req_project(const pw_req *req)
{
	return req->snap->project;
}

const api_dags *api_req_dags(const pw_req *req)
{
	return req->snap->dags;
}

/* Why the thread's database is not open ("" when it is); see pw_req_store. */
static _Thread_local char store_problem[512];
/* Whether this thread has opened it once (store_usable was called). */
static _Thread_local bool store_opened;
/* The problem logged last, by any thread: each is logged once, not per request. */
static struct {
	pthread_mutex_t lock;
	char text[512];
	bool ever_open;  /* a database was open: a missing one went away */
} store_log = {PTHREAD_MUTEX_INITIALIZER, "", false};

/* Records why the database cannot be used; logs it unless just logged. */
static void store_unusable(const char *why)
{
	snprintf(store_problem, sizeof store_problem, "%s", why);
	pthread_mutex_lock(&store_log.lock);
	if (strcmp(store_log.text, why) != 0) {
		snprintf(store_log.text, sizeof store_log.text, "%s", why);
		fprintf(stderr, "pipewright.fcgi: %s\n", why);
	}
	pthread_mutex_unlock(&store_log.lock);
}

/* Notes the database usable again; logs it when a problem was logged. */
static void store_usable(const char *db, const char *moved)
{
	store_problem[0] = '\0';
	store_opened = true;
	pthread_mutex_lock(&store_log.lock);
	if (store_log.text[0] || moved)
		fprintf(stderr, "pipewright.fcgi: %s: %s%sopened again\n", db,
			moved ? moved : "", moved ? "; " : "");
	store_log.text[0] = '\0';
	store_log.ever_open = true;
	pthread_mutex_unlock(&store_log.lock);
}

/* Why this thread closed its connection at the last pw_req_store_check. */
static _Thread_local const char *store_moved;

void pw_req_store_check(const pw_req *req)
{
	pw_store **slot = req->store;
	const char *moved;

	if (*slot && (moved = pw_store_moved(*slot))) {
		pw_store_close(*slot);
		*slot = NULL;
		store_moved = moved;
	}
}

/*
 * The thread's connection, opened on first use, never creating the file
 * (the runner and the CLI do). pw_req_store_check, before each request,
 * closes it when its file was deleted or replaced, so this opens whatever
 * is at the path now: a database the runner recreated is picked up. NULL
 * with pw_req_store_problem saying why.
 */
pw_store *pw_req_store(const pw_req *req)
{
	const char *db = req->snap->project->database;
	pw_store **slot = req->store;
	const char *moved = store_moved;
	char *err = NULL;

	if (*slot && strcmp(pw_store_path(*slot), db) == 0)
		return *slot;
	pw_store_close(*slot);   /* the project moved its database */
	*slot = NULL;
	if (pw_store_open_existing(db, slot, &err) != PW_OK) {
		char why[sizeof store_problem];
		pthread_mutex_lock(&store_log.lock);
		bool went = store_log.ever_open && access(db, F_OK) != 0;
		pthread_mutex_unlock(&store_log.lock);
		snprintf(why, sizeof why, "%s%s", went ? "the database file is gone (deleted or "
			 "moved away); " : "", err ? err : "the database cannot be opened");
		store_unusable(why);
		free(err);
		*slot = NULL;
		return NULL;
	}
	store_moved = NULL;
	if (store_problem[0] || moved || !store_opened)
		store_usable(db, moved);
	return *slot;
}

const char *pw_req_store_problem(void)
{
	return store_problem[0] ? store_problem : "the database cannot be opened";
}

/* --- the body as JSON -------------------------------------------------------------------- */

/* Whether CONTENT_TYPE names application/json (parameters allowed). */
static bool is_json_type(const char *ct)
{
	static const char json[] = "application/json";
	if (!ct)
		return false;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, json, sizeof json - 1) != 0)
		return false;
	ct += sizeof json - 1;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/*
 * Whether JSON text (already parsed, so a backslash only ever starts an
 * escape inside a string) holds the escape \u0000: the one way a NUL byte
 * gets into a key or a string value. json-c keeps such a value whole but
 * cuts a key at the NUL; every C string made of either would be cut too.
 */
bool api_json_has_nul(const char *s, size_t n)
{
	const char *end = s + n, *p = memchr(s, '\\', n);

	while (p && end - p >= 2) {
		if (end - p >= 6 && memcmp(p + 1, "u0000", 5) == 0)
			return true;
		p += 2;   /* past the escaped character: the second '\' of "\\" */
		p = memchr(p, '\\', (size_t)(end - p));
	}
	return false;
}

/* Whether a string anywhere in v (json-c bounds the depth) holds a NUL. */
static bool holds_nul(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_string:
		return strlen(json_object_get_string(v)) !=
		       (size_t)json_object_get_string_len(v);
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (holds_nul(json_object_array_get_idx(v, i)))
				return true;
		return false;
	case json_type_object: {
		json_object_object_foreach(v, key, val) {
			(void)key;
			if (holds_nul(val))
				return true;
		}
		return false;
	}
	default:
		return false;
	}
}

/*
 * Answers 400 when a string of the body object holds a NUL, naming the
 * field whose value holds it (a key cannot be named: json-c cut it).
 * Returns 0, or -1 when it answered.
 */
static int check_nul(pw_req *req, json_object *obj)
{
	if (!api_json_has_nul(req->body, req->body_len))
		return 0;
	json_object_object_foreach(obj, key, val) {
		if (holds_nul(val)) {
			pw_reply_error(req, 400, "field '%s' must not contain a NUL "
				       "character (\\u0000)", key);
			return -1;
		}
	}
	pw_reply_error(req, 400, "object keys must not contain a NUL character (\\u0000)");
	return -1;
}

json_object *pw_req_json(pw_req *req)
{
	json_tokener *tok;
	json_object *obj;
	enum json_tokener_error jerr;

	if (req->json)
		return req->json;
	if (!is_json_type(pw_req_header(req, "Content-Type"))) {
		pw_reply_error(req, 415, "Content-Type must be application/json");
		return NULL;
	}
	if (req->body_len == 0) {
		pw_reply_error(req, 400, "a JSON object is required as the request body");
		return NULL;
	}
	if (memchr(req->body, '\0', req->body_len)) {
		pw_reply_error(req, 400, "malformed JSON: NUL byte in the body");
		return NULL;
	}
	tok = json_tokener_new();
	if (!tok) {
		pw_reply_error(req, 500, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, req->body, (int)req->body_len);
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_success) {
		size_t end = json_tokener_get_parse_end(tok);
		end += strspn(req->body + end, " \t\r\n");
		if (end < req->body_len) {
			json_object_put(obj);
			json_tokener_free(tok);
			pw_reply_error(req, 400, "malformed JSON: data after the JSON value");
			return NULL;
		}
	}
	json_tokener_free(tok);
	if (jerr == json_tokener_success &&
	    pw_json_keep_numbers(&obj, req->body, req->body_len) != 0) {
		json_object_put(obj);
		pw_reply_error(req, 500, "out of memory");
		return NULL;
	}
	if (jerr != json_tokener_success) {
		json_object_put(obj);
		pw_reply_error(req, 400, "malformed JSON: %s",
			       jerr == json_tokener_continue ? "unexpected end of data"
							   : json_tokener_error_desc(jerr));
		return NULL;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		pw_reply_error(req, 400, "the request body must be a JSON object");
		return NULL;
	}
	if (check_nul(req, obj) != 0) {
		json_object_put(obj);
		return NULL;
	}
	req->json = obj;
	return obj;
}

/* --- schema checks ------------------------------------------------------------------------ */

/* How each field type is checked and named in messages. */
static bool is_id(json_object *v)
{
	return json_object_is_type(v, json_type_string) &&
	       pw_valid_run_id(json_object_get_string(v));
}

static bool is_nonneg_int(json_object *v)
{
	return json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0;
}

static bool is_strings(json_object *v)
{
	if (!json_object_is_type(v, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(v); i++)
		if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string))
			return false;
	return true;
}

static const struct {
	json_type type;          /* json-c type, or json_type_null for a custom check */
	bool (*check)(json_object *v);
	const char *name;
} ftypes[] = {
	[PW_F_STRING] = {json_type_string, NULL, "a string"},
	[PW_F_ID] = {json_type_null, is_id,
		     "an id ([A-Za-z0-9][A-Za-z0-9_.:+-]*, at most 250 characters)"},
	[PW_F_BOOL] = {json_type_boolean, NULL, "a boolean"},
	[PW_F_INT] = {json_type_null, is_nonneg_int, "an integer >= 0"},
	[PW_F_OBJECT] = {json_type_object, NULL, "an object"},
	[PW_F_STRINGS] = {json_type_null, is_strings, "a list of strings"},
};

int pw_req_check_body(pw_req *req, json_object *body, const pw_field *fields, size_t n)
{
	json_object_object_foreach(body, key, value) {
		size_t i;
		for (i = 0; i < n && strcmp(fields[i].name, key) != 0; i++)
			;
		if (i == n) {
			pw_reply_error(req, 400, "unknown field '%s'", key);
			return -1;
		}
		pw_ftype t = fields[i].type;
		bool ok = ftypes[t].check ? value && ftypes[t].check(value)
					  : json_object_is_type(value, ftypes[t].type);
		if (!ok) {
			pw_reply_error(req, 400, "field '%s' must be %s", key, ftypes[t].name);
			return -1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (fields[i].required && !json_object_object_get_ex(body, fields[i].name, NULL)) {
			pw_reply_error(req, 400, "field '%s' is required", fields[i].name);
			return -1;
		}
	}
	return 0;
}

int pw_req_paging(pw_req *req, int *limit, long long *offset)
{
	const char *l = pw_req_query(req, "limit"), *o = pw_req_query(req, "offset");
	long long v;

	*limit = DEFAULT_LIMIT;
	*offset = 0;
	if (l) {
		if (parse_number(l, MAX_LIMIT, &v) != 0 || v < 1) {
			pw_reply_error(req, 400,
				       "query parameter 'limit' must be an integer from 1 to %d",
				       MAX_LIMIT);
			return -1;
		}
		*limit = (int)v;
	}
	if (o) {
		if (parse_number(o, LLONG_MAX, &v) != 0) {
			pw_reply_error(req, 400,
				       "query parameter 'offset' must be an integer >= 0");
			return -1;
		}
		*offset = v;
	}
	return 0;
}
