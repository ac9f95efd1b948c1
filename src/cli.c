/*
 * cli.c - the `pipewright` command: the one table of sub-commands (name,
 * handler, usage, help, the options each takes), option parsing, and the
 * helpers every command file uses to make requests and print answers.
 *
 * The commands live one group per file (cli_dags.c, cli_runs.c, cli_run.c,
 * cli_system.c) and reach the API through cli_backend.c, locally or over
 * HTTP; cli.h has the contract.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "cli.h"
#include "serve.h"

volatile int cli_interrupted;

/* --- helpers ---------------------------------------------------------------------- */

int cli_error(int code, const char *fmt, ...)
{
	va_list ap;
	fputs("pipewright: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

char *cli_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1), *o = out;
	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    strchr("-._~", c)) {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

/* Only "%s" conversions: each argument is percent-encoded. */
char *cli_path(const char *fmt, ...)
{
	va_list ap;
	struct printbuf *pb = printbuf_new();
	char *out = NULL;
	bool ok = pb != NULL;
	va_start(ap, fmt);
	for (const char *f = fmt; ok && *f; f++) {
		if (f[0] == '%' && f[1] == 's') {
			char *e = cli_escape(va_arg(ap, const char *));
			ok = e && printbuf_memappend(pb, e, (int)strlen(e)) >= 0;
			free(e);
			f++;
		} else {
			ok = printbuf_memappend(pb, f, 1) >= 0;
		}
	}
	va_end(ap);
	if (ok)
		out = strndup(pb->buf, (size_t)pb->bpos);
	if (pb)
		printbuf_free(pb);
	return out;
}

json_object *cli_list(const char *csv)
{
	if (!csv)
		return NULL;
	json_object *a = json_object_new_array();
	char *copy = strdup(csv), *save = NULL;
	for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; a && t;
	     t = strtok_r(NULL, ",", &save)) {
		t += strspn(t, " ");
		if (*t)
			json_object_array_add(a, json_object_new_string(t));
	}
	free(copy);
	return a;
}

const char *cli_str(json_object *o, const char *key)
{
	json_object *v = NULL;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return "-";
	return json_object_get_string(v);
}

size_t cli_len(json_object *a)
{
	return json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

json_object *cli_data(const cli_answer *a)
{
	json_object *d = NULL;
	json_object_object_get_ex(a->json, "data", &d);
	return d;
}

int cli_print_json(json_object *v)
{
	puts(v ? json_object_to_json_string_ext(v, JSON_C_TO_STRING_PRETTY |
						   JSON_C_TO_STRING_NOSLASHESCAPE)
	       : "null");
	return CLI_OK;
}

/* The end of the JSON value at s[i] (strings and nesting skipped), or 0. */
static size_t skip_value(const char *s, size_t i, size_t n)
{
	int depth = 0;
	bool in_str = false;
	for (; i < n; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
			if (!in_str && depth == 0)
				return i + 1;
			continue;
		}
		if (c == '"')
			in_str = true;
		else if (c == '{' || c == '[')
			depth++;
		else if (c == '}' || c == ']')
			depth--;
		if (depth < 0 || (depth == 0 && (c == ',' || c == '}' || c == ']'))) {
			if (c == '}' || c == ']')
				return depth < 0 ? i : i + 1;
			return i;
		}
	}
	return depth == 0 ? n : 0;
}

/*
 * Prints the answer's data as the server wrote it (numbers keep their
 * text: 0.8 stays 0.8), found by scanning the envelope's top level.
 */
int cli_print_data(const cli_answer *a)
{
	const char *s = a->body;
	size_t n = a->len, i = 0;
	while (s && i < n && s[i] != '{')
		i++;
	for (i++; s && i < n; i++) {
		if (s[i] != '"')
			continue;
		size_t key_end = skip_value(s, i, n);
		bool is_data = key_end == i + 6 && strncmp(s + i, "\"data\"", 6) == 0;
		size_t v = key_end;
		while (v < n && (s[v] == ' ' || s[v] == ':' || s[v] == '\n' || s[v] == '\t'))
			v++;
		size_t end = skip_value(s, v, n);
		if (!key_end || !end)
			break;
		if (is_data) {
			printf("%.*s\n", (int)(end - v), s + v);
			return CLI_OK;
		}
		i = end;   /* at the ',' before the next key */
	}
	return cli_print_json(cli_data(a));
}

