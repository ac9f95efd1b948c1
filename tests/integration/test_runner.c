/*
 * test_runner.c - pipewright-runner as a black box: real runner processes
 * on a scratch project, real task processes, the real database. Each test
 * checks one behaviour of docs/runner.md (and DESIGN.md sections 3, 4, 7).
 *
 * Tasks are short (true, false, sleep 0.2) so the file runs in well under
 * a minute; the deadlines are generous for a loaded machine, and the only
 * timing assertions are orderings and overlaps of recorded times.
 */
#include "harness.h"

#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define W HR_WAIT_MS

/* --- helpers ------------------------------------------------------------ */

static int setup(void **state)
{
	*state = hr_project_new(4);
	return 0;
}

static int teardown(void **state)
{
	hr_project_free(*state);
	return 0;
}

static void expect_task(hr_project *p, const char *dag, const char *run,
			const char *task, const char *state)
{
	const char *s = hr_task_state(p, dag, run, task);
	if (!s || strcmp(s, state) != 0)
		fail_msg("task %s/%s/%s is %s, expected %s", dag, run, task,
			 s ? s : "(no task instance)", state);
}

static size_t n_tries(hr_project *p, const char *dag, const char *run,
		      const char *task)
{
	hr_try *t;
	size_t n = hr_tries(p, dag, run, task, &t);
	free(t);
	return n;
}

/* The task never started: no try, no running state. */
static void expect_never_ran(hr_project *p, const char *dag, const char *run,
			     const char *task)
{
	size_t n = n_tries(p, dag, run, task);
	if (n != 0)
		fail_msg("task %s/%s/%s has %zu tries, expected none", dag, run,
			 task, n);
}

/* One try; its times. */
static hr_try one_try(hr_project *p, const char *dag, const char *run,
		      const char *task)
{
	hr_try *t, r;
	size_t n = hr_tries(p, dag, run, task, &t);
	if (n != 1) {
		free(t);
		fail_msg("task %s/%s/%s has %zu tries, expected 1", dag, run, task, n);
	}
	r = t[0];
	free(t);
	return r;
}

/* task's (only) try started no earlier than upstream's (only) try ended. */
static void expect_started_after(hr_project *p, const char *dag, const char *run,
				 const char *task, const char *upstream)
{
	hr_try t = one_try(p, dag, run, task), u = one_try(p, dag, run, upstream);
	if (!t.started_at || !u.ended_at || t.started_at < u.ended_at)
		fail_msg("%s started at %lld, before its upstream %s ended at %lld",
			 task, t.started_at, upstream, u.ended_at);
}

/* task's try started before other's try ended ("as soon as"). */
static void expect_started_before_end(hr_project *p, const char *dag,
				      const char *run, const char *task,
				      const char *other)
{
	hr_try t = one_try(p, dag, run, task), o = one_try(p, dag, run, other);
	if (!t.started_at || !o.ended_at || t.started_at >= o.ended_at)
		fail_msg("%s started at %lld, not before %s ended at %lld", task,
			 t.started_at, other, o.ended_at);
}

static void expect_times(const hr_try *t)
{
	if (t->started_at <= 0 || t->ended_at <= 0 || t->ended_at < t->started_at)
		fail_msg("try %s#%d has times [%lld, %lld]", t->task_id,
			 t->try_number, t->started_at, t->ended_at);
}

/* The most tries running at one moment (intervals [started_at, ended_at)). */
static int max_overlap(const hr_try *t, size_t n)
{
	int best = 0;
	for (size_t k = 0; k < n; k++) {
		int c = 0;
		for (size_t i = 0; i < n; i++)
			if (t[i].started_at <= t[k].started_at &&
			    t[k].started_at < t[i].ended_at)
				c++;
		if (c > best)
			best = c;
	}
	return best;
}

static void print_tries(const hr_try *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "  %s#%d %s [%lld, %lld]\n", t[i].task_id,
			t[i].try_number, t[i].state, t[i].started_at, t[i].ended_at);
}

/* All tries of the run ended success, at most max_at_once ran at a time. */
static void expect_concurrency(hr_project *p, const char *dag, const char *run,
			       size_t n_expected, int max_at_once)
{
	hr_try *t;
	size_t n = hr_tries(p, dag, run, NULL, &t);
	if (n != n_expected) {
		print_tries(t, n);
		free(t);
		fail_msg("%zu tries, expected %zu", n, n_expected);
	}
	for (size_t i = 0; i < n; i++)
		expect_times(&t[i]);
	int m = max_overlap(t, n);
	if (m > max_at_once) {
		print_tries(t, n);
		free(t);
		fail_msg("%d tries of %s/%s overlapped, at most %d allowed", m, dag,
			 run, max_at_once);
	}
	free(t);
}

static void expect_run(hr_project *p, const char *dag, const char *run,
		       const char *state, int timeout_ms)
{
	const char *s = hr_wait_run_end(p, dag, run, timeout_ms);
	if (strcmp(s, state) != 0) {
		hr_dump_logs(p);
		p->quiet = true;
		fail_msg("run %s/%s ended %s, expected %s", dag, run, s, state);
	}
}

static char *run_field(hr_project *p, const char *field_sql, const char *dag,
		       const char *run)
{
	char sql[256];
	snprintf(sql, sizeof sql,
		 "SELECT %s FROM runs WHERE dag_id = ?1 AND run_id = ?2", field_sql);
	return hr_sql_text(p, sql, "ss", dag, run);
}

static long long run_time(hr_project *p, const char *col, const char *dag,
			  const char *run)
{
	char sql[256];
	snprintf(sql, sizeof sql,
		 "SELECT %s FROM runs WHERE dag_id = ?1 AND run_id = ?2", col);
	return hr_sql_int(p, 0, sql, "ss", dag, run);
}

static void expect_run_error(hr_project *p, const char *dag, const char *run,
			     const char *type, const char *message)
{
	char *t = run_field(p, "error_type", dag, run);
	char *m = run_field(p, "error_message", dag, run);
	if (!t || strcmp(t, type) != 0 || !m || strcmp(m, message) != 0)
		fail_msg("run %s/%s error is %s: %s\nexpected %s: %s", dag, run,
			 t ? t : "(null)", m ? m : "(null)", type, message);
	free(t);
	free(m);
}

/* A JSON value parsed from the database; fails the test when invalid. */
static json_object *json_of(const char *text, const char *what)
{
	if (!text)
		fail_msg("%s: no value", what);
	json_object *o = json_tokener_parse(text);
	if (!o && strcmp(text, "null") != 0)
		fail_msg("%s: not JSON: %s", what, text);
	return o;
}

static void expect_xcom_string(hr_project *p, const char *dag, const char *run,
			       const char *task, const char *key,
			       const char *expected)
{
	char *v = hr_xcom(p, dag, run, task, key);
	if (!v)
		fail_msg("no XCom %s of %s/%s/%s", key, dag, run, task);
	json_object *o = json_of(v, key);
	if (!json_object_is_type(o, json_type_string) ||
	    strcmp(json_object_get_string(o), expected) != 0)
		fail_msg("XCom %s of %s is %s, expected the JSON string \"%s\"", key,
			 task, v, expected);
	json_object_put(o);
	free(v);
}

/* Waits until the runner wrote its heartbeat row with its pid. */
static bool runner_row_is(hr_project *p, void *arg)
{
	return hr_sql_int(p, 0, "SELECT pid FROM runner WHERE id = 1", NULL) ==
	       (long long)*(pid_t *)arg;
}

static void wait_runner_ready(hr_project *p, pid_t pid)
{
	hr_wait_for(p, runner_row_is, &pid, "the runner's heartbeat row", W);
}

static int count_lines(const char *text)
{
	int n = 0;
	for (const char *c = text; c && *c; c++)
		n += *c == '\n';
	return n;
}

/* --- trigger rules ------------------------------------------------------ */

static void test_trigger_all_success(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "ts",
	       "tasks:\n"
	       "  - {id: ok1, command: \"true\"}\n"
	       "  - {id: ok2, command: \"true\"}\n"
	       "  - {id: bad, command: \"false\"}\n"
	       "  - {id: skipper, command: \"true\", upstream: [ok1], trigger_rule: all_failed}\n"
	       "  - {id: all_ok, command: \"true\", upstream: [ok1, ok2]}\n"
	       "  - {id: one_bad, command: \"true\", upstream: [ok1, bad]}\n"
	       "  - {id: one_skipped, command: \"true\", upstream: [ok1, skipper]}\n"
	       "  - {id: chained, command: \"true\", upstream: [one_bad]}\n");
	hr_queue_run(p, "ts", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "ts", "r1", "failed", W);

	expect_task(p, "ts", "r1", "ok1", "success");
	expect_task(p, "ts", "r1", "bad", "failed");
	expect_task(p, "ts", "r1", "skipper", "skipped");
	expect_task(p, "ts", "r1", "all_ok", "success");
	expect_started_after(p, "ts", "r1", "all_ok", "ok1");
	expect_started_after(p, "ts", "r1", "all_ok", "ok2");
	char *ev = hr_state_events(p, "ts", "r1", "all_ok");
	if (!strstr(ev, "queued,running,success"))
		fail_msg("all_ok events %s lack queued,running,success", ev);
	free(ev);
	expect_task(p, "ts", "r1", "one_bad", "upstream_failed");
	expect_task(p, "ts", "r1", "one_skipped", "skipped");
	expect_task(p, "ts", "r1", "chained", "upstream_failed");
	expect_never_ran(p, "ts", "r1", "skipper");
	expect_never_ran(p, "ts", "r1", "one_bad");
	expect_never_ran(p, "ts", "r1", "one_skipped");
	expect_never_ran(p, "ts", "r1", "chained");

	/* The run's error names the failed task. */
	char *t = run_field(p, "error_type", "ts", "r1");
	char *m = run_field(p, "error_message", "ts", "r1");
	assert_non_null(t);
	assert_string_equal(t, "TaskFailedError");
	if (!m || !strstr(m, "bad"))
		fail_msg("error message does not name task 'bad': %s", m ? m : "(null)");
	free(t);
	free(m);
	hr_pass(p);
}

static void test_trigger_all_done(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "td",
	       "tasks:\n"
	       "  - {id: ok, command: \"true\"}\n"
	       "  - {id: bad, command: \"false\"}\n"
	       "  - {id: uf, command: \"true\", upstream: [bad]}\n"
	       "  - {id: skipper, command: \"true\", upstream: [ok], trigger_rule: all_failed}\n"
	       "  - {id: mixed, command: \"true\", upstream: [ok, bad], trigger_rule: all_done}\n"
	       "  - {id: uf_skip, command: \"true\", upstream: [uf, skipper], trigger_rule: all_done}\n");
	hr_queue_run(p, "td", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "td", "r1", "failed", W);

	expect_task(p, "td", "r1", "uf", "upstream_failed");
	expect_task(p, "td", "r1", "skipper", "skipped");
	expect_task(p, "td", "r1", "mixed", "success");
	expect_started_after(p, "td", "r1", "mixed", "ok");
	expect_started_after(p, "td", "r1", "mixed", "bad");
	expect_task(p, "td", "r1", "uf_skip", "success");
	hr_pass(p);
}

