/*
 * dag.c - the DAG model: reading a DAG file's tree into pw_dag, validating
 * it (DESIGN.md section 3), computing edges and a topological order, the
 * union of several DAGs, and pipeline inputs/outputs. See dag.h.
 *
 * Validation collects every problem of a file instead of stopping at the
 * first: field checks run per key from static tables, then the graph checks
 * (duplicate names, unknown upstream, two writers, cycles) run over the tasks
 * that have a name. Errors are reported sorted by line.
 *
 * Lookups by task name and dataset name go through a small open-addressing
 * hash map, so building a DAG is O(tasks + edges) apart from sorting each
 * task's upstream list and the heap of Kahn's algorithm.
 */
#include "dag.h"

#include <json-c/json_object_iterator.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"

/* Airflow's default for max_active_runs. */
#define PW_DAG_DEFAULT_MAX_ACTIVE_RUNS 16
#define NONE ((size_t)-1)

/* ---- trigger rules -------------------------------------------------- */

static const char *const trigger_names[] = {
	[PW_TRIGGER_ALL_SUCCESS] = "all_success",
	[PW_TRIGGER_ALL_DONE] = "all_done",
	[PW_TRIGGER_ALL_FAILED] = "all_failed",
	[PW_TRIGGER_ONE_SUCCESS] = "one_success",
	[PW_TRIGGER_ONE_FAILED] = "one_failed",
	[PW_TRIGGER_NONE_FAILED] = "none_failed",
};
#define N_TRIGGERS (sizeof trigger_names / sizeof trigger_names[0])

const char *pw_trigger_rule_name(pw_trigger_rule r)
{
	if ((size_t)r >= N_TRIGGERS)
		return NULL;
	return trigger_names[r];
}

int pw_trigger_rule_parse(const char *name, pw_trigger_rule *out)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < N_TRIGGERS; i++) {
		if (strcmp(name, trigger_names[i]) == 0) {
			*out = (pw_trigger_rule)i;
			return 0;
		}
	}
	return -1;
}

/* ---- identifiers ---------------------------------------------------- */

static bool is_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9');
}

/*
 * true when s has 1..PW_ID_MAX chars, its first is alphanumeric or one of
 * first_extra, and the others alphanumeric or one of rest_extra.
 */
static bool valid_ident(const char *s, const char *first_extra,
			const char *rest_extra)
{
	if (!s || !*s)
		return false;
	if (!is_alnum(s[0]) && !strchr(first_extra, s[0]))
		return false;
	size_t i = 1;
	for (; s[i]; i++) {
		if (i >= PW_ID_MAX)
			return false;
		if (!is_alnum(s[i]) && !strchr(rest_extra, s[i]))
			return false;
	}
	return true;
}

bool pw_valid_dag_id(const char *s)
{
	return valid_ident(s, "_", "_.-");
}

bool pw_valid_run_id(const char *s)
{
	return valid_ident(s, "", "_.:+-");
}

/* [A-Za-z_][A-Za-z0-9_]* */
static bool valid_env_name(const char *s)
{
	if (!*s || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (; *s; s++)
		if (!is_alnum(*s) && *s != '_')
			return false;
	return true;
}

static bool is_params(const char *dataset)
{
	return strncmp(dataset, "params:", 7) == 0;
}

/* ---- a string -> size_t hash map (keys borrowed) --------------------- */

struct strmap {
	const char **keys; /* NULL = empty slot */
	size_t *vals;
	size_t cap;        /* power of two */
	size_t n;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

/* Slot of key, or of the empty slot where it would go. */
static size_t map_slot(const struct strmap *m, const char *key)
{
	size_t mask = m->cap - 1;
	size_t i = (size_t)hash_str(key) & mask;
	while (m->keys[i] && strcmp(m->keys[i], key) != 0)
		i = (i + 1) & mask;
	return i;
}

/* Prepares a map for about hint keys. Returns 0 or -1. */
static int map_init(struct strmap *m, size_t hint)
{
	size_t cap = 16;
	while (cap < hint * 2 && cap < SIZE_MAX / 4)
		cap *= 2;
	m->keys = calloc(cap, sizeof *m->keys);
	m->vals = calloc(cap, sizeof *m->vals);
	m->cap = cap;
	m->n = 0;
	return m->keys && m->vals ? 0 : -1;
}

static void map_free(struct strmap *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof *m);
}

static bool map_get(const struct strmap *m, const char *key, size_t *val)
{
	size_t i = map_slot(m, key);
	if (!m->keys[i])
		return false;
	if (val)
		*val = m->vals[i];
	return true;
}

/* Doubles the table. Returns 0 or -1. */
static int map_grow(struct strmap *m)
{
	struct strmap big = { 0 };
	if (m->cap > SIZE_MAX / 4 || map_init(&big, m->cap) != 0) {
		map_free(&big);
		return -1;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		size_t j = map_slot(&big, m->keys[i]);
		big.keys[j] = m->keys[i];
		big.vals[j] = m->vals[i];
	}
	big.n = m->n;
	map_free(m);
	*m = big;
	return 0;
}

/*
 * Pointer to key's value, inserting it with value 0 when absent (*created
 * then true). NULL when out of memory.
 */
static size_t *map_ref(struct strmap *m, const char *key, bool *created)
{
	if ((m->n + 1) * 2 > m->cap && map_grow(m) != 0)
		return NULL;
	size_t i = map_slot(m, key);
	*created = !m->keys[i];
	if (*created) {
		m->keys[i] = key;
		m->vals[i] = 0;
		m->n++;
	}
	return &m->vals[i];
}

/* Sets key to val. Returns 0 or -1. */
static int map_put(struct strmap *m, const char *key, size_t val)
{
	bool created;
	size_t *v = map_ref(m, key, &created);
	if (!v)
		return -1;
	*v = val;
	return 0;
}

/* ---- small vectors -------------------------------------------------- */

struct intv {
	int *v;
	size_t n, cap;
};

static int intv_push(struct intv *iv, int x)
{
	if (iv->n == iv->cap) {
		size_t cap = iv->cap ? iv->cap * 2 : 8;
		int *v = realloc(iv->v, cap * sizeof *v);
		if (!v)
			return -1;
		iv->v = v;
		iv->cap = cap;
	}
	iv->v[iv->n++] = x;
	return 0;
}

struct sizev {
	size_t *v;
	size_t n, cap;
};

static int sizev_push(struct sizev *sv, size_t x)
{
	if (sv->n == sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 16;
		size_t *v = realloc(sv->v, cap * sizeof *v);
		if (!v)
			return -1;
		sv->v = v;
		sv->cap = cap;
	}
	sv->v[sv->n++] = x;
	return 0;
}

/* A growable string. */
struct sbuf {
	char *s;
	size_t n, cap;
};

static int sbuf_add(struct sbuf *b, const char *s)
{
	size_t len = strlen(s);
	if (b->n + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->n + len + 1)
			cap *= 2;
		char *p = realloc(b->s, cap);
		if (!p)
			return -1;
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->n, s, len + 1);
	b->n += len;
	return 0;
}

