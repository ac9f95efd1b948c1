/*
 * cli_system.c - events [--follow], pools [list|set|delete], version, and
 * cli_follow_events, which `events` and `run` share.
 *
 * Events are read as JSON pages of GET /api/v1/events?after_id=N, which
 * work on every backend and every host (also CGI-only ones); following
 * asks for the next page every 250 ms while there is nothing new (the
 * local backend's query is gated on nothing but an indexed id range).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "cli.h"

#define FOLLOW_MS 250

int cli_follow_events(cli_backend *b, const char *query, long long *after, bool follow,
		      cli_event_fn fn, void *ctx)
{
	for (;;) {
		cli_answer a = {0};
		char *path = pw_asprintf("/api/v1/events?limit=1000&after_id=%lld%s%s", *after,
					 query && *query ? "&" : "", query ? query : "");
		if (cli_request(b, "GET", path, NULL, &a) != 200 || !cli_data(&a)) {
			int rc = cli_fail(&a, "cannot read events");
			cli_answer_free(&a);
			free(path);
			return rc;
		}
		free(path);
		json_object *list = cli_data(&a), *meta = NULL;
		size_t n = cli_len(list);
		int rc = 0;
		for (size_t i = 0; i < n && rc == 0; i++) {
			json_object *e = json_object_array_get_idx(list, i);
			*after = json_object_get_int64(json_object_object_get(e, "id"));
			rc = fn(ctx, e);
		}
		if (json_object_object_get_ex(a.json, "meta", &meta) && rc == 0 &&
		    json_object_get_boolean(json_object_object_get(meta, "missed")))
			cli_error(0, "events after %lld were pruned before they could be read", *after);
		if (json_object_object_get_ex(meta, "last_id", &meta) && rc == 0)
			*after = json_object_get_int64(meta);
		cli_answer_free(&a);
		if (rc != 0)
			return rc;
		if (cli_interrupted || (n == 0 && !follow))
			return 0;
		if (n == 0)
			nanosleep(&(struct timespec){0, FOLLOW_MS * 1000 * 1000}, NULL);
	}
}

/* Prints an event as one line (or one JSON line with --json). */
static int print_event(void *ctx, json_object *e)
{
	const cli_opts *o = ctx;
	json_object *d = json_object_object_get(e, "data");
	if (o->json) {
		puts(json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
	} else {
		printf("%s %-6s %-11s %s", cli_str(d, "ts"), cli_str(e, "id"), cli_str(e, "type"),
		       json_object_object_get_ex(d, "pool", NULL) ? cli_str(d, "pool")
								 : cli_str(d, "dag_id"));
		if (json_object_object_get_ex(d, "run_id", NULL))
			printf(" %s", cli_str(d, "run_id"));
		if (json_object_object_get_ex(d, "task_id", NULL))
			printf(" %s", cli_str(d, "task_id"));
		if (json_object_object_get_ex(d, "state", NULL))
			printf(" %s -> %s", cli_str(d, "previous_state"), cli_str(d, "state"));
		printf("\n");
	}
	fflush(stdout);
	return 0;
}

/* Just counts (moves the cursor to the end). */
static int skip_event(void *ctx, json_object *e)
{
	(void)e;
	++*(long long *)ctx;
	return 0;
}

/*
 * events: without --follow the last --limit (default 20) events, oldest
 * first; --json prints them as one array (the API page's data). With
 * --follow: new events from now on, one per line (JSON lines with
 * --json), until interrupted.
 */
int cli_events(cli_backend *b, const cli_opts *o)
{
	if (o->n_args)
		return cli_error(CLI_USAGE, "usage: pipewright events [--follow] [--types T,..]");
	char *types = o->types ? cli_escape(o->types) : NULL;
	char *dag = o->dag_filter ? cli_escape(o->dag_filter) : NULL;
	char *run = o->run_filter ? cli_escape(o->run_filter) : NULL;
	char *query = pw_asprintf("%s%s%s%s%s%s%s%s", types ? "types=" : "", types ? types : "",
				  types && (dag || run) ? "&" : "", dag ? "dag_id=" : "",
				  dag ? dag : "", dag && run ? "&" : "", run ? "run_id=" : "",
				  run ? run : "");
	long long after = 0, count = 0;
	/* where the end is, and how many there are */
	int rc = query ? cli_follow_events(b, query, &after, false, skip_event, &count) : CLI_FAIL;
	if (rc == 0 && !o->follow) {
		long want = o->limit >= 0 ? o->limit : 20;
		long long end = after;
		/* the ids are not dense (filters, pruning): walk to the last `want` */
		after = 0;
		long long skip = count > want ? count - want : 0;
		json_object *all = o->json ? json_object_new_array() : NULL;
		while (rc == 0 && after < end) {
			cli_answer a = {0};
			char *path = pw_asprintf("/api/v1/events?limit=1000&after_id=%lld%s%s", after,
						 *query ? "&" : "", query);
			if (cli_request(b, "GET", path, NULL, &a) != 200 || !cli_data(&a))
				rc = cli_fail(&a, "cannot read events");
			json_object *list = cli_data(&a);
			for (size_t i = 0; rc == 0 && i < cli_len(list); i++) {
				json_object *e = json_object_array_get_idx(list, i);
				after = json_object_get_int64(json_object_object_get(e, "id"));
				if (after > end)
					break;
				if (skip > 0)
					skip--;
				else if (all)
					json_object_array_add(all, json_object_get(e));
				else
					print_event((void *)o, e);
			}
			if (rc == 0 && cli_len(list) == 0)
				after = end;
			cli_answer_free(&a);
			free(path);
		}
		if (rc == 0 && all)
			cli_print_json(all);
		json_object_put(all);
	} else if (rc == 0) {
		rc = cli_follow_events(b, query, &after, true, print_event, (void *)o);
	}
	free(types);
	free(dag);
	free(run);
	free(query);
	return rc;
}

/* --- pools ------------------------------------------------------------------------------ */

static int pools_list(cli_backend *b, const cli_opts *o)
{
	cli_answer a = {0};
	int rc = CLI_OK;
	if (cli_request(b, "GET", "/api/v1/pools?limit=1000", NULL, &a) != 200 || !cli_data(&a)) {
		rc = cli_fail(&a, "cannot list pools");
	} else if (o->json) {
		cli_print_data(&a);
	} else {
		json_object *list = cli_data(&a);
		printf("%-24s %6s %8s %8s %7s %5s  %s\n", "POOL", "SLOTS", "OCCUPIED", "RUNNING",
		       "QUEUED", "OPEN", "DESCRIPTION");
		for (size_t i = 0; i < cli_len(list); i++) {
			json_object *p = json_object_array_get_idx(list, i);
			printf("%-24s %6s %8s %8s %7s %5s  %s\n", cli_str(p, "name"),
			       cli_str(p, "slots"), cli_str(p, "occupied_slots"),
			       cli_str(p, "running_slots"), cli_str(p, "queued_slots"),
			       cli_str(p, "open_slots"), cli_str(p, "description"));
		}
	}
	cli_answer_free(&a);
	return rc;
}

/* pools set NAME SLOTS: PATCH, or POST when the pool does not exist. */
static int pools_set(cli_backend *b, const cli_opts *o)
{
	char *end;
	long slots = strtol(o->args[2], &end, 10);
	if (end == o->args[2] || *end || slots < 0)
		return cli_error(CLI_USAGE, "SLOTS is a whole number, not '%s'", o->args[2]);
	json_object *body = json_object_new_object();
	json_object_object_add(body, "slots", json_object_new_int64(slots));
	if (o->description)
		json_object_object_add(body, "description", json_object_new_string(o->description));
	char *path = cli_path("/api/v1/pools/%s", o->args[1]);
	cli_answer a = {0};
	int st = cli_request(b, "PATCH", path, body, &a), rc = CLI_OK;
	if (st == 404 && a.json) {
		cli_answer_free(&a);
		json_object_object_add(body, "name", json_object_new_string(o->args[1]));
		st = cli_request(b, "POST", "/api/v1/pools", body, &a);
	}
	if (st != 200 && st != 201)
		rc = cli_fail(&a, "cannot set the pool");
	else if (o->json)
		cli_print_data(&a);
	else
		printf("pool %s: %ld slots (%s)\n", o->args[1], slots, st == 201 ? "created" : "updated");
	cli_answer_free(&a);
	json_object_put(body);
	free(path);
	return rc;
}

static int pools_delete(cli_backend *b, const cli_opts *o)
{
	char *path = cli_path("/api/v1/pools/%s", o->args[1]);
	cli_answer a = {0};
	int rc = CLI_OK;
	if (cli_request(b, "DELETE", path, NULL, &a) != 204)
		rc = cli_fail(&a, "cannot delete the pool");
	else if (o->json)
		cli_print_json(NULL);
	else
		printf("pool %s deleted\n", o->args[1]);
	cli_answer_free(&a);
	free(path);
	return rc;
}

int cli_pools(cli_backend *b, const cli_opts *o)
{
	const char *sub = o->n_args ? o->args[0] : "list";
	if (strcmp(sub, "list") == 0 && o->n_args <= 1)
		return pools_list(b, o);
	if (strcmp(sub, "set") == 0 && o->n_args == 3)
		return pools_set(b, o);
	if (strcmp(sub, "delete") == 0 && o->n_args == 2)
		return pools_delete(b, o);
	return cli_error(CLI_USAGE, "usage: pipewright pools [list | set NAME SLOTS | delete NAME]");
}

/* --- version ----------------------------------------------------------------------------- */

/*
 * version: this program's version; with --url also the server's
 * (GET /api/v1/version). --json: that answer's data, or locally the same
 * shape for this program.
 */
int cli_version(cli_backend *unused, const cli_opts *o)
{
	(void)unused;
	if (o->n_args)
		return cli_error(CLI_USAGE, "version takes no arguments");
	if (!o->url) {
		if (o->json) {
			json_object *v = json_object_new_object();
			json_object_object_add(v, "version", json_object_new_string(PACKAGE_VERSION));
			json_object_object_add(v, "api_version", json_object_new_string("v1"));
			cli_print_json(v);
			json_object_put(v);
		} else
			printf("pipewright %s\n", PACKAGE_VERSION);
		return CLI_OK;
	}
	cli_backend *b = cli_backend_open(o, false);
	cli_answer a = {0};
	int rc = CLI_OK;
	if (!b)
		return CLI_FAIL;
	if (cli_request(b, "GET", "/api/v1/version", NULL, &a) != 200 || !cli_data(&a))
		rc = cli_fail(&a, "cannot read the server's version");
	else if (o->json)
		cli_print_data(&a);
	else
		printf("pipewright %s\nserver %s (API %s) at %s\n", PACKAGE_VERSION,
		       cli_str(cli_data(&a), "version"), cli_str(cli_data(&a), "api_version"),
		       cli_backend_where(b));
	cli_answer_free(&a);
	cli_backend_close(b);
	return rc;
}
