/*
 * pipelines.c - pipewright's server with one route of our own beside the
 * built-in ones, as in Kedro's "Extending the server": GET /pipelines
 * lists the pipelines of the project (PIPEWRIGHT_PROJECT_PATH).
 */
#include <pwserver.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GET /pipelines: {"data": {"pipelines": ["__default__", DAG ids...]}, "meta": {}} */
static int list_pipelines(pw_req *req)
{
	const pw_project *p = pw_req_project(req);
	json_object *names = json_object_new_array(), *data = json_object_new_object();
	int rc = names && data ? json_object_array_add(names, json_object_new_string("__default__")) : -1;
	for (size_t i = 0; rc == 0 && i < p->n_dags; i++)
		if (strcmp(p->dags[i]->id, "__default__") != 0)
			rc = json_object_array_add(names, json_object_new_string(p->dags[i]->id));
	if (rc == 0 && json_object_object_add(data, "pipelines", names) == 0)
		return pw_reply_data(req, 200, data, NULL);
	json_object_put(names);
	json_object_put(data);
	return -1;
}

static const pw_route routes[] = {
	{"GET", "/pipelines", list_pipelines, PW_ROLE_READ},
};

int main(void)
{
	pw_project_opts opts = {0};   /* all from PIPEWRIGHT_* variables */
	pw_server_config cfg = {0};   /* fd 0 from the web server, or one CGI request */
	char *err = NULL;
	pw_server *srv = pw_server_new(&opts, &err);
	if (!srv) {
		fprintf(stderr, "pipelines: %s\n", err ? err : "out of memory");
		free(err);
		return 1;
	}
	int rc = pw_server_add_routes(srv, routes, sizeof routes / sizeof *routes);
	if (rc == 0)
		rc = pw_server_run(srv, &cfg);
	pw_server_free(srv);
	return rc == 0 ? 0 : 1;
}
