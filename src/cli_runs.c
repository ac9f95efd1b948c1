/*
 * cli_runs.c - the run commands: trigger, runs [show], cancel, retry,
 * clear, logs. Each is the API request of DESIGN.md section 5 and a
 * printout; cancel, retry and clear end once the request is recorded (the
 * runner acts on it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "jsonnum.h"

/* Adds a list option to a request body ("a,b" -> ["a", "b"]). */
static void add_list(json_object *body, const char *key, const char *csv)
{
	json_object *l = cli_list(csv);
	if (l)
		json_object_object_add(body, key, l);
}

/* Prints one run as a table line. */
static void run_line(json_object *r)
{
	printf("%-20s %-26s %-10s %-9s %-24s %s\n", cli_str(r, "dag_id"), cli_str(r, "run_id"),
	       cli_str(r, "state"), cli_str(r, "run_type"), cli_str(r, "queued_at"),
	       cli_str(r, "duration_ms"));
}

int cli_trigger(cli_backend *b, const cli_opts *o)
{
	if (o->n_args != 1)
		return cli_error(CLI_USAGE, "usage: pipewright trigger DAG [--conf JSON] [--run-id ID]");
	json_object *conf = NULL, *body = json_object_new_object();
	cli_answer a = {0};
	int rc = CLI_OK;
	if (o->conf && !json_object_is_type(conf = pw_json_parse_exact(o->conf), json_type_object)) {
		json_object_put(conf);
		json_object_put(body);
		return cli_error(CLI_USAGE, "--conf must be a JSON object, e.g. '{\"n\": 3}'");
	}
	if (conf)
		json_object_object_add(body, "conf", conf);
	if (o->run_id)
		json_object_object_add(body, "run_id", json_object_new_string(o->run_id));
	add_list(body, "tags", o->tags);
	add_list(body, "task_ids", o->nodes);
	add_list(body, "from_tasks", o->from_nodes);
	add_list(body, "to_tasks", o->to_nodes);
	add_list(body, "from_inputs", o->from_inputs);
	add_list(body, "to_outputs", o->to_outputs);
	if (o->only_missing)
		json_object_object_add(body, "only_missing_outputs", json_object_new_boolean(1));
	char *path = cli_path("/api/v1/dags/%s/runs", o->args[0]);
	if (cli_request(b, "POST", path, body, &a) != 201)
		rc = cli_fail(&a, "cannot trigger");
	else if (o->json)
		cli_print_data(&a);
	else
		printf("%s\n", cli_str(cli_data(&a), "run_id"));
	cli_answer_free(&a);
	json_object_put(body);
	free(path);
	return rc;
}

/* runs show DAG RUN: the run and its task instances. */
static int runs_show(cli_backend *b, const cli_opts *o)
{
	cli_answer a = {0};
	char *path = cli_path("/api/v1/dags/%s/runs/%s", o->args[1], o->args[2]);
	int rc = CLI_OK;
	if (cli_request(b, "GET", path, NULL, &a) != 200 || !cli_data(&a)) {
		rc = cli_fail(&a, "cannot show the run");
	} else if (o->json) {
		cli_print_data(&a);
	} else {
		json_object *r = cli_data(&a), *tis = NULL, *err = NULL;
		printf("%s %s: %s (%s, queued %s, started %s, ended %s, %s ms)\n",
		       cli_str(r, "dag_id"), cli_str(r, "run_id"), cli_str(r, "state"),
		       cli_str(r, "run_type"), cli_str(r, "queued_at"), cli_str(r, "started_at"),
		       cli_str(r, "ended_at"), cli_str(r, "duration_ms"));
		if (json_object_object_get_ex(r, "error", &err) && err)
			printf("error: %s: %s\n", cli_str(err, "type"), cli_str(err, "message"));
		json_object_object_get_ex(r, "task_instances", &tis);
		printf("  %-28s %-16s %-4s %-9s %s\n", "TASK", "STATE", "TRY", "EXIT", "DURATION_MS");
		for (size_t i = 0; i < cli_len(tis); i++) {
			json_object *t = json_object_array_get_idx(tis, i);
			printf("  %-28s %-16s %-4s %-9s %s\n", cli_str(t, "task_id"),
			       cli_str(t, "state"), cli_str(t, "try_number"), cli_str(t, "exit_code"),
			       cli_str(t, "duration_ms"));
		}
	}
	cli_answer_free(&a);
	free(path);
	return rc;
}

/* Newest first by queued_at (ISO-8601 UTC sorts as text). */
static int by_queued_desc(const void *x, const void *y)
{
	json_object *const *a = x, *const *b = y;
	return -strcmp(cli_str(*a, "queued_at"), cli_str(*b, "queued_at"));
}

/*
 * The runs of every DAG from the per-DAG lists, for a server without
 * GET /api/v1/dags/~/runs: each DAG's newest `limit`, merged. A new
 * array, or NULL after saying why (*rc: the exit code).
 */
