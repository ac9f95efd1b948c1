/*
 * doc.h - configuration documents: one YAML or JSON file parsed into json-c
 * values, with the source line range of every mapping, sequence and string
 * kept beside it for error messages and /snapshot's node sources.
 *
 * YAML is read with libyaml, JSON with json-c; both give the same json-c
 * tree, so the rest of pipewright sees one representation. YAML plain
 * scalars resolve as YAML 1.2's core schema: null/~, true/false, integers,
 * floats; everything else (and every quoted scalar) is a string. Anchors and
 * aliases are supported; tags other than the standard ones are ignored.
 * A key that appears twice in one mapping is an error.
 */
#ifndef PW_DOC_H
#define PW_DOC_H

#include <json-c/json.h>
#include <stddef.h>

#include "util.h"

typedef struct pw_doc pw_doc;

/*
 * Parses text (len bytes, need not be NUL-terminated) as YAML, or as JSON
 * when as_json is non-zero. file is the name used in error messages (kept by
 * copy). On success returns a doc that owns its tree; on a syntax error,
 * adds "file:line" errors to errs and returns NULL. An empty YAML document
 * gives a doc whose root is NULL (json null).
 */
pw_doc *pw_doc_parse(const char *text, size_t len, const char *file,
		     int as_json, pw_errors *errs);

/*
 * Reads and parses the file at path; JSON when the name ends in ".json",
 * YAML otherwise. display_name is used in messages (e.g. a path relative to
 * the project root); NULL means path. Read errors are reported like syntax
 * errors (line 0).
 */
pw_doc *pw_doc_load(const char *path, const char *display_name,
		    pw_errors *errs);

/*
 * Streaming the items of one list: fn(arg, doc, list, item) is called with
 * each item of the sequence under the root mapping's key `key` as soon as
 * the item is parsed (item NULL for null; pw_doc_line and pw_doc_key_line
 * work on it and on list, which gives its first line). The item and its
 * lines are then dropped, so a long list never exists whole: list stays
 * empty in the tree, except for the items that define an anchor (an alias
 * may copy them later). fn returns 0, or -1 to stop (the parse then fails
 * without an error of its own). JSON is parsed whole first and fn called
 * on each item, which stays.
 */
typedef int pw_doc_item_fn(void *arg, const pw_doc *doc,
			   const json_object *list, json_object *item);

typedef struct pw_doc_each {
	const char *key;
	pw_doc_item_fn *fn;
	void *arg;
} pw_doc_each;

/* pw_doc_parse and pw_doc_load streaming the list each names (NULL: as
 * they do). */
pw_doc *pw_doc_parse_each(const char *text, size_t len, const char *file,
			  int as_json, const pw_doc_each *each,
			  pw_errors *errs);
pw_doc *pw_doc_load_each(const char *path, const char *display_name,
			 const pw_doc_each *each, pw_errors *errs);

/*
 * The root value; owned by the doc (json_object_get it to keep it). Treat
 * the tree as read-only while the doc lives: lines are looked up by object
 * address, so an object freed and replaced could pick up a stale line (a
 * key keeps its line when its value is replaced).
 */
json_object *pw_doc_root(const pw_doc *doc);
/* The file name given at parse time. */
const char *pw_doc_file(const pw_doc *doc);

/*
 * First and last source line (1-based) of a value in this doc's tree, or 0
 * when unknown. Every value has one except null, which json-c represents as
 * a NULL pointer: use pw_doc_key_line for it.
 */
int pw_doc_line(const pw_doc *doc, const json_object *value);
int pw_doc_end_line(const pw_doc *doc, const json_object *value);

/*
 * Line of the key `key` inside mapping obj, or 0. Validation uses it to
 * point at the offending key even when its value is a number.
 */
int pw_doc_key_line(const pw_doc *doc, const json_object *obj,
		    const char *key);

/*
 * The value of a YAML plain scalar s[0..len) by the core schema (null,
 * booleans, numbers keeping their text, else a string) into *out (NULL for
 * null). Returns 0, or -1 when out of memory.
 */
int pw_doc_plain_scalar(const char *s, size_t len, json_object **out);

void pw_doc_free(pw_doc *doc);

#endif
