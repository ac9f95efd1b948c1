/*
 * interp.c - see interp.h.
 *
 * Resolution works in place on the tree: a string holding an interpolation
 * is evaluated when the walk (or a reference) reaches it, and replaced by
 * its value, so each is evaluated once. The strings being evaluated form a
 * stack; meeting one of them again is a cycle. A reference to a mapping or
 * list resolves it whole first, then copies it.
 */
#include "interp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doc.h"

/* Deepest nesting of evaluations, most values copied by references, and
 * most bytes of text that interpolations may produce or copy in one
 * document ("${a}${a}" doubles at each level: exponential without it). */
#define INTERP_MAX_DEPTH 64
#define INTERP_MAX_COPIES 1000000
#define INTERP_MAX_TEXT (16u << 20)

/* A string being evaluated, and where it is (for cycles and messages). */
typedef struct frame {
	json_object *str;
	json_object *parent;
	char *key;  /* key in parent, or the index as text */
	char *path; /* dotted path from the root */
} frame;

typedef struct resolver {
	json_object *root;
	pw_interp_ctx *ctx;
	pw_kerror *err;
	frame *stack;
	size_t n, cap;
	size_t copies;
	size_t text;   /* bytes interpolated into strings so far */
	bool deferred; /* the current top-level value waits for a run */
	json_object *done; /* "%p" of resolved strings that still hold "${" */
	json_object *waiting; /* "%p" of strings that wait for a run */
	int eval_depth;    /* nesting of eval_string */
} resolver;

enum { FOUND = 0, FAILED = -1, MISSING = 1 };

bool pw_interp_has(const char *s)
{
	for (const char *p = s ? strstr(s, "${") : NULL; p; p = strstr(p + 1, "${"))
		if (p == s || p[-1] != '\\')
			return true;
	return false;
}

static int fail(resolver *r, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records the first error, located at the innermost string. Returns -1. */
static int fail(resolver *r, const char *type, const char *fmt, ...)
{
	const char *file = NULL;
	int line = 0;
	va_list ap;
	char *msg;

	if (r->err->type)
		return FAILED;
	va_start(ap, fmt);
	msg = pw_vasprintf(fmt, ap);
	va_end(ap);
	frame *f = r->n ? &r->stack[r->n - 1] : NULL;
	if (f && r->ctx->locate)
		r->ctx->locate(r->ctx->locate_arg, f->parent, f->key, &file, &line);
	if (!msg)
		pw_kerror_set(r->err, "MemoryError", "out of memory");
	else if (file && line)
		pw_kerror_set(r->err, type, "%s:%d: key '%s': %s", file, line, f->path, msg);
	else if (file)
		pw_kerror_set(r->err, type, "%s: key '%s': %s", file, f->path, msg);
	else if (f)
		pw_kerror_set(r->err, type, "key '%s': %s", f->path, msg);
	else
		pw_kerror_set(r->err, type, "%s", msg);
	free(msg);
	return FAILED;
}

static int oom(resolver *r)
{
	return fail(r, "MemoryError", "out of memory");
}

/* Number of values in v, adding the bytes of its strings to *bytes (for
 * the copy and text budgets). */
static size_t count_values(json_object *v, size_t *bytes)
{
	size_t n = 1;
	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, k, child) {
			(void)k;
			n += count_values(child, bytes);
		}
	} else if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++)
			n += count_values(json_object_array_get_idx(v, i), bytes);
	} else if (json_object_is_type(v, json_type_string)) {
		*bytes += (size_t)json_object_get_string_len(v);
	}
	return n;
}

/* Adds len bytes of interpolated text to the document's budget. */
static int spend_text(resolver *r, size_t len)
{
	r->text += len;
	if (r->text > INTERP_MAX_TEXT)
		return fail(r, "InterpolationResolutionError",
			    "interpolations expand to more than %u MiB of text",
			    INTERP_MAX_TEXT >> 20);
	return FOUND;
}

