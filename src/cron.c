/*
 * cron.c - parsing 5-field cron expressions and finding their next fire
 * time, in UTC. See cron.h.
 */
#include "cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum {
	FIELD_COUNT = 5,
	NAME_LEN = 3,          /* JAN, MON, ... */
	VALUE_CAP = 100000,    /* numbers are clamped here while reading */
	MIN_PER_HOUR = 60,
	MONTH_PER_YEAR = 12,
	DAYS_PER_WEEK = 7,
	SECS_PER_MIN = 60,
	SECS_PER_HOUR = 3600,
	SECS_PER_DAY = 86400,
	SEARCH_YEARS = 8,      /* pw_cron_next gives up after this many years */
	EPOCH_WDAY = 4,        /* 1970-01-01 was a Thursday */
	MASK_BITS = 64,        /* width of the widest field mask */
};

/* |after| beyond this (about 34,000 years) is refused by pw_cron_next. */
#define TIME_LIMIT (INT64_C(1) << 40)

enum field_id { F_MINUTE, F_HOUR, F_MDAY, F_MONTH, F_WDAY };

static const char *const month_names[] = {
	"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
	"JUL", "AUG", "SEP", "OCT", "NOV", "DEC", NULL
};
static const char *const wday_names[] = {
	"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL
};

/*
 * One field's rules. Values min..max are accepted; '*' (and an open-ended
 * "a/n") runs up to star_max, which differs from max only for day-of-week,
 * where 7 is accepted as another spelling of Sunday. names[i] has the value
 * min + i.
 */
struct field_spec {
	const char *name;
	int min, max, star_max;
	const char *const *names;
};

static const struct field_spec field_specs[FIELD_COUNT] = {
	[F_MINUTE] = { "minute", 0, 59, 59, NULL },
	[F_HOUR] = { "hour", 0, 23, 23, NULL },
	[F_MDAY] = { "day-of-month", 1, 31, 31, NULL },
	[F_MONTH] = { "month", 1, 12, 12, month_names },
	[F_WDAY] = { "day-of-week", 0, 7, 6, wday_names },
};

static const struct {
	const char *name;
	const char *expansion;
} macros[] = {
	{ "@hourly", "0 * * * *" },
	{ "@daily", "0 0 * * *" },
	{ "@midnight", "0 0 * * *" },
	{ "@weekly", "0 0 * * 0" },
	{ "@monthly", "0 0 1 * *" },
	{ "@yearly", "0 0 1 1 *" },
	{ "@annually", "0 0 1 1 *" },
};

/* The expression being parsed (for messages) and where errors go. */
struct parser {
	const char *expr;
	int exprlen;
	char *err;
	size_t errlen;
};

/* A cursor over one field's text [start, end). */
struct field_text {
	const char *start, *p, *end;
};

static inline uint64_t bit(int n)
{
	return UINT64_C(1) << n;
}

/*
 * Writes "invalid cron expression '<expr>': <detail>" into ps->err, always
 * NUL-terminated when errlen > 0. Returns -1 so callers can `return fail()`.
 */
