/*
 * doc.c - see doc.h.
 *
 * Both readers build a json-c tree and fill one side table with the lines
 * of every value, keyed by the address of its json_object, and of every
 * key of every mapping, keyed by the address of the mapping's copy of the
 * key string. Addresses are only unique while the objects live, so every
 * object whose address is in the table stays alive as long as the doc: it
 * is in the tree or in doc->keep. YAML aliases are deep copies for the
 * same reason (a shared object would have two places in the text).
 */
#include "doc.h"
#include "jsonnum.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Deepest nesting of mappings and sequences accepted (json-c frees
 * recursively, so unbounded depth would overflow the stack). */
#define PW_DOC_MAX_DEPTH 256
/*
 * The "billion laughs" guard: alias expansion may create at most
 * PW_DOC_FREE_COPIES values, plus PW_DOC_COPIES_PER_NODE for each value
 * written in the text so far, and never more than PW_DOC_MAX_COPIES. A
 * DAG that merges a mapping of defaults into each task ("<<: *defaults")
 * stays far below; a few KB of nested aliases that would expand into
 * millions of values (seconds of CPU, hundreds of MB) are refused.
 */
#define PW_DOC_FREE_COPIES 10000
#define PW_DOC_COPIES_PER_NODE 16
#define PW_DOC_MAX_COPIES 1000000
/* Slots a new sequence starts with (json-c's default is 32, 256 bytes a
 * list); 3 pointers fill malloc's smallest chunk. It doubles as it grows. */
#define PW_DOC_SEQ_SLOTS 3

/* ---- the line table ----------------------------------------------------- */

/* The lines of one value, or of one key of a mapping (line only). */
struct line_ent {
	const void *ptr; /* what the lines belong to (tab_addr); NULL: free */
	int line, end;
};

/* Open addressing with linear probing; cap is 0 or a power of two. */
struct line_tab {
	struct line_ent *v;
	size_t cap, n;
};

struct pw_doc {
	char *file;
	json_object *root;
	struct line_tab lines;
	json_object *keep; /* array of values in the table but not the tree */
};

/*
 * The address the lines of (ptr, key) are filed under: ptr itself for a
 * value (key NULL); for a key of the mapping ptr, json-c's own copy of the
 * key string, which lives as long as the key is in the mapping (even when
 * its value is replaced), so no key is copied. NULL when the mapping has
 * no such key.
 */
static const void *tab_addr(const void *ptr, const char *key)
{
	const json_object *obj = ptr;

	if (!key)
		return ptr;
	if (!json_object_is_type(obj, json_type_object))
		return NULL;
	struct lh_entry *e = lh_table_lookup_entry(json_object_get_object(obj), key);
	return e ? lh_entry_k(e) : NULL;
}

/* The slot where addr's probe starts. */
static size_t tab_home(const struct line_tab *t, const void *addr)
{
	uint64_t h = (uint64_t)(uintptr_t)addr * 0x9E3779B97F4A7C15ull;
	return (size_t)(h ^ (h >> 31)) & (t->cap - 1);
}

/* The slot holding addr, or the free slot where it would go. Requires
 * cap > n. */
static struct line_ent *tab_slot(const struct line_tab *t, const void *addr)
{
	size_t mask = t->cap - 1;
	size_t i = tab_home(t, addr);

	while (t->v[i].ptr && t->v[i].ptr != addr)
		i = (i + 1) & mask;
	return &t->v[i];
}

/* Doubles the capacity (64 at first), moving every entry. 0 or -1. */
static int tab_grow(struct line_tab *t)
{
	size_t cap = t->cap ? t->cap * 2 : 64;
	struct line_tab nt = { calloc(cap, sizeof(struct line_ent)), cap, 0 };

	if (!nt.v)
		return -1;
	for (size_t i = 0; i < t->cap; i++) {
		if (t->v[i].ptr)
			*tab_slot(&nt, t->v[i].ptr) = t->v[i];
	}
	nt.n = t->n;
	free(t->v);
	*t = nt;
	return 0;
}

/* Sets the lines of (ptr, key); a key must already be in the mapping (it
 * is skipped otherwise). Returns 0 or -1 (no memory). */
static int tab_set(struct line_tab *t, const void *ptr, const char *key,
		   int line, int end)
{
	const void *addr = tab_addr(ptr, key);

	if (!addr)
		return 0;
	if ((t->n + 1) * 2 > t->cap && tab_grow(t) != 0)
		return -1;
	struct line_ent *e = tab_slot(t, addr);
	if (!e->ptr) {
		e->ptr = addr;
		t->n++;
	}
	e->line = line;
	e->end = end;
	return 0;
}

/* The entry for (ptr, key), or NULL. */
static const struct line_ent *tab_get(const struct line_tab *t,
				      const void *ptr, const char *key)
{
	const void *addr = ptr && t->cap ? tab_addr(ptr, key) : NULL;
	const struct line_ent *e = addr ? tab_slot(t, addr) : NULL;
	return e && e->ptr ? e : NULL;
}

/* Removes the entry for (ptr, key), if any, moving back the entries
 * after it that would no longer be found. */
static void tab_del(struct line_tab *t, const void *ptr, const char *key)
{
	const void *addr = ptr && t->cap ? tab_addr(ptr, key) : NULL;
	struct line_ent *e = addr ? tab_slot(t, addr) : NULL;
	size_t mask = t->cap - 1, hole, j;

	if (!e || !e->ptr)
		return;
	hole = j = (size_t)(e - t->v);
	while (t->v[j = (j + 1) & mask].ptr) {
		/* the entry at j may move to the hole if its probe started at
		 * or before the hole (cyclically) */
		size_t home = tab_home(t, t->v[j].ptr);
		if (((j - home) & mask) >= ((j - hole) & mask)) {
			t->v[hole] = t->v[j];
			hole = j;
		}
	}
	t->v[hole].ptr = NULL;
	t->n--;
}