void cli_answer_free(cli_answer *a)
{
	free(a->content_type);
	free(a->body);
	json_object_put(a->json);
	*a = (cli_answer){0};
}

/* The sink of cli_request: the body into a buffer. */
typedef struct collect {
	struct printbuf *pb;
	char *content_type;
} collect;

static int collect_sink(void *ctx, const char *content_type, const char *buf, size_t n)
{
	collect *c = ctx;
	if (!c->content_type && content_type && !(c->content_type = strdup(content_type)))
		return -1;
	return printbuf_memappend(c->pb, buf, (int)n) < 0 ? -1 : 0;
}

int cli_request(cli_backend *b, const char *method, const char *path, json_object *body,
		cli_answer *a)
{
	collect c = {.pb = printbuf_new()};
	const char *text = body ? json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN) : NULL;
	pw_call call = {.method = method, .path = path, .body = text,
			.body_len = text ? strlen(text) : 0, .sink = collect_sink, .ctx = &c};
	*a = (cli_answer){.status = -1};
	if (!c.pb || !path) {
		free(c.content_type);
		if (c.pb)
			printbuf_free(c.pb);
		return cli_error(CLI_FAIL, "out of memory"), -1;
	}
	a->status = cli_backend_call(b, &call);
	a->content_type = c.content_type;
	a->len = (size_t)c.pb->bpos;
	a->body = strndup(c.pb->buf, a->len);
	printbuf_free(c.pb);
	if (a->status > 0 && a->content_type && strstr(a->content_type, "json") && a->len)
		a->json = json_tokener_parse(a->body);
	return a->status;
}

bool cli_no_endpoint(const cli_answer *a)
{
	json_object *err = NULL;
	return a->status == 404 && json_object_object_get_ex(a->json, "error", &err) &&
	       strncmp(cli_str(err, "message"), "no such resource", 16) == 0;
}

int cli_fail(const cli_answer *a, const char *what)
{
	json_object *err = NULL;
	if (a->status < 0)
		return CLI_FAIL;   /* said already */
	json_object_object_get_ex(a->json, "error", &err);
	const char *msg = err ? cli_str(err, "message") : a->len ? a->body : "no message";
	cli_error(0, "%s: %s (HTTP %d)", what, msg, a->status);
	if (a->status == 401 || a->status == 403)
		fputs("pipewright: give credentials with --user USER:PASS or in ~/.netrc\n", stderr);
	else if (cli_no_endpoint(a))
		fputs("pipewright: this server does not have that endpoint; is it an older "
		      "pipewright, or is --url's mount prefix right?\n", stderr);
	else if (a->status == 503)
		fputs("pipewright: the database is unavailable (is its folder writable?) or the "
		      "server is busy; retry later\n", stderr);
	return a->status == 400 ? CLI_USAGE : CLI_FAIL;
}

/* --- commands that need no API -------------------------------------------------- */

static int cli_server(cli_backend *b, const cli_opts *o)
{
	(void)b;
	pw_project *p = NULL;
	char *err = NULL;
	if (o->n_args != 1 || strcmp(o->args[0], "start") != 0)
		return cli_error(CLI_USAGE, "usage: pipewright server start [-H HOST] [-p PORT] "
				 "(see pipewright server --help)");
	if (o->url)
		return cli_error(CLI_USAGE, "server start serves a local project; --url makes no sense here");
	if (pw_project_load(&o->project, &p, &err) != PW_OK) {
		cli_error(CLI_FAIL, "%s", err ? err : "out of memory");
		free(err);
		return CLI_FAIL;
	}
	if (p->conf_error.type || p->import_errors.n)
		cli_error(0, "serving the project with problems; `pipewright validate` lists them");
	int rc = pw_serve_start(p, o->host ? o->host : "127.0.0.1", o->port ? o->port : "8000");
	pw_project_free(p);
	return rc;
}

