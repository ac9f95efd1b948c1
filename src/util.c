/* util.c - see util.h. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/printbuf.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* --- growable arrays ---------------------------------------------------- */

int pw_grow(void *arr, size_t n, size_t *cap, size_t elem_size, size_t first)
{
	void *v, *grown;
	size_t want;

	if (n < *cap)
		return 0;
	want = *cap ? *cap * 2 : first;
	if (want <= n || want > SIZE_MAX / elem_size)
		return -1;
	/* *arr is a T **; object pointers share one representation (POSIX). */
	memcpy(&v, arr, sizeof v);
	grown = realloc(v, want * elem_size);
	if (!grown)
		return -1;
	memcpy(arr, &grown, sizeof grown);
	*cap = want;
	return 0;
}

/* --- string vectors ---------------------------------------------------- */

int pw_strv_push(pw_strv *sv, const char *s)
{
	if (pw_grow(&sv->v, sv->n, &sv->cap, sizeof *sv->v, 8) != 0)
		return -1;
	char *copy = strdup(s);
	if (!copy)
		return -1;
	sv->v[sv->n++] = copy;
	return 0;
}

int pw_strv_add_unique(pw_strv *sv, const char *s)
{
	return pw_strv_contains(sv, s) ? 0 : pw_strv_push(sv, s);
}

long pw_strv_index(const pw_strv *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (strcmp(sv->v[i], s) == 0)
			return (long)i;
	return -1;
}

bool pw_strv_contains(const pw_strv *sv, const char *s)
{
	return pw_strv_index(sv, s) >= 0;
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void pw_strv_sort(pw_strv *sv)
{
	if (sv->n > 1)
		qsort(sv->v, sv->n, sizeof *sv->v, compare_strings);
}

void pw_strv_free(pw_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	*sv = (pw_strv){0};
}

/* --- formatted strings and paths --------------------------------------- */

char *pw_vasprintf(const char *fmt, va_list ap)
{
	char *out;
	return vasprintf(&out, fmt, ap) < 0 ? NULL : out;
}

char *pw_asprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *out = pw_vasprintf(fmt, ap);
	va_end(ap);
	return out;
}

char *pw_path_join(const char *a, const char *b)
{
	if (b[0] == '/' || a[0] == '\0')
		return strdup(b);
	size_t la = strlen(a);
	return pw_asprintf("%s%s%s", a, a[la - 1] == '/' ? "" : "/", b);
}

int pw_mkdirs(const char *dir)
{
	char *copy = strdup(dir);
	if (!copy)
		return -1;
	int rc = 0;
	for (char *p = copy + 1; rc == 0 && *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0755) != 0 && errno != EEXIST)
			rc = -1;
		*p = '/';
	}
	if (rc == 0 && mkdir(copy, 0755) != 0 && errno != EEXIST)
		rc = -1;
	free(copy);
	return rc;
}

int pw_mkdirs_for(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash || slash == path)
		return 0;
	char *dir = strndup(path, (size_t)(slash - path));
	int rc = dir ? pw_mkdirs(dir) : -1;
	free(dir);
	return rc;
}

/*
 * Appends one Python string literal to buf as repr() writes it: single
 * quotes unless the text holds a single quote and no double quote.
 */
static int append_pyrepr(char **buf, size_t *len, const char *s)
{
	char quote = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';
	size_t need = *len + 2 * strlen(s) + 3;
	char *grown = realloc(*buf, need + 1);
	if (!grown)
		return -1;
	*buf = grown;
	char *p = grown + *len;
	*p++ = quote;
	for (; *s; s++) {
		if (*s == quote || *s == '\\')
			*p++ = '\\';
		*p++ = *s;
	}
	*p++ = quote;
	*p = '\0';
	*len = (size_t)(p - grown);
	return 0;
}

char *pw_pylist_repr(const pw_strv *sv)
{
	size_t len = 1;
	char *buf = strdup("[");
	if (!buf)
		return NULL;
	for (size_t i = 0; i < sv->n; i++) {
		if (i > 0) {
			char *grown = realloc(buf, len + 3);
			if (!grown)
				goto fail;
			buf = grown;
			memcpy(buf + len, ", ", 3);
			len += 2;
		}
		if (append_pyrepr(&buf, &len, sv->v[i]) != 0)
			goto fail;
	}
	char *done = realloc(buf, len + 2);
	if (!done)
		goto fail;
	memcpy(done + len, "]", 2);
	return done;
fail:
	free(buf);
	return NULL;
}