/* Removes the lines of val and of everything in it. */
static void tab_forget(struct line_tab *t, json_object *val)
{
	if (json_object_is_type(val, json_type_object)) {
		struct json_object_iter it;
		json_object_object_foreachC(val, it) {
			tab_forget(t, it.val);
			tab_del(t, val, it.key);
		}
	} else if (json_object_is_type(val, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(val); i++)
			tab_forget(t, json_object_array_get_idx(val, i));
	}
	tab_del(t, val, NULL);
}

static void tab_free(struct line_tab *t)
{
	free(t->v);
	t->v = NULL;
	t->cap = t->n = 0;
}

/* Keeps val (one reference, taken over) alive for the doc's lifetime. */
static int doc_keep(pw_doc *doc, json_object *val)
{
	if (!doc->keep && !(doc->keep = json_object_new_array())) {
		json_object_put(val);
		return -1;
	}
	if (json_object_array_add(doc->keep, val) != 0) {
		json_object_put(val);
		return -1;
	}
	return 0;
}

/* Adds a formatted error to errs (which may be NULL). Always returns -1. */
static int doc_verr(pw_errors *errs, const char *file, int line,
		    const char *type, const char *fmt, va_list ap)
	__attribute__((format(printf, 5, 0)));

static int doc_verr(pw_errors *errs, const char *file, int line,
		    const char *type, const char *fmt, va_list ap)
{
	char *msg;

	if (!errs)
		return -1;
	msg = pw_vasprintf(fmt, ap);
	pw_errors_add(errs, file, line, type, "%s", msg ? msg : "out of memory");
	free(msg);
	return -1;
}

