/*
 * test_slurm.c - the Slurm runner (docs/runner.md, "Slurm runner") against
 * a real Slurm: tests/slurm.sh starts munged, slurmctld and slurmd on this
 * machine (a one-node cluster of its own) and runs this program with
 * SLURM_CONF naming that cluster. Without SLURM_CONF it skips (77).
 *
 * Each test runs a real runner on a scratch project whose runs name the
 * runner `cluster.Slurm` of settings.runners, and checks what the tasks
 * wrote, what the database recorded and what Slurm says about the jobs
 * (squeue). Tasks are short; the deadlines are generous.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define W 30000

extern char **environ;

/* Two Slurm runners: a good one and one whose partition does not exist. */
static const char SETTINGS[] =
	"max_parallel_tasks: 4, runners: {"
	"cluster.Slurm: {type: slurm, partition: debug, sbatch_args: [--cpus-per-task=1],"
	" poll_interval: 0.5, status_wait: 2},"
	"nowhere.Slurm: {type: slurm, partition: nowhere}}";
static const char ON_SLURM[] = "{\"runner\": \"cluster.Slurm\"}";

/* --- Slurm's side ---------------------------------------------------------- */

/* Runs argv (no shell) and returns its stdout and stderr, malloc'd. */
static char *capture(char *const argv[])
{
	int fds[2];
	pid_t pid;
	posix_spawn_file_actions_t fa;
	if (pipe2(fds, O_CLOEXEC) != 0 || posix_spawn_file_actions_init(&fa) != 0)
		fail_msg("pipe: %s", strerror(errno));
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
	int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (e != 0)
		fail_msg("%s: %s", argv[0], strerror(e));
	size_t len = 0;
	char *out = calloc(1, 65536);
	ssize_t n;
	while (out && len < 65535 && (n = read(fds[0], out + len, 65535 - len)) != 0)
		if (n > 0)
			len += (size_t)n;
		else if (errno != EINTR)
			break;
	close(fds[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	assert_non_null(out);
	return out;
}

/* The job's state as squeue shows it, "" when Slurm does not know it. */
static char *job_state(long long id, bool active_only)
{
	char jobs[64];
	snprintf(jobs, sizeof jobs, "--jobs=%lld", id);
	char *argv[] = {"squeue", "--noheader", "--format=%T", jobs,
			active_only ? NULL : "--states=all", NULL};
	char *out = capture(argv);
	out[strcspn(out, "\n")] = '\0';
	if (strstr(out, "Invalid job id"))
		out[0] = '\0';
	return out;
}

/* Waits until squeue shows the job in state (or, for "", not active). */
static void wait_job(hr_project *p, long long id, const char *state, int timeout_ms)
{
	char *s = NULL;
	for (int waited = 0; waited <= timeout_ms; waited += 200) {
		free(s);
		s = job_state(id, !*state);
		if (strcmp(s, state) == 0) {
			free(s);
			return;
		}
		hr_sleep_ms(200);
	}
	hr_dump_logs(p);
	p->quiet = true;
	fail_msg("Slurm job %lld is \"%s\", expected \"%s\"", id, s, state);
}

/* Waits until the job is no longer active, then expects Slurm's CANCELLED. */
static void expect_job_cancelled(hr_project *p, long long job)
{
	wait_job(p, job, "", W);
	char *s = job_state(job, false);
	assert_string_equal(s, "CANCELLED");
	free(s);
}

/* Ends every job of the test's cluster (a failed test may leave some). */
static void cancel_all_jobs(void)
{
	char *argv[] = {"scancel", "--partition=debug", "--full", "--signal=KILL", NULL};
	free(capture(argv));
}

/* --- the database's side ----------------------------------------------------- */

/* The Slurm job id recorded with a try (task_tries.external_id), or 0. */
static long long try_job(hr_project *p, const char *dag, const char *run,
			 const char *task, int try_number)
{
	char *id = hr_sql_text(p,
			       "SELECT external_id FROM task_tries t JOIN runs r ON r.id = t.run_pk"
			       " WHERE r.dag_id = ?1 AND r.run_id = ?2 AND t.task_id = ?3"
			       " AND t.try_number = ?4",
			       "sssi", dag, run, task, try_number);
	long long v = id ? atoll(id) : 0;
	free(id);
	return v;
}

typedef struct job_wait {
	const char *dag, *run, *task;
	long long id;
} job_wait;

static bool has_job(hr_project *p, void *arg)
{
	job_wait *w = arg;
	return (w->id = try_job(p, w->dag, w->run, w->task, 1)) > 0;
}

/* Waits until try 1 of the task has a job id, then until Slurm runs it. */
static long long wait_running_job(hr_project *p, const char *dag, const char *run,
				  const char *task)
{
	job_wait w = {dag, run, task, 0};
	hr_wait_for(p, has_job, &w, "the try's Slurm job id", W);
	wait_job(p, w.id, "RUNNING", W);
	return w.id;
}

static void expect_task(hr_project *p, const char *dag, const char *run,
			const char *task, const char *state)
{
	const char *s = hr_task_state(p, dag, run, task);
	if (!s || strcmp(s, state) != 0)
		fail_msg("task %s is %s, expected %s", task, s ? s : "(none)", state);
}

static void expect_run(hr_project *p, const char *dag, const char *run, const char *state)
{
	const char *s = hr_wait_run_end(p, dag, run, W);
	if (strcmp(s, state) != 0) {
		hr_dump_logs(p);
		p->quiet = true;
		fail_msg("run %s/%s ended %s, expected %s", dag, run, s, state);
	}
}

static size_t n_tries(hr_project *p, const char *dag, const char *run, const char *task)
{
	hr_try *t;
	size_t n = hr_tries(p, dag, run, task, &t);
	free(t);
	return n;
}

/* A line of text equals "NAME=value" (env files written by tasks). */
static void expect_line(const char *text, const char *line, const char *what)
{
	size_t n = strlen(line);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "")
		if (strncmp(l, line, n) == 0 && (l[n] == '\n' || l[n] == '\0'))
			return;
	fail_msg("%s has no line \"%s\":\n%s", what, line, text ? text : "(no file)");
}

/* --- fixtures --------------------------------------------------------------- */

static int setup(void **state)
{
	hr_project *p = hr_project_new(4);
	hr_settings(p, SETTINGS);
	*state = p;
	return 0;
}

static int teardown(void **state)
{
	cancel_all_jobs();
	hr_project_free(*state);
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	if (!getenv("SLURM_CONF")) {
		fprintf(stderr, "test_slurm: SLURM_CONF is not set; run tests/slurm.sh\n");
		exit(77);
	}
	return 0;
}

/* --- the tests ---------------------------------------------------------------- */

/*
 * A task runs as a Slurm job with exactly a local try's environment (and
 * the job's SLURM_* variables), in the project root, with the params file,
 * dataset paths, env:, a log of stdout and stderr, XComs and the last
 * line; its downstream task runs after it, as another job.
 */
static void test_success_with_environment(void **state)
{
	hr_project *p = *state;
	hr_catalog(p, "report: {type: text.TextDataset, filepath: data/report.txt}\n");
	hr_dag(p, "env",
	       "params: {n: 1, keep: yes}\n"
	       "tasks:\n"
	       "  - id: produce\n"
	       "    outputs: [report]\n"
	       "    env: {FOO: bar}\n"
	       "    command: |\n"
	       "      env > env-produce.txt\n"
	       "      pwd > pwd.txt\n"
	       "      cp \"$PIPEWRIGHT_PARAMS\" params-copy.json\n"
	       "      mkdir -p data && echo \"from $SLURM_JOB_ID\" > \"$PIPEWRIGHT_OUTPUT_REPORT\"\n"
	       "      echo '{\"count\": 3, \"tags\": [\"x\"]}' > \"$PIPEWRIGHT_XCOM\"\n"
	       "      echo to stderr >&2\n"
	       "      echo result line\n"
	       "  - id: consume\n"
	       "    inputs: [report]\n"
	       "    command: [\"sh\", \"-c\", \"cat \\\"$PIPEWRIGHT_INPUT_REPORT\\\"\"]\n");
	hr_queue_run(p, "env", "r1", ON_SLURM, "{\"n\": 2}");
	hr_runner_start(p, NULL);
	expect_run(p, "env", "r1", "success");

	long long job1 = try_job(p, "env", "r1", "produce", 1);
	long long job2 = try_job(p, "env", "r1", "consume", 1);
	if (job1 <= 0 || job2 <= 0 || job1 == job2)
		fail_msg("jobs %lld and %lld: expected two Slurm jobs", job1, job2);
	char line[256], *env = hr_read(p, "env-produce.txt");
	snprintf(line, sizeof line, "SLURM_JOB_ID=%lld", job1);
	expect_line(env, line, "the task's environment");
	expect_line(env, "PIPEWRIGHT_DAG_ID=env", "the task's environment");
	expect_line(env, "PIPEWRIGHT_RUN_ID=r1", "the task's environment");
	expect_line(env, "PIPEWRIGHT_TASK_ID=produce", "the task's environment");
	expect_line(env, "PIPEWRIGHT_TRY_NUMBER=1", "the task's environment");
	expect_line(env, "FOO=bar", "the task's environment");
	snprintf(line, sizeof line, "PIPEWRIGHT_OUTPUT_REPORT=%s/data/report.txt", p->dir);
	expect_line(env, line, "the task's environment");
	snprintf(line, sizeof line, "PIPEWRIGHT_XCOM=%s/var/logs/env/r1/produce/1.xcom.json",
		 p->dir);
	expect_line(env, line, "the task's environment");
	free(env);

	char *pwd = hr_read(p, "pwd.txt"), *root = realpath(p->dir, NULL);
	assert_non_null(root);
	assert_non_null(pwd);
	pwd[strcspn(pwd, "\n")] = '\0';
	assert_string_equal(pwd, root);
	free(root);
	free(pwd);
	char *params = hr_read(p, "params-copy.json");
	json_object *o = json_tokener_parse(params ? params : "");
	if (json_object_get_int(json_object_object_get(o, "n")) != 2 ||
	    !json_object_object_get(o, "keep"))
		fail_msg("params file: %s", params ? params : "(none)");
	json_object_put(o);
	free(params);

	char *v = hr_xcom(p, "env", "r1", "produce", "return_value");
	assert_string_equal(v, "\"result line\"");
	free(v);
	v = hr_xcom(p, "env", "r1", "produce", "count");
	assert_string_equal(v, "3");
	free(v);
	snprintf(line, sizeof line, "\"from %lld\"", job1);
	v = hr_xcom(p, "env", "r1", "consume", "return_value");
	assert_string_equal(v, line);
	free(v);
	char *log = hr_try_log(p, "env", "r1", "produce", 1);
	if (!log || !strstr(log, "to stderr\n") || !strstr(log, "result line\n"))
		fail_msg("the try's log lacks its stdout or stderr:\n%s", log ? log : "(none)");
	free(log);
	hr_try *t;
	assert_int_equal(hr_tries(p, "env", "r1", NULL, &t), 2);
	if (t[1].started_at < t[0].ended_at)
		fail_msg("consume started before produce ended");
	free(t);
	hr_pass(p);
}

/* A failing task is retried as a new job and ends failed with its status. */
static void test_failure_is_retried(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "fail",
	       "tasks:\n"
	       "  - id: flaky\n"
	       "    command: [\"sh\", \"-c\", \"echo try $PIPEWRIGHT_TRY_NUMBER; exit 3\"]\n"
	       "    retries: 1\n"
	       "    retry_delay: 0\n");
	hr_queue_run(p, "fail", "r1", ON_SLURM, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "fail", "r1", "failed");

	hr_ti ti;
	assert_true(hr_task(p, "fail", "r1", "flaky", &ti));
	assert_string_equal(ti.state, "failed");
	assert_int_equal(ti.try_number, 2);
	assert_true(ti.has_exit);
	assert_int_equal(ti.exit_code, 3);
	hr_try *t;
	assert_int_equal(hr_tries(p, "fail", "r1", "flaky", &t), 2);
	for (int i = 0; i < 2; i++) {
		assert_string_equal(t[i].state, "failed");
		assert_int_equal(t[i].exit_code, 3);
		assert_string_equal(t[i].reason, "exit status 3");
		assert_int_equal(t[i].pid, 0);
	}
	free(t);
	if (try_job(p, "fail", "r1", "flaky", 1) == try_job(p, "fail", "r1", "flaky", 2))
		fail_msg("both tries have one Slurm job");
	char *log = hr_try_log(p, "fail", "r1", "flaky", 2);
	assert_non_null(strstr(log, "try 2\n"));
	free(log);
	char *ev = hr_state_events(p, "fail", "r1", "flaky");
	assert_string_equal(ev, "queued,running,up_for_retry,queued,running,failed");
	free(ev);
	char *m = hr_sql_text(p, "SELECT error_message FROM runs WHERE run_id = 'r1'", NULL);
	assert_string_equal(m, "Task 'flaky' failed: exit status 3");
	free(m);
	hr_pass(p);
}

