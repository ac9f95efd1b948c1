/* test_util.c - string vectors, Python list repr, errors and times. */
#include "testhelp.h"

#include <json-c/json.h>
#include <json-c/printbuf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* pw_grow: first, then doubling; a size that cannot be allocated fails
 * and leaves the array as it was. */
static void test_grow(void **state)
{
	(void)state;
	int *v = NULL;
	size_t n = 0, cap = 0;

	for (int i = 0; i < 100; i++) {
		assert_int_equal(pw_grow(&v, n, &cap, sizeof *v, 4), 0);
		assert_true(n < cap);
		v[n++] = i;
	}
	assert_int_equal(cap, 128);
	assert_int_equal(v[99], 99);
	assert_int_equal(pw_grow(&v, 50, &cap, sizeof *v, 4), 0);
	assert_int_equal(cap, 128);
	int *before = v;
	assert_int_equal(pw_grow(&v, cap, &cap, (size_t)-1 / 64, 4), -1);
	assert_ptr_equal(v, before);
	assert_int_equal(cap, 128);
	free(v);
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

	/* the same as gmtime_r would say, across leap days, centuries, eras */
	long long step = 86400000LL * 7 + 3600000LL * 5 + 61001;
	for (ms = -62135596800000LL; ms < 253402300799000LL; ms += step) {
		char want[96];
		struct tm tm;
		time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
		assert_non_null(gmtime_r(&t, &tm));
		snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec, (int)(((ms % 1000) + 1000) % 1000));
		pw_format_iso(ms, buf);
		assert_string_equal(buf, want);
	}
	pw_format_iso(-1, buf);
	assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
	pw_format_iso(253402300800000LL, buf);   /* year 10000 */
	assert_string_equal(buf, "10000-01-01T00:00:00.000Z");
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

/* pw_json_quote of s must read exactly as json-c's own serialisation. */
static void check_quote(const char *s)
{
	struct printbuf *pb = printbuf_new();
	json_object *o = json_object_new_string(s);
	assert_non_null(pb);
	assert_non_null(o);
	assert_int_equal(pw_json_quote(pb, s), 0);
	assert_string_equal(pb->buf, json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	assert_int_equal((size_t)printbuf_length(pb), strlen(pb->buf));
	json_object_put(o);
	printbuf_free(pb);
}

static void test_json_quote(void **state)
{
	(void)state;
	static const char *const cases[] = {
		"", "plain", "a/b", "say \"hi\"", "back\\slash", "tab\there",
		"line\nbreak\r\n", "\b\f", "\x01\x1f\x7f", "caf\xc3\xa9 \xe2\x82\xac",
		"\xff\xfe not UTF-8", "\"", "\\", "\x1f", "x\x01y\x02z",
		"</script>", "\\u0000",
	};
	char one[4];
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		check_quote(cases[i]);
	/* every byte alone, and between other text */
	for (int c = 1; c < 256; c++) {
		snprintf(one, sizeof one, "%c", c);
		check_quote(one);
		snprintf(one, sizeof one, "a%cb", c);
		check_quote(one);
	}
	/* a long string: runs appended in pieces across buffer growth */
	char *big = malloc(70001);
	assert_non_null(big);
	for (int i = 0; i < 70000; i++)
		big[i] = (char)(i % 97 == 0 ? '"' : i % 89 == 0 ? '\n' : 'a' + i % 26);
	big[70000] = '\0';
	check_quote(big);
	free(big);

	struct printbuf *pb = printbuf_new();
	assert_non_null(pb);
	assert_int_equal(pw_json_quote(pb, NULL), 0);
	assert_string_equal(pb->buf, "null");
	printbuf_free(pb);
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
		cmocka_unit_test(test_grow),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_time_format),
		cmocka_unit_test(test_time_parse),
		cmocka_unit_test(test_path_join),
		cmocka_unit_test(test_json_quote),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
