/*
 * slurm.c - the tries of runs whose runner is a `type: slurm` entry of
 * settings.runners (docs/runner.md, "Slurm runner"). Each try is one batch
 * job; the cluster shares the file system with the runner.
 *
 *   start   (in the step that starts the try, before its commit) the
 *           runner writes two files beside the try's log: <try>.slurm.json,
 *           the try (working directory, command, complete environment, log
 *           and status paths), and <try>.sbatch, a batch script that execs
 *           `pipewright-runner --slurm-job` with that file on stdin.
 *   submit  (at the start of the next step, after the commit) `sbatch
 *           --parsable [--partition=P] [sbatch_args...]`, run in the task's
 *           folder with the script on stdin, its stdout (the job id) going
 *           to <try>.jobid and its stderr to the try's log. The job id is
 *           then stored with the try (task_tries.external_id).
 *   run     on the node, the job runs the local shim (launch.c) without a
 *           socket: the task gets exactly the try's environment plus the
 *           job's SLURM_* variables; the shim writes <try>.status at the end.
 *   follow  every poll_interval, one `squeue` for all the runner's jobs,
 *           then the status files. A status file ends the try as a local
 *           try ends. A job Slurm no longer runs and that left no status
 *           within status_wait seconds is lost. The task's timeout counts
 *           from when Slurm runs the job; at the timeout and at a cancel
 *           the runner calls scancel (and later scancel --signal=KILL).
 *
 * It is a backend (runner.h's rn_backend): it reports ended tries to the
 * executor (rn_report_end) and calls nothing above it.
 *
 * Every Slurm command runs at the start of a step, before the step writes
 * anything (so the database is never locked while Slurm answers), through
 * posix_spawn with an argv array and a time limit: no shell, and no value
 * of a request on a command line (paths that hold a run id are sbatch's
 * working directory and files, not arguments).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jsonput.h"
#include "launch.h"
#include "runner.h"

#define SBATCH_TIMEOUT_MS 30000   /* sbatch waits for a busy controller */
#define SCANCEL_TIMEOUT_MS 10000
#define SQUEUE_TIMEOUT_MS 10000
#define CMD_OUTPUT_MAX (4 << 20)  /* squeue's answer for thousands of jobs */
#define SPEC_MAX (16 << 20)       /* the spec a job reads */

/* Defaults of the options (docs/runner.md). */
#define DEFAULT_POLL_MS 1000
#define DEFAULT_TIME_MARGIN 60
#define DEFAULT_STATUS_WAIT 30

extern char **environ;

/* A `type: slurm` runner's options, copied for a run (it outlives reloads). */
typedef struct sl_conf {
	pw_strv sbatch;         /* sbatch --parsable [--partition=P] [sbatch_args] */
	char **sbatch_argv;     /* its NULL-terminated view */
	long long poll_ms;
	int time_margin;        /* s added to a task's timeout for --time */
	long long status_wait_ms;
} sl_conf;

/* The job of a running Slurm try (rn_task.job). */
typedef struct sl_job {
	long long id;           /* 0 until sbatch answered */
	bool id_new;            /* learned in this step: to store */
	long long await_until;  /* recovery: sbatch may still answer until then */
	bool failed;            /* not submitted; why says why */
	enum { SIG_NONE, SIG_TERM, SIG_KILL } signal; /* scancel to send */
	bool polled;            /* the last poll reached Slurm */
	bool listed;            /* ... and Slurm knew the job */
	bool has_status;        /* the status file exists */
	char state[24];         /* its Slurm state at the last poll */
	long long elapsed;      /* s it has run, at the last poll */
	long long gone_at;      /* first poll that found it over, without status */
	char why[160];          /* why it ended without a status, or "" */
} sl_job;

/* The backend's state. */
typedef struct sl_state {
	long long due;          /* when slurm_poll has work, or 0: none */
	long long poll_at;      /* when to ask Slurm about its jobs next */
} sl_state;

/* The Slurm backend's state (slurm_open's). */
static sl_state *state_of(runner *r)
{
	return rn_backend_state(r, &rn_slurm_backend);
}

/* Nothing due until a Slurm try is prepared or recovered. */
static int slurm_open(runner *r, void **state)
{
	(void)r;
	*state = calloc(1, sizeof(sl_state));
	return *state ? PW_OK : PW_ERR;
}

/* Frees the state; jobs run on, and the next runner follows them. */
static void slurm_close(runner *r, void *state)
{
	(void)r;
	free(state);
}

/* --- configuration ---------------------------------------------------------- */