/* A copy of a resolved value, within the copy and text budgets. */
static int copy_out(resolver *r, json_object *v, json_object **out)
{
	size_t bytes = 0;
	*out = NULL;
	if (!v)
		return FOUND;
	r->copies += count_values(v, &bytes);
	if (r->copies > INTERP_MAX_COPIES)
		return fail(r, "InterpolationResolutionError",
			    "interpolations expand to too many values");
	if (spend_text(r, bytes) != FOUND)
		return FAILED;
	return json_object_deep_copy(v, out, NULL) == 0 ? FOUND : oom(r);
}

/* --- the value at a path ------------------------------------------------- */

/* The child at seg of a mapping or list, or NULL (*found false). */
static json_object *child_at(json_object *parent, const char *seg, bool *found)
{
	json_object *v = NULL;
	*found = false;
	if (json_object_is_type(parent, json_type_object)) {
		*found = json_object_object_get_ex(parent, seg, &v);
	} else if (json_object_is_type(parent, json_type_array) && *seg &&
		   strspn(seg, "0123456789") == strlen(seg) && strlen(seg) < 10) {
		size_t i = (size_t)strtoul(seg, NULL, 10);
		*found = i < json_object_array_length(parent);
		v = *found ? json_object_array_get_idx(parent, i) : NULL;
	}
	return v;
}

json_object *pw_json_path_get(json_object *root, const char *path, bool *found)
{
	json_object *cur = root;
	char *copy = strdup(path ? path : ""), *save = NULL;
	*found = copy != NULL;
	for (char *seg = copy ? strtok_r(copy, ".", &save) : NULL; seg && *found;
	     seg = strtok_r(NULL, ".", &save))
		cur = child_at(cur, seg, found);
	free(copy);
	return *found ? cur : NULL;
}

static int resolve_at(resolver *r, json_object *parent, const char *key, const char *path,
		      bool deep, json_object **val);

/* Deep-resolves the members of a mapping or list at path. */
static int resolve_members(resolver *r, json_object *v, const char *path)
{
	int rc = FOUND;
	json_object *ignored;
	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, k, child) {
			(void)child;
			char *p = *path ? pw_asprintf("%s.%s", path, k) : strdup(k);
			rc = p ? resolve_at(r, v, k, p, true, &ignored) : oom(r);
			free(p);
			if (rc == FAILED)
				return rc;
		}
	} else if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			char idx[24];
			snprintf(idx, sizeof idx, "%zu", i);
			char *p = pw_asprintf("%s.%s", path, idx);
			rc = p ? resolve_at(r, v, idx, p, true, &ignored) : oom(r);
			free(p);
			if (rc == FAILED)
				return rc;
		}
	}
	return FOUND;
}

static int eval_string(resolver *r, const char *s, json_object **out);

static void ptr_key(const json_object *v, char *buf, size_t n)
{
	snprintf(buf, n, "%p", (const void *)v);
}

/* Whether string v still needs evaluating (holds "${", not a result). */
static bool needs_eval(const resolver *r, json_object *v)
{
	char key[32];
	if (!json_object_is_type(v, json_type_string) || !strstr(json_object_get_string(v), "${"))
		return false;
	ptr_key(v, key, sizeof key);
	return !json_object_object_get_ex(r->done, key, NULL);
}

/* Whether string v was found to wait for a run (evaluated once only). */
static bool is_waiting(const resolver *r, const json_object *v)
{
	char key[32];
	ptr_key(v, key, sizeof key);
	return json_object_object_get_ex(r->waiting, key, NULL);
}

/* Marks the strings of a resolved value that hold "${" (an escaped
 * \${ became one) as results, never evaluated again. */