/* --- JSON strings ---------------------------------------------------------- */

int pw_json_quote(struct printbuf *pb, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;

	if (!s)
		return printbuf_strappend(pb, "null") < 0 ? -1 : 0;
	if (printbuf_strappend(pb, "\"") < 0)
		return -1;
	for (;; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		char esc[6] = {'\\', 0, '0', '0', hex[c >> 4], hex[c & 15]};
		int n = 2;
		if (s - run > INT_MAX ||
		    (s > run && printbuf_memappend(pb, run, (int)(s - run)) < 0))
			return -1;
		if (c == '\0')
			break;
		run = s + 1;
		switch (c) {
		case '"': case '\\': esc[1] = (char)c; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default: esc[1] = 'u'; n = 6; break;
		}
		if (printbuf_memappend(pb, esc, n) < 0)
			return -1;
	}
	return printbuf_strappend(pb, "\"") < 0 ? -1 : 0;
}

/* --- errors -------------------------------------------------------------- */

int pw_errors_add(pw_errors *errs, const char *file, int line,
		  const char *type, const char *fmt, ...)
{
	if (pw_grow(&errs->v, errs->n, &errs->cap, sizeof *errs->v, 8) != 0)
		return -1;
	pw_error e = {.line = line};
	va_list ap;
	va_start(ap, fmt);
	e.message = pw_vasprintf(fmt, ap);
	va_end(ap);
	e.type = strdup(type ? type : "ValueError");
	e.file = file ? strdup(file) : NULL;
	if (!e.message || !e.type || (file && !e.file)) {
		free(e.message), free(e.type), free(e.file);
		return -1;
	}
	errs->v[errs->n++] = e;
	return 0;
}

int pw_errors_move(pw_errors *dst, pw_errors *src)
{
	for (size_t i = 0; i < src->n; i++) {
		if (pw_grow(&dst->v, dst->n, &dst->cap, sizeof *dst->v, 8) != 0)
			return -1; /* src keeps what was not moved */
		dst->v[dst->n++] = src->v[i];
		src->v[i] = (pw_error){0};
	}
	free(src->v);
	*src = (pw_errors){0};
	return 0;
}

void pw_errors_free(pw_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++) {
		free(errs->v[i].file);
		free(errs->v[i].type);
		free(errs->v[i].message);
	}
	free(errs->v);
	*errs = (pw_errors){0};
}

/* Keys other orchestrators use, and ours. */
static const char *const key_synonyms[][2] = {
	{"name", "id"}, {"name", "project_name"}, {"task_id", "id"}, {"node", "id"},
	{"func", "command"},
	{"cmd", "command"}, {"bash_command", "command"}, {"run", "command"},
	{"script", "command"}, {"input", "inputs"}, {"output", "outputs"},
	{"depends_on", "upstream"}, {"dependencies", "upstream"}, {"deps", "upstream"},
	{"after", "upstream"}, {"upstream_tasks", "upstream"}, {"retry", "retries"},
	{"max_retries", "retries"}, {"execution_timeout", "timeout"},
	{"environment", "env"}, {"working_dir", "cwd"}, {"workdir", "cwd"},
	{"cron", "schedule"}, {"schedule_interval", "schedule"}, {"is_paused", "paused"},
	{"parameters", "params"}, {"default_args", "defaults"}, {"nodes", "tasks"},
	{"steps", "tasks"}, {"doc", "description"}, {"doc_md", "description"},
	{"project", "project_name"}, {"package", "package_name"}, {"db", "database"},
	{"database_path", "database"}, {"log_dir", "logs_dir"}, {"logs", "logs_dir"},
	{"parallelism", "max_parallel_tasks"}, {"max_parallel", "max_parallel_tasks"},
};

