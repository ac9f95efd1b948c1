/*
 * harness.h - integration tests against real processes: a scratch project
 * folder, real pipewright-runner processes, and the project's database.
 *
 * One hr_project per test (made in a cmocka setup, freed in its teardown).
 * Every helper fails the test (cmocka's fail_msg) instead of returning an
 * error, except where a return value says otherwise. Every query binds its
 * values; no value is ever pasted into SQL.
 *
 * Processes: the test process makes itself a child subreaper, so task
 * processes orphaned by a killed runner are re-parented to it and reaped
 * by the harness (every wait loop reaps), instead of lingering as zombies
 * of whatever init the machine has. Runners started here are tracked; the
 * teardown stops every one still alive (SIGTERM, bounded wait, SIGKILL)
 * and kills the process groups of tries left running, so no test leaks a
 * process even when it fails. When a test did not reach hr_pass, the
 * teardown prints the runners' logs to stderr.
 */
#ifndef PW_HARNESS_H
#define PW_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "store.h"
#include "testhelp.h"

/* Default deadline of the wait helpers (ms): generous for a loaded host. */
#define HR_WAIT_MS 20000

#define HR_MAX_RUNNERS 8

typedef struct hr_runner {
	pid_t pid;      /* 0: slot unused */
	bool exited;    /* reaped; status holds the wait status */
	int status;
	char *log_path; /* <dir>/runner-<n>.log (stdout and stderr) */
} hr_runner;

typedef struct hr_project {
	char *dir;          /* absolute project root */
	char *db_path;      /* <dir>/var/pipewright.db */
	pw_store *store;    /* the test's own connection */
	hr_runner runners[HR_MAX_RUNNERS];
	int n_runners;
	bool quiet;         /* set by hr_pass, or once the logs were printed */
	char ring[16][128]; /* backing store of short strings returned */
	int ring_next;
} hr_project;

/* --- the project folder ------------------------------------------------ */

/*
 * Creates a project in a fresh temporary folder: pipewright.yml with
 * `settings: {max_parallel_tasks: max_parallel}`, an empty
 * conf/base/catalog.yml, dags/, var/, and opens var/pipewright.db.
 */
hr_project *hr_project_new(int max_parallel);
/*
 * Stops every runner, kills the groups of tries left running, prints the
 * logs unless hr_pass was called, closes the store and removes the folder
 * (kept when PW_KEEP_TMP is set). NULL is fine.
 */
void hr_project_free(hr_project *p);
/* Marks the test as passed (call it last in a test). */
void hr_pass(hr_project *p);

/* Writes text to <dir>/<relpath>, creating folders. */
void hr_write(hr_project *p, const char *relpath, const char *text);
/* Writes dags/<dag_id>.yml. */
void hr_dag(hr_project *p, const char *dag_id, const char *yaml);
/* Rewrites pipewright.yml with this `settings:` mapping body (YAML flow). */
void hr_settings(hr_project *p, const char *settings_flow);
/* Writes conf/base/catalog.yml, parameters.yml, pools.yml. */
void hr_catalog(hr_project *p, const char *yaml);
void hr_parameters(hr_project *p, const char *yaml);
void hr_pools(hr_project *p, const char *yaml);
/* malloc'd <dir>/<relpath>. */
char *hr_path(hr_project *p, const char *relpath);
/* malloc'd contents of <dir>/<relpath>, or NULL when it does not exist. */
char *hr_read(hr_project *p, const char *relpath);
bool hr_exists(hr_project *p, const char *relpath);

/* --- runners ------------------------------------------------------------ */

/*
 * Starts `pipewright-runner --project <dir> [args...]` (args NULL-
 * terminated, may be NULL) with stdout and stderr going to its own log
 * file. Returns its pid.
 */
pid_t hr_runner_start(hr_project *p, const char *const *args);
/*
 * SIGTERM, wait up to timeout_ms, then SIGKILL and wait. Returns the wait
 * status (already reaped runners return the recorded one).
 */
int hr_runner_stop(hr_project *p, pid_t pid, int timeout_ms);
/* SIGKILL and reap. */
void hr_runner_kill9(hr_project *p, pid_t pid);
/*
 * Waits up to timeout_ms for the runner to exit by itself. Returns true
 * with *status set, or false when it is still running.
 */
bool hr_runner_wait(hr_project *p, pid_t pid, int timeout_ms, int *status);
/* malloc'd log text of that runner ("" when empty). */
char *hr_runner_log(hr_project *p, pid_t pid);
/* Prints every runner's log to stderr. */
void hr_dump_logs(hr_project *p);

/* Reaps exited children (runners keep their status). */
void hr_reap(void);
/* Sleeps ms milliseconds, reaping children meanwhile. */
void hr_sleep_ms(int ms);

/* --- intent: what the API would write -------------------------------- */

/*
 * Queues a manual run. run_id may be NULL (generated); options_json and
 * conf_json are JSON object texts or NULL. Returns the run id (a string of
 * the project's ring: valid for the next few calls).
 */
const char *hr_queue_run(hr_project *p, const char *dag_id, const char *run_id,
			 const char *options_json, const char *conf_json);