static int mark_done(resolver *r, json_object *v)
{
	char key[32];
	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, k, child) {
			(void)k;
			if (mark_done(r, child) != FOUND)
				return FAILED;
		}
	} else if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (mark_done(r, json_object_array_get_idx(v, i)) != FOUND)
				return FAILED;
	} else if (json_object_is_type(v, json_type_string) &&
		   strstr(json_object_get_string(v), "${")) {
		ptr_key(v, key, sizeof key);
		if (json_object_object_add(r->done, key, NULL) != 0)
			return oom(r);
	}
	return FOUND;
}

/* Puts v (taken over) at key of parent, replacing what was there. */
static int replace_at(resolver *r, json_object *parent, const char *key, json_object *v)
{
	int rc = json_object_is_type(parent, json_type_object)
			 ? json_object_object_add(parent, key, v)
			 : json_object_array_put_idx(parent, (size_t)strtoul(key, NULL, 10), v);
	if (rc != 0) {
		json_object_put(v);
		return oom(r);
	}
	return FOUND;
}

/*
 * Resolves the value at key of parent in place: evaluates it when it is an
 * interpolation, and its members too when deep. *val is the value, owned by
 * the tree. Returns FOUND, MISSING (no such key) or FAILED.
 */
static int resolve_at(resolver *r, json_object *parent, const char *key, const char *path,
		      bool deep, json_object **val)
{
	bool found;
	json_object *v = child_at(parent, key, &found);
	*val = NULL;
	if (!found)
		return MISSING;
	if (needs_eval(r, v) && is_waiting(r, v)) {
		r->deferred = true; /* known to wait: no second evaluation */
	} else if (needs_eval(r, v)) { /* "\${" too: its backslash goes */
		for (size_t i = 0; i < r->n; i++)
			if (r->stack[i].str == v)
				return fail(r, "InterpolationResolutionError",
					    "Recursive interpolation detected");
		if (r->n >= INTERP_MAX_DEPTH)
			return fail(r, "InterpolationResolutionError",
				    "interpolations nest too deeply");
		if (pw_grow(&r->stack, r->n, &r->cap, sizeof *r->stack, 8) != 0)
			return oom(r);
		frame *f = &r->stack[r->n];
		f->str = v;
		f->parent = parent;
		f->key = strdup(key);
		f->path = strdup(path);
		r->n++;
		json_object *nv = NULL;
		bool outer_deferred = r->deferred;
		r->deferred = false;
		int rc = f->key && f->path ? eval_string(r, json_object_get_string(v), &nv) : oom(r);
		bool deferred = r->deferred;
		r->deferred = outer_deferred || deferred; /* a string using it waits too */
		r->n--;
		free(r->stack[r->n].key);
		free(r->stack[r->n].path);
		if (rc != FOUND)
			return FAILED;
		if (deferred) {
			char pk[32];
			json_object_put(nv);
			ptr_key(v, pk, sizeof pk);
			if (json_object_object_add(r->waiting, pk, NULL) != 0)
				return oom(r);
		} else {
			if (mark_done(r, nv) != FOUND) {
				json_object_put(nv);
				return FAILED;
			}
			if (replace_at(r, parent, key, nv) != FOUND)
				return FAILED;
			v = nv;
		}
	}
	if (deep && resolve_members(r, v, path) != FOUND)
		return FAILED;
	*val = v;
	return FOUND;
}

/*
 * The resolved value at a key path: absolute "a.b.0", or relative ".b"
 * (the mapping holding the string being evaluated), "..b" (its parent).
 */
