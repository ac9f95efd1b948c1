/* test_util.c - string vectors, Python list repr, errors and times. */
#include "testhelp.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static void test_strv(void **state)
{
	(void)state;
	pw_strv sv = {0};
	for (int i = 0; i < 20; i++)
		assert_int_equal(pw_strv_add_unique(&sv, i % 2 ? "b" : "a"), 0);
	assert_int_equal(sv.n, 2);
	assert_int_equal(pw_strv_push(&sv, "0"), 0);
	pw_strv_sort(&sv);
	assert_string_equal(sv.v[0], "0");
	assert_string_equal(sv.v[2], "b");
	assert_int_equal(pw_strv_index(&sv, "a"), 1);
	assert_int_equal(pw_strv_index(&sv, "zz"), -1);
	pw_strv_free(&sv);
	assert_null(sv.v);
}

/* Kedro's messages print Python lists: repr() quoting rules matter. */
static void test_pylist_repr(void **state)
{
	(void)state;
	pw_strv sv = {0};
	char *s = pw_pylist_repr(&sv);
	assert_string_equal(s, "[]");
	free(s);
	pw_strv_push(&sv, "x");
	pw_strv_push(&sv, "it's");
	pw_strv_push(&sv, "a\\b");
	s = pw_pylist_repr(&sv);
	assert_string_equal(s, "['x', \"it's\", 'a\\\\b']");
	free(s);
	pw_strv_free(&sv);
}

static void test_errors(void **state)
{
	(void)state;
	pw_errors a = {0}, b = {0};
	assert_int_equal(pw_errors_add(&a, "dags/x.yml", 12, NULL, "bad %s", "key"), 0);
	assert_int_equal(pw_errors_add(&b, NULL, 0, "DatasetError", "no file"), 0);
	assert_int_equal(pw_errors_move(&a, &b), 0);
	assert_int_equal(a.n, 2);
	assert_int_equal(b.n, 0);
	char *s = pw_error_format(&a.v[0]);
	assert_string_equal(s, "dags/x.yml:12: bad key");
	free(s);
	assert_string_equal(a.v[0].type, "ValueError");
	s = pw_error_format(&a.v[1]);
	assert_string_equal(s, "no file");
	free(s);
	pw_errors_free(&a);
}

static void test_time_format(void **state)
{
	(void)state;
	char buf[32];
	long long ms = 1704067200000LL + 3723004; /* 2024-01-01 01:02:03.004 */
	pw_format_iso(ms, buf);
	assert_string_equal(buf, "2024-01-01T01:02:03.004Z");
	pw_format_run_id(ms, buf);
	assert_string_equal(buf, "2024-01-01T01.02.03.004Z");
}

static void test_time_parse(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		long long ms; /* -1: refused */
	} cases[] = {
		{"2024-01-01", 1704067200000LL},
		{"2024-01-01T00:00:00Z", 1704067200000LL},
		{"2024-01-01T01:02:03.004Z", 1704067200000LL + 3723004},
		{"2024-01-01 01:02", 1704067200000LL + 3720000},
		{"2024-01-01T02:00:00+02:00", 1704067200000LL},
		{"2023-12-31T23:00:00-0100", 1704067200000LL},
		{"2024-02-29T00:00:00Z", 1709164800000LL},
		{"2023-02-29T00:00:00Z", -1},
		{"2024-13-01", -1},
		{"2024-01-01T24:00:00Z", -1},
		{"2024-01-01T00:00:00Zjunk", -1},
		{"yesterday", -1},
		{"", -1},
		{"2024-1-1", -1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		long long ms = 0;
		int rc = pw_parse_iso(cases[i].text, &ms);
		if (cases[i].ms < 0) {
			assert_int_equal(rc, -1);
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(ms, cases[i].ms);
		}
	}
}

static void test_path_join(void **state)
{
	(void)state;
	char *s = pw_path_join("/a/b", "c/d");
	assert_string_equal(s, "/a/b/c/d");
	free(s);
	s = pw_path_join("/a/b/", "c");
	assert_string_equal(s, "/a/b/c");
	free(s);
	s = pw_path_join("/a", "/abs");
	assert_string_equal(s, "/abs");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strv),
		cmocka_unit_test(test_pylist_repr),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_time_format),
		cmocka_unit_test(test_time_parse),
		cmocka_unit_test(test_path_join),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