static void test_trigger_all_failed(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "tf",
	       "tasks:\n"
	       "  - {id: ok, command: \"true\"}\n"
	       "  - {id: bad1, command: \"false\"}\n"
	       "  - {id: bad2, command: \"false\"}\n"
	       "  - {id: uf, command: \"true\", upstream: [bad1]}\n"
	       "  - {id: all_bad, command: \"true\", upstream: [bad1, bad2], trigger_rule: all_failed}\n"
	       "  - {id: bad_uf, command: \"true\", upstream: [bad2, uf], trigger_rule: all_failed}\n"
	       "  - {id: mixed, command: \"true\", upstream: [ok, bad1], trigger_rule: all_failed}\n");
	hr_queue_run(p, "tf", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "tf", "r1", "failed", W);

	expect_task(p, "tf", "r1", "all_bad", "success");
	expect_started_after(p, "tf", "r1", "all_bad", "bad1");
	expect_started_after(p, "tf", "r1", "all_bad", "bad2");
	expect_task(p, "tf", "r1", "bad_uf", "success");   /* upstream_failed counts */
	expect_task(p, "tf", "r1", "mixed", "skipped");
	expect_never_ran(p, "tf", "r1", "mixed");
	hr_pass(p);
}

static void test_trigger_one_success(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "tos",
	       "tasks:\n"
	       "  - {id: ok, command: \"true\"}\n"
	       "  - {id: slow, command: \"sleep 3\"}\n"
	       "  - {id: bad1, command: \"false\"}\n"
	       "  - {id: bad2, command: \"false\"}\n"
	       "  - {id: skipper, command: \"true\", upstream: [ok], trigger_rule: all_failed}\n"
	       "  - {id: early, command: \"true\", upstream: [ok, slow], trigger_rule: one_success}\n"
	       "  - {id: mixed, command: \"true\", upstream: [bad1, ok], trigger_rule: one_success}\n"
	       "  - {id: none_ok, command: \"true\", upstream: [bad1, bad2], trigger_rule: one_success}\n"
	       "  - {id: skip_bad, command: \"true\", upstream: [skipper, bad2], trigger_rule: one_success}\n");
	hr_queue_run(p, "tos", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "tos", "r1", "failed", W);

	expect_task(p, "tos", "r1", "early", "success");
	expect_started_after(p, "tos", "r1", "early", "ok");
	/* queued as soon as one upstream succeeded, not when all ended */
	expect_started_before_end(p, "tos", "r1", "early", "slow");
	expect_task(p, "tos", "r1", "mixed", "success");
	expect_task(p, "tos", "r1", "none_ok", "upstream_failed");
	expect_task(p, "tos", "r1", "skip_bad", "upstream_failed");
	expect_never_ran(p, "tos", "r1", "none_ok");
	expect_never_ran(p, "tos", "r1", "skip_bad");
	hr_pass(p);
}

static void test_trigger_one_failed(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "tof",
	       "tasks:\n"
	       "  - {id: ok1, command: \"true\"}\n"
	       "  - {id: ok2, command: \"true\"}\n"
	       "  - {id: bad, command: \"false\"}\n"
	       "  - {id: slow, command: \"sleep 3\"}\n"
	       "  - {id: uf, command: \"true\", upstream: [bad]}\n"
	       "  - {id: early, command: \"true\", upstream: [bad, slow], trigger_rule: one_failed}\n"
	       "  - {id: all_ok, command: \"true\", upstream: [ok1, ok2], trigger_rule: one_failed}\n"
	       "  - {id: via_uf, command: \"true\", upstream: [uf, ok1], trigger_rule: one_failed}\n");
	hr_queue_run(p, "tof", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "tof", "r1", "failed", W);

	expect_task(p, "tof", "r1", "early", "success");
	expect_started_after(p, "tof", "r1", "early", "bad");
	expect_started_before_end(p, "tof", "r1", "early", "slow");
	expect_task(p, "tof", "r1", "all_ok", "skipped");
	expect_never_ran(p, "tof", "r1", "all_ok");
	expect_task(p, "tof", "r1", "via_uf", "success");
	hr_pass(p);
}

static void test_trigger_none_failed(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "tnf",
	       "tasks:\n"
	       "  - {id: ok, command: \"true\"}\n"
	       "  - {id: bad, command: \"false\"}\n"
	       "  - {id: skipper, command: \"true\", upstream: [ok], trigger_rule: all_failed}\n"
	       "  - {id: uf, command: \"true\", upstream: [bad]}\n"
	       "  - {id: ok_skip, command: \"true\", upstream: [ok, skipper], trigger_rule: none_failed}\n"
	       "  - {id: ok_bad, command: \"true\", upstream: [ok, bad], trigger_rule: none_failed}\n"
	       "  - {id: ok_uf, command: \"true\", upstream: [ok, uf], trigger_rule: none_failed}\n");
	/* No failure at all: skipped tasks still make a successful run. */
	hr_dag(p, "tnf_ok",
	       "tasks:\n"
	       "  - {id: ok, command: \"true\"}\n"
	       "  - {id: skipper, command: \"true\", upstream: [ok], trigger_rule: all_failed}\n"
	       "  - {id: ok_skip, command: \"true\", upstream: [ok, skipper], trigger_rule: none_failed}\n");
	hr_queue_run(p, "tnf", "r1", NULL, NULL);
	hr_queue_run(p, "tnf_ok", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "tnf", "r1", "failed", W);
	expect_run(p, "tnf_ok", "r1", "success", W);

	expect_task(p, "tnf", "r1", "ok_skip", "success");
	expect_started_after(p, "tnf", "r1", "ok_skip", "ok");
	expect_task(p, "tnf", "r1", "ok_bad", "upstream_failed");
	expect_task(p, "tnf", "r1", "ok_uf", "upstream_failed");
	expect_never_ran(p, "tnf", "r1", "ok_bad");
	expect_never_ran(p, "tnf", "r1", "ok_uf");
	expect_task(p, "tnf_ok", "r1", "skipper", "skipped");
	expect_task(p, "tnf_ok", "r1", "ok_skip", "success");
	hr_pass(p);
}

/* --- retries, timeouts, cancel, retry ----------------------------------- */

static void test_retries_count_tries(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "rt",
	       "tasks:\n"
	       "  - id: flaky\n"
	       "    command: 'echo \"$PIPEWRIGHT_TRY_NUMBER\" >> tries.txt; [ $(wc -l < tries.txt) -ge 3 ]'\n"
	       "    retries: 2\n"
	       "    retry_delay: 1\n"
	       "  - {id: hopeless, command: \"false\", retries: 1, retry_delay: 0}\n");
	hr_queue_run(p, "rt", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "rt", "r1", "failed", W);

	hr_ti ti;
	assert_true(hr_task(p, "rt", "r1", "flaky", &ti));
	assert_string_equal(ti.state, "success");
	assert_int_equal(ti.try_number, 3);
	assert_int_equal(ti.max_tries, 3);
	hr_try *t;
	size_t n = hr_tries(p, "rt", "r1", "flaky", &t);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(t[i].try_number, (int)i + 1);
		expect_times(&t[i]);
		assert_true(t[i].has_exit);
		assert_int_equal(t[i].exit_code, i < 2 ? 1 : 0);
		if ((i < 2) == (strcmp(t[i].state, "success") == 0))
			fail_msg("try %zu is %s", i + 1, t[i].state);
	}
	/* retry_delay: 1 s between a try's end and the next start */
	for (size_t i = 1; i < n; i++)
		if (t[i].started_at < t[i - 1].ended_at + 1000 - 50)
			fail_msg("try %zu started %lld ms after try %zu ended; retry_delay is 1 s",
				 i + 1, t[i].started_at - t[i - 1].ended_at, i);
	free(t);
	char *tries = hr_read(p, "tries.txt");
	assert_non_null(tries);
	assert_string_equal(tries, "1\n2\n3\n");
	free(tries);
	char *ev = hr_state_events(p, "rt", "r1", "flaky");
	if (!strstr(ev, "running,up_for_retry,queued,running,up_for_retry,queued,running,success"))
		fail_msg("flaky's events: %s", ev);
	free(ev);

	assert_true(hr_task(p, "rt", "r1", "hopeless", &ti));
	assert_string_equal(ti.state, "failed");
	assert_int_equal(ti.try_number, 2);
	assert_int_equal(ti.max_tries, 2);
	assert_int_equal(n_tries(p, "rt", "r1", "hopeless"), 2);
	hr_pass(p);
}

static void test_timeout_kills_group(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "to",
	       "tasks:\n"
	       "  - {id: slow, command: \"sleep 30 & sleep 30\", timeout: 1}\n");
	hr_queue_run(p, "to", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	pid_t pgid = hr_wait_try_pid(p, "to", "r1", "slow", 1, W);
	expect_run(p, "to", "r1", "failed", W);

	expect_task(p, "to", "r1", "slow", "failed");
	hr_try t = one_try(p, "to", "r1", "slow");
	if (!strstr(t.reason, "timeout after 1 s"))
		fail_msg("reason is \"%s\", expected \"timeout after 1 s\"", t.reason);
	assert_int_equal(t.pid, pgid);
	if (!hr_wait_group_gone(pgid, 10000))
		fail_msg("processes of group %d still alive after the timeout", (int)pgid);
	hr_pass(p);
}

/* A task that ignores SIGTERM: SIGKILL follows (5 s later). */
static void test_timeout_escalates_to_sigkill(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "tok",
	       "tasks:\n"
	       "  - {id: stubborn, command: \"trap '' TERM; sleep 30 & sleep 30\", timeout: 1}\n");
	hr_queue_run(p, "tok", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	pid_t pgid = hr_wait_try_pid(p, "tok", "r1", "stubborn", 1, W);
	expect_run(p, "tok", "r1", "failed", W);

	expect_task(p, "tok", "r1", "stubborn", "failed");
	hr_try t = one_try(p, "tok", "r1", "stubborn");
	if (!strstr(t.reason, "timeout after 1 s"))
		fail_msg("reason is \"%s\", expected \"timeout after 1 s\"", t.reason);
	if (!hr_wait_group_gone(pgid, 10000))
		fail_msg("processes of group %d still alive after the timeout", (int)pgid);
	hr_pass(p);
}

static void test_cancel_running_run(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "cx",
	       "tasks:\n"
	       "  - {id: long, command: \"sleep 30\"}\n"
	       "  - {id: after, command: \"true\", upstream: [long]}\n");
	hr_queue_run(p, "cx", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	hr_wait_task_state(p, "cx", "r1", "long", "running", W);
	pid_t pgid = hr_wait_try_pid(p, "cx", "r1", "long", 1, W);
	hr_request(p, "cx", "r1", "cancel");
	expect_run(p, "cx", "r1", "cancelled", W);

	expect_task(p, "cx", "r1", "long", "cancelled");
	hr_try t = one_try(p, "cx", "r1", "long");
	assert_string_equal(t.state, "cancelled");
	expect_task(p, "cx", "r1", "after", "cancelled");
	expect_never_ran(p, "cx", "r1", "after");
	if (!hr_wait_group_gone(pgid, 10000))
		fail_msg("processes of group %d still alive after the cancel", (int)pgid);
	hr_pass(p);
}

