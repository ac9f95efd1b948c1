/*
 * cli_run.c - `pipewright run`, kedro run for pipewright.
 *
 * The run goes through Kedro's own endpoint, POST /run (DESIGN.md section
 * 6), so that every kedro run flag means exactly what the API makes of
 * it: the flags become RunRequest's fields, the call queues the run and
 * answers when it has ended. That call waits in a thread of its own;
 * meanwhile the main thread finds the run (the newest run of the
 * pipeline's dag_id that was not there before) and shows its progress
 * from GET .../runs/RUN: tasks done / total, the running ones, elapsed;
 * on a terminal one line rewritten in place, else a plain line per
 * change. A task that fails gets its log's last lines on stderr.
 *
 * When no runner holds the project's lock ("<database>.lock", the
 * runner's single-instance flock), it starts `pipewright-runner --once`
 * for the project once the run is queued: the runner's own program, with
 * its own signal handling, lock, wake-up FIFO and child reaping, rather
 * than librunner linked into this process, whose signals and children
 * are the CLI's. --once drains the queued work and exits. The runner's
 * log goes to "<database>.run.log". Over --url the server's runner runs it.
 *
 * Ctrl-C asks the server to cancel the run (then the run ends cancelled
 * and run exits 1); a second Ctrl-C leaves at once, the run going on.
 *
 * Exit: 0 when the run succeeded, 1 when it failed or was cancelled (or
 * could not be run), 2 for bad flags.
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "doc.h"
#include "serve.h"

#define POLL_MS 250
#define TAIL_LINES 20

extern char **environ;

/* The POST /run call, made in its own thread. */
typedef struct run_call {
	cli_backend *b;
	json_object *body;
	cli_answer answer;
	volatile int done;
	pthread_t tid;
} run_call;

