/*
 * tasks.c - the task instances of a run: list, one with its tries, its
 * XComs and the log of a try.
 *
 * Every path names a DAG, a run and (but for the list) a task; each must
 * exist, else 404. A log is only ever read from the log_path the runner
 * recorded in task_tries, never from a path built from the request.
 */
#include "jsonnum.h"
#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A log larger than this is served from its end (X-Log-Omitted-Bytes). */
#define LOG_MAX (8L * 1024 * 1024)

/* --- finding the run and the task ------------------------------------------- */

static const char run_pk_sql[] =
	"SELECT id FROM runs WHERE dag_id = ?1 AND run_id = ?2";
static const char task_exists_sql[] =
	"SELECT 1 FROM task_instances WHERE run_pk = ?1 AND task_id = ?2";

/*
 * Steps a statement that gives at most one row, then puts it back; *pk
 * gets column 0 when pk is non-NULL. Returns GO (a row), 1 (no row) or
 * FAILED.
 */
static int one_row(pw_req *req, sqlite3_stmt *st, long long *pk)
{
	int step = sqlite3_step(st), rc;

	if (step == SQLITE_ROW) {
		if (pk)
			*pk = sqlite3_column_int64(st, 0);
		rc = GO;
	} else {
		rc = step == SQLITE_DONE ? 1 : api_db_error(req);
	}
	api_stmt_done(st);
	return rc;
}

/* The row id of the path's run into *pk, or an answered 404. */
static int find_run(pw_req *req, long long *pk)
{
	const char *dag_id = pw_req_param(req, "dag_id");
	const char *run_id = pw_req_param(req, "run_id");
	sqlite3_stmt *st;
	int rc;

	if (!api_dag_exists_or_404(req, dag_id))
		return ANSWERED;
	if (!run_id || !pw_valid_run_id(run_id)) {
		pw_reply_error(req, 404, "run not found");
		return ANSWERED;
	}
	st = pw_store_stmt(pw_req_store(req), run_pk_sql);
	if (!st)
		return FAILED;
	sqlite3_bind_text(st, 1, dag_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, run_id, -1, SQLITE_STATIC);
	rc = one_row(req, st, pk);
	if (rc == 1) {
		pw_reply_error(req, 404, "DAG '%s' has no run '%s'", dag_id, run_id);
		rc = ANSWERED;
	}
	return rc;
}

/* The path's task id if it is valid, else NULL after answering 404. */
static const char *task_param(pw_req *req)
{
	const char *task_id = pw_req_param(req, "task_id");

	if (task_id && pw_valid_task_id(task_id))
		return task_id;
	pw_reply_error(req, 404, "task not found");
	return NULL;
}

/* The run's row id and the task (which must have an instance in it). */
static int find_task(pw_req *req, long long *pk, const char **task_id)
{
	sqlite3_stmt *st;
	int rc = find_run(req, pk);

	if (rc != GO)
		return rc;
	if (!(*task_id = task_param(req)))
		return ANSWERED;
	st = pw_store_stmt(pw_req_store(req), task_exists_sql);
	if (!st)
		return FAILED;
	sqlite3_bind_int64(st, 1, *pk);
	sqlite3_bind_text(st, 2, *task_id, -1, SQLITE_STATIC);
	rc = one_row(req, st, NULL);
	if (rc == 1) {
		pw_reply_error(req, 404, "run '%s' has no task '%s'",
			       pw_req_param(req, "run_id"), *task_id);
		rc = ANSWERED;
	}
	return rc;
}

/* Answers 200 with data (taken) and meta (taken, may be NULL). */
static int reply(pw_req *req, json_object *data, json_object *meta)
{
	return pw_reply_data(req, 200, data, meta) == 0 ? GO : FAILED;
}

/* --- GET .../tasks ----------------------------------------------------------- */

int tasks_list(pw_req *req)
{
	json_object *list = NULL, *meta = NULL;
	api_page pg = {0};
	long long pk = 0, total = 0;
	int rc = find_run(req, &pk);

	if (rc == GO)
		rc = api_page_parse(req, "tasks", false, &pg);
	if (rc == GO && api_task_instance_count(req, pk, &total) != PW_OK)
		rc = FAILED;
	if (rc == GO && (api_task_instances(req, pk, NULL, &pg, &list) != GO ||
			 !(meta = api_page_meta(total, &pg))))
		rc = FAILED;
	if (rc == GO) {
		rc = reply(req, list, meta);
		list = meta = NULL;
	}
	json_object_put(list);
	api_page_free(&pg);
	return rc;
}