/* The task's timeout counts from the job's start; then scancel. */
static void test_timeout_cancels_job(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "slow",
	       "tasks:\n"
	       "  - {id: sleepy, command: [sleep, \"60\"], timeout: 2}\n"
	       "  - {id: after, command: \"true\", upstream: [sleepy]}\n");
	hr_queue_run(p, "slow", "r1", ON_SLURM, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "slow", "r1", "failed");

	expect_task(p, "slow", "r1", "sleepy", "failed");
	expect_task(p, "slow", "r1", "after", "upstream_failed");
	assert_int_equal(n_tries(p, "slow", "r1", "after"), 0);
	hr_try *t;
	assert_int_equal(hr_tries(p, "slow", "r1", "sleepy", &t), 1);
	assert_string_equal(t[0].reason, "timeout after 2 s");
	if (t[0].ended_at - t[0].started_at > 20000)
		fail_msg("the timed out try took %lld ms", t[0].ended_at - t[0].started_at);
	free(t);
	long long job = try_job(p, "slow", "r1", "sleepy", 1);
	expect_job_cancelled(p, job);
	hr_pass(p);
}

/* Cancel: the job is scancelled, the task cancelled, later tasks never start. */
static void test_cancel_scancels_job(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "long",
	       "tasks:\n"
	       "  - {id: wait, command: [sleep, \"60\"]}\n"
	       "  - {id: later, command: \"true\", upstream: [wait]}\n");
	hr_queue_run(p, "long", "r1", ON_SLURM, NULL);
	hr_runner_start(p, NULL);
	long long job = wait_running_job(p, "long", "r1", "wait");
	hr_request(p, "long", "r1", "cancel");
	expect_run(p, "long", "r1", "cancelled");

	expect_task(p, "long", "r1", "wait", "cancelled");
	expect_task(p, "long", "r1", "later", "cancelled");
	assert_int_equal(n_tries(p, "long", "r1", "later"), 0);
	expect_job_cancelled(p, job);
	hr_pass(p);
}

