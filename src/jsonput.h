/*
 * jsonput.h - the one set of helpers that build json-c trees: add a value
 * under a key, append one to an array. Each takes ownership of the value
 * it is given; a NULL value is an allocation that failed. On any failure
 * the value is freed and the helper returns -1 (PW_ERR), else 0 (PW_OK),
 * so that a chain `if (pw_json_put(...) || pw_json_put_str(...))` checks
 * every allocation. Used by pipewright.fcgi (fcgi/) and the runner.
 */
#ifndef PW_JSONPUT_H
#define PW_JSONPUT_H

#include <json-c/json.h>

/* Adds v under key k of object o, taking v. 0, or -1 (v freed). */
static inline int pw_json_put(json_object *o, const char *k, json_object *v)
{
	if (!v || json_object_object_add(o, k, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

/* Adds k: null to o. 0 or -1. */
static inline int pw_json_put_null(json_object *o, const char *k)
{
	return json_object_object_add(o, k, NULL) == 0 ? 0 : -1;
}

/* Adds k: the string s, or null when s is NULL. 0 or -1. */
static inline int pw_json_put_str(json_object *o, const char *k, const char *s)
{
	return s ? pw_json_put(o, k, json_object_new_string(s)) : pw_json_put_null(o, k);
}

/* Adds k: the integer n. 0 or -1. */
static inline int pw_json_put_int(json_object *o, const char *k, long long n)
{
	return pw_json_put(o, k, json_object_new_int64(n));
}

/* Appends v to array a, taking v. 0, or -1 (v freed). */
static inline int pw_json_push(json_object *a, json_object *v)
{
	if (!v || json_object_array_add(a, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

#endif
