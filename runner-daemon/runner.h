/*
 * runner.h - the runner's data, shared by its parts, and each part's
 * functions. The parts form layers; a file calls only its own layer and
 * the layers below it (docs/runner.md, "Layers"; tests/layers.sh checks):
 *
 *   6 main.c        options, the single-instance lock, signals, the loop
 *   5 scheduler.c   cron runs, claiming queued runs, cancel/retry commands
 *     recovery.c    a restarted runner takes over what the last one left
 *   4 executor.c    task instances: trigger rules, slots, starting and
 *                   ending tries, the work after each commit
 *   3 backend.c     the table of execution backends, what they share
 *     local.c       tries under a local shim (launch.h)
 *     slurm.c       tries as Slurm batch jobs
 *   2 state.c       every SQL statement, the transaction, the log
 *     checkpoint.c  the WAL checkpoints, on a thread of their own
 *     walvfs.c      a commit's WAL frames in one write (main.c registers it)
 *   1 launch.c, launcher.c, proctree.c: the shim (launch.h; no runner.h)
 *   0 src/          libpipewright (states.h: the state vocabulary)
 *
 * The runner is the only writer of execution state. While a run is active
 * (claimed and not ended) its task states live in memory (rn_run) and every
 * change is written through state.c, with its event, in the transaction
 * the loop holds for one pass (st_begin): a pass commits every step it
 * made at once (group commit), and only then are shims told to go or
 * acknowledged (exec_committed). A pass that cannot commit is rolled back
 * and memory is rebuilt from the database, as by a restart (main.c's
 * settle: exec_forget, then recover).
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
#include "checkpoint.h"
#include "launch.h"
#include "states.h"
#include "store.h"

typedef struct runner runner;
typedef struct rn_backend rn_backend;

/* One task instance of an active run (index = the task's index in the DAG). */
typedef struct rn_task {
	bool selected;      /* part of this run at all */
	ti_state state;
	int try_number;     /* tries started so far */
	int max_tries;
	long long next_try_at;  /* up_for_retry: when to queue again (ms) */
	long long started_at;   /* of the running try */
	long long timeout_at;   /* SIGTERM time for the running try, or 0 */
	long long kill_at;      /* SIGKILL time after a SIGTERM, or 0 */
	enum { STOP_NONE, STOP_TIMEOUT, STOP_CANCEL } stop; /* why we signalled it */
	bool ended;         /* a backend reported its end this pass */
	/* Where the running try is; set by its backend. */
	pid_t pid;          /* its process here (stored with the try), or 0 */
	long long proc_start;   /* that process's start time */
	int end_fd;         /* readable when the try may have ended (the
			     * loop sleeps on it), or -1 */
	bool watched;       /* local: its end shows on end_fd, else (adopted
			     * without pidfd) by kill(pid, 0) */
	bool end_sock;      /* local: end_fd is the shim's socket */
	void *job;          /* another backend's own record of the try */
	/* A try armed ahead (rn_backend.arm) while the task is pending or
	 * queued: its next try, waiting for prepare. */
	int arm_fd;         /* closing it gives the try up, or -1: none */
	int arm_try;        /* its try number */
	pid_t arm_pid;      /* its process, and that process's start time */
	long long arm_start;
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
	const rn_backend *backend; /* where its tries run */
	void *backend_conf;     /* that backend's options for this run, or NULL */
	bool cancelling;        /* a cancel arrived; end when nothing runs */
	int n_running;
	bool begun;             /* a try of it has started (or was adopted) */
	size_t n_armed;         /* tasks with an armed try (arm_fd >= 0) */
	size_t n_open;          /* selected tasks not in a final state */
	char *dir;              /* <logs_dir>/<dag_id>/<run_id> */
	char *params_path;      /* dir/params.json */
	json_object *params;    /* the effective parameters written there */
	json_object *catalog;   /* the catalog as this run resolves it */
	json_object *load_versions; /* or NULL */
	json_object *run_outputs;   /* set of datasets written by this run */
	char *first_failure;    /* message for error_message, or NULL */
	struct rn_run *next;
} rn_run;

