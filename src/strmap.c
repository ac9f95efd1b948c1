/*
 * strmap.c - FNV-1a and the string -> size_t map (strmap.h).
 */
#include "strmap.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define FNV1A_PRIME 1099511628211ULL

uint64_t pw_fnv1a(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * FNV1A_PRIME;
	return h;
}

uint64_t pw_fnv1a_str(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * FNV1A_PRIME;
	return h;
}

/* The slot holding key, or the free slot where it would go. */
static pw_strmap_ent *slot(const pw_strmap *m, const char *key, size_t len)
{
	size_t mask = m->cap - 1;
	size_t i = (size_t)pw_fnv1a(PW_FNV1A_INIT, key, len) & mask;

	assert(m->n < m->cap && "a full table would probe forever");
	while (m->v[i].key &&
	       (m->v[i].len != len || memcmp(m->v[i].key, key, len) != 0))
		i = (i + 1) & mask;
	return &m->v[i];
}

int pw_strmap_init(pw_strmap *m, size_t hint)
{
	size_t cap = 16;
	while (cap < hint * 2 && cap < SIZE_MAX / 4)
		cap *= 2;
	m->v = calloc(cap, sizeof *m->v);
	m->cap = m->v ? cap : 0;
	m->n = 0;
	return m->v ? 0 : -1;
}

void pw_strmap_free(pw_strmap *m)
{
	free(m->v);
	memset(m, 0, sizeof *m);
}

size_t *pw_strmap_get(const pw_strmap *m, const char *key, size_t len)
{
	if (!m->cap)
		return NULL;
	pw_strmap_ent *e = slot(m, key, len);
	return e->key ? &e->val : NULL;
}

size_t *pw_strmap_gets(const pw_strmap *m, const char *key)
{
	return pw_strmap_get(m, key, strlen(key));
}

/* Doubles the table (16 slots at first), moving every entry. 0 or -1. */
static int grow(pw_strmap *m)
{
	pw_strmap big = {0};

	if (m->cap > SIZE_MAX / 4 || pw_strmap_init(&big, m->cap) != 0)
		return -1;
	for (size_t i = 0; i < m->cap; i++)
		if (m->v[i].key)
			*slot(&big, m->v[i].key, m->v[i].len) = m->v[i];
	big.n = m->n;
	free(m->v);
	*m = big;
	return 0;
}

size_t *pw_strmap_ref(pw_strmap *m, const char *key, size_t len, bool *created)
{
	if ((m->n + 1) * 2 > m->cap && grow(m) != 0)
		return NULL;
	pw_strmap_ent *e = slot(m, key, len);
	*created = !e->key;
	if (*created) {
		*e = (pw_strmap_ent){key, len, 0};
		m->n++;
	}
	return &e->val;
}

int pw_strmap_add(pw_strmap *m, const char *key, size_t len, size_t val)
{
	bool created;
	size_t *v = pw_strmap_ref(m, key, len, &created);
	if (!v)
		return -1;
	if (created)
		*v = val;
	return created;
}
