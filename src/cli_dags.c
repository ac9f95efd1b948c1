/*
 * cli_dags.c - the DAG commands: validate, dags [list|show], pause,
 * unpause. Each is one or two API requests (cli.h) and a printout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "project.h"

/* GET path into *a; prints why and returns non-zero unless 200. */
static int get_ok(cli_backend *b, const char *path, cli_answer *a, const char *what)
{
	if (cli_request(b, "GET", path, NULL, a) == 200 && cli_data(a))
		return CLI_OK;
	return cli_fail(a, what);
}

/* Prints one warning as file:line: type: message on stderr. */
static void print_warning(const char *file, int line, const char *type, const char *message)
{
	fprintf(stderr, "%s:%d: %s: %s\n", file, line, type ? type : "ValueError", message);
}

/*
 * Prints the warnings of every DAG (free inputs that neither the catalog
 * nor the parameters define) on stderr; returns how many there were.
 * Local: from the project's files (validate needs no database); --url:
 * GET /api/v1/dags/:dag_id's warnings.
 */
static size_t print_warnings(cli_backend *b, const cli_opts *o)
{
	size_t count = 0;
	if (cli_backend_is_local(b)) {
		pw_project *p = NULL;
		char *err = NULL;
		if (pw_project_load(&o->project, &p, &err) == PW_OK)
			for (size_t d = 0; d < p->n_dags; d++)
				for (size_t i = 0; i < p->dags[d]->warnings.n; i++, count++) {
					const pw_error *e = &p->dags[d]->warnings.v[i];
					print_warning(e->file, e->line, e->type, e->message);
				}
		free(err);
		pw_project_free(p);
		return count;
	}
	cli_answer dags = {0};
	if (cli_request(b, "GET", "/api/v1/dags?limit=1000", NULL, &dags) != 200)
		goto out;
	json_object *list = cli_data(&dags);
	for (size_t i = 0; i < cli_len(list); i++) {
		cli_answer one = {0};
		char *path = cli_path("/api/v1/dags/%s",
				      cli_str(json_object_array_get_idx(list, i), "dag_id"));
		json_object *w = NULL;
		if (path && cli_request(b, "GET", path, NULL, &one) == 200 &&
		    json_object_object_get_ex(cli_data(&one), "warnings", &w)) {
			for (size_t k = 0; k < cli_len(w); k++, count++) {
				json_object *e = json_object_array_get_idx(w, k), *line = NULL;
				json_object_object_get_ex(e, "line", &line);
				print_warning(cli_str(e, "file"), line ? json_object_get_int(line) : 0,
					      strcmp(cli_str(e, "type"), "-") ? cli_str(e, "type") : NULL,
					      cli_str(e, "message"));
			}
		}
		free(path);
		cli_answer_free(&one);
	}
out:
	cli_answer_free(&dags);
	return count;
}

/*
 * validate: GET /api/v1/import-errors (the configuration error first,
 * then each DAG file that failed) and GET /snapshot for the summary.
 */
int cli_validate(cli_backend *b, const cli_opts *o)
{
	cli_answer errs = {0}, snap = {0};
	if (o->n_args)
		return cli_error(CLI_USAGE, "validate takes no arguments");
	int rc = get_ok(b, "/api/v1/import-errors?limit=1000", &errs, "cannot list import errors");
	if (rc != CLI_OK)
		goto out;
	json_object *list = cli_data(&errs);
	size_t n = cli_len(list);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(list, i), *line = NULL;
		const char *file = cli_str(e, "file");
		json_object_object_get_ex(e, "line", &line);
		if (strcmp(file, "-") == 0)
			fprintf(stderr, "conf: %s: %s\n", cli_str(e, "type"), cli_str(e, "message"));
		else if (line)
			fprintf(stderr, "%s:%d: %s\n", file, json_object_get_int(line),
				cli_str(e, "message"));
		else
			fprintf(stderr, "%s: %s\n", file, cli_str(e, "message"));
	}
	n += print_warnings(b, o);
	rc = n ? CLI_FAIL : CLI_OK;
	if (o->json) {
		cli_print_data(&errs);
		goto out;
	}
	cli_request(b, "GET", "/snapshot", NULL, &snap);
	json_object *meta = NULL, *pipes = NULL, *ds = NULL, *params = NULL;
	json_object_object_get_ex(snap.json, "metadata", &meta);
	json_object_object_get_ex(snap.json, "pipelines", &pipes);
	json_object_object_get_ex(snap.json, "datasets", &ds);
	json_object_object_get_ex(snap.json, "parameters", &params);
	const char *name = meta ? cli_str(meta, "project_name") : "the project";
	if (n) {
		printf("%s: %zu problem%s\n", name, n, n == 1 ? "" : "s");
	} else {
		size_t dags = pipes ? cli_len(pipes) : 0, tasks = 0;
		for (size_t i = 1; i < dags; i++) {   /* [0] is __default__ */
			json_object *nodes = NULL;
			json_object_object_get_ex(json_object_array_get_idx(pipes, i), "nodes", &nodes);
			tasks += cli_len(nodes);
		}
		printf("%s: %zu DAGs, %zu tasks, %zu datasets, %zu parameters: OK\n", name,
		       dags ? dags - 1 : 0, tasks, ds ? (size_t)json_object_object_length(ds) : 0,
		       params ? cli_len(params) : 0);
	}
out:
	cli_answer_free(&errs);
	cli_answer_free(&snap);
	return rc;
}