/*
 * db migrate: creates the database or applies its pending migrations (the
 * runner does the same when it starts; the API's handlers never do).
 */
static int cli_db(cli_backend *b, const cli_opts *o)
{
	(void)b;
	pw_project *p = NULL;
	char *err = NULL;
	int rc = CLI_FAIL;
	if (o->n_args != 1 || strcmp(o->args[0], "migrate") != 0)
		return cli_error(CLI_USAGE, "usage: pipewright db migrate (see pipewright db --help)");
	if (o->url)
		return cli_error(CLI_USAGE, "db migrate works on a local project; --url makes no sense here");
	if (pw_project_load(&o->project, &p, &err) != PW_OK) {
		cli_error(CLI_FAIL, "%s", err ? err : "out of memory");
		goto out;
	}
	int version = cli_make_database(p->database, &err);
	if (version < 0) {
		cli_error(CLI_FAIL, "%s", err ? err : "out of memory");
		goto out;
	}
	if (o->json) {
		json_object *v = json_object_new_object();
		if (!v || json_object_object_add(v, "database", json_object_new_string(p->database)) ||
		    json_object_object_add(v, "schema_version", json_object_new_int(version))) {
			json_object_put(v);
			cli_error(CLI_FAIL, "out of memory");
			goto out;
		}
		cli_print_json(v);
		json_object_put(v);
	} else {
		printf("%s: schema version %d\n", p->database, version);
	}
	rc = CLI_OK;
out:
	free(err);
	pw_project_free(p);
	return rc;
}

/* --- the table --------------------------------------------------------------------- */

/* Long-only option values (getopt_long's val). */
enum {
	O_CONF = 256, O_RUN_ID, O_PARAMS, O_RUNNER, O_LOAD_VERSIONS, O_PIPELINE, O_TAGS,
	O_NODES, O_FROM_NODES, O_TO_NODES, O_FROM_INPUTS, O_TO_OUTPUTS, O_NAMESPACES,
	O_ONLY_MISSING, O_STATE, O_LIMIT, O_TYPES, O_FORMAT, O_DESCRIPTION, O_DAG, O_RUN,
	O_TRY, O_FOLLOW, O_DOWNSTREAM, O_UPSTREAM, O_ONLY_FAILED, O_DRY_RUN, O_HOST, O_PORT,
	O_RELOAD,
};

#define SLICING O_TAGS, O_NODES, O_FROM_NODES, O_TO_NODES, O_FROM_INPUTS, O_TO_OUTPUTS, \
	O_ONLY_MISSING
#define COMMON_HELP \
	"Every command takes:\n" \
	"  --project PATH      the project (default $PIPEWRIGHT_PROJECT_PATH, then .)\n" \
	"  -e, --env ENV       the configuration environment (default local)\n" \
	"  --conf-source DIR   read configuration from DIR instead of conf/\n" \
	"  --url URL           talk to a pipewright server over HTTP instead of the\n" \
	"                      project's database (URL up to the mount prefix)\n" \
	"  --user USER:PASS    credentials for --url (default: ~/.netrc)\n" \
	"  --json              print the API answer's data as one JSON document\n" \
	"  -h, --help          this help\n"

