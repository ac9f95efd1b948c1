/* test_cron.c - cron parsing and next fire times (src/cron.c). */
#include "testhelp.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cron.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

enum { ERR_LEN = 256, ISO_LEN = 32, SECS_PER_MIN = 60, SECS_PER_DAY = 86400 };

/* "YYYY-MM-DDTHH:MM:SSZ" -> seconds since the epoch, via timegm. */
static int64_t iso(const char *s)
{
	struct tm tm = { 0 };
	char z = 0;

	if (sscanf(s, "%d-%d-%dT%d:%d:%d%c", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &z) != 7 ||
	    z != 'Z')
		fail_msg("bad ISO time in test: %s", s);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

/* Seconds since the epoch -> "YYYY-MM-DDTHH:MM:SSZ" (or "-1"). */
static const char *fmt_iso(int64_t t, char buf[ISO_LEN])
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t == -1 || !gmtime_r(&tt, &tm))
		snprintf(buf, ISO_LEN, "%lld", (long long)t);
	else
		strftime(buf, ISO_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static pw_cron parse_ok(const char *expr)
{
	pw_cron c;
	char err[ERR_LEN];

	if (pw_cron_parse(expr, &c, err, sizeof err) != 0)
		fail_msg("'%s' should parse: %s", expr, err);
	return c;
}

/* ---- next fire times ---------------------------------------------------- */

static const struct next_case {
	const char *expr, *after, *expect;  /* expect NULL: never (-1) */
} next_cases[] = {
	/* every minute; strictly after, at whole minutes */
	{ "* * * * *", "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z" },
	{ "* * * * *", "2025-01-01T00:00:30Z", "2025-01-01T00:01:00Z" },
	{ "* * * * *", "2025-01-01T00:00:59Z", "2025-01-01T00:01:00Z" },
	{ "0 * * * *", "2025-01-01T10:00:00Z", "2025-01-01T11:00:00Z" },
	{ "0 * * * *", "2025-01-01T09:59:59Z", "2025-01-01T10:00:00Z" },
	/* macros */
	{ "@hourly", "2025-03-10T10:30:00Z", "2025-03-10T11:00:00Z" },
	{ "@daily", "2025-03-10T00:00:00Z", "2025-03-11T00:00:00Z" },
	{ "@midnight", "2025-03-10T23:59:00Z", "2025-03-11T00:00:00Z" },
	{ "@weekly", "2025-03-10T00:00:00Z", "2025-03-16T00:00:00Z" },
	{ "@monthly", "2025-01-31T12:00:00Z", "2025-02-01T00:00:00Z" },
	{ "@yearly", "2025-06-15T00:00:00Z", "2026-01-01T00:00:00Z" },
	{ "@annually", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z" },
	{ "@DAILY", "2025-03-10T05:00:00Z", "2025-03-11T00:00:00Z" },
	/* month ends: the 31st skips 30-day months */
	{ "0 0 31 * *", "2025-04-01T00:00:00Z", "2025-05-31T00:00:00Z" },
	{ "0 0 31 * *", "2025-05-31T00:00:00Z", "2025-07-31T00:00:00Z" },
	{ "0 0 31 * *", "2025-08-31T00:00:00Z", "2025-10-31T00:00:00Z" },
	{ "0 0 31 * *", "2025-10-31T00:00:00Z", "2025-12-31T00:00:00Z" },
	/* Feb 29: the next leap year, and 2100 is not one */
	{ "0 0 29 2 *", "2025-01-01T00:00:00Z", "2028-02-29T00:00:00Z" },
	{ "0 0 29 2 *", "2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z" },
	{ "0 0 29 2 *", "2097-03-01T00:00:00Z", "2104-02-29T00:00:00Z" },
	/* steps */
	{ "*/15 * * * *", "2025-01-01T10:07:00Z", "2025-01-01T10:15:00Z" },
	{ "*/15 * * * *", "2025-01-01T10:45:00Z", "2025-01-01T11:00:00Z" },
	{ "1-30/10 * * * *", "2025-01-01T10:05:00Z", "2025-01-01T10:11:00Z" },
	{ "1-30/10 * * * *", "2025-01-01T10:21:00Z", "2025-01-01T11:01:00Z" },
	{ "5/20 * * * *", "2025-01-01T10:26:00Z", "2025-01-01T10:45:00Z" },
	{ "5/20 * * * *", "2025-01-01T10:45:00Z", "2025-01-01T11:05:00Z" },
	{ "0 */6 * * *", "2025-01-01T18:00:00Z", "2025-01-02T00:00:00Z" },
	/* lists and ranges */
	{ "0 9,17 * * *", "2025-01-01T09:00:00Z", "2025-01-01T17:00:00Z" },
	{ "30 8-10 * * *", "2025-01-01T10:30:00Z", "2025-01-02T08:30:00Z" },
	{ "0,30 8-9,17 * * *", "2025-01-01T09:30:00Z", "2025-01-01T17:00:00Z" },
	{ "0 0 1,15 * *", "2025-01-02T00:00:00Z", "2025-01-15T00:00:00Z" },
	/* names (2025-01-31 is a Friday, 2025-07-01 a Tuesday) */
	{ "0 9 * JAN,JUL MON-FRI", "2025-01-31T09:00:00Z",
	  "2025-07-01T09:00:00Z" },
	{ "0 9 * jan,jul mon-fri", "2025-01-03T09:00:00Z",
	  "2025-01-06T09:00:00Z" },
	{ "0 0 1 Mar-May *", "2025-06-01T00:00:00Z", "2026-03-01T00:00:00Z" },
	/* day-of-week 7 is Sunday like 0 (2025-03-10 is a Monday) */
	{ "0 12 * * 7", "2025-03-10T00:00:00Z", "2025-03-16T12:00:00Z" },
	{ "0 12 * * 0", "2025-03-10T00:00:00Z", "2025-03-16T12:00:00Z" },
	{ "0 12 * * SUN", "2025-03-10T00:00:00Z", "2025-03-16T12:00:00Z" },
	{ "0 12 * * 5-7", "2025-03-10T00:00:00Z", "2025-03-14T12:00:00Z" },
	{ "0 12 * * 5-7", "2025-03-15T12:00:00Z", "2025-03-16T12:00:00Z" },
	/* both day fields restricted: either matches (July 2025: Fridays are
	 * 4, 11, 18, 25; the 13th is a Sunday) */
	{ "0 0 13 * FRI", "2025-07-05T00:00:00Z", "2025-07-11T00:00:00Z" },
	{ "0 0 13 * FRI", "2025-07-11T00:00:00Z", "2025-07-13T00:00:00Z" },
	{ "0 0 13 * FRI", "2025-07-13T00:00:00Z", "2025-07-18T00:00:00Z" },
	/* a '*' step counts as '*': both must match (odd days AND Fridays) */
	{ "0 0 */2 * FRI", "2025-07-01T00:00:00Z", "2025-07-11T00:00:00Z" },
	{ "0 0 */2 * FRI", "2025-07-11T00:00:00Z", "2025-07-25T00:00:00Z" },
	{ "0 0 13 * *", "2025-07-05T00:00:00Z", "2025-07-13T00:00:00Z" },
	/* year rollover */
	{ "* * * * *", "2025-12-31T23:59:59Z", "2026-01-01T00:00:00Z" },
	{ "59 23 31 12 *", "2025-12-31T23:59:00Z", "2026-12-31T23:59:00Z" },
	{ "0 0 1 1 *", "2025-12-31T23:59:00Z", "2026-01-01T00:00:00Z" },
	/* before the epoch */
	{ "0 0 1 1 *", "1969-06-01T00:00:00Z", "1970-01-01T00:00:00Z" },
	{ "30 6 * * MON", "1969-07-20T20:17:00Z", "1969-07-21T06:30:00Z" },
	/* whitespace around and between fields */
	{ "  \t*/15\t*  * * *\n", "2025-01-01T10:07:00Z",
	  "2025-01-01T10:15:00Z" },
	/* never */
	{ "0 0 30 2 *", "2025-01-01T00:00:00Z", NULL },
	{ "0 0 31 4,6,9,11 *", "2025-01-01T00:00:00Z", NULL },
};

static void test_next_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(next_cases); i++) {
		const struct next_case *nc = &next_cases[i];
		pw_cron c = parse_ok(nc->expr);
		int64_t want = nc->expect ? iso(nc->expect) : -1;
		int64_t got = pw_cron_next(&c, iso(nc->after));
		char b1[ISO_LEN], b2[ISO_LEN];

		if (got != want)
			fail_msg("'%s' after %s: want %s, got %s", nc->expr,
				 nc->after, fmt_iso(want, b1), fmt_iso(got, b2));
	}
}

