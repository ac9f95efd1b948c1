/*
 * strmap.h - the one string hash and string map of the library: FNV-1a,
 * and a map from byte strings to size_t values (open addressing, linear
 * probing, grows by doubling). Used by the DAG model (task and dataset
 * lookups), slicing, the YAML line table, project fingerprints and the
 * API's health cache.
 *
 * Keys are borrowed: the map stores the caller's pointer and length, so a
 * key must stay alive and unchanged while it is in the map. Keys are byte
 * strings (a key need not be NUL-terminated; "df@pandas" looked up with
 * length 2 is "df"). Not thread-safe; no removal.
 */
#ifndef PW_STRMAP_H
#define PW_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The FNV-1a offset basis: the h to start a hash with. */
#define PW_FNV1A_INIT 14695981039346656037ULL

/* FNV-1a (64 bit) of len bytes at p, continuing from h. */
uint64_t pw_fnv1a(uint64_t h, const void *p, size_t len);
/* FNV-1a of the NUL-terminated s (without its NUL), continuing from h. */
uint64_t pw_fnv1a_str(uint64_t h, const char *s);

/* One slot; key NULL marks a free one. */
typedef struct pw_strmap_ent {
	const char *key;
	size_t len;
	size_t val;
} pw_strmap_ent;

/*
 * The map. Zero-initialised it is an empty map; pw_strmap_init reserves
 * room ahead. To visit every entry, walk v[0..cap) and skip the slots
 * whose key is NULL (in the hash's order, not the insertions').
 */
typedef struct pw_strmap {
	pw_strmap_ent *v;
	size_t cap;  /* a power of two, at least twice n (0 when zeroed) */
	size_t n;    /* entries */
} pw_strmap;

/*
 * Prepares m for about hint keys: the first hint insertions never allocate,
 * so they cannot fail. Returns 0, or -1 when out of memory (m is then
 * empty, and pw_strmap_free is still fine).
 */
int pw_strmap_init(pw_strmap *m, size_t hint);
/* Frees the table (not the keys) and leaves m zeroed. */
void pw_strmap_free(pw_strmap *m);

/* The value stored for key[0..len), or NULL when absent. */
size_t *pw_strmap_get(const pw_strmap *m, const char *key, size_t len);
/* pw_strmap_get of the NUL-terminated key. */
size_t *pw_strmap_gets(const pw_strmap *m, const char *key);

/*
 * The value of key[0..len), inserting key with value 0 when absent
 * (*created then true, else false). NULL when out of memory, which can
 * happen only beyond init's hint.
 */
size_t *pw_strmap_ref(pw_strmap *m, const char *key, size_t len, bool *created);

/*
 * Inserts key[0..len) with val unless it is present (the first value
 * wins). Returns 1 when added, 0 when it was there, -1 when out of memory
 * (only beyond init's hint).
 */
int pw_strmap_add(pw_strmap *m, const char *key, size_t len, size_t val);

#endif