/* ---- freeing -------------------------------------------------------- */

static void task_free(pw_task *t)
{
	free(t->id);
	free(t->name);
	free(t->namespace_);
	if (t->argv)
		for (char **a = t->argv; *a; a++)
			free(*a);
	free(t->argv);
	free(t->shell);
	free(t->cwd);
	pw_strv_free(&t->inputs);
	pw_strv_free(&t->outputs);
	pw_strv_free(&t->upstream);
	pw_strv_free(&t->tags);
	free(t->pool);
	json_object_put(t->env);
	free(t->up);
	free(t->down);
	memset(t, 0, sizeof *t);
}

void pw_dag_free(pw_dag *dag)
{
	if (!dag)
		return;
	free(dag->id);
	free(dag->file);
	free(dag->description);
	free(dag->schedule);
	pw_strv_free(&dag->tags);
	json_object_put(dag->params);
	for (size_t i = 0; i < dag->n_tasks; i++)
		task_free(&dag->tasks[i]);
	free(dag->tasks);
	free(dag->order);
	pw_errors_free(&dag->warnings);
	free(dag);
}

/* A DAG with its defaults and no tasks; NULL when out of memory. */
static pw_dag *dag_new(const char *id, const char *file)
{
	pw_dag *dag = calloc(1, sizeof *dag);
	if (!dag)
		return NULL;
	dag->id = strdup(id ? id : "");
	dag->file = file ? strdup(file) : NULL;
	dag->description = strdup("");
	dag->params = json_object_new_object();
	dag->max_active_runs = PW_DAG_DEFAULT_MAX_ACTIVE_RUNS;
	if (!dag->id || (file && !dag->file) || !dag->description ||
	    !dag->params) {
		pw_dag_free(dag);
		return NULL;
	}
	return dag;
}

/* ---- validation context and errors ---------------------------------- */

/* Source lines of one task's list items, parallel to its strvs. */
struct tmeta {
	struct intv up_lines;
	struct intv out_lines;
};

struct vctx {
	const pw_doc *doc;      /* NULL for a union */
	const char *file;       /* NULL: errors carry line 0 */
	pw_errors errs;         /* collected here, then sorted into the caller's */
	char where[560];        /* message prefix: "task 'x': ", "defaults: " */
	pw_task *tmpl;          /* task defaults while reading a DAG file */
	json_object *tasks;     /* the `tasks` list, read after the other keys */
	bool tasks_seen;
	struct tmeta *meta;     /* of the task being read */
};

/*
 * Records a validation error at line, prefixed with c->where. Returns 0, or
 * -1 when out of memory.
 */
__attribute__((format(printf, 3, 4)))
static int verr(struct vctx *c, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = pw_vasprintf(fmt, ap);
	va_end(ap);
	if (!msg)
		return -1;
	int rc = pw_errors_add(&c->errs, c->file, c->file ? line : 0, NULL,
			       "%s%s", c->where, msg);
	free(msg);
	return rc;
}

/* Line of obj's key (else of val, else of obj), for messages. */
static int key_line(const struct vctx *c, const json_object *obj,
		    const char *key, const json_object *val)
{
	int line = key ? pw_doc_key_line(c->doc, obj, key) : 0;
	if (!line && val)
		line = pw_doc_line(c->doc, val);
	if (!line && obj)
		line = pw_doc_line(c->doc, obj);
	return line;
}

/* Line of one list item, falling back to its key's line. */
static int item_line(const struct vctx *c, const json_object *obj,
		     const char *key, const json_object *item)
{
	int line = item ? pw_doc_line(c->doc, item) : 0;
	return line ? line : key_line(c, obj, key, NULL);
}

struct lined {
	int line;
	size_t seq;
};

