/*
 * cli.c - the `pipewright` command: one static table of sub-commands, each
 * a function taking the parsed common options.
 *
 *   pipewright validate [--project PATH] [--env ENV] [--conf-source DIR]
 *   pipewright dags     [--project PATH] [--env ENV] [--conf-source DIR]
 *   pipewright trigger DAG [--conf JSON] [--run-id ID] [--project PATH] ...
 *   pipewright server start [-H HOST] [-p PORT] [--reload] [--project PATH] ...
 *   pipewright db migrate [--project PATH] ...
 *   pipewright version
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonnum.h"
#include "config.h"
#include "project.h"
#include "serve.h"
#include "store.h"

/* Options every project command takes. */
typedef struct cli_opts {
	pw_project_opts project;
	const char *arg;     /* the command's one positional argument */
	const char *conf;    /* --conf JSON */
	const char *run_id;  /* --run-id */
	const char *host;    /* server: -H/--host, default 127.0.0.1 */
	const char *port;    /* server: -p/--port, default 8000 */
	bool reload;         /* server: --reload (accepted; reloading is always on) */
} cli_opts;

typedef int (*command_fn)(const cli_opts *opts);

/* Loads the project or prints why not. Returns NULL on failure. */
static pw_project *load_or_complain(const cli_opts *opts)
{
	pw_project *p = NULL;
	char *err = NULL;
	if (pw_project_load(&opts->project, &p, &err) != PW_OK) {
		fprintf(stderr, "pipewright: %s\n", err ? err : "out of memory");
		free(err);
		return NULL;
	}
	return p;
}

/* Prints the configuration error, every import error and every DAG's
 * warnings (free inputs nothing defines) to stderr. */
static size_t print_problems(const pw_project *p)
{
	size_t n = 0;
	if (p->conf_error.type) {
		fprintf(stderr, "conf: %s: %s\n", p->conf_error.type, p->conf_error.message);
		n++;
	}
	for (size_t i = 0; i < p->import_errors.n; i++, n++) {
		char *line = pw_error_format(&p->import_errors.v[i]);
		fprintf(stderr, "%s\n", line ? line : p->import_errors.v[i].message);
		free(line);
	}
	for (size_t d = 0; d < p->n_dags; d++) {
		const pw_errors *w = &p->dags[d]->warnings;
		for (size_t i = 0; i < w->n; i++, n++)
			fprintf(stderr, "%s:%d: %s: %s\n", w->v[i].file, w->v[i].line,
				w->v[i].type ? w->v[i].type : "ValueError", w->v[i].message);
	}
	return n;
}

static int cmd_validate(const cli_opts *opts)
{
	pw_project *p = load_or_complain(opts);
	if (!p)
		return 1;
	size_t problems = print_problems(p);
	size_t tasks = 0;
	for (size_t i = 0; i < p->n_dags; i++)
		tasks += p->dags[i]->n_tasks;
	if (problems == 0)
		printf("%s (env %s): %zu DAGs, %zu tasks, %zu datasets, %zu parameters: OK\n",
		       p->project_name, p->env, p->n_dags, tasks,
		       (size_t)json_object_object_length(p->catalog),
		       (size_t)json_object_object_length(p->parameters));
	else
		printf("%s (env %s): %zu problem%s\n", p->project_name, p->env, problems,
		       problems == 1 ? "" : "s");
	pw_project_free(p);
	return problems ? 1 : 0;
}

/* Prints "<- a, b" for a task's upstream tasks. */
static void print_task(const pw_dag *dag, const pw_task *t)
{
	printf("    %-28s", t->name);
	for (size_t u = 0; u < t->n_up; u++)
		printf("%s%s", u ? ", " : "<- ", dag->tasks[t->up[u]].name);
	printf("\n");
}

static int cmd_dags(const cli_opts *opts)
{
	pw_project *p = load_or_complain(opts);
	if (!p)
		return 1;
	for (size_t i = 0; i < p->n_dags; i++) {
		const pw_dag *dag = p->dags[i];
		printf("%s  (%s; schedule %s%s)\n", dag->id, dag->file,
		       dag->schedule ? dag->schedule : "none", dag->paused ? "; paused" : "");
		for (size_t k = 0; k < dag->n_tasks; k++)
			print_task(dag, &dag->tasks[dag->order[k]]);
	}
	int rc = print_problems(p) ? 1 : 0;
	pw_project_free(p);
	return rc;
}