/* --- GET .../tasks/:task_id ------------------------------------------------------ */

static const char tries_sql[] =
	"SELECT try_number, state, started_at, ended_at, exit_code, reason"
	" FROM task_tries WHERE run_pk = ?1 AND task_id = ?2"
	" ORDER BY try_number";

/* Adds column i: integer, text or null as the column holds it; times
 * (is_time) become ISO-8601 strings. */
static int put_col(json_object *o, const char *key, sqlite3_stmt *st, int i,
		   bool is_time)
{
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_NULL:
		return pw_json_put_null(o, key);
	case SQLITE_INTEGER:
		if (is_time) {
			long long ms = sqlite3_column_int64(st, i);
			return ms > 0 ? pw_json_put(o, key, api_time(ms))
				      : pw_json_put_null(o, key);
		}
		return pw_json_put(o, key, json_object_new_int64(sqlite3_column_int64(st, i)));
	default:
		return pw_json_put(o, key, json_object_new_string(
				   (const char *)sqlite3_column_text(st, i)));
	}
}

/*
 * Adds duration_ms: ended - started when both are known, now - started
 * while the try runs, else null.
 */
static int put_duration(json_object *o, long long started, long long ended,
			const char *state)
{
	if (started > 0 && ended > 0)
		return pw_json_put(o, "duration_ms", json_object_new_int64(ended - started));
	if (started > 0 && state && strcmp(state, "running") == 0)
		return pw_json_put(o, "duration_ms", json_object_new_int64(pw_now_ms() - started));
	return pw_json_put_null(o, "duration_ms");
}

/* One try of the statement's current row (tries_sql's columns). */
static json_object *try_from_row(sqlite3_stmt *st)
{
	json_object *o = json_object_new_object();

	if (!o || put_col(o, "try_number", st, 0, false) ||
	    put_col(o, "state", st, 1, false) ||
	    put_col(o, "started_at", st, 2, true) ||
	    put_col(o, "ended_at", st, 3, true) ||
	    put_duration(o, sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3),
			 (const char *)sqlite3_column_text(st, 1)) ||
	    put_col(o, "exit_code", st, 4, false) ||
	    put_col(o, "reason", st, 5, false)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* The task's tries, oldest first, into *out. GO or FAILED. */
static int list_tries(pw_req *req, long long pk, const char *task_id,
		      json_object **out)
{
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(req), tries_sql);
	json_object *list = json_object_new_array();
	int rc;

	*out = NULL;
	if (!st || !list) {
		json_object_put(list);
		return FAILED;
	}
	sqlite3_bind_int64(st, 1, pk);
	sqlite3_bind_text(st, 2, task_id, -1, SQLITE_STATIC);
	rc = api_rows(req, st, try_from_row, list);
	if (rc == GO)
		*out = list;
	else
		json_object_put(list);
	return rc;
}

int tasks_get(pw_req *req)
{
	json_object *list = NULL, *ti = NULL, *tries = NULL;
	const char *task_id = NULL;
	long long pk = 0;
	int rc = find_run(req, &pk);

	if (rc == GO && !(task_id = task_param(req)))
		rc = ANSWERED;
	if (rc == GO && api_task_instances(req, pk, task_id, NULL, &list) != GO)
		rc = FAILED;
	if (rc == GO && json_object_array_length(list) == 0) {
		pw_reply_error(req, 404, "run '%s' has no task '%s'",
			       pw_req_param(req, "run_id"), task_id);
		rc = ANSWERED;
	}
	if (rc == GO) {
		ti = json_object_get(json_object_array_get_idx(list, 0));
		rc = list_tries(req, pk, task_id, &tries);
	}
	if (rc == GO && json_object_object_add(ti, "tries", tries) != 0) {
		json_object_put(tries);
		rc = FAILED;
	}
	if (rc == GO) {
		rc = reply(req, ti, NULL);
		ti = NULL;
	}
	json_object_put(ti);
	json_object_put(list);
	return rc;
}

