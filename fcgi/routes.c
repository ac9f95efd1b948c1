/*
 * routes.c - the one table of pipewright.fcgi's routes: method, path
 * pattern, handler and the role a user needs. docs/openapi.yaml describes
 * every /api/v1 row (a test checks that).
 */
#include "api.h"

#define P PW_ROLE_PUBLIC
#define R PW_ROLE_READ
#define O PW_ROLE_OPERATE
#define A PW_ROLE_ADMIN

const pw_route pw_builtin_routes[] = {
	/* Kedro's HTTP server */
	{"GET", "/health", kedro_health, P},
	{"GET", "/snapshot", kedro_snapshot, R},
	{"POST", "/run", kedro_run, O},
	/* DAGs */
	{"GET", "/api/v1/dags", dags_list, R},
	{"GET", "/api/v1/dags/:dag_id", dags_get, R},
	{"PATCH", "/api/v1/dags/:dag_id", dags_patch, O},
	{"GET", "/api/v1/dags/:dag_id/stats", stats_dag, R},
	{"GET", "/api/v1/dags/:dag_id/source", dags_source, R},
	{"GET", "/api/v1/dags/:dag_id/graph", dags_graph, R},
	{"POST", "/api/v1/dags/:dag_id/backfills", backfills_create, O},
	{"GET", "/api/v1/import-errors", import_errors_list, R},
	/* runs ("~": of every DAG, before the rows it would match as a dag_id) */
	{"GET", "/api/v1/dags/~/runs", runs_list_all, R},
	{"GET", "/api/v1/dags/:dag_id/runs", runs_list, R},
	{"POST", "/api/v1/dags/:dag_id/runs", runs_trigger, O},
	{"GET", "/api/v1/dags/:dag_id/runs/:run_id", runs_get, R},
	{"DELETE", "/api/v1/dags/:dag_id/runs/:run_id", runs_cancel, O},
	{"PATCH", "/api/v1/dags/:dag_id/runs/:run_id", runs_patch, O},
	{"POST", "/api/v1/dags/:dag_id/runs/:run_id/retry", runs_retry, O},
	{"POST", "/api/v1/dags/:dag_id/runs/:run_id/clear", runs_clear, O},
	/* task instances */
	{"GET", "/api/v1/dags/:dag_id/runs/:run_id/tasks", tasks_list, R},
	{"GET", "/api/v1/dags/:dag_id/runs/:run_id/tasks/:task_id", tasks_get, R},
	{"PATCH", "/api/v1/dags/:dag_id/runs/:run_id/tasks/:task_id", tasks_mark, O},
	{"GET", "/api/v1/dags/:dag_id/runs/:run_id/tasks/:task_id/xcom", tasks_xcom, R},
	{"GET", "/api/v1/dags/:dag_id/runs/:run_id/tasks/:task_id/logs", tasks_logs, R},
	/* pools */
	{"GET", "/api/v1/pools", pools_list, R},
	{"POST", "/api/v1/pools", pools_create, A},
	{"GET", "/api/v1/pools/:name", pools_get, R},
	{"PATCH", "/api/v1/pools/:name", pools_patch, A},
	{"DELETE", "/api/v1/pools/:name", pools_delete, A},
	/* the system */
	{"GET", "/api/v1/metrics", stats_metrics, R},
	{"GET", "/api/v1/health", health_get, P},
	{"GET", "/api/v1/version", version_get, P},
	{"GET", "/api/v1/events", events_get, R},
	/* who the user is: answers 401 itself where settings.roles needs a user */
	{"GET", "/api/v1/me", me_get, P},
	/* Prometheus */
	{"GET", "/metrics", metrics_get, R},
};

const size_t pw_builtin_routes_count = sizeof pw_builtin_routes / sizeof *pw_builtin_routes;