static int cmp_lined(const void *a, const void *b)
{
	const struct lined *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Adds the collected errors to dst, sorted by line (stable). Returns 0 or
 * -1 when out of memory.
 */
static int errors_flush(pw_errors *src, pw_errors *dst)
{
	int rc = -1;
	struct lined *ord = NULL;

	if (src->n == 0)
		return 0;
	ord = malloc(src->n * sizeof *ord);
	if (!ord)
		goto out;
	for (size_t i = 0; i < src->n; i++)
		ord[i] = (struct lined){ src->v[i].line, i };
	qsort(ord, src->n, sizeof *ord, cmp_lined);
	for (size_t i = 0; i < src->n; i++) {
		const pw_error *e = &src->v[ord[i].seq];
		if (pw_errors_add(dst, e->file, e->line, e->type, "%s",
				  e->message) != 0)
			goto out;
	}
	rc = 0;
out:
	free(ord);
	return rc;
}

/* ---- field tables --------------------------------------------------- */

enum {
	F_NULL_OK = 1,     /* null means "absent" */
	F_IN_DEFAULTS = 2, /* also allowed in the DAG's `defaults` */
};

struct field;
/*
 * A key's handler: checks val (the value of key in obj), stores it at
 * base + f->off, records validation errors. Returns 0, or -1 when out of
 * memory (only then).
 */
typedef int (*field_fn)(struct vctx *c, const struct field *f,
			json_object *obj, const char *key, json_object *val,
			void *base);

struct field {
	const char *key;
	field_fn fn;
	size_t off;
	int min;        /* integers: smallest value allowed */
	unsigned flags;
};

#define AT(base, off, type) ((type *)(void *)((char *)(base) + (off)))

/* Replaces the string at *dst by a copy of s. Returns 0 or -1. */
static int set_str(char **dst, const char *s)
{
	char *copy = strdup(s);
	if (!copy)
		return -1;
	free(*dst);
	*dst = copy;
	return 0;
}

static int h_str(struct vctx *c, const struct field *f, json_object *obj,
		 const char *key, json_object *val, void *base)
{
	if (!json_object_is_type(val, json_type_string))
		return verr(c, key_line(c, obj, key, val),
			    "'%s' must be a string", key);
	return set_str(AT(base, f->off, char *), json_object_get_string(val));
}

static int h_bool(struct vctx *c, const struct field *f, json_object *obj,
		  const char *key, json_object *val, void *base)
{
	if (!json_object_is_type(val, json_type_boolean))
		return verr(c, key_line(c, obj, key, val),
			    "'%s' must be true or false", key);
	*AT(base, f->off, bool) = json_object_get_boolean(val);
	return 0;
}

/* start_date: an ISO-8601 date or time, as ms since the epoch. */
static int h_time(struct vctx *c, const struct field *f, json_object *obj,
		  const char *key, json_object *val, void *base)
{
	long long ms = 0;

	if (!json_object_is_type(val, json_type_string) ||
	    pw_parse_iso(json_object_get_string(val), &ms) != 0)
		return verr(c, key_line(c, obj, key, val),
			    "'%s' must be an ISO-8601 date or time", key);
	*AT(base, f->off, long long) = ms;
	return 0;
}

static int h_int(struct vctx *c, const struct field *f, json_object *obj,
		 const char *key, json_object *val, void *base)
{
	int64_t v = 0;

	if (!json_object_is_type(val, json_type_int) ||
	    (v = json_object_get_int64(val)) < f->min) {
		int line = key_line(c, obj, key, val);
		if (f->min == 0)
			return verr(c, line,
				    "'%s' must be a non-negative integer", key);
		if (f->min == 1)
			return verr(c, line, "'%s' must be a positive integer",
				    key);
		return verr(c, line, "'%s' must be an integer >= %d", key,
			    f->min);
	}
	if (v > INT_MAX)
		return verr(c, key_line(c, obj, key, val),
			    "'%s' is too large (at most %d)", key, INT_MAX);
	*AT(base, f->off, int) = (int)v;
	return 0;
}

/*
 * Reads a list of non-empty strings, or one string, into out (duplicates dropped), with each
 * kept item's line in lines when non-NULL. Outputs may not be "params:*".
 * Returns 0 or -1 (out of memory).
 */
static int read_strv(struct vctx *c, json_object *obj, const char *key,
		     json_object *val, pw_strv *out, struct intv *lines,
		     bool is_outputs)
{
	int rc = -1;
	struct strmap seen = { 0 };
	bool one = json_object_is_type(val, json_type_string); /* Kedro's node(inputs="a") */

	if (!one && !json_object_is_type(val, json_type_array))
		return verr(c, key_line(c, obj, key, val),
			    "'%s' must be a string or a list of strings", key);
	size_t n = one ? 1 : json_object_array_length(val);
	/* Short lists are searched directly; long ones through a map. */
	bool use_map = n > 16;
	if (use_map && map_init(&seen, n) != 0)
		goto out;
	pw_strv_free(out);
	if (lines)
		lines->n = 0;
	for (size_t i = 0; i < n; i++) {
		json_object *item = one ? val : json_object_array_get_idx(val, i);
		int line = item_line(c, obj, key, item);
		const char *s = json_object_get_string(item);
		if (!json_object_is_type(item, json_type_string) || !*s) {
			if (verr(c, line, "'%s' must be a list of non-empty strings",
				 key) != 0)
				goto out;
			continue;
		}
		if (is_outputs && is_params(s)) {
			if (verr(c, line,
				 "'%s' cannot be an output: parameters are read-only",
				 s) != 0)
				goto out;
			continue;
		}
		if (use_map) {
			bool created;
			if (!map_ref(&seen, s, &created))
				goto out;
			if (!created)
				continue;
		} else if (pw_strv_contains(out, s)) {
			continue;
		}
		if (pw_strv_push(out, s) != 0)
			goto out;
		if (lines && intv_push(lines, line) != 0)
			goto out;
	}
	rc = 0;
out:
	map_free(&seen);
	return rc;
}

static int h_strv(struct vctx *c, const struct field *f, json_object *obj,
		  const char *key, json_object *val, void *base)
{
	return read_strv(c, obj, key, val, AT(base, f->off, pw_strv), NULL,
			 false);
}

static int h_upstream(struct vctx *c, const struct field *f,
		      json_object *obj, const char *key, json_object *val,
		      void *base)
{
	return read_strv(c, obj, key, val, AT(base, f->off, pw_strv),
			 &c->meta->up_lines, false);
}

static int h_outputs(struct vctx *c, const struct field *f, json_object *obj,
		     const char *key, json_object *val, void *base)
{
	return read_strv(c, obj, key, val, AT(base, f->off, pw_strv),
			 &c->meta->out_lines, true);
}

static int h_params(struct vctx *c, const struct field *f, json_object *obj,
		    const char *key, json_object *val, void *base)
{
	json_object *copy = NULL;

	if (!json_object_is_type(val, json_type_object))
		return verr(c, key_line(c, obj, key, val),
			    "'%s' must be a mapping", key);
	if (json_object_deep_copy(val, &copy, NULL) != 0)
		return -1;
	json_object **dst = AT(base, f->off, json_object *);
	json_object_put(*dst);
	*dst = copy;
	return 0;
}

static int h_schedule(struct vctx *c, const struct field *f,
		      json_object *obj, const char *key, json_object *val,
		      void *base)
{
	char err[256];
	pw_cron cron;

	if (!json_object_is_type(val, json_type_string))
		return verr(c, key_line(c, obj, key, val),
			    "'%s' must be a cron expression (a string) or null",
			    key);
	const char *s = json_object_get_string(val);
	err[0] = '\0';
	if (pw_cron_parse(s, &cron, err, sizeof err) != 0)
		return verr(c, key_line(c, obj, key, val), "'%s': %s", key,
			    err[0] ? err : "invalid cron expression");
	return set_str(AT(base, f->off, char *), s);
}

static int h_id(struct vctx *c, const struct field *f, json_object *obj,
		const char *key, json_object *val, void *base)
{
	if (!json_object_is_type(val, json_type_string))
		return verr(c, key_line(c, obj, key, val),
			    "'%s' must be a string", key);
	const char *s = json_object_get_string(val);
	if (!pw_valid_task_id(s))
		return verr(c, key_line(c, obj, key, val),
			    "invalid %s '%s': must match "
			    "[A-Za-z0-9_][A-Za-z0-9_.-]* (at most %d characters)",
			    strcmp(key, "id") == 0 ? "task id" : key, s,
			    PW_ID_MAX);
	return set_str(AT(base, f->off, char *), s);
}

static int h_pool(struct vctx *c, const struct field *f, json_object *obj,
		  const char *key, json_object *val, void *base)
{
	if (!json_object_is_type(val, json_type_string))
		return verr(c, key_line(c, obj, key, val),
			    "'%s' must be a string", key);
	const char *s = json_object_get_string(val);
	if (!pw_valid_pool_name(s))
		return verr(c, key_line(c, obj, key, val),
			    "invalid pool name '%s'", s);
	return set_str(AT(base, f->off, char *), s);
}

static int h_trigger(struct vctx *c, const struct field *f, json_object *obj,
		     const char *key, json_object *val, void *base)
{
	pw_trigger_rule r;

	if (json_object_is_type(val, json_type_string) &&
	    pw_trigger_rule_parse(json_object_get_string(val), &r) == 0) {
		*AT(base, f->off, pw_trigger_rule) = r;
		return 0;
	}
	char names[128] = "";
	for (size_t i = 0; i < N_TRIGGERS; i++) {
		if (i)
			strcat(names, ", ");
		strcat(names, trigger_names[i]);
	}
	if (!json_object_is_type(val, json_type_string))
		return verr(c, key_line(c, obj, key, val),
			    "'%s' must be one of %s", key, names);
	return verr(c, key_line(c, obj, key, val),
		    "unknown trigger rule '%s' (expected one of %s)",
		    json_object_get_string(val), names);
}

/* A scalar env value as a string (malloc'd), or NULL when out of memory. */
static char *env_string(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_string:
		return strdup(json_object_get_string(v));
	case json_type_boolean:
		return strdup(json_object_get_boolean(v) ? "true" : "false");
	case json_type_int:
		return pw_asprintf("%lld", (long long)json_object_get_int64(v));
	case json_type_double: {
		double d = json_object_get_double(v);
		char *s = pw_asprintf("%.15g", d);
		if (s && strtod(s, NULL) != d) {
			free(s);
			s = pw_asprintf("%.17g", d);
		}
		return s;
	}
	default:
		return NULL;
	}
}