/* A queued run that never started (its DAG is paused) can be cancelled. */
static void test_cancel_queued_run(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "cq", "tasks:\n  - {id: a, command: \"true\"}\n");
	hr_set_paused(p, "cq", true);
	hr_queue_run(p, "cq", "r1", NULL, NULL);
	pid_t pid = hr_runner_start(p, NULL);
	wait_runner_ready(p, pid);
	hr_request(p, "cq", "r1", "cancel");
	expect_run(p, "cq", "r1", "cancelled", W);
	expect_never_ran(p, "cq", "r1", "a");
	/* Unpausing does not bring it back. */
	hr_set_paused(p, "cq", false);
	hr_sleep_ms(1500);
	assert_string_equal(hr_run_state(p, "cq", "r1"), "cancelled");
	hr_pass(p);
}

static void test_retry_failed_run(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "rr",
	       "tasks:\n"
	       "  - {id: first, command: \"echo x >> first.txt\"}\n"
	       "  - {id: check, command: \"test -f marker\", upstream: [first],"
	       " retries: 1, retry_delay: 0}\n"
	       "  - {id: last, command: \"true\", upstream: [check], retries: 2}\n");
	hr_queue_run(p, "rr", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "rr", "r1", "failed", W);
	hr_ti ti;
	assert_true(hr_task(p, "rr", "r1", "check", &ti));
	assert_string_equal(ti.state, "failed");
	assert_int_equal(ti.try_number, 2);
	assert_int_equal(ti.max_tries, 2);
	expect_task(p, "rr", "r1", "last", "upstream_failed");

	hr_write(p, "marker", "");
	hr_request(p, "rr", "r1", "retry");
	hr_wait_run_state(p, "rr", "r1", "success", W);

	assert_true(hr_task(p, "rr", "r1", "first", &ti));
	assert_string_equal(ti.state, "success");
	assert_int_equal(ti.try_number, 1);
	assert_int_equal(n_tries(p, "rr", "r1", "first"), 1);
	char *runs = hr_read(p, "first.txt");
	assert_non_null(runs);
	assert_string_equal(runs, "x\n");   /* not run again */
	free(runs);
	/* the next try number; max_tries = try_number + retries + 1 */
	assert_true(hr_task(p, "rr", "r1", "check", &ti));
	assert_string_equal(ti.state, "success");
	assert_int_equal(ti.try_number, 3);
	assert_int_equal(ti.max_tries, 4);
	assert_int_equal(n_tries(p, "rr", "r1", "check"), 3);
	assert_true(hr_task(p, "rr", "r1", "last", &ti));
	assert_string_equal(ti.state, "success");
	assert_int_equal(ti.try_number, 1);
	assert_int_equal(ti.max_tries, 3);    /* never ran: retries + 1 */
	char *ev = hr_state_events(p, "rr", "r1", NULL);
	assert_string_equal(ev, "queued,running,failed,queued,running,success");
	free(ev);
	hr_pass(p);
}

/* A cancelled run can be retried: the cancelled tasks run again. */
static void test_retry_cancelled_run(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "rc",
	       "tasks:\n"
	       "  - {id: long, command: '[ \"$PIPEWRIGHT_TRY_NUMBER\" -gt 1 ] || sleep 30'}\n"
	       "  - {id: after, command: \"true\", upstream: [long]}\n");
	hr_queue_run(p, "rc", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	hr_wait_task_state(p, "rc", "r1", "long", "running", W);
	hr_request(p, "rc", "r1", "cancel");
	expect_run(p, "rc", "r1", "cancelled", W);
	hr_request(p, "rc", "r1", "retry");
	hr_wait_run_state(p, "rc", "r1", "success", W);
	hr_ti ti;
	assert_true(hr_task(p, "rc", "r1", "long", &ti));
	assert_string_equal(ti.state, "success");
	assert_int_equal(ti.try_number, 2);
	assert_int_equal(n_tries(p, "rc", "r1", "long"), 2);
	assert_true(hr_task(p, "rc", "r1", "after", &ti));
	assert_string_equal(ti.state, "success");
	assert_int_equal(ti.try_number, 1);
	hr_pass(p);
}

/* --- pools, parallelism, runners -------------------------------------- */

static void test_pool_slots_never_exceeded(void **state)
{
	hr_project *p = *state;
	hr_pool_add(p, "one", 1);
	hr_pool_add(p, "two", 2);
	hr_dag(p, "pl",
	       "defaults: {pool: one}\n"
	       "tasks:\n"
	       "  - {id: a, command: \"sleep 0.2\"}\n"
	       "  - {id: b, command: \"sleep 0.2\"}\n"
	       "  - {id: c, command: \"sleep 0.2\"}\n"
	       "  - {id: d, command: \"sleep 0.2\"}\n");
	/* A task holding both slots of "two" never runs beside the others. */
	hr_dag(p, "pl2",
	       "defaults: {pool: two}\n"
	       "tasks:\n"
	       "  - {id: big, command: \"sleep 0.3\", pool_slots: 2}\n"
	       "  - {id: s1, command: \"sleep 0.3\"}\n"
	       "  - {id: s2, command: \"sleep 0.3\"}\n");
	hr_queue_run(p, "pl", "r1", NULL, NULL);
	hr_queue_run(p, "pl2", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "pl", "r1", "success", W);
	expect_run(p, "pl2", "r1", "success", W);
	expect_concurrency(p, "pl", "r1", 4, 1);
	expect_concurrency(p, "pl2", "r1", 3, 2);
	hr_try big = one_try(p, "pl2", "r1", "big");
	hr_try *t;
	size_t n = hr_tries(p, "pl2", "r1", NULL, &t);
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].task_id, "big") != 0 &&
		    t[i].started_at < big.ended_at && big.started_at < t[i].ended_at) {
			print_tries(t, n);
			free(t);
			fail_msg("a task ran beside 'big', which holds both slots");
		}
	free(t);
	hr_pass(p);
}

/* Pools of conf/<env>/pools* are created at load; the database's values win. */
static void test_pools_from_config(void **state)
{
	hr_project *p = *state;
	hr_pools(p, "cfg: {slots: 1, description: from conf}\n"
		    "kept: {slots: 1, description: from conf}\n");
	hr_pool_add(p, "kept", 3);   /* as if the API had changed it */
	hr_dag(p, "pc",
	       "defaults: {pool: cfg}\n"
	       "tasks:\n"
	       "  - {id: a, command: \"sleep 0.2\"}\n"
	       "  - {id: b, command: \"sleep 0.2\"}\n"
	       "  - {id: c, command: \"sleep 0.2\"}\n");
	hr_queue_run(p, "pc", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "pc", "r1", "success", W);
	expect_concurrency(p, "pc", "r1", 3, 1);
	assert_int_equal(hr_sql_int(p, -1, "SELECT slots FROM pools WHERE name = ?1", "s", "cfg"), 1);
	assert_int_equal(hr_sql_int(p, -1, "SELECT slots FROM pools WHERE name = ?1", "s", "kept"), 3);
	hr_pass(p);
}

static void test_max_parallel_tasks(void **state)
{
	hr_project *p = *state;
	hr_settings(p, "max_parallel_tasks: 2");
	hr_dag(p, "mp",
	       "tasks:\n"
	       "  - {id: a, command: \"sleep 0.3\"}\n"
	       "  - {id: b, command: \"sleep 0.3\"}\n"
	       "  - {id: c, command: \"sleep 0.3\"}\n"
	       "  - {id: d, command: \"sleep 0.3\"}\n"
	       "  - {id: e, command: \"sleep 0.3\"}\n");
	hr_queue_run(p, "mp", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "mp", "r1", "success", W);
	expect_concurrency(p, "mp", "r1", 5, 2);
	hr_pass(p);
}

static void test_sequential_runner(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "sq",
	       "tasks:\n"
	       "  - {id: a, command: \"sleep 0.2\"}\n"
	       "  - {id: b, command: \"sleep 0.2\"}\n"
	       "  - {id: c, command: \"sleep 0.2\"}\n"
	       "  - {id: d, command: \"sleep 0.2\"}\n");
	hr_queue_run(p, "sq", "r1", "{\"runner\": \"SequentialRunner\"}", NULL);
	hr_queue_run(p, "sq", "r2", "{\"runner\": \"kedro.runner.SequentialRunner\"}", NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "sq", "r1", "success", W);
	expect_run(p, "sq", "r2", "success", W);
	expect_concurrency(p, "sq", "r1", 4, 1);
	expect_concurrency(p, "sq", "r2", 4, 1);
	hr_pass(p);
}

static void test_missing_pool_waits(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "mpool",
	       "tasks:\n"
	       "  - {id: a, command: \"true\", pool: later}\n");
	hr_queue_run(p, "mpool", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	hr_wait_task_state(p, "mpool", "r1", "a", "queued", W);
	hr_sleep_ms(1500);
	expect_task(p, "mpool", "r1", "a", "queued");
	expect_never_ran(p, "mpool", "r1", "a");
	assert_string_equal(hr_run_state(p, "mpool", "r1"), "running");
	hr_pool_add(p, "later", 1);
	expect_run(p, "mpool", "r1", "success", W);
	hr_pass(p);
}

/* --- runs: pause, max_active_runs, schedules -------------------------- */

static void test_pause_holds_queued_runs(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "held", "tasks:\n  - {id: a, command: \"true\"}\n");
	hr_dag(p, "held_file", "paused: true\ntasks:\n  - {id: a, command: \"true\"}\n");
	hr_set_paused(p, "held", true);
	hr_queue_run(p, "held", "r1", NULL, NULL);
	hr_queue_run(p, "held_file", "r1", NULL, NULL);
	pid_t pid = hr_runner_start(p, NULL);
	wait_runner_ready(p, pid);
	hr_sleep_ms(1500);
	assert_string_equal(hr_run_state(p, "held", "r1"), "queued");
	assert_string_equal(hr_run_state(p, "held_file", "r1"), "queued");
	assert_int_equal(hr_task_count(p, "held", "r1"), 0);
	assert_int_equal(hr_task_count(p, "held_file", "r1"), 0);
	assert_int_equal(hr_sql_int(p, -1, "SELECT is_paused FROM dags WHERE dag_id = ?1",
				    "s", "held_file"), 1);

	hr_set_paused(p, "held", false);
	expect_run(p, "held", "r1", "success", W);
	assert_string_equal(hr_run_state(p, "held_file", "r1"), "queued");
	hr_set_paused(p, "held_file", false);
	expect_run(p, "held_file", "r1", "success", W);
	hr_pass(p);
}

