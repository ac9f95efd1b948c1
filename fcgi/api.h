/*
 * api.h - what the resource files of pipewright.fcgi share: their handlers
 * (one file per resource, reached from the table in routes.c) and the
 * helpers that shape the objects several of them return.
 */
#ifndef PW_API_H
#define PW_API_H

#include "pwserver.h"

/* dags.c */
int dags_list(pw_req *req);
int dags_get(pw_req *req);
int dags_patch(pw_req *req);
int import_errors_list(pw_req *req);

/* runs.c */
int runs_list(pw_req *req);
int runs_trigger(pw_req *req);
int runs_get(pw_req *req);
int runs_cancel(pw_req *req);
int runs_retry(pw_req *req);

/* tasks.c */
int tasks_list(pw_req *req);
int tasks_get(pw_req *req);
int tasks_xcom(pw_req *req);
int tasks_logs(pw_req *req);

/* stats.c */
int stats_dag(pw_req *req);
int stats_metrics(pw_req *req);

/* health.c */
int health_get(pw_req *req);
int version_get(pw_req *req);

/* pools.c */
int pools_list(pw_req *req);
int pools_create(pw_req *req);
int pools_patch(pw_req *req);
int pools_delete(pw_req *req);

/* events.c */
int events_get(pw_req *req);

/* kedro.c */
int kedro_health(pw_req *req);
int kedro_snapshot(pw_req *req);
int kedro_run(pw_req *req);

/* --- shared helpers (objects.c) ------------------------------------------- */

/* What a helper of a handler did: all fine, answered the request, failed. */
enum { GO = 0, ANSWERED = 1, FAILED = PW_ERR };

/* Logs the request's SQLite connection error. Returns PW_ERR (FAILED). */
int api_db_error(pw_req *req);
/* Resets a statement and clears its bindings, for its next user. */
void api_stmt_done(sqlite3_stmt *st);

/* A list's meta: {"total", "limit", "offset"}; NULL when out of memory. */
json_object *api_page_meta(long long total, int limit, long long offset);

/* ISO-8601 string of ms since the epoch, or JSON null when ms <= 0. */
json_object *api_time(long long ms);

/*
 * The run with this DAG and run id as its API object (run_id, dag_id,
 * state, run_type, conf, queued_at, started_at, ended_at, duration_ms,
 * triggered_by, ...), or NULL. *pk gets its row id when pk is non-NULL.
 * Returns 0 (found), PW_NOTFOUND or PW_ERR.
 */
int api_run_object(pw_req *req, const char *dag_id, const char *run_id,
		   json_object **out, long long *pk);

/*
 * Whether a DAG id is known to the API: a DAG of the project, or a
 * pipeline name that has runs ("__default__", "a+b" from POST /run).
 * Answers 404 itself and returns false otherwise.
 */
bool api_dag_exists_or_404(pw_req *req, const char *dag_id);

/*
 * The task instances of a run as a list of objects (task_id, state,
 * try_number, max_tries, pool, pool_slots, started_at, ended_at,
 * duration_ms, exit_code, next_try_at), in the order the runner created
 * them. task_id non-NULL keeps only that task (the list is then empty or
 * holds one object). limit < 0 means no limit. Returns PW_OK or PW_ERR.
 */
int api_task_instances(pw_req *req, long long run_pk, const char *task_id,
		       int limit, long long offset, json_object **out);

#endif
