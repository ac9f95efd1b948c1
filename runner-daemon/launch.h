/*
 * launch.h - starting one try of a task, and reading how it ended.
 *
 * Each try runs under a shim: a process the runner forks, which calls
 * setsid() (so the shim's pid is the process group of everything the task
 * starts), forks the task itself, copies the task's stdout and stderr (two
 * pipes) into the log file while remembering the last non-empty line of
 * stdout, waits for it, and hands its status to the runner over the try's
 * socket; when no runner takes it (the runner died), it writes a status
 * file instead (atomically: a temporary file, then rename) before it
 * exits, retrying while the disk is full. The log keeps at most max_log
 * bytes of output and what a full disk refuses is kept in the shim and
 * written when there is room; the log says what was cut or lost.
 *
 * The try ends when the task's process exits (and its output was drained
 * for 100 ms). What it started and left running is left running, the log
 * says so, and the shim copies what those processes still write to the
 * output into the log until they close it (after handing on the end). A
 * try that was signalled (cancel, timeout) leaves nothing: the shim, a
 * subreaper, passes SIGTERM on to the descendants that left the group
 * (setsid) and SIGKILLs every descendant left shortly before the runner's
 * SIGKILL would end the shim itself.
 *
 * The shim survives SIGTERM (the task gets it, through the group; the
 * shim passes it on, see above), so a cancel or timeout still records the
 * task's own end; SIGKILL ends both.
 * Because the shim writes the status file whenever the runner did not
 * commit the end (and the file outlives the runner), a runner that is killed
 * and restarted finds out how every task it started ended, and a shim
 * still running is adopted (see recovery.c): no task is lost or run twice.
 *
 * A shim of the launcher serves try after try: once the runner has acked
 * a try's end it waits on the same socket for the next try, as a spare
 * does, and exits when the socket closes. It does so only when the try
 * left nothing behind: the shim is a child subreaper, so the task's
 * orphans become its children; after the task's end it reaps those that
 * exited, and if one still runs (or stdout stayed open), the shim offers
 * no reuse and exits after the ack. Its own state (descriptors 0-3,
 * signals, cwd, umask, session) is the same before every try; the task
 * gets its environment, cwd and descriptors from the try alone. At any
 * moment a shim runs at most one try, whose row records the shim's pid
 * (also the process group): a shim idle between tries owns no try, and
 * one whose runner died ends its try as above and exits.
 */
#ifndef PW_LAUNCH_H
#define PW_LAUNCH_H

#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>

#include "dag.h"
#include "slice.h"
#include "util.h"

/* The time between the SIGTERM of a cancel or timeout and the SIGKILL. */
#define PW_KILL_GRACE_MS 5000

/* Everything one try needs to start. */
typedef struct pw_launch {
	const char *workdir;        /* absolute: project root or its cwd: */
	char *const *argv;          /* NULL-terminated argv command, or NULL */
	const char *shell;          /* string for /bin/sh -c, or NULL */
	char *const *env;           /* NULL-terminated "NAME=value": the
				     * complete environment of the task */
	const char *log_path;       /* stdout and stderr, appended */
	const char *status_path;    /* written by the shim when the task ends,
				     * in log_path's folder */
	long long max_log;          /* bytes of task output kept in the log
				     * (settings.max_log_bytes); 0: all */
} pw_launch;

/*
 * Forks the shim for l. log_path and status_path are in one folder, which
 * the shim creates when missing (its parent must exist). Returns the
 * shim's pid (> 0), which is also the process group to signal, sets
 * *proc_start to its start time (pw_proc_start_time) and *go_fd to the
 * runner's end of the try's socket; or -1 with errno set.
 *
 * The shim waits on the socket before it runs anything: the runner first
 * commits that the try is running (with this pid), then calls
 * pw_launch_go. If the runner closes go_fd without that - or dies - the
 * shim exits at once, writing nothing: a try the database does not know
 * of never runs. After go, go_fd becomes readable when the task has
 * ended: the shim sends its status on it (one line, pw_launch_read_end)
 * and waits for pw_ack_end, which the runner sends once it has committed
 * the end. Only when the runner is gone (or closes go_fd unacked) does the
 * shim write the status file instead, for the next runner to find. In the
 * child nothing of the runner's state is touched (no SQLite, no stdio
 * buffers); all descriptors but the log are closed before exec. When exec
 * fails, the log says why and the exit code is 127. Such a shim is never
 * reused.
 */