/* The sbatch command line of a runner: fixed options and the runner's own. */
static int sbatch_argv(sl_conf *c, json_object *spec)
{
	json_object *partition = json_object_object_get(spec, "partition");
	json_object *args = json_object_object_get(spec, "sbatch_args");
	char *opt = partition ? pw_asprintf("--partition=%s", json_object_get_string(partition))
			      : NULL;
	int rc = pw_strv_push(&c->sbatch, "sbatch") || pw_strv_push(&c->sbatch, "--parsable") ||
		 (partition && (!opt || pw_strv_push(&c->sbatch, opt))) ? -1 : 0;
	for (size_t i = 0; rc == 0 && args && i < json_object_array_length(args); i++)
		rc = pw_strv_push(&c->sbatch,
				  json_object_get_string(json_object_array_get_idx(args, i)));
	free(opt);
	if (rc == 0 && !(c->sbatch_argv = pw_env_vector(&c->sbatch)))
		rc = -1;
	return rc;
}

static void slurm_conf_free(void *conf);

/* settings.runners[name] (checked at load: src/project.c) → a run's copy. */
static int slurm_conf_new(const pw_project *p, const char *name, void **conf)
{
	json_object *spec = json_object_object_get(
		json_object_object_get(p->settings, "runners"), name);
	json_object *v;
	sl_conf *c = calloc(1, sizeof *c);
	*conf = NULL;
	if (!c)
		return PW_ERR;
	c->poll_ms = DEFAULT_POLL_MS;
	c->time_margin = DEFAULT_TIME_MARGIN;
	c->status_wait_ms = DEFAULT_STATUS_WAIT * 1000LL;
	if (json_object_object_get_ex(spec, "poll_interval", &v))
		c->poll_ms = (long long)(json_object_get_double(v) * 1000);
	if (json_object_object_get_ex(spec, "time_margin", &v))
		c->time_margin = json_object_get_int(v);
	if (json_object_object_get_ex(spec, "status_wait", &v))
		c->status_wait_ms = json_object_get_int64(v) * 1000;
	if (sbatch_argv(c, spec) != 0) {
		slurm_conf_free(c);
		return PW_ERR;
	}
	*conf = c;
	return PW_OK;
}

static void slurm_conf_free(void *conf)
{
	sl_conf *c = conf;
	if (!c)
		return;
	free(c->sbatch_argv);
	pw_strv_free(&c->sbatch);
	free(c);
}

/* Frees a try's job record. */
static void slurm_try_free(rn_task *k)
{
	free(k->job);
	k->job = NULL;
}

/* Why a Slurm try ended without a status (not submitted, lost), or NULL. */
static const char *slurm_why(const rn_run *run, size_t t)
{
	const sl_job *j = run->tasks[t].job;
	return j && j->why[0] ? j->why : NULL;
}

/* --- running a Slurm command ----------------------------------------------- */

/* One Slurm client command. */
typedef struct sl_cmd {
	char *const *argv;
	const char *dir;   /* working directory, or NULL */
	const char *in;    /* stdin: a file (relative to dir), or NULL: /dev/null */
	const char *out;   /* stdout: a file it replaces, or NULL: captured, */
	const char *err;   /* with stderr; else stderr is appended to this file */
	int timeout_ms;
} sl_cmd;

/*
 * The child's side of c: its working directory and stdio (stdout and
 * stderr on capture_w when c->out is NULL), default SIGPIPE (the runner
 * ignores it) and no blocked signal. Nonzero on failure.
 */
static int spawn_setup(const sl_cmd *c, int capture_w, posix_spawn_file_actions_t *fa,
		       posix_spawnattr_t *at)
{
	sigset_t none, dflt;
	sigemptyset(&none);
	sigemptyset(&dflt);
	sigaddset(&dflt, SIGPIPE);
	int rc = posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK) ||
		 posix_spawnattr_setsigdefault(at, &dflt) || posix_spawnattr_setsigmask(at, &none) ||
		 (c->dir && posix_spawn_file_actions_addchdir_np(fa, c->dir)) ||
		 posix_spawn_file_actions_addopen(fa, 0, c->in ? c->in : "/dev/null", O_RDONLY, 0);
	if (rc || !c->out)
		return rc || posix_spawn_file_actions_adddup2(fa, capture_w, 1) ||
		       posix_spawn_file_actions_adddup2(fa, capture_w, 2);
	return posix_spawn_file_actions_addopen(fa, 1, c->out, O_WRONLY | O_CREAT | O_TRUNC, 0644) ||
	       posix_spawn_file_actions_addopen(fa, 2, c->err, O_WRONLY | O_CREAT | O_APPEND, 0644);
}

