/*
 * pyerror.c - POST /run's request body as FastAPI and pydantic v2 see it
 * (kedro.c): where CPython's json.loads refuses the text (its
 * JSONDecodeError messages and offsets) and how pydantic v2 validates the
 * object against Kedro's RunRequest model, each refusal answered 422 in
 * FastAPI's shape: {"detail": [pydantic v2 errors]}, every error of the
 * body listed.
 */
#include "jsonnum.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"


/*
 * Where Python's json.loads stops on a body it refuses: the error message
 * (JSONDecodeError.msg, CPython's C scanner, Python <= 3.12 wording) and
 * the byte offset. FastAPI reports these as json_invalid.
 */
typedef struct pyjson {
	const unsigned char *s;
	size_t n, i;
	const char *msg;
	size_t pos;
} pyjson;

static bool pj_fail(pyjson *j, const char *msg, size_t pos)
{
	j->msg = msg;
	j->pos = pos;
	return false;
}

/* Whether byte c is one of set (never NUL). */
static bool in_set(unsigned char c, const char *set)
{
	return c && strchr(set, c);
}

static void pj_ws(pyjson *j)
{
	while (j->i < j->n && in_set(j->s[j->i], " \t\n\r"))
		j->i++;
}

static bool pj_lit(pyjson *j, const char *w)
{
	size_t l = strlen(w);
	if (j->n - j->i < l || memcmp(j->s + j->i, w, l) != 0)
		return false;
	j->i += l;
	return true;
}

/* A string whose opening quote is at j->i. */
static bool pj_string(pyjson *j)
{
	size_t begin = j->i++;
	while (j->i < j->n) {
		unsigned char c = j->s[j->i];
		if (c == '"') {
			j->i++;
			return true;
		}
		if (c < 0x20)
			return pj_fail(j, "Invalid control character at", j->i);
		if (c != '\\') {
			j->i++;
			continue;
		}
		if (++j->i >= j->n)
			break;
		c = j->s[j->i];
		if (c == 'u') {   /* CPython wants 4 hex digits and something after them */
			size_t k = 1;
			while (k <= 4 && j->i + k < j->n && in_set(j->s[j->i + k], "0123456789abcdefABCDEF"))
				k++;
			if (k <= 4 || j->i + 5 >= j->n)
				return pj_fail(j, "Invalid \\uXXXX escape", j->i);
			j->i += 5;
		} else if (in_set(c, "\"\\/bfnrt")) {
			j->i++;
		} else {
			return pj_fail(j, "Invalid \\escape", j->i - 1);
		}
	}
	return pj_fail(j, "Unterminated string starting at", begin);
}

static bool pj_digit(const pyjson *j, size_t i)
{
	return i < j->n && j->s[i] >= '0' && j->s[i] <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)? at j->i, as Python matches it. */
static bool pj_number(pyjson *j)
{
	size_t i = j->i + (j->i < j->n && j->s[j->i] == '-');
	if (!pj_digit(j, i))
		return false;
	if (j->s[i++] != '0')
		while (pj_digit(j, i))
			i++;
	if (i < j->n && j->s[i] == '.' && pj_digit(j, i + 1))
		for (i += 2; pj_digit(j, i);)
			i++;
	if (i < j->n && (j->s[i] == 'e' || j->s[i] == 'E')) {
		size_t d = i + 1;
		if (d < j->n && (j->s[d] == '+' || j->s[d] == '-'))
			d++;
		if (pj_digit(j, d))
			for (i = d + 1; pj_digit(j, i);)
				i++;
	}
	j->i = i;
	return true;
}

static bool pj_value(pyjson *j, int depth);

/* An object or an array whose bracket is at j->i. */
static bool pj_container(pyjson *j, int depth)
{
	bool obj = j->s[j->i] == '{';
	unsigned char close = obj ? '}' : ']';
	j->i++;
	pj_ws(j);
	if (j->i < j->n && j->s[j->i] == close) {
		j->i++;
		return true;
	}
	for (;;) {
		if (obj) {
			if (j->i >= j->n || j->s[j->i] != '"')
				return pj_fail(j, "Expecting property name enclosed in double quotes", j->i);
			if (!pj_string(j))
				return false;
			pj_ws(j);
			if (j->i >= j->n || j->s[j->i] != ':')
				return pj_fail(j, "Expecting ':' delimiter", j->i);
			j->i++;
			pj_ws(j);
		}
		if (!pj_value(j, depth + 1))
			return false;
		pj_ws(j);
		if (j->i < j->n && j->s[j->i] == close) {
			j->i++;
			return true;
		}
		if (j->i >= j->n || j->s[j->i] != ',')
			return pj_fail(j, "Expecting ',' delimiter", j->i);
		j->i++;
		pj_ws(j);
	}
}