/* Levenshtein distance of a and b, ignoring case (short strings only). */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[65];
	if (la > 64 || lb > 64)
		return (size_t)-1;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost = tolower((unsigned char)a[i - 1]) !=
				      tolower((unsigned char)b[j - 1]);
			size_t best = diag + cost;
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* The allowed key nearest to key, or NULL when none is near. */
static const char *nearest_key(const char *key, const char *const *allowed, size_t n)
{
	for (size_t s = 0; s < sizeof key_synonyms / sizeof *key_synonyms; s++)
		for (size_t i = 0; strcmp(key, key_synonyms[s][0]) == 0 && i < n; i++)
			if (strcmp(allowed[i], key_synonyms[s][1]) == 0)
				return allowed[i];
	const char *best = NULL;
	size_t best_d = (size_t)-1, len = strlen(key);
	for (size_t i = 0; i < n; i++) {
		size_t d = edit_distance(key, allowed[i]);
		if (d < best_d) {
			best_d = d;
			best = allowed[i];
		}
	}
	return best && best_d <= (len < 4 ? 1 : len / 2) ? best : NULL;
}

char *pw_key_hint(const char *key, const char *const *allowed, size_t n)
{
	size_t len = 1;
	for (size_t i = 0; i < n; i++)
		len += strlen(allowed[i]) + 2;
	char *list = malloc(len), *o = list;
	if (!list)
		return NULL;
	*o = '\0';
	for (size_t i = 0; i < n; i++)
		o += sprintf(o, "%s%s", i ? ", " : "", allowed[i]);
	const char *near = nearest_key(key, allowed, n);
	char *hint = near ? pw_asprintf("(did you mean '%s'? allowed: %s)", near, list)
			  : pw_asprintf("(allowed: %s)", list);
	free(list);
	return hint;
}

char *pw_error_format(const pw_error *e)
{
	if (e->file && e->line > 0)
		return pw_asprintf("%s:%d: %s", e->file, e->line, e->message);
	if (e->file)
		return pw_asprintf("%s: %s", e->file, e->message);
	return strdup(e->message);
}

void pw_kerror_clear(pw_kerror *e)
{
	free(e->type);
	free(e->message);
	*e = (pw_kerror){0};
}

int pw_kerror_set(pw_kerror *e, const char *type, const char *fmt, ...)
{
	pw_kerror_clear(e);
	va_list ap;
	va_start(ap, fmt);
	e->message = pw_vasprintf(fmt, ap);
	va_end(ap);
	e->type = strdup(type);
	return -1;
}

/* --- time ---------------------------------------------------------------- */

long long pw_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The UTC calendar fields of a time in ms since the epoch. */
typedef struct utc_fields {
	long long year;
	unsigned mon, day, hour, min, sec, millis;
} utc_fields;

/*
 * Splits ms into UTC calendar fields: the proleptic Gregorian date by
 * Hinnant's civil_from_days (no gmtime_r: no lock, no time_t range).
 */