/* Starts c (see spawn_setup). Its pid, or -1 with errno set. */
static pid_t cmd_spawn(const sl_cmd *c, int capture_w)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	pid_t pid = -1;
	if (posix_spawn_file_actions_init(&fa) != 0)
		return -1;
	if (posix_spawnattr_init(&at) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	int rc = spawn_setup(c, capture_w, &fa, &at) ? ENOMEM
		 : posix_spawnp(&pid, c->argv[0], &fa, &at, c->argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	errno = rc;
	return rc ? -1 : pid;
}

/* Appends what fd has to *buf (*len, at most CMD_OUTPUT_MAX). 1 at EOF. */
static int cmd_read(int fd, char **buf, size_t *len)
{
	char chunk[4096];
	ssize_t n = read(fd, chunk, sizeof chunk);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : 1;
	if (n == 0)
		return 1;
	if (*len + (size_t)n > CMD_OUTPUT_MAX)
		return 0; /* keep the beginning; drain the rest */
	char *grown = realloc(*buf, *len + (size_t)n + 1);
	if (!grown)
		return 1;
	*buf = grown;
	memcpy(*buf + *len, chunk, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = '\0';
	return 0;
}

/*
 * Reads capture_r (or -1) to its end, then waits for pid (on a pidfd, else
 * every 10 ms), until deadline; then SIGKILL. The wait status, or -1.
 */
static int cmd_wait(pid_t pid, int capture_r, long long deadline, char **buf, size_t *len)
{
	int pidfd = pw_pidfd_open(pid), status = -1;
	bool eof = capture_r < 0;
	for (;;) {
		pid_t w = eof ? waitpid(pid, &status, WNOHANG) : 0;
		if (w == pid || (w < 0 && errno != EINTR))
			break;
		long long left = deadline - pw_now_ms();
		if (left <= 0) {
			kill(pid, SIGKILL);
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
			status = -1;
			break;
		}
		struct pollfd p = {.fd = eof ? pidfd : capture_r, .events = POLLIN};
		int ms = left > 60000 ? 60000 : (int)left;
		if (p.fd < 0 && ms > 10)
			ms = 10;
		if (poll(&p, p.fd < 0 ? 0 : 1, ms) > 0 && !eof)
			eof = cmd_read(capture_r, buf, len) != 0;
	}
	if (pidfd >= 0)
		close(pidfd);
	return status;
}

/*
 * Runs c to its end or its time limit (then SIGKILL). Returns its exit
 * status, or -1 with *why set (it could not start, died of a signal, or
 * ran out of time). With c->out NULL, *text (when text is not NULL) gets
 * its output (malloc'd or NULL); with text NULL the output is dropped.
 */
static int cmd_run(const sl_cmd *c, char **text, const char **why)
{
	int pipefd[2] = {-1, -1}, status;
	size_t len = 0;
	char *unwanted = NULL;
	if (!text)
		text = &unwanted; /* read and dropped: the child must not block */
	*text = NULL;
	if (!c->out && pipe2(pipefd, O_CLOEXEC) != 0) {
		*why = strerror(errno);
		return -1;
	}
	pid_t pid = cmd_spawn(c, pipefd[1]);
	int e = errno;
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (pid < 0) {
		*why = strerror(e);
		status = -1;
	} else {
		status = cmd_wait(pid, pipefd[0], pw_now_ms() + c->timeout_ms, text, &len);
		*why = status == -1 ? "no answer in time" : "killed by a signal";
	}
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	free(unwanted);
	return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* --- the try's files ---------------------------------------------------------- */

/* 'text' with every ' as '\'' : one word for /bin/sh. malloc'd. */
static char *sh_quote(const char *s)
{
	size_t n = 3;
	for (const char *p = s; *p; p++)
		n += *p == '\'' ? 4 : 1;
	char *q = malloc(n), *o = q;
	if (!q)
		return NULL;
	*o++ = '\'';
	for (; *s; s++) {
		if (*s == '\'') {
			memcpy(o, "'\\''", 4);
			o += 4;
		} else {
			*o++ = *s;
		}
	}
	*o++ = '\'';
	*o = '\0';
	return q;
}

/* Writes text to path (mode) through path.tmp and rename. 0 or -1. */
static int write_file(const char *path, const char *text, mode_t mode)
{
	char *tmp = pw_asprintf("%s.tmp", path);
	int fd = tmp ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode) : -1;
	int rc = fd >= 0 ? pw_write_all(fd, text, strlen(text)) : -1;
	if (fd >= 0 && close(fd) != 0)
		rc = -1;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -1;
	if (rc != 0 && tmp)
		unlink(tmp);
	free(tmp);
	return rc;
}

/* Adds the strings of v as a new JSON array under key. 0 or -1. */
static int put_strings(json_object *o, const char *key, char *const *v)
{
	json_object *a = json_object_new_array();
	if (pw_json_put(o, key, a) != 0)
		return -1;
	for (; *v; v++)
		if (pw_json_push(a, json_object_new_string(*v)) != 0)
			return -1;
	return 0;
}

/* The spec of a try: what the job's shim needs (launch.h's pw_launch). */
static char *spec_json(const pw_launch *l)
{
	json_object *o = json_object_new_object();
	char *text = NULL;
	if (!o || pw_json_put(o, "workdir", json_object_new_string(l->workdir)) ||
	    pw_json_put(o, "log", json_object_new_string(l->log_path)) ||
	    pw_json_put(o, "status", json_object_new_string(l->status_path)) ||
	    pw_json_put_int(o, "max_log", l->max_log) ||
	    (l->argv ? put_strings(o, "argv", l->argv)
		     : pw_json_put(o, "shell", json_object_new_string(l->shell))) ||
	    put_strings(o, "env", l->env))
		goto out;
	text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE));
out:
	json_object_put(o);
	return text;
}