static bool pj_value(pyjson *j, int depth)
{
	if (j->i >= j->n || depth > 500)
		return pj_fail(j, "Expecting value", j->i);
	switch (j->s[j->i]) {
	case '"':
		return pj_string(j);
	case '{':
	case '[':
		return pj_container(j, depth);
	}
	if (pj_lit(j, "null") || pj_lit(j, "true") || pj_lit(j, "false") || pj_lit(j, "NaN") ||
	    pj_lit(j, "Infinity") || pj_lit(j, "-Infinity") || pj_number(j))
		return true;
	return pj_fail(j, "Expecting value", j->i);
}

/* Runs the Python checks; returns true when json.loads would accept s. */
static bool pyjson_check(pyjson *j)
{
	pj_ws(j);
	if (!pj_value(j, 0))
		return false;
	pj_ws(j);
	return j->i == j->n ? true : pj_fail(j, "Extra data", j->i);
}

/* Python's str index (code points) of byte offset off of UTF-8 text s. */
static size_t py_index(const char *s, size_t off)
{
	size_t n = 0;
	for (size_t i = 0; i < off; i++)
		n += ((unsigned char)s[i] & 0xC0) != 0x80;
	return n;
}

/* One pydantic error: {type, loc: ["body", field?, sub?], msg, input, ctx?}. */
typedef struct verr {
	const char *type;
	const char *field;   /* NULL: loc is ["body"] (+ sub) */
	json_object *sub;    /* owned: list index, dict key or char position, or NULL */
	const char *msg;
	json_object *input;  /* borrowed; NULL = JSON null */
	json_object *ctx;    /* owned, or NULL */
} verr;

/* Appends e to the detail list, consuming e.sub and e.ctx. Returns 0 or -1. */
static int add_error(json_object *detail, verr e)
{
	json_object *o = json_object_new_object(), *loc = json_object_new_array();
	int rc = o && loc && pw_json_push(loc, json_object_new_string("body")) == 0 ? 0 : -1;
	if (rc == 0 && e.field)
		rc = pw_json_push(loc, json_object_new_string(e.field));
	if (rc == 0 && e.sub) {
		rc = pw_json_push(loc, e.sub);
		e.sub = NULL;
	}
	if (rc == 0) {
		rc = pw_json_put_str(o, "type", e.type) | pw_json_put(o, "loc", loc);
		loc = NULL;
		rc |= pw_json_put_str(o, "msg", e.msg) |
		      (json_object_object_add(o, "input", json_object_get(e.input)) != 0);
	}
	if (rc == 0 && e.ctx) {
		rc = pw_json_put(o, "ctx", e.ctx);
		e.ctx = NULL;
	}
	if (rc == 0)
		rc = pw_json_push(detail, o);
	else
		json_object_put(o);
	json_object_put(loc);
	json_object_put(e.sub);
	json_object_put(e.ctx);
	return rc;
}

/* Answers 422 {"detail": detail}, taking ownership of detail. ANSWERED or FAILED. */
static int reply_422(pw_req *req, json_object *detail)
{
	json_object *o = json_object_new_object();
	if (!o || pw_json_put(o, "detail", detail) != 0) {
		json_object_put(o);
		return FAILED;
	}
	return pw_reply_json(req, 422, o) == 0 ? ANSWERED : FAILED;
}

/* Answers 422 with one error. ANSWERED or FAILED. */
static int reply_one_error(pw_req *req, verr e)
{
	json_object *detail = json_object_new_array();
	if (!detail || add_error(detail, e) != 0) {
		json_object_put(detail);
		return FAILED;
	}
	return reply_422(req, detail);
}

/* FastAPI reads a body as JSON when it has no content type or a JSON one. */
static bool json_content_type(const char *ct)
{
	if (!ct || !*ct)
		return true;
	size_t n = strcspn(ct, ";");
	while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
	       (n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
		strncasecmp(ct + n - 5, "+json", 5) == 0);
}

/* 422 json_invalid for a body json.loads refuses. */
static int reply_json_invalid(pw_req *req, const char *body, pyjson *j)
{
	json_object *ctx = json_object_new_object(), *input = json_object_new_object();
	int rc = FAILED;
	if (ctx && input && pw_json_put_str(ctx, "error", j->msg) == 0) {
		rc = reply_one_error(req, (verr){"json_invalid", NULL,
			json_object_new_int64((int64_t)py_index(body, j->pos)),
			"JSON decode error", input, ctx});
		ctx = NULL;
	}
	json_object_put(ctx);
	json_object_put(input);
	return rc;
}