static void split_ms(long long ms, utc_fields *u)
{
	long long secs = ms / 1000, rest = ms % 1000;
	if (rest < 0) {
		rest += 1000;
		secs--;
	}
	long long days = secs / 86400, sod = secs % 86400;
	if (sod < 0) {
		sod += 86400;
		days--;
	}
	u->millis = (unsigned)rest;
	u->hour = (unsigned)(sod / 3600);
	u->min = (unsigned)(sod / 60 % 60);
	u->sec = (unsigned)(sod % 60);
	days += 719468;
	long long era = (days >= 0 ? days : days - 146096) / 146097;
	unsigned doe = (unsigned)(days - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	u->day = doy - (153 * mp + 2) / 5 + 1;
	u->mon = mp < 10 ? mp + 3 : mp - 9;
	u->year = yoe + era * 400 + (u->mon <= 2);
}

/* Writes v as n zero-padded decimal digits at p; returns the end. */
static char *put_digits(char *p, unsigned v, int n)
{
	for (int i = n - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	return p + n;
}

/*
 * Formats ms as UTC with the given separators between the clock fields
 * (':' for ISO-8601, '.' for run ids) into buf (32 bytes). Digits are put
 * by hand (this is on every time of every API answer); a year outside
 * 0..9999 goes through snprintf.
 */
static void format_utc(long long ms, char sep, char *buf)
{
	utc_fields u;
	char wide[96]; /* room for any fields, so no truncation warning */

	split_ms(ms, &u);
	if (u.year < 0 || u.year > 9999) {
		snprintf(wide, sizeof wide, "%04lld-%02u-%02uT%02u%c%02u%c%02u.%03uZ",
			 u.year, u.mon, u.day, u.hour, sep, u.min, sep, u.sec, u.millis);
		snprintf(buf, 32, "%.31s", wide);
		return;
	}
	char *p = put_digits(buf, (unsigned)u.year, 4);
	*p++ = '-';
	p = put_digits(p, u.mon, 2);
	*p++ = '-';
	p = put_digits(p, u.day, 2);
	*p++ = 'T';
	p = put_digits(p, u.hour, 2);
	*p++ = sep;
	p = put_digits(p, u.min, 2);
	*p++ = sep;
	p = put_digits(p, u.sec, 2);
	*p++ = '.';
	p = put_digits(p, u.millis, 3);
	memcpy(p, "Z", 2);
}

void pw_format_iso(long long ms, char *buf)
{
	format_utc(ms, ':', buf);
}

void pw_format_run_id(long long ms, char *buf)
{
	format_utc(ms, '.', buf);
}

/* Reads exactly `width` digits at *p into *out; advances *p. */
static int read_digits(const char **p, int width, int *out)
{
	int v = 0;
	for (int i = 0; i < width; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += width;
	*out = v;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm). */
static long long days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	long long yoe = y - era * 400;
	long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

/* Parses "[T ]hh:mm[:ss[.fff]]" at *p into seconds and milliseconds. */
static int parse_clock(const char **p, long long *ms)
{
	int hh, mi, ss = 0, frac = 0;
	if (read_digits(p, 2, &hh) || **p != ':')
		return -1;
	(*p)++;
	if (read_digits(p, 2, &mi))
		return -1;
	if (**p == ':') {
		(*p)++;
		if (read_digits(p, 2, &ss))
			return -1;
		if (**p == '.' || **p == ',') {
			(*p)++;
			int scale = 100, digits = 0;
			for (; **p >= '0' && **p <= '9'; (*p)++, digits++) {
				frac += (**p - '0') * scale;
				scale /= 10;
			}
			if (digits == 0)
				return -1;
		}
	}
	if (hh > 23 || mi > 59 || ss > 60)
		return -1;
	*ms = ((hh * 60LL + mi) * 60 + ss) * 1000 + frac;
	return 0;
}

/* Parses "Z", "+hh:mm", "-hhmm", "+hh" or nothing into an offset in ms. */
static int parse_zone(const char **p, long long *offset)
{
	*offset = 0;
	if (**p == '\0')
		return 0;
	if (**p == 'Z' || **p == 'z') {
		(*p)++;
		return 0;
	}
	if (**p != '+' && **p != '-')
		return -1;
	int sign = **p == '-' ? -1 : 1, hh, mi = 0;
	(*p)++;
	if (read_digits(p, 2, &hh))
		return -1;
	if (**p == ':')
		(*p)++;
	if (**p && read_digits(p, 2, &mi))
		return -1;
	if (hh > 23 || mi > 59)
		return -1;
	*offset = sign * (hh * 60LL + mi) * 60000;
	return 0;
}

int pw_parse_iso(const char *s, long long *ms)
{
	const char *p = s;
	int y, m, d;
	long long clock = 0, offset = 0;

	if (read_digits(&p, 4, &y) || *p++ != '-' || read_digits(&p, 2, &m) ||
	    *p++ != '-' || read_digits(&p, 2, &d))
		return -1;
	if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
		return -1;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (parse_clock(&p, &clock) || parse_zone(&p, &offset))
			return -1;
	}
	if (*p != '\0')
		return -1;
	*ms = days_from_civil(y, m, d) * 86400000LL + clock - offset;
	return 0;
}

size_t pw_utf8_check(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		unsigned char c = u[i];
		size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 :
			     c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
		/* the second byte's range: it excludes overlongs, surrogates, > U+10FFFF */
		unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
		unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
		if (len == 0 || n - i < len)
			return i;
		for (size_t k = 1; k < len; k++)
			if (u[i + k] < (k == 1 ? lo : 0x80) || u[i + k] > (k == 1 ? hi : 0xBF))
				return i;
		i += len;
	}
	return n;
}

void pw_umask_private(void)
{
	mode_t old = umask(0077);
	umask(old | 0007);
}
