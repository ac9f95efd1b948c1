/*
 * util.h - small shared helpers: string vectors, formatted strings and the
 * error list that project loading fills with "file:line: message" entries.
 *
 * Every function that allocates reports failure (NULL or -1) instead of
 * aborting; callers propagate it.
 */
#ifndef PW_UTIL_H
#define PW_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * Makes room for one more element in a growable array: *arr (a pointer to
 * the array's pointer, of any element type) holds n elements of elem_size
 * bytes in *cap allocated. When n == *cap, doubles *cap (first when 0) and
 * reallocates. Returns 0, or -1 when out of memory (*arr and *cap are then
 * unchanged). Zero-init arrays (NULL, 0) are fine.
 */
int pw_grow(void *arr, size_t n, size_t *cap, size_t elem_size, size_t first);

/* A growable vector of owned, NUL-terminated strings. Zero-init is empty. */
typedef struct pw_strv {
	char **v;
	size_t n;
	size_t cap;
} pw_strv;

/* Appends a copy of s. Returns 0, or -1 when out of memory. */
int pw_strv_push(pw_strv *sv, const char *s);
/* Appends a copy of s unless it is already present. Returns 0 or -1. */
int pw_strv_add_unique(pw_strv *sv, const char *s);
/* Index of s in sv, or -1. */
long pw_strv_index(const pw_strv *sv, const char *s);
bool pw_strv_contains(const pw_strv *sv, const char *s);
void pw_strv_sort(pw_strv *sv);
void pw_strv_free(pw_strv *sv);

/* malloc'd formatted string, or NULL when out of memory. */
char *pw_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *pw_vasprintf(const char *fmt, va_list ap);

/* Joins a and b with one '/', unless b is absolute. malloc'd or NULL. */
char *pw_path_join(const char *a, const char *b);

/* mkdir -p dir (mode 0755). Returns 0, or -1 with errno set. */
int pw_mkdirs(const char *dir);
/* mkdir -p of the folder that holds path. Returns 0 or -1 (errno). */
int pw_mkdirs_for(const char *path);

/*
 * Python's repr() of a list of strings, e.g. ['a', 'b'], as Kedro prints it
 * in its error messages. malloc'd or NULL.
 */
char *pw_pylist_repr(const pw_strv *sv);

/*
 * Appends s to pb as a JSON string, escaped exactly as json-c serialises
 * a string with JSON_C_TO_STRING_NOSLASHESCAPE (so hand-written JSON reads
 * the same as json-c's): \" \\ \b \f \n \r \t, other bytes below 0x20 as
 * \u00xx, everything else as is. A NULL s is JSON null. Returns 0, or -1
 * when out of memory (pb may then hold part of it).
 */
struct printbuf;
int pw_json_quote(struct printbuf *pb, const char *s);

/* One error found while loading a project. */
typedef struct pw_error {
	char *file;    /* path relative to the project root, or NULL */
	int line;      /* 1-based, 0 when unknown */
	char *type;    /* Kedro-style exception type, e.g. "ValueError" */
	char *message; /* without the file:line prefix */
} pw_error;

typedef struct pw_errors {
	pw_error *v;
	size_t n;
	size_t cap;
} pw_errors;

/*
 * Records an error. type may be NULL (meaning "ValueError"). Returns 0, or
 * -1 when out of memory (the error is then lost, but the caller still fails).
 */
int pw_errors_add(pw_errors *errs, const char *file, int line,
		  const char *type, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* Moves every entry of src to the end of dst; src is left empty. */
int pw_errors_move(pw_errors *dst, pw_errors *src);
void pw_errors_free(pw_errors *errs);
/* "file:line: message" (or without the parts that are unknown). malloc'd. */
char *pw_error_format(const pw_error *e);

/*
 * The hint after an unknown key: "(did you mean 'id'? allowed: id, command)",
 * or "(allowed: ...)" when no allowed key is near. The nearest key is a
 * known synonym (name -> id, cmd -> command, depends_on -> upstream, as
 * Airflow and Kedro users write them) or the closest by edit distance.
 * allowed has n entries. malloc'd or NULL.
 */
char *pw_key_hint(const char *key, const char *const *allowed, size_t n);

/* Return codes shared by the store and the handlers. */
enum {
	PW_OK = 0,
	PW_ERR = -1,       /* I/O, SQLite or out of memory; a message is logged */
	PW_CONFLICT = -2,  /* the thing exists already / is in the wrong state */
	PW_NOTFOUND = -3,
};

/* Milliseconds since the epoch (CLOCK_REALTIME). */
long long pw_now_ms(void);
/* "2024-01-01T00:00:00.000Z" into buf (at least 32 bytes). */
void pw_format_iso(long long ms, char *buf);
/* A generated run id: "2024-01-01T00.00.00.000Z" into buf (>= 32 bytes). */
void pw_format_run_id(long long ms, char *buf);
/*
 * Parses an ISO-8601 time: a date, or date and time with 'T' or ' ', optional
 * seconds and fraction, and 'Z' or +hh:mm / -hh:mm (no zone = UTC). Returns
 * 0 and sets *ms, or -1.
 */
int pw_parse_iso(const char *s, long long *ms);

/* An error in Kedro's terms: exception type and message, both malloc'd. */
typedef struct pw_kerror {
	char *type;
	char *message;
} pw_kerror;

void pw_kerror_clear(pw_kerror *e);
/* Sets e (freeing what it held). Returns -1, for `return pw_kerror_set(..)`. */
int pw_kerror_set(pw_kerror *e, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Whether s[0..n) is UTF-8 as Python's strict decoder takes it: no
 * overlong forms, surrogates or code points above U+10FFFF. Returns n, or
 * the offset of the first byte that does not decode.
 */
size_t pw_utf8_check(const char *s, size_t n);

/*
 * Adds 0007 to the process's umask: what the runner and pipewright.fcgi
 * create (database, WAL, logs, params, folders) is private to the
 * service's user and group (docs/hosting.md).
 */
void pw_umask_private(void);

#endif