/*
 * Reads the body as FastAPI does: absent or null -> missing; not JSON ->
 * json_invalid; not an object (or a body sent as another content type) ->
 * model_attributes_type. Returns GO with *out (an object), ANSWERED or FAILED.
 */
int pyerror_read_body(pw_req *req, json_object **out)
{
	size_t len = 0;
	const char *body = pw_req_body(req, &len);
	json_object *v = NULL;
	*out = NULL;
	if (!body || len == 0)
		return reply_one_error(req, (verr){"missing", NULL, NULL, "Field required", NULL, NULL});
	if (!json_content_type(pw_req_header(req, "Content-Type"))) {
		json_object *s = json_object_new_string_len(body, (int)len);
		int rc = s ? reply_one_error(req, (verr){"model_attributes_type", NULL, NULL,
			"Input should be a valid dictionary or object to extract fields from",
			s, NULL}) : FAILED;
		json_object_put(s);
		return rc;
	}
	pyjson j = {(const unsigned char *)body, len, 0, NULL, 0};
	size_t bad_at = pw_utf8_check(body, len);
	if (bad_at < len) {   /* Python cannot decode it: it never becomes a dag_id or an echo */
		j.msg = "Invalid UTF-8";
		j.pos = bad_at;
		return reply_json_invalid(req, body, &j);
	}
	if (!pyjson_check(&j))
		return reply_json_invalid(req, body, &j);
	json_tokener *tok = json_tokener_new_ex(512);
	if (!tok)
		return FAILED;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	v = json_tokener_parse_ex(tok, body, (int)len);
	if (!v && json_tokener_get_error(tok) == json_tokener_continue)
		v = json_tokener_parse_ex(tok, "", 1);   /* the end of a top-level scalar */
	bool bad = json_tokener_get_error(tok) != json_tokener_success;
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!bad && pw_json_keep_numbers(&v, body, len) != 0) {
		json_object_put(v);
		return FAILED;
	}
	if (bad) {   /* Python accepts it, json-c does not (e.g. too deep) */
		json_object_put(v);
		j.msg = "Expecting value";
		j.pos = end < len ? end : 0;
		return reply_json_invalid(req, body, &j);
	}
	if (!v)
		return reply_one_error(req, (verr){"missing", NULL, NULL, "Field required", NULL, NULL});
	if (!json_object_is_type(v, json_type_object)) {
		int rc = reply_one_error(req, (verr){"model_attributes_type", NULL, NULL,
			"Input should be a valid dictionary or object to extract fields from",
			v, NULL});
		json_object_put(v);
		return rc;
	}
	if (api_json_has_nul(body, len)) {   /* a C string of it would be cut short */
		json_object *ctx = json_object_new_object();
		int rc = FAILED;
		if (ctx && pw_json_put(ctx, "error", json_object_new_object()) == 0) {
			rc = reply_one_error(req, (verr){"value_error", NULL, NULL,
				"Value error, strings and keys must not contain a NUL character",
				v, ctx});
			ctx = NULL;
		}
		json_object_put(ctx);
		json_object_put(v);
		return rc;
	}
	*out = v;
	return GO;
}

/* The types of RunRequest's fields. */
typedef enum ktype {
	KT_STRINGS,   /* list[str] | None */
	KT_RUNNER,    /* str | None, a dotted identifier */
	KT_BOOL,      /* bool (not nullable) */
	KT_STRDICT,   /* dict[str, str] | None */
	KT_DICT,      /* dict[str, Any] | None */
} ktype;

/* RunRequest (kedro/server/models.py), in its definition order. */
static const struct kfield {
	const char *name;
	ktype type;
} run_fields[] = {
	{"from_inputs", KT_STRINGS},
	{"to_outputs", KT_STRINGS},
	{"from_nodes", KT_STRINGS},
	{"to_nodes", KT_STRINGS},
	{"node_names", KT_STRINGS},
	{"runner", KT_RUNNER},
	{"is_async", KT_BOOL},
	{"tags", KT_STRINGS},
	{"load_versions", KT_STRDICT},
	{"pipeline_names", KT_STRINGS},
	{"namespaces", KT_STRINGS},
	{"params", KT_DICT},
	{"only_missing_outputs", KT_BOOL},
};
#define N_RUN_FIELDS (sizeof run_fields / sizeof *run_fields)

static const struct kfield *run_field(const char *name)
{
	for (size_t i = 0; i < N_RUN_FIELDS; i++)
		if (strcmp(run_fields[i].name, name) == 0)
			return &run_fields[i];
	return NULL;
}