static json_object *runs_of_every_dag(cli_backend *b, const char *query, long limit, int *rc)
{
	cli_answer dags = {0};
	json_object *all = NULL;
	if (cli_request(b, "GET", "/api/v1/dags?limit=1000", NULL, &dags) != 200 || !cli_data(&dags)) {
		*rc = cli_fail(&dags, "cannot list the DAGs");
		goto out;
	}
	all = json_object_new_array();
	for (size_t i = 0; all && i < cli_len(cli_data(&dags)); i++) {
		const char *id = cli_str(json_object_array_get_idx(cli_data(&dags), i), "dag_id");
		char *base = cli_path("/api/v1/dags/%s/runs", id);
		char *path = base ? pw_asprintf("%s?%s", base, query) : NULL;
		cli_answer a = {0};
		if (cli_request(b, "GET", path, NULL, &a) != 200 || !cli_data(&a)) {
			*rc = cli_fail(&a, "cannot list runs");
			json_object_put(all);
			all = NULL;
		}
		for (size_t k = 0; all && k < cli_len(cli_data(&a)); k++)
			json_object_array_add(all, json_object_get(json_object_array_get_idx(cli_data(&a), k)));
		cli_answer_free(&a);
		free(base);
		free(path);
	}
	if (all) {
		json_object_array_sort(all, by_queued_desc);
		size_t n = cli_len(all);
		if (n > (size_t)limit)
			json_object_array_del_idx(all, (size_t)limit, n - (size_t)limit);
	}
out:
	cli_answer_free(&dags);
	return all;
}

/* runs [DAG] [--state S] [--limit N]: newest first (default 20). */
int cli_runs(cli_backend *b, const cli_opts *o)
{
	if (o->n_args == 3 && strcmp(o->args[0], "show") == 0)
		return runs_show(b, o);
	if (o->n_args > 1 || (o->n_args == 1 && strcmp(o->args[0], "show") == 0))
		return cli_error(CLI_USAGE, "usage: pipewright runs [DAG] [--state S] [--limit N] | "
				 "runs show DAG RUN");
	long limit = o->limit >= 0 ? o->limit : 20;
	char *base = o->n_args ? cli_path("/api/v1/dags/%s/runs", o->args[0])
			       : strdup("/api/v1/dags/~/runs");
	char *state = o->state ? cli_escape(o->state) : NULL;
	char *query = pw_asprintf("order_by=-queued_at&limit=%ld%s%s", limit,
				  state ? "&state=" : "", state ? state : "");
	char *path = base && query ? pw_asprintf("%s?%s", base, query) : NULL;
	cli_answer a = {0};
	json_object *list = NULL, *merged = NULL;
	int rc = CLI_OK;
	if (cli_request(b, "GET", path, NULL, &a) == 200 && cli_data(&a)) {
		list = cli_data(&a);
	} else if (a.status == 404 && !o->n_args && query) {
		list = merged = runs_of_every_dag(b, query, limit, &rc);   /* an older server */
	} else {
		rc = cli_fail(&a, "cannot list runs");
	}
	if (rc == CLI_OK && o->json) {
		if (merged)
			cli_print_json(merged);
		else
			cli_print_data(&a);
	} else if (rc == CLI_OK) {
		printf("%-20s %-26s %-10s %-9s %-24s %s\n", "DAG", "RUN", "STATE", "TYPE",
		       "QUEUED_AT", "DURATION_MS");
		for (size_t i = 0; i < cli_len(list); i++)
			run_line(json_object_array_get_idx(list, i));
	}
	json_object_put(merged);
	cli_answer_free(&a);
	free(base);
	free(state);
	free(query);
	free(path);
	return rc;
}

/* cancel and retry: one request that answers 202 with the run. */
static int run_request(cli_backend *b, const cli_opts *o, const char *method, const char *fmt,
		       const char *verb)
{
	if (o->n_args != 2)
		return cli_error(CLI_USAGE, "usage: pipewright %s DAG RUN", verb);
	cli_answer a = {0};
	char *path = cli_path(fmt, o->args[0], o->args[1]);
	int rc = CLI_OK;
	if (cli_request(b, method, path, NULL, &a) != 202)
		rc = cli_fail(&a, strcmp(verb, "cancel") == 0 ? "cannot cancel" : "cannot retry");
	else if (o->json)
		cli_print_data(&a);
	else
		printf("%s %s: %s requested (the runner acts on it)\n", o->args[0], o->args[1], verb);
	cli_answer_free(&a);
	free(path);
	return rc;
}

int cli_cancel(cli_backend *b, const cli_opts *o)
{
	return run_request(b, o, "DELETE", "/api/v1/dags/%s/runs/%s", "cancel");
}

int cli_retry(cli_backend *b, const cli_opts *o)
{
	return run_request(b, o, "POST", "/api/v1/dags/%s/runs/%s/retry", "retry");
}