static int lookup(resolver *r, const char *keypath, json_object **out)
{
	char *norm = malloc(strlen(keypath) + 1), *base = NULL, *path = NULL;
	size_t dots = strspn(keypath, ".");
	int rc = FAILED;
	json_object *cur = r->root;

	if (!norm)
		return oom(r);
	/* a[0] -> a.0 */
	char *o = norm;
	for (const char *p = keypath + dots; *p; p++)
		if (*p == '[')
			*o++ = '.';
		else if (*p != ']')
			*o++ = *p;
	*o = '\0';
	if (dots && r->n) {
		/* the path of the mapping holding the string, less dots-1 levels */
		base = strdup(r->stack[r->n - 1].path);
		for (size_t up = 0; base && up < dots; up++) {
			char *dot = strrchr(base, '.');
			if (dot)
				*dot = '\0';
			else if (up + 1 < dots || *base)
				base[0] = '\0';
		}
	}
	path = base && *base ? pw_asprintf("%s.%s", base, norm) : strdup(norm);
	if (!path || (dots && r->n && !base)) {
		rc = oom(r);
		goto out;
	}
	char *save = NULL, *walked = NULL;
	size_t plen = strlen(path);
	char *segs = strdup(path);
	if (!segs) {
		rc = oom(r);
		goto out;
	}
	rc = *segs ? FOUND : MISSING;
	for (char *seg = strtok_r(segs, ".", &save); seg && rc == FOUND;
	     seg = strtok_r(NULL, ".", &save)) {
		free(walked);
		walked = strndup(path, (size_t)(seg + strlen(seg) - segs));
		bool last = seg + strlen(seg) == segs + plen;
		rc = walked ? resolve_at(r, cur, seg, walked, last, &cur) : oom(r);
	}
	free(walked);
	free(segs);
	if (rc == MISSING)
		rc = fail(r, "InterpolationKeyError", "Interpolation key '%s' not found", keypath);
	else if (rc == FOUND)
		rc = copy_out(r, cur, out);
out:
	free(norm);
	free(base);
	free(path);
	return rc;
}

/* --- the grammar ---------------------------------------------------------- */

/*
 * End of the interpolation starting at s[i] ("${"): the index of its '}',
 * skipping nested interpolations and quoted text. -1 when unterminated.
 */
static long find_close(const char *s, size_t i)
{
	int depth = 0;
	char quote = 0;
	for (; s[i]; i++) {
		if (quote) {
			if (s[i] == '\\' && s[i + 1])
				i++;
			else if (s[i] == quote)
				quote = 0;
		} else if (s[i] == '$' && s[i + 1] == '{') {
			depth++;
			i++;
		} else if (s[i] == '}') {
			if (--depth == 0)
				return (long)i;
		} else if ((s[i] == '\'' || s[i] == '"') && depth > 0) {
			quote = s[i];
		}
	}
	return -1;
}

/* Index of the first c at the top level of e[0..len) (outside ${} and
 * quotes), or len. */
static size_t top_level(const char *e, size_t len, char c)
{
	int depth = 0;
	char quote = 0;
	for (size_t i = 0; i < len; i++) {
		if (quote) {
			if (e[i] == quote)
				quote = 0;
		} else if (e[i] == '\'' || e[i] == '"') {
			quote = e[i];
		} else if (e[i] == '$' && i + 1 < len && e[i + 1] == '{') {
			depth++;
			i++;
		} else if (e[i] == '}') {
			depth--;
		} else if (e[i] == c && depth == 0) {
			return i;
		}
	}
	return len;
}

static void trim(const char **s, size_t *len)
{
	while (*len && strchr(" \t\n\r", (*s)[0]) && (*s)[0]) {
		(*s)++;
		(*len)--;
	}
	while (*len && strchr(" \t\n\r", (*s)[*len - 1]) && (*s)[*len - 1])
		(*len)--;
}