/*
 * scancel may say things (Slurm prints errors and notes on stderr): its
 * output is read and dropped. A runner started with a scancel that writes
 * 10,000 bytes before it does its work still cancels (it once crashed).
 */
static void test_cancel_with_talkative_scancel(void **state)
{
	hr_project *p = *state;
	char *real = capture((char *[]){"sh", "-c", "command -v scancel", NULL});
	if (!real)
		fail_msg("out of memory");
	real[strcspn(real, "\n")] = '\0';
	char *script = NULL;
	if (asprintf(&script,
		     "#!/bin/sh\n"
		     "yes x | head -c 10000 >&2\n"
		     "exec '%s' \"$@\"\n", real) < 0)
		fail_msg("out of memory");
	hr_write(p, "bin/scancel", script);
	char *bin = hr_path(p, "bin"), *wrapper = hr_path(p, "bin/scancel");
	assert_int_equal(chmod(wrapper, 0755), 0);
	const char *old = getenv("PATH");
	char *saved = strdup(old), *path = NULL;
	if (!saved || asprintf(&path, "%s:%s", bin, old) < 0)
		fail_msg("out of memory");
	setenv("PATH", path, 1);

	hr_dag(p, "talk", "tasks:\n  - {id: wait, command: [sleep, \"60\"]}\n");
	hr_queue_run(p, "talk", "r1", ON_SLURM, NULL);
	hr_runner_start(p, NULL);
	setenv("PATH", saved, 1);
	long long job = wait_running_job(p, "talk", "r1", "wait");
	hr_request(p, "talk", "r1", "cancel");
	expect_run(p, "talk", "r1", "cancelled");
	expect_task(p, "talk", "r1", "wait", "cancelled");
	expect_job_cancelled(p, job);
	free(real);
	free(script);
	free(bin);
	free(wrapper);
	free(saved);
	free(path);
	hr_pass(p);
}

