/*
 * dag_vec.h - the growable arrays of the DAG model's files: of ints (item
 * lines), of size_t (task indices) and a string (cycle messages). Zero-init
 * is empty; push/add return 0, or -1 when out of memory (the contents are
 * then unchanged). Internal to src/dag*.c.
 */
#ifndef PW_DAG_VEC_H
#define PW_DAG_VEC_H

#include <stdlib.h>
#include <string.h>

#include "util.h"

struct intv {
	int *v;
	size_t n, cap;
};

static inline int intv_push(struct intv *iv, int x)
{
	if (pw_grow(&iv->v, iv->n, &iv->cap, sizeof *iv->v, 8) != 0)
		return -1;
	iv->v[iv->n++] = x;
	return 0;
}

struct sizev {
	size_t *v;
	size_t n, cap;
};

static inline int sizev_push(struct sizev *sv, size_t x)
{
	if (pw_grow(&sv->v, sv->n, &sv->cap, sizeof *sv->v, 16) != 0)
		return -1;
	sv->v[sv->n++] = x;
	return 0;
}

/* A growable string. */
struct sbuf {
	char *s;
	size_t n, cap;
};

static inline int sbuf_add(struct sbuf *b, const char *s)
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


#endif