static void test_max_active_runs(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "mar",
	       "max_active_runs: 1\n"
	       "tasks:\n"
	       "  - {id: nap, command: \"sleep 0.3\"}\n");
	hr_queue_run(p, "mar", "r1", NULL, NULL);
	hr_queue_run(p, "mar", "r2", NULL, NULL);
	hr_queue_run(p, "mar", "r3", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "mar", "r1", "success", W);
	expect_run(p, "mar", "r2", "success", W);
	expect_run(p, "mar", "r3", "success", W);
	const char *ids[] = {"r1", "r2", "r3"};
	long long s[3], e[3];
	for (int i = 0; i < 3; i++) {
		s[i] = run_time(p, "started_at", "mar", ids[i]);
		e[i] = run_time(p, "ended_at", "mar", ids[i]);
		if (!s[i] || !e[i] || e[i] < s[i])
			fail_msg("run %s has times [%lld, %lld]", ids[i], s[i], e[i]);
	}
	/* In queue order, one after the other. */
	for (int i = 1; i < 3; i++)
		if (s[i] < e[i - 1])
			fail_msg("run %s started at %lld, before %s ended at %lld",
				 ids[i], s[i], ids[i - 1], e[i - 1]);
	hr_pass(p);
}

/*
 * A run claimed while an older run holds the only slot starts its first
 * task at the next free slot, before the older run's next task, which
 * becomes ready at that same moment (docs/runner.md, "Which try starts").
 */