/*
 * pydantic v2's lax bool (FastAPI's default mode): true/false, 0/1, 0.0/1.0
 * and the strings of pydantic's table. Returns 0 with *out, 1 for a value
 * of another type (bool_type), 2 for one it cannot interpret (bool_parsing).
 */
static int lax_bool(json_object *v, bool *out)
{
	static const char *const yes[] = {"1", "on", "t", "true", "y", "yes"};
	static const char *const no[] = {"0", "off", "f", "false", "n", "no"};
	switch (json_object_get_type(v)) {
	case json_type_boolean:
		*out = json_object_get_boolean(v);
		return 0;
	case json_type_int:
	case json_type_double: {   /* other ints cannot be interpreted, other floats are no bool */
		double d = json_object_get_double(v);
		*out = d == 1;
		return d == 0 || d == 1 ? 0 : json_object_is_type(v, json_type_int) ? 2 : 1;
	}
	case json_type_string:
		for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
			bool y = strcasecmp(json_object_get_string(v), yes[i]) == 0;
			if (y || strcasecmp(json_object_get_string(v), no[i]) == 0) {
				*out = y;
				return 0;
			}
		}
		return 2;
	default:
		return 1;
	}
}

/* true when s is a dotted Python identifier: "SequentialRunner", "a.b.C". */
static bool dotted_identifier(const char *s)
{
	bool start = true;
	for (; *s; s++) {
		bool alpha = (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_';
		bool digit = *s >= '0' && *s <= '9';
		if (*s == '.' && !start)
			start = true;
		else if (alpha || (digit && !start))
			start = false;
		else
			return false;
	}
	return !start;
}

/*
 * The constraint on the strings of a field, as a pydantic constr would
 * state it: pipeline names are DAG ids (they become a run's dag_id),
 * load_versions values are run-id-like single path components (they
 * become a directory name under a dataset's path, so no "/", "." or "..").
 */
typedef struct strpat {
	bool (*ok)(const char *s);
	const char *pattern;
} strpat;

static const strpat dag_id_pat = {pw_valid_dag_id, "^[A-Za-z0-9_][A-Za-z0-9_.-]*$"};
static const strpat version_pat = {pw_valid_run_id, "^[A-Za-z0-9][A-Za-z0-9_.:+-]*$"};

/*
 * Checks one string against pat as pydantic's constr(min_length=1,
 * max_length=250, pattern=...) does, in its order: string_too_short,
 * string_too_long, string_pattern_mismatch. sub is consumed. Returns 0 or -1.
 */
static int check_pattern(json_object *detail, const char *name, json_object *sub,
			 json_object *item, const strpat *pat, int *nerr)
{
	const char *s = json_object_get_string(item);
	size_t len = strlen(s);
	json_object *ctx = NULL;
	char msg[96];
	verr e = {"string_pattern_mismatch", name, sub, msg, item, NULL};
	int rc = -1;
	if (pat->ok(s)) {
		json_object_put(sub);
		return 0;
	}
	(*nerr)++;
	if (!(ctx = json_object_new_object()))
		goto out;
	if (len == 0) {
		e.type = "string_too_short";
		e.msg = "String should have at least 1 character";
		rc = pw_json_put(ctx, "min_length", json_object_new_int(1));
	} else if (py_index(s, len) > PW_ID_MAX) {
		e.type = "string_too_long";
		snprintf(msg, sizeof msg, "String should have at most %d characters", PW_ID_MAX);
		rc = pw_json_put(ctx, "max_length", json_object_new_int(PW_ID_MAX));
	} else {
		snprintf(msg, sizeof msg, "String should match pattern '%s'", pat->pattern);
		rc = pw_json_put_str(ctx, "pattern", pat->pattern);
	}
out:
	if (rc != 0) {
		json_object_put(ctx);
		json_object_put(sub);
		return -1;
	}
	e.ctx = ctx;
	return add_error(detail, e);
}

/*
 * Checks one item of a list[str] or one value of a dict[str, str] at loc
 * sub (consumed): string_type when it is not a string, else the errors of
 * pat (NULL: any string will do). Returns 0 or -1.
 */
static int check_item(json_object *detail, const char *name, json_object *sub,
		      json_object *item, const strpat *pat, int *nerr)
{
	if (!json_object_is_type(item, json_type_string)) {
		(*nerr)++;
		return add_error(detail, (verr){"string_type", name, sub,
					      "Input should be a valid string", item, NULL});
	}
	if (!pat) {
		json_object_put(sub);
		return 0;
	}
	return check_pattern(detail, name, sub, item, pat, nerr);
}

/* Checks each item of a list[str] (see check_item). Returns 0 or -1. */
static int check_strings(json_object *detail, const char *name, json_object *v,
			 const strpat *pat, int *nerr)
{
	for (size_t i = 0; i < json_object_array_length(v); i++)
		if (check_item(detail, name, json_object_new_int((int)i),
			       json_object_array_get_idx(v, i), pat, nerr) != 0)
			return -1;
	return 0;
}

/* Checks each value of a dict[str, str] (a load version). Returns 0 or -1. */
static int check_strdict(json_object *detail, const char *name, json_object *v, int *nerr)
{
	json_object_object_foreach(v, key, item)
		if (check_item(detail, name, json_object_new_string(key), item, &version_pat,
			       nerr) != 0)
			return -1;
	return 0;
}

/* Kedro's RunRequest runner validator (a field_validator: "Value error, ..."). */
static int runner_error(json_object *detail, json_object *v)
{
	json_object *ctx = json_object_new_object();
	if (!ctx || pw_json_put(ctx, "error", json_object_new_object()) != 0) {
		json_object_put(ctx);
		return -1;
	}
	return add_error(detail, (verr){"value_error", "runner", NULL,
		"Value error, Invalid runner: must be a dotted Python identifier, e.g. "
		"'SequentialRunner' or 'my_package.runners.MyRunner'", v, ctx});
}

/*
 * Validates one present field; a good value is copied into clean (a bool
 * as its coerced value). Errors go to detail and count in *nerr.
 */
static int check_field(json_object *detail, json_object *clean, const struct kfield *f,
		       json_object *v, int *nerr)
{
	static const char *const type_names[] = {"list_type", "string_type", "bool_type",
						 "dict_type", "dict_type"};
	static const char *const type_msgs[] = {
		"Input should be a valid list", "Input should be a valid string",
		"Input should be a valid boolean", "Input should be a valid dictionary",
		"Input should be a valid dictionary"};
	static const json_type want[] = {json_type_array, json_type_string, json_type_boolean,
					 json_type_object, json_type_object};
	int before = *nerr;
	bool b = false;
	if (!v && f->type != KT_BOOL)
		return 0;   /* None: the default */
	if (f->type == KT_BOOL) {
		int r = lax_bool(v, &b);
		if (r == 0)
			return pw_json_put(clean, f->name, json_object_new_boolean(b));
		(*nerr)++;
		return add_error(detail, (verr){r == 1 ? "bool_type" : "bool_parsing", f->name, NULL,
			r == 1 ? "Input should be a valid boolean" :
				 "Input should be a valid boolean, unable to interpret input", v, NULL});
	}
	if (!json_object_is_type(v, want[f->type])) {
		(*nerr)++;
		return add_error(detail, (verr){type_names[f->type], f->name, NULL,
						type_msgs[f->type], v, NULL});
	}
	int rc = 0;
	if (f->type == KT_STRINGS)
		rc = check_strings(detail, f->name, v,
				   strcmp(f->name, "pipeline_names") == 0 ? &dag_id_pat : NULL, nerr);
	else if (f->type == KT_STRDICT)
		rc = check_strdict(detail, f->name, v, nerr);
	else if (f->type == KT_RUNNER && !dotted_identifier(json_object_get_string(v))) {
		(*nerr)++;
		rc = runner_error(detail, v);
	}
	if (rc == 0 && *nerr == before)
		rc = pw_json_put(clean, f->name, json_object_get(v));
	return rc;
}

/*
 * Validates the body against RunRequest (extra="forbid"): field errors in
 * definition order, then unknown fields in body order, as pydantic lists
 * them. Returns GO with *clean, ANSWERED (422 sent) or FAILED.
 */
int pyerror_check_run(pw_req *req, json_object *body, json_object **clean)
{
	json_object *detail = json_object_new_array();
	int nerr = 0, rc = detail && (*clean = json_object_new_object()) ? GO : FAILED;
	for (size_t i = 0; rc == GO && i < N_RUN_FIELDS; i++) {
		json_object *v = NULL;
		if (json_object_object_get_ex(body, run_fields[i].name, &v))
			rc = check_field(detail, *clean, &run_fields[i], v, &nerr);
	}
	json_object_object_foreach(body, key, val) {
		if (rc != GO || run_field(key))
			continue;
		nerr++;
		rc = add_error(detail, (verr){"extra_forbidden", key, NULL,
					     "Extra inputs are not permitted", val, NULL});
	}
	if (rc == GO && nerr) {
		rc = reply_422(req, detail);
		detail = NULL;
	}
	json_object_put(detail);
	if (rc != GO) {
		json_object_put(*clean);
		*clean = NULL;
	}
	return rc;
}