/* kill -9 of the runner: the next one follows the same job to its end. */
static void test_kill9_adopts_job(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "k9",
	       "tasks:\n"
	       "  - id: once\n"
	       "    command: \"echo ran >> ran.txt; sleep 3; echo done\"\n");
	hr_queue_run(p, "k9", "r1", ON_SLURM, NULL);
	pid_t runner = hr_runner_start(p, NULL);
	long long job = wait_running_job(p, "k9", "r1", "once");
	hr_runner_kill9(p, runner);
	assert_string_equal(hr_task_state(p, "k9", "r1", "once"), "running");
	pid_t next = hr_runner_start(p, NULL);
	expect_run(p, "k9", "r1", "success");

	char *ran = hr_read(p, "ran.txt");
	assert_string_equal(ran, "ran\n"); /* once */
	free(ran);
	assert_int_equal(n_tries(p, "k9", "r1", "once"), 1);
	assert_int_equal(try_job(p, "k9", "r1", "once", 1), job);
	char *v = hr_xcom(p, "k9", "r1", "once", "return_value");
	assert_string_equal(v, "\"done\"");
	free(v);
	char *log = hr_runner_log(p, next), want[96];
	snprintf(want, sizeof want, "following Slurm job %lld again", job);
	if (!strstr(log, want))
		fail_msg("the second runner's log lacks \"%s\":\n%s", want, log);
	free(log);
	hr_pass(p);
}