/* Queues a manual run, as POST /api/v1/dags/:dag_id/runs does. */
static int cmd_trigger(const cli_opts *opts)
{
	json_object *conf = pw_json_parse_exact(opts->conf);
	if (!opts->arg || (opts->conf && !json_object_is_type(conf, json_type_object)) ||
	    (opts->run_id && !pw_valid_run_id(opts->run_id))) {
		fprintf(stderr, "pipewright: trigger needs a DAG id; --conf must be a JSON "
				"object and --run-id a valid run id\n");
		json_object_put(conf);
		return 2;
	}
	pw_project *p = load_or_complain(opts);
	pw_store *store = NULL;
	char *err = NULL, *run_id = NULL;
	int rc = 1;
	if (!p)
		goto out;
	if (!pw_project_dag(p, opts->arg)) {
		fprintf(stderr, "pipewright: no DAG '%s'\n", opts->arg);
		goto out;
	}
	if (pw_mkdirs_for(p->database) != 0 ||
	    pw_store_open(p->database, &store, &err) != PW_OK) {
		fprintf(stderr, "pipewright: %s\n", err ? err : strerror(errno));
		goto out;
	}
	pw_run_new run = {.dag_id = opts->arg, .run_id = opts->run_id, .conf = conf,
			  .triggered_by = getenv("USER")};
	int st = pw_store_insert_run(store, &run, &run_id);
	if (st == PW_CONFLICT)
		fprintf(stderr, "pipewright: DAG '%s' has a run '%s' already\n", opts->arg,
			opts->run_id);
	else if (st == PW_OK)
		printf("%s\n", run_id);
	rc = st == PW_OK ? 0 : 1;
out:
	free(run_id);
	free(err);
	pw_store_close(store);
	pw_project_free(p);
	json_object_put(conf);
	return rc;
}

static int cmd_server_start(const cli_opts *opts)
{
	pw_project *p = load_or_complain(opts);
	if (!p)
		return 1;
	if (print_problems(p))
		fprintf(stderr, "pipewright: serving the project with the problems above\n");
	int rc = pw_serve_start(p, opts->host, opts->port);
	pw_project_free(p);
	return rc;
}

/* The sub-commands of `pipewright server`. */
static const struct subcommand {
	const char *name;
	command_fn run;
} server_commands[] = {
	{"start", cmd_server_start},
};

static int cmd_server(const cli_opts *opts)
{
	for (size_t i = 0; opts->arg && i < sizeof server_commands / sizeof *server_commands; i++)
		if (strcmp(opts->arg, server_commands[i].name) == 0)
			return server_commands[i].run(opts);
	fprintf(stderr, "pipewright: usage: pipewright server start [-H HOST] [-p PORT] "
			"[--reload] [--project PATH] [--env ENV] [--conf-source DIR]\n");
	return 2;
}

/*
 * `db migrate`: creates the database, or applies its pending migrations
 * (the runner does the same when it starts; the API's handlers never do).
 */
static int cmd_db_migrate(const cli_opts *opts)
{
	pw_project *p = load_or_complain(opts);
	pw_store *store = NULL;
	char *err = NULL;
	int rc = 1;
	if (!p)
		return 1;
	if (pw_mkdirs_for(p->database) != 0 ||
	    pw_store_open(p->database, &store, &err) != PW_OK) {
		fprintf(stderr, "pipewright: %s\n", err ? err : strerror(errno));
		goto out;
	}
	printf("%s: schema version %d\n", p->database, pw_store_schema_version(store));
	rc = 0;
out:
	free(err);
	pw_store_close(store);
	pw_project_free(p);
	return rc;
}

/* The sub-commands of `pipewright db`. */
static const struct subcommand db_commands[] = {
	{"migrate", cmd_db_migrate},
};