pid_t pw_launch_start(const pw_launch *l, long long *proc_start, int *go_fd);

/*
 * Lets the shim of go_fd start its task and closes go_fd: nobody listens
 * for the end, so the shim writes the status file.
 */
void pw_launch_go(int go_fd);
/* Lets the shim of go_fd start its task; go_fd stays open (see above). */
void pw_launch_go_follow(int go_fd);

/*
 * fork(2) for a shim: the child starts its own session (setsid) before the
 * parent returns, so that from then on kill(-pid) reaches the child's
 * group (cancel and timeouts signal a try's group at once). Returns as
 * fork does; in the parent, once the child has called setsid or died.
 */
pid_t pw_fork_session(void);

/*
 * The shim's body (pw_launch_start; slurm.c with go_r -1, which starts at
 * once and always writes the status file): closes go_w (unless -1),
 * detaches (pw_shim_detach) and runs the try (pw_shim_try) without reuse.
 */
_Noreturn void pw_shim_main(const pw_launch *l, int go_r, int go_w);

/*
 * Drops what the shim inherited from its parent: descriptors above 2 but
 * go_r (moved to 3; returned, or -1 when go_r is -1), stdin/stdout/stderr
 * (now /dev/null), the handlers (all of them unless `clean`: the
 * launcher's children only inherit its SIGCHLD, SIGTERM and SIGINT) and
 * the signal mask; then ignores SIGTERM, SIGINT and SIGHUP. Its session
 * is already its own (pw_fork_session; slurm.c calls setsid). Exits when
 * it cannot move go_r.
 */
int pw_shim_detach(int go_r, bool clean);

/*
 * Runs one try l in a detached shim: opens the log, finds the command on
 * PATH, waits for go on go_r (unless -1), runs the task and hands its
 * status to the runner on go_r (or to the status file). With reuse (the
 * shim is a child subreaper) and a task that left no process and no open
 * stdout behind, it offers to stay ("reuse" in the status it sends), and
 * once acked returns, having freed what the try used: the caller waits
 * for the next try on go_r. Otherwise it exits.
 */
void pw_shim_try(const pw_launch *l, int go_r, bool reuse);

/*
 * Writes all of buf: 0, or -1 (errno). Retries on EINTR and short writes.
 * Async-signal-safe (the shim and the vfork child use it).
 */
int pw_write_all(int fd, const void *buf, size_t len);

/* Sets the disposition of every catchable signal to SIG_DFL. */
void pw_signals_reset(void);

/*
 * The launcher (launcher.c): a small process the runner forks first thing,
 * before it loads a project or opens the database, and that forks the
 * shims on the runner's behalf. Forking a process of a few MB instead of
 * the runner (tens of MB with a 10,000-task DAG) keeps the cost of a try
 * low and flat. It forks them ahead of need: a couple of spare shims wait
 * for their try, so starting a try costs one message, not a fork. Its
 * shims are its children, reaped by it as they exit; the runner follows
 * each through its socket. A shim whose end the runner acked and that
 * offered reuse is kept in the handle and serves a later try before any
 * spare. The launcher, the spares and the kept shims exit when the runner
 * closes its ends of their sockets; running shims go on.
 */
typedef struct pw_launcher pw_launcher;

/* Starts the launcher. Returns the runner's handle, or NULL (errno). */
pw_launcher *pw_launcher_start(void);
/* The launcher's pid (the runner reaps it if it dies). */
pid_t pw_launcher_pid(const pw_launcher *lr);
/*
 * pw_launch_start through a kept shim of lr (the newest; its start time is
 * remembered, not read again), else a spare. Same results.
 */
pid_t pw_launcher_launch(pw_launcher *lr, const pw_launch *l, long long *proc_start,
			 int *go_fd);
/*
 * Asks for spares up to the number kept ready. The runner calls it before
 * it sleeps, so that the forks overlap the tasks, not the commits.
 */
void pw_launcher_refill(pw_launcher *lr);
/*
 * Acks the end on sock (pw_ack_end). When pid (> 0, started at
 * proc_start) offered reuse (pw_try_result.reuse) and lr keeps fewer than
 * max shims, lr keeps it for a later try; else sock is closed and the
 * shim exits. lr may be NULL.
 */