static void *run_thread(void *arg)
{
	run_call *rc = arg;
	cli_request(rc->b, "POST", "/run", rc->body, &rc->answer);
	cli_backend_thread_end(rc->b);
	__atomic_store_n(&rc->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* A --params value as Kedro reads it: a YAML scalar ("3" -> 3). */
static json_object *yaml_scalar(const char *text)
{
	pw_errors errs = {0};
	pw_doc *doc = pw_doc_parse(text, strlen(text), "--params", 0, &errs);
	json_object *root = doc ? pw_doc_root(doc) : NULL, *v;
	if (doc && (!root || (!json_object_is_type(root, json_type_object) &&
			      !json_object_is_type(root, json_type_array))))
		v = root ? json_object_get(root) : NULL;
	else
		v = json_object_new_string(text);
	pw_doc_free(doc);
	pw_errors_free(&errs);
	return v;
}

/*
 * "k=v,a.b=2" into {"k": "v", "a": {"b": 2}} (dotted keys nest, as in
 * Kedro). Returns 0, or -1 after saying what is wrong.
 */
static int parse_params(const char *csv, json_object *out)
{
	char *copy = strdup(csv), *save = NULL;
	int rc = copy ? 0 : -1;
	for (char *item = copy ? strtok_r(copy, ",", &save) : NULL; rc == 0 && item;
	     item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		if (!eq)
			eq = strchr(item, ':');
		if (!eq || eq == item) {
			rc = cli_error(-1, "--params takes key=value pairs separated by commas, "
				       "not '%s'", item);
			break;
		}
		*eq = '\0';
		json_object *at = out;
		char *key = item, *dot;
		while ((dot = strchr(key, '.')) && dot[1]) {
			*dot = '\0';
			json_object *sub = NULL;
			if (!json_object_object_get_ex(at, key, &sub) ||
			    !json_object_is_type(sub, json_type_object)) {
				sub = json_object_new_object();
				json_object_object_add(at, key, sub);
			}
			at = sub;
			key = dot + 1;
		}
		json_object_object_add(at, key, yaml_scalar(eq + 1));
	}
	free(copy);
	return rc;
}

/* "ds:ver,ds2:ver2" into {"ds": "ver", ...}. Returns 0 or -1. */
static int parse_versions(const char *csv, json_object *out)
{
	json_object *items = cli_list(csv);
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < cli_len(items); i++) {
		const char *s = json_object_get_string(json_object_array_get_idx(items, i));
		const char *colon = strchr(s, ':');
		if (!colon || colon == s || !colon[1])
			rc = cli_error(-1, "--load-versions takes dataset:version pairs, not '%s'", s);
		else {
			char *ds = strndup(s, (size_t)(colon - s));
			rc = ds ? json_object_object_add(out, ds, json_object_new_string(colon + 1)) : -1;
			free(ds);
		}
	}
	json_object_put(items);
	return rc;
}

/* RunRequest's body from kedro run's flags; NULL after saying why. */
static json_object *run_body(const cli_opts *o)
{
	static const struct { size_t off; const char *field; } lists[] = {
		{offsetof(cli_opts, pipeline), "pipeline_names"},
		{offsetof(cli_opts, tags), "tags"},
		{offsetof(cli_opts, nodes), "node_names"},
		{offsetof(cli_opts, from_nodes), "from_nodes"},
		{offsetof(cli_opts, to_nodes), "to_nodes"},
		{offsetof(cli_opts, from_inputs), "from_inputs"},
		{offsetof(cli_opts, to_outputs), "to_outputs"},
		{offsetof(cli_opts, namespaces), "namespaces"},
	};
	json_object *body = json_object_new_object();
	for (size_t i = 0; body && i < sizeof lists / sizeof *lists; i++) {
		const char *v = *(const char *const *)((const char *)o + lists[i].off);
		if (v)
			json_object_object_add(body, lists[i].field, cli_list(v));
	}
	if (o->runner)
		json_object_object_add(body, "runner", json_object_new_string(o->runner));
	if (o->only_missing)
		json_object_object_add(body, "only_missing_outputs", json_object_new_boolean(1));
	if (o->params) {
		json_object *p = json_object_new_object();
		json_object_object_add(body, "params", p);
		if (parse_params(o->params, p) != 0)
			goto bad;
	}
	if (o->load_versions) {
		json_object *v = json_object_new_object();
		json_object_object_add(body, "load_versions", v);
		if (parse_versions(o->load_versions, v) != 0)
			goto bad;
	}
	return body;
bad:
	json_object_put(body);
	return NULL;
}

/* The run's dag_id as /run makes it: __default__, or the names joined by "+". */
static char *run_dag_id(const cli_opts *o)
{
	json_object *names = cli_list(o->pipeline);
	size_t n = cli_len(names);
	char *id = strdup(n ? "" : "__default__");
	for (size_t i = 0; id && i < n; i++) {
		char *next = pw_asprintf("%s%s%s", id, i ? "+" : "",
					 json_object_get_string(json_object_array_get_idx(names, i)));
		free(id);
		id = next;
	}
	json_object_put(names);
	return id;
}

/* The newest run id of dag (malloc'd), or NULL when it has none. */
static char *newest_run(cli_backend *b, const char *dag)
{
	cli_answer a = {0};
	char *path = cli_path("/api/v1/dags/%s/runs?order_by=-queued_at&limit=1", dag), *id = NULL;
	if (cli_request(b, "GET", path, NULL, &a) == 200) {
		json_object *first = json_object_array_get_idx(cli_data(&a), 0);
		if (first)
			id = strdup(cli_str(first, "run_id"));
	}
	cli_answer_free(&a);
	free(path);
	return id;
}

/* --- the runner when there is none ----------------------------------------------- */

/* Whether a runner holds the project's lock. */
static bool runner_alive(const char *database)
{
	char *path = pw_asprintf("%s.lock", database);
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	bool held = false;
	if (fd >= 0) {
		held = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
		close(fd);   /* lets go of the lock, if it was ours */
	}
	free(path);
	return held;
}

/*
 * Starts `pipewright-runner --once` for the project of o in its own
 * process group (a Ctrl-C of ours is not its), its output to
 * "<database>.run.log". Returns its pid, or -1 after saying why.
 */
static pid_t start_runner(const cli_opts *o, const char *database)
{
	char *prog = find_own_program("pipewright-runner", "runner-daemon");
	char *log = pw_asprintf("%s.run.log", database);
	const char *argv[12];
	size_t n = 0;
	pid_t pid = -1;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	if (!prog) {
		cli_error(0, "no runner is running and pipewright-runner is not installed beside "
			  "pipewright; start one with `pipewright server start`");
		free(log);
		return -1;
	}
	argv[n++] = prog;
	if (o->project.path) {
		argv[n++] = "--project";
		argv[n++] = o->project.path;
	}
	if (o->project.env) {
		argv[n++] = "--env";
		argv[n++] = o->project.env;
	}
	if (o->project.conf_source) {
		argv[n++] = "--conf-source";
		argv[n++] = o->project.conf_source;
	}
	argv[n++] = "--once";
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log ? log : "/dev/null",
					 O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
	int err = posix_spawn(&pid, prog, &fa, &attr, (char *const *)argv, environ);
	if (err) {
		cli_error(0, "cannot start %s: %s", prog, strerror(err));
		pid = -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	free(prog);
	free(log);
	return pid;
}

/* --- progress ------------------------------------------------------------------------ */

typedef struct progress {
	bool tty;
	char last[512];            /* the last line shown (plain mode: printed once) */
	pw_strv tailed;            /* failed tasks whose log was shown */
	struct timespec t0;
} progress;

static double elapsed_s(const progress *p)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - p->t0.tv_sec) + (double)(now.tv_nsec - p->t0.tv_nsec) / 1e9;
}