static int h_env(struct vctx *c, const struct field *f, json_object *obj,
		 const char *key, json_object *val, void *base)
{
	int rc = -1;
	json_object *env = NULL;

	if (!json_object_is_type(val, json_type_object))
		return verr(c, key_line(c, obj, key, val),
			    "'%s' must be a mapping", key);
	env = json_object_new_object();
	if (!env)
		goto out;
	struct json_object_iterator it = json_object_iter_begin(val);
	struct json_object_iterator end = json_object_iter_end(val);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *name = json_object_iter_peek_name(&it);
		json_object *v = json_object_iter_peek_value(&it);
		int line = key_line(c, val, name, v);
		if (!valid_env_name(name)) {
			if (verr(c, line,
				 "'%s': invalid environment variable name '%s'",
				 key, name) != 0)
				goto out;
			continue;
		}
		enum json_type type = json_object_get_type(v);
		if (type != json_type_string && type != json_type_boolean &&
		    type != json_type_int && type != json_type_double) {
			if (verr(c, line,
				 "'%s': value of '%s' must be a string, number or boolean",
				 key, name) != 0)
				goto out;
			continue;
		}
		char *s = env_string(v);
		json_object *js = s ? json_object_new_string(s) : NULL;
		free(s);
		if (!js)
			goto out;
		if (json_object_object_add(env, name, js) != 0) {
			json_object_put(js);
			goto out;
		}
	}
	json_object **dst = AT(base, f->off, json_object *);
	json_object_put(*dst);
	*dst = env;
	env = NULL;
	rc = 0;
out:
	json_object_put(env);
	return rc;
}

static int h_command(struct vctx *c, const struct field *f, json_object *obj,
		     const char *key, json_object *val, void *base)
{
	pw_task *t = base;
	(void)f;
	int line = key_line(c, obj, key, val);

	if (json_object_is_type(val, json_type_string) &&
	    *json_object_get_string(val)) {
		if (set_str(&t->shell, json_object_get_string(val)) != 0)
			return -1;
		return 0;
	}
	size_t n = json_object_is_type(val, json_type_array)
			   ? json_object_array_length(val) : 0;
	bool ok = n > 0;
	for (size_t i = 0; ok && i < n; i++) {
		json_object *item = json_object_array_get_idx(val, i);
		ok = json_object_is_type(item, json_type_string) &&
		     (i > 0 || *json_object_get_string(item));
	}
	if (!ok)
		return verr(c, line,
			    "'%s' must be a non-empty list of strings or a "
			    "non-empty string", key);
	char **argv = calloc(n + 1, sizeof *argv);
	if (!argv)
		return -1;
	for (size_t i = 0; i < n; i++) {
		argv[i] = strdup(
			json_object_get_string(json_object_array_get_idx(val, i)));
		if (!argv[i]) {
			for (size_t j = 0; j < i; j++)
				free(argv[j]);
			free(argv);
			return -1;
		}
	}
	t->argv = argv;
	return 0;
}

static int h_cwd(struct vctx *c, const struct field *f, json_object *obj,
		 const char *key, json_object *val, void *base)
{
	const char *s = json_object_get_string(val);
	bool ok = json_object_is_type(val, json_type_string) && *s && *s != '/';

	for (const char *p = s; ok && p && *p;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (len == 2 && p[0] == '.' && p[1] == '.')
			ok = false;
		p = slash ? slash + 1 : NULL;
	}
	if (!ok)
		return verr(c, key_line(c, obj, key, val),
			    "'%s' must be a relative path without '..'", key);
	return set_str(AT(base, f->off, char *), s);
}

static int h_defaults(struct vctx *c, const struct field *f,
		      json_object *obj, const char *key, json_object *val,
		      void *base);
static int h_tasks(struct vctx *c, const struct field *f, json_object *obj,
		   const char *key, json_object *val, void *base);

static const struct field dag_fields[] = {
	{ "description", h_str, offsetof(pw_dag, description), 0, F_NULL_OK },
	{ "schedule", h_schedule, offsetof(pw_dag, schedule), 0, F_NULL_OK },
	{ "paused", h_bool, offsetof(pw_dag, paused), 0, 0 },
	{ "max_active_runs", h_int, offsetof(pw_dag, max_active_runs), 1, 0 },
	{ "start_date", h_time, offsetof(pw_dag, start_date), 0, F_NULL_OK },
	{ "catchup", h_bool, offsetof(pw_dag, catchup), 0, 0 },
	{ "tags", h_strv, offsetof(pw_dag, tags), 0, F_NULL_OK },
	{ "params", h_params, offsetof(pw_dag, params), 0, F_NULL_OK },
	{ "defaults", h_defaults, 0, 0, F_NULL_OK },
	{ "tasks", h_tasks, 0, 0, 0 },
};

