/*
 * health.c - GET /api/v1/health and GET /api/v1/version.
 *
 * Health: {status, database: {status, error?}, runner: {status,
 * last_heartbeat, pid, host}, uptime_s}.
 *   healthy     the database answers and the runner beat less than
 *               RUNNER_FRESH_MS ago (it beats every 2 s);
 *   degraded    the database answers, the runner is stale or absent (the
 *               API still works: reads answer, triggers queue);
 *   unhealthy   the database does not answer: HTTP 503, same body.
 * uptime_s is the age of this server process (0 for each plain CGI call).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "api.h"

/* A heartbeat younger than this means the runner is running. */
#define RUNNER_FRESH_MS 10000

/* CLOCK_MONOTONIC at process start, set before main (no first-use race). */
static struct timespec started;

__attribute__((constructor)) static void note_start(void)
{
	clock_gettime(CLOCK_MONOTONIC, &started);
}

/* Seconds since the process started. */
static long long uptime_s(void)
{
	struct timespec now;

	if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
		return 0;
	return (long long)(now.tv_sec - started.tv_sec);
}

/* Adds v under k; v NULL (out of memory) or a failed add is -1, v freed. */
static int put(json_object *o, const char *k, json_object *v)
{
	if (!v || json_object_object_add(o, k, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

static int put_str(json_object *o, const char *k, const char *s)
{
	return put(o, k, json_object_new_string(s));
}

/* The runner's row as read from the database. */
typedef struct runner_row {
	bool found;         /* a row with a heartbeat */
	long long pid;      /* 0: NULL */
	char host[256];     /* "" : NULL */
	long long heartbeat;
} runner_row;

/*
 * Reads the runner row. Returns PW_OK, or PW_ERR with the database's
 * message in err (errlen bytes): the database does not answer.
 */
static int runner_read(pw_req *req, runner_row *r, char *err, size_t errlen)
{
	static const char sql[] =
		"SELECT pid, host, last_heartbeat FROM runner"
		" WHERE id = 1 AND last_heartbeat IS NOT NULL";
	pw_store *store = pw_req_store(req);
	sqlite3_stmt *q = store ? pw_store_stmt(store, sql) : NULL;

	if (!q) {
		snprintf(err, errlen, "%s", store ? sqlite3_errmsg(pw_store_db(store))
						  : "the database cannot be opened");
		return PW_ERR;
	}
	int step = sqlite3_step(q);
	if (step == SQLITE_ROW) {
		const char *host = (const char *)sqlite3_column_text(q, 1);
		r->found = true;
		r->pid = sqlite3_column_int64(q, 0);
		snprintf(r->host, sizeof r->host, "%s", host ? host : "");
		r->heartbeat = sqlite3_column_int64(q, 2);
	} else if (step != SQLITE_DONE) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(pw_store_db(store)));
	}
	sqlite3_reset(q);
	return step == SQLITE_ROW || step == SQLITE_DONE ? PW_OK : PW_ERR;
}

/* {status: "ok"} or {status: "error", error}; NULL when out of memory. */
static json_object *database_object(int db_rc, const char *err)
{
	json_object *o = json_object_new_object();

	if (o && (put_str(o, "status", db_rc == PW_OK ? "ok" : "error") ||
		  (db_rc != PW_OK && put_str(o, "error", err)))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* The runner's status word for r, seen at now (ms). */
static const char *runner_status(const runner_row *r, long long now)
{
	if (!r->found)
		return "absent";
	return now - r->heartbeat < RUNNER_FRESH_MS ? "running" : "stale";
}

static int put_null(json_object *o, const char *k)
{
	return json_object_object_add(o, k, NULL) != 0 ? -1 : 0;
}

/*
 * {status, last_heartbeat (ISO or null), pid (or null), host (when
 * known)}; NULL when out of memory.
 */
static json_object *runner_object(const runner_row *r, long long now)
{
	json_object *o = json_object_new_object();
	char iso[32];

	if (!o)
		return NULL;
	pw_format_iso(r->heartbeat, iso);
	if (put_str(o, "status", runner_status(r, now)) ||
	    (r->found ? put_str(o, "last_heartbeat", iso)
		      : put_null(o, "last_heartbeat")) ||
	    (r->pid > 0 ? put(o, "pid", json_object_new_int64(r->pid))
			: put_null(o, "pid")) ||
	    (r->host[0] && put_str(o, "host", r->host))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int health_get(pw_req *req)
{
	runner_row r = {0};
	char err[512] = "";
	long long now = pw_now_ms();
	int db_rc = runner_read(req, &r, err, sizeof err);
	const char *status = db_rc != PW_OK ? "unhealthy"
			     : strcmp(runner_status(&r, now), "running") == 0 ? "healthy"
			     : "degraded";
	json_object *o = json_object_new_object();

	if (!o || put_str(o, "status", status) ||
	    put(o, "database", database_object(db_rc, err)) ||
	    put(o, "runner", runner_object(&r, now)) ||
	    put(o, "uptime_s", json_object_new_int64(uptime_s()))) {
		json_object_put(o);
		return -1;
	}
	return pw_reply_data(req, db_rc == PW_OK ? 200 : 503, o, NULL);
}

int version_get(pw_req *req)
{
	json_object *o = json_object_new_object();

	if (!o || put_str(o, "version", PACKAGE_VERSION) ||
	    put_str(o, "api_version", "v1")) {
		json_object_put(o);
		return -1;
	}
	return pw_reply_data(req, 200, o, NULL);
}