static void test_new_run_starts_first(void **state)
{
	hr_project *p = *state;
	hr_settings(p, "max_parallel_tasks: 1");
	hr_dag(p, "long",
	       "tasks:\n"
	       "  - {id: a, command: \"sleep 0.6\"}\n"
	       "  - {id: b, upstream: [a], command: \"sleep 0.3\"}\n");
	hr_dag(p, "quick", "tasks:\n  - {id: a, command: \"true\"}\n");
	hr_queue_run(p, "long", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	hr_wait_task_state(p, "long", "r1", "a", "running", W);
	hr_queue_run(p, "quick", "r1", NULL, NULL);
	hr_wait_run_state(p, "quick", "r1", "running", W);
	hr_ti la, lb, qa;
	assert_true(hr_task(p, "long", "r1", "a", &la));
	if (la.ended_at)
		fail_msg("long.a ended before quick/r1 was claimed: the test is too slow here");
	expect_run(p, "long", "r1", "success", W);
	expect_run(p, "quick", "r1", "success", W);
	assert_true(hr_task(p, "long", "r1", "b", &lb));
	assert_true(hr_task(p, "quick", "r1", "a", &qa));
	if (qa.started_at > lb.started_at)
		fail_msg("quick.a started at %lld, after long.b at %lld", qa.started_at,
			 lb.started_at);
	hr_pass(p);
}

typedef struct sched_wait {
	const char *dag;
	int min_runs;
} sched_wait;

static bool next_run_set(hr_project *p, void *arg)
{
	return hr_sql_int(p, 0, "SELECT next_run_at FROM dags WHERE dag_id = ?1",
			  "s", ((sched_wait *)arg)->dag) > 0;
}

static long long scheduled_runs(hr_project *p, const char *dag)
{
	return hr_sql_int(p, 0, "SELECT count(*) FROM runs WHERE dag_id = ?1"
			  " AND run_type = 'scheduled'", "s", dag);
}

static bool has_scheduled_run(hr_project *p, void *arg)
{
	sched_wait *w = arg;
	return scheduled_runs(p, w->dag) >= w->min_runs;
}

static long long next_run_at(hr_project *p, const char *dag)
{
	return hr_sql_int(p, 0, "SELECT next_run_at FROM dags WHERE dag_id = ?1", "s", dag);
}

/*
 * Two scheduled DAGs ("* * * * *"), one paused; a runner that stored their
 * next fire times, which must be the next whole minute. Returns its pid.
 */
static pid_t cron_setup(hr_project *p)
{
	hr_dag(p, "cron", "schedule: \"* * * * *\"\ntasks:\n  - {id: a, command: \"true\"}\n");
	hr_dag(p, "cron_paused",
	       "schedule: \"* * * * *\"\npaused: true\ntasks:\n  - {id: a, command: \"true\"}\n");
	/* Stay clear of a natural fire at the next whole minute. */
	if (pw_now_ms() % 60000 > 50000)
		hr_sleep_ms((int)(60000 - pw_now_ms() % 60000) + 200);
	long long t0 = pw_now_ms();
	pid_t pid = hr_runner_start(p, NULL);
	sched_wait w1 = {"cron", 1}, w2 = {"cron_paused", 1};
	hr_wait_for(p, next_run_set, &w1, "next_run_at of cron", W);
	hr_wait_for(p, next_run_set, &w2, "next_run_at of cron_paused", W);
	long long next = next_run_at(p, "cron");
	if (next % 60000 != 0 || next <= t0 || next > t0 + 60000)
		fail_msg("next_run_at %lld is not the next whole minute after %lld", next, t0);
	assert_int_equal(scheduled_runs(p, "cron"), 0);
	return pid;
}

/* Three hours of missed fire times (as if the runner had been down). */
static long long cron_miss_3h(hr_project *p)
{
	long long due = (pw_now_ms() / 60000) * 60000 - 3 * 3600 * 1000LL;
	hr_sql(p, "UPDATE dags SET next_run_at = ?1 WHERE dag_id IN (?2, ?3)", "lss",
	       due, "cron", "cron_paused");
	return due;
}

/* Exactly one scheduled run for the due fire time; next_run_at moved on. */
static void cron_check_one_run(hr_project *p, long long due, long long t1,
			       long long before)
{
	sched_wait w1 = {"cron", 1};
	hr_wait_for(p, has_scheduled_run, &w1, "a scheduled run of cron", W);
	hr_sleep_ms(1500);
	assert_int_equal(scheduled_runs(p, "cron"), 1);
	assert_int_equal(scheduled_runs(p, "cron_paused"), 0);
	char expect_id[32];
	pw_format_run_id(due, expect_id);
	char *id = hr_sql_text(p, "SELECT run_id FROM runs WHERE dag_id = ?1", "s", "cron");
	assert_non_null(id);
	if (strcmp(id, expect_id) != 0)
		fail_msg("scheduled run id %s, expected the fire time %s", id, expect_id);
	/* made by the wake-up, not by the next natural fire time */
	long long queued = hr_sql_int(p, 0, "SELECT queued_at FROM runs WHERE dag_id = ?1",
				      "s", "cron");
	if (before && queued >= before)
		fail_msg("the run was queued at %lld, not before the natural fire time %lld",
			 queued, before);
	long long next = next_run_at(p, "cron");
	if (next % 60000 != 0 || next <= t1)
		fail_msg("next_run_at %lld did not move past now (%lld)", next, t1);
	expect_run(p, "cron", id, "success", W);
	free(id);
}

/* The runner was down for three hours: one run on restart, no catch-up. */
static void test_cron_missed_while_down(void **state)
{
	hr_project *p = *state;
	pid_t pid = cron_setup(p);
	hr_runner_stop(p, pid, 10000);
	long long t1 = pw_now_ms();
	long long due = cron_miss_3h(p);
	hr_runner_start(p, NULL);
	cron_check_one_run(p, due, t1, 0);
	hr_pass(p);
}

/* A fire time made due in the database (and a wake-up) is noticed at once. */
static void test_cron_due_noticed_on_wake(void **state)
{
	hr_project *p = *state;
	cron_setup(p);
	long long natural = next_run_at(p, "cron");
	long long t1 = pw_now_ms();
	long long due = cron_miss_3h(p);   /* hr_sql wakes the runner */
	cron_check_one_run(p, due, t1, natural);
	hr_pass(p);
}

/* --- what a task gets and gives ---------------------------------------- */

static void test_xcom(void **state)
{
	hr_project *p = *state;
	hr_write(p, "scripts/xcom.sh",
		 "cat > \"$PIPEWRIGHT_XCOM\" <<'EOF'\n"
		 "{\"n\": 3, \"f\": 1.5, \"s\": \"x\", \"b\": true, \"return_value\": 5,"
		 " \"o\": {\"k\": [1, 2]}, \"l\": [\"a\"], \"z\": null}\n"
		 "EOF\n"
		 "echo done\n");
	hr_write(p, "scripts/bad_array.sh", "echo '[1, 2]' > \"$PIPEWRIGHT_XCOM\"\necho ok\n");
	hr_write(p, "scripts/bad_text.sh", "echo 'nope {' > \"$PIPEWRIGHT_XCOM\"\necho ok\n");
	hr_dag(p, "xc",
	       "tasks:\n"
	       "  - id: rv\n"
	       "    command: 'printf \"first\\nlast line\\n\\n\"'\n"
	       "  - {id: xf, command: \"sh scripts/xcom.sh\"}\n"
	       "  - {id: bad_array, command: \"sh scripts/bad_array.sh\"}\n"
	       "  - {id: bad_text, command: \"sh scripts/bad_text.sh\"}\n");
	hr_queue_run(p, "xc", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "xc", "r1", "failed", W);

	expect_task(p, "xc", "r1", "rv", "success");
	expect_xcom_string(p, "xc", "r1", "rv", "return_value", "last line");
	expect_task(p, "xc", "r1", "xf", "success");
	/* The file's return_value is ignored (logged): stdout's line wins. */
	expect_xcom_string(p, "xc", "r1", "xf", "return_value", "done");
	char *xf_log = hr_try_log(p, "xc", "r1", "xf", 1);
	if (!xf_log || !strstr(xf_log, "return_value is ignored"))
		fail_msg("xf's log does not say the file's return_value was ignored: %s",
			 xf_log ? xf_log : "(none)");
	free(xf_log);
	static const struct {
		const char *key;
		json_type type;
		const char *json;
	} want[] = {
		{"n", json_type_int, "3"},
		{"f", json_type_double, "1.5"},
		{"s", json_type_string, "\"x\""},
		{"b", json_type_boolean, "true"},
		{"o", json_type_object, "{\"k\": [1, 2]}"},
		{"l", json_type_array, "[\"a\"]"},
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		char *v = hr_xcom(p, "xc", "r1", "xf", want[i].key);
		json_object *got = json_of(v, want[i].key);
		json_object *exp = json_tokener_parse(want[i].json);
		if (!json_object_is_type(got, want[i].type) || !json_object_equal(got, exp))
			fail_msg("XCom %s is %s, expected %s", want[i].key, v, want[i].json);
		json_object_put(got);
		json_object_put(exp);
		free(v);
	}
	/* null keeps its key (as SQL NULL or the JSON text null) */
	char *z = hr_xcom(p, "xc", "r1", "xf", "z");
	assert_int_equal(hr_sql_int(p, 0,
		"SELECT count(*) FROM xcom x JOIN runs r ON r.id = x.run_pk"
		" WHERE r.dag_id = ?1 AND r.run_id = ?2 AND x.task_id = ?3 AND x.key = ?4",
		"ssss", "xc", "r1", "xf", "z"), 1);
	if (z && strcmp(z, "null") != 0)
		fail_msg("XCom z is %s, expected null", z);
	free(z);

	const char *bad[] = {"bad_array", "bad_text"};
	for (int i = 0; i < 2; i++) {
		expect_task(p, "xc", "r1", bad[i], "failed");
		char *log = hr_try_log(p, "xc", "r1", bad[i], 1);
		if (!log || !strstr(log, "XCom"))
			fail_msg("the log of %s does not give the XCom reason:\n%s", bad[i],
				 log ? log : "(no log)");
		free(log);
	}
	hr_pass(p);
}

/* Compares each file's JSON with expected; returns a message or "" in msg. */
static void check_json_files(hr_project *p, const char *const *files,
			     const char *expected, char *msg, size_t size)
{
	json_object *exp = json_tokener_parse(expected);
	assert_non_null(exp);
	for (int i = 0; files[i]; i++) {
		char *text = hr_read(p, files[i]);
		json_object *got = text ? json_tokener_parse(text) : NULL;
		if (!*msg && (!got || !json_object_equal(got, exp)))
			snprintf(msg, size, "%s is %s, expected %s", files[i],
				 text ? text : "(missing)", json_object_to_json_string(exp));
		json_object_put(got);
		free(text);
	}
	json_object_put(exp);
}

static void test_params_file(void **state)
{
	hr_project *p = *state;
	hr_parameters(p, "a: 1\nkeep: base\nnested: {x: 1, y: 1}\n");
	hr_dag(p, "pr",
	       "params: {b: dag, nested: {y: 2, z: 2}}\n"
	       "tasks:\n"
	       "  - {id: dump, command: 'cp \"$PIPEWRIGHT_PARAMS\" \"params-$PIPEWRIGHT_RUN_ID.json\"'}\n");
	hr_dag(p, "pr2",
	       "params: {b: dag2, nested: {w: 4}}\n"
	       "tasks:\n"
	       "  - {id: dump2, command: 'cp \"$PIPEWRIGHT_PARAMS\" \"params2-$PIPEWRIGHT_RUN_ID.json\"'}\n");
	hr_queue_run(p, "pr", "r1", NULL,
		     "{\"a\": 10, \"c\": \"run\", \"nested\": {\"z\": 3}}");
	/* a+b: b's DAG params merged over a's */
	hr_queue_run(p, "pr+pr2", "r2", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "pr", "r1", "success", W);
	expect_run(p, "pr+pr2", "r2", "success", W);

	char msg[2048] = "";
	check_json_files(p, (const char *const[]){"params-r1.json",
						  "var/logs/pr/r1/params.json", NULL},
			 "{\"a\": 10, \"keep\": \"base\", \"b\": \"dag\", \"c\": \"run\","
			 " \"nested\": {\"x\": 1, \"y\": 2, \"z\": 3}}", msg, sizeof msg);
	check_json_files(p, (const char *const[]){"params-r2.json", "params2-r2.json",
						  "var/logs/pr+pr2/r2/params.json", NULL},
			 "{\"a\": 1, \"keep\": \"base\", \"b\": \"dag2\","
			 " \"nested\": {\"x\": 1, \"y\": 2, \"z\": 2, \"w\": 4}}",
			 msg, sizeof msg);
	if (*msg)
		fail_msg("%s", msg);
	hr_pass(p);
}

/* The value of "name=..." in env.txt's text, or NULL. */
static char *env_line(const char *text, const char *name)
{
	size_t n = strlen(name);
	for (const char *l = text; l && *l;) {
		const char *end = strchr(l, '\n');
		size_t len = end ? (size_t)(end - l) : strlen(l);
		if (len > n && strncmp(l, name, n) == 0 && l[n] == '=') {
			char *v = strndup(l + n + 1, len - n - 1);
			assert_non_null(v);
			return v;
		}
		l = end ? end + 1 : l + len;
	}
	return NULL;
}

/* value (absolute, or relative to the project root) names <dir>/rel. */
static void expect_path(hr_project *p, const char *what, const char *value,
			const char *rel)
{
	char *want = hr_path(p, rel);
	char *got = value && *value == '/' ? strdup(value) : hr_path(p, value ? value : "");
	assert_non_null(got);
	if (!value || strcmp(got, want) != 0)
		fail_msg("%s is %s, expected %s", what, value ? value : "(unset)", want);
	free(want);
	free(got);
}

static void test_task_environment(void **state)
{
	hr_project *p = *state;
	hr_catalog(p,
		   "raw_in: {type: text.TextDataset, filepath: data/in.txt}\n"
		   "result: {type: text.TextDataset, filepath: data/out.txt}\n");
	hr_write(p, "scripts/env.sh",
		 "mkdir -p \"$(dirname \"$PIPEWRIGHT_OUTPUT_RESULT\")\"\n"
		 "{\n"
		 "  echo \"dag=$PIPEWRIGHT_DAG_ID\"\n"
		 "  echo \"run=$PIPEWRIGHT_RUN_ID\"\n"
		 "  echo \"task=$PIPEWRIGHT_TASK_ID\"\n"
		 "  echo \"try=$PIPEWRIGHT_TRY_NUMBER\"\n"
		 "  echo \"in=$PIPEWRIGHT_INPUT_RAW_IN\"\n"
		 "  echo \"out=$PIPEWRIGHT_OUTPUT_RESULT\"\n"
		 "  echo \"extra=$EXTRA\"\n"
		 "  echo \"pwd=$(pwd -P)\"\n"
		 "  echo \"params=$PIPEWRIGHT_PARAMS\"\n"
		 "  echo \"xcom=$PIPEWRIGHT_XCOM\"\n"
		 "} > env.txt\n"
		 "echo out > \"$PIPEWRIGHT_OUTPUT_RESULT\"\n");
	hr_write(p, "sub/.keep", "");
	hr_dag(p, "envs",
	       "tasks:\n"
	       "  - id: show\n"
	       "    command: [sh, scripts/env.sh]\n"
	       "    inputs: [raw_in]\n"
	       "    outputs: [result]\n"
	       "    env: {EXTRA: hello}\n"
	       "  - {id: in_sub, command: \"pwd -P > ../cwd.txt\", cwd: sub}\n"
	       "  - {id: inner, namespace: ns, command: 'echo \"$PIPEWRIGHT_TASK_ID\" > ns_task.txt'}\n");
	hr_queue_run(p, "envs", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "envs", "r1", "success", W);

	char *text = hr_read(p, "env.txt");
	assert_non_null(text);
	const struct {
		const char *name, *value;
	} exact[] = {
		{"dag", "envs"}, {"run", "r1"}, {"task", "show"}, {"try", "1"},
		{"extra", "hello"}, {"pwd", p->dir},
	};
	for (size_t i = 0; i < sizeof exact / sizeof *exact; i++) {
		char *v = env_line(text, exact[i].name);
		if (!v || strcmp(v, exact[i].value) != 0)
			fail_msg("%s is %s, expected %s", exact[i].name, v ? v : "(none)",
				 exact[i].value);
		free(v);
	}
	char *in = env_line(text, "in"), *out = env_line(text, "out");
	expect_path(p, "PIPEWRIGHT_INPUT_RAW_IN", in, "data/in.txt");
	expect_path(p, "PIPEWRIGHT_OUTPUT_RESULT", out, "data/out.txt");
	free(in);
	free(out);
	char *params = env_line(text, "params"), *xcom = env_line(text, "xcom");
	if (!params || !*params || !xcom || !*xcom)
		fail_msg("PIPEWRIGHT_PARAMS or PIPEWRIGHT_XCOM unset:\n%s", text);
	free(params);
	free(xcom);
	free(text);
	assert_true(hr_exists(p, "data/out.txt"));

	char *cwd = hr_read(p, "cwd.txt"), *sub = hr_path(p, "sub");
	char want[4200];
	snprintf(want, sizeof want, "%s\n", sub);
	assert_non_null(cwd);
	assert_string_equal(cwd, want);
	free(cwd);
	free(sub);

	expect_task(p, "envs", "r1", "ns.inner", "success");
	char *ns = hr_read(p, "ns_task.txt");
	assert_non_null(ns);
	assert_string_equal(ns, "ns.inner\n");
	free(ns);
	hr_pass(p);
}

static void test_versioned_outputs(void **state)
{
	hr_project *p = *state;
	hr_catalog(p, "model: {type: text.TextDataset, filepath: data/model.txt, versioned: true}\n");
	hr_dag(p, "ver",
	       "tasks:\n"
	       "  - id: train\n"
	       "    command: 'mkdir -p \"$(dirname \"$PIPEWRIGHT_OUTPUT_MODEL\")\" &&"
	       " echo \"$PIPEWRIGHT_RUN_ID\" > \"$PIPEWRIGHT_OUTPUT_MODEL\"'\n"
	       "    outputs: [model]\n"
	       "  - id: use\n"
	       "    command: 'cat \"$PIPEWRIGHT_INPUT_MODEL\" > \"used-$PIPEWRIGHT_RUN_ID.txt\"'\n"
	       "    inputs: [model]\n");
	hr_runner_start(p, NULL);
	hr_queue_run(p, "ver", "r1", NULL, NULL);
	expect_run(p, "ver", "r1", "success", W);
	hr_queue_run(p, "ver", "r2", NULL, NULL);
	expect_run(p, "ver", "r2", "success", W);

	const char *checks[][2] = {
		{"data/model.txt/r1/model.txt", "r1\n"},
		{"data/model.txt/r2/model.txt", "r2\n"},
		{"used-r1.txt", "r1\n"},   /* this run's version */
		{"used-r2.txt", "r2\n"},
	};
	for (size_t i = 0; i < 4; i++) {
		char *text = hr_read(p, checks[i][0]);
		if (!text || strcmp(text, checks[i][1]) != 0)
			fail_msg("%s holds %s, expected %s", checks[i][0],
				 text ? text : "(missing)", checks[i][1]);
		free(text);
	}
	assert_false(hr_exists(p, "data/model.txt/model.txt"));

	/* load_versions pins an old version; otherwise the newest is read. */
	hr_queue_run(p, "ver", "r3",
		     "{\"node_names\": [\"use\"], \"load_versions\": {\"model\": \"r1\"}}", NULL);
	expect_run(p, "ver", "r3", "success", W);
	hr_queue_run(p, "ver", "r4", "{\"node_names\": [\"use\"]}", NULL);
	expect_run(p, "ver", "r4", "success", W);
	char *r3 = hr_read(p, "used-r3.txt"), *r4 = hr_read(p, "used-r4.txt");
	if (!r3 || strcmp(r3, "r1\n") != 0)
		fail_msg("pinned load read %s, expected r1", r3 ? r3 : "(missing)");
	if (!r4 || strcmp(r4, "r2\n") != 0)
		fail_msg("newest load read %s, expected r2", r4 ? r4 : "(missing)");
	free(r3);
	free(r4);
	hr_pass(p);
}

/* --- slicing -------------------------------------------------------------- */

/* The run has exactly these task instances (a NULL-terminated list). */
static void expect_instances(hr_project *p, const char *dag, const char *run,
			     const char *const *tasks)
{
	int n = 0;
	for (; tasks[n]; n++)
		if (!hr_task_state(p, dag, run, tasks[n]))
			fail_msg("run %s/%s has no task instance %s", dag, run, tasks[n]);
	int got = hr_task_count(p, dag, run);
	if (got != n)
		fail_msg("run %s/%s has %d task instances, expected %d", dag, run, got, n);
}

static void test_slicing(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "sl",
	       "tasks:\n"
	       "  - {id: a, command: \"true\"}\n"
	       "  - {id: b, command: \"true\", upstream: [a]}\n"
	       "  - {id: c, command: \"true\", upstream: [b]}\n"
	       "  - {id: d, command: \"true\", tags: [x]}\n");
	hr_dag(p, "other", "tasks:\n  - {id: e, command: \"true\"}\n");
	hr_queue_run(p, "sl", "s1", "{\"node_names\": [\"b\"]}", NULL);
	hr_queue_run(p, "sl", "s2", "{\"tags\": [\"x\"]}", NULL);
	hr_queue_run(p, "sl", "s3", "{\"from_nodes\": [\"b\"]}", NULL);
	hr_queue_run(p, "sl", "s4", "{\"to_nodes\": [\"b\"]}", NULL);
	hr_queue_run(p, "sl", "bad1", "{\"node_names\": [\"nope\"]}", NULL);
	hr_queue_run(p, "sl", "bad2", "{\"tags\": [\"x\"], \"node_names\": [\"a\"]}", NULL);
	hr_queue_run(p, "__default__", "all", NULL, NULL);
	hr_queue_run(p, "sl+other", "both", "{\"node_names\": [\"a\", \"e\"]}", NULL);
	hr_queue_run(p, "nosuch", "x", NULL, NULL);
	hr_runner_start(p, NULL);

	expect_run(p, "sl", "s1", "success", W);
	expect_instances(p, "sl", "s1", (const char *const[]){"b", NULL});
	expect_run(p, "sl", "s2", "success", W);
	expect_instances(p, "sl", "s2", (const char *const[]){"d", NULL});
	expect_run(p, "sl", "s3", "success", W);
	expect_instances(p, "sl", "s3", (const char *const[]){"b", "c", NULL});
	expect_run(p, "sl", "s4", "success", W);
	expect_instances(p, "sl", "s4", (const char *const[]){"a", "b", NULL});
	expect_run(p, "__default__", "all", "success", W);
	expect_instances(p, "__default__", "all",
			 (const char *const[]){"a", "b", "c", "d", "e", NULL});
	expect_run(p, "sl+other", "both", "success", W);
	expect_instances(p, "sl+other", "both", (const char *const[]){"a", "e", NULL});

	expect_run(p, "sl", "bad1", "failed", W);
	expect_run_error(p, "sl", "bad1", "ValueError",
			 "Pipeline does not contain nodes named ['nope'].");
	assert_int_equal(hr_task_count(p, "sl", "bad1"), 0);
	expect_run(p, "sl", "bad2", "failed", W);
	expect_run_error(p, "sl", "bad2", "ValueError",
			 "Pipeline contains no nodes after applying all provided filters."
			 " Please ensure that at least one pipeline with nodes has been defined.");
	expect_run(p, "nosuch", "x", "failed", W);
	expect_run_error(p, "nosuch", "x", "ValueError",
			 "Failed to find the pipeline named 'nosuch'. It needs to be generated"
			 " and returned by the 'register_pipelines' function. ");
	hr_pass(p);
}