/* Chaining next() walks the fire times in order. */
static void test_next_chain(void **state)
{
	(void)state;
	pw_cron c = parse_ok("0 0 13 * FRI");
	static const char *const want[] = {
		"2025-06-06T00:00:00Z", "2025-06-13T00:00:00Z",
		"2025-06-20T00:00:00Z", "2025-06-27T00:00:00Z",
		"2025-07-04T00:00:00Z", "2025-07-11T00:00:00Z",
		"2025-07-13T00:00:00Z", "2025-07-18T00:00:00Z",
	};
	int64_t t = iso("2025-06-01T00:00:00Z");

	for (size_t i = 0; i < ARRAY_LEN(want); i++) {
		t = pw_cron_next(&c, t);
		assert_int_equal(t, iso(want[i]));
	}
}

/* ---- cross-check against a naive search ------------------------------- */

static bool has(uint64_t mask, int v)
{
	return (mask >> v) & 1;
}

/* Whether the day matches, with Vixie's rule, computed from a struct tm. */
static bool naive_day(const pw_cron *c, const struct tm *tm)
{
	bool md = has(c->mdays, tm->tm_mday), wd = has(c->wdays, tm->tm_wday);

	if (!has(c->months, tm->tm_mon + 1))
		return false;
	return c->mday_star || c->wday_star ? md && wd : md || wd;
}