/*
 * The batch script: its #SBATCH lines hold only the task's name (a DAG
 * id), fixed options and numbers; paths are relative to the task's
 * folder, where sbatch runs. Slurm's own messages go to the try's log.
 */
static char *batch_script(const runner *r, const pw_task *task, const sl_conf *c,
			  int try_number)
{
	char limit[64] = "";
	char *exe = sh_quote(r->cfg.exe);
	if (task->timeout > 0)
		snprintf(limit, sizeof limit, "#SBATCH --time=%lld\n",
			 ((long long)task->timeout + c->time_margin + 59) / 60);
	char *s = exe ? pw_asprintf("#!/bin/sh\n"
				    "#SBATCH --job-name=%s\n"
				    "#SBATCH --output=%d.log\n"
				    "#SBATCH --open-mode=append\n"
				    "#SBATCH --no-requeue\n"
				    "%s"
				    "exec %s --slurm-job <%d.slurm.json\n",
				    task->name, try_number, limit, exe, try_number)
		      : NULL;
	free(exe);
	return s;
}

/* Path of one of the try's files; malloc'd. */
static char *try_file(const rn_run *run, size_t t, const char *ext)
{
	return rn_try_path(run, t, run->tasks[t].try_number, ext);
}

/* The task's folder, which holds its tries' files; malloc'd. */
static char *task_dir(const rn_run *run, size_t t)
{
	return pw_asprintf("%s/%s", run->dir, run->dag->tasks[t].name);
}

/*
 * Prepares the try of task t (l: its launch): writes its spec and batch
 * script and sets tasks[t].job. The job is submitted by the first poll
 * after the commit.
 */
static int slurm_prepare(runner *r, rn_run *run, size_t t, const pw_launch *l,
			 long long *proc_start)
{
	rn_task *k = &run->tasks[t];
	(void)proc_start; /* no process here */
	char *dir = task_dir(run, t);
	char *spec_path = try_file(run, t, "slurm.json"), *script_path = try_file(run, t, "sbatch");
	char *jobid = try_file(run, t, "jobid");
	char *spec = spec_json(l);
	char *script = r->cfg.exe ? batch_script(r, &run->dag->tasks[t], run->backend_conf,
						 k->try_number)
			      : NULL;
	int rc = PW_ERR;
	if (!r->cfg.exe)
		errno = ENOENT;
	if (dir && spec_path && script_path && jobid && spec && script && pw_mkdirs(dir) == 0 &&
	    write_file(spec_path, spec, 0600) == 0 && write_file(script_path, script, 0644) == 0 &&
	    (k->job = calloc(1, sizeof(sl_job))) != NULL) {
		remove(jobid); /* files of an earlier runner's attempt must not count */
		remove(l->status_path);
		state_of(r)->due = pw_now_ms(); /* submit once this step has committed */
		rc = PW_OK;
	}
	free(dir);
	free(spec_path);
	free(script_path);
	free(jobid);
	free(spec);
	free(script);
	return rc;
}

