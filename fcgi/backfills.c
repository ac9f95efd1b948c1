/*
 * backfills.c - POST /api/v1/dags/:dag_id/backfills: one queued run of
 * type "backfill" per schedule tick t with from <= t <= to.
 *
 * Queued runs are intent, so the handler inserts them itself (as a
 * trigger does), in one transaction; the runner claims them in tick order
 * (they share queued_at, and row ids grow with the tick), at most
 * max_active_runs at a time: the body's value rides in each run's options
 * (the runner's claim reads it), else the DAG's. A tick that has a run
 * already (a scheduled or an earlier backfill run with that logical_date)
 * is left alone (reprocess "none"), retried when it failed ("failed"), or
 * cleared to run again whole when it has finished ("all").
 */
#include "api.h"
#include "states.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"

/* More ticks than this in one backfill is a 400. */
#define BACKFILL_MAX 10000

static const pw_field backfill_fields[] = {
	{"from", PW_F_STRING, true},
	{"to", PW_F_STRING, true},
	{"conf", PW_F_OBJECT, false},
	{"max_active_runs", PW_F_INT, false},
	{"reprocess", PW_F_STRING, false},
};

enum { REPROCESS_NONE, REPROCESS_FAILED, REPROCESS_ALL };
static const char *const reprocess_names[] = {"none", "failed", "all"};

/* A parsed body. */
typedef struct backfill {
	const pw_dag *dag;
	long long from, to;
	json_object *conf;     /* borrowed from the body, or NULL */
	json_object *options;  /* {"max_active_runs"} or {} */
	int max_active_runs;
	int reprocess;
	pw_cron cron;
} backfill;

static const char *str_field(json_object *o, const char *key)
{
	json_object *v = NULL;

	json_object_object_get_ex(o, key, &v);
	return v ? json_object_get_string(v) : NULL;
}

/* Reads and checks the body into b. GO, ANSWERED or FAILED. */
static int parse_body(pw_req *req, json_object *body, backfill *b)
{
	json_object *v = NULL;
	const char *reprocess = str_field(body, "reprocess");
	char err[256];

	if (pw_req_check_body(req, body, backfill_fields,
			      sizeof backfill_fields / sizeof *backfill_fields) != 0)
		return ANSWERED;
	if (pw_parse_iso(str_field(body, "from"), &b->from) != 0 ||
	    pw_parse_iso(str_field(body, "to"), &b->to) != 0) {
		pw_reply_error(req, 400, "from, to: expected ISO-8601 times");
		return ANSWERED;
	}
	if (b->from > b->to) {
		pw_reply_error(req, 400, "from must not be after to");
		return ANSWERED;
	}
	b->reprocess = -1;
	for (int i = 0; i < 3; i++)
		if (!reprocess || strcmp(reprocess, reprocess_names[i]) == 0) {
			b->reprocess = i;
			break;
		}
	if (b->reprocess < 0) {
		pw_reply_error(req, 400, "reprocess: expected none, failed or all");
		return ANSWERED;
	}
	b->max_active_runs = b->dag->max_active_runs;
	if (json_object_object_get_ex(body, "max_active_runs", &v) && v) {
		b->max_active_runs = json_object_get_int(v);
		if (b->max_active_runs < 1) {
			pw_reply_error(req, 400, "max_active_runs: expected an integer >= 1");
			return ANSWERED;
		}
		if (json_object_object_add(b->options, "max_active_runs",
					   json_object_new_int(b->max_active_runs)) != 0)
			return FAILED;
	}
	json_object_object_get_ex(body, "conf", &b->conf);
	if (!b->dag->schedule || pw_cron_parse(b->dag->schedule, &b->cron, err, sizeof err) != 0) {
		pw_reply_error(req, 400, "DAG '%s' has no schedule to backfill", b->dag->id);
		return ANSWERED;
	}
	return GO;
}

/* The first tick at or after ms (ms itself when it is one), or -1. */
static long long tick_from(const pw_cron *cron, long long ms)
{
	long long t = pw_cron_next(cron, (ms + 999) / 1000 - 1);

	return t < 0 ? -1 : t * 1000;
}

/* The run of the DAG for tick t: its run id (malloc'd) and state, or none. */
static int tick_run(pw_req *req, const backfill *b, long long t, char **run_id,
		    char **state)
{
	static const char sql[] =
		"SELECT run_id, state FROM runs WHERE dag_id = ?1 AND logical_date = ?2"
		" ORDER BY id LIMIT 1";
	sqlite3_stmt *st = pw_store_stmt(pw_req_store(req), sql);
	int rc = GO, step;

	*run_id = *state = NULL;
	if (!st)
		return FAILED;
	sqlite3_bind_text(st, 1, b->dag->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, t);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		*run_id = strdup((const char *)sqlite3_column_text(st, 0));
		*state = strdup((const char *)sqlite3_column_text(st, 1));
		if (!*run_id || !*state)
			rc = FAILED;
	} else if (step != SQLITE_DONE) {
		rc = api_db_error(req);
	}
	api_stmt_done(st);
	return rc;
}

/*
 * What reprocess does to the finished run of a tick: a command for the
 * runner, or nothing. Adds its id to done when it acted. GO or FAILED.
 */