/*
 * A job that dies with its shim (as on a failed node: SIGKILL to the
 * shim's group, here by the test) leaves no status: the try is lost.
 */
static void test_vanished_job_is_lost(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "gone", "tasks:\n  - {id: victim, command: \"echo $PPID > shim.pid; exec sleep 60\"}\n");
	hr_queue_run(p, "gone", "r1", ON_SLURM, NULL);
	hr_runner_start(p, NULL);
	long long job = wait_running_job(p, "gone", "r1", "victim");
	char *pid = NULL;
	for (int waited = 0; !pid && waited < W; waited += 100) {
		pid = hr_read(p, "shim.pid");
		if (!pid)
			hr_sleep_ms(100);
	}
	assert_non_null(pid);
	if (kill(-(pid_t)atoi(pid), SIGKILL) != 0) /* the shim did setsid() */
		fail_msg("kill -KILL -%d: %s", atoi(pid), strerror(errno));
	free(pid);
	expect_run(p, "gone", "r1", "failed");

	hr_try *t;
	assert_int_equal(hr_tries(p, "gone", "r1", "victim", &t), 1);
	char want[64];
	snprintf(want, sizeof want, "lost: Slurm job %lld ", job);
	if (strncmp(t[0].reason, want, strlen(want)) != 0 || !strstr(t[0].reason, "without a status"))
		fail_msg("reason \"%s\", expected \"%s... without a status\"", t[0].reason, want);
	assert_false(t[0].has_exit);
	free(t);
	hr_pass(p);
}

/* sbatch refuses the job: the try fails at once, with sbatch's words in its log. */
static void test_sbatch_refusal(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "nope", "tasks:\n  - {id: t, command: \"true\"}\n");
	hr_queue_run(p, "nope", "r1", "{\"runner\": \"nowhere.Slurm\"}", NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "nope", "r1", "failed");

	hr_try *t;
	assert_int_equal(hr_tries(p, "nope", "r1", "t", &t), 1);
	assert_string_equal(t[0].reason, "cannot submit to Slurm: sbatch failed (see the log)");
	free(t);
	char *log = hr_try_log(p, "nope", "r1", "t", 1);
	if (!log || !strstr(log, "sbatch: error"))
		fail_msg("the log lacks sbatch's error:\n%s", log ? log : "(none)");
	free(log);
	hr_pass(p);
}

/* Pools hold for Slurm tries as for local ones: one slot, one job at a time. */
static void test_pool_slots(void **state)
{
	hr_project *p = *state;
	hr_pools(p, "single: {slots: 1}\n");
	hr_dag(p, "pool",
	       "defaults: {pool: single}\n"
	       "tasks:\n"
	       "  - {id: a, command: [sleep, \"0.3\"]}\n"
	       "  - {id: b, command: [sleep, \"0.3\"]}\n"
	       "  - {id: c, command: [sleep, \"0.3\"]}\n");
	hr_queue_run(p, "pool", "r1", ON_SLURM, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "pool", "r1", "success");

	hr_try *t;
	size_t n = hr_tries(p, "pool", "r1", NULL, &t);
	assert_int_equal(n, 3);
	for (size_t i = 1; i < n; i++)
		if (t[i].started_at < t[i - 1].ended_at)
			fail_msg("%s started before %s ended", t[i].task_id, t[i - 1].task_id);
	free(t);
	hr_pass(p);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_success_with_environment),
		T(test_failure_is_retried),
		T(test_timeout_cancels_job),
		T(test_cancel_scancels_job),
		T(test_cancel_with_talkative_scancel),
		T(test_kill9_adopts_job),
		T(test_vanished_job_is_lost),
		T(test_sbatch_refusal),
		T(test_pool_slots),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