/* --- GET .../tasks/:task_id/xcom ------------------------------------------------- */

static const char xcom_count_sql[] =
	"SELECT count(*) FROM xcom WHERE run_pk = ?1 AND task_id = ?2";
/* The primary key (run_pk, task_id, key) serves the order and the page. */
static const char xcom_sql[] =
	"SELECT key, value FROM xcom WHERE run_pk = ?1 AND task_id = ?2"
	" AND (?5 IS NULL OR key > ?5) ORDER BY key LIMIT ?3 OFFSET ?4";

/*
 * An XCom value as JSON: the stored text parsed (so values keep their
 * types); text that does not parse stays a string. *v NULL is JSON null.
 * Returns 0, or -1 when out of memory.
 */
static int xcom_value(const char *text, json_object **v)
{
	enum json_tokener_error jerr = json_tokener_success;

	*v = NULL;
	if (!text)
		return 0;
	*v = json_tokener_parse_verbose(text, &jerr);
	if (jerr == json_tokener_success)   /* *v may be NULL: the text was "null" */
		return pw_json_keep_numbers(v, text, strlen(text));
	json_object_put(*v);
	*v = json_object_new_string(text);
	return *v ? 0 : -1;
}

/* {"key", "value"} of the statement's current row, or NULL. */
static json_object *xcom_from_row(sqlite3_stmt *st)
{
	json_object *o = json_object_new_object(), *v = NULL;

	if (!o || pw_json_put(o, "key", json_object_new_string(
			      (const char *)sqlite3_column_text(st, 0))) ||
	    xcom_value((const char *)sqlite3_column_text(st, 1), &v) ||
	    json_object_object_add(o, "value", v) != 0) {
		json_object_put(v);
		json_object_put(o);
		return NULL;
	}
	return o;
}

/*
 * The task's XComs, ordered by key: how many into *total, the page pg
 * asks for and the first row after it into *list. GO or FAILED.
 */
static int xcom_page(pw_req *req, long long pk, const char *task_id,
		     const api_page *pg, long long *total, json_object **list)
{
	pw_store *store = pw_req_store(req);
	sqlite3_stmt *st = pw_store_stmt(store, xcom_count_sql);

	if (!st)
		return FAILED;
	sqlite3_bind_int64(st, 1, pk);
	sqlite3_bind_text(st, 2, task_id, -1, SQLITE_STATIC);
	if (one_row(req, st, total) != GO ||
	    !(st = pw_store_stmt(store, xcom_sql)) ||
	    !(*list = json_object_new_array()))
		return FAILED;
	sqlite3_bind_int64(st, 1, pk);
	sqlite3_bind_text(st, 2, task_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, pg->limit + 1);
	sqlite3_bind_int64(st, 4, pg->offset);
	if (pg->skey)
		sqlite3_bind_text(st, 5, pg->skey, -1, SQLITE_STATIC);
	return api_rows(req, st, xcom_from_row, *list);
}

int tasks_xcom(pw_req *req)
{
	json_object *list = NULL, *meta = NULL;
	const char *task_id = NULL;
	api_page pg = {0};
	long long pk = 0, total = 0;
	int rc = find_task(req, &pk, &task_id);

	if (rc == GO)
		rc = api_page_parse(req, "xcom", true, &pg);
	if (rc == GO) {
		/* One read transaction: the total counts the page's snapshot. */
		pw_store *store = pw_req_store(req);
		if (pw_store_begin_read(store) != PW_OK)
			return api_page_free(&pg), api_db_error(req);
		rc = api_read_end(req, xcom_page(req, pk, task_id, &pg, &total, &list));
	}
	if (rc == GO && (api_page_trim(&pg, list, "key") != GO ||
			 !(meta = api_page_meta(total, &pg))))
		rc = FAILED;
	if (rc == GO) {
		rc = reply(req, list, meta);
		list = NULL;
	}
	json_object_put(list);
	api_page_free(&pg);
	return rc;
}

/* --- GET .../tasks/:task_id/logs -------------------------------------------------- */

static const char log_latest_sql[] =
	"SELECT log_path FROM task_tries WHERE run_pk = ?1 AND task_id = ?2"
	" ORDER BY try_number DESC LIMIT 1";