static const struct command {
	const char *name;
	const char *summary;  /* one line for `pipewright --help` */
	cli_handler run;
	bool backend;         /* needs the API (local or --url) */
	const char *shorts;   /* getopt short options beyond -e and -h */
	int opts[16];         /* the long options it takes beyond the common ones */
	const char *usage;
	const char *help;
} commands[] = {
	{"validate", "check the project: configuration and DAG import errors",
	 cli_validate, true, "", {0},
	 "validate",
	 "Loads the project and reports every configuration and DAG import error\n"
	 "(file:line: message) on stderr; exit 1 when there is one. --json: the\n"
	 "import errors (GET /api/v1/import-errors)."},
	{"dags", "list the DAGs, or show one (tasks, graph)",
	 cli_dags, true, "", {O_FORMAT},
	 "dags [list | show DAG [--format text|dot|svg]]",
	 "list: every DAG with its schedule, pause state and tags (the default).\n"
	 "show: one DAG's tasks in run order with their upstream tasks; --format dot\n"
	 "or svg gives the graph (GET /api/v1/dags/DAG/graph)."},
	{"pause", "pause a DAG", cli_pause, true, "", {0}, "pause DAG",
	 "Pauses DAG: no scheduled runs, queued runs wait (Airflow's pause)."},
	{"unpause", "unpause a DAG", cli_unpause, true, "", {0}, "unpause DAG", "Unpauses DAG."},
	{"trigger", "queue a run of a DAG; prints its id",
	 cli_trigger, true, "", {O_CONF, O_RUN_ID, SLICING},
	 "trigger DAG [--conf JSON] [--run-id ID] [--tags T,..] [--nodes N,..]\n"
	 "        [--from-nodes N,..] [--to-nodes N,..] [--from-inputs D,..]\n"
	 "        [--to-outputs D,..] [--only-missing-outputs]",
	 "Queues a run of DAG and prints its run id; a runner (pipewright server\n"
	 "start, pipewright-runner) runs it. --conf is a JSON object of run\n"
	 "parameters; the slicing flags select tasks as kedro run's do."},
	{"run", "run a pipeline in the foreground, like kedro run", cli_run, true, "p:t:n:r:",
	 {O_PIPELINE, O_PARAMS, O_RUNNER, O_LOAD_VERSIONS, O_NAMESPACES, SLICING},
	 "run [-p|--pipeline NAME,..] [-t|--tags T,..] [-n|--nodes N,..]\n"
	 "        [--from-nodes N,..] [--to-nodes N,..] [--from-inputs D,..]\n"
	 "        [--to-outputs D,..] [--namespaces NS,..] [--params k=v,..]\n"
	 "        [-r|--runner NAME] [--only-missing-outputs] [--load-versions ds:ver,..]",
	 "kedro run for pipewright: queues a run of the pipeline (default\n"
	 "__default__, every DAG), shows its progress (tasks done/total, the\n"
	 "running ones, elapsed) and the log tail of a task that fails, and exits 0\n"
	 "when the run succeeded, 1 when it failed or was cancelled. When no runner\n"
	 "holds the project's lock, it starts `pipewright-runner --once` to run it.\n"
	 "--params values are YAML scalars (n=3 is the number 3)."},
	{"runs", "list runs, or show one with its task instances",
	 cli_runs, true, "", {O_STATE, O_LIMIT},
	 "runs [DAG] [--state S,..] [--limit N]\n"
	 "       runs show DAG RUN",
	 "Lists the runs of DAG (of every DAG without one), newest first; show:\n"
	 "one run with its task instances."},
	{"cancel", "cancel a run", cli_cancel, true, "", {0}, "cancel DAG RUN",
	 "Asks the runner to cancel RUN; exits 0 once the request is recorded."},
	{"retry", "re-queue the failed tasks of a run", cli_retry, true, "", {0}, "retry DAG RUN",
	 "Re-queues the failed, upstream_failed and cancelled tasks of a failed or\n"
	 "cancelled run; exits 0 once the request is recorded."},
	{"clear", "clear task instances so that they run again",
	 cli_clear, true, "", {O_DOWNSTREAM, O_UPSTREAM, O_ONLY_FAILED, O_DRY_RUN},
	 "clear DAG RUN [TASK...] [--downstream] [--upstream] [--only-failed] [--dry-run]",
	 "Clears task instances of RUN (every task without TASK) so that they run\n"
	 "again in the same run; prints the cleared task ids."},
	{"logs", "print (or follow) a task's log",
	 cli_logs, true, "f", {O_TRY, O_FOLLOW},
	 "logs DAG RUN TASK [--try N] [-f|--follow]",
	 "Prints the log of a task's latest try (or try N). --follow prints new\n"
	 "output as it is written and exits once the try has ended."},
	{"events", "print (or follow) state-change events",
	 cli_events, true, "f", {O_FOLLOW, O_TYPES, O_LIMIT, O_DAG, O_RUN},
	 "events [-f|--follow] [--types T,..] [--dag DAG] [--run RUN] [--limit N]",
	 "Prints the latest state-change events (run.state, task.state,\n"
	 "dag.updated, pool.updated), one per line; --follow prints new ones as\n"
	 "they happen, until interrupted."},
	{"pools", "list, set or delete pools", cli_pools, true, "", {O_DESCRIPTION},
	 "pools [list | set NAME SLOTS [--description TEXT] | delete NAME]",
	 "Lists the pools with their slots; set creates or resizes one; delete\n"
	 "removes one (not default_pool)."},
	{"server", "server start: lighttpd + pipewright.fcgi + the runner",
	 cli_server, false, "H:p:", {O_HOST, O_PORT, O_RELOAD},
	 "server start [-H|--host 127.0.0.1] [-p|--port 8000] [--reload]",
	 "Runs lighttpd with pipewright.fcgi and pipewright-runner in the\n"
	 "foreground, restarting either when it dies, until Ctrl-C. HOST is an\n"
	 "IPv4 address or localhost; beyond 127.x there is no authentication.\n"
	 "--reload is accepted for Kedro's sake: the API and the runner always\n"
	 "reload the project's files when they change."},
	{"db", "db migrate: create the database or apply its migrations",
	 cli_db, false, "", {0},
	 "db migrate",
	 "Creates the project's database, or applies its pending migrations, and\n"
	 "prints its schema version. The runner does the same when it starts; the\n"
	 "API never creates the database (it answers 503 until it exists)."},
	{"version", "print the version", cli_version, false, "", {0}, "version",
	 "Prints pipewright's version (also `pipewright --version`); with --url\n"
	 "also the server's."},
};