/* --- submitting, signalling, asking ------------------------------------------- */

/* The job id sbatch --parsable wrote ("123" or "123;cluster"), or 0. */
static long long read_job_id(const char *path, bool *exists)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	*exists = fd >= 0;
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	char *end;
	long long id = strtoll(buf, &end, 10);
	return end != buf && id > 0 && (*end == '\0' || *end == '\n' || *end == ';') ? id : 0;
}

/*
 * Runs sbatch for a try whose start is committed: in the task's folder,
 * the script on stdin, the job id to <try>.jobid, errors to the log.
 */
static void submit(runner *r, rn_run *run, size_t t)
{
	sl_job *j = run->tasks[t].job;
	const sl_conf *conf = run->backend_conf;
	int n = run->tasks[t].try_number;
	char in[32], out[32], err[32];
	char *dir = task_dir(run, t), *path = NULL;
	const char *why = "out of memory";
	snprintf(in, sizeof in, "%d.sbatch", n);
	snprintf(out, sizeof out, "%d.jobid", n);
	snprintf(err, sizeof err, "%d.log", n);
	sl_cmd cmd = {conf->sbatch_argv, dir, in, out, err, SBATCH_TIMEOUT_MS};
	int st = dir ? cmd_run(&cmd, NULL, &why) : -1;
	bool exists;
	if (st == 0 && (path = pw_asprintf("%s/%s", dir, out)) &&
	    (j->id = read_job_id(path, &exists)) > 0)
		j->id_new = true;
	else if (st >= 0)
		snprintf(j->why, sizeof j->why, "cannot submit to Slurm: sbatch %s (see the log)",
			 st == 0 ? "printed no job id" : "failed");
	else
		snprintf(j->why, sizeof j->why, "cannot submit to Slurm: sbatch: %s", why);
	j->failed = j->id == 0;
	if (j->failed)
		rn_error(r, "task %s/%s/%s: %s", run->dag_id, run->run_id,
			 run->dag->tasks[t].name, j->why);
	free(path);
	free(dir);
}

/* Recovery left a try whose sbatch may still answer: look again. */
static void await_id(rn_run *run, size_t t, long long now)
{
	sl_job *j = run->tasks[t].job;
	char *path = try_file(run, t, "jobid");
	bool exists;
	if (path && (j->id = read_job_id(path, &exists)) > 0) {
		j->id_new = true;
		j->await_until = 0;
	} else if (now >= j->await_until) {
		snprintf(j->why, sizeof j->why, "lost: sbatch gave no job id (see the log)");
		j->failed = true;
	}
	free(path);
}

/* scancel (TERM: Slurm's own TERM, KillWait, KILL), or KILL at once. */
static void send_signal(runner *r, sl_job *j)
{
	char id[32];
	const char *why;
	snprintf(id, sizeof id, "%lld", j->id);
	char *term[] = {"scancel", id, NULL};
	char *kill9[] = {"scancel", "--signal=KILL", "--full", id, NULL};
	sl_cmd c = {j->signal == SIG_KILL ? kill9 : term, NULL, NULL, NULL, NULL,
		    SCANCEL_TIMEOUT_MS};
	int st = cmd_run(&c, NULL, &why);
	if (st != 0)
		rn_error(r, "scancel of Slurm job %lld: %s", j->id, st < 0 ? why : "failed");
	j->signal = SIG_NONE;
}

/* Asks for scancel of a Slurm try (SIGKILL: to every step at once). */
static void slurm_signal(runner *r, rn_run *run, size_t t, int sig)
{
	sl_job *j = run->tasks[t].job;
	j->signal = sig == SIGKILL ? SIG_KILL : SIG_TERM;
	state_of(r)->due = pw_now_ms();
}

/* The job of r->fl.procs[i] when it is a Slurm try, or NULL. */
static sl_job *proc_job(const runner *r, size_t i)
{
	const rn_proc *p = &r->fl.procs[i];
	return p->run->backend == &rn_slurm_backend ? p->run->tasks[p->t].job : NULL;
}

/* Seconds of squeue's %M: [days-][hours:]minutes:seconds. */
static long long parse_elapsed(const char *s)
{
	long long days = 0, v[3] = {0, 0, 0}, total = 0;
	int n = 0;
	const char *dash = strchr(s, '-');
	if (dash) {
		days = strtoll(s, NULL, 10);
		s = dash + 1;
	}
	for (char *end; n < 3 && *s; s = *end == ':' ? end + 1 : end) {
		v[n++] = strtoll(s, &end, 10);
		if (end == s)
			break;
	}
	for (int i = 0; i < n; i++)
		total = total * 60 + v[i];
	return days * 86400 + total;
}