/* Day by day, then minute by minute within matching days, via gmtime_r. */
static int64_t naive_next(const pw_cron *c, int64_t after, int max_days)
{
	int64_t t = (after / SECS_PER_MIN + 1) * SECS_PER_MIN;
	int64_t limit = t + (int64_t)max_days * SECS_PER_DAY;

	while (t < limit) {
		struct tm tm;
		time_t tt = (time_t)t;

		gmtime_r(&tt, &tm);
		if (!naive_day(c, &tm)) {
			t += SECS_PER_DAY - (tm.tm_hour * 3600 + tm.tm_min * 60);
			continue;
		}
		if (has(c->hours, tm.tm_hour) && has(c->minutes, tm.tm_min))
			return t;
		t += SECS_PER_MIN;
	}
	return -1;
}

static void test_next_matches_naive(void **state)
{
	(void)state;
	static const char *const exprs[] = {
		"* * * * *", "*/7 3-5 * * *", "0 0 13 * FRI", "15 10 1,15 * MON",
		"0 */6 * * SAT,SUN", "5/20 * 1-7 * 1", "0 12 31 * *",
		"0 0 */2 * FRI", "30 2 * JAN,JUL *", "0 0 29 2 *",
		"59 23 28-31 * *", "0 0 * * 7",
	};
	enum { STARTS = 40, MAX_DAYS = 3 * 366 };
	uint64_t rng = 12345;
	int64_t lo = iso("1995-01-01T00:00:00Z"), hi = iso("2035-01-01T00:00:00Z");
	size_t compared = 0;

	for (size_t i = 0; i < ARRAY_LEN(exprs); i++) {
		pw_cron c = parse_ok(exprs[i]);
		for (int k = 0; k < STARTS; k++) {
			rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
			int64_t after = lo + (int64_t)((rng >> 16) % (uint64_t)(hi - lo));
			int64_t want = naive_next(&c, after, MAX_DAYS);
			int64_t got = pw_cron_next(&c, after);
			char b0[ISO_LEN], b1[ISO_LEN], b2[ISO_LEN];

			if (want == -1)
				continue;  /* beyond the naive window */
			compared++;
			if (got != want)
				fail_msg("'%s' after %s: naive %s, got %s", exprs[i],
					 fmt_iso(after, b0), fmt_iso(want, b1),
					 fmt_iso(got, b2));
		}
	}
	assert_true(compared > ARRAY_LEN(exprs) * STARTS * 9 / 10);
}

/* ---- parsed fields ------------------------------------------------------ */

static void test_parse_fields(void **state)
{
	(void)state;
	pw_cron c = parse_ok("*/15 1-3,22 */10 FEB-apr 1-5");

	assert_true(c.minutes == ((1ULL << 0) | (1ULL << 15) | (1ULL << 30) |
				  (1ULL << 45)));
	assert_int_equal(c.hours, (1u << 1) | (1u << 2) | (1u << 3) | (1u << 22));
	assert_int_equal(c.mdays, (1u << 1) | (1u << 11) | (1u << 21) | (1u << 31));
	assert_int_equal(c.months, (1u << 2) | (1u << 3) | (1u << 4));
	assert_int_equal(c.wdays, 0x3e);
	assert_true(c.mday_star);
	assert_false(c.wday_star);

	c = parse_ok("0 0 * * 7");
	assert_int_equal(c.wdays, 1);
	c = parse_ok("0 0 * * *");
	assert_int_equal(c.wdays, 0x7f);
	assert_int_equal(c.mdays, 0xfffffffeu);
	assert_int_equal(c.months, 0x1ffe);
	assert_true(c.mday_star && c.wday_star);
	c = parse_ok("@weekly");
	assert_int_equal(c.wdays, 1);
	assert_false(c.wday_star);
}