#define N_COMMANDS (sizeof commands / sizeof *commands)

static const struct option longopts[] = {
	{"project", required_argument, NULL, 'P'},
	{"env", required_argument, NULL, 'e'},
	{"conf-source", required_argument, NULL, 'c'},
	{"url", required_argument, NULL, 'U'},
	{"user", required_argument, NULL, 'u'},
	{"json", no_argument, NULL, 'J'},
	{"help", no_argument, NULL, 'h'},
	{"conf", required_argument, NULL, O_CONF},
	{"run-id", required_argument, NULL, O_RUN_ID},
	{"params", required_argument, NULL, O_PARAMS},
	{"runner", required_argument, NULL, O_RUNNER},
	{"load-versions", required_argument, NULL, O_LOAD_VERSIONS},
	{"load-version", required_argument, NULL, O_LOAD_VERSIONS},
	{"pipeline", required_argument, NULL, O_PIPELINE},
	{"pipelines", required_argument, NULL, O_PIPELINE},
	{"tags", required_argument, NULL, O_TAGS},
	{"tag", required_argument, NULL, O_TAGS},
	{"nodes", required_argument, NULL, O_NODES},
	{"node", required_argument, NULL, O_NODES},
	{"from-nodes", required_argument, NULL, O_FROM_NODES},
	{"to-nodes", required_argument, NULL, O_TO_NODES},
	{"from-inputs", required_argument, NULL, O_FROM_INPUTS},
	{"to-outputs", required_argument, NULL, O_TO_OUTPUTS},
	{"namespaces", required_argument, NULL, O_NAMESPACES},
	{"namespace", required_argument, NULL, O_NAMESPACES},
	{"only-missing-outputs", no_argument, NULL, O_ONLY_MISSING},
	{"state", required_argument, NULL, O_STATE},
	{"limit", required_argument, NULL, O_LIMIT},
	{"types", required_argument, NULL, O_TYPES},
	{"format", required_argument, NULL, O_FORMAT},
	{"description", required_argument, NULL, O_DESCRIPTION},
	{"dag", required_argument, NULL, O_DAG},
	{"run", required_argument, NULL, O_RUN},
	{"try", required_argument, NULL, O_TRY},
	{"follow", no_argument, NULL, O_FOLLOW},
	{"downstream", no_argument, NULL, O_DOWNSTREAM},
	{"upstream", no_argument, NULL, O_UPSTREAM},
	{"only-failed", no_argument, NULL, O_ONLY_FAILED},
	{"dry-run", no_argument, NULL, O_DRY_RUN},
	{"host", required_argument, NULL, O_HOST},
	{"port", required_argument, NULL, O_PORT},
	{"reload", no_argument, NULL, O_RELOAD},
	{NULL, 0, NULL, 0},
};