static void test_only_missing_outputs(void **state)
{
	hr_project *p = *state;
	hr_catalog(p,
		   "o1: {type: text.TextDataset, filepath: data/o1.txt}\n"
		   "o2: {type: text.TextDataset, filepath: data/o2.txt}\n");
	hr_write(p, "data/o1.txt", "old\n");
	hr_dag(p, "om",
	       "tasks:\n"
	       "  - {id: t1, command: 'echo new > data/o1.txt; echo x >> t1_ran.txt', outputs: [o1]}\n"
	       "  - {id: t2, command: 'cat data/o1.txt > data/o2.txt', inputs: [o1], outputs: [o2]}\n");
	hr_queue_run(p, "om", "r1", "{\"only_missing_outputs\": true}", NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "om", "r1", "success", W);
	expect_instances(p, "om", "r1", (const char *const[]){"t2", NULL});
	assert_false(hr_exists(p, "t1_ran.txt"));
	char *o2 = hr_read(p, "data/o2.txt");
	assert_non_null(o2);
	assert_string_equal(o2, "old\n");
	free(o2);
	hr_pass(p);
}

/* --- events ------------------------------------------------------------- */

static void test_events_for_every_state_change(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "ev",
	       "tasks:\n"
	       "  - {id: a, command: \"true\"}\n"
	       "  - {id: b, command: \"true\", upstream: [a]}\n"
	       "  - {id: c, command: \"false\", upstream: [b]}\n"
	       "  - {id: d, command: \"true\", upstream: [c]}\n");
	hr_queue_run(p, "ev", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "ev", "r1", "failed", W);

	char *run_ev = hr_state_events(p, "ev", "r1", NULL);
	assert_string_equal(run_ev, "queued,running,failed");
	free(run_ev);
	const struct {
		const char *task, *seq;
	} want[] = {
		{"a", "queued,running,success"},
		{"b", "queued,running,success"},
		{"c", "queued,running,failed"},
		{"d", "upstream_failed"},
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		char *seq = hr_state_events(p, "ev", "r1", want[i].task);
		/* a task may or may not announce its initial pending state */
		const char *s = strncmp(seq, "pending,", 8) == 0 ? seq + 8 : seq;
		if (strcmp(s, want[i].seq) != 0)
			fail_msg("task %s events: %s, expected [pending,]%s", want[i].task,
				 seq, want[i].seq);
		free(seq);
	}
	/* The run's own events bracket its tasks' events. */
	long long run_running = hr_sql_int(p, 0,
		"SELECT min(id) FROM events WHERE type = 'run.state' AND run_id = ?1"
		" AND json_extract(data, '$.state') = 'running'", "s", "r1");
	long long run_end = hr_sql_int(p, 0,
		"SELECT max(id) FROM events WHERE type = 'run.state' AND run_id = ?1", "s", "r1");
	long long first_task = hr_sql_int(p, 0,
		"SELECT min(id) FROM events WHERE type = 'task.state' AND run_id = ?1"
		" AND json_extract(data, '$.state') = 'running'", "s", "r1");
	long long last_task = hr_sql_int(p, 0,
		"SELECT max(id) FROM events WHERE type = 'task.state' AND run_id = ?1", "s", "r1");
	if (!(run_running < first_task && last_task < run_end))
		fail_msg("run events %lld..%lld do not bracket task events %lld..%lld",
			 run_running, run_end, first_task, last_task);
	/* Every task event carries try_number: 0 before the first try (d). */
	long long without = hr_sql_int(p, -1,
		"SELECT count(*) FROM events WHERE type = 'task.state' AND run_id = ?1"
		" AND json_type(data, '$.try_number') IS NOT 'integer'", "s", "r1");
	long long d_try = hr_sql_int(p, -1,
		"SELECT json_extract(data, '$.try_number') FROM events WHERE type = 'task.state'"
		" AND run_id = ?1 AND json_extract(data, '$.task_id') = 'd'", "s", "r1");
	if (without != 0 || d_try != 0)
		fail_msg("%lld task events without an integer try_number; d's is %lld",
			 without, d_try);
	hr_pass(p);
}

/* --- the process: single instance, --once, heartbeat, signals -------- */

static void test_single_instance(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "si", "tasks:\n  - {id: a, command: \"true\"}\n");
	pid_t first = hr_runner_start(p, NULL);
	wait_runner_ready(p, first);
	pid_t second = hr_runner_start(p, NULL);
	int st = 0;
	if (!hr_runner_wait(p, second, 10000, &st))
		fail_msg("a second runner on the same database kept running");
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	char *log = hr_runner_log(p, second);
	if (!strstr(log, "another runner"))
		fail_msg("the second runner said: %s", log);
	free(log);
	/* The first one is unharmed and still works. */
	assert_true(hr_runner_wait(p, first, 0, NULL) == false);
	hr_queue_run(p, "si", "r1", NULL, NULL);
	expect_run(p, "si", "r1", "success", W);
	hr_pass(p);
}

/* --once from cron beside a running daemon: a line, status 0, nothing done. */
static void test_once_beside_a_runner(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "ob", "tasks:\n  - {id: a, command: \"true\"}\n");
	pid_t first = hr_runner_start(p, NULL);
	wait_runner_ready(p, first);
	pid_t once = hr_runner_start(p, (const char *const[]){"--once", NULL});
	int st = 0;
	if (!hr_runner_wait(p, once, 10000, &st))
		fail_msg("--once beside a running runner kept running");
	char *log = hr_runner_log(p, once);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !strstr(log, "another runner is active"))
		fail_msg("--once beside a runner: status %d, said: %s", st, log);
	free(log);
	assert_true(hr_runner_wait(p, first, 0, NULL) == false);
	hr_pass(p);
}

static void test_once_drains_and_exits(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "on",
	       "tasks:\n"
	       "  - {id: a, command: \"true\"}\n"
	       "  - {id: b, command: \"sleep 0.2\", upstream: [a]}\n");
	hr_dag(p, "held", "tasks:\n  - {id: a, command: \"true\"}\n");
	hr_set_paused(p, "held", true);
	hr_queue_run(p, "on", "r1", NULL, NULL);
	hr_queue_run(p, "on", "r2", NULL, NULL);
	hr_queue_run(p, "held", "r1", NULL, NULL);
	pid_t pid = hr_runner_start(p, (const char *const[]){"--once", NULL});
	int st = 0;
	if (!hr_runner_wait(p, pid, W, &st)) {
		hr_dump_logs(p);
		p->quiet = true;
		fail_msg("--once did not exit");
	}
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_string_equal(hr_run_state(p, "on", "r1"), "success");
	assert_string_equal(hr_run_state(p, "on", "r2"), "success");
	/* a paused DAG's run is not claimable: it waits for the next runner */
	assert_string_equal(hr_run_state(p, "held", "r1"), "queued");
	hr_pass(p);
}

typedef struct hb_wait {
	long long after;
} hb_wait;

static bool heartbeat_after(hr_project *p, void *arg)
{
	return hr_sql_int(p, 0, "SELECT last_heartbeat FROM runner WHERE id = 1", NULL) >
	       ((hb_wait *)arg)->after;
}