static int cmd_db(const cli_opts *opts)
{
	for (size_t i = 0; opts->arg && i < sizeof db_commands / sizeof *db_commands; i++)
		if (strcmp(opts->arg, db_commands[i].name) == 0)
			return db_commands[i].run(opts);
	fprintf(stderr, "pipewright: usage: pipewright db migrate [--project PATH] [--env ENV] "
			"[--conf-source DIR]\n");
	return 2;
}

static int cmd_version(const cli_opts *opts)
{
	(void)opts;
	printf("pipewright %s\n", PACKAGE_VERSION);
	return 0;
}

/* Option sets a command accepts beyond --project, --env, --conf-source. */
enum { OPT_TRIGGER = 1, OPT_SERVER = 2 };

static const struct command {
	const char *name;
	command_fn run;
	unsigned opts;  /* OPT_* */
	const char *help;
} commands[] = {
	{"validate", cmd_validate, 0, "load the project; print every error (exit 1) or a summary"},
	{"dags", cmd_dags, 0, "list the DAGs and their tasks in run order"},
	{"trigger", cmd_trigger, OPT_TRIGGER,
	 "queue a run of DAG (--conf JSON, --run-id ID); prints its id"},
	{"server", cmd_server, OPT_SERVER,
	 "start: serve the project with lighttpd and run the runner, until Ctrl-C"},
	{"version", cmd_version, 0, "print the version"},
	{"db", cmd_db, 0, "migrate: create the database or apply its pending migrations"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: pipewright COMMAND [ARG] [--project PATH] [--env ENV] [--conf-source DIR]\n\n");
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
	fprintf(out, "\nPIPEWRIGHT_PROJECT_PATH, PIPEWRIGHT_ENV and PIPEWRIGHT_CONF_SOURCE\n"
		     "stand in for the options.\n\n"
		     "pipewright server start [-H|--host 127.0.0.1] [-p|--port 8000] [--reload]\n"
		     "  runs lighttpd (with pipewright.fcgi) and pipewright-runner in the\n"
		     "  foreground; Ctrl-C stops both. HOST is an IPv4 address or localhost;\n"
		     "  beyond 127.x there is no authentication. --reload is accepted for\n"
		     "  Kedro's sake: reloading is always on, since the API and the runner\n"
		     "  reload the project's files whenever they change.\n");
}

/*
 * Parses the options after the command name; `allowed` (OPT_*) names the
 * command's own. Returns 0 or -1.
 */
static int parse_options(int argc, char **argv, unsigned allowed, cli_opts *opts)
{
	static const struct option longopts[] = {
		{"project", required_argument, NULL, 'P'},
		{"env", required_argument, NULL, 'e'},
		{"conf-source", required_argument, NULL, 'c'},
		{"conf", required_argument, NULL, 'j'},
		{"run-id", required_argument, NULL, 'r'},
		{"host", required_argument, NULL, 'H'},
		{"port", required_argument, NULL, 'p'},
		{"reload", no_argument, NULL, 'R'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	optind = 1;
	opts->host = "127.0.0.1";
	opts->port = "8000";
	while ((c = getopt_long(argc, argv, "e:hH:p:", longopts, NULL)) != -1) {
		unsigned need = strchr("jr", c) ? OPT_TRIGGER : strchr("HpR", c) ? OPT_SERVER : 0;
		if (need && !(allowed & need)) {
			fprintf(stderr, "pipewright: option not valid for this command\n");
			return -1;
		}
		switch (c) {
		case 'P': opts->project.path = optarg; break;
		case 'e': opts->project.env = optarg; break;
		case 'c': opts->project.conf_source = optarg; break;
		case 'j': opts->conf = optarg; break;
		case 'r': opts->run_id = optarg; break;
		case 'H': opts->host = optarg; break;
		case 'p': opts->port = optarg; break;
		case 'R': opts->reload = true; break;
		case 'h': usage(stdout); exit(0);
		default: return -1;
		}
	}
	if (optind < argc)
		opts->arg = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "pipewright: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	cli_opts opts = {0};
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
		if (strcmp(argv[1], commands[i].name) != 0)
			continue;
		if (parse_options(argc - 1, argv + 1, commands[i].opts, &opts) != 0) {
			usage(stderr);
			return 2;
		}
		return commands[i].run(&opts);
	}
	fprintf(stderr, "pipewright: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