/* The long option whose val is v (for messages). */
static const char *long_name(int v)
{
	for (const struct option *l = longopts; l->name; l++)
		if (l->val == v)
			return l->name;
	return "?";
}

static void command_help(const struct command *c, FILE *out)
{
	fprintf(out, "usage: pipewright %s\n\n%s\n\n%s", c->usage, c->help, COMMON_HELP);
}

static void usage(FILE *out)
{
	fputs("usage: pipewright COMMAND [ARGS] [--project PATH | --url URL] [--json]\n\n"
	      "Commands:\n", out);
	for (size_t i = 0; i < N_COMMANDS; i++) {
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	}
	fputs("\n`pipewright COMMAND --help` tells more; `pipewright --version` the version.\n"
	      "Exit status: 0 ok, 1 a failure it reports, 2 a usage error.\n\n", out);
	fputs(COMMON_HELP, out);
}

/* Maps a short option of a command to its value ("-p" of run is --pipeline). */
static int short_value(const struct command *c, int ch)
{
	static const struct { const char *cmd; int ch, val; } map[] = {
		{"run", 'p', O_PIPELINE}, {"run", 't', O_TAGS}, {"run", 'n', O_NODES},
		{"run", 'r', O_RUNNER}, {"logs", 'f', O_FOLLOW}, {"events", 'f', O_FOLLOW},
		{"server", 'H', O_HOST}, {"server", 'p', O_PORT},
	};
	for (size_t i = 0; i < sizeof map / sizeof *map; i++)
		if (map[i].ch == ch && strcmp(map[i].cmd, c->name) == 0)
			return map[i].val;
	return ch;
}

static bool takes(const struct command *c, int val)
{
	for (size_t i = 0; i < sizeof c->opts / sizeof *c->opts && c->opts[i]; i++)
		if (c->opts[i] == val)
			return true;
	return false;
}

/* A non-negative integer option. Returns 0, or -1 after saying why. */
static int parse_count(const char *name, const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0)
		return cli_error(-1, "--%s wants a whole number, not '%s'", name, s);
	*out = v;
	return 0;
}

/* Sets the option val to optarg. Returns 0 or -1. */
static int set_option(cli_opts *o, int val, const char *arg)
{
	const char **str[] = {
		[O_CONF - O_CONF] = &o->conf, [O_RUN_ID - O_CONF] = &o->run_id,
		[O_PARAMS - O_CONF] = &o->params, [O_RUNNER - O_CONF] = &o->runner,
		[O_LOAD_VERSIONS - O_CONF] = &o->load_versions,
		[O_PIPELINE - O_CONF] = &o->pipeline, [O_TAGS - O_CONF] = &o->tags,
		[O_NODES - O_CONF] = &o->nodes, [O_FROM_NODES - O_CONF] = &o->from_nodes,
		[O_TO_NODES - O_CONF] = &o->to_nodes, [O_FROM_INPUTS - O_CONF] = &o->from_inputs,
		[O_TO_OUTPUTS - O_CONF] = &o->to_outputs, [O_NAMESPACES - O_CONF] = &o->namespaces,
		[O_STATE - O_CONF] = &o->state, [O_TYPES - O_CONF] = &o->types,
		[O_FORMAT - O_CONF] = &o->format, [O_DESCRIPTION - O_CONF] = &o->description,
		[O_DAG - O_CONF] = &o->dag_filter, [O_RUN - O_CONF] = &o->run_filter,
		[O_HOST - O_CONF] = &o->host, [O_PORT - O_CONF] = &o->port,
	};
	bool *flag[] = {
		[O_ONLY_MISSING - O_CONF] = &o->only_missing, [O_FOLLOW - O_CONF] = &o->follow,
		[O_DOWNSTREAM - O_CONF] = &o->downstream, [O_UPSTREAM - O_CONF] = &o->upstream,
		[O_ONLY_FAILED - O_CONF] = &o->only_failed, [O_DRY_RUN - O_CONF] = &o->dry_run,
		[O_RELOAD - O_CONF] = &o->reload,
	};
	size_t i = (size_t)(val - O_CONF);
	if (val == O_LIMIT)
		return parse_count("limit", arg, &o->limit);
	if (val == O_TRY)
		return parse_count("try", arg, &o->try_number);
	if (i < sizeof str / sizeof *str && str[i]) {
		*str[i] = arg;
		return 0;
	}
	if (i < sizeof flag / sizeof *flag && flag[i]) {
		*flag[i] = true;
		return 0;
	}
	return -1;
}