__attribute__((format(printf, 2, 3)))
static int fail(const struct parser *ps, const char *fmt, ...)
{
	if (!ps->err || ps->errlen == 0)
		return -1;
	int n = snprintf(ps->err, ps->errlen, "invalid cron expression '%.*s': ",
			 ps->exprlen, ps->expr);
	if (n < 0 || (size_t)n >= ps->errlen)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static bool is_blank(char c)
{
	return isspace((unsigned char)c) != 0;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool at(const struct field_text *ft, char c)
{
	return ft->p < ft->end && *ft->p == c;
}

/* Case-insensitive (ASCII) comparison of tok[0..len) with a whole word. */
static bool word_equals(const char *tok, size_t len, const char *word)
{
	if (strlen(word) != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (toupper((unsigned char)tok[i]) != toupper((unsigned char)word[i]))
			return false;
	return true;
}

/* Reports what is wrong at ft->p, where a value or step was expected. */
static int fail_expected(const struct parser *ps, const struct field_spec *fs,
			 const struct field_text *ft, const char *what)
{
	int flen = (int)(ft->end - ft->start);

	if (ft->p >= ft->end || *ft->p == ',')
		return fail(ps, "missing %s in %s field '%.*s'", what, fs->name,
			    flen, ft->start);
	return fail(ps, "unexpected '%c' in %s field '%.*s'", *ft->p, fs->name,
		    flen, ft->start);
}

/* Reads a run of digits at ft->p (clamped at VALUE_CAP) into *out. */
static void read_number(struct field_text *ft, int *out)
{
	int v = 0;

	while (ft->p < ft->end && is_digit(*ft->p)) {
		if (v < VALUE_CAP)
			v = v * 10 + (*ft->p - '0');
		ft->p++;
	}
	*out = v;
}

/* Reads a name at ft->p and looks it up in the field's name table. */
static int read_name(const struct parser *ps, const struct field_spec *fs,
		     struct field_text *ft, int *out)
{
	const char *tok = ft->p;

	while (ft->p < ft->end && is_alpha(*ft->p))
		ft->p++;
	size_t len = (size_t)(ft->p - tok);
	if (!fs->names)
		return fail(ps, "%s value '%.*s' is not a number", fs->name,
			    (int)len, tok);
	for (int i = 0; fs->names[i]; i++) {
		if (word_equals(tok, len, fs->names[i])) {
			*out = fs->min + i;
			return 0;
		}
	}
	return fail(ps, "unknown %s name '%.*s'", fs->name, (int)len, tok);
}

/* Reads one value (number or name) at ft->p and checks its range. */
static int read_value(const struct parser *ps, const struct field_spec *fs,
		      struct field_text *ft, int *out)
{
	const char *tok = ft->p;

	if (ft->p < ft->end && is_alpha(*ft->p))
		return read_name(ps, fs, ft, out);
	if (!(ft->p < ft->end && is_digit(*ft->p)))
		return fail_expected(ps, fs, ft, "value");
	read_number(ft, out);
	if (*out < fs->min || *out > fs->max)
		return fail(ps, "%s %.*s out of range %d-%d", fs->name,
			    (int)(ft->p - tok), tok, fs->min, fs->max);
	return 0;
}

/* Reads the step after a '/' (already consumed): 1..span of the field. */
static int read_step(const struct parser *ps, const struct field_spec *fs,
		     struct field_text *ft, int *out)
{
	const char *tok = ft->p;
	int span = fs->star_max - fs->min + 1;

	if (!(ft->p < ft->end && is_digit(*ft->p)))
		return fail_expected(ps, fs, ft, "step");
	read_number(ft, out);
	if (*out < 1 || *out > span)
		return fail(ps, "%s step %.*s out of range 1-%d", fs->name,
			    (int)(ft->p - tok), tok, span);
	return 0;
}

/*
 * Reads the part of a list item before any '/': '*', a value, or a range.
 * Sets *lo and *hi; *single tells a lone value (which a step makes
 * open-ended) from a range.
 */
static int read_base(const struct parser *ps, const struct field_spec *fs,
		     struct field_text *ft, int *lo, int *hi, bool *single)
{
	const char *item = ft->p;

	*single = false;
	if (at(ft, '*')) {
		ft->p++;
		*lo = fs->min;
		*hi = fs->star_max;
		return 0;
	}
	if (read_value(ps, fs, ft, lo) < 0)
		return -1;
	*hi = *lo;
	if (!at(ft, '-')) {
		*single = true;
		return 0;
	}
	ft->p++;
	if (read_value(ps, fs, ft, hi) < 0)
		return -1;
	if (*lo > *hi)
		return fail(ps, "%s range %.*s is reversed (start after end)",
			    fs->name, (int)(ft->p - item), item);
	return 0;
}

/* Parses one list item at ft->p and sets its values in *bits. */
static int parse_item(const struct parser *ps, const struct field_spec *fs,
		      struct field_text *ft, uint64_t *bits)
{
	int lo, hi, step = 1;
	bool single;

	if (read_base(ps, fs, ft, &lo, &hi, &single) < 0)
		return -1;
	if (at(ft, '/')) {
		ft->p++;
		if (read_step(ps, fs, ft, &step) < 0)
			return -1;
		/* "a/n" runs to the end of the field (to 7 only for "7/n"). */
		if (single)
			hi = lo > fs->star_max ? lo : fs->star_max;
	}
	for (int v = lo; v <= hi; v += step)
		*bits |= bit(v);
	return 0;
}

/* Parses a comma list [start, end) for field fs into *bits. */
static int parse_field(const struct parser *ps, const struct field_spec *fs,
		       const char *start, const char *end, uint64_t *bits)
{
	struct field_text ft = { start, start, end };

	*bits = 0;
	for (;;) {
		if (parse_item(ps, fs, &ft, bits) < 0)
			return -1;
		if (ft.p == ft.end)
			return 0;
		if (*ft.p != ',')
			return fail_expected(ps, fs, &ft, "value");
		ft.p++;
	}
}

/*
 * Returns the 5-field text for a macro [p, end), or NULL after reporting an
 * unknown macro.
 */
static const char *expand_macro(const struct parser *ps, const char *p,
				const char *end)
{
	for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
		if (word_equals(p, (size_t)(end - p), macros[i].name))
			return macros[i].expansion;
	fail(ps, "unknown macro '%.*s' (expected @hourly, @daily, @midnight, "
	     "@weekly, @monthly, @yearly or @annually)", (int)(end - p), p);
	return NULL;
}

/*
 * Splits [p, end) at blanks into at most FIELD_COUNT fields (starts and ends
 * stored), returning how many fields there are in all.
 */
static int split_fields(const char *p, const char *end,
			const char *starts[FIELD_COUNT],
			const char *ends[FIELD_COUNT])
{
	int n = 0;

	while (p < end) {
		while (p < end && is_blank(*p))
			p++;
		if (p == end)
			break;
		const char *s = p;
		while (p < end && !is_blank(*p))
			p++;
		if (n < FIELD_COUNT) {
			starts[n] = s;
			ends[n] = p;
		}
		n++;
	}
	return n;
}

/* Parses five fields [p, end) into *out (untouched on error). */
static int parse_fields(const struct parser *ps, const char *p,
			const char *end, pw_cron *out)
{
	const char *starts[FIELD_COUNT], *ends[FIELD_COUNT];
	uint64_t bits[FIELD_COUNT];

	int n = split_fields(p, end, starts, ends);
	if (n != FIELD_COUNT)
		return fail(ps, "expected %d fields (minute hour day-of-month "
			    "month day-of-week), got %d", FIELD_COUNT, n);
	for (int i = 0; i < FIELD_COUNT; i++)
		if (parse_field(ps, &field_specs[i], starts[i], ends[i],
				&bits[i]) < 0)
			return -1;
	/* Day-of-week 7 is Sunday, like 0. */
	if (bits[F_WDAY] & bit(DAYS_PER_WEEK))
		bits[F_WDAY] = (bits[F_WDAY] & ~bit(DAYS_PER_WEEK)) | bit(0);
	*out = (pw_cron){
		.minutes = bits[F_MINUTE],
		.hours = (uint32_t)bits[F_HOUR],
		.mdays = (uint32_t)bits[F_MDAY],
		.months = (uint16_t)bits[F_MONTH],
		.wdays = (uint8_t)bits[F_WDAY],
		/* As in Vixie cron, "*" and "*" steps count as unrestricted. */
		.mday_star = *starts[F_MDAY] == '*',
		.wday_star = *starts[F_WDAY] == '*',
	};
	return 0;
}

int pw_cron_parse(const char *expr, pw_cron *out, char *err, size_t errlen)
{
	if (!expr)
		expr = "";
	const char *p = expr, *end = expr + strlen(expr);
	while (p < end && is_blank(*p))
		p++;
	while (end > p && is_blank(end[-1]))
		end--;
	struct parser ps = { p, (int)(end - p), err, errlen };

	if (err && errlen > 0)
		err[0] = '\0';
	if (p == end)
		return fail(&ps, "empty expression");
	if (*p == '@') {
		p = expand_macro(&ps, p, end);
		if (!p)
			return -1;
		end = p + strlen(p);
	}
	return parse_fields(&ps, p, end, out);
}

/* ---- next fire time ---------------------------------------------------- */

/* A broken-down UTC time at minute resolution. */
struct civil {
	int year, month, mday, hour, minute;
};

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
	return a - floor_div(a, b) * b;
}

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
	static const int days[MONTH_PER_YEAR] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};
	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int y, int m, int d)
{
	int64_t yy = y - (m <= 2);
	int64_t era = floor_div(yy, 400);
	int64_t yoe = yy - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
	z += 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static struct civil civil_from_time(int64_t t)
{
	struct civil c;
	int64_t day = floor_div(t, SECS_PER_DAY);
	int64_t secs = t - day * SECS_PER_DAY;

	civil_from_days(day, &c.year, &c.month, &c.mday);
	c.hour = (int)(secs / SECS_PER_HOUR);
	c.minute = (int)(secs % SECS_PER_HOUR / SECS_PER_MIN);
	return c;
}

static int64_t time_from_civil(const struct civil *c)
{
	return days_from_civil(c->year, c->month, c->mday) * SECS_PER_DAY +
	       (int64_t)c->hour * SECS_PER_HOUR +
	       (int64_t)c->minute * SECS_PER_MIN;
}

/* Moves to the first minute of the next month. */
static void next_month(struct civil *c)
{
	if (++c->month > MONTH_PER_YEAR) {
		c->month = 1;
		c->year++;
	}
	c->mday = 1;
	c->hour = c->minute = 0;
}

/* Moves to the first minute of the next day. */
static void next_day(struct civil *c)
{
	if (++c->mday > days_in_month(c->year, c->month)) {
		next_month(c);
		return;
	}
	c->hour = c->minute = 0;
}

/* The lowest set bit of mask at or after `from`, or -1 (from may be >= 64). */
static int next_bit(uint64_t mask, int from)
{
	if (from >= MASK_BITS)
		return -1;
	mask &= ~UINT64_C(0) << from;
	return mask ? __builtin_ctzll(mask) : -1;
}

/* Whether the date matches the day fields, with Vixie's OR rule. */
static bool day_matches(const pw_cron *cron, const struct civil *c)
{
	int64_t days = days_from_civil(c->year, c->month, c->mday);
	int wday = (int)floor_mod(days + EPOCH_WDAY, DAYS_PER_WEEK);
	bool mday_ok = (cron->mdays & bit(c->mday)) != 0;
	bool wday_ok = (cron->wdays & bit(wday)) != 0;

	if (cron->mday_star || cron->wday_star)
		return mday_ok && wday_ok;
	return mday_ok || wday_ok;
}

/*
 * Advances *c to the next fire time at or after it: skips whole months,
 * then days, then hours that do not match, and picks the minute by bit scan.
 * Gives up (returns false) after last_year.
 */
static bool advance(const pw_cron *cron, struct civil *c, int last_year)
{
	while (c->year <= last_year) {
		if (!(cron->months & bit(c->month))) {
			next_month(c);
			continue;
		}
		if (!day_matches(cron, c)) {
			next_day(c);
			continue;
		}
		int hour = next_bit(cron->hours, c->hour);
		if (hour < 0) {
			next_day(c);
			continue;
		}
		if (hour != c->hour) {
			c->hour = hour;
			c->minute = 0;
		}
		int minute = next_bit(cron->minutes, c->minute);
		if (minute >= 0 && minute < MIN_PER_HOUR) {
			c->minute = minute;
			return true;
		}
		c->hour++;   /* hour 24 fails next_bit and moves to the next day */
		c->minute = 0;
	}
	return false;
}

int64_t pw_cron_next(const pw_cron *cron, int64_t after)
{
	if (after > TIME_LIMIT || after < -TIME_LIMIT)
		return -1;
	int64_t start = (floor_div(after, SECS_PER_MIN) + 1) * SECS_PER_MIN;
	struct civil c = civil_from_time(start);

	if (!advance(cron, &c, c.year + SEARCH_YEARS))
		return -1;
	return time_from_civil(&c);
}