/* Evaluates text e[0..len) (which may hold interpolations) as a string. */
static int eval_text(resolver *r, const char *e, size_t len, char **out)
{
	char *copy = strndup(e, len);
	json_object *v = NULL;
	int rc = copy ? eval_string(r, copy, &v) : oom(r);
	free(copy);
	*out = NULL;
	if (rc != FOUND)
		return rc;
	*out = strdup(json_object_is_type(v, json_type_string) ? json_object_get_string(v)
			  : json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	json_object_put(v);
	return *out ? FOUND : oom(r);
}

/* A resolver's default argument: quoted text, an interpolation, or a
 * plain YAML scalar. */
static int eval_default(resolver *r, const char *e, size_t len, json_object **out)
{
	*out = NULL;
	trim(&e, &len);
	if (len >= 2 && (e[0] == '\'' || e[0] == '"') && e[len - 1] == e[0]) {
		*out = json_object_new_string_len(e + 1, (int)len - 2);
		return *out ? FOUND : oom(r);
	}
	if (len >= 2 && memmem(e, len, "${", 2)) {
		char *copy = strndup(e, len);
		int rc = copy ? eval_string(r, copy, out) : oom(r);
		free(copy);
		return rc;
	}
	return pw_doc_plain_scalar(e, len, out) == 0 ? FOUND : oom(r);
}

typedef enum { RES_GLOBALS, RES_RUNTIME } res_kind;

/* ${globals:key[, default]} and ${runtime_params:key[, default]}. */
static int eval_resolver(resolver *r, res_kind kind, const char *args, size_t len,
			 json_object **out)
{
	size_t comma = top_level(args, len, ',');
	const char *what = kind == RES_GLOBALS ? "Globals key" : "Runtime parameter";
	json_object *src = kind == RES_GLOBALS ? r->ctx->globals : r->ctx->runtime_params;
	char *key = NULL;
	bool found = false;
	int rc;

	if (comma < len && top_level(args + comma + 1, len - comma - 1, ',') < len - comma - 1)
		return fail(r, "GrammarParseError",
			    "a resolver takes a key and an optional default");
	if ((rc = eval_text(r, args, comma, &key)) != FOUND)
		return rc;
	const char *k = key;
	size_t klen = strlen(k);
	trim(&k, &klen);
	char *name = strndup(k, klen);
	free(key);
	if (!name)
		return oom(r);
	if (kind == RES_RUNTIME)
		r->ctx->runtime_uses++;
	json_object *v = src ? pw_json_path_get(src, name, &found) : NULL;
	if (found)
		rc = copy_out(r, v, out);
	else if (comma < len)
		rc = eval_default(r, args + comma + 1, len - comma - 1, out);
	else if (kind == RES_RUNTIME && !src && r->ctx->defer_runtime) {
		r->deferred = true;
		rc = FOUND;
	} else
		rc = fail(r, "InterpolationResolutionError",
			  "%s '%s' not found and no default value provided.", what, name);
	free(name);
	return rc;
}

/* The value of one interpolation's inside, e[0..len). */
static int eval_expr(resolver *r, const char *e, size_t len, json_object **out)
{
	static const struct {
		const char *name;
		res_kind kind;
	} resolvers[] = {{"globals", RES_GLOBALS}, {"runtime_params", RES_RUNTIME}};
	size_t colon = top_level(e, len, ':');
	*out = NULL;
	if (colon < len) {
		const char *name = e;
		size_t nlen = colon;
		trim(&name, &nlen);
		for (size_t i = 0; i < sizeof resolvers / sizeof *resolvers; i++)
			if (strlen(resolvers[i].name) == nlen && memcmp(resolvers[i].name, name, nlen) == 0)
				return eval_resolver(r, resolvers[i].kind, e + colon + 1,
						     len - colon - 1, out);
		if (nlen == 0 || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					   "0123456789_.") < nlen)
			return fail(r, "GrammarParseError", "invalid resolver name '%.*s'",
				    (int)nlen, name);
		return fail(r, "UnsupportedInterpolationType",
			    "Unsupported interpolation type %.*s", (int)nlen, name);
	}
	char *key = NULL;
	int rc = eval_text(r, e, len, &key);
	if (rc != FOUND)
		return rc;
	const char *k = key;
	size_t klen = strlen(k);
	trim(&k, &klen);
	char *name = strndup(k, klen);
	if (!name)
		rc = oom(r);
	else if (!*name)
		rc = fail(r, "GrammarParseError", "empty interpolation '${}'");
	else
		rc = lookup(r, name, out);
	free(name);
	free(key);
	return rc;
}