static int doc_err(pw_errors *errs, const char *file, int line,
		   const char *type, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int doc_err(pw_errors *errs, const char *file, int line,
		   const char *type, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	doc_verr(errs, file, line, type, fmt, ap);
	va_end(ap);
	return -1;
}

/* 1-based line of byte offset off in text. */
static int line_at(const char *text, size_t len, size_t off)
{
	int line = 1;

	for (size_t i = 0; i < off && i < len; i++)
		line += text[i] == '\n';
	return line;
}

/* ---- YAML 1.2 core schema ----------------------------------------------- */

static int one_of(const char *s, size_t len, const char *const *words)
{
	for (; *words; words++) {
		if (strlen(*words) == len && memcmp(s, *words, len) == 0)
			return 1;
	}
	return 0;
}

/* Number of leading bytes of s[0..len) that are digits in base. */
static size_t digits(const char *s, size_t len, int base)
{
	static const char set[] = "0123456789abcdefABCDEF";
	size_t n = 0;
	size_t nset = base == 16 ? 22 : (size_t)base;

	while (n < len && s[n] && memchr(set, s[n], nset))
		n++;
	return n;
}

/* Core-schema integer forms: [-+]?[0-9]+, 0o[0-7]+, 0x[0-9a-fA-F]+.
 * Returns the base (10, 8 or 16) and sets *skip to the prefix length, or 0. */
static int int_form(const char *s, size_t len, size_t *skip)
{
	if (len > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
		int base = s[1] == 'o' ? 8 : 16;
		*skip = 2;
		return digits(s + 2, len - 2, base) == len - 2 ? base : 0;
	}
	*skip = len > 0 && (s[0] == '-' || s[0] == '+');
	if (len == *skip)
		return 0;
	return digits(s + *skip, len - *skip, 10) == len - *skip ? 10 : 0;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int is_float(const char *s, size_t len)
{
	size_t i = len > 0 && (s[0] == '-' || s[0] == '+');
	size_t lead = digits(s + i, len - i, 10), frac = 0;

	i += lead;
	if (i < len && s[i] == '.') {
		frac = digits(s + i + 1, len - i - 1, 10);
		i += 1 + frac;
	}
	if (!lead && !frac)
		return 0;
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		i += i < len && (s[i] == '-' || s[i] == '+');
		size_t exp = digits(s + i, len - i, 10);
		if (!exp)
			return 0;
		i += exp;
	}
	return i == len;
}

/* A core-schema integer as int64, or as a double when it does not fit. */
static json_object *new_int(const char *s, size_t len, int base, size_t skip)
{
	errno = 0;
	long long v = strtoll(s + skip, NULL, base);
	if (errno != ERANGE)
		return json_object_new_int64(v);
	double d = 0;
	for (size_t i = skip; i < len; i++) {
		int c = s[i];
		d = d * base + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	return json_object_new_double(d);
}

/* Resolves a plain scalar (NUL-terminated, len bytes) by the core schema.
 * Sets *out (NULL for null). Returns 0, or -1 when out of memory. */
static int resolve_plain(const char *s, size_t len, json_object **out)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL", 0 };
	static const char *const trues[] = { "true", "True", "TRUE", 0 };
	static const char *const falses[] = { "false", "False", "FALSE", 0 };
	static const char *const infs[] = { ".inf", ".Inf", ".INF", 0 };
	static const char *const nans[] = { ".nan", ".NaN", ".NAN", 0 };
	size_t skip, sign = len > 0 && (s[0] == '-' || s[0] == '+');
	int base;

	*out = NULL;
	if (one_of(s, len, nulls))
		return 0;
	if (one_of(s, len, trues) || one_of(s, len, falses))
		*out = json_object_new_boolean(one_of(s, len, trues));
	else if ((base = int_form(s, len, &skip)) == 10 || (!base && is_float(s, len)))
		*out = pw_json_number_new(s, len); /* keeps the text (jsonnum.h) */
	else if (base)
		*out = new_int(s, len, base, skip);
	else if (one_of(s + sign, len - sign, infs))
		*out = json_object_new_double(s[0] == '-' ? -INFINITY : INFINITY);
	else if (one_of(s, len, nans))
		*out = json_object_new_double(NAN);
	else
		*out = json_object_new_string_len(s, (int)len);
	return *out ? 0 : -1;
}

int pw_doc_plain_scalar(const char *s, size_t len, json_object **out)
{
	char *copy = strndup(s, len);
	int rc = copy ? resolve_plain(copy, len, out) : -1;
	free(copy);
	return rc;
}

/* ---- YAML: building the tree from events -------------------------------- */

/* An open mapping or sequence. */
struct frame {
	json_object *obj;     /* owned until attached to its parent */
	char *anchor;         /* owned, or NULL */
	int line, end;        /* first line, last line seen so far */
	int flow;             /* flow style: the end event marks the end */
	char *key;            /* mapping: key awaiting its value, or NULL */
	int key_line;
	int key_merge;        /* the pending key is a plain "<<" */
	int has_merge;
	json_object *merges;  /* array of mappings for "<<", or NULL */
};

/* A defined anchor; val is a counted reference (NULL for null). */
struct anchor {
	char *name;
	json_object *val;
};

struct ybuild {
	pw_doc *doc;
	pw_errors *errs;
	struct frame *st;
	size_t depth, cap;
	struct anchor *anc;
	size_t nanc, anccap;
	size_t copies; /* values created by alias expansion */
	size_t nodes;  /* values (and aliases) written in the text */
	int ndocs;
	const pw_doc_each *each; /* the list to stream, or NULL */
	size_t each_depth;       /* depth while its items arrive, else 0 */
	size_t each_nanc;        /* anchors defined before the current item */
	bool streamed;           /* each's list was streamed */
};

static int yerr(struct ybuild *b, int line, const char *type,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* An error at line of the document being built. Returns -1. */
static int yerr(struct ybuild *b, int line, const char *type,
		const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	doc_verr(b->errs, b->doc->file, line, type, fmt, ap);
	va_end(ap);
	return -1;
}

static int oom(struct ybuild *b)
{
	return doc_err(b->errs, b->doc->file, 0, NULL, "out of memory");
}

/* 1-based first and last line of an event. An end mark at column 0 of a
 * later line (block scalars take their line break) counts as the line
 * before it. */
static int ev_line(const yaml_event_t *ev)
{
	return (int)ev->start_mark.line + 1;
}

static int ev_end(const yaml_event_t *ev)
{
	const yaml_mark_t *s = &ev->start_mark, *e = &ev->end_mark;
	return (int)e->line + (e->column == 0 && e->line > s->line ? 0 : 1);
}

static struct frame *top(struct ybuild *b)
{
	return b->depth ? &b->st[b->depth - 1] : NULL;
}

static int is_map(const struct frame *f)
{
	return f && json_object_is_type(f->obj, json_type_object);
}

static void frame_free(struct frame *f)
{
	json_object_put(f->obj);
	json_object_put(f->merges);
	free(f->anchor);
	free(f->key);
}

/* Defines (or redefines) anchor name as val (a new reference is taken). */
static int anchor_add(struct ybuild *b, const char *name, json_object *val)
{
	if (pw_grow(&b->anc, b->nanc, &b->anccap, sizeof *b->anc, 8) != 0)
		return -1;
	char *copy = strdup(name);
	if (!copy)
		return -1;
	b->anc[b->nanc].name = copy;
	b->anc[b->nanc++].val = json_object_get(val);
	return 0;
}

/* The latest anchor called name, or NULL. */
static const struct anchor *anchor_find(const struct ybuild *b,
					const char *name)
{
	for (size_t i = b->nanc; i-- > 0;) {
		if (strcmp(b->anc[i].name, name) == 0)
			return &b->anc[i];
	}
	return NULL;
}

static void build_free(struct ybuild *b)
{
	while (b->depth)
		frame_free(&b->st[--b->depth]);
	free(b->st);
	for (size_t i = 0; i < b->nanc; i++) {
		free(b->anc[i].name);
		json_object_put(b->anc[i].val);
	}
	free(b->anc);
}

/* Deep copy of a scalar (not null), numbers with their text. NULL when
 * out of memory. */
static json_object *copy_scalar(json_object *src)
{
	json_object *dst = NULL;
	if (json_object_deep_copy(src, &dst, NULL) != 0)
		return NULL;
	return dst;
}

static int copy_value(struct ybuild *b, json_object *src, int line,
		      json_object **out);

/* Copies each member of mapping src into dst, with its key lines. */
static int copy_members(struct ybuild *b, json_object *src, json_object *dst,
			int line)
{
	struct json_object_iter it;

	json_object_object_foreachC(src, it) {
		json_object *v;
		if (copy_value(b, it.val, line, &v) != 0)
			return -1;
		if (json_object_object_add(dst, it.key, v) != 0) {
			json_object_put(v);
			return oom(b);
		}
		const struct line_ent *e = tab_get(&b->doc->lines, src, it.key);
		int kl = e ? e->line : line;
		if (tab_set(&b->doc->lines, dst, it.key, kl, kl) != 0)
			return oom(b);
	}
	return 0;
}

/* Copies each element of sequence src onto dst. */
static int copy_elements(struct ybuild *b, json_object *src, json_object *dst,
			 int line)
{
	size_t n = json_object_array_length(src);

	for (size_t i = 0; i < n; i++) {
		json_object *v;
		if (copy_value(b, json_object_array_get_idx(src, i), line, &v))
			return -1;
		if (json_object_array_add(dst, v) != 0) {
			json_object_put(v);
			return oom(b);
		}
	}
	return 0;
}

/*
 * Sets *out to a deep copy of src (an alias's value), each copied value
 * carrying the lines of its original, or `line` when that has none.
 * Returns 0, or -1 with an error added (*out is then NULL).
 */
static int copy_value(struct ybuild *b, json_object *src, int line,
		      json_object **out)
{
	json_object *dst = NULL;
	int rc = -1;

	*out = NULL;
	if (!src)
		return 0;
	if (++b->copies > PW_DOC_MAX_COPIES ||
	    b->copies > PW_DOC_FREE_COPIES + PW_DOC_COPIES_PER_NODE * b->nodes)
		return yerr(b, line, NULL, "aliases expand to too many values "
			    "(%zu copies for %zu values written)",
			    b->copies, b->nodes);
	if (json_object_is_type(src, json_type_object))
		dst = json_object_new_object();
	else if (json_object_is_type(src, json_type_array))
		dst = json_object_new_array_ext(PW_DOC_SEQ_SLOTS);
	else
		dst = copy_scalar(src);
	if (!dst) {
		oom(b);
		goto out;
	}
	if (json_object_is_type(src, json_type_object))
		rc = copy_members(b, src, dst, line);
	else if (json_object_is_type(src, json_type_array))
		rc = copy_elements(b, src, dst, line);
	else
		rc = 0;
	const struct line_ent *e = tab_get(&b->doc->lines, src, NULL);
	if (rc == 0 && tab_set(&b->doc->lines, dst, NULL, e ? e->line : line,
			       e ? e->end : line) != 0)
		rc = oom(b);
out:
	if (rc == 0)
		*out = dst;
	else
		json_object_put(dst);
	return rc;
}

/* Queues val, the value of a "<<" key (taken over), for merging into f. */
static int merge_add(struct ybuild *b, struct frame *f, json_object *val,
		     int line)
{
	size_t n = 1;
	int is_list = json_object_is_type(val, json_type_array);

	if (is_list)
		n = json_object_array_length(val);
	if (!f->merges && !(f->merges = json_object_new_array()))
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		json_object *m = is_list ? json_object_array_get_idx(val, i) : val;
		if (!json_object_is_type(m, json_type_object)) {
			json_object_put(val);
			return yerr(b, line, NULL, "%s", "merge key '<<' needs a "
				    "mapping or a list of mappings");
		}
		if (json_object_array_add(f->merges, json_object_get(m)) != 0) {
			json_object_put(m);
			goto nomem;
		}
	}
	return doc_keep(b->doc, val) == 0 ? 0 : oom(b);
nomem:
	json_object_put(val);
	return oom(b);
}

/* Adds the keys of f's merge mappings that f does not define itself; the
 * first mapping named wins. */
static int merge_apply(struct ybuild *b, struct frame *f)
{
	size_t n = f->merges ? json_object_array_length(f->merges) : 0;

	for (size_t i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(f->merges, i);
		struct json_object_iter it;
		json_object_object_foreachC(m, it) {
			if (json_object_object_get_ex(f->obj, it.key, NULL))
				continue;
			json_object *v = json_object_get(it.val);
			if (json_object_object_add(f->obj, it.key, v) != 0) {
				json_object_put(v);
				return oom(b);
			}
			const struct line_ent *e =
				tab_get(&b->doc->lines, m, it.key);
			int kl = e ? e->line : f->line;
			if (tab_set(&b->doc->lines, f->obj, it.key, kl, kl))
				return oom(b);
		}
	}
	if (f->merges && doc_keep(b->doc, f->merges) != 0) {
		f->merges = NULL;
		return oom(b);
	}
	f->merges = NULL;
	return 0;
}

/* Stores val (taken over) under f's pending key. */
static int map_put(struct ybuild *b, struct frame *f, json_object *val)
{
	char *key = f->key;
	int rc = 0;

	f->key = NULL;
	if (f->key_merge) {
		f->key_merge = 0;
		free(key);
		return merge_add(b, f, val, f->key_line);
	}
	if (json_object_object_add(f->obj, key, val) != 0) {
		json_object_put(val);
		rc = oom(b);
	} else if (tab_set(&b->doc->lines, f->obj, key, f->key_line,
			   f->key_line) != 0) {
		rc = oom(b);
	}
	free(key);
	return rc;
}

/*
 * An item of the streamed list f (taken over): hands it to the caller's
 * function, then drops it and its lines, or keeps it in the list when it
 * defined an anchor (an alias may still copy it, with its lines).
 */
static int each_item(struct ybuild *b, struct frame *f, json_object *val)
{
	int rc = b->each->fn(b->each->arg, b->doc, f->obj, val);

	if (rc == 0 && b->nanc > b->each_nanc) {
		b->each_nanc = b->nanc;
		if (json_object_array_add(f->obj, val) == 0)
			return 0;
		rc = oom(b);
	} else {
		tab_forget(&b->doc->lines, val);
	}
	json_object_put(val);
	return rc;
}

/*
 * A complete value (taken over, NULL for null) spanning line..end: records
 * its lines and its anchor, then attaches it to the open collection or
 * makes it the root. Returns 0 or -1.
 */
static int finish_value(struct ybuild *b, json_object *val,
			const char *anchor, int line, int end)
{
	struct frame *f = top(b);

	if ((val && tab_set(&b->doc->lines, val, NULL, line, end) != 0) ||
	    (anchor && anchor_add(b, anchor, val) != 0)) {
		json_object_put(val);
		return oom(b);
	}
	if (!f) {
		b->doc->root = val;
		return 0;
	}
	if (end > f->end)
		f->end = end;
	if (b->each_depth && b->depth == b->each_depth)
		return each_item(b, f, val);
	if (is_map(f))
		return map_put(b, f, val);
	if (json_object_array_add(f->obj, val) != 0) {
		json_object_put(val);
		return oom(b);
	}
	return 0;
}

/* A scalar in key position of mapping f. Keys are always strings; a
 * plain "<<" is a merge key. */
static int on_key(struct ybuild *b, struct frame *f, const char *key,
		  int plain, int line)
{
	int merge = plain && strcmp(key, "<<") == 0;

	if (merge ? f->has_merge : json_object_object_get_ex(f->obj, key, NULL))
		return yerr(b, line, NULL, "duplicate key '%s'", key);
	if (!(f->key = strdup(key)))
		return oom(b);
	f->key_line = line;
	f->key_merge = merge;
	f->has_merge |= merge;
	if (line > f->end)
		f->end = line;
	return 0;
}

/* Checks a value resolved under an explicit standard tag (!!null, !!bool,
 * !!int, !!float). May turn an int into a double for !!float. */
static int check_tag(struct ybuild *b, const yaml_event_t *ev,
		     const char *want, json_object **val)
{
	enum json_type t = json_object_get_type(*val);
	int ok = 1;

	if (strcmp(want, "null") == 0)
		ok = t == json_type_null;
	else if (strcmp(want, "bool") == 0)
		ok = t == json_type_boolean;
	else if (strcmp(want, "int") == 0)
		ok = t == json_type_int;
	else if (strcmp(want, "float") == 0 && t == json_type_int) {
		json_object *d = json_object_new_double(
			(double)json_object_get_int64(*val));
		json_object_put(*val);
		*val = d;
		if (!d)
			return oom(b);
	} else if (strcmp(want, "float") == 0)
		ok = t == json_type_double;
	if (ok)
		return 0;
	json_object_put(*val);
	*val = NULL;
	return doc_err(b->errs, b->doc->file, ev_line(ev), NULL,
		       "'%s' is not a valid !!%s",
		       (const char *)ev->data.scalar.value, want);
}

/* The value of a scalar event: quoted and !!str / ! scalars are strings,
 * plain ones resolve by the core schema; other tags are ignored. */
static int make_scalar(struct ybuild *b, const yaml_event_t *ev,
		       json_object **val)
{
	static const char std[] = "tag:yaml.org,2002:";
	const char *tag = (const char *)ev->data.scalar.tag;
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	const char *want = NULL;

	*val = NULL;
	if (len > INT_MAX)
		return yerr(b, ev_line(ev), NULL, "%s", "scalar too long");
	if (tag && strncmp(tag, std, sizeof std - 1) == 0)
		want = tag + sizeof std - 1;
	if (want ? strcmp(want, "str") == 0
		 : !plain || (tag && strcmp(tag, "!") == 0)) {
		*val = json_object_new_string_len(s, (int)len);
		return *val ? 0 : oom(b);
	}
	if (resolve_plain(s, len, val) != 0)
		return oom(b);
	return want ? check_tag(b, ev, want, val) : 0;
}

static int on_scalar(struct ybuild *b, const yaml_event_t *ev)
{
	struct frame *f = top(b);
	const char *anchor = (const char *)ev->data.scalar.anchor;
	json_object *val;

	if (is_map(f) && !f->key) {
		const char *key = (const char *)ev->data.scalar.value;
		int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
			    !ev->data.scalar.tag;
		if (on_key(b, f, key, plain, ev_line(ev)) != 0)
			return -1;
		if (!anchor)
			return 0;
		/* an anchored key: the anchor names the key as a string */
		json_object *s = json_object_new_string(key);
		int rc = s ? anchor_add(b, anchor, s) : -1;
		json_object_put(s);
		return rc == 0 ? 0 : oom(b);
	}
	if (make_scalar(b, ev, &val) != 0)
		return -1;
	/* an implicit null (nothing written) has the next token's marks */
	int implicit = !ev->data.scalar.length &&
		       ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	return finish_value(b, val, anchor, ev_line(ev),
			    implicit ? 0 : ev_end(ev));
}

static int on_alias(struct ybuild *b, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	const struct anchor *a = anchor_find(b, name);
	struct frame *f = top(b);
	int line = ev_line(ev);
	json_object *val;

	if (!a)
		return yerr(b, line, NULL, "found undefined alias '%s'", name);
	if (is_map(f) && !f->key) {
		if (json_object_is_type(a->val, json_type_object) ||
		    json_object_is_type(a->val, json_type_array))
			return yerr(b, line, NULL, "%s",
				    "mapping keys must be scalars");
		const char *key = a->val ? json_object_get_string(a->val) : "null";
		return on_key(b, f, key, 0, line);
	}
	if (copy_value(b, a->val, line, &val) != 0)
		return -1;
	return finish_value(b, val, NULL, line, line);
}

/* Opens a mapping or sequence (obj, taken over). */
static int on_start(struct ybuild *b, const yaml_event_t *ev,
		    json_object *obj, const char *anchor, int flow)
{
	struct frame *f = top(b);
	int line = ev_line(ev);

	if (!obj)
		return oom(b);
	if (is_map(f) && !f->key) {
		json_object_put(obj);
		return yerr(b, line, NULL, "%s", "mapping keys must be scalars");
	}
	if (b->depth >= PW_DOC_MAX_DEPTH) {
		json_object_put(obj);
		return yerr(b, line, NULL, "%s", "too deeply nested");
	}
	if (pw_grow(&b->st, b->depth, &b->cap, sizeof *b->st, 16) != 0) {
		json_object_put(obj);
		return oom(b);
	}
	/* the list to stream: a sequence without anchor under its key of
	 * the root mapping; its first line is known to the items already */
	int each = b->each && b->depth == 1 && is_map(f) && !f->key_merge &&
		   json_object_is_type(obj, json_type_array) && !anchor &&
		   strcmp(f->key, b->each->key) == 0;
	f = &b->st[b->depth++];
	memset(f, 0, sizeof *f);
	f->obj = obj;
	f->line = f->end = line;
	f->flow = flow;
	if (anchor && !(f->anchor = strdup(anchor)))
		return oom(b);
	if (each) {
		b->streamed = true;
		b->each_depth = b->depth;
		b->each_nanc = b->nanc;
		if (tab_set(&b->doc->lines, obj, NULL, line, line) != 0)
			return oom(b);
	}
	return 0;
}

/* Closes the innermost mapping or sequence and attaches it. */
static int on_end(struct ybuild *b, const yaml_event_t *ev)
{
	struct frame f = b->st[--b->depth];
	int rc;

	if (b->depth < b->each_depth)
		b->each_depth = 0; /* the streamed list ends */
	if (f.flow && ev_end(ev) > f.end)
		f.end = ev_end(ev);
	if (merge_apply(b, &f) != 0) {
		frame_free(&f);
		return -1;
	}
	rc = finish_value(b, f.obj, f.anchor, f.line, f.end);
	f.obj = NULL;
	frame_free(&f);
	return rc;
}

static int on_event(struct ybuild *b, const yaml_event_t *ev)
{
	if (ev->type == YAML_SCALAR_EVENT || ev->type == YAML_ALIAS_EVENT ||
	    ev->type == YAML_SEQUENCE_START_EVENT ||
	    ev->type == YAML_MAPPING_START_EVENT)
		b->nodes++;
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++b->ndocs == 1)
			return 0;
		return yerr(b, ev_line(ev), NULL, "%s",
			    "expected a single document in the stream, "
			    "but found another document");
	case YAML_SCALAR_EVENT:
		return on_scalar(b, ev);
	case YAML_ALIAS_EVENT:
		return on_alias(b, ev);
	case YAML_SEQUENCE_START_EVENT:
		return on_start(b, ev,
				json_object_new_array_ext(PW_DOC_SEQ_SLOTS),
				(const char *)ev->data.sequence_start.anchor,
				ev->data.sequence_start.style ==
					YAML_FLOW_SEQUENCE_STYLE);
	case YAML_MAPPING_START_EVENT:
		return on_start(b, ev, json_object_new_object(),
				(const char *)ev->data.mapping_start.anchor,
				ev->data.mapping_start.style ==
					YAML_FLOW_MAPPING_STYLE);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		return on_end(b, ev);
	default:
		return 0;
	}
}