/*
 * Parses argv (argv[0] is the command) into o. Returns 0, 1 after
 * printing the help (exit 0), or -1 after saying what is wrong.
 */
static int parse_options(const struct command *c, int argc, char **argv, cli_opts *o)
{
	char shorts[32];
	int ch;
	snprintf(shorts, sizeof shorts, "e:h%s", c->shorts);
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, shorts, longopts, NULL)) != -1) {
		int val = short_value(c, ch);
		switch (val) {
		case 'P': o->project.path = optarg; continue;
		case 'e': o->project.env = optarg; continue;
		case 'c': o->project.conf_source = optarg; continue;
		case 'U': o->url = optarg; continue;
		case 'u': o->user = optarg; continue;
		case 'J': o->json = true; continue;
		case 'h': command_help(c, stdout); return 1;
		case '?':
		case ':':
			return cli_error(-1, "%s: bad or incomplete option '%s'", c->name,
					 argv[optind - 1]);
		default:
			break;
		}
		if (!takes(c, val))
			return cli_error(-1, "%s does not take --%s", c->name, long_name(val));
		if (set_option(o, val, optarg) != 0)
			return -1;
	}
	for (; optind < argc; optind++) {
		if (o->n_args == CLI_MAX_ARGS)
			return cli_error(-1, "too many arguments");
		o->args[o->n_args++] = argv[optind];
	}
	return 0;
}

static void on_signal(int sig)
{
	(void)sig;
	cli_interrupted = 1;
}

int main(int argc, char **argv)
{
	cli_opts o = {.limit = -1, .try_number = -1};
	const char *name = argc > 1 ? argv[1] : NULL;
	if (!name) {
		usage(stderr);
		return CLI_USAGE;
	}
	if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
		if (!strcmp(name, "help") && argc > 2)
			name = argv[2];   /* `pipewright help run` = `pipewright run --help` */
		else
			return usage(stdout), CLI_OK;
		for (size_t i = 0; i < N_COMMANDS; i++)
			if (!strcmp(name, commands[i].name))
				return command_help(&commands[i], stdout), CLI_OK;
		return cli_error(CLI_USAGE, "unknown command '%s'; `pipewright --help` lists them", name);
	}
	if (!strcmp(name, "--version") || !strcmp(name, "-V"))
		name = "version";
	for (size_t i = 0; i < N_COMMANDS; i++) {
		const struct command *c = &commands[i];
		if (strcmp(name, c->name) != 0)
			continue;
		int r = parse_options(c, argc - 1, argv + 1, &o);
		if (r != 0) {
			if (r < 0)
				fprintf(stderr, "usage: pipewright %s\n(pipewright %s --help tells more)\n",
					c->usage, c->name);
			return r > 0 ? CLI_OK : CLI_USAGE;
		}
		cli_backend *b = NULL;
		if (c->backend) {
			struct sigaction sa = {.sa_handler = on_signal};
			sigemptyset(&sa.sa_mask);
			sigaction(SIGINT, &sa, NULL);
			sigaction(SIGTERM, &sa, NULL);
			signal(SIGPIPE, SIG_IGN);
		}
		/* validate reads files only: an installed, read-only example stays so */
		if (c->backend && !(b = cli_backend_open(&o, c->run != cli_validate)))
			return o.url && strncmp(o.url, "http", 4) != 0 ? CLI_USAGE : CLI_FAIL;
		int rc = c->run(b, &o);
		cli_backend_close(b);
		return rc;
	}
	cli_error(0, "unknown command '%s'", name);
	usage(stderr);
	return CLI_USAGE;
}