/* A running try: the list the loop scans for exits and timeouts. */
typedef struct rn_proc {
	rn_run *run;
	size_t t;
} rn_proc;

/* Tries a backend reports ended in a pass; the executor records them. */
typedef struct rn_ended {
	rn_proc *v;
	size_t n, cap;
} rn_ended;

/* What the runner was started with and has loaded (main.c). */
typedef struct rn_config {
	pw_project_opts opts;
	pw_project *project;
	char **environ;         /* the tasks' base environment */
	bool once;
	bool verbose;
	long long grace_ms;     /* SIGTERM -> SIGKILL */
	char *exe;              /* this program (Slurm jobs exec it), or NULL */
	long long fingerprint;  /* of the project files loaded */
} rn_config;

/* Test-only crash points of the commit (PIPEWRIGHT_TEST_CRASH_AT). */
typedef enum { CRASH_NONE, CRASH_BEFORE_COMMIT, CRASH_AFTER_COMMIT } rn_crash;

/* The database connection and the pass's transaction (state.c). */
typedef struct rn_txn {
	pw_store *store;
	ckpt *checkpointer;     /* copies the WAL back apart from the commits
				 * (checkpoint.h), or NULL: SQLite's own */
	bool open;              /* a transaction is open */
	size_t n_ends;          /* tries whose end the pass records */
	rn_crash crash_at;      /* tests: kill -9 of itself there */
	long long data_version; /* last PRAGMA data_version seen */
	long long data_version_at; /* when (ms) */
	long long stuck_since;  /* a write failed then (main.c's settle), and
				 * none has committed since; or 0 */
	long long retry_ms;     /* settle's next delay in that episode */
	char fault[256];        /* why the pass failed, when it was not an
				 * SQLite error (rn_fault), or "" */
} rn_txn;

/* Active runs and the tries in flight (executor.c). */
typedef struct rn_flight {
	rn_run *runs;           /* active runs, in claim order */
	rn_proc *procs;         /* tries running across all runs */
	size_t n_running, cap_procs;
	json_object *pool_slots;  /* pool name -> slots (refreshed per pass) */
	json_object *pool_used;   /* pool name -> slots held by running tries */
	rn_ended ended;         /* reported by the backends this pass */
} rn_flight;

#define RN_MAX_BACKENDS 8

struct runner {
	rn_config cfg;
	rn_txn tx;
	rn_flight fl;
	void *backend_state[RN_MAX_BACKENDS]; /* by index in rn_backends */
	/* the loop's own (main.c) */
	bool work_changed;      /* something may be claimable: look again */
	int wake_fd;            /* the FIFO, or -1 */
	struct pollfd *pollfds; /* wait_for_work's, grown with n_running */
	size_t cap_pollfds;
};

/* exit_code argument meaning "the try has no exit code" (it was lost). */
#define NO_EXIT_CODE (-1000)