static const char log_try_sql[] =
	"SELECT log_path FROM task_tries WHERE run_pk = ?1 AND task_id = ?2"
	" AND try_number = ?3";

/* ?try_number= into *n (0 when absent). GO or ANSWERED (400). */
static int parse_try_number(pw_req *req, int *n)
{
	const char *arg = pw_req_query(req, "try_number");
	long long v = 0;

	*n = 0;
	if (!arg)
		return GO;
	for (const char *c = arg; *c; c++) {
		if (*c < '0' || *c > '9' || v > INT_MAX / 10) {
			v = -1;
			break;
		}
		v = v * 10 + (*c - '0');
	}
	if (!*arg || v < 1 || v > INT_MAX) {
		pw_reply_error(req, 400, "try_number: expected an integer >= 1");
		return ANSWERED;
	}
	*n = (int)v;
	return GO;
}

/*
 * The log path of the try (the latest when try_number is 0) into *path
 * (malloc'd; NULL when the try has none yet, or the task no try at all).
 * GO, ANSWERED (404 for a try that does not exist) or FAILED.
 */
static int find_log(pw_req *req, long long pk, const char *task_id,
		    int try_number, char **path)
{
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(req),
					 try_number ? log_try_sql : log_latest_sql);
	int rc = FAILED, step;

	*path = NULL;
	if (!st)
		return FAILED;
	sqlite3_bind_int64(st, 1, pk);
	sqlite3_bind_text(st, 2, task_id, -1, SQLITE_STATIC);
	if (try_number)
		sqlite3_bind_int(st, 3, try_number);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		const char *p = (const char *)sqlite3_column_text(st, 0);
		rc = !p || (*path = strdup(p)) ? GO : FAILED;
	} else if (step == SQLITE_DONE && try_number) {
		pw_reply_error(req, 404, "task '%s' has no try %d", task_id, try_number);
		rc = ANSWERED;
	} else if (step == SQLITE_DONE) {
		rc = GO;
	} else {
		api_db_error(req);
	}
	api_stmt_done(st);
	return rc;
}