/* Applies one line of squeue ("ID STATE ELAPSED") to its job. */
static void apply_line(runner *r, const char *line)
{
	long long id;
	char state[24], elapsed[32];
	if (sscanf(line, "%lld %23s %31s", &id, state, elapsed) != 3)
		return;
	for (size_t i = 0; i < r->fl.n_running; i++) {
		sl_job *j = proc_job(r, i);
		if (j && j->id == id) {
			j->listed = true;
			snprintf(j->state, sizeof j->state, "%s", state);
			j->elapsed = parse_elapsed(elapsed);
		}
	}
}

/* "--jobs=1,2,3" for every submitted job; NULL when none (or OOM). */
static char *jobs_arg(const runner *r)
{
	size_t cap = 16, len = 0;
	char *s = NULL;
	for (size_t i = 0; i < r->fl.n_running; i++) {
		sl_job *j = proc_job(r, i);
		if (!j || !j->id)
			continue;
		if (!s || len + 24 > cap) {
			char *grown = realloc(s, cap = cap * 2 + 32);
			if (!grown) {
				free(s);
				return NULL;
			}
			s = grown;
		}
		len += (size_t)sprintf(s + len, "%s%lld", len ? "," : "--jobs=", j->id);
	}
	return s;
}

/*
 * Asks Slurm about every submitted job in one squeue, then looks for
 * their status files (after squeue: a job Slurm reports over has written
 * its status by then, unless the file system lags).
 */
static void query(runner *r)
{
	char *jobs = jobs_arg(r), *text = NULL;
	char *argv[] = {"squeue", "--noheader", "--states=all", "--format=%i %T %M", jobs, NULL};
	const char *why = "out of memory";
	sl_cmd c = {argv, NULL, NULL, NULL, NULL, SQUEUE_TIMEOUT_MS};
	if (!jobs)
		return;
	int st = cmd_run(&c, &text, &why);
	/* Slurm answers "Invalid job id" when it knows none of them. */
	bool answered = st == 0 || (st > 0 && text && strstr(text, "Invalid job id"));
	for (size_t i = 0; i < r->fl.n_running; i++) {
		sl_job *j = proc_job(r, i);
		if (j && j->id) {
			j->polled = answered;
			j->listed = false;
		}
	}
	for (char *line = text, *nl; st == 0 && line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		apply_line(r, line);
	}
	if (!answered) {
		if (text)
			text[strcspn(text, "\n")] = '\0'; /* its first line says why */
		rn_error(r, "squeue: %s%s", st < 0 ? why : "failed: ", st < 0 || !text ? "" : text);
	}
	for (size_t i = 0; i < r->fl.n_running; i++) {
		sl_job *j = proc_job(r, i);
		char *status = j && j->id ? try_file(r->fl.procs[i].run, r->fl.procs[i].t, "status") : NULL;
		if (status)
			j->has_status = access(status, F_OK) == 0;
		free(status);
	}
	free(text);
	free(jobs);
}

/* Every Slurm command of this step; true when it polled. */
static bool step_io(runner *r, long long now)
{
	for (size_t i = 0; i < r->fl.n_running; i++) {
		rn_run *run = r->fl.procs[i].run;
		size_t t = r->fl.procs[i].t;
		sl_job *j = proc_job(r, i);
		if (!j || j->failed)
			continue;
		if (!j->id && j->await_until)
			await_id(run, t, now);
		else if (!j->id && !run->tasks[t].stop)
			submit(r, run, t);
		if (j->id && j->signal != SIG_NONE)
			send_signal(r, j);
	}
	if (now < state_of(r)->poll_at)
		return false;
	query(r);
	return true;
}

/* --- recording --------------------------------------------------------------- */

/* Slurm states in which a job will not run (any more). */
static bool state_is_over(const char *s)
{
	static const char *const over[] = {
		"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
		"OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "TIMEOUT",
	};
	for (size_t i = 0; i < sizeof over / sizeof *over; i++)
		if (strcmp(s, over[i]) == 0)
			return true;
	return false;
}

/*
 * Whether a polled job has ended for us: its status is there, or Slurm
 * is done with it and (unless we stopped it) no status came in time.
 */