static int reprocess_run(pw_req *req, const backfill *b, const char *run_id,
			 const char *state, json_object *done)
{
	const char *kind = NULL;
	int s = run_state_parse(state);

	if (b->reprocess == REPROCESS_FAILED && s == RUN_FAILED)
		kind = "retry";
	else if (b->reprocess == REPROCESS_ALL && s >= 0 && run_state_is_final((run_state)s))
		kind = s == RUN_SUCCESS ? "clear" : "retry";
	if (!kind)
		return GO;
	if (pw_store_command(pw_req_store(req), b->dag->id, run_id, kind, NULL) != PW_OK)
		return FAILED;
	return json_object_array_add(done, json_object_new_string(run_id)) == 0 ? GO : FAILED;
}

/* Queues tick t's run, or reprocesses the one it has; its object goes to runs. */
static int one_tick(pw_req *req, const backfill *b, long long t, json_object *runs,
		    json_object *reprocessed)
{
	char gen[48], *run_id = NULL, *state = NULL, *made = NULL;
	json_object *run = NULL;
	int rc = tick_run(req, b, t, &run_id, &state);

	if (rc == GO && run_id) {
		rc = reprocess_run(req, b, run_id, state, reprocessed);
	} else if (rc == GO) {
		memcpy(gen, "backfill__", 10);
		pw_format_run_id(t, gen + 10);
		pw_run_new nr = {
			.dag_id = b->dag->id, .run_id = gen, .run_type = "backfill",
			.conf = b->conf, .options = b->options,
			.triggered_by = pw_req_user(req), .logical_date = t,
		};
		int r = pw_store_insert_run(pw_req_store(req), &nr, &made);
		if (r == PW_OK)
			r = api_run_object(req, b->dag->id, gen, &run, NULL);
		if (r == PW_OK && json_object_array_add(runs, run) != 0) {
			json_object_put(run);
			r = PW_ERR;
		}
		/* a run id taken by a run of another tick: leave it */
		rc = r == PW_OK || r == PW_CONFLICT ? GO : FAILED;
	}
	free(made);
	free(run_id);
	free(state);
	return rc;
}

/* The answer's data: the backfill and what it made. NULL when out of memory. */
static json_object *answer(const backfill *b, json_object *runs, json_object *reprocessed)
{
	json_object *d = json_object_new_object();
	char from[32], to[32];

	pw_format_iso(b->from, from);
	pw_format_iso(b->to, to);
	if (!d || json_object_object_add(d, "dag_id", json_object_new_string(b->dag->id)) ||
	    json_object_object_add(d, "from", json_object_new_string(from)) ||
	    json_object_object_add(d, "to", json_object_new_string(to)) ||
	    json_object_object_add(d, "max_active_runs", json_object_new_int(b->max_active_runs)) ||
	    json_object_object_add(d, "reprocess",
				   json_object_new_string(reprocess_names[b->reprocess])) ||
	    json_object_object_add(d, "runs", json_object_get(runs)) ||
	    json_object_object_add(d, "reprocessed", json_object_get(reprocessed))) {
		json_object_put(d);
		return NULL;
	}
	return d;
}

int backfills_create(pw_req *req)
{
	const char *dag_id = pw_req_param(req, "dag_id");
	const pw_project *p = pw_req_project(req);
	backfill b = {.dag = dag_id && p ? pw_project_dag(p, dag_id) : NULL};
	json_object *body, *runs = NULL, *reprocessed = NULL, *data = NULL;
	pw_store *store = pw_req_store(req);
	int rc = GO, n = 0;

	if (!b.dag) {
		if (dag_id && pw_valid_dag_id(dag_id))
			return pw_reply_error(req, 404, "DAG '%s' not found", dag_id);
		return pw_reply_error(req, 404, "DAG not found");
	}
	if (!(body = pw_req_json(req)))
		return ANSWERED;
	if (!(b.options = json_object_new_object()))
		return FAILED;
	rc = parse_body(req, body, &b);
	for (long long t = rc == GO ? tick_from(&b.cron, b.from) : -1; t >= 0 && t <= b.to;
	     t = pw_cron_next(&b.cron, t / 1000) * 1000)
		if (++n > BACKFILL_MAX)
			break;
	if (rc == GO && (n == 0 || n > BACKFILL_MAX)) {
		pw_reply_error(req, 400, n ? "more than %d schedule ticks between from and to"
				  : "no schedule tick between from and to", BACKFILL_MAX);
		rc = ANSWERED;
	}
	if (rc == GO && (!(runs = json_object_new_array()) ||
			 !(reprocessed = json_object_new_array()) ||
			 pw_store_begin(store) != PW_OK))
		rc = FAILED;
	if (rc == GO) {
		for (long long t = tick_from(&b.cron, b.from); rc == GO && t >= 0 && t <= b.to;
		     t = pw_cron_next(&b.cron, t / 1000) * 1000)
			rc = one_tick(req, &b, t, runs, reprocessed);
		if (rc == GO && pw_store_commit(store) != PW_OK)
			rc = FAILED;
		if (rc != GO)
			pw_store_rollback(store);
	}
	if (rc == GO && !(data = answer(&b, runs, reprocessed)))
		rc = FAILED;
	if (rc == GO) {
		pw_store_wake(store);
		rc = pw_reply_data(req, 201, data, NULL) == 0 ? GO : FAILED;
	}
	json_object_put(runs);
	json_object_put(reprocessed);
	json_object_put(b.options);
	return rc;
}