/* clear DAG RUN [TASK...]: POST .../clear; prints the cleared task ids. */
int cli_clear(cli_backend *b, const cli_opts *o)
{
	if (o->n_args < 2)
		return cli_error(CLI_USAGE, "usage: pipewright clear DAG RUN [TASK...] [--downstream]");
	json_object *body = json_object_new_object(), *ids = NULL;
	if (o->n_args > 2) {
		ids = json_object_new_array();
		for (size_t i = 2; i < o->n_args; i++)
			json_object_array_add(ids, json_object_new_string(o->args[i]));
		json_object_object_add(body, "task_ids", ids);
	}
	if (o->downstream)
		json_object_object_add(body, "include_downstream", json_object_new_boolean(1));
	if (o->upstream)
		json_object_object_add(body, "include_upstream", json_object_new_boolean(1));
	if (o->only_failed)
		json_object_object_add(body, "only_failed", json_object_new_boolean(1));
	if (o->dry_run)
		json_object_object_add(body, "dry_run", json_object_new_boolean(1));
	char *path = cli_path("/api/v1/dags/%s/runs/%s/clear", o->args[0], o->args[1]);
	cli_answer a = {0};
	int rc = CLI_OK, st = cli_request(b, "POST", path, body, &a);
	if (st != (o->dry_run ? 200 : 202)) {
		rc = cli_fail(&a, "cannot clear");
	} else if (o->json) {
		cli_print_data(&a);
	} else {
		json_object *l = NULL;
		json_object_object_get_ex(cli_data(&a), "task_ids", &l);
		printf("%s %zu task%s:", o->dry_run ? "would clear" : "cleared",
		       cli_len(l), cli_len(l) == 1 ? "" : "s");
		for (size_t i = 0; i < cli_len(l); i++)
			printf(" %s", json_object_get_string(json_object_array_get_idx(l, i)));
		printf("\n");
	}
	cli_answer_free(&a);
	json_object_put(body);
	free(path);
	return rc;
}

/* --- logs --------------------------------------------------------------------------- */

/* The task's state and latest try. Returns 200 or the failing answer's code. */
static int task_state(cli_backend *b, const cli_opts *o, char **state, long *try_number,
		      cli_answer *fail)
{
	char *path = cli_path("/api/v1/dags/%s/runs/%s/tasks/%s", o->args[0], o->args[1],
			      o->args[2]);
	int st = cli_request(b, "GET", path, NULL, fail);
	free(path);
	if (st != 200 || !cli_data(fail))
		return st;
	json_object *t = cli_data(fail);
	free(*state);
	*state = strdup(cli_str(t, "state"));
	*try_number = json_object_get_int(json_object_object_get(t, "try_number"));
	cli_answer_free(fail);
	return 200;
}

/* The log of try tn into *a. Returns the status. */
static int fetch_log(cli_backend *b, const cli_opts *o, long tn, cli_answer *a)
{
	char *base = cli_path("/api/v1/dags/%s/runs/%s/tasks/%s/logs", o->args[0], o->args[1],
			      o->args[2]);
	char *path = base && tn > 0 ? pw_asprintf("%s?try_number=%ld", base, tn) : base;
	int st = cli_request(b, "GET", path, NULL, a);
	if (path != base)
		free(path);
	free(base);
	return st;
}

/*
 * logs --follow: prints the try's log so far, then what is appended,
 * polling every 300 ms, until the try has ended (the task is no longer
 * running that try) and the last bytes are out; or until interrupted.
 */
static int follow_log(cli_backend *b, const cli_opts *o)
{
	char *state = NULL;
	long tn = o->try_number > 0 ? o->try_number : 0, latest = 0;
	size_t printed = 0;
	int rc = CLI_OK;
	for (;;) {
		cli_answer a = {0};
		if (task_state(b, o, &state, &latest, &a) != 200) {
			rc = cli_fail(&a, "cannot follow the log");
			cli_answer_free(&a);
			break;
		}
		if (tn == 0)
			tn = latest;   /* 0: not started yet */
		bool ended = tn > 0 && !(strcmp(state, "running") == 0 && latest == tn);
		if (tn > 0 && fetch_log(b, o, tn, &a) == 200 && a.len > printed) {
			fwrite(a.body + printed, 1, a.len - printed, stdout);
			fflush(stdout);
			printed = a.len;
		}
		cli_answer_free(&a);
		if (ended || cli_interrupted)
			break;
		nanosleep(&(struct timespec){0, 300 * 1000 * 1000}, NULL);
	}
	free(state);
	return rc;
}

int cli_logs(cli_backend *b, const cli_opts *o)
{
	if (o->n_args != 3)
		return cli_error(CLI_USAGE, "usage: pipewright logs DAG RUN TASK [--try N] [--follow]");
	if (o->follow)
		return follow_log(b, o);
	cli_answer a = {0};
	int rc = CLI_OK;
	if (fetch_log(b, o, o->try_number, &a) != 200)
		rc = cli_fail(&a, "cannot read the log");
	else if (o->json) {
		json_object *text = json_object_new_string_len(a.body, (int)a.len);
		cli_print_json(text);
		json_object_put(text);
	}
	else
		fwrite(a.body, 1, a.len, stdout);
	cli_answer_free(&a);
	return rc;
}