static const struct field task_fields[] = {
	{ "id", h_id, offsetof(pw_task, id), 0, 0 },
	{ "command", h_command, 0, 0, 0 },
	{ "inputs", h_strv, offsetof(pw_task, inputs), 0, F_NULL_OK },
	{ "outputs", h_outputs, offsetof(pw_task, outputs), 0, F_NULL_OK },
	{ "upstream", h_upstream, offsetof(pw_task, upstream), 0, F_NULL_OK },
	{ "tags", h_strv, offsetof(pw_task, tags), 0, F_NULL_OK },
	{ "namespace", h_id, offsetof(pw_task, namespace_), 0, F_NULL_OK },
	{ "retries", h_int, offsetof(pw_task, retries), 0, F_IN_DEFAULTS },
	{ "retry_delay", h_int, offsetof(pw_task, retry_delay), 0,
	  F_IN_DEFAULTS },
	{ "timeout", h_int, offsetof(pw_task, timeout), 0, F_IN_DEFAULTS },
	{ "pool", h_pool, offsetof(pw_task, pool), 0, F_IN_DEFAULTS },
	{ "pool_slots", h_int, offsetof(pw_task, pool_slots), 1,
	  F_IN_DEFAULTS },
	{ "trigger_rule", h_trigger, offsetof(pw_task, trigger_rule), 0,
	  F_IN_DEFAULTS },
	{ "env", h_env, offsetof(pw_task, env), 0, F_NULL_OK },
	{ "cwd", h_cwd, offsetof(pw_task, cwd), 0, F_NULL_OK },
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Reports an unknown key with the keys allowed there and the nearest one:
 * "unknown key 'name' in task #1 (did you mean 'id'? allowed: id, ...)".
 * Returns 0, or -1 when out of memory.
 */
static int unknown_key(struct vctx *c, int line, const char *key, const struct field *tab,
		       size_t n, unsigned need_flags)
{
	const char *allowed[32];
	size_t na = 0;
	for (size_t i = 0; i < n && na < 32; i++)
		if ((tab[i].flags & need_flags) == need_flags)
			allowed[na++] = tab[i].key;
	char *hint = pw_key_hint(key, allowed, na);
	char saved[sizeof c->where];
	size_t wl = strlen(c->where);
	memcpy(saved, c->where, sizeof saved);
	c->where[0] = '\0';
	/* "task 'x': " -> " in task 'x'" */
	int rc = hint ? verr(c, line, "unknown key '%s'%s%.*s %s", key, wl ? " in " : "",
			     (int)(wl >= 2 ? wl - 2 : 0), saved, hint) : -1;
	memcpy(c->where, saved, sizeof saved);
	free(hint);
	return rc;
}

/*
 * Runs every key of the mapping obj through its handler in tab (only the
 * entries with all of need_flags); other keys are "unknown key" errors.
 * Returns 0, or -1 when out of memory.
 */
static int apply_fields(struct vctx *c, json_object *obj,
			const struct field *tab, size_t n, unsigned need_flags,
			void *base)
{
	struct json_object_iterator it = json_object_iter_begin(obj);
	struct json_object_iterator end = json_object_iter_end(obj);

	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *key = json_object_iter_peek_name(&it);
		json_object *val = json_object_iter_peek_value(&it);
		const struct field *f = NULL;
		for (size_t i = 0; i < n && !f; i++)
			if ((tab[i].flags & need_flags) == need_flags &&
			    strcmp(tab[i].key, key) == 0)
				f = &tab[i];
		if (!f) {
			if (unknown_key(c, key_line(c, obj, key, val), key, tab, n,
					need_flags) != 0)
				return -1;
			continue;
		}
		if (!val && (f->flags & F_NULL_OK))
			continue;
		if (f->fn(c, f, obj, key, val, base) != 0)
			return -1;
	}
	return 0;
}

static int h_defaults(struct vctx *c, const struct field *f,
		      json_object *obj, const char *key, json_object *val,
		      void *base)
{
	(void)f, (void)base;
	if (!json_object_is_type(val, json_type_object))
		return verr(c, key_line(c, obj, key, val),
			    "'%s' must be a mapping", key);
	snprintf(c->where, sizeof c->where, "defaults: ");
	int rc = apply_fields(c, val, task_fields, N_OF(task_fields),
			      F_IN_DEFAULTS, c->tmpl);
	c->where[0] = '\0';
	return rc;
}

static int h_tasks(struct vctx *c, const struct field *f, json_object *obj,
		   const char *key, json_object *val, void *base)
{
	(void)f, (void)base;
	c->tasks_seen = true;
	if (!json_object_is_type(val, json_type_array) ||
	    json_object_array_length(val) == 0)
		return verr(c, key_line(c, obj, key, val),
			    "'%s' must be a non-empty list of tasks", key);
	c->tasks = val;
	return 0;
}

/* ---- reading tasks -------------------------------------------------- */

/* Starts t from the DAG's task defaults. Returns 0 or -1. */
static int task_init(pw_task *t, const pw_task *tmpl)
{
	t->retries = tmpl->retries;
	t->retry_delay = tmpl->retry_delay;
	t->timeout = tmpl->timeout;
	t->pool_slots = tmpl->pool_slots;
	t->trigger_rule = tmpl->trigger_rule;
	t->pool = strdup(tmpl->pool);
	return t->pool ? 0 : -1; /* env stays NULL until the task sets one */
}

/* The string value of key in obj when it is a valid id, else NULL. */
static const char *peek_id(json_object *obj, const char *key)
{
	json_object *v = json_object_object_get(obj, key);
	const char *s = json_object_get_string(v);
	return json_object_is_type(v, json_type_string) && pw_valid_task_id(s)
		       ? s : NULL;
}

/*
 * Reads task number i (0-based) from the mapping obj into t, which
 * task_init prepared. The name is set only when the id is valid.
 * Returns 0, or -1 when out of memory.
 */
static int read_task(struct vctx *c, size_t i, json_object *obj, pw_task *t)
{
	int rc = -1;
	const char *id = peek_id(obj, "id");
	const char *ns = peek_id(obj, "namespace");
	int line = pw_doc_line(c->doc, obj);

	t->line_start = line;
	t->line_end = pw_doc_end_line(c->doc, obj);
	if (id && ns)
		snprintf(c->where, sizeof c->where, "task '%s.%s': ", ns, id);
	else if (id)
		snprintf(c->where, sizeof c->where, "task '%s': ", id);
	else
		snprintf(c->where, sizeof c->where, "task #%zu: ", i + 1);

	if (apply_fields(c, obj, task_fields, N_OF(task_fields), 0, t) != 0)
		goto out;
	if (!json_object_object_get_ex(obj, "id", NULL) &&
	    verr(c, line, "missing 'id'") != 0)
		goto out;
	if (!json_object_object_get_ex(obj, "command", NULL) &&
	    verr(c, line, "missing 'command'") != 0)
		goto out;
	/* No name when the namespace is bad: it would be a wrong name. */
	if (t->id &&
	    (t->namespace_ || !json_object_object_get(obj, "namespace"))) {
		t->name = t->namespace_
				  ? pw_asprintf("%s.%s", t->namespace_, t->id)
				  : strdup(t->id);
		if (!t->name)
			goto out;
	}
	rc = 0;
out:
	c->where[0] = '\0';
	return rc;
}