static void test_heartbeat_and_sigterm(void **state)
{
	hr_project *p = *state;
	long long t0 = pw_now_ms();
	pid_t pid = hr_runner_start(p, NULL);
	wait_runner_ready(p, pid);
	long long started = hr_sql_int(p, 0, "SELECT started_at FROM runner WHERE id = 1", NULL);
	long long h1 = hr_sql_int(p, 0, "SELECT last_heartbeat FROM runner WHERE id = 1", NULL);
	char *host = hr_sql_text(p, "SELECT host FROM runner WHERE id = 1", NULL);
	if (!host || !*host)
		fail_msg("the runner row has no host");
	free(host);
	if (started < t0 - 1000 || h1 < started)
		fail_msg("runner row started_at %lld, last_heartbeat %lld (test began %lld)",
			 started, h1, t0);
	hb_wait w = {h1};
	hr_wait_for(p, heartbeat_after, &w, "a newer heartbeat", 10000);
	assert_int_equal(hr_sql_int(p, 0, "SELECT started_at FROM runner WHERE id = 1", NULL),
			 started);
	int st = hr_runner_stop(p, pid, 10000);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("the runner did not exit cleanly on SIGTERM (status %#x)", st);
	hr_pass(p);
}

/* --- shims serve several tries (launch.h) ------------------------------- */

/* Task i of a chain of n, named t<i> (t1 has no upstream). */
static void chain_dag(hr_project *p, const char *dag, int n, const char *first,
		      const char *rest)
{
	char yaml[4096];
	size_t len = (size_t)snprintf(yaml, sizeof yaml, "tasks:\n");
	for (int i = 1; i <= n; i++)
		len += (size_t)snprintf(yaml + len, sizeof yaml - len,
					i == 1 ? "  - {id: t%d, command: %s}\n"
					       : "  - {id: t%d, command: %s, upstream: [t%d]}\n",
					i, i == 1 ? first : rest, i - 1);
	assert_true(len < sizeof yaml);
	hr_dag(p, dag, yaml);
}

/* The pid of the shim of task's (only) try. */
static pid_t try_pid(hr_project *p, const char *dag, const char *task)
{
	hr_try t = one_try(p, dag, "r1", task);
	if (t.pid <= 0)
		fail_msg("try of %s has no pid", task);
	return t.pid;
}

/*
 * Five tries in a row are served by at most two shims (a chain alternates
 * between the shim just acked and the one running), and each still gets
 * only its own environment, cwd, descriptors, XCom and log.
 */
static void test_shim_reused_between_tries(void **state)
{
	hr_project *p = *state;
	hr_write(p, "sub/.keep", "");
	hr_write(p, "scripts/show.sh",
		 "echo \"task=$PIPEWRIGHT_TASK_ID try=$PIPEWRIGHT_TRY_NUMBER"
		 " only_t1=${ONLY_T1-unset}\"\n"
		 "echo \"fds=$(ls /proc/self/fd | tr '\\n' ' ')\"\n"
		 "echo \"umask=$(umask)\"\n"
		 "echo \"pwd=$(pwd -P)\"\n"
		 "echo \"{\\\"me\\\": \\\"$PIPEWRIGHT_TASK_ID\\\"}\" > \"$PIPEWRIGHT_XCOM\"\n"
		 "umask 077; cd /; export LEAK=1\n"
		 "echo \"last $PIPEWRIGHT_TASK_ID\"\n");
	hr_dag(p, "re",
	       "tasks:\n"
	       "  - {id: t1, command: 'sh ../scripts/show.sh', cwd: sub, env: {ONLY_T1: yes}}\n"
	       "  - {id: t2, command: 'sh scripts/show.sh', upstream: [t1]}\n"
	       "  - {id: t3, command: 'sh scripts/show.sh', upstream: [t2]}\n"
	       "  - {id: t4, command: 'sh scripts/show.sh', upstream: [t3]}\n"
	       "  - {id: t5, command: 'sh scripts/show.sh', upstream: [t4]}\n");
	hr_queue_run(p, "re", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "re", "r1", "success", W);

	pid_t pids[5];
	int distinct = 0;
	char *sub = hr_path(p, "sub"), *first_fds = NULL, *first_umask = NULL;
	for (int i = 0; i < 5; i++) {
		char task[8], want[256];
		snprintf(task, sizeof task, "t%d", i + 1);
		pids[i] = try_pid(p, "re", task);
		bool seen = false;
		for (int j = 0; j < i; j++)
			seen = seen || pids[j] == pids[i];
		distinct += !seen;
		char *log = hr_try_log(p, "re", "r1", task, 1);
		assert_non_null(log);
		snprintf(want, sizeof want, "task=%s try=1 only_t1=%s\n", task,
			 i == 0 ? "yes" : "unset");
		if (!strstr(log, want) || count_lines(log) != 5)
			fail_msg("the log of %s is not its own:\n%s", task, log);
		char *pwd = env_line(log, "pwd"), *fds = env_line(log, "fds");
		char *um = env_line(log, "umask");
		assert_non_null(pwd);
		assert_non_null(fds);
		assert_non_null(um);
		assert_string_equal(pwd, i == 0 ? sub : p->dir);
		if (strcmp(fds, "0 1 2 3 ") != 0) /* 3: ls's own, of /proc/self/fd */
			fail_msg("%s has descriptors %s, expected 0 1 2 (and ls's 3)", task, fds);
		if (i == 0) {
			first_fds = fds;
			first_umask = um;
		} else {
			assert_string_equal(fds, first_fds);
			assert_string_equal(um, first_umask);
			free(fds);
			free(um);
		}
		free(pwd);
		free(log);
		snprintf(want, sizeof want, "last %s", task);
		expect_xcom_string(p, "re", "r1", task, "return_value", want);
		expect_xcom_string(p, "re", "r1", task, "me", task);
	}
	if (distinct > 2)
		fail_msg("5 tries in a row ran under %d shims (%d %d %d %d %d), expected at most 2",
			 distinct, (int)pids[0], (int)pids[1], (int)pids[2], (int)pids[3],
			 (int)pids[4]);
	free(first_fds);
	free(first_umask);
	free(sub);
	hr_pass(p);
}

/*
 * A try that leaves a process running behind retires its shim: no later
 * try runs under it (in a chain, t3 would have reused t1's shim), and the
 * next tries still run.
 */
static void test_shim_not_reused_after_background_child(void **state)
{
	hr_project *p = *state;
	chain_dag(p, "bg", 4, "'sleep 30 >/dev/null 2>&1 & echo hi'", "'echo ok'");
	hr_queue_run(p, "bg", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	expect_run(p, "bg", "r1", "success", W);

	pid_t left = try_pid(p, "bg", "t1");
	expect_xcom_string(p, "bg", "r1", "t1", "return_value", "hi");
	/* the retired shim exits; its group still holds the sleep */
	for (int i = 0; i < 500 && kill(left, 0) == 0; i++)
		hr_sleep_ms(20);
	bool shim_alive = kill(left, 0) == 0, sleep_alive = kill(-left, 0) == 0;
	kill(-left, SIGKILL);
	int reused_by = 0;
	for (int i = 2; i <= 4; i++) {
		char task[8];
		snprintf(task, sizeof task, "t%d", i);
		expect_task(p, "bg", "r1", task, "success");
		if (try_pid(p, "bg", task) == left)
			reused_by = i;
	}
	if (reused_by)
		fail_msg("t%d ran under shim %d, which t1 left a process behind in",
			 reused_by, (int)left);
	if (shim_alive)
		fail_msg("the retired shim %d is still alive", (int)left);
	if (!sleep_alive)
		fail_msg("t1's background sleep ended too early");
	hr_pass(p);
}

/* A shim reaps the orphans of a task while the task still runs. */
static void test_shim_reaps_orphans_during_task(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "orph", "tasks:\n"
	       "  - id: t1\n"
	       "    command: '(sleep 0.2 &); while [ ! -e go ]; do sleep 0.05; done; echo done'\n");
	hr_queue_run(p, "orph", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	hr_wait_task_state(p, "orph", "r1", "t1", "running", W);
	pid_t shim = try_pid(p, "orph", "t1");
	hr_sleep_ms(1800);   /* the orphan ends at 0.2 s; a reap comes each second */
	pid_t zombie[8];
	int zombies = hr_children(shim, NULL, 'Z', zombie, 8);
	hr_write(p, "go", "");
	expect_run(p, "orph", "r1", "success", W);
	expect_xcom_string(p, "orph", "r1", "t1", "return_value", "done");
	if (zombies)
		fail_msg("%d zombie(s) under shim %d while its task ran", zombies, (int)shim);
	hr_pass(p);
}

/* --- crash safety ------------------------------------------------------- */

/* Restarts after the runner went away while `work` ran; one try, adopted. */
static void check_one_adopted_try(hr_project *p, const char *dag)
{
	expect_run(p, dag, "r1", "success", W);
	hr_try t = one_try(p, dag, "r1", "work");
	assert_string_equal(t.state, "success");
	assert_true(t.has_exit);
	assert_int_equal(t.exit_code, 0);
	expect_times(&t);
	expect_task(p, dag, "r1", "work", "success");
	expect_task(p, dag, "r1", "next", "success");
	expect_xcom_string(p, dag, "r1", "work", "return_value", "done");
	char *starts = hr_read(p, "starts.txt");
	assert_non_null(starts);
	if (count_lines(starts) != 1)
		fail_msg("the task started %d times", count_lines(starts));
	free(starts);
	hr_ti ti;
	assert_true(hr_task(p, dag, "r1", "work", &ti));
	assert_int_equal(ti.try_number, 1);
}

static const char *crash_dag(const char *sleep)
{
	static char buf[512];
	snprintf(buf, sizeof buf,
		 "tasks:\n"
		 "  - {id: work, command: \"echo start >> starts.txt; sleep %s; echo done\"}\n"
		 "  - {id: next, command: \"true\", upstream: [work]}\n", sleep);
	return buf;
}

/* Starts the run and waits until `work` is really running. */
static pid_t start_work(hr_project *p, const char *dag)
{
	hr_queue_run(p, dag, "r1", NULL, NULL);
	pid_t pgid = hr_wait_try_pid(p, dag, "r1", "work", 1, W);
	hr_wait_task_state(p, dag, "r1", "work", "running", W);
	for (int i = 0; i < 500 && !hr_exists(p, "starts.txt"); i++)
		hr_sleep_ms(20);
	assert_true(hr_exists(p, "starts.txt"));
	return pgid;
}

/*
 * kill -9 of runner while the shim pgid runs `work` of dag: the shim lives
 * on, the task stays running, and a new runner adopts that one try.
 */
static void kill9_and_adopt(hr_project *p, const char *dag, pid_t runner, pid_t pgid)
{
	hr_runner_kill9(p, runner);
	hr_sleep_ms(200);
	if (kill(pgid, 0) != 0)
		fail_msg("the task's shim died with the runner (%s)", strerror(errno));
	assert_string_equal(hr_task_state(p, dag, "r1", "work"), "running");
	hr_runner_start(p, NULL);
	check_one_adopted_try(p, dag);
}

static void test_kill9_adopts_running_task(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "k9", crash_dag("2"));
	pid_t runner = hr_runner_start(p, NULL);
	pid_t pgid = start_work(p, "k9");
	kill9_and_adopt(p, "k9", runner, pgid);
	assert_true(hr_wait_group_gone(pgid, 10000));
	hr_pass(p);
}

