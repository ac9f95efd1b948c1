/*
 * dag_fields.c - reading a DAG file's tree into pw_dag (pw_dag_from_doc):
 * each key of the DAG, its `defaults` and its tasks is checked and stored
 * by the handler a static table gives it; unknown keys are errors with a
 * hint. Then dag_graph.c checks the graph over the tasks that have a name.
 */
#include "dag_impl.h"

#include <json-c/json_object_iterator.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "strmap.h"

/* ---- lines for messages --------------------------------------------- */

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
		return dag_verr(c, key_line(c, obj, key, val),
				"'%s' must be a string", key);
	return set_str(AT(base, f->off, char *), json_object_get_string(val));
}

static int h_bool(struct vctx *c, const struct field *f, json_object *obj,
		  const char *key, json_object *val, void *base)
{
	if (!json_object_is_type(val, json_type_boolean))
		return dag_verr(c, key_line(c, obj, key, val),
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
		return dag_verr(c, key_line(c, obj, key, val),
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
			return dag_verr(c, line,
					"'%s' must be a non-negative integer", key);
		if (f->min == 1)
			return dag_verr(c, line, "'%s' must be a positive integer",
					key);
		return dag_verr(c, line, "'%s' must be an integer >= %d", key,
				f->min);
	}
	if (v > INT_MAX)
		return dag_verr(c, key_line(c, obj, key, val),
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
	pw_strmap seen = { 0 };
	bool one = json_object_is_type(val, json_type_string); /* Kedro's node(inputs="a") */

	if (!one && !json_object_is_type(val, json_type_array))
		return dag_verr(c, key_line(c, obj, key, val),
				"'%s' must be a string or a list of strings", key);
	size_t n = one ? 1 : json_object_array_length(val);
	/* Short lists are searched directly; long ones through a map. */
	bool use_map = n > 16;
	if (use_map && pw_strmap_init(&seen, n) != 0)
		goto out;
	pw_strv_free(out);
	if (lines)
		lines->n = 0;
	for (size_t i = 0; i < n; i++) {
		json_object *item = one ? val : json_object_array_get_idx(val, i);
		int line = item_line(c, obj, key, item);
		const char *s = json_object_get_string(item);
		if (!json_object_is_type(item, json_type_string) || !*s) {
			if (dag_verr(c, line, "'%s' must be a list of non-empty strings",
				     key) != 0)
				goto out;
			continue;
		}
		if (is_outputs && dag_is_params(s)) {
			if (dag_verr(c, line,
				     "'%s' cannot be an output: parameters are read-only",
				     s) != 0)
				goto out;
			continue;
		}
		if (use_map) {
			bool created;
			if (!pw_strmap_ref(&seen, s, strlen(s), &created))
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
	pw_strmap_free(&seen);
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

static int h_inputs(struct vctx *c, const struct field *f, json_object *obj,
		    const char *key, json_object *val, void *base)
{
	return read_strv(c, obj, key, val, AT(base, f->off, pw_strv),
			 &c->meta->in_lines, false);
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
		return dag_verr(c, key_line(c, obj, key, val),
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
		return dag_verr(c, key_line(c, obj, key, val),
				"'%s' must be a cron expression (a string) or null",
				key);
	const char *s = json_object_get_string(val);
	err[0] = '\0';
	if (pw_cron_parse(s, &cron, err, sizeof err) != 0)
		return dag_verr(c, key_line(c, obj, key, val), "'%s': %s", key,
				err[0] ? err : "invalid cron expression");
	return set_str(AT(base, f->off, char *), s);
}

static int h_id(struct vctx *c, const struct field *f, json_object *obj,
		const char *key, json_object *val, void *base)
{
	if (!json_object_is_type(val, json_type_string))
		return dag_verr(c, key_line(c, obj, key, val),
				"'%s' must be a string", key);
	const char *s = json_object_get_string(val);
	if (!pw_valid_task_id(s))
		return dag_verr(c, key_line(c, obj, key, val),
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
		return dag_verr(c, key_line(c, obj, key, val),
				"'%s' must be a string", key);
	const char *s = json_object_get_string(val);
	if (!pw_valid_pool_name(s))
		return dag_verr(c, key_line(c, obj, key, val),
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
	const char *name;
	for (int i = 0; (name = pw_trigger_rule_name((pw_trigger_rule)i)); i++) {
		if (i)
			strcat(names, ", ");
		strcat(names, name);
	}
	if (!json_object_is_type(val, json_type_string))
		return dag_verr(c, key_line(c, obj, key, val),
				"'%s' must be one of %s", key, names);
	return dag_verr(c, key_line(c, obj, key, val),
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
		return dag_verr(c, key_line(c, obj, key, val),
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
		if (!dag_valid_env_name(name)) {
			if (dag_verr(c, line,
				     "'%s': invalid environment variable name '%s'",
				     key, name) != 0)
				goto out;
			continue;
		}
		enum json_type type = json_object_get_type(v);
		if (type != json_type_string && type != json_type_boolean &&
		    type != json_type_int && type != json_type_double) {
			if (dag_verr(c, line,
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
		return dag_verr(c, line,
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
		return dag_verr(c, key_line(c, obj, key, val),
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
	{ "inputs", h_inputs, offsetof(pw_task, inputs), 0, F_NULL_OK },
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
	int rc = hint ? dag_verr(c, line, "unknown key '%s'%s%.*s %s", key, wl ? " in " : "",
				 (int)(wl >= 2 ? wl - 2 : 0), saved, hint) : -1;
	memcpy(c->where, saved, sizeof saved);
	free(hint);
	return rc;
}

/*
 * Runs every key of the mapping obj through its handler in tab (only the
 * entries with all of need_flags); other keys are "unknown key" errors.
 * Sets bit i of *set (when set is non-NULL) for each tab[i] obj has.
 * Returns 0, or -1 when out of memory.
 */
static int apply_fields(struct vctx *c, json_object *obj,
			const struct field *tab, size_t n, unsigned need_flags,
			void *base, unsigned *set)
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
		if (set)
			*set |= 1u << (f - tab);
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
		return dag_verr(c, key_line(c, obj, key, val),
				"'%s' must be a mapping", key);
	snprintf(c->where, sizeof c->where, "defaults: ");
	int rc = apply_fields(c, val, task_fields, N_OF(task_fields),
			      F_IN_DEFAULTS, c->tmpl, NULL);
	c->where[0] = '\0';
	return rc;
}

/* The tasks themselves were read before (read_task), as they came. */
static int h_tasks(struct vctx *c, const struct field *f, json_object *obj,
		   const char *key, json_object *val, void *base)
{
	const pw_dag *dag = base;
	(void)f;
	c->tasks_seen = true;
	if (!json_object_is_type(val, json_type_array) || dag->n_tasks == 0)
		return dag_verr(c, key_line(c, obj, key, val),
				"'%s' must be a non-empty list of tasks", key);
	c->tasks_ok = true;
	return 0;
}

/* ---- reading tasks -------------------------------------------------- */

/*
 * Gives t the DAG's task defaults for the fields its file did not set
 * (bit i of set: task_fields[i]). Runs once the whole file is read, since
 * `defaults` may come after `tasks`. Returns 0 or -1.
 */
static int task_defaults(pw_task *t, unsigned set, const pw_task *tmpl)
{
	_Static_assert(sizeof(pw_trigger_rule) == sizeof(int),
		       "defaults copy trigger rules as ints");
	for (size_t i = 0; i < N_OF(task_fields); i++) {
		const struct field *f = &task_fields[i];
		if (!(f->flags & F_IN_DEFAULTS) || (set & (1u << i)))
			continue;
		if (f->fn == h_pool) {
			if (set_str(AT(t, f->off, char *), tmpl->pool) != 0)
				return -1;
		} else {
			*AT(t, f->off, int) = *AT(tmpl, f->off, int);
		}
	}
	return 0;
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
 * Reads task number i (0-based) from the mapping obj into the zeroed t,
 * recording in c->meta its item lines and the fields it sets. The name is
 * set only when the id is valid. Returns 0, or -1 when out of memory.
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

	if (apply_fields(c, obj, task_fields, N_OF(task_fields), 0, t,
			 &c->meta->set) != 0)
		goto out;
	if (!json_object_object_get_ex(obj, "id", NULL) &&
	    dag_verr(c, line, "missing 'id'") != 0)
		goto out;
	if (!json_object_object_get_ex(obj, "command", NULL) &&
	    dag_verr(c, line, "missing 'command'") != 0)
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

/* One DAG file being read: its tasks as they come, then the other keys. */
struct dagfile {
	struct vctx c;
	pw_dag *dag;
	pw_task tmpl;        /* task defaults, before the file's `defaults` */
	struct tmeta *metas; /* parallel to dag->tasks */
	size_t cap;          /* of both */
	bool failed;         /* out of memory */
};

/* Starts reading the file named file as DAG id. Returns 0 or -1. */
static int dagfile_begin(struct dagfile *d, const char *id, const char *file)
{
	memset(d, 0, sizeof *d);
	d->tmpl = (pw_task){
		.retries = 0,
		.retry_delay = 10,
		.timeout = 0,
		.pool_slots = 1,
		.trigger_rule = PW_TRIGGER_ALL_SUCCESS,
	};
	d->c.tmpl = &d->tmpl;
	d->c.file = file;
	d->tmpl.pool = strdup("default_pool");
	d->dag = dag_new(id, file);
	d->failed = !d->tmpl.pool || !d->dag;
	return d->failed ? -1 : 0;
}

/* Frees what d holds besides the DAG and the errors. */
static void dagfile_free(struct dagfile *d)
{
	for (size_t i = 0; d->dag && i < d->dag->n_tasks; i++) {
		free(d->metas[i].up_lines.v);
		free(d->metas[i].out_lines.v);
		free(d->metas[i].in_lines.v);
	}
	free(d->metas);
	d->metas = NULL;
	dag_task_free(&d->tmpl);
}

/*
 * pw_doc_item_fn: reads one item of `tasks` (list) into the next task.
 * Returns 0, or -1 when out of memory.
 */
static int dagfile_task(void *arg, const pw_doc *doc, const json_object *list,
			json_object *item)
{
	struct dagfile *d = arg;
	struct vctx *c = &d->c;
	pw_dag *dag = d->dag;
	size_t i = dag->n_tasks, cap = d->cap;
	bool created;

	c->doc = doc;
	if (pw_grow(&dag->tasks, i, &cap, sizeof *dag->tasks, 64) != 0 ||
	    pw_grow(&d->metas, i, &d->cap, sizeof *d->metas, 64) != 0)
		goto fail;
	memset(&dag->tasks[i], 0, sizeof *dag->tasks);
	memset(&d->metas[i], 0, sizeof *d->metas);
	dag->n_tasks++;
	if (!json_object_is_type(item, json_type_object)) {
		int line = item_line(c, NULL, NULL, item);
		if (!line)
			line = pw_doc_line(doc, list);
		if (dag_verr(c, line, "task #%zu must be a mapping", i + 1) != 0)
			goto fail;
		return 0;
	}
	c->meta = &d->metas[i];
	if (read_task(c, i, item, &dag->tasks[i]) != 0)
		goto fail;
	c->meta = NULL;
	const pw_strv *in = &dag->tasks[i].inputs;
	if (in->n && !dag->input_lines &&
	    !(dag->input_lines = calloc(1, sizeof *dag->input_lines)))
		goto fail;
	for (size_t k = 0; k < in->n; k++) {
		size_t *line = pw_strmap_ref(dag->input_lines, in->v[k],
					     strlen(in->v[k]), &created);
		if (!line)
			goto fail;
		if (created)
			*line = (size_t)d->metas[i].in_lines.v[k];
	}
	return 0;
fail:
	d->failed = true;
	return -1;
}

/*
 * Ends reading: the file's other keys from doc's root, the defaults, the
 * graph. Returns the DAG, or NULL with the errors added to errs (see
 * dag_finish); frees what d holds either way.
 */
static pw_dag *dagfile_end(struct dagfile *d, const pw_doc *doc,
			   pw_errors *errs)
{
	struct vctx *c = &d->c;
	pw_dag *dag = d->dag;
	json_object *root = pw_doc_root(doc);
	int rc = -1;
	/* The tasks' errors go after the file's own, as when the tasks were
	 * read last (the order of the errors of one line). */
	pw_errors task_errs = c->errs;

	c->errs = (pw_errors){ 0 };
	c->doc = doc;
	if (d->failed)
		goto out;
	if (!pw_valid_dag_id(dag->id) &&
	    dag_verr(c, 0,
		     "invalid DAG id '%s': must match [A-Za-z0-9_][A-Za-z0-9_.-]* "
		     "(at most %d characters)", dag->id, PW_ID_MAX) != 0)
		goto out;
	if (!json_object_is_type(root, json_type_object)) {
		int line = root ? pw_doc_line(doc, root) : 0;
		if (dag_verr(c, line ? line : 1,
			     "a DAG file must be a mapping with 'tasks'") != 0)
			goto out;
		rc = 0;
		goto out;
	}
	if (apply_fields(c, root, dag_fields, N_OF(dag_fields), 0, dag,
			 NULL) != 0)
		goto out;
	if (!c->tasks_seen) {
		int line = pw_doc_line(doc, root);
		if (dag_verr(c, line ? line : 1, "missing 'tasks'") != 0)
			goto out;
	}
	if (pw_errors_move(&c->errs, &task_errs) != 0)
		goto out;
	if (c->tasks_ok) {
		pw_task *fit = realloc(dag->tasks, dag->n_tasks * sizeof *fit);
		if (fit)
			dag->tasks = fit;
		for (size_t i = 0; i < dag->n_tasks; i++)
			if (task_defaults(&dag->tasks[i], d->metas[i].set,
					  &d->tmpl) != 0)
				goto out;
		struct gsrc g = { d->metas, NULL };
		if (dag_build_graph(c, dag, &g) != 0)
			goto out;
	}
	rc = 0;
out:
	if (pw_errors_move(&c->errs, &task_errs) != 0)
		rc = -1;
	pw_errors_free(&task_errs);
	dagfile_free(d);
	return dag_finish(c, dag, rc, errs);
}

/* ---- the file ------------------------------------------------------- */

pw_dag *pw_dag_from_doc(const char *id, const pw_doc *doc, pw_errors *errs)
{
	struct dagfile d;
	json_object *list = NULL;

	if (dagfile_begin(&d, id, pw_doc_file(doc)) == 0 &&
	    json_object_object_get_ex(pw_doc_root(doc), "tasks", &list) &&
	    json_object_is_type(list, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(list); i++)
			if (dagfile_task(&d, doc, list,
					 json_object_array_get_idx(list, i)) != 0)
				break;
	}
	return dagfile_end(&d, doc, errs);
}

/* The end of pw_dag_parse and pw_dag_load, with their doc (NULL when it
 * could not be parsed). */
static pw_dag *dagfile_done(struct dagfile *d, pw_doc *doc, pw_errors *errs)
{
	pw_dag *dag = NULL;

	if (doc || d->failed) {
		dag = dagfile_end(d, doc, errs);
	} else {
		/* a syntax error, in errs: what the tasks read before it
		 * found does not count */
		dagfile_free(d);
		pw_errors_free(&d->c.errs);
		pw_dag_free(d->dag);
	}
	pw_doc_free(doc);
	return dag;
}

pw_dag *pw_dag_parse(const char *id, const char *text, size_t len,
		     const char *file, int as_json, pw_errors *errs)
{
	struct dagfile d;
	pw_doc_each each = { "tasks", dagfile_task, &d };
	pw_doc *doc = NULL;

	if (dagfile_begin(&d, id, file) == 0)
		doc = pw_doc_parse_each(text, len, file, as_json, &each, errs);
	return dagfile_done(&d, doc, errs);
}

pw_dag *pw_dag_load(const char *id, const char *path, const char *file,
		    pw_errors *errs)
{
	struct dagfile d;
	pw_doc_each each = { "tasks", dagfile_task, &d };
	pw_doc *doc = NULL;

	if (dagfile_begin(&d, id, file) == 0)
		doc = pw_doc_load_each(path, file, &each, errs);
	return dagfile_done(&d, doc, errs);
}