/* Reads c->tasks into dag->tasks, with metas. Returns 0 or -1. */
static int read_tasks(struct vctx *c, pw_dag *dag, struct tmeta **metas)
{
	size_t n = json_object_array_length(c->tasks);

	dag->tasks = calloc(n, sizeof *dag->tasks);
	*metas = calloc(n, sizeof **metas);
	if (!dag->tasks || !*metas)
		return -1;
	dag->n_tasks = n;
	for (size_t i = 0; i < n; i++) {
		json_object *obj = json_object_array_get_idx(c->tasks, i);
		pw_task *t = &dag->tasks[i];
		if (task_init(t, c->tmpl) != 0)
			return -1;
		if (!json_object_is_type(obj, json_type_object)) {
			int line = item_line(c, NULL, NULL, obj);
			if (!line)
				line = pw_doc_line(c->doc, c->tasks);
			if (verr(c, line, "task #%zu must be a mapping",
				 i + 1) != 0)
				return -1;
			continue;
		}
		c->meta = &(*metas)[i];
		if (read_task(c, i, obj, t) != 0)
			return -1;
	}
	c->meta = NULL;
	return 0;
}

/* ---- the graph ------------------------------------------------------ */

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

/* A binary min-heap of task indices, for Kahn's algorithm. */
struct heap {
	size_t *v;
	size_t n;
};