/* Reads up to want bytes of fd into buf. Returns the count, or -1. */
static ssize_t read_upto(int fd, char *buf, size_t want)
{
	size_t got = 0;

	while (got < want) {
		ssize_t n = read(fd, buf + got, want - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;  /* truncated since fstat */
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/*
 * Whether the file open on fd lies inside the directory dir (by the path
 * the kernel resolved, so a symlinked parent directory does not count as
 * inside). Returns 1, 0, or -1 when it cannot tell.
 */
static int fd_inside(int fd, const char *dir)
{
	char link[64], got[PATH_MAX], *root = realpath(dir, NULL);
	ssize_t n;
	int rc = -1;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, got, sizeof got - 1);
	if (root && n > 0) {
		size_t rl = strlen(root);
		got[n] = '\0';
		rc = strncmp(got, root, rl) == 0 && (rl == 1 || got[rl] == '/');
	}
	free(root);
	return rc;
}

/*
 * Opens the log file at path for reading. A task writes its own log file,
 * so it is opened without following a symlink, and must be a regular file
 * inside logs_dir; otherwise *refused says why (logged) and -1 is
 * returned. Returns the descriptor, or -1 with *refused NULL and errno set
 * when it cannot be opened (ENOENT: it does not exist yet).
 */
int api_log_open(const char *path, const char *logs_dir, const char **refused)
{
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);

	*refused = NULL;
	if (fd < 0 && errno == ELOOP)
		*refused = "the log file is a symbolic link";
	else if (fd >= 0 && fstat(fd, &sb) != 0)
		*refused = "the log file cannot be read";
	else if (fd >= 0 && !S_ISREG(sb.st_mode))
		*refused = "the log file is not a regular file";
	else if (fd >= 0 && (!logs_dir || fd_inside(fd, logs_dir) != 1))
		*refused = "the log file is outside the logs folder";
	if (!*refused)
		return fd;
	fprintf(stderr, "pipewright: api: log %s: %s\n", path, *refused);
	if (fd >= 0)
		close(fd);
	return -1;
}

/*
 * Reads a log file, at most its last LOG_MAX bytes, into *buf (malloc'd)
 * and *len; *omitted gets the bytes left out at the start. A file that
 * does not exist (yet) reads as empty; one api_log_open refuses sets
 * *refused. Returns 0 (also when refused), or -1 (logged).
 */
static int read_log(const char *path, const char *logs_dir, char **buf, size_t *len,
		    long long *omitted, const char **refused)
{
	struct stat sb;
	off_t start = 0;
	ssize_t got = -1;
	int fd;

	*buf = NULL, *len = 0, *omitted = 0;
	fd = api_log_open(path, logs_dir, refused);
	if (*refused || (fd < 0 && errno == ENOENT))
		return 0;
	if (fd < 0 || fstat(fd, &sb) != 0)
		goto out;
	if (sb.st_size > LOG_MAX)
		start = sb.st_size - LOG_MAX;
	if (!(*buf = malloc((size_t)(sb.st_size - start) + 1)) ||
	    lseek(fd, start, SEEK_SET) < 0)
		goto out;
	got = read_upto(fd, *buf, (size_t)(sb.st_size - start));
out:
	if (got < 0) {
		char eb[128];
		fprintf(stderr, "pipewright: api: log %s: %s\n", path,
			strerror_r(errno, eb, sizeof eb));
		free(*buf);
		*buf = NULL;
	}
	if (fd >= 0)
		close(fd);
	*len = got > 0 ? (size_t)got : 0;
	*omitted = (long long)start;
	return got < 0 ? -1 : 0;
}

/*
 * Answers the log text (its tail, when it is over LOG_MAX), or 403 for a
 * log file that read_log refuses.
 */
static int reply_log(pw_req *req, const char *path)
{
	static const char type[] = "text/plain; charset=utf-8";
	const char *refused = NULL;
	char *buf = NULL, hdr[32];
	size_t len = 0;
	long long omitted = 0;
	int rc;

	if (!path)
		return pw_reply_raw(req, 200, type, "", 0) == 0 ? GO : FAILED;
	if (read_log(path, pw_req_project(req)->logs_dir, &buf, &len, &omitted, &refused) != 0)
		return FAILED;
	if (refused)
		return pw_reply_error(req, 403, "%s", refused) == 0 ? ANSWERED : FAILED;
	rc = GO;
	if (omitted > 0) {
		snprintf(hdr, sizeof hdr, "%lld", omitted);
		if (pw_reply_header(req, "X-Log-Omitted-Bytes", hdr) != 0)
			rc = FAILED;
	}
	if (rc == GO && pw_reply_raw(req, 200, type, buf ? buf : "", len) != 0)
		rc = FAILED;
	free(buf);
	return rc;
}

/*
 * ?follow= (true or false, default false) into *follow and ?offset= (a
 * byte offset >= 0; -1 when absent) into *offset. GO or ANSWERED (400).
 */
static int parse_follow(pw_req *req, bool *follow, long long *offset)
{
	const char *f = pw_req_query(req, "follow");
	const char *o = pw_req_query(req, "offset");
	char *end = NULL;

	*follow = f && !strcmp(f, "true");
	*offset = -1;
	if (f && !*follow && strcmp(f, "false")) {
		pw_reply_error(req, 400, "follow: expected true or false");
		return ANSWERED;
	}
	if (!o)
		return GO;
	errno = 0;
	*offset = strtoll(o, &end, 10);
	if (*o < '0' || *o > '9' || *end || errno) {
		pw_reply_error(req, 400, "offset: expected a byte offset, an integer >= 0");
		return ANSWERED;
	}
	if (!*follow) {
		pw_reply_error(req, 400, "offset: only with follow=true");
		return ANSWERED;
	}
	return GO;
}

int tasks_logs(pw_req *req)
{
	const char *task_id = NULL;
	char *path = NULL;
	long long pk = 0, offset = -1;
	int try_number = 0;
	bool follow = false;
	int rc = find_task(req, &pk, &task_id);

	if (rc == GO)
		rc = parse_try_number(req, &try_number);
	if (rc == GO)
		rc = parse_follow(req, &follow, &offset);
	if (rc == GO && follow && strcmp(pw_req_method(req), "HEAD"))
		return logs_follow(req, pk, task_id, try_number, offset);
	if (rc == GO)
		rc = find_log(req, pk, task_id, try_number, &path);
	if (rc == GO)
		rc = reply_log(req, path);
	free(path);
	return rc;
}