static bool poll_says_ended(rn_run *run, size_t t, long long now)
{
	rn_task *k = &run->tasks[t];
	sl_job *j = k->job;
	const sl_conf *conf = run->backend_conf;
	if (j->has_status)
		return true;
	if (!j->polled || (j->listed && !state_is_over(j->state))) {
		j->gone_at = 0;
		return false;
	}
	if (!j->gone_at)
		j->gone_at = now;
	if (k->stop == STOP_NONE && now - j->gone_at < conf->status_wait_ms)
		return false;
	if (j->listed)
		snprintf(j->why, sizeof j->why, "lost: Slurm job %lld ended %s without a status",
			 j->id, j->state);
	else
		snprintf(j->why, sizeof j->why,
			 "lost: Slurm job %lld is gone without a status", j->id);
	return true;
}

/* The timeout of a running job counts from when Slurm started it. */
static void arm_timeout(rn_run *run, size_t t, long long now)
{
	rn_task *k = &run->tasks[t];
	const sl_job *j = k->job;
	int timeout = run->dag->tasks[t].timeout;
	if (timeout > 0 && !k->timeout_at && j->listed && strcmp(j->state, "RUNNING") == 0)
		k->timeout_at = now + (timeout - j->elapsed) * 1000;
}

/* Records what this step learned of one Slurm try; reports its end (*ended). */
static int record(runner *r, rn_run *run, size_t t, bool polled, long long now, bool *ended)
{
	rn_task *k = &run->tasks[t];
	sl_job *j = k->job;
	char id[32];
	*ended = false;
	if (j->id_new) {
		snprintf(id, sizeof id, "%lld", j->id);
		j->id_new = false;
		rn_info(r, "task %s/%s/%s: Slurm job %lld", run->dag_id, run->run_id,
			run->dag->tasks[t].name, j->id);
		if (st_try_external(r, run, t, id) != PW_OK)
			return PW_ERR;
	}
	if (j->failed || (!j->id && !j->await_until && k->stop != STOP_NONE))
		*ended = true;
	else if (j->id && polled)
		*ended = poll_says_ended(run, t, now);
	if (*ended)
		return rn_report_end(r, run, t);
	if (j->id && polled)
		arm_timeout(run, t, now);
	return PW_OK;
}

/*
 * First thing in a pass, before it writes: submits the tries started in
 * the previous pass, sends the scancels asked for, and every poll interval
 * asks Slurm about its jobs; then records job ids and reports ended tries.
 */
static int slurm_poll(runner *r, long long now)
{
	sl_state *ss = state_of(r);
	if (!ss->due || now < ss->due)
		return PW_OK;
	bool polled = step_io(r, now);
	long long poll_ms = 0;
	now = pw_now_ms(); /* Slurm may have taken a while */
	for (size_t i = 0; i < r->fl.n_running; i++) {
		rn_run *run = r->fl.procs[i].run;
		const sl_conf *conf = run->backend_conf;
		bool ended;
		if (!proc_job(r, i))
			continue;
		if (record(r, run, r->fl.procs[i].t, polled, now, &ended) != PW_OK)
			return PW_ERR;
		if (!ended && (!poll_ms || conf->poll_ms < poll_ms))
			poll_ms = conf->poll_ms;
	}
	if (polled)
		ss->poll_at = now + poll_ms;
	ss->due = poll_ms ? ss->poll_at : 0; /* idle: nothing */
	return PW_OK;
}

/* Wakes the loop when the next poll or submission is due. */
static void slurm_idle(runner *r, long long *next_wake)
{
	long long due = state_of(r)->due;
	if (due && (!*next_wake || due < *next_wake))
		*next_wake = due;
}

/* --- recovery ----------------------------------------------------------------- */

/*
 * Takes over a Slurm try a previous runner left running: follows its job
 * (its end is found by a poll), or submits it when sbatch never ran.
 */
static int slurm_recover(runner *r, rn_run *run, size_t t, long long now, bool *ended)
{
	rn_task *k = &run->tasks[t];
	char *path = try_file(run, t, "jobid");
	sl_job *j = calloc(1, sizeof *j);
	struct stat sb;
	bool exists = false;
	*ended = false;
	k->job = j;
	if (!path || !j || st_try_external_get(r, run, t, &j->id) != PW_OK) {
		free(path);
		return PW_ERR;
	}
	if (!j->id && (j->id = read_job_id(path, &exists)) > 0)
		j->id_new = true; /* sbatch answered; the runner died first */
	else if (!j->id && exists && stat(path, &sb) == 0)
		j->await_until = sb.st_mtime * 1000LL + SBATCH_TIMEOUT_MS;
	if (j->id)
		rn_info(r, "task %s/%s/%s: following Slurm job %lld again", run->dag_id,
			run->run_id, run->dag->tasks[t].name, j->id);
	free(path);
	/* No jobid file at all: sbatch never ran, and will now. */
	state_of(r)->due = state_of(r)->poll_at = now;
	return PW_OK;
}