static int dags_list(cli_backend *b, const cli_opts *o)
{
	cli_answer a = {0};
	int rc = get_ok(b, "/api/v1/dags?limit=1000", &a, "cannot list the DAGs");
	if (rc == CLI_OK && o->json) {
		cli_print_data(&a);
	} else if (rc == CLI_OK) {
		json_object *list = cli_data(&a);
		printf("%-28s %-14s %-6s %-5s %s\n", "DAG", "SCHEDULE", "PAUSED", "TASKS", "TAGS");
		for (size_t i = 0; i < cli_len(list); i++) {
			json_object *d = json_object_array_get_idx(list, i), *tags = NULL;
			json_object_object_get_ex(d, "tags", &tags);
			printf("%-28s %-14s %-6s %-5s ", cli_str(d, "dag_id"), cli_str(d, "schedule"),
			       cli_str(d, "is_paused"), cli_str(d, "task_count"));
			for (size_t t = 0; t < cli_len(tags); t++)
				printf("%s%s", t ? "," : "",
				       json_object_get_string(json_object_array_get_idx(tags, t)));
			printf("\n");
		}
	}
	cli_answer_free(&a);
	return rc;
}

/* dags show DAG --format dot|svg: the graph endpoint's text as is. */
static int dags_graph(cli_backend *b, const cli_opts *o, const char *dag)
{
	cli_answer a = {0};
	char *path = cli_path(strcmp(o->format, "dot") == 0 ? "/api/v1/dags/%s/graph?format=dot"
				    : "/api/v1/dags/%s/graph", dag);
	int rc = CLI_OK;
	if (cli_request(b, "GET", path, NULL, &a) == 200)
		fwrite(a.body, 1, a.len, stdout);
	else if (cli_no_endpoint(&a))
		rc = cli_error(CLI_FAIL, "dags show --format %s is not available in this build "
			       "(no graph endpoint); use --format text", o->format);
	else
		rc = cli_fail(&a, "cannot draw the DAG");
	cli_answer_free(&a);
	free(path);
	return rc;
}

static int dags_show(cli_backend *b, const cli_opts *o, const char *dag)
{
	cli_answer a = {0};
	if (o->format && strcmp(o->format, "text") != 0) {
		if (strcmp(o->format, "dot") != 0 && strcmp(o->format, "svg") != 0)
			return cli_error(CLI_USAGE, "--format is text, dot or svg, not '%s'", o->format);
		return dags_graph(b, o, dag);
	}
	char *path = cli_path("/api/v1/dags/%s", dag);
	int rc = get_ok(b, path, &a, "cannot show the DAG");
	free(path);
	if (rc == CLI_OK && o->json) {
		cli_print_data(&a);
	} else if (rc == CLI_OK) {
		json_object *d = cli_data(&a), *tasks = NULL;
		printf("%s  (%s; schedule %s%s)\n", cli_str(d, "dag_id"), cli_str(d, "file"),
		       cli_str(d, "schedule"),
		       json_object_get_boolean(json_object_object_get(d, "is_paused")) ? "; paused" : "");
		if (strcmp(cli_str(d, "description"), "-") != 0)
			printf("  %s\n", cli_str(d, "description"));
		json_object_object_get_ex(d, "tasks", &tasks);
		for (size_t i = 0; i < cli_len(tasks); i++) {
			json_object *t = json_object_array_get_idx(tasks, i), *up = NULL;
			json_object_object_get_ex(t, "upstream", &up);
			printf("    %-28s", cli_str(t, "task_id"));
			for (size_t u = 0; u < cli_len(up); u++)
				printf("%s%s", u ? ", " : "<- ",
				       json_object_get_string(json_object_array_get_idx(up, u)));
			printf("\n");
		}
	}
	cli_answer_free(&a);
	return rc;
}

/* dags, dags list: the list; dags show DAG: one DAG. */
int cli_dags(cli_backend *b, const cli_opts *o)
{
	const char *sub = o->n_args ? o->args[0] : "list";
	if (strcmp(sub, "list") == 0 && o->n_args <= 1 && !o->format)
		return dags_list(b, o);
	if (strcmp(sub, "show") == 0 && o->n_args == 2)
		return dags_show(b, o, o->args[1]);
	return cli_error(CLI_USAGE, "usage: pipewright dags [list | show DAG [--format text|dot|svg]]");
}

/* PATCH /api/v1/dags/DAG {"is_paused": paused}. */
static int set_paused(cli_backend *b, const cli_opts *o, bool paused)
{
	if (o->n_args != 1)
		return cli_error(CLI_USAGE, "usage: pipewright %s DAG", paused ? "pause" : "unpause");
	cli_answer a = {0};
	json_object *body = json_object_new_object();
	char *path = cli_path("/api/v1/dags/%s", o->args[0]);
	json_object_object_add(body, "is_paused", json_object_new_boolean(paused));
	int rc = CLI_OK;
	if (cli_request(b, "PATCH", path, body, &a) != 200)
		rc = cli_fail(&a, paused ? "cannot pause" : "cannot unpause");
	else if (o->json)
		cli_print_data(&a);
	else
		printf("%s is %s\n", o->args[0], paused ? "paused" : "unpaused");
	cli_answer_free(&a);
	json_object_put(body);
	free(path);
	return rc;
}

int cli_pause(cli_backend *b, const cli_opts *o)
{
	return set_paused(b, o, true);
}

int cli_unpause(cli_backend *b, const cli_opts *o)
{
	return set_paused(b, o, false);
}
