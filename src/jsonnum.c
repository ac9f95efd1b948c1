/*
 * jsonnum.c - see jsonnum.h.
 */
#include "jsonnum.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t digit_run(const char *s, size_t len, size_t i)
{
	size_t n = 0;
	while (i + n < len && s[i + n] >= '0' && s[i + n] <= '9')
		n++;
	return n;
}

bool pw_json_number_text(const char *s, size_t len)
{
	size_t i = len > 0 && s[0] == '-', n = digit_run(s, len, i);
	if (n == 0 || (n > 1 && s[i] == '0'))
		return false;
	i += n;
	if (i < len && s[i] == '.') {
		if ((n = digit_run(s, len, ++i)) == 0)
			return false;
		i += n;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		i += i < len && (s[i] == '-' || s[i] == '+');
		if ((n = digit_run(s, len, i)) == 0)
			return false;
		i += n;
	}
	return i == len;
}

/*
 * The JSON form of decimal number text: no '+', no leading zeros, a 0
 * before a leading '.' and after a trailing one. malloc'd (NUL-terminated)
 * or NULL.
 */
static char *json_form(const char *s, size_t len)
{
	char *out = malloc(2 * len + 3), *o = out; /* any text: each "." may gain a 0 */
	size_t i = 0;
	if (!out)
		return NULL;
	if (i < len && (s[i] == '+' || s[i] == '-'))
		if (s[i++] == '-')
			*o++ = '-';
	while (i + 1 < len && s[i] == '0' && s[i + 1] >= '0' && s[i + 1] <= '9')
		i++;
	if (i < len && s[i] == '.')
		*o++ = '0';
	for (; i < len; i++) {
		*o++ = s[i];
		if (s[i] == '.' && (i + 1 == len || s[i + 1] < '0' || s[i + 1] > '9'))
			*o++ = '0';
	}
	*o = '\0';
	return out;
}

json_object *pw_json_number_new(const char *s, size_t len)
{
	char *text = json_form(s, len);
	json_object *v = NULL;
	if (!text)
		return NULL;
	size_t tl = strlen(text);
	if (!pw_json_number_text(text, tl))
		goto out;
	bool is_int = strpbrk(text, ".eE") == NULL;
	char *end;
	errno = 0;
	long long ll = is_int ? strtoll(text, &end, 10) : 0;
	if (is_int && errno == 0 && strcmp(text, "-0") != 0) {
		v = json_object_new_int64(ll);
		goto out;
	}
	errno = 0;
	unsigned long long ull = is_int && text[0] != '-' ? strtoull(text, &end, 10) : 0;
	if (is_int && text[0] != '-' && errno == 0) {
		v = json_object_new_uint64(ull);
		goto out;
	}
	v = json_object_new_double_s(strtod(text, NULL), text);
out:
	free(text);
	return v;
}

/* --- repairing a parsed tree -------------------------------------------- */

/* Whether text may hold an integer json-c changed: -0 or 19+ digits. */
static bool may_need_repair(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		size_t n = digit_run(s, len, i);
		if (n >= 19)
			return true;
		if (n == 1 && s[i] == '0' && i > 0 && s[i - 1] == '-')
			return true;
		i += n;
	}
	return false;
}

/* A cursor over JSON text that json-c has accepted. */
struct nwalk {
	const char *s;
	size_t len, pos;
	int depth;
};

static void skip_ws(struct nwalk *w)
{
	while (w->pos < w->len && strchr(" \t\r\n", w->s[w->pos]) && w->s[w->pos])
		w->pos++;
}

/* Skips a string literal at its opening quote. */
static void skip_string(struct nwalk *w)
{
	w->pos++;
	while (w->pos < w->len && w->s[w->pos] != '"')
		w->pos += w->s[w->pos] == '\\' ? 2 : 1;
	w->pos = w->pos < w->len ? w->pos + 1 : w->len + 1; /* past the end: give up */
}

/* The decoded key of the string literal at s[start..end), or NULL. */
static char *decode_key(const char *s, size_t start, size_t end)
{
	if (end > start + 1 && !memchr(s + start + 1, '\\', end - start - 2))
		return strndup(s + start + 1, end - start - 2);
	json_tokener *tok = json_tokener_new();
	char *key = NULL;
	json_object *o = tok ? json_tokener_parse_ex(tok, s + start, (int)(end - start)) : NULL;
	if (json_object_is_type(o, json_type_string))
		key = strdup(json_object_get_string(o));
	json_object_put(o);
	json_tokener_free(tok);
	return key;
}