/*
 * The runner is killed while a shim that already ran an earlier try runs
 * `work`: the restart adopts it by pid and start time, as any other.
 */
static void test_kill9_adopts_reused_shim(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "k9r",
	       "tasks:\n"
	       "  - {id: t1, command: \"true\"}\n"
	       "  - {id: t2, command: \"true\", upstream: [t1]}\n"
	       "  - {id: t3, command: \"true\", upstream: [t2]}\n"
	       "  - {id: work, command: \"echo start >> starts.txt; sleep 2; echo done\","
	       " upstream: [t3]}\n"
	       "  - {id: next, command: \"true\", upstream: [work]}\n");
	pid_t runner = hr_runner_start(p, NULL);
	pid_t pgid = start_work(p, "k9r");
	pid_t earlier[3] = {try_pid(p, "k9r", "t1"), try_pid(p, "k9r", "t2"),
			    try_pid(p, "k9r", "t3")};
	if (pgid != earlier[0] && pgid != earlier[1] && pgid != earlier[2])
		fail_msg("work runs under a new shim %d (earlier: %d %d %d)", (int)pgid,
			 (int)earlier[0], (int)earlier[1], (int)earlier[2]);
	kill9_and_adopt(p, "k9r", runner, pgid);
	for (int i = 1; i <= 3; i++) {
		char task[8];
		snprintf(task, sizeof task, "t%d", i);
		assert_int_equal(n_tries(p, "k9r", "r1", task), 1);
		expect_task(p, "k9r", "r1", task, "success");
	}
	assert_true(hr_wait_group_gone(pgid, 10000));
	hr_pass(p);
}

static void test_kill9_task_ends_while_down(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "k9b", crash_dag("0.5"));
	pid_t runner = hr_runner_start(p, NULL);
	pid_t pgid = start_work(p, "k9b");
	hr_runner_kill9(p, runner);
	hr_sleep_ms(1500);
	if (!hr_wait_group_gone(pgid, 10000))
		fail_msg("the task did not end while the runner was down");
	assert_true(hr_exists(p, "var/logs/k9b/r1/work/1.status"));
	assert_string_equal(hr_task_state(p, "k9b", "r1", "work"), "running");
	hr_runner_start(p, NULL);
	check_one_adopted_try(p, "k9b");
	hr_pass(p);
}

/* The shim is gone without a status: the try is lost, and retries apply. */
static void test_kill9_lost_try_is_retried(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "lost",
	       "tasks:\n"
	       "  - id: work\n"
	       "    command: '[ \"$PIPEWRIGHT_TRY_NUMBER\" -gt 1 ] || sleep 30'\n"
	       "    retries: 1\n"
	       "    retry_delay: 0\n");
	pid_t runner = hr_runner_start(p, NULL);
	hr_queue_run(p, "lost", "r1", NULL, NULL);
	pid_t pgid = hr_wait_try_pid(p, "lost", "r1", "work", 1, W);
	hr_wait_task_state(p, "lost", "r1", "work", "running", W);
	hr_runner_kill9(p, runner);
	/*
	 * The try is committed running before its shim is told to go: a
	 * runner killed in between leaves a shim that never got its go and
	 * ends by itself (ESRCH here). Lost either way.
	 */
	if (kill(-pgid, SIGKILL) != 0 && errno != ESRCH)
		fail_msg("kill -%d: %s", (int)pgid, strerror(errno));
	assert_true(hr_wait_group_gone(pgid, 10000));
	hr_runner_start(p, NULL);
	expect_run(p, "lost", "r1", "success", W);
	hr_try *t;
	size_t n = hr_tries(p, "lost", "r1", "work", &t);
	assert_int_equal(n, 2);
	if (strcmp(t[0].state, "success") == 0 || !strstr(t[0].reason, "lost"))
		fail_msg("try 1 is %s with reason \"%s\", expected a lost try", t[0].state,
			 t[0].reason);
	assert_string_equal(t[1].state, "success");
	free(t);
	hr_pass(p);
}

/*
 * Group commit's crash points (PIPEWRIGHT_TEST_CRASH_AT, test only): the
 * runner kills itself (-9) in the first pass that records a try's end,
 * at point. The pass holds a's end and b's start: before-commit, a's end
 * was read from its shim but is not committed, and b's shim has no go;
 * after-commit, both are committed, a's end is not acked and b's shim has
 * no go. A new runner records a's end once and runs each task once.
 * Returns b's tries.
 */
static size_t crash_and_restart(hr_project *p, const char *point)
{
	int st = 0;
	hr_dag(p, "gc",
	       "tasks:\n"
	       "  - {id: a, command: \"echo a >> ran.txt\"}\n"
	       "  - {id: b, command: \"echo b >> ran.txt\", upstream: [a],"
	       " retries: 1, retry_delay: 0}\n");
	setenv("PIPEWRIGHT_TEST_CRASH_AT", point, 1);
	pid_t runner = hr_runner_start(p, NULL);
	unsetenv("PIPEWRIGHT_TEST_CRASH_AT");
	hr_queue_run(p, "gc", "r1", NULL, NULL);
	if (!hr_runner_wait(p, runner, W, &st) || !WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		fail_msg("the runner did not kill itself %s (status %#x)", point, st);
	hr_runner_start(p, NULL);
	expect_run(p, "gc", "r1", "success", W);
	char *ran = hr_read(p, "ran.txt");
	if (!ran || strcmp(ran, "a\nb\n") != 0)
		fail_msg("the tasks ran as \"%s\", expected a then b once each", ran ? ran : "");
	free(ran);
	hr_try t = one_try(p, "gc", "r1", "a");
	assert_string_equal(t.state, "success");
	assert_int_equal(hr_sql_int(p, 0,
		"SELECT count(*) FROM events WHERE type = 'task.state' AND run_id = ?1"
		" AND task_id = 'a' AND json_extract(data, '$.state') = 'success'", "s", "r1"),
			 1);
	expect_task(p, "gc", "r1", "b", "success");
	return n_tries(p, "gc", "r1", "b");
}

/* Killed before the commit: nothing of the pass is there; all redone once. */
static void test_crash_before_commit(void **state)
{
	hr_project *p = *state;
	assert_int_equal(crash_and_restart(p, "before-commit"), 1);
	hr_pass(p);
}

/*
 * Killed after the commit, before the acks and gos: a's end stays; b's
 * committed try never ran (its shim had no go), so it is lost and retried.
 */
static void test_crash_after_commit(void **state)
{
	hr_project *p = *state;
	hr_try *t;
	assert_int_equal(crash_and_restart(p, "after-commit"), 2);
	assert_int_equal(hr_tries(p, "gc", "r1", "b", &t), 2);
	if (strcmp(t[0].state, "failed") != 0 || !strstr(t[0].reason, "lost"))
		fail_msg("b's try 1 is %s (%s), expected lost", t[0].state, t[0].reason);
	free(t);
	hr_pass(p);
}

/* SIGTERM leaves running tries to their shims; the next runner adopts. */
static void test_sigterm_leaves_task_to_next_runner(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "term", crash_dag("2"));
	pid_t runner = hr_runner_start(p, NULL);
	pid_t pgid = start_work(p, "term");
	int st = hr_runner_stop(p, runner, 10000);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("the runner did not exit cleanly on SIGTERM (status %#x)", st);
	if (kill(pgid, 0) != 0)
		fail_msg("the task did not outlive the runner (%s)", strerror(errno));
	hr_runner_start(p, NULL);
	check_one_adopted_try(p, "term");
	hr_pass(p);
}

static bool path_exists(hr_project *p, void *relpath)
{
	return hr_exists(p, relpath);
}

static bool path_gone(hr_project *p, void *relpath)
{
	return !hr_exists(p, relpath);
}

/*
 * A chain's next task is armed while its upstream runs (a shim holds its
 * try, its log made, waiting for a go); when the upstream fails, it never
 * starts and leaves nothing: no try, no log, no folder.
 */
static void test_armed_try_never_started_leaves_nothing(void **state)
{
	hr_project *p = *state;
	hr_dag(p, "arm",
	       "tasks:\n"
	       "  - {id: first, command: \"sleep 2; exit 1\"}\n"
	       "  - {id: next, command: \"true\", upstream: [first]}\n");
	hr_queue_run(p, "arm", "r1", NULL, NULL);
	hr_runner_start(p, NULL);
	hr_wait_for(p, path_exists, "var/logs/arm/r1/next/1.log", "next's armed try", W);
	expect_run(p, "arm", "r1", "failed", W);
	expect_task(p, "arm", "r1", "next", "upstream_failed");
	expect_never_ran(p, "arm", "r1", "next");
	hr_wait_for(p, path_gone, "var/logs/arm/r1/next", "next's folder removed", W);
	hr_pass(p);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_trigger_all_success),
		T(test_trigger_all_done),
		T(test_trigger_all_failed),
		T(test_trigger_one_success),
		T(test_trigger_one_failed),
		T(test_trigger_none_failed),
		T(test_retries_count_tries),
		T(test_timeout_kills_group),
		T(test_timeout_escalates_to_sigkill),
		T(test_cancel_running_run),
		T(test_cancel_queued_run),
		T(test_retry_failed_run),
		T(test_retry_cancelled_run),
		T(test_pool_slots_never_exceeded),
		T(test_pools_from_config),
		T(test_max_parallel_tasks),
		T(test_sequential_runner),
		T(test_missing_pool_waits),
		T(test_pause_holds_queued_runs),
		T(test_max_active_runs),
		T(test_new_run_starts_first),
		T(test_cron_missed_while_down),
		T(test_cron_due_noticed_on_wake),
		T(test_xcom),
		T(test_params_file),
		T(test_task_environment),
		T(test_versioned_outputs),
		T(test_slicing),
		T(test_only_missing_outputs),
		T(test_events_for_every_state_change),
		T(test_single_instance),
		T(test_once_beside_a_runner),
		T(test_once_drains_and_exits),
		T(test_heartbeat_and_sigterm),
		T(test_shim_reused_between_tries),
		T(test_shim_not_reused_after_background_child),
		T(test_shim_reaps_orphans_during_task),
		T(test_kill9_adopts_running_task),
		T(test_kill9_adopts_reused_shim),
		T(test_kill9_task_ends_while_down),
		T(test_kill9_lost_try_is_retried),
		T(test_sigterm_leaves_task_to_next_runner),
		T(test_crash_before_commit),
		T(test_crash_after_commit),
		T(test_armed_try_never_started_leaves_nothing),
	};
	/* PW_TEST_FILTER=test_cron* runs a subset (cmocka's glob). */
	const char *filter = getenv("PW_TEST_FILTER");
	if (filter && *filter)
		cmocka_set_test_filter(filter);
	return cmocka_run_group_tests_name("runner", tests, NULL, NULL);
}