/* pw_store_request: kind "cancel" or "retry"; must answer PW_OK. */
void hr_request(hr_project *p, const char *dag_id, const char *run_id,
		const char *kind);
void hr_set_paused(hr_project *p, const char *dag_id, bool paused);
/* INSERT INTO pools, then wakes the runner. */
void hr_pool_add(hr_project *p, const char *name, int slots);

/*
 * Runs one statement with bound values, then wakes the runner. types has
 * one letter per value: 's' (const char *, NULL for SQL NULL), 'i' (int),
 * 'l' (long long).
 */
void hr_sql(hr_project *p, const char *sql, const char *types, ...);
/* The first column of the first row as an integer; dflt when no row/NULL. */
long long hr_sql_int(hr_project *p, long long dflt, const char *sql,
		     const char *types, ...);
/* The first column of the first row, malloc'd; NULL when no row/NULL. */
char *hr_sql_text(hr_project *p, const char *sql, const char *types, ...);

/* --- readers ------------------------------------------------------------ */

/* The run's state (ring string), or NULL when there is no such run. */
const char *hr_run_state(hr_project *p, const char *dag_id, const char *run_id);
/* runs.id of the run; fails the test when there is none. */
long long hr_run_pk(hr_project *p, const char *dag_id, const char *run_id);

typedef struct hr_ti {
	char state[32];
	int try_number;
	int max_tries;
	bool has_exit;
	int exit_code;
	long long started_at; /* 0 when NULL */
	long long ended_at;
} hr_ti;

/* Reads a task instance; false when the run has none of that name. */
bool hr_task(hr_project *p, const char *dag_id, const char *run_id,
	     const char *task_id, hr_ti *out);
/* The task instance's state (ring string), or NULL when there is none. */
const char *hr_task_state(hr_project *p, const char *dag_id, const char *run_id,
			  const char *task_id);
/* Number of task instances of the run. */
int hr_task_count(hr_project *p, const char *dag_id, const char *run_id);

typedef struct hr_try {
	char task_id[64];
	int try_number;
	char state[32];
	long long started_at;  /* 0 when NULL */
	long long ended_at;    /* 0 when NULL */
	bool has_exit;
	int exit_code;
	pid_t pid;             /* 0 when NULL */
	char reason[256];      /* "" when NULL */
	char log_path[1024];   /* "" when NULL */
} hr_try;

/*
 * The run's tries (of one task, or of all when task_id is NULL), ordered
 * by started_at then task and try number. Returns the count; *out is a
 * malloc'd array (NULL when 0) the caller frees.
 */
size_t hr_tries(hr_project *p, const char *dag_id, const char *run_id,
		const char *task_id, hr_try **out);
/* malloc'd JSON text of an XCom value, or NULL when there is none. */
char *hr_xcom(hr_project *p, const char *dag_id, const char *run_id,
	      const char *task_id, const char *key);
/* malloc'd text of a try's log file, or NULL. */
char *hr_try_log(hr_project *p, const char *dag_id, const char *run_id,
		 const char *task_id, int try_number);
/*
 * The states of the events of one type ("task.state" with task_id, or
 * "run.state" with task_id NULL) of the run, in event order, as one
 * malloc'd comma-separated string, e.g. "queued,running,success". Fails
 * the test when an event's previous_state is not the state of the event
 * before it (the first event's previous_state is not checked).
 */
char *hr_state_events(hr_project *p, const char *dag_id, const char *run_id,
		      const char *task_id);

/* --- waiting ------------------------------------------------------------ */

/* Waits until the run is in state; fails the test (with the logs) else. */
void hr_wait_run_state(hr_project *p, const char *dag_id, const char *run_id,
		       const char *state, int timeout_ms);
/* Waits until the run is success, failed or cancelled; returns it. */
const char *hr_wait_run_end(hr_project *p, const char *dag_id,
			    const char *run_id, int timeout_ms);
/* Waits until the task instance is in state. */
void hr_wait_task_state(hr_project *p, const char *dag_id, const char *run_id,
			const char *task_id, const char *state, int timeout_ms);
/* Waits until the task's try try_number is recorded with a pid; returns it. */
pid_t hr_wait_try_pid(hr_project *p, const char *dag_id, const char *run_id,
		      const char *task_id, int try_number, int timeout_ms);
/*
 * Waits until pred(p, arg) is true, polling every 20 ms; on timeout fails
 * the test with "timed out waiting for <what>" and the logs.
 */
void hr_wait_for(hr_project *p, bool (*pred)(hr_project *, void *), void *arg,
		 const char *what, int timeout_ms);
/*
 * Waits until no process of group pgid remains (kill(-pgid, 0) fails with
 * ESRCH), reaping the group's orphans. Returns true, or false on timeout.
 */
bool hr_wait_group_gone(pid_t pgid, int timeout_ms);

/*
 * The children of parent (from /proc) whose name starts with comm (NULL:
 * any) and whose state letter is state (0: any), at most max into out.
 * Returns how many.
 */
int hr_children(pid_t parent, const char *comm, char state, pid_t *out, int max);

#endif
