/*
 * cli.h - what the files of the `pipewright` command share (cli.c): the
 * parsed options, the backend every command talks through, and the
 * helpers that turn API answers into output and exit codes.
 *
 * A command is written once, against the REST API of DESIGN.md section
 * 5: it builds a request (method, path, JSON body) and prints the answer.
 * The backend answers it either in this process, through the very
 * handlers of pipewright.fcgi on the project's own database (local,
 * cli_backend.c), or over HTTP with libcurl (--url, remote). `--json`
 * prints the answer's `data`.
 *
 * Exit codes: CLI_OK 0, CLI_FAIL 1 (a failure it reports: not found, a
 * conflict, a failed run, an unreachable server), CLI_USAGE 2 (bad
 * arguments, also an API 400 about them).
 */
#ifndef PW_CLI_H
#define PW_CLI_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>

#include "pwserver.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

#define CLI_MAX_ARGS 64

/* The options of a command line, as parsed (cli.c). */
typedef struct cli_opts {
	pw_project_opts project;    /* --project, --env, --conf-source */
	const char *url;            /* --url: talk HTTP to this pipewright */
	const char *user;           /* --user USER:PASS (else ~/.netrc) */
	bool json;                  /* --json */
	const char *args[CLI_MAX_ARGS];   /* positional arguments after the command */
	size_t n_args;
	/* the commands' own options (NULL / 0 / false when not given) */
	const char *conf, *run_id, *params, *runner, *load_versions, *pipeline;
	const char *tags, *nodes, *from_nodes, *to_nodes, *from_inputs, *to_outputs;
	const char *namespaces, *state, *types, *format, *description;
	const char *dag_filter, *run_filter, *host, *port;
	long limit, try_number;     /* -1: not given */
	bool only_missing, follow, downstream, upstream, only_failed, dry_run, reload;
} cli_opts;

/* --- the backend (cli_backend.c) ---------------------------------------------- */

typedef struct cli_backend cli_backend;

/*
 * Opens the backend the options name: remote with --url, else local on
 * the project (which must load); locally, with make_db the database's
 * folder is created when missing. NULL after printing why.
 */
cli_backend *cli_backend_open(const cli_opts *o, bool make_db);
int cli_make_database(const char *path, char **err);
void cli_backend_close(cli_backend *b);
/* "the project at PATH" or the URL: for messages. */
const char *cli_backend_where(const cli_backend *b);
/* Whether the backend is this process on the project's database. */
bool cli_backend_is_local(const cli_backend *b);
/*
 * Performs one request (pw_call's fields; call->user is filled in by the
 * backend). Returns the HTTP status, or -1 after printing why there was
 * no answer (server unreachable, out of memory). Thread-safe: each thread
 * has its own connection; a thread other than the opener's calls
 * cli_backend_thread_end before it ends.
 */
int cli_backend_call(cli_backend *b, pw_call *call);
void cli_backend_thread_end(cli_backend *b);
/* The local project's database path (NULL for remote). */
const char *cli_backend_database(const cli_backend *b);

/* --- requests and answers (cli.c) ------------------------------------------------- */

/* A whole answer: status, content type, the body, and the JSON if it is. */
typedef struct cli_answer {
	int status;                 /* -1: no answer */
	char *content_type;
	char *body;
	size_t len;
	json_object *json;          /* the parsed body, or NULL */
} cli_answer;

void cli_answer_free(cli_answer *a);
/*
 * Performs method path with an optional JSON body (borrowed) and reads
 * the whole answer into *a. Returns a->status.
 */
int cli_request(cli_backend *b, const char *method, const char *path, json_object *body,
		cli_answer *a);
/*
 * The exit code for an answer that is not the wanted one: prints the
 * API's error message (with what to do where there is something to do)
 * and returns CLI_USAGE for a 400, else CLI_FAIL.
 */
int cli_fail(const cli_answer *a, const char *what);
/* The length of an array; 0 for anything else (NULL included). */
size_t cli_len(json_object *a);
/* Whether the server has no such route (an older pipewright, a bad --url). */
bool cli_no_endpoint(const cli_answer *a);
/* The answer's data member (borrowed), or NULL. */
json_object *cli_data(const cli_answer *a);
/* Prints the answer's data, as the server wrote it, on stdout. CLI_OK. */
int cli_print_data(const cli_answer *a);
/* Prints v as one JSON document on stdout. Returns CLI_OK. */
int cli_print_json(json_object *v);
/* A string member, or "-" when absent or null. */
const char *cli_str(json_object *o, const char *key);
/* A path with each argument percent-encoded: cli_path("/api/v1/dags/%s", id). */
char *cli_path(const char *fmt, ...);
/* Percent-encodes s for a path segment or a query value. malloc'd. */
char *cli_escape(const char *s);
/* Splits "a,b,c" into a JSON array of strings (NULL: absent). */
json_object *cli_list(const char *csv);
/* Prints "pipewright: " + message to stderr; returns code. */
int cli_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- the commands (one file per group) ------------------------------------------ */

typedef int (*cli_handler)(cli_backend *b, const cli_opts *o);

/* cli_dags.c */
int cli_validate(cli_backend *b, const cli_opts *o);
int cli_dags(cli_backend *b, const cli_opts *o);
int cli_pause(cli_backend *b, const cli_opts *o);
int cli_unpause(cli_backend *b, const cli_opts *o);
/* cli_runs.c */
int cli_trigger(cli_backend *b, const cli_opts *o);
int cli_runs(cli_backend *b, const cli_opts *o);
int cli_cancel(cli_backend *b, const cli_opts *o);
int cli_retry(cli_backend *b, const cli_opts *o);
int cli_clear(cli_backend *b, const cli_opts *o);
int cli_logs(cli_backend *b, const cli_opts *o);
/* cli_run.c */
int cli_run(cli_backend *b, const cli_opts *o);
/* cli_system.c */
int cli_events(cli_backend *b, const cli_opts *o);
int cli_pools(cli_backend *b, const cli_opts *o);
int cli_version(cli_backend *b, const cli_opts *o);

/* Follows events after id `after` (GET /api/v1/events pages); see cli_system.c. */
typedef int (*cli_event_fn)(void *ctx, json_object *event);
/*
 * Calls fn for each event after *after, page by page, until fn returns
 * non-zero (returned) or, when !follow, the pages end (0). While
 * following, waits between empty pages. *after moves on.
 */
int cli_follow_events(cli_backend *b, const char *query, long long *after, bool follow,
		      cli_event_fn fn, void *ctx);

extern volatile int cli_interrupted;   /* SIGINT/SIGTERM seen (cli.c) */

#endif