/* --- 2. state.c: the log, the transaction, the SQL --------------------- */
/* One log line to stderr: "pipewright-runner: <time> <level> <message>". */
void rn_log(const runner *r, const char *level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * Says why the pass must fail and be retried when the cause is not the
 * database (a full disk under logs_dir); main.c's settle logs it.
 */
void rn_fault(runner *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Info lines logged while the pass's transaction is open are held: they
 * are written by st_log_flush (exec_committed calls it once the pass's
 * gos and acks are sent) and dropped by st_rollback. Other levels are
 * written at once, after what is held.
 */
void st_log_flush(void);
/* Writes what is held and frees the buffer (at exit). */
void st_log_free(void);
#define rn_info(r, ...) rn_log((r), "info", __VA_ARGS__)
#define rn_error(r, ...) rn_log((r), "error", __VA_ARGS__)
#define rn_debug(r, ...) \
	do { if ((r)->cfg.verbose) rn_log((r), "debug", __VA_ARGS__); } while (0)
/* Reads PIPEWRIGHT_TEST_CRASH_AT (test only: docs/runner.md). */
void st_crash_points(runner *r);
/* Begins the pass's transaction unless one is open. PW_OK or PW_ERR. */
int st_begin(runner *r);
/*
 * Commits the pass's transaction, if one is open. PW_OK, or PW_ERR with
 * the transaction left open: the caller rolls back (st_rollback).
 */
int st_commit(runner *r);
/* Rolls the open transaction back, if any. */
void st_rollback(runner *r);

/* A run row as read back. */
typedef struct st_run_row {
	long long pk;
	const char *dag_id, *run_id;
	run_state state;
	json_object *conf, *options;   /* owned by the callback's caller */
} st_run_row;
typedef int (*st_run_fn)(runner *r, const st_run_row *row, void *arg);

/* Calls fn for every run in state, oldest first; stops at its first error. */
int st_each_run(runner *r, run_state state, st_run_fn fn, void *arg);
/* A queued run as the claim first sees it; valid during the call only. */
typedef struct st_queued_row {
	long long pk;
	const char *dag_id;
	int max_active;   /* its own max_active_runs (a backfill's), 0: none */
	bool paused;      /* its DAG's pause flag */
} st_queued_row;
/* 1: take the run, 0: leave it queued, PW_ERR. Must not write. */
typedef int (*st_pick_fn)(runner *r, const st_queued_row *q, void *arg);
/*
 * The claim: calls pick on every queued run, oldest first, then fn (as
 * st_each_run would) on each run pick took that is still queued, in the
 * same order. Stops at the first error.
 */
int st_claim_queued(runner *r, st_pick_fn pick, st_run_fn fn, void *arg);
/*
 * Sets a run's state (prev: the state it leaves, for its event), its
 * times, and error_type/error_message (NULL: none); with its event.
 */
int st_run_set_state(runner *r, long long pk, const char *dag_id, const char *run_id,
		     run_state state, run_state prev, long long now,
		     const char *etype, const char *emsg);
/* Inserts task t's instance as run->tasks[t] says, with its event. */
int st_ti_insert(runner *r, rn_run *run, size_t t, long long now);
/* Writes task t's state (not a try's start or end), with its event. */
int st_ti_set_state(runner *r, rn_run *run, size_t t, ti_state prev, long long now);
/*
 * Records the start of task t's try (its pid when it has one, proc_start
 * or -1, its log), with its event; where says where it runs, for the log.
 */
int st_try_start(runner *r, rn_run *run, size_t t, long long proc_start,
		 const char *log_path, const char *where, long long now);
/* Records the end of task t's try as run->tasks[t] says, with its event. */
int st_try_end(runner *r, rn_run *run, size_t t, ti_state prev, int exit_code,
	       const char *reason, long long now);
/* Stores an XCom of task t (replacing one of the same key). */
int st_xcom_put(runner *r, rn_run *run, size_t t, const char *key, json_object *value);
/* Drops the XComs of task t, as a new try starts (Airflow's clear_xcom_data). */
int st_xcom_clear(runner *r, rn_run *run, size_t t);
/*
 * Loads the task instances of a run row into run->tasks (recovery, retry).
 * Returns how many rows it has, or PW_ERR.
 */
int st_ti_load(runner *r, rn_run *run);
/* The pid and proc_start of a running try (recovery); PW_NOTFOUND if none. */
int st_try_pid(runner *r, rn_run *run, size_t t, pid_t *pid, long long *proc_start);
/* Stores the external id of the running try (task_tries.external_id). */
int st_try_external(runner *r, rn_run *run, size_t t, const char *external_id);
/* The external id of the running try as a number, 0 if none. */
int st_try_external_get(runner *r, rn_run *run, size_t t, long long *job_id);
/* Every pool's slots, as a new object in *slots. */
int st_pools(runner *r, json_object **slots);
/* A DAG's next_run_at (0: none) and pause flag; PW_NOTFOUND without a row. */
int st_next_run(runner *r, const char *dag_id, long long *next_run_at, bool *paused);
/* Sets a DAG's next_run_at and, when fired > 0, last_scheduled_at. */
int st_set_next_run(runner *r, const char *dag_id, long long next_run_at, long long fired);
typedef struct st_command {
	long long id;
	const char *kind;   /* "cancel", "retry", "clear" or "mark" */
	st_run_row run;     /* the run it is about */
	json_object *args;  /* clear: {"task_ids"}; mark: {"task_id", "state"} */
} st_command;
typedef int (*st_command_fn)(runner *r, const st_command *c, void *arg);
/* Calls fn for every pending command, oldest first; stops at an error. */
int st_each_command(runner *r, st_command_fn fn, void *arg);
/* Marks a command done. */
int st_command_done(runner *r, long long id, long long now);
/* Removes the heartbeat row of a runner that stops cleanly (autocommit). */
int st_runner_stopped(runner *r, int pid);
/*
 * Whether the write lock can be taken now (BEGIN IMMEDIATE, waiting the
 * busy timeout, then ROLLBACK), without logging: a cheap probe while
 * another process holds it. Outside a transaction.
 */
bool st_can_write(runner *r);
/* data_version: a change by another connection since the last call. */
int st_changed(runner *r, bool *changed);

/* --- 3. backend.c, local.c, slurm.c: where tries run -------------------- */
/*
 * An execution backend: where the tries of a run go. Every function gets
 * the runner; per-backend state is rn_backend_state(r, b). A backend calls
 * state.c and the process layer, never the executor: it reports ended
 * tries with rn_report_end, and the executor records them.
 */
struct rn_backend {
	const char *type;   /* settings.runners[].type; "local" for the rest */
	bool own_timeout;   /* it arms tasks[t].timeout_at itself */
	bool signals_group; /* its signals go to the try's process group here
			     * (the try's log says so) */
	/* At start: its state in *state (NULL allowed). Called first. */
	int (*open)(runner *r, void **state);
	void (*close)(runner *r, void *state);
	/* A run's copy of settings.runners[name] in *conf. */
	int (*conf_new)(const pw_project *p, const char *name, void **conf);
	void (*conf_free)(void *conf);
	/*
	 * In a pass, before its commit: makes task t's try l ready to run, but
	 * not run before the commit. Sets tasks[t].pid/end_fd as it can, and
	 * *proc_start (or leaves -1). PW_OK, or PW_ERR with errno set.
	 */
	int (*prepare)(runner *r, rn_run *run, size_t t, const pw_launch *l,
		       long long *proc_start);
	/*
	 * Optional. Before the loop sleeps, off the critical path: readies try
	 * l of task t (pending or queued, not yet started) in tasks[t].arm_*,
	 * so that prepare, called with l NULL once the task starts, only has
	 * to hand it on; nothing runs before the go that follows the commit.
	 * PW_OK, or PW_ERR (nothing armed). prepare with l NULL: PW_ERR with
	 * errno ESRCH when the armed try is gone (then it is closed; prepare
	 * again with l).
	 */
	int (*arm)(runner *r, rn_run *run, size_t t, const pw_launch *l);
	/* After the commit: prepared tries run, recorded ends are acked. */
	void (*committed)(runner *r);
	/* The commit failed: prepared tries never run, ends stay unacked. */
	void (*abort)(runner *r);
	/* Sends sig (SIGTERM or SIGKILL) to task t's running try. */
	void (*signal)(runner *r, rn_run *run, size_t t, int sig);
	/*
	 * First in a pass: reports the tries that ended (rn_report_end) and
	 * may record what it learned (state.c) after any slow I/O.
	 */
	int (*poll)(runner *r, long long now);
	/*
	 * Before the loop sleeps: lowers *next_wake (0: none) to when it wants
	 * to poll again, and does what is best done off the critical path.
	 */
	void (*idle)(runner *r, long long *next_wake);
	/*
	 * Takes over task t's try a previous runner left running: *ended when
	 * it ended meanwhile (or is lost), else it is followed from now on.
	 */
	int (*recover)(runner *r, rn_run *run, size_t t, long long now, bool *ended);
	/*
	 * How task t's ended try ended: 0 with res filled, else no status (the
	 * try is lost).
	 */
	int (*result)(runner *r, rn_run *run, size_t t, pw_try_result *res);
	/*
	 * The end of task t's try is recorded (in the open transaction): lets
	 * go of it; reuse: its process may serve another try once acked.
	 */
	void (*release)(runner *r, rn_run *run, size_t t, bool reuse);
	/* Where the try runs, for the log ("pid 12", "to Slurm"). */
	void (*describe)(const rn_run *run, size_t t, char *buf, size_t size);
	/* Why an ended try has no status ("lost: ..."), or NULL. */
	const char *(*why_lost)(const rn_run *run, size_t t);
	/* Frees a try's own record (tasks[t].job). */
	void (*try_free)(rn_task *k);
};

/* The backends, NULL-terminated; [0] is the local one (backend.c). */
extern const rn_backend *const rn_backends[];
extern const rn_backend rn_local_backend, rn_slurm_backend;
/* The backend of a settings.runners type, or NULL. */
const rn_backend *rn_backend_of_type(const char *type);
/* A backend's state (what its open set). */
void *rn_backend_state(runner *r, const rn_backend *b);
/* Reports the end of task t's running try (once per try). PW_OK or PW_ERR. */
int rn_report_end(runner *r, rn_run *run, size_t t);
/*
 * Reads a try's status file: 0 with res filled, 1 when there is none yet,
 * -1 when it cannot be read.
 */
int rn_try_status(const rn_run *run, size_t t, pw_try_result *res);
/* Paths of a try's files: "<dir>/<task>/<try>.<ext>", malloc'd. */
char *rn_try_path(const rn_run *run, size_t t, int try_number, const char *ext);
/* pipewright-runner --slurm-job: runs the try whose spec is on stdin. */
int slurm_job_main(void);

/* --- 4. executor.c ------------------------------------------------------ */
/* Opens every backend (before anything else: the launcher forks early). */
int exec_open(runner *r);
/* Closes every backend; running shims go on. */
void exec_close(runner *r);
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
/* The active run with this pk, or NULL. */
rn_run *exec_find_run(runner *r, long long pk);
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
 * For a run that is not active: -1 when a task is left to do (the run
 * goes back to queued), else the final state its tasks make.
 */
int exec_settled_state(const rn_run *run);
/* Polls every backend and records the tries they report ended. */
int exec_poll(runner *r, long long now);
/* Before the loop sleeps: every backend's idle; lowers *next_wake. */
void exec_idle(runner *r, long long *next_wake);
/* Signals timed-out tries; queues tries whose retry delay has passed. */
int exec_timers(runner *r, long long now, long long *next_wake);
/* Starts ready tries while slots allow. */
int exec_start_ready(runner *r, long long now);
/* Ends runs with nothing left to do. */
int exec_finish_runs(runner *r, long long now);
/* Cancels a run: signals its tries, cancels what has not started. */
int exec_cancel(runner *r, rn_run *run, long long now);
/*
 * Takes over task t's try a previous runner left running (recovery.c):
 * follows it, or records its end.
 */
int exec_recover_try(runner *r, rn_run *run, size_t t, long long now);
/*
 * The pass committed: the backends let the tries started in it run and
 * ack the ends it recorded.
 */
void exec_committed(runner *r);
/*
 * A pass failed and was rolled back: drops every active run from memory,
 * as a restart would (the database is the truth; recover() rebuilds). The
 * sockets of unacked and running tries are closed, so their shims keep
 * their ends (the status file, retried while the disk is full) and are
 * adopted again; shims started in the pass exit unstarted.
 */
void exec_forget(runner *r);

/* --- 5. scheduler.c, recovery.c ----------------------------------------- */
/* Queues the scheduled runs that are due; keeps next_run_at current. */
int sched_cron(runner *r, long long now, long long *next_wake);
/* Claims the queued runs that may start now. */
int sched_claim(runner *r, long long now);
/* Acts on pending cancel/retry commands. */
int sched_commands(runner *r, long long now);
/* Takes over the runs a previous runner left running. */
int recover(runner *r, long long now);

#endif
