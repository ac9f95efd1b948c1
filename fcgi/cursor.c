/*
 * cursor.c - keyset paging: the one vocabulary of ?cursor= and
 * meta.next_cursor for every list of /api/v1.
 *
 * A cursor is base64url (no padding) of the text
 *     "1\n" tag "\n" value "\n" key
 * where tag names the list and its order ("runs:queued_at:desc"), value is
 * the sort value of the page's last row as a decimal, or "n" for NULL or
 * none, and key is its unique tie-breaker: "i" and a decimal (a rowid, a
 * position) or "s" and the text (a name; the rest of the cursor, so it may
 * hold any byte but NUL). A cursor that does not decode so, or whose tag is
 * another list's or order's, is refused with 400. Values only ever reach
 * SQL as bound parameters.
 */
#include "api.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url of n bytes of s, no padding; malloc'd, NULL when out of memory. */
static char *b64_encode(const unsigned char *s, size_t n)
{
	char *out = malloc(n / 3 * 4 + 5), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)s[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		if (i + 1 < n)
			*o++ = b64[v >> 6 & 63];
		if (i + 2 < n)
			*o++ = b64[v & 63];
	}
	*o = '\0';
	return out;
}

/* The 6 bits of base64url character c, or -1. */
static int b64_value(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;
	return p ? (int)(p - b64) : -1;
}

/*
 * Decodes base64url text s (no padding) into a malloc'd NUL-terminated
 * buffer; NULL when s is not such text, holds a NUL, or out of memory.
 */
static char *b64_decode(const char *s)
{
	size_t n = strlen(s), j = 0;
	char *out;

	if (n % 4 == 1 || !(out = malloc(n / 4 * 3 + 3)))
		return NULL;
	for (size_t i = 0; i < n; i += 4) {
		unsigned v = 0;
		size_t k, m = n - i < 4 ? n - i : 4;
		for (k = 0; k < m; k++) {
			int d = b64_value(s[i + k]);
			if (d < 0)
				goto bad;
			v |= (unsigned)d << (18 - 6 * k);
		}
		for (k = 0; k + 1 < m; k++)
			out[j++] = (char)(v >> (16 - 8 * k) & 0xff);
	}
	out[j] = '\0';
	if (strlen(out) == j)
		return out;
bad:
	free(out);
	return NULL;
}

/* A whole decimal of s into *v; -1 when s is not one. */
static int parse_ll(const char *s, long long *v)
{
	char *end;

	if (!*s || (*s != '-' && (*s < '0' || *s > '9')))
		return -1;
	errno = 0;
	*v = strtoll(s, &end, 10);
	return errno || *end ? -1 : 0;
}

/*
 * Reads the decoded text of a cursor of list tag, keyed by text or not,
 * into pg. 0 or -1.
 */
static int cursor_read(char *text, const char *tag, bool text_key, api_page *pg)
{
	char *ver = text, *t, *val, *key;

	if (!(t = strchr(ver, '\n')))
		return -1;
	*t++ = '\0';
	if (!(val = strchr(t, '\n')))
		return -1;
	*val++ = '\0';
	if (!(key = strchr(val, '\n')))
		return -1;
	*key++ = '\0';
	if (strcmp(ver, "1") != 0 || strcmp(t, tag) != 0)
		return -1;
	if (strcmp(val, "n") == 0)
		pg->after = API_AFTER_NULL;
	else if (parse_ll(val, &pg->val) == 0)
		pg->after = API_AFTER_VALUE;
	else
		return -1;
	if (key[0] == 'i' && !text_key)
		return parse_ll(key + 1, &pg->key);
	if (key[0] == 's' && text_key)
		return (pg->skey = strdup(key + 1)) ? 0 : -1;
	return -1;
}

int api_page_parse(pw_req *req, const char *tag, bool text_key, api_page *pg)
{
	const char *c = pw_req_query(req, "cursor");
	char *text;
	int rc;

	assert(tag);
	pg->tag = tag;
	if (pw_req_paging(req, &pg->limit, &pg->offset) != 0)
		return ANSWERED;
	assert(pg->limit >= 1 && pg->offset >= 0);
	if (!c)
		return GO;
	if (pw_req_query(req, "offset")) {
		pw_reply_error(req, 400, "give either cursor or offset, not both");
		return ANSWERED;
	}
	text = b64_decode(c);
	rc = text && cursor_read(text, tag, text_key, pg) == 0 ? GO : ANSWERED;
	free(text);
	if (rc != GO) {
		free(pg->skey);
		pg->skey = NULL;
		pg->after = API_AFTER_NONE;
		pw_reply_error(req, 400, "cursor: not a cursor of this list and order");
	}
	return rc;
}

int api_detail_page_parse(pw_req *req, const char *tag, api_page *pg)
{
	int rc = api_page_parse(req, tag, false, pg);

	if (rc == GO && !pw_req_query(req, "limit"))
		pg->limit = API_DETAIL_LIMIT;
	return rc;
}

int api_page_next(api_page *pg, bool val_null, long long val, long long key,
		  const char *skey)
{
	char vbuf[24], kbuf[24];
	size_t n;
	char *text;

	assert(pg->tag);   /* api_page_parse came first */
	if (val_null)
		strcpy(vbuf, "n");
	else
		snprintf(vbuf, sizeof vbuf, "%lld", val);
	if (!skey)
		snprintf(kbuf, sizeof kbuf, "%lld", key);
	n = strlen(pg->tag) + strlen(vbuf) + strlen(skey ? skey : kbuf) + 8;
	if (!(text = malloc(n)))
		return FAILED;
	snprintf(text, n, "1\n%s\n%s\n%c%s", pg->tag, vbuf, skey ? 's' : 'i',
		 skey ? skey : kbuf);
	free(pg->next);
	pg->next = b64_encode((const unsigned char *)text, strlen(text));
	free(text);
	return pg->next ? GO : FAILED;
}

void api_page_free(api_page *pg)
{
	free(pg->skey);
	free(pg->next);
	pg->skey = pg->next = NULL;
}

int api_page_trim(api_page *pg, json_object *data, const char *field)
{
	size_t n = json_object_array_length(data);
	json_object *last, *v;

	assert(pg->limit >= 1 && json_object_is_type(data, json_type_array));
	if (n <= (size_t)pg->limit)
		return GO;
	if (json_object_array_del_idx(data, (size_t)pg->limit, n - (size_t)pg->limit) != 0)
		return FAILED;
	last = json_object_array_get_idx(data, (size_t)pg->limit - 1);
	if (!json_object_object_get_ex(last, field, &v) || !json_object_get_string(v))
		return FAILED;
	return api_page_next(pg, true, 0, 0, json_object_get_string(v));
}