/* The status file the job's shim wrote. */
static int slurm_result(runner *r, rn_run *run, size_t t, pw_try_result *res)
{
	(void)r;
	return rn_try_status(run, t, res);
}

/* A Slurm try has no process here. */
static void slurm_describe(const rn_run *run, size_t t, char *buf, size_t size)
{
	(void)run, (void)t;
	snprintf(buf, size, "to Slurm");
}

const rn_backend rn_slurm_backend = {
	.type = "slurm",
	.own_timeout = true, /* from when Slurm runs the job */
	.open = slurm_open,
	.close = slurm_close,
	.conf_new = slurm_conf_new,
	.conf_free = slurm_conf_free,
	.prepare = slurm_prepare,
	.signal = slurm_signal,
	.poll = slurm_poll,
	.idle = slurm_idle,
	.recover = slurm_recover,
	.result = slurm_result,
	.describe = slurm_describe,
	.why_lost = slurm_why,
	.try_free = slurm_try_free,
};

/* --- the job's side: pipewright-runner --slurm-job ------------------------------ */

/* Reads all of stdin (at most SPEC_MAX) as JSON. */
static json_object *read_spec(void)
{
	json_tokener *tok = json_tokener_new();
	json_object *o = NULL;
	char buf[65536];
	size_t total = 0;
	ssize_t n;
	while (tok && (n = read(0, buf, sizeof buf)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (total += (size_t)n) > SPEC_MAX)
			break;
		o = json_tokener_parse_ex(tok, buf, (int)n);
		if (o || json_tokener_get_error(tok) != json_tokener_continue)
			break;
	}
	json_tokener_free(tok);
	return o;
}

/* The strings of a JSON array (NULL-terminated, pointing into it). */
static char **strings_of(json_object *a)
{
	size_t n = json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
	char **v = json_object_is_type(a, json_type_array) ? calloc(n + 1, sizeof *v) : NULL;
	for (size_t i = 0; v && i < n; i++)
		if (!(v[i] = (char *)json_object_get_string(json_object_array_get_idx(a, i)))) {
			free(v);
			return NULL;
		}
	return v;
}

static bool is_slurm_var(const char *e)
{
	return strncmp(e, "SLURM_", 6) == 0 || strncmp(e, "SLURMD_", 7) == 0;
}

/* The try's environment with the job's SLURM_* variables instead of any it had. */
static char **job_env(char *const *spec_env)
{
	size_t n = 0, o = 0;
	for (char *const *e = spec_env; *e; e++)
		n++;
	for (char **e = environ; e && *e; e++)
		n++;
	char **v = calloc(n + 1, sizeof *v);
	for (char *const *e = spec_env; v && *e; e++)
		if (!is_slurm_var(*e))
			v[o++] = *e;
	for (char **e = environ; v && e && *e; e++)
		if (is_slurm_var(*e))
			v[o++] = *e;
	return v;
}

/* A string member of the spec, or NULL. */
static const char *spec_string(json_object *spec, const char *key)
{
	json_object *v = json_object_object_get(spec, key);
	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

int slurm_job_main(void)
{
	json_object *spec = read_spec();
	char **argv = spec ? strings_of(json_object_object_get(spec, "argv")) : NULL;
	char **env = spec ? strings_of(json_object_object_get(spec, "env")) : NULL;
	char **full = env ? job_env(env) : NULL;
	pw_launch l = {
		.workdir = spec_string(spec, "workdir"),
		.argv = argv && argv[0] ? argv : NULL,
		.shell = spec_string(spec, "shell"),
		.env = full,
		.log_path = spec_string(spec, "log"),
		.status_path = spec_string(spec, "status"),
		.max_log = json_object_get_int64(json_object_object_get(spec, "max_log")),
	};
	if (spec && full && l.workdir && l.log_path && l.status_path && (l.argv || l.shell)) {
		(void)setsid(); /* the try's group, as pw_fork_session gives a local shim */
		pw_shim_main(&l, -1, -1); /* never returns */
	}
	fprintf(stderr, "pipewright-runner --slurm-job: cannot read the try's spec on stdin\n");
	free(full);
	free(env);
	free(argv);
	json_object_put(spec);
	return 127;
}