static void heap_push(struct heap *h, size_t x)
{
	size_t i = h->n++;
	while (i > 0 && h->v[(i - 1) / 2] > x) {
		h->v[i] = h->v[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->v[i] = x;
}

static size_t heap_pop(struct heap *h)
{
	size_t top = h->v[0], x = h->v[--h->n], i = 0;
	for (;;) {
		size_t l = 2 * i + 1, m = l + 1, s = i;
		size_t best = x;
		if (l < h->n && h->v[l] < best) {
			s = l;
			best = h->v[l];
		}
		if (m < h->n && h->v[m] < best)
			s = m;
		if (s == i)
			break;
		h->v[i] = h->v[s];
		i = s;
	}
	if (h->n)
		h->v[i] = x;
	return top;
}

/* Where graph errors point and what they may name. */
struct gsrc {
	const struct tmeta *meta;  /* item lines per task, or NULL */
	const char *const *origin; /* DAG id per task (union), or NULL */
};

/*
 * Indexes task names (reporting duplicates) and dataset writers (reporting
 * two writers). Tasks without a name are left out. Returns 0 or -1.
 */
static int index_tasks(struct vctx *c, pw_dag *dag, const struct gsrc *g,
		       struct strmap *names, struct strmap *writers)
{
	for (size_t i = 0; i < dag->n_tasks; i++) {
		const pw_task *t = &dag->tasks[i];
		size_t j;
		if (!t->name)
			continue;
		if (!map_get(names, t->name, &j)) {
			if (map_put(names, t->name, i) != 0)
				return -1;
		} else if (g->origin) {
			if (verr(c, t->line_start,
				 "task '%s' is defined in both DAG '%s' and DAG '%s'",
				 t->name, g->origin[j], g->origin[i]) != 0)
				return -1;
		} else if (verr(c, t->line_start,
				"duplicate task '%s' (first defined at line %d)",
				t->name, dag->tasks[j].line_start) != 0) {
			return -1;
		}
	}
	for (size_t i = 0; i < dag->n_tasks; i++) {
		const pw_task *t = &dag->tasks[i];
		if (!t->name)
			continue;
		for (size_t k = 0; k < t->outputs.n; k++) {
			const char *d = t->outputs.v[k];
			size_t j;
			if (!map_get(writers, d, &j)) {
				if (map_put(writers, d, i) != 0)
					return -1;
				continue;
			}
			if (j == i)
				continue;
			int line = g->meta && k < g->meta[i].out_lines.n
					   ? g->meta[i].out_lines.v[k]
					   : t->line_start;
			/* In a union, Kedro's own error for a sum of pipelines. */
			if (g->origin ? pw_errors_add(&c->errs, NULL, 0, "OutputNotUniqueError",
						      "Output(s) ['%s'] are returned by more than one "
						      "nodes. Node outputs must be unique.", d) != 0
				      : verr(c, line, "dataset '%s' is written by both '%s' and '%s'",
					     d, dag->tasks[j].name, t->name) != 0)
				return -1;
		}
	}
	return 0;
}

/*
 * Fills every named task's up (explicit upstream and dataset writers) and
 * down arrays, sorted and unique. Reports unknown upstream names.
 * Returns 0 or -1.
 */
static int link_tasks(struct vctx *c, pw_dag *dag, const struct gsrc *g,
		      const struct strmap *names, const struct strmap *writers)
{
	int rc = -1;
	struct sizev tmp = { 0 };
	size_t *n_down = NULL;

	for (size_t i = 0; i < dag->n_tasks; i++) {
		pw_task *t = &dag->tasks[i];
		size_t j;
		if (!t->name)
			continue;
		tmp.n = 0;
		for (size_t k = 0; k < t->upstream.n; k++) {
			if (map_get(names, t->upstream.v[k], &j)) {
				if (sizev_push(&tmp, j) != 0)
					goto out;
				continue;
			}
			int line = g->meta && k < g->meta[i].up_lines.n
					   ? g->meta[i].up_lines.v[k]
					   : t->line_start;
			if (verr(c, line, "task '%s': unknown upstream task '%s'",
				 t->name, t->upstream.v[k]) != 0)
				goto out;
		}
		for (size_t k = 0; k < t->inputs.n; k++) {
			if (is_params(t->inputs.v[k]) ||
			    !map_get(writers, t->inputs.v[k], &j))
				continue;
			if (sizev_push(&tmp, j) != 0)
				goto out;
		}
		if (tmp.n == 0)
			continue;
		qsort(tmp.v, tmp.n, sizeof *tmp.v, cmp_size);
		size_t u = 0;
		for (size_t k = 0; k < tmp.n; k++)
			if (u == 0 || tmp.v[u - 1] != tmp.v[k])
				tmp.v[u++] = tmp.v[k];
		t->up = malloc(u * sizeof *t->up);
		if (!t->up)
			goto out;
		memcpy(t->up, tmp.v, u * sizeof *t->up);
		t->n_up = u;
	}

	n_down = calloc(dag->n_tasks ? dag->n_tasks : 1, sizeof *n_down);
	if (!n_down)
		goto out;
	for (size_t i = 0; i < dag->n_tasks; i++)
		for (size_t k = 0; k < dag->tasks[i].n_up; k++)
			n_down[dag->tasks[i].up[k]]++;
	for (size_t i = 0; i < dag->n_tasks; i++) {
		if (!n_down[i])
			continue;
		dag->tasks[i].down = malloc(n_down[i] * sizeof(size_t));
		if (!dag->tasks[i].down)
			goto out;
	}
	/* Visiting i in increasing order keeps each down array sorted. */
	for (size_t i = 0; i < dag->n_tasks; i++) {
		for (size_t k = 0; k < dag->tasks[i].n_up; k++) {
			pw_task *up = &dag->tasks[dag->tasks[i].up[k]];
			up->down[up->n_down++] = i;
		}
	}
	rc = 0;
out:
	free(tmp.v);
	free(n_down);
	return rc;
}

/*
 * Reports one cycle among the tasks not done yet, and marks its tasks done.
 * Every task not done has an upstream task not done (Kahn's invariant), so
 * walking upstream from `start` must close a loop. pos is scratch (NONE for
 * every task on entry and on return). Returns 0 or -1.
 */
static int report_cycle(struct vctx *c, const pw_dag *dag, size_t start,
			unsigned char *done, size_t *pos, struct sizev *path)
{
	int rc = -1;
	struct sbuf msg = { 0 };
	size_t v = start;

	path->n = 0;
	while (pos[v] == NONE) {
		pos[v] = path->n;
		if (sizev_push(path, v) != 0)
			goto out;
		const pw_task *t = &dag->tasks[v];
		size_t next = NONE;
		for (size_t k = 0; k < t->n_up && next == NONE; k++)
			if (!done[t->up[k]])
				next = t->up[k];
		if (next == NONE) /* cannot happen; stop rather than loop */
			goto out;
		v = next;
	}
	/*
	 * path[pos[v]..] is the loop, each entry upstream of the one before.
	 * Print it downstream, starting at the task first in the file.
	 */
	size_t first = pos[v], len = path->n - first, min_at = first;
	for (size_t k = first; k < path->n; k++)
		if (path->v[k] < path->v[min_at])
			min_at = k;
	if (sbuf_add(&msg, "cycle: ") != 0)
		goto out;
	for (size_t step = 0; step <= len; step++) {
		/* walking backwards through the path = downstream */
		size_t k = first + (min_at - first + len - step % len) % len;
		if ((step && sbuf_add(&msg, " -> ") != 0) ||
		    sbuf_add(&msg, dag->tasks[path->v[k]].name) != 0)
			goto out;
	}
	if (verr(c, dag->tasks[path->v[min_at]].line_start, "%s", msg.s) != 0)
		goto out;
	for (size_t k = first; k < path->n; k++)
		done[path->v[k]] = 1;
	rc = 0;
out:
	for (size_t k = 0; k < path->n; k++)
		pos[path->v[k]] = NONE;
	free(msg.s);
	return rc;
}

/*
 * Kahn's algorithm with the smallest ready index first, so the order is
 * deterministic and follows the file where it can. Each cycle found is
 * reported once, then its tasks are taken out so that the rest can go on.
 * Sets dag->order (complete only without cycles). Returns 0 or -1.
 */
static int topo_sort(struct vctx *c, pw_dag *dag)
{
	int rc = -1;
	size_t n = dag->n_tasks, n_done = 0, scan = 0;
	size_t *indeg = NULL, *pos = NULL;
	unsigned char *done = NULL;
	struct heap h = { 0 };
	struct sizev path = { 0 };
	size_t n_order = 0;

	dag->order = malloc((n ? n : 1) * sizeof *dag->order);
	indeg = malloc((n ? n : 1) * sizeof *indeg);
	pos = malloc((n ? n : 1) * sizeof *pos);
	done = calloc(n ? n : 1, 1);
	h.v = malloc((n ? n : 1) * sizeof *h.v);
	if (!dag->order || !indeg || !pos || !done || !h.v)
		goto out;
	for (size_t i = 0; i < n; i++) {
		pos[i] = NONE;
		indeg[i] = dag->tasks[i].n_up;
		if (!indeg[i])
			heap_push(&h, i);
	}
	for (;;) {
		while (h.n) {
			size_t i = heap_pop(&h);
			dag->order[n_order++] = i;
			done[i] = 1;
			n_done++;
			for (size_t k = 0; k < dag->tasks[i].n_down; k++) {
				size_t d = dag->tasks[i].down[k];
				if (!done[d] && --indeg[d] == 0)
					heap_push(&h, d);
			}
		}
		if (n_done == n)
			break;
		while (done[scan])
			scan++;
		if (report_cycle(c, dag, scan, done, pos, &path) != 0)
			goto out;
		/* Release what the removed cycle was holding back. */
		for (size_t k = 0; k < path.n; k++) {
			size_t i = path.v[k];
			if (!done[i])
				continue;
			n_done++;
			for (size_t m = 0; m < dag->tasks[i].n_down; m++) {
				size_t d = dag->tasks[i].down[m];
				if (!done[d] && --indeg[d] == 0)
					heap_push(&h, d);
			}
		}
	}
	rc = 0;
out:
	free(indeg);
	free(pos);
	free(done);
	free(h.v);
	free(path.v);
	return rc;
}

/*
 * The graph checks (duplicate names, two writers, unknown upstream, cycles)
 * over dag's named tasks, filling their edges and dag->order. Problems go
 * to c. Returns 0, or -1 when out of memory.
 */
static int build_graph(struct vctx *c, pw_dag *dag, const struct gsrc *g)
{
	int rc = -1;
	struct strmap names = { 0 }, writers = { 0 };

	if (map_init(&names, dag->n_tasks) != 0 ||
	    map_init(&writers, dag->n_tasks) != 0)
		goto out;
	if (index_tasks(c, dag, g, &names, &writers) != 0 ||
	    link_tasks(c, dag, g, &names, &writers) != 0 ||
	    topo_sort(c, dag) != 0)
		goto out;
	rc = 0;
out:
	map_free(&names);
	map_free(&writers);
	return rc;
}

/*
 * The end of pw_dag_from_doc and pw_dag_union: returns dag when rc is 0 and
 * nothing was found; otherwise hands the errors to errs (sorted by line,
 * plus "out of memory" when rc is -1), frees dag and returns NULL.
 */
static pw_dag *finish(struct vctx *c, pw_dag *dag, int rc, pw_errors *errs)
{
	if (rc == 0 && c->errs.n == 0) {
		pw_errors_free(&c->errs);
		return dag;
	}
	if (errors_flush(&c->errs, errs) != 0 || rc != 0)
		pw_errors_add(errs, c->file, 0, NULL, "out of memory");
	pw_errors_free(&c->errs);
	pw_dag_free(dag);
	return NULL;
}

pw_dag *pw_dag_from_doc(const char *id, const pw_doc *doc, pw_errors *errs)
{
	int rc = -1;
	pw_dag *dag = NULL;
	struct tmeta *metas = NULL;
	size_t n_metas = 0;
	/* Task defaults, before the DAG's `defaults` apply. */
	pw_task tmpl = {
		.retries = 0,
		.retry_delay = 10,
		.timeout = 0,
		.pool_slots = 1,
		.trigger_rule = PW_TRIGGER_ALL_SUCCESS,
	};
	struct vctx c = { .doc = doc, .tmpl = &tmpl };
	json_object *root = doc ? pw_doc_root(doc) : NULL;

	c.file = doc ? pw_doc_file(doc) : NULL;
	tmpl.pool = strdup("default_pool");
	dag = dag_new(id, c.file);
	if (!tmpl.pool || !dag)
		goto out;
	if (!pw_valid_dag_id(id) &&
	    verr(&c, 0,
		 "invalid DAG id '%s': must match [A-Za-z0-9_][A-Za-z0-9_.-]* "
		 "(at most %d characters)", id ? id : "", PW_ID_MAX) != 0)
		goto out;
	if (!json_object_is_type(root, json_type_object)) {
		int line = root ? pw_doc_line(doc, root) : 0;
		if (verr(&c, line ? line : 1,
			 "a DAG file must be a mapping with 'tasks'") != 0)
			goto out;
		rc = 0;
		goto out;
	}
	if (apply_fields(&c, root, dag_fields, N_OF(dag_fields), 0, dag) != 0)
		goto out;
	if (!c.tasks_seen) {
		int line = pw_doc_line(doc, root);
		if (verr(&c, line ? line : 1, "missing 'tasks'") != 0)
			goto out;
	}
	if (c.tasks) {
		n_metas = json_object_array_length(c.tasks);
		if (read_tasks(&c, dag, &metas) != 0)
			goto out;
		struct gsrc g = { metas, NULL };
		if (build_graph(&c, dag, &g) != 0)
			goto out;
	}
	rc = 0;
out:
	for (size_t i = 0; metas && i < n_metas; i++) {
		free(metas[i].up_lines.v);
		free(metas[i].out_lines.v);
	}
	free(metas);
	task_free(&tmpl);
	return finish(&c, dag, rc, errs);
}

static int strv_copy(pw_strv *dst, const pw_strv *src)
{
	for (size_t i = 0; i < src->n; i++)
		if (pw_strv_push(dst, src->v[i]) != 0)
			return -1;
	return 0;
}

/* Copies a string field unless it is NULL. Returns 0 or -1. */
static int dup_opt(char **dst, const char *src)
{
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -1;
}

/*
 * Deep copy of src's fields into the zeroed d, without edges. Returns 0 or
 * -1; d then holds what was copied (task_free releases it).
 */
static int task_copy(pw_task *d, const pw_task *s)
{
	if (dup_opt(&d->id, s->id) || dup_opt(&d->name, s->name) ||
	    dup_opt(&d->namespace_, s->namespace_) ||
	    dup_opt(&d->shell, s->shell) || dup_opt(&d->cwd, s->cwd) ||
	    dup_opt(&d->pool, s->pool))
		return -1;
	if (s->argv) {
		size_t n = 0;
		while (s->argv[n])
			n++;
		d->argv = calloc(n + 1, sizeof *d->argv);
		if (!d->argv)
			return -1;
		for (size_t i = 0; i < n; i++)
			if (dup_opt(&d->argv[i], s->argv[i]) != 0)
				return -1;
	}
	if (strv_copy(&d->inputs, &s->inputs) ||
	    strv_copy(&d->outputs, &s->outputs) ||
	    strv_copy(&d->upstream, &s->upstream) ||
	    strv_copy(&d->tags, &s->tags))
		return -1;
	d->retries = s->retries;
	d->retry_delay = s->retry_delay;
	d->timeout = s->timeout;
	d->pool_slots = s->pool_slots;
	d->trigger_rule = s->trigger_rule;
	d->line_start = s->line_start;
	d->line_end = s->line_end;
	if (s->env)
		return json_object_deep_copy(s->env, &d->env, NULL) == 0 ? 0 : -1;
	return 0;
}

pw_dag *pw_dag_union(const char *id, pw_dag *const *dags, size_t n,
		     pw_errors *errs)
{
	int rc = -1;
	struct vctx c = { 0 };
	const char **origin = NULL;
	size_t total = 0;
	pw_dag *dag = dag_new(id, NULL);

	if (!dag)
		goto out;
	for (size_t d = 0; d < n; d++)
		total += dags[d]->n_tasks;
	dag->tasks = calloc(total ? total : 1, sizeof *dag->tasks);
	origin = calloc(total ? total : 1, sizeof *origin);
	if (!dag->tasks || !origin)
		goto out;
	for (size_t d = 0; d < n; d++) {
		for (size_t i = 0; i < dags[d]->n_tasks; i++) {
			origin[dag->n_tasks] = dags[d]->id;
			if (task_copy(&dag->tasks[dag->n_tasks++],
				      &dags[d]->tasks[i]) != 0)
				goto out;
		}
	}
	struct gsrc g = { NULL, origin };
	if (build_graph(&c, dag, &g) != 0)
		goto out;
	rc = 0;
out:
	free(origin);
	return finish(&c, dag, rc, errs);
}

long pw_dag_task_index(const pw_dag *dag, const char *name)
{
	for (size_t i = 0; i < dag->n_tasks; i++)
		if (dag->tasks[i].name && strcmp(dag->tasks[i].name, name) == 0)
			return (long)i;
	return -1;
}

/* On failure (out of memory) both vectors are left empty. */
int pw_dag_io(const pw_dag *dag, const bool *selected, pw_strv *inputs,
	      pw_strv *outputs)
{
	enum { READ = 1, WRITTEN = 2 };
	int rc = -1;
	struct strmap m = { 0 };
	bool created;

	if (map_init(&m, 64) != 0)
		goto out;
	for (size_t i = 0; i < dag->n_tasks; i++) {
		const pw_task *t = &dag->tasks[i];
		if (selected && !selected[i])
			continue;
		for (size_t k = 0; k < t->inputs.n; k++) {
			size_t *f = map_ref(&m, t->inputs.v[k], &created);
			if (!f)
				goto out;
			*f |= READ;
		}
		for (size_t k = 0; k < t->outputs.n; k++) {
			size_t *f = map_ref(&m, t->outputs.v[k], &created);
			if (!f)
				goto out;
			*f |= WRITTEN;
		}
	}
	for (size_t i = 0; i < m.cap; i++) {
		if (!m.keys[i])
			continue;
		if (m.vals[i] == READ && pw_strv_push(inputs, m.keys[i]) != 0)
			goto out;
		if (m.vals[i] == WRITTEN && pw_strv_push(outputs, m.keys[i]) != 0)
			goto out;
	}
	pw_strv_sort(inputs);
	pw_strv_sort(outputs);
	rc = 0;
out:
	map_free(&m);
	if (rc != 0) {
		pw_strv_free(inputs);
		pw_strv_free(outputs);
	}
	return rc;
}