/* Appends a resolved value to pb as text, as OmegaConf prints it in a
 * string: strings as they are, None, True, False, numbers as written.
 * Counts the bytes against the document's text budget. */
static int append_text(resolver *r, struct printbuf *pb, json_object *v)
{
	const char *s;
	size_t len;
	if (!v)
		s = "None";
	else if (json_object_is_type(v, json_type_boolean))
		s = json_object_get_boolean(v) ? "True" : "False";
	else if (json_object_is_type(v, json_type_string))
		s = json_object_get_string(v);
	else
		s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
	if (!s)
		return oom(r);
	len = strlen(s);
	if (spend_text(r, len) != FOUND)
		return FAILED;
	return printbuf_memappend(pb, s, (int)len) >= 0 ? FOUND : oom(r);
}

/* The value of string s: a single interpolation's value, or the text. */
static int eval_string(resolver *r, const char *s, json_object **out)
{
	struct printbuf *pb = printbuf_new();
	size_t i = 0;
	int rc = FOUND;

	*out = NULL;
	if (!pb)
		return oom(r);
	if (++r->eval_depth > INTERP_MAX_DEPTH) {
		r->eval_depth--;
		printbuf_free(pb);
		return fail(r, "InterpolationResolutionError", "interpolations nest too deeply");
	}
	while (s[i] && rc == FOUND && !r->deferred) {
		if (s[i] == '\\' && s[i + 1] == '$' && s[i + 2] == '{') {
			rc = printbuf_memappend(pb, "${", 2) >= 0 ? FOUND : oom(r);
			i += 3;
			continue;
		}
		if (s[i] != '$' || s[i + 1] != '{') {
			rc = printbuf_memappend(pb, s + i, 1) >= 0 ? FOUND : oom(r);
			i++;
			continue;
		}
		long end = find_close(s, i);
		if (end < 0) {
			rc = fail(r, "GrammarParseError", "unterminated interpolation in '%s'", s);
			break;
		}
		json_object *v = NULL;
		rc = eval_expr(r, s + i + 2, (size_t)end - i - 2, &v);
		if (rc == FOUND && i == 0 && !s[end + 1] && !r->deferred) {
			*out = v;   /* the whole string: the value, typed */
			printbuf_free(pb);
			r->eval_depth--;
			return FOUND;
		}
		if (rc == FOUND && !r->deferred)
			rc = append_text(r, pb, v);
		json_object_put(v);
		i = (size_t)end + 1;
	}
	if (rc == FOUND && !r->deferred &&
	    !(*out = json_object_new_string_len(pb->buf, printbuf_length(pb))))
		rc = oom(r);
	printbuf_free(pb);
	r->eval_depth--;
	return rc;
}

int pw_interp_resolve(json_object *root, pw_interp_ctx *ctx, pw_kerror *err)
{
	resolver r = {.root = root, .ctx = ctx, .err = err, .done = json_object_new_object(),
		      .waiting = json_object_new_object()};
	int rc = 0;
	json_object *ignored;

	if (!json_object_is_type(root, json_type_object) || !r.done || !r.waiting) {
		bool ok = !json_object_is_type(root, json_type_object) || (r.done && r.waiting);
		json_object_put(r.done);
		json_object_put(r.waiting);
		return ok ? 0 : pw_kerror_set(err, "MemoryError", "out of memory");
	}
	json_object_object_foreach(root, key, value) {
		(void)value;
		r.deferred = false;
		if (resolve_at(&r, root, key, key, true, &ignored) == FAILED) {
			rc = -1;
			break;
		}
	}
	free(r.stack);
	json_object_put(r.done);
	json_object_put(r.waiting);
	if (rc != 0 && !err->type)
		pw_kerror_set(err, "MemoryError", "out of memory");
	return rc;
}
