/*
 * runner.h - the runner's state, shared by its parts:
 *
 *   main.c       options, the single-instance lock, signals, the loop
 *   scheduler.c  cron runs, claiming queued runs, cancel/retry commands
 *   executor.c   task instances: trigger rules, slots, starting, ending
 *   recovery.c   a restarted runner takes over what the last one left
 *   state.c      every SQL statement the runner runs
 *   launch.c     the shim that runs one try (launch.h)
 *   slurm.c      tries of runs whose runner is a Slurm cluster
 *
 * The runner is the only writer of execution state. While a run is active
 * (claimed and not ended) its task states live in memory (rn_run) and every
 * change is written through state.c, with its event, in the transaction
 * the loop holds for one step (rn_tx).
 */
#ifndef PW_RUNNER_H
#define PW_RUNNER_H

#include <json-c/json.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/types.h>

#include "dag.h"
#include "project.h"
#include "slice.h"
#include "launch.h"
#include "store.h"

/* slurm.c's: a Slurm runner's options, and the job of a running try. */
typedef struct sl_conf sl_conf;
typedef struct sl_job sl_job;
struct pw_launch; /* launch.h */

/* Task instance states (DESIGN.md section 4); names in ti_state_names. */
typedef enum ti_state {
	TI_PENDING,
	TI_QUEUED,
	TI_RUNNING,
	TI_SUCCESS,
	TI_FAILED,
	TI_UP_FOR_RETRY,
	TI_UPSTREAM_FAILED,
	TI_SKIPPED,
	TI_CANCELLED,
	TI_NSTATES
} ti_state;

extern const char *const ti_state_names[TI_NSTATES];
/* Index of a state name, or -1. */
int ti_state_parse(const char *name);
/* success failed upstream_failed skipped cancelled */
bool ti_state_is_final(ti_state s);

/* One task instance of an active run (index = the task's index in the DAG). */
typedef struct rn_task {
	bool selected;      /* part of this run at all */
	ti_state state;
	int try_number;     /* tries started so far */
	int max_tries;
	long long next_try_at;  /* up_for_retry: when to queue again (ms) */
	long long started_at;   /* of the running try */
	pid_t pid;          /* shim of the running try, or 0 */
	bool watched;       /* its end shows on end_fd, else (adopted
			     * without pidfd) by kill(pid, 0) */
	int end_fd;         /* readable when the try has ended: the try's
			     * socket (launch.h), or an adopted shim's
			     * pidfd; or -1 */
	bool end_sock;      /* end_fd is the socket: the status comes on it */
	long long proc_start;   /* the shim's start time */
	long long timeout_at;   /* SIGTERM time for the running try, or 0 */
	long long kill_at;      /* SIGKILL time after a SIGTERM, or 0 */
	enum { STOP_NONE, STOP_TIMEOUT, STOP_CANCEL } stop; /* why we signalled it */
	sl_job *job;        /* a Slurm try's job (pid 0, no end_fd), or NULL */
} rn_task;

/* A run the runner has claimed and not yet ended. */
typedef struct rn_run {
	long long pk;
	char *dag_id;
	char *run_id;
	pw_dag *dag;            /* the run's pipeline (owned copy) */
	rn_task *tasks;         /* dag->n_tasks entries */
	size_t *ready;          /* queued task indices, in the order queued; */
	size_t n_ready, head_ready, cap_ready; /* [head_ready, n_ready) live */
	size_t n_waiting;       /* tasks up_for_retry */
	bool sequential;        /* SequentialRunner: one try at a time */
	sl_conf *slurm;         /* its tries go to this Slurm runner, or NULL */
	bool cancelling;        /* a cancel arrived; end when nothing runs */
	int n_running;
	size_t n_open;          /* selected tasks not in a final state */
	char *dir;              /* <logs_dir>/<dag_id>/<run_id> */
	char *params_path;      /* dir/params.json */
	json_object *load_versions; /* or NULL */
	json_object *run_outputs;   /* set of datasets written by this run */
	char *first_failure;    /* message for error_message, or NULL */
	struct rn_run *next;
} rn_run;

/* An ended try's socket, acked after the commit (pw_launcher_ack). */
typedef struct rn_ack {
	int fd;
	pid_t pid;              /* its shim when it offered reuse, else 0 */
	long long proc_start;
} rn_ack;

/* A running try: the list the loop scans for exits and timeouts. */
typedef struct rn_proc {
	rn_run *run;
	size_t t;
} rn_proc;