static int walk_value(struct nwalk *w, json_object *v, json_object **repl);

/* An integer literal json-c changed: the exact number into *repl. */
static int walk_number(struct nwalk *w, json_object *v, json_object **repl)
{
	size_t start = w->pos;
	while (w->pos < w->len && strchr("+-.eE0123456789", w->s[w->pos]) && w->s[w->pos])
		w->pos++;
	const char *s = w->s + start;
	size_t n = w->pos - start;
	if (!json_object_is_type(v, json_type_int) || memchr(s, '.', n) ||
	    memchr(s, 'e', n) || memchr(s, 'E', n))
		return 0;
	if (!(n == 2 && memcmp(s, "-0", 2) == 0) && n < 19)
		return 0;
	const char *printed = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
	if (printed && strlen(printed) == n && memcmp(printed, s, n) == 0)
		return 0;
	/* only the value json-c made of this very literal (not of a later
	 * duplicate key) is replaced */
	char *lit = strndup(s, n);
	json_object *same = lit ? json_tokener_parse(lit) : NULL;
	bool mine = same && json_object_equal(same, v);
	json_object_put(same);
	free(lit);
	if (!mine)
		return 0;
	*repl = pw_json_number_new(s, n);
	return *repl ? 0 : -1;
}

/* Walks an object or array at its bracket, repairing its members. */
static int walk_container(struct nwalk *w, json_object *v)
{
	bool is_obj = w->s[w->pos] == '{';
	char close = is_obj ? '}' : ']';
	size_t idx = 0;
	w->pos++;
	for (;;) {
		skip_ws(w);
		if (w->pos >= w->len || w->s[w->pos] == close)
			break;
		if (w->s[w->pos] == ',') {
			w->pos++;
			continue;
		}
		json_object *child, *repl = NULL;
		char *key = NULL;
		if (is_obj) {
			size_t ks = w->pos;
			if (w->s[w->pos] != '"')
				return -2; /* not the text json-c read (a comment?): give up */
			skip_string(w);
			if (w->pos > w->len)
				return -2;
			if (!(key = decode_key(w->s, ks, w->pos)))
				return -1;
			skip_ws(w);
			w->pos++; /* ':' */
			child = json_object_object_get(v, key);
		} else {
			child = json_object_array_get_idx(v, idx);
		}
		int rc = walk_value(w, child, &repl);
		if (rc == 0 && repl)
			rc = is_obj ? json_object_object_add(v, key, repl)
				    : json_object_array_put_idx(v, idx, repl);
		if (rc != 0)
			json_object_put(repl);
		free(key);
		idx++;
		if (rc != 0)
			return rc == -2 ? -2 : -1;
	}
	w->pos++;
	return 0;
}

static int walk_value(struct nwalk *w, json_object *v, json_object **repl)
{
	skip_ws(w);
	if (w->pos >= w->len)
		return 0;
	char c = w->s[w->pos];
	if (c == '{' || c == '[') {
		bool match = json_object_is_type(v, c == '{' ? json_type_object : json_type_array);
		if (!match || ++w->depth > 4096)
			return -2; /* not the text json-c read: give up */
		int rc = walk_container(w, v);
		w->depth--;
		return rc;
	}
	if (c == '"') {
		skip_string(w);
		return w->pos > w->len ? -2 : 0;
	}
	if (c == '-' || (c >= '0' && c <= '9'))
		return walk_number(w, v, repl);
	if (c < 'a' || c > 'z')
		return -2; /* not JSON as json-c's strict mode reads it: give up */
	while (w->pos < w->len && w->s[w->pos] >= 'a' && w->s[w->pos] <= 'z')
		w->pos++; /* true, false, null */
	return 0;
}

json_object *pw_json_parse_exact(const char *text)
{
	json_object *v = text ? json_tokener_parse(text) : NULL;
	if (v && pw_json_keep_numbers(&v, text, strlen(text)) != 0) {
		json_object_put(v);
		return NULL;
	}
	return v;
}

int pw_json_keep_numbers(json_object **root, const char *text, size_t len)
{
	struct nwalk w = {text, len, 0, 0};
	json_object *repl = NULL;
	if (!text || !may_need_repair(text, len))
		return 0;
	int rc = walk_value(&w, *root, &repl);
	if (rc != 0)
		return rc == -2 ? 0 : -1;
	if (repl) {
		json_object_put(*root);
		*root = repl;
	}
	return 0;
}