static bool ended_state(const char *s)
{
	static const char *const ended[] = {"success", "failed", "skipped", "upstream_failed",
					    "cancelled"};
	for (size_t i = 0; i < sizeof ended / sizeof *ended; i++)
		if (strcmp(s, ended[i]) == 0)
			return true;
	return false;
}

/* The last TAIL_LINES lines of a failed task's log, on stderr. */
static void tail_log(cli_backend *b, const char *dag, const char *run, const char *task,
		     const progress *p)
{
	cli_answer a = {0};
	char *path = cli_path("/api/v1/dags/%s/runs/%s/tasks/%s/logs", dag, run, task);
	if (cli_request(b, "GET", path, NULL, &a) == 200) {
		size_t start = a.len, lines = 0;
		while (start > 0 && lines <= TAIL_LINES)
			if (a.body[--start] == '\n' && start + 1 < a.len)
				lines++;
		if (lines > TAIL_LINES)
			start++;
		if (p->tty)
			fputs("\r\033[K", stderr);
		fprintf(stderr, "--- %s failed; the end of its log:\n", task);
		fwrite(a.body + start, 1, a.len - start, stderr);
		if (a.len && a.body[a.len - 1] != '\n')
			fputc('\n', stderr);
		fprintf(stderr, "--- (pipewright logs %s %s %s)\n", dag, run, task);
	}
	cli_answer_free(&a);
	free(path);
}

/* Shows the run's progress; returns its state (malloc'd) or NULL. */
static char *show_progress(cli_backend *b, const char *dag, const char *run, progress *p)
{
	cli_answer a = {0};
	char *path = cli_path("/api/v1/dags/%s/runs/%s", dag, run), *state = NULL;
	if (cli_request(b, "GET", path, NULL, &a) != 200 || !cli_data(&a))
		goto out;
	json_object *r = cli_data(&a), *tis = NULL;
	json_object_object_get_ex(r, "task_instances", &tis);
	size_t total = cli_len(tis), done = 0;
	char running[256] = "";
	size_t rlen = 0;
	state = strdup(cli_str(r, "state"));
	for (size_t i = 0; i < total; i++) {
		json_object *t = json_object_array_get_idx(tis, i);
		const char *s = cli_str(t, "state"), *id = cli_str(t, "task_id");
		done += ended_state(s);
		if (strcmp(s, "running") == 0 && rlen + strlen(id) + 3 < sizeof running)
			rlen += (size_t)snprintf(running + rlen, sizeof running - rlen, "%s%s",
						 rlen ? ", " : "", id);
		if (strcmp(s, "failed") == 0 && !pw_strv_contains(&p->tailed, id)) {
			pw_strv_push(&p->tailed, id);
			tail_log(b, dag, run, id, p);
			p->last[0] = '\0';
		}
	}
	char line[512];
	snprintf(line, sizeof line, "%s %s: %s, %zu/%zu tasks done%s%s", dag, run, state, done,
		 total, rlen ? "; running: " : "", running);
	if (p->tty) {
		fprintf(stderr, "\r\033[K%s (%.0f s)", line, elapsed_s(p));
	} else if (strcmp(line, p->last) != 0) {
		fprintf(stderr, "%s (%.1f s)\n", line, elapsed_s(p));
	}
	fflush(stderr);
	snprintf(p->last, sizeof p->last, "%s", line);
out:
	cli_answer_free(&a);
	free(path);
	return state;
}

/* Asks the server to cancel the run (the first Ctrl-C). */
static void cancel_run(cli_backend *b, const char *dag, const char *run)
{
	cli_answer a = {0};
	char *path = cli_path("/api/v1/dags/%s/runs/%s", dag, run);
	fprintf(stderr, "\npipewright: cancelling %s %s (Ctrl-C again leaves it running)\n", dag, run);
	cli_request(b, "DELETE", path, NULL, &a);
	cli_answer_free(&a);
	free(path);
}