typedef struct runner {
	pw_project_opts opts;
	pw_project *project;
	pw_store *store;
	char **environ;         /* the tasks' base environment */
	rn_run *runs;           /* active runs, in claim order */
	rn_proc *procs;         /* tries running across all runs */
	size_t n_running, cap_procs;
	int *go_fds;            /* end_fds of the shims started in this step, */
	size_t n_go, cap_go;    /* waiting for the commit (pw_launch_go) */
	rn_ack *acks;           /* sockets of the tries ended in this step, */
	size_t n_ack, cap_ack;  /* acked after the commit */
	json_object *pool_slots;  /* pool name -> slots (refreshed per step) */
	json_object *pool_used;   /* pool name -> slots held by running tries */
	bool in_tx;
	bool once;
	bool verbose;
	bool work_changed;      /* something may be claimable: look again */
	long long grace_ms;     /* SIGTERM -> SIGKILL */
	int wake_fd;            /* the FIFO, or -1 */
	pw_launcher *launcher;  /* forks the shims (launch.h), or NULL */
	struct pollfd *pollfds; /* wait_for_work's, grown with n_running */
	size_t cap_pollfds;
	long long data_version; /* last PRAGMA data_version seen */
	long long data_version_at; /* when (ms) */
	long long fingerprint;  /* of the project files loaded */
	char *exe;              /* this program (Slurm jobs exec it), or NULL */
	long long slurm_due;    /* when slurm_step has work, or 0: none */
	long long slurm_poll_at; /* when to ask Slurm about its jobs next */
} runner;

/* exit_code argument meaning "the try has no exit code" (it was lost). */
#define NO_EXIT_CODE (-1000)