/*
 * Reports libyaml's error at its line, typed as PyYAML types it: the
 * stages of libyaml and PyYAML are the same (reader, scanner, parser).
 */
static int yaml_syntax_error(struct ybuild *b, const yaml_parser_t *p,
			     const char *text, size_t len)
{
	const char *problem = p->problem ? p->problem : "invalid YAML";
	const char *type = p->error == YAML_SCANNER_ERROR ? "ScannerError"
			 : p->error == YAML_READER_ERROR ? "ReaderError" : "ParserError";
	int line = (int)p->problem_mark.line + 1;

	if (p->error == YAML_MEMORY_ERROR)
		return oom(b);
	if (p->error == YAML_READER_ERROR)
		line = line_at(text, len, p->problem_offset);
	if (!p->context)
		return yerr(b, line, type, "%s", problem);
	return doc_err(b->errs, b->doc->file, line, type, "%s (%s at line %d)", problem,
		       p->context, (int)p->context_mark.line + 1);
}

/*
 * Hands each item of the list each->key of doc's root to each->fn, for a
 * list read whole: JSON, or a YAML list that could not be streamed (it
 * has an anchor, or is an alias's copy). Returns 0 or -1.
 */
static int each_whole(pw_doc *doc, const pw_doc_each *each)
{
	json_object *list = NULL;
	int rc = 0;

	if (!each || !json_object_object_get_ex(doc->root, each->key, &list) ||
	    !json_object_is_type(list, json_type_array))
		return 0;
	size_t n = json_object_array_length(list);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = each->fn(each->arg, doc, list, json_object_array_get_idx(list, i));
	return rc;
}