/* --- the command -------------------------------------------------------------------- */

/* Prints the /run answer: the outcome line, or --json the body. Returns the exit code. */
static int report(const cli_opts *o, const cli_answer *a, const progress *p)
{
	if (p->tty)
		fputs("\r\033[K", stderr);
	if (a->status != 200 || !a->json || !json_object_object_get_ex(a->json, "status", NULL)) {
		if (a->status == 422 && a->json) {
			json_object *detail = json_object_object_get(a->json, "detail");
			for (size_t i = 0; i < cli_len(detail); i++) {
				json_object *d = json_object_array_get_idx(detail, i);
				json_object *loc = json_object_object_get(d, "loc");
				cli_error(0, "%s: %s",
					  json_object_get_string(json_object_array_get_idx(loc, 1)),
					  cli_str(d, "msg"));
			}
			return CLI_USAGE;
		}
		return cli_fail(a, "cannot run");
	}
	json_object *err = json_object_object_get(a->json, "error");
	if (o->json)
		printf("%.*s\n", (int)a->len, a->body);   /* the whole answer: /run has no envelope */
	else if (err)
		printf("run %s failed after %s ms: %s: %s\n", cli_str(a->json, "run_id"),
		       cli_str(a->json, "duration_ms"), cli_str(err, "type"), cli_str(err, "message"));
	else
		printf("run %s succeeded in %s ms\n", cli_str(a->json, "run_id"),
		       cli_str(a->json, "duration_ms"));
	return err ? CLI_FAIL : CLI_OK;
}

int cli_run(cli_backend *b, const cli_opts *o)
{
	if (o->n_args)
		return cli_error(CLI_USAGE, "run takes no arguments (select with --pipeline, "
				 "--nodes, ...; pipewright run --help)");
	run_call call = {.b = b, .body = run_body(o)};
	progress p = {.tty = isatty(2) && !o->json};
	char *dag = run_dag_id(o), *before = NULL, *run = NULL, *state = NULL;
	pid_t runner = -1;
	int rc = CLI_FAIL, interrupts = 0;
	if (!call.body) {
		free(dag);
		return CLI_USAGE;
	}
	clock_gettime(CLOCK_MONOTONIC, &p.t0);
	before = newest_run(b, dag);
	if (pthread_create(&call.tid, NULL, run_thread, &call) != 0) {
		cli_error(0, "cannot start a thread");
		goto out;
	}
	while (!__atomic_load_n(&call.done, __ATOMIC_ACQUIRE)) {
		nanosleep(&(struct timespec){0, POLL_MS * 1000 * 1000}, NULL);
		if (cli_interrupted) {
			cli_interrupted = 0;
			if (++interrupts > 1 || !run) {
				fprintf(stderr, "\npipewright: left; %s goes on\n", run ? run : "the run");
				rc = CLI_FAIL;
				goto out;   /* exit() ends the waiting thread */
			}
			cancel_run(b, dag, run);
		}
		if (!run) {
			char *newest = newest_run(b, dag);
			if (newest && (!before || strcmp(newest, before) != 0))
				run = newest;
			else
				free(newest);
			if (run && cli_backend_is_local(b) && !runner_alive(cli_backend_database(b)))
				runner = start_runner(o, cli_backend_database(b));
			continue;
		}
		free(state);
		state = show_progress(b, dag, run, &p);
		int status;
		if (runner > 0 && waitpid(runner, &status, WNOHANG) == runner) {
			runner = -1;
			/* --once drained what it could; a run still queued waits for another runner */
			if (state && strcmp(state, "queued") == 0 && !runner_alive(cli_backend_database(b))) {
				cli_error(0, "%s %s stays queued (is the DAG paused, or max_active_runs "
					  "reached?); it runs when a runner can start it", dag, run);
				goto out;
			}
		}
	}
	pthread_join(call.tid, NULL);
	if (run)
		free(show_progress(b, dag, run, &p));   /* the last tasks' logs */
	rc = report(o, &call.answer, &p);
	if (runner > 0)
		waitpid(runner, NULL, 0);
	cli_answer_free(&call.answer);
	json_object_put(call.body);
out:
	pw_strv_free(&p.tailed);
	free(dag);
	free(before);
	free(run);
	free(state);
	if (rc != CLI_OK && !call.done)
		exit(rc);   /* the POST /run thread still waits */
	return rc;
}
