/* test_strmap.c - FNV-1a and the string -> size_t map (src/strmap.h). */
#include "testhelp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

/* The published FNV-1a 64-bit test vectors. */
static void test_fnv1a_vectors(void **state)
{
	(void)state;
	assert_true(pw_fnv1a_str(PW_FNV1A_INIT, "") == 0xcbf29ce484222325ULL);
	assert_true(pw_fnv1a_str(PW_FNV1A_INIT, "a") == 0xaf63dc4c8601ec8cULL);
	assert_true(pw_fnv1a_str(PW_FNV1A_INIT, "foobar") == 0x85944171f73967e8ULL);
	assert_true(pw_fnv1a(PW_FNV1A_INIT, "foobar", 6) == 0x85944171f73967e8ULL);
	/* continuing from h is hashing the concatenation */
	assert_true(pw_fnv1a_str(pw_fnv1a(PW_FNV1A_INIT, "foo", 3), "bar") ==
		    0x85944171f73967e8ULL);
}

/* A zeroed map is empty; ref inserts 0 once; add keeps the first value. */
static void test_get_ref_add(void **state)
{
	(void)state;
	pw_strmap m = {0};
	bool created;

	assert_null(pw_strmap_gets(&m, "x"));
	size_t *v = pw_strmap_ref(&m, "x", 1, &created);
	assert_non_null(v);
	assert_true(created);
	assert_int_equal(*v, 0);
	*v = 7;
	v = pw_strmap_ref(&m, "x", 1, &created);
	assert_false(created);
	assert_int_equal(*v, 7);
	assert_int_equal(pw_strmap_add(&m, "x", 1, 9), 0);
	assert_int_equal(*pw_strmap_gets(&m, "x"), 7);
	assert_int_equal(pw_strmap_add(&m, "y", 1, 9), 1);
	assert_int_equal(*pw_strmap_gets(&m, "y"), 9);
	assert_int_equal(m.n, 2);
	pw_strmap_free(&m);
	assert_null(m.v);
	assert_int_equal(m.cap, 0);
}

/* Keys are byte strings: a prefix length is another key; "" is a key. */
static void test_lengths(void **state)
{
	(void)state;
	pw_strmap m = {0};
	const char *k = "df@pandas";

	assert_int_equal(pw_strmap_init(&m, 4), 0);
	assert_int_equal(pw_strmap_add(&m, k, 2, 1), 1);
	assert_int_equal(pw_strmap_add(&m, k, strlen(k), 2), 1);
	assert_int_equal(pw_strmap_add(&m, "", 0, 3), 1);
	assert_int_equal(*pw_strmap_gets(&m, "df"), 1);
	assert_int_equal(*pw_strmap_get(&m, "df@pandas!", 9), 2);
	assert_int_equal(*pw_strmap_gets(&m, ""), 3);
	assert_null(pw_strmap_get(&m, k, 3));
	pw_strmap_free(&m);
}

enum { N_KEYS = 5000 };
static char keys[N_KEYS][8]; /* "0", "1", ...: the map borrows them */

/* Adds keys[0..n) with their index as value; each must be new. */
static void add_numbered(pw_strmap *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		snprintf(keys[i], sizeof keys[i], "%zu", i);
		assert_int_equal(pw_strmap_add(m, keys[i], strlen(keys[i]), i), 1);
		assert_true(m->n * 2 <= m->cap);
	}
}

/* init's hint: that many insertions keep the table (no allocation). */
static void test_hint_reserves(void **state)
{
	(void)state;
	pw_strmap m = {0};

	assert_int_equal(pw_strmap_init(&m, 100), 0);
	const pw_strmap_ent *table = m.v;
	add_numbered(&m, 100);
	assert_ptr_equal(m.v, table);
	pw_strmap_free(&m);
}

/* Growing keeps every entry; a walk over the slots sees each key once. */
static void test_grow_and_walk(void **state)
{
	(void)state;
	enum { N = N_KEYS };
	pw_strmap m = {0};
	size_t sum = 0, seen = 0;

	add_numbered(&m, N);
	assert_int_equal(m.n, N);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(*pw_strmap_gets(&m, keys[i]), i);
	assert_null(pw_strmap_gets(&m, "5000"));
	for (size_t i = 0; i < m.cap; i++) {
		if (!m.v[i].key)
			continue;
		seen++;
		sum += m.v[i].val;
	}
	assert_int_equal(seen, N);
	assert_int_equal(sum, (size_t)N * (N - 1) / 2);
	pw_strmap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fnv1a_vectors),
		cmocka_unit_test(test_get_ref_add),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_hint_reserves),
		cmocka_unit_test(test_grow_and_walk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