/* ---- parse errors ------------------------------------------------------- */

static const struct err_case {
	const char *expr, *needle;
} err_cases[] = {
	{ "* * * *", "expected 5 fields" },
	{ "* * * *", "got 4" },
	{ "* * * * * *", "got 6" },
	{ "60 * * * *", "minute 60 out of range 0-59" },
	{ "0 24 * * *", "hour 24 out of range 0-23" },
	{ "0 0 0 * *", "day-of-month 0 out of range 1-31" },
	{ "0 0 32 * *", "day-of-month 32 out of range 1-31" },
	{ "0 0 1 13 *", "month 13 out of range 1-12" },
	{ "0 0 * * 8", "day-of-week 8 out of range 0-7" },
	{ "99999999999999999999 * * * *", "out of range 0-59" },
	{ "*/0 * * * *", "minute step 0 out of range 1-60" },
	{ "*/61 * * * *", "minute step 61 out of range 1-60" },
	{ "30-10 * * * *", "minute range 30-10 is reversed" },
	{ "0 0 * * FRI-MON", "day-of-week range FRI-MON is reversed" },
	{ "0 0 * FOO *", "unknown month name 'FOO'" },
	{ "0 0 * * FRIDAY", "unknown day-of-week name 'FRIDAY'" },
	{ "0 0 L * *", "day-of-month value 'L' is not a number" },
	{ "5x * * * *", "unexpected 'x' in minute field '5x'" },
	{ "*/15x * * * *", "unexpected 'x' in minute field '*/15x'" },
	{ "1-2-3 * * * *", "unexpected '-' in minute field '1-2-3'" },
	{ "0 0 ? * *", "unexpected '?' in day-of-month field '?'" },
	{ "1,,2 * * * *", "missing value in minute field '1,,2'" },
	{ "1, * * * *", "missing value in minute field '1,'" },
	{ "1- * * * *", "missing value in minute field '1-'" },
	{ "*/ * * * *", "missing step in minute field '*/'" },
	{ "", "empty expression" },
	{ " \t ", "empty expression" },
	{ "@fortnightly", "unknown macro '@fortnightly'" },
	{ "@daily 5", "unknown macro '@daily 5'" },
};

static void test_parse_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(err_cases); i++) {
		const struct err_case *ec = &err_cases[i];
		pw_cron c, before;
		char err[ERR_LEN], prefix[ERR_LEN];

		memset(&c, 0xa5, sizeof c);
		before = c;
		if (pw_cron_parse(ec->expr, &c, err, sizeof err) != -1)
			fail_msg("'%s' should not parse", ec->expr);
		if (!strstr(err, ec->needle))
			fail_msg("'%s': message '%s' lacks '%s'", ec->expr, err,
				 ec->needle);
		assert_memory_equal(&c, &before, sizeof c);
		/* The message names the (trimmed) expression. */
		const char *s = ec->expr, *e = s + strlen(s);
		while (*s == ' ' || *s == '\t')
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		snprintf(prefix, sizeof prefix, "invalid cron expression '%.*s': ",
			 (int)(e - s), s);
		if (strncmp(err, prefix, strlen(prefix)) != 0)
			fail_msg("'%s': message '%s' lacks prefix '%s'", ec->expr,
				 err, prefix);
	}
}

/* The message is cut to the buffer and stays NUL-terminated. */
static void test_error_buffer(void **state)
{
	(void)state;
	pw_cron c;
	char small[8];

	memset(small, 'x', sizeof small);
	assert_int_equal(pw_cron_parse("61 * * * *", &c, small, sizeof small), -1);
	assert_int_equal(strlen(small), sizeof small - 1);
	assert_int_equal(pw_cron_parse("61 * * * *", &c, NULL, 0), -1);
	assert_int_equal(pw_cron_parse(NULL, &c, small, sizeof small), -1);

	char err[ERR_LEN] = "stale";
	assert_int_equal(pw_cron_parse("0 0 * * *", &c, err, sizeof err), 0);
	assert_string_equal(err, "");
	assert_int_equal(pw_cron_parse("61 * * * *", &c, err, sizeof err), -1);
	assert_string_equal(err, "invalid cron expression '61 * * * *': "
			    "minute 61 out of range 0-59");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_next_table),
		cmocka_unit_test(test_next_chain),
		cmocka_unit_test(test_next_matches_naive),
		cmocka_unit_test(test_parse_fields),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_error_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