void pw_launcher_ack(pw_launcher *lr, int sock, pid_t pid, long long proc_start,
		     size_t max);
/* Closes lr: the launcher, its spares and kept shims exit; running shims go on. */
void pw_launcher_close(pw_launcher *lr);

/* How a try ended, from its status file. */
typedef struct pw_try_result {
	int exit_code;     /* 0..255; -1 when the task was killed by a signal */
	int signal;        /* the signal that killed it, or 0 */
	char *last_line;   /* last non-empty stdout line (no newline), or NULL */
	bool reuse;        /* the shim offers to run another try (socket only) */
} pw_try_result;

/*
 * Reads a status file. Returns 0 and fills *out, 1 when the file does not
 * exist (the shim has not finished), or -1 when it cannot be read or parsed.
 */
int pw_launch_read_status(const char *status_path, pw_try_result *out);
/*
 * Reads the status the shim sends on its socket (go_fd): one line, or up
 * to end of file. Returns 0 and fills *out, 1 when the shim sent nothing
 * (it is gone without a status, or wrote the file), -1 when it cannot be
 * parsed.
 */
int pw_launch_read_end(int sock, pw_try_result *out);
/*
 * Tells the shim its end is committed (it writes no status file, and
 * exits unless it is kept: pw_launcher_ack); closes sock.
 */
void pw_ack_end(int sock);
void pw_try_result_free(pw_try_result *r);

/*
 * Reads the XCom file a task may write: one JSON object. Returns 0 with
 * *out = the object (caller puts it) or NULL when the file does not exist
 * or is empty; -1 with *err (malloc'd, e.g. "XCom file is not a JSON
 * object") when it holds anything else.
 */
int pw_xcom_read(const char *path, json_object **out, char **err);

/* A process below a shim (proctree.c). */
typedef struct pw_proc {
	pid_t pid;
	pid_t pgid;   /* its process group */
} pw_proc;
typedef struct pw_procs {
	pw_proc *v;
	size_t n;
} pw_procs;
/*
 * Every live descendant of root (its children, theirs, ...), from /proc,
 * parents before children. Returns 0 (free with pw_procs_free) or -1.
 */
int pw_descendants(pid_t root, pw_procs *out);
void pw_procs_free(pw_procs *p);

/* Start time of a process (field 22 of /proc/PID/stat), or -1. */
long long pw_proc_start_time(pid_t pid);

/*
 * A pollable descriptor that becomes readable when process pid exits
 * (pidfd_open), for a shim this runner did not fork; -1 when unsupported.
 */
int pw_pidfd_open(pid_t pid);

/* What the task's environment is built from. */
typedef struct pw_task_env {
	char *const *base;          /* the runner's environ */
	const char *dag_id;
	const char *run_id;
	const pw_task *task;
	int try_number;
	const char *params_path;    /* the run's effective parameters (JSON) */
	const char *xcom_path;
	const pw_catalog_view *catalog;
	json_object *run_outputs;   /* set (name -> true) of datasets that
				     * tasks of this run write, or NULL */
	json_object *params;        /* the effective parameters, or NULL */
} pw_task_env;

/*
 * Builds the complete environment of a try into out as "NAME=value"
 * strings (pw_env_vector gives the NULL-terminated array): base, then
 * PIPEWRIGHT_DAG_ID, _RUN_ID,
 * _TASK_ID (the task's name), _TRY_NUMBER, _PARAMS, _XCOM, then
 * PIPEWRIGHT_INPUT_<NAME> / PIPEWRIGHT_OUTPUT_<NAME> for every input and
 * output with a filepath (NAME upper-cased, other characters '_'),
 * PIPEWRIGHT_PARAM_<NAME> for every "params:<name>" input that params
 * defines (a string as is, other values as compact JSON), then
 * the task's env: entries. A later entry replaces an earlier one of the
 * same name. An output's path is its save path (version = run id); an
 * input's is the load path, except that a versioned dataset written in
 * this run (run_outputs) and not pinned by load_versions is read from this
 * run's version. Returns 0 or -1 (out of memory).
 */
int pw_task_env_build(const pw_task_env *in, pw_strv *out);

/* A NULL-terminated view of sv's strings (malloc'd array, not the strings). */
char **pw_env_vector(const pw_strv *sv);

#endif