/* Parses YAML text into doc, streaming each's list. Returns 0, or -1 with
 * errors added. */
static int parse_yaml(pw_doc *doc, const char *text, size_t len,
		      const pw_doc_each *each, pw_errors *errs)
{
	struct ybuild b = { .doc = doc, .errs = errs, .each = each };
	yaml_parser_t p;
	yaml_event_t ev;
	int rc = -1, done = 0;

	if (!yaml_parser_initialize(&p))
		return doc_err(errs, doc->file, 0, NULL, "out of memory");
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	while (!done) {
		if (!yaml_parser_parse(&p, &ev)) {
			yaml_syntax_error(&b, &p, text, len);
			goto out;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		int r = on_event(&b, &ev);
		yaml_event_delete(&ev);
		if (r != 0)
			goto out;
	}
	rc = b.streamed ? 0 : each_whole(doc, each);
out:
	build_free(&b);
	yaml_parser_delete(&p);
	return rc;
}

/* ---- JSON --------------------------------------------------------------- */

/* A cursor over JSON text that json-c has already accepted. */
struct jwalk {
	pw_doc *doc;
	pw_errors *errs;
	const char *s;
	size_t len, pos;
	int line;
};

static int jpeek(const struct jwalk *w)
{
	return w->pos < w->len ? (unsigned char)w->s[w->pos] : -1;
}

static void jnext(struct jwalk *w)
{
	if (w->pos < w->len && w->s[w->pos++] == '\n')
		w->line++;
}

static void jskip_ws(struct jwalk *w)
{
	int c;

	while ((c = jpeek(w)) == ' ' || c == '\t' || c == '\n' || c == '\r')
		jnext(w);
}

/* Skips a string literal, starting at its opening quote. */
static void jskip_string(struct jwalk *w)
{
	int c;

	jnext(w);
	while ((c = jpeek(w)) != -1 && c != '"') {
		if (c == '\\')
			jnext(w);
		jnext(w);
	}
	jnext(w);
}

/* Skips a number, true, false or null. */
static void jskip_literal(struct jwalk *w)
{
	int c;

	while ((c = jpeek(w)) > 0 && (strchr("+-.", c) || (c >= '0' &&
		c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
		jnext(w);
}

/* The decoded key of the string literal at s[start..end); malloc'd or
 * NULL. Escapes are decoded by json-c itself, so keys match its own. */
static char *jdecode_key(const char *s, size_t start, size_t end)
{
	if (end - start < 2)
		return strdup("");
	if (!memchr(s + start + 1, '\\', end - start - 2))
		return strndup(s + start + 1, end - start - 2);
	json_tokener *tok = json_tokener_new();
	char *key = NULL;
	if (!tok)
		return NULL;
	json_object *o = json_tokener_parse_ex(tok, s + start, (int)(end - start));
	if (json_object_is_type(o, json_type_string))
		key = strdup(json_object_get_string(o));
	json_object_put(o);
	json_tokener_free(tok);
	return key;
}

static int jwalk_value(struct jwalk *w, json_object *val);

/* Records the line of one key of obj (NULL if the tree disagrees) and
 * walks its value. A key seen before in this object is an error. */
static int jwalk_member(struct jwalk *w, json_object *obj)
{
	size_t start = w->pos;
	int line = w->line, rc = -1;
	json_object *child = NULL;

	jskip_string(w);
	char *key = jdecode_key(w->s, start, w->pos);
	if (!key)
		return doc_err(w->errs, w->doc->file, 0, NULL, "out of memory");
	jskip_ws(w);
	jnext(w); /* ':' */
	if (obj && tab_get(&w->doc->lines, obj, key)) {
		doc_err(w->errs, w->doc->file, line, NULL,
			"duplicate key '%s'", key);
		goto out;
	}
	if (obj && tab_set(&w->doc->lines, obj, key, line, line) != 0) {
		doc_err(w->errs, w->doc->file, 0, NULL, "out of memory");
		goto out;
	}
	if (obj)
		json_object_object_get_ex(obj, key, &child);
	rc = jwalk_value(w, child);
out:
	free(key);
	return rc;
}

/* Walks an object or array (at its opening bracket) whose json-c value
 * is val, or NULL when the tree disagrees. */
static int jwalk_container(struct jwalk *w, json_object *val)
{
	int is_obj = jpeek(w) == '{', close = is_obj ? '}' : ']';
	size_t i = 0;
	int c;

	if (!json_object_is_type(val, is_obj ? json_type_object
					     : json_type_array))
		val = NULL;
	jnext(w);
	for (;;) {
		jskip_ws(w);
		if ((c = jpeek(w)) == -1 || c == close)
			break;
		if (c == ',') {
			jnext(w);
			continue;
		}
		if (is_obj && c != '"')
			break;
		json_object *child = !val || is_obj ? NULL
				   : json_object_array_get_idx(val, i++);
		if ((is_obj ? jwalk_member(w, val) : jwalk_value(w, child)) != 0)
			return -1;
	}
	jnext(w);
	return 0;
}

/* Walks one value, recording the lines of val (which json-c built from
 * it; NULL for null or when the tree disagrees). */
static int jwalk_value(struct jwalk *w, json_object *val)
{
	int c, line;

	jskip_ws(w);
	line = w->line;
	c = jpeek(w);
	if (c == '{' || c == '[') {
		if (jwalk_container(w, val) != 0)
			return -1;
	} else if (c == '"') {
		jskip_string(w);
	} else {
		jskip_literal(w);
	}
	if (val && tab_set(&w->doc->lines, val, NULL, line, w->line) != 0)
		return doc_err(w->errs, w->doc->file, 0, NULL, "out of memory");
	return 0;
}

/* Reports json-c's error (or trailing text) at the line of offset off. */
static int json_syntax_error(pw_doc *doc, pw_errors *errs, const char *text,
			     size_t len, size_t off, const char *desc)
{
	return doc_err(errs, doc->file, line_at(text, len, off),
		       "JSONDecodeError", "%s", desc);
}

/* Parses JSON text into doc, then hands each's list to it item by item.
 * Returns 0, or -1 with errors added. */
static int parse_json(pw_doc *doc, const char *text, size_t len,
		      const pw_doc_each *each, pw_errors *errs)
{
	struct jwalk w = { doc, errs, text, len, 0, 1 };
	json_tokener *tok = NULL;
	json_object *root = NULL;
	enum json_tokener_error jerr;
	int rc = -1;

	if (len >= INT_MAX)
		return doc_err(errs, doc->file, 0, NULL, "file too large");
	if (!(tok = json_tokener_new_ex(PW_DOC_MAX_DEPTH)))
		return doc_err(errs, doc->file, 0, NULL, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
				    JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tok, text, (int)len);
	w.pos = json_tokener_get_parse_end(tok);
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_continue) {
		/* end of input: a NUL ends a pending number or literal */
		root = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		w.pos = len;
	}
	if (jerr != json_tokener_success) {
		json_syntax_error(doc, errs, text, len, w.pos,
				  json_tokener_error_desc(jerr));
		goto out;
	}
	jskip_ws(&w);
	if (w.pos < len) {
		json_syntax_error(doc, errs, text, len, w.pos, "extra data");
		goto out;
	}
	if (pw_json_keep_numbers(&root, text, len) != 0) {
		doc_err(errs, doc->file, 0, NULL, "out of memory");
		goto out;
	}
	doc->root = root;
	root = NULL;
	w.pos = 0;
	w.line = 1;
	rc = jwalk_value(&w, doc->root);
	if (rc == 0)
		rc = each_whole(doc, each);
out:
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}

/* ---- public ------------------------------------------------------------- */

pw_doc *pw_doc_parse(const char *text, size_t len, const char *file,
		     int as_json, pw_errors *errs)
{
	return pw_doc_parse_each(text, len, file, as_json, NULL, errs);
}

pw_doc *pw_doc_parse_each(const char *text, size_t len, const char *file,
			  int as_json, const pw_doc_each *each,
			  pw_errors *errs)
{
	pw_doc *doc = calloc(1, sizeof *doc);

	if (!doc || (file && !(doc->file = strdup(file)))) {
		doc_err(errs, file, 0, NULL, "out of memory");
		goto fail;
	}
	if ((as_json ? parse_json : parse_yaml)(doc, text ? text : "",
						 text ? len : 0, each, errs) != 0)
		goto fail;
	return doc;
fail:
	pw_doc_free(doc);
	return NULL;
}

/* Reads the whole file at path into *buf (malloc'd) and *len. Returns 0 or
 * an errno value. */
static int read_file(const char *path, char **buf, size_t *len)
{
	FILE *f;
	size_t cap = 0, n = 0, got;
	char *data = NULL;
	int err = 0;

	errno = 0;
	if (!(f = fopen(path, "rb")))
		return errno ? errno : EIO;
	do {
		if (n == cap) {
			char *nd = realloc(data, cap = cap ? cap * 2 : 8192);
			if (!nd) {
				err = ENOMEM;
				break;
			}
			data = nd;
		}
		got = fread(data + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	if (!err && ferror(f))
		err = errno ? errno : EIO;
	fclose(f);
	if (err) {
		free(data);
		return err;
	}
	*buf = data;
	*len = n;
	return 0;
}

pw_doc *pw_doc_load(const char *path, const char *display_name,
		    pw_errors *errs)
{
	return pw_doc_load_each(path, display_name, NULL, errs);
}

pw_doc *pw_doc_load_each(const char *path, const char *display_name,
			 const pw_doc_each *each, pw_errors *errs)
{
	const char *name = display_name ? display_name : path;
	size_t plen = strlen(path), len = 0;
	int as_json = plen >= 5 && strcmp(path + plen - 5, ".json") == 0;
	char *text = NULL;
	pw_doc *doc = NULL;

	int err = read_file(path, &text, &len);
	if (err) {
		doc_err(errs, name, 0, NULL, "cannot read file: %s",
			strerror(err));
		return NULL;
	}
	doc = pw_doc_parse_each(text, len, name, as_json, each, errs);
	free(text);
	return doc;
}

json_object *pw_doc_root(const pw_doc *doc)
{
	return doc ? doc->root : NULL;
}

const char *pw_doc_file(const pw_doc *doc)
{
	return doc ? doc->file : NULL;
}

int pw_doc_line(const pw_doc *doc, const json_object *value)
{
	const struct line_ent *e = doc ? tab_get(&doc->lines, value, NULL) : NULL;
	return e ? e->line : 0;
}

int pw_doc_end_line(const pw_doc *doc, const json_object *value)
{
	const struct line_ent *e = doc ? tab_get(&doc->lines, value, NULL) : NULL;
	return e ? e->end : 0;
}

int pw_doc_key_line(const pw_doc *doc, const json_object *obj,
		    const char *key)
{
	const struct line_ent *e =
		doc && key ? tab_get(&doc->lines, obj, key) : NULL;
	return e ? e->line : 0;
}

void pw_doc_free(pw_doc *doc)
{
	if (!doc)
		return;
	json_object_put(doc->root);
	json_object_put(doc->keep);
	tab_free(&doc->lines);
	free(doc->file);
	free(doc);
}