/* --- main.c ------------------------------------------------------------ */
/* One log line to stderr: "pipewright-runner: <level> <message>". */
void rn_log(const runner *r, const char *level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define rn_info(r, ...) rn_log((r), "info", __VA_ARGS__)
#define rn_error(r, ...) rn_log((r), "error", __VA_ARGS__)
#define rn_debug(r, ...) \
	do { if ((r)->verbose) rn_log((r), "debug", __VA_ARGS__); } while (0)
/* Begins the step's transaction unless one is open. PW_OK or PW_ERR. */
int rn_tx(runner *r);
/*
 * Commits the step's transaction, then lets the shims started in it run
 * (or, if the commit fails, makes them exit unstarted). PW_OK or PW_ERR.
 */
int rn_commit(runner *r);

/* --- scheduler.c ------------------------------------------------------- */
/* Queues the scheduled runs that are due; keeps next_run_at current. */
int sched_cron(runner *r, long long now, long long *next_wake);
/* Claims the queued runs that may start now. */
int sched_claim(runner *r, long long now);
/* Acts on pending cancel/retry commands. */
int sched_commands(runner *r, long long now);

/* --- executor.c -------------------------------------------------------- */
/*
 * Builds an active run for a claimed run row: resolves and slices its
 * pipeline. Returns the run, or NULL with *etype and *emsg (malloc'd) set when
 * the run must fail (bad pipeline or slice), or NULL without them when out
 * of memory.
 */
rn_run *exec_run_new(runner *r, long long pk, const char *dag_id,
		     const char *run_id, json_object *conf, json_object *options,
		     char **etype, char **emsg);
void exec_run_free(rn_run *run);
/*
 * Starts a claimed run: inserts its task instances (or, for a retried run,
 * loads the ones it has) and queues what may run.
 */
int exec_run_begin(runner *r, rn_run *run, long long now);
/* Retry: failed, upstream_failed and cancelled tasks back to pending. */
int exec_retry(runner *r, rn_run *run, long long now);
/*
 * Clear: the task instances named in clear[] (not running) go back to
 * pending with tries to spare, and an active run decides them at once.
 * Returns PW_OK or PW_ERR.
 */
int exec_clear(runner *r, rn_run *run, const bool *clear, bool active, long long now);
/*
 * Mark: task t (not running) takes state (success, failed or skipped) and
 * its downstream tasks react as if it had ended so: those whose state came
 * from their upstream (pending, upstream_failed, skipped) are decided
 * again by their trigger rules. PW_OK or PW_ERR.
 */
int exec_mark(runner *r, rn_run *run, size_t t, ti_state state, long long now);
/*
 * For a run that is not active: NULL when a task is left to do (the run
 * goes back to queued), else the final state its tasks make.
 */
const char *exec_settled_state(const rn_run *run);
/* Reaps ended shims and records their tries. */
int exec_reap(runner *r, long long now);
/* Signals timed-out tries; queues tries whose retry delay has passed. */
int exec_timers(runner *r, long long now, long long *next_wake);
/* Starts ready tries while slots allow. */
int exec_start_ready(runner *r, long long now);
/* Ends runs with nothing left to do. */
int exec_finish_runs(runner *r, long long now);
/* Cancels a run: signals its tries, cancels what has not started. */
int exec_cancel(runner *r, rn_run *run, long long now);
/* Records the end of a running try (status from the shim's file). */
int exec_try_ended(runner *r, rn_run *run, size_t t, long long now);
/*
 * Takes over a running try a previous runner started: its shim pid is
 * alive with the recorded start time. Its end is noticed by
 * exec_check_watched (the loop also polls its end_fd).
 */
int exec_adopt(runner *r, rn_run *run, size_t t, pid_t pid, long long proc_start);
/* Counts a try taken over as running: its pool slots, the running list. */
int exec_track(runner *r, rn_run *run, size_t t);
/* Records the end of watched tries whose shim has exited. */
int exec_check_watched(runner *r, long long now);
/*
 * The step's commit failed: closes the go sockets of the shims started in
 * it (they exit unstarted) and forgets them.
 */
void exec_drop_unstarted(runner *r);
/* The active run with this pk, or NULL. */
rn_run *exec_find_run(runner *r, long long pk);
/* Paths of a try's files: "<dir>/<task>/<try>.<ext>", malloc'd. */
char *exec_try_path(const rn_run *run, size_t t, int try_number, const char *ext);

/* --- slurm.c ----------------------------------------------------------- */
/*
 * A run's copy of the options of settings.runners[name] (a `type: slurm`
 * entry, checked when the project loaded). NULL when out of memory.
 */
sl_conf *slurm_conf_new(const pw_project *p, const char *name);
void slurm_conf_free(sl_conf *c);
void slurm_job_free(sl_job *j);
/*
 * Prepares the try of task t that start_try is starting (l: its launch):
 * writes its spec and batch script and sets tasks[t].job. The job is
 * submitted by the first slurm_step after the commit. PW_OK, or PW_ERR
 * with errno set.
 */
int slurm_prepare(runner *r, rn_run *run, size_t t, const struct pw_launch *l);
/*
 * First thing in a step, before it writes: submits the tries started in
 * the previous step, sends the scancels asked for, and every poll interval
 * asks Slurm about its jobs; then records job ids and ends tries.
 */
int slurm_step(runner *r, long long now);
/* Asks for scancel of a Slurm try (kill: SIGKILL to every step at once). */
void slurm_signal(runner *r, rn_task *k, bool kill);
/* Takes over a Slurm try a previous runner left running (recovery.c). */
int slurm_recover(runner *r, rn_run *run, size_t t, long long now);
/* Why a Slurm try ended without a status (not submitted, lost), or NULL. */
const char *slurm_why(const sl_job *j);
/*
 * pipewright-runner --slurm-job: runs the try whose spec is on stdin, in
 * the batch job. Returns only on failure (the exit status).
 */
int slurm_job_main(void);

/* --- recovery.c -------------------------------------------------------- */
/* Takes over the runs a previous runner left running. */
int recover(runner *r, long long now);

/* --- state.c: the runner's SQL (inside rn_tx unless said otherwise) ---- */
/* A run row as read back. */
typedef struct st_run_row {
	long long pk;
	const char *dag_id, *run_id, *state;
	json_object *conf, *options;   /* owned by the callback's caller */
} st_run_row;
typedef int (*st_run_fn)(runner *r, const st_run_row *row, void *arg);

int st_each_run(runner *r, const char *state, st_run_fn fn, void *arg);
int st_run_set_state(runner *r, long long pk, const char *dag_id, const char *run_id,
		     const char *state, const char *prev, long long now,
		     const char *etype, const char *emsg);
int st_ti_insert(runner *r, rn_run *run, size_t t, long long now);
int st_ti_set_state(runner *r, rn_run *run, size_t t, ti_state prev, long long now);
int st_try_start(runner *r, rn_run *run, size_t t, long long proc_start,
		 const char *log_path, long long now);
int st_try_end(runner *r, rn_run *run, size_t t, ti_state prev, int exit_code,
	       const char *reason, long long now);
int st_xcom_put(runner *r, rn_run *run, size_t t, const char *key, json_object *value);
/* Loads the task instances of a run row into run->tasks (recovery, retry). */
int st_ti_load(runner *r, rn_run *run);
/* The pid and proc_start of a running try (recovery). */
int st_try_pid(runner *r, rn_run *run, size_t t, pid_t *pid, long long *proc_start);
/* The Slurm job id of the running try (task_tries.external_id), 0 if none. */
int st_try_external(runner *r, rn_run *run, size_t t, const char *external_id);
int st_try_external_get(runner *r, rn_run *run, size_t t, long long *job_id);
int st_pools(runner *r, json_object **slots);
int st_paused(runner *r, const char *dag_id, bool *paused);
/* Schedules: every DAG row with its pause flag and next_run_at. */
int st_next_run(runner *r, const char *dag_id, long long *next_run_at, bool *paused);
int st_set_next_run(runner *r, const char *dag_id, long long next_run_at, long long fired);
typedef struct st_command {
	long long id;
	const char *kind;   /* "cancel", "retry", "clear" or "mark" */
	st_run_row run;     /* the run it is about */
	json_object *args;  /* clear: {"task_ids"}; mark: {"task_id", "state"} */
} st_command;
typedef int (*st_command_fn)(runner *r, const st_command *c, void *arg);
int st_each_command(runner *r, st_command_fn fn, void *arg);
int st_command_done(runner *r, long long id, long long now);
/* Removes the heartbeat row of a runner that stops cleanly (autocommit). */
int st_runner_stopped(runner *r, int pid);
/* data_version: a change by another connection since the last call. */
int st_changed(runner *r, bool *changed);

#endif
